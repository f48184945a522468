//! The deliberately broken variants' own code (feature `broken`): never in a
//! build that serves users.

use protocol::Update;
use store::{Store, UpdateFailure, UpdateOk, UpdateResult};

/// The result `update` would get from the store as it is *now* (before the
/// committed entries not yet applied): what
/// `Broken::AnswerStoreDependentAtCommit` wrongly answers. `None` for
/// updates it does not guess.
pub(crate) fn result_now(store: &Store, update: &Update) -> Option<UpdateResult> {
    let view = store.read().ok()?;
    match update {
        Update::TestAndSet { key, .. } => {
            let current = view.get(key).ok()?;
            Some(Ok(UpdateOk::Previous(current)))
        }
        Update::Delete { key } => {
            let exists = view.get(key).ok()?.is_some();
            Some(if exists {
                Ok(UpdateOk::Done)
            } else {
                Err(UpdateFailure::NotFound { key: key.clone() })
            })
        }
        Update::Sequence(inner) => {
            for u in inner {
                match u {
                    Update::Assert { key, value } => {
                        if view.get(key).ok()? != *value {
                            return Some(Err(UpdateFailure::AssertionFailed { key: key.clone() }));
                        }
                    }
                    Update::Set { .. } => {}
                    _ => return None,
                }
            }
            Some(Ok(UpdateOk::Done))
        }
        _ => None,
    }
}
