//! `weft control`: the control plane. Serves xDS on 15010 and metrics/debug on 15014, from a
//! directory of Istio resources that it watches.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use weft_cli::init_logging;
use weft_control::{ControlPlane, Options};
use weft_xds::mesh::OutboundTrafficPolicy;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Files or directories of Istio resources (ServiceEntry and WorkloadEntry form the
    /// service registry). Watched: changes are pushed to proxies.
    #[arg(long = "config", short = 'f', value_name = "PATH", required = true)]
    config: Vec<PathBuf>,

    /// Plaintext xDS (ADS) address.
    #[arg(long, default_value = "127.0.0.1:15010")]
    xds_address: SocketAddr,

    /// Metrics and debug endpoints.
    #[arg(long, default_value = "127.0.0.1:15014")]
    monitoring_address: SocketAddr,

    /// Namespace whose DestinationRules and Sidecars apply mesh-wide.
    #[arg(long, default_value = "istio-system")]
    root_namespace: String,

    /// Traffic to hosts outside the registry: ALLOW_ANY or REGISTRY_ONLY.
    #[arg(long, default_value = "ALLOW_ANY", value_parser = ["ALLOW_ANY", "REGISTRY_ONLY"])]
    outbound_traffic_policy: String,

    /// Log level: trace, debug, info, warn, error.
    #[arg(short = 'l', long = "log-level", default_value = "info")]
    log_level: String,
}

pub(crate) fn run(args: Args) -> ExitCode {
    init_logging(&args.log_level);
    let mut opts = Options {
        config: args.config,
        xds_address: args.xds_address,
        monitoring_address: args.monitoring_address,
        ..Options::default()
    };
    opts.mesh.root_namespace = args.root_namespace;
    opts.mesh.outbound_traffic_policy = match args.outbound_traffic_policy.as_str() {
        "REGISTRY_ONLY" => OutboundTrafficPolicy::RegistryOnly,
        _ => OutboundTrafficPolicy::AllowAny,
    };
    // Translations run on the blocking pool, one per core at a time. Capping the pool keeps
    // them on the same few threads: every new thread gets its own malloc arena, which keeps
    // the memory of the translations it ran (1,000 x 1,000: 434 MB peak with the default pool
    // of up to 512 threads, see docs/benchmarks.md).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(2)
        .thread_name("weft-control")
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let cp = match ControlPlane::start(opts).await {
            Ok(cp) => cp,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        eprintln!(
            "weft control plane: xDS on {}, metrics and debug on http://{}/",
            cp.xds_address, cp.monitoring_address
        );
        wait_for_signal().await;
        tracing::info!("shutting down");
        cp.shutdown();
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
