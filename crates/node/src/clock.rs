//! The node's monotonic local clock, as the consensus core's [`Time`].

use consensus::Time;
use std::time::Instant;

/// Nanoseconds since the node started (monotonic, never goes back).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    pub fn now(&self) -> Time {
        Time(u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// The instant this clock reads `t`.
    pub fn instant_at(&self, t: Time) -> Instant {
        self.start + std::time::Duration::from_nanos(t.0)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}
