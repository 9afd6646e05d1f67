//! `(Mesh, ProxyNode)` → the Envoy resources that proxy needs. Pure: no IO, no clock, output
//! determined by the input alone (sorted where Istio's order is not meaningful), so the ADS
//! server can compare translations to decide what changed.
//!
//! - [`scope`]: what this proxy can see and where it listens (its workload, the Sidecar resource
//!   that applies, visible services after egress scoping, inbound ports, gateway servers).
//! - [`listener`]: sidecar listeners (virtual outbound 15001, virtual inbound 15006, per-port
//!   outbound listeners, `captureMode: NONE` egress/ingress listeners).
//! - [`gateway`]: router listeners from Gateway servers.
//! - [`grpc`]: proxyless gRPC `api_listener`s.
//! - [`protocol`]: which filter chain serves a port (declared protocol, port name, detection).
//! - [`filters`]: Envoy building blocks shared by the listener kinds.
//! - [`route`]: RouteConfigurations from VirtualServices.
//! - [`cluster`]: clusters from services and DestinationRules.
//! - [`endpoint`]: ClusterLoadAssignments from the registry.

pub mod cluster;
pub mod endpoint;
pub mod filters;
pub mod gateway;
pub mod grpc;
pub mod listener;
pub mod protocol;
pub mod route;
pub mod scope;
#[cfg(test)]
pub(crate) mod testing;

pub use scope::Scope;

use crate::mesh::Mesh;
use crate::node::{Generator, ProxyKind, ProxyNode};
use crate::resources::Resources;

/// Everything `node` needs.
pub fn translate(mesh: &Mesh, node: &ProxyNode) -> Resources {
    let scope = Scope::new(mesh, node);
    let mut out = match (node.generator, node.kind) {
        (Generator::Grpc, _) => grpc::resources(&scope),
        (Generator::Envoy, ProxyKind::Router) => gateway::resources(&scope),
        (Generator::Envoy, ProxyKind::Sidecar) => listener::sidecar_resources(&scope),
    };
    out.endpoints = endpoint::endpoints(&scope, &out.clusters);
    out
}
