//! Embeds the protobuf descriptors of every Envoy API type, for JSON decoding and PGV rules.
//!
//! envoy-types 0.7.7 ships a `FileDescriptorSet` (`src/generated/types.bin`) but does not expose
//! it, so we find the crate's directory with `cargo metadata` and copy the set into `OUT_DIR`.
//! `source_code_info` (every proto comment, ~80% of the 3.4 MB) is removed on the way: nothing at
//! runtime reads it. The removal works on the wire format, field by field: decoding into
//! `prost_types` and re-encoding would silently drop the custom options we need
//! (`validate.rules`, deprecation annotations), because prost keeps no unknown fields.

// A build script reports failure by panicking; every message says what went wrong.
#![allow(clippy::expect_used, clippy::panic)]

use std::{env, fs, path::PathBuf, process::Command};

/// `FileDescriptorSet.file`.
const SET_FILE: u64 = 1;
/// `FileDescriptorProto.source_code_info`.
const FILE_SOURCE_CODE_INFO: u64 = 9;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=WEFT_ENVOY_TYPES_DIR");
    let src = envoy_types_dir().join("src/generated/types.bin");
    let raw = fs::read(&src).unwrap_or_else(|e| panic!("reading {}: {e}", src.display()));
    let stripped = strip_source_info(&raw);
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("envoy_descriptors.bin");
    fs::write(&out, stripped).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
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

/// Copies every `FileDescriptorProto` of the set, minus its `source_code_info`.
fn strip_source_info(set: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(set.len() / 4);
    for (tag, _, file) in fields(set) {
        assert_eq!(tag >> 3, SET_FILE, "a FileDescriptorSet holds only files");
        let mut kept = Vec::with_capacity(file.len());
        for (tag, whole, _) in fields(file) {
            if tag >> 3 != FILE_SOURCE_CODE_INFO {
                kept.extend_from_slice(whole);
            }
        }
        put_varint(&mut out, (SET_FILE << 3) | 2);
        put_varint(&mut out, kept.len() as u64);
        out.extend_from_slice(&kept);
    }
    out
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
