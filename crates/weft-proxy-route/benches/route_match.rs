//! Route matching over 1,000 routes in one virtual host, and virtual host selection among 1,000
//! virtual hosts.
#![allow(clippy::panic)] // benchmark fixtures: an invalid one must abort the run

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method};
use weft_proxy_route::{
    Action, HeaderMatchSpecifier, HeaderMatcher, PathSpecifier, RequestView, Route, RouteAction,
    RouteConfiguration, RouteMatch, RouteTable, VirtualHost,
};

const ROUTES: usize = 1_000;

/// A mix: prefix, exact path, regex and header-conditioned prefix routes, each under its own
/// first path segment, as a mesh's per-service routes look.
fn route(i: usize) -> Route {
    let m = match i % 4 {
        0 => RouteMatch::prefix(format!("/svc{i}/")),
        1 => RouteMatch::path(format!("/svc{i}/exact")),
        2 => RouteMatch::new(PathSpecifier::SafeRegex(format!(r"/svc{i}/items/\d+"))),
        _ => {
            let mut m = RouteMatch::prefix(format!("/svc{i}/"));
            m.headers.push(HeaderMatcher::new(
                "x-tenant",
                HeaderMatchSpecifier::Exact(format!("t{i}")),
            ));
            m
        }
    };
    let mut r = Route::new(
        m,
        Action::Route(RouteAction::cluster(format!("cluster{i}"))),
    );
    r.name = format!("r{i}");
    r
}

/// A worst case for the index: every route is a regex without a literal first segment.
fn unindexed_route(i: usize) -> Route {
    Route::new(
        RouteMatch::new(PathSpecifier::SafeRegex(format!(r"/(svc{i})/items/\d+"))),
        Action::Route(RouteAction::cluster(format!("cluster{i}"))),
    )
}

fn table(routes: Vec<Route>) -> RouteTable {
    RouteTable::new(RouteConfiguration {
        virtual_hosts: vec![VirtualHost {
            name: "vh".into(),
            domains: vec!["*".into()],
            routes,
            ..VirtualHost::default()
        }],
        ..RouteConfiguration::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn request<'a>(path: &'a str, headers: &'a HeaderMap) -> RequestView<'a> {
    RequestView {
        method: &Method::GET,
        scheme: "http",
        authority: "example.com",
        path_and_query: path,
        protocol: None,
        headers,
    }
}

fn route_matching(c: &mut Criterion) {
    let t = table((0..ROUTES).map(route).collect());
    let mut headers = HeaderMap::new();
    headers.insert("x-tenant", HeaderValue::from_static("t999"));
    headers.insert("user-agent", HeaderValue::from_static("bench"));
    let cases = [
        ("first", "/svc0/a/b?x=1"),
        ("middle", "/svc502/items/12345"),
        ("last", "/svc999/anything"),
        ("no_match", "/nothing/here"),
    ];
    let mut g = c.benchmark_group("route_1000_routes");
    for (name, path) in cases {
        let req = request(path, &headers);
        let expect_match = name != "no_match";
        assert_eq!(t.route(&req, 7).is_some(), expect_match, "{name}");
        g.bench_function(name, |b| {
            b.iter(|| black_box(&t).route(black_box(&req), 7).is_some())
        });
    }
    g.finish();

    let t = table((0..ROUTES).map(unindexed_route).collect());
    let mut g = c.benchmark_group("route_1000_unindexed_regexes");
    for (name, path) in [
        ("first", "/svc0/items/1"),
        ("last", "/svc999/items/1"),
        ("no_match", "/x"),
    ] {
        let req = request(path, &headers);
        g.bench_function(name, |b| {
            b.iter(|| black_box(&t).route(black_box(&req), 7).is_some())
        });
    }
    g.finish();
}

fn vhost_selection(c: &mut Criterion) {
    let vhosts = (0..1_000)
        .map(|i| VirtualHost {
            name: format!("vh{i}"),
            domains: match i % 3 {
                0 => vec![
                    format!("svc{i}.example.com"),
                    format!("svc{i}.example.com:8080"),
                ],
                1 => vec![format!("*.svc{i}.example.com")],
                _ => vec![format!("svc{i}.*")],
            },
            ..VirtualHost::default()
        })
        .chain(std::iter::once(VirtualHost {
            name: "default".into(),
            domains: vec!["*".into()],
            ..VirtualHost::default()
        }))
        .collect();
    let t: RouteTable = RouteTable::new(RouteConfiguration {
        virtual_hosts: vhosts,
        ..RouteConfiguration::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let mut g = c.benchmark_group("vhost_1000");
    for (name, host) in [
        ("exact", "svc999.example.com"),
        ("exact_uppercase", "SVC999.Example.com"),
        ("suffix", "api.svc997.example.com"),
        ("prefix", "svc998.internal"),
        ("default", "unknown.org"),
    ] {
        assert!(t.select_virtual_host(host).is_some(), "{name}");
        g.bench_function(name, |b| {
            b.iter(|| black_box(&t).select_virtual_host(black_box(host)))
        });
    }
    g.finish();
}

criterion_group!(benches, route_matching, vhost_selection);
criterion_main!(benches);
