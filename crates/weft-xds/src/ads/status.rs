//! What each connected proxy has been sent and has acknowledged, for `weft proxy-status`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::node::ProxyNode;
use crate::resources::TypeUrl;

/// Which xDS variant a stream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// State of the world: every response carries the full set.
    Sotw,
    /// Incremental: responses carry changes and removals.
    Delta,
}

impl Mode {
    /// `sotw` / `delta`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Sotw => "sotw",
            Mode::Delta => "delta",
        }
    }
}

/// istioctl's per-type sync states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStatus {
    /// The last response was acknowledged.
    Synced,
    /// A response is outstanding (sent, not yet acknowledged) or was rejected.
    Stale,
    /// Nothing of this type was sent (not subscribed, or nothing to send yet).
    NotSent,
}

impl SyncStatus {
    /// `SYNCED` / `STALE` / `NOT SENT`, as istioctl prints them.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Synced => "SYNCED",
            SyncStatus::Stale => "STALE",
            SyncStatus::NotSent => "NOT SENT",
        }
    }
}

/// One resource type on one stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TypeStatus {
    /// Version of the last response sent.
    pub sent_version: String,
    /// Nonce of the last response sent.
    pub sent_nonce: String,
    /// Version the proxy last accepted.
    pub acked_version: String,
    /// Nonce of the last response the proxy accepted.
    pub acked_nonce: String,
    /// The proxy's error for the last response it rejected, until it accepts one again.
    pub last_nack: Option<String>,
    /// Resources in the last response.
    pub resources_sent: usize,
    /// Responses sent.
    pub responses: u64,
    /// Rejections received.
    pub rejections: u64,
}

impl TypeStatus {
    /// The istioctl state.
    pub fn sync(&self) -> SyncStatus {
        if self.sent_nonce.is_empty() {
            SyncStatus::NotSent
        } else if self.acked_nonce == self.sent_nonce && self.last_nack.is_none() {
            SyncStatus::Synced
        } else {
            SyncStatus::Stale
        }
    }
}

/// One connected proxy.
#[derive(Debug, Clone)]
pub struct ConnectionStatus {
    /// Stream id, unique within this control plane's life.
    pub stream: u64,
    /// The proxy.
    pub node: ProxyNode,
    /// Peer address.
    pub peer: Option<std::net::SocketAddr>,
    /// SotW or delta.
    pub mode: Mode,
    /// When the stream opened.
    pub connected_at: SystemTime,
    /// Mesh generation of the last snapshot the stream worked from.
    pub generation: u64,
    /// Per type.
    pub types: BTreeMap<TypeUrl, TypeStatus>,
}
