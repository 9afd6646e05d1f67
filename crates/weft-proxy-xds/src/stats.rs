//! The xDS client's counters, reported by the admin `/stats` with Envoy's names where Envoy
//! has them: `control_plane.connected_state`, `cluster_manager.cds.update_*`,
//! `listener_manager.lds.update_*`; EDS and RDS (per resource in Envoy) are reported as
//! `xds.eds.update_*` and `xds.rds.update_*`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use weft_proxy_config::xds::ResourceType;

#[derive(Debug, Default)]
struct TypeStats {
    attempt: AtomicU64,
    success: AtomicU64,
    rejected: AtomicU64,
}

/// Counters of one xDS client.
#[derive(Debug, Default)]
pub struct XdsStats {
    connected: AtomicI64,
    cds: TypeStats,
    eds: TypeStats,
    lds: TypeStats,
    rds: TypeStats,
}

impl XdsStats {
    fn of(&self, kind: ResourceType) -> &TypeStats {
        match kind {
            ResourceType::Cluster => &self.cds,
            ResourceType::ClusterLoadAssignment => &self.eds,
            ResourceType::Listener => &self.lds,
            ResourceType::RouteConfiguration => &self.rds,
        }
    }

    pub(crate) fn attempt(&self, kind: ResourceType) {
        self.of(kind).attempt.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn success(&self, kind: ResourceType) {
        self.of(kind).success.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn rejected(&self, kind: ResourceType) {
        self.of(kind).rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set_connected(&self, connected: bool) {
        self.connected
            .store(i64::from(connected), Ordering::Relaxed);
    }

    /// Whether the stream to the control plane is up.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed) == 1
    }

    /// Accepted responses of `kind`.
    pub fn update_success(&self, kind: ResourceType) -> u64 {
        self.of(kind).success.load(Ordering::Relaxed)
    }

    /// Responses of `kind` rejected in whole or in part (NACKed).
    pub fn update_rejected(&self, kind: ResourceType) -> u64 {
        self.of(kind).rejected.load(Ordering::Relaxed)
    }

    /// Every stat as (full name, value, is a counter).
    pub fn export(&self) -> Vec<(String, i64, bool)> {
        let mut out = vec![(
            "control_plane.connected_state".to_owned(),
            self.connected.load(Ordering::Relaxed),
            false,
        )];
        for kind in ResourceType::ALL {
            let prefix = match kind {
                ResourceType::Cluster => "cluster_manager.cds",
                ResourceType::Listener => "listener_manager.lds",
                ResourceType::ClusterLoadAssignment => "xds.eds",
                ResourceType::RouteConfiguration => "xds.rds",
            };
            let s = self.of(kind);
            for (name, v) in [
                ("update_attempt", &s.attempt),
                ("update_success", &s.success),
                ("update_rejected", &s.rejected),
            ] {
                let v = i64::try_from(v.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
                out.push((format!("{prefix}.{name}"), v, true));
            }
        }
        out
    }
}
