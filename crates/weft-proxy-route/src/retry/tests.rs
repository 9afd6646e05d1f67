//! Every `retry_on` condition, the decision order, and back-off bounds.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode};
use proptest::prelude::*;

use super::*;
use crate::config::{HeaderMatchSpecifier, HeaderMatcher, RetryBackOff};

fn policy(retry_on: &str) -> RetryPolicy {
    policy_with(RetryPolicyConfig {
        retry_on: retry_on.into(),
        ..RetryPolicyConfig::default()
    })
}

fn policy_with(cfg: RetryPolicyConfig) -> RetryPolicy {
    RetryPolicy::compile(&cfg, MultiValueHeaders::default(), "retry_policy")
        .unwrap_or_else(|e| panic!("{e}"))
}

fn response(p: &RetryPolicy, status: u16, headers: &[(&'static str, &'static str)]) -> bool {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.append(*k, HeaderValue::from_static(v));
    }
    let status = StatusCode::from_u16(status).unwrap_or_else(|e| panic!("{e}"));
    should_retry(
        p,
        &AttemptOutcome::Response {
            status,
            headers: &h,
            request_was_early_data: false,
        },
    )
}

fn reset(p: &RetryPolicy, reason: ResetReason, started: bool) -> RetryDecision {
    retry_decision(
        p,
        &AttemptOutcome::Reset {
            reason,
            http3_used: Http3Used::No,
            cluster_http3_with_tcp_fallback: false,
            upstream_request_started: started,
        },
    )
}

const ALL_RESETS: [ResetReason; 8] = [
    ResetReason::LocalConnectionFailure,
    ResetReason::RemoteConnectionFailure,
    ResetReason::ConnectionTimeout,
    ResetReason::ConnectionTermination,
    ResetReason::LocalReset,
    ResetReason::RemoteReset,
    ResetReason::RemoteRefusedStreamReset,
    ResetReason::ProtocolError,
];

#[test]
fn parse_retry_on_list() {
    assert_eq!(
        RetryOn::parse(" 5xx ,, reset,unavailable "),
        Ok(RetryOn::FIVE_XX | RetryOn::RESET | RetryOn::GRPC_UNAVAILABLE)
    );
    assert_eq!(RetryOn::parse(""), Ok(RetryOn::empty()));
    assert_eq!(RetryOn::parse("5xx,5XX"), Err("5XX".to_owned()));
    for name in RetryOn::KNOWN_NAMES {
        assert!(RetryOn::parse(name).is_ok_and(|r| !r.is_empty()), "{name}");
    }
    assert_eq!(
        format!("{:?}", RetryOn::FIVE_XX | RetryOn::RESET),
        "RetryOn(5xx,reset)"
    );
}

#[test]
fn five_xx_covers_every_5xx_and_every_reset() {
    let p = policy("5xx");
    assert!(response(&p, 500, &[]));
    assert!(response(&p, 503, &[]));
    assert!(response(&p, 599, &[]));
    assert!(!response(&p, 499, &[]));
    assert!(!response(&p, 200, &[]));
    for r in ALL_RESETS {
        assert_eq!(reset(&p, r, true), RetryDecision::WithBackoff, "{r:?}");
    }
    assert_eq!(reset(&p, ResetReason::Overflow, false), RetryDecision::No);
}

#[test]
fn gateway_error_is_502_503_504_and_resets() {
    let p = policy("gateway-error");
    assert!(!response(&p, 500, &[]));
    assert!(!response(&p, 501, &[]));
    assert!(response(&p, 502, &[]));
    assert!(response(&p, 503, &[]));
    assert!(response(&p, 504, &[]));
    assert!(!response(&p, 505, &[]));
    assert_eq!(
        reset(&p, ResetReason::RemoteReset, true),
        RetryDecision::WithBackoff
    );
}

#[test]
fn reset_retries_resets_but_not_responses() {
    let p = policy("reset");
    assert!(!response(&p, 503, &[]));
    for r in ALL_RESETS {
        assert_eq!(reset(&p, r, true), RetryDecision::WithBackoff, "{r:?}");
    }
}

#[test]
fn reset_before_request_only_when_nothing_was_sent() {
    let p = policy("reset-before-request");
    assert_eq!(
        reset(&p, ResetReason::RemoteReset, false),
        RetryDecision::WithBackoff
    );
    assert_eq!(reset(&p, ResetReason::RemoteReset, true), RetryDecision::No);
}

#[test]
fn connect_failure_only_for_connection_failures() {
    let p = policy("connect-failure");
    assert_eq!(
        reset(&p, ResetReason::LocalConnectionFailure, false),
        RetryDecision::WithBackoff
    );
    assert_eq!(
        reset(&p, ResetReason::RemoteConnectionFailure, false),
        RetryDecision::WithBackoff
    );
    assert_eq!(
        reset(&p, ResetReason::ConnectionTimeout, false),
        RetryDecision::WithBackoff
    );
    assert_eq!(
        reset(&p, ResetReason::RemoteReset, false),
        RetryDecision::No
    );
    assert!(!response(&p, 503, &[]));
}

#[test]
fn refused_stream_only_for_refused_streams() {
    let p = policy("refused-stream");
    assert_eq!(
        reset(&p, ResetReason::RemoteRefusedStreamReset, true),
        RetryDecision::WithBackoff
    );
    assert_eq!(reset(&p, ResetReason::RemoteReset, true), RetryDecision::No);
}

#[test]
fn retriable_4xx_is_409_only() {
    let p = policy("retriable-4xx");
    assert!(response(&p, 409, &[]));
    assert!(!response(&p, 429, &[]));
    assert!(!response(&p, 404, &[]));
}

#[test]
fn envoy_ratelimited_header_decides_alone() {
    let p = policy("envoy-ratelimited");
    assert!(response(&p, 429, &[("x-envoy-ratelimited", "true")]));
    assert!(!response(&p, 429, &[]));
    // Without envoy-ratelimited, a rate-limited 503 is not retried even under 5xx.
    let p = policy("5xx");
    assert!(!response(&p, 503, &[("x-envoy-ratelimited", "true")]));
}

#[test]
fn retriable_status_codes_and_425() {
    let p = policy_with(RetryPolicyConfig {
        retry_on: "retriable-status-codes".into(),
        retriable_status_codes: vec![418, 425],
        ..RetryPolicyConfig::default()
    });
    assert!(response(&p, 418, &[]));
    assert!(!response(&p, 419, &[]));
    let h = HeaderMap::new();
    let too_early = |early| {
        retry_decision(
            &p,
            &AttemptOutcome::Response {
                status: StatusCode::from_u16(425).unwrap_or_else(|e| panic!("{e}")),
                headers: &h,
                request_was_early_data: early,
            },
        )
    };
    assert_eq!(
        too_early(false),
        RetryDecision::Immediately {
            disable_early_data: true,
            disable_http3: false
        }
    );
    assert_eq!(too_early(true), RetryDecision::No);
    // Listing codes without the condition does nothing.
    let p = policy_with(RetryPolicyConfig {
        retriable_status_codes: vec![418],
        ..RetryPolicyConfig::default()
    });
    assert!(!response(&p, 418, &[]));
}

#[test]
fn retriable_headers_match_response_headers_and_status() {
    let p = policy_with(RetryPolicyConfig {
        retry_on: "retriable-headers".into(),
        retriable_headers: vec![
            HeaderMatcher::new(
                "x-upstream-retry",
                HeaderMatchSpecifier::Exact("yes".into()),
            ),
            HeaderMatcher::new(
                ":status",
                HeaderMatchSpecifier::Range {
                    start: 520,
                    end: 530,
                },
            ),
        ],
        ..RetryPolicyConfig::default()
    });
    assert!(response(&p, 200, &[("x-upstream-retry", "yes")]));
    assert!(!response(&p, 200, &[("x-upstream-retry", "no")]));
    assert!(response(&p, 521, &[]));
    assert!(!response(&p, 503, &[]));
}

#[test]
fn retriable_request_headers_gate_retries() {
    let p = policy_with(RetryPolicyConfig {
        retry_on: "5xx".into(),
        retriable_request_headers: vec![HeaderMatcher::new(
            "x-idempotent",
            HeaderMatchSpecifier::Present(true),
        )],
        ..RetryPolicyConfig::default()
    });
    let mut h = HeaderMap::new();
    assert!(!p.request_is_retriable(&h));
    h.insert("x-idempotent", HeaderValue::from_static("1"));
    assert!(p.request_is_retriable(&h));
    assert!(policy("5xx").request_is_retriable(&HeaderMap::new()));
}

#[test]
fn grpc_conditions_read_grpc_status() {
    for (name, code) in [
        ("cancelled", "1"),
        ("deadline-exceeded", "4"),
        ("resource-exhausted", "8"),
        ("internal", "13"),
        ("unavailable", "14"),
    ] {
        let p = policy(name);
        assert!(response(&p, 200, &[("grpc-status", code)]), "{name}");
        assert!(!response(&p, 200, &[("grpc-status", "2")]), "{name}");
        assert!(!response(&p, 200, &[]), "{name}");
    }
    // Each condition only retries its own status.
    assert!(!response(
        &policy("cancelled"),
        200,
        &[("grpc-status", "14")]
    ));
}

#[test]
fn http3_post_connect_failure() {
    let p = policy("http3-post-connect-failure");
    let outcome = |reason, used, fallback| {
        retry_decision(
            &p,
            &AttemptOutcome::Reset {
                reason,
                http3_used: used,
                cluster_http3_with_tcp_fallback: fallback,
                upstream_request_started: true,
            },
        )
    };
    assert_eq!(
        outcome(ResetReason::RemoteReset, Http3Used::Yes, true),
        RetryDecision::Immediately {
            disable_early_data: false,
            disable_http3: true
        }
    );
    assert_eq!(
        outcome(ResetReason::RemoteReset, Http3Used::No, true),
        RetryDecision::No
    );
    assert_eq!(
        outcome(ResetReason::RemoteReset, Http3Used::Yes, false),
        RetryDecision::No
    );
    // A failed HTTP/3 connect on an auto cluster is retried at once whatever retry_on says.
    assert_eq!(
        retry_decision(
            &policy(""),
            &AttemptOutcome::Reset {
                reason: ResetReason::LocalConnectionFailure,
                http3_used: Http3Used::Yes,
                cluster_http3_with_tcp_fallback: true,
                upstream_request_started: false,
            }
        ),
        RetryDecision::Immediately {
            disable_early_data: false,
            disable_http3: false
        }
    );
}

#[test]
fn empty_policy_never_retries() {
    let p = policy("");
    assert!(!response(&p, 503, &[]));
    for r in ALL_RESETS {
        assert_eq!(reset(&p, r, false), RetryDecision::No);
    }
}

#[test]
fn defaults_and_back_off_validation() {
    let p = policy("5xx");
    assert_eq!(p.num_retries, 1);
    assert_eq!(p.base_interval, Duration::from_millis(25));
    assert_eq!(p.max_interval, Duration::from_millis(250));
    assert_eq!(p.host_selection_retry_max_attempts, 1);
    let p = policy_with(RetryPolicyConfig {
        retry_back_off: Some(RetryBackOff {
            base_interval: Duration::from_micros(10),
            max_interval: None,
        }),
        ..RetryPolicyConfig::default()
    });
    assert_eq!(p.base_interval, Duration::from_millis(1));
    assert_eq!(p.max_interval, Duration::from_millis(10));
    let bad = RetryPolicy::compile(
        &RetryPolicyConfig {
            retry_back_off: Some(RetryBackOff {
                base_interval: Duration::from_millis(100),
                max_interval: Some(Duration::from_millis(50)),
            }),
            ..RetryPolicyConfig::default()
        },
        MultiValueHeaders::default(),
        "p",
    );
    assert!(bad.is_err_and(|e| e.to_string().contains("max_interval")));
    let bad = RetryPolicy::compile(
        &RetryPolicyConfig {
            retriable_status_codes: vec![70_000],
            ..RetryPolicyConfig::default()
        },
        MultiValueHeaders::default(),
        "p",
    );
    assert!(bad.is_err());
}

#[test]
fn previous_priorities_keeps_a_positive_update_frequency() {
    let p = policy_with(RetryPolicyConfig {
        previous_priorities_update_frequency: Some(2),
        ..RetryPolicyConfig::default()
    });
    assert_eq!(p.previous_priorities_update_frequency, Some(2));
    assert_eq!(policy("5xx").previous_priorities_update_frequency, None);
    let bad = RetryPolicy::compile(
        &RetryPolicyConfig {
            previous_priorities_update_frequency: Some(0),
            ..RetryPolicyConfig::default()
        },
        MultiValueHeaders::default(),
        "p",
    );
    assert!(bad.is_err_and(|e| e.to_string().contains("p.retry_priority.update_frequency")));
}

#[test]
fn backoff_intervals_double_then_cap() {
    let p = policy("5xx");
    let max_of = |attempt| backoff(&p, attempt, u64::MAX - (u64::MAX % 1000) - 1);
    // random % interval with random ≡ 999 (mod 1000), i.e. interval - 1 for these intervals.
    assert_eq!(max_of(1), Duration::from_millis(24));
    assert_eq!(max_of(2), Duration::from_millis(49));
    assert_eq!(max_of(3), Duration::from_millis(99));
    assert_eq!(max_of(4), Duration::from_millis(199));
    assert_eq!(max_of(5), Duration::from_millis(249));
    assert_eq!(max_of(50), Duration::from_millis(249));
    assert_eq!(backoff(&p, 0, 24), Duration::from_millis(24));
    assert_eq!(backoff(&p, 1, 25), Duration::ZERO);
}

proptest! {
    #[test]
    fn backoff_stays_below_the_interval_and_the_cap(
        base_ms in 1u64..1000,
        factor in 1u64..20,
        attempt in 0u32..100,
        random in any::<u64>(),
    ) {
        let p = policy_with(RetryPolicyConfig {
            retry_back_off: Some(RetryBackOff {
                base_interval: Duration::from_millis(base_ms),
                max_interval: Some(Duration::from_millis(base_ms * factor)),
            }),
            ..RetryPolicyConfig::default()
        });
        let b = backoff(&p, attempt, random);
        prop_assert!(b < p.max_interval);
        let bound = base_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(40));
        prop_assert!(b < Duration::from_millis(bound));
    }
}
