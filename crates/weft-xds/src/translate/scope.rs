//! What one proxy can see: its workload, the Sidecar resource that applies to it, the services
//! visible to it, its inbound ports and (for gateways) the Gateway servers it runs.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use weft_api::Loaded;
use weft_api::networking::destination_rule::DestinationRule;
use weft_api::networking::gateway::{Gateway, Server};
use weft_api::networking::service_entry::Protocol;
use weft_api::networking::sidecar::{
    CaptureMode, IstioEgressListener, OutboundTrafficMode, Sidecar,
};
use weft_api::networking::virtual_service::VirtualService;
use weft_registry::{Address, Service, Workload, host_matches, resolve_short_name};

use crate::mesh::{Mesh, OutboundTrafficPolicy};
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
    /// order (the union of every egress listener's services).
    pub services: Vec<&'a Service>,
    /// The egress listeners in the Sidecar's order, each with the services it selects; one
    /// implicit catch-all when no Sidecar declares egress.
    pub egress: Vec<EgressScope<'a>>,
    /// Ports the proxy receives traffic on for its own application.
    pub inbound: Vec<InboundPort>,
    /// DestinationRules by namespace and host, built on first lookup.
    rules: std::sync::OnceLock<RuleIndex<'a>>,
}

/// The mesh's DestinationRules, in load order, by namespace: exact hosts by lowercased name
/// (host matching is case-insensitive for exact names), wildcard hosts in a list. Looking up
/// a host then costs the rules naming it instead of every rule in the mesh, which made
/// translation quadratic in services.
#[derive(Debug, Default)]
struct RuleIndex<'a> {
    exact: HashMap<(&'a str, String), Vec<IndexedRule<'a>>>,
    wildcard: HashMap<&'a str, Vec<IndexedRule<'a>>>,
}

#[derive(Debug)]
struct IndexedRule<'a> {
    entry: &'a Loaded,
    rule: &'a DestinationRule,
    /// The rule's host with a short name resolved in its namespace.
    host: String,
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
        let workload = find_workload(mesh, node);
        let sidecar = select_sidecar(mesh, node);
        let mut all: Vec<&Service> = mesh
            .registry
            .services()
            .iter()
            .filter(|s| s.visible_from(&node.namespace))
            .collect();
        all.sort_by(|a, b| (&a.hostname, &a.namespace).cmp(&(&b.hostname, &b.namespace)));
        let egress = match sidecar.map(|(_, sc)| sc) {
            Some(sc) if !sc.egress.is_empty() => sc
                .egress
                .iter()
                .map(|listener| EgressScope {
                    listener: Some(listener),
                    services: all
                        .iter()
                        .copied()
                        .filter(|s| egress_hosts_select(&listener.hosts, &node.namespace, s))
                        .collect(),
                })
                .collect(),
            // No Sidecar, or one without egress: one catch-all listener for every service
            // exported to the namespace.
            _ => vec![EgressScope {
                listener: None,
                services: all.clone(),
            }],
        };
        let mut services: Vec<&Service> = Vec::new();
        for e in &egress {
            for s in &e.services {
                if !services.iter().any(|known| std::ptr::eq(*known, *s)) {
                    services.push(s);
                }
            }
        }
        services.sort_by(|a, b| (&a.hostname, &a.namespace).cmp(&(&b.hostname, &b.namespace)));
        let mut scope = Scope {
            mesh,
            node,
            workload,
            sidecar,
            services,
            egress,
            inbound: Vec::new(),
            rules: std::sync::OnceLock::new(),
        };
        scope.inbound = scope.compute_inbound();
        scope
    }

    /// Whether every listener of the applied Sidecar has `captureMode: NONE` (and it declares at
    /// least one): the proxy runs without traffic capture, so it gets no virtual 15001/15006
    /// listeners and its catch-all egress listener binds to loopback.
    pub fn capture_none(&self) -> bool {
        let Some((_, sc)) = self.sidecar else {
            return false;
        };
        let modes: Vec<CaptureMode> = sc
            .ingress
            .iter()
            .map(|l| l.capture_mode)
            .chain(sc.egress.iter().map(|l| l.capture_mode))
            .collect();
        !modes.is_empty() && modes.iter().all(|m| *m == CaptureMode::None)
    }

    /// The outbound traffic policy: the Sidecar's, else the mesh's.
    pub fn outbound_traffic_policy(&self) -> OutboundTrafficPolicy {
        match self
            .sidecar
            .and_then(|(_, sc)| sc.outbound_traffic_policy.as_ref())
        {
            Some(p) => match p.mode {
                OutboundTrafficMode::AllowAny => OutboundTrafficPolicy::AllowAny,
                OutboundTrafficMode::RegistryOnly => OutboundTrafficPolicy::RegistryOnly,
            },
            None => self.mesh.options.outbound_traffic_policy,
        }
    }

    /// The proxy's first address, where bound inbound listeners listen by default.
    pub fn node_ip(&self) -> IpAddr {
        self.node
            .ips
            .first()
            .copied()
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    /// VirtualServices bound to sidecars (`gateways` empty or naming `mesh`) and exported to the
    /// proxy's namespace, in load order.
    pub fn mesh_virtual_services(&self) -> Vec<(&'a Loaded, &'a VirtualService)> {
        let own = self.node.namespace.as_str();
        self.mesh
            .config
            .of::<VirtualService>()
            .filter(|(entry, vs)| {
                exported_to(&vs.export_to, entry.resource.namespace(), own)
                    && (vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == "mesh"))
            })
            .collect()
    }

    /// The Gateway servers this (router) proxy runs: every server of every Gateway whose
    /// selector matches the proxy's labels, in load order. A Gateway with an empty selector
    /// selects nothing (Istio matches it to no pod).
    pub fn gateway_servers(&self) -> Vec<GatewayServer<'a>> {
        let mut out = Vec::new();
        for (entry, gw) in self.mesh.config.of::<Gateway>() {
            if gw.selector.is_empty()
                || !gw
                    .selector
                    .iter()
                    .all(|(k, v)| self.node.labels.get(k) == Some(v))
            {
                continue;
            }
            for (index, server) in gw.servers.iter().enumerate() {
                out.push(GatewayServer {
                    gateway: entry,
                    index,
                    server,
                });
            }
        }
        out
    }

    /// Inbound ports: the Sidecar's ingress listeners when it declares any, else every port of
    /// every service whose workloads include this proxy's workload (the port on the workload,
    /// forwarded to `127.0.0.1:<port>`). Sorted by port; the first declaration of a port wins.
    fn compute_inbound(&self) -> Vec<InboundPort> {
        let none = self.capture_none();
        let mut out: Vec<InboundPort> = Vec::new();
        let ingress = self
            .sidecar
            .map(|(_, sc)| sc.ingress.as_slice())
            .unwrap_or(&[]);
        if !ingress.is_empty() {
            for l in ingress {
                let Some(port) = l
                    .port
                    .as_ref()
                    .and_then(|p| u16::try_from(p.number).ok().map(|n| (p, n)))
                else {
                    continue;
                };
                let (p, number) = port;
                let Some(endpoint) = self.default_endpoint(&l.default_endpoint, number) else {
                    continue;
                };
                let bind = (l.capture_mode == CaptureMode::None || none)
                    .then(|| l.bind.parse::<IpAddr>().unwrap_or_else(|_| self.node_ip()));
                let protocol = super::protocol::port_protocol(&p.protocol, &p.name, number);
                if out.iter().all(|i| i.port != number) {
                    out.push(InboundPort {
                        port: number,
                        protocol: protocol.as_str().to_owned(),
                        endpoint,
                        bind,
                    });
                }
            }
        } else if let Some(w) = self.workload {
            for s in self.mesh.registry.services() {
                if !self
                    .mesh
                    .registry
                    .workloads_of(s)
                    .any(|x| std::ptr::eq(x, w))
                {
                    continue;
                }
                for p in &s.ports {
                    let protocol = super::protocol::service_port_protocol(p);
                    if protocol == Protocol::Udp {
                        continue;
                    }
                    let target = w
                        .ports
                        .get(&p.name)
                        .copied()
                        .or(p.target_port)
                        .unwrap_or(p.number);
                    if out.iter().any(|i| i.port == target) {
                        continue;
                    }
                    out.push(InboundPort {
                        port: target,
                        protocol: protocol.as_str().to_owned(),
                        endpoint: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), target),
                        bind: none.then(|| self.node_ip()),
                    });
                }
            }
        }
        out.sort_by_key(|i| i.port);
        out
    }

    /// Where an ingress listener on `port` forwards: `defaultEndpoint` (`127.0.0.1:P`,
    /// `[::1]:P`; `0.0.0.0:P`, `[::]:P` and `:P` mean the proxy's own address), else
    /// `127.0.0.1:<port>`. Unix sockets are not representable as an inbound cluster address
    /// here and yield `None` (the listener is skipped).
    fn default_endpoint(&self, value: &str, port: u16) -> Option<SocketAddr> {
        if value.is_empty() {
            return Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
        }
        if value.starts_with("unix://") {
            return None;
        }
        let (host, p) = match value.strip_prefix('[') {
            Some(rest) => {
                let (h, after) = rest.split_once(']')?;
                (h, after.strip_prefix(':')?)
            }
            None => value.rsplit_once(':')?,
        };
        let p: u16 = p.parse().ok()?;
        let ip = match host {
            "" | "0.0.0.0" | "::" => self.node_ip(),
            h => h.parse().ok()?,
        };
        Some(SocketAddr::new(ip, p))
    }
}

/// One egress listener of the applied Sidecar (or the implicit catch-all) and the services its
/// hosts select.
#[derive(Debug, Clone)]
pub struct EgressScope<'a> {
    /// The Sidecar's listener; `None` for the implicit catch-all of a proxy without Sidecar
    /// egress.
    pub listener: Option<&'a IstioEgressListener>,
    /// Services selected by its hosts (exported to the proxy's namespace), in a stable order.
    pub services: Vec<&'a Service>,
}

/// The proxy's workload: by name in its namespace, else by one of its addresses.
fn find_workload<'a>(mesh: &'a Mesh, node: &ProxyNode) -> Option<&'a Workload> {
    let in_ns = || {
        mesh.registry
            .workloads()
            .iter()
            .filter(|w| w.namespace == node.namespace)
    };
    in_ns().find(|w| w.name == node.workload).or_else(|| {
        in_ns().find(|w| matches!(w.address, Address::Ip(ip) if node.ips.contains(&ip)))
    })
}

/// Istio's Sidecar selection: one in the proxy's namespace whose `workloadSelector` matches the
/// proxy's labels, else the namespace's selector-less one, else the root namespace's
/// selector-less one. Ties go to the first in load order.
fn select_sidecar<'a>(mesh: &'a Mesh, node: &ProxyNode) -> Option<(&'a Loaded, &'a Sidecar)> {
    let in_ns = |ns: &str, selected: bool| {
        mesh.config.of::<Sidecar>().find(|(entry, sc)| {
            entry.resource.namespace() == ns
                && match (&sc.workload_selector, selected) {
                    (Some(sel), true) => sel
                        .labels
                        .iter()
                        .all(|(k, v)| node.labels.get(k) == Some(v)),
                    (None, false) => true,
                    _ => false,
                }
        })
    };
    in_ns(&node.namespace, true)
        .or_else(|| in_ns(&node.namespace, false))
        .or_else(|| in_ns(&mesh.options.root_namespace, false))
}

/// Whether an egress listener's `hosts` (`namespace/dnsName`) select `service` for a proxy in
/// `own`: the namespace part is `*` (any), `.` (the proxy's namespace), `~` (none) or a name;
/// the dnsName part is `*`, a wildcard (`*.example.com`) or an exact name, matched against the
/// service's host name in either direction as Istio does.
pub fn egress_hosts_select(hosts: &[String], own: &str, service: &Service) -> bool {
    hosts.iter().any(|h| {
        let Some((ns, host)) = h.split_once('/') else {
            return false;
        };
        let ns_ok = match ns {
            "*" => true,
            "." => service.namespace == own,
            "~" => false,
            n => service.namespace == n,
        };
        ns_ok && (host == "*" || service.matches_host(host))
    })
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
        let index = self.rules.get_or_init(|| RuleIndex::new(self.mesh));
        // Exact and wildcard rules never tie (an exact host's specificity is usize::MAX), so
        // the best of each list, first in load order among equals, then the better of the
        // two, is the best in load order over all rules.
        let exact = index
            .exact
            .get(&(ns, host.to_ascii_lowercase()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let wildcard = index
            .wildcard
            .get(ns)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut best: Option<((bool, usize), FoundRule<'a>)> = None;
        for candidates in [exact, wildcard] {
            for r in candidates {
                let dr = r.rule;
                if !exported_to(&dr.export_to, ns, own) {
                    continue;
                }
                if let Some(sel) = &dr.workload_selector
                    && (ns != own
                        || !sel
                            .match_labels
                            .iter()
                            .all(|(k, v)| self.node.labels.get(k) == Some(v)))
                {
                    continue;
                }
                if !host_matches(&r.host, host) {
                    continue;
                }
                // Exact beats wildcard; a longer wildcard beats a shorter one.
                let specificity = if r.host.starts_with('*') {
                    r.host.len()
                } else {
                    usize::MAX
                };
                let key = (dr.workload_selector.is_some(), specificity);
                if best.as_ref().is_none_or(|(k, _)| key > *k) {
                    best = Some((key, (r.entry, dr)));
                }
            }
        }
        best.map(|(_, found)| found)
    }
}

impl<'a> RuleIndex<'a> {
    fn new(mesh: &'a Mesh) -> RuleIndex<'a> {
        let mut index = RuleIndex::default();
        for (entry, rule) in mesh.config.of::<DestinationRule>() {
            let ns = entry.resource.namespace();
            let host = resolve_short_name(&rule.host, ns);
            let indexed = IndexedRule { entry, rule, host };
            if indexed.host.starts_with('*') {
                index.wildcard.entry(ns).or_default().push(indexed);
            } else {
                let key = (ns, indexed.host.to_ascii_lowercase());
                index.exact.entry(key).or_default().push(indexed);
            }
        }
        index
    }
}

/// A resource and its typed DestinationRule spec.
type FoundRule<'a> = (&'a Loaded, &'a DestinationRule);

/// Whether a resource in `own` with `exportTo` list `export_to` is visible from `namespace`.
pub fn exported_to(export_to: &[String], own: &str, namespace: &str) -> bool {
    own == namespace
        || export_to.is_empty()
        || export_to
            .iter()
            .any(|e| e == "*" || e == namespace || (e == "." && own == namespace))
}

#[cfg(test)]
#[path = "scope_tests.rs"]
mod tests;
