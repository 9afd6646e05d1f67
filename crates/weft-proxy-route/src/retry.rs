//! Retry policies and the pure decisions the proxy's router makes with them: whether an attempt's
//! outcome is retried (Envoy's `RetryStateImpl::wouldRetryFromHeaders`/`wouldRetryFromReset`) and
//! how long to back off (Envoy's `JitteredExponentialBackOffStrategy`).
//!
//! Counting retries, circuit breakers and timers stay in the proxy.

use std::fmt;
use std::time::Duration;

use http::{HeaderMap, StatusCode};

use crate::config::{MultiValueHeaders, RetryPolicyConfig};
use crate::error::RouteConfigError;
use crate::matchers::{CompiledHeaderMatcher, HeaderSource, compile_header_matchers};

/// Envoy's default base back-off interval (`upstream.base_retry_backoff_ms`).
pub const DEFAULT_BASE_INTERVAL: Duration = Duration::from_millis(25);

/// A set of `retry_on` conditions.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct RetryOn(u32);

impl RetryOn {
    /// `5xx`: any 5xx response, and any reset or connect failure (Envoy counts those as 5xx).
    pub const FIVE_XX: Self = Self(1);
    /// `gateway-error`: 502, 503, 504, and resets/connect failures like `5xx`.
    pub const GATEWAY_ERROR: Self = Self(1 << 1);
    /// `reset`: the upstream reset or timed out.
    pub const RESET: Self = Self(1 << 2);
    /// `reset-before-request`: reset before any request byte went upstream.
    pub const RESET_BEFORE_REQUEST: Self = Self(1 << 3);
    /// `connect-failure`: the connection could not be established.
    pub const CONNECT_FAILURE: Self = Self(1 << 4);
    /// `envoy-ratelimited`: the response carries `x-envoy-ratelimited`.
    pub const ENVOY_RATELIMITED: Self = Self(1 << 5);
    /// `retriable-4xx`: 409 only.
    pub const RETRIABLE_4XX: Self = Self(1 << 6);
    /// `refused-stream`: the upstream refused the stream (HTTP/2 `REFUSED_STREAM`).
    pub const REFUSED_STREAM: Self = Self(1 << 7);
    /// `retriable-status-codes`: a status listed in `retriable_status_codes`.
    pub const RETRIABLE_STATUS_CODES: Self = Self(1 << 8);
    /// `retriable-headers`: a response header matches `retriable_headers`.
    pub const RETRIABLE_HEADERS: Self = Self(1 << 9);
    /// `http3-post-connect-failure`: an HTTP/3 request failed after connecting.
    pub const HTTP3_POST_CONNECT_FAILURE: Self = Self(1 << 10);
    /// gRPC `cancelled` (status 1).
    pub const GRPC_CANCELLED: Self = Self(1 << 11);
    /// gRPC `deadline-exceeded` (status 4).
    pub const GRPC_DEADLINE_EXCEEDED: Self = Self(1 << 12);
    /// gRPC `resource-exhausted` (status 8).
    pub const GRPC_RESOURCE_EXHAUSTED: Self = Self(1 << 13);
    /// gRPC `internal` (status 13).
    pub const GRPC_INTERNAL: Self = Self(1 << 14);
    /// gRPC `unavailable` (status 14).
    pub const GRPC_UNAVAILABLE: Self = Self(1 << 15);

    const NAMES: [(&'static str, Self); 16] = [
        ("5xx", Self::FIVE_XX),
        ("gateway-error", Self::GATEWAY_ERROR),
        ("reset", Self::RESET),
        ("reset-before-request", Self::RESET_BEFORE_REQUEST),
        ("connect-failure", Self::CONNECT_FAILURE),
        ("envoy-ratelimited", Self::ENVOY_RATELIMITED),
        ("retriable-4xx", Self::RETRIABLE_4XX),
        ("refused-stream", Self::REFUSED_STREAM),
        ("retriable-status-codes", Self::RETRIABLE_STATUS_CODES),
        ("retriable-headers", Self::RETRIABLE_HEADERS),
        (
            "http3-post-connect-failure",
            Self::HTTP3_POST_CONNECT_FAILURE,
        ),
        ("cancelled", Self::GRPC_CANCELLED),
        ("deadline-exceeded", Self::GRPC_DEADLINE_EXCEEDED),
        ("resource-exhausted", Self::GRPC_RESOURCE_EXHAUSTED),
        ("internal", Self::GRPC_INTERNAL),
        ("unavailable", Self::GRPC_UNAVAILABLE),
    ];

    /// Every condition name, as written in `retry_on`.
    pub const KNOWN_NAMES: [&'static str; 16] = {
        let mut names = [""; 16];
        let mut i = 0;
        while i < 16 {
            names[i] = Self::NAMES[i].0;
            i += 1;
        }
        names
    };

    const GRPC: Self = Self(
        Self::GRPC_CANCELLED.0
            | Self::GRPC_DEADLINE_EXCEEDED.0
            | Self::GRPC_RESOURCE_EXHAUSTED.0
            | Self::GRPC_INTERNAL.0
            | Self::GRPC_UNAVAILABLE.0,
    );

    /// The empty set.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Parses Envoy's comma-separated list (entries trimmed, empty entries skipped). Returns the
    /// first unknown entry as the error.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut set = Self::empty();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (_, flag) = Self::NAMES
                .iter()
                .find(|(name, _)| *name == entry)
                .ok_or_else(|| entry.to_owned())?;
            set = set | *flag;
        }
        Ok(set)
    }

    /// Parses the list as Envoy does at run time: unknown entries are ignored (Envoy accepts
    /// them in configuration and never retries on them). Returns the set and the ignored names.
    pub fn parse_lenient(list: &str) -> (Self, Vec<String>) {
        let mut set = Self::empty();
        let mut unknown = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match Self::NAMES.iter().find(|(name, _)| *name == entry) {
                Some((_, flag)) => set = set | *flag,
                None => unknown.push(entry.to_owned()),
            }
        }
        (set, unknown)
    }

    /// True when every condition of `other` is in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when `self` and `other` share a condition.
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// True when no condition is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for RetryOn {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl fmt::Debug for RetryOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Self::NAMES
            .iter()
            .filter(|(_, flag)| self.contains(*flag))
            .map(|(name, _)| *name)
            .collect();
        write!(f, "RetryOn({})", names.join(","))
    }
}

/// A validated retry policy.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Conditions that trigger a retry.
    pub retry_on: RetryOn,
    /// Retries allowed (Envoy's default is 1).
    pub num_retries: u32,
    /// Timeout of each attempt.
    pub per_try_timeout: Option<Duration>,
    /// Idle timeout of each attempt.
    pub per_try_idle_timeout: Option<Duration>,
    /// Back-off base interval (at least 1 ms).
    pub base_interval: Duration,
    /// Back-off cap (at least the base).
    pub max_interval: Duration,
    /// Status codes for `retriable-status-codes`.
    pub retriable_status_codes: Vec<u16>,
    /// The `previous_hosts` retry host predicate is configured.
    pub retry_host_predicate_previous_hosts: bool,
    /// The `previous_priorities` retry priority is configured, with this (positive)
    /// `update_frequency`.
    pub previous_priorities_update_frequency: Option<u32>,
    /// Host selection attempts per retry.
    pub host_selection_retry_max_attempts: i64,
    retriable_headers: Vec<CompiledHeaderMatcher>,
    retriable_request_headers: Vec<CompiledHeaderMatcher>,
}

impl RetryPolicy {
    /// Validates a policy; `field` prefixes error paths.
    pub fn compile(
        config: &RetryPolicyConfig,
        mode: MultiValueHeaders,
        field: &str,
    ) -> Result<Self, RouteConfigError> {
        // Envoy accepts unknown `retry_on` names and ignores them; so does weft.
        let (retry_on, _ignored) = RetryOn::parse_lenient(&config.retry_on);
        let one_ms = Duration::from_millis(1);
        let (base_interval, max_interval) = match config.retry_back_off {
            None => (DEFAULT_BASE_INTERVAL, DEFAULT_BASE_INTERVAL * 10),
            Some(b) => {
                if b.base_interval.is_zero() {
                    return Err(RouteConfigError::invalid(
                        format!("{field}.retry_back_off.base_interval"),
                        "must be greater than zero",
                    ));
                }
                let base = b.base_interval.max(one_ms);
                let max = match b.max_interval {
                    None => base * 10,
                    Some(max) => {
                        let max = max.max(one_ms);
                        if max < base {
                            return Err(RouteConfigError::invalid(
                                format!("{field}.retry_back_off.max_interval"),
                                "must be greater than or equal to the base_interval",
                            ));
                        }
                        max
                    }
                };
                (base, max)
            }
        };
        let retriable_status_codes = config
            .retriable_status_codes
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                u16::try_from(c)
                    .ok()
                    .filter(|c| (100..=999).contains(c))
                    .ok_or_else(|| {
                        RouteConfigError::invalid(
                            format!("{field}.retriable_status_codes[{i}]"),
                            format!("{c} is not an HTTP status code"),
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        if config.previous_priorities_update_frequency == Some(0) {
            return Err(RouteConfigError::invalid(
                format!("{field}.retry_priority.update_frequency"),
                "must be greater than 0",
            ));
        }
        Ok(Self {
            retry_on,
            num_retries: config.num_retries.unwrap_or(1),
            per_try_timeout: config.per_try_timeout,
            per_try_idle_timeout: config.per_try_idle_timeout,
            base_interval,
            max_interval,
            retriable_status_codes,
            retry_host_predicate_previous_hosts: config.retry_host_predicate_previous_hosts,
            previous_priorities_update_frequency: config.previous_priorities_update_frequency,
            host_selection_retry_max_attempts: config
                .host_selection_retry_max_attempts
                .filter(|n| *n != 0)
                .unwrap_or(1),
            retriable_headers: compile_header_matchers(
                &config.retriable_headers,
                mode,
                &format!("{field}.retriable_headers"),
            )?,
            retriable_request_headers: compile_header_matchers(
                &config.retriable_request_headers,
                mode,
                &format!("{field}.retriable_request_headers"),
            )?,
        })
    }

    /// Whether a request may be retried at all: with `retriable_request_headers` configured, one
    /// of them must match the request (Envoy then creates no retry state otherwise).
    pub fn request_is_retriable(&self, request_headers: &HeaderMap) -> bool {
        let src = HeaderSource::plain(request_headers);
        self.retriable_request_headers.is_empty()
            || self
                .retriable_request_headers
                .iter()
                .any(|m| m.matches(&src))
    }
}

/// What happened to one upstream attempt.
#[derive(Debug, Clone, Copy)]
pub enum AttemptOutcome<'a> {
    /// Response headers arrived. gRPC status is read from these headers only, as Envoy does:
    /// the retry decision is taken before the body is forwarded, so a `grpc-status` in trailers
    /// is never consulted (trailers-only gRPC responses carry it in the headers).
    Response {
        /// `:status`.
        status: StatusCode,
        /// Response headers.
        headers: &'a HeaderMap,
        /// The downstream request arrived as TLS early data (`early-data` request header); a
        /// 425 is then never retried.
        request_was_early_data: bool,
    },
    /// The attempt failed without response headers. Map a per-try timeout to
    /// `ResetReason::LocalReset` with `upstream_request_started: true`, as Envoy's router does.
    Reset {
        /// Why.
        reason: ResetReason,
        /// Whether the attempt used HTTP/3.
        http3_used: Http3Used,
        /// The cluster is configured for HTTP/3 with TCP fallback (auto config).
        cluster_http3_with_tcp_fallback: bool,
        /// Some of the request was sent upstream.
        upstream_request_started: bool,
    },
}

/// Envoy's `Http::StreamResetReason`, as far as retries care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetReason {
    /// Connecting failed locally (e.g. refused).
    LocalConnectionFailure,
    /// The remote end failed the connection attempt.
    RemoteConnectionFailure,
    /// Connecting timed out.
    ConnectionTimeout,
    /// The connection closed under the stream.
    ConnectionTermination,
    /// Reset by this proxy (including per-try timeout).
    LocalReset,
    /// Reset by the upstream.
    RemoteReset,
    /// The upstream refused the stream.
    RemoteRefusedStreamReset,
    /// A circuit breaker overflowed; never retried.
    Overflow,
    /// Protocol error.
    ProtocolError,
}

/// Whether the attempt went over HTTP/3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Http3Used {
    /// Not known (no connection yet).
    #[default]
    Unknown,
    /// No.
    No,
    /// Yes.
    Yes,
}

/// Envoy's `RetryState::RetryDecision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Do not retry.
    No,
    /// Retry after [`backoff`].
    WithBackoff,
    /// Retry at once; the flags say what to disable on the next attempt.
    Immediately {
        /// Retry without TLS early data (after a 425).
        disable_early_data: bool,
        /// Retry over TCP (after an HTTP/3 failure).
        disable_http3: bool,
    },
}

/// Whether Envoy would retry this outcome under `policy` (ignoring the retry budget and the
/// remaining retry count, which the proxy tracks).
pub fn should_retry(policy: &RetryPolicy, outcome: &AttemptOutcome<'_>) -> bool {
    retry_decision(policy, outcome) != RetryDecision::No
}

/// Envoy's retry decision for one attempt outcome.
pub fn retry_decision(policy: &RetryPolicy, outcome: &AttemptOutcome<'_>) -> RetryDecision {
    match *outcome {
        AttemptOutcome::Response {
            status,
            headers,
            request_was_early_data,
        } => decide_from_headers(policy, status, headers, request_was_early_data),
        AttemptOutcome::Reset {
            reason,
            http3_used,
            cluster_http3_with_tcp_fallback,
            upstream_request_started,
        } => decide_from_reset(
            policy.retry_on,
            reason,
            http3_used,
            cluster_http3_with_tcp_fallback,
            upstream_request_started,
        ),
    }
}

fn decide_from_headers(
    policy: &RetryPolicy,
    status: StatusCode,
    headers: &HeaderMap,
    request_was_early_data: bool,
) -> RetryDecision {
    let on = policy.retry_on;
    // A response from an upstream Envoy's rate limiter is retried only under envoy-ratelimited,
    // whatever its status.
    if headers.contains_key("x-envoy-ratelimited") {
        return if on.contains(RetryOn::ENVOY_RATELIMITED) {
            RetryDecision::WithBackoff
        } else {
            RetryDecision::No
        };
    }
    let code = status.as_u16();
    if on.contains(RetryOn::FIVE_XX) && status.is_server_error() {
        return RetryDecision::WithBackoff;
    }
    if on.contains(RetryOn::GATEWAY_ERROR) && matches!(code, 502..=504) {
        return RetryDecision::WithBackoff;
    }
    if on.contains(RetryOn::RETRIABLE_4XX) && code == 409 {
        return RetryDecision::WithBackoff;
    }
    if on.contains(RetryOn::RETRIABLE_STATUS_CODES) {
        for &c in &policy.retriable_status_codes {
            if c != code {
                continue;
            }
            if c != 425 {
                return RetryDecision::WithBackoff;
            }
            if !request_was_early_data {
                return RetryDecision::Immediately {
                    disable_early_data: true,
                    disable_http3: false,
                };
            }
        }
    }
    if on.contains(RetryOn::RETRIABLE_HEADERS) {
        let src = HeaderSource {
            status: Some(status.as_str()),
            ..HeaderSource::plain(headers)
        };
        if policy.retriable_headers.iter().any(|m| m.matches(&src)) {
            return RetryDecision::WithBackoff;
        }
    }
    if on.intersects(RetryOn::GRPC) {
        let wanted = match grpc_status(headers) {
            Some(1) => RetryOn::GRPC_CANCELLED,
            Some(4) => RetryOn::GRPC_DEADLINE_EXCEEDED,
            Some(8) => RetryOn::GRPC_RESOURCE_EXHAUSTED,
            Some(13) => RetryOn::GRPC_INTERNAL,
            Some(14) => RetryOn::GRPC_UNAVAILABLE,
            _ => RetryOn::empty(),
        };
        if !wanted.is_empty() && on.contains(wanted) {
            return RetryDecision::WithBackoff;
        }
    }
    RetryDecision::No
}

/// `grpc-status` as a number (Envoy's `Grpc::Common::getGrpcStatus`).
fn grpc_status(headers: &HeaderMap) -> Option<u64> {
    let v = headers.get("grpc-status")?.to_str().ok()?;
    v.trim_ascii().parse().ok()
}

fn decide_from_reset(
    on: RetryOn,
    reason: ResetReason,
    http3_used: Http3Used,
    http3_with_tcp_fallback: bool,
    upstream_request_started: bool,
) -> RetryDecision {
    if reason == ResetReason::Overflow {
        return RetryDecision::No;
    }
    let connect_failure = matches!(
        reason,
        ResetReason::LocalConnectionFailure
            | ResetReason::RemoteConnectionFailure
            | ResetReason::ConnectionTimeout
    );
    if connect_failure {
        if http3_used != Http3Used::Unknown && http3_with_tcp_fallback {
            // A failed 0-RTT handshake: retry at once.
            return RetryDecision::Immediately {
                disable_early_data: false,
                disable_http3: false,
            };
        }
        if on.contains(RetryOn::CONNECT_FAILURE) {
            return RetryDecision::WithBackoff;
        }
    } else if http3_used == Http3Used::Yes
        && http3_with_tcp_fallback
        && on.contains(RetryOn::HTTP3_POST_CONNECT_FAILURE)
    {
        return RetryDecision::Immediately {
            disable_early_data: false,
            disable_http3: true,
        };
    }
    if on.contains(RetryOn::RESET_BEFORE_REQUEST) && !upstream_request_started {
        return RetryDecision::WithBackoff;
    }
    if on.intersects(RetryOn::RESET | RetryOn::FIVE_XX | RetryOn::GATEWAY_ERROR) {
        return RetryDecision::WithBackoff;
    }
    if on.contains(RetryOn::REFUSED_STREAM) && reason == ResetReason::RemoteRefusedStreamReset {
        return RetryDecision::WithBackoff;
    }
    RetryDecision::No
}

/// The back-off before retry number `attempt` (1 for the first retry), given a random number.
///
/// Envoy's fully jittered exponential back-off: the interval starts at the base and doubles
/// after every retry while it is below half the maximum, then becomes the maximum; the back-off
/// is `random % interval` milliseconds. With the defaults (25 ms, 250 ms) retries wait in
/// `[0,25)`, `[0,50)`, `[0,100)`, `[0,200)`, then `[0,250)` ms.
pub fn backoff(policy: &RetryPolicy, attempt: u32, random: u64) -> Duration {
    let base = millis(policy.base_interval).max(1);
    let max = millis(policy.max_interval).max(base);
    let doubling_limit = max / 2;
    let mut interval = base;
    for _ in 1..attempt.max(1) {
        if interval == max {
            break;
        }
        interval = if interval < doubling_limit {
            interval * 2
        } else {
            max
        };
    }
    Duration::from_millis(random % interval)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
