//! Lookup structures built once per table: the domain index for virtual host selection and the
//! first-path-segment index that lets route matching skip routes that cannot match.

use std::borrow::Cow;
use std::collections::HashMap;

use super::PathMatch;
use crate::error::RouteConfigError;

/// Wildcard maps grouped by the length of their fixed part, longest first.
type ByLength = Vec<(usize, HashMap<Box<[u8]>, usize>)>;

/// Envoy's `RouteMatcher` domain maps: exact domains, suffix and prefix wildcards grouped by
/// length (tried longest first), and the `*` virtual host.
#[derive(Debug, Default)]
pub(super) struct DomainIndex {
    exact: HashMap<Box<[u8]>, usize>,
    /// `(suffix length, suffix → vhost)`, longest first.
    suffixes: ByLength,
    /// `(prefix length, prefix → vhost)`, longest first.
    prefixes: ByLength,
    default: Option<(usize, String)>,
}

impl DomainIndex {
    pub(super) fn insert(
        &mut self,
        domain: &str,
        vhost: usize,
        vhost_name: &str,
        field: &str,
    ) -> Result<(), RouteConfigError> {
        let lower = domain.to_ascii_lowercase();
        let d = lower.as_bytes();
        let fresh = if d == b"*" {
            if let Some((_, first)) = &self.default {
                return Err(RouteConfigError::MultipleDefaultVirtualHosts {
                    field: field.to_owned(),
                    first: first.clone(),
                });
            }
            self.default = Some((vhost, vhost_name.to_owned()));
            true
        } else if let Some(suffix) = d.strip_prefix(b"*") {
            insert_by_len(&mut self.suffixes, suffix, vhost)
        } else if let Some(prefix) = d.strip_suffix(b"*") {
            insert_by_len(&mut self.prefixes, prefix, vhost)
        } else {
            self.exact.insert(d.into(), vhost).is_none()
        };
        if fresh {
            Ok(())
        } else {
            Err(RouteConfigError::DuplicateDomain {
                field: field.to_owned(),
                domain: lower,
            })
        }
    }

    pub(super) fn find(&self, host: &str) -> Option<usize> {
        if self.exact.is_empty() && self.suffixes.is_empty() && self.prefixes.is_empty() {
            return self.default.as_ref().map(|(v, _)| *v);
        }
        let host: Cow<'_, [u8]> = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(host.as_bytes().to_ascii_lowercase())
        } else {
            Cow::Borrowed(host.as_bytes())
        };
        let host = &*host;
        if let Some(v) = self.exact.get(host) {
            return Some(*v);
        }
        // `>=` skips: a wildcard matches at least one character, so `*.foo.com` does not match
        // `.foo.com`.
        for (len, map) in &self.suffixes {
            if *len < host.len()
                && let Some(v) = map.get(&host[host.len() - len..])
            {
                return Some(*v);
            }
        }
        for (len, map) in &self.prefixes {
            if *len < host.len()
                && let Some(v) = map.get(&host[..*len])
            {
                return Some(*v);
            }
        }
        self.default.as_ref().map(|(v, _)| *v)
    }
}

/// Inserts into the map for `key.len()`, keeping the groups sorted longest first. Returns false
/// on a duplicate.
fn insert_by_len(groups: &mut ByLength, key: &[u8], vhost: usize) -> bool {
    let pos = match groups.binary_search_by(|(len, _)| key.len().cmp(len)) {
        Ok(pos) => pos,
        Err(pos) => {
            groups.insert(pos, (key.len(), HashMap::new()));
            pos
        }
    };
    groups[pos].1.insert(key.into(), vhost).is_none()
}

/// Longest first-segment key indexed for case-insensitive routes; longer ones are always tried.
/// It bounds the stack buffer used to lower-case the request's segment.
const MAX_FOLDED_KEY: usize = 64;

/// Routes grouped by the first segment of the path they can match.
///
/// A route whose condition fixes the first path segment (prefix `/api/...`, path `/api` or
/// `/api/x`, path-separated prefix `/api`, a regex starting with the literal `/api/`) can only
/// match requests whose first segment is that one; every other route is tried for every request.
/// Candidates are produced in configuration order, so the first match is Envoy's first match.
#[derive(Debug, Default)]
pub(super) struct PathIndex {
    exact_case: HashMap<Box<[u8]>, Vec<usize>>,
    folded_case: HashMap<Box<[u8]>, Vec<usize>>,
    always: Vec<usize>,
}

enum SegmentKey {
    None,
    Exact(Vec<u8>),
    Folded(Vec<u8>),
}

impl PathIndex {
    pub(super) fn build<'a>(paths: impl Iterator<Item = &'a PathMatch>) -> Self {
        let mut index = Self::default();
        for (i, path) in paths.enumerate() {
            match segment_key(path) {
                SegmentKey::None => index.always.push(i),
                SegmentKey::Exact(k) => index.exact_case.entry(k.into()).or_default().push(i),
                SegmentKey::Folded(k) => index.folded_case.entry(k.into()).or_default().push(i),
            }
        }
        index
    }

    /// Indices of the routes that may match `path` (without query), ascending.
    pub(super) fn candidates(&self, path: Option<&str>) -> Candidates<'_> {
        let empty: &[usize] = &[];
        let Some(segment) = path.and_then(first_segment) else {
            return Candidates([empty, empty, &self.always]);
        };
        let exact = self.exact_case.get(segment).map_or(empty, Vec::as_slice);
        let folded = if self.folded_case.is_empty() || segment.len() > MAX_FOLDED_KEY {
            empty
        } else {
            let mut buf = [0u8; MAX_FOLDED_KEY];
            let lower = &mut buf[..segment.len()];
            lower.copy_from_slice(segment);
            lower.make_ascii_lowercase();
            self.folded_case.get(&*lower).map_or(empty, Vec::as_slice)
        };
        Candidates([exact, folded, &self.always])
    }
}

/// A merge of three ascending index lists.
#[derive(Debug)]
pub(super) struct Candidates<'a>([&'a [usize]; 3]);

impl Iterator for Candidates<'_> {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        let (slot, &first) = self
            .0
            .iter()
            .enumerate()
            .filter_map(|(slot, list)| list.first().map(|first| (slot, first)))
            .min_by_key(|(_, first)| **first)?;
        self.0[slot] = &self.0[slot][1..];
        Some(first)
    }
}

/// The first segment of a path starting with `/` (`/a/b` → `a`, `/a` → `a`, `/` → ``).
fn first_segment(path: &str) -> Option<&[u8]> {
    let rest = path.as_bytes().strip_prefix(b"/")?;
    Some(
        rest.iter()
            .position(|&b| b == b'/')
            .map_or(rest, |j| &rest[..j]),
    )
}

/// The first segment a literal prefix pins down: only when the segment is followed by `/`
/// within the prefix (`/api/` pins `api`; `/ap` pins nothing, it also matches `/apple`).
fn closed_first_segment(prefix: &str) -> Option<&[u8]> {
    let rest = prefix.as_bytes().strip_prefix(b"/")?;
    let j = rest.iter().position(|&b| b == b'/')?;
    Some(&rest[..j])
}

fn segment_key(path: &PathMatch) -> SegmentKey {
    let (segment, ignore_case) = match path {
        PathMatch::Prefix { value, ignore_case } => (closed_first_segment(value), *ignore_case),
        PathMatch::Exact { value, ignore_case }
        | PathMatch::PathSeparatedPrefix { value, ignore_case } => {
            (first_segment(value), *ignore_case)
        }
        PathMatch::Regex(r) => (
            regex_literal_prefix(r.as_str()).and_then(closed_first_segment),
            false,
        ),
        PathMatch::Connect => (None, false),
    };
    match segment {
        None => SegmentKey::None,
        Some(s) if !ignore_case => SegmentKey::Exact(s.to_vec()),
        Some(s) if s.len() <= MAX_FOLDED_KEY => SegmentKey::Folded(s.to_ascii_lowercase()),
        Some(_) => SegmentKey::None,
    }
}

/// The literal text every match of a full-match regex must start with, found conservatively:
/// the leading run of characters that are never special, minus the last one if a quantifier
/// follows; nothing at all if the pattern has an alternation anywhere.
fn regex_literal_prefix(compiled: &str) -> Option<&str> {
    let pattern = compiled.strip_prefix(r"\A(?:")?.strip_suffix(r")\z")?;
    if pattern.contains('|') {
        return None;
    }
    let is_literal = |c: char| c.is_ascii_alphanumeric() || "/-_~%:@,;=!&'".contains(c);
    let run = pattern
        .find(|c: char| !is_literal(c))
        .unwrap_or(pattern.len());
    let quantified = pattern[run..].starts_with(['?', '*', '{', '+']);
    let end = if quantified {
        run.saturating_sub(1)
    } else {
        run
    };
    Some(&pattern[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_prefix_is_conservative() {
        let p = |s: &str| regex_literal_prefix(&format!(r"\A(?:{s})\z")).map(str::to_owned);
        assert_eq!(p("/api/v1/.*").as_deref(), Some("/api/v1/"));
        assert_eq!(p("/api/v1?/x").as_deref(), Some("/api/v"));
        assert_eq!(p("/a|/b"), None);
        assert_eq!(p("(?i)/api/").as_deref(), Some(""));
        assert_eq!(p(r"/api\.x").as_deref(), Some("/api"));
    }

    #[test]
    fn segments() {
        assert_eq!(first_segment("/a/b"), Some(&b"a"[..]));
        assert_eq!(first_segment("/"), Some(&b""[..]));
        assert_eq!(first_segment("a"), None);
        assert_eq!(closed_first_segment("/a/"), Some(&b"a"[..]));
        assert_eq!(closed_first_segment("/a"), None);
    }

    #[test]
    fn candidates_merge_in_order() {
        let c = Candidates([&[1, 5], &[2], &[0, 3, 9]]);
        assert_eq!(c.collect::<Vec<_>>(), vec![0, 1, 2, 3, 5, 9]);
    }
}
