//! weft's typed model of Envoy's `RouteConfiguration` (`config/route/v3/route.proto` and
//! `route_components.proto`).
//!
//! These are plain data: build them from xDS or from weft's own translation, then hand them to
//! [`RouteTable::new`](crate::RouteTable::new), which validates everything once and compiles it.
//! Protobuf oneofs are Rust enums, so "two members set" cannot be written down. Optional protobuf
//! wrappers are `Option`s; `Default` gives Envoy's defaults.
//!
//! `P` is the per-filter configuration slot (`typed_per_filter_config`): the proxy chooses the
//! type (typically an enum of its filters' per-route configs, already decoded), so this crate never
//! sees `Any` protobufs. It defaults to `()` for callers that have none.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

/// Envoy's `RouteConfiguration`.
#[derive(Debug, Clone)]
pub struct RouteConfiguration<P = ()> {
    /// The configuration's name, used in error messages.
    pub name: String,
    /// Virtual hosts; a request is matched against exactly one of them.
    pub virtual_hosts: Vec<VirtualHost<P>>,
    /// Headers that only internal requests may carry; the connection manager strips them from
    /// external requests. Kept as data for the proxy.
    pub internal_only_headers: Vec<String>,
    /// Request headers to add/remove for every route of this configuration.
    pub request_headers: HeaderOps,
    /// Response headers to add/remove for every route of this configuration.
    pub response_headers: HeaderOps,
    /// When false (Envoy's default) the route's mutations are applied first, then the virtual
    /// host's, then this configuration's, so the least specific level wins a conflict. When true
    /// the order is reversed and the route's mutations win.
    pub most_specific_header_mutations_wins: bool,
    /// Strip the port from the host before virtual host selection (see
    /// [`RouteTable::select_virtual_host`](crate::RouteTable::select_virtual_host)).
    pub ignore_port_in_host_matching: bool,
    /// Select virtual hosts by this header instead of `:authority` (Envoy's `vhost_header`).
    pub vhost_header: Option<String>,
    /// Mirror policies inherited by virtual hosts and routes that set none.
    pub request_mirror_policies: Vec<RequestMirrorPolicy>,
    /// Largest allowed direct response body; Envoy's default is 4096 bytes.
    pub max_direct_response_body_size_bytes: Option<u32>,
    /// How a header matcher sees a header that appears several times; see [`MultiValueHeaders`].
    pub multi_value_headers: MultiValueHeaders,
    /// Per-filter configuration for every route of this configuration.
    pub typed_per_filter_config: BTreeMap<String, P>,
}

impl<P> Default for RouteConfiguration<P> {
    fn default() -> Self {
        Self {
            name: String::new(),
            virtual_hosts: Vec::new(),
            internal_only_headers: Vec::new(),
            request_headers: HeaderOps::default(),
            response_headers: HeaderOps::default(),
            most_specific_header_mutations_wins: false,
            ignore_port_in_host_matching: false,
            vhost_header: None,
            request_mirror_policies: Vec::new(),
            max_direct_response_body_size_bytes: None,
            multi_value_headers: MultiValueHeaders::default(),
            typed_per_filter_config: BTreeMap::new(),
        }
    }
}

/// How header matchers treat a header that the request carries more than once.
///
/// Envoy 1.39 changed this (changelog area `http`, runtime guard
/// `envoy.reloadable_features.match_headers_individually`, default on): each value is matched on
/// its own and the matcher matches if any value does. Before, the values were joined with `,` and
/// matched as one string. Envoy 1.40 behaves as [`MultiValueHeaders::Individually`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MultiValueHeaders {
    /// Envoy 1.39+ default: match each value separately; any match counts.
    #[default]
    Individually,
    /// The pre-1.39 behaviour (guard set to false): match the values joined with `,`.
    Joined,
}

/// Envoy's `VirtualHost`.
#[derive(Debug, Clone)]
pub struct VirtualHost<P = ()> {
    /// Name, used in errors and stats.
    pub name: String,
    /// Domains: exact (`foo.com`, `foo.com:8080`), suffix wildcard (`*.foo.com`, `*-bar.foo.com`),
    /// prefix wildcard (`foo.*`) or `*`. Compared case-insensitively.
    pub domains: Vec<String>,
    /// Routes, tried in order; the first that matches wins.
    pub routes: Vec<Route<P>>,
    /// Request headers to add/remove for every route of this virtual host.
    pub request_headers: HeaderOps,
    /// Response headers to add/remove for every route of this virtual host.
    pub response_headers: HeaderOps,
    /// Retry policy for routes that have none of their own.
    pub retry_policy: Option<RetryPolicyConfig>,
    /// Send `x-envoy-attempt-count` upstream.
    pub include_request_attempt_count: bool,
    /// Send `x-envoy-attempt-count` downstream.
    pub include_attempt_count_in_response: bool,
    /// Mirror policies for routes that set none (inherits the configuration's when empty).
    pub request_mirror_policies: Vec<RequestMirrorPolicy>,
    /// Per-filter configuration for this virtual host.
    pub typed_per_filter_config: BTreeMap<String, P>,
    /// Whether requests must have arrived over TLS (Envoy's `require_tls`); see
    /// [`RouteTable::route_request`](crate::RouteTable::route_request).
    pub require_tls: TlsRequirement,
}

/// Envoy's `VirtualHost.TlsRequirementType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsRequirement {
    /// No requirement (`NONE`, the default).
    #[default]
    None,
    /// Requests that are not Envoy-internal (`x-envoy-internal: true`) must use TLS
    /// (`EXTERNAL_ONLY`).
    ExternalOnly,
    /// Every request must use TLS (`ALL`).
    All,
}

impl<P> Default for VirtualHost<P> {
    fn default() -> Self {
        Self {
            name: String::new(),
            domains: Vec::new(),
            routes: Vec::new(),
            request_headers: HeaderOps::default(),
            response_headers: HeaderOps::default(),
            retry_policy: None,
            include_request_attempt_count: false,
            include_attempt_count_in_response: false,
            request_mirror_policies: Vec::new(),
            typed_per_filter_config: BTreeMap::new(),
            require_tls: TlsRequirement::None,
        }
    }
}

/// Envoy's `Route`: a match and what to do with a matching request.
#[derive(Debug, Clone)]
pub struct Route<P = ()> {
    /// Name, used in errors, logs and `%ROUTE_NAME%`.
    pub name: String,
    /// When the route applies.
    pub route_match: RouteMatch,
    /// What to do.
    pub action: Action,
    /// Request headers to add/remove for this route.
    pub request_headers: HeaderOps,
    /// Response headers to add/remove for this route.
    pub response_headers: HeaderOps,
    /// Per-filter configuration for this route.
    pub typed_per_filter_config: BTreeMap<String, P>,
}

impl<P> Route<P> {
    /// A route with the given match and action and nothing else.
    pub fn new(route_match: RouteMatch, action: Action) -> Self {
        Self {
            name: String::new(),
            route_match,
            action,
            request_headers: HeaderOps::default(),
            response_headers: HeaderOps::default(),
            typed_per_filter_config: BTreeMap::new(),
        }
    }
}

/// Envoy's `RouteMatch`.
#[derive(Debug, Clone)]
pub struct RouteMatch {
    /// The path condition (Envoy's `path_specifier` oneof).
    pub path: PathSpecifier,
    /// Whether `prefix`, `path` and `path_separated_prefix` compare case-sensitively (default
    /// true). It does not apply to `safe_regex`; write `(?i)` in the pattern instead.
    pub case_sensitive: bool,
    /// All must match.
    pub headers: Vec<HeaderMatcher>,
    /// All must match.
    pub query_parameters: Vec<QueryParameterMatcher>,
    /// Only match gRPC requests (content-type `application/grpc` or `application/grpc+...`).
    pub grpc: bool,
    /// Match only this fraction of requests, decided by the caller's random number.
    pub runtime_fraction: Option<FractionalPercent>,
}

impl RouteMatch {
    /// A match on this path condition only, case-sensitive.
    pub fn new(path: PathSpecifier) -> Self {
        Self {
            path,
            case_sensitive: true,
            headers: Vec::new(),
            query_parameters: Vec::new(),
            grpc: false,
            runtime_fraction: None,
        }
    }

    /// `prefix` match.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        Self::new(PathSpecifier::Prefix(prefix.into()))
    }

    /// Exact `path` match.
    pub fn path(path: impl Into<String>) -> Self {
        Self::new(PathSpecifier::Path(path.into()))
    }
}

/// Envoy's `RouteMatch.path_specifier`. Every variant ignores the query string and fragment (from
/// the first `?` or `#`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSpecifier {
    /// The path starts with this string.
    Prefix(String),
    /// The path is exactly this string.
    Path(String),
    /// The whole path matches this RE2-style regex.
    SafeRegex(String),
    /// The path is this string or starts with it followed by `/`. Must not contain `?` or `#` and
    /// must not end with `/`.
    PathSeparatedPrefix(String),
    /// Matches CONNECT requests (including CONNECT-UDP), with or without a path.
    ConnectMatcher,
}

/// Envoy's `HeaderMatcher`.
#[derive(Debug, Clone)]
pub struct HeaderMatcher {
    /// Header name; pseudo-headers `:method`, `:path`, `:authority`, `:scheme` (and `:protocol`;
    /// `:status` on responses) are supported.
    pub name: String,
    /// How to match the value. Envoy treats an unset specifier as `present_match: true`.
    pub specifier: HeaderMatchSpecifier,
    /// Invert the result. A missing header still fails unless `treat_missing_header_as_empty`
    /// is set (`present_match` excepted, whose result is inverted as is).
    pub invert_match: bool,
    /// Match a missing header as if it were present with an empty value.
    pub treat_missing_header_as_empty: bool,
}

impl HeaderMatcher {
    /// A matcher with no inversion.
    pub fn new(name: impl Into<String>, specifier: HeaderMatchSpecifier) -> Self {
        Self {
            name: name.into(),
            specifier,
            invert_match: false,
            treat_missing_header_as_empty: false,
        }
    }
}

/// Envoy's `HeaderMatcher.header_match_specifier`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderMatchSpecifier {
    /// Value equals this; an empty string matches any value (Envoy's legacy quirk).
    Exact(String),
    /// Whole value matches this regex.
    SafeRegex(String),
    /// Value parses as an `i64` in `[start, end)`.
    Range {
        /// Inclusive.
        start: i64,
        /// Exclusive.
        end: i64,
    },
    /// `true`: the header is present; `false`: it is absent.
    Present(bool),
    /// Value starts with this (non-empty).
    Prefix(String),
    /// Value ends with this (non-empty).
    Suffix(String),
    /// Value contains this (non-empty).
    Contains(String),
    /// A `StringMatcher`, which can ignore case.
    StringMatch(StringMatcher),
}

/// Envoy's `type.matcher.v3.StringMatcher`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringMatcher {
    /// The pattern.
    pub pattern: StringPattern,
    /// ASCII case-insensitive comparison; not allowed with `SafeRegex` (Envoy rejects it).
    pub ignore_case: bool,
}

impl StringMatcher {
    /// A case-sensitive matcher.
    pub fn new(pattern: StringPattern) -> Self {
        Self {
            pattern,
            ignore_case: false,
        }
    }
}

/// Envoy's `StringMatcher.match_pattern` (the `custom` extension is not supported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StringPattern {
    /// Equals.
    Exact(String),
    /// Starts with (non-empty).
    Prefix(String),
    /// Ends with (non-empty).
    Suffix(String),
    /// Whole string matches the regex.
    SafeRegex(String),
    /// Contains (non-empty).
    Contains(String),
}

/// Envoy's `QueryParameterMatcher`. Parameters are compared as they appear in the URL, *not*
/// percent-decoded, and only the first occurrence of a name counts (Envoy's
/// `QueryParamsMulti::parseQueryString` + `getFirstValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryParameterMatcher {
    /// Parameter name (non-empty).
    pub name: String,
    /// How to match. Envoy treats an unset specifier as "present".
    pub specifier: QueryParameterMatchSpecifier,
}

/// Envoy's `QueryParameterMatcher.query_parameter_match_specifier`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryParameterMatchSpecifier {
    /// The first value of the parameter matches.
    StringMatch(StringMatcher),
    /// `true`: the parameter is present; `false`: it is absent (Envoy's behaviour since the
    /// `enable_new_query_param_present_match_behavior` guard became the default).
    Present(bool),
}

/// Envoy's `type.v3.FractionalPercent`, as used by `runtime_fraction.default_value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FractionalPercent {
    /// Numerator; a value above the denominator always matches.
    pub numerator: u32,
    /// Denominator.
    pub denominator: Denominator,
}

impl FractionalPercent {
    /// `numerator`/100.
    pub fn percent(numerator: u32) -> Self {
        Self {
            numerator,
            denominator: Denominator::Hundred,
        }
    }

    /// Envoy's `evaluateFractionalPercent`: `random % denominator < numerator`. Feed it the same
    /// per-request random number Envoy would (the stream's random value).
    pub fn evaluate(&self, random: u64) -> bool {
        random % self.denominator.value() < u64::from(self.numerator)
    }
}

/// Envoy's `FractionalPercent.DenominatorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Denominator {
    /// 100.
    #[default]
    Hundred,
    /// 10,000.
    TenThousand,
    /// 1,000,000.
    Million,
}

impl Denominator {
    /// The denominator as a number.
    pub fn value(self) -> u64 {
        match self {
            Self::Hundred => 100,
            Self::TenThousand => 10_000,
            Self::Million => 1_000_000,
        }
    }
}

/// Envoy's `Route.action` oneof.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "configuration data, built once; boxing would only make it clumsier to write"
)]
pub enum Action {
    /// Forward upstream.
    Route(RouteAction),
    /// Answer with a redirect.
    Redirect(RedirectAction),
    /// Answer directly.
    DirectResponse(DirectResponseAction),
}

/// Envoy's `RouteAction`.
#[derive(Debug, Clone)]
pub struct RouteAction {
    /// Where to send the request.
    pub cluster_specifier: ClusterSpecifier,
    /// Status to answer with when the cluster does not exist (default 503).
    pub cluster_not_found_response_code: ClusterNotFoundResponseCode,
    /// Replace the matched prefix (or, for `path`/`safe_regex`/`connect` routes, the whole path
    /// without query) with this. Exclusive with `regex_rewrite`.
    pub prefix_rewrite: Option<String>,
    /// Rewrite the path (query excluded) by global regex substitution.
    pub regex_rewrite: Option<RegexRewrite>,
    /// How to rewrite `:authority`.
    pub host_rewrite: Option<HostRewrite>,
    /// Append the original host to `x-forwarded-host` when rewriting it.
    pub append_x_forwarded_host: bool,
    /// Upstream timeout for the whole request; `None` is Envoy's default of 15 s and zero
    /// disables it.
    pub timeout: Option<Duration>,
    /// Stream idle timeout override.
    pub idle_timeout: Option<Duration>,
    /// Retry policy; the virtual host's applies when `None`.
    pub retry_policy: Option<RetryPolicyConfig>,
    /// Traffic mirroring; the virtual host's (or configuration's) applies when empty.
    pub request_mirror_policies: Vec<RequestMirrorPolicy>,
    /// Hash policies for consistent-hash load balancers, evaluated in order.
    pub hash_policy: Vec<HashPolicy>,
    /// Envoy's `max_stream_duration` settings.
    pub max_stream_duration: Option<MaxStreamDuration>,
    /// Which upgrades (websocket, CONNECT...) this route allows.
    pub upgrade_configs: Vec<UpgradeConfig>,
}

impl RouteAction {
    /// Forward to one cluster with every option at its default.
    pub fn cluster(name: impl Into<String>) -> Self {
        Self::new(ClusterSpecifier::Cluster(name.into()))
    }

    /// Forward per `cluster_specifier` with every option at its default.
    pub fn new(cluster_specifier: ClusterSpecifier) -> Self {
        Self {
            cluster_specifier,
            cluster_not_found_response_code: ClusterNotFoundResponseCode::default(),
            prefix_rewrite: None,
            regex_rewrite: None,
            host_rewrite: None,
            append_x_forwarded_host: false,
            timeout: None,
            idle_timeout: None,
            retry_policy: None,
            request_mirror_policies: Vec::new(),
            hash_policy: Vec::new(),
            max_stream_duration: None,
            upgrade_configs: Vec::new(),
        }
    }
}

/// Envoy's `RouteAction.cluster_specifier` (cluster specifier plugins are not supported).
#[derive(Debug, Clone)]
pub enum ClusterSpecifier {
    /// A named cluster.
    Cluster(String),
    /// The cluster named by this request header.
    ClusterHeader(String),
    /// A weighted choice among clusters.
    WeightedClusters(WeightedClusters),
}

/// Envoy's `WeightedCluster`. The total weight is the sum of the weights (Envoy no longer reads
/// the deprecated `total_weight`); it must be positive and fit in a `u32`.
#[derive(Debug, Clone)]
pub struct WeightedClusters {
    /// The clusters, in order; order defines the pick intervals.
    pub clusters: Vec<ClusterWeight>,
    /// Take the random value from this request header (a single unsigned integer) instead of the
    /// stream's random value.
    pub header_name: Option<String>,
}

/// Envoy's `WeightedCluster.ClusterWeight`.
#[derive(Debug, Clone)]
pub struct ClusterWeight {
    /// The cluster, by name or by request header.
    pub cluster: ClusterRef,
    /// Weight; zero-weight clusters are never picked.
    pub weight: u32,
    /// Request headers to add/remove when this cluster is picked (applied before the route's).
    pub request_headers: HeaderOps,
    /// Response headers to add/remove when this cluster is picked (applied before the route's).
    pub response_headers: HeaderOps,
    /// Set `:authority` to this when this cluster is picked.
    pub host_rewrite_literal: Option<String>,
}

impl ClusterWeight {
    /// A named cluster with a weight.
    pub fn new(name: impl Into<String>, weight: u32) -> Self {
        Self {
            cluster: ClusterRef::Name(name.into()),
            weight,
            request_headers: HeaderOps::default(),
            response_headers: HeaderOps::default(),
            host_rewrite_literal: None,
        }
    }
}

/// A cluster given by name or taken from a request header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterRef {
    /// By name.
    Name(String),
    /// From the value of this request header.
    Header(String),
}

/// Envoy's `RouteAction.ClusterNotFoundResponseCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterNotFoundResponseCode {
    /// 503 (default).
    #[default]
    ServiceUnavailable,
    /// 404.
    NotFound,
    /// 500.
    InternalServerError,
}

impl ClusterNotFoundResponseCode {
    /// The status code.
    pub fn status(self) -> http::StatusCode {
        match self {
            Self::ServiceUnavailable => http::StatusCode::SERVICE_UNAVAILABLE,
            Self::NotFound => http::StatusCode::NOT_FOUND,
            Self::InternalServerError => http::StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Envoy's `type.matcher.v3.RegexMatchAndSubstitute`. The substitution uses RE2 syntax: `\1`..`\9`
/// insert capture groups, `\0` the whole match, `\\` a backslash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegexRewrite {
    /// Regex, matched anywhere (not anchored).
    pub pattern: String,
    /// Replacement for every match.
    pub substitution: String,
}

/// Envoy's `RouteAction.host_rewrite_specifier` (the formatter-based `host_rewrite` is not
/// supported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRewrite {
    /// Set `:authority` to this.
    Literal(String),
    /// Set `:authority` to the upstream host's hostname (done by the proxy after host selection).
    Auto,
    /// Set `:authority` to the first value of this request header, if present.
    Header(String),
    /// Set `:authority` to the result of a regex substitution on the path (query excluded).
    PathRegex(RegexRewrite),
}

/// Envoy's `RouteAction.RequestMirrorPolicy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestMirrorPolicy {
    /// Where to mirror.
    pub cluster: ClusterRef,
    /// Fraction of requests to mirror; all when `None`.
    pub runtime_fraction: Option<FractionalPercent>,
    /// Whether the mirrored request's trace is sampled; inherits the parent's when `None`.
    pub trace_sampled: Option<bool>,
}

/// Envoy's `RouteAction.HashPolicy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashPolicy {
    /// What to hash.
    pub policy: HashPolicySpecifier,
    /// Stop evaluating further policies once this one produced a hash.
    pub terminal: bool,
}

/// Envoy's `HashPolicy.policy_specifier`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashPolicySpecifier {
    /// A request header's value.
    Header {
        /// Header name.
        name: String,
    },
    /// A cookie; the proxy generates it when absent (or empty) and `ttl` is set.
    Cookie {
        /// Cookie name.
        name: String,
        /// Lifetime of a generated cookie; its whole seconds are the cookie's `Max-Age`, which
        /// is left out when they are zero. `None` only reads an existing cookie.
        ttl: Option<Duration>,
        /// Path of a generated cookie.
        path: Option<String>,
    },
    /// Connection properties.
    ConnectionProperties {
        /// Hash the downstream source IP.
        source_ip: bool,
    },
    /// A query parameter's value.
    QueryParameter {
        /// Parameter name.
        name: String,
    },
    /// A filter state object.
    FilterState {
        /// Filter state key.
        key: String,
    },
}

/// Envoy's `RouteAction.MaxStreamDuration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MaxStreamDuration {
    /// Maximum stream duration.
    pub max_stream_duration: Option<Duration>,
    /// Cap on the `grpc-timeout` header.
    pub grpc_timeout_header_max: Option<Duration>,
    /// Subtracted from the `grpc-timeout` header.
    pub grpc_timeout_header_offset: Option<Duration>,
}

/// Envoy's `RouteAction.UpgradeConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeConfig {
    /// Upgrade type, e.g. `websocket` or `CONNECT`; case-insensitive, unique per route.
    pub upgrade_type: String,
    /// Enabled unless `Some(false)`.
    pub enabled: Option<bool>,
}

/// Envoy's `RedirectAction`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RedirectAction {
    /// New scheme; the request's scheme when `None`.
    pub scheme: Option<SchemeRedirect>,
    /// New host (without port); the request's host when `None`.
    pub host_redirect: Option<String>,
    /// New port.
    pub port_redirect: Option<u16>,
    /// New path.
    pub path: Option<RedirectPath>,
    /// Status code (default 301).
    pub response_code: RedirectResponseCode,
    /// Drop the query string (unless `path_redirect` carries its own).
    pub strip_query: bool,
}

/// Envoy's `RedirectAction.scheme_rewrite_specifier`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemeRedirect {
    /// `https_redirect: true`.
    Https,
    /// `scheme_redirect`.
    Scheme(String),
}

/// Envoy's `RedirectAction.path_rewrite_specifier`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectPath {
    /// Replace the whole path; a query in it replaces the request's.
    PathRedirect(String),
    /// Replace the matched prefix.
    PrefixRewrite(String),
    /// Regex substitution on the path (query preserved).
    RegexRewrite(RegexRewrite),
}

/// Envoy's `RedirectAction.RedirectResponseCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedirectResponseCode {
    /// 301 (default).
    #[default]
    MovedPermanently,
    /// 302.
    Found,
    /// 303.
    SeeOther,
    /// 307.
    TemporaryRedirect,
    /// 308.
    PermanentRedirect,
}

impl RedirectResponseCode {
    /// The status code.
    pub fn status(self) -> http::StatusCode {
        match self {
            Self::MovedPermanently => http::StatusCode::MOVED_PERMANENTLY,
            Self::Found => http::StatusCode::FOUND,
            Self::SeeOther => http::StatusCode::SEE_OTHER,
            Self::TemporaryRedirect => http::StatusCode::TEMPORARY_REDIRECT,
            Self::PermanentRedirect => http::StatusCode::PERMANENT_REDIRECT,
        }
    }
}

/// Envoy's `DirectResponseAction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectResponseAction {
    /// Status, 200..=599.
    pub status: u16,
    /// Body (inline bytes; file data sources are the caller's business).
    pub body: Option<Bytes>,
}

/// Envoy's `RetryPolicy`.
#[derive(Debug, Clone, Default)]
pub struct RetryPolicyConfig {
    /// Comma-separated conditions, e.g. `5xx,reset,unavailable`. Unlike Envoy, which ignores
    /// unknown names, weft rejects them.
    pub retry_on: String,
    /// Retries allowed (default 1).
    pub num_retries: Option<u32>,
    /// Timeout of each attempt (none by default).
    pub per_try_timeout: Option<Duration>,
    /// Idle timeout of each attempt.
    pub per_try_idle_timeout: Option<Duration>,
    /// Back-off; Envoy's default is base 25 ms, max 250 ms.
    pub retry_back_off: Option<RetryBackOff>,
    /// Status codes for `retriable-status-codes`.
    pub retriable_status_codes: Vec<u32>,
    /// The `envoy.retry_host_predicates.previous_hosts` predicate.
    pub retry_host_predicate_previous_hosts: bool,
    /// The `envoy.retry_priorities.previous_priorities` retry priority, by its
    /// `update_frequency` (must be positive).
    pub previous_priorities_update_frequency: Option<u32>,
    /// Host selection attempts per retry (default 1).
    pub host_selection_retry_max_attempts: Option<i64>,
    /// Response header matchers for `retriable-headers` (any match retries).
    pub retriable_headers: Vec<HeaderMatcher>,
    /// Request header matchers; when non-empty, a request is retried only if one matches.
    pub retriable_request_headers: Vec<HeaderMatcher>,
}

/// Envoy's `RetryPolicy.RetryBackOff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBackOff {
    /// Base interval (must be positive; below 1 ms it becomes 1 ms).
    pub base_interval: Duration,
    /// Cap; 10 × base when `None`; must not be below the base.
    pub max_interval: Option<Duration>,
}

/// Request or response headers to add and remove at one level (route configuration, virtual
/// host, route or weighted cluster).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderOps {
    /// Headers to add, in order.
    pub to_add: Vec<HeaderValueOption>,
    /// Header names to remove (before adding).
    pub to_remove: Vec<String>,
}

/// Envoy's `core.v3.HeaderValueOption`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderValueOption {
    /// Header name (no pseudo-headers, not `host`).
    pub key: String,
    /// Value; may contain command operators such as `%DOWNSTREAM_REMOTE_ADDRESS%`.
    pub value: String,
    /// What to do when the header exists; `APPEND_IF_EXISTS_OR_ADD` by default.
    pub append_action: Option<HeaderAppendAction>,
    /// Deprecated `append`: `true` is `APPEND_IF_EXISTS_OR_ADD`, `false` is
    /// `OVERWRITE_IF_EXISTS_OR_ADD`. Setting both this and `append_action` is an error.
    pub append: Option<bool>,
    /// Add the header even when the value formats to an empty string.
    pub keep_empty_value: bool,
}

impl HeaderValueOption {
    /// A header with the default append action.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
            append_action: None,
            append: None,
            keep_empty_value: false,
        }
    }

    /// The same option with an explicit append action.
    pub fn with_action(mut self, action: HeaderAppendAction) -> Self {
        self.append_action = Some(action);
        self
    }
}

/// Envoy's `HeaderValueOption.HeaderAppendAction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderAppendAction {
    /// Add another value (default).
    #[default]
    AppendIfExistsOrAdd,
    /// Add only if absent.
    AddIfAbsent,
    /// Replace all values, or add.
    OverwriteIfExistsOrAdd,
    /// Replace all values only if present.
    OverwriteIfExists,
}
