//! The HTTP data path end to end on loopback: client → weft proxy → test server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::*;
use weft_proxy::Proxy;
use weft_proxy_route::{RetryPolicyConfig, RouteAction};
use weft_test_support::{HttpServer, WebSocketClient, WsMessage, http1_get, http2_get};

async fn start(
    cfg: weft_proxy_config::model::ProxyConfig,
) -> (std::sync::Arc<Proxy>, std::net::SocketAddr) {
    let proxy = Proxy::new();
    proxy.apply(cfg).await.expect("config applies");
    let addr = proxy.listener_address("ingress").expect("bound");
    (proxy, addr)
}

#[tokio::test]
async fn forwards_to_the_cluster_and_adds_envoy_headers() {
    let upstream = HttpServer::start("backend-1").await;
    let cfg = single_route_config(vec![cluster("backend", &[upstream.addr()])]);
    let (_proxy, addr) = start(cfg).await;
    let resp = http1_get(addr, "example.com", "/hello?x=1", &[])
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.served_by(), Some("backend-1"));
    assert_eq!(resp.header("server"), Some("envoy"));
    assert!(resp.header("x-envoy-upstream-service-time").is_some());
    let seen = upstream.last_request().unwrap();
    assert_eq!(seen.path, "/hello?x=1");
    assert!(seen.headers.get("x-request-id").is_some());
    assert_eq!(seen.headers.get("x-forwarded-proto").unwrap(), "http");
    assert_eq!(
        seen.headers.get("x-envoy-expected-rq-timeout-ms").unwrap(),
        "15000"
    );
}

#[tokio::test]
async fn http2_downstream_is_served() {
    let upstream = HttpServer::start("h2-backend").await;
    let cfg = single_route_config(vec![cluster("backend", &[upstream.addr()])]);
    let (_proxy, addr) = start(cfg).await;
    let resp = http2_get(addr, "example.com", "/", &[]).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.served_by(), Some("h2-backend"));
}

#[tokio::test]
async fn no_route_is_404_and_no_endpoint_is_503() {
    let cfg = config(
        vec![http_listener(
            "ingress",
            hcm(routes(vec![prefix_to(
                "/api",
                RouteAction::cluster("empty"),
            )])),
        )],
        vec![cluster("empty", &[])],
    );
    let (_proxy, addr) = start(cfg).await;
    assert_eq!(
        http1_get(addr, "x", "/other", &[]).await.unwrap().status,
        404
    );
    let resp = http1_get(addr, "x", "/api", &[]).await.unwrap();
    assert_eq!(resp.status, 503);
    assert_eq!(resp.text(), "no healthy upstream");
}

#[tokio::test]
async fn connect_failure_is_503_uf() {
    let dead = weft_test_support::free_addr();
    let cfg = config(
        vec![http_listener(
            "ingress",
            hcm(routes(vec![prefix_to("/", RouteAction::cluster("dead"))])),
        )],
        vec![cluster("dead", &[dead])],
    );
    let (_proxy, addr) = start(cfg).await;
    let resp = http1_get(addr, "x", "/", &[]).await.unwrap();
    assert_eq!(resp.status, 503);
    assert!(
        resp.text()
            .starts_with("upstream connect error or disconnect/reset before headers"),
        "{}",
        resp.text()
    );
}

#[tokio::test]
async fn retries_hide_a_flaky_upstream() {
    let upstream = HttpServer::start("flaky").await;
    let mut action = RouteAction::cluster("backend");
    action.retry_policy = Some(RetryPolicyConfig {
        retry_on: "5xx".into(),
        num_retries: Some(2),
        ..RetryPolicyConfig::default()
    });
    let cfg = config(
        vec![http_listener(
            "ingress",
            hcm(routes(vec![prefix_to("/", action)])),
        )],
        vec![cluster("backend", &[upstream.addr()])],
    );
    let (_proxy, addr) = start(cfg).await;
    upstream.fail_next(2, 503);
    let resp = http1_get(addr, "x", "/", &[]).await.unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(upstream.request_count(), 3);
    upstream.fail_next(3, 503);
    assert_eq!(
        http1_get(addr, "x", "/", &[]).await.unwrap().status,
        503,
        "retries are bounded"
    );
}

#[tokio::test]
async fn route_timeout_is_504() {
    let upstream = HttpServer::start("slow").await;
    let mut action = RouteAction::cluster("backend");
    action.timeout = Some(Duration::from_millis(100));
    let cfg = config(
        vec![http_listener(
            "ingress",
            hcm(routes(vec![prefix_to("/", action)])),
        )],
        vec![cluster("backend", &[upstream.addr()])],
    );
    let (_proxy, addr) = start(cfg).await;
    let resp = http1_get(addr, "x", "/", &[("x-test-delay-ms", "1000")])
        .await
        .unwrap();
    assert_eq!(resp.status, 504);
    assert_eq!(resp.text(), "upstream request timeout");
}

#[tokio::test]
async fn pooled_connections_closed_by_the_server_are_not_a_503() {
    // The server closes idle keep-alive connections after 200ms; weft's pool keeps them for
    // 4s. A request landing on a connection the server just closed must still succeed.
    let upstream = HttpServer::builder()
        .name("keepalive")
        .keep_alive_timeout(Duration::from_millis(200))
        .start()
        .await;
    let cfg = single_route_config(vec![cluster("backend", &[upstream.addr()])]);
    let (_proxy, addr) = start(cfg).await;
    let mut conn =
        weft_test_support::HttpConnection::connect(addr, weft_test_support::HttpVersion::Http1)
            .await
            .unwrap();
    for _ in 0..5 {
        let resp = conn.get("x", "/", &[]).await.unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        upstream.connection_count() >= 2,
        "the server really closed connections"
    );
}

#[tokio::test]
async fn circuit_breaker_overflow_is_503_with_x_envoy_overloaded() {
    let upstream = HttpServer::start("slow").await;
    let mut c = cluster("backend", &[upstream.addr()]);
    c.circuit_breakers.max_connections = 1;
    c.circuit_breakers.max_pending_requests = 1;
    let cfg = single_route_config(vec![c]);
    let (_proxy, addr) = start(cfg).await;
    let mut tasks = Vec::new();
    for i in 0..4 {
        tasks.push(tokio::spawn(async move {
            // The first is pending itself until its connection is up (Envoy's order of
            // checks); the others come once it is on the connection.
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            http1_get(addr, "x", "/", &[("x-test-delay-ms", "300")])
                .await
                .unwrap()
        }));
    }
    let mut ok = 0;
    let mut overloaded = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status.as_u16() {
            200 => ok += 1,
            503 if r.header("x-envoy-overloaded") == Some("true") => overloaded += 1,
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    assert_eq!(ok, 2, "one active + one pending");
    assert_eq!(overloaded, 2);
}

#[tokio::test]
async fn a_new_configuration_applies_without_dropping_the_listener() {
    let v1 = HttpServer::start("v1").await;
    let v2 = HttpServer::start("v2").await;
    let mk = |target: &str, addr| {
        config(
            vec![http_listener(
                "ingress",
                hcm(routes(vec![prefix_to("/", RouteAction::cluster(target))])),
            )],
            vec![cluster(target, &[addr])],
        )
    };
    let (proxy, addr) = start(mk("a", v1.addr())).await;
    assert_eq!(
        http1_get(addr, "x", "/", &[]).await.unwrap().served_by(),
        Some("v1")
    );
    proxy.apply(mk("b", v2.addr())).await.unwrap();
    assert_eq!(proxy.listener_address("ingress"), Some(addr), "same socket");
    assert_eq!(
        http1_get(addr, "x", "/", &[]).await.unwrap().served_by(),
        Some("v2")
    );
}

#[tokio::test]
async fn the_same_listener_arc_keeps_its_connections_a_new_one_drains_them() {
    let up = HttpServer::start("up").await;
    let listener = http_listener(
        "ingress",
        hcm(routes(vec![prefix_to("/", RouteAction::cluster("a"))])),
    );
    let (proxy, addr) = start(config(
        vec![listener.clone()],
        vec![cluster("a", &[up.addr()])],
    ))
    .await;
    let mut conn =
        weft_test_support::HttpConnection::connect(addr, weft_test_support::HttpVersion::Http1)
            .await
            .unwrap();
    assert_eq!(conn.get("x", "/", &[]).await.unwrap().status, 200);
    // Only the clusters change (an endpoint update): the listener is the same Arc.
    proxy
        .apply(config(
            vec![listener.clone()],
            vec![cluster("a", &[up.addr()]), cluster("b", &[up.addr()])],
        ))
        .await
        .unwrap();
    assert!(!conn.wait_closed(Duration::from_millis(300)).await);
    assert_eq!(conn.get("x", "/", &[]).await.unwrap().status, 200);
    // An equal but new listener configuration replaces the runtime and drains old connections.
    let again = http_listener(
        "ingress",
        hcm(routes(vec![prefix_to("/", RouteAction::cluster("a"))])),
    );
    proxy
        .apply(config(vec![again], vec![cluster("a", &[up.addr()])]))
        .await
        .unwrap();
    // Draining: the next response on the old connection tells the client to reconnect.
    let resp = conn.get("x", "/", &[]).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(conn.wait_closed(Duration::from_secs(10)).await);
}

#[tokio::test]
async fn http2_upstreams_get_authority_and_no_host_header() {
    let upstream = HttpServer::builder().name("h2-up").http2().start().await;
    let mut c = cluster("backend", &[upstream.addr()]);
    c.protocol = weft_proxy_config::model::UpstreamProtocol::Http2;
    let cfg = single_route_config(vec![c]);
    let (_proxy, addr) = start(cfg).await;
    let resp = http1_get(addr, "shop.example.com", "/cart", &[])
        .await
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = upstream.last_request().unwrap();
    assert_eq!(seen.version, http::Version::HTTP_2);
    assert_eq!(seen.authority.as_deref(), Some("shop.example.com"));
    assert!(
        seen.headers.get("host").is_none(),
        "host travels as :authority only"
    );
}

#[tokio::test]
async fn a_listener_with_the_same_revision_swaps_routes_under_running_connections() {
    let v1 = HttpServer::start("v1").await;
    let v2 = HttpServer::start("v2").await;
    let mk = |target: &str, revision: &str| {
        let mut l = (*http_listener(
            "ingress",
            hcm(routes(vec![prefix_to("/", RouteAction::cluster(target))])),
        ))
        .clone();
        l.revision = Some(revision.to_owned());
        config(
            vec![Arc::new(l)],
            vec![cluster("a", &[v1.addr()]), cluster("b", &[v2.addr()])],
        )
    };
    let (proxy, addr) = start(mk("a", "r1")).await;
    let mut conn =
        weft_test_support::HttpConnection::connect(addr, weft_test_support::HttpVersion::Http1)
            .await
            .unwrap();
    assert_eq!(
        conn.get("x", "/", &[]).await.unwrap().served_by(),
        Some("v1")
    );
    // An RDS update: same listener resource, new routes. The running connection follows at
    // once and is not drained.
    proxy.apply(mk("b", "r1")).await.unwrap();
    let resp = conn.get("x", "/", &[]).await.unwrap();
    assert_eq!(resp.served_by(), Some("v2"));
    assert_eq!(resp.header("connection"), None);
    assert!(!conn.wait_closed(Duration::from_millis(300)).await);
    // A changed listener resource (new revision) replaces the listener: connections drain.
    proxy.apply(mk("a", "r2")).await.unwrap();
    let resp = conn.get("x", "/", &[]).await.unwrap();
    assert_eq!(resp.header("connection"), Some("close"));
}

#[tokio::test]
async fn an_endpoint_update_keeps_the_cluster_and_its_connections() {
    let v1 = HttpServer::start("v1").await;
    let v2 = HttpServer::start("v2").await;
    let mk = |endpoints: &[std::net::SocketAddr]| {
        let mut c = cluster("a", endpoints);
        c.discovery = weft_proxy_config::model::Discovery::Eds;
        config(
            vec![http_listener(
                "ingress",
                hcm(routes(vec![prefix_to("/", RouteAction::cluster("a"))])),
            )],
            vec![c],
        )
    };
    let (proxy, addr) = start(mk(&[v1.addr()])).await;
    for _ in 0..3 {
        let r = http1_get(addr, "x", "/", &[]).await.unwrap();
        assert_eq!(r.served_by(), Some("v1"));
    }
    assert_eq!(v1.connection_count(), 1, "one pooled upstream connection");
    let mut next = mk(&[v1.addr(), v2.addr()]);
    // Keep the listener as it is: only the endpoints change.
    next.listeners = proxy.config().unwrap().listeners.clone();
    proxy.apply(next).await.unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let r = http1_get(addr, "x", "/", &[]).await.unwrap();
        seen.insert(r.served_by().unwrap().to_owned());
    }
    assert_eq!(seen.len(), 2, "the new endpoint is used: {seen:?}");
    assert_eq!(
        v1.connection_count(),
        1,
        "the surviving endpoint kept its pooled connection"
    );
}

/// `backend` with one host per priority level: `hosts[p]` at priority `p`.
fn cluster_by_priority(hosts: &[std::net::SocketAddr]) -> weft_proxy_config::model::Cluster {
    let mut c = cluster("backend", hosts);
    let template = c.localities.remove(0);
    c.localities = hosts
        .iter()
        .enumerate()
        .map(|(p, _)| weft_proxy_config::model::LocalityEndpoints {
            priority: p as u32,
            endpoints: vec![template.endpoints[p].clone()],
            ..template.clone()
        })
        .collect();
    c
}

#[tokio::test]
async fn previous_priorities_sends_retries_to_the_next_priority() {
    let p0 = HttpServer::start("p0").await;
    let p1 = HttpServer::start("p1").await;
    let with_priority = |update_frequency: Option<u32>| {
        let mut action = RouteAction::cluster("backend");
        action.retry_policy = Some(RetryPolicyConfig {
            retry_on: "5xx".into(),
            num_retries: Some(2),
            previous_priorities_update_frequency: update_frequency,
            ..RetryPolicyConfig::default()
        });
        config(
            vec![http_listener(
                "ingress",
                hcm(routes(vec![prefix_to("/", action)])),
            )],
            vec![cluster_by_priority(&[p0.addr(), p1.addr()])],
        )
    };
    // Without a retry priority every attempt goes to P=0, which answers the retry.
    let (proxy, addr) = start(with_priority(None)).await;
    p0.fail_next(1, 503);
    let resp = http1_get(addr, "x", "/", &[]).await.unwrap();
    assert_eq!(resp.served_by(), Some("p0"));
    assert_eq!((p0.requests().len(), p1.requests().len()), (2, 0));
    drop(proxy);

    // update_frequency 1: the first retry leaves P=0 out.
    p0.clear_requests();
    let (proxy, addr) = start(with_priority(Some(1))).await;
    p0.fail_next(1, 503);
    let resp = http1_get(addr, "x", "/", &[]).await.unwrap();
    assert_eq!(resp.served_by(), Some("p1"));
    assert_eq!((p0.requests().len(), p1.requests().len()), (1, 1));
    drop(proxy);

    // update_frequency 2: the first retry still uses P=0, the second does not.
    p0.clear_requests();
    p1.clear_requests();
    let (_proxy, addr) = start(with_priority(Some(2))).await;
    p0.fail_next(2, 503);
    let resp = http1_get(addr, "x", "/", &[]).await.unwrap();
    assert_eq!(resp.served_by(), Some("p1"));
    assert_eq!((p0.requests().len(), p1.requests().len()), (2, 1));
}

#[tokio::test]
async fn require_tls_redirects_plaintext_requests() {
    let upstream = HttpServer::start("backend-1").await;
    let mut rc = routes(vec![prefix_to("/", RouteAction::cluster("backend"))]);
    rc.virtual_hosts[0].require_tls = weft_proxy_route::TlsRequirement::All;
    let cfg = config(
        vec![http_listener("ingress", hcm(rc))],
        vec![cluster("backend", &[upstream.addr()])],
    );
    let (_proxy, addr) = start(cfg).await;
    let resp = http1_get(addr, "example.com:8080", "/a?b=1", &[])
        .await
        .unwrap();
    assert_eq!(resp.status, 301);
    assert_eq!(
        resp.header("location"),
        Some("https://example.com:8080/a?b=1")
    );
    assert!(resp.body.is_empty());
    assert_eq!(upstream.request_count(), 0);
    // A trusted TLS terminator in front (use_remote_address off keeps x-forwarded-proto).
    let resp = http1_get(addr, "example.com", "/", &[("x-forwarded-proto", "https")])
        .await
        .unwrap();
    assert_eq!(resp.served_by(), Some("backend-1"));
}

#[tokio::test]
async fn a_ttl_cookie_is_generated_and_then_sticks() {
    let servers = [
        HttpServer::start("s0").await,
        HttpServer::start("s1").await,
        HttpServer::start("s2").await,
    ];
    let addrs: Vec<_> = servers.iter().map(|s| s.addr()).collect();
    let mut action = RouteAction::cluster("backend");
    action.hash_policy = vec![weft_proxy_route::HashPolicy {
        policy: weft_proxy_route::HashPolicySpecifier::Cookie {
            name: "sid".into(),
            ttl: Some(Duration::from_secs(60)),
            path: Some("/".into()),
        },
        terminal: false,
    }];
    let mut ring = cluster("backend", &addrs);
    ring.lb = weft_proxy_lb::LbConfig::new(weft_proxy_lb::LbPolicy::RingHash(
        weft_proxy_lb::RingHashConfig::default(),
    ))
    .validate()
    .unwrap();
    let mut round_robin = ring.clone();
    round_robin.name = "rr".into();
    round_robin.lb = weft_proxy_lb::LbConfig::default().validate().unwrap();
    let mut rr_action = action.clone();
    rr_action.cluster_specifier = weft_proxy_route::ClusterSpecifier::Cluster("rr".into());
    let cfg = config(
        vec![http_listener(
            "ingress",
            hcm(routes(vec![
                prefix_to("/rr", rr_action),
                prefix_to("/", action),
            ])),
        )],
        vec![ring, round_robin],
    );
    let (_proxy, addr) = start(cfg).await;
    for _ in 0..3 {
        let first = http1_get(addr, "x", "/", &[]).await.unwrap();
        let set_cookie = first.header("set-cookie").unwrap().to_owned();
        let value = set_cookie
            .strip_prefix("sid=\"")
            .and_then(|v| v.strip_suffix("\"; Max-Age=60; Path=/; HttpOnly"))
            .unwrap_or_else(|| panic!("{set_cookie}"));
        assert!(
            value.len() == 16 && value.bytes().all(|b| b.is_ascii_hexdigit()),
            "{value}"
        );
        let served = first.served_by().unwrap().to_owned();
        let cookie = format!("sid=\"{value}\"");
        for _ in 0..5 {
            let again = http1_get(addr, "x", "/", &[("cookie", cookie.as_str())])
                .await
                .unwrap();
            assert_eq!(again.served_by(), Some(served.as_str()));
            assert!(again.header("set-cookie").is_none());
        }
    }
    // Balancers that ignore the hash never make Envoy evaluate it: no cookie.
    let rr = http1_get(addr, "x", "/rr", &[]).await.unwrap();
    assert_eq!(rr.status, 200);
    assert!(rr.header("set-cookie").is_none());
}

/// One listener routing everything to `backend`, with WebSocket upgrades enabled on the HCM.
fn websocket_config(
    clusters: Vec<weft_proxy_config::model::Cluster>,
) -> weft_proxy_config::model::ProxyConfig {
    websocket_config_with(clusters, |_| {})
}

/// [`websocket_config`] with `tweak` applied to the connection manager.
fn websocket_config_with(
    clusters: Vec<weft_proxy_config::model::Cluster>,
    tweak: impl FnOnce(&mut weft_proxy_config::model::HttpConnectionManager),
) -> weft_proxy_config::model::ProxyConfig {
    let mut manager = hcm(routes(vec![prefix_to(
        "/",
        RouteAction::cluster("backend"),
    )]));
    manager.upgrades = vec!["websocket".into()];
    tweak(&mut manager);
    config(vec![http_listener("ingress", manager)], clusters)
}

#[tokio::test]
async fn websocket_frames_pass_both_ways_through_the_proxy() {
    let upstream = HttpServer::start("ws").await;
    let (_proxy, addr) = start(websocket_config(vec![cluster(
        "backend",
        &[upstream.addr()],
    )]))
    .await;
    let mut ws = WebSocketClient::connect(addr, "x", "/chat").await.unwrap();
    assert_eq!(ws.served_by(), Some("ws"));
    // Envoy tells the upstream the route timeout, though it never runs for an upgrade.
    let seen = upstream.last_request().unwrap();
    assert_eq!(
        seen.headers.get("x-envoy-expected-rq-timeout-ms").unwrap(),
        "15000"
    );
    ws.send_text("hello").await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), WsMessage::Text("hello".into()));
    let big = vec![7u8; 200_000];
    ws.send_binary(&big).await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), WsMessage::Binary(big.into()));
    ws.ping(b"p").await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), WsMessage::Pong("p".into()));
    ws.close().await.unwrap();
}

#[tokio::test]
async fn websocket_is_refused_where_upgrades_are_not_enabled() {
    let upstream = HttpServer::start("ws").await;
    let (_proxy, addr) = start(single_route_config(vec![cluster(
        "backend",
        &[upstream.addr()],
    )]))
    .await;
    let err = WebSocketClient::connect(addr, "x", "/chat")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("answered 403"), "{err}");
}

/// As in Envoy, an upgraded request holds its `max_requests` slot until the tunnel closes.
#[tokio::test]
async fn an_open_websocket_holds_its_max_requests_slot() {
    let upstream = HttpServer::start("ws").await;
    let mut c = cluster("backend", &[upstream.addr()]);
    c.circuit_breakers.max_requests = 1;
    let (_proxy, addr) = start(websocket_config(vec![c])).await;
    let mut ws = WebSocketClient::connect(addr, "x", "/chat").await.unwrap();
    ws.send_text("still open").await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap(),
        WsMessage::Text("still open".into())
    );
    let r = http1_get(addr, "x", "/", &[]).await.unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("x-envoy-overloaded"), Some("true"));
    ws.close().await.unwrap();
    // The slot comes back when the tunnel ends.
    let mut status = 0;
    for _ in 0..50 {
        status = http1_get(addr, "x", "/", &[])
            .await
            .unwrap()
            .status
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 200);
}

/// An upstream that answers every request `101 Switching Protocols` and then echoes the
/// tunnelled bytes; `closed` counts the tunnels whose connection the proxy closed.
struct EchoTunnelUpstream {
    addr: std::net::SocketAddr,
    closed: tokio::sync::watch::Receiver<u32>,
}

impl EchoTunnelUpstream {
    async fn start() -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, closed) = tokio::sync::watch::channel(0u32);
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    read_head(&mut sock).await;
                    sock.write_all(
                        b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\n\
                          upgrade: websocket\r\n\r\n",
                    )
                    .await
                    .unwrap();
                    let mut buf = [0u8; 1024];
                    while let Ok(n @ 1..) = sock.read(&mut buf).await {
                        if sock.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    tx.send_modify(|n| *n += 1);
                });
            }
        });
        Self { addr, closed }
    }

    /// Waits (up to 5 s) until `n` tunnels' connections were closed by the proxy.
    async fn wait_closed(&mut self, n: u32) {
        tokio::time::timeout(Duration::from_secs(5), self.closed.wait_for(|c| *c >= n))
            .await
            .expect("the proxy closes the upstream connection")
            .unwrap();
    }
}

/// Reads an HTTP/1.1 head up to its blank line; returns it.
async fn read_head(sock: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(sock.read(&mut byte).await.unwrap(), 1, "head cut short");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Opens a WebSocket tunnel through the proxy at `addr` to `path`: the upgraded connection.
async fn open_tunnel(addr: std::net::SocketAddr, path: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n"
    );
    sock.write_all(req.as_bytes()).await.unwrap();
    let head = read_head(&mut sock).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    sock
}

/// Sends `data` through the tunnel and reads its echo.
async fn round_trip(sock: &mut tokio::net::TcpStream, data: &[u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    sock.write_all(data).await.unwrap();
    let mut echo = vec![0u8; data.len()];
    tokio::time::timeout(Duration::from_secs(5), sock.read_exact(&mut echo))
        .await
        .expect("echo within 5s")
        .unwrap();
    assert_eq!(echo, data);
}

/// How long until the proxy closes the client's end of the tunnel (at most 5 s).
async fn time_to_close(sock: &mut tokio::net::TcpStream) -> Duration {
    use tokio::io::AsyncReadExt;
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the proxy closes the downstream connection");
    started.elapsed()
}

fn stream_stats(proxy: &Proxy) -> Arc<weft_proxy::http::HttpStats> {
    proxy.http_stats().into_iter().next().unwrap().1
}

/// As in Envoy, where an upgraded request stays a connection manager stream: bytes either way
/// keep its idle timer from firing; silence for `stream_idle_timeout` closes both connections.
#[tokio::test]
async fn a_silent_tunnel_is_closed_both_ways_by_the_stream_idle_timeout() {
    let mut upstream = EchoTunnelUpstream::start().await;
    let cfg = websocket_config_with(vec![cluster("backend", &[upstream.addr])], |m| {
        m.stream_idle_timeout = Some(Duration::from_millis(300));
    });
    let (proxy, addr) = start(cfg).await;
    let mut tunnel = open_tunnel(addr, "/chat").await;
    // Traffic for twice the timeout, never quiet for as long as it.
    for i in 0..6u8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        round_trip(&mut tunnel, &[i; 3]).await;
    }
    let quiet = time_to_close(&mut tunnel).await;
    assert!(
        quiet >= Duration::from_millis(250),
        "closed after {quiet:?}"
    );
    upstream.wait_closed(1).await;
    let stats = stream_stats(&proxy);
    assert_eq!(
        stats
            .downstream_rq_idle_timeout
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

/// The route's `idle_timeout` replaces the connection manager's for the tunnel too.
#[tokio::test]
async fn the_route_idle_timeout_closes_a_silent_tunnel() {
    let mut upstream = EchoTunnelUpstream::start().await;
    let mut action = RouteAction::cluster("backend");
    action.idle_timeout = Some(Duration::from_millis(200));
    let mut manager = hcm(routes(vec![prefix_to("/", action)]));
    manager.upgrades = vec!["websocket".into()];
    let cfg = config(
        vec![http_listener("ingress", manager)],
        vec![cluster("backend", &[upstream.addr])],
    );
    let (_proxy, addr) = start(cfg).await;
    let mut tunnel = open_tunnel(addr, "/chat").await;
    round_trip(&mut tunnel, b"hello").await;
    let quiet = time_to_close(&mut tunnel).await;
    assert!(
        quiet >= Duration::from_millis(150),
        "closed after {quiet:?}"
    );
    upstream.wait_closed(1).await;
}

/// The connection manager's `max_stream_duration` ends a tunnel however busy it is.
#[tokio::test]
async fn max_stream_duration_ends_a_busy_tunnel() {
    let mut upstream = EchoTunnelUpstream::start().await;
    let cfg = websocket_config_with(vec![cluster("backend", &[upstream.addr])], |m| {
        m.max_stream_duration = Some(Duration::from_millis(500));
    });
    let (proxy, addr) = start(cfg).await;
    let started = std::time::Instant::now();
    let mut tunnel = open_tunnel(addr, "/chat").await;
    let mut echoed = 0;
    while started.elapsed() < Duration::from_secs(3) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut byte = [0u8; 1];
        if tunnel.write_all(b"x").await.is_err() || tunnel.read(&mut byte).await.unwrap_or(0) == 0 {
            break;
        }
        echoed += 1;
    }
    let lasted = started.elapsed();
    assert!(echoed >= 5, "only {echoed} echoes");
    assert!(
        lasted >= Duration::from_millis(450) && lasted < Duration::from_secs(2),
        "the tunnel lasted {lasted:?}"
    );
    upstream.wait_closed(1).await;
    let stats = stream_stats(&proxy);
    assert_eq!(
        stats
            .downstream_rq_max_duration_reached
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

/// Until the upstream answers, the upgrade request waits under the stream idle timeout; as the
/// request never completes (its body is the tunnel), Envoy answers 408.
#[tokio::test]
async fn an_upgrade_the_upstream_does_not_answer_gets_408_stream_timeout() {
    let upstream = HttpServer::start("ws").await;
    let cfg = websocket_config_with(vec![cluster("backend", &[upstream.addr()])], |m| {
        m.stream_idle_timeout = Some(Duration::from_millis(200));
    });
    let (_proxy, addr) = start(cfg).await;
    let err =
        WebSocketClient::connect_with(addr, None, "x", "/chat", &[("x-test-delay-ms", "1000")])
            .await
            .unwrap_err();
    assert!(err.to_string().contains("answered 408"), "{err}");
}

/// As in Envoy, a listener an update leaves unchanged keeps its running TLS context: that its
/// certificate files have gone does not fail an update that does not touch it (the xDS client
/// passes an unchanged listener as the same `Arc`).
#[tokio::test]
async fn an_update_leaving_a_tls_listener_alone_does_not_rebuild_its_tls() {
    use weft_proxy_config::model::{CertificateSource, DataSource, DownstreamTls, TlsVersion};
    let upstream = HttpServer::start("a").await;
    let pki = weft_test_support::TestPki::new();
    let cert = pki.server_cert(&["localhost"]);
    let dir = weft_test_support::TempDir::new("tls-listener");
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_path, &cert.cert_pem).unwrap();
    std::fs::write(&key_path, &cert.key_pem).unwrap();
    let plain = http_listener(
        "ingress",
        hcm(routes(vec![prefix_to(
            "/",
            RouteAction::cluster("backend"),
        )])),
    );
    let mut tls = (*http_listener(
        "tls",
        hcm(routes(vec![prefix_to(
            "/",
            RouteAction::cluster("backend"),
        )])),
    ))
    .clone();
    let mut chain = (*tls.filter_chains[0]).clone();
    chain.tls = Some(Arc::new(DownstreamTls {
        certificates: vec![CertificateSource {
            chain: DataSource::File(cert_path.clone()),
            key: DataSource::File(key_path.clone()),
        }],
        validation: None,
        require_client_certificate: false,
        alpn_protocols: vec![],
        min_version: TlsVersion::Auto,
        max_version: TlsVersion::Auto,
    }));
    tls.filter_chains = vec![Arc::new(chain)];
    let tls = Arc::new(tls);
    let backend = || vec![cluster("backend", &[upstream.addr()])];
    let (proxy, _) = start(config(vec![plain.clone(), tls.clone()], backend())).await;
    std::fs::remove_file(&cert_path).unwrap();
    std::fs::remove_file(&key_path).unwrap();

    // Another listener changes; the TLS listener is the same `Arc`.
    let changed = http_listener(
        "ingress",
        hcm(routes(vec![prefix_to(
            "/",
            RouteAction::cluster("backend"),
        )])),
    );
    proxy
        .apply(config(vec![changed, tls.clone()], backend()))
        .await
        .expect("the TLS listener is left as it runs");
    // A TLS listener whose configuration changes is rebuilt, and then its files are missed.
    let mut rebuilt = (*tls).clone();
    rebuilt.stat_prefix = "tls2".into();
    let err = proxy
        .apply(config(vec![plain, Arc::new(rebuilt)], backend()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("listener \"tls\""), "{err}");
}

/// Reads one HTTP/1.1 response with a `content-length` from `sock`: its head.
async fn read_response(sock: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let head = read_head(sock).await;
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("content-length");
    let mut body = vec![0u8; len];
    sock.read_exact(&mut body).await.unwrap();
    head
}

/// Envoy keeps an idle downstream keep-alive connection for the connection manager's
/// `idle_timeout` (1 h by default), and its `request_headers_timeout` (off by default) starts
/// at a request's first byte. hyper's own header timeout (30 s, running while the connection
/// waits for its next request) closed idle connections after 30 s.
#[tokio::test]
async fn an_idle_keep_alive_connection_outlives_hypers_default_header_timeout() {
    use tokio::io::AsyncWriteExt;
    let upstream = HttpServer::start("a").await;
    let cfg = single_route_config(vec![cluster("backend", &[upstream.addr()])]);
    let (_proxy, addr) = start(cfg).await;
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";
    sock.write_all(request).await.unwrap();
    assert!(read_response(&mut sock).await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_secs(32)).await;
    sock.write_all(request).await.unwrap();
    let again = tokio::time::timeout(Duration::from_secs(5), read_response(&mut sock))
        .await
        .expect("an answer on the idle connection");
    assert!(again.starts_with("HTTP/1.1 200"), "{again}");
}

fn timed_config(
    upstream: std::net::SocketAddr,
    tweak: impl FnOnce(&mut weft_proxy_config::model::HttpConnectionManager),
) -> weft_proxy_config::model::ProxyConfig {
    let mut manager = hcm(routes(vec![prefix_to(
        "/",
        RouteAction::cluster("backend"),
    )]));
    tweak(&mut manager);
    config(
        vec![http_listener("ingress", manager)],
        vec![cluster("backend", &[upstream])],
    )
}

/// Whether the proxy has closed `sock` within `wait` (nothing else may arrive meanwhile).
async fn closed_within(sock: &mut tokio::net::TcpStream, wait: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    match tokio::time::timeout(wait, sock.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(n)) => {
            let unexpected = String::from_utf8_lossy(&buf[..n]);
            assert!(n == 0, "unexpected bytes: {unexpected:?}");
            false
        }
        Err(_) => false,
    }
}

/// Sends `partial`, the start of a request that never ends, and returns the head of the
/// proxy's answer (lowercase), checked to be a 408 after which the connection closes.
async fn answer_to_unfinished_headers(sock: &mut tokio::net::TcpStream, partial: &[u8]) -> String {
    use tokio::io::AsyncWriteExt;
    sock.write_all(partial).await.unwrap();
    let started = std::time::Instant::now();
    let reply = tokio::time::timeout(Duration::from_secs(3), read_response(sock))
        .await
        .expect("a reply");
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(
        reply.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{reply}"
    );
    assert!(closed_within(sock, Duration::from_secs(3)).await);
    reply.to_ascii_lowercase()
}

fn count(counter: &std::sync::atomic::AtomicU64) -> u64 {
    counter.load(std::sync::atomic::Ordering::Relaxed)
}

/// Envoy's connection `idle_timeout` is the time without an active stream *on that connection*:
/// it starts when the last stream ends, and another connection's streams do not hold it open.
/// A connection that has received bytes then drains (`drain_timeout`); a silent one closes.
#[tokio::test]
async fn the_idle_timeout_counts_from_the_connections_last_stream() {
    use tokio::io::AsyncWriteExt;
    let upstream = HttpServer::start("a").await;
    let cfg = timed_config(upstream.addr(), |m| {
        m.idle_timeout = Some(Duration::from_millis(600));
        m.drain_timeout = Duration::from_millis(400);
    });
    let (proxy, addr) = start(cfg).await;
    let request = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";
    // A connection that never sends a byte is closed at the timeout, without a drain.
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let opened = std::time::Instant::now();
    assert!(closed_within(&mut silent, Duration::from_secs(2)).await);
    let silent_for = opened.elapsed();
    assert!(
        silent_for >= Duration::from_millis(500) && silent_for < Duration::from_millis(900),
        "closed after {silent_for:?}"
    );
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    // A second connection busy with a slow request the whole time.
    let busy = tokio::spawn(async move {
        http1_get(addr, "x", "/", &[("x-test-delay-ms", "5000")])
            .await
            .unwrap()
            .status
    });
    // Requests 400 ms apart, each less than the timeout after the previous one ended, carry the
    // connection past 600 ms from its start.
    for _ in 0..3 {
        idle.write_all(request).await.unwrap();
        let resp = read_response(&mut idle).await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(!closed_within(&mut idle, Duration::from_millis(400)).await);
    }
    // Then idle: the drain sequence starts ~600 ms after its last response and the connection
    // closes `drain_timeout` later, while the slow request goes on.
    let started = std::time::Instant::now();
    assert!(closed_within(&mut idle, Duration::from_secs(2)).await);
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(450),
        "closed {after:?} after the 400 ms wait"
    );
    assert!(!busy.is_finished(), "the slow request is still in flight");
    assert_eq!(busy.await.unwrap(), 200);
    let stats = stream_stats(&proxy);
    assert_eq!(count(&stats.downstream_cx_idle_timeout), 2);
    // Closing a connection that never spoke is not a protocol error (Envoy counts none).
    assert_eq!(count(&stats.downstream_cx_protocol_error), 0);
}

/// A stream whose response body is still flowing is active: its connection is not closed, and
/// its idle period starts when the stream ends.
#[tokio::test]
async fn a_streaming_response_keeps_its_connection_from_the_idle_timeout() {
    use http_body_util::BodyExt;
    let upstream = HttpServer::start("a").await;
    let cfg = timed_config(upstream.addr(), |m| {
        m.idle_timeout = Some(Duration::from_millis(300));
    });
    let (_proxy, addr) = start(cfg).await;
    let mut conn =
        weft_test_support::HttpConnection::connect(addr, weft_test_support::HttpVersion::Http1)
            .await
            .unwrap();
    let (sender, body) = weft_test_support::streaming_body();
    let req = http::Request::post("http://x/echo").body(body).unwrap();
    let mut resp = conn.send_streaming(req).await.unwrap();
    // The echo streams back for well over the idle timeout.
    for i in 0..8u8 {
        sender.send(vec![b'a' + i; 4]).await.unwrap();
        let mut echoed = Vec::new();
        while echoed.len() < 4 {
            let frame = tokio::time::timeout(Duration::from_secs(2), resp.body_mut().frame())
                .await
                .expect("the echo arrives")
                .expect("the stream is open")
                .unwrap();
            echoed.extend_from_slice(&frame.into_data().unwrap());
        }
        assert_eq!(echoed, [b'a' + i; 4]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(sender);
    while let Some(frame) = resp.body_mut().frame().await {
        frame.unwrap();
    }
    // The idle period starts now: the connection serves the next request.
    let next = conn.get("x", "/", &[]).await.unwrap();
    assert_eq!(next.status, 200);
}

/// Envoy's `request_headers_timeout` starts at a request's first byte: a keep-alive connection
/// may wait longer than it for its next request, but headers that take longer than it to arrive
/// get Envoy's 408 and the connection closes (`downstream_rq_header_timeout`).
#[tokio::test]
async fn the_request_headers_timeout_runs_from_a_requests_first_byte() {
    use tokio::io::AsyncWriteExt;
    let upstream = HttpServer::start("a").await;
    let cfg = timed_config(upstream.addr(), |m| {
        m.request_headers_timeout = Some(Duration::from_millis(300));
    });
    let (proxy, addr) = start(cfg).await;
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    sock.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut sock).await.starts_with("HTTP/1.1 200"));
    // Idle between requests for twice the timeout: still open.
    tokio::time::sleep(Duration::from_millis(600)).await;
    // The rest of the headers never comes: Envoy's 408, then the connection closes.
    let head = answer_to_unfinished_headers(&mut sock, b"GET / HTTP/1.1\r\nhost: x\r\n").await;
    for expected in [
        "content-type: text/plain",
        "content-length: 22",
        "server: envoy",
        "connection: close",
        "date: ",
    ] {
        assert!(head.contains(expected), "{expected} in {head}");
    }
    let stats = stream_stats(&proxy);
    assert_eq!(count(&stats.downstream_rq_header_timeout), 1);
    assert_eq!(count(&stats.downstream_cx_protocol_error), 0);
}

/// Envoy's stream exists from a request's first byte, so the stream idle timeout (on by default)
/// also ends headers that stop arriving: a slow client cannot hold a connection with half a
/// request.
#[tokio::test]
async fn the_stream_idle_timeout_ends_headers_that_stop_arriving() {
    let upstream = HttpServer::start("a").await;
    let cfg = timed_config(upstream.addr(), |m| {
        m.stream_idle_timeout = Some(Duration::from_millis(300));
        m.request_timeout = Some(Duration::from_millis(2000));
    });
    let (proxy, addr) = start(cfg).await;
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = answer_to_unfinished_headers(&mut sock, b"GET / HTTP/1.1\r\nhost").await;
    assert!(head.contains("content-length: 14"), "{head}");
    let stats = stream_stats(&proxy);
    assert_eq!(count(&stats.downstream_rq_idle_timeout), 1);
    assert_eq!(count(&stats.downstream_rq_4xx), 1);
}

/// An upgrade the upstream refuses is an ordinary response: a body that stalls is ended by the
/// stream idle timeout, as any response body is.
#[tokio::test]
async fn a_refused_upgrade_with_a_stalled_body_meets_the_stream_idle_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr = listener.local_addr().unwrap();
    let upstream = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        read_head(&mut sock).await;
        sock.write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 10\r\n\r\n12345")
            .await
            .unwrap();
        // Half the body, then silence until the proxy gives up.
        let mut rest = Vec::new();
        let _ = sock.read_to_end(&mut rest).await;
    });
    let cfg = websocket_config_with(vec![cluster("backend", &[upstream_addr])], |m| {
        m.stream_idle_timeout = Some(Duration::from_millis(200));
    });
    let (_proxy, addr) = start(cfg).await;
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(
        b"GET /chat HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
    )
    .await
    .unwrap();
    let head = read_head(&mut sock).await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let closed_after = time_to_close(&mut sock).await;
    assert!(
        closed_after < Duration::from_secs(2),
        "closed after {closed_after:?}"
    );
    tokio::time::timeout(Duration::from_secs(5), upstream)
        .await
        .expect("the upstream connection is closed too")
        .unwrap();
}

/// As in Envoy, the upstream connection of an open tunnel counts against `max_connections` until
/// it closes: at the limit, the next request waits for it, then gets a connection of its own.
#[tokio::test]
async fn an_open_websocket_holds_its_upstream_connection_slot() {
    let upstream = HttpServer::start("ws").await;
    let mut c = cluster("backend", &[upstream.addr()]);
    c.circuit_breakers.max_connections = 1;
    let (_proxy, addr) = start(websocket_config(vec![c])).await;
    let mut ws = WebSocketClient::connect(addr, "x", "/chat").await.unwrap();
    ws.send_text("open").await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), WsMessage::Text("open".into()));
    let waiting = tokio::spawn(async move { http1_get(addr, "x", "/", &[]).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the request waits for a connection");
    assert_eq!(upstream.connection_count(), 1);
    ws.close().await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once the tunnel closed")
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        upstream.connection_count(),
        2,
        "the tunnel's connection is not reused"
    );
}

/// `always_set_request_id_in_response`, `via` on both directions, and the route configuration's
/// `internal_only_headers`, as Envoy applies them.
#[tokio::test]
async fn request_id_echo_via_and_internal_only_headers() {
    let upstream = HttpServer::start("backend-1").await;
    let mut table = routes(vec![prefix_to("/", RouteAction::cluster("backend"))]);
    table.internal_only_headers = vec!["x-secret".into()];
    let mut manager = hcm(table);
    manager.always_set_request_id_in_response = true;
    manager.via = "edge-proxy".into();
    let cfg = config(
        vec![http_listener("ingress", manager)],
        vec![cluster("backend", &[upstream.addr()])],
    );
    let (_proxy, addr) = start(cfg).await;
    let headers = [
        ("x-request-id", "chosen"),
        ("x-secret", "1"),
        ("via", "1.1 client"),
    ];
    let resp = http1_get(addr, "example.com", "/", &headers).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-request-id"), Some("chosen"));
    assert_eq!(resp.header("via"), Some("edge-proxy"));
    let seen = upstream.last_request().unwrap();
    assert!(seen.headers.get("x-secret").is_none());
    assert_eq!(seen.headers.get("via").unwrap(), "1.1 client, edge-proxy");
}

/// One listener whose connection manager has a 150 ms stream idle timeout; `/quiet` keeps it,
/// `/patient` turns it off with the route's `idle_timeout: 0s`.
fn idle_config(upstream: std::net::SocketAddr) -> weft_proxy_config::model::ProxyConfig {
    let mut patient = RouteAction::cluster("backend");
    patient.idle_timeout = Some(Duration::ZERO);
    let mut manager = hcm(routes(vec![
        prefix_to("/patient", patient),
        prefix_to("/", RouteAction::cluster("backend")),
    ]));
    manager.stream_idle_timeout = Some(Duration::from_millis(150));
    config(
        vec![http_listener("ingress", manager)],
        vec![cluster("backend", &[upstream])],
    )
}

#[tokio::test]
async fn stream_idle_timeout_answers_504_while_the_upstream_is_silent() {
    let upstream = HttpServer::start("slow").await;
    let (_proxy, addr) = start(idle_config(upstream.addr())).await;
    let r = http1_get(addr, "x", "/quiet", &[("x-test-delay-ms", "600")])
        .await
        .unwrap();
    assert_eq!(r.status, 504);
    assert_eq!(r.text(), "stream timeout");
    // The route's zero idle_timeout disables it.
    let r = http1_get(addr, "x", "/patient", &[("x-test-delay-ms", "400")])
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    // Under the timeout nothing happens.
    let r = http1_get(addr, "x", "/quiet", &[("x-test-delay-ms", "20")])
        .await
        .unwrap();
    assert_eq!(r.status, 200);
}

/// Once the response has started, a stream idle for the timeout is reset.
#[tokio::test]
async fn a_response_body_stalled_past_the_idle_timeout_is_reset() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf!")
                    .await;
                tokio::time::sleep(Duration::from_secs(5)).await;
            });
        }
    });
    let (_proxy, addr) = start(idle_config(upstream)).await;
    let started = std::time::Instant::now();
    let r = http1_get(addr, "x", "/quiet", &[]).await;
    assert!(
        r.as_ref().map_or(true, |r| r.body.len() < 10),
        "the stalled body was not cut: {r:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "reset after the idle timeout, not when the upstream gave up"
    );
}

/// The connection manager's `request_timeout` (150 ms): a request whose body stops arriving
/// gets 408 `request timeout`; once the request is complete, a slow upstream is not cut.
#[tokio::test]
async fn request_timeout_covers_receiving_the_request_only() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = HttpServer::start("slow").await;
    let mut manager = hcm(routes(vec![prefix_to(
        "/",
        RouteAction::cluster("backend"),
    )]));
    manager.request_timeout = Some(Duration::from_millis(150));
    let cfg = config(
        vec![http_listener("ingress", manager)],
        vec![cluster("backend", &[upstream.addr()])],
    );
    let (_proxy, addr) = start(cfg).await;

    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 1024];
        while !answer.ends_with(b"request timeout") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    });
    read.await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.ends_with("request timeout"), "{answer}");

    let r = http1_get(addr, "x", "/", &[("x-test-delay-ms", "400")])
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

/// `max_headers_count` is answered with Envoy's local reply, not the HTTP/1 parser's bare 431.
#[tokio::test]
async fn too_many_headers_get_envoys_431() {
    let upstream = HttpServer::start("a").await;
    let mut manager = hcm(routes(vec![prefix_to(
        "/",
        RouteAction::cluster("backend"),
    )]));
    manager.max_headers_count = 4;
    let cfg = config(
        vec![http_listener("ingress", manager)],
        vec![cluster("backend", &[upstream.addr()])],
    );
    let (_proxy, addr) = start(cfg).await;
    let r = http1_get(addr, "x", "/", &[("h1", "1"), ("h2", "2"), ("h3", "3")])
        .await
        .unwrap();
    assert_eq!(r.status, 200, "host and three more: at the limit");
    let r = http1_get(
        addr,
        "x",
        "/",
        &[("h1", "1"), ("h2", "2"), ("h3", "3"), ("h4", "4")],
    )
    .await
    .unwrap();
    assert_eq!(r.status, 431);
    assert_eq!(r.text(), "Request Header Fields Too Large");
}
