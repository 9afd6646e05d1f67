//! Body of the bootstrap fuzz target (`crates/weft-proxy-config/fuzz`), here so that a stable
//! test replays its seed corpus through exactly the same code.

use std::path::Path;

/// Arbitrary bytes as a YAML and as a JSON bootstrap: parsing and conversion must never panic.
pub fn parse_and_convert(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for name in ["fuzz.yaml", "fuzz.json"] {
        if let Ok(bootstrap) = crate::parse_bootstrap(Path::new(name), text) {
            let _ = crate::convert_bootstrap(&bootstrap, Path::new("."));
        }
    }
}

#[cfg(test)]
mod tests {
    /// Replays the seed corpus of the `bootstrap` fuzz target: every bootstrap in the test
    /// corpus, valid or not.
    #[test]
    fn bootstrap_seed_corpus_replays() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/bootstraps");
        let mut n = 0;
        for sub in ["valid", "invalid", "differs"] {
            let Ok(dir) = std::fs::read_dir(format!("{root}/{sub}")) else {
                continue;
            };
            for entry in dir {
                super::parse_and_convert(&std::fs::read(entry.unwrap().path()).unwrap());
                n += 1;
            }
        }
        assert!(n >= 50, "seed corpus has only {n} inputs");
    }
}
