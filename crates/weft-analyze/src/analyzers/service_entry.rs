//! IST0134: a ServiceEntry with TCP (or unset-protocol) ports and no addresses: sidecars can
//! only tell such traffic apart by destination IP, so without one the entry cannot match.

use weft_api::Finding;
use weft_api::diag::msg;
use weft_api::networking::ServiceEntry;

use super::Context;
use crate::config::finding;

pub(crate) fn analyze(cx: &Context<'_>, out: &mut Vec<Finding>) {
    for (entry, se) in cx.config.of::<ServiceEntry>() {
        if !se.addresses.is_empty() {
            continue;
        }
        for (i, port) in se.ports.iter().enumerate() {
            if port.protocol.is_empty() || port.protocol.eq_ignore_ascii_case("TCP") {
                out.push(finding(
                    entry,
                    msg::SERVICE_ENTRY_ADDRESSES_REQUIRED,
                    Some(format!("spec.ports[{i}]")),
                    "ServiceEntry addresses are required for this protocol.",
                ));
            }
        }
    }
}
