//! Envoy configuration for the weft proxy (being built).
