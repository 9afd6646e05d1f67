//! The analyzers. Each is a plain function over a [`Context`]; adding one means adding it to
//! [`run_all`].

mod destination_rule;
mod duplicates;
mod gateway;
mod policy_selectors;
mod schema;
mod service_entry;
mod shadowing;
mod virtual_service;

use weft_api::Finding;
use weft_registry::{Registry, resolve_short_name};

use crate::ConfigSet;

/// What every analyzer may look at.
pub(crate) struct Context<'a> {
    pub(crate) config: &'a ConfigSet,
    pub(crate) registry: Registry,
}

impl Context<'_> {
    /// A host as written in a resource of `namespace`, expanded to a full name.
    pub(crate) fn fqdn(&self, host: &str, namespace: &str) -> String {
        resolve_short_name(host, namespace)
    }
}

pub(crate) fn run_all(config: &ConfigSet, out: &mut Vec<Finding>) {
    schema::analyze(config, out);
    duplicates::analyze(config, out);
    let (registry, _issues) =
        Registry::from_resources(config.entries().iter().map(|e| &e.resource));
    let cx = Context { config, registry };
    virtual_service::analyze(&cx, out);
    shadowing::analyze(&cx, out);
    destination_rule::analyze(&cx, out);
    gateway::analyze(&cx, out);
    policy_selectors::analyze(&cx, out);
    service_entry::analyze(&cx, out);
}
