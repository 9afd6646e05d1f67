//! `weft proxy` configured by a control plane: the real binary against a scripted ADS server
//! on loopback, routing real HTTP to test upstreams.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use weft_test_support::mock_ads::resources::{
    ads_bootstrap, any, assignment, eds_cluster, http_listener, route,
};
use weft_test_support::mock_ads::{CDS, EDS, LDS, RDS};
use weft_test_support::{
    ChildProcess, HttpServer, MockAds, TempDir, free_addr, http1_get, require_envoy,
};

const WAIT: Duration = Duration::from_secs(20);
const CLUSTER: &str = "outbound|80||a.default.svc.cluster.local";

fn weft() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weft"))
}

struct Setup {
    mock: MockAds,
    proxy: ChildProcess,
    admin: SocketAddr,
    listen: SocketAddr,
    _dir: TempDir,
}

/// A proxy whose bootstrap points at a fresh mock ADS server.
async fn setup() -> Setup {
    setup_with(None).await
}

/// [`setup`] with Envoy rather than weft when `envoy` is given.
async fn setup_with(envoy: Option<&Path>) -> Setup {
    let mock = MockAds::start().await;
    let admin = free_addr();
    let listen = free_addr();
    let dir = TempDir::new("weft-xds");
    let file = dir.write(
        "bootstrap.yaml",
        ads_bootstrap(
            mock.addr(),
            admin,
            "sidecar~127.0.0.1~a.default~default.svc.cluster.local",
        ),
    );
    let cmd = match envoy {
        Some(envoy) => {
            let mut cmd = Command::new(envoy);
            cmd.args([
                "--concurrency",
                "1",
                "-l",
                "warning",
                "--use-dynamic-base-id",
                "-c",
            ])
            .arg(&file);
            cmd
        }
        None => {
            let mut cmd = Command::new(weft());
            cmd.args([
                "proxy",
                "--concurrency",
                "2",
                "-l",
                "info",
                "--drain-time-s",
                "1",
                "-c",
            ])
            .arg(&file);
            cmd
        }
    };
    let mut proxy = ChildProcess::spawn(cmd);
    proxy.wait_for_port(admin, WAIT).await;
    Setup {
        mock,
        proxy,
        admin,
        listen,
        _dir: dir,
    }
}

/// Sends CDS, EDS, LDS and RDS (version `1` each) for one listener routing to one upstream,
/// and waits until the proxy serves through it.
async fn configure(s: &Setup, upstream: SocketAddr) {
    let n = s
        .mock
        .respond(CDS, "c1", vec![any(&eds_cluster(CLUSTER, "a"))]);
    s.mock.wait_for_reply(CDS, &n).await;
    let n = s
        .mock
        .respond(EDS, "e1", vec![any(&assignment("a", &[upstream]))]);
    s.mock.wait_for_reply(EDS, &n).await;
    serve_listener(s).await;
}

/// Sends listener `in` (on `s.listen`) and its route `80` to `CLUSTER`, and waits until a
/// request through it is answered.
async fn serve_listener(s: &Setup) {
    let n = s
        .mock
        .respond(LDS, "l1", vec![any(&http_listener("in", s.listen, "80"))]);
    s.mock.wait_for_reply(LDS, &n).await;
    let n = s.mock.respond(RDS, "r1", vec![any(&route("80", CLUSTER))]);
    s.mock.wait_for_reply(RDS, &n).await;
    wait_served_by(s.listen, None).await;
}

/// Polls until a request through `listen` answers 200 (from `name`, when given).
async fn wait_served_by(listen: SocketAddr, name: Option<&str>) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let last = http1_get(listen, "a.default", "/", &[]).await;
        match &last {
            Ok(r) if r.status == 200 && name.is_none_or(|n| r.served_by() == Some(n)) => return,
            _ if tokio::time::Instant::now() > deadline => {
                panic!(
                    "not served by {name:?} through {listen}: {:?}",
                    last.map(|r| (r.status, r.served_by().map(str::to_owned)))
                )
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn admin_get(admin: SocketAddr, path: &str) -> (u16, String) {
    let r = http1_get(admin, "admin", path, &[]).await.unwrap();
    (r.status.as_u16(), r.text())
}

#[tokio::test]
async fn the_control_plane_configures_routing_with_warming_acks_and_nacks() {
    let u1 = HttpServer::start("u1").await;
    let u2 = HttpServer::start("u2").await;
    let mut s = setup().await;

    // The first request carries the node; CDS and LDS are wildcard subscriptions.
    let (cds_at, first_cds) = s.mock.wait_for(WAIT, "CDS", |r| r.type_url == CDS).await;
    let node = first_cds.node.as_ref().expect("node on the first request");
    assert_eq!(
        node.id,
        "sidecar~127.0.0.1~a.default~default.svc.cluster.local"
    );
    assert_eq!(node.user_agent_name, "weft");
    assert!(first_cds.resource_names.is_empty());
    s.mock.wait_for(WAIT, "LDS", |r| r.type_url == LDS).await;
    assert_eq!(
        admin_get(s.admin, "/ready").await.0,
        503,
        "not ready before configuration"
    );

    // CDS → EDS subscription (warming), then the ACK with version and nonce.
    let n1 = s
        .mock
        .respond(CDS, "c1", vec![any(&eds_cluster(CLUSTER, "a"))]);
    let (eds_at, eds) = s.mock.wait_for(WAIT, "EDS", |r| r.type_url == EDS).await;
    assert!(eds_at > cds_at, "EDS is requested after CDS");
    assert_eq!(eds.resource_names, ["a"]);
    let ack = s.mock.wait_for_reply(CDS, &n1).await;
    assert_eq!(ack.version_info, "c1");
    assert!(ack.error_detail.is_none());

    // LDS → RDS subscription; the listener waits for its routes.
    let n2 = s
        .mock
        .respond(LDS, "l1", vec![any(&http_listener("in", s.listen, "80"))]);
    let (rds_at, rds) = s.mock.wait_for(WAIT, "RDS", |r| r.type_url == RDS).await;
    let (lds_ack_at, lds_ack) = s
        .mock
        .wait_for(WAIT, "LDS ACK", |r| {
            r.type_url == LDS && r.response_nonce == n2
        })
        .await;
    assert!(
        rds_at < lds_ack_at,
        "RDS is requested before LDS is ACKed, as Envoy does"
    );
    assert_eq!(rds.resource_names, ["80"]);
    assert_eq!(lds_ack.version_info, "l1");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        tokio::net::TcpStream::connect(s.listen).await.is_err(),
        "a warming listener is not bound"
    );

    let n3 = s
        .mock
        .respond(EDS, "e1", vec![any(&assignment("a", &[u1.addr()]))]);
    assert_eq!(s.mock.wait_for_reply(EDS, &n3).await.version_info, "e1");
    let n4 = s.mock.respond(RDS, "r1", vec![any(&route("80", CLUSTER))]);
    assert_eq!(s.mock.wait_for_reply(RDS, &n4).await.version_info, "r1");
    s.proxy.wait_for_port(s.listen, WAIT).await;
    wait_served_by(s.listen, Some("u1")).await;
    assert_eq!(admin_get(s.admin, "/ready").await.0, 200);

    // An endpoint update moves traffic to u2.
    let n5 = s
        .mock
        .respond(EDS, "e2", vec![any(&assignment("a", &[u2.addr()]))]);
    s.mock.wait_for_reply(EDS, &n5).await;
    wait_served_by(s.listen, Some("u2")).await;

    // An invalid listener is NACKed, naming it; the running configuration keeps serving.
    let mut bad = http_listener("bad", free_addr(), "80");
    bad.tcp_fast_open_queue_length =
        Some(envoy_types::pb::google::protobuf::UInt32Value { value: 1 });
    let n6 = s.mock.respond(
        LDS,
        "l2",
        vec![any(&http_listener("in", s.listen, "80")), any(&bad)],
    );
    let nack = s.mock.wait_for_reply(LDS, &n6).await;
    assert_eq!(
        nack.version_info, "l1",
        "a NACK carries the last accepted version"
    );
    let detail = nack.error_detail.expect("error_detail");
    assert!(
        detail.message.contains("listener \"bad\"") && detail.message.contains("tcp_fast_open"),
        "{}",
        detail.message
    );
    wait_served_by(s.listen, Some("u2")).await;
    let (_, stats) = admin_get(s.admin, "/stats").await;
    assert!(
        stats.contains("listener_manager.lds.update_rejected: 1"),
        "{stats}"
    );
    assert!(
        stats.contains("control_plane.connected_state: 1"),
        "{stats}"
    );

    // A listener set without `in` closes it.
    let n7 = s.mock.respond(LDS, "l3", vec![]);
    assert_eq!(s.mock.wait_for_reply(LDS, &n7).await.version_info, "l3");
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(s.listen).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "listener still open"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(s.proxy.try_wait().is_none(), "{}", s.proxy.tail(30));
}

#[tokio::test]
async fn losing_the_control_plane_keeps_serving_and_reconnects_with_the_last_versions() {
    let u1 = HttpServer::start("u1").await;
    let mut s = setup().await;
    configure(&s, u1.addr()).await;
    let ads_addr = s.mock.addr();

    // The control plane goes away: traffic still flows.
    let old = std::mem::replace(&mut s.mock, MockAds::start().await);
    old.stop().await;
    for _ in 0..5 {
        wait_served_by(s.listen, Some("u1")).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while admin_get(s.admin, "/stats")
        .await
        .1
        .contains("control_plane.connected_state: 1")
    {
        assert!(tokio::time::Instant::now() < deadline, "still connected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // It comes back where it was: the proxy resubscribes with what it accepted last.
    s.mock = MockAds::start_on(ads_addr).await;
    let (_, cds) = s
        .mock
        .wait_for(Duration::from_secs(60), "CDS", |r| r.type_url == CDS)
        .await;
    assert!(cds.node.is_some(), "a new stream starts with the node");
    assert_eq!(cds.version_info, "c1");
    assert!(cds.response_nonce.is_empty());
    let (_, eds) = s.mock.wait_for(WAIT, "EDS", |r| r.type_url == EDS).await;
    assert_eq!(
        (eds.version_info.as_str(), eds.resource_names.clone()),
        ("e1", vec!["a".to_owned()])
    );
    let (_, lds) = s.mock.wait_for(WAIT, "LDS", |r| r.type_url == LDS).await;
    assert_eq!(lds.version_info, "l1");
    let (_, rds) = s.mock.wait_for(WAIT, "RDS", |r| r.type_url == RDS).await;
    assert_eq!(
        (rds.version_info.as_str(), rds.resource_names.clone()),
        ("r1", vec!["80".to_owned()])
    );
    wait_served_by(s.listen, Some("u1")).await;

    // And takes new configuration from it.
    let u2 = HttpServer::start("u2").await;
    let n = s
        .mock
        .respond(EDS, "e2", vec![any(&assignment("a", &[u2.addr()]))]);
    s.mock.wait_for_reply(EDS, &n).await;
    wait_served_by(s.listen, Some("u2")).await;
    assert!(s.proxy.try_wait().is_none(), "{}", s.proxy.tail(30));
}

/// Two localities, `a` (`u1`) and `b` (`u2`), with these locality weights.
fn weighted_assignment(
    u1: SocketAddr,
    u2: SocketAddr,
    weights: (u32, u32),
) -> envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment {
    use envoy_types::pb::envoy::config::core::v3::Locality;
    use envoy_types::pb::google::protobuf::UInt32Value;
    let locality = |zone: &str, upstream, weight| {
        let mut l = assignment("a", &[upstream]).endpoints.remove(0);
        l.locality = Some(Locality {
            zone: zone.to_owned(),
            ..Default::default()
        });
        l.load_balancing_weight = Some(UInt32Value { value: weight });
        l
    };
    let mut cla = assignment("a", &[]);
    cla.endpoints = vec![locality("a", u1, weights.0), locality("b", u2, weights.1)];
    cla
}

/// The share of `n` requests through `listen` that `name` served.
async fn share_served_by(listen: SocketAddr, name: &str, n: usize) -> f64 {
    let mut hits = 0;
    for _ in 0..n {
        let r = http1_get(listen, "a.default", "/", &[]).await.unwrap();
        assert_eq!(r.status, 200);
        if r.served_by() == Some(name) {
            hits += 1;
        }
    }
    f64::from(hits) / n as f64
}

#[tokio::test]
async fn the_traffic_split_follows_the_locality_weights_of_each_endpoint_update() {
    use envoy_types::pb::envoy::config::cluster::v3::cluster::{
        CommonLbConfig,
        common_lb_config::{LocalityConfigSpecifier, LocalityWeightedLbConfig},
    };
    let u1 = HttpServer::start("u1").await;
    let u2 = HttpServer::start("u2").await;
    let mut s = setup().await;
    let mut cluster = eds_cluster(CLUSTER, "a");
    cluster.common_lb_config = Some(CommonLbConfig {
        locality_config_specifier: Some(LocalityConfigSpecifier::LocalityWeightedLbConfig(
            LocalityWeightedLbConfig {},
        )),
        ..Default::default()
    });
    let n = s.mock.respond(CDS, "c1", vec![any(&cluster)]);
    s.mock.wait_for_reply(CDS, &n).await;
    let n = s.mock.respond(
        EDS,
        "e1",
        vec![any(&weighted_assignment(u1.addr(), u2.addr(), (1, 3)))],
    );
    s.mock.wait_for_reply(EDS, &n).await;
    serve_listener(&s).await;
    let share = share_served_by(s.listen, "u1", 400).await;
    assert!((share - 0.25).abs() < 0.1, "u1 served {share}, not 1/4");

    // The weights swap (the cluster itself does not change): so does the split. An ACK means
    // the update is running.
    for (version, weights, expected) in [("e2", (3, 1), 0.75), ("e3", (1, 3), 0.25)] {
        let n = s.mock.respond(
            EDS,
            version,
            vec![any(&weighted_assignment(u1.addr(), u2.addr(), weights))],
        );
        assert_eq!(s.mock.wait_for_reply(EDS, &n).await.version_info, version);
        let share = share_served_by(s.listen, "u1", 400).await;
        assert!(
            (share - expected).abs() < 0.1,
            "{version}: u1 served {share}, not {expected}"
        );
    }
    assert!(s.proxy.try_wait().is_none(), "{}", s.proxy.tail(30));
}

#[tokio::test]
async fn the_control_plane_flag_builds_an_istio_style_bootstrap() {
    let mock = MockAds::start().await;
    let admin = free_addr();
    let mut cmd = Command::new(weft());
    cmd.args(["proxy", "--concurrency", "1", "--control-plane"])
        .arg(mock.addr().to_string())
        .args([
            "--workload",
            "reviews-v1-abc",
            "--namespace",
            "bookinfo",
            "--ip",
            "10.1.2.3",
            "--label",
            "app=reviews",
            "--label",
            "version=v1",
            "--service-account",
            "bookinfo-reviews",
            "--admin",
        ])
        .arg(admin.to_string());
    let mut proxy = ChildProcess::spawn(cmd);
    proxy.wait_for_port(admin, WAIT).await;
    let (_, first) = mock.wait_for(WAIT, "CDS", |r| r.type_url == CDS).await;
    let node = first.node.expect("node");
    assert_eq!(
        node.id,
        "sidecar~10.1.2.3~reviews-v1-abc.bookinfo~bookinfo.svc.cluster.local"
    );
    let meta = node.metadata.expect("metadata");
    let text = |k: &str| match &meta.fields[k].kind {
        Some(envoy_types::pb::google::protobuf::value::Kind::StringValue(s)) => s.clone(),
        other => panic!("{k}: {other:?}"),
    };
    assert_eq!(text("NAMESPACE"), "bookinfo");
    assert_eq!(text("WORKLOAD_NAME"), "reviews-v1-abc");
    assert_eq!(text("INSTANCE_IPS"), "10.1.2.3");
    assert_eq!(text("SERVICE_ACCOUNT"), "bookinfo-reviews");
    assert_eq!(text("CLUSTER_ID"), "Kubernetes");
    let Some(envoy_types::pb::google::protobuf::value::Kind::StructValue(labels)) =
        &meta.fields["LABELS"].kind
    else {
        panic!("LABELS is not a struct");
    };
    assert_eq!(labels.fields.len(), 2);
    mock.wait_for(WAIT, "LDS", |r| r.type_url == LDS).await;
    assert!(proxy.try_wait().is_none(), "{}", proxy.tail(30));
}

/// A listener address taken by the test, and a free one to fix the conflict with.
struct Conflict {
    _holder: std::net::TcpListener,
    busy: SocketAddr,
    fixed: SocketAddr,
}

/// CDS, EDS, LDS (`l1`: listener `in`) and RDS, each sent once the proxy asks for it (Envoy
/// ignores a response of a type it has not subscribed to yet); then LDS `l2` adds listener
/// `in2` on an address the test holds. Returns the conflict and the reply to `l2`.
async fn configure_then_conflict(s: &Setup, upstream: SocketAddr) -> (Conflict, DiscoveryRequest) {
    for (type_url, version, resources) in [
        (CDS, "c1", vec![any(&eds_cluster(CLUSTER, "a"))]),
        (EDS, "e1", vec![any(&assignment("a", &[upstream]))]),
        (LDS, "l1", vec![any(&http_listener("in", s.listen, "80"))]),
        (RDS, "r1", vec![any(&route("80", CLUSTER))]),
    ] {
        s.mock
            .wait_for(WAIT, type_url, |r| r.type_url == type_url)
            .await;
        let n = s.mock.respond(type_url, version, resources);
        let ack = s.mock.wait_for_reply(type_url, &n).await;
        assert!(
            ack.error_detail.is_none(),
            "{type_url} {version} NACKed: {ack:?}"
        );
    }
    wait_served_by(s.listen, Some("u1")).await;
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = holder.local_addr().unwrap();
    let conflict = Conflict {
        _holder: holder,
        busy,
        fixed: free_addr(),
    };
    let n = s.mock.respond(LDS, "l2", conflicting(s, &conflict));
    let reply = s.mock.wait_for_reply(LDS, &n).await;
    (conflict, reply)
}

fn conflicting(s: &Setup, c: &Conflict) -> Vec<envoy_types::pb::google::protobuf::Any> {
    vec![
        any(&http_listener("in", s.listen, "80")),
        any(&http_listener("in2", c.busy, "80")),
    ]
}

/// The same `l2` again, then `l3` with `in2` on a free address; returns both replies.
async fn resend_then_fix(s: &Setup, c: &Conflict) -> (DiscoveryRequest, DiscoveryRequest) {
    let n = s.mock.respond(LDS, "l2", conflicting(s, c));
    let again = s.mock.wait_for_reply(LDS, &n).await;
    let n = s.mock.respond(
        LDS,
        "l3",
        vec![
            any(&http_listener("in", s.listen, "80")),
            any(&http_listener("in2", c.fixed, "80")),
        ],
    );
    let fixed = s.mock.wait_for_reply(LDS, &n).await;
    wait_served_by(c.fixed, Some("u1")).await;
    wait_served_by(s.listen, Some("u1")).await;
    (again, fixed)
}

/// The listener names and versions `/config_dump` shows as active.
async fn dumped_listeners(admin: SocketAddr) -> Vec<(String, String)> {
    let dump = http1_get(admin, "admin", "/config_dump", &[])
        .await
        .unwrap()
        .json();
    dump["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["@type"]
                .as_str()
                .unwrap()
                .ends_with(".ListenersConfigDump")
        })
        .and_then(|c| c["dynamic_listeners"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter(|l| !l["active_state"].is_null())
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_owned(),
                l["active_state"]["version_info"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_listener_that_cannot_be_bound_is_nacked_and_the_running_ones_keep_serving() {
    let u1 = HttpServer::start("u1").await;
    let mut s = setup().await;
    let (conflict, nack) = configure_then_conflict(&s, u1.addr()).await;
    assert_eq!(
        nack.version_info, "l1",
        "a NACK carries the version that runs"
    );
    let detail = nack.error_detail.expect("a NACK");
    assert_eq!(
        detail.message,
        format!(
            "Error adding/updating listener(s) in2: cannot bind '{}': Address already in use\n",
            conflict.busy
        )
    );

    // The running listener keeps serving; nothing claims `in2`.
    wait_served_by(s.listen, Some("u1")).await;
    assert_eq!(
        dumped_listeners(s.admin).await,
        [("in".to_owned(), "l1".to_owned())]
    );
    let (_, stats) = admin_get(s.admin, "/stats").await;
    assert!(
        stats.contains("listener_manager.lds.update_rejected: 1")
            && stats.contains("listener_manager.lds.update_success: 1"),
        "{stats}"
    );

    // The same response again is NACKed again; a fixed one is applied and ACKed.
    let (again, fixed) = resend_then_fix(&s, &conflict).await;
    assert_eq!(again.version_info, "l1");
    assert!(again.error_detail.is_some(), "{again:?}");
    assert_eq!(fixed.version_info, "l3");
    assert!(fixed.error_detail.is_none(), "{fixed:?}");
    assert_eq!(
        dumped_listeners(s.admin).await,
        [
            ("in".to_owned(), "l3".to_owned()),
            ("in2".to_owned(), "l3".to_owned())
        ]
    );
    let (_, stats) = admin_get(s.admin, "/stats").await;
    assert!(
        stats.contains("listener_manager.lds.update_rejected: 2")
            && stats.contains("listener_manager.lds.update_success: 2"),
        "{stats}"
    );
    assert!(s.proxy.try_wait().is_none(), "{}", s.proxy.tail(30));
}

#[tokio::test]
async fn a_port_conflict_is_nacked_as_envoy_nacks_it() {
    let Some(envoy) = require_envoy() else { return };
    let u1 = HttpServer::start("u1").await;
    let mut replies = Vec::new();
    for proxy in [None, Some(envoy.as_path())] {
        let mut s = setup_with(proxy).await;
        let (conflict, nack) = configure_then_conflict(&s, u1.addr()).await;
        let (again, fixed) = resend_then_fix(&s, &conflict).await;
        assert!(s.proxy.try_wait().is_none(), "{}", s.proxy.tail(30));
        replies.push((conflict.busy, [nack, again, fixed]));
    }
    // The same replies, with the same words (but for the address taken).
    let summary = |busy: SocketAddr, replies: &[DiscoveryRequest; 3]| {
        replies
            .iter()
            .map(|r| {
                (
                    r.version_info.clone(),
                    r.error_detail
                        .as_ref()
                        .map(|d| (d.code, d.message.replace(&busy.to_string(), "BUSY"))),
                )
            })
            .collect::<Vec<_>>()
    };
    let (weft_busy, weft) = &replies[0];
    let (envoy_busy, envoy) = &replies[1];
    let envoy = summary(*envoy_busy, envoy);
    assert_eq!(summary(*weft_busy, weft), envoy);
    let nack = Some((
        13,
        "Error adding/updating listener(s) in2: cannot bind 'BUSY': Address already in use\n"
            .to_owned(),
    ));
    assert_eq!(
        envoy,
        [
            ("l1".to_owned(), nack.clone()),
            ("l1".to_owned(), nack),
            ("l3".to_owned(), None)
        ]
    );
}
