//! What one proxy can see: its workload, the Sidecar resource that applies to it, the services
//! visible to it, its inbound ports and (for gateways) the Gateway servers it runs.

use std::net::IpAddr;

use weft_api::Loaded;
use weft_api::networking::destination_rule::DestinationRule;
use weft_api::networking::gateway::Server;
use weft_api::networking::sidecar::Sidecar;
use weft_registry::{Service, Workload, host_matches, resolve_short_name};

use crate::mesh::Mesh;
use crate::node::ProxyNode;

/// One proxy's view of the mesh.
#[derive(Debug)]
pub struct Scope<'a> {
    /// The mesh.
    pub mesh: &'a Mesh,
    /// The proxy.
    pub node: &'a ProxyNode,
    /// The proxy's workload in the registry, when one matches its name and namespace.
    pub workload: Option<&'a Workload>,
    /// The Sidecar resource that applies (workload-selecting in the proxy's namespace, else the
    /// namespace default, else the root namespace default).
    pub sidecar: Option<(&'a Loaded, &'a Sidecar)>,
    /// Services the proxy may call, after `exportTo` and Sidecar egress scoping, in a stable
    /// order.
    pub services: Vec<&'a Service>,
}

/// A port the proxy receives traffic on for its own application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundPort {
    /// The port traffic arrives on (the service's target port, or a Sidecar ingress port).
    pub port: u16,
    /// Istio protocol name (`HTTP`, `TCP`, `GRPC`...).
    pub protocol: String,
    /// Where the application listens (`127.0.0.1:<port>` by default, or a Sidecar ingress
    /// `defaultEndpoint`).
    pub endpoint: std::net::SocketAddr,
    /// Address a `captureMode: NONE` ingress listener binds; `None` behind capture.
    pub bind: Option<IpAddr>,
}

/// A Gateway server this proxy runs.
#[derive(Debug, Clone, Copy)]
pub struct GatewayServer<'a> {
    /// The Gateway resource.
    pub gateway: &'a Loaded,
    /// Index in its `servers`.
    pub index: usize,
    /// The server.
    pub server: &'a Server,
}

impl<'a> Scope<'a> {
    /// The scope of `node` in `mesh`.
    pub fn new(mesh: &'a Mesh, node: &'a ProxyNode) -> Scope<'a> {
        let workload = mesh
            .registry
            .workloads()
            .iter()
            .find(|w| w.namespace == node.namespace && w.name == node.workload);
        let mut services: Vec<&Service> = mesh
            .registry
            .services()
            .iter()
            .filter(|s| s.visible_from(&node.namespace))
            .collect();
        services.sort_by(|a, b| (&a.hostname, &a.namespace).cmp(&(&b.hostname, &b.namespace)));
        Scope {
            mesh,
            node,
            workload,
            sidecar: None,
            services,
        }
    }
}

impl<'a> Scope<'a> {
    /// The DestinationRule that applies to `host` (a service declared in `service_namespace`)
    /// for this proxy, by Istio's lookup order: the proxy's own namespace, then the service's
    /// namespace (if exported to the proxy's), then the root namespace. Within a namespace a
    /// rule selecting this workload beats one without a selector, and the most specific host
    /// wins (exact, then the longest wildcard); ties go to the first in load order.
    pub fn destination_rule(
        &self,
        host: &str,
        service_namespace: &str,
    ) -> Option<(&'a Loaded, &'a DestinationRule)> {
        let own = self.node.namespace.as_str();
        let root = self.mesh.options.root_namespace.as_str();
        [own, service_namespace, root]
            .into_iter()
            .find_map(|ns| self.destination_rule_in(ns, host))
    }

    fn destination_rule_in(
        &self,
        ns: &str,
        host: &str,
    ) -> Option<(&'a Loaded, &'a DestinationRule)> {
        let own = self.node.namespace.as_str();
        let mut best: Option<((bool, usize), (&'a Loaded, &'a DestinationRule))> = None;
        for (entry, dr) in self.mesh.config.of::<DestinationRule>() {
            if entry.resource.namespace() != ns || !exported_to(&dr.export_to, ns, own) {
                continue;
            }
            if let Some(sel) = &dr.workload_selector {
                if ns != own
                    || !sel
                        .match_labels
                        .iter()
                        .all(|(k, v)| self.node.labels.get(k) == Some(v))
                {
                    continue;
                }
            }
            let dr_host = resolve_short_name(&dr.host, ns);
            if !host_matches(&dr_host, host) {
                continue;
            }
            // Exact beats wildcard; a longer wildcard beats a shorter one.
            let specificity = if dr_host.starts_with('*') {
                dr_host.len()
            } else {
                usize::MAX
            };
            let key = (dr.workload_selector.is_some(), specificity);
            if best.as_ref().is_none_or(|(k, _)| key > *k) {
                best = Some((key, (entry, dr)));
            }
        }
        best.map(|(_, found)| found)
    }
}

/// Whether a resource in `own` with `exportTo` list `export_to` is visible from `namespace`.
pub fn exported_to(export_to: &[String], own: &str, namespace: &str) -> bool {
    own == namespace
        || export_to.is_empty()
        || export_to
            .iter()
            .any(|e| e == "*" || e == namespace || (e == "." && own == namespace))
}
