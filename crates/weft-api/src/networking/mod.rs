//! `networking.istio.io`: traffic routing and the service registry's Istio sources.
//!
//! Types follow Istio's protos (`networking/v1alpha3/*.proto`, served unchanged as v1beta1 and
//! v1) field by field, with the protobuf JSON names (camelCase) Istio's CRDs accept.

pub mod destination_rule;
pub mod gateway;
pub mod service_entry;
pub mod sidecar;
pub mod virtual_service;
pub mod workload_entry;

pub use destination_rule::DestinationRule;
pub use gateway::Gateway;
pub use service_entry::ServiceEntry;
pub use sidecar::Sidecar;
pub use virtual_service::VirtualService;
pub use workload_entry::{WorkloadEntry, WorkloadGroup};
