//! WFT0001: the same kind, namespace and name defined twice. Kubernetes makes this impossible;
//! with files it is an easy mistake, and only one of the two can apply.

use std::collections::HashMap;

use weft_api::Finding;
use weft_api::diag::msg;

use crate::ConfigSet;
use crate::config::finding;

pub(crate) fn analyze(config: &ConfigSet, out: &mut Vec<Finding>) {
    let mut first = HashMap::new();
    for entry in config.entries() {
        let r = &entry.resource;
        let key = (r.kind(), r.namespace(), r.name());
        match first.get(&key) {
            None => {
                first.insert(key, entry);
            }
            Some(original) => {
                let at = original.source.locate(None);
                out.push(finding(
                    entry,
                    msg::DUPLICATE_RESOURCE,
                    Some("metadata.name".into()),
                    format!(
                        "{} {}/{} is already defined at {at}; only the first definition applies",
                        r.kind(),
                        r.namespace(),
                        r.name()
                    ),
                ));
            }
        }
    }
}
