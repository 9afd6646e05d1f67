//! Envoy configuration for the weft proxy: bootstrap files into envoy-types structs, with the
//! verdicts of Envoy 1.40 (`envoy --mode validate`) and errors that name file, line and field.
//!
//! - [`parse_bootstrap`]: YAML/JSON → `Bootstrap`, unknown fields, `Any`s and `validate.rules`
//!   checked at every depth.
//! - [`unpack`]: an extension's `typed_config` into its concrete type (TypedStruct included).
//! - [`pgv::validate`]: the `validate.rules` checker, for messages that arrive another way (xDS).
//! - [`model`]: weft's own typed proxy configuration, what the data plane runs.
//! - [`convert_bootstrap`], [`load_bootstrap`]: a `Bootstrap` into that model, with Envoy's
//!   defaults applied, Envoy's load-time checks made, and every unsupported field rejected.
//! - [`xds`]: resources from a control plane (ADS), checked the same way and converted with
//!   the bootstrap's static resources, errors naming the one resource at fault.

#![forbid(unsafe_code)]

mod any;
pub mod convert;
#[cfg(test)]
mod descriptor_roots;
mod descriptors;
mod dump;
mod error;
pub mod fuzzing;
pub mod model;
mod parse;
pub mod pgv;
pub mod xds;

pub use any::unpack;
pub use convert::{convert_bootstrap, load_bootstrap};
pub use descriptors::{message, pool, release_idle as release_idle_descriptors};
pub use dump::{DynamicDump, config_dump, config_dump_with, message_json};
pub use error::{ConfigError, ErrorKind};
pub use parse::parse_bootstrap;
pub use xds::{XdsError, XdsResources, convert_xds};
