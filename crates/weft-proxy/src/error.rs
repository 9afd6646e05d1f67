//! One error type for the request path: where it came from, whether a retry may help, and the
//! Envoy response flag and local reply it becomes.

use std::fmt;

/// Envoy's response flags, recorded in stats and access logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseFlag {
    /// `UH`: no healthy upstream host.
    NoHealthyUpstream,
    /// `UF`: upstream connection failure.
    UpstreamConnectionFailure,
    /// `UO`: upstream overflow (circuit breaking).
    UpstreamOverflow,
    /// `NR`: no route.
    NoRouteFound,
    /// `NC`: no cluster.
    NoClusterFound,
    /// `UT`: upstream request timeout.
    UpstreamRequestTimeout,
    /// `UC`: upstream connection termination.
    UpstreamConnectionTermination,
    /// `UR`: upstream remote reset.
    UpstreamRemoteReset,
    /// `URX`: retry limit exceeded (or retries overflowed).
    UpstreamRetryLimitExceeded,
    /// `DC`: downstream connection termination.
    DownstreamConnectionTermination,
    /// `FI`: fault injected abort.
    FaultInjected,
    /// `DI`: fault injected delay.
    DelayInjected,
    /// `RL`: rate limited locally.
    RateLimited,
    /// `DPE`: downstream protocol error.
    DownstreamProtocolError,
    /// `SI`: stream idle timeout.
    StreamIdleTimeout,
}

impl ResponseFlag {
    /// The short code, as in Envoy's access logs.
    pub fn code(self) -> &'static str {
        match self {
            Self::NoHealthyUpstream => "UH",
            Self::UpstreamConnectionFailure => "UF",
            Self::UpstreamOverflow => "UO",
            Self::NoRouteFound => "NR",
            Self::NoClusterFound => "NC",
            Self::UpstreamRequestTimeout => "UT",
            Self::UpstreamConnectionTermination => "UC",
            Self::UpstreamRemoteReset => "UR",
            Self::UpstreamRetryLimitExceeded => "URX",
            Self::DownstreamConnectionTermination => "DC",
            Self::FaultInjected => "FI",
            Self::DelayInjected => "DI",
            Self::RateLimited => "RL",
            Self::DownstreamProtocolError => "DPE",
            Self::StreamIdleTimeout => "SI",
        }
    }
}

/// Why an upstream attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// The TCP (or TLS) connection could not be established.
    ConnectFailure(String),
    /// Connecting took longer than the cluster's `connect_timeout`.
    ConnectTimeout,
    /// A circuit breaker is open.
    Overflow(Overflow),
    /// No host could be picked.
    NoHealthyHost,
    /// The connection was reset or closed before response headers arrived.
    ResetBeforeHeaders {
        /// The request was never written: always safe to retry on a new connection.
        request_sent: bool,
        /// Detail for logs and the local reply.
        detail: String,
    },
    /// The per-try or route timeout fired.
    Timeout,
    /// The upstream spoke broken HTTP.
    Protocol(String),
}

/// Which circuit breaker tripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// `max_connections` with `max_pending_requests` also exhausted.
    PendingRequests,
    /// `max_requests`.
    Requests,
    /// `max_retries`.
    Retries,
    /// `max_connections` (TCP proxy).
    Connections,
}

impl UpstreamError {
    /// The response flag this failure is reported with.
    pub fn flag(&self) -> ResponseFlag {
        match self {
            Self::ConnectFailure(_) | Self::ConnectTimeout => {
                ResponseFlag::UpstreamConnectionFailure
            }
            Self::Overflow(_) => ResponseFlag::UpstreamOverflow,
            Self::NoHealthyHost => ResponseFlag::NoHealthyUpstream,
            Self::ResetBeforeHeaders { .. } | Self::Protocol(_) => {
                ResponseFlag::UpstreamConnectionTermination
            }
            Self::Timeout => ResponseFlag::UpstreamRequestTimeout,
        }
    }

    /// Whether the failure happened before the upstream saw anything (Envoy's
    /// "connect-failure"/"reset-before-request" family).
    pub fn is_connect_failure(&self) -> bool {
        matches!(self, Self::ConnectFailure(_) | Self::ConnectTimeout)
    }

    /// Envoy's local-reply body and status for this failure after `attempts` tries: once the
    /// router has retried, Envoy words resets as "retried and the latest reset reason: ...".
    pub fn local_reply_after(&self, attempts: u32) -> (u16, String) {
        const PREFIX: &str = "upstream connect error or disconnect/reset before headers. ";
        let (status, body) = self.local_reply();
        match body.strip_prefix(PREFIX) {
            Some(rest) if attempts > 1 => {
                (status, format!("{PREFIX}retried and the latest {rest}"))
            }
            _ => (status, body),
        }
    }

    /// Envoy's local-reply body and status for this failure.
    pub fn local_reply(&self) -> (u16, String) {
        match self {
            // Envoy adds a transport failure reason only for TLS failures.
            Self::ConnectFailure(detail) if detail.starts_with("TLS error") => (
                503,
                format!(
                    "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure, transport failure reason: {detail}"
                ),
            ),
            Self::ConnectFailure(_) => (
                503,
                "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure".to_owned(),
            ),
            Self::ConnectTimeout => (
                503,
                "upstream connect error or disconnect/reset before headers. reset reason: connection timeout".to_owned(),
            ),
            Self::Overflow(_) => (
                503,
                "upstream connect error or disconnect/reset before headers. reset reason: overflow".to_owned(),
            ),
            Self::NoHealthyHost => (503, "no healthy upstream".to_owned()),
            Self::ResetBeforeHeaders { .. } => (
                503,
                "upstream connect error or disconnect/reset before headers. reset reason: connection termination".to_owned(),
            ),
            Self::Timeout => (504, "upstream request timeout".to_owned()),
            Self::Protocol(detail) => (
                503,
                format!("upstream connect error or disconnect/reset before headers. reset reason: protocol error: {detail}"),
            ),
        }
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (_, body) = self.local_reply();
        f.write_str(&body)
    }
}

impl std::error::Error for UpstreamError {}
