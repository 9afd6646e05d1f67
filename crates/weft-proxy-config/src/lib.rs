//! Envoy configuration for the weft proxy: Envoy v3 bootstraps (and later xDS resources) into
//! weft's own typed [`model`].

pub mod model;
