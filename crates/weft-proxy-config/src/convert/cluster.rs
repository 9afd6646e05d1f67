//! Clusters: discovery, endpoints, load balancing, circuit breakers, outlier detection, health
//! checks, upstream TLS and protocol.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3 as pb;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as ep;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
use envoy_types::pb::envoy::extensions::upstreams::http::v3 as up;
use weft_proxy_lb::{
    DEFAULT_HEALTHY_PANIC_THRESHOLD, DEFAULT_OVERPROVISIONING_FACTOR, LbConfig, LbPolicy,
    LeastRequestConfig, MaglevConfig, RingHashConfig,
};

use super::listener::{BUFFER_LIMIT, RAW_BUFFER_TYPE, unpack};
use super::{
    Ctx, any_type, at, constraint, duration, duration_or, host_port, invalid, locality, port,
    timeout, tls, unsupported,
};
use crate::{
    ConfigError,
    model::{
        Cluster, ConfiguredHealth, Discovery, DnsLookupFamily, Endpoint, EndpointAddress,
        HealthCheck, HealthCheckKind, LocalityEndpoints, OutlierDetection, Thresholds,
        UpstreamProtocol, UpstreamTls,
    },
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DNS_REFRESH_RATE: Duration = Duration::from_secs(5);
/// weft's default for upstream idle connections (Envoy's is 1 h): below the keep-alive timeout
/// of common servers (5 s for Node.js, Go's is 90 s, nginx 75 s), so weft closes a pooled
/// connection before the server does and never sends a request into a closing connection
/// (Envoy's "503 UC" race).
const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(4);
/// An upstream idle timeout of zero disables it in Envoy; the model has no "never", so it is
/// this long (about 136 years).
const NEVER: Duration = Duration::from_secs(u32::MAX as u64);
const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
const UPSTREAM_TLS_TYPE: &str = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
const ORIGINAL_DST_HEADER: &str = "x-envoy-original-dst-host";

pub(crate) fn convert(c: &pb::Cluster, path: &str, ctx: &Ctx<'_>) -> Result<Cluster, ConfigError> {
    use pb::cluster::{ClusterDiscoveryType as Cdt, DiscoveryType as Dt};
    let resource = format!("cluster {:?}", c.name);
    let resource = resource.as_str();
    let discovery = match &c.cluster_discovery_type {
        None => Discovery::Static,
        Some(Cdt::Type(t)) => match Dt::try_from(*t) {
            Ok(Dt::Static) => Discovery::Static,
            Ok(Dt::StrictDns) => Discovery::StrictDns,
            Ok(Dt::LogicalDns) => Discovery::LogicalDns,
            Ok(Dt::OriginalDst) => Discovery::OriginalDst,
            Ok(Dt::Eds) if ctx.ads => {
                let eds_path = at(path, "eds_cluster_config");
                crate::xds::require_ads(
                    c.eds_cluster_config
                        .as_ref()
                        .and_then(|e| e.eds_config.as_ref()),
                    &at(&eds_path, "eds_config"),
                    resource,
                )?;
                Discovery::Eds
            }
            Ok(Dt::Eds) => {
                return Err(unsupported(
                    at(path, "type"),
                    format!(
                        "unsupported: {resource} type EDS without dynamic_resources.ads_config \
                         (EDS endpoints arrive from a control plane over ADS)"
                    ),
                ));
            }
            Err(_) => return Err(invalid(at(path, "type"), format!("unknown type {t}"))),
        },
        Some(_) => {
            return Err(unsupported(
                at(path, "cluster_type"),
                format!("unsupported: {resource} field \"cluster_type\""),
            ));
        }
    };
    let (lb, original_dst_use_http_header) = lb_config(c, path, resource, discovery)?;
    let localities = localities(c, path, resource, discovery, ctx.eds_assignments)?;
    let (protocol, http_options) = protocol(c, path, resource)?;
    let common_path = http_options.1;
    let http_options = http_options.0;
    #[allow(
        deprecated,
        reason = "the deprecated cluster fields are still read by Envoy 1.40"
    )]
    let max_requests_per_connection = http_options
        .max_requests_per_connection
        .as_ref()
        .or(c.max_requests_per_connection.as_ref())
        .map(|v| v.value);
    #[allow(
        deprecated,
        reason = "dns_refresh_rate is deprecated but Envoy still reads it"
    )]
    let dns_refresh_rate = duration_or(
        c.dns_refresh_rate.as_ref(),
        &at(path, "dns_refresh_rate"),
        DNS_REFRESH_RATE,
    )?;
    Ok(Cluster {
        name: c.name.clone(),
        discovery,
        connect_timeout: duration_or(
            c.connect_timeout.as_ref(),
            &at(path, "connect_timeout"),
            CONNECT_TIMEOUT,
        )?,
        lb,
        localities,
        circuit_breakers: thresholds(c.circuit_breakers.as_ref()),
        outlier_detection: c
            .outlier_detection
            .as_ref()
            .map(|o| outlier(o, &at(path, "outlier_detection")))
            .transpose()?,
        health_checks: c
            .health_checks
            .iter()
            .enumerate()
            .map(|(i, h)| health_check(h, &at(path, &format!("health_checks[{i}]")), &c.name))
            .collect::<Result<_, _>>()?,
        tls: upstream_tls(c, path, resource, ctx)?,
        protocol,
        idle_timeout: timeout(
            http_options.idle_timeout.as_ref(),
            &at(&common_path, "idle_timeout"),
            Some(UPSTREAM_IDLE_TIMEOUT),
        )?
        .unwrap_or(NEVER),
        max_requests_per_connection,
        dns_refresh_rate,
        dns_lookup_family: dns_lookup_family(c.dns_lookup_family, path)?,
        original_dst_use_http_header,
        per_connection_buffer_limit_bytes: c
            .per_connection_buffer_limit_bytes
            .as_ref()
            .map_or(BUFFER_LIMIT, |v| v.value),
    })
}

fn dns_lookup_family(v: i32, path: &str) -> Result<DnsLookupFamily, ConfigError> {
    use pb::cluster::DnsLookupFamily as F;
    Ok(match F::try_from(v) {
        Ok(F::Auto) => DnsLookupFamily::Auto,
        Ok(F::V4Only) => DnsLookupFamily::V4Only,
        Ok(F::V6Only) => DnsLookupFamily::V6Only,
        Ok(F::V4Preferred) => DnsLookupFamily::V4Preferred,
        Ok(F::All) => DnsLookupFamily::All,
        Err(_) => {
            return Err(invalid(
                at(path, "dns_lookup_family"),
                format!("unknown value {v}"),
            ));
        }
    })
}

/// `lb_policy` with its configuration, `common_lb_config` and the load assignment's policy,
/// validated; and ORIGINAL_DST's `use_http_header`.
fn lb_config(
    c: &pb::Cluster,
    path: &str,
    resource: &str,
    discovery: Discovery,
) -> Result<(weft_proxy_lb::ValidLbConfig, bool), ConfigError> {
    use pb::cluster::{LbConfig as Lc, LbPolicy as P};
    let policy_name = P::try_from(c.lb_policy).map_or("unknown", |p| p.as_str_name());
    let lb_path = at(path, "lb_policy");
    let mismatch = |field: &str| {
        unsupported(
            at(path, field),
            format!(
                "unsupported: {resource} {field} with lb_policy {policy_name} (it would have \
                 no effect)"
            ),
        )
    };
    let mut use_http_header = false;
    let policy = match (P::try_from(c.lb_policy), &c.lb_config) {
        (Ok(P::ClusterProvided), lb) => {
            if discovery != Discovery::OriginalDst {
                return Err(unsupported(
                    lb_path,
                    format!(
                        "unsupported: {resource} lb_policy \"CLUSTER_PROVIDED\" without type ORIGINAL_DST"
                    ),
                ));
            }
            match lb {
                None => {}
                Some(Lc::OriginalDstLbConfig(o)) => {
                    let o_path = at(path, "original_dst_lb_config");
                    if !o.http_header_name.is_empty() && o.http_header_name != ORIGINAL_DST_HEADER {
                        return Err(unsupported(
                            at(&o_path, "http_header_name"),
                            format!(
                                "unsupported: {resource} original_dst_lb_config http_header_name \
                                 other than {ORIGINAL_DST_HEADER}"
                            ),
                        ));
                    }
                    use_http_header = o.use_http_header;
                }
                Some(_) => return Err(mismatch("lb_config")),
            }
            // ORIGINAL_DST bypasses the balancer; it carries the defaults.
            LbPolicy::RoundRobin
        }
        (Ok(_), _) if discovery == Discovery::OriginalDst => {
            return Err(constraint(
                lb_path,
                format!(
                    "{resource}: lb_policy {policy_name} is not valid for type ORIGINAL_DST; \
                     only CLUSTER_PROVIDED is allowed"
                ),
            ));
        }
        (Ok(P::RoundRobin), None) => LbPolicy::RoundRobin,
        (Ok(P::Random), None) => LbPolicy::Random,
        (Ok(P::LeastRequest), lb) => {
            let mut lr = LeastRequestConfig::default();
            match lb {
                None => {}
                Some(Lc::LeastRequestLbConfig(l)) => {
                    if let Some(n) = &l.choice_count {
                        lr.choice_count = n.value;
                    }
                    lr.active_request_bias =
                        l.active_request_bias.as_ref().map(|b| b.default_value);
                }
                Some(_) => return Err(mismatch(lb_field(lb))),
            }
            LbPolicy::LeastRequest(lr)
        }
        (Ok(P::RingHash), lb) => {
            let mut ring = RingHashConfig::default();
            match lb {
                None => {}
                Some(Lc::RingHashLbConfig(r)) => {
                    use pb::cluster::ring_hash_lb_config::HashFunction as H;
                    if H::try_from(r.hash_function) != Ok(H::XxHash) {
                        return Err(unsupported(
                            at(path, "ring_hash_lb_config.hash_function"),
                            format!(
                                "unsupported: {resource} ring hash function other than XX_HASH"
                            ),
                        ));
                    }
                    if let Some(v) = &r.minimum_ring_size {
                        ring.minimum_ring_size = v.value;
                    }
                    if let Some(v) = &r.maximum_ring_size {
                        ring.maximum_ring_size = v.value;
                    }
                }
                Some(_) => return Err(mismatch(lb_field(lb))),
            }
            LbPolicy::RingHash(ring)
        }
        (Ok(P::Maglev), lb) => {
            let mut maglev = MaglevConfig::default();
            match lb {
                None => {}
                Some(Lc::MaglevLbConfig(m)) => {
                    if let Some(v) = &m.table_size {
                        maglev.table_size = v.value;
                    }
                }
                Some(_) => return Err(mismatch(lb_field(lb))),
            }
            LbPolicy::Maglev(maglev)
        }
        (Ok(P::RoundRobin | P::Random), lb) => return Err(mismatch(lb_field(lb))),
        _ => {
            return Err(unsupported(
                lb_path,
                format!("unsupported: {resource} lb_policy {policy_name:?}"),
            ));
        }
    };
    let common = c.common_lb_config.clone().unwrap_or_default();
    let policy_cfg = c
        .load_assignment
        .as_ref()
        .and_then(|la| la.policy.clone())
        .unwrap_or_default();
    let config = LbConfig {
        policy,
        healthy_panic_threshold: common
            .healthy_panic_threshold
            .as_ref()
            .map_or(DEFAULT_HEALTHY_PANIC_THRESHOLD, |p| p.value),
        overprovisioning_factor: policy_cfg
            .overprovisioning_factor
            .as_ref()
            .map_or(DEFAULT_OVERPROVISIONING_FACTOR, |v| v.value),
        weighted_priority_health: policy_cfg.weighted_priority_health,
        locality_weighted: matches!(
            common.locality_config_specifier,
            Some(
                pb::cluster::common_lb_config::LocalityConfigSpecifier::LocalityWeightedLbConfig(_)
            )
        ),
    };
    let valid = config
        .validate()
        .map_err(|e| constraint(path, format!("{resource}: {e}")))?;
    Ok((valid, use_http_header))
}

fn lb_field(lb: &Option<pb::cluster::LbConfig>) -> &'static str {
    use pb::cluster::LbConfig as Lc;
    match lb {
        Some(Lc::RingHashLbConfig(_)) => "ring_hash_lb_config",
        Some(Lc::MaglevLbConfig(_)) => "maglev_lb_config",
        Some(Lc::OriginalDstLbConfig(_)) => "original_dst_lb_config",
        Some(Lc::LeastRequestLbConfig(_)) => "least_request_lb_config",
        Some(Lc::RoundRobinLbConfig(_)) => "round_robin_lb_config",
        None => "lb_config",
    }
}

fn localities(
    c: &pb::Cluster,
    path: &str,
    resource: &str,
    discovery: Discovery,
    eds_assignments: bool,
) -> Result<Vec<LocalityEndpoints>, ConfigError> {
    let Some(la) = &c.load_assignment else {
        return Ok(Vec::new());
    };
    let la_path = at(path, "load_assignment");
    let endpoint_count: usize = la.endpoints.iter().map(|l| l.lb_endpoints.len()).sum();
    match discovery {
        // The xDS client puts the endpoints EDS delivered into `load_assignment`.
        Discovery::Eds if eds_assignments => {}
        Discovery::OriginalDst | Discovery::Eds if endpoint_count > 0 => {
            return Err(unsupported(
                at(&la_path, "endpoints"),
                format!(
                    "unsupported: {resource} load_assignment endpoints with type {} (they \
                     would have no effect)",
                    if discovery == Discovery::Eds {
                        "EDS"
                    } else {
                        "ORIGINAL_DST"
                    }
                ),
            ));
        }
        Discovery::LogicalDns if la.endpoints.len() != 1 || endpoint_count != 1 => {
            return Err(constraint(
                at(&la_path, "endpoints"),
                format!(
                    "{resource}: LOGICAL_DNS clusters must have a single locality_lb_endpoint and a single lb_endpoint"
                ),
            ));
        }
        _ => {}
    }
    let mut out = Vec::with_capacity(la.endpoints.len());
    for (i, l) in la.endpoints.iter().enumerate() {
        let l_path = at(&la_path, &format!("endpoints[{i}]"));
        let mut endpoints = Vec::with_capacity(l.lb_endpoints.len());
        for (j, e) in l.lb_endpoints.iter().enumerate() {
            endpoints.push(endpoint(
                e,
                &at(&l_path, &format!("lb_endpoints[{j}]")),
                resource,
                discovery,
            )?);
        }
        out.push(LocalityEndpoints {
            locality: locality(l.locality.as_ref()),
            priority: l.priority,
            weight: l.load_balancing_weight.as_ref().map(|v| v.value),
            endpoints,
        });
    }
    Ok(out)
}

fn endpoint(
    e: &ep::LbEndpoint,
    path: &str,
    resource: &str,
    discovery: Discovery,
) -> Result<Endpoint, ConfigError> {
    use core::HealthStatus as H;
    let Some(ep::lb_endpoint::HostIdentifier::Endpoint(endpoint)) = &e.host_identifier else {
        return Err(unsupported(
            path,
            format!("unsupported: {resource} lb_endpoint without an inline endpoint"),
        ));
    };
    let e_path = at(path, "endpoint");
    let a_path = at(&e_path, "address");
    let (host, port_value) = host_port(endpoint.address.as_ref(), &a_path, resource)?;
    let address = match host.parse::<IpAddr>() {
        Ok(ip) => EndpointAddress::Socket(std::net::SocketAddr::new(ip, port_value)),
        Err(_) if matches!(discovery, Discovery::StrictDns | Discovery::LogicalDns) => {
            EndpointAddress::Dns {
                host,
                port: port_value,
            }
        }
        Err(_) => {
            return Err(invalid(
                at(&a_path, "socket_address.address"),
                format!(
                    "{resource}: {host:?} is not an IP address (only STRICT_DNS and LOGICAL_DNS clusters resolve names)"
                ),
            ));
        }
    };
    let health = match H::try_from(e.health_status) {
        Ok(H::Unknown | H::Healthy) => ConfiguredHealth::Healthy,
        Ok(H::Degraded) => ConfiguredHealth::Degraded,
        Ok(H::Unhealthy | H::Draining | H::Timeout) => ConfiguredHealth::Unhealthy,
        Err(_) => return Err(invalid(at(path, "health_status"), "unknown health status")),
    };
    Ok(Endpoint {
        address,
        weight: e.load_balancing_weight.as_ref().map_or(1, |v| v.value),
        health,
        hostname: endpoint.hostname.clone(),
        health_check_port: match endpoint
            .health_check_config
            .as_ref()
            .map_or(0, |h| h.port_value)
        {
            0 => None,
            p => Some(port(p, &at(&e_path, "health_check_config.port_value"))?),
        },
    })
}

/// DEFAULT priority thresholds. HIGH priority thresholds are accepted and ignored: only
/// requests on routes with `priority: HIGH` use them, and that route field is unsupported.
fn thresholds(cb: Option<&pb::CircuitBreakers>) -> Thresholds {
    let mut out = Thresholds::default();
    for t in cb.map(|cb| cb.thresholds.as_slice()).unwrap_or_default() {
        if t.priority != core::RoutingPriority::Default as i32 {
            continue;
        }
        // Like Envoy, a later DEFAULT entry overrides an earlier one.
        let d = Thresholds::default();
        out = Thresholds {
            max_connections: t
                .max_connections
                .as_ref()
                .map_or(d.max_connections, |v| v.value),
            max_pending_requests: t
                .max_pending_requests
                .as_ref()
                .map_or(d.max_pending_requests, |v| v.value),
            max_requests: t.max_requests.as_ref().map_or(d.max_requests, |v| v.value),
            max_retries: t.max_retries.as_ref().map_or(d.max_retries, |v| v.value),
        };
    }
    out
}

fn outlier(o: &pb::OutlierDetection, path: &str) -> Result<OutlierDetection, ConfigError> {
    let u = |v: &Option<envoy_types::pb::google::protobuf::UInt32Value>, d: u32| {
        v.as_ref().map_or(d, |v| v.value)
    };
    let base_ejection_time = duration_or(
        o.base_ejection_time.as_ref(),
        &at(path, "base_ejection_time"),
        Duration::from_secs(30),
    )?;
    let max_ejection_time = match &o.max_ejection_time {
        Some(m) => {
            let m = duration(m, &at(path, "max_ejection_time"))?;
            if m < base_ejection_time {
                return Err(constraint(
                    at(path, "max_ejection_time"),
                    "outlier detection's max_ejection_time cannot be smaller than base_ejection_time",
                ));
            }
            m
        }
        None => base_ejection_time.max(Duration::from_secs(300)),
    };
    Ok(OutlierDetection {
        consecutive_5xx: u(&o.consecutive_5xx, 5),
        consecutive_gateway_failure: u(&o.consecutive_gateway_failure, 5),
        consecutive_local_origin_failure: u(&o.consecutive_local_origin_failure, 5),
        split_external_local_origin_errors: o.split_external_local_origin_errors,
        interval: duration_or(
            o.interval.as_ref(),
            &at(path, "interval"),
            Duration::from_secs(10),
        )?,
        base_ejection_time,
        max_ejection_time,
        max_ejection_percent: u(&o.max_ejection_percent, 10),
        enforcing_consecutive_5xx: u(&o.enforcing_consecutive_5xx, 100),
        enforcing_consecutive_gateway_failure: u(&o.enforcing_consecutive_gateway_failure, 0),
        enforcing_consecutive_local_origin_failure: u(
            &o.enforcing_consecutive_local_origin_failure,
            100,
        ),
        success_rate_minimum_hosts: u(&o.success_rate_minimum_hosts, 5),
        success_rate_request_volume: u(&o.success_rate_request_volume, 100),
        success_rate_stdev_factor: u(&o.success_rate_stdev_factor, 1900),
        enforcing_success_rate: u(&o.enforcing_success_rate, 100),
    })
}

fn health_check(
    h: &core::HealthCheck,
    path: &str,
    cluster: &str,
) -> Result<HealthCheck, ConfigError> {
    use core::health_check::HealthChecker as K;
    let required = |d: &Option<envoy_types::pb::google::protobuf::Duration>, field: &str| {
        d.as_ref()
            .ok_or_else(|| invalid(at(path, field), "is required"))
            .and_then(|d| duration(d, &at(path, field)))
    };
    let threshold = |v: &Option<envoy_types::pb::google::protobuf::UInt32Value>, field: &str| {
        v.as_ref()
            .map(|v| v.value)
            .ok_or_else(|| invalid(at(path, field), "is required"))
    };
    let kind = match &h.health_checker {
        Some(K::HttpHealthCheck(http)) => {
            let h_path = at(path, "http_health_check");
            let mut expected_statuses = Vec::with_capacity(http.expected_statuses.len());
            for (i, r) in http.expected_statuses.iter().enumerate() {
                let ok = (100..=600).contains(&r.start)
                    && (100..=600).contains(&r.end)
                    && r.start < r.end;
                if !ok {
                    return Err(invalid(
                        at(&h_path, &format!("expected_statuses[{i}]")),
                        format!(
                            "status range [{}, {}) must lie within [100, 600)",
                            r.start, r.end
                        ),
                    ));
                }
                expected_statuses.push((r.start as u16, r.end as u16));
            }
            if expected_statuses.is_empty() {
                expected_statuses.push((200, 201));
            }
            HealthCheckKind::Http {
                path: http.path.clone(),
                host: if http.host.is_empty() {
                    cluster.to_owned()
                } else {
                    http.host.clone()
                },
                expected_statuses,
            }
        }
        Some(K::TcpHealthCheck(tcp)) => {
            let t_path = at(path, "tcp_health_check");
            HealthCheckKind::Tcp {
                send: tcp
                    .send
                    .as_ref()
                    .map(|p| payload(p, &at(&t_path, "send")))
                    .transpose()?
                    .unwrap_or_default(),
                receive: tcp
                    .receive
                    .iter()
                    .enumerate()
                    .map(|(i, p)| payload(p, &at(&t_path, &format!("receive[{i}]"))))
                    .collect::<Result<_, _>>()?,
            }
        }
        _ => {
            return Err(unsupported(
                path,
                "unsupported: health check other than http_health_check or tcp_health_check",
            ));
        }
    };
    Ok(HealthCheck {
        timeout: required(&h.timeout, "timeout")?,
        interval: required(&h.interval, "interval")?,
        unhealthy_threshold: threshold(&h.unhealthy_threshold, "unhealthy_threshold")?,
        healthy_threshold: threshold(&h.healthy_threshold, "healthy_threshold")?,
        kind,
    })
}

/// A health check payload: `text` is hex (`"000000FF"`), `binary` raw bytes.
fn payload(p: &core::health_check::Payload, path: &str) -> Result<Vec<u8>, ConfigError> {
    use core::health_check::payload::Payload as P;
    match &p.payload {
        Some(P::Text(hex)) => decode_hex(hex).ok_or_else(|| {
            invalid(
                at(path, "text"),
                format!("{hex:?} is not hex (Envoy reads text payloads as hex, e.g. \"000000FF\")"),
            )
        }),
        Some(P::Binary(b)) => Ok(b.clone()),
        None => Ok(Vec::new()),
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

fn upstream_tls(
    c: &pb::Cluster,
    path: &str,
    resource: &str,
    ctx: &Ctx<'_>,
) -> Result<Option<Arc<UpstreamTls>>, ConfigError> {
    let Some(ts) = &c.transport_socket else {
        return Ok(None);
    };
    let ts_path = at(path, "transport_socket");
    let Some(core::transport_socket::ConfigType::TypedConfig(any)) = &ts.config_type else {
        return match ts.name.as_str() {
            "envoy.transport_sockets.raw_buffer" | "raw_buffer" => Ok(None),
            _ => Err(invalid(
                at(&ts_path, "typed_config"),
                format!(
                    "{resource} transport socket {:?} needs a typed_config",
                    ts.name
                ),
            )),
        };
    };
    let tc_path = at(&ts_path, "typed_config");
    match any_type(any, &tc_path)?.as_str() {
        UPSTREAM_TLS_TYPE => {
            let u: UpstreamTlsContext = unpack(any, &tc_path)?;
            Ok(Some(Arc::new(tls::upstream(&u, &tc_path, resource, ctx)?)))
        }
        RAW_BUFFER_TYPE => Ok(None),
        other => Err(unsupported(
            tc_path,
            format!(
                "unsupported: {resource} transport socket {:?} (type {other})",
                ts.name
            ),
        )),
    }
}

/// The upstream protocol and the `common_http_protocol_options` that apply (with their path),
/// from `typed_extension_protocol_options` or the deprecated cluster fields.
#[allow(
    deprecated,
    reason = "the deprecated cluster protocol fields are still read by Envoy 1.40"
)]
fn protocol(
    c: &pb::Cluster,
    path: &str,
    resource: &str,
) -> Result<(UpstreamProtocol, (core::HttpProtocolOptions, String)), ConfigError> {
    use up::http_protocol_options::{
        UpstreamProtocolOptions as U, explicit_http_config::ProtocolConfig as E,
    };
    let deprecated_protocol = match (&c.http_protocol_options, &c.http2_protocol_options) {
        (Some(_), Some(_)) => {
            return Err(constraint(
                at(path, "http2_protocol_options"),
                format!(
                    "{resource}: http_protocol_options and http2_protocol_options are exclusive"
                ),
            ));
        }
        (Some(_), None) => Some(UpstreamProtocol::Http1),
        (None, Some(_)) => Some(UpstreamProtocol::Http2),
        (None, None) => None,
    };
    let mut keys: Vec<_> = c.typed_extension_protocol_options.keys().collect();
    keys.sort();
    let mut typed = None;
    for key in keys {
        let Some(any) = c.typed_extension_protocol_options.get(key) else {
            continue;
        };
        let e_path = format!("{}[{key:?}]", at(path, "typed_extension_protocol_options"));
        let ty = any_type(any, &e_path)?;
        if key != HTTP_PROTOCOL_OPTIONS || ty != HTTP_PROTOCOL_OPTIONS {
            return Err(unsupported(
                e_path,
                format!("unsupported: {resource} protocol options {key:?} (type {ty})"),
            ));
        }
        let o: up::HttpProtocolOptions = unpack(any, &e_path)?;
        typed = Some((o, e_path));
    }
    let Some((o, e_path)) = typed else {
        let common_path = at(path, "common_http_protocol_options");
        return Ok((
            deprecated_protocol.unwrap_or_default(),
            (
                c.common_http_protocol_options.unwrap_or_default(),
                common_path,
            ),
        ));
    };
    if deprecated_protocol.is_some() || c.common_http_protocol_options.is_some() {
        return Err(constraint(
            e_path,
            format!(
                "{resource}: the deprecated http_protocol_options, http2_protocol_options and \
                 common_http_protocol_options cannot be combined with \
                 typed_extension_protocol_options HttpProtocolOptions"
            ),
        ));
    }
    let protocol = match &o.upstream_protocol_options {
        Some(U::ExplicitHttpConfig(e)) => match &e.protocol_config {
            Some(E::Http2ProtocolOptions(_)) => UpstreamProtocol::Http2,
            Some(E::HttpProtocolOptions(_)) | None => UpstreamProtocol::Http1,
            Some(E::Http3ProtocolOptions(_)) => {
                return Err(unsupported(
                    at(&e_path, "explicit_http_config.http3_protocol_options"),
                    format!("unsupported: {resource} HTTP/3 upstream"),
                ));
            }
        },
        Some(U::UseDownstreamProtocolConfig(d)) => {
            if d.http3_protocol_options.is_some() {
                return Err(unsupported(
                    at(
                        &e_path,
                        "use_downstream_protocol_config.http3_protocol_options",
                    ),
                    format!("unsupported: {resource} HTTP/3 upstream"),
                ));
            }
            UpstreamProtocol::UseDownstream
        }
        Some(U::AutoConfig(_)) => {
            return Err(unsupported(
                at(&e_path, "auto_config"),
                format!(
                    "unsupported: {resource} protocol options auto_config (ALPN protocol selection)"
                ),
            ));
        }
        None => UpstreamProtocol::Http1,
    };
    let common_path = at(&e_path, "common_http_protocol_options");
    Ok((
        protocol,
        (
            o.common_http_protocol_options.unwrap_or_default(),
            common_path,
        ),
    ))
}
