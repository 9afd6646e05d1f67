//! One test per conversion rule, on small YAML bootstraps.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::model::*;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn convert(yaml: &str) -> Result<ProxyConfig, ConfigError> {
    let bootstrap = crate::parse_bootstrap(Path::new("test.yaml"), yaml)
        .unwrap_or_else(|e| panic!("parse: {e}\n{yaml}"));
    convert_bootstrap(&bootstrap, &testdata())
}

fn ok(yaml: &str) -> ProxyConfig {
    convert(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

#[track_caller]
fn err(yaml: &str, kind: ErrorKind, text: &str) -> ConfigError {
    match convert(yaml) {
        Ok(_) => panic!("converted, expected {kind:?} with {text:?}\n{yaml}"),
        Err(e) => {
            assert_eq!(e.kind, kind, "{e}");
            assert!(e.to_string().contains(text), "{e:?} lacks {text:?}");
            e
        }
    }
}

const CLUSTER: &str = r#"
  - name: backend
    connect_timeout: 1s
    load_assignment:
      cluster_name: backend
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8080}}}}]}]"#;

/// A bootstrap with one HTTP listener (extra HCM fields in `hcm`, extra route fields in
/// `route`, HTTP filters before the router in `filters`), the `backend` cluster and `clusters`.
fn http(hcm: &str, route: &str, filters: &str, clusters: &str) -> String {
    format!(
        r#"
static_resources:
  listeners:
  - name: ingress
    address: {{socket_address: {{address: 127.0.0.1, port_value: 10000}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
{hcm}
          route_config:
            name: local
            virtual_hosts:
            - name: vh
              domains: ["*"]
              routes:
              - match: {{prefix: /}}
                route:
                  cluster: backend
{route}
          http_filters:
{filters}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:{CLUSTER}
{clusters}
"#
    )
}

fn indent(s: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    s.lines()
        .map(|l| format!("{pad}{l}\n"))
        .collect::<String>()
        .trim_end()
        .to_owned()
}

fn hcm_of(config: &ProxyConfig) -> Arc<HttpConnectionManager> {
    match &config.listeners[0].filter_chains[0].filter {
        NetworkFilter::Http(h) => h.clone(),
        NetworkFilter::Tcp(_) => panic!("not HTTP"),
    }
}

/// A bootstrap with only clusters (given as YAML list items, indented by 2).
fn clusters(items: &str) -> String {
    format!("static_resources:\n  clusters:\n{}\n", indent(items, 2))
}

fn cluster(yaml: &str) -> Arc<Cluster> {
    ok(&clusters(yaml)).clusters[0].clone()
}

// ---- defaults -------------------------------------------------------------------------------

#[test]
fn envoy_defaults_are_applied() {
    let config = ok(&http("", "", "", ""));
    let l = &config.listeners[0];
    assert_eq!(l.per_connection_buffer_limit_bytes, 1 << 20);
    assert_eq!(l.listener_filters_timeout, Duration::from_secs(15));
    assert!(!l.continue_on_listener_filters_timeout);
    assert!(l.bind_to_port);
    assert!(!l.use_original_dst);
    assert_eq!(l.stat_prefix, "127.0.0.1_10000");
    assert_eq!(l.tcp_backlog_size, i32::MAX as u32);
    let h = hcm_of(&config);
    assert_eq!(h.codec, CodecType::Auto);
    assert_eq!(h.stream_idle_timeout, Some(Duration::from_secs(300)));
    assert_eq!(h.idle_timeout, Some(Duration::from_secs(3600)));
    assert_eq!(h.drain_timeout, Duration::from_secs(5));
    assert_eq!(h.request_timeout, None);
    assert_eq!(h.request_headers_timeout, None);
    assert_eq!(h.max_stream_duration, None);
    assert_eq!(h.max_request_headers_kb, 60);
    assert_eq!(h.max_headers_count, 100);
    assert_eq!(h.server_name, "envoy");
    assert!(h.generate_request_id);
    assert!(!h.normalize_path);
    assert!(!h.use_remote_address);
    assert_eq!(h.escaped_slashes, EscapedSlashesAction::KeepUnchanged);
    assert_eq!(h.http2, Http2Settings::default());
    assert_eq!(
        h.http_filters,
        vec![HttpFilter::Router(RouterFilter::default())]
    );
    let c = &config.clusters[0];
    assert_eq!(c.discovery, Discovery::Static);
    assert_eq!(c.idle_timeout, Duration::from_secs(4));
    assert_eq!(c.circuit_breakers, Thresholds::default());
    assert_eq!(c.lb.panic_threshold_percent(), 50);
    assert_eq!(c.lb.config().overprovisioning_factor, 140);
    assert_eq!(c.dns_refresh_rate, Duration::from_secs(5));
    assert_eq!(c.per_connection_buffer_limit_bytes, 1 << 20);
    assert_eq!(c.protocol, UpstreamProtocol::Http1);
    assert_eq!(c.max_requests_per_connection, None);
    assert_eq!(c.localities[0].endpoints[0].weight, 1);
    let bare = cluster("- name: c");
    assert_eq!(bare.connect_timeout, Duration::from_secs(5));
}

#[test]
fn outlier_detection_defaults_are_envoys() {
    let c = cluster("- name: c\n  outlier_detection: {}");
    let o = c.outlier_detection.unwrap();
    assert_eq!(o.consecutive_5xx, 5);
    assert_eq!(o.consecutive_gateway_failure, 5);
    assert_eq!(o.consecutive_local_origin_failure, 5);
    assert_eq!(o.interval, Duration::from_secs(10));
    assert_eq!(o.base_ejection_time, Duration::from_secs(30));
    assert_eq!(o.max_ejection_time, Duration::from_secs(300));
    assert_eq!(o.max_ejection_percent, 10);
    assert_eq!(o.enforcing_consecutive_5xx, 100);
    assert_eq!(o.enforcing_consecutive_gateway_failure, 0);
    assert_eq!(o.enforcing_consecutive_local_origin_failure, 100);
    assert_eq!(o.enforcing_success_rate, 100);
    assert_eq!(o.success_rate_minimum_hosts, 5);
    assert_eq!(o.success_rate_request_volume, 100);
    assert_eq!(o.success_rate_stdev_factor, 1900);
}

#[test]
fn zero_timeouts_disable() {
    let h = hcm_of(&ok(&http(
        "          stream_idle_timeout: 0s\n          common_http_protocol_options: {idle_timeout: 0s}",
        "",
        "",
        "",
    )));
    assert_eq!(h.stream_idle_timeout, None);
    assert_eq!(h.idle_timeout, None);
    let c = cluster(
        "- name: c\n  common_http_protocol_options: {idle_timeout: 0s, max_requests_per_connection: 7}",
    );
    assert!(c.idle_timeout > Duration::from_secs(100 * 365 * 24 * 3600));
    assert_eq!(c.max_requests_per_connection, Some(7));
}

// ---- listeners, HCM, filters ----------------------------------------------------------------

#[test]
fn hcm_fields_land_in_the_model() {
    let hcm = r#"
codec_type: HTTP2
normalize_path: true
merge_slashes: true
path_with_escaped_slashes_action: UNESCAPE_AND_REDIRECT
max_request_headers_kb: 96
common_http_protocol_options:
  idle_timeout: 30s
  max_headers_count: 50
  headers_with_underscores_action: REJECT_REQUEST
  max_stream_duration: 60s
http2_protocol_options: {max_concurrent_streams: 100, initial_stream_window_size: 65535, initial_connection_window_size: 1073741824}
stream_idle_timeout: 10s
request_timeout: 20s
request_headers_timeout: 3s
drain_timeout: 1s
generate_request_id: false
preserve_external_request_id: true
always_set_request_id_in_response: true
use_remote_address: true
xff_num_trusted_hops: 2
skip_xff_append: true
via: weft
server_name: weft
server_header_transformation: PASS_THROUGH
strip_any_host_port: true
upgrade_configs: [{upgrade_type: websocket}]"#;
    let h = hcm_of(&ok(&http(&indent(hcm, 10), "", "", "")));
    assert_eq!(h.codec, CodecType::Http2);
    assert!(h.normalize_path && h.merge_slashes);
    assert_eq!(h.escaped_slashes, EscapedSlashesAction::UnescapeAndRedirect);
    assert_eq!(h.max_request_headers_kb, 96);
    assert_eq!(h.idle_timeout, Some(Duration::from_secs(30)));
    assert_eq!(h.max_headers_count, 50);
    assert_eq!(
        h.headers_with_underscores,
        UnderscoreHeaderAction::RejectRequest
    );
    assert_eq!(h.max_stream_duration, Some(Duration::from_secs(60)));
    // Below the caps as configured, above them clamped.
    assert_eq!(h.http2.max_concurrent_streams, 100);
    assert_eq!(h.http2.initial_stream_window_size, 65535);
    assert_eq!(h.http2.initial_connection_window_size, 1 << 22);
    assert_eq!(h.stream_idle_timeout, Some(Duration::from_secs(10)));
    assert_eq!(h.request_timeout, Some(Duration::from_secs(20)));
    assert_eq!(h.request_headers_timeout, Some(Duration::from_secs(3)));
    assert_eq!(h.drain_timeout, Duration::from_secs(1));
    assert!(!h.generate_request_id);
    assert!(h.preserve_external_request_id && h.always_set_request_id_in_response);
    assert!(h.use_remote_address && h.skip_xff_append);
    assert_eq!(h.xff_num_trusted_hops, 2);
    assert_eq!((h.via.as_str(), h.server_name.as_str()), ("weft", "weft"));
    assert_eq!(
        h.server_header_transformation,
        ServerHeaderTransformation::PassThrough
    );
    assert!(h.strip_any_host_port && !h.strip_matching_host_port);
    assert_eq!(h.upgrades, vec!["websocket".to_owned()]);
    assert_eq!(h.stat_prefix, "ingress_http");
}

#[test]
fn connect_upgrades_are_refused_at_both_levels() {
    let e = err(
        &http(
            "          upgrade_configs: [{upgrade_type: websocket}, {upgrade_type: CONNECT}]",
            "",
            "",
            "",
        ),
        ErrorKind::Unsupported,
        "upgrade \"CONNECT\"",
    );
    assert!(
        e.to_string().contains("upgrade_configs[1].upgrade_type"),
        "{e}"
    );
    let e = err(
        &http(
            "",
            "                  upgrade_configs: [{upgrade_type: connect-udp}]",
            "",
            "",
        ),
        ErrorKind::Unsupported,
        "weft does not terminate CONNECT tunnels",
    );
    assert!(e.to_string().contains("route.upgrade_configs[0]"), "{e}");
    // WebSocket stays supported on the route.
    ok(&http(
        "",
        "                  upgrade_configs: [{upgrade_type: websocket}]",
        "",
        "",
    ));
}

#[test]
fn http_filters_convert() {
    let filters = r#"- name: envoy.filters.http.fault
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
    delay: {fixed_delay: 0.1s, percentage: {numerator: 5}}
    abort: {grpc_status: 14, percentage: {numerator: 1, denominator: TEN_THOUSAND}}
    upstream_cluster: backend
    max_active_faults: 3
    headers: [{name: x-fault, string_match: {prefix: "on"}}, {name: x-any}]
- name: my_cors
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors
- name: envoy.filters.http.local_ratelimit
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
    stat_prefix: rl
    status: {code: ServiceUnavailable}
    token_bucket: {max_tokens: 10, fill_interval: 1s}
    filter_enabled: {default_value: {numerator: 100}}
    response_headers_to_add: [{header: {key: x-limited, value: "1"}}]"#;
    let h = hcm_of(&ok(&http("", "", &indent(filters, 10), "")));
    let [
        HttpFilter::Fault(fault),
        HttpFilter::Cors,
        HttpFilter::LocalRateLimit(rl),
        HttpFilter::Router(_),
    ] = h.http_filters.as_slice()
    else {
        panic!("{:?}", h.http_filters);
    };
    assert_eq!(
        fault.delay,
        Some(FaultDelay {
            fixed: Some(Duration::from_millis(100)),
            percentage: Fraction {
                numerator: 5,
                denominator: 100
            }
        })
    );
    assert_eq!(
        fault.abort,
        Some(FaultAbort {
            kind: FaultAbortKind::Grpc(14),
            percentage: Fraction {
                numerator: 1,
                denominator: 10_000
            }
        })
    );
    assert_eq!(fault.upstream_cluster.as_deref(), Some("backend"));
    assert_eq!(fault.max_active_faults, Some(3));
    assert_eq!(
        fault.headers,
        vec![
            ("x-fault".to_owned(), FaultHeaderMatch::Prefix("on".into())),
            ("x-any".to_owned(), FaultHeaderMatch::Present)
        ]
    );
    assert_eq!(rl.status, 503);
    assert_eq!(
        rl.token_bucket,
        Some(TokenBucket {
            max_tokens: 10,
            tokens_per_fill: 1,
            fill_interval: Duration::from_secs(1)
        })
    );
    assert_eq!(
        rl.filter_enabled,
        Fraction {
            numerator: 100,
            denominator: 100
        }
    );
    // Envoy's default: enforce on 0% of requests.
    assert_eq!(
        rl.filter_enforced,
        Fraction {
            numerator: 0,
            denominator: 100
        }
    );
    assert_eq!(
        rl.response_headers_to_add,
        vec![("x-limited".to_owned(), "1".to_owned())]
    );

    let router = r#"- name: envoy.filters.http.router
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
    suppress_envoy_headers: true
    respect_expected_rq_timeout: true"#;
    let yaml = http("", "", "", "").replace(
        "          - name: envoy.filters.http.router\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
        &indent(router, 10),
    );
    let h = hcm_of(&ok(&yaml));
    assert_eq!(
        h.http_filters,
        vec![HttpFilter::Router(RouterFilter {
            suppress_envoy_headers: true,
            respect_expected_rq_timeout: true
        })]
    );
}

#[test]
fn listener_fields_land_in_the_model() {
    let yaml = r#"
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: "::1", port_value: 15001}}
    use_original_dst: true
    bind_to_port: false
    per_connection_buffer_limit_bytes: 4096
    listener_filters_timeout: 0s
    continue_on_listener_filters_timeout: true
    stat_prefix: outbound
    tcp_backlog_size: 64
    traffic_direction: OUTBOUND
    listener_filters:
    - name: tls
      typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}
    - name: od
      typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst}
    filter_chains:
    - name: tcp
      filter_chain_match:
        destination_port: 443
        prefix_ranges: [{address_prefix: 10.0.0.0, prefix_len: 8}]
        server_names: ["*.example.com"]
        transport_protocol: tls
        application_protocols: [h2]
        source_type: SAME_IP_OR_LOOPBACK
        source_prefix_ranges: [{address_prefix: "::"}]
        source_ports: [1234]
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: t
          weighted_clusters: {clusters: [{name: a, weight: 1}, {name: b, weight: 3}]}
          idle_timeout: 0s
          max_connect_attempts: 2
    default_filter_chain:
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: passthrough
          cluster: a
"#;
    let config = ok(yaml);
    let l = &config.listeners[0];
    assert_eq!(l.address, "[::1]:15001".parse().unwrap());
    assert!(l.use_original_dst && !l.bind_to_port && l.continue_on_listener_filters_timeout);
    assert_eq!(l.per_connection_buffer_limit_bytes, 4096);
    assert_eq!(l.listener_filters_timeout, Duration::ZERO);
    assert_eq!(
        (l.stat_prefix.as_str(), l.tcp_backlog_size),
        ("outbound", 64)
    );
    assert_eq!(
        l.listener_filters,
        vec![ListenerFilter::TlsInspector, ListenerFilter::OriginalDst]
    );
    let fc = &l.filter_chains[0];
    assert_eq!(fc.name, "tcp");
    assert_eq!(
        fc.matcher,
        FilterChainMatch {
            destination_port: Some(443),
            prefix_ranges: vec![CidrRange {
                address: "10.0.0.0".parse().unwrap(),
                prefix_len: 8
            }],
            server_names: vec!["*.example.com".into()],
            transport_protocol: Some("tls".into()),
            application_protocols: vec!["h2".into()],
            direct_source_prefix_ranges: vec![],
            source_type: SourceType::SameIpOrLoopback,
            source_prefix_ranges: vec![CidrRange {
                address: "::".parse().unwrap(),
                prefix_len: 0
            }],
            source_ports: vec![1234],
        }
    );
    let NetworkFilter::Tcp(t) = &fc.filter else {
        panic!()
    };
    assert_eq!(
        **t,
        TcpProxy {
            stat_prefix: "t".into(),
            cluster: TcpCluster::Weighted(vec![("a".into(), 1), ("b".into(), 3)]),
            idle_timeout: None,
            max_connect_attempts: 2,
        }
    );
    let Some(default) = &l.default_filter_chain else {
        panic!()
    };
    let NetworkFilter::Tcp(t) = &default.filter else {
        panic!()
    };
    assert_eq!(t.cluster, TcpCluster::Single("a".into()));
    assert_eq!(t.idle_timeout, Some(Duration::from_secs(3600)));
    assert_eq!(t.max_connect_attempts, 1);
}

#[test]
fn node_and_admin_convert() {
    let config = ok(r#"
node: {id: n1, cluster: c1, locality: {region: r, zone: z, sub_zone: s}, metadata: {a: 1}}
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 9901}}, access_log_path: /dev/null}
"#);
    assert_eq!(config.node.id, "n1");
    assert_eq!(config.node.locality.sub_zone, "s");
    assert_eq!(
        config.admin.unwrap().address,
        "127.0.0.1:9901".parse().unwrap()
    );
}

// ---- TLS --------------------------------------------------------------------------------------

fn tls_listener(tls: &str, secrets: &str) -> String {
    format!(
        r#"
static_resources:
  secrets:{secrets}
  listeners:
  - name: tls
    address: {{socket_address: {{address: 127.0.0.1, port_value: 10443}}}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
{tls}
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: x}}
"#,
        tls = indent(tls, 10),
        secrets = if secrets == "[]" {
            " []".to_owned()
        } else {
            format!("\n{}", indent(secrets, 2))
        }
    )
}

fn downstream_tls(config: &ProxyConfig) -> Arc<DownstreamTls> {
    config.listeners[0].filter_chains[0].tls.clone().unwrap()
}

#[test]
fn downstream_tls_with_files_inline_and_env() {
    let tls = format!(
        r#"require_client_certificate: true
common_tls_context:
  alpn_protocols: [h2, http/1.1]
  tls_params: {{tls_minimum_protocol_version: TLSv1_2, tls_maximum_protocol_version: TLSv1_3}}
  tls_certificates:
  - certificate_chain: {{filename: certs/server.crt}}
    private_key: {{inline_string: "KEY"}}
  validation_context:
    trusted_ca: {{filename: {}}}
    match_typed_subject_alt_names:
    - {{san_type: URI, matcher: {{prefix: "spiffe://cluster.local/"}}}}
    match_subject_alt_names: [{{exact: a.example.com}}]"#,
        testdata().join("certs/ca.crt").display()
    );
    let t = downstream_tls(&ok(&tls_listener(&tls, "[]")));
    assert_eq!(
        t.certificates,
        vec![CertificateSource {
            chain: DataSource::File(testdata().join("certs/server.crt")),
            key: DataSource::Inline(b"KEY".to_vec()),
        }]
    );
    assert!(t.require_client_certificate);
    assert_eq!(t.alpn_protocols, vec!["h2", "http/1.1"]);
    assert_eq!(
        (t.min_version, t.max_version),
        (TlsVersion::Tls12, TlsVersion::Tls13)
    );
    let v = t.validation.clone().unwrap();
    assert_eq!(
        v.trusted_ca,
        DataSource::File(testdata().join("certs/ca.crt"))
    );
    // The typed matcher, then the deprecated one applied to every SAN type, as Envoy does.
    assert_eq!(v.san_matchers.len(), 5);
    assert_eq!(
        v.san_matchers[0],
        SanMatcher {
            san_type: SanType::Uri,
            matcher: NameMatcher::Prefix("spiffe://cluster.local/".into())
        }
    );
    let types: Vec<_> = v.san_matchers[1..].iter().map(|m| m.san_type).collect();
    assert_eq!(
        types,
        vec![
            SanType::Dns,
            SanType::Uri,
            SanType::Email,
            SanType::IpAddress
        ]
    );
}

#[test]
fn sds_secrets_resolve_against_static_secrets() {
    let secrets = r#"- name: server_cert
  tls_certificate:
    certificate_chain: {filename: certs/server.crt}
    private_key: {filename: certs/server.key}
- name: ca
  validation_context: {trusted_ca: {filename: certs/ca.crt}}"#;
    let tls = r#"common_tls_context:
  tls_certificate_sds_secret_configs: [{name: server_cert}]
  validation_context_sds_secret_config: {name: ca}"#;
    let t = downstream_tls(&ok(&tls_listener(tls, secrets)));
    assert_eq!(
        t.certificates[0].key,
        DataSource::File(testdata().join("certs/server.key"))
    );
    assert_eq!(
        t.validation.clone().unwrap().trusted_ca,
        DataSource::File(testdata().join("certs/ca.crt"))
    );

    let missing = tls.replace("{name: ca}", "{name: nope}");
    err(
        &tls_listener(&missing, secrets),
        ErrorKind::Constraint,
        "unknown secret \"nope\"",
    );
    let wrong = tls.replace("{name: ca}", "{name: server_cert}");
    err(
        &tls_listener(&wrong, secrets),
        ErrorKind::InvalidValue,
        "is not a validation_context",
    );
    let with_server = tls.replace(
        "[{name: server_cert}]",
        "[{name: server_cert, sds_config: {ads: {}}}]",
    );
    err(
        &tls_listener(&with_server, secrets),
        ErrorKind::Unsupported,
        "field \"sds_config\"",
    );
}

#[test]
fn tls_files_must_exist_and_versions_be_supported() {
    let tls = r#"common_tls_context:
  tls_certificates: [{certificate_chain: {filename: certs/nope.crt}, private_key: {filename: certs/server.key}}]"#;
    let e = err(
        &tls_listener(tls, "[]"),
        ErrorKind::InvalidValue,
        "nope.crt",
    );
    assert!(
        e.path
            .ends_with("tls_certificates[0].certificate_chain.filename"),
        "{}",
        e.path
    );
    let env = r#"common_tls_context:
  tls_certificates: [{certificate_chain: {environment_variable: WEFT_SURELY_UNSET_VAR}, private_key: {inline_string: k}}]"#;
    err(
        &tls_listener(env, "[]"),
        ErrorKind::InvalidValue,
        "WEFT_SURELY_UNSET_VAR",
    );
    let old = r#"common_tls_context:
  tls_params: {tls_minimum_protocol_version: TLSv1_0}
  tls_certificates: [{certificate_chain: {filename: certs/server.crt}, private_key: {filename: certs/server.key}}]"#;
    err(
        &tls_listener(old, "[]"),
        ErrorKind::Unsupported,
        "TLS 1.0 and 1.1",
    );
    let no_cert = "require_client_certificate: false";
    err(
        &tls_listener(no_cert, "[]"),
        ErrorKind::Constraint,
        "needs a certificate",
    );
}

#[test]
fn upstream_tls_converts() {
    let c = cluster(
        r#"- name: c
  transport_socket:
    name: envoy.transport_sockets.tls
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
      sni: backend.example.com
      common_tls_context:
        alpn_protocols: [h2]
        validation_context:
          trusted_ca: {filename: certs/ca.crt}
          match_typed_subject_alt_names: [{san_type: DNS, matcher: {safe_regex: {regex: ".*\\.example\\.com"}}}]"#,
    );
    let t = c.tls.clone().unwrap();
    assert_eq!(t.sni.as_deref(), Some("backend.example.com"));
    assert_eq!(t.alpn_protocols, vec!["h2"]);
    let v = t.validation.clone().unwrap();
    let NameMatcher::Regex(re) = &v.san_matchers[0].matcher else {
        panic!()
    };
    assert!(re.is_match("api.example.com") && !re.is_match("api.example.org"));
    assert!(t.certificates.is_empty());
}

// ---- routes -----------------------------------------------------------------------------------

#[test]
fn routes_compile_with_envoy_semantics() {
    let route = r#"timeout: 0s
retry_policy:
  retry_on: 5xx,not-a-condition,reset
  num_retries: 3
  retry_host_predicate: [{name: envoy.retry_host_predicates.previous_hosts, typed_config: {"@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate}}]
hash_policy: [{header: {header_name: x-user}, terminal: true}]
request_mirror_policies: [{cluster: backend, runtime_fraction: {default_value: {numerator: 10}, runtime_key: k}}]"#;
    let config = ok(&http("", &indent(route, 18), "", ""));
    let table = hcm_of(&config).route_config.clone();
    assert_eq!(table.name(), "local");
    let vh = &table.virtual_hosts()[0];
    assert_eq!(vh.routes().len(), 1);
}

#[test]
fn route_table_errors_carry_the_full_path() {
    let hcm_route = "            - name: vh2\n              domains: [\"*\"]\n              routes: [{match: {prefix: /}, route: {cluster: backend}}]";
    let yaml = http("", "", "", "").replace(
        "          http_filters:",
        &format!("{hcm_route}\n          http_filters:"),
    );
    let e = err(
        &yaml,
        ErrorKind::Constraint,
        "only one virtual host may use the \"*\" domain",
    );
    assert!(
        e.path.ends_with("route_config.virtual_hosts[1].domains[0]"),
        "{}",
        e.path
    );
}

#[test]
fn per_filter_configs_are_keyed_by_canonical_filter_name() {
    let filters = r#"- name: my_fault
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
    abort: {http_status: 503, percentage: {numerator: 100}}
- name: envoy.filters.http.cors
  typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors}"#;
    let yaml = http("", "", &indent(filters, 10), "").replace(
        "              routes:\n",
        r#"              typed_per_filter_config:
                my_fault: {"@type": type.googleapis.com/envoy.config.route.v3.FilterConfig, disabled: true}
                envoy.filters.http.cors:
                  "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
                  allow_origin_string_match: [{exact: "https://a.example"}]
              routes:
"#,
    );
    let config = ok(&yaml);
    let table = hcm_of(&config).route_config.clone();
    let per = table.virtual_hosts()[0].typed_per_filter_config();
    assert_eq!(
        per.get("envoy.filters.http.fault"),
        Some(&PerFilterConfig::Disabled)
    );
    let Some(PerFilterConfig::Cors(cors)) = per.get("envoy.filters.http.cors") else {
        panic!("{per:?}")
    };
    assert!(cors.forward_not_matching_preflights);
    assert_eq!(cors.allow_origin.len(), 1);

    let mismatched = yaml.replace(
        "my_fault: {\"@type\": type.googleapis.com/envoy.config.route.v3.FilterConfig, disabled: true}",
        "my_fault: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy}",
    );
    err(
        &mismatched,
        ErrorKind::InvalidValue,
        "this config is for envoy.filters.http.cors",
    );
}

#[test]
fn direct_response_bodies_are_read_at_load() {
    let yaml = http("", "", "", "").replace(
        "                route:\n                  cluster: backend\n",
        "                direct_response: {status: 200, body: {filename: certs/ca.crt}}\n",
    );
    ok(&yaml);
    let missing = yaml.replace("certs/ca.crt", "certs/none.txt");
    err(&missing, ErrorKind::InvalidValue, "none.txt");
}

// ---- clusters -------------------------------------------------------------------------------

#[test]
fn cluster_fields_land_in_the_model() {
    let c = cluster(
        r#"- name: c
  type: STRICT_DNS
  connect_timeout: 2s
  per_connection_buffer_limit_bytes: 1024
  dns_refresh_rate: 30s
  dns_lookup_family: V4_ONLY
  lb_policy: RING_HASH
  ring_hash_lb_config: {minimum_ring_size: 64, maximum_ring_size: 4096}
  common_lb_config: {healthy_panic_threshold: {value: 25}, locality_weighted_lb_config: {}}
  circuit_breakers:
    thresholds:
    - {max_connections: 10, max_retries: 1}
    - {priority: HIGH, max_connections: 2048}
  typed_extension_protocol_options:
    envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
      "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
      common_http_protocol_options: {idle_timeout: 60s, max_requests_per_connection: 100}
      explicit_http_config: {http2_protocol_options: {}}
  load_assignment:
    cluster_name: c
    policy: {overprovisioning_factor: 200, weighted_priority_health: true}
    endpoints:
    - locality: {region: eu, zone: eu-1}
      priority: 1
      load_balancing_weight: 7
      lb_endpoints:
      - endpoint:
          address: {socket_address: {address: backend.example.com, port_value: 8443}}
          hostname: b.example.com
          health_check_config: {port_value: 9000}
        load_balancing_weight: 3
        health_status: DEGRADED
      - endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}
        health_status: DRAINING"#,
    );
    assert_eq!(c.discovery, Discovery::StrictDns);
    assert_eq!(c.connect_timeout, Duration::from_secs(2));
    assert_eq!(c.per_connection_buffer_limit_bytes, 1024);
    assert_eq!(c.dns_refresh_rate, Duration::from_secs(30));
    assert_eq!(c.dns_lookup_family, DnsLookupFamily::V4Only);
    let lb = c.lb.config();
    assert_eq!(
        lb.policy,
        weft_proxy_lb::LbPolicy::RingHash(weft_proxy_lb::RingHashConfig {
            minimum_ring_size: 64,
            maximum_ring_size: 4096
        })
    );
    assert_eq!(c.lb.panic_threshold_percent(), 25);
    assert!(lb.locality_weighted && lb.weighted_priority_health);
    assert_eq!(lb.overprovisioning_factor, 200);
    assert_eq!(
        c.circuit_breakers,
        Thresholds {
            max_connections: 10,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 1
        }
    );
    assert_eq!(c.protocol, UpstreamProtocol::Http2);
    assert_eq!(c.idle_timeout, Duration::from_secs(60));
    assert_eq!(c.max_requests_per_connection, Some(100));
    let l = &c.localities[0];
    assert_eq!(
        (l.priority, l.weight, l.locality.zone.as_str()),
        (1, Some(7), "eu-1")
    );
    assert_eq!(
        l.endpoints[0],
        Endpoint {
            address: EndpointAddress::Dns {
                host: "backend.example.com".into(),
                port: 8443
            },
            weight: 3,
            health: ConfiguredHealth::Degraded,
            hostname: "b.example.com".into(),
            health_check_port: Some(9000),
        }
    );
    assert_eq!(
        l.endpoints[1].address,
        EndpointAddress::Socket("10.0.0.1:80".parse().unwrap())
    );
    assert_eq!(l.endpoints[1].health, ConfiguredHealth::Unhealthy);
}

#[test]
fn lb_policies_convert() {
    let policy = |yaml: &str| {
        cluster(&format!("- name: c\n{}", indent(yaml, 2)))
            .lb
            .config()
            .policy
            .clone()
    };
    use weft_proxy_lb::{LbPolicy, LeastRequestConfig, MaglevConfig};
    assert_eq!(policy("lb_policy: RANDOM"), LbPolicy::Random);
    assert_eq!(
        policy("lb_policy: MAGLEV\nmaglev_lb_config: {table_size: 251}"),
        LbPolicy::Maglev(MaglevConfig { table_size: 251 })
    );
    assert_eq!(
        policy(
            "lb_policy: LEAST_REQUEST\nleast_request_lb_config: {choice_count: 3, active_request_bias: {default_value: 0.5, runtime_key: k}}"
        ),
        LbPolicy::LeastRequest(LeastRequestConfig {
            choice_count: 3,
            active_request_bias: Some(0.5),
            ..LeastRequestConfig::default()
        })
    );
    err(
        &clusters("- name: c\n  lb_policy: MAGLEV\n  maglev_lb_config: {table_size: 256}"),
        ErrorKind::Constraint,
        "prime",
    );
    err(
        &clusters("- name: c\n  lb_policy: ROUND_ROBIN\n  maglev_lb_config: {table_size: 251}"),
        ErrorKind::Unsupported,
        "no effect",
    );
    err(
        &clusters(
            "- name: c\n  lb_policy: RING_HASH\n  ring_hash_lb_config: {hash_function: MURMUR_HASH_2}",
        ),
        ErrorKind::Unsupported,
        "XX_HASH",
    );
}

#[test]
fn original_dst_clusters() {
    let c = cluster(
        "- name: od\n  type: ORIGINAL_DST\n  lb_policy: CLUSTER_PROVIDED\n  original_dst_lb_config: {use_http_header: true}",
    );
    assert_eq!(c.discovery, Discovery::OriginalDst);
    assert!(c.original_dst_use_http_header);
    err(
        &clusters("- name: c\n  lb_policy: CLUSTER_PROVIDED"),
        ErrorKind::Unsupported,
        "unsupported: cluster \"c\" lb_policy \"CLUSTER_PROVIDED\" without type ORIGINAL_DST",
    );
    err(
        &clusters("- name: c\n  type: ORIGINAL_DST"),
        ErrorKind::Constraint,
        "only CLUSTER_PROVIDED",
    );
    err(
        &clusters(
            "- name: c\n  type: ORIGINAL_DST\n  lb_policy: CLUSTER_PROVIDED\n  original_dst_lb_config: {http_header_name: x-dst}",
        ),
        ErrorKind::Unsupported,
        "http_header_name",
    );
}

#[test]
fn health_checks_convert() {
    let c = cluster(
        r#"- name: c
  health_checks:
  - timeout: 1s
    interval: 5s
    unhealthy_threshold: 3
    healthy_threshold: 2
    http_health_check: {path: /healthz, expected_statuses: [{start: 200, end: 300}]}
  - timeout: 2s
    interval: 10s
    unhealthy_threshold: 1
    healthy_threshold: 1
    tcp_health_check: {send: {text: "50494E47"}, receive: [{text: "504F4E47"}, {binary: "AQI="}]}"#,
    );
    assert_eq!(
        c.health_checks[0],
        HealthCheck {
            timeout: Duration::from_secs(1),
            interval: Duration::from_secs(5),
            unhealthy_threshold: 3,
            healthy_threshold: 2,
            kind: HealthCheckKind::Http {
                path: "/healthz".into(),
                host: "c".into(),
                expected_statuses: vec![(200, 300)]
            },
        }
    );
    assert_eq!(
        c.health_checks[1].kind,
        HealthCheckKind::Tcp {
            send: b"PING".to_vec(),
            receive: vec![b"PONG".to_vec(), vec![1, 2]]
        }
    );
}

#[test]
fn outlier_detection_fields_land_in_the_model() {
    let c = cluster(
        "- name: c\n  outlier_detection: {consecutive_5xx: 3, base_ejection_time: 400s, enforcing_consecutive_gateway_failure: 50, split_external_local_origin_errors: true}",
    );
    let o = c.outlier_detection.unwrap();
    assert_eq!(o.consecutive_5xx, 3);
    assert_eq!(o.max_ejection_time, Duration::from_secs(400));
    assert_eq!(o.enforcing_consecutive_gateway_failure, 50);
    assert!(o.split_external_local_origin_errors);
    err(
        &clusters(
            "- name: c\n  outlier_detection: {base_ejection_time: 60s, max_ejection_time: 10s}",
        ),
        ErrorKind::Constraint,
        "max_ejection_time",
    );
}

#[test]
fn upstream_protocols() {
    let proto = |opts: &str| {
        cluster(&format!(
            "- name: c\n  typed_extension_protocol_options:\n    envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n      \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n      {opts}"
        ))
        .protocol
    };
    assert_eq!(
        proto("explicit_http_config: {http_protocol_options: {}}"),
        UpstreamProtocol::Http1
    );
    assert_eq!(
        proto("use_downstream_protocol_config: {}"),
        UpstreamProtocol::UseDownstream
    );
    assert_eq!(
        cluster("- name: c\n  http2_protocol_options: {}").protocol,
        UpstreamProtocol::Http2
    );
    err(
        &clusters(
            "- name: c\n  typed_extension_protocol_options:\n    envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n      \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n      auto_config: {}",
        ),
        ErrorKind::Unsupported,
        "field \"auto_config\"",
    );
    err(
        &clusters("- name: c\n  http2_protocol_options: {max_concurrent_streams: 10}"),
        ErrorKind::Unsupported,
        "cluster \"c\" field \"max_concurrent_streams\"",
    );
}

#[test]
fn dns_names_only_in_dns_clusters() {
    err(
        &clusters(
            "- name: c\n  load_assignment: {cluster_name: c, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: example.com, port_value: 80}}}}]}]}",
        ),
        ErrorKind::InvalidValue,
        "not an IP address",
    );
    err(
        &clusters(
            "- name: c\n  type: LOGICAL_DNS\n  load_assignment: {cluster_name: c, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: a.com, port_value: 80}}}}, {endpoint: {address: {socket_address: {address: b.com, port_value: 80}}}}]}]}",
        ),
        ErrorKind::Constraint,
        "single lb_endpoint",
    );
}

#[test]
fn eds_needs_a_control_plane() {
    let eds = "- name: c\n  type: EDS\n  eds_cluster_config: {eds_config: {ads: {}}}";
    err(
        &clusters(eds),
        ErrorKind::Unsupported,
        "type EDS without dynamic_resources",
    );
    let xds = "- name: xds\n  load_assignment: {cluster_name: xds, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 15010}}}}]}]}";
    let with_cp = format!(
        "dynamic_resources: {{ads_config: {{api_type: GRPC, grpc_services: [{{envoy_grpc: {{cluster_name: xds}}}}]}}}}\n{}",
        clusters(&format!("{eds}\n{xds}"))
    );
    assert_eq!(ok(&with_cp).clusters[0].discovery, Discovery::Eds);
    // The config source must be ADS.
    let no_source = format!(
        "dynamic_resources: {{ads_config: {{api_type: GRPC, grpc_services: [{{envoy_grpc: {{cluster_name: xds}}}}]}}}}\n{}",
        clusters(&format!("- name: c\n  type: EDS\n{xds}"))
    );
    err(&no_source, ErrorKind::Constraint, "needs a config source");
}

// ---- unsupported ----------------------------------------------------------------------------

#[test]
fn unsupported_fields_are_rejected_naming_resource_and_field() {
    let yaml = http("", "", "", "").replace(
        "    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}",
        "    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}\n    tcp_fast_open_queue_length: 10",
    );
    let e = err(
        &yaml,
        ErrorKind::Unsupported,
        "unsupported: listener \"ingress\" field \"tcp_fast_open_queue_length\"",
    );
    assert_eq!(
        e.path,
        "static_resources.listeners[0].tcp_fast_open_queue_length"
    );

    let e = err(
        &http("          tracing: {}", "", "", ""),
        ErrorKind::Unsupported,
        "listener \"ingress\" field \"tracing\"",
    );
    assert!(
        e.path.ends_with("filters[0].typed_config.tracing"),
        "{}",
        e.path
    );

    err(
        &http("", "                  priority: HIGH", "", ""),
        ErrorKind::Unsupported,
        "field \"priority\"",
    );
    err(
        &http("          codec_type: HTTP3", "", "", ""),
        ErrorKind::Unsupported,
        "codec_type HTTP3",
    );
    err(
        &clusters("- name: c\n  respect_dns_ttl: true"),
        ErrorKind::Unsupported,
        "cluster \"c\" field \"respect_dns_ttl\"",
    );
    err(
        "header_prefix: x-weft",
        ErrorKind::Unsupported,
        "bootstrap field \"header_prefix\"",
    );
}

#[test]
fn unsupported_extensions_are_rejected_naming_the_filter() {
    let yaml = r#"
static_resources:
  listeners:
  - name: x
    address: {socket_address: {address: 127.0.0.1, port_value: 27017}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.mongo_proxy
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.mongo_proxy.v3.MongoProxy, stat_prefix: m}
"#;
    err(
        yaml,
        ErrorKind::Unsupported,
        "unsupported: listener \"x\" filter \"envoy.filters.network.mongo_proxy\"",
    );

    let buffer = r#"- name: envoy.filters.http.buffer
  typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer, max_request_bytes: 1024}"#;
    err(
        &http("", "", &indent(buffer, 10), ""),
        ErrorKind::Unsupported,
        "HTTP filter \"envoy.filters.http.buffer\"",
    );
    let pipe = yaml.replace(
        "{socket_address: {address: 127.0.0.1, port_value: 27017}}",
        "{pipe: {path: /tmp/s}}",
    );
    err(
        &pipe,
        ErrorKind::Unsupported,
        "listener \"x\" field \"pipe\"",
    );
}

#[test]
fn ignored_fields_are_accepted() {
    let yaml = http("", "", "", "").replace(
        "  - name: ingress\n",
        "  - name: ingress\n    traffic_direction: INBOUND\n    metadata: {filter_metadata: {a: {b: 1}}}\n",
    );
    ok(&yaml);
    ok(&clusters(
        "- name: c\n  alt_stat_name: other\n  circuit_breakers: {thresholds: [{track_remaining: true}]}",
    ));
}

// ---- cross-reference checks -------------------------------------------------------------------

#[test]
fn duplicate_names_and_addresses_are_rejected() {
    let two = |second: &str| {
        let base = http("", "", "", "");
        let listener = base
            [base.find("  - name: ingress").unwrap()..base.find("  clusters:").unwrap()]
            .to_owned();
        base.replace(
            "  clusters:",
            &format!("{}  clusters:", listener.replace("name: ingress", second)),
        )
    };
    err(
        &two("name: ingress"),
        ErrorKind::Constraint,
        "duplicate listener name \"ingress\"",
    );
    let e = err(
        &two("name: other"),
        ErrorKind::Constraint,
        "same address 127.0.0.1:10000",
    );
    assert_eq!(e.path, "static_resources.listeners[1].address");
    ok(&two("name: other\n    bind_to_port: false"));
    err(
        &http("", "", "", CLUSTER),
        ErrorKind::Constraint,
        "duplicate cluster name \"backend\"",
    );
}

#[test]
fn http_filter_chain_must_end_with_the_router() {
    let no_router = http("", "", "", "").replace(
        "          - name: envoy.filters.http.router\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n",
        "          - name: envoy.filters.http.cors\n            typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors}\n",
    );
    err(&no_router, ErrorKind::Constraint, "is the last HTTP filter");
    let empty = http("", "", "", "").replace(
        "          http_filters:\n\n          - name: envoy.filters.http.router\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n",
        "          http_filters: []\n",
    );
    err(&empty, ErrorKind::Constraint, "http_filters is empty");
}

#[test]
fn routes_must_name_known_clusters_unless_validation_is_off() {
    let unknown = http("", "", "", "").replace("cluster: backend\n", "cluster: nowhere\n");
    let e = err(
        &unknown,
        ErrorKind::Constraint,
        "unknown cluster \"nowhere\"",
    );
    assert!(e.path.ends_with("routes[0].route.cluster"), "{}", e.path);
    ok(&unknown.replace(
        "            name: local\n",
        "            name: local\n            validate_clusters: false\n",
    ));
    let weighted = http("", "", "", "").replace(
        "                  cluster: backend\n",
        "                  weighted_clusters: {clusters: [{name: backend, weight: 1}, {name: ghost, weight: 1}]}\n",
    );
    err(
        &weighted,
        ErrorKind::Constraint,
        "unknown weighted cluster \"ghost\"",
    );
}

// ---- the support tables themselves -------------------------------------------------------------

#[test]
fn support_tables_name_real_messages_and_fields() {
    let pool = crate::pool().unwrap();
    for r in support::RULES {
        let (desc, field_kind) = match pool.get_message_by_name(r.key) {
            Some(d) => (d, None),
            None => {
                // `Parent.field`: the field's message type.
                let (parent, field) = r.key.rsplit_once('.').unwrap();
                let parent = pool
                    .get_message_by_name(parent)
                    .unwrap_or_else(|| panic!("{}", r.key));
                let f = parent
                    .get_field_by_name(field)
                    .unwrap_or_else(|| panic!("{}", r.key));
                let prost_reflect::Kind::Message(m) = f.kind() else {
                    panic!("{}", r.key)
                };
                (m, Some(field))
            }
        };
        let _ = field_kind;
        for f in r.supported.iter().chain(r.ignored.iter().map(|(f, _)| f)) {
            assert!(
                desc.get_field_by_name(f).is_some(),
                "{} has no field {f}",
                r.key
            );
        }
    }
    for (ty, _) in support::EXTENSIONS {
        assert!(
            pool.get_message_by_name(ty).is_some(),
            "unknown extension type {ty}"
        );
    }
}

/// The route target of the first route of the first virtual host.
fn first_target(config: &ProxyConfig) -> weft_proxy_route::RouteTarget {
    let table = hcm_of(config).route_config.clone();
    match table.virtual_hosts()[0].routes()[0].action() {
        weft_proxy_route::RouteEntryAction::Route(t) => t.clone(),
        other => panic!("not a route: {other:?}"),
    }
}

#[test]
fn cookie_hash_policies_keep_ttl_and_path() {
    let generated = "hash_policy: [{cookie: {name: session, ttl: 3600.5s, path: /app}}]";
    let t = first_target(&ok(&http("", &indent(generated, 18), "", "")));
    assert_eq!(
        t.hash_policy[0].policy,
        weft_proxy_route::HashPolicySpecifier::Cookie {
            name: "session".into(),
            ttl: Some(Duration::from_millis(3_600_500)),
            path: Some("/app".into()),
        }
    );
    // A zero ttl still generates (a session cookie, without Max-Age); no ttl only reads.
    let zero = "hash_policy: [{cookie: {name: s, ttl: 0s}}, {cookie: {name: r}}]";
    let t = first_target(&ok(&http("", &indent(zero, 18), "", "")));
    let ttls: Vec<_> = t
        .hash_policy
        .iter()
        .map(|h| match &h.policy {
            weft_proxy_route::HashPolicySpecifier::Cookie { ttl, path, .. } => {
                assert_eq!(*path, None);
                *ttl
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ttls, [Some(Duration::ZERO), None]);
    // Cookie attributes are not supported.
    let attributes =
        "hash_policy: [{cookie: {name: s, ttl: 1s, attributes: [{name: SameSite, value: Lax}]}}]";
    err(
        &http("", &indent(attributes, 18), "", ""),
        ErrorKind::Unsupported,
        "attributes",
    );
}

#[test]
fn hash_policies_weft_cannot_honour_are_refused() {
    let filter_state = "hash_policy: [{filter_state: {key: x}}]";
    err(
        &http("", &indent(filter_state, 18), "", ""),
        ErrorKind::Unsupported,
        "filter_state",
    );
}

#[test]
fn retry_priority_previous_priorities_keeps_its_update_frequency() {
    let prio = |body: &str| {
        format!(
            "retry_policy:\n  retry_on: 5xx\n  retry_priority:\n    name: envoy.retry_priorities.previous_priorities\n{body}"
        )
    };
    let good = prio(
        "    typed_config: {\"@type\": type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig, update_frequency: 2}",
    );
    let t = first_target(&ok(&http("", &indent(&good, 18), "", "")));
    assert_eq!(
        t.retry_policy.unwrap().previous_priorities_update_frequency,
        Some(2)
    );
    // Envoy's validation rule: update_frequency > 0 (checked when parsing).
    let zero = prio(
        "    typed_config: {\"@type\": type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig, update_frequency: 0}",
    );
    let e = crate::parse_bootstrap(
        Path::new("test.yaml"),
        &http("", &indent(&zero, 18), "", ""),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("update_frequency: value 0 must be > 0"),
        "{e}"
    );
    // Other retry priorities are not.
    let other = prio(
        "    typed_config: {\"@type\": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate}",
    );
    let e = err(
        &http("", &indent(&other, 18), "", ""),
        ErrorKind::Unsupported,
        "retry priority",
    );
    assert!(
        e.path.ends_with("retry_priority.typed_config"),
        "{}",
        e.path
    );
    // Without one, nothing is set.
    let none = "retry_policy: {retry_on: 5xx}";
    let t = first_target(&ok(&http("", &indent(none, 18), "", "")));
    assert_eq!(
        t.retry_policy.unwrap().previous_priorities_update_frequency,
        None
    );
}

#[test]
fn require_tls_is_read_per_virtual_host() {
    for (value, expected) in [
        ("", weft_proxy_route::TlsRequirement::None),
        ("NONE", weft_proxy_route::TlsRequirement::None),
        (
            "EXTERNAL_ONLY",
            weft_proxy_route::TlsRequirement::ExternalOnly,
        ),
        ("ALL", weft_proxy_route::TlsRequirement::All),
    ] {
        let yaml = http("", "", "", "");
        let yaml = if value.is_empty() {
            yaml
        } else {
            yaml.replace(
                "              domains: [\"*\"]",
                &format!("              domains: [\"*\"]\n              require_tls: {value}"),
            )
        };
        let config = ok(&yaml);
        let table = hcm_of(&config).route_config.clone();
        assert_eq!(table.virtual_hosts()[0].require_tls(), expected, "{value}");
    }
}
