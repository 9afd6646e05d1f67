//! Workload selectors of Sidecar, Telemetry and security policies:
//! - IST0111 / IST0160: several namespace-wide Sidecars (Telemetries) in one namespace;
//! - IST0110 / IST0159: one workload selected by several Sidecars (Telemetries);
//! - IST0127: a policy whose selector matches no workload.

use std::collections::BTreeMap;

use weft_api::common::Labels;
use weft_api::diag::{MessageType, msg};
use weft_api::networking::Sidecar;
use weft_api::security::{AuthorizationPolicy, PeerAuthentication, RequestAuthentication};
use weft_api::telemetry::Telemetry;
use weft_api::{Finding, Loaded};

use super::Context;
use crate::config::finding;

pub(crate) fn analyze(cx: &Context<'_>, out: &mut Vec<Finding>) {
    let sidecars: Vec<(&Loaded, Option<&Labels>)> = cx
        .config
        .of::<Sidecar>()
        .map(|(e, s)| (e, s.workload_selector.as_ref().map(|w| &w.labels)))
        .collect();
    exclusive_selectors(
        cx,
        "Sidecars",
        &sidecars,
        "spec.workloadSelector",
        msg::MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS,
        msg::CONFLICTING_SIDECAR_WORKLOAD_SELECTORS,
        out,
    );
    // Telemetries attached with targetRefs are not namespace-wide.
    let telemetries: Vec<(&Loaded, Option<&Labels>)> = cx
        .config
        .of::<Telemetry>()
        .filter(|(_, t)| t.target_ref.is_none() && t.target_refs.is_empty())
        .map(|(e, t)| (e, t.selector.as_ref().map(|s| &s.match_labels)))
        .collect();
    exclusive_selectors(
        cx,
        "Telemetries",
        &telemetries,
        "spec.selector",
        msg::MULTIPLE_TELEMETRIES_WITHOUT_WORKLOAD_SELECTORS,
        msg::CONFLICTING_TELEMETRY_WORKLOAD_SELECTORS,
        out,
    );

    let policies = cx
        .config
        .of::<AuthorizationPolicy>()
        .map(|(e, p)| (e, p.selector.as_ref()))
        .chain(
            cx.config
                .of::<RequestAuthentication>()
                .map(|(e, p)| (e, p.selector.as_ref())),
        )
        .chain(
            cx.config
                .of::<PeerAuthentication>()
                .map(|(e, p)| (e, p.selector.as_ref())),
        );
    for (entry, selector) in policies {
        let Some(sel) = selector.filter(|s| !s.match_labels.is_empty()) else {
            continue;
        };
        if cx
            .registry
            .select(entry.resource.namespace(), &sel.match_labels)
            .is_empty()
        {
            let labels: Vec<String> = sel
                .match_labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out.push(finding(
                entry,
                msg::NO_MATCHING_WORKLOADS_FOUND,
                Some("spec.selector".into()),
                format!(
                    "No matching workloads for this resource with the following labels: {}",
                    labels.join(",")
                ),
            ));
        }
    }
}

/// At most one namespace-wide resource per namespace, and no workload selected twice.
fn exclusive_selectors(
    cx: &Context<'_>,
    plural: &str,
    items: &[(&Loaded, Option<&Labels>)],
    selector_path: &str,
    multiple_without: MessageType,
    conflicting: MessageType,
    out: &mut Vec<Finding>,
) {
    let mut by_ns: BTreeMap<&str, Vec<(&Loaded, Option<&Labels>)>> = BTreeMap::new();
    for (e, sel) in items {
        by_ns
            .entry(e.resource.namespace())
            .or_default()
            .push((e, *sel));
    }
    for (ns, items) in by_ns {
        let wide: Vec<&Loaded> = items
            .iter()
            .filter(|(_, s)| s.is_none_or(Labels::is_empty))
            .map(|(e, _)| *e)
            .collect();
        if wide.len() > 1 {
            let names: Vec<&str> = wide.iter().map(|e| e.resource.name()).collect();
            for e in &wide {
                out.push(finding(
                    e,
                    multiple_without,
                    None,
                    format!(
                        "The {plural} [{}] in namespace {ns:?} have no workload selector, which can lead to undefined behavior.",
                        names.join(" ")
                    ),
                ));
            }
        }
        let selecting: Vec<(&Loaded, &Labels)> = items
            .iter()
            .filter_map(|(e, s)| s.filter(|s| !s.is_empty()).map(|s| (*e, s)))
            .collect();
        for w in cx.registry.workloads().iter().filter(|w| w.namespace == ns) {
            let hits: Vec<&Loaded> = selecting
                .iter()
                .filter(|(_, s)| s.iter().all(|(k, v)| w.labels.get(k) == Some(v)))
                .map(|(e, _)| *e)
                .collect();
            if hits.len() > 1 {
                let names: Vec<&str> = hits.iter().map(|e| e.resource.name()).collect();
                for e in &hits {
                    out.push(finding(
                        e,
                        conflicting,
                        Some(selector_path.to_owned()),
                        format!(
                            "The {plural} [{}] in namespace {ns:?} select the same workload {:?}, which can lead to undefined behavior.",
                            names.join(" "),
                            w.name
                        ),
                    ));
                }
            }
        }
    }
}
