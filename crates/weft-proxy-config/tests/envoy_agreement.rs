//! The bootstrap corpus as a specification, checked against the real Envoy.
//!
//! - every file under `testdata/bootstraps/valid/` parses;
//! - every file under `testdata/bootstraps/invalid/` is rejected, with a message containing each
//!   `# expect: TEXT` header line (YAML files; `TEXT` may include `file:line:` and the path);
//! - every file under `testdata/bootstraps/differs/` gets the verdicts its `# weft: ok|error` and
//!   `# envoy: ok|error` headers state: the known, deliberate differences, kept visible;
//! - with `WEFT_ENVOY` set (`. scripts/tool-paths`), `envoy --mode validate` gives every file the
//!   verdict its directory says. Without it the Envoy half is skipped, unless `CI` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers outside #[test] functions

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Mutex, atomic::AtomicUsize, atomic::Ordering},
    time::{Duration, Instant},
};

use weft_proxy_config::parse_bootstrap;

/// Envoy resolves the corpus' relative certificate paths (`certs/server.crt`) from here.
fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

#[derive(Debug)]
struct Case {
    /// Relative to `testdata/`, as Envoy is given it.
    rel: PathBuf,
    text: String,
    weft_ok: bool,
    envoy_ok: bool,
}

fn corpus() -> Vec<Case> {
    let mut cases = Vec::new();
    for dir in ["valid", "invalid", "differs"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(testdata().join("bootstraps").join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().is_some_and(|n| n != "README.md"))
            .collect();
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            let rel = path.strip_prefix(testdata()).unwrap().to_owned();
            let (weft_ok, envoy_ok) = match dir {
                "valid" => (true, true),
                "invalid" => (false, false),
                _ => (
                    header(&text, "weft").first().map(String::as_str) == Some("ok"),
                    header(&text, "envoy").first().map(String::as_str) == Some("ok"),
                ),
            };
            cases.push(Case {
                rel,
                text,
                weft_ok,
                envoy_ok,
            });
        }
    }
    assert!(cases.len() >= 60, "corpus shrank to {} files", cases.len());
    cases
}

/// Values of `# name: value` lines at the top of a file.
fn header(text: &str, name: &str) -> Vec<String> {
    let prefix = format!("# {name}:");
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().to_owned())
        .collect()
}

#[test]
fn weft_verdicts_match_the_corpus() {
    let mut failures = Vec::new();
    for case in corpus() {
        let result = parse_bootstrap(&case.rel, &case.text);
        match (&result, case.weft_ok) {
            (Ok(_), true) => {}
            (Err(e), false) => {
                for want in header(&case.text, "expect") {
                    if !e.to_string().contains(&want) {
                        failures.push(format!(
                            "{}: error {e}\n    lacks {want:?}",
                            case.rel.display()
                        ));
                    }
                }
            }
            (Ok(_), false) => failures.push(format!(
                "{}: accepted, expected an error",
                case.rel.display()
            )),
            (Err(e), true) => failures.push(format!("{}: rejected: {e}", case.rel.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every invalid YAML file says what the error must contain: the corpus documents messages too.
#[test]
fn invalid_yaml_files_state_their_error() {
    let missing: Vec<String> = corpus()
        .into_iter()
        .filter(|c| {
            !c.weft_ok && !c.text.is_empty() && c.rel.extension().is_some_and(|e| e == "yaml")
        })
        .filter(|c| header(&c.text, "expect").is_empty())
        .map(|c| c.rel.display().to_string())
        .collect();
    assert!(missing.is_empty(), "no `# expect:` header: {missing:?}");
}

#[test]
fn envoy_verdicts_match_the_corpus() {
    let Some(envoy) = std::env::var_os("WEFT_ENVOY") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must compare against Envoy: run scripts/install-test-deps and source scripts/tool-paths"
        );
        eprintln!(
            "WEFT_ENVOY is not set: skipping the comparison with Envoy (source scripts/tool-paths)"
        );
        return;
    };
    let cases = corpus();
    let next = AtomicUsize::new(0);
    let disagreements = Mutex::new(Vec::new());
    let started = Instant::now();
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while let Some(case) = cases.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let (ok, output) = envoy_validate(Path::new(&envoy), &case.rel);
                    if ok != case.envoy_ok {
                        disagreements.lock().unwrap().push(format!(
                            "{}: Envoy says {}, the corpus expects {}\n    {}",
                            case.rel.display(),
                            verdict(ok),
                            verdict(case.envoy_ok),
                            output.trim().lines().last().unwrap_or_default()
                        ));
                    }
                }
            });
        }
    });
    eprintln!(
        "{} files validated by Envoy in {:?}",
        cases.len(),
        started.elapsed()
    );
    let disagreements = disagreements.into_inner().unwrap();
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "error" }
}

/// Runs `envoy --mode validate` on one file (nothing listens: validate mode binds no socket).
fn envoy_validate(envoy: &Path, rel: &Path) -> (bool, String) {
    let mut child = Command::new(envoy)
        .args([
            "--mode",
            "validate",
            "-l",
            "critical",
            "--use-dynamic-base-id",
            "-c",
        ])
        .arg(rel)
        .current_dir(testdata())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("WEFT_ENVOY runs");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("envoy --mode validate {} timed out", rel.display());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ok =
        out.status.success() && text.contains(&format!("configuration '{}' OK", rel.display()));
    (ok, text)
}
