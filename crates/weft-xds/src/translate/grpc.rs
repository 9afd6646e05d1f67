//! Proxyless gRPC clients: for every service port they can see, an `api_listener` named
//! `host:port` (the name a `xds:///host:port` target asks for) whose connection manager takes
//! routes over RDS under the same name, as istiod's gRPC generator serves them. No socket
//! listeners: the client library is the proxy.
//!
//! Clusters are EDS only, reduced to what gRPC's xDS client understands (gRFC A27, A28, A32,
//! A42), as istiod's generator builds them: gRPC rejects a whole cluster over one field it does
//! not support (an `lb_policy` other than `ROUND_ROBIN` or `RING_HASH`), so nothing Envoy-only
//! is sent. See [`grpc_cluster`].

use envoy_types::pb::envoy::config::cluster::v3::circuit_breakers::Thresholds;
use envoy_types::pb::envoy::config::cluster::v3::{CircuitBreakers, Cluster, cluster};
use envoy_types::pb::envoy::config::listener::v3::{ApiListener, Listener};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, Rds, http_connection_manager,
};

use super::filters::{self, HttpFilters, socket};
use super::{Scope, cluster as clusters, route};
use crate::resources::Resources;

/// `host:port`, the name of a proxyless listener and its route table.
pub fn listener_name(host: &str, port: u16) -> String {
    format!("{host}:{port}")
}

/// Listeners, route tables and EDS clusters for a proxyless gRPC client.
pub fn resources(scope: &Scope<'_>) -> Resources {
    let mut listeners = Vec::new();
    let mut routes = Vec::new();
    for service in &scope.services {
        // A wildcard host names no single target a client could dial.
        if service.hostname.contains('*') {
            continue;
        }
        let address = service
            .addresses
            .first()
            .filter(|a| !a.contains('/'))
            .map_or("0.0.0.0", String::as_str);
        for port in &service.ports {
            let name = listener_name(&service.hostname, port.number);
            let hcm = HttpConnectionManager {
                route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
                    config_source: Some(filters::ads_config_source()),
                    route_config_name: name.clone(),
                })),
                http_filters: filters::http_filters(HttpFilters::Grpc),
                ..Default::default()
            };
            listeners.push(Listener {
                name: name.clone(),
                address: Some(socket(address, port.number)),
                api_listener: Some(ApiListener {
                    api_listener: Some(filters::any(&hcm)),
                }),
                ..Default::default()
            });
            routes.push(route::outbound_route_config(
                scope,
                &name,
                port.number,
                &[*service],
            ));
        }
    }
    let clusters: Vec<Cluster> = clusters::outbound_clusters(scope)
        .into_iter()
        .filter(is_eds)
        .map(grpc_cluster)
        .collect();
    Resources {
        listeners,
        routes,
        clusters,
        endpoints: Vec::new(),
    }
}

/// gRPC's xDS client resolves endpoints over EDS only.
fn is_eds(c: &Cluster) -> bool {
    matches!(
        c.cluster_discovery_type,
        Some(cluster::ClusterDiscoveryType::Type(t)) if t == cluster::DiscoveryType::Eds as i32
    )
}

/// An outbound EDS cluster as a gRPC client gets it, like istiod's gRPC generator:
///
/// - discovery and `eds_cluster_config` as they are (EDS over ADS);
/// - `lb_policy`: `RING_HASH` (with its ring sizes) stays; everything else becomes gRPC's
///   default, round robin. gRPC's C-core (C++, Python, Ruby...) rejects `LEAST_REQUEST`,
///   `RANDOM` and `MAGLEV`, and Istio's default for Envoy is `LEAST_REQUEST`; istiod likewise
///   leaves the field unset for the default;
/// - circuit breakers: only `max_requests` (gRFC A32), and only when a DestinationRule limits it
///   (`http2MaxRequests`); Istio's "unlimited" default is left out;
/// - nothing else: connect and idle timeouts, HTTP protocol options, outlier detection (gRPC's
///   only understands success-rate and failure-percentage ejection, which Istio does not set),
///   locality settings and client TLS (gRPC accepts only certificate-provider TLS, with xDS
///   credentials in the client) are Envoy's.
pub fn grpc_cluster(c: Cluster) -> Cluster {
    let ring_hash = c.lb_policy == cluster::LbPolicy::RingHash as i32;
    let max_requests = c
        .circuit_breakers
        .as_ref()
        .and_then(|cb| cb.thresholds.first())
        .and_then(|t| t.max_requests)
        .filter(|m| m.value != u32::MAX);
    Cluster {
        name: c.name,
        alt_stat_name: c.alt_stat_name,
        cluster_discovery_type: c.cluster_discovery_type,
        eds_cluster_config: c.eds_cluster_config,
        lb_policy: if ring_hash {
            cluster::LbPolicy::RingHash as i32
        } else {
            cluster::LbPolicy::RoundRobin as i32
        },
        lb_config: if ring_hash { c.lb_config } else { None },
        circuit_breakers: max_requests.map(|m| CircuitBreakers {
            thresholds: vec![Thresholds {
                max_requests: Some(m),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
    use prost::Message;

    use super::super::testing::*;
    use super::super::translate;
    use super::*;
    use crate::node::Generator;

    const YAML: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: shop}
spec:
  hosts: [echo.shop.svc.cluster.local]
  addresses: [240.0.0.7]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 7070, name: grpc, protocol: GRPC}
  - {number: 8080, name: http, protocol: HTTP}
  endpoints: [{address: 127.0.4.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: shop}
spec:
  hosts: ["*.example.com"]
  location: MESH_EXTERNAL
  resolution: NONE
  ports: [{number: 443, name: tls, protocol: TLS}]
"#;

    #[test]
    fn an_api_listener_per_service_port() {
        let mesh = mesh(YAML);
        let mut node = sidecar("shop", "client", "127.0.4.9", &[]);
        node.generator = Generator::Grpc;
        let res = translate(&mesh, &node);
        assert_eq!(
            listener_names(&res),
            [
                "echo.shop.svc.cluster.local:7070",
                "echo.shop.svc.cluster.local:8080"
            ]
        );
        let l = listener(&res, "echo.shop.svc.cluster.local:7070");
        assert!(l.filter_chains.is_empty() && l.default_filter_chain.is_none());
        let any = l
            .api_listener
            .as_ref()
            .unwrap()
            .api_listener
            .as_ref()
            .unwrap();
        assert_eq!(
            any.type_url,
            "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
        );
        let hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
        assert_eq!(rds_name(&hcm), "echo.shop.svc.cluster.local:7070");
        let names: Vec<&str> = hcm.http_filters.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["envoy.filters.http.fault", "envoy.filters.http.router"]
        );
        route(&res, "echo.shop.svc.cluster.local:7070");
        route(&res, "echo.shop.svc.cluster.local:8080");
    }

    const DR: &str = r#"
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: shop}
spec:
  host: echo.shop.svc.cluster.local
  trafficPolicy:
    connectionPool: {http: {http2MaxRequests: 10}, tcp: {connectTimeout: 3s}}
    outlierDetection: {consecutive5xxErrors: 3, interval: 5s}
    tls: {mode: ISTIO_MUTUAL}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpHeaderName: x-user, ringHash: {minimumRingSize: 64}}
"#;

    fn grpc_clusters(yaml: &str) -> Vec<Cluster> {
        let mesh = mesh(yaml);
        let mut node = sidecar("shop", "client", "127.0.4.9", &[]);
        node.generator = Generator::Grpc;
        translate(&mesh, &node).clusters
    }

    #[test]
    fn clusters_carry_only_what_grpc_accepts() {
        let clusters = grpc_clusters(&format!("{YAML}{DR}"));
        let names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "outbound|7070||echo.shop.svc.cluster.local",
                "outbound|7070|v1|echo.shop.svc.cluster.local",
                "outbound|8080||echo.shop.svc.cluster.local",
                "outbound|8080|v1|echo.shop.svc.cluster.local",
            ]
        );
        let plain = &clusters[0];
        // Istio's LEAST_REQUEST default becomes gRPC's round robin.
        assert_eq!(plain.lb_policy, cluster::LbPolicy::RoundRobin as i32);
        assert!(plain.lb_config.is_none());
        assert!(is_eds(plain));
        let eds = plain.eds_cluster_config.as_ref().unwrap();
        assert!(
            eds.eds_config
                .as_ref()
                .unwrap()
                .config_source_specifier
                .is_some()
        );
        let thresholds = &plain.circuit_breakers.as_ref().unwrap().thresholds;
        assert_eq!(thresholds.len(), 1);
        assert_eq!(thresholds[0].max_requests.unwrap().value, 10);
        assert!(thresholds[0].max_connections.is_none());
        // Envoy-only settings are not sent.
        assert!(plain.transport_socket.is_none());
        assert!(plain.outlier_detection.is_none());
        assert!(plain.connect_timeout.is_none());
        assert!(plain.common_lb_config.is_none());
        assert!(plain.typed_extension_protocol_options.is_empty());

        let v1 = &clusters[1];
        assert_eq!(v1.lb_policy, cluster::LbPolicy::RingHash as i32);
        let Some(cluster::LbConfig::RingHashLbConfig(ring)) = &v1.lb_config else {
            panic!("no ring hash config: {v1:?}");
        };
        assert_eq!(ring.minimum_ring_size.unwrap().value, 64);
    }

    #[test]
    fn unlimited_requests_send_no_circuit_breaker() {
        let clusters = grpc_clusters(YAML);
        assert!(!clusters.is_empty());
        for c in &clusters {
            assert!(c.circuit_breakers.is_none(), "{c:?}");
            assert_eq!(c.lb_policy, cluster::LbPolicy::RoundRobin as i32);
        }
    }

    #[test]
    fn only_eds_clusters_are_kept() {
        let eds = Cluster {
            name: "a".into(),
            cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::Eds as i32,
            )),
            ..Default::default()
        };
        let dns = Cluster {
            name: "b".into(),
            cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::StrictDns as i32,
            )),
            ..Default::default()
        };
        assert!(is_eds(&eds));
        assert!(!is_eds(&dns));
        assert!(!is_eds(&Cluster::default()));
    }
}
