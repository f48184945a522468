//! Arakoon's update semantics on the user table of one write transaction.
//!
//! A top-level update acts on the table directly: each is atomic by itself.
//! A sequence is first evaluated against an overlay (the table plus the
//! sequence's own changes so far) without touching the table; only when every
//! update in it holds are its effects written, in order. So a failing update
//! anywhere in a sequence, at any depth of nesting, leaves the table exactly as
//! it was, without an undo log.

use crate::error::UpdateFailure;
use crate::UpdateOk;
use protocol::{RangeAssertion, Update};
use redb::{ReadableTable, ReadableTableMetadata, Table};
use std::collections::BTreeMap;
use std::ops::Bound;

pub(crate) type UserTable<'txn> = Table<'txn, &'static [u8], &'static [u8]>;

/// The outcome of one update: `Err(UpdateFailure)` is Arakoon refusing it,
/// the outer `Err(redb::Error)` is the store failing.
pub(crate) type Applied = Result<Result<UpdateOk, UpdateFailure>, redb::Error>;

/// The smallest key above every key that starts with `prefix`, or `None` if
/// there is none (the prefix is empty or all `0xff`).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The bounds of the keys that start with `prefix`.
pub(crate) fn prefix_bounds(prefix: &[u8]) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let end = match prefix_end(prefix) {
        Some(end) => Bound::Excluded(end),
        None => Bound::Unbounded,
    };
    (Bound::Included(prefix.to_vec()), end)
}

fn get(table: &UserTable<'_>, key: &[u8]) -> Result<Option<Vec<u8>>, redb::Error> {
    Ok(table.get(key)?.map(|guard| guard.value().to_vec()))
}

fn put(table: &mut UserTable<'_>, key: &[u8], value: Option<&[u8]>) -> Result<(), redb::Error> {
    match value {
        Some(value) => {
            table.insert(key, value)?;
        }
        None => {
            table.remove(key)?;
        }
    }
    Ok(())
}

/// Removes every key that starts with `prefix`; returns how many.
fn remove_prefix(table: &mut UserTable<'_>, prefix: &[u8]) -> Result<u64, redb::Error> {
    let count_before = table.len()?;
    let (start, end) = prefix_bounds(prefix);
    let start = as_slice_bound(&start);
    let end = as_slice_bound(&end);
    table.retain_in::<&[u8], _>((start, end), |_, _| false)?;
    let count_after = table.len()?;
    // retain_in only removes, and only inside the range.
    assert!(count_after <= count_before);
    Ok(count_before - count_after)
}

pub(crate) fn as_slice_bound(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(key) => Bound::Included(key.as_slice()),
        Bound::Excluded(key) => Bound::Excluded(key.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Applies one top-level update of an entry.
pub(crate) fn apply_update(table: &mut UserTable<'_>, update: &Update) -> Applied {
    let ok = match update {
        Update::Set { key, value } => {
            table.insert(key.as_slice(), value.as_slice())?;
            UpdateOk::Done
        }
        Update::Delete { key } => {
            if table.remove(key.as_slice())?.is_none() {
                return Ok(Err(UpdateFailure::NotFound { key: key.clone() }));
            }
            UpdateOk::Done
        }
        Update::TestAndSet {
            key,
            expected,
            wanted,
        } => {
            let found = get(table, key)?;
            if found == *expected {
                put(table, key, wanted.as_deref())?;
            }
            UpdateOk::Previous(found)
        }
        Update::Replace { key, wanted } => {
            let found = get(table, key)?;
            put(table, key, wanted.as_deref())?;
            UpdateOk::Previous(found)
        }
        Update::DeletePrefix { prefix } => UpdateOk::Count(remove_prefix(table, prefix)?),
        Update::Assert { key, value } => {
            if get(table, key)? != *value {
                return Ok(Err(UpdateFailure::AssertionFailed { key: key.clone() }));
            }
            UpdateOk::Done
        }
        Update::AssertExists { key } => {
            if table.get(key.as_slice())?.is_none() {
                return Ok(Err(UpdateFailure::AssertionFailed { key: key.clone() }));
            }
            UpdateOk::Done
        }
        Update::Nop => UpdateOk::Done,
        Update::UserFunction { name, .. } => {
            return Ok(Err(UpdateFailure::UserFunctionNotFound {
                name: name.clone(),
            }))
        }
        Update::AssertRange { .. } => {
            // An assertion changes nothing: evaluated as a sequence of one.
            if let Err(failure) = evaluate_sequence(table, std::slice::from_ref(update))? {
                return Ok(Err(failure));
            }
            UpdateOk::Done
        }
        Update::Sequence(updates) | Update::SyncedSequence(updates) => {
            let effects = match evaluate_sequence(table, updates)? {
                Ok(effects) => effects,
                Err(failure) => return Ok(Err(failure)),
            };
            for effect in &effects {
                match effect {
                    Effect::Put(key, value) => put(table, key, value.as_deref())?,
                    Effect::RemovePrefix(prefix) => {
                        remove_prefix(table, prefix)?;
                    }
                }
            }
            UpdateOk::Done
        }
    };
    Ok(Ok(ok))
}

/// A change a sequence makes, recorded during evaluation, written after.
enum Effect<'u> {
    /// Set (`Some`) or delete (`None`) one key.
    Put(&'u [u8], Option<&'u [u8]>),
    RemovePrefix(&'u [u8]),
}

/// The table as a sequence sees it part way through: its own changes over
/// the table's content.
struct Overlay<'u> {
    /// The newest change of each key the sequence touched since the last
    /// prefix removal that covers it.
    changes: BTreeMap<&'u [u8], Option<&'u [u8]>>,
    removed_prefixes: Vec<&'u [u8]>,
    effects: Vec<Effect<'u>>,
}

impl<'u> Overlay<'u> {
    fn lookup(&self, table: &UserTable<'_>, key: &[u8]) -> Result<Option<Vec<u8>>, redb::Error> {
        if let Some(change) = self.changes.get(key) {
            return Ok(change.map(<[u8]>::to_vec));
        }
        if self.removed_prefixes.iter().any(|p| key.starts_with(p)) {
            return Ok(None);
        }
        get(table, key)
    }

    fn put(&mut self, key: &'u [u8], value: Option<&'u [u8]>) {
        self.changes.insert(key, value);
        self.effects.push(Effect::Put(key, value));
    }

    fn remove_prefix(&mut self, prefix: &'u [u8]) {
        self.changes.retain(|key, _| !key.starts_with(prefix));
        self.removed_prefixes.push(prefix);
        self.effects.push(Effect::RemovePrefix(prefix));
    }
}

/// Evaluates a sequence (nested ones included, without recursion, so no
/// nesting depth can exhaust the stack) and returns its effects, or the
/// first failure.
fn evaluate_sequence<'u>(
    table: &UserTable<'_>,
    updates: &'u [Update],
) -> Result<Result<Vec<Effect<'u>>, UpdateFailure>, redb::Error> {
    let mut overlay = Overlay {
        changes: BTreeMap::new(),
        removed_prefixes: Vec::new(),
        effects: Vec::new(),
    };
    let mut stack = vec![updates.iter()];
    while let Some(top) = stack.last_mut() {
        let Some(update) = top.next() else {
            stack.pop();
            continue;
        };
        match update {
            Update::Set { key, value } => overlay.put(key, Some(value)),
            Update::Delete { key } => {
                if overlay.lookup(table, key)?.is_none() {
                    return Ok(Err(UpdateFailure::NotFound { key: key.clone() }));
                }
                overlay.put(key, None);
            }
            Update::TestAndSet {
                key,
                expected,
                wanted,
            } => {
                if overlay.lookup(table, key)? == *expected {
                    overlay.put(key, wanted.as_deref());
                }
            }
            Update::Replace { key, wanted } => overlay.put(key, wanted.as_deref()),
            Update::DeletePrefix { prefix } => overlay.remove_prefix(prefix),
            Update::Assert { key, value } => {
                if overlay.lookup(table, key)? != *value {
                    return Ok(Err(UpdateFailure::AssertionFailed { key: key.clone() }));
                }
            }
            Update::AssertExists { key } => {
                if overlay.lookup(table, key)?.is_none() {
                    return Ok(Err(UpdateFailure::AssertionFailed { key: key.clone() }));
                }
            }
            Update::Nop => {}
            Update::UserFunction { name, .. } => {
                return Ok(Err(UpdateFailure::UserFunctionNotFound {
                    name: name.clone(),
                }))
            }
            Update::AssertRange {
                prefix,
                assertion: RangeAssertion::ContainsExactly(keys),
            } => {
                if let Some((expected, found)) = first_difference(table, &overlay, prefix, keys)? {
                    return Ok(Err(UpdateFailure::RangeAssertionFailed {
                        prefix: prefix.clone(),
                        expected,
                        found,
                    }));
                }
            }
            Update::Sequence(inner) | Update::SyncedSequence(inner) => stack.push(inner.iter()),
        }
    }
    Ok(Ok(overlay.effects))
}

/// Where the keys under `prefix`, as the sequence sees them (`overlay`
/// over `table`), differ from `asserted` compared sorted (Arakoon's clients
/// write the list ascending or descending): `(asserted, found)` at the first
/// difference, `None` if they are the same keys. Walks the table's keys
/// under the prefix only as far as the first difference.
#[allow(clippy::type_complexity)]
fn first_difference(
    table: &UserTable<'_>,
    overlay: &Overlay<'_>,
    prefix: &[u8],
    asserted: &[Vec<u8>],
) -> Result<Option<(Option<Vec<u8>>, Option<Vec<u8>>)>, redb::Error> {
    let mut asserted: Vec<&[u8]> = asserted.iter().map(Vec::as_slice).collect();
    asserted.sort_unstable();
    let (start, end) = prefix_bounds(prefix);
    let bounds = (as_slice_bound(&start), as_slice_bound(&end));
    let mut stored = table.range::<&[u8]>(bounds)?;
    let mut changed = overlay.changes.range::<[u8], _>(bounds).peekable();
    let mut next_stored = stored.next().transpose()?.map(|(k, _)| k.value().to_vec());
    let mut visible = move || -> Result<Option<Vec<u8>>, redb::Error> {
        loop {
            let from_changes = match (&next_stored, changed.peek()) {
                (None, None) => return Ok(None),
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some(s), Some((c, _))) => **c <= s.as_slice(),
            };
            if from_changes {
                let Some((key, value)) = changed.next() else {
                    return Ok(None);
                };
                // A change hides the stored value of the same key.
                if next_stored.as_deref() == Some(*key) {
                    next_stored = stored.next().transpose()?.map(|(k, _)| k.value().to_vec());
                }
                if value.is_some() {
                    return Ok(Some(key.to_vec()));
                }
            } else {
                let key = next_stored.take();
                next_stored = stored.next().transpose()?.map(|(k, _)| k.value().to_vec());
                if let Some(key) = key {
                    if !overlay.removed_prefixes.iter().any(|p| key.starts_with(p)) {
                        return Ok(Some(key));
                    }
                }
            }
        }
    };
    for want in asserted {
        match visible()? {
            Some(found) if found.as_slice() == want => {}
            found => return Ok(Some((Some(want.to_vec()), found))),
        }
    }
    Ok(visible()?.map(|found| (None, Some(found))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte_below_0xff() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
