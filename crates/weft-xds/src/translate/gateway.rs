//! Router (gateway) listeners from the Gateway servers that select the proxy: one listener per
//! port, plain HTTP on a shared route table, TLS-terminating servers on their own filter chain
//! (matched by SNI) with their own route table, `PASSTHROUGH` servers routed by SNI from the
//! `tls` routes of bound VirtualServices, TCP servers from their `tcp` routes.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::{
    DataSource, TrafficDirection, TransportSocket, data_source, transport_socket,
};
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, FilterChainMatch, Listener};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig,
    SubjectAltNameMatcher, TlsCertificate, TlsParameters, common_tls_context,
    subject_alt_name_matcher, tls_parameters,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use weft_api::Loaded;
use weft_api::networking::gateway::{ServerTlsMode, ServerTlsSettings, TlsProtocol};
use weft_api::networking::service_entry::Protocol;
use weft_api::networking::virtual_service::{RouteDestination, VirtualService};
use weft_registry::{host_matches, resolve_short_name};

use super::filters::{self, bool_value, hcm, hcm_filter, socket};
use super::scope::GatewayServer;
use super::{Scope, cluster, route};
use crate::naming;
use crate::resources::Resources;

/// Everything a gateway needs: its listeners, their route tables and the outbound clusters.
pub fn resources(scope: &Scope<'_>) -> Resources {
    let servers = scope.gateway_servers();
    let mut by_listener: BTreeMap<(String, u16), Vec<GatewayServer<'_>>> = BTreeMap::new();
    for s in servers {
        let Some(port) = s.server.port.as_ref() else {
            continue;
        };
        // Port 0 (unix sockets) and out-of-range ports cannot be listened on here.
        let Ok(number) = u16::try_from(port.number) else {
            continue;
        };
        if number == 0 || s.server.bind.starts_with("unix://") {
            continue;
        }
        let bind = if s.server.bind.is_empty() {
            "0.0.0.0".to_owned()
        } else {
            s.server.bind.clone()
        };
        by_listener.entry((bind, number)).or_default().push(s);
    }
    let mut listeners = Vec::new();
    let mut routes = Vec::new();
    for ((bind, port), servers) in &by_listener {
        if let Some((l, r)) = listener(scope, bind, *port, servers) {
            listeners.push(l);
            routes.extend(r);
        }
    }
    Resources {
        listeners,
        routes,
        clusters: cluster::outbound_clusters(scope),
        endpoints: Vec::new(),
    }
}

/// What a server does with connections.
enum Kind {
    /// Plain HTTP on the port's shared table.
    Http,
    /// TLS terminated, then HTTP on the server's own table.
    Https,
    /// TLS terminated, then TCP from the `tcp` routes.
    TlsTerminated,
    /// TLS forwarded untouched by SNI from the `tls` routes.
    Passthrough,
    /// Opaque TCP from the `tcp` routes.
    Tcp,
}

fn kind(server: &GatewayServer<'_>) -> Option<Kind> {
    let port = server.server.port.as_ref()?;
    let protocol = Protocol::parse(&port.protocol);
    let mode = server.server.tls.as_ref().map(|t| t.mode);
    Some(match protocol {
        p if p.is_http() => Kind::Http,
        Protocol::Https | Protocol::Tls => match mode {
            // AUTO_PASSTHROUGH serves multi-network east-west traffic, not translated here.
            Some(ServerTlsMode::AutoPassthrough) => return None,
            Some(ServerTlsMode::Passthrough) | None => Kind::Passthrough,
            Some(_) if protocol == Protocol::Https => Kind::Https,
            Some(_) => Kind::TlsTerminated,
        },
        Protocol::Udp => return None,
        _ => Kind::Tcp,
    })
}

/// The server's hosts without their namespace part (`ns/host` → `host`).
fn server_hosts(server: &GatewayServer<'_>) -> Vec<String> {
    server
        .server
        .hosts
        .iter()
        .map(|h| h.split_once('/').map_or(h.as_str(), |(_, h)| h).to_owned())
        .collect()
}

/// SNI names for a terminating chain: the server's hosts, none (any name) when one is `*`.
fn sni_names(server: &GatewayServer<'_>) -> Vec<String> {
    let hosts = server_hosts(server);
    if hosts.iter().any(|h| h == "*") {
        Vec::new()
    } else {
        hosts
    }
}

fn listener(
    scope: &Scope<'_>,
    bind: &str,
    port: u16,
    servers: &[GatewayServer<'_>],
) -> Option<(Listener, Vec<RouteConfiguration>)> {
    let name = crate::translate::listener::listener_name(bind, port);
    let stat_prefix = format!("outbound_{name}");
    let mut chains: Vec<FilterChain> = Vec::new();
    let mut routes = Vec::new();
    let plain_http: Vec<GatewayServer<'_>> = servers
        .iter()
        .filter(|s| matches!(kind(s), Some(Kind::Http)))
        .copied()
        .collect();
    for s in servers {
        let Some(k) = kind(s) else { continue };
        let tls = s.server.tls.as_ref();
        match k {
            Kind::Http => {}
            Kind::Https => {
                let port_name = s.server.port.as_ref().map_or("", |p| p.name.as_str());
                let rds = naming::gateway_route_name(
                    "https",
                    port,
                    Some((
                        port_name,
                        s.gateway.resource.name(),
                        s.gateway.resource.namespace(),
                    )),
                );
                routes.push(route::gateway_route_config(scope, &rds, &[*s]));
                let chain = FilterChain {
                    filter_chain_match: Some(FilterChainMatch {
                        server_names: sni_names(s),
                        ..Default::default()
                    }),
                    filters: vec![hcm_filter(&hcm(&stat_prefix, &rds, true))],
                    transport_socket: tls.map(|t| tls_socket(t, true)),
                    ..Default::default()
                };
                push(chain, &mut chains);
            }
            Kind::TlsTerminated => {
                let Some(clusters) = tcp_destinations(scope, s, port) else {
                    continue;
                };
                let chain = FilterChain {
                    filter_chain_match: Some(FilterChainMatch {
                        server_names: sni_names(s),
                        ..Default::default()
                    }),
                    filters: vec![filters::weighted_tcp_proxy_filter(&clusters)],
                    transport_socket: tls.map(|t| tls_socket(t, false)),
                    ..Default::default()
                };
                push(chain, &mut chains);
            }
            Kind::Passthrough => {
                for (sni, clusters) in passthrough_routes(scope, s, port) {
                    let chain = FilterChain {
                        filter_chain_match: Some(FilterChainMatch {
                            server_names: sni,
                            ..Default::default()
                        }),
                        filters: vec![filters::weighted_tcp_proxy_filter(&clusters)],
                        ..Default::default()
                    };
                    push(chain, &mut chains);
                }
            }
            Kind::Tcp => {
                if let Some(clusters) = tcp_destinations(scope, s, port) {
                    push(
                        FilterChain {
                            filter_chain_match: Some(FilterChainMatch::default()),
                            filters: vec![filters::weighted_tcp_proxy_filter(&clusters)],
                            ..Default::default()
                        },
                        &mut chains,
                    );
                }
            }
        }
    }
    if !plain_http.is_empty() {
        let rds = naming::gateway_route_name("http", port, None);
        routes.push(route::gateway_route_config(scope, &rds, &plain_http));
        push(
            FilterChain {
                filter_chain_match: Some(FilterChainMatch::default()),
                filters: vec![hcm_filter(&hcm(&stat_prefix, &rds, true))],
                ..Default::default()
            },
            &mut chains,
        );
    }
    if chains.is_empty() {
        return None;
    }
    let mut l = Listener {
        name,
        address: Some(socket(bind, port)),
        traffic_direction: TrafficDirection::Outbound as i32,
        filter_chains: chains,
        ..Default::default()
    };
    let sni = l.filter_chains.iter().any(|c| {
        c.filter_chain_match
            .as_ref()
            .is_some_and(|m| !m.server_names.is_empty())
    });
    let terminating = l.filter_chains.iter().any(|c| c.transport_socket.is_some());
    if sni || terminating {
        l.listener_filters.push(filters::tls_inspector());
    }
    Some((l, routes))
}

/// Adds `chain` unless one with the same match is there: of two servers matching the same
/// connections the first wins, as in Istio.
fn push(chain: FilterChain, chains: &mut Vec<FilterChain>) {
    if !chains
        .iter()
        .any(|c| c.filter_chain_match == chain.filter_chain_match)
    {
        chains.push(chain);
    }
}

/// A file as a data source.
fn file(path: &str) -> Option<DataSource> {
    Some(DataSource {
        specifier: Some(data_source::Specifier::Filename(path.to_owned())),
        ..Default::default()
    })
}

fn tls_version(v: TlsProtocol) -> tls_parameters::TlsProtocol {
    use tls_parameters::TlsProtocol as P;
    match v {
        TlsProtocol::TlsAuto => P::TlsAuto,
        TlsProtocol::TlsV1_0 => P::TlSv10,
        TlsProtocol::TlsV1_1 => P::TlSv11,
        TlsProtocol::TlsV1_2 => P::TlSv12,
        TlsProtocol::TlsV1_3 => P::TlSv13,
    }
}

/// Subject alternative names to accept: `spiffe://` names as URIs, others as DNS names.
fn san_matchers(names: &[String]) -> Vec<SubjectAltNameMatcher> {
    use subject_alt_name_matcher::SanType;
    names
        .iter()
        .map(|n| SubjectAltNameMatcher {
            san_type: if n.starts_with("spiffe://") {
                SanType::Uri as i32
            } else {
                SanType::Dns as i32
            },
            matcher: Some(StringMatcher {
                match_pattern: Some(string_matcher::MatchPattern::Exact(n.clone())),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect()
}

/// The server-side TLS context of a gateway server, as Istio builds it: certificates from
/// files (or the workload identity over SDS for `ISTIO_MUTUAL`), client verification for the
/// mutual modes, TLS 1.2 as the floor unless the server sets its own, and HTTP ALPN for
/// HTTPS.
pub fn downstream_tls_context(tls: &ServerTlsSettings, http: bool) -> DownstreamTlsContext {
    let mut common = CommonTlsContext {
        tls_params: Some(TlsParameters {
            tls_minimum_protocol_version: tls_version(match tls.min_protocol_version {
                TlsProtocol::TlsAuto => TlsProtocol::TlsV1_2,
                v => v,
            }) as i32,
            tls_maximum_protocol_version: tls_version(tls.max_protocol_version) as i32,
            ..Default::default()
        }),
        alpn_protocols: if http {
            vec!["h2".to_owned(), "http/1.1".to_owned()]
        } else {
            Vec::new()
        },
        ..Default::default()
    };
    let require_client = matches!(tls.mode, ServerTlsMode::Mutual | ServerTlsMode::IstioMutual);
    if tls.mode == ServerTlsMode::IstioMutual {
        // The proxy's workload certificate and the mesh root, by Istio's SDS names.
        common.tls_certificate_sds_secret_configs = vec![SdsSecretConfig {
            name: "default".to_owned(),
            ..Default::default()
        }];
        common.validation_context_type = Some(
            common_tls_context::ValidationContextType::ValidationContextSdsSecretConfig(
                SdsSecretConfig {
                    name: "ROOTCA".to_owned(),
                    ..Default::default()
                },
            ),
        );
    } else {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        if !tls.server_certificate.is_empty() {
            pairs.push((&tls.server_certificate, &tls.private_key));
        }
        for c in &tls.tls_certificates {
            pairs.push((&c.server_certificate, &c.private_key));
        }
        common.tls_certificates = pairs
            .into_iter()
            .map(|(cert, key)| TlsCertificate {
                certificate_chain: file(cert),
                private_key: file(key),
                ..Default::default()
            })
            .collect();
        let verifies = matches!(
            tls.mode,
            ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual
        );
        if verifies && !tls.ca_certificates.is_empty() {
            common.validation_context_type = Some(
                common_tls_context::ValidationContextType::ValidationContext(
                    CertificateValidationContext {
                        trusted_ca: file(&tls.ca_certificates),
                        match_typed_subject_alt_names: san_matchers(&tls.subject_alt_names),
                        ..Default::default()
                    },
                ),
            );
        }
    }
    DownstreamTlsContext {
        common_tls_context: Some(common),
        require_client_certificate: bool_value(require_client),
        ..Default::default()
    }
}

fn tls_socket(tls: &ServerTlsSettings, http: bool) -> TransportSocket {
    TransportSocket {
        name: "envoy.transport_sockets.tls".to_owned(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(filters::any(
            &downstream_tls_context(tls, http),
        ))),
    }
}

/// Whether VirtualService `vs` (resource `entry`) is bound to the gateway of `server` and
/// names one of its hosts.
fn bound(entry: &Loaded, vs: &VirtualService, server: &GatewayServer<'_>) -> bool {
    let gw_ns = server.gateway.resource.namespace();
    let gw_name = server.gateway.resource.name();
    let vs_ns = entry.resource.namespace();
    let names_gateway = vs.gateways.iter().any(|g| match g.split_once('/') {
        Some((ns, name)) => ns == gw_ns && name == gw_name,
        None => vs_ns == gw_ns && g == gw_name,
    });
    if !names_gateway {
        return false;
    }
    server.server.hosts.iter().any(|sh| {
        let (ns, host) = sh.split_once('/').unwrap_or(("*", sh.as_str()));
        let ns_ok = match ns {
            "*" => true,
            "." => vs_ns == gw_ns,
            n => vs_ns == n,
        };
        ns_ok
            && vs.hosts.iter().any(|h| {
                let h = resolve_short_name(h, vs_ns);
                host_matches(host, &h) || host_matches(&h, host)
            })
    })
}

/// VirtualServices bound to the server's gateway, in load order.
fn bound_virtual_services<'a>(
    scope: &Scope<'a>,
    server: &GatewayServer<'_>,
) -> Vec<(&'a Loaded, &'a VirtualService)> {
    scope
        .mesh
        .config
        .of::<VirtualService>()
        .filter(|(entry, vs)| bound(entry, vs, server))
        .collect()
}

/// Weighted destination clusters of a TCP proxy.
type WeightedClusters = Vec<(String, u32)>;

/// SNI chains of a `PASSTHROUGH` server: every `tls` route match of a bound VirtualService
/// on this port, with the sniHosts the server's hosts cover.
fn passthrough_routes(
    scope: &Scope<'_>,
    server: &GatewayServer<'_>,
    port: u16,
) -> Vec<(Vec<String>, WeightedClusters)> {
    let hosts = server_hosts(server);
    let mut out = Vec::new();
    for (entry, vs) in bound_virtual_services(scope, server) {
        for tls in &vs.tls {
            for m in &tls.matches {
                if m.port.is_some_and(|p| p != u32::from(port)) {
                    continue;
                }
                let sni: Vec<String> = m
                    .sni_hosts
                    .iter()
                    .filter(|s| {
                        hosts
                            .iter()
                            .any(|h| host_matches(h, s) || host_matches(s, h))
                    })
                    .cloned()
                    .collect();
                if sni.is_empty() {
                    continue;
                }
                let clusters = destinations(scope, &tls.route, entry.resource.namespace());
                if !clusters.is_empty() {
                    out.push((sni, clusters));
                }
            }
        }
    }
    out
}

/// Destinations of the first `tcp` route of a bound VirtualService that matches this port.
fn tcp_destinations(
    scope: &Scope<'_>,
    server: &GatewayServer<'_>,
    port: u16,
) -> Option<Vec<(String, u32)>> {
    bound_virtual_services(scope, server)
        .into_iter()
        .find_map(|(entry, vs)| {
            vs.tcp
                .iter()
                .find(|r| {
                    r.matches.is_empty()
                        || r.matches
                            .iter()
                            .any(|m| m.port.is_none_or(|p| p == u32::from(port)))
                })
                .map(|r| destinations(scope, &r.route, entry.resource.namespace()))
        })
        .filter(|c| !c.is_empty())
}

/// Weighted outbound clusters of route destinations (declared in namespace `ns`); a
/// destination without a port uses its service's only port.
fn destinations(scope: &Scope<'_>, route: &[RouteDestination], ns: &str) -> Vec<(String, u32)> {
    let total = route.len();
    route
        .iter()
        .filter_map(|d| {
            let host = resolve_short_name(&d.destination.host, ns);
            let port = match d
                .destination
                .port
                .and_then(|p| u16::try_from(p.number).ok())
            {
                Some(p) => p,
                None => scope
                    .mesh
                    .registry
                    .service(&host, &scope.node.namespace)
                    .and_then(|s| match s.ports.as_slice() {
                        [only] => Some(only.number),
                        _ => None,
                    })?,
            };
            let weight = match d.weight {
                Some(w) => u32::try_from(w).unwrap_or(0),
                None if total == 1 => 100,
                None => 0,
            };
            let subset = d.destination.subset.as_deref().unwrap_or("");
            (weight > 0).then(|| (naming::outbound_cluster(port, subset, &host), weight))
        })
        .collect()
}

#[cfg(test)]
#[path = "gateway_tests.rs"]
mod tests;
