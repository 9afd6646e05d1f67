//! ClusterLoadAssignments from the registry: endpoints grouped by locality, weighted, and
//! prioritised relative to the proxy's locality as Istio's locality load balancing does
//! (`pilot/pkg/networking/core/loadbalancer`).

mod locality;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use envoy_types::pb::envoy::config::cluster::v3::cluster::DiscoveryType;
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster::ClusterDiscoveryType};
use envoy_types::pb::envoy::config::core::v3::{
    Address as PbAddress, Pipe, SocketAddress, address, socket_address::PortSpecifier,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint as PbEndpoint, LbEndpoint, LocalityLbEndpoints,
    lb_endpoint::HostIdentifier,
};
use envoy_types::pb::google::protobuf::UInt32Value;
use weft_registry::{Address, Endpoint, Locality};

use super::Scope;
use super::cluster::{self, Policy};
use crate::naming::{self, Direction};

pub(crate) use locality::Labels;
use locality::pb_locality;

/// Which workload addresses a load assignment can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddressKind {
    /// EDS: IP addresses and Unix sockets (as pipes).
    Eds,
    /// STRICT_DNS / LOGICAL_DNS: IP addresses and host names the proxy resolves.
    Dns,
}

/// ClusterLoadAssignments for every EDS cluster among `clusters`, in their order. A cluster
/// whose service is no longer visible gets an empty assignment, so the proxy drops its
/// endpoints instead of waiting for them.
pub fn endpoints(scope: &Scope<'_>, clusters: &[Cluster]) -> Vec<ClusterLoadAssignment> {
    let services = cluster::outbound_services(scope);
    clusters
        .iter()
        .filter(|c| {
            matches!(c.cluster_discovery_type,
                Some(ClusterDiscoveryType::Type(t)) if t == DiscoveryType::Eds as i32)
        })
        .map(|c| {
            let name = c
                .eds_cluster_config
                .as_ref()
                .map(|e| e.service_name.as_str())
                .filter(|n| !n.is_empty())
                .unwrap_or(&c.name);
            let empty = || ClusterLoadAssignment {
                cluster_name: name.to_owned(),
                ..Default::default()
            };
            let Some((Direction::Outbound, port, subset, host)) = naming::parse_cluster_name(name)
            else {
                return empty();
            };
            let Some(service) = services
                .iter()
                .find(|s| s.hostname == host && s.port(port).is_some())
            else {
                return empty();
            };
            let rule = scope.destination_rule(&service.hostname, &service.namespace);
            let policy = cluster::cluster_policy(rule, port, subset);
            let eps = match cluster::subset_labels(rule, subset) {
                Some(labels) => scope.mesh.registry.subset_endpoints(service, port, &labels),
                None => scope.mesh.registry.endpoints(service, port),
            };
            load_assignment(scope, name, &eps, AddressKind::Eds, &policy)
        })
        .collect()
}

/// The load assignment of cluster `name` over `eps`: one `LocalityLbEndpoints` per workload
/// locality (sorted by locality), each endpoint weighted by its workload's weight and each
/// locality by the sum of its endpoints' weights; then the locality settings of `policy`
/// (weights from `distribute`; priorities from `failoverPriority` and `failover`, only when
/// outlier detection is configured).
pub(crate) fn load_assignment(
    scope: &Scope<'_>,
    name: &str,
    eps: &[Endpoint<'_>],
    kind: AddressKind,
    policy: &Policy<'_>,
) -> ClusterLoadAssignment {
    let mut groups: BTreeMap<&Locality, (Vec<LbEndpoint>, Vec<Labels>)> = BTreeMap::new();
    for e in eps {
        let Some(address) = endpoint_address(&e.workload.address, e.port, kind) else {
            continue;
        };
        let group = groups.entry(&e.workload.locality).or_default();
        group.0.push(LbEndpoint {
            host_identifier: Some(HostIdentifier::Endpoint(PbEndpoint {
                address: Some(address),
                ..Default::default()
            })),
            load_balancing_weight: Some(UInt32Value {
                value: e.workload.weight.max(1),
            }),
            ..Default::default()
        });
        group.1.push(locality::endpoint_labels(&e.workload));
    }
    let mut localities = Vec::with_capacity(groups.len());
    let mut labels = Vec::with_capacity(groups.len());
    for (loc, (lb_endpoints, l)) in groups {
        let weight: u32 = lb_endpoints
            .iter()
            .filter_map(|e| e.load_balancing_weight.as_ref())
            .fold(0u32, |acc, w| acc.saturating_add(w.value));
        localities.push(LocalityLbEndpoints {
            locality: Some(pb_locality(loc)),
            lb_endpoints,
            load_balancing_weight: Some(UInt32Value { value: weight }),
            ..Default::default()
        });
        labels.push(l);
    }
    let mut la = ClusterLoadAssignment {
        cluster_name: name.to_owned(),
        endpoints: localities,
        ..Default::default()
    };
    if let Some(setting) = policy.locality_setting() {
        locality::apply(
            &mut la,
            &labels,
            &scope.node.locality,
            &locality::proxy_labels(scope),
            &setting,
            policy.failover_enabled(),
        );
    }
    la
}

/// A load assignment with one endpoint, for a cluster to the proxy's own application.
pub(crate) fn single_endpoint(name: &str, addr: SocketAddr) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: name.to_owned(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: vec![LbEndpoint {
                host_identifier: Some(HostIdentifier::Endpoint(PbEndpoint {
                    address: Some(socket_address(&addr.ip().to_string(), addr.port())),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The Envoy address of a workload, or `None` when this kind of cluster cannot use it (host
/// names outside DNS clusters, Unix sockets in DNS clusters, workloads reached only through a
/// network gateway).
fn endpoint_address(a: &Address, port: u16, kind: AddressKind) -> Option<PbAddress> {
    match (a, kind) {
        (Address::Ip(ip), _) => Some(socket_address(&ip.to_string(), port)),
        (Address::Hostname(h), AddressKind::Dns) => Some(socket_address(h, port)),
        (Address::Unix(path), AddressKind::Eds) => Some(PbAddress {
            address: Some(address::Address::Pipe(Pipe {
                path: path.clone(),
                mode: 0,
            })),
        }),
        _ => None,
    }
}

fn socket_address(host: &str, port: u16) -> PbAddress {
    PbAddress {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: host.to_owned(),
            port_specifier: Some(PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}

#[cfg(test)]
mod tests;
