use envoy_types::pb::envoy::config::listener::v3::Listener;

use super::super::testing::*;
use super::super::translate;
use crate::mesh::{MeshOptions, OutboundTrafficPolicy};
use crate::naming;
use crate::resources::Resources;

/// Two services in `shop`: `web` (HTTP 8080 on workloads `app: web`) and `db` (TCP 5432),
/// an external TCP service with an address, and one WorkloadEntry per app on loopback
/// addresses.
const SERVICES: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: shop}
spec:
  hosts: [web.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 8080, name: http, protocol: HTTP}
  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: shop}
spec:
  hosts: [db.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 5432, name: tcp, protocol: TCP}
  workloadSelector: {labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: legacy, namespace: shop}
spec:
  hosts: [legacy.example.com]
  addresses: [240.0.0.10]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports:
  - {number: 5432, name: tcp, protocol: TCP}
  endpoints:
  - address: 127.0.9.9
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: shop}
spec: {address: 127.0.1.1, labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-1, namespace: shop}
spec: {address: 127.0.1.2, labels: {app: db}}
"#;

fn chain_filters(l: &Listener) -> Vec<&envoy_types::pb::envoy::config::listener::v3::Filter> {
    l.filter_chains
        .iter()
        .chain(l.default_filter_chain.iter())
        .flat_map(|c| c.filters.iter())
        .collect()
}

fn address(l: &Listener) -> (String, u32) {
    use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
    match l.address.as_ref().and_then(|a| a.address.as_ref()) {
        Some(address::Address::SocketAddress(s)) => match s.port_specifier {
            Some(socket_address::PortSpecifier::PortValue(p)) => (s.address.clone(), p),
            _ => panic!("no port"),
        },
        _ => panic!("no socket address"),
    }
}

fn web_sidecar(yaml_extra: &str) -> Resources {
    let mesh = mesh(&format!("{SERVICES}\n---\n{yaml_extra}"));
    let node = sidecar("shop", "web-1", "127.0.1.1", &[("app", "web")]);
    translate(&mesh, &node)
}

#[test]
fn capture_mode_has_virtual_listeners_and_per_port_outbound_listeners() {
    let res = web_sidecar("");
    assert_eq!(
        listener_names(&res),
        [
            "0.0.0.0_5432",
            "0.0.0.0_8080",
            "240.0.0.10_5432",
            "virtualInbound",
            "virtualOutbound"
        ]
    );
    let vo = listener(&res, naming::VIRTUAL_OUTBOUND_LISTENER);
    assert_eq!(address(vo), ("0.0.0.0".into(), 15001));
    assert_eq!(vo.use_original_dst.as_ref().map(|b| b.value), Some(true));
    assert_eq!(
        vo.listener_filters[0].name,
        "envoy.filters.listener.original_dst"
    );
    // Connections to 15001 itself are dropped; the rest pass through (ALLOW_ANY).
    let chains: Vec<String> = vo
        .filter_chains
        .iter()
        .map(|c| tcp_cluster(&as_tcp(&c.filters[0]).unwrap()))
        .collect();
    assert_eq!(chains, ["BlackHoleCluster", "PassthroughCluster"]);

    let http = listener(&res, "0.0.0.0_8080");
    assert_eq!(http.bind_to_port.as_ref().map(|b| b.value), Some(false));
    let hcm = as_hcm(&http.filter_chains[0].filters[0]).unwrap();
    assert_eq!(rds_name(&hcm), "8080");
    assert_eq!(hcm.stat_prefix, "outbound_0.0.0.0_8080");
    assert_eq!(
        hcm.use_remote_address.as_ref().map(|b| b.value),
        Some(false)
    );
    let names: Vec<&str> = hcm.http_filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "envoy.filters.http.fault",
            "envoy.filters.http.cors",
            "envoy.filters.http.router"
        ]
    );
    // An explicit HTTP port is not sniffed: its connection manager takes everything.
    assert!(http.listener_filters.is_empty());
    assert_eq!(http.filter_chains.len(), 1);
    assert!(http.default_filter_chain.is_none());
    route(&res, "8080");

    // TCP without an address: the wildcard listener's only chain goes to the service.
    let db = listener(&res, "0.0.0.0_5432");
    let t = as_tcp(&db.filter_chains[0].filters[0]).unwrap();
    assert_eq!(tcp_cluster(&t), "outbound|5432||db.shop.svc.cluster.local");
    assert_eq!(t.stat_prefix, "outbound|5432||db.shop.svc.cluster.local");
    // TCP with an address: its own listener on the address.
    let legacy = listener(&res, "240.0.0.10_5432");
    assert_eq!(
        tcp_cluster(&as_tcp(&legacy.filter_chains[0].filters[0]).unwrap()),
        "outbound|5432||legacy.example.com"
    );
    convert(&res);
}

#[test]
fn virtual_inbound_has_a_chain_per_inbound_port() {
    let res = web_sidecar("");
    let vi = listener(&res, naming::VIRTUAL_INBOUND_LISTENER);
    assert_eq!(address(vi), ("0.0.0.0".into(), 15006));
    assert_eq!(vi.use_original_dst.as_ref().map(|b| b.value), Some(true));
    let ports: Vec<Option<u32>> = vi
        .filter_chains
        .iter()
        .map(|c| {
            c.filter_chain_match
                .as_ref()
                .and_then(|m| m.destination_port.as_ref())
                .map(|p| p.value)
        })
        .collect();
    assert_eq!(ports, [Some(15006), Some(8080)]);
    let hcm = as_hcm(&vi.filter_chains[1].filters[0]).unwrap();
    assert_eq!(rds_name(&hcm), "inbound|8080||");
    assert_eq!(hcm.stat_prefix, "inbound_0.0.0.0_8080");
    route(&res, "inbound|8080||");
    let passthrough = vi.default_filter_chain.as_ref().unwrap();
    assert_eq!(
        tcp_cluster(&as_tcp(&passthrough.filters[0]).unwrap()),
        "PassthroughCluster"
    );
    convert(&res);
}

#[test]
fn registry_only_falls_through_to_the_black_hole() {
    let mesh = mesh_with(
        SERVICES,
        MeshOptions {
            outbound_traffic_policy: OutboundTrafficPolicy::RegistryOnly,
            ..Default::default()
        },
    );
    let node = sidecar("shop", "web-1", "127.0.1.1", &[("app", "web")]);
    let res = translate(&mesh, &node);
    let vo = listener(&res, naming::VIRTUAL_OUTBOUND_LISTENER);
    let last = vo.filter_chains.last().unwrap();
    assert_eq!(
        tcp_cluster(&as_tcp(&last.filters[0]).unwrap()),
        "BlackHoleCluster"
    );
    // Per-port listeners without a chain for every destination fall through the same way.
    let legacy = listener(&res, "240.0.0.10_5432");
    assert!(legacy.default_filter_chain.is_none());
    let mesh2 = mesh_with(
        &format!(
            "{SERVICES}\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n\
             metadata: {{name: net, namespace: shop}}\n\
             spec: {{hosts: [net.example.com], addresses: [240.1.0.0/16], location: MESH_EXTERNAL, \
             resolution: STATIC, ports: [{{number: 6000, name: tcp, protocol: TCP}}], \
             endpoints: [{{address: 127.0.5.5}}]}}\n"
        ),
        MeshOptions {
            outbound_traffic_policy: OutboundTrafficPolicy::RegistryOnly,
            ..Default::default()
        },
    );
    let res2 = translate(&mesh2, &node);
    let cidr = listener(&res2, "0.0.0.0_6000");
    let m = cidr.filter_chains[0].filter_chain_match.as_ref().unwrap();
    assert_eq!(m.prefix_ranges[0].address_prefix, "240.1.0.0");
    assert_eq!(m.prefix_ranges[0].prefix_len.as_ref().unwrap().value, 16);
    let dflt = cidr.default_filter_chain.as_ref().unwrap();
    assert_eq!(dflt.name, "PassthroughFilterChain");
    assert_eq!(
        tcp_cluster(&as_tcp(&dflt.filters[0]).unwrap()),
        "BlackHoleCluster"
    );
    convert(&res2);
    // A Sidecar's own policy wins over the mesh's.
    let mesh = mesh_with(
        &format!(
            "{SERVICES}\n---\napiVersion: networking.istio.io/v1\nkind: Sidecar\n\
             metadata: {{name: default, namespace: shop}}\n\
             spec: {{outboundTrafficPolicy: {{mode: ALLOW_ANY}}}}\n"
        ),
        MeshOptions {
            outbound_traffic_policy: OutboundTrafficPolicy::RegistryOnly,
            ..Default::default()
        },
    );
    let res = translate(&mesh, &node);
    let vo = listener(&res, naming::VIRTUAL_OUTBOUND_LISTENER);
    let last = vo.filter_chains.last().unwrap();
    assert_eq!(
        tcp_cluster(&as_tcp(&last.filters[0]).unwrap()),
        "PassthroughCluster"
    );
}

const NONE_SIDECAR: &str = r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: web, namespace: shop}
spec:
  workloadSelector: {labels: {app: web}}
  ingress:
  - port: {number: 18080, protocol: HTTP, name: http}
    captureMode: NONE
    defaultEndpoint: 127.0.0.1:8080
  egress:
  - port: {number: 5432, protocol: TCP, name: tcp}
    bind: 127.0.1.1
    captureMode: NONE
    hosts: [./db.shop.svc.cluster.local]
  - port: {number: 8080, protocol: HTTP, name: http}
    bind: 127.0.1.1
    captureMode: NONE
    hosts: ["./*"]
"#;

#[test]
fn capture_none_binds_egress_and_ingress_listeners_and_drops_virtual_ones() {
    let res = web_sidecar(NONE_SIDECAR);
    assert_eq!(
        listener_names(&res),
        ["127.0.1.1_18080", "127.0.1.1_5432", "127.0.1.1_8080"]
    );
    let db = listener(&res, "127.0.1.1_5432");
    assert_eq!(address(db), ("127.0.1.1".into(), 5432));
    assert_eq!(db.bind_to_port.as_ref().map(|b| b.value), Some(true));
    // Only the egress listener's hosts: db, not legacy (also on 5432).
    assert_eq!(db.filter_chains.len(), 1);
    assert_eq!(
        tcp_cluster(&as_tcp(&db.filter_chains[0].filters[0]).unwrap()),
        "outbound|5432||db.shop.svc.cluster.local"
    );
    let web = listener(&res, "127.0.1.1_8080");
    let hcm = as_hcm(&web.filter_chains[0].filters[0]).unwrap();
    assert_eq!(rds_name(&hcm), "127.0.1.1:8080");
    assert_eq!(hcm.stat_prefix, "outbound_127.0.1.1_8080");
    route(&res, "127.0.1.1:8080");

    // The ingress listener binds the node's address and forwards to the app's cluster.
    let ing = listener(&res, "127.0.1.1_18080");
    assert_eq!(address(ing), ("127.0.1.1".into(), 18080));
    let hcm = as_hcm(&ing.filter_chains[0].filters[0]).unwrap();
    assert_eq!(rds_name(&hcm), "inbound|18080||");
    route(&res, "inbound|18080||");
    convert(&res);
}

#[test]
fn capture_none_egress_without_bind_listens_on_loopback() {
    let res = web_sidecar(
        r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: web, namespace: shop}
spec:
  egress:
  - port: {number: 5432, protocol: TCP, name: tcp}
    captureMode: NONE
    hosts: [./db.shop.svc.cluster.local]
"#,
    );
    // Inbound service ports bind the node's address: the proxy runs without capture.
    assert_eq!(listener_names(&res), ["127.0.0.1_5432", "127.0.1.1_8080"]);
    let inbound = listener(&res, "127.0.1.1_8080");
    assert_eq!(
        rds_name(&as_hcm(&inbound.filter_chains[0].filters[0]).unwrap()),
        "inbound|8080||"
    );
    convert(&res);
}

#[test]
fn mixed_capture_modes_keep_the_virtual_listeners() {
    let res = web_sidecar(
        r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: web, namespace: shop}
spec:
  egress:
  - port: {number: 5432, protocol: TCP, name: tcp}
    bind: 127.0.1.1
    captureMode: NONE
    hosts: [./db.shop.svc.cluster.local]
  - hosts: ["./*"]
"#,
    );
    let names = listener_names(&res);
    assert!(names.contains(&"virtualOutbound".to_owned()), "{names:?}");
    assert!(names.contains(&"virtualInbound".to_owned()), "{names:?}");
    assert!(names.contains(&"127.0.1.1_5432".to_owned()), "{names:?}");
    // The catch-all adds the other ports behind capture.
    assert!(names.contains(&"0.0.0.0_8080".to_owned()), "{names:?}");
    convert(&res);
}

#[test]
fn undeclared_protocol_is_sniffed_with_a_bounded_timeout() {
    let res = web_sidecar(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cache, namespace: shop}
spec:
  hosts: [cache.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 7000, name: cache}
  endpoints: [{address: 127.0.3.1}]
"#,
    );
    let l = listener(&res, "0.0.0.0_7000");
    let names: Vec<&str> = l.listener_filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["envoy.filters.listener.http_inspector"]);
    let timeout = l.listener_filters_timeout.as_ref().unwrap();
    assert!(timeout.seconds == 0 && timeout.nanos > 0, "{timeout:?}");
    assert!(l.continue_on_listener_filters_timeout);
    // HTTP on ALPN; everything else (server-first protocols after the timeout) to TCP.
    let http = &l.filter_chains[0];
    assert_eq!(
        http.filter_chain_match
            .as_ref()
            .unwrap()
            .application_protocols,
        ["http/1.0", "http/1.1", "h2c"]
    );
    assert_eq!(rds_name(&as_hcm(&http.filters[0]).unwrap()), "7000");
    let dflt = l.default_filter_chain.as_ref().unwrap();
    assert_eq!(
        tcp_cluster(&as_tcp(&dflt.filters[0]).unwrap()),
        "outbound|7000||cache.shop.svc.cluster.local"
    );
    convert(&res);
}

#[test]
fn port_name_prefix_selects_the_protocol() {
    let res = web_sidecar(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: named, namespace: shop}
spec:
  hosts: [named.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 7001, name: http-api}
  - {number: 7002, name: tcp-raw}
  - {number: 3306, name: db}
  endpoints: [{address: 127.0.3.2}]
"#,
    );
    let h = listener(&res, "0.0.0.0_7001");
    assert!(as_hcm(&h.filter_chains[0].filters[0]).is_some());
    assert!(h.listener_filters.is_empty());
    let t = listener(&res, "0.0.0.0_7002");
    assert!(as_tcp(&t.filter_chains[0].filters[0]).is_some());
    // A well-known server-first port is TCP, never sniffed.
    let m = listener(&res, "0.0.0.0_3306");
    assert!(m.listener_filters.is_empty());
    assert!(as_tcp(&m.filter_chains[0].filters[0]).is_some());
}

#[test]
fn http_and_tcp_on_one_port_are_told_apart_by_sniffing() {
    let res = web_sidecar(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: other, namespace: shop}
spec:
  hosts: [other.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 8080, name: tcp, protocol: TCP}
  endpoints: [{address: 127.0.3.3}]
"#,
    );
    let l = listener(&res, "0.0.0.0_8080");
    assert!(
        l.listener_filters
            .iter()
            .any(|f| f.name == "envoy.filters.listener.http_inspector")
    );
    assert_eq!(l.filter_chains.len(), 1);
    assert!(as_hcm(&l.filter_chains[0].filters[0]).is_some());
    let dflt = l.default_filter_chain.as_ref().unwrap();
    assert_eq!(
        tcp_cluster(&as_tcp(&dflt.filters[0]).unwrap()),
        "outbound|8080||other.shop.svc.cluster.local"
    );
    convert(&res);
}

#[test]
fn virtual_service_tcp_routes_split_connections() {
    let res = web_sidecar(
        r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: shop}
spec:
  hosts: [db]
  tcp:
  - route:
    - destination: {host: db, subset: v1}
      weight: 80
    - destination: {host: db, subset: v2}
      weight: 20
"#,
    );
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier;
    let l = listener(&res, "0.0.0.0_5432");
    let t = as_tcp(&l.filter_chains[0].filters[0]).unwrap();
    let Some(ClusterSpecifier::WeightedClusters(w)) = t.cluster_specifier else {
        panic!("{t:?}")
    };
    let got: Vec<(String, u32)> = w.clusters.into_iter().map(|c| (c.name, c.weight)).collect();
    assert_eq!(
        got,
        [
            ("outbound|5432|v1|db.shop.svc.cluster.local".to_owned(), 80),
            ("outbound|5432|v2|db.shop.svc.cluster.local".to_owned(), 20)
        ]
    );
    convert(&res);
}

#[test]
fn virtual_service_tls_routes_become_sni_chains() {
    let res = web_sidecar(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tls, namespace: shop}
spec:
  hosts: [secure.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
  - {number: 443, name: tls, protocol: TLS}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tls, namespace: shop}
spec:
  hosts: [secure.example.com]
  tls:
  - match:
    - sniHosts: [secure.example.com]
    route:
    - destination: {host: secure.example.com, port: {number: 443}}
"#,
    );
    let l = listener(&res, "0.0.0.0_443");
    assert_eq!(
        l.listener_filters[0].name,
        "envoy.filters.listener.tls_inspector"
    );
    let sni = l
        .filter_chains
        .iter()
        .find(|c| {
            c.filter_chain_match
                .as_ref()
                .is_some_and(|m| m.server_names == ["secure.example.com"])
        })
        .expect("an SNI chain");
    assert_eq!(
        tcp_cluster(&as_tcp(&sni.filters[0]).unwrap()),
        "outbound|443||secure.example.com"
    );
    convert(&res);
}

#[test]
fn every_listener_is_accepted_by_weft_proxy() {
    for extra in ["", NONE_SIDECAR] {
        let res = web_sidecar(extra);
        let cfg = convert(&res);
        assert_eq!(cfg.listeners.len(), res.listeners.len());
        for l in &res.listeners {
            // Exactly one terminal filter per chain (weft's proxy supports no other shape).
            for fc in l.filter_chains.iter().chain(l.default_filter_chain.iter()) {
                assert_eq!(fc.filters.len(), 1, "{}", l.name);
            }
            assert!(!chain_filters(l).is_empty(), "{}", l.name);
        }
    }
}

#[test]
fn undeclared_inbound_ports_are_sniffed() {
    for (capture, listener_name) in [("DEFAULT", "virtualInbound"), ("NONE", "127.0.1.1_9000")] {
        let res = web_sidecar(&format!(
            r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: web, namespace: shop}}
spec:
  ingress:
  - port: {{number: 9000, name: app}}
    captureMode: {capture}
  egress:
  - port: {{number: 5432, protocol: TCP, name: tcp}}
    bind: 127.0.1.1
    captureMode: {capture}
    hosts: [./db.shop.svc.cluster.local]
"#
        ));
        let l = listener(&res, listener_name);
        assert!(
            l.listener_filters
                .iter()
                .any(|f| f.name == "envoy.filters.listener.http_inspector"),
            "{capture}"
        );
        assert!(l.continue_on_listener_filters_timeout);
        let http = l
            .filter_chains
            .iter()
            .find(|c| {
                c.filter_chain_match
                    .as_ref()
                    .is_some_and(|m| !m.application_protocols.is_empty())
            })
            .expect("an HTTP chain on ALPN");
        assert_eq!(
            rds_name(&as_hcm(&http.filters[0]).unwrap()),
            "inbound|9000||"
        );
        let tcp = l
            .filter_chains
            .iter()
            .find(|c| {
                c.filters
                    .iter()
                    .any(|f| as_tcp(f).is_some_and(|t| tcp_cluster(&t) == "inbound|9000||"))
            })
            .expect("a TCP chain");
        assert_ne!(tcp.name, http.name);
        route(&res, "inbound|9000||");
        convert(&res);
    }
}
