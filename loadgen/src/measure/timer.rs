//! Precise waits for the send schedule.
//!
//! tokio's timer has a 1 ms wheel and sleeps in `epoll_wait` with millisecond timeouts, so a
//! send due at `t` leaves 0–2 ms late; the corrected latency then mostly measures the timer.
//! This timer keeps every wait in a heap on a thread of its own ([`TIMER_THREAD_NAME`]) that
//! sleeps with 1 ns timer slack, and fires each wait a little *early*, by a lead it learns;
//! the woken task then spins the last microseconds on its own worker until the moment. Two
//! delays stand between a wait's time and its task running, and each has a lead of its own,
//! a running estimate of its 90th percentile: the thread's own oversleep (on a virtual
//! machine whose idle CPUs halt, 50 µs at the median and 100-200 µs in the tail, measured
//! here), which the thread covers by waking that much early and spinning to the moment it
//! fires; and the cross-thread wake-up from "fired" to "task polled" (17 µs at the median
//! here), which the task covers by spinning. Tracked as one, as they were first, the
//! oversleep's tail made the whole lead miss: the task's spin cannot start before the thread
//! wakes. On an idle generator the leads are tens of µs; under load, when workers are awake
//! anyway, the wake-up's shrinks toward zero. The spinning is held to a budget
//! ([`SPIN_BUDGET_NS_PER_S`]) shared by both: at many sends a second the leads are cut to
//! what the budget allows, and sends are then a few tens of µs late instead of costing the
//! generator CPU it needs for the load itself.
//!
//! Under a burst of arrivals (a group message to 1,000 receivers) the thread is the wrong one to
//! wake a send: a task woken from outside the runtime joins the back of its shared queue, behind
//! the receivers the burst spilled there, and the send waits for the whole burst. So the
//! receiving tasks fire due waits themselves between events ([`Timer::fire_due`]), which puts
//! the sender at the front of their worker's queue, and while they do, the thread leaves due
//! waits to them for a short while (`HANDOFF`) before firing what they left.
//!
//! The pieces that decide anything — the queue ([`Queue`]) and the lead ([`Lead`]) — are plain
//! data driven by the caller's clock, so they are tested without time.
//!
//! [`TIMER_THREAD_NAME`]: crate::measure::cpu_use::TIMER_THREAD_NAME

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::measure::metrics::lock;

/// The longest a task spins on its worker; a wait further off goes back to the queue.
const MAX_SPIN: Duration = Duration::from_micros(200);

/// The largest lead the estimate may reach: past this the worker is saturated, and spinning
/// longer would take CPU the generator does not have.
const MAX_LEAD_NS: u64 = 150_000;

/// The lead a new timer starts with, before it has seen any wake-up.
const INITIAL_LEAD_NS: u64 = 30_000;

/// How late tokio's timer wakes a send by itself on an idle machine, at p99: its wheel ticks
/// every millisecond, a deadline waits for the tick after it, and the tick for a worker to
/// poll it (smoke-sized runs with `--timer tokio` here: lag p50 1.0-1.1 ms, p99 2.0 ms).
pub const TOKIO_TIMER_LATENESS: std::time::Duration = std::time::Duration::from_millis(2);

/// Spinning the timer thread and the workers may do per second, summed over every wait: 10 %
/// of one core (at 1,000 sends a second, 100 µs of leads a send).
pub const SPIN_BUDGET_NS_PER_S: u64 = 100_000_000;

/// How often the wait rate behind the spin budget is measured.
const BUDGET_WINDOW: Duration = Duration::from_millis(100);

/// How the schedule waits: tokio's timer (1 ms), or the precise timer.
#[derive(Clone)]
pub struct Timer {
    precise: Option<Arc<Shared>>,
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.precise.is_some() {
            "Timer::precise"
        } else {
            "Timer::tokio"
        })
    }
}

/// Stops the precise timer's thread when the run that owns it ends.
pub struct TimerThread {
    shared: Option<Arc<Shared>>,
}

impl Drop for TimerThread {
    fn drop(&mut self) {
        if let Some(s) = self.shared.take() {
            s.stop.store(true, Ordering::Release);
            s.thread.unpark();
        }
    }
}

impl Timer {
    /// tokio's own timer.
    pub fn tokio() -> (Self, TimerThread) {
        (Self { precise: None }, TimerThread { shared: None })
    }

    /// Starts the precise timer's thread. The thread ends when the returned [`TimerThread`] is
    /// dropped.
    pub fn precise() -> std::io::Result<(Self, TimerThread)> {
        let (tx, rx) = std::sync::mpsc::channel::<Arc<Shared>>();
        let handle = thread::Builder::new()
            .name(crate::measure::cpu_use::TIMER_THREAD_NAME.into())
            .spawn(move || {
                // The kernel may add up to the thread's timer slack (50 µs by default) to
                // every sleep; this thread's sleeps are the schedule, so it asks for none.
                #[cfg(target_os = "linux")]
                let _ = nix::sys::prctl::set_timerslack(1);
                if let Ok(shared) = rx.recv() {
                    timer_thread(&shared);
                }
            })?;
        let shared = Arc::new(Shared::new(handle.thread().clone()));
        // The thread waits for this before anything else; it cannot have gone.
        let _ = tx.send(shared.clone());
        Ok((
            Self {
                precise: Some(shared.clone()),
            },
            TimerThread {
                shared: Some(shared),
            },
        ))
    }

    /// Which timer this is.
    pub fn kind(&self) -> crate::config::scenario::TimerKind {
        if self.precise.is_some() {
            crate::config::scenario::TimerKind::Precise
        } else {
            crate::config::scenario::TimerKind::Tokio
        }
    }

    /// Fires the waits that are due, from the calling thread. A busy worker calls this between
    /// the events it handles: a task woken by tokio's own worker goes to the front of that
    /// worker's queue, while a task the timer thread wakes goes to the back of the runtime's
    /// shared queue, behind every task a burst of arrivals has spilled there (1,000 receivers
    /// of one group message, about a burst's worth of work). Costs a clock read when nothing
    /// is due; a wait fires once whichever thread gets to it.
    pub fn fire_due(&self) {
        let Some(shared) = &self.precise else {
            return;
        };
        let next = shared.next_fire_ns.load(Ordering::Acquire);
        if next == NONE_DUE {
            return;
        }
        let now = Instant::now();
        let now_ns = shared.ns_of(now);
        let seen = shared.workers_seen_ns.load(Ordering::Relaxed);
        if seen == NEVER_SEEN || now_ns.saturating_sub(seen) >= SEEN_STEP_NS {
            shared
                .workers_seen_ns
                .store(now_ns.max(NEVER_SEEN + 1), Ordering::Relaxed);
        }
        if now_ns < next {
            return;
        }
        let mut due = Vec::new();
        // The timer thread holds the lock only to pop; if it does, it is firing them anyway.
        if let Ok(mut q) = shared.queue.try_lock() {
            q.pop_due(now, &mut due);
            shared.note_next(&q);
        }
        for slot in due {
            slot.fire();
        }
    }

    /// Completes at `at` (never before it).
    pub async fn sleep_until(&self, at: tokio::time::Instant) {
        let Some(shared) = &self.precise else {
            return tokio::time::sleep_until(at).await;
        };
        let at = at.into_std();
        loop {
            let now = Instant::now();
            if now >= at {
                return;
            }
            let lead = Duration::from_nanos(shared.lead_ns.load(Ordering::Relaxed));
            let left = at - now;
            if left <= lead.min(MAX_SPIN) {
                // Close enough: the rest is shorter than any wake-up would be.
                while Instant::now() < at {
                    std::hint::spin_loop();
                }
                return;
            }
            let fire_at = at - lead;
            let slot = Arc::new(Slot::default());
            shared.push(fire_at, slot.clone());
            Fired { slot }.await;
            let delay = Instant::now().saturating_duration_since(fire_at);
            shared.observe(delay);
        }
    }
}

/// How long the timer thread leaves a due wait to busy workers before firing it itself.
const HANDOFF: Duration = Duration::from_micros(100);

/// Workers that looked for due waits this recently are busy, and will fire them first.
const BUSY_WITHIN_NS: u64 = 20_000;

/// How stale `Shared::workers_seen_ns` may be: it is written once per step, not per look, so
/// that two workers do not pass its cache line back and forth on every event.
const SEEN_STEP_NS: u64 = 5_000;

/// `Shared::workers_seen_ns` before any worker looked.
const NEVER_SEEN: u64 = 0;

/// `Shared::next_fire_ns` when nothing waits.
const NONE_DUE: u64 = u64::MAX;

/// The shared side of the precise timer.
struct Shared {
    queue: Mutex<Queue>,
    /// What `next_fire_ns` counts from.
    epoch: Instant,
    /// When the earliest wait is due, in ns since `epoch` ([`NONE_DUE`] when none is): read
    /// without the lock by [`Timer::fire_due`], written under it.
    next_fire_ns: AtomicU64,
    /// When a worker last looked for due waits ([`Timer::fire_due`]), in ns since `epoch`,
    /// to within [`SEEN_STEP_NS`].
    workers_seen_ns: AtomicU64,
    /// The leads' estimates: the task's wake-up (fired → polled), the thread's oversleep; and
    /// the budget both share.
    lead: Mutex<Leads>,
    /// The lead the waits read, the wake-up's within the budget, copied after each observation.
    lead_ns: AtomicU64,
    /// The lead the thread wakes early by, its oversleep's within the budget, likewise.
    thread_lead_ns: AtomicU64,
    stop: AtomicBool,
    thread: Thread,
}

impl Shared {
    /// The state of a timer whose thread is `thread`.
    fn new(thread: Thread) -> Self {
        Self {
            queue: Mutex::new(Queue::default()),
            epoch: Instant::now(),
            next_fire_ns: AtomicU64::new(NONE_DUE),
            workers_seen_ns: AtomicU64::new(NEVER_SEEN),
            lead: Mutex::new(Leads {
                wake_up: Lead::new(INITIAL_LEAD_NS),
                oversleep: Lead::new(INITIAL_LEAD_NS),
                budget: Budget::new(Instant::now()),
            }),
            lead_ns: AtomicU64::new(INITIAL_LEAD_NS),
            thread_lead_ns: AtomicU64::new(INITIAL_LEAD_NS),
            stop: AtomicBool::new(false),
            thread,
        }
    }

    /// How long the timer thread leaves due waits to the workers, given when one last looked.
    fn grace(&self, now: Instant) -> Duration {
        let seen = self.workers_seen_ns.load(Ordering::Relaxed);
        if seen != NEVER_SEEN && self.ns_of(now).saturating_sub(seen) < BUSY_WITHIN_NS {
            HANDOFF
        } else {
            Duration::ZERO
        }
    }

    fn push(&self, fire_at: Instant, slot: Arc<Slot>) {
        let mut q = lock(&self.queue);
        let earliest = q.push(fire_at, slot);
        self.note_next(&q);
        drop(q);
        if earliest {
            self.thread.unpark();
        }
    }

    /// Publishes the queue's earliest wait for [`Timer::fire_due`]; called with the lock held.
    fn note_next(&self, q: &Queue) {
        let ns = q.next().map_or(NONE_DUE, |at| self.ns_of(at));
        self.next_fire_ns.store(ns, Ordering::Release);
    }

    fn ns_of(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch)
            .as_nanos()
            .min(u128::from(NONE_DUE - 1)) as u64
    }

    /// Takes a task's delay from its wait's fire time to its poll into the wake-up's lead.
    fn observe(&self, delay: Duration) {
        let mut leads = lock(&self.lead);
        leads.wake_up.observe(nanos(delay));
        leads.budget.note_wait(Instant::now());
        self.publish(&leads);
    }

    /// Takes the thread's oversleep past the time it meant to wake into its own lead.
    fn observe_oversleep(&self, late: Duration) {
        let mut leads = lock(&self.lead);
        leads.oversleep.observe(nanos(late));
        self.publish(&leads);
    }

    fn publish(&self, leads: &Leads) {
        let (thread, task) = leads.within_budget();
        self.thread_lead_ns.store(thread, Ordering::Relaxed);
        self.lead_ns.store(task, Ordering::Relaxed);
    }
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u128::from(u64::MAX)) as u64
}

/// The two leads' estimates and the budget they share.
struct Leads {
    wake_up: Lead,
    oversleep: Lead,
    budget: Budget,
}

impl Leads {
    /// The thread's lead and the task's, cut in proportion when together they are past what
    /// the budget allows a wait.
    fn within_budget(&self) -> (u64, u64) {
        split_budget(
            self.oversleep.ns(),
            self.wake_up.ns(),
            self.budget.allowed_ns(),
        )
    }
}

/// `thread` and `task`, or both cut in proportion to fit `allowed` together.
fn split_budget(thread: u64, task: u64, allowed: u64) -> (u64, u64) {
    let sum = u128::from(thread) + u128::from(task);
    if sum <= u128::from(allowed) {
        return (thread, task);
    }
    let cut = |n: u64| (u128::from(n) * u128::from(allowed) / sum) as u64;
    (cut(thread), cut(task))
}

fn timer_thread(shared: &Shared) {
    let mut due = Vec::new();
    while !shared.stop.load(Ordering::Acquire) {
        let now = Instant::now();
        // While the workers are busy they fire due waits themselves, to the front of their
        // own queues (see `Timer::fire_due`); a wait this thread fires would join the back of
        // the runtime's shared queue. So it fires only what the workers left for `HANDOFF`.
        let grace = shared.grace(now);
        let next = {
            let mut q = lock(&shared.queue);
            q.pop_due(now.checked_sub(grace).unwrap_or(now), &mut due);
            shared.note_next(&q);
            q.next().map(|at| at + grace)
        };
        for slot in due.drain(..) {
            slot.fire();
        }
        let Some(at) = next else {
            thread::park();
            continue;
        };
        let lead = Duration::from_nanos(shared.thread_lead_ns.load(Ordering::Relaxed));
        let now = Instant::now();
        if at <= now {
            continue;
        }
        if at - now <= lead.min(MAX_SPIN) {
            // Within the thread's lead: spin to the moment, unless an earlier wait comes (the
            // queue's earliest, plus the grace `at` has in it, moves before `at`).
            let at_ns = shared.ns_of(at);
            let grace_ns = nanos(grace);
            while Instant::now() < at
                && shared
                    .next_fire_ns
                    .load(Ordering::Acquire)
                    .saturating_add(grace_ns)
                    >= at_ns
                && !shared.stop.load(Ordering::Relaxed)
            {
                std::hint::spin_loop();
            }
            continue;
        }
        // Sleep to the lead before it; a wake at or past that time is an oversleep to learn
        // from (one before it was a new earliest wait's unpark).
        let wake = at - lead;
        thread::park_timeout(wake - now);
        let woke = Instant::now();
        if woke >= wake {
            shared.observe_oversleep(woke - wake);
        }
    }
    // Whoever still waits is woken, so that no task hangs on a timer that is gone.
    let mut q = lock(&shared.queue);
    q.pop_due(Instant::now() + Duration::from_secs(86_400 * 365), &mut due);
    drop(q);
    for slot in due.drain(..) {
        slot.fire();
    }
}

/// One wait's state, shared by the waiting task and the timer thread.
#[derive(Default)]
struct Slot {
    state: AtomicU8,
    waker: Mutex<Option<Waker>>,
}

const WAITING: u8 = 0;
const FIRED: u8 = 1;
const CANCELLED: u8 = 2;

impl Slot {
    fn fire(&self) {
        if self
            .state
            .compare_exchange(WAITING, FIRED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            if let Some(w) = lock(&self.waker).take() {
                w.wake();
            }
        }
    }
}

/// Completes when the timer thread fires its slot; dropping it (a `select!` that took another
/// branch) cancels the wake-up.
struct Fired {
    slot: Arc<Slot>,
}

impl std::future::Future for Fired {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.slot.state.load(Ordering::Acquire) == FIRED {
            return Poll::Ready(());
        }
        *lock(&self.slot.waker) = Some(cx.waker().clone());
        // Fired between the check and storing the waker: the thread found no waker to wake.
        if self.slot.state.load(Ordering::Acquire) == FIRED {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Drop for Fired {
    fn drop(&mut self) {
        let _ = self.slot.state.compare_exchange(
            WAITING,
            CANCELLED,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }
}

/// The waits, earliest first.
#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Entry>>,
    next_seq: u64,
}

struct Entry {
    at: Instant,
    /// Keeps waits with equal times in the order they came.
    seq: u64,
    slot: Arc<Slot>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl Queue {
    /// Adds a wait; true when it is now the earliest (the thread must wake to see it).
    fn push(&mut self, at: Instant, slot: Arc<Slot>) -> bool {
        let earliest = self.next().is_none_or(|n| at < n);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse(Entry { at, seq, slot }));
        earliest
    }

    /// Moves every wait due at `now` into `out`, earliest first; cancelled ones are dropped.
    fn pop_due(&mut self, now: Instant, out: &mut Vec<Arc<Slot>>) {
        while self.heap.peek().is_some_and(|Reverse(e)| e.at <= now) {
            if let Some(Reverse(e)) = self.heap.pop() {
                if e.slot.state.load(Ordering::Acquire) == WAITING {
                    out.push(e.slot);
                }
            }
        }
    }

    /// When the earliest wait is due.
    fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(e)| e.at)
    }
}

/// A running estimate of the 90th percentile of wake-up delays, in ns: each delay above the
/// estimate raises it by 9 steps, each below lowers it by 1, so it settles where 9 in 10
/// delays are below it. The step is 1/64 of the estimate (at least 250 ns), so it follows a
/// change within a few hundred wake-ups whatever the scale.
#[derive(Debug, Clone)]
pub struct Lead {
    ns: u64,
}

impl Lead {
    /// Starts at `ns`.
    pub fn new(ns: u64) -> Self {
        Self {
            ns: ns.min(MAX_LEAD_NS),
        }
    }

    /// The current estimate.
    pub fn ns(&self) -> u64 {
        self.ns
    }

    /// Takes one observed delay into the estimate.
    pub fn observe(&mut self, delay_ns: u64) {
        let step = (self.ns / 64).max(250);
        self.ns = if delay_ns > self.ns {
            (self.ns + 9 * step).min(MAX_LEAD_NS)
        } else {
            self.ns.saturating_sub(step)
        };
    }
}

/// The lead the spin budget allows: [`SPIN_BUDGET_NS_PER_S`] shared among the waits of the
/// last [`BUDGET_WINDOW`].
#[derive(Debug, Clone)]
pub struct Budget {
    window_start: Instant,
    waits: u64,
    allowed_ns: u64,
}

impl Budget {
    /// A budget whose first window starts at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            waits: 0,
            allowed_ns: MAX_LEAD_NS,
        }
    }

    /// Counts one wait that ended at `now`.
    pub fn note_wait(&mut self, now: Instant) {
        self.waits += 1;
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= BUDGET_WINDOW {
            let per_s = self.waits as f64 / elapsed.as_secs_f64();
            self.allowed_ns = ((SPIN_BUDGET_NS_PER_S as f64 / per_s) as u64).min(MAX_LEAD_NS);
            self.window_start = now;
            self.waits = 0;
        }
    }

    /// The longest lead the budget allows now.
    pub fn allowed_ns(&self) -> u64 {
        self.allowed_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn the_budget_cuts_both_leads_in_proportion_only_when_they_are_past_it() {
        assert_eq!(split_budget(60_000, 30_000, 100_000), (60_000, 30_000));
        assert_eq!(split_budget(100_000, 50_000, 100_000), (66_666, 33_333));
        assert_eq!(split_budget(100_000, 0, 50_000), (50_000, 0));
        assert_eq!(split_budget(0, 0, 0), (0, 0));
        assert_eq!(split_budget(u64::MAX, u64::MAX, 10), (5, 5));
    }

    #[test]
    fn the_queue_gives_due_waits_in_time_order_and_skips_cancelled_ones() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut q = Queue::default();
        let slots: Vec<Arc<Slot>> = (0..4).map(|_| Arc::new(Slot::default())).collect();
        assert!(
            q.push(ms(30), slots[0].clone()),
            "the first wait is the earliest"
        );
        assert!(
            q.push(ms(10), slots[1].clone()),
            "an earlier one wakes the thread"
        );
        assert!(!q.push(ms(20), slots[2].clone()), "a later one need not");
        assert!(!q.push(ms(10), slots[3].clone()), "nor does a tie");
        slots[2]
            .state
            .store(CANCELLED, std::sync::atomic::Ordering::Release);
        assert_eq!(q.next(), Some(ms(10)));
        let mut due = Vec::new();
        q.pop_due(ms(9), &mut due);
        assert!(due.is_empty());
        q.pop_due(ms(25), &mut due);
        // Both 10 ms waits in the order they came; the cancelled 20 ms one is gone.
        assert_eq!(due.len(), 2);
        assert!(Arc::ptr_eq(&due[0], &slots[1]) && Arc::ptr_eq(&due[1], &slots[3]));
        assert_eq!(q.next(), Some(ms(30)));
    }

    #[test]
    fn a_worker_fires_the_waits_that_are_due_and_only_those() {
        // No timer thread runs here: whatever fires, `fire_due` fired.
        let shared = Arc::new(Shared::new(thread::current()));
        let timer = Timer {
            precise: Some(shared.clone()),
        };
        let now = Instant::now();
        let (due, later) = (Arc::new(Slot::default()), Arc::new(Slot::default()));
        shared.push(now, due.clone());
        shared.push(now + Duration::from_secs(3600), later.clone());
        assert_eq!(
            shared.grace(Instant::now()),
            Duration::ZERO,
            "no worker looked yet"
        );
        timer.fire_due();
        assert_eq!(due.state.load(Ordering::Acquire), FIRED);
        assert_eq!(later.state.load(Ordering::Acquire), WAITING);
        assert_eq!(
            shared.next_fire_ns.load(Ordering::Acquire),
            shared.ns_of(now + Duration::from_secs(3600)),
            "the next wait is the later one"
        );
        // A worker looked: the thread leaves what falls due to the workers for a while.
        let looked =
            shared.epoch + Duration::from_nanos(shared.workers_seen_ns.load(Ordering::Relaxed));
        assert!(looked >= now);
        assert_eq!(shared.grace(looked + Duration::from_micros(5)), HANDOFF);
        assert_eq!(
            shared.grace(looked + Duration::from_millis(1)),
            Duration::ZERO,
            "workers that stopped looking are no longer busy"
        );
    }

    #[test]
    fn a_slot_fires_once_and_a_cancelled_one_never() {
        let s = Slot::default();
        s.fire();
        assert_eq!(s.state.load(Ordering::Acquire), FIRED);
        let c = Slot::default();
        c.state.store(CANCELLED, Ordering::Release);
        c.fire();
        assert_eq!(c.state.load(Ordering::Acquire), CANCELLED);
    }

    #[test]
    fn the_lead_settles_near_the_90th_percentile_of_delays() {
        // Delays uniform on 10–50 µs: the 90th percentile is 46 µs.
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let mut lead = Lead::new(INITIAL_LEAD_NS);
        for _ in 0..20_000 {
            lead.observe(rng.random_range(10_000..50_000));
        }
        assert!((42_000..=50_000).contains(&lead.ns()), "{}", lead.ns());
        // The worker gets busy and wake-ups take 1–3 µs: the lead shrinks with them.
        for _ in 0..20_000 {
            lead.observe(rng.random_range(1_000..3_000));
        }
        assert!(lead.ns() <= 3_500, "{}", lead.ns());
    }

    #[test]
    fn the_budget_shares_10_percent_of_a_core_among_the_waits() {
        let t0 = Instant::now();
        let mut b = Budget::new(t0);
        assert_eq!(
            b.allowed_ns(),
            MAX_LEAD_NS,
            "no limit before the first window"
        );
        // 1,000 waits in 100 ms: 10,000 a second share 100 ms, 10 µs each.
        for i in 1..=1_000u64 {
            b.note_wait(t0 + Duration::from_micros(100 * i));
        }
        assert_eq!(b.allowed_ns(), 10_000);
        // Then 10 waits in the next 100 ms: 100 a second may each spin as long as the bound.
        for i in 1..=10u64 {
            b.note_wait(t0 + Duration::from_millis(100 + 10 * i));
        }
        assert_eq!(b.allowed_ns(), MAX_LEAD_NS);
    }

    #[test]
    fn the_lead_never_passes_its_bound() {
        let mut lead = Lead::new(u64::MAX);
        assert_eq!(lead.ns(), MAX_LEAD_NS);
        for _ in 0..1_000 {
            lead.observe(10_000_000);
        }
        assert_eq!(lead.ns(), MAX_LEAD_NS);
    }

    #[test]
    fn a_precise_wait_never_ends_early_and_the_thread_stops() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (timer, thread) = Timer::precise().unwrap();
        rt.block_on(async {
            for us in [0u64, 50, 500, 3_000] {
                let at = tokio::time::Instant::now() + Duration::from_micros(us);
                timer.sleep_until(at).await;
                assert!(tokio::time::Instant::now() >= at);
            }
        });
        drop(thread);
    }
}
