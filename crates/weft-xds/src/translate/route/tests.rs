use std::collections::BTreeMap;
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
    redirect_action, route, route_action, route_match::PathSpecifier,
};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::{
    Cors, CorsPolicy as EnvoyCors,
};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{HttpFault, fault_abort};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_connection_manager, http_filter,
};
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
        assert!(r.resource.validate().is_empty(), "{:?}", r.resource.validate());
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
    assert_eq!(cluster_of(r), "outbound|9080||reviews.bookinfo.svc.cluster.local");
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
        assert!(d.iter().any(|x| x == expected), "{expected} missing in {d:?}");
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
    let h: Vec<&str> = r.r#match.as_ref().unwrap().headers.iter().map(|h| h.name.as_str()).collect();
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
