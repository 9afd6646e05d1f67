//! The one error type of this crate: where in which file, and what is wrong.

use std::{fmt, path::PathBuf};

/// What kind of mistake a [`ConfigError`] reports; lets callers (and tests) branch without
/// matching on message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file could not be read as YAML or JSON, or holds the wrong number of documents.
    Syntax,
    /// A file format Envoy reads but weft does not (`.pb_text`, `.pb`).
    UnsupportedFormat,
    /// A key that is not a field of the message (in either spelling).
    UnknownField,
    /// An `@type` (or `TypedStruct.type_url`) naming a type Envoy does not know.
    UnknownType,
    /// A value of the wrong JSON type or out of range for its field (`"eighty"` for a port).
    InvalidValue,
    /// A `validate.rules` constraint, Envoy's own duration bounds, or a rule Envoy checks when it
    /// loads a configuration (duplicate names, the router last, routes naming known clusters...).
    Constraint,
    /// An `Any` holds a different type than the caller of [`crate::unpack`] expects.
    TypeMismatch,
    /// A field, value or extension Envoy supports and weft does not (yet); the message names the
    /// resource and the field. See `docs/proxy-support.md`.
    Unsupported,
    /// The embedded descriptors are unusable: a build problem, never the user's fault.
    Internal,
}

/// A configuration error: file, line, field path and a message written for the user.
///
/// Displays as `bootstrap.yaml:12: static_resources.clusters[0].lb_policy: unknown enum value
/// "ROUND_ROBINN"`; parts that are unknown (no file for an in-memory `Any`, no line for a JSON
/// file that is not valid YAML) are left out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file the configuration came from, when it came from one.
    pub file: Option<PathBuf>,
    /// 1-based line of the field (or of its nearest ancestor that has one).
    pub line: Option<usize>,
    /// Field path as written in the input (`snake_case` or `lowerCamel`), e.g.
    /// `static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[1]`.
    /// Empty for errors about the whole document.
    pub path: String,
    /// What kind of mistake this is.
    pub kind: ErrorKind,
    /// What is wrong, e.g. `unknown field "foo"`.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(
        kind: ErrorKind,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            file: None,
            line: None,
            path: path.into(),
            kind,
            message: message.into(),
        }
    }

    /// Prefixes the path with `prefix` (an error found inside a nested document such as a
    /// `TypedStruct` value).
    pub(crate) fn under(mut self, prefix: &str) -> Self {
        self.path = join_path(prefix, &self.path);
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
            f.write_str(": ")?;
        } else if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// `a.b` + `c[0]` → `a.b.c[0]`; `a` + `[0]` → `a[0]`.
pub(crate) fn join_path(prefix: &str, rest: &str) -> String {
    if prefix.is_empty() {
        rest.to_owned()
    } else if rest.is_empty() {
        prefix.to_owned()
    } else if rest.starts_with('[') {
        format!("{prefix}{rest}")
    } else {
        format!("{prefix}.{rest}")
    }
}
