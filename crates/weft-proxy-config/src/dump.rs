//! `/config_dump`: the bootstrap and its static resources as Envoy's admin `ConfigDump` JSON,
//! so tools written for Envoy can read weft's.

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use prost::Message;
use prost_reflect::{DynamicMessage, SerializeOptions};
use serde_json::{Value, json};

const ADMIN: &str = "type.googleapis.com/envoy.admin.v3.";

/// A protobuf message (`full_name`, encoded as `bytes`) as Envoy renders it in JSON: proto
/// field names, `Any`s expanded with their `@type`. `null` when it cannot be rendered.
pub fn message_json(full_name: &str, bytes: &[u8]) -> Value {
    let _lease = crate::descriptors::lease();
    let Ok(desc) = crate::message(full_name) else {
        return Value::Null;
    };
    match DynamicMessage::decode(desc, bytes) {
        Ok(m) => {
            let opts = SerializeOptions::new().use_proto_field_name(true);
            m.serialize_with_options(serde_json::value::Serializer, &opts)
                .unwrap_or(Value::Null)
        }
        Err(_) => Value::Null,
    }
}

/// What an xDS client is running, for [`config_dump_with`]: each resource with the version of
/// the response that brought it.
#[derive(Debug, Clone, Default)]
pub struct DynamicDump {
    /// CDS: (version, cluster).
    pub clusters: Vec<(String, envoy_types::pb::envoy::config::cluster::v3::Cluster)>,
    /// LDS: (version, listener).
    pub listeners: Vec<(
        String,
        envoy_types::pb::envoy::config::listener::v3::Listener,
    )>,
    /// RDS: (version, route configuration).
    pub routes: Vec<(
        String,
        envoy_types::pb::envoy::config::route::v3::RouteConfiguration,
    )>,
    /// EDS: (version, assignment).
    pub endpoints: Vec<(
        String,
        envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment,
    )>,
}

/// Envoy's `ConfigDump` for a bootstrap plus what an xDS client runs: `dynamic_active_clusters`,
/// `dynamic_listeners` (active state), `dynamic_route_configs` and `EndpointsConfigDump`'s
/// `dynamic_endpoint_configs`, as `istioctl proxy-config` reads them from Envoy.
pub fn config_dump_with(bootstrap: &Bootstrap, dynamic: &DynamicDump, last_updated: &str) -> Value {
    let _lease = crate::descriptors::lease();
    let mut dump = config_dump(bootstrap, last_updated);
    let typed = |ty: &str, v: Value| -> Value { with_type(&format!("envoy.config.{ty}"), v) };
    let clusters: Vec<Value> = dynamic
        .clusters
        .iter()
        .map(|(v, c)| json!({"version_info": v, "cluster": typed("cluster.v3.Cluster", message_json("envoy.config.cluster.v3.Cluster", &c.encode_to_vec())), "last_updated": last_updated}))
        .collect();
    let listeners: Vec<Value> = dynamic
        .listeners
        .iter()
        .map(|(v, l)| json!({"name": l.name, "active_state": {"version_info": v, "listener": typed("listener.v3.Listener", message_json("envoy.config.listener.v3.Listener", &l.encode_to_vec())), "last_updated": last_updated}}))
        .collect();
    let routes: Vec<Value> = dynamic
        .routes
        .iter()
        .map(|(v, r)| json!({"version_info": v, "route_config": typed("route.v3.RouteConfiguration", message_json("envoy.config.route.v3.RouteConfiguration", &r.encode_to_vec())), "last_updated": last_updated}))
        .collect();
    let endpoints: Vec<Value> = dynamic
        .endpoints
        .iter()
        .map(|(v, e)| json!({"version_info": v, "endpoint_config": typed("endpoint.v3.ClusterLoadAssignment", message_json("envoy.config.endpoint.v3.ClusterLoadAssignment", &e.encode_to_vec())), "last_updated": last_updated}))
        .collect();
    if let Some(configs) = dump.get_mut("configs").and_then(Value::as_array_mut) {
        for c in configs.iter_mut() {
            let ty = c
                .get("@type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let Some(obj) = c.as_object_mut() else {
                continue;
            };
            if ty.ends_with("ClustersConfigDump") {
                obj.insert(
                    "dynamic_active_clusters".into(),
                    Value::Array(clusters.clone()),
                );
            } else if ty.ends_with("ListenersConfigDump") {
                obj.insert("dynamic_listeners".into(), Value::Array(listeners.clone()));
            } else if ty.ends_with("RoutesConfigDump") {
                obj.insert("dynamic_route_configs".into(), Value::Array(routes.clone()));
            }
        }
        configs.push(json!({"@type": format!("{ADMIN}EndpointsConfigDump"), "dynamic_endpoint_configs": endpoints}));
    }
    dump
}

/// `v` with `"@type": "type.googleapis.com/<ty>"` first.
fn with_type(ty: &str, mut v: Value) -> Value {
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
}

/// Envoy's `ConfigDump` for a static bootstrap: `BootstrapConfigDump`, `ClustersConfigDump`,
/// `ListenersConfigDump` and `RoutesConfigDump` (inline route configs), with `last_updated`.
pub fn config_dump(bootstrap: &Bootstrap, last_updated: &str) -> Value {
    let _lease = crate::descriptors::lease();
    let to_json = |name: &str, bytes: Vec<u8>| -> Value { message_json(name, &bytes) };
    let typed = with_type;
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
