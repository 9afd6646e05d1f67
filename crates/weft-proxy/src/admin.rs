//! The admin interface, with Envoy's paths and formats so people and tools can read it:
//! `/ready`, `/server_info`, `/stats`, `/stats/prometheus`, `/clusters`, `/listeners`,
//! `/config_dump`, `POST /drain_listeners`, `POST /quitquitquit`.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::watch;

use crate::{Proxy, stats_export};

/// Server states, as `/ready` and `/server_info` report them.
pub mod server_state {
    /// Starting up.
    pub const PRE_INITIALIZING: u8 = 0;
    /// Serving.
    pub const LIVE: u8 = 1;
    /// Draining.
    pub const DRAINING: u8 = 2;
}

/// What the admin server needs from its host process.
pub struct AdminContext {
    /// The proxy.
    pub proxy: Arc<Proxy>,
    /// `server_state` value.
    pub state: AtomicU8,
    /// Produces the `/config_dump` document (Envoy's `ConfigDump` JSON).
    pub config_dump: Box<dyn Fn() -> serde_json::Value + Send + Sync>,
    /// Flipped by `/quitquitquit`: the process should exit.
    pub quit: watch::Sender<bool>,
    /// How long `/drain_listeners` gives connections.
    pub drain_time: Duration,
    /// `node.id` and `node.cluster`.
    pub node: (String, String),
}

impl std::fmt::Debug for AdminContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminContext")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// Serves the admin interface on `addr` until the process exits. Returns the bound address.
pub async fn serve(addr: SocketAddr, cx: Arc<AdminContext>) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/ready", get(ready))
        .route("/server_info", get(server_info))
        .route("/stats", get(stats))
        .route("/stats/prometheus", get(prometheus))
        .route("/clusters", get(clusters))
        .route("/listeners", get(listeners))
        .route("/config_dump", get(config_dump))
        .route("/drain_listeners", post(drain_listeners))
        .route("/quitquitquit", post(quit))
        .with_state(cx);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "admin server stopped");
        }
    });
    Ok(bound)
}

type Cx = State<Arc<AdminContext>>;

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
        body,
    )
        .into_response()
}

fn state_name(s: u8) -> &'static str {
    match s {
        server_state::LIVE => "LIVE",
        server_state::DRAINING => "DRAINING",
        _ => "PRE_INITIALIZING",
    }
}

async fn ready(State(cx): Cx) -> Response {
    let s = cx.state.load(Ordering::Relaxed);
    let status = if s == server_state::LIVE {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    text(status, format!("{}\n", state_name(s)))
}

async fn server_info(State(cx): Cx) -> Response {
    let body = serde_json::json!({
        "version": format!("weft/{}", env!("CARGO_PKG_VERSION")),
        "state": state_name(cx.state.load(Ordering::Relaxed)),
        "node": {"id": cx.node.0, "cluster": cx.node.1},
    });
    json(&body)
}

fn json(v: &serde_json::Value) -> Response {
    let body = serde_json::to_string_pretty(v).unwrap_or_default();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

async fn stats(State(cx): Cx) -> Response {
    text(
        StatusCode::OK,
        stats_export::render_text(&stats_export::collect(&cx.proxy)),
    )
}

async fn prometheus(State(cx): Cx) -> Response {
    let body = stats_export::render_prometheus(&stats_export::collect(&cx.proxy));
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        body,
    )
        .into_response()
}

/// Envoy's `/clusters` text: breaker settings, then per host its stats and health flags.
async fn clusters(State(cx): Cx) -> Response {
    let mut out = String::new();
    let all = cx.proxy.state().clusters();
    let mut list: Vec<_> = all.iter().collect();
    list.sort_by(|a, b| a.name().cmp(b.name()));
    for c in list {
        let name = c.name();
        let cb = c.shared.config().circuit_breakers;
        let _ = writeln!(
            out,
            "{name}::default_priority::max_connections::{}",
            cb.max_connections
        );
        let _ = writeln!(
            out,
            "{name}::default_priority::max_pending_requests::{}",
            cb.max_pending_requests
        );
        let _ = writeln!(
            out,
            "{name}::default_priority::max_requests::{}",
            cb.max_requests
        );
        let _ = writeln!(
            out,
            "{name}::default_priority::max_retries::{}",
            cb.max_retries
        );
        for h in c.host_set().hosts.iter() {
            let a = h.address;
            let _ = writeln!(
                out,
                "{name}::{a}::rq_active::{}",
                h.active_requests.load(Ordering::Relaxed)
            );
            let _ = writeln!(out, "{name}::{a}::weight::{}", h.weight());
            let _ = writeln!(out, "{name}::{a}::region::{}", h.locality.region);
            let _ = writeln!(out, "{name}::{a}::zone::{}", h.locality.zone);
            let _ = writeln!(out, "{name}::{a}::sub_zone::{}", h.locality.sub_zone);
            let _ = writeln!(out, "{name}::{a}::health_flags::{}", h.health_flags_text());
        }
    }
    text(StatusCode::OK, out)
}

async fn listeners(State(cx): Cx) -> Response {
    let mut out = String::new();
    for (name, addr) in cx.proxy.listeners() {
        let _ = writeln!(out, "{name}::{addr}");
    }
    text(StatusCode::OK, out)
}

async fn config_dump(State(cx): Cx) -> Response {
    json(&(cx.config_dump)())
}

async fn drain_listeners(State(cx): Cx) -> Response {
    cx.state.store(server_state::DRAINING, Ordering::Relaxed);
    let proxy = cx.proxy.clone();
    let grace = cx.drain_time;
    tokio::spawn(async move { proxy.drain(grace).await });
    text(StatusCode::OK, "OK\n".to_owned())
}

async fn quit(State(cx): Cx) -> Response {
    let _ = cx.quit.send(true);
    text(StatusCode::OK, "OK\n".to_owned())
}
