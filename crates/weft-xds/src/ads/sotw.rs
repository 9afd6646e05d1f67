//! The state-of-the-world protocol on one stream, as a state machine without IO: requests
//! and new snapshots in, responses out.
//!
//! Rules (Envoy's xDS protocol): a request whose `response_nonce` is not the last one sent
//! for its type is stale and ignored; a request with `error_detail` is a NACK (recorded, not
//! answered: the proxy keeps its previous version until the configuration changes); an ACK
//! with an unchanged subscription needs no answer; a first request, or one that changes the
//! subscribed names, is answered with the current resources. CDS and LDS subscribe to
//! everything when they name nothing (or name `*`); EDS and RDS only to the names listed.
//! After sending clusters the current endpoints are sent too, and routes after listeners,
//! because a proxy warms updated clusters (listeners) until their endpoints (routes) arrive.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use super::Interner;
use super::snapshot::{Selection, Snapshot};
use super::status::TypeStatus;
use crate::resources::TypeUrl;

/// Subscription and progress for one type.
#[derive(Debug, Default)]
struct TypeState {
    /// `None`: wildcard.
    names: Selection,
    /// Content version of the last response (`set_version` of what was sent).
    sent_content: Option<String>,
    status: TypeStatus,
}

/// One SotW stream.
#[derive(Debug, Default)]
pub struct SotwStream {
    types: BTreeMap<TypeUrl, TypeState>,
    nonce: u64,
    interner: Arc<Interner>,
}

/// A response a request calls for, to be built once the stream may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// Its type.
    pub t: TypeUrl,
    /// Whether to send even what did not change (first request of a type, new subscription).
    pub always: bool,
}

/// What a request turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestKind {
    /// A type weft does not serve.
    UnknownType(String),
    /// Answers an older response; ignored.
    Stale,
    /// Rejects the response with this error.
    Nack(String),
    /// Accepts a response, or subscribes.
    Ok,
}

impl SotwStream {
    /// A stream sharing subscription sets through `interner`.
    pub fn new(interner: Arc<Interner>) -> SotwStream {
        SotwStream {
            interner,
            ..SotwStream::default()
        }
    }

    /// Handles a request against the current snapshot.
    pub fn on_request(
        &mut self,
        req: &DiscoveryRequest,
        snap: &Snapshot,
    ) -> (RequestKind, Vec<DiscoveryResponse>) {
        let (kind, pending) = self.accept(req);
        (kind, self.answer(pending, snap))
    }

    /// The first half of [`SotwStream::on_request`]: takes in the request (ACK, NACK,
    /// subscription) and says whether a response is due, without building it, so the caller
    /// can drop the request (a SotW EDS request names every cluster) before waiting to send.
    pub fn accept(&mut self, req: &DiscoveryRequest) -> (RequestKind, Option<Pending>) {
        let Some(t) = TypeUrl::parse(&req.type_url) else {
            return (RequestKind::UnknownType(req.type_url.clone()), None);
        };
        let state = self.types.entry(t).or_default();
        let first = req.response_nonce.is_empty();
        if !first && req.response_nonce != state.status.sent_nonce {
            return (RequestKind::Stale, None);
        }
        if let Some(err) = &req.error_detail {
            state.status.last_nack = Some(err.message.clone());
            state.status.rejections += 1;
            return (RequestKind::Nack(err.message.clone()), None);
        }
        if !first {
            state.status.acked_nonce = req.response_nonce.clone();
            state.status.acked_version = req.version_info.clone();
            state.status.last_nack = None;
        }
        let wildcard = req.resource_names.iter().any(|n| n == "*")
            || (req.resource_names.is_empty() && t.wildcard_by_default());
        let changed = match (&state.names, wildcard) {
            (None, true) => false,
            (Some(known), false) => !same_names(known, &req.resource_names),
            _ => true,
        };
        if changed {
            state.names = (!wildcard).then(|| {
                self.interner
                    .names(req.resource_names.iter().cloned().collect())
            });
        }
        if !first && !changed {
            return (RequestKind::Ok, None);
        }
        (RequestKind::Ok, Some(Pending { t, always: true }))
    }

    /// The second half of [`SotwStream::on_request`]: the response `pending` calls for.
    pub fn answer(&mut self, pending: Option<Pending>, snap: &Snapshot) -> Vec<DiscoveryResponse> {
        let mut out = Vec::new();
        if let Some(p) = pending {
            self.respond(p.t, snap, p.always, &mut out);
        }
        out
    }

    /// Handles a new snapshot: responses for every subscribed type whose content changed, in
    /// CDS, EDS, LDS, RDS order.
    pub fn on_snapshot(&mut self, snap: &Snapshot) -> Vec<DiscoveryResponse> {
        let mut out = Vec::new();
        let mut force_eds = false;
        let mut force_rds = false;
        for t in TypeUrl::ALL {
            let force = match t {
                TypeUrl::Endpoint => force_eds,
                TypeUrl::Route => force_rds,
                _ => false,
            };
            let sent = self.respond(t, snap, force, &mut out);
            match t {
                TypeUrl::Cluster => force_eds = sent,
                TypeUrl::Listener => force_rds = sent,
                _ => {}
            }
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

    /// Appends a response for `t` if the proxy subscribed to it and its content changed (or
    /// `force`). Returns whether one was sent.
    fn respond(
        &mut self,
        t: TypeUrl,
        snap: &Snapshot,
        force: bool,
        out: &mut Vec<DiscoveryResponse>,
    ) -> bool {
        let Some(state) = self.types.get_mut(&t) else {
            return false;
        };
        let version = snap.of(t).version_of(&state.names);
        if !force && state.sent_content.as_deref() == Some(version.as_str()) {
            return false;
        }
        self.nonce += 1;
        let nonce = self.nonce.to_string();
        let resources: Vec<_> = snap
            .of(t)
            .select(state.names.as_deref())
            .map(|(_, v)| v.resource.clone())
            .collect();
        state.status.sent_version = version.clone();
        state.status.sent_nonce = nonce.clone();
        state.status.resources_sent = resources.len();
        state.status.responses += 1;
        state.sent_content = Some(version.clone());
        out.push(DiscoveryResponse {
            version_info: version,
            resources,
            type_url: t.as_str().to_owned(),
            nonce,
            ..Default::default()
        });
        true
    }
}

/// Whether a request's names are `known` (without building a set when the request lists
/// them sorted, as Envoy does).
fn same_names(known: &BTreeSet<String>, names: &[String]) -> bool {
    if names.windows(2).all(|w| w[0] < w[1]) {
        known.len() == names.len() && known.iter().zip(names).all(|(a, b)| a == b)
    } else {
        *known == names.iter().cloned().collect::<BTreeSet<_>>()
    }
}
