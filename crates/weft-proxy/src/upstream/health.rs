//! Active health checking (`health_checks`): HTTP (`GET path`, expected statuses) and TCP
//! (connect, send, expect) checks of every host of a cluster, as Envoy runs them.
//!
//! - A host starts as failing active health checking (`FAILED_ACTIVE_HC`), so it takes no traffic
//!   until its first check passes; that first success counts at once, whatever
//!   `healthy_threshold` says. [`HealthChecker::start`] waits for every host's first check, as
//!   Envoy warms a cluster before using it.
//! - Afterwards a healthy host turns unhealthy after `unhealthy_threshold` consecutive failures,
//!   and an unhealthy one healthy after `healthy_threshold` consecutive successes.
//! - An HTTP answer outside `expected_statuses` (default `[200, 201)`) fails the host at once,
//!   whatever the threshold; timeouts and connection failures count toward it. TCP failures all
//!   count toward it.
//! - Each host is checked on its own timer, with Envoy's interval choice (see [`Intervals`]).
//!   A host an update adds, or replaces (its locality or health check address changed), gets
//!   checks of its own and takes no traffic until they pass; a host that stays keeps its checks.
//! - HTTP checks keep their connection between checks (`reuse_connection`, default true) unless
//!   the host answers `connection: close` or the check fails; TCP checks connect every time.
//! - Health check connections use the cluster's TLS but are not counted in `upstream_cx_*`, so a
//!   cluster that has only been health checked still counts as without traffic.
//!
//! Envoy runs only the first of a cluster's health checks (it rejects more); so does weft.
//! Stats: `health_check.attempt`, `.success`, `.failure` on the cluster
//! (`health_check_attempt`...).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, HOST, USER_AGENT};
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use weft_proxy_config::model::{HealthCheck, HealthCheckKind};

use super::cluster::{ClusterRuntime, HostRuntime, health_flags};
use super::stats::inc;
use crate::io::ClientStream;
use crate::tls::ClientTlsHandle;

/// `user-agent` of HTTP health checks (Envoy's).
pub const USER_AGENT_VALUE: &str = "Envoy/HC";

/// Most bytes a TCP check reads while waiting for its expected payloads.
const TCP_RECEIVE_LIMIT: usize = 64 * 1024;

/// A cluster's active health checker. Its per-host sessions end on their own when their host
/// leaves the cluster or the cluster is dropped.
#[derive(Debug, Clone)]
pub struct HealthChecker {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    cluster: Weak<ClusterRuntime>,
    check: HealthCheck,
    intervals: Intervals,
    /// The host each running session checks, by address.
    sessions: Mutex<HashMap<SocketAddr, Weak<HostRuntime>>>,
}

impl HealthChecker {
    /// Starts health checking `cluster` with its first health check, if it has one, and returns
    /// once every host has had its first check (each bounded by the check's `timeout`).
    pub async fn start(cluster: &Arc<ClusterRuntime>) -> Option<Self> {
        let (check, more) = {
            let checks = &cluster.shared.config().health_checks;
            (checks.first()?.clone(), checks.len() > 1)
        };
        if more {
            tracing::warn!(
                cluster = cluster.name(),
                "only the first health check runs (Envoy does not support more)"
            );
        }
        let checker = Self {
            shared: Arc::new(Shared {
                cluster: Arc::downgrade(cluster),
                intervals: Intervals::from_model(&check),
                check,
                sessions: Mutex::new(HashMap::new()),
            }),
        };
        let first_checks = checker.adopt_new_hosts(cluster);
        // Each first check ends within `timeout`; the margin covers scheduling only.
        let warm = checker.shared.check.timeout + Duration::from_secs(1);
        let _ = tokio::time::timeout(warm, futures_util::future::join_all(first_checks)).await;
        Some(checker)
    }

    /// Starts checking hosts that joined the cluster (after DNS resolution or an EDS update):
    /// they fail active health checking until their first check passes.
    pub fn sync_hosts(&self, cluster: &ClusterRuntime) {
        drop(self.adopt_new_hosts(cluster));
    }

    /// Marks hosts without a session as failing, starts their sessions, and returns a receiver
    /// per new host that fires after its first check. A host replaced under the same address
    /// gets a session of its own; the old host's session ends at its next check.
    fn adopt_new_hosts(&self, cluster: &ClusterRuntime) -> Vec<oneshot::Receiver<()>> {
        let set = cluster.host_set();
        let mut fresh = Vec::new();
        {
            let mut sessions = self.shared.sessions.lock();
            for h in &set.hosts {
                let checked = sessions
                    .get(&h.address)
                    .is_some_and(|s| std::ptr::eq(s.as_ptr(), Arc::as_ptr(h)));
                if !checked {
                    sessions.insert(h.address, Arc::downgrade(h));
                    h.flags
                        .fetch_or(health_flags::FAILED_ACTIVE_HC, Ordering::Relaxed);
                    fresh.push(h.clone());
                }
            }
        }
        if fresh.is_empty() {
            return Vec::new();
        }
        cluster.health_changed();
        fresh
            .into_iter()
            .map(|host| {
                let (tx, rx) = oneshot::channel();
                let session = Session {
                    shared: self.shared.clone(),
                    address: host.address,
                    host: Arc::downgrade(&host),
                    target: host.health_check_address(),
                    host_header: host_header(&self.shared.check, cluster.name()),
                    tls: cluster.shared.tls.clone(),
                    health: HostHealth::new(),
                    connection: None,
                };
                tokio::spawn(session.run(tx));
                rx
            })
            .collect()
    }
}

/// The result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckResult {
    /// The host passed.
    Success,
    /// The host failed. `immediate` failures (an unexpected HTTP status) ignore
    /// `unhealthy_threshold`.
    Failure {
        /// Whether the failure marks the host unhealthy at once.
        immediate: bool,
    },
}

/// How a check changed a host's health (Envoy's `HealthTransition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// No change.
    Unchanged,
    /// Moving toward a change that a threshold has not allowed yet.
    ChangePending,
    /// Healthy became unhealthy or back.
    Changed,
}

/// One host's health as active health checking sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostHealth {
    /// Whether the host passes.
    pub healthy: bool,
    successes: u32,
    failures: u32,
    first_check: bool,
}

impl Default for HostHealth {
    fn default() -> Self {
        Self::new()
    }
}

impl HostHealth {
    /// A host not checked yet: failing.
    pub fn new() -> Self {
        Self {
            healthy: false,
            successes: 0,
            failures: 0,
            first_check: true,
        }
    }

    /// Records a check result (Envoy's `handleSuccess` / `setUnhealthy`). Thresholds of 0 act
    /// as 1.
    pub fn record(
        &mut self,
        result: CheckResult,
        healthy_threshold: u32,
        unhealthy_threshold: u32,
    ) -> Transition {
        let first = std::mem::replace(&mut self.first_check, false);
        match result {
            CheckResult::Success => {
                self.failures = 0;
                if self.healthy {
                    return Transition::Unchanged;
                }
                self.successes += 1;
                if first || self.successes >= healthy_threshold.max(1) {
                    self.healthy = true;
                    Transition::Changed
                } else {
                    Transition::ChangePending
                }
            }
            CheckResult::Failure { immediate } => {
                self.successes = 0;
                if !self.healthy {
                    return Transition::Unchanged;
                }
                self.failures += 1;
                if immediate || self.failures >= unhealthy_threshold.max(1) {
                    self.healthy = false;
                    Transition::Changed
                } else {
                    Transition::ChangePending
                }
            }
        }
    }
}

/// The waits between checks (Envoy's `HealthCheckerImplBase::interval`): `no_traffic` while the
/// cluster has never opened a connection for traffic; otherwise `interval` for healthy hosts,
/// `unhealthy` for unhealthy ones, and the `*_edge` intervals while a threshold holds back a
/// change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intervals {
    /// Healthy hosts.
    pub interval: Duration,
    /// Before the cluster's first traffic (`no_traffic_interval`).
    pub no_traffic: Duration,
    /// Unhealthy hosts (`unhealthy_interval`).
    pub unhealthy: Duration,
    /// Unhealthy hosts on their way back (`unhealthy_edge_interval`).
    pub unhealthy_edge: Duration,
    /// Healthy hosts on their way out (`healthy_edge_interval`).
    pub healthy_edge: Duration,
}

impl Intervals {
    /// The intervals of `check`. The model carries only `interval`: Envoy defaults the
    /// unhealthy and edge intervals to it, and `no_traffic_interval` to 60s, which weft cannot
    /// tell from an explicit setting, so it uses `interval` there too until the model carries
    /// the field.
    pub fn from_model(check: &HealthCheck) -> Self {
        Self {
            interval: check.interval,
            no_traffic: check.interval,
            unhealthy: check.interval,
            unhealthy_edge: check.interval,
            healthy_edge: check.interval,
        }
    }

    /// The wait after a check that left the host `healthy` through `transition`.
    pub fn next(&self, healthy: bool, transition: Transition, had_traffic: bool) -> Duration {
        let pending = transition == Transition::ChangePending;
        match (had_traffic, healthy, pending) {
            (false, _, _) => self.no_traffic,
            // Pending means an unhealthy host on its way back.
            (true, false, true) => self.unhealthy_edge,
            (true, false, false) => self.unhealthy,
            (true, true, true) => self.healthy_edge,
            (true, true, false) => self.interval,
        }
    }
}

/// Whether every payload of `expected` appears in `received`, in order (Envoy's TCP matcher).
pub fn payloads_match(expected: &[Vec<u8>], received: &[u8]) -> bool {
    let mut rest = received;
    for want in expected {
        if want.is_empty() {
            continue;
        }
        match rest.windows(want.len()).position(|w| w == want.as_slice()) {
            Some(i) => rest = &rest[i + want.len()..],
            None => return false,
        }
    }
    true
}

/// Whether `status` is in one of the `[start, end)` ranges (default `[200, 201)`).
pub fn status_expected(ranges: &[(u16, u16)], status: u16) -> bool {
    if ranges.is_empty() {
        return status == 200;
    }
    ranges.iter().any(|(s, e)| (*s..*e).contains(&status))
}

/// Where to check `host`: its endpoint's `health_check_port` when set.
fn host_header(check: &HealthCheck, cluster: &str) -> Option<HeaderValue> {
    match &check.kind {
        HealthCheckKind::Http { host, .. } => {
            let host = if host.is_empty() { cluster } else { host };
            HeaderValue::from_str(host).ok()
        }
        HealthCheckKind::Tcp { .. } => None,
    }
}

/// The checks of one host.
struct Session {
    shared: Arc<Shared>,
    address: SocketAddr,
    /// The host checked; the session ends when it leaves the cluster.
    host: Weak<HostRuntime>,
    target: SocketAddr,
    host_header: Option<HeaderValue>,
    tls: Option<Arc<ClientTlsHandle>>,
    health: HostHealth,
    /// The HTTP connection kept between checks.
    connection: Option<http1::SendRequest<Empty<Bytes>>>,
}

impl Session {
    async fn run(mut self, first_check: oneshot::Sender<()>) {
        let mut first_check = Some(first_check);
        while let Some(wait) = self.check_once().await {
            if let Some(tx) = first_check.take() {
                let _ = tx.send(());
            }
            tokio::time::sleep(wait).await;
        }
        let mut sessions = self.shared.sessions.lock();
        if sessions
            .get(&self.address)
            .is_some_and(|s| s.ptr_eq(&self.host))
        {
            sessions.remove(&self.address);
        }
    }

    /// Runs one check and applies it; the wait before the next, or `None` when the host or the
    /// cluster is gone.
    async fn check_once(&mut self) -> Option<Duration> {
        {
            let cluster = self.shared.cluster.upgrade()?;
            inc(&cluster.shared.stats.health_check_attempt);
        }
        let shared = self.shared.clone();
        let result = match &shared.check.kind {
            HealthCheckKind::Http {
                path,
                expected_statuses,
                ..
            } => self.check_http(path, expected_statuses).await,
            HealthCheckKind::Tcp { send, receive } => self.check_tcp(send, receive).await,
        };
        let cluster = self.shared.cluster.upgrade()?;
        let host = self.host.upgrade()?;
        if !cluster
            .host_set()
            .hosts
            .iter()
            .any(|h| Arc::ptr_eq(h, &host))
        {
            return None;
        }
        let stats = &cluster.shared.stats;
        inc(match result {
            CheckResult::Success => &stats.health_check_success,
            CheckResult::Failure { .. } => &stats.health_check_failure,
        });
        let check = &self.shared.check;
        let transition =
            self.health
                .record(result, check.healthy_threshold, check.unhealthy_threshold);
        // Set the flag from the session's view every time, whatever happened to it meanwhile.
        let failed = !self.health.healthy;
        let flagged = host.flags.load(Ordering::Relaxed) & health_flags::FAILED_ACTIVE_HC != 0;
        if failed != flagged {
            if failed {
                host.flags
                    .fetch_or(health_flags::FAILED_ACTIVE_HC, Ordering::Relaxed);
            } else {
                host.flags
                    .fetch_and(!health_flags::FAILED_ACTIVE_HC, Ordering::Relaxed);
            }
            tracing::info!(
                cluster = cluster.name(),
                host = %self.address,
                healthy = !failed,
                "active health check: host health changed"
            );
            cluster.health_changed();
        }
        let had_traffic = stats.upstream_cx_total.load(Ordering::Relaxed) > 0;
        Some(
            self.shared
                .intervals
                .next(self.health.healthy, transition, had_traffic),
        )
    }

    async fn check_http(&mut self, path: &str, expected: &[(u16, u16)]) -> CheckResult {
        let timeout = self.shared.check.timeout;
        let attempt = async {
            let mut sender = match self.connection.take() {
                Some(s) if !s.is_closed() => s,
                _ => {
                    let io = open(self.target, self.tls.as_deref()).await?;
                    let (sender, conn) = http1::handshake(TokioIo::new(io)).await?;
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    sender
                }
            };
            sender.ready().await?;
            let mut req = Request::get(path).body(Empty::<Bytes>::new())?;
            if let Some(h) = &self.host_header {
                req.headers_mut().insert(HOST, h.clone());
            }
            req.headers_mut()
                .insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
            let resp = sender.send_request(req).await?;
            let status = resp.status().as_u16();
            let close = resp
                .headers()
                .get(CONNECTION)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
            // Read the body so the connection can carry the next check.
            resp.into_body().collect().await?;
            if !close {
                self.connection = Some(sender);
            }
            Ok::<_, crate::BoxError>(status)
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(status)) if status_expected(expected, status) => CheckResult::Success,
            Ok(Ok(_)) => CheckResult::Failure { immediate: true },
            Ok(Err(e)) => {
                tracing::debug!(host = %self.target, error = %e, "HTTP health check failed");
                CheckResult::Failure { immediate: false }
            }
            Err(_) => CheckResult::Failure { immediate: false },
        }
    }

    async fn check_tcp(&self, send: &[u8], receive: &[Vec<u8>]) -> CheckResult {
        let attempt = async {
            let mut io = open(self.target, self.tls.as_deref()).await?;
            if !send.is_empty() {
                io.write_all(send).await?;
            }
            let mut received = Vec::new();
            let mut chunk = [0u8; 4096];
            while !payloads_match(receive, &received) {
                let n = io.read(&mut chunk).await?;
                if n == 0 || received.len() + n > TCP_RECEIVE_LIMIT {
                    return Ok(false);
                }
                received.extend_from_slice(&chunk[..n]);
            }
            let _ = io.shutdown().await;
            Ok::<_, std::io::Error>(true)
        };
        match tokio::time::timeout(self.shared.check.timeout, attempt).await {
            Ok(Ok(true)) => CheckResult::Success,
            _ => CheckResult::Failure { immediate: false },
        }
    }
}

/// A health check connection: TCP, then TLS when the cluster originates it.
async fn open(target: SocketAddr, tls: Option<&ClientTlsHandle>) -> std::io::Result<ClientStream> {
    let tcp = TcpStream::connect(target).await?;
    let _ = tcp.set_nodelay(true);
    match tls {
        None => Ok(ClientStream::Plain(tcp)),
        Some(t) => Ok(ClientStream::Tls(Box::new(
            t.connect(target.ip(), tcp).await?,
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: CheckResult = CheckResult::Success;
    const FAIL: CheckResult = CheckResult::Failure { immediate: false };
    const BAD_STATUS: CheckResult = CheckResult::Failure { immediate: true };

    #[test]
    fn the_first_success_makes_a_new_host_healthy_at_once() {
        let mut h = HostHealth::new();
        assert!(!h.healthy);
        assert_eq!(h.record(OK, 3, 3), Transition::Changed);
        assert!(h.healthy);
        assert_eq!(h.record(OK, 3, 3), Transition::Unchanged);
    }

    #[test]
    fn a_first_failure_keeps_the_host_out_until_the_threshold() {
        let mut h = HostHealth::new();
        assert_eq!(h.record(FAIL, 2, 2), Transition::Unchanged);
        assert!(!h.healthy);
        assert_eq!(h.record(OK, 2, 2), Transition::ChangePending);
        assert_eq!(h.record(OK, 2, 2), Transition::Changed);
        assert!(h.healthy);
    }

    #[test]
    fn failures_count_toward_unhealthy_threshold_and_reset_on_success() {
        let mut h = HostHealth::new();
        h.record(OK, 1, 3);
        assert_eq!(h.record(FAIL, 1, 3), Transition::ChangePending);
        assert_eq!(h.record(FAIL, 1, 3), Transition::ChangePending);
        assert_eq!(h.record(OK, 1, 3), Transition::Unchanged);
        assert_eq!(h.record(FAIL, 1, 3), Transition::ChangePending);
        assert_eq!(h.record(FAIL, 1, 3), Transition::ChangePending);
        assert_eq!(h.record(FAIL, 1, 3), Transition::Changed);
        assert!(!h.healthy);
        assert_eq!(h.record(FAIL, 1, 3), Transition::Unchanged);
    }

    #[test]
    fn an_unexpected_status_fails_the_host_at_once() {
        let mut h = HostHealth::new();
        h.record(OK, 1, 5);
        assert_eq!(h.record(BAD_STATUS, 1, 5), Transition::Changed);
        assert!(!h.healthy);
    }

    #[test]
    fn a_failure_restarts_the_way_back() {
        let mut h = HostHealth::new();
        h.record(FAIL, 3, 1);
        h.record(OK, 3, 1);
        h.record(OK, 3, 1);
        h.record(FAIL, 3, 1);
        assert_eq!(h.record(OK, 3, 1), Transition::ChangePending);
        assert_eq!(h.record(OK, 3, 1), Transition::ChangePending);
        assert_eq!(h.record(OK, 3, 1), Transition::Changed);
    }

    #[test]
    fn intervals_follow_envoys_choice() {
        let ms = Duration::from_millis;
        let i = Intervals {
            interval: ms(1),
            no_traffic: ms(2),
            unhealthy: ms(3),
            unhealthy_edge: ms(4),
            healthy_edge: ms(5),
        };
        assert_eq!(i.next(true, Transition::Unchanged, false), ms(2));
        assert_eq!(i.next(false, Transition::ChangePending, false), ms(2));
        assert_eq!(i.next(true, Transition::Unchanged, true), ms(1));
        assert_eq!(i.next(true, Transition::Changed, true), ms(1));
        assert_eq!(i.next(true, Transition::ChangePending, true), ms(5));
        assert_eq!(i.next(false, Transition::Unchanged, true), ms(3));
        assert_eq!(i.next(false, Transition::ChangePending, true), ms(4));
    }

    #[test]
    fn tcp_payloads_must_all_appear_in_order() {
        let want = vec![b"PO".to_vec(), b"NG".to_vec()];
        assert!(payloads_match(&want, b"xxPONG\n"));
        assert!(payloads_match(&want, b"PO...NG"));
        assert!(!payloads_match(&want, b"NGPO"));
        assert!(!payloads_match(&want, b"PO"));
        assert!(payloads_match(&[], b""));
    }

    #[test]
    fn expected_statuses_default_to_200() {
        assert!(status_expected(&[], 200));
        assert!(!status_expected(&[], 204));
        assert!(status_expected(&[(200, 300)], 204));
        assert!(!status_expected(&[(200, 300)], 300));
        assert!(status_expected(&[(200, 201), (404, 405)], 404));
    }

    #[test]
    fn health_check_port_overrides_the_endpoint_port() {
        use weft_proxy_config::model::*;
        let endpoint = |address, health_check_port| Endpoint {
            address,
            weight: 1,
            health: Default::default(),
            hostname: String::new(),
            health_check_port,
        };
        let cluster = |discovery, endpoints| Cluster {
            discovery,
            localities: vec![LocalityEndpoints {
                locality: Default::default(),
                priority: 0,
                weight: None,
                endpoints,
            }],
            ..crate::upstream::test_cluster()
        };
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let other: SocketAddr = "127.0.0.2:8080".parse().unwrap();
        let rt = ClusterRuntime::new(
            Arc::new(cluster(
                Discovery::Static,
                vec![
                    endpoint(EndpointAddress::Socket(addr), Some(9090)),
                    endpoint(EndpointAddress::Socket(other), None),
                ],
            )),
            None,
        );
        let targets: Vec<SocketAddr> = rt
            .host_set()
            .hosts
            .iter()
            .map(|h| h.health_check_address())
            .collect();
        assert_eq!(targets, ["127.0.0.1:9090".parse().unwrap(), other]);

        // Each resolved address of a DNS endpoint is checked at its own IP.
        let dns = EndpointAddress::Dns {
            host: "backend".into(),
            port: 8080,
        };
        let rt = ClusterRuntime::new(
            Arc::new(cluster(
                Discovery::StrictDns,
                vec![endpoint(dns, Some(9090))],
            )),
            None,
        );
        rt.set_resolved(&[vec![addr, other]]);
        let targets: Vec<SocketAddr> = rt
            .host_set()
            .hosts
            .iter()
            .map(|h| h.health_check_address())
            .collect();
        assert_eq!(
            targets,
            [
                "127.0.0.1:9090".parse().unwrap(),
                "127.0.0.2:9090".parse::<SocketAddr>().unwrap()
            ]
        );
    }
}
