//! Loading configuration: files or directories (recursively) of multi-document YAML or JSON
//! into typed [`Resource`]s, each remembering the file and lines it came from.
//!
//! Loading never stops at the first problem and never panics: every document that cannot become
//! a resource turns into a [`Finding`] naming the file, line and field.

pub mod fuzz;

/// The YAML layer, shared with the proxy's Envoy bootstrap loader.
pub use weft_yaml as yaml;

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::diag::{Finding, Location, msg};
use crate::meta::{DEFAULT_NAMESPACE, ISTIO_GROUPS, Kind, Resource};
pub use yaml::FieldLines;

/// Deepest directory nesting the loader follows (guards against symlink loops).
const MAX_DEPTH: usize = 32;

/// Where a resource came from: file, the line its document starts on, and its fields' lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The file.
    pub file: Arc<PathBuf>,
    /// Line where the resource's document (or `List` item) starts.
    pub line: usize,
    /// Lines of the resource's fields, by path (`spec.http[0]`).
    pub fields: Arc<FieldLines>,
}

impl Source {
    /// The location of `field` (a path such as `spec.http[0].route`), falling back to the nearest
    /// enclosing field and then to the start of the resource.
    pub fn locate(&self, field: Option<&str>) -> Location {
        let line = field
            .and_then(|f| self.fields.line_of(f))
            .unwrap_or(self.line);
        Location {
            file: self.file.clone(),
            line,
        }
    }
}

/// A resource together with its source.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The resource.
    pub resource: Resource,
    /// Where it was read from.
    pub source: Source,
}

/// Everything read from a set of paths.
#[derive(Debug, Default, Clone)]
pub struct LoadResult {
    /// Resources that decoded (they may still fail validation).
    pub resources: Vec<Loaded>,
    /// Problems: unreadable files, malformed documents, schema errors found while decoding.
    pub findings: Vec<Finding>,
    /// Documents of kinds weft does not read (Deployments, Services...), skipped silently.
    pub skipped: usize,
}

/// Reads configuration from files and directories.
#[derive(Debug, Clone)]
pub struct Loader {
    default_namespace: String,
}

impl Default for Loader {
    fn default() -> Self {
        Self {
            default_namespace: DEFAULT_NAMESPACE.to_owned(),
        }
    }
}

impl Loader {
    /// A loader that puts resources without a namespace into `namespace`.
    pub fn with_default_namespace(namespace: impl Into<String>) -> Self {
        Self {
            default_namespace: namespace.into(),
        }
    }

    /// Loads every path: files directly, directories recursively (`.yaml`, `.yml`, `.json`
    /// files; hidden entries such as Kubernetes' `..data` are skipped), in sorted order.
    pub fn load_paths<P: AsRef<Path>>(&self, paths: &[P]) -> LoadResult {
        let mut out = LoadResult::default();
        let mut seen = HashSet::new();
        for p in paths {
            let p = p.as_ref();
            match fs::metadata(p) {
                Ok(m) if m.is_dir() => self.load_dir(p, 0, &mut seen, &mut out),
                Ok(_) => self.load_file(p, &mut out),
                Err(e) => out
                    .findings
                    .push(file_finding(p, format!("cannot read {}: {e}", p.display()))),
            }
        }
        out
    }

    fn load_dir(
        &self,
        dir: &Path,
        depth: usize,
        seen: &mut HashSet<PathBuf>,
        out: &mut LoadResult,
    ) {
        if depth > MAX_DEPTH {
            out.findings.push(file_finding(
                dir,
                format!("{}: directories nested too deeply", dir.display()),
            ));
            return;
        }
        // Symlinked directories could loop; visit each real directory once.
        if let Ok(real) = fs::canonicalize(dir)
            && !seen.insert(real)
        {
            return;
        }
        let entries = match fs::read_dir(dir) {
            Ok(rd) => {
                let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
                v.sort();
                v
            }
            Err(e) => {
                out.findings.push(file_finding(
                    dir,
                    format!("cannot read directory {}: {e}", dir.display()),
                ));
                return;
            }
        };
        for path in entries {
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            match fs::metadata(&path) {
                Ok(m) if m.is_dir() => self.load_dir(&path, depth + 1, seen, out),
                Ok(_) if is_config_file(&path) => self.load_file(&path, out),
                _ => {}
            }
        }
    }

    /// Loads one file.
    pub fn load_file(&self, path: &Path, out: &mut LoadResult) {
        match fs::read(path) {
            Ok(bytes) => self.load_bytes(path, &bytes, out),
            Err(e) => out.findings.push(file_finding(
                path,
                format!("cannot read {}: {e}", path.display()),
            )),
        }
    }

    /// Loads the documents in `bytes` (which must be UTF-8), attributing them to `file`.
    pub fn load_bytes(&self, file: &Path, bytes: &[u8], out: &mut LoadResult) {
        match std::str::from_utf8(bytes) {
            Ok(text) => self.load_str(file, text, out),
            Err(e) => out.findings.push(file_finding(
                file,
                format!(
                    "{} is not UTF-8 text (invalid byte at offset {})",
                    file.display(),
                    e.valid_up_to()
                ),
            )),
        }
    }

    /// Loads the documents of `text`, attributing them to `file`.
    pub fn load_str(&self, file: &Path, text: &str, out: &mut LoadResult) {
        let file = Arc::new(file.to_path_buf());
        for doc in yaml::parse_documents(text) {
            match doc {
                Ok(doc) => {
                    let source = Source {
                        file: file.clone(),
                        line: doc.line,
                        fields: Arc::new(doc.fields),
                    };
                    self.load_value(doc.value, source, out);
                }
                Err(e) => {
                    let mut f = Finding::new(
                        msg::MALFORMED_DOCUMENT,
                        format!("invalid YAML: {}", e.message),
                    );
                    f.location = Some(Location {
                        file: file.clone(),
                        line: e.line,
                    });
                    out.findings.push(f);
                }
            }
        }
    }

    fn load_value(&self, value: Value, source: Source, out: &mut LoadResult) {
        let malformed = |field: Option<&str>, message: String| {
            let mut f = Finding::new(msg::MALFORMED_DOCUMENT, message);
            f.location = Some(source.locate(field));
            f.field = field.map(str::to_owned);
            f
        };
        let mut obj = match value {
            Value::Null => return,
            Value::Object(obj) => obj,
            other => {
                out.findings.push(malformed(
                    None,
                    format!(
                        "expected a Kubernetes object (apiVersion, kind, metadata, spec), found {}",
                        type_name(&other)
                    ),
                ));
                return;
            }
        };
        let kind = obj.get("kind").and_then(Value::as_str).map(str::to_owned);
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let (Some(kind), Some(api_version)) = (kind, api_version) else {
            let missing = if obj.get("apiVersion").and_then(Value::as_str).is_none() {
                "apiVersion"
            } else {
                "kind"
            };
            out.findings.push(malformed(
                Some(missing),
                format!("document has no {missing} (a string is required)"),
            ));
            return;
        };
        if kind == "List" {
            let items = match obj.remove("items") {
                Some(Value::Array(items)) => items,
                None | Some(Value::Null) => Vec::new(),
                Some(_) => {
                    out.findings.push(malformed(
                        Some("items"),
                        "items of a List must be a sequence".into(),
                    ));
                    return;
                }
            };
            for (i, item) in items.into_iter().enumerate() {
                let prefix = format!("items[{i}]");
                let fields = source.fields.below(&prefix);
                let line = fields.line_of("").unwrap_or(source.line);
                let item_source = Source {
                    file: source.file.clone(),
                    line,
                    fields: Arc::new(fields),
                };
                self.load_value(item, item_source, out);
            }
            return;
        }
        let (group, version) = api_version
            .rsplit_once('/')
            .unwrap_or(("", api_version.as_str()));
        let Some(k) = Kind::lookup(group, &kind) else {
            if ISTIO_GROUPS.contains(&group) {
                let mut f = malformed(
                    Some("kind"),
                    format!("{api_version} {kind} is not supported by weft; it is ignored"),
                );
                f.message_type = msg::UNSUPPORTED_RESOURCE;
                f.severity = msg::UNSUPPORTED_RESOURCE.severity;
                attach_ref(&mut f, &kind, &obj, &self.default_namespace);
                out.findings.push(f);
            } else {
                out.skipped += 1;
            }
            return;
        };
        if !k.versions().contains(&version) {
            let mut f = malformed(
                Some("apiVersion"),
                format!(
                    "{kind} is not served at {api_version}; use {}/{}",
                    group,
                    k.versions().join(" or ")
                ),
            );
            f.message_type = msg::SCHEMA_VALIDATION_ERROR;
            attach_ref(&mut f, &kind, &obj, &self.default_namespace);
            out.findings.push(f);
            return;
        }
        let name_hint = (kind.clone(), obj.clone());
        match Resource::from_value(k, Value::Object(obj)) {
            Ok(mut resource) => {
                if resource.meta.namespace.is_empty() {
                    resource.meta.namespace = self.default_namespace.clone();
                }
                out.resources.push(Loaded { resource, source });
            }
            Err(e) => {
                // serde_path_to_error's path already ends at the offending (or unknown) field.
                let field = e.path.clone();
                let message = suggest_field(&e.message).unwrap_or(e.message);
                let at = if field.is_empty() {
                    String::new()
                } else {
                    format!("{field}: ")
                };
                let mut f = Finding::new(msg::SCHEMA_VALIDATION_ERROR, format!("{at}{message}"));
                f.location = Some(source.locate(Some(&field)));
                f.field = Some(field);
                attach_ref(&mut f, &name_hint.0, &name_hint.1, &self.default_namespace);
                out.findings.push(f);
            }
        }
    }
}

fn attach_ref(f: &mut Finding, kind: &str, obj: &serde_json::Map<String, Value>, default_ns: &str) {
    let meta = obj.get("metadata");
    let get = |k: &str| {
        meta.and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    f.resource = Some(crate::diag::ResourceRef {
        kind: kind.to_owned(),
        namespace: get("namespace")
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| default_ns.to_owned()),
        name: get("name").unwrap_or_default(),
    });
}

/// Rewrites serde's "unknown field `nmae`, expected one of `name`, ..." into
/// "unknown field `nmae` (did you mean `name`?)" when one expected field is a likely typo fix.
fn suggest_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, rest) = rest.split_once('`')?;
    let expected = rest
        .strip_prefix(", expected one of ")
        .or_else(|| rest.strip_prefix(", expected "))?;
    let best = expected
        .split(", ")
        .filter_map(|c| c.trim_matches('`').get(..))
        .map(|c| {
            (
                edit_distance(&unknown.to_ascii_lowercase(), &c.to_ascii_lowercase()),
                c,
            )
        })
        .min()?;
    let limit = if unknown.len() <= 4 { 1 } else { 2 };
    (best.0 <= limit).then(|| format!("unknown field `{unknown}` (did you mean `{}`?)", best.1))
}

/// Levenshtein distance, counting a swap of two adjacent characters as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev2 = vec![0usize; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        prev2 = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

fn is_config_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

fn file_finding(path: &Path, message: String) -> Finding {
    let mut f = Finding::new(msg::MALFORMED_DOCUMENT, message);
    f.location = Some(Location {
        file: Arc::new(path.to_path_buf()),
        line: 1,
    });
    f
}

#[cfg(test)]
mod tests;
