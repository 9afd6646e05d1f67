//! A set of loaded resources with typed, per-kind access.

use weft_api::diag::{Finding, MessageType};
use weft_api::{KindSpec, Loaded};

/// The resources under analysis (or being served by the control plane).
#[derive(Debug, Default, Clone)]
pub struct ConfigSet {
    entries: Vec<Loaded>,
}

impl ConfigSet {
    /// Wraps loaded resources.
    pub fn new(entries: Vec<Loaded>) -> Self {
        Self { entries }
    }

    /// Every resource, in load order.
    pub fn entries(&self) -> &[Loaded] {
        &self.entries
    }

    /// Every resource of spec type `T`, in load order.
    pub fn of<T: KindSpec + 'static>(&self) -> impl Iterator<Item = (&Loaded, &T)> {
        self.entries
            .iter()
            .filter_map(|e| T::from_spec(&e.resource.spec).map(|s| (e, s)))
    }
}

/// A finding about `entry`, pointing at `field` (a path such as `spec.http[0].route`).
pub(crate) fn finding(
    entry: &Loaded,
    message_type: MessageType,
    field: Option<String>,
    message: impl Into<String>,
) -> Finding {
    let mut f = Finding::new(message_type, message);
    f.location = Some(entry.source.locate(field.as_deref()));
    f.resource = Some(entry.resource.reference());
    f.field = field;
    f
}
