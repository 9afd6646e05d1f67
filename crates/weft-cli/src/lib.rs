//! What the `weft` binary shares with `weft-dataplane`, the data plane on its own.
//!
//! `weft proxy` runs in `weft-dataplane` when that binary sits next to `weft` (see
//! [`proxy::exec_dataplane`]): a sidecar's memory is mostly the code pages it touches, and a
//! binary without the control plane, the analyzer and the Istio API touches fewer of them.

pub mod proxy;

/// Logs to stderr at `level` (overridable with `RUST_LOG`).
pub fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
