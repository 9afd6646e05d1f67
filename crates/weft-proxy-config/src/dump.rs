//! `/config_dump`: the bootstrap and its static resources as Envoy's admin `ConfigDump` JSON,
//! so tools written for Envoy can read weft's.

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use prost::Message;
use prost_reflect::{DynamicMessage, SerializeOptions};
use serde_json::{Value, json};

const ADMIN: &str = "type.googleapis.com/envoy.admin.v3.";

/// Envoy's `ConfigDump` for a static bootstrap: `BootstrapConfigDump`, `ClustersConfigDump`,
/// `ListenersConfigDump` and `RoutesConfigDump` (inline route configs), with `last_updated`.
pub fn config_dump(bootstrap: &Bootstrap, last_updated: &str) -> Value {
    let to_json = |name: &str, bytes: Vec<u8>| -> Value {
        let Ok(desc) = crate::message(name) else {
            return Value::Null;
        };
        match DynamicMessage::decode(desc, bytes.as_slice()) {
            Ok(m) => {
                let opts = SerializeOptions::new().use_proto_field_name(true);
                m.serialize_with_options(serde_json::value::Serializer, &opts)
                    .unwrap_or(Value::Null)
            }
            Err(_) => Value::Null,
        }
    };
    let typed = |ty: &str, mut v: Value| -> Value {
        if let Value::Object(m) = &mut v {
            let mut out = serde_json::Map::new();
            out.insert(
                "@type".into(),
                Value::String(format!("type.googleapis.com/{ty}")),
            );
            out.extend(std::mem::take(m));
            return Value::Object(out);
        }
        v
    };
    let boot = to_json(
        "envoy.config.bootstrap.v3.Bootstrap",
        bootstrap.encode_to_vec(),
    );
    let (clusters, listeners) = match &bootstrap.static_resources {
        Some(sr) => (
            sr.clusters
                .iter()
                .map(|c| {
                    json!({
                        "cluster": typed("envoy.config.cluster.v3.Cluster", to_json("envoy.config.cluster.v3.Cluster", c.encode_to_vec())),
                        "last_updated": last_updated,
                    })
                })
                .collect::<Vec<_>>(),
            sr.listeners
                .iter()
                .map(|l| {
                    json!({
                        "listener": typed("envoy.config.listener.v3.Listener", to_json("envoy.config.listener.v3.Listener", l.encode_to_vec())),
                        "last_updated": last_updated,
                    })
                })
                .collect::<Vec<_>>(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    json!({
        "configs": [
            {"@type": format!("{ADMIN}BootstrapConfigDump"), "bootstrap": boot, "last_updated": last_updated},
            {"@type": format!("{ADMIN}ClustersConfigDump"), "static_clusters": clusters},
            {"@type": format!("{ADMIN}ListenersConfigDump"), "static_listeners": listeners},
            {"@type": format!("{ADMIN}RoutesConfigDump")},
            {"@type": format!("{ADMIN}SecretsConfigDump")},
        ]
    })
}
