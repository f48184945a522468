//! Collapse: removing whole, old tlog segments (Arakoon's "tlogs") that the
//! store already holds, so that the tlog directory stays bounded.
//!
//! Arakoon replays old tlogs into a separate *head* database and then
//! deletes them. Here the store *is* the head: every committed entry is
//! applied to it, so a collapse is one store checkpoint (if the durable
//! applied index does not cover the segments yet) and unlinking sealed
//! segments, the oldest first, one per *step*.
//!
//! # What is removed
//!
//! [`plan`] decides, over the full segments (every segment but the active
//! one, which is never removed), keeping the newest `tlogs_to_keep`
//! (Arakoon's `n`):
//!
//! 1. never an entry above the store's *durable* applied index (the
//!    store's durability contract: after a crash the store reopens at its
//!    last checkpoint and replays the tlog from there, so those entries
//!    must still be in the tlog);
//! 2. on a master, a peer that still needs entries of a segment to be
//!    removed, and is at most `max(tlogs_to_keep, 1)` segments short of the
//!    cut, holds the cut back to the segment it needs (so it catches up
//!    from the tlog instead of needing a store snapshot). A peer further
//!    behind is not waited for (it needs a snapshot anyway after any
//!    collapse, and waiting would leave the directory unbounded). A peer
//!    whose match index the master does not know (0) holds nothing.
//!
//! So at most `2 · max(n, 1)` full segments are kept plus the active one,
//! plus whatever the store has not applied yet.
//!
//! # How a run goes
//!
//! A run (one at a time) is started by a request ([`Replica::collapse`],
//! `collapse_tlogs`) or by the automatic policy (`Settings::auto_collapse_keep`,
//! checked at every [`Replica::tick`]: a run starts once more than `n` full
//! segments could go). It fixes its plan at the start (the count reported
//! first), then removes one segment per step ([`Replica::wake`] at
//! [`Replica::wake_at`]), reporting each through [`Env::collapsed`]. Between
//! two steps the caller goes on with its other inputs for `collapse_slowdown`
//! times the step's duration ([`COLLAPSE_SLOWDOWN_DEFAULT`] when not set),
//! and at least [`STEP_GAP_MIN`] (Arakoon's factor: Arakoon sleeps that
//! factor times each replayed entry's store insert; here the work of a
//! step is writing the tlog's base file and unlinking one segment, a few
//! fsyncs, and the pause follows it). A requested run takes over
//! from an automatic one in progress; a second request while a requested
//! run goes on is refused ([`CollapseRefused::InProgress`]).
//!
//! # Invariants
//!
//! - Every removed entry is at or below the store's durable applied index
//!   at the moment of its removal (asserted at each step).
//! - The active segment is never removed: the tlog always holds its last
//!   entry, so the core's `last_index` never goes back.

use crate::env::Env;
use crate::error::ReplicaError;
use crate::replica::Replica;
use crate::StoreAccess;
use consensus::{Role, Time};
use std::time::Duration;

/// Least pause between two steps of a run: the caller's other inputs
/// (client updates, peers' messages) get their turn in between.
pub const STEP_GAP_MIN: Duration = Duration::from_millis(1);

/// `collapse_slowdown` when the config has none: a step's duration again
/// as a pause, so that a run takes at most half of the driver's time
/// (Arakoon's absent factor means no pause; its collapse runs beside the
/// node's serving, ours on the thread that serves writes).
pub const COLLAPSE_SLOWDOWN_DEFAULT: f64 = 1.0;
/// Largest factor used (a larger one is taken as this).
pub const COLLAPSE_SLOWDOWN_MAX: f64 = 1_000.0;

/// Who started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollapseOrigin {
    /// `collapse_tlogs` (a client, `--collapse-remote`).
    Request,
    /// The automatic policy (`auto_collapse_keep`).
    Automatic,
}

/// What a run reports after each removed segment ([`Env::collapsed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollapseProgress {
    pub origin: CollapseOrigin,
    /// Segments removed so far in this run (`1..=total`).
    pub done: u32,
    /// Segments this run removes (the count reported at its start).
    pub total: u32,
    /// Since the run started (its checkpoint included).
    pub elapsed: Duration,
    /// The tlog's first index now.
    pub tlog_first_index: u64,
}

/// Why a requested collapse is refused (Arakoon's messages; both answered
/// `E_UNKNOWN_FAILURE` on the wire, as Arakoon does).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CollapseRefused {
    /// `n < 1`.
    #[error("{0} is not acceptable")]
    BadCount(i64),
    /// A requested run is in progress.
    #[error("Collapsing already in progress")]
    InProgress,
}

/// One full segment, as [`plan`] sees it: entries `first_index ..
/// next_index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSpan {
    pub first_index: u64,
    pub next_index: u64,
}

/// What [`plan`] decided: remove the `count` oldest full segments, that is
/// every entry below `below`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CollapsePlan {
    pub count: usize,
    /// The first index the tlog keeps (0 when `count` is 0).
    pub below: u64,
    /// Segments kept beyond `tlogs_to_keep` for peers that lag a little.
    pub held_for_peers: usize,
    /// Segments kept beyond `tlogs_to_keep` because the store has not made
    /// their entries durable.
    pub held_for_store: usize,
}

/// Decides what a collapse removes (see the module doc). `full`: the full
/// segments, ascending and contiguous (not the active one);
/// `durable_applied`: the store's durable applied index; `peers_next`: on
/// a master, the first index each peer with a known match index still
/// needs (its match index + 1).
pub fn plan(
    full: &[SegmentSpan],
    tlogs_to_keep: usize,
    durable_applied: u64,
    peers_next: &[u64],
) -> CollapsePlan {
    if full.len() <= tlogs_to_keep {
        return CollapsePlan::default();
    }
    let wanted = full.len() - tlogs_to_keep;
    // 1. Never past the durable applied index.
    let mut count = wanted;
    while count > 0 && full[count - 1].next_index > durable_applied.saturating_add(1) {
        count -= 1;
    }
    let durable_count = count;
    // 2. Peers a few segments short of the cut hold it back.
    let hold_max = tlogs_to_keep.max(1);
    for &next in peers_next {
        if count == 0 {
            break;
        }
        let needs_doomed = next < full[count - 1].next_index;
        let already_gone = next < full[0].first_index;
        if !needs_doomed || already_gone {
            continue;
        }
        // The segment holding `next`.
        let k = full.partition_point(|s| s.next_index <= next);
        if durable_count - k <= hold_max {
            count = count.min(k);
        }
    }
    CollapsePlan {
        count,
        below: if count == 0 {
            0
        } else {
            full[count - 1].next_index
        },
        held_for_peers: durable_count - count,
        held_for_store: wanted - durable_count,
    }
}

/// A run in progress.
#[derive(Debug, Clone)]
pub(crate) struct CollapseRun {
    origin: CollapseOrigin,
    total: u32,
    done: u32,
    /// Every segment wholly below this goes.
    below: u64,
    started: Time,
    next_step_at: Time,
}

fn since(now: Time, then: Time) -> Duration {
    Duration::from_nanos(now.as_nanos().saturating_sub(then.as_nanos()))
}

impl<S: StoreAccess, W> Replica<S, W> {
    /// `collapse_tlogs`: starts a run that keeps the newest `tlogs_to_keep`
    /// full segments (and what the rules of the module doc hold back).
    /// Returns how many segments it will remove (0: nothing to do, no run);
    /// each is then reported through [`Env::collapsed`]. May checkpoint the
    /// store first (one fsync).
    pub fn collapse(
        &mut self,
        tlogs_to_keep: i64,
        env: &mut impl Env<Waiter = W>,
    ) -> Result<Result<u32, CollapseRefused>, ReplicaError> {
        if tlogs_to_keep < 1 {
            return Ok(Err(CollapseRefused::BadCount(tlogs_to_keep)));
        }
        if self
            .collapse_run
            .as_ref()
            .is_some_and(|r| r.origin == CollapseOrigin::Request)
        {
            return Ok(Err(CollapseRefused::InProgress));
        }
        if let Some(run) = self.collapse_run.take() {
            tracing::info!(
                done = run.done,
                total = run.total,
                "collapse: a requested run takes over from the automatic one"
            );
        }
        let keep = usize::try_from(tlogs_to_keep).unwrap_or(usize::MAX);
        self.start_collapse(CollapseOrigin::Request, keep, env)
            .map(Ok)
    }

    /// Whether a run is in progress.
    pub fn collapsing(&self) -> bool {
        self.collapse_run.is_some()
    }

    /// When the next step of a run is due.
    pub(crate) fn collapse_due_at(&self) -> Option<Time> {
        // On a full disk the steps wait (the retries wake the replica).
        if self.disk_full.is_some() {
            return None;
        }
        self.collapse_run.as_ref().map(|r| r.next_step_at)
    }

    /// The full segments (all but the active one).
    fn full_segments(&self) -> Vec<SegmentSpan> {
        let mut spans: Vec<SegmentSpan> = self
            .tlog
            .segments()
            .iter()
            .map(|s| SegmentSpan {
                first_index: s.first_index,
                next_index: s.first_index + s.entry_count,
            })
            .collect();
        spans.pop(); // the active segment
        spans
    }

    /// On a master, the first index each peer with a known match index
    /// still needs.
    fn peers_next(&self) -> Vec<u64> {
        if self.core.role() != Role::Master {
            return Vec::new();
        }
        let config = self.core.config();
        config
            .voters
            .iter()
            .chain(&config.learners)
            .filter(|id| **id != config.id)
            .filter_map(|id| self.core.peer_progress(*id))
            .filter(|(matched, _)| *matched > 0)
            .map(|(matched, _)| matched + 1)
            .collect()
    }

    /// Plans a run and starts it (checkpointing the store first if that
    /// lets it remove more). Returns the count.
    fn start_collapse(
        &mut self,
        origin: CollapseOrigin,
        tlogs_to_keep: usize,
        env: &mut impl Env<Waiter = W>,
    ) -> Result<u32, ReplicaError> {
        assert!(self.collapse_run.is_none(), "one collapse run at a time");
        let started = env.now();
        let full = self.full_segments();
        let peers = self.peers_next();
        let applied = self.store.store().applied_index();
        let possible = plan(&full, tlogs_to_keep, applied, &peers);
        if possible.count > 0 && possible.below - 1 > self.store.store().durable_applied_index() {
            self.checkpoint(started)?;
        }
        #[allow(unused_mut)]
        let mut durable = self.store.store().durable_applied_index();
        #[cfg(feature = "broken")]
        if self.settings.broken == Some(crate::settings::Broken::CollapseBeyondDurable) {
            // What is committed, not what the store made durable.
            durable = self.commit_index;
        }
        let decided = plan(&full, tlogs_to_keep, durable, &peers);
        let total = u32::try_from(decided.count).unwrap_or(u32::MAX);
        let level_info = origin == CollapseOrigin::Request || total > 0;
        if level_info {
            tracing::info!(
                origin = ?origin,
                tlogs_to_keep,
                full_segments = full.len(),
                collapsing = total,
                below = decided.below,
                held_for_peers = decided.held_for_peers,
                held_for_store = decided.held_for_store,
                store_durable = durable,
                "collapse: removing {total} tlog segment(s)"
            );
        }
        if total > 0 {
            self.collapse_run = Some(CollapseRun {
                origin,
                total,
                done: 0,
                below: decided.below,
                started,
                next_step_at: env.now(),
            });
        }
        Ok(total)
    }

    /// The automatic policy, at every tick: with `auto_collapse_keep = n`
    /// (not 0) and no run in progress, starts one when a full segment
    /// beyond the newest `n` could go.
    pub(crate) fn auto_collapse(
        &mut self,
        env: &mut impl Env<Waiter = W>,
    ) -> Result<(), ReplicaError> {
        let keep = self.settings.auto_collapse_keep as usize;
        if keep == 0 || self.collapse_run.is_some() || self.disk_full.is_some() {
            return Ok(());
        }
        // Cheap test first: more full segments than kept.
        if self.tlog.segment_count() <= keep + 1 {
            return Ok(());
        }
        let full = self.full_segments();
        let applied = self.store.store().applied_index();
        if plan(&full, keep, applied, &self.peers_next()).count == 0 {
            return Ok(());
        }
        self.start_collapse(CollapseOrigin::Automatic, keep, env)?;
        Ok(())
    }

    /// One step of the run in progress, if due: removes the oldest segment
    /// if it lies wholly below the run's point (a reset since, e.g. a
    /// snapshot installed, may have removed it already: the step then
    /// counts as done).
    pub(crate) fn collapse_step(
        &mut self,
        env: &mut impl Env<Waiter = W>,
    ) -> Result<(), ReplicaError> {
        let now = env.now();
        let Some(run) = self.collapse_run.as_ref() else {
            return Ok(());
        };
        if now < run.next_step_at || self.disk_full.is_some() {
            return Ok(());
        }
        let below = run.below;
        let segments = self.tlog.segments();
        if segments.len() > 1 {
            let oldest = &segments[0];
            let next = oldest.first_index + oldest.entry_count;
            if next <= below {
                let durable = self.store.store().durable_applied_index();
                #[cfg(feature = "broken")]
                let durable = if self.settings.broken
                    == Some(crate::settings::Broken::CollapseBeyondDurable)
                {
                    u64::MAX
                } else {
                    durable
                };
                // The store's durability contract: only what it made durable.
                assert!(
                    next - 1 <= durable,
                    "collapse would remove entry {} above the durable applied index {durable}",
                    next - 1
                );
                if let Err(e) = self.tlog.collapse(next) {
                    // A full disk (the base file): the step waits for space.
                    return self.on_write_failed(e, now);
                }
            }
        }
        let end = env.now();
        let took = since(end, now);
        let factor = self
            .settings
            .collapse_slowdown
            .unwrap_or(COLLAPSE_SLOWDOWN_DEFAULT);
        let pause = if factor.is_finite() && factor > 0.0 {
            took.mul_f64(factor.min(COLLAPSE_SLOWDOWN_MAX))
                .max(STEP_GAP_MIN)
        } else {
            STEP_GAP_MIN
        };
        let Some(run) = self.collapse_run.as_mut() else {
            unreachable!("checked above");
        };
        run.done += 1;
        run.next_step_at = end.plus(pause);
        let progress = CollapseProgress {
            origin: run.origin,
            done: run.done,
            total: run.total,
            elapsed: since(end, run.started),
            tlog_first_index: self.tlog.first_index(),
        };
        if run.done >= run.total {
            self.collapse_run = None;
            tracing::info!(
                origin = ?progress.origin,
                tlog_first = progress.tlog_first_index,
                "collapse: removed {} tlog segment(s) in {:.3} s",
                progress.total,
                progress.elapsed.as_secs_f64()
            );
        }
        env.collapsed(&progress);
        self.publish(env);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Segments of 10 entries each: [1, 11), [11, 21), ...
    fn spans(n: u64) -> Vec<SegmentSpan> {
        (0..n)
            .map(|k| SegmentSpan {
                first_index: 1 + 10 * k,
                next_index: 11 + 10 * k,
            })
            .collect()
    }

    #[test]
    fn keeps_the_newest_n_when_everything_is_durable() {
        let p = plan(&spans(5), 2, 1_000, &[]);
        assert_eq!(p.count, 3);
        assert_eq!(p.below, 31);
        assert_eq!(plan(&spans(2), 2, 1_000, &[]).count, 0);
        assert_eq!(plan(&spans(0), 1, 1_000, &[]), CollapsePlan::default());
    }

    /// The store's durability contract: nothing above the durable applied
    /// index goes, even if that keeps more than n.
    #[test]
    fn never_past_the_durable_applied_index() {
        // Durable up to 25: segment [21, 31) is not wholly durable.
        let p = plan(&spans(5), 1, 25, &[]);
        assert_eq!((p.count, p.below, p.held_for_store), (2, 21, 2));
        // Exactly the end of a segment is enough.
        assert_eq!(plan(&spans(5), 1, 30, &[]).count, 3);
        assert_eq!(plan(&spans(5), 1, 0, &[]).count, 0);
    }

    /// A peer a little behind keeps the segment it needs; one far behind
    /// is not waited for.
    #[test]
    fn a_lagging_peer_holds_the_cut_back_only_a_bounded_way() {
        // 10 full segments, keep 2: the cut is at 81 (remove 8).
        let full = spans(10);
        // A peer needing 65 (segment [61, 71), k = 6): 2 short of the cut.
        let p = plan(&full, 2, 1_000, &[65]);
        assert_eq!((p.count, p.below, p.held_for_peers), (6, 61, 2));
        // Needing 51 (k = 5): 3 short, more than max(2, 1): not held.
        let p = plan(&full, 2, 1_000, &[51]);
        assert_eq!((p.count, p.held_for_peers), (8, 0));
        // A peer that needs nothing removed, or already lost: no hold.
        assert_eq!(plan(&full, 2, 1_000, &[95]).count, 8);
        let mut gone = spans(12);
        gone.drain(..2);
        assert_eq!(plan(&gone, 2, 1_000, &[3]).count, 8);
        // The nearest of several lagging peers within reach wins.
        let p = plan(&full, 2, 1_000, &[75, 66, 12]);
        assert_eq!(p.count, 6);
    }

    /// n = 1 still holds one segment for a peer just behind the cut.
    #[test]
    fn keeping_one_still_holds_one_for_a_peer() {
        let p = plan(&spans(4), 1, 1_000, &[25]);
        assert_eq!((p.count, p.below), (2, 21));
    }
}

/// The replica's runs on a one-node cluster over the simulated disk: the
/// automatic policy keeps the tlog bounded and never removes what the store
/// has not made durable; a request streams its count and one report per
/// segment, and refuses `n < 1` and a second request.
#[cfg(test)]
pub(crate) mod replica_tests {
    use super::*;
    use crate::{Settle, SyncOutcome, UpdateAnswer};
    use consensus::{Config, Core, HardState, Message, NodeId};
    use disk::SimDisk;
    use protocol::Update;
    use std::path::PathBuf;
    use store::{Store, StoreOptions};
    use tlog::{Tlog, TlogOptions};

    pub(crate) struct TestEnv {
        pub(crate) now: Time,
        progress: Vec<CollapseProgress>,
        answered: usize,
    }

    impl Env for TestEnv {
        type Waiter = ();
        fn now(&self) -> Time {
            self.now
        }
        fn send(&mut self, _message: &Message) {}
        fn send_snapshot(&mut self, _message: &crate::SnapshotMessage) {}
        fn publish(&mut self, _published: &crate::Published) {}
        fn answer(&mut self, _w: (), _i: Option<u64>, answer: UpdateAnswer, _direct: bool) {
            assert!(answer.is_ok(), "update refused: {answer:?}");
            self.answered += 1;
        }
        fn sync(&mut self, job: tlog::SyncJob) -> SyncOutcome {
            SyncOutcome::Done(job.run())
        }
        fn collapsed(&mut self, progress: &CollapseProgress) {
            self.progress.push(*progress);
        }
    }

    const SEGMENT_ENTRIES: u64 = 10;

    pub(crate) fn replica(settings: crate::Settings) -> (Replica<Store, ()>, TestEnv, SimDisk) {
        let disk = SimDisk::new();
        let options = TlogOptions {
            max_entries: SEGMENT_ENTRIES,
            max_size: 1 << 20,
            compression: tlog::Compression::Lz4,
        };
        let tlog = Tlog::open(disk.shared(), PathBuf::from("/n/tlog"), options).unwrap();
        let store = Store::open(
            disk.shared(),
            &PathBuf::from("/n/store.db"),
            &StoreOptions::default(),
        )
        .unwrap();
        let config = Config::new(NodeId(0), vec![NodeId(0)]);
        let mut env = TestEnv {
            now: Time(1_000_000_000),
            progress: Vec::new(),
            answered: 0,
        };
        let core = Core::new(config, HardState::unknown(7), &tlog, 0, env.now).unwrap();
        let mut r = Replica::new(settings, core, tlog, store, env.now);
        for _ in 0..400 {
            if r.core().role() == Role::Master {
                break;
            }
            env.now = env.now.plus(Duration::from_millis(50));
            r.tick(&mut env).unwrap();
            settle(&mut r, &mut env);
        }
        assert_eq!(r.core().role(), Role::Master, "a lone voter becomes master");
        (r, env, disk)
    }

    fn settle(r: &mut Replica<Store, ()>, env: &mut TestEnv) {
        while r.settle(env).unwrap() == Settle::Yield {}
    }

    /// One entry of one `set`, then time passes (ticks, due wakes).
    pub(crate) fn write_one(r: &mut Replica<Store, ()>, env: &mut TestEnv, k: u64) {
        let update = Update::Set {
            key: format!("k{k}").into_bytes(),
            value: vec![b'v'; 100],
        };
        r.submit(update, (), env);
        settle(r, env);
        env.now = env.now.plus(Duration::from_millis(5));
        r.tick(env).unwrap();
        while r.wake_at().is_some_and(|t| t <= env.now) {
            r.wake(env).unwrap();
            settle(r, env);
        }
        settle(r, env);
    }

    /// The store's durability contract holds at every moment: the tlog
    /// starts at most one past the durable applied index.
    fn assert_durable_below(r: &Replica<Store, ()>) {
        let durable = r.store().durable_applied_index();
        assert!(
            r.tlog().first_index() <= durable + 1,
            "tlog starts at {} but the store is durable only to {durable}",
            r.tlog().first_index()
        );
    }

    #[test]
    fn the_automatic_policy_keeps_the_tlog_bounded_under_sustained_writes() {
        let keep = 3u32;
        let settings = crate::Settings {
            auto_collapse_keep: keep,
            // Rarely by itself: the policy must checkpoint when it needs to.
            checkpoint_every_entries: 1_000_000,
            checkpoint_interval: Duration::from_secs(3_600),
            ..crate::Settings::default()
        };
        let (mut r, mut env, _disk) = replica(settings);
        let mut most_segments = 0;
        for k in 0..400 {
            write_one(&mut r, &mut env, k);
            assert_durable_below(&r);
            most_segments = most_segments.max(r.tlog().segments().len());
        }
        assert_eq!(env.answered, 400);
        // The bound of the module doc (no peers here): n full + the active
        // one, and one more filled before the next tick notices.
        assert!(
            most_segments <= keep as usize + 2,
            "at most {} segments, saw {most_segments}",
            keep + 2
        );
        assert!(
            r.tlog().first_index() > 300,
            "collapsed: {}",
            r.tlog().first_index()
        );
        assert!(env
            .progress
            .iter()
            .all(|p| p.origin == CollapseOrigin::Automatic));
        // Everything written is still readable from the store.
        let view = r.store().read().unwrap();
        assert_eq!(view.key_count().unwrap(), 400);
    }

    #[test]
    fn a_request_streams_its_count_and_refuses_bad_counts_and_a_second_run() {
        let settings = crate::Settings {
            checkpoint_every_entries: 1_000_000,
            checkpoint_interval: Duration::from_secs(3_600),
            collapse_slowdown: Some(2.0),
            ..crate::Settings::default()
        };
        let (mut r, mut env, _disk) = replica(settings);
        for k in 0..95 {
            write_one(&mut r, &mut env, k);
        }
        // Nine full segments and the active one; nothing collapsed yet and
        // the store not durable (no checkpoint since the start).
        assert_eq!(r.tlog().segments().len(), 10);
        assert_eq!(r.tlog().first_index(), 1);
        assert_eq!(
            r.collapse(0, &mut env).unwrap(),
            Err(CollapseRefused::BadCount(0))
        );
        assert_eq!(
            r.collapse(-3, &mut env).unwrap(),
            Err(CollapseRefused::BadCount(-3))
        );
        // Keep 2 of 9: 7 go, after a checkpoint.
        assert_eq!(r.collapse(2, &mut env).unwrap(), Ok(7));
        assert!(r.store().durable_applied_index() >= 70);
        assert!(r.collapsing());
        assert_eq!(
            r.collapse(1, &mut env).unwrap(),
            Err(CollapseRefused::InProgress)
        );
        let mut steps = 0;
        while r.collapsing() {
            let at = r.wake_at().expect("a run wants a wake-up");
            env.now = env.now.max(at);
            r.wake(&mut env).unwrap();
            settle(&mut r, &mut env);
            assert_durable_below(&r);
            steps += 1;
            assert!(steps <= 7, "one segment per step");
        }
        let done: Vec<u32> = env.progress.iter().map(|p| p.done).collect();
        assert_eq!(done, (1..=7).collect::<Vec<_>>());
        assert!(env
            .progress
            .iter()
            .all(|p| p.total == 7 && p.origin == CollapseOrigin::Request));
        assert_eq!(r.tlog().first_index(), 71);
        assert_eq!(r.tlog().segments().len(), 3);
        // Nothing more to do with n = 2: count 0, no run.
        assert_eq!(r.collapse(2, &mut env).unwrap(), Ok(0));
        assert!(!r.collapsing());
    }
}
