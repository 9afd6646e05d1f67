//! DestinationRule checks against the registry:
//! - WFT0004: the host matches no service;
//! - IST0173: a subset selects none of the host's workloads;
//! - IST0128 / IST0129: TLS origination that does not verify the server.

use weft_api::diag::msg;
use weft_api::networking::DestinationRule;
use weft_api::networking::destination_rule::{ClientTlsMode, ClientTlsSettings};
use weft_api::{Finding, Loaded};

use super::Context;
use crate::config::finding;

pub(crate) fn analyze(cx: &Context<'_>, out: &mut Vec<Finding>) {
    for (entry, dr) in cx.config.of::<DestinationRule>() {
        let ns = entry.resource.namespace();
        let host = cx.fqdn(&dr.host, ns);
        if dr.host.is_empty() {
            continue; // schema validation reports it
        }
        let services = cx.registry.lookup(&host, ns);
        if services.is_empty() {
            out.push(finding(
                entry,
                msg::DESTINATION_RULE_HOST_NOT_FOUND,
                Some("spec.host".into()),
                format!(
                    "DestinationRule host {:?} ({host}) matches no service known to the mesh; its policies apply to nothing",
                    dr.host
                ),
            ));
        }
        if let Some(service) = services
            .iter()
            .find(|s| s.hostname.eq_ignore_ascii_case(&host))
        {
            let workloads: Vec<_> = cx.registry.workloads_of(service).collect();
            if !workloads.is_empty() {
                for (i, subset) in dr.subsets.iter().enumerate() {
                    let selects = workloads.iter().any(|w| {
                        subset
                            .labels
                            .iter()
                            .all(|(k, v)| w.labels.get(k) == Some(v))
                    });
                    if !selects {
                        out.push(finding(
                            entry,
                            msg::DESTINATION_RULE_SUBSET_NOT_SELECT_PODS,
                            Some(format!("spec.subsets[{i}]")),
                            format!(
                                "The Subset {:?} defined in the DestinationRule does not select any workload of {host}",
                                subset.name
                            ),
                        ));
                    }
                }
            }
        }
        check_tls(entry, dr, &host, out);
    }
}

fn unverified(tls: &ClientTlsSettings) -> bool {
    matches!(tls.mode, ClientTlsMode::Simple | ClientTlsMode::Mutual)
        && tls.ca_certificates.is_empty()
        && tls.credential_name.is_empty()
        && tls.insecure_skip_verify != Some(true)
}

fn mode_name(mode: &ClientTlsMode) -> &'static str {
    match mode {
        ClientTlsMode::Disable => "DISABLE",
        ClientTlsMode::Simple => "SIMPLE",
        ClientTlsMode::Mutual => "MUTUAL",
        ClientTlsMode::IstioMutual => "ISTIO_MUTUAL",
    }
}

fn check_tls(entry: &Loaded, dr: &DestinationRule, host: &str, out: &mut Vec<Finding>) {
    let Some(policy) = &dr.traffic_policy else {
        return;
    };
    let (name, ns) = (entry.resource.name(), entry.resource.namespace());
    if let Some(tls) = policy.tls.as_ref().filter(|t| unverified(t)) {
        out.push(finding(
            entry,
            msg::NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL,
            Some("spec.trafficPolicy.tls".into()),
            format!(
                "DestinationRule {name} in namespace {ns} has TLS mode set to {} but no caCertificates are set to validate server identity for host: {host}",
                mode_name(&tls.mode)
            ),
        ));
    }
    for (i, pls) in policy.port_level_settings.iter().enumerate() {
        if let Some(tls) = pls.tls.as_ref().filter(|t| unverified(t)) {
            let port = pls.port.map(|p| p.number.to_string()).unwrap_or_default();
            out.push(finding(
                entry,
                msg::NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL,
                Some(format!("spec.trafficPolicy.portLevelSettings[{i}].tls")),
                format!(
                    "DestinationRule {name} in namespace {ns} has TLS mode set to {} but no caCertificates are set to validate server identity for host: {host} at port {port}",
                    mode_name(&tls.mode)
                ),
            ));
        }
    }
}
