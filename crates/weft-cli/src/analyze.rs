//! `weft analyze PATH...`: load, validate and analyze configuration; print findings.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;
use weft_api::{Loader, Severity};

/// Exit code when findings reach the failure threshold; the same as `istioctl analyze`.
const EXIT_FOUND_ISSUES: u8 = 79;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Files or directories (searched recursively for .yaml, .yml and .json).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Log)]
    output: Format,

    /// Exit with code 79 when a finding is at least this severe.
    #[arg(long, value_parser = parse_severity, default_value = "Error")]
    failure_threshold: Severity,

    /// Print only findings at least this severe.
    #[arg(long, value_parser = parse_severity, default_value = "Info")]
    output_threshold: Severity,

    /// Namespace for resources whose metadata names none.
    #[arg(short, long, default_value = weft_api::meta::DEFAULT_NAMESPACE)]
    namespace: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// One line per finding: `Error [IST0101] (VirtualService ns/name file:line) message`.
    Log,
    /// A JSON array of findings.
    Json,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    Severity::parse(s).ok_or_else(|| format!("{s:?} is not one of Info, Warning, Error"))
}

pub(crate) fn run(args: Args) -> ExitCode {
    let load = Loader::with_default_namespace(&args.namespace).load_paths(&args.paths);
    let report = weft_analyze::analyze(load);
    let shown: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.severity >= args.output_threshold)
        .collect();

    let mut stdout = std::io::stdout().lock();
    let written = match args.output {
        Format::Log => shown.iter().try_for_each(|f| writeln!(stdout, "{f}")),
        Format::Json => serde_json::to_writer_pretty(&mut stdout, &shown)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(stdout)),
    };
    if let Err(e) = written {
        // A closed pipe (`weft analyze ... | head`) is not worth a panic or a scary message.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: writing output: {e}");
        }
    }

    if matches!(args.output, Format::Log) && shown.is_empty() {
        let what = if report.findings.is_empty() {
            "No validation issues found"
        } else {
            "No issues at or above the output threshold found"
        };
        eprintln!(
            "\u{2714} {what} when analyzing {} resource(s){}.",
            report.resources,
            if report.skipped > 0 {
                format!(" ({} non-Istio document(s) skipped)", report.skipped)
            } else {
                String::new()
            }
        );
    }
    if report.fails(args.failure_threshold) {
        ExitCode::from(EXIT_FOUND_ISSUES)
    } else {
        ExitCode::SUCCESS
    }
}
