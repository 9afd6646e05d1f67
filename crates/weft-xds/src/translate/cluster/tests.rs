use std::net::SocketAddr;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, DnsLookupFamily, LbConfig, LbPolicy,
    common_lb_config::LocalityConfigSpecifier,
};
use envoy_types::pb::envoy::config::core::v3::{address, config_source::ConfigSourceSpecifier};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    UpstreamProtocolOptions, explicit_http_config::ProtocolConfig,
};
use envoy_types::pb::google::protobuf::Duration as PbDuration;

use super::test_support::{accept, find, http_options, mesh, node, tls_context};
use super::*;
use crate::translate::Scope;

const SERVICES: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews.bookinfo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 9080, name: http, protocol: HTTP}
  - {number: 9090, name: grpc, protocol: GRPC}
  - {number: 9091, name: tcp, protocol: TCP}
  - {number: 9092, name: sniffed}
  - {number: 5353, name: udp, protocol: UDP}
  workloadSelector:
    labels: {app: reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: bookinfo}
spec:
  address: 10.0.0.1
  labels: {app: reviews, version: v1}
  serviceAccount: reviews
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: bookinfo}
spec:
  hosts: [api.example.com]
  resolution: DNS
  ports:
  - {number: 443, name: tls, protocol: TLS}
  endpoints:
  - {address: a.api.example.com, locality: us-east/zone-a}
  - {address: b.api.example.com, weight: 2}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: rr, namespace: bookinfo}
spec:
  hosts: [rr.example.com]
  resolution: DNS_ROUND_ROBIN
  ports:
  - {number: 80, name: http, protocol: HTTP}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: bookinfo}
spec:
  hosts: ["*.wild.example.com"]
  resolution: NONE
  ports:
  - {number: 80, name: http, protocol: HTTP}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dyn, namespace: bookinfo}
spec:
  hosts: ["*.dyn.example.com"]
  resolution: DYNAMIC_DNS
  ports:
  - {number: 443, name: tls, protocol: TLS}
"#;

fn build(yaml: &str) -> Vec<Cluster> {
    build_at(yaml, "bookinfo")
}

fn build_at(yaml: &str, ns: &str) -> Vec<Cluster> {
    let mesh = mesh(yaml);
    let node = node(ns, &[("app", "client")], "us-east/zone-a/sub-1");
    let scope = Scope::new(&mesh, &node);
    let clusters = outbound_clusters(&scope);
    accept(&clusters);
    clusters
}

fn with_rule(rule: &str) -> Vec<Cluster> {
    build(&format!("{SERVICES}---\n{rule}"))
}

fn kind(c: &Cluster) -> DiscoveryType {
    match c.cluster_discovery_type {
        Some(ClusterDiscoveryType::Type(t)) => DiscoveryType::try_from(t).unwrap(),
        ref other => panic!("no discovery type: {other:?}"),
    }
}

fn lb(c: &Cluster) -> LbPolicy {
    LbPolicy::try_from(c.lb_policy).unwrap()
}

fn secs(s: i64) -> Option<PbDuration> {
    Some(PbDuration {
        seconds: s,
        nanos: 0,
    })
}

const REVIEWS_HTTP: &str = "outbound|9080||reviews.bookinfo.svc.cluster.local";

#[test]
fn one_cluster_per_service_port_then_black_hole_and_passthrough() {
    let clusters = build(SERVICES);
    let names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "outbound|80||*.wild.example.com",
            "outbound|443||api.example.com",
            "outbound|9080||reviews.bookinfo.svc.cluster.local",
            "outbound|9090||reviews.bookinfo.svc.cluster.local",
            "outbound|9091||reviews.bookinfo.svc.cluster.local",
            "outbound|9092||reviews.bookinfo.svc.cluster.local",
            "outbound|80||rr.example.com",
            "BlackHoleCluster",
            "PassthroughCluster",
        ],
        "UDP ports and DYNAMIC_DNS services get no cluster"
    );
    // Deterministic.
    assert_eq!(build(SERVICES), clusters);
}

#[test]
fn static_services_use_eds_over_ads() {
    let clusters = build(SERVICES);
    let c = find(&clusters, REVIEWS_HTTP);
    assert_eq!(kind(c), DiscoveryType::Eds);
    let eds = c.eds_cluster_config.as_ref().unwrap();
    assert!(
        eds.service_name.is_empty(),
        "Envoy then uses the cluster name"
    );
    let source = eds.eds_config.as_ref().unwrap();
    assert!(matches!(
        source.config_source_specifier,
        Some(ConfigSourceSpecifier::Ads(_))
    ));
    assert_eq!(source.resource_api_version, 2, "V3");
    assert!(c.load_assignment.is_none());
    assert_eq!(lb(c), LbPolicy::LeastRequest, "istiod's default algorithm");
    assert_eq!(c.connect_timeout, secs(10));
}

#[test]
fn dns_services_resolve_their_endpoints_host_names() {
    let clusters = build(SERVICES);
    let c = find(&clusters, "outbound|443||api.example.com");
    assert_eq!(kind(c), DiscoveryType::StrictDns);
    assert_eq!(c.dns_lookup_family, DnsLookupFamily::V4Only as i32);
    let la = c.load_assignment.as_ref().unwrap();
    assert_eq!(la.cluster_name, c.name);
    let mut hosts = Vec::new();
    for l in &la.endpoints {
        for e in &l.lb_endpoints {
            let Some(HostIdentifier::Endpoint(ep)) = &e.host_identifier else {
                panic!()
            };
            let Some(address::Address::SocketAddress(sa)) =
                ep.address.as_ref().unwrap().address.as_ref()
            else {
                panic!()
            };
            hosts.push((
                sa.address.clone(),
                e.load_balancing_weight.unwrap().value,
                l.locality.clone().unwrap().region,
            ));
        }
    }
    hosts.sort();
    assert_eq!(
        hosts,
        vec![
            ("a.api.example.com".to_owned(), 1, "us-east".to_owned()),
            ("b.api.example.com".to_owned(), 2, String::new()),
        ]
    );

    // DNS_ROUND_ROBIN: LOGICAL_DNS over the host itself, one endpoint.
    let rr = find(&clusters, "outbound|80||rr.example.com");
    assert_eq!(kind(rr), DiscoveryType::LogicalDns);
    let la = rr.load_assignment.as_ref().unwrap();
    assert_eq!(la.endpoints.len(), 1);
    assert_eq!(la.endpoints[0].lb_endpoints.len(), 1);
}

#[test]
fn logical_dns_keeps_a_single_endpoint() {
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: rr, namespace: bookinfo}
spec:
  hosts: [rr.example.com]
  resolution: DNS_ROUND_ROBIN
  ports:
  - {number: 80, name: http, protocol: HTTP}
  endpoints:
  - {address: one.example.com, locality: r1/z1}
  - {address: two.example.com, locality: r2/z2}
"#;
    let clusters = build(yaml);
    let la = find(&clusters, "outbound|80||rr.example.com")
        .load_assignment
        .as_ref()
        .unwrap();
    assert_eq!(la.endpoints.len(), 1);
    assert_eq!(la.endpoints[0].lb_endpoints.len(), 1);
}

#[test]
fn resolution_none_is_original_dst() {
    let clusters = build(SERVICES);
    let c = find(&clusters, "outbound|80||*.wild.example.com");
    assert_eq!(kind(c), DiscoveryType::OriginalDst);
    assert_eq!(lb(c), LbPolicy::ClusterProvided);
    assert!(c.load_assignment.is_none());
}

#[test]
fn black_hole_and_passthrough_as_istiod_emits_them() {
    let clusters = build(SERVICES);
    let bh = find(&clusters, "BlackHoleCluster");
    assert_eq!(kind(bh), DiscoveryType::Static);
    assert!(bh.load_assignment.is_none());
    assert_eq!(lb(bh), LbPolicy::RoundRobin);
    let pt = find(&clusters, "PassthroughCluster");
    assert_eq!(kind(pt), DiscoveryType::OriginalDst);
    assert_eq!(lb(pt), LbPolicy::ClusterProvided);
    let opts = http_options(pt).unwrap();
    assert!(matches!(
        opts.upstream_protocol_options,
        Some(UpstreamProtocolOptions::UseDownstreamProtocolConfig(_))
    ));
    assert_eq!(
        opts.common_http_protocol_options.unwrap().idle_timeout,
        secs(300)
    );
    let t = &pt.circuit_breakers.as_ref().unwrap().thresholds[0];
    assert_eq!(t.max_connections.unwrap().value, u32::MAX);
}

#[test]
fn default_circuit_breakers_are_unlimited() {
    let clusters = build(SERVICES);
    let t = &find(&clusters, REVIEWS_HTTP)
        .circuit_breakers
        .as_ref()
        .unwrap()
        .thresholds;
    assert_eq!(t.len(), 1);
    for v in [
        t[0].max_connections,
        t[0].max_pending_requests,
        t[0].max_requests,
        t[0].max_retries,
    ] {
        assert_eq!(v.unwrap().value, 4_294_967_295);
    }
}

#[test]
fn port_protocol_picks_the_upstream_protocol() {
    let clusters = build(SERVICES);
    let explicit_h2 = |c: &Cluster| {
        matches!(
            http_options(c).and_then(|o| o.upstream_protocol_options),
            Some(UpstreamProtocolOptions::ExplicitHttpConfig(e))
                if matches!(e.protocol_config, Some(ProtocolConfig::Http2ProtocolOptions(_)))
        )
    };
    assert!(explicit_h2(find(
        &clusters,
        "outbound|9090||reviews.bookinfo.svc.cluster.local"
    )));
    assert!(http_options(find(&clusters, REVIEWS_HTTP)).is_none());
    assert!(
        http_options(find(
            &clusters,
            "outbound|9091||reviews.bookinfo.svc.cluster.local"
        ))
        .is_none()
    );
    // A port without a protocol is sniffed: the client's protocol goes upstream.
    assert!(matches!(
        http_options(find(
            &clusters,
            "outbound|9092||reviews.bookinfo.svc.cluster.local"
        ))
        .unwrap()
        .upstream_protocol_options,
        Some(UpstreamProtocolOptions::UseDownstreamProtocolConfig(_))
    ));
}

#[test]
fn subsets_get_their_own_clusters() {
    let clusters = with_rule(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"#,
    );
    let names: Vec<&str> = clusters
        .iter()
        .map(|c| c.name.as_str())
        .filter(|n| n.starts_with("outbound|9080|"))
        .collect();
    assert_eq!(
        names,
        vec![
            "outbound|9080||reviews.bookinfo.svc.cluster.local",
            "outbound|9080|v1|reviews.bookinfo.svc.cluster.local",
            "outbound|9080|v2|reviews.bookinfo.svc.cluster.local",
        ]
    );
    let v1 = find(
        &clusters,
        "outbound|9080|v1|reviews.bookinfo.svc.cluster.local",
    );
    assert_eq!(kind(v1), DiscoveryType::Eds);
}

#[test]
fn dns_subsets_filter_endpoints_and_empty_ones_are_dropped() {
    let clusters = with_rule(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: bookinfo}
spec:
  host: api.example.com
  subsets:
  - {name: none, labels: {version: nope}}
"#,
    );
    assert!(
        !clusters
            .iter()
            .any(|c| c.name == "outbound|443|none|api.example.com")
    );
}

#[test]
fn simple_load_balancers() {
    for (simple, want) in [
        ("ROUND_ROBIN", LbPolicy::RoundRobin),
        ("LEAST_REQUEST", LbPolicy::LeastRequest),
        ("LEAST_CONN", LbPolicy::LeastRequest),
        ("RANDOM", LbPolicy::Random),
    ] {
        let clusters = with_rule(&format!(
            r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: bookinfo}}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {{simple: {simple}}}
"#
        ));
        assert_eq!(lb(find(&clusters, REVIEWS_HTTP)), want, "{simple}");
    }
}

#[test]
fn passthrough_load_balancer_is_original_dst() {
    let clusters = with_rule(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: bookinfo}
spec:
  host: api.example.com
  trafficPolicy:
    loadBalancer: {simple: PASSTHROUGH}
"#,
    );
    let c = find(&clusters, "outbound|443||api.example.com");
    assert_eq!(kind(c), DiscoveryType::OriginalDst);
    assert_eq!(lb(c), LbPolicy::ClusterProvided);
    assert!(c.load_assignment.is_none());
}

#[test]
fn consistent_hash_algorithms() {
    let rule = |hash: &str| {
        with_rule(&format!(
            r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: bookinfo}}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      consistentHash: {hash}
"#
        ))
    };
    let ring = |c: &Cluster| match &c.lb_config {
        Some(LbConfig::RingHashLbConfig(r)) => r.minimum_ring_size.unwrap().value,
        other => panic!("{other:?}"),
    };
    let c = rule("{httpHeaderName: x-user, ringHash: {minimumRingSize: 2048}}");
    let c = find(&c, REVIEWS_HTTP);
    assert_eq!(lb(c), LbPolicy::RingHash);
    assert_eq!(ring(c), 2048);

    let c = rule("{httpHeaderName: x-user}");
    assert_eq!(ring(find(&c, REVIEWS_HTTP)), 1024, "Envoy's default size");

    let c = rule("{httpHeaderName: x-user, minimumRingSize: 4096}");
    assert_eq!(ring(find(&c, REVIEWS_HTTP)), 4096, "the deprecated field");

    let c = rule("{useSourceIp: true, maglev: {tableSize: 65537}}");
    let c = find(&c, REVIEWS_HTTP);
    assert_eq!(lb(c), LbPolicy::Maglev);
    match &c.lb_config {
        Some(LbConfig::MaglevLbConfig(m)) => assert_eq!(m.table_size.unwrap().value, 65537),
        other => panic!("{other:?}"),
    }
}

const POLICY_LAYERS: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: RANDOM}
    connectionPool:
      tcp: {maxConnections: 100}
    portLevelSettings:
    - port: {number: 9091}
      loadBalancer: {simple: ROUND_ROBIN}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      connectionPool:
        tcp: {maxConnections: 7}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      portLevelSettings:
      - port: {number: 9080}
        outlierDetection: {consecutive5xxErrors: 3}
"#;

#[test]
fn port_level_settings_replace_the_destination_policy() {
    let clusters = with_rule(POLICY_LAYERS);
    let max_conn = |c: &Cluster| {
        c.circuit_breakers.as_ref().unwrap().thresholds[0]
            .max_connections
            .unwrap()
            .value
    };
    let http = find(&clusters, REVIEWS_HTTP);
    assert_eq!(lb(http), LbPolicy::Random);
    assert_eq!(max_conn(http), 100);
    // Port 9091 has its own settings, which do not inherit the connection pool.
    let tcp = find(
        &clusters,
        "outbound|9091||reviews.bookinfo.svc.cluster.local",
    );
    assert_eq!(lb(tcp), LbPolicy::RoundRobin);
    assert_eq!(max_conn(tcp), u32::MAX);
}

#[test]
fn subset_policy_overrides_per_component() {
    let clusters = with_rule(POLICY_LAYERS);
    let max_conn = |c: &Cluster| {
        c.circuit_breakers.as_ref().unwrap().thresholds[0]
            .max_connections
            .unwrap()
            .value
    };
    let v1 = find(
        &clusters,
        "outbound|9080|v1|reviews.bookinfo.svc.cluster.local",
    );
    assert_eq!(max_conn(v1), 7, "the subset's pool");
    assert_eq!(lb(v1), LbPolicy::Random, "the rule's load balancer");
    let v1_tcp = find(
        &clusters,
        "outbound|9091|v1|reviews.bookinfo.svc.cluster.local",
    );
    assert_eq!(
        lb(v1_tcp),
        LbPolicy::RoundRobin,
        "the rule's port-level policy"
    );
    assert_eq!(max_conn(v1_tcp), 7);
    // A subset port-level entry replaces every component for its port.
    let v2 = find(
        &clusters,
        "outbound|9080|v2|reviews.bookinfo.svc.cluster.local",
    );
    assert!(v2.outlier_detection.is_some());
    assert_eq!(lb(v2), LbPolicy::LeastRequest);
    assert_eq!(max_conn(v2), u32::MAX);
    let v2_grpc = find(
        &clusters,
        "outbound|9090|v2|reviews.bookinfo.svc.cluster.local",
    );
    assert!(v2_grpc.outlier_detection.is_none());
    assert_eq!(max_conn(v2_grpc), 100);
}

#[test]
fn connection_pool_settings() {
    let clusters = with_rule(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews
  trafficPolicy:
    connectionPool:
      tcp:
        maxConnections: 10
        connectTimeout: 250ms
        tcpKeepalive: {time: 60s}
      http:
        http1MaxPendingRequests: 11
        http2MaxRequests: 12
        maxRetries: 13
        maxRequestsPerConnection: 14
        idleTimeout: 30s
"#,
    );
    let c = find(&clusters, REVIEWS_HTTP);
    let t = &c.circuit_breakers.as_ref().unwrap().thresholds[0];
    assert_eq!(t.max_connections.unwrap().value, 10);
    assert_eq!(t.max_pending_requests.unwrap().value, 11);
    assert_eq!(t.max_requests.unwrap().value, 12);
    assert_eq!(t.max_retries.unwrap().value, 13);
    assert_eq!(
        c.connect_timeout,
        Some(PbDuration {
            seconds: 0,
            nanos: 250_000_000
        })
    );
    assert!(
        c.upstream_connection_options.is_none(),
        "weft's proxy has no TCP keepalive"
    );
    let opts = http_options(c).unwrap();
    let common = opts.common_http_protocol_options.unwrap();
    assert_eq!(common.idle_timeout, secs(30));
    assert_eq!(common.max_requests_per_connection.unwrap().value, 14);
    // The gRPC port keeps HTTP/2 alongside the same common options.
    let grpc = find(
        &clusters,
        "outbound|9090||reviews.bookinfo.svc.cluster.local",
    );
    let opts = http_options(grpc).unwrap();
    assert!(matches!(
        opts.upstream_protocol_options,
        Some(UpstreamProtocolOptions::ExplicitHttpConfig(ref e))
            if matches!(e.protocol_config, Some(ProtocolConfig::Http2ProtocolOptions(_)))
    ));
    assert_eq!(
        opts.common_http_protocol_options.unwrap().idle_timeout,
        secs(30)
    );
}

#[test]
fn h2_upgrade_policy_and_client_protocol() {
    let rule = |http: &str| {
        with_rule(&format!(
            r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: bookinfo}}
spec:
  host: reviews
  trafficPolicy:
    connectionPool:
      http: {http}
"#
        ))
    };
    let upgraded = rule("{h2UpgradePolicy: UPGRADE}");
    let opts = http_options(find(&upgraded, REVIEWS_HTTP)).unwrap();
    assert!(matches!(
        opts.upstream_protocol_options,
        Some(UpstreamProtocolOptions::ExplicitHttpConfig(ref e))
            if matches!(e.protocol_config, Some(ProtocolConfig::Http2ProtocolOptions(_)))
    ));
    let not = rule("{h2UpgradePolicy: DO_NOT_UPGRADE}");
    assert!(http_options(find(&not, REVIEWS_HTTP)).is_none());
    let client = rule("{useClientProtocol: true, h2UpgradePolicy: UPGRADE}");
    assert!(matches!(
        http_options(find(&client, REVIEWS_HTTP))
            .unwrap()
            .upstream_protocol_options,
        Some(UpstreamProtocolOptions::UseDownstreamProtocolConfig(_))
    ));
}

#[test]
fn outlier_detection_as_istiod_sets_it() {
    let clusters = with_rule(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews
  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: 5
      consecutiveGatewayErrors: 0
      splitExternalLocalOriginErrors: true
      consecutiveLocalOriginFailures: 4
      interval: 5s
      baseEjectionTime: 1m
      maxEjectionPercent: 50
      minHealthPercent: 25
"#,
    );
    let c = find(&clusters, REVIEWS_HTTP);
    let o = c.outlier_detection.as_ref().unwrap();
    assert_eq!(o.enforcing_success_rate.unwrap().value, 0);
    assert_eq!(o.consecutive_5xx.unwrap().value, 5);
    assert_eq!(o.enforcing_consecutive_5xx.unwrap().value, 100);
    assert_eq!(o.consecutive_gateway_failure.unwrap().value, 0);
    assert_eq!(o.enforcing_consecutive_gateway_failure.unwrap().value, 0);
    assert!(o.split_external_local_origin_errors);
    assert_eq!(o.consecutive_local_origin_failure.unwrap().value, 4);
    assert_eq!(
        o.enforcing_consecutive_local_origin_failure.unwrap().value,
        100
    );
    assert_eq!(o.interval, secs(5));
    assert_eq!(o.base_ejection_time, secs(60));
    assert_eq!(o.max_ejection_percent.unwrap().value, 50);
    let common = c.common_lb_config.as_ref().unwrap();
    assert_eq!(common.healthy_panic_threshold.unwrap().value, 25.0);

    // Unset minHealthPercent disables panic mode (threshold 0).
    let clusters = with_rule(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews
  trafficPolicy:
    outlierDetection: {consecutiveGatewayErrors: 2}
"#,
    );
    let c = find(&clusters, REVIEWS_HTTP);
    let o = c.outlier_detection.as_ref().unwrap();
    assert!(o.consecutive_5xx.is_none());
    assert_eq!(o.enforcing_consecutive_gateway_failure.unwrap().value, 100);
    let common = c.common_lb_config.as_ref().unwrap();
    assert_eq!(common.healthy_panic_threshold.unwrap().value, 0.0);
}

#[test]
fn locality_weighted_config_with_distribute_or_failover() {
    let weighted = |rule: &str| {
        let clusters = with_rule(rule);
        matches!(
            find(&clusters, REVIEWS_HTTP)
                .common_lb_config
                .as_ref()
                .unwrap()
                .locality_config_specifier,
            Some(LocalityConfigSpecifier::LocalityWeightedLbConfig(_))
        )
    };
    assert!(weighted(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        distribute:
        - from: "us-east/*"
          to: {"us-east/*": 80, "us-west/*": 20}
"#
    ));
    let failover = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        failover: [{from: us-east, to: us-west}]
"#;
    assert!(!weighted(failover), "failover needs outlier detection");
    assert!(weighted(&format!(
        "{failover}    outlierDetection: {{consecutive5xxErrors: 1}}\n"
    )));
}

#[test]
fn istio_mutual_uses_istiod_sds_names() {
    let clusters = with_rule(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
"#,
    );
    let ctx = tls_context(find(&clusters, REVIEWS_HTTP)).unwrap();
    assert_eq!(ctx.sni, REVIEWS_HTTP, "SNI defaults to the cluster name");
    let common = ctx.common_tls_context.unwrap();
    assert_eq!(common.tls_certificate_sds_secret_configs[0].name, "default");
    match common.validation_context_type {
        Some(ValidationContextType::ValidationContextSdsSecretConfig(s)) => {
            assert_eq!(s.name, "ROOTCA")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(common.alpn_protocols, vec!["istio"]);
    let grpc = tls_context(find(
        &clusters,
        "outbound|9090||reviews.bookinfo.svc.cluster.local",
    ))
    .unwrap();
    assert_eq!(
        grpc.common_tls_context.unwrap().alpn_protocols,
        vec!["istio", "h2"]
    );
}

#[test]
fn simple_and_mutual_tls_from_files() {
    let dir = std::env::temp_dir().join(format!("weft-xds-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["ca.pem", "cert.pem", "key.pem"] {
        std::fs::write(dir.join(f), "x").unwrap();
    }
    let d = dir.display();
    let clusters = with_rule(&format!(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: api, namespace: bookinfo}}
spec:
  host: api.example.com
  trafficPolicy:
    tls:
      mode: MUTUAL
      clientCertificate: {d}/cert.pem
      privateKey: {d}/key.pem
      caCertificates: {d}/ca.pem
      subjectAltNames: [api.example.com, "spiffe://example.com/sa/api"]
      sni: api.example.com
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: bookinfo}}
spec:
  host: reviews
  trafficPolicy:
    tls:
      mode: SIMPLE
      caCertificates: {d}/ca.pem
"#
    ));
    let ctx = tls_context(find(&clusters, "outbound|443||api.example.com")).unwrap();
    assert_eq!(ctx.sni, "api.example.com");
    let common = ctx.common_tls_context.unwrap();
    assert_eq!(common.tls_certificates.len(), 1);
    let Some(ValidationContextType::ValidationContext(v)) = common.validation_context_type else {
        panic!()
    };
    let sans: Vec<i32> = v
        .match_typed_subject_alt_names
        .iter()
        .map(|m| m.san_type)
        .collect();
    assert_eq!(sans, vec![SanType::Dns as i32, SanType::Uri as i32]);

    // SIMPLE without SANs verifies the service's identities.
    let ctx = tls_context(find(&clusters, REVIEWS_HTTP)).unwrap();
    let common = ctx.common_tls_context.unwrap();
    assert!(common.tls_certificates.is_empty());
    let Some(ValidationContextType::ValidationContext(v)) = common.validation_context_type else {
        panic!()
    };
    assert_eq!(v.match_typed_subject_alt_names.len(), 1);
    assert_eq!(
        v.match_typed_subject_alt_names[0].san_type,
        SanType::Uri as i32
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn disable_and_sidecar_credential_name_are_plain_text() {
    let clusters = with_rule(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews
  trafficPolicy:
    tls: {mode: DISABLE}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: bookinfo}
spec:
  host: api.example.com
  trafficPolicy:
    tls: {mode: SIMPLE, credentialName: api-cred}
"#,
    );
    assert!(find(&clusters, REVIEWS_HTTP).transport_socket.is_none());
    assert!(
        find(&clusters, "outbound|443||api.example.com")
            .transport_socket
            .is_none()
    );
}

#[test]
fn inbound_clusters_to_the_application() {
    let mesh = mesh(SERVICES);
    let node = node("bookinfo", &[], "");
    let scope = Scope::new(&mesh, &node);
    let ports = [
        InboundPort {
            port: 9080,
            protocol: "HTTP".into(),
            endpoint: "127.0.0.1:9080".parse::<SocketAddr>().unwrap(),
            bind: None,
        },
        InboundPort {
            port: 9090,
            protocol: "GRPC".into(),
            endpoint: "127.0.0.1:19090".parse().unwrap(),
            bind: None,
        },
    ];
    let clusters = inbound_clusters(&scope, &ports);
    let cfg = accept(&clusters);
    assert_eq!(cfg.clusters.len(), 3, "two inbound clusters and xds-grpc");
    let http = find(&clusters, "inbound|9080||");
    assert_eq!(kind(http), DiscoveryType::Static);
    assert_eq!(http.connect_timeout, secs(10));
    assert!(http_options(http).is_none());
    let grpc = find(&clusters, "inbound|9090||");
    let la = grpc.load_assignment.as_ref().unwrap();
    let Some(HostIdentifier::Endpoint(ep)) = &la.endpoints[0].lb_endpoints[0].host_identifier
    else {
        panic!()
    };
    let Some(address::Address::SocketAddress(sa)) = ep.address.as_ref().unwrap().address.as_ref()
    else {
        panic!()
    };
    assert_eq!(sa.address, "127.0.0.1");
    assert!(matches!(
        http_options(grpc).unwrap().upstream_protocol_options,
        Some(UpstreamProtocolOptions::ExplicitHttpConfig(_))
    ));
}

#[test]
fn duplicate_host_names_prefer_the_proxy_namespace() {
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: a}
spec:
  hosts: [ext.example.com]
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: b}
spec:
  hosts: [ext.example.com]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.1.1.1}]
"#;
    let from_b = build_at(yaml, "b");
    let c = find(&from_b, "outbound|80||ext.example.com");
    assert_eq!(kind(c), DiscoveryType::Eds);
    let from_a = build_at(yaml, "a");
    assert_eq!(
        kind(find(&from_a, "outbound|80||ext.example.com")),
        DiscoveryType::StrictDns
    );
    let from_c = build_at(yaml, "c");
    assert_eq!(
        from_c
            .iter()
            .filter(|c| c.name == "outbound|80||ext.example.com")
            .count(),
        1
    );
}

#[test]
fn dns_load_assignments_get_locality_priorities() {
    let clusters = with_rule(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: bookinfo}
spec:
  host: api.example.com
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1}
    loadBalancer:
      consistentHash: {httpHeaderName: x-user}
      localityLbSetting:
        failover: [{from: us-east, to: us-west}]
"#,
    );
    let c = find(&clusters, "outbound|443||api.example.com");
    assert_eq!(lb(c), LbPolicy::RingHash);
    let mut prio: Vec<(String, u32)> = c
        .load_assignment
        .as_ref()
        .unwrap()
        .endpoints
        .iter()
        .map(|l| (l.locality.clone().unwrap().region, l.priority))
        .collect();
    prio.sort();
    // The proxy is in us-east/zone-a/sub-1: the us-east/zone-a endpoint is in another subzone
    // (1), the one without locality is outside the failover target region (4); priorities are
    // then renumbered without gaps. Ring hash and locality weights are accepted together.
    assert_eq!(prio, vec![(String::new(), 1), ("us-east".to_owned(), 0)]);
}
