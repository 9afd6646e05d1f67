//! Envoy's HTTP route matching as a pure library: no IO, no clocks, no randomness inside (callers
//! pass random numbers in). weft's proxy must route exactly as Envoy 1.40 does for the same
//! configuration; this crate is that logic, over weft's own typed structs ([`config`]) instead of
//! protobufs.
//!
//! # Use
//!
//! ```
//! use http::{HeaderMap, Method};
//! use weft_proxy_route::*;
//!
//! let config: RouteConfiguration = RouteConfiguration {
//!     virtual_hosts: vec![VirtualHost {
//!         name: "api".into(),
//!         domains: vec!["api.example.com".into(), "*.api.example.com".into()],
//!         routes: vec![Route::new(
//!             RouteMatch::prefix("/v1/"),
//!             Action::Route(RouteAction::cluster("api-v1")),
//!         )],
//!         ..VirtualHost::default()
//!     }],
//!     ..RouteConfiguration::default()
//! };
//! let table = RouteTable::new(config)?; // validates and compiles once
//! let headers = HeaderMap::new();
//! let req = RequestView {
//!     method: &Method::GET,
//!     scheme: "https",
//!     authority: "API.example.com",
//!     path_and_query: "/v1/users?page=2",
//!     protocol: None,
//!     headers: &headers,
//! };
//! let random = 42; // the stream's random value, drawn by the proxy
//! let matched = table.route(&req, random).expect("routed");
//! assert_eq!(matched.route().name(), "");
//! # Ok::<(), RouteConfigError>(())
//! ```
//!
//! [`RouteTable::new`] rejects what Envoy would NACK (duplicate domains, two `*` virtual hosts,
//! bad regexes, both `append` and `append_action`, `:`-prefixed or `host` header mutations,
//! weighted clusters summing to 0 or above `u32::MAX`, direct response bodies over
//! `max_direct_response_body_size_bytes`...) with a [`RouteConfigError`] naming the field.
//!
//! # Semantics
//!
//! * **Virtual hosts** ([`RouteTable::select_virtual_host`]): exact domain, then suffix
//!   wildcards longest first, then prefix wildcards longest first, then `*`; ASCII
//!   case-insensitive; a wildcard matches at least one character. The port is part of the host
//!   unless `ignore_port_in_host_matching` (see that method for IPv6 and Envoy's exact port
//!   rule). HCM-level `strip_matching_host_port`/`strip_any_host_port` rewrite `:authority`
//!   before routing and are the caller's job.
//! * **TLS requirement** ([`RouteTable::route_request`]): a virtual host's `require_tls` is
//!   checked before its routes, on the request's `x-forwarded-proto`; a request that fails it
//!   gets Envoy's TLS redirect (`301`, `location: https://<host><path>`, port kept).
//! * **Routes**: first match in configuration order. Every path specifier ignores the query and
//!   fragment (from the first `?` or `#`); `safe_regex` must match the whole path;
//!   `case_sensitive` applies to `prefix`, `path` and `path_separated_prefix` only. A request
//!   without `:path` (plain CONNECT) can only match `connect_matcher`.
//! * **Headers**: all matchers must match. A missing header fails every matcher except
//!   `present_match: false`, even inverted, unless `treat_missing_header_as_empty`. A header
//!   sent several times is matched value by value, any value matching, as Envoy does since 1.39
//!   (`match_headers_individually`); [`MultiValueHeaders::Joined`] restores the comma-joined
//!   behaviour. Pseudo-headers `:method`, `:path` (with query), `:authority`, `:scheme`,
//!   `:protocol` come from [`RequestView`].
//! * **Query parameters**: raw, *not* percent-decoded, first occurrence only; `present_match:
//!   false` matches absence (Envoy's current default).
//! * **gRPC**: `content-type` is `application/grpc` or starts with `application/grpc+`.
//! * **Runtime fraction**: `random % denominator < numerator`, with the caller's random value;
//!   no runtime overrides (weft has no runtime layer).
//! * **Weighted clusters**: the total is the sum of the weights; `random % total` picks the
//!   interval (see [`WeightedTargets::pick`]). Envoy uses the same stream random value as for
//!   `runtime_fraction`.
//! * **Rewrites**: [`Matched::rewritten_path`] (prefix rewrite replaces the matched prefix,
//!   textually; regex rewrite substitutes globally on the path, query kept),
//!   [`Matched::rewritten_host`], [`Matched::redirect_url`] (Envoy's `newUri`).
//! * **Header mutations**: per level, removals then additions with Envoy's append actions;
//!   levels ordered weighted cluster, route, virtual host, configuration (or configuration,
//!   virtual host, route with `most_specific_header_mutations_wins`); later levels win.
//!   Command operators are listed in [`CommandOperator::SUPPORTED`] and rendered by the
//!   caller's [`HeaderFormatter`]; unknown ones are configuration errors.
//! * **Retries**: [`should_retry`]/[`retry_decision`] implement Envoy's
//!   `wouldRetryFromHeaders`/`wouldRetryFromReset`; [`backoff`] its fully jittered exponential
//!   back-off.
//!
//! `P` in [`RouteTable<P>`] is the per-filter configuration slot: the proxy picks the type
//! (typically an enum of its filters' decoded per-route configs) and reads it through
//! [`Matched::per_filter_configs`].
//!
//! # Where this differs from Envoy, and why
//!
//! * Regexes use the `regex` crate, not RE2. The syntax is nearly the same; `\d \w \s \b` are
//!   rewritten to RE2's ASCII meaning. RE2-only syntax such as `\C` or `\Q..\E` is rejected
//!   at construction. Envoy bounds RE2 programs by `max_program_size` (instruction count);
//!   here the compiled size is bounded to 1 MiB instead.
//! * A `%` that does not start a known `%OPERATOR%` is an error (write `%%`).
//! * Not modelled: virtual clusters, rate limits, CORS, hedging,
//!   internal redirects, `cluster_specifier_plugin`, `path_match_policy`/`path_rewrite_policy`
//!   (URI templates), the formatter-based `host_rewrite`/`path_rewrite`, dynamic metadata and
//!   filter state matchers, `tls_context` match, `ignore_path_parameters_in_path_matching`,
//!   per-filter configuration on weighted clusters, runtime keys.
//! * Retry decisions read `grpc-status` from response headers only, as Envoy does (the
//!   decision is made before the body is forwarded; trailers-only responses carry it in the
//!   headers).
#![forbid(unsafe_code)]

pub mod action;
pub mod config;
mod error;
pub mod headers;
mod matchers;
pub mod retry;
pub mod rewrite;
mod table;

pub use action::{
    ClusterTarget, DirectResponse, HostRewriteTarget, Redirect, RedirectPathTarget,
    RouteEntryAction, RouteTarget, WeightedTarget, WeightedTargets,
};
pub use config::*;
pub use error::RouteConfigError;
pub use headers::{
    CommandOperator, HeaderFormatter, HeaderMutations, HeaderRef, apply_header_mutations,
};
pub use matchers::first_query_value;
pub use retry::{
    AttemptOutcome, Http3Used, ResetReason, RetryDecision, RetryOn, RetryPolicy, backoff,
    retry_decision, should_retry,
};
pub use rewrite::{
    CompiledRegexRewrite, RedirectParts, RedirectRequest, path_without_query, prefix_rewrite,
    redirect_url,
};
pub use table::{Matched, RequestView, RouteEntry, RouteTable, Routing, VhostId, VirtualHostEntry};
