//! (in progress)
use crate::resources::Resources;
use super::Scope;
/// Resources for this kind of proxy.
pub fn resources(_scope: &Scope<'_>) -> Resources { Resources::default() }
