//! Istio's locality load balancing applied to a load assignment: `distribute` weights, and
//! failover priorities from `failoverPriority` labels and region/zone/subzone proximity.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::core::v3::Locality as PbLocality;
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, LocalityLbEndpoints};
use envoy_types::pb::google::protobuf::UInt32Value;
use weft_api::networking::destination_rule::{
    LocalityDistribute, LocalityFailover, LocalityLbSetting,
};
use weft_registry::{Locality, Workload};

use crate::translate::Scope;

/// Labels as failover priorities compare them.
pub(crate) type Labels = BTreeMap<String, String>;

/// Istio's topology label keys, derived from locality and network for both proxies and
/// endpoints (`AugmentLabels`).
const REGION: &str = "topology.kubernetes.io/region";
const ZONE: &str = "topology.kubernetes.io/zone";
const SUBZONE: &str = "topology.istio.io/subzone";
const NETWORK: &str = "topology.istio.io/network";
const CLUSTER: &str = "topology.istio.io/cluster";

fn augment(labels: &mut Labels, locality: &Locality, network: &str) {
    for (k, v) in [
        (REGION, &locality.region),
        (ZONE, &locality.zone),
        (SUBZONE, &locality.subzone),
    ] {
        if !v.is_empty() {
            labels.insert(k.to_owned(), v.clone());
        }
    }
    if !network.is_empty() {
        labels.insert(NETWORK.to_owned(), network.to_owned());
    }
}

/// A workload's labels plus its topology labels.
pub(crate) fn endpoint_labels(w: &Workload) -> Labels {
    let mut l: Labels = w
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    augment(&mut l, &w.locality, &w.network);
    l
}

/// The proxy's labels plus its topology labels (locality from the node, network from its
/// workload, cluster from its cluster id).
pub(crate) fn proxy_labels(scope: &Scope<'_>) -> Labels {
    let mut l = scope.node.labels.clone();
    let network = scope.workload.map(|w| w.network.as_str()).unwrap_or("");
    augment(&mut l, &scope.node.locality, network);
    if !scope.node.cluster_id.is_empty() {
        l.insert(CLUSTER.to_owned(), scope.node.cluster_id.clone());
    }
    l
}

/// Istio's `ApplyLocalityLoadBalancer` for an enabled setting. `labels[i][j]` are the labels of
/// endpoint `j` of `la.endpoints[i]`.
pub(crate) fn apply(
    la: &mut ClusterLoadAssignment,
    labels: &[Vec<Labels>],
    proxy: &Locality,
    proxy_labels: &Labels,
    setting: &LocalityLbSetting,
    failover_enabled: bool,
) {
    if !setting.distribute.is_empty() {
        apply_weights(la, proxy, &setting.distribute);
    } else if failover_enabled {
        if !setting.failover_priority.is_empty() {
            apply_failover_priorities(la, labels, proxy_labels, &setting.failover_priority);
            if !setting.failover.is_empty() {
                apply_locality_failover(la, proxy, &setting.failover);
            }
        } else {
            apply_locality_failover(la, proxy, &setting.failover);
        }
    }
}

/// Istio's `LocalityMatch`: `region/zone/subzone` where `*` (or a missing zone or subzone)
/// matches anything.
fn locality_match(l: &PbLocality, rule: &str) -> bool {
    let mut parts = rule.splitn(3, '/');
    let (region, zone, subzone) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    (region == "*" || l.region == region)
        && (zone == "*" || zone.is_empty() || l.zone == zone)
        && (subzone == "*" || subzone.is_empty() || l.sub_zone == subzone)
}

/// The Envoy form of a registry locality.
pub(crate) fn pb_locality(l: &Locality) -> PbLocality {
    PbLocality {
        region: l.region.clone(),
        zone: l.zone.clone(),
        sub_zone: l.subzone.clone(),
    }
}

/// Istio's `applyLocalityWeights`: the first `distribute` entry whose `from` matches the
/// proxy's locality sets each destination locality's weight to its share of `to` (split over
/// the localities a wildcard matches, in proportion to their own weights, rounded up); the
/// endpoints of localities no `to` matches are removed.
fn apply_weights(
    la: &mut ClusterLoadAssignment,
    proxy: &Locality,
    distribute: &[LocalityDistribute],
) {
    let proxy = pb_locality(proxy);
    let Some(rule) = distribute.iter().find(|d| locality_match(&proxy, &d.from)) else {
        return;
    };
    let mut unmatched: BTreeSet<usize> = (0..la.endpoints.len()).collect();
    for (to, weight) in &rule.to {
        let mut claimed: Vec<(usize, u64)> = Vec::new();
        let mut total: u64 = 0;
        for (i, l) in la.endpoints.iter().enumerate() {
            let loc = l.locality.clone().unwrap_or_default();
            if unmatched.contains(&i) && locality_match(&loc, to) {
                unmatched.remove(&i);
                let original = u64::from(l.load_balancing_weight.as_ref().map_or(1, |w| w.value));
                claimed.push((i, original));
                total += original;
            }
        }
        for (i, original) in claimed {
            let share = (original * u64::from(*weight)).div_ceil(total.max(1));
            if share > 0
                && let Some(l) = la.endpoints.get_mut(i)
            {
                l.load_balancing_weight = Some(UInt32Value {
                    value: u32::try_from(share).unwrap_or(u32::MAX),
                });
            }
        }
    }
    for i in unmatched {
        if let Some(l) = la.endpoints.get_mut(i) {
            l.lb_endpoints.clear();
        }
    }
}

/// Istio's `LbPriority`: 0 for the proxy's own subzone, 1 for its zone, 2 for its region, 3
/// for elsewhere.
fn proximity(proxy: &Locality, l: &PbLocality) -> u32 {
    if proxy.region != l.region {
        3
    } else if proxy.zone != l.zone {
        2
    } else if proxy.subzone != l.sub_zone {
        1
    } else {
        0
    }
}

/// Istio's `applyLocalityFailover`: each locality's priority (scaled so earlier
/// `failoverPriority` priorities are kept) plus its proximity to the proxy; other regions are
/// priority 4 when a `failover` entry for the proxy's region names a different target region.
/// Then priorities are renumbered 0..N without gaps.
fn apply_locality_failover(
    la: &mut ClusterLoadAssignment,
    proxy: &Locality,
    failover: &[LocalityFailover],
) {
    for l in &mut la.endpoints {
        let loc = l.locality.clone().unwrap_or_default();
        let mut p = proximity(proxy, &loc);
        if p == 3
            && let Some(f) = failover.iter().find(|f| f.from == proxy.region)
            && loc.region != f.to
        {
            p = 4;
        }
        l.priority = l.priority.saturating_mul(5).saturating_add(p);
    }
    compact(&mut la.endpoints);
}

/// Renumbers priorities to 0..N in order, without gaps (Envoy requires it).
fn compact(endpoints: &mut [LocalityLbEndpoints]) {
    let used: BTreeSet<u32> = endpoints.iter().map(|l| l.priority).collect();
    let rank: BTreeMap<u32, u32> = used
        .into_iter()
        .enumerate()
        .map(|(i, p)| (p, u32::try_from(i).unwrap_or(u32::MAX)))
        .collect();
    for l in endpoints {
        l.priority = rank.get(&l.priority).copied().unwrap_or(l.priority);
    }
}

/// Istio's `applyFailoverPriorities`: every endpoint's priority is the number of leading
/// `failoverPriority` labels it does not share with the proxy (0 when all match), each locality
/// is split by priority, and priorities are renumbered. A label written `key=value` compares
/// endpoints against `value` instead of the proxy's label. A mismatch on a leading
/// `topology.istio.io/network` does not stop the comparison but ranks below all matches.
fn apply_failover_priorities(
    la: &mut ClusterLoadAssignment,
    labels: &[Vec<Labels>],
    proxy_labels: &Labels,
    priorities: &[String],
) {
    if proxy_labels.is_empty() || la.endpoints.is_empty() {
        return;
    }
    let lowest = u32::try_from(priorities.len()).unwrap_or(u32::MAX);
    let includes_network = priorities.first().is_some_and(|p| p == NETWORK);
    let keys: Vec<(&str, Option<&str>)> = priorities
        .iter()
        .map(|p| {
            let mut parts = p.split('=');
            let key = parts.next().unwrap_or("");
            let value = parts.next();
            // Istio only takes an override from exactly `key=value`.
            (key, if parts.next().is_none() { value } else { None })
        })
        .collect();
    let mut out = Vec::new();
    for (i, group) in la.endpoints.iter().enumerate() {
        let mut by_priority: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (j, _) in group.lb_endpoints.iter().enumerate() {
            let ep_labels = labels.get(i).and_then(|g| g.get(j));
            let get = |k: &str| ep_labels.and_then(|l| l.get(k)).map_or("", String::as_str);
            let mut priority = 0;
            let mut adjust = 0;
            for (n, (key, value)) in keys.iter().enumerate() {
                let want =
                    value.unwrap_or_else(|| proxy_labels.get(*key).map_or("", String::as_str));
                if want != get(key) {
                    if n == 0 && includes_network {
                        adjust = lowest;
                        continue;
                    }
                    priority = lowest - u32::try_from(n).unwrap_or(lowest);
                    break;
                }
            }
            by_priority.entry(priority + adjust).or_default().push(j);
        }
        for (priority, members) in by_priority {
            let lb_endpoints: Vec<_> = members
                .iter()
                .filter_map(|j| group.lb_endpoints.get(*j).cloned())
                .collect();
            let weight = lb_endpoints
                .iter()
                .map(|e| e.load_balancing_weight.as_ref().map_or(0, |w| w.value))
                .fold(0u32, u32::saturating_add);
            out.push(LocalityLbEndpoints {
                locality: group.locality.clone(),
                lb_endpoints,
                load_balancing_weight: Some(UInt32Value { value: weight }),
                priority,
                ..Default::default()
            });
        }
    }
    compact(&mut out);
    la.endpoints = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(s: &str) -> PbLocality {
        let l = Locality::parse(s);
        pb_locality(&l)
    }

    #[test]
    fn locality_match_wildcards() {
        let l = loc("us-east/zone-a/sub-1");
        assert!(locality_match(&l, "us-east"));
        assert!(locality_match(&l, "us-east/*"));
        assert!(locality_match(&l, "us-east/zone-a"));
        assert!(locality_match(&l, "us-east/zone-a/sub-1"));
        assert!(locality_match(&l, "*"));
        assert!(!locality_match(&l, "us-west/*"));
        assert!(!locality_match(&l, "us-east/zone-b"));
        assert!(!locality_match(&l, "us-east/zone-a/sub-2"));
    }

    #[test]
    fn proximity_levels() {
        let p = Locality::parse("r/z/s");
        assert_eq!(proximity(&p, &loc("r/z/s")), 0);
        assert_eq!(proximity(&p, &loc("r/z/t")), 1);
        assert_eq!(proximity(&p, &loc("r/y/s")), 2);
        assert_eq!(proximity(&p, &loc("q/z/s")), 3);
    }

    #[test]
    fn compact_removes_gaps_in_order() {
        let mut eps: Vec<LocalityLbEndpoints> = [7, 2, 7, 12]
            .into_iter()
            .map(|priority| LocalityLbEndpoints {
                priority,
                ..Default::default()
            })
            .collect();
        compact(&mut eps);
        let got: Vec<u32> = eps.iter().map(|l| l.priority).collect();
        assert_eq!(got, vec![1, 0, 1, 2]);
    }
}
