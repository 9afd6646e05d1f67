//! Virtual host selection, route matching, actions and configuration errors.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method};
use proptest::prelude::*;

use crate::*;

fn route(m: RouteMatch, cluster: &str) -> Route {
    Route::new(m, Action::Route(RouteAction::cluster(cluster)))
}

fn vhost(name: &str, domains: &[&str], routes: Vec<Route>) -> VirtualHost {
    VirtualHost {
        name: name.to_owned(),
        domains: domains.iter().map(|d| (*d).to_owned()).collect(),
        routes,
        ..VirtualHost::default()
    }
}

fn table(vhosts: Vec<VirtualHost>) -> RouteTable {
    match RouteTable::new(RouteConfiguration {
        virtual_hosts: vhosts,
        ..RouteConfiguration::default()
    }) {
        Ok(t) => t,
        Err(e) => panic!("config rejected: {e}"),
    }
}

fn one_vhost(routes: Vec<Route>) -> RouteTable {
    table(vec![vhost("vh", &["*"], routes)])
}

fn config_error(vhosts: Vec<VirtualHost>) -> RouteConfigError {
    match RouteTable::new(RouteConfiguration {
        virtual_hosts: vhosts,
        ..RouteConfiguration::default()
    }) {
        Ok(_) => panic!("config accepted"),
        Err(e) => e,
    }
}

static EMPTY: std::sync::LazyLock<HeaderMap> = std::sync::LazyLock::new(HeaderMap::new);

fn view<'a>(path: &'a str, headers: &'a HeaderMap) -> RequestView<'a> {
    RequestView {
        method: &Method::GET,
        scheme: "http",
        authority: "example.com",
        path_and_query: path,
        protocol: None,
        headers,
    }
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_static(v));
    }
    h
}

/// The cluster of the route `t` picks for `req`, or `None`.
fn cluster(t: &RouteTable, req: &RequestView<'_>, random: u64) -> Option<String> {
    let m = t.route(req, random)?;
    match m.action() {
        RouteEntryAction::Route(RouteTarget {
            cluster: ClusterTarget::Cluster(c),
            ..
        }) => Some(c.clone()),
        other => Some(format!("{other:?}")),
    }
}

fn path_cluster(t: &RouteTable, path: &str) -> Option<String> {
    cluster(t, &view(path, &EMPTY), 0)
}

// ---------------------------------------------------------------- virtual host selection

fn vhost_table(ignore_port: bool) -> RouteTable {
    RouteTable::new(RouteConfiguration {
        virtual_hosts: vec![
            vhost("exact", &["foo.example.com", "Mixed.Example.com"], vec![]),
            vhost("suffix", &["*.example.com"], vec![]),
            vhost("longer-suffix", &["*-bar.example.com"], vec![]),
            vhost("prefix", &["foo.*"], vec![]),
            vhost("longer-prefix", &["foo.example.*"], vec![]),
            vhost("with-port", &["port.example.org:8080"], vec![]),
            vhost("v6", &["[::1]", "[::1]:9090"], vec![]),
            vhost("default", &["*"], vec![]),
        ],
        ignore_port_in_host_matching: ignore_port,
        ..RouteConfiguration::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn vhost_name(t: &RouteTable, host: &str) -> Option<String> {
    t.select_virtual_host(host)
        .and_then(|id| t.virtual_host(id))
        .map(|v| v.name().to_owned())
}

#[test]
fn exact_domain_beats_every_wildcard() {
    let t = vhost_table(false);
    assert_eq!(vhost_name(&t, "foo.example.com").as_deref(), Some("exact"));
}

#[test]
fn longest_suffix_wildcard_wins() {
    let t = vhost_table(false);
    assert_eq!(vhost_name(&t, "a.example.com").as_deref(), Some("suffix"));
    assert_eq!(
        vhost_name(&t, "x-bar.example.com").as_deref(),
        Some("longer-suffix")
    );
}

#[test]
fn suffix_wildcard_needs_at_least_one_character() {
    let t = vhost_table(false);
    assert_eq!(vhost_name(&t, ".example.com").as_deref(), Some("default"));
    assert_eq!(
        vhost_name(&t, "-bar.example.com").as_deref(),
        Some("suffix")
    );
}

#[test]
fn suffix_beats_prefix_and_longest_prefix_wins() {
    let t = vhost_table(false);
    // Both `*.example.com` and `foo.example.*` would match; suffixes are tried first.
    assert_eq!(
        vhost_name(&t, "foo.example.com.example.com").as_deref(),
        Some("suffix")
    );
    assert_eq!(
        vhost_name(&t, "foo.example.net").as_deref(),
        Some("longer-prefix")
    );
    assert_eq!(vhost_name(&t, "foo.org").as_deref(), Some("prefix"));
    assert_eq!(vhost_name(&t, "foo.").as_deref(), Some("default"));
}

#[test]
fn star_is_the_fallback_and_absent_without_it() {
    let t = vhost_table(false);
    assert_eq!(vhost_name(&t, "unknown.net").as_deref(), Some("default"));
    let t = table(vec![vhost("only", &["a.com"], vec![])]);
    assert_eq!(vhost_name(&t, "b.com"), None);
}

#[test]
fn host_matching_is_case_insensitive() {
    let t = vhost_table(false);
    assert_eq!(vhost_name(&t, "FOO.Example.COM").as_deref(), Some("exact"));
    assert_eq!(
        vhost_name(&t, "mixed.example.com").as_deref(),
        Some("exact")
    );
    assert_eq!(vhost_name(&t, "A.EXAMPLE.COM").as_deref(), Some("suffix"));
}

#[test]
fn port_is_part_of_the_host_unless_ignored() {
    let t = vhost_table(false);
    // foo.example.com:80 is not the exact domain; the prefix wildcard foo.example.* matches it.
    assert_eq!(
        vhost_name(&t, "foo.example.com:80").as_deref(),
        Some("longer-prefix")
    );
    assert_eq!(
        vhost_name(&t, "port.example.org:8080").as_deref(),
        Some("with-port")
    );
    assert_eq!(
        vhost_name(&t, "port.example.org").as_deref(),
        Some("default")
    );
    assert_eq!(
        vhost_name(&t, "a.example.com:443").as_deref(),
        Some("default")
    );

    let t = vhost_table(true);
    assert_eq!(
        vhost_name(&t, "foo.example.com:80").as_deref(),
        Some("exact")
    );
    assert_eq!(
        vhost_name(&t, "a.example.com:443").as_deref(),
        Some("suffix")
    );
    // The configured domain keeps its port and can no longer match a stripped host.
    assert_eq!(
        vhost_name(&t, "port.example.org:8080").as_deref(),
        Some("default")
    );
}

#[test]
fn ipv6_literals() {
    let t = vhost_table(false);
    assert_eq!(vhost_name(&t, "[::1]").as_deref(), Some("v6"));
    assert_eq!(vhost_name(&t, "[::1]:9090").as_deref(), Some("v6"));
    assert_eq!(vhost_name(&t, "[::1]:80").as_deref(), Some("default"));
    let t = vhost_table(true);
    assert_eq!(vhost_name(&t, "[::1]:80").as_deref(), Some("v6"));
    assert_eq!(vhost_name(&t, "[::1]").as_deref(), Some("v6"));
}

#[test]
fn envoy_port_stripping_rules() {
    use crate::table::strip_port;
    assert_eq!(strip_port("a.com:80"), "a.com");
    assert_eq!(strip_port("a.com"), "a.com");
    assert_eq!(strip_port("[::1]:80"), "[::1]");
    assert_eq!(strip_port("[::1]"), "[::1]");
    // Envoy's getPortStart does not recognise unbracketed IPv6; it strips the last group.
    assert_eq!(strip_port("::1"), ":");
    assert_eq!(strip_port("a.com:"), "a.com");
}

#[test]
fn vhost_header_selects_by_another_header() {
    let t = RouteTable::new(RouteConfiguration {
        virtual_hosts: vec![
            vhost("a", &["a.com"], vec![route(RouteMatch::prefix("/"), "a")]),
            vhost("b", &["b.com"], vec![route(RouteMatch::prefix("/"), "b")]),
        ],
        vhost_header: Some("x-vhost".into()),
        ..RouteConfiguration::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let h = headers(&[("x-vhost", "b.com")]);
    let mut req = view("/", &h);
    req.authority = "a.com";
    assert_eq!(cluster(&t, &req, 0).as_deref(), Some("b"));
    assert_eq!(cluster(&t, &view("/", &EMPTY), 0), None);
}

// ---------------------------------------------------------------- path specifiers

#[test]
fn first_matching_route_wins_in_order() {
    let t = one_vhost(vec![
        route(RouteMatch::prefix("/api/"), "api"),
        route(RouteMatch::prefix("/api/v2/"), "never"),
        route(RouteMatch::prefix("/"), "root"),
    ]);
    assert_eq!(path_cluster(&t, "/api/v2/x").as_deref(), Some("api"));
    assert_eq!(path_cluster(&t, "/other").as_deref(), Some("root"));
}

#[test]
fn prefix_ignores_query_and_fragment() {
    let t = one_vhost(vec![route(RouteMatch::prefix("/foo"), "foo")]);
    assert_eq!(path_cluster(&t, "/foobar").as_deref(), Some("foo"));
    assert_eq!(path_cluster(&t, "/fo?o").as_deref(), None);
    assert_eq!(path_cluster(&t, "/fo#o").as_deref(), None);
    assert_eq!(path_cluster(&t, "/Foo").as_deref(), None);
}

#[test]
fn exact_path_ignores_query_string() {
    let t = one_vhost(vec![route(RouteMatch::path("/exact"), "exact")]);
    assert_eq!(path_cluster(&t, "/exact").as_deref(), Some("exact"));
    assert_eq!(path_cluster(&t, "/exact?a=b").as_deref(), Some("exact"));
    assert_eq!(path_cluster(&t, "/exact#frag").as_deref(), Some("exact"));
    assert_eq!(path_cluster(&t, "/exact/").as_deref(), None);
    assert_eq!(path_cluster(&t, "/EXACT").as_deref(), None);
}

#[test]
fn case_insensitive_prefix_and_path() {
    let mut p = RouteMatch::prefix("/Api/");
    p.case_sensitive = false;
    let mut e = RouteMatch::path("/Exact");
    e.case_sensitive = false;
    let t = one_vhost(vec![route(p, "prefix"), route(e, "exact")]);
    assert_eq!(path_cluster(&t, "/aPI/x").as_deref(), Some("prefix"));
    assert_eq!(path_cluster(&t, "/EXACT?q").as_deref(), Some("exact"));
    assert_eq!(path_cluster(&t, "/exac").as_deref(), None);
}

#[test]
fn safe_regex_must_match_the_whole_path_without_query() {
    let t = one_vhost(vec![route(
        RouteMatch::new(PathSpecifier::SafeRegex(r"/users/\d+".into())),
        "users",
    )]);
    assert_eq!(path_cluster(&t, "/users/42").as_deref(), Some("users"));
    assert_eq!(path_cluster(&t, "/users/42?x=1").as_deref(), Some("users"));
    assert_eq!(path_cluster(&t, "/users/42/x").as_deref(), None);
    assert_eq!(path_cluster(&t, "/v1/users/42").as_deref(), None);
}

#[test]
fn case_sensitive_does_not_apply_to_regex() {
    let mut m = RouteMatch::new(PathSpecifier::SafeRegex("/abc".into()));
    m.case_sensitive = false;
    let t = one_vhost(vec![route(m, "r")]);
    assert_eq!(path_cluster(&t, "/ABC"), None);
    assert_eq!(path_cluster(&t, "/abc").as_deref(), Some("r"));
}

#[test]
fn path_separated_prefix_edges() {
    let t = one_vhost(vec![route(
        RouteMatch::new(PathSpecifier::PathSeparatedPrefix("/foo".into())),
        "foo",
    )]);
    assert_eq!(path_cluster(&t, "/foo").as_deref(), Some("foo"));
    assert_eq!(path_cluster(&t, "/foo/").as_deref(), Some("foo"));
    assert_eq!(path_cluster(&t, "/foo/bar").as_deref(), Some("foo"));
    assert_eq!(path_cluster(&t, "/foo?x=1").as_deref(), Some("foo"));
    assert_eq!(path_cluster(&t, "/foo#f").as_deref(), Some("foo"));
    assert_eq!(path_cluster(&t, "/foobar"), None);
    assert_eq!(path_cluster(&t, "/fo"), None);
    assert_eq!(path_cluster(&t, "/FOO"), None);
}

#[test]
fn path_separated_prefix_case_insensitive() {
    let mut m = RouteMatch::new(PathSpecifier::PathSeparatedPrefix("/Foo".into()));
    m.case_sensitive = false;
    let t = one_vhost(vec![route(m, "foo")]);
    assert_eq!(path_cluster(&t, "/fOO/x").as_deref(), Some("foo"));
    assert_eq!(path_cluster(&t, "/fOOx"), None);
}

#[test]
fn path_separated_prefix_validation() {
    for bad in ["/foo/", "/fo?o", "/fo#o", ""] {
        let e = config_error(vec![vhost(
            "v",
            &["*"],
            vec![route(
                RouteMatch::new(PathSpecifier::PathSeparatedPrefix(bad.into())),
                "c",
            )],
        )]);
        assert!(e.to_string().contains("path_separated_prefix"), "{e}");
    }
}

#[test]
fn connect_matcher_matches_connect_only_and_pathless_requests_need_it() {
    let t = one_vhost(vec![
        route(RouteMatch::prefix(""), "any-path"),
        route(RouteMatch::new(PathSpecifier::ConnectMatcher), "connect"),
    ]);
    let mut req = view("", &EMPTY);
    req.method = &Method::CONNECT;
    assert_eq!(cluster(&t, &req, 0).as_deref(), Some("connect"));
    let get = view("", &EMPTY);
    assert_eq!(cluster(&t, &get, 0), None);
    // An extended CONNECT has a path, so ordinary routes apply first.
    let mut ext = view("/ws", &EMPTY);
    ext.method = &Method::CONNECT;
    ext.protocol = Some("websocket");
    assert_eq!(cluster(&t, &ext, 0).as_deref(), Some("any-path"));
}

// ---------------------------------------------------------------- header matchers

fn header_route(m: HeaderMatcher) -> RouteTable {
    let mut rm = RouteMatch::prefix("/");
    rm.headers.push(m);
    one_vhost(vec![route(rm, "hit")])
}

fn hits(t: &RouteTable, h: &HeaderMap) -> bool {
    cluster(t, &view("/", h), 0).is_some()
}

#[test]
fn exact_header_match() {
    let t = header_route(HeaderMatcher::new(
        "x-a",
        HeaderMatchSpecifier::Exact("v".into()),
    ));
    assert!(hits(&t, &headers(&[("x-a", "v")])));
    assert!(!hits(&t, &headers(&[("x-a", "V")])));
    assert!(!hits(&t, &EMPTY));
}

#[test]
fn empty_exact_matches_any_present_value() {
    let t = header_route(HeaderMatcher::new(
        "x-a",
        HeaderMatchSpecifier::Exact(String::new()),
    ));
    assert!(hits(&t, &headers(&[("x-a", "anything")])));
    assert!(!hits(&t, &EMPTY));
}

#[test]
fn regex_header_match_is_full() {
    let t = header_route(HeaderMatcher::new(
        "x-a",
        HeaderMatchSpecifier::SafeRegex(r"\d{3}".into()),
    ));
    assert!(hits(&t, &headers(&[("x-a", "123")])));
    assert!(!hits(&t, &headers(&[("x-a", "1234")])));
}

#[test]
fn range_header_match_is_half_open() {
    let t = header_route(HeaderMatcher::new(
        "x-n",
        HeaderMatchSpecifier::Range { start: -10, end: 0 },
    ));
    assert!(hits(&t, &headers(&[("x-n", "-10")])));
    assert!(hits(&t, &headers(&[("x-n", "-1")])));
    assert!(!hits(&t, &headers(&[("x-n", "0")])));
    assert!(!hits(&t, &headers(&[("x-n", "-1x")])));
    assert!(!hits(&t, &headers(&[("x-n", "-1.5")])));
}

#[test]
fn present_match_true_and_false() {
    let t = header_route(HeaderMatcher::new(
        "x-a",
        HeaderMatchSpecifier::Present(true),
    ));
    assert!(hits(&t, &headers(&[("x-a", "")])));
    assert!(!hits(&t, &EMPTY));
    let t = header_route(HeaderMatcher::new(
        "x-a",
        HeaderMatchSpecifier::Present(false),
    ));
    assert!(!hits(&t, &headers(&[("x-a", "")])));
    assert!(hits(&t, &EMPTY));
}

#[test]
fn present_match_inverted() {
    let mut m = HeaderMatcher::new("x-a", HeaderMatchSpecifier::Present(true));
    m.invert_match = true;
    let t = header_route(m);
    assert!(!hits(&t, &headers(&[("x-a", "1")])));
    assert!(hits(&t, &EMPTY));
}

#[test]
fn prefix_suffix_contains() {
    let t = header_route(HeaderMatcher::new(
        "x-a",
        HeaderMatchSpecifier::Prefix("ab".into()),
    ));
    assert!(hits(&t, &headers(&[("x-a", "abc")])));
    assert!(!hits(&t, &headers(&[("x-a", "cab")])));
    let t = header_route(HeaderMatcher::new(
        "x-a",
        HeaderMatchSpecifier::Suffix("bc".into()),
    ));
    assert!(hits(&t, &headers(&[("x-a", "abc")])));
    assert!(!hits(&t, &headers(&[("x-a", "bca")])));
    let t = header_route(HeaderMatcher::new(
        "x-a",
        HeaderMatchSpecifier::Contains("b".into()),
    ));
    assert!(hits(&t, &headers(&[("x-a", "abc")])));
    assert!(!hits(&t, &headers(&[("x-a", "ac")])));
}

#[test]
fn string_match_ignore_case() {
    let mut sm = StringMatcher::new(StringPattern::Exact("Value".into()));
    sm.ignore_case = true;
    let t = header_route(HeaderMatcher::new(
        "x-a",
        HeaderMatchSpecifier::StringMatch(sm),
    ));
    assert!(hits(&t, &headers(&[("x-a", "vALUE")])));
    assert!(!hits(&t, &headers(&[("x-a", "value2")])));
    let sm = StringMatcher::new(StringPattern::Suffix(".COM".into()));
    let t = header_route(HeaderMatcher::new(
        "x-a",
        HeaderMatchSpecifier::StringMatch(sm),
    ));
    assert!(!hits(&t, &headers(&[("x-a", "a.com")])));
}

#[test]
fn invert_match_and_missing_headers() {
    let mut m = HeaderMatcher::new("x-a", HeaderMatchSpecifier::Exact("v".into()));
    m.invert_match = true;
    let t = header_route(m.clone());
    assert!(!hits(&t, &headers(&[("x-a", "v")])));
    assert!(hits(&t, &headers(&[("x-a", "w")])));
    // A missing header fails even when inverted...
    assert!(!hits(&t, &EMPTY));
    // ...unless it is treated as empty: "" is not "v", inverted → match.
    m.treat_missing_header_as_empty = true;
    assert!(hits(&header_route(m), &EMPTY));
}

#[test]
fn treat_missing_header_as_empty_without_invert() {
    let mut m = HeaderMatcher::new("x-a", HeaderMatchSpecifier::SafeRegex("a*".into()));
    m.treat_missing_header_as_empty = true;
    assert!(hits(&header_route(m), &EMPTY));
    let mut m = HeaderMatcher::new("x-n", HeaderMatchSpecifier::Range { start: 0, end: 10 });
    m.treat_missing_header_as_empty = true;
    assert!(!hits(&header_route(m), &EMPTY));
}

#[test]
fn repeated_headers_are_matched_individually_by_default() {
    let h = headers(&[("x-role", "user"), ("x-role", "admin")]);
    let t = header_route(HeaderMatcher::new(
        "x-role",
        HeaderMatchSpecifier::Exact("admin".into()),
    ));
    assert!(hits(&t, &h));
    let t = header_route(HeaderMatcher::new(
        "x-role",
        HeaderMatchSpecifier::Exact("user,admin".into()),
    ));
    assert!(!hits(&t, &h));
    // A single line containing a comma is still one value.
    assert!(hits(&t, &headers(&[("x-role", "user,admin")])));
    // Inverted: matches only when no value matches.
    let mut m = HeaderMatcher::new("x-role", HeaderMatchSpecifier::Exact("admin".into()));
    m.invert_match = true;
    assert!(!hits(&header_route(m), &h));
}

#[test]
fn repeated_headers_joined_with_comma_in_legacy_mode() {
    let mut rm = RouteMatch::prefix("/");
    rm.headers.push(HeaderMatcher::new(
        "x-role",
        HeaderMatchSpecifier::Exact("user,admin".into()),
    ));
    let t = RouteTable::new(RouteConfiguration {
        virtual_hosts: vec![vhost("v", &["*"], vec![route(rm, "hit")])],
        multi_value_headers: MultiValueHeaders::Joined,
        ..RouteConfiguration::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(hits(
        &t,
        &headers(&[("x-role", "user"), ("x-role", "admin")])
    ));
    assert!(!hits(&t, &headers(&[("x-role", "admin")])));
}

#[test]
fn pseudo_headers_are_matchable() {
    let mut rm = RouteMatch::prefix("/");
    rm.headers = vec![
        HeaderMatcher::new(":method", HeaderMatchSpecifier::Exact("POST".into())),
        HeaderMatcher::new(":authority", HeaderMatchSpecifier::Suffix(".com".into())),
        HeaderMatcher::new(":scheme", HeaderMatchSpecifier::Exact("https".into())),
        HeaderMatcher::new(":path", HeaderMatchSpecifier::Contains("q=1".into())),
    ];
    let t = one_vhost(vec![route(rm, "hit")]);
    let mut req = view("/x?q=1", &EMPTY);
    req.method = &Method::POST;
    req.scheme = "https";
    assert_eq!(cluster(&t, &req, 0).as_deref(), Some("hit"));
    req.scheme = "http";
    assert_eq!(cluster(&t, &req, 0), None);
}

#[test]
fn all_header_matchers_must_match() {
    let mut rm = RouteMatch::prefix("/");
    rm.headers = vec![
        HeaderMatcher::new("x-a", HeaderMatchSpecifier::Present(true)),
        HeaderMatcher::new("x-b", HeaderMatchSpecifier::Present(true)),
    ];
    let t = one_vhost(vec![route(rm, "hit")]);
    assert!(hits(&t, &headers(&[("x-a", "1"), ("x-b", "1")])));
    assert!(!hits(&t, &headers(&[("x-a", "1")])));
}

// ---------------------------------------------------------------- query, grpc, runtime

fn query_route(q: QueryParameterMatcher) -> RouteTable {
    let mut rm = RouteMatch::prefix("/");
    rm.query_parameters.push(q);
    one_vhost(vec![route(rm, "hit")])
}

#[test]
fn query_string_match_uses_first_raw_value() {
    let t = query_route(QueryParameterMatcher {
        name: "debug".into(),
        specifier: QueryParameterMatchSpecifier::StringMatch(StringMatcher::new(
            StringPattern::Exact("1".into()),
        )),
    });
    assert!(path_cluster(&t, "/?debug=1").is_some());
    assert!(path_cluster(&t, "/?x=2&debug=1&debug=2").is_some());
    assert!(path_cluster(&t, "/?debug=2&debug=1").is_none());
    assert!(path_cluster(&t, "/?debug=%31").is_none());
    assert!(path_cluster(&t, "/").is_none());
}

#[test]
fn query_present_match() {
    let present = query_route(QueryParameterMatcher {
        name: "p".into(),
        specifier: QueryParameterMatchSpecifier::Present(true),
    });
    assert!(path_cluster(&present, "/?p").is_some());
    assert!(path_cluster(&present, "/?p=").is_some());
    assert!(path_cluster(&present, "/?q=p").is_none());
    let absent = query_route(QueryParameterMatcher {
        name: "p".into(),
        specifier: QueryParameterMatchSpecifier::Present(false),
    });
    assert!(path_cluster(&absent, "/?q=1").is_some());
    assert!(path_cluster(&absent, "/").is_some());
    assert!(path_cluster(&absent, "/?p=1").is_none());
}

#[test]
fn grpc_match_requires_grpc_content_type() {
    let mut rm = RouteMatch::prefix("/");
    rm.grpc = true;
    let t = one_vhost(vec![route(rm, "grpc")]);
    assert!(hits(&t, &headers(&[("content-type", "application/grpc")])));
    assert!(hits(
        &t,
        &headers(&[("content-type", "application/grpc+proto")])
    ));
    assert!(!hits(
        &t,
        &headers(&[("content-type", "application/grpc-web")])
    ));
    assert!(!hits(&t, &headers(&[("content-type", "application/json")])));
    assert!(!hits(&t, &EMPTY));
}

#[test]
fn runtime_fraction_uses_random_modulo_denominator() {
    let mut rm = RouteMatch::prefix("/");
    rm.runtime_fraction = Some(FractionalPercent {
        numerator: 25,
        denominator: Denominator::TenThousand,
    });
    let t = one_vhost(vec![
        route(rm, "canary"),
        route(RouteMatch::prefix("/"), "stable"),
    ]);
    let pick = |r| cluster(&t, &view("/", &EMPTY), r);
    assert_eq!(pick(24).as_deref(), Some("canary"));
    assert_eq!(pick(25).as_deref(), Some("stable"));
    assert_eq!(pick(10_024).as_deref(), Some("canary"));
    assert_eq!(pick(10_025).as_deref(), Some("stable"));
}

#[test]
fn fractional_percent_denominators() {
    let f = |n, d| FractionalPercent {
        numerator: n,
        denominator: d,
    };
    assert!(f(1, Denominator::Hundred).evaluate(100));
    assert!(!f(1, Denominator::Hundred).evaluate(101));
    assert!(f(1, Denominator::Million).evaluate(1_000_000));
    assert!(!f(1, Denominator::Million).evaluate(999_999));
    assert!(f(200, Denominator::Hundred).evaluate(99));
    assert!(!f(0, Denominator::Hundred).evaluate(0));
}

// ---------------------------------------------------------------- weighted clusters

fn weighted(weights: &[(&str, u32)]) -> RouteTable {
    let w = WeightedClusters {
        clusters: weights
            .iter()
            .map(|(n, w)| ClusterWeight::new(*n, *w))
            .collect(),
        header_name: Some("x-random".into()),
    };
    one_vhost(vec![Route::new(
        RouteMatch::prefix("/"),
        Action::Route(RouteAction::new(ClusterSpecifier::WeightedClusters(w))),
    )])
}

fn weighted_targets(t: &RouteTable) -> &WeightedTargets {
    match t.virtual_hosts()[0].routes()[0].action() {
        RouteEntryAction::Route(RouteTarget {
            cluster: ClusterTarget::Weighted(w),
            ..
        }) => w,
        other => panic!("not weighted: {other:?}"),
    }
}

fn picked(w: &WeightedTargets, value: u64) -> String {
    match &w.pick_by_value(value).cluster {
        ClusterRef::Name(n) => n.clone(),
        ClusterRef::Header(h) => h.clone(),
    }
}

#[test]
fn weighted_pick_boundaries() {
    let t = weighted(&[("a", 10), ("zero", 0), ("b", 20), ("c", 70)]);
    let w = weighted_targets(&t);
    assert_eq!(w.total_weight(), 100);
    assert_eq!(picked(w, 0), "a");
    assert_eq!(picked(w, 9), "a");
    assert_eq!(picked(w, 10), "b");
    assert_eq!(picked(w, 29), "b");
    assert_eq!(picked(w, 30), "c");
    assert_eq!(picked(w, 99), "c");
    assert_eq!(picked(w, 100), "a");
    assert_eq!(picked(w, u64::MAX), "b"); // u64::MAX % 100 == 15
}

#[test]
fn weighted_random_value_header() {
    let t = weighted(&[("a", 1), ("b", 1)]);
    let w = weighted_targets(&t);
    let name = |c: &WeightedTarget| format!("{:?}", c.cluster);
    assert_eq!(
        name(w.pick(&headers(&[("x-random", "1")]), 0)),
        name(w.pick_by_value(1))
    );
    // Two values or garbage fall back to the random number.
    assert_eq!(
        name(w.pick(&headers(&[("x-random", "1"), ("x-random", "1")]), 0)),
        name(w.pick_by_value(0))
    );
    assert_eq!(
        name(w.pick(&headers(&[("x-random", "x")]), 0)),
        name(w.pick_by_value(0))
    );
}

#[test]
fn weighted_total_must_be_positive_and_fit_u32() {
    let bad = |weights: Vec<ClusterWeight>| {
        let w = WeightedClusters {
            clusters: weights,
            header_name: None,
        };
        config_error(vec![vhost(
            "v",
            &["*"],
            vec![Route::new(
                RouteMatch::prefix("/"),
                Action::Route(RouteAction::new(ClusterSpecifier::WeightedClusters(w))),
            )],
        )])
    };
    assert!(
        bad(vec![ClusterWeight::new("a", 0)])
            .to_string()
            .contains("greater than 0")
    );
    assert!(bad(vec![]).to_string().contains("at least one"));
    let e = bad(vec![
        ClusterWeight::new("a", u32::MAX),
        ClusterWeight::new("b", 1),
    ]);
    assert!(e.to_string().contains("exceeds"), "{e}");
}

// ---------------------------------------------------------------- rewrites and redirects

fn action_route(m: RouteMatch, action: RouteAction) -> RouteTable {
    one_vhost(vec![Route::new(m, Action::Route(action))])
}

fn rewritten(t: &RouteTable, path: &str) -> Option<String> {
    t.route(&view(path, &EMPTY), 0)?.rewritten_path(path)
}

#[test]
fn prefix_rewrite_replaces_the_matched_prefix_and_keeps_the_query() {
    let mut a = RouteAction::cluster("c");
    a.prefix_rewrite = Some("/v2/".into());
    let t = action_route(RouteMatch::prefix("/v1/"), a.clone());
    assert_eq!(
        rewritten(&t, "/v1/users?x=1").as_deref(),
        Some("/v2/users?x=1")
    );

    // Trailing slash semantics are textual, as Envoy warns.
    a.prefix_rewrite = Some("/".into());
    let t = action_route(RouteMatch::prefix("/prefix"), a.clone());
    assert_eq!(rewritten(&t, "/prefix/etc").as_deref(), Some("//etc"));
    let t = action_route(RouteMatch::prefix("/prefix/"), a.clone());
    assert_eq!(rewritten(&t, "/prefix/etc").as_deref(), Some("/etc"));

    // Exact path routes replace the whole path, regex routes the whole path without query.
    a.prefix_rewrite = Some("/new".into());
    let t = action_route(RouteMatch::path("/old"), a.clone());
    assert_eq!(rewritten(&t, "/old?q").as_deref(), Some("/new?q"));
    let t = action_route(
        RouteMatch::new(PathSpecifier::SafeRegex("/o.*".into())),
        a.clone(),
    );
    assert_eq!(rewritten(&t, "/old/x?q").as_deref(), Some("/new?q"));

    // Case-insensitive match: the request's spelling of the prefix is replaced.
    let mut m = RouteMatch::prefix("/OLD/");
    m.case_sensitive = false;
    a.prefix_rewrite = Some("/n/".into());
    let t = action_route(m, a);
    assert_eq!(rewritten(&t, "/old/x").as_deref(), Some("/n/x"));
}

#[test]
fn regex_rewrite_is_global_and_preserves_query() {
    let mut a = RouteAction::cluster("c");
    a.regex_rewrite = Some(RegexRewrite {
        pattern: "^/service/([^/]+)(/.*)$".into(),
        substitution: r"\2/instance/\1".into(),
    });
    let t = action_route(RouteMatch::prefix("/"), a.clone());
    assert_eq!(
        rewritten(&t, "/service/foo/v1/api?x=/service/y").as_deref(),
        Some("/v1/api/instance/foo?x=/service/y")
    );
    a.regex_rewrite = Some(RegexRewrite {
        pattern: "o".into(),
        substitution: "0".into(),
    });
    let t = action_route(RouteMatch::prefix("/"), a.clone());
    assert_eq!(
        rewritten(&t, "/foo/boo?o=o").as_deref(),
        Some("/f00/b00?o=o")
    );
    // An empty result is ignored.
    a.regex_rewrite = Some(RegexRewrite {
        pattern: ".*".into(),
        substitution: String::new(),
    });
    let t = action_route(RouteMatch::prefix("/"), a);
    assert_eq!(rewritten(&t, "/x"), None);
}

#[test]
fn regex_rewrite_substitution_validation() {
    let bad = |sub: &str| {
        let mut a = RouteAction::cluster("c");
        a.regex_rewrite = Some(RegexRewrite {
            pattern: "(a)".into(),
            substitution: sub.into(),
        });
        RouteTable::new(RouteConfiguration {
            virtual_hosts: vec![vhost(
                "v",
                &["*"],
                vec![Route::new(RouteMatch::prefix("/"), Action::Route(a))],
            )],
            ..RouteConfiguration::default()
        })
        .err()
    };
    assert!(bad(r"\2").is_some());
    assert!(bad(r"\x").is_some());
    assert!(bad(r"\1\\\0$1").is_none());
}

#[test]
fn host_rewrites() {
    let h = headers(&[("x-host", "from-header")]);
    let host = |rw: HostRewrite| {
        let mut a = RouteAction::cluster("c");
        a.host_rewrite = Some(rw);
        let t = action_route(RouteMatch::prefix("/"), a);
        let req = view("/svc/api?x", &h);
        t.route(&req, 0).and_then(|m| m.rewritten_host(&req))
    };
    assert_eq!(
        host(HostRewrite::Literal("lit".into())).as_deref(),
        Some("lit")
    );
    assert_eq!(
        host(HostRewrite::Header("x-host".into())).as_deref(),
        Some("from-header")
    );
    assert_eq!(host(HostRewrite::Header("x-missing".into())), None);
    assert_eq!(host(HostRewrite::Auto), None);
    let path_regex = RegexRewrite {
        pattern: "^/(.+)/.+$".into(),
        substitution: r"\1.internal".into(),
    };
    assert_eq!(
        host(HostRewrite::PathRegex(path_regex)).as_deref(),
        Some("svc.internal")
    );
}

fn redirect(m: RouteMatch, r: RedirectAction, req: &RequestView<'_>) -> Option<String> {
    let t = one_vhost(vec![Route::new(m, Action::Redirect(r))]);
    t.route(req, 0)?.redirect_url(req)
}

#[test]
fn https_redirect_strips_default_http_port() {
    let r = RedirectAction {
        scheme: Some(SchemeRedirect::Https),
        ..RedirectAction::default()
    };
    let mut req = view("/a?b=c", &EMPTY);
    req.authority = "example.com:80";
    assert_eq!(
        redirect(RouteMatch::prefix("/"), r.clone(), &req).as_deref(),
        Some("https://example.com/a?b=c")
    );
    req.authority = "example.com:8080";
    assert_eq!(
        redirect(RouteMatch::prefix("/"), r, &req).as_deref(),
        Some("https://example.com:8080/a?b=c")
    );
}

#[test]
fn redirect_host_port_path_and_query() {
    let mut req = view("/old/x?q=1", &EMPTY);
    req.authority = "[::1]:8080";
    let r = RedirectAction {
        port_redirect: Some(9443),
        ..RedirectAction::default()
    };
    assert_eq!(
        redirect(RouteMatch::prefix("/"), r, &req).as_deref(),
        Some("http://[::1]:9443/old/x?q=1")
    );
    let r = RedirectAction {
        host_redirect: Some("new.com".into()),
        path: Some(RedirectPath::PathRedirect("/new".into())),
        response_code: RedirectResponseCode::Found,
        ..RedirectAction::default()
    };
    assert_eq!(
        redirect(RouteMatch::prefix("/"), r.clone(), &req).as_deref(),
        Some("http://new.com/new?q=1")
    );
    let r = RedirectAction {
        strip_query: true,
        ..r
    };
    assert_eq!(
        redirect(RouteMatch::prefix("/"), r.clone(), &req).as_deref(),
        Some("http://new.com/new")
    );
    // A query in path_redirect replaces the request's and survives strip_query.
    let r = RedirectAction {
        path: Some(RedirectPath::PathRedirect("/new?z=9".into())),
        ..r
    };
    assert_eq!(
        redirect(RouteMatch::prefix("/"), r, &req).as_deref(),
        Some("http://new.com/new?z=9")
    );
}

#[test]
fn redirect_prefix_and_regex_rewrite() {
    let req = view("/old/x?q=1", &EMPTY);
    let r = RedirectAction {
        path: Some(RedirectPath::PrefixRewrite("/new/".into())),
        ..RedirectAction::default()
    };
    assert_eq!(
        redirect(RouteMatch::prefix("/old/"), r, &req).as_deref(),
        Some("http://example.com/new/x?q=1")
    );
    let r = RedirectAction {
        path: Some(RedirectPath::RegexRewrite(RegexRewrite {
            pattern: "/old/(.*)".into(),
            substitution: r"/v2/\1".into(),
        })),
        strip_query: true,
        ..RedirectAction::default()
    };
    assert_eq!(
        redirect(RouteMatch::prefix("/"), r, &req).as_deref(),
        Some("http://example.com/v2/x")
    );
}

#[test]
fn redirect_helper_adds_leading_slash_and_response_codes() {
    let url = redirect_url(
        &RedirectRequest {
            scheme: "https",
            authority: "a.com:443",
            path_and_query: "/p",
        },
        &RedirectParts {
            scheme: Some("http"),
            path: Some("x"),
            ..RedirectParts::default()
        },
    );
    assert_eq!(url, "http://a.com/x");
    assert_eq!(
        RedirectResponseCode::default().status(),
        http::StatusCode::MOVED_PERMANENTLY
    );
    assert_eq!(
        RedirectResponseCode::PermanentRedirect.status().as_u16(),
        308
    );
}

#[test]
fn direct_response_and_defaults() {
    let t = one_vhost(vec![
        Route::new(
            RouteMatch::path("/health"),
            Action::DirectResponse(DirectResponseAction {
                status: 200,
                body: Some(bytes::Bytes::from_static(b"ok")),
            }),
        ),
        route(RouteMatch::prefix("/"), "c"),
    ]);
    let m = t
        .route(&view("/health", &EMPTY), 0)
        .unwrap_or_else(|| panic!("no route"));
    match m.action() {
        RouteEntryAction::DirectResponse(d) => {
            assert_eq!(d.status.as_u16(), 200);
            assert_eq!(d.body.as_deref(), Some(&b"ok"[..]));
        }
        other => panic!("{other:?}"),
    }
    let m = t
        .route(&view("/x", &EMPTY), 0)
        .unwrap_or_else(|| panic!("no route"));
    match m.action() {
        RouteEntryAction::Route(r) => {
            assert_eq!(r.timeout, Duration::from_secs(15));
            assert_eq!(r.cluster_not_found_response_code.status().as_u16(), 503);
            assert!(r.retry_policy.is_none());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn retry_and_mirror_policies_are_inherited() {
    let mut vh = vhost("v", &["*"], vec![route(RouteMatch::prefix("/a"), "a")]);
    vh.retry_policy = Some(RetryPolicyConfig {
        retry_on: "5xx".into(),
        ..RetryPolicyConfig::default()
    });
    let mut own = RouteAction::cluster("b");
    own.retry_policy = Some(RetryPolicyConfig {
        retry_on: "reset".into(),
        num_retries: Some(3),
        ..RetryPolicyConfig::default()
    });
    vh.routes
        .push(Route::new(RouteMatch::prefix("/b"), Action::Route(own)));
    let t = RouteTable::new(RouteConfiguration {
        virtual_hosts: vec![vh],
        request_mirror_policies: vec![RequestMirrorPolicy {
            cluster: ClusterRef::Name("shadow".into()),
            runtime_fraction: None,
            trace_sampled: None,
        }],
        ..RouteConfiguration::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let target = |p| match t.route(&view(p, &EMPTY), 0).map(|m| m.action()) {
        Some(RouteEntryAction::Route(r)) => r.clone(),
        other => panic!("{other:?}"),
    };
    let a = target("/a");
    assert_eq!(
        a.retry_policy.as_ref().map(|p| p.retry_on),
        Some(RetryOn::FIVE_XX)
    );
    assert_eq!(a.request_mirror_policies.len(), 1);
    let b = target("/b");
    assert_eq!(
        b.retry_policy.as_ref().map(|p| (p.retry_on, p.num_retries)),
        Some((RetryOn::RESET, 3))
    );
}

#[test]
fn per_filter_config_specificity() {
    let mut r: Route<&'static str> = Route::new(
        RouteMatch::prefix("/"),
        Action::Route(RouteAction::cluster("c")),
    );
    r.typed_per_filter_config.insert("authz".into(), "route");
    let vh = VirtualHost {
        domains: vec!["*".into()],
        routes: vec![r],
        typed_per_filter_config: [("authz".to_owned(), "vhost"), ("rl".to_owned(), "vhost")].into(),
        ..VirtualHost::default()
    };
    let t = RouteTable::new(RouteConfiguration {
        virtual_hosts: vec![vh],
        typed_per_filter_config: [("authz".to_owned(), "config")].into(),
        ..RouteConfiguration::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let m = t
        .route(&view("/", &EMPTY), 0)
        .unwrap_or_else(|| panic!("no route"));
    assert_eq!(
        m.per_filter_configs("authz").copied().collect::<Vec<_>>(),
        ["config", "vhost", "route"]
    );
    assert_eq!(m.most_specific_per_filter_config("rl"), Some(&"vhost"));
    assert_eq!(m.most_specific_per_filter_config("none"), None);
}

// ---------------------------------------------------------------- configuration errors

#[test]
fn duplicate_domains_are_rejected() {
    let e = config_error(vec![
        vhost("a", &["foo.com"], vec![]),
        vhost("b", &["FOO.com"], vec![]),
    ]);
    assert_eq!(
        e,
        RouteConfigError::DuplicateDomain {
            field: "virtual_hosts[1].domains[0]".into(),
            domain: "foo.com".into()
        }
    );
    let e = config_error(vec![vhost("a", &["*.foo.com", "*.foo.com"], vec![])]);
    assert!(matches!(e, RouteConfigError::DuplicateDomain { .. }), "{e}");
    let e = config_error(vec![
        vhost("a", &["foo.*"], vec![]),
        vhost("b", &["FOO.*"], vec![]),
    ]);
    assert!(matches!(e, RouteConfigError::DuplicateDomain { .. }), "{e}");
}

#[test]
fn two_star_domains_are_rejected() {
    let e = config_error(vec![vhost("a", &["*"], vec![]), vhost("b", &["*"], vec![])]);
    assert_eq!(
        e,
        RouteConfigError::MultipleDefaultVirtualHosts {
            field: "virtual_hosts[1].domains[0]".into(),
            first: "a".into()
        }
    );
}

#[test]
fn bad_regexes_are_rejected_with_their_field() {
    let e = config_error(vec![vhost(
        "a",
        &["*"],
        vec![route(
            RouteMatch::new(PathSpecifier::SafeRegex("(".into())),
            "c",
        )],
    )]);
    match e {
        RouteConfigError::InvalidRegex { field, pattern, .. } => {
            assert_eq!(field, "virtual_hosts[0].routes[0].match.safe_regex");
            assert_eq!(pattern, "(");
        }
        other => panic!("{other}"),
    }
    let mut rm = RouteMatch::prefix("/");
    rm.headers.push(HeaderMatcher::new(
        "x",
        HeaderMatchSpecifier::SafeRegex("[".into()),
    ));
    let e = config_error(vec![vhost("a", &["*"], vec![route(rm, "c")])]);
    assert!(e.to_string().contains("headers[0].safe_regex_match"), "{e}");
}

#[test]
fn unknown_retry_on_names_are_ignored_like_envoy() {
    let mut vh = vhost("a", &["*"], vec![]);
    vh.retry_policy = Some(RetryPolicyConfig {
        retry_on: "5xx, connect-failure,bogus".into(),
        ..RetryPolicyConfig::default()
    });
    let table = RouteTable::<()>::new(RouteConfiguration {
        virtual_hosts: vec![vh],
        ..RouteConfiguration::default()
    })
    .expect("Envoy accepts unknown retry_on names");
    let policy = table.virtual_hosts()[0].retry_policy().expect("policy");
    assert!(
        policy
            .retry_on
            .contains(RetryOn::parse("5xx,connect-failure").unwrap())
    );
    assert_eq!(
        RetryOn::parse_lenient("5xx,bogus").1,
        vec!["bogus".to_owned()]
    );
}

#[test]
fn other_config_rules() {
    let e = config_error(vec![vhost("a", &[], vec![])]);
    assert!(e.to_string().contains("at least one domain"), "{e}");

    let mut a = RouteAction::cluster("c");
    a.prefix_rewrite = Some("/x".into());
    a.regex_rewrite = Some(RegexRewrite {
        pattern: "a".into(),
        substitution: "b".into(),
    });
    let e = config_error(vec![vhost(
        "a",
        &["*"],
        vec![Route::new(RouteMatch::prefix("/"), Action::Route(a))],
    )]);
    assert!(e.to_string().contains("only one of prefix_rewrite"), "{e}");

    let mut a = RouteAction::cluster("c");
    a.upgrade_configs = vec![
        UpgradeConfig {
            upgrade_type: "websocket".into(),
            enabled: None,
        },
        UpgradeConfig {
            upgrade_type: "WebSocket".into(),
            enabled: Some(false),
        },
    ];
    let e = config_error(vec![vhost(
        "a",
        &["*"],
        vec![Route::new(RouteMatch::prefix("/"), Action::Route(a))],
    )]);
    assert!(e.to_string().contains("duplicate upgrade"), "{e}");

    let big = DirectResponseAction {
        status: 200,
        body: Some(bytes::Bytes::from(vec![b'x'; 4097])),
    };
    let e = config_error(vec![vhost(
        "a",
        &["*"],
        vec![Route::new(
            RouteMatch::prefix("/"),
            Action::DirectResponse(big),
        )],
    )]);
    assert!(e.to_string().contains("maximum is 4096"), "{e}");

    let bad_status = DirectResponseAction {
        status: 99,
        body: None,
    };
    let e = config_error(vec![vhost(
        "a",
        &["*"],
        vec![Route::new(
            RouteMatch::prefix("/"),
            Action::DirectResponse(bad_status),
        )],
    )]);
    assert!(e.to_string().contains("status"), "{e}");

    let mut sm = StringMatcher::new(StringPattern::SafeRegex("a".into()));
    sm.ignore_case = true;
    let mut rm = RouteMatch::prefix("/");
    rm.headers.push(HeaderMatcher::new(
        "x",
        HeaderMatchSpecifier::StringMatch(sm),
    ));
    let e = config_error(vec![vhost("a", &["*"], vec![route(rm, "c")])]);
    assert!(e.to_string().contains("ignore_case"), "{e}");

    let mut rm = RouteMatch::prefix("/");
    rm.headers.push(HeaderMatcher::new(
        "x",
        HeaderMatchSpecifier::Prefix(String::new()),
    ));
    let e = config_error(vec![vhost("a", &["*"], vec![route(rm, "c")])]);
    assert!(
        e.to_string().contains("prefix_match: must not be empty"),
        "{e}"
    );
}

#[test]
fn table_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RouteTable>();
    assert_send_sync::<RouteTable<std::sync::Arc<str>>>();
}

// ---------------------------------------------------------------- properties

fn path_segment() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "A", "api", "API", "b", "v1", "x-y", "", "users"])
        .prop_map(str::to_owned)
}

fn arb_path() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(path_segment(), 0..4),
        prop::option::of("[a-z=&]{0,6}"),
    )
        .prop_map(|(segs, q)| {
            let mut p = format!("/{}", segs.join("/"));
            if let Some(q) = q {
                p.push('?');
                p.push_str(&q);
            }
            p
        })
}

fn arb_route_match() -> impl Strategy<Value = RouteMatch> {
    let spec = prop_oneof![
        arb_path().prop_map(|p| PathSpecifier::Prefix(path_without_query(&p).to_owned())),
        arb_path().prop_map(|p| PathSpecifier::Path(path_without_query(&p).to_owned())),
        arb_path().prop_map(|p| {
            let p = path_without_query(&p).trim_end_matches('/').to_owned();
            PathSpecifier::PathSeparatedPrefix(if p.is_empty() { "/a".into() } else { p })
        }),
        prop::sample::select(vec![
            "/api/.*",
            "/a/[a-z]+",
            "/(?i)api/.*",
            "/users/?.*",
            "/a|/b"
        ])
        .prop_map(|r| PathSpecifier::SafeRegex(r.to_owned())),
    ];
    (spec, any::<bool>()).prop_map(|(spec, cs)| {
        let mut m = RouteMatch::new(spec);
        m.case_sensitive = cs;
        m
    })
}

proptest! {
    #[test]
    fn prefix_route_matches_every_path_starting_with_it(prefix in arb_path(), rest in "[a-z/?=&]{0,8}") {
        let prefix = path_without_query(&prefix).to_owned();
        let t = one_vhost(vec![route(RouteMatch::prefix(prefix.clone()), "p")]);
        let path = format!("{prefix}{rest}");
        let got = path_cluster(&t, &path);
        prop_assert_eq!(got.as_deref(), Some("p"));
    }

    #[test]
    fn indexed_matching_equals_linear_scan(
        matches in prop::collection::vec(arb_route_match(), 1..24),
        path in arb_path(),
    ) {
        let req = view(&path, &EMPTY);
        // Reference: each route alone in its own table, tried in order; no index can hide it.
        let linear = matches.iter().position(|m| {
            one_vhost(vec![route(m.clone(), "c")]).route(&req, 0).is_some()
        }).map(|i| format!("r{i}"));
        let routes: Vec<Route> = matches
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                let mut r = route(m, "c");
                r.name = format!("r{i}");
                r
            })
            .collect();
        let t = one_vhost(routes);
        let indexed = t.route(&req, 0).map(|m| m.route().name().to_owned());
        prop_assert_eq!(indexed, linear);
    }

    #[test]
    fn weighted_picks_land_on_a_positive_weight(
        weights in prop::collection::vec(0u32..5, 1..8),
        random in any::<u64>(),
    ) {
        prop_assume!(weights.iter().any(|w| *w > 0));
        let named: Vec<(String, u32)> = weights.iter().enumerate().map(|(i, w)| (format!("c{i}"), *w)).collect();
        let refs: Vec<(&str, u32)> = named.iter().map(|(n, w)| (n.as_str(), *w)).collect();
        let t = weighted(&refs);
        let w = weighted_targets(&t);
        prop_assert!(w.pick_by_value(random).weight > 0);
    }
}

#[test]
fn header_mutation_levels_follow_envoys_order() {
    let ops = |v: &str| HeaderOps {
        to_add: vec![HeaderValueOption::new("x-level", v)],
        to_remove: vec![],
    };
    let build = |most_specific_wins| {
        let mut cw = ClusterWeight::new("c", 1);
        cw.request_headers = ops("cluster");
        let w = WeightedClusters {
            clusters: vec![cw],
            header_name: None,
        };
        let mut r = Route::new(
            RouteMatch::prefix("/"),
            Action::Route(RouteAction::new(ClusterSpecifier::WeightedClusters(w))),
        );
        r.request_headers = ops("route");
        let mut vh = vhost("v", &["*"], vec![r]);
        vh.request_headers = ops("vhost");
        RouteTable::new(RouteConfiguration {
            virtual_hosts: vec![vh],
            request_headers: ops("config"),
            most_specific_header_mutations_wins: most_specific_wins,
            ..RouteConfiguration::default()
        })
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let order = |t: &RouteTable| {
        let m = t
            .route(&view("/", &EMPTY), 0)
            .unwrap_or_else(|| panic!("no route"));
        let picked = match m.action() {
            RouteEntryAction::Route(RouteTarget {
                cluster: ClusterTarget::Weighted(w),
                ..
            }) => w.pick(&EMPTY, 0),
            other => panic!("{other:?}"),
        };
        let mut h = HeaderMap::new();
        m.apply_request_headers(&mut h, Some(picked), &());
        h.get_all("x-level")
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
    };
    // Default: least specific applied last, so it wins an overwrite.
    assert_eq!(
        order(&build(false)),
        ["cluster", "route", "vhost", "config"]
    );
    assert_eq!(order(&build(true)), ["cluster", "config", "vhost", "route"]);
}

// ---- require_tls ----------------------------------------------------------------------------

fn tls_table(requirement: TlsRequirement) -> RouteTable {
    table(vec![
        VirtualHost {
            require_tls: requirement,
            ..vhost(
                "secure",
                &["secure.example.com", "secure.example.com:*"],
                vec![route(RouteMatch::prefix("/"), "secure")],
            )
        },
        vhost("open", &["*"], vec![route(RouteMatch::prefix("/"), "open")]),
    ])
}

/// What `route_request` does: `redirect <location>`, `route <cluster>`, or `none`.
fn routing(t: &RouteTable, authority: &str, path: &str, h: &HeaderMap) -> String {
    let req = RequestView {
        authority,
        ..view(path, h)
    };
    match t.route_request(&req, 0) {
        None => "none".to_owned(),
        Some(Routing::TlsRedirect {
            virtual_host,
            location,
        }) => format!(
            "redirect {} from {}",
            location.as_deref().unwrap_or("-"),
            virtual_host.name()
        ),
        Some(Routing::Route(m)) => match m.action() {
            RouteEntryAction::Route(RouteTarget {
                cluster: ClusterTarget::Cluster(c),
                ..
            }) => format!("route {c}"),
            other => format!("{other:?}"),
        },
    }
}

#[test]
fn require_tls_all_redirects_whatever_is_not_forwarded_as_https() {
    let t = tls_table(TlsRequirement::All);
    let http = headers(&[("x-forwarded-proto", "http")]);
    assert_eq!(
        routing(&t, "secure.example.com", "/a/b?x=1", &http),
        "redirect https://secure.example.com/a/b?x=1 from secure"
    );
    // The port stays as the client sent it, as Envoy's `createSslRedirectPath` keeps the host.
    assert_eq!(
        routing(&t, "secure.example.com:8080", "/", &http),
        "redirect https://secure.example.com:8080/ from secure"
    );
    let https = headers(&[("x-forwarded-proto", "https")]);
    assert_eq!(
        routing(&t, "secure.example.com", "/", &https),
        "route secure"
    );
    // Compared exactly: Envoy redirects `HTTPS` too.
    let upper = headers(&[("x-forwarded-proto", "HTTPS")]);
    assert!(routing(&t, "secure.example.com", "/", &upper).starts_with("redirect"));
    // Two values read as Envoy's header map holds them, `https,https`: not `https`.
    let twice = headers(&[
        ("x-forwarded-proto", "https"),
        ("x-forwarded-proto", "https"),
    ]);
    assert!(routing(&t, "secure.example.com", "/", &twice).starts_with("redirect"));
    // Internal requests are no exception.
    let internal = headers(&[("x-forwarded-proto", "http"), ("x-envoy-internal", "true")]);
    assert!(routing(&t, "secure.example.com", "/", &internal).starts_with("redirect"));
    // Other virtual hosts are unaffected.
    assert_eq!(routing(&t, "other.example.com", "/", &http), "route open");
}

#[test]
fn require_tls_external_only_spares_envoy_internal_requests() {
    let t = tls_table(TlsRequirement::ExternalOnly);
    let internal = headers(&[("x-forwarded-proto", "http"), ("x-envoy-internal", "true")]);
    assert_eq!(
        routing(&t, "secure.example.com", "/", &internal),
        "route secure"
    );
    let external = headers(&[("x-forwarded-proto", "http")]);
    assert!(routing(&t, "secure.example.com", "/", &external).starts_with("redirect"));
    // Only the exact value `true` marks a request internal.
    let other = headers(&[("x-forwarded-proto", "http"), ("x-envoy-internal", "yes")]);
    assert!(routing(&t, "secure.example.com", "/", &other).starts_with("redirect"));
    let https = headers(&[("x-forwarded-proto", "https")]);
    assert_eq!(
        routing(&t, "secure.example.com", "/", &https),
        "route secure"
    );
}

#[test]
fn require_tls_reads_the_scheme_without_x_forwarded_proto() {
    let t = tls_table(TlsRequirement::All);
    assert!(routing(&t, "secure.example.com", "/", &EMPTY).starts_with("redirect"));
    let req = RequestView {
        scheme: "https",
        authority: "secure.example.com",
        ..view("/", &EMPTY)
    };
    assert!(matches!(t.route_request(&req, 0), Some(Routing::Route(_))));
}

#[test]
fn require_tls_is_checked_before_routes_and_without_a_path() {
    // The redirect does not need a matching route; a request without `:path` (plain CONNECT)
    // gets it without a location.
    let t = table(vec![VirtualHost {
        require_tls: TlsRequirement::All,
        ..vhost(
            "secure",
            &["*"],
            vec![route(RouteMatch::prefix("/only"), "c")],
        )
    }]);
    let http = headers(&[("x-forwarded-proto", "http")]);
    assert_eq!(
        routing(&t, "x.example.com", "/elsewhere", &http),
        "redirect https://x.example.com/elsewhere from secure"
    );
    assert_eq!(
        routing(&t, "x.example.com", "", &http),
        "redirect - from secure"
    );
    // Without a requirement, route_request is route.
    let open = table(vec![vhost(
        "open",
        &["*"],
        vec![route(RouteMatch::prefix("/only"), "c")],
    )]);
    assert_eq!(routing(&open, "x.example.com", "/elsewhere", &http), "none");
    assert_eq!(routing(&open, "x.example.com", "/only", &http), "route c");
}
