//! Append actions, ordering between levels, and command operators.

use http::{HeaderMap, HeaderValue};

use super::*;
use crate::config::HeaderOps;

fn compile(to_add: Vec<HeaderValueOption>, to_remove: &[&str]) -> HeaderMutations {
    HeaderMutations::compile(
        &HeaderOps {
            to_add,
            to_remove: to_remove.iter().map(|s| (*s).to_owned()).collect(),
        },
        "h",
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn values(h: &HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

fn with(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_static(v));
    }
    h
}

#[test]
fn append_if_exists_or_add_is_the_default() {
    let m = compile(vec![HeaderValueOption::new("x-a", "2")], &[]);
    let mut h = with(&[("x-a", "1")]);
    m.apply(&mut h, &());
    assert_eq!(values(&h, "x-a"), ["1", "2"]);
    let mut h = HeaderMap::new();
    m.apply(&mut h, &());
    assert_eq!(values(&h, "x-a"), ["2"]);
}

#[test]
fn add_if_absent() {
    let m = compile(
        vec![HeaderValueOption::new("x-a", "2").with_action(HeaderAppendAction::AddIfAbsent)],
        &[],
    );
    let mut h = with(&[("x-a", "1")]);
    m.apply(&mut h, &());
    assert_eq!(values(&h, "x-a"), ["1"]);
    let mut h = HeaderMap::new();
    m.apply(&mut h, &());
    assert_eq!(values(&h, "x-a"), ["2"]);
}

#[test]
fn overwrite_if_exists_or_add() {
    let m = compile(
        vec![
            HeaderValueOption::new("x-a", "2")
                .with_action(HeaderAppendAction::OverwriteIfExistsOrAdd),
        ],
        &[],
    );
    let mut h = with(&[("x-a", "1"), ("x-a", "1b")]);
    m.apply(&mut h, &());
    assert_eq!(values(&h, "x-a"), ["2"]);
    let mut h = HeaderMap::new();
    m.apply(&mut h, &());
    assert_eq!(values(&h, "x-a"), ["2"]);
}

#[test]
fn overwrite_if_exists() {
    let m = compile(
        vec![HeaderValueOption::new("x-a", "2").with_action(HeaderAppendAction::OverwriteIfExists)],
        &[],
    );
    let mut h = with(&[("x-a", "1")]);
    m.apply(&mut h, &());
    assert_eq!(values(&h, "x-a"), ["2"]);
    let mut h = HeaderMap::new();
    m.apply(&mut h, &());
    assert!(values(&h, "x-a").is_empty());
}

#[test]
fn deprecated_append_flag() {
    let mut o = HeaderValueOption::new("x-a", "2");
    o.append = Some(false);
    let mut h = with(&[("x-a", "1")]);
    compile(vec![o.clone()], &[]).apply(&mut h, &());
    assert_eq!(values(&h, "x-a"), ["2"]);
    o.append = Some(true);
    let mut h = with(&[("x-a", "1")]);
    compile(vec![o.clone()], &[]).apply(&mut h, &());
    assert_eq!(values(&h, "x-a"), ["1", "2"]);
    o.append_action = Some(HeaderAppendAction::AddIfAbsent);
    let e = HeaderMutations::compile(
        &HeaderOps {
            to_add: vec![o],
            to_remove: vec![],
        },
        "h",
    );
    assert!(e.is_err_and(|e| e.to_string().contains("both append and append_action")));
}

#[test]
fn removal_happens_before_additions_and_conditions_see_the_original_state() {
    let m = compile(
        vec![
            HeaderValueOption::new("x-a", "new"),
            HeaderValueOption::new("x-b", "1"),
            // Decided before x-b above is added: x-b is absent, so this is added too.
            HeaderValueOption::new("x-b", "2").with_action(HeaderAppendAction::AddIfAbsent),
        ],
        &["x-a"],
    );
    let mut h = with(&[("x-a", "old")]);
    m.apply(&mut h, &());
    assert_eq!(values(&h, "x-a"), ["new"]);
    assert_eq!(values(&h, "x-b"), ["1", "2"]);
}

#[test]
fn later_levels_win() {
    let route = compile(
        vec![
            HeaderValueOption::new("x-a", "route")
                .with_action(HeaderAppendAction::OverwriteIfExistsOrAdd),
        ],
        &[],
    );
    let config = compile(
        vec![
            HeaderValueOption::new("x-a", "config")
                .with_action(HeaderAppendAction::OverwriteIfExistsOrAdd),
        ],
        &[],
    );
    let mut h = HeaderMap::new();
    apply_header_mutations(&mut h, [&route, &config], &());
    assert_eq!(values(&h, "x-a"), ["config"]);
}

#[test]
fn empty_values_are_skipped_unless_kept() {
    let mut kept = HeaderValueOption::new("x-kept", "%DOWNSTREAM_PEER_URI_SAN%");
    kept.keep_empty_value = true;
    let m = compile(
        vec![
            HeaderValueOption::new("x-dropped", "%DOWNSTREAM_PEER_URI_SAN%"),
            kept,
            HeaderValueOption::new("x-lit", ""),
        ],
        &[],
    );
    let mut h = HeaderMap::new();
    m.apply(&mut h, &());
    assert!(!h.contains_key("x-dropped"));
    assert!(!h.contains_key("x-lit"));
    assert_eq!(values(&h, "x-kept"), [""]);
}

struct Fake;

impl HeaderFormatter for Fake {
    fn format(&self, op: &CommandOperator, out: &mut String) {
        match op {
            CommandOperator::DownstreamRemoteAddress => out.push_str("10.0.0.1:5555"),
            CommandOperator::RequestHeader(r) => {
                out.push_str(&format!("req:{}:{:?}", r.name, r.max_length));
            }
            CommandOperator::StartTime(f) => out.push_str(&format!("t:{f:?}")),
            _ => {}
        }
    }
}

#[test]
fn command_operators_render_through_the_formatter() {
    let m = compile(
        vec![
            HeaderValueOption::new("x-client", "ip=%DOWNSTREAM_REMOTE_ADDRESS%; 100%%"),
            HeaderValueOption::new("x-req", "%REQ(x-foo?x-bar):8%"),
            HeaderValueOption::new("x-t", "%START_TIME(%s)%"),
        ],
        &[],
    );
    let mut h = HeaderMap::new();
    m.apply(&mut h, &Fake);
    assert_eq!(values(&h, "x-client"), ["ip=10.0.0.1:5555; 100%"]);
    assert_eq!(values(&h, "x-req"), ["req:x-foo:Some(8)"]);
    assert_eq!(values(&h, "x-t"), ["t:Some(\"%s\")"]);
}

#[test]
fn unknown_or_malformed_operators_are_rejected() {
    let err = |v: &str| {
        HeaderMutations::compile(
            &HeaderOps {
                to_add: vec![HeaderValueOption::new("x-a", v)],
                to_remove: vec![],
            },
            "route.request_headers",
        )
        .err()
        .map(|e| e.to_string())
    };
    let e = err("%NOT_A_THING%").unwrap_or_default();
    assert!(
        e.contains("%NOT_A_THING%") && e.contains("DOWNSTREAM_REMOTE_ADDRESS"),
        "{e}"
    );
    assert!(err("50% off").is_some_and(|e| e.contains("%%")));
    assert!(err("%REQ()%").is_some());
    assert!(err("%HOSTNAME(x)%").is_some());
    assert!(err("%REQ(x):abc%").is_some());
    assert!(err("plain").is_none());
}

#[test]
fn protected_headers_cannot_be_modified() {
    for bad in [":path", "host", "Host"] {
        let add = HeaderMutations::compile(
            &HeaderOps {
                to_add: vec![HeaderValueOption::new(bad, "x")],
                to_remove: vec![],
            },
            "h",
        );
        assert!(add.is_err(), "{bad}");
        let remove = HeaderMutations::compile(
            &HeaderOps {
                to_add: vec![],
                to_remove: vec![bad.to_owned()],
            },
            "h",
        );
        assert!(
            remove.is_err_and(|e| e.to_string().contains("may not be removed")),
            "{bad}"
        );
    }
    let bad_value = HeaderMutations::compile(
        &HeaderOps {
            to_add: vec![HeaderValueOption::new("x-a", "a\nb")],
            to_remove: vec![],
        },
        "h",
    );
    assert!(bad_value.is_err());
}
