//! The HTTP connection manager and the HTTP filters weft implements (router, fault, CORS, local
//! rate limit), with their per-route configurations.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::route::v3 as route_pb;
use envoy_types::pb::envoy::extensions::filters::common::fault::v3 as common_fault;
use envoy_types::pb::envoy::extensions::filters::http::{
    cors::v3 as cors, fault::v3 as fault, local_ratelimit::v3 as lrl, router::v3 as router,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as pb;
use envoy_types::pb::envoy::r#type::v3 as ty;
use envoy_types::pb::google::protobuf::Any;

use super::listener::unpack;
use super::{
    Ctx, any_type, at, constraint, duration, duration_or, invalid, route, timeout, unsupported,
};
use crate::{
    ConfigError,
    model::{
        CodecType, CorsPolicy, EscapedSlashesAction, FaultAbort, FaultAbortKind, FaultDelay,
        FaultFilter, FaultHeaderMatch, Fraction, Http2Settings, HttpConnectionManager, HttpFilter,
        LocalRateLimit, PerFilterConfig, RouterFilter, ServerHeaderTransformation, TokenBucket,
        UnderscoreHeaderAction,
    },
};

// Envoy's defaults for the connection manager.
const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
const IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_REQUEST_HEADERS_KB: u32 = 60;
const MAX_HEADERS_COUNT: u32 = 100;
const SERVER_NAME: &str = "envoy";
// Envoy's HTTP/2 defaults; weft clamps them to `Http2Settings::default()`.
const H2_MAX_CONCURRENT_STREAMS: u32 = 2_147_483_647;
const H2_INITIAL_WINDOW: u32 = 268_435_456;

pub(crate) const ROUTER: &str = "envoy.filters.http.router";
pub(crate) const FAULT: &str = "envoy.filters.http.fault";
pub(crate) const CORS: &str = "envoy.filters.http.cors";
pub(crate) const LOCAL_RATELIMIT: &str = "envoy.filters.http.local_ratelimit";

const ROUTER_TYPE: &str = "envoy.extensions.filters.http.router.v3.Router";
const FAULT_TYPE: &str = "envoy.extensions.filters.http.fault.v3.HTTPFault";
const CORS_TYPE: &str = "envoy.extensions.filters.http.cors.v3.Cors";
const CORS_POLICY_TYPE: &str = "envoy.extensions.filters.http.cors.v3.CorsPolicy";
const LRL_TYPE: &str = "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit";
const FILTER_CONFIG_TYPE: &str = "envoy.config.route.v3.FilterConfig";

/// Configured HTTP filter names → the canonical name of the filter they are, so
/// `typed_per_filter_config` keys can name a filter either way.
pub(crate) type FilterNames = HashMap<String, &'static str>;

pub(crate) fn convert(
    h: &pb::HttpConnectionManager,
    path: &str,
    resource: &str,
    ctx: &Ctx<'_>,
) -> Result<HttpConnectionManager, ConfigError> {
    use pb::http_connection_manager::{
        CodecType as Codec, PathWithEscapedSlashesAction as Esc, RouteSpecifier,
        ServerHeaderTransformation as Server, StripPortMode,
    };
    let codec = match Codec::try_from(h.codec_type) {
        Ok(Codec::Auto) => CodecType::Auto,
        Ok(Codec::Http1) => CodecType::Http1,
        Ok(Codec::Http2) => CodecType::Http2,
        _ => {
            return Err(unsupported(
                at(path, "codec_type"),
                format!(
                    "unsupported: {resource} codec_type HTTP3 (weft serves HTTP/1.1 and HTTP/2)"
                ),
            ));
        }
    };
    let (http_filters, names) = http_filters(&h.http_filters, &at(path, "http_filters"), resource)?;
    let route_config = match &h.route_specifier {
        Some(RouteSpecifier::RouteConfig(rc)) => {
            route::convert(rc, &at(path, "route_config"), &names, ctx)?
        }
        Some(RouteSpecifier::Rds(rds)) => {
            let rds_path = at(path, "rds");
            if !ctx.ads {
                return Err(unsupported(
                    &rds_path,
                    format!(
                        "unsupported: {resource} rds without dynamic_resources.ads_config \
                         (route configurations arrive from a control plane over ADS)"
                    ),
                ));
            }
            crate::xds::require_ads(
                rds.config_source.as_ref(),
                &at(&rds_path, "config_source"),
                resource,
            )?;
            let name = &rds.route_config_name;
            // Envoy serves an empty route table (every request 404 NR) until RDS delivers the
            // configuration; the xDS client only applies a listener once its routes arrived or
            // their initial fetch timed out.
            let empty = route_pb::RouteConfiguration {
                name: name.clone(),
                ..Default::default()
            };
            let rc = ctx.routes.and_then(|r| r.get(name)).unwrap_or(&empty);
            // For RDS, unlike inline route configurations, validate_clusters defaults to false.
            let mut rc = rc.clone();
            rc.validate_clusters
                .get_or_insert(envoy_types::pb::google::protobuf::BoolValue { value: false });
            route::convert(&rc, "", &names, ctx).inspect_err(|_| {
                ctx.rds_failure.set(Some(name.clone()));
            })?
        }
        // The support check rejects scoped_routes before we get here.
        _ => {
            return Err(unsupported(
                path,
                format!(
                    "unsupported: {resource} http_connection_manager without an inline route_config"
                ),
            ));
        }
    };
    let common = h.common_http_protocol_options.unwrap_or_default();
    let common_path = at(path, "common_http_protocol_options");
    let escaped_slashes = match Esc::try_from(h.path_with_escaped_slashes_action) {
        Ok(Esc::ImplementationSpecificDefault | Esc::KeepUnchanged) => {
            EscapedSlashesAction::KeepUnchanged
        }
        Ok(Esc::RejectRequest) => EscapedSlashesAction::RejectRequest,
        Ok(Esc::UnescapeAndRedirect) => EscapedSlashesAction::UnescapeAndRedirect,
        Ok(Esc::UnescapeAndForward) => EscapedSlashesAction::UnescapeAndForward,
        Err(_) => {
            return Err(unknown_enum(
                path,
                "path_with_escaped_slashes_action",
                h.path_with_escaped_slashes_action,
            ));
        }
    };
    let headers_with_underscores = {
        use core::http_protocol_options::HeadersWithUnderscoresAction as U;
        match U::try_from(common.headers_with_underscores_action) {
            Ok(U::Allow) => UnderscoreHeaderAction::Allow,
            Ok(U::RejectRequest) => UnderscoreHeaderAction::RejectRequest,
            Ok(U::DropHeader) => UnderscoreHeaderAction::DropHeader,
            Err(_) => {
                return Err(unknown_enum(
                    &common_path,
                    "headers_with_underscores_action",
                    common.headers_with_underscores_action,
                ));
            }
        }
    };
    let server_header_transformation = match Server::try_from(h.server_header_transformation) {
        Ok(Server::Overwrite) => ServerHeaderTransformation::Overwrite,
        Ok(Server::AppendIfAbsent) => ServerHeaderTransformation::AppendIfAbsent,
        Ok(Server::PassThrough) => ServerHeaderTransformation::PassThrough,
        Err(_) => {
            return Err(unknown_enum(
                path,
                "server_header_transformation",
                h.server_header_transformation,
            ));
        }
    };
    let strip_any_host_port = matches!(
        h.strip_port_mode,
        Some(StripPortMode::StripAnyHostPort(true))
    );
    if strip_any_host_port && h.strip_matching_host_port {
        return Err(constraint(
            at(path, "strip_any_host_port"),
            "only one of strip_matching_host_port and strip_any_host_port can be set",
        ));
    }
    let mut upgrades = Vec::with_capacity(h.upgrade_configs.len());
    for (i, u) in h.upgrade_configs.iter().enumerate() {
        if u.enabled.as_ref().is_some_and(|e| !e.value) {
            return Err(unsupported(
                at(path, &format!("upgrade_configs[{i}].enabled")),
                format!(
                    "unsupported: {resource} upgrade {:?} disabled by default (enabled: false); \
                     leave it out instead",
                    u.upgrade_type
                ),
            ));
        }
        supported_upgrade(
            &u.upgrade_type,
            &at(path, &format!("upgrade_configs[{i}].upgrade_type")),
            resource,
        )?;
        upgrades.push(u.upgrade_type.clone());
    }
    Ok(HttpConnectionManager {
        stat_prefix: h.stat_prefix.clone(),
        route_config: std::sync::Arc::new(route_config),
        codec,
        http_filters,
        normalize_path: h.normalize_path.as_ref().is_some_and(|b| b.value),
        merge_slashes: h.merge_slashes,
        escaped_slashes,
        max_request_headers_kb: h
            .max_request_headers_kb
            .as_ref()
            .map_or(MAX_REQUEST_HEADERS_KB, |v| v.value),
        max_headers_count: common
            .max_headers_count
            .as_ref()
            .map_or(MAX_HEADERS_COUNT, |v| v.value),
        headers_with_underscores,
        idle_timeout: timeout(
            common.idle_timeout.as_ref(),
            &at(&common_path, "idle_timeout"),
            Some(IDLE_TIMEOUT),
        )?,
        stream_idle_timeout: timeout(
            h.stream_idle_timeout.as_ref(),
            &at(path, "stream_idle_timeout"),
            Some(STREAM_IDLE_TIMEOUT),
        )?,
        request_timeout: timeout(
            h.request_timeout.as_ref(),
            &at(path, "request_timeout"),
            None,
        )?,
        request_headers_timeout: timeout(
            h.request_headers_timeout.as_ref(),
            &at(path, "request_headers_timeout"),
            None,
        )?,
        max_stream_duration: timeout(
            common.max_stream_duration.as_ref(),
            &at(&common_path, "max_stream_duration"),
            None,
        )?,
        drain_timeout: duration_or(
            h.drain_timeout.as_ref(),
            &at(path, "drain_timeout"),
            DRAIN_TIMEOUT,
        )?,
        generate_request_id: h.generate_request_id.as_ref().is_none_or(|b| b.value),
        preserve_external_request_id: h.preserve_external_request_id,
        always_set_request_id_in_response: h.always_set_request_id_in_response,
        use_remote_address: h.use_remote_address.as_ref().is_some_and(|b| b.value),
        xff_num_trusted_hops: h.xff_num_trusted_hops,
        skip_xff_append: h.skip_xff_append,
        via: h.via.clone(),
        server_name: if h.server_name.is_empty() {
            SERVER_NAME.to_owned()
        } else {
            h.server_name.clone()
        },
        server_header_transformation,
        strip_matching_host_port: h.strip_matching_host_port,
        strip_any_host_port,
        upgrades,
        http2: http2_settings(h.http2_protocol_options.as_ref()),
    })
}

/// Envoy's HTTP/2 settings toward clients, clamped to weft's caps (`Http2Settings::default()`):
/// Envoy's own defaults (2^31-1 streams, 256 MiB windows) are far above them.
/// An upgrade type weft can serve: CONNECT (and CONNECT-UDP) tunnels are not implemented, so
/// enabling one is refused rather than left to fail on the first request.
pub(super) fn supported_upgrade(kind: &str, path: &str, resource: &str) -> Result<(), ConfigError> {
    if kind.eq_ignore_ascii_case("CONNECT") || kind.eq_ignore_ascii_case("CONNECT-UDP") {
        return Err(unsupported(
            path,
            format!(
                "unsupported: {resource} upgrade {kind:?} (weft does not terminate CONNECT tunnels)"
            ),
        ));
    }
    Ok(())
}

fn http2_settings(o: Option<&core::Http2ProtocolOptions>) -> Http2Settings {
    let caps = Http2Settings::default();
    let get = |v: Option<u32>, envoy_default: u32, cap: u32| v.unwrap_or(envoy_default).min(cap);
    let o = o.cloned().unwrap_or_default();
    Http2Settings {
        max_concurrent_streams: get(
            o.max_concurrent_streams.map(|v| v.value),
            H2_MAX_CONCURRENT_STREAMS,
            caps.max_concurrent_streams,
        ),
        initial_stream_window_size: get(
            o.initial_stream_window_size.map(|v| v.value),
            H2_INITIAL_WINDOW,
            caps.initial_stream_window_size,
        ),
        initial_connection_window_size: get(
            o.initial_connection_window_size.map(|v| v.value),
            H2_INITIAL_WINDOW,
            caps.initial_connection_window_size,
        ),
    }
}

fn unknown_enum(path: &str, field: &str, value: i32) -> ConfigError {
    invalid(at(path, field), format!("unknown enum value {value}"))
}

/// The HTTP filter chain. Like Envoy, it must end with the router (a terminal filter) and have
/// no terminal filter before the end.
fn http_filters(
    filters: &[pb::HttpFilter],
    path: &str,
    resource: &str,
) -> Result<(Vec<HttpFilter>, FilterNames), ConfigError> {
    let mut out = Vec::with_capacity(filters.len());
    let mut names = FilterNames::new();
    for (i, f) in filters.iter().enumerate() {
        let f_path = at(path, &format!("[{i}]"));
        let Some(pb::http_filter::ConfigType::TypedConfig(any)) = &f.config_type else {
            return Err(invalid(
                at(&f_path, "typed_config"),
                format!("{resource} HTTP filter {:?} needs a typed_config", f.name),
            ));
        };
        let tc_path = at(&f_path, "typed_config");
        let (filter, canonical) = match any_type(any, &tc_path)?.as_str() {
            ROUTER_TYPE => {
                let r: router::Router = unpack(any, &tc_path)?;
                (
                    HttpFilter::Router(RouterFilter {
                        suppress_envoy_headers: r.suppress_envoy_headers,
                        respect_expected_rq_timeout: r.respect_expected_rq_timeout,
                    }),
                    ROUTER,
                )
            }
            FAULT_TYPE => {
                let fc: fault::HttpFault = unpack(any, &tc_path)?;
                (
                    HttpFilter::Fault(Box::new(fault_filter(&fc, &tc_path, resource)?)),
                    FAULT,
                )
            }
            CORS_TYPE => {
                let _: cors::Cors = unpack(any, &tc_path)?;
                (HttpFilter::Cors, CORS)
            }
            LRL_TYPE => {
                let l: lrl::LocalRateLimit = unpack(any, &tc_path)?;
                (
                    HttpFilter::LocalRateLimit(Box::new(local_rate_limit(&l, &tc_path, resource)?)),
                    LOCAL_RATELIMIT,
                )
            }
            other => {
                return Err(unsupported(
                    tc_path,
                    format!(
                        "unsupported: {resource} HTTP filter {:?} (type {other})",
                        f.name
                    ),
                ));
            }
        };
        let last = i + 1 == filters.len();
        if canonical == ROUTER && !last {
            return Err(constraint(
                f_path,
                format!(
                    "{resource}: terminal filter {:?} (the router) must be the last HTTP filter",
                    f.name
                ),
            ));
        }
        if canonical != ROUTER && last {
            return Err(constraint(
                f_path,
                format!(
                    "{resource}: non-terminal filter {:?} is the last HTTP filter; the chain \
                     must end with envoy.filters.http.router",
                    f.name
                ),
            ));
        }
        names.insert(f.name.clone(), canonical);
        out.push(filter);
    }
    if out.is_empty() {
        return Err(constraint(
            path,
            format!(
                "{resource}: http_filters is empty; the chain must end with envoy.filters.http.router"
            ),
        ));
    }
    Ok((out, names))
}

fn fraction(p: Option<&ty::FractionalPercent>, default: Fraction) -> Fraction {
    use ty::fractional_percent::DenominatorType as D;
    p.map_or(default, |p| Fraction {
        numerator: p.numerator,
        denominator: match D::try_from(p.denominator) {
            Ok(D::TenThousand) => 10_000,
            Ok(D::Million) => 1_000_000,
            _ => 100,
        },
    })
}

fn runtime_fraction(p: Option<&core::RuntimeFractionalPercent>) -> Option<Fraction> {
    p.map(|p| {
        fraction(
            p.default_value.as_ref(),
            Fraction {
                numerator: 0,
                denominator: 100,
            },
        )
    })
}

const NEVER: Fraction = Fraction {
    numerator: 0,
    denominator: 100,
};

fn fault_filter(
    f: &fault::HttpFault,
    path: &str,
    resource: &str,
) -> Result<FaultFilter, ConfigError> {
    let delay = f
        .delay
        .as_ref()
        .map(|d| -> Result<FaultDelay, ConfigError> {
            use common_fault::fault_delay::FaultDelaySecifier as S;
            let fixed = match &d.fault_delay_secifier {
                Some(S::FixedDelay(fd)) => Some(duration(fd, &at(path, "delay.fixed_delay"))?),
                Some(S::HeaderDelay(_)) => None,
                None => {
                    return Err(invalid(
                        at(path, "delay"),
                        "needs fixed_delay or header_delay",
                    ));
                }
            };
            Ok(FaultDelay {
                fixed,
                percentage: fraction(d.percentage.as_ref(), NEVER),
            })
        })
        .transpose()?;
    let abort = f
        .abort
        .as_ref()
        .map(|a| -> Result<FaultAbort, ConfigError> {
            use fault::fault_abort::ErrorType as E;
            let kind = match a.error_type {
                Some(E::HttpStatus(s)) => FaultAbortKind::Http(
                    u16::try_from(s)
                        .map_err(|_| invalid(at(path, "abort.http_status"), "out of range"))?,
                ),
                Some(E::GrpcStatus(s)) => FaultAbortKind::Grpc(s),
                Some(E::HeaderAbort(_)) => FaultAbortKind::Header,
                None => {
                    return Err(invalid(
                        at(path, "abort"),
                        "needs http_status, grpc_status or header_abort",
                    ));
                }
            };
            Ok(FaultAbort {
                kind,
                percentage: fraction(a.percentage.as_ref(), NEVER),
            })
        })
        .transpose()?;
    let headers = f
        .headers
        .iter()
        .enumerate()
        .map(|(i, h)| fault_header(h, &at(path, &format!("headers[{i}]")), resource))
        .collect::<Result<_, _>>()?;
    Ok(FaultFilter {
        delay,
        abort,
        upstream_cluster: (!f.upstream_cluster.is_empty()).then(|| f.upstream_cluster.clone()),
        headers,
        max_active_faults: f.max_active_faults.as_ref().map(|v| v.value),
    })
}

/// The fault filter's header conditions: weft models presence, exact and prefix matches.
#[allow(
    deprecated,
    reason = "exact_match and prefix_match are deprecated but still accepted by Envoy"
)]
fn fault_header(
    h: &route_pb::HeaderMatcher,
    path: &str,
    resource: &str,
) -> Result<(String, FaultHeaderMatch), ConfigError> {
    use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern as P;
    use route_pb::header_matcher::HeaderMatchSpecifier as S;
    let m = match &h.header_match_specifier {
        _ if h.invert_match || h.treat_missing_header_as_empty => None,
        None | Some(S::PresentMatch(true)) => Some(FaultHeaderMatch::Present),
        Some(S::ExactMatch(v)) => Some(FaultHeaderMatch::Exact(v.clone())),
        Some(S::PrefixMatch(v)) => Some(FaultHeaderMatch::Prefix(v.clone())),
        Some(S::StringMatch(sm)) if !sm.ignore_case => match &sm.match_pattern {
            Some(P::Exact(v)) => Some(FaultHeaderMatch::Exact(v.clone())),
            Some(P::Prefix(v)) => Some(FaultHeaderMatch::Prefix(v.clone())),
            _ => None,
        },
        _ => None,
    };
    m.map(|m| (h.name.clone(), m)).ok_or_else(|| {
        unsupported(
            path,
            format!(
                "unsupported: {resource} fault filter header condition on {:?}: weft supports \
                 presence, exact and prefix matches only",
                h.name
            ),
        )
    })
}

fn local_rate_limit(
    l: &lrl::LocalRateLimit,
    path: &str,
    resource: &str,
) -> Result<LocalRateLimit, ConfigError> {
    let token_bucket = l
        .token_bucket
        .as_ref()
        .map(|b| -> Result<TokenBucket, ConfigError> {
            Ok(TokenBucket {
                max_tokens: b.max_tokens,
                tokens_per_fill: b.tokens_per_fill.as_ref().map_or(1, |v| v.value),
                fill_interval: duration_or(
                    b.fill_interval.as_ref(),
                    &at(path, "token_bucket.fill_interval"),
                    Duration::ZERO,
                )?,
            })
        })
        .transpose()?;
    let status = match l.status.as_ref().map(|s| s.code) {
        None | Some(0) => 429,
        Some(code) => {
            u16::try_from(code).map_err(|_| invalid(at(path, "status.code"), "out of range"))?
        }
    };
    let mut response_headers_to_add = Vec::with_capacity(l.response_headers_to_add.len());
    for (i, h) in l.response_headers_to_add.iter().enumerate() {
        let h_path = at(path, &format!("response_headers_to_add[{i}]"));
        #[allow(deprecated, reason = "`append` is deprecated but Envoy still reads it")]
        let plain = h.append.is_none() && h.append_action == 0 && !h.keep_empty_value;
        if !plain {
            return Err(unsupported(
                h_path,
                format!(
                    "unsupported: {resource} local_ratelimit response_headers_to_add with \
                     append, append_action or keep_empty_value"
                ),
            ));
        }
        let header = h.header.clone().unwrap_or_default();
        let value = header_value(&header, &h_path)?;
        response_headers_to_add.push((header.key, value));
    }
    Ok(LocalRateLimit {
        stat_prefix: l.stat_prefix.clone(),
        token_bucket,
        filter_enabled: runtime_fraction(l.filter_enabled.as_ref()).unwrap_or(NEVER),
        filter_enforced: runtime_fraction(l.filter_enforced.as_ref()).unwrap_or(NEVER),
        status,
        response_headers_to_add,
    })
}

/// A `HeaderValue`'s value: `value`, or `raw_value` when it is UTF-8.
pub(crate) fn header_value(h: &core::HeaderValue, path: &str) -> Result<String, ConfigError> {
    if h.raw_value.is_empty() {
        return Ok(h.value.clone());
    }
    String::from_utf8(h.raw_value.clone()).map_err(|_| {
        unsupported(
            at(path, "header.raw_value"),
            "unsupported: header raw_value that is not UTF-8",
        )
    })
}

fn cors_policy(c: &cors::CorsPolicy, path: &str) -> Result<CorsPolicy, ConfigError> {
    Ok(CorsPolicy {
        allow_origin: c
            .allow_origin_string_match
            .iter()
            .enumerate()
            .map(|(i, m)| {
                route::string_matcher(m, &at(path, &format!("allow_origin_string_match[{i}]")))
            })
            .collect::<Result<_, _>>()?,
        allow_methods: c.allow_methods.clone(),
        allow_headers: c.allow_headers.clone(),
        expose_headers: c.expose_headers.clone(),
        max_age: c.max_age.clone(),
        allow_credentials: c.allow_credentials.as_ref().is_some_and(|b| b.value),
        filter_enabled: runtime_fraction(c.filter_enabled.as_ref()),
        shadow_enabled: runtime_fraction(c.shadow_enabled.as_ref()),
        allow_private_network_access: c
            .allow_private_network_access
            .as_ref()
            .is_some_and(|b| b.value),
        // Envoy: "Default is true."
        forward_not_matching_preflights: c
            .forward_not_matching_preflights
            .as_ref()
            .is_none_or(|b| b.value),
    })
}

/// `typed_per_filter_config` of a route configuration, virtual host or route. Keys are
/// rewritten to the canonical name of the filter they configure (a configured filter name of
/// this connection manager, or the canonical name itself), so the data plane looks them up one
/// way.
pub(crate) fn per_filter_configs(
    map: &HashMap<String, Any>,
    path: &str,
    names: &FilterNames,
) -> Result<BTreeMap<String, PerFilterConfig>, ConfigError> {
    let mut keys: Vec<_> = map.keys().collect();
    keys.sort();
    let mut out = BTreeMap::new();
    for key in keys {
        let Some(any) = map.get(key) else { continue };
        let e_path = format!("{path}[{key:?}]");
        let (config, kind) = per_filter_config(any, &e_path)?;
        let target = names.get(key.as_str()).copied().or_else(|| {
            [ROUTER, FAULT, CORS, LOCAL_RATELIMIT]
                .into_iter()
                .find(|n| n == key)
        });
        if let (Some(target), Some(kind)) = (target, kind)
            && target != kind
        {
            return Err(invalid(
                e_path,
                format!("{key:?} is the {target} filter, but this config is for {kind}"),
            ));
        }
        out.insert(target.map_or_else(|| key.clone(), str::to_owned), config);
    }
    Ok(out)
}

/// One per-filter config and the canonical name of the filter its type belongs to (`None` for
/// a bare `disabled: true`, which fits any filter).
fn per_filter_config(
    any: &Any,
    path: &str,
) -> Result<(PerFilterConfig, Option<&'static str>), ConfigError> {
    Ok(match any_type(any, path)?.as_str() {
        FAULT_TYPE => {
            let f: fault::HttpFault = unpack(any, path)?;
            (
                PerFilterConfig::Fault(Box::new(fault_filter(&f, path, "route")?)),
                Some(FAULT),
            )
        }
        CORS_POLICY_TYPE => {
            let c: cors::CorsPolicy = unpack(any, path)?;
            (
                PerFilterConfig::Cors(Box::new(cors_policy(&c, path)?)),
                Some(CORS),
            )
        }
        LRL_TYPE => {
            let l: lrl::LocalRateLimit = unpack(any, path)?;
            (
                PerFilterConfig::LocalRateLimit(Box::new(local_rate_limit(&l, path, "route")?)),
                Some(LOCAL_RATELIMIT),
            )
        }
        FILTER_CONFIG_TYPE => {
            let fc: route_pb::FilterConfig = unpack(any, path)?;
            match (&fc.config, fc.disabled) {
                // Envoy ignores the config of a disabled filter.
                (_, true) => (PerFilterConfig::Disabled, None),
                (Some(inner), false) => per_filter_config(inner, &at(path, "config"))?,
                (None, false) => {
                    return Err(invalid(
                        path,
                        "a FilterConfig needs a config unless it sets disabled: true",
                    ));
                }
            }
        }
        other => {
            return Err(unsupported(
                path,
                format!("unsupported: per-filter config of type {other}"),
            ));
        }
    })
}
