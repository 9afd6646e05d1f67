//! IST0106: per-resource schema validation, as Istio's admission webhook would run it.

use weft_api::Finding;
use weft_api::diag::msg;

use crate::ConfigSet;
use crate::config::finding;

pub(crate) fn analyze(config: &ConfigSet, out: &mut Vec<Finding>) {
    for entry in config.entries() {
        for issue in entry.resource.validate() {
            let mut f = finding(
                entry,
                msg::SCHEMA_VALIDATION_ERROR,
                Some(issue.path.clone()),
                format!("{}: {}", issue.path, issue.message),
            );
            f.severity = issue.severity;
            out.push(f);
        }
    }
}
