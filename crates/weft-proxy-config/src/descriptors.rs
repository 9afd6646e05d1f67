//! The protobuf descriptors of every Envoy API type, embedded at build time (see `build.rs`).

use std::sync::LazyLock;

use prost_reflect::{
    DescriptorPool, MessageDescriptor,
    prost_types::{
        DescriptorProto, FieldDescriptorProto, FileDescriptorProto,
        field_descriptor_proto::{Label, Type},
    },
};

use crate::error::{ConfigError, ErrorKind};

/// Encoded `google.protobuf.FileDescriptorSet` of envoy-types, without source info.
static DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

/// Full names of the two `TypedStruct` messages Envoy accepts in place of any extension config.
pub(crate) const TYPED_STRUCTS: [&str; 2] = ["xds.type.v3.TypedStruct", "udpa.type.v1.TypedStruct"];

/// Decoded once, on first use: ~160 ms in a debug build (`tests/api.rs` prints it).
static POOL: LazyLock<Result<DescriptorPool, String>> = LazyLock::new(build_pool);

/// The descriptor pool holding every Envoy API message, `validate.rules` included.
pub fn pool() -> Result<&'static DescriptorPool, ConfigError> {
    POOL.as_ref().map_err(|e| {
        ConfigError::new(
            ErrorKind::Internal,
            "",
            format!("embedded Envoy descriptors are unusable (a build problem): {e}"),
        )
    })
}

/// The descriptor of the message named `full_name` (`envoy.config.bootstrap.v3.Bootstrap`).
pub fn message(full_name: &str) -> Result<MessageDescriptor, ConfigError> {
    pool()?.get_message_by_name(full_name).ok_or_else(|| {
        ConfigError::new(
            ErrorKind::Internal,
            "",
            format!("message {full_name} is not among the embedded descriptors"),
        )
    })
}

fn build_pool() -> Result<DescriptorPool, String> {
    let mut pool = DescriptorPool::decode(DESCRIPTOR_SET).map_err(|e| e.to_string())?;
    // envoy-types ships neither xds/type/v3/typed_struct.proto nor udpa/type/v1/typed_struct.proto,
    // yet Envoy accepts a TypedStruct wherever an extension's typed_config is expected.
    for full_name in TYPED_STRUCTS {
        if pool.get_message_by_name(full_name).is_none() {
            pool.add_file_descriptor_proto(typed_struct_file(full_name))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(pool)
}

/// `message TypedStruct { string type_url = 1; google.protobuf.Struct value = 2; }`.
fn typed_struct_file(full_name: &str) -> FileDescriptorProto {
    let package = full_name.trim_end_matches(".TypedStruct");
    let field =
        |name: &str, json: &str, number, ty: Type, type_name: Option<&str>| FieldDescriptorProto {
            name: Some(name.into()),
            json_name: Some(json.into()),
            number: Some(number),
            label: Some(Label::Optional as i32),
            r#type: Some(ty as i32),
            type_name: type_name.map(Into::into),
            ..Default::default()
        };
    FileDescriptorProto {
        name: Some(format!("{}/typed_struct.proto", package.replace('.', "/"))),
        package: Some(package.into()),
        dependency: vec!["google/protobuf/struct.proto".into()],
        syntax: Some("proto3".into()),
        message_type: vec![DescriptorProto {
            name: Some("TypedStruct".into()),
            field: vec![
                field("type_url", "typeUrl", 1, Type::String, None),
                field(
                    "value",
                    "value",
                    2,
                    Type::Message,
                    Some(".google.protobuf.Struct"),
                ),
            ],
            ..Default::default()
        }],
        ..Default::default()
    }
}
