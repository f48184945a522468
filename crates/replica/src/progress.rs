//! Catch-up progress you can see: how far a store is behind the commit
//! index, how fast the gap closes, and when it will be closed.
//!
//! A [`Tracker`] is fed, at every publication, the index reached and the
//! index to reach: this node's applied index and the commit index it knows
//! (a node that was down, or lost its disk, catches up this way), or, on the
//! master, a peer's match index and the commit index (the master sees each
//! slave catch up). A catch-up starts when the gap reaches
//! [`BEHIND_THRESHOLD`] entries and ends when it is closed (or the tracker
//! is reset: this node's role changed, the peer's term ended). Meanwhile a
//! line is logged every [`REPORT_EVERY`] with the entries done and left,
//! the rate over the last interval and the time left at that rate; the
//! end is logged with the whole catch-up's count, time and rate.
//!
//! Invariants: the tracker only reads what it is given (it never changes
//! what is applied or replicated); a reported rate is over a non-empty
//! interval of the caller's clock (0 otherwise); `done + remaining` is the
//! gap at the start plus what was committed since.

use consensus::{NodeId, Time};
use std::time::Duration;

/// A gap at least this large (entries) is a catch-up worth reporting;
/// below it, a node is merely following.
pub const BEHIND_THRESHOLD: u64 = 1_000;
/// How often a catch-up in progress is logged.
pub const REPORT_EVERY: Duration = Duration::from_secs(5);

/// A catch-up in progress, as published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatchUp {
    /// The index reached when the catch-up started.
    pub from: u64,
    /// The index reached now.
    pub reached: u64,
    /// The index to reach (the commit index known now).
    pub target: u64,
    /// Entries per second over the last report interval (since the start
    /// before the first report); 0 until time has passed.
    pub entries_per_second: u64,
}

impl CatchUp {
    /// Entries done since the start.
    pub fn done(&self) -> u64 {
        self.reached.saturating_sub(self.from)
    }

    /// Entries left.
    pub fn remaining(&self) -> u64 {
        self.target.saturating_sub(self.reached)
    }

    /// The time left at the current rate; `None` before a rate is known.
    pub fn time_left(&self) -> Option<Duration> {
        (self.entries_per_second > 0).then(|| {
            Duration::from_secs_f64(self.remaining() as f64 / self.entries_per_second as f64)
        })
    }
}

impl std::fmt::Display for CatchUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "at i = {} of {} ({} done, {} left, {} entries/s",
            self.reached,
            self.target,
            self.done(),
            self.remaining(),
            self.entries_per_second
        )?;
        match self.time_left() {
            Some(left) => write!(f, ", ~{:.1} s left)", left.as_secs_f64()),
            None => write!(f, ")"),
        }
    }
}

/// Whose store a tracker follows, for the log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whose {
    /// This node's own store.
    ThisNode,
    /// A peer's, as the master sees it through its match index.
    Peer(NodeId),
}

impl std::fmt::Display for Whose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Whose::ThisNode => write!(f, "this node"),
            Whose::Peer(id) => write!(f, "peer {}", id.0),
        }
    }
}

/// One catch-up being followed.
#[derive(Debug, Clone, Copy)]
struct Track {
    started_at: Time,
    from: u64,
    /// The last report (or the start): when, and the index then.
    reported_at: Time,
    reported_index: u64,
    entries_per_second: u64,
}

/// Follows the catch-up of one store (this node's, or a peer's as the
/// master sees it) and logs its progress; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    track: Option<Track>,
}

impl Tracker {
    /// Forgets a catch-up in progress without logging its end (the role or
    /// the term changed: what was followed is another thing now).
    pub fn reset(&mut self) {
        self.track = None;
    }

    /// Whether a catch-up is in progress.
    pub fn active(&self) -> bool {
        self.track.is_some()
    }

    /// Observes `reached` of `target` at `now`; `what` names the store in
    /// the log lines. Returns the catch-up in progress, if any.
    pub fn observe(
        &mut self,
        now: Time,
        reached: u64,
        target: u64,
        what: Whose,
    ) -> Option<CatchUp> {
        let gap = target.saturating_sub(reached);
        let Some(mut track) = self.track else {
            if gap < BEHIND_THRESHOLD {
                return None;
            }
            tracing::info!(
                %what,
                reached,
                target,
                behind = gap,
                "catching up: {what} is {gap} entries behind the commit index {target}"
            );
            let track = Track {
                started_at: now,
                from: reached,
                reported_at: now,
                reported_index: reached,
                entries_per_second: 0,
            };
            self.track = Some(track);
            return Some(track.progress(reached, target));
        };
        if gap == 0 {
            let took = elapsed(track.started_at, now);
            let done = reached.saturating_sub(track.from);
            tracing::info!(
                %what,
                reached,
                done,
                seconds = took.as_secs_f64(),
                "caught up: {what} took {done} entries in {:.1} s ({} entries/s)",
                took.as_secs_f64(),
                rate(done, took)
            );
            self.track = None;
            return None;
        }
        let since = elapsed(track.reported_at, now);
        if track.entries_per_second == 0 && !since.is_zero() {
            // Before the first report: the rate since the start.
            track.entries_per_second = rate(reached.saturating_sub(track.reported_index), since);
        }
        if since >= REPORT_EVERY {
            track.entries_per_second = rate(reached.saturating_sub(track.reported_index), since);
            track.reported_at = now;
            track.reported_index = reached;
            let progress = track.progress(reached, target);
            tracing::info!(
                %what,
                reached,
                target,
                remaining = progress.remaining(),
                entries_per_second = progress.entries_per_second,
                "catching up: {what} {progress}"
            );
        }
        self.track = Some(track);
        Some(track.progress(reached, target))
    }
}

impl Track {
    fn progress(&self, reached: u64, target: u64) -> CatchUp {
        CatchUp {
            from: self.from,
            reached,
            target,
            entries_per_second: self.entries_per_second,
        }
    }
}

/// The time from `then` to `now` (none if the clock went back: progress
/// is only reported, a wrong rate must not stop the node).
fn elapsed(then: Time, now: Time) -> Duration {
    Duration::from_nanos(now.as_nanos().saturating_sub(then.as_nanos()))
}

/// `entries` per second over `took`, 0 over no time.
fn rate(entries: u64, took: Duration) -> u64 {
    if took.is_zero() {
        return 0;
    }
    (entries as f64 / took.as_secs_f64()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: f64) -> Time {
        Time((seconds * 1e9) as u64)
    }

    #[test]
    fn a_small_gap_is_following_not_catching_up() {
        let mut t = Tracker::default();
        assert_eq!(
            t.observe(at(0.0), 10, 10 + BEHIND_THRESHOLD - 1, Whose::ThisNode),
            None
        );
        assert!(!t.active());
    }

    #[test]
    fn a_catch_up_reports_rate_and_time_left_and_ends_when_closed() {
        let mut t = Tracker::default();
        let started = t.observe(at(0.0), 0, 100_000, Whose::ThisNode).unwrap();
        assert_eq!((started.done(), started.remaining()), (0, 100_000));
        assert_eq!(started.time_left(), None, "no rate before time passed");
        // 1 s in: the rate since the start.
        let early = t
            .observe(at(1.0), 10_000, 100_000, Whose::ThisNode)
            .unwrap();
        assert_eq!(early.entries_per_second, 10_000);
        // At the first report (5 s), the rate over the interval.
        let report = t
            .observe(at(5.0), 50_000, 110_000, Whose::ThisNode)
            .unwrap();
        assert_eq!(report.entries_per_second, 10_000);
        assert_eq!((report.done(), report.remaining()), (50_000, 60_000));
        assert_eq!(report.time_left(), Some(Duration::from_secs(6)));
        // The next interval is slower: the rate follows it, not the average.
        let slower = t
            .observe(at(10.0), 75_000, 110_000, Whose::ThisNode)
            .unwrap();
        assert_eq!(slower.entries_per_second, 5_000);
        assert_eq!(slower.time_left(), Some(Duration::from_secs(7)));
        assert_eq!(t.observe(at(12.0), 110_000, 110_000, Whose::ThisNode), None);
        assert!(!t.active());
    }

    #[test]
    fn reset_forgets_a_catch_up() {
        let mut t = Tracker::default();
        assert!(t.observe(at(0.0), 0, 5_000, Whose::ThisNode).is_some());
        t.reset();
        assert!(!t.active());
        // A gap seen again starts a new catch-up from where it is now.
        let again = t.observe(at(3.0), 2_000, 5_000, Whose::ThisNode).unwrap();
        assert_eq!(again.from, 2_000);
    }

    #[test]
    fn the_display_says_where_how_fast_and_how_long() {
        let c = CatchUp {
            from: 0,
            reached: 40,
            target: 100,
            entries_per_second: 20,
        };
        assert_eq!(
            c.to_string(),
            "at i = 40 of 100 (40 done, 60 left, 20 entries/s, ~3.0 s left)"
        );
    }
}
