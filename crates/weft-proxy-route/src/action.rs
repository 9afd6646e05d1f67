//! Compiled route actions: what the proxy does with a matched request. Data only; the proxy
//! executes it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, StatusCode};

use crate::config::{
    Action, ClusterNotFoundResponseCode, ClusterRef, ClusterSpecifier, ClusterWeight,
    DirectResponseAction, HashPolicy, HostRewrite, MaxStreamDuration, MultiValueHeaders,
    RedirectAction, RedirectPath, RedirectResponseCode, RequestMirrorPolicy, RouteAction,
    SchemeRedirect, WeightedClusters,
};
use crate::error::RouteConfigError;
use crate::headers::HeaderMutations;
use crate::retry::RetryPolicy;
use crate::rewrite::CompiledRegexRewrite;

/// Envoy's default route timeout.
pub const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(15);

/// Envoy's default `max_direct_response_body_size_bytes`.
pub const DEFAULT_MAX_DIRECT_RESPONSE_BODY_SIZE: u32 = 4096;

/// A compiled route action.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "forwarding is the common action; boxing it would add an indirection per request"
)]
pub enum RouteEntryAction {
    /// Forward upstream.
    Route(RouteTarget),
    /// Answer with a redirect; build the `Location` with [`crate::Matched::redirect_url`].
    Redirect(Redirect),
    /// Answer directly.
    DirectResponse(DirectResponse),
}

/// A compiled `RouteAction`.
#[derive(Debug, Clone)]
pub struct RouteTarget {
    /// Where to send the request.
    pub cluster: ClusterTarget,
    /// Status when the cluster does not exist.
    pub cluster_not_found_response_code: ClusterNotFoundResponseCode,
    /// Prefix rewrite; see [`crate::Matched::rewritten_path`].
    pub prefix_rewrite: Option<String>,
    /// Regex rewrite of the path.
    pub regex_rewrite: Option<CompiledRegexRewrite>,
    /// Host rewrite; see [`crate::Matched::rewritten_host`].
    pub host_rewrite: Option<HostRewriteTarget>,
    /// Append the original host to `x-forwarded-host` when rewriting.
    pub append_x_forwarded_host: bool,
    /// Upstream request timeout; zero means none.
    pub timeout: Duration,
    /// Stream idle timeout override.
    pub idle_timeout: Option<Duration>,
    /// The effective retry policy: the route's, else the virtual host's, else none.
    pub retry_policy: Option<Arc<RetryPolicy>>,
    /// The effective mirror policies: the route's, else the virtual host's, else the
    /// configuration's.
    pub request_mirror_policies: Arc<[RequestMirrorPolicy]>,
    /// Hash policies, in order.
    pub hash_policy: Vec<HashPolicy>,
    /// `max_stream_duration` settings.
    pub max_stream_duration: Option<MaxStreamDuration>,
    /// Upgrade types (lower-cased) and whether each is enabled.
    pub upgrade_configs: Vec<(String, bool)>,
}

/// Where a route sends its requests.
#[derive(Debug, Clone)]
pub enum ClusterTarget {
    /// A named cluster.
    Cluster(String),
    /// The cluster named by the first value of this request header.
    ClusterHeader(HeaderName),
    /// A weighted choice; call [`WeightedTargets::pick`].
    Weighted(WeightedTargets),
}

/// Compiled weighted clusters.
#[derive(Debug, Clone)]
pub struct WeightedTargets {
    clusters: Vec<WeightedTarget>,
    total_weight: u64,
    random_value_header: Option<HeaderName>,
}

/// One weighted cluster.
#[derive(Debug, Clone)]
pub struct WeightedTarget {
    /// The cluster, by name or by request header.
    pub cluster: ClusterRef,
    /// Its weight.
    pub weight: u32,
    /// Request header mutations applied (first) when it is picked.
    pub request_headers: HeaderMutations,
    /// Response header mutations applied (first) when it is picked.
    pub response_headers: HeaderMutations,
    /// `:authority` rewrite when it is picked.
    pub host_rewrite_literal: Option<String>,
}

impl WeightedTargets {
    /// The clusters, in configuration order.
    pub fn clusters(&self) -> &[WeightedTarget] {
        &self.clusters
    }

    /// Sum of the weights.
    pub fn total_weight(&self) -> u64 {
        self.total_weight
    }

    /// Envoy's `pickWeightedCluster`: `value % total` falls in one of the intervals
    /// `[0, w1)`, `[w1, w1+w2)`, ... in configuration order. `value` is the random number the
    /// caller passes in (Envoy uses the stream's random value, the same one as for
    /// `runtime_fraction`), unless `header_name` is configured and the request carries exactly
    /// one value of it that parses as a `u64`.
    pub fn pick(&self, request_headers: &HeaderMap, random: u64) -> &WeightedTarget {
        let from_header = self.random_value_header.as_ref().and_then(|name| {
            let mut values = request_headers.get_all(name).iter();
            match (values.next(), values.next()) {
                (Some(v), None) => v.to_str().ok()?.trim_ascii().parse::<u64>().ok(),
                _ => None,
            }
        });
        self.pick_by_value(from_header.unwrap_or(random))
    }

    /// The cluster for `value % total_weight`.
    pub fn pick_by_value(&self, value: u64) -> &WeightedTarget {
        let selected = value % self.total_weight;
        let mut end = 0u64;
        for c in &self.clusters {
            end += u64::from(c.weight);
            if selected < end {
                return c;
            }
        }
        // Unreachable: `selected < total_weight`, the sum of the weights, and `new` ensures at
        // least one cluster with a positive weight.
        &self.clusters[self.clusters.len() - 1]
    }

    fn compile(w: &WeightedClusters, route_field: &str) -> Result<Self, RouteConfigError> {
        let field = format!("{route_field}.weighted_clusters");
        if w.clusters.is_empty() {
            return Err(RouteConfigError::invalid(
                format!("{field}.clusters"),
                "must list at least one cluster",
            ));
        }
        let clusters = w
            .clusters
            .iter()
            .enumerate()
            .map(|(i, c)| compile_weighted_target(c, &format!("{field}.clusters[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let total_weight: u64 = clusters.iter().map(|c| u64::from(c.weight)).sum();
        if total_weight == 0 {
            return Err(RouteConfigError::invalid(
                field,
                "sum of weights in the weighted_cluster must be greater than 0",
            ));
        }
        if total_weight > u64::from(u32::MAX) {
            return Err(RouteConfigError::invalid(
                field,
                format!(
                    "the sum of weights of all weighted clusters exceeds {}",
                    u32::MAX
                ),
            ));
        }
        Ok(Self {
            clusters,
            total_weight,
            random_value_header: w
                .header_name
                .as_deref()
                .map(|h| header_name(h, &format!("{route_field}.weighted_clusters.header_name")))
                .transpose()?,
        })
    }
}

fn compile_weighted_target(
    c: &ClusterWeight,
    field: &str,
) -> Result<WeightedTarget, RouteConfigError> {
    check_cluster_ref(&c.cluster, field)?;
    Ok(WeightedTarget {
        cluster: c.cluster.clone(),
        weight: c.weight,
        request_headers: HeaderMutations::compile(
            &c.request_headers,
            &format!("{field}.request_headers"),
        )?,
        response_headers: HeaderMutations::compile(
            &c.response_headers,
            &format!("{field}.response_headers"),
        )?,
        host_rewrite_literal: c.host_rewrite_literal.clone(),
    })
}

fn check_cluster_ref(c: &ClusterRef, field: &str) -> Result<(), RouteConfigError> {
    match c {
        ClusterRef::Name(n) if n.is_empty() => Err(RouteConfigError::invalid(
            field,
            "one of cluster name or cluster_header must be specified",
        )),
        ClusterRef::Header(h) => header_name(h, &format!("{field}.cluster_header")).map(|_| ()),
        ClusterRef::Name(_) => Ok(()),
    }
}

pub(crate) fn header_name(name: &str, field: &str) -> Result<HeaderName, RouteConfigError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        RouteConfigError::invalid(field, format!("{name:?} is not a valid header name"))
    })
}

/// A compiled host rewrite.
#[derive(Debug, Clone)]
pub enum HostRewriteTarget {
    /// Set `:authority` to this.
    Literal(String),
    /// Set `:authority` to the upstream host's hostname (the proxy does it after host selection).
    Auto,
    /// Set `:authority` to the first value of this header, if any.
    Header(HeaderName),
    /// Regex substitution on the path without query.
    PathRegex(CompiledRegexRewrite),
}

/// A compiled `RedirectAction`.
#[derive(Debug, Clone)]
pub struct Redirect {
    /// New scheme (`https` for `https_redirect`).
    pub scheme: Option<String>,
    /// New host.
    pub host: Option<String>,
    /// New port.
    pub port: Option<u16>,
    /// New path.
    pub path: Option<RedirectPathTarget>,
    /// Status code.
    pub response_code: RedirectResponseCode,
    /// Drop the query string.
    pub strip_query: bool,
}

/// A compiled redirect path rewrite.
#[derive(Debug, Clone)]
pub enum RedirectPathTarget {
    /// Replace the whole path.
    Path(String),
    /// Replace the matched prefix.
    PrefixRewrite(String),
    /// Regex substitution on the path.
    RegexRewrite(CompiledRegexRewrite),
}

/// A compiled `DirectResponseAction`.
#[derive(Debug, Clone)]
pub struct DirectResponse {
    /// Status.
    pub status: StatusCode,
    /// Body.
    pub body: Option<Bytes>,
}

/// What a route inherits from its virtual host and configuration.
pub(crate) struct Inherited<'a> {
    pub(crate) retry_policy: Option<&'a Arc<RetryPolicy>>,
    pub(crate) mirror_policies: &'a Arc<[RequestMirrorPolicy]>,
    pub(crate) mode: MultiValueHeaders,
    pub(crate) max_body: u32,
}

pub(crate) fn compile_action(
    action: &Action,
    inherited: &Inherited<'_>,
    field: &str,
) -> Result<RouteEntryAction, RouteConfigError> {
    Ok(match action {
        Action::Route(r) => RouteEntryAction::Route(compile_route_action(
            r,
            inherited,
            &format!("{field}.route"),
        )?),
        Action::Redirect(r) => {
            RouteEntryAction::Redirect(compile_redirect(r, &format!("{field}.redirect"))?)
        }
        Action::DirectResponse(d) => RouteEntryAction::DirectResponse(compile_direct_response(
            d,
            inherited.max_body,
            &format!("{field}.direct_response"),
        )?),
    })
}

fn compile_route_action(
    r: &RouteAction,
    inherited: &Inherited<'_>,
    field: &str,
) -> Result<RouteTarget, RouteConfigError> {
    let cluster = match &r.cluster_specifier {
        ClusterSpecifier::Cluster(name) if name.is_empty() => {
            return Err(RouteConfigError::invalid(
                format!("{field}.cluster"),
                "must not be empty",
            ));
        }
        ClusterSpecifier::Cluster(name) => ClusterTarget::Cluster(name.clone()),
        ClusterSpecifier::ClusterHeader(h) => {
            ClusterTarget::ClusterHeader(header_name(h, &format!("{field}.cluster_header"))?)
        }
        ClusterSpecifier::WeightedClusters(w) => {
            ClusterTarget::Weighted(WeightedTargets::compile(w, field)?)
        }
    };
    if r.prefix_rewrite.is_some() && r.regex_rewrite.is_some() {
        return Err(RouteConfigError::invalid(
            field,
            "specify only one of prefix_rewrite and regex_rewrite",
        ));
    }
    let regex_rewrite = r
        .regex_rewrite
        .as_ref()
        .map(|rr| CompiledRegexRewrite::compile(rr, &format!("{field}.regex_rewrite")))
        .transpose()?;
    let host_rewrite = match &r.host_rewrite {
        None => None,
        Some(HostRewrite::Literal(h)) => Some(HostRewriteTarget::Literal(h.clone())),
        Some(HostRewrite::Auto) => Some(HostRewriteTarget::Auto),
        Some(HostRewrite::Header(h)) => Some(HostRewriteTarget::Header(header_name(
            h,
            &format!("{field}.host_rewrite_header"),
        )?)),
        Some(HostRewrite::PathRegex(rr)) => Some(HostRewriteTarget::PathRegex(
            CompiledRegexRewrite::compile(rr, &format!("{field}.host_rewrite_path_regex"))?,
        )),
    };
    let retry_policy = match &r.retry_policy {
        Some(p) => Some(Arc::new(RetryPolicy::compile(
            p,
            inherited.mode,
            &format!("{field}.retry_policy"),
        )?)),
        None => inherited.retry_policy.cloned(),
    };
    let request_mirror_policies = if r.request_mirror_policies.is_empty() {
        Arc::clone(inherited.mirror_policies)
    } else {
        check_mirror_policies(
            &r.request_mirror_policies,
            &format!("{field}.request_mirror_policies"),
        )?;
        r.request_mirror_policies.as_slice().into()
    };
    let mut upgrade_configs: Vec<(String, bool)> = Vec::with_capacity(r.upgrade_configs.len());
    for (i, u) in r.upgrade_configs.iter().enumerate() {
        let kind = u.upgrade_type.to_ascii_lowercase();
        if upgrade_configs.iter().any(|(k, _)| *k == kind) {
            return Err(RouteConfigError::invalid(
                format!("{field}.upgrade_configs[{i}]"),
                format!("duplicate upgrade {}", u.upgrade_type),
            ));
        }
        upgrade_configs.push((kind, u.enabled.unwrap_or(true)));
    }
    Ok(RouteTarget {
        cluster,
        cluster_not_found_response_code: r.cluster_not_found_response_code,
        prefix_rewrite: r.prefix_rewrite.clone().filter(|p| !p.is_empty()),
        regex_rewrite,
        host_rewrite,
        append_x_forwarded_host: r.append_x_forwarded_host,
        timeout: r.timeout.unwrap_or(DEFAULT_ROUTE_TIMEOUT),
        idle_timeout: r.idle_timeout,
        retry_policy,
        request_mirror_policies,
        hash_policy: r.hash_policy.clone(),
        max_stream_duration: r.max_stream_duration,
        upgrade_configs,
    })
}

pub(crate) fn check_mirror_policies(
    policies: &[RequestMirrorPolicy],
    field: &str,
) -> Result<(), RouteConfigError> {
    for (i, p) in policies.iter().enumerate() {
        check_cluster_ref(&p.cluster, &format!("{field}[{i}]"))?;
    }
    Ok(())
}

fn compile_redirect(r: &RedirectAction, field: &str) -> Result<Redirect, RouteConfigError> {
    let path = match &r.path {
        None => None,
        Some(RedirectPath::PathRedirect(p)) => Some(RedirectPathTarget::Path(p.clone())),
        Some(RedirectPath::PrefixRewrite(p)) => Some(RedirectPathTarget::PrefixRewrite(p.clone())),
        Some(RedirectPath::RegexRewrite(rr)) => Some(RedirectPathTarget::RegexRewrite(
            CompiledRegexRewrite::compile(rr, &format!("{field}.regex_rewrite"))?,
        )),
    };
    Ok(Redirect {
        scheme: r.scheme.as_ref().map(|s| match s {
            SchemeRedirect::Https => "https".to_owned(),
            SchemeRedirect::Scheme(s) => s.clone(),
        }),
        host: r.host_redirect.clone().filter(|h| !h.is_empty()),
        port: r.port_redirect.filter(|p| *p != 0),
        path,
        response_code: r.response_code,
        strip_query: r.strip_query,
    })
}

fn compile_direct_response(
    d: &DirectResponseAction,
    max_body: u32,
    field: &str,
) -> Result<DirectResponse, RouteConfigError> {
    let status = StatusCode::from_u16(d.status)
        .ok()
        .filter(|s| (200..=599).contains(&s.as_u16()))
        .ok_or_else(|| {
            RouteConfigError::invalid(format!("{field}.status"), "must be within 200..=599")
        })?;
    if let Some(body) = &d.body
        && body.len() > max_body as usize
    {
        return Err(RouteConfigError::invalid(
            format!("{field}.body"),
            format!(
                "response body size is {} bytes; maximum is {max_body} (raise max_direct_response_body_size_bytes)",
                body.len()
            ),
        ));
    }
    Ok(DirectResponse {
        status,
        body: d.body.clone(),
    })
}
