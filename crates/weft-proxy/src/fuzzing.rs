//! Bodies of the proxy's fuzz targets (`crates/weft-proxy/fuzz`), here so that a stable test
//! replays their seed corpora through exactly the same code.

use weft_proxy_config::model::EscapedSlashesAction;

use crate::http::framing::HeadScan;
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

/// The bytes of a request head through Envoy's codec checks ([`HeadScan`]) in one piece, byte
/// by byte, and split where the first byte says. Invariants: nothing panics; the verdict and
/// whether the head ended do not depend on how the socket delivered the bytes.
#[allow(clippy::panic)] // Panicking on a broken invariant is this function's purpose.
pub fn head_scan(data: &[u8]) {
    let whole = {
        let mut s = HeadScan::default();
        (s.feed(data), s.verdict())
    };
    let bytewise = {
        let mut s = HeadScan::default();
        let mut done = false;
        for b in data {
            done = s.feed(std::slice::from_ref(b));
        }
        (done, s.verdict())
    };
    let split = {
        let at = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
        let (a, b) = data.split_at(at);
        let mut s = HeadScan::default();
        let done = s.feed(a) | s.feed(b);
        (done, s.verdict())
    };
    if whole != bytewise || whole != split {
        panic!("{data:?}: whole {whole:?}, byte by byte {bytewise:?}, split {split:?}");
    }
}

#[cfg(test)]
mod tests {
    /// Replays the seed corpus of fuzz target `target` through `run`.
    fn replay(target: &str, run: fn(&[u8]), at_least: usize) {
        let dir = format!("{}/fuzz/corpus/{target}", env!("CARGO_MANIFEST_DIR"));
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("seed corpus directory") {
            run(&std::fs::read(entry.unwrap().path()).unwrap());
            n += 1;
        }
        assert!(n >= at_least, "{dir} has only {n} inputs");
    }

    #[test]
    fn inspect_seed_corpus_replays() {
        replay("inspect", super::inspect_and_normalize, 5);
    }

    #[test]
    fn head_scan_seed_corpus_replays() {
        replay("head_scan", super::head_scan, 8);
    }
}
