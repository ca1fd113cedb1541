//! The machine's own hiccups, measured beside the run: how late a bare thread that asks to wake
//! every millisecond actually wakes.
//!
//! A shared machine stops a process now and then for reasons that have nothing to do with the
//! server under test: the hypervisor runs another guest, the kernel reclaims memory or handles
//! an interrupt storm, another process takes the CPU. On a 2-vCPU VM a C program doing nothing
//! but sleeping 1 ms (cyclictest) wakes 1 to 8 ms late a few dozen times a minute. Every send and
//! every receive of the run suffers the same pauses, so a latency tail of that size may be the
//! machine's, not the server's. The meter puts a figure on it: its thread keeps an open-loop
//! schedule of one wake-up per [`INTERVAL`] and reports, for each intended wake-up, how late it
//! came. Wake-ups a pause swallowed are reported too, each with its own lateness (a 5 ms pause
//! gives 5, 4, 3, 2 and 1 ms), as the schedule of sends it stands for would have seen them.
//!
//! The thread does nothing else, so the figure is the floor of any timer's schedule lag on this
//! machine: the generator's `schedule_lag` near it means the generator was as punctual as the
//! machine let it be. Its thread is named [`HICCUP_THREAD_NAME`] and counted with the timer,
//! not as the generator's work or wake-ups.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// How often the meter's thread asks to wake.
pub const INTERVAL: Duration = Duration::from_millis(1);

/// Thread name of the meter (at most 15 bytes: Linux keeps no more).
pub const HICCUP_THREAD_NAME: &str = "imbench-hiccup";

/// The running meter; dropping it stops its thread.
pub struct HiccupMeter {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl HiccupMeter {
    /// Starts the meter's thread; `sink` gets each intended wake-up's lateness in µs.
    pub fn start(mut sink: impl FnMut(u64) + Send + 'static) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let handle = thread::Builder::new()
            .name(HICCUP_THREAD_NAME.into())
            .spawn(move || {
                // The default timer slack (50 µs) would be added to every sleep and read as a
                // hiccup; the meter asks for none, as the precise timer does.
                #[cfg(target_os = "linux")]
                let _ = nix::sys::prctl::set_timerslack(1);
                let mut schedule = Schedule::new(Instant::now(), INTERVAL);
                while !stopping.load(Ordering::Acquire) {
                    let due = schedule.due();
                    let now = Instant::now();
                    if due > now {
                        thread::sleep(due - now);
                    }
                    schedule.woke(Instant::now(), &mut sink);
                }
            })?;
        Ok(Self {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for HiccupMeter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            // It sleeps at most one interval before it sees the flag.
            let _ = h.join();
        }
    }
}

/// The meter's open-loop schedule: intended wake-ups every `interval`, and what a wake-up at a
/// given instant says about each of them.
struct Schedule {
    next: Instant,
    interval: Duration,
}

impl Schedule {
    fn new(start: Instant, interval: Duration) -> Self {
        Self {
            next: start + interval,
            interval,
        }
    }

    /// When the thread should wake next.
    fn due(&self) -> Instant {
        self.next
    }

    /// The thread woke at `now`: reports the lateness of every intended wake-up up to `now`
    /// and moves the schedule past them.
    fn woke(&mut self, now: Instant, sink: &mut impl FnMut(u64)) {
        // A sleep never ends early; should a clock say otherwise, nothing was late.
        if now < self.next {
            return;
        }
        while self.next <= now {
            sink((now - self.next).as_micros() as u64);
            self.next += self.interval;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lateness(s: &mut Schedule, now: Instant) -> Vec<u64> {
        let mut got = Vec::new();
        s.woke(now, &mut |us| got.push(us));
        got
    }

    #[test]
    fn a_punctual_wake_reports_its_small_lateness_once() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, Duration::from_millis(1));
        assert_eq!(s.due(), t0 + Duration::from_millis(1));
        assert_eq!(
            lateness(&mut s, t0 + Duration::from_micros(1_060)),
            vec![60]
        );
        assert_eq!(s.due(), t0 + Duration::from_millis(2));
    }

    #[test]
    fn a_pause_reports_every_wake_up_it_swallowed() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, Duration::from_millis(1));
        // Due at 1 ms, woke at 5.5 ms: the wake-ups due at 1, 2, 3, 4 and 5 ms all came at 5.5.
        assert_eq!(
            lateness(&mut s, t0 + Duration::from_micros(5_500)),
            vec![4_500, 3_500, 2_500, 1_500, 500]
        );
        // The schedule goes on from where it was, not from the late wake-up.
        assert_eq!(s.due(), t0 + Duration::from_millis(6));
    }

    #[test]
    fn an_early_reading_reports_nothing() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, Duration::from_millis(1));
        assert!(lateness(&mut s, t0 + Duration::from_micros(500)).is_empty());
        assert_eq!(s.due(), t0 + Duration::from_millis(1));
    }

    #[test]
    fn the_thread_reports_about_one_lateness_per_interval_and_stops_when_dropped() {
        let (tx, rx) = std::sync::mpsc::channel();
        let started = Instant::now();
        let meter = HiccupMeter::start(move |us| {
            let _ = tx.send(us);
        })
        .expect("thread");
        thread::sleep(Duration::from_millis(50));
        drop(meter);
        let lived_ms = started.elapsed().as_millis() as usize;
        let got: Vec<u64> = rx.try_iter().collect();
        // However busy the machine, every interval the thread lived through is reported once:
        // no more than it lived, and nearly all of the 50 ms before the drop.
        assert!(
            (40..=lived_ms).contains(&got.len()),
            "{} samples in {lived_ms} ms",
            got.len()
        );
        // Dropped means joined: nothing more arrives.
        thread::sleep(Duration::from_millis(5));
        assert_eq!(rx.try_iter().count(), 0);
    }
}
