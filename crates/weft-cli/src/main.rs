//! `weft`: the one user-facing binary. Subcommands are thin; the work lives in library crates.

mod analyze;
mod control;
mod describe;
mod inspect;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use weft_cli::proxy;

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
    /// Explain which DestinationRule and VirtualServices apply to a service, and why others do not.
    Describe(describe::Args),
    /// Run the data plane from an Envoy v3 bootstrap (the file Envoy takes with `-c`) or from an
    /// xDS control plane (`--control-plane`).
    Proxy(Box<proxy::Args>),
    /// Run the control plane: Istio resources from files, served to proxies over xDS.
    Control(control::Args),
    /// Show every proxy connected to the control plane and whether it is in sync.
    #[command(name = "proxy-status")]
    ProxyStatus(inspect::StatusArgs),
    /// Show the clusters, listeners, routes or endpoints the control plane sends a proxy.
    #[command(name = "proxy-config")]
    ProxyConfig(inspect::ConfigArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Analyze(args) => analyze::run(args),
        Command::Describe(args) => describe::run(args),
        Command::Proxy(args) => {
            // Arguments after `proxy`, as given: the data plane binary parses them again.
            proxy::exec_dataplane(std::env::args_os().skip(2));
            proxy::run(*args)
        }
        Command::Control(args) => control::run(args),
        Command::ProxyStatus(args) => inspect::status(args),
        Command::ProxyConfig(args) => inspect::config(args),
    }
}
