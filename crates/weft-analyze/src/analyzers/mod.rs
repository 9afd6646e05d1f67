//! The analyzers. Each is a plain function over the [`ConfigSet`]; adding one means adding it
//! to [`run_all`].

mod duplicates;
mod schema;

use weft_api::Finding;

use crate::ConfigSet;

pub(crate) fn run_all(config: &ConfigSet, out: &mut Vec<Finding>) {
    schema::analyze(config, out);
    duplicates::analyze(config, out);
}
