//! Istio-compatible configuration for weft.
//!
//! - [`meta`]: the Kubernetes envelope ([`Resource`], [`Kind`], [`ObjectMeta`]).
//! - [`networking`], [`security`], [`telemetry`]: typed specs, one module per Istio kind.
//! - [`load`]: files and directories of YAML/JSON into resources, with line numbers.
//! - [`validate`]: per-resource schema checks (cross-resource analysis lives in `weft-analyze`).
//! - [`diag`]: findings with Istio's analyzer codes.
//!
//! External input becomes typed structs here, once; nothing downstream sees raw YAML.

pub mod common;
pub mod diag;
pub mod load;
pub mod meta;
pub mod networking;
pub mod security;
pub mod telemetry;
pub mod validate;

pub use diag::{Finding, Severity};
pub use load::{Loaded, Loader, Source};
pub use meta::{Kind, KindSpec, ObjectMeta, Resource, Spec};
