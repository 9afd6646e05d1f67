use serde_json::json;

use super::*;
use crate::diag::Severity;
use crate::validate::{FieldIssue, check};

fn parse(v: serde_json::Value) -> RequestAuthentication {
    serde_json::from_value(v).unwrap()
}

/// Issues of a RequestAuthentication with the single JWT rule `rule`.
fn rule_issues(rule: serde_json::Value) -> Vec<FieldIssue> {
    check(&parse(json!({"jwtRules": [rule]})))
}

#[track_caller]
fn assert_issue(issues: &[FieldIssue], severity: Severity, path: &str, word: &str) {
    assert!(
        issues
            .iter()
            .any(|i| i.path == path && i.severity == severity && i.message.contains(word)),
        "no {severity} at {path} mentioning {word:?} in {issues:#?}"
    );
}

/// Asserts an error at `spec.jwtRules[0].<field>` for `rule`.
#[track_caller]
fn error(rule: serde_json::Value, field: &str, word: &str) {
    let path = format!("spec.jwtRules[0]{field}");
    assert_issue(&rule_issues(rule), Severity::Error, &path, word);
}

#[track_caller]
fn warning(rule: serde_json::Value, field: &str, word: &str) {
    let path = format!("spec.jwtRules[0]{field}");
    assert_issue(&rule_issues(rule), Severity::Warning, &path, word);
}

/// A valid rule with `extra` merged in.
fn rule(extra: serde_json::Value) -> serde_json::Value {
    let mut base =
        json!({"issuer": "issuer-foo", "jwksUri": "https://example.com/.well-known/jwks.json"});
    if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    base
}

#[test]
fn istio_docs_example_deserializes_and_validates_clean() {
    let ra = parse(json!({
        "selector": {"matchLabels": {"app": "httpbin"}},
        "jwtRules": [
            {"issuer": "issuer-foo", "jwksUri": "https://example.com/.well-known/jwks.json"},
            {"issuer": "issuer-bar", "fromHeaders": [{"name": "x-jwt-assertion", "prefix": "Bearer "}],
             "fromParams": ["my_token"], "outputClaimToHeaders": [
                {"header": "x-my-company-jwt-group", "claim": "my-group"},
                {"header": "x-jwt-claim-group", "claim": "nested.key.group"}]}
        ]
    }));
    assert_eq!(
        ra.jwt_rules[1].from_headers[0].prefix.as_deref(),
        Some("Bearer ")
    );
    let issues = check(&ra);
    assert!(issues.is_empty(), "{issues:#?}");
}

#[test]
fn unknown_fields_are_rejected() {
    let err = serde_json::from_value::<RequestAuthentication>(
        json!({"jwtRules": [{"issuer": "a", "jwksUrl": "x"}]}),
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown field `jwksUrl`"), "{err}");
}

#[test]
fn jwks_uri_snake_case_alias_is_accepted() {
    let ra = parse(json!({"jwtRules": [{"issuer": "a", "jwks_uri": "https://x/jwks"}]}));
    assert_eq!(ra.jwt_rules[0].jwks_uri.as_deref(), Some("https://x/jwks"));
}

#[test]
fn required_sub_fields_are_enforced_on_load() {
    assert!(
        serde_json::from_value::<RequestAuthentication>(
            json!({"jwtRules": [{"issuer": "a", "fromHeaders": [{"prefix": "x"}]}]})
        )
        .is_err()
    );
    assert!(
        serde_json::from_value::<RequestAuthentication>(
            json!({"jwtRules": [{"issuer": "a", "outputClaimToHeaders": [{"header": "x"}]}]})
        )
        .is_err()
    );
    assert!(
        serde_json::from_value::<RequestAuthentication>(
            json!({"jwtRules": [{"issuer": "a", "timeout": "5"}]})
        )
        .is_err()
    );
}

#[test]
fn round_trips_a_maximal_spec() {
    let ra = parse(json!({
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}],
        "targetRef": {"kind": "Service", "name": "svc"},
        "selector": {"matchLabels": {"app": "a"}},
        "jwtRules": [{
            "issuer": "https://issuer", "audiences": ["a", "b"],
            "jwksUri": "https://issuer/jwks", "jwks": "{\"keys\":[]}",
            "fromHeaders": [{"name": "x-jwt", "prefix": "Bearer "}, {"name": "x-other"}],
            "fromParams": ["token"], "outputPayloadToHeader": "x-payload",
            "fromCookies": ["session"], "forwardOriginalToken": true,
            "outputClaimToHeaders": [{"header": "x-sub", "claim": "sub"}],
            "timeout": "1.5s", "spaceDelimitedClaims": ["roles"], "presence": "REQUIRED"
        }]
    }));
    let r = &ra.jwt_rules[0];
    assert!(r.forward_original_token);
    assert_eq!(r.presence, Some(JwtPresence::Required));
    assert_eq!(r.timeout.map(|t| t.get().as_millis()), Some(1500));
    let out = serde_json::to_value(&ra).unwrap();
    assert_eq!(parse(out.clone()), ra);
    assert_eq!(out["jwtRules"][0]["jwksUri"], "https://issuer/jwks");
    // Unset fields are skipped, including the proto3 `false`.
    let minimal = serde_json::to_value(parse(json!({"jwtRules": [{"issuer": "a"}]}))).unwrap();
    assert_eq!(minimal, json!({"jwtRules": [{"issuer": "a"}]}));
}

#[test]
fn issuer_required_without_jwks_uri() {
    error(
        json!({"jwks": "{\"keys\":[]}"}),
        ".issuer",
        "issuer is required",
    );
}

#[test]
fn issuer_missing_with_jwks_uri_warns() {
    warning(
        json!({"jwksUri": "https://x/jwks"}),
        ".issuer",
        "any issuer",
    );
}

#[test]
fn audiences_must_not_be_empty() {
    error(
        rule(json!({"audiences": ["a", ""]})),
        ".audiences[1]",
        "must not be empty",
    );
}

#[test]
fn jwks_and_jwks_uri_are_exclusive() {
    error(
        rule(json!({"jwks": "{\"keys\":[]}"})),
        ".jwks",
        "only one of jwks and jwksUri",
    );
}

#[test]
fn jwks_uri_must_be_http_or_https() {
    error(
        rule(json!({"jwksUri": "ftp://example.com/jwks"})),
        ".jwksUri",
        "scheme",
    );
    error(
        rule(json!({"jwksUri": "example.com/jwks"})),
        ".jwksUri",
        "not an absolute URL",
    );
    error(
        rule(json!({"jwksUri": "https:///jwks"})),
        ".jwksUri",
        "no host",
    );
    error(
        rule(json!({"jwksUri": "https://example.com:port/jwks"})),
        ".jwksUri",
        "invalid port",
    );
    error(rule(json!({"jwksUri": ""})), ".jwksUri", "1 to 2048");
    // IPv6 literal hosts with a port are fine.
    let issues = rule_issues(rule(json!({"jwksUri": "https://[::1]:8443/jwks"})));
    assert!(issues.is_empty(), "{issues:#?}");
}

#[test]
fn plain_http_jwks_uri_warns() {
    warning(
        rule(json!({"jwksUri": "http://example.com/jwks"})),
        ".jwksUri",
        "plain http",
    );
}

#[test]
fn inline_jwks_must_parse() {
    let inline = |jwks: &str| json!({"issuer": "a", "jwks": jwks});
    error(inline("{not json"), ".jwks", "not valid JSON");
    error(inline("{\"foo\": 1}"), ".jwks", "JSON Web Key Set");
    let issues = rule_issues(inline(r#"{"kty":"RSA","n":"abc","e":"AQAB"}"#));
    assert!(issues.is_empty(), "{issues:#?}");
}

#[test]
fn inline_jwks_with_private_keys_warns() {
    warning(
        json!({"issuer": "a", "jwks": r#"{"keys":[{"kty":"RSA","n":"a","e":"AQAB"},{"kty":"EC","d":"secret"}]}"#}),
        ".jwks",
        "key 1 in jwks contains private",
    );
}

#[test]
fn from_header_names_are_checked() {
    error(
        rule(json!({"fromHeaders": [{"name": ""}]})),
        ".fromHeaders[0]",
        "must not be empty",
    );
    error(
        rule(json!({"fromHeaders": [{"name": "x jwt"}]})),
        ".fromHeaders[0].name",
        "invalid header name",
    );
}

#[test]
fn authorization_header_without_prefix_warns() {
    warning(
        rule(json!({"fromHeaders": [{"name": "Authorization"}]})),
        ".fromHeaders[0].prefix",
        "Bearer",
    );
}

#[test]
fn from_params_and_cookies_must_not_be_empty() {
    error(
        rule(json!({"fromParams": [""]})),
        ".fromParams[0]",
        "must not be empty",
    );
    error(
        rule(json!({"fromCookies": ["a", ""]})),
        ".fromCookies[1]",
        "must not be empty",
    );
}

#[test]
fn output_payload_header_is_checked() {
    error(
        rule(json!({"outputPayloadToHeader": "x payload"})),
        ".outputPayloadToHeader",
        "invalid header name",
    );
}

#[test]
fn claim_headers_must_be_valid_and_not_reserved() {
    let bad =
        |header: &str| rule(json!({"outputClaimToHeaders": [{"header": header, "claim": "sub"}]}));
    error(
        bad(":path"),
        ".outputClaimToHeaders[0].header",
        "pseudo-header",
    );
    error(bad("Host"), ".outputClaimToHeaders[0].header", "reserved");
    error(
        bad("x.sub"),
        ".outputClaimToHeaders[0].header",
        "invalid header name",
    );
    error(
        bad(""),
        ".outputClaimToHeaders[0].header",
        "must not be empty",
    );
}

#[test]
fn claim_headers_must_be_unique() {
    error(
        rule(json!({"outputClaimToHeaders": [
            {"header": "x-sub", "claim": "sub"}, {"header": "X-Sub", "claim": "iss"}]})),
        ".outputClaimToHeaders[1].header",
        "unique",
    );
}

#[test]
fn claim_must_not_be_empty() {
    error(
        rule(json!({"outputClaimToHeaders": [{"header": "x-sub", "claim": ""}]})),
        ".outputClaimToHeaders[0].claim",
        "must not be empty",
    );
}

#[test]
fn timeout_must_be_a_valid_duration() {
    error(
        rule(json!({"timeout": "500us"})),
        ".timeout",
        "at least 1ms",
    );
    error(
        rule(json!({"timeout": "1001500us"})),
        ".timeout",
        "sub-millisecond",
    );
}

#[test]
fn space_delimited_claims_checked() {
    error(
        rule(json!({"spaceDelimitedClaims": [""]})),
        ".spaceDelimitedClaims[0]",
        "must not be empty",
    );
    let many: Vec<String> = (0..65).map(|i| format!("c{i}")).collect();
    error(
        rule(json!({"spaceDelimitedClaims": many})),
        ".spaceDelimitedClaims",
        "at most 64",
    );
}

#[test]
fn attachment_rules_are_shared_with_authorization_policy() {
    let issues = check(&parse(json!({
        "selector": {"matchLabels": {"app": "a"}},
        "targetRefs": [{"kind": "Service", "name": "svc", "namespace": "other"}]
    })));
    assert_issue(
        &issues,
        Severity::Error,
        "spec.targetRefs",
        "only one of selector",
    );
    assert_issue(
        &issues,
        Severity::Error,
        "spec.targetRefs[0].namespace",
        "cross-namespace",
    );
}
