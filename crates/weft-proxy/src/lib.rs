//! The weft proxy: Envoy-compatible listeners, HTTP routing, load balancing and resilience.

pub mod error;
pub mod io;
pub mod listener;
pub mod tls;
pub mod upstream;

/// The body type on both sides of the proxy: streaming, boxed once per message.
pub type Body = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, BoxError>;

/// Errors inside bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
