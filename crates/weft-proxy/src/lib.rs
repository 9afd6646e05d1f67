//! The weft proxy: Envoy-compatible listeners, HTTP routing, load balancing and resilience.

pub mod admin;
pub mod coalesce;
pub mod error;
pub mod fuzzing;
pub mod http;
pub mod io;
pub mod listener;
pub mod proxy;
pub mod pump;
pub mod state;
pub mod stats_export;
pub mod tcp_proxy;
pub mod tls;
mod tls_glue;
pub mod upstream;
pub mod watch;

pub use proxy::{ApplyError, Proxy, StatSource, TlsOwner};

/// The body type on both sides of the proxy: streaming, boxed once per message.
pub type Body = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, BoxError>;

/// Errors inside bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
