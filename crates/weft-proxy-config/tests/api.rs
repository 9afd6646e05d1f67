//! The public API as the converters will use it: parse, then unpack each extension config.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers outside #[test] functions

use std::path::{Path, PathBuf};

use envoy_types::pb::envoy::{
    config::{
        bootstrap::v3::Bootstrap, cluster::v3::Cluster, core::v3::transport_socket,
        listener::v3::filter,
    },
    extensions::{
        filters::{
            http::{
                cors::v3::Cors, fault::v3::HttpFault, local_ratelimit::v3::LocalRateLimit,
                router::v3::Router,
            },
            listener::{
                http_inspector::v3::HttpInspector, original_dst::v3::OriginalDst,
                tls_inspector::v3::TlsInspector,
            },
            network::{
                http_connection_manager::v3::{HttpConnectionManager, http_filter},
                tcp_proxy::v3::TcpProxy,
            },
        },
        transport_sockets::tls::v3::{DownstreamTlsContext, UpstreamTlsContext},
        upstreams::http::v3::HttpProtocolOptions,
    },
};
use envoy_types::pb::google::protobuf::Any;
use weft_proxy_config::{ErrorKind, parse_bootstrap, unpack};

fn corpus(rel: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/bootstraps")
        .join(rel);
    let text = std::fs::read_to_string(&path).unwrap();
    (PathBuf::from(rel), text)
}

fn load(rel: &str) -> Bootstrap {
    let (path, text) = corpus(rel);
    parse_bootstrap(&path, &text).unwrap()
}

fn network_filter(bs: &Bootstrap, listener: usize, chain: usize, i: usize) -> Any {
    let l = &bs.static_resources.as_ref().unwrap().listeners[listener];
    match &l.filter_chains[chain].filters[i].config_type {
        Some(filter::ConfigType::TypedConfig(any)) => any.clone(),
        other => panic!("no typed_config: {other:?}"),
    }
}

fn http_filters(hcm: &HttpConnectionManager) -> Vec<Any> {
    hcm.http_filters
        .iter()
        .map(|f| match &f.config_type {
            Some(http_filter::ConfigType::TypedConfig(any)) => any.clone(),
            other => panic!("no typed_config: {other:?}"),
        })
        .collect()
}

fn cluster<'a>(bs: &'a Bootstrap, name: &str) -> &'a Cluster {
    let clusters = &bs.static_resources.as_ref().unwrap().clusters;
    clusters.iter().find(|c| c.name == name).unwrap()
}

#[test]
fn basic_bootstrap_fields_arrive_typed() {
    let bs = load("valid/basic.yaml");
    assert_eq!(bs.node.as_ref().unwrap().id, "weft-test-node");
    let c = cluster(&bs, "backend");
    let timeout = c.connect_timeout.unwrap();
    assert_eq!((timeout.seconds, timeout.nanos), (0, 250_000_000));
    let hcm: HttpConnectionManager = unpack(&network_filter(&bs, 0, 0, 0)).unwrap();
    assert_eq!(hcm.stat_prefix, "ingress_http");
    let router: Router = unpack(&http_filters(&hcm)[0]).unwrap();
    assert!(!router.suppress_envoy_headers);
}

#[test]
fn every_supported_filter_unpacks() {
    let bs = load("valid/filters.yaml");
    let l = &bs.static_resources.as_ref().unwrap().listeners[0];
    let listener_any = |i: usize| match &l.listener_filters[i].config_type {
        Some(
            envoy_types::pb::envoy::config::listener::v3::listener_filter::ConfigType::TypedConfig(
                a,
            ),
        ) => a.clone(),
        other => panic!("{other:?}"),
    };
    unpack::<TlsInspector>(&listener_any(0)).unwrap();
    unpack::<HttpInspector>(&listener_any(1)).unwrap();
    unpack::<OriginalDst>(&listener_any(2)).unwrap();

    let hcm: HttpConnectionManager = unpack(&network_filter(&bs, 0, 0, 0)).unwrap();
    let filters = http_filters(&hcm);
    let fault: HttpFault = unpack(&filters[0]).unwrap();
    assert_eq!(fault.abort.unwrap().percentage.unwrap().numerator, 1);
    unpack::<Cors>(&filters[1]).unwrap();
    let rl: LocalRateLimit = unpack(&filters[2]).unwrap();
    assert_eq!(rl.token_bucket.unwrap().max_tokens, 100);
    assert!(
        unpack::<Router>(&filters[3])
            .unwrap()
            .suppress_envoy_headers
    );

    let tcp: TcpProxy = unpack(&network_filter(&bs, 1, 0, 0)).unwrap();
    assert_eq!(tcp.stat_prefix, "tcp");
    let ts = bs.static_resources.as_ref().unwrap().listeners[1].filter_chains[0]
        .transport_socket
        .clone()
        .unwrap();
    let Some(transport_socket::ConfigType::TypedConfig(any)) = &ts.config_type else {
        panic!("no tls config");
    };
    let tls: DownstreamTlsContext = unpack(any).unwrap();
    assert!(tls.require_client_certificate.unwrap().value);
}

#[test]
fn cluster_extensions_unpack() {
    let bs = load("valid/clusters.yaml");
    let c = cluster(&bs, "static_backend");
    let any = &c.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    let opts: HttpProtocolOptions = unpack(any).unwrap();
    let common = opts.common_http_protocol_options.unwrap();
    assert_eq!(common.max_requests_per_connection.unwrap().value, 100);
    let ts = cluster(&bs, "strict_dns_backend")
        .transport_socket
        .clone()
        .unwrap();
    let Some(transport_socket::ConfigType::TypedConfig(any)) = &ts.config_type else {
        panic!("no tls config");
    };
    let tls: UpstreamTlsContext = unpack(any).unwrap();
    assert_eq!(tls.sni, "backend.example.com");
}

#[test]
fn typed_struct_unpacks_as_the_type_it_names() {
    let bs = load("valid/typed_struct.yaml");
    let hcm: HttpConnectionManager = unpack(&network_filter(&bs, 0, 0, 0)).unwrap();
    let filters = http_filters(&hcm);
    assert!(filters[3].type_url.ends_with("xds.type.v3.TypedStruct"));
    assert!(
        unpack::<Router>(&filters[3])
            .unwrap()
            .suppress_envoy_headers
    );
    assert!(filters[1].type_url.ends_with("udpa.type.v1.TypedStruct"));
    unpack::<Cors>(&filters[1]).unwrap();
    let err = unpack::<HttpFault>(&filters[3]).unwrap_err();
    assert_eq!(err.kind, ErrorKind::TypeMismatch);
    assert_eq!(
        err.to_string(),
        "typed_config is a TypedStruct of envoy.extensions.filters.http.router.v3.Router, expected envoy.extensions.filters.http.fault.v3.HTTPFault"
    );
}

#[test]
fn unpack_checks_the_type_but_not_the_host_of_the_url() {
    let router = Any {
        type_url: "example.com/a/b/envoy.extensions.filters.http.router.v3.Router".into(),
        value: Vec::new(),
    };
    unpack::<Router>(&router).unwrap();
    let err = unpack::<Cors>(&router).unwrap_err();
    assert_eq!(err.kind, ErrorKind::TypeMismatch);
}

#[test]
fn errors_display_file_line_path_and_message() {
    let (path, text) = corpus("invalid/bad_enum.yaml");
    let err = parse_bootstrap(&path, &text).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidValue);
    assert_eq!(err.line, Some(49));
    assert_eq!(err.path, "static_resources.clusters[0].lb_policy");
    assert_eq!(
        err.to_string(),
        "invalid/bad_enum.yaml:49: static_resources.clusters[0].lb_policy: unknown enum value \"ROUND_ROBINN\" (did you mean \"ROUND_ROBIN\"?)"
    );
}

#[test]
fn json_errors_have_lines_too() {
    let (path, text) = corpus("invalid/unknown_field.json");
    let err = parse_bootstrap(&path, &text).unwrap_err();
    assert_eq!(err.kind, ErrorKind::UnknownField);
    assert_eq!(
        err.to_string(),
        "invalid/unknown_field.json:4: node.clustr: unknown field \"clustr\" (did you mean \"cluster\"?)"
    );
}

#[test]
fn error_kinds() {
    let kind = |rel: &str| {
        let (path, text) = corpus(rel);
        parse_bootstrap(&path, &text).unwrap_err().kind
    };
    assert_eq!(
        kind("invalid/text_proto.pb_text"),
        ErrorKind::UnsupportedFormat
    );
    assert_eq!(kind("invalid/malformed_yaml_flow.yaml"), ErrorKind::Syntax);
    assert_eq!(kind("invalid/bad_type_url.yaml"), ErrorKind::UnknownType);
    assert_eq!(
        kind("invalid/unknown_field_in_nested_any.yaml"),
        ErrorKind::UnknownField
    );
    assert_eq!(kind("invalid/pgv_uint32_lte.yaml"), ErrorKind::Constraint);
    assert_eq!(
        kind("invalid/wrong_type_string_for_int.yaml"),
        ErrorKind::InvalidValue
    );
}

#[test]
fn the_extension_decides_the_format_as_in_envoy() {
    let yaml = "node: {id: a}\n";
    parse_bootstrap(Path::new("b.YAML"), yaml).unwrap();
    parse_bootstrap(Path::new("b.yml"), yaml).unwrap();
    let err = parse_bootstrap(Path::new("b.conf"), yaml).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Syntax);
    assert!(
        err.to_string().contains("read as JSON, as Envoy does"),
        "{err}"
    );
    parse_bootstrap(Path::new("b.conf"), "{\"node\": {\"id\": \"a\"}}").unwrap();
}

/// Prints the one-time descriptor decode cost (`cargo test -- --nocapture` shows it).
#[test]
fn descriptor_pool_decodes_once() {
    let started = std::time::Instant::now();
    let pool = weft_proxy_config::pool().unwrap();
    let first = started.elapsed();
    let again = std::time::Instant::now();
    weft_proxy_config::pool().unwrap();
    let later = again.elapsed();
    eprintln!(
        "descriptor pool: {} messages, first use {first:?} (0 if another test got there first), \
         later uses {later:?}",
        pool.all_messages().count()
    );
    assert!(
        pool.get_message_by_name("xds.type.v3.TypedStruct")
            .is_some()
    );
    assert!(pool.get_extension_by_name("validate.rules").is_some());
}

/// Extensions weft does not support are outside the resident descriptors: they are still parsed
/// and validated as Envoy does (from the full set), then rejected as unsupported at load.
#[test]
fn unsupported_extensions_are_parsed_like_the_rest() {
    let bootstrap = |filter: &str| {
        format!(
            r#"
static_resources:
  listeners:
  - name: x
    address: {{socket_address: {{address: 127.0.0.1, port_value: 10000}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: x
          route_config: {{name: r}}
          http_filters:
          - name: f
            typed_config: {filter}
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
"#
        )
    };
    let parse = |filter: &str| parse_bootstrap(Path::new("b.yaml"), &bootstrap(filter));
    const BUFFER: &str = "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer";
    const LUA: &str = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua";
    let at = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config";

    let err = parse(&format!("{{\"@type\": {BUFFER}, max_request_byte: 1}}")).unwrap_err();
    assert_eq!(err.kind, ErrorKind::UnknownField);
    assert_eq!(
        err.message,
        "unknown field \"max_request_byte\" (did you mean \"max_request_bytes\"?)"
    );
    let err = parse(&format!("{{\"@type\": {BUFFER}}}")).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Constraint);
    assert_eq!(err.path, format!("{at}.max_request_bytes"));
    let err = parse(&format!(
        "{{\"@type\": type.googleapis.com/xds.type.v3.TypedStruct, type_url: {LUA}, value: {{source_codes: {{a: {{inline_strin: x}}}}}}}}"
    ))
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::UnknownField);
    assert_eq!(err.path, format!("{at}.value.source_codes.a.inline_strin"));
    // A misspelt type gets its hint from every Envoy type, resident or not.
    let err = parse("{\"@type\": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lu}")
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::UnknownType);
    assert!(
        err.message
            .ends_with("(did you mean \"envoy.extensions.filters.http.lua.v3.Lua\"?)"),
        "{err}"
    );

    let valid = parse(&format!("{{\"@type\": {BUFFER}, max_request_bytes: 1024}}")).unwrap();
    let err = weft_proxy_config::convert_bootstrap(&valid, Path::new(".")).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unsupported);
    assert_eq!(
        err.message,
        "unsupported: listener \"x\" HTTP filter \"f\" (type envoy.extensions.filters.http.buffer.v3.Buffer)"
    );
    let lua = parse(&format!(
        "{{\"@type\": type.googleapis.com/udpa.type.v1.TypedStruct, type_url: {LUA}, value: {{default_source_code: {{inline_string: x}}}}}}"
    ))
    .unwrap();
    let err = weft_proxy_config::convert_bootstrap(&lua, Path::new(".")).unwrap_err();
    assert_eq!(
        err.message,
        "unsupported: listener \"x\" HTTP filter \"f\" (type envoy.extensions.filters.http.lua.v3.Lua)"
    );
}
