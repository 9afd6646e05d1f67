//! Listener filters that look at a connection's first bytes without consuming them:
//! `tls_inspector` (SNI and ALPN from the TLS ClientHello) and `http_inspector` (HTTP/1.x or
//! HTTP/2 prior knowledge). Parsers are pure and bounded; the caller replays the bytes.

/// What the first bytes say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sniffed {
    /// More bytes are needed to decide.
    NeedMore,
    /// Not this protocol.
    No,
    /// A TLS ClientHello.
    Tls {
        /// SNI, lowercased.
        server_name: Option<String>,
        /// ALPN protocols offered.
        alpn: Vec<String>,
    },
    /// HTTP: `http/1.0`, `http/1.1` or `h2c`.
    Http(&'static str),
}

/// The most bytes the inspectors will buffer (a ClientHello rarely exceeds a few KiB; Envoy's
/// default `max_client_hello_size` is 64 KiB).
pub const MAX_INSPECT_BYTES: usize = 64 * 1024;

/// Parses a TLS ClientHello at the start of `buf` (it may span several records).
pub fn tls_client_hello(buf: &[u8]) -> Sniffed {
    // Reassemble the handshake message from consecutive handshake records.
    let mut handshake = Vec::new();
    let mut rest = buf;
    loop {
        if rest.len() < 5 {
            return if handshake.is_empty() && !rest.is_empty() && rest[0] != 0x16 {
                Sniffed::No
            } else {
                Sniffed::NeedMore
            };
        }
        if rest[0] != 0x16 || rest[1] != 0x03 {
            return Sniffed::No;
        }
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if len == 0 || len > 16_384 + 2048 {
            return Sniffed::No;
        }
        let Some(body) = rest.get(5..5 + len) else {
            return Sniffed::NeedMore;
        };
        handshake.extend_from_slice(body);
        rest = &rest[5 + len..];
        if handshake.len() >= 4 {
            if handshake[0] != 0x01 {
                return Sniffed::No;
            }
            let msg_len = (usize::from(handshake[1]) << 16)
                | (usize::from(handshake[2]) << 8)
                | usize::from(handshake[3]);
            if msg_len > MAX_INSPECT_BYTES {
                return Sniffed::No;
            }
            if handshake.len() >= 4 + msg_len {
                return parse_client_hello(&handshake[4..4 + msg_len]).unwrap_or(Sniffed::No);
            }
        }
    }
}

fn parse_client_hello(m: &[u8]) -> Option<Sniffed> {
    let mut r = Reader(m);
    r.skip(2)?; // legacy_version
    r.skip(32)?; // random
    let sid = r.u8()?;
    r.skip(usize::from(sid))?;
    let suites = r.u16()?;
    r.skip(usize::from(suites))?;
    let comp = r.u8()?;
    r.skip(usize::from(comp))?;
    let mut server_name = None;
    let mut alpn = Vec::new();
    if r.0.is_empty() {
        return Some(Sniffed::Tls { server_name, alpn });
    }
    let ext_len = r.u16()?;
    let mut exts = Reader(r.take(usize::from(ext_len))?);
    while !exts.0.is_empty() {
        let ty = exts.u16()?;
        let len = exts.u16()?;
        let mut data = Reader(exts.take(usize::from(len))?);
        match ty {
            0 => {
                let list_len = data.u16()?;
                let mut list = Reader(data.take(usize::from(list_len))?);
                while !list.0.is_empty() {
                    let name_type = list.u8()?;
                    let n = list.u16()?;
                    let name = list.take(usize::from(n))?;
                    if name_type == 0 && server_name.is_none() {
                        server_name = std::str::from_utf8(name).ok().map(str::to_ascii_lowercase);
                    }
                }
            }
            16 => {
                let list_len = data.u16()?;
                let mut list = Reader(data.take(usize::from(list_len))?);
                while !list.0.is_empty() {
                    let n = list.u8()?;
                    let p = list.take(usize::from(n))?;
                    alpn.push(String::from_utf8_lossy(p).into_owned());
                }
            }
            _ => {}
        }
    }
    Some(Sniffed::Tls { server_name, alpn })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Recognizes HTTP/2 prior knowledge or an HTTP/1.x request line at the start of `buf`.
pub fn http_request(buf: &[u8]) -> Sniffed {
    let n = buf.len().min(H2_PREFACE.len());
    if buf[..n] == H2_PREFACE[..n] {
        return if n == H2_PREFACE.len() {
            Sniffed::Http("h2c")
        } else {
            Sniffed::NeedMore
        };
    }
    // An HTTP/1 request line: METHOD SP target SP HTTP/1.x CRLF, methods are tokens.
    let method_len = buf
        .iter()
        .take_while(|b| b.is_ascii_uppercase() || **b == b'-' || **b == b'_')
        .count();
    if method_len == 0 || method_len > 20 {
        return if buf.is_empty() {
            Sniffed::NeedMore
        } else {
            Sniffed::No
        };
    }
    if buf.len() == method_len {
        return Sniffed::NeedMore;
    }
    if buf[method_len] != b' ' {
        return Sniffed::No;
    }
    let Some(eol) = buf.iter().position(|b| *b == b'\n') else {
        return if buf.len() >= 8192 {
            Sniffed::No
        } else {
            Sniffed::NeedMore
        };
    };
    let line = buf[..eol].strip_suffix(b"\r").unwrap_or(&buf[..eol]);
    if line.ends_with(b" HTTP/1.1") {
        Sniffed::Http("http/1.1")
    } else if line.ends_with(b" HTTP/1.0") {
        Sniffed::Http("http/1.0")
    } else {
        Sniffed::No
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real ClientHello, as rustls writes it.
    fn client_hello(sni: &str, alpn: &[&str]) -> Vec<u8> {
        use std::sync::Arc;
        let roots = rustls::RootCertStore::empty();
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        let name = rustls_pki_types::ServerName::try_from(sni.to_owned()).unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
        let mut out = Vec::new();
        conn.write_tls(&mut out).unwrap();
        out
    }

    #[test]
    fn reads_sni_and_alpn() {
        let hello = client_hello("Example.COM", &["h2", "http/1.1"]);
        assert_eq!(
            tls_client_hello(&hello),
            Sniffed::Tls {
                server_name: Some("example.com".into()),
                alpn: vec!["h2".into(), "http/1.1".into()]
            }
        );
        for cut in [0, 3, 5, 40, hello.len() - 1] {
            assert_eq!(
                tls_client_hello(&hello[..cut]),
                Sniffed::NeedMore,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn non_tls_and_garbage() {
        assert_eq!(tls_client_hello(b"GET / HTTP/1.1\r\n"), Sniffed::No);
        assert_eq!(
            tls_client_hello(&[0x16, 0x03, 0x01, 0x00, 0x05, 0x02, 0, 0, 1, 0]),
            Sniffed::No
        );
        // Truncated lengths inside a complete record never panic.
        assert_eq!(
            tls_client_hello(&[0x16, 0x03, 0x01, 0x00, 0x06, 0x01, 0, 0, 2, 0xff, 0xff]),
            Sniffed::No
        );
    }

    #[test]
    fn http_detection() {
        assert_eq!(
            http_request(b"GET /index HTTP/1.1\r\nHost: x\r\n"),
            Sniffed::Http("http/1.1")
        );
        assert_eq!(
            http_request(b"POST / HTTP/1.0\n"),
            Sniffed::Http("http/1.0")
        );
        assert_eq!(
            http_request(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            Sniffed::Http("h2c")
        );
        assert_eq!(http_request(b"PRI * HTTP"), Sniffed::NeedMore);
        assert_eq!(http_request(b"GET /index"), Sniffed::NeedMore);
        assert_eq!(http_request(b"\x16\x03\x01"), Sniffed::No);
        assert_eq!(http_request(b"SSH-2.0-OpenSSH\r\n"), Sniffed::No);
        assert_eq!(http_request(b"220 smtp.example.com ESMTP\r\n"), Sniffed::No);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x1234_5678_u64;
        for len in 0..600 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let mut framed = vec![0x16, 0x03, 0x01, (len >> 8) as u8, len as u8];
            framed.extend_from_slice(&bytes);
            let _ = tls_client_hello(&framed);
            let _ = tls_client_hello(&bytes);
            let _ = http_request(&bytes);
        }
    }
}
