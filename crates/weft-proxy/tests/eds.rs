//! EDS updates applied to a running proxy: a cluster whose configuration changes only in its
//! endpoints keeps running, and the new assignment is the one in force, as in Envoy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use support::*;
use weft_proxy::Proxy;
use weft_proxy_config::model::*;
use weft_test_support::{HttpServer, http1_get};

fn eds(endpoints: &[SocketAddr]) -> Cluster {
    Cluster {
        discovery: Discovery::Eds,
        ..cluster("backend", endpoints)
    }
}

fn with_checks(mut c: Cluster) -> Cluster {
    c.health_checks = vec![HealthCheck {
        timeout: Duration::from_millis(500),
        interval: Duration::from_millis(50),
        unhealthy_threshold: 1,
        healthy_threshold: 1,
        kind: HealthCheckKind::Http {
            path: "/healthz".into(),
            host: String::new(),
            expected_statuses: vec![],
        },
    }];
    c
}

fn addresses(proxy: &Proxy) -> Vec<SocketAddr> {
    backend(proxy)
        .host_set()
        .hosts
        .iter()
        .map(|h| h.address)
        .collect()
}

async fn served_by(addr: SocketAddr) -> String {
    let resp = http1_get(addr, "example.com", "/", &[]).await.unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.served_by().unwrap().to_owned()
}

#[tokio::test]
async fn an_update_back_to_earlier_endpoints_applies() {
    let a: SocketAddr = "127.0.0.1:1001".parse().unwrap();
    let b: SocketAddr = "127.0.0.1:1002".parse().unwrap();
    let proxy = Proxy::new();
    proxy
        .apply(single_route_config(vec![eds(&[a])]))
        .await
        .unwrap();
    let first = backend(&proxy);
    proxy
        .apply(single_route_config(vec![eds(&[b])]))
        .await
        .unwrap();
    assert_eq!(addresses(&proxy), [b]);
    // Back to the first assignment: it is no longer the one in force, so it applies.
    proxy
        .apply(single_route_config(vec![eds(&[a])]))
        .await
        .unwrap();
    assert_eq!(addresses(&proxy), [a]);
    assert!(
        Arc::ptr_eq(&first, &backend(&proxy)),
        "the cluster itself stays"
    );
}

#[tokio::test]
async fn hosts_an_update_adds_take_traffic_only_once_they_pass_their_first_check() {
    let a = HttpServer::start("a").await;
    let b = HttpServer::start("b").await;
    let c = HttpServer::start("c").await;
    let proxy = Proxy::new();
    proxy
        .apply(single_route_config(vec![with_checks(eds(&[a.addr()]))]))
        .await
        .unwrap();
    let addr = proxy.listener_address("ingress").expect("bound");
    assert_eq!(healthy_hosts(&proxy), 1);

    // b fails its checks: it never takes traffic.
    b.fail_next(u32::MAX, 503);
    proxy
        .apply(single_route_config(vec![with_checks(eds(&[
            a.addr(),
            b.addr(),
        ]))]))
        .await
        .unwrap();
    for _ in 0..10 {
        assert_eq!(served_by(addr).await, "a");
    }
    assert!(b.requests().iter().any(|r| r.path == "/healthz"));
    assert!(b.requests().iter().all(|r| r.path == "/healthz"));
    assert_eq!(healthy_hosts(&proxy), 1);

    // c passes: it joins.
    proxy
        .apply(single_route_config(vec![with_checks(eds(&[
            a.addr(),
            b.addr(),
            c.addr(),
        ]))]))
        .await
        .unwrap();
    wait_healthy(&proxy, 2).await;
    let mut servers = Vec::new();
    for _ in 0..10 {
        servers.push(served_by(addr).await);
    }
    assert!(servers.iter().any(|s| s == "c"), "{servers:?}");
    assert!(servers.iter().all(|s| s != "b"), "{servers:?}");
}

#[tokio::test]
async fn a_new_health_check_port_moves_the_checks_there() {
    let a = HttpServer::start("a").await;
    let passing = HttpServer::start("passing").await;
    let failing = HttpServer::start("failing").await;
    failing.fail_next(u32::MAX, 503);
    let checked_at = |port: u16| {
        let mut c = with_checks(eds(&[a.addr()]));
        c.localities[0].endpoints[0].health_check_port = Some(port);
        single_route_config(vec![c])
    };
    let proxy = Proxy::new();
    proxy
        .apply(checked_at(passing.addr().port()))
        .await
        .unwrap();
    assert_eq!(healthy_hosts(&proxy), 1);
    assert!(passing.last_request().is_some());
    assert!(a.last_request().is_none(), "checks go to the check port");

    proxy
        .apply(checked_at(failing.addr().port()))
        .await
        .unwrap();
    // Envoy takes the host for a new one: it is out until checks at the new port pass, and
    // those fail.
    for _ in 0..200 {
        if failing.last_request().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(failing.last_request().is_some(), "checked at the new port");
    assert_eq!(healthy_hosts(&proxy), 0);
    let host = backend(&proxy).host_set().hosts[0].clone();
    assert_eq!(host.health_flags_text(), "/failed_active_hc");
    // The old port is checked no more (its last check may still be under way).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let old_port_checks = passing.request_count();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(passing.request_count(), old_port_checks);
}
