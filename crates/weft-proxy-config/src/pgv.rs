//! A generic `validate.rules` (protoc-gen-validate) checker over `DynamicMessage`s.
//!
//! Envoy runs PGV's generated `Validate()` on the bootstrap and on every extension config it
//! instantiates; prost knows nothing of these rules. We read them from the field options in the
//! descriptor pool and enforce them the way PGV's C++ templates do:
//! - scalar and string rules apply to proto3 fields whether set or not (an unset `name` with
//!   `min_len: 1` fails), except members of a oneof or `optional` fields that are not set;
//! - message-typed rules (`duration`, `any`, wrappers) apply only when the field is set, except
//!   `required`;
//! - nested messages are validated recursively, including the payloads of `Any`s (Envoy validates
//!   them when it builds the extension), `TypedStruct` payloads included.
//!
//! [`Profile::Envoy`] (the default) mirrors what Envoy's PGV build actually checks: PGV's C++
//! generator leaves map `keys`/`values`/`no_sparse` and string `email`/`uri`/`uri_ref` rules
//! unimplemented, so Envoy accepts `filter_metadata: {"": {}}` despite `keys.string.min_len: 1`.
//! [`Profile::Strict`] enforces those too, as PGV's Go and Java validators do.
//!
//! One check here is not PGV's: Envoy rejects every negative `Duration`, and every one longer
//! than 9223372035 s (`MessageUtil::validateDurationFields`), whatever the field's rules.

use std::{collections::HashMap, fmt, net::IpAddr, sync::LazyLock, sync::Mutex};

use prost_reflect::{
    DynamicMessage, ExtensionDescriptor, FieldDescriptor, Kind, MapKey, ReflectMessage, Value as Pb,
};
use regex::Regex;

use crate::{
    any::{PayloadKind, payload_of},
    descriptors,
    error::{ConfigError, ErrorKind},
};

/// Longest `Duration` Envoy accepts (`seconds` above this is "Duration out-of-range").
pub const ENVOY_MAX_DURATION_SECONDS: i64 = 9_223_372_035;

/// Which rules to enforce.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Profile {
    /// Exactly what Envoy enforces (PGV's C++ validators).
    #[default]
    Envoy,
    /// Every rule, including those PGV's C++ generator leaves unimplemented.
    Strict,
}

/// Checks `msg` and everything below it with [`Profile::Envoy`]; the error's path uses protobuf
/// field names.
pub fn validate(msg: &DynamicMessage) -> Result<(), ConfigError> {
    validate_with(msg, Profile::Envoy)
}

/// Checks `msg` and everything below it with the rules `profile` selects.
pub fn validate_with(msg: &DynamicMessage, profile: Profile) -> Result<(), ConfigError> {
    let _lease = descriptors::lease();
    check(msg, profile).map_err(|v| ConfigError::new(ErrorKind::Constraint, v.path(), v.message))
}

/// One broken rule and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    pub(crate) path: Vec<Segment>,
    pub(crate) message: String,
}

/// One step of a path into a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// A field, with both of its spellings.
    Field { name: String, json_name: String },
    /// An element of a repeated field.
    Index(usize),
    /// A map entry.
    Key(String),
}

impl Violation {
    /// The path with protobuf field names: `static_resources.clusters[0].name`.
    pub(crate) fn path(&self) -> String {
        let mut out = String::new();
        for seg in &self.path {
            match seg {
                Segment::Field { name, .. } => push_name(&mut out, name),
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
                Segment::Key(k) => push_name(&mut out, k),
            }
        }
        out
    }

    /// The path spelled as in `json` (the document the message was decoded from): each field
    /// takes whichever of its two names the document used.
    pub(crate) fn path_as_written(&self, json: &serde_json::Value) -> String {
        let mut node = Some(json);
        let mut out = String::new();
        for seg in &self.path {
            match seg {
                Segment::Field { name, json_name } => {
                    let obj = node.and_then(|n| n.as_object());
                    let used = match obj {
                        Some(o) if !o.contains_key(name) && o.contains_key(json_name) => json_name,
                        _ => name,
                    };
                    node = obj.and_then(|o| o.get(used));
                    push_name(&mut out, used);
                }
                Segment::Index(i) => {
                    // A single value may stand for a one-element list.
                    node = match node {
                        Some(serde_json::Value::Array(items)) => items.get(*i),
                        other => other,
                    };
                    out.push_str(&format!("[{i}]"));
                }
                Segment::Key(k) => {
                    node = node.and_then(|n| n.get(k));
                    push_name(&mut out, k);
                }
            }
        }
        out
    }
}

fn push_name(out: &mut String, name: &str) {
    if !out.is_empty() {
        out.push('.');
    }
    out.push_str(name);
}
/// Checks `msg`; the violation keeps the path as segments so callers can respell it.
pub(crate) fn check(msg: &DynamicMessage, profile: Profile) -> Result<(), Violation> {
    let _lease = descriptors::lease();
    let ext = Extensions::load().map_err(|message| Violation {
        path: Vec::new(),
        message,
    })?;
    let mut walker = Walker {
        ext,
        profile,
        path: Vec::new(),
    };
    walker.message(msg)
}

struct Extensions {
    rules: ExtensionDescriptor,
    oneof_required: Option<ExtensionDescriptor>,
    disabled: Option<ExtensionDescriptor>,
    ignored: Option<ExtensionDescriptor>,
}

impl Extensions {
    fn load() -> Result<Self, String> {
        let pool = descriptors::pool().map_err(|e| e.message)?;
        let rules = pool
            .get_extension_by_name("validate.rules")
            .ok_or("validate.rules is missing from the embedded descriptors")?;
        Ok(Extensions {
            rules,
            oneof_required: pool.get_extension_by_name("validate.required"),
            disabled: pool.get_extension_by_name("validate.disabled"),
            ignored: pool.get_extension_by_name("validate.ignored"),
        })
    }
}

struct Walker {
    ext: Extensions,
    profile: Profile,
    path: Vec<Segment>,
}

/// `Some(rule_message)` when `rules` sets the sub-message `name` (`uint32`, `string`...).
fn sub(rules: &DynamicMessage, name: &str) -> Option<DynamicMessage> {
    if !rules.has_field_by_name(name) {
        return None;
    }
    rules
        .get_field_by_name(name)
        .and_then(|v| v.as_message().cloned())
}

/// The value of `name` in `rules`, only when it is set.
fn get(rules: &DynamicMessage, name: &str) -> Option<Pb> {
    if rules.has_field_by_name(name) {
        rules.get_field_by_name(name).map(|v| v.into_owned())
    } else {
        None
    }
}

fn flag(rules: &DynamicMessage, name: &str) -> bool {
    get(rules, name).and_then(|v| v.as_bool()).unwrap_or(false)
}

/// Decoded field rules by field name. They belong to one decoding of the descriptor pool, so
/// the cache is cleared when the pool is released (`descriptors::release_idle`).
static RULES_CACHE: LazyLock<Mutex<HashMap<String, Option<DynamicMessage>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Compiled `pattern` rules (`None`: not a regex Rust's engine accepts), cleared with the rules.
static PATTERNS: LazyLock<Mutex<HashMap<String, Option<Regex>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Forgets every cached rule and compiled pattern (see [`RULES_CACHE`]).
pub(crate) fn clear_cache() {
    if let Ok(mut cache) = RULES_CACHE.lock() {
        *cache = HashMap::new();
    }
    if let Ok(mut patterns) = PATTERNS.lock() {
        *patterns = HashMap::new();
    }
}

/// Field rules of `field`, decoded from its options (cached: options are re-decoded per call).
fn field_rules(ext: &ExtensionDescriptor, field: &FieldDescriptor) -> Option<DynamicMessage> {
    let key = field.full_name().to_owned();
    if let Ok(cache) = RULES_CACHE.lock()
        && let Some(hit) = cache.get(&key)
    {
        return hit.clone();
    }
    let options = field.options();
    let rules = options
        .has_extension(ext)
        .then(|| options.get_extension(ext).as_message().cloned())
        .flatten();
    if let Ok(mut cache) = RULES_CACHE.lock() {
        cache.insert(key, rules.clone());
    }
    rules
}

impl Walker {
    fn violation(&self, message: impl Into<String>) -> Violation {
        Violation {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    fn within<T>(&mut self, seg: Segment, f: impl FnOnce(&mut Self) -> T) -> T {
        self.path.push(seg);
        let out = f(self);
        self.path.pop();
        out
    }

    fn option_flag(ext: Option<&ExtensionDescriptor>, options: &DynamicMessage) -> bool {
        ext.is_some_and(|e| {
            options.has_extension(e) && options.get_extension(e).as_bool() == Some(true)
        })
    }

    fn message(&mut self, msg: &DynamicMessage) -> Result<(), Violation> {
        let desc = msg.descriptor();
        match desc.full_name() {
            "google.protobuf.Any" => return self.any(msg),
            "google.protobuf.Duration" => return self.envoy_duration(msg),
            _ => {}
        }
        let options = desc.options();
        if Self::option_flag(self.ext.disabled.as_ref(), &options)
            || Self::option_flag(self.ext.ignored.as_ref(), &options)
        {
            return Ok(());
        }
        for oneof in desc.oneofs().filter(|o| !o.is_synthetic()) {
            if Self::option_flag(self.ext.oneof_required.as_ref(), &oneof.options())
                && !oneof.fields().any(|f| msg.has_field(&f))
            {
                let names: Vec<String> =
                    oneof.fields().map(|f| format!("{:?}", f.name())).collect();
                return Err(self.violation(format!(
                    "one of {} is required (oneof {:?})",
                    names.join(", "),
                    oneof.name()
                )));
            }
        }
        for field in desc.fields() {
            let set = msg.has_field(&field);
            // Oneof members and proto3 `optional` fields are checked only when present.
            if field.containing_oneof().is_some() && !set {
                continue;
            }
            let seg = Segment::Field {
                name: field.name().to_owned(),
                json_name: field.json_name().to_owned(),
            };
            let value = msg.get_field(&field);
            self.within(seg, |w| w.field(&field, &value, set))?;
        }
        Ok(())
    }

    fn field(&mut self, field: &FieldDescriptor, value: &Pb, set: bool) -> Result<(), Violation> {
        let rules = field_rules(&self.ext.rules, field);
        let skip_nested = rules
            .as_ref()
            .and_then(|r| sub(r, "message"))
            .is_some_and(|m| flag(&m, "skip"));
        if let Some(rules) = &rules {
            if let Some(m) = sub(rules, "message")
                && flag(&m, "required")
                && !set
            {
                return Err(self.violation("is required"));
            }
            if field.is_list() {
                if let Some(r) = sub(rules, "repeated") {
                    self.repeated(&field.kind(), &r, value)?;
                }
            } else if field.is_map() {
                if let Some(r) = sub(rules, "map") {
                    self.map(field, &r, value)?;
                }
            } else {
                self.singular(&field.kind(), rules, value, set)?;
            }
        }
        if skip_nested {
            return Ok(());
        }
        match value {
            Pb::Message(m) if set => self.message(m),
            Pb::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Pb::Message(m) = item {
                        self.within(Segment::Index(i), |w| w.message(m))?;
                    }
                }
                Ok(())
            }
            Pb::Map(entries) => {
                for (k, v) in sorted(entries) {
                    if let Pb::Message(m) = v {
                        self.within(Segment::Key(key_text(k)), |w| w.message(m))?;
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn repeated(
        &mut self,
        kind: &Kind,
        rules: &DynamicMessage,
        value: &Pb,
    ) -> Result<(), Violation> {
        let items = value.as_list().unwrap_or_default();
        if items.is_empty() && flag(rules, "ignore_empty") {
            return Ok(());
        }
        let n = items.len() as u64;
        if let Some(min) = get(rules, "min_items").and_then(|v| v.as_u64())
            && n < min
        {
            return Err(self.violation(format!("must have at least {min} item(s), has {n}")));
        }
        if let Some(max) = get(rules, "max_items").and_then(|v| v.as_u64())
            && n > max
        {
            return Err(self.violation(format!("must have at most {max} item(s), has {n}")));
        }
        if flag(rules, "unique") {
            let mut seen = Vec::new();
            for (i, item) in items.iter().enumerate() {
                if seen.contains(&item) {
                    return Err(self.within(Segment::Index(i), |w| {
                        w.violation("repeats an earlier item; items must be unique")
                    }));
                }
                seen.push(item);
            }
        }
        if let Some(item_rules) = sub(rules, "items") {
            for (i, item) in items.iter().enumerate() {
                self.within(Segment::Index(i), |w| {
                    w.singular(kind, &item_rules, item, true)
                })?;
            }
        }
        Ok(())
    }

    fn map(
        &mut self,
        field: &FieldDescriptor,
        rules: &DynamicMessage,
        value: &Pb,
    ) -> Result<(), Violation> {
        let Some(entries) = value.as_map() else {
            return Ok(());
        };
        if entries.is_empty() && flag(rules, "ignore_empty") {
            return Ok(());
        }
        let n = entries.len() as u64;
        if let Some(min) = get(rules, "min_pairs").and_then(|v| v.as_u64())
            && n < min
        {
            return Err(self.violation(format!("must have at least {min} entr(ies), has {n}")));
        }
        if let Some(max) = get(rules, "max_pairs").and_then(|v| v.as_u64())
            && n > max
        {
            return Err(self.violation(format!("must have at most {max} entr(ies), has {n}")));
        }
        let Kind::Message(entry) = field.kind() else {
            return Ok(());
        };
        let key_kind = entry.map_entry_key_field().kind();
        let value_kind = entry.map_entry_value_field().kind();
        if self.profile == Profile::Envoy {
            return Ok(());
        }
        let key_rules = sub(rules, "keys");
        let value_rules = sub(rules, "values");
        for (k, v) in sorted(entries) {
            self.within(Segment::Key(key_text(k)), |w| {
                if let Some(r) = &key_rules {
                    w.singular(&key_kind, r, &map_key_value(k), true)
                        .map_err(|mut e| {
                            e.message = format!("key {}", e.message);
                            e
                        })?;
                }
                if let Some(r) = &value_rules {
                    w.singular(&value_kind, r, v, true)?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Applies the type-specific rules of `rules` to one value.
    fn singular(
        &mut self,
        kind: &Kind,
        rules: &DynamicMessage,
        value: &Pb,
        set: bool,
    ) -> Result<(), Violation> {
        if let Some(m) = sub(rules, "message")
            && flag(&m, "required")
            && !set
        {
            return Err(self.violation("is required"));
        }
        let result = if let Some(r) = sub(rules, "string") {
            let strict = self.profile == Profile::Strict;
            value
                .as_str()
                .map(|s| string_rules(&r, s, strict))
                .unwrap_or(Ok(()))
        } else if let Some(r) = sub(rules, "bytes") {
            value
                .as_bytes()
                .map(|b| bytes_rules(&r, b))
                .unwrap_or(Ok(()))
        } else if let Some(r) = sub(rules, "enum") {
            match (kind, value.as_enum_number()) {
                (Kind::Enum(e), Some(n)) => enum_rules(&r, e, n),
                _ => Ok(()),
            }
        } else if let Some(r) = sub(rules, "bool") {
            match (
                get(&r, "const").and_then(|c| c.as_bool()),
                unwrap_scalar(value),
            ) {
                (Some(c), Some(Pb::Bool(b))) if c != b => Err(format!("value {b} must be {c}")),
                _ => Ok(()),
            }
        } else if let Some(r) = sub(rules, "duration") {
            self.duration_rules(&r, value, set)
        } else if let Some(r) = sub(rules, "any") {
            any_rules(&r, value, set)
        } else if let Some(r) = sub(rules, "timestamp") {
            if flag(&r, "required") && !set {
                Err("is required".into())
            } else {
                Ok(())
            }
        } else {
            self.numeric(rules, value, set)
        };
        result.map_err(|m| self.violation(m))
    }

    fn numeric(&self, rules: &DynamicMessage, value: &Pb, set: bool) -> Result<(), String> {
        const INTS: [&str; 10] = [
            "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64",
            "sfixed32", "sfixed64",
        ];
        // Rules on a wrapper (`UInt32Value`) apply to its value, when the wrapper is set.
        let Some(v) = unwrap_scalar(value) else {
            return Ok(());
        };
        if matches!(value, Pb::Message(_)) && !set {
            return Ok(());
        }
        for name in INTS {
            if let Some(r) = sub(rules, name) {
                return match as_i128(&v) {
                    Some(0) if flag(&r, "ignore_empty") => Ok(()),
                    Some(n) => range_rules(&r, n, as_i128, |n| n.to_string()),
                    None => Ok(()),
                };
            }
        }
        for name in ["double", "float"] {
            if let Some(r) = sub(rules, name) {
                return match as_f64(&v) {
                    Some(f) if f == 0.0 && flag(&r, "ignore_empty") => Ok(()),
                    Some(f) => range_rules(&r, f, as_f64, |f| f.to_string()),
                    None => Ok(()),
                };
            }
        }
        Ok(())
    }

    fn duration_rules(&self, rules: &DynamicMessage, value: &Pb, set: bool) -> Result<(), String> {
        if !set {
            return if flag(rules, "required") {
                Err("is required".into())
            } else {
                Ok(())
            };
        }
        match value.as_message().and_then(duration_nanos) {
            Some(n) => range_rules(
                rules,
                n,
                |v| v.as_message().and_then(duration_nanos),
                format_nanos,
            ),
            None => Ok(()),
        }
    }

    /// Envoy's own check on every Duration.
    fn envoy_duration(&self, msg: &DynamicMessage) -> Result<(), Violation> {
        let seconds = msg
            .get_field_by_name("seconds")
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        let nanos = msg
            .get_field_by_name("nanos")
            .and_then(|v| v.as_i32())
            .unwrap_or(0);
        if seconds < 0 || nanos < 0 {
            return Err(self.violation("Envoy rejects negative durations"));
        }
        if seconds > ENVOY_MAX_DURATION_SECONDS || nanos > 999_999_999 {
            return Err(self.violation(format!(
                "duration {seconds}s is out of range: Envoy allows at most {ENVOY_MAX_DURATION_SECONDS}s"
            )));
        }
        Ok(())
    }

    /// Validates the payload of an Any (Envoy does when it builds the extension).
    fn any(&mut self, msg: &DynamicMessage) -> Result<(), Violation> {
        match payload_of(msg) {
            Ok(None) => Ok(()),
            Ok(Some(PayloadKind::Plain(payload))) => self.message(&payload),
            Ok(Some(PayloadKind::TypedStruct(payload))) => self.within(
                Segment::Field {
                    name: "value".into(),
                    json_name: "value".into(),
                },
                |w| w.message(&payload),
            ),
            Err(e) => Err(self.violation(e.message)),
        }
    }
}

/// Entries in key order, so the first violation reported does not depend on hashing.
fn sorted(entries: &HashMap<MapKey, Pb>) -> Vec<(&MapKey, &Pb)> {
    let mut v: Vec<_> = entries.iter().collect();
    v.sort_by_key(|(k, _)| key_text(k));
    v
}

fn key_text(k: &MapKey) -> String {
    match k {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

fn map_key_value(k: &MapKey) -> Pb {
    match k {
        MapKey::Bool(b) => Pb::Bool(*b),
        MapKey::I32(n) => Pb::I32(*n),
        MapKey::I64(n) => Pb::I64(*n),
        MapKey::U32(n) => Pb::U32(*n),
        MapKey::U64(n) => Pb::U64(*n),
        MapKey::String(s) => Pb::String(s.clone()),
    }
}

/// The scalar of a value, looking through wrapper messages (`UInt32Value{value}`).
fn unwrap_scalar(value: &Pb) -> Option<Pb> {
    match value {
        Pb::Message(m) if m.descriptor().full_name().starts_with("google.protobuf.") => {
            m.get_field_by_name("value").map(|v| v.into_owned())
        }
        Pb::Message(_) | Pb::List(_) | Pb::Map(_) => None,
        scalar => Some(scalar.clone()),
    }
}

fn as_i128(v: &Pb) -> Option<i128> {
    Some(match v {
        Pb::I32(n) => (*n).into(),
        Pb::I64(n) => (*n).into(),
        Pb::U32(n) => (*n).into(),
        Pb::U64(n) => (*n).into(),
        _ => return None,
    })
}

fn as_f64(v: &Pb) -> Option<f64> {
    match v {
        Pb::F32(f) => Some((*f).into()),
        Pb::F64(f) => Some(*f),
        _ => None,
    }
}

fn duration_nanos(m: &DynamicMessage) -> Option<i128> {
    let seconds = m.get_field_by_name("seconds")?.as_i64()?;
    let nanos = m.get_field_by_name("nanos")?.as_i32()?;
    Some(i128::from(seconds) * 1_000_000_000 + i128::from(nanos))
}

fn format_nanos(n: i128) -> String {
    let (sign, n) = if n < 0 { ("-", -n) } else { ("", n) };
    let (s, frac) = (n / 1_000_000_000, n % 1_000_000_000);
    if frac == 0 {
        format!("{sign}{s}s")
    } else {
        format!("{sign}{s}.{}s", format!("{frac:09}").trim_end_matches('0'))
    }
}

/// `const`, `lt`, `lte`, `gt`, `gte`, `in`, `not_in` of numeric and duration rules, with PGV's
/// meaning for inverted bounds (`gt: 10, lt: 5` means "outside [5, 10]").
fn range_rules<T: PartialOrd + Copy>(
    rules: &DynamicMessage,
    v: T,
    read: impl Fn(&Pb) -> Option<T>,
    show: impl Fn(T) -> String,
) -> Result<(), String> {
    let bound = |name: &str| get(rules, name).as_ref().and_then(&read);
    if let Some(c) = bound("const")
        && v != c
    {
        return Err(format!("value {} must equal {}", show(v), show(c)));
    }
    let lower = bound("gt")
        .map(|b| (b, true))
        .or_else(|| bound("gte").map(|b| (b, false)));
    let upper = bound("lt")
        .map(|b| (b, true))
        .or_else(|| bound("lte").map(|b| (b, false)));
    let above = |(b, exclusive): (T, bool)| if exclusive { v > b } else { v >= b };
    let below = |(b, exclusive): (T, bool)| if exclusive { v < b } else { v <= b };
    let text = |(b, exclusive): (T, bool), gt: bool| {
        format!(
            "{}{} {}",
            if gt { ">" } else { "<" },
            if exclusive { "" } else { "=" },
            show(b)
        )
    };
    // Inverted bounds (`gt: 10, lt: 5`) mean "outside the range", as in PGV.
    let broken = match (lower, upper) {
        (Some(lo), Some(hi)) if hi.0 < lo.0 => (!(above(lo) || below(hi)))
            .then(|| format!("{} or {}", text(hi, false), text(lo, true))),
        (Some(lo), Some(hi)) => (!(above(lo) && below(hi)))
            .then(|| format!("{} and {}", text(lo, true), text(hi, false))),
        (Some(lo), None) => (!above(lo)).then(|| text(lo, true)),
        (None, Some(hi)) => (!below(hi)).then(|| text(hi, false)),
        (None, None) => None,
    };
    if let Some(bounds) = broken {
        return Err(format!("value {} must be {bounds}", show(v)));
    }
    let list = |name: &str| -> Vec<T> {
        get(rules, name)
            .and_then(|l| {
                l.as_list()
                    .map(|items| items.iter().filter_map(&read).collect())
            })
            .unwrap_or_default()
    };
    let allowed = list("in");
    if !allowed.is_empty() && !allowed.contains(&v) {
        let all: Vec<String> = allowed.into_iter().map(&show).collect();
        return Err(format!(
            "value {} must be one of [{}]",
            show(v),
            all.join(", ")
        ));
    }
    if list("not_in").contains(&v) {
        return Err(format!("value {} is not allowed", show(v)));
    }
    Ok(())
}

fn strings(rules: &DynamicMessage, name: &str) -> Vec<String> {
    get(rules, name)
        .and_then(|l| {
            l.as_list().map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect()
            })
        })
        .unwrap_or_default()
}

fn string_rules(rules: &DynamicMessage, s: &str, strict: bool) -> Result<(), String> {
    if s.is_empty() && flag(rules, "ignore_empty") {
        return Ok(());
    }
    let chars = s.chars().count() as u64;
    let bytes = s.len() as u64;
    let num = |n: &str| get(rules, n).and_then(|v| v.as_u64());
    let text = |n: &str| get(rules, n).and_then(|v| v.as_str().map(str::to_owned));
    if let Some(c) = text("const")
        && s != c
    {
        return Err(format!("value {s:?} must equal {c:?}"));
    }
    if let Some(n) = num("len")
        && chars != n
    {
        return Err(format!("value {s:?} must be exactly {n} characters long"));
    }
    if let Some(n) = num("min_len")
        && chars < n
    {
        return Err(if n == 1 {
            "must not be empty".into()
        } else {
            format!("value {s:?} must be at least {n} characters long")
        });
    }
    if let Some(n) = num("max_len")
        && chars > n
    {
        return Err(format!(
            "value must be at most {n} characters long (is {chars})"
        ));
    }
    if let Some(n) = num("len_bytes")
        && bytes != n
    {
        return Err(format!("value {s:?} must be exactly {n} bytes long"));
    }
    if let Some(n) = num("min_bytes")
        && bytes < n
    {
        return Err(format!("value {s:?} must be at least {n} bytes long"));
    }
    if let Some(n) = num("max_bytes")
        && bytes > n
    {
        return Err(format!("value must be at most {n} bytes long (is {bytes})"));
    }
    if let Some(p) = text("pattern") {
        matches_pattern(&p, s)?;
    }
    if let Some(p) = text("prefix")
        && !s.starts_with(&p)
    {
        return Err(format!("value {s:?} must start with {p:?}"));
    }
    if let Some(p) = text("suffix")
        && !s.ends_with(&p)
    {
        return Err(format!("value {s:?} must end with {p:?}"));
    }
    if let Some(p) = text("contains")
        && !s.contains(&p)
    {
        return Err(format!("value {s:?} must contain {p:?}"));
    }
    if let Some(p) = text("not_contains")
        && s.contains(&p)
    {
        return Err(format!("value {s:?} must not contain {p:?}"));
    }
    let allowed = strings(rules, "in");
    if !allowed.is_empty() && !allowed.iter().any(|a| a == s) {
        return Err(format!("value {s:?} must be one of {allowed:?}"));
    }
    if strings(rules, "not_in").iter().any(|a| a == s) {
        return Err(format!("value {s:?} is not allowed"));
    }
    well_known_string(rules, s, strict)
}

fn well_known_string(rules: &DynamicMessage, s: &str, strict: bool) -> Result<(), String> {
    let bad = |what: &str| Err(format!("value {s:?} must be a valid {what}"));
    if flag(rules, "ip") && s.parse::<IpAddr>().is_err() {
        return bad("IP address");
    }
    if flag(rules, "ipv4") && s.parse::<std::net::Ipv4Addr>().is_err() {
        return bad("IPv4 address");
    }
    if flag(rules, "ipv6") && s.parse::<std::net::Ipv6Addr>().is_err() {
        return bad("IPv6 address");
    }
    if flag(rules, "hostname") && !is_hostname(s) {
        return bad("hostname");
    }
    if flag(rules, "address") && s.parse::<IpAddr>().is_err() && !is_hostname(s) {
        return bad("IP address or hostname");
    }
    if strict
        && flag(rules, "email")
        && !s
            .split_once('@')
            .is_some_and(|(l, h)| !l.is_empty() && is_hostname(h))
    {
        return bad("email address");
    }
    if strict
        && flag(rules, "uri")
        && !s
            .split_once(':')
            .is_some_and(|(scheme, _)| is_scheme(scheme))
    {
        return bad("absolute URI");
    }
    if flag(rules, "uuid") {
        matches_pattern(
            "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
            s,
        )?;
    }
    if let Some(which) = get(rules, "well_known_regex").and_then(|v| v.as_enum_number()) {
        // PGV's KnownRegex: 1 = HTTP_HEADER_NAME, 2 = HTTP_HEADER_VALUE. `strict` (default true)
        // selects RFC 7230; non-strict only forbids NUL, CR and LF.
        let strict = get(rules, "strict")
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        let (ok, what) = match (which, strict) {
            (1, true) => (is_header_name(s), "HTTP header name"),
            (2, true) => (is_header_value(s), "HTTP header value"),
            (1 | 2, false) => (
                !s.contains(['\0', '\n', '\r']),
                "HTTP header (no NUL, CR or LF)",
            ),
            _ => return Ok(()),
        };
        if !ok {
            return bad(what);
        }
    }
    Ok(())
}

/// PGV's strict `HTTP_HEADER_NAME`, `^:?[0-9a-zA-Z!#$%&'*+\-.^_|~\x60]+$` (RFC 7230 token,
/// optionally a pseudo-header), without compiling a regular expression.
fn is_header_name(s: &str) -> bool {
    let token = s.strip_prefix(':').unwrap_or(s);
    !token.is_empty()
        && token.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'|'
                        | b'~'
                        | b'`'
                )
        })
}

/// PGV's strict `HTTP_HEADER_VALUE`, `^[^\x00-\x08\x0A-\x1F\x7F]*$`: no control character
/// but horizontal tab.
fn is_header_value(s: &str) -> bool {
    !s.chars()
        .any(|c| matches!(c, '\0'..='\x08' | '\x0A'..='\x1F' | '\x7F'))
}

fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// RFC 1034 as PGV checks it: at most 253 characters, labels of 1–63 letters, digits and inner
/// hyphens; one trailing dot allowed.
fn is_hostname(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn bytes_rules(rules: &DynamicMessage, b: &[u8]) -> Result<(), String> {
    if b.is_empty() && flag(rules, "ignore_empty") {
        return Ok(());
    }
    let n = b.len() as u64;
    let num = |name: &str| get(rules, name).and_then(|v| v.as_u64());
    let raw = |name: &str| get(rules, name).and_then(|v| v.as_bytes().map(|b| b.to_vec()));
    if let Some(c) = raw("const")
        && b != c.as_slice()
    {
        return Err("value must equal the constant bytes".into());
    }
    if let Some(l) = num("len")
        && n != l
    {
        return Err(format!("must be exactly {l} bytes long (is {n})"));
    }
    if let Some(l) = num("min_len")
        && n < l
    {
        return Err(format!("must be at least {l} bytes long (is {n})"));
    }
    if let Some(l) = num("max_len")
        && n > l
    {
        return Err(format!("must be at most {l} bytes long (is {n})"));
    }
    if let Some(p) = raw("prefix")
        && !b.starts_with(&p)
    {
        return Err("must start with the required prefix bytes".into());
    }
    if let Some(p) = raw("suffix")
        && !b.ends_with(&p)
    {
        return Err("must end with the required suffix bytes".into());
    }
    if let Some(p) = raw("contains")
        && !p.is_empty()
        && !b.windows(p.len()).any(|w| w == p.as_slice())
    {
        return Err("must contain the required bytes".into());
    }
    if let Some(p) = get(rules, "pattern").and_then(|v| v.as_str().map(str::to_owned)) {
        matches_pattern(&p, &String::from_utf8_lossy(b))?;
    }
    if flag(rules, "ip") && !(n == 4 || n == 16) {
        return Err("must be an IP address (4 or 16 bytes)".into());
    }
    if flag(rules, "ipv4") && n != 4 {
        return Err("must be an IPv4 address (4 bytes)".into());
    }
    if flag(rules, "ipv6") && n != 16 {
        return Err("must be an IPv6 address (16 bytes)".into());
    }
    Ok(())
}

fn enum_rules(
    rules: &DynamicMessage,
    desc: &prost_reflect::EnumDescriptor,
    n: i32,
) -> Result<(), String> {
    let show = |n: i32| {
        desc.get_value(n)
            .map_or_else(|| n.to_string(), |v| v.name().to_owned())
    };
    if let Some(c) = get(rules, "const").and_then(|v| v.as_i32())
        && n != c
    {
        return Err(format!("value {} must be {}", show(n), show(c)));
    }
    if flag(rules, "defined_only") && desc.get_value(n).is_none() {
        return Err(format!(
            "value {n} is not a defined {} value (one of {})",
            desc.name(),
            desc.values()
                .map(|v| v.name().to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let list = |name: &str| -> Vec<i32> {
        get(rules, name)
            .and_then(|l| {
                l.as_list()
                    .map(|items| items.iter().filter_map(|i| i.as_i32()).collect())
            })
            .unwrap_or_default()
    };
    let allowed = list("in");
    if !allowed.is_empty() && !allowed.contains(&n) {
        let names: Vec<String> = allowed.into_iter().map(show).collect();
        return Err(format!(
            "value {} must be one of [{}]",
            show(n),
            names.join(", ")
        ));
    }
    if list("not_in").contains(&n) {
        return Err(format!("value {} is not allowed here", show(n)));
    }
    Ok(())
}

fn any_rules(rules: &DynamicMessage, value: &Pb, set: bool) -> Result<(), String> {
    if !set {
        return if flag(rules, "required") {
            Err("is required".into())
        } else {
            Ok(())
        };
    }
    let url = value
        .as_message()
        .and_then(|m| {
            m.get_field_by_name("type_url")
                .and_then(|u| u.as_str().map(str::to_owned))
        })
        .unwrap_or_default();
    let allowed = strings(rules, "in");
    if !allowed.is_empty() && !allowed.contains(&url) {
        return Err(format!("type {url:?} must be one of {allowed:?}"));
    }
    if strings(rules, "not_in").contains(&url) {
        return Err(format!("type {url:?} is not allowed here"));
    }
    Ok(())
}

fn matches_pattern(pattern: &str, s: &str) -> Result<(), String> {
    match regex_is_match(pattern, s) {
        Some(true) | None => Ok(()),
        Some(false) => Err(format!("value {s:?} must match the pattern {pattern:?}")),
    }
}

/// `None` when the pattern does not compile (RE2 syntax Rust's regex lacks): such a rule is not
/// enforced rather than failing every config.
fn regex_is_match(pattern: &str, s: &str) -> Option<bool> {
    let mut cache = PATTERNS.lock().ok()?;
    let re = cache
        .entry(pattern.to_owned())
        .or_insert_with(|| Regex::new(pattern).ok());
    re.as_ref().map(|re| re.is_match(s))
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path(), self.message)
    }
}

#[cfg(test)]
mod tests;
