//! IST0106 / IST0133: per-resource schema validation errors and warnings, as Istio's admission
//! webhook reports them.

use weft_api::diag::msg;
use weft_api::{Finding, Severity};

use crate::ConfigSet;
use crate::config::finding;

pub(crate) fn analyze(config: &ConfigSet, out: &mut Vec<Finding>) {
    for entry in config.entries() {
        for issue in entry.resource.validate() {
            let message_type = match issue.severity {
                Severity::Error => msg::SCHEMA_VALIDATION_ERROR,
                _ => msg::SCHEMA_WARNING,
            };
            let mut f = finding(
                entry,
                message_type,
                Some(issue.path.clone()),
                format!("{}: {}", issue.path, issue.message),
            );
            f.severity = issue.severity;
            out.push(f);
        }
    }
}
