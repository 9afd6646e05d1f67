//! `envoy.filters.http.cors`: answers CORS preflights itself and adds the allow headers to the
//! responses of cross-origin requests from allowed origins.
//!
//! Policies come from `typed_per_filter_config` (route, virtual host, route configuration); as in
//! Envoy each setting is read from the most specific policy that sets it, while `filter_enabled`
//! and `shadow_enabled` come from the most specific policy. Without a policy the filter does
//! nothing.
//!
//! - A preflight (`OPTIONS` with `origin` and `access-control-request-method`) from an allowed
//!   origin is answered `200` with `access-control-allow-origin` (the origin, echoed),
//!   `-allow-credentials`, `-allow-methods`, `-allow-headers` (`*` echoes the request's),
//!   `-max-age` and `-allow-private-network`; it never reaches the upstream.
//! - A preflight from another origin is forwarded, unless `forward_not_matching_preflights` is
//!   off: then it is answered `200` without `access-control-allow-origin`.
//! - Other requests from an allowed origin get `access-control-allow-origin`,
//!   `-allow-credentials` and `-expose-headers` on their response; from other origins nothing.
//! - In shadow mode (`shadow_enabled` sampled in, `filter_enabled` out) origins are only counted.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response};
use weft_proxy_config::model::{CorsPolicy, Fraction};
use weft_proxy_lb::RandomSource;
use weft_proxy_route::{RegexRewrite, StringMatcher, StringPattern};

use super::{local_reply, sample};
use crate::Body;
use crate::upstream::stats::inc;

crate::upstream::stats::define_stats!(CorsStats {
    counters: [origin_valid, origin_invalid],
    gauges: []
});

const ALLOW_ORIGIN: HeaderName = header::ACCESS_CONTROL_ALLOW_ORIGIN;
const ALLOW_CREDENTIALS: HeaderName = header::ACCESS_CONTROL_ALLOW_CREDENTIALS;
const ALLOW_METHODS: HeaderName = header::ACCESS_CONTROL_ALLOW_METHODS;
const ALLOW_HEADERS: HeaderName = header::ACCESS_CONTROL_ALLOW_HEADERS;
const EXPOSE_HEADERS: HeaderName = header::ACCESS_CONTROL_EXPOSE_HEADERS;
const MAX_AGE: HeaderName = header::ACCESS_CONTROL_MAX_AGE;
const REQUEST_METHOD: HeaderName = header::ACCESS_CONTROL_REQUEST_METHOD;
const REQUEST_HEADERS: HeaderName = header::ACCESS_CONTROL_REQUEST_HEADERS;
const REQUEST_PRIVATE_NETWORK: &str = "access-control-request-private-network";
const ALLOW_PRIVATE_NETWORK: &str = "access-control-allow-private-network";

/// What the filter decided.
#[derive(Debug)]
pub enum Verdict {
    /// Let the request pass; add these headers to its response, if any.
    Continue(Option<CorsResponse>),
    /// Answer the preflight with this.
    Respond(Response<Body>),
}

/// Headers for the response of an accepted cross-origin request.
#[derive(Debug, Clone)]
pub struct CorsResponse {
    origin: HeaderValue,
    allow_credentials: bool,
    expose_headers: Option<HeaderValue>,
}

impl CorsResponse {
    /// Adds `access-control-allow-origin`, `-allow-credentials` and `-expose-headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(ALLOW_ORIGIN, self.origin.clone());
        if self.allow_credentials {
            headers.insert(ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        if let Some(v) = &self.expose_headers {
            headers.insert(EXPOSE_HEADERS, v.clone());
        }
    }
}

/// Runs the filter over a request. `policies` are most specific first; `origins` is the
/// compiled `allow_origin` of the first policy that has one.
pub fn decode(
    policies: &[&CorsPolicy],
    origins: Option<&OriginMatcher>,
    parts: &http::request::Parts,
    stats: &CorsStats,
    rng: &mut impl RandomSource,
) -> Verdict {
    let Some(first) = policies.first() else {
        return Verdict::Continue(None);
    };
    let enabled = sample(first.filter_enabled.unwrap_or(Fraction::ALWAYS), rng);
    let shadow = first.shadow_enabled.is_some_and(|f| sample(f, rng));
    if !enabled && !shadow {
        return Verdict::Continue(None);
    }
    let headers = &parts.headers;
    let Some(origin) = headers.get(header::ORIGIN).filter(|o| !o.is_empty()) else {
        return Verdict::Continue(None);
    };
    let allowed = origins.is_some_and(|m| m.allows(origin.as_bytes()));
    inc(if allowed {
        &stats.origin_valid
    } else {
        &stats.origin_invalid
    });
    if !enabled {
        return Verdict::Continue(None); // shadow mode: counted only
    }
    let setting = |get: fn(&CorsPolicy) -> &str| {
        policies
            .iter()
            .map(|p| get(p))
            .find(|s| !s.is_empty())
            .unwrap_or("")
    };
    let allow_credentials = policies.iter().any(|p| p.allow_credentials);
    let preflight = parts.method == Method::OPTIONS
        && headers.get(&REQUEST_METHOD).is_some_and(|v| !v.is_empty());
    if !preflight {
        return Verdict::Continue(allowed.then(|| CorsResponse {
            origin: origin.clone(),
            allow_credentials,
            expose_headers: header_value(setting(|p| &p.expose_headers)),
        }));
    }
    if !allowed && first.forward_not_matching_preflights {
        return Verdict::Continue(None);
    }
    let mut resp = local_reply::reply(200, "");
    let h = resp.headers_mut();
    if allowed {
        h.insert(ALLOW_ORIGIN, origin.clone());
    }
    if allow_credentials {
        h.insert(ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    }
    let echo_or = |configured: &str, request: &HeaderName| {
        if configured == "*" {
            headers.get(request).cloned()
        } else {
            header_value(configured)
        }
    };
    if let Some(v) = echo_or(setting(|p| &p.allow_methods), &REQUEST_METHOD) {
        h.insert(ALLOW_METHODS, v);
    }
    if let Some(v) = echo_or(setting(|p| &p.allow_headers), &REQUEST_HEADERS) {
        h.insert(ALLOW_HEADERS, v);
    }
    // Envoy 1.40 sends the exposed headers on preflight answers too (measured by the parity
    // tests).
    if let Some(v) = header_value(setting(|p| &p.expose_headers)) {
        h.insert(EXPOSE_HEADERS, v);
    }
    if let Some(v) = header_value(setting(|p| &p.max_age)) {
        h.insert(MAX_AGE, v);
    }
    if policies.iter().any(|p| p.allow_private_network_access)
        && headers
            .get(REQUEST_PRIVATE_NETWORK)
            .is_some_and(|v| v == "true")
    {
        h.insert(ALLOW_PRIVATE_NETWORK, HeaderValue::from_static("true"));
    }
    Verdict::Respond(resp)
}

fn header_value(s: &str) -> Option<HeaderValue> {
    (!s.is_empty())
        .then(|| HeaderValue::from_str(s).ok())
        .flatten()
}

/// A compiled `allow_origin` list. An origin is allowed when a matcher matches it, or matches
/// `*` (Envoy's wildcard).
#[derive(Debug)]
pub struct OriginMatcher {
    matchers: Vec<Compiled>,
}

#[derive(Debug)]
enum Compiled {
    Exact(String, bool),
    Prefix(String, bool),
    Suffix(String, bool),
    Contains(String, bool),
    /// A whole-string regex. weft-proxy-route keeps its compiled string matcher private, so the
    /// regex is compiled through its public rewrite type: `\A(?:p)\z` replaced by a sentinel
    /// that no header value can contain (NUL) means a full match.
    Regex(Option<weft_proxy_route::CompiledRegexRewrite>),
}

const FULL_MATCH_SENTINEL: &str = "\0";

impl OriginMatcher {
    /// Compiles `allow_origin`. A regex that does not compile matches nothing (configuration
    /// conversion rejects those before they get here).
    pub fn new(matchers: &[StringMatcher]) -> Self {
        let matchers = matchers
            .iter()
            .map(|m| {
                let ic = m.ignore_case;
                let fold = |s: &str| {
                    if ic {
                        s.to_ascii_lowercase()
                    } else {
                        s.to_owned()
                    }
                };
                match &m.pattern {
                    StringPattern::Exact(s) => Compiled::Exact(fold(s), ic),
                    StringPattern::Prefix(s) => Compiled::Prefix(fold(s), ic),
                    StringPattern::Suffix(s) => Compiled::Suffix(fold(s), ic),
                    StringPattern::Contains(s) => Compiled::Contains(fold(s), ic),
                    StringPattern::SafeRegex(p) => {
                        let rewrite = RegexRewrite {
                            pattern: format!(r"\A(?:{p})\z"),
                            substitution: FULL_MATCH_SENTINEL.to_owned(),
                        };
                        let compiled = weft_proxy_route::CompiledRegexRewrite::compile(
                            &rewrite,
                            "allow_origin_string_match.safe_regex",
                        );
                        if let Err(e) = &compiled {
                            tracing::warn!(error = %e, "CORS allow_origin regex ignored");
                        }
                        Compiled::Regex(compiled.ok())
                    }
                }
            })
            .collect();
        Self { matchers }
    }

    /// Whether `origin` is allowed.
    pub fn allows(&self, origin: &[u8]) -> bool {
        let Ok(origin) = std::str::from_utf8(origin) else {
            return false;
        };
        self.matchers
            .iter()
            .any(|m| m.matches("*") || m.matches(origin))
    }
}

impl Compiled {
    fn matches(&self, value: &str) -> bool {
        let folded = |ic: bool| {
            if ic {
                std::borrow::Cow::Owned(value.to_ascii_lowercase())
            } else {
                std::borrow::Cow::Borrowed(value)
            }
        };
        match self {
            Self::Exact(s, ic) => folded(*ic) == s.as_str(),
            Self::Prefix(s, ic) => folded(*ic).starts_with(s.as_str()),
            Self::Suffix(s, ic) => folded(*ic).ends_with(s.as_str()),
            Self::Contains(s, ic) => folded(*ic).contains(s.as_str()),
            Self::Regex(Some(r)) => r.replace_all(value) == FULL_MATCH_SENTINEL,
            Self::Regex(None) => false,
        }
    }
}
