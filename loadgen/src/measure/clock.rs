//! The run's clock: one monotonic origin for every timestamp of a run, in microseconds, and
//! the wall-clock time base the bodies of messages carry, so that generators loading one
//! server together (shards) time each other's messages on one clock.

use std::time::Duration;

use tokio::time::Instant;

/// The run's clock: one monotonic origin for every timestamp of the run.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    /// Wall-clock time of `start`, for logs that other tools read.
    pub started_at: std::time::SystemTime,
    /// `started_at` in µs since the Unix epoch.
    epoch_us: u64,
}

impl Clock {
    /// A clock that starts now.
    pub fn start() -> Self {
        let started_at = std::time::SystemTime::now();
        Self {
            start: Instant::now(),
            started_at,
            epoch_us: started_at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64),
        }
    }

    /// `us` on this run's clock as wall-clock time, µs since the Unix epoch: what the bodies of
    /// messages carry. Two generators on one machine read one wall clock, so a message one
    /// sends and the other receives is timed exactly; on two machines the figure is off by as
    /// much as their clocks disagree.
    pub fn wall_us(&self, us: u64) -> u64 {
        us + self.epoch_us
    }

    /// A wall-clock time from a body, on this run's clock (0 when it is before this run
    /// started).
    pub fn local_us(&self, wall_us: u64) -> u64 {
        wall_us.saturating_sub(self.epoch_us)
    }

    /// From the wall-clock time `wall_us` (a body's) to `now_us` on this run's clock.
    pub fn since_wall(&self, wall_us: u64, now_us: u64) -> u64 {
        self.wall_us(now_us).saturating_sub(wall_us)
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
