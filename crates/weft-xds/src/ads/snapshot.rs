//! A proxy's translated resources, encoded once and versioned per resource, so every stream
//! can compare what it sent with what is current without re-encoding.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;
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

/// Every resource of one type, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TypeSnapshot {
    /// Resources by name (sorted, so responses are deterministic).
    pub resources: BTreeMap<String, Versioned>,
}

impl TypeSnapshot {
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
    /// By type.
    pub types: BTreeMap<TypeUrl, TypeSnapshot>,
    /// The typed resources, for debug dumps (`proxy-config`).
    pub resources: Arc<Resources>,
}

impl Snapshot {
    /// Encodes and versions `resources`.
    pub fn new(resources: Resources) -> Snapshot {
        let mut types = BTreeMap::new();
        for t in TypeUrl::ALL {
            let mut snap = TypeSnapshot::default();
            for (name, any) in resources.encode(t) {
                let version = format!("{:016x}", xxh64(&any.value, 0));
                snap.resources.insert(
                    name,
                    Versioned {
                        version,
                        resource: any,
                    },
                );
            }
            types.insert(t, snap);
        }
        Snapshot {
            types,
            resources: Arc::new(resources),
        }
    }

    /// Resources of type `t`.
    pub fn of(&self, t: TypeUrl) -> &TypeSnapshot {
        static EMPTY: std::sync::OnceLock<TypeSnapshot> = std::sync::OnceLock::new();
        self.types
            .get(&t)
            .unwrap_or_else(|| EMPTY.get_or_init(TypeSnapshot::default))
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
