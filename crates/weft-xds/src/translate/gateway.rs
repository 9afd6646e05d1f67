//! (in progress)
use super::Scope;
use crate::resources::Resources;
/// Resources for this kind of proxy.
pub fn resources(_scope: &Scope<'_>) -> Resources {
    Resources::default()
}
