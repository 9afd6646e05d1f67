//! Active health checking end to end on loopback: hosts that fail their checks leave load
//! balancing and come back when they pass again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use support::*;
use weft_proxy::Proxy;
use weft_proxy_config::model::*;
use weft_test_support::{HttpServer, TcpServer, free_addr, http1_get};

fn http_check(path: &str) -> HealthCheck {
    HealthCheck {
        timeout: Duration::from_millis(500),
        interval: Duration::from_millis(50),
        unhealthy_threshold: 2,
        healthy_threshold: 2,
        kind: HealthCheckKind::Http {
            path: path.into(),
            host: String::new(),
            expected_statuses: vec![],
        },
    }
}

fn tcp_check(send: &[u8], receive: &[&[u8]]) -> HealthCheck {
    HealthCheck {
        timeout: Duration::from_millis(300),
        interval: Duration::from_millis(50),
        unhealthy_threshold: 2,
        healthy_threshold: 1,
        kind: HealthCheckKind::Tcp {
            send: send.to_vec(),
            receive: receive.iter().map(|r| r.to_vec()).collect(),
        },
    }
}

async fn start(endpoints: &[SocketAddr], check: HealthCheck) -> (Arc<Proxy>, SocketAddr) {
    let mut backend = cluster("backend", endpoints);
    backend.health_checks = vec![check];
    let cfg = single_route_config(vec![backend]);
    let proxy = Proxy::new();
    proxy.apply(cfg).await.expect("config applies");
    let addr = proxy.listener_address("ingress").expect("bound");
    (proxy, addr)
}

async fn served_by(addr: SocketAddr) -> String {
    let resp = http1_get(addr, "example.com", "/", &[]).await.unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.served_by().unwrap().to_owned()
}

#[tokio::test]
async fn a_host_failing_http_checks_leaves_and_returns() {
    let a = HttpServer::start("a").await;
    let b = HttpServer::start("b").await;
    let (proxy, addr) = start(&[a.addr(), b.addr()], http_check("/healthz")).await;
    // Both passed their first check before the configuration was applied.
    assert_eq!(healthy_hosts(&proxy), 2);
    let seen = b.last_request().expect("b was health checked");
    assert_eq!(seen.path, "/healthz");
    assert_eq!(seen.header("user-agent"), Some("Envoy/HC"));
    assert_eq!(seen.authority.as_deref(), Some("backend"));

    // b answers 503 from now on: one such answer is enough, whatever the threshold.
    b.fail_next(u32::MAX, 503);
    wait_healthy(&proxy, 1).await;
    for _ in 0..6 {
        assert_eq!(served_by(addr).await, "a");
    }

    // b recovers: after healthy_threshold (2) passing checks it takes traffic again.
    b.fail_next(0, 503);
    wait_healthy(&proxy, 2).await;
    let mut servers = Vec::new();
    for _ in 0..10 {
        servers.push(served_by(addr).await);
    }
    assert!(servers.iter().any(|s| s == "b"), "{servers:?}");

    let stats = &backend(&proxy).shared.stats;
    assert!(stats.health_check_attempt.load(Ordering::Relaxed) >= 4);
    assert!(stats.health_check_failure.load(Ordering::Relaxed) >= 1);
    assert!(stats.health_check_success.load(Ordering::Relaxed) >= 4);
}

#[tokio::test]
async fn a_host_failing_its_first_check_never_takes_traffic() {
    let a = HttpServer::start("a").await;
    let b = HttpServer::start("b").await;
    b.fail_next(u32::MAX, 500);
    let (proxy, addr) = start(&[a.addr(), b.addr()], http_check("/healthz")).await;
    assert_eq!(healthy_hosts(&proxy), 1);
    for _ in 0..6 {
        assert_eq!(served_by(addr).await, "a");
    }
}

#[tokio::test]
async fn tcp_checks_mark_closed_ports_unhealthy() {
    let a = HttpServer::start("a").await;
    let b = HttpServer::start("b").await;
    let c = HttpServer::start("c").await;
    let dead = free_addr();
    let (proxy, addr) = start(&[a.addr(), b.addr(), c.addr(), dead], tcp_check(b"", &[])).await;
    // The closed port failed its first check; the others connected.
    assert_eq!(healthy_hosts(&proxy), 3);
    let b_addr = b.addr();
    b.shutdown().await;
    // Connection refused twice (unhealthy_threshold) and b is out. Two healthy hosts of four
    // keep the balancer out of panic mode (which would use every host).
    wait_healthy(&proxy, 2).await;
    for _ in 0..6 {
        let server = served_by(addr).await;
        assert!(server == "a" || server == "c", "{server}");
    }
    let host = backend(&proxy)
        .host_set()
        .hosts
        .iter()
        .find(|h| h.address == b_addr)
        .cloned()
        .unwrap();
    assert_eq!(host.health_flags_text(), "/failed_active_hc");
}

#[tokio::test]
async fn tcp_checks_expect_their_payloads() {
    let echo = TcpServer::echo(free_addr()).await;
    let (proxy, _) = start(&[echo.addr()], tcp_check(b"PING\n", &[b"PI", b"NG"])).await;
    assert_eq!(healthy_hosts(&proxy), 1);
    let (proxy, _) = start(&[echo.addr()], tcp_check(b"PING\n", &[b"PONG"])).await;
    assert_eq!(healthy_hosts(&proxy), 0);
}
