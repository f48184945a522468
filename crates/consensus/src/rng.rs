//! SplitMix64: the one small seeded PRNG of the project. The core draws its
//! election timeouts from it (reproducible from the config's seed); the
//! simulator and the bench use it too. Its output is fixed by the algorithm,
//! not by a crate version, so a seed replays the same run on any machine and
//! any later build. Not for anything that needs unpredictability.

/// A small, fast, seedable PRNG (SplitMix64).
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose whole output is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..high` (`low` if the range is empty), by modulo.
    pub fn in_range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        low + self.next_u64() % (high - low)
    }

    /// A number in `0..n`; `n` must be positive. Lemire's multiply-shift
    /// (a bias below 2^-32 for the bounds used here).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "SplitMix64::below(0)");
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        assert!(low <= high, "SplitMix64::between({low}, {high})");
        low + self.below(high - low + 1)
    }

    /// True with probability `per_million / 1_000_000`.
    pub fn chance(&mut self, per_million: u64) -> bool {
        self.below(1_000_000) < per_million
    }

    /// An independent generator, for a component that must not shift the
    /// parent's sequence when it draws more or fewer numbers.
    pub fn fork(&mut self) -> SplitMix64 {
        SplitMix64::new(self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_in_range() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..100 {
            let x = a.in_range(10, 20);
            assert_eq!(x, b.in_range(10, 20));
            assert!((10..20).contains(&x));
        }
        assert_eq!(SplitMix64::new(1).in_range(5, 5), 5);
        let c: Vec<u64> = (0..5)
            .scan(SplitMix64::new(8), |r, _| Some(r.next_u64()))
            .collect();
        let d: Vec<u64> = (0..5)
            .scan(SplitMix64::new(7), |r, _| Some(r.next_u64()))
            .collect();
        assert_ne!(c, d);
    }

    #[test]
    fn below_and_between_stay_in_range_and_cover_it() {
        let mut rng = SplitMix64::new(1);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let x = rng.below(7);
            assert!(x < 7);
            seen[x as usize] = true;
            assert!((3..=5).contains(&rng.between(3, 5)));
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn chance_follows_its_rate() {
        let mut rng = SplitMix64::new(2);
        let hits = (0..10_000).filter(|_| rng.chance(250_000)).count();
        assert!((2_000..3_000).contains(&hits), "{hits}");
        assert!(!(0..1000).any(|_| rng.chance(0)));
    }
}
