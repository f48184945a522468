//! [`Sequence`]: a builder for the updates of an atomic `sequence`.

use protocol::Update;

/// The updates of one atomic sequence, built in order.
///
/// ```no_run
/// # async fn demo(client: client::Client) -> Result<(), client::Error> {
/// use client::Sequence;
/// // Move "job/1" from the queue to "running", only if it is still queued.
/// let updates = Sequence::new()
///     .assert(b"queue/job/1", Some(b"pending"))
///     .delete(b"queue/job/1")
///     .set(b"running/job/1", b"worker-7");
/// client.sequence(updates).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sequence {
    updates: Vec<Update>,
}

impl Sequence {
    pub fn new() -> Self {
        Sequence::default()
    }

    /// Sets `key` to `value`.
    pub fn set(self, key: &[u8], value: &[u8]) -> Self {
        self.push(Update::Set {
            key: key.to_vec(),
            value: value.to_vec(),
        })
    }

    /// Deletes `key`; the whole sequence fails with `NotFound` if it is missing.
    pub fn delete(self, key: &[u8]) -> Self {
        self.push(Update::Delete { key: key.to_vec() })
    }

    /// Deletes every key starting with `prefix`.
    pub fn delete_prefix(self, prefix: &[u8]) -> Self {
        self.push(Update::DeletePrefix {
            prefix: prefix.to_vec(),
        })
    }

    /// Fails the whole sequence unless `key`'s value is `value` (`None`: absent).
    pub fn assert(self, key: &[u8], value: Option<&[u8]>) -> Self {
        self.push(Update::Assert {
            key: key.to_vec(),
            value: value.map(<[u8]>::to_vec),
        })
    }

    /// Fails the whole sequence unless `key` exists.
    pub fn assert_exists(self, key: &[u8]) -> Self {
        self.push(Update::AssertExists { key: key.to_vec() })
    }

    /// Sets `key` to `wanted` (`None`: deletes) if its value is `expected`.
    pub fn test_and_set(self, key: &[u8], expected: Option<&[u8]>, wanted: Option<&[u8]>) -> Self {
        self.push(Update::TestAndSet {
            key: key.to_vec(),
            expected: expected.map(<[u8]>::to_vec),
            wanted: wanted.map(<[u8]>::to_vec),
        })
    }

    /// Sets `key` to `wanted` (`None`: deletes).
    pub fn replace(self, key: &[u8], wanted: Option<&[u8]>) -> Self {
        self.push(Update::Replace {
            key: key.to_vec(),
            wanted: wanted.map(<[u8]>::to_vec),
        })
    }

    /// Fails the whole sequence unless the keys that start with `prefix`
    /// are exactly `keys` (in any order): Arakoon's `AssertRange` with
    /// `ContainsExactly`.
    pub fn assert_prefix_contains_exactly(self, prefix: &[u8], keys: &[&[u8]]) -> Self {
        self.push(Update::AssertRange {
            prefix: prefix.to_vec(),
            assertion: protocol::RangeAssertion::ContainsExactly(
                keys.iter().map(|k| k.to_vec()).collect(),
            ),
        })
    }

    /// Any update, nested sequences included.
    pub fn push(mut self, update: Update) -> Self {
        self.updates.push(update);
        self
    }

    pub fn len(&self) -> usize {
        self.updates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.updates.is_empty()
    }
}

impl From<Sequence> for Vec<Update> {
    fn from(sequence: Sequence) -> Self {
        sequence.updates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_updates_in_order() {
        let updates: Vec<Update> = Sequence::new()
            .assert_exists(b"a")
            .set(b"b", b"1")
            .delete(b"a")
            .into();
        assert_eq!(
            updates,
            [
                Update::AssertExists { key: b"a".to_vec() },
                Update::Set {
                    key: b"b".to_vec(),
                    value: b"1".to_vec()
                },
                Update::Delete { key: b"a".to_vec() },
            ]
        );
    }
}
