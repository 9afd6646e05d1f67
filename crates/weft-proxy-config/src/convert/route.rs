//! `RouteConfiguration` into `weft_proxy_route`'s model, compiled into a [`RouteTable`].

use std::collections::HashSet;
use std::path::Path;

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::route::v3 as pb;
use envoy_types::pb::envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;
use envoy_types::pb::envoy::r#type::v3 as ty;
use weft_proxy_route as r;

use super::hcm::{FilterNames, header_value, per_filter_configs};
use super::{Ctx, any_type, at, constraint, duration, invalid, opt_duration, unsupported};
use crate::{
    ConfigError,
    error::ErrorKind,
    model::{PerFilterConfig, RouteTable},
};

type RouteConfiguration = r::RouteConfiguration<PerFilterConfig>;

const PREVIOUS_HOSTS: &str = "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate";
const PREVIOUS_PRIORITIES: &str =
    "envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig";

/// Converts and compiles an inline route configuration. Like Envoy for static route
/// configurations, `validate_clusters` defaults to true: every cluster named by a route or a
/// mirror policy must be one of the bootstrap's clusters.
pub(crate) fn convert(
    rc: &pb::RouteConfiguration,
    path: &str,
    names: &FilterNames,
    ctx: &Ctx<'_>,
) -> Result<RouteTable, ConfigError> {
    let config = route_configuration(rc, path, names, ctx.base_dir)?;
    if rc.validate_clusters.as_ref().is_none_or(|v| v.value) {
        validate_clusters(&config, path, &ctx.cluster_names)?;
    }
    r::RouteTable::new(config).map_err(|e| route_error(&e, path))
}

fn route_error(e: &r::RouteConfigError, path: &str) -> ConfigError {
    let field = match e {
        r::RouteConfigError::DuplicateDomain { field, .. }
        | r::RouteConfigError::MultipleDefaultVirtualHosts { field, .. }
        | r::RouteConfigError::InvalidRegex { field, .. }
        | r::RouteConfigError::UnknownCommandOperator { field, .. }
        | r::RouteConfigError::Invalid { field, .. } => field.as_str(),
        _ => "",
    };
    let message = e.to_string();
    // The route crate's message starts with the field; the path carries it instead.
    let message = message
        .strip_prefix(&format!("{field}: "))
        .unwrap_or(&message)
        .to_owned();
    ConfigError::new(ErrorKind::Constraint, super::at(path, field), message)
}

fn validate_clusters(
    config: &RouteConfiguration,
    path: &str,
    known: &HashSet<String>,
) -> Result<(), ConfigError> {
    let check = |name: &str, field: String, what: &str| {
        if known.contains(name) {
            Ok(())
        } else {
            Err(constraint(
                field,
                format!(
                    "route configuration {:?}: unknown {what} {name:?} (validate_clusters is on \
                     by default for inline route configurations; define the cluster or set \
                     validate_clusters: false)",
                    config.name
                ),
            ))
        }
    };
    let mirrors = |policies: &[r::RequestMirrorPolicy], base: &str| {
        policies
            .iter()
            .enumerate()
            .try_for_each(|(i, m)| match &m.cluster {
                r::ClusterRef::Name(n) => check(
                    n,
                    at(base, &format!("request_mirror_policies[{i}].cluster")),
                    "mirror cluster",
                ),
                r::ClusterRef::Header(_) => Ok(()),
            })
    };
    mirrors(&config.request_mirror_policies, path)?;
    for (v, vh) in config.virtual_hosts.iter().enumerate() {
        let vh_path = at(path, &format!("virtual_hosts[{v}]"));
        mirrors(&vh.request_mirror_policies, &vh_path)?;
        for (i, route) in vh.routes.iter().enumerate() {
            let r_path = at(&vh_path, &format!("routes[{i}].route"));
            let r::Action::Route(action) = &route.action else {
                continue;
            };
            match &action.cluster_specifier {
                r::ClusterSpecifier::Cluster(c) => check(c, at(&r_path, "cluster"), "cluster")?,
                r::ClusterSpecifier::WeightedClusters(w) => {
                    for (j, cw) in w.clusters.iter().enumerate() {
                        if let r::ClusterRef::Name(n) = &cw.cluster {
                            check(
                                n,
                                at(&r_path, &format!("weighted_clusters.clusters[{j}].name")),
                                "weighted cluster",
                            )?;
                        }
                    }
                }
                r::ClusterSpecifier::ClusterHeader(_) => {}
            }
            mirrors(&action.request_mirror_policies, &r_path)?;
        }
    }
    Ok(())
}

fn route_configuration(
    rc: &pb::RouteConfiguration,
    path: &str,
    names: &FilterNames,
    base_dir: &Path,
) -> Result<RouteConfiguration, ConfigError> {
    let mut virtual_hosts = Vec::with_capacity(rc.virtual_hosts.len());
    for (i, vh) in rc.virtual_hosts.iter().enumerate() {
        virtual_hosts.push(virtual_host(
            vh,
            &at(path, &format!("virtual_hosts[{i}]")),
            names,
            base_dir,
        )?);
    }
    Ok(r::RouteConfiguration {
        name: rc.name.clone(),
        virtual_hosts,
        internal_only_headers: rc.internal_only_headers.clone(),
        request_headers: header_ops(
            &rc.request_headers_to_add,
            &rc.request_headers_to_remove,
            &at(path, "request_headers_to_add"),
        )?,
        response_headers: header_ops(
            &rc.response_headers_to_add,
            &rc.response_headers_to_remove,
            &at(path, "response_headers_to_add"),
        )?,
        most_specific_header_mutations_wins: rc.most_specific_header_mutations_wins,
        ignore_port_in_host_matching: rc.ignore_port_in_host_matching,
        vhost_header: (!rc.vhost_header.is_empty()).then(|| rc.vhost_header.clone()),
        request_mirror_policies: mirror_policies(
            &rc.request_mirror_policies,
            &at(path, "request_mirror_policies"),
        )?,
        max_direct_response_body_size_bytes: rc
            .max_direct_response_body_size_bytes
            .as_ref()
            .map(|v| v.value),
        multi_value_headers: r::MultiValueHeaders::default(),
        typed_per_filter_config: per_filter_configs(
            &rc.typed_per_filter_config,
            &at(path, "typed_per_filter_config"),
            names,
        )?,
    })
}

fn virtual_host(
    vh: &pb::VirtualHost,
    path: &str,
    names: &FilterNames,
    base_dir: &Path,
) -> Result<r::VirtualHost<PerFilterConfig>, ConfigError> {
    let mut routes = Vec::with_capacity(vh.routes.len());
    for (i, route) in vh.routes.iter().enumerate() {
        routes.push(convert_route(
            route,
            &at(path, &format!("routes[{i}]")),
            names,
            base_dir,
        )?);
    }
    Ok(r::VirtualHost {
        name: vh.name.clone(),
        domains: vh.domains.clone(),
        routes,
        request_headers: header_ops(
            &vh.request_headers_to_add,
            &vh.request_headers_to_remove,
            &at(path, "request_headers_to_add"),
        )?,
        response_headers: header_ops(
            &vh.response_headers_to_add,
            &vh.response_headers_to_remove,
            &at(path, "response_headers_to_add"),
        )?,
        retry_policy: vh
            .retry_policy
            .as_ref()
            .map(|p| retry_policy(p, &at(path, "retry_policy")))
            .transpose()?,
        include_request_attempt_count: vh.include_request_attempt_count,
        include_attempt_count_in_response: vh.include_attempt_count_in_response,
        request_mirror_policies: mirror_policies(
            &vh.request_mirror_policies,
            &at(path, "request_mirror_policies"),
        )?,
        typed_per_filter_config: per_filter_configs(
            &vh.typed_per_filter_config,
            &at(path, "typed_per_filter_config"),
            names,
        )?,
        require_tls: require_tls(vh.require_tls, &at(path, "require_tls"))?,
    })
}

fn require_tls(value: i32, path: &str) -> Result<r::TlsRequirement, ConfigError> {
    use pb::virtual_host::TlsRequirementType as T;
    match T::try_from(value) {
        Ok(T::None) => Ok(r::TlsRequirement::None),
        Ok(T::ExternalOnly) => Ok(r::TlsRequirement::ExternalOnly),
        Ok(T::All) => Ok(r::TlsRequirement::All),
        Err(_) => Err(invalid(path, format!("unknown enum value {value}"))),
    }
}

fn convert_route(
    route: &pb::Route,
    path: &str,
    names: &FilterNames,
    base_dir: &Path,
) -> Result<r::Route<PerFilterConfig>, ConfigError> {
    use pb::route::Action as A;
    let route_match = route_match(
        route
            .r#match
            .as_ref()
            .ok_or_else(|| invalid(at(path, "match"), "a route needs a match"))?,
        &at(path, "match"),
    )?;
    let action = match &route.action {
        Some(A::Route(a)) => r::Action::Route(route_action(a, &at(path, "route"))?),
        Some(A::Redirect(a)) => r::Action::Redirect(redirect(a, &at(path, "redirect"))?),
        Some(A::DirectResponse(a)) => r::Action::DirectResponse(r::DirectResponseAction {
            status: u16::try_from(a.status)
                .map_err(|_| invalid(at(path, "direct_response.status"), "out of range"))?,
            body: a
                .body
                .as_ref()
                .map(|b| data_source_bytes(b, &at(path, "direct_response.body"), base_dir))
                .transpose()?
                .map(Bytes::from),
        }),
        _ => {
            return Err(unsupported(
                path,
                "unsupported: route action other than route, redirect or direct_response",
            ));
        }
    };
    Ok(r::Route {
        name: route.name.clone(),
        route_match,
        action,
        request_headers: header_ops(
            &route.request_headers_to_add,
            &route.request_headers_to_remove,
            &at(path, "request_headers_to_add"),
        )?,
        response_headers: header_ops(
            &route.response_headers_to_add,
            &route.response_headers_to_remove,
            &at(path, "response_headers_to_add"),
        )?,
        typed_per_filter_config: per_filter_configs(
            &route.typed_per_filter_config,
            &at(path, "typed_per_filter_config"),
            names,
        )?,
    })
}

fn route_match(m: &pb::RouteMatch, path: &str) -> Result<r::RouteMatch, ConfigError> {
    use pb::route_match::PathSpecifier as P;
    let specifier = match &m.path_specifier {
        Some(P::Prefix(p)) => r::PathSpecifier::Prefix(p.clone()),
        Some(P::Path(p)) => r::PathSpecifier::Path(p.clone()),
        Some(P::SafeRegex(re)) => r::PathSpecifier::SafeRegex(re.regex.clone()),
        Some(P::PathSeparatedPrefix(p)) => r::PathSpecifier::PathSeparatedPrefix(p.clone()),
        Some(P::ConnectMatcher(_)) => r::PathSpecifier::ConnectMatcher,
        _ => {
            return Err(unsupported(
                path,
                "unsupported: route match without prefix, path, safe_regex, \
                 path_separated_prefix or connect_matcher",
            ));
        }
    };
    let mut out = r::RouteMatch::new(specifier);
    out.case_sensitive = m.case_sensitive.as_ref().is_none_or(|b| b.value);
    out.headers = m
        .headers
        .iter()
        .enumerate()
        .map(|(i, h)| header_matcher(h, &at(path, &format!("headers[{i}]"))))
        .collect::<Result<_, _>>()?;
    out.query_parameters = m
        .query_parameters
        .iter()
        .enumerate()
        .map(|(i, q)| query_matcher(q, &at(path, &format!("query_parameters[{i}]"))))
        .collect::<Result<_, _>>()?;
    out.grpc = m.grpc.is_some();
    out.runtime_fraction = m
        .runtime_fraction
        .as_ref()
        .map(|f| fractional_percent(f.default_value.as_ref()));
    Ok(out)
}

fn fractional_percent(p: Option<&ty::FractionalPercent>) -> r::FractionalPercent {
    use ty::fractional_percent::DenominatorType as D;
    let p = p.cloned().unwrap_or_default();
    r::FractionalPercent {
        numerator: p.numerator,
        denominator: match D::try_from(p.denominator) {
            Ok(D::TenThousand) => r::Denominator::TenThousand,
            Ok(D::Million) => r::Denominator::Million,
            _ => r::Denominator::Hundred,
        },
    }
}

#[allow(
    deprecated,
    reason = "the deprecated header match fields are still accepted by Envoy 1.40"
)]
pub(crate) fn header_matcher(
    h: &pb::HeaderMatcher,
    path: &str,
) -> Result<r::HeaderMatcher, ConfigError> {
    use pb::header_matcher::HeaderMatchSpecifier as S;
    let specifier = match &h.header_match_specifier {
        None => r::HeaderMatchSpecifier::Present(true),
        Some(S::ExactMatch(v)) => r::HeaderMatchSpecifier::Exact(v.clone()),
        Some(S::SafeRegexMatch(re)) => r::HeaderMatchSpecifier::SafeRegex(re.regex.clone()),
        Some(S::RangeMatch(range)) => r::HeaderMatchSpecifier::Range {
            start: range.start,
            end: range.end,
        },
        Some(S::PresentMatch(p)) => r::HeaderMatchSpecifier::Present(*p),
        Some(S::PrefixMatch(v)) => r::HeaderMatchSpecifier::Prefix(v.clone()),
        Some(S::SuffixMatch(v)) => r::HeaderMatchSpecifier::Suffix(v.clone()),
        Some(S::ContainsMatch(v)) => r::HeaderMatchSpecifier::Contains(v.clone()),
        Some(S::StringMatch(sm)) => {
            r::HeaderMatchSpecifier::StringMatch(string_matcher(sm, &at(path, "string_match"))?)
        }
    };
    Ok(r::HeaderMatcher {
        name: h.name.clone(),
        specifier,
        invert_match: h.invert_match,
        treat_missing_header_as_empty: h.treat_missing_header_as_empty,
    })
}

fn query_matcher(
    q: &pb::QueryParameterMatcher,
    path: &str,
) -> Result<r::QueryParameterMatcher, ConfigError> {
    use pb::query_parameter_matcher::QueryParameterMatchSpecifier as S;
    let specifier = match &q.query_parameter_match_specifier {
        Some(S::StringMatch(sm)) => r::QueryParameterMatchSpecifier::StringMatch(string_matcher(
            sm,
            &at(path, "string_match"),
        )?),
        Some(S::PresentMatch(p)) => r::QueryParameterMatchSpecifier::Present(*p),
        None => r::QueryParameterMatchSpecifier::Present(true),
    };
    Ok(r::QueryParameterMatcher {
        name: q.name.clone(),
        specifier,
    })
}

/// `type.matcher.v3.StringMatcher` (without the `custom` extension).
pub(crate) fn string_matcher(
    m: &matcher::StringMatcher,
    path: &str,
) -> Result<r::StringMatcher, ConfigError> {
    use matcher::string_matcher::MatchPattern as P;
    let pattern = match &m.match_pattern {
        Some(P::Exact(s)) => r::StringPattern::Exact(s.clone()),
        Some(P::Prefix(s)) => r::StringPattern::Prefix(s.clone()),
        Some(P::Suffix(s)) => r::StringPattern::Suffix(s.clone()),
        Some(P::Contains(s)) => r::StringPattern::Contains(s.clone()),
        Some(P::SafeRegex(re)) => r::StringPattern::SafeRegex(re.regex.clone()),
        Some(P::Custom(_)) => {
            return Err(unsupported(
                at(path, "custom"),
                "unsupported: custom string matchers",
            ));
        }
        None => return Err(invalid(path, "a string matcher needs a pattern")),
    };
    Ok(r::StringMatcher {
        pattern,
        ignore_case: m.ignore_case,
    })
}

fn regex_rewrite(
    m: &matcher::RegexMatchAndSubstitute,
    path: &str,
) -> Result<r::RegexRewrite, ConfigError> {
    let pattern = m
        .pattern
        .as_ref()
        .ok_or_else(|| invalid(at(path, "pattern"), "a regex rewrite needs a pattern"))?;
    Ok(r::RegexRewrite {
        pattern: pattern.regex.clone(),
        substitution: m.substitution.clone(),
    })
}

fn route_action(a: &pb::RouteAction, path: &str) -> Result<r::RouteAction, ConfigError> {
    use pb::route_action::{
        ClusterNotFoundResponseCode as Nf, ClusterSpecifier as C, HostRewriteSpecifier as H,
    };
    let cluster_specifier = match &a.cluster_specifier {
        Some(C::Cluster(c)) => r::ClusterSpecifier::Cluster(c.clone()),
        Some(C::ClusterHeader(h)) => r::ClusterSpecifier::ClusterHeader(h.clone()),
        Some(C::WeightedClusters(w)) => {
            r::ClusterSpecifier::WeightedClusters(weighted(w, &at(path, "weighted_clusters"))?)
        }
        _ => {
            return Err(unsupported(
                path,
                "unsupported: route action without cluster, cluster_header or weighted_clusters",
            ));
        }
    };
    let mut out = r::RouteAction::new(cluster_specifier);
    out.cluster_not_found_response_code = match Nf::try_from(a.cluster_not_found_response_code) {
        Ok(Nf::NotFound) => r::ClusterNotFoundResponseCode::NotFound,
        Ok(Nf::InternalServerError) => r::ClusterNotFoundResponseCode::InternalServerError,
        _ => r::ClusterNotFoundResponseCode::ServiceUnavailable,
    };
    out.prefix_rewrite = (!a.prefix_rewrite.is_empty()).then(|| a.prefix_rewrite.clone());
    out.regex_rewrite = a
        .regex_rewrite
        .as_ref()
        .map(|m| regex_rewrite(m, &at(path, "regex_rewrite")))
        .transpose()?;
    out.host_rewrite = match &a.host_rewrite_specifier {
        Some(H::HostRewriteLiteral(h)) => Some(r::HostRewrite::Literal(h.clone())),
        Some(H::AutoHostRewrite(b)) => b.value.then_some(r::HostRewrite::Auto),
        Some(H::HostRewriteHeader(h)) => Some(r::HostRewrite::Header(h.clone())),
        Some(H::HostRewritePathRegex(m)) => Some(r::HostRewrite::PathRegex(regex_rewrite(
            m,
            &at(path, "host_rewrite_path_regex"),
        )?)),
        Some(H::HostRewrite(_)) => {
            return Err(unsupported(
                at(path, "host_rewrite"),
                "unsupported: formatter-based host_rewrite",
            ));
        }
        None => None,
    };
    out.append_x_forwarded_host = a.append_x_forwarded_host;
    // `None` is the route crate's (and Envoy's) 15 s default; zero disables.
    out.timeout = opt_duration(a.timeout.as_ref(), &at(path, "timeout"))?;
    out.idle_timeout = opt_duration(a.idle_timeout.as_ref(), &at(path, "idle_timeout"))?;
    out.retry_policy = a
        .retry_policy
        .as_ref()
        .map(|p| retry_policy(p, &at(path, "retry_policy")))
        .transpose()?;
    out.request_mirror_policies = mirror_policies(
        &a.request_mirror_policies,
        &at(path, "request_mirror_policies"),
    )?;
    out.hash_policy = a
        .hash_policy
        .iter()
        .enumerate()
        .map(|(i, h)| hash_policy(h, &at(path, &format!("hash_policy[{i}]"))))
        .collect::<Result<_, _>>()?;
    out.max_stream_duration = a
        .max_stream_duration
        .as_ref()
        .map(|m| -> Result<r::MaxStreamDuration, ConfigError> {
            let p = at(path, "max_stream_duration");
            Ok(r::MaxStreamDuration {
                max_stream_duration: opt_duration(
                    m.max_stream_duration.as_ref(),
                    &at(&p, "max_stream_duration"),
                )?,
                grpc_timeout_header_max: opt_duration(
                    m.grpc_timeout_header_max.as_ref(),
                    &at(&p, "grpc_timeout_header_max"),
                )?,
                grpc_timeout_header_offset: opt_duration(
                    m.grpc_timeout_header_offset.as_ref(),
                    &at(&p, "grpc_timeout_header_offset"),
                )?,
            })
        })
        .transpose()?;
    out.upgrade_configs = a
        .upgrade_configs
        .iter()
        .enumerate()
        .map(|(i, u)| {
            super::hcm::supported_upgrade(
                &u.upgrade_type,
                &at(path, &format!("upgrade_configs[{i}].upgrade_type")),
                "route",
            )?;
            Ok(r::UpgradeConfig {
                upgrade_type: u.upgrade_type.clone(),
                enabled: u.enabled.as_ref().map(|b| b.value),
            })
        })
        .collect::<Result<_, ConfigError>>()?;
    Ok(out)
}

fn weighted(w: &pb::WeightedCluster, path: &str) -> Result<r::WeightedClusters, ConfigError> {
    use pb::weighted_cluster::RandomValueSpecifier as Rv;
    use pb::weighted_cluster::cluster_weight::HostRewriteSpecifier as H;
    let mut clusters = Vec::with_capacity(w.clusters.len());
    for (i, c) in w.clusters.iter().enumerate() {
        let c_path = at(path, &format!("clusters[{i}]"));
        let cluster = if c.cluster_header.is_empty() {
            r::ClusterRef::Name(c.name.clone())
        } else {
            r::ClusterRef::Header(c.cluster_header.clone())
        };
        clusters.push(r::ClusterWeight {
            cluster,
            weight: c.weight.as_ref().map_or(0, |v| v.value),
            request_headers: header_ops(
                &c.request_headers_to_add,
                &c.request_headers_to_remove,
                &at(&c_path, "request_headers_to_add"),
            )?,
            response_headers: header_ops(
                &c.response_headers_to_add,
                &c.response_headers_to_remove,
                &at(&c_path, "response_headers_to_add"),
            )?,
            host_rewrite_literal: c
                .host_rewrite_specifier
                .as_ref()
                .map(|H::HostRewriteLiteral(h)| h.clone()),
        });
    }
    let header_name = match &w.random_value_specifier {
        Some(Rv::HeaderName(h)) => Some(h.clone()),
        Some(Rv::UseHashPolicy(_)) => {
            return Err(unsupported(
                at(path, "use_hash_policy"),
                "unsupported: weighted_clusters use_hash_policy",
            ));
        }
        None => None,
    };
    Ok(r::WeightedClusters {
        clusters,
        header_name,
    })
}

fn retry_policy(p: &pb::RetryPolicy, path: &str) -> Result<r::RetryPolicyConfig, ConfigError> {
    let mut previous_hosts = false;
    for (i, pred) in p.retry_host_predicate.iter().enumerate() {
        let p_path = at(path, &format!("retry_host_predicate[{i}].typed_config"));
        let Some(pb::retry_policy::retry_host_predicate::ConfigType::TypedConfig(any)) =
            &pred.config_type
        else {
            return Err(invalid(
                p_path,
                "a retry host predicate needs a typed_config",
            ));
        };
        if any_type(any, &p_path)? != PREVIOUS_HOSTS {
            return Err(unsupported(
                p_path,
                format!("unsupported: retry host predicate {:?}", pred.name),
            ));
        }
        previous_hosts = true;
    }
    let previous_priorities = p
        .retry_priority
        .as_ref()
        .map(|prio| retry_priority(prio, &at(path, "retry_priority")))
        .transpose()?;
    Ok(r::RetryPolicyConfig {
        // Unknown names are ignored by the route crate, as by Envoy.
        retry_on: p.retry_on.clone(),
        num_retries: p.num_retries.as_ref().map(|v| v.value),
        per_try_timeout: opt_duration(p.per_try_timeout.as_ref(), &at(path, "per_try_timeout"))?,
        per_try_idle_timeout: opt_duration(
            p.per_try_idle_timeout.as_ref(),
            &at(path, "per_try_idle_timeout"),
        )?,
        retry_back_off: p
            .retry_back_off
            .as_ref()
            .map(|b| -> Result<r::RetryBackOff, ConfigError> {
                let b_path = at(path, "retry_back_off");
                Ok(r::RetryBackOff {
                    base_interval: duration(
                        b.base_interval
                            .as_ref()
                            .ok_or_else(|| invalid(at(&b_path, "base_interval"), "is required"))?,
                        &at(&b_path, "base_interval"),
                    )?,
                    max_interval: opt_duration(
                        b.max_interval.as_ref(),
                        &at(&b_path, "max_interval"),
                    )?,
                })
            })
            .transpose()?,
        retriable_status_codes: p.retriable_status_codes.clone(),
        retry_host_predicate_previous_hosts: previous_hosts,
        previous_priorities_update_frequency: previous_priorities,
        host_selection_retry_max_attempts: (p.host_selection_retry_max_attempts != 0)
            .then_some(p.host_selection_retry_max_attempts),
        retriable_headers: p
            .retriable_headers
            .iter()
            .enumerate()
            .map(|(i, h)| header_matcher(h, &at(path, &format!("retriable_headers[{i}]"))))
            .collect::<Result<_, _>>()?,
        retriable_request_headers: p
            .retriable_request_headers
            .iter()
            .enumerate()
            .map(|(i, h)| header_matcher(h, &at(path, &format!("retriable_request_headers[{i}]"))))
            .collect::<Result<_, _>>()?,
    })
}

/// `retry_priority`: only `envoy.retry_priorities.previous_priorities`, by its
/// `update_frequency` (the PGV rules already require it to be positive).
fn retry_priority(prio: &pb::retry_policy::RetryPriority, path: &str) -> Result<u32, ConfigError> {
    let p_path = at(path, "typed_config");
    let Some(pb::retry_policy::retry_priority::ConfigType::TypedConfig(any)) = &prio.config_type
    else {
        return Err(invalid(p_path, "a retry priority needs a typed_config"));
    };
    if any_type(any, &p_path)? != PREVIOUS_PRIORITIES {
        return Err(unsupported(
            p_path,
            format!("unsupported: retry priority {:?}", prio.name),
        ));
    }
    let config: PreviousPrioritiesConfig = super::listener::unpack(any, &p_path)?;
    u32::try_from(config.update_frequency)
        .ok()
        .filter(|f| *f > 0)
        .ok_or_else(|| {
            constraint(
                at(&p_path, "update_frequency"),
                "value must be greater than 0",
            )
        })
}

fn mirror_policies(
    policies: &[pb::route_action::RequestMirrorPolicy],
    path: &str,
) -> Result<Vec<r::RequestMirrorPolicy>, ConfigError> {
    policies
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let cluster = if m.cluster_header.is_empty() {
                r::ClusterRef::Name(m.cluster.clone())
            } else if m.cluster.is_empty() {
                r::ClusterRef::Header(m.cluster_header.clone())
            } else {
                return Err(invalid(
                    at(path, &format!("[{i}]")),
                    "only one of cluster and cluster_header may be set",
                ));
            };
            Ok(r::RequestMirrorPolicy {
                cluster,
                runtime_fraction: m
                    .runtime_fraction
                    .as_ref()
                    .map(|f| fractional_percent(f.default_value.as_ref())),
                trace_sampled: m.trace_sampled.as_ref().map(|b| b.value),
            })
        })
        .collect()
}

fn hash_policy(h: &pb::route_action::HashPolicy, path: &str) -> Result<r::HashPolicy, ConfigError> {
    use pb::route_action::hash_policy::PolicySpecifier as S;
    let policy = match &h.policy_specifier {
        Some(S::Header(hd)) => r::HashPolicySpecifier::Header {
            name: hd.header_name.clone(),
        },
        // With `ttl`, the router generates the cookie when the request has none.
        Some(S::Cookie(c)) => r::HashPolicySpecifier::Cookie {
            name: c.name.clone(),
            ttl: opt_duration(c.ttl.as_ref(), &at(path, "cookie.ttl"))?,
            path: (!c.path.is_empty()).then(|| c.path.clone()),
        },
        Some(S::ConnectionProperties(c)) => r::HashPolicySpecifier::ConnectionProperties {
            source_ip: c.source_ip,
        },
        Some(S::QueryParameter(q)) => r::HashPolicySpecifier::QueryParameter {
            name: q.name.clone(),
        },
        // weft keeps no filter state to hash on yet.
        Some(S::FilterState(_)) => {
            return Err(super::support::unsupported_field(
                "route hash policy",
                &at(path, "filter_state"),
                "filter_state",
            ));
        }
        None => return Err(invalid(path, "a hash policy needs a policy")),
    };
    Ok(r::HashPolicy {
        policy,
        terminal: h.terminal,
    })
}

fn redirect(a: &pb::RedirectAction, path: &str) -> Result<r::RedirectAction, ConfigError> {
    use pb::redirect_action::{
        PathRewriteSpecifier as P, RedirectResponseCode as C, SchemeRewriteSpecifier as S,
    };
    Ok(r::RedirectAction {
        scheme: match &a.scheme_rewrite_specifier {
            Some(S::HttpsRedirect(true)) => Some(r::SchemeRedirect::Https),
            Some(S::SchemeRedirect(s)) => Some(r::SchemeRedirect::Scheme(s.clone())),
            _ => None,
        },
        host_redirect: (!a.host_redirect.is_empty()).then(|| a.host_redirect.clone()),
        port_redirect: match a.port_redirect {
            0 => None,
            p => Some(super::port(p, &at(path, "port_redirect"))?),
        },
        path: match &a.path_rewrite_specifier {
            Some(P::PathRedirect(p)) => Some(r::RedirectPath::PathRedirect(p.clone())),
            Some(P::PrefixRewrite(p)) => Some(r::RedirectPath::PrefixRewrite(p.clone())),
            Some(P::RegexRewrite(m)) => Some(r::RedirectPath::RegexRewrite(regex_rewrite(
                m,
                &at(path, "regex_rewrite"),
            )?)),
            _ => None,
        },
        response_code: match C::try_from(a.response_code) {
            Ok(C::Found) => r::RedirectResponseCode::Found,
            Ok(C::SeeOther) => r::RedirectResponseCode::SeeOther,
            Ok(C::TemporaryRedirect) => r::RedirectResponseCode::TemporaryRedirect,
            Ok(C::PermanentRedirect) => r::RedirectResponseCode::PermanentRedirect,
            _ => r::RedirectResponseCode::MovedPermanently,
        },
        strip_query: a.strip_query,
    })
}

/// `request_headers_to_add`/`_remove` (or the response pair) of one level.
fn header_ops(
    add: &[core::HeaderValueOption],
    remove: &[String],
    path: &str,
) -> Result<r::HeaderOps, ConfigError> {
    use core::header_value_option::HeaderAppendAction as A;
    let mut to_add = Vec::with_capacity(add.len());
    for (i, h) in add.iter().enumerate() {
        let h_path = at(path, &format!("[{i}]"));
        let header = h.header.clone().unwrap_or_default();
        #[allow(deprecated, reason = "`append` is deprecated but Envoy still reads it")]
        let append = h.append.as_ref().map(|b| b.value);
        to_add.push(r::HeaderValueOption {
            value: header_value(&header, &h_path)?,
            key: header.key,
            append_action: match A::try_from(h.append_action) {
                Ok(A::AppendIfExistsOrAdd) => None,
                Ok(A::AddIfAbsent) => Some(r::HeaderAppendAction::AddIfAbsent),
                Ok(A::OverwriteIfExistsOrAdd) => {
                    Some(r::HeaderAppendAction::OverwriteIfExistsOrAdd)
                }
                Ok(A::OverwriteIfExists) => Some(r::HeaderAppendAction::OverwriteIfExists),
                Err(_) => return Err(invalid(at(&h_path, "append_action"), "unknown enum value")),
            },
            append,
            keep_empty_value: h.keep_empty_value,
        });
    }
    Ok(r::HeaderOps {
        to_add,
        to_remove: remove.to_vec(),
    })
}

/// The bytes of a data source, read now (Envoy reads files and environment variables when it
/// loads the configuration).
pub(crate) fn data_source_bytes(
    ds: &core::DataSource,
    path: &str,
    base_dir: &Path,
) -> Result<Vec<u8>, ConfigError> {
    use core::data_source::Specifier as S;
    match &ds.specifier {
        Some(S::Filename(f)) => {
            let file = base_dir.join(f);
            std::fs::read(&file).map_err(|e| {
                invalid(
                    at(path, "filename"),
                    format!("cannot read {}: {e}", file.display()),
                )
            })
        }
        Some(S::InlineBytes(b)) => Ok(b.clone()),
        Some(S::InlineString(s)) => Ok(s.clone().into_bytes()),
        Some(S::EnvironmentVariable(v)) => std::env::var(v).map(String::into_bytes).map_err(|_| {
            invalid(
                at(path, "environment_variable"),
                format!("environment variable {v:?} is not set (or not UTF-8)"),
            )
        }),
        None => Err(invalid(
            path,
            "a data source needs filename, inline_bytes, inline_string or environment_variable",
        )),
    }
}
