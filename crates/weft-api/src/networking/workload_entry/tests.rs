use serde_json::{Value, json};

use super::*;
use crate::diag::Severity;
use crate::validate::{FieldIssue, check};

fn we(v: Value) -> WorkloadEntry {
    serde_json::from_value(v).unwrap()
}

fn wg(v: Value) -> WorkloadGroup {
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

/// A valid group; each probe test swaps the probe.
fn group_with_probe(probe: Value) -> WorkloadGroup {
    wg(json!({
        "metadata": {"labels": {"app": "reviews"}},
        "template": {"serviceAccount": "reviews"},
        "probe": probe
    }))
}

#[test]
fn realistic_workload_entries_are_valid() {
    for v in [
        json!({"address": "10.0.0.7", "labels": {"app": "reviews", "version": "v1"},
               "serviceAccount": "bookinfo-reviews", "network": "vm-net",
               "locality": "us-east1/us-east1-b", "weight": 10, "ports": {"http": 9080}}),
        json!({"address": "vm1.corp.example.com", "labels": {"app": "db"}}),
        json!({"address": "2001:db8::7"}),
        json!({"address": "unix:///var/run/app.sock"}),
    ] {
        let issues = check(&we(v.clone()));
        assert!(issues.is_empty(), "{v}: {issues:#?}");
    }
}

#[test]
fn address_is_required_unless_network_is_set() {
    assert_issue(
        &check(&we(json!({"labels": {"app": "a"}}))),
        Severity::Error,
        "spec.address",
        "required",
    );
    let issues = check(&we(json!({"network": "remote"})));
    assert_issue(&issues, Severity::Warning, "spec.address", "remote");
    assert!(issues.iter().all(|i| i.severity == Severity::Warning));
}

#[test]
fn address_must_be_ip_or_host_name() {
    assert_issue(
        &check(&we(json!({"address": "vm_1.example.com"}))),
        Severity::Error,
        "spec.address",
        "not a valid IP address or host name",
    );
    assert_issue(
        &check(&we(json!({"address": "10.0.0.256"}))),
        Severity::Error,
        "spec.address",
        "all-numeric",
    );
}

#[test]
fn unix_address_must_be_absolute() {
    assert_issue(
        &check(&we(json!({"address": "unix://relative.sock"}))),
        Severity::Error,
        "spec.address",
        "absolute path",
    );
}

#[test]
fn unix_address_must_not_set_ports() {
    assert_issue(
        &check(&we(
            json!({"address": "unix:///app.sock", "ports": {"http": 80}}),
        )),
        Severity::Error,
        "spec.ports",
        "must not set ports",
    );
}

#[test]
fn port_names_and_values_are_checked() {
    let issues = check(&we(
        json!({"address": "10.0.0.1", "ports": {"http_api": 80, "grpc": 70000}}),
    ));
    assert_issue(&issues, Severity::Error, "spec.ports.http_api", "DNS-1123");
    assert_issue(&issues, Severity::Error, "spec.ports.grpc", "range");
}

#[test]
fn labels_are_checked() {
    assert_issue(
        &check(&we(json!({"address": "10.0.0.1", "labels": {"/app": "x"}}))),
        Severity::Error,
        "spec.labels",
        "invalid label key",
    );
}

#[test]
fn service_account_must_be_a_kubernetes_name() {
    assert_issue(
        &check(&we(
            json!({"address": "10.0.0.1", "serviceAccount": "Reviews_SA"}),
        )),
        Severity::Warning,
        "spec.serviceAccount",
        "service account",
    );
}

#[test]
fn workload_group_needs_a_template() {
    assert_issue(
        &check(&wg(json!({"metadata": {"labels": {"app": "a"}}}))),
        Severity::Error,
        "spec.template",
        "required",
    );
}

#[test]
fn template_address_and_labels_warn() {
    let issues = check(&wg(
        json!({"template": {"address": "10.0.0.1", "labels": {"app": "a"}}}),
    ));
    assert_issue(
        &issues,
        Severity::Warning,
        "spec.template.address",
        "ignored",
    );
    assert_issue(
        &issues,
        Severity::Warning,
        "spec.template.labels",
        "metadata.labels",
    );
    assert!(issues.iter().all(|i| i.severity == Severity::Warning));
}

#[test]
fn template_ports_are_checked() {
    assert_issue(
        &check(&wg(json!({"template": {"ports": {"http": 0}}}))),
        Severity::Error,
        "spec.template.ports.http",
        "range",
    );
}

#[test]
fn group_metadata_labels_are_checked() {
    assert_issue(
        &check(&wg(
            json!({"metadata": {"labels": {"app": "a b"}}, "template": {}}),
        )),
        Severity::Error,
        "spec.metadata.labels",
        "invalid value",
    );
}

#[test]
fn probe_numbers_must_be_non_negative() {
    let issues = check(&group_with_probe(json!({
        "periodSeconds": -1, "failureThreshold": -3, "tcpSocket": {"port": 80}
    })));
    assert_issue(
        &issues,
        Severity::Error,
        "spec.probe.periodSeconds",
        "non-negative",
    );
    assert_issue(
        &issues,
        Severity::Error,
        "spec.probe.failureThreshold",
        "non-negative",
    );
}

#[test]
fn probe_needs_a_method() {
    assert_issue(
        &check(&group_with_probe(json!({"periodSeconds": 5}))),
        Severity::Error,
        "spec.probe",
        "httpGet",
    );
}

#[test]
fn http_probe_rules() {
    let issues = check(&group_with_probe(json!({"httpGet": {
        "path": "/ready", "port": 0, "scheme": "https",
        "httpHeaders": [{"name": "x_token", "value": "a"}, {"name": "", "value": "b"}]
    }})));
    assert_issue(&issues, Severity::Error, "spec.probe.httpGet.port", "range");
    assert_issue(
        &issues,
        Severity::Error,
        "spec.probe.httpGet.scheme",
        "HTTPS",
    );
    assert_issue(
        &issues,
        Severity::Error,
        "spec.probe.httpGet.httpHeaders[0].name",
        "x_token",
    );
    assert_issue(
        &issues,
        Severity::Error,
        "spec.probe.httpGet.httpHeaders[1].name",
        "empty",
    );
}

#[test]
fn tcp_probe_needs_a_port() {
    assert_issue(
        &check(&group_with_probe(
            json!({"tcpSocket": {"host": "localhost"}}),
        )),
        Severity::Error,
        "spec.probe.tcpSocket.port",
        "range",
    );
}

#[test]
fn exec_probe_needs_a_command() {
    assert_issue(
        &check(&group_with_probe(json!({"exec": {}}))),
        Severity::Error,
        "spec.probe.exec.command",
        "required",
    );
    assert_issue(
        &check(&group_with_probe(json!({"exec": {"command": ["cat", ""]}}))),
        Severity::Error,
        "spec.probe.exec.command[1]",
        "empty",
    );
}

#[test]
fn grpc_probe_is_rejected_like_istio() {
    assert_issue(
        &check(&group_with_probe(json!({"grpc": {"port": 9090}}))),
        Severity::Error,
        "spec.probe.grpc",
        "not supported",
    );
}

#[test]
fn valid_probes_pass() {
    for probe in [
        json!({"initialDelaySeconds": 5, "periodSeconds": 10, "httpGet": {"path": "/healthz",
               "port": 8080, "scheme": "HTTP", "httpHeaders": [{"name": "X-Probe", "value": "1"}]}}),
        json!({"tcpSocket": {"port": 5432}}),
        json!({"exec": {"command": ["/bin/true"]}}),
    ] {
        let issues = check(&group_with_probe(probe.clone()));
        assert!(issues.is_empty(), "{probe}: {issues:#?}");
    }
}

#[test]
fn two_probe_methods_are_rejected() {
    let err = serde_json::from_value::<ReadinessProbe>(
        json!({"tcpSocket": {"port": 80}, "exec": {"command": ["true"]}}),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("only one of"), "{err}");
}

#[test]
fn unknown_fields_are_rejected() {
    assert!(serde_json::from_value::<WorkloadEntry>(json!({"adress": "10.0.0.1"})).is_err());
    assert!(
        serde_json::from_value::<WorkloadGroup>(json!({"template": {}, "probes": {}})).is_err()
    );
    assert!(serde_json::from_value::<ReadinessProbe>(json!({"periodSecond": 1})).is_err());
    assert!(
        serde_json::from_value::<WorkloadEntry>(json!({"ports": {"http": -1}})).is_err(),
        "negative ports cannot be represented"
    );
}

#[test]
fn maximal_workload_entry_round_trips() {
    let v = json!({
        "address": "10.0.0.7",
        "ports": {"grpc": 9090, "http": 8080},
        "labels": {"app": "reviews"},
        "network": "vm-net",
        "locality": "us-east1/us-east1-b",
        "weight": 3,
        "serviceAccount": "reviews"
    });
    let spec = we(v.clone());
    let out = serde_json::to_value(&spec).unwrap();
    assert_eq!(out, v);
    assert_eq!(we(out), spec);
}

#[test]
fn maximal_workload_group_round_trips() {
    let probes = [
        json!({"httpGet": {"path": "/ready", "port": 8080, "host": "127.0.0.1", "scheme": "HTTPS",
               "httpHeaders": [{"name": "X-A", "value": "1"}, {"name": "X-A", "value": "2"}]}}),
        json!({"tcpSocket": {"host": "localhost", "port": 5432}}),
        json!({"exec": {"command": ["cat", "/tmp/ready"]}}),
        json!({"grpc": {"port": 9090, "service": "grpc.health.v1.Health"}}),
    ];
    for method in probes {
        let mut probe = json!({
            "initialDelaySeconds": 1, "timeoutSeconds": 2, "periodSeconds": 3,
            "successThreshold": 4, "failureThreshold": 5
        });
        if let (Some(p), Some(m)) = (probe.as_object_mut(), method.as_object()) {
            p.extend(m.clone());
        }
        let v = json!({
            "metadata": {"labels": {"app": "reviews"}, "annotations": {"owner": "team-a"}},
            "template": {"ports": {"http": 8080}, "network": "vm-net", "serviceAccount": "reviews"},
            "probe": probe
        });
        let spec = wg(v.clone());
        let out = serde_json::to_value(&spec).unwrap();
        assert_eq!(out, v);
        assert_eq!(wg(out), spec);
    }
}
