//! Building the registry from Istio's ServiceEntry and WorkloadEntry.

use std::collections::BTreeSet;
use std::net::IpAddr;

use weft_api::diag::ResourceRef;
use weft_api::networking::service_entry::Location;
use weft_api::networking::{ServiceEntry, WorkloadEntry};
use weft_api::{Resource, Spec};

use crate::model::{
    Address, ExportTo, Locality, Port, Registry, Service, ServiceSource, Workload, WorkloadSource,
};

/// The cluster domain suffix short names expand with, as in Istio's default mesh config.
pub const DEFAULT_DOMAIN_SUFFIX: &str = "cluster.local";

/// Expands a short host name the way Istio does for hosts in VirtualServices and
/// DestinationRules: `reviews` in namespace `bookinfo` means
/// `reviews.bookinfo.svc.cluster.local`. Names with a dot, and `*`, are left alone.
pub fn resolve_short_name(host: &str, namespace: &str) -> String {
    if host.contains('.') || host == "*" || host.is_empty() {
        host.to_owned()
    } else {
        format!("{host}.{namespace}.svc.{DEFAULT_DOMAIN_SUFFIX}")
    }
}

/// Something in a ServiceEntry or WorkloadEntry the registry could not use (schema validation
/// reports the same problem with a line number; this says what the registry did about it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildIssue {
    /// The resource.
    pub resource: ResourceRef,
    /// What was skipped and why.
    pub message: String,
}

impl Registry {
    /// Builds the registry from every ServiceEntry and WorkloadEntry among `resources`.
    /// Pieces that cannot be used (a port number over 65535...) are skipped and reported.
    pub fn from_resources<'a>(
        resources: impl IntoIterator<Item = &'a Resource>,
    ) -> (Registry, Vec<BuildIssue>) {
        let mut reg = Registry::default();
        let mut issues = Vec::new();
        for r in resources {
            match &r.spec {
                Spec::ServiceEntry(se) => add_service_entry(&mut reg, &mut issues, r, se),
                Spec::WorkloadEntry(we) => {
                    let source = WorkloadSource::WorkloadEntry {
                        name: r.name().to_owned(),
                    };
                    let w = workload(&mut issues, r, r.name(), we, source);
                    reg.workloads.push(w);
                }
                _ => {}
            }
        }
        (reg, issues)
    }
}

fn add_service_entry(
    reg: &mut Registry,
    issues: &mut Vec<BuildIssue>,
    r: &Resource,
    se: &ServiceEntry,
) {
    let mut ports = Vec::new();
    for p in &se.ports {
        let (Ok(number), target) = (u16::try_from(p.number), p.target_port.map(u16::try_from))
        else {
            issue(
                issues,
                r,
                format!("port {} is out of range; skipped", p.number),
            );
            continue;
        };
        let target_port = match target {
            None => None,
            Some(Ok(t)) => Some(t),
            Some(Err(_)) => {
                issue(
                    issues,
                    r,
                    format!("targetPort of port {number} is out of range; skipped"),
                );
                continue;
            }
        };
        ports.push(Port {
            name: p.name.clone(),
            number,
            protocol: p.protocol(),
            target_port,
        });
    }
    let export_to = export_to(&se.export_to, r.namespace());
    let selector = se.workload_selector.as_ref().map(|s| s.labels.clone());
    for host in &se.hosts {
        reg.services.push(Service {
            hostname: host.clone(),
            namespace: r.namespace().to_owned(),
            source: ServiceSource::ServiceEntry {
                name: r.name().to_owned(),
            },
            addresses: se.addresses.clone(),
            ports: ports.clone(),
            resolution: se.resolution(),
            mesh_external: se.location() == Location::MeshExternal,
            export_to: export_to.clone(),
            subject_alt_names: se.subject_alt_names.clone(),
            selector: selector.clone(),
        });
    }
    for (index, ep) in se.endpoints.iter().enumerate() {
        let source = WorkloadSource::Inline {
            service_entry: r.name().to_owned(),
            index,
        };
        let name = format!("{}-{index}", r.name());
        let w = workload(issues, r, &name, ep, source);
        reg.workloads.push(w);
    }
}

fn workload(
    issues: &mut Vec<BuildIssue>,
    r: &Resource,
    name: &str,
    we: &WorkloadEntry,
    source: WorkloadSource,
) -> Workload {
    let mut ports = std::collections::BTreeMap::new();
    for (port_name, n) in &we.ports {
        match u16::try_from(*n) {
            Ok(n) => {
                ports.insert(port_name.clone(), n);
            }
            Err(_) => issue(
                issues,
                r,
                format!("port {port_name}={n} is out of range; skipped"),
            ),
        }
    }
    Workload {
        name: name.to_owned(),
        namespace: r.namespace().to_owned(),
        address: address(&we.address),
        ports,
        labels: we.labels.clone(),
        service_account: we.service_account.clone(),
        locality: Locality::parse(&we.locality),
        network: we.network.clone(),
        weight: we.weight.filter(|w| *w > 0).unwrap_or(1),
        source,
    }
}

fn address(s: &str) -> Address {
    if let Some(path) = s.strip_prefix(weft_api::networking::workload_entry::UNIX_ADDRESS_PREFIX) {
        Address::Unix(path.to_owned())
    } else if let Ok(ip) = s.parse::<IpAddr>() {
        Address::Ip(ip)
    } else if s.is_empty() {
        Address::None
    } else {
        Address::Hostname(s.to_owned())
    }
}

fn export_to(values: &[String], own: &str) -> ExportTo {
    if values.is_empty() || values.iter().any(|v| v == "*") {
        return ExportTo::All;
    }
    if values.iter().all(|v| v == "~") {
        return ExportTo::Nothing;
    }
    let set: BTreeSet<String> = values
        .iter()
        .filter(|v| *v != "~")
        .map(|v| if v == "." { own.to_owned() } else { v.clone() })
        .collect();
    ExportTo::Namespaces(set)
}

fn issue(issues: &mut Vec<BuildIssue>, r: &Resource, message: String) {
    issues.push(BuildIssue {
        resource: r.reference(),
        message,
    });
}

#[cfg(test)]
mod tests;
