//! Sidecar listeners: the virtual outbound listener (15001) and per-port outbound listeners
//! behind traffic capture, the virtual inbound listener (15006), and listeners bound to real
//! addresses for Sidecar `captureMode: NONE` egress and ingress listeners.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::{CidrRange, TrafficDirection};
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, FilterChainMatch, Listener};
use envoy_types::pb::google::protobuf::UInt32Value;
use weft_api::networking::service_entry::Protocol;
use weft_api::networking::sidecar::CaptureMode;
use weft_api::networking::virtual_service::RouteDestination;
use weft_registry::{Service, resolve_short_name};

use super::filters::{self, bool_value, duration, hcm, hcm_filter, socket};
use super::protocol::{
    self, ListenerProtocol, PLAINTEXT_HTTP_ALPNS, PROTOCOL_DETECTION_TIMEOUT, listener_protocol,
};
use super::scope::InboundPort;
use super::{Scope, cluster, route};
use crate::naming;
use crate::resources::Resources;

/// Wildcard IPv4 address.
const WILDCARD: &str = "0.0.0.0";
/// Loopback, where `captureMode: NONE` egress listeners without `bind` listen.
const LOCALHOST: &str = "127.0.0.1";

/// Everything a sidecar needs: listeners, the route tables they name and the clusters.
pub fn sidecar_resources(scope: &Scope<'_>) -> Resources {
    let mut outbound = Outbound::default();
    outbound.build(scope);
    let mut listeners = Vec::new();
    let mut routes = Vec::new();
    for entry in outbound.entries.values() {
        listeners.push(entry.listener(scope));
    }
    for (name, (port, services)) in &outbound.rds {
        routes.push(route::outbound_route_config(scope, name, *port, services));
    }
    if !scope.capture_none() {
        listeners.push(virtual_outbound(scope));
    }
    let (inbound_listeners, inbound_routes) = inbound(scope);
    listeners.extend(inbound_listeners);
    routes.extend(inbound_routes);
    // Listeners must have unique names; the first wins (a Sidecar ingress listener binding
    // the same address and port as an egress listener is a configuration conflict).
    let mut seen = std::collections::BTreeSet::new();
    listeners.retain(|l| seen.insert(l.name.clone()));
    let mut clusters = cluster::outbound_clusters(scope);
    clusters.extend(cluster::inbound_clusters(scope, &scope.inbound));
    Resources {
        listeners,
        routes,
        clusters,
        endpoints: Vec::new(),
    }
}

/// `<bind>_<port>`, Istio's listener name.
pub fn listener_name(bind: &str, port: u16) -> String {
    format!("{bind}_{port}")
}

/// One TCP filter chain of an outbound listener.
#[derive(Debug, Clone)]
struct TcpChain {
    /// Destination CIDRs (empty: any).
    cidrs: Vec<String>,
    /// SNI names (empty: any).
    sni: Vec<String>,
    /// Weighted destination clusters.
    clusters: Vec<(String, u32)>,
}

impl TcpChain {
    fn matches_all(&self) -> bool {
        self.cidrs.is_empty() && self.sni.is_empty()
    }

    fn chain(&self) -> FilterChain {
        FilterChain {
            filter_chain_match: Some(FilterChainMatch {
                prefix_ranges: self.cidrs.iter().filter_map(|c| cidr(c)).collect(),
                server_names: self.sni.clone(),
                ..Default::default()
            }),
            filters: vec![filters::weighted_tcp_proxy_filter(&self.clusters)],
            ..Default::default()
        }
    }
}

/// An outbound listener being assembled (Istio's `outboundListenerEntry`).
#[derive(Debug)]
struct Entry {
    bind: String,
    port: u16,
    bind_to_port: bool,
    /// The RDS name of the HTTP chain, when there is one.
    http: Option<String>,
    tcp: Vec<TcpChain>,
    /// Set once an explicit egress port listener is done: the catch-all adds nothing more.
    locked: bool,
}

impl Entry {
    fn merge_tcp(&mut self, chains: Vec<TcpChain>) {
        for c in chains {
            // Same match as an existing chain: the first service wins, as in Istio.
            if !self
                .tcp
                .iter()
                .any(|t| t.cidrs == c.cidrs && t.sni == c.sni)
            {
                self.tcp.push(c);
            }
        }
    }

    /// HTTP and TCP share the listener: the HTTP inspector tells them apart.
    fn sniff(&self) -> bool {
        self.http.is_some() && !self.tcp.is_empty()
    }

    fn listener(&self, scope: &Scope<'_>) -> Listener {
        let name = listener_name(&self.bind, self.port);
        let sniff = self.sniff();
        let mut chains = Vec::new();
        let mut default = None;
        for t in &self.tcp {
            if t.matches_all() {
                // Two services without addresses on one port: the first wins, as in Istio.
                default.get_or_insert_with(|| t.chain());
            } else {
                chains.push(t.chain());
            }
        }
        if let Some(rds) = &self.http {
            let hcm = hcm(&format!("outbound_{name}"), rds, false);
            let filter_chain_match = sniff.then(|| FilterChainMatch {
                application_protocols: PLAINTEXT_HTTP_ALPNS.map(str::to_owned).to_vec(),
                ..Default::default()
            });
            let chain = FilterChain {
                filter_chain_match,
                filters: vec![hcm_filter(&hcm)],
                ..Default::default()
            };
            if sniff {
                chains.push(chain);
            } else {
                default = Some(chain);
            }
        }
        let mut listener = Listener {
            name,
            address: Some(socket(&self.bind, self.port)),
            traffic_direction: TrafficDirection::Outbound as i32,
            continue_on_listener_filters_timeout: true,
            bind_to_port: bool_value(self.bind_to_port),
            ..Default::default()
        };
        if self.tcp.iter().any(|t| !t.sni.is_empty()) {
            listener.listener_filters.push(filters::tls_inspector());
        }
        let timeout = if sniff {
            listener.listener_filters.push(filters::http_inspector());
            PROTOCOL_DETECTION_TIMEOUT
        } else {
            // Nothing waits for bytes: no timeout (0 disables it).
            std::time::Duration::ZERO
        };
        listener.listener_filters_timeout = Some(duration(timeout));
        match default {
            // A single chain needs no default (Istio keeps it in filter_chains).
            Some(d) if chains.is_empty() => chains.push(d),
            Some(d) => listener.default_filter_chain = Some(d),
            None => {
                listener.default_filter_chain =
                    Some(filters::passthrough_chain(scope.outbound_traffic_policy()));
            }
        }
        listener.filter_chains = chains;
        listener
    }
}

/// The outbound listeners and the RDS tables they name.
#[derive(Debug, Default)]
struct Outbound<'a> {
    entries: BTreeMap<(String, u16), Entry>,
    /// RDS name → (port, services).
    rds: BTreeMap<String, (u16, Vec<&'a Service>)>,
}

/// One service port to place on a listener.
struct Placement<'a> {
    service: &'a Service,
    /// The listener's port.
    listen_port: u16,
    /// The service port the traffic is for (cluster names use it).
    service_port: u16,
    protocol: Protocol,
    /// Explicit bind address, or empty.
    bind: String,
    bind_to_port: bool,
}

impl<'a> Outbound<'a> {
    fn build(&mut self, scope: &Scope<'a>) {
        let proxy_none = scope.capture_none();
        for egress in &scope.egress {
            let listener = egress.listener;
            let bind_to_port =
                proxy_none || listener.is_some_and(|l| l.capture_mode == CaptureMode::None);
            let bind = match listener.map(|l| l.bind.as_str()) {
                Some(b) if !b.is_empty() => b.to_owned(),
                _ if bind_to_port => LOCALHOST.to_owned(),
                _ => String::new(),
            };
            if bind.starts_with("unix://") {
                // Unix domain socket listeners are not supported by this translation.
                continue;
            }
            match listener.and_then(|l| l.port.as_ref()) {
                Some(port) => {
                    let Ok(listen_port) = u16::try_from(port.number) else {
                        continue;
                    };
                    if listen_port == 0 {
                        continue;
                    }
                    let declared = protocol::port_protocol(&port.protocol, &port.name, listen_port);
                    for service in &egress.services {
                        // The service port of the same number; a single-port service is
                        // reached on its only port.
                        let sp = service
                            .port(listen_port)
                            .or(match service.ports.as_slice() {
                                [only] => Some(only),
                                _ => None,
                            });
                        let Some(sp) = sp else { continue };
                        let protocol = match declared {
                            Protocol::Unsupported => protocol::service_port_protocol(sp),
                            p => p,
                        };
                        self.place(
                            scope,
                            Placement {
                                service,
                                listen_port,
                                service_port: sp.number,
                                protocol,
                                bind: bind.clone(),
                                bind_to_port,
                            },
                        );
                    }
                }
                None => {
                    for e in self.entries.values_mut() {
                        e.locked = true;
                    }
                    for service in &egress.services {
                        for sp in &service.ports {
                            self.place(
                                scope,
                                Placement {
                                    service,
                                    listen_port: sp.number,
                                    service_port: sp.number,
                                    protocol: protocol::service_port_protocol(sp),
                                    bind: bind.clone(),
                                    bind_to_port,
                                },
                            );
                        }
                    }
                }
            }
            // An explicit egress port is finished once its services are placed.
            if listener.is_some_and(|l| l.port.is_some()) {
                for e in self.entries.values_mut() {
                    e.locked = true;
                }
            }
        }
    }

    /// Istio's `buildSidecarOutboundListener`: adds one service port to the listener for its
    /// address and port, merging with what is there (HTTP and TCP on one listener turn on
    /// protocol detection).
    fn place(&mut self, scope: &Scope<'a>, p: Placement<'a>) {
        let Some(lp) = listener_protocol(p.protocol) else {
            return;
        };
        let mut bind = p.bind.clone();
        let mut cidrs = Vec::new();
        if bind.is_empty() {
            bind = WILDCARD.to_owned();
            // TCP listens on the service's address when it has one; a CIDR listens on the
            // wildcard and matches the range.
            if lp != ListenerProtocol::Http
                && let Some(addr) = p.service.addresses.first()
            {
                if addr.contains('/') {
                    cidrs = p.service.addresses.clone();
                } else {
                    bind = addr.clone();
                }
            }
        }
        let key = (bind.clone(), p.listen_port);
        if self.entries.get(&key).is_some_and(|e| e.locked) {
            return;
        }
        let rds_name = naming::outbound_route_name(
            Some(bind.as_str()).filter(|_| p.bind_to_port || !p.bind.is_empty()),
            p.listen_port,
        );
        let entry = self.entries.entry(key).or_insert_with(|| Entry {
            bind: bind.clone(),
            port: p.listen_port,
            bind_to_port: p.bind_to_port,
            http: None,
            tcp: Vec::new(),
            locked: false,
        });
        let wants_http = matches!(lp, ListenerProtocol::Http | ListenerProtocol::Auto);
        let wants_tcp = matches!(lp, ListenerProtocol::Tcp | ListenerProtocol::Auto);
        if wants_tcp {
            let chains = tcp_chains(scope, &p, &cidrs);
            entry.merge_tcp(chains);
        }
        if wants_http {
            entry.http.get_or_insert_with(|| rds_name.clone());
            let (_, services) = self
                .rds
                .entry(rds_name)
                .or_insert_with(|| (p.listen_port, Vec::new()));
            if !services.iter().any(|s| std::ptr::eq(*s, p.service)) {
                services.push(p.service);
            }
        }
    }
}

/// The TCP chains for a service port (Istio's `buildSidecarOutboundTCPListenerOpts`): TLS
/// routes of VirtualServices for the host become one chain per SNI match; the first TCP route
/// matching the port becomes the service's chain; without either, the chain goes to the
/// service's cluster.
fn tcp_chains(scope: &Scope<'_>, p: &Placement<'_>, cidrs: &[String]) -> Vec<TcpChain> {
    let own_cluster = naming::outbound_cluster(p.service_port, "", &p.service.hostname);
    let mut out = Vec::new();
    let vss = scope.mesh_virtual_services();
    let for_host = vss.iter().filter(|(entry, vs)| {
        vs.hosts.iter().any(|h| {
            let h = resolve_short_name(h, entry.resource.namespace());
            p.service.matches_host(&h)
        })
    });
    let port_ok = |port: Option<u32>| port.is_none_or(|n| n == u32::from(p.listen_port));
    if p.protocol.is_tls() {
        for (entry, vs) in for_host.clone() {
            for tls in &vs.tls {
                for m in tls.matches.iter().filter(|m| port_ok(m.port)) {
                    let clusters = destinations(scope, &tls.route, entry.resource.namespace(), p);
                    if clusters.is_empty() {
                        continue;
                    }
                    out.push(TcpChain {
                        cidrs: if m.destination_subnets.is_empty() {
                            cidrs.to_vec()
                        } else {
                            m.destination_subnets.clone()
                        },
                        sni: m.sni_hosts.clone(),
                        clusters,
                    });
                }
            }
        }
    }
    let tcp_route = for_host.clone().find_map(|(entry, vs)| {
        vs.tcp
            .iter()
            .find(|r| r.matches.is_empty() || r.matches.iter().any(|m| port_ok(m.port)))
            .map(|r| destinations(scope, &r.route, entry.resource.namespace(), p))
            .filter(|c| !c.is_empty())
    });
    out.push(TcpChain {
        cidrs: cidrs.to_vec(),
        sni: Vec::new(),
        clusters: tcp_route.unwrap_or_else(|| vec![(own_cluster, 1)]),
    });
    out
}

/// Weighted outbound clusters for route destinations declared in namespace `ns`.
fn destinations(
    scope: &Scope<'_>,
    route: &[RouteDestination],
    ns: &str,
    p: &Placement<'_>,
) -> Vec<(String, u32)> {
    let total = route.len();
    route
        .iter()
        .map(|d| {
            let host = resolve_short_name(&d.destination.host, ns);
            let port = match d
                .destination
                .port
                .and_then(|s| u16::try_from(s.number).ok())
            {
                Some(n) => n,
                None if host.eq_ignore_ascii_case(&p.service.hostname) => p.service_port,
                None => scope
                    .mesh
                    .registry
                    .service(&host, &scope.node.namespace)
                    .and_then(|s| match s.ports.as_slice() {
                        [only] => Some(only.number),
                        _ => None,
                    })
                    .unwrap_or(p.service_port),
            };
            let subset = d.destination.subset.as_deref().unwrap_or("");
            // Istio: a single destination without weight gets everything.
            let weight = match d.weight {
                Some(w) => u32::try_from(w).unwrap_or(0),
                None if total == 1 => 100,
                None => 0,
            };
            (naming::outbound_cluster(port, subset, &host), weight)
        })
        .filter(|(_, w)| *w > 0)
        .collect()
}

/// An address prefix (`10.0.0.0/8`, `10.1.2.3`) as a CIDR range.
fn cidr(s: &str) -> Option<CidrRange> {
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => (ip, Some(len.parse::<u32>().ok()?)),
        None => (s, None),
    };
    let parsed: std::net::IpAddr = ip.parse().ok()?;
    let len = len.unwrap_or(if parsed.is_ipv4() { 32 } else { 128 });
    Some(CidrRange {
        address_prefix: ip.to_owned(),
        prefix_len: Some(UInt32Value { value: len }),
    })
}

/// `virtualOutbound` on 0.0.0.0:15001: captured connections are handed to the listener of
/// their original destination; what no listener takes goes to the catch-all cluster of the
/// outbound traffic policy. Connections addressed to 15001 itself are dropped.
fn virtual_outbound(scope: &Scope<'_>) -> Listener {
    let blackhole = FilterChain {
        name: "virtualOutbound-blackhole".to_owned(),
        filter_chain_match: Some(FilterChainMatch {
            destination_port: Some(UInt32Value {
                value: u32::from(naming::VIRTUAL_OUTBOUND_PORT),
            }),
            ..Default::default()
        }),
        filters: vec![filters::tcp_proxy_filter(naming::BLACK_HOLE_CLUSTER)],
        ..Default::default()
    };
    let mut catch_all = filters::passthrough_chain(scope.outbound_traffic_policy());
    catch_all.name = "virtualOutbound-catchall-tcp".to_owned();
    Listener {
        name: naming::VIRTUAL_OUTBOUND_LISTENER.to_owned(),
        address: Some(socket(WILDCARD, naming::VIRTUAL_OUTBOUND_PORT)),
        use_original_dst: bool_value(true),
        listener_filters: vec![filters::original_dst()],
        traffic_direction: TrafficDirection::Outbound as i32,
        filter_chains: vec![blackhole, catch_all],
        ..Default::default()
    }
}

/// The inbound chains for one port: HTTP → connection manager on RDS `inbound|<port>||`,
/// TCP → the inbound cluster, undeclared → both, told apart by the HTTP inspector.
/// `matched` adds a `destination_port` match (the virtual inbound listener).
fn inbound_chains(port: &InboundPort, stat_name: &str, matched: bool) -> (Vec<FilterChain>, bool) {
    let cluster = naming::inbound_cluster(port.port);
    let protocol = Protocol::parse(&port.protocol);
    let lp = listener_protocol(protocol).unwrap_or(ListenerProtocol::Tcp);
    let base = || FilterChainMatch {
        destination_port: matched.then_some(UInt32Value {
            value: u32::from(port.port),
        }),
        ..Default::default()
    };
    let http = || FilterChain {
        name: stat_name.to_owned(),
        filter_chain_match: Some(base()),
        filters: vec![hcm_filter(&hcm(
            &format!("inbound_{stat_name}"),
            &cluster,
            false,
        ))],
        ..Default::default()
    };
    let tcp = || FilterChain {
        name: stat_name.to_owned(),
        filter_chain_match: Some(base()),
        filters: vec![filters::tcp_proxy_filter(&cluster)],
        ..Default::default()
    };
    match lp {
        ListenerProtocol::Http => (vec![http()], false),
        ListenerProtocol::Tcp => (vec![tcp()], false),
        ListenerProtocol::Auto => {
            let mut h = http();
            if let Some(m) = h.filter_chain_match.as_mut() {
                m.application_protocols = PLAINTEXT_HTTP_ALPNS.map(str::to_owned).to_vec();
            }
            h.name = format!("{stat_name}-http");
            (vec![h, tcp()], true)
        }
    }
}

/// Inbound listeners and their route tables: bound listeners for `captureMode: NONE` ports,
/// the rest as chains of `virtualInbound` on 0.0.0.0:15006 (unless the proxy runs without
/// capture).
fn inbound(
    scope: &Scope<'_>,
) -> (
    Vec<Listener>,
    Vec<envoy_types::pb::envoy::config::route::v3::RouteConfiguration>,
) {
    let mut listeners = Vec::new();
    let mut routes = Vec::new();
    let mut virtual_chains = Vec::new();
    let mut virtual_sniff = false;
    for port in &scope.inbound {
        let protocol = Protocol::parse(&port.protocol);
        if listener_protocol(protocol).is_some_and(|lp| lp != ListenerProtocol::Tcp) {
            let name = naming::inbound_cluster(port.port);
            routes.push(route::inbound_route_config(scope, &name, port.port, &name));
        }
        match port.bind {
            Some(bind) => {
                let bind = bind.to_string();
                let name = listener_name(&bind, port.port);
                let (chains, sniff) = inbound_chains(port, &name, false);
                let mut l = Listener {
                    name,
                    address: Some(socket(&bind, port.port)),
                    traffic_direction: TrafficDirection::Inbound as i32,
                    continue_on_listener_filters_timeout: true,
                    filter_chains: chains,
                    ..Default::default()
                };
                if sniff {
                    l.listener_filters.push(filters::http_inspector());
                    l.listener_filters_timeout = Some(duration(PROTOCOL_DETECTION_TIMEOUT));
                }
                listeners.push(l);
            }
            None => {
                let (chains, sniff) =
                    inbound_chains(port, &listener_name(WILDCARD, port.port), true);
                virtual_chains.extend(chains);
                virtual_sniff |= sniff;
            }
        }
    }
    if !scope.capture_none() {
        let blackhole = FilterChain {
            name: "virtualInbound-blackhole".to_owned(),
            filter_chain_match: Some(FilterChainMatch {
                destination_port: Some(UInt32Value {
                    value: u32::from(naming::VIRTUAL_INBOUND_PORT),
                }),
                ..Default::default()
            }),
            filters: vec![filters::tcp_proxy_filter(naming::BLACK_HOLE_CLUSTER)],
            ..Default::default()
        };
        let mut chains = vec![blackhole];
        chains.extend(virtual_chains);
        let mut passthrough = filters::passthrough_chain(scope.outbound_traffic_policy());
        // Inbound traffic to ports the proxy does not know is always passed to the app.
        passthrough.filters = vec![filters::tcp_proxy_filter(naming::PASSTHROUGH_CLUSTER)];
        passthrough.name = "virtualInbound-catchall-tcp".to_owned();
        let mut listener_filters = vec![filters::original_dst()];
        if virtual_sniff {
            listener_filters.push(filters::http_inspector());
        }
        listeners.push(Listener {
            name: naming::VIRTUAL_INBOUND_LISTENER.to_owned(),
            address: Some(socket(WILDCARD, naming::VIRTUAL_INBOUND_PORT)),
            use_original_dst: bool_value(true),
            listener_filters,
            listener_filters_timeout: Some(duration(if virtual_sniff {
                PROTOCOL_DETECTION_TIMEOUT
            } else {
                std::time::Duration::ZERO
            })),
            continue_on_listener_filters_timeout: true,
            traffic_direction: TrafficDirection::Inbound as i32,
            filter_chains: chains,
            default_filter_chain: Some(passthrough),
            ..Default::default()
        });
    }
    (listeners, routes)
}

#[cfg(test)]
#[path = "listener_tests.rs"]
mod tests;
