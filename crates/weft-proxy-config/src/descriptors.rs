//! The protobuf descriptors of the Envoy API types, embedded at build time (see `build.rs`).
//!
//! Two pools: the resident one holds the types reachable from the roots in
//! `src/descriptor_roots.rs` (the bootstrap, the xDS resources and the extensions weft
//! supports), decoded on first use; the full one, every
//! Envoy API type, is decoded only when a configuration names a type outside the resident one
//! (an extension weft does not support: it is parsed and validated as Envoy would, then
//! rejected as unsupported). The full pool costs ~15 MB of memory that a process keeps once it
//! has been decoded, which is why a proxy running a supported configuration never decodes it.

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use prost_reflect::{
    DescriptorPool, MessageDescriptor,
    prost_types::{
        DescriptorProto, FieldDescriptorProto, FileDescriptorProto,
        field_descriptor_proto::{Label, Type},
    },
};

use crate::error::{ConfigError, ErrorKind};

/// Encoded `google.protobuf.FileDescriptorSet` of envoy-types, without source info.
static DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

/// The same set cut down to the types reachable from `src/descriptor_roots.rs`.
static SUBSET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_subset.bin"));

/// `package full.Name` of every message in [`DESCRIPTOR_SET`], one per line, nested ones
/// included.
static MESSAGE_NAMES: &str = include_str!(concat!(env!("OUT_DIR"), "/envoy_message_names.txt"));

/// Full names of the two `TypedStruct` messages Envoy accepts in place of any extension config.
pub(crate) const TYPED_STRUCTS: [&str; 2] = ["xds.type.v3.TypedStruct", "udpa.type.v1.TypedStruct"];

/// A decoded pool, kept between uses until [`release_idle`] drops it.
struct Slot {
    pool: DescriptorPool,
    last_used: Instant,
}

/// The resident pool (the subset) and the full one, each decoded on first use. A decoded pool
/// costs ~4 MB (subset) or ~15 MB (full) of heap, which a running proxy needs only while it
/// loads a configuration; [`release_idle`] gives it back in between.
static POOLS: [Mutex<Option<Slot>>; 2] = [Mutex::new(None), Mutex::new(None)];
const RESIDENT: usize = 0;
const FULL: usize = 1;

/// Operations that may hold descriptors right now, over all threads.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Leases held by this thread (a lease may be taken inside another).
    static HELD: Cell<usize> = const { Cell::new(0) };
}

/// Held by every public operation that uses descriptors, for as long as it may hold any: a
/// pool is released only while no lease is held, so one operation never mixes descriptors
/// from two decodings of the same pool.
#[derive(Debug)]
pub(crate) struct Lease(());

/// Takes a [`Lease`] for the current operation.
pub(crate) fn lease() -> Lease {
    ACTIVE.fetch_add(1, Ordering::SeqCst);
    HELD.with(|h| h.set(h.get() + 1));
    Lease(())
}

impl Drop for Lease {
    fn drop(&mut self) {
        HELD.with(|h| h.set(h.get().saturating_sub(1)));
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Drops the decoded pools (and what was cached from them) when no operation holds one and
/// none was used for `idle`. Returns whether anything was dropped: the caller may then ask the
/// allocator to return the freed memory to the system. Descriptors are decoded again (a few
/// milliseconds for the resident pool) when the next configuration arrives.
pub fn release_idle(idle: Duration) -> bool {
    let mut released = false;
    for slot in &POOLS {
        let Ok(mut slot) = slot.lock() else { continue };
        // Checked under the slot's lock: an operation that takes its lease after this check
        // finds the slot empty and decodes a fresh pool, used for all of its lookups.
        if ACTIVE.load(Ordering::SeqCst) != 0 {
            return released;
        }
        if slot.as_ref().is_some_and(|s| s.last_used.elapsed() >= idle) {
            *slot = None;
            // Under the lock too, so no operation meets rules cached from the dropped pool.
            crate::pgv::clear_cache();
            released = true;
        }
    }
    released
}

/// The resident descriptor pool: every message reachable from the bootstrap, the xDS resources
/// and the extensions weft supports, `validate.rules` included. [`message`] also finds the
/// other Envoy API types. Callers inside this crate hold a [`lease`] while they use it.
pub fn pool() -> Result<DescriptorPool, ConfigError> {
    let _lease = lease();
    decoded(RESIDENT)
}

fn full_pool() -> Result<DescriptorPool, ConfigError> {
    decoded(FULL)
}

fn decoded(which: usize) -> Result<DescriptorPool, ConfigError> {
    debug_assert!(
        HELD.with(Cell::get) > 0,
        "descriptors used outside a lease: a concurrent release could mix two pools"
    );
    let encoded = if which == RESIDENT {
        SUBSET
    } else {
        DESCRIPTOR_SET
    };
    let unusable = |e: String| {
        ConfigError::new(
            ErrorKind::Internal,
            "",
            format!("embedded Envoy descriptors are unusable (a build problem): {e}"),
        )
    };
    let mut slot = POOLS[which]
        .lock()
        .map_err(|_| unusable("a thread panicked while decoding them".into()))?;
    if let Some(slot) = slot.as_mut() {
        slot.last_used = Instant::now();
        return Ok(slot.pool.clone());
    }
    let pool = build_pool(encoded).map_err(unusable)?;
    *slot = Some(Slot {
        pool: pool.clone(),
        last_used: Instant::now(),
    });
    Ok(pool)
}

/// The descriptor of the message named `full_name` (`envoy.config.bootstrap.v3.Bootstrap`), any
/// Envoy API message.
pub fn message(full_name: &str) -> Result<MessageDescriptor, ConfigError> {
    let _lease = lease();
    find(full_name)?.ok_or_else(|| {
        ConfigError::new(
            ErrorKind::Internal,
            "",
            format!("message {full_name} is not among the embedded descriptors"),
        )
    })
}

/// The descriptor of `full_name` from the resident pool, else from the full one when it is an
/// Envoy API message; `None` for names that are not.
pub(crate) fn find(full_name: &str) -> Result<Option<MessageDescriptor>, ConfigError> {
    if let Some(desc) = decoded(RESIDENT)?.get_message_by_name(full_name) {
        return Ok(Some(desc));
    }
    if !is_envoy_message(full_name) {
        return Ok(None);
    }
    Ok(full_pool()?.get_message_by_name(full_name))
}

fn is_envoy_message(full_name: &str) -> bool {
    MESSAGE_NAMES.lines().any(|line| {
        line.split_once(' ')
            .is_some_and(|(_, name)| name == full_name)
    })
}

/// Full names of every Envoy API message in `package`, nested ones included (for "did you
/// mean" hints), without decoding the full pool.
pub(crate) fn messages_in_package(package: &str) -> impl Iterator<Item = &'static str> {
    let package = package.to_owned();
    MESSAGE_NAMES.lines().filter_map(move |line| {
        line.split_once(' ')
            .filter(|(p, _)| *p == package)
            .map(|(_, name)| name)
    })
}

fn build_pool(set: &[u8]) -> Result<DescriptorPool, String> {
    let mut pool = DescriptorPool::decode(set).map_err(|e| e.to_string())?;
    // envoy-types ships neither xds/type/v3/typed_struct.proto nor udpa/type/v1/typed_struct.proto,
    // yet Envoy accepts a TypedStruct wherever an extension's typed_config is expected.
    for full_name in TYPED_STRUCTS {
        if pool.get_message_by_name(full_name).is_none() {
            pool.add_file_descriptor_proto(typed_struct_file(full_name))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(pool)
}

/// `message TypedStruct { string type_url = 1; google.protobuf.Struct value = 2; }`.
fn typed_struct_file(full_name: &str) -> FileDescriptorProto {
    let package = full_name.trim_end_matches(".TypedStruct");
    let field =
        |name: &str, json: &str, number, ty: Type, type_name: Option<&str>| FieldDescriptorProto {
            name: Some(name.into()),
            json_name: Some(json.into()),
            number: Some(number),
            label: Some(Label::Optional as i32),
            r#type: Some(ty as i32),
            type_name: type_name.map(Into::into),
            ..Default::default()
        };
    FileDescriptorProto {
        name: Some(format!("{}/typed_struct.proto", package.replace('.', "/"))),
        package: Some(package.into()),
        dependency: vec!["google/protobuf/struct.proto".into()],
        syntax: Some("proto3".into()),
        message_type: vec![DescriptorProto {
            name: Some("TypedStruct".into()),
            field: vec![
                field("type_url", "typeUrl", 1, Type::String, None),
                field(
                    "value",
                    "value",
                    2,
                    Type::Message,
                    Some(".google.protobuf.Struct"),
                ),
            ],
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{convert::support::EXTENSIONS, descriptor_roots::ROOTS};

    #[test]
    fn supported_extensions_are_resident() {
        for (ty, _) in EXTENSIONS {
            assert!(
                ROOTS.contains(ty),
                "{ty} is missing from src/descriptor_roots.rs"
            );
        }
        let resident = pool().unwrap();
        for name in ROOTS.iter().chain(&TYPED_STRUCTS) {
            assert!(resident.get_message_by_name(name).is_some(), "{name}");
        }
        assert!(resident.get_extension_by_name("validate.rules").is_some());
        // Any well-known type may sit in an Any.
        for wkt in ["Struct", "Duration", "Timestamp", "Empty", "BoolValue"] {
            let name = format!("google.protobuf.{wkt}");
            assert!(resident.get_message_by_name(&name).is_some(), "{name}");
        }
    }

    #[test]
    fn other_envoy_types_come_from_the_full_pool() {
        let _lease = lease();
        let lua = "envoy.extensions.filters.http.lua.v3.Lua";
        assert!(pool().unwrap().get_message_by_name(lua).is_none());
        let desc = find(lua).unwrap().unwrap();
        assert_eq!(desc.full_name(), lua);
        assert!(
            desc.get_field_by_name("default_source_code").is_some(),
            "{lua} decoded whole"
        );
        assert_eq!(message(lua).unwrap().full_name(), lua);
        // Nested messages are Envoy API messages too.
        assert!(
            find("envoy.extensions.filters.http.lua.v3.LuaPerRoute")
                .unwrap()
                .is_some()
        );
        assert!(
            find("envoy.extensions.filters.http.lua.v3.Lu")
                .unwrap()
                .is_none()
        );
        assert!(find("x.y.Z").unwrap().is_none());
        assert!(message("x.y.Z").is_err());
    }

    #[test]
    fn a_held_lease_keeps_the_pools() {
        let held = lease();
        decoded(RESIDENT).unwrap();
        assert!(!release_idle(Duration::ZERO), "released under a lease");
        drop(held);
    }

    #[test]
    fn the_subset_is_much_smaller_than_the_full_set() {
        let resident = pool().unwrap().all_messages().count();
        let all = MESSAGE_NAMES.lines().count();
        assert!(resident * 2 < all, "{resident} of {all} messages resident");
    }

    #[test]
    fn message_names_list_packages_and_nested_messages() {
        let in_package: Vec<_> =
            messages_in_package("envoy.extensions.filters.http.lua.v3").collect();
        assert!(in_package.contains(&"envoy.extensions.filters.http.lua.v3.Lua"));
        assert!(in_package.contains(&"envoy.extensions.filters.http.lua.v3.LuaPerRoute"));
        assert!(
            in_package
                .iter()
                .all(|n| n.starts_with("envoy.extensions.filters.http.lua.v3."))
        );
        assert!(is_envoy_message("envoy.config.bootstrap.v3.Bootstrap"));
        assert!(!is_envoy_message("envoy.config.bootstrap.v3"));
        assert!(
            !is_envoy_message("envoy.config.core.v3.RoutingPriority"),
            "an enum"
        );
    }
}
