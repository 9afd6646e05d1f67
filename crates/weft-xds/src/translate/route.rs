//! RouteConfigurations from VirtualServices, the way istiod builds them:
//!
//! - outbound (sidecar) tables: one virtual host per service on the listener port, named
//!   `host:port`, with the domains a client may use for it; VirtualService routes for services
//!   that have one, Istio's default route otherwise; then the `allow_any` / `block_all`
//!   catch-all;
//! - the inbound table: everything to the application's cluster;
//! - gateway tables: one virtual host per host a bound VirtualService shares with the
//!   Gateway servers.
//!
//! [`vs`] selects VirtualServices and merges delegates; [`http`] translates one HTTP route.

mod http;
mod vs;

pub(crate) use vs::bound_gateways;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv6Addr};

use envoy_types::pb::envoy::config::route::v3::DirectResponseAction;
use envoy_types::pb::envoy::config::route::v3::{
    RetryPolicy, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route,
    route_action, route_match::PathSpecifier, virtual_host::TlsRequirementType,
};
use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};
use weft_registry::{Protocol, Service, host_matches};

use self::http::Ctx;
use self::vs::{MESH_GATEWAY, ResolvedVs};
use super::Scope;
use super::scope::GatewayServer;
use crate::mesh::OutboundTrafficPolicy;
use crate::naming;
use crate::node::Generator;

/// Istio's limit on direct response bodies (1 MiB; Envoy's own default is 4 KiB).
const MAX_DIRECT_RESPONSE_BODY: u32 = 1024 * 1024;
/// Name of routes built without a VirtualService.
const DEFAULT_ROUTE_NAME: &str = "default";
/// The sidecar catch-all virtual host under `ALLOW_ANY`.
const ALLOW_ANY: &str = "allow_any";
/// The sidecar catch-all virtual host under `REGISTRY_ONLY`.
const BLOCK_ALL: &str = "block_all";

/// The RDS table `name` of an outbound HTTP listener on `port` serving `services`.
pub fn outbound_route_config(
    scope: &Scope<'_>,
    name: &str,
    port: u16,
    services: &[&Service],
) -> RouteConfiguration {
    let grpc = scope.node.generator == Generator::Grpc;
    let gateways = [MESH_GATEWAY.to_owned()];
    let ctx = Ctx {
        scope,
        port,
        gateways: &gateways,
        tls: false,
        gateway: false,
    };

    // The services this listener routes for, by lower-case host name (the first wins).
    let mut by_host: BTreeMap<String, &Service> = BTreeMap::new();
    for svc in services {
        if svc.port(port).is_some_and(|p| http_or_sniffed(p.protocol)) {
            by_host
                .entry(svc.hostname.to_ascii_lowercase())
                .or_insert(svc);
        }
    }

    // VirtualServices that name one of them (on port 80 any: hosts outside the registry get
    // virtual hosts there, as in Istio).
    let vss: Vec<ResolvedVs> = vs::applicable(scope, &gateways)
        .into_iter()
        .filter(|v| port == 80 || v.hosts.iter().any(|h| selects(h, &by_host)))
        .collect();
    let claims = wildcard_claims(&vss, &by_host);

    let mut wrappers: Vec<Wrapper<'_>> = Vec::new();
    let mut covered: BTreeSet<String> = BTreeSet::new();
    for (i, v) in vss.iter().enumerate() {
        let routes = http::vs_routes(&ctx, v);
        if routes.is_empty() {
            continue;
        }
        let (hosts, svcs) = separate_hosts(v, i, &by_host, &claims);
        if svcs.is_empty() && port != 80 {
            continue;
        }
        covered.extend(svcs.iter().map(|s| s.hostname.to_ascii_lowercase()));
        wrappers.push(Wrapper {
            vs_hosts: hosts,
            services: svcs,
            routes,
        });
    }
    for (host, svc) in &by_host {
        if covered.contains(host) {
            continue;
        }
        let hash = http::service_hash(scope, svc, port);
        let cluster = naming::outbound_cluster(port, "", host);
        wrappers.push(Wrapper {
            vs_hosts: Vec::new(),
            services: vec![svc],
            routes: vec![default_outbound_route(cluster, hash.as_ref())],
        });
    }

    let known_fqdns: BTreeSet<String> = wrappers
        .iter()
        .flat_map(|w| &w.services)
        .flat_map(|s| {
            let h = s.hostname.to_ascii_lowercase();
            [naming::virtual_host_name(&h, port), h]
        })
        .collect();
    let proxy_domain = proxy_dns_domain(scope);
    let mut names = BTreeSet::new();
    let mut used_domains = BTreeSet::new();
    let mut virtual_hosts = Vec::new();
    for w in &wrappers {
        let mut candidates: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
        for h in &w.vs_hosts {
            let mut domains = vec![ipv6_compliant(h)];
            if grpc {
                domains.push(naming::virtual_host_name(h, port));
            }
            candidates.push((h.clone(), domains, Vec::new()));
        }
        for s in &w.services {
            let h = s.hostname.to_ascii_lowercase();
            let (domains, alt) = service_domains(s, &h, grpc.then_some(port), &proxy_domain);
            candidates.push((h, domains, alt));
        }
        for (host, domains, alt) in candidates {
            let vh_name = naming::virtual_host_name(&host, port);
            if !names.insert(vh_name.clone()) {
                continue;
            }
            let domains: Vec<String> = domains
                .into_iter()
                .filter(|d| !(alt.contains(d) && known_fqdns.contains(d)))
                .filter(|d| used_domains.insert(d.to_ascii_lowercase()))
                .collect();
            if domains.is_empty() {
                continue;
            }
            virtual_hosts.push(VirtualHost {
                name: vh_name,
                domains,
                routes: w.routes.clone(),
                include_request_attempt_count: true,
                ..Default::default()
            });
        }
    }
    virtual_hosts.sort_by(|a, b| a.name.cmp(&b.name));
    virtual_hosts.push(catch_all_virtual_host(
        scope.mesh.options.outbound_traffic_policy,
    ));

    RouteConfiguration {
        name: name.to_owned(),
        virtual_hosts,
        validate_clusters: Some(BoolValue { value: false }),
        max_direct_response_body_size_bytes: Some(UInt32Value {
            value: MAX_DIRECT_RESPONSE_BODY,
        }),
        ignore_port_in_host_matching: true,
        ..Default::default()
    }
}

/// The RDS table `name` of an inbound HTTP listener on `port`, forwarding to `cluster`.
pub fn inbound_route_config(
    scope: &Scope<'_>,
    name: &str,
    port: u16,
    cluster: &str,
) -> RouteConfiguration {
    let mut action = RouteAction {
        cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster.to_owned())),
        timeout: Some(http::pb_duration(Default::default())),
        max_stream_duration: Some(route_action::MaxStreamDuration {
            max_stream_duration: Some(http::pb_duration(Default::default())),
            grpc_timeout_header_max: Some(http::pb_duration(Default::default())),
            ..Default::default()
        }),
        ..Default::default()
    };
    // A request reset before it reached the application was never processed, so Istio retries
    // it; not for gRPC, whose streams do not survive it.
    if !inbound_is_grpc(scope, port) {
        action.retry_policy = Some(RetryPolicy {
            retry_on: "reset-before-request".to_owned(),
            num_retries: Some(UInt32Value { value: 2 }),
            ..Default::default()
        });
    }
    RouteConfiguration {
        name: name.to_owned(),
        virtual_hosts: vec![VirtualHost {
            name: format!("inbound|http|{port}"),
            domains: vec!["*".to_owned()],
            routes: vec![Route {
                name: DEFAULT_ROUTE_NAME.to_owned(),
                r#match: Some(prefix_match("/")),
                action: Some(route::Action::Route(action)),
                ..Default::default()
            }],
            ..Default::default()
        }],
        validate_clusters: Some(BoolValue { value: false }),
        ..Default::default()
    }
}

/// The RDS table `name` of a gateway listener serving `servers` (all on one port).
pub fn gateway_route_config(
    scope: &Scope<'_>,
    name: &str,
    servers: &[GatewayServer<'_>],
) -> RouteConfiguration {
    let grpc = scope.node.generator == Generator::Grpc;
    let mut vhosts: BTreeMap<String, GatewayVhost> = BTreeMap::new();
    let mut vs_cache: HashMap<String, Vec<ResolvedVs>> = HashMap::new();
    // Route lists by (gateway, VirtualService, port, tls), so identical lists can be collapsed.
    let mut groups: Vec<Vec<Route>> = Vec::new();
    let mut group_ids: HashMap<(String, String, u16, bool), usize> = HashMap::new();
    let mut first_port = None;

    for server in servers {
        let gw_ns = server.gateway.resource.namespace();
        let gateway_name = format!("{gw_ns}/{}", server.gateway.resource.name());
        let port = server
            .server
            .port
            .as_ref()
            .and_then(|p| u16::try_from(p.number).ok())
            .unwrap_or(0);
        first_port.get_or_insert(port);
        let tls = server.server.tls.is_some();
        let https_redirect = server.server.tls.as_ref().is_some_and(|t| t.https_redirect);
        let gateways = [gateway_name.clone()];
        let vss = vs_cache
            .entry(gateway_name.clone())
            .or_insert_with(|| vs::applicable(scope, &gateways));
        let ctx = Ctx {
            scope,
            port,
            gateways: &gateways,
            tls,
            gateway: true,
        };
        for v in vss.iter() {
            let server_hosts: Vec<String> = server
                .server
                .hosts
                .iter()
                .filter_map(|h| server_host_for(h, gw_ns, &v.namespace))
                .collect();
            let hosts = intersect_hosts(&server_hosts, &v.hosts);
            if hosts.is_empty() {
                continue;
            }
            let key = (
                gateway_name.clone(),
                format!("{}/{}", v.namespace, v.name),
                port,
                tls,
            );
            let group = match group_ids.get(&key) {
                Some(g) => *g,
                None => {
                    let routes = http::vs_routes(&ctx, v);
                    if routes.is_empty() {
                        continue;
                    }
                    groups.push(routes);
                    group_ids.insert(key, groups.len() - 1);
                    groups.len() - 1
                }
            };
            for host in hosts {
                let vh = vhosts
                    .entry(host.clone())
                    .or_insert_with(|| GatewayVhost::new(&host, port));
                vh.groups.push(group);
                vh.require_tls |= https_redirect;
            }
        }
        if https_redirect {
            for h in &server.server.hosts {
                let host = h
                    .split_once('/')
                    .map_or(h.as_str(), |(_, host)| host)
                    .to_ascii_lowercase();
                vhosts
                    .entry(host.clone())
                    .or_insert_with(|| GatewayVhost::new(&host, port))
                    .require_tls = true;
            }
        }
    }

    let mut virtual_hosts = Vec::new();
    if vhosts.is_empty() {
        virtual_hosts.push(VirtualHost {
            name: naming::virtual_host_name("blackhole", first_port.unwrap_or(0)),
            domains: vec!["*".to_owned()],
            ..Default::default()
        });
    } else {
        // Hosts with the same routes share one virtual host (Istio's route collapsing), named
        // after the first host alphabetically.
        let mut collapsed: Vec<GatewayVhost> = Vec::new();
        for (_, vh) in vhosts {
            match collapsed
                .iter_mut()
                .find(|c| c.groups == vh.groups && c.require_tls == vh.require_tls)
            {
                Some(c) => c.domains.extend(vh.domains),
                None => collapsed.push(vh),
            }
        }
        for vh in collapsed {
            let routes: Vec<Route> = vh
                .groups
                .iter()
                .flat_map(|g| groups.get(*g).into_iter().flatten().cloned())
                .collect();
            // Catch-all routes go last, otherwise keeping their order.
            let (mut routes, catch_alls): (Vec<Route>, Vec<Route>) =
                routes.into_iter().partition(|r| !http::is_catch_all(r));
            routes.extend(catch_alls);
            virtual_hosts.push(VirtualHost {
                name: vh.name,
                domains: vh.domains,
                routes,
                include_request_attempt_count: true,
                require_tls: if vh.require_tls {
                    TlsRequirementType::All as i32
                } else {
                    TlsRequirementType::None as i32
                },
                ..Default::default()
            });
        }
        virtual_hosts.sort_by(|a, b| a.name.cmp(&b.name));
    }

    RouteConfiguration {
        name: name.to_owned(),
        virtual_hosts,
        validate_clusters: Some(BoolValue { value: false }),
        max_direct_response_body_size_bytes: Some(UInt32Value {
            value: MAX_DIRECT_RESPONSE_BODY,
        }),
        ignore_port_in_host_matching: !grpc,
        ..Default::default()
    }
}

/// A gateway virtual host being assembled.
#[derive(Debug)]
struct GatewayVhost {
    name: String,
    domains: Vec<String>,
    /// Route lists, by index into the per-table list of route groups.
    groups: Vec<usize>,
    require_tls: bool,
}

impl GatewayVhost {
    fn new(host: &str, port: u16) -> GatewayVhost {
        GatewayVhost {
            name: naming::virtual_host_name(host, port),
            domains: vec![host.to_owned()],
            groups: Vec::new(),
            require_tls: false,
        }
    }
}

/// Virtual hosts that share one route list: hosts of one VirtualService that are not services,
/// and the services it (or the default route) applies to.
#[derive(Debug)]
struct Wrapper<'a> {
    vs_hosts: Vec<String>,
    services: Vec<&'a Service>,
    routes: Vec<Route>,
}

/// Istio's `IsHTTPOrSniffed`.
fn http_or_sniffed(p: Protocol) -> bool {
    matches!(
        p,
        Protocol::Http
            | Protocol::Http2
            | Protocol::HttpProxy
            | Protocol::Grpc
            | Protocol::GrpcWeb
            | Protocol::Unsupported
    )
}

/// Whether VirtualService host `h` names one of the services (Istio's
/// `selectVirtualServices`): exactly, by a wildcard covering a service, or covered by a
/// wildcard service host.
fn selects(h: &str, by_host: &BTreeMap<String, &Service>) -> bool {
    by_host.contains_key(h)
        || by_host
            .keys()
            .any(|s| (h.starts_with('*') || s.starts_with('*')) && hosts_overlap(h, s))
}

/// Istio's `host.Name.Matches`: whether two possibly-wildcard hosts share a name.
fn hosts_overlap(a: &str, b: &str) -> bool {
    host_matches(a, b) || host_matches(b, a)
}

/// For each service, the VirtualService that claims it through a wildcard host: the one with
/// an exact host for it if any (then no wildcard claims it), else the one with the longest
/// wildcard covering it, the earliest on ties (Istio's `MostSpecificHostMatch`).
fn wildcard_claims(
    vss: &[ResolvedVs],
    by_host: &BTreeMap<String, &Service>,
) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for svc in by_host.keys() {
        if let Some(i) = vss.iter().position(|v| v.hosts.iter().any(|h| h == svc)) {
            out.insert(svc.clone(), i);
            continue;
        }
        let mut best: Option<(usize, usize)> = None;
        for (i, v) in vss.iter().enumerate() {
            for h in v.hosts.iter().filter(|h| h.starts_with('*')) {
                if host_matches(h, svc) && best.is_none_or(|(len, _)| h.len() > len) {
                    best = Some((h.len(), i));
                }
            }
        }
        if let Some((_, i)) = best {
            out.insert(svc.clone(), i);
        }
    }
    out
}

/// Istio's `separateVSHostsAndServices`: VirtualService `v`'s hosts that are not services on
/// this listener, and the services it applies to.
fn separate_hosts<'a>(
    v: &ResolvedVs,
    index: usize,
    by_host: &BTreeMap<String, &'a Service>,
    claims: &BTreeMap<String, usize>,
) -> (Vec<String>, Vec<&'a Service>) {
    let mut hosts = Vec::new();
    let mut svcs: Vec<&Service> = Vec::new();
    let push = |s: &'a Service, svcs: &mut Vec<&'a Service>| {
        if !svcs.iter().any(|x| std::ptr::eq(*x, s)) {
            svcs.push(s);
        }
    };
    for h in v.hosts.iter().filter(|h| !h.starts_with('*')) {
        match by_host.get(h) {
            Some(s) => push(s, &mut svcs),
            None => hosts.push(h.clone()),
        }
    }
    for h in v.hosts.iter().filter(|h| h.starts_with('*')) {
        let mut found = false;
        for (svc_host, s) in by_host {
            if !hosts_overlap(svc_host, h) {
                continue;
            }
            found = true;
            if claims.get(svc_host) == Some(&index) {
                push(s, &mut svcs);
            }
        }
        if !found {
            hosts.push(h.clone());
        }
    }
    (hosts, svcs)
}

/// The DNS domain of the proxy (`<namespace>.svc.cluster.local` unless its id says otherwise).
fn proxy_dns_domain(scope: &Scope<'_>) -> String {
    if scope.node.dns_domain.is_empty() {
        format!(
            "{}.svc.{}",
            scope.node.namespace, scope.mesh.options.domain_suffix
        )
    } else {
        scope.node.dns_domain.clone()
    }
}

/// Istio's `generateVirtualHostDomains`: the host, its alternative forms (absolute, and the
/// short forms a client in the proxy's DNS domain may use) and the service's addresses; each
/// also with `:port` when `port` is given (proxyless gRPC, which matches ports in host names).
/// Also returns the alternative forms, which yield to other services' real names.
fn service_domains(
    svc: &Service,
    host: &str,
    port: Option<u16>,
    proxy_domain: &str,
) -> (Vec<String>, Vec<String>) {
    let mut domains = Vec::new();
    push_domain(&mut domains, host, port);
    let alt = alt_hosts(host, port, proxy_domain);
    domains.extend(alt.iter().cloned());
    for addr in &svc.addresses {
        if !addr.is_empty() && addr != "0.0.0.0" && !addr.contains('/') {
            push_domain(&mut domains, addr, port);
        }
    }
    (domains, alt)
}

/// `domain` and, with a port, `domain:port`.
fn push_domain(out: &mut Vec<String>, domain: &str, port: Option<u16>) {
    out.push(ipv6_compliant(domain));
    if let Some(p) = port {
        out.push(naming::virtual_host_name(domain, p));
    }
}

/// IPv6 addresses in brackets, as in a `Host` header.
fn ipv6_compliant(host: &str) -> String {
    if host.parse::<Ipv6Addr>().is_ok() {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// Istio's `GenerateAltVirtualHosts`.
fn alt_hosts(host: &str, port: Option<u16>, proxy_domain: &str) -> Vec<String> {
    let mut out = Vec::new();
    if host.parse::<IpAddr>().is_err() {
        out.push(format!("{host}."));
    }
    if let Some(p) = port {
        out.push(naming::virtual_host_name(&format!("{host}."), p));
    }
    if proxy_domain.contains(".svc.") {
        let svc_suffix = proxy_domain
            .find(".svc.")
            .filter(|i| *i > 0)
            .map_or(proxy_domain, |i| &proxy_domain[i..]);
        if host.ends_with(svc_suffix) {
            out.extend(kube_alt_hosts(host, port, proxy_domain));
        }
        return out;
    }
    let host_parts: Vec<&str> = host.split('.').collect();
    let domain_parts: Vec<&str> = proxy_domain.split('.').collect();
    let shared = host_parts
        .iter()
        .rev()
        .zip(domain_parts.iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    if shared == 0 {
        return out;
    }
    let unique_parts = &host_parts[..host_parts.len() - shared];
    let unique = unique_parts.join(".");
    push_domain(&mut out, &unique, port);
    if unique_parts.len() == 2
        && let Some(first_shared) = host_parts.get(host_parts.len() - shared)
    {
        push_domain(&mut out, &format!("{unique}.{first_shared}"), port);
    }
    out
}

/// Short forms of a Kubernetes-style host (`name.ns.svc.<suffix>`): `name`, `name.ns.svc`,
/// `name.ns` in the proxy's own namespace; `name.ns`, `name.ns.svc` from elsewhere.
fn kube_alt_hosts(host: &str, port: Option<u16>, proxy_domain: &str) -> Vec<String> {
    let proxy_ns = proxy_domain.split(".svc.").next().unwrap_or_default();
    let Some(ih) = host.find(".svc.").filter(|i| *i > 0) else {
        return Vec::new();
    };
    let Some(dot) = host.find('.') else {
        return Vec::new();
    };
    if dot + 1 >= host.len() || dot + 1 > ih {
        return Vec::new();
    }
    let name = &host[..dot];
    let name_ns = &host[..ih];
    let name_ns_svc = format!("{name_ns}.svc");
    let forms: Vec<&str> = if &host[dot + 1..ih] == proxy_ns {
        vec![name, &name_ns_svc, name_ns]
    } else {
        vec![name_ns, &name_ns_svc]
    };
    let mut out = Vec::new();
    for f in forms {
        push_domain(&mut out, f, port);
    }
    out
}

/// A server host for a VirtualService in `vs_ns`: `ns/host` only for that namespace (or `*`),
/// `./host` meaning the Gateway's namespace. Lower case, without the namespace.
fn server_host_for(h: &str, gw_ns: &str, vs_ns: &str) -> Option<String> {
    match h.split_once('/') {
        Some((ns, host)) => {
            let ns = if ns == "." { gw_ns } else { ns };
            (ns == vs_ns || ns == "*").then(|| host.to_ascii_lowercase())
        }
        None => Some(h.to_ascii_lowercase()),
    }
}

/// Istio's `Names.Intersection`: for each overlapping (server host, VirtualService host) pair,
/// the narrower of the two.
fn intersect_hosts(server: &[String], vs_hosts: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in server {
        for v in vs_hosts {
            let pick = if subset_of(s, v) {
                s
            } else if subset_of(v, s) {
                v
            } else {
                continue;
            };
            if !out.contains(pick) {
                out.push(pick.clone());
            }
        }
    }
    out
}

/// Whether every name `a` covers is covered by `b`.
fn subset_of(a: &str, b: &str) -> bool {
    if b == "*" {
        return true;
    }
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(sa), Some(sb)) => sa.ends_with(sb),
        (None, Some(_)) => host_matches(b, a),
        (Some(_), None) => false,
        (None, None) => a.eq_ignore_ascii_case(b),
    }
}

/// Istio's route for a service without a VirtualService: everything to the service's cluster,
/// with the default retry policy, no timeout, and the DestinationRule's consistent hash.
fn default_outbound_route(
    cluster: String,
    hash: Option<&weft_api::networking::destination_rule::ConsistentHashLb>,
) -> Route {
    let mut action = RouteAction {
        cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster)),
        ..Default::default()
    };
    action.hash_policy.extend(hash.and_then(http::hash_policy));
    // Istio looks at the DestinationRule only for the hash here; the retry policy keeps the
    // previous-hosts predicate.
    action.retry_policy = http::retry_policy(None, false);
    http::set_timeout(&mut action, None, false);
    Route {
        name: DEFAULT_ROUTE_NAME.to_owned(),
        r#match: Some(prefix_match("/")),
        action: Some(route::Action::Route(action)),
        ..Default::default()
    }
}

/// The last sidecar virtual host: unknown destinations pass through (`allow_any`) or get 502
/// (`block_all`).
fn catch_all_virtual_host(policy: OutboundTrafficPolicy) -> VirtualHost {
    let (name, action) = match policy {
        OutboundTrafficPolicy::AllowAny => {
            let mut a = RouteAction {
                cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                    naming::PASSTHROUGH_CLUSTER.to_owned(),
                )),
                ..Default::default()
            };
            http::set_timeout(&mut a, None, false);
            (ALLOW_ANY, route::Action::Route(a))
        }
        OutboundTrafficPolicy::RegistryOnly => (
            BLOCK_ALL,
            route::Action::DirectResponse(DirectResponseAction {
                status: 502,
                ..Default::default()
            }),
        ),
    };
    VirtualHost {
        name: name.to_owned(),
        domains: vec!["*".to_owned()],
        routes: vec![Route {
            name: name.to_owned(),
            r#match: Some(prefix_match("/")),
            action: Some(action),
            ..Default::default()
        }],
        include_request_attempt_count: true,
        ..Default::default()
    }
}

fn prefix_match(p: &str) -> RouteMatch {
    RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix(p.to_owned())),
        ..Default::default()
    }
}

/// Whether the proxy's application serves gRPC on `port`: a service selecting the proxy's
/// workload declares a gRPC port that targets it.
fn inbound_is_grpc(scope: &Scope<'_>, port: u16) -> bool {
    let Some(w) = scope.workload else {
        return false;
    };
    let registry = &scope.mesh.registry;
    registry.services().iter().any(|s| {
        registry
            .workloads_of(s)
            .any(|x| x.name == w.name && x.namespace == w.namespace)
            && s.ports.iter().any(|p| {
                let target = w
                    .ports
                    .get(&p.name)
                    .copied()
                    .or(p.target_port)
                    .unwrap_or(p.number);
                target == port && matches!(p.protocol, Protocol::Grpc | Protocol::GrpcWeb)
            })
    })
}
