//! `envoy.filters.http.local_ratelimit`: a token bucket per filter configuration (per route
//! configuration when a route overrides it), shared by every connection of the listener.
//!
//! For the `filter_enabled` share of requests the bucket is checked (`enabled`); a request that
//! gets a token passes (`ok`), one that does not is `rate_limited` and, for the
//! `filter_enforced` share, answered locally (`enforced`): the configured status (429 by
//! default), body `local_rate_limited`, plus `response_headers_to_add`, flag `RL`. Without a
//! token bucket nothing is limited.
//!
//! The bucket is Envoy's timer-less one (`AtomicTokenBucket`): it starts full and refills
//! continuously at `tokens_per_fill / fill_interval`, up to `max_tokens`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::Response;
use http::header::{HeaderName, HeaderValue};
use tokio::time::Instant;
use weft_proxy_config::model::{self, LocalRateLimit};
use weft_proxy_lb::RandomSource;

use super::{LOCAL_RATELIMIT_STATS, local_reply_for, registered, sample};
use crate::Body;
use crate::upstream::stats::inc;

crate::upstream::stats::define_stats!(LocalRateLimitStats {
    counters: [enabled, enforced, rate_limited, ok],
    gauges: []
});

/// Body of a rate-limited reply (Envoy's wording).
pub const LIMITED_BODY: &str = "local_rate_limited";

/// The run-time side of one local rate limit configuration: its bucket and stats.
#[derive(Debug)]
pub struct Limiter {
    bucket: Option<TokenBucket>,
    stats: Arc<LocalRateLimitStats>,
}

impl Limiter {
    /// A full bucket for `config` and its stats (`<stat_prefix>.http_local_rate_limit.*`).
    pub fn new(config: &LocalRateLimit) -> Self {
        Self {
            bucket: config.token_bucket.as_ref().and_then(TokenBucket::new),
            stats: registered(
                &LOCAL_RATELIMIT_STATS,
                &format!("{}.http_local_rate_limit", config.stat_prefix),
            ),
        }
    }
}

/// Runs the filter over a request; the reply when it is rate limited and enforced.
pub fn decode(
    config: &LocalRateLimit,
    limiter: &Limiter,
    rng: &mut impl RandomSource,
) -> Option<Response<Body>> {
    let bucket = limiter.bucket.as_ref()?;
    if !sample(config.filter_enabled, rng) {
        return None;
    }
    let stats = &limiter.stats;
    inc(&stats.enabled);
    if bucket.try_consume() {
        inc(&stats.ok);
        return None;
    }
    inc(&stats.rate_limited);
    if !sample(config.filter_enforced, rng) {
        return None;
    }
    inc(&stats.enforced);
    // Envoy uses 429 for a configured status below 400.
    let status = if config.status < 400 {
        429
    } else {
        config.status
    };
    let mut resp = local_reply_for(status, None, LIMITED_BODY);
    for (name, value) in &config.response_headers_to_add {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            resp.headers_mut().append(n, v);
        }
    }
    Some(resp)
}

/// A token bucket that refills continuously, lock-free: it stores the instant at which it was
/// (or would have been) empty, so the tokens available are the time since then times the fill
/// rate, capped at `max_tokens`.
#[derive(Debug)]
pub struct TokenBucket {
    origin: Instant,
    max_tokens: f64,
    /// Tokens per second.
    fill_rate: f64,
    /// Seconds since `origin` at which the bucket was empty, as `f64` bits.
    empty_at: AtomicU64,
}

impl TokenBucket {
    /// A full bucket; `None` when it could never refill (zero `tokens_per_fill` or
    /// `fill_interval`, which configuration validation rejects).
    pub fn new(config: &model::TokenBucket) -> Option<Self> {
        let interval = config.fill_interval.as_secs_f64();
        if interval <= 0.0 || config.tokens_per_fill == 0 {
            return None;
        }
        let fill_rate = f64::from(config.tokens_per_fill) / interval;
        let max_tokens = f64::from(config.max_tokens);
        Some(Self {
            origin: Instant::now(),
            max_tokens,
            fill_rate,
            empty_at: AtomicU64::new((-max_tokens / fill_rate).to_bits()),
        })
    }

    /// Takes a token if one is available now.
    pub fn try_consume(&self) -> bool {
        self.try_consume_at(self.origin.elapsed().as_secs_f64())
    }

    /// Takes a token if one is available `now` seconds after the bucket was created.
    pub fn try_consume_at(&self, now: f64) -> bool {
        let mut current = self.empty_at.load(Ordering::Acquire);
        loop {
            let tokens = ((now - f64::from_bits(current)) * self.fill_rate).min(self.max_tokens);
            // The epsilon keeps float rounding from losing a token that just refilled.
            if tokens + 1e-9 < 1.0 {
                return false;
            }
            let next = now - (tokens - 1.0).max(0.0) / self.fill_rate;
            match self.empty_at.compare_exchange_weak(
                current,
                next.to_bits(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }
}
