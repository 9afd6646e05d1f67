use std::path::Path;

use weft_api::load::{LoadResult, Loader};

use crate::{Address, ExportTo, Locality, Protocol, Registry, resolve_short_name};

fn registry(yaml: &str) -> Registry {
    let mut out = LoadResult::default();
    Loader::default().load_str(Path::new("t.yaml"), yaml, &mut out);
    assert!(out.findings.is_empty(), "{:?}", out.findings);
    let (reg, issues) = Registry::from_resources(out.resources.iter().map(|l| &l.resource));
    assert!(issues.is_empty(), "{issues:?}");
    reg
}

const REVIEWS: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews.bookinfo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 9080, name: http, protocol: HTTP, targetPort: 8080}
  - {number: 9443, name: tls-secure, protocol: TLS}
  workloadSelector:
    labels: {app: reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: bookinfo}
spec:
  address: 10.0.0.1
  labels: {app: reviews, version: v1}
  locality: us-east/zone-a
  serviceAccount: reviews
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: bookinfo}
spec:
  address: 10.0.0.2
  labels: {app: reviews, version: v2}
  ports: {http: 9999}
  weight: 3
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-elsewhere, namespace: other}
spec:
  address: 10.0.0.3
  labels: {app: reviews, version: v1}
"#;

#[test]
fn selector_picks_workload_entries_in_the_same_namespace() {
    let reg = registry(REVIEWS);
    let svc = reg
        .service("reviews.bookinfo.svc.cluster.local", "bookinfo")
        .unwrap();
    assert_eq!(svc.ports[0].protocol, Protocol::Http);
    let eps = reg.endpoints(svc, 9080);
    let addrs: Vec<String> = eps
        .iter()
        .map(|e| format!("{}:{}", e.workload.address, e.port))
        .collect();
    // targetPort applies unless the workload names its own port for "http".
    assert_eq!(addrs, ["10.0.0.1:8080", "10.0.0.2:9999"]);
    assert_eq!(eps[0].workload.locality, Locality::parse("us-east/zone-a"));
    assert_eq!(eps[1].workload.weight, 3);
    assert!(reg.endpoints(svc, 1234).is_empty());
}

#[test]
fn subsets_filter_by_labels() {
    let reg = registry(REVIEWS);
    let svc = reg
        .service("reviews.bookinfo.svc.cluster.local", "bookinfo")
        .unwrap();
    let v2 = reg.subset_endpoints(svc, 9080, &[("version".into(), "v2".into())].into());
    assert_eq!(v2.len(), 1);
    assert_eq!(v2[0].workload.name, "reviews-v2");
    let v9 = reg.subset_endpoints(svc, 9080, &[("version".into(), "v9".into())].into());
    assert!(v9.is_empty());
}

#[test]
fn inline_endpoints_belong_to_their_service_only() {
    let reg = registry(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: data}
spec:
  hosts: [db.example.com]
  resolution: STATIC
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  endpoints:
  - address: 192.0.2.1
  - address: unix:///var/run/db.sock
"#,
    );
    let svc = reg.service("db.example.com", "data").unwrap();
    let eps = reg.endpoints(svc, 5432);
    assert_eq!(eps.len(), 2);
    assert_eq!(
        eps[1].workload.address,
        Address::Unix("/var/run/db.sock".into())
    );
    // Inline endpoints are not workloads a selector can pick.
    assert!(reg.select("data", &Default::default()).is_empty());
}

#[test]
fn dns_service_without_endpoints_resolves_its_host() {
    let reg = registry(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: egress}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
"#,
    );
    let svc = reg.service("api.example.com", "egress").unwrap();
    assert!(svc.mesh_external);
    let eps = reg.endpoints(svc, 443);
    assert_eq!(
        eps[0].workload.address,
        Address::Hostname("api.example.com".into())
    );
    assert_eq!(eps[0].port, 443);
}

#[test]
fn export_to_limits_visibility_and_wildcards_match() {
    let reg = registry(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: private, namespace: a}
spec:
  hosts: ["*.internal.example.com"]
  exportTo: ["."]
  resolution: NONE
  ports: [{number: 80, name: http, protocol: HTTP}]
"#,
    );
    assert_eq!(reg.lookup("x.internal.example.com", "a").len(), 1);
    assert!(reg.lookup("x.internal.example.com", "b").is_empty());
    assert!(reg.lookup("internal.example.com", "a").is_empty());
    assert_eq!(
        reg.services()[0].export_to,
        ExportTo::Namespaces(["a".to_owned()].into())
    );
    // The exact-name lookup does not accept a wildcard service.
    assert!(reg.service("x.internal.example.com", "a").is_none());
}

#[test]
fn short_names_expand_like_istio() {
    assert_eq!(
        resolve_short_name("reviews", "bookinfo"),
        "reviews.bookinfo.svc.cluster.local"
    );
    assert_eq!(
        resolve_short_name("reviews.bookinfo", "x"),
        "reviews.bookinfo"
    );
    assert_eq!(resolve_short_name("*", "x"), "*");
}

#[test]
fn localities_parse_and_print() {
    let l = Locality::parse("us-east/zone-a/rack-1");
    assert_eq!(l.subzone, "rack-1");
    assert_eq!(l.to_string(), "us-east/zone-a/rack-1");
    assert_eq!(Locality::parse("eu").to_string(), "eu");
}
