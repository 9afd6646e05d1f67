//! `envoy.filters.http.router`: choose the cluster and host, send upstream with the route's
//! timeouts and retry policy, mirror, and turn failures into Envoy's local replies.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Body as _;
use weft_proxy_config::model::{Discovery, UpstreamProtocol};
use weft_proxy_lb::{PreviousPriorities, RandomSource};
use weft_proxy_route::{
    AttemptOutcome, ClusterRef, ClusterTarget, HashPolicy, HashPolicySpecifier, Http3Used,
    ResetReason, RetryDecision, RetryPolicy, RouteTarget, backoff, retry_decision,
};

use super::local_reply;
use super::request::Downstream;
use crate::error::{ResponseFlag, UpstreamError};
use crate::upstream::cluster::ThreadRng;
use crate::upstream::pool::SendError;
use crate::upstream::stats::inc;
use crate::upstream::{ClusterRuntime, HostRuntime};
use crate::{Body, BoxError};

/// Request bodies up to this size are buffered so the request can be retried or mirrored
/// (Envoy buffers up to the connection's buffer limit for the same reason).
const RETRY_BUFFER_LIMIT: u64 = 64 * 1024;

/// Hop-by-hop headers never forwarded in either direction.
const HOP_BY_HOP: [HeaderName; 5] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The outcome of routing, for stats and access logs.
#[derive(Debug, Default)]
pub struct RouterOutcome {
    /// Response flags set along the way.
    pub flags: Vec<ResponseFlag>,
    /// Upstream host that answered.
    pub upstream_host: Option<std::net::SocketAddr>,
    /// Cluster used.
    pub cluster: Option<String>,
    /// The response came from the upstream (not a local reply).
    pub upstream_responded: bool,
}

/// A request body that can be replayed (buffered) or only sent once (streaming).
enum ReplayBody {
    Buffered(Bytes),
    Streaming(Option<Body>),
}

impl ReplayBody {
    fn take(&mut self) -> Option<Body> {
        match self {
            Self::Buffered(b) => Some(local_reply::full(b.clone())),
            Self::Streaming(b) => b.take(),
        }
    }

    fn replayable(&self) -> bool {
        matches!(self, Self::Buffered(_))
    }
}

/// Forwards a routed request. `parts` already carry the route's request header mutations and
/// rewrites; `body` is the downstream body.
#[allow(clippy::too_many_arguments)]
pub async fn forward(
    target: &RouteTarget,
    weighted: Option<&weft_proxy_route::WeightedTarget>,
    mut parts: http::request::Parts,
    body: Body,
    ds: &Downstream<'_>,
    random: u64,
    outcome: &mut RouterOutcome,
) -> Response<Body> {
    let cluster_name = match cluster_name(target, weighted, &parts.headers) {
        Some(n) => n,
        None => {
            outcome.flags.push(ResponseFlag::NoClusterFound);
            return local_reply::reply(503, "");
        }
    };
    let Some(cluster) = ds.conn.state.cluster(&cluster_name) else {
        outcome.flags.push(ResponseFlag::NoClusterFound);
        let status = target.cluster_not_found_response_code.status().as_u16();
        return local_reply::reply(status, "");
    };
    outcome.cluster = Some(cluster_name);

    // The connection manager has checked that the route enables it (`upgrade_enabled`).
    if ds.upgrade {
        return upgrade(target, parts, body, ds, &cluster, outcome).await;
    }
    strip_hop_by_hop(&mut parts.headers, false);
    let timeout = route_timeout(target, &parts.headers);
    let hash = request_hash(
        &target.hash_policy,
        &parts.headers,
        &ds.conn.addrs,
        ds.query,
    );

    // Buffer small bodies so retries and mirrors can replay them.
    let policy = target.retry_policy.as_deref();
    let wants_replay =
        policy.is_some_and(|p| p.num_retries > 0) || !target.request_mirror_policies.is_empty();
    let mut replay = if body.is_end_stream() {
        ReplayBody::Buffered(Bytes::new())
    } else if wants_replay
        && body
            .size_hint()
            .upper()
            .is_some_and(|n| n <= RETRY_BUFFER_LIMIT)
    {
        match body.collect().await {
            Ok(c) => ReplayBody::Buffered(c.to_bytes()),
            Err(_) => {
                outcome
                    .flags
                    .push(ResponseFlag::DownstreamConnectionTermination);
                return local_reply::reply(400, "");
            }
        }
    } else {
        ReplayBody::Streaming(Some(body))
    };

    if let ReplayBody::Buffered(bytes) = &replay {
        let per_try = policy.and_then(|p| p.per_try_timeout);
        let expected = expected_timeout(timeout, per_try, None)
            .filter(|_| !ds.conn.router.suppress_envoy_headers);
        mirror(target, &parts, bytes, expected, ds, random);
    }

    let started = Instant::now();
    let idle = super::idle::effective(target.idle_timeout, ds.conn.hcm.stream_idle_timeout);
    // The connection manager tracks the stream's activity; routing restarts the idle timer
    // with the route's timeout, as Envoy's does.
    let activity = ds.activity;
    activity.touch();
    let attempt = attempts(
        &cluster,
        &mut parts,
        &mut replay,
        policy,
        &hash,
        ds,
        started,
        timeout,
        outcome,
    );
    // `None` when the route timeout fired.
    let attempt = super::idle::with_timeout(timeout, attempt);
    let waited = match idle {
        Some(idle) => activity.wait(idle, attempt).await,
        None => Ok(attempt.await),
    };
    let mut resp = match (waited, idle) {
        (Ok(Some(resp)), Some(idle)) => {
            activity.touch();
            let (parts, body) = resp.into_parts();
            Response::from_parts(parts, activity.response_body(body, idle))
        }
        (Ok(Some(resp)), None) => resp,
        (Ok(None), _) => {
            inc(&cluster.shared.stats.upstream_rq_timeout);
            outcome.flags.push(ResponseFlag::UpstreamRequestTimeout);
            local_reply::upstream_failure(&UpstreamError::Timeout)
        }
        (Err(()), _) => {
            inc(&ds.conn.stats.downstream_rq_idle_timeout);
            outcome.flags.push(ResponseFlag::StreamIdleTimeout);
            return local_reply::reply(activity.timeout_status(), "stream timeout");
        }
    };
    if !ds.conn.router.suppress_envoy_headers && outcome.upstream_responded {
        resp.headers_mut().insert(
            super::names::X_ENVOY_UPSTREAM_SERVICE_TIME,
            HeaderValue::from(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)),
        );
    }
    resp
}

/// The protocol an HTTP/1.1 request asks to upgrade to (`Connection: upgrade` plus
/// `Upgrade: <type>`), lowercased.
pub(crate) fn upgrade_type(headers: &HeaderMap) -> Option<String> {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if !connection_upgrade {
        return None;
    }
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
}

/// Whether upgrade `kind` (lowercased) is enabled for a request: by the route's
/// `upgrade_configs` when it names the type, else by the connection manager's. A route that
/// does not forward (`target` `None`: a direct response, a redirect) has only the latter.
pub(crate) fn upgrade_enabled(target: Option<&RouteTarget>, hcm: &[String], kind: &str) -> bool {
    target
        .and_then(|t| t.upgrade_configs.iter().find(|(t, _)| t == kind))
        .map(|(_, enabled)| *enabled)
        .unwrap_or_else(|| hcm.iter().any(|u| u.eq_ignore_ascii_case(kind)))
}

/// Forwards an upgrade request (WebSocket and the like) the route enables: HTTP/1.1 upstream,
/// no retries; on `101` both connections are spliced ([`super::tunnel`]). The stream idle timeout
/// covers the wait for the upstream's answer and then the tunnel, as the connection manager's
/// `max_stream_duration` does.
async fn upgrade(
    target: &RouteTarget,
    mut parts: http::request::Parts,
    body: Body,
    ds: &Downstream<'_>,
    cluster: &Arc<ClusterRuntime>,
    outcome: &mut RouterOutcome,
) -> Response<Body> {
    strip_hop_by_hop(&mut parts.headers, true);
    let downstream = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let host = match cluster.pick(None, &[], 1) {
        Ok(h) => h,
        Err(e) => {
            outcome.flags.push(e.flag());
            return local_reply::upstream_failure(&e);
        }
    };
    // The route timeout never runs for an upgrade (its request never completes), but the
    // upstream is told it as for any request.
    let per_try = target
        .retry_policy
        .as_deref()
        .and_then(|p| p.per_try_timeout);
    let expected = expected_timeout(route_timeout(target, &parts.headers), per_try, None);
    if let Some(expected) = expected
        && !ds.conn.router.suppress_envoy_headers
    {
        parts.headers.insert(
            super::names::X_ENVOY_EXPECTED_RQ_TIMEOUT_MS,
            HeaderValue::from(u64::try_from(expected.as_millis()).unwrap_or(u64::MAX)),
        );
    }
    let mut req = Request::from_parts(parts, body);
    if let Some(auto) = ds.auto_host_rewrite {
        auto.apply(req.headers_mut(), &host.hostname());
    }
    *req.uri_mut() = upstream_uri(
        req.uri(),
        req.headers(),
        false,
        cluster.shared.tls.is_some(),
    );
    let idle = super::idle::effective(target.idle_timeout, ds.conn.hcm.stream_idle_timeout);
    let activity = ds.activity;
    // Routing restarts the idle timer with the route's timeout.
    activity.touch();
    let sent = send_upgrade(&host, req, outcome);
    let sent = match idle {
        Some(idle) => activity.wait(idle, sent).await,
        None => Ok(sent.await),
    };
    let mut resp = match sent {
        Ok(Ok(resp)) => resp,
        Ok(Err(local)) => return local,
        Err(()) => {
            inc(&ds.conn.stats.downstream_rq_idle_timeout);
            outcome.flags.push(ResponseFlag::StreamIdleTimeout);
            return local_reply::reply(activity.timeout_status(), "stream timeout");
        }
    };
    activity.touch();
    cluster.shared.stats.record_status(resp.status().as_u16());
    if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
        let upstream = hyper::upgrade::on(&mut resp);
        // The request's max_requests slot, held while the tunnel is open.
        let permit = resp
            .extensions_mut()
            .remove::<crate::upstream::pool::UpgradePermit>()
            .and_then(|p| p.take());
        let limits = super::tunnel::Limits {
            idle,
            // The connection manager's, or the route's once routed.
            deadline: activity.max_duration_deadline(),
        };
        if let Some(downstream) = downstream {
            tokio::spawn(super::tunnel::run(
                downstream,
                upstream,
                activity.clone(),
                limits,
                ds.conn.stats.clone(),
                permit,
            ));
        }
    } else if let Some(idle) = idle {
        // A refused upgrade is an ordinary response: its body under the stream idle timeout.
        let (parts, body) = resp.into_parts();
        resp = Response::from_parts(parts, activity.response_body(body, idle));
    }
    *resp.version_mut() = Version::HTTP_11;
    resp
}

/// Sends an upgrade request to `host` over an HTTP/1.1 connection of its own: the response, or
/// the local reply for a failure.
async fn send_upgrade(
    host: &Arc<HostRuntime>,
    req: Request<Body>,
    outcome: &mut RouterOutcome,
) -> Result<Response<Body>, Response<Body>> {
    let checkout = match host.pool.checkout(false).await {
        Ok(c) => c,
        Err(e) => {
            outcome.flags.push(e.flag());
            return Err(local_reply::upstream_failure(&e));
        }
    };
    outcome.upstream_host = Some(host.address);
    match checkout.send(req).await {
        Ok(r) => {
            outcome.upstream_responded = true;
            Ok(r)
        }
        Err(e) => {
            outcome.flags.push(e.error.flag());
            Err(local_reply::upstream_failure(&e.error))
        }
    }
}

/// The cluster a route target names for this request.
pub(crate) fn cluster_name(
    target: &RouteTarget,
    weighted: Option<&weft_proxy_route::WeightedTarget>,
    headers: &HeaderMap,
) -> Option<String> {
    match (&target.cluster, weighted) {
        (ClusterTarget::Cluster(name), _) => Some(name.clone()),
        (ClusterTarget::ClusterHeader(h), _) => header_str(headers, h).map(str::to_owned),
        (ClusterTarget::Weighted(_), None) => None,
        (ClusterTarget::Weighted(_), Some(w)) => match &w.cluster {
            ClusterRef::Name(n) => Some(n.clone()),
            ClusterRef::Header(h) => headers
                .get(h.as_str())
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        },
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
}

/// The route timeout: `x-envoy-upstream-rq-timeout-ms` when present, else the route's
/// (`0` disables it). A route with `max_stream_duration` settings has none of its own (Envoy's
/// "new timeouts": the stream's max duration bounds the request instead).
fn route_timeout(target: &RouteTarget, headers: &HeaderMap) -> Option<Duration> {
    let from_header = headers
        .get("x-envoy-upstream-rq-timeout-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis);
    let own = if target.max_stream_duration.is_some() {
        Duration::ZERO
    } else {
        target.timeout
    };
    let t = from_header.unwrap_or(own);
    (!t.is_zero()).then_some(t)
}

/// What the route's hash policies made of a request.
#[derive(Debug, Default)]
struct RequestHash {
    /// The hash, when some policy produced one.
    hash: Option<u64>,
    /// `set-cookie` values for cookies the policies generated (a `ttl` cookie the request did
    /// not carry).
    set_cookies: Vec<HeaderValue>,
}

/// Envoy's `HashPolicyImpl::generateHash`: each policy that yields a value is combined into the
/// hash (`hash = rotl(hash, 1) ^ value`); a terminal policy stops the evaluation once there is a
/// hash, whichever policy produced it.
fn request_hash(
    policies: &[HashPolicy],
    headers: &HeaderMap,
    addrs: &crate::io::ConnectionAddrs,
    query: Option<&str>,
) -> RequestHash {
    let mut out = RequestHash::default();
    let xxh = |v: &[u8]| xxhash_rust::xxh64::xxh64(v, 0);
    for p in policies {
        let value = match &p.policy {
            HashPolicySpecifier::Header { name } => headers
                .get_all(name.as_str())
                .iter()
                .next()
                .map(|v| xxh(v.as_bytes())),
            HashPolicySpecifier::Cookie { name, ttl, path } => {
                match (cookie(headers, name).filter(|v| !v.is_empty()), ttl) {
                    (Some(v), _) => Some(xxh(v.as_bytes())),
                    (None, Some(ttl)) => {
                        let value = generated_cookie_value(addrs);
                        let header = set_cookie_value(
                            name,
                            &value,
                            path.as_deref().unwrap_or(""),
                            ttl.as_secs(),
                        );
                        if let Ok(h) = HeaderValue::from_str(&header) {
                            out.set_cookies.push(h);
                        }
                        Some(xxh(value.as_bytes()))
                    }
                    (None, None) => None,
                }
            }
            HashPolicySpecifier::ConnectionProperties { source_ip: true } => {
                Some(xxh(addrs.peer.ip().to_string().as_bytes()))
            }
            HashPolicySpecifier::QueryParameter { name } => query
                .and_then(|q| weft_proxy_route::first_query_value(q, name))
                .map(|v| xxh(v.as_bytes())),
            _ => None,
        };
        if let Some(v) = value {
            // Rotating keeps two equal policies from cancelling each other out.
            out.hash = Some(match out.hash {
                Some(h) => h.rotate_left(1) ^ v,
                None => v,
            });
        }
        if p.terminal && out.hash.is_some() {
            break;
        }
    }
    out
}

/// The value of a generated hash cookie, as Envoy's router makes it: the hex (16 lowercase
/// digits) of xxHash64 over the connection's remote address followed by its local address, both
/// printed `ip:port` (`[ip]:port` for IPv6). The same on every request of a connection, so
/// requests racing on it get the same cookie. The local address is the original destination when
/// the listener restores it (`original_dst`), as Envoy's connection reports it.
fn generated_cookie_value(addrs: &crate::io::ConnectionAddrs) -> String {
    let input = format!("{}{}", addrs.peer, addrs.original_dst);
    format!("{:016x}", xxhash_rust::xxh64::xxh64(input.as_bytes(), 0))
}

/// Envoy's `Http::Utility::makeSetCookieValue` for a hash policy cookie: the value quoted,
/// `Max-Age` unless it is zero, `Path` unless empty, then `HttpOnly`.
fn set_cookie_value(name: &str, value: &str, path: &str, max_age_secs: u64) -> String {
    let mut out = format!("{name}=\"{value}\"");
    if max_age_secs != 0 {
        out.push_str(&format!("; Max-Age={max_age_secs}"));
    }
    if !path.is_empty() {
        out.push_str("; Path=");
        out.push_str(path);
    }
    out.push_str("; HttpOnly");
    out
}

/// Envoy's `Http::Utility::parseCookieValue`: the first cookie named `name` across the `cookie`
/// headers, split at `;`, the name taken from the first non-space character to the `=`, the value
/// everything after it, with one pair of surrounding double quotes removed. Cookies without `=`
/// are skipped. The value may be empty (Envoy then treats the cookie as absent).
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter(|s| !s.is_empty())
        .filter_map(|s| {
            let eq = s.find('=')?;
            let start = s.find(|c| c != ' ').unwrap_or(eq).min(eq);
            let value = &s[eq + 1..];
            let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                Some(inner) if value.len() >= 2 => inner,
                _ => value,
            };
            Some((&s[start..eq], value))
        })
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Removes hop-by-hop headers; `te` keeps only `trailers` (gRPC needs it).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    if let Some(conn) = headers.get(header::CONNECTION).cloned()
        && let Ok(list) = conn.to_str()
    {
        for name in list.split(',') {
            let name = name.trim();
            if keep_upgrade && name.eq_ignore_ascii_case("upgrade") {
                continue;
            }
            if let Ok(h) = HeaderName::from_bytes(name.as_bytes())
                && h != header::TE
            {
                headers.remove(h);
            }
        }
    }
    for h in &HOP_BY_HOP {
        if keep_upgrade && (*h == header::UPGRADE || *h == header::CONNECTION) {
            continue;
        }
        headers.remove(h);
    }
    if let Some(te) = headers.get(header::TE) {
        let trailers = te.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
        if trailers {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        } else {
            headers.remove(header::TE);
        }
    }
}

/// Sends mirror copies (fire and forget). Mirrored requests carry `-shadow` on the host and,
/// like the first attempt, `x-envoy-expected-rq-timeout-ms` (`expected`).
fn mirror(
    target: &RouteTarget,
    parts: &http::request::Parts,
    body: &Bytes,
    expected: Option<Duration>,
    ds: &Downstream<'_>,
    random: u64,
) {
    for m in target.request_mirror_policies.iter() {
        if let Some(f) = &m.runtime_fraction
            && !f.evaluate(random)
        {
            continue;
        }
        let name = match &m.cluster {
            ClusterRef::Name(n) => n.clone(),
            ClusterRef::Header(h) => {
                match parts.headers.get(h.as_str()).and_then(|v| v.to_str().ok()) {
                    Some(v) => v.to_owned(),
                    None => continue,
                }
            }
        };
        let Some(cluster) = ds.conn.state.cluster(&name) else {
            continue;
        };
        let headers = shadow_headers(&parts.headers, expected);
        let method = parts.method.clone();
        let uri = parts.uri.clone();
        let body = body.clone();
        let scheme_https = ds.conn.tls;
        tokio::spawn(async move {
            let Ok(host) = cluster.pick(None, &[], 1) else {
                return;
            };
            let http2 = matches!(cluster.shared.config().protocol, UpstreamProtocol::Http2);
            let mut req = Request::new(local_reply::full(body));
            *req.method_mut() = method;
            *req.uri_mut() = upstream_uri(&uri, &headers, http2, scheme_https);
            *req.headers_mut() = headers;
            if http2 {
                req.headers_mut().remove(header::HOST);
            }
            if let Ok(c) = host.pool.checkout(http2).await
                && let Ok(resp) = c.send(req).await
            {
                let _ = resp.into_body().collect().await;
            }
        });
    }
}

/// The headers of a mirrored request: the host with `-shadow`, and the expected timeout.
fn shadow_headers(headers: &HeaderMap, expected: Option<Duration>) -> HeaderMap {
    let mut headers = headers.clone();
    if let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        let shadow = shadow_host(host);
        if let Ok(v) = HeaderValue::from_str(&shadow) {
            headers.insert(header::HOST, v);
        }
    }
    if let Some(expected) = expected {
        headers.insert(
            super::names::X_ENVOY_EXPECTED_RQ_TIMEOUT_MS,
            HeaderValue::from(u64::try_from(expected.as_millis()).unwrap_or(u64::MAX)),
        );
    }
    headers
}

/// Envoy's shadow host: `-shadow` appended to the host, before any port.
pub fn shadow_host(host: &str) -> String {
    match host.rsplit_once(':') {
        Some((h, port))
            if !h.ends_with(']')
                && port.chars().all(|c| c.is_ascii_digit())
                && !h.contains(':') =>
        {
            format!("{h}-shadow:{port}")
        }
        Some((h, port)) if h.ends_with(']') => format!("{h}-shadow:{port}"),
        _ => format!("{host}-shadow"),
    }
}

/// The URI to send upstream: origin-form for HTTP/1.1 (hyper writes `Host` from the header),
/// absolute for HTTP/2 (hyper derives `:scheme` and `:authority` from it).
fn upstream_uri(uri: &Uri, headers: &HeaderMap, http2: bool, https: bool) -> Uri {
    let pq = uri.path_and_query().map_or("/", |p| p.as_str());
    if !http2 {
        return pq.parse().unwrap_or_else(|_| Uri::from_static("/"));
    }
    let authority = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or("localhost");
    let scheme = if https { "https" } else { "http" };
    format!("{scheme}://{authority}{pq}")
        .parse()
        .unwrap_or_else(|_| Uri::from_static("/"))
}

/// Tries, retries and reports until a response is ready.
#[allow(clippy::too_many_arguments)]
async fn attempts(
    cluster: &Arc<ClusterRuntime>,
    parts: &mut http::request::Parts,
    replay: &mut ReplayBody,
    policy: Option<&RetryPolicy>,
    hash: &RequestHash,
    ds: &Downstream<'_>,
    started: Instant,
    timeout: Option<Duration>,
    outcome: &mut RouterOutcome,
) -> Response<Body> {
    let shared = &cluster.shared;
    // The retry priority's state lives as long as the request (Envoy's retry state).
    let mut priorities = policy
        .and_then(|p| p.previous_priorities_update_frequency)
        .map(PreviousPriorities::new);
    // Envoy evaluates the hash policies, generating their cookies, at every pick of a balancer
    // that reads the hash, and sets every cookie so generated on the upstream's response.
    let hashed_picks = cluster.hashes_requests();
    let mut set_cookies: Vec<HeaderValue> = Vec::new();
    let http2 = match shared.config().protocol {
        UpstreamProtocol::Http1 => false,
        UpstreamProtocol::Http2 => true,
        UpstreamProtocol::UseDownstream => parts.version == Version::HTTP_2,
    };
    let max_retries = policy.map_or(0, |p| p.num_retries);
    let mut tried: Vec<Arc<HostRuntime>> = Vec::new();
    let mut retry_permit = None;
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let host = match shared.config().discovery {
            Discovery::OriginalDst => Ok(cluster.original_dst_host(original_dst(parts, ds))),
            _ => {
                let prev: &[Arc<HostRuntime>] =
                    if policy.is_some_and(|p| p.retry_host_predicate_previous_hosts) {
                        &tried
                    } else {
                        &[]
                    };
                let attempts = policy.map_or(1, |p| {
                    u32::try_from(p.host_selection_retry_max_attempts.max(1)).unwrap_or(1)
                });
                if hashed_picks {
                    set_cookies.extend(hash.set_cookies.iter().cloned());
                }
                // Only retries consult the retry priority.
                let retry_priority = priorities.as_mut().filter(|_| attempt > 1);
                cluster.pick_with_priority(hash.hash, prev, attempts, retry_priority)
            }
        };
        let host = match host {
            Ok(h) => h,
            Err(e) => {
                outcome.flags.push(e.flag());
                return local_reply::upstream_failure(&e);
            }
        };
        if let Some(p) = priorities.as_mut() {
            p.on_host_attempted(host.priority());
        }
        let Some(body) = replay.take() else {
            // A streamed body was consumed by an earlier attempt: nothing to retry with.
            let e = UpstreamError::ResetBeforeHeaders {
                request_sent: true,
                detail: "request body already sent".to_owned(),
            };
            return local_reply::upstream_failure_after(&e, attempt);
        };
        // The last attempt the policy allows takes the headers; earlier ones copy them so a
        // retry starts from the same request.
        let last_attempt = attempt > max_retries;
        let mut req = Request::from_parts(request_parts(parts, last_attempt), body);
        if let Some(auto) = ds.auto_host_rewrite {
            auto.apply(req.headers_mut(), &host.hostname());
        }
        let uri = upstream_uri(&parts.uri, req.headers(), http2, shared.tls.is_some());
        *req.uri_mut() = uri;
        if http2 {
            // HTTP/2 carries the host as `:authority` (taken from the URI); a `host` header as
            // well is a protocol error to strict servers such as nginx.
            req.headers_mut().remove(header::HOST);
        }
        let per_try = policy.and_then(|p| p.per_try_timeout);
        if let Some(expected) = expected_timeout(timeout, per_try, (attempt > 1).then_some(started))
            && !ds.conn.router.suppress_envoy_headers
        {
            req.headers_mut().insert(
                super::names::X_ENVOY_EXPECTED_RQ_TIMEOUT_MS,
                HeaderValue::from(u64::try_from(expected.as_millis()).unwrap_or(u64::MAX)),
            );
        }
        if attempt > 1 && policy.is_some() && ds.vhost_attempt_count {
            req.headers_mut().insert(
                super::names::X_ENVOY_ATTEMPT_COUNT,
                HeaderValue::from(attempt),
            );
        }
        // The pool applies the circuit breakers: `max_pending_requests` while waiting for a
        // connection, `max_requests` once one is ready (counting `upstream_rq_total`).
        // The per-try idle timeout bounds the wait for the response headers like the per-try
        // timeout (nothing comes from the upstream before them), then the gaps in its body.
        let per_try_idle = policy.and_then(|p| p.per_try_idle_timeout);
        let idle_first = per_try_idle.is_some_and(|i| per_try.is_none_or(|t| i < t));
        let per_try_limit = if idle_first { per_try_idle } else { per_try };
        host.active_requests.fetch_add(1, Ordering::Relaxed);
        let result = send_once(&host, http2, req, per_try_limit).await;
        host.active_requests.fetch_sub(1, Ordering::Relaxed);
        if let Err(SendError {
            error: e @ UpstreamError::Overflow(_),
            ..
        }) = &result
        {
            // Overflow is never retried and reaches no host.
            outcome.flags.push(e.flag());
            return local_reply::upstream_failure_after(e, attempt);
        }
        outcome.upstream_host = Some(host.address);

        let (resp, err, unsent) = match result {
            Ok(resp) => (Some(resp), None, None),
            Err(SendError { error, request }) => (None, Some(error), request),
        };
        // Put an unsent request's body back so even a streaming body can be retried.
        if let (Some(req), ReplayBody::Streaming(slot)) = (unsent, &mut *replay) {
            *slot = Some(req.into_body());
        }
        if let Some(r) = &resp {
            shared.stats.record_status(r.status().as_u16());
            crate::upstream::outlier::report_status(cluster, &host, r.status().as_u16());
        }
        if let Some(e) = &err {
            if matches!(e, UpstreamError::Timeout) {
                inc(if idle_first {
                    &shared.stats.upstream_rq_per_try_idle_timeout
                } else {
                    &shared.stats.upstream_rq_per_try_timeout
                });
            }
            crate::upstream::outlier::report_local_failure(cluster, &host, e);
        }

        let retry = match (policy, &resp, &err) {
            (Some(p), Some(r), _) => retry_decision(
                p,
                &AttemptOutcome::Response {
                    status: r.status(),
                    headers: r.headers(),
                    request_was_early_data: false,
                },
            ),
            (Some(p), None, Some(e)) => retry_decision(
                p,
                &AttemptOutcome::Reset {
                    reason: reset_reason(e),
                    http3_used: Http3Used::No,
                    cluster_http3_with_tcp_fallback: false,
                    upstream_request_started: !e.is_connect_failure()
                        && !matches!(e, UpstreamError::Overflow(_)),
                },
            ),
            _ => RetryDecision::No,
        };
        let body_available =
            replay.replayable() || matches!(replay, ReplayBody::Streaming(Some(_)));
        let retries_left = attempt <= max_retries;
        let time_left = timeout.is_none_or(|t| started.elapsed() < t);
        if retry != RetryDecision::No && retries_left && body_available && time_left {
            if retry_permit.is_none() {
                retry_permit = shared.try_acquire_retry();
            }
            if retry_permit.is_some() {
                inc(&shared.stats.upstream_rq_retry);
                tried.push(host);
                if let (RetryDecision::WithBackoff, Some(p)) = (retry, policy) {
                    tokio::time::sleep(backoff(p, attempt, ThreadRng.next_random())).await;
                }
                if let Some(r) = resp {
                    // Drain the discarded response so its connection can be reused.
                    tokio::spawn(async move {
                        let _ = r.into_body().collect().await;
                    });
                }
                continue;
            }
            outcome.flags.push(ResponseFlag::UpstreamOverflow);
        } else if retry != RetryDecision::No && policy.is_some() && !retries_left {
            inc(&shared.stats.upstream_rq_retry_limit_exceeded);
            outcome.flags.push(ResponseFlag::UpstreamRetryLimitExceeded);
        }
        if attempt > 1 && resp.as_ref().is_some_and(|r| r.status().as_u16() < 500) {
            inc(&shared.stats.upstream_rq_retry_success);
        }
        return match (resp, err) {
            (Some(mut r), _) => {
                outcome.upstream_responded = true;
                strip_hop_by_hop(r.headers_mut(), false);
                for c in set_cookies {
                    r.headers_mut().append(header::SET_COOKIE, c);
                }
                // The downstream codec speaks its own version, whatever the upstream spoke.
                *r.version_mut() = Version::HTTP_11;
                match per_try_idle {
                    Some(idle) => {
                        let (parts, body) = r.into_parts();
                        let body = super::idle::Activity::new(true).response_body(body, idle);
                        Response::from_parts(parts, body)
                    }
                    None => r,
                }
            }
            (None, Some(e)) => {
                outcome.flags.push(e.flag());
                local_reply::upstream_failure_after(&e, attempt)
            }
            (None, None) => local_reply::reply(503, ""),
        };
    }
}

async fn send_once(
    host: &Arc<HostRuntime>,
    http2: bool,
    req: Request<Body>,
    per_try: Option<Duration>,
) -> Result<Response<Body>, SendError> {
    let fut = async {
        let checkout = match host.pool.checkout(http2).await {
            Ok(c) => c,
            Err(error) => {
                return Err(SendError {
                    error,
                    request: Some(req),
                });
            }
        };
        checkout.send(req).await
    };
    super::idle::with_timeout(per_try, fut)
        .await
        .unwrap_or(Err(SendError {
            error: UpstreamError::Timeout,
            request: None,
        }))
}

/// What the upstream is told to expect (`x-envoy-expected-rq-timeout-ms`): the per-try
/// timeout, bounded by what is left of the route timeout (the whole timeout on the first
/// attempt, `started` is then `None`), as Envoy computes it per attempt.
fn expected_timeout(
    route: Option<Duration>,
    per_try: Option<Duration>,
    started: Option<Instant>,
) -> Option<Duration> {
    let remaining = route.map(|t| started.map_or(t, |s| t.saturating_sub(s.elapsed())));
    match (remaining, per_try) {
        (Some(r), Some(p)) => Some(r.min(p)),
        (Some(r), None) => Some(r),
        (None, p) => p,
    }
}

fn reset_reason(e: &UpstreamError) -> ResetReason {
    match e {
        UpstreamError::ConnectFailure(_) => ResetReason::RemoteConnectionFailure,
        UpstreamError::ConnectTimeout => ResetReason::ConnectionTimeout,
        UpstreamError::Overflow(_) => ResetReason::Overflow,
        UpstreamError::NoHealthyHost => ResetReason::LocalConnectionFailure,
        UpstreamError::ResetBeforeHeaders { .. } => ResetReason::ConnectionTermination,
        UpstreamError::Timeout => ResetReason::LocalReset,
        UpstreamError::Protocol(_) => ResetReason::ProtocolError,
    }
}

/// The head of one attempt's request: the headers copied, or taken when no attempt follows
/// (`parts` then keeps none).
fn request_parts(parts: &mut http::request::Parts, take_headers: bool) -> http::request::Parts {
    let mut req = Request::new(());
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = parts.version;
    *req.headers_mut() = if take_headers {
        std::mem::take(&mut parts.headers)
    } else {
        parts.headers.clone()
    };
    req.into_parts().0
}

/// ORIGINAL_DST: the connection's original destination, or `x-envoy-original-dst-host` when
/// the cluster allows it.
fn original_dst(parts: &http::request::Parts, ds: &Downstream) -> std::net::SocketAddr {
    ds.conn.original_dst(&parts.headers)
}

/// Makes a boxed body error.
pub fn box_err(e: impl std::error::Error + Send + Sync + 'static) -> BoxError {
    Box::new(e)
}

/// Requests with these methods have no body semantics worth buffering.
pub fn method_has_body(m: &Method) -> bool {
    !matches!(
        *m,
        Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(timeout_ms: u64, msd: Option<weft_proxy_route::MaxStreamDuration>) -> RouteTarget {
        RouteTarget {
            cluster: weft_proxy_route::ClusterTarget::Cluster("a".into()),
            cluster_not_found_response_code: Default::default(),
            prefix_rewrite: None,
            regex_rewrite: None,
            host_rewrite: None,
            append_x_forwarded_host: false,
            timeout: Duration::from_millis(timeout_ms),
            idle_timeout: None,
            retry_policy: None,
            request_mirror_policies: Vec::new().into(),
            hash_policy: Vec::new(),
            max_stream_duration: msd,
            upgrade_configs: Vec::new(),
        }
    }

    #[test]
    fn max_stream_duration_settings_replace_the_route_timeout() {
        let none = HeaderMap::new();
        assert_eq!(
            route_timeout(&target(15_000, None), &none),
            Some(Duration::from_secs(15))
        );
        assert_eq!(route_timeout(&target(0, None), &none), None);
        // Any max_stream_duration settings, even empty ones, leave no route timeout.
        let settings = weft_proxy_route::MaxStreamDuration::default();
        assert_eq!(route_timeout(&target(15_000, Some(settings)), &none), None);
        // A trusted x-envoy-upstream-rq-timeout-ms still sets one.
        let mut h = HeaderMap::new();
        h.insert(
            "x-envoy-upstream-rq-timeout-ms",
            HeaderValue::from_static("250"),
        );
        assert_eq!(
            route_timeout(&target(15_000, Some(settings)), &h),
            Some(Duration::from_millis(250))
        );
    }

    #[test]
    fn shadow_requests_carry_the_expected_timeout() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("api.example.com"));
        let shadow = shadow_headers(&h, Some(Duration::from_secs(15)));
        assert_eq!(shadow[header::HOST], "api.example.com-shadow");
        assert_eq!(shadow["x-envoy-expected-rq-timeout-ms"], "15000");
        let suppressed = shadow_headers(&h, None);
        assert!(suppressed.get("x-envoy-expected-rq-timeout-ms").is_none());
    }

    #[test]
    fn shadow_hosts() {
        assert_eq!(shadow_host("foo"), "foo-shadow");
        assert_eq!(shadow_host("foo:8080"), "foo-shadow:8080");
        assert_eq!(shadow_host("[::1]:80"), "[::1]-shadow:80");
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers, deflate"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert!(h.get("x-secret").is_none());
        assert!(h.get(header::CONNECTION).is_none());
        assert_eq!(h.get(header::TE).unwrap(), "trailers");
        assert!(h.get("x-keep").is_some());
    }

    #[test]
    fn cookies_are_found() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; session=xyz; b=2"),
        );
        assert_eq!(cookie(&h, "session"), Some("xyz"));
        assert_eq!(cookie(&h, "missing"), None);
    }

    fn cookie_headers(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::COOKIE, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cookies_are_parsed_as_envoy_parses_them() {
        // One pair of double quotes is removed (a generated cookie comes back quoted).
        let h = cookie_headers(&["sid=\"0123456789abcdef\""]);
        assert_eq!(cookie(&h, "sid"), Some("0123456789abcdef"));
        let h = cookie_headers(&["sid=\""]);
        assert_eq!(cookie(&h, "sid"), Some("\""));
        // The value keeps its spaces; the name must end right at `=`.
        let h = cookie_headers(&["a=1 ;  b = 2; c"]);
        assert_eq!(cookie(&h, "a"), Some("1 "));
        assert_eq!(cookie(&h, "b"), None);
        assert_eq!(cookie(&h, "c"), None);
        // Every cookie header is read; the first match wins, even when empty.
        let h = cookie_headers(&["x=1", "sid=; sid=2"]);
        assert_eq!(cookie(&h, "sid"), Some(""));
    }

    #[test]
    fn set_cookie_values_follow_envoys_format() {
        assert_eq!(
            set_cookie_value("sid", "abc", "/app", 3600),
            "sid=\"abc\"; Max-Age=3600; Path=/app; HttpOnly"
        );
        // A zero ttl makes a session cookie; no path, no Path attribute.
        assert_eq!(
            set_cookie_value("sid", "abc", "", 0),
            "sid=\"abc\"; HttpOnly"
        );
    }

    fn addrs(peer: &str, local: &str) -> crate::io::ConnectionAddrs {
        crate::io::ConnectionAddrs {
            peer: peer.parse().unwrap(),
            local: local.parse().unwrap(),
            original_dst: local.parse().unwrap(),
        }
    }

    #[test]
    fn generated_cookies_hash_the_connections_addresses() {
        // The value Envoy 1.40 generated for a client on 127.0.0.1:40124 talking to a listener
        // on 127.0.0.1:18000.
        let a = addrs("127.0.0.1:40124", "127.0.0.1:18000");
        assert_eq!(generated_cookie_value(&a), "480caea74e2a3edc");
        let v6 = addrs("[::1]:40124", "[::1]:18000");
        assert_eq!(
            generated_cookie_value(&v6),
            format!(
                "{:016x}",
                xxhash_rust::xxh64::xxh64(b"[::1]:40124[::1]:18000", 0)
            )
        );
        // The local address is the restored original destination.
        let mut redirected = addrs("127.0.0.1:40124", "127.0.0.1:15001");
        redirected.original_dst = "127.0.0.1:18000".parse().unwrap();
        assert_eq!(generated_cookie_value(&redirected), "480caea74e2a3edc");
    }

    fn cookie_policy(name: &str, ttl: Option<u64>, path: Option<&str>) -> HashPolicy {
        HashPolicy {
            policy: HashPolicySpecifier::Cookie {
                name: name.to_owned(),
                ttl: ttl.map(Duration::from_secs),
                path: path.map(str::to_owned),
            },
            terminal: false,
        }
    }

    fn header_policy(name: &str, terminal: bool) -> HashPolicy {
        HashPolicy {
            policy: HashPolicySpecifier::Header {
                name: name.to_owned(),
            },
            terminal,
        }
    }

    fn xxh(v: &str) -> u64 {
        xxhash_rust::xxh64::xxh64(v.as_bytes(), 0)
    }

    #[test]
    fn a_missing_ttl_cookie_is_generated_and_hashed() {
        let a = addrs("127.0.0.1:40124", "127.0.0.1:18000");
        let policies = [cookie_policy("sid", Some(60), Some("/p"))];
        let out = request_hash(&policies, &HeaderMap::new(), &a, None);
        assert_eq!(out.hash, Some(xxh("480caea74e2a3edc")));
        assert_eq!(
            out.set_cookies,
            [HeaderValue::from_static(
                "sid=\"480caea74e2a3edc\"; Max-Age=60; Path=/p; HttpOnly"
            )]
        );
        // A request carrying the cookie hashes the same, and nothing is generated.
        let back = cookie_headers(&["sid=\"480caea74e2a3edc\""]);
        let out = request_hash(&policies, &back, &a, None);
        assert_eq!(out.hash, Some(xxh("480caea74e2a3edc")));
        assert!(out.set_cookies.is_empty());
        // An empty cookie counts as missing.
        let empty = cookie_headers(&["sid="]);
        assert_eq!(
            request_hash(&policies, &empty, &a, None).set_cookies.len(),
            1
        );
        // Without ttl, a missing cookie gives no hash and no cookie.
        let read_only = [cookie_policy("sid", None, None)];
        let out = request_hash(&read_only, &HeaderMap::new(), &a, None);
        assert_eq!(out.hash, None);
        assert!(out.set_cookies.is_empty());
    }

    #[test]
    fn terminal_stops_once_any_policy_produced_a_hash() {
        let a = addrs("127.0.0.1:1", "127.0.0.1:2");
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("1"));
        h.insert("x-c", HeaderValue::from_static("3"));
        // x-b is missing but terminal: the hash from x-a stops the evaluation (Envoy checks the
        // accumulated hash, not the policy's own value).
        let policies = [
            header_policy("x-a", false),
            header_policy("x-b", true),
            header_policy("x-c", false),
        ];
        assert_eq!(request_hash(&policies, &h, &a, None).hash, Some(xxh("1")));
        // Without the terminal, x-c is combined in.
        let policies = [header_policy("x-a", false), header_policy("x-c", false)];
        assert_eq!(
            request_hash(&policies, &h, &a, None).hash,
            Some(xxh("1").rotate_left(1) ^ xxh("3"))
        );
        // A terminal policy that yields nothing with no hash yet goes on.
        let policies = [header_policy("x-b", true), header_policy("x-c", false)];
        assert_eq!(request_hash(&policies, &h, &a, None).hash, Some(xxh("3")));
    }
}
