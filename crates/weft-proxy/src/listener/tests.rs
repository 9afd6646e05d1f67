use std::sync::Arc;

use weft_proxy_config::model::{
    CidrRange, FilterChain, FilterChainMatch, NetworkFilter, SourceType, TcpCluster, TcpProxy,
};

use super::filter_chain::{ConnectionInfo, select};

fn chain(name: &str, m: FilterChainMatch) -> Arc<FilterChain> {
    Arc::new(FilterChain {
        name: name.into(),
        matcher: m,
        tls: None,
        filter: NetworkFilter::Tcp(Arc::new(TcpProxy {
            stat_prefix: name.into(),
            cluster: TcpCluster::Single(name.into()),
            idle_timeout: None,
            max_connect_attempts: 1,
        })),
    })
}

fn cidr(s: &str) -> CidrRange {
    let (a, l) = s.split_once('/').unwrap();
    CidrRange {
        address: a.parse().unwrap(),
        prefix_len: l.parse().unwrap(),
    }
}

fn conn(dest: &str) -> ConnectionInfo {
    ConnectionInfo {
        destination: Some(dest.parse().unwrap()),
        direct_source: Some("10.0.0.9:40000".parse().unwrap()),
        source: Some("10.0.0.9:40000".parse().unwrap()),
        ..Default::default()
    }
}

fn pick<'a>(chains: &'a [Arc<FilterChain>], c: &ConnectionInfo) -> Option<&'a str> {
    select(chains, None, c).map(|c| c.name.as_str())
}

#[test]
fn destination_port_beats_wildcard() {
    let chains = [
        chain("any", FilterChainMatch::default()),
        chain(
            "p80",
            FilterChainMatch {
                destination_port: Some(80),
                ..Default::default()
            },
        ),
    ];
    assert_eq!(pick(&chains, &conn("1.2.3.4:80")), Some("p80"));
    assert_eq!(pick(&chains, &conn("1.2.3.4:81")), Some("any"));
}

#[test]
fn longest_destination_prefix_wins() {
    let chains = [
        chain(
            "wide",
            FilterChainMatch {
                prefix_ranges: vec![cidr("10.0.0.0/8")],
                ..Default::default()
            },
        ),
        chain(
            "narrow",
            FilterChainMatch {
                prefix_ranges: vec![cidr("10.1.0.0/16")],
                ..Default::default()
            },
        ),
    ];
    assert_eq!(pick(&chains, &conn("10.1.2.3:80")), Some("narrow"));
    assert_eq!(pick(&chains, &conn("10.2.2.3:80")), Some("wide"));
    assert_eq!(pick(&chains, &conn("192.0.2.1:80")), None);
}

#[test]
fn server_names_exact_then_longest_wildcard() {
    let chains = [
        chain(
            "star",
            FilterChainMatch {
                server_names: vec!["*.example.com".into()],
                ..Default::default()
            },
        ),
        chain(
            "deeper",
            FilterChainMatch {
                server_names: vec!["*.api.example.com".into()],
                ..Default::default()
            },
        ),
        chain(
            "exact",
            FilterChainMatch {
                server_names: vec!["www.example.com".into()],
                ..Default::default()
            },
        ),
        chain("none", FilterChainMatch::default()),
    ];
    let mut c = conn("1.2.3.4:443");
    c.server_name = Some("www.example.com".into());
    assert_eq!(pick(&chains, &c), Some("exact"));
    c.server_name = Some("v1.api.example.com".into());
    assert_eq!(pick(&chains, &c), Some("deeper"));
    c.server_name = Some("other.example.com".into());
    assert_eq!(pick(&chains, &c), Some("star"));
    c.server_name = Some("example.com".into());
    assert_eq!(pick(&chains, &c), Some("none"));
    c.server_name = None;
    assert_eq!(pick(&chains, &c), Some("none"));
}

#[test]
fn no_backtracking_after_a_specific_level_matched() {
    // The port-80 bucket is chosen, then its only chain requires TLS: Envoy finds nothing
    // instead of falling back to the wildcard-port chain.
    let chains = [
        chain("any", FilterChainMatch::default()),
        chain(
            "p80-tls",
            FilterChainMatch {
                destination_port: Some(80),
                transport_protocol: Some("tls".into()),
                ..Default::default()
            },
        ),
    ];
    assert_eq!(pick(&chains, &conn("1.2.3.4:80")), None);
    let default = chain("default", FilterChainMatch::default());
    assert_eq!(
        select(&chains, Some(&default), &conn("1.2.3.4:80")).map(|c| c.name.as_str()),
        Some("default")
    );
}

#[test]
fn transport_and_alpn() {
    let chains = [
        chain(
            "tls-h2",
            FilterChainMatch {
                transport_protocol: Some("tls".into()),
                application_protocols: vec!["h2".into()],
                ..Default::default()
            },
        ),
        chain(
            "tls",
            FilterChainMatch {
                transport_protocol: Some("tls".into()),
                ..Default::default()
            },
        ),
        chain(
            "plain",
            FilterChainMatch {
                transport_protocol: Some("raw_buffer".into()),
                ..Default::default()
            },
        ),
    ];
    let mut c = conn("1.2.3.4:443");
    assert_eq!(
        pick(&chains, &c),
        Some("plain"),
        "no inspector means raw_buffer"
    );
    c.transport_protocol = Some("tls");
    c.application_protocols = vec!["http/1.1".into(), "h2".into()];
    assert_eq!(pick(&chains, &c), Some("tls-h2"));
    c.application_protocols = vec!["http/1.1".into()];
    assert_eq!(pick(&chains, &c), Some("tls"));
}

#[test]
fn source_criteria() {
    let chains = [
        chain(
            "local",
            FilterChainMatch {
                source_type: SourceType::SameIpOrLoopback,
                ..Default::default()
            },
        ),
        chain(
            "external",
            FilterChainMatch {
                source_type: SourceType::External,
                ..Default::default()
            },
        ),
    ];
    let mut c = conn("10.0.0.1:80");
    assert_eq!(pick(&chains, &c), Some("external"));
    c.source = Some("127.0.0.1:5555".parse().unwrap());
    assert_eq!(pick(&chains, &c), Some("local"));

    let chains = [
        chain(
            "port",
            FilterChainMatch {
                source_ports: vec![40000],
                ..Default::default()
            },
        ),
        chain(
            "range",
            FilterChainMatch {
                source_prefix_ranges: vec![cidr("10.0.0.0/24")],
                ..Default::default()
            },
        ),
    ];
    // Source IP is decided before source port.
    assert_eq!(pick(&chains, &conn("10.0.0.1:80")), Some("range"));
}

#[test]
fn ipv4_mapped_ipv6_matches_ipv4_ranges() {
    let chains = [chain(
        "v4",
        FilterChainMatch {
            prefix_ranges: vec![cidr("127.0.0.0/8")],
            ..Default::default()
        },
    )];
    assert_eq!(pick(&chains, &conn("[::ffff:127.0.0.1]:80")), Some("v4"));
}
