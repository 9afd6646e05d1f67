//! One consistent view of the mesh's configuration, which translation reads.

use weft_analyze::ConfigSet;
use weft_registry::Registry;

/// Mesh-wide settings (Istio's MeshConfig, the parts weft reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshOptions {
    /// The root namespace: Sidecar, DestinationRule and policies here apply mesh-wide
    /// (`istio-system`).
    pub root_namespace: String,
    /// What sidecars do with traffic to hosts the registry does not know.
    pub outbound_traffic_policy: OutboundTrafficPolicy,
    /// Cluster-local DNS suffix (`cluster.local`).
    pub domain_suffix: String,
    /// Connect timeout for clusters that set none (Istio's `connectTimeout`, 10s).
    pub connect_timeout: std::time::Duration,
}

impl Default for MeshOptions {
    fn default() -> Self {
        Self {
            root_namespace: "istio-system".to_owned(),
            outbound_traffic_policy: OutboundTrafficPolicy::AllowAny,
            domain_suffix: "cluster.local".to_owned(),
            connect_timeout: std::time::Duration::from_secs(10),
        }
    }
}

/// `meshConfig.outboundTrafficPolicy.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundTrafficPolicy {
    /// Unknown destinations pass through (`PassthroughCluster`).
    AllowAny,
    /// Unknown destinations are dropped (`BlackHoleCluster`, 502 for HTTP).
    RegistryOnly,
}

/// The configuration translation reads: valid Istio resources and the registry built from
/// their ServiceEntries and WorkloadEntries. Immutable; every change builds a new `Mesh`.
#[derive(Debug, Clone, Default)]
pub struct Mesh {
    /// The resources (only ones that passed validation).
    pub config: ConfigSet,
    /// Services and workloads.
    pub registry: Registry,
    /// Mesh-wide settings.
    pub options: MeshOptions,
}

impl Mesh {
    /// A mesh from validated resources; the registry is built from them.
    pub fn new(config: ConfigSet, options: MeshOptions) -> Mesh {
        let (registry, _issues) =
            Registry::from_resources(config.entries().iter().map(|e| &e.resource));
        Mesh {
            config,
            registry,
            options,
        }
    }
}
