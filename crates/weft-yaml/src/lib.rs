//! YAML (and JSON, which is YAML) text into generic values plus a map from field paths to lines.
//!
//! Used for Istio configuration (`weft-api`) and Envoy bootstraps (`weft-proxy-config`).
//!
//! We walk granit-parser's event stream ourselves rather than deserializing straight into types:
//! one pass gives both the value and the line of every field, so a finding about
//! `spec.http[0].route[1].weight` can point at the line the user wrote it on. Aliases are expanded
//! under a node budget (no "billion laughs"), duplicate keys are errors (as with `kubectl`),
//! and `<<` merge keys work as they do in Kubernetes YAML.

use std::collections::HashMap;

use granit_parser::{Event, Parser, ScalarStyle, ScanError, Span};
use serde_json::{Map, Number, Value};

/// Most nodes one document may expand to, counting every alias expansion.
pub const MAX_NODES_PER_DOCUMENT: usize = 1_000_000;

/// Field path → 1-based line, for one document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldLines {
    lines: HashMap<String, usize>,
}

impl FieldLines {
    /// The line of `path`, or of its nearest ancestor that has one.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(line) = self.lines.get(p) {
                return Some(*line);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }

    /// Records `line` for `path` unless one is already known (the first occurrence wins).
    fn insert(&mut self, path: &str, line: usize) {
        self.lines.entry(path.to_owned()).or_insert(line);
    }

    /// The sub-map below `prefix` (for the items of a `kind: List`), with `prefix.` removed.
    pub fn below(&self, prefix: &str) -> FieldLines {
        let mut lines = HashMap::new();
        for (k, v) in &self.lines {
            if let Some(rest) = k.strip_prefix(prefix) {
                if let Some(rest) = rest.strip_prefix('.') {
                    lines.insert(rest.to_owned(), *v);
                } else if rest.is_empty() {
                    lines.insert(String::new(), *v);
                }
            }
        }
        FieldLines { lines }
    }
}

/// One document of a YAML stream.
#[derive(Debug, Clone)]
pub struct Document {
    /// The document's content; `Value::Null` for an empty document.
    pub value: Value,
    /// 1-based line where the document's content starts.
    pub line: usize,
    /// Lines of every field.
    pub fields: FieldLines,
}

/// A YAML syntax or structure error, with the line it was found on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct YamlError {
    /// 1-based line.
    pub line: usize,
    /// What went wrong.
    pub message: String,
}

/// Parses every document of `text`. A broken document yields an error in its place; parsing then
/// resumes at the next `---`, so one typo does not hide the rest of a file.
pub fn parse_documents(text: &str) -> Vec<Result<Document, YamlError>> {
    let mut parser = Parser::new_from_str(text);
    let mut out = Vec::new();
    loop {
        let mut builder = Builder::default();
        let step = builder.run(&mut parser);
        match step {
            Ok(Some(doc)) => out.push(Ok(doc)),
            Ok(None) => break,
            Err(err) => {
                out.push(Err(err));
                match parser.proceed_next_document() {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => {
                        out.push(Err(scan_error(&e)));
                        break;
                    }
                }
            }
        }
    }
    out
}

fn scan_error(e: &ScanError) -> YamlError {
    YamlError {
        line: e.marker().line(),
        message: e.info(),
    }
}

enum Frame {
    Seq {
        items: Vec<Value>,
        anchor: usize,
        path_len: usize,
    },
    Map {
        map: Map<String, Value>,
        merges: Vec<Value>,
        key: Option<String>,
        anchor: usize,
        path_len: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Value, usize)>,
    path: String,
    fields: FieldLines,
    nodes: usize,
    start_line: usize,
    root: Option<Value>,
}

impl Builder {
    /// Consumes events up to the end of one document. `Ok(None)` at the end of the stream.
    fn run<'a>(
        &mut self,
        parser: &mut Parser<'a, granit_parser::StrInput<'a>>,
    ) -> Result<Option<Document>, YamlError> {
        let mut in_doc = false;
        while let Some(next) = parser.next_event() {
            let (event, span) = next.map_err(|e| scan_error(&e))?;
            match event {
                Event::StreamStart => {}
                Event::StreamEnd => return Ok(None),
                Event::DocumentStart(..) => {
                    in_doc = true;
                    self.start_line = span.start.line();
                }
                Event::DocumentEnd => {
                    if !in_doc {
                        continue;
                    }
                    let value = self.root.take().unwrap_or(Value::Null);
                    return Ok(Some(Document {
                        value,
                        line: self.start_line,
                        fields: std::mem::take(&mut self.fields),
                    }));
                }
                Event::Alias(id) => {
                    let (value, size) =
                        self.anchors.get(&id).cloned().ok_or_else(|| YamlError {
                            line: span.start.line(),
                            message: "alias refers to an unknown anchor".into(),
                        })?;
                    self.count(size, &span)?;
                    self.begin_node(&span, Some(&value))?;
                    self.complete(value, 0, &span)?;
                }
                Event::Scalar(text, style, anchor, tag) => {
                    let is_key = matches!(self.stack.last(), Some(Frame::Map { key: None, .. }));
                    if is_key {
                        self.set_key(text.into_owned(), &span)?;
                        continue;
                    }
                    self.begin_node(&span, None)?;
                    let value =
                        resolve_scalar(&text, style, tag.as_deref()).map_err(|message| {
                            YamlError {
                                line: span.start.line(),
                                message,
                            }
                        })?;
                    self.count(1, &span)?;
                    self.complete(value, anchor, &span)?;
                }
                Event::SequenceStart(_, anchor, _) => {
                    self.begin_node(&span, None)?;
                    self.count(1, &span)?;
                    let path_len = self.path.len();
                    self.stack.push(Frame::Seq {
                        items: Vec::new(),
                        anchor,
                        path_len,
                    });
                }
                Event::MappingStart(_, anchor, _) => {
                    self.begin_node(&span, None)?;
                    self.count(1, &span)?;
                    let path_len = self.path.len();
                    self.stack.push(Frame::Map {
                        map: Map::new(),
                        merges: Vec::new(),
                        key: None,
                        anchor,
                        path_len,
                    });
                }
                Event::SequenceEnd => {
                    if let Some(Frame::Seq {
                        items,
                        anchor,
                        path_len,
                    }) = self.stack.pop()
                    {
                        self.path.truncate(path_len);
                        self.complete(Value::Array(items), anchor, &span)?;
                    }
                }
                Event::MappingEnd => {
                    if let Some(Frame::Map {
                        mut map,
                        merges,
                        anchor,
                        path_len,
                        ..
                    }) = self.stack.pop()
                    {
                        self.path.truncate(path_len);
                        apply_merges(&mut map, merges);
                        self.complete(Value::Object(map), anchor, &span)?;
                    }
                }
                // Anchor metadata, unresolved aliases and comments are not emitted with the
                // default options; anything else carries no data.
                _ => {}
            }
        }
        Ok(None)
    }

    fn count(&mut self, n: usize, span: &Span) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(n.max(1));
        if self.nodes > MAX_NODES_PER_DOCUMENT {
            return Err(YamlError {
                line: span.start.line(),
                message: format!(
                    "document expands to more than {MAX_NODES_PER_DOCUMENT} nodes (alias bomb?)"
                ),
            });
        }
        Ok(())
    }

    /// Called when a value node starts: extends the path and records its line. A collection in
    /// key position (or an alias to one) is rejected: Istio keys are strings.
    fn begin_node(&mut self, span: &Span, alias: Option<&Value>) -> Result<(), YamlError> {
        let line = span.start.line();
        match self.stack.last() {
            None => {
                self.fields.insert("", line);
            }
            Some(Frame::Seq { items, .. }) => {
                let i = items.len();
                self.path.push('[');
                self.path.push_str(&i.to_string());
                self.path.push(']');
                self.fields.insert(&self.path, line);
            }
            Some(Frame::Map { key: None, .. }) => match alias {
                Some(Value::String(_) | Value::Number(_) | Value::Bool(_)) => {}
                _ => {
                    return Err(YamlError {
                        line,
                        message: "mapping keys must be plain strings, not collections".into(),
                    });
                }
            },
            Some(Frame::Map { key: Some(_), .. }) => {}
        }
        Ok(())
    }

    fn set_key(&mut self, key: String, span: &Span) -> Result<(), YamlError> {
        let line = span.start.line();
        if let Some(Frame::Map {
            map,
            key: slot,
            path_len,
            ..
        }) = self.stack.last_mut()
        {
            if key != "<<" && map.contains_key(&key) {
                return Err(YamlError {
                    line,
                    message: format!("duplicate key {key:?}"),
                });
            }
            self.path.truncate(*path_len);
            if !self.path.is_empty() {
                self.path.push('.');
            }
            self.path.push_str(&key);
            self.fields.insert(&self.path, line);
            *slot = Some(key);
        }
        Ok(())
    }

    /// Places a finished value into its parent (or as the document root).
    fn complete(&mut self, value: Value, anchor: usize, span: &Span) -> Result<(), YamlError> {
        if anchor != 0 {
            let size = count_nodes(&value);
            self.anchors.insert(anchor, (value.clone(), size));
        }
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq {
                items, path_len, ..
            }) => {
                items.push(value);
                self.path.truncate(*path_len);
            }
            Some(Frame::Map {
                map,
                merges,
                key,
                path_len,
                ..
            }) => match key.take() {
                // An alias used as a key.
                None => {
                    let k = match value {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    return self.set_key(k, span);
                }
                Some(k) if k == "<<" => {
                    merges.push(value);
                    self.path.truncate(*path_len);
                }
                Some(k) => {
                    map.insert(k, value);
                    self.path.truncate(*path_len);
                }
            },
        }
        Ok(())
    }
}

/// `<<: *base` or `<<: [*a, *b]`: keys from the merged maps that the map does not set itself.
fn apply_merges(map: &mut Map<String, Value>, merges: Vec<Value>) {
    for merge in merges {
        let sources = match merge {
            Value::Array(items) => items,
            other => vec![other],
        };
        for source in sources {
            if let Value::Object(src) = source {
                for (k, v) in src {
                    map.entry(k).or_insert(v);
                }
            }
        }
    }
}

fn count_nodes(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Value::Object(map) => 1 + map.values().map(count_nodes).sum::<usize>(),
        _ => 1,
    }
}

/// Resolves a scalar by the YAML 1.2 core schema: quoted and block scalars are strings; plain
/// scalars may be null, booleans, integers or floats. Core-schema tags (`!!str`, `!!int`...) are
/// honoured; other tags are ignored.
fn resolve_scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&granit_parser::Tag>,
) -> Result<Value, String> {
    if let Some(tag) = tag
        && let Some(core) = tag.core_suffix()
    {
        return match core {
            "str" => Ok(Value::String(text.to_owned())),
            "null" => Ok(Value::Null),
            "bool" => parse_bool(text)
                .map(Value::Bool)
                .ok_or_else(|| format!("{text:?} is not a boolean")),
            "int" => parse_int(text).ok_or_else(|| format!("{text:?} is not an integer")),
            "float" => parse_float(text),
            _ => Ok(Value::String(text.to_owned())),
        };
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::String(text.to_owned()));
    }
    if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        return Ok(Value::Null);
    }
    if let Some(b) = parse_bool(text) {
        return Ok(Value::Bool(b));
    }
    if let Some(n) = parse_int(text) {
        return Ok(n);
    }
    if looks_like_float(text) {
        return parse_float(text);
    }
    Ok(Value::String(text.to_owned()))
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn parse_int(text: &str) -> Option<Value> {
    let (neg, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(h) = digits.strip_prefix("0x") {
        (16, h)
    } else if let Some(o) = digits.strip_prefix("0o") {
        (8, o)
    } else {
        (10, digits)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    if neg {
        let n = i64::try_from(magnitude).ok()?.checked_neg()?;
        Some(Value::Number(n.into()))
    } else {
        Some(Value::Number(magnitude.into()))
    }
}

fn looks_like_float(text: &str) -> bool {
    let t = text.strip_prefix(['-', '+']).unwrap_or(text);
    matches!(t, ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN")
        || (t.chars().any(|c| c.is_ascii_digit())
            && t.chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
            && t.parse::<f64>().is_ok())
}

fn parse_float(text: &str) -> Result<Value, String> {
    let f: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| format!("{text:?}: infinite and NaN numbers are not supported"))
}

#[cfg(test)]
mod tests {
    use super::parse_documents;

    #[test]
    fn scalars_follow_the_core_schema() {
        let docs = parse_documents(
            "a: 1\nb: '1'\nc: true\nd: yes\ne: ~\nf: 1.5\ng: 0x1F\nh: -3\ni: !!str 7\nj: \"null\"\n",
        );
        let v = &docs[0].as_ref().unwrap().value;
        assert_eq!(v["a"], serde_json::json!(1));
        assert_eq!(v["b"], serde_json::json!("1"));
        assert_eq!(v["c"], serde_json::json!(true));
        assert_eq!(v["d"], serde_json::json!("yes"));
        assert_eq!(v["e"], serde_json::Value::Null);
        assert_eq!(v["f"], serde_json::json!(1.5));
        assert_eq!(v["g"], serde_json::json!(31));
        assert_eq!(v["h"], serde_json::json!(-3));
        assert_eq!(v["i"], serde_json::json!("7"));
        assert_eq!(v["j"], serde_json::json!("null"));
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let docs =
            parse_documents("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\nlist: [*b, *b]\n");
        let v = &docs[0].as_ref().unwrap().value;
        assert_eq!(v["use"], serde_json::json!({"x": 1, "y": 3}));
        assert_eq!(v["list"][1], serde_json::json!({"x": 1, "y": 2}));
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let docs = parse_documents("a: 1\nb: 2\na: 3\n");
        let e = docs[0].as_ref().unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("duplicate key"));
    }

    #[test]
    fn alias_bombs_are_bounded() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = format!("*a{}", i - 1);
            text.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
        }
        let docs = parse_documents(&text);
        let e = docs
            .iter()
            .find_map(|d| d.as_ref().err())
            .expect("bomb must be refused");
        assert!(e.message.contains("alias bomb"), "{}", e.message);
    }
}
