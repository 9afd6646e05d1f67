//! `weft describe service`: which DestinationRule and VirtualServices apply to one service for
//! one client, with their effective settings, and why every other rule that mentions the
//! service does not apply, each reason naming the file and line of the resource.
//!
//! The decisions are the translation's own: the DestinationRule comes from
//! [`Scope::destination_rule`], the effective traffic policy is read back from the clusters
//! [`cluster::outbound_clusters`] builds, and the VirtualService that wins a service's virtual
//! host follows the order [`route::outbound_route_config`] uses (the first VirtualService in
//! load order with an exact host for the service, else the one with the longest wildcard; one
//! whose routes all skip this client yields to the next). [`route_table`] returns the real
//! RouteConfiguration so a caller can trace a request through weft's route matcher and map the
//! matched route back with [`Report::route_origin`].

use std::collections::BTreeMap;
use std::fmt::Debug;

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster::LbPolicy as EnvoyLb};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use serde::Serialize;
use weft_api::common::StringMatch;
use weft_api::diag::msg;
use weft_api::networking::destination_rule::DestinationRule;
use weft_api::networking::service_entry::ServiceEntry;
use weft_api::networking::virtual_service::{HttpMatchRequest, HttpRoute, VirtualService};
use weft_api::{KindSpec, Loaded};
use weft_registry::{Endpoint, Protocol, Service, ServiceSource, host_matches, resolve_short_name};

use crate::mesh::Mesh;
use crate::naming;
use crate::node::{Generator, ProxyKind, ProxyNode};
use crate::translate::scope::exported_to;
use crate::translate::{Scope, cluster, protocol, route};

/// What to describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The service host: a fully qualified name, or a short name resolved in `namespace`.
    pub host: String,
    /// Namespace for a short host name, and of the default client.
    pub namespace: String,
    /// Only this service port (all ports when `None`).
    pub port: Option<u16>,
    /// The client whose view is described; default: a sidecar without labels in the service's
    /// namespace.
    pub client: Option<Client>,
}

/// The client proxy: where it runs and its workload labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Client {
    /// Namespace.
    pub namespace: String,
    /// Workload labels.
    pub labels: BTreeMap<String, String>,
}

/// Why a description could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescribeError {
    /// No ServiceEntry declares the host.
    #[error("no service {0:?} in the configuration (services are declared by ServiceEntries)")]
    UnknownService(String),
    /// The service has no port of that number.
    #[error("service {host} has no port {port} (ports: {ports})")]
    UnknownPort {
        /// The service.
        host: String,
        /// The requested port.
        port: u16,
        /// The ports it has.
        ports: String,
    },
}

/// Everything `weft describe service` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The service.
    pub service: ServiceInfo,
    /// The client the report is for.
    pub client: Client,
    /// The DestinationRule that applies, if any.
    pub destination_rule: Option<RuleChoice>,
    /// DestinationRules whose host covers the service but that do not apply, with why.
    pub other_destination_rules: Vec<RuleChoice>,
    /// Per described port: effective traffic policy, subsets and the routes in force.
    pub ports: Vec<PortReport>,
    /// VirtualServices that apply to the service for this client.
    pub virtual_services: Vec<VsReport>,
    /// VirtualServices that mention the service but do not apply, with why.
    pub ignored_virtual_services: Vec<VsIgnored>,
    /// Things that probably do not do what was meant.
    pub warnings: Vec<String>,
    /// A request traced through the route table, when one was asked for.
    pub trace: Option<Trace>,
}

/// The service as weft sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceInfo {
    /// Host name.
    pub host: String,
    /// Namespace.
    pub namespace: String,
    /// The declaring resource (`ServiceEntry ns/name`).
    pub source: String,
    /// Where it is declared (`file:line`).
    pub location: Option<String>,
    /// Resolution (`STATIC`, `DNS`...).
    pub resolution: String,
    /// Ports, with the protocol weft treats each as.
    pub ports: Vec<PortInfo>,
    /// Endpoints per port.
    pub endpoints: Vec<EndpointInfo>,
}

/// A service port.
#[derive(Debug, Clone, Serialize)]
pub struct PortInfo {
    /// Number.
    pub number: u16,
    /// Name.
    pub name: String,
    /// Protocol as declared (`(not set)` when left out).
    pub declared: String,
    /// Protocol weft uses (from the declaration, else the port name, else sniffed `auto`).
    pub effective: String,
}

/// One endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointInfo {
    /// Workload name.
    pub workload: String,
    /// Address.
    pub address: String,
    /// Service port it serves.
    pub service_port: u16,
    /// Port on the workload.
    pub port: u16,
    /// Workload labels.
    pub labels: BTreeMap<String, String>,
}

/// A DestinationRule and the reason it was (or was not) chosen.
#[derive(Debug, Clone, Serialize)]
pub struct RuleChoice {
    /// `namespace/name`.
    pub name: String,
    /// Where it is (`file:line`).
    pub location: String,
    /// Why it applies or not.
    pub reason: String,
}

/// One service port in detail.
#[derive(Debug, Clone, Serialize)]
pub struct PortReport {
    /// Port number.
    pub port: u16,
    /// Protocol weft uses.
    pub protocol: String,
    /// Effective policy of the port's plain cluster; `None` when no cluster is built.
    pub policy: Option<EffectivePolicy>,
    /// DestinationRule subsets on this port.
    pub subsets: Vec<SubsetReport>,
    /// The HTTP routes in force on this port (`None` for non-HTTP ports).
    pub routes: Option<PortRoutes>,
}

/// Traffic policy as the built cluster carries it.
#[derive(Debug, Clone, Serialize)]
pub struct EffectivePolicy {
    /// Cluster name.
    pub cluster: String,
    /// Load balancer (`LEAST_REQUEST`, `ROUND_ROBIN`, `RING_HASH`...).
    pub load_balancer: String,
    /// Circuit breaker limits (from `connectionPool`; unlimited by default).
    pub circuit_breakers: CircuitBreakerInfo,
    /// Outlier detection, when configured.
    pub outlier_detection: Option<OutlierInfo>,
    /// Client TLS mode (`DISABLE` when the rule sets none).
    pub tls_mode: String,
}

/// Circuit breaker thresholds (`u32::MAX` means unlimited).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CircuitBreakerInfo {
    /// `max_connections` (`tcp.maxConnections`).
    pub max_connections: u32,
    /// `max_pending_requests` (`http.http1MaxPendingRequests`).
    pub max_pending_requests: u32,
    /// `max_requests` (`http.http2MaxRequests`).
    pub max_requests: u32,
    /// `max_retries` (`http.maxRetries`).
    pub max_retries: u32,
}

/// Outlier detection settings.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct OutlierInfo {
    /// Consecutive 5xx before ejection.
    pub consecutive_5xx: Option<u32>,
    /// Consecutive gateway errors before ejection.
    pub consecutive_gateway_errors: Option<u32>,
    /// Interval between sweeps, in milliseconds.
    pub interval_ms: Option<u64>,
    /// Base ejection time, in milliseconds.
    pub base_ejection_time_ms: Option<u64>,
    /// Max ejection percent.
    pub max_ejection_percent: Option<u32>,
}

/// A subset on one port.
#[derive(Debug, Clone, Serialize)]
pub struct SubsetReport {
    /// Name.
    pub name: String,
    /// Labels it selects.
    pub labels: BTreeMap<String, String>,
    /// Where it is declared.
    pub location: String,
    /// Its endpoints.
    pub endpoints: Vec<EndpointInfo>,
    /// Its effective policy; `None` when no cluster is built.
    pub policy: Option<EffectivePolicy>,
}

/// The routes of one HTTP port.
#[derive(Debug, Clone, Serialize)]
pub struct PortRoutes {
    /// The virtual host (`host:port`).
    pub virtual_host: String,
    /// The VirtualService providing its routes (`namespace/name`), or `None` for Istio's
    /// default route to the service.
    pub virtual_service: Option<String>,
    /// Where each route of the virtual host comes from, in order.
    pub envoy_routes: Vec<RouteOrigin>,
}

/// Which VirtualService rule an Envoy route was built from.
#[derive(Debug, Clone, Serialize)]
pub struct RouteOrigin {
    /// Index in `spec.http` (of the delegate, for a delegated route).
    pub http: usize,
    /// Index in its `match`, when it has matches.
    pub match_index: Option<usize>,
    /// Its location (`file:line`).
    pub location: String,
}

/// A VirtualService that applies.
#[derive(Debug, Clone, Serialize)]
pub struct VsReport {
    /// `namespace/name`.
    pub name: String,
    /// Where it is.
    pub location: String,
    /// Its hosts.
    pub hosts: Vec<String>,
    /// Ports of the service it routes.
    pub ports: Vec<u16>,
    /// Its HTTP rules.
    pub http: Vec<HttpRuleReport>,
    /// Rules or matches that can never be used (shadowed by earlier ones).
    pub unreachable: Vec<String>,
}

/// One HTTP rule of a VirtualService.
#[derive(Debug, Clone, Serialize)]
pub struct HttpRuleReport {
    /// Index in `spec.http`.
    pub index: usize,
    /// Its name.
    pub name: Option<String>,
    /// Where it is.
    pub location: String,
    /// Match conditions, one string per match block (empty: matches everything).
    pub matches: Vec<String>,
    /// Where it sends traffic.
    pub destinations: Vec<String>,
    /// Why this client never uses it, when it does not.
    pub skipped: Option<String>,
}

/// A VirtualService that mentions the service but does not apply.
#[derive(Debug, Clone, Serialize)]
pub struct VsIgnored {
    /// `namespace/name`.
    pub name: String,
    /// Where the reason lies (`file:line`).
    pub location: String,
    /// Why it does not apply.
    pub reason: String,
}

/// The outcome of tracing one request through the route table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Trace {
    /// The request's authority.
    pub authority: String,
    /// Its path.
    pub path: String,
    /// Its headers.
    pub headers: BTreeMap<String, String>,
    /// The virtual host chosen.
    pub virtual_host: Option<String>,
    /// The Envoy route that matched (its index in the virtual host).
    pub route_index: Option<usize>,
    /// What happens: the cluster(s), redirect or direct response; or why nothing matched.
    pub outcome: String,
    /// The VirtualService rule the route came from.
    pub origin: Option<String>,
}

impl Report {
    /// The VirtualService rule behind route `index` of virtual host `virtual_host`.
    pub fn route_origin(&self, virtual_host: &str, index: usize) -> Option<String> {
        let routes = self
            .ports
            .iter()
            .filter_map(|p| p.routes.as_ref())
            .find(|r| r.virtual_host == virtual_host)?;
        let Some(vs) = &routes.virtual_service else {
            return Some("the default route to the service (no VirtualService)".to_owned());
        };
        let o = routes.envoy_routes.get(index)?;
        let m = o
            .match_index
            .map(|j| format!(".match[{j}]"))
            .unwrap_or_default();
        Some(format!(
            "VirtualService {vs} spec.http[{}]{m} ({})",
            o.http, o.location
        ))
    }
}

/// The service `query` names: resolved, then the one in the query's namespace, else any.
fn find_service<'m>(mesh: &'m Mesh, query: &Query) -> Result<&'m Service, DescribeError> {
    let host = resolve_short_name(&query.host, &query.namespace);
    let mut found: Vec<&Service> = mesh
        .registry
        .services()
        .iter()
        .filter(|s| s.hostname.eq_ignore_ascii_case(&host))
        .collect();
    found.sort_by_key(|s| s.namespace != query.namespace);
    found
        .first()
        .copied()
        .ok_or(DescribeError::UnknownService(host))
}

/// A sidecar node for `client`.
fn client_node(client: &Client, domain: &str) -> ProxyNode {
    ProxyNode {
        id: format!(
            "sidecar~0.0.0.0~describe-client.{ns}~{ns}.svc.{domain}",
            ns = client.namespace
        ),
        kind: ProxyKind::Sidecar,
        generator: Generator::Envoy,
        ips: Vec::new(),
        namespace: client.namespace.clone(),
        workload: String::new(),
        labels: client.labels.clone(),
        service_account: String::new(),
        cluster_id: String::new(),
        dns_domain: format!("{}.svc.{domain}", client.namespace),
        locality: weft_registry::Locality::default(),
    }
}

fn resolve_client(service: &Service, query: &Query) -> Client {
    query.client.clone().unwrap_or_else(|| Client {
        namespace: service.namespace.clone(),
        labels: BTreeMap::new(),
    })
}

fn name_of(entry: &Loaded) -> String {
    format!("{}/{}", entry.resource.namespace(), entry.resource.name())
}

fn loc(entry: &Loaded, field: &str) -> String {
    entry.source.locate(Some(field)).to_string()
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "{}".to_owned();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Istio's spelling of a serializable enum value.
fn istio_name<T: Serialize + Debug>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{v:?}"),
    }
}

fn is_http(p: Protocol) -> bool {
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

/// The service ports described.
fn selected_ports<'s>(
    service: &'s Service,
    query: &Query,
) -> Result<Vec<&'s weft_registry::Port>, DescribeError> {
    match query.port {
        None => Ok(service.ports.iter().collect()),
        Some(n) => match service.port(n) {
            Some(p) => Ok(vec![p]),
            None => Err(DescribeError::UnknownPort {
                host: service.hostname.clone(),
                port: n,
                ports: service
                    .ports
                    .iter()
                    .map(|p| p.number.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        },
    }
}

/// The RouteConfiguration the client's outbound HTTP listener on `port` gets: the table a
/// request to the service on that port is routed by.
pub fn route_table(
    mesh: &Mesh,
    query: &Query,
    port: u16,
) -> Result<RouteConfiguration, DescribeError> {
    let service = find_service(mesh, query)?;
    let client = resolve_client(service, query);
    let node = client_node(&client, &mesh.options.domain_suffix);
    let scope = Scope::new(mesh, &node);
    let services: Vec<&Service> = scope
        .services
        .iter()
        .copied()
        .filter(|s| s.port(port).is_some())
        .collect();
    Ok(route::outbound_route_config(
        &scope,
        &naming::outbound_route_name(None, port),
        port,
        &services,
    ))
}

/// Describes the service `query` names for its client.
pub fn describe(mesh: &Mesh, query: &Query) -> Result<Report, DescribeError> {
    let service = find_service(mesh, query)?;
    let ports = selected_ports(service, query)?;
    let client = resolve_client(service, query);
    let node = client_node(&client, &mesh.options.domain_suffix);
    let scope = Scope::new(mesh, &node);
    let mut warnings = Vec::new();

    if !service.visible_from(&client.namespace) {
        warnings.push(format!(
            "the service is not exported to namespace {} (ServiceEntry exportTo): clients there \
             cannot reach it",
            client.namespace
        ));
    } else if !scope.services.iter().any(|s| std::ptr::eq(*s, service)) {
        let sidecar = scope
            .sidecar
            .map(|(e, _)| format!("{} ({})", name_of(e), loc(e, "spec.egress")))
            .unwrap_or_default();
        warnings.push(format!(
            "the client's Sidecar {sidecar} does not list this service in its egress hosts: \
             the client has no route or cluster for it"
        ));
    }

    let service_info = service_info(mesh, service, &ports);
    let chosen = scope.destination_rule(&service.hostname, &service.namespace);
    let (destination_rule, other_destination_rules) =
        destination_rules(&scope, service, chosen.map(|(e, _)| e));

    let clusters = cluster::outbound_clusters(&scope);
    let mut port_reports = Vec::new();
    let vs_eval = evaluate_virtual_services(&scope, service, &ports);
    for p in &ports {
        let protocol = protocol::service_port_protocol(p);
        let policy = effective_policy(&clusters, service, p.number, "", chosen);
        let mut subsets = Vec::new();
        if let Some((entry, dr)) = chosen {
            for (i, s) in dr.subsets.iter().enumerate() {
                let eps = mesh.registry.subset_endpoints(service, p.number, &s.labels);
                if eps.is_empty() {
                    warnings.push(format!(
                        "subset {} ({}) selects no endpoints on port {}: traffic routed to it \
                         fails with 503 (no healthy upstream)",
                        s.name,
                        loc(entry, &format!("spec.subsets[{i}]")),
                        p.number
                    ));
                }
                subsets.push(SubsetReport {
                    name: s.name.clone(),
                    labels: s.labels.clone(),
                    location: loc(entry, &format!("spec.subsets[{i}]")),
                    endpoints: eps.iter().map(|e| endpoint_info(e, p.number)).collect(),
                    policy: effective_policy(&clusters, service, p.number, &s.name, chosen),
                });
            }
        }
        let routes = is_http(protocol).then(|| {
            let winner = vs_eval.winners.get(&p.number);
            PortRoutes {
                virtual_host: naming::virtual_host_name(
                    &service.hostname.to_ascii_lowercase(),
                    p.number,
                ),
                virtual_service: winner.map(|(e, _)| name_of(e)),
                envoy_routes: winner.map(|(_, o)| o.clone()).unwrap_or_default(),
            }
        });
        port_reports.push(PortReport {
            port: p.number,
            protocol: protocol.as_str().to_owned(),
            policy,
            subsets,
            routes,
        });
    }
    warnings.extend(vs_eval.warnings);

    Ok(Report {
        service: service_info,
        client,
        destination_rule,
        other_destination_rules,
        ports: port_reports,
        virtual_services: vs_eval.applied,
        ignored_virtual_services: vs_eval.ignored,
        warnings,
        trace: None,
    })
}

fn endpoint_info(e: &Endpoint<'_>, service_port: u16) -> EndpointInfo {
    EndpointInfo {
        workload: e.workload.name.clone(),
        address: e.workload.address.to_string(),
        service_port,
        port: e.port,
        labels: e.workload.labels.clone(),
    }
}

fn service_info(mesh: &Mesh, service: &Service, ports: &[&weft_registry::Port]) -> ServiceInfo {
    let ServiceSource::ServiceEntry { name } = &service.source;
    let entry = mesh
        .config
        .of::<ServiceEntry>()
        .find(|(e, _)| e.resource.name() == name && e.resource.namespace() == service.namespace)
        .map(|(e, _)| e);
    ServiceInfo {
        host: service.hostname.clone(),
        namespace: service.namespace.clone(),
        source: format!("ServiceEntry {}/{name}", service.namespace),
        location: entry.map(|e| e.source.locate(None).to_string()),
        resolution: istio_name(&service.resolution),
        ports: service
            .ports
            .iter()
            .map(|p| PortInfo {
                number: p.number,
                name: p.name.clone(),
                declared: match p.protocol {
                    Protocol::Unsupported => "(not set)".to_owned(),
                    other => other.as_str().to_owned(),
                },
                effective: match protocol::service_port_protocol(p) {
                    Protocol::Unsupported => "auto (sniffed)".to_owned(),
                    other => other.as_str().to_owned(),
                },
            })
            .collect(),
        endpoints: ports
            .iter()
            .flat_map(|p| {
                mesh.registry
                    .endpoints(service, p.number)
                    .iter()
                    .map(|e| endpoint_info(e, p.number))
                    .collect::<Vec<_>>()
            })
            .collect(),
    }
}

/// The chosen DestinationRule and every other one whose host covers the service, with why.
fn destination_rules(
    scope: &Scope<'_>,
    service: &Service,
    chosen: Option<&Loaded>,
) -> (Option<RuleChoice>, Vec<RuleChoice>) {
    let own = scope.node.namespace.as_str();
    let svc_ns = service.namespace.as_str();
    let root = scope.mesh.options.root_namespace.as_str();
    let order = [own, svc_ns, root];
    let rank = |ns: &str| order.iter().position(|o| *o == ns);
    let describe_ns = |ns: &str| {
        let mut roles = Vec::new();
        if ns == own {
            roles.push("the client's namespace");
        }
        if ns == svc_ns && ns != own {
            roles.push("the service's namespace");
        }
        if ns == root && ns != own && ns != svc_ns {
            roles.push("the root namespace");
        }
        roles.join(", ")
    };
    let host = service.hostname.as_str();
    let chosen_info = chosen.and_then(|e| {
        let dr = DestinationRule::from_spec(&e.resource.spec)?;
        Some((e, dr, resolve_short_name(&dr.host, e.resource.namespace())))
    });

    let mut chosen_out = None;
    let mut others = Vec::new();
    for (entry, dr) in scope.mesh.config.of::<DestinationRule>() {
        let ns = entry.resource.namespace();
        let dr_host = resolve_short_name(&dr.host, ns);
        if !host_matches(&dr_host, host) {
            continue;
        }
        let specificity = if dr_host.starts_with('*') {
            format!("wildcard host {dr_host}")
        } else {
            format!("exact host {dr_host}")
        };
        if chosen.is_some_and(|c| std::ptr::eq(c, entry)) {
            let selector = match &dr.workload_selector {
                Some(sel) => format!(
                    ", its workloadSelector {} matches the client",
                    labels_text(&sel.match_labels)
                ),
                None => String::new(),
            };
            chosen_out = Some(RuleChoice {
                name: name_of(entry),
                location: loc(entry, "spec.host"),
                reason: format!(
                    "first match in lookup order (client namespace {own}, service namespace \
                     {svc_ns}, root namespace {root}): in {}, {specificity}{selector}",
                    describe_ns(ns)
                ),
            });
            continue;
        }
        let (field, reason) = if !exported_to(&dr.export_to, ns, own) {
            (
                "spec.exportTo",
                format!("not exported to the client's namespace {own}"),
            )
        } else if let Some(sel) = &dr.workload_selector
            && ns != own
        {
            (
                "spec.workloadSelector",
                format!(
                    "has a workloadSelector ({}), which only applies to workloads in its own \
                     namespace {ns}, not to the client in {own}",
                    labels_text(&sel.match_labels)
                ),
            )
        } else if rank(ns).is_none() {
            (
                "metadata.namespace",
                format!(
                    "in namespace {ns}, which is neither the client's ({own}), the service's \
                     ({svc_ns}) nor the root namespace ({root})"
                ),
            )
        } else if let Some(sel) = &dr.workload_selector
            && !sel
                .match_labels
                .iter()
                .all(|(k, v)| scope.node.labels.get(k) == Some(v))
        {
            (
                "spec.workloadSelector",
                format!(
                    "workloadSelector {} does not match the client's labels {}",
                    labels_text(&sel.match_labels),
                    labels_text(&scope.node.labels)
                ),
            )
        } else if let Some((c, c_dr, c_host)) = &chosen_info {
            let c_ns = c.resource.namespace();
            let c_where = format!("{} ({})", name_of(c), loc(c, "spec.host"));
            if rank(c_ns) < rank(ns) {
                (
                    "metadata.namespace",
                    format!(
                        "{c_where} in {} is found first: namespaces are searched client, \
                         service, then root, and the first with a matching rule wins",
                        describe_ns(c_ns)
                    ),
                )
            } else if c_dr.workload_selector.is_some() && dr.workload_selector.is_none() {
                (
                    "spec.host",
                    format!(
                        "{c_where} has a workloadSelector matching the client and wins over rules without one"
                    ),
                )
            } else if specificity_of(c_host) > specificity_of(&dr_host) {
                (
                    "spec.host",
                    format!("{c_where} has a more specific host ({c_host}) than {dr_host}"),
                )
            } else {
                (
                    "spec.host",
                    format!("{c_where} covers the same host and comes first in load order"),
                )
            }
        } else {
            ("spec.host", "not selected".to_owned())
        };
        others.push(RuleChoice {
            name: name_of(entry),
            location: loc(entry, field),
            reason,
        });
    }
    (chosen_out, others)
}

/// How specific a DestinationRule host is: exact beats any wildcard, a longer wildcard beats a
/// shorter one (the order [`Scope::destination_rule`] uses).
fn specificity_of(host: &str) -> usize {
    if host.starts_with('*') {
        host.len()
    } else {
        usize::MAX
    }
}

/// The effective policy of `outbound|port|subset|host`, read from the built cluster.
fn effective_policy(
    clusters: &[Cluster],
    service: &Service,
    port: u16,
    subset: &str,
    rule: Option<(&Loaded, &DestinationRule)>,
) -> Option<EffectivePolicy> {
    let name = naming::outbound_cluster(port, subset, &service.hostname);
    let c = clusters.iter().find(|c| c.name == name)?;
    let t = c
        .circuit_breakers
        .as_ref()
        .and_then(|cb| cb.thresholds.first());
    let value = |v: Option<&envoy_types::pb::google::protobuf::UInt32Value>| {
        v.map_or(u32::MAX, |v| v.value)
    };
    let ms = |d: &envoy_types::pb::google::protobuf::Duration| {
        u64::try_from(d.seconds)
            .unwrap_or_default()
            .saturating_mul(1000)
            .saturating_add(u64::try_from(d.nanos / 1_000_000).unwrap_or_default())
    };
    let lb = EnvoyLb::try_from(c.lb_policy)
        .map(|l| match l {
            EnvoyLb::LeastRequest => "LEAST_REQUEST",
            EnvoyLb::RoundRobin => "ROUND_ROBIN",
            EnvoyLb::Random => "RANDOM",
            EnvoyLb::RingHash => "RING_HASH",
            EnvoyLb::Maglev => "MAGLEV",
            EnvoyLb::ClusterProvided => "ORIGINAL_DST (PASSTHROUGH)",
            _ => "OTHER",
        })
        .unwrap_or("OTHER")
        .to_owned();
    let policy = cluster::cluster_policy(rule, port, subset);
    Some(EffectivePolicy {
        cluster: name,
        load_balancer: lb,
        circuit_breakers: CircuitBreakerInfo {
            max_connections: value(t.and_then(|t| t.max_connections.as_ref())),
            max_pending_requests: value(t.and_then(|t| t.max_pending_requests.as_ref())),
            max_requests: value(t.and_then(|t| t.max_requests.as_ref())),
            max_retries: value(t.and_then(|t| t.max_retries.as_ref())),
        },
        outlier_detection: c.outlier_detection.as_ref().map(|o| OutlierInfo {
            consecutive_5xx: o.consecutive_5xx.as_ref().map(|v| v.value),
            consecutive_gateway_errors: o.consecutive_gateway_failure.as_ref().map(|v| v.value),
            interval_ms: o.interval.as_ref().map(ms),
            base_ejection_time_ms: o.base_ejection_time.as_ref().map(ms),
            max_ejection_percent: o.max_ejection_percent.as_ref().map(|v| v.value),
        }),
        tls_mode: policy
            .tls
            .map_or_else(|| "DISABLE".to_owned(), |t| istio_name(&t.mode)),
    })
}

/// What the VirtualService evaluation found.
#[derive(Debug, Default)]
struct VsEval<'a> {
    applied: Vec<VsReport>,
    ignored: Vec<VsIgnored>,
    warnings: Vec<String>,
    /// Per HTTP port: the VirtualService whose routes the service's virtual host gets.
    winners: BTreeMap<u16, (&'a Loaded, Vec<RouteOrigin>)>,
}

/// A VirtualService with hosts resolved.
struct Candidate<'a> {
    entry: &'a Loaded,
    vs: &'a VirtualService,
    hosts: Vec<String>,
    /// An exact host equals the service's.
    exact: bool,
    /// The longest wildcard host covering the service.
    wildcard: usize,
}

fn hosts_overlap(a: &str, b: &str) -> bool {
    host_matches(a, b) || host_matches(b, a)
}

fn evaluate_virtual_services<'a>(
    scope: &Scope<'a>,
    service: &Service,
    ports: &[&weft_registry::Port],
) -> VsEval<'a> {
    let mut out = VsEval::default();
    let own = scope.node.namespace.as_str();
    let host = service.hostname.to_ascii_lowercase();
    let all: Vec<(&'a Loaded, &'a VirtualService)> =
        scope.mesh.config.of::<VirtualService>().collect();

    // Delegates (no hosts) whose routes send traffic to the service.
    for (entry, vs) in &all {
        if !vs.hosts.is_empty() {
            continue;
        }
        let ns = entry.resource.namespace();
        let mentions = vs.http.iter().any(|r| {
            r.route
                .iter()
                .any(|d| resolve_short_name(&d.destination.host, ns).eq_ignore_ascii_case(&host))
        });
        if !mentions {
            continue;
        }
        let referrers: Vec<&(&Loaded, &VirtualService)> = all
            .iter()
            .filter(|(_, root)| {
                root.http.iter().any(|r| {
                    r.delegate.as_ref().is_some_and(|d| {
                        d.name.as_deref() == Some(entry.resource.name())
                            && d.namespace.as_deref().unwrap_or(ns) == ns
                    })
                })
            })
            .collect();
        let reason = match referrers.first() {
            None => "a delegate VirtualService (no hosts) that no VirtualService references \
                     with spec.http[].delegate: its routes are never used"
                .to_owned(),
            Some((root, _)) if !exported_to(&vs.export_to, ns, root.resource.namespace()) => {
                format!(
                    "a delegate of {} ({}), but not exported to its namespace {}",
                    name_of(root),
                    loc(root, "spec.http"),
                    root.resource.namespace()
                )
            }
            Some((root, _)) => format!(
                "a delegate: its routes apply only as part of {} ({}), whose hosts decide \
                 where they are used",
                name_of(root),
                loc(root, "spec.http")
            ),
        };
        out.ignored.push(VsIgnored {
            name: name_of(entry),
            location: loc(entry, "spec.http"),
            reason,
        });
    }

    // Root VirtualServices whose hosts cover the service, in load order.
    let mut candidates: Vec<Candidate<'a>> = Vec::new();
    for (entry, vs) in &all {
        let ns = entry.resource.namespace();
        let hosts: Vec<String> = vs
            .hosts
            .iter()
            .map(|h| resolve_short_name(h, ns).to_ascii_lowercase())
            .collect();
        if !hosts.iter().any(|h| hosts_overlap(h, &host)) {
            continue;
        }
        let gateways = crate::translate::route::bound_gateways(vs, ns);
        if !gateways.iter().any(|g| g == "mesh") {
            out.ignored.push(VsIgnored {
                name: name_of(entry),
                location: loc(entry, "spec.gateways"),
                reason: format!(
                    "bound only to gateways ({}); add `mesh` to spec.gateways to apply it to \
                     sidecars",
                    gateways.join(", ")
                ),
            });
            continue;
        }
        if !exported_to(&vs.export_to, ns, own) {
            out.ignored.push(VsIgnored {
                name: name_of(entry),
                location: loc(entry, "spec.exportTo"),
                reason: format!(
                    "not exported to the client's namespace {own} (exportTo: {})",
                    vs.export_to.join(", ")
                ),
            });
            continue;
        }
        let exact = hosts.contains(&host);
        let wildcard = hosts
            .iter()
            .filter(|h| h.starts_with('*') && host_matches(h, &host))
            .map(String::len)
            .max()
            .unwrap_or(0);
        candidates.push(Candidate {
            entry,
            vs,
            hosts,
            exact,
            wildcard,
        });
    }

    let http_ports: Vec<u16> = ports
        .iter()
        .filter(|p| is_http(protocol::service_port_protocol(p)))
        .map(|p| p.number)
        .collect();
    let exact_exists = candidates.iter().any(|c| c.exact);
    // The wildcard claimer: the longest wildcard, the earliest on ties.
    let mut claimer: Option<usize> = None;
    if !exact_exists {
        for (i, c) in candidates.iter().enumerate() {
            if c.wildcard > 0 && claimer.is_none_or(|j| c.wildcard > candidates[j].wildcard) {
                claimer = Some(i);
            }
        }
    }

    // Per candidate: the ports it wins, the ports it loses and why.
    let mut won: BTreeMap<usize, Vec<u16>> = BTreeMap::new();
    let mut lost: BTreeMap<usize, Vec<(String, String)>> = BTreeMap::new();
    for port in &http_ports {
        let mut winner: Option<usize> = None;
        for (i, c) in candidates.iter().enumerate() {
            let eligible = c.exact || claimer == Some(i);
            if !eligible {
                let by = claimer
                    .or_else(|| candidates.iter().position(|x| x.exact))
                    .and_then(|j| candidates.get(j));
                let reason = match by {
                    Some(b) if b.exact => format!(
                        "its wildcard host yields to {} ({}), which names {host} exactly",
                        name_of(b.entry),
                        loc(b.entry, "spec.hosts")
                    ),
                    Some(b) => format!(
                        "{} ({}) has a longer (or earlier) wildcard host covering {host}",
                        name_of(b.entry),
                        loc(b.entry, "spec.hosts")
                    ),
                    None => "its hosts do not claim the service".to_owned(),
                };
                lost.entry(i)
                    .or_default()
                    .push((loc(c.entry, "spec.hosts"), reason));
                continue;
            }
            if let Some(w) = winner {
                let by = &candidates[w];
                lost.entry(i).or_default().push((
                    loc(c.entry, "spec.hosts"),
                    format!(
                        "shadowed by {} ({}), an earlier VirtualService for the same host: \
                         sidecars use only the first one (merge the rules into it)",
                        name_of(by.entry),
                        loc(by.entry, "spec.hosts")
                    ),
                ));
                continue;
            }
            match effective_routes(scope, c, *port) {
                Ok(origins) => {
                    winner = Some(i);
                    won.entry(i).or_default().push(*port);
                    out.winners.insert(*port, (c.entry, origins));
                }
                Err((location, reason)) => {
                    lost.entry(i).or_default().push((location, reason));
                }
            }
        }
    }

    for (i, c) in candidates.iter().enumerate() {
        if let Some(ports) = won.get(&i) {
            out.applied.push(vs_report(scope, c, ports));
            continue;
        }
        let (location, reason) = match lost.get(&i).and_then(|l| l.first()) {
            Some((l, r)) => {
                let port_note = if http_ports.len() > 1 {
                    format!(
                        " (port {})",
                        http_ports.first().copied().unwrap_or_default()
                    )
                } else {
                    String::new()
                };
                (l.clone(), format!("{r}{port_note}"))
            }
            None => {
                let tcp: Vec<String> = ports
                    .iter()
                    .map(|p| {
                        format!(
                            "{} {}",
                            p.number,
                            protocol::service_port_protocol(p).as_str()
                        )
                    })
                    .collect();
                (
                    loc(c.entry, "spec.http"),
                    format!(
                        "the described port(s) ({}) are not HTTP, so its http routes do not \
                         apply there",
                        tcp.join(", ")
                    ),
                )
            }
        };
        out.ignored.push(VsIgnored {
            name: name_of(c.entry),
            location,
            reason,
        });
    }
    out
}

/// Whether a match's `sourceLabels`/`sourceNamespace`/`gateways` admit this client; the reason
/// when not.
fn match_skip_reason(scope: &Scope<'_>, m: &HttpMatchRequest, port: u16) -> Option<String> {
    if let Some(p) = m.port
        && p != u32::from(port)
    {
        return Some(format!(
            "match.port {p} only: the host matches this VirtualService on port {p}, not on port {port}"
        ));
    }
    if !m.gateways.is_empty() {
        if m.gateways.iter().any(|g| g == "mesh") {
            return None;
        }
        return Some(format!(
            "match.gateways ({}) does not include mesh",
            m.gateways.join(", ")
        ));
    }
    let node = scope.node;
    if !m
        .source_labels
        .iter()
        .all(|(k, v)| node.labels.get(k) == Some(v))
    {
        return Some(format!(
            "sourceLabels {} do not match the client's labels {}",
            labels_text(&m.source_labels),
            labels_text(&node.labels)
        ));
    }
    if let Some(ns) = &m.source_namespace
        && *ns != node.namespace
    {
        return Some(format!(
            "sourceNamespace {ns} is not the client's namespace {}",
            node.namespace
        ));
    }
    if m.headers
        .keys()
        .chain(m.without_headers.keys())
        .any(|k| k.starts_with("@request.auth.claims"))
    {
        return Some("JWT claim conditions cannot be expressed in a route; skipped".to_owned());
    }
    None
}

fn string_is_all(sm: Option<&StringMatch>) -> bool {
    match sm {
        None => true,
        Some(StringMatch::Prefix(p)) => p == "/" || p.is_empty(),
        Some(StringMatch::Regex(r)) => r == ".*",
        _ => false,
    }
}

/// A match that translation turns into a catch-all (after which it stops).
fn is_catch_all(m: &HttpMatchRequest) -> bool {
    string_is_all(m.uri.as_ref())
        && m.headers.is_empty()
        && m.without_headers.is_empty()
        && m.query_params.is_empty()
        && m.method.is_none()
        && m.scheme.is_none()
        && m.authority.is_none()
}

/// The Envoy routes `c` yields for this client on `port`, as origins; or where and why it
/// yields none.
fn effective_routes(
    scope: &Scope<'_>,
    c: &Candidate<'_>,
    port: u16,
) -> Result<Vec<RouteOrigin>, (String, String)> {
    let mut out = Vec::new();
    let mut first_skip: Option<(String, String)> = None;
    let ns = c.entry.resource.namespace();
    'rules: for (i, r) in c.vs.http.iter().enumerate() {
        if let Some(d) = &r.delegate {
            let d_ns = d.namespace.as_deref().unwrap_or(ns);
            let Some(d_name) = d.name.as_deref() else {
                continue;
            };
            let found = scope
                .mesh
                .config
                .of::<VirtualService>()
                .find(|(e, _)| e.resource.name() == d_name && e.resource.namespace() == d_ns);
            match found {
                Some((de, dvs))
                    if dvs.hosts.is_empty() && exported_to(&dvs.export_to, d_ns, ns) =>
                {
                    // Delegated routes are listed by the delegate's rules; merging may drop
                    // conflicting ones, so the mapping is by rule, not by match.
                    for j in 0..dvs.http.len() {
                        out.push(RouteOrigin {
                            http: j,
                            match_index: None,
                            location: loc(de, &format!("spec.http[{j}]")),
                        });
                    }
                }
                _ => {
                    first_skip.get_or_insert((
                        loc(c.entry, &format!("spec.http[{i}].delegate")),
                        format!(
                            "delegate {d_ns}/{d_name} does not exist, has hosts, or is not \
                             exported to {ns}"
                        ),
                    ));
                }
            }
            continue;
        }
        if r.matches.is_empty() {
            out.push(RouteOrigin {
                http: i,
                match_index: None,
                location: loc(c.entry, &format!("spec.http[{i}]")),
            });
            break;
        }
        for (j, m) in r.matches.iter().enumerate() {
            let field = format!("spec.http[{i}].match[{j}]");
            if let Some(reason) = match_skip_reason(scope, m, port) {
                first_skip.get_or_insert((loc(c.entry, &field), reason));
                continue;
            }
            out.push(RouteOrigin {
                http: i,
                match_index: Some(j),
                location: loc(c.entry, &field),
            });
            if is_catch_all(m) {
                break 'rules;
            }
        }
    }
    if out.is_empty() {
        Err(first_skip.unwrap_or_else(|| {
            (
                loc(c.entry, "spec.http"),
                "it has no HTTP routes".to_owned(),
            )
        }))
    } else {
        Ok(out)
    }
}

fn string_match_text(sm: &StringMatch) -> String {
    match sm {
        StringMatch::Exact(v) => format!("exact {v}"),
        StringMatch::Prefix(v) => format!("prefix {v}"),
        StringMatch::Regex(v) => format!("regex {v}"),
        StringMatch::Present => "present".to_owned(),
    }
}

/// One match block as text (`uri prefix /api, header end-user exact jason`).
pub fn match_text(m: &HttpMatchRequest) -> String {
    let mut parts = Vec::new();
    for (what, sm) in [
        ("uri", &m.uri),
        ("method", &m.method),
        ("scheme", &m.scheme),
        ("authority", &m.authority),
    ] {
        if let Some(sm) = sm {
            parts.push(format!("{what} {}", string_match_text(sm)));
        }
    }
    for (k, v) in &m.headers {
        parts.push(format!("header {k} {}", string_match_text(v)));
    }
    for (k, v) in &m.without_headers {
        parts.push(format!("without header {k} {}", string_match_text(v)));
    }
    for (k, v) in &m.query_params {
        parts.push(format!("query {k} {}", string_match_text(v)));
    }
    if let Some(p) = m.port {
        parts.push(format!("port {p}"));
    }
    if !m.source_labels.is_empty() {
        parts.push(format!("sourceLabels {}", labels_text(&m.source_labels)));
    }
    if let Some(ns) = &m.source_namespace {
        parts.push(format!("sourceNamespace {ns}"));
    }
    if !m.gateways.is_empty() {
        parts.push(format!("gateways {}", m.gateways.join(",")));
    }
    if m.ignore_uri_case {
        parts.push("ignoreUriCase".to_owned());
    }
    if parts.is_empty() {
        "any request".to_owned()
    } else {
        parts.join(", ")
    }
}

fn destinations_text(r: &HttpRoute) -> Vec<String> {
    if let Some(d) = &r.delegate {
        return vec![format!(
            "delegate {}/{}",
            d.namespace.as_deref().unwrap_or("."),
            d.name.as_deref().unwrap_or_default()
        )];
    }
    if r.redirect.is_some() {
        return vec!["redirect".to_owned()];
    }
    if let Some(d) = &r.direct_response {
        return vec![format!("direct response {}", d.status)];
    }
    r.route
        .iter()
        .map(|d| {
            let mut s = d.destination.host.clone();
            if let Some(p) = &d.destination.port {
                s.push_str(&format!(":{}", p.number));
            }
            if let Some(sub) = &d.destination.subset {
                s.push_str(&format!(" subset {sub}"));
            }
            if let Some(w) = d.weight {
                s.push_str(&format!(" weight {w}"));
            }
            s
        })
        .collect()
}

fn vs_report(scope: &Scope<'_>, c: &Candidate<'_>, ports: &[u16]) -> VsReport {
    let port = ports.first().copied().unwrap_or_default();
    let http =
        c.vs.http
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let skipped = (!r.matches.is_empty())
                    .then(|| {
                        let reasons: Vec<String> = r
                            .matches
                            .iter()
                            .filter_map(|m| match_skip_reason(scope, m, port))
                            .collect();
                        (reasons.len() == r.matches.len())
                            .then(|| reasons.first().cloned())
                            .flatten()
                    })
                    .flatten();
                HttpRuleReport {
                    index: i,
                    name: r.name.clone(),
                    location: loc(c.entry, &format!("spec.http[{i}]")),
                    matches: r.matches.iter().map(match_text).collect(),
                    destinations: destinations_text(r),
                    skipped,
                }
            })
            .collect();
    // The analyzer's shadowing check, run on this VirtualService alone.
    let only = weft_analyze::ConfigSet::new(vec![c.entry.clone()]);
    let unreachable = weft_analyze::analyze_config(&only)
        .into_iter()
        .filter(|f| {
            f.message_type.code == msg::VIRTUAL_SERVICE_UNREACHABLE_RULE.code
                || f.message_type.code == msg::VIRTUAL_SERVICE_INEFFECTIVE_MATCH.code
        })
        .map(|f| match &f.location {
            Some(l) => format!("{} ({l})", f.message),
            None => f.message,
        })
        .collect();
    VsReport {
        name: name_of(c.entry),
        location: loc(c.entry, "spec.hosts"),
        hosts: c.hosts.clone(),
        ports: ports.to_vec(),
        http,
        unreachable,
    }
}

#[cfg(test)]
#[path = "describe_tests.rs"]
mod tests;
