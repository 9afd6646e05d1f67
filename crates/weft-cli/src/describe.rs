//! `weft describe service HOST -f PATH...`: which DestinationRule and VirtualServices apply to a
//! service for a client, why the others do not, and where a traced request would go.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::ValueEnum;
use envoy_types::pb::envoy::config::bootstrap::v3::{Bootstrap, bootstrap};
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, Listener};
use envoy_types::pb::envoy::config::route::v3::{
    RouteConfiguration, route, route_action::ClusterSpecifier,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use weft_api::{Loader, Severity};
use weft_proxy_config::model::NetworkFilter;
use weft_proxy_route::{ClusterRef, ClusterTarget, RequestView, RouteEntryAction};
use weft_xds::describe::{self, Client, EffectivePolicy, Query, Report, Trace};
use weft_xds::translate::filters;
use weft_xds::{Mesh, MeshOptions};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Explain the DestinationRule and VirtualServices that apply to a service.
    Service(ServiceArgs),
}

#[derive(Debug, clap::Args)]
struct ServiceArgs {
    /// The service host: a fully qualified name, or a short name in --namespace.
    host: String,

    /// Configuration files or directories (as for `weft analyze`).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1.., value_name = "PATH")]
    paths: Vec<PathBuf>,

    /// Namespace of a short host name, and of resources whose metadata names none.
    #[arg(short, long, default_value = weft_api::meta::DEFAULT_NAMESPACE)]
    namespace: String,

    /// Describe only this service port.
    #[arg(long)]
    port: Option<u16>,

    /// The client's namespace (default: the service's).
    #[arg(long)]
    client_namespace: Option<String>,

    /// A label of the client workload (repeatable).
    #[arg(long = "client-label", value_name = "KEY=VALUE", value_parser = key_value)]
    client_labels: Vec<(String, String)>,

    /// Trace a request with this path through the routes.
    #[arg(long)]
    path: Option<String>,

    /// A header of the traced request (repeatable).
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = key_value)]
    headers: Vec<(String, String)>,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// Sections for people.
    Text,
    /// The report as JSON.
    Json,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

pub(crate) fn run(args: Args) -> ExitCode {
    match args.what {
        What::Service(a) => service(a),
    }
}

fn service(args: ServiceArgs) -> ExitCode {
    let load = Loader::with_default_namespace(&args.namespace).load_paths(&args.paths);
    for f in &load.findings {
        eprintln!("warning: {f}");
    }
    let mut good = Vec::new();
    for loaded in load.resources {
        let errors: Vec<_> = loaded
            .resource
            .validate()
            .into_iter()
            .filter(|i| i.severity == Severity::Error)
            .collect();
        if errors.is_empty() {
            good.push(loaded);
            continue;
        }
        for e in errors {
            eprintln!(
                "warning: {} {}/{} ({}) is invalid and ignored: {}: {}",
                loaded.resource.kind().name(),
                loaded.resource.namespace(),
                loaded.resource.name(),
                loaded.source.locate(Some(&e.path)),
                e.path,
                e.message
            );
        }
    }
    let mesh = Mesh::new(weft_analyze::ConfigSet::new(good), MeshOptions::default());
    let client =
        (args.client_namespace.is_some() || !args.client_labels.is_empty()).then(|| Client {
            namespace: args
                .client_namespace
                .clone()
                .unwrap_or_else(|| args.namespace.clone()),
            labels: args.client_labels.iter().cloned().collect(),
        });
    let query = Query {
        host: args.host.clone(),
        namespace: args.namespace.clone(),
        port: args.port,
        client,
    };
    let mut report = match describe::describe(&mesh, &query) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.path.is_some() || !args.headers.is_empty() {
        report.trace = Some(trace(&mesh, &query, &report, &args));
    }

    let mut stdout = std::io::stdout().lock();
    let written = match args.output {
        Format::Json => serde_json::to_writer_pretty(&mut stdout, &report)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(stdout)),
        Format::Text => stdout.write_all(text(&report).as_bytes()),
    };
    if let Err(e) = written
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("error: writing output: {e}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// Routes a request through the client's real route table with weft's route matcher.
fn trace(mesh: &Mesh, query: &Query, report: &Report, args: &ServiceArgs) -> Trace {
    let path = args.path.clone().unwrap_or_else(|| "/".to_owned());
    let mut out = Trace {
        authority: report.service.host.clone(),
        path: path.clone(),
        headers: args.headers.iter().cloned().collect(),
        ..Default::default()
    };
    let Some(port) = report
        .ports
        .iter()
        .find(|p| p.routes.is_some())
        .map(|p| p.port)
    else {
        out.outcome = "no HTTP port to trace on: TCP traffic is not routed by path".to_owned();
        return out;
    };
    out.authority = format!("{}:{port}", report.service.host);
    let table = match describe::route_table(mesh, query, port) {
        Ok(t) => t,
        Err(e) => {
            out.outcome = format!("cannot build the route table: {e}");
            return out;
        }
    };
    let config = match proxy_model(table, port) {
        Ok(c) => c,
        Err(e) => {
            out.outcome = format!("weft's proxy rejects the route table: {e}");
            return out;
        }
    };
    let Some(hcm) = config
        .listeners
        .first()
        .and_then(|l| l.filter_chains.first())
        .and_then(|fc| match &fc.filter {
            NetworkFilter::Http(h) => Some(h.clone()),
            NetworkFilter::Tcp(_) => None,
        })
    else {
        out.outcome = "the route table did not convert to an HTTP listener".to_owned();
        return out;
    };
    let mut headers = http::HeaderMap::new();
    for (k, v) in &args.headers {
        if let (Ok(name), Ok(value)) = (
            http::header::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            headers.append(name, value);
        }
    }
    let req = RequestView {
        method: &http::Method::GET,
        scheme: "http",
        authority: &out.authority,
        path_and_query: &path,
        protocol: None,
        headers: &headers,
    };
    let table = &hcm.route_config;
    let Some(vh) = table
        .select_virtual_host_for(&req)
        .and_then(|id| table.virtual_host(id))
    else {
        out.outcome = "no virtual host matches the authority".to_owned();
        return out;
    };
    out.virtual_host = Some(vh.name().to_owned());
    let Some(matched) = vh.find_route(&req, 0) else {
        out.outcome = "no route matches: the proxy answers 404".to_owned();
        return out;
    };
    let index = vh.routes().iter().position(|r| std::ptr::eq(r, matched));
    out.route_index = index;
    out.outcome = match matched.action() {
        RouteEntryAction::Route(t) => match &t.cluster {
            ClusterTarget::Cluster(c) => format!("forwarded to cluster {c}"),
            ClusterTarget::ClusterHeader(h) => format!("forwarded to the cluster named by {h}"),
            ClusterTarget::Weighted(w) => {
                let parts: Vec<String> = w
                    .clusters()
                    .iter()
                    .map(|c| {
                        let name = match &c.cluster {
                            ClusterRef::Name(n) => n.clone(),
                            ClusterRef::Header(h) => format!("cluster from header {h}"),
                        };
                        format!("{name} (weight {})", c.weight)
                    })
                    .collect();
                format!("split between {}", parts.join(", "))
            }
        },
        RouteEntryAction::Redirect(r) => format!(
            "redirected{}{}",
            r.host
                .as_deref()
                .map(|h| format!(" to host {h}"))
                .unwrap_or_default(),
            r.port.map(|p| format!(" port {p}")).unwrap_or_default()
        ),
        RouteEntryAction::DirectResponse(d) => format!("answered directly with {}", d.status),
    };
    out.origin = index.and_then(|i| report.route_origin(vh.name(), i));
    out
}

/// The route table inside a one-listener bootstrap, converted by weft's proxy configuration
/// loader (so the trace uses exactly what the proxy would run).
fn proxy_model(
    table: RouteConfiguration,
    port: u16,
) -> Result<weft_proxy_config::model::ProxyConfig, weft_proxy_config::ConfigError> {
    let clusters: Vec<Cluster> = referenced_clusters(&table)
        .into_iter()
        .map(|name| Cluster {
            name,
            cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::Static as i32,
            )),
            ..Default::default()
        })
        .collect();
    let mut hcm = filters::hcm("describe", "describe", false);
    hcm.route_specifier = Some(RouteSpecifier::RouteConfig(table));
    let listener = Listener {
        name: "describe".to_owned(),
        address: Some(filters::socket("127.0.0.1", port)),
        filter_chains: vec![FilterChain {
            filters: vec![filters::hcm_filter(&hcm)],
            ..Default::default()
        }],
        ..Default::default()
    };
    let bootstrap = Bootstrap {
        static_resources: Some(bootstrap::StaticResources {
            listeners: vec![listener],
            clusters,
            ..Default::default()
        }),
        ..Default::default()
    };
    weft_proxy_config::convert_bootstrap(&bootstrap, Path::new("/"))
}

fn referenced_clusters(table: &RouteConfiguration) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for r in table.virtual_hosts.iter().flat_map(|v| &v.routes) {
        let Some(route::Action::Route(a)) = &r.action else {
            continue;
        };
        match &a.cluster_specifier {
            Some(ClusterSpecifier::Cluster(c)) => {
                out.insert(c.clone());
            }
            Some(ClusterSpecifier::WeightedClusters(w)) => {
                out.extend(w.clusters.iter().map(|c| c.name.clone()));
            }
            _ => {}
        }
        out.extend(
            a.request_mirror_policies
                .iter()
                .map(|m| m.cluster.clone())
                .filter(|c| !c.is_empty()),
        );
    }
    out
}

fn limit(v: u32) -> String {
    if v == u32::MAX {
        "unlimited".to_owned()
    } else {
        v.to_string()
    }
}

fn policy_text(out: &mut String, indent: &str, p: &EffectivePolicy) {
    let cb = p.circuit_breakers;
    let _ = writeln!(
        out,
        "{indent}Cluster {}: load balancer {}, TLS {}",
        p.cluster, p.load_balancer, p.tls_mode
    );
    let _ = writeln!(
        out,
        "{indent}  Circuit breakers: max connections {}, max pending requests {}, max requests {}, max retries {}",
        limit(cb.max_connections),
        limit(cb.max_pending_requests),
        limit(cb.max_requests),
        limit(cb.max_retries)
    );
    match &p.outlier_detection {
        Some(o) => {
            let opt = |v: Option<u64>, unit: &str| {
                v.map_or_else(|| "default".to_owned(), |v| format!("{v}{unit}"))
            };
            let _ = writeln!(
                out,
                "{indent}  Outlier detection: consecutive 5xx {}, consecutive gateway errors {}, interval {}, base ejection time {}, max ejection {}",
                opt(o.consecutive_5xx.map(u64::from), ""),
                opt(o.consecutive_gateway_errors.map(u64::from), ""),
                opt(o.interval_ms, "ms"),
                opt(o.base_ejection_time_ms, "ms"),
                opt(o.max_ejection_percent.map(u64::from), "%")
            );
        }
        None => {
            let _ = writeln!(out, "{indent}  Outlier detection: off");
        }
    }
}

fn labels(l: &std::collections::BTreeMap<String, String>) -> String {
    if l.is_empty() {
        return "{}".to_owned();
    }
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The report as short sections, in the spirit of `istioctl x describe`.
fn text(r: &Report) -> String {
    let mut out = String::new();
    let s = &r.service;
    let _ = writeln!(out, "Service: {} (namespace {})", s.host, s.namespace);
    let _ = writeln!(
        out,
        "  Declared by {}{}, resolution {}",
        s.source,
        s.location
            .as_deref()
            .map(|l| format!(" at {l}"))
            .unwrap_or_default(),
        s.resolution
    );
    for p in &s.ports {
        let _ = writeln!(
            out,
            "  Port {} ({}): {} (declared {})",
            p.number, p.name, p.effective, p.declared
        );
    }
    if s.endpoints.is_empty() {
        let _ = writeln!(out, "  Endpoints: none");
    } else {
        let _ = writeln!(out, "  Endpoints:");
        for e in &s.endpoints {
            let _ = writeln!(
                out,
                "    port {}: {} {}:{} {}",
                e.service_port,
                e.workload,
                e.address,
                e.port,
                labels(&e.labels)
            );
        }
    }
    let _ = writeln!(
        out,
        "Client: sidecar in namespace {}, labels {}",
        r.client.namespace,
        labels(&r.client.labels)
    );

    let _ = writeln!(out);
    match &r.destination_rule {
        Some(d) => {
            let _ = writeln!(out, "DestinationRule: {} ({})", d.name, d.location);
            let _ = writeln!(out, "  Applies because: {}", d.reason);
        }
        None => {
            let _ = writeln!(out, "DestinationRule: none applies (Istio's defaults)");
        }
    }
    for d in &r.other_destination_rules {
        let _ = writeln!(
            out,
            "  Does not apply: {} ({}): {}",
            d.name, d.location, d.reason
        );
    }

    for p in &r.ports {
        let _ = writeln!(out);
        let _ = writeln!(out, "Port {} ({})", p.port, p.protocol);
        match &p.policy {
            Some(policy) => policy_text(&mut out, "  ", policy),
            None => {
                let _ = writeln!(out, "  No cluster is built for this port");
            }
        }
        for sub in &p.subsets {
            let names: Vec<String> = sub
                .endpoints
                .iter()
                .map(|e| format!("{} {}", e.workload, e.address))
                .collect();
            let _ = writeln!(
                out,
                "  Subset {} ({}) at {}: {} endpoint(s){}",
                sub.name,
                labels(&sub.labels),
                sub.location,
                sub.endpoints.len(),
                if names.is_empty() {
                    String::new()
                } else {
                    format!(": {}", names.join(", "))
                }
            );
            if let Some(policy) = &sub.policy {
                policy_text(&mut out, "    ", policy);
            }
        }
        if let Some(routes) = &p.routes {
            let _ = writeln!(
                out,
                "  Routes: virtual host {}, {}",
                routes.virtual_host,
                match &routes.virtual_service {
                    Some(vs) => format!("from VirtualService {vs}"),
                    None => "Istio's default route (no VirtualService applies)".to_owned(),
                }
            );
        }
    }

    let _ = writeln!(out);
    if r.virtual_services.is_empty() {
        let _ = writeln!(out, "VirtualServices applied: none");
    } else {
        let _ = writeln!(out, "VirtualServices applied:");
    }
    for vs in &r.virtual_services {
        let ports: Vec<String> = vs.ports.iter().map(u16::to_string).collect();
        let _ = writeln!(
            out,
            "  {} ({}), port(s) {}",
            vs.name,
            vs.location,
            ports.join(", ")
        );
        for h in &vs.http {
            let when = if h.matches.is_empty() {
                "any request".to_owned()
            } else {
                h.matches.join(" OR ")
            };
            let _ = writeln!(
                out,
                "    http[{}]{} ({}): when {} -> {}",
                h.index,
                h.name
                    .as_deref()
                    .map(|n| format!(" {n:?}"))
                    .unwrap_or_default(),
                h.location,
                when,
                h.destinations.join(", ")
            );
            if let Some(why) = &h.skipped {
                let _ = writeln!(out, "      Not used by this client: {why}");
            }
        }
        for u in &vs.unreachable {
            let _ = writeln!(out, "    Never matches: {u}");
        }
    }
    if !r.ignored_virtual_services.is_empty() {
        let _ = writeln!(out, "VirtualServices that do not apply:");
        for vs in &r.ignored_virtual_services {
            let _ = writeln!(out, "  {} ({}): {}", vs.name, vs.location, vs.reason);
        }
    }
    if !r.warnings.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "Warnings:");
        for w in &r.warnings {
            let _ = writeln!(out, "  {w}");
        }
    }
    if let Some(t) = &r.trace {
        let _ = writeln!(out);
        let headers: Vec<String> = t.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let _ = writeln!(
            out,
            "Trace: GET http://{}{}{}",
            t.authority,
            t.path,
            if headers.is_empty() {
                String::new()
            } else {
                format!(" with {}", headers.join(", "))
            }
        );
        if let Some(vh) = &t.virtual_host {
            let _ = writeln!(out, "  Virtual host: {vh}");
        }
        if let Some(i) = t.route_index {
            let _ = writeln!(out, "  Route: #{i}");
        }
        let _ = writeln!(out, "  Outcome: {}", t.outcome);
        if let Some(o) = &t.origin {
            let _ = writeln!(out, "  From: {o}");
        }
    }
    out
}
