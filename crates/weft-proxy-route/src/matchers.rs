//! Compiled string, header and query-parameter matchers, and regex compilation.

use http::HeaderMap;
use regex::bytes::{Regex, RegexBuilder};

use crate::config::{
    HeaderMatchSpecifier, HeaderMatcher, MultiValueHeaders, QueryParameterMatchSpecifier,
    QueryParameterMatcher, StringMatcher, StringPattern,
};
use crate::error::RouteConfigError;

/// Compiled-program size limit for every regex. Envoy bounds RE2 programs by instruction count
/// (`max_program_size`), which has no exact equivalent in the `regex` crate; this bounds memory
/// instead.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compiles a regex that must match the whole input, as Envoy's `safe_regex` does (RE2
/// `FullMatch`).
pub(crate) fn compile_full_match(pattern: &str, field: &str) -> Result<Regex, RouteConfigError> {
    build_regex(
        &format!(r"\A(?:{})\z", translate_re2(pattern)),
        pattern,
        field,
    )
}

/// Compiles a regex matched anywhere in the input (rewrites).
pub(crate) fn compile_search(pattern: &str, field: &str) -> Result<Regex, RouteConfigError> {
    build_regex(&translate_re2(pattern), pattern, field)
}

fn build_regex(translated: &str, pattern: &str, field: &str) -> Result<Regex, RouteConfigError> {
    RegexBuilder::new(translated)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| RouteConfigError::InvalidRegex {
            field: field.to_owned(),
            pattern: pattern.to_owned(),
            reason: e.to_string(),
        })
}

/// RE2's Perl classes are ASCII-only while the `regex` crate's are Unicode; rewrite them so a
/// pattern means what it means in Envoy. Everything else is passed through.
fn translate_re2(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars();
    let mut class_depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('d') => out.push_str("[0-9]"),
                Some('D') => out.push_str("[^0-9]"),
                Some('w') => out.push_str("[0-9A-Za-z_]"),
                Some('W') => out.push_str("[^0-9A-Za-z_]"),
                Some('s') => out.push_str(r"[\t\n\f\r ]"),
                Some('S') => out.push_str(r"[^\t\n\f\r ]"),
                Some('b') if class_depth == 0 => out.push_str(r"(?-u:\b)"),
                Some('B') if class_depth == 0 => out.push_str(r"(?-u:\B)"),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            '[' => {
                class_depth += 1;
                out.push(c);
                // A `]` right after `[` or `[^` is a literal, not the end of the class.
                let rest = chars.as_str();
                let skip = if rest.starts_with("^]") {
                    2
                } else if rest.starts_with(']') {
                    1
                } else {
                    0
                };
                for _ in 0..skip {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                }
            }
            ']' if class_depth > 0 => {
                class_depth -= 1;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// ASCII case-insensitive `starts_with`.
pub(crate) fn starts_with_ignore_case(haystack: &[u8], prefix: &[u8]) -> bool {
    haystack.len() >= prefix.len() && haystack[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn ends_with_ignore_case(haystack: &[u8], suffix: &[u8]) -> bool {
    haystack.len() >= suffix.len()
        && haystack[haystack.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// A compiled Envoy `StringMatcher`.
#[derive(Debug, Clone)]
pub(crate) enum CompiledStringMatcher {
    Exact(Box<[u8]>, bool),
    Prefix(Box<[u8]>, bool),
    Suffix(Box<[u8]>, bool),
    Contains(Box<[u8]>, bool),
    Regex(Regex),
}

impl CompiledStringMatcher {
    pub(crate) fn compile(m: &StringMatcher, field: &str) -> Result<Self, RouteConfigError> {
        let ic = m.ignore_case;
        let non_empty = |s: &str, what: &str| {
            if s.is_empty() {
                Err(RouteConfigError::invalid(
                    format!("{field}.{what}"),
                    "must not be empty",
                ))
            } else {
                Ok(s.as_bytes().into())
            }
        };
        Ok(match &m.pattern {
            StringPattern::Exact(s) => Self::Exact(s.as_bytes().into(), ic),
            StringPattern::Prefix(s) => Self::Prefix(non_empty(s, "prefix")?, ic),
            StringPattern::Suffix(s) => Self::Suffix(non_empty(s, "suffix")?, ic),
            StringPattern::Contains(s) => Self::Contains(non_empty(s, "contains")?, ic),
            StringPattern::SafeRegex(p) => {
                if ic {
                    return Err(RouteConfigError::invalid(
                        format!("{field}.ignore_case"),
                        "ignore_case has no effect for safe_regex; use (?i) in the pattern instead",
                    ));
                }
                Self::Regex(compile_full_match(p, &format!("{field}.safe_regex"))?)
            }
        })
    }

    pub(crate) fn matches(&self, v: &[u8]) -> bool {
        match self {
            Self::Exact(e, false) => v == &e[..],
            Self::Exact(e, true) => v.eq_ignore_ascii_case(e),
            Self::Prefix(p, false) => v.starts_with(p),
            Self::Prefix(p, true) => starts_with_ignore_case(v, p),
            Self::Suffix(s, false) => v.ends_with(s),
            Self::Suffix(s, true) => ends_with_ignore_case(v, s),
            Self::Contains(s, false) => contains(v, s),
            Self::Contains(s, true) => contains_ignore_case(v, s),
            Self::Regex(r) => r.is_match(v),
        }
    }
}

/// Where a header matcher looks: a pseudo-header or a regular header. Resolved once at config
/// time so the match path never parses names.
#[derive(Debug, Clone)]
pub(crate) enum HeaderKey {
    Method,
    Path,
    Authority,
    Scheme,
    Protocol,
    Status,
    /// A pseudo-header this crate does not model; never present.
    UnknownPseudo,
    Regular(http::HeaderName),
}

impl HeaderKey {
    pub(crate) fn parse(name: &str, field: &str) -> Result<Self, RouteConfigError> {
        let lower = name.to_ascii_lowercase();
        Ok(match lower.as_str() {
            ":method" => Self::Method,
            ":path" => Self::Path,
            ":authority" => Self::Authority,
            ":scheme" => Self::Scheme,
            ":protocol" => Self::Protocol,
            ":status" => Self::Status,
            "" => {
                return Err(RouteConfigError::invalid(
                    field,
                    "header name must not be empty",
                ));
            }
            n if n.starts_with(':') => Self::UnknownPseudo,
            n => Self::Regular(http::HeaderName::from_bytes(n.as_bytes()).map_err(|_| {
                RouteConfigError::invalid(field, format!("{name:?} is not a valid header name"))
            })?),
        })
    }
}

/// The headers a matcher reads: a header map plus the pseudo-headers of a request or a response.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeaderSource<'a> {
    pub(crate) headers: &'a HeaderMap,
    pub(crate) method: Option<&'a str>,
    pub(crate) path: Option<&'a str>,
    pub(crate) authority: Option<&'a str>,
    pub(crate) scheme: Option<&'a str>,
    pub(crate) protocol: Option<&'a str>,
    pub(crate) status: Option<&'a str>,
}

impl<'a> HeaderSource<'a> {
    pub(crate) fn plain(headers: &'a HeaderMap) -> Self {
        Self {
            headers,
            method: None,
            path: None,
            authority: None,
            scheme: None,
            protocol: None,
            status: None,
        }
    }

    fn values(&self, key: &HeaderKey) -> Values<'a> {
        let pseudo = |v: Option<&'a str>| Values::One(v.map(str::as_bytes));
        match key {
            HeaderKey::Method => pseudo(self.method),
            HeaderKey::Path => pseudo(self.path),
            HeaderKey::Authority => pseudo(self.authority),
            HeaderKey::Scheme => pseudo(self.scheme),
            HeaderKey::Protocol => pseudo(self.protocol),
            HeaderKey::Status => pseudo(self.status),
            HeaderKey::UnknownPseudo => Values::One(None),
            HeaderKey::Regular(name) => Values::Many(self.headers.get_all(name).iter()),
        }
    }
}

enum Values<'a> {
    One(Option<&'a [u8]>),
    Many(http::header::ValueIter<'a, http::HeaderValue>),
}

impl<'a> Iterator for Values<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        match self {
            Self::One(v) => v.take(),
            Self::Many(it) => it.next().map(http::HeaderValue::as_bytes),
        }
    }
}

#[derive(Debug, Clone)]
enum ValueMatch {
    /// Exact with a non-empty value; an empty one matches anything and becomes `Any`.
    Exact(Box<[u8]>),
    Any,
    Regex(Regex),
    Range(i64, i64),
    Prefix(Box<[u8]>),
    Suffix(Box<[u8]>),
    Contains(Box<[u8]>),
    String(CompiledStringMatcher),
}

impl ValueMatch {
    fn matches(&self, v: &[u8]) -> bool {
        match self {
            Self::Exact(e) => v == &e[..],
            Self::Any => true,
            Self::Regex(r) => r.is_match(v),
            Self::Range(start, end) => parse_i64(v).is_some_and(|n| n >= *start && n < *end),
            Self::Prefix(p) => v.starts_with(p),
            Self::Suffix(s) => v.ends_with(s),
            Self::Contains(s) => contains(v, s),
            Self::String(m) => m.matches(v),
        }
    }
}

/// `absl::SimpleAtoi` for `int64_t`: ASCII whitespace around, an optional sign, decimal digits.
fn parse_i64(v: &[u8]) -> Option<i64> {
    // Rust's parser accepts exactly one optional sign, like absl.
    std::str::from_utf8(v).ok()?.trim_ascii().parse().ok()
}

#[derive(Debug, Clone)]
enum HeaderCondition {
    Present(bool),
    Value(ValueMatch),
}

/// A compiled Envoy `HeaderMatcher`.
#[derive(Debug, Clone)]
pub(crate) struct CompiledHeaderMatcher {
    key: HeaderKey,
    condition: HeaderCondition,
    invert: bool,
    treat_missing_as_empty: bool,
    mode: MultiValueHeaders,
}

impl CompiledHeaderMatcher {
    pub(crate) fn compile(
        m: &HeaderMatcher,
        mode: MultiValueHeaders,
        field: &str,
    ) -> Result<Self, RouteConfigError> {
        let key = HeaderKey::parse(&m.name, &format!("{field}.name"))?;
        let non_empty = |s: &str, what: &str| {
            if s.is_empty() {
                Err(RouteConfigError::invalid(
                    format!("{field}.{what}"),
                    "must not be empty",
                ))
            } else {
                Ok(s.as_bytes().into())
            }
        };
        let condition = match &m.specifier {
            HeaderMatchSpecifier::Present(p) => HeaderCondition::Present(*p),
            HeaderMatchSpecifier::Exact(e) if e.is_empty() => {
                HeaderCondition::Value(ValueMatch::Any)
            }
            HeaderMatchSpecifier::Exact(e) => {
                HeaderCondition::Value(ValueMatch::Exact(e.as_bytes().into()))
            }
            HeaderMatchSpecifier::SafeRegex(p) => HeaderCondition::Value(ValueMatch::Regex(
                compile_full_match(p, &format!("{field}.safe_regex_match"))?,
            )),
            HeaderMatchSpecifier::Range { start, end } => {
                HeaderCondition::Value(ValueMatch::Range(*start, *end))
            }
            HeaderMatchSpecifier::Prefix(p) => {
                HeaderCondition::Value(ValueMatch::Prefix(non_empty(p, "prefix_match")?))
            }
            HeaderMatchSpecifier::Suffix(s) => {
                HeaderCondition::Value(ValueMatch::Suffix(non_empty(s, "suffix_match")?))
            }
            HeaderMatchSpecifier::Contains(s) => {
                HeaderCondition::Value(ValueMatch::Contains(non_empty(s, "contains_match")?))
            }
            HeaderMatchSpecifier::StringMatch(sm) => HeaderCondition::Value(ValueMatch::String(
                CompiledStringMatcher::compile(sm, &format!("{field}.string_match"))?,
            )),
        };
        Ok(Self {
            key,
            condition,
            invert: m.invert_match,
            treat_missing_as_empty: m.treat_missing_header_as_empty,
            mode,
        })
    }

    /// Envoy's `HeaderMatcher::matchesHeaders`.
    pub(crate) fn matches(&self, src: &HeaderSource<'_>) -> bool {
        let mut values = src.values(&self.key).peekable();
        let present = values.peek().is_some();
        let vm = match &self.condition {
            HeaderCondition::Present(want) => return (present == *want) != self.invert,
            HeaderCondition::Value(vm) => vm,
        };
        if !present {
            // A missing header fails whatever the inversion, unless it counts as empty.
            return self.treat_missing_as_empty && (vm.matches(b"") != self.invert);
        }
        let matched = match self.mode {
            MultiValueHeaders::Individually => values.any(|v| vm.matches(v)),
            MultiValueHeaders::Joined => {
                let first = values.next().unwrap_or_default();
                match values.next() {
                    None => vm.matches(first),
                    Some(second) => {
                        let mut joined = first.to_vec();
                        for v in std::iter::once(second).chain(values) {
                            joined.push(b',');
                            joined.extend_from_slice(v);
                        }
                        vm.matches(&joined)
                    }
                }
            }
        };
        matched != self.invert
    }
}

/// True when every matcher matches (an empty list matches).
pub(crate) fn all_headers_match(
    matchers: &[CompiledHeaderMatcher],
    src: &HeaderSource<'_>,
) -> bool {
    matchers.iter().all(|m| m.matches(src))
}

pub(crate) fn compile_header_matchers(
    matchers: &[HeaderMatcher],
    mode: MultiValueHeaders,
    field: &str,
) -> Result<Vec<CompiledHeaderMatcher>, RouteConfigError> {
    matchers
        .iter()
        .enumerate()
        .map(|(i, m)| CompiledHeaderMatcher::compile(m, mode, &format!("{field}[{i}]")))
        .collect()
}

/// A compiled Envoy `QueryParameterMatcher`.
#[derive(Debug, Clone)]
pub(crate) struct CompiledQueryMatcher {
    name: Box<str>,
    condition: QueryCondition,
}

#[derive(Debug, Clone)]
enum QueryCondition {
    Present(bool),
    String(CompiledStringMatcher),
}

impl CompiledQueryMatcher {
    pub(crate) fn compile(
        m: &QueryParameterMatcher,
        field: &str,
    ) -> Result<Self, RouteConfigError> {
        if m.name.is_empty() || m.name.len() > 1024 {
            return Err(RouteConfigError::invalid(
                format!("{field}.name"),
                "must be 1 to 1024 bytes long",
            ));
        }
        let condition = match &m.specifier {
            QueryParameterMatchSpecifier::Present(p) => QueryCondition::Present(*p),
            QueryParameterMatchSpecifier::StringMatch(sm) => QueryCondition::String(
                CompiledStringMatcher::compile(sm, &format!("{field}.string_match"))?,
            ),
        };
        Ok(Self {
            name: m.name.as_str().into(),
            condition,
        })
    }

    /// `query` is everything after the first `?` of `:path` (fragment included, as Envoy's
    /// `parseQueryString` does not strip it).
    pub(crate) fn matches(&self, query: Option<&str>) -> bool {
        let value = query.and_then(|q| first_query_value(q, &self.name));
        match &self.condition {
            QueryCondition::Present(want) => value.is_some() == *want,
            QueryCondition::String(m) => value.is_some_and(|v| m.matches(v.as_bytes())),
        }
    }
}

/// The first value of `name` in a raw query string, undecoded; a parameter without `=` has an
/// empty value.
pub fn first_query_value<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    if query.is_empty() {
        return None;
    }
    query
        .split('&')
        .find_map(|param| match param.split_once('=') {
            Some((k, v)) if k == name => Some(v),
            None if param == name => Some(""),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn re2_perl_classes_are_ascii() {
        let r = compile_full_match(r"\d+", "f").unwrap();
        assert!(r.is_match(b"123"));
        // U+0663 ARABIC-INDIC DIGIT THREE is a Unicode digit but not an RE2 `\d`.
        assert!(!r.is_match("٣".as_bytes()));
        let r = compile_full_match(r"[\w-]+", "f").unwrap();
        assert!(r.is_match(b"a-b_c"));
        assert!(!r.is_match("é".as_bytes()));
        let r = compile_full_match(r"[]a]+\\d", "f").unwrap();
        assert!(r.is_match(br"]a\d"));
    }

    #[test]
    fn full_match_is_anchored_even_with_alternation() {
        let r = compile_full_match("a|b", "f").unwrap();
        assert!(r.is_match(b"a"));
        assert!(!r.is_match(b"ab"));
    }

    #[test]
    fn simple_atoi_rules() {
        assert_eq!(parse_i64(b" 42 "), Some(42));
        assert_eq!(parse_i64(b"+7"), Some(7));
        assert_eq!(parse_i64(b"-7"), Some(-7));
        assert_eq!(parse_i64(b"++7"), None);
        assert_eq!(parse_i64(b"+-7"), None);
        assert_eq!(parse_i64(b"4x"), None);
        assert_eq!(parse_i64(b""), None);
    }

    #[test]
    fn query_values_are_raw_and_first_wins() {
        assert_eq!(first_query_value("a=1&a=2", "a"), Some("1"));
        assert_eq!(first_query_value("x&a", "a"), Some(""));
        assert_eq!(first_query_value("a%20b=1", "a b"), None);
        assert_eq!(first_query_value("a=1#frag", "a"), Some("1#frag"));
        assert_eq!(first_query_value("", "a"), None);
    }
}
