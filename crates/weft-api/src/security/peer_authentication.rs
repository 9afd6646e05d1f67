//! See the module docs in the parent.

use serde::{Deserialize, Serialize};

use crate::validate::{Checker, Validate};

/// Placeholder until the full type lands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PeerAuthentication {}

impl Validate for PeerAuthentication {
    fn validate(&self, _cx: &mut Checker) {}
}
