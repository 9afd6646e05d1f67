//! weft's service registry: services, the workloads behind them, and the endpoints a proxy
//! balances over.
//!
//! The model is independent of where services come from. Today [`Registry::from_resources`]
//! builds it from Istio's ServiceEntry and WorkloadEntry (a mesh without Kubernetes); Kubernetes
//! Services and EndpointSlices will produce the same [`Service`] and [`Workload`] values.
//! Everything here is pure data and lookups: no IO, no clocks.

mod istio;
mod model;

pub use istio::{BuildIssue, DEFAULT_DOMAIN_SUFFIX, resolve_short_name};
pub use model::{
    Address, Endpoint, ExportTo, Locality, Port, Registry, Service, ServiceSource, Workload,
    WorkloadSource, host_matches,
};
pub use weft_api::networking::service_entry::{Protocol, Resolution};
