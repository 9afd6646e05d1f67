//! Field rules shared by all resources, after Istio's `pkg/config/validation`.
//!
//! Each `check_*` function records issues at the checker's current path and returns whether
//! the value was valid, so callers can skip dependent checks.

use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration as StdDuration;

use regex::Regex;

use super::Checker;
use crate::common::{Duration, Labels, StringMatch, WorkloadSelector};

/// Upper bound on the compiled size of a user regex, so a hostile pattern cannot exhaust memory.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compiles `pattern` the way weft matches Istio regexes: RE2 syntax, anchored at both ends
/// (Istio's regex matches are full-string matches), with a bounded program size.
pub fn compile_regex(pattern: &str) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// Records an error unless `pattern` compiles.
pub fn check_regex(cx: &mut Checker, pattern: &str) -> bool {
    if pattern.is_empty() {
        cx.error("regex must not be empty");
        return false;
    }
    match compile_regex(pattern) {
        Ok(_) => true,
        Err(e) => {
            let detail = e.to_string();
            let detail = detail.lines().last().unwrap_or("").trim();
            cx.error(format!("invalid regex {pattern:?}: {detail}"));
            false
        }
    }
}

/// Records issues in a `StringMatch`: invalid regexes, and empty values where `allow_present`
/// is false (`{}` only means "present" for headers and query parameters).
pub fn check_string_match(cx: &mut Checker, m: &StringMatch, allow_present: bool) -> bool {
    match m {
        StringMatch::Regex(r) => cx.field("regex", |cx| check_regex(cx, r)),
        StringMatch::Present if !allow_present => {
            cx.error("one of exact, prefix or regex must be set");
            false
        }
        _ => true,
    }
}

/// A port number in `1..=65535`.
pub fn check_port(cx: &mut Checker, port: u32) -> bool {
    if (1..=65535).contains(&port) {
        true
    } else {
        cx.error(format!("port number {port} must be in the range 1..65535"));
        false
    }
}

/// A duration of at least 1ms, in whole milliseconds (Istio's `ValidateDuration`).
pub fn check_duration(cx: &mut Checker, d: Duration) -> bool {
    let d = d.get();
    if d < StdDuration::from_millis(1) {
        cx.error(format!("duration {} must be at least 1ms", Duration(d)));
        false
    } else if !d.subsec_nanos().is_multiple_of(1_000_000) {
        cx.error(format!(
            "duration {} has sub-millisecond precision; only whole milliseconds are supported",
            Duration(d)
        ));
        false
    } else {
        true
    }
}

/// A timeout: zero (meaning "disabled") or a valid [`check_duration`].
pub fn check_timeout(cx: &mut Checker, d: Duration) -> bool {
    d.get().is_zero() || check_duration(cx, d)
}

/// A percentage in `[0, 100]`.
pub fn check_percent(cx: &mut Checker, value: f64) -> bool {
    if value.is_finite() && (0.0..=100.0).contains(&value) {
        true
    } else {
        cx.error(format!("percentage {value} must be in the range 0..100"));
        false
    }
}

static DNS1123_LABEL: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new("^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$").ok());

/// Whether `s` is a DNS-1123 label (63 characters at most; letters, digits and inner dashes).
pub fn is_dns1123_label(s: &str) -> bool {
    s.len() <= 63 && DNS1123_LABEL.as_ref().is_some_and(|re| re.is_match(s))
}

/// Records an error unless `s` is a DNS-1123 label, naming what `what` is.
pub fn check_dns1123_label(cx: &mut Checker, what: &str, s: &str) -> bool {
    if is_dns1123_label(s) {
        true
    } else {
        cx.error(format!(
            "{what} {s:?} is not a valid DNS-1123 label (letters, digits and '-', at most 63 characters)"
        ));
        false
    }
}

/// Whether `host` is a fully-qualified or short DNS name (dot-separated DNS-1123 labels).
pub fn is_fqdn(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty() && host.len() <= 255 && host.split('.').all(is_dns1123_label)
}

/// A host that may start with a wildcard label: `*`, `*.example.com`, `reviews`,
/// `reviews.bookinfo.svc.cluster.local` (Istio's `ValidateWildcardDomain`).
pub fn check_wildcard_host(cx: &mut Checker, host: &str) -> bool {
    if host.is_empty() {
        cx.error("host must not be empty");
        return false;
    }
    if host == "*" {
        return true;
    }
    let rest = host.strip_prefix("*.").or_else(|| host.strip_prefix('*'));
    let ok = match rest {
        Some(rest) => !rest.is_empty() && is_fqdn(rest),
        None => is_fqdn(host),
    };
    if !ok {
        cx.error(format!(
            "host {host:?} is not a valid host name; expected a DNS name, optionally starting with \"*.\""
        ));
    }
    ok
}

/// An IP address or CIDR block (`10.0.0.0/8`, `2001:db8::/32`, `127.0.0.1`).
pub fn is_ip_or_cidr(s: &str) -> bool {
    match s.split_once('/') {
        None => s.parse::<IpAddr>().is_ok(),
        Some((ip, bits)) => match (ip.parse::<IpAddr>(), bits.parse::<u8>()) {
            (Ok(IpAddr::V4(_)), Ok(b)) => b <= 32,
            (Ok(IpAddr::V6(_)), Ok(b)) => b <= 128,
            _ => false,
        },
    }
}

/// Records an error unless `s` is an IP address or CIDR block.
pub fn check_ip_or_cidr(cx: &mut Checker, s: &str) -> bool {
    if is_ip_or_cidr(s) {
        true
    } else {
        cx.error(format!("{s:?} is not a valid IP address or CIDR block"));
        false
    }
}

static LABEL_NAME: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new("^[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?$").ok());

/// Whether `s` is a Kubernetes label value (or name part of a key): 63 characters at most,
/// alphanumeric at both ends, `-_.` inside. The empty string is a valid value.
pub fn is_label_value(s: &str) -> bool {
    s.is_empty() || (s.len() <= 63 && LABEL_NAME.as_ref().is_some_and(|re| re.is_match(s)))
}

/// Whether `key` is a Kubernetes label key: `[prefix/]name` with a DNS subdomain prefix.
pub fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        p.len() <= 253
            && !p.is_empty()
            && p.split('.')
                .all(|l| is_dns1123_label(l) && l == l.to_ascii_lowercase())
    });
    prefix_ok && !name.is_empty() && is_label_value(name)
}

/// Records an error for every invalid key or value in a label map.
pub fn check_labels(cx: &mut Checker, labels: &Labels) -> bool {
    let mut ok = true;
    for (k, v) in labels {
        if !is_label_key(k) {
            cx.error(format!(
                "invalid label key {k:?}: expected [prefix/]name, name at most 63 characters of letters, digits, '-', '_' or '.'"
            ));
            ok = false;
        } else if !is_label_value(v) {
            cx.error(format!(
                "invalid value {v:?} for label {k:?}: at most 63 characters of letters, digits, '-', '_' or '.'"
            ));
            ok = false;
        }
    }
    ok
}

/// Records issues in a workload selector's labels (path `.matchLabels`).
pub fn check_workload_selector(cx: &mut Checker, selector: &WorkloadSelector) -> bool {
    cx.field("matchLabels", |cx| {
        let mut ok = check_labels(cx, &selector.match_labels);
        for v in selector.match_labels.values() {
            if v.contains('*') {
                cx.error("wildcards are not supported in workload selector values");
                ok = false;
            }
        }
        ok
    })
}

static HEADER_NAME: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new("^[-_A-Za-z0-9]+$").ok());

/// An HTTP header name as Istio accepts it in matches and manipulation (`^[-_A-Za-z0-9]+$`;
/// pseudo-headers such as `:authority` are allowed where `allow_pseudo` is set).
pub fn check_header_name(cx: &mut Checker, name: &str, allow_pseudo: bool) -> bool {
    let bare = if allow_pseudo {
        name.strip_prefix(':').unwrap_or(name)
    } else {
        name
    };
    if HEADER_NAME.as_ref().is_some_and(|re| re.is_match(bare)) {
        true
    } else {
        cx.error(format!("invalid header name {name:?}"));
        false
    }
}

/// A reference to a gateway in a VirtualService: `mesh`, `name` or `namespace/name`.
pub fn check_gateway_name(cx: &mut Checker, gw: &str) -> bool {
    if gw == "mesh" {
        return true;
    }
    let ok = match gw.split_once('/') {
        Some((ns, name)) => is_dns1123_label(ns) && is_fqdn(name),
        None => is_fqdn(gw),
    };
    if !ok {
        cx.error(format!(
            "invalid gateway name {gw:?}: expected \"mesh\", \"name\" or \"namespace/name\""
        ));
    }
    ok
}

/// A `namespace/host` pair as used by Sidecar egress and Gateway servers: namespace is `*`,
/// `.` or a DNS label; host is a wildcard host. `~` is allowed as namespace when `allow_tilde`.
pub fn check_namespaced_host(cx: &mut Checker, value: &str, allow_tilde: bool) -> bool {
    let Some((ns, host)) = value.split_once('/') else {
        cx.error(format!(
            "{value:?} must be of the form namespace/dnsName (for example \"*/reviews.com\" or \"./*\")"
        ));
        return false;
    };
    let ns_ok = ns == "*" || ns == "." || (allow_tilde && ns == "~") || is_dns1123_label(ns);
    if !ns_ok {
        cx.error(format!(
            "invalid namespace {ns:?} in {value:?}: expected \"*\", \".\" or a namespace name"
        ));
        return false;
    }
    check_wildcard_host(cx, host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: impl FnOnce(&mut Checker) -> bool) -> (bool, Vec<String>) {
        let mut cx = Checker::new("spec");
        let ok = f(&mut cx);
        (
            ok,
            cx.into_issues().into_iter().map(|i| i.message).collect(),
        )
    }

    #[test]
    fn regexes_are_anchored_and_checked() {
        let re = compile_regex("v[12]").unwrap();
        assert!(re.is_match("v1"));
        assert!(!re.is_match("xv1"));
        assert!(!run(|cx| check_regex(cx, "(")).0);
        assert!(!run(|cx| check_regex(cx, "")).0);
        assert!(run(|cx| check_regex(cx, ".*")).0);
        // An enormous repetition exceeds the size limit instead of allocating gigabytes.
        assert!(!run(|cx| check_regex(cx, "(a{1000}){1000}")).0);
    }

    #[test]
    fn ports() {
        assert!(run(|cx| check_port(cx, 80)).0);
        assert!(!run(|cx| check_port(cx, 0)).0);
        assert!(!run(|cx| check_port(cx, 65536)).0);
    }

    #[test]
    fn durations() {
        let d = |s: &str| s.parse::<Duration>().unwrap();
        assert!(run(|cx| check_duration(cx, d("1ms"))).0);
        assert!(!run(|cx| check_duration(cx, d("500us"))).0);
        assert!(!run(|cx| check_duration(cx, d("1500us"))).0);
        assert!(run(|cx| check_timeout(cx, d("0s"))).0);
    }

    #[test]
    fn percents() {
        assert!(run(|cx| check_percent(cx, 0.5)).0);
        assert!(!run(|cx| check_percent(cx, 100.1)).0);
        assert!(!run(|cx| check_percent(cx, -1.0)).0);
        assert!(!run(|cx| check_percent(cx, f64::NAN)).0);
    }

    #[test]
    fn hosts() {
        for ok in [
            "*",
            "*.example.com",
            "reviews",
            "reviews.bookinfo.svc.cluster.local",
            "a-b.c",
        ] {
            assert!(run(|cx| check_wildcard_host(cx, ok)).0, "{ok}");
        }
        for bad in [
            "",
            "*.",
            "foo.*",
            "a..b",
            "-a.com",
            "a_b.com",
            "*foo*.com",
            "exa mple.com",
        ] {
            assert!(!run(|cx| check_wildcard_host(cx, bad)).0, "{bad}");
        }
    }

    #[test]
    fn labels() {
        assert!(is_label_key("app"));
        assert!(is_label_key("app.kubernetes.io/name"));
        assert!(!is_label_key("/app"));
        assert!(!is_label_key("Bad Prefix/app"));
        assert!(is_label_value(""));
        assert!(!is_label_value("-v1"));
        assert!(!is_label_value(&"x".repeat(64)));
        let bad: Labels = [("app".to_owned(), "a b".to_owned())].into();
        let (ok, msgs) = run(|cx| check_labels(cx, &bad));
        assert!(!ok);
        assert!(msgs[0].contains("\"a b\""));
    }

    #[test]
    fn cidrs() {
        for ok in ["10.0.0.0/8", "127.0.0.1", "::1", "2001:db8::/32"] {
            assert!(is_ip_or_cidr(ok), "{ok}");
        }
        for bad in ["10.0.0.0/33", "10.0.0", "host", "::1/129", "1.2.3.4/"] {
            assert!(!is_ip_or_cidr(bad), "{bad}");
        }
    }

    #[test]
    fn gateways_and_namespaced_hosts() {
        assert!(run(|cx| check_gateway_name(cx, "mesh")).0);
        assert!(run(|cx| check_gateway_name(cx, "istio-system/ingress")).0);
        assert!(!run(|cx| check_gateway_name(cx, "a/b/c")).0);
        assert!(run(|cx| check_namespaced_host(cx, "./*", false)).0);
        assert!(run(|cx| check_namespaced_host(cx, "*/reviews.com", false)).0);
        assert!(!run(|cx| check_namespaced_host(cx, "~/*", false)).0);
        assert!(run(|cx| check_namespaced_host(cx, "~/*", true)).0);
        assert!(!run(|cx| check_namespaced_host(cx, "reviews.com", false)).0);
    }

    #[test]
    fn header_names() {
        assert!(run(|cx| check_header_name(cx, "x-user", false)).0);
        assert!(!run(|cx| check_header_name(cx, ":authority", false)).0);
        assert!(run(|cx| check_header_name(cx, ":authority", true)).0);
        assert!(!run(|cx| check_header_name(cx, "bad header", false)).0);
    }
}
