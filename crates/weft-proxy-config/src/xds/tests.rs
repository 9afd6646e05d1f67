//! xDS resources: `dynamic_resources` checks, decoding, assembly and error attribution.

use std::path::Path;

use prost::{Message, Name};
use serde_json::{Value, json};

use super::*;
use crate::model::{Discovery, NetworkFilter};
use crate::parse::decode::Source;

/// A message of type `T` from JSON, the way a bootstrap is read.
fn msg<T: Message + Name + Default>(value: Value) -> T {
    let desc = descriptors::message(&T::full_name()).unwrap();
    crate::parse::decode::decode(&desc, &value, Source::Json)
        .unwrap_or_else(|e| panic!("{e}"))
        .transcode_to::<T>()
        .unwrap()
}

fn any<T: Message + Name>(m: &T) -> Any {
    Any {
        type_url: T::type_url(),
        value: m.encode_to_vec(),
    }
}

const HCM: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";

fn bootstrap(dynamic: Value) -> Bootstrap {
    msg(json!({
        "node": {"id": "sidecar~10.0.0.1~a.ns~ns.svc.cluster.local", "cluster": "a.ns",
                 "metadata": {"NAMESPACE": "ns", "LABELS": {"app": "a"}}},
        "static_resources": {"clusters": [{
            "name": "xds-grpc",
            "type": "STATIC",
            "load_assignment": {"cluster_name": "xds-grpc", "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 15010}}}}
            ]}]}
        }]},
        "dynamic_resources": dynamic,
    }))
}

fn ads() -> Value {
    json!({
        "ads_config": {"api_type": "GRPC", "transport_api_version": "V3",
                       "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}]},
        "cds_config": {"ads": {}, "resource_api_version": "V3"},
        "lds_config": {"ads": {}, "resource_api_version": "V3", "initial_fetch_timeout": "0s"},
    })
}

fn listener(name: &str, port: u16, route: &str) -> Listener {
    msg(json!({
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": HCM,
                "stat_prefix": name,
                "rds": {"config_source": {"ads": {}, "resource_api_version": "V3"},
                        "route_config_name": route},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}],
            }
        }]}]
    }))
}

fn route(name: &str, cluster: &str) -> RouteConfiguration {
    msg(json!({
        "name": name,
        "virtual_hosts": [{"name": "all", "domains": ["*"],
                           "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}]}]
    }))
}

fn eds_cluster(name: &str, service: &str) -> Cluster {
    msg(json!({
        "name": name,
        "type": "EDS",
        "connect_timeout": "1s",
        "eds_cluster_config": {"service_name": service,
                               "eds_config": {"ads": {}, "initial_fetch_timeout": "3s"}},
    }))
}

fn cla(service: &str, port: u16) -> ClusterLoadAssignment {
    msg(json!({
        "cluster_name": service,
        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
            "address": "127.0.0.1", "port_value": port}}}}]}]
    }))
}

fn resources() -> XdsResources {
    XdsResources {
        listeners: vec![listener("in", 18080, "80")],
        routes: [("80".to_owned(), route("80", "outbound|80||a"))].into(),
        clusters: vec![eds_cluster("outbound|80||a", "a-svc")],
        endpoints: [("a-svc".to_owned(), cla("a-svc", 9001))].into(),
    }
}

fn convert(r: &XdsResources) -> Result<ProxyConfig, XdsError> {
    convert_xds(&bootstrap(ads()), Path::new("/"), r)
}

#[track_caller]
fn rejected(r: &XdsResources, kind: ResourceType, name: &str, text: &str) -> XdsError {
    let e = convert(r).expect_err("expected an error");
    assert_eq!(
        e.resource,
        Some(ResourceId {
            kind,
            name: name.to_owned()
        }),
        "{e}"
    );
    assert!(e.to_string().contains(text), "{e} lacks {text:?}");
    e
}

// ---- dynamic_resources -------------------------------------------------------------------------

#[test]
fn ads_config_is_read() {
    let config = ads_config(&bootstrap(ads())).unwrap().unwrap();
    assert_eq!(config.cluster_name, "xds-grpc");
    assert_eq!(config.target, ("127.0.0.1".to_owned(), 15010));
    assert_eq!(config.cds, Some(Some(DEFAULT_INITIAL_FETCH_TIMEOUT)));
    assert_eq!(config.lds, Some(None), "0s waits forever");
    assert_eq!(ads_config(&Bootstrap::default()).unwrap(), None);
}

#[test]
fn ads_config_rejects_what_the_client_does_not_speak() {
    let with = |pointer: &str, value: Value| {
        let mut d = ads();
        *d.pointer_mut(pointer).unwrap() = value;
        ads_config(&bootstrap(d)).unwrap_err()
    };
    let e = with("/ads_config/api_type", json!("DELTA_GRPC"));
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert!(e.message.contains("DELTA_GRPC"), "{e}");
    let e = with("/ads_config/api_type", json!("REST"));
    assert!(e.message.contains("api_type REST"), "{e}");
    let e = with(
        "/ads_config/grpc_services/0/envoy_grpc/cluster_name",
        json!("nope"),
    );
    assert!(e.message.contains("not a static cluster"), "{e}");
    assert_eq!(
        e.path,
        "dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name"
    );
    let e = with("/ads_config/grpc_services", json!([]));
    assert!(e.message.contains("exactly one gRPC service"), "{e}");
    let e = with("/cds_config/resource_api_version", json!("V2"));
    assert!(e.message.contains("V2"), "{e}");
    let mut no_ads = ads();
    no_ads.as_object_mut().unwrap().remove("ads_config");
    let e = ads_config(&bootstrap(no_ads)).unwrap_err();
    assert!(e.message.contains("without ads_config"), "{e}");
}

#[test]
fn bootstrap_conversion_checks_dynamic_resources_too() {
    let mut d = ads();
    d["ads_config"]["api_type"] = json!("DELTA_GRPC");
    let e = crate::convert_bootstrap(&bootstrap(d), Path::new("/")).unwrap_err();
    assert!(e.message.contains("DELTA_GRPC"), "{e}");
    let config = crate::convert_bootstrap(&bootstrap(ads()), Path::new("/")).unwrap();
    assert_eq!(config.node.metadata["NAMESPACE"], "ns");
    assert_eq!(config.node.metadata["LABELS"]["app"], "a");
    assert_eq!(config.node.user_agent_name, "weft");
}

// ---- decoding ----------------------------------------------------------------------------------

#[test]
fn decode_checks_type_rules_and_support() {
    let l = listener("in", 18080, "80");
    assert_eq!(
        decode(ResourceType::Listener, &any(&l)).unwrap(),
        Resource::Listener(Box::new(l.clone()))
    );
    // The wrong type for the response.
    let e = decode(ResourceType::Cluster, &any(&l)).unwrap_err();
    assert_eq!(e.error.kind, ErrorKind::TypeMismatch);
    assert!(e.to_string().contains("a CDS response holds"), "{e}");
    // validate.rules: a cluster's connect_timeout must be positive.
    let mut c = eds_cluster("c", "");
    c.connect_timeout = Some(envoy_types::pb::google::protobuf::Duration {
        seconds: 0,
        nanos: 0,
    });
    let e = decode(ResourceType::Cluster, &any(&c)).unwrap_err();
    assert_eq!(e.error.kind, ErrorKind::Constraint);
    assert!(
        e.to_string().starts_with("cluster \"c\": connect_timeout"),
        "{e}"
    );
    // The support tables.
    let mut l2 = l.clone();
    l2.tcp_fast_open_queue_length =
        Some(envoy_types::pb::google::protobuf::UInt32Value { value: 5 });
    let e = decode(ResourceType::Listener, &any(&l2)).unwrap_err();
    assert_eq!(e.error.kind, ErrorKind::Unsupported);
    assert!(
        e.to_string()
            .contains("unsupported: listener \"in\" field \"tcp_fast_open_queue_length\""),
        "{e}"
    );
    // A route configuration is named as one.
    let mut r = route("9080", "x");
    r.ignore_path_parameters_in_path_matching = true;
    let e = decode(ResourceType::RouteConfiguration, &any(&r)).unwrap_err();
    assert!(
        e.to_string().contains(
            "unsupported: route configuration \"9080\" field \"ignore_path_parameters_in_path_matching\""
        ),
        "{e}"
    );
    // A nameless resource cannot be tracked.
    let e = decode(ResourceType::Cluster, &any(&Cluster::default())).unwrap_err();
    assert!(e.to_string().contains("needs a name"), "{e}");
}

#[test]
fn decode_unwraps_discovery_resources() {
    let c = cla("svc", 1);
    let wrapped = envoy_types::pb::envoy::service::discovery::v3::Resource {
        name: "svc".into(),
        resource: Some(any(&c)),
        ..Default::default()
    };
    assert_eq!(
        decode(ResourceType::ClusterLoadAssignment, &any(&wrapped)).unwrap(),
        Resource::ClusterLoadAssignment(Box::new(c))
    );
}

// ---- subscriptions -----------------------------------------------------------------------------

#[test]
fn subscriptions_name_services_and_routes() {
    let sub = eds_subscription(&eds_cluster("outbound|80||a", "a-svc")).unwrap();
    assert_eq!(sub.name, "a-svc");
    assert_eq!(sub.initial_fetch_timeout, Some(Duration::from_secs(3)));
    let unnamed = eds_subscription(&eds_cluster("c", "")).unwrap();
    assert_eq!(
        unnamed.name, "c",
        "the service name defaults to the cluster's"
    );
    assert_eq!(eds_subscription(&Cluster::default()), None);
    let subs = rds_subscriptions(&listener("in", 1, "80"));
    assert_eq!(
        subs,
        vec![Subscription {
            name: "80".into(),
            initial_fetch_timeout: Some(DEFAULT_INITIAL_FETCH_TIMEOUT)
        }]
    );
}

// ---- conversion --------------------------------------------------------------------------------

#[test]
fn resources_are_assembled_with_the_static_ones() {
    let config = convert(&resources()).unwrap();
    let names: Vec<_> = config.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["xds-grpc", "outbound|80||a"]);
    let eds = &config.clusters[1];
    assert_eq!(eds.discovery, Discovery::Eds);
    let hosts: Vec<_> = eds
        .localities
        .iter()
        .flat_map(|l| l.endpoints.iter())
        .map(|e| format!("{:?}", e.address))
        .collect();
    assert_eq!(hosts.len(), 1);
    assert!(hosts[0].contains("9001"), "{hosts:?}");
    let NetworkFilter::Http(hcm) = &config.listeners[0].filter_chains[0].filter else {
        panic!("not HTTP");
    };
    assert_eq!(hcm.route_config.name(), "80");
}

#[test]
fn missing_routes_and_endpoints_are_empty_until_they_arrive() {
    let mut r = resources();
    r.routes.clear();
    r.endpoints.clear();
    let config = convert(&r).unwrap();
    assert!(config.clusters[1].localities.is_empty());
    let NetworkFilter::Http(hcm) = &config.listeners[0].filter_chains[0].filter else {
        panic!("not HTTP");
    };
    assert!(hcm.route_config.virtual_hosts().is_empty());
}

#[test]
fn rds_does_not_validate_clusters_by_default() {
    let mut r = resources();
    r.routes.insert("80".into(), route("80", "not-yet-known"));
    convert(&r).unwrap();
    let mut strict = route("80", "not-yet-known");
    strict.validate_clusters = Some(envoy_types::pb::google::protobuf::BoolValue { value: true });
    r.routes.insert("80".into(), strict);
    let e = rejected(
        &r,
        ResourceType::RouteConfiguration,
        "80",
        "unknown cluster \"not-yet-known\"",
    );
    assert!(
        e.to_string().starts_with("route configuration \"80\": "),
        "{e}"
    );
}

#[test]
fn errors_name_the_one_resource_at_fault() {
    // A listener: two listeners on one address.
    let mut r = resources();
    r.listeners.push(listener("second", 18080, "80"));
    let e = rejected(&r, ResourceType::Listener, "second", "same address");
    assert_eq!(e.error.path, "address");
    // A cluster: a dynamic cluster may not reuse a static cluster's name.
    let mut r = resources();
    r.clusters.push(eds_cluster("xds-grpc", "x"));
    rejected(
        &r,
        ResourceType::Cluster,
        "xds-grpc",
        "duplicate cluster name",
    );
    // An assignment: a hostname where EDS needs an IP.
    let mut r = resources();
    let mut bad = cla("a-svc", 1);
    bad.endpoints[0].lb_endpoints[0] = msg(json!(
        {"endpoint": {"address": {"socket_address": {"address": "a.example", "port_value": 1}}}}
    ));
    r.endpoints.insert("a-svc".into(), bad);
    let e = rejected(
        &r,
        ResourceType::ClusterLoadAssignment,
        "a-svc",
        "not an IP address",
    );
    assert!(e.error.path.starts_with("endpoints[0]"), "{}", e.error.path);
    // A route configuration: an invalid regex.
    let mut r = resources();
    let bad: RouteConfiguration = msg(json!({
        "name": "80",
        "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{
            "match": {"safe_regex": {"regex": "(unclosed"}}, "route": {"cluster": "c"}}]}]
    }));
    r.routes.insert("80".into(), bad);
    let e = rejected(&r, ResourceType::RouteConfiguration, "80", "");
    assert!(
        e.error.path.starts_with("virtual_hosts[0]"),
        "{}",
        e.error.path
    );
}

#[test]
fn eds_without_ads_is_still_unsupported() {
    let mut b = bootstrap(ads());
    b.dynamic_resources = None;
    let e = convert_xds(&b, Path::new("/"), &resources()).unwrap_err();
    assert_eq!(
        e.resource.map(|r| r.kind),
        Some(ResourceType::Cluster),
        "the first dynamic resource converted names itself"
    );
}

#[test]
fn resource_types_round_trip_their_urls() {
    for t in ResourceType::ALL {
        assert_eq!(ResourceType::from_type_url(t.type_url()), Some(t));
        assert!(t.type_url().ends_with(t.full_name()));
    }
    assert_eq!(ResourceType::from_type_url("type.googleapis.com/x"), None);
}
