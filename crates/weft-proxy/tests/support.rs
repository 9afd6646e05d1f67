//! Builders for hand-made proxy configurations in tests (bootstrap files are tested elsewhere).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use weft_proxy_config::model::*;
use weft_proxy_route::{Action, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost};

pub(crate) fn hcm(routes: RouteConfiguration<PerFilterConfig>) -> HttpConnectionManager {
    HttpConnectionManager {
        stat_prefix: "ingress_http".into(),
        route_config: Arc::new(RouteTable::new(routes).expect("routes compile")),
        codec: CodecType::Auto,
        http_filters: vec![HttpFilter::Router(RouterFilter::default())],
        normalize_path: false,
        merge_slashes: false,
        escaped_slashes: EscapedSlashesAction::KeepUnchanged,
        max_request_headers_kb: 60,
        max_headers_count: 100,
        headers_with_underscores: UnderscoreHeaderAction::Allow,
        idle_timeout: Some(Duration::from_secs(3600)),
        stream_idle_timeout: Some(Duration::from_secs(300)),
        request_timeout: None,
        request_headers_timeout: None,
        max_stream_duration: None,
        drain_timeout: Duration::from_secs(5),
        generate_request_id: true,
        preserve_external_request_id: false,
        always_set_request_id_in_response: false,
        use_remote_address: false,
        xff_num_trusted_hops: 0,
        skip_xff_append: false,
        via: String::new(),
        server_name: "envoy".into(),
        server_header_transformation: ServerHeaderTransformation::Overwrite,
        strip_matching_host_port: false,
        strip_any_host_port: false,
        upgrades: vec![],
        http2: Http2Settings::default(),
    }
}

/// A route configuration with one `*` virtual host and these routes.
pub(crate) fn routes(routes: Vec<Route<PerFilterConfig>>) -> RouteConfiguration<PerFilterConfig> {
    RouteConfiguration {
        virtual_hosts: vec![VirtualHost {
            name: "all".into(),
            domains: vec!["*".into()],
            routes,
            ..VirtualHost::default()
        }],
        ..RouteConfiguration::default()
    }
}

pub(crate) fn prefix_to(prefix: &str, action: RouteAction) -> Route<PerFilterConfig> {
    Route::new(RouteMatch::prefix(prefix), Action::Route(action))
}

pub(crate) fn http_listener(name: &str, hcm: HttpConnectionManager) -> Arc<Listener> {
    listener(name, NetworkFilter::Http(Arc::new(hcm)))
}

pub(crate) fn listener(name: &str, filter: NetworkFilter) -> Arc<Listener> {
    Arc::new(Listener {
        name: name.into(),
        address: "127.0.0.1:0".parse().unwrap(),
        filter_chains: vec![Arc::new(FilterChain {
            name: "main".into(),
            matcher: FilterChainMatch::default(),
            tls: None,
            filter,
        })],
        default_filter_chain: None,
        listener_filters: vec![],
        listener_filters_timeout: Duration::from_secs(15),
        continue_on_listener_filters_timeout: false,
        use_original_dst: false,
        bind_to_port: true,
        per_connection_buffer_limit_bytes: 1 << 20,
        stat_prefix: name.into(),
        tcp_backlog_size: 1024,
        revision: None,
    })
}

pub(crate) fn cluster(name: &str, endpoints: &[SocketAddr]) -> Cluster {
    Cluster {
        name: name.into(),
        discovery: Discovery::Static,
        connect_timeout: Duration::from_secs(1),
        lb: weft_proxy_lb::LbConfig::default().validate().unwrap(),
        localities: vec![LocalityEndpoints {
            locality: Locality::default(),
            priority: 0,
            weight: None,
            endpoints: endpoints
                .iter()
                .map(|a| Endpoint {
                    address: EndpointAddress::Socket(*a),
                    weight: 1,
                    health: ConfiguredHealth::Healthy,
                    hostname: String::new(),
                    health_check_port: None,
                })
                .collect(),
        }],
        circuit_breakers: Thresholds::default(),
        outlier_detection: None,
        health_checks: vec![],
        tls: None,
        protocol: UpstreamProtocol::Http1,
        idle_timeout: Duration::from_secs(4),
        max_requests_per_connection: None,
        dns_refresh_rate: Duration::from_secs(5),
        dns_lookup_family: DnsLookupFamily::V4Only,
        original_dst_use_http_header: false,
        per_connection_buffer_limit_bytes: 1 << 20,
    }
}

pub(crate) fn config(listeners: Vec<Arc<Listener>>, clusters: Vec<Cluster>) -> ProxyConfig {
    ProxyConfig {
        node: Node::default(),
        admin: None,
        listeners,
        clusters: clusters.into_iter().map(Arc::new).collect(),
    }
}

/// One listener, `ingress`, routing everything to the cluster `backend`.
pub(crate) fn single_route_config(clusters: Vec<Cluster>) -> ProxyConfig {
    config(
        vec![http_listener(
            "ingress",
            hcm(routes(vec![prefix_to(
                "/",
                weft_proxy_route::RouteAction::cluster("backend"),
            )])),
        )],
        clusters,
    )
}

/// The running cluster `backend`.
pub(crate) fn backend(proxy: &weft_proxy::Proxy) -> Arc<weft_proxy::upstream::ClusterRuntime> {
    proxy.state().cluster("backend").expect("cluster exists")
}

/// How many of `backend`'s hosts are healthy.
pub(crate) fn healthy_hosts(proxy: &weft_proxy::Proxy) -> i64 {
    backend(proxy)
        .shared
        .stats
        .membership_healthy
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// Waits (up to 2s) until `n` of `backend`'s hosts are healthy.
pub(crate) async fn wait_healthy(proxy: &weft_proxy::Proxy, n: i64) {
    for _ in 0..200 {
        if healthy_hosts(proxy) == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(healthy_hosts(proxy), n, "healthy hosts after 2s");
}
