//! The protocol state machine, driven by hand: no network, an explicit clock.

use std::net::SocketAddr;
use std::path::Path;

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use envoy_types::pb::google::protobuf::Any;
use weft_test_support::mock_ads::resources::{
    ads_bootstrap, any, assignment, eds_cluster, http_listener, route,
};
use weft_test_support::mock_ads::{CDS, EDS, LDS, RDS};

use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn bootstrap_with(extra: &str) -> Bootstrap {
    let yaml = ads_bootstrap(addr("127.0.0.1:15010"), addr("127.0.0.1:15000"), "node-1") + extra;
    weft_proxy_config::parse_bootstrap(Path::new("b.yaml"), &yaml).unwrap()
}

fn state() -> (XdsState, Instant) {
    let now = Instant::now();
    let s = XdsState::new(
        bootstrap_with(""),
        PathBuf::from("/"),
        now,
        Arc::new(XdsStats::default()),
    )
    .unwrap();
    (s, now)
}

fn response(type_url: &str, version: &str, nonce: &str, resources: Vec<Any>) -> DiscoveryResponse {
    DiscoveryResponse {
        version_info: version.into(),
        resources,
        type_url: type_url.into(),
        nonce: nonce.into(),
        ..Default::default()
    }
}

fn types(out: &Outcome) -> Vec<(&str, Vec<String>, bool)> {
    out.requests
        .iter()
        .map(|r| {
            (
                r.type_url.rsplit('.').next().unwrap(),
                r.resource_names.clone(),
                r.error_detail.is_some(),
            )
        })
        .collect()
}

fn cluster_names(c: &ProxyConfig) -> Vec<&str> {
    c.clusters.iter().map(|c| c.name.as_str()).collect()
}

fn listener_names(c: &ProxyConfig) -> Vec<&str> {
    c.listeners.iter().map(|l| l.name.as_str()).collect()
}

#[test]
fn first_requests_carry_the_node_once_and_subscribe_cds_then_lds() {
    let (mut s, _) = state();
    let reqs = s.on_connect();
    assert_eq!(
        reqs.iter().map(|r| r.type_url.as_str()).collect::<Vec<_>>(),
        [CDS, LDS]
    );
    let node = reqs[0].node.as_ref().unwrap();
    assert_eq!(node.id, "node-1");
    assert_eq!(node.user_agent_name, "weft");
    assert!(
        node.metadata
            .as_ref()
            .unwrap()
            .fields
            .contains_key("NAMESPACE")
    );
    assert!(
        reqs[1].node.is_none(),
        "the node goes with the first request only"
    );
    assert!(
        reqs.iter()
            .all(|r| r.resource_names.is_empty() && r.response_nonce.is_empty())
    );
    // A new stream sends it again.
    assert!(s.on_connect()[0].node.is_some());
}

#[test]
fn clusters_warm_until_their_endpoints_arrive() {
    let (mut s, now) = state();
    s.on_connect();
    let out = s.on_response(
        response(
            CDS,
            "c1",
            "n1",
            vec![any(&eds_cluster("outbound|80||a", "a"))],
        ),
        now,
    );
    // EDS subscription first, then the CDS ACK.
    assert_eq!(
        types(&out),
        [
            ("ClusterLoadAssignment", vec!["a".to_owned()], false),
            ("Cluster", vec![], false)
        ]
    );
    let ack = &out.requests[1];
    assert_eq!(
        (ack.version_info.as_str(), ack.response_nonce.as_str()),
        ("c1", "n1")
    );
    assert!(!out.apply, "warming: not applied before its endpoints");
    assert_eq!(cluster_names(&s.config().unwrap()), ["xds-grpc"]);
    let out = s.on_response(
        response(
            EDS,
            "e1",
            "n2",
            vec![any(&assignment("a", &[addr("127.0.0.1:9001")]))],
        ),
        now,
    );
    assert!(out.apply);
    let config = s.config().unwrap();
    assert_eq!(cluster_names(&config), ["xds-grpc", "outbound|80||a"]);
    assert_eq!(config.clusters[1].localities[0].endpoints.len(), 1);
    assert_eq!(
        types(&out),
        [("ClusterLoadAssignment", vec!["a".to_owned()], false)]
    );
    assert_eq!(out.requests[0].version_info, "e1");
}

#[test]
fn warming_gives_up_at_the_initial_fetch_timeout() {
    let (mut s, now) = state();
    s.on_connect();
    // eds_cluster() leaves initial_fetch_timeout unset: 15 s.
    let out = s.on_response(
        response(CDS, "c1", "n1", vec![any(&eds_cluster("c", "svc"))]),
        now,
    );
    assert!(!out.apply);
    assert_eq!(s.next_deadline(), Some(now + Duration::from_secs(15)));
    assert!(!s.on_tick(now + Duration::from_secs(14)).apply);
    assert!(s.on_tick(now + Duration::from_secs(15)).apply);
    let config = s.config().unwrap();
    assert_eq!(cluster_names(&config), ["xds-grpc", "c"]);
    assert!(config.clusters[1].localities.is_empty());
}

#[test]
fn listeners_warm_until_their_routes_arrive_and_initialization_waits_for_both() {
    let (mut s, now) = state();
    s.on_connect();
    let out = s.on_response(response(CDS, "c1", "n1", vec![]), now);
    assert!(out.apply && !out.initialized, "LDS is still to come");
    let out = s.on_response(
        response(
            LDS,
            "l1",
            "n2",
            vec![any(&http_listener("in", addr("127.0.0.1:0"), "80"))],
        ),
        now,
    );
    assert_eq!(
        types(&out),
        [
            ("RouteConfiguration", vec!["80".to_owned()], false),
            ("Listener", vec![], false)
        ]
    );
    assert!(!out.apply && !out.initialized);
    let out = s.on_response(response(RDS, "r1", "n3", vec![any(&route("80", "c"))]), now);
    assert!(out.apply && out.initialized && s.is_initialized());
    assert_eq!(listener_names(&s.config().unwrap()), ["in"]);
}

#[test]
fn an_invalid_resource_is_nacked_and_keeps_its_previous_version() {
    let (mut s, now) = state();
    s.on_connect();
    let good_a = http_listener("a", addr("127.0.0.1:0"), "80");
    let good_b = http_listener("b", addr("127.0.0.2:0"), "80");
    s.on_response(response(RDS, "", "", vec![]), now);
    s.on_response(
        response(LDS, "l1", "n1", vec![any(&good_a), any(&good_b)]),
        now,
    );
    s.on_response(response(RDS, "r1", "n2", vec![any(&route("80", "c"))]), now);
    // v2: `a` gains an unsupported field, `b` moves address, `c` is new.
    let mut bad_a = good_a.clone();
    bad_a.tcp_fast_open_queue_length =
        Some(envoy_types::pb::google::protobuf::UInt32Value { value: 1 });
    let moved_b = http_listener("b", addr("127.0.0.3:0"), "80");
    let new_c = http_listener("c", addr("127.0.0.4:0"), "80");
    let out = s.on_response(
        response(
            LDS,
            "l2",
            "n3",
            vec![any(&bad_a), any(&moved_b), any(&new_c)],
        ),
        now,
    );
    let nack = out.requests.last().unwrap();
    assert_eq!(
        nack.version_info, "l1",
        "a NACK carries the previous version"
    );
    assert_eq!(nack.response_nonce, "n3");
    let detail = nack.error_detail.as_ref().unwrap();
    assert_eq!(detail.code, 3);
    assert!(
        detail.message.contains("listener \"a\"") && detail.message.contains("tcp_fast_open"),
        "{}",
        detail.message
    );
    assert_eq!(out.rejected.as_deref(), Some(detail.message.as_str()));
    assert_eq!(s.version(ResourceType::Listener), "l1");
    // The valid ones were taken, `a` kept its previous version.
    let config = s.config().unwrap();
    assert_eq!(listener_names(&config), ["a", "b", "c"]);
    assert_eq!(config.listeners[1].address, addr("127.0.0.3:0"));
    // The next good response is ACKed with its version.
    let out = s.on_response(response(LDS, "l3", "n4", vec![any(&good_a)]), now);
    let ack = out.requests.last().unwrap();
    assert!(ack.error_detail.is_none());
    assert_eq!(ack.version_info, "l3");
    assert_eq!(
        listener_names(&s.config().unwrap()),
        ["a"],
        "LDS is the full set"
    );
}

#[test]
fn a_conversion_error_rejects_only_the_resource_at_fault() {
    let (mut s, now) = state();
    s.on_connect();
    // Two listeners on one address: the second is rejected, the first taken.
    let one = http_listener("one", addr("127.0.0.1:18000"), "80");
    let two = http_listener("two", addr("127.0.0.1:18000"), "80");
    let out = s.on_response(response(LDS, "l1", "n1", vec![any(&one), any(&two)]), now);
    let nack = out.requests.last().unwrap();
    let message = &nack.error_detail.as_ref().unwrap().message;
    assert!(
        message.starts_with("listener \"two\": address"),
        "{message}"
    );
    assert_eq!(nack.version_info, "");
    s.on_tick(now + Duration::from_secs(60));
    assert_eq!(listener_names(&s.config().unwrap()), ["one"]);
}

#[test]
fn a_bad_assignment_keeps_the_previous_endpoints() {
    let (mut s, now) = state();
    s.on_connect();
    s.on_response(
        response(CDS, "c1", "n1", vec![any(&eds_cluster("c", "svc"))]),
        now,
    );
    s.on_response(
        response(
            EDS,
            "e1",
            "n2",
            vec![any(&assignment("svc", &[addr("127.0.0.1:9001")]))],
        ),
        now,
    );
    let mut bad = assignment("svc", &[addr("127.0.0.1:9002")]);
    bad.endpoints[0].priority = 200; // priorities must be contiguous from 0
    let out = s.on_response(response(EDS, "e2", "n3", vec![any(&bad)]), now);
    let nack = out.requests.last().unwrap();
    assert_eq!(nack.version_info, "e1");
    let message = &nack.error_detail.as_ref().unwrap().message;
    assert!(
        message.starts_with("cluster load assignment \"svc\""),
        "{message}"
    );
    assert!(!out.apply);
    let config = s.config().unwrap();
    assert!(format!("{:?}", config.clusters[1].localities).contains("9001"));
}

#[test]
fn eds_and_rds_responses_only_touch_subscribed_names() {
    let (mut s, now) = state();
    s.on_connect();
    s.on_response(
        response(
            CDS,
            "c1",
            "n1",
            vec![any(&eds_cluster("a", "a")), any(&eds_cluster("b", "b"))],
        ),
        now,
    );
    assert_eq!(
        s.subscribed(ResourceType::ClusterLoadAssignment),
        ["a", "b"]
    );
    s.on_response(
        response(
            EDS,
            "e1",
            "n2",
            vec![
                any(&assignment("a", &[addr("127.0.0.1:1")])),
                any(&assignment("zzz", &[addr("127.0.0.1:2")])),
            ],
        ),
        now,
    );
    // `b` is not in this response, which does not remove it; `zzz` was never asked for.
    s.on_response(
        response(
            EDS,
            "e2",
            "n3",
            vec![any(&assignment("b", &[addr("127.0.0.1:3")]))],
        ),
        now,
    );
    let config = s.config().unwrap();
    assert_eq!(cluster_names(&config), ["xds-grpc", "a", "b"]);
    assert!(
        config
            .clusters
            .iter()
            .all(|c| c.name == "xds-grpc" || !c.localities.is_empty())
    );
    // Removing `b` from CDS unsubscribes its service once the new set is active.
    let out = s.on_response(
        response(CDS, "c2", "n4", vec![any(&eds_cluster("a", "a"))]),
        now,
    );
    assert_eq!(
        types(&out),
        [
            ("Cluster", vec![], false),
            ("ClusterLoadAssignment", vec!["a".to_owned()], false)
        ]
    );
    assert!(out.apply);
    assert_eq!(cluster_names(&s.config().unwrap()), ["xds-grpc", "a"]);
}

#[test]
fn reconnecting_resends_subscriptions_with_the_last_accepted_versions() {
    let (mut s, now) = state();
    s.on_connect();
    s.on_response(
        response(CDS, "c1", "n1", vec![any(&eds_cluster("a", "svc"))]),
        now,
    );
    s.on_response(
        response(
            EDS,
            "e1",
            "n2",
            vec![any(&assignment("svc", &[addr("127.0.0.1:1")]))],
        ),
        now,
    );
    s.on_response(
        response(
            LDS,
            "l1",
            "n3",
            vec![any(&http_listener("in", addr("127.0.0.1:0"), "80"))],
        ),
        now,
    );
    s.on_response(response(RDS, "r1", "n4", vec![any(&route("80", "a"))]), now);
    let reqs = s.on_connect();
    let summary: Vec<_> = reqs
        .iter()
        .map(|r| {
            (
                r.type_url.as_str(),
                r.version_info.as_str(),
                r.response_nonce.as_str(),
                r.resource_names.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (CDS, "c1", "", vec![]),
            (EDS, "e1", "", vec!["svc".to_owned()]),
            (LDS, "l1", "", vec![]),
            (RDS, "r1", "", vec!["80".to_owned()]),
        ]
    );
    assert!(reqs[0].node.is_some());
}

#[test]
fn unchanged_listeners_keep_their_arc() {
    let (mut s, now) = state();
    s.on_connect();
    s.on_response(
        response(CDS, "c1", "n1", vec![any(&eds_cluster("a", "svc"))]),
        now,
    );
    s.on_response(
        response(
            LDS,
            "l1",
            "n2",
            vec![
                any(&http_listener("x", addr("127.0.0.1:0"), "80")),
                any(&http_listener("y", addr("127.0.0.2:0"), "81")),
            ],
        ),
        now,
    );
    s.on_response(
        response(
            RDS,
            "r1",
            "n3",
            vec![any(&route("80", "a")), any(&route("81", "a"))],
        ),
        now,
    );
    let first = s.config().unwrap();
    // An endpoint update: both listeners unchanged.
    s.on_response(
        response(
            EDS,
            "e1",
            "n4",
            vec![any(&assignment("svc", &[addr("127.0.0.1:1")]))],
        ),
        now,
    );
    let second = s.config().unwrap();
    assert!(Arc::ptr_eq(&first.listeners[0], &second.listeners[0]));
    assert!(Arc::ptr_eq(&first.listeners[1], &second.listeners[1]));
    // Route 81 changes: only `y` is rebuilt.
    s.on_response(response(RDS, "r2", "n5", vec![any(&route("81", "b"))]), now);
    let third = s.config().unwrap();
    assert!(Arc::ptr_eq(&second.listeners[0], &third.listeners[0]));
    assert!(!Arc::ptr_eq(&second.listeners[1], &third.listeners[1]));
}

#[test]
fn static_listeners_naming_rds_wait_for_their_routes() {
    let extra = r#"  listeners:
  - name: static-in
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: s
          rds: {route_config_name: static-routes, config_source: {ads: {}, initial_fetch_timeout: 2s}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
"#;
    let now = Instant::now();
    let mut s = XdsState::new(
        bootstrap_with(extra),
        PathBuf::from("/"),
        now,
        Arc::new(XdsStats::default()),
    )
    .unwrap();
    let reqs = s.on_connect();
    assert_eq!(reqs.last().unwrap().resource_names, ["static-routes"]);
    assert!(listener_names(&s.config().unwrap()).is_empty());
    assert!(s.on_tick(now + Duration::from_secs(2)).apply);
    assert_eq!(listener_names(&s.config().unwrap()), ["static-in"]);
}

#[test]
fn responses_of_other_types_are_ignored_and_stats_count() {
    let stats = Arc::new(XdsStats::default());
    let mut s = XdsState::new(
        bootstrap_with(""),
        PathBuf::from("/"),
        Instant::now(),
        stats.clone(),
    )
    .unwrap();
    let out = s.on_response(
        response(
            "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
            "1",
            "n",
            vec![],
        ),
        Instant::now(),
    );
    assert!(out.requests.is_empty());
    s.on_response(response(CDS, "1", "n1", vec![]), Instant::now());
    s.on_response(
        response(CDS, "2", "n2", vec![any(&route("x", "y"))]),
        Instant::now(),
    );
    assert_eq!(stats.update_success(ResourceType::Cluster), 1);
    assert_eq!(stats.update_rejected(ResourceType::Cluster), 1);
    let exported = stats.export();
    assert!(exported.contains(&("cluster_manager.cds.update_rejected".to_owned(), 1, true)));
    assert!(exported.contains(&("control_plane.connected_state".to_owned(), 0, false)));
}

#[test]
fn a_bootstrap_without_ads_is_refused() {
    let b = weft_proxy_config::parse_bootstrap(
        Path::new("b.yaml"),
        "admin: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}",
    )
    .unwrap();
    let e = XdsState::new(b, PathBuf::from("/"), Instant::now(), Arc::default()).unwrap_err();
    assert!(e.message.contains("no ADS configuration"), "{e}");
}

#[test]
fn backoff_is_jittered_exponential_and_capped() {
    let mut b = crate::Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
    assert!(delays[0] >= Duration::from_millis(250) && delays[0] <= Duration::from_millis(500));
    assert!(delays[1] >= Duration::from_millis(500) && delays[1] <= Duration::from_secs(1));
    assert!(delays[3] >= Duration::from_secs(2) && delays[3] <= Duration::from_secs(4));
    assert!(delays.iter().all(|d| *d <= Duration::from_secs(30)));
    assert!(
        delays[9] >= Duration::from_secs(15),
        "capped at 30 s, jittered down to half"
    );
    b.reset();
    assert!(b.next_delay() <= Duration::from_millis(500));
}
