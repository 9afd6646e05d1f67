//! The parsing layer's corpus through the converter: every valid bootstrap that uses only
//! supported features converts; the others fail with `Unsupported` naming the field; the
//! `differs/` files whose difference is a load-time check now fail as Envoy does. Also keeps
//! `docs/proxy-support.md` in step with the support tables.

use std::path::{Path, PathBuf};

use weft_proxy_config::{ErrorKind, convert::support_markdown, convert_bootstrap, parse_bootstrap};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// What converting each corpus file gives: `Ok`, or the error kind and a piece of the message
/// (or path).
enum Expect {
    Ok,
    Err(ErrorKind, &'static str),
}

const EXPECTATIONS: &[(&str, Expect)] = &[
    ("valid/anchors.yaml", Expect::Ok),
    ("valid/any_type_url_host.yaml", Expect::Ok),
    ("valid/basic.yaml", Expect::Ok),
    ("valid/camel_case.json", Expect::Ok),
    ("valid/camel_case.yaml", Expect::Ok),
    // Health-check request headers, retry budgets and upstream HTTP/2 settings are not modelled.
    (
        "valid/clusters.json",
        Expect::Err(
            ErrorKind::Unsupported,
            "cluster \"static_backend\" field \"request_headers_to_add\"",
        ),
    ),
    (
        "valid/clusters.yaml",
        Expect::Err(
            ErrorKind::Unsupported,
            "cluster \"static_backend\" field \"request_headers_to_add\"",
        ),
    ),
    ("valid/empty_object.yaml", Expect::Ok),
    (
        "valid/envoy_leniencies.json",
        Expect::Err(
            ErrorKind::Unsupported,
            "cluster \"backend\" field \"respect_dns_ttl\"",
        ),
    ),
    ("valid/envoy_leniencies.yaml", Expect::Ok),
    ("valid/filters.json", Expect::Ok),
    ("valid/filters.yaml", Expect::Ok),
    ("valid/flow_style.yaml", Expect::Ok),
    ("valid/map_key_rules_not_enforced.yaml", Expect::Ok),
    // weft has no runtime layer.
    (
        "valid/metadata_struct.yaml",
        Expect::Err(
            ErrorKind::Unsupported,
            "bootstrap field \"layered_runtime\"",
        ),
    ),
    ("valid/trailing_separator.yaml", Expect::Ok),
    ("valid/typed_struct.yaml", Expect::Ok),
    ("valid/yaml_float_and_large_int_as_string.yaml", Expect::Ok),
    // The load-time checks the parsing layer left to the converters, now as Envoy.
    (
        "differs/duplicate_cluster_name.yaml",
        Expect::Err(ErrorKind::Constraint, "duplicate cluster name"),
    ),
    (
        "differs/missing_certificate_file.yaml",
        Expect::Err(ErrorKind::InvalidValue, "missing.crt"),
    ),
    (
        "differs/route_to_unknown_cluster.yaml",
        Expect::Err(ErrorKind::Constraint, "unknown cluster \"nowhere\""),
    ),
    (
        "differs/router_not_last.yaml",
        Expect::Err(ErrorKind::Constraint, "must be the last HTTP filter"),
    ),
    ("differs/yaml11_boolean_word_in_string.yaml", Expect::Ok),
];

#[test]
fn corpus_converts_or_fails_as_expected() {
    let mut listed = Vec::new();
    for (rel, expect) in EXPECTATIONS {
        listed.push(*rel);
        let path = testdata().join("bootstraps").join(rel);
        let text = std::fs::read_to_string(&path).unwrap();
        let bootstrap = parse_bootstrap(&path, &text).unwrap_or_else(|e| panic!("{rel}: {e}"));
        // Envoy runs the corpus with testdata/ as its working directory (see the README).
        let got = convert_bootstrap(&bootstrap, &testdata());
        match (expect, got) {
            (Expect::Ok, Ok(_)) => {}
            (Expect::Ok, Err(e)) => panic!("{rel}: expected to convert, got {e}"),
            (Expect::Err(kind, text), Ok(_)) => {
                panic!("{rel}: expected a {kind:?} error mentioning {text:?}, converted")
            }
            (Expect::Err(kind, text), Err(e)) => {
                assert_eq!(e.kind, *kind, "{rel}: {e}");
                assert!(e.to_string().contains(text), "{rel}: {e} lacks {text:?}");
            }
        }
    }
    // Every valid/ file has an expectation, so new corpus files are not skipped silently.
    for entry in std::fs::read_dir(testdata().join("bootstraps/valid")).unwrap() {
        let name = format!("valid/{}", entry.unwrap().file_name().to_string_lossy());
        assert!(
            listed.contains(&name.as_str()),
            "{name} has no expectation in EXPECTATIONS"
        );
    }
}

#[test]
fn load_bootstrap_resolves_files_against_the_working_directory_and_reports_the_line() {
    // The test runs in the crate directory, not testdata/, so `certs/server.crt` is missing
    // there, exactly as for Envoy started from the wrong directory.
    let path = testdata().join("bootstraps/valid/basic.yaml");
    let err = weft_proxy_config::load_bootstrap(&path).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidValue);
    assert_eq!(err.file.as_deref(), Some(path.as_path()));
    assert_eq!(err.line, Some(42), "{err}");
    let cwd_cert = std::env::current_dir().unwrap().join("certs/server.crt");
    assert!(
        err.message.contains(&cwd_cert.display().to_string()),
        "{err}"
    );
}

#[test]
fn support_doc_is_up_to_date() {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/proxy-support.md");
    let want = support_markdown();
    let have = std::fs::read_to_string(&doc).unwrap_or_default();
    if have != want {
        if std::env::var_os("WEFT_BLESS").is_some() {
            std::fs::write(&doc, &want).unwrap();
            return;
        }
        panic!(
            "docs/proxy-support.md is out of date; rerun with WEFT_BLESS=1 or replace it with:\n\n{want}"
        );
    }
}
