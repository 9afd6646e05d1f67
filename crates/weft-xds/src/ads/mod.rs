//! The Aggregated Discovery Service: one gRPC stream per proxy carrying clusters, endpoints,
//! listeners and routes, state-of-the-world ([`sotw`]) or incremental ([`delta`]).
//!
//! [`AdsServer`] holds the current [`Mesh`]; [`AdsServer::set_mesh`] replaces it and every
//! stream recomputes its proxy's resources and sends what changed. Translations are shared by
//! proxies that look the same to translation (same namespace, labels, kind, addresses...), so
//! a thousand replicas of one workload cost one translation per change.

pub mod delta;
pub mod snapshot;
pub mod sotw;
pub mod status;

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use futures_util::Stream;
use parking_lot::Mutex;
use prost::Message;
use tokio::sync::{OnceCell, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::mesh::Mesh;
use crate::node::ProxyNode;
use crate::resources::{Resources, TypeUrl};
use crate::translate;

pub use snapshot::Snapshot;
pub use sotw::RequestKind;
pub use status::{ConnectionStatus, Mode, SyncStatus, TypeStatus};

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
}

/// One mesh generation and the translations made from it.
#[derive(Debug)]
struct MeshState {
    generation: u64,
    mesh: Arc<Mesh>,
    translations: Mutex<HashMap<ProxyNode, Arc<OnceCell<Arc<Snapshot>>>>>,
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
        let (tx, _) = watch::channel(Arc::new(MeshState::new(0, Arc::new(mesh))));
        AdsServer {
            inner: Arc::new(Inner {
                mesh: tx,
                connections: Mutex::new(BTreeMap::new()),
                next_stream: AtomicU64::new(1),
                stats: AdsStats::default(),
            }),
        }
    }

    /// Replaces the mesh; every stream sends what changed for its proxy. Returns the new
    /// generation.
    pub fn set_mesh(&self, mesh: Mesh) -> u64 {
        let generation = self.generation() + 1;
        self.inner
            .mesh
            .send_replace(Arc::new(MeshState::new(generation, Arc::new(mesh))));
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
    pub fn service(&self) -> AggregatedDiscoveryServiceServer<AdsServer> {
        AggregatedDiscoveryServiceServer::new(self.clone()).max_decoding_message_size(16 << 20)
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
        state.snapshot(node).await.resources.clone()
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
    fn new(generation: u64, mesh: Arc<Mesh>) -> MeshState {
        MeshState {
            generation,
            mesh,
            translations: Mutex::new(HashMap::new()),
        }
    }

    async fn snapshot(self: &Arc<Self>, node: &ProxyNode) -> Arc<Snapshot> {
        let mut key = node.clone();
        key.id.clear();
        let cell = self.translations.lock().entry(key).or_default().clone();
        cell.get_or_init(|| async {
            let me = self.clone();
            let node = node.clone();
            let translated = tokio::task::spawn_blocking(move || {
                Arc::new(Snapshot::new(translate::translate(&me.mesh, &node)))
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
        Ok(self.open::<sotw::SotwStream>(request))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Ok(self.open::<delta::DeltaStream>(request))
    }
}

/// What differs between the two protocol variants: their messages and state machines.
trait Protocol: Default + Send + 'static {
    type Req: Message + Send + 'static;
    type Resp: Message + Send + 'static;
    const MODE: Mode;
    fn node(req: &Self::Req) -> Option<&envoy_types::pb::envoy::config::core::v3::Node>;
    fn req_type(req: &Self::Req) -> &str;
    fn resp_type(resp: &Self::Resp) -> &str;
    fn on_request(&mut self, req: &Self::Req, snap: &Snapshot) -> (RequestKind, Vec<Self::Resp>);
    fn on_snapshot(&mut self, snap: &Snapshot) -> Vec<Self::Resp>;
    fn status(&self) -> BTreeMap<TypeUrl, TypeStatus>;
}

impl Protocol for sotw::SotwStream {
    type Req = DiscoveryRequest;
    type Resp = DiscoveryResponse;
    const MODE: Mode = Mode::Sotw;
    fn node(req: &Self::Req) -> Option<&envoy_types::pb::envoy::config::core::v3::Node> {
        req.node.as_ref()
    }
    fn req_type(req: &Self::Req) -> &str {
        &req.type_url
    }
    fn resp_type(resp: &Self::Resp) -> &str {
        &resp.type_url
    }
    fn on_request(&mut self, req: &Self::Req, snap: &Snapshot) -> (RequestKind, Vec<Self::Resp>) {
        sotw::SotwStream::on_request(self, req, snap)
    }
    fn on_snapshot(&mut self, snap: &Snapshot) -> Vec<Self::Resp> {
        sotw::SotwStream::on_snapshot(self, snap)
    }
    fn status(&self) -> BTreeMap<TypeUrl, TypeStatus> {
        sotw::SotwStream::status(self)
    }
}

impl Protocol for delta::DeltaStream {
    type Req = DeltaDiscoveryRequest;
    type Resp = DeltaDiscoveryResponse;
    const MODE: Mode = Mode::Delta;
    fn node(req: &Self::Req) -> Option<&envoy_types::pb::envoy::config::core::v3::Node> {
        req.node.as_ref()
    }
    fn req_type(req: &Self::Req) -> &str {
        &req.type_url
    }
    fn resp_type(resp: &Self::Resp) -> &str {
        &resp.type_url
    }
    fn on_request(&mut self, req: &Self::Req, snap: &Snapshot) -> (RequestKind, Vec<Self::Resp>) {
        delta::DeltaStream::on_request(self, req, snap)
    }
    fn on_snapshot(&mut self, snap: &Snapshot) -> Vec<Self::Resp> {
        delta::DeltaStream::on_snapshot(self, snap)
    }
    fn status(&self) -> BTreeMap<TypeUrl, TypeStatus> {
        delta::DeltaStream::status(self)
    }
}

impl AdsServer {
    /// Starts serving one stream: the first request must name the node; then requests and
    /// mesh changes drive the protocol's state machine until either side goes away.
    fn open<P: Protocol>(
        &self,
        request: Request<Streaming<P::Req>>,
    ) -> Response<BoxStream<P::Resp>> {
        let peer = request.remote_addr();
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let server = self.clone();
        tokio::spawn(async move {
            let first = match inbound.message().await {
                Ok(Some(m)) => m,
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
                    let _ = tx.send(Err(Status::invalid_argument(e.to_string()))).await;
                    return;
                }
            };
            tracing::info!(node = %node.id, ?peer, mode = P::MODE.as_str(), "proxy connected");
            let reg = server.register(&node, peer, P::MODE);
            run::<P>(&server, &reg, &node, first, inbound, tx).await;
            tracing::info!(node = %node.id, "proxy disconnected");
        });
        Response::new(Box::pin(ReceiverStream::new(rx)))
    }
}

/// Sends `responses`; false when the proxy is gone.
async fn send_all<P: Protocol>(
    server: &AdsServer,
    tx: &mpsc::Sender<Result<P::Resp, Status>>,
    responses: Vec<P::Resp>,
) -> bool {
    for r in responses {
        if let Some(t) = TypeUrl::parse(P::resp_type(&r)) {
            server.count(P::MODE, t, r.encoded_len());
        }
        if tx.send(Ok(r)).await.is_err() {
            return false;
        }
    }
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

async fn run<P: Protocol>(
    server: &AdsServer,
    reg: &Registration,
    node: &ProxyNode,
    first: P::Req,
    mut inbound: Streaming<P::Req>,
    tx: mpsc::Sender<Result<P::Resp, Status>>,
) {
    let mut mesh_rx = server.inner.mesh.subscribe();
    let mut state_now = mesh_rx.borrow_and_update().clone();
    let mut snap = state_now.snapshot(node).await;
    let mut stream = P::default();
    let mut next = Some(first);
    loop {
        if let Some(req) = next.take() {
            let (kind, out) = stream.on_request(&req, &snap);
            log_request(server, node, P::req_type(&req), &kind);
            if !send_all::<P>(server, &tx, out).await {
                return;
            }
        }
        publish(reg, state_now.generation, stream.status());
        tokio::select! {
            msg = inbound.message() => match msg {
                Ok(Some(req)) => next = Some(req),
                Ok(None) => return,
                Err(e) => {
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
                let out = stream.on_snapshot(&snap);
                if !send_all::<P>(server, &tx, out).await {
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
