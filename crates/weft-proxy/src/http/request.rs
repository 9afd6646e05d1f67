//! The HTTP connection manager's request path: header sanitation (`x-forwarded-*`,
//! `x-request-id`, `x-envoy-*`), path normalization, routing, HTTP filters, and the response
//! headers Envoy adds.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{HeaderMap, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use weft_proxy_config::model::{HttpConnectionManager, RouterFilter, ServerHeaderTransformation};
use weft_proxy_lb::RandomSource;
use weft_proxy_route::{HeaderFormatter, RequestView, RouteEntryAction, Routing};

use super::HttpStats;
use super::local_reply::{self, LocalReply};
use super::path::{PathVerdict, normalize};
use super::router::{self, RouterOutcome};
use crate::io::ConnectionAddrs;
use crate::state::ProxyState;
use crate::upstream::cluster::ThreadRng;
use crate::upstream::stats::inc;
use crate::{Body, BoxError};

/// What every request on one downstream connection shares.
#[derive(Debug)]
pub struct ConnContext {
    /// Addresses.
    pub addrs: ConnectionAddrs,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// Shared proxy state (clusters).
    pub state: Arc<ProxyState>,
    /// The connection manager's settings and routes.
    pub hcm: Arc<HttpConnectionManager>,
    /// The route table, loaded per request (swapped in place by RDS updates).
    pub routes: Arc<arc_swap::ArcSwap<weft_proxy_config::model::RouteTable>>,
    /// The router filter's settings.
    pub router: RouterFilter,
    /// The connection manager's stats.
    pub stats: Arc<HttpStats>,
    /// State of its HTTP filters (rate-limit buckets, filter stats), shared by its connections.
    pub filters: Arc<super::filters::HcmFilters>,
    /// Set when the connection drains: HTTP/1.1 responses then carry `connection: close`, so
    /// clients stop reusing the connection before it closes (Envoy's drain sequence).
    pub draining: std::sync::atomic::AtomicBool,
    /// The `server` header's value (`server_name`), built once rather than per response.
    pub server_header: HeaderValue,
    /// The connection's streams (idle and request headers timeouts).
    pub streams: Arc<super::conn_timers::Streams>,
}

impl ConnContext {
    /// The `server` header a connection manager sends: its `server_name`, or `envoy` when that
    /// is not a valid header value.
    pub fn server_header(hcm: &HttpConnectionManager) -> HeaderValue {
        HeaderValue::from_str(&hcm.server_name).unwrap_or(HeaderValue::from_static("envoy"))
    }

    /// The destination for ORIGINAL_DST clusters: `x-envoy-original-dst-host` if present and
    /// valid, else the connection's original destination.
    pub fn original_dst(&self, headers: &HeaderMap) -> SocketAddr {
        headers
            .get("x-envoy-original-dst-host")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(self.addrs.original_dst)
    }
}

/// Per-request view of the downstream side, for the router.
#[derive(Debug)]
pub struct Downstream<'a> {
    /// The connection.
    pub conn: &'a ConnContext,
    /// The stream's activity (request body frames, response headers and frames), for the
    /// stream idle timeout.
    pub activity: &'a Arc<super::idle::Activity>,
    /// The query string (without `?`).
    pub query: Option<&'a str>,
    /// `include_request_attempt_count` of the matched virtual host.
    pub vhost_attempt_count: bool,
    /// The request asks for an upgrade the route enables (checked by the connection manager).
    pub upgrade: bool,
    /// The route's `auto_host_rewrite`: the host becomes the picked endpoint's hostname, if it
    /// has one (with `append_x_forwarded_host`, the original host is appended first).
    pub auto_host_rewrite: Option<AutoHostRewrite>,
}

/// A route's `auto_host_rewrite`, applied per attempt once the upstream host is picked.
#[derive(Debug, Clone, Copy)]
pub struct AutoHostRewrite {
    /// Append the original host to `x-forwarded-host` when the host is rewritten.
    pub append_x_forwarded_host: bool,
}

impl AutoHostRewrite {
    /// Sets `host` to `hostname`, as Envoy does for an endpoint with a hostname (an endpoint
    /// without one leaves the host alone).
    pub fn apply(self, headers: &mut HeaderMap, hostname: &str) {
        if hostname.is_empty() {
            return;
        }
        let Ok(new) = HeaderValue::from_str(hostname) else {
            return;
        };
        if self.append_x_forwarded_host
            && let Some(original) = headers.get(header::HOST).cloned()
        {
            headers.append(super::names::X_FORWARDED_HOST, original);
        }
        headers.insert(header::HOST, new);
    }
}

/// An HTTP/2 request Envoy's codec refuses by resetting its stream (the error makes hyper send
/// `RST_STREAM`).
#[derive(Debug, thiserror::Error)]
#[error("stream reset: {0}")]
pub struct StreamReset(&'static str);

/// Serves one request; an error resets the HTTP/2 stream.
pub async fn handle(
    mut req: Request<Incoming>,
    cx: Arc<ConnContext>,
) -> Result<Response<Body>, StreamReset> {
    // The stream counts on its connection from here, a rejected one too (its headers have
    // arrived, which stops the request headers timer).
    let stream = cx.streams.open();
    // Framing Envoy's HTTP/1 codec refuses, which hyper accepted (see `framing`).
    // A head Envoy's HTTP/1 codec refuses though hyper took it (see `framing`), then the
    // codec-level checks, before the request counts: Envoy's HTTP/1 codec answers them with a
    // local reply and closes the connection, its HTTP/2 codec resets the stream.
    let refusal = cx.streams.refusal(&stream);
    if let Some((status, text)) = refusal.or_else(|| codec_rejection(&mut req, &cx.hcm)) {
        if req.version() == http::Version::HTTP_2 {
            return Err(StreamReset(text));
        }
        let version = req.version();
        let mut resp = local_reply::reply(status, text);
        finish_response(&mut resp, &cx);
        close_after(&mut resp, version);
        return Ok(resp);
    }
    Ok(handle_request(req, cx, stream).await)
}

/// `headers_with_underscores_action` and `max_request_headers_kb` as Envoy's codecs apply them,
/// and its HTTP/1.1 codec's refusal of a request without a host: the status and text of the
/// rejection, if any. (hyper's own HTTP/1 buffer limit cannot go below 8 KiB, so smaller limits
/// are enforced here.)
fn codec_rejection(
    req: &mut Request<Incoming>,
    hcm: &HttpConnectionManager,
) -> Option<(u16, &'static str)> {
    if req.version() == http::Version::HTTP_11
        && req.uri().authority().is_none()
        && !req.headers().contains_key(header::HOST)
    {
        return Some((400, ""));
    }
    if !apply_underscore_action(req.headers_mut(), hcm.headers_with_underscores) {
        return Some((400, "Bad Request"));
    }
    let limit = usize::try_from(hcm.max_request_headers_kb)
        .unwrap_or(usize::MAX)
        .saturating_mul(1024);
    if header_bytes(req.headers()) > limit
        || req.headers().len() > usize::try_from(hcm.max_headers_count).unwrap_or(usize::MAX)
    {
        return Some((431, "Request Header Fields Too Large"));
    }
    None
}

/// The size Envoy's header limit counts: every header's name and value.
fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum()
}

async fn handle_request(
    req: Request<Incoming>,
    cx: Arc<ConnContext>,
    stream: super::conn_timers::StreamGuard,
) -> Response<Body> {
    let stats = cx.stats.clone();
    inc(&stats.downstream_rq_total);
    stats.downstream_rq_active.fetch_add(1, Ordering::Relaxed);
    let version = req.version();
    let http1 = version != http::Version::HTTP_2;
    let grpc = local_reply::is_grpc_request(req.headers());
    let head = req.method() == http::Method::HEAD;
    let mut request_id = None;
    // The stream's activity, shared with the router (stream idle timeout): `request_timeout`
    // (the whole request must arrive in time; the timer stops once it has, or once the
    // response has been produced) and the max stream duration (the whole stream must end in
    // time: the connection manager's, replaced by the route's once routed) are enforced here.
    let (parts, body) = req.into_parts();
    let body: Body = Body::new(body.map_err(|e| -> BoxError { Box::new(e) }));
    // An HTTP/1.1 upgrade request never completes: Envoy's codec takes whatever follows its
    // headers as the stream's body, so its timeouts answer as for an unfinished request (408).
    // A CONNECT is one too, and hyper reads it as bodiless.
    let upgrade = upgrade_kind(&parts);
    let complete = !(http1 && upgrade.is_some()) && hyper::body::Body::is_end_stream(&body);
    let activity = super::idle::Activity::for_stream(complete, Some(stream));
    activity.set_max_duration(super::duration::connection_manager_limit(
        cx.hcm.max_stream_duration,
    ));
    let body = if http1 && upgrade.is_some() {
        body
    } else {
        activity.request_body(body)
    };
    let inner = handle_inner(
        Request::from_parts(parts, body),
        &cx,
        &activity,
        upgrade,
        &mut request_id,
    );
    let inner = activity.within_request_timeout(cx.hcm.request_timeout, inner);
    let mut resp = match activity.within_max_duration(inner).await {
        Ok(Ok(resp)) => match activity.max_duration_deadline() {
            Some(deadline) => {
                let (parts, body) = resp.into_parts();
                Response::from_parts(parts, activity.response_body_until(body, deadline))
            }
            None => resp,
        },
        Ok(Err(())) => {
            inc(&stats.downstream_rq_timeout);
            local_reply::reply(408, "request timeout")
        }
        Err(()) => {
            inc(&stats.downstream_rq_max_duration_reached);
            // gRPC clients get DEADLINE_EXCEEDED, as from Envoy.
            local_reply::reply_with_grpc_status(
                activity.timeout_status(),
                "downstream duration timeout",
                Some(4),
            )
        }
    };
    // A request body the codec could not read (a malformed chunk) fails the upstream request;
    // Envoy's codec answers it as the client's error, not the upstream's.
    if activity.request_failed() && resp.extensions().get::<LocalReply>().is_some() {
        resp = local_reply::reply(400, "Bad Request");
    }
    // `always_set_request_id_in_response`: the request's id, on local replies too.
    if let Some(id) = request_id {
        resp.headers_mut().insert(super::names::X_REQUEST_ID, id);
    }
    if grpc {
        // Every local reply (no route, direct response, redirect, upstream failure, filter
        // reply) answers a gRPC client in gRPC, as Envoy's `sendLocalReply` does.
        local_reply::to_grpc(&mut resp, head);
    }
    stats.downstream_rq_active.fetch_sub(1, Ordering::Relaxed);
    stats.record_status(resp.status().as_u16());
    finish_response(&mut resp, &cx);
    // After the hop-by-hop strip in `finish_response`, which would remove it again. Envoy's
    // HTTP/1 codec also closes a connection whose response ended before its request did: a
    // local reply sent before the request body (or an upgrade's tunnel) was all read.
    let early = !activity.request_complete() && resp.extensions().get::<LocalReply>().is_some();
    if http1 && (early || cx.draining.load(Ordering::Relaxed)) {
        close_after(&mut resp, version);
    }
    resp
}

/// Marks an HTTP/1 response as the connection's last (`connection: close`). An HTTP/1.0 peer
/// is answered in HTTP/1.0 (hyper would append `keep-alive` to an HTTP/1.1 response to a
/// peer that asked for it).
fn close_after(resp: &mut Response<Body>, request_version: http::Version) {
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    if request_version == http::Version::HTTP_10 {
        *resp.version_mut() = http::Version::HTTP_10;
    }
}

/// The upgrade a request asks for, lowercased, as Envoy's connection manager reads it: an
/// HTTP/1.1 `Upgrade` other than `h2c` (hyper's concern), or `connect` for a CONNECT.
fn upgrade_kind(parts: &http::request::Parts) -> Option<String> {
    if parts.method == http::Method::CONNECT {
        return Some("connect".to_owned());
    }
    if parts.version == http::Version::HTTP_2 {
        return None;
    }
    router::upgrade_type(&parts.headers).filter(|t| t != "h2c")
}

/// Routes and serves one request (`upgrade`: the upgrade it asks for, see [`upgrade_kind`]);
/// `request_id` receives the request's `x-request-id` once the connection manager has set it,
/// when the response is to carry it.
async fn handle_inner(
    req: Request<Body>,
    cx: &ConnContext,
    activity: &Arc<super::idle::Activity>,
    upgrade: Option<String>,
    request_id: &mut Option<HeaderValue>,
) -> Response<Body> {
    let hcm = &cx.hcm;
    let (mut parts, body) = req.into_parts();

    // :authority / Host.
    let Some(mut authority) = authority(&parts) else {
        return local_reply::reply(400, "missing host header");
    };
    if hcm.strip_any_host_port || hcm.strip_matching_host_port {
        authority = strip_port(
            &authority,
            if hcm.strip_any_host_port {
                0
            } else {
                cx.addrs.local.port()
            },
            hcm.strip_any_host_port,
        );
    }
    // The host header becomes the authority (HTTP/2's `:authority`, a stripped port); one
    // already equal to it is kept rather than copied again.
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let host_is_authority = hosts
        .next()
        .is_some_and(|h| h.as_bytes() == authority.as_bytes())
        && hosts.next().is_none();
    if !host_is_authority && let Ok(v) = HeaderValue::from_str(&authority) {
        parts.headers.insert(header::HOST, v);
    }

    // Path normalization, on a clone of the URI's path-and-query (it shares the URI's bytes):
    // a path left as it is costs no copy. A CONNECT to an authority has no path at all, and
    // then matches only `connect_matcher` routes.
    let original_pq = parts.uri.path_and_query().cloned();
    let pathless = parts.method == http::Method::CONNECT && original_pq.is_none();
    let pq = match normalize(
        original_pq.as_ref().map_or("/", PathAndQuery::as_str),
        hcm.normalize_path,
        hcm.merge_slashes,
        hcm.escaped_slashes,
    ) {
        _ if pathless => Cow::Borrowed(""),
        PathVerdict::Continue(p) => p,
        PathVerdict::Reject => return local_reply::reply(400, ""),
        PathVerdict::Redirect(p) => {
            let mut r = local_reply::reply(307, "");
            if let Ok(v) = HeaderValue::from_str(&p) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            return r;
        }
    };
    // From here on the request's URI is origin-form: the normalized path-and-query.
    if !pathless
        && (matches!(pq, Cow::Owned(_))
            || parts.uri.scheme().is_some()
            || parts.uri.authority().is_some())
        && let Ok(uri) = pq.parse()
    {
        parts.uri = uri;
    }

    let remote = sanitize_request_headers(
        &mut parts.headers,
        &Sanitize::of(hcm),
        cx.addrs.peer,
        cx.tls,
    );
    append_via(&mut parts.headers, &hcm.via);
    if hcm.always_set_request_id_in_response {
        *request_id = parts.headers.get("x-request-id").cloned();
    }
    let protocol = match parts.version {
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };

    // Routing.
    let scheme = if cx.tls { "https" } else { "http" };
    let random = ThreadRng.next_random();
    let routes = cx.routes.load_full();
    // Envoy's `cleanInternalHeaders`, for every request (none is internal, see
    // `sanitize_request_headers`).
    for name in routes.internal_only_headers() {
        parts.headers.remove(name);
    }
    let view = RequestView {
        method: &parts.method,
        scheme,
        authority: &authority,
        path_and_query: &pq,
        protocol: None,
        headers: &parts.headers,
    };
    let routing = routes.route_request(&view, random);
    // An upgrade (CONNECT included) the matched route, or the connection manager for a route
    // that does not forward, does not enable: Envoy's 403, before any route action.
    if let (Some(routing), Some(kind)) = (&routing, &upgrade) {
        let target = match routing {
            Routing::Route(m) => match m.action() {
                RouteEntryAction::Route(target) => Some(target),
                _ => None,
            },
            Routing::TlsRedirect { .. } => None,
        };
        if !super::router::upgrade_enabled(target, &hcm.upgrades, kind) {
            return local_reply::reply(403, "");
        }
    }
    let matched = match routing {
        Some(Routing::Route(m)) => m,
        Some(Routing::TlsRedirect { location, .. }) => {
            // The virtual host's `require_tls`: Envoy's `SslRedirectRoute` answers 301 with the
            // `https` URL and nothing else (no header mutations of any level).
            let mut r = local_reply::reply(301, "");
            if let Some(l) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
                r.headers_mut().insert(header::LOCATION, l);
            }
            return r;
        }
        None => {
            inc(&cx.stats.downstream_rq_no_route);
            return local_reply::reply(404, "");
        }
    };
    // Response header values may refer to request headers (`%REQ(...)%`): keep a copy only
    // when some level has response mutations.
    let response_mutations = |w| matched.response_header_levels(w).any(|m| !m.is_empty());
    let request_snapshot = response_mutations(None).then(|| parts.headers.clone());
    let mut resp = match matched.action() {
        RouteEntryAction::DirectResponse(d) => {
            let mut r = local_reply::reply(d.status.as_u16(), d.body.clone().unwrap_or_default());
            if d.body.is_none() {
                r.headers_mut().remove(header::CONTENT_TYPE);
            }
            r
        }
        RouteEntryAction::Redirect(_) => {
            let mut r = local_reply::reply(301, "");
            if let Some(code) = redirect_code(&matched) {
                *r.status_mut() = code;
            }
            if let Some(url) = matched
                .redirect_url(&view)
                .and_then(|u| HeaderValue::from_str(&u).ok())
            {
                r.headers_mut().insert(header::LOCATION, url);
            }
            r
        }
        RouteEntryAction::Route(target) => {
            // Rewrites and request header mutations, then the HTTP filter chain.
            let mut original_path = None;
            if let Some(p) = matched.rewritten_path(&pq).and_then(|p| p.parse().ok()) {
                // Envoy records the path before a route rewrite (`insert_envoy_original_path`).
                if !cx.router.suppress_envoy_headers {
                    original_path = HeaderValue::from_str(&pq).ok();
                }
                parts.uri = p;
            }
            if let Some(h) = matched
                .rewritten_host(&view)
                .and_then(|h| HeaderValue::from_str(&h).ok())
            {
                if target.append_x_forwarded_host
                    && let Ok(orig) = HeaderValue::from_str(&authority)
                {
                    parts.headers.append(super::names::X_FORWARDED_HOST, orig);
                }
                parts.headers.insert(header::HOST, h);
            }
            // The route's max stream duration replaces the connection manager's, as Envoy
            // re-arms its timer once the route is known (before the HTTP filters).
            super::duration::on_route(
                activity,
                hcm.max_stream_duration,
                target.max_stream_duration.as_ref(),
                &mut parts.headers,
            );
            if activity
                .max_duration_deadline()
                .is_some_and(|d| d <= tokio::time::Instant::now())
            {
                // Already used up (an offset as large as the `grpc-timeout`): Envoy ends the
                // stream before the router starts, so nothing may go upstream. The connection
                // manager's max-duration wait around this future answers.
                std::future::pending::<()>().await;
            }
            if let Some(original) = original_path {
                parts
                    .headers
                    .insert(super::names::X_ENVOY_ORIGINAL_PATH, original);
            }
            let weighted = match &target.cluster {
                weft_proxy_route::ClusterTarget::Weighted(w) => {
                    Some(w.pick(&parts.headers, random))
                }
                _ => None,
            };
            // The picked weighted cluster's own host rewrite, over the route's.
            if let Some(h) = weighted
                .and_then(|w| w.host_rewrite_literal.as_deref())
                .and_then(|h| HeaderValue::from_str(h).ok())
            {
                parts.headers.insert(header::HOST, h);
            }
            if matched
                .request_header_levels(weighted)
                .any(|m| !m.is_empty())
            {
                let snapshot = parts.headers.clone();
                matched.apply_request_headers(
                    &mut parts.headers,
                    weighted,
                    &RequestFormatter {
                        cx,
                        remote,
                        protocol,
                        headers: &snapshot,
                    },
                );
            }
            let request_snapshot = response_mutations(weighted).then(|| parts.headers.clone());
            let ds = Downstream {
                conn: cx,
                activity,
                query: pq.split_once('?').map(|(_, q)| q),
                vhost_attempt_count: matched.virtual_host().include_request_attempt_count(),
                upgrade: upgrade.is_some(),
                auto_host_rewrite: matches!(
                    target.host_rewrite,
                    Some(weft_proxy_route::HostRewriteTarget::Auto)
                )
                .then_some(AutoHostRewrite {
                    append_x_forwarded_host: target.append_x_forwarded_host,
                }),
            };
            let mut outcome = RouterOutcome::default();
            let mut resp = run_filters(
                &cx.hcm,
                &matched,
                target,
                weighted,
                parts,
                body,
                &ds,
                random,
                &mut outcome,
            )
            .await;
            for f in &outcome.flags {
                tracing::debug!(flag = f.code(), "response flag");
            }
            if let Some(req_headers) = &request_snapshot {
                let formatter = RequestFormatter {
                    cx,
                    remote,
                    protocol,
                    headers: req_headers,
                };
                matched.apply_response_headers(resp.headers_mut(), weighted, &formatter);
            }
            return resp;
        }
    };
    if let Some(req_headers) = &request_snapshot {
        let formatter = RequestFormatter {
            cx,
            remote,
            protocol,
            headers: req_headers,
        };
        matched.apply_response_headers(resp.headers_mut(), None, &formatter);
    }
    resp
}

/// The HTTP filters (fault, CORS, local rate limit) in configuration order, then the router;
/// the response goes back through the filters the request passed (see [`super::filters`]).
#[allow(clippy::too_many_arguments)]
async fn run_filters(
    hcm: &Arc<HttpConnectionManager>,
    matched: &weft_proxy_route::Matched<'_, weft_proxy_config::model::PerFilterConfig>,
    target: &weft_proxy_route::RouteTarget,
    weighted: Option<&weft_proxy_route::WeightedTarget>,
    mut parts: http::request::Parts,
    body: Body,
    ds: &Downstream<'_>,
    random: u64,
    outcome: &mut RouterOutcome,
) -> Response<Body> {
    use super::filters::{Decoded, FilterChain};

    let mut chain = FilterChain::new(
        hcm,
        ds.conn.filters.clone(),
        matched,
        target,
        weighted,
        &parts.headers,
    );
    let mut resp = match chain.decode(&mut parts, outcome).await {
        Decoded::Router => {
            router::forward(target, weighted, parts, body, ds, random, outcome).await
        }
        Decoded::Respond(resp) => resp,
    };
    chain.encode(&mut resp);
    resp
}

fn redirect_code(
    m: &weft_proxy_route::Matched<'_, weft_proxy_config::model::PerFilterConfig>,
) -> Option<http::StatusCode> {
    match m.action() {
        RouteEntryAction::Redirect(r) => Some(r.response_code.status()),
        _ => None,
    }
}

fn authority(parts: &http::request::Parts) -> Option<String> {
    if let Some(a) = parts.uri.authority() {
        return Some(a.as_str().to_owned());
    }
    parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
}

/// Strips `:port` from a host when it is `port` (or any port when `any`).
fn strip_port(host: &str, port: u16, any: bool) -> String {
    let (h, p) = match host.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && (!h.contains(':') || h.ends_with(']')) => (h, p),
        _ => return host.to_owned(),
    };
    if any || p.parse::<u16>().ok() == Some(port) {
        h.to_owned()
    } else {
        host.to_owned()
    }
}

/// `headers_with_underscores_action`: drops header names containing `_`, or returns `false`
/// when the request must be rejected.
fn apply_underscore_action(
    headers: &mut HeaderMap,
    action: weft_proxy_config::model::UnderscoreHeaderAction,
) -> bool {
    use weft_proxy_config::model::UnderscoreHeaderAction as A;
    if action == A::Allow {
        return true;
    }
    let offending: Vec<header::HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().contains('_'))
        .cloned()
        .collect();
    if offending.is_empty() {
        return true;
    }
    if action == A::RejectRequest {
        return false;
    }
    for name in offending {
        headers.remove(name);
    }
    true
}

/// The address Envoy appends to `x-forwarded-for` for a loopback peer: the node's own address
/// (Envoy's `Network::Utility::getLocalAddress`, the first non-loopback address of the peer's
/// family), found once as the source address of the default route; loopback when there is none.
fn node_local_address(peer: IpAddr) -> IpAddr {
    static V4: std::sync::OnceLock<IpAddr> = std::sync::OnceLock::new();
    static V6: std::sync::OnceLock<IpAddr> = std::sync::OnceLock::new();
    // Connecting a UDP socket sends nothing; it only picks the route and so the source address.
    let probe = |bind: &str, target: &str, fallback: IpAddr| {
        std::net::UdpSocket::bind(bind)
            .and_then(|s| s.connect(target).and_then(|()| s.local_addr()))
            .map(|a| a.ip())
            .ok()
            .filter(|ip| !ip.is_unspecified() && !ip.is_loopback())
            .unwrap_or(fallback)
    };
    match peer {
        IpAddr::V4(_) => *V4.get_or_init(|| {
            probe(
                "0.0.0.0:0",
                "203.0.113.1:9",
                IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            )
        }),
        IpAddr::V6(_) => *V6.get_or_init(|| {
            probe(
                "[::]:0",
                "[2001:db8::1]:9",
                IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            )
        }),
    }
}

/// Replaces the values of the header `name` by one, the values joined by `separator`, when there
/// are several.
fn join_values(headers: &mut HeaderMap, name: &'static str, separator: &str) {
    let values: Vec<&[u8]> = headers
        .get_all(name)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if values.len() < 2 {
        return;
    }
    if let Ok(v) = HeaderValue::from_bytes(&values.join(separator.as_bytes())) {
        headers.insert(name, v);
    }
}

/// The connection manager's `via` (if set) appended to the `via` header, as Envoy does on
/// requests and responses.
fn append_via(headers: &mut HeaderMap, via: &str) {
    if via.is_empty() {
        return;
    }
    join_values(headers, "via", ", ");
    let value = match headers.get(header::VIA).and_then(|v| v.to_str().ok()) {
        Some(existing) if !existing.is_empty() => format!("{existing}, {via}"),
        _ => via.to_owned(),
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(header::VIA, v);
    }
}

/// Envoy's `getLastAddressFromXFF`: the address `skip` entries from the right end of the first
/// `x-forwarded-for` header, and whether it is the header's only entry.
fn xff_address(headers: &HeaderMap, skip: u32) -> Option<(IpAddr, bool)> {
    let mut xff = headers.get("x-forwarded-for")?.to_str().ok()?;
    for _ in 0..skip {
        xff = &xff[..xff.rfind(',')?];
    }
    let last_comma = xff.rfind(',');
    if let Some(c) = last_comma
        && c + 1 < xff.len()
    {
        xff = &xff[c + 1..];
    }
    let ip: IpAddr = xff.trim().parse().ok()?;
    Some((ip, last_comma.is_none() && skip == 0))
}

/// The `x-envoy-*` request headers Envoy removes from requests that are not internal
/// (`cleanInternalHeaders`); the first three only on edge requests (`use_remote_address`).
const EDGE_ONLY_INTERNAL_HEADERS: &[&str] = &[
    "x-envoy-decorator-operation",
    "x-envoy-downstream-service-cluster",
    "x-envoy-downstream-service-node",
    // Not in Envoy's list, but Envoy 1.40 does not forward a client's value from an edge
    // either, while an internal hop keeps it (both measured by the parity tests); weft sets it
    // itself when a route rewrites the path.
    "x-envoy-original-path",
];
const INTERNAL_HEADERS: &[&str] = &[
    "x-envoy-retriable-status-codes",
    "x-envoy-retriable-header-names",
    "x-envoy-retry-on",
    "x-envoy-retry-grpc-on",
    "x-envoy-max-retries",
    "x-envoy-upstream-alt-stat-name",
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-force-trace",
    "x-envoy-ip-tags",
    "x-envoy-original-url",
    "x-envoy-hedge-on-per-try-timeout",
];

/// The connection manager settings [`sanitize_request_headers`] reads.
#[derive(Debug, Clone, Copy, Default)]
struct Sanitize {
    use_remote_address: bool,
    skip_xff_append: bool,
    xff_num_trusted_hops: u32,
    preserve_external_request_id: bool,
    generate_request_id: bool,
}

impl Sanitize {
    fn of(hcm: &HttpConnectionManager) -> Self {
        Self {
            use_remote_address: hcm.use_remote_address,
            skip_xff_append: hcm.skip_xff_append,
            xff_num_trusted_hops: hcm.xff_num_trusted_hops,
            preserve_external_request_id: hcm.preserve_external_request_id,
            generate_request_id: hcm.generate_request_id,
        }
    }
}

/// `x-forwarded-for`, `x-forwarded-proto`, `x-envoy-external-address`, `x-request-id`, and
/// removal of internal `x-envoy-*` headers, as Envoy's `mutateRequestHeaders` does. Returns the
/// downstream address the request is attributed to (`%DOWNSTREAM_REMOTE_ADDRESS%`): the peer, or
/// the trusted client address from `x-forwarded-for` (port 0).
///
/// No request is internal: weft does not read `internal_address_config`, and Envoy 1.40 without
/// one treats no address as internal (loopback and RFC 1918 included), so `x-envoy-internal` is
/// only ever removed.
fn sanitize_request_headers(
    headers: &mut HeaderMap,
    hcm: &Sanitize,
    peer: SocketAddr,
    tls: bool,
) -> SocketAddr {
    let scheme = HeaderValue::from_static(if tls { "https" } else { "http" });
    // One pass over the request's names saves hashing the ~20 names below when, as usual,
    // none is an `x-envoy-` header.
    let envoy_headers = headers
        .keys()
        .any(|name| name.as_str().starts_with("x-envoy-"));
    if envoy_headers {
        headers.remove("x-envoy-internal");
    }
    // Envoy keeps one x-forwarded-for, its values joined, before reading or appending to it.
    join_values(headers, "x-forwarded-for", ",");
    let hops = hcm.xff_num_trusted_hops;
    let mut remote = None;
    if hcm.use_remote_address {
        // With trusted proxies in front, the client is read from XFF before appending to it.
        if hops > 0 {
            remote = xff_address(headers, hops - 1).map(|(ip, _)| SocketAddr::new(ip, 0));
        }
        if !hcm.skip_xff_append {
            let ip = if peer.ip().is_loopback() {
                node_local_address(peer.ip())
            } else {
                peer.ip()
            };
            let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
                Some(existing) if !existing.is_empty() => format!("{existing},{ip}"),
                _ => ip.to_string(),
            };
            if let Ok(v) = HeaderValue::from_str(&xff) {
                headers.insert(super::names::X_FORWARDED_FOR, v);
            }
        }
        // An untrusted previous hop's x-forwarded-proto is overwritten.
        if hops == 0 || !headers.contains_key("x-forwarded-proto") {
            headers.insert(super::names::X_FORWARDED_PROTO, scheme.clone());
        }
    } else {
        remote = xff_address(headers, hops).map(|(ip, _)| SocketAddr::new(ip, 0));
    }
    if !headers.contains_key("x-forwarded-proto") {
        headers.insert(super::names::X_FORWARDED_PROTO, scheme);
    }
    let remote = remote.unwrap_or(peer);
    let edge = hcm.use_remote_address;
    let edge_only = if edge {
        EDGE_ONLY_INTERNAL_HEADERS
    } else {
        &[]
    };
    if envoy_headers {
        for name in INTERNAL_HEADERS.iter().chain(edge_only) {
            headers.remove(*name);
        }
    }
    if edge && let Ok(v) = HeaderValue::from_str(&remote.ip().to_string()) {
        headers.insert(super::names::X_ENVOY_EXTERNAL_ADDRESS, v);
    }
    let force = edge && !hcm.preserve_external_request_id;
    if hcm.generate_request_id
        && (force || !headers.contains_key("x-request-id"))
        && let Ok(v) = HeaderValue::from_bytes(&uuid_v4())
    {
        headers.insert(super::names::X_REQUEST_ID, v);
    }
    remote
}

/// A random (version 4) UUID, as its 36 lowercase characters.
pub fn uuid_v4() -> [u8; 36] {
    let mut rng = ThreadRng;
    let a = (rng.next_random() & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    let b = (rng.next_random() & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format_uuid((u128::from(a) << 64) | u128::from(b))
}

/// `value` in the UUID text form (`8-4-4-4-12` lowercase hex digits).
fn format_uuid(value: u128) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Formatted by hand into a buffer (every request on an edge gets one): no `format!`.
    let mut out = [b'-'; 36];
    let mut nibble = 32;
    for (i, byte) in out.iter_mut().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            continue;
        }
        nibble -= 1;
        *byte = HEX[usize::from(((value >> (nibble * 4)) & 0xf) as u8)];
    }
    out
}

/// Headers every response gets: `server`, and hop-by-hop removal.
/// The bytes of a local reply the connection writes itself, where hyper cannot answer (a timer
/// fired while a request's headers arrive, a request hyper could not parse): `status` with
/// `body` as text, the headers of any local reply, and `connection: close`, as Envoy's codec
/// answers before closing.
pub(super) fn connection_reply(cx: &ConnContext, status: u16, body: &str) -> bytes::Bytes {
    let mut resp = local_reply::reply(status, body.to_owned());
    finish_response(&mut resp, cx);
    let mut out = Vec::with_capacity(256);
    let reason = resp.status().canonical_reason().unwrap_or("");
    out.extend_from_slice(format!("HTTP/1.1 {} {reason}\r\n", resp.status().as_u16()).as_bytes());
    for (name, value) in resp.headers() {
        if name == header::CONNECTION || name == header::DATE {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"date: ");
    out.extend_from_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
    out.extend_from_slice(b"\r\nconnection: close\r\n\r\n");
    out.extend_from_slice(body.as_bytes());
    out.into()
}

fn finish_response(resp: &mut Response<Body>, cx: &ConnContext) {
    let hcm = &cx.hcm;
    let upgrade = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
    router::strip_hop_by_hop(resp.headers_mut(), upgrade);
    append_via(resp.headers_mut(), &hcm.via);
    let server = cx.server_header.clone();
    match hcm.server_header_transformation {
        ServerHeaderTransformation::Overwrite => {
            resp.headers_mut().insert(header::SERVER, server);
        }
        ServerHeaderTransformation::AppendIfAbsent => {
            resp.headers_mut().entry(header::SERVER).or_insert(server);
        }
        ServerHeaderTransformation::PassThrough => {}
    }
}

/// Renders `%VAR%` command operators in header values.
struct RequestFormatter<'a> {
    cx: &'a ConnContext,
    /// The downstream address the request is attributed to (trusted XFF hops applied).
    remote: SocketAddr,
    /// `%PROTOCOL%`.
    protocol: &'static str,
    headers: &'a HeaderMap,
}

impl HeaderFormatter for RequestFormatter<'_> {
    fn format(&self, op: &weft_proxy_route::CommandOperator, out: &mut String) {
        use std::fmt::Write;

        use weft_proxy_route::CommandOperator as Op;
        let a = &self.cx.addrs;
        let _ = match op {
            Op::DownstreamRemoteAddress => write!(out, "{}", self.remote),
            Op::DownstreamRemoteAddressWithoutPort => write!(out, "{}", self.remote.ip()),
            Op::DownstreamRemotePort => write!(out, "{}", self.remote.port()),
            Op::DownstreamDirectRemoteAddress => write!(out, "{}", a.peer),
            Op::DownstreamDirectRemoteAddressWithoutPort => write!(out, "{}", a.peer.ip()),
            Op::Protocol => {
                out.push_str(self.protocol);
                Ok(())
            }
            Op::DownstreamLocalAddress => write!(out, "{}", a.local),
            Op::DownstreamLocalAddressWithoutPort => write!(out, "{}", a.local.ip()),
            Op::DownstreamLocalPort => write!(out, "{}", a.local.port()),
            Op::Hostname => write!(out, "{}", std::env::var("HOSTNAME").unwrap_or_default()),
            Op::RequestHeader(h) => {
                let v = self
                    .headers
                    .get(&h.name)
                    .or_else(|| h.alternative.as_ref().and_then(|alt| self.headers.get(alt)))
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let v = h.max_length.map_or(v, |n| v.get(..n).unwrap_or(v));
                out.push_str(v);
                Ok(())
            }
            // Not known at this point of the request (or not tracked yet): renders empty, as
            // Envoy renders an unavailable value in a header.
            _ => Ok(()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_look_like_v4() {
        let u = String::from_utf8(uuid_v4().to_vec()).unwrap();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
        for (i, c) in u.chars().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                assert_eq!(c, '-', "{u}");
            } else {
                assert!(c.is_ascii_hexdigit() && !c.is_ascii_uppercase(), "{u}");
            }
        }
        assert_ne!(uuid_v4(), uuid_v4());
        let value = 0x0123_4567_89ab_4def_8edc_ba98_7654_3210_u128;
        assert_eq!(&format_uuid(value), b"01234567-89ab-4def-8edc-ba9876543210");
    }

    #[test]
    fn port_stripping() {
        assert_eq!(strip_port("example.com:8080", 8080, false), "example.com");
        assert_eq!(
            strip_port("example.com:9090", 8080, false),
            "example.com:9090"
        );
        assert_eq!(strip_port("example.com:9090", 0, true), "example.com");
        assert_eq!(strip_port("[::1]:80", 80, false), "[::1]");
        assert_eq!(strip_port("::1", 80, true), "::1");
    }

    fn hcm(use_remote_address: bool, hops: u32) -> Sanitize {
        Sanitize {
            use_remote_address,
            xff_num_trusted_hops: hops,
            generate_request_id: true,
            ..Sanitize::default()
        }
    }

    fn hmap(list: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in list {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn underscore_headers_are_allowed_dropped_or_rejected() {
        use weft_proxy_config::model::UnderscoreHeaderAction as A;
        let mut h = hmap(&[("x_under", "1"), ("x-fine", "2")]);
        assert!(apply_underscore_action(&mut h, A::Allow));
        assert_eq!(h.len(), 2);
        assert!(!apply_underscore_action(&mut h, A::RejectRequest));
        assert!(apply_underscore_action(&mut h, A::DropHeader));
        assert!(h.get("x_under").is_none());
        assert_eq!(h["x-fine"], "2");
        assert!(apply_underscore_action(&mut h, A::RejectRequest));
    }

    #[test]
    fn header_bytes_count_names_and_values() {
        assert_eq!(header_bytes(&hmap(&[("ab", "cde"), ("f", "")])), 6);
    }

    #[test]
    fn xff_address_skips_from_the_right() {
        let h = hmap(&[("x-forwarded-for", "192.0.2.1, 10.1.2.3")]);
        assert_eq!(
            xff_address(&h, 0),
            Some(("10.1.2.3".parse().unwrap(), false))
        );
        assert_eq!(
            xff_address(&h, 1),
            Some(("192.0.2.1".parse().unwrap(), false))
        );
        assert_eq!(xff_address(&h, 2), None);
        let single = hmap(&[("x-forwarded-for", " 198.51.100.1 ")]);
        assert_eq!(
            xff_address(&single, 0),
            Some(("198.51.100.1".parse().unwrap(), true))
        );
        assert_eq!(xff_address(&hmap(&[("x-forwarded-for", "junk")]), 0), None);
    }

    #[test]
    fn edge_request_from_a_public_peer() {
        let mut h = hmap(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-proto", "https"),
            ("x-request-id", "client"),
            ("x-envoy-internal", "true"),
            ("x-envoy-retry-on", "5xx"),
            ("x-envoy-downstream-service-cluster", "spoofed"),
            ("x-envoy-fault-abort-request", "503"),
        ]);
        let peer: SocketAddr = "198.51.100.9:5000".parse().unwrap();
        let remote = sanitize_request_headers(&mut h, &hcm(true, 0), peer, false);
        assert_eq!(remote, peer);
        assert_eq!(h["x-forwarded-for"], "203.0.113.7,198.51.100.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-envoy-external-address"], "198.51.100.9");
        assert_ne!(h["x-request-id"], "client");
        for gone in [
            "x-envoy-internal",
            "x-envoy-retry-on",
            "x-envoy-downstream-service-cluster",
        ] {
            assert!(h.get(gone).is_none(), "{gone}");
        }
        // Not an internal header: header-controlled faults keep working.
        assert_eq!(h["x-envoy-fault-abort-request"], "503");
    }

    #[test]
    fn loopback_peer_appends_the_node_address() {
        let mut h = HeaderMap::new();
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        sanitize_request_headers(&mut h, &hcm(true, 0), peer, false);
        let node = node_local_address(peer.ip());
        assert_eq!(h["x-forwarded-for"], node.to_string().as_str());
        // The external address is still the peer.
        assert_eq!(h["x-envoy-external-address"], "127.0.0.1");
    }

    #[test]
    fn trusted_hops_pick_the_client_from_xff() {
        let mut h = hmap(&[
            ("x-forwarded-for", "192.0.2.1, 10.1.2.3"),
            ("x-forwarded-proto", "https"),
        ]);
        let peer: SocketAddr = "198.51.100.9:5000".parse().unwrap();
        let remote = sanitize_request_headers(&mut h, &hcm(true, 1), peer, false);
        assert_eq!(remote, "10.1.2.3:0".parse().unwrap());
        assert_eq!(h["x-envoy-external-address"], "10.1.2.3");
        assert_eq!(h["x-forwarded-for"], "192.0.2.1, 10.1.2.3,198.51.100.9");
        // A trusted previous hop's x-forwarded-proto is kept.
        assert_eq!(h["x-forwarded-proto"], "https");
    }

    #[test]
    fn internal_hop_keeps_xff_proto_and_request_id() {
        let mut h = hmap(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-proto", "https"),
            ("x-request-id", "client"),
            ("x-envoy-downstream-service-cluster", "upstream-proxy"),
            ("x-envoy-max-retries", "3"),
        ]);
        let peer: SocketAddr = "10.0.0.5:5000".parse().unwrap();
        let remote = sanitize_request_headers(&mut h, &hcm(false, 0), peer, true);
        assert_eq!(remote, "198.51.100.1:0".parse().unwrap());
        assert_eq!(h["x-forwarded-for"], "198.51.100.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-request-id"], "client");
        assert!(h.get("x-envoy-external-address").is_none());
        // Not an edge request: only the edge-only headers survive.
        assert_eq!(h["x-envoy-downstream-service-cluster"], "upstream-proxy");
        assert!(h.get("x-envoy-max-retries").is_none());
    }

    #[test]
    fn original_path_from_a_client_survives_only_an_internal_hop() {
        let peer: SocketAddr = "10.0.0.5:5000".parse().unwrap();
        for (edge, kept) in [(false, true), (true, false)] {
            let mut h = hmap(&[("x-envoy-original-path", "/client")]);
            sanitize_request_headers(&mut h, &hcm(edge, 0), peer, false);
            assert_eq!(
                h.contains_key("x-envoy-original-path"),
                kept,
                "edge: {edge}"
            );
        }
    }

    #[test]
    fn repeated_xff_headers_are_joined_before_use() {
        let mut h = hmap(&[
            ("x-forwarded-for", "192.0.2.9"),
            ("x-forwarded-for", "10.9.9.9"),
        ]);
        let peer: SocketAddr = "198.51.100.9:5000".parse().unwrap();
        let remote = sanitize_request_headers(&mut h, &hcm(true, 1), peer, false);
        assert_eq!(remote, "10.9.9.9:0".parse().unwrap());
        assert_eq!(h["x-forwarded-for"], "192.0.2.9,10.9.9.9,198.51.100.9");
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
    }

    #[test]
    fn auto_host_rewrite_uses_the_endpoint_hostname() {
        let mut h = hmap(&[("host", "api.example.com")]);
        let append = AutoHostRewrite {
            append_x_forwarded_host: true,
        };
        append.apply(&mut h, "");
        assert_eq!(h["host"], "api.example.com");
        assert!(h.get("x-forwarded-host").is_none());
        append.apply(&mut h, "b.backend.internal");
        assert_eq!(h["host"], "b.backend.internal");
        assert_eq!(h["x-forwarded-host"], "api.example.com");
        let mut plain = hmap(&[("host", "api.example.com")]);
        AutoHostRewrite {
            append_x_forwarded_host: false,
        }
        .apply(&mut plain, "b.backend.internal");
        assert_eq!(plain["host"], "b.backend.internal");
        assert!(plain.get("x-forwarded-host").is_none());
    }

    #[test]
    fn via_is_appended_when_configured() {
        let mut h = hmap(&[("via", "1.1 a"), ("via", "1.1 b")]);
        append_via(&mut h, "proxy");
        assert_eq!(h["via"], "1.1 a, 1.1 b, proxy");
        let mut none = HeaderMap::new();
        append_via(&mut none, "proxy");
        assert_eq!(none["via"], "proxy");
        append_via(&mut none, "");
        assert_eq!(none["via"], "proxy");
    }
}
