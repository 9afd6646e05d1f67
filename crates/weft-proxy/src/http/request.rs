//! The HTTP connection manager's request path: header sanitation (`x-forwarded-*`,
//! `x-request-id`, `x-envoy-*`), path normalization, routing, HTTP filters, and the response
//! headers Envoy adds.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use weft_proxy_config::model::{HttpConnectionManager, RouterFilter, ServerHeaderTransformation};
use weft_proxy_lb::RandomSource;
use weft_proxy_route::{HeaderFormatter, RequestView, RouteEntryAction};

use super::path::{PathVerdict, normalize};
use super::router::{self, RouterOutcome};
use super::{HttpStats, local_reply};
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
    /// The router filter's settings.
    pub router: RouterFilter,
    /// The connection manager's stats.
    pub stats: Arc<HttpStats>,
    /// State of its HTTP filters (rate-limit buckets, filter stats), shared by its connections.
    pub filters: Arc<super::filters::HcmFilters>,
    /// Set when the connection drains: HTTP/1.1 responses then carry `connection: close`, so
    /// clients stop reusing the connection before it closes (Envoy's drain sequence).
    pub draining: std::sync::atomic::AtomicBool,
}

impl ConnContext {
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
    /// The query string (without `?`).
    pub query: Option<&'a str>,
    /// `include_request_attempt_count` of the matched virtual host.
    pub vhost_attempt_count: bool,
}

impl Downstream<'_> {
    /// The first value of query parameter `name`, undecoded.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query?
            .split('&')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// Serves one request.
pub async fn handle(req: Request<Incoming>, cx: Arc<ConnContext>) -> Response<Body> {
    let stats = cx.stats.clone();
    inc(&stats.downstream_rq_total);
    stats.downstream_rq_active.fetch_add(1, Ordering::Relaxed);
    let http1 = req.version() != http::Version::HTTP_2;
    let grpc = local_reply::is_grpc_request(req.headers());
    let head = req.method() == http::Method::HEAD;
    let mut resp = handle_inner(req, &cx).await;
    if grpc {
        // Every local reply (no route, direct response, redirect, upstream failure, filter
        // reply) answers a gRPC client in gRPC, as Envoy's `sendLocalReply` does.
        local_reply::to_grpc(&mut resp, head);
    }
    if http1 && cx.draining.load(Ordering::Relaxed) {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    stats.downstream_rq_active.fetch_sub(1, Ordering::Relaxed);
    stats.record_status(resp.status().as_u16());
    finish_response(&mut resp, &cx.hcm);
    resp
}

async fn handle_inner(req: Request<Incoming>, cx: &ConnContext) -> Response<Body> {
    let hcm = &cx.hcm;
    let (mut parts, body) = req.into_parts();
    let body: Body = Body::new(body.map_err(|e| -> BoxError { Box::new(e) }));

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
    if let Ok(v) = HeaderValue::from_str(&authority) {
        parts.headers.insert(header::HOST, v);
    }

    // Path normalization.
    let pq = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let pq = match normalize(
        &pq,
        hcm.normalize_path,
        hcm.merge_slashes,
        hcm.escaped_slashes,
    ) {
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
    if let Ok(uri) = pq.parse() {
        parts.uri = uri;
    }

    sanitize_request_headers(&mut parts.headers, cx);

    // Routing.
    let scheme = if cx.tls { "https" } else { "http" };
    let random = ThreadRng.next_random();
    let routes = hcm.route_config.clone();
    let view = RequestView {
        method: &parts.method,
        scheme,
        authority: &authority,
        path_and_query: &pq,
        protocol: None,
        headers: &parts.headers,
    };
    let Some(matched) = routes.route(&view, random) else {
        inc(&cx.stats.downstream_rq_no_route);
        return local_reply::reply(404, "");
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
            if let Some(p) = matched.rewritten_path(&pq).and_then(|p| p.parse().ok()) {
                parts.uri = p;
            }
            if let Some(h) = matched
                .rewritten_host(&view)
                .and_then(|h| HeaderValue::from_str(&h).ok())
            {
                if target.append_x_forwarded_host
                    && let Ok(orig) = HeaderValue::from_str(&authority)
                {
                    parts.headers.append("x-forwarded-host", orig);
                }
                parts.headers.insert(header::HOST, h);
            }
            let weighted = match &target.cluster {
                weft_proxy_route::ClusterTarget::Weighted(w) => {
                    Some(w.pick(&parts.headers, random))
                }
                _ => None,
            };
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
                        headers: &snapshot,
                    },
                );
            }
            let request_snapshot = response_mutations(weighted).then(|| parts.headers.clone());
            let ds = Downstream {
                conn: cx,
                query: pq.split_once('?').map(|(_, q)| q),
                vhost_attempt_count: matched.virtual_host().include_request_attempt_count(),
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

/// Whether an address counts as internal (RFC 1918, loopback, link-local, IPv6 ULA), as
/// Envoy's `Utility::isInternalAddress` decides.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// `x-forwarded-for`, `x-forwarded-proto`, `x-envoy-internal`, `x-envoy-external-address`,
/// `x-request-id`, and removal of `x-envoy-*` from external requests.
fn sanitize_request_headers(headers: &mut HeaderMap, cx: &ConnContext) {
    let hcm = &cx.hcm;
    let peer = cx.addrs.peer.ip();
    let internal = is_internal(peer);
    if hcm.use_remote_address {
        if !hcm.skip_xff_append {
            let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
                Some(existing) => format!("{existing},{peer}"),
                None => peer.to_string(),
            };
            if let Ok(v) = HeaderValue::from_str(&xff) {
                headers.insert("x-forwarded-for", v);
            }
        }
        if internal {
            headers.insert("x-envoy-internal", HeaderValue::from_static("true"));
        } else {
            let envoy: Vec<HeaderName> = headers
                .keys()
                .filter(|k| k.as_str().starts_with("x-envoy-"))
                .cloned()
                .collect();
            for k in envoy {
                headers.remove(k);
            }
            if let Ok(v) = HeaderValue::from_str(&peer.to_string()) {
                headers.insert("x-envoy-external-address", v);
            }
        }
    }
    if hcm.use_remote_address || !headers.contains_key("x-forwarded-proto") {
        headers.insert(
            "x-forwarded-proto",
            HeaderValue::from_static(if cx.tls { "https" } else { "http" }),
        );
    }
    let keep_id = headers.contains_key("x-request-id")
        && (hcm.preserve_external_request_id || !hcm.use_remote_address || internal);
    if hcm.generate_request_id
        && !keep_id
        && let Ok(v) = HeaderValue::from_str(&uuid_v4())
    {
        headers.insert("x-request-id", v);
    }
}

/// A random (version 4) UUID.
pub fn uuid_v4() -> String {
    let mut rng = ThreadRng;
    let a = rng.next_random();
    let b = rng.next_random();
    let a = (a & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// Headers every response gets: `server`, and hop-by-hop removal.
fn finish_response(resp: &mut Response<Body>, hcm: &HttpConnectionManager) {
    let upgrade = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
    router::strip_hop_by_hop(resp.headers_mut(), upgrade);
    let server =
        HeaderValue::from_str(&hcm.server_name).unwrap_or(HeaderValue::from_static("envoy"));
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
    headers: &'a HeaderMap,
}

impl HeaderFormatter for RequestFormatter<'_> {
    fn format(&self, op: &weft_proxy_route::CommandOperator, out: &mut String) {
        use std::fmt::Write;

        use weft_proxy_route::CommandOperator as Op;
        let a = &self.cx.addrs;
        let _ = match op {
            Op::DownstreamRemoteAddress | Op::DownstreamDirectRemoteAddress => {
                write!(out, "{}", a.peer)
            }
            Op::DownstreamRemoteAddressWithoutPort
            | Op::DownstreamDirectRemoteAddressWithoutPort => {
                write!(out, "{}", a.peer.ip())
            }
            Op::DownstreamRemotePort => write!(out, "{}", a.peer.port()),
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
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(uuid_v4(), uuid_v4());
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

    #[test]
    fn internal_addresses() {
        assert!(is_internal("10.1.2.3".parse().unwrap()));
        assert!(is_internal("127.0.0.1".parse().unwrap()));
        assert!(is_internal("fd00::1".parse().unwrap()));
        assert!(!is_internal("8.8.8.8".parse().unwrap()));
    }
}
