//! `DestinationRule`: what happens to traffic for a service after routing (load balancing,
//! connection pool sizes, outlier detection, client TLS), after Istio's
//! `networking/v1alpha3/destination_rule.proto`.
//!
//! The traffic-policy types here are shared: [`ConnectionPoolSettings`] also configures Sidecar
//! inbound listeners.
//!
//! Proto3 scalars keep their proto semantics (zero means unset) and are skipped when zero on
//! output; protobuf wrapper types (`UInt32Value`, `BoolValue`, `DoubleValue`) become `Option`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::common::{Duration, Labels, PortSelector, WorkloadSelector};
use crate::validate::rules::{
    check_dns1123_label, check_duration, check_labels, check_percent, check_port, check_timeout,
    check_wildcard_host, check_workload_selector, is_dns1123_label, is_fqdn,
};
use crate::validate::{Checker, Validate};

/// Policies that apply to traffic intended for a service after routing has occurred.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DestinationRule {
    /// The service the rule applies to, from the service registry; short names are resolved in
    /// the rule's namespace. Wildcards (`*.example.com`) are allowed. Required.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// Policies for every port and subset of the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
    /// Named sets of endpoints (versions) that can override the traffic policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsets: Vec<Subset>,
    /// Namespaces the rule is visible to (`.` for its own, `*` for all); empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    /// Restricts the rule to workloads in its namespace carrying these labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
}

/// Traffic policies for a destination, across all its ports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrafficPolicy {
    /// Load balancing algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Volume of connections and requests to each upstream host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Ejection of unhealthy hosts from the load balancing pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS for connections to the upstream service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSettings>,
    /// Per-port overrides. They replace (not merge with) the destination-level settings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_level_settings: Vec<PortTrafficPolicy>,
    /// Tunnel TCP connections for this host over HTTP CONNECT or POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelSettings>,
    /// Send a PROXY protocol header upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Limit on concurrent retries relative to active requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<RetryBudget>,
}

/// Traffic policy for one port of the destination.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PortTrafficPolicy {
    /// The destination port the policy applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
    /// Load balancing algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Connection pool limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Outlier detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// Client TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSettings>,
}

/// Tunnelling of TCP connections for the host over an HTTP proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TunnelSettings {
    /// `CONNECT` (the default when empty) or `POST`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    /// FQDN or IP address the connection is tunnelled to. Required.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_host: String,
    /// Port the connection is tunnelled to. Required.
    #[serde(default, skip_serializing_if = "is_default")]
    pub target_port: u32,
}

/// Upstream PROXY protocol settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProxyProtocol {
    /// Protocol version; `V1` when unset.
    #[serde(default, skip_serializing_if = "is_default")]
    pub version: ProxyProtocolVersion,
}

/// PROXY protocol version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProxyProtocolVersion {
    /// Human-readable format.
    #[default]
    V1,
    /// Binary format.
    V2,
}

/// Limit on concurrent retries as a share of active requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetryBudget {
    /// Percentage of active plus pending requests that may be retries (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// Retries always allowed regardless of the percentage (default 3).
    #[serde(default, skip_serializing_if = "is_default")]
    pub min_retry_concurrency: u32,
    /// Window over which new requests count towards the budget (default 0ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_interval: Option<Duration>,
}

/// A named subset of the service's endpoints, such as one version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Subset {
    /// Name, used by routes to select the subset. Required.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Endpoint labels that select the subset's members.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
    /// Overrides of the destination-level traffic policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
}

/// Load balancing policy for a destination.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawLoadBalancerSettings", into = "RawLoadBalancerSettings")]
pub struct LoadBalancerSettings {
    /// The `lb_policy` oneof: `simple` or `consistentHash`; `None` lets Istio choose.
    pub policy: Option<LbPolicy>,
    /// Locality-weighted load balancing; replaces the mesh-wide setting.
    pub locality_lb_setting: Option<LocalityLbSetting>,
    /// Zone-aware load balancing; exclusive with `locality_lb_setting`.
    pub zone_aware_lb_setting: Option<ZoneAwareLbSetting>,
    /// Deprecated slow-start window; use `warmup`.
    pub warmup_duration_secs: Option<Duration>,
    /// Slow start for new endpoints.
    pub warmup: Option<WarmupConfiguration>,
}

/// The `lb_policy` oneof of [`LoadBalancerSettings`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LbPolicy {
    /// A standard algorithm that needs no tuning.
    Simple(SimpleLb),
    /// Consistent hashing, for soft session affinity.
    ConsistentHash(ConsistentHashLb),
}

/// Standard load balancing algorithms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SimpleLb {
    /// Istio picks a default.
    #[default]
    Unspecified,
    /// Deprecated; use `LEAST_REQUEST`.
    LeastConn,
    /// A random healthy host.
    Random,
    /// Forward to the original destination address without balancing.
    Passthrough,
    /// Round robin over healthy hosts.
    RoundRobin,
    /// Fewest active requests (power of two choices).
    LeastRequest,
}

/// Consistent-hash load balancing (`ConsistentHashLB`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawConsistentHashLb", into = "RawConsistentHashLb")]
pub struct ConsistentHashLb {
    /// The `hash_key` oneof: what to hash.
    pub hash_key: Option<HashKey>,
    /// The `hash_algorithm` oneof: ring hash or Maglev.
    pub hash_algorithm: Option<HashAlgorithm>,
    /// Deprecated minimum ring size; use `ringHash.minimumRingSize`. Zero means unset.
    pub minimum_ring_size: u64,
}

/// The `hash_key` oneof of [`ConsistentHashLb`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// Hash a request header.
    HttpHeaderName(String),
    /// Hash a cookie, generating it when absent.
    HttpCookie(HttpCookie),
    /// Hash the source IP address.
    UseSourceIp(bool),
    /// Hash a query parameter.
    HttpQueryParameterName(String),
}

/// The `hash_algorithm` oneof of [`ConsistentHashLb`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// Ketama ring hash.
    RingHash(RingHash),
    /// Maglev.
    Maglev(Maglev),
}

/// Ring hash settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RingHash {
    /// Minimum number of virtual nodes on the ring (default 1024).
    #[serde(default, skip_serializing_if = "is_default")]
    pub minimum_ring_size: u64,
}

/// Maglev settings (`MagLev`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Maglev {
    /// Lookup table size; must be prime (default 65537).
    #[serde(default, skip_serializing_if = "is_default")]
    pub table_size: u64,
}

/// Cookie used as the hash key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpCookie {
    /// Cookie name. Required.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Path set on a generated cookie.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Lifetime of a generated cookie; zero makes it a session cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Duration>,
    /// Extra attributes set on a generated cookie.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<CookieAttribute>,
}

/// One attribute of a generated hash cookie.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CookieAttribute {
    /// Attribute name. Required.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Attribute value, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
}

/// Slow-start settings for new endpoints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WarmupConfiguration {
    /// Length of the warmup window. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
    /// Minimum share of the endpoint's weight during warmup, in percent (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_percent: Option<f64>,
    /// Speed of the traffic ramp-up; 1.0 (the default) is linear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggression: Option<f64>,
}

/// Locality-weighted load balancing (`LocalityLoadBalancerSetting`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalityLbSetting {
    /// Traffic shares per destination locality, by source locality. Exclusive with `failover`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distribute: Vec<LocalityDistribute>,
    /// Region to fail over to when a region's endpoints are unhealthy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover: Vec<LocalityFailover>,
    /// Ordered labels used to prioritise endpoints for failover.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover_priority: Vec<String>,
    /// Turns locality load balancing on or off; unset keeps the mesh default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Weights of destination localities for one source locality.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalityDistribute {
    /// Source locality, `region/zone/subzone`, optionally ending in `*`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from: String,
    /// Destination localities and their weights, which must add up to 100.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub to: BTreeMap<String, u32>,
}

/// Failover from one region to another. Also used by [`ZoneAwareLbSetting`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalityFailover {
    /// Region whose traffic fails over.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from: String,
    /// Region receiving the traffic.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub to: String,
}

/// Zone-aware load balancing (`ZoneAwareLoadBalancerSetting`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ZoneAwareLbSetting {
    /// Turns zone-aware load balancing on or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Cross-region failover order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover: Vec<LocalityFailover>,
    /// Ordered non-topology labels used to prioritise endpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover_priority: Vec<String>,
    /// Minimum hosts in the local region for zone awareness to apply (default 6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_cluster_size: Option<u64>,
}

/// Connection pool limits for each upstream host (Envoy circuit breakers).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectionPoolSettings {
    /// Settings common to HTTP and TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpSettings>,
    /// HTTP/1.1, HTTP/2 and gRPC settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSettings>,
}

/// TCP connection pool settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TcpSettings {
    /// Maximum connections to a host.
    #[serde(default, skip_serializing_if = "is_default")]
    pub max_connections: i32,
    /// TCP connect timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// TCP keepalive on upstream sockets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// Maximum lifetime of a connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connection_duration: Option<Duration>,
    /// Idle timeout for TCP connections; `0s` disables it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
}

/// TCP keepalive settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TcpKeepalive {
    /// Unanswered probes before the connection is dropped.
    #[serde(default, skip_serializing_if = "is_default")]
    pub probes: u32,
    /// Idle time before probes start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Duration>,
    /// Time between probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
}

/// HTTP connection pool settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpSettings {
    /// Maximum requests queued while waiting for a connection.
    #[serde(default, skip_serializing_if = "is_default")]
    pub http1_max_pending_requests: i32,
    /// Maximum active requests to a host.
    #[serde(default, skip_serializing_if = "is_default")]
    pub http2_max_requests: i32,
    /// Maximum requests per connection; 1 disables keep-alive.
    #[serde(default, skip_serializing_if = "is_default")]
    pub max_requests_per_connection: i32,
    /// Maximum outstanding retries to the cluster.
    #[serde(default, skip_serializing_if = "is_default")]
    pub max_retries: i32,
    /// Idle timeout for upstream connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
    /// Whether HTTP/1.1 connections are upgraded to HTTP/2.
    #[serde(default, skip_serializing_if = "is_default")]
    pub h2_upgrade_policy: H2UpgradePolicy,
    /// Use the downstream connection's protocol upstream.
    #[serde(default, skip_serializing_if = "is_default")]
    pub use_client_protocol: bool,
    /// Maximum concurrent streams per HTTP/2 connection.
    #[serde(default, skip_serializing_if = "is_default")]
    pub max_concurrent_streams: i32,
    /// HTTP/2 PING keepalive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_keep_alive: Option<ConnectionKeepalive>,
}

/// HTTP/1.1 to HTTP/2 upgrade policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum H2UpgradePolicy {
    /// Use the mesh-wide default.
    #[default]
    Default,
    /// Never upgrade.
    DoNotUpgrade,
    /// Upgrade to HTTP/2.
    Upgrade,
}

/// HTTP/2 keepalive (`ConnectionKeepalive`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectionKeepalive {
    /// Time between PING frames. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Time to wait for a PING response. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

/// Circuit breaker that ejects unhealthy hosts from the load balancing pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutlierDetection {
    /// Deprecated; use `consecutiveGatewayErrors` or `consecutive5xxErrors`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub consecutive_errors: i32,
    /// Count local-origin failures (timeouts, resets) separately from upstream errors.
    #[serde(default, skip_serializing_if = "is_default")]
    pub split_external_local_origin_errors: bool,
    /// Local-origin failures before ejection; needs `splitExternalLocalOriginErrors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_local_origin_failures: Option<u32>,
    /// Gateway errors (502, 503, 504) before ejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_errors: Option<u32>,
    /// 5xx errors before ejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_5xx_errors: Option<u32>,
    /// Time between ejection sweeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Minimum ejection duration, multiplied by the number of ejections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<Duration>,
    /// Maximum percentage of hosts that can be ejected.
    #[serde(default, skip_serializing_if = "is_default")]
    pub max_ejection_percent: i32,
    /// Outlier detection is disabled below this percentage of healthy hosts.
    #[serde(default, skip_serializing_if = "is_default")]
    pub min_health_percent: i32,
    /// HTTP status codes counted as errors (100..599); empty means 5xx.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outlier_detection_http_error_codes: Vec<u32>,
}

/// TLS settings for upstream connections (`ClientTLSSettings`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientTlsSettings {
    /// TLS mode.
    #[serde(default, skip_serializing_if = "is_default")]
    pub mode: ClientTlsMode,
    /// Client certificate file (`MUTUAL`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_certificate: String,
    /// Client private key file (`MUTUAL`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub private_key: String,
    /// CA bundle file used to verify the server.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_certificates: String,
    /// Secret holding the client certificate, key and CA; exclusive with the file fields.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub credential_name: String,
    /// Names accepted in the server certificate's subject alternative names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// SNI sent in the handshake.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sni: String,
    /// Skip verification of the server certificate and SANs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
    /// Certificate revocation list file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_crl: String,
}

/// Client TLS mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClientTlsMode {
    /// Plain text.
    #[default]
    Disable,
    /// TLS, verifying the server.
    Simple,
    /// Mutual TLS with the given client certificate.
    Mutual,
    /// Mutual TLS with Istio's workload certificates.
    IstioMutual,
}

impl Validate for DestinationRule {
    fn validate(&self, cx: &mut Checker) {
        cx.field("host", |cx| {
            if self.host.is_empty() {
                cx.error(
                    "host is required: name the service the rule applies to, \
                     e.g. reviews.default.svc.cluster.local",
                );
            } else {
                check_wildcard_host(cx, &self.host);
            }
        });
        if let Some(policy) = &self.traffic_policy {
            cx.field("trafficPolicy", |cx| validate_traffic_policy(cx, policy));
        }
        let mut names = BTreeSet::new();
        each_item(cx, "subsets", &self.subsets, |cx, subset| {
            validate_subset(cx, subset);
            if !subset.name.is_empty() && !names.insert(subset.name.as_str()) {
                cx.error_at(
                    "name",
                    format!(
                        "duplicate subset name {:?}; subset names must be unique",
                        subset.name
                    ),
                );
            }
        });
        check_export_to(cx, &self.export_to, self.workload_selector.is_some());
        if let Some(selector) = &self.workload_selector {
            cx.field("workloadSelector", |cx| {
                check_workload_selector(cx, selector);
                if selector.match_labels.is_empty() {
                    cx.warning(
                        "workload selector has no labels, so it selects every workload in the namespace",
                    );
                }
            });
        }
    }
}

fn validate_subset(cx: &mut Checker, subset: &Subset) {
    cx.field("name", |cx| {
        if subset.name.is_empty() {
            cx.error("subset name is required");
        } else {
            check_dns1123_label(cx, "subset name", &subset.name);
        }
    });
    cx.field("labels", |cx| check_labels(cx, &subset.labels));
    if let Some(policy) = &subset.traffic_policy {
        cx.field("trafficPolicy", |cx| validate_traffic_policy(cx, policy));
    }
}

fn check_export_to(cx: &mut Checker, export_to: &[String], has_selector: bool) {
    let mut seen = BTreeSet::new();
    each_item(cx, "exportTo", export_to, |cx, entry| {
        if !seen.insert(entry.as_str()) {
            cx.error(format!("duplicate exportTo entry {entry:?}"));
            return;
        }
        match entry.as_str() {
            "." | "*" => {}
            "~" => {
                cx.error("exportTo \"~\" (visible to no namespace) is only allowed on ServiceEntry")
            }
            ns if !is_dns1123_label(ns) => cx.error(format!(
                "invalid exportTo entry {ns:?}: expected \".\", \"*\" or a namespace name"
            )),
            _ => {}
        }
    });
    if seen.contains("*") && export_to.len() > 1 {
        cx.error_at(
            "exportTo",
            "\"*\" already exports to every namespace; it cannot be combined with other entries",
        );
    }
    // The rule's own namespace is not known here, so a single namespace name is accepted.
    if has_selector && (seen.len() > 1 || seen.contains("*")) {
        cx.error_at(
            "exportTo",
            "a DestinationRule with a workloadSelector can only be exported to its own namespace (\".\")",
        );
    }
}

fn validate_traffic_policy(cx: &mut Checker, policy: &TrafficPolicy) {
    if policy == &TrafficPolicy::default() {
        cx.error(
            "traffic policy must set at least one field (loadBalancer, connectionPool, \
             outlierDetection, tls, portLevelSettings, tunnel, proxyProtocol or retryBudget); \
             remove it if it is meant to be empty",
        );
        return;
    }
    if policy.tunnel.is_some() && policy.proxy_protocol.is_some() {
        cx.error("tunnel and proxyProtocol cannot be set together; remove one of them");
    }
    validate_policies(
        cx,
        policy.load_balancer.as_ref(),
        policy.connection_pool.as_ref(),
        policy.outlier_detection.as_ref(),
        policy.tls.as_ref(),
    );
    let mut ports = BTreeSet::new();
    cx.each("portLevelSettings", &policy.port_level_settings, |cx, p| {
        validate_port_policy(cx, p);
        if let Some(port) = p.port
            && !ports.insert(port.number)
        {
            cx.warning_at(
                "port",
                format!(
                    "port {} already has a policy earlier in portLevelSettings; only the first applies",
                    port.number
                ),
            );
        }
    });
    if let Some(tunnel) = &policy.tunnel {
        cx.field("tunnel", |cx| validate_tunnel(cx, tunnel));
    }
    if let Some(percent) = policy.retry_budget.as_ref().and_then(|b| b.percent) {
        cx.field("retryBudget", |cx| {
            cx.field("percent", |cx| check_percent(cx, percent))
        });
    }
}

fn validate_port_policy(cx: &mut Checker, policy: &PortTrafficPolicy) {
    match policy.port {
        None => cx.error_at(
            "port",
            "port is required: name the destination port this policy applies to",
        ),
        Some(port) => {
            cx.field("port", |cx| {
                cx.field("number", |cx| check_port(cx, port.number))
            });
        }
    }
    if policy.load_balancer.is_none()
        && policy.connection_pool.is_none()
        && policy.outlier_detection.is_none()
        && policy.tls.is_none()
    {
        cx.error(
            "port traffic policy must set at least one of loadBalancer, connectionPool, \
             outlierDetection or tls",
        );
        return;
    }
    validate_policies(
        cx,
        policy.load_balancer.as_ref(),
        policy.connection_pool.as_ref(),
        policy.outlier_detection.as_ref(),
        policy.tls.as_ref(),
    );
}

/// The checks shared by destination-level and port-level policies.
fn validate_policies(
    cx: &mut Checker,
    load_balancer: Option<&LoadBalancerSettings>,
    connection_pool: Option<&ConnectionPoolSettings>,
    outlier: Option<&OutlierDetection>,
    tls: Option<&ClientTlsSettings>,
) {
    if let Some(lb) = load_balancer {
        cx.field("loadBalancer", |cx| {
            validate_load_balancer(cx, lb, outlier.is_some())
        });
    }
    if let Some(pool) = connection_pool {
        cx.field("connectionPool", |cx| validate_connection_pool(cx, pool));
    }
    if let Some(outlier) = outlier {
        cx.field("outlierDetection", |cx| {
            validate_outlier_detection(cx, outlier)
        });
    }
    if let Some(tls) = tls {
        cx.field("tls", |cx| validate_client_tls(cx, tls));
    }
}

/// Envoy's `RingHashLbConfig.minimum_ring_size` limit; larger values are NACKed.
const MAX_RING_SIZE: u64 = 8_388_608;
/// Envoy's Maglev table size limit (exclusive).
const MAGLEV_TABLE_LIMIT: u64 = 5_000_011;

fn validate_load_balancer(cx: &mut Checker, lb: &LoadBalancerSettings, has_outlier: bool) {
    match &lb.policy {
        Some(LbPolicy::Simple(SimpleLb::LeastConn)) => cx.warning_at(
            "simple",
            "LEAST_CONN is deprecated; use LEAST_REQUEST, which behaves the same",
        ),
        Some(LbPolicy::ConsistentHash(hash)) => {
            cx.field("consistentHash", |cx| validate_consistent_hash(cx, hash));
        }
        _ => {}
    }
    if lb.locality_lb_setting.is_some() && lb.zone_aware_lb_setting.is_some() {
        cx.error("only one of localityLbSetting and zoneAwareLbSetting can be set");
    }
    if let Some(locality) = &lb.locality_lb_setting {
        cx.field("localityLbSetting", |cx| {
            validate_locality_lb(cx, locality, has_outlier)
        });
    }
    if let Some(zone) = &lb.zone_aware_lb_setting {
        cx.field("zoneAwareLbSetting", |cx| {
            validate_zone_aware_lb(cx, zone, has_outlier)
        });
    }
    if let Some(d) = lb.warmup_duration_secs {
        cx.field("warmupDurationSecs", |cx| {
            cx.warning("warmupDurationSecs is deprecated; use warmup.duration");
            check_duration(cx, d);
        });
        if lb.warmup.is_some() {
            cx.error("only one of warmupDurationSecs or warmup can be set");
        }
    }
    if let Some(warmup) = &lb.warmup {
        cx.field("warmup", |cx| {
            cx.field("duration", |cx| match warmup.duration {
                None => cx.error("warmup duration is required, e.g. \"60s\""),
                Some(d) => {
                    check_duration(cx, d);
                }
            });
            if let Some(p) = warmup.minimum_percent {
                cx.field("minimumPercent", |cx| check_percent(cx, p));
            }
            if let Some(a) = warmup.aggression
                && (a.is_nan() || a <= 0.0)
            {
                cx.error_at(
                    "aggression",
                    format!("aggression {a} must be greater than 0 (1.0 ramps up linearly)"),
                );
            }
        });
    }
}

fn validate_consistent_hash(cx: &mut Checker, hash: &ConsistentHashLb) {
    match &hash.hash_key {
        None => cx.warning(
            "no hash key is set (httpHeaderName, httpCookie, useSourceIp or \
             httpQueryParameterName), so requests get no session affinity",
        ),
        Some(HashKey::HttpHeaderName(h)) if h.is_empty() => {
            cx.error_at("httpHeaderName", "header name must not be empty");
        }
        Some(HashKey::HttpQueryParameterName(q)) if q.is_empty() => {
            cx.error_at(
                "httpQueryParameterName",
                "query parameter name must not be empty",
            );
        }
        Some(HashKey::HttpCookie(cookie)) => cx.field("httpCookie", |cx| {
            if cookie.name.is_empty() {
                cx.error_at("name", "cookie name is required");
            }
            let mut names = BTreeSet::new();
            each_item(cx, "attributes", &cookie.attributes, |cx, attr| {
                if attr.name.is_empty() {
                    cx.error_at("name", "cookie attribute name must not be empty");
                } else if !names.insert(attr.name.as_str()) {
                    cx.error_at(
                        "name",
                        format!("duplicate cookie attribute name {:?}", attr.name),
                    );
                }
            });
        }),
        Some(_) => {}
    }
    if hash.minimum_ring_size != 0 {
        cx.field("minimumRingSize", |cx| {
            cx.warning("minimumRingSize is deprecated; use ringHash.minimumRingSize");
            if hash.hash_algorithm.is_some() {
                cx.error("only one of minimumRingSize or ringHash/maglev can be set");
            }
            check_ring_size(cx, hash.minimum_ring_size);
        });
    }
    match &hash.hash_algorithm {
        Some(HashAlgorithm::RingHash(ring)) => cx.field("ringHash", |cx| {
            cx.field("minimumRingSize", |cx| {
                check_ring_size(cx, ring.minimum_ring_size)
            })
        }),
        Some(HashAlgorithm::Maglev(maglev)) => cx.field("maglev", |cx| {
            cx.field("tableSize", |cx| {
                let size = maglev.table_size;
                if size == 0 {
                    cx.error("tableSize must be set for maglev: a prime number such as 65537");
                } else if size >= MAGLEV_TABLE_LIMIT {
                    cx.error(format!(
                        "tableSize {size} must be less than {MAGLEV_TABLE_LIMIT} for maglev"
                    ));
                } else if !is_prime(size) {
                    cx.error(format!(
                        "tableSize {size} must be a prime number for maglev, such as 65537"
                    ));
                }
            })
        }),
        None => {}
    }
}

fn check_ring_size(cx: &mut Checker, size: u64) {
    if size > MAX_RING_SIZE {
        cx.error(format!(
            "minimumRingSize {size} exceeds Envoy's limit of {MAX_RING_SIZE}"
        ));
    }
}

/// Envoy's primality test for Maglev table sizes (matches Istio's copy).
fn is_prime(x: u64) -> bool {
    if x != 0 && x < 4 {
        return true;
    }
    if x & 1 == 0 {
        return false;
    }
    let mut factor = 3u64;
    while factor.saturating_mul(factor) <= x {
        if x.is_multiple_of(factor) {
            return false;
        }
        factor += 2;
    }
    true
}

/// Topology labels that `failover` already orders by; they may not also appear in
/// `failoverPriority`.
const TOPOLOGY_LABELS: [&str; 3] = [
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
];

fn validate_locality_lb(cx: &mut Checker, lb: &LocalityLbSetting, has_outlier: bool) {
    if !lb.distribute.is_empty() && !lb.failover.is_empty() {
        cx.error("distribute and failover cannot be set together; choose one");
        return;
    }
    if !lb.failover.is_empty() {
        cx.each("failoverPriority", &lb.failover_priority, |cx, label| {
            if TOPOLOGY_LABELS.contains(&label.as_str()) {
                cx.error(format!(
                    "topology label {label:?} cannot be in failoverPriority when failover is set"
                ));
            }
        });
    }
    cx.each("distribute", &lb.distribute, |cx, d| {
        cx.field("to", |cx| {
            let mut total: u64 = 0;
            for (locality, &weight) in &d.to {
                if weight == 0 || weight > 100 {
                    cx.error(format!(
                        "weight {weight} for locality {locality:?} must be in the range 1..100"
                    ));
                }
                total += u64::from(weight);
            }
            if total != 100 {
                cx.error(format!(
                    "weights add up to {total}; the weights of one distribute entry must add up to 100"
                ));
            }
            let targets: Vec<&str> = d.to.keys().map(String::as_str).collect();
            for (_, message) in locality_conflicts(&targets) {
                cx.error(message);
            }
        });
    });
    let sources: Vec<&str> = lb.distribute.iter().map(|d| d.from.as_str()).collect();
    for (i, message) in locality_conflicts(&sources) {
        cx.field("distribute", |cx| {
            cx.index(i, |cx| cx.error_at("from", message))
        });
    }
    check_failover(
        cx,
        &lb.failover,
        &lb.failover_priority,
        has_outlier,
        "locality",
    );
}

fn validate_zone_aware_lb(cx: &mut Checker, lb: &ZoneAwareLbSetting, has_outlier: bool) {
    cx.each("failoverPriority", &lb.failover_priority, |cx, label| {
        if TOPOLOGY_LABELS.contains(&label.as_str()) {
            cx.error(format!(
                "failoverPriority for zone-aware load balancing cannot use topology label \
                 {label:?}; region and zone routing are automatic"
            ));
        }
    });
    check_failover(
        cx,
        &lb.failover,
        &lb.failover_priority,
        has_outlier,
        "zone-aware",
    );
}

fn check_failover(
    cx: &mut Checker,
    failover: &[LocalityFailover],
    priority: &[String],
    has_outlier: bool,
    what: &str,
) {
    if (!failover.is_empty() || !priority.is_empty()) && !has_outlier {
        cx.warning(
            "failover only happens when outlierDetection is set in the same policy; add one",
        );
    }
    cx.each("failover", failover, |cx, f| {
        if f.from == f.to {
            cx.error(format!(
                "{what} failover from and to are both {:?}; they must name different regions",
                f.from
            ));
        }
        if f.from.contains('/') || f.to.contains('/') {
            cx.error(format!(
                "{what} failover takes regions only, not region/zone"
            ));
        }
        if f.from.contains('*') || f.to.contains('*') {
            cx.error(format!(
                "{what} failover regions cannot contain the '*' wildcard"
            ));
        }
    });
}

/// Istio's `validateLocalities`: each locality is `region[/zone[/subzone]]`, at most one
/// trailing `*`, and none may overlap an earlier one. Returns (index, message) per bad entry.
fn locality_conflicts(localities: &[&str]) -> Vec<(usize, String)> {
    let mut issues = Vec::new();
    let mut seen: BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    let overlap = |l: &str| format!("locality {l:?} overlaps a locality listed before it");
    for (i, &locality) in localities.iter().enumerate() {
        let stars = locality.matches('*').count();
        if stars > 1 || (stars == 1 && !locality.ends_with('*')) {
            issues.push((
                i,
                format!("locality {locality:?} may contain only one '*', at the end"),
            ));
            continue;
        }
        if seen.contains_key("*") {
            issues.push((i, overlap(locality)));
            continue;
        }
        let parts: Vec<&str> = locality.splitn(3, '/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            issues.push((
                i,
                format!("locality {locality:?} must not have an empty region, zone or subzone"),
            ));
            continue;
        }
        let conflict = match parts.as_slice() {
            [region] => {
                let taken = seen.contains_key(region);
                seen.entry(region)
                    .or_default()
                    .entry("*")
                    .or_default()
                    .insert("*");
                taken
            }
            [region, zone] => {
                let zones = seen.entry(region).or_default();
                let taken = zones.contains_key("*") || zones.contains_key(zone);
                zones.entry(zone).or_default().insert("*");
                taken
            }
            [region, zone, subzone] => {
                let zones = seen.entry(region).or_default();
                let subzones = zones.entry(zone).or_default();
                let taken = subzones.contains("*") || !subzones.insert(subzone);
                taken || zones.contains_key("*")
            }
            _ => false,
        };
        if conflict {
            issues.push((i, overlap(locality)));
        }
    }
    issues
}

fn validate_outlier_detection(cx: &mut Checker, outlier: &OutlierDetection) {
    if outlier.consecutive_errors != 0 {
        cx.warning_at(
            "consecutiveErrors",
            "consecutiveErrors is deprecated; use consecutiveGatewayErrors or consecutive5xxErrors",
        );
    }
    if !outlier.split_external_local_origin_errors
        && outlier.consecutive_local_origin_failures.unwrap_or(0) > 0
    {
        cx.error_at(
            "consecutiveLocalOriginFailures",
            "consecutiveLocalOriginFailures only applies with splitExternalLocalOriginErrors: true",
        );
    }
    if let Some(d) = outlier.interval {
        cx.field("interval", |cx| check_duration(cx, d));
    }
    if let Some(d) = outlier.base_ejection_time {
        cx.field("baseEjectionTime", |cx| check_duration(cx, d));
    }
    cx.field("maxEjectionPercent", |cx| {
        check_percent(cx, f64::from(outlier.max_ejection_percent))
    });
    cx.field("minHealthPercent", |cx| {
        check_percent(cx, f64::from(outlier.min_health_percent))
    });
    cx.each(
        "outlierDetectionHttpErrorCodes",
        &outlier.outlier_detection_http_error_codes,
        |cx, &code| {
            if !(100..=599).contains(&code) {
                cx.error(format!(
                    "HTTP status code {code} must be in the range 100..599"
                ));
            }
        },
    );
}

/// Checks connection pool settings; also used for Sidecar inbound pools.
pub(crate) fn validate_connection_pool(cx: &mut Checker, pool: &ConnectionPoolSettings) {
    if pool.tcp.is_none() && pool.http.is_none() {
        cx.error(
            "connection pool must set tcp or http settings; remove it if it is meant to be empty",
        );
        return;
    }
    if let Some(http) = &pool.http {
        cx.field("http", |cx| {
            for (name, value) in [
                ("http1MaxPendingRequests", http.http1_max_pending_requests),
                ("http2MaxRequests", http.http2_max_requests),
                ("maxRequestsPerConnection", http.max_requests_per_connection),
                ("maxRetries", http.max_retries),
                ("maxConcurrentStreams", http.max_concurrent_streams),
            ] {
                check_non_negative(cx, name, value);
            }
            if let Some(d) = http.idle_timeout {
                cx.field("idleTimeout", |cx| check_duration(cx, d));
            }
            if http.h2_upgrade_policy == H2UpgradePolicy::Upgrade && http.use_client_protocol {
                cx.error_at(
                    "useClientProtocol",
                    "useClientProtocol cannot be true when h2UpgradePolicy is UPGRADE",
                );
            }
            if let Some(ka) = &http.http2_keep_alive {
                cx.field("http2KeepAlive", |cx| {
                    check_required_duration(cx, "interval", ka.interval);
                    check_required_duration(cx, "timeout", ka.timeout);
                });
            }
        });
    }
    if let Some(tcp) = &pool.tcp {
        cx.field("tcp", |cx| {
            check_non_negative(cx, "maxConnections", tcp.max_connections);
            if let Some(d) = tcp.connect_timeout {
                cx.field("connectTimeout", |cx| check_duration(cx, d));
            }
            if let Some(d) = tcp.max_connection_duration {
                cx.field("maxConnectionDuration", |cx| check_duration(cx, d));
            }
            if let Some(d) = tcp.idle_timeout {
                cx.field("idleTimeout", |cx| check_timeout(cx, d));
            }
            if let Some(ka) = &tcp.tcp_keepalive {
                cx.field("tcpKeepalive", |cx| {
                    if let Some(d) = ka.time {
                        cx.field("time", |cx| check_duration(cx, d));
                    }
                    if let Some(d) = ka.interval {
                        cx.field("interval", |cx| check_duration(cx, d));
                    }
                });
            }
        });
    }
}

fn check_non_negative(cx: &mut Checker, name: &str, value: i32) {
    if value < 0 {
        cx.error_at(name, format!("{name} is {value}; it must not be negative"));
    }
}

fn check_required_duration(cx: &mut Checker, name: &str, d: Option<Duration>) {
    cx.field(name, |cx| match d {
        None => cx.error(format!("{name} is required")),
        Some(d) => {
            check_duration(cx, d);
        }
    });
}

fn validate_client_tls(cx: &mut Checker, tls: &ClientTlsSettings) {
    let credential = !tls.credential_name.is_empty();
    if tls.insecure_skip_verify == Some(true) {
        let conflict = match tls.mode {
            ClientTlsMode::Simple => {
                !tls.ca_certificates.is_empty() || credential || !tls.subject_alt_names.is_empty()
            }
            ClientTlsMode::Mutual => {
                !tls.ca_certificates.is_empty() || !tls.subject_alt_names.is_empty()
            }
            _ => false,
        };
        if conflict {
            cx.error_at(
                "insecureSkipVerify",
                "insecureSkipVerify: true disables server verification, so caCertificates, \
                 subjectAltNames (and credentialName in SIMPLE mode) cannot be set with it",
            );
        }
    }
    let mode_uses_certs = matches!(tls.mode, ClientTlsMode::Simple | ClientTlsMode::Mutual);
    if mode_uses_certs && credential {
        if !tls.client_certificate.is_empty()
            || !tls.private_key.is_empty()
            || !tls.ca_certificates.is_empty()
            || !tls.ca_crl.is_empty()
        {
            cx.error_at(
                "credentialName",
                "credentialName already supplies the certificates; remove clientCertificate, \
                 privateKey, caCertificates and caCrl",
            );
        }
        return;
    }
    if tls.mode == ClientTlsMode::Mutual {
        if tls.client_certificate.is_empty() {
            cx.error_at(
                "clientCertificate",
                "MUTUAL mode requires clientCertificate (or a credentialName)",
            );
        }
        if tls.private_key.is_empty() {
            cx.error_at(
                "privateKey",
                "MUTUAL mode requires privateKey (or a credentialName)",
            );
        }
    }
}

fn validate_tunnel(cx: &mut Checker, tunnel: &TunnelSettings) {
    if !matches!(tunnel.protocol.as_str(), "" | "CONNECT" | "POST") {
        cx.error_at(
            "protocol",
            format!(
                "tunnel protocol {:?} must be \"CONNECT\" or \"POST\"",
                tunnel.protocol
            ),
        );
    }
    cx.field("targetHost", |cx| {
        let host = tunnel.target_host.as_str();
        if host.is_empty() {
            cx.error("targetHost is required");
        } else if !is_istio_fqdn(host) && host.parse::<std::net::IpAddr>().is_err() {
            cx.error(format!(
                "targetHost {host:?} must be a fully qualified domain name or an IP address"
            ));
        }
    });
    cx.field("targetPort", |cx| check_port(cx, tunnel.target_port));
}

/// Istio's `ValidateFQDN`: DNS labels, and a top-level label that is not all digits.
pub(crate) fn is_istio_fqdn(host: &str) -> bool {
    is_fqdn(host) && !has_numeric_tld(host)
}

/// Whether the last label of `host` is all digits, which Istio rejects in host names (it is
/// more likely a mistyped IP address).
pub(crate) fn has_numeric_tld(host: &str) -> bool {
    let tld = host
        .strip_suffix('.')
        .unwrap_or(host)
        .rsplit('.')
        .next()
        .unwrap_or("");
    !tld.is_empty() && tld.bytes().all(|b| b.is_ascii_digit())
}

/// Like [`Checker::each`], but items keep the slice's lifetime, so the closure can collect
/// borrowed keys (for duplicate checks) across items.
pub(crate) fn each_item<'a, T>(
    cx: &mut Checker,
    name: &str,
    items: &'a [T],
    mut f: impl FnMut(&mut Checker, &'a T),
) {
    cx.field(name, |cx| {
        for (i, item) in items.iter().enumerate() {
            cx.index(i, |cx| f(cx, item));
        }
    });
}

/// Whether `v` is its type's default: proto3 scalars at zero are not written out.
pub(crate) fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Picks the one set member of a protobuf `oneof`; several set at once is an error.
fn one_of<T>(members: Vec<(&'static str, Option<T>)>) -> Result<Option<T>, String> {
    let set: Vec<&str> = members
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(name, _)| *name)
        .collect();
    if set.len() > 1 {
        let all: Vec<&str> = members.iter().map(|(name, _)| *name).collect();
        return Err(format!(
            "only one of {} may be set, but found {}",
            all.join(", "),
            set.join(" and ")
        ));
    }
    Ok(members.into_iter().find_map(|(_, v)| v))
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawLoadBalancerSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    simple: Option<SimpleLb>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    consistent_hash: Option<ConsistentHashLb>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    locality_lb_setting: Option<LocalityLbSetting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    zone_aware_lb_setting: Option<ZoneAwareLbSetting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    warmup_duration_secs: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    warmup: Option<WarmupConfiguration>,
}

impl TryFrom<RawLoadBalancerSettings> for LoadBalancerSettings {
    type Error = String;

    fn try_from(raw: RawLoadBalancerSettings) -> Result<Self, Self::Error> {
        let policy = one_of(vec![
            ("simple", raw.simple.map(LbPolicy::Simple)),
            (
                "consistentHash",
                raw.consistent_hash.map(LbPolicy::ConsistentHash),
            ),
        ])?;
        Ok(Self {
            policy,
            locality_lb_setting: raw.locality_lb_setting,
            zone_aware_lb_setting: raw.zone_aware_lb_setting,
            warmup_duration_secs: raw.warmup_duration_secs,
            warmup: raw.warmup,
        })
    }
}

impl From<LoadBalancerSettings> for RawLoadBalancerSettings {
    fn from(lb: LoadBalancerSettings) -> Self {
        let mut raw = RawLoadBalancerSettings {
            locality_lb_setting: lb.locality_lb_setting,
            zone_aware_lb_setting: lb.zone_aware_lb_setting,
            warmup_duration_secs: lb.warmup_duration_secs,
            warmup: lb.warmup,
            ..Default::default()
        };
        match lb.policy {
            Some(LbPolicy::Simple(s)) => raw.simple = Some(s),
            Some(LbPolicy::ConsistentHash(h)) => raw.consistent_hash = Some(h),
            None => {}
        }
        raw
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConsistentHashLb {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http_header_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http_cookie: Option<HttpCookie>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    use_source_ip: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http_query_parameter_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ring_hash: Option<RingHash>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    maglev: Option<Maglev>,
    #[serde(default, skip_serializing_if = "is_default")]
    minimum_ring_size: u64,
}

impl TryFrom<RawConsistentHashLb> for ConsistentHashLb {
    type Error = String;

    fn try_from(raw: RawConsistentHashLb) -> Result<Self, Self::Error> {
        let hash_key = one_of(vec![
            (
                "httpHeaderName",
                raw.http_header_name.map(HashKey::HttpHeaderName),
            ),
            ("httpCookie", raw.http_cookie.map(HashKey::HttpCookie)),
            ("useSourceIp", raw.use_source_ip.map(HashKey::UseSourceIp)),
            (
                "httpQueryParameterName",
                raw.http_query_parameter_name
                    .map(HashKey::HttpQueryParameterName),
            ),
        ])?;
        let hash_algorithm = one_of(vec![
            ("ringHash", raw.ring_hash.map(HashAlgorithm::RingHash)),
            ("maglev", raw.maglev.map(HashAlgorithm::Maglev)),
        ])?;
        Ok(Self {
            hash_key,
            hash_algorithm,
            minimum_ring_size: raw.minimum_ring_size,
        })
    }
}

impl From<ConsistentHashLb> for RawConsistentHashLb {
    fn from(hash: ConsistentHashLb) -> Self {
        let mut raw = RawConsistentHashLb {
            minimum_ring_size: hash.minimum_ring_size,
            ..Default::default()
        };
        match hash.hash_key {
            Some(HashKey::HttpHeaderName(h)) => raw.http_header_name = Some(h),
            Some(HashKey::HttpCookie(c)) => raw.http_cookie = Some(c),
            Some(HashKey::UseSourceIp(b)) => raw.use_source_ip = Some(b),
            Some(HashKey::HttpQueryParameterName(q)) => raw.http_query_parameter_name = Some(q),
            None => {}
        }
        match hash.hash_algorithm {
            Some(HashAlgorithm::RingHash(r)) => raw.ring_hash = Some(r),
            Some(HashAlgorithm::Maglev(m)) => raw.maglev = Some(m),
            None => {}
        }
        raw
    }
}

#[cfg(test)]
mod tests;
