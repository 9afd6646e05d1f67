//! The Aggregated Discovery Service: one gRPC stream per proxy carrying clusters, endpoints,
//! listeners and routes, state-of-the-world ([`sotw`]) or incremental ([`delta`]).
//!
//! [`AdsServer`] holds the current [`Mesh`]; [`AdsServer::set_mesh`] replaces it and every
//! stream recomputes its proxy's resources and sends what changed. Translations are shared by
//! proxies that look the same to translation (same namespace, labels, kind...; names and
//! addresses only where they matter, see `MeshState::key`), so a thousand replicas cost one
//! translation per change. Subscriptions and unchanged per-type snapshots are shared too
//! ([`Interner`]), responses are framed in buffers of their own size ([`transport`]) and at
//! most a few pushes are in flight at once.

pub mod delta;
pub mod snapshot;
pub mod sotw;
pub mod status;
pub mod transport;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::SystemTime;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryService;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use futures_util::{Stream, StreamExt};
use parking_lot::Mutex;
use prost::Message;
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use weft_api::networking::sidecar::{CaptureMode, Sidecar};
use weft_registry::Address;

use crate::mesh::Mesh;
use crate::node::ProxyNode;
use crate::resources::{Resources, TypeUrl};
use crate::translate;

pub use snapshot::{Selection, Snapshot, TypeSnapshot};
pub use sotw::RequestKind;
pub use status::{ConnectionStatus, Mode, SyncStatus, TypeStatus};
pub use transport::AdsService;

/// The ADS server. Cheap to clone; clones share state.
#[derive(Debug, Clone)]
pub struct AdsServer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    mesh: watch::Sender<Arc<MeshState>>,
    connections: Mutex<BTreeMap<u64, Arc<Mutex<ConnectionStatus>>>>,
    next_stream: AtomicU64,
    stats: AdsStats,
    interner: Arc<Interner>,
    translators: Arc<Semaphore>,
    pushes: Arc<Semaphore>,
}

/// One mesh generation and the translations made from it.
#[derive(Debug)]
struct MeshState {
    generation: u64,
    mesh: Arc<Mesh>,
    translations: Mutex<HashMap<ProxyNode, Arc<OnceCell<Arc<Snapshot>>>>>,
    interner: Arc<Interner>,
    /// Translations running at once: at most one per core. A thousand proxies connecting
    /// together would otherwise start a thousand blocking threads, each growing its own
    /// allocator arena.
    translators: Arc<Semaphore>,
    /// Whether some Sidecar has ingress listeners or a `captureMode: NONE` egress listener,
    /// whose bind addresses come from the node (see [`MeshState::key`]).
    binds_node_address: OnceLock<bool>,
}

/// Counters since start, per type in [`TypeUrl::ALL`] order.
#[derive(Debug, Default)]
pub struct AdsStats {
    /// Responses sent.
    pub pushes: [AtomicU64; 4],
    /// NACKs received.
    pub rejects: [AtomicU64; 4],
    /// Bytes of responses sent on state-of-the-world streams.
    pub sotw_bytes: [AtomicU64; 4],
    /// Bytes of responses sent on delta streams.
    pub delta_bytes: [AtomicU64; 4],
    /// Streams refused (no node, unreadable node).
    pub refused_streams: AtomicU64,
}

fn index(t: TypeUrl) -> usize {
    TypeUrl::ALL.iter().position(|x| *x == t).unwrap_or(0)
}

impl AdsServer {
    /// A server starting from `mesh`.
    pub fn new(mesh: Mesh) -> AdsServer {
        let interner = Arc::new(Interner::default());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let translators = Arc::new(Semaphore::new(cores));
        let (tx, _) = watch::channel(Arc::new(MeshState::new(
            0,
            Arc::new(mesh),
            interner.clone(),
            translators.clone(),
        )));
        AdsServer {
            inner: Arc::new(Inner {
                mesh: tx,
                connections: Mutex::new(BTreeMap::new()),
                next_stream: AtomicU64::new(1),
                stats: AdsStats::default(),
                interner,
                translators,
                pushes: Arc::new(Semaphore::new(PUSHES_IN_FLIGHT)),
            }),
        }
    }

    /// Replaces the mesh; every stream sends what changed for its proxy. Returns the new
    /// generation.
    pub fn set_mesh(&self, mesh: Mesh) -> u64 {
        let generation = self.generation() + 1;
        self.inner.mesh.send_replace(Arc::new(MeshState::new(
            generation,
            Arc::new(mesh),
            self.inner.interner.clone(),
            self.inner.translators.clone(),
        )));
        generation
    }

    /// The current mesh generation (0 at start, +1 per [`set_mesh`](Self::set_mesh)).
    pub fn generation(&self) -> u64 {
        self.inner.mesh.borrow().generation
    }

    /// The current mesh.
    pub fn mesh(&self) -> Arc<Mesh> {
        self.inner.mesh.borrow().mesh.clone()
    }

    /// The tonic service to mount on a gRPC server.
    pub fn service(&self) -> AdsService {
        AdsService::new(self.clone())
    }

    /// Every connected stream.
    pub fn connections(&self) -> Vec<ConnectionStatus> {
        self.inner
            .connections
            .lock()
            .values()
            .map(|c| c.lock().clone())
            .collect()
    }

    /// Counters.
    pub fn stats(&self) -> &AdsStats {
        &self.inner.stats
    }

    /// What the current mesh gives `node` (translated now, or shared with a proxy that looks
    /// the same).
    pub async fn resources_for(&self, node: &ProxyNode) -> Arc<Resources> {
        let state = self.inner.mesh.borrow().clone();
        Arc::new(state.snapshot(node).await.resources())
    }

    fn register(
        &self,
        node: &ProxyNode,
        peer: Option<std::net::SocketAddr>,
        mode: Mode,
    ) -> Registration {
        let stream = self.inner.next_stream.fetch_add(1, Ordering::Relaxed);
        let status = Arc::new(Mutex::new(ConnectionStatus {
            stream,
            node: node.clone(),
            peer,
            mode,
            connected_at: SystemTime::now(),
            generation: 0,
            types: BTreeMap::new(),
        }));
        self.inner.connections.lock().insert(stream, status.clone());
        Registration {
            server: self.clone(),
            stream,
            status,
        }
    }

    fn count(&self, mode: Mode, t: TypeUrl, bytes: usize) {
        let stats = &self.inner.stats;
        stats.pushes[index(t)].fetch_add(1, Ordering::Relaxed);
        let by_mode = match mode {
            Mode::Sotw => &stats.sotw_bytes,
            Mode::Delta => &stats.delta_bytes,
        };
        by_mode[index(t)].fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn count_reject(&self, t: &str) {
        if let Some(t) = TypeUrl::parse(t) {
            self.inner.stats.rejects[index(t)].fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl MeshState {
    fn new(
        generation: u64,
        mesh: Arc<Mesh>,
        interner: Arc<Interner>,
        translators: Arc<Semaphore>,
    ) -> MeshState {
        MeshState {
            generation,
            mesh,
            translations: Mutex::new(HashMap::new()),
            interner,
            translators,
            binds_node_address: OnceLock::new(),
        }
    }

    async fn snapshot(self: &Arc<Self>, node: &ProxyNode) -> Arc<Snapshot> {
        let key = self.key(node);
        let cell = self.translations.lock().entry(key).or_default().clone();
        cell.get_or_init(|| async {
            let me = self.clone();
            let node = node.clone();
            // Never closed; an error would only mean running unthrottled.
            let _permit = self.translators.acquire().await.ok();
            let translated = tokio::task::spawn_blocking(move || {
                let snap = Snapshot::new(translate::translate(&me.mesh, &node));
                Arc::new(me.interner.snapshot(snap))
            })
            .await;
            match translated {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "translation task failed");
                    Arc::new(Snapshot::default())
                }
            }
        })
        .await
        .clone()
    }
}

impl MeshState {
    /// What translation of `node` depends on: the node without its id and, when neither its
    /// workload name nor its addresses can matter, without those either (only whether it has
    /// IPv4 and IPv6 addresses is kept). Proxies with equal keys share one translation.
    ///
    /// Translation reads a node's workload name and addresses in two places only: to find its
    /// workload in the registry (by name, else by address, in its namespace) and as the bind
    /// address of `captureMode: NONE` and Sidecar ingress listeners. A proxy no workload
    /// matches, in a mesh without Sidecar ingress listeners or `captureMode: NONE`, translates
    /// the same whatever its name and addresses; such proxies (the usual fleet of replicas
    /// that the registry does not list individually) then share one translation per
    /// namespace, labels and kind instead of one each.
    fn key(&self, node: &ProxyNode) -> ProxyNode {
        let mut key = node.clone();
        key.id.clear();
        if self.identity_matters(node) {
            return key;
        }
        key.workload.clear();
        let v4 = node.ips.iter().any(IpAddr::is_ipv4);
        let v6 = node.ips.iter().any(IpAddr::is_ipv6);
        key.ips.clear();
        if v4 {
            key.ips.push(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        }
        if v6 {
            key.ips.push(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        }
        key
    }

    /// Whether `node`'s workload name or addresses can change its translation.
    fn identity_matters(&self, node: &ProxyNode) -> bool {
        let binds = *self.binds_node_address.get_or_init(|| {
            self.mesh.config.of::<Sidecar>().any(|(_, sc)| {
                !sc.ingress.is_empty()
                    || sc
                        .egress
                        .iter()
                        .any(|l| l.capture_mode == CaptureMode::None)
            })
        });
        binds
            || self.mesh.registry.workloads().iter().any(|w| {
                w.namespace == node.namespace
                    && (w.name == node.workload
                        || matches!(w.address, Address::Ip(ip) if node.ips.contains(&ip)))
            })
    }
}

/// Shares equal values between streams, translations and generations: subscription name sets
/// (a thousand sidecars subscribing to the same EDS clusters hold one set) and per-type
/// snapshots (a type whose content did not change keeps its address across generations, so
/// a push can skip it without comparing resources). Holds weak references only.
#[derive(Debug, Default)]
pub struct Interner {
    names: Mutex<HashMap<u64, Vec<Weak<BTreeSet<String>>>>>,
    types: Mutex<HashMap<(TypeUrl, String), Weak<TypeSnapshot>>>,
    inserts: AtomicU64,
}

/// Interned values added between sweeps of dead entries.
const SWEEP_EVERY: u64 = 4096;

impl Interner {
    /// The shared set equal to `set`.
    pub fn names(&self, set: BTreeSet<String>) -> Arc<BTreeSet<String>> {
        let mut hasher = std::hash::DefaultHasher::new();
        set.hash(&mut hasher);
        let hash = hasher.finish();
        let mut map = self.names.lock();
        let bucket = map.entry(hash).or_default();
        bucket.retain(|w| w.strong_count() > 0);
        if let Some(found) = bucket
            .iter()
            .filter_map(Weak::upgrade)
            .find(|known| **known == set)
        {
            return found;
        }
        let shared = Arc::new(set);
        bucket.push(Arc::downgrade(&shared));
        if self.inserts.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            map.retain(|_, b| b.iter().any(|w| w.strong_count() > 0));
        }
        shared
    }

    /// `snap` with each type replaced by an equal one already shared, if any.
    pub fn snapshot(&self, mut snap: Snapshot) -> Snapshot {
        let mut map = self.types.lock();
        for (t, ts) in &mut snap.types {
            let key = (*t, ts.version_of(&None));
            if let Some(known) = map.get(&key).and_then(Weak::upgrade)
                && known.resources == ts.resources
            {
                *ts = known;
                continue;
            }
            map.insert(key, Arc::downgrade(ts));
        }
        if self.inserts.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            map.retain(|_, w| w.strong_count() > 0);
        }
        snap
    }
}

/// A stream's entry in the connection table, removed when the stream ends.
struct Registration {
    server: AdsServer,
    stream: u64,
    status: Arc<Mutex<ConnectionStatus>>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.server.inner.connections.lock().remove(&self.stream);
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsServer {
    type StreamAggregatedResourcesStream = BoxStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = BoxStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        Ok(self.open::<sotw::SotwStream, _>(request))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Ok(self.open::<delta::DeltaStream, _>(request))
    }
}

/// What differs between the two protocol variants: their messages and state machines.
pub(crate) trait Protocol: Send + 'static {
    type Req: Message + Send + 'static;
    type Resp: Message + Send + 'static;
    const MODE: Mode;
    fn new(interner: Arc<Interner>) -> Self;
    fn node(req: &Self::Req) -> Option<&envoy_types::pb::envoy::config::core::v3::Node>;
    fn req_type(req: &Self::Req) -> &str;
    fn resp_type(resp: &Self::Resp) -> &str;
    fn accept(&mut self, req: &Self::Req) -> (RequestKind, Option<sotw::Pending>);
    fn answer(&mut self, pending: Option<sotw::Pending>, snap: &Snapshot) -> Vec<Self::Resp>;
    fn on_snapshot(&mut self, snap: &Snapshot) -> Vec<Self::Resp>;
    fn status(&self) -> BTreeMap<TypeUrl, TypeStatus>;
}

macro_rules! protocol {
    ($stream:ty, $req:ty, $resp:ty, $mode:expr) => {
        impl Protocol for $stream {
            type Req = $req;
            type Resp = $resp;
            const MODE: Mode = $mode;
            fn new(interner: Arc<Interner>) -> Self {
                <$stream>::new(interner)
            }
            fn node(req: &Self::Req) -> Option<&envoy_types::pb::envoy::config::core::v3::Node> {
                req.node.as_ref()
            }
            fn req_type(req: &Self::Req) -> &str {
                &req.type_url
            }
            fn resp_type(resp: &Self::Resp) -> &str {
                &resp.type_url
            }
            fn accept(&mut self, req: &Self::Req) -> (RequestKind, Option<sotw::Pending>) {
                <$stream>::accept(self, req)
            }
            fn answer(
                &mut self,
                pending: Option<sotw::Pending>,
                snap: &Snapshot,
            ) -> Vec<Self::Resp> {
                <$stream>::answer(self, pending, snap)
            }
            fn on_snapshot(&mut self, snap: &Snapshot) -> Vec<Self::Resp> {
                <$stream>::on_snapshot(self, snap)
            }
            fn status(&self) -> BTreeMap<TypeUrl, TypeStatus> {
                <$stream>::status(self)
            }
        }
    };
}

protocol!(
    sotw::SotwStream,
    DiscoveryRequest,
    DiscoveryResponse,
    Mode::Sotw
);
protocol!(
    delta::DeltaStream,
    DeltaDiscoveryRequest,
    DeltaDiscoveryResponse,
    Mode::Delta
);

impl AdsServer {
    /// Serves one stream: the first request must name the node; then requests and mesh
    /// changes drive the protocol's state machine until either side goes away.
    pub(crate) fn open<P, S>(&self, request: Request<S>) -> Response<BoxStream<P::Resp>>
    where
        P: Protocol,
        S: Stream<Item = Result<P::Req, Status>> + Unpin + Send + 'static,
    {
        let peer = request.remote_addr();
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let server = self.clone();
        tokio::spawn(async move {
            let first = match inbound.next().await {
                Some(Ok(m)) => m,
                _ => return,
            };
            let node = match P::node(&first)
                .ok_or(crate::node::NodeError::Missing)
                .and_then(ProxyNode::from_node)
            {
                Ok(n) => n,
                Err(e) => {
                    server
                        .inner
                        .stats
                        .refused_streams
                        .fetch_add(1, Ordering::Relaxed);
                    let _ = tx
                        .send((Err(Status::invalid_argument(e.to_string())), None))
                        .await;
                    return;
                }
            };
            tracing::info!(node = %node.id, ?peer, mode = P::MODE.as_str(), "proxy connected");
            let reg = server.register(&node, peer, P::MODE);
            run::<P, S>(&server, &reg, &node, first, inbound, tx).await;
            tracing::info!(node = %node.id, "proxy disconnected");
        });
        Response::new(Box::pin(TakenOnPoll::new(rx)))
    }
}

/// A response on its way to the transport, with a token dropped when the transport asks for
/// the next one.
type Outbound<M> = (Result<M, Status>, Option<oneshot::Sender<()>>);

/// A stream's responses for the transport. The token of a response is dropped when the
/// transport polls for the next one: HTTP/2 asks for more body only once what it buffered
/// for the stream has mostly been written, so a push keeps its slot (see
/// [`PUSHES_IN_FLIGHT`]) until its bytes are nearly on the wire, not merely queued.
#[derive(Debug)]
struct TakenOnPoll<M> {
    inner: ReceiverStream<Outbound<M>>,
    held: Option<oneshot::Sender<()>>,
}

impl<M> TakenOnPoll<M> {
    fn new(rx: mpsc::Receiver<Outbound<M>>) -> TakenOnPoll<M> {
        TakenOnPoll {
            inner: ReceiverStream::new(rx),
            held: None,
        }
    }
}

impl<M> Stream for TakenOnPoll<M> {
    type Item = Result<M, Status>;

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.held = None;
        match this.inner.poll_next_unpin(cx) {
            std::task::Poll::Ready(Some((item, token))) => {
                this.held = token;
                std::task::Poll::Ready(Some(item))
            }
            std::task::Poll::Ready(None) => std::task::Poll::Ready(None),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

/// Pushes being built or waiting for the transport at once, server-wide. Responses are copies
/// of the shared snapshots; without a bound, a thousand proxies connecting together would
/// each hold a copy of their whole configuration at the same time.
const PUSHES_IN_FLIGHT: usize = 4;

/// Longest a push keeps its slot waiting for a proxy that does not read.
const PUSH_SLOT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl AdsServer {
    /// A slot for building and handing over one batch of responses.
    async fn push_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.inner.pushes.clone().acquire_owned().await.ok()
    }
}

/// Sends `responses`, then waits (bounded) until the transport took the last one before
/// giving up `slot`; false when the proxy is gone.
async fn send_all<P: Protocol>(
    server: &AdsServer,
    tx: &mpsc::Sender<Outbound<P::Resp>>,
    responses: Vec<P::Resp>,
    slot: Option<OwnedSemaphorePermit>,
) -> bool {
    let count = responses.len();
    let mut taken = None;
    for (i, r) in responses.into_iter().enumerate() {
        if let Some(t) = TypeUrl::parse(P::resp_type(&r)) {
            server.count(P::MODE, t, r.encoded_len());
        }
        let token = (i + 1 == count).then(|| {
            let (token, rx) = oneshot::channel();
            taken = Some(rx);
            token
        });
        if tx.send((Ok(r), token)).await.is_err() {
            return false;
        }
    }
    if let Some(taken) = taken {
        let _ = tokio::time::timeout(PUSH_SLOT_TIMEOUT, taken).await;
    }
    drop(slot);
    true
}

fn log_request(server: &AdsServer, node: &ProxyNode, type_url: &str, kind: &RequestKind) {
    match kind {
        RequestKind::Nack(err) => {
            server.count_reject(type_url);
            tracing::warn!(node = %node.id, type_url, error = %err, "proxy rejected configuration (NACK)");
        }
        RequestKind::UnknownType(t) => {
            tracing::debug!(node = %node.id, type_url = %t, "request for a type weft does not serve");
        }
        RequestKind::Stale | RequestKind::Ok => {}
    }
}

async fn run<P, S>(
    server: &AdsServer,
    reg: &Registration,
    node: &ProxyNode,
    first: P::Req,
    mut inbound: S,
    tx: mpsc::Sender<Outbound<P::Resp>>,
) where
    P: Protocol,
    S: Stream<Item = Result<P::Req, Status>> + Unpin,
{
    let mut mesh_rx = server.inner.mesh.subscribe();
    let mut state_now = mesh_rx.borrow_and_update().clone();
    let mut snap = state_now.snapshot(node).await;
    let mut stream = P::new(server.inner.interner.clone());
    let mut next = Some(first);
    loop {
        if let Some(req) = next.take() {
            // Take the request in and drop it before waiting for a push slot: a thousand
            // streams waiting with their decoded requests (a SotW EDS request names every
            // cluster) held more memory than the pushes themselves. ACKs need no slot.
            let (kind, pending) = stream.accept(&req);
            log_request(server, node, P::req_type(&req), &kind);
            drop(req);
            if pending.is_some() {
                let slot = server.push_slot().await;
                let out = stream.answer(pending, &snap);
                if !send_all::<P>(server, &tx, out, slot).await {
                    return;
                }
            }
        }
        publish(reg, state_now.generation, stream.status());
        tokio::select! {
            msg = inbound.next() => match msg {
                Some(Ok(req)) => next = Some(req),
                None => return,
                Some(Err(e)) => {
                    tracing::debug!(node = %node.id, error = %e, "stream error");
                    return;
                }
            },
            changed = mesh_rx.changed() => {
                if changed.is_err() {
                    return;
                }
                state_now = mesh_rx.borrow_and_update().clone();
                snap = state_now.snapshot(node).await;
                let slot = server.push_slot().await;
                let out = stream.on_snapshot(&snap);
                if !send_all::<P>(server, &tx, out, slot).await {
                    return;
                }
            }
            () = tx.closed() => return,
        }
    }
}

fn publish(reg: &Registration, generation: u64, types: BTreeMap<TypeUrl, TypeStatus>) {
    let mut s = reg.status.lock();
    s.generation = generation;
    s.types = types;
}

#[cfg(test)]
mod tests;
