//! The ADS stream: connect, subscribe, apply, and reconnect with backoff when the control plane
//! goes away, serving the last good configuration meanwhile.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use tokio::sync::{mpsc, watch};
use weft_proxy::Proxy;
use weft_proxy_config::ConfigError;

use crate::state::{Outcome, XdsState};
use crate::stats::XdsStats;

/// Jittered exponential backoff between connection attempts: the n-th wait is drawn uniformly
/// from [d/2, d] where d = min(base · 2ⁿ, cap), so many proxies losing one control plane do
/// not come back in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// Envoy's defaults for xDS streams: 500 ms, at most 30 s.
    pub fn envoy() -> Self {
        Self::new(Duration::from_millis(500), Duration::from_secs(30))
    }

    /// A backoff starting at `base`, never above `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The next wait.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32.checked_shl(self.attempt.min(30)).unwrap_or(u32::MAX))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        ceiling.mul_f64(rand::random_range(0.5..=1.0))
    }

    /// Back to `base` (after a stream that worked).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// How a stream ended.
enum StreamEnd {
    /// Shutdown was asked for.
    Shutdown,
    /// The stream broke or could not be opened; `worked` when it delivered a response.
    Lost { worked: bool, why: String },
}

/// The xDS client of one proxy.
#[derive(Debug)]
pub struct AdsClient {
    proxy: Arc<Proxy>,
    state: XdsState,
    stats: Arc<XdsStats>,
    initialized: watch::Sender<bool>,
    running: watch::Sender<Arc<weft_proxy_config::DynamicDump>>,
}

impl AdsClient {
    /// A client for `bootstrap` (which must configure ADS) driving `proxy`. Its counters are
    /// added to the proxy's `/stats`. `base_dir` resolves relative file names in resources.
    pub fn new(
        proxy: Arc<Proxy>,
        bootstrap: Bootstrap,
        base_dir: PathBuf,
    ) -> Result<Self, ConfigError> {
        let stats = Arc::new(XdsStats::default());
        let state = XdsState::new(bootstrap, base_dir, Instant::now(), stats.clone())?;
        let exported = stats.clone();
        proxy.add_stat_source(Arc::new(move || exported.export()));
        let (initialized, _) = watch::channel(false);
        let (running, _) = watch::channel(Arc::default());
        Ok(AdsClient {
            proxy,
            state,
            stats,
            initialized,
            running,
        })
    }

    /// What runs from the control plane (updated after every applied configuration), for
    /// the admin `/config_dump`.
    pub fn running(&self) -> watch::Receiver<Arc<weft_proxy_config::DynamicDump>> {
        self.running.subscribe()
    }

    /// The client's counters.
    pub fn stats(&self) -> Arc<XdsStats> {
        self.stats.clone()
    }

    /// Turns true once the initial fetch is over: the first CDS and LDS responses applied
    /// (their clusters and listeners warm), or their `initial_fetch_timeout` passed. The
    /// admin `/ready` waits for it, as Envoy's does.
    pub fn initialized(&self) -> watch::Receiver<bool> {
        self.initialized.subscribe()
    }

    /// Applies the bootstrap's static resources (static listeners that name RDS routes wait
    /// for them), before the control plane is reached.
    pub async fn apply_static(&mut self) -> Result<(), String> {
        let config = self.state.config().map_err(|e| e.to_string())?;
        self.proxy.apply(config).await.map_err(|e| e.to_string())?;
        self.state.applied(&mut Outcome::default());
        Ok(())
    }

    /// Runs until `shutdown` turns true: streams from the control plane, reconnecting with
    /// [`Backoff::envoy`] whenever the stream cannot be opened or breaks. The configuration last
    /// applied keeps serving while disconnected.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        self.run_with(shutdown, Backoff::envoy()).await;
    }

    /// [`AdsClient::run`] with another backoff.
    pub async fn run_with(mut self, mut shutdown: watch::Receiver<bool>, mut backoff: Backoff) {
        loop {
            match self.stream(&mut shutdown).await {
                StreamEnd::Shutdown => return,
                StreamEnd::Lost { worked, why } => {
                    self.stats.set_connected(false);
                    if worked {
                        backoff.reset();
                    }
                    let delay = backoff.next_delay();
                    let (host, port) = self.state.target();
                    tracing::warn!(
                        control_plane = %format!("{host}:{port}"),
                        error = %why,
                        retry_in_ms = delay.as_millis() as u64,
                        "xDS stream lost; serving the last configuration"
                    );
                    let retry_at = tokio::time::Instant::now() + delay;
                    // Warming and initial-fetch timeouts keep running while disconnected.
                    loop {
                        let tick = self.state.next_deadline();
                        tokio::select! {
                            () = tokio::time::sleep_until(retry_at) => break,
                            () = sleep_until(tick) => {
                                let outcome = self.state.on_tick(Instant::now());
                                self.handle(outcome, None).await;
                            }
                            changed = shutdown.changed() => {
                                if changed.is_err() || *shutdown.borrow() {
                                    return;
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    async fn stream(&mut self, shutdown: &mut watch::Receiver<bool>) -> StreamEnd {
        let (host, port) = self.state.target().clone();
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let lost = |why: String| StreamEnd::Lost { worked: false, why };
        let endpoint = match tonic::transport::Endpoint::from_shared(format!("http://{authority}"))
        {
            Ok(e) => e
                .connect_timeout(Duration::from_secs(5))
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(30))
                .keep_alive_timeout(Duration::from_secs(10)),
            Err(e) => return lost(format!("invalid control plane address {authority}: {e}")),
        };
        let channel = tokio::select! {
            c = endpoint.connect() => match c {
                Ok(c) => c,
                Err(e) => return lost(format!("cannot connect: {e}")),
            },
            _ = shutdown.changed() => return StreamEnd::Shutdown,
        };
        let mut client = AggregatedDiscoveryServiceClient::new(channel);
        let (tx, rx) = mpsc::unbounded_channel::<DiscoveryRequest>();
        for request in self.state.on_connect() {
            let _ = tx.send(request);
        }
        let requests =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|r| (r, rx)) },
            );
        let mut responses = tokio::select! {
            r = client.stream_aggregated_resources(requests) => match r {
                Ok(r) => r.into_inner(),
                Err(status) => return lost(format!("stream refused: {status}")),
            },
            _ = shutdown.changed() => return StreamEnd::Shutdown,
        };
        self.stats.set_connected(true);
        tracing::info!(control_plane = %authority, "xDS stream open");
        let mut worked = false;
        loop {
            let tick = self.state.next_deadline();
            tokio::select! {
                message = responses.message() => match message {
                    Ok(Some(response)) => {
                        worked = true;
                        let outcome = self.state.on_response(response, Instant::now());
                        self.handle(outcome, Some(&tx)).await;
                    }
                    Ok(None) => {
                        return StreamEnd::Lost { worked, why: "the control plane closed the stream".into() };
                    }
                    Err(status) => {
                        return StreamEnd::Lost { worked, why: status.to_string() };
                    }
                },
                () = sleep_until(tick) => {
                    let outcome = self.state.on_tick(Instant::now());
                    self.handle(outcome, Some(&tx)).await;
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return StreamEnd::Shutdown;
                    }
                }
            }
        }
    }

    /// Applies first, then sends: an ACK means the configuration is running, and what cannot
    /// run is NACKed.
    async fn handle(
        &mut self,
        mut outcome: Outcome,
        tx: Option<&mpsc::UnboundedSender<DiscoveryRequest>>,
    ) {
        if outcome.apply {
            self.apply(&mut outcome).await;
            self.running.send_replace(Arc::new(self.state.dump()));
        }
        if let Some(tx) = tx {
            for request in outcome.requests {
                let _ = tx.send(request);
            }
        }
        if outcome.initialized {
            self.initialized.send_replace(true);
        }
    }

    /// Applies the state's configuration; when that fails, the state rolls back the resource
    /// at fault (and NACKs it in `outcome`) and the rest is tried again.
    async fn apply(&mut self, outcome: &mut Outcome) {
        loop {
            let again = match self.state.config() {
                Ok(config) => match self.proxy.apply(config).await {
                    Ok(()) => {
                        self.state.applied(outcome);
                        return;
                    }
                    Err(e) => self.state.apply_failed(&e, outcome),
                },
                Err(e) => self.state.convert_failed(&e, outcome),
            };
            if !again {
                return;
            }
        }
    }
}

/// Sleeps until `deadline`, or forever.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}
