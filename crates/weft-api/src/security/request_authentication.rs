//! `RequestAuthentication`: which end-user JWTs workloads accept, after
//! `security/v1beta1/request_authentication.proto`. Validation mirrors Istio's
//! `ValidateRequestAuthentication` and `validateJwtRule`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::authorization_policy::{check_attachment, check_max_items};
use crate::common::{Duration, PolicyTargetReference, WorkloadSelector};
use crate::validate::rules;
use crate::validate::{Checker, Validate};

/// The request authentication methods a workload supports. A request with an invalid token is
/// rejected; a request without one is accepted with no identity (pair with an
/// AuthorizationPolicy to require one).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RequestAuthentication {
    /// Workloads the policy applies to; all workloads of the namespace when unset.
    /// At most one of `selector`, `targetRef` and `targetRefs` may be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// Single target reference (hidden in Istio's docs; superseded by `targetRefs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    /// Resources (Gateway, GatewayClass, Service, ServiceEntry) the policy attaches to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// JWTs that can be validated; each applies only when a token is at its location.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jwt_rules: Vec<JwtRule>,
}

/// How to validate one kind of JWT, and where to find it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwtRule {
    /// The issuer (`iss` claim) tokens must carry, e.g. `https://foobar.auth0.com`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issuer: String,
    /// Accepted audiences (`aud`); the service name is accepted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// URL of the provider's public key set; discovered through OpenID when unset.
    /// At most one of `jwksUri` and `jwks`. Istio's CRD also accepts `jwks_uri`.
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "jwks_uri")]
    pub jwks_uri: Option<String>,
    /// Inline JSON Web Key Set. At most one of `jwksUri` and `jwks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    /// Headers the token is read from; by default `Authorization: Bearer` and then the
    /// `access_token` query parameter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_headers: Vec<JwtHeader>,
    /// Query parameters the token is read from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_params: Vec<String>,
    /// Header to receive the verified payload, `base64(payload JSON)`; not emitted when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_payload_to_header: Option<String>,
    /// Cookies the token is read from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_cookies: Vec<String>,
    /// Keep the original token in the upstream request. Proto3 `bool`: absent means false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forward_original_token: bool,
    /// Claims to copy into request headers on a verified token (experimental).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    /// How long to wait for the JWKS to be fetched; 5s when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Claims to split on whitespace for matching, besides the built-in `scope` and `permission`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub space_delimited_claims: Vec<String>,
    /// Whether a token must be present. In Istio's CRD (api 5803fb6) but newer than the proto
    /// weft follows; accepted so such YAML loads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<JwtPresence>,
}

/// Where a JWT is read from in a header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwtHeader {
    /// The header name.
    pub name: String,
    /// Prefix stripped before decoding, e.g. `"Bearer "` (with the space). A header without
    /// the prefix is invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// Copies one claim of a verified token into a request header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClaimToHeader {
    /// Header to set (overwritten if present); `^[-_A-Za-z0-9]+$`.
    pub header: String,
    /// Claim to copy (string, int or bool; nested with `.`).
    pub claim: String,
}

/// Whether a JWT must be present in the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JwtPresence {
    /// A request without a token is accepted, without an identity.
    Optional,
    /// A request without a token is rejected.
    Required,
}

impl Validate for RequestAuthentication {
    fn validate(&self, cx: &mut Checker) {
        check_attachment(
            cx,
            self.selector.as_ref(),
            self.target_ref.as_ref(),
            &self.target_refs,
        );
        check_max_items(cx, "jwtRules", self.jwt_rules.len(), 4096);
        cx.each("jwtRules", &self.jwt_rules, |cx, rule| rule.validate(cx));
    }
}

impl JwtRule {
    fn validate(&self, cx: &mut Checker) {
        if self.issuer.is_empty() {
            if self.jwks_uri.as_deref().unwrap_or("").is_empty() {
                cx.error_at(
                    "issuer",
                    "issuer is required: set it to the iss claim of accepted tokens, e.g. \"https://accounts.example.com\"",
                );
            } else {
                cx.warning_at(
                    "issuer",
                    "issuer is empty, so tokens from any issuer signed by a key at jwksUri are accepted; set issuer",
                );
            }
        }
        cx.each("audiences", &self.audiences, |cx, a| {
            non_empty(cx, "audience", a);
        });
        if self.jwks_uri.is_some() && self.jwks.is_some() {
            cx.error_at(
                "jwks",
                "only one of jwks and jwksUri may be set; keep jwksUri to fetch keys, or jwks to inline them",
            );
        }
        if let Some(uri) = &self.jwks_uri {
            cx.field("jwksUri", |cx| check_jwks_uri(cx, uri));
        }
        if let Some(jwks) = &self.jwks {
            cx.field("jwks", |cx| check_jwks(cx, jwks));
        }
        cx.each("fromHeaders", &self.from_headers, |cx, h| {
            if !non_empty(cx, "header name", &h.name) {
                return;
            }
            cx.field("name", |cx| rules::check_header_name(cx, &h.name, false));
            if h.name.eq_ignore_ascii_case("authorization")
                && h.prefix.as_deref().unwrap_or("").is_empty()
            {
                cx.warning_at(
                    "prefix",
                    "tokens in the Authorization header are usually sent as \"Bearer <token>\"; set prefix: \"Bearer \" (with the space)",
                );
            }
        });
        cx.each("fromParams", &self.from_params, |cx, p| {
            non_empty(cx, "query parameter name", p);
        });
        cx.each("fromCookies", &self.from_cookies, |cx, c| {
            non_empty(cx, "cookie name", c);
        });
        if let Some(h) = &self.output_payload_to_header {
            cx.field("outputPayloadToHeader", |cx| check_output_header(cx, h));
        }
        let mut headers = BTreeSet::new();
        cx.each("outputClaimToHeaders", &self.output_claim_to_headers, |cx, c| {
            if cx.field("header", |cx| check_output_header(cx, &c.header))
                && !headers.insert(c.header.to_ascii_lowercase())
            {
                cx.error_at(
                    "header",
                    format!(
                        "header {:?} is already set by another outputClaimToHeaders entry; each header must be unique",
                        c.header
                    ),
                );
            }
            if c.claim.is_empty() {
                cx.error_at("claim", "claim must not be empty; name the claim to copy");
            }
        });
        if let Some(t) = self.timeout {
            cx.field("timeout", |cx| rules::check_duration(cx, t));
        }
        check_max_items(
            cx,
            "spaceDelimitedClaims",
            self.space_delimited_claims.len(),
            64,
        );
        cx.each(
            "spaceDelimitedClaims",
            &self.space_delimited_claims,
            |cx, c| {
                non_empty(cx, "claim name", c);
            },
        );
    }
}

fn non_empty(cx: &mut Checker, what: &str, v: &str) -> bool {
    if v.is_empty() {
        cx.error(format!("{what} must not be empty"));
        false
    } else {
        true
    }
}

/// A header Envoy may set: a strict header name, not a pseudo-header and not `host`.
fn check_output_header(cx: &mut Checker, h: &str) -> bool {
    if h.is_empty() {
        cx.error("header name must not be empty");
        return false;
    }
    if h.starts_with(':') || h.eq_ignore_ascii_case("host") {
        cx.error(format!(
            "{h:?} is a pseudo-header or reserved header that cannot be overwritten; choose a custom header such as x-jwt-payload"
        ));
        return false;
    }
    rules::check_header_name(cx, h, false)
}

/// Istio's `ParseJwksURI` plus the CRD's rules: an absolute `http` or `https` URL with a host,
/// at most 2048 characters. Plain `http` is allowed but warned about.
fn check_jwks_uri(cx: &mut Checker, uri: &str) -> bool {
    if uri.is_empty() || uri.len() > 2048 {
        cx.error("jwksUri must be 1 to 2048 characters long");
        return false;
    }
    let Some((scheme, rest)) = uri.split_once("://") else {
        cx.error(format!(
            "jwksUri {uri:?} is not an absolute URL; expected e.g. \"https://example.com/.well-known/jwks.json\""
        ));
        return false;
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        cx.error(format!(
            "jwksUri scheme {scheme:?} is not supported; use https:// (or http://)"
        ));
        return false;
    }
    if uri.contains(|c: char| c.is_whitespace() || c.is_control()) {
        cx.error(format!("jwksUri {uri:?} must not contain whitespace"));
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = split_host_port(host_port);
    if host.is_empty() {
        cx.error(format!("jwksUri {uri:?} has no host"));
        return false;
    }
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        cx.error(format!("jwksUri {uri:?} has an invalid port {port:?}"));
        return false;
    }
    if scheme == "http" {
        cx.warning(
            "jwksUri uses plain http, so the signing keys can be tampered with in transit; use https",
        );
    }
    true
}

/// Splits `host[:port]`, keeping bracketed IPv6 literals whole.
fn split_host_port(hp: &str) -> (&str, Option<&str>) {
    if let Some(rest) = hp.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':')),
            None => ("", None),
        };
    }
    match hp.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (hp, None),
    }
}

/// An inline JWKS: a JSON object that is a key set (`keys` array) or a single key (`kty`),
/// as Istio's `jwk.Parse` accepts. Warns about private key material.
fn check_jwks(cx: &mut Checker, jwks: &str) -> bool {
    let value: serde_json::Value = match serde_json::from_str(jwks) {
        Ok(v) => v,
        Err(e) => {
            cx.error(format!("jwks is not valid JSON: {e}"));
            return false;
        }
    };
    let keys: Vec<&serde_json::Value> = match value.get("keys") {
        Some(serde_json::Value::Array(keys)) => keys.iter().collect(),
        _ if value.get("kty").is_some() => vec![&value],
        _ => {
            cx.error(
                "jwks must be a JSON Web Key Set ({\"keys\": [...]}) or a single JSON Web Key",
            );
            return false;
        }
    };
    for (i, key) in keys.iter().enumerate() {
        let private =
            key.get("d").is_some() || key.get("kty").and_then(|k| k.as_str()) == Some("oct");
        if private {
            cx.warning(format!(
                "key {i} in jwks contains private or symmetric key material; only public keys are needed to verify tokens"
            ));
        }
    }
    true
}

#[cfg(test)]
mod tests;
