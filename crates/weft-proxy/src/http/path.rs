//! Path normalization as the HTTP connection manager applies it before routing:
//! `normalize_path` (RFC 3986 dot-segment removal), `merge_slashes`, and
//! `path_with_escaped_slashes_action`.

use std::borrow::Cow;

use weft_proxy_config::model::EscapedSlashesAction;

/// What to do with the request after normalization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathVerdict<'a> {
    /// Route with this path-and-query: borrowed when it is the input unchanged.
    Continue(Cow<'a, str>),
    /// Redirect the client to this path-and-query.
    Redirect(String),
    /// Reject with 400.
    Reject,
}

/// Applies the connection manager's path settings to `path_and_query`.
pub fn normalize(
    path_and_query: &str,
    normalize_path: bool,
    merge_slashes: bool,
    escaped: EscapedSlashesAction,
) -> PathVerdict<'_> {
    let path = path_and_query
        .find('?')
        .map_or(path_and_query, |i| &path_and_query[..i]);
    // Asterisk-form (`OPTIONS *`) and absolute paths are left alone; most paths need no change,
    // and telling so is one scan without allocating.
    if !path.starts_with('/') || is_normal(path, normalize_path, merge_slashes) {
        return PathVerdict::Continue(Cow::Borrowed(path_and_query));
    }
    rewrite(path_and_query, normalize_path, merge_slashes, escaped)
}

/// Whether the settings leave `path` as it is: no escape (escaped slashes and unreserved
/// characters are what the rewrite decodes), no `.` or `..` segment when normalizing, no
/// repeated slash when merging.
fn is_normal(path: &str, normalize_path: bool, merge_slashes: bool) -> bool {
    let b = path.as_bytes();
    if b.contains(&b'%') {
        return false;
    }
    if merge_slashes && b.windows(2).any(|w| w == b"//") {
        return false;
    }
    !normalize_path
        || !path
            .split('/')
            .any(|segment| segment == "." || segment == "..")
}

/// The rewrite itself, for a path starting with `/`.
fn rewrite(
    path_and_query: &str,
    normalize_path: bool,
    merge_slashes: bool,
    escaped: EscapedSlashesAction,
) -> PathVerdict<'_> {
    let (path, query) = match path_and_query.find('?') {
        Some(i) => path_and_query.split_at(i),
        None => (path_and_query, ""),
    };
    let has_escaped = contains_escaped_slash(path);
    let mut p = path.to_owned();
    let mut redirect = false;
    if has_escaped {
        match escaped {
            EscapedSlashesAction::KeepUnchanged => {}
            EscapedSlashesAction::RejectRequest => return PathVerdict::Reject,
            EscapedSlashesAction::UnescapeAndRedirect => {
                p = unescape_slashes(&p);
                redirect = true;
            }
            EscapedSlashesAction::UnescapeAndForward => p = unescape_slashes(&p),
        }
    }
    if normalize_path {
        match normalize_segments(&p) {
            Some(n) => p = n,
            None => return PathVerdict::Reject,
        }
    }
    if merge_slashes {
        p = merge(&p);
    }
    p.push_str(query);
    if redirect {
        PathVerdict::Redirect(p)
    } else {
        PathVerdict::Continue(Cow::Owned(p))
    }
}

fn contains_escaped_slash(path: &str) -> bool {
    let b = path.as_bytes();
    b.windows(3).any(|w| {
        w[0] == b'%' && w[1] == b'2' && (w[2] == b'f' || w[2] == b'F')
            || w[0] == b'%' && w[1] == b'5' && (w[2] == b'c' || w[2] == b'C')
    })
}

fn unescape_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let b = path.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let pair = (b[i + 1], b[i + 2].to_ascii_lowercase());
            if pair == (b'2', b'f') {
                out.push('/');
                i += 3;
                continue;
            }
            if pair == (b'5', b'c') {
                out.push('\\');
                i += 3;
                continue;
            }
        }
        out.push(char::from(b[i]));
        i += 1;
    }
    // Non-ASCII bytes cannot occur in a valid request target; keep the input otherwise.
    if path.is_ascii() {
        out
    } else {
        path.to_owned()
    }
}

/// RFC 3986 §5.2.4 `remove_dot_segments`, after decoding escaped unreserved characters (`%2e`
/// to `.` among them) as Envoy does. Linear in the path length (a cursor, never re-copying the
/// input).
fn normalize_segments(path: &str) -> Option<String> {
    let decoded = decode_unreserved(path);
    let mut input: &str = &decoded;
    let mut output = String::with_capacity(input.len());
    let pop = |out: &mut String| out.truncate(out.rfind('/').unwrap_or(0));
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../") {
            input = rest;
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            output.push('/');
            break;
        } else if input.starts_with("/../") {
            input = &input[3..];
            pop(&mut output);
        } else if input == "/.." {
            pop(&mut output);
            output.push('/');
            break;
        } else if input == "." || input == ".." {
            break;
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            output.push_str(&input[..end]);
            input = &input[end..];
        }
    }
    Some(if output.is_empty() {
        "/".to_owned()
    } else {
        output
    })
}

/// Decodes the `%XX` escapes of RFC 3986 unreserved characters (letters, digits, `-`, `.`, `_`,
/// `~`), which Envoy's URL canonicalization (Chromium's) writes plainly; every other escape is
/// kept as it is.
fn decode_unreserved(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = (b[i] == b'%')
            .then(|| Some((hex(*b.get(i + 1)?)? << 4) | hex(*b.get(i + 2)?)?))
            .flatten()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~'));
        match escaped {
            Some(c) => {
                out.push(c);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    // Only ASCII was replaced by ASCII, so the result is as valid UTF-8 as the input.
    String::from_utf8(out).unwrap_or_else(|_| path.to_owned())
}

fn hex(c: u8) -> Option<u8> {
    char::from(c)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn merge(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut prev_slash = false;
    for c in path.chars() {
        if c == '/' {
            if prev_slash {
                continue;
            }
            prev_slash = true;
        } else {
            prev_slash = false;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> String {
        match normalize(p, true, false, EscapedSlashesAction::KeepUnchanged) {
            PathVerdict::Continue(s) => s.into_owned(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn dot_segments() {
        assert_eq!(norm("/a/b/../c"), "/a/c");
        assert_eq!(norm("/a/./b"), "/a/b");
        assert_eq!(norm("/../../a"), "/a");
        assert_eq!(norm("/a/b/.."), "/a/");
        assert_eq!(norm("/a/%2e%2E/b"), "/b");
        // Escaped unreserved characters are decoded (then routed on); others stay escaped.
        assert_eq!(norm("/%61dmin/%7e%2D%5F%30"), "/admin/~-_0");
        assert_eq!(norm("/a%20b/%2F/%zz/%4"), "/a%20b/%2F/%zz/%4");
        assert_eq!(norm("/"), "/");
        assert_eq!(norm("/a/b/?x=/../y"), "/a/b/?x=/../y");
    }

    /// The scan that skips the rewrite agrees with the rewrite: wherever it says a path is left
    /// alone, the rewrite leaves it alone too (and the borrowed input is returned).
    #[test]
    fn paths_left_alone_are_borrowed_and_agree_with_the_rewrite() {
        let paths = [
            "/",
            "/a",
            "/a/b/",
            "//a",
            "/a//b",
            "/a/./b",
            "/a/../b",
            "/..",
            "/.",
            "/a/.b/..c",
            "/a/b.",
            "/.../x",
            "/a%2Fb",
            "/%61",
            "/a\\b",
            "/a?x=/../y",
            "/a//?q=//",
            "/~x/-_.",
        ];
        for p in paths {
            for (normalize_path, merge) in
                [(false, false), (true, false), (false, true), (true, true)]
            {
                let escaped = EscapedSlashesAction::KeepUnchanged;
                let path = p.split('?').next().unwrap_or(p);
                let fast = is_normal(path, normalize_path, merge);
                let slow = rewrite(p, normalize_path, merge, escaped);
                if fast {
                    assert_eq!(
                        slow,
                        PathVerdict::Continue(Cow::Borrowed(p)),
                        "{p} {normalize_path} {merge}"
                    );
                    assert!(matches!(
                        normalize(p, normalize_path, merge, escaped),
                        PathVerdict::Continue(Cow::Borrowed(_))
                    ));
                } else {
                    assert_eq!(normalize(p, normalize_path, merge, escaped), slow, "{p}");
                }
            }
        }
        // The paths the scan lets through on the default settings of a mesh proxy.
        assert!(is_normal("/api/v1/items", true, true));
        assert!(!is_normal("/api/../items", true, false));
        assert!(!is_normal("/api//items", false, true));
        assert!(!is_normal("/api/%2e%2e/items", false, false));
    }

    #[test]
    fn merging_slashes() {
        assert_eq!(
            normalize(
                "//a///b?q=//",
                false,
                true,
                EscapedSlashesAction::KeepUnchanged
            ),
            PathVerdict::Continue("/a/b?q=//".into())
        );
    }

    #[test]
    fn escaped_slashes() {
        let p = "/a%2Fb%5cc";
        assert_eq!(
            normalize(p, false, false, EscapedSlashesAction::KeepUnchanged),
            PathVerdict::Continue(p.into())
        );
        assert_eq!(
            normalize(p, false, false, EscapedSlashesAction::RejectRequest),
            PathVerdict::Reject
        );
        assert_eq!(
            normalize(p, false, false, EscapedSlashesAction::UnescapeAndForward),
            PathVerdict::Continue("/a/b\\c".into())
        );
        assert_eq!(
            normalize(
                "/x%2f",
                false,
                false,
                EscapedSlashesAction::UnescapeAndRedirect
            ),
            PathVerdict::Redirect("/x/".into())
        );
    }
}
