use std::path::Path;

use envoy_types::pb::envoy::config::bootstrap::v3::{Bootstrap, bootstrap::StaticResources};
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    Address, SocketAddress, address, header_value_option::HeaderAppendAction, socket_address,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, Route, RouteAction, RouteConfiguration, VirtualHost,
    header_matcher::HeaderMatchSpecifier, query_parameter_matcher::QueryParameterMatchSpecifier,
    redirect_action, retry_policy, route, route_action, route_match::PathSpecifier,
};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::{Cors, CorsPolicy as EnvoyCors};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{HttpFault, fault_abort};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_connection_manager, http_filter,
};
use envoy_types::pb::envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use weft_analyze::ConfigSet;
use weft_api::Loader;
use weft_api::load::LoadResult;
use weft_api::networking::Gateway;
use weft_registry::Service;

use super::*;
use crate::mesh::{Mesh, MeshOptions};
use crate::node::{ProxyKind, ProxyNode};
use crate::translate::scope::GatewayServer;

// ------------------------------------------------------------------------------------------
// Helpers

fn mesh_with(yaml: &str, options: MeshOptions) -> Mesh {
    let mut out = LoadResult::default();
    Loader::default().load_str(Path::new("test.yaml"), yaml, &mut out);
    assert!(out.findings.is_empty(), "{:?}", out.findings);
    for r in &out.resources {
        assert!(
            r.resource.validate().is_empty(),
            "{:?}",
            r.resource.validate()
        );
    }
    Mesh::new(ConfigSet::new(out.resources), options)
}

fn mesh(yaml: &str) -> Mesh {
    mesh_with(yaml, MeshOptions::default())
}

fn node(ns: &str, labels: &[(&str, &str)]) -> ProxyNode {
    ProxyNode {
        id: format!("sidecar~10.0.0.1~app.{ns}~{ns}.svc.cluster.local"),
        kind: ProxyKind::Sidecar,
        generator: Generator::Envoy,
        ips: vec![],
        namespace: ns.to_owned(),
        workload: "app".to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        service_account: String::new(),
        cluster_id: String::new(),
        dns_domain: format!("{ns}.svc.cluster.local"),
        locality: Default::default(),
    }
}

fn outbound(mesh: &Mesh, node: &ProxyNode, port: u16) -> RouteConfiguration {
    let scope = Scope::new(mesh, node);
    let services: Vec<&Service> = scope
        .services
        .iter()
        .copied()
        .filter(|s| s.port(port).is_some())
        .collect();
    let rc = outbound_route_config(&scope, &port.to_string(), port, &services);
    assert_converts(&rc);
    rc
}

fn vhost<'a>(rc: &'a RouteConfiguration, name: &str) -> &'a VirtualHost {
    rc.virtual_hosts
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no virtual host {name} in {:#?}", names(rc)))
}

fn names(rc: &RouteConfiguration) -> Vec<&str> {
    rc.virtual_hosts.iter().map(|v| v.name.as_str()).collect()
}

fn action(r: &Route) -> &RouteAction {
    match &r.action {
        Some(route::Action::Route(a)) => a,
        other => panic!("not a route action: {other:?}"),
    }
}

fn cluster_of(r: &Route) -> &str {
    match &action(r).cluster_specifier {
        Some(route_action::ClusterSpecifier::Cluster(c)) => c,
        other => panic!("not a single cluster: {other:?}"),
    }
}

fn path(r: &Route) -> &PathSpecifier {
    r.r#match.as_ref().unwrap().path_specifier.as_ref().unwrap()
}

fn header<'a>(r: &'a Route, name: &str) -> &'a HeaderMatcher {
    r.r#match
        .as_ref()
        .unwrap()
        .headers
        .iter()
        .find(|h| h.name == name)
        .unwrap_or_else(|| panic!("no header matcher {name}"))
}

fn string_match(h: &HeaderMatcher) -> &MatchPattern {
    match &h.header_match_specifier {
        Some(HeaderMatchSpecifier::StringMatch(s)) => s.match_pattern.as_ref().unwrap(),
        other => panic!("not a string match: {other:?}"),
    }
}

fn decode<M: Message + Default>(any: &Any) -> M {
    M::decode(any.value.as_slice()).unwrap()
}

/// Every cluster a route configuration names.
fn clusters_named(rc: &RouteConfiguration) -> Vec<String> {
    let mut out = Vec::new();
    for vh in &rc.virtual_hosts {
        for r in &vh.routes {
            if let Some(route::Action::Route(a)) = &r.action {
                match &a.cluster_specifier {
                    Some(route_action::ClusterSpecifier::Cluster(c)) => out.push(c.clone()),
                    Some(route_action::ClusterSpecifier::WeightedClusters(w)) => {
                        out.extend(w.clusters.iter().map(|c| c.name.clone()));
                    }
                    _ => {}
                }
                out.extend(a.request_mirror_policies.iter().map(|m| m.cluster.clone()));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn typed<M: prost::Name + Message>(m: &M) -> Any {
    http::any(m)
}

/// Wraps `rc` into a bootstrap (an HTTP listener with the fault, CORS and router filters, a
/// static cluster per named cluster, cluster validation on) and converts it with weft's proxy
/// configuration converter.
fn assert_converts(rc: &RouteConfiguration) {
    let mut rc = rc.clone();
    rc.validate_clusters = Some(BoolValue { value: true });
    let filter = |name: &str, config: Any| HttpFilter {
        name: name.to_owned(),
        config_type: Some(http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    };
    let clusters = clusters_named(&rc);
    let hcm = HttpConnectionManager {
        stat_prefix: "test".to_owned(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::RouteConfig(rc)),
        http_filters: vec![
            filter(http::FAULT_FILTER, typed(&HttpFault::default())),
            filter(http::CORS_FILTER, typed(&Cors::default())),
            filter("envoy.filters.http.router", typed(&Router::default())),
        ],
        ..Default::default()
    };
    let addr = |port: u32| Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: "127.0.0.1".to_owned(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    };
    let bootstrap = Bootstrap {
        static_resources: Some(StaticResources {
            listeners: vec![Listener {
                name: "test".to_owned(),
                address: Some(addr(15001)),
                filter_chains: vec![FilterChain {
                    filters: vec![Filter {
                        name: "envoy.filters.network.http_connection_manager".to_owned(),
                        config_type: Some(filter::ConfigType::TypedConfig(typed(&hcm))),
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            clusters: clusters
                .iter()
                .map(|name| Cluster {
                    name: name.clone(),
                    cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
                        cluster::DiscoveryType::Static as i32,
                    )),
                    load_assignment: Some(ClusterLoadAssignment {
                        cluster_name: name.clone(),
                        endpoints: vec![LocalityLbEndpoints {
                            lb_endpoints: vec![LbEndpoint {
                                host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(
                                    Endpoint {
                                        address: Some(addr(1)),
                                        ..Default::default()
                                    },
                                )),
                                ..Default::default()
                            }],
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    if let Err(e) = weft_proxy_config::convert_bootstrap(&bootstrap, Path::new("/")) {
        panic!("weft's proxy rejects the route configuration: {e}");
    }
}

const SERVICES: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews.bookinfo.svc.cluster.local]
  addresses: [10.0.0.5]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.1.0.1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: bookinfo}
spec:
  hosts: [ratings.bookinfo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}, {number: 9090, name: grpc, protocol: GRPC}]
  endpoints: [{address: 10.1.0.2}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: details, namespace: other}
spec:
  hosts: [details.other.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.1.0.3}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: bookinfo}
spec:
  hosts: [db.bookinfo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: tcp, protocol: TCP}]
  endpoints: [{address: 10.1.0.4}]
"#;

fn with_services(extra: &str) -> Mesh {
    mesh(&format!("{SERVICES}\n---\n{extra}"))
}

const REVIEWS: &str = "reviews.bookinfo.svc.cluster.local:9080";

/// The routes of the reviews virtual host for a proxy in `bookinfo`.
fn reviews_routes(vs: &str) -> Vec<Route> {
    reviews_routes_for(vs, &node("bookinfo", &[]))
}

fn reviews_routes_for(vs: &str, n: &ProxyNode) -> Vec<Route> {
    let m = with_services(vs);
    let rc = outbound(&m, n, 9080);
    vhost(&rc, REVIEWS).routes.clone()
}

// ------------------------------------------------------------------------------------------
// Outbound: virtual hosts and defaults

#[test]
fn default_routes_domains_and_catch_all() {
    let m = with_services("");
    let rc = outbound(&m, &node("bookinfo", &[]), 9080);
    assert_eq!(rc.name, "9080");
    assert_eq!(rc.validate_clusters, Some(BoolValue { value: false }));
    assert!(rc.ignore_port_in_host_matching);
    assert_eq!(
        rc.max_direct_response_body_size_bytes,
        Some(UInt32Value { value: 1024 * 1024 })
    );
    // Sorted by name, TCP-only db left out, catch-all last.
    assert_eq!(
        names(&rc),
        [
            "details.other.svc.cluster.local:9080",
            "ratings.bookinfo.svc.cluster.local:9080",
            REVIEWS,
            "allow_any"
        ]
    );
    let reviews = vhost(&rc, REVIEWS);
    assert_eq!(
        reviews.domains,
        [
            "reviews.bookinfo.svc.cluster.local",
            "reviews.bookinfo.svc.cluster.local.",
            "reviews",
            "reviews.bookinfo.svc",
            "reviews.bookinfo",
            "10.0.0.5"
        ]
    );
    assert!(reviews.include_request_attempt_count);
    // Other namespace: no bare name.
    assert_eq!(
        vhost(&rc, "details.other.svc.cluster.local:9080").domains,
        [
            "details.other.svc.cluster.local",
            "details.other.svc.cluster.local.",
            "details.other",
            "details.other.svc"
        ]
    );
    let r = &reviews.routes[0];
    assert_eq!(r.name, "default");
    assert_eq!(path(r), &PathSpecifier::Prefix("/".into()));
    assert_eq!(
        cluster_of(r),
        "outbound|9080||reviews.bookinfo.svc.cluster.local"
    );
    let a = action(r);
    assert_eq!(a.timeout, Some(http::pb_duration(Default::default())));
    let retry = a.retry_policy.as_ref().unwrap();
    assert_eq!(retry.retry_on, http::DEFAULT_RETRY_ON);
    assert_eq!(retry.num_retries, Some(UInt32Value { value: 2 }));
    assert_eq!(retry.host_selection_retry_max_attempts, 5);
    assert_eq!(
        retry.retry_host_predicate[0].name,
        "envoy.retry_host_predicates.previous_hosts"
    );
    assert!(a.hash_policy.is_empty());

    let any = vhost(&rc, "allow_any");
    assert_eq!(any.domains, ["*"]);
    assert_eq!(cluster_of(&any.routes[0]), naming::PASSTHROUGH_CLUSTER);
    assert_eq!(
        action(&any.routes[0]).timeout,
        Some(http::pb_duration(Default::default()))
    );
}

#[test]
fn registry_only_catch_all_answers_502() {
    let options = MeshOptions {
        outbound_traffic_policy: OutboundTrafficPolicy::RegistryOnly,
        ..MeshOptions::default()
    };
    let m = mesh_with(SERVICES, options);
    let rc = outbound(&m, &node("bookinfo", &[]), 9080);
    let block = rc.virtual_hosts.last().unwrap();
    assert_eq!(block.name, "block_all");
    assert_eq!(block.domains, ["*"]);
    match &block.routes[0].action {
        Some(route::Action::DirectResponse(d)) => assert_eq!(d.status, 502),
        other => panic!("{other:?}"),
    }
}

#[test]
fn proxyless_grpc_domains_carry_ports() {
    let m = with_services("");
    let mut n = node("bookinfo", &[]);
    n.generator = Generator::Grpc;
    let rc = outbound(&m, &n, 9080);
    let d = &vhost(&rc, REVIEWS).domains;
    for expected in [
        "reviews.bookinfo.svc.cluster.local:9080",
        "reviews:9080",
        "reviews.bookinfo:9080",
        "10.0.0.5:9080",
    ] {
        assert!(
            d.iter().any(|x| x == expected),
            "{expected} missing in {d:?}"
        );
    }
}

#[test]
fn output_is_deterministic() {
    let vs = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r, namespace: bookinfo}
spec:
  hosts: [reviews, ratings]
  http:
  - match: [{headers: {b: {exact: "1"}, a: {prefix: "2"}}, queryParams: {y: {exact: "1"}, x: {}}}]
    route: [{destination: {host: reviews}}]
"#;
    let m = with_services(vs);
    let n = node("bookinfo", &[]);
    let a = outbound(&m, &n, 9080);
    let b = outbound(&m, &n, 9080);
    assert_eq!(a, b);
    let r = &vhost(&a, REVIEWS).routes[0];
    let h: Vec<&str> = r
        .r#match
        .as_ref()
        .unwrap()
        .headers
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    assert_eq!(h, ["a", "b"]);
    let q: Vec<&str> = r
        .r#match
        .as_ref()
        .unwrap()
        .query_parameters
        .iter()
        .map(|q| q.name.as_str())
        .collect();
    assert_eq!(q, ["x", "y"]);
}

// ------------------------------------------------------------------------------------------
// Matches

fn vs(http: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews, namespace: bookinfo}}\nspec:\n  hosts: [reviews]\n  http:\n{http}"
    )
}

#[test]
fn uri_header_query_method_authority_matches() {
    let routes = reviews_routes(&vs(r#"
  - name: r
    match:
    - name: m1
      uri: {exact: /a}
      ignoreUriCase: true
      headers: {x-e: {exact: v}, x-p: {prefix: p}, x-r: {regex: "a.*"}, x-present: {}}
      withoutHeaders: {x-no: {exact: bad}, x-absent: {}}
      queryParams: {q: {exact: "1"}, qp: {}}
      method: {exact: GET}
      authority: {prefix: www}
    - uri: {prefix: /b}
    - uri: {regex: "/c/[0-9]+"}
    route: [{destination: {host: reviews}}]
"#));
    assert_eq!(routes.len(), 3);
    let r = &routes[0];
    assert_eq!(r.name, "r.m1");
    assert_eq!(path(r), &PathSpecifier::Path("/a".into()));
    let m = r.r#match.as_ref().unwrap();
    assert_eq!(m.case_sensitive, Some(BoolValue { value: false }));
    assert_eq!(
        string_match(header(r, "x-e")),
        &MatchPattern::Exact("v".into())
    );
    assert_eq!(
        string_match(header(r, "x-p")),
        &MatchPattern::Prefix("p".into())
    );
    assert!(
        matches!(string_match(header(r, "x-r")), MatchPattern::SafeRegex(re) if re.regex == "a.*")
    );
    assert_eq!(
        header(r, "x-present").header_match_specifier,
        Some(HeaderMatchSpecifier::PresentMatch(true))
    );
    let no = header(r, "x-no");
    assert!(no.invert_match && no.treat_missing_header_as_empty);
    let absent = header(r, "x-absent");
    assert!(absent.invert_match && !absent.treat_missing_header_as_empty);
    assert_eq!(
        string_match(header(r, ":method")),
        &MatchPattern::Exact("GET".into())
    );
    assert_eq!(
        string_match(header(r, ":authority")),
        &MatchPattern::Prefix("www".into())
    );
    let q = &m.query_parameters;
    assert_eq!(q[0].name, "q");
    assert!(matches!(
        &q[0].query_parameter_match_specifier,
        Some(QueryParameterMatchSpecifier::StringMatch(s)) if s.match_pattern == Some(MatchPattern::Exact("1".into()))
    ));
    assert_eq!(
        q[1].query_parameter_match_specifier,
        Some(QueryParameterMatchSpecifier::PresentMatch(true))
    );
    assert_eq!(routes[1].name, "r");
    assert_eq!(path(&routes[1]), &PathSpecifier::Prefix("/b".into()));
    assert_eq!(
        routes[1].r#match.as_ref().unwrap().case_sensitive,
        Some(BoolValue { value: true })
    );
    assert!(matches!(path(&routes[2]), PathSpecifier::SafeRegex(re) if re.regex == "/c/[0-9]+"));
}

#[test]
fn port_source_and_gateway_conditions_drop_match_blocks() {
    let http = r#"
  - match:
    - {uri: {prefix: /port-other}, port: 8080}
    - {uri: {prefix: /port-same}, port: 9080}
    - {uri: {prefix: /labels}, sourceLabels: {app: productpage}}
    - {uri: {prefix: /ns}, sourceNamespace: bookinfo}
    - {uri: {prefix: /other-ns}, sourceNamespace: other}
    - {uri: {prefix: /gw}, gateways: [some-gateway]}
    - {uri: {prefix: /mesh}, gateways: [mesh]}
    route: [{destination: {host: reviews}}]
"#;
    let prefixes = |routes: &[Route]| -> Vec<String> {
        routes
            .iter()
            .map(|r| match path(r) {
                PathSpecifier::Prefix(p) => p.clone(),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    let with_label = reviews_routes_for(&vs(http), &node("bookinfo", &[("app", "productpage")]));
    assert_eq!(
        prefixes(&with_label),
        ["/port-same", "/labels", "/ns", "/mesh"]
    );
    let without = reviews_routes(&vs(http));
    assert_eq!(prefixes(&without), ["/port-same", "/ns", "/mesh"]);
}

#[test]
fn routes_stop_after_a_catch_all() {
    let routes = reviews_routes(&vs(r#"
  - match: [{uri: {prefix: /a}}, {uri: {prefix: /}}, {uri: {prefix: /never}}]
    route: [{destination: {host: reviews}}]
  - route: [{destination: {host: ratings}}]
"#));
    assert_eq!(routes.len(), 2);
    assert_eq!(path(&routes[1]), &PathSpecifier::Prefix("/".into()));
}

// ------------------------------------------------------------------------------------------
// Destinations

#[test]
fn single_weighted_subset_and_port_destinations() {
    let routes = reviews_routes(&vs(r#"
  - match: [{uri: {prefix: /single}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /port}}]
    route: [{destination: {host: ratings.bookinfo.svc.cluster.local, port: {number: 9090}}}]
  - match: [{uri: {prefix: /unknown}}]
    route: [{destination: {host: nowhere.example.com}}]
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 75}
    - {destination: {host: reviews, subset: v2}, weight: 25}
    - {destination: {host: reviews, subset: v3}, weight: 0}
"#));
    assert_eq!(
        cluster_of(&routes[0]),
        "outbound|9080|v1|reviews.bookinfo.svc.cluster.local"
    );
    assert_eq!(
        cluster_of(&routes[1]),
        "outbound|9090||ratings.bookinfo.svc.cluster.local"
    );
    // An unknown host still gets its would-be cluster (Envoy answers 503).
    assert_eq!(cluster_of(&routes[2]), "outbound|9080||nowhere.example.com");
    let Some(route_action::ClusterSpecifier::WeightedClusters(w)) =
        &action(&routes[3]).cluster_specifier
    else {
        panic!("not weighted");
    };
    let got: Vec<(&str, u32)> = w
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.weight.unwrap().value))
        .collect();
    assert_eq!(
        got,
        [
            ("outbound|9080|v1|reviews.bookinfo.svc.cluster.local", 75),
            ("outbound|9080|v2|reviews.bookinfo.svc.cluster.local", 25)
        ]
    );
    #[allow(deprecated)]
    let total = w.total_weight;
    assert_eq!(total, None);
}

#[test]
fn redirects_and_direct_responses() {
    let routes = reviews_routes(&vs(r#"
  - match: [{uri: {prefix: /r1}}]
    redirect: {uri: /new, authority: example.com, port: 8443, scheme: https, redirectCode: 302}
  - match: [{uri: {prefix: /r2}}]
    redirect: {uri: /x, derivePort: FROM_REQUEST_PORT}
  - match: [{uri: {prefix: /r3}}]
    redirect: {authority: a.com, port: 80}
  - match: [{uri: {prefix: /d1}}]
    directResponse: {status: 503, body: {string: unavailable}}
  - match: [{uri: {prefix: /d2}}]
    directResponse: {status: 200, body: {bytes: aGk=}}
"#));
    use redirect_action::{PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier};
    let redirect = |r: &Route| match &r.action {
        Some(route::Action::Redirect(x)) => x.clone(),
        other => panic!("{other:?}"),
    };
    let r1 = redirect(&routes[0]);
    assert_eq!(r1.host_redirect, "example.com");
    assert_eq!(r1.port_redirect, 8443);
    assert_eq!(
        r1.scheme_rewrite_specifier,
        Some(SchemeRewriteSpecifier::SchemeRedirect("https".into()))
    );
    assert_eq!(
        r1.path_rewrite_specifier,
        Some(PathRewriteSpecifier::PathRedirect("/new".into()))
    );
    assert_eq!(r1.response_code, RedirectResponseCode::Found as i32);
    let r2 = redirect(&routes[1]);
    assert_eq!(r2.port_redirect, 9080);
    assert_eq!(
        r2.response_code,
        RedirectResponseCode::MovedPermanently as i32
    );
    // :80 on http is implicit.
    assert_eq!(redirect(&routes[2]).port_redirect, 0);
    let direct = |r: &Route| match &r.action {
        Some(route::Action::DirectResponse(d)) => d.clone(),
        other => panic!("{other:?}"),
    };
    use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
    let d1 = direct(&routes[3]);
    assert_eq!(d1.status, 503);
    assert_eq!(
        d1.body.unwrap().specifier,
        Some(Specifier::InlineString("unavailable".into()))
    );
    assert_eq!(
        direct(&routes[4]).body.unwrap().specifier,
        Some(Specifier::InlineBytes(b"hi".to_vec()))
    );
}

#[test]
fn rewrites_and_header_operations() {
    let routes = reviews_routes(&vs(r#"
  - match: [{uri: {prefix: /a}}]
    rewrite: {uri: /b, authority: new.example.com}
    headers:
      request: {set: {x-set: "1"}, add: {x-add: "2"}, remove: [x-rm]}
      response: {set: {x-rs: "3"}, remove: [x-rrm]}
    route:
    - destination: {host: reviews}
      headers: {request: {set: {x-dest: d}}, response: {add: {x-dest-resp: e}}}
  - match: [{uri: {exact: /exact}}]
    rewrite: {uriRegexRewrite: {match: "^/exact(.*)$", rewrite: "/re\\1"}}
    route: [{destination: {host: reviews}}]
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 50
      headers: {request: {set: {x-w: "1", host: w.example.com}, remove: [x-gone]}}
    - {destination: {host: reviews, subset: v2}, weight: 50}
"#));
    let r = &routes[0];
    let a = action(r);
    assert_eq!(a.prefix_rewrite, "/b");
    assert_eq!(
        a.host_rewrite_specifier,
        Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(
            "new.example.com".into()
        ))
    );
    let req: Vec<(&str, &str, i32)> = r
        .request_headers_to_add
        .iter()
        .map(|h| {
            let hv = h.header.as_ref().unwrap();
            (hv.key.as_str(), hv.value.as_str(), h.append_action)
        })
        .collect();
    let overwrite = HeaderAppendAction::OverwriteIfExistsOrAdd as i32;
    let append = HeaderAppendAction::AppendIfExistsOrAdd as i32;
    assert_eq!(
        req,
        [
            ("x-set", "1", overwrite),
            ("x-add", "2", append),
            ("x-dest", "d", overwrite)
        ]
    );
    assert_eq!(r.request_headers_to_remove, ["x-rm"]);
    let resp: Vec<&str> = r
        .response_headers_to_add
        .iter()
        .map(|h| h.header.as_ref().unwrap().key.as_str())
        .collect();
    assert_eq!(resp, ["x-rs", "x-dest-resp"]);
    assert_eq!(r.response_headers_to_remove, ["x-rrm"]);

    let re = action(&routes[1]).regex_rewrite.as_ref().unwrap();
    assert_eq!(re.pattern.as_ref().unwrap().regex, "^/exact(.*)$");
    assert_eq!(re.substitution, "/re\\1");

    let Some(route_action::ClusterSpecifier::WeightedClusters(w)) =
        &action(&routes[2]).cluster_specifier
    else {
        panic!("not weighted");
    };
    let c = &w.clusters[0];
    assert_eq!(c.request_headers_to_add.len(), 1);
    assert_eq!(
        c.request_headers_to_add[0].header.as_ref().unwrap().key,
        "x-w"
    );
    assert_eq!(c.request_headers_to_remove, ["x-gone"]);
    assert_eq!(
        c.host_rewrite_specifier,
        Some(envoy_types::pb::envoy::config::route::v3::weighted_cluster::cluster_weight::HostRewriteSpecifier::HostRewriteLiteral("w.example.com".into()))
    );
    assert!(w.clusters[1].request_headers_to_add.is_empty());
}

#[test]
fn mirrors_with_percentages() {
    let routes = reviews_routes(&vs(r#"
  - match: [{uri: {prefix: /one}}]
    route: [{destination: {host: reviews}}]
    mirror: {host: ratings}
    mirrorPercentage: {value: 12.5}
  - match: [{uri: {prefix: /off}}]
    route: [{destination: {host: reviews}}]
    mirror: {host: ratings}
    mirrorPercentage: {value: 0}
  - route: [{destination: {host: reviews}}]
    mirrors:
    - destination: {host: ratings, subset: v2}
    - destination: {host: details.other.svc.cluster.local}
      percentage: {value: 50}
"#));
    let m = &action(&routes[0]).request_mirror_policies;
    assert_eq!(m.len(), 1);
    assert_eq!(
        m[0].cluster,
        "outbound|9080||ratings.bookinfo.svc.cluster.local"
    );
    let f = m[0]
        .runtime_fraction
        .as_ref()
        .unwrap()
        .default_value
        .unwrap();
    assert_eq!((f.numerator, f.denominator), (125_000, 2));
    assert!(action(&routes[1]).request_mirror_policies.is_empty());
    let m = &action(&routes[2]).request_mirror_policies;
    assert_eq!(
        m[0].cluster,
        "outbound|9080|v2|ratings.bookinfo.svc.cluster.local"
    );
    let f0 = m[0]
        .runtime_fraction
        .as_ref()
        .unwrap()
        .default_value
        .unwrap();
    assert_eq!((f0.numerator, f0.denominator), (100, 0));
    assert_eq!(
        m[1].cluster,
        "outbound|9080||details.other.svc.cluster.local"
    );
    let f1 = m[1]
        .runtime_fraction
        .as_ref()
        .unwrap()
        .default_value
        .unwrap();
    assert_eq!((f1.numerator, f1.denominator), (500_000, 2));
}

#[test]
fn fault_and_cors_per_filter_configs() {
    let routes = reviews_routes(&vs(r#"
  - match: [{uri: {prefix: /f}}]
    route: [{destination: {host: reviews}}]
    fault:
      delay: {fixedDelay: 5s, percentage: {value: 10}}
      abort: {httpStatus: 503, percentage: {value: 1.5}}
  - match: [{uri: {prefix: /g}}]
    route: [{destination: {host: reviews}}]
    fault: {abort: {grpcStatus: UNAVAILABLE}}
  - route: [{destination: {host: reviews}}]
    corsPolicy:
      allowOrigins: [{exact: "https://a.com"}, {regex: ".*\\.b\\.com"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-a, x-b]
      exposeHeaders: [x-c]
      maxAge: 24h
      allowCredentials: true
      unmatchedPreflights: IGNORE
"#));
    let f: HttpFault = decode(&routes[0].typed_per_filter_config[http::FAULT_FILTER]);
    let d = f.delay.unwrap();
    assert_eq!(d.percentage.unwrap().numerator, 100_000);
    assert_eq!(
        d.fault_delay_secifier,
        Some(envoy_types::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier::FixedDelay(
            http::pb_duration(std::time::Duration::from_secs(5))
        ))
    );
    let a = f.abort.unwrap();
    assert_eq!(a.error_type, Some(fault_abort::ErrorType::HttpStatus(503)));
    assert_eq!(a.percentage.unwrap().numerator, 15_000);
    let g: HttpFault = decode(&routes[1].typed_per_filter_config[http::FAULT_FILTER]);
    assert_eq!(
        g.abort.unwrap().error_type,
        Some(fault_abort::ErrorType::GrpcStatus(14))
    );
    assert!(g.delay.is_none());
    assert_eq!(
        routes[0].typed_per_filter_config[http::FAULT_FILTER].type_url,
        "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
    );

    let any = &routes[2].typed_per_filter_config[http::CORS_FILTER];
    assert_eq!(
        any.type_url,
        "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"
    );
    let c: EnvoyCors = decode(any);
    assert_eq!(c.allow_origin_string_match.len(), 2);
    assert_eq!(c.allow_methods, "GET,POST");
    assert_eq!(c.allow_headers, "x-a,x-b");
    assert_eq!(c.expose_headers, "x-c");
    assert_eq!(c.max_age, "86400");
    assert_eq!(c.allow_credentials, Some(BoolValue { value: true }));
    assert_eq!(
        c.forward_not_matching_preflights,
        Some(BoolValue { value: false })
    );
    assert_eq!(
        c.filter_enabled.unwrap().default_value.unwrap().numerator,
        100
    );
}

#[test]
fn retries_and_timeouts() {
    let routes = reviews_routes(&vs(r#"
  - match: [{uri: {prefix: /none}}]
    route: [{destination: {host: reviews}}]
    retries: {attempts: 0}
  - match: [{uri: {prefix: /custom}}]
    route: [{destination: {host: reviews}}]
    timeout: 3s
    retries: {attempts: 4, perTryTimeout: 500ms, retryOn: "5xx,503,gateway-error", retryIgnorePreviousHosts: false, backoff: 100ms}
  - route: [{destination: {host: reviews}}]
"#));
    assert!(action(&routes[0]).retry_policy.is_none());
    let a = action(&routes[1]);
    assert_eq!(
        a.timeout,
        Some(http::pb_duration(std::time::Duration::from_secs(3)))
    );
    // Any max_stream_duration would make Envoy ignore the route timeout ("new timeouts").
    assert_eq!(a.max_stream_duration, None);
    let p = a.retry_policy.as_ref().unwrap();
    assert_eq!(p.num_retries, Some(UInt32Value { value: 4 }));
    assert_eq!(p.retry_on, "5xx,gateway-error,retriable-status-codes");
    assert_eq!(p.retriable_status_codes, [503]);
    assert_eq!(
        p.per_try_timeout,
        Some(http::pb_duration(std::time::Duration::from_millis(500)))
    );
    assert!(p.retry_host_predicate.is_empty());
    assert_eq!(p.host_selection_retry_max_attempts, 5);
    assert_eq!(
        p.retry_back_off.unwrap().base_interval,
        Some(http::pb_duration(std::time::Duration::from_millis(100)))
    );
    let d = action(&routes[2]);
    assert_eq!(d.timeout, Some(http::pb_duration(Default::default())));
    assert_eq!(
        d.retry_policy.as_ref().unwrap().retry_on,
        http::DEFAULT_RETRY_ON
    );
}

#[test]
fn retry_remote_localities_sets_previous_priorities() {
    let yaml = vs(r#"
  - route: [{destination: {host: reviews}}]
    retries: {attempts: 2, retryRemoteLocalities: true}
"#);
    let m = with_services(&yaml);
    let n = node("bookinfo", &[]);
    let scope = Scope::new(&m, &n);
    let services: Vec<&Service> = scope.services.clone();
    let rc = outbound_route_config(&scope, "9080", 9080, &services);
    assert_converts(&rc);
    let p = action(&vhost(&rc, REVIEWS).routes[0])
        .retry_policy
        .clone()
        .unwrap();
    let prio = p.retry_priority.unwrap();
    assert_eq!(prio.name, "envoy.retry_priorities.previous_priorities");
    let Some(retry_policy::retry_priority::ConfigType::TypedConfig(any)) = prio.config_type else {
        panic!("no typed_config");
    };
    let config = PreviousPrioritiesConfig::decode(any.value.as_slice()).unwrap();
    assert_eq!(config.update_frequency, 2);
}

// ------------------------------------------------------------------------------------------
// Consistent hashing from DestinationRules

fn dr(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: dr, namespace: bookinfo}}\nspec:\n{spec}"
    )
}

#[test]
fn consistent_hash_becomes_hash_policy() {
    use route_action::hash_policy::PolicySpecifier;
    let cases = [
        ("{httpHeaderName: x-user}", "header"),
        ("{httpCookie: {name: sid, path: /}}", "cookie"),
        ("{useSourceIp: true}", "source"),
        ("{httpQueryParameterName: u}", "query"),
    ];
    for (key, kind) in cases {
        let yaml = format!(
            "{}\n---\n{}",
            dr(&format!(
                "  host: reviews\n  trafficPolicy: {{loadBalancer: {{consistentHash: {key}}}}}\n"
            )),
            vs("  - route: [{destination: {host: reviews}}]\n")
        );
        let routes = reviews_routes(&yaml);
        let a = action(&routes[0]);
        let spec = a.hash_policy[0].policy_specifier.clone().unwrap();
        match (kind, spec) {
            ("header", PolicySpecifier::Header(h)) => assert_eq!(h.header_name, "x-user"),
            ("cookie", PolicySpecifier::Cookie(c)) => {
                assert_eq!((c.name.as_str(), c.path.as_str()), ("sid", "/"));
                assert_eq!(c.ttl, None);
            }
            ("source", PolicySpecifier::ConnectionProperties(c)) => assert!(c.source_ip),
            ("query", PolicySpecifier::QueryParameter(q)) => assert_eq!(q.name, "u"),
            (k, s) => panic!("{k}: {s:?}"),
        }
        // Consistent hashing keeps retries on the same host.
        assert!(
            a.retry_policy
                .as_ref()
                .unwrap()
                .retry_host_predicate
                .is_empty()
        );
    }
}

#[test]
fn port_level_and_subset_hashes_win() {
    use route_action::hash_policy::PolicySpecifier;
    let rule = dr(r#"
  host: reviews
  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: top}}
    portLevelSettings:
    - port: {number: 9080}
      loadBalancer: {consistentHash: {httpHeaderName: port}}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: subset}}}
"#);
    let routes = reviews_routes(&format!(
        "{rule}\n---\n{}",
        vs(r#"
  - match: [{uri: {prefix: /no-port}}]
    route: [{destination: {host: reviews}}]
  - match: [{uri: {prefix: /port}}]
    route: [{destination: {host: reviews, port: {number: 9080}}}]
  - route: [{destination: {host: reviews, subset: v1}}]
"#)
    ));
    let header = |r: &Route| match action(r).hash_policy[0].policy_specifier.clone() {
        Some(PolicySpecifier::Header(h)) => h.header_name,
        other => panic!("{other:?}"),
    };
    assert_eq!(header(&routes[0]), "top");
    assert_eq!(header(&routes[1]), "port");
    assert_eq!(header(&routes[2]), "subset");

    // Without a VirtualService the port-level setting of the service port applies.
    let m = with_services(&rule);
    let rc = outbound(&m, &node("bookinfo", &[]), 9080);
    assert_eq!(header(&vhost(&rc, REVIEWS).routes[0]), "port");
}

// ------------------------------------------------------------------------------------------
// Which VirtualServices apply

#[test]
fn export_to_gateways_and_wildcard_hosts() {
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: private, namespace: other}
spec:
  hosts: [reviews.bookinfo.svc.cluster.local]
  exportTo: ["."]
  http: [{route: [{destination: {host: details}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: gw-only, namespace: bookinfo}
spec:
  hosts: [ratings]
  gateways: [ingress]
  http: [{route: [{destination: {host: details.other.svc.cluster.local}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wildcard, namespace: bookinfo}
spec:
  hosts: ["*.bookinfo.svc.cluster.local"]
  gateways: [mesh, ingress]
  http: [{route: [{destination: {host: ratings}}]}]
"#;
    let m = with_services(yaml);
    let rc = outbound(&m, &node("bookinfo", &[]), 9080);
    // The private VirtualService in `other` is invisible; the wildcard one claims both
    // bookinfo services; the gateway-only one does not apply to sidecars.
    for vh in [REVIEWS, "ratings.bookinfo.svc.cluster.local:9080"] {
        assert_eq!(
            cluster_of(&vhost(&rc, vh).routes[0]),
            "outbound|9080||ratings.bookinfo.svc.cluster.local"
        );
    }
    assert_eq!(
        cluster_of(&vhost(&rc, "details.other.svc.cluster.local:9080").routes[0]),
        "outbound|9080||details.other.svc.cluster.local"
    );
    // From `other`, the private VirtualService applies; its destination resolves there.
    let rc = outbound(&m, &node("other", &[]), 9080);
    assert_eq!(
        cluster_of(&vhost(&rc, REVIEWS).routes[0]),
        "outbound|9080||details.other.svc.cluster.local"
    );
}

#[test]
fn exact_host_beats_wildcard_and_first_virtual_service_wins() {
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wildcard, namespace: bookinfo}
spec:
  hosts: ["*.bookinfo.svc.cluster.local"]
  http: [{route: [{destination: {host: details.other.svc.cluster.local}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: exact, namespace: bookinfo}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: ratings}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: later, namespace: bookinfo}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}, headers: {request: {set: {x: y}}}}]}]
"#;
    let m = with_services(yaml);
    let rc = outbound(&m, &node("bookinfo", &[]), 9080);
    assert_eq!(
        cluster_of(&vhost(&rc, REVIEWS).routes[0]),
        "outbound|9080||ratings.bookinfo.svc.cluster.local"
    );
    assert_eq!(
        cluster_of(&vhost(&rc, "ratings.bookinfo.svc.cluster.local:9080").routes[0]),
        "outbound|9080||details.other.svc.cluster.local"
    );
}

#[test]
fn non_registry_hosts_get_virtual_hosts_on_port_80() {
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ext, namespace: bookinfo}
spec:
  hosts: [bookinfo.example.com]
  http: [{route: [{destination: {host: reviews, port: {number: 9080}}}]}]
"#;
    let m = with_services(yaml);
    let rc = outbound(&m, &node("bookinfo", &[]), 80);
    let vh = vhost(&rc, "bookinfo.example.com:80");
    assert_eq!(vh.domains, ["bookinfo.example.com"]);
    assert_eq!(
        cluster_of(&vh.routes[0]),
        "outbound|9080||reviews.bookinfo.svc.cluster.local"
    );
    let rc = outbound(&m, &node("bookinfo", &[]), 9080);
    assert!(!names(&rc).contains(&"bookinfo.example.com:9080"));
}

#[test]
fn delegates_merge_into_the_root() {
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: root, namespace: bookinfo}
spec:
  hosts: [reviews]
  http:
  - name: root
    match: [{uri: {prefix: /api}, headers: {x-root: {exact: "1"}}}]
    timeout: 7s
    delegate: {name: leaf, namespace: other}
  - route: [{destination: {host: reviews}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: leaf, namespace: other}
spec:
  http:
  - name: v2
    match: [{uri: {prefix: /api/v2}}]
    route: [{destination: {host: details}}]
  - name: conflict
    match: [{uri: {prefix: /other}}]
    route: [{destination: {host: details}}]
  - name: rest
    route: [{destination: {host: details}}]
    timeout: 1s
"#;
    let routes = reviews_routes(yaml);
    assert_eq!(routes.len(), 3);
    let r = &routes[0];
    assert_eq!(r.name, "root-v2");
    assert_eq!(path(r), &PathSpecifier::Prefix("/api/v2".into()));
    assert_eq!(
        string_match(header(r, "x-root")),
        &MatchPattern::Exact("1".into())
    );
    // The delegate's destinations resolve in its own namespace; unset fields come from the root.
    assert_eq!(
        cluster_of(r),
        "outbound|9080||details.other.svc.cluster.local"
    );
    assert_eq!(
        action(r).timeout,
        Some(http::pb_duration(std::time::Duration::from_secs(7)))
    );
    let rest = &routes[1];
    assert_eq!(rest.name, "root-rest");
    assert_eq!(path(rest), &PathSpecifier::Prefix("/api".into()));
    assert_eq!(
        action(rest).timeout,
        Some(http::pb_duration(std::time::Duration::from_secs(1)))
    );
    assert_eq!(
        cluster_of(&routes[2]),
        "outbound|9080||reviews.bookinfo.svc.cluster.local"
    );
}

// ------------------------------------------------------------------------------------------
// Inbound

#[test]
fn inbound_table_forwards_everything_to_the_application() {
    let m = with_services("");
    let n = node("bookinfo", &[]);
    let scope = Scope::new(&m, &n);
    let rc = inbound_route_config(&scope, "inbound|9080||", 9080, "inbound|9080||");
    assert_converts(&rc);
    assert_eq!(rc.name, "inbound|9080||");
    let vh = &rc.virtual_hosts[0];
    assert_eq!(vh.name, "inbound|http|9080");
    assert_eq!(vh.domains, ["*"]);
    let r = &vh.routes[0];
    assert_eq!(r.name, "default");
    assert_eq!(path(r), &PathSpecifier::Prefix("/".into()));
    assert_eq!(cluster_of(r), "inbound|9080||");
    let a = action(r);
    assert_eq!(a.timeout, Some(http::pb_duration(Default::default())));
    let p = a.retry_policy.as_ref().unwrap();
    assert_eq!(p.retry_on, "reset-before-request");
    assert!(p.retry_host_predicate.is_empty());
}

#[test]
fn inbound_grpc_ports_get_no_retries() {
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: app, namespace: bookinfo}
spec:
  hosts: [app.bookinfo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 7070, name: grpc, protocol: GRPC, targetPort: 17070}, {number: 80, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: app}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: app, namespace: bookinfo}
spec: {address: 10.0.0.1, labels: {app: app}}
"#;
    let m = mesh(yaml);
    let n = node("bookinfo", &[("app", "app")]);
    let scope = Scope::new(&m, &n);
    assert!(scope.workload.is_some());
    let grpc = inbound_route_config(&scope, "inbound|17070||", 17070, "inbound|17070||");
    assert!(
        action(&grpc.virtual_hosts[0].routes[0])
            .retry_policy
            .is_none()
    );
    let plain = inbound_route_config(&scope, "inbound|80||", 80, "inbound|80||");
    assert!(
        action(&plain.virtual_hosts[0].routes[0])
            .retry_policy
            .is_some()
    );
}

#[test]
fn cookie_ttl_is_kept() {
    // Istio sets the generated cookie's TTL; weft's proxy generates the cookie.
    let yaml = format!(
        "{}\n---\n{}",
        dr(
            "  host: reviews\n  trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: sid, ttl: 60s}}}}\n"
        ),
        vs("  - route: [{destination: {host: reviews}}]\n")
    );
    let routes = reviews_routes(&yaml);
    let Some(route_action::hash_policy::PolicySpecifier::Cookie(c)) =
        action(&routes[0]).hash_policy[0].policy_specifier.clone()
    else {
        panic!("not a cookie");
    };
    assert_eq!(
        c.ttl,
        Some(http::pb_duration(std::time::Duration::from_secs(60)))
    );
}

// ------------------------------------------------------------------------------------------
// Gateways

const GATEWAYS: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*.example.com", "bookinfo/reviews.bookinfo.svc.cluster.local", "other/*", "redirect.test"]
    tls: {httpsRedirect: true}
"#;

fn gateway_config(extra: &str) -> RouteConfiguration {
    let m = with_services(&format!("{GATEWAYS}\n---\n{extra}"));
    let mut n = node("istio-system", &[("istio", "ingressgateway")]);
    n.kind = ProxyKind::Router;
    let scope = Scope::new(&m, &n);
    let (entry, gw) = m.config.of::<Gateway>().next().unwrap();
    let servers: Vec<GatewayServer<'_>> = gw
        .servers
        .iter()
        .enumerate()
        .map(|(index, server)| GatewayServer {
            gateway: entry,
            index,
            server,
        })
        .collect();
    gateway_route_config(&scope, "http.80", &servers)
}

const GATEWAY_VS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: bookinfo}
spec:
  hosts: [a.example.com, b.example.com, reviews, unrelated.org]
  gateways: [istio-system/ingress]
  http:
  - match: [{headers: {"@request.auth.claims.group": {exact: admin}}}]
    route: [{destination: {host: ratings}}]
  - match: [{uri: {prefix: /}, gateways: [mesh]}]
    route: [{destination: {host: details.other.svc.cluster.local}}]
  - match: [{uri: {prefix: /r}}]
    redirect: {uri: /x, derivePort: FROM_REQUEST_PORT}
  - route: [{destination: {host: ratings}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: other-ns, namespace: other}
spec:
  hosts: [c.example.com, details]
  gateways: [istio-system/ingress]
  http: [{route: [{destination: {host: details}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mesh-only, namespace: bookinfo}
spec:
  hosts: [d.example.com]
  http: [{route: [{destination: {host: ratings}}]}]
"#;

#[test]
fn gateway_virtual_hosts_from_bound_virtual_services() {
    let rc = gateway_config(GATEWAY_VS);
    assert_converts(&rc);
    assert_eq!(rc.name, "http.80");
    assert!(rc.ignore_port_in_host_matching);
    // The shop hosts share one route list and collapse into the first host's virtual host.
    assert_eq!(names(&rc), ["*:80", "a.example.com:80", "c.example.com:80"]);
    let shop = vhost(&rc, "a.example.com:80");
    assert_eq!(
        shop.domains,
        [
            "a.example.com",
            "b.example.com",
            "reviews.bookinfo.svc.cluster.local"
        ]
    );
    // The JWT-claim match is dropped rather than widened, the mesh-only match does not apply;
    // the redirect keeps the server port; the single-port destination uses that port.
    assert_eq!(shop.routes.len(), 2);
    match &shop.routes[0].action {
        // A server with `tls` counts as TLS (Istio's IsTLS), so the implied scheme is https
        // and :80 stays explicit.
        Some(route::Action::Redirect(r)) => assert_eq!(r.port_redirect, 80),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        cluster_of(&shop.routes[1]),
        "outbound|80||ratings.bookinfo.svc.cluster.local"
    );
    // `other/*` admits only hosts of VirtualServices in `other`; `details` there is a
    // single-port service.
    let other = vhost(&rc, "c.example.com:80");
    assert_eq!(
        other.domains,
        ["c.example.com", "details.other.svc.cluster.local"]
    );
    assert_eq!(
        cluster_of(&other.routes[0]),
        "outbound|9080||details.other.svc.cluster.local"
    );
    // httpsRedirect: every virtual host requires TLS; server hosts without a VirtualService
    // still get one, without routes (collapsed into one, named after the first host).
    for vh in &rc.virtual_hosts {
        assert_eq!(
            vh.require_tls,
            TlsRequirementType::All as i32,
            "{}",
            vh.name
        );
    }
    let bare = vhost(&rc, "*:80");
    assert_eq!(bare.domains, ["*", "*.example.com", "redirect.test"]);
    assert!(bare.routes.is_empty());
}

#[test]
fn gateway_without_redirect_converts_and_without_virtual_services_is_a_blackhole() {
    let gw_plain = GATEWAYS.replace("    tls: {httpsRedirect: true}\n", "");
    let m = with_services(&format!("{gw_plain}\n---\n{GATEWAY_VS}"));
    let mut n = node("istio-system", &[]);
    n.kind = ProxyKind::Router;
    let scope = Scope::new(&m, &n);
    let (entry, gw) = m.config.of::<Gateway>().next().unwrap();
    let servers = [GatewayServer {
        gateway: entry,
        index: 0,
        server: &gw.servers[0],
    }];
    let rc = gateway_route_config(&scope, "http.80", &servers);
    assert_converts(&rc);
    assert_eq!(names(&rc), ["a.example.com:80", "c.example.com:80"]);
    assert!(rc.virtual_hosts.iter().all(|v| v.require_tls == 0));
    // Plain HTTP: the derived :80 is implicit.
    match &vhost(&rc, "a.example.com:80").routes[0].action {
        Some(route::Action::Redirect(r)) => assert_eq!(r.port_redirect, 0),
        other => panic!("{other:?}"),
    }

    let m = with_services(&gw_plain);
    let scope = Scope::new(&m, &n);
    let (entry, gw) = m.config.of::<Gateway>().next().unwrap();
    let servers = [GatewayServer {
        gateway: entry,
        index: 0,
        server: &gw.servers[0],
    }];
    let rc = gateway_route_config(&scope, "http.80", &servers);
    assert_converts(&rc);
    assert_eq!(names(&rc), ["blackhole:80"]);
    assert_eq!(rc.virtual_hosts[0].domains, ["*"]);
    assert!(rc.virtual_hosts[0].routes.is_empty());
}

#[test]
fn gateway_names_resolve_like_istio() {
    assert_eq!(vs::resolve_gateway("mesh", "ns"), "mesh");
    assert_eq!(vs::resolve_gateway("gw", "ns"), "ns/gw");
    assert_eq!(vs::resolve_gateway("./gw", "ns"), "ns/gw");
    assert_eq!(vs::resolve_gateway("a/gw", "ns"), "a/gw");
    assert_eq!(vs::resolve_gateway("gw.a.svc.cluster.local", "ns"), "a/gw");
}

#[test]
fn host_intersection_picks_the_narrower_name() {
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        intersect_hosts(&s(&["*.example.com"]), &s(&["a.example.com", "b.org"])),
        ["a.example.com"]
    );
    assert_eq!(
        intersect_hosts(
            &s(&["a.example.com", "b.example.com"]),
            &s(&["*.example.com"])
        ),
        ["a.example.com", "b.example.com"]
    );
    assert_eq!(intersect_hosts(&s(&["*"]), &s(&["*.a.com"])), ["*.a.com"]);
    assert!(intersect_hosts(&s(&["a.com"]), &s(&["b.com"])).is_empty());
}

#[test]
fn proxyless_grpc_timeouts_use_max_stream_duration() {
    let m = with_services(&vs(
        "  - route: [{destination: {host: reviews}}]\n    timeout: 2s\n",
    ));
    let mut n = node("bookinfo", &[]);
    n.generator = Generator::Grpc;
    let rc = outbound(&m, &n, 9080);
    let msd = action(&vhost(&rc, REVIEWS).routes[0])
        .max_stream_duration
        .unwrap();
    let two = Some(http::pb_duration(std::time::Duration::from_secs(2)));
    assert_eq!(
        (msd.max_stream_duration, msd.grpc_timeout_header_max),
        (two, None)
    );
}
