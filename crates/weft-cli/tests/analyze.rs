//! `weft analyze` as a user runs it: the real binary, real files, exit codes and output.
#![allow(clippy::expect_used)] // test helpers outside #[test] functions

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn weft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("run weft")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const INVALID: &str = "crates/weft-analyze/tests/testdata/invalid";

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn examples_pass_with_exit_zero() {
    let out = weft(&["analyze", "examples/istio"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("No validation issues found"));
}

#[test]
fn findings_print_like_istioctl_and_exit_79() {
    let out = weft(&["analyze", &format!("{INVALID}/missing-subset.yaml")]);
    assert_eq!(out.status.code(), Some(79));
    assert_eq!(
        stdout(&out).trim(),
        format!(
            "Error [IST0101] (VirtualService bookinfo/reviews {INVALID}/missing-subset.yaml:31) Referenced host+subset in destinationrule not found: \"reviews+v3\""
        )
    );
}

#[test]
fn failure_threshold_decides_the_exit_code() {
    // Only warnings and infos in this file.
    let file = format!("{INVALID}/shadowed-rules.yaml");
    assert_eq!(weft(&["analyze", &file]).status.code(), Some(0));
    let strict = weft(&["analyze", "--failure-threshold", "Warning", &file]);
    assert_eq!(strict.status.code(), Some(79));
    let quiet = weft(&["analyze", "--output-threshold", "Warning", &file]);
    assert!(!stdout(&quiet).contains("IST0131"));
    assert!(stdout(&quiet).contains("IST0130"));
    let bad = weft(&["analyze", "--failure-threshold", "Fatal", &file]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn json_output_is_machine_readable() {
    let out = weft(&["analyze", "-o", "json", INVALID]);
    assert_eq!(out.status.code(), Some(79));
    let findings: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = findings.as_array().unwrap();
    assert!(list.len() > 20);
    let f = list
        .iter()
        .find(|f| f["code"] == "IST0106" && f["field"] == "spec.http[0].match[0].headrs")
        .expect("unknown field finding");
    assert_eq!(f["level"], "Error");
    assert_eq!(f["line"], 13);
    assert_eq!(f["resource"]["kind"], "VirtualService");
    assert!(f["file"].as_str().unwrap().ends_with("unknown-field.yaml"));
}

#[test]
fn unreadable_input_never_panics() {
    let dir = std::env::temp_dir().join(format!("weft-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("garbage.yaml"), [0xff, 0xfe, 0x00, 0x41]).unwrap();
    std::fs::write(dir.join("deep.yaml"), "[".repeat(100_000)).unwrap();
    let out = weft(&["analyze", dir.to_str().unwrap(), "no/such/path.yaml"]);
    assert_eq!(out.status.code(), Some(79));
    let text = stdout(&out);
    assert!(text.contains("not UTF-8"), "{text}");
    assert!(text.contains("deep.yaml"), "{text}");
    assert!(text.contains("cannot read no/such/path.yaml"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}
