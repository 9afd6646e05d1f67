//! A proxy's translated resources, encoded once and versioned per resource, so every stream
//! can compare what it sent with what is current without re-encoding.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;
use parking_lot::Mutex;
use prost::Message;
use xxhash_rust::xxh64::xxh64;

use crate::resources::{Resources, TypeUrl};

/// One encoded resource and its version (a hash of its bytes: identical content has an
/// identical version across control-plane restarts, so a reconnecting proxy is not sent
/// resources it already has).
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    /// Content version.
    pub version: String,
    /// The resource.
    pub resource: Any,
}

/// Which resources of a type a stream subscribes to: `None` is wildcard (everything), else
/// the names. Streams that subscribe to the same names share one set (see
/// [`super::Interner`]), which also makes the set's address a cheap cache key.
pub type Selection = Option<Arc<BTreeSet<String>>>;

/// Every resource of one type, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TypeSnapshot {
    /// Resources by name (sorted, so responses are deterministic).
    pub resources: BTreeMap<String, Versioned>,
    /// Versions of selections already computed (a thousand streams subscribing to the same
    /// names ask for the same version on every push).
    versions: VersionMemo,
}

/// Memoized [`set_version`]s by selection. Not part of a snapshot's value: clones start
/// empty and every memo compares equal.
#[derive(Debug, Default)]
struct VersionMemo(Mutex<Vec<(Selection, String)>>);

/// Distinct selections remembered per type snapshot; beyond, the memo starts over.
const MEMO_LIMIT: usize = 64;

impl Clone for VersionMemo {
    fn clone(&self) -> Self {
        VersionMemo::default()
    }
}

impl PartialEq for VersionMemo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl TypeSnapshot {
    /// The [`set_version`] of what `selection` selects, computed once per selection (by the
    /// selection's address: interned selections are shared).
    pub fn version_of(&self, selection: &Selection) -> String {
        let same = |s: &Selection| match (s, selection) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        if let Some((_, v)) = self.versions.0.lock().iter().find(|(s, _)| same(s)) {
            return v.clone();
        }
        let version = set_version(self.select(selection.as_deref()));
        let mut memo = self.versions.0.lock();
        if memo.len() >= MEMO_LIMIT {
            memo.clear();
        }
        memo.push((selection.clone(), version.clone()));
        version
    }

    /// The resources a subscription selects (`None`: wildcard, everything).
    pub fn select<'a>(
        &'a self,
        names: Option<&'a std::collections::BTreeSet<String>>,
    ) -> impl Iterator<Item = (&'a String, &'a Versioned)> + 'a {
        self.resources
            .iter()
            .filter(move |(n, _)| names.is_none_or(|set| set.contains(*n)))
    }
}

/// A proxy's whole configuration, encoded.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// By type. Shared between snapshots with equal content (see [`super::Interner`]), so
    /// a stream can tell an unchanged type by its address.
    pub types: BTreeMap<TypeUrl, Arc<TypeSnapshot>>,
    /// Names per type in translation order, so [`Snapshot::resources`] gives back what
    /// translation produced, in its order. The typed resources are not kept: they take
    /// several times the memory of their encoding and only debug dumps read them.
    order: BTreeMap<TypeUrl, Vec<String>>,
}

impl Snapshot {
    /// Encodes and versions `resources`.
    pub fn new(resources: Resources) -> Snapshot {
        let mut types = BTreeMap::new();
        let mut order = BTreeMap::new();
        for t in TypeUrl::ALL {
            let mut snap = TypeSnapshot::default();
            let mut names = Vec::new();
            for (name, any) in resources.encode(t) {
                names.push(name.clone());
                let version = format!("{:016x}", xxh64(&any.value, 0));
                snap.resources.insert(
                    name,
                    Versioned {
                        version,
                        resource: any,
                    },
                );
            }
            types.insert(t, Arc::new(snap));
            order.insert(t, names);
        }
        Snapshot { types, order }
    }

    /// The typed resources (decoded again from their encoding), for debug dumps.
    pub fn resources(&self) -> Resources {
        fn decode<M: Message + Default>(snap: &Snapshot, t: TypeUrl) -> Vec<M> {
            let of = snap.of(t);
            snap.order
                .get(&t)
                .into_iter()
                .flatten()
                .filter_map(|name| of.resources.get(name))
                .filter_map(|v| M::decode(v.resource.value.as_slice()).ok())
                .collect()
        }
        Resources {
            listeners: decode(self, TypeUrl::Listener),
            routes: decode(self, TypeUrl::Route),
            clusters: decode(self, TypeUrl::Cluster),
            endpoints: decode(self, TypeUrl::Endpoint),
        }
    }

    /// Resources of type `t`.
    pub fn of(&self, t: TypeUrl) -> &TypeSnapshot {
        self.shared(t)
    }

    /// Resources of type `t`, shared.
    pub fn shared(&self, t: TypeUrl) -> &Arc<TypeSnapshot> {
        static EMPTY: std::sync::OnceLock<Arc<TypeSnapshot>> = std::sync::OnceLock::new();
        self.types
            .get(&t)
            .unwrap_or_else(|| EMPTY.get_or_init(Arc::default))
    }
}

/// A version for a set of resources: a hash over their names and versions.
pub fn set_version<'a>(items: impl Iterator<Item = (&'a String, &'a Versioned)>) -> String {
    let mut buf = String::new();
    for (name, v) in items {
        let _ = write!(buf, "{name}\0{}\0", v.version);
    }
    format!("{:016x}", xxh64(buf.as_bytes(), 0))
}
