//! Upstream clusters: discovery, endpoints, balancing and resilience settings.

use std::sync::Arc;
use std::time::Duration;

use super::{Locality, UpstreamTls};

/// A cluster (`envoy.config.cluster.v3.Cluster`).
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// Unique name.
    pub name: String,
    /// How endpoints are found.
    pub discovery: Discovery,
    /// Connect timeout (default 5s).
    pub connect_timeout: Duration,
    /// Load balancing: `lb_policy` with its settings, `common_lb_config` and the
    /// overprovisioning factor, validated. ORIGINAL_DST clusters (`CLUSTER_PROVIDED`) carry the
    /// default here and bypass it.
    pub lb: weft_proxy_lb::ValidLbConfig,
    /// Endpoints, grouped by locality and priority (`load_assignment`).
    pub localities: Vec<LocalityEndpoints>,
    /// Circuit breakers for DEFAULT priority.
    pub circuit_breakers: Thresholds,
    /// Passive health checking.
    pub outlier_detection: Option<OutlierDetection>,
    /// Active health checks.
    pub health_checks: Vec<HealthCheck>,
    /// TLS origination.
    pub tls: Option<Arc<UpstreamTls>>,
    /// Protocol toward the endpoints.
    pub protocol: UpstreamProtocol,
    /// Close idle upstream connections after this long (`common_http_protocol_options.
    /// idle_timeout`). weft's default is **4s**, not Envoy's 1h: below the keep-alive timeout of
    /// common servers, so a pooled connection is closed by weft before the server closes it and
    /// no request races into a closing connection (Envoy's "503 UC"). Envoy's `0s` (disabled)
    /// becomes `u32::MAX` seconds.
    pub idle_timeout: Duration,
    /// Requests per upstream connection before it is closed (`None`: unlimited).
    pub max_requests_per_connection: Option<u32>,
    /// DNS refresh interval for STRICT_DNS / LOGICAL_DNS (default 5s).
    pub dns_refresh_rate: Duration,
    /// Which address families DNS returns.
    pub dns_lookup_family: DnsLookupFamily,
    /// ORIGINAL_DST: take the destination from `x-envoy-original-dst-host`.
    pub original_dst_use_http_header: bool,
    /// Soft limit on buffered bytes per upstream connection (default 1 MiB).
    pub per_connection_buffer_limit_bytes: u32,
}

/// Service discovery type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discovery {
    /// Endpoints are listed.
    Static,
    /// Every address a name resolves to is an endpoint; re-resolved periodically.
    StrictDns,
    /// The first address a name resolves to, used for new connections.
    LogicalDns,
    /// The connection's original destination.
    OriginalDst,
    /// From the control plane (EDS).
    Eds,
}

/// Endpoints of one locality at one priority.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalityEndpoints {
    /// Where they are.
    pub locality: Locality,
    /// Priority (0 is highest).
    pub priority: u32,
    /// Locality weight, for locality-weighted balancing.
    pub weight: Option<u32>,
    /// The endpoints.
    pub endpoints: Vec<Endpoint>,
}

/// One endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// Where it is.
    pub address: EndpointAddress,
    /// Load-balancing weight (default 1).
    pub weight: u32,
    /// Health as configured (EDS or static).
    pub health: ConfiguredHealth,
    /// `hostname` (used for `auto_host_rewrite`).
    pub hostname: String,
    /// Active health-check port override.
    pub health_check_port: Option<u16>,
}

/// How to reach an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EndpointAddress {
    /// An IP and port.
    Socket(std::net::SocketAddr),
    /// A DNS name and port (STRICT_DNS / LOGICAL_DNS clusters).
    Dns {
        /// Name to resolve.
        host: String,
        /// Port.
        port: u16,
    },
}

/// `HealthStatus` of an endpoint as configured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConfiguredHealth {
    /// Unknown or healthy: used.
    #[default]
    Healthy,
    /// Degraded: used only when healthy hosts are not enough.
    Degraded,
    /// Unhealthy, draining, timeout: not used.
    Unhealthy,
}

/// Circuit-breaker thresholds (`circuit_breakers.thresholds`, priority DEFAULT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Most upstream connections (default 1024).
    pub max_connections: u32,
    /// Most requests waiting for a connection (default 1024).
    pub max_pending_requests: u32,
    /// Most active requests (default 1024).
    pub max_requests: u32,
    /// Most concurrent retries (default 3).
    pub max_retries: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
        }
    }
}

/// `outlier_detection`, with Envoy's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutlierDetection {
    /// Consecutive 5xx before ejection (default 5; 0 disables).
    pub consecutive_5xx: u32,
    /// Consecutive gateway errors (502/503/504) before ejection (default 5).
    pub consecutive_gateway_failure: u32,
    /// Consecutive locally originated failures (connect errors...) before ejection (default 5).
    pub consecutive_local_origin_failure: u32,
    /// Split locally originated errors from HTTP status (default false).
    pub split_external_local_origin_errors: bool,
    /// Analysis interval (default 10s).
    pub interval: Duration,
    /// Base ejection time, multiplied by the number of ejections (default 30s).
    pub base_ejection_time: Duration,
    /// Cap on ejection time (default max(300s, base)).
    pub max_ejection_time: Duration,
    /// Most hosts ejected at once, percent (default 10).
    pub max_ejection_percent: u32,
    /// Enforcement percentages (default 100 for consecutive 5xx, local-origin failures and
    /// success rate, 0 for gateway failures, as in Envoy).
    pub enforcing_consecutive_5xx: u32,
    /// See `enforcing_consecutive_5xx`.
    pub enforcing_consecutive_gateway_failure: u32,
    /// See `enforcing_consecutive_5xx`.
    pub enforcing_consecutive_local_origin_failure: u32,
    /// Success-rate ejection: minimum hosts (default 5).
    pub success_rate_minimum_hosts: u32,
    /// Success-rate ejection: minimum requests per host per interval (default 100).
    pub success_rate_request_volume: u32,
    /// Success-rate ejection: stdev factor ×1000 (default 1900).
    pub success_rate_stdev_factor: u32,
    /// Success-rate enforcement percent (default 100).
    pub enforcing_success_rate: u32,
}

/// One active health check.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    /// Per-check timeout.
    pub timeout: Duration,
    /// Interval between checks.
    pub interval: Duration,
    /// Failures before a host is unhealthy.
    pub unhealthy_threshold: u32,
    /// Successes before a host is healthy again.
    pub healthy_threshold: u32,
    /// What to check.
    pub kind: HealthCheckKind,
}

/// HTTP or TCP health checking.
#[derive(Debug, Clone, PartialEq)]
pub enum HealthCheckKind {
    /// GET `path` (with `host`), expecting a status in `expected_statuses` (default 200..201).
    Http {
        /// Path.
        path: String,
        /// Host header (default: the cluster name).
        host: String,
        /// Accepted status ranges `[start, end)`.
        expected_statuses: Vec<(u16, u16)>,
    },
    /// Connect, optionally send bytes and expect bytes.
    Tcp {
        /// Bytes to send.
        send: Vec<u8>,
        /// Byte strings that must all appear in the response.
        receive: Vec<Vec<u8>>,
    },
}

/// The protocol spoken to endpoints (`typed_extension_protocol_options`
/// `envoy.extensions.upstreams.http.v3.HttpProtocolOptions`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 (default).
    #[default]
    Http1,
    /// HTTP/2 (prior knowledge, or ALPN over TLS).
    Http2,
    /// The downstream request's protocol.
    UseDownstream,
}

/// `dns_lookup_family`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DnsLookupFamily {
    /// IPv4 only.
    V4Only,
    /// IPv6 only.
    V6Only,
    /// IPv4 preferred, IPv6 when there is none (Envoy's default `AUTO` prefers v6; see
    /// docs/proxy.md).
    #[default]
    Auto,
    /// IPv4 first.
    V4Preferred,
    /// Both.
    All,
}
