//! `PeerAuthentication`: the mTLS mode workloads accept, after
//! `security/v1beta1/peer_authentication.proto`. Validation mirrors Istio's
//! `ValidatePeerAuthentication`.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::authorization_policy::check_selector;
use crate::common::WorkloadSelector;
use crate::validate::rules;
use crate::validate::{Checker, Validate};

/// How traffic to the selected workloads is tunneled (or not) with mutual TLS.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PeerAuthentication {
    /// Workloads the policy applies to; all workloads of the namespace (or of the mesh, in the
    /// root namespace) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// Mutual TLS settings for the workload; inherited from the parent when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<MutualTls>,
    /// Per-port settings, keyed by the workload's port (not the Service port). Only applies with
    /// a selector. YAML keys are strings (`"8080"`); they are parsed into numbers on load.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "port_level_mtls"
    )]
    pub port_level_mtls: BTreeMap<u32, MutualTls>,
}

/// Mutual TLS settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MutualTls {
    /// The mTLS mode.
    #[serde(default)]
    pub mode: MtlsMode,
}

/// The mTLS mode used for peer authentication.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MtlsMode {
    /// Inherit from the parent, if any; otherwise treated as `PERMISSIVE`.
    #[default]
    Unset,
    /// Plaintext only: the connection is not tunneled.
    Disable,
    /// Either plaintext or mTLS.
    Permissive,
    /// mTLS only: the client must present a certificate.
    Strict,
}

impl PeerAuthentication {
    /// Whether the policy applies to a whole namespace (or the mesh): no selector labels.
    pub fn is_namespace_wide(&self) -> bool {
        self.selector
            .as_ref()
            .is_none_or(|s| s.match_labels.is_empty())
    }
}

impl Validate for PeerAuthentication {
    fn validate(&self, cx: &mut Checker) {
        check_selector(cx, self.selector.as_ref());
        if self.is_namespace_wide() && !self.port_level_mtls.is_empty() {
            cx.error_at(
                "portLevelMtls",
                "a mesh- or namespace-wide PeerAuthentication cannot have portLevelMtls; add selector.matchLabels naming the workloads the ports belong to",
            );
        }
        cx.field("portLevelMtls", |cx| {
            for port in self.port_level_mtls.keys() {
                cx.field(&port.to_string(), |cx| rules::check_port(cx, *port));
            }
        });
    }
}

/// Parses `portLevelMtls` keys into port numbers, and rejects an empty map as Istio does.
fn port_level_mtls<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<u32, MutualTls>, D::Error> {
    struct PortMap;

    impl<'de> Visitor<'de> for PortMap {
        type Value = BTreeMap<u32, MutualTls>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map from port numbers to mTLS settings")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut ports = BTreeMap::new();
            while let Some(PortKey(port)) = map.next_key()? {
                let mtls: MutualTls = map.next_value()?;
                if ports.insert(port, mtls).is_some() {
                    return Err(de::Error::custom(format!(
                        "port {port} appears more than once in portLevelMtls"
                    )));
                }
            }
            if ports.is_empty() {
                return Err(de::Error::custom(
                    "portLevelMtls must list at least one port; remove it to use the workload-level mtls",
                ));
            }
            Ok(ports)
        }
    }

    d.deserialize_map(PortMap)
}

/// A `portLevelMtls` key: a string of digits (as in YAML/JSON) or an integer.
struct PortKey(u32);

impl<'de> Deserialize<'de> for PortKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl Visitor<'_> for KeyVisitor {
            type Value = PortKey;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number such as \"8080\"")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<PortKey, E> {
                if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(E::custom(format!(
                        "invalid portLevelMtls key {s:?}: keys must be workload port numbers such as \"8080\", not port names"
                    )));
                }
                s.parse().map(PortKey).map_err(|_| {
                    E::custom(format!(
                        "invalid portLevelMtls key {s:?}: port must be in the range 1..65535"
                    ))
                })
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<PortKey, E> {
                u32::try_from(n).map(PortKey).map_err(|_| {
                    E::custom(format!(
                        "invalid portLevelMtls key {n}: port must be in the range 1..65535"
                    ))
                })
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<PortKey, E> {
                u64::try_from(n)
                    .map_err(|_| {
                        E::custom(format!(
                            "invalid portLevelMtls key {n}: port must be in the range 1..65535"
                        ))
                    })
                    .and_then(|n| self.visit_u64(n))
            }
        }

        d.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests;
