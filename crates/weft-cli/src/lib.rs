//! What the `weft` binary shares with `weft-dataplane`, the data plane on its own.
//!
//! `weft proxy` runs in `weft-dataplane` when that binary sits next to `weft` (see
//! [`proxy::exec_dataplane`]): a sidecar's memory is mostly the code pages it touches, and a
//! binary without the control plane, the analyzer and the Istio API touches fewer of them.

pub mod proxy;

/// Logs to stderr at `level` (overridable with `RUST_LOG`, which takes `tracing`'s directives:
/// `weft_proxy=debug,info`). A plain level is applied without a directive filter, whose parser
/// (regular expressions) would otherwise stay in every proxy's resident code.
pub fn init_logging(level: &str) {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let directives = std::env::var("RUST_LOG").ok().filter(|d| !d.is_empty());
    let plain = match &directives {
        Some(d) => d.parse::<tracing_subscriber::filter::LevelFilter>().ok(),
        None => level.parse().ok(),
    };
    let fmt = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match plain {
        Some(max) => fmt.with_max_level(max).try_init(),
        None => fmt
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                directives.as_deref().unwrap_or(level),
            ))
            .try_init(),
    };
}
