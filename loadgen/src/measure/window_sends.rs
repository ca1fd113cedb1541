//! The sends of the measured period by when they were due, in short spans: a period that ends
//! before it was planned to (a server that fell silent, noticed the answer timeout later)
//! counts only the sends due before its new end, not those made into the silence meanwhile.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Most spans kept, whatever the period's length: a long period has wider ones.
const MOST_SPANS: u64 = 4096;

/// The narrowest span: sends are due to the microsecond, a period ends to the second's check.
const NARROWEST_US: u64 = 10_000;

/// Sends counted by the span of the measured period they were due in.
pub struct WindowSends {
    start_us: u64,
    width_us: u64,
    spans: Box<[AtomicU64]>,
}

impl WindowSends {
    /// For a measured period from `start_us` to `end_us` (run clock).
    pub fn new(start_us: u64, end_us: u64) -> Self {
        let length = end_us.saturating_sub(start_us).max(1);
        let width_us = length.div_ceil(MOST_SPANS).max(NARROWEST_US);
        let spans = length.div_ceil(width_us);
        Self {
            start_us,
            width_us,
            spans: (0..spans).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// A send due at `due_us`, in the measured period.
    pub fn record(&self, due_us: u64) {
        let span = (due_us.saturating_sub(self.start_us) / self.width_us) as usize;
        if let Some(count) = self.spans.get(span).or(self.spans.last()) {
            count.fetch_add(1, Relaxed);
        }
    }

    /// The sends due before `end_us`, to the span: those of the span `end_us` falls in count
    /// whole (at most one span's sends more), so that the planned end counts every one.
    pub fn before(&self, end_us: u64) -> u64 {
        self.spans
            .iter()
            .enumerate()
            .take_while(|(i, _)| self.start_us + *i as u64 * self.width_us < end_us)
            .map(|(_, count)| count.load(Relaxed))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::WindowSends;

    #[test]
    fn a_period_cut_short_counts_the_sends_due_before_its_end() {
        // A 10 s period from 5 s: spans of 10 ms.
        let sends = WindowSends::new(5_000_000, 15_000_000);
        for due in (5_000_000..15_000_000).step_by(1_000) {
            sends.record(due);
        }
        assert_eq!(
            sends.before(15_000_000),
            10_000,
            "the planned end counts every one"
        );
        // Cut at 8 s: the first 3 s, to the span.
        assert_eq!(sends.before(8_000_000), 3_000);
        assert_eq!(
            sends.before(8_005_000),
            3_010,
            "the span the end falls in counts whole"
        );
        assert_eq!(sends.before(5_000_000), 0);
    }

    #[test]
    fn a_long_period_keeps_a_bounded_number_of_spans() {
        let day = 24 * 3_600 * 1_000_000;
        let sends = WindowSends::new(0, day);
        assert!(sends.spans.len() as u64 <= super::MOST_SPANS);
        sends.record(day - 1);
        sends.record(day + 5);
        assert_eq!(sends.before(day), 2);
    }
}
