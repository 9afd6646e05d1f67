//! The stream's max duration once the route is known (Envoy's `refreshDurationTimeout`).
//!
//! A route's `max_stream_duration` settings replace the connection manager's
//! `common_http_protocol_options.max_stream_duration`: its `max_stream_duration` overrides it
//! (zero disables the limit for the route), and with `grpc_timeout_header_max` a request's
//! `grpc-timeout` header sets it (capped by that maximum unless it is zero, then less
//! `grpc_timeout_header_offset`). The limit counts from the start of the stream;
//! [`super::idle::Activity`] enforces it. A gRPC request on such a route is sent upstream with
//! `grpc-timeout` set to the limit (removed when the route lifts the connection manager's).
//! Envoy keeps all these durations in whole milliseconds.

use std::time::Duration;

use http::HeaderMap;
use http::header::HeaderValue;
use weft_proxy_route::MaxStreamDuration;

use super::idle::Activity;
use super::local_reply::is_grpc_request;

/// The largest number a `grpc-timeout` value has: eight digits.
const MAX_GRPC_TIMEOUT_VALUE: u64 = 99_999_999;

/// The `grpc-timeout` header.
const GRPC_TIMEOUT: &str = "grpc-timeout";

/// Envoy's `Grpc::Common::getGrpcTimeout`: a `grpc-timeout` value (`TimeoutValue TimeoutUnit`,
/// a number up to 99999999 and one of `H M S m u n`) in milliseconds, microseconds and
/// nanoseconds rounded up. `None` when it is malformed.
pub fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, number) = value.split_last()?;
    let n = simple_atoi(number)?;
    if n > MAX_GRPC_TIMEOUT_VALUE {
        return None;
    }
    let ms = match unit {
        b'H' => n * 3_600_000,
        b'M' => n * 60_000,
        b'S' => n * 1_000,
        b'm' => n,
        b'u' => n.div_ceil(1_000),
        b'n' => n.div_ceil(1_000_000),
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

/// The number as Envoy reads it (`absl::SimpleAtoi`: surrounding whitespace and a sign
/// allowed), when it is not negative.
fn simple_atoi(s: &[u8]) -> Option<u64> {
    let s = s.trim_ascii();
    let (negative, digits) = match s.split_first() {
        Some((b'+', rest)) => (false, rest),
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u64 = 0;
    for d in digits {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    (!negative || n == 0).then_some(n)
}

/// Envoy's `Grpc::Common::toGrpcTimeout`: milliseconds, or the largest unit that needs no more
/// than eight digits (seconds, minutes, hours, rounded down), at most 99999999 hours.
pub fn format_grpc_timeout(timeout: Duration) -> String {
    let mut time = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    let mut unit = 'm';
    if time > MAX_GRPC_TIMEOUT_VALUE {
        time /= 1_000;
        unit = 'S';
    }
    while time > MAX_GRPC_TIMEOUT_VALUE {
        unit = match unit {
            'S' => 'M',
            'M' => 'H',
            _ => {
                time = MAX_GRPC_TIMEOUT_VALUE;
                break;
            }
        };
        time /= 60;
    }
    format!("{time}{unit}")
}

/// A duration in whole milliseconds, as Envoy keeps it.
fn whole_millis(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The connection manager's max stream duration (`None` or zero: none).
pub fn connection_manager_limit(hcm: Option<Duration>) -> Option<Duration> {
    hcm.map(whole_millis).filter(|d| !d.is_zero())
}

/// The stream's max duration on a route with `max_stream_duration` settings, given the
/// connection manager's and the request's `grpc-timeout` (parsed); `None`: no limit. A zero
/// limit (a zero `grpc-timeout`, or one the offset uses up) ends the stream at once.
pub fn route_limit(
    route: &MaxStreamDuration,
    hcm: Option<Duration>,
    grpc_timeout: Option<Duration>,
) -> Option<Duration> {
    match (
        grpc_timeout,
        route.grpc_timeout_header_max.map(whole_millis),
    ) {
        (Some(header), Some(max)) => {
            let capped = if !max.is_zero() && header > max {
                max
            } else {
                header
            };
            let offset = route
                .grpc_timeout_header_offset
                .map(whole_millis)
                .unwrap_or_default();
            Some(capped.saturating_sub(offset))
        }
        _ => match route.max_stream_duration.map(whole_millis) {
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
            None => connection_manager_limit(hcm),
        },
    }
}

/// Applies a routed request's `max_stream_duration` settings (`route`; `None` keeps the
/// connection manager's limit, `hcm`) to its stream and, for gRPC, to its `grpc-timeout`.
pub fn on_route(
    activity: &Activity,
    hcm: Option<Duration>,
    route: Option<&MaxStreamDuration>,
    headers: &mut HeaderMap,
) {
    let Some(route) = route else {
        return;
    };
    let grpc_timeout = headers
        .get(GRPC_TIMEOUT)
        .and_then(|v| parse_grpc_timeout(v.as_bytes()));
    let grpc = is_grpc_request(headers);
    let limit = route_limit(route, hcm, grpc_timeout);
    match limit {
        Some(t) if grpc => {
            if let Ok(v) = HeaderValue::from_str(&format_grpc_timeout(t)) {
                headers.insert(GRPC_TIMEOUT, v);
            }
        }
        // Envoy removes it only when it stops a running timer: the connection manager's.
        None if grpc && connection_manager_limit(hcm).is_some() => {
            headers.remove(GRPC_TIMEOUT);
        }
        _ => {}
    }
    activity.set_max_duration(limit);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn grpc_timeouts_are_read_in_every_unit() {
        let p = |v: &str| parse_grpc_timeout(v.as_bytes());
        assert_eq!(p("2H"), Some(ms(7_200_000)));
        assert_eq!(p("3M"), Some(ms(180_000)));
        assert_eq!(p("10S"), Some(ms(10_000)));
        assert_eq!(p("250m"), Some(ms(250)));
        // Below a millisecond rounds up.
        assert_eq!(p("1500u"), Some(ms(2)));
        assert_eq!(p("1000u"), Some(ms(1)));
        assert_eq!(p("1n"), Some(ms(1)));
        assert_eq!(p("0n"), Some(ms(0)));
        assert_eq!(p("99999999S"), Some(ms(99_999_999_000)));
        // Leading zeros and a sign are what Envoy's integer parser accepts.
        assert_eq!(p("000000000005m"), Some(ms(5)));
        assert_eq!(p("+5m"), Some(ms(5)));
        assert_eq!(p("-0m"), Some(ms(0)));
    }

    #[test]
    fn malformed_grpc_timeouts_are_ignored() {
        let p = |v: &str| parse_grpc_timeout(v.as_bytes());
        for bad in [
            "",
            "m",
            "5",
            "5s",
            "5ms",
            "100000000m",
            "-5m",
            "1.5S",
            "S5",
            "5x",
            "99999999999999999999999m",
        ] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
        // Whitespace inside the value, before the unit, is trimmed like Envoy's parser does.
        assert_eq!(p("5 S"), Some(ms(5_000)));
    }

    #[test]
    fn grpc_timeouts_are_written_in_the_smallest_unit_that_fits() {
        assert_eq!(format_grpc_timeout(ms(0)), "0m");
        assert_eq!(format_grpc_timeout(ms(300)), "300m");
        assert_eq!(format_grpc_timeout(ms(99_999_999)), "99999999m");
        assert_eq!(format_grpc_timeout(ms(100_000_000)), "100000S");
        assert_eq!(format_grpc_timeout(ms(100_000_000_999)), "1666666M");
        assert_eq!(format_grpc_timeout(ms(6_000_000_000_000)), "1666666H");
        assert_eq!(format_grpc_timeout(Duration::MAX), "99999999H");
        // Sub-millisecond parts are dropped.
        assert_eq!(format_grpc_timeout(Duration::from_micros(1_999)), "1m");
    }

    fn settings(
        max: Option<Duration>,
        header_max: Option<Duration>,
        offset: Option<Duration>,
    ) -> MaxStreamDuration {
        MaxStreamDuration {
            max_stream_duration: max,
            grpc_timeout_header_max: header_max,
            grpc_timeout_header_offset: offset,
        }
    }

    #[test]
    fn the_route_overrides_the_connection_manager_and_zero_disables() {
        let hcm = Some(ms(60_000));
        assert_eq!(
            route_limit(&settings(Some(ms(200)), None, None), hcm, None),
            Some(ms(200))
        );
        assert_eq!(
            route_limit(&settings(Some(ms(90_000)), None, None), hcm, None),
            Some(ms(90_000)),
            "longer than the connection manager's as well"
        );
        assert_eq!(
            route_limit(&settings(Some(Duration::ZERO), None, None), hcm, None),
            None
        );
        // Settings without a duration keep the connection manager's (zero there is none).
        assert_eq!(route_limit(&settings(None, None, None), hcm, None), hcm);
        assert_eq!(
            route_limit(&settings(None, None, None), Some(Duration::ZERO), None),
            None
        );
        assert_eq!(route_limit(&settings(None, None, None), None, None), None);
        // Envoy counts whole milliseconds: less than one is zero.
        assert_eq!(
            route_limit(
                &settings(Some(Duration::from_micros(500)), None, None),
                hcm,
                None
            ),
            None
        );
    }

    #[test]
    fn grpc_timeout_applies_only_with_a_header_max() {
        let header = Some(ms(5_000));
        // Without grpc_timeout_header_max the header is not read.
        assert_eq!(
            route_limit(&settings(Some(ms(200)), None, None), None, header),
            Some(ms(200))
        );
        // With it, the header wins over the route's and the connection manager's durations.
        assert_eq!(
            route_limit(
                &settings(Some(ms(200)), Some(ms(10_000)), None),
                Some(ms(100)),
                header
            ),
            Some(ms(5_000))
        );
        // Without a (valid) header, the durations apply.
        assert_eq!(
            route_limit(&settings(Some(ms(200)), Some(ms(10_000)), None), None, None),
            Some(ms(200))
        );
        assert_eq!(
            route_limit(&settings(None, Some(ms(10_000)), None), Some(ms(300)), None),
            Some(ms(300))
        );
    }

    #[test]
    fn grpc_timeout_is_capped_then_offset() {
        let cap = |max: u64, offset: Option<u64>, header: u64| {
            route_limit(
                &settings(None, Some(ms(max)), offset.map(ms)),
                None,
                Some(ms(header)),
            )
        };
        assert_eq!(cap(300, None, 10_000), Some(ms(300)));
        assert_eq!(cap(300, None, 100), Some(ms(100)));
        // A zero maximum does not cap.
        assert_eq!(cap(0, None, 10_000), Some(ms(10_000)));
        // The offset comes off the capped value.
        assert_eq!(cap(300, Some(50), 10_000), Some(ms(250)));
        assert_eq!(cap(0, Some(50), 250), Some(ms(200)));
        // An offset as large as the timeout leaves nothing: the stream ends at once.
        assert_eq!(cap(0, Some(250), 250), Some(Duration::ZERO));
        assert_eq!(cap(0, Some(500), 250), Some(Duration::ZERO));
        // A zero grpc-timeout stays zero.
        assert_eq!(cap(300, Some(50), 0), Some(Duration::ZERO));
    }

    fn headers(list: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in list {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[tokio::test(start_paused = true)]
    async fn a_grpc_request_carries_its_limit_upstream() {
        let grpc = [
            ("content-type", "application/grpc"),
            ("grpc-timeout", "10S"),
        ];
        let a = Activity::new(true);
        let mut h = headers(&grpc);
        let route = settings(None, Some(ms(300)), None);
        on_route(&a, None, Some(&route), &mut h);
        assert_eq!(h["grpc-timeout"], "300m");
        assert_eq!(
            a.max_duration_deadline(),
            Some(tokio::time::Instant::now() + ms(300))
        );
        // A request that is not gRPC gets the limit but keeps its header.
        let a = Activity::new(true);
        let mut h = headers(&[("grpc-timeout", "10S")]);
        on_route(&a, None, Some(&route), &mut h);
        assert_eq!(h["grpc-timeout"], "10S");
        assert!(a.max_duration_deadline().is_some());
        // A gRPC request without the header gets the route's duration as its timeout.
        let a = Activity::new(true);
        let mut h = headers(&[("content-type", "application/grpc")]);
        on_route(
            &a,
            None,
            Some(&settings(Some(ms(2_000)), None, None)),
            &mut h,
        );
        assert_eq!(h["grpc-timeout"], "2000m");
    }

    #[tokio::test(start_paused = true)]
    async fn lifting_the_connection_managers_limit_drops_the_grpc_timeout() {
        let hcm = Some(ms(300));
        let off = settings(Some(Duration::ZERO), None, None);
        let a = Activity::new(true);
        a.set_max_duration(connection_manager_limit(hcm));
        let mut h = headers(&[("content-type", "application/grpc"), ("grpc-timeout", "5S")]);
        on_route(&a, hcm, Some(&off), &mut h);
        assert!(h.get("grpc-timeout").is_none());
        assert_eq!(a.max_duration_deadline(), None);
        // Without a connection manager limit there was no timer to stop: the header stays.
        let mut h = headers(&[("content-type", "application/grpc"), ("grpc-timeout", "5S")]);
        on_route(&Activity::new(true), None, Some(&off), &mut h);
        assert_eq!(h["grpc-timeout"], "5S");
    }

    #[tokio::test(start_paused = true)]
    async fn a_route_without_settings_changes_nothing() {
        let a = Activity::new(true);
        a.set_max_duration(Some(ms(300)));
        let before = a.max_duration_deadline();
        let mut h = headers(&[("content-type", "application/grpc"), ("grpc-timeout", "5S")]);
        on_route(&a, Some(ms(300)), None, &mut h);
        assert_eq!(h["grpc-timeout"], "5S");
        assert_eq!(a.max_duration_deadline(), before);
    }
}
