//! `weft`: the one user-facing binary. Subcommands are thin; the work lives in library crates.

mod analyze;
mod proxy;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// weft: an Istio-compatible service mesh.
#[derive(Debug, Parser)]
#[command(name = "weft", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate and analyze Istio configuration files, like `istioctl analyze`.
    Analyze(analyze::Args),
    /// Run the data plane from an Envoy v3 bootstrap (the file Envoy takes with `-c`) or from an
    /// xDS control plane (`--control-plane`).
    Proxy(Box<proxy::Args>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Analyze(args) => analyze::run(args),
        Command::Proxy(args) => proxy::run(*args),
    }
}

/// Logs to stderr at `level` (overridable with `RUST_LOG`).
fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
