//! Unit tests of the filters' rules; end-to-end behaviour is in `tests/filters.rs`.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, Request};
use weft_proxy_config::model::{
    CorsPolicy, FaultAbort, FaultAbortKind, FaultDelay, FaultFilter, FaultHeaderMatch, Fraction,
    LocalRateLimit, TokenBucket as BucketConfig,
};
use weft_proxy_route::{StringMatcher, StringPattern};

use super::cors::{self, CorsStats, OriginMatcher};
use super::fault::{self, FaultStats};
use super::local_ratelimit::{self, Limiter, TokenBucket};
use super::*;

fn headers(list: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in list {
        h.append(
            http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn pct(numerator: u32) -> Fraction {
    Fraction {
        numerator,
        denominator: 100,
    }
}

/// A random source that always draws `v`.
fn always(v: u64) -> impl FnMut() -> u64 {
    move || v
}

// ---- fault ----

fn abort(kind: FaultAbortKind, percent: u32) -> FaultFilter {
    FaultFilter {
        abort: Some(FaultAbort {
            kind,
            percentage: pct(percent),
        }),
        ..FaultFilter::default()
    }
}

#[test]
fn fault_abort_samples_its_percentage() {
    let f = abort(FaultAbortKind::Http(503), 30);
    let h = HeaderMap::new();
    assert_eq!(
        fault::abort_for(&f, &h, &mut always(29)),
        Some(fault::Abort {
            http: 503,
            grpc: None
        })
    );
    assert_eq!(fault::abort_for(&f, &h, &mut always(30)), None);
    let none = abort(FaultAbortKind::Http(503), 0);
    assert_eq!(fault::abort_for(&none, &h, &mut always(0)), None);
}

#[test]
fn grpc_abort_is_http_200_with_grpc_status() {
    let f = abort(FaultAbortKind::Grpc(14), 100);
    assert_eq!(
        fault::abort_for(&f, &HeaderMap::new(), &mut always(0)),
        Some(fault::Abort {
            http: 200,
            grpc: Some(14)
        })
    );
}

#[test]
fn header_controlled_abort_reads_the_headers() {
    let f = abort(FaultAbortKind::Header, 100);
    let mut rng = always(0);
    // No header: no abort.
    assert_eq!(fault::abort_for(&f, &HeaderMap::new(), &mut rng), None);
    let h = headers(&[(fault::ABORT_HEADER, "418")]);
    assert_eq!(
        fault::abort_for(&f, &h, &mut rng).map(|a| a.http),
        Some(418)
    );
    // Outside [200, 600): ignored, then the gRPC header is consulted.
    let h = headers(&[(fault::ABORT_HEADER, "600")]);
    assert_eq!(fault::abort_for(&f, &h, &mut rng), None);
    let h = headers(&[
        (fault::ABORT_HEADER, "199"),
        (fault::ABORT_GRPC_HEADER, "8"),
    ]);
    assert_eq!(
        fault::abort_for(&f, &h, &mut rng),
        Some(fault::Abort {
            http: 200,
            grpc: Some(8)
        })
    );
    // The HTTP header wins over the gRPC one.
    let h = headers(&[
        (fault::ABORT_HEADER, "500"),
        (fault::ABORT_GRPC_HEADER, "8"),
    ]);
    assert_eq!(
        fault::abort_for(&f, &h, &mut rng).map(|a| a.http),
        Some(500)
    );
}

#[test]
fn percentage_headers_are_capped_by_the_configuration() {
    let f = abort(FaultAbortKind::Header, 50);
    let with = |p: &str| {
        headers(&[
            (fault::ABORT_HEADER, "503"),
            (fault::ABORT_PERCENTAGE_HEADER, p),
        ])
    };
    // Header asks 100%, capped to 50: a draw of 60 misses.
    assert_eq!(fault::abort_for(&f, &with("100"), &mut always(60)), None);
    assert!(fault::abort_for(&f, &with("100"), &mut always(49)).is_some());
    // Header lowers it to 10%.
    assert_eq!(fault::abort_for(&f, &with("10"), &mut always(20)), None);
    assert!(fault::abort_for(&f, &with("10"), &mut always(9)).is_some());
    // A fixed abort ignores the percentage header.
    let fixed = abort(FaultAbortKind::Http(503), 50);
    assert!(fault::abort_for(&fixed, &with("0"), &mut always(10)).is_some());
}

#[test]
fn delays_fixed_or_from_the_header() {
    let fixed = FaultFilter {
        delay: Some(FaultDelay {
            fixed: Some(Duration::from_millis(250)),
            percentage: pct(100),
        }),
        ..FaultFilter::default()
    };
    assert_eq!(
        fault::delay_for(&fixed, &HeaderMap::new(), &mut always(0)),
        Some(Duration::from_millis(250))
    );
    let header = FaultFilter {
        delay: Some(FaultDelay {
            fixed: None,
            percentage: pct(100),
        }),
        ..FaultFilter::default()
    };
    assert_eq!(
        fault::delay_for(&header, &HeaderMap::new(), &mut always(0)),
        None
    );
    let h = headers(&[(fault::DELAY_HEADER, "40")]);
    assert_eq!(
        fault::delay_for(&header, &h, &mut always(0)),
        Some(Duration::from_millis(40))
    );
    let h = headers(&[(fault::DELAY_HEADER, "0")]);
    assert_eq!(fault::delay_for(&header, &h, &mut always(0)), None);
    let h = headers(&[
        (fault::DELAY_HEADER, "40"),
        (fault::DELAY_PERCENTAGE_HEADER, "0"),
    ]);
    assert_eq!(fault::delay_for(&header, &h, &mut always(0)), None);
}

#[test]
fn fault_conditions_cluster_and_headers() {
    let f = FaultFilter {
        upstream_cluster: Some("backend".into()),
        headers: vec![
            ("x-user".into(), FaultHeaderMatch::Exact("alice".into())),
            ("x-tier".into(), FaultHeaderMatch::Prefix("gold".into())),
            ("x-debug".into(), FaultHeaderMatch::Present),
        ],
        ..abort(FaultAbortKind::Http(503), 100)
    };
    let ok = headers(&[("x-user", "alice"), ("x-tier", "gold-1"), ("x-debug", "")]);
    assert!(fault::applies(&f, &ok, Some("backend")));
    assert!(!fault::applies(&f, &ok, Some("other")));
    assert!(!fault::applies(&f, &ok, None));
    let missing = headers(&[("x-user", "alice"), ("x-tier", "gold")]);
    assert!(!fault::applies(&f, &missing, Some("backend")));
    let wrong = headers(&[("x-user", "bob"), ("x-tier", "gold"), ("x-debug", "1")]);
    assert!(!fault::applies(&f, &wrong, Some("backend")));
}

#[tokio::test]
async fn max_active_faults_overflows() {
    let f = FaultFilter {
        max_active_faults: Some(1),
        ..abort(FaultAbortKind::Http(503), 100)
    };
    let stats = Arc::new(FaultStats::default());
    let h = HeaderMap::new();
    let first = fault::decode(&f, &h, None, &stats, &mut always(0)).await;
    assert!(first.abort.is_some());
    assert!(first.active.is_some());
    assert_eq!(
        stats
            .active_faults
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let second = fault::decode(&f, &h, None, &stats, &mut always(0)).await;
    assert!(second.abort.is_none());
    assert_eq!(
        stats
            .faults_overflow
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    drop(first);
    assert_eq!(
        stats
            .active_faults
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let third = fault::decode(&f, &h, None, &stats, &mut always(0)).await;
    assert!(third.abort.is_some());
    assert_eq!(
        stats
            .aborts_injected
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

#[tokio::test(start_paused = true)]
async fn delay_then_abort_count_one_active_fault() {
    let f = FaultFilter {
        delay: Some(FaultDelay {
            fixed: Some(Duration::from_secs(5)),
            percentage: pct(100),
        }),
        max_active_faults: Some(1),
        ..abort(FaultAbortKind::Http(500), 100)
    };
    let stats = Arc::new(FaultStats::default());
    let started = tokio::time::Instant::now();
    let v = fault::decode(&f, &HeaderMap::new(), None, &stats, &mut always(0)).await;
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert!(v.delayed);
    let resp = v.abort.unwrap();
    assert_eq!(resp.status(), 500);
    assert_eq!(
        stats
            .delays_injected
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        stats
            .faults_overflow
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn abort_replies_to_grpc_requests_in_grpc() {
    let stats = Arc::new(FaultStats::default());
    let f = abort(FaultAbortKind::Http(503), 100);
    let grpc = headers(&[("content-type", "application/grpc+proto")]);
    let mut resp = fault::decode(&f, &grpc, None, &stats, &mut always(0))
        .await
        .abort
        .unwrap();
    // The connection manager reshapes local replies to gRPC requests.
    crate::http::local_reply::to_grpc(&mut resp, false);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["grpc-status"], "14");
    assert_eq!(resp.headers()["grpc-message"], fault::ABORT_BODY);
    let plain = fault::decode(&f, &HeaderMap::new(), None, &stats, &mut always(0))
        .await
        .abort
        .unwrap();
    assert_eq!(plain.status(), 503);
    assert_eq!(plain.headers()["content-type"], "text/plain");
}

#[test]
fn http_statuses_map_to_grpc_like_envoy() {
    use crate::http::local_reply::http_to_grpc_status;
    assert_eq!(http_to_grpc_status(400), 13);
    assert_eq!(http_to_grpc_status(401), 16);
    assert_eq!(http_to_grpc_status(403), 7);
    assert_eq!(http_to_grpc_status(404), 12);
    assert_eq!(http_to_grpc_status(429), 14);
    assert_eq!(http_to_grpc_status(503), 14);
    assert_eq!(http_to_grpc_status(500), 2);
}

// ---- CORS ----

fn exact(s: &str) -> StringMatcher {
    StringMatcher::new(StringPattern::Exact(s.into()))
}

fn policy() -> CorsPolicy {
    CorsPolicy {
        allow_origin: vec![exact("https://app.example.com")],
        allow_methods: "GET, POST".into(),
        allow_headers: "x-custom".into(),
        expose_headers: "x-trace".into(),
        max_age: "600".into(),
        allow_credentials: true,
        forward_not_matching_preflights: true,
        ..CorsPolicy::default()
    }
}

fn request(method: Method, list: &[(&str, &str)]) -> http::request::Parts {
    let mut b = Request::builder().method(method).uri("/");
    for (k, v) in list {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

fn run_cors(policies: &[&CorsPolicy], parts: &http::request::Parts) -> (cors::Verdict, CorsStats) {
    let stats = CorsStats::default();
    let origins = policies
        .iter()
        .find(|p| !p.allow_origin.is_empty())
        .map(|p| OriginMatcher::new(&p.allow_origin));
    let v = cors::decode(policies, origins.as_ref(), parts, &stats, &mut always(0));
    (v, stats)
}

const PREFLIGHT: [(&str, &str); 3] = [
    ("origin", "https://app.example.com"),
    ("access-control-request-method", "POST"),
    ("access-control-request-headers", "x-a, x-b"),
];

#[test]
fn preflight_from_an_allowed_origin_is_answered() {
    let p = policy();
    let (v, stats) = run_cors(&[&p], &request(Method::OPTIONS, &PREFLIGHT));
    let cors::Verdict::Respond(resp) = v else {
        panic!("expected a reply")
    };
    let h = resp.headers();
    assert_eq!(resp.status(), 200);
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["access-control-allow-methods"], "GET, POST");
    assert_eq!(h["access-control-allow-headers"], "x-custom");
    assert_eq!(h["access-control-max-age"], "600");
    assert_eq!(h["access-control-expose-headers"], "x-trace");
    assert_eq!(
        stats
            .origin_valid
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn wildcard_methods_and_headers_echo_the_request() {
    let p = CorsPolicy {
        allow_methods: "*".into(),
        allow_headers: "*".into(),
        ..policy()
    };
    let (v, _) = run_cors(&[&p], &request(Method::OPTIONS, &PREFLIGHT));
    let cors::Verdict::Respond(resp) = v else {
        panic!("expected a reply")
    };
    assert_eq!(resp.headers()["access-control-allow-methods"], "POST");
    assert_eq!(resp.headers()["access-control-allow-headers"], "x-a, x-b");
}

#[test]
fn preflight_from_another_origin_is_forwarded_or_answered_bare() {
    let p = policy();
    let other = [
        ("origin", "https://evil.example"),
        ("access-control-request-method", "POST"),
    ];
    let (v, stats) = run_cors(&[&p], &request(Method::OPTIONS, &other));
    assert!(matches!(v, cors::Verdict::Continue(None)));
    assert_eq!(
        stats
            .origin_invalid
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let strict = CorsPolicy {
        forward_not_matching_preflights: false,
        ..policy()
    };
    let (v, _) = run_cors(&[&strict], &request(Method::OPTIONS, &other));
    let cors::Verdict::Respond(resp) = v else {
        panic!("expected a reply")
    };
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

#[test]
fn simple_requests_get_allow_origin_only_when_allowed() {
    let p = policy();
    let (v, _) = run_cors(
        &[&p],
        &request(Method::GET, &[("origin", "https://app.example.com")]),
    );
    let cors::Verdict::Continue(Some(r)) = v else {
        panic!("expected response headers")
    };
    let mut h = HeaderMap::new();
    r.apply(&mut h);
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["access-control-expose-headers"], "x-trace");

    let (v, _) = run_cors(
        &[&p],
        &request(Method::GET, &[("origin", "https://evil.example")]),
    );
    assert!(matches!(v, cors::Verdict::Continue(None)));
    // No origin: not a CORS request.
    let (v, stats) = run_cors(&[&p], &request(Method::GET, &[]));
    assert!(matches!(v, cors::Verdict::Continue(None)));
    assert_eq!(
        stats
            .origin_invalid
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[test]
fn settings_fall_back_to_less_specific_policies() {
    let route = CorsPolicy {
        allow_origin: vec![],
        allow_methods: String::new(),
        max_age: "5".into(),
        ..CorsPolicy::default()
    };
    let vhost = policy();
    let (v, _) = run_cors(&[&route, &vhost], &request(Method::OPTIONS, &PREFLIGHT));
    let cors::Verdict::Respond(resp) = v else {
        panic!("expected a reply")
    };
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(resp.headers()["access-control-allow-methods"], "GET, POST");
    assert_eq!(resp.headers()["access-control-max-age"], "5");
}

#[test]
fn disabled_and_shadow_policies() {
    let off = CorsPolicy {
        filter_enabled: Some(pct(0)),
        ..policy()
    };
    let (v, stats) = run_cors(&[&off], &request(Method::OPTIONS, &PREFLIGHT));
    assert!(matches!(v, cors::Verdict::Continue(None)));
    assert_eq!(
        stats
            .origin_valid
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let shadow = CorsPolicy {
        filter_enabled: Some(pct(0)),
        shadow_enabled: Some(pct(100)),
        ..policy()
    };
    let (v, stats) = run_cors(&[&shadow], &request(Method::OPTIONS, &PREFLIGHT));
    assert!(matches!(v, cors::Verdict::Continue(None)));
    assert_eq!(
        stats
            .origin_valid
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // No policy at all: nothing happens.
    let (v, _) = run_cors(&[], &request(Method::OPTIONS, &PREFLIGHT));
    assert!(matches!(v, cors::Verdict::Continue(None)));
}

#[test]
fn private_network_access_is_answered_when_asked_and_allowed() {
    let p = CorsPolicy {
        allow_private_network_access: true,
        ..policy()
    };
    let mut list = PREFLIGHT.to_vec();
    list.push(("access-control-request-private-network", "true"));
    let (v, _) = run_cors(&[&p], &request(Method::OPTIONS, &list));
    let cors::Verdict::Respond(resp) = v else {
        panic!("expected a reply")
    };
    assert_eq!(
        resp.headers()["access-control-allow-private-network"],
        "true"
    );
}

#[test]
fn origin_matchers() {
    let m = OriginMatcher::new(&[
        StringMatcher {
            pattern: StringPattern::Suffix(".Example.com".into()),
            ignore_case: true,
        },
        StringMatcher::new(StringPattern::SafeRegex(r"https://[a-z]+\.test".into())),
        StringMatcher::new(StringPattern::Prefix("http://local".into())),
    ]);
    assert!(m.allows(b"https://a.example.COM"));
    assert!(m.allows(b"https://abc.test"));
    assert!(!m.allows(b"https://abc.test.evil"));
    assert!(!m.allows(b"xhttps://abc.test"));
    assert!(m.allows(b"http://localhost:8080"));
    assert!(!m.allows(b"https://example.org"));
    // A matcher that matches "*" allows every origin, as in Envoy.
    let any = OriginMatcher::new(&[exact("*")]);
    assert!(any.allows(b"https://whoever.example"));
    let regex_any =
        OriginMatcher::new(&[StringMatcher::new(StringPattern::SafeRegex(r"\*".into()))]);
    assert!(regex_any.allows(b"https://whoever.example"));
    // A broken regex matches nothing.
    let broken = OriginMatcher::new(&[StringMatcher::new(StringPattern::SafeRegex("(".into()))]);
    assert!(!broken.allows(b"("));
}

// ---- local rate limit ----

fn bucket(max: u32, per_fill: u32, interval_ms: u64) -> BucketConfig {
    BucketConfig {
        max_tokens: max,
        tokens_per_fill: per_fill,
        fill_interval: Duration::from_millis(interval_ms),
    }
}

#[test]
fn token_bucket_starts_full_and_refills_at_its_rate() {
    let b = TokenBucket::new(&bucket(3, 3, 1000)).unwrap();
    assert!(b.try_consume_at(0.0));
    assert!(b.try_consume_at(0.0));
    assert!(b.try_consume_at(0.0));
    assert!(!b.try_consume_at(0.0));
    // 3 tokens per second: one token after a third of a second.
    assert!(!b.try_consume_at(0.3));
    assert!(b.try_consume_at(0.34));
    assert!(!b.try_consume_at(0.34));
    // Never above max_tokens, however long it waits.
    for _ in 0..3 {
        assert!(b.try_consume_at(100.0));
    }
    assert!(!b.try_consume_at(100.0));
}

#[test]
fn a_bucket_that_cannot_refill_is_no_bucket() {
    assert!(TokenBucket::new(&bucket(3, 0, 1000)).is_none());
    assert!(TokenBucket::new(&bucket(3, 1, 0)).is_none());
}

fn lrl(enabled: u32, enforced: u32) -> LocalRateLimit {
    LocalRateLimit {
        stat_prefix: "unit_lrl".into(),
        token_bucket: Some(bucket(1, 1, 60_000)),
        filter_enabled: pct(enabled),
        filter_enforced: pct(enforced),
        status: 429,
        response_headers_to_add: vec![("x-limited".into(), "yes".into())],
    }
}

#[test]
fn limited_and_enforced_requests_get_the_reply() {
    let config = LocalRateLimit {
        stat_prefix: "unit_lrl_enforced".into(),
        ..lrl(100, 100)
    };
    let limiter = Limiter::new(&config);
    assert!(local_ratelimit::decode(&config, &limiter, &mut always(0)).is_none());
    let resp = local_ratelimit::decode(&config, &limiter, &mut always(0)).unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["x-limited"], "yes");
    let p = "unit_lrl_enforced.http_local_rate_limit";
    assert_eq!(counter(&format!("{p}.enabled")), 2);
    assert_eq!(counter(&format!("{p}.ok")), 1);
    assert_eq!(counter(&format!("{p}.rate_limited")), 1);
    assert_eq!(counter(&format!("{p}.enforced")), 1);
}

#[test]
fn not_enabled_or_not_enforced_requests_pass() {
    let disabled = LocalRateLimit {
        stat_prefix: "unit_lrl_disabled".into(),
        ..lrl(0, 100)
    };
    let limiter = Limiter::new(&disabled);
    for _ in 0..3 {
        assert!(local_ratelimit::decode(&disabled, &limiter, &mut always(0)).is_none());
    }
    assert_eq!(
        counter("unit_lrl_disabled.http_local_rate_limit.enabled"),
        0
    );

    let shadow = LocalRateLimit {
        stat_prefix: "unit_lrl_shadow".into(),
        ..lrl(100, 0)
    };
    let limiter = Limiter::new(&shadow);
    for _ in 0..3 {
        assert!(local_ratelimit::decode(&shadow, &limiter, &mut always(0)).is_none());
    }
    assert_eq!(
        counter("unit_lrl_shadow.http_local_rate_limit.rate_limited"),
        2
    );
    assert_eq!(counter("unit_lrl_shadow.http_local_rate_limit.enforced"), 0);
}

#[test]
fn status_below_400_becomes_429_and_no_bucket_limits_nothing() {
    let config = LocalRateLimit {
        stat_prefix: "unit_lrl_status".into(),
        status: 302,
        ..lrl(100, 100)
    };
    let limiter = Limiter::new(&config);
    let _ = local_ratelimit::decode(&config, &limiter, &mut always(0));
    let resp = local_ratelimit::decode(&config, &limiter, &mut always(0)).unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(
        http_body_text(resp),
        local_ratelimit::LIMITED_BODY.to_owned()
    );

    let unbounded = LocalRateLimit {
        token_bucket: None,
        ..config
    };
    let limiter = Limiter::new(&unbounded);
    for _ in 0..5 {
        assert!(local_ratelimit::decode(&unbounded, &limiter, &mut always(0)).is_none());
    }
}

fn http_body_text(resp: http::Response<crate::Body>) -> String {
    use http_body_util::BodyExt;
    let bytes = futures_util::FutureExt::now_or_never(resp.into_body().collect())
        .unwrap()
        .unwrap()
        .to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

// ---- shared state ----
