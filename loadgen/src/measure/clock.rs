//! The run's clock: one monotonic origin for every timestamp of a run, in microseconds.

use std::time::Duration;

use tokio::time::Instant;

/// The run's clock: one monotonic origin for every timestamp of the run.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    /// Wall-clock time of `start`, for logs that other tools read.
    pub started_at: std::time::SystemTime,
}

impl Clock {
    /// A clock that starts now.
    pub fn start() -> Self {
        Self {
            start: Instant::now(),
            started_at: std::time::SystemTime::now(),
        }
    }

    /// Microseconds since the run started.
    pub fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// The instant `us` after the start.
    pub fn at(&self, us: u64) -> Instant {
        self.start + Duration::from_micros(us)
    }
}
