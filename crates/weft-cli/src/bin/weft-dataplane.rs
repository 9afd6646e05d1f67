//! `weft-dataplane`: the weft proxy alone, what `weft proxy` runs (see `weft_cli::proxy`).

use std::process::ExitCode;

use clap::Parser;

/// weft's data plane: an Envoy v3 bootstrap, or an xDS control plane, into a running proxy.
#[derive(Debug, Parser)]
#[command(name = "weft-dataplane", version, about)]
struct Cli {
    #[command(flatten)]
    args: weft_cli::proxy::Args,
}

fn main() -> ExitCode {
    weft_cli::proxy::run(Cli::parse().args)
}
