//! Passive health checking (`outlier_detection`): consecutive 5xx, consecutive gateway errors,
//! consecutive locally originated failures, and success-rate ejection, with Envoy's ejection
//! arithmetic (`base_ejection_time × ejections`, capped; `max_ejection_percent`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use weft_proxy_config::model::OutlierDetection;

use super::cluster::{ClusterRuntime, HostRuntime, health_flags};
use super::stats::inc;
use crate::error::UpstreamError;

/// Records a response status from `host`.
pub fn report_status(cluster: &ClusterRuntime, host: &Arc<HostRuntime>, status: u16) {
    let config = cluster.shared.config();
    let Some(od) = config.outlier_detection.as_ref() else {
        return;
    };
    let eject = {
        let mut st = host.outlier.lock();
        st.interval_requests += 1;
        if status >= 500 {
            st.consecutive_5xx += 1;
            if (502..=504).contains(&status) {
                st.consecutive_gateway += 1;
            } else {
                st.consecutive_gateway = 0;
            }
        } else {
            st.interval_successes += 1;
            st.consecutive_5xx = 0;
            st.consecutive_gateway = 0;
            if !od.split_external_local_origin_errors {
                st.consecutive_local = 0;
            }
        }
        tripped(od, st.consecutive_5xx, st.consecutive_gateway, 0)
    };
    if let Some(enforcing) = eject {
        eject_host(cluster, host, od, enforcing);
    }
}

/// Records a locally originated failure (connect failure, reset, timeout) on `host`.
pub fn report_local_failure(
    cluster: &ClusterRuntime,
    host: &Arc<HostRuntime>,
    err: &UpstreamError,
) {
    let config = cluster.shared.config();
    let Some(od) = config.outlier_detection.as_ref() else {
        return;
    };
    if matches!(
        err,
        UpstreamError::Overflow(_) | UpstreamError::NoHealthyHost
    ) {
        return;
    }
    let eject = {
        let mut st = host.outlier.lock();
        st.interval_requests += 1;
        if od.split_external_local_origin_errors {
            st.consecutive_local += 1;
            tripped(od, 0, 0, st.consecutive_local)
        } else {
            // Without the split, Envoy counts a local failure as a 503 (a gateway error).
            st.consecutive_5xx += 1;
            st.consecutive_gateway += 1;
            tripped(od, st.consecutive_5xx, st.consecutive_gateway, 0)
        }
    };
    if let Some(enforcing) = eject {
        eject_host(cluster, host, od, enforcing);
    }
}

/// Which detector tripped, as its enforcement percentage.
fn tripped(od: &OutlierDetection, c5xx: u32, gateway: u32, local: u32) -> Option<u32> {
    if od.consecutive_5xx > 0 && c5xx >= od.consecutive_5xx {
        Some(od.enforcing_consecutive_5xx)
    } else if od.consecutive_gateway_failure > 0 && gateway >= od.consecutive_gateway_failure {
        Some(od.enforcing_consecutive_gateway_failure)
    } else if od.consecutive_local_origin_failure > 0
        && local >= od.consecutive_local_origin_failure
    {
        Some(od.enforcing_consecutive_local_origin_failure)
    } else {
        None
    }
}

fn eject_host(
    cluster: &ClusterRuntime,
    host: &Arc<HostRuntime>,
    od: &OutlierDetection,
    enforcing: u32,
) {
    let stats = &cluster.shared.stats;
    inc(&stats.outlier_detection_ejections_total);
    if host.flags.load(Ordering::Relaxed) & health_flags::OUTLIER_EJECTED != 0 {
        return;
    }
    if enforcing < 100 && (crate::upstream::cluster::random_percent() >= enforcing) {
        return;
    }
    let set = cluster.host_set();
    let total = set.hosts.len().max(1);
    let ejected = set
        .hosts
        .iter()
        .filter(|h| h.flags.load(Ordering::Relaxed) & health_flags::OUTLIER_EJECTED != 0)
        .count();
    // Envoy ejects only while the ejected share is below max_ejection_percent.
    if ejected * 100 >= total * od.max_ejection_percent as usize {
        return;
    }
    {
        let mut st = host.outlier.lock();
        st.ejections += 1;
        let time = od
            .base_ejection_time
            .saturating_mul(st.ejections)
            .min(od.max_ejection_time.max(od.base_ejection_time));
        st.ejected_until = Some(Instant::now() + time);
        st.consecutive_5xx = 0;
        st.consecutive_gateway = 0;
        st.consecutive_local = 0;
    }
    host.flags
        .fetch_or(health_flags::OUTLIER_EJECTED, Ordering::Relaxed);
    inc(&stats.outlier_detection_ejections_enforced_total);
    stats
        .outlier_detection_ejections_active
        .fetch_add(1, Ordering::Relaxed);
    tracing::info!(cluster = cluster.name(), host = %host.address, "outlier detection: host ejected");
    cluster.health_changed();
}

/// The periodic part: un-ejects hosts whose time is up and runs success-rate ejection.
/// Called every `interval`.
pub fn interval_tick(cluster: &ClusterRuntime) {
    let config = cluster.shared.config();
    let Some(od) = config.outlier_detection.as_ref() else {
        return;
    };
    let set = cluster.host_set();
    let now = Instant::now();
    let mut changed = false;
    for h in &set.hosts {
        let mut st = h.outlier.lock();
        if st.ejected_until.is_some_and(|t| t <= now) {
            st.ejected_until = None;
            drop(st);
            h.flags
                .fetch_and(!health_flags::OUTLIER_EJECTED, Ordering::Relaxed);
            cluster
                .shared
                .stats
                .outlier_detection_ejections_active
                .fetch_sub(1, Ordering::Relaxed);
            changed = true;
        }
    }
    success_rate(cluster, od, &set.hosts);
    for h in &set.hosts {
        let mut st = h.outlier.lock();
        st.interval_requests = 0;
        st.interval_successes = 0;
    }
    if changed {
        cluster.health_changed();
    }
}

/// Envoy's success-rate detection: hosts with enough requests whose success rate is below
/// `mean - stdev × factor` are ejected.
fn success_rate(cluster: &ClusterRuntime, od: &OutlierDetection, hosts: &[Arc<HostRuntime>]) {
    let rates: Vec<(usize, f64)> = hosts
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            let st = h.outlier.lock();
            (st.interval_requests >= u64::from(od.success_rate_request_volume)
                && st.interval_requests > 0)
                .then(|| {
                    (
                        i,
                        st.interval_successes as f64 * 100.0 / st.interval_requests as f64,
                    )
                })
        })
        .collect();
    if rates.len() < od.success_rate_minimum_hosts as usize || rates.is_empty() {
        return;
    }
    let n = rates.len() as f64;
    let mean = rates.iter().map(|(_, r)| r).sum::<f64>() / n;
    let var = rates.iter().map(|(_, r)| (r - mean).powi(2)).sum::<f64>() / n;
    let threshold = mean - var.sqrt() * (f64::from(od.success_rate_stdev_factor) / 1000.0);
    for (i, rate) in rates {
        if rate < threshold
            && let Some(h) = hosts.get(i)
        {
            eject_host(cluster, h, od, od.enforcing_success_rate);
        }
    }
}
