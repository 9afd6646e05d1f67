//! The HTTP filters that run before the router, in `http_filters` order: fault injection
//! ([`fault`]), CORS ([`cors`]) and local rate limiting ([`local_ratelimit`]).
//!
//! A request goes through [`FilterChain::decode`], which either hands it to the router or answers
//! it locally; the response, whichever it is, then goes back through [`FilterChain::encode`],
//! where the filters that let the request pass add their response headers (CORS), as Envoy runs
//! encoder filters in reverse order over local replies too.
//!
//! Per route, `typed_per_filter_config` keyed by the filter's name (`envoy.filters.http.fault`...)
//! replaces a filter's configuration or, with `FilterConfig { disabled: true }`, turns it off; the
//! most specific level (route, virtual host, route configuration) wins.
//!
//! State that outlives a request (token buckets, compiled origin matchers) belongs to one
//! connection manager configuration ([`HttpConnectionManager`]) and is shared by all its
//! connections; a new configuration starts fresh, as Envoy builds new filter configs on a listener
//! update. Stats are registered by name and survive configuration changes, as Envoy's do.

pub mod cors;
pub mod fault;
pub mod local_ratelimit;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use http::{HeaderMap, Response};
use parking_lot::Mutex;
use weft_proxy_config::model::{HttpConnectionManager, HttpFilter, PerFilterConfig};
use weft_proxy_lb::RandomSource;
use weft_proxy_route::{Matched, RouteTarget, WeightedTarget};

use super::local_reply;
use super::router::RouterOutcome;
use crate::Body;
use crate::error::ResponseFlag;
use crate::upstream::cluster::ThreadRng;

/// `typed_per_filter_config` key of the fault filter.
pub const FAULT: &str = "envoy.filters.http.fault";
/// `typed_per_filter_config` key of the CORS filter.
pub const CORS: &str = "envoy.filters.http.cors";
/// `typed_per_filter_config` key of the local rate limit filter.
pub const LOCAL_RATELIMIT: &str = "envoy.filters.http.local_ratelimit";

/// What the filters decided for a request.
#[derive(Debug)]
pub enum Decoded {
    /// Every filter let it pass: forward it with the router.
    Router,
    /// A filter answered (or the chain has no router): send this response, after
    /// [`FilterChain::encode`].
    Respond(Response<Body>),
}

/// One request's pass through a connection manager's HTTP filters.
///
/// Keep it alive until the response is complete: it holds the request's share of
/// `max_active_faults`.
#[derive(Debug)]
pub struct FilterChain<'a> {
    filters: &'a [HttpFilter],
    state: Arc<HcmFilters>,
    matched: &'a Matched<'a, PerFilterConfig>,
    cluster: Option<String>,
    cors_responses: Vec<cors::CorsResponse>,
    active_faults: Vec<fault::ActiveFault>,
}

impl<'a> FilterChain<'a> {
    /// Starts a request through `hcm`'s filters; `target` and `weighted` name the upstream
    /// cluster the route picked (for the fault filter's `upstream_cluster`).
    pub fn new(
        hcm: &'a Arc<HttpConnectionManager>,
        state: Arc<HcmFilters>,
        matched: &'a Matched<'a, PerFilterConfig>,
        target: &RouteTarget,
        weighted: Option<&WeightedTarget>,
        headers: &HeaderMap,
    ) -> Self {
        Self {
            filters: &hcm.http_filters,
            state,
            matched,
            cluster: super::router::cluster_name(target, weighted, headers),
            cors_responses: Vec::new(),
            active_faults: Vec::new(),
        }
    }

    /// Runs the filters before the router over the request headers, in configuration order.
    /// Response flags (`FI`, `DI`, `RL`) go to `outcome`.
    pub async fn decode(
        &mut self,
        parts: &mut http::request::Parts,
        outcome: &mut RouterOutcome,
    ) -> Decoded {
        let filters = self.filters;
        for (index, filter) in filters.iter().enumerate() {
            match filter {
                HttpFilter::Router(_) => return Decoded::Router,
                HttpFilter::Fault(listener_config) => {
                    let config = match self.matched.most_specific_per_filter_config(FAULT) {
                        Some(PerFilterConfig::Disabled) => continue,
                        Some(PerFilterConfig::Fault(route_config)) => route_config,
                        _ => listener_config,
                    };
                    let stats = &self.state.fault_stats;
                    let verdict = fault::decode(
                        config,
                        &parts.headers,
                        self.cluster.as_deref(),
                        stats,
                        &mut ThreadRng,
                    )
                    .await;
                    if let Some(active) = verdict.active {
                        self.active_faults.push(active);
                    }
                    if verdict.delayed {
                        outcome.flags.push(ResponseFlag::DelayInjected);
                    }
                    if let Some(resp) = verdict.abort {
                        outcome.flags.push(ResponseFlag::FaultInjected);
                        return Decoded::Respond(resp);
                    }
                }
                HttpFilter::Cors => {
                    if matches!(
                        self.matched.most_specific_per_filter_config(CORS),
                        Some(PerFilterConfig::Disabled)
                    ) {
                        continue;
                    }
                    // Most specific first, as Envoy's CORS filter reads them.
                    let mut policies: Vec<_> = self
                        .matched
                        .per_filter_configs(CORS)
                        .filter_map(|c| match c {
                            PerFilterConfig::Cors(p) => Some(&**p),
                            _ => None,
                        })
                        .collect();
                    policies.reverse();
                    let origins = policies
                        .iter()
                        .find(|p| !p.allow_origin.is_empty())
                        .map(|p| self.state.origin_matcher(p));
                    match cors::decode(
                        &policies,
                        origins.as_deref(),
                        parts,
                        &self.state.cors_stats,
                        &mut ThreadRng,
                    ) {
                        cors::Verdict::Continue(None) => {}
                        cors::Verdict::Continue(Some(r)) => self.cors_responses.push(r),
                        cors::Verdict::Respond(resp) => return Decoded::Respond(resp),
                    }
                }
                HttpFilter::LocalRateLimit(listener_config) => {
                    let (config, limiter) = match self
                        .matched
                        .most_specific_per_filter_config(LOCAL_RATELIMIT)
                    {
                        Some(PerFilterConfig::Disabled) => continue,
                        Some(PerFilterConfig::LocalRateLimit(route_config)) => {
                            (&**route_config, self.state.route_limiter(route_config))
                        }
                        _ => match self.state.limiters.get(index).cloned().flatten() {
                            Some(l) => (&**listener_config, l),
                            None => continue,
                        },
                    };
                    if let Some(resp) = local_ratelimit::decode(config, &limiter, &mut ThreadRng) {
                        outcome.flags.push(ResponseFlag::RateLimited);
                        return Decoded::Respond(resp);
                    }
                }
            }
        }
        // A chain without a router: Envoy answers 404.
        Decoded::Respond(local_reply::reply(404, ""))
    }

    /// Runs the response side of the filters the request went through, in reverse order.
    pub fn encode(&self, resp: &mut Response<Body>) {
        for r in self.cors_responses.iter().rev() {
            r.apply(resp.headers_mut());
        }
    }
}

/// Filter state of one connection manager configuration, shared by its connections.
#[derive(Debug)]
pub struct HcmFilters {
    /// `http.<stat_prefix>.fault.*`.
    fault_stats: Arc<fault::FaultStats>,
    /// `http.<stat_prefix>.cors.*`.
    cors_stats: Arc<cors::CorsStats>,
    /// The limiter of each listener-level local rate limit filter, by index in `http_filters`.
    limiters: Vec<Option<Arc<local_ratelimit::Limiter>>>,
    /// Limiters of per-route local rate limit configs, by the config's address (stable: the
    /// route table belongs to the connection manager configuration this state lives with).
    route_limiters: Mutex<HashMap<usize, Arc<local_ratelimit::Limiter>>>,
    /// Compiled `allow_origin` matchers, by the address of their CORS policy.
    origin_matchers: Mutex<HashMap<usize, Arc<cors::OriginMatcher>>>,
}

impl HcmFilters {
    /// Filter state for a connection manager configuration; built once per filter chain
    /// and shared by its connections.
    pub fn new(hcm: &HttpConnectionManager) -> Self {
        Self {
            fault_stats: registered(&FAULT_STATS, &format!("http.{}.fault", hcm.stat_prefix)),
            cors_stats: registered(&CORS_STATS, &format!("http.{}.cors", hcm.stat_prefix)),
            limiters: hcm
                .http_filters
                .iter()
                .map(|f| match f {
                    HttpFilter::LocalRateLimit(c) => {
                        Some(Arc::new(local_ratelimit::Limiter::new(c)))
                    }
                    _ => None,
                })
                .collect(),
            route_limiters: Mutex::new(HashMap::new()),
            origin_matchers: Mutex::new(HashMap::new()),
        }
    }

    /// The limiter of a per-route local rate limit config: one bucket per config, as in Envoy.
    fn route_limiter(
        &self,
        config: &weft_proxy_config::model::LocalRateLimit,
    ) -> Arc<local_ratelimit::Limiter> {
        let key = std::ptr::from_ref(config) as usize;
        self.route_limiters
            .lock()
            .entry(key)
            .or_insert_with(|| Arc::new(local_ratelimit::Limiter::new(config)))
            .clone()
    }

    /// The compiled `allow_origin` of `policy`.
    fn origin_matcher(
        &self,
        policy: &weft_proxy_config::model::CorsPolicy,
    ) -> Arc<cors::OriginMatcher> {
        let key = std::ptr::from_ref(policy) as usize;
        self.origin_matchers
            .lock()
            .entry(key)
            .or_insert_with(|| Arc::new(cors::OriginMatcher::new(&policy.allow_origin)))
            .clone()
    }
}

type StatsMap<T> = Mutex<BTreeMap<String, Arc<T>>>;
static FAULT_STATS: StatsMap<fault::FaultStats> = Mutex::new(BTreeMap::new());
static CORS_STATS: StatsMap<cors::CorsStats> = Mutex::new(BTreeMap::new());
static LOCAL_RATELIMIT_STATS: StatsMap<local_ratelimit::LocalRateLimitStats> =
    Mutex::new(BTreeMap::new());

/// The stats named `prefix` in `map`, created on first use.
fn registered<T: Default>(map: &StatsMap<T>, prefix: &str) -> Arc<T> {
    map.lock().entry(prefix.to_owned()).or_default().clone()
}

/// Every filter counter, by Envoy's full name (`http.ingress_http.fault.aborts_injected`,
/// `<stat_prefix>.http_local_rate_limit.rate_limited`...), sorted.
pub fn counters() -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut add = |prefix: &str, list: Vec<(&'static str, u64)>| {
        out.extend(list.into_iter().map(|(n, v)| (format!("{prefix}.{n}"), v)));
    };
    for (p, s) in FAULT_STATS.lock().iter() {
        add(p, s.counters());
    }
    for (p, s) in CORS_STATS.lock().iter() {
        add(p, s.counters());
    }
    for (p, s) in LOCAL_RATELIMIT_STATS.lock().iter() {
        add(p, s.counters());
    }
    out.sort();
    out
}

/// Every filter gauge (`http.<stat_prefix>.fault.active_faults`), by full name, sorted.
pub fn gauges() -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = FAULT_STATS
        .lock()
        .iter()
        .flat_map(|(p, s)| {
            s.gauges()
                .into_iter()
                .map(move |(n, v)| (format!("{p}.{n}"), v))
        })
        .collect();
    out.sort();
    out
}

/// The value of the filter counter named `name` (0 when it does not exist yet).
pub fn counter(name: &str) -> u64 {
    counters()
        .into_iter()
        .find(|(n, _)| n == name)
        .map_or(0, |(_, v)| v)
}

/// Whether a uniformly drawn value falls inside `fraction` (a fresh draw per decision, as
/// Envoy's runtime `featureEnabled`).
fn sample(fraction: weft_proxy_config::model::Fraction, rng: &mut impl RandomSource) -> bool {
    fraction.sample(rng.next_random())
}

/// A local reply shaped as Envoy's `sendLocalReply` shapes it: plain text, or for a gRPC request
/// a trailers-only response built by [`local_reply::to_grpc`] with `grpc_status` when given.
fn local_reply_for(status: u16, grpc_status: Option<u32>, text: &'static str) -> Response<Body> {
    local_reply::reply_with_grpc_status(status, text, grpc_status)
}

#[cfg(test)]
mod tests;
