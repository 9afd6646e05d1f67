//! The configuration corpus as a specification:
//! - every example under `examples/istio/` loads and analyzes without a single finding;
//! - every defective file under `testdata/invalid/` yields exactly the findings its
//!   `# expect: CODE LINE` header lines list;
//! - every example resource survives load → serialize → load unchanged.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use weft_api::load::{LoadResult, Loader};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/istio")
}

fn invalid_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/invalid")
}

#[test]
fn examples_have_no_findings() {
    let report = weft_analyze::analyze(Loader::default().load_paths(&[examples_dir()]));
    let shown: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
    assert!(
        shown.is_empty(),
        "unexpected findings:\n{}",
        shown.join("\n")
    );
    assert!(
        report.resources >= 40,
        "only {} resources loaded",
        report.resources
    );
}

#[test]
fn defective_files_report_expected_codes_and_lines() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(invalid_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 10);
    let mut failures = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expected: BTreeSet<(String, usize)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .map(|e| {
                let (code, line) = e.split_once(' ').unwrap();
                (code.to_owned(), line.trim().parse().unwrap())
            })
            .collect();
        assert!(
            !expected.is_empty(),
            "{} has no # expect: lines",
            file.display()
        );
        let report = weft_analyze::analyze(Loader::default().load_paths(&[&file]));
        let got: BTreeSet<(String, usize)> = report
            .findings
            .iter()
            .map(|f| {
                let line = f.location.as_ref().map_or(0, |l| l.line);
                (f.message_type.code.to_owned(), line)
            })
            .collect();
        if got != expected {
            let shown: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
            failures.push(format!(
                "{}: expected {expected:?}, got {got:?}\n  {}",
                file.display(),
                shown.join("\n  ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn examples_round_trip_through_serialization() {
    let first = Loader::default().load_paths(&[examples_dir()]);
    assert!(first.findings.is_empty());
    for loaded in &first.resources {
        let json = serde_json::to_string_pretty(&loaded.resource).unwrap();
        let mut again = LoadResult::default();
        Loader::default().load_str(Path::new("round-trip.json"), &json, &mut again);
        assert!(again.findings.is_empty(), "{:?}", again.findings);
        assert_eq!(again.resources.len(), 1);
        assert_eq!(again.resources[0].resource, loaded.resource, "{json}");
        // Serialization is deterministic.
        assert_eq!(
            serde_json::to_string_pretty(&again.resources[0].resource).unwrap(),
            json
        );
    }
}
