use serde_json::json;

use super::*;
use crate::diag::Severity;
use crate::validate::{FieldIssue, check};

fn parse(v: serde_json::Value) -> AuthorizationPolicy {
    serde_json::from_value(v).unwrap()
}

fn issues(v: serde_json::Value) -> Vec<FieldIssue> {
    check(&parse(v))
}

/// Asserts an issue of `severity` at exactly `path` whose message contains `word`.
#[track_caller]
fn assert_issue(issues: &[FieldIssue], severity: Severity, path: &str, word: &str) {
    assert!(
        issues
            .iter()
            .any(|i| i.path == path && i.severity == severity && i.message.contains(word)),
        "no {severity} at {path} mentioning {word:?} in {issues:#?}"
    );
}

#[track_caller]
fn error(v: serde_json::Value, path: &str, word: &str) {
    assert_issue(&issues(v), Severity::Error, path, word);
}

#[track_caller]
fn warning(v: serde_json::Value, path: &str, word: &str) {
    assert_issue(&issues(v), Severity::Warning, path, word);
}

#[track_caller]
fn clean(v: serde_json::Value) {
    let found = issues(v);
    assert!(found.is_empty(), "unexpected issues {found:#?}");
}

/// A policy with one rule whose only `from` entry has `source`.
fn with_source(source: serde_json::Value) -> serde_json::Value {
    json!({"rules": [{"from": [{"source": source}]}]})
}

/// A policy with one rule whose only `to` entry has `operation`.
fn with_operation(operation: serde_json::Value) -> serde_json::Value {
    json!({"rules": [{"to": [{"operation": operation}]}]})
}

/// A policy with one rule whose only `when` entry is `cond`.
fn with_when(cond: serde_json::Value) -> serde_json::Value {
    json!({"rules": [{"when": [cond]}]})
}

// ---- deserialization ----

#[test]
fn istio_docs_examples_deserialize_and_validate_clean() {
    // From Istio's RequestAuthentication and AuthorizationPolicy docs.
    let p = parse(json!({
        "selector": {"matchLabels": {"app": "httpbin"}},
        "rules": [
            {"from": [{"source": {"requestPrincipals": ["issuer-foo/*"]}}],
             "to": [{"operation": {"hosts": ["example.com"]}}]},
            {"from": [{"source": {"requestPrincipals": ["issuer-bar/*"]}}],
             "to": [{"operation": {"hosts": ["another-host.com"]}}]}
        ]
    }));
    assert_eq!(p.action, Action::Allow);
    assert_eq!(
        p.rules[1].from[0]
            .source
            .as_ref()
            .unwrap()
            .request_principals,
        ["issuer-bar/*"]
    );
    assert!(check(&p).is_empty());

    clean(json!({
        "action": "DENY",
        "rules": [{
            "from": [{"source": {"notNamespaces": ["foo"]}}],
            "to": [{"operation": {"methods": ["POST"], "paths": ["/admin*"], "ports": ["8080"]}}],
            "when": [{"key": "request.auth.claims[groups]", "values": ["group1"]}]
        }]
    }));
    clean(json!({
        "selector": {"matchLabels": {"app": "istio-ingressgateway"}},
        "action": "CUSTOM",
        "provider": {"name": "my-custom-authz"},
        "rules": [{"to": [{"operation": {"paths": ["/admin/*"]}}]}]
    }));
    // The allow-nothing policy.
    clean(json!({}));
}

#[test]
fn unknown_fields_are_rejected() {
    let err = serde_json::from_value::<AuthorizationPolicy>(json!({
        "rules": [{"from": [{"source": {"principal": ["a"]}}]}]
    }))
    .unwrap_err();
    assert!(
        err.to_string().contains("unknown field `principal`"),
        "{err}"
    );
    assert!(serde_json::from_value::<AuthorizationPolicy>(json!({"actions": "DENY"})).is_err());
}

#[test]
fn action_uses_proto_names() {
    assert_eq!(parse(json!({"action": "AUDIT"})).action, Action::Audit);
    assert!(serde_json::from_value::<AuthorizationPolicy>(json!({"action": "deny"})).is_err());
}

#[test]
fn explicitly_empty_from_is_rejected() {
    let err = serde_json::from_value::<AuthorizationPolicy>(json!({"rules": [{"from": []}]}))
        .unwrap_err();
    assert!(
        err.to_string().contains("from must not be an empty list"),
        "{err}"
    );
}

#[test]
fn explicitly_empty_to_is_rejected() {
    let err =
        serde_json::from_value::<AuthorizationPolicy>(json!({"rules": [{"to": []}]})).unwrap_err();
    assert!(
        err.to_string().contains("to must not be an empty list"),
        "{err}"
    );
}

#[test]
fn round_trips_a_maximal_spec() {
    let values = || json!(["a", "b*"]);
    let value = json!({
        "selector": {"matchLabels": {"app": "x"}},
        "targetRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"},
        "targetRefs": [{"kind": "Service", "name": "svc", "group": ""}],
        "action": "CUSTOM",
        "provider": {"name": "ext"},
        "rules": [{
            "from": [{"source": {
                "principals": values(), "notPrincipals": values(),
                "requestPrincipals": values(), "notRequestPrincipals": values(),
                "namespaces": values(), "notNamespaces": values(),
                "serviceAccounts": ["ns/sa"], "notServiceAccounts": ["sa"],
                "ipBlocks": ["10.0.0.0/8"], "notIpBlocks": ["10.1.0.0/16"],
                "remoteIpBlocks": ["1.2.3.4"], "notRemoteIpBlocks": ["::1"],
                "trustDomains": ["td"], "notTrustDomains": ["*.td"]
            }}],
            "to": [{"operation": {
                "hosts": values(), "notHosts": values(), "ports": ["80"], "notPorts": ["81"],
                "methods": ["GET"], "notMethods": ["POST"], "paths": ["/a/{*}"],
                "notPaths": ["/b*"]
            }}],
            "when": [{"key": "source.ip", "values": ["10.0.0.1"], "notValues": ["10.0.0.2"]}]
        }]
    });
    let p = parse(value);
    let source = p.rules[0].from[0].source.as_ref().unwrap();
    // Every Source field was filled in, so none may have been dropped.
    assert!(
        [
            &source.principals,
            &source.not_principals,
            &source.request_principals,
            &source.not_request_principals,
            &source.namespaces,
            &source.not_namespaces,
            &source.service_accounts,
            &source.not_service_accounts,
            &source.ip_blocks,
            &source.not_ip_blocks,
            &source.remote_ip_blocks,
            &source.not_remote_ip_blocks,
            &source.trust_domains,
            &source.not_trust_domains,
        ]
        .iter()
        .all(|v| !v.is_empty())
    );
    let out = serde_json::to_value(&p).unwrap();
    assert_eq!(parse(out.clone()), p);
    // Empty fields are skipped.
    assert!(out["targetRefs"][0].get("group").is_none());
    let empty = serde_json::to_value(AuthorizationPolicy::default()).unwrap();
    assert_eq!(empty, json!({"action": "ALLOW"}));
}

// ---- action and provider ----

#[test]
fn custom_requires_a_provider_name() {
    error(
        json!({"action": "CUSTOM", "rules": [{}]}),
        "spec.provider",
        "provider.name",
    );
    error(
        json!({"action": "CUSTOM", "provider": {"name": ""}, "rules": [{}]}),
        "spec.provider",
        "provider.name",
    );
}

#[test]
fn custom_without_rules_is_an_error() {
    error(
        json!({"action": "CUSTOM", "provider": {"name": "ext"}}),
        "spec.rules",
        "never be triggered",
    );
}

#[test]
fn provider_only_with_custom() {
    error(
        json!({"action": "DENY", "provider": {"name": "ext"}, "rules": [{}]}),
        "spec.provider",
        "only allowed with action CUSTOM, found DENY",
    );
}

#[test]
fn deny_without_rules_is_an_error() {
    error(json!({"action": "DENY"}), "spec.rules", "add an empty rule");
}

#[test]
fn custom_rejects_identity_sources() {
    error(
        json!({"action": "CUSTOM", "provider": {"name": "ext"},
               "rules": [{"from": [{"source": {"requestPrincipals": ["*"]}}]}]}),
        "spec.rules[0].from[0].source.requestPrincipals",
        "not supported with action CUSTOM",
    );
}

#[test]
fn custom_rejects_identity_conditions() {
    error(
        json!({"action": "CUSTOM", "provider": {"name": "ext"},
               "rules": [{"when": [{"key": "request.auth.claims[iss]", "values": ["x"]}]}]}),
        "spec.rules[0].when[0].key",
        "not supported with action CUSTOM",
    );
}

#[test]
fn too_many_rules() {
    let rules: Vec<serde_json::Value> = (0..513).map(|_| json!({})).collect();
    error(json!({"rules": rules}), "spec.rules", "at most 512");
}

// ---- attachment ----

#[test]
fn selector_and_target_refs_are_exclusive() {
    error(
        json!({"selector": {"matchLabels": {"app": "a"}},
               "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}]}),
        "spec.targetRefs",
        "only one of selector",
    );
}

#[test]
fn target_ref_is_deprecated() {
    warning(
        json!({"targetRef": {"kind": "Service", "name": "svc"}}),
        "spec.targetRef",
        "deprecated",
    );
}

#[test]
fn target_ref_kind_must_be_supported() {
    error(
        json!({"targetRefs": [{"group": "apps", "kind": "Deployment", "name": "d"}]}),
        "spec.targetRefs[0].kind",
        "unsupported target apps/Deployment",
    );
    // Service in the core group, spelled either way, is fine.
    clean(json!({"targetRefs": [{"group": "core", "kind": "Service", "name": "svc"}]}));
}

#[test]
fn target_ref_name_required() {
    error(
        json!({"targetRefs": [{"kind": "Service", "name": ""}]}),
        "spec.targetRefs[0].name",
        "must be set",
    );
}

#[test]
fn target_ref_cross_namespace_rejected() {
    error(
        json!({"targetRefs": [{"kind": "Service", "name": "s", "namespace": "other"}]}),
        "spec.targetRefs[0].namespace",
        "cross-namespace",
    );
}

#[test]
fn too_many_target_refs() {
    let refs: Vec<serde_json::Value> = (0..17)
        .map(|i| json!({"kind": "Service", "name": format!("s{i}")}))
        .collect();
    error(json!({"targetRefs": refs}), "spec.targetRefs", "at most 16");
}

#[test]
fn selector_labels_are_checked() {
    error(
        json!({"selector": {"matchLabels": {"app": "rev*"}}}),
        "spec.selector.matchLabels",
        "wildcard",
    );
}

#[test]
fn selector_without_labels_warns() {
    warning(json!({"selector": {}}), "spec.selector", "no labels");
}

// ---- from / source ----

#[test]
fn from_entry_requires_source() {
    error(
        json!({"rules": [{"from": [{}]}]}),
        "spec.rules[0].from[0].source",
        "required",
    );
}

#[test]
fn empty_source_is_rejected() {
    error(
        with_source(json!({})),
        "spec.rules[0].from[0].source",
        "must not be empty",
    );
}

#[test]
fn service_accounts_exclude_principals_and_namespaces() {
    error(
        with_source(json!({"serviceAccounts": ["ns/sa"], "namespaces": ["ns"]})),
        "spec.rules[0].from[0].source",
        "serviceAccounts cannot be set together",
    );
}

#[test]
fn service_accounts_reject_wildcards_and_bad_forms() {
    let src = json!({"serviceAccounts": ["ns/*", "a/b/c", "/sa", "ok"]});
    let found = issues(with_source(src));
    let at = |i: usize| format!("spec.rules[0].from[0].source.serviceAccounts[{i}]");
    assert_issue(&found, Severity::Error, &at(0), "wildcards are not allowed");
    assert_issue(&found, Severity::Error, &at(1), "namespace/serviceAccount");
    assert_issue(&found, Severity::Error, &at(2), "namespace/serviceAccount");
    assert!(!found.iter().any(|i| i.path == at(3)));
}

#[test]
fn too_many_service_accounts() {
    let sas: Vec<String> = (0..17).map(|i| format!("sa{i}")).collect();
    error(
        with_source(json!({"notServiceAccounts": sas})),
        "spec.rules[0].from[0].source.notServiceAccounts",
        "at most 16",
    );
}

#[test]
fn principal_wildcard_only_at_ends() {
    let found = issues(with_source(json!({
        "principals": ["cluster.local/ns/default/sa/*", "cluster.local/ns/*/sa/x", "*a*"]
    })));
    let at = |i: usize| format!("spec.rules[0].from[0].source.principals[{i}]");
    assert!(!found.iter().any(|i| i.path == at(0)));
    assert_issue(&found, Severity::Error, &at(1), "in the middle");
    assert_issue(&found, Severity::Error, &at(2), "more than one");
}

#[test]
fn namespace_wildcard_only_at_ends() {
    error(
        with_source(json!({"notNamespaces": ["team-*-prod"]})),
        "spec.rules[0].from[0].source.notNamespaces[0]",
        "in the middle",
    );
}

#[test]
fn request_principal_wildcard_only_at_ends() {
    error(
        with_source(json!({"requestPrincipals": ["iss/*/sub"]})),
        "spec.rules[0].from[0].source.requestPrincipals[0]",
        "in the middle",
    );
}

#[test]
fn principal_with_spiffe_prefix_warns() {
    warning(
        with_source(json!({"principals": ["spiffe://cluster.local/ns/a/sa/b"]})),
        "spec.rules[0].from[0].source.principals[0]",
        "\"cluster.local/ns/a/sa/b\"",
    );
}

#[test]
fn empty_values_are_rejected() {
    error(
        with_source(json!({"namespaces": ["ok", ""]})),
        "spec.rules[0].from[0].source.namespaces[1]",
        "empty value",
    );
}

#[test]
fn trust_domains_have_no_slash() {
    error(
        with_source(json!({"trustDomains": ["cluster.local/ns"]})),
        "spec.rules[0].from[0].source.trustDomains[0]",
        "must not contain '/'",
    );
}

#[test]
fn ip_blocks_must_be_ips_or_cidrs() {
    let found = issues(with_source(json!({
        "ipBlocks": ["10.0.0.0/8", "10.0.0.0/33"],
        "notRemoteIpBlocks": ["example.com"]
    })));
    assert_issue(
        &found,
        Severity::Error,
        "spec.rules[0].from[0].source.ipBlocks[1]",
        "not a valid IP",
    );
    assert_issue(
        &found,
        Severity::Error,
        "spec.rules[0].from[0].source.notRemoteIpBlocks[0]",
        "not a valid IP",
    );
}

// ---- to / operation ----

#[test]
fn to_entry_requires_operation() {
    error(
        json!({"rules": [{"to": [{}]}]}),
        "spec.rules[0].to[0].operation",
        "required",
    );
}

#[test]
fn empty_operation_is_rejected() {
    error(
        with_operation(json!({})),
        "spec.rules[0].to[0].operation",
        "must not be empty",
    );
}

#[test]
fn ports_must_be_numeric_and_in_range() {
    let found = issues(with_operation(
        json!({"ports": ["http", "0", "65536", "443"], "notPorts": ["+80"]}),
    ));
    let at = |f: &str, i: usize| format!("spec.rules[0].to[0].operation.{f}[{i}]");
    assert_issue(&found, Severity::Error, &at("ports", 0), "bad port");
    assert_issue(&found, Severity::Error, &at("ports", 1), "range");
    assert_issue(&found, Severity::Error, &at("ports", 2), "range");
    assert!(!found.iter().any(|i| i.path == at("ports", 3)));
    assert_issue(&found, Severity::Error, &at("notPorts", 0), "bad port");
}

#[test]
fn lowercase_methods_warn() {
    warning(
        with_operation(json!({"notMethods": ["get"]})),
        "spec.rules[0].to[0].operation.notMethods[0]",
        "\"GET\"",
    );
}

#[test]
fn host_wildcard_only_at_ends() {
    error(
        with_operation(json!({"hosts": ["api.*.example.com"]})),
        "spec.rules[0].to[0].operation.hosts[0]",
        "in the middle",
    );
}

#[test]
fn path_wildcard_only_at_ends() {
    let found = issues(with_operation(
        json!({"paths": ["/api/*", "*.html", "/api/*/v1"]}),
    ));
    let at = |i: usize| format!("spec.rules[0].to[0].operation.paths[{i}]");
    assert!(
        !found.iter().any(|i| i.path == at(0) || i.path == at(1)),
        "{found:#?}"
    );
    assert_issue(&found, Severity::Error, &at(2), "in the middle");
}

#[test]
fn path_templates_follow_istio_rules() {
    clean(with_operation(
        json!({"paths": ["/foo/{*}", "/foo/{**}/", "/foo/{*}/bar/{**}"]}),
    ));
    let found = issues(with_operation(json!({
        "notPaths": ["/{**}/foo/{*}", "/*/baz/{*}", "/foo/{*}.txt", "/foo/{bar}"]
    })));
    let at = |i: usize| format!("spec.rules[0].to[0].operation.notPaths[{i}]");
    assert_issue(&found, Severity::Error, &at(0), "last operator");
    assert_issue(&found, Severity::Error, &at(1), "not a valid literal");
    assert_issue(&found, Severity::Error, &at(2), "whole-segment operators");
    assert_issue(&found, Severity::Error, &at(3), "whole-segment operators");
}

#[test]
fn path_without_leading_slash_warns() {
    warning(
        with_operation(json!({"paths": ["api/v1"]})),
        "spec.rules[0].to[0].operation.paths[0]",
        "does not start with '/'",
    );
}

// ---- when / conditions ----

#[test]
fn condition_key_required() {
    error(
        with_when(json!({"values": ["a"]})),
        "spec.rules[0].when[0].key",
        "must not be empty",
    );
}

#[test]
fn condition_key_must_be_supported() {
    error(
        with_when(json!({"key": "request.method", "values": ["GET"]})),
        "spec.rules[0].when[0].key",
        "unknown attribute",
    );
}

#[test]
fn condition_replaced_attributes_are_rejected() {
    error(
        with_when(json!({"key": "destination.namespace", "values": ["a"]})),
        "spec.rules[0].when[0].key",
        "metadata.namespace",
    );
    error(
        with_when(json!({"key": "destination.labels[app]", "values": ["a"]})),
        "spec.rules[0].when[0].key",
        "selector",
    );
    error(
        with_when(json!({"key": "destination.user", "values": ["a"]})),
        "spec.rules[0].when[0].key",
        "v1alpha1",
    );
}

#[test]
fn condition_map_keys_need_brackets() {
    for key in [
        "request.headers",
        "request.headers[]",
        "request.headersx[a]",
        "request.auth.claims[a][]",
        "experimental.envoy.filters.x",
    ] {
        error(
            with_when(json!({"key": key, "values": ["a"]})),
            "spec.rules[0].when[0].key",
            "bad key",
        );
    }
    clean(with_when(json!({
        "key": "experimental.envoy.filters.network.mysql_proxy[db.table]", "values": ["[update]"]
    })));
}

#[test]
fn condition_requires_values_or_not_values() {
    error(
        with_when(json!({"key": "source.ip"})),
        "spec.rules[0].when[0]",
        "at least one of values or notValues",
    );
}

#[test]
fn condition_values_checked_per_attribute() {
    error(
        with_when(json!({"key": "source.ip", "values": ["10.0.0.1", "nope"]})),
        "spec.rules[0].when[0].values[1]",
        "not a valid IP",
    );
    error(
        with_when(json!({"key": "destination.port", "notValues": ["http"]})),
        "spec.rules[0].when[0].notValues[0]",
        "bad port",
    );
    error(
        with_when(json!({"key": "source.serviceAccount", "values": ["ns/*"]})),
        "spec.rules[0].when[0].values[0]",
        "wildcards",
    );
    error(
        with_when(json!({"key": "source.trustDomain", "values": ["a*b"]})),
        "spec.rules[0].when[0].values[0]",
        "in the middle",
    );
    error(
        with_when(json!({"key": "request.headers[x-a]", "values": [""]})),
        "spec.rules[0].when[0].values[0]",
        "empty value",
    );
}

#[test]
fn deny_with_only_http_attributes_warns() {
    let deny = |rule: serde_json::Value| json!({"action": "DENY", "rules": [rule]});
    warning(
        deny(json!({"to": [{"operation": {"methods": ["GET"]}}]})),
        "spec.rules[0]",
        "TCP",
    );
    warning(
        deny(json!({"from": [{"source": {"requestPrincipals": ["*"]}}]})),
        "spec.rules[0]",
        "TCP",
    );
    clean(deny(
        json!({"to": [{"operation": {"methods": ["GET"], "ports": ["8080"]}}]}),
    ));
    clean(deny(
        json!({"from": [{"source": {"ipBlocks": ["1.2.3.4"]}}]}),
    ));
}

// ---- pure helpers ----

#[test]
fn attributes_parse() {
    assert_eq!(
        Attribute::parse("request.auth.claims[a][b]"),
        Ok(Attribute::RequestClaim(vec!["a", "b"]))
    );
    assert_eq!(
        Attribute::parse("request.headers[User-Agent]"),
        Ok(Attribute::RequestHeader("User-Agent"))
    );
    assert_eq!(
        Attribute::parse("connection.sni"),
        Ok(Attribute::ConnectionSni)
    );
}

#[test]
fn value_match_follows_istio() {
    assert!(ValueMatch::parse("*").matches("x"));
    assert!(!ValueMatch::parse("*").matches(""));
    assert!(ValueMatch::parse("/api*").matches("/api/v1"));
    assert!(ValueMatch::parse("*.html").matches("/a.html"));
    assert!(!ValueMatch::parse("abc").matches("abcd"));
    assert_eq!(ValueMatch::parse("a*"), ValueMatch::Prefix("a"));
}
