//! Findings: what validation and analysis report, with Istio's analyzer message codes.
//!
//! Codes follow `istioctl analyze` (`IST0101`, `IST0106`, ...). Where Istio has no code for
//! something weft reports, weft uses its own `WFT` codes; `docs/analyze.md` lists them all.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

/// How serious a finding is. Ordered: `Info < Warning < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Severity {
    /// Worth knowing; nothing is wrong.
    Info,
    /// Probably a mistake; the configuration still applies.
    Warning,
    /// The configuration is wrong and will not (fully) apply.
    Error,
}

impl Severity {
    /// Parses the names `istioctl analyze --failure-threshold` accepts (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Some(Self::Info),
            "warning" | "warn" => Some(Self::Warning),
            "error" => Some(Self::Error),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Info => "Info",
            Self::Warning => "Warning",
            Self::Error => "Error",
        })
    }
}

/// A kind of finding: a stable code, a name and a default severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageType {
    /// Stable code such as `IST0101`.
    pub code: &'static str,
    /// Istio's name for the message, such as `ReferencedResourceNotFound`.
    pub name: &'static str,
    /// Severity unless a finding overrides it.
    pub severity: Severity,
}

/// The message types weft reports.
pub mod msg {
    use super::{MessageType, Severity};

    const fn mt(code: &'static str, name: &'static str, severity: Severity) -> MessageType {
        MessageType {
            code,
            name,
            severity,
        }
    }

    /// A feature the configuration depends on is deprecated.
    pub const DEPRECATED: MessageType = mt("IST0002", "Deprecated", Severity::Warning);
    /// A resource refers to a host, subset, gateway or other resource that does not exist.
    pub const REFERENCED_RESOURCE_NOT_FOUND: MessageType =
        mt("IST0101", "ReferencedResourceNotFound", Severity::Error);
    /// A resource does not pass schema validation.
    pub const SCHEMA_VALIDATION_ERROR: MessageType =
        mt("IST0106", "SchemaValidationError", Severity::Error);
    /// A resource passes schema validation with a warning.
    pub const SCHEMA_WARNING: MessageType = mt("IST0133", "SchemaWarning", Severity::Warning);
    /// Two VirtualServices bound to the same gateway define the same host.
    pub const CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS: MessageType = mt(
        "IST0109",
        "ConflictingMeshGatewayVirtualServiceHosts",
        Severity::Error,
    );
    /// Two Sidecars select the same workloads.
    pub const CONFLICTING_SIDECAR_WORKLOAD_SELECTORS: MessageType = mt(
        "IST0110",
        "ConflictingSidecarWorkloadSelectors",
        Severity::Error,
    );
    /// More than one Sidecar without a workload selector in a namespace.
    pub const MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS: MessageType = mt(
        "IST0111",
        "MultipleSidecarsWithoutWorkloadSelectors",
        Severity::Error,
    );
    /// A route destination omits the port although the host has several.
    pub const VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED: MessageType = mt(
        "IST0112",
        "VirtualServiceDestinationPortSelectorRequired",
        Severity::Error,
    );
    /// A port name does not follow Istio's `<protocol>[-<suffix>]` convention.
    pub const PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION: MessageType = mt(
        "IST0118",
        "PortNameIsNotUnderNamingConvention",
        Severity::Info,
    );
    /// A regular expression does not compile.
    pub const INVALID_REGEXP: MessageType = mt("IST0122", "InvalidRegexp", Severity::Warning);
    /// A workload selector matches no workload.
    pub const NO_MATCHING_WORKLOADS_FOUND: MessageType =
        mt("IST0127", "NoMatchingWorkloadsFound", Severity::Warning);
    /// A DestinationRule originates TLS without CA certificates: the server is not verified.
    pub const NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL: MessageType = mt(
        "IST0128",
        "NoServerCertificateVerificationDestinationLevel",
        Severity::Warning,
    );
    /// As IST0128, for a port-level TLS setting.
    pub const NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL: MessageType = mt(
        "IST0129",
        "NoServerCertificateVerificationPortLevel",
        Severity::Warning,
    );
    /// A route rule can never match because an earlier rule catches all its traffic.
    pub const VIRTUAL_SERVICE_UNREACHABLE_RULE: MessageType = mt(
        "IST0130",
        "VirtualServiceUnreachableRule",
        Severity::Warning,
    );
    /// A match clause can never match because an earlier one covers it.
    pub const VIRTUAL_SERVICE_INEFFECTIVE_MATCH: MessageType =
        mt("IST0131", "VirtualServiceIneffectiveMatch", Severity::Info);
    /// A gateway-bound VirtualService host is not exposed by that gateway.
    pub const VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY: MessageType = mt(
        "IST0132",
        "VirtualServiceHostNotFoundInGateway",
        Severity::Warning,
    );
    /// A ServiceEntry with TCP (or unset protocol) ports has no addresses.
    pub const SERVICE_ENTRY_ADDRESSES_REQUIRED: MessageType = mt(
        "IST0134",
        "ServiceEntryAddressesRequired",
        Severity::Warning,
    );
    /// Two Gateways select the same workload and port with overlapping hosts.
    pub const CONFLICTING_GATEWAYS: MessageType =
        mt("IST0145", "ConflictingGateways", Severity::Error);
    /// A VirtualService routes on JWT claims but no RequestAuthentication validates the token.
    pub const JWT_CLAIM_BASED_ROUTING_WITHOUT_REQUEST_AUTHN: MessageType = mt(
        "IST0149",
        "JwtClaimBasedRoutingWithoutRequestAuthN",
        Severity::Error,
    );
    /// A Telemetry resource with empty providers is ignored.
    pub const INVALID_TELEMETRY_PROVIDER: MessageType =
        mt("IST0157", "InvalidTelemetryProvider", Severity::Warning);
    /// Two Telemetry resources select the same workloads.
    pub const CONFLICTING_TELEMETRY_WORKLOAD_SELECTORS: MessageType = mt(
        "IST0159",
        "ConflictingTelemetryWorkloadSelectors",
        Severity::Error,
    );
    /// More than one Telemetry without a workload selector in a namespace.
    pub const MULTIPLE_TELEMETRIES_WITHOUT_WORKLOAD_SELECTORS: MessageType = mt(
        "IST0160",
        "MultipleTelemetriesWithoutWorkloadSelectors",
        Severity::Error,
    );
    /// A DestinationRule subset selects no workload of its host.
    pub const DESTINATION_RULE_SUBSET_NOT_SELECT_PODS: MessageType = mt(
        "IST0173",
        "DestinationRuleSubsetNotSelectPods",
        Severity::Warning,
    );

    /// weft: the same kind, namespace and name is defined more than once.
    pub const DUPLICATE_RESOURCE: MessageType = mt("WFT0001", "DuplicateResource", Severity::Error);
    /// weft: a document could not be read (not YAML/JSON, missing apiVersion/kind...).
    pub const MALFORMED_DOCUMENT: MessageType = mt("WFT0002", "MalformedDocument", Severity::Error);
    /// weft: an Istio kind or version weft does not implement.
    pub const UNSUPPORTED_RESOURCE: MessageType =
        mt("WFT0003", "UnsupportedResource", Severity::Warning);
    /// weft: a DestinationRule whose host matches no known service.
    pub const DESTINATION_RULE_HOST_NOT_FOUND: MessageType =
        mt("WFT0004", "DestinationRuleHostNotFound", Severity::Warning);
}

/// The resource a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ResourceRef {
    /// Kind, such as `VirtualService`.
    pub kind: String,
    /// Namespace (already defaulted).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// Where in the user's files a finding points.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// The file as the user named it (or below the directory they named).
    pub file: Arc<PathBuf>,
    /// 1-based line.
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One finding of validation or analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// What kind of finding this is.
    pub message_type: MessageType,
    /// Severity; usually the message type's.
    pub severity: Severity,
    /// The resource it is about, when it is about one.
    pub resource: Option<ResourceRef>,
    /// The field it is about, as a path such as `spec.http[0].route[1].destination.subset`.
    pub field: Option<String>,
    /// Where in a file, when known.
    pub location: Option<Location>,
    /// Human-readable explanation.
    pub message: String,
}

impl Finding {
    /// A finding with the message type's default severity.
    pub fn new(message_type: MessageType, message: impl Into<String>) -> Self {
        Self {
            message_type,
            severity: message_type.severity,
            resource: None,
            field: None,
            location: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Finding {
    /// Formats like `istioctl analyze`:
    /// `Error [IST0101] (VirtualService bookinfo/reviews file.yaml:12) message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.severity, self.message_type.code)?;
        match (&self.resource, &self.location) {
            (Some(r), Some(l)) => write!(f, " ({r} {l})")?,
            (Some(r), None) => write!(f, " ({r})")?,
            (None, Some(l)) => write!(f, " ({l})")?,
            (None, None) => {}
        }
        write!(f, " {}", self.message)
    }
}

impl Serialize for Finding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Finding", 8)?;
        st.serialize_field("code", self.message_type.code)?;
        st.serialize_field("level", &self.severity)?;
        st.serialize_field("name", self.message_type.name)?;
        st.serialize_field("message", &self.message)?;
        st.serialize_field("resource", &self.resource)?;
        st.serialize_field("field", &self.field)?;
        st.serialize_field(
            "file",
            &self.location.as_ref().map(|l| l.file.display().to_string()),
        )?;
        st.serialize_field("line", &self.location.as_ref().map(|l| l.line))?;
        st.end()
    }
}
