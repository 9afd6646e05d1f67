//! Simulated Envoy sidecars on ADS: subscribe to CDS and LDS (wildcard), then to EDS for the
//! EDS clusters and RDS for the route configurations the listeners name, and ACK every
//! response, state of the world or delta.
//!
//! Decoding a response's resources (to find the EDS and RDS names, and the change marker) is
//! cached by content version: a thousand clients served the same translation decode it once,
//! so the clients stay cheap next to the control plane they measure.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DiscoveryRequest, Resource,
};
use envoy_types::pb::google::protobuf::{Any, Struct, Value, value::Kind};
use parking_lot::Mutex;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

pub const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const EDS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
pub const LDS: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const RDS: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const HCM: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/// SotW or delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Sotw,
    Delta,
}

/// What clients report to the coordinator.
#[derive(Debug)]
pub enum Event {
    /// Client `0` holds and has ACKed CDS, EDS (every EDS cluster), LDS and RDS (every route
    /// configuration its listeners name).
    Converged(usize),
    /// Client `0` received and ACKed a route configuration carrying change marker `1`.
    Marker(usize, u64),
    /// Client `0`'s stream failed.
    Failed(usize, String),
}

/// What one resource (or, in SotW, one response) tells a client.
#[derive(Debug, Default)]
struct Derived {
    /// EDS names (from clusters) or RDS names (from listeners).
    names: Vec<String>,
    /// The highest change marker in route configurations.
    marker: Option<u64>,
}

/// State shared by every client.
#[derive(Debug)]
pub struct Shared {
    /// Bytes of responses received (their encoded length).
    pub bytes: AtomicU64,
    /// Bytes of responses received per type: CDS, EDS, LDS, RDS.
    pub bytes_by_type: [AtomicU64; 4],
    /// Responses received.
    pub responses: AtomicU64,
    events: mpsc::UnboundedSender<Event>,
    cache: Mutex<HashMap<String, Arc<OnceLock<Arc<Derived>>>>>,
}

impl Shared {
    pub fn new(events: mpsc::UnboundedSender<Event>) -> Shared {
        Shared {
            bytes: AtomicU64::new(0),
            bytes_by_type: Default::default(),
            responses: AtomicU64::new(0),
            events,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Derives what `resources` of `type_url` say, once per `key` (a content version).
    fn derive(&self, type_url: &str, key: String, resources: &[&Any]) -> Arc<Derived> {
        let cell = self
            .cache
            .lock()
            .entry(format!("{type_url}\0{key}"))
            .or_default()
            .clone();
        cell.get_or_init(|| Arc::new(derive(type_url, resources)))
            .clone()
    }

    fn count(&self, type_url: &str, bytes: usize) {
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.responses.fetch_add(1, Ordering::Relaxed);
        if let Some(i) = [CDS, EDS, LDS, RDS].iter().position(|t| *t == type_url) {
            self.bytes_by_type[i].fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    /// Bytes received so far per type.
    pub fn by_type(&self) -> [u64; 4] {
        let b = &self.bytes_by_type;
        [0, 1, 2, 3].map(|i| b[i].load(Ordering::Relaxed))
    }

    fn event(&self, e: Event) {
        let _ = self.events.send(e);
    }
}

fn derive(type_url: &str, resources: &[&Any]) -> Derived {
    let mut d = Derived::default();
    for any in resources {
        match type_url {
            CDS => {
                if let Ok(c) = Cluster::decode(any.value.as_slice())
                    && c.cluster_discovery_type
                        == Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32))
                {
                    let service = c
                        .eds_cluster_config
                        .as_ref()
                        .map(|e| e.service_name.clone())
                        .filter(|s| !s.is_empty());
                    d.names.push(service.unwrap_or(c.name));
                }
            }
            LDS => {
                if let Ok(l) = Listener::decode(any.value.as_slice()) {
                    let chains = l.filter_chains.iter().chain(l.default_filter_chain.iter());
                    for f in chains.flat_map(|c| c.filters.iter()) {
                        let Some(envoy_types::pb::envoy::config::listener::v3::filter::ConfigType::TypedConfig(tc)) = &f.config_type else {
                            continue;
                        };
                        if tc.type_url != HCM {
                            continue;
                        }
                        if let Ok(hcm) = HttpConnectionManager::decode(tc.value.as_slice())
                            && let Some(RouteSpecifier::Rds(rds)) = hcm.route_specifier
                        {
                            d.names.push(rds.route_config_name);
                        }
                    }
                }
            }
            RDS => d.marker = d.marker.max(find_marker(&any.value)),
            _ => {}
        }
    }
    d.names.sort();
    d.names.dedup();
    d
}

/// The highest `marker-g<N>-end` in `bytes`.
fn find_marker(bytes: &[u8]) -> Option<u64> {
    const PREFIX: &[u8] = b"marker-g";
    let mut best = None;
    let mut i = 0;
    while i + PREFIX.len() < bytes.len() {
        if bytes[i] == b'm' && bytes[i..].starts_with(PREFIX) {
            let rest = &bytes[i + PREFIX.len()..];
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits > 0
                && rest[digits..].starts_with(b"-end")
                && let Some(n) = std::str::from_utf8(&rest[..digits])
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
            {
                best = best.max(Some(n));
            }
            i += PREFIX.len();
        } else {
            i += 1;
        }
    }
    best
}

/// Envoy's node for sidecar `i` in namespace `ns`, as istio-proxy sends it.
pub fn node(i: usize, ns: &str) -> Node {
    let ip = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    let s = |v: &str| Value {
        kind: Some(Kind::StringValue(v.to_owned())),
    };
    let mut fields = std::collections::BTreeMap::new();
    fields.insert("NAMESPACE".to_owned(), s(ns));
    fields.insert("INSTANCE_IPS".to_owned(), s(&ip));
    fields.insert("WORKLOAD_NAME".to_owned(), s("loadgen"));
    fields.insert("SERVICE_ACCOUNT".to_owned(), s("loadgen"));
    fields.insert("CLUSTER_ID".to_owned(), s("Kubernetes"));
    let labels = Struct {
        fields: [("app".to_owned(), s("loadgen"))].into_iter().collect(),
    };
    fields.insert(
        "LABELS".to_owned(),
        Value {
            kind: Some(Kind::StructValue(labels)),
        },
    );
    Node {
        id: format!("sidecar~{ip}~p{i}.{ns}~{ns}.svc.cluster.local"),
        cluster: "loadgen".to_owned(),
        metadata: Some(Struct {
            fields: fields.into_iter().collect(),
        }),
        ..Default::default()
    }
}

/// Tracks convergence: both wildcard types seen, and every EDS/RDS name held.
#[derive(Debug, Default)]
struct Progress {
    seen_cds: bool,
    seen_lds: bool,
    eds_wanted: BTreeSet<String>,
    rds_wanted: BTreeSet<String>,
    eds_held: usize,
    rds_held: usize,
    converged: bool,
    marker: u64,
}

impl Progress {
    fn check(&mut self, i: usize, shared: &Shared) {
        if !self.converged
            && self.seen_cds
            && self.seen_lds
            && self.eds_held >= self.eds_wanted.len()
            && self.rds_held >= self.rds_wanted.len()
        {
            self.converged = true;
            shared.event(Event::Converged(i));
        }
    }

    fn marker(&mut self, i: usize, shared: &Shared, found: Option<u64>) {
        if let Some(m) = found
            && m > self.marker
        {
            self.marker = m;
            shared.event(Event::Marker(i, m));
        }
    }
}

/// Runs client `i` until its stream ends; reports failure as an event.
pub async fn run(i: usize, ns: String, mode: Mode, channel: Channel, shared: Arc<Shared>) {
    let result = match mode {
        Mode::Sotw => run_sotw(i, &ns, channel, &shared).await,
        Mode::Delta => run_delta(i, &ns, channel, &shared).await,
    };
    if let Err(e) = result {
        shared.event(Event::Failed(i, e));
    }
}

fn client(channel: Channel) -> AggregatedDiscoveryServiceClient<Channel> {
    AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(1 << 30)
}

async fn run_sotw(i: usize, ns: &str, channel: Channel, shared: &Shared) -> Result<(), String> {
    let (tx, rx) = mpsc::channel::<DiscoveryRequest>(64);
    let send = |r: DiscoveryRequest| {
        let tx = tx.clone();
        async move {
            tx.send(r)
                .await
                .map_err(|_| "request channel closed".to_owned())
        }
    };
    send(DiscoveryRequest {
        node: Some(node(i, ns)),
        type_url: CDS.to_owned(),
        ..Default::default()
    })
    .await?;
    send(DiscoveryRequest {
        type_url: LDS.to_owned(),
        ..Default::default()
    })
    .await?;
    let mut inbound = client(channel)
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    let mut p = Progress::default();
    // Last (version, nonce) per subscribed EDS/RDS, for requests that change names.
    let mut last_eds = (String::new(), String::new());
    let mut last_rds = (String::new(), String::new());
    while let Some(resp) = inbound.message().await.map_err(|e| e.to_string())? {
        shared.count(&resp.type_url, resp.encoded_len());
        let resources: Vec<&Any> = resp.resources.iter().collect();
        let ack = |names: &BTreeSet<String>| DiscoveryRequest {
            version_info: resp.version_info.clone(),
            response_nonce: resp.nonce.clone(),
            type_url: resp.type_url.clone(),
            resource_names: names.iter().cloned().collect(),
            ..Default::default()
        };
        match resp.type_url.as_str() {
            CDS | LDS => {
                let d = shared.derive(&resp.type_url, resp.version_info.clone(), &resources);
                let names: BTreeSet<String> = d.names.iter().cloned().collect();
                let cds = resp.type_url == CDS;
                let (wanted, last, sub_type) = if cds {
                    (&mut p.eds_wanted, &last_eds, EDS)
                } else {
                    (&mut p.rds_wanted, &last_rds, RDS)
                };
                if names != *wanted {
                    *wanted = names;
                    send(DiscoveryRequest {
                        version_info: last.0.clone(),
                        response_nonce: last.1.clone(),
                        type_url: sub_type.to_owned(),
                        resource_names: wanted.iter().cloned().collect(),
                        ..Default::default()
                    })
                    .await?;
                }
                send(ack(&BTreeSet::new())).await?;
                if cds {
                    p.seen_cds = true;
                } else {
                    p.seen_lds = true;
                }
            }
            EDS => {
                last_eds = (resp.version_info.clone(), resp.nonce.clone());
                p.eds_held = resources.len();
                send(ack(&p.eds_wanted)).await?;
            }
            RDS => {
                last_rds = (resp.version_info.clone(), resp.nonce.clone());
                p.rds_held = resources.len();
                let d = shared.derive(RDS, resp.version_info.clone(), &resources);
                send(ack(&p.rds_wanted)).await?;
                p.marker(i, shared, d.marker);
            }
            _ => {}
        }
        p.check(i, shared);
    }
    Err("stream ended".to_owned())
}

async fn run_delta(i: usize, ns: &str, channel: Channel, shared: &Shared) -> Result<(), String> {
    let (tx, rx) = mpsc::channel::<DeltaDiscoveryRequest>(64);
    let send = |r: DeltaDiscoveryRequest| {
        let tx = tx.clone();
        async move {
            tx.send(r)
                .await
                .map_err(|_| "request channel closed".to_owned())
        }
    };
    send(DeltaDiscoveryRequest {
        node: Some(node(i, ns)),
        type_url: CDS.to_owned(),
        ..Default::default()
    })
    .await?;
    send(DeltaDiscoveryRequest {
        type_url: LDS.to_owned(),
        ..Default::default()
    })
    .await?;
    let mut inbound = client(channel)
        .delta_aggregated_resources(ReceiverStream::new(rx))
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    let mut p = Progress::default();
    // Per wildcard type, what each held resource names.
    let mut clusters: HashMap<String, Arc<Derived>> = HashMap::new();
    let mut listeners: HashMap<String, Arc<Derived>> = HashMap::new();
    let mut eds_held: BTreeSet<String> = BTreeSet::new();
    let mut rds_held: BTreeSet<String> = BTreeSet::new();
    while let Some(resp) = inbound.message().await.map_err(|e| e.to_string())? {
        shared.count(&resp.type_url, resp.encoded_len());
        let derive_one = |r: &Resource| {
            let any: Vec<&Any> = r.resource.iter().collect();
            shared.derive(&resp.type_url, format!("{}\0{}", r.name, r.version), &any)
        };
        match resp.type_url.as_str() {
            CDS | LDS => {
                let cds = resp.type_url == CDS;
                let held = if cds { &mut clusters } else { &mut listeners };
                for name in &resp.removed_resources {
                    held.remove(name);
                }
                for r in &resp.resources {
                    held.insert(r.name.clone(), derive_one(r));
                }
                let names: BTreeSet<String> = held
                    .values()
                    .flat_map(|d| d.names.iter().cloned())
                    .collect();
                let (wanted, sub_type) = if cds {
                    (&mut p.eds_wanted, EDS)
                } else {
                    (&mut p.rds_wanted, RDS)
                };
                if names != *wanted {
                    let subscribe: Vec<String> = names.difference(wanted).cloned().collect();
                    let unsubscribe: Vec<String> = wanted.difference(&names).cloned().collect();
                    *wanted = names;
                    send(DeltaDiscoveryRequest {
                        type_url: sub_type.to_owned(),
                        resource_names_subscribe: subscribe,
                        resource_names_unsubscribe: unsubscribe,
                        ..Default::default()
                    })
                    .await?;
                }
                if cds {
                    p.seen_cds = true;
                } else {
                    p.seen_lds = true;
                }
            }
            EDS => {
                for name in &resp.removed_resources {
                    eds_held.remove(name);
                }
                eds_held.extend(resp.resources.iter().map(|r| r.name.clone()));
                p.eds_held = eds_held.intersection(&p.eds_wanted).count();
            }
            RDS => {
                for name in &resp.removed_resources {
                    rds_held.remove(name);
                }
                let mut marker = None;
                for r in &resp.resources {
                    rds_held.insert(r.name.clone());
                    marker = marker.max(derive_one(r).marker);
                }
                p.rds_held = rds_held.intersection(&p.rds_wanted).count();
                p.marker(i, shared, marker);
            }
            _ => {}
        }
        send(DeltaDiscoveryRequest {
            type_url: resp.type_url.clone(),
            response_nonce: resp.nonce.clone(),
            ..Default::default()
        })
        .await?;
        p.check(i, shared);
    }
    Err("stream ended".to_owned())
}
