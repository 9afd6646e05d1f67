//! Clusters from services and DestinationRules, shaped the way istiod shapes them
//! (`pilot/pkg/networking/core/cluster*.go`), within what weft's proxy accepts.
//!
//! Per visible service port: `outbound|<port>||<host>` and one `outbound|<port>|<subset>|<host>`
//! per subset of the DestinationRule that applies. Discovery follows the ServiceEntry's
//! resolution: `STATIC` → EDS, `DNS` → STRICT_DNS, `DNS_ROUND_ROBIN` → LOGICAL_DNS (both with an
//! inline load assignment), `NONE` → ORIGINAL_DST. Then the traffic policy: connection pool
//! (circuit breakers with Istio's unlimited defaults, connect and idle timeouts, HTTP/2),
//! outlier detection, load balancer (including locality settings) and client TLS.
//!
//! Istio settings weft's proxy has no field for are left out, each noted where it would apply:
//! `warmup`/`warmupDurationSecs` (slow start), `tcp.tcpKeepalive`
//! (`upstream_connection_options`), `tcp.maxConnectionDuration`, `http.maxConcurrentStreams`
//! and `http.http2KeepAlive` (HTTP/2 options), `retryBudget`, `outlierDetectionHttpErrorCodes`,
//! `respect_dns_ttl` on DNS clusters, `zoneAwareLbSetting`, `tunnel` and `proxyProtocol`.

mod policy;
mod tls;

use std::collections::HashMap;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster, OutlierDetection as PbOutlierDetection,
    circuit_breakers::Thresholds,
    cluster::{
        ClusterDiscoveryType, CommonLbConfig, DiscoveryType, DnsLookupFamily, EdsClusterConfig,
        LbConfig, LbPolicy, MaglevLbConfig, RingHashLbConfig,
        common_lb_config::{LocalityConfigSpecifier, LocalityWeightedLbConfig},
    },
};
use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, Http1ProtocolOptions, Http2ProtocolOptions,
    HttpProtocolOptions as CommonHttpProtocolOptions, config_source,
};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions,
    http_protocol_options::{
        ExplicitHttpConfig, UpstreamProtocolOptions, UseDownstreamHttpConfig,
        explicit_http_config::ProtocolConfig,
    },
};
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::{Any, Duration as PbDuration, UInt32Value, UInt64Value};
use prost::Message;
use weft_api::Loaded;
use weft_api::networking::destination_rule::{
    ConnectionPoolSettings, DestinationRule, H2UpgradePolicy, HashAlgorithm, LbPolicy as IstioLb,
    OutlierDetection, SimpleLb,
};
use weft_registry::{Port, Protocol, Resolution, Service};

use super::Scope;
use super::endpoint::{self, AddressKind};
use super::scope::InboundPort;
use crate::naming::{self, BLACK_HOLE_CLUSTER, PASSTHROUGH_CLUSTER};
use crate::node::ProxyKind;

pub(crate) use policy::Policy;

/// The key of `typed_extension_protocol_options` (and the type) for upstream HTTP settings.
pub const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
/// Istio's DNS refresh rate for DNS clusters (MeshConfig `dnsRefreshRate` default).
const DNS_REFRESH_RATE: Duration = Duration::from_secs(60);
/// The idle timeout istiod gives `PassthroughCluster`.
const PASSTHROUGH_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Outbound clusters: every visible service port, once plain and once per DestinationRule
/// subset, plus `BlackHoleCluster` and `PassthroughCluster`. Services are in the scope's order
/// (by host name), ports in declaration order, subsets in the rule's order.
pub fn outbound_clusters(scope: &Scope<'_>) -> Vec<Cluster> {
    let mut out = Vec::new();
    for service in outbound_services(scope) {
        let rule = scope.destination_rule(&service.hostname, &service.namespace);
        for port in &service.ports {
            // Istio builds no clusters for UDP ports: they are not proxied.
            if port.protocol == Protocol::Udp {
                continue;
            }
            out.extend(service_cluster(scope, service, port, rule, ""));
            for subset in rule
                .map(|(_, dr)| dr.subsets.as_slice())
                .unwrap_or_default()
            {
                out.extend(service_cluster(scope, service, port, rule, &subset.name));
            }
        }
    }
    out.push(black_hole(scope));
    out.push(passthrough(scope));
    out
}

/// `inbound|<port>||` clusters to the proxy's own application: STATIC, the port's endpoint as
/// the single endpoint, Istio's default circuit breakers, HTTP/2 upstream for HTTP/2 and gRPC
/// ports.
pub fn inbound_clusters(scope: &Scope<'_>, ports: &[InboundPort]) -> Vec<Cluster> {
    ports
        .iter()
        .map(|p| {
            let name = naming::inbound_cluster(p.port);
            let mut c = Cluster {
                name: name.clone(),
                cluster_discovery_type: Some(ClusterDiscoveryType::Type(
                    DiscoveryType::Static as i32,
                )),
                connect_timeout: Some(pb_duration(scope.mesh.options.connect_timeout)),
                common_lb_config: Some(CommonLbConfig::default()),
                circuit_breakers: Some(circuit_breakers(None)),
                load_assignment: Some(endpoint::single_endpoint(&name, p.endpoint)),
                ..Default::default()
            };
            if Protocol::parse(&p.protocol).is_http2() {
                set_http_options(&mut c, &http2_options(None));
            }
            c
        })
        .collect()
}

/// The services outbound clusters are built for: the visible ones, one per host name (a
/// service in the proxy's own namespace wins over same-named ones elsewhere, then the first in
/// the scope's order), so cluster names stay unique.
pub(crate) fn outbound_services<'a>(scope: &Scope<'a>) -> Vec<&'a Service> {
    let own = scope.node.namespace.as_str();
    let mut out: Vec<&Service> = Vec::with_capacity(scope.services.len());
    for s in &scope.services {
        match out.iter_mut().find(|o| o.hostname == s.hostname) {
            Some(existing) => {
                if existing.namespace != own && s.namespace == own {
                    *existing = s;
                }
            }
            None => out.push(s),
        }
    }
    out
}

/// The merged traffic policy and subset labels for an outbound cluster of `service`.
pub(crate) fn cluster_policy<'a>(
    rule: Option<(&'a Loaded, &'a DestinationRule)>,
    port: u16,
    subset: &str,
) -> Policy<'a> {
    Policy::of(rule.map(|(_, dr)| dr), port, subset)
}

/// How a cluster finds its endpoints, before the load balancer may turn it into ORIGINAL_DST.
fn discovery(resolution: Resolution) -> Option<DiscoveryType> {
    match resolution {
        Resolution::Static => Some(DiscoveryType::Eds),
        Resolution::Dns => Some(DiscoveryType::StrictDns),
        Resolution::DnsRoundRobin => Some(DiscoveryType::LogicalDns),
        Resolution::None => Some(DiscoveryType::OriginalDst),
        // istiod builds a dynamic forward proxy cluster (`envoy.clusters.dynamic_forward_proxy`);
        // weft's proxy has no such cluster type, so no cluster is built.
        Resolution::DynamicDns => None,
    }
}

/// Which upstream HTTP protocol a cluster uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upstream {
    /// HTTP/2 (`explicit_http_config.http2_protocol_options`).
    Http2,
    /// Whatever the downstream used (`use_downstream_protocol_config`).
    Downstream,
}

fn service_cluster(
    scope: &Scope<'_>,
    service: &Service,
    port: &Port,
    rule: Option<(&Loaded, &DestinationRule)>,
    subset: &str,
) -> Option<Cluster> {
    let name = naming::outbound_cluster(port.number, subset, &service.hostname);
    let policy = cluster_policy(rule, port.number, subset);
    let passthrough_lb = matches!(
        policy.load_balancer.and_then(|lb| lb.policy.as_ref()),
        Some(IstioLb::Simple(SimpleLb::Passthrough))
    );
    let mut kind = discovery(service.resolution)?;
    if passthrough_lb {
        kind = DiscoveryType::OriginalDst;
    }

    let mut c = Cluster {
        name: name.clone(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(kind as i32)),
        common_lb_config: Some(CommonLbConfig::default()),
        connect_timeout: Some(pb_duration(scope.mesh.options.connect_timeout)),
        ..Default::default()
    };
    match kind {
        DiscoveryType::StrictDns | DiscoveryType::LogicalDns => {
            c.dns_lookup_family = dns_lookup_family(scope) as i32;
            #[allow(deprecated, reason = "Istio sets the cluster-level dns_refresh_rate")]
            {
                c.dns_refresh_rate = Some(pb_duration(DNS_REFRESH_RATE));
            }
            let labels = subset_labels(rule, subset);
            let eps = match &labels {
                Some(l) => scope
                    .mesh
                    .registry
                    .subset_endpoints(service, port.number, l),
                None => scope.mesh.registry.endpoints(service, port.number),
            };
            let mut la = endpoint::load_assignment(scope, &name, &eps, AddressKind::Dns, &policy);
            if kind == DiscoveryType::LogicalDns {
                keep_first_endpoint(&mut la);
            }
            // Like istiod, a DNS cluster without endpoints is not built.
            if la.endpoints.iter().all(|l| l.lb_endpoints.is_empty()) {
                return None;
            }
            c.load_assignment = Some(la);
        }
        DiscoveryType::Eds => {
            // istiod also sets `service_name` to the cluster name; Envoy uses the cluster name
            // when it is empty, and weft's proxy rejects the field, so it stays empty.
            c.eds_cluster_config = Some(EdsClusterConfig {
                service_name: String::new(),
                eds_config: Some(ConfigSource {
                    config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
                        AggregatedConfigSource::default(),
                    )),
                    initial_fetch_timeout: Some(PbDuration::default()),
                    resource_api_version: ApiVersion::V3 as i32,
                    ..Default::default()
                }),
            });
        }
        _ => {}
    }

    // Upstream protocol: set from the port, then the connection pool may upgrade to HTTP/2 or
    // ask for the client's protocol.
    let mut upstream = if port.protocol.is_http2() {
        Some(Upstream::Http2)
    } else if port.protocol == Protocol::Unsupported && scope.node.kind == ProxyKind::Sidecar {
        // A sniffed port: forward with whatever protocol the client used.
        Some(Upstream::Downstream)
    } else {
        None
    };
    if upstream.is_none() && should_h2_upgrade(policy.connection_pool) {
        upstream = Some(Upstream::Http2);
    }
    let http = policy.connection_pool.and_then(|p| p.http.as_ref());
    if http.is_some_and(|h| h.use_client_protocol) {
        upstream = Some(Upstream::Downstream);
    }

    apply_connection_pool(&mut c, policy.connection_pool, upstream);
    if let Some(o) = policy.outlier_detection {
        apply_outlier_detection(&mut c, o);
    }
    apply_load_balancer(&mut c, &policy);

    if let Some(tls_settings) = policy.tls {
        let identities = service_identities(scope, service);
        c.transport_socket = tls::transport_socket(
            tls_settings,
            tls::TlsTarget {
                cluster_name: &name,
                http2: upstream == Some(Upstream::Http2),
                service_identities: &identities,
                sidecar_without_selector: scope.node.kind == ProxyKind::Sidecar
                    && rule.is_none_or(|(_, dr)| dr.workload_selector.is_none()),
            },
        );
    }
    Some(c)
}

/// The labels of `subset` in the rule; `None` for the plain cluster. A subset the rule does not
/// define selects nothing.
pub(crate) fn subset_labels(
    rule: Option<(&Loaded, &DestinationRule)>,
    subset: &str,
) -> Option<weft_api::common::Labels> {
    if subset.is_empty() {
        return None;
    }
    let found = rule.and_then(|(_, dr)| dr.subsets.iter().find(|s| s.name == subset));
    Some(match found {
        Some(s) => s.labels.clone(),
        // A label no workload can carry, so an unknown subset has no endpoints.
        None => [(String::from("\u{0}unknown-subset"), subset.to_owned())]
            .into_iter()
            .collect(),
    })
}

/// LOGICAL_DNS resolves one name: istiod (and weft's proxy) accept a single endpoint.
fn keep_first_endpoint(la: &mut ClusterLoadAssignment) {
    let first = la.endpoints.iter().position(|l| !l.lb_endpoints.is_empty());
    if let Some(i) = first {
        let mut l = la.endpoints.swap_remove(i);
        l.lb_endpoints.truncate(1);
        l.load_balancing_weight = None;
        l.priority = 0;
        la.endpoints = vec![l];
    }
}

/// Istio's `SelectDNSLookupFamily`: IPv4 only for IPv4 proxies, IPv6 only for IPv6 ones,
/// both for dual-stack ones.
fn dns_lookup_family(scope: &Scope<'_>) -> DnsLookupFamily {
    let v4 = scope.node.ips.iter().any(|ip| ip.is_ipv4());
    let v6 = scope.node.ips.iter().any(|ip| ip.is_ipv6());
    match (v4, v6) {
        (true, true) => DnsLookupFamily::All,
        (false, true) => DnsLookupFamily::V6Only,
        _ => DnsLookupFamily::V4Only,
    }
}

/// Istio's `shouldH2Upgrade`: the pool's `h2UpgradePolicy` decides (unless the client protocol
/// is used), else the mesh default, which is `DO_NOT_UPGRADE`.
fn should_h2_upgrade(pool: Option<&ConnectionPoolSettings>) -> bool {
    if let Some(http) = pool.and_then(|p| p.http.as_ref()) {
        if http.use_client_protocol {
            return false;
        }
        match http.h2_upgrade_policy {
            H2UpgradePolicy::Upgrade => return true,
            H2UpgradePolicy::DoNotUpgrade => return false,
            H2UpgradePolicy::Default => {}
        }
    }
    // A mesh-wide `h2UpgradePolicy: UPGRADE` (which would upgrade declared HTTP ports) is not
    // among weft's mesh options; Istio's default is DO_NOT_UPGRADE.
    false
}

/// Istio's default thresholds: every limit at its maximum, so Envoy's low defaults (notably 3
/// concurrent retries) do not cause 503s during endpoint churn.
fn default_thresholds() -> Thresholds {
    let max = Some(UInt32Value { value: u32::MAX });
    Thresholds {
        max_connections: max,
        max_pending_requests: max,
        max_requests: max,
        max_retries: max,
        track_remaining: true,
        ..Default::default()
    }
}

fn circuit_breakers(pool: Option<&ConnectionPoolSettings>) -> CircuitBreakers {
    let mut t = default_thresholds();
    let positive = |v: i32| u32::try_from(v).ok().filter(|v| *v > 0);
    if let Some(http) = pool.and_then(|p| p.http.as_ref()) {
        if let Some(v) = positive(http.http2_max_requests) {
            t.max_requests = Some(UInt32Value { value: v });
        }
        if let Some(v) = positive(http.http1_max_pending_requests) {
            t.max_pending_requests = Some(UInt32Value { value: v });
        }
        if let Some(v) = positive(http.max_retries) {
            t.max_retries = Some(UInt32Value { value: v });
        }
    }
    if let Some(tcp) = pool.and_then(|p| p.tcp.as_ref())
        && let Some(v) = positive(tcp.max_connections)
    {
        t.max_connections = Some(UInt32Value { value: v });
    }
    // `retryBudget` would go into `thresholds.retry_budget`, which weft's proxy does not read.
    CircuitBreakers {
        thresholds: vec![t],
        ..Default::default()
    }
}

/// Istio's `applyConnectionPool` (which always runs, with an empty pool when none is set).
fn apply_connection_pool(
    c: &mut Cluster,
    pool: Option<&ConnectionPoolSettings>,
    upstream: Option<Upstream>,
) {
    c.circuit_breakers = Some(circuit_breakers(pool));
    let http = pool.and_then(|p| p.http.as_ref());
    let tcp = pool.and_then(|p| p.tcp.as_ref());
    if let Some(t) = tcp.and_then(|t| t.connect_timeout) {
        c.connect_timeout = Some(pb_duration(t.get()));
    }
    // `tcp.tcpKeepalive` maps to `upstream_connection_options.tcp_keepalive` and
    // `tcp.maxConnectionDuration` to `max_connection_duration`; weft's proxy reads neither, so
    // they are not emitted.
    let idle = http
        .and_then(|h| h.idle_timeout)
        .or_else(|| tcp.and_then(|t| t.idle_timeout));
    let per_connection = http
        .and_then(|h| u32::try_from(h.max_requests_per_connection).ok())
        .filter(|v| *v > 0);
    let common = (idle.is_some() || per_connection.is_some()).then(|| CommonHttpProtocolOptions {
        idle_timeout: idle.map(|d| pb_duration(d.get())),
        max_requests_per_connection: per_connection.map(|value| UInt32Value { value }),
        ..Default::default()
    });
    if upstream.is_none() && common.is_none() {
        return;
    }
    let mut options = match upstream {
        Some(Upstream::Http2) => http2_options(common),
        Some(Upstream::Downstream) => downstream_options(common),
        None => HttpProtocolOptions {
            common_http_protocol_options: common,
            ..Default::default()
        },
    };
    // `http.maxConcurrentStreams` and `http.http2KeepAlive` set fields of the HTTP/2 options
    // weft's proxy does not read; they are left out.
    if options.upstream_protocol_options.is_none() {
        // Envoy needs a protocol selection alongside common options; HTTP/1.1 is its default.
        options.upstream_protocol_options = Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::HttpProtocolOptions(
                    Http1ProtocolOptions::default(),
                )),
            },
        ));
    }
    set_http_options(c, &options);
}

fn http2_options(common: Option<CommonHttpProtocolOptions>) -> HttpProtocolOptions {
    HttpProtocolOptions {
        common_http_protocol_options: common,
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(
                    Http2ProtocolOptions::default(),
                )),
            },
        )),
        ..Default::default()
    }
}

fn downstream_options(common: Option<CommonHttpProtocolOptions>) -> HttpProtocolOptions {
    HttpProtocolOptions {
        common_http_protocol_options: common,
        upstream_protocol_options: Some(UpstreamProtocolOptions::UseDownstreamProtocolConfig(
            UseDownstreamHttpConfig {
                http_protocol_options: Some(Http1ProtocolOptions::default()),
                http2_protocol_options: Some(Http2ProtocolOptions::default()),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

fn set_http_options(c: &mut Cluster, options: &HttpProtocolOptions) {
    let mut map = HashMap::with_capacity(1);
    map.insert(
        HTTP_PROTOCOL_OPTIONS.to_owned(),
        Any {
            type_url: format!("type.googleapis.com/{HTTP_PROTOCOL_OPTIONS}"),
            value: options.encode_to_vec(),
        },
    );
    c.typed_extension_protocol_options = map;
}

/// Istio's `applyOutlierDetection`: success-rate ejection off, each consecutive-error rule
/// enforced at 100% when its threshold is positive, and the panic threshold set to
/// `minHealthPercent` (0, i.e. no panic mode, when unset).
fn apply_outlier_detection(c: &mut Cluster, o: &OutlierDetection) {
    let enforce = |v: u32| {
        Some(UInt32Value {
            value: if v > 0 { 100 } else { 0 },
        })
    };
    let mut out = PbOutlierDetection {
        enforcing_success_rate: Some(UInt32Value { value: 0 }),
        ..Default::default()
    };
    if let Some(v) = o.consecutive_5xx_errors {
        out.consecutive_5xx = Some(UInt32Value { value: v });
        out.enforcing_consecutive_5xx = enforce(v);
    }
    if let Some(v) = o.consecutive_gateway_errors {
        out.consecutive_gateway_failure = Some(UInt32Value { value: v });
        out.enforcing_consecutive_gateway_failure = enforce(v);
    }
    out.interval = o.interval.map(|d| pb_duration(d.get()));
    out.base_ejection_time = o.base_ejection_time.map(|d| pb_duration(d.get()));
    if let Some(v) = u32::try_from(o.max_ejection_percent)
        .ok()
        .filter(|v| *v > 0)
    {
        out.max_ejection_percent = Some(UInt32Value { value: v });
    }
    if o.split_external_local_origin_errors {
        out.split_external_local_origin_errors = true;
        if let Some(v) = o.consecutive_local_origin_failures.filter(|v| *v > 0) {
            out.consecutive_local_origin_failure = Some(UInt32Value { value: v });
            out.enforcing_consecutive_local_origin_failure = Some(UInt32Value { value: 100 });
        }
        // istiod also sets `enforcing_local_origin_success_rate: 0`; weft's proxy does not
        // implement local-origin success-rate ejection at all, and rejects the field.
    }
    // `outlierDetectionHttpErrorCodes` would need `HttpProtocolOptions.outlier_detection`,
    // which weft's proxy does not read.
    c.outlier_detection = Some(out);
    if o.min_health_percent >= 0 {
        let common = c.common_lb_config.get_or_insert_with(Default::default);
        common.healthy_panic_threshold = Some(Percent {
            value: f64::from(o.min_health_percent),
        });
    }
}

/// Istio's `applyLoadBalancer`: locality settings, then the algorithm.
fn apply_load_balancer(c: &mut Cluster, policy: &Policy<'_>) {
    let original_dst = matches!(
        c.cluster_discovery_type,
        Some(ClusterDiscoveryType::Type(t)) if t == DiscoveryType::OriginalDst as i32
    );
    if original_dst {
        c.lb_policy = LbPolicy::ClusterProvided as i32;
        c.load_assignment = None;
        return;
    }
    if let Some(setting) = policy.locality_setting() {
        let failover = policy.failover_enabled()
            && (!setting.failover.is_empty() || !setting.failover_priority.is_empty());
        if failover || !setting.distribute.is_empty() {
            let common = c.common_lb_config.get_or_insert_with(Default::default);
            common.locality_config_specifier = Some(
                LocalityConfigSpecifier::LocalityWeightedLbConfig(LocalityWeightedLbConfig {}),
            );
        }
    }
    let lb = policy.load_balancer;
    // `warmup` / `warmupDurationSecs` become `slow_start_config` in the round-robin or
    // least-request config; weft's proxy has no slow start, so they are not emitted.
    c.lb_policy = match lb.and_then(|l| l.policy.as_ref()) {
        Some(IstioLb::Simple(SimpleLb::Random)) => LbPolicy::Random,
        Some(IstioLb::Simple(SimpleLb::RoundRobin)) => LbPolicy::RoundRobin,
        Some(IstioLb::ConsistentHash(hash)) => {
            match &hash.hash_algorithm {
                Some(HashAlgorithm::Maglev(m)) => {
                    if m.table_size != 0 {
                        c.lb_config = Some(LbConfig::MaglevLbConfig(MaglevLbConfig {
                            table_size: Some(UInt64Value {
                                value: m.table_size,
                            }),
                        }));
                    }
                    c.lb_policy = LbPolicy::Maglev as i32;
                    return;
                }
                Some(HashAlgorithm::RingHash(r)) => {
                    if r.minimum_ring_size != 0 {
                        c.lb_config = Some(ring_hash(r.minimum_ring_size));
                    }
                }
                None => {
                    // The deprecated top-level size, else Envoy's default of 1024.
                    let size = match hash.minimum_ring_size {
                        0 => 1024,
                        n => n,
                    };
                    c.lb_config = Some(ring_hash(size));
                }
            }
            LbPolicy::RingHash
        }
        // LEAST_CONN, LEAST_REQUEST and the default (istiod's default is LEAST_REQUEST).
        _ => LbPolicy::LeastRequest,
    } as i32;
}

fn ring_hash(minimum: u64) -> LbConfig {
    LbConfig::RingHashLbConfig(RingHashLbConfig {
        minimum_ring_size: Some(UInt64Value { value: minimum }),
        ..Default::default()
    })
}

/// The identities a service's servers present: the ServiceEntry's `subjectAltNames` and the
/// SPIFFE ids of its workloads' service accounts. The trust domain is taken to be the mesh's
/// domain suffix (`cluster.local`), Istio's default trust domain.
fn service_identities(scope: &Scope<'_>, service: &Service) -> Vec<String> {
    let mut out = service.subject_alt_names.clone();
    for w in scope.mesh.registry.workloads_of(service) {
        if w.service_account.is_empty() {
            continue;
        }
        let id = format!(
            "spiffe://{}/ns/{}/sa/{}",
            scope.mesh.options.domain_suffix, w.namespace, w.service_account
        );
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// `BlackHoleCluster`: STATIC without endpoints, so everything routed to it fails.
fn black_hole(scope: &Scope<'_>) -> Cluster {
    Cluster {
        name: BLACK_HOLE_CLUSTER.to_owned(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        connect_timeout: Some(pb_duration(scope.mesh.options.connect_timeout)),
        lb_policy: LbPolicy::RoundRobin as i32,
        ..Default::default()
    }
}

/// `PassthroughCluster`: ORIGINAL_DST, the client's HTTP protocol upstream, a 5-minute idle
/// timeout and Istio's default circuit breakers.
fn passthrough(scope: &Scope<'_>) -> Cluster {
    let mut c = Cluster {
        name: PASSTHROUGH_CLUSTER.to_owned(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(
            DiscoveryType::OriginalDst as i32,
        )),
        connect_timeout: Some(pb_duration(scope.mesh.options.connect_timeout)),
        lb_policy: LbPolicy::ClusterProvided as i32,
        circuit_breakers: Some(circuit_breakers(None)),
        ..Default::default()
    };
    set_http_options(
        &mut c,
        &downstream_options(Some(CommonHttpProtocolOptions {
            idle_timeout: Some(pb_duration(PASSTHROUGH_IDLE_TIMEOUT)),
            ..Default::default()
        })),
    );
    c
}

/// A protobuf duration.
pub(crate) fn pb_duration(d: Duration) -> PbDuration {
    PbDuration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod tests;

#[cfg(test)]
#[path = "destination_rule_tests.rs"]
mod destination_rule_tests;
