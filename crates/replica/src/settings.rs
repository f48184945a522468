//! [`Settings`]: what the replica takes from the node's configuration.

use std::time::Duration;

/// A deliberately broken variant of the replica layer, for the simulator's
/// proof that its checks catch real bugs. Only with the `broken` feature.
#[cfg(feature = "broken")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broken {
    /// Store-dependent updates (`test_and_set`, `delete`, asserted
    /// sequences) are answered at commit like a `set`, with the result the
    /// store gives *then*, before the earlier committed entries are applied.
    AnswerStoreDependentAtCommit,
    /// The published lease ends a lease period later than the core allows.
    LeaseTooLong,
    /// Collapse removes entries up to the commit index, beyond what the
    /// store made durable: a crash then finds a store behind its tlog's
    /// start.
    CollapseBeyondDurable,
    /// Entries the tlog refused for a full disk are reported synced as if
    /// written: the node acknowledges (or, as master, counts itself for)
    /// entries its disk does not hold.
    AckHeldEntries,
}

/// Limits and pacing of one replica.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Make appended entries durable (fdatasync) before counting them as
    /// synced. `false`: appended counts as synced at once (a process crash
    /// loses nothing, a machine crash may); a `synced_sequence` still
    /// fsyncs.
    pub fsync: bool,
    /// Arakoon's relaxed modes (`fsync = false` only): also fsync the tlog
    /// for real once this long has passed since the last real fsync, at
    /// the next round that appended something ...
    pub relaxed_fsync_interval: Option<Duration>,
    /// ... or once this many entries were appended since it.
    pub relaxed_fsync_entries: Option<u64>,
    /// How long a node that is not master may hold committed entries back
    /// to apply several in one store transaction.
    pub slave_apply_delay: Duration,
    /// The cluster is read-only: every update is refused.
    pub read_only: bool,
    /// Limits for decoding the batches of updates in tlog entries.
    pub payload_limits: protocol::Limits,
    /// An entry (group commit batch) is closed at this many payload bytes...
    pub batch_target_bytes: usize,
    /// ... or this many updates.
    pub batch_max_updates: usize,
    /// Store checkpoint at least every this many applied entries ...
    pub checkpoint_every_entries: u64,
    /// ... and at least this often while entries are applied.
    pub checkpoint_interval: Duration,
    /// The automatic collapse policy: keep this many full tlog segments
    /// (Arakoon's `n`) and collapse beyond them (see `collapse.rs`); 0
    /// turns it off (the default here: the node sets it from its config).
    pub auto_collapse_keep: u32,
    /// `collapse_slowdown`: after a collapse step that took `t`, pause
    /// `factor · t` (at least `collapse::STEP_GAP_MIN`) before the next;
    /// `None`: `collapse::COLLAPSE_SLOWDOWN_DEFAULT`.
    pub collapse_slowdown: Option<f64>,
    /// A deliberate bug to exhibit (tests only).
    #[cfg(feature = "broken")]
    pub broken: Option<Broken>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            fsync: true,
            relaxed_fsync_interval: None,
            relaxed_fsync_entries: None,
            slave_apply_delay: Duration::from_millis(10),
            read_only: false,
            payload_limits: protocol::Limits::default(),
            batch_target_bytes: 1 << 20,
            batch_max_updates: 10_000,
            checkpoint_every_entries: 10_000,
            checkpoint_interval: Duration::from_secs(10),
            auto_collapse_keep: 0,
            collapse_slowdown: None,
            #[cfg(feature = "broken")]
            broken: None,
        }
    }
}
