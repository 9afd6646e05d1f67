//! Clusters from services and DestinationRules.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;

use super::Scope;
use super::scope::InboundPort;

/// Outbound clusters: every visible service port, once plain and once per DestinationRule
/// subset, plus `BlackHoleCluster` and `PassthroughCluster`.
pub fn outbound_clusters(_scope: &Scope<'_>) -> Vec<Cluster> {
    Vec::new()
}

/// `inbound|<port>||` clusters to the proxy's own application.
pub fn inbound_clusters(_scope: &Scope<'_>, _ports: &[InboundPort]) -> Vec<Cluster> {
    Vec::new()
}
