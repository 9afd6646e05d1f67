//! `AuthorizationPolicy`: access control on workloads, after `security/v1beta1/authorization_policy.proto`.
//!
//! Validation mirrors Istio's `ValidateAuthorizationPolicy` and `pkg/config/security`
//! (`ValidateAttribute`, `CheckValidPathTemplate`, `CheckServiceAccount`, ...). The helpers that
//! RequestAuthentication and PeerAuthentication share (selector and target reference checks) live
//! at the bottom of this file as `pub(crate)` functions.

use serde::{Deserialize, Deserializer, Serialize};

use crate::common::{PolicyTargetReference, WorkloadSelector};
use crate::validate::rules;
use crate::validate::{Checker, Validate};

/// Access control for the selected workloads: which requests to allow, deny, audit or hand to an
/// external authorizer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthorizationPolicy {
    /// Workloads the policy applies to; all workloads of the namespace when unset.
    /// At most one of `selector`, `targetRef` and `targetRefs` may be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// Single target reference (hidden in Istio's docs; superseded by `targetRefs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    /// Resources (Gateway, GatewayClass, Service, ServiceEntry) the policy attaches to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// Rules to match requests; a request matches when at least one rule matches. No rules
    /// never match (with `ALLOW`, that denies everything).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// What to do with a matching request. Defaults to `ALLOW`.
    #[serde(default)]
    pub action: Action,
    /// The extension provider for `CUSTOM` (Istio's `action_detail` oneof).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ExtensionProvider>,
}

/// What an AuthorizationPolicy does with the requests its rules match.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    /// Allow a request only if it matches the rules (the default).
    #[default]
    Allow,
    /// Deny a request if it matches any of the rules.
    Deny,
    /// Audit a request if it matches any of the rules.
    Audit,
    /// Delegate the decision to the extension named by `provider`; evaluated before ALLOW/DENY.
    Custom,
}

impl Action {
    /// The name as written in YAML (`ALLOW`, `DENY`, `AUDIT`, `CUSTOM`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "ALLOW",
            Self::Deny => "DENY",
            Self::Audit => "AUDIT",
            Self::Custom => "CUSTOM",
        }
    }
}

/// The extension that handles a `CUSTOM` action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExtensionProvider {
    /// Name of an extension provider declared in MeshConfig.
    #[serde(default)]
    pub name: String,
}

/// Matches requests from a list of sources that perform a list of operations subject to a list
/// of conditions: at least one source, at least one operation and all conditions must match.
/// An empty rule always matches.
///
/// String fields use Istio's wildcard forms, see [`ValueMatch`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    /// Sources of the request; any source when empty. An explicit `from: []` is rejected.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "non_empty_from"
    )]
    pub from: Vec<RuleFrom>,
    /// Operations of the request; any operation when empty. An explicit `to: []` is rejected.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "non_empty_to"
    )]
    pub to: Vec<RuleTo>,
    /// Additional conditions, all of which must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<Condition>,
}

/// One entry of `from`: a source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleFrom {
    /// The source; required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

/// One entry of `to`: an operation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleTo {
    /// The operation; required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
}

/// Source identities of a request. Fields are ANDed; values within a field are ORed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Source {
    /// Peer identities from the peer certificate, `<TRUST_DOMAIN>/ns/<NAMESPACE>/sa/<SA>`
    /// (`source.principal`). Requires mTLS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    /// Negative match of peer identities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_principals: Vec<String>,
    /// Request identities from the JWT, `<ISS>/<SUB>` (`request.auth.principal`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_principals: Vec<String>,
    /// Negative match of request identities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_request_principals: Vec<String>,
    /// Namespaces from the peer certificate (`source.namespace`). Requires mTLS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Negative match of namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_namespaces: Vec<String>,
    /// Kubernetes service accounts from the peer certificate, `<namespace>/<sa>` or `<sa>`
    /// (`source.serviceAccount`). No wildcards; not together with principals or namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<String>,
    /// Negative match of service accounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_service_accounts: Vec<String>,
    /// IP addresses or CIDR blocks of the packet's source address (`source.ip`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_blocks: Vec<String>,
    /// Negative match of IP blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ip_blocks: Vec<String>,
    /// IP blocks of the original client, from `X-Forwarded-For` or proxy protocol (`remote.ip`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_ip_blocks: Vec<String>,
    /// Negative match of remote IP blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_remote_ip_blocks: Vec<String>,
    /// Trust domains from the peer certificate (`source.trustDomain`). Requires mTLS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trust_domains: Vec<String>,
    /// Negative match of trust domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_trust_domains: Vec<String>,
}

/// Operations of a request. Fields are ANDed; values within a field are ORed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Operation {
    /// Hosts of the HTTP request, matched case-insensitively. HTTP only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Negative match of hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_hosts: Vec<String>,
    /// Destination ports of the connection, as decimal strings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// Negative match of ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ports: Vec<String>,
    /// HTTP methods (always `POST` for gRPC). HTTP only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Negative match of methods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_methods: Vec<String>,
    /// Normalized request paths; `{*}` and `{**}` make a path an Envoy URI template. HTTP only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Negative match of paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_paths: Vec<String>,
}

/// An additional condition on an Istio attribute, see [`Attribute`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Condition {
    /// Name of the attribute, such as `request.headers[x-token]` or `source.ip`.
    #[serde(default)]
    pub key: String,
    /// Allowed values; at least one of `values` and `notValues` must be set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Disallowed values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_values: Vec<String>,
}

/// How Istio reads a string in a rule: `abc` exact, `abc*` prefix, `*abc` suffix, `*` presence
/// (any non-empty value). Pure, so the data plane can share it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueMatch<'a> {
    /// The value equals this string.
    Exact(&'a str),
    /// The value starts with this string.
    Prefix(&'a str),
    /// The value ends with this string.
    Suffix(&'a str),
    /// The value is present and not empty.
    Presence,
}

impl<'a> ValueMatch<'a> {
    /// Interprets a rule value the way Istio's RBAC translation does.
    pub fn parse(pattern: &'a str) -> Self {
        if pattern == "*" {
            Self::Presence
        } else if let Some(suffix) = pattern.strip_prefix('*') {
            Self::Suffix(suffix)
        } else if let Some(prefix) = pattern.strip_suffix('*') {
            Self::Prefix(prefix)
        } else {
            Self::Exact(pattern)
        }
    }

    /// Whether `value` matches (case-sensitively; hosts are compared case-insensitively by the
    /// caller lowering both sides).
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Self::Exact(s) => value == *s,
            Self::Prefix(s) => value.starts_with(s),
            Self::Suffix(s) => value.ends_with(s),
            Self::Presence => !value.is_empty(),
        }
    }
}

/// A `when` key parsed into the attribute it names (Istio's supported condition attributes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attribute<'a> {
    /// `request.headers[<name>]`.
    RequestHeader(&'a str),
    /// `source.ip`: the packet's source address; values are IPs or CIDRs.
    SourceIp,
    /// `remote.ip`: the original client address; values are IPs or CIDRs.
    RemoteIp,
    /// `source.namespace`.
    SourceNamespace,
    /// `source.serviceAccount`: `<namespace>/<sa>` or `<sa>`.
    SourceServiceAccount,
    /// `source.principal`.
    SourcePrincipal,
    /// `source.trustDomain`.
    SourceTrustDomain,
    /// `request.auth.principal`.
    RequestPrincipal,
    /// `request.auth.audiences`.
    RequestAudiences,
    /// `request.auth.presenter`.
    RequestPresenter,
    /// `request.auth.claims[<name>]` or nested `request.auth.claims[<a>][<b>]`: the claim path.
    RequestClaim(Vec<&'a str>),
    /// `destination.ip`.
    DestinationIp,
    /// `destination.port`.
    DestinationPort,
    /// `connection.sni`.
    ConnectionSni,
    /// `experimental.envoy.filters.<filter>[<field>]`: the whole key, passed to Envoy.
    EnvoyFilter(&'a str),
}

/// Keys Istio accepts in `when`, for error messages.
const SUPPORTED_KEYS: &str = "request.headers[<name>], source.ip, remote.ip, source.namespace, \
     source.serviceAccount, source.principal, source.trustDomain, request.auth.principal, \
     request.auth.audiences, request.auth.presenter, request.auth.claims[<name>], destination.ip, \
     destination.port, connection.sni, experimental.envoy.filters.*[<field>]";

impl<'a> Attribute<'a> {
    /// Parses a `when` key, or says why Istio rejects it.
    pub fn parse(key: &'a str) -> Result<Self, String> {
        let attr = match key {
            "source.ip" => Self::SourceIp,
            "remote.ip" => Self::RemoteIp,
            "source.namespace" => Self::SourceNamespace,
            "source.serviceAccount" => Self::SourceServiceAccount,
            "source.principal" => Self::SourcePrincipal,
            "source.trustDomain" => Self::SourceTrustDomain,
            "request.auth.principal" => Self::RequestPrincipal,
            "request.auth.audiences" => Self::RequestAudiences,
            "request.auth.presenter" => Self::RequestPresenter,
            "destination.ip" => Self::DestinationIp,
            "destination.port" => Self::DestinationPort,
            "connection.sni" => Self::ConnectionSni,
            "destination.namespace" => {
                return Err(format!(
                    "attribute {key} is not supported: the policy's own metadata.namespace already selects the destination namespace"
                ));
            }
            "destination.name" | "destination.user" => {
                return Err(format!(
                    "attribute {key} was only supported in v1alpha1; use the policy's selector instead"
                ));
            }
            _ if key.starts_with("request.headers") => {
                Self::RequestHeader(bracketed(key, "request.headers")?)
            }
            _ if key.starts_with("request.auth.claims") => {
                let inner = bracketed(key, "request.auth.claims")?;
                Self::RequestClaim(inner.split("][").collect())
            }
            _ if key.starts_with("experimental.envoy.filters.") => {
                map_key(key)?;
                Self::EnvoyFilter(key)
            }
            _ if key.starts_with("destination.labels") => {
                return Err(format!(
                    "attribute {key} is not supported: use the policy's selector to choose workloads by label"
                ));
            }
            _ => {
                return Err(format!(
                    "unknown attribute {key:?}; supported keys are {SUPPORTED_KEYS}"
                ));
            }
        };
        Ok(attr)
    }
}

/// Istio's `validateMapKey`: `name[field]` with a non-empty field.
fn map_key(key: &str) -> Result<&str, String> {
    match key.find('[') {
        Some(open) if open > 0 && key.ends_with(']') && open + 2 < key.len() => {
            Ok(&key[open + 1..key.len() - 1])
        }
        _ => Err(format!(
            "bad key {key:?}: expected the form name[field], e.g. request.headers[x-user]"
        )),
    }
}

/// The bracketed part of `prefix[...]`, which must follow `prefix` directly.
fn bracketed<'k>(key: &'k str, prefix: &str) -> Result<&'k str, String> {
    if !key[prefix.len()..].starts_with('[') {
        return Err(format!(
            "bad key {key:?}: expected {prefix}[<name>], with the name in brackets"
        ));
    }
    let inner = map_key(key)?;
    if inner.split("][").any(str::is_empty) {
        return Err(format!(
            "bad key {key:?}: names in brackets must not be empty"
        ));
    }
    Ok(inner)
}

impl Validate for AuthorizationPolicy {
    fn validate(&self, cx: &mut Checker) {
        check_attachment(
            cx,
            self.selector.as_ref(),
            self.target_ref.as_ref(),
            &self.target_refs,
        );
        check_max_items(cx, "rules", self.rules.len(), 512);
        self.check_action(cx);
        cx.each("rules", &self.rules, |cx, rule| {
            rule.validate(cx, self.action)
        });
    }
}

impl AuthorizationPolicy {
    fn check_action(&self, cx: &mut Checker) {
        let provider_named = self.provider.as_ref().is_some_and(|p| !p.name.is_empty());
        match self.action {
            Action::Custom => {
                if self.rules.is_empty() {
                    cx.error_at(
                        "rules",
                        "CUSTOM action without rules will never be triggered; add an empty rule `{}` to trigger it for every request",
                    );
                }
                if !provider_named {
                    cx.error_at(
                        "provider",
                        "CUSTOM action requires provider.name naming an extension provider from MeshConfig",
                    );
                }
            }
            Action::Deny if self.rules.is_empty() => cx.error_at(
                "rules",
                "DENY action without rules will never be triggered; add an empty rule `{}` to deny every request",
            ),
            _ => {}
        }
        if self.provider.is_some() && self.action != Action::Custom {
            cx.error_at(
                "provider",
                format!(
                    "provider is only allowed with action CUSTOM, found {}; remove provider or set action: CUSTOM",
                    self.action.as_str()
                ),
            );
        }
    }
}

impl Rule {
    fn validate(&self, cx: &mut Checker, action: Action) {
        check_max_items(cx, "from", self.from.len(), 512);
        cx.each("from", &self.from, |cx, from| match &from.source {
            None => cx.error_at(
                "source",
                "source is required in a from entry; remove the entry to match any source",
            ),
            Some(src) => cx.field("source", |cx| src.validate(cx, action)),
        });
        cx.each("to", &self.to, |cx, to| match &to.operation {
            None => cx.error_at(
                "operation",
                "operation is required in a to entry; remove the entry to match any operation",
            ),
            Some(op) => cx.field("operation", |cx| op.validate(cx)),
        });
        cx.each("when", &self.when, |cx, cond| cond.validate(cx, action));
        if action == Action::Deny && self.http_only() {
            cx.warning(
                "this DENY rule uses only HTTP attributes, so it denies all traffic to TCP ports \
                 under the policy's scope; add ports to the rule to limit it to HTTP ports",
            );
        }
    }

    /// Istio's check for DENY rules that, using only HTTP attributes, deny all TCP traffic.
    fn http_only(&self) -> bool {
        let sources: Vec<&Source> = self.from.iter().filter_map(|f| f.source.as_ref()).collect();
        let ops: Vec<&Operation> = self
            .to
            .iter()
            .filter_map(|t| t.operation.as_ref())
            .collect();
        // Istio leaves trust domains out of this list; they come from the peer certificate, so
        // they are TCP attributes and weft counts them (one false warning fewer).
        let tcp_from = sources.iter().any(|s| {
            [
                &s.principals,
                &s.not_principals,
                &s.namespaces,
                &s.not_namespaces,
                &s.ip_blocks,
                &s.not_ip_blocks,
                &s.remote_ip_blocks,
                &s.not_remote_ip_blocks,
                &s.service_accounts,
                &s.not_service_accounts,
                &s.trust_domains,
                &s.not_trust_domains,
            ]
            .iter()
            .any(|v| !v.is_empty())
        });
        let tcp_to = ops
            .iter()
            .any(|o| !o.ports.is_empty() || !o.not_ports.is_empty());
        (!sources.is_empty() && ops.is_empty() && !tcp_from) || (!ops.is_empty() && !tcp_to)
    }
}

impl Source {
    fn is_empty(&self) -> bool {
        *self == Source::default()
    }

    fn validate(&self, cx: &mut Checker, action: Action) {
        if self.is_empty() {
            cx.error("source must not be empty; set at least one field, or remove the from entry to match any source");
            return;
        }
        let identity_fields = !self.principals.is_empty()
            || !self.not_principals.is_empty()
            || !self.namespaces.is_empty()
            || !self.not_namespaces.is_empty();
        if identity_fields
            && (!self.service_accounts.is_empty() || !self.not_service_accounts.is_empty())
        {
            cx.error("serviceAccounts cannot be set together with principals or namespaces; use one form of identity per source");
        }
        for (name, values) in [
            ("principals", &self.principals),
            ("notPrincipals", &self.not_principals),
        ] {
            cx.each(name, values, |cx, v| {
                if check_wildcard_value(cx, v) && v.starts_with("spiffe://") {
                    cx.warning(format!(
                        "principal {v:?} starts with spiffe://, which Istio adds itself, so it never matches; write {:?}",
                        v.trim_start_matches("spiffe://")
                    ));
                }
            });
        }
        for (name, values) in [
            ("requestPrincipals", &self.request_principals),
            ("notRequestPrincipals", &self.not_request_principals),
            ("namespaces", &self.namespaces),
            ("notNamespaces", &self.not_namespaces),
        ] {
            cx.each(name, values, |cx, v| {
                check_wildcard_value(cx, v);
            });
        }
        for (name, values) in [
            ("trustDomains", &self.trust_domains),
            ("notTrustDomains", &self.not_trust_domains),
        ] {
            cx.each(name, values, |cx, v| {
                check_trust_domain(cx, v);
            });
        }
        for (name, values) in [
            ("serviceAccounts", &self.service_accounts),
            ("notServiceAccounts", &self.not_service_accounts),
        ] {
            check_service_accounts(cx, name, values);
        }
        for (name, values) in [
            ("ipBlocks", &self.ip_blocks),
            ("notIpBlocks", &self.not_ip_blocks),
            ("remoteIpBlocks", &self.remote_ip_blocks),
            ("notRemoteIpBlocks", &self.not_remote_ip_blocks),
        ] {
            cx.each(name, values, |cx, v| {
                check_ip(cx, v);
            });
        }
        if action == Action::Custom {
            for (name, values) in [
                ("principals", &self.principals),
                ("notPrincipals", &self.not_principals),
                ("requestPrincipals", &self.request_principals),
                ("notRequestPrincipals", &self.not_request_principals),
                ("namespaces", &self.namespaces),
                ("notNamespaces", &self.not_namespaces),
                ("serviceAccounts", &self.service_accounts),
                ("notServiceAccounts", &self.not_service_accounts),
                ("trustDomains", &self.trust_domains),
                ("notTrustDomains", &self.not_trust_domains),
            ] {
                if !values.is_empty() {
                    cx.error_at(
                        name,
                        format!("{name} is not supported with action CUSTOM: the external authorizer runs before identities are checked"),
                    );
                }
            }
        }
    }
}

impl Operation {
    fn is_empty(&self) -> bool {
        *self == Operation::default()
    }

    fn validate(&self, cx: &mut Checker) {
        if self.is_empty() {
            cx.error("operation must not be empty; set at least one field, or remove the to entry to match any operation");
            return;
        }
        for (name, values) in [("hosts", &self.hosts), ("notHosts", &self.not_hosts)] {
            cx.each(name, values, |cx, v| {
                check_wildcard_value(cx, v);
            });
        }
        for (name, values) in [("ports", &self.ports), ("notPorts", &self.not_ports)] {
            cx.each(name, values, |cx, v| {
                check_port_string(cx, v);
            });
        }
        for (name, values) in [
            ("methods", &self.methods),
            ("notMethods", &self.not_methods),
        ] {
            cx.each(name, values, |cx, v| {
                if check_wildcard_value(cx, v) && *v != v.to_ascii_uppercase() {
                    cx.warning(format!(
                        "HTTP methods are case-sensitive, so {v:?} will not match; write {:?}",
                        v.to_ascii_uppercase()
                    ));
                }
            });
        }
        for (name, values) in [("paths", &self.paths), ("notPaths", &self.not_paths)] {
            cx.each(name, values, |cx, v| {
                check_path(cx, v);
            });
        }
    }
}

impl Condition {
    fn validate(&self, cx: &mut Checker, action: Action) {
        if self.key.is_empty() {
            cx.error_at("key", "key must not be empty; name an attribute such as source.ip or request.headers[x-user]");
            return;
        }
        let attr = match Attribute::parse(&self.key) {
            Ok(attr) => attr,
            Err(e) => {
                cx.error_at("key", e);
                return;
            }
        };
        if action == Action::Custom
            && matches!(
                attr,
                Attribute::SourceNamespace
                    | Attribute::SourceServiceAccount
                    | Attribute::SourceTrustDomain
                    | Attribute::SourcePrincipal
                    | Attribute::RequestPrincipal
                    | Attribute::RequestAudiences
                    | Attribute::RequestPresenter
                    | Attribute::RequestClaim(_)
            )
        {
            cx.error_at(
                "key",
                format!("{} is not supported with action CUSTOM", self.key),
            );
        }
        if self.values.is_empty() && self.not_values.is_empty() {
            cx.error(format!(
                "at least one of values or notValues must be set for key {}",
                self.key
            ));
            return;
        }
        for (name, values) in [("values", &self.values), ("notValues", &self.not_values)] {
            if attr == Attribute::SourceServiceAccount {
                check_service_accounts(cx, name, values);
                continue;
            }
            cx.each(name, values, |cx, v| {
                if v.is_empty() {
                    cx.error("empty value not allowed");
                    return;
                }
                match attr {
                    Attribute::SourceIp | Attribute::RemoteIp | Attribute::DestinationIp => {
                        check_ip(cx, v);
                    }
                    Attribute::DestinationPort => {
                        check_port_string(cx, v);
                    }
                    Attribute::SourceTrustDomain => {
                        check_wildcard_value(cx, v);
                    }
                    _ => {}
                }
            });
        }
    }
}

fn non_empty_from<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RuleFrom>, D::Error> {
    non_empty_list(
        d,
        "from must not be an empty list; remove it to match any source",
    )
}

fn non_empty_to<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RuleTo>, D::Error> {
    non_empty_list(
        d,
        "to must not be an empty list; remove it to match any operation",
    )
}

/// Istio rejects an explicitly empty `from`/`to`; a `Vec` cannot tell `[]` from absent later,
/// so the distinction is made here, at the boundary.
fn non_empty_list<'de, D, T>(d: D, message: &'static str) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let v = Vec::<T>::deserialize(d)?;
    if v.is_empty() {
        return Err(serde::de::Error::custom(message));
    }
    Ok(v)
}

/// Istio's `CheckWildcardValues`: non-empty, at most one `*`, and only at the start or end.
/// A `*` elsewhere is matched literally by Istio, which is never what the author meant.
fn check_wildcard_value(cx: &mut Checker, v: &str) -> bool {
    if v.is_empty() {
        cx.error("empty value not allowed");
        return false;
    }
    let stars = v.matches('*').count();
    if stars > 1 {
        cx.error(format!(
            "{v:?} has more than one '*'; a wildcard is allowed once, at the start (suffix match) or end (prefix match)"
        ));
        return false;
    }
    if stars == 1 && !v.starts_with('*') && !v.ends_with('*') {
        cx.error(format!(
            "{v:?} has '*' in the middle; a wildcard is only allowed at the start (suffix match) or end (prefix match)"
        ));
        return false;
    }
    true
}

/// Istio's `CheckTrustDomainValues`: a wildcard value without `/`.
fn check_trust_domain(cx: &mut Checker, v: &str) -> bool {
    if !check_wildcard_value(cx, v) {
        return false;
    }
    if v.contains('/') {
        cx.error(format!(
            "trust domain {v:?} must not contain '/'; write only the domain, e.g. \"cluster.local\""
        ));
        return false;
    }
    true
}

/// Istio's `CheckServiceAccount` over a list: at most 16 values of `sa` or `namespace/sa`,
/// no wildcards, at most 320 characters.
fn check_service_accounts(cx: &mut Checker, name: &str, values: &[String]) {
    check_max_items(cx, name, values.len(), 16);
    cx.each(name, values, |cx, v| {
        if v.is_empty() {
            cx.error("empty value not allowed");
        } else if v.contains('*') {
            cx.error(format!(
                "{v:?}: wildcards are not allowed in service accounts; list them explicitly"
            ));
        } else if v.len() > 320 {
            cx.error("service account must not exceed 320 characters");
        } else if v.matches('/').count() > 1
            || v.split_once('/')
                .is_some_and(|(ns, sa)| ns.is_empty() || sa.is_empty())
        {
            cx.error(format!(
                "{v:?}: expected 'serviceAccount' or 'namespace/serviceAccount'"
            ));
        }
    });
}

fn check_ip(cx: &mut Checker, v: &str) -> bool {
    if v.is_empty() {
        cx.error("empty value not allowed");
        return false;
    }
    rules::check_ip_or_cidr(cx, v)
}

/// A port written as a decimal string, in 1..65535.
fn check_port_string(cx: &mut Checker, v: &str) -> bool {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        cx.error(format!(
            "bad port {v:?}: expected a decimal port number such as \"8080\""
        ));
        return false;
    }
    match v.parse::<u32>() {
        Ok(port) => rules::check_port(cx, port),
        Err(_) => {
            cx.error(format!("port {v} must be in the range 1..65535"));
            false
        }
    }
}

/// Path template operators.
const MATCH_ONE: &str = "{*}";
const MATCH_ANY: &str = "{**}";

/// A path: Istio's `CheckValidPathTemplate` for `{*}`/`{**}` templates, the wildcard rule for
/// plain paths, and a warning for paths that cannot match a normalized request path.
fn check_path(cx: &mut Checker, path: &str) -> bool {
    if path.is_empty() {
        cx.error("empty value not allowed");
        return false;
    }
    let template = path.contains(MATCH_ONE) || path.contains(MATCH_ANY);
    let mut seen_any = false;
    for segment in path.trim_matches('/').split('/') {
        if segment == MATCH_ONE || segment == MATCH_ANY {
            if seen_any {
                cx.error(format!(
                    "invalid path template {path:?}: {{**}} must be the last operator"
                ));
                return false;
            }
            seen_any = segment == MATCH_ANY;
            continue;
        }
        if segment.contains(['{', '}']) {
            cx.error(format!(
                "invalid path {path:?}: '{{' and '}}' are only allowed as the whole-segment operators {{*}} and {{**}}"
            ));
            return false;
        }
        if template && !is_path_literal(segment) {
            cx.error(format!(
                "invalid path template {path:?}: segment {segment:?} is not a valid literal (no '*' outside {{*}} or {{**}})"
            ));
            return false;
        }
    }
    if !template && !check_wildcard_value(cx, path) {
        return false;
    }
    if !path.starts_with('/') && !path.starts_with('*') {
        cx.warning(format!(
            "path {path:?} does not start with '/', so it never matches a request path"
        ));
    }
    true
}

/// RFC 3986 `pchar`s, as Istio's `validLiteral` (`^[a-zA-Z0-9-._~%!$&'()+,;:@=]+$`).
fn is_path_literal(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()+,;:@=".contains(&b))
}

// ---- helpers shared with PeerAuthentication and RequestAuthentication ----

/// Records an error when a list is longer than Istio's CRD allows.
pub(crate) fn check_max_items(cx: &mut Checker, name: &str, len: usize, max: usize) {
    if len > max {
        cx.error_at(
            name,
            format!("at most {max} entries are allowed, found {len}"),
        );
    }
}

/// A workload selector (path `.selector`): valid labels, no wildcards, and a warning when it
/// has no labels (Istio's `validateWorkloadSelector`).
pub(crate) fn check_selector(cx: &mut Checker, selector: Option<&WorkloadSelector>) {
    let Some(selector) = selector else { return };
    cx.field("selector", |cx| {
        rules::check_workload_selector(cx, selector);
        if selector.match_labels.is_empty() {
            cx.warning("selector has no labels, so it selects every workload in the namespace; remove it or add matchLabels");
        }
    });
}

/// Where a policy attaches: `selector`, `targetRef` and `targetRefs` (Istio's
/// `validateOneOfSelectorType`, `validateWorkloadSelector` and `validatePolicyTargetReference`).
pub(crate) fn check_attachment(
    cx: &mut Checker,
    selector: Option<&WorkloadSelector>,
    target_ref: Option<&PolicyTargetReference>,
    target_refs: &[PolicyTargetReference],
) {
    check_selector(cx, selector);
    if let Some(r) = target_ref {
        cx.field("targetRef", |cx| {
            cx.warning("targetRef is deprecated; use targetRefs with a single entry");
            check_target_ref(cx, r);
        });
    }
    check_max_items(cx, "targetRefs", target_refs.len(), 16);
    cx.each("targetRefs", target_refs, check_target_ref);
    let set = [
        selector.is_some(),
        target_ref.is_some(),
        !target_refs.is_empty(),
    ]
    .iter()
    .filter(|s| **s)
    .count();
    if set > 1 {
        let at = if target_refs.is_empty() {
            "targetRef"
        } else {
            "targetRefs"
        };
        cx.error_at(
            at,
            "only one of selector, targetRef and targetRefs may be set; use targetRefs for gateways, services and waypoints, selector for sidecars",
        );
    }
}

/// Kinds a policy may target, as (canonical group, kind).
const TARGET_KINDS: &[(&str, &str)] = &[
    ("core", "Service"),
    ("networking.istio.io", "ServiceEntry"),
    ("gateway.networking.k8s.io", "Gateway"),
    ("gateway.networking.k8s.io", "GatewayClass"),
];

fn check_target_ref(cx: &mut Checker, r: &PolicyTargetReference) {
    if r.name.is_empty() {
        cx.error_at("name", "targetRef name must be set");
    }
    if !r.namespace.is_empty() {
        cx.error_at(
            "namespace",
            "cross-namespace targetRefs are not supported; remove namespace and put the policy in the target's namespace",
        );
    }
    let group = if r.group.is_empty() { "core" } else { &r.group };
    if !TARGET_KINDS.contains(&(group, r.kind.as_str())) {
        let allowed: Vec<String> = TARGET_KINDS
            .iter()
            .map(|(g, k)| format!("{g}/{k}"))
            .collect();
        cx.error_at(
            "kind",
            format!(
                "unsupported target {}/{}; a policy can target {}",
                r.group,
                r.kind,
                allowed.join(", ")
            ),
        );
    }
}

#[cfg(test)]
mod tests;
