//! IST0130 / IST0131: route rules and match clauses that can never apply because an earlier
//! rule already takes all of their traffic.
//!
//! Rules are tried in order and the first match wins, so a later match is dead when some
//! earlier match *covers* it: every request the later one matches, the earlier one matches too.
//! Istio's analyzer only spots identical matches; weft also sees through prefixes
//! (`prefix: /api` covers `prefix: /api/v1`), catch-alls (`prefix: /`, no match at all) and
//! subsets of conditions (an earlier match with fewer conditions covers one with more).
//! When unsure, a match is treated as not covered: a finding is always a real shadowing.

use weft_api::common::{Labels, StringMatch};
use weft_api::diag::msg;
use weft_api::networking::VirtualService;
use weft_api::networking::virtual_service::{
    HttpMatchRequest, HttpRoute, L4MatchAttributes, TlsMatchAttributes,
};
use weft_api::validate::rules::compile_regex;
use weft_api::{Finding, Loaded};

use super::Context;
use crate::config::finding;

pub(crate) fn analyze(cx: &Context<'_>, out: &mut Vec<Finding>) {
    for (entry, vs) in cx.config.of::<VirtualService>() {
        let http: Vec<(Option<&str>, Vec<HttpMatchRequest>)> = vs
            .http
            .iter()
            .map(|r: &HttpRoute| (r.name.as_deref(), effective(&r.matches)))
            .collect();
        report(entry, "http", &http, http_covers, out);
        let tls: Vec<(Option<&str>, Vec<TlsMatchAttributes>)> = vs
            .tls
            .iter()
            .map(|r| (None, effective(&r.matches)))
            .collect();
        report(entry, "tls", &tls, tls_covers, out);
        let tcp: Vec<(Option<&str>, Vec<L4MatchAttributes>)> = vs
            .tcp
            .iter()
            .map(|r| (None, effective(&r.matches)))
            .collect();
        report(entry, "tcp", &tcp, tcp_covers, out);
    }
}

/// A rule without match clauses matches everything: the same as one empty clause.
fn effective<M: Clone + Default>(matches: &[M]) -> Vec<M> {
    if matches.is_empty() {
        vec![M::default()]
    } else {
        matches.to_vec()
    }
}

fn label(i: usize, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("#{i} ({n:?})"),
        None => format!("#{i}"),
    }
}

fn report<M: Default>(
    entry: &Loaded,
    section: &str,
    rules: &[(Option<&str>, Vec<M>)],
    covers: fn(&M, &M) -> bool,
    out: &mut Vec<Finding>,
) {
    for (i, (name, matches)) in rules.iter().enumerate() {
        // For each clause: the earliest prior rule with a clause covering it.
        let covered_by: Vec<Option<usize>> = matches
            .iter()
            .map(|m| {
                rules[..i]
                    .iter()
                    .position(|(_, prior)| prior.iter().any(|p| covers(p, m)))
            })
            .collect();
        if covered_by.iter().all(Option::is_some) {
            let first = covered_by.iter().flatten().min().copied().unwrap_or(0);
            let catch_all = rules
                .get(first)
                .is_some_and(|(_, ms)| ms.iter().any(|m| is_default(m, covers)));
            let reason = if catch_all {
                format!(
                    "rule {} has no effective match conditions and takes all traffic; only the last rule can have no matches",
                    label(first, rules[first].0)
                )
            } else {
                "all matches used by prior rules".to_owned()
            };
            out.push(finding(
                entry,
                msg::VIRTUAL_SERVICE_UNREACHABLE_RULE,
                Some(format!("spec.{section}[{i}]")),
                format!(
                    "VirtualService rule {} not used ({reason}).",
                    label(i, *name)
                ),
            ));
        } else {
            for (j, by) in covered_by.iter().enumerate() {
                if let Some(p) = by {
                    out.push(finding(
                        entry,
                        msg::VIRTUAL_SERVICE_INEFFECTIVE_MATCH,
                        Some(format!("spec.{section}[{i}].match[{j}]")),
                        format!(
                            "VirtualService rule {} match #{j} is not used (duplicate/overlapping match in rule {}).",
                            label(i, *name),
                            label(*p, rules[*p].0)
                        ),
                    ));
                }
            }
        }
    }
}

/// Whether `m` matches everything, judged by whether it covers the empty match.
fn is_default<M: Default>(m: &M, covers: fn(&M, &M) -> bool) -> bool {
    covers(m, &M::default())
}

/// Whether every value `b` accepts, `a` accepts too.
fn string_covers(a: &StringMatch, b: &StringMatch) -> bool {
    use StringMatch::*;
    match (a, b) {
        (Present, _) => true,
        (Exact(x), Exact(y)) => x == y,
        (Prefix(p), Exact(y) | Prefix(y)) => y.starts_with(p.as_str()),
        (Prefix(p), _) => p.is_empty(),
        (Regex(r), Regex(s)) => r == s || universal_regex(r),
        (Regex(r), Exact(y)) => compile_regex(r).is_ok_and(|re| re.is_match(y)),
        (Regex(r), _) => universal_regex(r),
        (Exact(_), _) => false,
    }
}

fn universal_regex(r: &str) -> bool {
    matches!(r, ".*" | "^.*$" | "(.*)")
}

/// A condition on a request attribute every request has (method, scheme, authority, path):
/// `a` covers `b` if `a` is absent, or `b` is present and covered, or `a` accepts anything.
fn optional_covers(a: Option<&StringMatch>, b: Option<&StringMatch>) -> bool {
    match (a, b) {
        (None, _) => true,
        (Some(a), Some(b)) => string_covers(a, b),
        (Some(a), None) => match a {
            StringMatch::Present => true,
            StringMatch::Prefix(p) => p.is_empty(),
            StringMatch::Regex(r) => universal_regex(r),
            StringMatch::Exact(_) => false,
        },
    }
}

fn uri_covers(a: &HttpMatchRequest, b: &HttpMatchRequest) -> bool {
    let universal_path = |m: &StringMatch| matches!(m, StringMatch::Prefix(p) if p == "/");
    match (&a.uri, &b.uri) {
        (None, _) => true,
        (Some(am), _) if universal_path(am) || optional_covers(Some(am), None) => true,
        (Some(_), None) => false,
        (Some(am), Some(bm)) => {
            if a.ignore_uri_case {
                string_covers(&lower(am), &lower(bm))
            } else {
                !b.ignore_uri_case && string_covers(am, bm)
            }
        }
    }
}

fn lower(m: &StringMatch) -> StringMatch {
    match m {
        StringMatch::Exact(s) => StringMatch::Exact(s.to_ascii_lowercase()),
        StringMatch::Prefix(s) => StringMatch::Prefix(s.to_ascii_lowercase()),
        other => other.clone(),
    }
}

/// Every keyed condition of `a` must be implied by `b`'s condition on the same key.
fn keyed_covers(
    a: &std::collections::BTreeMap<String, StringMatch>,
    b: &std::collections::BTreeMap<String, StringMatch>,
) -> bool {
    a.iter().all(|(k, am)| {
        b.iter()
            .find(|(bk, _)| bk.eq_ignore_ascii_case(k))
            .is_some_and(|(_, bm)| string_covers(am, bm))
    })
}

/// `withoutHeaders` excludes requests: `b` must exclude at least what `a` excludes.
fn exclusions_cover(
    a: &std::collections::BTreeMap<String, StringMatch>,
    b: &std::collections::BTreeMap<String, StringMatch>,
) -> bool {
    a.iter().all(|(k, am)| {
        b.iter()
            .find(|(bk, _)| bk.eq_ignore_ascii_case(k))
            .is_some_and(|(_, bm)| string_covers(bm, am))
    })
}

fn labels_cover(a: &Labels, b: &Labels) -> bool {
    a.iter().all(|(k, v)| b.get(k) == Some(v))
}

fn list_covers(a: &[String], b: &[String]) -> bool {
    a.is_empty() || (!b.is_empty() && b.iter().all(|x| a.contains(x)))
}

fn eq_or_unset<T: PartialEq>(a: &Option<T>, b: &Option<T>) -> bool {
    a.is_none() || a == b
}

fn http_covers(a: &HttpMatchRequest, b: &HttpMatchRequest) -> bool {
    uri_covers(a, b)
        && optional_covers(a.scheme.as_ref(), b.scheme.as_ref())
        && optional_covers(a.method.as_ref(), b.method.as_ref())
        && optional_covers(a.authority.as_ref(), b.authority.as_ref())
        && keyed_covers(&a.headers, &b.headers)
        && keyed_covers(&a.query_params, &b.query_params)
        && exclusions_cover(&a.without_headers, &b.without_headers)
        && eq_or_unset(&a.port, &b.port)
        && labels_cover(&a.source_labels, &b.source_labels)
        && list_covers(&a.gateways, &b.gateways)
        && eq_or_unset(&a.source_namespace, &b.source_namespace)
}

fn tls_covers(a: &TlsMatchAttributes, b: &TlsMatchAttributes) -> bool {
    let sni = a.sni_hosts.is_empty()
        || (!b.sni_hosts.is_empty()
            && b.sni_hosts.iter().all(|h| {
                a.sni_hosts
                    .iter()
                    .any(|p| weft_registry::host_matches(p, h))
            }));
    sni && list_covers(&a.destination_subnets, &b.destination_subnets)
        && eq_or_unset(&a.port, &b.port)
        && labels_cover(&a.source_labels, &b.source_labels)
        && list_covers(&a.gateways, &b.gateways)
        && eq_or_unset(&a.source_namespace, &b.source_namespace)
}

fn tcp_covers(a: &L4MatchAttributes, b: &L4MatchAttributes) -> bool {
    list_covers(&a.destination_subnets, &b.destination_subnets)
        && eq_or_unset(&a.port, &b.port)
        && eq_or_unset(&a.source_subnet, &b.source_subnet)
        && labels_cover(&a.source_labels, &b.source_labels)
        && list_covers(&a.gateways, &b.gateways)
        && eq_or_unset(&a.source_namespace, &b.source_namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(json: serde_json::Value) -> HttpMatchRequest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn prefixes_cover_longer_prefixes_and_exacts() {
        let a = m(serde_json::json!({"uri": {"prefix": "/api"}}));
        assert!(http_covers(
            &a,
            &m(serde_json::json!({"uri": {"prefix": "/api/v1"}}))
        ));
        assert!(http_covers(
            &a,
            &m(serde_json::json!({"uri": {"exact": "/api/x"}, "method": {"exact": "GET"}}))
        ));
        assert!(!http_covers(
            &a,
            &m(serde_json::json!({"uri": {"prefix": "/ap"}}))
        ));
        assert!(!http_covers(
            &a,
            &m(serde_json::json!({"method": {"exact": "GET"}}))
        ));
    }

    #[test]
    fn slash_prefix_and_empty_match_are_universal() {
        let slash = m(serde_json::json!({"uri": {"prefix": "/"}}));
        assert!(http_covers(&slash, &HttpMatchRequest::default()));
        assert!(http_covers(&HttpMatchRequest::default(), &slash));
    }

    #[test]
    fn more_conditions_are_covered_by_fewer() {
        let a = m(serde_json::json!({"headers": {"end-user": {"exact": "jason"}}}));
        let b = m(
            serde_json::json!({"headers": {"end-user": {"exact": "jason"}, "x": {"prefix": "y"}}, "uri": {"prefix": "/"}}),
        );
        assert!(http_covers(&a, &b));
        assert!(!http_covers(&b, &a));
        let other_user = m(serde_json::json!({"headers": {"end-user": {"exact": "bob"}}}));
        assert!(!http_covers(&a, &other_user));
    }

    #[test]
    fn regexes_cover_exact_values_they_match() {
        let a = m(serde_json::json!({"uri": {"regex": "/v[0-9]+"}}));
        assert!(http_covers(
            &a,
            &m(serde_json::json!({"uri": {"exact": "/v2"}}))
        ));
        assert!(!http_covers(
            &a,
            &m(serde_json::json!({"uri": {"exact": "/v2/x"}}))
        ));
        assert!(!http_covers(
            &a,
            &m(serde_json::json!({"uri": {"regex": "/v[0-9]"}}))
        ));
    }

    #[test]
    fn case_insensitive_matches() {
        let ci = m(serde_json::json!({"uri": {"prefix": "/API"}, "ignoreUriCase": true}));
        let cs = m(serde_json::json!({"uri": {"prefix": "/api/x"}}));
        assert!(http_covers(&ci, &cs));
        assert!(!http_covers(&cs, &ci));
    }

    #[test]
    fn ports_gateways_and_exclusions() {
        let a = m(serde_json::json!({"port": 80}));
        assert!(!http_covers(&a, &HttpMatchRequest::default()));
        assert!(http_covers(
            &a,
            &m(serde_json::json!({"port": 80, "uri": {"exact": "/"}}))
        ));
        let gw = m(serde_json::json!({"gateways": ["a", "b"]}));
        assert!(http_covers(&gw, &m(serde_json::json!({"gateways": ["a"]}))));
        assert!(!http_covers(&gw, &HttpMatchRequest::default()));
        let without = m(serde_json::json!({"withoutHeaders": {"x-test": {}}}));
        assert!(!http_covers(&without, &HttpMatchRequest::default()));
        assert!(http_covers(&without, &without));
    }
}
