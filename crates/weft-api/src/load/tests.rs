use std::path::Path;

use super::*;
use crate::meta::Kind;

fn load(text: &str) -> LoadResult {
    let mut out = LoadResult::default();
    Loader::default().load_str(Path::new("test.yaml"), text, &mut out);
    out
}

#[test]
fn multi_document_with_lines_and_default_namespace() {
    let out = load(
        "# comment\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: a\n---\napiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata:\n  name: b\n  namespace: prod\n",
    );
    assert!(out.findings.is_empty(), "{:?}", out.findings);
    assert_eq!(out.resources.len(), 2);
    let a = &out.resources[0];
    assert_eq!(a.resource.kind(), Kind::PeerAuthentication);
    assert_eq!(a.resource.namespace(), "default");
    assert_eq!(a.source.locate(Some("metadata.name")).line, 5);
    let b = &out.resources[1];
    assert_eq!(b.resource.namespace(), "prod");
    assert_eq!(b.source.locate(Some("metadata.namespace")).line, 11);
    // An unknown path falls back to the nearest known ancestor.
    assert_eq!(b.source.locate(Some("metadata.labels.x")).line, 9);
}

#[test]
fn json_documents_load_too() {
    let out = load(
        r#"{"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "metadata": {"name": "j"}}"#,
    );
    assert!(out.findings.is_empty(), "{:?}", out.findings);
    assert_eq!(out.resources[0].resource.name(), "j");
}

#[test]
fn unknown_field_is_an_error_with_path_and_line() {
    let out = load(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: a\n  nmae: typo\n",
    );
    assert!(out.resources.is_empty());
    let f = &out.findings[0];
    assert_eq!(f.message_type.code, "IST0106");
    assert_eq!(f.field.as_deref(), Some("metadata.nmae"));
    assert_eq!(f.location.as_ref().map(|l| l.line), Some(5));
    assert!(
        f.message
            .contains("unknown field `nmae` (did you mean `name`?)"),
        "{}",
        f.message
    );
    assert_eq!(f.resource.as_ref().map(|r| r.name.as_str()), Some("a"));
}

#[test]
fn wrong_type_names_the_field() {
    let out = load(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: a\n  labels:\n    app: [1]\n",
    );
    let f = &out.findings[0];
    assert_eq!(f.field.as_deref(), Some("metadata.labels.app"));
    assert_eq!(f.location.as_ref().map(|l| l.line), Some(6));
}

#[test]
fn malformed_yaml_reports_line_and_keeps_later_documents() {
    let out = load(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: [unclosed\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: ok\n",
    );
    assert_eq!(out.resources.len(), 1, "{:?}", out.findings);
    assert_eq!(out.resources[0].resource.name(), "ok");
    let f = &out.findings[0];
    assert_eq!(f.message_type.code, "WFT0002");
    assert!(
        f.location
            .as_ref()
            .is_some_and(|l| l.line >= 3 && l.line <= 4),
        "{f:?}"
    );
}

#[test]
fn missing_kind_and_non_objects() {
    let out = load("apiVersion: v1\n---\n- a\n- b\n---\n42\n");
    assert_eq!(out.findings.len(), 3, "{:?}", out.findings);
    assert!(out.findings[0].message.contains("no kind"));
    assert!(out.findings[1].message.contains("found a sequence"));
}

#[test]
fn foreign_kinds_are_skipped_and_unsupported_istio_kinds_warned() {
    let out = load(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n---\napiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: f}\n",
    );
    assert_eq!(out.skipped, 1);
    assert_eq!(out.findings.len(), 1);
    assert_eq!(out.findings[0].message_type.code, "WFT0003");
    assert_eq!(out.findings[0].severity, crate::Severity::Warning);
}

#[test]
fn unserved_version_is_a_schema_error() {
    let out = load(
        "apiVersion: security.istio.io/v1alpha3\nkind: PeerAuthentication\nmetadata: {name: x}\n",
    );
    assert_eq!(out.findings[0].message_type.code, "IST0106");
    assert!(
        out.findings[0].message.contains("v1 or v1beta1"),
        "{}",
        out.findings[0].message
    );
}

#[test]
fn kubernetes_list_items_are_loaded_with_their_own_lines() {
    let out = load(
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: security.istio.io/v1\n  kind: PeerAuthentication\n  metadata:\n    name: one\n- apiVersion: security.istio.io/v1\n  kind: PeerAuthentication\n  metadata:\n    name: two\n    bogus: 1\n",
    );
    assert_eq!(out.resources.len(), 1);
    assert_eq!(out.resources[0].source.line, 4);
    assert_eq!(out.findings[0].location.as_ref().map(|l| l.line), Some(12));
}

#[test]
fn directories_are_walked_recursively_skipping_hidden_and_other_files() {
    let dir = std::env::temp_dir().join(format!("weft-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sub/..data")).unwrap();
    let pa = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: ";
    std::fs::write(dir.join("a.yaml"), format!("{pa}a\n")).unwrap();
    std::fs::write(dir.join("sub/b.yml"), format!("{pa}b\n")).unwrap();
    std::fs::write(dir.join("sub/..data/c.yaml"), format!("{pa}c\n")).unwrap();
    std::fs::write(dir.join("notes.txt"), "not config").unwrap();
    let out = Loader::default().load_paths(&[&dir]);
    let names: Vec<_> = out
        .resources
        .iter()
        .map(|r| r.resource.name().to_owned())
        .collect();
    assert_eq!(names, ["a", "b"]);
    let missing = Loader::default().load_paths(&[dir.join("nope.yaml")]);
    assert_eq!(missing.findings.len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn suggestions_only_for_near_misses() {
    assert_eq!(
        suggest_field("unknown field `timout`, expected one of `timeout`, `retries`").as_deref(),
        Some("unknown field `timout` (did you mean `timeout`?)")
    );
    assert_eq!(
        suggest_field("unknown field `banana`, expected one of `timeout`, `retries`"),
        None
    );
    assert_eq!(suggest_field("invalid type: string, expected u32"), None);
    assert_eq!(edit_distance("nmae", "name"), 1);
}
