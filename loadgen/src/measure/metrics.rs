//! Latency recording without a global lock.
//!
//! Each worker thread records into histograms of its own (behind a mutex that only that thread
//! and the once-a-second collector ever take, so it is uncontended on the hot path). The
//! collector swaps each thread's histograms out every interval, adds them into the run's totals,
//! and keeps a summary per interval for the live display and the time series.
//!
//! All values are microseconds, in HdrHistograms with 3 significant digits, from 1 µs to one
//! hour. Samples whose message was intended inside the warm-up go to the interval view only,
//! never to the totals.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use hdrhistogram::Histogram;

/// Every histogram the generator keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Connect start → Welcome, for a client's first connection (always a full handshake).
    Connect,
    /// Connect start → Welcome, for a connection made again after a planned disconnect
    /// (`[churn]`): a resumed session where the transport has one, and with `0rtt` over QUIC
    /// a Hello sent in the first flight.
    Reconnect,
    /// Intended send → receive at the recipient (coordinated-omission corrected).
    Direct,
    /// Actual send → receive at the recipient.
    DirectUncorrected,
    /// Intended send → Ack at the sender.
    Ack,
    /// How late the generator got to a scheduled action, less the time its writes were held.
    ScheduleLag,
    /// Intended send → the generator starting to write the Send. Beside a small schedule lag, a
    /// large send delay is the server pushing back: flow control held earlier writes.
    SendDelay,
    /// Intended send → receive, per recipient of a group message.
    Group,
    /// `Group` for groups of up to 10 members.
    GroupLe10,
    /// `Group` for groups of 11 to 100 members.
    GroupLe100,
    /// `Group` for groups of 101 to 1,000 members.
    GroupLe1000,
    /// `Group` for groups of more than 1,000 members.
    GroupGt1000,
    /// Intended start of a file transfer → its last byte verified at the recipient.
    File,
    /// `Direct`, for deliveries while at least one file transfer was moving bytes.
    DirectDuringFiles,
    /// `Direct`, for deliveries while no file transfer was moving bytes (runs with files only).
    DirectWithoutFiles,
    /// How late a bare thread asking to wake every millisecond woke: the machine's own pauses
    /// (see [`crate::measure::hiccups`]).
    Hiccup,
}

impl Metric {
    /// All metrics, in report order.
    pub const ALL: [Metric; 16] = [
        Metric::Connect,
        Metric::Reconnect,
        Metric::Ack,
        Metric::Direct,
        Metric::DirectUncorrected,
        Metric::ScheduleLag,
        Metric::SendDelay,
        Metric::Group,
        Metric::GroupLe10,
        Metric::GroupLe100,
        Metric::GroupLe1000,
        Metric::GroupGt1000,
        Metric::File,
        Metric::DirectDuringFiles,
        Metric::DirectWithoutFiles,
        Metric::Hiccup,
    ];

    /// The per-bucket group metric.
    pub fn group_bucket(b: crate::workload::groups::Bucket) -> Self {
        use crate::workload::groups::Bucket;
        match b {
            Bucket::Le10 => Metric::GroupLe10,
            Bucket::Le100 => Metric::GroupLe100,
            Bucket::Le1000 => Metric::GroupLe1000,
            Bucket::Gt1000 => Metric::GroupGt1000,
        }
    }

    /// The name used in reports and SLOs.
    pub const fn name(self) -> &'static str {
        match self {
            Metric::Connect => "connect",
            Metric::Reconnect => "reconnect",
            Metric::Direct => "direct",
            Metric::DirectUncorrected => "direct_uncorrected",
            Metric::Ack => "ack",
            Metric::ScheduleLag => "schedule_lag",
            Metric::SendDelay => "send_delay",
            Metric::Group => "group",
            Metric::GroupLe10 => "group_le10",
            Metric::GroupLe100 => "group_le100",
            Metric::GroupLe1000 => "group_le1000",
            Metric::GroupGt1000 => "group_gt1000",
            Metric::File => "file",
            Metric::DirectDuringFiles => "direct_during_files",
            Metric::DirectWithoutFiles => "direct_without_files",
            Metric::Hiccup => "hiccup",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

const METRICS: usize = Metric::ALL.len();

/// Highest recordable value: one hour in µs. Larger values are clamped to it.
pub const MAX_US: u64 = 3_600_000_000;

/// A fresh histogram with the bounds every metric uses.
pub fn new_histogram() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts (low >= 1, high >= 2 * low, sigfig <= 5).
    Histogram::new_with_bounds(1, MAX_US, 3).unwrap_or_else(|e| panic!("histogram bounds: {e}"))
}

type Set = [Histogram<u64>; METRICS];

fn new_set() -> Set {
    std::array::from_fn(|_| new_histogram())
}

struct ThreadHistograms {
    measured: Set,
    warmup: Set,
}

static NEXT_RECORDER: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's histograms, per live recorder (tests run several recorders at once).
    static LOCAL: RefCell<Vec<(u64, Weak<Mutex<ThreadHistograms>>)>> = const { RefCell::new(Vec::new()) };
}

/// The run's recorder: cheap to clone, records from any thread.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    id: u64,
    threads: Mutex<Vec<Arc<Mutex<ThreadHistograms>>>>,
    totals: Mutex<Set>,
}

/// One interval's view: every sample recorded during it, warm-up or not.
pub struct Interval {
    /// Histograms of this interval, by [`Metric`] order.
    pub histograms: Vec<Histogram<u64>>,
    /// The same, measured samples only (what the totals gained in this interval).
    pub measured: Vec<Histogram<u64>>,
}

impl Interval {
    /// The interval's histogram for `m`.
    pub fn get(&self, m: Metric) -> &Histogram<u64> {
        &self.histograms[m.index()]
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                id: NEXT_RECORDER.fetch_add(1, Ordering::Relaxed),
                threads: Mutex::new(Vec::new()),
                totals: Mutex::new(new_set()),
            }),
        }
    }

    /// Records `value_us` for `m`; `measured` is false for samples from the warm-up.
    pub fn record(&self, m: Metric, value_us: u64, measured: bool) {
        let value = value_us.clamp(1, MAX_US);
        self.with_local(|h| {
            let set = if measured {
                &mut h.measured
            } else {
                &mut h.warmup
            };
            set[m.index()].saturating_record(value);
        });
    }

    fn with_local(&self, f: impl FnOnce(&mut ThreadHistograms)) {
        LOCAL.with(|local| {
            let mut local = local.borrow_mut();
            let found = local
                .iter()
                .find(|(id, _)| *id == self.inner.id)
                .and_then(|(_, w)| w.upgrade());
            let slot = match found {
                Some(slot) => slot,
                None => {
                    local.retain(|(_, w)| w.strong_count() > 0);
                    let slot = Arc::new(Mutex::new(ThreadHistograms {
                        measured: new_set(),
                        warmup: new_set(),
                    }));
                    lock(&self.inner.threads).push(slot.clone());
                    local.push((self.inner.id, Arc::downgrade(&slot)));
                    slot
                }
            };
            f(&mut lock(&slot));
        });
    }

    /// Moves everything recorded since the last call into the totals and returns it as one
    /// interval.
    pub fn collect(&self) -> Interval {
        let mut interval = new_set();
        let mut measured = new_set();
        let threads: Vec<_> = lock(&self.inner.threads).clone();
        let mut totals = lock(&self.inner.totals);
        for t in threads {
            let mut t = lock(&t);
            for m in 0..METRICS {
                // Same bounds everywhere, so adding cannot fail.
                let _ = totals[m].add(&t.measured[m]);
                let _ = measured[m].add(&t.measured[m]);
                let _ = interval[m].add(&t.measured[m]);
                let _ = interval[m].add(&t.warmup[m]);
                t.measured[m].reset();
                t.warmup[m].reset();
            }
        }
        Interval {
            histograms: interval.into_iter().collect(),
            measured: measured.into_iter().collect(),
        }
    }

    /// The totals so far for `m` (measured samples only); call after a final [`Recorder::collect`].
    pub fn total(&self, m: Metric) -> Histogram<u64> {
        lock(&self.inner.totals)[m.index()].clone()
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it: the data (histograms,
/// the timer's queue) stays usable, and a panic elsewhere is reported by its own task.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_from_many_threads_add_up_and_warmup_stays_out_of_totals() {
        let r = Recorder::new();
        std::thread::scope(|s| {
            for t in 0..4 {
                let r = r.clone();
                s.spawn(move || {
                    for i in 0..1000 {
                        r.record(Metric::Direct, 1000 + t * 1000 + i, true);
                        r.record(Metric::Direct, 5, false);
                    }
                });
            }
        });
        let interval = r.collect();
        assert_eq!(interval.get(Metric::Direct).len(), 8000);
        let total = r.total(Metric::Direct);
        assert_eq!(total.len(), 4000);
        assert!(total.min() >= 1000);
        // Collected once: the next interval starts empty, the totals stay.
        assert_eq!(r.collect().get(Metric::Direct).len(), 0);
        assert_eq!(r.total(Metric::Direct).len(), 4000);
    }

    #[test]
    fn recorders_do_not_mix() {
        let a = Recorder::new();
        let b = Recorder::new();
        a.record(Metric::Ack, 10, true);
        b.record(Metric::Ack, 20, true);
        b.record(Metric::Ack, 20, true);
        a.collect();
        b.collect();
        assert_eq!(a.total(Metric::Ack).len(), 1);
        assert_eq!(b.total(Metric::Ack).len(), 2);
    }
}
