//! One VirtualService HTTP route (with one of its matches) into an Envoy route, following
//! istiod's `TranslateRoute`.

use std::time::Duration as StdDuration;

use envoy_types::pb::envoy::config::core::v3::{
    DataSource, HeaderValue, HeaderValueOption, RuntimeFractionalPercent, data_source,
    header_value_option::HeaderAppendAction,
};
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, HeaderMatcher, QueryParameterMatcher, RedirectAction, RetryPolicy, Route,
    RouteAction, RouteMatch, WeightedCluster, header_matcher::HeaderMatchSpecifier,
    query_parameter_matcher::QueryParameterMatchSpecifier, redirect_action, retry_policy, route,
    route_action, route_match::PathSpecifier, weighted_cluster,
};
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::{
    FaultDelay, fault_delay::FaultDelaySecifier,
};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy as EnvoyCors;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    FaultAbort, HttpFault, fault_abort,
};
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use envoy_types::pb::envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    RegexMatchAndSubstitute, RegexMatcher, StringMatcher, string_matcher::MatchPattern,
};
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent::DenominatorType};
use envoy_types::pb::google::protobuf::{Any, BoolValue, Duration as PbDuration, UInt32Value};
use prost::{Message, Name};
use weft_api::common::{Percent, StringMatch};
use weft_api::networking::destination_rule::{ConsistentHashLb, HashKey, LbPolicy, TrafficPolicy};
use weft_api::networking::virtual_service::{
    AbortErrorType, CorsPolicy, Destination, Headers, HttpBody, HttpDelayType, HttpDirectResponse,
    HttpFaultInjection, HttpMatchRequest, HttpRedirect, HttpRetry, HttpRoute, RedirectPort,
    RedirectPortSelection, UnmatchedPreflights,
};
use weft_registry::Service;

use super::vs::ResolvedVs;
use crate::naming;
use crate::node::Generator;
use crate::translate::Scope;

/// Per-route filter names (the keys of `typed_per_filter_config`).
pub(crate) const FAULT_FILTER: &str = "envoy.filters.http.fault";
/// See [`FAULT_FILTER`].
pub(crate) const CORS_FILTER: &str = "envoy.filters.http.cors";
/// Istio's `retryOn` when a route sets no retry policy.
pub(crate) const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";
const PREVIOUS_HOSTS: &str = "envoy.retry_host_predicates.previous_hosts";
const PREVIOUS_PRIORITIES: &str = "envoy.retry_priorities.previous_priorities";

/// What route translation needs to know about the listener it builds for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'s, 'a> {
    /// The proxy's view.
    pub scope: &'s Scope<'a>,
    /// The listener (service or gateway server) port.
    pub port: u16,
    /// Gateway names this proxy applies routes for (`mesh`, or `namespace/name`).
    pub gateways: &'s [String],
    /// Whether the listener terminates TLS (gateway HTTPS servers).
    pub tls: bool,
    /// Gateway semantics for destination lookup (a single-port destination service uses its
    /// port); sidecars use the listener port.
    pub gateway: bool,
}

impl Ctx<'_, '_> {
    fn grpc(&self) -> bool {
        self.scope.node.generator == Generator::Grpc
    }
}

/// The routes of `vs` for this listener, in order, stopping after the first catch-all route
/// (nothing after it could match).
pub(crate) fn vs_routes(ctx: &Ctx<'_, '_>, vs: &ResolvedVs) -> Vec<Route> {
    let mut out = Vec::with_capacity(vs.http.len());
    for http in &vs.http {
        if http.matches.is_empty() {
            out.extend(translate(ctx, vs, http, None));
            break;
        }
        let mut catch_all = false;
        for m in &http.matches {
            if let Some(r) = translate(ctx, vs, http, Some(m)) {
                catch_all = is_catch_all(&r);
                out.push(r);
                if catch_all {
                    break;
                }
            }
        }
        if catch_all {
            break;
        }
    }
    out
}

/// Prefix `/` (or regex `.*`) without header or query conditions.
pub(crate) fn is_catch_all(r: &Route) -> bool {
    let Some(m) = &r.r#match else {
        return false;
    };
    let path = match &m.path_specifier {
        Some(PathSpecifier::Prefix(p)) => p == "/",
        Some(PathSpecifier::PathSeparatedPrefix(p)) => p == "/",
        Some(PathSpecifier::SafeRegex(re)) => re.regex == ".*",
        _ => false,
    };
    path && m.headers.is_empty() && m.query_parameters.is_empty()
}

/// Whether match block `m` applies to this proxy: its `gateways` name one this proxy serves, or
/// (without `gateways`) the proxy carries its `sourceLabels` and runs in its `sourceNamespace`.
fn source_matches(ctx: &Ctx<'_, '_>, m: &HttpMatchRequest) -> bool {
    if !m.gateways.is_empty() {
        return m.gateways.iter().any(|g| ctx.gateways.contains(g));
    }
    let node = ctx.scope.node;
    m.source_labels
        .iter()
        .all(|(k, v)| node.labels.get(k) == Some(v))
        && m.source_namespace
            .as_ref()
            .is_none_or(|ns| *ns == node.namespace)
}

fn translate(
    ctx: &Ctx<'_, '_>,
    vs: &ResolvedVs,
    http: &HttpRoute,
    m: Option<&HttpMatchRequest>,
) -> Option<Route> {
    if let Some(m) = m
        && (m.port.is_some_and(|p| p != u32::from(ctx.port)) || !source_matches(ctx, m))
    {
        return None;
    }
    let mut name = http.name.clone().unwrap_or_default();
    if let Some(n) = m.and_then(|m| m.name.as_deref()) {
        name = format!("{name}.{n}");
    }
    let mut out = Route {
        name,
        r#match: Some(route_match(m)?),
        stat_prefix: m.and_then(|m| m.stat_prefix.clone()).unwrap_or_default(),
        ..Default::default()
    };
    let mut authority = None;
    if let Some(h) = &http.headers {
        let ops = header_ops(h);
        out.request_headers_to_add = ops.request_add;
        out.request_headers_to_remove = ops.request_remove;
        out.response_headers_to_add = ops.response_add;
        out.response_headers_to_remove = ops.response_remove;
        authority = ops.authority;
    }
    out.action = Some(if let Some(r) = &http.redirect {
        route::Action::Redirect(redirect(r, ctx.port, ctx.tls)?)
    } else if let Some(d) = &http.direct_response {
        route::Action::DirectResponse(direct_response(d))
    } else {
        route::Action::Route(destination_action(ctx, vs, http, &mut out, authority)?)
    });
    if let Some(f) = http.fault.as_ref().and_then(fault) {
        out.typed_per_filter_config
            .insert(FAULT_FILTER.to_owned(), any(&f));
    }
    if let Some(c) = &http.cors_policy {
        out.typed_per_filter_config
            .insert(CORS_FILTER.to_owned(), any(&cors(c)));
    }
    Some(out)
}

/// The Envoy match of `m` (prefix `/` for none). `None` for conditions weft cannot express:
/// JWT claim headers (`@request.auth.claims...`), which would otherwise widen the match.
pub(crate) fn route_match(m: Option<&HttpMatchRequest>) -> Option<RouteMatch> {
    let mut out = RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix("/".to_owned())),
        ..Default::default()
    };
    let Some(m) = m else {
        return Some(out);
    };
    if m.headers
        .keys()
        .chain(m.without_headers.keys())
        .any(|k| k.starts_with("@request.auth.claims"))
    {
        return None;
    }
    for (name, sm) in &m.headers {
        out.headers.push(header_matcher(name, sm));
    }
    for (name, sm) in &m.without_headers {
        let mut h = header_matcher(name, sm);
        h.invert_match = true;
        // `treat_missing_header_as_empty` conflicts with `present_match`.
        h.treat_missing_header_as_empty = !is_present(sm);
        out.headers.push(h);
    }
    out.headers.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(uri) = &m.uri {
        out.path_specifier = match uri {
            StringMatch::Exact(p) => Some(PathSpecifier::Path(p.clone())),
            StringMatch::Prefix(p) => Some(PathSpecifier::Prefix(p.clone())),
            StringMatch::Regex(r) => Some(PathSpecifier::SafeRegex(regex(r))),
            StringMatch::Present => out.path_specifier,
        };
    }
    out.case_sensitive = Some(BoolValue {
        value: !m.ignore_uri_case,
    });
    for (name, sm) in [
        (":method", &m.method),
        (":authority", &m.authority),
        (":scheme", &m.scheme),
    ] {
        if let Some(sm) = sm {
            out.headers.push(header_matcher(name, sm));
        }
    }
    for (name, sm) in &m.query_params {
        out.query_parameters.push(QueryParameterMatcher {
            name: name.clone(),
            query_parameter_match_specifier: Some(match string_matcher(sm) {
                Some(s) if !is_present(sm) => QueryParameterMatchSpecifier::StringMatch(s),
                _ => QueryParameterMatchSpecifier::PresentMatch(true),
            }),
        });
    }
    Some(out)
}

/// `{}` and the regex `*` (not RE2; Istio reads it as "present").
fn is_present(sm: &StringMatch) -> bool {
    matches!(sm, StringMatch::Present) || matches!(sm, StringMatch::Regex(r) if r == "*")
}

fn header_matcher(name: &str, sm: &StringMatch) -> HeaderMatcher {
    let spec = match string_matcher(sm) {
        Some(s) if !is_present(sm) => HeaderMatchSpecifier::StringMatch(s),
        _ => HeaderMatchSpecifier::PresentMatch(true),
    };
    HeaderMatcher {
        name: name.to_owned(),
        header_match_specifier: Some(spec),
        ..Default::default()
    }
}

fn regex(r: &str) -> RegexMatcher {
    RegexMatcher {
        regex: r.to_owned(),
        engine_type: None,
    }
}

pub(crate) fn string_matcher(sm: &StringMatch) -> Option<StringMatcher> {
    let pattern = match sm {
        StringMatch::Exact(s) => MatchPattern::Exact(s.clone()),
        StringMatch::Prefix(s) => MatchPattern::Prefix(s.clone()),
        StringMatch::Regex(r) => MatchPattern::SafeRegex(regex(r)),
        StringMatch::Present => return None,
    };
    Some(StringMatcher {
        match_pattern: Some(pattern),
        ignore_case: false,
    })
}

/// Envoy's view of one `Headers` block.
#[derive(Debug, Default)]
pub(crate) struct HeaderOps {
    pub request_add: Vec<HeaderValueOption>,
    pub request_remove: Vec<String>,
    pub response_add: Vec<HeaderValueOption>,
    pub response_remove: Vec<String>,
    /// A request `:authority`/`host` set or add, which becomes a host rewrite.
    pub authority: Option<String>,
}

/// `set` overwrites (`OVERWRITE_IF_EXISTS_OR_ADD`), `add` appends (`APPEND_IF_EXISTS_OR_ADD`),
/// each sorted by name; pseudo-headers and `host` are never added or removed, but a request
/// `:authority`/`host` value becomes the authority (`set` winning over `add`).
pub(crate) fn header_ops(h: &Headers) -> HeaderOps {
    fn options(
        map: &std::collections::BTreeMap<String, String>,
        action: HeaderAppendAction,
        authority: &mut Option<String>,
    ) -> Vec<HeaderValueOption> {
        let mut out = Vec::new();
        for (k, v) in map {
            if k.eq_ignore_ascii_case(":authority") || k.eq_ignore_ascii_case("host") {
                *authority = Some(v.clone());
            }
            if internal(k) {
                continue;
            }
            out.push(HeaderValueOption {
                header: Some(HeaderValue {
                    key: k.clone(),
                    value: v.clone(),
                    ..Default::default()
                }),
                append_action: action as i32,
                ..Default::default()
            });
        }
        out
    }
    fn internal(k: &str) -> bool {
        k.starts_with(':') || k.eq_ignore_ascii_case("host")
    }
    let mut out = HeaderOps::default();
    if let Some(req) = &h.request {
        let mut set_auth = None;
        let mut add_auth = None;
        out.request_add = options(
            &req.set,
            HeaderAppendAction::OverwriteIfExistsOrAdd,
            &mut set_auth,
        );
        out.request_add.extend(options(
            &req.add,
            HeaderAppendAction::AppendIfExistsOrAdd,
            &mut add_auth,
        ));
        out.request_remove = req
            .remove
            .iter()
            .filter(|k| !internal(k))
            .cloned()
            .collect();
        out.authority = set_auth.or(add_auth);
    }
    if let Some(resp) = &h.response {
        let mut ignored = None;
        out.response_add = options(
            &resp.set,
            HeaderAppendAction::OverwriteIfExistsOrAdd,
            &mut ignored,
        );
        out.response_add.extend(options(
            &resp.add,
            HeaderAppendAction::AppendIfExistsOrAdd,
            &mut ignored,
        ));
        out.response_remove = resp
            .remove
            .iter()
            .filter(|k| !internal(k))
            .cloned()
            .collect();
    }
    out
}

/// Istio's `ApplyRedirect`. `None` for a redirect code Envoy cannot send.
fn redirect(r: &HttpRedirect, port: u16, tls: bool) -> Option<RedirectAction> {
    use redirect_action::{PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier};
    let mut out = RedirectAction {
        host_redirect: r.authority.clone().unwrap_or_default(),
        ..Default::default()
    };
    out.path_rewrite_specifier = match (&r.prefix_rewrite, &r.uri) {
        (Some(p), _) => Some(PathRewriteSpecifier::PrefixRewrite(p.clone())),
        (None, Some(u)) => Some(PathRewriteSpecifier::PathRedirect(u.clone())),
        (None, None) => None,
    };
    if let Some(s) = &r.scheme {
        out.scheme_rewrite_specifier = Some(SchemeRewriteSpecifier::SchemeRedirect(s.clone()));
    }
    if let Some(p) = r.redirect_port {
        out.port_redirect = match p {
            // Envoy cannot derive the port per request, but routes are built per listener port.
            RedirectPort::DerivePort(RedirectPortSelection::FromRequestPort) => u32::from(port),
            RedirectPort::DerivePort(RedirectPortSelection::FromProtocolDefault) => 0,
            RedirectPort::Port(p) => p,
        };
        let scheme = r
            .scheme
            .as_deref()
            .unwrap_or(if tls { "https" } else { "http" });
        // No explicit :80 for http or :443 for https.
        if (out.port_redirect == 80 && scheme == "http")
            || (out.port_redirect == 443 && scheme == "https")
        {
            out.port_redirect = 0;
        }
    }
    out.response_code = match r.redirect_code.unwrap_or(301) {
        301 => RedirectResponseCode::MovedPermanently,
        302 => RedirectResponseCode::Found,
        303 => RedirectResponseCode::SeeOther,
        307 => RedirectResponseCode::TemporaryRedirect,
        308 => RedirectResponseCode::PermanentRedirect,
        _ => return None,
    } as i32;
    Some(out)
}

fn direct_response(d: &HttpDirectResponse) -> DirectResponseAction {
    DirectResponseAction {
        status: d.status,
        body: d.body.as_ref().map(|b| DataSource {
            specifier: Some(match b {
                HttpBody::String(s) => data_source::Specifier::InlineString(s.clone()),
                HttpBody::Bytes(b) => data_source::Specifier::InlineBytes(b.clone()),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Istio's `applyHTTPRouteDestination`: cluster or weighted clusters, rewrites, mirrors,
/// retries, timeout and hash policy. `None` for a route without destinations.
fn destination_action(
    ctx: &Ctx<'_, '_>,
    vs: &ResolvedVs,
    http: &HttpRoute,
    out: &mut Route,
    mut authority: Option<String>,
) -> Option<RouteAction> {
    if http.route.is_empty() {
        return None;
    }
    let mut action = RouteAction::default();
    set_timeout(&mut action, http.timeout.map(|d| d.get()), ctx.grpc());
    if let Some(rw) = &http.rewrite {
        if let Some(re) = &rw.uri_regex_rewrite {
            action.regex_rewrite = Some(RegexMatchAndSubstitute {
                pattern: Some(regex(re.pattern.as_deref().unwrap_or_default())),
                substitution: re.rewrite.clone().unwrap_or_default(),
            });
        } else if let Some(uri) = &rw.uri {
            action.prefix_rewrite = uri.clone();
        }
        if rw.authority.is_some() {
            authority.clone_from(&rw.authority);
        }
    }
    if let Some(a) = authority {
        action.host_rewrite_specifier =
            Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(a));
    }
    if let Some(m) = &http.mirror
        && let Some(pct) = mirror_percent(http.mirror_percentage, http.mirror_percent)
    {
        action
            .request_mirror_policies
            .push(mirror_policy(dest_cluster(ctx, vs, m), pct));
    }
    for m in &http.mirrors {
        if let Some(pct) = mirror_percent(m.percentage, None) {
            action
                .request_mirror_policies
                .push(mirror_policy(dest_cluster(ctx, vs, &m.destination), pct));
        }
    }
    let mut consistent_hash = false;
    if let [only] = http.route.as_slice() {
        action.cluster_specifier = Some(route_action::ClusterSpecifier::Cluster(dest_cluster(
            ctx,
            vs,
            &only.destination,
        )));
        if let Some(h) = &only.headers {
            let ops = header_ops(h);
            out.request_headers_to_add.extend(ops.request_add);
            out.request_headers_to_remove.extend(ops.request_remove);
            out.response_headers_to_add.extend(ops.response_add);
            out.response_headers_to_remove.extend(ops.response_remove);
            if action.host_rewrite_specifier.is_none()
                && let Some(a) = ops.authority
            {
                action.host_rewrite_specifier =
                    Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(a));
            }
        }
        if let Some(hash) = dest_hash(ctx, vs, &only.destination) {
            consistent_hash = true;
            action.hash_policy.extend(hash_policy(&hash));
        }
    } else {
        let mut clusters = Vec::new();
        for d in &http.route {
            let weight = d.weight.unwrap_or(0);
            if weight <= 0 {
                continue;
            }
            let mut cw = weighted_cluster::ClusterWeight {
                name: dest_cluster(ctx, vs, &d.destination),
                weight: Some(UInt32Value {
                    value: weight.unsigned_abs(),
                }),
                ..Default::default()
            };
            if let Some(h) = &d.headers {
                let ops = header_ops(h);
                cw.request_headers_to_add = ops.request_add;
                cw.request_headers_to_remove = ops.request_remove;
                cw.response_headers_to_add = ops.response_add;
                cw.response_headers_to_remove = ops.response_remove;
                cw.host_rewrite_specifier = ops.authority.map(
                    weighted_cluster::cluster_weight::HostRewriteSpecifier::HostRewriteLiteral,
                );
            }
            if let Some(hash) = dest_hash(ctx, vs, &d.destination) {
                action.hash_policy.extend(hash_policy(&hash));
            }
            clusters.push(cw);
        }
        if clusters.is_empty() {
            return None;
        }
        action.cluster_specifier = Some(route_action::ClusterSpecifier::WeightedClusters(
            WeightedCluster {
                clusters,
                ..Default::default()
            },
        ));
    }
    action.retry_policy = retry_policy(http.retries.as_ref(), consistent_hash);
    Some(action)
}

/// `timeout` (0s, disabled, when unset). Proxyless gRPC clients read
/// `max_stream_duration.max_stream_duration` instead, so they get the same value there.
///
/// Istio also caps the `grpc-timeout` header at the route timeout with the deprecated
/// `max_grpc_timeout`. Its replacement, `max_stream_duration.grpc_timeout_header_max`, is not
/// equivalent: any `max_stream_duration` switches Envoy's router to "new timeouts", where the
/// route `timeout` is ignored (a 0.5 s VirtualService timeout would never fire). weft therefore
/// sets neither for proxies; gRPC requests through them get the route timeout regardless of
/// their `grpc-timeout` header.
pub(crate) fn set_timeout(action: &mut RouteAction, timeout: Option<StdDuration>, grpc: bool) {
    let t = pb_duration(timeout.unwrap_or_default());
    action.timeout = Some(t);
    if grpc {
        action.max_stream_duration = Some(route_action::MaxStreamDuration {
            max_stream_duration: Some(t),
            ..Default::default()
        });
    }
}

fn mirror_percent(
    percentage: Option<Percent>,
    percent: Option<u32>,
) -> Option<RuntimeFractionalPercent> {
    let fraction = match (percentage, percent) {
        (Some(p), _) if p.value > 0.0 => fraction_of_million(p),
        (Some(_), _) => return None,
        (None, Some(p)) if p > 0 => fraction_of_hundred(p),
        (None, Some(_)) => return None,
        (None, None) => fraction_of_hundred(100),
    };
    Some(RuntimeFractionalPercent {
        default_value: Some(fraction),
        runtime_key: String::new(),
    })
}

fn mirror_policy(
    cluster: String,
    pct: RuntimeFractionalPercent,
) -> route_action::RequestMirrorPolicy {
    route_action::RequestMirrorPolicy {
        cluster,
        runtime_fraction: Some(pct),
        trace_sampled: Some(BoolValue { value: false }),
        ..Default::default()
    }
}

fn fraction_of_million(p: Percent) -> FractionalPercent {
    // Saturating float-to-int conversion; validation keeps the value in [0, 100].
    let numerator = (p.value * 10_000.0).round() as u32;
    FractionalPercent {
        numerator,
        denominator: DenominatorType::Million as i32,
    }
}

fn fraction_of_hundred(p: u32) -> FractionalPercent {
    FractionalPercent {
        numerator: p,
        denominator: DenominatorType::Hundred as i32,
    }
}

/// The service a destination host names, as route building sees it: one visible from the
/// VirtualService's namespace, else one visible from the proxy's.
fn lookup_service<'a>(ctx: &Ctx<'_, 'a>, host: &str, vs_ns: &str) -> Option<&'a Service> {
    let registry = &ctx.scope.mesh.registry;
    let proxy_ns = ctx.scope.node.namespace.as_str();
    registry
        .service(host, vs_ns)
        .filter(|s| s.visible_from(proxy_ns))
        .or_else(|| registry.service(host, proxy_ns))
}

/// `outbound|<port>|<subset>|<host>`. The port is the destination's; without one, a gateway
/// uses the service's only port, and otherwise the listener port is used (Istio's
/// `GetDestinationCluster`; a sidecar only knows destination services by the listener port).
/// Unknown hosts still get the would-be name: Envoy answers 503 for it, as with Istio.
fn dest_cluster(ctx: &Ctx<'_, '_>, vs: &ResolvedVs, d: &Destination) -> String {
    let port = match d.port {
        Some(p) => u16::try_from(p.number).unwrap_or(ctx.port),
        None => {
            let single = ctx
                .gateway
                .then(|| lookup_service(ctx, &d.host, &vs.namespace))
                .flatten()
                .and_then(|s| match s.ports.as_slice() {
                    [only] => Some(only.number),
                    _ => None,
                });
            single.unwrap_or(ctx.port)
        }
    };
    naming::outbound_cluster(port, d.subset.as_deref().unwrap_or_default(), &d.host)
}

/// The consistent hash the destination's DestinationRule asks for (Istio's
/// `HashForHTTPDestination`): the subset's port-level setting, else the subset's, else the
/// rule's port-level setting, else the rule's. Port-level settings apply only when the
/// destination names its port.
fn dest_hash(ctx: &Ctx<'_, '_>, vs: &ResolvedVs, d: &Destination) -> Option<ConsistentHashLb> {
    let svc_ns = lookup_service(ctx, &d.host, &vs.namespace)
        .map_or(vs.namespace.as_str(), |s| s.namespace.as_str());
    let (_, dr) = ctx.scope.destination_rule(&d.host, svc_ns)?;
    let port = d.port.map(|p| p.number);
    let subset_policy = dr
        .subsets
        .iter()
        .find(|s| Some(&s.name) == d.subset.as_ref())
        .and_then(|s| s.traffic_policy.as_ref());
    let candidates = [
        subset_policy.and_then(|tp| port_hash(tp, port)),
        subset_policy.and_then(top_hash),
        dr.traffic_policy
            .as_ref()
            .and_then(|tp| port_hash(tp, port)),
        dr.traffic_policy.as_ref().and_then(top_hash),
    ];
    candidates.into_iter().flatten().next().cloned()
}

/// The consistent hash of a service's DestinationRule for `port` (Istio's `hashForService`,
/// used by routes of services without a VirtualService).
pub(crate) fn service_hash(
    scope: &Scope<'_>,
    svc: &Service,
    port: u16,
) -> Option<ConsistentHashLb> {
    let (_, dr) = scope.destination_rule(&svc.hostname, &svc.namespace)?;
    let tp = dr.traffic_policy.as_ref()?;
    let pls = tp
        .port_level_settings
        .iter()
        .find(|s| s.port.is_some_and(|p| p.number == u32::from(port)));
    match pls
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.policy.as_ref())
    {
        Some(LbPolicy::ConsistentHash(ch)) => Some(ch.clone()),
        _ => top_hash(tp).cloned(),
    }
}

fn top_hash(tp: &TrafficPolicy) -> Option<&ConsistentHashLb> {
    match tp.load_balancer.as_ref()?.policy.as_ref()? {
        LbPolicy::ConsistentHash(ch) => Some(ch),
        LbPolicy::Simple(_) => None,
    }
}

fn port_hash(tp: &TrafficPolicy, port: Option<u32>) -> Option<&ConsistentHashLb> {
    let port = port?;
    let s = tp
        .port_level_settings
        .iter()
        .find(|s| s.port.is_some_and(|p| p.number == port))?;
    match s.load_balancer.as_ref()?.policy.as_ref()? {
        LbPolicy::ConsistentHash(ch) => Some(ch),
        LbPolicy::Simple(_) => None,
    }
}

/// Istio's `ConsistentHashToHashPolicy`.
pub(crate) fn hash_policy(ch: &ConsistentHashLb) -> Option<route_action::HashPolicy> {
    use route_action::hash_policy::{self, PolicySpecifier};
    let spec = match ch.hash_key.as_ref()? {
        HashKey::HttpHeaderName(h) => PolicySpecifier::Header(hash_policy::Header {
            header_name: h.clone(),
            regex_rewrite: None,
        }),
        HashKey::HttpCookie(c) => PolicySpecifier::Cookie(hash_policy::Cookie {
            name: c.name.clone(),
            ttl: c.ttl.map(|t| pb_duration(t.get())),
            path: c.path.clone(),
            attributes: c
                .attributes
                .iter()
                .map(|a| hash_policy::CookieAttribute {
                    name: a.name.clone(),
                    value: a.value.clone(),
                })
                .collect(),
        }),
        HashKey::UseSourceIp(ip) => {
            PolicySpecifier::ConnectionProperties(hash_policy::ConnectionProperties {
                source_ip: *ip,
            })
        }
        HashKey::HttpQueryParameterName(q) => {
            PolicySpecifier::QueryParameter(hash_policy::QueryParameter { name: q.clone() })
        }
    };
    Some(route_action::HashPolicy {
        policy_specifier: Some(spec),
        terminal: false,
    })
}

/// Istio's `retry.ConvertPolicy`: the default policy when the route sets none (without the
/// previous-hosts predicate under consistent hashing), nothing for `attempts: 0`.
pub(crate) fn retry_policy(r: Option<&HttpRetry>, consistent_hash: bool) -> Option<RetryPolicy> {
    let mut out = RetryPolicy {
        retry_on: DEFAULT_RETRY_ON.to_owned(),
        num_retries: Some(UInt32Value { value: 2 }),
        host_selection_retry_max_attempts: 5,
        retry_host_predicate: if consistent_hash {
            Vec::new()
        } else {
            vec![previous_hosts()]
        },
        ..Default::default()
    };
    let Some(r) = r else {
        return Some(out);
    };
    let attempts = u32::try_from(r.attempts.unwrap_or(0))
        .ok()
        .filter(|a| *a > 0)?;
    out.num_retries = Some(UInt32Value { value: attempts });
    if let Some(on) = &r.retry_on {
        let (conditions, codes) = parse_retry_on(on);
        out.retry_on = conditions;
        if !codes.is_empty() && !out.retry_on.contains("retriable-status-codes") {
            if !out.retry_on.is_empty() {
                out.retry_on.push(',');
            }
            out.retry_on.push_str("retriable-status-codes");
        }
        out.retriable_status_codes = codes;
    }
    out.per_try_timeout = r.per_try_timeout.map(|d| pb_duration(d.get()));
    if let Some(ignore) = r.retry_ignore_previous_hosts {
        out.retry_host_predicate = if ignore {
            vec![previous_hosts()]
        } else {
            Vec::new()
        };
    }
    if r.retry_remote_localities == Some(true) {
        out.retry_priority = Some(retry_policy::RetryPriority {
            name: PREVIOUS_PRIORITIES.to_owned(),
            config_type: Some(retry_policy::retry_priority::ConfigType::TypedConfig(any(
                &PreviousPrioritiesConfig {
                    update_frequency: 2,
                },
            ))),
        });
    }
    if let Some(b) = r.backoff {
        out.retry_back_off = Some(retry_policy::RetryBackOff {
            base_interval: Some(pb_duration(b.get())),
            max_interval: None,
        });
    }
    Some(out)
}

fn previous_hosts() -> retry_policy::RetryHostPredicate {
    retry_policy::RetryHostPredicate {
        name: PREVIOUS_HOSTS.to_owned(),
        config_type: Some(retry_policy::retry_host_predicate::ConfigType::TypedConfig(
            any(&PreviousHostsPredicate {}),
        )),
    }
}

/// Splits `retryOn` into Envoy conditions and HTTP status codes (numbers Go's `net/http`
/// names; other numbers stay conditions, as in Istio).
fn parse_retry_on(s: &str) -> (String, Vec<u32>) {
    let mut conditions = Vec::new();
    let mut codes = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<u32>() {
            Ok(code) if known_status(code) => codes.push(code),
            _ => conditions.push(part),
        }
    }
    (conditions.join(","), codes)
}

/// The status codes Go's `http.StatusText` knows.
fn known_status(code: u32) -> bool {
    matches!(code,
        100..=103 | 200..=208 | 226 | 300..=305 | 307 | 308 | 400..=418 | 421..=426 | 428
        | 429 | 431 | 451 | 500..=508 | 510 | 511)
}

/// Istio's `TranslateFault`; `None` when neither a fixed delay nor an HTTP or gRPC abort is
/// left (exponential delays and HTTP/2 errors are not supported by Istio).
fn fault(f: &HttpFaultInjection) -> Option<HttpFault> {
    let delay = f.delay.as_ref().and_then(|d| {
        let Some(HttpDelayType::FixedDelay(fixed)) = d.http_delay_type else {
            return None;
        };
        let percentage = match d.percentage {
            Some(p) => fraction_of_million(p),
            None => fraction_of_hundred(d.percent.and_then(|p| u32::try_from(p).ok()).unwrap_or(0)),
        };
        Some(FaultDelay {
            percentage: Some(percentage),
            fault_delay_secifier: Some(FaultDelaySecifier::FixedDelay(pb_duration(fixed.get()))),
        })
    });
    let abort = f.abort.as_ref().and_then(|a| {
        let error = match a.error_type.as_ref()? {
            AbortErrorType::HttpStatus(s) => {
                fault_abort::ErrorType::HttpStatus(u32::try_from(*s).ok()?)
            }
            AbortErrorType::GrpcStatus(s) => fault_abort::ErrorType::GrpcStatus(grpc_code(s)),
            AbortErrorType::Http2Error(_) => return None,
        };
        Some(FaultAbort {
            percentage: a.percentage.map(fraction_of_million),
            error_type: Some(error),
            ..Default::default()
        })
    });
    if delay.is_none() && abort.is_none() {
        return None;
    }
    Some(HttpFault {
        delay,
        abort,
        ..Default::default()
    })
}

/// A gRPC status name's code (validation accepts only these names).
fn grpc_code(name: &str) -> u32 {
    weft_api::networking::virtual_service::grpc_status_code(name).unwrap_or(0)
}

/// Istio's `TranslateCORSPolicy`.
fn cors(c: &CorsPolicy) -> EnvoyCors {
    let origins = if c.allow_origins.is_empty() {
        c.allow_origin
            .iter()
            .map(|o| StringMatcher {
                match_pattern: Some(MatchPattern::Exact(o.clone())),
                ignore_case: false,
            })
            .collect()
    } else {
        c.allow_origins.iter().filter_map(string_matcher).collect()
    };
    EnvoyCors {
        allow_origin_string_match: origins,
        allow_methods: c.allow_methods.join(","),
        allow_headers: c.allow_headers.join(","),
        expose_headers: c.expose_headers.join(","),
        max_age: c
            .max_age
            .map(|d| d.get().as_secs().to_string())
            .unwrap_or_default(),
        allow_credentials: c.allow_credentials.map(|value| BoolValue { value }),
        filter_enabled: Some(RuntimeFractionalPercent {
            default_value: Some(fraction_of_hundred(100)),
            runtime_key: String::new(),
        }),
        forward_not_matching_preflights: Some(BoolValue {
            value: c.unmatched_preflights != Some(UnmatchedPreflights::Ignore),
        }),
        ..Default::default()
    }
}

/// A protobuf duration.
pub(crate) fn pb_duration(d: StdDuration) -> PbDuration {
    PbDuration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// `m` packed into an `Any`.
pub(crate) fn any<M: Message + Name>(m: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}
