//! The incremental (delta) protocol on one stream, as a state machine without IO.
//!
//! The stream remembers, per type, which names the proxy subscribed to (or wildcard) and which
//! version of each resource it holds. A response carries only resources whose version differs
//! from what the proxy holds, and `removed_resources` for names it holds that no longer exist
//! (or that it subscribed to and that do not exist, so it stops waiting for them). A proxy's
//! `initial_resource_versions` on reconnect count as held, so a restart of the control plane
//! resends nothing that did not change.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};

use super::Interner;
use super::snapshot::{Selection, Snapshot, TypeSnapshot};
use super::sotw::{Pending, RequestKind};
use super::status::TypeStatus;
use crate::resources::TypeUrl;

/// What the proxy holds of one type (as far as we know): after every response, exactly what
/// the subscription selects of the current snapshot, kept as a reference (`base`) rather
/// than a copy of a thousand names; edited (a NACK, an unsubscription, initial versions) as
/// a map of name → version.
#[derive(Debug, Default)]
struct Held {
    /// When set, `map` is empty and the proxy holds what the selection selects of the
    /// snapshot, at the versions there.
    base: Option<(Arc<TypeSnapshot>, Selection)>,
    map: HashMap<String, String>,
    /// `base` was recorded by a response and no request changed the subscription since, so
    /// a push of the same snapshot has nothing to say.
    settled: bool,
}

impl Held {
    fn get(&self, name: &str) -> Option<&str> {
        match &self.base {
            Some((snap, selection)) => selection
                .as_ref()
                .is_none_or(|s| s.contains(name))
                .then(|| snap.resources.get(name))
                .flatten()
                .map(|v| v.version.as_str()),
            None => self.map.get(name).map(String::as_str),
        }
    }

    fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn names(&self) -> Vec<&String> {
        match &self.base {
            Some((snap, selection)) => snap.select(selection.as_deref()).map(|(n, _)| n).collect(),
            None => self.map.keys().collect(),
        }
    }

    /// The held names as an editable map.
    fn map(&mut self) -> &mut HashMap<String, String> {
        if let Some((snap, selection)) = self.base.take() {
            self.map = snap
                .select(selection.as_deref())
                .map(|(n, v)| (n.clone(), v.version.clone()))
                .collect();
        }
        self.settled = false;
        &mut self.map
    }

    /// The proxy holds exactly what `selection` selects of `snap`.
    fn set(&mut self, snap: Arc<TypeSnapshot>, selection: Selection) {
        self.map = HashMap::new();
        self.base = Some((snap, selection));
        self.settled = true;
    }
}

#[derive(Debug, Default)]
struct TypeState {
    wildcard: bool,
    /// Interned (see [`Interner`]).
    names: Arc<BTreeSet<String>>,
    held: Held,
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

    /// What the proxy wants, as a selection.
    fn selection(&self) -> Selection {
        (!self.wildcard).then(|| self.names.clone())
    }
}

fn same_selection(a: &Selection, b: &Selection) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
        _ => false,
    }
}

/// One delta stream.
#[derive(Debug, Default)]
pub struct DeltaStream {
    types: BTreeMap<TypeUrl, TypeState>,
    nonce: u64,
    interner: Arc<Interner>,
}

impl DeltaStream {
    /// A stream sharing subscription sets through `interner`.
    pub fn new(interner: Arc<Interner>) -> DeltaStream {
        DeltaStream {
            interner,
            ..DeltaStream::default()
        }
    }

    /// Handles a request against the current snapshot.
    pub fn on_request(
        &mut self,
        req: &DeltaDiscoveryRequest,
        snap: &Snapshot,
    ) -> (RequestKind, Vec<DeltaDiscoveryResponse>) {
        let (kind, pending) = self.accept(req);
        (kind, self.answer(pending, snap))
    }

    /// The first half of [`DeltaStream::on_request`]: takes in the request (ACK, NACK,
    /// subscription changes) and says whether a response is due, without building it, so the
    /// caller can drop the request before waiting to send.
    pub fn accept(&mut self, req: &DeltaDiscoveryRequest) -> (RequestKind, Option<Pending>) {
        let Some(t) = TypeUrl::parse(&req.type_url) else {
            return (RequestKind::UnknownType(req.type_url.clone()), None);
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
                        state.held = Held::default();
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
            let held = state.held.map();
            for (name, version) in &req.initial_resource_versions {
                held.insert(name.clone(), version.clone());
            }
        }
        let mut subscribed_changed = first;
        let names_change = req
            .resource_names_subscribe
            .iter()
            .chain(&req.resource_names_unsubscribe)
            .any(|n| n != "*");
        let mut names = names_change.then(|| std::mem::take(&mut state.names));
        for name in &req.resource_names_subscribe {
            if name == "*" {
                subscribed_changed |= !state.wildcard;
                state.wildcard = true;
            } else if let Some(names) = &mut names
                && Arc::make_mut(names).insert(name.clone())
            {
                subscribed_changed = true;
            }
        }
        for name in &req.resource_names_unsubscribe {
            if name == "*" {
                state.wildcard = false;
            } else if let Some(names) = &mut names {
                Arc::make_mut(names).remove(name);
            }
            // The proxy dropped it: a later subscription must resend it.
            if state.held.contains(name) {
                state.held.map().remove(name);
            }
            state.told_absent.remove(name);
        }
        if let Some(names) = names {
            state.names = self.interner.names(Arc::unwrap_or_clone(names));
        }
        if !req.resource_names_subscribe.is_empty() || !req.resource_names_unsubscribe.is_empty() {
            state.held.settled = false;
        }
        if matches!(kind, RequestKind::Nack(_)) || !subscribed_changed {
            return (kind, None);
        }
        (kind, Some(Pending { t, always: first }))
    }

    /// The second half of [`DeltaStream::on_request`]: the response `pending` calls for.
    pub fn answer(
        &mut self,
        pending: Option<Pending>,
        snap: &Snapshot,
    ) -> Vec<DeltaDiscoveryResponse> {
        let mut out = Vec::new();
        if let Some(p) = pending {
            self.respond(p.t, snap, p.always, &mut out);
        }
        out
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
        let current = snap.shared(t).clone();
        let selection = state.selection();
        // Holding exactly what is current for the same subscription: nothing to send (names
        // subscribed and absent were reported when this was recorded).
        if let Some((held, held_selection)) = &state.held.base
            && state.held.settled
            && Arc::ptr_eq(held, &current)
            && same_selection(held_selection, &selection)
            && !always
        {
            return;
        }
        let mut resources = Vec::new();
        for (name, v) in &current.resources {
            if state.wants(name) && state.held.get(name) != Some(v.version.as_str()) {
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
            .names()
            .into_iter()
            .filter(|n| !current.resources.contains_key(*n) || !state.wants(n))
            .cloned()
            .collect();
        // Subscribed names that do not exist: tell the proxy, so it does not wait for them.
        for name in state.names.iter() {
            if !current.resources.contains_key(name)
                && !state.held.contains(name)
                && !state.told_absent.contains(name)
            {
                removed.insert(name.clone());
            }
        }
        for r in &resources {
            state.told_absent.remove(&r.name);
        }
        for n in &removed {
            if state.names.contains(n) {
                state.told_absent.insert(n.clone());
            }
        }
        // The proxy now holds (or, with nothing to send, already held) exactly what the
        // subscription selects of the current snapshot.
        state.held.set(current.clone(), selection);
        if resources.is_empty() && removed.is_empty() && !always {
            return;
        }
        self.nonce += 1;
        let nonce = self.nonce.to_string();
        let version = current.version_of(&None);
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
