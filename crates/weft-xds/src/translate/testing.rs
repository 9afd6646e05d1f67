//! Test helpers: a mesh from Istio YAML, proxy nodes, and the check that weft's own proxy
//! accepts what translation emits.

use std::collections::BTreeSet;
use std::path::Path;

use envoy_types::pb::envoy::config::bootstrap::v3::{Bootstrap, bootstrap};
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::listener::v3::{Filter, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    TcpProxy, tcp_proxy::ClusterSpecifier,
};
use prost::Message;
use weft_analyze::ConfigSet;
use weft_api::Loader;

use super::filters::{self, HCM, TCP_PROXY};
use crate::mesh::{Mesh, MeshOptions};
use crate::node::{Generator, ProxyKind, ProxyNode};
use crate::resources::Resources;

/// A mesh from YAML documents (resources without a namespace land in `default`).
pub(crate) fn mesh(yaml: &str) -> Mesh {
    mesh_with(yaml, MeshOptions::default())
}

/// [`mesh`] with mesh options.
pub(crate) fn mesh_with(yaml: &str, options: MeshOptions) -> Mesh {
    let mesh = mesh_unchecked_with(yaml, options);
    for r in mesh.config.entries() {
        let issues = r.resource.validate();
        assert!(
            issues
                .iter()
                .all(|i| i.severity != weft_api::Severity::Error),
            "{}: {issues:?}",
            r.resource.name()
        );
    }
    mesh
}

/// A mesh from YAML that must load but may fail validation: translation must cope with
/// whatever reaches it.
pub(crate) fn mesh_unchecked(yaml: &str) -> Mesh {
    mesh_unchecked_with(yaml, MeshOptions::default())
}

fn mesh_unchecked_with(yaml: &str, options: MeshOptions) -> Mesh {
    let mut out = weft_api::load::LoadResult::default();
    Loader::default().load_str(Path::new("test.yaml"), yaml, &mut out);
    assert!(out.findings.is_empty(), "load findings: {:?}", out.findings);
    Mesh::new(ConfigSet::new(out.resources), options)
}

/// A sidecar in `namespace` named `workload` with `labels` and address `ip`.
pub(crate) fn sidecar(
    namespace: &str,
    workload: &str,
    ip: &str,
    labels: &[(&str, &str)],
) -> ProxyNode {
    ProxyNode {
        id: format!("sidecar~{ip}~{workload}.{namespace}~{namespace}.svc.cluster.local"),
        kind: ProxyKind::Sidecar,
        generator: Generator::Envoy,
        ips: vec![ip.parse().unwrap()],
        namespace: namespace.to_owned(),
        workload: workload.to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        service_account: String::new(),
        cluster_id: String::new(),
        dns_domain: format!("{namespace}.svc.cluster.local"),
        locality: Default::default(),
    }
}

/// A gateway (router) node.
pub(crate) fn router(
    namespace: &str,
    workload: &str,
    ip: &str,
    labels: &[(&str, &str)],
) -> ProxyNode {
    ProxyNode {
        kind: ProxyKind::Router,
        ..sidecar(namespace, workload, ip, labels)
    }
}

/// The listener named `name`.
pub(crate) fn listener<'r>(res: &'r Resources, name: &str) -> &'r Listener {
    res.listeners
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| {
            let names: Vec<&str> = res.listeners.iter().map(|l| l.name.as_str()).collect();
            panic!("no listener {name:?} among {names:?}")
        })
}

/// The names of all listeners, sorted.
pub(crate) fn listener_names(res: &Resources) -> Vec<String> {
    let mut v: Vec<String> = res.listeners.iter().map(|l| l.name.clone()).collect();
    v.sort();
    v
}

/// A network filter's HTTP connection manager, if it is one.
pub(crate) fn as_hcm(f: &Filter) -> Option<HttpConnectionManager> {
    match &f.config_type {
        Some(filter::ConfigType::TypedConfig(any)) if f.name == HCM => {
            HttpConnectionManager::decode(any.value.as_slice()).ok()
        }
        _ => None,
    }
}

/// A network filter's TCP proxy, if it is one.
pub(crate) fn as_tcp(f: &Filter) -> Option<TcpProxy> {
    match &f.config_type {
        Some(filter::ConfigType::TypedConfig(any)) if f.name == TCP_PROXY => {
            TcpProxy::decode(any.value.as_slice()).ok()
        }
        _ => None,
    }
}

/// The RDS name an HTTP connection manager uses.
pub(crate) fn rds_name(h: &HttpConnectionManager) -> String {
    match &h.route_specifier {
        Some(RouteSpecifier::Rds(r)) => r.route_config_name.clone(),
        other => panic!("not RDS: {other:?}"),
    }
}

/// The single cluster a TCP proxy forwards to.
pub(crate) fn tcp_cluster(t: &TcpProxy) -> String {
    match &t.cluster_specifier {
        Some(ClusterSpecifier::Cluster(c)) => c.clone(),
        other => panic!("not a single cluster: {other:?}"),
    }
}

/// Every cluster name a listener's TCP proxies name.
fn referenced_clusters(listeners: &[Listener]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for l in listeners {
        for fc in l.filter_chains.iter().chain(l.default_filter_chain.iter()) {
            for f in &fc.filters {
                if let Some(t) = as_tcp(f) {
                    match t.cluster_specifier {
                        Some(ClusterSpecifier::Cluster(c)) => {
                            out.insert(c);
                        }
                        Some(ClusterSpecifier::WeightedClusters(w)) => {
                            out.extend(w.clusters.into_iter().map(|c| c.name));
                        }
                        None => {}
                    }
                }
            }
        }
    }
    out
}

/// Runs weft's proxy converter over the listeners of `res` in a bootstrap with a control
/// plane. The proxy does not take RDS yet, so every connection manager gets the route table
/// it names inline (an empty one when translation emitted none); clusters named by TCP
/// proxies that translation did not emit are stubbed as empty static clusters.
pub(crate) fn convert(res: &Resources) -> weft_proxy_config::model::ProxyConfig {
    let listeners: Vec<Listener> = res
        .listeners
        .iter()
        .map(|l| {
            let mut l = l.clone();
            for fc in l
                .filter_chains
                .iter_mut()
                .chain(l.default_filter_chain.iter_mut())
            {
                for f in &mut fc.filters {
                    if let Some(mut h) = as_hcm(f) {
                        let name = rds_name(&h);
                        let mut rc = res
                            .routes
                            .iter()
                            .find(|r| r.name == name)
                            .cloned()
                            .unwrap_or_else(|| panic!("no route configuration {name:?}"));
                        rc.validate_clusters = filters::bool_value(false);
                        h.route_specifier = Some(RouteSpecifier::RouteConfig(rc));
                        *f = filters::hcm_filter(&h);
                    }
                }
            }
            l
        })
        .collect();
    let mut clusters = res.clusters.clone();
    for name in referenced_clusters(&listeners) {
        if !clusters.iter().any(|c| c.name == name) {
            clusters.push(Cluster {
                name,
                cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
                    cluster::DiscoveryType::Static as i32,
                )),
                ..Default::default()
            });
        }
    }
    let bootstrap = Bootstrap {
        static_resources: Some(bootstrap::StaticResources {
            listeners,
            clusters,
            ..Default::default()
        }),
        ..Default::default()
    };
    let bootstrap = with_ads(bootstrap);
    weft_proxy_config::convert_bootstrap(&bootstrap, Path::new("/"))
        .unwrap_or_else(|e| panic!("weft's proxy rejects the translation: {e}"))
}

/// Route configurations by name, to assert one exists.
pub(crate) fn route<'r>(res: &'r Resources, name: &str) -> &'r RouteConfiguration {
    res.routes
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no route configuration {name:?}"))
}

/// `bootstrap` with what a proxy fed by ADS has: `dynamic_resources` with an `ads_config` over
/// gRPC to a static `xds-grpc` cluster (weft accepts RDS and EDS only then).
pub(crate) fn with_ads(mut bootstrap: Bootstrap) -> Bootstrap {
    use envoy_types::pb::envoy::config::core::v3::{
        ApiConfigSource, ApiVersion, GrpcService, api_config_source::ApiType, grpc_service,
    };
    let statics = bootstrap.static_resources.get_or_insert_default();
    statics.clusters.push(Cluster {
        name: "xds-grpc".to_owned(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static as i32,
        )),
        load_assignment: Some(crate::translate::endpoint::single_endpoint(
            "xds-grpc",
            std::net::SocketAddr::from(([127, 0, 0, 1], 15010)),
        )),
        ..Default::default()
    });
    bootstrap.dynamic_resources = Some(bootstrap::DynamicResources {
        lds_config: Some(filters::ads_config_source()),
        cds_config: Some(filters::ads_config_source()),
        ads_config: Some(ApiConfigSource {
            api_type: ApiType::Grpc as i32,
            transport_api_version: ApiVersion::V3 as i32,
            grpc_services: vec![GrpcService {
                target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                    grpc_service::EnvoyGrpc {
                        cluster_name: "xds-grpc".to_owned(),
                        ..Default::default()
                    },
                )),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    });
    bootstrap
}
