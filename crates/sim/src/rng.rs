//! The simulator's only source of randomness: the project's SplitMix64
//! ([`consensus::rng::SplitMix64`]), seeded once per run. Its output is fixed
//! by the algorithm, not by a crate version, so a seed replays the same run
//! on any machine and any later build.

pub use consensus::rng::SplitMix64 as Rng;
