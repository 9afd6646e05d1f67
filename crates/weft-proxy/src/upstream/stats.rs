//! Per-cluster counters and gauges, named as Envoy names them (`cluster.<name>.<stat>`).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Defines a stats struct of relaxed atomic counters and gauges with name listings.
#[macro_export]
#[doc(hidden)]
macro_rules! define_stats {
    ($name:ident { counters: [$($c:ident),* $(,)?], gauges: [$($g:ident),* $(,)?] }) => {
        /// Counters (monotonic) and gauges (up and down), all relaxed atomics.
        #[derive(Debug, Default)]
        pub struct $name {
            $(#[doc = concat!("`", stringify!($c), "` counter.")] pub $c: std::sync::atomic::AtomicU64,)*
            $(#[doc = concat!("`", stringify!($g), "` gauge.")] pub $g: std::sync::atomic::AtomicI64,)*
        }

        impl $name {
            /// Every counter as (name, value).
            pub fn counters(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($c), self.$c.load(std::sync::atomic::Ordering::Relaxed)),)*]
            }

            /// Every gauge as (name, value).
            pub fn gauges(&self) -> Vec<(&'static str, i64)> {
                vec![$((stringify!($g), self.$g.load(std::sync::atomic::Ordering::Relaxed)),)*]
            }
        }
    };
}

define_stats!(ClusterStats {
    counters: [
        upstream_cx_total,
        upstream_cx_connect_fail,
        upstream_cx_connect_timeout,
        upstream_cx_destroy,
        upstream_cx_overflow,
        upstream_cx_idle_timeout,
        upstream_rq_total,
        upstream_rq_completed,
        upstream_rq_pending_total,
        upstream_rq_pending_overflow,
        upstream_rq_pending_failure_eject,
        upstream_rq_retry,
        upstream_rq_retry_success,
        upstream_rq_retry_overflow,
        upstream_rq_retry_limit_exceeded,
        upstream_rq_timeout,
        upstream_rq_per_try_timeout,
        upstream_rq_per_try_idle_timeout,
        upstream_rq_rx_reset,
        upstream_rq_2xx,
        upstream_rq_3xx,
        upstream_rq_4xx,
        upstream_rq_5xx,
        upstream_cx_pool_reuse_retry,
        upstream_cx_none_healthy,
        outlier_detection_ejections_total,
        outlier_detection_ejections_enforced_total,
        health_check_attempt,
        health_check_success,
        health_check_failure,
        membership_change,
    ],
    gauges: [
        upstream_cx_active,
        upstream_rq_active,
        upstream_rq_pending_active,
        upstream_rq_retry_active,
        membership_total,
        membership_healthy,
        outlier_detection_ejections_active,
    ]
});

/// Increments a counter.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A gauge held up for as long as the guard lives.
#[derive(Debug)]
pub struct GaugeGuard<'a>(&'a AtomicI64);

impl<'a> GaugeGuard<'a> {
    /// Increments `g` now, decrements it on drop.
    pub fn new(g: &'a AtomicI64) -> Self {
        g.fetch_add(1, Ordering::Relaxed);
        Self(g)
    }
}

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ClusterStats {
    /// Counts a response status in its class.
    pub fn record_status(&self, status: u16) {
        let c = match status {
            200..=299 => &self.upstream_rq_2xx,
            300..=399 => &self.upstream_rq_3xx,
            400..=499 => &self.upstream_rq_4xx,
            _ => &self.upstream_rq_5xx,
        };
        inc(c);
    }
}

pub use crate::define_stats;
