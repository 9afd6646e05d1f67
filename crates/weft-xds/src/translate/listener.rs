//! (in progress)
use crate::resources::Resources;
use super::Scope;
/// Resources for this kind of proxy.
pub fn sidecar_resources(_scope: &Scope<'_>) -> Resources { Resources::default() }
