//! A minimal WebSocket (RFC 6455) echo on the server side and a client, enough to check that a
//! proxy passes upgrades and frames through. No extensions, no fragmentation reassembly: each
//! frame is echoed as received (unmasked, as a server must), pings are answered with pongs and a
//! close frame is echoed before the connection ends.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::watch;

use crate::BoxError;
use crate::io::{BoxBody, BoxIo, ClientTls, connect, empty, full};
use crate::sha1::websocket_accept;

const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;
const MAX_FRAME: u64 = 16 << 20;
/// Bound on every client operation so a broken proxy fails the test instead of hanging it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers an upgrade request with `101` and echoes frames on the upgraded connection.
pub(crate) fn accept(
    headers: &HeaderMap,
    on_upgrade: OnUpgrade,
    mut shutdown: watch::Receiver<()>,
) -> Response<BoxBody> {
    let Some(key) = headers
        .get("sec-websocket-key")
        .and_then(|v| v.to_str().ok())
    else {
        let mut resp = Response::new(full("missing Sec-WebSocket-Key"));
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        return resp;
    };
    let accept = websocket_accept(key);
    tokio::spawn(async move {
        let upgraded = tokio::select! {
            upgraded = on_upgrade => match upgraded {
                Ok(upgraded) => upgraded,
                Err(_) => return,
            },
            _ = shutdown.changed() => return,
        };
        tokio::select! {
            _ = echo_frames(TokioIo::new(upgraded)) => {}
            _ = shutdown.changed() => {}
        }
    });
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert("upgrade", HeaderValue::from_static("websocket"));
    h.insert("connection", HeaderValue::from_static("upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        h.insert("sec-websocket-accept", accept);
    }
    resp
}

async fn echo_frames<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) -> std::io::Result<()> {
    while let Some((head, payload)) = read_frame(&mut io).await? {
        match head & 0x0F {
            OP_CLOSE => {
                write_frame(&mut io, 0x80 | OP_CLOSE, &payload, None).await?;
                break;
            }
            OP_PING => write_frame(&mut io, 0x80 | OP_PONG, &payload, None).await?,
            _ => write_frame(&mut io, head, &payload, None).await?,
        }
    }
    io.shutdown().await
}

/// Reads one frame: (first byte: FIN + opcode, unmasked payload); `None` at EOF.
async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 2];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let masked = head[1] & 0x80 != 0;
    let len = match head[1] & 0x7F {
        126 => u64::from(r.read_u16().await?),
        127 => r.read_u64().await?,
        n => u64::from(n),
    };
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "WebSocket frame of {len} bytes"
        )));
    }
    let mut mask = [0u8; 4];
    if masked {
        r.read_exact(&mut mask).await?;
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload).await?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Ok(Some((head[0], payload)))
}

async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    head: u8,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) -> std::io::Result<()> {
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(head);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => frame.push(mask_bit | n as u8),
        n if n <= usize::from(u16::MAX) => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(mask) => {
            frame.extend_from_slice(&mask);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        None => frame.extend_from_slice(payload),
    }
    w.write_all(&frame).await?;
    w.flush().await
}

/// A message received by [`WebSocketClient`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WsMessage {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Bytes),
    /// A pong (answer to [`WebSocketClient::ping`]).
    Pong(Bytes),
    /// A close frame.
    Close,
}

/// A WebSocket client over one HTTP/1.1 connection.
#[derive(Debug)]
pub struct WebSocketClient {
    io: BufReader<BoxIo>,
    /// Headers of the `101` response (see [`Self::served_by`]).
    pub headers: HeaderMap,
}

impl WebSocketClient {
    /// Performs the upgrade handshake for `path` with `Host: host` on a new plain connection.
    pub async fn connect(addr: SocketAddr, host: &str, path: &str) -> Result<Self, BoxError> {
        Self::connect_with(addr, None, host, path, &[]).await
    }

    /// As [`Self::connect`], optionally over TLS and with extra request headers.
    pub async fn connect_with(
        addr: SocketAddr,
        tls: Option<&ClientTls>,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Self, BoxError> {
        let tls = tls.map(|t| t.with_alpn(&[b"http/1.1"]));
        let io = connect(addr, tls.as_ref()).await?;
        let mut io = BufReader::new(io);
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nhost: {host}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
             sec-websocket-key: {key}\r\nsec-websocket-version: 13\r\n"
        );
        for (name, value) in headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        req.push_str("\r\n");
        let handshake = async {
            io.write_all(req.as_bytes()).await?;
            io.flush().await?;
            read_head(&mut io).await
        };
        let (status, headers) = tokio::time::timeout(CLIENT_TIMEOUT, handshake)
            .await
            .map_err(|_| "WebSocket handshake timed out")??;
        if status != 101 {
            return Err(format!("WebSocket handshake answered {status}, not 101").into());
        }
        let expected = websocket_accept(key);
        let accept = headers
            .get("sec-websocket-accept")
            .and_then(|v| v.to_str().ok());
        if accept != Some(expected.as_str()) {
            return Err(format!("bad Sec-WebSocket-Accept {accept:?}").into());
        }
        Ok(Self { io, headers })
    }

    /// `x-served-by` of the `101` response.
    pub fn served_by(&self) -> Option<&str> {
        self.headers
            .get("x-served-by")
            .and_then(|v| v.to_str().ok())
    }

    /// Sends a text frame.
    pub async fn send_text(&mut self, text: &str) -> Result<(), BoxError> {
        self.send(0x80 | OP_TEXT, text.as_bytes()).await
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, data: &[u8]) -> Result<(), BoxError> {
        self.send(0x80 | OP_BINARY, data).await
    }

    /// Sends a ping; the echo server answers with a pong carrying `data`.
    pub async fn ping(&mut self, data: &[u8]) -> Result<(), BoxError> {
        self.send(0x80 | OP_PING, data).await
    }

    /// Receives the next message (bounded by a 10 s timeout).
    pub async fn recv(&mut self) -> Result<WsMessage, BoxError> {
        let frame = tokio::time::timeout(CLIENT_TIMEOUT, read_frame(&mut self.io))
            .await
            .map_err(|_| "no WebSocket frame within 10s")??;
        let (head, payload) = frame.ok_or("connection closed")?;
        Ok(match head & 0x0F {
            OP_TEXT => WsMessage::Text(String::from_utf8(payload)?),
            OP_PONG => WsMessage::Pong(payload.into()),
            OP_CLOSE => WsMessage::Close,
            _ => WsMessage::Binary(payload.into()),
        })
    }

    /// Sends a close frame and waits for the peer's close.
    pub async fn close(mut self) -> Result<(), BoxError> {
        self.send(0x80 | OP_CLOSE, &[]).await?;
        loop {
            if self.recv().await? == WsMessage::Close {
                return Ok(());
            }
        }
    }

    async fn send(&mut self, head: u8, payload: &[u8]) -> Result<(), BoxError> {
        // Clients must mask; the key's value doesn't matter for tests.
        let write = write_frame(self.io.get_mut(), head, payload, Some([1, 2, 3, 4]));
        tokio::time::timeout(CLIENT_TIMEOUT, write)
            .await
            .map_err(|_| "WebSocket send timed out")??;
        Ok(())
    }
}

/// Reads an HTTP/1.1 response head: status code and headers.
async fn read_head<R: AsyncBufReadExt + Unpin>(r: &mut R) -> Result<(u16, HeaderMap), BoxError> {
    let mut line = String::new();
    r.read_line(&mut line).await?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    let mut headers = HeaderMap::new();
    for _ in 0..200 {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Err("connection closed during the handshake".into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            return Ok((status, headers));
        }
        if let Some((name, value)) = l.split_once(':') {
            headers.append(
                HeaderName::from_bytes(name.trim().as_bytes())?,
                HeaderValue::from_str(value.trim())?,
            );
        }
    }
    Err("too many response headers".into())
}
