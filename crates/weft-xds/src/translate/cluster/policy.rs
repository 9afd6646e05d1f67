//! A DestinationRule's traffic policy as it applies to one cluster: port-level settings replace
//! the destination-level ones for their port, and a subset's policy overrides per component,
//! as Istio merges them (`GetPortLevelTrafficPolicy`, `MergeSubsetTrafficPolicy`).

use weft_api::networking::destination_rule::{
    ClientTlsSettings, ConnectionPoolSettings, DestinationRule, LoadBalancerSettings,
    LocalityLbSetting, OutlierDetection, Subset, TrafficPolicy,
};

/// The policy components that shape one cluster. `None` means "not set" (defaults apply).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Policy<'a> {
    /// `loadBalancer`.
    pub(crate) load_balancer: Option<&'a LoadBalancerSettings>,
    /// `connectionPool`.
    pub(crate) connection_pool: Option<&'a ConnectionPoolSettings>,
    /// `outlierDetection`.
    pub(crate) outlier_detection: Option<&'a OutlierDetection>,
    /// `tls`.
    pub(crate) tls: Option<&'a ClientTlsSettings>,
}

impl<'a> Policy<'a> {
    /// The policy of `rule` for `port`, narrowed to `subset` when one is named. A subset name
    /// the rule does not define yields the rule's port policy.
    pub(crate) fn of(rule: Option<&'a DestinationRule>, port: u16, subset: &str) -> Policy<'a> {
        let Some(rule) = rule else {
            return Policy::default();
        };
        let base = Self::for_port(rule.traffic_policy.as_ref(), port).0;
        if subset.is_empty() {
            return base;
        }
        match rule.subsets.iter().find(|s| s.name == subset) {
            Some(s) => Self::merge_subset(base, s, port),
            None => base,
        }
    }

    /// Istio's `GetPortLevelTrafficPolicy`: the port-level entry for `port` (which does not
    /// inherit from the destination level) or the destination-level policy; and whether a
    /// port-level entry was used.
    fn for_port(policy: Option<&'a TrafficPolicy>, port: u16) -> (Policy<'a>, bool) {
        let Some(policy) = policy else {
            return (Policy::default(), false);
        };
        let port_level = policy
            .port_level_settings
            .iter()
            .find(|p| p.port.is_some_and(|sel| sel.number == u32::from(port)));
        match port_level {
            Some(p) => (
                Policy {
                    load_balancer: p.load_balancer.as_ref(),
                    connection_pool: p.connection_pool.as_ref(),
                    outlier_detection: p.outlier_detection.as_ref(),
                    tls: p.tls.as_ref(),
                },
                true,
            ),
            None => (
                Policy {
                    load_balancer: policy.load_balancer.as_ref(),
                    connection_pool: policy.connection_pool.as_ref(),
                    outlier_detection: policy.outlier_detection.as_ref(),
                    tls: policy.tls.as_ref(),
                },
                false,
            ),
        }
    }

    /// Istio's `MergeTrafficPolicy`: each component the subset sets replaces the rule's; a
    /// subset port-level entry replaces all four (unset ones fall back to defaults).
    fn merge_subset(base: Policy<'a>, subset: &'a Subset, port: u16) -> Policy<'a> {
        let Some(sub_policy) = subset.traffic_policy.as_ref() else {
            return base;
        };
        let (sub, port_level) = Self::for_port(Some(sub_policy), port);
        Policy {
            load_balancer: pick(sub.load_balancer, base.load_balancer, port_level),
            connection_pool: pick(sub.connection_pool, base.connection_pool, port_level),
            outlier_detection: pick(sub.outlier_detection, base.outlier_detection, port_level),
            tls: pick(sub.tls, base.tls, port_level),
        }
    }

    /// The locality load-balancing setting in force: the rule's (none when it sets
    /// `enabled: false`), else the mesh default, which in Istio's default MeshConfig is
    /// `localityLbSetting: {enabled: true}`.
    pub(crate) fn locality_setting(&self) -> Option<LocalityLbSetting> {
        match self
            .load_balancer
            .and_then(|lb| lb.locality_lb_setting.as_ref())
        {
            Some(s) if s.enabled == Some(false) => None,
            Some(s) => Some(s.clone()),
            None => Some(LocalityLbSetting {
                enabled: Some(true),
                ..Default::default()
            }),
        }
    }

    /// Whether locality failover applies: Istio only fails over when outlier detection is
    /// configured, as Envoy would otherwise never see a priority as unhealthy.
    pub(crate) fn failover_enabled(&self) -> bool {
        self.outlier_detection.is_some()
    }
}

fn pick<T>(subset: Option<T>, base: Option<T>, port_level: bool) -> Option<T> {
    if subset.is_some() || port_level {
        subset
    } else {
        base
    }
}
