//! The request line and framing of an HTTP/1 request as Envoy's codec judges them, from the raw
//! bytes of the request head.
//!
//! hyper is more lenient than Envoy, and its parsed request no longer shows what it forgave:
//! with both `Transfer-Encoding` and `Content-Length` it drops `Content-Length` (and closes the
//! connection after the request), it merges equal duplicate `Content-Length` values, it accepts
//! any coding list ending in `chunked` (then forwards only `chunked`, losing the others), it
//! serves HTTP/1.0, takes any token as a method and any target, and drops a `#fragment`. So
//! weft reads each head's request line and its `Content-Length` and `Transfer-Encoding` lines
//! as they arrive ([`HeadScan`]) and refuses what Envoy 1.40 refuses by default, with Envoy's
//! answer: an HTTP version other than 1.1 is `426`; a method outside Envoy's list, or a target
//! that is not origin-form (`/...`), `http(s)://` absolute-form, `*` for `OPTIONS` or
//! authority-form for `CONNECT`, is `400`; both framing headers, or `Content-Length` twice, is
//! `400`; a transfer coding other than `chunked` is `501`; a fragment in the target is `400`
//! with no body. (A proxy that re-frames every request, as weft does, cannot be desynchronized
//! by ambiguous framing; refusing it is what Envoy does and what a request smuggling probe
//! expects to see.)

/// The methods Envoy's HTTP/1 codec accepts (without `allow_custom_methods`), as probed.
const METHODS: &[&[u8]] = &[
    b"ACL",
    b"BIND",
    b"CHECKOUT",
    b"CONNECT",
    b"COPY",
    b"DELETE",
    b"GET",
    b"HEAD",
    b"LINK",
    b"LOCK",
    b"MERGE",
    b"MKACTIVITY",
    b"MKCALENDAR",
    b"MKCOL",
    b"MOVE",
    b"MSEARCH",
    b"NOTIFY",
    b"OPTIONS",
    b"PATCH",
    b"POST",
    b"PROPFIND",
    b"PROPPATCH",
    b"PURGE",
    b"PUT",
    b"REBIND",
    b"REPORT",
    b"SEARCH",
    b"SOURCE",
    b"SUBSCRIBE",
    b"TRACE",
    b"UNBIND",
    b"UNLINK",
    b"UNLOCK",
    b"UNSUBSCRIBE",
];

/// What Envoy's codec says about a request head, most important first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Verdict {
    /// Nothing Envoy refuses.
    Fine = 0,
    /// An HTTP version other than 1.1: `426`.
    Version = 1,
    /// A method outside Envoy's list: `400`.
    Method = 2,
    /// A request target of the wrong form: `400`.
    Target = 3,
    /// `Transfer-Encoding` with `Content-Length`, or `Content-Length` more than once: `400`.
    Conflict = 4,
    /// A transfer coding other than `chunked`: `501`.
    UnsupportedCoding = 5,
    /// A `#fragment` in the target: `400` with no body (Envoy's connection manager refuses it
    /// after its codec).
    Fragment = 6,
}

impl Verdict {
    /// Envoy's status and text for it (`None` when fine).
    pub fn reply(self) -> Option<(u16, &'static str)> {
        match self {
            Verdict::Fine => None,
            Verdict::Version => Some((426, "Upgrade Required")),
            Verdict::Method | Verdict::Target | Verdict::Conflict => Some((400, "Bad Request")),
            Verdict::UnsupportedCoding => Some((501, "Not Implemented")),
            Verdict::Fragment => Some((400, "")),
        }
    }

    /// The verdict numbered `code` (as `Verdict as u8`).
    pub fn from_code(code: u8) -> Verdict {
        [
            Verdict::Fine,
            Verdict::Version,
            Verdict::Method,
            Verdict::Target,
            Verdict::Conflict,
            Verdict::UnsupportedCoding,
            Verdict::Fragment,
        ]
        .get(usize::from(code))
        .copied()
        .unwrap_or(Verdict::Fine)
    }
}

/// The longest line start looked at: `transfer-encoding:` and a value of `chunked` with some
/// spaces fit; a longer line is not one that matters or has an unsupported value.
const KEEP: usize = 48;

/// The end of the request line kept: ` HTTP/1.1` and a CR.
const TAIL: usize = 10;

/// Reads a request head fed in pieces (as the socket delivers it), line by line.
#[derive(Debug)]
pub struct HeadScan {
    /// The start of the current line: its first `len` bytes (at most [`KEEP`]).
    line: [u8; KEEP],
    len: usize,
    /// The current line is longer than [`KEEP`].
    long: bool,
    /// The last bytes of the current line (its end, for the request line's version).
    tail: [u8; TAIL],
    /// A `#` in the request line.
    fragment: bool,
    /// What the request line says.
    line_verdict: Verdict,
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
            tail: [0; TAIL],
            fragment: false,
            line_verdict: Verdict::Fine,
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
        if self.line_verdict != Verdict::Fine {
            self.line_verdict
        } else if self.transfer_encoding && self.content_lengths > 0 || self.content_lengths > 1 {
            Verdict::Conflict
        } else if self.unsupported_coding {
            Verdict::UnsupportedCoding
        } else if self.fragment {
            Verdict::Fragment
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
        if !self.request_line {
            self.fragment |= part.contains(&b'#');
            if part.len() >= TAIL {
                self.tail.copy_from_slice(&part[part.len() - TAIL..]);
            } else {
                self.tail.copy_within(part.len().., 0);
                self.tail[TAIL - part.len()..].copy_from_slice(part);
            }
        }
    }

    /// Envoy's checks of the request line, in its order: method, target, version (`line` is the
    /// line's start, `self.tail` its end).
    fn judge_request_line(&self, line: &[u8]) -> Verdict {
        let Some(sp) = line.iter().position(|&b| b == b' ') else {
            return Verdict::Method;
        };
        let (method, rest) = (&line[..sp], &line[sp + 1..]);
        if !METHODS.contains(&method) {
            return Verdict::Method;
        }
        let lower = |n: usize| rest.get(..n).map(<[u8]>::to_ascii_lowercase);
        let target_ok = method == b"CONNECT"
            || rest.starts_with(b"/")
            || (rest.starts_with(b"* ") && method == b"OPTIONS")
            || lower(7).is_some_and(|p| p == b"http://")
            || lower(8).is_some_and(|p| p == b"https://");
        if !target_ok {
            return Verdict::Target;
        }
        // The version: the last word, when there are three (a line of two is HTTP/0.9).
        let end = if self.long {
            self.tail.strip_suffix(b"\r").unwrap_or(&self.tail)
        } else {
            rest
        };
        let Some(last_sp) = end.iter().rposition(|&b| b == b' ') else {
            return Verdict::Version;
        };
        match &end[last_sp + 1..] {
            b"HTTP/1.1" => Verdict::Fine,
            v if v.starts_with(b"HTTP/") => Verdict::Version,
            _ => Verdict::Target,
        }
    }

    fn end_line(&mut self) {
        let line = &self.line[..self.len];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() && !self.long {
            // Empty lines before the request line are skipped, as every HTTP/1 parser does.
            self.done = self.request_line;
        } else if !self.request_line {
            self.line_verdict = self.judge_request_line(line);
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
        self.tail = [0; TAIL];
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
    fn the_request_line_as_envoy_reads_it() {
        let line = |l: &str| scan(format!("{l}\r\nhost: x\r\n\r\n").as_bytes());
        for fine in [
            "GET / HTTP/1.1",
            "PROPFIND /a?b HTTP/1.1",
            "GET http://x/a HTTP/1.1",
            "GET HTTPS://x/a HTTP/1.1",
            "OPTIONS * HTTP/1.1",
            "CONNECT x:443 HTTP/1.1",
        ] {
            assert_eq!(line(fine), Verdict::Fine, "{fine}");
        }
        let long = format!("GET /{} HTTP/1.1", "a".repeat(300));
        assert_eq!(line(&long), Verdict::Fine);
        for (bad, verdict) in [
            ("GET / HTTP/1.0", Verdict::Version),
            ("GET / HTTP/1.2", Verdict::Version),
            ("GET /", Verdict::Version),
            ("GET", Verdict::Method),
            ("\u{16}\u{3}hello", Verdict::Method),
            ("FOO a HTTP/1.0", Verdict::Method),
            ("GET a HTTP/1.0", Verdict::Target),
            ("GET /#a HTTP/1.0", Verdict::Version),
            ("GET /a HTTP/1.1 x", Verdict::Target),
            ("get / HTTP/1.1", Verdict::Method),
            ("FOO / HTTP/1.1", Verdict::Method),
            ("M-SEARCH * HTTP/1.1", Verdict::Method),
            ("GET a HTTP/1.1", Verdict::Target),
            ("GET * HTTP/1.1", Verdict::Target),
            ("GET x:80 HTTP/1.1", Verdict::Target),
            ("GET ftp://x/a HTTP/1.1", Verdict::Target),
            ("GET /a#b HTTP/1.1", Verdict::Fragment),
        ] {
            assert_eq!(line(bad), verdict, "{bad}");
        }
        let long_fragment = format!("GET /{}#x HTTP/1.1", "a".repeat(300));
        assert_eq!(line(&long_fragment), Verdict::Fragment);
        let long_old = format!("GET /{} HTTP/1.0", "a".repeat(300));
        assert_eq!(line(&long_old), Verdict::Version);
        // The version is what Envoy's codec looks at first.
        assert_eq!(
            scan(b"POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\ncontent-length: 1\r\n\r\n"),
            Verdict::Version
        );
    }

    #[test]
    fn a_head_split_anywhere_reads_the_same() {
        let head: &[u8] =
            b"\r\nPOST /path/that/is/long/enough/to/pass/the/line/buffer/and/more HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\nbody";
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
