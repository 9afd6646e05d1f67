//! Header names the proxy sets on requests and responses, as constants.
//!
//! Inserting with a `&str` key makes `http` copy the name into a new allocation whenever it is
//! not one of its standard headers (every `x-*` header is not); a constant built with
//! `HeaderName::from_static` points at the static string, so the hot path inserts these names
//! without allocating. Lookups (`get`, `remove`, `contains_key`) never allocate and may keep
//! using strings.

use http::HeaderName;

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const X_ENVOY_EXTERNAL_ADDRESS: HeaderName =
    HeaderName::from_static("x-envoy-external-address");
pub const X_ENVOY_ORIGINAL_PATH: HeaderName = HeaderName::from_static("x-envoy-original-path");
pub const X_ENVOY_EXPECTED_RQ_TIMEOUT_MS: HeaderName =
    HeaderName::from_static("x-envoy-expected-rq-timeout-ms");
pub const X_ENVOY_ATTEMPT_COUNT: HeaderName = HeaderName::from_static("x-envoy-attempt-count");
pub const X_ENVOY_UPSTREAM_SERVICE_TIME: HeaderName =
    HeaderName::from_static("x-envoy-upstream-service-time");
pub const X_ENVOY_OVERLOADED: HeaderName = HeaderName::from_static("x-envoy-overloaded");
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

#[cfg(test)]
mod tests {
    use super::*;

    /// Each constant is the lowercase name it stands for (a typo here would send a different
    /// header than Envoy does).
    #[test]
    fn constants_are_their_names() {
        for (c, s) in [
            (X_FORWARDED_FOR, "x-forwarded-for"),
            (X_FORWARDED_PROTO, "x-forwarded-proto"),
            (X_FORWARDED_HOST, "x-forwarded-host"),
            (X_REQUEST_ID, "x-request-id"),
            (X_ENVOY_EXTERNAL_ADDRESS, "x-envoy-external-address"),
            (X_ENVOY_ORIGINAL_PATH, "x-envoy-original-path"),
            (
                X_ENVOY_EXPECTED_RQ_TIMEOUT_MS,
                "x-envoy-expected-rq-timeout-ms",
            ),
            (X_ENVOY_ATTEMPT_COUNT, "x-envoy-attempt-count"),
            (
                X_ENVOY_UPSTREAM_SERVICE_TIME,
                "x-envoy-upstream-service-time",
            ),
            (X_ENVOY_OVERLOADED, "x-envoy-overloaded"),
            (GRPC_MESSAGE, "grpc-message"),
        ] {
            assert_eq!(c, HeaderName::from_bytes(s.as_bytes()).unwrap());
        }
    }
}
