//! Path and host rewriting, and redirect URL construction, as Envoy's router does them.

use regex::bytes::Regex;

use crate::config::RegexRewrite;
use crate::error::RouteConfigError;
use crate::matchers::compile_search;

/// The path without its query string and fragment (Envoy's `PathUtil::removeQueryAndFragment`:
/// everything from the first `?` or `#`).
pub fn path_without_query(path: &str) -> &str {
    path.find(['?', '#']).map_or(path, |i| &path[..i])
}

/// A compiled `RegexMatchAndSubstitute`.
#[derive(Debug, Clone)]
pub struct CompiledRegexRewrite {
    regex: Regex,
    substitution: Vec<Piece>,
}

#[derive(Debug, Clone)]
enum Piece {
    Literal(String),
    Group(usize),
}

impl CompiledRegexRewrite {
    /// Compiles the pattern and parses the RE2 substitution (`\0`..`\9`, `\\`); a reference to a
    /// group the pattern does not have, or any other escape, is rejected as RE2 would.
    pub fn compile(rewrite: &RegexRewrite, field: &str) -> Result<Self, RouteConfigError> {
        let regex = compile_search(&rewrite.pattern, &format!("{field}.pattern"))?;
        let groups = regex.captures_len() - 1;
        let sub_field = format!("{field}.substitution");
        let mut substitution = Vec::new();
        let mut literal = String::new();
        let mut chars = rewrite.substitution.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                literal.push(c);
                continue;
            }
            match chars.next() {
                Some('\\') => literal.push('\\'),
                Some(d @ '0'..='9') => {
                    let n = usize::from(d as u8 - b'0');
                    if n > groups {
                        return Err(RouteConfigError::invalid(
                            sub_field,
                            format!(
                                "\\{n} refers to a capture group the pattern does not have ({groups} groups)"
                            ),
                        ));
                    }
                    if !literal.is_empty() {
                        substitution.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    substitution.push(Piece::Group(n));
                }
                _ => {
                    return Err(RouteConfigError::invalid(
                        sub_field,
                        "invalid escape; a substitution may only use \\0-\\9 and \\\\",
                    ));
                }
            }
        }
        if !literal.is_empty() {
            substitution.push(Piece::Literal(literal));
        }
        Ok(Self {
            regex,
            substitution,
        })
    }

    /// Replaces every match in `input` (RE2 `GlobalReplace`).
    pub fn replace_all(&self, input: &str) -> String {
        let mut out = Vec::with_capacity(input.len());
        let mut last = 0;
        for caps in self.regex.captures_iter(input.as_bytes()) {
            let Some(m) = caps.get(0) else { continue };
            out.extend_from_slice(&input.as_bytes()[last..m.start()]);
            for piece in &self.substitution {
                match piece {
                    Piece::Literal(l) => out.extend_from_slice(l.as_bytes()),
                    Piece::Group(n) => {
                        if let Some(g) = caps.get(*n) {
                            out.extend_from_slice(g.as_bytes());
                        }
                    }
                }
            }
            last = m.end();
        }
        out.extend_from_slice(&input.as_bytes()[last..]);
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// Rewrites the path part of `path_and_query` and keeps the query and fragment. `None` when
    /// the result would be empty (Envoy then leaves the path alone).
    pub fn rewrite_path(&self, path_and_query: &str) -> Option<String> {
        let path = path_without_query(path_and_query);
        let new_path = self.replace_all(path);
        if new_path.is_empty() {
            return None;
        }
        Some(new_path + &path_and_query[path.len()..])
    }
}

/// Envoy's prefix rewrite: `matched` (the route's prefix, `path` or, for regex and CONNECT
/// routes, the whole path without query) is replaced by `replacement`; the rest of the path,
/// query included, is kept. It is textual: rewriting prefix `/prefix` to `/` turns
/// `/prefix/etc` into `//etc`, which is why Envoy's docs advise pairing `/prefix/` → `/` with an
/// exact `/prefix` route. `None` if `path_and_query` does not start with `matched` (compared
/// ASCII case-insensitively, as routes may be case-insensitive).
pub fn prefix_rewrite(path_and_query: &str, matched: &str, replacement: &str) -> Option<String> {
    if !crate::matchers::starts_with_ignore_case(path_and_query.as_bytes(), matched.as_bytes()) {
        return None;
    }
    let rest = path_and_query.get(matched.len()..)?;
    let mut out = String::with_capacity(replacement.len() + rest.len());
    out.push_str(replacement);
    out.push_str(rest);
    Some(out)
}

/// The request facts a redirect needs.
#[derive(Debug, Clone, Copy)]
pub struct RedirectRequest<'a> {
    /// The request's scheme as Envoy sees it (`x-forwarded-proto`, which the connection manager
    /// sets from the connection).
    pub scheme: &'a str,
    /// `:authority`.
    pub authority: &'a str,
    /// `:path` after any prefix/regex redirect rewrite (see [`crate::Matched::redirect_url`]).
    pub path_and_query: &'a str,
}

/// The parts of a redirect that replace the request's.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedirectParts<'a> {
    /// New scheme.
    pub scheme: Option<&'a str>,
    /// New host.
    pub host: Option<&'a str>,
    /// New port.
    pub port: Option<u16>,
    /// New path (`path_redirect`).
    pub path: Option<&'a str>,
    /// Drop the query (ignored when `path` has its own).
    pub strip_query: bool,
}

/// Envoy's `Http::Utility::newUri`: the `Location` of a redirect.
///
/// * scheme: the new one, else the request's;
/// * host: the new one, else the request's, minus its port when a new port is set or when the
///   scheme changes from `http` with `:80` or from `https` with `:443`;
/// * port: `:port` when set;
/// * path: `path_redirect` (keeping the request's query unless it has its own), else the
///   request path; a missing leading `/` is added; `strip_query` drops the query unless
///   `path_redirect` carries one.
pub fn redirect_url(req: &RedirectRequest<'_>, parts: &RedirectParts<'_>) -> String {
    let scheme = parts.scheme.unwrap_or(req.scheme);
    let host = match parts.host {
        Some(h) => h,
        None => request_host_for_redirect(req.authority, req.scheme, scheme, parts.port.is_some()),
    };
    let path_has_query = parts.path.is_some_and(|p| p.contains('?'));
    let mut path = match parts.path {
        Some(p) if path_has_query => p.to_owned(),
        Some(p) => match req.path_and_query.find('?') {
            Some(q) => format!("{p}{}", &req.path_and_query[q..]),
            None => p.to_owned(),
        },
        None => req.path_and_query.to_owned(),
    };
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    if !path_has_query
        && parts.strip_query
        && let Some(q) = path.find('?')
    {
        path.truncate(q);
    }
    match parts.port {
        Some(port) => format!("{scheme}://{host}:{port}{path}"),
        None => format!("{scheme}://{host}{path}"),
    }
}

/// Envoy's `processRequestHost`.
fn request_host_for_redirect<'a>(
    authority: &'a str,
    request_scheme: &str,
    new_scheme: &str,
    new_port: bool,
) -> &'a str {
    let port_start = if authority.starts_with('[') {
        authority.rfind("]:").map(|i| i + 1)
    } else {
        authority.rfind(':')
    };
    let Some(port_start) = port_start else {
        return authority;
    };
    let port = &authority[port_start..];
    let mut remove = new_port;
    if new_scheme != request_scheme {
        remove |= request_scheme.eq_ignore_ascii_case("https") && port == ":443";
        remove |= request_scheme.eq_ignore_ascii_case("http") && port == ":80";
    }
    if remove {
        &authority[..port_start]
    } else {
        authority
    }
}
