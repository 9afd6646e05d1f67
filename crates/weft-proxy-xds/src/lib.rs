//! The weft proxy's xDS client: it fetches listeners, routes, clusters and endpoints from a
//! control plane over ADS (`StreamAggregatedResources`, state of the world) and applies them to
//! a running [`weft_proxy::Proxy`], the way Envoy does with `dynamic_resources`.
//!
//! - [`XdsState`]: the protocol without I/O (subscriptions, ACK/NACK, warming), unit-tested.
//! - [`AdsClient`]: the gRPC stream, reconnection with jittered exponential backoff, and
//!   applying each new configuration through [`weft_proxy::Proxy::apply`], which keeps
//!   unchanged listeners and clusters (and in-flight requests) untouched.
//! - [`XdsStats`]: its counters, reported by the admin `/stats`.

mod client;
mod state;
mod stats;

pub use client::{AdsClient, Backoff};
pub use state::{Outcome, XdsState};
pub use stats::XdsStats;
