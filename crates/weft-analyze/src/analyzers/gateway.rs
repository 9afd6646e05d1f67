//! Gateway checks:
//! - IST0132: a gateway-bound VirtualService host that none of the gateway's servers exposes;
//! - IST0145: two Gateways selecting the same workloads on the same port with overlapping hosts;
//! - IST0149: JWT-claim routing on a gateway no RequestAuthentication covers.

use weft_api::common::Labels;
use weft_api::diag::msg;
use weft_api::networking::{Gateway, VirtualService};
use weft_api::security::RequestAuthentication;
use weft_api::{Finding, Loaded};
use weft_registry::host_matches;

use super::Context;
use super::virtual_service::gateway_key;
use crate::config::finding;

/// Istio's root namespace, whose policies apply mesh-wide.
const ROOT_NAMESPACE: &str = "istio-system";

pub(crate) fn analyze(cx: &Context<'_>, out: &mut Vec<Finding>) {
    for (entry, vs) in cx.config.of::<VirtualService>() {
        let ns = entry.resource.namespace();
        for g in vs.gateways.iter().filter(|g| *g != "mesh") {
            let (gw_ns, gw_name) = gateway_key(g, ns);
            let Some((gw_entry, gw)) = cx
                .config
                .of::<Gateway>()
                .find(|(e, _)| e.resource.namespace() == gw_ns && e.resource.name() == gw_name)
            else {
                continue; // reported as IST0101
            };
            hosts_exposed(entry, vs, gw_entry, gw, out);
            jwt_claim_routing(cx, entry, vs, gw_entry, gw, out);
        }
    }
    conflicting_gateways(cx, out);
}

/// A server host `ns/host` or `host` as seen from a VirtualService in `vs_ns`.
fn server_host_applies<'h>(server_host: &'h str, gw_ns: &str, vs_ns: &str) -> Option<&'h str> {
    match server_host.split_once('/') {
        None => Some(server_host),
        Some(("*", h)) => Some(h),
        Some((".", h)) if gw_ns == vs_ns => Some(h),
        Some((n, h)) if n == vs_ns => Some(h),
        _ => None,
    }
}

fn hosts_exposed(
    entry: &Loaded,
    vs: &VirtualService,
    gw_entry: &Loaded,
    gw: &Gateway,
    out: &mut Vec<Finding>,
) {
    let vs_ns = entry.resource.namespace();
    let gw_ns = gw_entry.resource.namespace();
    let missing: Vec<&str> = vs
        .hosts
        .iter()
        .map(String::as_str)
        .filter(|h| {
            !gw.servers.iter().flat_map(|s| &s.hosts).any(|sh| {
                server_host_applies(sh, gw_ns, vs_ns)
                    .is_some_and(|sh| host_matches(sh, h) || host_matches(h, sh))
            })
        })
        .collect();
    if !missing.is_empty() {
        out.push(finding(
            entry,
            msg::VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY,
            Some("spec.hosts".into()),
            format!(
                "one or more host [{}] defined in VirtualService {vs_ns}/{} not found in Gateway {gw_ns}/{}.",
                missing.join(" "),
                entry.resource.name(),
                gw_entry.resource.name()
            ),
        ));
    }
}

fn jwt_claim_routing(
    cx: &Context<'_>,
    entry: &Loaded,
    vs: &VirtualService,
    gw_entry: &Loaded,
    gw: &Gateway,
    out: &mut Vec<Finding>,
) {
    let gw_ns = gw_entry.resource.namespace();
    let covered = |labels: &Labels| {
        cx.config.of::<RequestAuthentication>().any(|(e, ra)| {
            let ns = e.resource.namespace();
            (ns == gw_ns || ns == ROOT_NAMESPACE)
                && ra
                    .selector
                    .as_ref()
                    .is_none_or(|s| s.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v)))
        })
    };
    for (i, route) in vs.http.iter().enumerate() {
        for (j, m) in route.matches.iter().enumerate() {
            for key in m.headers.keys().chain(m.without_headers.keys()) {
                if key.starts_with("@request.auth.claims") && !covered(&gw.selector) {
                    out.push(finding(
                        entry,
                        msg::JWT_CLAIM_BASED_ROUTING_WITHOUT_REQUEST_AUTHN,
                        Some(format!("spec.http[{i}].match[{j}].headers")),
                        format!(
                            "The virtual service uses the JWT claim based routing (key: {key}) but found no request authentication for the gateway ({gw_ns}/{}) workloads ({}). The request authentication must first be applied for the gateway workloads to validate the JWT token and make the claims available for routing.",
                            gw_entry.resource.name(),
                            selector_string(&gw.selector)
                        ),
                    ));
                }
            }
        }
    }
}

fn selector_string(labels: &Labels) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn strip_ns(h: &str) -> &str {
    h.split_once('/').map_or(h, |(_, h)| h)
}

fn conflicting_gateways(cx: &Context<'_>, out: &mut Vec<Finding>) {
    let gateways: Vec<(&Loaded, &Gateway)> = cx.config.of::<Gateway>().collect();
    for (a_entry, a) in &gateways {
        for (a_si, a_srv) in a.servers.iter().enumerate() {
            let Some(a_port) = &a_srv.port else { continue };
            let conflicts: Vec<String> = gateways
                .iter()
                .filter(|(b_entry, b)| {
                    !std::ptr::eq(*b_entry, *a_entry) && b.selector == a.selector
                })
                .filter(|(_, b)| {
                    b.servers.iter().any(|b_srv| {
                        b_srv
                            .port
                            .as_ref()
                            .is_some_and(|p| p.number == a_port.number)
                            && b_srv.hosts.iter().any(|bh| {
                                a_srv.hosts.iter().any(|ah| {
                                    let (ah, bh) = (strip_ns(ah), strip_ns(bh));
                                    host_matches(ah, bh) || host_matches(bh, ah)
                                })
                            })
                    })
                })
                .map(|(e, _)| format!("{}/{}", e.resource.namespace(), e.resource.name()))
                .collect();
            if !conflicts.is_empty() {
                out.push(finding(
                    a_entry,
                    msg::CONFLICTING_GATEWAYS,
                    Some(format!("spec.servers[{a_si}]")),
                    format!(
                        "Conflict with gateways {} (workload selector {}, port {}, hosts {}).",
                        conflicts.join(","),
                        selector_string(&a.selector),
                        a_port.number,
                        a_srv.hosts.join(",")
                    ),
                ));
            }
        }
    }
}
