//! Metrics and debug endpoints, on istiod's monitoring port (15014):
//!
//! - `/metrics`: Prometheus text with istiod's metric names (`pilot_xds`,
//!   `pilot_xds_pushes{type}`, `pilot_total_xds_rejects{type}`, `pilot_services`,
//!   `pilot_virt_services`) plus weft's (`weft_config_*`, `weft_xds_sent_bytes{type,mode}`).
//!   Written by hand rather than with a metrics library because istiod's counters carry no
//!   `_total` suffix and dashboards built for istiod expect the exact names.
//! - `/ready`: 200 once the first configuration was loaded.
//! - `/debug/config_status`: what is served, what was rejected and why.
//! - `/debug/syncz`: every connected proxy with SYNCED/STALE/NOT SENT per type.
//! - `/debug/config_dump?proxyID=<id>`: the resources a connected proxy is being served, as
//!   Envoy's admin `ConfigDump` JSON.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prost::Message;
use serde_json::{Value, json};
use weft_xds::ads::{AdsServer, ConnectionStatus};
use weft_xds::resources::TypeUrl;

use crate::store::SharedStatus;

#[derive(Debug, Clone)]
struct AppState {
    ads: AdsServer,
    status: SharedStatus,
}

/// The monitoring router.
pub fn router(ads: AdsServer, status: SharedStatus) -> Router {
    Router::new()
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/debug/config_status", get(config_status))
        .route("/debug/syncz", get(syncz))
        .route("/debug/config_dump", get(config_dump))
        .with_state(AppState { ads, status })
}

async fn ready(State(st): State<AppState>) -> Response {
    if st.status.read().reloads > 0 {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "loading configuration\n").into_response()
    }
}

async fn config_status(State(st): State<AppState>) -> Response {
    let status = st.status.read().clone();
    axum::Json(status).into_response()
}

/// One connected proxy, as `weft proxy-status` prints it.
pub fn sync_json(c: &ConnectionStatus) -> Value {
    let mut types = serde_json::Map::new();
    for t in TypeUrl::ALL {
        let s = c.types.get(&t).cloned().unwrap_or_default();
        types.insert(
            t.short().to_owned(),
            json!({
                "status": s.sync().as_str(),
                "sent_version": s.sent_version,
                "acked_version": s.acked_version,
                "sent_nonce": s.sent_nonce,
                "acked_nonce": s.acked_nonce,
                "resources": s.resources_sent,
                "last_nack": s.last_nack,
                "rejections": s.rejections,
            }),
        );
    }
    json!({
        "proxy": c.node.id,
        "namespace": c.node.namespace,
        "workload": c.node.workload,
        "stream": c.stream,
        "mode": c.mode.as_str(),
        "peer": c.peer.map(|p| p.to_string()),
        "generation": c.generation,
        "types": types,
    })
}

async fn syncz(State(st): State<AppState>) -> Response {
    let list: Vec<Value> = st.ads.connections().iter().map(sync_json).collect();
    axum::Json(json!({ "generation": st.ads.generation(), "proxies": list })).into_response()
}

async fn config_dump(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(id) = q.get("proxyID") else {
        return (StatusCode::BAD_REQUEST, "missing ?proxyID=<node id>\n").into_response();
    };
    let conns = st.ads.connections();
    let Some(conn) = conns
        .iter()
        .find(|c| c.node.id == *id || id_matches(&c.node.id, id))
    else {
        return (
            StatusCode::NOT_FOUND,
            format!("no connected proxy {id:?} (see /debug/syncz)\n"),
        )
            .into_response();
    };
    let resources = st.ads.resources_for(&conn.node).await;
    let version = |t: TypeUrl| {
        conn.types
            .get(&t)
            .map(|s| s.sent_version.clone())
            .unwrap_or_default()
    };
    let clusters: Vec<Value> = resources
        .clusters
        .iter()
        .map(|c| json!({"version_info": version(TypeUrl::Cluster), "cluster": to_json("envoy.config.cluster.v3.Cluster", c)}))
        .collect();
    let listeners: Vec<Value> = resources
        .listeners
        .iter()
        .map(|l| json!({"name": l.name, "active_state": {"version_info": version(TypeUrl::Listener), "listener": to_json("envoy.config.listener.v3.Listener", l)}}))
        .collect();
    let routes: Vec<Value> = resources
        .routes
        .iter()
        .map(|r| json!({"version_info": version(TypeUrl::Route), "route_config": to_json("envoy.config.route.v3.RouteConfiguration", r)}))
        .collect();
    let endpoints: Vec<Value> = resources
        .endpoints
        .iter()
        .map(|e| json!({"version_info": version(TypeUrl::Endpoint), "endpoint_config": to_json("envoy.config.endpoint.v3.ClusterLoadAssignment", e)}))
        .collect();
    const ADMIN: &str = "type.googleapis.com/envoy.admin.v3.";
    axum::Json(json!({"configs": [
        {"@type": format!("{ADMIN}ClustersConfigDump"), "dynamic_active_clusters": clusters},
        {"@type": format!("{ADMIN}ListenersConfigDump"), "dynamic_listeners": listeners},
        {"@type": format!("{ADMIN}RoutesConfigDump"), "dynamic_route_configs": routes},
        {"@type": format!("{ADMIN}EndpointsConfigDump"), "dynamic_endpoint_configs": endpoints},
    ]}))
    .into_response()
}

/// `name.namespace` (istioctl's short proxy form) matches an Istio node id
/// `sidecar~ip~name.namespace~...`.
fn id_matches(node_id: &str, short: &str) -> bool {
    node_id.split('~').nth(2) == Some(short)
}

/// A protobuf message as Envoy's JSON (proto field names, `Any`s expanded with `@type`).
fn to_json<M: Message>(full_name: &str, m: &M) -> Value {
    weft_proxy_config::message_json(full_name, &m.encode_to_vec())
}

async fn metrics(State(st): State<AppState>) -> Response {
    let mut out = String::new();
    let stats = st.ads.stats();
    let conns = st.ads.connections();
    let status = st.status.read().clone();
    let mesh = st.ads.mesh();

    gauge(
        &mut out,
        "pilot_xds",
        "Connected xDS streams.",
        &[("", conns.len() as u64)],
    );
    let per_type = |arr: &[std::sync::atomic::AtomicU64; 4]| -> Vec<(String, u64)> {
        TypeUrl::ALL
            .iter()
            .enumerate()
            .map(|(i, t)| (t.short().to_lowercase(), arr[i].load(Ordering::Relaxed)))
            .collect()
    };
    family(
        &mut out,
        "pilot_xds_pushes",
        "counter",
        "xDS responses sent, by type.",
        "type",
        &per_type(&stats.pushes),
    );
    family(
        &mut out,
        "pilot_total_xds_rejects",
        "counter",
        "xDS responses proxies rejected (NACK), by type.",
        "type",
        &per_type(&stats.rejects),
    );
    let _ = writeln!(
        out,
        "# HELP weft_xds_sent_bytes Bytes of xDS responses sent, by type and protocol variant."
    );
    let _ = writeln!(out, "# TYPE weft_xds_sent_bytes counter");
    for (mode, arr) in [("sotw", &stats.sotw_bytes), ("delta", &stats.delta_bytes)] {
        for (t, v) in per_type(arr) {
            let _ = writeln!(
                out,
                "weft_xds_sent_bytes{{type=\"{t}\",mode=\"{mode}\"}} {v}"
            );
        }
    }
    gauge(
        &mut out,
        "pilot_services",
        "Services in the registry.",
        &[("", mesh.registry.services().len() as u64)],
    );
    let vs = mesh
        .config
        .of::<weft_api::networking::VirtualService>()
        .count() as u64;
    gauge(
        &mut out,
        "pilot_virt_services",
        "VirtualServices served.",
        &[("", vs)],
    );
    gauge(
        &mut out,
        "weft_config_generation",
        "Mesh generation being served.",
        &[("", status.generation)],
    );
    gauge(
        &mut out,
        "weft_config_resources",
        "Istio resources served.",
        &[("", status.resources as u64)],
    );
    gauge(
        &mut out,
        "weft_config_rejected",
        "Problems in the configuration on disk that are not being served (see /debug/config_status).",
        &[("", status.rejected.len() as u64)],
    );
    family(
        &mut out,
        "weft_config_reloads",
        "counter",
        "Configuration reloads.",
        "result",
        &[
            (
                "ok".to_owned(),
                status.reloads - status.reloads_with_rejections,
            ),
            ("rejected".to_owned(), status.reloads_with_rejections),
        ],
    );
    family(
        &mut out,
        "weft_xds_refused_streams",
        "counter",
        "Streams refused for an unusable node.",
        "",
        &[(String::new(), stats.refused_streams.load(Ordering::Relaxed))],
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

fn gauge(out: &mut String, name: &str, help: &str, values: &[(&str, u64)]) {
    let v: Vec<(String, u64)> = values.iter().map(|(l, v)| (l.to_string(), *v)).collect();
    family(out, name, "gauge", help, "", &v);
}

fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    label: &str,
    values: &[(String, u64)],
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (l, v) in values {
        if label.is_empty() {
            let _ = writeln!(out, "{name} {v}");
        } else {
            let _ = writeln!(out, "{name}{{{label}=\"{l}\"}} {v}");
        }
    }
}
