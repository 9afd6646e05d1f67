//! Bodies of the proxy's fuzz targets (`crates/weft-proxy/fuzz`), here so that a stable test
//! replays their seed corpora through exactly the same code.

use weft_proxy_config::model::EscapedSlashesAction;

use crate::http::path::{PathVerdict, normalize};
use crate::listener::inspect::{Sniffed, http_request, tls_client_hello};

/// The first bytes of a connection through both inspectors and, as a request path, through
/// every normalization setting. Invariants: nothing panics; a normalized path starts with `/`
/// when the input did; normalizing twice changes nothing.
#[allow(clippy::panic)] // Panicking on a broken invariant is this function's purpose.
pub fn inspect_and_normalize(data: &[u8]) {
    let _ = tls_client_hello(data);
    if let Sniffed::Tls {
        server_name: Some(sni),
        ..
    } = tls_client_hello(data)
    {
        assert_eq!(sni, sni.to_ascii_lowercase());
    }
    let _ = http_request(data);
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    for normalize_path in [false, true] {
        for merge in [false, true] {
            for escaped in [
                EscapedSlashesAction::KeepUnchanged,
                EscapedSlashesAction::RejectRequest,
                EscapedSlashesAction::UnescapeAndForward,
                EscapedSlashesAction::UnescapeAndRedirect,
            ] {
                if let PathVerdict::Continue(p) = normalize(path, normalize_path, merge, escaped) {
                    if path.starts_with('/') && !p.starts_with('/') {
                        panic!("{path:?} normalized to {p:?}");
                    }
                    if normalize_path && merge && escaped == EscapedSlashesAction::KeepUnchanged {
                        let again = normalize(&p, true, true, escaped);
                        assert_eq!(
                            again,
                            PathVerdict::Continue(p.clone()),
                            "not idempotent: {path:?}"
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// Replays the seed corpus of the `inspect` fuzz target.
    #[test]
    fn inspect_seed_corpus_replays() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/inspect");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).expect("seed corpus directory") {
            super::inspect_and_normalize(&std::fs::read(entry.unwrap().path()).unwrap());
            n += 1;
        }
        assert!(n >= 5, "seed corpus has only {n} inputs");
    }
}
