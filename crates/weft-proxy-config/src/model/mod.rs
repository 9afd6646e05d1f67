//! weft's own typed proxy configuration: what the data plane runs.
//!
//! Envoy protobufs become these structs in [`crate::convert`], once, with every default applied
//! and every unsupported feature rejected; the data plane never sees a protobuf. Route tables
//! live in `weft-proxy-route` and load-balancer settings in `weft-proxy-lb`, whose types are used
//! here directly.

mod cluster;
mod listener;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

pub use cluster::*;
pub use listener::*;
pub use tls::*;

/// A whole proxy configuration (from a bootstrap, later also from xDS).
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Who this proxy is.
    pub node: Node,
    /// The admin server, if any.
    pub admin: Option<Admin>,
    /// Listeners, in configuration order.
    pub listeners: Vec<Arc<Listener>>,
    /// Clusters by configuration order; names are unique.
    pub clusters: Vec<Arc<Cluster>>,
}

impl ProxyConfig {
    /// The cluster named `name`.
    pub fn cluster(&self, name: &str) -> Option<&Arc<Cluster>> {
        self.clusters.iter().find(|c| c.name == name)
    }
}

/// The bootstrap's `node`: identity reported to the control plane and in stats.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Node {
    /// `node.id`.
    pub id: String,
    /// `node.cluster`.
    pub cluster: String,
    /// `node.locality`.
    pub locality: Locality,
    /// `node.metadata`, as JSON: what the control plane reads to know the workload (Istio's
    /// `NAMESPACE`, `LABELS`, `INSTANCE_IPS`...).
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The name the proxy reports to the control plane: always [`USER_AGENT_NAME`], as Envoy
    /// always reports `envoy` whatever the bootstrap says.
    pub user_agent_name: String,
}

/// What weft reports as `node.user_agent_name`.
pub const USER_AGENT_NAME: &str = "weft";

/// The admin interface (`/ready`, `/stats/prometheus`, `/config_dump`...).
#[derive(Debug, Clone, PartialEq)]
pub struct Admin {
    /// Where it listens.
    pub address: SocketAddr,
}

/// `region/zone/sub_zone`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Locality {
    /// Region.
    pub region: String,
    /// Zone.
    pub zone: String,
    /// Sub-zone.
    pub sub_zone: String,
}

/// An IP prefix (`CidrRange`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CidrRange {
    /// Network address.
    pub address: std::net::IpAddr,
    /// Prefix length in bits.
    pub prefix_len: u8,
}

impl CidrRange {
    /// Whether `ip` is inside the range. IPv4 ranges never contain IPv6 addresses and back.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        match (self.address, ip) {
            (V4(net), V4(ip)) => {
                let bits = u32::from(self.prefix_len.min(32));
                let mask = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - bits)
                };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (V6(net), V6(ip)) => {
                let bits = u32::from(self.prefix_len.min(128));
                let mask = if bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - bits)
                };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Where bytes (certificates, keys, CA bundles) come from. Files are read when a TLS context is
/// built and re-read on change, so certificates can rotate without a restart.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DataSource {
    /// A file path.
    File(std::path::PathBuf),
    /// Inline bytes.
    Inline(Vec<u8>),
    /// An environment variable's value.
    Env(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_contains() {
        let r = CidrRange {
            address: "10.1.0.0".parse().unwrap(),
            prefix_len: 16,
        };
        assert!(r.contains("10.1.200.3".parse().unwrap()));
        assert!(!r.contains("10.2.0.1".parse().unwrap()));
        assert!(!r.contains("::1".parse().unwrap()));
        let all = CidrRange {
            address: "0.0.0.0".parse().unwrap(),
            prefix_len: 0,
        };
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        let v6 = CidrRange {
            address: "2001:db8::".parse().unwrap(),
            prefix_len: 32,
        };
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::".parse().unwrap()));
    }
}
