//! Filter chain selection, as Envoy does it (`FilterChainManagerImpl::findFilterChain`).
//!
//! Criteria are applied level by level, in Envoy's order: destination port, destination IP,
//! server name, transport protocol, application protocols, direct source IP, source type,
//! source IP, source port. At each level the most specific matching chains survive; chains that
//! leave the criterion unset are the fallback only when no specific chain matches. There is no
//! backtracking: once a more specific bucket matched, a failure deeper down means no chain.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use weft_proxy_config::model::{CidrRange, FilterChain, FilterChainMatch, SourceType};

/// What is known about a connection when its filter chain is chosen.
#[derive(Debug, Clone, Default)]
pub struct ConnectionInfo {
    /// Destination (after original-dst restoration).
    pub destination: Option<SocketAddr>,
    /// Directly connected peer.
    pub direct_source: Option<SocketAddr>,
    /// Source as seen after any proxy protocol (same as direct here).
    pub source: Option<SocketAddr>,
    /// SNI from tls_inspector.
    pub server_name: Option<String>,
    /// `tls` or `raw_buffer` (from tls_inspector), or unknown.
    pub transport_protocol: Option<&'static str>,
    /// ALPN protocols offered by the client, or `http/1.1`/`h2c` from http_inspector.
    pub application_protocols: Vec<String>,
}

/// Picks the filter chain for a connection; `default` when none matches.
pub fn select<'a>(
    chains: &'a [Arc<FilterChain>],
    default: Option<&'a Arc<FilterChain>>,
    conn: &ConnectionInfo,
) -> Option<&'a Arc<FilterChain>> {
    let mut candidates: Vec<&'a Arc<FilterChain>> = chains.iter().collect();
    let levels: [&dyn Fn(&FilterChainMatch) -> Specificity; 9] = [
        &|m| destination_port(m, conn),
        &|m| prefix(&m.prefix_ranges, conn.destination.map(|a| a.ip())),
        &|m| server_name(m, conn),
        &|m| transport_protocol(m, conn),
        &|m| application_protocols(m, conn),
        &|m| {
            prefix(
                &m.direct_source_prefix_ranges,
                conn.direct_source.map(|a| a.ip()),
            )
        },
        &|m| source_type(m, conn),
        &|m| prefix(&m.source_prefix_ranges, conn.source.map(|a| a.ip())),
        &|m| source_port(m, conn),
    ];
    for level in levels {
        candidates = narrow(candidates, level);
        if candidates.is_empty() {
            return default;
        }
    }
    candidates.first().copied().or(default)
}

/// How a chain's criterion relates to the connection at one level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Specificity {
    /// The criterion is set and does not match.
    Mismatch,
    /// The criterion is unset: matches anything, least specific.
    Wildcard,
    /// The criterion matches; higher is more specific.
    Match(u32),
}

fn narrow<'a>(
    candidates: Vec<&'a Arc<FilterChain>>,
    level: &dyn Fn(&FilterChainMatch) -> Specificity,
) -> Vec<&'a Arc<FilterChain>> {
    let scored: Vec<(Specificity, &'a Arc<FilterChain>)> = candidates
        .into_iter()
        .map(|c| (level(&c.matcher), c))
        .collect();
    let best = scored
        .iter()
        .map(|(s, _)| *s)
        .max()
        .unwrap_or(Specificity::Mismatch);
    if best == Specificity::Mismatch {
        return Vec::new();
    }
    scored
        .into_iter()
        .filter(|(s, _)| *s == best)
        .map(|(_, c)| c)
        .collect()
}

fn destination_port(m: &FilterChainMatch, conn: &ConnectionInfo) -> Specificity {
    match (m.destination_port, conn.destination) {
        (None, _) => Specificity::Wildcard,
        (Some(p), Some(d)) if d.port() == p => Specificity::Match(1),
        _ => Specificity::Mismatch,
    }
}

fn prefix(ranges: &[CidrRange], ip: Option<IpAddr>) -> Specificity {
    if ranges.is_empty() {
        return Specificity::Wildcard;
    }
    let Some(ip) = ip else {
        return Specificity::Mismatch;
    };
    let ip = canonical(ip);
    ranges
        .iter()
        .filter(|r| r.contains(ip))
        // +1 so that a /0 range still beats "unset".
        .map(|r| Specificity::Match(u32::from(r.prefix_len) + 1))
        .max()
        .unwrap_or(Specificity::Mismatch)
}

/// IPv4-mapped IPv6 addresses match IPv4 ranges, as Envoy normalizes them.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn server_name(m: &FilterChainMatch, conn: &ConnectionInfo) -> Specificity {
    if m.server_names.is_empty() {
        return Specificity::Wildcard;
    }
    let Some(sni) = conn.server_name.as_deref() else {
        return Specificity::Mismatch;
    };
    let sni = sni.to_ascii_lowercase();
    let mut best = Specificity::Mismatch;
    for name in &m.server_names {
        let name = name.to_ascii_lowercase();
        let s = if name == sni {
            Specificity::Match(u32::MAX)
        } else if let Some(suffix) = name.strip_prefix('*') {
            // `*.example.com` matches `a.example.com` and `a.b.example.com`; longer suffixes
            // are more specific.
            if sni.len() > suffix.len() && sni.ends_with(suffix) {
                Specificity::Match(u32::try_from(suffix.len()).unwrap_or(u32::MAX - 1))
            } else {
                Specificity::Mismatch
            }
        } else {
            Specificity::Mismatch
        };
        best = best.max(s);
    }
    best
}

fn transport_protocol(m: &FilterChainMatch, conn: &ConnectionInfo) -> Specificity {
    match (&m.transport_protocol, conn.transport_protocol) {
        (None, _) => Specificity::Wildcard,
        (Some(want), Some(got)) if want == got => Specificity::Match(1),
        // Without tls_inspector the transport is plain bytes.
        (Some(want), None) if want == "raw_buffer" => Specificity::Match(1),
        _ => Specificity::Mismatch,
    }
}

fn application_protocols(m: &FilterChainMatch, conn: &ConnectionInfo) -> Specificity {
    if m.application_protocols.is_empty() {
        return Specificity::Wildcard;
    }
    if conn
        .application_protocols
        .iter()
        .any(|p| m.application_protocols.contains(p))
    {
        Specificity::Match(1)
    } else {
        Specificity::Mismatch
    }
}

fn source_type(m: &FilterChainMatch, conn: &ConnectionInfo) -> Specificity {
    let local = match (conn.source, conn.destination) {
        (Some(s), Some(d)) => s.ip().is_loopback() || canonical(s.ip()) == canonical(d.ip()),
        (Some(s), None) => s.ip().is_loopback(),
        _ => false,
    };
    match m.source_type {
        SourceType::Any => Specificity::Wildcard,
        SourceType::SameIpOrLoopback if local => Specificity::Match(1),
        SourceType::External if !local && conn.source.is_some() => Specificity::Match(1),
        _ => Specificity::Mismatch,
    }
}

fn source_port(m: &FilterChainMatch, conn: &ConnectionInfo) -> Specificity {
    if m.source_ports.is_empty() {
        return Specificity::Wildcard;
    }
    match conn.source {
        Some(s) if m.source_ports.contains(&s.port()) => Specificity::Match(1),
        _ => Specificity::Mismatch,
    }
}
