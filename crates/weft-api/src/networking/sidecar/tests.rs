use serde_json::{Value, json};

use super::*;

crate::validate::validation_test_helpers!(Sidecar);

fn ingress(listeners: Value) -> Value {
    json!({"ingress": listeners})
}

fn egress(listeners: Value) -> Value {
    json!({"egress": listeners})
}

/// One ingress listener on port 9080 with extra fields merged in.
fn http_ingress(extra: Value) -> Value {
    let mut l = json!({"port": {"number": 9080, "protocol": "HTTP", "name": "http"},
                       "defaultEndpoint": "127.0.0.1:8080"});
    if let (Some(base), Value::Object(extra)) = (l.as_object_mut(), extra) {
        base.extend(extra);
    }
    ingress(json!([l]))
}

/// One ingress listener on an HTTPS port with the given TLS settings.
fn tls_ingress(tls: Value) -> Value {
    http_ingress(
        json!({"port": {"number": 8443, "protocol": "HTTPS", "name": "https"}, "tls": tls}),
    )
}

fn hosts(h: Value) -> Value {
    egress(json!([{"hosts": h}]))
}

// ---- deserialization ----

#[test]
fn realistic_sidecars_deserialize_and_validate_clean() {
    assert_clean(json!({
        "egress": [{"hosts": ["./*", "istio-system/*"]}]
    }));
    assert_clean(json!({
        "workloadSelector": {"labels": {"app": "productpage"}},
        "ingress": [{"port": {"number": 9080, "protocol": "HTTP", "name": "somename"},
                     "defaultEndpoint": "unix:///var/run/someuds.sock"}],
        "egress": [
            {"port": {"number": 9080, "protocol": "HTTP", "name": "egresshttp"},
             "hosts": ["prod-us1/*"]},
            {"hosts": ["istio-system/*"]}
        ]
    }));
    assert_clean(json!({
        "workloadSelector": {"labels": {"app": "productpage"}},
        "ingress": [{"port": {"number": 9080, "protocol": "HTTP", "name": "somename"},
                     "defaultEndpoint": "127.0.0.1:8080", "captureMode": "NONE"}],
        "egress": [
            {"port": {"number": 3306, "protocol": "MYSQL", "name": "egressmysql"},
             "captureMode": "NONE", "bind": "127.0.0.1", "hosts": ["*/mysql.foo.com"]},
            {"captureMode": "IPTABLES", "hosts": ["*/*"]}
        ],
        "outboundTrafficPolicy": {"mode": "ALLOW_ANY",
                                  "egressProxy": {"host": "egress.corp.example.com", "subset": "v1",
                                                  "port": {"number": 3128}}}
    }));
    assert_clean(json!({
        "ingress": [{"port": {"number": 8443, "protocol": "HTTPS", "name": "external"},
                     "defaultEndpoint": "0.0.0.0:9080",
                     "tls": {"mode": "SIMPLE", "privateKey": "/etc/k.pem",
                             "serverCertificate": "/etc/c.pem"}}],
        "inboundConnectionPool": {"http": {"http1MaxPendingRequests": 1024,
                                           "idleTimeout": "5m"}}
    }));
}

#[test]
fn unknown_fields_are_rejected() {
    for bad in [
        json!({"egres": []}),
        // The networking selector takes `labels`, not the security API's `matchLabels`.
        json!({"workloadSelector": {"matchLabels": {"app": "a"}}}),
        json!({"egress": [{"hosts": ["./*"], "localhostServerTls": {}}]}),
        json!({"ingress": [{"port": {"number": 80}, "localhostClientTls": {}}]}),
        json!({"outboundTrafficPolicy": {"mode": "ALLOW_ANY", "egressProxy": {"hostname": "a.b"}}}),
    ] {
        let err = serde_json::from_value::<Sidecar>(bad.clone()).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{bad}: {err}");
    }
}

#[test]
fn enums_use_proto_names() {
    assert!(
        serde_json::from_value::<Sidecar>(json!({"egress": [{"captureMode": "none"}]})).is_err()
    );
    assert!(
        serde_json::from_value::<Sidecar>(
            json!({"outboundTrafficPolicy": {"mode": "ALLOW_ANY_DYNAMIC_DNS"}})
        )
        .is_err()
    );
}

fn maximal() -> Value {
    json!({
        "workloadSelector": {"labels": {"app": "reviews", "version": "v2"}},
        "ingress": [{
            "port": {"number": 8443, "protocol": "HTTPS", "name": "https", "targetPort": 9443},
            "bind": "0.0.0.0",
            "captureMode": "IPTABLES",
            "defaultEndpoint": "[::1]:9080",
            "tls": {"mode": "MUTUAL", "serverCertificate": "/c.pem", "privateKey": "/k.pem",
                    "caCertificates": "/ca.pem", "minProtocolVersion": "TLSV1_3"},
            "connectionPool": {"tcp": {"maxConnections": 10}, "http": {"maxRetries": 2}}
        }],
        "egress": [
            {"port": {"number": 0, "protocol": "HTTP", "name": "uds"},
             "bind": "unix:///var/run/egress.sock", "captureMode": "NONE",
             "hosts": ["./*"]},
            {"hosts": ["~/*", "istio-system/*"], "captureMode": "IPTABLES", "bind": "127.0.0.1"}
        ],
        "inboundConnectionPool": {"tcp": {"connectTimeout": "1s"}},
        "outboundTrafficPolicy": {
            "mode": "ALLOW_ANY",
            "egressProxy": {"host": "proxy.corp.example.com", "subset": "v1",
                            "port": {"number": 3128}}
        }
    })
}

#[test]
fn maximal_spec_round_trips() {
    let mut input = maximal();
    let sidecar = parse(input.clone());
    let output = serde_json::to_value(&sidecar).unwrap();
    // Port 0 is the proto default, so it is not written back.
    if let Some(port) = input
        .pointer_mut("/egress/0/port")
        .and_then(Value::as_object_mut)
    {
        port.remove("number");
    }
    assert_eq!(output, input);
    assert_eq!(parse(output), sidecar);
}

// ---- top level ----

#[test]
fn an_empty_sidecar_is_an_error() {
    assert_error(
        json!({"workloadSelector": {"labels": {"app": "a"}}}),
        "spec",
        "empty",
    );
}

#[test]
fn workload_selector_rejects_wildcards() {
    assert_error(
        json!({"workloadSelector": {"labels": {"app": "rev*"}}, "egress": [{"hosts": ["./*"]}]}),
        "spec.workloadSelector.labels",
        "wildcard",
    );
}

#[test]
fn workload_selector_labels_must_be_valid() {
    assert_error(
        json!({"workloadSelector": {"labels": {"app": "a b"}}, "egress": [{"hosts": ["./*"]}]}),
        "spec.workloadSelector.labels",
        "invalid value",
    );
}

#[test]
fn workload_selector_without_labels_warns() {
    assert_warning(
        json!({"workloadSelector": {}, "egress": [{"hosts": ["./*"]}]}),
        "spec.workloadSelector",
        "every workload",
    );
}

#[test]
fn inbound_connection_pool_is_validated() {
    assert_error(
        json!({"inboundConnectionPool": {"tcp": {"maxConnections": -1}}}),
        "spec.inboundConnectionPool.tcp.maxConnections",
        "negative",
    );
}

// ---- ingress ----

#[test]
fn ingress_port_is_required() {
    assert_error(
        ingress(json!([{"defaultEndpoint": "127.0.0.1:8080"}])),
        "spec.ingress[0].port",
        "required",
    );
}

#[test]
fn ingress_port_number_must_be_valid() {
    assert_error(
        http_ingress(json!({"port": {"number": 0, "protocol": "HTTP", "name": "http"}})),
        "spec.ingress[0].port.number",
        "range",
    );
}

#[test]
fn ingress_ports_are_unique() {
    assert_error(
        ingress(json!([
            {"port": {"number": 9080, "protocol": "HTTP"}},
            {"port": {"number": 9080, "protocol": "TCP"}}
        ])),
        "spec.ingress[1].port.number",
        "unique",
    );
}

#[test]
fn port_names_and_protocols_are_checked() {
    assert_error(
        http_ingress(json!({"port": {"number": 80, "protocol": "HTTP", "name": "bad_name"}})),
        "spec.ingress[0].port.name",
        "DNS-1123",
    );
    assert_error(
        http_ingress(json!({"port": {"number": 80, "protocol": "QUIC"}})),
        "spec.ingress[0].port.protocol",
        "unsupported protocol",
    );
    // An empty protocol means "sniff".
    assert_clean(http_ingress(json!({"port": {"number": 80}})));
}

#[test]
fn target_port_is_rejected() {
    assert_error(
        http_ingress(json!({"port": {"number": 80, "protocol": "HTTP", "targetPort": 8080}})),
        "spec.ingress[0].port.targetPort",
        "no effect",
    );
    assert_error(
        egress(
            json!([{"port": {"number": 80, "protocol": "HTTP", "targetPort": 8080},
                       "hosts": ["./*"]}]),
        ),
        "spec.egress[0].port.targetPort",
        "no effect",
    );
}

#[test]
fn ingress_bind_is_an_ip() {
    assert_error(
        http_ingress(json!({"bind": "unix:///var/run/in.sock"})),
        "spec.ingress[0].bind",
        "unix domain socket",
    );
    assert_error(
        http_ingress(json!({"bind": "10.0.0.300"})),
        "spec.ingress[0].bind",
        "not a valid IP",
    );
}

#[test]
fn default_endpoint_forms() {
    for ok in [
        "127.0.0.1:8080",
        "0.0.0.0:8080",
        "[::1]:8080",
        "[::]:8080",
        ":8080",
        "unix:///var/run/app.sock",
        "unix://@app",
    ] {
        assert_clean(http_ingress(json!({"defaultEndpoint": ok})));
    }
    let path = "spec.ingress[0].defaultEndpoint";
    assert_error(
        http_ingress(json!({"defaultEndpoint": "10.0.0.1:8080"})),
        path,
        "not allowed",
    );
    assert_error(
        http_ingress(json!({"defaultEndpoint": "localhost"})),
        path,
        "not host:port",
    );
    assert_error(
        http_ingress(json!({"defaultEndpoint": "127.0.0.1:http"})),
        path,
        "not a number",
    );
    assert_error(
        http_ingress(json!({"defaultEndpoint": "127.0.0.1:0"})),
        path,
        "range",
    );
    assert_error(
        http_ingress(json!({"defaultEndpoint": "unix://var/app.sock"})),
        path,
        "absolute path",
    );
    assert_error(
        http_ingress(json!({"defaultEndpoint": "::1:8080"})),
        path,
        "not host:port",
    );
}

#[test]
fn ingress_tls_rejects_unsupported_fields() {
    for (field, value) in [
        ("subjectAltNames", json!(["a.com"])),
        ("httpsRedirect", json!(true)),
        ("credentialName", json!("cred")),
        ("credentialNames", json!(["cred"])),
        (
            "tlsCertificates",
            json!([{"serverCertificate": "/c.pem", "privateKey": "/k.pem"}]),
        ),
    ] {
        let mut tls =
            json!({"mode": "SIMPLE", "serverCertificate": "/c.pem", "privateKey": "/k.pem"});
        tls[field] = value;
        assert_error(
            tls_ingress(tls),
            &format!("spec.ingress[0].tls.{field}"),
            "not supported",
        );
    }
}

#[test]
fn ingress_tls_mode_is_restricted() {
    assert_error(
        tls_ingress(json!({"mode": "ISTIO_MUTUAL"})),
        "spec.ingress[0].tls.mode",
        "SIMPLE",
    );
    assert_error(
        tls_ingress(json!({"mode": "AUTO_PASSTHROUGH"})),
        "spec.ingress[0].tls.mode",
        "SIMPLE",
    );
}

#[test]
fn ingress_tls_needs_a_tls_protocol() {
    assert_error(
        http_ingress(
            json!({"tls": {"mode": "SIMPLE", "serverCertificate": "/c.pem",
                                    "privateKey": "/k.pem"}}),
        ),
        "spec.ingress[0].tls",
        "HTTPS or TLS",
    );
}

#[test]
fn ingress_tls_gets_the_server_tls_checks() {
    assert_error(
        tls_ingress(json!({"mode": "SIMPLE", "privateKey": "/k.pem"})),
        "spec.ingress[0].tls.serverCertificate",
        "requires serverCertificate",
    );
}

#[test]
fn ingress_connection_pool_is_validated() {
    assert_error(
        http_ingress(json!({"connectionPool": {}})),
        "spec.ingress[0].connectionPool",
        "tcp or http",
    );
}

#[test]
fn http_pool_on_a_tcp_port_warns() {
    assert_warning(
        http_ingress(json!({"port": {"number": 5432, "protocol": "TCP"},
                            "connectionPool": {"http": {"maxRetries": 1}}})),
        "spec.ingress[0].connectionPool.http",
        "only the tcp settings apply",
    );
}

// ---- egress ----

#[test]
fn catch_all_egress_listener_must_be_last() {
    assert_error(
        egress(json!([
            {"hosts": ["./*"]},
            {"port": {"number": 80, "protocol": "HTTP"}, "hosts": ["./*"]}
        ])),
        "spec.egress[0]",
        "must be the last",
    );
}

#[test]
fn only_one_catch_all_egress_listener() {
    assert_error(
        egress(json!([{"hosts": ["./*"]}, {"hosts": ["istio-system/*"]}])),
        "spec.egress[1]",
        "only one",
    );
}

#[test]
fn egress_bind_without_port_warns() {
    assert_warning(
        egress(json!([{"bind": "127.0.0.1", "hosts": ["./*"]}])),
        "spec.egress[0].bind",
        "without a port",
    );
}

#[test]
fn egress_ports_are_unique() {
    assert_error(
        egress(json!([
            {"port": {"number": 80, "protocol": "HTTP"}, "hosts": ["./*"]},
            {"port": {"number": 80, "protocol": "HTTP"}, "hosts": ["prod/*"]}
        ])),
        "spec.egress[1].port.number",
        "unique",
    );
}

#[test]
fn egress_port_zero_needs_a_unix_socket() {
    assert_error(
        egress(json!([{"port": {"number": 0, "protocol": "HTTP"}, "hosts": ["./*"]}])),
        "spec.egress[0].bind",
        "unix domain socket",
    );
}

#[test]
fn unix_socket_listeners_capture_default_or_none() {
    assert_error(
        egress(
            json!([{"port": {"protocol": "HTTP"}, "bind": "unix:///var/run/a.sock",
                       "captureMode": "IPTABLES", "hosts": ["./*"]}]),
        ),
        "spec.egress[0].captureMode",
        "DEFAULT or NONE",
    );
}

#[test]
fn unix_sockets_are_unique() {
    assert_error(
        egress(json!([
            {"port": {"protocol": "HTTP"}, "bind": "unix:///var/run/a.sock", "hosts": ["./*"]},
            {"port": {"protocol": "TCP"}, "bind": "unix:///var/run/a.sock", "hosts": ["prod/*"]}
        ])),
        "spec.egress[1].bind",
        "used by another",
    );
}

#[test]
fn egress_bind_is_an_ip() {
    assert_error(
        egress(
            json!([{"port": {"number": 80, "protocol": "HTTP"}, "bind": "my-host",
                       "hosts": ["./*"]}]),
        ),
        "spec.egress[0].bind",
        "not a valid IP",
    );
}

#[test]
fn egress_port_number_must_be_valid() {
    assert_error(
        egress(json!([{"port": {"number": 70000, "protocol": "HTTP"}, "hosts": ["./*"]}])),
        "spec.egress[0].port.number",
        "range",
    );
}

#[test]
fn egress_hosts_are_required() {
    assert_error(
        egress(json!([{"port": {"number": 80, "protocol": "HTTP"}}])),
        "spec.egress[0].hosts",
        "at least one host",
    );
}

#[test]
fn egress_hosts_are_namespaced() {
    assert_error(
        hosts(json!(["reviews.default.svc.cluster.local"])),
        "spec.egress[0].hosts[0]",
        "namespace/dnsName",
    );
    assert_error(
        hosts(json!(["./reviews"])),
        "spec.egress[0].hosts[0]",
        "short name",
    );
    assert_error(
        hosts(json!(["bad_ns/*"])),
        "spec.egress[0].hosts[0]",
        "invalid namespace",
    );
    assert_error(
        hosts(json!(["./*foo.com"])),
        "spec.egress[0].hosts[0]",
        "partial wildcard",
    );
    // Sidecars, unlike gateways, take no IP addresses as hosts.
    assert_error(
        hosts(json!(["./1.2.3.4"])),
        "spec.egress[0].hosts[0]",
        "not a valid host",
    );
    assert_clean(hosts(json!([
        "~/*",
        "~prod/*",
        "*/*.example.com",
        "istio-system/*"
    ])));
}

#[test]
fn duplicate_egress_hosts_warn() {
    assert_warning(
        hosts(json!(["prod/a.example.com", "prod/a.example.com"])),
        "spec.egress[0].hosts[1]",
        "already covered",
    );
    assert_warning(
        hosts(json!(["prod/*", "prod/a.example.com"])),
        "spec.egress[0].hosts[1]",
        "already covered",
    );
}

#[test]
fn star_star_makes_other_hosts_redundant() {
    assert_warning(
        hosts(json!(["*/*", "prod/*"])),
        "spec.egress[0].hosts",
        "redundant",
    );
}

// ---- outbound traffic policy ----

const PROXY: &str = "spec.outboundTrafficPolicy.egressProxy";

fn proxy(mode: &str, p: Value) -> Value {
    json!({"outboundTrafficPolicy": {"mode": mode, "egressProxy": p}})
}

#[test]
fn egress_proxy_needs_allow_any() {
    assert_error(
        proxy(
            "REGISTRY_ONLY",
            json!({"host": "proxy.corp.com", "port": {"number": 3128}}),
        ),
        PROXY,
        "ALLOW_ANY",
    );
    assert_clean(json!({"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}));
}

#[test]
fn egress_proxy_host_is_an_fqdn() {
    assert_error(
        proxy(
            "ALLOW_ANY",
            json!({"host": "*.corp.com", "port": {"number": 3128}}),
        ),
        &format!("{PROXY}.host"),
        "fully qualified",
    );
    assert_error(
        proxy("ALLOW_ANY", json!({"port": {"number": 3128}})),
        &format!("{PROXY}.host"),
        "required",
    );
}

#[test]
fn egress_proxy_port_is_required_and_valid() {
    assert_error(
        proxy("ALLOW_ANY", json!({"host": "proxy.corp.com"})),
        &format!("{PROXY}.port"),
        "required",
    );
    assert_error(
        proxy(
            "ALLOW_ANY",
            json!({"host": "proxy.corp.com", "port": {"number": 0}}),
        ),
        &format!("{PROXY}.port.number"),
        "range",
    );
}

#[test]
fn egress_proxy_subset_is_a_dns_label() {
    assert_error(
        proxy(
            "ALLOW_ANY",
            json!({"host": "proxy.corp.com", "subset": "v1.0",
                                  "port": {"number": 3128}}),
        ),
        &format!("{PROXY}.subset"),
        "DNS-1123",
    );
}
