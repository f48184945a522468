//! Retrying: which failed attempts may be tried again ([`after_failure`], a
//! pure function the client applies), and the one [`RetryPolicy`] that
//! bounds how often and how fast.
//!
//! The invariant everything here defends: a request that is not idempotent
//! ([`is_idempotent`]) is never sent again once its bytes may have reached a
//! node (the connection failed or timed out after writing began, or the
//! node answered `NoLongerMaster` or `GoingDown`). Only an answer that says
//! the node did nothing (`NotMaster`, `E_MAX_CONNECTIONS`), or a failure
//! before anything was sent (no connection, no master found), lets such a
//! request be tried again. [`after_failure`] asserts it.
//!
//! The cached master follows the same decision: a node that named another
//! node as master sends the request there at once; a node that cannot be
//! reached, is not the master, or is going down is forgotten as master (if
//! it still is the cached one), so the next attempt looks again.

use std::time::Duration;

use protocol::Command;

/// Most attempts of one request, the first included. With the default
/// backoff the waits between them add up to 9.15 s (plus the attempts
/// themselves): a master failover must finish within that for a request to
/// ride it out; raise it for a `lease_period` longer than a few seconds.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;
/// Wait before the second attempt; doubled before each following one.
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(50);
/// Longest wait between two attempts.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Bounded exponential backoff.
///
/// ```
/// use client::RetryPolicy;
/// use std::time::Duration;
/// let policy = RetryPolicy::default();
/// assert_eq!(policy.backoff(1), Duration::from_millis(50));
/// assert_eq!(policy.backoff(2), Duration::from_millis(100));
/// assert_eq!(RetryPolicy::no_retry().max_attempts, 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Most attempts of one request, the first included (at least 1).
    pub max_attempts: u32,
    /// Wait after the first failed attempt.
    pub backoff_initial: Duration,
    /// Longest wait between two attempts.
    pub backoff_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff_initial: DEFAULT_BACKOFF_INITIAL,
            backoff_max: DEFAULT_BACKOFF_MAX,
        }
    }
}

impl RetryPolicy {
    /// One attempt, never a retry.
    pub fn no_retry() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The wait after failed attempt number `failed_attempts` (1-based):
    /// `backoff_initial * 2^(failed_attempts - 1)`, at most `backoff_max`.
    pub fn backoff(&self, failed_attempts: u32) -> Duration {
        let doublings = failed_attempts.saturating_sub(1).min(31);
        self.backoff_initial
            .saturating_mul(1u32 << doublings)
            .min(self.backoff_max)
    }

    /// Whether another attempt is allowed after `failed_attempts` failures.
    pub fn allows_another(&self, failed_attempts: u32) -> bool {
        failed_attempts < self.max_attempts.max(1)
    }
}

/// Whether sending a request twice can do harm: only requests that change
/// nothing (reads, queries, `nop`) may be resent after they may have
/// reached a node.
pub(crate) fn is_idempotent(command: Command) -> bool {
    match command {
        Command::Ping
        | Command::WhoMaster
        | Command::Exists
        | Command::Get
        | Command::Range
        | Command::PrefixKeys
        | Command::RangeEntries
        | Command::MultiGet
        | Command::ExpectProgressPossible
        | Command::Statistics
        | Command::Assert
        | Command::GetKeyCount
        | Command::GetNurseryCfg
        | Command::RevRangeEntries
        | Command::Version
        | Command::AssertExists
        | Command::MultiGetOption
        | Command::CurrentState
        | Command::Inspect
        | Command::GetTxid
        | Command::Nop => true,
        Command::Set
        | Command::Delete
        | Command::TestAndSet
        | Command::Sequence
        | Command::CollapseTlogs
        | Command::UserFunction
        | Command::Confirm
        | Command::SyncedSequence
        | Command::DeletePrefix
        | Command::DropMaster
        | Command::Replace
        // Admin work: long, and not to be started twice.
        | Command::GetDb
        | Command::OptimizeDb
        | Command::DefragDb
        | Command::FlushStore
        | Command::CopyDbToHead => false,
    }
}

/// One attempt of a request that did not end in the reply to it. (A reply
/// to the command sent ends the request: there is nothing to decide, and the
/// cached master stays.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) happened: Happened,
    /// [`is_idempotent`] of the request's command.
    pub(crate) idempotent: bool,
    /// Whether the request goes to the master (discovered), not to one node
    /// on purpose.
    pub(crate) to_master: bool,
}

/// What went wrong in one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Happened {
    /// No master was cached, and no node named one that confirms it
    /// (`Error::NoMaster`). Nothing was sent.
    NoMasterFound,
    /// No master was cached, and discovery failed for a reason that asking
    /// again will not change (a node serves another cluster). Nothing was
    /// sent.
    DiscoveryFailed,
    /// The request went to node `asked` (an index into the client's nodes).
    Asked { asked: usize, answer: Answer },
}

/// How node `asked` failed the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// An answer, but to another command: the node or the stream is broken.
    WrongReply,
    /// A failure answer.
    Refused(Refusal),
    /// No connection could be made: nothing of the request left the client.
    NotSent,
    /// The request was (maybe partly) written, then the connection failed or
    /// no answer came in time: the node may have applied it.
    MaybeSent,
}

/// The kinds of failure answer that the decision tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `NotMaster`: the node did nothing. `hint` is the node it names as
    /// master, as an index into the client's nodes (`None`: it names none,
    /// or a node not in the client's list).
    NotMaster { hint: Option<usize> },
    /// `NoLongerMaster`: the node lost mastership while handling the
    /// request, which may be applied all the same.
    NoLongerMaster,
    /// `E_MAX_CONNECTIONS`: refused at the door, before any request was
    /// read.
    MaxConnections,
    /// `E_GOING_DOWN`: the node stops while handling the request; an update
    /// may still be committed by the next master.
    GoingDown,
    /// Any other failure answer (`NotFound`, `AssertionFailed`,
    /// `WrongCluster`, …): it is the request's answer.
    Other,
}

/// What the client does after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) next: Next,
    pub(crate) master: MasterCache,
}

/// The next step of the request. A retry or redirect is still bounded by
/// the [`RetryPolicy`]: when it allows no other attempt, the attempt's error
/// is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Try again after the policy's backoff.
    Retry,
    /// Try again at once: node `master` was named master and is now cached,
    /// so the next attempt goes there (unless another request changed the
    /// cache meanwhile: the next attempt follows the cache).
    Redirect { master: usize },
    /// Give up with the attempt's error.
    Fail,
    /// Give up: the request may have been applied on node `asked`
    /// (`Error::OutcomeUnknown`).
    FailOutcomeUnknown { asked: usize },
}

/// What becomes of the cached master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MasterCache {
    Keep,
    /// Cache node `master` as master.
    Set {
        master: usize,
    },
    /// Forget the cached master if it is still node `asked` (another
    /// request may have found a new one meanwhile).
    Forget {
        asked: usize,
    },
}

/// What to do after `failure`: the rules of the crate docs, in one place.
pub(crate) fn after_failure(failure: Failure) -> Decision {
    let Failure {
        happened,
        idempotent,
        to_master,
    } = failure;
    // Retry when `idempotent`, else give up with the error the caller sees.
    let retry_or = |otherwise| if idempotent { Next::Retry } else { otherwise };
    let (next, master) = match happened {
        // Nothing was sent: safe for any request.
        Happened::NoMasterFound => (Next::Retry, MasterCache::Keep),
        Happened::DiscoveryFailed => (Next::Fail, MasterCache::Keep),
        Happened::Asked { asked, answer } => {
            let forget = MasterCache::Forget { asked };
            match answer {
                Answer::WrongReply => (Next::Fail, MasterCache::Keep),
                Answer::NotSent => (Next::Retry, forget),
                Answer::MaybeSent => (retry_or(Next::FailOutcomeUnknown { asked }), forget),
                Answer::Refused(refusal) => match refusal {
                    // Followed only when looking for the master; a node
                    // asked on purpose gives its answer.
                    Refusal::NotMaster { hint } if to_master => match hint {
                        Some(master) if master != asked => {
                            (Next::Redirect { master }, MasterCache::Set { master })
                        }
                        _ => (Next::Retry, forget),
                    },
                    Refusal::NoLongerMaster if to_master => (retry_or(Next::Fail), forget),
                    Refusal::MaxConnections => (Next::Retry, MasterCache::Keep),
                    Refusal::GoingDown => (retry_or(Next::FailOutcomeUnknown { asked }), forget),
                    Refusal::NotMaster { .. } | Refusal::NoLongerMaster | Refusal::Other => {
                        (Next::Fail, MasterCache::Keep)
                    }
                },
            }
        }
    };
    let again = matches!(next, Next::Retry | Next::Redirect { .. });
    assert!(
        idempotent || !again || !may_have_reached(happened),
        "{failure:?}: a request that is not idempotent would be resent"
    );
    Decision { next, master }
}

/// Whether the request may have been applied, as far as the client can
/// tell from `happened`.
fn may_have_reached(happened: Happened) -> bool {
    match happened {
        Happened::NoMasterFound | Happened::DiscoveryFailed => false,
        Happened::Asked { answer, .. } => match answer {
            Answer::NotSent => false,
            Answer::MaybeSent | Answer::WrongReply => true,
            Answer::Refused(refusal) => match refusal {
                Refusal::NotMaster { .. } | Refusal::MaxConnections => false,
                Refusal::NoLongerMaster | Refusal::GoingDown | Refusal::Other => true,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rule: only requests that change nothing are resent after they may
    /// have reached a node.
    #[test]
    fn every_update_is_not_idempotent() {
        for command in [
            Command::Set,
            Command::Delete,
            Command::TestAndSet,
            Command::Sequence,
            Command::SyncedSequence,
            Command::DeletePrefix,
            Command::Replace,
            Command::Confirm,
            Command::UserFunction,
            Command::DropMaster,
            Command::CollapseTlogs,
        ] {
            assert!(!is_idempotent(command), "{command}");
        }
        assert!(is_idempotent(Command::Get));
        assert!(is_idempotent(Command::WhoMaster));
    }

    /// The node asked in the table below; node 0 is another node.
    const ASKED: usize = 1;
    const OTHER: usize = 0;

    const READ: bool = true;
    const UPDATE: bool = false;
    const TO_MASTER: bool = true;
    const TO_NODE: bool = false;

    fn asked(answer: Answer) -> Happened {
        Happened::Asked {
            asked: ASKED,
            answer,
        }
    }

    fn refused(refusal: Refusal) -> Happened {
        asked(Answer::Refused(refusal))
    }

    fn not_master(hint: Option<usize>) -> Happened {
        refused(Refusal::NotMaster { hint })
    }

    const RETRY: Next = Next::Retry;
    const FAIL: Next = Next::Fail;
    const UNKNOWN: Next = Next::FailOutcomeUnknown { asked: ASKED };
    const KEEP: MasterCache = MasterCache::Keep;
    const FORGET: MasterCache = MasterCache::Forget { asked: ASKED };

    /// Every rule of `after_failure`, one row each: (rule, what happened,
    /// idempotent, to master) → (next step, cached master).
    #[test]
    fn each_rule_decides_as_documented() {
        #[rustfmt::skip]
        let table: &[(&str, Happened, bool, bool, Next, MasterCache)] = &[
            ("no master found: nothing sent, retry any request",
             Happened::NoMasterFound, UPDATE, TO_MASTER, RETRY, KEEP),
            ("discovery failed otherwise (wrong cluster): give up",
             Happened::DiscoveryFailed, READ, TO_MASTER, FAIL, KEEP),
            ("NotMaster naming another node: go there at once, even an update",
             not_master(Some(OTHER)), UPDATE, TO_MASTER,
             Next::Redirect { master: OTHER }, MasterCache::Set { master: OTHER }),
            ("NotMaster naming itself: forget it and look again",
             not_master(Some(ASKED)), UPDATE, TO_MASTER, RETRY, FORGET),
            ("NotMaster naming no node we know: forget it and look again",
             not_master(None), UPDATE, TO_MASTER, RETRY, FORGET),
            ("NotMaster from a node asked on purpose is its answer",
             not_master(Some(OTHER)), READ, TO_NODE, FAIL, KEEP),
            ("NoLongerMaster, read: forget it and retry",
             refused(Refusal::NoLongerMaster), READ, TO_MASTER, RETRY, FORGET),
            ("NoLongerMaster, update: forget it, never resend",
             refused(Refusal::NoLongerMaster), UPDATE, TO_MASTER, FAIL, FORGET),
            ("NoLongerMaster from a node asked on purpose is its answer",
             refused(Refusal::NoLongerMaster), READ, TO_NODE, FAIL, KEEP),
            ("E_MAX_CONNECTIONS: refused at the door, retry any request",
             refused(Refusal::MaxConnections), UPDATE, TO_MASTER, RETRY, KEEP),
            ("E_MAX_CONNECTIONS from a node asked on purpose: retry too",
             refused(Refusal::MaxConnections), UPDATE, TO_NODE, RETRY, KEEP),
            ("E_GOING_DOWN, read: forget it and retry",
             refused(Refusal::GoingDown), READ, TO_MASTER, RETRY, FORGET),
            ("E_GOING_DOWN, update: the outcome is unknown",
             refused(Refusal::GoingDown), UPDATE, TO_MASTER, UNKNOWN, FORGET),
            ("E_GOING_DOWN from a node asked on purpose: same",
             refused(Refusal::GoingDown), UPDATE, TO_NODE, UNKNOWN, FORGET),
            ("another refusal is the answer, for a read",
             refused(Refusal::Other), READ, TO_MASTER, FAIL, KEEP),
            ("another refusal is the answer, for an update",
             refused(Refusal::Other), UPDATE, TO_MASTER, FAIL, KEEP),
            ("a reply to another command: give up",
             asked(Answer::WrongReply), READ, TO_MASTER, FAIL, KEEP),
            ("not sent (no connection): forget it, retry any request",
             asked(Answer::NotSent), UPDATE, TO_MASTER, RETRY, FORGET),
            ("not sent to a node asked on purpose: same",
             asked(Answer::NotSent), UPDATE, TO_NODE, RETRY, FORGET),
            ("maybe sent, read: forget it and retry",
             asked(Answer::MaybeSent), READ, TO_MASTER, RETRY, FORGET),
            ("maybe sent, update: the outcome is unknown",
             asked(Answer::MaybeSent), UPDATE, TO_MASTER, UNKNOWN, FORGET),
            ("maybe sent, update to a node asked on purpose: same",
             asked(Answer::MaybeSent), UPDATE, TO_NODE, UNKNOWN, FORGET),
        ];
        for &(rule, happened, idempotent, to_master, next, master) in table {
            let failure = Failure {
                happened,
                idempotent,
                to_master,
            };
            assert_eq!(
                after_failure(failure),
                Decision { next, master },
                "rule: {rule}; input {failure:?}"
            );
        }
    }

    /// Every input the decision can get, over three nodes.
    fn every_failure() -> Vec<Failure> {
        let mut answers = vec![Answer::WrongReply, Answer::NotSent, Answer::MaybeSent];
        for hint in [None, Some(0), Some(1), Some(2)] {
            answers.push(Answer::Refused(Refusal::NotMaster { hint }));
        }
        answers.extend(
            [
                Refusal::NoLongerMaster,
                Refusal::MaxConnections,
                Refusal::GoingDown,
                Refusal::Other,
            ]
            .map(Answer::Refused),
        );
        let mut happened = vec![Happened::NoMasterFound, Happened::DiscoveryFailed];
        for asked in 0..3 {
            happened.extend(
                answers
                    .iter()
                    .map(|&answer| Happened::Asked { asked, answer }),
            );
        }
        let mut failures = Vec::new();
        for &happened in &happened {
            for idempotent in [false, true] {
                for to_master in [false, true] {
                    failures.push(Failure {
                        happened,
                        idempotent,
                        to_master,
                    });
                }
            }
        }
        failures
    }

    /// Rule (crate docs): an update whose bytes may have reached a node is
    /// never resent; it fails, and when the failure itself does not say so
    /// (`NoLongerMaster`), as outcome unknown.
    #[test]
    fn an_update_that_may_have_reached_a_node_is_never_resent() {
        for failure in every_failure() {
            let Decision { next, .. } = after_failure(failure);
            if failure.idempotent || !may_have_reached(failure.happened) {
                continue;
            }
            assert!(
                matches!(next, Next::Fail | Next::FailOutcomeUnknown { .. }),
                "{failure:?} -> {next:?}"
            );
        }
    }

    /// A redirect goes to another node than the one asked, the one now
    /// cached; the cache only ever forgets the node that failed; an
    /// outcome-unknown failure names the node asked.
    #[test]
    fn decisions_name_the_right_nodes() {
        for failure in every_failure() {
            let decision = after_failure(failure);
            let asked = match failure.happened {
                Happened::Asked { asked, .. } => Some(asked),
                Happened::NoMasterFound | Happened::DiscoveryFailed => None,
            };
            if let Next::Redirect { master } = decision.next {
                assert_ne!(Some(master), asked, "{failure:?}");
                assert_eq!(decision.master, MasterCache::Set { master }, "{failure:?}");
                assert!(failure.to_master, "{failure:?}");
            }
            if let MasterCache::Forget { asked: forgotten } = decision.master {
                assert_eq!(Some(forgotten), asked, "{failure:?}");
            }
            if let Next::FailOutcomeUnknown { asked: unknown } = decision.next {
                assert_eq!(Some(unknown), asked, "{failure:?}");
                assert!(!failure.idempotent, "{failure:?}");
            }
            if asked.is_none() {
                assert_eq!(decision.master, MasterCache::Keep, "{failure:?}");
            }
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        let waits: Vec<_> = (1..=8).map(|n| p.backoff(n).as_millis()).collect();
        assert_eq!(waits, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
        let total: Duration = (1..DEFAULT_MAX_ATTEMPTS).map(|n| p.backoff(n)).sum();
        assert_eq!(total, Duration::from_millis(9150));
        assert_eq!(p.backoff(u32::MAX), DEFAULT_BACKOFF_MAX);
    }

    #[test]
    fn attempts_are_bounded() {
        let p = RetryPolicy::default();
        assert!(p.allows_another(DEFAULT_MAX_ATTEMPTS - 1));
        assert!(!p.allows_another(DEFAULT_MAX_ATTEMPTS));
        let zero = RetryPolicy {
            max_attempts: 0,
            ..p
        };
        assert!(!zero.allows_another(1), "0 attempts means 1");
    }
}
