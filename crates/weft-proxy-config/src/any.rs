//! `google.protobuf.Any` payloads: unpacking into envoy-types structs, `TypedStruct` included.

use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};
use prost_reflect::{DynamicMessage, MapKey, ReflectMessage, Value as Pb};
use serde_json::{Map, Number, Value};

use crate::{
    descriptors::{self, TYPED_STRUCTS},
    error::{ConfigError, ErrorKind},
    parse::decode::{self, Source, type_url_name},
};

/// Unpacks an extension config (`typed_config`) into `T`.
///
/// Like Envoy, only the message name after the last `/` of the type URL counts (the host part is
/// ignored). A `xds.type.v3.TypedStruct` or `udpa.type.v1.TypedStruct` is accepted in place of
/// `T` when its `type_url` names `T`: its `value` is decoded as `T` with the bootstrap's rules
/// (unknown fields rejected) and then checked against `validate.rules`. Error paths are relative
/// to the Any (`value.suppress_envoy_headers`).
pub fn unpack<T: Message + Name + Default>(any: &Any) -> Result<T, ConfigError> {
    let _lease = crate::descriptors::lease();
    let want = T::full_name();
    let got = type_url_name(&any.type_url)
        .map_err(|why| ConfigError::new(ErrorKind::TypeMismatch, "", why))?;
    if TYPED_STRUCTS.contains(&got) {
        let msg = DynamicMessage::decode(descriptors::message(got)?, any.value.as_slice())
            .map_err(|e| {
                ConfigError::new(
                    ErrorKind::InvalidValue,
                    "",
                    format!("undecodable {got}: {e}"),
                )
            })?;
        let (inner_url, value) = typed_struct_parts(&msg);
        let inner = type_url_name(&inner_url)
            .map_err(|why| ConfigError::new(ErrorKind::TypeMismatch, "type_url", why))?;
        if inner != want {
            return Err(mismatch(&format!("a TypedStruct of {inner}"), &want));
        }
        let desc = descriptors::message(&want)?;
        let dynamic = decode::decode(&desc, &value, Source::Yaml).map_err(|e| e.under("value"))?;
        crate::pgv::validate(&dynamic).map_err(|e| e.under("value"))?;
        return dynamic.transcode_to::<T>().map_err(|e| {
            ConfigError::new(ErrorKind::Internal, "", format!("converting {want}: {e}"))
        });
    }
    if got != want {
        return Err(mismatch(got, &want));
    }
    T::decode(any.value.as_slice()).map_err(|e| {
        ConfigError::new(
            ErrorKind::InvalidValue,
            "",
            format!("undecodable {want}: {e}"),
        )
    })
}

fn mismatch(got: &str, want: &str) -> ConfigError {
    ConfigError::new(
        ErrorKind::TypeMismatch,
        "",
        format!("typed_config is {got}, expected {want}"),
    )
}

/// What an `Any` holds, decoded.
pub(crate) enum PayloadKind {
    /// The message the type URL names.
    Plain(DynamicMessage),
    /// The message a `TypedStruct`'s `type_url` names, decoded from its `value`.
    TypedStruct(DynamicMessage),
}

/// Decodes the payload of a dynamic `Any`; `None` for an empty Any.
pub(crate) fn payload_of(any: &DynamicMessage) -> Result<Option<PayloadKind>, ConfigError> {
    let url = any
        .get_field_by_name("type_url")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    if url.is_empty() {
        return Ok(None);
    }
    let name =
        type_url_name(&url).map_err(|why| ConfigError::new(ErrorKind::InvalidValue, "", why))?;
    let bytes = any
        .get_field_by_name("value")
        .and_then(|v| v.as_bytes().cloned())
        .unwrap_or_default();
    let desc = descriptors::find(name)?.ok_or_else(|| {
        ConfigError::new(ErrorKind::UnknownType, "", format!("unknown type {url:?}"))
    })?;
    let msg = DynamicMessage::decode(desc, bytes).map_err(|e| {
        ConfigError::new(
            ErrorKind::InvalidValue,
            "",
            format!("undecodable {name}: {e}"),
        )
    })?;
    if !TYPED_STRUCTS.contains(&name) {
        return Ok(Some(PayloadKind::Plain(msg)));
    }
    let (inner_url, value) = typed_struct_parts(&msg);
    let inner = type_url_name(&inner_url)
        .map_err(|why| ConfigError::new(ErrorKind::InvalidValue, "type_url", why))?;
    let desc = descriptors::find(inner)?.ok_or_else(|| {
        ConfigError::new(
            ErrorKind::UnknownType,
            "type_url",
            format!("unknown type {inner_url:?}"),
        )
    })?;
    // Source::Yaml: the value may have come from YAML, whose conversions are a superset.
    let payload = decode::decode(&desc, &value, Source::Yaml).map_err(|e| e.under("value"))?;
    Ok(Some(PayloadKind::TypedStruct(payload)))
}

/// `(type_url, value as JSON)` of a dynamic TypedStruct.
fn typed_struct_parts(msg: &DynamicMessage) -> (String, Value) {
    let url = msg
        .get_field_by_name("type_url")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let value = msg
        .get_field_by_name("value")
        .and_then(|v| v.as_message().map(struct_to_json))
        .unwrap_or_else(|| Value::Object(Map::new()));
    (url, value)
}

/// A `google.protobuf.Struct` (or `Value`, `ListValue`) as the JSON it stands for.
pub(crate) fn struct_to_json(msg: &DynamicMessage) -> Value {
    match msg.descriptor().full_name() {
        "google.protobuf.Struct" => {
            let mut out = Map::new();
            if let Some(fields) = msg.get_field_by_name("fields")
                && let Some(map) = fields.as_map()
            {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| key_str(a.0).cmp(key_str(b.0)));
                for (k, v) in entries {
                    if let Some(m) = v.as_message() {
                        out.insert(key_str(k).to_owned(), struct_to_json(m));
                    }
                }
            }
            Value::Object(out)
        }
        "google.protobuf.ListValue" => Value::Array(
            msg.get_field_by_name("values")
                .and_then(|v| {
                    v.as_list().map(|items| {
                        items
                            .iter()
                            .filter_map(Pb::as_message)
                            .map(struct_to_json)
                            .collect()
                    })
                })
                .unwrap_or_default(),
        ),
        _ => {
            let Some((field, value)) = msg.fields().next() else {
                return Value::Null;
            };
            match (field.name(), value) {
                ("bool_value", Pb::Bool(b)) => Value::Bool(*b),
                ("number_value", Pb::F64(f)) => number(*f),
                ("string_value", Pb::String(s)) => Value::String(s.clone()),
                ("struct_value" | "list_value", Pb::Message(m)) => struct_to_json(m),
                _ => Value::Null,
            }
        }
    }
}

/// Integral doubles become JSON integers again, so `port_value: 80` survives a Struct round trip.
fn number(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Value::Number(Number::from(f as i64))
    } else {
        Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

fn key_str(k: &MapKey) -> &str {
    match k {
        MapKey::String(s) => s,
        _ => "",
    }
}
