use serde_json::{Value, json};

use super::*;
use crate::diag::Severity;
use crate::meta::{Kind, Resource};
use crate::validate::{FieldIssue, check};

// ---------------------------------------------------------------------------------------------
// Helpers

fn parse(v: Value) -> VirtualService {
    serde_json::from_value(v).unwrap()
}

fn issues(v: Value) -> Vec<FieldIssue> {
    check(&parse(v))
}

const HOST: &str = "reviews.prod.svc.cluster.local";

fn dest() -> Value {
    json!({"destination": {"host": HOST}})
}

/// A spec with one HTTP route: `fields` merged into a route that forwards to [`HOST`].
fn http(fields: Value) -> Value {
    let mut route = json!({"route": [dest()]});
    merge(&mut route, fields);
    json!({"hosts": [HOST], "http": [route]})
}

/// A spec with one HTTP route whose only match is `m`.
fn http_match(m: Value) -> Value {
    http(json!({"match": [m]}))
}

/// Overwrites (or, with `null`, removes) keys of `base` with those of `fields`.
fn merge(base: &mut Value, fields: Value) {
    let (Some(base), Value::Object(fields)) = (base.as_object_mut(), fields) else {
        panic!("merge needs objects");
    };
    for (k, v) in fields {
        if v.is_null() {
            base.remove(&k);
        } else {
            base.insert(k, v);
        }
    }
}

#[track_caller]
fn assert_issue(issues: &[FieldIssue], severity: Severity, path: &str, mentions: &str) {
    assert!(
        issues
            .iter()
            .any(|i| i.severity == severity && i.path == path && i.message.contains(mentions)),
        "expected {severity:?} at {path} mentioning {mentions:?}, got {issues:#?}"
    );
}

#[track_caller]
fn assert_error(v: Value, path: &str, mentions: &str) {
    assert_issue(&issues(v), Severity::Error, path, mentions);
}

#[track_caller]
fn assert_warning(v: Value, path: &str, mentions: &str) {
    assert_issue(&issues(v), Severity::Warning, path, mentions);
}

#[track_caller]
fn assert_clean(v: Value) {
    let found = issues(v);
    assert!(found.is_empty(), "expected no issues, got {found:#?}");
}

#[track_caller]
fn assert_no_errors(v: Value) {
    let found = issues(v);
    assert!(
        found.iter().all(|i| i.severity != Severity::Error),
        "expected no errors, got {found:#?}"
    );
}

/// A realistic spec using every field that can appear together in one valid resource.
fn realistic() -> Value {
    json!({
        "hosts": [HOST, "*.bookinfo.com"],
        "gateways": ["istio-system/ingress", "mesh"],
        "exportTo": [".", "prod"],
        "http": [
            {
                "name": "reviews-v2",
                "match": [{
                    "name": "api",
                    "uri": {"prefix": "/api"},
                    "scheme": {"exact": "https"},
                    "method": {"exact": "GET"},
                    "authority": {"regex": "reviews(\\..*)?"},
                    "headers": {"x-user": {"exact": "jason"}, "x-trace": {}, ":path": {"prefix": "/"}},
                    "port": 8080,
                    "sourceLabels": {"app": "productpage"},
                    "gateways": ["mesh"],
                    "queryParams": {"debug": {"exact": "1"}},
                    "ignoreUriCase": true,
                    "withoutHeaders": {"x-canary": {}},
                    "sourceNamespace": "frontend",
                    "statPrefix": "reviews_api"
                }],
                "route": [
                    {
                        "destination": {"host": HOST, "subset": "v2", "port": {"number": 9080}},
                        "weight": 75,
                        "headers": {
                            "request": {"set": {"x-version": "v2"}},
                            "response": {"remove": ["x-internal"]}
                        }
                    },
                    {"destination": {"host": HOST, "subset": "v1"}, "weight": 25}
                ],
                "rewrite": {
                    "authority": "reviews.internal",
                    "uriRegexRewrite": {"match": "^/api/(.*)$", "rewrite": "/\\1"}
                },
                "timeout": "10s",
                "retries": {
                    "attempts": 3,
                    "perTryTimeout": "2s",
                    "retryOn": "5xx,connect-failure,503",
                    "retryRemoteLocalities": true,
                    "retryIgnorePreviousHosts": false,
                    "backoff": "25ms"
                },
                "fault": {
                    "delay": {"fixedDelay": "5s", "percentage": {"value": 0.1}},
                    "abort": {"httpStatus": 503, "percentage": {"value": 1.5}}
                },
                "mirrors": [{"destination": {"host": "reviews-shadow"}, "percentage": {"value": 10.0}}],
                "corsPolicy": {
                    "allowOrigins": [{"exact": "https://example.com"}, {"regex": "https://.*\\.example\\.com"}],
                    "allowMethods": ["GET", "POST"],
                    "allowHeaders": ["authorization", "content-type"],
                    "exposeHeaders": ["x-request-id"],
                    "maxAge": "24h",
                    "allowCredentials": true,
                    "unmatchedPreflights": "IGNORE"
                },
                "headers": {
                    "request": {"add": {"x-forwarded-by": "%HOSTNAME%"}, "remove": ["x-debug"]},
                    "response": {"set": {"cache-control": "no-store", "x-percent": "100%%"}}
                }
            },
            {
                "name": "legacy",
                "match": [{"uri": {"prefix": "/legacy"}}],
                "redirect": {
                    "prefixRewrite": "/new",
                    "authority": "new.example.com",
                    "derivePort": "FROM_REQUEST_PORT",
                    "scheme": "https",
                    "redirectCode": 308
                }
            },
            {
                "name": "maintenance",
                "match": [{"uri": {"exact": "/down"}}],
                "directResponse": {"status": 503, "body": {"string": "down for maintenance"}}
            },
            {
                "name": "shadowed",
                "route": [dest()],
                "mirror": {"host": "reviews-shadow", "subset": "v3"},
                "mirrorPercentage": {"value": 5.0}
            },
            {
                "name": "ratings",
                "match": [{"uri": {"prefix": "/ratings"}}],
                "delegate": {"name": "ratings-routes", "namespace": "ratings"}
            }
        ],
        "tls": [{
            "match": [{
                "sniHosts": ["login.bookinfo.com"],
                "destinationSubnets": ["10.0.0.0/8"],
                "port": 443,
                "sourceLabels": {"app": "web"},
                "gateways": ["mesh"],
                "sourceNamespace": "web"
            }],
            "route": [{"destination": {"host": "login.prod.svc.cluster.local", "port": {"number": 443}}}]
        }],
        "tcp": [{
            "match": [{
                "destinationSubnets": ["10.1.0.0/16"],
                "port": 3306,
                "sourceSubnet": "10.2.0.0/16",
                "sourceLabels": {"app": "api"},
                "gateways": ["mesh"],
                "sourceNamespace": "api"
            }],
            "route": [{"destination": {"host": "mysql.db.svc.cluster.local", "port": {"number": 3306}}, "weight": 100}]
        }]
    })
}

/// [`realistic`] plus routes covering the other oneof members and the deprecated fields.
fn maximal() -> Value {
    let mut spec = realistic();
    let extra = [
        json!({
            "route": [dest()],
            "mirror": {"host": "reviews-shadow"},
            "mirrorPercent": 50,
            "rewrite": {"uri": "/v2"},
            "fault": {
                "delay": {"exponentialDelay": "1s", "percent": 10},
                "abort": {"grpcStatus": "UNAVAILABLE"}
            },
            "corsPolicy": {"allowOrigin": ["https://old.example.com"], "allowCredentials": false,
                           "unmatchedPreflights": "FORWARD"}
        }),
        json!({"route": [dest()], "fault": {"abort": {"http2Error": "REFUSED_STREAM"}}}),
        json!({"redirect": {"uri": "/elsewhere", "port": 8443, "redirectCode": 301}}),
        json!({"directResponse": {"status": 200, "body": {"bytes": "aGVsbG8="}}}),
    ];
    spec["http"].as_array_mut().unwrap().extend(extra);
    spec
}

// ---------------------------------------------------------------------------------------------
// Deserialization

#[test]
fn realistic_spec_deserializes_every_field() {
    let vs = parse(realistic());
    assert_eq!(vs.hosts.len(), 2);
    assert_eq!(vs.export_to, [".", "prod"]);
    let r = &vs.http[0];
    assert_eq!(r.name.as_deref(), Some("reviews-v2"));
    let m = &r.matches[0];
    assert_eq!(m.uri, Some(StringMatch::Prefix("/api".into())));
    assert_eq!(m.headers["x-trace"], StringMatch::Present);
    assert_eq!(m.port, Some(8080));
    assert!(m.ignore_uri_case);
    assert_eq!(m.stat_prefix.as_deref(), Some("reviews_api"));
    assert_eq!(r.route[0].weight, Some(75));
    assert_eq!(
        r.route[0].destination.port,
        Some(PortSelector { number: 9080 })
    );
    assert_eq!(r.timeout, Some("10s".parse().unwrap()));
    let retries = r.retries.as_ref().unwrap();
    assert_eq!(retries.attempts, Some(3));
    assert_eq!(retries.retry_ignore_previous_hosts, Some(false));
    let fault = r.fault.as_ref().unwrap();
    assert_eq!(
        fault.delay.as_ref().unwrap().http_delay_type,
        Some(HttpDelayType::FixedDelay("5s".parse().unwrap()))
    );
    assert_eq!(
        fault.abort.as_ref().unwrap().error_type,
        Some(AbortErrorType::HttpStatus(503))
    );
    let cors = r.cors_policy.as_ref().unwrap();
    assert_eq!(cors.unmatched_preflights, Some(UnmatchedPreflights::Ignore));
    assert_eq!(cors.allow_credentials, Some(true));
    let redirect = vs.http[1].redirect.as_ref().unwrap();
    assert_eq!(
        redirect.redirect_port,
        Some(RedirectPort::DerivePort(
            RedirectPortSelection::FromRequestPort
        ))
    );
    assert_eq!(redirect.redirect_code, Some(308));
    assert_eq!(
        vs.http[2].direct_response.as_ref().unwrap().body,
        Some(HttpBody::String("down for maintenance".into()))
    );
    assert_eq!(
        vs.http[4].delegate.as_ref().unwrap().name.as_deref(),
        Some("ratings-routes")
    );
    assert_eq!(vs.tls[0].matches[0].sni_hosts, ["login.bookinfo.com"]);
    assert_eq!(
        vs.tcp[0].matches[0].source_subnet.as_deref(),
        Some("10.2.0.0/16")
    );
}

#[test]
fn realistic_spec_is_valid() {
    assert_clean(realistic());
}

#[test]
fn maximal_spec_has_only_the_expected_errors() {
    // exponentialDelay and http2Error parse but are rejected, as in Istio.
    let found = issues(maximal());
    let errors: Vec<_> = found
        .iter()
        .filter(|i| i.severity == Severity::Error)
        .map(|i| i.path.as_str())
        .collect();
    assert_eq!(
        errors,
        [
            "spec.http[5].fault.delay.exponentialDelay",
            "spec.http[6].fault.abort.http2Error"
        ]
    );
}

#[test]
fn round_trip_over_maximal_spec() {
    let vs = parse(maximal());
    let out = serde_json::to_value(&vs).unwrap();
    let again: VirtualService = serde_json::from_value(out.clone()).unwrap();
    assert_eq!(again, vs);
    // Unset fields are skipped on output.
    assert!(out["http"][1].get("route").is_none());
    assert!(out["http"][0]["match"][0].get("name").is_some());
    assert_eq!(
        out["http"][8]["directResponse"]["body"]["bytes"],
        "aGVsbG8="
    );
}

#[test]
fn round_trip_through_yaml_shaped_resource() {
    let doc = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "prod"},
        "spec": maximal(),
    });
    let res = Resource::from_value(Kind::VirtualService, doc).unwrap();
    let again = Resource::from_value(Kind::VirtualService, res.to_value().unwrap()).unwrap();
    assert_eq!(again, res);
}

#[test]
fn unknown_field_is_rejected_with_its_path() {
    let doc = json!({
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews"},
        "spec": http_match(json!({"urii": {"prefix": "/"}})),
    });
    let err = Resource::from_value(Kind::VirtualService, doc).unwrap_err();
    assert_eq!(err.path, "spec.http[0].match[0].urii");
    assert!(err.message.contains("urii"), "{err}");
}

#[test]
fn reserved_and_misspelled_fields_are_rejected() {
    for bad in [
        http(json!({"websocketUpgrade": true})),
        http(json!({"retries": {"attempt": 3}})),
        http(json!({"route": [{"destination": {"host": HOST, "subnet": "v1"}}]})),
        json!({"hosts": [HOST], "tcp": [{"route": [dest()], "match": [{"sourceSubnets": []}]}]}),
        http(json!({"redirect": {"uri": "/", "redirect_code": 301}})),
    ] {
        assert!(
            serde_json::from_value::<VirtualService>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn two_oneof_members_are_rejected() {
    let cases = [
        (
            http(
                json!({"route": null, "redirect": {"uri": "/", "port": 80, "derivePort": "FROM_REQUEST_PORT"}}),
            ),
            "port or derivePort",
        ),
        (
            http(json!({"fault": {"abort": {"httpStatus": 503, "grpcStatus": "UNAVAILABLE"}}})),
            "httpStatus, grpcStatus or http2Error",
        ),
        (
            http(json!({"fault": {"delay": {"fixedDelay": "1s", "exponentialDelay": "1s"}}})),
            "fixedDelay or exponentialDelay",
        ),
        (
            http(
                json!({"route": null, "directResponse": {"status": 200, "body": {"string": "a", "bytes": "YQ=="}}}),
            ),
            "string or bytes",
        ),
        (
            http_match(json!({"uri": {"exact": "/a", "prefix": "/b"}})),
            "exact, prefix or regex",
        ),
    ];
    for (spec, message) in cases {
        let err = serde_json::from_value::<VirtualService>(spec).unwrap_err();
        assert!(err.to_string().contains(message), "{err}");
    }
}

#[test]
fn required_fields_are_enforced_by_the_parser() {
    for bad in [
        http(json!({"route": [{"weight": 100}]})),
        http(json!({"route": [{"destination": {"subset": "v1"}}]})),
        http(json!({"route": null, "directResponse": {"body": {"string": "x"}}})),
        http(json!({"mirrors": [{"percentage": {"value": 5.0}}]})),
    ] {
        assert!(
            serde_json::from_value::<VirtualService>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn proto3_zero_values_read_as_unset() {
    let vs = parse(http(json!({
        "name": "",
        "match": [{"port": 0, "sourceNamespace": ""}],
        "route": [{"destination": {"host": HOST, "subset": ""}, "weight": 0}]
    })));
    let r = &vs.http[0];
    assert_eq!(r.name, None);
    assert_eq!(r.matches[0].port, None);
    assert_eq!(r.matches[0].source_namespace, None);
    assert_eq!(r.route[0].destination.subset, None);
    assert_eq!(r.route[0].weight, None);
    // Wrapper types keep their presence.
    let vs = parse(http(json!({"mirror": {"host": HOST}, "mirrorPercent": 0})));
    assert_eq!(vs.http[0].mirror_percent, Some(0));
}

#[test]
fn enums_use_the_proto_names() {
    let vs = parse(http(
        json!({"corsPolicy": {"allowOrigins": [{"exact": "a"}], "unmatchedPreflights": "FORWARD"}}),
    ));
    assert_eq!(
        vs.http[0]
            .cors_policy
            .as_ref()
            .unwrap()
            .unmatched_preflights,
        Some(UnmatchedPreflights::Forward)
    );
    let lower =
        http(json!({"route": null, "redirect": {"uri": "/", "derivePort": "from_request_port"}}));
    assert!(serde_json::from_value::<VirtualService>(lower).is_err());
}

#[test]
fn body_bytes_are_base64() {
    for (text, bytes) in [
        ("aGVsbG8=", &b"hello"[..]),
        ("aGVsbG8", b"hello"),
        ("", b""),
        ("_-8=", &[0xff, 0xef][..]),
    ] {
        assert_eq!(base64_decode(text).unwrap(), bytes, "{text}");
    }
    for bytes in [&b""[..], b"a", b"ab", b"abc", b"abcd", &[0, 255, 128, 7]] {
        assert_eq!(base64_decode(&base64_encode(bytes)).unwrap(), bytes);
    }
    assert_eq!(base64_encode(b"hello"), "aGVsbG8=");
    assert!(base64_decode("a").is_err());
    assert!(base64_decode("a$==").is_err());
    let bad =
        http(json!({"route": null, "directResponse": {"status": 200, "body": {"bytes": "!!"}}}));
    let err = serde_json::from_value::<VirtualService>(bad).unwrap_err();
    assert!(err.to_string().contains("base64"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// VirtualService-level rules

#[test]
fn minimal_spec_is_valid() {
    assert_clean(http(json!({})));
}

#[test]
fn needs_http_tls_or_tcp() {
    assert_error(json!({"hosts": [HOST]}), "spec", "http, tls or tcp");
}

#[test]
fn delegate_virtual_service_must_not_set_gateways() {
    let spec = json!({"gateways": ["istio-system/ingress"], "http": [{"route": [dest()]}]});
    assert_error(spec, "spec.gateways", "delegate");
    assert_clean(json!({"http": [{"route": [dest()]}]}));
}

#[test]
fn delegate_virtual_service_must_not_have_tls_or_tcp() {
    let spec = json!({"tcp": [{"route": [dest()]}], "tls": [{"match": [{"sniHosts": ["a.com"]}], "route": [dest()]}]});
    assert_error(spec.clone(), "spec.tcp", "tcp routes");
    assert_error(spec, "spec.tls", "tls routes");
}

#[test]
fn host_syntax_is_checked() {
    let mut spec = http(json!({}));
    spec["hosts"] = json!([HOST, "bad_host.com"]);
    assert_error(spec, "spec.hosts[1]", "bad_host.com");
}

#[test]
fn host_with_numeric_top_level_domain_is_rejected_but_ips_are_allowed() {
    let mut spec = http(json!({}));
    spec["hosts"] = json!(["foo.123"]);
    assert_error(spec.clone(), "spec.hosts[0]", "all digits");
    spec["hosts"] = json!(["10.0.0.1", "::1", "reviews", "*.example.com"]);
    assert_clean(spec);
}

#[test]
fn star_host_needs_gateway_binding() {
    let mut spec = http(json!({}));
    spec["hosts"] = json!(["*"]);
    assert_error(spec.clone(), "spec.hosts[0]", "mesh");
    spec["gateways"] = json!(["istio-system/ingress", "mesh"]);
    assert_error(spec.clone(), "spec.hosts[0]", "mesh");
    spec["gateways"] = json!(["istio-system/ingress"]);
    assert_clean(spec);
}

#[test]
fn duplicate_or_overlapping_hosts_are_rejected() {
    let mut spec = http(json!({}));
    spec["hosts"] = json!(["a.example.com", "*.example.com"]);
    assert_error(spec.clone(), "spec.hosts[1]", "overlaps");
    spec["hosts"] = json!(["reviews", "reviews"]);
    assert_error(spec.clone(), "spec.hosts[1]", "hosts[0]");
    spec["hosts"] = json!(["a.example.com", "b.example.com"]);
    assert_clean(spec);
}

#[test]
fn gateway_names_are_checked() {
    let mut spec = http(json!({}));
    spec["gateways"] = json!(["mesh", "istio-system/ingress", "Bad_Name"]);
    assert_error(spec.clone(), "spec.gateways[2]", "invalid gateway");
    spec["gateways"] = json!(["istio-system/ingress.gw"]);
    assert_error(spec.clone(), "spec.gateways[0]", "DNS-1123 label");
    spec["gateways"] = json!(["/ingress"]);
    assert_error(spec, "spec.gateways[0]", "namespace");
}

#[test]
fn legacy_dotted_gateway_name_is_a_warning() {
    let mut spec = http(json!({}));
    spec["gateways"] = json!(["ingress.istio-system"]);
    assert_warning(spec.clone(), "spec.gateways[0]", "istio-system/ingress");
    assert_no_errors(spec);
}

#[test]
fn export_to_is_checked() {
    let mut spec = http(json!({}));
    spec["exportTo"] = json!(["Bad_NS"]);
    assert_error(spec.clone(), "spec.exportTo[0]", "exportTo entry");
    spec["exportTo"] = json!(["prod", "prod"]);
    assert_error(spec.clone(), "spec.exportTo[1]", "duplicate exportTo");
    spec["exportTo"] = json!(["*", "prod"]);
    assert_error(spec.clone(), "spec.exportTo", "\"*\"");
    spec["exportTo"] = json!(["~"]);
    assert_error(spec.clone(), "spec.exportTo[0]", "ServiceEntry");
    spec["exportTo"] = json!(["."]);
    assert_clean(spec);
}

// ---------------------------------------------------------------------------------------------
// HTTP route actions

#[test]
fn http_route_needs_an_action() {
    assert_error(
        http(json!({"route": null})),
        "spec.http[0]",
        "route, redirect",
    );
}

#[test]
fn redirect_conflicts_with_route_fault_rewrite_and_direct_response() {
    let spec = http(json!({
        "redirect": {"uri": "/new"},
        "fault": {"abort": {"httpStatus": 500}},
        "rewrite": {"uri": "/x"},
        "directResponse": {"status": 200}
    }));
    let found = issues(spec);
    assert_issue(
        &found,
        Severity::Error,
        "spec.http[0].route",
        "route and redirect",
    );
    assert_issue(&found, Severity::Error, "spec.http[0].fault", "redirect");
    assert_issue(&found, Severity::Error, "spec.http[0].rewrite", "redirect");
    assert_issue(
        &found,
        Severity::Error,
        "spec.http[0].directResponse",
        "redirect",
    );
}

#[test]
fn direct_response_conflicts_with_route_fault_and_rewrite() {
    let spec = http(json!({
        "directResponse": {"status": 200},
        "fault": {"abort": {"httpStatus": 500}},
        "rewrite": {"uri": "/x"}
    }));
    let found = issues(spec);
    assert_issue(
        &found,
        Severity::Error,
        "spec.http[0].route",
        "directResponse",
    );
    assert_issue(
        &found,
        Severity::Error,
        "spec.http[0].fault",
        "directResponse",
    );
    assert_issue(
        &found,
        Severity::Error,
        "spec.http[0].rewrite",
        "directResponse",
    );
}

#[test]
fn delegating_route_must_not_set_route_or_redirect() {
    let spec = http(json!({"delegate": {"name": "child"}, "redirect": {"uri": "/"}}));
    let found = issues(spec);
    assert_issue(&found, Severity::Error, "spec.http[0].route", "delegate");
    assert_issue(&found, Severity::Error, "spec.http[0].redirect", "delegate");
    assert_clean(http(json!({"route": null, "delegate": {"name": "child"}})));
}

#[test]
fn delegating_route_with_direct_response_is_a_warning() {
    let spec = http(
        json!({"route": null, "delegate": {"name": "child"}, "directResponse": {"status": 200}}),
    );
    assert_warning(spec.clone(), "spec.http[0].directResponse", "delegate");
    assert_no_errors(spec);
}

#[test]
fn delegate_virtual_service_routes_cannot_delegate() {
    let spec = json!({"http": [{"route": [dest()], "delegate": {"name": "grandchild"}}]});
    assert_error(spec, "spec.http[0].delegate", "delegate");
}

#[test]
fn delegate_name_is_required_and_valid() {
    assert_error(
        http(json!({"route": null, "delegate": {"namespace": "ns"}})),
        "spec.http[0].delegate.name",
        "delegate.name",
    );
    assert_error(
        http(json!({"route": null, "delegate": {"name": "Child_VS"}})),
        "spec.http[0].delegate.name",
        "Child_VS",
    );
    assert_error(
        http(json!({"route": null, "delegate": {"name": "child", "namespace": "Bad NS"}})),
        "spec.http[0].delegate.namespace",
        "namespace",
    );
}

#[test]
fn mirror_and_mirrors_are_exclusive() {
    let spec = http(json!({"mirror": {"host": "a"}, "mirrors": [{"destination": {"host": "b"}}]}));
    assert_error(spec, "spec.http[0].mirrors", "mirror and mirrors");
}

// ---------------------------------------------------------------------------------------------
// Destinations and weights

#[test]
fn weights_of_several_destinations_must_not_total_zero() {
    let spec = http(json!({"route": [dest(), dest()]}));
    assert_error(spec, "spec.http[0].route", "add up to 0");
}

#[test]
fn weights_not_totalling_100_are_a_warning() {
    let two = |a: i32, b: i32| {
        http(json!({"route": [
            {"destination": {"host": HOST, "subset": "v1"}, "weight": a},
            {"destination": {"host": HOST, "subset": "v2"}, "weight": b}
        ]}))
    };
    assert_warning(two(49, 50), "spec.http[0].route", "99");
    assert_no_errors(two(550, 500));
    assert_clean(two(100, 0));
    assert_clean(two(90, 10));
}

#[test]
fn weights_must_not_be_negative() {
    let spec = http(json!({"route": [
        {"destination": {"host": HOST}, "weight": 101},
        {"destination": {"host": HOST}, "weight": -1}
    ]}));
    assert_error(spec, "spec.http[0].route[1].weight", "negative");
}

#[test]
fn single_destination_may_omit_weight() {
    assert_clean(http(json!({})));
    assert_clean(http(
        json!({"route": [{"destination": {"host": HOST}, "weight": 100}]}),
    ));
}

#[test]
fn destination_host_is_required_and_valid() {
    let with_host = |h: &str| http(json!({"route": [{"destination": {"host": h}}]}));
    let path = "spec.http[0].route[0].destination.host";
    assert_error(with_host(""), path, "host is required");
    assert_error(with_host("*"), path, "\"*\"");
    assert_error(with_host("default/reviews"), path, "default/reviews");
    // Istio rejects IP addresses as destination hosts (all-numeric top-level label).
    assert_error(with_host("10.0.0.1"), path, "all digits");
    assert_clean(with_host("*.example.com"));
}

#[test]
fn destination_subset_must_be_a_dns_label() {
    let spec = http(json!({"route": [{"destination": {"host": HOST, "subset": "v1.beta"}}]}));
    assert_error(spec, "spec.http[0].route[0].destination.subset", "subset");
}

#[test]
fn destination_port_must_be_in_range() {
    let spec = http(json!({"route": [{"destination": {"host": HOST, "port": {"number": 70000}}}]}));
    assert_error(
        spec,
        "spec.http[0].route[0].destination.port.number",
        "port",
    );
}

// ---------------------------------------------------------------------------------------------
// Matches

#[test]
fn uri_regex_must_compile() {
    let path = "spec.http[0].match[0].uri.regex";
    assert_error(
        http_match(json!({"uri": {"regex": "(unclosed"}})),
        path,
        "regex",
    );
    assert_error(http_match(json!({"uri": {"regex": ""}})), path, "regex");
    let long = "a".repeat(1025);
    assert_error(http_match(json!({"uri": {"regex": long}})), path, "1024");
}

#[test]
fn scheme_method_authority_need_non_empty_prefix() {
    for field in ["scheme", "method", "authority"] {
        let spec = http_match(json!({field: {"prefix": ""}}));
        let path = format!("spec.http[0].match[0].{field}.prefix");
        assert_error(spec, &path, field);
    }
    // An empty URI prefix matches every path, as in Envoy.
    assert_clean(http_match(json!({"uri": {"prefix": ""}})));
}

#[test]
fn scheme_method_authority_regexes_are_checked() {
    for field in ["scheme", "method", "authority"] {
        let spec = http_match(json!({field: {"regex": "*bad"}}));
        let path = format!("spec.http[0].match[0].{field}.regex");
        assert_error(spec, &path, "regex");
    }
}

#[test]
fn empty_uri_match_is_a_warning() {
    assert_warning(
        http_match(json!({"uri": {}})),
        "spec.http[0].match[0].uri",
        "uri",
    );
}

#[test]
fn header_match_names_are_checked() {
    assert_error(
        http_match(json!({"headers": {"bad header": {"exact": "x"}}})),
        "spec.http[0].match[0].headers.bad header",
        "header name",
    );
    assert_error(
        http_match(json!({"headers": {"": {"exact": "x"}}})),
        "spec.http[0].match[0].headers.",
        "header name",
    );
    // Presence matches, pseudo-headers and any RFC 7230 token are fine.
    assert_clean(http_match(json!({"headers": {
        "x-user": {}, ":authority": {"exact": "a"}, "x.custom": {"prefix": "v"}
    }})));
}

#[test]
fn header_match_values_are_checked() {
    let spec = http_match(json!({"headers": {"x-user": {"regex": "("}}}));
    assert_error(spec, "spec.http[0].match[0].headers.x-user.regex", "regex");
    let spec = http_match(json!({"headers": {"x-user": {"prefix": ""}}}));
    assert_error(
        spec,
        "spec.http[0].match[0].headers.x-user.prefix",
        "prefix",
    );
}

#[test]
fn jwt_claim_routing_needs_gateway_binding() {
    let spec = http_match(json!({"headers": {"@request.auth.claims.group": {"exact": "admin"}}}));
    assert_error(
        spec.clone(),
        "spec.http[0].match[0].headers.@request.auth.claims.group",
        "JWT claim",
    );
    let mut on_gateway = spec;
    on_gateway["gateways"] = json!(["istio-system/ingress"]);
    assert_clean(on_gateway);
}

#[test]
fn without_headers_are_checked_and_star_means_present() {
    assert_clean(http_match(
        json!({"withoutHeaders": {"x-canary": {"regex": "*"}, "x-b": {}}}),
    ));
    assert_error(
        http_match(json!({"withoutHeaders": {"x-canary": {"regex": "(*"}}})),
        "spec.http[0].match[0].withoutHeaders.x-canary.regex",
        "regex",
    );
    assert_error(
        http_match(json!({"withoutHeaders": {"x canary": {}}})),
        "spec.http[0].match[0].withoutHeaders.x canary",
        "header name",
    );
}

#[test]
fn query_param_matches_are_checked() {
    assert_error(
        http_match(json!({"queryParams": {"id": {"regex": "["}}})),
        "spec.http[0].match[0].queryParams.id.regex",
        "regex",
    );
    assert_clean(http_match(json!({"queryParams": {"debug": {}}})));
}

#[test]
fn match_port_must_be_in_range() {
    assert_error(
        http_match(json!({"port": 65536})),
        "spec.http[0].match[0].port",
        "port",
    );
}

#[test]
fn match_source_labels_are_checked() {
    assert_error(
        http_match(json!({"sourceLabels": {"app": "bad value"}})),
        "spec.http[0].match[0].sourceLabels",
        "label",
    );
}

#[test]
fn match_gateways_are_checked() {
    assert_error(
        http_match(json!({"gateways": ["ns/gw/extra"]})),
        "spec.http[0].match[0].gateways[0]",
        "gateway",
    );
}

#[test]
fn match_source_namespace_must_be_a_dns_label() {
    assert_error(
        http_match(json!({"sourceNamespace": "Front_End"})),
        "spec.http[0].match[0].sourceNamespace",
        "sourceNamespace",
    );
}

// ---------------------------------------------------------------------------------------------
// Timeout, retries, fault, mirror

#[test]
fn timeout_is_checked_and_zero_disables_it() {
    assert_error(
        http(json!({"timeout": "1500us"})),
        "spec.http[0].timeout",
        "duration",
    );
    assert_clean(http(json!({"timeout": "0s"})));
}

#[test]
fn retry_attempts_must_not_be_negative() {
    assert_error(
        http(json!({"retries": {"attempts": -1}})),
        "spec.http[0].retries.attempts",
        "attempts",
    );
}

#[test]
fn retry_settings_need_attempts() {
    assert_error(
        http(json!({"retries": {"retryOn": "5xx"}})),
        "spec.http[0].retries.attempts",
        "attempts",
    );
    assert_clean(http(json!({"retries": {"attempts": 0}})));
}

#[test]
fn retry_on_conditions_are_checked() {
    let spec = |on: &str| http(json!({"retries": {"attempts": 2, "retryOn": on}}));
    let path = "spec.http[0].retries.retryOn";
    assert_error(spec("5xx,gateway-eror"), path, "gateway-eror");
    assert_error(spec("5xx, reset"), path, "spaces");
    assert_error(spec("599"), path, "retryOn");
    assert_clean(spec(
        "5xx,gateway-error,reset,reset-before-request,connect-failure,envoy-ratelimited,\
         retriable-4xx,refused-stream,retriable-status-codes,retriable-headers,\
         http3-post-connect-failure,cancelled,deadline-exceeded,internal,resource-exhausted,\
         unavailable,503,429",
    ));
}

#[test]
fn retry_durations_are_checked() {
    let spec = http(json!({"retries": {"attempts": 2, "perTryTimeout": "0s", "backoff": "1.5ms"}}));
    let found = issues(spec);
    assert_issue(
        &found,
        Severity::Error,
        "spec.http[0].retries.perTryTimeout",
        "duration",
    );
    assert_issue(
        &found,
        Severity::Error,
        "spec.http[0].retries.backoff",
        "duration",
    );
}

#[test]
fn fault_needs_abort_or_delay() {
    assert_error(
        http(json!({"fault": {}})),
        "spec.http[0].fault",
        "abort, a delay",
    );
}

#[test]
fn fault_abort_http_status_must_be_200_to_599() {
    let path = "spec.http[0].fault.abort.httpStatus";
    assert_error(
        http(json!({"fault": {"abort": {"httpStatus": 600}}})),
        path,
        "HTTP status",
    );
    assert_error(
        http(json!({"fault": {"abort": {"httpStatus": 199}}})),
        path,
        "HTTP status",
    );
    assert_clean(http(json!({"fault": {"abort": {"httpStatus": 599}}})));
}

#[test]
fn fault_abort_grpc_status_must_be_known() {
    assert_error(
        http(json!({"fault": {"abort": {"grpcStatus": "UNAVAILABEL"}}})),
        "spec.http[0].fault.abort.grpcStatus",
        "grpcStatus",
    );
}

#[test]
fn fault_abort_http2_error_is_not_supported() {
    assert_error(
        http(json!({"fault": {"abort": {"http2Error": "REFUSED_STREAM"}}})),
        "spec.http[0].fault.abort.http2Error",
        "http2Error",
    );
}

#[test]
fn fault_abort_without_error_type_is_a_warning() {
    assert_warning(
        http(json!({"fault": {"abort": {"percentage": {"value": 5.0}}}})),
        "spec.http[0].fault.abort",
        "httpStatus",
    );
}

#[test]
fn fault_percentages_are_checked() {
    let found = issues(http(json!({"fault": {
        "abort": {"httpStatus": 500, "percentage": {"value": 100.5}},
        "delay": {"fixedDelay": "1s", "percentage": {"value": 0.00001}}
    }})));
    assert_issue(
        &found,
        Severity::Error,
        "spec.http[0].fault.abort.percentage.value",
        "percentage",
    );
    assert_issue(
        &found,
        Severity::Error,
        "spec.http[0].fault.delay.percentage.value",
        "0.0001",
    );
}

#[test]
fn fault_delay_duration_is_checked() {
    assert_error(
        http(json!({"fault": {"delay": {"fixedDelay": "0s"}}})),
        "spec.http[0].fault.delay.fixedDelay",
        "duration",
    );
    assert_error(
        http(json!({"fault": {"delay": {"exponentialDelay": "1s"}}})),
        "spec.http[0].fault.delay.exponentialDelay",
        "exponentialDelay",
    );
    assert_warning(
        http(json!({"fault": {"delay": {"percentage": {"value": 1.0}}}})),
        "spec.http[0].fault.delay",
        "fixedDelay",
    );
}

#[test]
fn fault_delay_percent_is_deprecated_and_ranged() {
    let spec = http(json!({"fault": {"delay": {"fixedDelay": "1s", "percent": 150}}}));
    let found = issues(spec);
    assert_issue(
        &found,
        Severity::Warning,
        "spec.http[0].fault.delay.percent",
        "deprecated",
    );
    assert_issue(
        &found,
        Severity::Error,
        "spec.http[0].fault.delay.percent",
        "percent 150",
    );
}

#[test]
fn mirror_percentage_is_checked() {
    assert_error(
        http(json!({"mirror": {"host": "shadow"}, "mirrorPercentage": {"value": 150.0}})),
        "spec.http[0].mirrorPercentage.value",
        "percentage",
    );
}

#[test]
fn mirror_percent_is_deprecated_and_ranged() {
    let found = issues(http(
        json!({"mirror": {"host": "shadow"}, "mirrorPercent": 101}),
    ));
    assert_issue(
        &found,
        Severity::Warning,
        "spec.http[0].mirrorPercent",
        "mirrorPercentage",
    );
    assert_issue(
        &found,
        Severity::Error,
        "spec.http[0].mirrorPercent",
        "mirrorPercent 101",
    );
}

#[test]
fn mirror_destinations_are_checked() {
    assert_error(
        http(json!({"mirror": {"host": "*"}})),
        "spec.http[0].mirror.host",
        "host",
    );
    let found = issues(http(json!({"mirrors": [
        {"destination": {"host": "shadow", "subset": "-v1"}, "percentage": {"value": -1.0}}
    ]})));
    assert_issue(
        &found,
        Severity::Error,
        "spec.http[0].mirrors[0].destination.subset",
        "subset",
    );
    assert_issue(
        &found,
        Severity::Error,
        "spec.http[0].mirrors[0].percentage.value",
        "percentage",
    );
}

// ---------------------------------------------------------------------------------------------
// CORS

#[test]
fn cors_allow_origins_are_checked() {
    let found = issues(http(json!({"corsPolicy": {"allowOrigins": [
        {"regex": "https://(.*"}, {"exact": ""}, {}
    ]}})));
    assert_issue(
        &found,
        Severity::Error,
        "spec.http[0].corsPolicy.allowOrigins[0].regex",
        "regex",
    );
    assert_issue(
        &found,
        Severity::Error,
        "spec.http[0].corsPolicy.allowOrigins[1]",
        "origin",
    );
    assert_issue(
        &found,
        Severity::Error,
        "spec.http[0].corsPolicy.allowOrigins[2]",
        "origin",
    );
}

#[test]
fn cors_allow_origin_is_deprecated() {
    let spec = http(json!({"corsPolicy": {"allowOrigin": ["https://a.com"]}}));
    assert_warning(
        spec.clone(),
        "spec.http[0].corsPolicy.allowOrigin",
        "allowOrigins",
    );
    assert_no_errors(spec);
}

#[test]
fn cors_methods_and_headers_are_checked() {
    let found = issues(http(json!({"corsPolicy": {
        "allowMethods": ["GET", "get"],
        "allowHeaders": ["*", "x y"],
        "exposeHeaders": ["x-ok", "bad(header)"]
    }})));
    assert_issue(
        &found,
        Severity::Error,
        "spec.http[0].corsPolicy.allowMethods[1]",
        "method",
    );
    assert_issue(
        &found,
        Severity::Error,
        "spec.http[0].corsPolicy.allowHeaders[1]",
        "header name",
    );
    assert_issue(
        &found,
        Severity::Error,
        "spec.http[0].corsPolicy.exposeHeaders[1]",
        "header name",
    );
    assert_eq!(found.len(), 3, "{found:#?}");
}

#[test]
fn cors_max_age_needs_whole_seconds() {
    let path = "spec.http[0].corsPolicy.maxAge";
    assert_error(
        http(json!({"corsPolicy": {"maxAge": "1500ms"}})),
        path,
        "seconds",
    );
    assert_error(
        http(json!({"corsPolicy": {"maxAge": "0s"}})),
        path,
        "duration",
    );
}

// ---------------------------------------------------------------------------------------------
// Redirect, direct response, rewrite

fn redirect(fields: Value) -> Value {
    http(json!({"route": null, "redirect": fields}))
}

#[test]
fn redirect_must_change_something() {
    assert_error(
        redirect(json!({"redirectCode": 302})),
        "spec.http[0].redirect",
        "redirect must",
    );
    assert_clean(redirect(json!({"derivePort": "FROM_PROTOCOL_DEFAULT"})));
}

#[test]
fn redirect_code_must_be_supported() {
    let path = "spec.http[0].redirect.redirectCode";
    assert_error(
        redirect(json!({"uri": "/", "redirectCode": 300})),
        path,
        "redirectCode",
    );
    assert_error(
        redirect(json!({"uri": "/", "redirectCode": 200})),
        path,
        "redirectCode",
    );
    for code in [301, 302, 303, 307, 308] {
        assert_clean(redirect(json!({"uri": "/", "redirectCode": code})));
    }
}

#[test]
fn redirect_scheme_must_be_http_or_https() {
    assert_error(
        redirect(json!({"scheme": "ftp"})),
        "spec.http[0].redirect.scheme",
        "scheme",
    );
}

#[test]
fn redirect_port_must_be_in_range() {
    assert_error(
        redirect(json!({"port": 70000})),
        "spec.http[0].redirect.port",
        "port",
    );
}

#[test]
fn redirect_uri_and_prefix_rewrite_are_exclusive() {
    assert_error(
        redirect(json!({"uri": "/a", "prefixRewrite": "/b"})),
        "spec.http[0].redirect.prefixRewrite",
        "uri or prefixRewrite",
    );
}

#[test]
fn redirect_prefix_rewrite_needs_prefix_matches() {
    let spec = http(json!({
        "route": null,
        "match": [{"uri": {"prefix": "/a"}}, {"uri": {"exact": "/b"}}, {"method": {"exact": "GET"}}],
        "redirect": {"prefixRewrite": "/new"}
    }));
    assert_error(spec, "spec.http[0].redirect.prefixRewrite", "match[1].uri");
}

#[test]
fn direct_response_status_must_be_200_to_599() {
    let spec = |status: u32| http(json!({"route": null, "directResponse": {"status": status}}));
    assert_error(
        spec(100),
        "spec.http[0].directResponse.status",
        "HTTP status",
    );
    assert_error(
        spec(600),
        "spec.http[0].directResponse.status",
        "HTTP status",
    );
    assert_clean(spec(204));
}

#[test]
fn direct_response_body_size_is_limited() {
    let spec = |len: usize| {
        http(
            json!({"route": null, "directResponse": {"status": 200, "body": {"string": "x".repeat(len)}}}),
        )
    };
    assert_error(
        spec(1024 * 1024 + 1),
        "spec.http[0].directResponse.body",
        "1MiB",
    );
    assert_warning(
        spec(100 * 1024 + 1),
        "spec.http[0].directResponse.body",
        "large",
    );
    assert_clean(spec(100 * 1024));
}

#[test]
fn rewrite_uri_and_regex_are_exclusive() {
    let spec = http(
        json!({"rewrite": {"uri": "/a", "uriRegexRewrite": {"match": "^/b", "rewrite": "/c"}}}),
    );
    assert_error(spec, "spec.http[0].rewrite", "uriRegexRewrite");
}

#[test]
fn rewrite_must_change_something() {
    assert_error(
        http(json!({"rewrite": {}})),
        "spec.http[0].rewrite",
        "rewrite must",
    );
}

#[test]
fn rewrite_regex_is_checked() {
    let path = "spec.http[0].rewrite.uriRegexRewrite";
    assert_error(
        http(json!({"rewrite": {"uriRegexRewrite": {"match": "(", "rewrite": "/"}}})),
        &format!("{path}.match"),
        "regex",
    );
    assert_error(
        http(json!({"rewrite": {"uriRegexRewrite": {"match": "^/a"}}})),
        &format!("{path}.rewrite"),
        "rewrite",
    );
    assert_error(
        http(json!({"rewrite": {"uriRegexRewrite": {"rewrite": "/b"}}})),
        &format!("{path}.match"),
        "match",
    );
}

// ---------------------------------------------------------------------------------------------
// Header manipulation

#[test]
fn request_headers_cannot_set_pseudo_headers_except_authority() {
    assert_error(
        http(json!({"headers": {"request": {"set": {":path": "/x"}}}})),
        "spec.http[0].headers.request.set.:path",
        "pseudo-headers",
    );
    assert_clean(http(
        json!({"headers": {"request": {"set": {"host": "a.example.com"}}}}),
    ));
}

#[test]
fn host_header_cannot_be_removed_or_set_on_responses() {
    let found = issues(http(json!({"headers": {
        "request": {"remove": ["Host"]},
        "response": {"set": {"host": "x"}, "add": {":status": "200"}}
    }})));
    assert_issue(
        &found,
        Severity::Error,
        "spec.http[0].headers.request.remove[0]",
        "Host header",
    );
    assert_issue(
        &found,
        Severity::Error,
        "spec.http[0].headers.response.set.host",
        "Host header",
    );
    assert_issue(
        &found,
        Severity::Error,
        "spec.http[0].headers.response.add.:status",
        "pseudo",
    );
}

#[test]
fn header_values_are_checked() {
    let path = "spec.http[0].headers.response.set.x-a";
    let spec = |v: &str| http(json!({"headers": {"response": {"set": {"x-a": v}}}}));
    assert_error(spec("100%"), path, "%%");
    assert_error(spec("%START_TIME"), path, "unterminated");
    assert_error(spec("a\u{1}b"), path, "control");
    assert_clean(spec("%START_TIME(%s)% and 100%% \t tab"));
    assert_clean(spec("%REQ([\"x-a\", \"x-b\"])%"));
}

#[test]
fn destination_headers_are_checked() {
    let spec = http(
        json!({"route": [{"destination": {"host": HOST}, "headers": {"response": {"remove": [":status"]}}}]}),
    );
    assert_error(
        spec,
        "spec.http[0].route[0].headers.response.remove[0]",
        "pseudo",
    );
}

#[test]
fn authority_is_rewritten_in_one_place_only() {
    let spec = http(json!({
        "rewrite": {"authority": "a.example.com"},
        "headers": {"request": {"set": {":authority": "b.example.com"}}}
    }));
    assert_error(
        spec,
        "spec.http[0].headers.request.set.:authority",
        "a.example.com",
    );
    let spec = http(json!({"headers": {"request": {"set": {"host": "a"}, "add": {"Host": "b"}}}}));
    assert_error(spec, "spec.http[0].headers.request.add.Host", "one place");
}

// ---------------------------------------------------------------------------------------------
// TLS and TCP routes

fn tls(route: Value) -> Value {
    json!({"hosts": ["*.bookinfo.com"], "tls": [route]})
}

#[test]
fn tls_route_needs_matches_and_destinations() {
    let found = issues(tls(json!({})));
    assert_issue(&found, Severity::Error, "spec.tls[0].match", "sniHosts");
    assert_issue(&found, Severity::Error, "spec.tls[0].route", "destination");
}

#[test]
fn tls_match_needs_sni_hosts() {
    assert_error(
        tls(json!({"match": [{"port": 443}], "route": [dest()]})),
        "spec.tls[0].match[0].sniHosts",
        "SNI host",
    );
}

#[test]
fn tls_sni_hosts_must_be_covered_by_hosts() {
    let spec = |sni: &str| tls(json!({"match": [{"sniHosts": [sni]}], "route": [dest()]}));
    let path = "spec.tls[0].match[0].sniHosts[0]";
    assert_error(spec("login.example.com"), path, "not covered");
    assert_error(spec("*.com"), path, "not covered");
    assert_error(spec("bad_sni.bookinfo.com"), path, "bad_sni");
    assert_clean(spec("login.bookinfo.com"));
    assert_clean(spec("*.eu.bookinfo.com"));
}

#[test]
fn tls_ip_sni_host_is_a_warning() {
    let spec = tls(json!({"match": [{"sniHosts": ["10.0.0.1"]}], "route": [dest()]}));
    assert_warning(
        spec.clone(),
        "spec.tls[0].match[0].sniHosts[0]",
        "IP address",
    );
    assert_no_errors(spec);
}

#[test]
fn generated_sni_names_are_accepted_on_gateways() {
    let host = "outbound_.8080_._.reviews.default.svc.cluster.local";
    let spec = json!({
        "hosts": [host],
        "gateways": ["istio-system/passthrough"],
        "tls": [{"match": [{"sniHosts": [host]}], "route": [dest()]}]
    });
    assert_clean(spec);
    let bad = "outbound_.http_._.reviews";
    let spec = json!({
        "hosts": [bad],
        "gateways": ["istio-system/passthrough"],
        "tls": [{"match": [{"sniHosts": [bad]}], "route": [dest()]}]
    });
    assert_error(spec, "spec.hosts[0]", "outbound_.<port>_._.<hostname>");
}

#[test]
fn l4_match_fields_are_checked() {
    let found = issues(tls(json!({
        "match": [{
            "sniHosts": ["a.bookinfo.com"],
            "destinationSubnets": ["10.0.0.0/33"],
            "port": 0,
            "sourceLabels": {"-bad": "x"},
            "gateways": ["a/b/c"],
            "sourceNamespace": "Bad_NS"
        }],
        "route": [dest()]
    })));
    let m = "spec.tls[0].match[0]";
    assert_issue(
        &found,
        Severity::Error,
        &format!("{m}.destinationSubnets[0]"),
        "CIDR",
    );
    assert_issue(
        &found,
        Severity::Error,
        &format!("{m}.sourceLabels"),
        "label",
    );
    assert_issue(
        &found,
        Severity::Error,
        &format!("{m}.gateways[0]"),
        "gateway",
    );
    assert_issue(
        &found,
        Severity::Error,
        &format!("{m}.sourceNamespace"),
        "sourceNamespace",
    );
    // `port: 0` means unset.
    assert_eq!(found.len(), 4, "{found:#?}");
}

#[test]
fn tcp_route_needs_destinations() {
    assert_error(
        json!({"hosts": [HOST], "tcp": [{"match": [{"port": 3306}]}]}),
        "spec.tcp[0].route",
        "destination",
    );
}

#[test]
fn tcp_match_fields_are_checked() {
    let spec = json!({"hosts": [HOST], "tcp": [{
        "match": [{"sourceSubnet": "10.0.0.300", "port": 70000}],
        "route": [dest()]
    }]});
    let found = issues(spec);
    assert_issue(
        &found,
        Severity::Error,
        "spec.tcp[0].match[0].sourceSubnet",
        "CIDR",
    );
    assert_issue(&found, Severity::Error, "spec.tcp[0].match[0].port", "port");
}

#[test]
fn tcp_and_tls_destinations_and_weights_are_checked() {
    let spec = json!({"hosts": [HOST], "tcp": [{"route": [
        {"destination": {"host": "db", "subset": "Primary_1"}},
        {"destination": {"host": "db"}, "weight": -5}
    ]}]});
    let found = issues(spec);
    assert_issue(
        &found,
        Severity::Error,
        "spec.tcp[0].route[0].destination.subset",
        "subset",
    );
    assert_issue(
        &found,
        Severity::Error,
        "spec.tcp[0].route[1].weight",
        "negative",
    );
    assert_error(
        tls(json!({"match": [{"sniHosts": ["a.bookinfo.com"]}], "route": [dest(), dest()]})),
        "spec.tls[0].route",
        "add up to 0",
    );
}

// ---------------------------------------------------------------------------------------------
// Helpers of the rules

#[test]
fn host_overlap_and_subset_follow_istio() {
    assert!(host_matches("*.com", "*.example.com"));
    assert!(host_matches("a.example.com", "*.example.com"));
    assert!(!host_matches("a.example.com", "b.example.com"));
    assert!(host_subset_of("*.a.example.com", "*.example.com"));
    assert!(!host_subset_of("*.example.com", "*.a.example.com"));
    assert!(!host_subset_of("*.example.com", "a.example.com"));
    assert!(host_subset_of("a.example.com", "*"));
}
