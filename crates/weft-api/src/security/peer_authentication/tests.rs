use serde_json::json;

use super::*;
use crate::diag::Severity;
use crate::validate::{FieldIssue, check};

fn parse(v: serde_json::Value) -> PeerAuthentication {
    serde_json::from_value(v).unwrap()
}

fn parse_err(v: serde_json::Value) -> String {
    serde_json::from_value::<PeerAuthentication>(v)
        .unwrap_err()
        .to_string()
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

#[test]
fn istio_docs_example_deserializes() {
    let p = parse(json!({
        "selector": {"matchLabels": {"app": "finance"}},
        "mtls": {"mode": "STRICT"},
        "portLevelMtls": {"8080": {"mode": "DISABLE"}}
    }));
    assert_eq!(
        p.mtls,
        Some(MutualTls {
            mode: MtlsMode::Strict
        })
    );
    assert_eq!(p.port_level_mtls[&8080].mode, MtlsMode::Disable);
    assert!(check(&p).is_empty());
    // Namespace-wide, and `mtls: {}` meaning UNSET.
    let p = parse(json!({"mtls": {}}));
    assert!(p.is_namespace_wide());
    assert_eq!(p.mtls.unwrap().mode, MtlsMode::Unset);
}

#[test]
fn port_keys_parse_from_yaml_strings() {
    // YAML integer keys arrive as strings in JSON; JSON text works the same way.
    let p: PeerAuthentication = serde_json::from_str(
        r#"{"selector":{"matchLabels":{"a":"b"}},"portLevelMtls":{"443":{"mode":"STRICT"},"80":{}}}"#,
    )
    .unwrap();
    assert_eq!(
        p.port_level_mtls.keys().copied().collect::<Vec<_>>(),
        [80, 443]
    );
}

#[test]
fn non_numeric_port_key_is_rejected() {
    let err = parse_err(json!({"portLevelMtls": {"http": {"mode": "STRICT"}}}));
    assert!(err.contains("invalid portLevelMtls key \"http\""), "{err}");
    assert!(err.contains("not port names"), "{err}");
    let err = parse_err(json!({"portLevelMtls": {"-1": {}}}));
    assert!(err.contains("invalid portLevelMtls key \"-1\""), "{err}");
    let err = parse_err(json!({"portLevelMtls": {"99999999999": {}}}));
    assert!(err.contains("1..65535"), "{err}");
}

#[test]
fn duplicate_port_keys_are_rejected() {
    let err = parse_err(json!({"portLevelMtls": {"80": {}, "080": {}}}));
    assert!(err.contains("more than once"), "{err}");
}

#[test]
fn empty_port_level_mtls_is_rejected() {
    let err = parse_err(json!({"selector": {"matchLabels": {"a": "b"}}, "portLevelMtls": {}}));
    assert!(err.contains("at least one port"), "{err}");
}

#[test]
fn unknown_fields_and_modes_are_rejected() {
    assert!(
        parse_err(json!({"mtls": {"mode": "STRICT", "strict": true}})).contains("unknown field")
    );
    assert!(parse_err(json!({"mtls": {"mode": "strict"}})).contains("unknown variant"));
    assert!(parse_err(json!({"portLevelMTLS": {}})).contains("unknown field"));
}

#[test]
fn port_level_mtls_requires_a_selector() {
    let issues = check(&parse(
        json!({"portLevelMtls": {"8080": {"mode": "DISABLE"}}}),
    ));
    assert_issue(
        &issues,
        Severity::Error,
        "spec.portLevelMtls",
        "namespace-wide",
    );
    // A selector without labels is still namespace-wide.
    let issues = check(&parse(
        json!({"selector": {}, "portLevelMtls": {"8080": {}}}),
    ));
    assert_issue(
        &issues,
        Severity::Error,
        "spec.portLevelMtls",
        "namespace-wide",
    );
    assert_issue(&issues, Severity::Warning, "spec.selector", "no labels");
}

#[test]
fn port_keys_must_be_in_range() {
    let issues = check(&parse(json!({
        "selector": {"matchLabels": {"app": "a"}},
        "portLevelMtls": {"0": {}, "70000": {}, "8080": {}}
    })));
    assert_issue(&issues, Severity::Error, "spec.portLevelMtls.0", "1..65535");
    assert_issue(
        &issues,
        Severity::Error,
        "spec.portLevelMtls.70000",
        "1..65535",
    );
    assert!(!issues.iter().any(|i| i.path == "spec.portLevelMtls.8080"));
}

#[test]
fn selector_labels_are_checked() {
    let issues = check(&parse(
        json!({"selector": {"matchLabels": {"bad key": "a"}}}),
    ));
    assert_issue(
        &issues,
        Severity::Error,
        "spec.selector.matchLabels",
        "invalid label key",
    );
}

#[test]
fn round_trips_a_maximal_spec() {
    let p = parse(json!({
        "selector": {"matchLabels": {"app": "finance", "version": "v1"}},
        "mtls": {"mode": "PERMISSIVE"},
        "portLevelMtls": {"8080": {"mode": "DISABLE"}, "9090": {"mode": "STRICT"}, "7070": {"mode": "UNSET"}}
    }));
    let out = serde_json::to_value(&p).unwrap();
    assert_eq!(out["portLevelMtls"]["8080"], json!({"mode": "DISABLE"}));
    assert_eq!(parse(out), p);
    assert_eq!(
        serde_json::to_value(PeerAuthentication::default()).unwrap(),
        json!({})
    );
}

#[test]
fn bad_port_key_is_reported_at_its_path_by_the_loader() {
    let err = crate::meta::Resource::from_value(
        crate::meta::Kind::PeerAuthentication,
        json!({
            "apiVersion": "security.istio.io/v1",
            "kind": "PeerAuthentication",
            "metadata": {"name": "default"},
            "spec": {"selector": {"matchLabels": {"app": "a"}}, "portLevelMtls": {"http": {}}}
        }),
    )
    .unwrap_err();
    assert!(err.path.starts_with("spec.portLevelMtls"), "{err}");
    assert!(err.message.contains("not port names"), "{err}");
}
