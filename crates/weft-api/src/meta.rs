//! Kubernetes-style envelopes: kinds, API versions, object metadata and the [`Resource`] type.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::common::Labels;
use crate::networking::{
    DestinationRule, Gateway, ServiceEntry, Sidecar, VirtualService, WorkloadEntry, WorkloadGroup,
};
use crate::security::{AuthorizationPolicy, PeerAuthentication, RequestAuthentication};
use crate::telemetry::Telemetry;
use crate::validate::{Checker, Validate};

/// The namespace a resource lands in when its file names none (as with `kubectl apply`).
pub const DEFAULT_NAMESPACE: &str = "default";

/// Kubernetes `ObjectMeta`: the fields weft uses plus the ones `kubectl get -o yaml` emits,
/// so exported resources load unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Name, unique per kind and namespace.
    #[serde(default)]
    pub name: String,
    /// Namespace; the loader fills in the default when it is empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Labels.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub annotations: Labels,
    /// Name prefix for server-generated names (accepted, not used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    /// Server-assigned fields, kept as written so exported objects round-trip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// See `uid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// See `uid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// See `uid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// See `uid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    /// See `uid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_grace_period_seconds: Option<i64>,
    /// See `uid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_link: Option<String>,
    /// See `uid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    /// See `uid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_references: Option<serde_json::Value>,
    /// See `uid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_fields: Option<serde_json::Value>,
}

macro_rules! kinds {
    ($($kind:ident => $group:literal [$($version:literal),+];)+) => {
        /// An Istio resource kind weft understands.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        pub enum Kind { $(
            #[doc = concat!("`", $group, "/", stringify!($kind), "`")]
            $kind,
        )+ }

        impl Kind {
            /// Every kind, in a stable order.
            pub const ALL: &'static [Kind] = &[$(Kind::$kind),+];

            /// The kind's name as written in `kind:`.
            pub fn name(self) -> &'static str {
                match self { $(Kind::$kind => stringify!($kind),)+ }
            }

            /// The API group.
            pub fn group(self) -> &'static str {
                match self { $(Kind::$kind => $group,)+ }
            }

            /// API versions Istio serves for this kind, newest first.
            pub fn versions(self) -> &'static [&'static str] {
                match self { $(Kind::$kind => &[$($version),+],)+ }
            }

            /// Looks a kind up by group and name.
            pub fn lookup(group: &str, name: &str) -> Option<Kind> {
                match (group, name) {
                    $(($group, stringify!($kind)) => Some(Kind::$kind),)+
                    _ => None,
                }
            }
        }

        /// The typed spec of a resource. Boxed: specs range from a few bytes to a kilobyte.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Spec { $(
            #[doc = concat!("A ", stringify!($kind), ".")]
            $kind(Box<$kind>),
        )+ }

        impl Spec {
            /// The spec's kind.
            pub fn kind(&self) -> Kind {
                match self { $(Spec::$kind(_) => Kind::$kind,)+ }
            }

            fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
                match self { $(Spec::$kind(s) => serde_json::to_value(s),)+ }
            }

            fn validate(&self, cx: &mut Checker) {
                match self { $(Spec::$kind(s) => s.validate(cx),)+ }
            }
        }

        $(
            impl KindSpec for $kind {
                const KIND: Kind = Kind::$kind;

                fn from_spec(spec: &Spec) -> Option<&Self> {
                    match spec {
                        Spec::$kind(s) => Some(s.as_ref()),
                        #[allow(unreachable_patterns)]
                        _ => None,
                    }
                }
            }
        )+

        fn decode_spec(kind: Kind, value: serde_json::Value) -> Result<Document<Spec>, DecodeError> {
            match kind { $(
                Kind::$kind => {
                    decode_document::<$kind>(value).map(|d| d.map(|s| Spec::$kind(Box::new(s))))
                }
            )+ }
        }
    };
}

kinds! {
    VirtualService => "networking.istio.io" ["v1", "v1beta1", "v1alpha3"];
    DestinationRule => "networking.istio.io" ["v1", "v1beta1", "v1alpha3"];
    Gateway => "networking.istio.io" ["v1", "v1beta1", "v1alpha3"];
    ServiceEntry => "networking.istio.io" ["v1", "v1beta1", "v1alpha3"];
    WorkloadEntry => "networking.istio.io" ["v1", "v1beta1", "v1alpha3"];
    WorkloadGroup => "networking.istio.io" ["v1", "v1beta1", "v1alpha3"];
    Sidecar => "networking.istio.io" ["v1", "v1beta1", "v1alpha3"];
    PeerAuthentication => "security.istio.io" ["v1", "v1beta1"];
    AuthorizationPolicy => "security.istio.io" ["v1", "v1beta1"];
    RequestAuthentication => "security.istio.io" ["v1", "v1beta1"];
    Telemetry => "telemetry.istio.io" ["v1", "v1alpha1"];
}

/// A spec type with its kind: lets callers ask a collection of resources for one kind, typed.
pub trait KindSpec: Sized {
    /// The kind this spec belongs to.
    const KIND: Kind;
    /// The typed spec if `spec` is of this kind.
    fn from_spec(spec: &Spec) -> Option<&Self>;
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Istio API groups, so the loader can tell "an Istio kind weft lacks" from "not Istio at all".
pub const ISTIO_GROUPS: &[&str] = &[
    "networking.istio.io",
    "security.istio.io",
    "telemetry.istio.io",
    "extensions.istio.io",
    "install.istio.io",
];

/// One configuration resource: envelope plus typed spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// `apiVersion` as written, such as `networking.istio.io/v1beta1`.
    pub api_version: String,
    /// Object metadata, with the namespace defaulted.
    pub meta: ObjectMeta,
    /// The typed spec.
    pub spec: Spec,
    /// `status`, kept opaque: it is written by controllers, never read by weft.
    pub status: Option<serde_json::Value>,
}

impl Resource {
    /// The resource's kind.
    pub fn kind(&self) -> Kind {
        self.spec.kind()
    }

    /// Name.
    pub fn name(&self) -> &str {
        &self.meta.name
    }

    /// Namespace.
    pub fn namespace(&self) -> &str {
        &self.meta.namespace
    }

    /// Kind, namespace and name, for messages.
    pub fn reference(&self) -> crate::diag::ResourceRef {
        crate::diag::ResourceRef {
            kind: self.kind().name().to_owned(),
            namespace: self.meta.namespace.clone(),
            name: self.meta.name.clone(),
        }
    }

    /// Runs schema validation on the whole resource (metadata and spec).
    pub fn validate(&self) -> Vec<crate::validate::FieldIssue> {
        let mut cx = Checker::new("metadata");
        validate_meta(&self.meta, &mut cx);
        let mut spec = Checker::new("spec");
        self.spec.validate(&mut spec);
        let mut issues = cx.into_issues();
        issues.extend(spec.into_issues());
        issues
    }

    /// Decodes a resource from a generic value with `apiVersion` and `kind` already checked to be
    /// a kind weft implements. Errors name the offending field path.
    pub fn from_value(kind: Kind, value: serde_json::Value) -> Result<Resource, DecodeError> {
        let doc = decode_spec(kind, value)?;
        Ok(Resource {
            api_version: doc.api_version,
            meta: doc.metadata,
            spec: doc.spec,
            status: doc.status,
        })
    }

    /// The resource as a generic value shaped like its YAML (`apiVersion`, `kind`, `metadata`,
    /// `spec`, `status`).
    pub fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        let mut map = serde_json::Map::new();
        map.insert("apiVersion".into(), self.api_version.clone().into());
        map.insert("kind".into(), self.kind().name().into());
        map.insert("metadata".into(), serde_json::to_value(&self.meta)?);
        map.insert("spec".into(), self.spec.to_value()?);
        if let Some(status) = &self.status {
            map.insert("status".into(), status.clone());
        }
        Ok(serde_json::Value::Object(map))
    }
}

impl Serialize for Resource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value()
            .map_err(serde::ser::Error::custom)?
            .serialize(s)
    }
}

/// Why a document could not be decoded into a typed resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct DecodeError {
    /// Path of the offending field, such as `spec.http[0].match[0].urii`.
    pub path: String,
    /// What serde reported, such as "unknown field `urii`, expected one of ...".
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Document<T> {
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: T,
    #[serde(default)]
    status: Option<serde_json::Value>,
}

impl<T> Document<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Document<U> {
        Document {
            api_version: self.api_version,
            kind: self.kind,
            metadata: self.metadata,
            spec: f(self.spec),
            status: self.status,
        }
    }
}

fn decode_document<T: DeserializeOwned + Default>(
    value: serde_json::Value,
) -> Result<Document<T>, DecodeError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        DecodeError {
            // serde_path_to_error renders the root as ".".
            path: if path == "." { String::new() } else { path },
            message: e.into_inner().to_string(),
        }
    })
}

fn validate_meta(meta: &ObjectMeta, cx: &mut Checker) {
    use crate::validate::rules;
    cx.field("name", |cx| {
        if meta.name.is_empty() {
            cx.error("metadata.name is required");
        } else if !is_dns1123_subdomain(&meta.name) {
            cx.error(format!(
                "name {:?} is not a valid DNS-1123 subdomain (lowercase letters, digits, '-' and '.')",
                meta.name
            ));
        }
    });
    cx.field("namespace", |cx| {
        let valid = rules::is_dns1123_label(&meta.namespace)
            && meta.namespace == meta.namespace.to_ascii_lowercase();
        if !meta.namespace.is_empty() && !valid {
            cx.error(format!(
                "namespace {:?} is not a valid DNS-1123 label",
                meta.namespace
            ));
        }
    });
    cx.field("labels", |cx| rules::check_labels(cx, &meta.labels));
}

/// Whether `s` is a Kubernetes object name (lowercase DNS-1123 subdomain).
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s == s.to_ascii_lowercase()
        && s.split('.').all(crate::validate::rules::is_dns1123_label)
}
