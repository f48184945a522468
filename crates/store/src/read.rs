//! Reads: one consistent view of the store (a redb read transaction) and the
//! query semantics of Arakoon's read commands.

use crate::apply::{as_slice_bound, prefix_bounds};
use crate::error::StoreError;
use crate::{KeyValue, META_TABLE, USER_TABLE};
use protocol::KeyRange;
use redb::{ReadOnlyTable, ReadTransaction, ReadableTableMetadata};
use std::ops::{Bound, ControlFlow};
use std::path::Path;
use std::sync::Arc;

/// Which way a range is walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// As `range_entries`: from `first` up to `last`.
    Ascending,
    /// As `rev_range_entries`: from `first` (the high end) down to `last`.
    Descending,
}

/// How many results a read may return: Arakoon's `max`. Every negative value
/// means "no limit", as in Arakoon (its fold stops only when the count equals
/// `max`, which a negative `max` never does); `-1` is what clients send.
fn limit(max: i64) -> usize {
    usize::try_from(max).unwrap_or(usize::MAX)
}

/// The bytes an answer of keys (and values) may take, counted as on the
/// wire (a 4-byte length before each string): a read stops collecting, and
/// fails with [`StoreError::AnswerTooLarge`], rather than build an answer
/// no client could take (`max = -1` over a large store).
struct AnswerBudget {
    left: usize,
    limit: usize,
}

impl AnswerBudget {
    fn new(limit: usize) -> Self {
        AnswerBudget { left: limit, limit }
    }

    /// Takes a key (and its value) out of the budget; false once over.
    fn take(&mut self, key: &[u8], value: Option<&[u8]>) -> bool {
        let bytes = 4 + key.len() + value.map_or(0, |v| 4 + v.len());
        match self.left.checked_sub(bytes) {
            Some(left) => {
                self.left = left;
                true
            }
            None => false,
        }
    }

    fn check(&self, over: bool) -> Result<(), StoreError> {
        if over {
            return Err(StoreError::AnswerTooLarge { limit: self.limit });
        }
        Ok(())
    }
}

/// The limit of `range`: its `max`, every negative value meaning none.
fn range_limit(range: &KeyRange) -> usize {
    limit(i64::from(range.max))
}

/// `range`'s bounds in the ascending `(start, end)` form a walk takes: for
/// `Order::Descending`, `first` is the high end.
fn walk_bounds(range: &KeyRange, order: Order) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let first = bound(range.first.as_deref(), range.first_inclusive);
    let last = bound(range.last.as_deref(), range.last_inclusive);
    match order {
        Order::Ascending => (first, last),
        Order::Descending => (last, first),
    }
}

fn bound(key: Option<&[u8]>, inclusive: bool) -> Bound<Vec<u8>> {
    match key {
        None => Bound::Unbounded,
        Some(key) if inclusive => Bound::Included(key.to_vec()),
        Some(key) => Bound::Excluded(key.to_vec()),
    }
}

/// Whether `(start, end)` (ascending) holds no key at all. redb, like
/// `BTreeMap`, must not be asked for a range whose start lies past its end.
fn is_empty_range(start: &Bound<Vec<u8>>, end: &Bound<Vec<u8>>) -> bool {
    match (start, end) {
        (Bound::Unbounded, _) | (_, Bound::Unbounded) => false,
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Excluded(e))
        | (Bound::Excluded(s), Bound::Included(e)) => s >= e,
    }
}

/// A consistent, read-only view of the store at one applied index. Every read
/// through one view sees the same state, whatever is applied meanwhile.
/// Cheap to make; hold it only as long as needed (it keeps redb from reusing
/// the pages it sees).
pub struct ReadView {
    path: Arc<Path>,
    user: ReadOnlyTable<&'static [u8], &'static [u8]>,
    applied_index: u64,
}

impl std::fmt::Debug for ReadView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadView")
            .field("path", &self.path)
            .field("applied_index", &self.applied_index)
            .finish()
    }
}

impl ReadView {
    pub(crate) fn new(path: Arc<Path>, txn: &ReadTransaction) -> Result<Self, StoreError> {
        let redb_err = |e: redb::Error| crate::redb_error(&path, e);
        let user = txn.open_table(USER_TABLE).map_err(|e| redb_err(e.into()))?;
        let meta = txn.open_table(META_TABLE).map_err(|e| redb_err(e.into()))?;
        let applied_index = crate::read_applied_index(&path, &meta)?;
        Ok(Self {
            path,
            user,
            applied_index,
        })
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        crate::redb_error(&self.path, e.into())
    }

    /// The index of the last entry applied in this view (0: none).
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// The value of `key`, if it is there.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let found = self.user.get(key).map_err(|e| self.err(e))?;
        Ok(found.map(|guard| guard.value().to_vec()))
    }

    /// Whether `key` is there.
    pub fn exists(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.user.get(key).map_err(|e| self.err(e))?.is_some())
    }

    /// The values of `keys`, in their order; the first missing key is
    /// [`StoreError::KeyNotFound`]. More than `max_bytes` of values (4 bytes
    /// of length each) is [`StoreError::AnswerTooLarge`].
    pub fn multi_get<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut budget = AnswerBudget::new(max_bytes);
        let mut values = Vec::with_capacity(keys.len().min(1024));
        for key in keys {
            let key = key.as_ref();
            let value = self
                .get(key)?
                .ok_or_else(|| StoreError::KeyNotFound { key: key.to_vec() })?;
            let over = !budget.take(&value, None);
            budget.check(over)?;
            values.push(value);
        }
        Ok(values)
    }

    /// The values of `keys`, in their order, `None` for a missing key;
    /// bounded by `max_bytes` as [`Self::multi_get`].
    pub fn multi_get_option<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
        max_bytes: usize,
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let mut budget = AnswerBudget::new(max_bytes);
        let mut values = Vec::with_capacity(keys.len().min(1024));
        for key in keys {
            let value = self.get(key.as_ref())?;
            let bytes = value.as_deref().unwrap_or_default();
            let over = !budget.take(bytes, None);
            budget.check(over)?;
            values.push(value);
        }
        Ok(values)
    }

    /// Number of user keys (internal metadata not counted).
    pub fn key_count(&self) -> Result<u64, StoreError> {
        self.user.len().map_err(|e| self.err(e))
    }

    /// Walks the keys in `(start, end)` (ascending bounds) in `order`,
    /// calling `visit` for at most `max_count` pairs or until it breaks;
    /// returns how many pairs it visited.
    fn walk(
        &self,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        order: Order,
        max_count: usize,
        mut visit: impl FnMut(&[u8], &[u8]) -> ControlFlow<()>,
    ) -> Result<u64, StoreError> {
        if max_count == 0 || is_empty_range(&start, &end) {
            return Ok(0);
        }
        let range = self
            .user
            .range::<&[u8]>((as_slice_bound(&start), as_slice_bound(&end)))
            .map_err(|e| self.err(e))?;
        let mut visited: usize = 0;
        let mut step = |item: Result<_, redb::StorageError>| -> Result<bool, StoreError> {
            let (key, value): (redb::AccessGuard<&[u8]>, redb::AccessGuard<&[u8]>) =
                item.map_err(|e| self.err(e))?;
            visited += 1;
            let flow = visit(key.value(), value.value());
            Ok(flow.is_continue() && visited < max_count)
        };
        match order {
            Order::Ascending => {
                for item in range {
                    if !step(item)? {
                        break;
                    }
                }
            }
            Order::Descending => {
                for item in range.rev() {
                    if !step(item)? {
                        break;
                    }
                }
            }
        }
        Ok(visited as u64)
    }

    /// Visits the pairs that [`Self::range_entries`] would return for
    /// `range` and `order`, in that order, without collecting them: for
    /// answers too large to hold, or to stop at a byte budget (`visit`
    /// breaks). Returns how many pairs were visited (the one that broke
    /// included).
    pub fn visit_range_entries(
        &self,
        range: &KeyRange,
        order: Order,
        visit: impl FnMut(&[u8], &[u8]) -> ControlFlow<()>,
    ) -> Result<u64, StoreError> {
        let (start, end) = walk_bounds(range, order);
        self.walk(start, end, order, range_limit(range), visit)
    }

    /// The keys of `range`, ascending, at most `range.max` of them (negative:
    /// no limit). The `*_inclusive` flags say whether a given end key itself
    /// belongs to the range. `None` is an open end, whatever its flag says:
    /// it includes the empty key. (Arakoon's own store, which keeps user keys
    /// behind a one-byte prefix, drops the empty key at an open end flagged
    /// exclusive; that is an artefact of its layout, not a meaning clients
    /// rely on.) `first > last` gives nothing. More than `max_bytes` of
    /// answer (as on the wire) is [`StoreError::AnswerTooLarge`], found
    /// without collecting more than that.
    pub fn range(&self, range: &KeyRange, max_bytes: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut keys = Vec::new();
        let mut budget = AnswerBudget::new(max_bytes);
        let mut over = false;
        self.visit_range_entries(range, Order::Ascending, |key, _| {
            if !budget.take(key, None) {
                over = true;
                return ControlFlow::Break(());
            }
            keys.push(key.to_vec());
            ControlFlow::Continue(())
        })?;
        budget.check(over)?;
        Ok(keys)
    }

    /// The pairs of `range`, at most `range.max` of them (negative: no
    /// limit). `Order::Ascending` is Arakoon's `range_entries`, with the
    /// bounds as in [`Self::range`]. `Order::Descending` is its
    /// `rev_range_entries`: `first` is the *high* end, where the walk
    /// starts, and `last` the low end, so `first = b, last = a` (both
    /// inclusive) gives `b` then `a`, and `first < last` gives nothing.
    /// Bounded by `max_bytes` as [`Self::range`].
    pub fn range_entries(
        &self,
        range: &KeyRange,
        order: Order,
        max_bytes: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let mut entries = Vec::new();
        let mut budget = AnswerBudget::new(max_bytes);
        let mut over = false;
        self.visit_range_entries(range, order, |key, value| {
            if !budget.take(key, Some(value)) {
                over = true;
                return ControlFlow::Break(());
            }
            entries.push((key.to_vec(), value.to_vec()));
            ControlFlow::Continue(())
        })?;
        budget.check(over)?;
        Ok(entries)
    }

    /// The keys that start with `prefix`, ascending, at most `max` of them
    /// (negative: no limit). Bounded by `max_bytes` as [`Self::range`].
    pub fn prefix_keys(
        &self,
        prefix: &[u8],
        max: i64,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let (start, end) = prefix_bounds(prefix);
        let mut keys = Vec::new();
        let mut budget = AnswerBudget::new(max_bytes);
        let mut over = false;
        self.walk(start, end, Order::Ascending, limit(max), |key, _| {
            if !budget.take(key, None) {
                over = true;
                return ControlFlow::Break(());
            }
            keys.push(key.to_vec());
            ControlFlow::Continue(())
        })?;
        budget.check(over)?;
        Ok(keys)
    }

    /// The user table, for the snapshot export.
    pub(crate) fn user_table(&self) -> &ReadOnlyTable<&'static [u8], &'static [u8]> {
        &self.user
    }

    pub(crate) fn path(&self) -> &Arc<Path> {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_max_is_no_limit() {
        assert_eq!(limit(-1), usize::MAX);
        assert_eq!(limit(-7), usize::MAX);
        assert_eq!(limit(0), 0);
        assert_eq!(limit(3), 3);
    }

    #[test]
    fn empty_ranges_are_recognised() {
        let k = |s: &str| s.as_bytes().to_vec();
        assert!(is_empty_range(
            &Bound::Included(k("b")),
            &Bound::Included(k("a"))
        ));
        assert!(!is_empty_range(
            &Bound::Included(k("a")),
            &Bound::Included(k("a"))
        ));
        assert!(is_empty_range(
            &Bound::Included(k("a")),
            &Bound::Excluded(k("a"))
        ));
        assert!(is_empty_range(
            &Bound::Excluded(k("a")),
            &Bound::Included(k("a"))
        ));
        assert!(is_empty_range(
            &Bound::Excluded(k("a")),
            &Bound::Excluded(k("a"))
        ));
        assert!(!is_empty_range(&Bound::Excluded(k("a")), &Bound::Unbounded));
    }
}
