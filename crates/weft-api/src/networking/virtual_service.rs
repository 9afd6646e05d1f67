//! `VirtualService`: how requests and connections addressed to a set of hosts are routed.
//!
//! Types follow Istio's `networking/v1alpha3/virtual_service.proto` field by field. Proto3
//! scalars have no presence, so an explicit zero value (`""`, `0`) reads as "unset", as it does
//! in Istio; wrapper types (`UInt32Value`, `BoolValue`) and oneof members keep their presence.
//!
//! Validation mirrors Istio's webhook (`ValidateVirtualService` and the `validateHTTP*`,
//! `validateTLSRoute` and `validateTCPRoute` helpers in `pkg/config/validation`). Where weft
//! departs from it, the rule's comment says why. Cross-resource checks (unknown gateways,
//! unreachable rules) belong to the `weft-analyze` crate.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::common::{Duration, Labels, Percent, PortSelector, StringMatch};
use crate::validate::{Checker, Validate, rules};

#[cfg(test)]
mod tests;

/// Traffic routing rules applied when one of a set of hosts is addressed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VirtualService {
    /// Destination hosts the rules apply to: DNS names (optionally with a wildcard prefix),
    /// short names or IP addresses. Must be empty for a delegate VirtualService.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Gateways and sidecars that apply these routes: `mesh` (all sidecars), `name` or
    /// `namespace/name`. Empty means `mesh`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Ordered route rules for HTTP traffic; the first matching rule is used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpRoute>,
    /// Ordered route rules for non-terminated TLS and HTTPS traffic, matched by SNI.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls: Vec<TlsRoute>,
    /// Ordered route rules for opaque TCP traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tcp: Vec<TcpRoute>,
    /// Namespaces this VirtualService is visible to: `.` (its own), `*` (all) or namespace
    /// names. Empty means all namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
}

/// A network-addressable service a request or connection is sent to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Destination {
    /// Name of a service in the service registry (Kubernetes services, ServiceEntry hosts).
    /// Short names are resolved in the rule's namespace.
    pub host: String,
    /// Name of a subset declared in the host's DestinationRule.
    #[serde(
        default,
        deserialize_with = "unset_if_zero",
        skip_serializing_if = "Option::is_none"
    )]
    pub subset: Option<String>,
    /// Port on the host; required only when the service exposes several ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}

/// Match conditions and actions for HTTP/1.1, HTTP/2 and gRPC traffic.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpRoute {
    /// Name of the route, for debugging; concatenated with the match name in access logs.
    #[serde(
        default,
        deserialize_with = "unset_if_zero",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    /// Conditions, ORed together; empty matches every request.
    #[serde(rename = "match", default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpMatchRequest>,
    /// Weighted destinations to forward the request to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<HttpRouteDestination>,
    /// Answer with a redirect instead of forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<HttpRedirect>,
    /// Answer with a fixed response instead of forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_response: Option<HttpDirectResponse>,
    /// Hand the routing decision to another (delegate) VirtualService.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate: Option<Delegate>,
    /// Rewrite the URI or authority before forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<HttpRewrite>,
    /// Timeout for the whole request; `0s` disables it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Retry policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<HttpRetry>,
    /// Faults (delays, aborts) to inject into client-side traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<HttpFaultInjection>,
    /// A destination to mirror requests to, in addition to forwarding them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Destination>,
    /// Several mirror destinations, each with its own percentage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<HttpMirrorPolicy>,
    /// Deprecated: whole percentage of traffic mirrored to `mirror`; use `mirror_percentage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_percent: Option<u32>,
    /// Percentage of traffic mirrored to `mirror`; defaults to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_percentage: Option<Percent>,
    /// Cross-origin resource sharing policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_policy: Option<CorsPolicy>,
    /// Header manipulation rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}

/// A reference to the VirtualService an HTTP route delegates to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Delegate {
    /// Name of the delegate VirtualService.
    #[serde(
        default,
        deserialize_with = "unset_if_zero",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    /// Its namespace; defaults to the delegating VirtualService's.
    #[serde(
        default,
        deserialize_with = "unset_if_zero",
        skip_serializing_if = "Option::is_none"
    )]
    pub namespace: Option<String>,
}

/// Header manipulation for requests and responses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Headers {
    /// Applied to requests before forwarding them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<HeaderOperations>,
    /// Applied to responses before returning them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<HeaderOperations>,
}

/// Headers to overwrite, append and remove (`Headers.HeaderOperations`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HeaderOperations {
    /// Overwrite these headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Append these values to the headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
    /// Remove these headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// Match conditions and destinations for non-terminated TLS and HTTPS traffic.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsRoute {
    /// Conditions, ORed together; each names the SNI hosts it matches.
    #[serde(rename = "match", default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<TlsMatchAttributes>,
    /// Weighted destinations for the connection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RouteDestination>,
}

/// Match conditions and destinations for opaque TCP traffic.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TcpRoute {
    /// Conditions, ORed together; empty matches every connection.
    #[serde(rename = "match", default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<L4MatchAttributes>,
    /// Weighted destinations for the connection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RouteDestination>,
}

/// Conditions on an HTTP request; all set fields must match (AND).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpMatchRequest {
    /// Name of the match, for debugging; concatenated with the route name in access logs.
    #[serde(
        default,
        deserialize_with = "unset_if_zero",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    /// URI (path) match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<StringMatch>,
    /// URI scheme match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<StringMatch>,
    /// HTTP method match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    /// Authority (Host header) match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<StringMatch>,
    /// Header matches by header name; `{}` means "present". Names of the form
    /// `@request.auth.claims.<claim>` match JWT claims (gateways only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, StringMatch>,
    /// Port the request was received on.
    #[serde(
        default,
        deserialize_with = "unset_if_zero",
        skip_serializing_if = "Option::is_none"
    )]
    pub port: Option<u32>,
    /// Labels the source workload must carry.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub source_labels: Labels,
    /// Gateways this match applies to, overriding the VirtualService's `gateways`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Query parameter matches by name; `{}` means "present".
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query_params: BTreeMap<String, StringMatch>,
    /// Match the URI case-insensitively (exact and prefix matches only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_uri_case: bool,
    /// Header matches that must NOT hold; `{}` means "absent".
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub without_headers: BTreeMap<String, StringMatch>,
    /// Namespace the source workload must run in.
    #[serde(
        default,
        deserialize_with = "unset_if_zero",
        skip_serializing_if = "Option::is_none"
    )]
    pub source_namespace: Option<String>,
    /// Prefix for the statistics of this match's route.
    #[serde(
        default,
        deserialize_with = "unset_if_zero",
        skip_serializing_if = "Option::is_none"
    )]
    pub stat_prefix: Option<String>,
}

/// A weighted HTTP destination, with its own header manipulation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpRouteDestination {
    /// Where to send the request.
    pub destination: Destination,
    /// Relative share of traffic. A route's weights are usually set to add up to 100.
    #[serde(
        default,
        deserialize_with = "unset_if_zero",
        skip_serializing_if = "Option::is_none"
    )]
    pub weight: Option<i32>,
    /// Header manipulation applied when this destination is chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}

/// A weighted L4 (TLS or TCP) destination.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteDestination {
    /// Where to send the connection.
    pub destination: Destination,
    /// Relative share of traffic. A route's weights are usually set to add up to 100.
    #[serde(
        default,
        deserialize_with = "unset_if_zero",
        skip_serializing_if = "Option::is_none"
    )]
    pub weight: Option<i32>,
}

/// Conditions on a TCP connection; all set fields must match (AND).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct L4MatchAttributes {
    /// Destination IP addresses or CIDR blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_subnets: Vec<String>,
    /// Port the connection is addressed to.
    #[serde(
        default,
        deserialize_with = "unset_if_zero",
        skip_serializing_if = "Option::is_none"
    )]
    pub port: Option<u32>,
    /// Source IP address or CIDR block.
    #[serde(
        default,
        deserialize_with = "unset_if_zero",
        skip_serializing_if = "Option::is_none"
    )]
    pub source_subnet: Option<String>,
    /// Labels the source workload must carry.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub source_labels: Labels,
    /// Gateways this match applies to, overriding the VirtualService's `gateways`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Namespace the source workload must run in.
    #[serde(
        default,
        deserialize_with = "unset_if_zero",
        skip_serializing_if = "Option::is_none"
    )]
    pub source_namespace: Option<String>,
}

/// Conditions on a TLS connection; all set fields must match (AND).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsMatchAttributes {
    /// SNI values to match, with optional wildcard prefix; each must be covered by the
    /// VirtualService's hosts. Required.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sni_hosts: Vec<String>,
    /// Destination IP addresses or CIDR blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_subnets: Vec<String>,
    /// Port the connection is addressed to.
    #[serde(
        default,
        deserialize_with = "unset_if_zero",
        skip_serializing_if = "Option::is_none"
    )]
    pub port: Option<u32>,
    /// Labels the source workload must carry.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub source_labels: Labels,
    /// Gateways this match applies to, overriding the VirtualService's `gateways`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Namespace the source workload must run in.
    #[serde(
        default,
        deserialize_with = "unset_if_zero",
        skip_serializing_if = "Option::is_none"
    )]
    pub source_namespace: Option<String>,
}

/// Answer the request with a redirect (`Location` built from the request and these fields).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawHttpRedirect", into = "RawHttpRedirect")]
pub struct HttpRedirect {
    /// Replace the whole path with this value.
    pub uri: Option<String>,
    /// Replace the authority (host) with this value.
    pub authority: Option<String>,
    /// How the port of the redirect URL is chosen (the `redirect_port` oneof).
    pub redirect_port: Option<RedirectPort>,
    /// Replace the scheme (`http` or `https`).
    pub scheme: Option<String>,
    /// Status code of the redirect; 301 when unset.
    pub redirect_code: Option<u32>,
    /// Replace the matched URI prefix with this value (requires prefix URI matches).
    pub prefix_rewrite: Option<String>,
}

/// The port of a redirect URL: fixed (`port`) or derived (`derivePort`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectPort {
    /// Use this port.
    Port(u32),
    /// Derive the port from the protocol or the request.
    DerivePort(RedirectPortSelection),
}

/// How `derivePort` picks the redirect port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RedirectPortSelection {
    /// 80 for `http`, 443 for `https`.
    #[default]
    FromProtocolDefault,
    /// The port the request arrived on.
    FromRequestPort,
}

/// Answer the request with a fixed status and body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpDirectResponse {
    /// HTTP status code. Required.
    pub status: u32,
    /// Response body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<HttpBody>,
}

/// A direct response body: text or bytes (the `specifier` oneof).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawHttpBody", into = "RawHttpBody")]
pub enum HttpBody {
    /// A text body (`string`).
    String(String),
    /// A binary body (`bytes`, base64 in YAML and JSON).
    Bytes(Vec<u8>),
}

/// Rewrite parts of the request before forwarding it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpRewrite {
    /// Replace the matched URI prefix (or whole path for exact matches) with this value.
    #[serde(
        default,
        deserialize_with = "unset_if_zero",
        skip_serializing_if = "Option::is_none"
    )]
    pub uri: Option<String>,
    /// Replace the authority (Host header) with this value.
    #[serde(
        default,
        deserialize_with = "unset_if_zero",
        skip_serializing_if = "Option::is_none"
    )]
    pub authority: Option<String>,
    /// Rewrite the path with a regex; exclusive with `uri`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri_regex_rewrite: Option<RegexRewrite>,
}

/// A regex-based path rewrite.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegexRewrite {
    /// RE2 pattern to match (`match` in YAML).
    #[serde(
        rename = "match",
        default,
        deserialize_with = "unset_if_zero",
        skip_serializing_if = "Option::is_none"
    )]
    pub pattern: Option<String>,
    /// Replacement; may reference capture groups (`\1`).
    #[serde(
        default,
        deserialize_with = "unset_if_zero",
        skip_serializing_if = "Option::is_none"
    )]
    pub rewrite: Option<String>,
}

/// Retry policy for HTTP requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpRetry {
    /// Number of retries; unset or 0 disables retries.
    #[serde(
        default,
        deserialize_with = "unset_if_zero",
        skip_serializing_if = "Option::is_none"
    )]
    pub attempts: Option<i32>,
    /// Timeout per attempt, including the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<Duration>,
    /// Comma-separated conditions to retry on (Envoy's `x-envoy-retry-on` and
    /// `x-envoy-retry-grpc-on` policies, or HTTP status codes).
    #[serde(
        default,
        deserialize_with = "unset_if_zero",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_on: Option<String>,
    /// Retry to endpoints in other localities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_remote_localities: Option<bool>,
    /// Avoid hosts already tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_ignore_previous_hosts: Option<bool>,
    /// Base interval of the exponential back-off between retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Duration>,
}

/// Cross-origin resource sharing (CORS) policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CorsPolicy {
    /// Deprecated: exact origins allowed; use `allow_origins`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origin: Vec<String>,
    /// Origins allowed to make requests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origins: Vec<StringMatch>,
    /// Methods allowed (`Access-Control-Allow-Methods`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    /// Headers allowed in requests (`Access-Control-Allow-Headers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    /// Headers browsers may read (`Access-Control-Expose-Headers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// How long preflight results may be cached (`Access-Control-Max-Age`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Duration>,
    /// Whether credentials may be sent (`Access-Control-Allow-Credentials`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    /// What to do with preflight requests whose origin is not allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmatched_preflights: Option<UnmatchedPreflights>,
}

/// Handling of preflight requests that match no allowed origin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UnmatchedPreflights {
    /// The default: forward.
    #[default]
    Unspecified,
    /// Forward them to the upstream.
    Forward,
    /// Answer them without forwarding.
    Ignore,
}

/// Faults to inject into HTTP requests: delays, aborts or both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpFaultInjection {
    /// Delay requests before forwarding them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Delay>,
    /// Abort requests with an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<Abort>,
}

/// A delay to inject (`HTTPFaultInjection.Delay`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawDelay", into = "RawDelay")]
pub struct Delay {
    /// Deprecated: whole percentage of requests delayed; use `percentage`.
    pub percent: Option<i32>,
    /// How long to delay (the `http_delay_type` oneof).
    pub http_delay_type: Option<HttpDelayType>,
    /// Percentage of requests delayed; all when unset.
    pub percentage: Option<Percent>,
}

/// The kind of delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpDelayType {
    /// A fixed delay (`fixedDelay`).
    FixedDelay(Duration),
    /// An exponential delay with this mean (`exponentialDelay`; not supported by Istio yet).
    ExponentialDelay(Duration),
}

/// An abort to inject (`HTTPFaultInjection.Abort`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawAbort", into = "RawAbort")]
pub struct Abort {
    /// The error returned (the `error_type` oneof).
    pub error_type: Option<AbortErrorType>,
    /// Percentage of requests aborted; all when unset.
    pub percentage: Option<Percent>,
}

/// The error an abort returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AbortErrorType {
    /// An HTTP status code (`httpStatus`).
    HttpStatus(i32),
    /// A gRPC status name such as `UNAVAILABLE` (`grpcStatus`).
    GrpcStatus(String),
    /// An HTTP/2 error name (`http2Error`; not supported by Istio yet).
    Http2Error(String),
}

/// A destination to mirror requests to, with the share of requests mirrored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpMirrorPolicy {
    /// Where mirrored requests go.
    pub destination: Destination,
    /// Percentage of requests mirrored; all when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
}

// ---------------------------------------------------------------------------------------------
// Serde plumbing: proto3 zero values and oneofs whose members sit next to other fields.

/// Proto3 scalars have no presence: an explicit zero value (`""`, `0`) means "unset".
fn unset_if_zero<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default + PartialEq,
{
    Ok(Option::<T>::deserialize(d)?.filter(|v| *v != T::default()))
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawHttpRedirect {
    #[serde(
        default,
        deserialize_with = "unset_if_zero",
        skip_serializing_if = "Option::is_none"
    )]
    uri: Option<String>,
    #[serde(
        default,
        deserialize_with = "unset_if_zero",
        skip_serializing_if = "Option::is_none"
    )]
    authority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    derive_port: Option<RedirectPortSelection>,
    #[serde(
        default,
        deserialize_with = "unset_if_zero",
        skip_serializing_if = "Option::is_none"
    )]
    scheme: Option<String>,
    #[serde(
        default,
        deserialize_with = "unset_if_zero",
        skip_serializing_if = "Option::is_none"
    )]
    redirect_code: Option<u32>,
    #[serde(
        default,
        deserialize_with = "unset_if_zero",
        skip_serializing_if = "Option::is_none"
    )]
    prefix_rewrite: Option<String>,
}

impl TryFrom<RawHttpRedirect> for HttpRedirect {
    type Error = String;

    fn try_from(raw: RawHttpRedirect) -> Result<Self, Self::Error> {
        let redirect_port = match (raw.port, raw.derive_port) {
            (Some(_), Some(_)) => {
                return Err("only one of port or derivePort may be set: port fixes the \
                            redirect port, derivePort computes it"
                    .to_owned());
            }
            (Some(p), None) => Some(RedirectPort::Port(p)),
            (None, Some(d)) => Some(RedirectPort::DerivePort(d)),
            (None, None) => None,
        };
        Ok(Self {
            uri: raw.uri,
            authority: raw.authority,
            redirect_port,
            scheme: raw.scheme,
            redirect_code: raw.redirect_code,
            prefix_rewrite: raw.prefix_rewrite,
        })
    }
}

impl From<HttpRedirect> for RawHttpRedirect {
    fn from(r: HttpRedirect) -> Self {
        let (port, derive_port) = match r.redirect_port {
            Some(RedirectPort::Port(p)) => (Some(p), None),
            Some(RedirectPort::DerivePort(d)) => (None, Some(d)),
            None => (None, None),
        };
        Self {
            uri: r.uri,
            authority: r.authority,
            port,
            derive_port,
            scheme: r.scheme,
            redirect_code: r.redirect_code,
            prefix_rewrite: r.prefix_rewrite,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    string: Option<String>,
    /// Protobuf JSON writes `bytes` as base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bytes: Option<String>,
}

impl TryFrom<RawHttpBody> for HttpBody {
    type Error = String;

    fn try_from(raw: RawHttpBody) -> Result<Self, Self::Error> {
        match (raw.string, raw.bytes) {
            (Some(s), None) => Ok(Self::String(s)),
            (None, Some(b)) => base64_decode(&b)
                .map(Self::Bytes)
                .map_err(|e| format!("body.bytes is not valid base64: {e}")),
            (Some(_), Some(_)) => Err("only one of string or bytes may be set".to_owned()),
            (None, None) => Err("body needs string or bytes; remove body for no body".to_owned()),
        }
    }
}

impl From<HttpBody> for RawHttpBody {
    fn from(b: HttpBody) -> Self {
        match b {
            HttpBody::String(s) => Self {
                string: Some(s),
                bytes: None,
            },
            HttpBody::Bytes(b) => Self {
                string: None,
                bytes: Some(base64_encode(&b)),
            },
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawDelay {
    #[serde(
        default,
        deserialize_with = "unset_if_zero",
        skip_serializing_if = "Option::is_none"
    )]
    percent: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fixed_delay: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exponential_delay: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    percentage: Option<Percent>,
}

impl TryFrom<RawDelay> for Delay {
    type Error = String;

    fn try_from(raw: RawDelay) -> Result<Self, Self::Error> {
        let http_delay_type = match (raw.fixed_delay, raw.exponential_delay) {
            (Some(_), Some(_)) => {
                return Err("only one of fixedDelay or exponentialDelay may be set".to_owned());
            }
            (Some(d), None) => Some(HttpDelayType::FixedDelay(d)),
            (None, Some(d)) => Some(HttpDelayType::ExponentialDelay(d)),
            (None, None) => None,
        };
        Ok(Self {
            percent: raw.percent,
            http_delay_type,
            percentage: raw.percentage,
        })
    }
}

impl From<Delay> for RawDelay {
    fn from(d: Delay) -> Self {
        let (fixed_delay, exponential_delay) = match d.http_delay_type {
            Some(HttpDelayType::FixedDelay(d)) => (Some(d), None),
            Some(HttpDelayType::ExponentialDelay(d)) => (None, Some(d)),
            None => (None, None),
        };
        Self {
            percent: d.percent,
            fixed_delay,
            exponential_delay,
            percentage: d.percentage,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawAbort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http_status: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    grpc_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http2_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    percentage: Option<Percent>,
}

impl TryFrom<RawAbort> for Abort {
    type Error = String;

    fn try_from(raw: RawAbort) -> Result<Self, Self::Error> {
        let error_type = match (raw.http_status, raw.grpc_status, raw.http2_error) {
            (Some(s), None, None) => Some(AbortErrorType::HttpStatus(s)),
            (None, Some(s), None) => Some(AbortErrorType::GrpcStatus(s)),
            (None, None, Some(e)) => Some(AbortErrorType::Http2Error(e)),
            (None, None, None) => None,
            _ => {
                return Err(
                    "only one of httpStatus, grpcStatus or http2Error may be set".to_owned(),
                );
            }
        };
        Ok(Self {
            error_type,
            percentage: raw.percentage,
        })
    }
}

impl From<Abort> for RawAbort {
    fn from(a: Abort) -> Self {
        let mut raw = RawAbort {
            percentage: a.percentage,
            ..RawAbort::default()
        };
        match a.error_type {
            Some(AbortErrorType::HttpStatus(s)) => raw.http_status = Some(s),
            Some(AbortErrorType::GrpcStatus(s)) => raw.grpc_status = Some(s),
            Some(AbortErrorType::Http2Error(e)) => raw.http2_error = Some(e),
            None => {}
        }
        raw
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as protobuf JSON writes `bytes`.
fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (b(0) << 16) | (b(1) << 8) | b(2);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard or URL-safe base64, padded or not, as protobuf JSON accepts `bytes`.
fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return Err(format!("unexpected character {:?}", char::from(c))),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits >= 6 {
        return Err("truncated input".to_owned());
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Validation.

/// What every rule of one VirtualService needs to know about the whole resource.
struct Scope<'a> {
    hosts: &'a [String],
    /// No hosts: a delegate VirtualService, only reachable through another's `delegate`.
    delegate: bool,
    /// Bound to gateways only (gateways set, `mesh` not among them): Istio's `appliesToGateway`.
    gateway_bound: bool,
    /// `mesh` is not among the gateways (Istio's `isGateway`, used for SNI hosts).
    no_mesh: bool,
    /// Some TLS match names SNI hosts.
    has_sni: bool,
}

impl Validate for VirtualService {
    fn validate(&self, cx: &mut Checker) {
        let no_mesh = !self.gateways.iter().any(|g| g == MESH);
        let scope = Scope {
            hosts: &self.hosts,
            delegate: self.hosts.is_empty(),
            gateway_bound: !self.gateways.is_empty() && no_mesh,
            no_mesh,
            has_sni: self
                .tls
                .iter()
                .any(|t| t.matches.iter().any(|m| !m.sni_hosts.is_empty())),
        };
        if scope.delegate {
            if !self.gateways.is_empty() {
                cx.error_at(
                    "gateways",
                    "a delegate VirtualService (one without hosts) must not set gateways: the \
                     VirtualService delegating to it decides where its routes apply; remove \
                     gateways or add hosts",
                );
            }
            if !self.tls.is_empty() {
                cx.error_at(
                    "tls",
                    "a delegate VirtualService (one without hosts) must not have tls routes: \
                     only HTTP routes can be delegated; add hosts or move the routes",
                );
            }
            if !self.tcp.is_empty() {
                cx.error_at(
                    "tcp",
                    "a delegate VirtualService (one without hosts) must not have tcp routes: \
                     only HTTP routes can be delegated; add hosts or move the routes",
                );
            }
        }
        cx.each("gateways", &self.gateways, |cx, g| {
            check_gateway_ref(cx, g);
        });
        self.check_hosts(cx, &scope);
        if self.http.is_empty() && self.tls.is_empty() && self.tcp.is_empty() {
            cx.error("a VirtualService needs routes: set at least one of http, tls or tcp");
        }
        cx.each("http", &self.http, |cx, r| r.check(cx, &scope));
        cx.each("tls", &self.tls, |cx, r| r.check(cx, &scope));
        cx.each("tcp", &self.tcp, |cx, r| r.check(cx));
        check_export_to(cx, &self.export_to);
    }
}

/// The reserved gateway name for all sidecars.
const MESH: &str = "mesh";

impl VirtualService {
    fn check_hosts(&self, cx: &mut Checker, scope: &Scope<'_>) {
        let mut all_valid = true;
        cx.each("hosts", &self.hosts, |cx, host| {
            all_valid &= check_vs_host(cx, host, scope);
        });
        // Overlaps only make sense between well-formed names.
        if !all_valid {
            return;
        }
        for (i, a) in self.hosts.iter().enumerate() {
            for (j, b) in self.hosts.iter().enumerate().skip(i + 1) {
                if host_matches(a, b) {
                    cx.field("hosts", |cx| {
                        cx.index(j, |cx| {
                            cx.error(format!(
                                "host {b:?} duplicates or overlaps hosts[{i}] {a:?}; a host may \
                                 appear once per VirtualService: remove one of them"
                            ));
                        });
                    });
                }
            }
        }
    }
}

fn check_vs_host(cx: &mut Checker, host: &str, scope: &Scope<'_>) -> bool {
    // Gateways in AUTO_PASSTHROUGH mode route on Istio's generated SNI names.
    if scope.gateway_bound && scope.has_sni && host.starts_with("outbound_") {
        return check_auto_sni(cx, host);
    }
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    if !check_host_name(cx, host) {
        return false;
    }
    if host == "*" && !scope.gateway_bound {
        cx.error(
            "host \"*\" is not allowed for a VirtualService applied to sidecars (the mesh \
             gateway): it would capture all outbound traffic; list the hosts, or bind the \
             VirtualService to gateways only",
        );
        return false;
    }
    true
}

impl HttpRoute {
    fn check(&self, cx: &mut Checker, scope: &Scope<'_>) {
        self.check_action(cx, scope);
        cx.each("match", &self.matches, |cx, m| m.check(cx, scope));
        if let Some(h) = &self.headers {
            cx.field("headers", |cx| check_headers(cx, h));
        }
        self.check_authority_rewrite(cx);
        if let Some(c) = &self.cors_policy {
            cx.field("corsPolicy", |cx| c.check(cx));
        }
        if let Some(f) = &self.fault {
            cx.field("fault", |cx| f.check(cx));
        }
        if let Some(p) = self.mirror_percent {
            cx.field("mirrorPercent", |cx| {
                cx.warning(
                    "mirrorPercent is deprecated; use mirrorPercentage (value: a percentage, \
                     fractions allowed) instead",
                );
                if p > 100 {
                    cx.error(format!(
                        "mirrorPercent {p} is above 100; use a percentage in 0..100"
                    ));
                }
            });
        }
        if let Some(p) = &self.mirror_percentage {
            cx.field("mirrorPercentage", |cx| {
                cx.field("value", |cx| rules::check_percent(cx, p.value))
            });
        }
        if let Some(m) = &self.mirror {
            cx.field("mirror", |cx| m.check(cx));
        }
        cx.each("mirrors", &self.mirrors, |cx, m| {
            cx.field("destination", |cx| m.destination.check(cx));
            if let Some(p) = &m.percentage {
                cx.field("percentage", |cx| {
                    cx.field("value", |cx| rules::check_percent(cx, p.value))
                });
            }
        });
        if let Some(r) = &self.redirect {
            cx.field("redirect", |cx| r.check(cx, &self.matches));
        }
        if let Some(d) = &self.direct_response {
            cx.field("directResponse", |cx| d.check(cx));
        }
        if let Some(r) = &self.retries {
            cx.field("retries", |cx| r.check(cx));
        }
        if let Some(r) = &self.rewrite {
            cx.field("rewrite", |cx| r.check(cx));
        }
        check_route(cx, &self.route, |cx, d| {
            if let Some(h) = &d.headers {
                cx.field("headers", |cx| check_headers(cx, h));
            }
        });
        if let Some(t) = self.timeout {
            cx.field("timeout", |cx| rules::check_timeout(cx, t));
        }
        if let Some(d) = &self.delegate {
            cx.field("delegate", |cx| d.check(cx));
        }
    }

    /// Istio's `validateHTTPRouteConflict`: one action per route, and the combinations that
    /// cannot work together.
    fn check_action(&self, cx: &mut Checker, scope: &Scope<'_>) {
        if self.delegate.is_some() {
            if scope.delegate {
                cx.error_at(
                    "delegate",
                    "a route of a delegate VirtualService cannot delegate again (delegation is \
                     one level deep); use route, redirect or directResponse instead",
                );
            } else {
                if self.redirect.is_some() {
                    cx.error_at(
                        "redirect",
                        "a route with delegate must not set redirect: the delegate \
                         VirtualService decides how requests are handled; remove one of them",
                    );
                }
                if !self.route.is_empty() {
                    cx.error_at(
                        "route",
                        "a route with delegate must not set route: the delegate VirtualService \
                         decides the destinations; remove one of them",
                    );
                }
                // Istio accepts this, but only the delegate's routes are used.
                if self.direct_response.is_some() {
                    cx.warning_at(
                        "directResponse",
                        "directResponse has no effect on a route with delegate; remove one of \
                         them",
                    );
                }
                return;
            }
        }
        if self.redirect.is_some() {
            if !self.route.is_empty() {
                cx.error_at(
                    "route",
                    "a route cannot set both route and redirect; remove one of them",
                );
            }
            if self.fault.is_some() {
                cx.error_at(
                    "fault",
                    "fault injection cannot be combined with redirect; remove fault or redirect",
                );
            }
            if self.rewrite.is_some() {
                cx.error_at(
                    "rewrite",
                    "rewrite cannot be combined with redirect; put the new path in redirect.uri \
                     instead",
                );
            }
            if self.direct_response.is_some() {
                cx.error_at(
                    "directResponse",
                    "a route cannot set both directResponse and redirect; remove one of them",
                );
            }
        } else if self.direct_response.is_some() {
            if !self.route.is_empty() {
                cx.error_at(
                    "route",
                    "a route cannot set both route and directResponse; remove one of them",
                );
            }
            if self.fault.is_some() {
                cx.error_at(
                    "fault",
                    "fault injection cannot be combined with directResponse; remove one of them",
                );
            }
            if self.rewrite.is_some() {
                cx.error_at(
                    "rewrite",
                    "rewrite cannot be combined with directResponse: nothing is forwarded; \
                     remove rewrite",
                );
            }
        } else if self.route.is_empty() {
            cx.error(if scope.delegate {
                "an HTTP route needs an action: set route, redirect or directResponse"
            } else {
                "an HTTP route needs an action: set route, redirect, directResponse or delegate"
            });
        }
        if self.mirror.is_some() && !self.mirrors.is_empty() {
            cx.error_at(
                "mirrors",
                "a route cannot set both mirror and mirrors; move mirror into the mirrors list",
            );
        }
    }

    /// Istio's `validateAuthorityRewrite`: the authority may be rewritten in one place only.
    fn check_authority_rewrite(&self, cx: &mut Checker) {
        let Some(request) = self.headers.as_ref().and_then(|h| h.request.as_ref()) else {
            return;
        };
        let mut current = self.rewrite.as_ref().and_then(|r| r.authority.as_deref());
        for (op, map) in [("set", &request.set), ("add", &request.add)] {
            for (name, value) in map {
                if !is_authority_header(name) {
                    continue;
                }
                if let Some(have) = current {
                    error_in(
                        cx,
                        &["headers", "request", op, name],
                        format!(
                            "the authority is already rewritten to {have:?} (by rewrite.authority \
                             or another host/:authority header); rewrite it in one place only"
                        ),
                    );
                    return;
                }
                current = Some(value);
            }
        }
    }
}

/// Which emptiness rules a `StringMatch` follows where it is used.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MatchUse {
    /// `uri`: an empty prefix is fine (it matches every path).
    Uri,
    /// `scheme`, `method`, `authority`: an empty prefix is an error.
    Single,
    /// Header and query parameter values: `{}` means "present".
    MapValue,
}

impl HttpMatchRequest {
    fn check(&self, cx: &mut Checker, scope: &Scope<'_>) {
        for (name, m, usage) in [
            ("uri", &self.uri, MatchUse::Uri),
            ("scheme", &self.scheme, MatchUse::Single),
            ("method", &self.method, MatchUse::Single),
            ("authority", &self.authority, MatchUse::Single),
        ] {
            if let Some(m) = m {
                cx.field(name, |cx| check_string_match(cx, name, m, usage));
            }
        }
        cx.field("headers", |cx| {
            for (name, m) in &self.headers {
                cx.field(name, |cx| {
                    check_match_header_name(cx, name, scope);
                    check_string_match(cx, name, m, MatchUse::MapValue);
                });
            }
        });
        cx.field("withoutHeaders", |cx| {
            for (name, m) in &self.without_headers {
                cx.field(name, |cx| {
                    check_match_header_name(cx, name, scope);
                    // Istio reads regex "*" as "present", not as an RE2 pattern.
                    if *m != StringMatch::Regex("*".to_owned()) {
                        check_string_match(cx, name, m, MatchUse::MapValue);
                    }
                });
            }
        });
        cx.field("queryParams", |cx| {
            for (name, m) in &self.query_params {
                cx.field(name, |cx| {
                    check_string_match(cx, name, m, MatchUse::MapValue)
                });
            }
        });
        if let Some(p) = self.port {
            cx.field("port", |cx| rules::check_port(cx, p));
        }
        cx.field("sourceLabels", |cx| {
            rules::check_labels(cx, &self.source_labels)
        });
        cx.each("gateways", &self.gateways, |cx, g| {
            check_gateway_ref(cx, g);
        });
        if let Some(ns) = &self.source_namespace {
            cx.field("sourceNamespace", |cx| {
                rules::check_dns1123_label(cx, "sourceNamespace", ns)
            });
        }
    }
}

/// Istio's `validateStringMatch` / `validateStringMatchRegexp`, by where the match is used.
fn check_string_match(cx: &mut Checker, what: &str, m: &StringMatch, usage: MatchUse) {
    match m {
        StringMatch::Prefix(p) if p.is_empty() && usage != MatchUse::Uri => cx.error_at(
            "prefix",
            format!("{what}: an empty prefix is not allowed here; remove the match instead"),
        ),
        StringMatch::Regex(r) => {
            cx.field("regex", |cx| check_istio_regex(cx, r));
        }
        // Istio accepts `{}` here and then places no condition on the field.
        StringMatch::Present if usage != MatchUse::MapValue => cx.warning(format!(
            "{what}: an empty match ({{}}) places no condition on {what}; set exact, prefix or \
             regex, or remove it"
        )),
        _ => {}
    }
}

/// An RE2 pattern as Istio accepts it: at most 1024 characters (Envoy's program-size limit,
/// approximated), and compiling.
fn check_istio_regex(cx: &mut Checker, pattern: &str) -> bool {
    const MAX_LEN: usize = 1024;
    if pattern.len() > MAX_LEN {
        cx.error(format!(
            "regex is {} characters long; at most {MAX_LEN} are allowed",
            pattern.len()
        ));
        return false;
    }
    rules::check_regex(cx, pattern)
}

/// Header names in matches (Istio's `ValidateHTTPHeaderNameOrJwtClaimRoute`): RFC 7230 tokens,
/// HTTP/2 pseudo-headers, or `@request.auth.claims` JWT claim names on gateways.
///
/// Not `rules::check_header_name`: its stricter `[-_A-Za-z0-9]` set would reject names Istio
/// accepts here, such as `x.custom`.
fn check_match_header_name(cx: &mut Checker, name: &str, scope: &Scope<'_>) {
    const PSEUDO_HEADERS: [&str; 5] = [":method", ":scheme", ":authority", ":path", ":status"];
    if name.is_empty() {
        cx.error("header name must not be empty");
    } else if is_jwt_claim(name) {
        if !scope.gateway_bound {
            cx.error(format!(
                "header {name:?}: JWT claim routing only works on gateways, and this \
                 VirtualService applies to sidecars; bind it to gateways only (not mesh) or \
                 match a plain header"
            ));
        }
    } else if !PSEUDO_HEADERS.contains(&name) && !is_token(name) {
        cx.error(format!(
            "invalid header name {name:?}: use letters, digits and !#$%&'*+-.^_`|~ only"
        ));
    }
}

/// Whether `name` is an RFC 7230 token (`tchar`s only).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Istio's `jwt.ToRoutingClaim(..).Match`: `@request.auth.claims.a.b` or
/// `@request.auth.claims[a][b]`.
fn is_jwt_claim(name: &str) -> bool {
    const PREFIX: &str = "@request.auth.claims";
    let matches_prefix = name
        .get(..PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(PREFIX));
    let rest = name.get(PREFIX.len()..).unwrap_or("");
    matches_prefix
        && ((rest.starts_with('.') && rest.len() > 1)
            || (rest.starts_with('[') && rest.ends_with(']') && rest.len() > 2))
}

fn is_authority_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

/// Header manipulation (Istio's checks in `validateHTTPRoute` and
/// `validateHTTPRouteDestinations`).
fn check_headers(cx: &mut Checker, headers: &Headers) {
    if let Some(ops) = &headers.request {
        cx.field("request", |cx| ops.check(cx, true));
    }
    if let Some(ops) = &headers.response {
        cx.field("response", |cx| ops.check(cx, false));
    }
}

impl HeaderOperations {
    fn check(&self, cx: &mut Checker, request: bool) {
        for (op, map) in [("set", &self.set), ("add", &self.add)] {
            cx.field(op, |cx| {
                for (name, value) in map {
                    cx.field(name, |cx| {
                        // The request authority may be rewritten through host/:authority.
                        if !(request && is_authority_header(name)) {
                            check_header_op_name(cx, name);
                        }
                        check_header_value(cx, value);
                    });
                }
            });
        }
        cx.each("remove", &self.remove, |cx, name| {
            check_header_op_name(cx, name)
        });
    }
}

/// Istio's `ValidateHTTPHeaderOperationName`: no pseudo-headers, no `Host`.
fn check_header_op_name(cx: &mut Checker, name: &str) {
    if name.is_empty() {
        cx.error("header name must not be empty");
    } else if name.eq_ignore_ascii_case("host") {
        cx.error(
            "the Host header cannot be changed here; rewrite the request authority with \
             rewrite.authority or headers.request.set instead",
        );
    } else if name.starts_with(':') {
        cx.error(format!(
            "invalid header {name:?}: pseudo-headers (\":\" prefix) cannot be modified"
        ));
    }
}

/// Istio's `ValidateHTTPHeaderValue`: no control characters, and Envoy's `%VARIABLE%` syntax
/// well-formed (`%%` for a literal percent sign).
fn check_header_value(cx: &mut Checker, value: &str) {
    if value.chars().any(|c| c != '\t' && (c.is_ascii_control())) {
        cx.error(format!(
            "header value {value:?} contains control characters"
        ));
    } else if let Some(why) = header_value_syntax_error(value) {
        cx.error(format!("header value {value:?}: {why}"));
    }
}

/// A port of Istio's `validateHeaderValue` (itself from Envoy's `header_parser.cc`).
fn header_value_syntax_error(value: &str) -> Option<&'static str> {
    #[derive(PartialEq)]
    enum State {
        Literal,
        VariableName,
        ExpectArray,
        ExpectString,
        String,
        ExpectArrayDelimiterOrEnd,
        ExpectArgsEnd,
        ExpectVariableEnd,
    }
    let bytes = value.as_bytes();
    let mut state = State::Literal;
    let mut pos = 0;
    while let Some(&ch) = bytes.get(pos) {
        let next = bytes.get(pos + 1).copied();
        match state {
            State::Literal if ch == b'%' => match next {
                None => return Some("un-escaped '%' at the end; write %% for a literal '%'"),
                Some(b'%') => pos += 1,
                Some(_) => state = State::VariableName,
            },
            State::Literal => {}
            State::VariableName => match ch {
                b'%' => state = State::Literal,
                b'(' => state = State::ExpectArray,
                _ => {}
            },
            State::ExpectArray => match ch {
                b'[' => state = State::ExpectString,
                b' ' => {}
                _ => state = State::String,
            },
            State::ExpectArrayDelimiterOrEnd => match ch {
                b',' => state = State::ExpectString,
                b']' => state = State::ExpectArgsEnd,
                b' ' => {}
                _ => return Some("expected ',', ']' or a space in %VARIABLE(...)% arguments"),
            },
            State::ExpectString => match ch {
                b'"' => state = State::String,
                b' ' => {}
                _ => return Some("expected '\"' in %VARIABLE(...)% arguments"),
            },
            State::String => match ch {
                b'\\' if next.is_none() => {
                    return Some("unterminated backslash in %VARIABLE(...)% arguments");
                }
                b'\\' => pos += 1,
                b')' => state = State::ExpectVariableEnd,
                b'"' => state = State::ExpectArrayDelimiterOrEnd,
                _ => {}
            },
            State::ExpectArgsEnd => match ch {
                b')' => state = State::ExpectVariableEnd,
                b' ' => {}
                _ => return Some("expected ')' after %VARIABLE(...)% arguments"),
            },
            State::ExpectVariableEnd => match ch {
                b'%' => state = State::Literal,
                b' ' => {}
                _ => return Some("expected '%' to close %VARIABLE(...)%"),
            },
        }
        pos += 1;
    }
    (state != State::Literal)
        .then_some("unterminated %VARIABLE% expression; write %% for a literal '%'")
}

/// A destination with its weight, for the checks HTTP, TLS and TCP routes share.
trait Weighted {
    fn destination(&self) -> &Destination;
    fn weight(&self) -> i32;
}

impl Weighted for HttpRouteDestination {
    fn destination(&self) -> &Destination {
        &self.destination
    }
    fn weight(&self) -> i32 {
        self.weight.unwrap_or(0)
    }
}

impl Weighted for RouteDestination {
    fn destination(&self) -> &Destination {
        &self.destination
    }
    fn weight(&self) -> i32 {
        self.weight.unwrap_or(0)
    }
}

/// Istio's `validateHTTPRouteDestinations` / `validateRouteDestinations`.
///
/// Istio accepts weights that do not add up to 100 (Envoy splits traffic in proportion to
/// them) and rejects only a zero total across several destinations; weft does the same and
/// warns about totals other than 100, so Istio YAML loads unchanged.
fn check_route<T: Weighted>(
    cx: &mut Checker,
    route: &[T],
    mut extra: impl FnMut(&mut Checker, &T),
) {
    cx.each("route", route, |cx, d| {
        cx.field("destination", |cx| d.destination().check(cx));
        let w = d.weight();
        if w < 0 {
            cx.error_at(
                "weight",
                format!("weight {w} must not be negative; use 0 to send no traffic"),
            );
        }
        extra(cx, d);
    });
    if route.len() > 1 {
        let total: i64 = route.iter().map(|d| i64::from(d.weight())).sum();
        if total == 0 {
            cx.error_at(
                "route",
                format!(
                    "the weights of the {} destinations add up to 0; give them weights that \
                     add up to 100",
                    route.len()
                ),
            );
        } else if total != 100 {
            cx.warning_at(
                "route",
                format!(
                    "the destination weights add up to {total}, not 100; traffic is split in \
                     proportion to the weights"
                ),
            );
        }
    }
}

impl Destination {
    /// Istio's `validateDestination`.
    fn check(&self, cx: &mut Checker) {
        cx.field("host", |cx| {
            if self.host.is_empty() {
                cx.error("destination host is required: the name of a service in the registry");
            } else if self.host == "*" {
                cx.error("destination host \"*\" is not allowed; name one service");
            } else {
                check_host_name(cx, &self.host);
            }
        });
        if let Some(subset) = &self.subset {
            cx.field("subset", |cx| {
                rules::check_dns1123_label(cx, "subset", subset)
            });
        }
        if let Some(port) = &self.port {
            cx.field("port", |cx| {
                cx.field("number", |cx| rules::check_port(cx, port.number))
            });
        }
    }
}

impl Delegate {
    fn check(&self, cx: &mut Checker) {
        match &self.name {
            None => cx.error_at(
                "name",
                "delegate.name is required: the name of the VirtualService to delegate to",
            ),
            Some(name) if !crate::meta::is_dns1123_subdomain(name) => cx.error_at(
                "name",
                format!(
                    "delegate name {name:?} is not a valid VirtualService name (lowercase \
                     DNS-1123 subdomain)"
                ),
            ),
            Some(_) => {}
        }
        if let Some(ns) = &self.namespace {
            cx.field("namespace", |cx| {
                rules::check_dns1123_label(cx, "namespace", ns)
            });
        }
    }
}

impl CorsPolicy {
    /// Istio's `validateCORSPolicy`.
    fn check(&self, cx: &mut Checker) {
        const METHODS: [&str; 10] = [
            "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*",
        ];
        if !self.allow_origin.is_empty() {
            cx.warning_at(
                "allowOrigin",
                "allowOrigin is deprecated; use allowOrigins with `exact:` entries instead",
            );
        }
        cx.each(
            "allowOrigins",
            &self.allow_origins,
            |cx, origin| match origin {
                StringMatch::Exact(s) | StringMatch::Prefix(s) if s.is_empty() => cx.error(
                    "an allowed origin must not be empty; set exact, prefix or regex to a value",
                ),
                StringMatch::Present => {
                    cx.error("an allowed origin needs exact, prefix or regex; {} matches no origin")
                }
                StringMatch::Regex(r) => {
                    cx.field("regex", |cx| check_istio_regex(cx, r));
                }
                _ => {}
            },
        );
        cx.each("allowMethods", &self.allow_methods, |cx, m| {
            if !METHODS.contains(&m.as_str()) {
                cx.error(format!(
                    "{m:?} is not a supported HTTP method; use one of {} (uppercase)",
                    METHODS.join(", ")
                ));
            }
        });
        for (field, names) in [
            ("allowHeaders", &self.allow_headers),
            ("exposeHeaders", &self.expose_headers),
        ] {
            cx.each(field, names, |cx, name| {
                if name != "*" && !is_token(name) {
                    cx.error(format!(
                        "invalid header name {name:?}: use \"*\" or letters, digits and \
                         !#$%&'*+-.^_`|~ only"
                    ));
                }
            });
        }
        if let Some(max_age) = self.max_age {
            cx.field("maxAge", |cx| {
                if rules::check_duration(cx, max_age) && max_age.get().subsec_nanos() != 0 {
                    cx.error(format!(
                        "maxAge {max_age} is not a whole number of seconds; \
                         Access-Control-Max-Age has seconds precision"
                    ));
                }
            });
        }
    }
}

impl HttpFaultInjection {
    /// Istio's `validateHTTPFaultInjection`.
    fn check(&self, cx: &mut Checker) {
        if self.abort.is_none() && self.delay.is_none() {
            cx.error("fault injection needs an abort, a delay or both");
        }
        if let Some(a) = &self.abort {
            cx.field("abort", |cx| a.check(cx));
        }
        if let Some(d) = &self.delay {
            cx.field("delay", |cx| d.check(cx));
        }
    }
}

/// gRPC status names in code order (`OK` is 0), as fault aborts name them.
pub const GRPC_STATUSES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The code of a gRPC status name.
pub fn grpc_status_code(name: &str) -> Option<u32> {
    GRPC_STATUSES
        .iter()
        .position(|n| *n == name)
        .and_then(|i| u32::try_from(i).ok())
}

impl Abort {
    fn check(&self, cx: &mut Checker) {
        if let Some(p) = &self.percentage {
            cx.field("percentage", |cx| check_fault_percentage(cx, p.value));
        }
        match &self.error_type {
            Some(AbortErrorType::HttpStatus(s)) => {
                cx.field("httpStatus", |cx| check_http_status(cx, i64::from(*s)));
            }
            Some(AbortErrorType::GrpcStatus(s)) => {
                if !GRPC_STATUSES.contains(&s.as_str()) {
                    cx.error_at(
                        "grpcStatus",
                        format!(
                            "grpcStatus {s:?} is not a gRPC status name; use one such as \
                             UNAVAILABLE or NOT_FOUND"
                        ),
                    );
                }
            }
            Some(AbortErrorType::Http2Error(_)) => cx.error_at(
                "http2Error",
                "http2Error abort fault injection is not supported (nor by Istio); use \
                 httpStatus or grpcStatus",
            ),
            None => cx.warning(
                "abort sets none of httpStatus, grpcStatus or http2Error, so no request is \
                 aborted",
            ),
        }
    }
}

impl Delay {
    fn check(&self, cx: &mut Checker) {
        if let Some(p) = self.percent {
            cx.field("percent", |cx| {
                cx.warning(
                    "percent is deprecated; use percentage.value (fractions allowed) instead",
                );
                if !(0..=100).contains(&p) {
                    cx.error(format!("percent {p} must be in the range 0..100"));
                }
            });
        }
        if let Some(p) = &self.percentage {
            cx.field("percentage", |cx| check_fault_percentage(cx, p.value));
        }
        match self.http_delay_type {
            Some(HttpDelayType::FixedDelay(d)) => {
                cx.field("fixedDelay", |cx| rules::check_duration(cx, d));
            }
            Some(HttpDelayType::ExponentialDelay(d)) => cx.field("exponentialDelay", |cx| {
                rules::check_duration(cx, d);
                cx.error("exponentialDelay is not supported (nor by Istio); use fixedDelay");
            }),
            None => cx.warning(
                "delay sets neither fixedDelay nor exponentialDelay, so no request is delayed",
            ),
        }
    }
}

/// Istio's `validatePercentage`: 0, or in `[0.0001, 100]` (Envoy's fraction resolution).
fn check_fault_percentage(cx: &mut Checker, value: f64) {
    cx.field("value", |cx| {
        if rules::check_percent(cx, value) && value > 0.0 && value < 0.0001 {
            cx.error(format!(
                "percentage {value} is below the smallest supported fraction 0.0001"
            ));
        }
    });
}

/// Istio's `validateHTTPStatus` for aborts and direct responses.
fn check_http_status(cx: &mut Checker, status: i64) {
    // Istio's own check lets 600 through (`status > 600`); its message, and HTTP, say 599.
    if !(200..=599).contains(&status) {
        cx.error(format!(
            "HTTP status {status} must be in the range 200..599"
        ));
    }
}

impl HttpRedirect {
    /// Istio's `validateHTTPRedirect`, reporting every problem rather than the first.
    fn check(&self, cx: &mut Checker, matches: &[HttpMatchRequest]) {
        if self.uri.is_some() && self.prefix_rewrite.is_some() {
            cx.error_at(
                "prefixRewrite",
                "set only one of uri or prefixRewrite: uri replaces the whole path, \
                 prefixRewrite only the matched prefix",
            );
        }
        if self.prefix_rewrite.is_some() {
            for (i, m) in matches.iter().enumerate() {
                if m.uri
                    .as_ref()
                    .is_some_and(|u| !matches!(u, StringMatch::Prefix(_)))
                {
                    cx.error_at(
                        "prefixRewrite",
                        format!(
                            "prefixRewrite replaces the matched prefix, but match[{i}].uri is \
                             not a prefix match; use uri prefix matches or redirect.uri"
                        ),
                    );
                }
            }
        }
        if self.uri.is_none()
            && self.prefix_rewrite.is_none()
            && self.authority.is_none()
            && self.redirect_port.is_none()
            && self.scheme.is_none()
        {
            cx.error(
                "redirect must change something: set uri, prefixRewrite, authority, scheme, \
                 port or derivePort",
            );
        }
        // Istio admits any 3xx but then drops the route for codes Envoy cannot send.
        if let Some(code) = self.redirect_code
            && ![301, 302, 303, 307, 308].contains(&code)
        {
            cx.error_at(
                "redirectCode",
                format!("redirectCode {code} is not supported; use 301, 302, 303, 307 or 308"),
            );
        }
        if let Some(scheme) = &self.scheme
            && scheme != "http"
            && scheme != "https"
        {
            cx.error_at(
                "scheme",
                format!("redirect scheme {scheme:?} must be \"http\" or \"https\""),
            );
        }
        // Like Istio, `port: 0` counts as "no port" rather than an invalid one.
        if let Some(RedirectPort::Port(p)) = self.redirect_port
            && p > 0
        {
            cx.field("port", |cx| rules::check_port(cx, p));
        }
    }
}

impl HttpDirectResponse {
    /// Istio's `validateHTTPDirectResponse`.
    fn check(&self, cx: &mut Checker) {
        const KIB: usize = 1024;
        cx.field("status", |cx| check_http_status(cx, i64::from(self.status)));
        let size = match &self.body {
            Some(HttpBody::String(s)) => s.len(),
            Some(HttpBody::Bytes(b)) => b.len(),
            None => 0,
        };
        if size > KIB * KIB {
            cx.error_at(
                "body",
                format!(
                    "the body is {size} bytes; direct responses must be under 1MiB (they are \
                     pushed to every proxy): serve large bodies from a service"
                ),
            );
        } else if size > 100 * KIB {
            cx.warning_at(
                "body",
                format!("the body is {size} bytes; large direct responses slow down config pushes"),
            );
        }
    }
}

impl HttpRetry {
    /// Istio's `ValidateHTTPRetry`.
    fn check(&self, cx: &mut Checker) {
        let attempts = self.attempts.unwrap_or(0);
        if attempts < 0 {
            cx.error_at(
                "attempts",
                format!("attempts {attempts} must not be negative; use 0 to disable retries"),
            );
        }
        if attempts == 0
            && (self.per_try_timeout.is_some()
                || self.retry_on.is_some()
                || self.retry_remote_localities.is_some())
        {
            cx.error_at(
                "attempts",
                "retries are disabled (attempts is 0 or unset) but perTryTimeout, retryOn or \
                 retryRemoteLocalities is set; set attempts to at least 1, or remove them",
            );
        }
        if let Some(t) = self.per_try_timeout {
            cx.field("perTryTimeout", |cx| rules::check_duration(cx, t));
        }
        if let Some(retry_on) = &self.retry_on {
            cx.field("retryOn", |cx| {
                // Like Istio, no trimming: Envoy reads the list verbatim.
                for policy in retry_on.split(',') {
                    if !is_retry_on_policy(policy) {
                        let hint = if policy.trim() != policy {
                            " (remove the spaces around commas)"
                        } else {
                            ""
                        };
                        cx.error(format!(
                            "{policy:?} is not a valid retryOn condition{hint}; use Envoy \
                             conditions such as 5xx, gateway-error, reset, connect-failure, \
                             retriable-4xx, refused-stream, unavailable, or an HTTP status code"
                        ));
                    }
                }
            });
        }
        if let Some(b) = self.backoff {
            cx.field("backoff", |cx| rules::check_duration(cx, b));
        }
    }
}

/// Envoy's `x-envoy-retry-on` and `x-envoy-retry-grpc-on` conditions, or an HTTP status code
/// Go's `http.StatusText` knows (Istio's rule).
fn is_retry_on_policy(policy: &str) -> bool {
    const POLICIES: [&str; 16] = [
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "connect-failure",
        "retriable-4xx",
        "refused-stream",
        "retriable-status-codes",
        "retriable-headers",
        "envoy-ratelimited",
        "http3-post-connect-failure",
        "cancelled",
        "deadline-exceeded",
        "internal",
        "resource-exhausted",
        "unavailable",
    ];
    POLICIES.contains(&policy)
        || policy.parse::<u16>().is_ok_and(|code| {
            matches!(
                code,
                100..=103
                    | 200..=208
                    | 226
                    | 300..=305
                    | 307
                    | 308
                    | 400..=418
                    | 421..=426
                    | 428
                    | 429
                    | 431
                    | 451
                    | 500..=508
                    | 510
                    | 511
            )
        })
}

impl HttpRewrite {
    /// Istio's `validateHTTPRewrite` and `validateURIRegexRewrite`.
    fn check(&self, cx: &mut Checker) {
        if self.uri.is_some() && self.uri_regex_rewrite.is_some() {
            cx.error("rewrite may set only one of uri or uriRegexRewrite; remove one of them");
        }
        if self.uri.is_none() && self.uri_regex_rewrite.is_none() && self.authority.is_none() {
            cx.error("rewrite must set uri, uriRegexRewrite or authority; or remove rewrite");
        }
        if let Some(rr) = &self.uri_regex_rewrite {
            cx.field("uriRegexRewrite", |cx| {
                match &rr.pattern {
                    None => cx.error_at(
                        "match",
                        "uriRegexRewrite needs both match (an RE2 pattern) and rewrite",
                    ),
                    Some(p) => {
                        cx.field("match", |cx| check_istio_regex(cx, p));
                    }
                }
                if rr.rewrite.is_none() {
                    cx.error_at(
                        "rewrite",
                        "uriRegexRewrite needs both match and rewrite (the replacement)",
                    );
                }
            });
        }
    }
}

impl TlsRoute {
    /// Istio's `validateTLSRoute`.
    fn check(&self, cx: &mut Checker, scope: &Scope<'_>) {
        if self.matches.is_empty() {
            cx.error_at(
                "match",
                "a TLS route needs at least one match naming its sniHosts",
            );
        }
        cx.each("match", &self.matches, |cx, m| m.check(cx, scope));
        if self.route.is_empty() {
            cx.error_at(
                "route",
                "a TLS route needs at least one destination in route",
            );
        }
        check_route(cx, &self.route, |_, _| {});
    }
}

impl TlsMatchAttributes {
    fn check(&self, cx: &mut Checker, scope: &Scope<'_>) {
        if self.sni_hosts.is_empty() {
            cx.error_at(
                "sniHosts",
                "a TLS match needs at least one SNI host (one of the VirtualService's hosts)",
            );
        }
        cx.each("sniHosts", &self.sni_hosts, |cx, h| {
            check_sni_host(cx, h, scope)
        });
        check_l4_match(
            cx,
            &self.destination_subnets,
            self.port,
            &self.source_labels,
            &self.gateways,
            self.source_namespace.as_deref(),
        );
    }
}

/// Istio's `validateSniHost`: a valid (wildcard) name covered by one of the hosts.
fn check_sni_host(cx: &mut Checker, sni: &str, scope: &Scope<'_>) {
    if sni.parse::<IpAddr>().is_ok() {
        cx.warning(format!(
            "SNI host {sni:?} is an IP address: the TLS spec forbids IP addresses in SNI and \
             most clients never send one"
        ));
        return;
    }
    let valid = if scope.no_mesh && sni.starts_with("outbound_") {
        check_auto_sni(cx, sni)
    } else {
        check_host_name(cx, sni)
    };
    if valid && !scope.hosts.iter().any(|h| host_subset_of(sni, h)) {
        cx.error(format!(
            "SNI host {sni:?} is not covered by any of the VirtualService's hosts [{}]; add it \
             (or a wildcard covering it) to spec.hosts",
            scope.hosts.join(", ")
        ));
    }
}

impl TcpRoute {
    /// Istio's `validateTCPRoute`.
    fn check(&self, cx: &mut Checker) {
        cx.each("match", &self.matches, |cx, m| {
            if let Some(s) = &m.source_subnet {
                cx.field("sourceSubnet", |cx| rules::check_ip_or_cidr(cx, s));
            }
            check_l4_match(
                cx,
                &m.destination_subnets,
                m.port,
                &m.source_labels,
                &m.gateways,
                m.source_namespace.as_deref(),
            );
        });
        if self.route.is_empty() {
            cx.error_at(
                "route",
                "a TCP route needs at least one destination in route",
            );
        }
        check_route(cx, &self.route, |_, _| {});
    }
}

/// The match fields TLS and TCP routes share.
fn check_l4_match(
    cx: &mut Checker,
    destination_subnets: &[String],
    port: Option<u32>,
    source_labels: &Labels,
    gateways: &[String],
    source_namespace: Option<&str>,
) {
    cx.each("destinationSubnets", destination_subnets, |cx, s| {
        rules::check_ip_or_cidr(cx, s);
    });
    if let Some(p) = port {
        cx.field("port", |cx| rules::check_port(cx, p));
    }
    cx.field("sourceLabels", |cx| rules::check_labels(cx, source_labels));
    cx.each("gateways", gateways, |cx, g| {
        check_gateway_ref(cx, g);
    });
    // Istio checks this for HTTP matches only; an invalid namespace can never match here either.
    if let Some(ns) = source_namespace {
        cx.field("sourceNamespace", |cx| {
            rules::check_dns1123_label(cx, "sourceNamespace", ns)
        });
    }
}

/// Istio's `validateExportTo` for a VirtualService: `.`, `*` or namespace names, no
/// duplicates, and `*` alone.
fn check_export_to(cx: &mut Checker, export_to: &[String]) {
    cx.field("exportTo", |cx| {
        for (i, e) in export_to.iter().enumerate() {
            cx.index(i, |cx| {
                if export_to[..i].contains(e) {
                    cx.error(format!("duplicate exportTo entry {e:?}; remove it"));
                } else if e == "~" {
                    cx.error(
                        "exportTo \"~\" (visible nowhere) is only allowed for ServiceEntry; use \
                         \".\" for this namespace only",
                    );
                } else if e != "." && e != "*" && !rules::is_dns1123_label(e) {
                    cx.error(format!(
                        "exportTo entry {e:?} must be \".\", \"*\" or a namespace name"
                    ));
                }
            });
        }
        if export_to.len() > 1 && export_to.iter().any(|e| e == "*") {
            cx.error("\"*\" already exports to every namespace; remove the other exportTo entries");
        }
    });
}

/// Istio's `validateGatewayNames`: `mesh`, `name` (legacy `name.namespace` warned about) or
/// `namespace/name`.
///
/// Not `rules::check_gateway_name`: Istio requires the name after `/` to be a DNS label, and
/// warns about the legacy dotted form.
fn check_gateway_ref(cx: &mut Checker, gateway: &str) -> bool {
    match gateway.split_once('/') {
        None => {
            if let Some((name, rest)) = gateway.split_once('.') {
                let ns = rest.split('.').next().unwrap_or(rest);
                cx.warning(format!(
                    "gateway {gateway:?} uses the legacy name.namespace form; prefer \
                     \"{ns}/{name}\""
                ));
            }
            let ok = rules::is_fqdn(gateway) && numeric_tld(gateway).is_none();
            if !ok {
                cx.error(format!(
                    "invalid gateway {gateway:?}: expected \"mesh\", a Gateway name or \
                     \"namespace/name\""
                ));
            }
            ok
        }
        Some((ns, name)) => {
            let mut ok = true;
            if !rules::is_dns1123_label(ns) {
                cx.error(format!(
                    "invalid namespace {ns:?} in gateway {gateway:?}: expected \
                     \"namespace/name\" with a DNS-1123 label namespace"
                ));
                ok = false;
            }
            if !rules::is_dns1123_label(name) {
                cx.error(format!(
                    "invalid gateway name {name:?} in {gateway:?}: a Gateway name is a DNS-1123 \
                     label (letters, digits and '-', no dots)"
                ));
                ok = false;
            }
            ok
        }
    }
}

/// Istio's `ValidateWildcardDomain`: [`rules::check_wildcard_host`], and a dotted name must not
/// end in an all-numeric label (that is an IP address, not a host name).
fn check_host_name(cx: &mut Checker, host: &str) -> bool {
    if !rules::check_wildcard_host(cx, host) {
        return false;
    }
    if let Some(tld) = numeric_tld(host) {
        cx.error(format!(
            "host {host:?} is not a valid host name: its top-level domain {tld:?} is all digits"
        ));
        return false;
    }
    true
}

/// The last label of a dotted name when it is all digits (Istio's `ValidateDNS1123Labels`).
fn numeric_tld(host: &str) -> Option<&str> {
    let (_, rest) = host.split_once('.')?;
    let tld = rest.rsplit('.').next()?;
    (!tld.is_empty() && tld.bytes().all(|b| b.is_ascii_digit())).then_some(tld)
}

/// Istio's generated SNI names, `outbound_.<port>_._.<hostname>`, used by gateways in
/// `AUTO_PASSTHROUGH` mode.
fn check_auto_sni(cx: &mut Checker, host: &str) -> bool {
    let parts: Vec<&str> = host.split('_').collect();
    let port = parts.get(1).map(|p| p.trim_matches('.'));
    let name = parts.get(3).map(|p| p.trim_matches('.'));
    let ok = parts.len() >= 4
        && port.is_some_and(|p| p.bytes().any(|b| b.is_ascii_digit()))
        && name.is_some_and(|n| n.bytes().any(|b| b.is_ascii_alphabetic()));
    if !ok {
        cx.error(format!(
            "host {host:?} is not a valid generated SNI name; expected \
             outbound_.<port>_._.<hostname>"
        ));
    }
    ok
}

/// Whether two hosts overlap (Istio's `host.Name.Matches`).
fn host_matches(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(sa), Some(sb)) if a.len() < b.len() => sb.ends_with(sa),
        (Some(sa), Some(sb)) => sa.ends_with(sb),
        (Some(sa), None) => b.ends_with(sa),
        (None, Some(sb)) => a.ends_with(sb),
        (None, None) => a == b,
    }
}

/// Whether every name `a` matches is matched by `b` (Istio's `host.Name.SubsetOf`).
fn host_subset_of(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(sa), Some(sb)) => a.len() >= b.len() && sa.ends_with(sb),
        (Some(_), None) => false,
        (None, Some(sb)) => a.ends_with(sb),
        (None, None) => a == b,
    }
}

/// Records an error at a path below the current one.
fn error_in(cx: &mut Checker, path: &[&str], message: String) {
    match path.split_first() {
        Some((first, rest)) => cx.field(first, |cx| error_in(cx, rest, message)),
        None => cx.error(message),
    }
}
