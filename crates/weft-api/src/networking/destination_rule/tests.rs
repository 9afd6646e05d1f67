use serde_json::{Value, json};

use super::*;

crate::validate::validation_test_helpers!(DestinationRule);

/// A rule for `reviews` with the given traffic policy.
fn policy(p: Value) -> Value {
    json!({"host": "reviews", "trafficPolicy": p})
}

fn lb(lb: Value) -> Value {
    policy(json!({"loadBalancer": lb, "outlierDetection": {"consecutive5xxErrors": 5}}))
}

const TP: &str = "spec.trafficPolicy";
const LB: &str = "spec.trafficPolicy.loadBalancer";

// ---- deserialization ----

#[test]
fn realistic_rules_deserialize_and_validate_clean() {
    let docs = [
        json!({
            "host": "ratings.prod.svc.cluster.local",
            "trafficPolicy": {"loadBalancer": {"simple": "LEAST_REQUEST"}},
            "subsets": [{
                "name": "testversion",
                "labels": {"version": "v3"},
                "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}}
            }]
        }),
        json!({
            "host": "ratings.prod.svc.cluster.local",
            "trafficPolicy": {
                "connectionPool": {
                    "tcp": {"maxConnections": 100, "connectTimeout": "30ms",
                            "tcpKeepalive": {"time": "7200s", "interval": "75s"}},
                    "http": {"http2MaxRequests": 1000, "maxRequestsPerConnection": 10}
                },
                "outlierDetection": {"consecutive5xxErrors": 7, "interval": "5m",
                                     "baseEjectionTime": "15m"},
                "portLevelSettings": [
                    {"port": {"number": 80}, "loadBalancer": {"simple": "LEAST_REQUEST"}},
                    {"port": {"number": 9080}, "loadBalancer": {"simple": "ROUND_ROBIN"}}
                ]
            }
        }),
        json!({
            "host": "example.com",
            "workloadSelector": {"matchLabels": {"app": "ratings"}},
            "exportTo": ["."],
            "trafficPolicy": {
                "loadBalancer": {"consistentHash": {"httpCookie": {"name": "user", "ttl": "0s"}}},
                "portLevelSettings": [{
                    "port": {"number": 31443},
                    "tls": {"credentialName": "client-credential", "mode": "MUTUAL"}
                }]
            }
        }),
        json!({
            "host": "mydomain.com",
            "trafficPolicy": {"tunnel": {"protocol": "CONNECT", "targetHost": "10.1.2.3",
                                         "targetPort": 8443}}
        }),
    ];
    for doc in docs {
        assert_clean(doc);
    }
}

#[test]
fn unknown_fields_are_rejected_at_every_level() {
    for bad in [
        json!({"host": "a.com", "hosts": ["a.com"]}),
        json!({"host": "a.com", "trafficPolicy": {"loadBalancer": {"simpel": "RANDOM"}}}),
        json!({"host": "a.com", "trafficPolicy": {"loadBalancer": {"consistentHash": {"httpHeader": "x"}}}}),
        json!({"host": "a.com", "trafficPolicy": {"connectionPool": {"tcp": {"maxConnection": 1}}}}),
        json!({"host": "a.com", "subsets": [{"name": "v1", "label": {"a": "b"}}]}),
    ] {
        let err = serde_json::from_value::<DestinationRule>(bad.clone()).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{bad}: {err}");
    }
}

#[test]
fn two_oneof_members_are_rejected() {
    for (bad, names) in [
        (
            json!({"simple": "RANDOM", "consistentHash": {"useSourceIp": true}}),
            "simple and consistentHash",
        ),
        (
            json!({"consistentHash": {"useSourceIp": true, "httpHeaderName": "x-user"}}),
            "httpHeaderName and useSourceIp",
        ),
        (
            json!({"consistentHash": {"ringHash": {}, "maglev": {"tableSize": 7}}}),
            "ringHash and maglev",
        ),
    ] {
        let err = serde_json::from_value::<LoadBalancerSettings>(bad).unwrap_err();
        assert!(err.to_string().contains("only one of"), "{err}");
        assert!(err.to_string().contains(names), "{err}");
    }
}

#[test]
fn decode_errors_through_the_envelope_name_the_field() {
    use crate::meta::{Kind, Resource};
    let doc = |spec: Value| {
        json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
               "metadata": {"name": "r"}, "spec": spec})
    };
    let err = Resource::from_value(
        Kind::DestinationRule,
        doc(json!({"host": "a.com", "trafficPolicy": {"loadBalancer": {
            "simple": "RANDOM", "consistentHash": {"useSourceIp": true}}}})),
    )
    .unwrap_err();
    assert_eq!(err.path, "spec.trafficPolicy.loadBalancer");
    assert!(err.message.contains("only one of"), "{err}");
    let err = Resource::from_value(
        Kind::DestinationRule,
        doc(json!({"host": "a.com", "subsets": [{"name": "v1", "lables": {}}]})),
    )
    .unwrap_err();
    assert_eq!(err.path, "spec.subsets[0].lables");
    assert!(err.message.contains("lables"), "{err}");
    let ok = Resource::from_value(Kind::DestinationRule, doc(maximal())).unwrap();
    assert_eq!(ok.to_value().unwrap()["spec"], maximal());
}

#[test]
fn enums_and_durations_are_checked_while_decoding() {
    assert!(serde_json::from_value::<LoadBalancerSettings>(json!({"simple": "FASTEST"})).is_err());
    assert!(serde_json::from_value::<ClientTlsSettings>(json!({"mode": "mutual"})).is_err());
    assert!(serde_json::from_value::<TcpSettings>(json!({"connectTimeout": "10"})).is_err());
    assert!(serde_json::from_value::<ProxyProtocol>(json!({"version": "V3"})).is_err());
}

#[test]
fn oneofs_decode_into_enums() {
    let lb: LoadBalancerSettings = serde_json::from_value(json!({
        "consistentHash": {"httpQueryParameterName": "user", "maglev": {"tableSize": 65537}}
    }))
    .unwrap();
    let Some(LbPolicy::ConsistentHash(hash)) = lb.policy else {
        panic!("expected consistent hash, got {lb:?}");
    };
    assert_eq!(
        hash.hash_key,
        Some(HashKey::HttpQueryParameterName("user".into()))
    );
    assert_eq!(
        hash.hash_algorithm,
        Some(HashAlgorithm::Maglev(Maglev { table_size: 65537 }))
    );
}

/// Every field of the spec, spread over subsets and port-level settings where oneofs exclude
/// each other. Values avoid proto defaults so the output must equal the input exactly.
fn maximal() -> Value {
    json!({
        "host": "reviews.default.svc.cluster.local",
        "exportTo": [".", "istio-system"],
        "workloadSelector": {"matchLabels": {"app": "productpage"}},
        "trafficPolicy": {
            "loadBalancer": {
                "consistentHash": {
                    "httpCookie": {"name": "user", "path": "/", "ttl": "10s",
                                   "attributes": [{"name": "SameSite", "value": "Strict"},
                                                  {"name": "Secure"}]},
                    "ringHash": {"minimumRingSize": 2048}
                },
                "localityLbSetting": {
                    "distribute": [{"from": "us-west/zone1/*",
                                    "to": {"us-west/zone1/*": 80, "us-west/zone2/*": 20}}],
                    "failoverPriority": ["topology.istio.io/network"],
                    "enabled": true
                },
                "warmup": {"duration": "1m", "minimumPercent": 20.0, "aggression": 1.5}
            },
            "connectionPool": {
                "tcp": {"maxConnections": 100, "connectTimeout": "30ms",
                        "tcpKeepalive": {"probes": 9, "time": "2h", "interval": "75s"},
                        "maxConnectionDuration": "1h", "idleTimeout": "5m"},
                "http": {"http1MaxPendingRequests": 64, "http2MaxRequests": 1000,
                         "maxRequestsPerConnection": 10, "maxRetries": 3, "idleTimeout": "30s",
                         "h2UpgradePolicy": "DO_NOT_UPGRADE", "useClientProtocol": true,
                         "maxConcurrentStreams": 100,
                         "http2KeepAlive": {"interval": "10s", "timeout": "3s"}}
            },
            "outlierDetection": {
                "consecutiveErrors": 4, "splitExternalLocalOriginErrors": true,
                "consecutiveLocalOriginFailures": 5, "consecutiveGatewayErrors": 0,
                "consecutive5xxErrors": 7, "interval": "5m", "baseEjectionTime": "15m",
                "maxEjectionPercent": 50, "minHealthPercent": 30,
                "outlierDetectionHttpErrorCodes": [500, 503]
            },
            "tls": {"mode": "MUTUAL", "clientCertificate": "/etc/certs/cert.pem",
                    "privateKey": "/etc/certs/key.pem", "caCertificates": "/etc/certs/ca.pem",
                    "subjectAltNames": ["reviews.example.com"], "sni": "reviews.example.com",
                    "insecureSkipVerify": false, "caCrl": "/etc/certs/crl.pem"},
            "portLevelSettings": [{
                "port": {"number": 9080},
                "loadBalancer": {"consistentHash": {"httpHeaderName": "x-user",
                                                    "maglev": {"tableSize": 65537}}},
                "connectionPool": {"tcp": {"maxConnections": 10}},
                "outlierDetection": {"consecutive5xxErrors": 3},
                "tls": {"mode": "SIMPLE", "credentialName": "reviews-ca"}
            }],
            "tunnel": {"protocol": "POST", "targetHost": "egress.example.com", "targetPort": 8443},
            "retryBudget": {"percent": 25.0, "minRetryConcurrency": 5, "budgetInterval": "10s"}
        },
        "subsets": [
            {"name": "v1", "labels": {"version": "v1"},
             "trafficPolicy": {
                 "loadBalancer": {"simple": "LEAST_REQUEST",
                                  "zoneAwareLbSetting": {"enabled": true,
                                                         "failover": [{"from": "us-east", "to": "us-west"}],
                                                         "failoverPriority": ["topology.istio.io/network"],
                                                         "minClusterSize": 3},
                                  "warmupDurationSecs": "30s"},
                 "proxyProtocol": {"version": "V2"}
             }},
            {"name": "v2", "labels": {"version": "v2"},
             "trafficPolicy": {"loadBalancer": {
                 "consistentHash": {"useSourceIp": true, "minimumRingSize": 1024},
                 "localityLbSetting": {"failover": [{"from": "us-east", "to": "eu-west"}]}
             }, "outlierDetection": {"consecutiveGatewayErrors": 2}}},
            {"name": "v3",
             "trafficPolicy": {"loadBalancer": {"consistentHash": {"httpQueryParameterName": "u"}},
                               "proxyProtocol": {}}}
        ]
    })
}

#[test]
fn maximal_spec_round_trips_exactly() {
    let input = maximal();
    let rule = parse(input.clone());
    let output = serde_json::to_value(&rule).unwrap();
    assert_eq!(output, input);
    assert_eq!(parse(output), rule);
}

#[test]
fn defaults_are_skipped_on_output() {
    let rule = parse(json!({
        "host": "a.com",
        "trafficPolicy": {"tls": {"mode": "DISABLE"}, "proxyProtocol": {"version": "V1"},
                          "connectionPool": {"http": {"useClientProtocol": false, "maxRetries": 0}}},
        "subsets": []
    }));
    assert_eq!(
        serde_json::to_value(&rule).unwrap(),
        json!({"host": "a.com",
               "trafficPolicy": {"tls": {}, "proxyProtocol": {}, "connectionPool": {"http": {}}}})
    );
}

// ---- host, subsets, exportTo, selector ----

#[test]
fn host_is_required() {
    assert_error(json!({}), "spec.host", "required");
}

#[test]
fn host_must_be_a_valid_name() {
    assert_error(json!({"host": "a..b"}), "spec.host", "not a valid host");
    assert_clean(json!({"host": "*.example.com"}));
    assert_clean(json!({"host": "*"}));
}

#[test]
fn subset_name_is_required() {
    assert_error(
        json!({"host": "a.com", "subsets": [{"labels": {"v": "1"}}]}),
        "spec.subsets[0].name",
        "required",
    );
}

#[test]
fn subset_name_must_be_a_dns_label() {
    assert_error(
        json!({"host": "a.com", "subsets": [{"name": "v1.0"}]}),
        "spec.subsets[0].name",
        "DNS-1123",
    );
}

#[test]
fn subset_names_are_unique() {
    assert_error(
        json!({"host": "a.com", "subsets": [{"name": "v1"}, {"name": "v1"}]}),
        "spec.subsets[1].name",
        "duplicate",
    );
}

#[test]
fn subset_labels_must_be_valid() {
    assert_error(
        json!({"host": "a.com", "subsets": [{"name": "v1", "labels": {"version": "v 1"}}]}),
        "spec.subsets[0].labels",
        "invalid value",
    );
}

#[test]
fn subset_traffic_policy_is_validated() {
    assert_error(
        json!({"host": "a.com", "subsets": [{"name": "v1", "trafficPolicy": {}}]}),
        "spec.subsets[0].trafficPolicy",
        "at least one field",
    );
}

#[test]
fn export_to_entries_are_checked() {
    let rule = |e: Value| json!({"host": "a.com", "exportTo": e});
    assert_error(rule(json!([".", "."])), "spec.exportTo[1]", "duplicate");
    assert_error(rule(json!(["~"])), "spec.exportTo[0]", "ServiceEntry");
    assert_error(
        rule(json!(["Not_A_Namespace"])),
        "spec.exportTo[0]",
        "namespace name",
    );
    assert_error(
        rule(json!(["*", "prod"])),
        "spec.exportTo",
        "every namespace",
    );
    assert_clean(rule(json!([".", "prod"])));
}

#[test]
fn export_to_with_workload_selector_stays_in_namespace() {
    let rule = |e: Value| json!({"host": "a.com", "exportTo": e, "workloadSelector": {"matchLabels": {"app": "a"}}});
    assert_error(rule(json!([".", "prod"])), "spec.exportTo", "own namespace");
    assert_error(rule(json!(["*"])), "spec.exportTo", "own namespace");
    assert_clean(rule(json!(["."])));
}

#[test]
fn workload_selector_rejects_wildcards() {
    assert_error(
        json!({"host": "a.com", "workloadSelector": {"matchLabels": {"app": "re*"}}}),
        "spec.workloadSelector.matchLabels",
        "wildcard",
    );
}

#[test]
fn empty_workload_selector_warns() {
    assert_warning(
        json!({"host": "a.com", "workloadSelector": {}}),
        "spec.workloadSelector",
        "every workload",
    );
}

// ---- traffic policy ----

#[test]
fn empty_traffic_policy_is_an_error() {
    assert_error(policy(json!({})), TP, "at least one field");
}

#[test]
fn tunnel_and_proxy_protocol_exclude_each_other() {
    assert_error(
        policy(json!({"tunnel": {"targetHost": "a.com", "targetPort": 80},
                      "proxyProtocol": {"version": "V2"}})),
        TP,
        "together",
    );
}

#[test]
fn port_level_settings_need_a_valid_port() {
    let pls = |p: Value| policy(json!({"portLevelSettings": [p]}));
    assert_error(
        pls(json!({"tls": {"mode": "SIMPLE"}})),
        "spec.trafficPolicy.portLevelSettings[0].port",
        "required",
    );
    assert_error(
        pls(json!({"port": {"number": 0}, "tls": {"mode": "SIMPLE"}})),
        "spec.trafficPolicy.portLevelSettings[0].port.number",
        "range",
    );
}

#[test]
fn port_level_settings_need_a_policy() {
    assert_error(
        policy(json!({"portLevelSettings": [{"port": {"number": 80}}]})),
        "spec.trafficPolicy.portLevelSettings[0]",
        "at least one",
    );
}

#[test]
fn port_level_settings_are_validated_inside() {
    assert_error(
        policy(json!({"portLevelSettings": [
            {"port": {"number": 80}, "connectionPool": {"tcp": {"maxConnections": -1}}}
        ]})),
        "spec.trafficPolicy.portLevelSettings[0].connectionPool.tcp.maxConnections",
        "negative",
    );
}

#[test]
fn duplicate_port_level_ports_warn() {
    assert_warning(
        policy(json!({"portLevelSettings": [
            {"port": {"number": 80}, "tls": {"mode": "SIMPLE"}},
            {"port": {"number": 80}, "tls": {"mode": "DISABLE"}}
        ]})),
        "spec.trafficPolicy.portLevelSettings[1].port",
        "only the first",
    );
}

#[test]
fn tunnel_protocol_must_be_connect_or_post() {
    assert_error(
        policy(json!({"tunnel": {"protocol": "GET", "targetHost": "a.com", "targetPort": 80}})),
        "spec.trafficPolicy.tunnel.protocol",
        "CONNECT",
    );
}

#[test]
fn tunnel_target_host_is_fqdn_or_ip() {
    let tunnel = |h: &str| policy(json!({"tunnel": {"targetHost": h, "targetPort": 80}}));
    assert_error(
        tunnel("*.a.com"),
        "spec.trafficPolicy.tunnel.targetHost",
        "IP address",
    );
    assert_error(
        tunnel(""),
        "spec.trafficPolicy.tunnel.targetHost",
        "required",
    );
    assert_clean(tunnel("2001:db8::1"));
    assert_clean(tunnel("proxy.corp"));
}

#[test]
fn tunnel_target_port_is_required() {
    assert_error(
        policy(json!({"tunnel": {"targetHost": "a.com"}})),
        "spec.trafficPolicy.tunnel.targetPort",
        "range",
    );
}

#[test]
fn retry_budget_percent_is_a_percentage() {
    assert_error(
        policy(json!({"retryBudget": {"percent": 120.0}})),
        "spec.trafficPolicy.retryBudget.percent",
        "0..100",
    );
}

// ---- load balancer ----

#[test]
fn least_conn_is_deprecated() {
    assert_warning(
        lb(json!({"simple": "LEAST_CONN"})),
        &format!("{LB}.simple"),
        "LEAST_REQUEST",
    );
}

#[test]
fn consistent_hash_without_key_warns() {
    assert_warning(
        lb(json!({"consistentHash": {}})),
        &format!("{LB}.consistentHash"),
        "no hash key",
    );
}

#[test]
fn consistent_hash_names_must_not_be_empty() {
    assert_error(
        lb(json!({"consistentHash": {"httpHeaderName": ""}})),
        &format!("{LB}.consistentHash.httpHeaderName"),
        "empty",
    );
    assert_error(
        lb(json!({"consistentHash": {"httpQueryParameterName": ""}})),
        &format!("{LB}.consistentHash.httpQueryParameterName"),
        "empty",
    );
}

#[test]
fn hash_cookie_needs_a_name() {
    assert_error(
        lb(json!({"consistentHash": {"httpCookie": {"ttl": "10s"}}})),
        &format!("{LB}.consistentHash.httpCookie.name"),
        "required",
    );
}

#[test]
fn hash_cookie_attributes_are_named_and_unique() {
    let cookie = |attrs: Value| {
        lb(json!({"consistentHash": {"httpCookie": {"name": "u", "attributes": attrs}}}))
    };
    assert_error(
        cookie(json!([{"value": "x"}])),
        &format!("{LB}.consistentHash.httpCookie.attributes[0].name"),
        "empty",
    );
    assert_error(
        cookie(json!([{"name": "Secure"}, {"name": "Secure"}])),
        &format!("{LB}.consistentHash.httpCookie.attributes[1].name"),
        "duplicate",
    );
}

#[test]
fn deprecated_minimum_ring_size_warns_and_conflicts_with_algorithm() {
    let path = format!("{LB}.consistentHash.minimumRingSize");
    assert_warning(
        lb(json!({"consistentHash": {"useSourceIp": true, "minimumRingSize": 1024}})),
        &path,
        "deprecated",
    );
    assert_error(
        lb(
            json!({"consistentHash": {"useSourceIp": true, "minimumRingSize": 1024,
                                     "ringHash": {"minimumRingSize": 1024}}}),
        ),
        &path,
        "only one",
    );
}

#[test]
fn ring_size_is_bounded() {
    assert_error(
        lb(json!({"consistentHash": {"useSourceIp": true,
                                     "ringHash": {"minimumRingSize": 10_000_000}}})),
        &format!("{LB}.consistentHash.ringHash.minimumRingSize"),
        "limit",
    );
}

#[test]
fn maglev_table_size_is_a_prime_below_the_limit() {
    let maglev =
        |n: u64| lb(json!({"consistentHash": {"useSourceIp": true, "maglev": {"tableSize": n}}}));
    let path = format!("{LB}.consistentHash.maglev.tableSize");
    assert_error(maglev(0), &path, "must be set");
    assert_error(maglev(65536), &path, "prime");
    assert_error(maglev(5_000_011), &path, "less than");
    assert_clean(maglev(65537));
}

#[test]
fn primes_match_envoy() {
    let primes: Vec<u64> = (0..30).filter(|&n| is_prime(n)).collect();
    assert_eq!(primes, [1, 2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
    assert!(is_prime(65537));
    assert!(!is_prime(65539 * 3));
}

#[test]
fn locality_and_zone_aware_exclude_each_other() {
    assert_error(
        lb(
            json!({"localityLbSetting": {"enabled": true}, "zoneAwareLbSetting": {"enabled": true}}),
        ),
        LB,
        "only one of localityLbSetting",
    );
}

#[test]
fn locality_distribute_and_failover_exclude_each_other() {
    assert_error(
        lb(json!({"localityLbSetting": {
            "distribute": [{"from": "us-east", "to": {"us-east": 100}}],
            "failover": [{"from": "us-east", "to": "us-west"}]
        }})),
        &format!("{LB}.localityLbSetting"),
        "together",
    );
}

#[test]
fn locality_weights_add_up_to_100() {
    assert_error(
        lb(json!({"localityLbSetting": {"distribute": [
            {"from": "us-east/*", "to": {"us-east/*": 60, "us-west/*": 30}}
        ]}})),
        &format!("{LB}.localityLbSetting.distribute[0].to"),
        "add up to 100",
    );
}

#[test]
fn locality_weights_are_in_range() {
    assert_error(
        lb(json!({"localityLbSetting": {"distribute": [
            {"from": "us-east/*", "to": {"us-east/*": 100, "us-west/*": 0}}
        ]}})),
        &format!("{LB}.localityLbSetting.distribute[0].to"),
        "1..100",
    );
}

#[test]
fn locality_sources_must_not_overlap() {
    assert_error(
        lb(json!({"localityLbSetting": {"distribute": [
            {"from": "us-east", "to": {"us-east": 100}},
            {"from": "us-east/zone1", "to": {"us-east": 100}}
        ]}})),
        &format!("{LB}.localityLbSetting.distribute[1].from"),
        "overlaps",
    );
}

#[test]
fn locality_wildcards_only_at_the_end() {
    assert_error(
        lb(json!({"localityLbSetting": {"distribute": [
            {"from": "us-east/*/sub", "to": {"us-east": 100}}
        ]}})),
        &format!("{LB}.localityLbSetting.distribute[0].from"),
        "only one '*'",
    );
}

#[test]
fn locality_conflicts_follow_istio() {
    let bad = |l: &[&str]| {
        locality_conflicts(l)
            .into_iter()
            .map(|(i, _)| i)
            .collect::<Vec<_>>()
    };
    assert_eq!(bad(&["a", "b/c", "b/d/e", "b/d/f"]), Vec::<usize>::new());
    assert_eq!(bad(&["*", "a"]), [1]);
    assert_eq!(bad(&["a/*", "a/b"]), [1]);
    assert_eq!(bad(&["a/b", "a/b/c"]), [1]);
    assert_eq!(bad(&["a/b/c", "a/b/c"]), [1]);
    assert_eq!(bad(&["a//c"]), [0]);
}

#[test]
fn locality_failover_regions_differ() {
    assert_error(
        lb(json!({"localityLbSetting": {"failover": [{"from": "us-east", "to": "us-east"}]}})),
        &format!("{LB}.localityLbSetting.failover[0]"),
        "different regions",
    );
}

#[test]
fn locality_failover_names_regions_only() {
    assert_error(
        lb(json!({"localityLbSetting": {"failover": [{"from": "us-east/z1", "to": "us-west"}]}})),
        &format!("{LB}.localityLbSetting.failover[0]"),
        "regions only",
    );
    assert_error(
        lb(json!({"localityLbSetting": {"failover": [{"from": "us-*", "to": "us-west"}]}})),
        &format!("{LB}.localityLbSetting.failover[0]"),
        "wildcard",
    );
}

#[test]
fn locality_failover_without_outlier_detection_warns() {
    assert_warning(
        policy(json!({"loadBalancer": {"localityLbSetting": {
            "failover": [{"from": "us-east", "to": "us-west"}]
        }}})),
        &format!("{LB}.localityLbSetting"),
        "outlierDetection",
    );
}

#[test]
fn locality_failover_priority_excludes_topology_labels() {
    assert_error(
        lb(json!({"localityLbSetting": {
            "failover": [{"from": "us-east", "to": "us-west"}],
            "failoverPriority": ["topology.kubernetes.io/zone"]
        }})),
        &format!("{LB}.localityLbSetting.failoverPriority[0]"),
        "topology label",
    );
}

#[test]
fn zone_aware_failover_priority_excludes_topology_labels() {
    assert_error(
        lb(json!({"zoneAwareLbSetting": {"failoverPriority": ["topology.kubernetes.io/region"]}})),
        &format!("{LB}.zoneAwareLbSetting.failoverPriority[0]"),
        "topology label",
    );
}

#[test]
fn zone_aware_failover_regions_differ() {
    assert_error(
        lb(json!({"zoneAwareLbSetting": {"failover": [{"from": "a", "to": "a"}]}})),
        &format!("{LB}.zoneAwareLbSetting.failover[0]"),
        "different regions",
    );
}

#[test]
fn warmup_duration_secs_is_deprecated_and_exclusive() {
    assert_warning(
        lb(json!({"warmupDurationSecs": "30s"})),
        &format!("{LB}.warmupDurationSecs"),
        "deprecated",
    );
    assert_error(
        lb(json!({"warmupDurationSecs": "30s", "warmup": {"duration": "30s"}})),
        LB,
        "only one of warmupDurationSecs",
    );
}

#[test]
fn warmup_needs_a_valid_duration() {
    assert_error(
        lb(json!({"warmup": {"aggression": 2.0}})),
        &format!("{LB}.warmup.duration"),
        "required",
    );
    assert_error(
        lb(json!({"warmup": {"duration": "0s"}})),
        &format!("{LB}.warmup.duration"),
        "at least 1ms",
    );
}

#[test]
fn warmup_percent_and_aggression_are_bounded() {
    assert_error(
        lb(json!({"warmup": {"duration": "1m", "minimumPercent": 150.0}})),
        &format!("{LB}.warmup.minimumPercent"),
        "0..100",
    );
    assert_error(
        lb(json!({"warmup": {"duration": "1m", "aggression": 0.0}})),
        &format!("{LB}.warmup.aggression"),
        "greater than 0",
    );
}

// ---- connection pool ----

const CP: &str = "spec.trafficPolicy.connectionPool";

#[test]
fn empty_connection_pool_is_an_error() {
    assert_error(policy(json!({"connectionPool": {}})), CP, "tcp or http");
}

#[test]
fn http_pool_limits_are_non_negative() {
    for field in [
        "http1MaxPendingRequests",
        "http2MaxRequests",
        "maxRequestsPerConnection",
        "maxRetries",
        "maxConcurrentStreams",
    ] {
        assert_error(
            policy(json!({"connectionPool": {"http": {field: -1}}})),
            &format!("{CP}.http.{field}"),
            "negative",
        );
    }
}

#[test]
fn tcp_max_connections_is_non_negative() {
    assert_error(
        policy(json!({"connectionPool": {"tcp": {"maxConnections": -5}}})),
        &format!("{CP}.tcp.maxConnections"),
        "negative",
    );
}

#[test]
fn pool_durations_are_checked() {
    let pool = |p: Value| policy(json!({"connectionPool": p}));
    assert_error(
        pool(json!({"http": {"idleTimeout": "0s"}})),
        &format!("{CP}.http.idleTimeout"),
        "at least 1ms",
    );
    assert_error(
        pool(json!({"tcp": {"connectTimeout": "1500us"}})),
        &format!("{CP}.tcp.connectTimeout"),
        "milliseconds",
    );
    assert_error(
        pool(json!({"tcp": {"maxConnectionDuration": "0s"}})),
        &format!("{CP}.tcp.maxConnectionDuration"),
        "at least 1ms",
    );
    assert_error(
        pool(json!({"tcp": {"tcpKeepalive": {"time": "0s"}}})),
        &format!("{CP}.tcp.tcpKeepalive.time"),
        "at least 1ms",
    );
    assert_error(
        pool(json!({"tcp": {"tcpKeepalive": {"interval": "100us"}}})),
        &format!("{CP}.tcp.tcpKeepalive.interval"),
        "at least 1ms",
    );
    // A zero TCP idle timeout disables it.
    assert_clean(pool(json!({"tcp": {"idleTimeout": "0s"}})));
}

#[test]
fn upgrade_excludes_use_client_protocol() {
    assert_error(
        policy(
            json!({"connectionPool": {"http": {"h2UpgradePolicy": "UPGRADE",
                                                  "useClientProtocol": true}}}),
        ),
        &format!("{CP}.http.useClientProtocol"),
        "UPGRADE",
    );
}

#[test]
fn http2_keepalive_needs_interval_and_timeout() {
    let found = issues(policy(
        json!({"connectionPool": {"http": {"http2KeepAlive": {}}}}),
    ));
    let paths: Vec<&str> = found.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            format!("{CP}.http.http2KeepAlive.interval"),
            format!("{CP}.http.http2KeepAlive.timeout")
        ]
    );
    assert!(found[0].message.contains("required"));
}

// ---- outlier detection ----

const OD: &str = "spec.trafficPolicy.outlierDetection";

#[test]
fn consecutive_errors_is_deprecated() {
    assert_warning(
        policy(json!({"outlierDetection": {"consecutiveErrors": 5}})),
        &format!("{OD}.consecutiveErrors"),
        "consecutive5xxErrors",
    );
}

#[test]
fn local_origin_failures_need_split() {
    assert_error(
        policy(json!({"outlierDetection": {"consecutiveLocalOriginFailures": 3}})),
        &format!("{OD}.consecutiveLocalOriginFailures"),
        "splitExternalLocalOriginErrors",
    );
}

#[test]
fn outlier_durations_are_checked() {
    assert_error(
        policy(json!({"outlierDetection": {"interval": "0s"}})),
        &format!("{OD}.interval"),
        "at least 1ms",
    );
    assert_error(
        policy(json!({"outlierDetection": {"baseEjectionTime": "0.5ms"}})),
        &format!("{OD}.baseEjectionTime"),
        "at least 1ms",
    );
}

#[test]
fn outlier_percentages_are_in_range() {
    assert_error(
        policy(json!({"outlierDetection": {"maxEjectionPercent": 101}})),
        &format!("{OD}.maxEjectionPercent"),
        "0..100",
    );
    assert_error(
        policy(json!({"outlierDetection": {"minHealthPercent": -1}})),
        &format!("{OD}.minHealthPercent"),
        "0..100",
    );
}

#[test]
fn outlier_error_codes_are_http_statuses() {
    assert_error(
        policy(json!({"outlierDetection": {"outlierDetectionHttpErrorCodes": [503, 600]}})),
        &format!("{OD}.outlierDetectionHttpErrorCodes[1]"),
        "100..599",
    );
}

// ---- client TLS ----

const TLS: &str = "spec.trafficPolicy.tls";

#[test]
fn mutual_tls_needs_certificate_and_key() {
    assert_error(
        policy(json!({"tls": {"mode": "MUTUAL", "privateKey": "/k.pem"}})),
        &format!("{TLS}.clientCertificate"),
        "MUTUAL",
    );
    assert_error(
        policy(json!({"tls": {"mode": "MUTUAL", "clientCertificate": "/c.pem"}})),
        &format!("{TLS}.privateKey"),
        "MUTUAL",
    );
    assert_clean(policy(
        json!({"tls": {"mode": "MUTUAL", "credentialName": "client"}}),
    ));
}

#[test]
fn credential_name_excludes_certificate_files() {
    assert_error(
        policy(json!({"tls": {"mode": "SIMPLE", "credentialName": "ca",
                              "caCertificates": "/ca.pem"}})),
        &format!("{TLS}.credentialName"),
        "remove",
    );
}

#[test]
fn insecure_skip_verify_excludes_verification_settings() {
    assert_error(
        policy(json!({"tls": {"mode": "SIMPLE", "insecureSkipVerify": true,
                              "subjectAltNames": ["a.com"]}})),
        &format!("{TLS}.insecureSkipVerify"),
        "insecureSkipVerify",
    );
    assert_error(
        policy(
            json!({"tls": {"mode": "MUTUAL", "insecureSkipVerify": true, "credentialName": "c",
                              "caCertificates": "/ca.pem"}}),
        ),
        &format!("{TLS}.insecureSkipVerify"),
        "caCertificates",
    );
    assert_clean(policy(
        json!({"tls": {"mode": "SIMPLE", "insecureSkipVerify": true}}),
    ));
}
