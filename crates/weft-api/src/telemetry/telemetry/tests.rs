use serde_json::{Value, json};

use super::*;
use crate::diag::Severity;
use crate::validate::{FieldIssue, check};

fn tel(v: Value) -> Telemetry {
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

fn issues(v: Value) -> Vec<FieldIssue> {
    check(&tel(v))
}

#[test]
fn realistic_telemetries_are_valid() {
    for v in [
        json!({"tracing": [{"providers": [{"name": "zipkin"}], "randomSamplingPercentage": 10.5,
            "customTags": {"cluster": {"environment": {"name": "CLUSTER_ID", "defaultValue": "k"}},
                           "user": {"header": {"name": "x-user"}}}}]}),
        json!({"selector": {"matchLabels": {"app": "reviews"}},
            "metrics": [{"providers": [{"name": "prometheus"}], "overrides": [
                {"match": {"metric": "REQUEST_COUNT", "mode": "CLIENT"},
                 "tagOverrides": {"request_host": {"value": "request.host"},
                                  "response_flags": {"operation": "REMOVE"}}},
                {"match": {"customMetric": "my_metric"}, "disabled": true}],
                "reportingInterval": "15s"}]}),
        json!({"targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"},
                              {"kind": "Service", "group": "", "name": "reviews"}],
            "accessLogging": [{"providers": [{"name": "envoy"}], "match": {"mode": "SERVER"},
                "filter": {"expression": "response.code >= 400 || (has(request.useragent) && request.useragent.startsWith(\"curl(\"))"}}]}),
    ] {
        let issues = issues(v.clone());
        assert!(issues.is_empty(), "{v}: {issues:#?}");
    }
}

#[test]
fn selector_and_target_refs_are_exclusive() {
    let issues = issues(json!({
        "selector": {"matchLabels": {"app": "a"}},
        "targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"}]
    }));
    assert_issue(&issues, Severity::Error, "spec", "only one of");
}

#[test]
fn empty_selector_warns() {
    assert_issue(
        &issues(json!({"selector": {}})),
        Severity::Warning,
        "spec.selector",
        "every workload",
    );
}

#[test]
fn selector_rejects_wildcards() {
    let issues = issues(json!({"selector": {"matchLabels": {"app*": "a", "b": "x*"}}}));
    assert_issue(
        &issues,
        Severity::Error,
        "spec.selector.matchLabels",
        "selector keys: \"app*\"",
    );
    assert_issue(
        &issues,
        Severity::Error,
        "spec.selector.matchLabels",
        "wildcards",
    );
}

#[test]
fn target_ref_is_checked_and_discouraged() {
    let issues = issues(json!({"targetRef": {
        "kind": "Deployment", "group": "apps", "name": "", "namespace": "other"
    }}));
    assert_issue(&issues, Severity::Warning, "spec.targetRef", "targetRefs");
    assert_issue(
        &issues,
        Severity::Error,
        "spec.targetRef.name",
        "must be set",
    );
    assert_issue(
        &issues,
        Severity::Error,
        "spec.targetRef.namespace",
        "cross-namespace",
    );
    assert_issue(
        &issues,
        Severity::Error,
        "spec.targetRef.kind",
        "apps/Deployment",
    );
}

#[test]
fn target_refs_kinds_are_checked() {
    let issues = issues(json!({"targetRefs": [
        {"kind": "ServiceEntry", "group": "networking.istio.io", "name": "ok"},
        {"kind": "Gateway", "group": "networking.istio.io", "name": "istio-gw"}
    ]}));
    assert_issue(
        &issues,
        Severity::Error,
        "spec.targetRefs[1].kind",
        "cannot target",
    );
    assert!(
        !issues
            .iter()
            .any(|i| i.path.starts_with("spec.targetRefs[0]"))
    );
}

#[test]
fn sampling_percentage_is_bounded() {
    assert_issue(
        &issues(json!({"tracing": [{"randomSamplingPercentage": 100.5}]})),
        Severity::Error,
        "spec.tracing[0].randomSamplingPercentage",
        "0..100",
    );
}

#[test]
fn several_tracing_configs_or_providers_warn() {
    let issues = issues(json!({"tracing": [
        {"providers": [{"name": "a"}, {"name": "b"}]}, {}
    ]}));
    assert_issue(&issues, Severity::Warning, "spec.tracing", "first tracing");
    assert_issue(
        &issues,
        Severity::Warning,
        "spec.tracing[0].providers",
        "one tracing provider",
    );
}

#[test]
fn provider_names_are_required() {
    let issues = issues(json!({
        "tracing": [{"providers": [{"name": ""}]}],
        "metrics": [{"providers": [{}]}],
        "accessLogging": [{"providers": [{"name": "envoy"}, {"name": ""}]}]
    }));
    assert_issue(
        &issues,
        Severity::Error,
        "spec.tracing[0].providers[0].name",
        "must not be empty",
    );
    assert_issue(
        &issues,
        Severity::Error,
        "spec.metrics[0].providers[0].name",
        "must not be empty",
    );
    assert_issue(
        &issues,
        Severity::Error,
        "spec.accessLogging[0].providers[1].name",
        "must not be empty",
    );
}

#[test]
fn custom_tags_need_their_values() {
    let issues = issues(json!({"tracing": [{"customTags": {
        "": {"literal": {"value": "x"}},
        "lit": {"literal": {"value": ""}},
        "env": {"environment": {"defaultValue": "d"}},
        "hdr": {"header": {"name": ""}},
        "fmt": {"formatter": {"value": ""}}
    }}]}));
    let base = "spec.tracing[0].customTags";
    assert_issue(&issues, Severity::Error, base, "tag name");
    assert_issue(
        &issues,
        Severity::Error,
        &format!("{base}.lit.literal.value"),
        "literal",
    );
    assert_issue(
        &issues,
        Severity::Error,
        &format!("{base}.env.environment.name"),
        "variable",
    );
    assert_issue(
        &issues,
        Severity::Error,
        &format!("{base}.hdr.header.name"),
        "header",
    );
    assert_issue(
        &issues,
        Severity::Error,
        &format!("{base}.fmt.formatter.value"),
        "formatter",
    );
}

#[test]
fn upsert_needs_a_value() {
    let issues = issues(json!({"metrics": [{"overrides": [{"tagOverrides": {
        "a": {"operation": "UPSERT"}, "b": {"value": ""}
    }}]}]}));
    let base = "spec.metrics[0].overrides[0].tagOverrides";
    assert_issue(
        &issues,
        Severity::Error,
        &format!("{base}.a.value"),
        "UPSERT",
    );
    assert_issue(
        &issues,
        Severity::Error,
        &format!("{base}.b.value"),
        "UPSERT",
    );
}

#[test]
fn remove_must_not_carry_a_value() {
    let issues = issues(json!({"metrics": [{"overrides": [{"tagOverrides": {
        "a": {"operation": "REMOVE", "value": "request.host"}
    }}]}]}));
    assert_issue(
        &issues,
        Severity::Error,
        "spec.metrics[0].overrides[0].tagOverrides.a.value",
        "REMOVE",
    );
}

#[test]
fn empty_tag_name_warns() {
    assert_issue(
        &issues(json!({"metrics": [{"overrides": [{"tagOverrides": {
            "": {"operation": "REMOVE"}
        }}]}]})),
        Severity::Warning,
        "spec.metrics[0].overrides[0].tagOverrides",
        "tag name",
    );
}

#[test]
fn custom_metric_must_not_be_empty() {
    assert_issue(
        &issues(json!({"metrics": [{"overrides": [{"match": {"customMetric": ""}}]}]})),
        Severity::Error,
        "spec.metrics[0].overrides[0].match.customMetric",
        "customMetric",
    );
}

#[test]
fn reporting_interval_is_at_least_1ms() {
    assert_issue(
        &issues(json!({"metrics": [{"reportingInterval": "500us"}]})),
        Severity::Error,
        "spec.metrics[0].reportingInterval",
        "1ms",
    );
    assert!(
        serde_json::from_value::<Telemetry>(json!({"metrics": [{"reportingInterval": "5"}]}))
            .is_err()
    );
}

#[test]
fn access_log_filter_must_parse() {
    let path = "spec.accessLogging[0].filter.expression";
    for (expr, word) in [
        ("", "empty"),
        ("response.code >= 400)", "unmatched"),
        ("has(request.headers['x'", "unclosed"),
        ("request.host == \"a", "unterminated"),
    ] {
        assert_issue(
            &issues(json!({"accessLogging": [{"filter": {"expression": expr}}]})),
            Severity::Error,
            path,
            word,
        );
    }
}

#[test]
fn oneofs_reject_two_members() {
    let err = serde_json::from_value::<MetricSelector>(
        json!({"metric": "REQUEST_COUNT", "customMetric": "x"}),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("only one of"), "{err}");
    let err = serde_json::from_value::<CustomTag>(
        json!({"literal": {"value": "a"}, "header": {"name": "b"}}),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("exactly one of"), "{err}");
    let err = serde_json::from_value::<CustomTag>(json!({}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("exactly one of"), "{err}");
}

#[test]
fn unknown_fields_and_values_are_rejected() {
    assert!(serde_json::from_value::<Telemetry>(json!({"tracings": []})).is_err());
    assert!(
        serde_json::from_value::<Telemetry>(json!({"tracing": [{"randomSamplingPercent": 1}]}))
            .is_err()
    );
    assert!(
        serde_json::from_value::<Telemetry>(
            json!({"metrics": [{"overrides": [{"match": {"metric": "REQUEST_COUNTS"}}]}]})
        )
        .is_err()
    );
    assert!(
        serde_json::from_value::<CustomTag>(json!({"literal": {"value": "a", "extra": 1}}))
            .is_err()
    );
    assert!(serde_json::from_value::<CustomTag>(json!({"metadata": {}})).is_err());
}

#[test]
fn maximal_spec_round_trips() {
    let v = json!({
        "selector": {"matchLabels": {"app": "reviews"}},
        "targetRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"},
        "targetRefs": [{"kind": "Service", "name": "reviews"}],
        "tracing": [{
            "match": {"mode": "CLIENT"},
            "providers": [{"name": "zipkin"}],
            "randomSamplingPercentage": 12.5,
            "disableSpanReporting": false,
            "customTags": {
                "env": {"environment": {"name": "POD_NAME", "defaultValue": "unknown"}},
                "fmt": {"formatter": {"value": "%REQUESTED_SERVER_NAME%"}},
                "hdr": {"header": {"name": "x-user", "defaultValue": "anon"}},
                "lit": {"literal": {"value": "v1"}}
            },
            "useRequestIdForTraceSampling": false,
            "enableIstioTags": true,
            "disableContextPropagation": true
        }],
        "metrics": [{
            "providers": [{"name": "prometheus"}],
            "overrides": [
                {"match": {"metric": "TCP_SENT_BYTES", "mode": "SERVER"}, "disabled": true,
                 "tagOverrides": {"a": {"operation": "REMOVE"},
                                  "b": {"operation": "UPSERT", "value": "request.host"}}},
                {"match": {"customMetric": "my_metric", "mode": "CLIENT_AND_SERVER"}}
            ],
            "reportingInterval": "15s"
        }],
        "accessLogging": [{
            "match": {"mode": "SERVER"},
            "providers": [{"name": "envoy"}],
            "disabled": false,
            "filter": {"expression": "response.code >= 500"}
        }]
    });
    let spec = tel(v.clone());
    let out = serde_json::to_value(&spec).unwrap();
    assert_eq!(out, v);
    assert_eq!(tel(out), spec);
    assert_eq!(
        spec.metrics[0].overrides[0].r#match,
        Some(MetricSelector {
            metric: Some(MetricMatch::Metric(IstioMetric::TcpSentBytes)),
            mode: Some(WorkloadMode::Server),
        })
    );
}
