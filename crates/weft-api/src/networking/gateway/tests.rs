use serde_json::{Value, json};

use super::*;

crate::validate::validation_test_helpers!(Gateway);

/// A gateway with one server built from `server`, defaulting port and hosts.
fn server(server: Value) -> Value {
    let mut s = json!({
        "port": {"number": 80, "name": "http", "protocol": "HTTP"},
        "hosts": ["*"]
    });
    if let (Some(base), Value::Object(extra)) = (s.as_object_mut(), server) {
        base.extend(extra);
    }
    json!({"selector": {"istio": "ingressgateway"}, "servers": [s]})
}

/// An HTTPS server with the given TLS settings.
fn https(tls: Value) -> Value {
    server(json!({"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "tls": tls}))
}

const TLS: &str = "spec.servers[0].tls";

// ---- deserialization ----

#[test]
fn realistic_gateways_deserialize_and_validate_clean() {
    assert_clean(json!({
        "selector": {"app": "my-gateway-controller"},
        "servers": [
            {"port": {"number": 80, "name": "http", "protocol": "HTTP"},
             "hosts": ["uk.bookinfo.com", "eu.bookinfo.com"],
             "tls": {"httpsRedirect": true}},
            {"port": {"number": 443, "name": "https-443", "protocol": "HTTPS"},
             "hosts": ["uk.bookinfo.com", "eu.bookinfo.com"],
             "tls": {"mode": "SIMPLE", "serverCertificate": "/etc/certs/servercert.pem",
                     "privateKey": "/etc/certs/privatekey.pem"}},
            {"port": {"number": 9443, "name": "https-9443", "protocol": "HTTPS"},
             "hosts": ["bookinfo-namespace/*.bookinfo.com"],
             "tls": {"mode": "SIMPLE", "credentialName": "bookinfo-secret"}},
            {"port": {"number": 9080, "name": "http-wildcard", "protocol": "HTTP"},
             "hosts": ["ns1/*", "ns2/foo.bar.com"]},
            {"port": {"number": 2379, "name": "mongo", "protocol": "MONGO"},
             "hosts": ["*"]},
            {"port": {"number": 15443, "name": "tls", "protocol": "TLS"},
             "hosts": ["*.local"], "tls": {"mode": "AUTO_PASSTHROUGH"}},
            {"port": {"number": 8443, "name": "mtls", "protocol": "https"},
             "hosts": ["./secure.example.com"],
             "tls": {"mode": "MUTUAL", "credentialName": "secure-cred",
                     "minProtocolVersion": "TLSV1_2", "cipherSuites": ["ECDHE-RSA-AES128-GCM-SHA256"]}}
        ]
    }));
}

#[test]
fn unknown_fields_are_rejected() {
    for bad in [
        json!({"server": []}),
        json!({"servers": [{"port": {"number": 80, "nmae": "http"}, "hosts": ["*"]}]}),
        json!({"servers": [{"port": {"number": 443}, "hosts": ["*"], "tls": {"credentialname": "x"}}]}),
    ] {
        let err = serde_json::from_value::<Gateway>(bad.clone()).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{bad}: {err}");
    }
}

#[test]
fn tls_enums_use_proto_names() {
    let tls: ServerTlsSettings = serde_json::from_value(json!({
        "mode": "OPTIONAL_MUTUAL", "minProtocolVersion": "TLSV1_0", "maxProtocolVersion": "TLS_AUTO"
    }))
    .unwrap();
    assert_eq!(tls.mode, ServerTlsMode::OptionalMutual);
    assert_eq!(tls.min_protocol_version, TlsProtocol::TlsV1_0);
    assert!(serde_json::from_value::<ServerTlsSettings>(json!({"mode": "STRICT"})).is_err());
    assert!(
        serde_json::from_value::<ServerTlsSettings>(json!({"minProtocolVersion": "TLSv1_2"}))
            .is_err()
    );
}

fn maximal() -> Value {
    json!({
        "selector": {"istio": "ingressgateway", "app": "gw"},
        "servers": [
            {
                "port": {"number": 443, "protocol": "HTTPS", "name": "https", "targetPort": 8443},
                "bind": "10.0.0.1",
                "hosts": ["prod/*.example.com", "example.org"],
                "tls": {
                    "httpsRedirect": true,
                    "mode": "MUTUAL",
                    "serverCertificate": "/certs/cert.pem",
                    "privateKey": "/certs/key.pem",
                    "caCertificates": "/certs/ca.pem",
                    "caCrl": "/certs/crl.pem",
                    "credentialName": "gw-cred",
                    "credentialNames": ["rsa-cred", "ecdsa-cred"],
                    "caCertCredentialName": "client-ca",
                    "tlsCertificates": [{"serverCertificate": "/c1.pem", "privateKey": "/k1.pem",
                                         "caCertificates": "/ca1.pem"}],
                    "subjectAltNames": ["spiffe://cluster.local/ns/a/sa/b"],
                    "verifyCertificateSpki": ["bm90IGEgcmVhbCBoYXNo"],
                    "verifyCertificateHash": ["AB:CD"],
                    "minProtocolVersion": "TLSV1_2",
                    "maxProtocolVersion": "TLSV1_3",
                    "cipherSuites": ["ECDHE-ECDSA-AES256-GCM-SHA384"],
                    "insecureSkipVerify": true
                },
                "defaultEndpoint": "127.0.0.1:8080",
                "name": "main"
            },
            {"port": {"number": 80, "protocol": "HTTP", "name": "http"}, "hosts": ["*"]}
        ]
    })
}

#[test]
fn maximal_spec_round_trips_exactly() {
    let input = maximal();
    let gw = parse(input.clone());
    let output = serde_json::to_value(&gw).unwrap();
    assert_eq!(output, input);
    assert_eq!(parse(output), gw);
}

// ---- servers and hosts ----

#[test]
fn a_gateway_needs_a_server() {
    assert_error(
        json!({"selector": {"istio": "ingressgateway"}}),
        "spec.servers",
        "at least one",
    );
}

#[test]
fn a_server_needs_hosts() {
    assert_error(
        server(json!({"hosts": []})),
        "spec.servers[0].hosts",
        "at least one host",
    );
}

#[test]
fn hosts_may_be_bare_or_namespaced() {
    assert_clean(server(json!({"hosts": [
        "*", "*.example.com", "prod/*", "./a.example.com", "*/b.example.com", "10.1.2.3"
    ]})));
}

#[test]
fn short_host_names_are_rejected() {
    assert_error(
        server(json!({"hosts": ["reviews"]})),
        "spec.servers[0].hosts[0]",
        "short name",
    );
    assert_error(
        server(json!({"hosts": ["prod/reviews"]})),
        "spec.servers[0].hosts[0]",
        "short name",
    );
}

#[test]
fn partial_wildcards_are_rejected() {
    assert_error(
        server(json!({"hosts": ["*foo.example.com"]})),
        "spec.servers[0].hosts[0]",
        "partial wildcard",
    );
}

#[test]
fn host_namespace_must_be_valid() {
    assert_error(
        server(json!({"hosts": ["bad_ns/a.example.com"]})),
        "spec.servers[0].hosts[0]",
        "invalid namespace",
    );
    // "~" is only meaningful for gateways generated from the Gateway API.
    assert_error(
        server(json!({"hosts": ["~/a.example.com"]})),
        "spec.servers[0].hosts[0]",
        "invalid namespace",
    );
    assert_error(
        server(json!({"hosts": ["/a.example.com"]})),
        "spec.servers[0].hosts[0]",
        "must not be empty",
    );
}

#[test]
fn invalid_host_names_are_rejected() {
    assert_error(
        server(json!({"hosts": ["a..example.com"]})),
        "spec.servers[0].hosts[0]",
        "not a valid host",
    );
}

#[test]
fn server_names_should_be_unique() {
    let gw = json!({"servers": [
        {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"], "name": "s"},
        {"port": {"number": 81, "name": "http2", "protocol": "HTTP"}, "hosts": ["*"], "name": "s"}
    ]});
    assert_warning(gw, "spec.servers[1].name", "duplicate server name");
}

#[test]
fn selector_labels_should_be_valid() {
    assert_warning(
        json!({"selector": {"istio": "ingress gateway"},
               "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"},
                            "hosts": ["*"]}]}),
        "spec.selector",
        "matches no pod",
    );
}

// ---- ports and binds ----

#[test]
fn a_server_needs_a_port() {
    assert_error(
        json!({"servers": [{"hosts": ["*"]}]}),
        "spec.servers[0].port",
        "required",
    );
}

#[test]
fn protocol_must_be_known() {
    assert_error(
        server(json!({"port": {"number": 80, "name": "http", "protocol": "HTTP3"}})),
        "spec.servers[0].port.protocol",
        "unsupported protocol",
    );
    assert_error(
        server(json!({"port": {"number": 80, "name": "http"}})),
        "spec.servers[0].port.protocol",
        "unsupported protocol",
    );
    for ok in [
        "http", "Http2", "GRPC", "grpc-web", "mongo", "TCP", "redis", "MySQL",
    ] {
        assert_clean(server(
            json!({"port": {"number": 80, "name": "p", "protocol": ok}}),
        ));
    }
}

#[test]
fn port_number_must_be_valid() {
    assert_error(
        server(json!({"port": {"number": 70000, "name": "http", "protocol": "HTTP"}})),
        "spec.servers[0].port.number",
        "range",
    );
    assert_error(
        server(json!({"port": {"name": "http", "protocol": "HTTP"}})),
        "spec.servers[0].port.number",
        "range",
    );
}

#[test]
fn unix_socket_binds_use_port_zero() {
    assert_clean(server(json!({
        "port": {"number": 0, "name": "uds", "protocol": "HTTP"},
        "bind": "unix:///var/run/gw.sock"
    })));
    assert_error(
        server(json!({"bind": "unix:///var/run/gw.sock"})),
        "spec.servers[0].bind",
        "must be 0",
    );
}

#[test]
fn unix_socket_paths_are_absolute() {
    assert_error(
        server(json!({"port": {"name": "uds", "protocol": "HTTP"}, "bind": "unix://run/gw.sock"})),
        "spec.servers[0].bind",
        "absolute path",
    );
    assert_clean(server(
        json!({"port": {"name": "uds", "protocol": "HTTP"}, "bind": "unix://@abstract"}),
    ));
}

#[test]
fn bind_must_be_an_ip() {
    assert_error(
        server(json!({"bind": "localhost"})),
        "spec.servers[0].bind",
        "not a valid IP",
    );
    assert_clean(server(json!({"bind": "::"})));
}

#[test]
fn target_port_is_rejected() {
    assert_error(
        server(
            json!({"port": {"number": 80, "name": "http", "protocol": "HTTP", "targetPort": 8080}}),
        ),
        "spec.servers[0].port.targetPort",
        "no effect",
    );
}

#[test]
fn port_name_is_required() {
    assert_error(
        server(json!({"port": {"number": 80, "protocol": "HTTP"}})),
        "spec.servers[0].port.name",
        "required",
    );
}

#[test]
fn port_names_are_unique_across_servers() {
    let gw = json!({"servers": [
        {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["a.example.com"]},
        {"port": {"number": 8080, "name": "http", "protocol": "HTTP"}, "hosts": ["b.example.com"]}
    ]});
    assert_error(gw, "spec.servers[1].port.name", "duplicate port name");
}

// ---- TLS on the server ----

#[test]
fn https_and_tls_servers_need_tls_settings() {
    assert_error(
        server(json!({"port": {"number": 443, "name": "https", "protocol": "HTTPS"}})),
        TLS,
        "need tls settings",
    );
    assert_error(
        server(json!({"port": {"number": 443, "name": "tls", "protocol": "TLS"}})),
        TLS,
        "need tls settings",
    );
}

#[test]
fn plain_http_servers_only_redirect() {
    assert_clean(server(json!({"tls": {"httpsRedirect": true}})));
    assert_error(
        server(json!({"tls": {"mode": "SIMPLE", "credentialName": "c"}})),
        TLS,
        "plain-text HTTP",
    );
    assert_error(
        server(json!({"tls": {"httpsRedirect": true, "serverCertificate": "/c.pem"}})),
        TLS,
        "plain-text HTTP",
    );
}

#[test]
fn non_tls_servers_reject_tls_settings() {
    assert_error(
        server(
            json!({"port": {"number": 27017, "name": "mongo", "protocol": "MONGO"},
                      "tls": {"mode": "PASSTHROUGH"}}),
        ),
        TLS,
        "only allowed on HTTPS and TLS",
    );
}

#[test]
fn https_redirect_on_non_http_servers_warns() {
    assert_warning(
        server(
            json!({"port": {"number": 443, "name": "tls", "protocol": "TLS"},
                      "tls": {"httpsRedirect": true}}),
        ),
        "spec.servers[0].tls.httpsRedirect",
        "only has an effect on HTTP",
    );
}

#[test]
fn simple_tls_needs_certificate_and_key() {
    assert_error(
        https(json!({"mode": "SIMPLE", "privateKey": "/k.pem"})),
        &format!("{TLS}.serverCertificate"),
        "SIMPLE TLS requires serverCertificate",
    );
    assert_error(
        https(json!({"mode": "SIMPLE", "serverCertificate": "/c.pem"})),
        &format!("{TLS}.privateKey"),
        "SIMPLE TLS requires privateKey",
    );
    assert_clean(https(json!({"mode": "SIMPLE", "credentialName": "cert"})));
    assert_clean(https(
        json!({"mode": "SIMPLE", "credentialNames": ["rsa", "ecdsa"]}),
    ));
}

#[test]
fn mutual_tls_needs_a_client_ca() {
    assert_error(
        https(json!({"mode": "MUTUAL", "serverCertificate": "/c.pem", "privateKey": "/k.pem"})),
        &format!("{TLS}.caCertificates"),
        "MUTUAL TLS requires caCertificates",
    );
    assert_error(
        https(
            json!({"mode": "OPTIONAL_MUTUAL", "serverCertificate": "/c.pem",
                     "privateKey": "/k.pem"}),
        ),
        &format!("{TLS}.caCertificates"),
        "MUTUAL TLS",
    );
    assert_clean(https(json!({"mode": "MUTUAL", "credentialName": "cert"})));
    assert_clean(https(
        json!({"mode": "MUTUAL", "serverCertificate": "/c.pem",
                              "privateKey": "/k.pem", "caCertificates": "/ca.pem"}),
    ));
}

#[test]
fn istio_mutual_rejects_certificates() {
    assert_error(
        https(json!({"mode": "ISTIO_MUTUAL", "serverCertificate": "/c.pem"})),
        &format!("{TLS}.serverCertificate"),
        "ISTIO_MUTUAL",
    );
    assert_error(
        https(json!({"mode": "ISTIO_MUTUAL", "credentialNames": ["a"]})),
        &format!("{TLS}.credentialNames"),
        "ISTIO_MUTUAL",
    );
}

#[test]
fn passthrough_ignores_certificates() {
    assert_warning(
        https(json!({"mode": "PASSTHROUGH", "credentialName": "c"})),
        TLS,
        "PASSTHROUGH mode does not terminate TLS",
    );
}

#[test]
fn only_one_certificate_source() {
    assert_error(
        https(json!({"mode": "SIMPLE", "credentialName": "c",
                     "serverCertificate": "/c.pem", "privateKey": "/k.pem"})),
        TLS,
        "only one certificate source",
    );
}

#[test]
fn tls_certificates_are_checked_pairwise() {
    assert_error(
        https(json!({"mode": "SIMPLE", "tlsCertificates": [
            {"serverCertificate": "/rsa.pem", "privateKey": "/rsa.key"},
            {"serverCertificate": "/ec.pem"}
        ]})),
        &format!("{TLS}.tlsCertificates[1].privateKey"),
        "requires privateKey",
    );
    let three = json!({"serverCertificate": "/c.pem", "privateKey": "/k.pem"});
    assert_warning(
        https(json!({"mode": "SIMPLE", "tlsCertificates": [three, three, three]})),
        &format!("{TLS}.tlsCertificates"),
        "at most 2",
    );
}

#[test]
fn crl_needs_client_certificates_and_files() {
    assert_error(
        https(
            json!({"mode": "SIMPLE", "serverCertificate": "/c.pem", "privateKey": "/k.pem",
                     "caCrl": "/crl.pem"}),
        ),
        &format!("{TLS}.caCrl"),
        "SIMPLE",
    );
    assert_error(
        server(
            json!({"port": {"number": 443, "name": "tls", "protocol": "TLS"},
                      "tls": {"mode": "PASSTHROUGH", "credentialName": "c", "caCrl": "/crl.pem"}}),
        ),
        &format!("{TLS}.caCrl"),
        "credentialName",
    );
}

#[test]
fn old_tls_versions_need_cipher_suites() {
    assert_warning(
        https(json!({"mode": "SIMPLE", "credentialName": "c", "minProtocolVersion": "TLSV1_1"})),
        &format!("{TLS}.minProtocolVersion"),
        "cipherSuites",
    );
}

#[test]
fn cipher_suites_are_known_and_unique() {
    let tls = |suites: Value| {
        https(json!({"mode": "SIMPLE", "credentialName": "c",
                                           "cipherSuites": suites}))
    };
    assert_warning(
        tls(json!(["ECDHE-RSA-AES128-GCM-SHA256", "TLS_FAKE_SUITE"])),
        &format!("{TLS}.cipherSuites[1]"),
        "unknown cipher suite",
    );
    assert_warning(
        tls(json!(["AES128-SHA", "AES128-SHA"])),
        &format!("{TLS}.cipherSuites[1]"),
        "duplicate",
    );
    // Operator expressions are passed through as Istio does.
    assert_clean(tls(json!([
        "ALL",
        "-DES-CBC3-SHA",
        "[AES128-SHA|AES256-SHA]"
    ])));
}
