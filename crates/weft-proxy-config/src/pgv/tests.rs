//! One test per rule kind: real Envoy messages where a field carries the rule, hand-built
//! `validate.FieldRules` where no Envoy field does (`int64`, `contains`...).

use prost_reflect::{Kind, Value as Pb};
use serde_json::{Value, json};

use super::{Extensions, Profile, Walker, check};
use crate::{
    descriptors,
    parse::decode::{Source, decode},
};

/// Validates `json` as a `type_name`: `Ok` or `path: message`.
fn run(type_name: &str, json: Value, profile: Profile) -> Result<(), String> {
    let desc = descriptors::message(type_name).unwrap();
    let msg = decode(&desc, &json, Source::Json).unwrap();
    check(&msg, profile).map_err(|v| format!("{}: {}", v.path(), v.message))
}

fn passes(type_name: &str, json: Value) {
    if let Err(e) = run(type_name, json.clone(), Profile::Envoy) {
        panic!("{type_name} {json} should pass, got {e}");
    }
}

fn fails(type_name: &str, json: Value, want: &str) {
    match run(type_name, json.clone(), Profile::Envoy) {
        Ok(()) => panic!("{type_name} {json} should fail with {want:?}"),
        Err(e) => assert_eq!(e, want, "{type_name} {json}"),
    }
}

/// Applies hand-written `validate.FieldRules` to one value.
fn rule(rules: Value, kind: Kind, value: Pb) -> Result<(), String> {
    let desc = descriptors::message("validate.FieldRules").unwrap();
    let rules = decode(&desc, &rules, Source::Json).unwrap();
    let mut walker = Walker {
        ext: Extensions::load().unwrap(),
        profile: Profile::Strict,
        path: Vec::new(),
    };
    walker
        .singular(&kind, &rules, &value, true)
        .map_err(|v| v.message)
}

const SOCKET: &str = "envoy.config.core.v3.SocketAddress";

#[test]
fn message_required() {
    let t = "envoy.config.core.v3.HeaderValueOption";
    fails(t, json!({}), "header: is required");
    passes(t, json!({"header": {"key": "x", "value": "y"}}));
}

#[test]
fn uint32_lte() {
    fails(
        SOCKET,
        json!({"address": "a", "port_value": 70000}),
        "port_value: value 70000 must be <= 65535",
    );
    passes(SOCKET, json!({"address": "a", "port_value": 65535}));
}

#[test]
fn uint32_gte_and_lt() {
    let t = "envoy.config.route.v3.DirectResponseAction";
    fails(
        t,
        json!({"status": 600}),
        "status: value 600 must be >= 200 and < 600",
    );
    fails(
        t,
        json!({"status": 199}),
        "status: value 199 must be >= 200 and < 600",
    );
    passes(t, json!({"status": 200}));
}

#[test]
fn scalar_rules_apply_to_unset_proto3_fields_wrapper_rules_only_when_set() {
    fails(
        "envoy.config.route.v3.DirectResponseAction",
        json!({}),
        "status: value 0 must be >= 200 and < 600",
    );
    // tokens_per_fill is a UInt32Value with uint32.gt: 0.
    let t = "envoy.type.v3.TokenBucket";
    fails(
        t,
        json!({"fill_interval": "1s", "tokens_per_fill": 0}),
        "tokens_per_fill: value 0 must be > 0",
    );
    passes(t, json!({"fill_interval": "1s"}));
}

#[test]
fn uint64_on_a_wrapper_only_when_set() {
    let t = "envoy.config.core.v3.UdpSocketConfig";
    fails(
        t,
        json!({"max_rx_datagram_size": 65536}),
        "max_rx_datagram_size: value 65536 must be > 0 and < 65536",
    );
    passes(t, json!({}));
}

#[test]
fn int32_range() {
    let t = "envoy.extensions.filters.http.thrift_to_metadata.v3.FieldSelector";
    fails(
        t,
        json!({"name": "f", "id": 40000}),
        "id: value 40000 must be >= -32768 and <= 32767",
    );
    passes(t, json!({"name": "f", "id": -5}));
}

#[test]
fn int64_const_in_not_in_and_ranges() {
    let r = |rules: Value, v: i64| rule(json!({"int64": rules}), Kind::Int64, Pb::I64(v));
    assert_eq!(
        r(json!({"const": 5}), 4),
        Err("value 4 must equal 5".into())
    );
    assert_eq!(
        r(json!({"in": [1, 2]}), 3),
        Err("value 3 must be one of [1, 2]".into())
    );
    assert_eq!(
        r(json!({"not_in": [3]}), 3),
        Err("value 3 is not allowed".into())
    );
    assert_eq!(
        r(json!({"gt": 10, "lt": 5}), 7),
        Err("value 7 must be < 5 or > 10".into())
    );
    assert_eq!(r(json!({"gt": 10, "lt": 5}), 11), Ok(()));
    assert_eq!(
        r(json!({"gte": -3}), -4),
        Err("value -4 must be >= -3".into())
    );
    assert_eq!(r(json!({"gt": 0, "ignore_empty": true}), 0), Ok(()));
}

#[test]
fn double_range() {
    let t = "envoy.type.v3.Percent";
    fails(
        t,
        json!({"value": 100.5}),
        "value: value 100.5 must be >= 0 and <= 100",
    );
    fails(
        t,
        json!({"value": -1}),
        "value: value -1 must be >= 0 and <= 100",
    );
    passes(t, json!({"value": 99.9}));
}

#[test]
fn duration_required_and_gt() {
    let t = "envoy.config.core.v3.HealthCheck";
    let base = json!({"interval": "1s", "unhealthy_threshold": 1, "healthy_threshold": 1, "tcp_health_check": {}});
    let with = |timeout: Value| {
        let mut v = base.clone();
        v["timeout"] = timeout;
        v
    };
    fails(t, base.clone(), "timeout: is required");
    fails(t, with(json!("0s")), "timeout: value 0s must be > 0s");
    passes(t, with(json!("0.5s")));
}

#[test]
fn duration_lt_gte_and_inverted_ranges() {
    let b = "envoy.config.bootstrap.v3.Bootstrap";
    fails(
        b,
        json!({"stats_flush_interval": "300s"}),
        "stats_flush_interval: value 300s must be >= 0.001s and < 300s",
    );
    passes(b, json!({"stats_flush_interval": "5s"}));
    // lte 0s, gte 1ms: "zero (disabled) or at least 1ms".
    let q = "envoy.config.core.v3.QuicKeepAliveSettings";
    fails(
        q,
        json!({"initial_interval": "0.0005s"}),
        "initial_interval: value 0.0005s must be <= 0s or >= 0.001s",
    );
    passes(q, json!({"initial_interval": "0s"}));
    passes(q, json!({"initial_interval": "2s"}));
}

#[test]
fn envoy_rejects_negative_and_huge_durations_everywhere() {
    let t = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
    let hcm =
        |idle: &str| json!({"stat_prefix": "s", "route_config": {}, "stream_idle_timeout": idle});
    fails(
        t,
        hcm("-1s"),
        "stream_idle_timeout: Envoy rejects negative durations",
    );
    fails(
        t,
        hcm("9223372036s"),
        "stream_idle_timeout: duration 9223372036s is out of range: Envoy allows at most 9223372035s",
    );
    passes(t, hcm("9223372035.999999999s"));
}

#[test]
fn string_lengths() {
    fails(
        SOCKET,
        json!({"port_value": 1}),
        "address: must not be empty",
    );
    let t = "envoy.extensions.filters.http.api_key_auth.v3.KeySource";
    fails(
        t,
        json!({"query": "q".repeat(1025)}),
        "query: value must be at most 1024 characters long (is 1025)",
    );
    // Lengths count characters, byte limits count UTF-8 bytes.
    passes(t, json!({"query": "é".repeat(1024)}));
    let m = "envoy.config.metrics.v3.TagSpecifier";
    fails(
        m,
        json!({"regex": "é".repeat(513)}),
        "regex: value must be at most 1024 bytes long (is 1026)",
    );
}

#[test]
fn string_prefix_suffix_and_ignore_empty() {
    let t = "envoy.config.route.v3.RateLimit.HitsAddend";
    fails(
        t,
        json!({"format": "x%"}),
        "format: value \"x%\" must start with \"%\"",
    );
    fails(
        t,
        json!({"format": "%x"}),
        "format: value \"%x\" must end with \"%\"",
    );
    passes(t, json!({"format": "%DYNAMIC_METADATA(x)%"}));
    passes(t, json!({"format": ""}));
}

#[test]
fn string_contains_const_len_and_not_contains() {
    let r =
        |rules: Value, s: &str| rule(json!({"string": rules}), Kind::String, Pb::String(s.into()));
    assert_eq!(
        r(json!({"contains": "mesh"}), "weft"),
        Err("value \"weft\" must contain \"mesh\"".into())
    );
    assert_eq!(
        r(json!({"not_contains": "ef"}), "weft"),
        Err("value \"weft\" must not contain \"ef\"".into())
    );
    assert_eq!(
        r(json!({"const": "a"}), "b"),
        Err("value \"b\" must equal \"a\"".into())
    );
    assert_eq!(
        r(json!({"len": 2}), "abc"),
        Err("value \"abc\" must be exactly 2 characters long".into())
    );
    assert_eq!(
        r(json!({"min_bytes": 4}), "abc"),
        Err("value \"abc\" must be at least 4 bytes long".into())
    );
    assert_eq!(
        r(json!({"hostname": true}), "-bad.example"),
        Err("value \"-bad.example\" must be a valid hostname".into())
    );
    assert_eq!(
        r(json!({"ipv4": true}), "::1"),
        Err("value \"::1\" must be a valid IPv4 address".into())
    );
    assert_eq!(r(json!({"address": true}), "::1"), Ok(()));
}

#[test]
fn string_in_and_pattern() {
    let t = "envoy.config.core.v3.SchemeHeaderTransformation";
    fails(
        t,
        json!({"scheme_to_overwrite": "ftp"}),
        "scheme_to_overwrite: value \"ftp\" must be one of [\"http\", \"https\"]",
    );
    passes(t, json!({"scheme_to_overwrite": "https"}));
    let m = "envoy.config.route.v3.RouteMatch";
    fails(
        m,
        json!({"path_separated_prefix": "/a/"}),
        "path_separated_prefix: value \"/a/\" must match the pattern \"^[^?#]+[^?#/]$\"",
    );
    passes(m, json!({"path_separated_prefix": "/a"}));
}

#[test]
fn well_known_http_header_name_and_value() {
    // Not strict: only NUL, CR and LF are refused.
    let h = "envoy.config.core.v3.HeaderValue";
    fails(
        h,
        json!({"key": "x\nb"}),
        "key: value \"x\\nb\" must be a valid HTTP header (no NUL, CR or LF)",
    );
    passes(h, json!({"key": "odd name"}));
    // Strict (the default): RFC 7230 tokens for names, no control characters in values.
    let s = "envoy.extensions.filters.http.mcp_router.v3.HeaderSource";
    fails(
        s,
        json!({"name": "odd name"}),
        "name: value \"odd name\" must be a valid HTTP header name",
    );
    passes(s, json!({"name": ":authority"}));
    let v = "envoy.config.core.v3.HealthCheck.HttpHealthCheck";
    fails(
        v,
        json!({"path": "/", "host": "a\u{1}b"}),
        "host: value \"a\\u{1}b\" must be a valid HTTP header value",
    );
    passes(v, json!({"path": "/", "host": "a b"}));
}

#[test]
fn repeated_min_max_items_and_items() {
    let vh = "envoy.config.route.v3.VirtualHost";
    fails(
        vh,
        json!({"name": "v", "domains": []}),
        "domains: must have at least 1 item(s), has 0",
    );
    fails(
        vh,
        json!({"name": "v", "domains": ["ok", "x\ny"]}),
        "domains[1]: value \"x\\ny\" must be a valid HTTP header (no NUL, CR or LF)",
    );
    passes(vh, json!({"name": "v", "domains": ["*"]}));
    let lr = "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit";
    let headers: Vec<Value> = (0..11)
        .map(|i| json!({"header": {"key": format!("x-{i}"), "value": "v"}}))
        .collect();
    fails(
        lr,
        json!({"stat_prefix": "s", "response_headers_to_add": headers}),
        "response_headers_to_add: must have at most 10 item(s), has 11",
    );
    let tlv = "envoy.config.core.v3.ProxyProtocolPassThroughTLVs";
    fails(
        tlv,
        json!({"tlv_type": [1, 300]}),
        "tlv_type[1]: value 300 must be < 256",
    );
}

#[test]
fn repeated_unique() {
    let t = "envoy.config.metrics.v3.HistogramBucketSettings";
    let m = json!({"safe_regex": {"regex": ".*"}});
    fails(
        t,
        json!({"match": m, "buckets": [1.0, 2.0, 1.0]}),
        "buckets[2]: repeats an earlier item; items must be unique",
    );
    passes(t, json!({"match": m, "buckets": [1.0, 2.0]}));
}

#[test]
fn map_min_pairs() {
    let t = "envoy.config.common.matcher.v3.Matcher.MatcherTree.MatchMap";
    fails(t, json!({}), "map: must have at least 1 entr(ies), has 0");
}

#[test]
fn map_keys_and_values_only_in_the_strict_profile() {
    // PGV's C++ generator leaves map key/value rules unimplemented, so Envoy accepts this.
    let t = "envoy.config.core.v3.Metadata";
    let v = json!({"filter_metadata": {"": {}, "ok": {}}});
    passes(t, v.clone());
    assert_eq!(
        run(t, v, Profile::Strict),
        Err("filter_metadata.: key must not be empty".into())
    );
    let r = rule(
        json!({"map": {"min_pairs": 1}}),
        Kind::String,
        Pb::String("x".into()),
    );
    assert_eq!(r, Ok(()), "map rules on a non-map value are ignored");
}

#[test]
fn enum_defined_only_and_not_in() {
    fails(
        SOCKET,
        json!({"address": "a", "port_value": 1, "protocol": 7}),
        "protocol: value 7 is not a defined Protocol value (one of TCP, UDP)",
    );
    let t = "envoy.config.core.v3.HealthCheck.HttpHealthCheck";
    fails(
        t,
        json!({"path": "/", "method": "CONNECT"}),
        "method: value CONNECT is not allowed here",
    );
    passes(t, json!({"path": "/", "method": "GET"}));
}

#[test]
fn bytes_lengths() {
    let t = "envoy.config.core.v3.HeaderValue";
    let b64 = |n: usize| "A".repeat(n / 3 * 4);
    fails(
        t,
        json!({"key": "k", "raw_value": b64(16386)}),
        "raw_value: must be at most 16384 bytes long (is 16386)",
    );
    passes(t, json!({"key": "k", "raw_value": b64(300)}));
    let r = |rules: Value, b: &[u8]| {
        rule(
            json!({"bytes": rules}),
            Kind::Bytes,
            Pb::Bytes(b.to_vec().into()),
        )
    };
    assert_eq!(
        r(json!({"min_len": 2}), b"a"),
        Err("must be at least 2 bytes long (is 1)".into())
    );
    assert_eq!(
        r(json!({"ipv4": true}), b"abc"),
        Err("must be an IPv4 address (4 bytes)".into())
    );
}

#[test]
fn oneof_required() {
    let t = "envoy.config.route.v3.Route";
    let err = run(t, json!({"match": {"prefix": "/"}}), Profile::Envoy).unwrap_err();
    assert!(
        err.starts_with(": one of \"route\", \"redirect\", \"direct_response\""),
        "{err}"
    );
    passes(
        t,
        json!({"match": {"prefix": "/"}, "route": {"cluster": "c"}}),
    );
}

#[test]
fn any_required_and_payloads_are_validated() {
    let t = "envoy.config.core.v3.TypedExtensionConfig";
    fails(t, json!({"name": "x"}), "typed_config: is required");
    let payload = json!({"@type": "type.googleapis.com/envoy.config.core.v3.SocketAddress", "address": "a", "port_value": 70000});
    fails(
        t,
        json!({"name": "x", "typed_config": payload}),
        "typed_config.port_value: value 70000 must be <= 65535",
    );
    let typed_struct = json!({"@type": "type.googleapis.com/xds.type.v3.TypedStruct",
        "type_url": "type.googleapis.com/envoy.config.core.v3.SocketAddress",
        "value": {"address": "a", "port_value": 70000}});
    fails(
        t,
        json!({"name": "x", "typed_config": typed_struct}),
        "typed_config.value.port_value: value 70000 must be <= 65535",
    );
}

#[test]
fn bool_const() {
    let t = "envoy.config.listener.v3.ListenerFilterChainMatchPredicate";
    fails(
        t,
        json!({"any_match": false}),
        "any_match: value false must be true",
    );
    passes(t, json!({"any_match": true}));
}

/// The hand-written well-known header checks agree with PGV's regular expressions.
#[test]
fn well_known_header_checks_match_pgvs_regexes() {
    let name = regex::Regex::new(r"^:?[0-9a-zA-Z!#$%&'*+\-.^_|~`]+$").unwrap();
    let value = regex::Regex::new(r"^[^\x00-\x08\x0A-\x1F\x7F]*$").unwrap();
    let mut samples: Vec<String> = ["", ":", "::a", ":path", "x-b3", "a b", "é", "a\tb", "ok~`|"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for c in (0u32..0x100)
        .chain([0x2028, 0xFEFF, 0x1F600])
        .filter_map(char::from_u32)
    {
        samples.push(c.to_string());
        samples.push(format!("a{c}"));
        samples.push(format!(":{c}b"));
    }
    for s in &samples {
        assert_eq!(super::is_header_name(s), name.is_match(s), "name {s:?}");
        assert_eq!(super::is_header_value(s), value.is_match(s), "value {s:?}");
    }
}
