//! `envoy.filters.http.fault`: delays and aborts a share of requests, optionally only those to
//! one upstream cluster or carrying given headers, with Envoy's header controls
//! (`x-envoy-fault-abort-request`, `x-envoy-fault-abort-grpc-request`,
//! `x-envoy-fault-delay-request` and their `-percentage` variants) when the configuration asks
//! for header-controlled faults.
//!
//! Order, as in Envoy: the delay first (`DI`), then, once it has elapsed, the abort (`FI`, body
//! `fault filter abort`). Each injected fault counts toward `max_active_faults` until the request
//! completes; over the limit, the fault is skipped and `faults_overflow` counts it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::{HeaderMap, Response};
use weft_proxy_config::model::{
    FaultAbortKind, FaultDelay, FaultFilter, FaultHeaderMatch, Fraction,
};
use weft_proxy_lb::RandomSource;

use super::{local_reply_for, sample};
use crate::Body;
use crate::upstream::stats::inc;

crate::upstream::stats::define_stats!(FaultStats {
    counters: [delays_injected, aborts_injected, faults_overflow],
    gauges: [active_faults]
});

/// Header giving the abort's HTTP status (`[200, 600)`).
pub const ABORT_HEADER: &str = "x-envoy-fault-abort-request";
/// Header giving the abort's gRPC status.
pub const ABORT_GRPC_HEADER: &str = "x-envoy-fault-abort-grpc-request";
/// Header giving the abort percentage's numerator (capped by the configured one).
pub const ABORT_PERCENTAGE_HEADER: &str = "x-envoy-fault-abort-request-percentage";
/// Header giving the delay in milliseconds.
pub const DELAY_HEADER: &str = "x-envoy-fault-delay-request";
/// Header giving the delay percentage's numerator (capped by the configured one).
pub const DELAY_PERCENTAGE_HEADER: &str = "x-envoy-fault-delay-request-percentage";

/// Body of an abort reply (Envoy's wording).
pub const ABORT_BODY: &str = "fault filter abort";

/// A fault counted in `active_faults` until dropped.
#[derive(Debug)]
pub struct ActiveFault(Arc<FaultStats>);

impl Drop for ActiveFault {
    fn drop(&mut self) {
        self.0.active_faults.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the filter did to a request.
#[derive(Debug, Default)]
pub struct Verdict {
    /// A delay was injected (and has elapsed).
    pub delayed: bool,
    /// The abort reply, if the request is aborted.
    pub abort: Option<Response<Body>>,
    /// The request's share of `max_active_faults`, to hold until it completes.
    pub active: Option<ActiveFault>,
}

/// An abort decision: HTTP status and, for gRPC aborts, the gRPC status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abort {
    /// HTTP status (200 for gRPC aborts, as in Envoy).
    pub http: u16,
    /// gRPC status.
    pub grpc: Option<u32>,
}

/// Runs the filter over a request to `cluster`: sleeps for an injected delay, and returns the
/// abort reply when the request is aborted.
pub async fn decode(
    config: &FaultFilter,
    headers: &HeaderMap,
    cluster: Option<&str>,
    stats: &Arc<FaultStats>,
    rng: &mut impl RandomSource,
) -> Verdict {
    let mut verdict = Verdict::default();
    if !applies(config, headers, cluster) {
        return verdict;
    }
    if let Some(delay) = delay_for(config, headers, rng)
        && try_activate(config, stats, &mut verdict.active)
    {
        inc(&stats.delays_injected);
        verdict.delayed = true;
        tokio::time::sleep(delay).await;
    }
    if let Some(abort) = abort_for(config, headers, rng)
        && try_activate(config, stats, &mut verdict.active)
    {
        inc(&stats.aborts_injected);
        verdict.abort = Some(local_reply_for(abort.http, abort.grpc, ABORT_BODY));
    }
    verdict
}

/// Whether the fault applies to this request: its `upstream_cluster` and `headers` conditions.
pub fn applies(config: &FaultFilter, headers: &HeaderMap, cluster: Option<&str>) -> bool {
    if let Some(want) = &config.upstream_cluster
        && cluster != Some(want.as_str())
    {
        return false;
    }
    config.headers.iter().all(|(name, m)| {
        let values: Vec<&str> = headers
            .get_all(name.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return false;
        }
        // Envoy matches the values of a repeated header joined with ','.
        let value = values.join(",");
        match m {
            FaultHeaderMatch::Present => true,
            FaultHeaderMatch::Exact(v) => value == *v,
            FaultHeaderMatch::Prefix(p) => value.starts_with(p.as_str()),
        }
    })
}

/// The delay to inject, if any: the configured percentage (or the header's, when the delay is
/// header-controlled) is sampled, then the fixed delay or the header's milliseconds is used. A
/// zero delay is no delay.
pub fn delay_for(
    config: &FaultFilter,
    headers: &HeaderMap,
    rng: &mut impl RandomSource,
) -> Option<Duration> {
    let FaultDelay { fixed, percentage } = config.delay?;
    let percentage = match fixed {
        Some(_) => percentage,
        None => header_percentage(headers, DELAY_PERCENTAGE_HEADER, percentage),
    };
    if !sample(percentage, rng) {
        return None;
    }
    let delay = match fixed {
        Some(d) => d,
        None => Duration::from_millis(header_number(headers, DELAY_HEADER)?),
    };
    (!delay.is_zero()).then_some(delay)
}

/// The abort to inject, if any. A header-controlled abort takes its HTTP status from
/// `x-envoy-fault-abort-request` (ignored outside `[200, 600)`), else its gRPC status from
/// `x-envoy-fault-abort-grpc-request`; without either there is no abort.
pub fn abort_for(
    config: &FaultFilter,
    headers: &HeaderMap,
    rng: &mut impl RandomSource,
) -> Option<Abort> {
    let abort = config.abort?;
    let percentage = match abort.kind {
        FaultAbortKind::Header => {
            header_percentage(headers, ABORT_PERCENTAGE_HEADER, abort.percentage)
        }
        _ => abort.percentage,
    };
    if !sample(percentage, rng) {
        return None;
    }
    match abort.kind {
        FaultAbortKind::Http(status) => Some(Abort {
            http: status,
            grpc: None,
        }),
        FaultAbortKind::Grpc(status) => Some(Abort {
            http: 200,
            grpc: Some(status),
        }),
        FaultAbortKind::Header => {
            if let Some(status) = header_number(headers, ABORT_HEADER)
                .and_then(|s| u16::try_from(s).ok())
                .filter(|s| (200..600).contains(s))
            {
                return Some(Abort {
                    http: status,
                    grpc: None,
                });
            }
            let grpc =
                header_number(headers, ABORT_GRPC_HEADER).and_then(|s| u32::try_from(s).ok())?;
            Some(Abort {
                http: 200,
                grpc: Some(grpc),
            })
        }
    }
}

/// Counts the request toward `max_active_faults`, once per request; `false` (and
/// `faults_overflow`) when the limit is reached.
fn try_activate(
    config: &FaultFilter,
    stats: &Arc<FaultStats>,
    active: &mut Option<ActiveFault>,
) -> bool {
    if active.is_some() {
        return true;
    }
    let max = config.max_active_faults.map_or(i64::MAX, i64::from);
    let admitted = stats
        .active_faults
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok();
    if admitted {
        *active = Some(ActiveFault(stats.clone()));
    } else {
        inc(&stats.faults_overflow);
    }
    admitted
}

/// `configured`, with its numerator replaced by the header's when present and valid, capped by
/// the configured numerator (Envoy's `HeaderPercentageProvider`).
fn header_percentage(headers: &HeaderMap, name: &str, configured: Fraction) -> Fraction {
    match header_number(headers, name).and_then(|n| u32::try_from(n).ok()) {
        Some(n) => Fraction {
            numerator: n.min(configured.numerator),
            denominator: configured.denominator,
        },
        None => configured,
    }
}

fn header_number(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}
