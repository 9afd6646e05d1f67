use serde_json::{Value, json};

use super::*;
use crate::diag::Severity;
use crate::validate::{FieldIssue, check};

fn se(v: Value) -> ServiceEntry {
    serde_json::from_value(v).unwrap()
}

/// Asserts an issue of `severity` at exactly `path` whose message contains `word`.
fn assert_issue(issues: &[FieldIssue], severity: Severity, path: &str, word: &str) {
    assert!(
        issues
            .iter()
            .any(|i| i.severity == severity && i.path == path && i.message.contains(word)),
        "expected {severity:?} at {path} mentioning {word:?}, got {issues:#?}"
    );
}

fn errors(spec: &ServiceEntry) -> Vec<FieldIssue> {
    check(spec)
        .into_iter()
        .filter(|i| i.severity == Severity::Error)
        .collect()
}

/// A valid external HTTPS API; each rule test changes one thing.
fn external() -> Value {
    json!({
        "hosts": ["api.example.com"],
        "location": "MESH_EXTERNAL",
        "resolution": "DNS",
        "ports": [{"number": 443, "name": "https", "protocol": "TLS"}]
    })
}

fn with(mut base: Value, key: &str, value: Value) -> Value {
    base[key] = value;
    base
}

#[test]
fn realistic_service_entries_are_valid() {
    let vm = json!({
        "hosts": ["reviews.bookinfo.internal"],
        "addresses": ["240.0.0.10"],
        "location": "MESH_INTERNAL",
        "resolution": "STATIC",
        "ports": [
            {"number": 9080, "name": "http", "protocol": "HTTP", "targetPort": 8080},
            {"number": 9443, "name": "grpc-api", "protocol": "grpc"}
        ],
        "workloadSelector": {"labels": {"app": "reviews"}}
    });
    let static_eps = json!({
        "hosts": ["db.internal"],
        "addresses": ["10.1.0.0/16"],
        "resolution": "STATIC",
        "ports": [{"number": 5432, "name": "tcp-pg", "protocol": "TCP"}],
        "endpoints": [
            {"address": "10.1.2.3", "labels": {"version": "v1"}, "weight": 3},
            {"address": "10.1.2.4", "ports": {"tcp-pg": 15432}, "locality": "us/us-east1/a"}
        ],
        "exportTo": ["."]
    });
    let uds = json!({
        "hosts": ["local.sock"],
        "resolution": "STATIC",
        "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
        "endpoints": [{"address": "unix:///var/run/app.sock"}]
    });
    for v in [external(), vm, static_eps, uds] {
        let spec = se(v.clone());
        assert!(check(&spec).is_empty(), "{v}: {:#?}", check(&spec));
    }
}

#[test]
fn hosts_are_required() {
    let issues = check(&se(json!({"resolution": "NONE"})));
    assert_issue(&issues, Severity::Error, "spec.hosts", "at least one host");
}

#[test]
fn bare_wildcard_host_is_rejected() {
    let issues = check(&se(with(external(), "hosts", json!(["*"]))));
    assert_issue(&issues, Severity::Error, "spec.hosts[0]", "cannot be \"*\"");
}

#[test]
fn invalid_host_is_rejected() {
    let issues = check(&se(with(external(), "hosts", json!(["a_b.example.com"]))));
    assert_issue(
        &issues,
        Severity::Error,
        "spec.hosts[0]",
        "not a valid host name",
    );
}

#[test]
fn ip_as_host_is_rejected() {
    // Resolution NONE, so the DNS-resolution host check does not run.
    let v = json!({"hosts": ["10.0.0.1"], "addresses": ["10.0.0.1"],
        "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}]});
    let issues = check(&se(v));
    assert_issue(&issues, Severity::Error, "spec.hosts[0]", "all-numeric");
}

#[test]
fn partial_wildcard_host_warns() {
    let v = json!({"hosts": ["*foo.example.com"], "addresses": ["1.1.1.1"],
        "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}]});
    let issues = check(&se(v));
    assert_issue(
        &issues,
        Severity::Warning,
        "spec.hosts[0]",
        "partial wildcard",
    );
}

#[test]
fn invalid_address_is_rejected() {
    let issues = check(&se(with(external(), "addresses", json!(["10.0.0.300"]))));
    assert_issue(
        &issues,
        Severity::Error,
        "spec.addresses[0]",
        "not a valid IP",
    );
}

#[test]
fn cidr_address_needs_none_or_static() {
    let issues = check(&se(with(external(), "addresses", json!(["10.0.0.0/8"]))));
    assert_issue(&issues, Severity::Error, "spec.addresses[0]", "CIDR");
    let mut v = with(external(), "addresses", json!(["10.0.0.0/8"]));
    v["resolution"] = json!("NONE");
    assert!(errors(&se(v)).is_empty());
}

#[test]
fn tcp_port_without_addresses_warns_with_resolution_none() {
    let v = json!({"hosts": ["db.example.com"], "ports": [{"number": 5432, "name": "pg"}]});
    let issues = check(&se(v));
    assert_issue(
        &issues,
        Severity::Warning,
        "spec.addresses",
        "addresses are required",
    );
}

#[test]
fn port_name_must_be_a_dns_label() {
    let v = with(
        external(),
        "ports",
        json!([{"number": 443, "name": "https_port", "protocol": "TLS"}]),
    );
    assert_issue(
        &check(&se(v)),
        Severity::Error,
        "spec.ports[0].name",
        "DNS-1123",
    );
    let v = with(
        external(),
        "ports",
        json!([{"number": 443, "protocol": "TLS"}]),
    );
    assert_issue(
        &check(&se(v)),
        Severity::Error,
        "spec.ports[0].name",
        "DNS-1123",
    );
}

#[test]
fn port_names_are_unique() {
    let v = with(
        external(),
        "ports",
        json!([{"number": 443, "name": "tls", "protocol": "TLS"},
               {"number": 8443, "name": "tls", "protocol": "TLS"}]),
    );
    assert_issue(
        &check(&se(v)),
        Severity::Error,
        "spec.ports[1].name",
        "already defined",
    );
}

#[test]
fn port_numbers_are_unique() {
    let v = with(
        external(),
        "ports",
        json!([{"number": 443, "name": "a", "protocol": "TLS"},
               {"number": 443, "name": "b", "protocol": "TLS"}]),
    );
    assert_issue(
        &check(&se(v)),
        Severity::Error,
        "spec.ports[1].number",
        "already defined",
    );
}

#[test]
fn port_number_must_be_in_range() {
    let v = with(
        external(),
        "ports",
        json!([{"number": 0, "name": "tls", "protocol": "TLS"}]),
    );
    assert_issue(
        &check(&se(v)),
        Severity::Error,
        "spec.ports[0].number",
        "range",
    );
}

#[test]
fn target_port_must_be_in_range() {
    let v = with(
        external(),
        "ports",
        json!([{"number": 443, "name": "tls", "protocol": "TLS", "targetPort": 70000}]),
    );
    assert_issue(
        &check(&se(v)),
        Severity::Error,
        "spec.ports[0].targetPort",
        "range",
    );
}

#[test]
fn protocol_must_be_known() {
    let v = with(
        external(),
        "ports",
        json!([{"number": 443, "name": "h3", "protocol": "HTTP3"}]),
    );
    assert_issue(
        &check(&se(v)),
        Severity::Error,
        "spec.ports[0].protocol",
        "unsupported protocol",
    );
}

#[test]
fn endpoints_and_workload_selector_are_exclusive() {
    let v = json!({
        "hosts": ["vm.internal"], "resolution": "STATIC", "location": "MESH_INTERNAL",
        "addresses": ["240.0.0.1"],
        "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
        "endpoints": [{"address": "10.0.0.1"}],
        "workloadSelector": {"labels": {"app": "vm"}}
    });
    assert_issue(
        &check(&se(v)),
        Severity::Error,
        "spec.workloadSelector",
        "only one of",
    );
}

#[test]
fn workload_selector_without_labels_warns() {
    let v = json!({"hosts": ["vm.internal"], "resolution": "STATIC", "workloadSelector": {}});
    assert_issue(
        &check(&se(v)),
        Severity::Warning,
        "spec.workloadSelector",
        "every workload",
    );
}

#[test]
fn workload_selector_rejects_wildcards() {
    let v = json!({"hosts": ["vm.internal"], "resolution": "STATIC",
        "workloadSelector": {"labels": {"app": "vm*"}}});
    assert_issue(
        &check(&se(v)),
        Severity::Error,
        "spec.workloadSelector.labels",
        "wildcard",
    );
}

#[test]
fn resolution_none_rejects_endpoints() {
    let v = json!({"hosts": ["a.example.com"], "addresses": ["1.2.3.4"],
        "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
        "endpoints": [{"address": "1.2.3.4"}]});
    assert_issue(&check(&se(v)), Severity::Error, "spec.endpoints", "NONE");
}

#[test]
fn resolution_none_with_selector_warns() {
    let v = json!({"hosts": ["a.internal"], "addresses": ["1.2.3.4"],
        "workloadSelector": {"labels": {"app": "a"}}});
    assert_issue(
        &check(&se(v)),
        Severity::Warning,
        "spec.workloadSelector",
        "NONE",
    );
}

fn static_with(endpoints: Value) -> Value {
    json!({
        "hosts": ["db.internal"], "addresses": ["240.0.0.2"], "resolution": "STATIC",
        "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
        "endpoints": endpoints
    })
}

#[test]
fn static_endpoints_need_ip_addresses() {
    let issues = check(&se(static_with(json!([{"address": "db.example.com"}]))));
    assert_issue(
        &issues,
        Severity::Error,
        "spec.endpoints[0].address",
        "not an IP address",
    );
}

#[test]
fn endpoint_address_is_required_unless_network_is_set() {
    let issues = check(&se(static_with(json!([{"labels": {"a": "b"}}]))));
    assert_issue(
        &issues,
        Severity::Error,
        "spec.endpoints[0].address",
        "required",
    );
    let issues = check(&se(static_with(json!([{"network": "vpc-2"}]))));
    assert_issue(
        &issues,
        Severity::Warning,
        "spec.endpoints[0].address",
        "vpc-2",
    );
    assert!(issues.iter().all(|i| i.severity == Severity::Warning));
}

#[test]
fn unix_endpoint_needs_absolute_path() {
    let issues = check(&se(static_with(
        json!([{"address": "unix://run/app.sock"}]),
    )));
    assert_issue(
        &issues,
        Severity::Error,
        "spec.endpoints[0].address",
        "absolute path",
    );
    let issues = check(&se(static_with(json!([{"address": "unix:///run/"}]))));
    assert_issue(
        &issues,
        Severity::Error,
        "spec.endpoints[0].address",
        "directory",
    );
    assert!(errors(&se(static_with(json!([{"address": "unix://@abstract"}])))).is_empty());
}

#[test]
fn unix_endpoint_must_not_set_ports() {
    let issues = check(&se(static_with(
        json!([{"address": "unix:///run/app.sock", "ports": {"http": 80}}]),
    )));
    assert_issue(
        &issues,
        Severity::Error,
        "spec.endpoints[0].ports",
        "must not set ports",
    );
}

#[test]
fn unix_endpoint_needs_exactly_one_service_port() {
    let mut v = static_with(json!([{"address": "unix:///run/app.sock"}]));
    v["ports"] = json!([{"number": 80, "name": "http", "protocol": "HTTP"},
                        {"number": 81, "name": "http2", "protocol": "HTTP"}]);
    assert_issue(
        &check(&se(v)),
        Severity::Error,
        "spec.endpoints[0].address",
        "exactly one port",
    );
}

#[test]
fn endpoint_ports_must_be_declared() {
    let issues = check(&se(static_with(
        json!([{"address": "10.0.0.1", "ports": {"grpc": 9090}}]),
    )));
    assert_issue(
        &issues,
        Severity::Error,
        "spec.endpoints[0].ports.grpc",
        "not defined by the service entry",
    );
}

#[test]
fn endpoint_port_values_must_be_valid() {
    let issues = check(&se(static_with(
        json!([{"address": "10.0.0.1", "ports": {"http": 0}}]),
    )));
    assert_issue(
        &issues,
        Severity::Error,
        "spec.endpoints[0].ports.http",
        "range",
    );
}

#[test]
fn endpoint_labels_must_be_valid() {
    let issues = check(&se(static_with(
        json!([{"address": "10.0.0.1", "labels": {"version": "v 1"}}]),
    )));
    assert_issue(
        &issues,
        Severity::Error,
        "spec.endpoints[0].labels",
        "invalid value",
    );
}

#[test]
fn dns_without_endpoints_rejects_wildcard_hosts() {
    let issues = check(&se(with(external(), "hosts", json!(["*.example.com"]))));
    assert_issue(
        &issues,
        Severity::Error,
        "spec.hosts[0]",
        "cannot be resolved",
    );
    // With endpoints the hosts are not resolved, so a wildcard is fine.
    let mut v = with(external(), "hosts", json!(["*.example.com"]));
    v["endpoints"] = json!([{"address": "proxy.example.com"}]);
    assert!(errors(&se(v)).is_empty());
}

#[test]
fn dns_endpoints_need_ip_or_host_name() {
    let mut v = external();
    v["endpoints"] = json!([{"address": "bad_host.example.com"}]);
    assert_issue(
        &check(&se(v.clone())),
        Severity::Error,
        "spec.endpoints[0].address",
        "not a valid IP address or host name",
    );
    v["endpoints"] = json!([{"address": "unix:///run/app.sock"}]);
    assert_issue(
        &check(&se(v.clone())),
        Severity::Error,
        "spec.endpoints[0].address",
        "cannot be used with DNS",
    );
    v["endpoints"] = json!([{"network": "n1"}]);
    assert_issue(
        &check(&se(v)),
        Severity::Error,
        "spec.endpoints[0].address",
        "required with DNS",
    );
}

#[test]
fn dns_round_robin_allows_one_endpoint() {
    let mut v = with(external(), "resolution", json!("DNS_ROUND_ROBIN"));
    v["endpoints"] = json!([{"address": "a.example.com"}, {"address": "b.example.com"}]);
    assert_issue(
        &check(&se(v)),
        Severity::Error,
        "spec.endpoints",
        "at most one",
    );
}

#[test]
fn dns_with_addresses_tcp_and_several_hosts_warns() {
    let v = json!({"hosts": ["a.example.com", "b.example.com"], "addresses": ["1.2.3.4"],
        "resolution": "DNS", "ports": [{"number": 443, "name": "tls", "protocol": "TLS"}]});
    let issues = check(&se(v));
    assert_issue(&issues, Severity::Warning, "spec.hosts", "only one host");
    assert!(
        errors(&se(json!({"hosts": ["a.example.com", "b.example.com"],
        "addresses": ["1.2.3.4"], "resolution": "DNS",
        "ports": [{"number": 443, "name": "tls", "protocol": "TLS"}]})))
        .is_empty()
    );
}

#[test]
fn dynamic_dns_rules() {
    let v = json!({
        "hosts": ["api.example.com"], "resolution": "DYNAMIC_DNS",
        "addresses": ["1.2.3.4"], "endpoints": [{"address": "1.2.3.4"}],
        "ports": [{"number": 5432, "name": "tcp", "protocol": "TCP"}]
    });
    let issues = check(&se(v));
    assert_issue(
        &issues,
        Severity::Error,
        "spec.hosts[0]",
        "must be a wildcard",
    );
    assert_issue(&issues, Severity::Error, "spec.addresses", "DYNAMIC_DNS");
    assert_issue(&issues, Severity::Error, "spec.endpoints", "DYNAMIC_DNS");
    assert_issue(
        &issues,
        Severity::Error,
        "spec.ports[0].protocol",
        "DYNAMIC_DNS",
    );
    let ok = json!({"hosts": ["*.example.com"], "resolution": "DYNAMIC_DNS",
        "ports": [{"number": 443, "name": "tls", "protocol": "TLS"}]});
    assert!(check(&se(ok.clone())).is_empty(), "{:#?}", check(&se(ok)));
}

#[test]
fn several_hosts_need_http_or_tls_ports() {
    let v = json!({"hosts": ["a.example.com", "b.example.com"], "resolution": "DNS",
        "ports": [{"number": 80, "name": "http", "protocol": "HTTP"},
                  {"number": 5432, "name": "pg", "protocol": "TCP"}]});
    let issues = check(&se(v));
    assert_issue(
        &issues,
        Severity::Error,
        "spec.ports[1].protocol",
        "neither HTTP nor TLS",
    );
    assert!(!issues.iter().any(|i| i.path == "spec.ports[0].protocol"));
    // With resolution NONE the hosts are not used to route.
    let v = json!({"hosts": ["a.example.com", "b.example.com"], "addresses": ["1.2.3.4"],
        "ports": [{"number": 5432, "name": "pg", "protocol": "TCP"}]});
    assert!(errors(&se(v)).is_empty());
}

#[test]
fn export_to_rules() {
    let check_export = |e: Value| check(&se(with(external(), "exportTo", e)));
    assert_issue(
        &check_export(json!(["Bad_NS"])),
        Severity::Error,
        "spec.exportTo[0]",
        "invalid exportTo",
    );
    assert_issue(
        &check_export(json!([".", "."])),
        Severity::Error,
        "spec.exportTo[1]",
        "duplicate",
    );
    assert_issue(
        &check_export(json!(["*", "ns1"])),
        Severity::Error,
        "spec.exportTo",
        "\"*\"",
    );
    assert_issue(
        &check_export(json!(["~", "ns1"])),
        Severity::Error,
        "spec.exportTo",
        "\"~\"",
    );
    assert!(check_export(json!(["~"])).is_empty());
    assert!(check_export(json!([".", "istio-system"])).is_empty());
}

#[test]
fn endpoint_weights_must_fit_in_u32() {
    let v = static_with(json!([
        {"address": "10.0.0.1", "weight": 4_000_000_000u32},
        {"address": "10.0.0.2", "weight": 4_000_000_000u32}
    ]));
    assert_issue(
        &check(&se(v)),
        Severity::Warning,
        "spec.endpoints",
        "add up to",
    );
}

#[test]
fn protocols_parse_like_istio() {
    assert_eq!(Protocol::parse("HTTP"), Protocol::Http);
    assert_eq!(Protocol::parse("http"), Protocol::Http);
    assert_eq!(Protocol::parse("Mongo"), Protocol::Mongo);
    assert_eq!(Protocol::parse("MYSQL"), Protocol::Mysql);
    assert_eq!(Protocol::parse("grpc-web"), Protocol::GrpcWeb);
    assert_eq!(Protocol::parse("HTTP_PROXY"), Protocol::HttpProxy);
    assert_eq!(Protocol::parse(""), Protocol::Unsupported);
    assert_eq!(Protocol::parse("HTTP3"), Protocol::Unsupported);
    let port: ServicePort =
        serde_json::from_value(json!({"number": 80, "name": "web", "protocol": "Https"})).unwrap();
    assert_eq!(port.protocol(), Protocol::Https);
    assert!(Protocol::Https.is_tcp() && Protocol::Https.is_tls());
    assert!(Protocol::Grpc.is_http() && Protocol::Grpc.is_http2() && Protocol::Grpc.is_grpc());
    assert!(!Protocol::Unsupported.is_http() && !Protocol::Unsupported.is_tcp());
    assert_eq!(Protocol::GrpcWeb.to_string(), "GRPC-Web");
}

#[test]
fn protocols_are_sniffed_from_port_names() {
    assert_eq!(Protocol::from_port_name("http-api", 8080), Protocol::Http);
    assert_eq!(Protocol::from_port_name("http", 8080), Protocol::Http);
    assert_eq!(Protocol::from_port_name("HTTP2-x", 8080), Protocol::Http2);
    assert_eq!(Protocol::from_port_name("grpc", 9090), Protocol::Grpc);
    assert_eq!(
        Protocol::from_port_name("grpc-web-ui", 80),
        Protocol::GrpcWeb
    );
    assert_eq!(Protocol::from_port_name("tcp-db", 5432), Protocol::Tcp);
    assert_eq!(Protocol::from_port_name("tls-", 443), Protocol::Tls);
    assert_eq!(Protocol::from_port_name("https-x", 443), Protocol::Https);
    assert_eq!(Protocol::from_port_name("web", 8080), Protocol::Unsupported);
    assert_eq!(Protocol::from_port_name("", 8080), Protocol::Unsupported);
    // Unnamed server-first ports are not sniffed.
    assert_eq!(Protocol::from_port_name("db", 3306), Protocol::Tcp);
    assert_eq!(Protocol::from_port_name("web", 27017), Protocol::Tcp);
    assert_eq!(Protocol::from_port_name("http", 3306), Protocol::Http);
}

#[test]
fn endpoint_ports_resolve_by_name_then_target_port() {
    let http: ServicePort =
        serde_json::from_value(json!({"number": 80, "name": "http", "targetPort": 8080})).unwrap();
    let grpc: ServicePort = serde_json::from_value(json!({"number": 90, "name": "grpc"})).unwrap();
    let ep: WorkloadEntry =
        serde_json::from_value(json!({"address": "1.2.3.4", "ports": {"grpc": 9090}})).unwrap();
    assert_eq!(ep.port_for(&http), 8080);
    assert_eq!(ep.port_for(&grpc), 9090);
    assert_eq!(WorkloadEntry::default().port_for(&grpc), 90);
    assert_eq!(http.target_port_or_number(), 8080);
}

#[test]
fn defaults_and_selector_matching() {
    let spec = se(json!({"hosts": ["a.example.com"]}));
    assert_eq!(spec.location(), Location::MeshExternal);
    assert_eq!(spec.resolution(), Resolution::None);
    let sel = WorkloadSelector {
        labels: [("app".to_owned(), "vm".to_owned())].into(),
    };
    assert!(sel.matches(&[("app".to_owned(), "vm".to_owned())].into()));
    assert!(!sel.matches(&crate::common::Labels::new()));
}

#[test]
fn unknown_fields_and_values_are_rejected() {
    let err = serde_json::from_value::<ServiceEntry>(json!({"host": ["a.example.com"]}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `host`"), "{err}");
    let err = serde_json::from_value::<ServiceEntry>(json!({
        "hosts": ["a.example.com"], "ports": [{"number": 80, "name": "http", "protocl": "HTTP"}]
    }))
    .unwrap_err()
    .to_string();
    assert!(err.contains("protocl"), "{err}");
    assert!(serde_json::from_value::<ServiceEntry>(json!({"resolution": "DNSS"})).is_err());
    assert!(serde_json::from_value::<ServiceEntry>(json!({"location": "mesh_internal"})).is_err());
    // The networking selector uses `labels`, not `matchLabels`.
    assert!(
        serde_json::from_value::<ServiceEntry>(json!({"workloadSelector": {"matchLabels": {}}}))
            .is_err()
    );
}

#[test]
fn maximal_spec_round_trips() {
    let v = json!({
        "hosts": ["reviews.internal", "*.reviews.internal"],
        "addresses": ["240.0.0.1", "10.0.0.0/24"],
        "ports": [{"number": 80, "protocol": "HTTP", "name": "http", "targetPort": 8080}],
        "location": "MESH_INTERNAL",
        "resolution": "DNS_ROUND_ROBIN",
        "endpoints": [{
            "address": "vm1.internal",
            "ports": {"http": 18080},
            "labels": {"app": "reviews"},
            "network": "vpc-1",
            "locality": "us-east1/us-east1-b/rack1",
            "weight": 7,
            "serviceAccount": "reviews"
        }],
        "workloadSelector": {"labels": {"app": "reviews"}},
        "exportTo": [".", "istio-system"],
        "subjectAltNames": ["spiffe://cluster.local/ns/default/sa/reviews"]
    });
    let spec = se(v.clone());
    let out = serde_json::to_value(&spec).unwrap();
    assert_eq!(out, v);
    assert_eq!(se(out), spec);
    // Unset fields stay unset.
    assert_eq!(
        serde_json::to_value(se(json!({"hosts": ["a.example.com"]}))).unwrap(),
        json!({"hosts": ["a.example.com"]})
    );
}

#[test]
fn resource_envelope_decodes_and_validates() {
    let doc = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": "httpbin", "namespace": "egress"},
        "spec": {
            "hosts": ["httpbin.org"],
            "resolution": "DNS",
            "ports": [{"number": 0, "name": "http", "protocol": "HTTP"}]
        }
    });
    let res = crate::Resource::from_value(crate::Kind::ServiceEntry, doc).unwrap();
    assert_issue(
        &res.validate(),
        Severity::Error,
        "spec.ports[0].number",
        "range",
    );

    let typo = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": "httpbin"},
        "spec": {"hosts": ["httpbin.org"], "endpoints": [{"adress": "1.2.3.4"}]}
    });
    let err = crate::Resource::from_value(crate::Kind::ServiceEntry, typo).unwrap_err();
    assert_eq!(err.path, "spec.endpoints[0].adress");
}
