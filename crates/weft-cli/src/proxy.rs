//! `weft proxy --config FILE`: run the data plane from an Envoy v3 bootstrap, reload it when the
//! file changes (keeping the running configuration when the new one is invalid), and drain on
//! SIGTERM. A bootstrap with ADS `dynamic_resources` (or `--control-plane HOST:PORT`, which
//! builds such a bootstrap) takes the rest of its configuration from the control plane.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};
use weft_proxy::Proxy;
use weft_proxy::admin::{AdminContext, server_state};
use weft_proxy_config::model::ProxyConfig;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["config", "control_plane"])))]
pub struct Args {
    /// Envoy v3 bootstrap (YAML or JSON), as Envoy's `-c`. With `dynamic_resources` (ADS),
    /// the rest of the configuration comes from the control plane.
    #[arg(
        short = 'c',
        long = "config",
        visible_alias = "config-path",
        value_name = "FILE"
    )]
    config: Option<PathBuf>,

    /// Fetch the configuration from this xDS control plane (ADS over plaintext gRPC), with a
    /// bootstrap built in memory the way Istio's agent builds istio-proxy's.
    #[arg(long, value_name = "HOST:PORT", requires_all = ["workload", "namespace"])]
    control_plane: Option<String>,

    /// With --control-plane: the workload (pod) name.
    #[arg(long, value_name = "NAME")]
    workload: Option<String>,

    /// With --control-plane: the workload's namespace.
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,

    /// With --control-plane: a workload's sidecar, or a gateway.
    #[arg(long = "type", value_enum, default_value_t = ProxyType::Sidecar)]
    proxy_type: ProxyType,

    /// With --control-plane: the workload's IP (node id and INSTANCE_IPS).
    #[arg(long, default_value = "127.0.0.1")]
    ip: std::net::IpAddr,

    /// With --control-plane: a workload label (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,

    /// With --control-plane: the workload's service account.
    #[arg(long, value_name = "SA", default_value = "default")]
    service_account: String,

    /// With --control-plane: where the admin interface listens.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:15000")]
    admin: std::net::SocketAddr,

    /// With --control-plane: the mesh cluster id (CLUSTER_ID).
    #[arg(long, value_name = "ID", default_value = "Kubernetes")]
    cluster_id: String,

    /// Worker threads (Envoy's `--concurrency`); defaults to the number of CPUs.
    #[arg(long)]
    concurrency: Option<usize>,

    /// Seconds connections get to finish when draining (Envoy's `--drain-time-s`).
    #[arg(long = "drain-time-s", default_value_t = 5)]
    drain_time_s: u64,

    /// Log level: trace, debug, info, warn, error.
    #[arg(short = 'l', long = "log-level", default_value = "info")]
    log_level: String,

    /// Check the configuration and exit (Envoy's `--mode validate`).
    #[arg(long)]
    validate: bool,
}

/// `--type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ProxyType {
    /// A workload's sidecar.
    Sidecar,
    /// A gateway.
    Router,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

/// Where the bootstrap comes from.
#[derive(Debug, Clone)]
enum Source {
    File(PathBuf),
    /// Built from the command line; the text is JSON.
    Generated(String),
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::Generated(_) => "the --control-plane bootstrap".to_owned(),
        }
    }
}

struct Loaded {
    bootstrap: envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap,
    config: ProxyConfig,
    /// Relative file names in the configuration resolve against this.
    base: PathBuf,
}

fn load(source: &Source) -> Result<Loaded, String> {
    let (path, text, base) = match source {
        Source::File(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let base = path.parent().unwrap_or(Path::new(".")).to_owned();
            (path.clone(), text, base)
        }
        Source::Generated(json) => (
            PathBuf::from("control-plane-bootstrap.json"),
            json.clone(),
            std::env::current_dir().map_err(|e| format!("current directory: {e}"))?,
        ),
    };
    let bootstrap = weft_proxy_config::parse_bootstrap(&path, &text).map_err(|e| e.to_string())?;
    let config =
        weft_proxy_config::convert_bootstrap(&bootstrap, &base).map_err(|e| e.to_string())?;
    Ok(Loaded {
        bootstrap,
        config,
        base,
    })
}

/// The bootstrap `--control-plane` stands for: Istio's istio-proxy bootstrap reduced to what
/// weft reads. Node id `<type>~<ip>~<workload>.<ns>~<ns>.svc.cluster.local`, Istio's node
/// metadata, the `xds-grpc` cluster (HTTP/2) to the control plane, ADS for CDS and LDS, and
/// no initial fetch timeout (the proxy is not ready until the control plane answered).
fn generated_bootstrap(args: &Args, control_plane: &str) -> Result<String, String> {
    let (host, port) = control_plane
        .rsplit_once(':')
        .and_then(|(h, p)| {
            Some((
                h.trim_start_matches('[').trim_end_matches(']'),
                p.parse::<u16>().ok()?,
            ))
        })
        .ok_or_else(|| format!("--control-plane {control_plane:?} is not HOST:PORT"))?;
    let workload = args.workload.clone().unwrap_or_default();
    let namespace = args.namespace.clone().unwrap_or_default();
    let kind = match args.proxy_type {
        ProxyType::Sidecar => "sidecar",
        ProxyType::Router => "router",
    };
    let ip = args.ip;
    let labels: serde_json::Map<String, serde_json::Value> = args
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let discovery = if host.parse::<std::net::IpAddr>().is_ok() {
        "STATIC"
    } else {
        "STRICT_DNS"
    };
    let ads =
        serde_json::json!({"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"});
    let bootstrap = serde_json::json!({
        "node": {
            "id": format!("{kind}~{ip}~{workload}.{namespace}~{namespace}.svc.cluster.local"),
            "cluster": format!("{workload}.{namespace}"),
            "metadata": {
                "NAMESPACE": namespace,
                "WORKLOAD_NAME": workload,
                "INSTANCE_IPS": ip.to_string(),
                "LABELS": labels,
                "SERVICE_ACCOUNT": args.service_account,
                "CLUSTER_ID": args.cluster_id,
            },
        },
        "admin": {"address": {"socket_address": {
            "address": args.admin.ip().to_string(), "port_value": args.admin.port()}}},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": true,
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}],
            },
            "cds_config": ads,
            "lds_config": ads,
        },
        "static_resources": {"clusters": [{
            "name": "xds-grpc",
            "type": discovery,
            "connect_timeout": "1s",
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}},
                },
            },
            "load_assignment": {"cluster_name": "xds-grpc", "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}
            ]}]},
        }]},
    });
    serde_json::to_string_pretty(&bootstrap).map_err(|e| e.to_string())
}

fn source(args: &Args) -> Result<Source, String> {
    match (&args.config, &args.control_plane) {
        (Some(path), _) => Ok(Source::File(path.clone())),
        (None, Some(cp)) => generated_bootstrap(args, cp).map(Source::Generated),
        (None, None) => Err("give a bootstrap (-c FILE) or --control-plane HOST:PORT".to_owned()),
    }
}

pub fn run(args: Args) -> ExitCode {
    crate::init_logging(&args.log_level);
    let source = match source(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.validate {
        return match load(&source) {
            Ok(_) => {
                println!("configuration '{}' OK", source.describe());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let workers = args
        .concurrency
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    // One worker is one event loop, as Envoy's `--concurrency 1`: a current-thread runtime
    // serves it without the multi-threaded scheduler's cross-thread wakeups.
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers).thread_name("weft-worker");
        b
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args, source)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The data plane's own binary, when it sits next to the running one.
pub const DATAPLANE_BINARY: &str = "weft-dataplane";

/// Replaces this process with [`DATAPLANE_BINARY`] (from the directory of the running binary)
/// given `args`; returns only when there is no such binary or it cannot be run, and the caller
/// then runs the proxy in this process. The process keeps its pid (a supervisor, a test or
/// Kubernetes sees no difference); its memory is that of the smaller binary.
pub fn exec_dataplane(args: impl IntoIterator<Item = std::ffi::OsString>) {
    use std::os::unix::process::CommandExt;
    let Some(dataplane) = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(DATAPLANE_BINARY)))
        .filter(|path| path.is_file())
    else {
        return;
    };
    let err = std::process::Command::new(&dataplane)
        .arg0("weft proxy")
        .args(args)
        .exec();
    eprintln!(
        "warning: cannot run {}: {err}; running the proxy in this process",
        dataplane.display()
    );
}

/// How long the protobuf descriptors stay decoded after a configuration (bootstrap, reload, xDS
/// update, config dump) last used them.
const DESCRIPTORS_IDLE: Duration = Duration::from_secs(1);

/// Drops the decoded descriptors (~4 MB of heap, needed only to load a configuration) once
/// unused for [`DESCRIPTORS_IDLE`], and hands the freed pages back to the system: the proxy's
/// memory between configuration changes is what it needs to move traffic.
async fn release_descriptors_when_idle() {
    let mut tick = tokio::time::interval(DESCRIPTORS_IDLE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if weft_proxy_config::release_idle_descriptors(DESCRIPTORS_IDLE) {
            let trimmed = weft_malloc::trim();
            tracing::debug!(trimmed, "released the idle protobuf descriptors");
        }
    }
}

async fn serve(args: Args, source: Source) -> Result<(), String> {
    let loaded = load(&source)?;
    let proxy = Proxy::new();
    let admin_addr = loaded.config.admin.as_ref().map(|a| a.address);
    let node = (
        loaded.config.node.id.clone(),
        loaded.config.node.cluster.clone(),
    );
    let dynamic = weft_proxy_config::xds::ads_config(&loaded.bootstrap)
        .map_err(|e| e.to_string())?
        .is_some();
    let bootstrap = Arc::new(arc_swap::ArcSwap::from_pointee(loaded.bootstrap.clone()));
    // What the xDS client runs, once there is one (for /config_dump).
    let running: Arc<std::sync::OnceLock<watch::Receiver<Arc<weft_proxy_config::DynamicDump>>>> =
        Arc::default();
    let (quit_tx, mut quit_rx) = watch::channel(false);
    let drain_time = Duration::from_secs(args.drain_time_s);
    let admin = Arc::new(AdminContext {
        proxy: proxy.clone(),
        state: AtomicU8::new(server_state::PRE_INITIALIZING),
        config_dump: {
            let bootstrap = bootstrap.clone();
            let running = running.clone();
            Box::new(move || match running.get() {
                Some(dynamic) => weft_proxy_config::config_dump_with(
                    &bootstrap.load(),
                    &dynamic.borrow(),
                    &now_rfc3339(),
                ),
                None => weft_proxy_config::config_dump(&bootstrap.load(), &now_rfc3339()),
            })
        },
        quit: quit_tx,
        drain_time,
        node,
    });
    // Admin first, as Envoy does: it answers (`/ready` says PRE_INITIALIZING) while
    // listeners come up.
    if let Some(addr) = admin_addr {
        let bound = weft_proxy::admin::serve(addr, admin.clone())
            .await
            .map_err(|e| format!("admin {addr}: {e}"))?;
        tracing::info!(%bound, "admin listening");
    }
    tokio::spawn(release_descriptors_when_idle());
    let (stop_xds, stop_xds_rx) = watch::channel(false);
    let mut watcher = None;
    let (tx, mut changes) = mpsc::channel::<()>(16);
    if dynamic {
        let mut client =
            weft_proxy_xds::AdsClient::new(proxy.clone(), loaded.bootstrap, loaded.base)
                .map_err(|e| e.to_string())?;
        client.apply_static().await?;
        let _ = running.set(client.running());
        // Ready once the control plane's first configuration is applied (or its initial
        // fetch timed out), as Envoy's /ready.
        let mut initialized = client.initialized();
        let ready = admin.clone();
        tokio::spawn(async move {
            if initialized.wait_for(|done| *done).await.is_ok() {
                let _ = ready.state.compare_exchange(
                    server_state::PRE_INITIALIZING,
                    server_state::LIVE,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                tracing::info!("initial configuration from the control plane applied");
            }
        });
        tokio::spawn(client.run(stop_xds_rx));
    } else {
        proxy
            .apply(loaded.config)
            .await
            .map_err(|e| e.to_string())?;
        admin.state.store(server_state::LIVE, Ordering::Relaxed);
        for (name, addr) in proxy.listeners() {
            tracing::info!(listener = %name, %addr, "listening");
        }
        // Reload on change: watch the directory (editors and Kubernetes replace files).
        if let Source::File(path) = &source {
            watcher = Some(watch_file(path, tx)?);
        }
    }

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    loop {
        tokio::select! {
            Some(()) = changes.recv() => {
                // Let a burst of writes settle.
                tokio::time::sleep(Duration::from_millis(200)).await;
                while changes.try_recv().is_ok() {}
                match load(&source) {
                    Ok(next) => match proxy.apply(next.config).await {
                        Ok(()) => {
                            bootstrap.store(Arc::new(next.bootstrap));
                            tracing::info!(file = %source.describe(), "configuration reloaded");
                        }
                        Err(e) => tracing::error!(error = %e, "new configuration not applied; keeping the running one"),
                    },
                    Err(e) => tracing::error!(error = %e, "invalid configuration; keeping the running one"),
                }
            }
            _ = sigterm.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            Ok(()) = quit_rx.changed() => {
                if *quit_rx.borrow() { break; }
            }
        }
    }
    let _ = stop_xds.send(true);
    admin.state.store(server_state::DRAINING, Ordering::Relaxed);
    tracing::info!(seconds = drain_time.as_secs(), "draining");
    proxy.drain(drain_time).await;
    drop(watcher);
    Ok(())
}

/// Watches the bootstrap's directory and signals `tx` when the file changes.
fn watch_file(path: &Path, tx: mpsc::Sender<()>) -> Result<notify::RecommendedWatcher, String> {
    let watched = path.to_owned();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        // Only changes: reloading reads the file, and a read reported here would loop.
        if let Some(ev) = ev
            .ok()
            .filter(|ev| weft_proxy::watch::may_change_contents(&ev.kind))
        {
            let relevant = ev.paths.iter().any(|p| {
                p.file_name() == watched.file_name() || p.to_string_lossy().contains("..data")
            });
            if relevant {
                let _ = tx.try_send(());
            }
        }
    })
    .map_err(|e| format!("cannot watch {}: {e}", path.display()))?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    Ok(watcher)
}

/// The current UTC time as RFC 3339, for `last_updated` in config dumps.
fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20778), (2026, 11, 21));
        assert_eq!(super::civil_from_days(11_016), (2000, 2, 29));
    }
}
