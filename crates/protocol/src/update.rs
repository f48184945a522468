//! Arakoon's updates: what a client asks to change, what a tlog entry
//! carries and what the store applies. Keys and values are byte strings.

/// One update, as in Arakoon's `update.ml` (the wire tag is in the docs of
/// each variant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Tag 1: set `key` to `value`.
    Set { key: Vec<u8>, value: Vec<u8> },
    /// Tag 2: delete `key`; a missing key is `NotFound` (and fails a sequence).
    Delete { key: Vec<u8> },
    /// Tag 3: if the current value equals `expected` (None = absent), set it to
    /// `wanted` (None = delete). Answers the value found before.
    TestAndSet {
        key: Vec<u8>,
        expected: Option<Vec<u8>>,
        wanted: Option<Vec<u8>>,
    },
    /// Tag 5: all or nothing; nesting allowed.
    Sequence(Vec<Update>),
    /// Tag 6: changes nothing, still goes through consensus.
    Nop,
    /// Tag 7: a user function (not supported: applying it fails).
    UserFunction {
        name: Vec<u8>,
        argument: Option<Vec<u8>>,
    },
    /// Tag 8: fails the sequence unless the value of `key` equals `value`
    /// (None = absent).
    Assert { key: Vec<u8>, value: Option<Vec<u8>> },
    /// Tag 13: a sequence after which the tlog is fsynced before answering.
    SyncedSequence(Vec<Update>),
    /// Tag 14: delete every key that starts with `prefix`; answers the count.
    DeletePrefix { prefix: Vec<u8> },
    /// Tag 15: fails the sequence unless `key` exists.
    AssertExists { key: Vec<u8> },
    /// Tag 16: set `key` to `wanted` (None = delete), answering the value before.
    Replace {
        key: Vec<u8>,
        wanted: Option<Vec<u8>>,
    },
}
