//! A bounded load loop for "zero failed requests during reload" tests and quick benchmarks.
//!
//! It stops by itself: after `requests` requests or at `max_duration`, whichever comes first.
//! Each worker keeps one keep-alive connection and opens a new one only when the old one is
//! closed; a request that fails on a reused connection (the upstream closed it at that moment)
//! counts as failed, which is exactly what such tests must see.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::client::{HttpConnection, HttpVersion};
use crate::io::ClientTls;

/// What [`load_with`] sends.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Where to connect.
    pub addr: SocketAddr,
    /// `Host` / `:authority`.
    pub host: String,
    /// Path of every request.
    pub path: String,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// HTTP version.
    pub version: HttpVersion,
    /// TLS, if any.
    pub tls: Option<ClientTls>,
    /// Total requests to send.
    pub requests: usize,
    /// Concurrent workers (each with its own connection).
    pub concurrency: usize,
    /// Total requests per second across workers; `None` for as fast as possible.
    pub rate: Option<u32>,
    /// Hard stop: requests not started by then are counted in [`LoadReport::not_sent`].
    pub max_duration: Duration,
    /// Timeout of each request.
    pub request_timeout: Duration,
}

impl LoadConfig {
    /// `requests` GETs of `/` (host `localhost`) over HTTP/1.1, as fast as possible, with
    /// `concurrency` workers, at most 60 s in total and 10 s per request.
    pub fn new(addr: SocketAddr, requests: usize, concurrency: usize) -> Self {
        Self {
            addr,
            host: "localhost".to_owned(),
            path: "/".to_owned(),
            headers: Vec::new(),
            version: HttpVersion::Http1,
            tls: None,
            requests,
            concurrency,
            rate: None,
            max_duration: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// What happened during a [`load`] run.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Responses with a 2xx status.
    pub ok: usize,
    /// Requests that got a non-2xx status or no response.
    pub failed: usize,
    /// Requests never started because `max_duration` passed.
    pub not_sent: usize,
    /// Responses per status code.
    pub statuses: BTreeMap<u16, usize>,
    /// Requests without a response, per error message.
    pub errors: BTreeMap<String, usize>,
    /// Responses per `x-served-by` (load-balancing spread).
    pub served_by: BTreeMap<String, usize>,
    /// Latency of every request that got a response, in completion order.
    pub latencies: Vec<Duration>,
    /// Connections opened.
    pub connections: usize,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl LoadReport {
    /// The `p`-th latency percentile (0.0..=100.0); zero without responses.
    pub fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
        sorted[rank.min(sorted.len() - 1)]
    }

    /// Requests sent (`ok + failed`).
    pub fn total(&self) -> usize {
        self.ok + self.failed
    }
}

/// Sends `requests` GETs of `/` to `addr` over HTTP/1.1 with `concurrency` workers at `rate`
/// requests per second in total (`None`: unthrottled), stopping after 60 s at the latest.
pub async fn load(
    addr: SocketAddr,
    requests: usize,
    concurrency: usize,
    rate: Option<u32>,
) -> LoadReport {
    let mut config = LoadConfig::new(addr, requests, concurrency);
    config.rate = rate;
    load_with(config).await
}

/// [`load`] with every knob.
pub async fn load_with(config: LoadConfig) -> LoadReport {
    let config = Arc::new(config);
    let start = Instant::now();
    let deadline = start + config.max_duration;
    let next = Arc::new(AtomicUsize::new(0));
    let report = Arc::new(Mutex::new(LoadReport::default()));
    let workers: Vec<_> = (0..config.concurrency.max(1))
        .map(|_| {
            tokio::spawn(worker(
                config.clone(),
                start,
                deadline,
                next.clone(),
                report.clone(),
            ))
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    let mut report = std::mem::take(&mut *report.lock());
    report.not_sent = config.requests.saturating_sub(report.total());
    report.elapsed = start.elapsed();
    report
}

async fn worker(
    config: Arc<LoadConfig>,
    start: Instant,
    deadline: Instant,
    next: Arc<AtomicUsize>,
    report: Arc<Mutex<LoadReport>>,
) {
    let headers: Vec<(&str, &str)> = config
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut conn: Option<HttpConnection> = None;
    loop {
        let i = next.fetch_add(1, Ordering::SeqCst);
        if i >= config.requests {
            return;
        }
        if let Some(rate) = config.rate.filter(|r| *r > 0) {
            let at = start + Duration::from_secs_f64(i as f64 / f64::from(rate));
            if at >= deadline {
                return;
            }
            tokio::time::sleep_until(at).await;
        }
        if Instant::now() >= deadline {
            return;
        }
        if conn.as_ref().is_some_and(HttpConnection::is_closed) {
            conn = None;
        }
        let began = Instant::now();
        let timeout = config.request_timeout.min(deadline - began);
        let result = tokio::time::timeout(timeout, async {
            if conn.is_none() {
                conn = Some(match &config.tls {
                    None => HttpConnection::connect(config.addr, config.version).await?,
                    Some(tls) => {
                        HttpConnection::connect_tls(config.addr, config.version, tls).await?
                    }
                });
                report.lock().connections += 1;
            }
            match conn.as_mut() {
                Some(c) => c.get(&config.host, &config.path, &headers).await,
                None => Err("no connection".into()),
            }
        })
        .await;
        let latency = began.elapsed();
        let mut r = report.lock();
        match result {
            Ok(Ok(resp)) => {
                *r.statuses.entry(resp.status.as_u16()).or_default() += 1;
                if let Some(name) = resp.served_by() {
                    *r.served_by.entry(name.to_owned()).or_default() += 1;
                }
                if resp.status.is_success() {
                    r.ok += 1;
                } else {
                    r.failed += 1;
                }
                r.latencies.push(latency);
            }
            Ok(Err(e)) => {
                r.failed += 1;
                *r.errors.entry(e.to_string()).or_default() += 1;
                conn = None;
            }
            Err(_) => {
                r.failed += 1;
                *r.errors.entry("timeout".to_owned()).or_default() += 1;
                conn = None;
            }
        }
    }
}
