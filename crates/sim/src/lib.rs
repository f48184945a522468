//! `sim`: a deterministic simulator of whole arakoon-rs clusters.
//!
//! Everything here is driven by one seed: same seed, same run, byte for byte.

pub mod checker;
pub mod clock;
pub mod net;
pub mod rng;
pub mod workload;
