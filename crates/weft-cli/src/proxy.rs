//! `weft proxy --config FILE`: run the data plane from an Envoy v3 bootstrap, reload it when the
//! file changes (keeping the running configuration when the new one is invalid), and drain on
//! SIGTERM.

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
pub(crate) struct Args {
    /// Envoy v3 bootstrap (YAML or JSON), as Envoy's `-c`.
    #[arg(
        short = 'c',
        long = "config",
        visible_alias = "config-path",
        value_name = "FILE"
    )]
    config: PathBuf,

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

struct Loaded {
    bootstrap: envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap,
    config: ProxyConfig,
}

fn load(path: &Path) -> Result<Loaded, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bootstrap = weft_proxy_config::parse_bootstrap(path, &text).map_err(|e| e.to_string())?;
    let base = path.parent().unwrap_or(Path::new("."));
    let config =
        weft_proxy_config::convert_bootstrap(&bootstrap, base).map_err(|e| e.to_string())?;
    Ok(Loaded { bootstrap, config })
}

pub(crate) fn run(args: Args) -> ExitCode {
    crate::init_logging(&args.log_level);
    if args.validate {
        return match load(&args.config) {
            Ok(_) => {
                println!("configuration '{}' OK", args.config.display());
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("weft-worker")
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> Result<(), String> {
    let loaded = load(&args.config)?;
    let proxy = Proxy::new();
    let admin_addr = loaded.config.admin.as_ref().map(|a| a.address);
    let node = (
        loaded.config.node.id.clone(),
        loaded.config.node.cluster.clone(),
    );
    let bootstrap = Arc::new(arc_swap::ArcSwap::from_pointee(loaded.bootstrap));
    let (quit_tx, mut quit_rx) = watch::channel(false);
    let drain_time = Duration::from_secs(args.drain_time_s);
    let admin = Arc::new(AdminContext {
        proxy: proxy.clone(),
        state: AtomicU8::new(server_state::PRE_INITIALIZING),
        config_dump: {
            let bootstrap = bootstrap.clone();
            Box::new(move || weft_proxy_config::config_dump(&bootstrap.load(), &now_rfc3339()))
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
    proxy
        .apply(loaded.config)
        .await
        .map_err(|e| e.to_string())?;
    admin.state.store(server_state::LIVE, Ordering::Relaxed);
    for (name, addr) in proxy.listeners() {
        tracing::info!(listener = %name, %addr, "listening");
    }

    // Reload on change: watch the directory (editors and Kubernetes replace files).
    let (tx, mut changes) = mpsc::channel::<()>(16);
    let watched = args.config.clone();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            let relevant = ev.paths.iter().any(|p| {
                p.file_name() == watched.file_name() || p.to_string_lossy().contains("..data")
            });
            if relevant {
                let _ = tx.try_send(());
            }
        }
    })
    .map_err(|e| format!("cannot watch {}: {e}", args.config.display()))?;
    let dir = args
        .config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    loop {
        tokio::select! {
            Some(()) = changes.recv() => {
                // Let a burst of writes settle.
                tokio::time::sleep(Duration::from_millis(200)).await;
                while changes.try_recv().is_ok() {}
                match load(&args.config) {
                    Ok(next) => match proxy.apply(next.config).await {
                        Ok(()) => {
                            bootstrap.store(Arc::new(next.bootstrap));
                            tracing::info!(file = %args.config.display(), "configuration reloaded");
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
    admin.state.store(server_state::DRAINING, Ordering::Relaxed);
    tracing::info!(seconds = drain_time.as_secs(), "draining");
    proxy.drain(drain_time).await;
    drop(watcher);
    Ok(())
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
