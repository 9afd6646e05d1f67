//! Responses the proxy writes itself (no route, upstream failures, faults, rate limits), shaped
//! like Envoy's: `text/plain` body with Envoy's wording, and `x-envoy-overloaded` on overflow.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::Body;
use crate::error::{ResponseFlag, UpstreamError};

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
    let body = body.into();
    let mut resp = Response::new(full(body.clone()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if !body.is_empty() {
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    resp.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    resp
}

/// The local reply for an upstream failure.
pub fn upstream_failure(err: &UpstreamError) -> Response<Body> {
    let (status, body) = err.local_reply();
    let mut resp = reply(status, body);
    if err.flag() == ResponseFlag::UpstreamOverflow {
        resp.headers_mut()
            .insert("x-envoy-overloaded", HeaderValue::from_static("true"));
    }
    resp
}
