//! HTTP filters end to end on loopback: fault injection, CORS and local rate limiting in front
//! of the router, with per-route overrides.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use support::*;
use weft_proxy::Proxy;
use weft_proxy::http::filters::{self, CORS, FAULT, LOCAL_RATELIMIT};
use weft_proxy_config::model::*;
use weft_proxy_route::{
    RouteAction, RouteConfiguration, StringMatcher, StringPattern, VirtualHost,
};
use weft_test_support::{
    HttpConnection, HttpServer, HttpServerHandle, HttpVersion, TestResponse, http1_get,
};

/// A proxy on an ephemeral port whose connection manager (stats prefix `prefix`) runs
/// `http_filters` then the router, routing `routes` to cluster `backend` = `upstream`.
async fn start(
    prefix: &str,
    http_filters: Vec<HttpFilter>,
    routes: RouteConfiguration<PerFilterConfig>,
    upstream: &HttpServerHandle,
) -> (Arc<Proxy>, SocketAddr) {
    let mut h = hcm(routes);
    h.stat_prefix = prefix.into();
    h.http_filters = http_filters;
    h.http_filters
        .push(HttpFilter::Router(RouterFilter::default()));
    let cfg = config(
        vec![http_listener("ingress", h)],
        vec![cluster("backend", &[upstream.addr()])],
    );
    let proxy = Proxy::new();
    proxy.apply(cfg).await.expect("config applies");
    let addr = proxy.listener_address("ingress").expect("bound");
    (proxy, addr)
}

fn all_to_backend() -> RouteConfiguration<PerFilterConfig> {
    routes(vec![prefix_to("/", RouteAction::cluster("backend"))])
}

fn percent(numerator: u32) -> Fraction {
    Fraction {
        numerator,
        denominator: 100,
    }
}

fn abort(kind: FaultAbortKind, numerator: u32) -> Box<FaultFilter> {
    Box::new(FaultFilter {
        abort: Some(FaultAbort {
            kind,
            percentage: percent(numerator),
        }),
        ..FaultFilter::default()
    })
}

fn per_filter(name: &str, config: PerFilterConfig) -> BTreeMap<String, PerFilterConfig> {
    BTreeMap::from([(name.to_owned(), config)])
}

async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> TestResponse {
    let mut conn = HttpConnection::connect(addr, HttpVersion::Http1)
        .await
        .unwrap();
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "example.com");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    conn.send(req.body(Bytes::new()).unwrap()).await.unwrap()
}

// ---- fault ----

#[tokio::test]
async fn abort_for_every_request_never_calls_the_upstream() {
    let upstream = HttpServer::start("backend").await;
    let (_proxy, addr) = start(
        "fault_abort_all",
        vec![HttpFilter::Fault(abort(FaultAbortKind::Http(503), 100))],
        all_to_backend(),
        &upstream,
    )
    .await;
    for _ in 0..3 {
        let resp = http1_get(addr, "example.com", "/", &[]).await.unwrap();
        assert_eq!(resp.status, 503);
        assert_eq!(resp.text(), "fault filter abort");
    }
    assert_eq!(upstream.request_count(), 0);
    assert_eq!(
        filters::counter("http.fault_abort_all.fault.aborts_injected"),
        3
    );
}

#[tokio::test]
async fn abort_for_no_request_passes_everything() {
    let upstream = HttpServer::start("backend").await;
    let (_proxy, addr) = start(
        "fault_abort_none",
        vec![HttpFilter::Fault(abort(FaultAbortKind::Http(503), 0))],
        all_to_backend(),
        &upstream,
    )
    .await;
    for _ in 0..3 {
        let resp = http1_get(addr, "example.com", "/", &[]).await.unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.served_by(), Some("backend"));
    }
    assert_eq!(upstream.request_count(), 3);
}

#[tokio::test]
async fn a_fixed_delay_holds_the_request_back() {
    let upstream = HttpServer::start("backend").await;
    let delay = Box::new(FaultFilter {
        delay: Some(FaultDelay {
            fixed: Some(Duration::from_millis(200)),
            percentage: percent(100),
        }),
        ..FaultFilter::default()
    });
    let (_proxy, addr) = start(
        "fault_delay",
        vec![HttpFilter::Fault(delay)],
        all_to_backend(),
        &upstream,
    )
    .await;
    let started = Instant::now();
    let resp = http1_get(addr, "example.com", "/", &[]).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.served_by(), Some("backend"));
    assert_eq!(
        filters::counter("http.fault_delay.fault.delays_injected"),
        1
    );
}

#[tokio::test]
async fn header_controlled_abort_uses_the_callers_status() {
    let upstream = HttpServer::start("backend").await;
    let (_proxy, addr) = start(
        "fault_header",
        vec![HttpFilter::Fault(abort(FaultAbortKind::Header, 100))],
        all_to_backend(),
        &upstream,
    )
    .await;
    let resp = http1_get(
        addr,
        "example.com",
        "/",
        &[("x-envoy-fault-abort-request", "418")],
    )
    .await
    .unwrap();
    assert_eq!(resp.status, 418);
    assert_eq!(resp.text(), "fault filter abort");
    // Without the header nothing is injected.
    let resp = http1_get(addr, "example.com", "/", &[]).await.unwrap();
    assert_eq!(resp.status, 200);
    // A percentage header of 0 turns the abort off.
    let resp = http1_get(
        addr,
        "example.com",
        "/",
        &[
            ("x-envoy-fault-abort-request", "418"),
            ("x-envoy-fault-abort-request-percentage", "0"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(upstream.request_count(), 2);
}

#[tokio::test]
async fn routes_can_disable_or_replace_the_fault() {
    let upstream = HttpServer::start("backend").await;
    let mut off = prefix_to("/off", RouteAction::cluster("backend"));
    off.typed_per_filter_config = per_filter(FAULT, PerFilterConfig::Disabled);
    let mut teapot = prefix_to("/teapot", RouteAction::cluster("backend"));
    teapot.typed_per_filter_config = per_filter(
        FAULT,
        PerFilterConfig::Fault(abort(FaultAbortKind::Http(418), 100)),
    );
    let rest = prefix_to("/", RouteAction::cluster("backend"));
    let (_proxy, addr) = start(
        "fault_per_route",
        vec![HttpFilter::Fault(abort(FaultAbortKind::Http(503), 100))],
        routes(vec![off, teapot, rest]),
        &upstream,
    )
    .await;
    let get = |path: &'static str| async move {
        http1_get(addr, "example.com", path, &[])
            .await
            .unwrap()
            .status
    };
    assert_eq!(get("/off").await, 200);
    assert_eq!(get("/teapot").await, 418);
    assert_eq!(get("/other").await, 503);
    assert_eq!(upstream.request_count(), 1);
}

#[tokio::test]
async fn fault_only_hits_its_upstream_cluster() {
    let upstream = HttpServer::start("backend").await;
    let mut scoped = abort(FaultAbortKind::Http(503), 100);
    scoped.upstream_cluster = Some("elsewhere".into());
    let (_proxy, addr) = start(
        "fault_cluster",
        vec![HttpFilter::Fault(scoped)],
        all_to_backend(),
        &upstream,
    )
    .await;
    let resp = http1_get(addr, "example.com", "/", &[]).await.unwrap();
    assert_eq!(resp.status, 200);
}

// ---- CORS ----

const APP: &str = "https://app.example.com";

fn cors_routes() -> RouteConfiguration<PerFilterConfig> {
    let policy = CorsPolicy {
        allow_origin: vec![StringMatcher::new(StringPattern::Exact(APP.into()))],
        allow_methods: "GET, PUT".into(),
        allow_headers: "x-custom".into(),
        expose_headers: "x-trace-id".into(),
        max_age: "86400".into(),
        allow_credentials: true,
        forward_not_matching_preflights: true,
        ..CorsPolicy::default()
    };
    let mut open = prefix_to("/public", RouteAction::cluster("backend"));
    open.typed_per_filter_config = per_filter(CORS, PerFilterConfig::Disabled);
    RouteConfiguration {
        virtual_hosts: vec![VirtualHost {
            name: "all".into(),
            domains: vec!["*".into()],
            routes: vec![open, prefix_to("/", RouteAction::cluster("backend"))],
            typed_per_filter_config: per_filter(CORS, PerFilterConfig::Cors(Box::new(policy))),
            ..VirtualHost::default()
        }],
        ..RouteConfiguration::default()
    }
}

#[tokio::test]
async fn preflight_from_an_allowed_origin_is_answered_by_the_proxy() {
    let upstream = HttpServer::start("backend").await;
    let (_proxy, addr) = start(
        "cors_preflight",
        vec![HttpFilter::Cors],
        cors_routes(),
        &upstream,
    )
    .await;
    let resp = send(
        addr,
        "OPTIONS",
        "/api",
        &[
            ("origin", APP),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "x-custom"),
        ],
    )
    .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        resp.header("access-control-allow-methods"),
        Some("GET, PUT")
    );
    assert_eq!(
        resp.header("access-control-allow-headers"),
        Some("x-custom")
    );
    assert_eq!(resp.header("access-control-max-age"), Some("86400"));
    assert_eq!(
        resp.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(upstream.request_count(), 0);
    assert_eq!(filters::counter("http.cors_preflight.cors.origin_valid"), 1);
}

#[tokio::test]
async fn other_origins_get_no_cors_headers() {
    let upstream = HttpServer::start("backend").await;
    let (_proxy, addr) = start(
        "cors_denied",
        vec![HttpFilter::Cors],
        cors_routes(),
        &upstream,
    )
    .await;
    // A preflight from another origin goes upstream (forward_not_matching_preflights).
    let resp = send(
        addr,
        "OPTIONS",
        "/api",
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "PUT"),
        ],
    )
    .await;
    assert_eq!(resp.served_by(), Some("backend"));
    assert_eq!(resp.header("access-control-allow-origin"), None);
    let resp = send(addr, "GET", "/api", &[("origin", "https://evil.example")]).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("access-control-allow-origin"), None);
    assert_eq!(resp.header("access-control-expose-headers"), None);
    assert_eq!(upstream.request_count(), 2);
    assert_eq!(filters::counter("http.cors_denied.cors.origin_invalid"), 2);
}

#[tokio::test]
async fn simple_requests_from_an_allowed_origin_get_allow_origin() {
    let upstream = HttpServer::start("backend").await;
    let (_proxy, addr) = start(
        "cors_simple",
        vec![HttpFilter::Cors],
        cors_routes(),
        &upstream,
    )
    .await;
    let resp = send(addr, "GET", "/api", &[("origin", APP)]).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.served_by(), Some("backend"));
    assert_eq!(resp.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        resp.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(
        resp.header("access-control-expose-headers"),
        Some("x-trace-id")
    );
    // Where the route disables the filter, even a preflight goes upstream untouched.
    let resp = send(
        addr,
        "OPTIONS",
        "/public",
        &[("origin", APP), ("access-control-request-method", "PUT")],
    )
    .await;
    assert_eq!(resp.served_by(), Some("backend"));
    assert_eq!(resp.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn local_replies_of_later_filters_carry_cors_headers() {
    let upstream = HttpServer::start("backend").await;
    let (_proxy, addr) = start(
        "cors_then_fault",
        vec![
            HttpFilter::Cors,
            HttpFilter::Fault(abort(FaultAbortKind::Http(503), 100)),
        ],
        cors_routes(),
        &upstream,
    )
    .await;
    let resp = send(addr, "GET", "/api", &[("origin", APP)]).await;
    assert_eq!(resp.status, 503);
    assert_eq!(resp.header("access-control-allow-origin"), Some(APP));
}

// ---- local rate limit ----

fn limit(stat_prefix: &str, max_tokens: u32, fill_interval: Duration) -> Box<LocalRateLimit> {
    Box::new(LocalRateLimit {
        stat_prefix: stat_prefix.into(),
        token_bucket: Some(TokenBucket {
            max_tokens,
            tokens_per_fill: max_tokens,
            fill_interval,
        }),
        filter_enabled: percent(100),
        filter_enforced: percent(100),
        status: 429,
        response_headers_to_add: vec![("x-local-rate-limit".into(), "true".into())],
    })
}

#[tokio::test]
async fn a_bucket_of_n_lets_n_through_then_429_until_it_refills() {
    let upstream = HttpServer::start("backend").await;
    let interval = Duration::from_millis(200);
    let (_proxy, addr) = start(
        "lrl_hcm",
        vec![HttpFilter::LocalRateLimit(limit("lrl_bucket", 3, interval))],
        all_to_backend(),
        &upstream,
    )
    .await;
    // Each request on its own connection: the bucket is shared by the listener's connections.
    for _ in 0..3 {
        let resp = http1_get(addr, "example.com", "/", &[]).await.unwrap();
        assert_eq!(resp.status, 200);
    }
    let resp = http1_get(addr, "example.com", "/", &[]).await.unwrap();
    assert_eq!(resp.status, 429);
    assert_eq!(resp.text(), "local_rate_limited");
    assert_eq!(resp.header("x-local-rate-limit"), Some("true"));
    assert_eq!(upstream.request_count(), 3);
    assert_eq!(
        filters::counter("lrl_bucket.http_local_rate_limit.rate_limited"),
        1
    );

    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    let resp = http1_get(addr, "example.com", "/", &[]).await.unwrap();
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn a_route_override_has_its_own_bucket() {
    let upstream = HttpServer::start("backend").await;
    let minute = Duration::from_secs(60);
    let mut strict = prefix_to("/strict", RouteAction::cluster("backend"));
    strict.typed_per_filter_config = per_filter(
        LOCAL_RATELIMIT,
        PerFilterConfig::LocalRateLimit(limit("lrl_route", 1, minute)),
    );
    let mut free = prefix_to("/free", RouteAction::cluster("backend"));
    free.typed_per_filter_config = per_filter(LOCAL_RATELIMIT, PerFilterConfig::Disabled);
    let rest = prefix_to("/", RouteAction::cluster("backend"));
    let (_proxy, addr) = start(
        "lrl_override",
        vec![HttpFilter::LocalRateLimit(limit("lrl_listener", 2, minute))],
        routes(vec![strict, free, rest]),
        &upstream,
    )
    .await;
    let status = |path: &'static str| async move {
        http1_get(addr, "example.com", path, &[])
            .await
            .unwrap()
            .status
    };
    assert_eq!(status("/strict").await, 200);
    assert_eq!(status("/strict").await, 429);
    // The listener's bucket is untouched by the route's.
    assert_eq!(status("/a").await, 200);
    assert_eq!(status("/b").await, 200);
    assert_eq!(status("/c").await, 429);
    for _ in 0..3 {
        assert_eq!(status("/free").await, 200);
    }
}
