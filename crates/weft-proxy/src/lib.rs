//! The weft proxy: Envoy-compatible listeners, HTTP routing, load balancing and resilience.

pub mod listener;
