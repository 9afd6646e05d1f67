//! Envoy bootstrap files (YAML or JSON) into envoy-types' `Bootstrap`, with Envoy's verdicts.

pub(crate) mod decode;

use std::path::Path;

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use prost::Name;
use serde_json::Value;
use weft_yaml::FieldLines;

use crate::{
    descriptors,
    error::{ConfigError, ErrorKind},
    pgv,
};

use self::decode::Source;

/// Parses an Envoy v3 bootstrap, accepting and rejecting what `envoy --mode validate` does at the
/// parsing stage.
///
/// As in Envoy, the format follows the file name: `.yaml`/`.yml` (any case) is YAML, `.pb_text`
/// and `.pb` are text and binary protobuf (not supported by weft), anything else is JSON. Unknown
/// fields are rejected at every depth, both field spellings (`stat_prefix`, `statPrefix`) are
/// accepted, every `Any` is resolved by its `@type` (a `TypedStruct` by its `type_url`) and
/// checked the same way, and `validate.rules` constraints are enforced (see [`crate::pgv`]).
///
/// Two deliberate differences from Envoy: a YAML file must hold exactly one document (Envoy
/// silently ignores every document after the first), and duplicate YAML keys are errors
/// (Envoy keeps the last one). Both are mistakes we would rather report than guess about.
pub fn parse_bootstrap(path: &Path, text: &str) -> Result<Bootstrap, ConfigError> {
    let _lease = crate::descriptors::lease();
    let locate = |mut e: ConfigError, lines: Option<&FieldLines>| {
        if e.line.is_none() {
            e.line = lines.and_then(|l| l.line_of(&e.path));
        }
        e.file = Some(path.to_owned());
        e
    };
    let (value, lines, source) = read_document(path, text).map_err(|e| locate(e, None))?;
    let lines = lines.as_ref();
    let desc = descriptors::message(&Bootstrap::full_name()).map_err(|e| locate(e, lines))?;
    let dynamic = decode::decode(&desc, &value, source).map_err(|e| locate(e, lines))?;
    pgv::check(&dynamic, pgv::Profile::Envoy).map_err(|v| {
        let e = ConfigError::new(ErrorKind::Constraint, v.path_as_written(&value), v.message);
        locate(e, lines)
    })?;
    // Field numbers are shared, so re-encoding into the prost struct is exact.
    dynamic.transcode_to::<Bootstrap>().map_err(|e| {
        let e = ConfigError::new(
            ErrorKind::Internal,
            "",
            format!("converting to Bootstrap: {e}"),
        );
        locate(e, lines)
    })
}

/// The file's single document as JSON, the line of each field when known, and its syntax.
fn read_document(
    path: &Path,
    text: &str,
) -> Result<(Value, Option<FieldLines>, Source), ConfigError> {
    let name = path.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".pb_text") || name.ends_with(".pb") {
        return Err(ConfigError::new(
            ErrorKind::UnsupportedFormat,
            "",
            "Envoy reads .pb_text and .pb files as text and binary protobuf, which weft does not \
             support: convert the bootstrap to YAML or JSON",
        ));
    }
    let (value, lines, source) = if name.ends_with(".yaml") || name.ends_with(".yml") {
        let (value, lines) = yaml_document(text)?;
        (value, Some(lines), Source::Yaml)
    } else {
        // Like Envoy, every other name is JSON (a YAML file called `bootstrap.conf` is an
        // error). weft-yaml reads JSON too; we only borrow its line map.
        let value: Value = serde_json::from_str(text).map_err(|e| {
            let mut err = ConfigError::new(
                ErrorKind::Syntax,
                "",
                format!(
                    "invalid JSON ({e}){}",
                    if name.ends_with(".json") {
                        ""
                    } else {
                        "; files not named .yaml or .yml are read as JSON, as Envoy does"
                    }
                ),
            );
            err.line = Some(e.line());
            err
        })?;
        let lines = weft_yaml::parse_documents(text)
            .into_iter()
            .next()
            .and_then(Result::ok)
            .map(|d| d.fields);
        (value, lines, Source::Json)
    };
    match value {
        Value::Object(_) => Ok((value, lines, source)),
        Value::Null => Err(ConfigError::new(
            ErrorKind::Syntax,
            "",
            "the file holds no configuration",
        )),
        other => Err(ConfigError::new(
            ErrorKind::Syntax,
            "",
            format!(
                "a bootstrap must be a mapping of fields, found {}",
                match other {
                    Value::Array(_) => "a list",
                    _ => "a single value",
                }
            ),
        )),
    }
}

fn yaml_document(text: &str) -> Result<(Value, FieldLines), ConfigError> {
    let mut documents = Vec::new();
    for doc in weft_yaml::parse_documents(text) {
        let doc = doc.map_err(|e| {
            let mut err = ConfigError::new(
                ErrorKind::Syntax,
                "",
                format!("invalid YAML: {}", e.message),
            );
            err.line = Some(e.line);
            err
        })?;
        // Empty documents (a trailing `---`) carry nothing; Envoy skips them too.
        if !doc.value.is_null() {
            documents.push(doc);
        }
    }
    let mut documents = documents.into_iter();
    let Some(first) = documents.next() else {
        return Ok((Value::Null, FieldLines::default()));
    };
    if let Some(second) = documents.next() {
        let mut err = ConfigError::new(
            ErrorKind::Syntax,
            "",
            "a bootstrap file must hold one YAML document, this one holds more (Envoy would \
             silently use only the first)",
        );
        err.line = Some(second.line);
        return Err(err);
    }
    Ok((first.value, first.fields))
}
