//! The incremental (delta) protocol on one stream, as a state machine without IO.
//!
//! The stream remembers, per type, which names the proxy subscribed to (or wildcard) and which
//! version of each resource it holds. A response carries only resources whose version differs
//! from what the proxy holds, and `removed_resources` for names it holds that no longer exist
//! (or that it subscribed to and that do not exist, so it stops waiting for them). A proxy's
//! `initial_resource_versions` on reconnect count as held, so a restart of the control plane
//! resends nothing that did not change.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};

use super::snapshot::Snapshot;
use super::sotw::RequestKind;
use super::status::TypeStatus;
use crate::resources::TypeUrl;

#[derive(Debug, Default)]
struct TypeState {
    wildcard: bool,
    names: BTreeSet<String>,
    /// Name → version the proxy holds (as far as we know).
    held: HashMap<String, String>,
    status: TypeStatus,
    /// Subscribed names already reported absent (in `removed_resources`).
    told_absent: BTreeSet<String>,
    /// Nonce → the system version it carried, for ACK bookkeeping.
    outstanding: BTreeMap<String, String>,
}

impl TypeState {
    fn wants(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }
}

/// One delta stream.
#[derive(Debug, Default)]
pub struct DeltaStream {
    types: BTreeMap<TypeUrl, TypeState>,
    nonce: u64,
}

impl DeltaStream {
    /// Handles a request against the current snapshot.
    pub fn on_request(
        &mut self,
        req: &DeltaDiscoveryRequest,
        snap: &Snapshot,
    ) -> (RequestKind, Vec<DeltaDiscoveryResponse>) {
        let Some(t) = TypeUrl::parse(&req.type_url) else {
            return (RequestKind::UnknownType(req.type_url.clone()), Vec::new());
        };
        let first = !self.types.contains_key(&t);
        let state = self.types.entry(t).or_default();
        let mut kind = RequestKind::Ok;
        if !req.response_nonce.is_empty() {
            match state.outstanding.remove(&req.response_nonce) {
                None => {}
                Some(version) => match &req.error_detail {
                    Some(err) => {
                        state.status.last_nack = Some(err.message.clone());
                        state.status.rejections += 1;
                        // What we sent was not applied: forget it so a later change resends.
                        state.held.clear();
                        kind = RequestKind::Nack(err.message.clone());
                    }
                    None => {
                        state.status.acked_nonce = req.response_nonce.clone();
                        state.status.acked_version = version;
                        state.status.last_nack = None;
                    }
                },
            }
        }
        if first {
            state.wildcard = req.resource_names_subscribe.is_empty() && t.wildcard_by_default();
            for (name, version) in &req.initial_resource_versions {
                state.held.insert(name.clone(), version.clone());
            }
        }
        let mut subscribed_changed = first;
        for name in &req.resource_names_subscribe {
            if name == "*" {
                subscribed_changed |= !state.wildcard;
                state.wildcard = true;
            } else if state.names.insert(name.clone()) {
                subscribed_changed = true;
            }
        }
        for name in &req.resource_names_unsubscribe {
            if name == "*" {
                state.wildcard = false;
            } else {
                state.names.remove(name);
            }
            // The proxy dropped it: a later subscription must resend it.
            state.held.remove(name);
            state.told_absent.remove(name);
        }
        if matches!(kind, RequestKind::Nack(_)) || !subscribed_changed {
            return (kind, Vec::new());
        }
        let mut out = Vec::new();
        self.respond(t, snap, first, &mut out);
        (kind, out)
    }

    /// Handles a new snapshot: a response per subscribed type with changes, in CDS, EDS,
    /// LDS, RDS order.
    pub fn on_snapshot(&mut self, snap: &Snapshot) -> Vec<DeltaDiscoveryResponse> {
        let mut out = Vec::new();
        for t in TypeUrl::ALL {
            self.respond(t, snap, false, &mut out);
        }
        out
    }

    /// Status per type.
    pub fn status(&self) -> BTreeMap<TypeUrl, TypeStatus> {
        self.types
            .iter()
            .map(|(t, s)| (*t, s.status.clone()))
            .collect()
    }

    fn respond(
        &mut self,
        t: TypeUrl,
        snap: &Snapshot,
        always: bool,
        out: &mut Vec<DeltaDiscoveryResponse>,
    ) {
        let Some(state) = self.types.get_mut(&t) else {
            return;
        };
        let current = snap.of(t);
        let mut resources = Vec::new();
        for (name, v) in &current.resources {
            if state.wants(name) && state.held.get(name) != Some(&v.version) {
                resources.push(Resource {
                    name: name.clone(),
                    version: v.version.clone(),
                    resource: Some(v.resource.clone()),
                    ..Default::default()
                });
            }
        }
        let mut removed: BTreeSet<String> = state
            .held
            .keys()
            .filter(|n| !current.resources.contains_key(*n) || !state.wants(n))
            .cloned()
            .collect();
        // Subscribed names that do not exist: tell the proxy, so it does not wait for them.
        for name in &state.names {
            if !current.resources.contains_key(name)
                && !state.held.contains_key(name)
                && !state.told_absent.contains(name)
            {
                removed.insert(name.clone());
            }
        }
        if resources.is_empty() && removed.is_empty() && !always {
            return;
        }
        for r in &resources {
            state.held.insert(r.name.clone(), r.version.clone());
            state.told_absent.remove(&r.name);
        }
        for n in &removed {
            state.held.remove(n);
            if state.names.contains(n) {
                state.told_absent.insert(n.clone());
            }
        }
        self.nonce += 1;
        let nonce = self.nonce.to_string();
        let version = super::snapshot::set_version(current.resources.iter());
        state.outstanding.insert(nonce.clone(), version.clone());
        // Bound the bookkeeping if a proxy never answers.
        while state.outstanding.len() > 16 {
            state.outstanding.pop_first();
        }
        state.status.sent_version = version.clone();
        state.status.sent_nonce = nonce.clone();
        state.status.resources_sent = resources.len();
        state.status.responses += 1;
        out.push(DeltaDiscoveryResponse {
            system_version_info: version,
            resources,
            type_url: t.as_str().to_owned(),
            removed_resources: removed.into_iter().collect(),
            nonce,
            ..Default::default()
        });
    }
}
