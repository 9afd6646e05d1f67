//! `telemetry.istio.io`: metrics, tracing and access logging configuration.

#[allow(clippy::module_inception)]
pub mod telemetry;

pub use telemetry::Telemetry;
