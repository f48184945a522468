//! `sim`: a deterministic simulator of whole arakoon-rs clusters.
//!
//! Everything here is driven by one seed: same seed, same run, byte for byte.
//!
//! Each simulated node runs the real `consensus::Core`, `tlog::Tlog` and
//! `store::Store` on its own [`disk::SimDisk`], driven the way the real node
//! drives them ([`node`]). Around them: a network that delays, reorders,
//! drops, duplicates and partitions ([`net`]), per-node clocks that drift
//! ([`clock`]), clients that time out and retry ([`workload`]), a fault
//! schedule with crashes, pauses and partitions followed by a quiet phase
//! ([`run`]), and the checks ([`observe`], [`checker`]).
//!
//! What a run checks:
//! - the client history is linearizable (per key, Wing–Gong, with unknown
//!   outcomes; a final read of every key after convergence catches lost
//!   acknowledged writes);
//! - at most one master per term;
//! - every node applies the same entry at each index and holds the same
//!   values afterwards; all stores are identical once converged;
//! - `Consistent` reads are served in term order over real time (no two
//!   leases overlap); `AtLeast(i)` reads return the value at an index >= i;
//! - liveness once faults heal: a master, every client done, all nodes
//!   converged within a bound.
//!
//! What it does not cover yet: tlog collapse and snapshot catch-up, learners,
//! preferred/forced masters, and multi-key sequences (the workload's
//! sequences assert and set one key, so the per-key checker applies).

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod checker;
pub mod clock;
pub mod command;
pub mod net;
pub mod node;
pub mod observe;
pub mod rng;
pub mod run;
pub mod storage;
pub mod sweep;
pub mod workload;
