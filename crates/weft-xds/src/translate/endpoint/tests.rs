use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, CommonLbConfig, DiscoveryType,
    common_lb_config::{LocalityConfigSpecifier, LocalityWeightedLbConfig},
};
use envoy_types::pb::envoy::config::core::v3::address;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, lb_endpoint::HostIdentifier,
};

use super::*;
use crate::translate::cluster::outbound_clusters;
use crate::translate::cluster::test_support::{accept, mesh, node};

const SHOP: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc, namespace: shop}
spec:
  hosts: [svc.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 8080, name: http, protocol: HTTP, targetPort: 9000}
  workloadSelector:
    labels: {app: svc}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: a, namespace: shop}
spec: {address: 10.0.0.1, locality: r1/z1/s1, labels: {app: svc, version: v1}, weight: 2}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: b, namespace: shop}
spec: {address: 10.0.0.2, locality: r1/z1/s2, labels: {app: svc, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: c, namespace: shop}
spec: {address: 10.0.0.3, locality: r1/z2, labels: {app: svc, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: d, namespace: shop}
spec: {address: 10.0.0.4, locality: r2/z3, labels: {app: svc, version: v2}, ports: {http: 9999}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: e, namespace: shop}
spec: {address: 10.0.0.5, locality: r3/z4, labels: {app: svc}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: by-name, namespace: shop}
spec: {address: vm.example.com, labels: {app: svc}}
"#;

const PLAIN: &str = "outbound|8080||svc.shop.svc.cluster.local";

/// Clusters and assignments for a proxy in `shop` at `r1/z1/s1` labelled `version: v1`.
fn translate(extra: &str) -> (Vec<Cluster>, Vec<ClusterLoadAssignment>) {
    let yaml = if extra.is_empty() {
        SHOP.to_owned()
    } else {
        format!("{SHOP}---\n{extra}")
    };
    let mesh = mesh(&yaml);
    let node = node("shop", &[("version", "v1")], "r1/z1/s1");
    let scope = Scope::new(&mesh, &node);
    let clusters = outbound_clusters(&scope);
    let cla = endpoints(&scope, &clusters);
    assert_eq!(endpoints(&scope, &clusters), cla, "deterministic");
    for a in &cla {
        check_accepted(a);
    }
    (clusters, cla)
}

/// weft's proxy accepts the assignment (inline in a STATIC cluster, locality-weighted).
fn check_accepted(cla: &ClusterLoadAssignment) {
    let c = Cluster {
        name: cla.cluster_name.clone(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        common_lb_config: Some(CommonLbConfig {
            locality_config_specifier: Some(LocalityConfigSpecifier::LocalityWeightedLbConfig(
                LocalityWeightedLbConfig {},
            )),
            ..Default::default()
        }),
        load_assignment: Some(cla.clone()),
        ..Default::default()
    };
    accept(&[c]);
}

fn get<'a>(cla: &'a [ClusterLoadAssignment], name: &str) -> &'a ClusterLoadAssignment {
    cla.iter().find(|c| c.cluster_name == name).unwrap()
}

/// `(address:port, weight, priority)` per endpoint, in order.
fn flat(cla: &ClusterLoadAssignment) -> Vec<(String, u32, u32)> {
    let mut out = Vec::new();
    for l in &cla.endpoints {
        for e in &l.lb_endpoints {
            let Some(HostIdentifier::Endpoint(ep)) = &e.host_identifier else {
                panic!()
            };
            let addr = match ep.address.as_ref().unwrap().address.as_ref().unwrap() {
                address::Address::SocketAddress(sa) => match sa.port_specifier {
                    Some(PortSpecifier::PortValue(p)) => format!("{}:{p}", sa.address),
                    _ => panic!(),
                },
                address::Address::Pipe(p) => p.path.clone(),
                other => panic!("{other:?}"),
            };
            out.push((addr, e.load_balancing_weight.unwrap().value, l.priority));
        }
    }
    out
}

fn locality_weights(cla: &ClusterLoadAssignment) -> Vec<(String, u32)> {
    cla.endpoints
        .iter()
        .map(|l| {
            let loc = l.locality.clone().unwrap_or_default();
            (
                format!("{}/{}/{}", loc.region, loc.zone, loc.sub_zone),
                l.load_balancing_weight.unwrap().value,
            )
        })
        .collect()
}

#[test]
fn eds_endpoints_grouped_by_locality_with_weights() {
    let (clusters, cla) = translate("");
    let eds_count = clusters
        .iter()
        .filter(|c| c.eds_cluster_config.is_some())
        .count();
    assert_eq!(cla.len(), eds_count, "one assignment per EDS cluster");
    let a = get(&cla, PLAIN);
    assert_eq!(
        flat(a),
        vec![
            ("10.0.0.1:9000".into(), 2, 0),
            ("10.0.0.2:9000".into(), 1, 0),
            ("10.0.0.3:9000".into(), 1, 0),
            ("10.0.0.4:9999".into(), 1, 0),
            ("10.0.0.5:9000".into(), 1, 0),
        ],
        "host names are left to DNS clusters; no failover without outlier detection"
    );
    assert_eq!(
        locality_weights(a),
        vec![
            ("r1/z1/s1".into(), 2),
            ("r1/z1/s2".into(), 1),
            ("r1/z2/".into(), 1),
            ("r2/z3/".into(), 1),
            ("r3/z4/".into(), 1),
        ]
    );
}

#[test]
fn subset_assignments_select_by_labels() {
    let (_, cla) = translate(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc, namespace: shop}
spec:
  host: svc
  subsets:
  - {name: v2, labels: {version: v2}}
"#,
    );
    let v2 = get(&cla, "outbound|8080|v2|svc.shop.svc.cluster.local");
    let addrs: Vec<String> = flat(v2).into_iter().map(|e| e.0).collect();
    assert_eq!(addrs, vec!["10.0.0.2:9000", "10.0.0.4:9999"]);
}

const OUTLIER: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc, namespace: shop}
spec:
  host: svc
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 3}
"#;

#[test]
fn failover_priorities_by_proximity_only_with_outlier_detection() {
    let (_, cla) = translate(OUTLIER);
    let prio: Vec<u32> = flat(get(&cla, PLAIN)).into_iter().map(|e| e.2).collect();
    // Same subzone, same zone, same region, elsewhere (twice).
    assert_eq!(prio, vec![0, 1, 2, 3, 3]);
}

#[test]
fn disabled_locality_lb_sets_no_priorities() {
    let (_, cla) = translate(&format!(
        "{OUTLIER}    loadBalancer:\n      localityLbSetting: {{enabled: false}}\n"
    ));
    assert!(flat(get(&cla, PLAIN)).iter().all(|e| e.2 == 0));
}

#[test]
fn failover_regions() {
    let (_, cla) = translate(&format!(
        "{OUTLIER}    loadBalancer:\n      localityLbSetting:\n        failover: [{{from: r1, to: r3}}]\n"
    ));
    let by_addr: Vec<(String, u32)> = flat(get(&cla, PLAIN))
        .into_iter()
        .map(|e| (e.0, e.2))
        .collect();
    assert_eq!(
        by_addr,
        vec![
            ("10.0.0.1:9000".into(), 0),
            ("10.0.0.2:9000".into(), 1),
            ("10.0.0.3:9000".into(), 2),
            ("10.0.0.4:9999".into(), 4),
            ("10.0.0.5:9000".into(), 3),
        ],
        "the failover region comes before other regions"
    );
}

#[test]
fn failover_priority_labels_split_localities() {
    let (_, cla) = translate(&format!(
        "{OUTLIER}    loadBalancer:\n      localityLbSetting:\n        failoverPriority: [version]\n"
    ));
    let a = get(&cla, PLAIN);
    let mut by_addr: Vec<(String, u32)> = flat(a).into_iter().map(|e| (e.0, e.2)).collect();
    by_addr.sort();
    assert_eq!(
        by_addr,
        vec![
            ("10.0.0.1:9000".into(), 0),
            ("10.0.0.2:9000".into(), 1),
            ("10.0.0.3:9000".into(), 0),
            ("10.0.0.4:9999".into(), 1),
            ("10.0.0.5:9000".into(), 1),
        ]
    );
    // Each split locality carries its own endpoints' weight.
    let first = a.endpoints.iter().find(|l| l.priority == 0).unwrap();
    assert_eq!(first.load_balancing_weight.unwrap().value, 2);

    // `key=value` compares against the given value instead of the proxy's label; with
    // `failover` too, region proximity refines the label priorities.
    let (_, cla) = translate(&format!(
        "{OUTLIER}    loadBalancer:\n      localityLbSetting:\n        failoverPriority: [version=v2]\n        failover: [{{from: r1, to: r2}}]\n"
    ));
    let mut by_addr: Vec<(String, u32)> = flat(get(&cla, PLAIN))
        .into_iter()
        .map(|e| (e.0, e.2))
        .collect();
    by_addr.sort();
    assert_eq!(
        by_addr,
        vec![
            ("10.0.0.1:9000".into(), 2),
            ("10.0.0.2:9000".into(), 0),
            ("10.0.0.3:9000".into(), 3),
            ("10.0.0.4:9999".into(), 1),
            ("10.0.0.5:9000".into(), 4),
        ]
    );
}

#[test]
fn failover_priority_on_topology_labels() {
    let (_, cla) = translate(&format!(
        "{OUTLIER}    loadBalancer:\n      localityLbSetting:\n        failoverPriority: [topology.kubernetes.io/region, topology.kubernetes.io/zone]\n"
    ));
    let prio: Vec<u32> = flat(get(&cla, PLAIN)).into_iter().map(|e| e.2).collect();
    assert_eq!(prio, vec![0, 0, 1, 2, 2]);
}

#[test]
fn distribute_sets_locality_weights() {
    let (_, cla) = translate(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc, namespace: shop}
spec:
  host: svc
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        distribute:
        - from: "r9/*"
          to: {"r9/*": 100}
        - from: "r1/*"
          to: {"r1/z1/*": 70, "r2/*": 30}
"#,
    );
    let a = get(&cla, PLAIN);
    assert_eq!(
        locality_weights(a),
        vec![
            ("r1/z1/s1".into(), 47),
            ("r1/z1/s2".into(), 24),
            ("r1/z2/".into(), 1),
            ("r2/z3/".into(), 30),
            ("r3/z4/".into(), 1),
        ],
        "shares split by the localities' own weights, rounded up"
    );
    let counts: Vec<usize> = a.endpoints.iter().map(|l| l.lb_endpoints.len()).collect();
    assert_eq!(
        counts,
        vec![1, 1, 0, 1, 0],
        "unlisted localities lose their endpoints"
    );
}

#[test]
fn unix_sockets_are_pipes_and_other_clusters_get_nothing() {
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: local, namespace: shop}
spec:
  hosts: [local.shop.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: "unix:///var/run/app.sock"}]
"#;
    let mesh = mesh(yaml);
    let node = node("shop", &[], "");
    let scope = Scope::new(&mesh, &node);
    let clusters = outbound_clusters(&scope);
    let cla = endpoints(&scope, &clusters);
    assert_eq!(cla.len(), 1, "BlackHole and Passthrough are not EDS");
    assert_eq!(flat(&cla[0]), vec![("/var/run/app.sock".to_owned(), 1, 0)]);

    // An EDS cluster whose service is gone gets an empty assignment.
    let stale = Cluster {
        name: "outbound|80||gone.example.com".into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        ..Default::default()
    };
    let cla = endpoints(&scope, &[stale]);
    assert_eq!(cla.len(), 1);
    assert_eq!(cla[0].cluster_name, "outbound|80||gone.example.com");
    assert!(cla[0].endpoints.is_empty());
}
