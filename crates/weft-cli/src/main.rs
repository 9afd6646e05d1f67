//! `weft`: the one user-facing binary. Subcommands are thin; the work lives in library crates.

mod analyze;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Analyze(args) => analyze::run(args),
    }
}
