//! Analysis of a set of Istio resources, with `istioctl analyze` semantics.
//!
//! [`analyze`] takes what the loader read and returns every finding: load and schema problems
//! (IST0106), then cross-resource problems such as references to subsets or gateways that do not
//! exist (IST0101), rules shadowed by earlier catch-alls (IST0130/IST0131) and conflicting hosts
//! (IST0109). Findings come back sorted by file and line.
//!
//! This crate sits above both `weft-api` (the resources) and `weft-registry` (services and
//! endpoints, which several checks need), so the control plane can run the same analysis on
//! every configuration change.

mod analyzers;
mod config;

use weft_api::load::LoadResult;
use weft_api::{Finding, Severity};

pub use config::ConfigSet;

/// The outcome of analysis.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Every finding, sorted by file, line, then code.
    pub findings: Vec<Finding>,
    /// How many resources were analyzed.
    pub resources: usize,
    /// Documents of non-Istio kinds that were skipped.
    pub skipped: usize,
}

impl Report {
    /// The most severe finding's severity, if any.
    pub fn max_severity(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// Whether any finding is at least `threshold`.
    pub fn fails(&self, threshold: Severity) -> bool {
        self.max_severity().is_some_and(|s| s >= threshold)
    }
}

/// Analyzes everything a load produced: its own findings, each resource's schema validation and
/// the cross-resource analyzers.
pub fn analyze(load: LoadResult) -> Report {
    let LoadResult {
        resources,
        mut findings,
        skipped,
    } = load;
    let config = ConfigSet::new(resources);
    findings.extend(analyze_config(&config));
    sort(&mut findings);
    Report {
        findings,
        resources: config.entries().len(),
        skipped,
    }
}

/// Runs schema validation and every cross-resource analyzer over `config`.
pub fn analyze_config(config: &ConfigSet) -> Vec<Finding> {
    let mut out = Vec::new();
    analyzers::run_all(config, &mut out);
    out
}

fn sort(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        let key = |f: &Finding| {
            (
                f.location.as_ref().map(|l| (l.file.clone(), l.line)),
                f.message_type.code,
                f.message.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
}
