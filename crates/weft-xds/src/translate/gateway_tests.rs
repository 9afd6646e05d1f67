use envoy_types::pb::envoy::config::core::v3::transport_socket;
use envoy_types::pb::envoy::config::listener::v3::FilterChain;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    DownstreamTlsContext, common_tls_context,
};
use prost::Message;

use super::super::testing::*;
use super::super::translate;
use crate::resources::Resources;

fn certs() -> String {
    format!(
        "{}/../weft-proxy-config/testdata/certs",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn gateway_yaml() -> String {
    let c = certs();
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: web, namespace: shop}}
spec:
  hosts: [web.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 8080, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.1.1}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: secure, namespace: shop}}
spec:
  hosts: [secure.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 8443, name: tls, protocol: TLS}}]
  endpoints: [{{address: 127.0.1.2}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: db, namespace: shop}}
spec:
  hosts: [db.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 5432, name: tcp, protocol: TCP}}]
  endpoints: [{{address: 127.0.1.3}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw, namespace: shop}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 8000, name: http, protocol: HTTP}}
    hosts: ["*"]
  - port: {{number: 8443, name: https-a, protocol: HTTPS}}
    hosts: [a.example.com]
    tls:
      mode: SIMPLE
      serverCertificate: {c}/server.crt
      privateKey: {c}/server.key
      minProtocolVersion: TLSV1_3
  - port: {{number: 8443, name: https-b, protocol: HTTPS}}
    hosts: [b.example.com]
    tls:
      mode: MUTUAL
      serverCertificate: {c}/server.crt
      privateKey: {c}/server.key
      caCertificates: {c}/ca.crt
      subjectAltNames: [client.example.com]
  - port: {{number: 9443, name: tls-pass, protocol: TLS}}
    hosts: [secure.shop.svc.cluster.local]
    tls: {{mode: PASSTHROUGH}}
  - port: {{number: 9000, name: tcp, protocol: TCP}}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: pass, namespace: shop}}
spec:
  hosts: [secure.shop.svc.cluster.local]
  gateways: [gw]
  tls:
  - match:
    - sniHosts: [secure.shop.svc.cluster.local]
    route:
    - destination: {{host: secure}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: db, namespace: shop}}
spec:
  hosts: ["*"]
  gateways: [shop/gw]
  tcp:
  - match: [{{port: 9000}}]
    route:
    - destination: {{host: db, port: {{number: 5432}}}}
"#
    )
}

fn gateway() -> Resources {
    let mesh = mesh(&gateway_yaml());
    let node = router(
        "shop",
        "ingress-1",
        "127.0.0.50",
        &[("istio", "ingressgateway")],
    );
    translate(&mesh, &node)
}

fn tls_context(c: &FilterChain) -> DownstreamTlsContext {
    match c
        .transport_socket
        .as_ref()
        .and_then(|t| t.config_type.as_ref())
    {
        Some(transport_socket::ConfigType::TypedConfig(any)) => {
            DownstreamTlsContext::decode(any.value.as_slice()).unwrap()
        }
        None => panic!("no TLS"),
    }
}

#[test]
fn one_listener_per_server_port() {
    let res = gateway();
    assert_eq!(
        listener_names(&res),
        [
            "0.0.0.0_8000",
            "0.0.0.0_8443",
            "0.0.0.0_9000",
            "0.0.0.0_9443"
        ]
    );
    // A gateway without a selector match gets nothing.
    let mesh = mesh(&gateway_yaml());
    let other = router("shop", "egress-1", "127.0.0.51", &[("istio", "egress")]);
    assert!(translate(&mesh, &other).listeners.is_empty());
}

#[test]
fn http_servers_share_a_route_table_and_trust_the_remote_address() {
    let res = gateway();
    let l = listener(&res, "0.0.0.0_8000");
    assert!(l.bind_to_port.is_none(), "gateways bind their ports");
    let hcm = as_hcm(&l.filter_chains[0].filters[0]).unwrap();
    assert_eq!(rds_name(&hcm), "http.8000");
    assert_eq!(hcm.use_remote_address.as_ref().map(|b| b.value), Some(true));
    assert!(l.listener_filters.is_empty());
    route(&res, "http.8000");
}

#[test]
fn https_servers_get_a_chain_per_sni_with_their_own_tls_and_routes() {
    let res = gateway();
    let l = listener(&res, "0.0.0.0_8443");
    assert_eq!(
        l.listener_filters[0].name,
        "envoy.filters.listener.tls_inspector"
    );
    assert_eq!(l.filter_chains.len(), 2);
    let a = &l.filter_chains[0];
    assert_eq!(
        a.filter_chain_match.as_ref().unwrap().server_names,
        ["a.example.com"]
    );
    assert_eq!(
        rds_name(&as_hcm(&a.filters[0]).unwrap()),
        "https.8443.https-a.gw.shop"
    );
    let ctx = tls_context(a);
    let common = ctx.common_tls_context.as_ref().unwrap();
    assert_eq!(common.tls_certificates.len(), 1);
    assert_eq!(common.alpn_protocols, ["h2", "http/1.1"]);
    assert_eq!(
        common
            .tls_params
            .as_ref()
            .unwrap()
            .tls_minimum_protocol_version,
        4,
        "TLSv1_3"
    );
    assert_eq!(
        ctx.require_client_certificate.as_ref().map(|b| b.value),
        Some(false)
    );

    let b = &l.filter_chains[1];
    assert_eq!(
        rds_name(&as_hcm(&b.filters[0]).unwrap()),
        "https.8443.https-b.gw.shop"
    );
    let ctx = tls_context(b);
    assert_eq!(
        ctx.require_client_certificate.as_ref().map(|b| b.value),
        Some(true)
    );
    let common = ctx.common_tls_context.unwrap();
    // Default floor TLS 1.2.
    assert_eq!(common.tls_params.unwrap().tls_minimum_protocol_version, 3);
    match common.validation_context_type {
        Some(common_tls_context::ValidationContextType::ValidationContext(v)) => {
            assert!(v.trusted_ca.is_some());
            assert_eq!(v.match_typed_subject_alt_names.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    route(&res, "https.8443.https-a.gw.shop");
    route(&res, "https.8443.https-b.gw.shop");
}

#[test]
fn passthrough_routes_by_sni_to_outbound_clusters() {
    let res = gateway();
    let l = listener(&res, "0.0.0.0_9443");
    assert_eq!(
        l.listener_filters[0].name,
        "envoy.filters.listener.tls_inspector"
    );
    let c = &l.filter_chains[0];
    assert!(c.transport_socket.is_none());
    assert_eq!(
        c.filter_chain_match.as_ref().unwrap().server_names,
        ["secure.shop.svc.cluster.local"]
    );
    assert_eq!(
        tcp_cluster(&as_tcp(&c.filters[0]).unwrap()),
        "outbound|8443||secure.shop.svc.cluster.local"
    );
}

#[test]
fn tcp_servers_forward_by_tcp_routes() {
    let res = gateway();
    let l = listener(&res, "0.0.0.0_9000");
    assert_eq!(
        tcp_cluster(&as_tcp(&l.filter_chains[0].filters[0]).unwrap()),
        "outbound|5432||db.shop.svc.cluster.local"
    );
}

#[test]
fn istio_mutual_uses_the_workload_identity_over_sds() {
    let ctx = super::downstream_tls_context(
        &weft_api::networking::gateway::ServerTlsSettings {
            mode: weft_api::networking::gateway::ServerTlsMode::IstioMutual,
            ..Default::default()
        },
        true,
    );
    let common = ctx.common_tls_context.unwrap();
    assert_eq!(common.tls_certificate_sds_secret_configs[0].name, "default");
    match common.validation_context_type {
        Some(common_tls_context::ValidationContextType::ValidationContextSdsSecretConfig(s)) => {
            assert_eq!(s.name, "ROOTCA")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ctx.require_client_certificate.map(|b| b.value), Some(true));
}

#[test]
fn gateway_listeners_are_accepted_by_weft_proxy() {
    let res = gateway();
    let cfg = convert(&res);
    assert_eq!(cfg.listeners.len(), 4);
}
