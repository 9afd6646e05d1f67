//! The ADS protocol state, without I/O: what to request, what a response changes, when to
//! apply. The stream loop ([`crate::client`]) feeds it responses and the clock and sends what it
//! returns.
//!
//! Per resource type it keeps the last accepted `version_info` and the last received nonce. A
//! response is checked resource by resource: an invalid resource keeps its previous version (or
//! stays absent) while the valid ones are taken, and the response is NACKed with the previous
//! version and an `error_detail` naming what was rejected, as Envoy does. CDS and LDS responses
//! are the full set (state of the world: what is missing is removed); EDS and RDS responses
//! carry only the named resources.
//!
//! Warming follows Envoy: new clusters are applied once every EDS assignment they need arrived,
//! new listeners once every RDS route configuration they name arrived, or when the config
//! source's `initial_fetch_timeout` passes (Envoy then uses them without: no endpoints, an
//! empty route table). Until then the previous clusters and listeners keep serving.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{Node, node::UserAgentVersionType};
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status;
use weft_proxy::{ApplyError, TlsOwner};
use weft_proxy_config::model::{self, ProxyConfig};
use weft_proxy_config::xds::{
    AdsConfig, Resource, ResourceType, Subscription, XdsError, XdsResources, ads_config,
    convert_xds, decode, eds_subscription, rds_subscriptions,
};
use weft_proxy_config::{ConfigError, ErrorKind};

use crate::stats::XdsStats;

/// `google.rpc.Code.INTERNAL`, the code of a NACK's `error_detail` (Envoy's gRPC mux sets it
/// whatever the reason).
const INTERNAL: i32 = 13;

/// What handling an event asks the stream loop to do.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Requests to send, in order.
    pub requests: Vec<DiscoveryRequest>,
    /// The configuration to run changed: build it with [`XdsState::config`] and apply it.
    pub apply: bool,
    /// The initial fetch finished (or timed out) with this event.
    pub initialized: bool,
    /// Why (part of) the response was rejected: by the checks, or because applying it failed.
    pub rejected: Option<String>,
    /// The type of the response handled, if any.
    response: Option<ResourceType>,
    /// What the checks rejected in that response.
    invalid: Option<String>,
    /// The response's ACK waits for the configuration to run: a success once applied, a NACK
    /// if applying fails.
    pending_ack: Option<ResourceType>,
    /// Types NACKed (and counted as rejected) by this outcome.
    nacked: Vec<ResourceType>,
    /// Why applying failed, for the NACKs' `error_detail`.
    failures: Vec<ApplyFailure>,
}

/// One failed attempt to run a configuration.
#[derive(Debug)]
struct ApplyFailure {
    /// The type NACKed for it.
    nack: ResourceType,
    /// The resource it is pinned on, if any.
    resource: Option<(ResourceType, String)>,
    /// What went wrong.
    cause: String,
}

#[derive(Debug, Default)]
struct TypeState {
    /// `version_info` of the last accepted response.
    version: String,
    /// While what `version` brought is not running yet (warming, or applying): the version
    /// before it, which a failure to apply rolls back to.
    unconfirmed: Option<String>,
    /// Nonce of the last response on this stream.
    nonce: String,
    /// Subscribed names (EDS and RDS; CDS and LDS are wildcard).
    names: BTreeSet<String>,
    /// A response of this type arrived since the client started.
    received: bool,
}

/// A set of clusters or listeners waiting for their endpoints or routes.
#[derive(Debug, Clone, Copy)]
struct Warming {
    /// When to give up waiting (`None`: never).
    deadline: Option<Instant>,
}

/// A listener as applied: what it was built from, and what it became.
#[derive(Debug)]
struct AppliedListener {
    source: Listener,
    routes: Vec<Option<RouteConfiguration>>,
    built: Arc<model::Listener>,
}

/// A configuration as applied: its xDS resources (the active clusters and listeners, the routes
/// and endpoints), and its listeners as built.
#[derive(Debug, Default)]
struct Running {
    resources: XdsResources,
    listeners: HashMap<String, AppliedListener>,
}

/// Attempts at applying one outcome's configuration before giving up on pinning failures on
/// resources (each attempt rolls one back).
const MAX_APPLY_ATTEMPTS: usize = 16;

/// The client's whole protocol state.
#[derive(Debug)]
pub struct XdsState {
    bootstrap: Arc<Bootstrap>,
    /// The bootstrap without its static listeners, used while they wait for their routes.
    without_static_listeners: Arc<Bootstrap>,
    base_dir: PathBuf,
    ads: AdsConfig,
    node: Node,
    types: HashMap<ResourceType, TypeState>,
    /// The latest accepted resources.
    latest: XdsResources,
    /// The clusters and listeners running (the latest ones once warm).
    active_clusters: Vec<Cluster>,
    active_listeners: Vec<Listener>,
    static_listeners_ready: bool,
    cluster_warming: Option<Warming>,
    listener_warming: Option<Warming>,
    init_deadline: Option<Instant>,
    initialized: bool,
    node_sent: bool,
    /// What the proxy runs: the last configuration applied.
    running: Running,
    /// The configuration last returned by [`XdsState::config`], until it is applied or fails.
    pending: Option<Running>,
    stats: Arc<XdsStats>,
}

impl XdsState {
    /// The state for `bootstrap`, which must have ADS `dynamic_resources` (an
    /// [`ErrorKind::Constraint`] error otherwise). `base_dir` resolves relative file names in
    /// resources, as for the bootstrap; `now` starts the initial fetch's clock.
    pub fn new(
        bootstrap: Bootstrap,
        base_dir: PathBuf,
        now: Instant,
        stats: Arc<XdsStats>,
    ) -> Result<Self, ConfigError> {
        let Some(ads) = ads_config(&bootstrap)? else {
            return Err(ConfigError {
                file: None,
                line: None,
                path: "dynamic_resources".to_owned(),
                kind: ErrorKind::Constraint,
                message: "the bootstrap has no ADS configuration (dynamic_resources.ads_config)"
                    .to_owned(),
            });
        };
        let mut node = bootstrap.node.clone().unwrap_or_default();
        node.user_agent_name = model::USER_AGENT_NAME.to_owned();
        node.user_agent_version_type = Some(UserAgentVersionType::UserAgentVersion(
            env!("CARGO_PKG_VERSION").to_owned(),
        ));
        let mut without_static_listeners = bootstrap.clone();
        if let Some(s) = without_static_listeners.static_resources.as_mut() {
            s.listeners.clear();
        }
        let init_timeouts = [ads.cds, ads.lds];
        let init_deadline = if init_timeouts.iter().flatten().any(Option::is_none) {
            None
        } else {
            init_timeouts
                .iter()
                .flatten()
                .flatten()
                .max()
                .map(|d| now + *d)
        };
        let mut state = XdsState {
            bootstrap: Arc::new(bootstrap),
            without_static_listeners: Arc::new(without_static_listeners),
            base_dir,
            ads,
            node,
            types: ResourceType::ALL
                .into_iter()
                .map(|t| (t, TypeState::default()))
                .collect(),
            latest: XdsResources::default(),
            active_clusters: Vec::new(),
            active_listeners: Vec::new(),
            static_listeners_ready: true,
            cluster_warming: None,
            listener_warming: None,
            init_deadline,
            initialized: false,
            node_sent: false,
            running: Running::default(),
            pending: None,
            stats,
        };
        // Static listeners that name RDS route configurations warm like dynamic ones.
        let static_routes: Vec<Subscription> = state
            .static_listeners()
            .iter()
            .flat_map(rds_subscriptions)
            .collect();
        if !static_routes.is_empty() {
            state.static_listeners_ready = false;
            state.listener_warming = Some(Warming {
                deadline: deadline(now, &static_routes),
            });
        }
        state.resubscribe();
        Ok(state)
    }

    /// Where the control plane is: the ADS cluster's first endpoint.
    pub fn target(&self) -> &(String, u16) {
        &self.ads.target
    }

    /// Whether the initial fetch is over (first CDS and LDS applied, or their
    /// `initial_fetch_timeout` passed).
    pub fn is_initialized(&self) -> bool {
        self.initialized
    }

    /// The last accepted version of `kind`.
    pub fn version(&self, kind: ResourceType) -> &str {
        self.types.get(&kind).map_or("", |t| t.version.as_str())
    }

    /// The names subscribed for `kind` (EDS and RDS; empty for the wildcard types).
    pub fn subscribed(&self, kind: ResourceType) -> Vec<String> {
        self.types
            .get(&kind)
            .map(|t| t.names.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The requests that open a stream: CDS, EDS, LDS, RDS (those subscribed), each with the
    /// last accepted version and no nonce; the node goes with the first.
    pub fn on_connect(&mut self) -> Vec<DiscoveryRequest> {
        self.node_sent = false;
        for t in self.types.values_mut() {
            t.nonce.clear();
        }
        let mut out = Vec::new();
        for kind in ResourceType::ALL {
            let wanted = match kind {
                ResourceType::Cluster => self.ads.cds.is_some(),
                ResourceType::Listener => self.ads.lds.is_some(),
                _ => !self.types[&kind].names.is_empty(),
            };
            if wanted {
                out.push(self.request(kind, None));
            }
        }
        out
    }

    /// Handles one `DiscoveryResponse` received at `now`.
    pub fn on_response(&mut self, response: DiscoveryResponse, now: Instant) -> Outcome {
        let mut outcome = Outcome::default();
        let Some(kind) = ResourceType::from_type_url(&response.type_url) else {
            tracing::warn!(type_url = %response.type_url, "ignoring a response of a type weft did not subscribe to");
            return outcome;
        };
        self.stats.attempt(kind);
        if let Some(t) = self.types.get_mut(&kind) {
            t.nonce = response.nonce.clone();
            t.received = true;
        }
        let (accepted, errors) = self.accept(kind, &response);
        let before = std::mem::replace(&mut self.latest, accepted);
        let changed = before != self.latest;
        let rejected = (!errors.is_empty()).then(|| errors.join("; "));
        match &rejected {
            None => {
                if let Some(t) = self.types.get_mut(&kind) {
                    let previous = std::mem::replace(&mut t.version, response.version_info.clone());
                    t.unconfirmed.get_or_insert(previous);
                }
                tracing::info!(
                    kind = kind.short_name(),
                    version = %response.version_info,
                    resources = response.resources.len(),
                    "xDS update accepted"
                );
            }
            Some(why) => {
                self.stats.rejected(kind);
                tracing::warn!(
                    kind = kind.short_name(),
                    version = %response.version_info,
                    error = %why,
                    "xDS update rejected"
                );
            }
        }
        // Warming starts with every CDS or LDS response, even an unchanged one (the initial
        // fetch waits for it).
        match kind {
            ResourceType::Cluster => {
                let deadline = self.warming_deadline(now, ResourceType::Cluster);
                self.cluster_warming = Some(match self.cluster_warming {
                    Some(w) => w,
                    None => Warming { deadline },
                });
            }
            ResourceType::Listener => {
                let deadline = self.warming_deadline(now, ResourceType::Listener);
                self.listener_warming = Some(match self.listener_warming {
                    Some(w) => w,
                    None => Warming { deadline },
                });
            }
            ResourceType::ClusterLoadAssignment | ResourceType::RouteConfiguration => {
                outcome.apply |= changed;
            }
        }
        // New EDS/RDS subscriptions go out before the CDS/LDS ACK, as Envoy sends them.
        outcome.requests.extend(self.resubscribe());
        outcome.requests.push(self.request(kind, rejected.clone()));
        self.advance(now, &mut outcome);
        outcome.response = Some(kind);
        if rejected.is_some() {
            outcome.nacked.push(kind);
        } else if outcome.apply {
            // Counted once the configuration runs (or NACKed if it cannot).
            outcome.pending_ack = Some(kind);
        } else {
            self.stats.success(kind);
            if !self.warming(kind) {
                self.confirm(kind);
            }
        }
        outcome.invalid = rejected.clone();
        outcome.rejected = rejected;
        outcome
    }

    /// Checks time-based transitions (warming and initial fetch timeouts) at `now`.
    pub fn on_tick(&mut self, now: Instant) -> Outcome {
        let mut outcome = Outcome::default();
        self.advance(now, &mut outcome);
        outcome
    }

    /// When [`XdsState::on_tick`] should next be called, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        let init = (!self.initialized).then_some(self.init_deadline).flatten();
        [
            self.cluster_warming.and_then(|w| w.deadline),
            self.listener_warming.and_then(|w| w.deadline),
            init,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// What is running from the control plane, with the version of the response that brought
    /// each type, for the admin `/config_dump`.
    pub fn dump(&self) -> weft_proxy_config::DynamicDump {
        let mut routes: Vec<_> = self.latest.routes.values().cloned().collect();
        routes.sort_by(|a, b| a.name.cmp(&b.name));
        let mut endpoints: Vec<_> = self.latest.endpoints.values().cloned().collect();
        endpoints.sort_by(|a, b| a.cluster_name.cmp(&b.cluster_name));
        let v = |kind| self.version(kind).to_owned();
        weft_proxy_config::DynamicDump {
            clusters: self
                .active_clusters
                .iter()
                .map(|c| (v(ResourceType::Cluster), c.clone()))
                .collect(),
            listeners: self
                .active_listeners
                .iter()
                .map(|l| (v(ResourceType::Listener), l.clone()))
                .collect(),
            routes: routes
                .into_iter()
                .map(|r| (v(ResourceType::RouteConfiguration), r))
                .collect(),
            endpoints: endpoints
                .into_iter()
                .map(|e| (v(ResourceType::ClusterLoadAssignment), e))
                .collect(),
        }
    }

    /// The configuration to run now: the bootstrap's static resources, the active (warm)
    /// clusters and listeners, and the routes and endpoints received. Listeners whose source
    /// and routes did not change since the configuration last applied keep its `Arc`, so
    /// [`weft_proxy::Proxy::apply`] leaves their connections alone.
    ///
    /// Then tell the state how applying it went: [`XdsState::applied`], or
    /// [`XdsState::apply_failed`] (and [`XdsState::convert_failed`] when this fails).
    pub fn config(&mut self) -> Result<ProxyConfig, XdsError> {
        let bootstrap = if self.static_listeners_ready {
            &self.bootstrap
        } else {
            &self.without_static_listeners
        };
        let resources = XdsResources {
            listeners: self.active_listeners.clone(),
            routes: self.latest.routes.clone(),
            clusters: self.active_clusters.clone(),
            endpoints: self.latest.endpoints.clone(),
        };
        let mut config = convert_xds(bootstrap, &self.base_dir, &resources)?;
        let sources: HashMap<&str, &Listener> = bootstrap
            .static_resources
            .iter()
            .flat_map(|s| s.listeners.iter())
            .chain(resources.listeners.iter())
            .map(|l| (l.name.as_str(), l))
            .collect();
        let mut applied = HashMap::new();
        for built in &mut config.listeners {
            let Some(source) = sources.get(built.name.as_str()) else {
                continue;
            };
            let routes: Vec<Option<RouteConfiguration>> = rds_subscriptions(source)
                .iter()
                .map(|s| resources.routes.get(&s.name).cloned())
                .collect();
            if let Some(previous) = self.running.listeners.get(&built.name)
                && previous.source == **source
                && previous.routes == routes
            {
                *built = previous.built.clone();
            } else {
                // Same Listener resource, other routes: the proxy swaps the route tables
                // under running connections instead of replacing the listener.
                Arc::make_mut(built).revision = Some(revision_of(source));
            }
            applied.insert(
                built.name.clone(),
                AppliedListener {
                    source: (*source).clone(),
                    routes,
                    built: built.clone(),
                },
            );
        }
        self.pending = Some(Running {
            resources,
            listeners: applied,
        });
        Ok(config)
    }

    /// The configuration last returned by [`XdsState::config`] runs now: it becomes what
    /// rollbacks return to, the versions it brought are confirmed, and the ACK of `outcome`'s
    /// response counts as a success.
    pub fn applied(&mut self, outcome: &mut Outcome) {
        if let Some(pending) = self.pending.take() {
            self.running = pending;
        }
        for kind in ResourceType::ALL {
            if !self.warming(kind) {
                self.confirm(kind);
            }
        }
        if let Some(kind) = outcome.pending_ack.take() {
            self.stats.success(kind);
        }
    }

    /// [`weft_proxy::Proxy::apply`] refused the configuration last returned by
    /// [`XdsState::config`] (the proxy still runs the one before). As Envoy does when a
    /// listener or cluster cannot be added, the resource at fault (a listener whose address
    /// cannot be bound or whose TLS files cannot be read, a cluster whose TLS cannot be built)
    /// goes back to the version that runs (or away), with its routes, and the response that
    /// brought it is NACKed with the last version that runs and an `error_detail` naming it:
    /// in `outcome` (instead of its ACK) when that is the response handled, else as a new NACK
    /// of that type with its last nonce (weft applies listeners and clusters once warm, so the
    /// failure may show when their routes or endpoints arrive).
    ///
    /// Returns whether to try again ([`XdsState::config`], apply) without it. When the
    /// failure cannot be pinned on a dynamic resource that changed, the whole state goes back
    /// to what runs, the response handled is NACKed, and there is nothing to try again.
    pub fn apply_failed(&mut self, error: &ApplyError, outcome: &mut Outcome) -> bool {
        let (resource, cause) = self.pin(error);
        self.failed(resource, cause, outcome)
    }

    /// [`XdsState::config`] failed (the resources were checked together when accepted, so this
    /// is not expected): handled as [`XdsState::apply_failed`].
    pub fn convert_failed(&mut self, error: &XdsError, outcome: &mut Outcome) -> bool {
        let resource = error.resource.as_ref().map(|r| (r.kind, r.name.clone()));
        let cause = match resource {
            Some(_) => error.error.to_string(),
            None => error.to_string(),
        };
        self.failed(resource, cause, outcome)
    }

    /// Pins an apply error on a listener or cluster of the configuration tried, with what
    /// went wrong (in Envoy's words for a bind failure).
    fn pin(&self, error: &ApplyError) -> (Option<(ResourceType, String)>, String) {
        match error {
            ApplyError::Bind {
                name,
                address,
                source,
            } => {
                // The system's text, as Envoy words it (`strerror`), without Rust's suffix.
                let text = source.to_string();
                let text = match source.raw_os_error() {
                    Some(code) => text
                        .strip_suffix(&format!(" (os error {code})"))
                        .map_or(text.clone(), str::to_owned),
                    None => text,
                };
                (
                    Some((ResourceType::Listener, name.clone())),
                    format!("cannot bind '{address}': {text}"),
                )
            }
            ApplyError::Tls { owner, message } => {
                let tried = self.pending.as_ref().map(|p| &p.resources);
                let found = match owner {
                    TlsOwner::Cluster(name) => self
                        .static_clusters()
                        .chain(tried.into_iter().flat_map(|r| r.clusters.iter()))
                        .find(|c| c.name == *name)
                        .map(|c| (ResourceType::Cluster, c.name.clone())),
                    TlsOwner::FilterChain { listener, .. } => self
                        .static_listeners()
                        .iter()
                        .chain(tried.into_iter().flat_map(|r| r.listeners.iter()))
                        .find(|l| l.name == *listener)
                        .map(|l| (ResourceType::Listener, l.name.clone())),
                };
                match found {
                    Some(resource) => (Some(resource), message.clone()),
                    None => (None, error.to_string()),
                }
            }
        }
    }

    fn failed(
        &mut self,
        resource: Option<(ResourceType, String)>,
        cause: String,
        outcome: &mut Outcome,
    ) -> bool {
        self.pending = None;
        let attempts = outcome.failures.len() + 1;
        if let Some((kind, name)) = &resource
            && attempts < MAX_APPLY_ATTEMPTS
            && self.roll_back(*kind, name)
        {
            tracing::warn!(
                kind = kind.short_name(),
                name = %name,
                error = %cause,
                "xDS resource not applied; back to the version that runs"
            );
            outcome.failures.push(ApplyFailure {
                nack: *kind,
                resource: resource.clone(),
                cause,
            });
            self.unconfirm(*kind);
            self.nack(*kind, outcome);
            outcome.requests.extend(self.resubscribe());
            return true;
        }
        // Not pinned on a dynamic resource that changed: the proxy still runs the
        // configuration applied last, and so does the state from now on.
        tracing::error!(
            error = %cause,
            "xDS configuration not applied; keeping the running one"
        );
        self.roll_back_all();
        if let Some(kind) = outcome.pending_ack.or(outcome.response) {
            outcome.failures.push(ApplyFailure {
                nack: kind,
                resource,
                cause,
            });
            self.unconfirm(kind);
            self.nack(kind, outcome);
        }
        outcome.requests.extend(self.resubscribe());
        false
    }

    /// Puts `name` of `kind` back to the version that runs (or removes it), in the active
    /// resources and in the latest ones unless a newer version is warming there; whether that
    /// changed anything.
    fn roll_back(&mut self, kind: ResourceType, name: &str) -> bool {
        let running = &self.running.resources;
        let mut active = XdsResources {
            clusters: std::mem::take(&mut self.active_clusters),
            listeners: std::mem::take(&mut self.active_listeners),
            ..Default::default()
        };
        let before = (active.clone(), self.latest.clone());
        match kind {
            ResourceType::Cluster => {
                let tried = active.clusters.iter().find(|c| c.name == name).cloned();
                if tried.is_some()
                    && self.latest.clusters.iter().find(|c| c.name == name) == tried.as_ref()
                {
                    revert(&mut self.latest, running, kind, name);
                }
                revert(&mut active, running, kind, name);
            }
            ResourceType::Listener => {
                // Its routes stay: those it no longer needs are unsubscribed, the others are
                // the running listeners' too.
                let tried = active.listeners.iter().find(|l| l.name == name).cloned();
                if tried.is_some()
                    && self.latest.listeners.iter().find(|l| l.name == name) == tried.as_ref()
                {
                    revert(&mut self.latest, running, kind, name);
                }
                revert(&mut active, running, kind, name);
            }
            ResourceType::RouteConfiguration | ResourceType::ClusterLoadAssignment => {
                revert(&mut self.latest, running, kind, name);
            }
        }
        let changed = before != (active.clone(), self.latest.clone());
        self.active_clusters = active.clusters;
        self.active_listeners = active.listeners;
        changed
    }

    /// Back to the configuration that runs: the active clusters and listeners (and the latest
    /// ones, unless a newer set is warming), and the routes and endpoints it has.
    fn roll_back_all(&mut self) {
        let running = &self.running.resources;
        self.active_clusters = running.clusters.clone();
        self.active_listeners = running.listeners.clone();
        if self.cluster_warming.is_none() {
            self.latest.clusters = running.clusters.clone();
        }
        if self.listener_warming.is_none() {
            self.latest.listeners = running.listeners.clone();
        }
        for (name, route) in &running.routes {
            self.latest.routes.insert(name.clone(), route.clone());
        }
        for (name, assignment) in &running.endpoints {
            self.latest
                .endpoints
                .insert(name.clone(), assignment.clone());
        }
        for kind in ResourceType::ALL {
            if !self.warming(kind) {
                self.unconfirm(kind);
            }
        }
    }

    /// Whether the latest resources of `kind` wait for their routes or endpoints.
    fn warming(&self, kind: ResourceType) -> bool {
        match kind {
            ResourceType::Cluster => self.cluster_warming.is_some(),
            ResourceType::Listener => self.listener_warming.is_some(),
            _ => false,
        }
    }

    /// What the version of `kind` brought runs.
    fn confirm(&mut self, kind: ResourceType) {
        if let Some(t) = self.types.get_mut(&kind) {
            t.unconfirmed = None;
        }
    }

    /// Back to the last version of `kind` whose resources run.
    fn unconfirm(&mut self, kind: ResourceType) {
        if let Some(t) = self.types.get_mut(&kind)
            && let Some(previous) = t.unconfirmed.take()
        {
            t.version = previous;
        }
    }

    /// NACKs the last response of `kind` in `outcome`: its ACK (or NACK) becomes a NACK with
    /// the current version and every reason, or one is added. Nothing to send when no response
    /// of that type arrived on this stream.
    fn nack(&mut self, kind: ResourceType, outcome: &mut Outcome) {
        let nonce = self.types[&kind].nonce.clone();
        if nonce.is_empty() {
            return;
        }
        let message = compose(kind, outcome);
        let mut request = self.request(kind, Some(message.clone()));
        let url = kind.type_url();
        match outcome
            .requests
            .iter_mut()
            .find(|r| r.type_url == url && r.response_nonce == nonce)
        {
            Some(previous) => {
                request.node = previous.node.take().or(request.node);
                *previous = request;
            }
            None => outcome.requests.push(request),
        }
        if outcome.response == Some(kind) {
            outcome.rejected = Some(message);
        }
        if outcome.pending_ack == Some(kind) {
            outcome.pending_ack = None;
        }
        if !outcome.nacked.contains(&kind) {
            outcome.nacked.push(kind);
            self.stats.rejected(kind);
        }
    }

    fn static_listeners(&self) -> Vec<Listener> {
        self.bootstrap
            .static_resources
            .iter()
            .flat_map(|s| s.listeners.iter().cloned())
            .collect()
    }

    fn static_clusters(&self) -> impl Iterator<Item = &Cluster> {
        self.bootstrap
            .static_resources
            .iter()
            .flat_map(|s| s.clusters.iter())
    }

    /// The resources after taking `response`, and why parts of it were rejected.
    fn accept(
        &self,
        kind: ResourceType,
        response: &DiscoveryResponse,
    ) -> (XdsResources, Vec<String>) {
        let mut errors = Vec::new();
        let mut decoded = Vec::new();
        // Every named resource of the response in order, rejected ones included (they keep
        // their previous version rather than being removed).
        let mut order: Vec<String> = Vec::new();
        for any in &response.resources {
            match decode(kind, any) {
                Ok(r) if order.iter().any(|n| n == r.name()) => errors.push(format!(
                    "{} {:?}: listed twice in one response",
                    kind.label(),
                    r.name()
                )),
                Ok(r) => {
                    order.push(r.name().to_owned());
                    decoded.push(r);
                }
                Err(e) => {
                    if let Some(id) = &e.resource
                        && !id.name.is_empty()
                        && !order.contains(&id.name)
                    {
                        order.push(id.name.clone());
                    }
                    errors.push(e.to_string());
                }
            }
        }
        let subscribed = &self.types[&kind].names;
        let mut candidate = self.latest.clone();
        let mut fresh: HashSet<String> = HashSet::new();
        match kind {
            ResourceType::Cluster => {
                // State of the world: the response is the whole set; a rejected cluster keeps
                // its previous version.
                candidate.clusters = Vec::new();
                for name in &order {
                    if let Some(Resource::Cluster(c)) = decoded.iter().find(|r| r.name() == *name) {
                        fresh.insert(name.clone());
                        candidate.clusters.push((**c).clone());
                    } else if let Some(old) = self.latest.clusters.iter().find(|c| c.name == *name)
                    {
                        candidate.clusters.push(old.clone());
                    }
                }
            }
            ResourceType::Listener => {
                candidate.listeners = Vec::new();
                for name in &order {
                    if let Some(Resource::Listener(l)) = decoded.iter().find(|r| r.name() == *name)
                    {
                        fresh.insert(name.clone());
                        candidate.listeners.push((**l).clone());
                    } else if let Some(old) = self.latest.listeners.iter().find(|l| l.name == *name)
                    {
                        candidate.listeners.push(old.clone());
                    }
                }
            }
            ResourceType::RouteConfiguration => {
                for r in decoded {
                    if let Resource::RouteConfiguration(rc) = r
                        && subscribed.contains(&rc.name)
                    {
                        fresh.insert(rc.name.clone());
                        candidate.routes.insert(rc.name.clone(), *rc);
                    }
                }
            }
            ResourceType::ClusterLoadAssignment => {
                for r in decoded {
                    if let Resource::ClusterLoadAssignment(cla) = r
                        && subscribed.contains(&cla.cluster_name)
                    {
                        fresh.insert(cla.cluster_name.clone());
                        candidate.endpoints.insert(cla.cluster_name.clone(), *cla);
                    }
                }
            }
        }
        // Convert the whole candidate; a failing resource from this response is put back to
        // its previous version (or left out) and the rest tried again. A failure that cannot be
        // pinned on one of them rejects the response whole.
        for _ in 0..=response.resources.len() {
            let Err(e) = convert_xds(&self.bootstrap, &self.base_dir, &candidate) else {
                return (candidate, errors);
            };
            errors.push(e.to_string());
            match e.resource {
                Some(id) if id.kind == kind && fresh.remove(&id.name) => {
                    revert(&mut candidate, &self.latest, kind, &id.name);
                }
                _ => break,
            }
        }
        (self.latest.clone(), errors)
    }

    /// Recomputes the EDS and RDS subscriptions from the clusters and listeners (static,
    /// active and latest); returns a request for each type whose names changed, and forgets
    /// the resources no longer subscribed.
    fn resubscribe(&mut self) -> Vec<DiscoveryRequest> {
        let eds: BTreeSet<String> = self
            .static_clusters()
            .chain(self.active_clusters.iter())
            .chain(self.latest.clusters.iter())
            .filter_map(eds_subscription)
            .map(|s| s.name)
            .collect();
        let rds: BTreeSet<String> = self
            .static_listeners()
            .iter()
            .chain(self.active_listeners.iter())
            .chain(self.latest.listeners.iter())
            .flat_map(rds_subscriptions)
            .map(|s| s.name)
            .collect();
        self.latest.endpoints.retain(|k, _| eds.contains(k));
        self.latest.routes.retain(|k, _| rds.contains(k));
        let mut out = Vec::new();
        for (kind, names) in [
            (ResourceType::ClusterLoadAssignment, eds),
            (ResourceType::RouteConfiguration, rds),
        ] {
            let Some(t) = self.types.get_mut(&kind) else {
                continue;
            };
            if t.names != names {
                t.names = names;
                out.push(self.request(kind, None));
            }
        }
        out
    }

    /// When warming of the latest clusters (or listeners) gives up: the longest
    /// `initial_fetch_timeout` among the names they still wait for.
    fn warming_deadline(&self, now: Instant, kind: ResourceType) -> Option<Instant> {
        let subs: Vec<Subscription> = match kind {
            ResourceType::Cluster => self
                .latest
                .clusters
                .iter()
                .filter_map(eds_subscription)
                .collect(),
            _ => self
                .latest
                .listeners
                .iter()
                .flat_map(rds_subscriptions)
                .collect(),
        };
        deadline(now, &subs)
    }

    fn clusters_warm(&self) -> bool {
        self.static_clusters()
            .chain(self.latest.clusters.iter())
            .filter_map(eds_subscription)
            .all(|s| self.latest.endpoints.contains_key(&s.name))
    }

    fn listeners_warm(&self) -> bool {
        self.static_listeners()
            .iter()
            .chain(self.latest.listeners.iter())
            .flat_map(rds_subscriptions)
            .all(|s| self.latest.routes.contains_key(&s.name))
    }

    /// Activates warm (or timed-out) clusters and listeners, and ends the initial fetch.
    fn advance(&mut self, now: Instant, outcome: &mut Outcome) {
        let due = |w: Warming| w.deadline.is_some_and(|d| now >= d);
        if let Some(w) = self.cluster_warming
            && (self.clusters_warm() || due(w))
        {
            if !self.clusters_warm() {
                tracing::warn!("clusters applied before all their endpoints arrived");
            }
            self.cluster_warming = None;
            self.active_clusters = self.latest.clusters.clone();
            outcome.apply = true;
        }
        if let Some(w) = self.listener_warming
            && (self.listeners_warm() || due(w))
        {
            if !self.listeners_warm() {
                tracing::warn!("listeners applied before all their routes arrived");
            }
            self.listener_warming = None;
            self.active_listeners = self.latest.listeners.clone();
            self.static_listeners_ready = true;
            outcome.apply = true;
        }
        if outcome.apply {
            // Activating may drop names only the previous clusters or listeners used.
            outcome.requests.extend(self.resubscribe());
        }
        if !self.initialized {
            let fetched = |wanted: bool, kind: ResourceType, warming: &Option<Warming>| {
                !wanted || (self.types[&kind].received && warming.is_none())
            };
            let done = fetched(
                self.ads.cds.is_some(),
                ResourceType::Cluster,
                &self.cluster_warming,
            ) && fetched(
                self.ads.lds.is_some(),
                ResourceType::Listener,
                &self.listener_warming,
            ) && self.static_listeners_ready;
            if done || self.init_deadline.is_some_and(|d| now >= d) {
                self.initialized = true;
                outcome.initialized = true;
            }
        }
    }

    fn request(&mut self, kind: ResourceType, error: Option<String>) -> DiscoveryRequest {
        let node = (!self.node_sent).then(|| self.node.clone());
        self.node_sent = true;
        let t = &self.types[&kind];
        DiscoveryRequest {
            version_info: t.version.clone(),
            node,
            resource_names: t.names.iter().cloned().collect(),
            type_url: kind.type_url().to_owned(),
            response_nonce: t.nonce.clone(),
            error_detail: error.map(|message| Status {
                code: INTERNAL,
                message,
                details: Vec::new(),
            }),
            ..Default::default()
        }
    }
}

/// The `error_detail` of a NACK of `kind`: what the checks rejected in the response handled,
/// then, in Envoy's words, the resources that could not be applied and why.
fn compose(kind: ResourceType, outcome: &Outcome) -> String {
    let mut parts = Vec::new();
    if outcome.response == Some(kind)
        && let Some(invalid) = &outcome.invalid
    {
        parts.push(invalid.clone());
    }
    let failures: Vec<&ApplyFailure> = outcome.failures.iter().filter(|f| f.nack == kind).collect();
    for culprit in ResourceType::ALL {
        let named: Vec<String> = failures
            .iter()
            .filter_map(|f| match &f.resource {
                Some((k, name)) if *k == culprit => Some(format!("{name}: {}", f.cause)),
                _ => None,
            })
            .collect();
        if !named.is_empty() {
            // Envoy ends each listener's line with a newline and separates clusters by commas.
            let list = match culprit {
                ResourceType::Listener => named.iter().map(|n| format!("{n}\n")).collect(),
                _ => named.join(", "),
            };
            parts.push(format!(
                "Error adding/updating {}(s) {list}",
                culprit.label()
            ));
        }
    }
    parts.extend(
        failures
            .iter()
            .filter(|f| f.resource.is_none())
            .map(|f| f.cause.clone()),
    );
    parts.join("; ")
}

/// Puts resource `name` of `kind` back to its version in `previous` (or removes it).
fn revert(candidate: &mut XdsResources, previous: &XdsResources, kind: ResourceType, name: &str) {
    match kind {
        ResourceType::Cluster => {
            let old = previous.clusters.iter().find(|c| c.name == name);
            match (candidate.clusters.iter().position(|c| c.name == name), old) {
                (Some(i), Some(old)) => candidate.clusters[i] = old.clone(),
                (Some(i), None) => {
                    candidate.clusters.remove(i);
                }
                _ => {}
            }
        }
        ResourceType::Listener => {
            let old = previous.listeners.iter().find(|l| l.name == name);
            match (candidate.listeners.iter().position(|l| l.name == name), old) {
                (Some(i), Some(old)) => candidate.listeners[i] = old.clone(),
                (Some(i), None) => {
                    candidate.listeners.remove(i);
                }
                _ => {}
            }
        }
        ResourceType::RouteConfiguration => match previous.routes.get(name) {
            Some(old) => {
                candidate.routes.insert(name.to_owned(), old.clone());
            }
            None => {
                candidate.routes.remove(name);
            }
        },
        ResourceType::ClusterLoadAssignment => match previous.endpoints.get(name) {
            Some(old) => {
                candidate.endpoints.insert(name.to_owned(), old.clone());
            }
            None => {
                candidate.endpoints.remove(name);
            }
        },
    }
}

/// `now` plus the longest timeout among `subs`; `None` (never) if any waits forever.
fn deadline(now: Instant, subs: &[Subscription]) -> Option<Instant> {
    let mut longest = Duration::ZERO;
    for s in subs {
        longest = longest.max(s.initial_fetch_timeout?);
    }
    Some(now + longest)
}

/// A listener resource's identity for [`model::Listener::revision`]: a hash of its encoding
/// (the bootstrap it may refer to does not change during an xDS session).
fn revision_of(listener: &Listener) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    prost::Message::encode_to_vec(listener).hash(&mut h);
    format!("{:016x}", h.finish())
}

#[cfg(test)]
mod tests;
