//! Request framing as Envoy's HTTP/1 codec judges it, from the raw bytes of a request head.
//!
//! hyper resolves ambiguous framing the RFC's way: with both `Transfer-Encoding` and
//! `Content-Length` it drops `Content-Length` (and closes the connection after the request),
//! it merges equal duplicate `Content-Length` values, and it accepts any coding list ending in
//! `chunked` (then forwards only `chunked`, losing the others). Its request no longer shows any
//! of that, so weft reads the head's `Content-Length` and `Transfer-Encoding` lines as they
//! arrive ([`HeadScan`]) and refuses what Envoy refuses: both headers, or `Content-Length`
//! twice, is `400`; a transfer coding other than `chunked` is `501`. (A proxy that re-frames
//! every request, as weft does, cannot be desynchronized by these; refusing them is what Envoy
//! does and what a request smuggling probe expects to see.)

/// What the head of a request says about its framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing Envoy refuses.
    Fine,
    /// `Transfer-Encoding` with `Content-Length`, or `Content-Length` more than once: `400`.
    Conflict,
    /// A transfer coding other than `chunked`: `501`.
    UnsupportedCoding,
}

impl Verdict {
    /// Envoy's status and text for it (`None` when fine).
    pub fn reply(self) -> Option<(u16, &'static str)> {
        match self {
            Verdict::Fine => None,
            Verdict::Conflict => Some((400, "Bad Request")),
            Verdict::UnsupportedCoding => Some((501, "Not Implemented")),
        }
    }
}

/// The longest line start looked at: `transfer-encoding:` and a value of `chunked` with some
/// spaces fit; a longer line is not one that matters or has an unsupported value.
const KEEP: usize = 48;

/// Reads a request head fed in pieces (as the socket delivers it), line by line.
#[derive(Debug)]
pub struct HeadScan {
    /// The start of the current line: its first `len` bytes (at most [`KEEP`]).
    line: [u8; KEEP],
    len: usize,
    /// The current line is longer than [`KEEP`].
    long: bool,
    /// The request line has been seen (empty lines before it are allowed).
    request_line: bool,
    /// The empty line ending the head has been seen.
    done: bool,
    content_lengths: u32,
    transfer_encoding: bool,
    unsupported_coding: bool,
}

impl Default for HeadScan {
    fn default() -> Self {
        HeadScan {
            line: [0; KEEP],
            len: 0,
            long: false,
            request_line: false,
            done: false,
            content_lengths: 0,
            transfer_encoding: false,
            unsupported_coding: false,
        }
    }
}

impl HeadScan {
    /// Feeds the next bytes of the head; whatever follows its end is ignored. Returns whether
    /// the head has ended.
    pub fn feed(&mut self, mut bytes: &[u8]) -> bool {
        while !self.done && !bytes.is_empty() {
            match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.take(&bytes[..i]);
                    self.end_line();
                    bytes = &bytes[i + 1..];
                }
                None => {
                    self.take(bytes);
                    bytes = &[];
                }
            }
        }
        self.done
    }

    /// What the head says so far (final once [`HeadScan::feed`] returned `true`).
    pub fn verdict(&self) -> Verdict {
        if self.transfer_encoding && self.content_lengths > 0 || self.content_lengths > 1 {
            Verdict::Conflict
        } else if self.unsupported_coding {
            Verdict::UnsupportedCoding
        } else {
            Verdict::Fine
        }
    }

    fn take(&mut self, part: &[u8]) {
        let room = KEEP - self.len;
        if part.len() > room {
            self.long = true;
        }
        let n = part.len().min(room);
        self.line[self.len..self.len + n].copy_from_slice(&part[..n]);
        self.len += n;
    }

    fn end_line(&mut self) {
        let line = &self.line[..self.len];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() && !self.long {
            // Empty lines before the request line are skipped, as every HTTP/1 parser does.
            self.done = self.request_line;
        } else if !self.request_line {
            self.request_line = true;
        } else if header_value(line, b"content-length").is_some() {
            self.content_lengths += 1;
        } else if let Some(value) = header_value(line, b"transfer-encoding") {
            self.transfer_encoding = true;
            if self.long || !value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                self.unsupported_coding = true;
            }
        }
        self.len = 0;
        self.long = false;
    }
}

/// The value of `line` when it is the header `name` (lowercase).
fn header_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let (n, rest) = line.split_at_checked(name.len())?;
    if !n.eq_ignore_ascii_case(name) {
        return None;
    }
    rest.strip_prefix(b":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(head: &[u8]) -> Verdict {
        let mut s = HeadScan::default();
        assert!(s.feed(head), "the head ends");
        s.verdict()
    }

    #[test]
    fn envoys_refusals() {
        assert_eq!(scan(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"), Verdict::Fine);
        assert_eq!(
            scan(b"POST / HTTP/1.1\r\ncontent-length: 3\r\n\r\nabc"),
            Verdict::Fine
        );
        assert_eq!(
            scan(b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n"),
            Verdict::Fine
        );
        assert_eq!(
            scan(b"POST / HTTP/1.1\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n"),
            Verdict::Conflict
        );
        assert_eq!(
            scan(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
            Verdict::Conflict
        );
        assert_eq!(
            scan(b"POST / HTTP/1.1\r\ncontent-length: 3\r\ncontent-length: 3\r\n\r\n"),
            Verdict::Conflict
        );
        assert_eq!(
            scan(b"POST / HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\n\r\n"),
            Verdict::UnsupportedCoding
        );
        // Both problems: the conflict is what Envoy reports.
        assert_eq!(
            scan(b"POST / HTTP/1.1\r\ntransfer-encoding: identity\r\ncontent-length: 3\r\n\r\n"),
            Verdict::Conflict
        );
        // Names that only start like the framing headers are other headers.
        assert_eq!(
            scan(b"GET / HTTP/1.1\r\ncontent-lengthy: 1\r\nx-content-length: 2\r\n\r\n"),
            Verdict::Fine
        );
    }

    #[test]
    fn a_head_split_anywhere_reads_the_same() {
        let head: &[u8] =
            b"\r\nPOST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\nbody";
        for split in 0..head.len() {
            let mut s = HeadScan::default();
            let first = s.feed(&head[..split]);
            let done = first || s.feed(&head[split..]);
            assert!(done, "split at {split}");
            assert_eq!(s.verdict(), Verdict::Conflict, "split at {split}");
        }
    }

    #[test]
    fn the_body_and_long_lines_are_not_read_as_headers() {
        let mut s = HeadScan::default();
        let long_value = vec![b'a'; 1000];
        let mut head = b"POST / HTTP/1.1\r\nx-long: ".to_vec();
        head.extend_from_slice(&long_value);
        head.extend_from_slice(b"\r\ncontent-length: 20\r\n\r\ncontent-length: 9\r\n\r\n");
        assert!(s.feed(&head));
        assert_eq!(s.verdict(), Verdict::Fine);
        // Lines without a CR, as parsers accept them.
        assert_eq!(
            scan(b"POST / HTTP/1.1\ncontent-length: 1\ncontent-length: 1\n\n"),
            Verdict::Conflict
        );
    }
}
