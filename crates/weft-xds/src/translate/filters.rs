//! Envoy building blocks shared by sidecar, gateway and proxyless listeners: typed configs,
//! addresses, the HTTP connection manager as Istio configures it, TCP proxies and listener
//! filters.

use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiVersion, ConfigSource, SocketAddress, address,
    config_source, socket_address,
};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, ListenerFilter, filter, listener_filter,
};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::http_inspector::v3::HttpInspector;
use envoy_types::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use envoy_types::pb::google::protobuf::{Any, BoolValue, Duration};
use prost::{Message, Name};

use crate::mesh::OutboundTrafficPolicy;
use crate::naming;

/// Network filter name of the HTTP connection manager.
pub const HCM: &str = "envoy.filters.network.http_connection_manager";
/// Network filter name of the TCP proxy.
pub const TCP_PROXY: &str = "envoy.filters.network.tcp_proxy";
/// Name of the default chain of per-port outbound listeners (Istio's).
pub const PASSTHROUGH_FILTER_CHAIN: &str = "PassthroughFilterChain";

/// `msg` as a typed config.
pub fn any<M: Message + Name>(msg: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: msg.encode_to_vec(),
    }
}

/// `ip:port` as an Envoy TCP address.
pub fn socket(ip: &str, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.to_owned(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}

/// A `google.protobuf.BoolValue`.
pub fn bool_value(value: bool) -> Option<BoolValue> {
    Some(BoolValue { value })
}

/// A `google.protobuf.Duration` of `d`.
pub fn duration(d: std::time::Duration) -> Duration {
    Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// RDS (and CDS/EDS) over the ADS stream, xDS v3.
pub fn ads_config_source() -> ConfigSource {
    ConfigSource {
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        resource_api_version: ApiVersion::V3 as i32,
        initial_fetch_timeout: Some(Duration::default()),
        ..Default::default()
    }
}

/// Which HTTP filters an HTTP connection manager runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpFilters {
    /// Envoy proxies: fault, CORS, router — Istio's order for the filters VirtualService
    /// routes configure per route.
    Envoy,
    /// Proxyless gRPC: fault and router, what gRPC's xDS client implements.
    Grpc,
}

fn http_filter<M: Message + Name>(name: &str, config: &M) -> HttpFilter {
    HttpFilter {
        name: name.to_owned(),
        config_type: Some(http_filter::ConfigType::TypedConfig(any(config))),
        ..Default::default()
    }
}

/// The HTTP filter chain for `kind`.
pub fn http_filters(kind: HttpFilters) -> Vec<HttpFilter> {
    let fault = http_filter("envoy.filters.http.fault", &HttpFault::default());
    let router = http_filter("envoy.filters.http.router", &Router::default());
    match kind {
        HttpFilters::Envoy => vec![
            fault,
            http_filter("envoy.filters.http.cors", &Cors::default()),
            router,
        ],
        HttpFilters::Grpc => vec![fault, router],
    }
}

/// An HTTP connection manager as Istio builds it for Envoy proxies: codec AUTO, routes from RDS
/// `rds` over ADS, path normalization on (escaped slashes kept), websocket upgrades allowed,
/// no stream idle timeout, and `use_remote_address` (true only at gateways, where the
/// downstream peer is the real client).
pub fn hcm(stat_prefix: &str, rds: &str, use_remote_address: bool) -> HttpConnectionManager {
    use http_connection_manager::{CodecType, PathWithEscapedSlashesAction, RouteSpecifier};
    HttpConnectionManager {
        codec_type: CodecType::Auto as i32,
        stat_prefix: stat_prefix.to_owned(),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: rds.to_owned(),
        })),
        http_filters: http_filters(HttpFilters::Envoy),
        use_remote_address: bool_value(use_remote_address),
        normalize_path: bool_value(true),
        path_with_escaped_slashes_action: PathWithEscapedSlashesAction::KeepUnchanged as i32,
        upgrade_configs: vec![http_connection_manager::UpgradeConfig {
            upgrade_type: "websocket".to_owned(),
            ..Default::default()
        }],
        stream_idle_timeout: Some(Duration::default()),
        ..Default::default()
    }
}

/// `hcm` as a network filter.
pub fn hcm_filter(hcm: &HttpConnectionManager) -> Filter {
    Filter {
        name: HCM.to_owned(),
        config_type: Some(filter::ConfigType::TypedConfig(any(hcm))),
    }
}

/// A TCP proxy to `cluster`, counting under the cluster's name as Istio does.
pub fn tcp_proxy_filter(cluster: &str) -> Filter {
    tcp_filter(TcpProxy {
        stat_prefix: cluster.to_owned(),
        cluster_specifier: Some(tcp_proxy::ClusterSpecifier::Cluster(cluster.to_owned())),
        ..Default::default()
    })
}

/// A TCP proxy splitting connections over weighted clusters; a single destination becomes a
/// plain `cluster`.
pub fn weighted_tcp_proxy_filter(clusters: &[(String, u32)]) -> Filter {
    if let [(only, _)] = clusters {
        return tcp_proxy_filter(only);
    }
    let stat_prefix = clusters.first().map(|(c, _)| c.clone()).unwrap_or_default();
    tcp_filter(TcpProxy {
        stat_prefix,
        cluster_specifier: Some(tcp_proxy::ClusterSpecifier::WeightedClusters(
            tcp_proxy::WeightedCluster {
                clusters: clusters
                    .iter()
                    .map(
                        |(name, weight)| tcp_proxy::weighted_cluster::ClusterWeight {
                            name: name.clone(),
                            weight: *weight,
                            ..Default::default()
                        },
                    )
                    .collect(),
            },
        )),
        ..Default::default()
    })
}

fn tcp_filter(t: TcpProxy) -> Filter {
    Filter {
        name: TCP_PROXY.to_owned(),
        config_type: Some(filter::ConfigType::TypedConfig(any(&t))),
    }
}

/// Where traffic to unknown destinations goes under `policy`.
pub fn catch_all_cluster(policy: OutboundTrafficPolicy) -> &'static str {
    match policy {
        OutboundTrafficPolicy::AllowAny => naming::PASSTHROUGH_CLUSTER,
        OutboundTrafficPolicy::RegistryOnly => naming::BLACK_HOLE_CLUSTER,
    }
}

/// The chain of last resort: TCP to the catch-all cluster of `policy`.
pub fn passthrough_chain(policy: OutboundTrafficPolicy) -> FilterChain {
    FilterChain {
        name: PASSTHROUGH_FILTER_CHAIN.to_owned(),
        filter_chain_match: Some(FilterChainMatch::default()),
        filters: vec![tcp_proxy_filter(catch_all_cluster(policy))],
        ..Default::default()
    }
}

fn listener_filter<M: Message + Name>(name: &str, config: &M) -> ListenerFilter {
    ListenerFilter {
        name: name.to_owned(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(any(config))),
        ..Default::default()
    }
}

/// Reads SNI and ALPN from a TLS ClientHello.
pub fn tls_inspector() -> ListenerFilter {
    listener_filter(
        "envoy.filters.listener.tls_inspector",
        &TlsInspector::default(),
    )
}

/// Detects plaintext HTTP/1.x and HTTP/2 and reports it as ALPN.
pub fn http_inspector() -> ListenerFilter {
    listener_filter(
        "envoy.filters.listener.http_inspector",
        &HttpInspector::default(),
    )
}

/// Restores the destination a connection was redirected from.
pub fn original_dst() -> ListenerFilter {
    listener_filter(
        "envoy.filters.listener.original_dst",
        &OriginalDst::default(),
    )
}
