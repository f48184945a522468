//! Model-based property test: random sequences of append, sync, sync job,
//! truncate_suffix, collapse, reset, hard-state saves, reopens and crashes
//! (between operations, and in the middle of one) on the simulated disk,
//! with small segments so that rotation and sealing happen all the time,
//! checked against a `Vec` of entries.
//!
//! What a crash may do, as the tlog's documentation promises it:
//! - between operations: the log comes back as a prefix of what was
//!   appended that holds every entry up to the last synced index (a
//!   `truncate_suffix`, `collapse`, `reset` or hard-state save that returned
//!   is durable);
//! - in the middle of an operation: as above for append and sync; a
//!   truncation leaves a prefix of the old log holding every synced entry
//!   below the cut; a collapse or a reset leaves the old log (as after a
//!   crash between operations) or the new one.

mod common;

use common::{all_entries, chooser, dir, entry};
use disk::{DiskRef, SimDisk, Tripwire};
use proptest::prelude::*;
use std::sync::Arc;
use tlog::{Compression, Entry, HardState, Tlog, TlogError, TlogOptions};

#[derive(Debug, Clone)]
enum Op {
    Append {
        count: u8,
        payload_len: u16,
        term_bump: bool,
    },
    Sync,
    /// Take a sync job, append `count` more, run the job, mark it.
    SyncJob {
        count: u8,
    },
    Truncate {
        back: u8,
    },
    Collapse {
        ahead: u8,
    },
    Reset {
        delta: i8,
        term_bump: bool,
    },
    SaveHardState {
        term_bump: u8,
        vote: Option<u8>,
    },
    Reopen,
    Crash {
        seed: u64,
    },
    /// Run `op`, crashing before its `after_ops`-th mutating disk operation.
    CrashDuring {
        op: Box<Op>,
        after_ops: u8,
        seed: u64,
    },
}

fn plain_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1u8..8, 0u16..120, proptest::bool::weighted(0.2))
            .prop_map(|(count, payload_len, term_bump)| Op::Append { count, payload_len, term_bump }),
        3 => Just(Op::Sync),
        1 => (1u8..5).prop_map(|count| Op::SyncJob { count }),
        2 => (0u8..20).prop_map(|back| Op::Truncate { back }),
        1 => (0u8..30).prop_map(|ahead| Op::Collapse { ahead }),
        1 => (-4i8..6, any::<bool>()).prop_map(|(delta, term_bump)| Op::Reset { delta, term_bump }),
        1 => (0u8..3, proptest::option::of(0u8..5)).prop_map(|(term_bump, vote)| Op::SaveHardState { term_bump, vote }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        14 => plain_op(),
        1 => Just(Op::Reopen),
        2 => any::<u64>().prop_map(|seed| Op::Crash { seed }),
        3 => (plain_op(), 0u8..12, any::<u64>())
            .prop_map(|(op, after_ops, seed)| Op::CrashDuring { op: Box::new(op), after_ops, seed }),
    ]
}

fn options() -> impl Strategy<Value = TlogOptions> {
    (1u64..7, 100u64..600, any::<bool>()).prop_map(|(max_entries, max_size, lz4)| TlogOptions {
        max_entries,
        max_size,
        compression: if lz4 {
            Compression::Lz4
        } else {
            Compression::None
        },
    })
}

#[derive(Debug, Clone)]
struct Model {
    base_index: u64,
    base_term: u64,
    entries: Vec<Entry>,
    /// Every entry up to here survives a crash.
    synced: u64,
    hard_state: Option<HardState>,
    next_tag: u64,
}

impl Model {
    fn first_index(&self) -> u64 {
        self.base_index + 1
    }
    fn last_index(&self) -> u64 {
        self.base_index + self.entries.len() as u64
    }
    fn last_term(&self) -> u64 {
        self.entries.last().map_or(self.base_term, |e| e.term)
    }
    fn new_entries(&mut self, count: u8, payload_len: u16, term_bump: bool) -> Vec<Entry> {
        let term = self.last_term() + u64::from(term_bump);
        (0..u64::from(count))
            .map(|k| {
                self.next_tag += 1;
                entry(
                    self.last_index() + 1 + k,
                    term,
                    self.next_tag,
                    usize::from(payload_len),
                )
            })
            .collect()
    }
}

struct Harness {
    sim: SimDisk,
    wire: Tripwire,
    options: TlogOptions,
    tlog: Option<Tlog>,
    model: Model,
}

fn open(wire: &Tripwire, options: TlogOptions) -> Result<Tlog, TestCaseError> {
    let disk: DiskRef = Arc::new(wire.clone());
    Tlog::open(disk, dir(), options).map_err(|e| TestCaseError::fail(format!("open: {e}")))
}

fn ok<T>(result: Result<T, TlogError>, what: &str) -> Result<T, TestCaseError> {
    result.map_err(|e| TestCaseError::fail(format!("{what}: {e}")))
}

impl Harness {
    fn tlog(&mut self) -> &mut Tlog {
        self.tlog
            .get_or_insert_with(|| unreachable!("the harness always holds an open tlog"))
    }

    /// Applies `op` to the model, then to the tlog (so that after a crash in
    /// the middle of it, the model says what the operation meant to do).
    /// `Err` from the tlog is returned as is.
    fn apply(&mut self, op: &Op) -> Result<(), TlogError> {
        match op {
            Op::Append {
                count,
                payload_len,
                term_bump,
            } => {
                let entries = self.model.new_entries(*count, *payload_len, *term_bump);
                self.model.entries.extend(entries.iter().cloned());
                self.tlog().append(&entries)?;
            }
            Op::Sync => {
                self.model.synced = self.model.last_index();
                let synced = self.tlog().sync()?;
                assert_eq!(
                    synced,
                    self.model.last_index(),
                    "sync covers everything appended"
                );
            }
            Op::SyncJob { count } => {
                let covered = self.model.last_index();
                let entries = self.model.new_entries(*count, 10, false);
                self.model.entries.extend(entries.iter().cloned());
                let job = self.tlog().take_sync_job()?;
                self.tlog().append(&entries)?;
                if let Some(job) = job {
                    assert_eq!(job.index(), covered);
                    let result = job.run();
                    let synced = self.tlog().mark_synced(result)?;
                    assert!(synced >= covered);
                    self.model.synced = self.model.synced.max(covered);
                }
                // As the node does after each job.
                self.tlog().seal_pending()?;
            }
            Op::Truncate { back } => {
                let from = (self.model.last_index() + 1)
                    .saturating_sub(u64::from(*back))
                    .max(self.model.first_index());
                if from <= self.model.last_index() {
                    self.model
                        .entries
                        .truncate((from - self.model.first_index()) as usize);
                    self.model.synced = self.model.last_index();
                }
                self.tlog().truncate_suffix(from)?;
            }
            Op::Collapse { ahead } => {
                let below = self.model.first_index() + u64::from(*ahead);
                let segments = self.tlog().segments();
                let mut expected_first = self.model.first_index();
                for segment in &segments[..segments.len() - 1] {
                    if segment.first_index + segment.entry_count > below {
                        break;
                    }
                    expected_first = segment.first_index + segment.entry_count;
                }
                let dropped = (expected_first - self.model.first_index()) as usize;
                if dropped > 0 {
                    self.model.base_term = self.model.entries[dropped - 1].term;
                    self.model.entries.drain(..dropped);
                    self.model.base_index = expected_first - 1;
                }
                let first = self.tlog().collapse(below)?;
                assert_eq!(first, expected_first, "collapse({below}) of {segments:?}");
            }
            Op::Reset { delta, term_bump } => {
                let after = self
                    .model
                    .last_index()
                    .saturating_add_signed(i64::from(*delta));
                let term = self.model.last_term() + u64::from(*term_bump);
                self.model.base_index = after;
                self.model.base_term = term;
                self.model.entries.clear();
                self.model.synced = after;
                self.tlog().reset(after, term)?;
            }
            Op::SaveHardState { term_bump, vote } => {
                let state = HardState {
                    term: self.model.hard_state.map_or(0, |h| h.term) + u64::from(*term_bump),
                    voted_for: vote.map(|v| consensus::NodeId(u64::from(v))),
                    incarnation: u64::from(*term_bump) + 1,
                    standing: if vote.is_some() {
                        consensus::Standing::Trusted
                    } else {
                        consensus::Standing::Recovering
                    },
                };
                self.model.hard_state = Some(state);
                self.tlog().save_hard_state(state)?;
            }
            Op::Reopen | Op::Crash { .. } | Op::CrashDuring { .. } => {
                unreachable!("handled by run")
            }
        }
        Ok(())
    }

    fn reopen(&mut self) -> Result<(), TestCaseError> {
        self.tlog = None;
        self.wire = Tripwire::new(self.sim.clone());
        self.tlog = Some(open(&self.wire, self.options)?);
        Ok(())
    }

    fn run(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Reopen => {
                self.reopen()?;
                self.check()?;
            }
            Op::Crash { seed } => {
                self.sim.crash(&mut chooser(*seed));
                let before = self.model.clone();
                self.reopen()?;
                self.check_after_crash(&before, &before, None)?;
            }
            Op::CrashDuring {
                op,
                after_ops,
                seed,
            } => {
                let before = self.model.clone();
                self.wire.arm(u32::from(*after_ops), *seed);
                let result = self.apply(op);
                let tripped = self.wire.disarm();
                match (result, tripped) {
                    (Ok(()), false) => self.check()?,
                    (Err(err), true) => {
                        // The model ran ahead: it is what the operation
                        // would have left had it finished.
                        let intended = self.model.clone();
                        self.reopen()?;
                        self.check_after_crash(&before, &intended, Some(op))
                            .map_err(|e| {
                                TestCaseError::fail(format!("{e} (crash in {op:?}: {err})"))
                            })?;
                    }
                    (Ok(()), true) => return Err(TestCaseError::fail("the crash went unnoticed")),
                    (Err(err), false) => {
                        return Err(TestCaseError::fail(format!("{op:?} failed: {err}")))
                    }
                }
            }
            op => {
                ok(self.apply(op), &format!("{op:?}"))?;
                self.check()?;
            }
        }
        Ok(())
    }

    /// The tlog and the model agree on everything.
    fn check(&mut self) -> Result<(), TestCaseError> {
        let model = self.model.clone();
        let tlog = self.tlog();
        prop_assert_eq!(tlog.first_index(), model.first_index());
        prop_assert_eq!(tlog.last_index(), model.last_index());
        prop_assert_eq!(tlog.last_term(), model.last_term());
        prop_assert_eq!(tlog.term(model.base_index), Some(model.base_term));
        if model.base_index > 0 {
            prop_assert_eq!(tlog.term(model.base_index - 1), None);
        }
        prop_assert_eq!(tlog.term(model.last_index() + 1), None);
        for e in &model.entries {
            prop_assert_eq!(tlog.term(e.index), Some(e.term));
        }
        prop_assert_eq!(&all_entries(tlog), &model.entries);
        // Ranges from every start, under a byte budget: as many entries as
        // fit (at least one), never more.
        const BUDGET_BYTES: u64 = 150;
        for start in 0..model.entries.len() {
            let from = model.first_index() + start as u64;
            let got = ok(
                tlog.read(from, model.last_index() + 1, BUDGET_BYTES),
                "read range",
            )?;
            let mut fit = 0;
            let mut spent = 0u64;
            for e in &model.entries[start..] {
                spent += e.payload.len() as u64;
                if spent > BUDGET_BYTES && fit > 0 {
                    break;
                }
                fit += 1;
            }
            prop_assert_eq!(
                &got[..],
                &model.entries[start..start + fit],
                "read from {}",
                from
            );
        }
        prop_assert!(
            tlog.synced_index() >= model.synced,
            "synced {} < model {}",
            tlog.synced_index(),
            model.synced
        );
        prop_assert!(tlog.synced_index() <= model.last_index());
        prop_assert_eq!(tlog.hard_state(), model.hard_state);
        // Rotation syncs the full segment: the tlog may vouch for more.
        self.model.synced = self.tlog().synced_index();
        Ok(())
    }

    /// After a crash: the recovered log is allowed by the contract given the
    /// model `before` the interrupted operation and the one it `intended`.
    /// Then the model becomes what was recovered.
    fn check_after_crash(
        &mut self,
        before: &Model,
        intended: &Model,
        during: Option<&Op>,
    ) -> Result<(), TestCaseError> {
        let recovered = all_entries(self.tlog());
        let tlog = self
            .tlog
            .as_ref()
            .ok_or_else(|| TestCaseError::fail("no tlog"))?;
        let (first, base_term) = (tlog.first_index(), tlog.term(tlog.first_index() - 1));
        let hard_state = tlog.hard_state();
        prop_assert!(
            hard_state == before.hard_state || hard_state == intended.hard_state,
            "hard state {:?}, before {:?}, intended {:?}",
            hard_state,
            before.hard_state,
            intended.hard_state
        );
        // The log the recovery must be a prefix of, and what it must hold.
        let mut candidates: Vec<(Model, u64)> = Vec::new();
        match during {
            None
            | Some(Op::Append { .. } | Op::Sync | Op::SyncJob { .. } | Op::SaveHardState { .. }) => {
                candidates.push((intended.clone(), before.synced));
            }
            Some(Op::Truncate { .. }) => {
                // A prefix of the old log; synced entries below the cut stay.
                candidates.push((before.clone(), before.synced.min(intended.last_index())));
            }
            Some(Op::Collapse { .. }) => {
                // All or nothing: the base file is the commit point.
                candidates.push((before.clone(), before.synced));
                candidates.push((intended.clone(), before.synced));
            }
            Some(Op::Reset { .. }) => {
                candidates.push((before.clone(), before.synced));
                candidates.push((intended.clone(), intended.synced));
            }
            Some(other) => unreachable!("not run during a crash: {other:?}"),
        }
        let allowed = candidates.iter().any(|(m, synced)| {
            first == m.first_index()
                && base_term == Some(m.base_term)
                && recovered.len() <= m.entries.len()
                && recovered[..] == m.entries[..recovered.len()]
                && m.base_index + recovered.len() as u64 >= (*synced).max(m.base_index)
        });
        prop_assert!(
            allowed,
            "recovered first {} base term {:?}, {} entries {:?}; before: {:?}",
            first,
            base_term,
            recovered.len(),
            recovered
                .iter()
                .map(|e| (e.index, e.term))
                .collect::<Vec<_>>(),
            before
        );
        let Some(base_term) = base_term else {
            return Err(TestCaseError::fail("no base term"));
        };
        self.model.base_index = first - 1;
        self.model.base_term = base_term;
        self.model.entries = recovered;
        self.model.hard_state = hard_state;
        self.model.synced = self.model.last_index();
        self.check()
    }
}

fn run_case(options: TlogOptions, ops: &[Op]) -> Result<(), TestCaseError> {
    let sim = SimDisk::new();
    let wire = Tripwire::new(sim.clone());
    let tlog = open(&wire, options)?;
    let mut harness = Harness {
        sim,
        wire,
        options,
        tlog: Some(tlog),
        model: Model {
            base_index: 0,
            base_term: 0,
            entries: Vec::new(),
            synced: 0,
            hard_state: None,
            next_tag: 0,
        },
    };
    harness.check()?;
    for op in ops {
        harness.run(op)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn tlog_matches_a_vec_through_crashes(options in options(), ops in proptest::collection::vec(op(), 1..60)) {
        run_case(options, &ops)?;
    }
}
