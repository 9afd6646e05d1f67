//! The body of the loader's fuzz target (`crates/weft-api/fuzz`), kept here so that CI can replay
//! the seed corpus through exactly the same code with the stable toolchain.

use std::path::Path;

use super::{LoadResult, Loader};
use crate::meta::Resource;

/// Loads arbitrary bytes as configuration and checks the loader's invariants:
/// it never panics, every decoded resource validates without panicking, and every decoded
/// resource survives serialize → decode unchanged.
///
/// # Panics
/// When an invariant is broken: that is the bug the fuzzer is looking for.
#[allow(clippy::panic)] // Panicking on a broken invariant is this function's purpose.
pub fn check_bytes(data: &[u8]) {
    let loader = Loader::default();
    let mut out = LoadResult::default();
    loader.load_bytes(Path::new("fuzz.yaml"), data, &mut out);
    for loaded in &out.resources {
        let resource = &loaded.resource;
        let _ = resource.validate();
        let value = match resource.to_value() {
            Ok(v) => v,
            Err(e) => panic!("cannot serialize {resource:?}: {e}"),
        };
        let again = Resource::from_value(resource.kind(), value);
        assert_eq!(
            again.as_ref(),
            Ok(resource),
            "round trip changed the resource"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::check_bytes;

    /// Replays the fuzz target's seed corpus, so the target cannot rot between fuzzing runs.
    #[test]
    fn seed_corpus_replays() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/load");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).expect("seed corpus directory") {
            let path = entry.unwrap().path();
            check_bytes(&std::fs::read(&path).unwrap());
            n += 1;
        }
        assert!(n >= 10, "seed corpus has only {n} inputs");
    }
}
