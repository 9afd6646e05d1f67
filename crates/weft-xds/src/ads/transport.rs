//! The ADS gRPC service with response framing done here rather than by tonic's generic
//! encoder.
//!
//! tonic encodes every response of a stream into one growing buffer and hands out slices of
//! it, so a stream keeps an allocation as large as its largest response for as long as it is
//! open: with a thousand proxies whose route configuration is a megabyte, that is gigabytes
//! held for nothing. Here each response is encoded into its own buffer of exactly its size,
//! freed as soon as it is written. Requests are decoded by tonic as before; the protocol on
//! the wire is unchanged (gRPC framing, `grpc-status` trailers).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use futures_util::{Stream, StreamExt, stream};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use prost::Message;
use tonic::Status;
use tonic::body::Body;
use tonic::metadata::MetadataMap;
use tonic::server::NamedService;

use super::AdsServer;

const SOTW_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// Largest request accepted (a SotW EDS request lists every cluster name).
const MAX_REQUEST: usize = 16 << 20;

/// The ADS service to mount on a tonic server (see [`AdsServer::service`]).
#[derive(Debug, Clone)]
pub struct AdsService {
    server: AdsServer,
}

impl AdsService {
    pub(super) fn new(server: AdsServer) -> AdsService {
        AdsService { server }
    }
}

impl NamedService for AdsService {
    const NAME: &'static str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

impl tower::Service<http::Request<Body>> for AdsService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> BoxFuture {
        let server = self.server.clone();
        Box::pin(async move {
            let path = req.uri().path().to_owned();
            let (parts, body) = req.into_parts();
            let metadata = MetadataMap::from_headers(parts.headers);
            let response = match path.as_str() {
                SOTW_PATH => {
                    let inbound = requests::<DiscoveryRequest>(body);
                    let request = tonic::Request::from_parts(metadata, parts.extensions, inbound);
                    respond(
                        server
                            .open::<super::sotw::SotwStream, _>(request)
                            .into_inner(),
                    )
                }
                DELTA_PATH => {
                    let inbound = requests::<DeltaDiscoveryRequest>(body);
                    let request = tonic::Request::from_parts(metadata, parts.extensions, inbound);
                    respond(
                        server
                            .open::<super::delta::DeltaStream, _>(request)
                            .into_inner(),
                    )
                }
                _ => Status::unimplemented(format!("no method {path}")).into_http(),
            };
            Ok(response)
        })
    }
}

/// The gRPC messages of a request body, decoded as they complete.
///
/// tonic's decoder keeps one buffer per stream at the size of the largest request it has
/// seen; a state-of-the-world EDS request names every cluster (100 KB and more with a
/// thousand services), so a thousand open streams held hundreds of megabytes of idle
/// buffers. Here the buffer is released whenever no partial message is pending.
fn requests<M: Message + Default + 'static>(
    body: Body,
) -> Pin<Box<dyn Stream<Item = Result<M, Status>> + Send>> {
    Box::pin(stream::unfold(
        Some((body, BytesMut::new())),
        |state| async move {
            let (mut body, mut buf) = state?;
            loop {
                match next_message::<M>(&mut buf) {
                    Ok(Some(m)) => return Some((Ok(m), Some((body, buf)))),
                    Ok(None) => {}
                    Err(status) => return Some((Err(status), None)),
                }
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            buf.extend_from_slice(&data);
                        }
                    }
                    Some(Err(status)) => return Some((Err(status), None)),
                    None if buf.is_empty() => return None,
                    None => {
                        return Some((
                            Err(Status::internal("request stream ended inside a message")),
                            None,
                        ));
                    }
                }
            }
        },
    ))
}

/// The next complete message in `buf`, if there is one; frees `buf`'s allocation once it is
/// empty.
fn next_message<M: Message + Default>(buf: &mut BytesMut) -> Result<Option<M>, Status> {
    if buf.len() < 5 {
        return Ok(None);
    }
    if buf[0] != 0 {
        return Err(Status::unimplemented(
            "compressed requests are not supported",
        ));
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > MAX_REQUEST {
        return Err(Status::resource_exhausted(format!(
            "request of {len} bytes is over the {MAX_REQUEST}-byte limit"
        )));
    }
    if buf.len() < 5 + len {
        return Ok(None);
    }
    let message = M::decode(&buf[5..5 + len])
        .map_err(|e| Status::invalid_argument(format!("undecodable request: {e}")))?;
    buf.advance(5 + len);
    if buf.is_empty() {
        *buf = BytesMut::new();
    }
    Ok(Some(message))
}

/// A gRPC response streaming `messages`, ending with the `grpc-status` trailers of the first
/// error or of success.
///
/// Each message goes out in [`CHUNK`]-sized data frames. HTTP/2 asks the body for its next
/// frame only when the stream has send capacity again, so a large response is pulled as the
/// proxy reads it instead of being buffered whole inside HTTP/2, and the next message (with
/// it the push slot of the previous one, see `TakenOnPoll`) is taken only once the last chunk
/// is nearly on the wire. Without this, a thousand slow readers each held a complete
/// configuration in HTTP/2's send buffer.
fn respond<M, S>(messages: S) -> http::Response<Body>
where
    M: Message + 'static,
    S: Stream<Item = Result<M, Status>> + Send + 'static,
{
    let frames = messages
        .map(Some)
        .chain(stream::once(async { None }))
        .scan(false, |ended, item| {
            let out = match (*ended, item) {
                (true, _) => None,
                (false, Some(Ok(m))) => Some(chunks(frame(&m)).map(Frame::data).collect()),
                (false, Some(Err(status))) => {
                    *ended = true;
                    Some(vec![Frame::trailers(trailers(&status))])
                }
                (false, None) => {
                    *ended = true;
                    Some(vec![Frame::trailers(trailers(&Status::ok("")))])
                }
            };
            std::future::ready(out)
        })
        .flat_map(|frames: Vec<Frame<Bytes>>| {
            stream::iter(frames.into_iter().map(Ok::<_, Infallible>))
        });
    let mut response = http::Response::new(Body::new(StreamBody::new(frames)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    response
}

/// Size of the data frames a response is written in.
const CHUNK: usize = 64 * 1024;

/// `bytes` in [`CHUNK`]-sized slices (sharing its allocation).
fn chunks(bytes: Bytes) -> impl Iterator<Item = Bytes> {
    let len = bytes.len();
    (0..len)
        .step_by(CHUNK)
        .map(move |start| bytes.slice(start..(start + CHUNK).min(len)))
}

/// `m` as one gRPC message (uncompressed flag, big-endian length, bytes) in a buffer of
/// exactly that size.
fn frame<M: Message>(m: &M) -> Bytes {
    let len = m.encoded_len();
    let mut buf = BytesMut::with_capacity(len + 5);
    buf.put_u8(0);
    buf.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    // Cannot fail: the buffer has room for the whole message.
    let _ = m.encode(&mut buf);
    buf.freeze()
}

fn trailers(status: &Status) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    if status.add_header(&mut headers).is_err() {
        headers.insert(
            "grpc-status",
            http::HeaderValue::from(tonic::Code::Internal as i32),
        );
    }
    headers
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;

    use super::*;

    #[test]
    fn requests_decode_across_frames_and_release_the_buffer() {
        let req = DiscoveryRequest {
            type_url: "t".into(),
            resource_names: (0..2000).map(|i| format!("outbound|80||s{i}.ns")).collect(),
            ..Default::default()
        };
        let framed = frame(&req);
        let mut buf = BytesMut::new();
        // Arrives in pieces: nothing until the message is complete.
        for piece in framed.chunks(1000) {
            assert_eq!(next_message::<DiscoveryRequest>(&mut buf).unwrap(), None);
            buf.extend_from_slice(piece);
        }
        let got = next_message::<DiscoveryRequest>(&mut buf).unwrap().unwrap();
        assert_eq!(got, req);
        assert_eq!(
            buf.capacity(),
            0,
            "the stream keeps no buffer between requests"
        );
        // Two messages in one frame.
        buf.extend_from_slice(&frame(&req));
        buf.extend_from_slice(&frame(&req));
        assert!(
            next_message::<DiscoveryRequest>(&mut buf)
                .unwrap()
                .is_some()
        );
        assert!(
            next_message::<DiscoveryRequest>(&mut buf)
                .unwrap()
                .is_some()
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn bad_requests_are_refused() {
        let mut compressed = BytesMut::from(&[1u8, 0, 0, 0, 0][..]);
        assert_eq!(
            next_message::<DiscoveryRequest>(&mut compressed)
                .unwrap_err()
                .code(),
            tonic::Code::Unimplemented
        );
        let mut huge = BytesMut::from(&[0u8, 0xff, 0xff, 0xff, 0xff][..]);
        assert_eq!(
            next_message::<DiscoveryRequest>(&mut huge)
                .unwrap_err()
                .code(),
            tonic::Code::ResourceExhausted
        );
        let mut garbage = BytesMut::from(&[0u8, 0, 0, 0, 2, 0xff, 0xff][..]);
        assert_eq!(
            next_message::<DiscoveryRequest>(&mut garbage)
                .unwrap_err()
                .code(),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    fn a_frame_is_flag_length_and_message() {
        let m = DiscoveryResponse {
            version_info: "v1".into(),
            ..Default::default()
        };
        let f = frame(&m);
        assert_eq!(f[0], 0);
        let len = u32::from_be_bytes([f[1], f[2], f[3], f[4]]) as usize;
        assert_eq!(len, m.encoded_len());
        assert_eq!(f.len(), len + 5);
        assert_eq!(DiscoveryResponse::decode(&f[5..]).unwrap(), m);
    }

    #[test]
    fn large_frames_go_out_in_chunks() {
        let m = DiscoveryResponse {
            version_info: "x".repeat(3 * CHUNK + 10),
            ..Default::default()
        };
        let f = frame(&m);
        let parts: Vec<Bytes> = chunks(f.clone()).collect();
        assert_eq!(parts.len(), 4);
        assert!(parts.iter().all(|p| p.len() <= CHUNK));
        assert_eq!(parts.concat(), f.to_vec());
        assert_eq!(chunks(Bytes::new()).count(), 0);
    }

    #[test]
    fn errors_end_the_stream_in_trailers() {
        let mut h = trailers(&Status::invalid_argument("bad node"));
        assert_eq!(h.remove("grpc-status").unwrap(), "3");
        let h = trailers(&Status::ok(""));
        assert_eq!(h.get("grpc-status").unwrap(), "0");
    }
}
