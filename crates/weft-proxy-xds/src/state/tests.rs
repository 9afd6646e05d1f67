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
    assert_eq!(detail.code, 13, "INTERNAL, as Envoy sends");
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
    s.applied(&mut Outcome::default());
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
    s.applied(&mut Outcome::default());
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
    let mut out = s.on_response(response(CDS, "1", "n1", vec![]), Instant::now());
    assert_eq!(
        stats.update_success(ResourceType::Cluster),
        0,
        "a success once applied"
    );
    s.config().unwrap();
    s.applied(&mut out);
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

/// A proxy that cannot bind the addresses in `busy` (a listener already running there keeps its
/// socket), driven by the client's apply loop.
#[derive(Default)]
struct FakeProxy {
    busy: Vec<SocketAddr>,
    listening: Vec<(String, SocketAddr)>,
}

impl FakeProxy {
    fn refusing(busy: &[&str]) -> Self {
        FakeProxy {
            busy: busy.iter().map(|a| addr(a)).collect(),
            listening: Vec::new(),
        }
    }

    /// Applies the state's configuration as `AdsClient` does; returns what runs in the end if
    /// an attempt succeeded.
    fn apply(&mut self, s: &mut XdsState, out: &mut Outcome) -> Option<ProxyConfig> {
        loop {
            let config = s.config().unwrap();
            let refused = config.listeners.iter().find(|l| {
                self.busy.contains(&l.address)
                    && !self.listening.contains(&(l.name.clone(), l.address))
            });
            match refused {
                Some(l) => {
                    let error = ApplyError::Bind {
                        name: l.name.clone(),
                        address: l.address,
                        source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
                    };
                    if !s.apply_failed(&error, out) {
                        return None;
                    }
                }
                None => {
                    s.applied(out);
                    self.listening = config
                        .listeners
                        .iter()
                        .map(|l| (l.name.clone(), l.address))
                        .collect();
                    return Some(config);
                }
            }
        }
    }
}

/// The request of `type_url` in `out` (the ACK or NACK of its response).
fn reply<'a>(out: &'a Outcome, type_url: &str) -> &'a DiscoveryRequest {
    out.requests
        .iter()
        .find(|r| r.type_url == type_url && !r.response_nonce.is_empty())
        .unwrap_or_else(|| panic!("no reply of {type_url} in {:?}", out.requests))
}

fn dump_listeners(s: &XdsState) -> Vec<(String, String)> {
    s.dump()
        .listeners
        .into_iter()
        .map(|(v, l)| (v, l.name))
        .collect()
}

/// CDS (empty), LDS `l1` with listener `a` on 127.0.0.1:1001 (route `80`), RDS `r1`: applied.
fn running_a(proxy: &mut FakeProxy) -> (XdsState, Instant, ProxyConfig) {
    let (mut s, now) = state();
    s.on_connect();
    let mut out = s.on_response(response(CDS, "c1", "n1", vec![]), now);
    proxy.apply(&mut s, &mut out).unwrap();
    let out = s.on_response(
        response(
            LDS,
            "l1",
            "n2",
            vec![any(&http_listener("a", addr("127.0.0.1:1001"), "80"))],
        ),
        now,
    );
    assert!(!out.apply, "waits for route 80");
    let mut out = s.on_response(response(RDS, "r1", "n3", vec![any(&route("80", "c"))]), now);
    let config = proxy.apply(&mut s, &mut out).unwrap();
    assert_eq!(listener_names(&config), ["a"]);
    (s, now, config)
}

/// An LDS response with listener `a` as [`running_a`] runs it and listener `b` on `b_addr`
/// (both on route `80`).
fn lds_a_and_b(version: &str, nonce: &str, b_addr: &str) -> DiscoveryResponse {
    response(
        LDS,
        version,
        nonce,
        vec![
            any(&http_listener("a", addr("127.0.0.1:1001"), "80")),
            any(&http_listener("b", addr(b_addr), "80")),
        ],
    )
}

#[test]
fn a_listener_that_cannot_be_bound_is_nacked_and_the_rest_of_the_response_runs() {
    let mut proxy = FakeProxy::refusing(&["127.0.0.1:1002"]);
    let (mut s, now, _) = running_a(&mut proxy);
    let l2 = vec![
        any(&http_listener("a", addr("127.0.0.1:1001"), "80")),
        any(&http_listener("b", addr("127.0.0.1:1002"), "80")),
        any(&http_listener("c", addr("127.0.0.1:1003"), "80")),
    ];
    let mut out = s.on_response(response(LDS, "l2", "n4", l2.clone()), now);
    assert!(out.apply, "route 80 is there: no warming");
    let ran = proxy.apply(&mut s, &mut out).unwrap();
    assert_eq!(listener_names(&ran), ["a", "c"], "the others are applied");
    let nack = reply(&out, LDS);
    assert_eq!(
        (nack.version_info.as_str(), nack.response_nonce.as_str()),
        ("l1", "n4"),
        "the previous version, the response's nonce"
    );
    let detail = nack.error_detail.as_ref().expect("a NACK");
    assert_eq!(
        detail.message,
        "Error adding/updating listener(s) b: cannot bind '127.0.0.1:1002': address in use\n"
    );
    assert_eq!(out.rejected.as_deref(), Some(detail.message.as_str()));
    assert_eq!(out.requests.len(), 1, "{:?}", out.requests);
    // The state says what runs.
    assert_eq!(s.version(ResourceType::Listener), "l1");
    assert_eq!(
        dump_listeners(&s),
        [
            ("l1".to_owned(), "a".to_owned()),
            ("l1".to_owned(), "c".to_owned())
        ]
    );
    assert_eq!(s.subscribed(ResourceType::RouteConfiguration), ["80"]);
    assert_eq!(s.stats.update_rejected(ResourceType::Listener), 1);
    assert_eq!(s.stats.update_success(ResourceType::Listener), 1);

    // The same response again: NACKed again, not taken as unchanged.
    let mut out = s.on_response(response(LDS, "l2", "n5", l2), now);
    let ran = proxy.apply(&mut s, &mut out).unwrap();
    assert_eq!(listener_names(&ran), ["a", "c"]);
    let nack = reply(&out, LDS);
    assert_eq!(
        (nack.version_info.as_str(), nack.response_nonce.as_str()),
        ("l1", "n5")
    );
    assert!(nack.error_detail.is_some());
    assert_eq!(s.stats.update_rejected(ResourceType::Listener), 2);

    // Fixed: applied and ACKed with its version.
    let mut out = s.on_response(
        response(
            LDS,
            "l3",
            "n6",
            vec![
                any(&http_listener("a", addr("127.0.0.1:1001"), "80")),
                any(&http_listener("b", addr("127.0.0.1:1004"), "80")),
                any(&http_listener("c", addr("127.0.0.1:1003"), "80")),
            ],
        ),
        now,
    );
    let ran = proxy.apply(&mut s, &mut out).unwrap();
    assert_eq!(listener_names(&ran), ["a", "b", "c"]);
    let ack = reply(&out, LDS);
    assert_eq!(
        (ack.version_info.as_str(), ack.response_nonce.as_str()),
        ("l3", "n6")
    );
    assert!(ack.error_detail.is_none());
    assert_eq!(out.rejected, None);
    assert_eq!(s.version(ResourceType::Listener), "l3");
    assert_eq!(dump_listeners(&s).len(), 3);
    assert_eq!(s.stats.update_success(ResourceType::Listener), 2);
}

#[test]
fn a_listener_moved_to_a_busy_address_keeps_running_untouched() {
    let mut proxy = FakeProxy::refusing(&["127.0.0.1:1002"]);
    let (mut s, now, before) = running_a(&mut proxy);
    let mut out = s.on_response(
        response(
            LDS,
            "l2",
            "n4",
            vec![any(&http_listener("a", addr("127.0.0.1:1002"), "80"))],
        ),
        now,
    );
    let ran = proxy.apply(&mut s, &mut out).unwrap();
    assert!(
        Arc::ptr_eq(&before.listeners[0], &ran.listeners[0]),
        "the running listener is not rebuilt (its connections stay)"
    );
    assert_eq!(ran.listeners[0].address, addr("127.0.0.1:1001"));
    let detail = &reply(&out, LDS).error_detail.as_ref().unwrap().message;
    assert!(
        detail.starts_with("Error adding/updating listener(s) a: cannot bind '127.0.0.1:1002'"),
        "{detail}"
    );
    assert_eq!(
        s.dump().listeners[0].1,
        http_listener("a", addr("127.0.0.1:1001"), "80"),
        "the dump shows where it runs"
    );
}

#[test]
fn a_listener_failing_once_warm_nacks_the_listener_response_then() {
    let mut proxy = FakeProxy::refusing(&["127.0.0.1:1002"]);
    let (mut s, now, _) = running_a(&mut proxy);
    // `b` waits for route 81: the LDS response is ACKed before the listener is applied.
    let out = s.on_response(
        response(
            LDS,
            "l2",
            "n4",
            vec![
                any(&http_listener("a", addr("127.0.0.1:1001"), "80")),
                any(&http_listener("b", addr("127.0.0.1:1002"), "81")),
            ],
        ),
        now,
    );
    assert!(!out.apply);
    assert_eq!(reply(&out, LDS).version_info, "l2");
    assert_eq!(s.stats.update_success(ResourceType::Listener), 2);
    let mut out = s.on_response(
        response(
            RDS,
            "r2",
            "n5",
            vec![any(&route("80", "c")), any(&route("81", "c"))],
        ),
        now,
    );
    let ran = proxy.apply(&mut s, &mut out).unwrap();
    assert_eq!(listener_names(&ran), ["a"]);
    // The routes run and are ACKed; the listener response is NACKed with its nonce, and
    // route 81 is no longer needed.
    assert_eq!(
        types(&out),
        [
            (
                "RouteConfiguration",
                vec!["80".to_owned(), "81".to_owned()],
                false
            ),
            ("Listener", vec![], true),
            ("RouteConfiguration", vec!["80".to_owned()], false),
        ]
    );
    assert_eq!(out.requests[0].version_info, "r2");
    let nack = &out.requests[1];
    assert_eq!(
        (nack.version_info.as_str(), nack.response_nonce.as_str()),
        ("l1", "n4")
    );
    assert!(
        nack.error_detail
            .as_ref()
            .unwrap()
            .message
            .starts_with("Error adding/updating listener(s) b: cannot bind '127.0.0.1:1002'")
    );
    assert_eq!(out.rejected, None, "the RDS response itself is fine");
    assert_eq!(s.version(ResourceType::Listener), "l1");
    assert_eq!(s.stats.update_rejected(ResourceType::Listener), 1);
    assert_eq!(s.stats.update_success(ResourceType::RouteConfiguration), 2);
    // A reconnection resubscribes with the version that runs.
    let reqs = s.on_connect();
    let lds = reqs.iter().find(|r| r.type_url == LDS).unwrap();
    assert_eq!(lds.version_info, "l1");
}

#[test]
fn a_cluster_whose_tls_cannot_be_built_is_nacked() {
    let (mut s, now) = state();
    s.on_connect();
    let out = s.on_response(
        response(CDS, "c1", "n1", vec![any(&eds_cluster("x", "svc"))]),
        now,
    );
    assert_eq!(reply(&out, CDS).version_info, "c1");
    let mut out = s.on_response(
        response(
            EDS,
            "e1",
            "n2",
            vec![any(&assignment("svc", &[addr("127.0.0.1:9001")]))],
        ),
        now,
    );
    assert!(out.apply);
    let config = s.config().unwrap();
    assert_eq!(cluster_names(&config), ["xds-grpc", "x"]);
    let error = ApplyError::Tls {
        owner: TlsOwner::Cluster("x".to_owned()),
        message: "cannot read /certs/x.pem: No such file or directory".to_owned(),
    };
    assert!(s.apply_failed(&error, &mut out));
    assert_eq!(cluster_names(&s.config().unwrap()), ["xds-grpc"]);
    s.applied(&mut out);
    let nack = reply(&out, CDS);
    assert_eq!(
        (nack.version_info.as_str(), nack.response_nonce.as_str()),
        ("", "n1")
    );
    assert_eq!(
        nack.error_detail.as_ref().unwrap().message,
        "Error adding/updating cluster(s) x: cannot read /certs/x.pem: No such file or directory"
    );
    assert!(s.dump().clusters.is_empty());
    assert_eq!(s.version(ResourceType::Cluster), "");
    assert!(s.subscribed(ResourceType::ClusterLoadAssignment).is_empty());
    assert_eq!(s.stats.update_rejected(ResourceType::Cluster), 1);
    assert_eq!(
        s.stats.update_success(ResourceType::ClusterLoadAssignment),
        1
    );
}

#[test]
fn a_failure_not_pinned_on_a_resource_keeps_what_runs() {
    let mut proxy = FakeProxy::default();
    let (mut s, now, _) = running_a(&mut proxy);
    let mut out = s.on_response(lds_a_and_b("l2", "n4", "127.0.0.1:1002"), now);
    s.config().unwrap();
    let error = ApplyError::Tls {
        owner: TlsOwner::Cluster("nowhere".to_owned()),
        message: "broken".to_owned(),
    };
    assert!(!s.apply_failed(&error, &mut out), "nothing to try again");
    let nack = reply(&out, LDS);
    assert_eq!(nack.version_info, "l1");
    assert_eq!(
        nack.error_detail.as_ref().unwrap().message,
        "cluster \"nowhere\": broken"
    );
    assert_eq!(listener_names(&s.config().unwrap()), ["a"]);
    assert_eq!(dump_listeners(&s), [("l1".to_owned(), "a".to_owned())]);
    // The same response again is tried again.
    let out = s.on_response(lds_a_and_b("l2", "n5", "127.0.0.1:1002"), now);
    assert!(out.apply);
    assert_eq!(listener_names(&s.config().unwrap()), ["a", "b"]);
}

#[test]
fn an_apply_failure_adds_to_what_the_checks_rejected() {
    let mut proxy = FakeProxy::refusing(&["127.0.0.1:1002"]);
    let (mut s, now, _) = running_a(&mut proxy);
    let mut bad = http_listener("bad", addr("127.0.0.1:1005"), "80");
    bad.tcp_fast_open_queue_length =
        Some(envoy_types::pb::google::protobuf::UInt32Value { value: 1 });
    let mut out = s.on_response(
        response(
            LDS,
            "l2",
            "n4",
            vec![
                any(&http_listener("a", addr("127.0.0.1:1001"), "80")),
                any(&bad),
                any(&http_listener("b", addr("127.0.0.1:1002"), "80")),
            ],
        ),
        now,
    );
    proxy.apply(&mut s, &mut out).unwrap();
    let nacks: Vec<_> = out.requests.iter().filter(|r| r.type_url == LDS).collect();
    assert_eq!(nacks.len(), 1, "one reply per response");
    let message = &nacks[0].error_detail.as_ref().unwrap().message;
    assert!(
        message.starts_with("listener \"bad\"")
            && message.contains("; Error adding/updating listener(s) b: cannot bind"),
        "{message}"
    );
    assert_eq!(nacks[0].version_info, "l1");
    assert_eq!(
        s.stats.update_rejected(ResourceType::Listener),
        1,
        "one NACK"
    );
}

#[test]
fn a_conversion_failure_pinned_on_a_listener_rolls_it_back() {
    let mut proxy = FakeProxy::default();
    let (mut s, now, _) = running_a(&mut proxy);
    let mut out = s.on_response(lds_a_and_b("l2", "n4", "127.0.0.1:1002"), now);
    let error = XdsError {
        resource: Some(weft_proxy_config::xds::ResourceId {
            kind: ResourceType::Listener,
            name: "b".to_owned(),
        }),
        error: Box::new(ConfigError {
            file: None,
            line: None,
            path: "address".to_owned(),
            kind: ErrorKind::Constraint,
            message: "clashes".to_owned(),
        }),
    };
    assert!(s.convert_failed(&error, &mut out));
    let ran = proxy.apply(&mut s, &mut out).unwrap();
    assert_eq!(listener_names(&ran), ["a"]);
    let message = &reply(&out, LDS).error_detail.as_ref().unwrap().message;
    assert!(
        message.starts_with("Error adding/updating listener(s) b: ") && message.contains("clashes"),
        "{message}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_bind_failure_is_worded_as_envoy_words_it() {
    let mut proxy = FakeProxy::default();
    let (mut s, now, _) = running_a(&mut proxy);
    let mut out = s.on_response(lds_a_and_b("l2", "n4", "[::1]:1002"), now);
    s.config().unwrap();
    let error = ApplyError::Bind {
        name: "b".to_owned(),
        address: addr("[::1]:1002"),
        source: std::io::Error::from_raw_os_error(98), // EADDRINUSE
    };
    assert!(s.apply_failed(&error, &mut out));
    assert_eq!(
        reply(&out, LDS).error_detail.as_ref().unwrap().message,
        "Error adding/updating listener(s) b: cannot bind '[::1]:1002': Address already in use\n"
    );
}
