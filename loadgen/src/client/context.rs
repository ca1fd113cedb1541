//! What one run's clients share: the scenario and its plans, the driver they log in with, the
//! clock and the measured period, the recorder, counters and ledgers they feed, and the stop
//! state. The run builds it and reads what was measured from it at the end.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use tokio::sync::{watch, Semaphore};

use crate::config::scenario::Scenario;
use crate::config::shard::Shard;
use crate::driver::Driver;
use crate::measure::clock::Clock;
use crate::measure::counters::ClientCounters;
use crate::measure::group_ledger::GroupLedger;
use crate::measure::metrics::Recorder;
use crate::measure::window_sends::WindowSends;
use crate::workload::groups::GroupPlan;

/// State shared by every client task of one run.
pub struct RunContext {
    /// The scenario, with overrides applied.
    pub scenario: Scenario,
    /// The run's clock.
    pub clock: Clock,
    /// Latency histograms.
    pub recorder: Recorder,
    /// Per-client counters, by client index.
    pub counters: Vec<ClientCounters>,
    /// Bytes that message payloads are cut from.
    pub payload: Vec<u8>,
    /// This run's tag in every body it sends ([`run_tag`]).
    pub run_tag: u16,
    /// The system the clients log in to.
    pub driver: Driver,
    /// Bounds connection set-ups in flight.
    pub connect_permits: Semaphore,
    /// Sending starts (end of ramp-up).
    pub send_start_us: u64,
    /// Recording starts (end of warm-up).
    pub measure_start_us: u64,
    /// Recording and sending end as planned; [`RunContext::schedule_end`] is when they
    /// actually end, earlier for a run that was stopped.
    pub schedule_end_us: u64,
    /// Direct messages of the measured period by when they were due: a period cut short
    /// after the fact counts those due before its end ([`RunContext::stop_at`]).
    pub direct_in_window: WindowSends,
    /// Group messages of the measured period, likewise.
    pub group_in_window: WindowSends,
    stop_at_us: AtomicU64,
    /// When the run was first stopped (run clock µs; 0: not stopped): later than the end of
    /// its schedule when that end was set back to where a server fell silent.
    stopped_when_us: AtomicU64,
    /// When a client last found its connection lost against the plan (run clock µs; 0: none
    /// yet): a run whose every client lost its connection measured until then.
    last_loss_us: AtomicU64,
    /// When the server last answered a message (acked or refused it; run clock µs, to the
    /// millisecond; 0: not yet): where a server that fell silent stopped answering.
    last_answer_us: AtomicU64,
    /// Woken when a client finds its connection lost, so that a run left without any is
    /// stopped at once, not at the next once-a-second check.
    loss: tokio::sync::Notify,
    stopped: watch::Sender<bool>,
    stop_reason: Mutex<Option<String>>,
    /// Who is in which group.
    pub plan: GroupPlan,
    /// Every group message, for fan-out accounting.
    pub ledger: GroupLedger,
    /// Every file transfer and its outcome.
    pub files: crate::measure::file_ledger::FileLedger,
    /// The share of the clients this generator runs, if it runs a share.
    pub shard: Option<Shard>,
    /// Messages sent a second time after a reconnect.
    pub resent: crate::workload::churn::Resent,
    /// How many of the scenario's clients churn (`[churn]`), worked out once.
    pub churners: usize,
    /// How sends wait for their intended time.
    pub timer: crate::measure::timer::Timer,
    /// Things the run did differently from what was asked, and why (a stretched ramp-up).
    pub notes: Vec<String>,
    /// Client addresses out of reach on the run's emulated path (handovers), when it has one.
    pub outages: Option<imbench_netpath::Outages>,
    /// Clients whose first login completed after sending had begun: messages sent to them
    /// before then found nobody, which a system that keeps nothing for an absent client loses.
    pub late_logins: AtomicU64,
    /// How long after sending began the latest of those logins completed (µs): the sends its
    /// client did not make.
    pub latest_login_after_send_start_us: AtomicU64,
    finished: watch::Sender<bool>,
    finished_flag: AtomicBool,
    problems: Mutex<Problems>,
}

#[derive(Default)]
struct Problems {
    first: Vec<String>,
    /// The kind of each problem in `first` (a flood of problems would otherwise blur every
    /// kept one again for each new one).
    kinds: std::collections::HashSet<String>,
    total: usize,
}

/// Problems kept verbatim for the report: the first of them whatever they are, then only
/// those of a kind not kept yet, so that a cause that comes after a flood of one kind (every
/// client told the server is shutting down) is still named.
const PROBLEMS_KEPT: usize = 20;
const PROBLEMS_KEPT_IN_ORDER: usize = 10;

/// A problem with its numbers (client, message, port) blurred: what makes two of a kind.
fn kind_of(problem: &str) -> String {
    let mut kind = String::with_capacity(problem.len());
    for c in problem.chars() {
        if !c.is_ascii_digit() {
            kind.push(c);
        } else if !kind.ends_with('#') {
            kind.push('#');
        }
    }
    kind
}

impl Problems {
    fn note(&mut self, what: String) {
        self.total += 1;
        if self.first.len() >= PROBLEMS_KEPT {
            return;
        }
        let kind = kind_of(&what);
        if self.first.len() < PROBLEMS_KEPT_IN_ORDER || !self.kinds.contains(&kind) {
            tracing::debug!("{what}");
            self.kinds.insert(kind);
            self.first.push(what);
        }
    }
}

impl RunContext {
    /// The shared state of a run of `s` against `driver`, named `leg` (the run's target or
    /// transport, as in its report); its clock starts now, sending starts after the ramp-up
    /// and recording after the warm-up.
    pub fn new(
        s: Scenario,
        driver: Driver,
        timer: crate::measure::timer::Timer,
        shard: Option<Shard>,
        leg: &str,
        notes: Vec<String>,
    ) -> Self {
        let send_start_us = s.ramp_up.as_micros() as u64;
        let measure_start_us = send_start_us + s.warmup.as_micros() as u64;
        let schedule_end_us = measure_start_us + s.duration.as_micros() as u64;
        let plan = GroupPlan::new(&s);
        let ledger = GroupLedger::new(&s, &plan, shard);
        Self {
            timer,
            notes,
            outages: None,
            late_logins: AtomicU64::new(0),
            latest_login_after_send_start_us: AtomicU64::new(0),
            plan,
            ledger,
            files: crate::measure::file_ledger::FileLedger::default(),
            shard,
            resent: crate::workload::churn::Resent::default(),
            churners: crate::workload::churn::churning_clients(&s),
            counters: (0..s.clients).map(|_| ClientCounters::default()).collect(),
            payload: crate::workload::body::payload_pool(s.seed, 128 * 1024),
            run_tag: run_tag(&s, shard, leg),
            recorder: Recorder::new(),
            driver,
            connect_permits: Semaphore::new(
                s.generator.connect_concurrency.min(Semaphore::MAX_PERMITS),
            ),
            clock: Clock::start(),
            send_start_us,
            measure_start_us,
            schedule_end_us,
            direct_in_window: WindowSends::new(measure_start_us, schedule_end_us),
            group_in_window: WindowSends::new(measure_start_us, schedule_end_us),
            stop_at_us: AtomicU64::new(schedule_end_us),
            stopped_when_us: AtomicU64::new(0),
            last_loss_us: AtomicU64::new(0),
            last_answer_us: AtomicU64::new(0),
            loss: tokio::sync::Notify::new(),
            stopped: watch::channel(false).0,
            stop_reason: Mutex::new(None),
            finished: watch::channel(false).0,
            finished_flag: AtomicBool::new(false),
            problems: Mutex::new(Problems::default()),
            scenario: s,
        }
    }

    /// Whether a message intended at `us` falls in the measured window.
    pub fn in_window(&self, us: u64) -> bool {
        us >= self.measure_start_us && us < self.schedule_end()
    }

    /// Whether a message its sender counted in its measured period (`measured`, from its
    /// body), intended at the wall-clock time `intended_wall_us`, is still in this run's: a
    /// period cut short after the fact (ended where a server fell silent, noticed later)
    /// leaves out what was meant to be sent after its new end, though its sender counted it
    /// in when it sent it. An uncut period takes the sender's word (another shard's window
    /// is its own).
    pub fn still_measured(&self, measured: bool, intended_wall_us: u64) -> bool {
        let end = self.schedule_end();
        measured && (end >= self.schedule_end_us || self.clock.local_us(intended_wall_us) < end)
    }

    /// When the drain began: the schedule's planned end, or, for a run stopped before it,
    /// when it was stopped (a schedule ended back where a server fell silent counts from when
    /// that was noticed). A stop within the drain (Ctrl-C there) does not begin it again.
    pub fn drain_began_us(&self) -> u64 {
        let stopped = self.stopped_when_us.load(Relaxed);
        if stopped != 0 && stopped < self.schedule_end_us {
            self.schedule_end().max(stopped)
        } else {
            self.schedule_end_us.min(self.schedule_end().max(stopped))
        }
    }

    /// When sending ends: as planned, or when the run was stopped.
    pub fn schedule_end(&self) -> u64 {
        self.stop_at_us.load(Relaxed)
    }

    /// Ends the schedule now (an interruption, or a server that is gone); `why` goes into the
    /// report as the reason the run is invalid. The first reason wins.
    pub fn stop(&self, why: String) {
        self.stop_at(why, self.clock.now_us());
    }

    /// [`RunContext::stop`], with the schedule ended at `at_us` (no later than now): when the
    /// run was in fact over, noticed after it.
    pub fn stop_at(&self, why: String, at_us: u64) {
        let now = self.clock.now_us();
        let _ = self
            .stopped_when_us
            .compare_exchange(0, now.max(1), Relaxed, Relaxed);
        let at = at_us.min(now);
        // Past the schedule's end the run is in its drain: it measured its whole period.
        let in_drain = self.stop_at_us.fetch_min(at, Relaxed) <= at;
        let mut reason = self.stop_reason.lock().unwrap_or_else(|e| e.into_inner());
        if reason.is_none() {
            *reason = Some(if in_drain {
                format!("stopped during the drain: {why}")
            } else {
                format!("stopped early: {why}")
            });
        }
        // `send` would store nothing while no task happens to be subscribed (the channel
        // keeps no receiver of its own), and every later wait would wait for ever.
        self.stopped.send_replace(true);
    }

    /// A client found its connection lost against the plan: the time is kept, and the run
    /// told.
    pub fn connection_lost(&self) {
        self.last_loss_us.fetch_max(self.clock.now_us(), Relaxed);
        self.loss.notify_one();
    }

    /// The server answered a message at `now_us`. Kept to the millisecond: every worker
    /// writes here, and a write a millisecond is enough.
    pub fn answer_heard(&self, now_us: u64) {
        if now_us >= self.last_answer_us.load(Relaxed) + 1_000 {
            self.last_answer_us.fetch_max(now_us, Relaxed);
        }
    }

    /// When the server last answered a message (run clock µs, to the millisecond), if it has.
    pub fn last_answer_us(&self) -> Option<u64> {
        Some(self.last_answer_us.load(Relaxed)).filter(|&us| us > 0)
    }

    /// When a client last found its connection lost (run clock µs), if one has.
    pub fn last_loss_us(&self) -> Option<u64> {
        Some(self.last_loss_us.load(Relaxed)).filter(|&us| us > 0)
    }

    /// Completes when a client has found its connection lost since the last call.
    pub async fn loss_noticed(&self) {
        self.loss.notified().await;
    }

    /// Why the run was stopped, if it was, with when ("stopped early: …", or "stopped during
    /// the drain: …").
    pub fn stop_reason(&self) -> Option<String> {
        self.stop_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Completes when the run is stopped early.
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stopped.subscribe()
    }

    /// Whether the run is over (drain finished or timed out).
    pub fn is_finished(&self) -> bool {
        self.finished_flag.load(Relaxed)
    }

    /// Waits until the run is over.
    pub async fn wait_finished(&self) {
        let mut rx = self.finished.subscribe();
        let _ = rx.wait_for(|f| *f).await;
    }

    /// Records something that went wrong; the first few are kept verbatim for the report.
    pub fn note_problem(&self, what: String) {
        let mut p = self.problems.lock().unwrap_or_else(|e| e.into_inner());
        p.note(what);
    }

    /// The first problems noted, and how many there were in all.
    pub fn problems(&self) -> (Vec<String>, usize) {
        let p = self.problems.lock().unwrap_or_else(|e| e.into_inner());
        (p.first.clone(), p.total)
    }

    /// Marks the run finished: connections that end from now on end as planned.
    pub fn finish(&self) {
        self.files.close();
        self.finished_flag.store(true, Relaxed);
        // Stored whether or not a task waits now: see `stop_at`.
        self.finished.send_replace(true);
    }

    /// Sums a counter over all clients.
    pub fn sum(&self, f: impl Fn(&ClientCounters) -> u64) -> u64 {
        self.counters.iter().map(f).sum()
    }
}

/// The tag a run puts in each body it sends, which its receivers hold every body to. A run on
/// its own draws one at random. The shards of one run (separate processes) must agree without
/// talking: theirs is made from what makes their load one ([`Scenario::load_fields`], which a
/// merge holds them to as well) and the shard count, not from what each may set for itself
/// (its ramp-up is stretched to its own share of the clients, say). So two different sharded
/// loads differ, and the same sharded load started twice at once does not (nor can it be told
/// apart by anything the shards share). The leg (`leg`: its target or transport) is part of it:
/// the legs of one sharded run against several targets go one after the other, and a message
/// of one that a system still held (a persistent session) is another run's to the next. Never
/// 0, the tag of bodies written before tags were.
pub fn run_tag(s: &Scenario, shard: Option<Shard>, leg: &str) -> u16 {
    let fold = |x: u64| -> u16 {
        let t = (x ^ (x >> 16) ^ (x >> 32) ^ (x >> 48)) as u16;
        t.max(1)
    };
    let Some(shard) = shard else {
        return fold(rand::random::<u64>());
    };
    // FNV-1a over what every shard of the run shares.
    let fields = s.load_fields();
    let described = fields.iter().flat_map(|(_, v)| v.bytes().chain([0]));
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let leg = leg.bytes().chain([0]);
    for b in described.chain(leg).chain(shard.count.to_be_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    fold(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_connect_concurrency_past_what_a_semaphore_counts_is_no_limit() {
        let mut s = Scenario::builtin_default();
        s.generator.connect_concurrency = usize::MAX;
        let (timer, _thread) = crate::measure::timer::Timer::tokio();
        let driver = Driver::Memory(crate::driver::memory::Hub::new());
        let ctx = RunContext::new(s, driver, timer, None, "memory", Vec::new());
        assert_eq!(
            ctx.connect_permits.available_permits(),
            Semaphore::MAX_PERMITS
        );
    }

    /// The drain begins at the schedule's end; a stop within it (Ctrl-C in the drain) does not
    /// begin it again, while a stop before the end begins it there.
    #[tokio::test]
    async fn a_stop_in_the_drain_does_not_begin_it_again() {
        let context = |duration_ms: u64| {
            let mut s = Scenario::builtin_default();
            s.ramp_up = Duration::ZERO;
            s.warmup = Duration::ZERO;
            s.duration = Duration::from_millis(duration_ms);
            let (timer, thread) = crate::measure::timer::Timer::tokio();
            let driver = Driver::Memory(crate::driver::memory::Hub::new());
            let ctx = RunContext::new(s, driver, timer, None, "memory", Vec::new());
            (ctx, thread)
        };
        let (short, _t1) = context(1);
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(short.clock.now_us() > short.schedule_end_us);
        short.stop("interrupted".into());
        assert_eq!(short.drain_began_us(), short.schedule_end_us);
        let (long, _t2) = context(3_600_000);
        long.stop("interrupted".into());
        let began = long.drain_began_us();
        assert!(began < long.schedule_end_us && began <= long.clock.now_us());
        assert!(began >= long.schedule_end());
    }

    /// Told while no task waited on it (every client between two waits), the end was not
    /// kept, and each later wait lasted until the run gave up on its clients, 15 s on.
    #[tokio::test]
    async fn a_stop_and_an_end_told_while_no_one_waits_are_seen_by_later_waits() {
        let (timer, _thread) = crate::measure::timer::Timer::tokio();
        let driver = Driver::Memory(crate::driver::memory::Hub::new());
        let ctx = RunContext::new(
            Scenario::builtin_default(),
            driver,
            timer,
            None,
            "memory",
            Vec::new(),
        );
        ctx.stop("a test".into());
        ctx.finish();
        let waited = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            let mut stop = ctx.stop_signal();
            let _ = stop.wait_for(|s| *s).await;
            ctx.wait_finished().await;
        });
        assert!(
            waited.await.is_ok(),
            "a wait begun after the end never ended"
        );
    }

    #[test]
    fn shards_of_one_load_share_a_tag_and_other_loads_do_not() {
        let s = Scenario::builtin_default();
        let shard = |index, count| Some(Shard { index, count });
        assert_eq!(
            run_tag(&s, shard(1, 4), "quic"),
            run_tag(&s, shard(4, 4), "quic")
        );
        assert_ne!(
            run_tag(&s, shard(1, 4), "quic"),
            run_tag(&s, shard(1, 3), "quic")
        );
        // Each leg of a run over several targets or transports has its own.
        assert_ne!(
            run_tag(&s, shard(1, 4), "quic"),
            run_tag(&s, shard(1, 4), "tcp")
        );
        let mut other = s.clone();
        other.seed += 1;
        assert_ne!(
            run_tag(&s, shard(1, 4), "quic"),
            run_tag(&other, shard(1, 4), "quic")
        );
        // What each shard sets for itself: its ramp-up stretched to its own clients, its
        // generator's options, drain, SLOs.
        let mut own = s.clone();
        own.ramp_up += std::time::Duration::from_secs(3);
        own.drain += std::time::Duration::from_secs(1);
        own.generator.connect_rate = 7.0;
        own.slo.push("lost == 0".into());
        assert_eq!(
            run_tag(&s, shard(1, 2), "quic"),
            run_tag(&own, shard(2, 2), "quic")
        );
        // Runs on their own draw theirs: two of three draws alike would be one chance in
        // 20,000 or so.
        let drawn: std::collections::HashSet<u16> =
            (0..3).map(|_| run_tag(&s, None, "quic")).collect();
        assert!(drawn.len() >= 2, "{drawn:?}");
        assert!(!drawn.contains(&0));
    }

    #[test]
    fn problems_keep_the_first_in_order_then_one_of_each_new_kind() {
        let mut p = Problems::default();
        for i in 0..1000 {
            p.note(format!("client {i}: connection lost"));
        }
        p.note("client 7: the server is shutting down".to_string());
        p.note("client 8: the server is shutting down".to_string());
        assert_eq!(p.total, 1002);
        assert_eq!(p.first.len(), PROBLEMS_KEPT_IN_ORDER + 1);
        assert_eq!(p.first[0], "client 0: connection lost");
        assert_eq!(
            p.first.last().map(String::as_str),
            Some("client 7: the server is shutting down")
        );
        for k in 0..PROBLEMS_KEPT * 2 {
            p.note(format!("kind {} {k}", "x".repeat(k)));
        }
        assert_eq!(p.first.len(), PROBLEMS_KEPT);
    }
}
