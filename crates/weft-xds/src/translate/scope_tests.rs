use std::net::SocketAddr;

use super::super::testing::{mesh, sidecar};
use super::*;

const SERVICES: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: shop}
spec:
  hosts: [a.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 80, name: http, protocol: HTTP, targetPort: 8080}
  - {number: 9000, name: grpc-api}
  workloadSelector: {labels: {app: a}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b, namespace: other}
spec:
  hosts: [b.other.svc.cluster.local, api.example.com]
  location: MESH_INTERNAL
  resolution: DNS
  ports:
  - {number: 80, name: http, protocol: HTTP}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: hidden, namespace: other}
spec:
  hosts: [hidden.other.svc.cluster.local]
  exportTo: ["."]
  location: MESH_INTERNAL
  resolution: DNS
  ports:
  - {number: 80, name: http, protocol: HTTP}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: a-1, namespace: shop}
spec:
  address: 127.0.2.1
  labels: {app: a, version: v1}
  ports: {grpc-api: 9100}
"#;

fn hosts(scope: &Scope<'_>) -> Vec<String> {
    scope.services.iter().map(|s| s.hostname.clone()).collect()
}

fn node() -> crate::node::ProxyNode {
    sidecar(
        "shop",
        "a-1",
        "127.0.2.1",
        &[("app", "a"), ("version", "v1")],
    )
}

#[test]
fn without_sidecar_every_exported_service_is_visible() {
    let mesh = mesh(SERVICES);
    let node = node();
    let scope = Scope::new(&mesh, &node);
    assert!(scope.sidecar.is_none());
    assert_eq!(
        hosts(&scope),
        [
            "a.shop.svc.cluster.local",
            "api.example.com",
            "b.other.svc.cluster.local"
        ]
    );
    assert_eq!(scope.egress.len(), 1);
    assert!(scope.egress[0].listener.is_none());
    assert!(!scope.capture_none());
}

fn with(extra: &str) -> Mesh {
    mesh(&format!("{SERVICES}\n---\n{extra}"))
}

const ROOT_DEFAULT: &str = r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: istio-system}
spec:
  egress: [{hosts: ["*/api.example.com"]}]
"#;
const NS_DEFAULT: &str = r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  egress: [{hosts: ["./*"]}]
"#;
const SELECTING: &str = r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: a, namespace: shop}
spec:
  workloadSelector: {labels: {app: a}}
  egress: [{hosts: ["other/*"]}]
"#;
const SELECTING_OTHER: &str = r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: z, namespace: shop}
spec:
  workloadSelector: {labels: {app: z}}
  egress: [{hosts: ["~/*"]}]
"#;

#[test]
fn sidecar_selection_order() {
    let node = node();
    let name = |m: &Mesh| {
        Scope::new(m, &node)
            .sidecar
            .map(|(e, _)| format!("{}/{}", e.resource.namespace(), e.resource.name()))
    };
    let all = with(&[ROOT_DEFAULT, NS_DEFAULT, SELECTING_OTHER, SELECTING].join("\n---\n"));
    assert_eq!(name(&all).as_deref(), Some("shop/a"));
    let no_selecting = with(&[ROOT_DEFAULT, NS_DEFAULT, SELECTING_OTHER].join("\n---\n"));
    assert_eq!(name(&no_selecting).as_deref(), Some("shop/default"));
    let root_only = with(&[ROOT_DEFAULT, SELECTING_OTHER].join("\n---\n"));
    assert_eq!(name(&root_only).as_deref(), Some("istio-system/default"));
    // Another namespace's selector-less Sidecar does not apply.
    let elsewhere = with(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: other}\n\
         spec: {egress: [{hosts: [\"./*\"]}]}\n",
    );
    assert_eq!(name(&elsewhere), None);
}

#[test]
fn egress_hosts_scope_the_services() {
    let node = node();
    let cases: [(&str, &[&str]); 6] = [
        ("./*", &["a.shop.svc.cluster.local"]),
        ("other/*", &["api.example.com", "b.other.svc.cluster.local"]),
        ("*/api.example.com", &["api.example.com"]),
        ("*/*.example.com", &["api.example.com"]),
        ("~/*", &[]),
        // Not exported to shop, so never visible.
        ("other/hidden.other.svc.cluster.local", &[]),
    ];
    for (host, want) in cases {
        let m = with(&format!(
            "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: default, namespace: shop}}\n\
             spec: {{egress: [{{hosts: [\"{host}\"]}}]}}\n"
        ));
        let scope = Scope::new(&m, &node);
        assert_eq!(hosts(&scope), want, "{host}");
    }
}

#[test]
fn each_egress_listener_keeps_its_own_services() {
    let m = with(
        r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  egress:
  - port: {number: 80, protocol: HTTP, name: http}
    bind: 127.0.2.1
    captureMode: NONE
    hosts: ["./*"]
  - hosts: ["other/*"]
"#,
    );
    let node = node();
    let scope = Scope::new(&m, &node);
    assert_eq!(scope.egress.len(), 2);
    assert_eq!(scope.egress[0].services.len(), 1);
    assert_eq!(scope.egress[1].services.len(), 2);
    assert_eq!(scope.services.len(), 3);
    // The catch-all is not NONE, so capture stays.
    assert!(!scope.capture_none());
}

#[test]
fn inbound_ports_come_from_the_services_of_the_workload() {
    let mesh = mesh(SERVICES);
    let node = node();
    let scope = Scope::new(&mesh, &node);
    assert_eq!(scope.workload.map(|w| w.name.as_str()), Some("a-1"));
    let local = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    assert_eq!(
        scope.inbound,
        [
            // targetPort of the service port.
            InboundPort {
                port: 8080,
                protocol: "HTTP".into(),
                endpoint: local(8080),
                bind: None
            },
            // The workload's named port wins; the protocol comes from the port name.
            InboundPort {
                port: 9100,
                protocol: "GRPC".into(),
                endpoint: local(9100),
                bind: None
            },
        ]
    );
}

#[test]
fn the_workload_is_found_by_address_too() {
    let mesh = mesh(SERVICES);
    let node = sidecar("shop", "a-1-pod-xyz", "127.0.2.1", &[("app", "a")]);
    let scope = Scope::new(&mesh, &node);
    assert_eq!(scope.workload.map(|w| w.name.as_str()), Some("a-1"));
}

#[test]
fn sidecar_ingress_listeners_replace_the_service_ports() {
    let m = with(
        r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  ingress:
  - port: {number: 18080, protocol: HTTP, name: http}
    captureMode: NONE
    defaultEndpoint: 127.0.0.1:8080
  - port: {number: 19000, name: tcp-x}
    bind: 127.0.2.9
    captureMode: NONE
    defaultEndpoint: 0.0.0.0:9000
  - port: {number: 19100, protocol: TCP, name: tcp}
    captureMode: NONE
  egress:
  - port: {number: 80, protocol: HTTP, name: http}
    bind: 127.0.2.1
    captureMode: NONE
    hosts: ["./*"]
"#,
    );
    let node = node();
    let scope = Scope::new(&m, &node);
    assert!(scope.capture_none());
    let got: Vec<(u16, &str, SocketAddr, Option<IpAddr>)> = scope
        .inbound
        .iter()
        .map(|i| (i.port, i.protocol.as_str(), i.endpoint, i.bind))
        .collect();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(
        got,
        [
            (
                18080,
                "HTTP",
                "127.0.0.1:8080".parse().unwrap(),
                Some(ip("127.0.2.1"))
            ),
            // 0.0.0.0 means the proxy's own address; an explicit bind wins.
            (
                19000,
                "TCP",
                "127.0.2.1:9000".parse().unwrap(),
                Some(ip("127.0.2.9"))
            ),
            // No defaultEndpoint: loopback on the same port.
            (
                19100,
                "TCP",
                "127.0.0.1:19100".parse().unwrap(),
                Some(ip("127.0.2.1"))
            ),
        ]
    );
}

#[test]
fn ingress_behind_capture_has_no_bind() {
    let m = with(
        r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  ingress:
  - port: {number: 18080, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:8080
"#,
    );
    let node = node();
    let scope = Scope::new(&m, &node);
    assert!(!scope.capture_none());
    assert_eq!(scope.inbound.len(), 1);
    assert_eq!(scope.inbound[0].bind, None);
}

#[test]
fn outbound_policy_and_gateway_servers() {
    let m = with(
        r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: shop}
spec:
  selector: {app: a}
  servers:
  - port: {number: 8081, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: other, namespace: shop}
spec:
  selector: {app: b}
  servers:
  - port: {number: 8082, name: http, protocol: HTTP}
    hosts: ["*"]
"#,
    );
    let node = node();
    let scope = Scope::new(&m, &node);
    assert_eq!(
        scope.outbound_traffic_policy(),
        OutboundTrafficPolicy::RegistryOnly
    );
    let servers = scope.gateway_servers();
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0].gateway.resource.name(), "gw");
}
