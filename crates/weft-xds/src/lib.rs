//! The control plane's xDS half: Istio resources into Envoy v3 resources, and the Aggregated
//! Discovery Service that serves them.
//!
//! - [`mesh::Mesh`]: one consistent view of the configuration (validated Istio resources and
//!   the service registry built from them). Immutable; a change builds a new one.
//! - [`node::ProxyNode`]: who is asking, parsed from the Envoy `Node` a proxy sends (Istio's
//!   node id and metadata conventions, so Envoy bootstrapped like istio-proxy is understood).
//! - [`translate::translate`]: `(Mesh, ProxyNode)` → [`resources::Resources`] (listeners,
//!   routes, clusters, endpoints) named the way Istio names them. Pure: no IO, no clock.
//! - [`ads`]: the ADS gRPC service, state-of-the-world and delta, with versions, nonces and
//!   per-proxy ACK tracking.

#![forbid(unsafe_code)]

pub mod ads;
pub mod describe;
pub mod fuzzing;
pub mod mesh;
pub mod naming;
pub mod node;
pub mod resources;
pub mod translate;

pub use mesh::{Mesh, MeshOptions};
pub use node::{ProxyKind, ProxyNode};
pub use resources::{Resources, TypeUrl};
