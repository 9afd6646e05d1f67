//! Listeners, filter chains and the network filters weft implements.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{CidrRange, DownstreamTls};

/// A listener (`envoy.config.listener.v3.Listener`).
#[derive(Debug, Clone)]
pub struct Listener {
    /// Unique name.
    pub name: String,
    /// Address to bind.
    pub address: SocketAddr,
    /// Filter chains, matched per connection by [`FilterChainMatch`].
    pub filter_chains: Vec<Arc<FilterChain>>,
    /// Used when no filter chain matches; without one such connections are closed.
    pub default_filter_chain: Option<Arc<FilterChain>>,
    /// Listener filters, in order.
    pub listener_filters: Vec<ListenerFilter>,
    /// How long listener filters may wait for data (default 15s; zero disables the timeout,
    /// as in Envoy).
    pub listener_filters_timeout: Duration,
    /// On that timeout, continue with what is known instead of closing (default false).
    pub continue_on_listener_filters_timeout: bool,
    /// Hand connections redirected by iptables to the listener for their original
    /// destination, when one exists (`use_original_dst`).
    pub use_original_dst: bool,
    /// Whether to bind at all (`bind_to_port`, default true).
    pub bind_to_port: bool,
    /// Soft limit on buffered bytes per connection (default 1 MiB).
    pub per_connection_buffer_limit_bytes: u32,
    /// Stats prefix (`listener.<prefix>.`); defaults to the address.
    pub stat_prefix: String,
    /// Accept backlog. Unset, Envoy leaves it to the kernel (`net.core.somaxconn` on Linux);
    /// the default here is `i32::MAX`, which `listen(2)` lowers to somaxconn, the same.
    pub tcp_backlog_size: u32,
    /// Identity of everything in this listener except the contents of its RDS route tables,
    /// when the source knows it (the xDS client sets a hash of the Listener resource). Two
    /// listeners with the same revision differ at most in their routes, so the proxy swaps
    /// the route tables under running connections instead of replacing the listener, as
    /// Envoy applies RDS updates. `None` (files): every new listener replaces the old one.
    pub revision: Option<String>,
}

/// Listener filters weft implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerFilter {
    /// `envoy.filters.listener.tls_inspector`: reads SNI and ALPN from a TLS ClientHello.
    TlsInspector,
    /// `envoy.filters.listener.http_inspector`: detects HTTP/1.x and HTTP/2 prior knowledge.
    HttpInspector,
    /// `envoy.filters.listener.original_dst`: restores the pre-redirect destination
    /// (`SO_ORIGINAL_DST`).
    OriginalDst,
}

/// A filter chain: which connections it takes, their TLS, and the terminal network filter.
#[derive(Debug, Clone)]
pub struct FilterChain {
    /// Name (for stats and logs).
    pub name: String,
    /// Which connections this chain takes.
    pub matcher: FilterChainMatch,
    /// TLS termination (`transport_socket` `envoy.transport_sockets.tls`).
    pub tls: Option<Arc<DownstreamTls>>,
    /// The terminal network filter.
    pub filter: NetworkFilter,
}

/// `FilterChainMatch`: every set criterion must match; unset ones match anything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilterChainMatch {
    /// Destination port (after original-dst restoration).
    pub destination_port: Option<u16>,
    /// Destination IP ranges.
    pub prefix_ranges: Vec<CidrRange>,
    /// SNI names (`example.com`, `*.example.com`).
    pub server_names: Vec<String>,
    /// `raw_buffer` or `tls` (set by tls_inspector).
    pub transport_protocol: Option<String>,
    /// ALPN protocols (`h2`, `http/1.1`, Istio's `istio-peer-exchange`...).
    pub application_protocols: Vec<String>,
    /// Directly connected peer IP ranges.
    pub direct_source_prefix_ranges: Vec<CidrRange>,
    /// Local (same host) or external peers.
    pub source_type: SourceType,
    /// Source IP ranges.
    pub source_prefix_ranges: Vec<CidrRange>,
    /// Source ports.
    pub source_ports: Vec<u16>,
}

/// `FilterChainMatch.ConnectionSourceType`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SourceType {
    /// Any source.
    #[default]
    Any,
    /// The peer is on this host (loopback or a local address).
    SameIpOrLoopback,
    /// The peer is elsewhere.
    External,
}

/// The terminal network filter of a chain.
#[derive(Debug, Clone)]
pub enum NetworkFilter {
    /// `envoy.filters.network.http_connection_manager`.
    Http(Arc<HttpConnectionManager>),
    /// `envoy.filters.network.tcp_proxy`.
    Tcp(Arc<TcpProxy>),
}

/// `envoy.filters.network.tcp_proxy`.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpProxy {
    /// Stats prefix (`tcp.<prefix>.`).
    pub stat_prefix: String,
    /// Where connections go.
    pub cluster: TcpCluster,
    /// Close after this long without bytes in either direction (default 1h; `None` disables).
    pub idle_timeout: Option<Duration>,
    /// Connection attempts to upstream hosts before giving up (default 1).
    pub max_connect_attempts: u32,
}

/// `tcp_proxy`'s `cluster` or `weighted_clusters`.
#[derive(Debug, Clone, PartialEq)]
pub enum TcpCluster {
    /// One cluster.
    Single(String),
    /// Weighted clusters: (name, weight).
    Weighted(Vec<(String, u32)>),
}

/// The HTTP connection manager's codec choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CodecType {
    /// Detect HTTP/1.1 or HTTP/2 (prior knowledge or ALPN `h2`).
    #[default]
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only.
    Http2,
}

/// What to do with `%2F`, `%5C` in paths (`path_with_escaped_slashes_action`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EscapedSlashesAction {
    /// Leave them (Envoy's default, `IMPLEMENTATION_SPECIFIC_DEFAULT` = keep).
    #[default]
    KeepUnchanged,
    /// Reject with 400.
    RejectRequest,
    /// Redirect to the unescaped path.
    UnescapeAndRedirect,
    /// Unescape and forward.
    UnescapeAndForward,
}

/// What to do with header names containing `_` (`headers_with_underscores_action`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnderscoreHeaderAction {
    /// Allow (default).
    #[default]
    Allow,
    /// Reject the request with 400.
    RejectRequest,
    /// Drop the header.
    DropHeader,
}

/// The compiled route table of a connection manager, with weft's per-filter configs.
pub type RouteTable = weft_proxy_route::RouteTable<PerFilterConfig>;

/// `typed_per_filter_config` values weft understands, by filter.
#[derive(Debug, Clone, PartialEq)]
pub enum PerFilterConfig {
    /// `envoy.filters.http.fault` override.
    Fault(Box<FaultFilter>),
    /// `envoy.filters.http.cors` policy (`CorsPolicy`).
    Cors(Box<CorsPolicy>),
    /// `envoy.filters.http.local_ratelimit` override.
    LocalRateLimit(Box<LocalRateLimit>),
    /// `envoy.config.route.v3.FilterConfig` with `disabled: true`: the filter is off here.
    Disabled,
}

/// `envoy.extensions.filters.http.cors.v3.CorsPolicy`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CorsPolicy {
    /// Allowed origins.
    pub allow_origin: Vec<weft_proxy_route::StringMatcher>,
    /// `access-control-allow-methods` value.
    pub allow_methods: String,
    /// `access-control-allow-headers` value.
    pub allow_headers: String,
    /// `access-control-expose-headers` value.
    pub expose_headers: String,
    /// `access-control-max-age` value.
    pub max_age: String,
    /// `access-control-allow-credentials: true`.
    pub allow_credentials: bool,
    /// Share of requests the policy is enforced on (default all).
    pub filter_enabled: Option<Fraction>,
    /// Evaluate but do not enforce for this share.
    pub shadow_enabled: Option<Fraction>,
    /// `access-control-allow-private-network`.
    pub allow_private_network_access: bool,
    /// Forward preflights that do not match instead of answering them.
    pub forward_not_matching_preflights: bool,
}

/// `envoy.filters.network.http_connection_manager`.
#[derive(Debug, Clone)]
pub struct HttpConnectionManager {
    /// Stats prefix (`http.<prefix>.`).
    pub stat_prefix: String,
    /// The routes (inline `route_config`).
    pub route_config: std::sync::Arc<RouteTable>,
    /// Codec.
    pub codec: CodecType,
    /// HTTP filters, in order; the last is the router.
    pub http_filters: Vec<HttpFilter>,
    /// RFC 3986 path normalization (`normalize_path`).
    pub normalize_path: bool,
    /// Collapse `//` in paths (`merge_slashes`).
    pub merge_slashes: bool,
    /// `%2F`/`%5C` handling.
    pub escaped_slashes: EscapedSlashesAction,
    /// Largest total request header size in KiB (default 60).
    pub max_request_headers_kb: u32,
    /// Most request headers (default 100).
    pub max_headers_count: u32,
    /// Underscores in header names.
    pub headers_with_underscores: UnderscoreHeaderAction,
    /// Close an idle downstream connection after this long (default 1h).
    pub idle_timeout: Option<Duration>,
    /// Reset a stream without activity for this long (default 5 min).
    pub stream_idle_timeout: Option<Duration>,
    /// Whole-request (headers and body received) timeout; `None` disables (default).
    pub request_timeout: Option<Duration>,
    /// Time to receive all request headers; `None` disables (default).
    pub request_headers_timeout: Option<Duration>,
    /// Longest a stream may live; `None` disables.
    pub max_stream_duration: Option<Duration>,
    /// Grace period between announcing a drain and closing (default 5s).
    pub drain_timeout: Duration,
    /// Generate `x-request-id` when missing (default true).
    pub generate_request_id: bool,
    /// Keep an incoming `x-request-id` from an external client.
    pub preserve_external_request_id: bool,
    /// Echo `x-request-id` in responses.
    pub always_set_request_id_in_response: bool,
    /// Trust the connection's peer address as the client address (and append it to XFF).
    pub use_remote_address: bool,
    /// Trusted hops in `x-forwarded-for`.
    pub xff_num_trusted_hops: u32,
    /// Do not append to `x-forwarded-for`.
    pub skip_xff_append: bool,
    /// Value of `via` to add, if any.
    pub via: String,
    /// `server` response header value (default "envoy", which clients may rely on).
    pub server_name: String,
    /// How to treat the upstream's `server` header.
    pub server_header_transformation: ServerHeaderTransformation,
    /// Strip the port from Host when it matches the listener port.
    pub strip_matching_host_port: bool,
    /// Strip any port from Host before routing.
    pub strip_any_host_port: bool,
    /// Protocol upgrades allowed (`websocket`, `CONNECT`...).
    pub upgrades: Vec<String>,
    /// HTTP/2 settings toward downstream.
    pub http2: Http2Settings,
}

/// `server_header_transformation`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ServerHeaderTransformation {
    /// Replace with `server_name` (default).
    #[default]
    Overwrite,
    /// Keep the upstream's, else add `server_name`.
    AppendIfAbsent,
    /// Keep the upstream's as is.
    PassThrough,
}

/// HTTP/2 protocol options weft applies (`Http2ProtocolOptions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Settings {
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` (Envoy's default 2147483647; weft caps it at 1024 to
    /// bound memory, see docs/proxy.md).
    pub max_concurrent_streams: u32,
    /// Initial stream flow-control window (default 256 MiB in Envoy; weft 1 MiB).
    pub initial_stream_window_size: u32,
    /// Initial connection flow-control window.
    pub initial_connection_window_size: u32,
}

impl Default for Http2Settings {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 1024,
            initial_stream_window_size: 1 << 20,
            initial_connection_window_size: 1 << 22,
        }
    }
}

/// HTTP filters weft implements.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpFilter {
    /// `envoy.filters.http.router`.
    Router(RouterFilter),
    /// `envoy.filters.http.fault`.
    Fault(Box<FaultFilter>),
    /// `envoy.filters.http.cors` (policies come from route and virtual-host config).
    Cors,
    /// `envoy.filters.http.local_ratelimit`.
    LocalRateLimit(Box<LocalRateLimit>),
}

/// `envoy.extensions.filters.http.router.v3.Router`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouterFilter {
    /// Do not add `x-envoy-*` headers to upstream requests (`suppress_envoy_headers`).
    pub suppress_envoy_headers: bool,
    /// Honour `x-envoy-*` request headers only from internal requests.
    pub respect_expected_rq_timeout: bool,
}

/// `envoy.extensions.filters.http.fault.v3.HTTPFault` (also valid per route).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultFilter {
    /// Delay injection.
    pub delay: Option<FaultDelay>,
    /// Abort injection.
    pub abort: Option<FaultAbort>,
    /// Only requests to this upstream cluster.
    pub upstream_cluster: Option<String>,
    /// Only requests carrying all of these headers (name, value match).
    pub headers: Vec<(String, FaultHeaderMatch)>,
    /// Most concurrent active faults (`max_active_faults`).
    pub max_active_faults: Option<u32>,
}

/// How a fault's header condition matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultHeaderMatch {
    /// The header is present.
    Present,
    /// Exact value.
    Exact(String),
    /// Prefix.
    Prefix(String),
}

/// A fraction: `numerator / denominator` (`FractionalPercent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fraction {
    /// Numerator.
    pub numerator: u32,
    /// 100, 10 000 or 1 000 000.
    pub denominator: u32,
}

impl Fraction {
    /// Always.
    pub const ALWAYS: Fraction = Fraction {
        numerator: 100,
        denominator: 100,
    };

    /// Whether a uniformly random `random` falls inside the fraction (Envoy's
    /// `random % denominator < numerator`).
    pub fn sample(self, random: u64) -> bool {
        self.denominator != 0 && random % u64::from(self.denominator) < u64::from(self.numerator)
    }
}

/// Delay part of a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultDelay {
    /// Fixed delay, or `None` for a header-controlled one (`x-envoy-fault-delay-request`).
    pub fixed: Option<Duration>,
    /// Share of requests.
    pub percentage: Fraction,
}

/// Abort part of a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultAbort {
    /// What to return.
    pub kind: FaultAbortKind,
    /// Share of requests.
    pub percentage: Fraction,
}

/// The abort's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAbortKind {
    /// This HTTP status.
    Http(u16),
    /// This gRPC status (HTTP 200 with `grpc-status`).
    Grpc(u32),
    /// From the `x-envoy-fault-abort-request` header.
    Header,
}

/// `envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit`.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalRateLimit {
    /// Stats prefix.
    pub stat_prefix: String,
    /// The bucket; `None` means the filter only applies where a route configures one.
    pub token_bucket: Option<TokenBucket>,
    /// Share of requests the filter checks (default: none, as in Envoy).
    pub filter_enabled: Fraction,
    /// Share of checked requests it enforces on (default: none).
    pub filter_enforced: Fraction,
    /// Status for limited requests (default 429).
    pub status: u16,
    /// Headers added to limited responses.
    pub response_headers_to_add: Vec<(String, String)>,
}

/// A token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    /// Capacity.
    pub max_tokens: u32,
    /// Tokens added each interval (default 1).
    pub tokens_per_fill: u32,
    /// Fill interval.
    pub fill_interval: Duration,
}
