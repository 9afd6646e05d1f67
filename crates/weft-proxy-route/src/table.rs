//! The compiled route table: virtual host selection and route matching.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, Method};
use regex::bytes::Regex;

use crate::action::{
    DEFAULT_MAX_DIRECT_RESPONSE_BODY_SIZE, HostRewriteTarget, Inherited, RedirectPathTarget,
    RouteEntryAction, WeightedTarget, check_mirror_policies, compile_action, header_name,
};
use crate::config::{
    FractionalPercent, MultiValueHeaders, PathSpecifier, RequestMirrorPolicy, Route,
    RouteConfiguration, TlsRequirement, VirtualHost,
};
use crate::error::RouteConfigError;
use crate::headers::{HeaderFormatter, HeaderMutations, apply_header_mutations};
use crate::matchers::{
    CompiledHeaderMatcher, CompiledQueryMatcher, HeaderSource, all_headers_match,
    compile_full_match, compile_header_matchers, starts_with_ignore_case,
};
use crate::retry::RetryPolicy;
use crate::rewrite::{RedirectParts, RedirectRequest, path_without_query, prefix_rewrite};

mod index;

use index::{DomainIndex, PathIndex};

/// What the router knows about a request when it picks a route.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// `:method`.
    pub method: &'a Method,
    /// `:scheme` as Envoy routes on it (`x-forwarded-proto`, set by the connection manager).
    pub scheme: &'a str,
    /// `:authority` (or HTTP/1 `Host`), after any port stripping the connection manager does
    /// (`strip_matching_host_port`/`strip_any_host_port` are the caller's business).
    pub authority: &'a str,
    /// `:path` with its query string; empty when the request has no `:path` (plain CONNECT), in
    /// which case only `connect_matcher` routes can match.
    pub path_and_query: &'a str,
    /// `:protocol` of an extended CONNECT, if any.
    pub protocol: Option<&'a str>,
    /// The other request headers.
    pub headers: &'a HeaderMap,
}

impl<'a> RequestView<'a> {
    fn header_source(&self) -> HeaderSource<'a> {
        HeaderSource {
            headers: self.headers,
            method: Some(self.method.as_str()),
            path: (!self.path_and_query.is_empty()).then_some(self.path_and_query),
            authority: Some(self.authority),
            scheme: Some(self.scheme),
            protocol: self.protocol,
            status: None,
        }
    }
}

/// Index of a virtual host in its [`RouteTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VhostId(pub usize);

/// A validated, compiled, immutable route configuration. Build it once per configuration
/// version and share it (`Send + Sync` when `P` is).
#[derive(Debug)]
pub struct RouteTable<P = ()> {
    name: String,
    vhosts: Vec<VirtualHostEntry<P>>,
    domains: DomainIndex,
    ignore_port_in_host_matching: bool,
    vhost_header: Option<HeaderName>,
    request_headers: HeaderMutations,
    response_headers: HeaderMutations,
    most_specific_header_mutations_wins: bool,
    internal_only_headers: Vec<HeaderName>,
    typed_per_filter_config: BTreeMap<String, P>,
}

/// A compiled virtual host.
#[derive(Debug)]
pub struct VirtualHostEntry<P = ()> {
    name: String,
    domains: Vec<String>,
    routes: Vec<RouteEntry<P>>,
    path_index: PathIndex,
    request_headers: HeaderMutations,
    response_headers: HeaderMutations,
    retry_policy: Option<Arc<RetryPolicy>>,
    include_request_attempt_count: bool,
    include_attempt_count_in_response: bool,
    typed_per_filter_config: BTreeMap<String, P>,
    require_tls: TlsRequirement,
}

/// A compiled route.
#[derive(Debug)]
pub struct RouteEntry<P = ()> {
    name: String,
    path: PathMatch,
    headers: Vec<CompiledHeaderMatcher>,
    query_parameters: Vec<CompiledQueryMatcher>,
    grpc: bool,
    runtime_fraction: Option<FractionalPercent>,
    action: RouteEntryAction,
    request_headers: HeaderMutations,
    response_headers: HeaderMutations,
    typed_per_filter_config: BTreeMap<String, P>,
}

#[derive(Debug)]
enum PathMatch {
    Prefix { value: Box<str>, ignore_case: bool },
    Exact { value: Box<str>, ignore_case: bool },
    Regex(Regex),
    PathSeparatedPrefix { value: Box<str>, ignore_case: bool },
    Connect,
}

/// The result of routing a request: its virtual host and, if one matched, its route.
#[derive(Debug)]
pub struct Matched<'t, P = ()> {
    table: &'t RouteTable<P>,
    vhost: &'t VirtualHostEntry<P>,
    route: &'t RouteEntry<P>,
}

/// What [`RouteTable::route_request`] decided.
#[derive(Debug)]
pub enum Routing<'t, P = ()> {
    /// The virtual host requires TLS and the request did not come over it: answer with Envoy's
    /// TLS redirect, a `301` with an empty body, this `location` (none for a request without
    /// `:path`) and no header mutations.
    TlsRedirect {
        /// The virtual host that required TLS.
        virtual_host: &'t VirtualHostEntry<P>,
        /// `https://` + `:authority` + `:path` (query included).
        location: Option<String>,
    },
    /// A route matched.
    Route(Matched<'t, P>),
}

// Manual impls: derive would require `P: Clone`/`P: Copy`.
impl<P> Clone for Matched<'_, P> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<P> Copy for Matched<'_, P> {}

impl<P> RouteTable<P> {
    /// Validates the whole configuration and compiles it: regexes compiled once, domains
    /// indexed, routes indexed by their first path segment. Fails on the first rule Envoy
    /// would NACK (and on a few weft adds, such as unknown `retry_on` names).
    pub fn new(config: RouteConfiguration<P>) -> Result<Self, RouteConfigError> {
        let mode = config.multi_value_headers;
        let max_body = config
            .max_direct_response_body_size_bytes
            .unwrap_or(DEFAULT_MAX_DIRECT_RESPONSE_BODY_SIZE);
        check_mirror_policies(&config.request_mirror_policies, "request_mirror_policies")?;
        let config_mirrors: Arc<[RequestMirrorPolicy]> =
            config.request_mirror_policies.as_slice().into();
        let mut vhosts = Vec::with_capacity(config.virtual_hosts.len());
        let mut domains = DomainIndex::default();
        for (i, vh) in config.virtual_hosts.into_iter().enumerate() {
            let field = format!("virtual_hosts[{i}]");
            if vh.domains.is_empty() {
                return Err(RouteConfigError::invalid(
                    format!("{field}.domains"),
                    "must list at least one domain",
                ));
            }
            for (j, d) in vh.domains.iter().enumerate() {
                domains.insert(d, i, &vh.name, &format!("{field}.domains[{j}]"))?;
            }
            vhosts.push(compile_vhost(vh, mode, max_body, &config_mirrors, &field)?);
        }
        let internal_only_headers = config
            .internal_only_headers
            .iter()
            .enumerate()
            .map(|(i, h)| header_name(h, &format!("internal_only_headers[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            name: config.name,
            vhosts,
            domains,
            ignore_port_in_host_matching: config.ignore_port_in_host_matching,
            vhost_header: config
                .vhost_header
                .as_deref()
                .map(|h| header_name(h, "vhost_header"))
                .transpose()?,
            request_headers: HeaderMutations::compile(&config.request_headers, "request_headers")?,
            response_headers: HeaderMutations::compile(
                &config.response_headers,
                "response_headers",
            )?,
            most_specific_header_mutations_wins: config.most_specific_header_mutations_wins,
            internal_only_headers,
            typed_per_filter_config: config.typed_per_filter_config,
        })
    }

    /// The configuration's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// All virtual hosts, in configuration order ([`VhostId`] indexes this).
    pub fn virtual_hosts(&self) -> &[VirtualHostEntry<P>] {
        &self.vhosts
    }

    /// The virtual host with this id.
    pub fn virtual_host(&self, id: VhostId) -> Option<&VirtualHostEntry<P>> {
        self.vhosts.get(id.0)
    }

    /// Headers only internal requests may carry.
    pub fn internal_only_headers(&self) -> &[HeaderName] {
        &self.internal_only_headers
    }

    /// Per-filter configuration at the route-configuration level.
    pub fn typed_per_filter_config(&self) -> &BTreeMap<String, P> {
        &self.typed_per_filter_config
    }

    /// Envoy's `RouteMatcher::findVirtualHost` for a host value.
    ///
    /// The host is lower-cased (ASCII) and looked up, port included, as an exact domain; then
    /// against suffix wildcards, longest first; then prefix wildcards, longest first; then `*`.
    /// A wildcard must match at least one character (`*.foo.com` does not match `.foo.com`).
    ///
    /// Ports: without `ignore_port_in_host_matching`, `foo.com:8080` matches only domains
    /// that spell the port (`foo.com:8080`, `foo.com:*`, `*.com:8080`...), never `foo.com`.
    /// With it, the port is removed first as Envoy's `getPortStart` finds it: from the last `:`,
    /// unless a `]` comes after it, so `[::1]:80` becomes `[::1]` and `[::1]` stays whole. An
    /// unbracketed IPv6 literal such as `::1` loses its last group, exactly as in Envoy.
    pub fn select_virtual_host(&self, host: &str) -> Option<VhostId> {
        let host = if self.ignore_port_in_host_matching {
            strip_port(host)
        } else {
            host
        };
        self.domains.find(host).map(VhostId)
    }

    /// Selects the virtual host for a request, honouring `vhost_header`.
    pub fn select_virtual_host_for(&self, req: &RequestView<'_>) -> Option<VhostId> {
        match &self.vhost_header {
            None => self.select_virtual_host(req.authority),
            Some(h) => {
                let v = req.headers.get(h)?.to_str().ok()?;
                self.select_virtual_host(v)
            }
        }
    }

    /// Routes a request: selects the virtual host, then returns the first of its routes that
    /// matches. `random` is the per-request random number Envoy draws once per stream and uses
    /// for `runtime_fraction` (`random % denominator < numerator`); pass the same value to
    /// [`WeightedTargets::pick`](crate::WeightedTargets::pick) to pick as Envoy does.
    ///
    /// Allocation-free unless the host has upper-case letters or a header matcher uses the
    /// pre-1.39 joined mode on a repeated header.
    ///
    /// This is route matching alone; the connection manager routes with
    /// [`Self::route_request`], which checks the virtual host's `require_tls` first.
    pub fn route(&self, req: &RequestView<'_>, random: u64) -> Option<Matched<'_, P>> {
        let vhost = &self.vhosts[self.select_virtual_host_for(req)?.0];
        self.route_in(vhost, req, random)
    }

    /// Envoy's `VirtualHostImpl::getRouteFromEntries`: selects the virtual host, then, before
    /// any route is matched, applies its `require_tls`. The request's scheme is its
    /// `x-forwarded-proto` as the connection manager left it (several values are read joined
    /// with `,`, as Envoy's header map holds them; without the header, [`RequestView::scheme`]).
    /// `ALL` redirects every request whose scheme is not exactly `https`; `EXTERNAL_ONLY` only
    /// those that are not Envoy-internal (`x-envoy-internal: true`, which the connection manager
    /// sets only for requests from internal addresses). Otherwise the first matching route, as
    /// [`Self::route`].
    pub fn route_request(&self, req: &RequestView<'_>, random: u64) -> Option<Routing<'_, P>> {
        let vhost = &self.vhosts[self.select_virtual_host_for(req)?.0];
        if vhost.requires_tls_redirect(req) {
            return Some(Routing::TlsRedirect {
                virtual_host: vhost,
                location: (!req.path_and_query.is_empty())
                    .then(|| format!("https://{}{}", req.authority, req.path_and_query)),
            });
        }
        self.route_in(vhost, req, random).map(Routing::Route)
    }

    fn route_in<'t>(
        &'t self,
        vhost: &'t VirtualHostEntry<P>,
        req: &RequestView<'_>,
        random: u64,
    ) -> Option<Matched<'t, P>> {
        let route = vhost.find_route(req, random)?;
        Some(Matched {
            table: self,
            vhost,
            route,
        })
    }
}

/// The request's scheme as Envoy's TLS requirement reads it (`getForwardedProtoValue`).
fn forwarded_proto<'a>(req: &RequestView<'a>) -> std::borrow::Cow<'a, str> {
    let mut values = req
        .headers
        .get_all("x-forwarded-proto")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()));
    match values.next() {
        None => std::borrow::Cow::Borrowed(req.scheme),
        Some(first) => match values.next() {
            None => first,
            Some(second) => {
                let mut joined = format!("{first},{second}");
                for v in values {
                    joined.push(',');
                    joined.push_str(&v);
                }
                std::borrow::Cow::Owned(joined)
            }
        },
    }
}

/// Envoy's `HeaderUtility::getPortStart`-based stripping.
pub(crate) fn strip_port(host: &str) -> &str {
    let Some(colon) = host.rfind(':') else {
        return host;
    };
    match host.rfind(']') {
        Some(bracket) if bracket > colon => host,
        _ => &host[..colon],
    }
}

fn compile_vhost<P>(
    vh: VirtualHost<P>,
    mode: MultiValueHeaders,
    max_body: u32,
    config_mirrors: &Arc<[RequestMirrorPolicy]>,
    field: &str,
) -> Result<VirtualHostEntry<P>, RouteConfigError> {
    let retry_policy = vh
        .retry_policy
        .as_ref()
        .map(|p| RetryPolicy::compile(p, mode, &format!("{field}.retry_policy")).map(Arc::new))
        .transpose()?;
    let mirrors: Arc<[RequestMirrorPolicy]> = if vh.request_mirror_policies.is_empty() {
        Arc::clone(config_mirrors)
    } else {
        check_mirror_policies(
            &vh.request_mirror_policies,
            &format!("{field}.request_mirror_policies"),
        )?;
        vh.request_mirror_policies.as_slice().into()
    };
    let inherited = Inherited {
        retry_policy: retry_policy.as_ref(),
        mirror_policies: &mirrors,
        mode,
        max_body,
    };
    let routes = vh
        .routes
        .into_iter()
        .enumerate()
        .map(|(i, r)| compile_route(r, &inherited, &format!("{field}.routes[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let path_index = PathIndex::build(routes.iter().map(|r| &r.path));
    Ok(VirtualHostEntry {
        name: vh.name,
        domains: vh.domains,
        routes,
        path_index,
        request_headers: HeaderMutations::compile(
            &vh.request_headers,
            &format!("{field}.request_headers"),
        )?,
        response_headers: HeaderMutations::compile(
            &vh.response_headers,
            &format!("{field}.response_headers"),
        )?,
        retry_policy,
        include_request_attempt_count: vh.include_request_attempt_count,
        include_attempt_count_in_response: vh.include_attempt_count_in_response,
        typed_per_filter_config: vh.typed_per_filter_config,
        require_tls: vh.require_tls,
    })
}

fn compile_route<P>(
    r: Route<P>,
    inherited: &Inherited<'_>,
    field: &str,
) -> Result<RouteEntry<P>, RouteConfigError> {
    let m = &r.route_match;
    let mfield = format!("{field}.match");
    let ignore_case = !m.case_sensitive;
    let path = match &m.path {
        PathSpecifier::Prefix(p) => PathMatch::Prefix {
            value: p.as_str().into(),
            ignore_case,
        },
        PathSpecifier::Path(p) => PathMatch::Exact {
            value: p.as_str().into(),
            ignore_case,
        },
        PathSpecifier::SafeRegex(p) => {
            PathMatch::Regex(compile_full_match(p, &format!("{mfield}.safe_regex"))?)
        }
        PathSpecifier::PathSeparatedPrefix(p) => {
            if p.is_empty() || p.contains(['?', '#']) || p.ends_with('/') {
                return Err(RouteConfigError::invalid(
                    format!("{mfield}.path_separated_prefix"),
                    "must be non-empty, contain no '?' or '#', and not end with '/'",
                ));
            }
            PathMatch::PathSeparatedPrefix {
                value: p.as_str().into(),
                ignore_case,
            }
        }
        PathSpecifier::ConnectMatcher => PathMatch::Connect,
    };
    Ok(RouteEntry {
        headers: compile_header_matchers(&m.headers, inherited.mode, &format!("{mfield}.headers"))?,
        query_parameters: m
            .query_parameters
            .iter()
            .enumerate()
            .map(|(i, q)| {
                CompiledQueryMatcher::compile(q, &format!("{mfield}.query_parameters[{i}]"))
            })
            .collect::<Result<_, _>>()?,
        grpc: m.grpc,
        runtime_fraction: m.runtime_fraction,
        path,
        action: compile_action(&r.action, inherited, field)?,
        request_headers: HeaderMutations::compile(
            &r.request_headers,
            &format!("{field}.request_headers"),
        )?,
        response_headers: HeaderMutations::compile(
            &r.response_headers,
            &format!("{field}.response_headers"),
        )?,
        name: r.name,
        typed_per_filter_config: r.typed_per_filter_config,
    })
}

/// Per-request facts computed once, shared by every route tried.
struct RequestFacts<'a> {
    /// `:path` without query and fragment; `None` without `:path`.
    path: Option<&'a str>,
    /// Everything after the first `?`.
    query: Option<&'a str>,
    is_connect: bool,
    is_grpc: bool,
    src: HeaderSource<'a>,
    random: u64,
}

impl<P> VirtualHostEntry<P> {
    /// Name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Domains as configured.
    pub fn domains(&self) -> &[String] {
        &self.domains
    }

    /// Routes in order.
    pub fn routes(&self) -> &[RouteEntry<P>] {
        &self.routes
    }

    /// The virtual host's default retry policy.
    pub fn retry_policy(&self) -> Option<&Arc<RetryPolicy>> {
        self.retry_policy.as_ref()
    }

    /// Send `x-envoy-attempt-count` upstream.
    pub fn include_request_attempt_count(&self) -> bool {
        self.include_request_attempt_count
    }

    /// Send `x-envoy-attempt-count` downstream.
    pub fn include_attempt_count_in_response(&self) -> bool {
        self.include_attempt_count_in_response
    }

    /// Per-filter configuration at the virtual host level.
    pub fn typed_per_filter_config(&self) -> &BTreeMap<String, P> {
        &self.typed_per_filter_config
    }

    /// The virtual host's `require_tls`.
    pub fn require_tls(&self) -> TlsRequirement {
        self.require_tls
    }

    /// Whether `require_tls` turns this request into Envoy's TLS redirect (see
    /// [`RouteTable::route_request`]).
    pub fn requires_tls_redirect(&self, req: &RequestView<'_>) -> bool {
        let external = || {
            req.headers
                .get("x-envoy-internal")
                .is_none_or(|v| v.as_bytes() != b"true")
        };
        match self.require_tls {
            TlsRequirement::None => false,
            TlsRequirement::All => forwarded_proto(req) != "https",
            TlsRequirement::ExternalOnly => forwarded_proto(req) != "https" && external(),
        }
    }

    /// The first matching route, as Envoy's `getRouteFromRoutes` (without its callback).
    pub fn find_route(&self, req: &RequestView<'_>, random: u64) -> Option<&RouteEntry<P>> {
        let has_path = !req.path_and_query.is_empty();
        let facts = RequestFacts {
            path: has_path.then(|| path_without_query(req.path_and_query)),
            query: req.path_and_query.split_once('?').map(|(_, q)| q),
            is_connect: req.method == Method::CONNECT,
            is_grpc: has_path && is_grpc(req.headers),
            src: req.header_source(),
            random,
        };
        self.path_index
            .candidates(facts.path)
            .map(|i| &self.routes[i])
            .find(|r| r.matches(&facts))
    }
}

/// Envoy's `Grpc::Common::hasGrpcContentType`: `application/grpc` exactly or followed by `+`
/// (so `application/grpc-web` is not gRPC).
fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(http::header::CONTENT_TYPE).is_some_and(|ct| {
        match ct.as_bytes().strip_prefix(b"application/grpc") {
            Some(rest) => rest.is_empty() || rest[0] == b'+',
            None => false,
        }
    })
}

impl<P> RouteEntry<P> {
    /// Name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What to do with a matching request.
    pub fn action(&self) -> &RouteEntryAction {
        &self.action
    }

    /// Per-filter configuration at the route level.
    pub fn typed_per_filter_config(&self) -> &BTreeMap<String, P> {
        &self.typed_per_filter_config
    }

    fn matches(&self, f: &RequestFacts<'_>) -> bool {
        let path_ok = match (&self.path, f.path) {
            (PathMatch::Connect, _) => f.is_connect,
            (_, None) => false,
            (PathMatch::Prefix { value, ignore_case }, Some(p)) => {
                prefix_matches(p, value, *ignore_case)
            }
            (PathMatch::Exact { value, ignore_case }, Some(p)) => {
                if *ignore_case {
                    p.eq_ignore_ascii_case(value)
                } else {
                    p == &**value
                }
            }
            (PathMatch::Regex(r), Some(p)) => r.is_match(p.as_bytes()),
            (PathMatch::PathSeparatedPrefix { value, ignore_case }, Some(p)) => {
                prefix_matches(p, value, *ignore_case)
                    && (p.len() == value.len() || p.as_bytes()[value.len()] == b'/')
            }
        };
        path_ok
            && self.runtime_fraction.is_none_or(|fr| fr.evaluate(f.random))
            && (!self.grpc || f.is_grpc)
            && all_headers_match(&self.headers, &f.src)
            && self.query_parameters.iter().all(|q| q.matches(f.query))
    }

    /// The part of the path that a prefix rewrite replaces: the configured prefix or path, or
    /// for regex and CONNECT routes the whole path without query.
    pub fn matched_path<'p>(&'p self, path_and_query: &'p str) -> &'p str {
        match &self.path {
            PathMatch::Prefix { value, .. }
            | PathMatch::Exact { value, .. }
            | PathMatch::PathSeparatedPrefix { value, .. } => value,
            PathMatch::Regex(_) | PathMatch::Connect => path_without_query(path_and_query),
        }
    }
}

fn prefix_matches(path: &str, prefix: &str, ignore_case: bool) -> bool {
    if ignore_case {
        starts_with_ignore_case(path.as_bytes(), prefix.as_bytes())
    } else {
        path.starts_with(prefix)
    }
}

impl<'t, P> Matched<'t, P> {
    /// The selected virtual host.
    pub fn virtual_host(&self) -> &'t VirtualHostEntry<P> {
        self.vhost
    }

    /// The matched route.
    pub fn route(&self) -> &'t RouteEntry<P> {
        self.route
    }

    /// The route's action.
    pub fn action(&self) -> &'t RouteEntryAction {
        &self.route.action
    }

    /// Request header mutation levels in Envoy's order: the picked weighted cluster's first,
    /// then route, virtual host, route configuration (so the configuration level wins), or,
    /// with `most_specific_header_mutations_wins`, configuration, virtual host, route.
    pub fn request_header_levels(
        &self,
        cluster: Option<&'t WeightedTarget>,
    ) -> impl Iterator<Item = &'t HeaderMutations> + use<'t, P> {
        self.levels(
            cluster.map(|c| &c.request_headers),
            [
                &self.table.request_headers,
                &self.vhost.request_headers,
                &self.route.request_headers,
            ],
        )
    }

    /// Response header mutation levels, ordered as [`Self::request_header_levels`].
    pub fn response_header_levels(
        &self,
        cluster: Option<&'t WeightedTarget>,
    ) -> impl Iterator<Item = &'t HeaderMutations> + use<'t, P> {
        self.levels(
            cluster.map(|c| &c.response_headers),
            [
                &self.table.response_headers,
                &self.vhost.response_headers,
                &self.route.response_headers,
            ],
        )
    }

    fn levels(
        &self,
        cluster: Option<&'t HeaderMutations>,
        mut least_to_most_specific: [&'t HeaderMutations; 3],
    ) -> impl Iterator<Item = &'t HeaderMutations> + use<'t, P> {
        if !self.table.most_specific_header_mutations_wins {
            least_to_most_specific.reverse();
        }
        cluster.into_iter().chain(least_to_most_specific)
    }

    /// Applies every request header mutation level to `headers` (see
    /// [`Self::request_header_levels`]).
    pub fn apply_request_headers(
        &self,
        headers: &mut HeaderMap,
        cluster: Option<&'t WeightedTarget>,
        formatter: &dyn HeaderFormatter,
    ) {
        apply_header_mutations(headers, self.request_header_levels(cluster), formatter);
    }

    /// Applies every response header mutation level to `headers`.
    pub fn apply_response_headers(
        &self,
        headers: &mut HeaderMap,
        cluster: Option<&'t WeightedTarget>,
        formatter: &dyn HeaderFormatter,
    ) {
        apply_header_mutations(headers, self.response_header_levels(cluster), formatter);
    }

    /// The upstream `:path` after the route's `prefix_rewrite` or `regex_rewrite`, or `None`
    /// when the route rewrites nothing (or a regex rewrite produced an empty path, which Envoy
    /// ignores).
    pub fn rewritten_path(&self, path_and_query: &str) -> Option<String> {
        let RouteEntryAction::Route(target) = &self.route.action else {
            return None;
        };
        if let Some(replacement) = &target.prefix_rewrite {
            return prefix_rewrite(
                path_and_query,
                self.route.matched_path(path_and_query),
                replacement,
            );
        }
        target.regex_rewrite.as_ref()?.rewrite_path(path_and_query)
    }

    /// The upstream `:authority` from a literal, header or path-regex host rewrite (`auto` is
    /// resolved by the proxy after host selection and yields `None` here, as does a rewrite
    /// that produces an empty host).
    pub fn rewritten_host(&self, req: &RequestView<'_>) -> Option<String> {
        let RouteEntryAction::Route(target) = &self.route.action else {
            return None;
        };
        let host = match target.host_rewrite.as_ref()? {
            HostRewriteTarget::Literal(h) => h.clone(),
            HostRewriteTarget::Auto => return None,
            HostRewriteTarget::Header(name) => req.headers.get(name)?.to_str().ok()?.to_owned(),
            HostRewriteTarget::PathRegex(r) => {
                r.replace_all(path_without_query(req.path_and_query))
            }
        };
        (!host.is_empty()).then_some(host)
    }

    /// The `Location` for a redirect route; `None` for other actions. The path is first
    /// rewritten by the redirect's `prefix_rewrite`/`regex_rewrite` as Envoy does, then the URL
    /// is built by [`crate::redirect_url`].
    pub fn redirect_url(&self, req: &RequestView<'_>) -> Option<String> {
        let RouteEntryAction::Redirect(r) = &self.route.action else {
            return None;
        };
        let rewritten = match &r.path {
            Some(RedirectPathTarget::PrefixRewrite(p)) if !p.is_empty() => prefix_rewrite(
                req.path_and_query,
                self.route.matched_path(req.path_and_query),
                p,
            ),
            Some(RedirectPathTarget::RegexRewrite(rr)) => rr.rewrite_path(req.path_and_query),
            _ => None,
        };
        let path_and_query = rewritten.as_deref().unwrap_or(req.path_and_query);
        let parts = RedirectParts {
            scheme: r.scheme.as_deref(),
            host: r.host.as_deref(),
            port: r.port,
            path: match &r.path {
                Some(RedirectPathTarget::Path(p)) if !p.is_empty() => Some(p),
                _ => None,
            },
            strip_query: r.strip_query,
        };
        let request = RedirectRequest {
            scheme: req.scheme,
            authority: req.authority,
            path_and_query,
        };
        Some(crate::rewrite::redirect_url(&request, &parts))
    }

    /// Per-filter configurations for `filter`, least specific first (route configuration,
    /// virtual host, route, picked weighted cluster is not modelled), as Envoy's
    /// `perFilterConfigs` lists them.
    pub fn per_filter_configs<'a>(
        &self,
        filter: &'a str,
    ) -> impl Iterator<Item = &'t P> + use<'a, 't, P> {
        [
            &self.table.typed_per_filter_config,
            &self.vhost.typed_per_filter_config,
            &self.route.typed_per_filter_config,
        ]
        .into_iter()
        .filter_map(move |m| m.get(filter))
    }

    /// The most specific per-filter configuration for `filter`.
    pub fn most_specific_per_filter_config(&self, filter: &str) -> Option<&'t P> {
        self.per_filter_configs(filter).last()
    }
}

#[cfg(test)]
mod tests;
