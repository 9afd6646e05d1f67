//! VirtualService references and conflicts:
//! - IST0101: a destination host, host:port, subset or gateway that does not exist;
//! - IST0112: a destination without a port on a service with several;
//! - IST0109: two VirtualServices bound to the mesh defining the same host.

use std::collections::{BTreeMap, BTreeSet};

use weft_api::diag::msg;
use weft_api::networking::virtual_service::Destination;
use weft_api::networking::{DestinationRule, Gateway, VirtualService};
use weft_api::{Finding, Loaded};

use super::Context;
use crate::config::finding;

pub(crate) fn analyze(cx: &Context<'_>, out: &mut Vec<Finding>) {
    for (entry, vs) in cx.config.of::<VirtualService>() {
        for (path, dest) in destinations(vs) {
            check_destination(cx, entry, &path, dest, out);
        }
        for (path, gw) in gateway_refs(vs) {
            if gw != "mesh" && !gateway_exists(cx, gw, entry.resource.namespace()) {
                out.push(finding(
                    entry,
                    msg::REFERENCED_RESOURCE_NOT_FOUND,
                    Some(path),
                    format!("Referenced gateway not found: {gw:?}"),
                ));
            }
        }
    }
    conflicting_mesh_hosts(cx, out);
}

/// Every destination of a VirtualService with its field path.
pub(crate) fn destinations(vs: &VirtualService) -> Vec<(String, &Destination)> {
    let mut out = Vec::new();
    for (i, r) in vs.http.iter().enumerate() {
        for (j, d) in r.route.iter().enumerate() {
            out.push((
                format!("spec.http[{i}].route[{j}].destination"),
                &d.destination,
            ));
        }
        if let Some(m) = &r.mirror {
            out.push((format!("spec.http[{i}].mirror"), m));
        }
        for (j, m) in r.mirrors.iter().enumerate() {
            out.push((
                format!("spec.http[{i}].mirrors[{j}].destination"),
                &m.destination,
            ));
        }
    }
    for (i, r) in vs.tls.iter().enumerate() {
        for (j, d) in r.route.iter().enumerate() {
            out.push((
                format!("spec.tls[{i}].route[{j}].destination"),
                &d.destination,
            ));
        }
    }
    for (i, r) in vs.tcp.iter().enumerate() {
        for (j, d) in r.route.iter().enumerate() {
            out.push((
                format!("spec.tcp[{i}].route[{j}].destination"),
                &d.destination,
            ));
        }
    }
    out
}

/// Gateway names referenced by the VirtualService and its matches, with field paths.
fn gateway_refs(vs: &VirtualService) -> Vec<(String, &str)> {
    let mut out: Vec<(String, &str)> = vs
        .gateways
        .iter()
        .enumerate()
        .map(|(i, g)| (format!("spec.gateways[{i}]"), g.as_str()))
        .collect();
    for (i, r) in vs.http.iter().enumerate() {
        for (j, m) in r.matches.iter().enumerate() {
            for (k, g) in m.gateways.iter().enumerate() {
                out.push((
                    format!("spec.http[{i}].match[{j}].gateways[{k}]"),
                    g.as_str(),
                ));
            }
        }
    }
    for (i, r) in vs.tls.iter().enumerate() {
        for (j, m) in r.matches.iter().enumerate() {
            for (k, g) in m.gateways.iter().enumerate() {
                out.push((
                    format!("spec.tls[{i}].match[{j}].gateways[{k}]"),
                    g.as_str(),
                ));
            }
        }
    }
    for (i, r) in vs.tcp.iter().enumerate() {
        for (j, m) in r.matches.iter().enumerate() {
            for (k, g) in m.gateways.iter().enumerate() {
                out.push((
                    format!("spec.tcp[{i}].match[{j}].gateways[{k}]"),
                    g.as_str(),
                ));
            }
        }
    }
    out
}

/// Resolves a VirtualService gateway reference to (namespace, name): `ns/name`, the legacy
/// `name.namespace[...]`, or a bare name in the VirtualService's namespace.
pub(crate) fn gateway_key(gw: &str, vs_namespace: &str) -> (String, String) {
    if let Some((ns, name)) = gw.split_once('/') {
        return (ns.to_owned(), name.to_owned());
    }
    let mut parts = gw.split('.');
    match (parts.next(), parts.next()) {
        (Some(name), Some(ns)) => (ns.to_owned(), name.to_owned()),
        _ => (vs_namespace.to_owned(), gw.to_owned()),
    }
}

fn gateway_exists(cx: &Context<'_>, gw: &str, vs_namespace: &str) -> bool {
    let (ns, name) = gateway_key(gw, vs_namespace);
    cx.config
        .of::<Gateway>()
        .any(|(e, _)| e.resource.namespace() == ns && e.resource.name() == name)
}

fn check_destination(
    cx: &Context<'_>,
    entry: &Loaded,
    path: &str,
    dest: &Destination,
    out: &mut Vec<Finding>,
) {
    let ns = entry.resource.namespace();
    let host = cx.fqdn(&dest.host, ns);
    let services = cx.registry.lookup(&host, ns);
    let Some(service) = services
        .iter()
        .find(|s| s.hostname.eq_ignore_ascii_case(&host))
        .or_else(|| services.first())
    else {
        out.push(finding(
            entry,
            msg::REFERENCED_RESOURCE_NOT_FOUND,
            Some(format!("{path}.host")),
            format!("Referenced host not found: {:?}", dest.host),
        ));
        return;
    };
    match dest.port {
        None if service.ports.len() > 1 => {
            let ports: Vec<String> = service.ports.iter().map(|p| p.number.to_string()).collect();
            out.push(finding(
                entry,
                msg::VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED,
                Some(path.to_owned()),
                format!(
                    "This VirtualService routes to a service {:?} that exposes multiple ports [{}]. Specifying a port in the destination is required to disambiguate.",
                    dest.host,
                    ports.join(" ")
                ),
            ));
        }
        Some(p)
            if !service
                .ports
                .iter()
                .any(|sp| u32::from(sp.number) == p.number) =>
        {
            out.push(finding(
                entry,
                msg::REFERENCED_RESOURCE_NOT_FOUND,
                Some(format!("{path}.port.number")),
                format!(
                    "Referenced host:port not found: \"{}:{}\"",
                    dest.host, p.number
                ),
            ));
        }
        _ => {}
    }
    if let Some(subset) = dest.subset.as_deref()
        && !subset_defined(cx, &host, ns, subset)
    {
        out.push(finding(
            entry,
            msg::REFERENCED_RESOURCE_NOT_FOUND,
            Some(format!("{path}.subset")),
            format!(
                "Referenced host+subset in destinationrule not found: \"{}+{subset}\"",
                dest.host
            ),
        ));
    }
}

/// Whether a DestinationRule visible from `namespace` for `host` defines `subset`.
fn subset_defined(cx: &Context<'_>, host: &str, namespace: &str, subset: &str) -> bool {
    cx.config.of::<DestinationRule>().any(|(e, dr)| {
        let dr_ns = e.resource.namespace();
        let dr_host = cx.fqdn(&dr.host, dr_ns);
        exported_to(&dr.export_to, dr_ns, namespace)
            && weft_registry::host_matches(&dr_host, host)
            && dr.subsets.iter().any(|s| s.name == subset)
    })
}

/// Whether a resource in `own` with `exportTo` values is visible from `namespace`.
pub(crate) fn exported_to(export_to: &[String], own: &str, namespace: &str) -> bool {
    export_to.is_empty()
        || export_to
            .iter()
            .any(|v| v == "*" || v == namespace || (v == "." && own == namespace))
}

/// The namespaces a resource is visible from; `None` means all of them.
fn visibility(export_to: &[String], own: &str) -> Option<BTreeSet<String>> {
    if export_to.is_empty() || export_to.iter().any(|v| v == "*") {
        return None;
    }
    Some(
        export_to
            .iter()
            .filter(|v| *v != "~")
            .map(|v| if v == "." { own.to_owned() } else { v.clone() })
            .collect(),
    )
}

fn overlap(a: &Option<BTreeSet<String>>, b: &Option<BTreeSet<String>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (None, Some(s)) | (Some(s), None) => !s.is_empty(),
        (Some(x), Some(y)) => !x.is_disjoint(y),
    }
}

/// IST0109: sidecars apply only one VirtualService per host, so two bound to the mesh that
/// define the same host (and are visible to a common namespace) make the outcome undefined.
fn conflicting_mesh_hosts(cx: &Context<'_>, out: &mut Vec<Finding>) {
    // host → (VirtualService, index in spec.hosts, namespaces it is visible from)
    type Users<'a> = Vec<(&'a Loaded, usize, Option<BTreeSet<String>>)>;
    let mut by_host: BTreeMap<String, Users<'_>> = BTreeMap::new();
    for (entry, vs) in cx.config.of::<VirtualService>() {
        let mesh = vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == "mesh");
        if !mesh {
            continue;
        }
        let ns = entry.resource.namespace();
        let vis = visibility(&vs.export_to, ns);
        for (i, h) in vs.hosts.iter().enumerate() {
            by_host
                .entry(cx.fqdn(h, ns))
                .or_default()
                .push((entry, i, vis.clone()));
        }
    }
    for (host, users) in by_host {
        for (k, (entry, i, vis)) in users.iter().enumerate() {
            let others: Vec<String> = users
                .iter()
                .enumerate()
                .filter(|(j, (e, _, v))| *j != k && !std::ptr::eq(*e, *entry) && overlap(vis, v))
                .map(|(_, (e, _, _))| format!("{}/{}", e.resource.namespace(), e.resource.name()))
                .collect();
            if others.is_empty() {
                continue;
            }
            let mut all = vec![format!(
                "{}/{}",
                entry.resource.namespace(),
                entry.resource.name()
            )];
            all.extend(others);
            all.sort();
            out.push(finding(
                entry,
                msg::CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS,
                Some(format!("spec.hosts[{i}]")),
                format!(
                    "The VirtualServices {} associated with mesh gateway define the same host {host} which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource.",
                    all.join(",")
                ),
            ));
        }
    }
}
