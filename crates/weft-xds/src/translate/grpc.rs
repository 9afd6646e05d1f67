//! Proxyless gRPC clients: for every service port they can see, an `api_listener` named
//! `host:port` (the name a `xds:///host:port` target asks for) whose connection manager takes
//! routes over RDS under the same name, as istiod's gRPC generator serves them. No socket
//! listeners: the client library is the proxy.

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
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
