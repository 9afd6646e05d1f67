//! Embeds the protobuf descriptors of the Envoy API types, for JSON decoding and PGV rules.
//!
//! envoy-types 0.7.7 ships a `FileDescriptorSet` (`src/generated/types.bin`) but does not expose
//! it, so we find the crate's directory with `cargo metadata` and write three files to `OUT_DIR`:
//! - `envoy_descriptors.bin`: the whole set, minus `source_code_info` (every proto comment, ~80%
//!   of the 3.4 MB: nothing at runtime reads it);
//! - `envoy_subset.bin`: the same files cut down to the message types reachable from
//!   `src/descriptor_roots.rs` (the resident pool; decoding every Envoy type costs ~15 MB);
//! - `envoy_message_names.txt`: `package full.Name` of every message of the whole set, so a
//!   type outside the subset is recognised without decoding the whole set.
//!
//! Everything works on the wire format, field by field: decoding into `prost_types` and
//! re-encoding would silently drop the custom options we need (`validate.rules`, deprecation
//! annotations), because prost keeps no unknown fields.

// A build script reports failure by panicking; every message says what went wrong.
#![allow(clippy::expect_used, clippy::panic)]

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    env, fs,
    path::PathBuf,
    process::Command,
};

include!("src/descriptor_roots.rs");

/// `FileDescriptorSet.file`.
const SET_FILE: u64 = 1;
/// `FileDescriptorProto` fields.
const FILE_NAME: u64 = 1;
const FILE_PACKAGE: u64 = 2;
const FILE_DEPENDENCY: u64 = 3;
const FILE_MESSAGE_TYPE: u64 = 4;
const FILE_ENUM_TYPE: u64 = 5;
const FILE_SERVICE: u64 = 6;
const FILE_EXTENSION: u64 = 7;
const FILE_SOURCE_CODE_INFO: u64 = 9;
/// `DescriptorProto` fields.
const MESSAGE_NAME: u64 = 1;
const MESSAGE_FIELD: u64 = 2;
const MESSAGE_NESTED_TYPE: u64 = 3;
const MESSAGE_ENUM_TYPE: u64 = 4;
const MESSAGE_EXTENSION: u64 = 6;
/// `EnumDescriptorProto.name`.
const ENUM_NAME: u64 = 1;
/// `FieldDescriptorProto` fields.
const FIELD_EXTENDEE: u64 = 2;
const FIELD_TYPE_NAME: u64 = 6;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/descriptor_roots.rs");
    println!("cargo:rerun-if-env-changed=WEFT_ENVOY_TYPES_DIR");
    let src = envoy_types_dir().join("src/generated/types.bin");
    let raw = fs::read(&src).unwrap_or_else(|e| panic!("reading {}: {e}", src.display()));
    let files: Vec<File> = fields(&raw)
        .into_iter()
        .map(|(tag, _, file)| {
            assert_eq!(tag >> 3, SET_FILE, "a FileDescriptorSet holds only files");
            File::parse(file)
        })
        .collect();
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let write = |name: &str, bytes: &[u8]| {
        let out = out_dir.join(name);
        fs::write(&out, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
    };
    let everything: Vec<Vec<u8>> = files.iter().map(|f| f.without_source_info()).collect();
    write("envoy_descriptors.bin", &set(&everything));
    write("envoy_subset.bin", &set(&subset(&files)));
    let mut names = String::new();
    for f in &files {
        for m in &f.messages {
            for name in &m.all_names {
                if m.enums.contains(name) {
                    continue;
                }
                names.push_str(&format!("{} {name}\n", f.package));
            }
        }
    }
    write("envoy_message_names.txt", names.as_bytes());
}

/// One file of the set, with what the subset needs to know about it.
struct File {
    /// The encoded `FileDescriptorProto`.
    raw: Vec<u8>,
    name: String,
    package: String,
    dependencies: Vec<String>,
    /// Top-level messages (with everything nested) and top-level enums, in file order.
    messages: Vec<Unit>,
    /// Type names the file's extensions use (their extendee and, for messages, their type).
    extension_refs: Vec<String>,
}

/// A top-level message or enum: the unit the subset keeps or drops.
struct Unit {
    /// Its full name and those of every type nested in it.
    all_names: Vec<String>,
    /// Full names among `all_names` that are enums.
    enums: BTreeSet<String>,
    /// Full names of the types its fields (nested ones included) refer to.
    refs: Vec<String>,
}

impl File {
    fn parse(raw: &[u8]) -> File {
        let mut file = File {
            raw: raw.to_vec(),
            name: String::new(),
            package: String::new(),
            dependencies: Vec::new(),
            messages: Vec::new(),
            extension_refs: Vec::new(),
        };
        for (tag, _, payload) in fields(raw) {
            match tag >> 3 {
                FILE_NAME => file.name = text(payload),
                FILE_PACKAGE => file.package = text(payload),
                FILE_DEPENDENCY => file.dependencies.push(text(payload)),
                FILE_EXTENSION => file.extension_refs.extend(field_refs(payload, true)),
                _ => {}
            }
        }
        let package = file.package.clone();
        for (tag, _, payload) in fields(raw) {
            match tag >> 3 {
                FILE_MESSAGE_TYPE => {
                    let mut unit = Unit {
                        all_names: Vec::new(),
                        enums: BTreeSet::new(),
                        refs: Vec::new(),
                    };
                    collect_message(payload, &package, &mut unit);
                    file.messages.push(unit);
                }
                FILE_ENUM_TYPE => {
                    let name = qualify(&package, &enum_name(payload));
                    file.messages.push(Unit {
                        all_names: vec![name.clone()],
                        enums: BTreeSet::from([name]),
                        refs: Vec::new(),
                    });
                }
                _ => {}
            }
        }
        file
    }

    fn without_source_info(&self) -> Vec<u8> {
        self.filtered(|_| true)
    }

    /// The file without `source_code_info` and services (nothing reads them), and without the
    /// units `keep` refuses.
    fn filtered(&self, keep: impl Fn(usize) -> bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.raw.len());
        let mut unit = 0;
        for (tag, whole, _) in fields(&self.raw) {
            match tag >> 3 {
                FILE_SOURCE_CODE_INFO | FILE_SERVICE => {}
                FILE_MESSAGE_TYPE | FILE_ENUM_TYPE => {
                    if keep(unit) {
                        out.extend_from_slice(whole);
                    }
                    unit += 1;
                }
                _ => out.extend_from_slice(whole),
            }
        }
        out
    }
}

/// Walks a `DescriptorProto`: names of it and its nested types, and the types its fields use.
fn collect_message(raw: &[u8], scope: &str, unit: &mut Unit) {
    let name = fields(raw)
        .into_iter()
        .find(|(tag, _, _)| tag >> 3 == MESSAGE_NAME)
        .map(|(_, _, payload)| text(payload))
        .expect("a message has a name");
    let full = qualify(scope, &name);
    unit.all_names.push(full.clone());
    for (tag, _, payload) in fields(raw) {
        match tag >> 3 {
            MESSAGE_FIELD => unit.refs.extend(field_refs(payload, false)),
            MESSAGE_EXTENSION => unit.refs.extend(field_refs(payload, true)),
            MESSAGE_NESTED_TYPE => collect_message(payload, &full, unit),
            MESSAGE_ENUM_TYPE => {
                let e = qualify(&full, &enum_name(payload));
                unit.all_names.push(e.clone());
                unit.enums.insert(e);
            }
            _ => {}
        }
    }
}

/// The fully qualified type names a `FieldDescriptorProto` uses (its type, and its extendee
/// when `extension`).
fn field_refs(raw: &[u8], extension: bool) -> Vec<String> {
    fields(raw)
        .into_iter()
        .filter(|(tag, _, _)| {
            tag >> 3 == FIELD_TYPE_NAME || (extension && tag >> 3 == FIELD_EXTENDEE)
        })
        .map(|(_, _, payload)| {
            let name = text(payload);
            name.strip_prefix('.')
                .unwrap_or_else(|| panic!("type name {name} is not fully qualified"))
                .to_owned()
        })
        .collect()
}

fn enum_name(raw: &[u8]) -> String {
    fields(raw)
        .into_iter()
        .find(|(tag, _, _)| tag >> 3 == ENUM_NAME)
        .map(|(_, _, payload)| text(payload))
        .expect("an enum has a name")
}

fn qualify(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_owned()
    } else {
        format!("{scope}.{name}")
    }
}

fn text(payload: &[u8]) -> String {
    String::from_utf8(payload.to_vec()).expect("descriptor strings are UTF-8")
}

/// The files of the resident subset: every unit reachable from [`ROOTS`], the well-known types
/// (any of them may sit in an `Any`), the extensions (custom options) of every file kept, and
/// every file a kept file imports (a pool needs a file's imports; unneeded units are cut from
/// them too). Services are dropped.
fn subset(files: &[File]) -> Vec<Vec<u8>> {
    let by_file: HashMap<&str, usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name.as_str(), i))
        .collect();
    let mut by_type: HashMap<&str, (usize, usize)> = HashMap::new();
    for (fi, f) in files.iter().enumerate() {
        for (ui, u) in f.messages.iter().enumerate() {
            for name in &u.all_names {
                by_type.insert(name, (fi, ui));
            }
        }
    }
    let mut kept_files = BTreeSet::new();
    let mut kept_units: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    let mut pending_files: Vec<usize> = Vec::new();
    let mut pending_types: Vec<&str> = ROOTS.to_vec();
    for f in files.iter().filter(|f| f.package == "google.protobuf") {
        for u in &f.messages {
            pending_types.extend(u.all_names.iter().take(1).map(String::as_str));
        }
    }
    loop {
        if let Some(name) = pending_types.pop() {
            let &(fi, ui) = by_type
                .get(name)
                .unwrap_or_else(|| panic!("type {name} is not in envoy-types' descriptor set"));
            if kept_units.entry(fi).or_default().insert(ui) {
                pending_types.extend(files[fi].messages[ui].refs.iter().map(String::as_str));
                pending_files.push(fi);
            }
        } else if let Some(fi) = pending_files.pop() {
            if kept_files.insert(fi) {
                let f = &files[fi];
                pending_types.extend(f.extension_refs.iter().map(String::as_str));
                for dep in &f.dependencies {
                    let &di = by_file
                        .get(dep.as_str())
                        .unwrap_or_else(|| panic!("{} imports {dep}, not in the set", f.name));
                    pending_files.push(di);
                }
            }
        } else {
            break;
        }
    }
    // A pool wants every file after the ones it imports: keep the set's order.
    kept_files
        .into_iter()
        .map(|fi| {
            let units = kept_units.remove(&fi).unwrap_or_default();
            files[fi].filtered(|ui| units.contains(&ui))
        })
        .collect()
}

/// A `FileDescriptorSet` of the given encoded files.
fn set(files: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for file in files {
        put_varint(&mut out, (SET_FILE << 3) | 2);
        put_varint(&mut out, file.len() as u64);
        out.extend_from_slice(file);
    }
    out
}

/// The envoy-types package directory (override with `WEFT_ENVOY_TYPES_DIR`, e.g. for vendored
/// builds where `cargo metadata` cannot run).
fn envoy_types_dir() -> PathBuf {
    if let Ok(dir) = env::var("WEFT_ENVOY_TYPES_DIR") {
        return PathBuf::from(dir);
    }
    let cargo = env::var("CARGO").expect("cargo sets CARGO");
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
            .join("Cargo.toml");
    let out = Command::new(cargo)
        // --filter-platform: otherwise cargo metadata wants every platform's dependencies
        // (windows-sys, wasi...) present, which --offline cannot provide.
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
        ])
        .arg(env::var("TARGET").expect("cargo sets TARGET"))
        .arg("--manifest-path")
        .arg(&manifest)
        .output()
        .expect("running cargo metadata to locate envoy-types");
    assert!(
        out.status.success(),
        "cargo metadata failed (set WEFT_ENVOY_TYPES_DIR to the envoy-types source directory): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let manifest_path = meta["packages"]
        .as_array()
        .expect("cargo metadata has packages")
        .iter()
        .find(|p| p["name"] == "envoy-types")
        .expect("envoy-types is in the dependency graph")["manifest_path"]
        .as_str()
        .expect("packages have a manifest_path");
    PathBuf::from(manifest_path)
        .parent()
        .expect("a manifest path has a parent")
        .to_owned()
}

/// The fields of one encoded message: (key, whole field bytes, payload of a length-delimited
/// field).
fn fields(mut buf: &[u8]) -> Vec<(u64, &[u8], &[u8])> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let start = buf;
        let key = varint(&mut buf);
        let payload_len = match key & 7 {
            0 => {
                varint(&mut buf);
                0
            }
            1 => 8,
            2 => usize::try_from(varint(&mut buf)).expect("length fits usize"),
            5 => 4,
            wire => panic!("unexpected wire type {wire} in descriptor set"),
        };
        let (payload, rest) = buf.split_at(payload_len);
        buf = rest;
        out.push((key, &start[..start.len() - buf.len()], payload));
    }
    out
}

fn varint(buf: &mut &[u8]) -> u64 {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf
            .split_first()
            .expect("truncated varint in descriptor set");
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return value;
        }
    }
    panic!("varint longer than 10 bytes in descriptor set")
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}
