//! `Scope::destination_rule`: Istio's lookup order for the DestinationRule of a host.

use crate::translate::Scope;
use crate::translate::cluster::test_support::{mesh, node};

const HOST: &str = "reviews.bookinfo.svc.cluster.local";

fn rule(name: &str, ns: &str, host: &str, extra: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  host: \"{host}\"\n{extra}---\n"
    )
}

/// The name of the rule a proxy in `ns` labelled `labels` gets for `HOST` declared in
/// `bookinfo`.
fn chosen(yaml: &str, ns: &str, labels: &[(&str, &str)]) -> Option<String> {
    let mesh = mesh(yaml);
    let node = node(ns, labels, "");
    let scope = Scope::new(&mesh, &node);
    scope
        .destination_rule(HOST, "bookinfo")
        .map(|(loaded, _)| loaded.resource.name().to_owned())
}

#[test]
fn own_namespace_then_service_namespace_then_root() {
    let all = [
        rule("in-root", "istio-system", HOST, ""),
        rule("in-service-ns", "bookinfo", HOST, ""),
        rule("in-client-ns", "client", HOST, ""),
    ]
    .concat();
    assert_eq!(chosen(&all, "client", &[]).as_deref(), Some("in-client-ns"));
    assert_eq!(chosen(&all, "other", &[]).as_deref(), Some("in-service-ns"));
    let root_only = rule("in-root", "istio-system", HOST, "");
    assert_eq!(chosen(&root_only, "other", &[]).as_deref(), Some("in-root"));
    assert_eq!(
        chosen(&rule("x", "elsewhere", HOST, ""), "other", &[]),
        None
    );
}

#[test]
fn export_to_limits_visibility() {
    let yaml = [
        rule("private", "bookinfo", HOST, "  exportTo: [\".\"]\n"),
        rule("in-root", "istio-system", HOST, ""),
    ]
    .concat();
    assert_eq!(chosen(&yaml, "bookinfo", &[]).as_deref(), Some("private"));
    assert_eq!(
        chosen(&yaml, "other", &[]).as_deref(),
        Some("in-root"),
        "a rule exported to its own namespace only is invisible elsewhere"
    );
    let named = rule("to-other", "bookinfo", HOST, "  exportTo: [other]\n");
    assert_eq!(chosen(&named, "other", &[]).as_deref(), Some("to-other"));
    assert_eq!(chosen(&named, "third", &[]), None);
}

#[test]
fn workload_selecting_rule_wins_in_its_namespace() {
    let yaml = [
        rule("general", "client", HOST, ""),
        rule(
            "selecting",
            "client",
            HOST,
            "  workloadSelector:\n    matchLabels: {app: ratings}\n",
        ),
    ]
    .concat();
    assert_eq!(
        chosen(&yaml, "client", &[("app", "ratings")]).as_deref(),
        Some("selecting")
    );
    assert_eq!(
        chosen(&yaml, "client", &[("app", "other")]).as_deref(),
        Some("general")
    );
    // A selecting rule in another namespace never applies.
    let elsewhere = rule(
        "selecting",
        "bookinfo",
        HOST,
        "  workloadSelector:\n    matchLabels: {app: ratings}\n",
    );
    assert_eq!(chosen(&elsewhere, "client", &[("app", "ratings")]), None);
}

#[test]
fn most_specific_host_wins() {
    let yaml = [
        rule("any", "bookinfo", "*", ""),
        rule("suffix", "bookinfo", "*.svc.cluster.local", ""),
        rule("narrow", "bookinfo", "*.bookinfo.svc.cluster.local", ""),
        rule("exact", "bookinfo", "reviews", ""),
    ]
    .concat();
    assert_eq!(chosen(&yaml, "bookinfo", &[]).as_deref(), Some("exact"));
    let wild = [
        rule("any", "bookinfo", "*", ""),
        rule("narrow", "bookinfo", "*.bookinfo.svc.cluster.local", ""),
        rule("suffix", "bookinfo", "*.svc.cluster.local", ""),
    ]
    .concat();
    assert_eq!(chosen(&wild, "bookinfo", &[]).as_deref(), Some("narrow"));
    // Short names resolve in the rule's namespace: `reviews` in `client` is another host.
    let other = rule("short", "client", "reviews", "");
    assert_eq!(chosen(&other, "client", &[]), None);
}

#[test]
fn ties_go_to_load_order_and_exact_names_match_case_insensitively() {
    let yaml = [
        rule(
            "first",
            "bookinfo",
            "Reviews.Bookinfo.svc.cluster.local",
            "",
        ),
        rule("second", "bookinfo", HOST, ""),
        rule("wild", "bookinfo", "*.bookinfo.svc.cluster.local", ""),
    ]
    .concat();
    assert_eq!(chosen(&yaml, "bookinfo", &[]).as_deref(), Some("first"));
    // A workload-selecting wildcard beats an exact rule without a selector.
    let selecting = [
        rule("exact", "client", HOST, ""),
        rule(
            "selecting-wild",
            "client",
            "*.svc.cluster.local",
            "  workloadSelector:\n    matchLabels: {app: ratings}\n",
        ),
    ]
    .concat();
    assert_eq!(
        chosen(&selecting, "client", &[("app", "ratings")]).as_deref(),
        Some("selecting-wild")
    );
    assert_eq!(chosen(&selecting, "client", &[]).as_deref(), Some("exact"));
}
