//! Which file-system events can change what a watched file holds.
//!
//! Watchers here re-read files when told something changed, and re-reading a file is itself an
//! event (inotify reports the open). Reacting to every event would make each reload trigger the
//! next one, forever: a proxy would re-read its certificates or its bootstrap several times a
//! second after anyone, itself included, merely opened them.

use notify::EventKind;
use notify::event::{AccessKind, AccessMode};

/// Whether an event of this kind may have changed the contents of the paths it names: creation,
/// modification (data, metadata, a rename such as Kubernetes' `..data` symlink swap), removal,
/// a writer closing the file (the moment a slow write is complete), or an event the platform
/// could not classify. Opening, reading and closing after reading cannot.
pub fn may_change_contents(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use notify::event::{CreateKind, DataChange, MetadataKind, ModifyKind, RemoveKind, RenameMode};

    use super::*;

    #[test]
    fn reads_do_not_count_as_changes() {
        for kind in [
            AccessKind::Open(AccessMode::Any),
            AccessKind::Read,
            AccessKind::Close(AccessMode::Read),
            AccessKind::Any,
        ] {
            assert!(!may_change_contents(&EventKind::Access(kind)), "{kind:?}");
        }
    }

    #[test]
    fn writes_renames_creations_and_removals_do() {
        for kind in [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Remove(RemoveKind::File),
            EventKind::Any,
            EventKind::Other,
        ] {
            assert!(may_change_contents(&kind), "{kind:?}");
        }
    }
}
