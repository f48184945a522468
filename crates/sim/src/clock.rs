//! Per-node clocks: each node reads its own monotonic clock, which runs at a
//! rate that differs from real time by at most the configured drift, from
//! its own origin. Nodes never see real time.

/// A node's clock: `local = origin + real * (1 + drift_ppm / 1e6)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeClock {
    /// The local reading at real time 0 (clocks of different nodes are unrelated).
    pub origin_ns: u64,
    /// Rate error in parts per million; negative runs slow.
    pub drift_ppm: i64,
}

impl NodeClock {
    /// The local monotonic time at real time `real_ns`.
    pub fn local_ns(&self, real_ns: u64) -> u64 {
        let skew = i128::from(real_ns) * i128::from(self.drift_ppm) / 1_000_000;
        let local = i128::from(self.origin_ns) + i128::from(real_ns) + skew;
        u64::try_from(local.max(0)).unwrap_or(u64::MAX)
    }

    /// The real time at which the local clock will read at least `local_ns`
    /// (for scheduling a node's timers).
    pub fn real_ns_at(&self, local_ns: u64) -> u64 {
        let since_origin = i128::from(local_ns) - i128::from(self.origin_ns);
        let rate = 1_000_000 + i128::from(self.drift_ppm);
        assert!(rate > 0, "drift beyond -100%");
        let estimate = (since_origin * 1_000_000 + rate - 1) / rate;
        let mut real = u64::try_from(estimate.max(0)).unwrap_or(u64::MAX);
        // The estimate is off by at most a nanosecond or two from rounding
        // in `local_ns`; settle on the exact first instant.
        while self.local_ns(real) < local_ns {
            real += 1;
        }
        while real > 0 && self.local_ns(real - 1) >= local_ns {
            real -= 1;
        }
        real
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_scales_elapsed_time() {
        let fast = NodeClock {
            origin_ns: 5,
            drift_ppm: 1_000,
        };
        assert_eq!(fast.local_ns(0), 5);
        assert_eq!(fast.local_ns(1_000_000), 5 + 1_001_000);
        let slow = NodeClock {
            origin_ns: 0,
            drift_ppm: -1_000,
        };
        assert_eq!(slow.local_ns(1_000_000), 999_000);
    }

    #[test]
    fn real_ns_at_inverts_local_ns() {
        for drift_ppm in [-5_000, -1, 0, 1, 5_000] {
            let c = NodeClock {
                origin_ns: 1_234_567,
                drift_ppm,
            };
            for local in [1_234_567u64, 2_000_000, 99_999_999_999] {
                let real = c.real_ns_at(local);
                assert!(c.local_ns(real) >= local, "drift {drift_ppm} local {local}");
                assert!(real == 0 || c.local_ns(real - 1) < local);
            }
        }
    }
}
