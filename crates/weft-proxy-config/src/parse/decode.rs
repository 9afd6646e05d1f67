//! Protobuf JSON (`serde_json::Value`) into a `DynamicMessage`, accepting what Envoy accepts.
//!
//! Envoy parses a bootstrap with protobuf C++'s JSON parser (after converting YAML to JSON with
//! yaml-cpp). That parser is more lenient than the proto3 JSON spec, and prost-reflect's serde
//! support follows the spec, so we walk the value ourselves against the descriptors. Every
//! leniency below was checked against Envoy 1.40 (`envoy --mode validate`):
//! - enum names match case-insensitively (`round_robin`), and any integer is an enum value
//!   (`validate.rules` `defined_only` rejects undefined ones later);
//! - booleans may be strings: `"true"`, `"t"`, `"yes"`, `"y"`, `"1"` and their negations;
//! - integers may be numbers or strings, as long as they are integral (`"8.08e3"`, `"0x1F90"`);
//! - a single value stands for a one-element repeated field; `null` leaves a field unset and is
//!   skipped inside lists;
//! - the same field may appear twice (`stat_prefix` and `statPrefix`): the last one wins, but two
//!   members of one oneof are an error;
//! - from YAML only: yaml-cpp booleans (`on`, `off`) are booleans, and floats and integers
//!   outside the int32 range are strings (`stat_prefix: 1.5` is the string `"1.5"`).
//!
//! Walking the value ourselves also gives exact field paths in the user's spelling and messages
//! that say how to fix the value.

use prost::Message as _;
use prost_reflect::{
    DynamicMessage, EnumDescriptor, FieldDescriptor, Kind, MapKey, MessageDescriptor, Value as Pb,
};
use serde_json::{Map, Value};

use crate::{
    descriptors::{self, TYPED_STRUCTS},
    error::{ConfigError, ErrorKind},
};

/// Where the JSON value came from: Envoy reads YAML scalars with yaml-cpp's rules first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Json,
    Yaml,
}

/// Largest `Duration.seconds` protobuf allows (10,000 years).
const PROTO_MAX_DURATION_SECONDS: i64 = 315_576_000_000;

/// Decodes `value` as a message of type `desc`; errors carry paths relative to `value`.
///
/// Types (of `Any` payloads, of well-known messages) are resolved through [`descriptors::find`]
/// and the pool of the message at hand: the payload of an extension outside the resident pool
/// comes from the full one.
pub(crate) fn decode(
    desc: &MessageDescriptor,
    value: &Value,
    source: Source,
) -> Result<DynamicMessage, ConfigError> {
    let _lease = crate::descriptors::lease();
    let mut decoder = Decoder {
        source,
        path: String::new(),
    };
    decoder.message(desc, value)
}

struct Decoder {
    source: Source,
    path: String,
}

impl Decoder {
    fn error(&self, kind: ErrorKind, message: impl Into<String>) -> ConfigError {
        ConfigError::new(kind, self.path.clone(), message)
    }

    fn invalid(&self, message: impl Into<String>) -> ConfigError {
        self.error(ErrorKind::InvalidValue, message)
    }

    /// Runs `f` with `segment` (`.name`, `[3]`) appended to the path.
    fn at<T>(&mut self, segment: &str, f: impl FnOnce(&mut Self) -> T) -> T {
        let len = self.path.len();
        if !segment.starts_with('[') && !self.path.is_empty() {
            self.path.push('.');
        }
        self.path.push_str(segment);
        let out = f(self);
        self.path.truncate(len);
        out
    }

    fn message(
        &mut self,
        desc: &MessageDescriptor,
        value: &Value,
    ) -> Result<DynamicMessage, ConfigError> {
        if let Some(wkt) = self.well_known(desc, value)? {
            return Ok(wkt);
        }
        let Value::Object(map) = value else {
            return Err(self.invalid(format!(
                "expected an object ({}), found {}",
                desc.name(),
                describe(value)
            )));
        };
        self.fields(desc, map)
    }

    /// The fields of a plain message, from the keys of `map`.
    fn fields(
        &mut self,
        desc: &MessageDescriptor,
        map: &Map<String, Value>,
    ) -> Result<DynamicMessage, ConfigError> {
        let mut msg = DynamicMessage::new(desc.clone());
        // oneof name → (key that set it, field number)
        let mut oneofs: Vec<(String, String, u32)> = Vec::new();
        for (key, value) in map {
            let Some(field) = desc
                .get_field_by_name(key)
                .or_else(|| desc.get_field_by_json_name(key))
            else {
                let hint = did_you_mean(key, desc.fields().map(|f| f.name().to_owned()));
                return Err(self.at(key, |d| {
                    d.error(
                        ErrorKind::UnknownField,
                        format!("unknown field {key:?}{hint}"),
                    )
                }));
            };
            if value.is_null() && !is_message(&field, "google.protobuf.Value") {
                msg.clear_field(&field);
                continue;
            }
            if let Some(oneof) = field.containing_oneof().filter(|o| !o.is_synthetic()) {
                let other = oneofs
                    .iter()
                    .find(|(name, _, number)| name == oneof.name() && *number != field.number());
                if let Some((_, other_key, _)) = other {
                    return Err(self.at(key, |d| {
                        d.invalid(format!(
                            "{other_key:?} and {key:?} are both set, but they are alternatives \
                             (oneof {:?}): keep one",
                            oneof.name()
                        ))
                    }));
                }
                oneofs.push((oneof.name().to_owned(), key.clone(), field.number()));
            }
            let decoded = self.at(key, |d| d.field(&field, value))?;
            msg.set_field(&field, decoded);
        }
        Ok(msg)
    }

    fn field(&mut self, field: &FieldDescriptor, value: &Value) -> Result<Pb, ConfigError> {
        if field.is_map() {
            let Value::Object(map) = value else {
                return Err(self.invalid(format!(
                    "expected an object (a map), found {}",
                    describe(value)
                )));
            };
            let Kind::Message(entry) = field.kind() else {
                return Err(self.error(ErrorKind::Internal, "map field without an entry message"));
            };
            let key_kind = entry.map_entry_key_field().kind();
            let value_field = entry.map_entry_value_field();
            let mut out = std::collections::HashMap::new();
            for (k, v) in map {
                let item = self.at(k, |d| -> Result<Option<(MapKey, Pb)>, ConfigError> {
                    let key = d.map_key(&key_kind, k)?;
                    if v.is_null() && !is_message(&value_field, "google.protobuf.Value") {
                        return Ok(None);
                    }
                    Ok(Some((key, d.singular(&value_field.kind(), v)?)))
                })?;
                if let Some((key, v)) = item {
                    out.insert(key, v);
                }
            }
            return Ok(Pb::Map(out));
        }
        if field.is_list() {
            let kind = field.kind();
            let keep_null =
                matches!(&kind, Kind::Message(m) if m.full_name() == "google.protobuf.Value");
            let items = match value {
                Value::Array(items) => items.as_slice(),
                single => std::slice::from_ref(single),
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                if item.is_null() && !keep_null {
                    continue;
                }
                out.push(self.at(&format!("[{i}]"), |d| d.singular(&kind, item))?);
            }
            return Ok(Pb::List(out));
        }
        self.singular(&field.kind(), value)
    }

    fn singular(&mut self, kind: &Kind, value: &Value) -> Result<Pb, ConfigError> {
        Ok(match kind {
            Kind::Message(desc) => Pb::Message(self.message(desc, value)?),
            Kind::Enum(desc) => Pb::EnumNumber(self.enumeration(desc, value)?),
            Kind::Bool => Pb::Bool(self.boolean(value)?),
            Kind::String => Pb::String(self.string(value)?),
            Kind::Bytes => Pb::Bytes(self.bytes(value)?.into()),
            Kind::Double => Pb::F64(self.float(value, f64::MAX, "double")?),
            Kind::Float => Pb::F32(self.float(value, f64::from(f32::MAX), "float")? as f32),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                Pb::I32(self.int(value, i32::MIN.into(), i32::MAX.into(), "int32")? as i32)
            }
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
                Pb::I64(self.int(value, i64::MIN.into(), i64::MAX.into(), "int64")? as i64)
            }
            Kind::Uint32 | Kind::Fixed32 => {
                Pb::U32(self.int(value, 0, u32::MAX.into(), "uint32")? as u32)
            }
            Kind::Uint64 | Kind::Fixed64 => {
                Pb::U64(self.int(value, 0, u64::MAX.into(), "uint64")? as u64)
            }
        })
    }

    fn map_key(&self, kind: &Kind, key: &str) -> Result<MapKey, ConfigError> {
        let as_value = Value::String(key.to_owned());
        Ok(match kind {
            Kind::String => MapKey::String(key.to_owned()),
            Kind::Bool => MapKey::Bool(self.boolean(&as_value)?),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                MapKey::I32(self.int(&as_value, i32::MIN.into(), i32::MAX.into(), "int32")? as i32)
            }
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
                MapKey::I64(self.int(&as_value, i64::MIN.into(), i64::MAX.into(), "int64")? as i64)
            }
            Kind::Uint32 | Kind::Fixed32 => {
                MapKey::U32(self.int(&as_value, 0, u32::MAX.into(), "uint32")? as u32)
            }
            Kind::Uint64 | Kind::Fixed64 => {
                MapKey::U64(self.int(&as_value, 0, u64::MAX.into(), "uint64")? as u64)
            }
            _ => return Err(self.error(ErrorKind::Internal, "map key of a non-scalar type")),
        })
    }

    fn enumeration(&self, desc: &EnumDescriptor, value: &Value) -> Result<i32, ConfigError> {
        match value {
            Value::String(name) => desc
                .get_value_by_name(name)
                .or_else(|| desc.values().find(|v| v.name().eq_ignore_ascii_case(name)))
                .map(|v| v.number())
                .ok_or_else(|| {
                    let hint = did_you_mean(name, desc.values().map(|v| v.name().to_owned()));
                    self.invalid(format!("unknown enum value {name:?}{hint}"))
                }),
            Value::Number(_) => {
                Ok(self.int(value, i32::MIN.into(), i32::MAX.into(), "enum")? as i32)
            }
            Value::Null if desc.full_name() == "google.protobuf.NullValue" => Ok(0),
            other => Err(self.invalid(format!(
                "expected an enum value name (one of {}), found {}",
                desc.values()
                    .map(|v| v.name().to_owned())
                    .collect::<Vec<_>>()
                    .join(", "),
                describe(other)
            ))),
        }
    }

    fn boolean(&self, value: &Value) -> Result<bool, ConfigError> {
        match value {
            Value::Bool(b) => Ok(*b),
            Value::String(s) => {
                let lower = s.to_ascii_lowercase();
                match lower.as_str() {
                    // absl::SimpleAtob, which protobuf uses for quoted booleans.
                    "true" | "t" | "yes" | "y" | "1" => Ok(true),
                    "false" | "f" | "no" | "n" | "0" => Ok(false),
                    // yaml-cpp booleans that weft-yaml (YAML 1.2) leaves as strings.
                    "on" if self.source == Source::Yaml => Ok(true),
                    "off" if self.source == Source::Yaml => Ok(false),
                    _ => {
                        Err(self.invalid(format!("expected true or false, found the string {s:?}")))
                    }
                }
            }
            other => {
                Err(self.invalid(format!("expected true or false, found {}", describe(other))))
            }
        }
    }

    fn string(&self, value: &Value) -> Result<String, ConfigError> {
        match value {
            Value::String(s) => Ok(s.clone()),
            // Envoy's YAML → JSON conversion keeps only int32-range integers as numbers; floats
            // and larger integers become strings, so a string field accepts them.
            Value::Number(n)
                if self.source == Source::Yaml
                    && n.as_i64().is_none_or(|i| i32::try_from(i).is_err()) =>
            {
                Ok(n.to_string())
            }
            other => Err(self.invalid(format!(
                "expected a string, found {}{}",
                describe(other),
                if matches!(other, Value::Number(_) | Value::Bool(_)) {
                    " (quote it)"
                } else {
                    ""
                }
            ))),
        }
    }

    fn bytes(&self, value: &Value) -> Result<Vec<u8>, ConfigError> {
        match value {
            Value::String(s) => base64_decode(s)
                .ok_or_else(|| self.invalid(format!("invalid base64 in bytes field: {s:?}"))),
            other => Err(self.invalid(format!(
                "expected a base64 string, found {}",
                describe(other)
            ))),
        }
    }

    fn float(&self, value: &Value, max: f64, ty: &str) -> Result<f64, ConfigError> {
        let f = match value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => match s.as_str() {
                "NaN" => Some(f64::NAN),
                "Infinity" => Some(f64::INFINITY),
                "-Infinity" => Some(f64::NEG_INFINITY),
                s if is_decimal(s) => s.parse().ok(),
                _ => None,
            },
            _ => None,
        };
        let f = f.ok_or_else(|| {
            self.invalid(format!(
                "expected a number ({ty}), found {}",
                describe(value)
            ))
        })?;
        if f.is_finite() && f.abs() > max {
            return Err(self.invalid(format!("{f} is out of range for {ty}")));
        }
        Ok(f)
    }

    /// An integer in `min..=max`, from a JSON number or string.
    fn int(&self, value: &Value, min: i128, max: i128, ty: &str) -> Result<i128, ConfigError> {
        let n = match value {
            Value::Number(n) => n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from))
                .or_else(|| n.as_f64().and_then(integral)),
            Value::String(s) => parse_int_string(s),
            _ => None,
        };
        let n = n.ok_or_else(|| {
            self.invalid(format!(
                "expected an integer ({ty}), found {}",
                describe(value)
            ))
        })?;
        if n < min || n > max {
            return Err(self.invalid(format!("{n} is out of range for {ty} ({min} to {max})")));
        }
        Ok(n)
    }

    /// Messages with their own JSON form; `None` for ordinary messages.
    fn well_known(
        &mut self,
        desc: &MessageDescriptor,
        value: &Value,
    ) -> Result<Option<DynamicMessage>, ConfigError> {
        let name = desc.full_name();
        if !name.starts_with("google.protobuf.") {
            return Ok(None);
        }
        let mut msg = DynamicMessage::new(desc.clone());
        let wrapped = match name {
            "google.protobuf.Any" => return self.any(desc, value).map(Some),
            "google.protobuf.Duration" => {
                let Value::String(s) = value else {
                    return Err(self.invalid(format!(
                        "expected a duration string such as \"1.5s\", found {}",
                        describe(value)
                    )));
                };
                let (seconds, nanos) = parse_duration(s)
                    .map_err(|why| self.invalid(format!("invalid duration {s:?}: {why}")))?;
                msg.set_field_by_name("seconds", Pb::I64(seconds));
                msg.set_field_by_name("nanos", Pb::I32(nanos));
                return Ok(Some(msg));
            }
            "google.protobuf.Timestamp" => {
                let ts = match value {
                    Value::String(s) => s.parse::<prost_reflect::prost_types::Timestamp>().ok(),
                    _ => None,
                }
                .ok_or_else(|| {
                    self.invalid(format!(
                        "expected an RFC 3339 timestamp, found {}",
                        describe(value)
                    ))
                })?;
                msg.set_field_by_name("seconds", Pb::I64(ts.seconds));
                msg.set_field_by_name("nanos", Pb::I32(ts.nanos));
                return Ok(Some(msg));
            }
            "google.protobuf.FieldMask" => {
                let Value::String(s) = value else {
                    return Err(self.invalid(format!(
                        "expected a field mask string, found {}",
                        describe(value)
                    )));
                };
                let paths = s
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|p| Pb::String(camel_to_snake(p)));
                msg.set_field_by_name("paths", Pb::List(paths.collect()));
                return Ok(Some(msg));
            }
            "google.protobuf.Struct" => {
                let Value::Object(map) = value else {
                    return Err(
                        self.invalid(format!("expected an object, found {}", describe(value)))
                    );
                };
                return self.structure(desc, map).map(Some);
            }
            "google.protobuf.Value" => return self.dynamic_value(desc, value).map(Some),
            "google.protobuf.ListValue" => {
                let Value::Array(items) = value else {
                    return Err(self.invalid(format!("expected a list, found {}", describe(value))));
                };
                return self.list_value(desc, items).map(Some);
            }
            "google.protobuf.DoubleValue"
            | "google.protobuf.FloatValue"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.BoolValue"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue" => desc.get_field_by_name("value"),
            _ => None,
        };
        match wrapped {
            Some(field) => {
                let v = self.singular(&field.kind(), value)?;
                msg.set_field(&field, v);
                Ok(Some(msg))
            }
            None => Ok(None),
        }
    }

    fn structure(
        &mut self,
        desc: &MessageDescriptor,
        map: &Map<String, Value>,
    ) -> Result<DynamicMessage, ConfigError> {
        let value_desc = self.wkt(desc, "google.protobuf.Value")?;
        let mut fields = std::collections::HashMap::new();
        for (k, v) in map {
            let v = self.at(k, |d| d.dynamic_value(&value_desc, v))?;
            fields.insert(MapKey::String(k.clone()), Pb::Message(v));
        }
        let mut msg = DynamicMessage::new(desc.clone());
        msg.set_field_by_name("fields", Pb::Map(fields));
        Ok(msg)
    }

    fn list_value(
        &mut self,
        desc: &MessageDescriptor,
        items: &[Value],
    ) -> Result<DynamicMessage, ConfigError> {
        let value_desc = self.wkt(desc, "google.protobuf.Value")?;
        let mut values = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            values.push(Pb::Message(
                self.at(&format!("[{i}]"), |d| d.dynamic_value(&value_desc, item))?,
            ));
        }
        let mut msg = DynamicMessage::new(desc.clone());
        msg.set_field_by_name("values", Pb::List(values));
        Ok(msg)
    }

    fn dynamic_value(
        &mut self,
        desc: &MessageDescriptor,
        value: &Value,
    ) -> Result<DynamicMessage, ConfigError> {
        let mut msg = DynamicMessage::new(desc.clone());
        match value {
            Value::Null => msg.set_field_by_name("null_value", Pb::EnumNumber(0)),
            Value::Bool(b) => msg.set_field_by_name("bool_value", Pb::Bool(*b)),
            Value::Number(n) => {
                msg.set_field_by_name("number_value", Pb::F64(n.as_f64().unwrap_or_default()))
            }
            Value::String(s) => msg.set_field_by_name("string_value", Pb::String(s.clone())),
            Value::Array(items) => {
                let list = self.list_value(&self.wkt(desc, "google.protobuf.ListValue")?, items)?;
                msg.set_field_by_name("list_value", Pb::Message(list));
            }
            Value::Object(map) => {
                let s = self.structure(&self.wkt(desc, "google.protobuf.Struct")?, map)?;
                msg.set_field_by_name("struct_value", Pb::Message(s));
            }
        }
        Ok(msg)
    }

    /// The well-known type `name` from the pool `near` belongs to.
    fn wkt(&self, near: &MessageDescriptor, name: &str) -> Result<MessageDescriptor, ConfigError> {
        near.parent_pool().get_message_by_name(name).ok_or_else(|| {
            self.error(
                ErrorKind::Internal,
                format!("{name} missing from the descriptors"),
            )
        })
    }

    /// `{"@type": "type.googleapis.com/x.y.Z", ...fields of Z}`; well-known payloads sit under
    /// `"value"`. A `TypedStruct` payload is also decoded as the type it names, so mistakes inside
    /// it surface here as they do when Envoy instantiates the extension.
    fn any(
        &mut self,
        any_desc: &MessageDescriptor,
        value: &Value,
    ) -> Result<DynamicMessage, ConfigError> {
        let Value::Object(map) = value else {
            return Err(self.invalid(format!(
                "expected an object with an \"@type\" (an Any), found {}",
                describe(value)
            )));
        };
        let mut any = DynamicMessage::new(any_desc.clone());
        let type_url = match map.get("@type") {
            None if map.is_empty() => return Ok(any),
            None => {
                return Err(self.invalid(
                    "missing \"@type\": an Any needs \"@type\": type.googleapis.com/<message name>",
                ));
            }
            Some(Value::String(url)) => url,
            Some(other) => {
                return Err(self.at("@type", |d| {
                    d.invalid(format!(
                        "expected a type URL string, found {}",
                        describe(other)
                    ))
                }));
            }
        };
        let payload_desc = self.at("@type", |d| d.resolve_type_url(type_url))?;
        let payload = if is_special_json(payload_desc.full_name()) {
            if let Some(extra) = map.keys().find(|k| *k != "@type" && *k != "value") {
                return Err(self.at(extra, |d| {
                    d.error(
                        ErrorKind::UnknownField,
                        format!(
                            "unknown field {extra:?} (a {} in an Any goes under \"value\")",
                            payload_desc.name()
                        ),
                    )
                }));
            }
            let inner = map.get("value").cloned().unwrap_or(Value::Null);
            self.at("value", |d| d.message(&payload_desc, &inner))?
        } else {
            let mut rest = map.clone();
            rest.shift_remove("@type");
            let msg = self.fields(&payload_desc, &rest)?;
            if TYPED_STRUCTS.contains(&payload_desc.full_name()) {
                self.typed_struct_payload(&rest)?;
            }
            msg
        };
        any.set_field_by_name("type_url", Pb::String(type_url.clone()));
        any.set_field_by_name("value", Pb::Bytes(payload.encode_to_vec().into()));
        Ok(any)
    }

    /// Decodes `TypedStruct.value` as the message `TypedStruct.type_url` names (result dropped:
    /// [`crate::unpack`] converts again when the extension is built).
    fn typed_struct_payload(&mut self, map: &Map<String, Value>) -> Result<(), ConfigError> {
        let url = map.get("type_url").or_else(|| map.get("typeUrl"));
        let Some(Value::String(url)) = url else {
            return Err(
                self.invalid("a TypedStruct needs a type_url naming the configuration's type")
            );
        };
        let key = if map.contains_key("type_url") {
            "type_url"
        } else {
            "typeUrl"
        };
        let desc = self.at(key, |d| d.resolve_type_url(url))?;
        let inner = map
            .get("value")
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        self.at("value", |d| d.message(&desc, &inner))?;
        Ok(())
    }

    fn resolve_type_url(&self, url: &str) -> Result<MessageDescriptor, ConfigError> {
        let name = type_url_name(url).map_err(|why| self.invalid(why))?;
        if let Some(desc) = descriptors::find(name).map_err(|e| self.error(e.kind, e.message))? {
            return Ok(desc);
        }
        let package = name.rsplit_once('.').map_or("", |(p, _)| p);
        let hint = did_you_mean(
            name,
            descriptors::messages_in_package(package)
                .chain(
                    TYPED_STRUCTS
                        .into_iter()
                        .filter(|t| t.starts_with(&format!("{package}."))),
                )
                .map(str::to_owned),
        );
        Err(self.error(
            ErrorKind::UnknownType,
            format!("unknown type {url:?}{hint}"),
        ))
    }
}

/// The message name of a type URL: what follows the last `/`. Like protobuf C++, the part before
/// it must be non-empty (`type.googleapis.com/`), but is otherwise ignored.
pub(crate) fn type_url_name(url: &str) -> Result<&str, String> {
    match url.rsplit_once('/') {
        Some((host, name)) if !host.is_empty() && !name.is_empty() => Ok(name),
        _ => Err(format!(
            "type URL {url:?} must look like \"type.googleapis.com/<message name>\""
        )),
    }
}

/// Types whose JSON form is not an object of fields, so in an `Any` they sit under `"value"`.
fn is_special_json(full_name: &str) -> bool {
    matches!(
        full_name,
        "google.protobuf.Any"
            | "google.protobuf.Duration"
            | "google.protobuf.Timestamp"
            | "google.protobuf.FieldMask"
            | "google.protobuf.Struct"
            | "google.protobuf.Value"
            | "google.protobuf.ListValue"
            | "google.protobuf.Empty"
            | "google.protobuf.DoubleValue"
            | "google.protobuf.FloatValue"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.BoolValue"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue"
    )
}

fn is_message(field: &FieldDescriptor, full_name: &str) -> bool {
    matches!(field.kind(), Kind::Message(m) if m.full_name() == full_name)
}

/// A short description of a JSON value for messages: `the string "eighty"`, `a number (5)`.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// `[seconds].[fraction]s`: optional `-`, digits, up to nine fraction digits, then `s`.
pub(crate) fn parse_duration(s: &str) -> Result<(i64, i32), String> {
    let Some(body) = s.strip_suffix('s') else {
        return Err(match unit_hint(s) {
            Some(fix) => format!("protobuf JSON durations end in \"s\" (write {fix:?})"),
            None => "protobuf JSON durations end in \"s\", e.g. \"0.25s\"".into(),
        });
    };
    if let Some(fix) = unit_hint(s) {
        return Err(format!(
            "protobuf JSON durations end in \"s\" (write {fix:?})"
        ));
    }
    let (negative, digits) = match body.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, body),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || !all_digits(whole)
        || !all_digits(fraction)
        || (digits.contains('.') && fraction.is_empty())
    {
        return Err("expected seconds with up to 9 decimals, e.g. \"0.25s\"".into());
    }
    if fraction.len() > 9 {
        return Err("at most 9 decimals (nanoseconds)".into());
    }
    let seconds: i64 = whole
        .parse()
        .ok()
        .filter(|s| *s <= PROTO_MAX_DURATION_SECONDS)
        .ok_or_else(|| format!("out of range (at most {PROTO_MAX_DURATION_SECONDS}s)"))?;
    let nanos: i32 = format!("{fraction:0<9}").parse().unwrap_or_default();
    Ok(if negative {
        (-seconds, -nanos)
    } else {
        (seconds, nanos)
    })
}

/// For `250ms`, `5m`, `1h`: the same duration in protobuf's spelling.
fn unit_hint(s: &str) -> Option<String> {
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.' && c != '-')?;
    let (number, unit) = s.split_at(split);
    let n: f64 = number.parse().ok()?;
    let seconds = match unit {
        "ns" => n / 1e9,
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Some(format!("{seconds}s"))
}

/// A JSON string holding an integer: decimal, `0x` hexadecimal, or an integral decimal float
/// (`"8.08e3"`), as protobuf C++ accepts.
fn parse_int_string(s: &str) -> Option<i128> {
    if let Ok(n) = s.parse::<i128>() {
        return Some(n);
    }
    let (negative, rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    if let Some(hex) = rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X")) {
        let n = i128::from_str_radix(hex, 16).ok()?;
        return Some(if negative { -n } else { n });
    }
    if is_decimal(s) {
        return s.parse::<f64>().ok().and_then(integral);
    }
    None
}

/// Digits, sign, `.`, exponent: rules out `inf`, `nan` and whitespace, which Rust would parse.
fn is_decimal(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
}

fn integral(f: f64) -> Option<i128> {
    (f.is_finite() && f.fract() == 0.0 && f.abs() < 1.9e19).then_some(f as i128)
}

fn camel_to_snake(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Standard or URL-safe base64, padded or not (protobuf accepts both alphabets).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in s.trim_end_matches('=').bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// ` (did you mean "route_config"?)` when a candidate is a small edit away from `word`.
pub(crate) fn did_you_mean(word: &str, candidates: impl Iterator<Item = String>) -> String {
    let normalized = |s: &str| s.to_ascii_lowercase().replace('_', "");
    let target = normalized(word);
    let best = candidates
        .map(|c| {
            let n = normalized(&c);
            // A truncated name (`require_client_cert`) is as good a match as a typo.
            let d = if target.len() >= 4 && n.starts_with(&target) {
                1
            } else {
                edit_distance(&target, &n)
            };
            (d, c)
        })
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, c)) if d <= (word.len() / 4).max(1) => format!(" (did you mean {c:?}?)"),
        _ => String::new(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
