//! Responses the proxy writes itself (no route, direct responses, redirects, upstream failures,
//! faults, rate limits), shaped like Envoy's `sendLocalReply`: `text/plain` body with Envoy's
//! wording, `x-envoy-overloaded` on overflow, and for gRPC requests a trailers-only gRPC answer
//! ([`to_grpc`]).

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::Body;
use crate::error::{ResponseFlag, UpstreamError};

/// Marks a response as a local reply (a response extension), with what a gRPC client gets
/// instead of the text body.
#[derive(Debug, Clone)]
pub struct LocalReply {
    /// The text body.
    pub text: Bytes,
    /// The gRPC status to send instead of the one mapped from the HTTP status.
    pub grpc_status: Option<u32>,
}

/// A body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Body::new(Full::new(bytes.into()).map_err(|never| match never {}))
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}

/// A local reply with `status` and a plain-text `body`.
pub fn reply(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    reply_with_grpc_status(status, body, None)
}

/// A local reply with `status` and a plain-text `body`, answering gRPC requests with
/// `grpc_status` (mapped from `status` when `None`).
pub fn reply_with_grpc_status(
    status: u16,
    body: impl Into<Bytes>,
    grpc_status: Option<u32>,
) -> Response<Body> {
    let body = body.into();
    let mut resp = Response::new(full(body.clone()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if !body.is_empty() {
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    resp.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    resp.extensions_mut().insert(LocalReply {
        text: body,
        grpc_status,
    });
    resp
}

/// The local reply for an upstream failure.
pub fn upstream_failure(err: &UpstreamError) -> Response<Body> {
    upstream_failure_after(err, 1)
}

/// The local reply for an upstream failure on attempt number `attempts` (retries reword it).
pub fn upstream_failure_after(err: &UpstreamError, attempts: u32) -> Response<Body> {
    let (status, body) = err.local_reply_after(attempts);
    let mut resp = reply(status, body);
    if err.flag() == ResponseFlag::UpstreamOverflow {
        resp.headers_mut().insert(
            super::names::X_ENVOY_OVERLOADED,
            HeaderValue::from_static("true"),
        );
    }
    resp
}

/// Envoy's `Grpc::Common::isGrpcRequestHeaders`: `content-type` is `application/grpc` exactly or
/// followed by `+` (so `application/grpc-web` is not gRPC).
pub fn is_grpc_request(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).is_some_and(|ct| {
        match ct.as_bytes().strip_prefix(b"application/grpc") {
            Some(rest) => rest.is_empty() || rest[0] == b'+',
            None => false,
        }
    })
}

/// Reshapes a local reply to a gRPC request as Envoy does: HTTP 200, `content-type:
/// application/grpc`, `grpc-status` (unless already set) from the reply's gRPC status or mapped
/// from its HTTP status, the text percent-encoded as `grpc-message` (not for `HEAD`), and no
/// body. Responses that are not local replies are left alone.
pub fn to_grpc(resp: &mut Response<Body>, head: bool) {
    let Some(local) = resp.extensions_mut().remove::<LocalReply>() else {
        return;
    };
    let grpc_status = local
        .grpc_status
        .unwrap_or_else(|| http_to_grpc_status(resp.status().as_u16()));
    *resp.status_mut() = StatusCode::OK;
    *resp.body_mut() = empty();
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    h.remove(CONTENT_LENGTH);
    h.entry("grpc-status")
        .or_insert_with(|| HeaderValue::from(grpc_status));
    let mut text: &[u8] = &local.text;
    if let Some(stripped) = text.strip_suffix(b"\n") {
        text = stripped;
    }
    if !text.is_empty()
        && !head
        && let Ok(v) = HeaderValue::from_str(&grpc_percent_encode(text))
    {
        h.insert(super::names::GRPC_MESSAGE, v);
    }
}

/// Envoy's `Grpc::Utility::httpToGrpcStatus`.
pub fn http_to_grpc_status(status: u16) -> u32 {
    match status {
        400 => 13,                   // INTERNAL
        401 => 16,                   // UNAUTHENTICATED
        403 => 7,                    // PERMISSION_DENIED
        404 => 12,                   // UNIMPLEMENTED
        429 | 502 | 503 | 504 => 14, // UNAVAILABLE
        _ => 2,                      // UNKNOWN
    }
}

/// Envoy's `PercentEncoding::encode(text, "%")` for `grpc-message`: bytes below space, from `~`
/// up, and `%` become `%XX`.
fn grpc_percent_encode(text: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text {
        if !(b' '..b'~').contains(&b) || b == b'%' {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_content_type_is_exact_or_plus() {
        let h = |v: &'static str| {
            let mut m = HeaderMap::new();
            m.insert(CONTENT_TYPE, HeaderValue::from_static(v));
            m
        };
        assert!(is_grpc_request(&h("application/grpc")));
        assert!(is_grpc_request(&h("application/grpc+proto")));
        assert!(!is_grpc_request(&h("application/grpc-web")));
        assert!(!is_grpc_request(&h("application/grpc;charset=utf-8")));
        assert!(!is_grpc_request(&HeaderMap::new()));
    }

    #[test]
    fn local_reply_to_grpc_is_trailers_only_with_mapped_status() {
        let mut r = reply(404, "no route\n");
        r.headers_mut()
            .insert("location", HeaderValue::from_static("/x"));
        to_grpc(&mut r, false);
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/grpc");
        assert_eq!(r.headers()["grpc-status"], "12");
        assert_eq!(r.headers()["grpc-message"], "no route");
        assert_eq!(r.headers()["location"], "/x");
        assert!(r.headers().get(CONTENT_LENGTH).is_none());
    }

    #[test]
    fn explicit_grpc_status_wins_and_head_gets_no_message() {
        let mut r = reply_with_grpc_status(503, "fault filter abort", Some(4));
        to_grpc(&mut r, true);
        assert_eq!(r.headers()["grpc-status"], "4");
        assert!(r.headers().get("grpc-message").is_none());
    }

    #[test]
    fn empty_text_has_no_message_and_upstream_answers_are_untouched() {
        let mut r = reply(200, "");
        to_grpc(&mut r, false);
        assert_eq!(r.headers()["grpc-status"], "2");
        assert!(r.headers().get("grpc-message").is_none());

        let mut upstream = Response::new(full("data"));
        *upstream.status_mut() = StatusCode::BAD_GATEWAY;
        to_grpc(&mut upstream, false);
        assert_eq!(upstream.status(), 502);
        assert!(upstream.headers().get("grpc-status").is_none());
    }

    #[test]
    fn failures_after_retries_say_so() {
        let err = UpstreamError::ConnectFailure("refused".into());
        let first = upstream_failure_after(&err, 1);
        assert_eq!(
            first.extensions().get::<LocalReply>().unwrap().text,
            "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure"
        );
        let retried = upstream_failure_after(&err, 3);
        assert_eq!(
            retried.extensions().get::<LocalReply>().unwrap().text,
            "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: remote connection failure"
        );
        // Not a reset: unchanged.
        let timeout = upstream_failure_after(&UpstreamError::Timeout, 2);
        assert_eq!(
            timeout.extensions().get::<LocalReply>().unwrap().text,
            "upstream request timeout"
        );
    }

    #[test]
    fn grpc_message_is_percent_encoded_like_envoy() {
        assert_eq!(grpc_percent_encode(b"a b%c~\xff\n"), "a b%25c%7E%FF%0A");
    }
}
