//! One simulated client: connect and say Hello, then send on its schedule (open loop) while a
//! second task receives, checks and times everything that arrives.
//!
//! Open loop means the schedule does not wait for replies: a message due at `t` is stamped with
//! `t` as its intended send time, and if the client is late (because a write blocked) the
//! lateness counts in the latency (the coordinated-omission correction). A message id carries
//! its intended time, so an Ack is timed without any per-message state.

pub mod context;
pub mod file_client;
pub mod receive;

use std::sync::atomic::{
    AtomicBool, AtomicU64,
    Ordering::{AcqRel, Relaxed},
};
use std::sync::Arc;
use std::time::Duration;

use imbench_proto::Dest;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use std::collections::HashMap;

use crate::client::context::RunContext;
use crate::client::file_client::{FileEvent, Outgoing};
use crate::driver::{ConnectError, Login, Op, Sender, Session, SessionError};
use crate::measure::accounting::Inbox;
use crate::measure::clock::Clock;
use crate::measure::group_ledger::Membership;
use crate::measure::metrics::Metric;
use crate::workload::agenda::{Action, Agenda};
use crate::workload::body::{self, Header};
use crate::workload::churn::{AwaitingAnswer, ChurnSchedule, Disconnect, Unanswered};
use crate::workload::groups::{GroupEvent, Role};
use crate::workload::message_ids::direct_msg_id;
use crate::workload::schedule::Due;

/// How long an idle client that sends receipts waits at most before confirming what arrived.
const RECEIPT_EVERY: Duration = Duration::from_millis(20);

/// Unconfirmed deliveries after which a busy sender confirms before its next message.
const RECEIPT_BATCH: u64 = 64;

/// How long a client leaving on purpose waits for the server to close before cutting.
const LEAVE_WAIT: Duration = Duration::from_secs(5);

/// How long a client of a stopped run waits for its goodbye to be written and answered.
const STOPPED_GOODBYE: Duration = Duration::from_millis(200);

/// The emulated path the scenario's clients are on, if any.
fn emulated_path(s: &crate::config::scenario::Scenario) -> Option<imbench_netpath::PathSpec> {
    s.network.as_ref().and_then(|n| n.path().ok().flatten())
}

/// What a login that timed out owes to an emulated path, if the run is on one: its packets
/// lost (to the path's loss or a full queue) cost retransmits of 1 s, 2 s, 4 s.
fn on_a_path(s: &crate::config::scenario::Scenario) -> &'static str {
    if emulated_path(s).is_some() {
        "; on this emulated path a handshake whose packets were lost (to its loss, or a full queue: the notes count them) waits out retransmits of 1 s, 2 s, 4 s"
    } else {
        ""
    }
}

/// Why logins were still under way when the drain ended, and what to do about it. On a path
/// that loses packets a handshake whose packets were lost waits out its retransmits, a second
/// and then twice as long each time: that, not the ramp-up, is then the likelier cause.
fn why_logins_outlasted(s: &crate::config::scenario::Scenario) -> String {
    let lossy = emulated_path(s).is_some_and(|p| p.up.loss > 0.0 || p.down.loss > 0.0);
    if lossy {
        "on this path, which loses packets, a handshake whose packets were lost waits out retransmits of 1 s, 2 s, 4 s and more: give a longer --drain, or a path that loses less".to_string()
    } else {
        format!(
            "the logins took longer than the whole schedule after a ramp-up of {}, or the server did not answer them: give a longer --ramp-up, or more handshakes at once with [generator] connect_concurrency",
            humantime::format_duration(s.ramp_up)
        )
    }
}

/// Logs `user` in through the run's driver, asking for receipts when the scenario churns.
pub async fn connect(ctx: &RunContext, user: u64) -> Result<Session, ConnectError> {
    ctx.driver.connect(user, ctx.scenario.churn.enabled()).await
}

/// Times a login that began at `started` as `metric`, and counts how its handshake went.
fn logged_in(ctx: &RunContext, index: usize, session: &Session, metric: Metric, started: u64) {
    // Every connection counts, in the warm-up too: connect figures are about handshakes, and
    // the clients' first connections all happen before the measured period.
    ctx.recorder
        .record(metric, ctx.clock.now_us() - started, true);
    let c = &ctx.counters[index];
    match session.login {
        Login::Full => {}
        Login::Resumed => {
            c.resumed.fetch_add(1, Relaxed);
        }
        Login::ZeroRtt => {
            c.resumed.fetch_add(1, Relaxed);
            c.zero_rtt.fetch_add(1, Relaxed);
        }
        Login::ZeroRttRefused => {
            c.resumed.fetch_add(1, Relaxed);
            c.zero_rtt_refused.fetch_add(1, Relaxed);
        }
    }
}

/// Runs client `index` from its ramp-up slot to the end of the drain.
pub async fn run_client(ctx: Arc<RunContext>, index: usize) {
    let counters = &ctx.counters[index];
    let user = index as u64;
    let s = &ctx.scenario;
    let slot_us = (s.ramp_up.as_micros() as u64).saturating_mul(index as u64) / s.clients as u64;
    // A run stopped during the ramp-up (Ctrl-C) connects no one else.
    let mut stop = ctx.stop_signal();
    tokio::select! {
        biased;
        _ = stop.wait_for(|s| *s) => {
            counters.done_sending.store(true, Relaxed);
            return;
        }
        _ = tokio::time::sleep_until(ctx.clock.at(slot_us)) => {}
    }

    // A run that was stopped (Ctrl-C, above all) starts no more logins, and any login still
    // waiting for its turn or under way is given up when the run ends (after its drain): the
    // run promised to end within it, and what such a client would receive after is no
    // delivery the run can count.
    let attempt = async {
        let _permit = tokio::select! {
            biased;
            () = stopped(&ctx) => return None,
            () = ctx.wait_finished() => return None,
            permit = ctx.connect_permits.acquire() => permit,
        };
        let started = ctx.clock.now_us();
        let login = tokio::time::timeout(s.generator.connect_timeout, connect(&ctx, user));
        tokio::select! {
            biased;
            () = ctx.wait_finished() => None,
            result = login => Some((result, started)),
        }
    };
    let attempt = attempt.await;
    // A login that failed after the run was stopped early (Ctrl-C during the ramp-up, say, with
    // a server that no longer answers) failed in the wait for what was in flight, which the
    // run did not wait out for it: left out as one given up is.
    let stopped_early = ctx.stop_reason().is_some() && ctx.schedule_end() < ctx.schedule_end_us;
    if stopped_early && matches!(attempt, Some((Ok(Err(_)) | Err(_), _))) {
        counters.done_sending.store(true, Relaxed);
        return;
    }
    let conn = match attempt {
        Some((Ok(Ok(conn)), started)) => {
            logged_in(&ctx, index, &conn, Metric::Connect, started);
            conn
        }
        Some((Ok(Err(e)), _)) => return connect_failed(&ctx, index, e.to_string()),
        Some((Err(_), _)) => {
            let e = format!(
                "not logged in within {:?} (connect_timeout){}",
                s.generator.connect_timeout,
                on_a_path(s)
            );
            return connect_failed(&ctx, index, e);
        }
        // A run stopped before its schedule's planned end did not wait for this client: it
        // is left out, as a client never started is, and not counted among those that could
        // not connect. A run that got through its schedule (stopped in the drain, or not at
        // all) did wait for it, as long as it promised.
        None if ctx.schedule_end() < ctx.schedule_end_us => {
            counters.done_sending.store(true, Relaxed);
            return;
        }
        None => {
            // The schedule ran its course: the logins outlasted it, whether the drain ran out
            // or was cut short (Ctrl-C in the drain).
            let ended = if ctx.stop_reason().is_some() {
                "the run was stopped in its drain"
            } else {
                "the drain ended"
            };
            let e = format!(
                "still logging in, or waiting its turn to, when {ended} at {:.1}s ({})",
                ctx.clock.now_us() as f64 / 1e6,
                why_logins_outlasted(s)
            );
            return connect_failed(&ctx, index, e);
        }
    };
    counters.connected.store(true, Relaxed);
    if let Some(late_us) = login_late_by(ctx.clock.now_us(), ctx.send_start_us, ctx.schedule_end())
    {
        ctx.late_logins.fetch_add(1, Relaxed);
        ctx.latest_login_after_send_start_us
            .fetch_max(late_us, Relaxed);
    }
    let streams = conn.side_streams.clone();
    if let Some(q) = &streams {
        // Files come to a QUIC client on streams of their own.
        tokio::spawn(crate::client::file_client::receive_streams(
            ctx.clone(),
            q.clone(),
        ));
    }
    let (mut outgoing, file_events) = Outgoing::new(ctx.clone(), user, streams);
    let churn = ChurnSchedule::new(s, index, ctx.send_start_us, ctx.churners);
    // Unanswered messages are sent again after a reconnect, unless the system promises at
    // most once (MQTT at QoS 0): there a message the connection took with it is lost.
    let awaiting = churn
        .as_ref()
        .filter(|_| !ctx.driver.at_most_once())
        .map(|_| Arc::new(AwaitingAnswer::default()));
    let mut conn = Connection::start(
        &ctx,
        index,
        conn,
        Inbox::default(),
        file_events,
        churn,
        awaiting,
    );
    if let Err(e) = join_groups(&ctx, index, &mut conn.sender).await {
        ctx.note_problem(format!("client {index}: joining its groups: {e}"));
    }

    // A client that connects after sending began starts its schedule when it connects: it does
    // not owe the messages it could not have sent.
    let start_us = ctx.send_start_us.max(ctx.clock.now_us());
    if let Err(e) = send_loop(&ctx, index, &mut conn, &mut outgoing, start_us).await {
        // A write that fails after the receiver reported its connection lost (with the cause:
        // closed, reset) is that same loss, whatever the write saw: one error, not two.
        let told = counters.connection_lost.swap(true, AcqRel);
        if !told {
            counters.errors.fetch_add(1, Relaxed);
        }
        if !ctx.is_finished() {
            ctx.connection_lost();
            counters.disconnected.store(true, Relaxed);
            if !told {
                ctx.note_problem(format!("client {index}: sending failed: {e}"));
            }
            outgoing.fail_all();
        }
    }
    counters.done_sending.store(true, Relaxed);
    // Deliveries go on arriving during the drain, and the server keeps what is unconfirmed.
    let mut finished = std::pin::pin!(ctx.wait_finished());
    loop {
        tokio::select! {
            _ = &mut finished => break,
            _ = tokio::time::sleep(RECEIPT_EVERY), if conn.receipts => {
                if conn.confirm().await.is_err() {
                    finished.await;
                    break;
                }
            }
        }
    }
    // Say goodbye; the system then closes, which ends the receiver. A run that was stopped
    // (Ctrl-C, a server that stopped answering) does not wait on a server that may never
    // answer: Ctrl-C promised an end within the stopped drain.
    let goodbye = if ctx.stop_reason().is_some() {
        STOPPED_GOODBYE
    } else {
        Duration::from_secs(5)
    };
    let _ = tokio::time::timeout(goodbye, async {
        let _ = conn.confirm().await;
        conn.sender.close("run finished").await;
    })
    .await;
    // The receiver ends when the server closes after Bye; past the wait, it is ended here, not
    // left running: the run settles its groups once every client task is over, and a
    // delivery counted after that would be counted for nothing (its message already lost).
    if let Some(mut receiver) = conn.receiver.take() {
        if tokio::time::timeout(goodbye, &mut receiver).await.is_err() {
            receiver.abort();
            let _ = receiver.await;
        }
    }
    conn.sender.abort("run finished");
}

/// A client's current connection, and what it keeps across reconnects.
struct Connection {
    sender: Sender,
    /// The task reading this connection; it hands back the inbox when the connection ends.
    /// `None` once that happened and no new connection replaced it.
    receiver: Option<JoinHandle<Inbox>>,
    /// Deliver frames received on this connection.
    received: Arc<AtomicU64>,
    /// The count last sent in a Receipt.
    confirmed: u64,
    /// When that Receipt was queued.
    confirmed_at: tokio::time::Instant,
    /// Set before a planned disconnect, so that the receiver does not report it as a failure.
    leaving: Arc<AtomicBool>,
    /// Whether this client confirms deliveries (it does when the scenario churns).
    receipts: bool,
    /// When this client drops its connection, if it churns.
    churn: Option<ChurnSchedule>,
    /// Messages without an Ack or Reject yet, to send again after a reconnect (churn only).
    awaiting: Option<Arc<AwaitingAnswer>>,
    file_events: UnboundedSender<FileEvent>,
    /// Moves a QUIC connection to a new address (a handover), when it has a socket of its own.
    migrator: Option<imbench_transport::Migrator>,
}

impl Connection {
    fn start(
        ctx: &Arc<RunContext>,
        index: usize,
        session: Session,
        inbox: Inbox,
        file_events: UnboundedSender<FileEvent>,
        churn: Option<ChurnSchedule>,
        awaiting: Option<Arc<AwaitingAnswer>>,
    ) -> Self {
        let receipts = ctx.scenario.churn.enabled();
        let received = Arc::new(AtomicU64::new(0));
        let leaving = Arc::new(AtomicBool::new(false));
        let receiver = tokio::spawn(crate::client::receive::receive(
            ctx.clone(),
            index,
            session.events,
            crate::client::receive::Receiving {
                inbox,
                received: received.clone(),
                leaving: leaving.clone(),
                awaiting: awaiting.clone(),
                file_events: file_events.clone(),
            },
        ));
        Self {
            migrator: session.migrator,
            sender: session.sender,
            receiver: Some(receiver),
            received,
            confirmed: 0,
            confirmed_at: tokio::time::Instant::now(),
            leaving,
            receipts,
            churn,
            awaiting,
            file_events,
        }
    }

    /// Queues a Receipt when at least `min` deliveries are unconfirmed; true if it did.
    fn queue_receipt(&mut self, min: u64) -> Result<bool, SessionError> {
        if !self.receipts {
            return Ok(false);
        }
        let count = self.received.load(Relaxed);
        if count > self.confirmed && count - self.confirmed >= min {
            self.sender.queue(Op::Receipt { count })?;
            self.confirmed = count;
            self.confirmed_at = tokio::time::Instant::now();
            return Ok(true);
        }
        Ok(false)
    }

    /// Queues a Receipt to go out with the next file chunk, as a client that is idle would
    /// send one (every [`RECEIPT_EVERY`], or after [`RECEIPT_BATCH`] deliveries): a long upload
    /// must not leave deliveries unconfirmed for its whole length, since the server counts them
    /// against the client's queue bound until then.
    fn queue_receipt_beside_upload(&mut self) -> Result<bool, SessionError> {
        let min = if self.confirmed_at.elapsed() >= RECEIPT_EVERY {
            1
        } else {
            RECEIPT_BATCH
        };
        self.queue_receipt(min)
    }

    /// Confirms every delivery received so far.
    async fn confirm(&mut self) -> Result<(), SessionError> {
        if self.queue_receipt(1)? {
            self.sender.flush().await?;
        }
        Ok(())
    }

    /// A handover over QUIC: moves the connection to a new socket (a new address to the
    /// server) and carries on. On an emulated path the old address is out of reach at once and
    /// the new one for the scenario's `offline`. False when this connection cannot move (not
    /// QUIC, or a socket shared with other clients) or the move failed.
    fn move_address(&mut self, ctx: &RunContext, index: usize) -> bool {
        let Some(migrator) = &self.migrator else {
            return false;
        };
        let moved = migrator.new_socket().and_then(|socket| {
            if let Some(outages) = &ctx.outages {
                let until = std::time::Instant::now() + ctx.scenario.churn.offline;
                outages.darken(migrator.port()?, until);
                outages.darken(socket.local_addr()?.port(), until);
            }
            migrator.move_to(socket)
        });
        match moved {
            Ok(()) => true,
            Err(e) => {
                ctx.note_problem(format!("client {index}: moving to a new address: {e}"));
                false
            }
        }
    }

    /// Drops the connection as `d` says, stays away, connects again and sends again whatever
    /// had no answer. Returns when the client is back (with the time it was), or `None` when
    /// the run ended first.
    async fn leave_and_return(
        &mut self,
        ctx: &Arc<RunContext>,
        index: usize,
        d: Disconnect,
    ) -> Result<Option<u64>, SessionError> {
        let c = &ctx.counters[index];
        self.leaving.store(true, Relaxed);
        c.away.store(true, Relaxed);
        if d.abrupt {
            // No goodbye, and whatever is unread or unsent is thrown away.
            self.sender.abort("dropped");
        } else {
            let _ = self.confirm().await;
            self.sender.close("back soon").await;
        }
        let Some(mut receiver) = self.receiver.take() else {
            return Ok(None);
        };
        let mut inbox = match tokio::time::timeout(LEAVE_WAIT, &mut receiver).await {
            Ok(Ok(inbox)) => inbox,
            Ok(Err(e)) => {
                ctx.note_problem(format!("client {index}: receiver failed: {e}"));
                Inbox::default()
            }
            Err(_) => {
                self.sender.abort("server did not close");
                receiver.await.unwrap_or_default()
            }
        };
        self.sender.abort("left");
        if ctx.driver.at_most_once() {
            // At most once: what had no answer when the connection went is not sent again, and
            // its answer cannot come on another connection. The receiver has ended and this
            // task is the only sender, so the difference is exactly what this connection took.
            let direct = c.sent.load(Relaxed).saturating_sub(c.answered());
            let group = c
                .group_sent
                .load(Relaxed)
                .saturating_sub(c.group_answered());
            c.dropped_unanswered.fetch_add(direct, Relaxed);
            c.group_dropped_unanswered.fetch_add(group, Relaxed);
        }
        let Some(schedule) = self.churn.as_ref() else {
            return Ok(None);
        };
        let offline = Duration::from_micros(schedule.offline_us);
        let mut stop = ctx.stop_signal();
        // A handover's outage is the path's doing; without a path there is none, for QUIC
        // (which moves at once) and for the others alike: they connect again at once.
        let mut away = if d.handover && ctx.outages.is_none() {
            Duration::ZERO
        } else {
            offline
        };
        let conn = loop {
            tokio::select! {
                _ = tokio::time::sleep(away) => {}
                _ = stop.wait_for(|s| *s) => return Ok(None),
            }
            if ctx.is_finished() {
                return Ok(None);
            }
            let timeout = ctx.scenario.generator.connect_timeout;
            let started = ctx.clock.now_us();
            // Given up when the run ends, as a first login is: the run promised to end
            // within its drain, and a server that hangs would hold this for the timeout.
            let attempt = tokio::select! {
                biased;
                () = ctx.wait_finished() => return Ok(None),
                attempt = tokio::time::timeout(timeout, connect(ctx, index as u64)) => attempt,
            };
            match attempt {
                Ok(Ok(conn)) => {
                    logged_in(ctx, index, &conn, Metric::Reconnect, started);
                    break conn;
                }
                Ok(Err(e)) => ctx.note_problem(format!("client {index}: reconnecting: {e}")),
                Err(_) => ctx.note_problem(format!(
                    "client {index}: reconnecting: not logged in within {timeout:?}"
                )),
            }
            // Without a connection until one is had again: a server that went away while
            // some clients were away (churn) leaves every client lost, and the run stops on
            // it (the watchdog), rather than running out its schedule sending nothing.
            c.connection_lost.store(true, Relaxed);
            ctx.connection_lost();
            // Try again, no faster than the scenario's own rhythm.
            away = offline.max(Duration::from_millis(100));
        };
        c.reconnects.fetch_add(1, Relaxed);
        c.away.store(false, Relaxed);
        // A new connection: whatever became of the last one, this one has not been lost.
        c.connection_lost.store(false, Relaxed);
        inbox.new_connection();
        let churn = self.churn.take();
        let awaiting = self.awaiting.take();
        *self = Connection::start(
            ctx,
            index,
            conn,
            inbox,
            self.file_events.clone(),
            churn,
            awaiting.clone(),
        );
        if let Some(awaiting) = awaiting {
            let waiting = awaiting.waiting();
            if !waiting.is_empty() {
                for (msg_id, m) in waiting {
                    ctx.resent.note(index as u64, m.to, m.seq);
                    c.resent.fetch_add(1, Relaxed);
                    self.sender.queue(Op::Send {
                        msg_id,
                        to: m.to,
                        // Marked, so that a recipient in another shard knows it too.
                        body: body::resent(&m.body),
                    })?;
                }
                self.sender.flush().await?;
            }
        }
        Ok(Some(ctx.clock.now_us()))
    }
}

/// Completes when the run is stopped early (and never, for a run that is not).
async fn stopped(ctx: &RunContext) {
    let mut signal = ctx.stop_signal();
    if signal.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn connect_failed(ctx: &RunContext, index: usize, why: String) {
    ctx.counters[index].connect_failed.store(true, Relaxed);
    ctx.counters[index].done_sending.store(true, Relaxed);
    ctx.note_problem(format!("client {index} could not connect: {why}"));
}

/// Writes a Join for each of the client's groups and waits (up to the connect timeout) until
/// every one is answered, so that its first group message finds it a member.
async fn join_groups(ctx: &RunContext, index: usize, sender: &mut Sender) -> Result<(), String> {
    let roles = &ctx.plan.roles[index];
    if roles.is_empty() {
        return Ok(());
    }
    let counters = &ctx.counters[index];
    counters.joins_pending.store(roles.len() as u64, Relaxed);
    for &(gi, _) in roles {
        let group = ctx.plan.groups[gi].id;
        sender
            .queue(Op::Join { group })
            .map_err(|e| e.to_string())?;
    }
    let now = ctx.clock.now_us();
    for &(gi, role) in roles {
        if role == Role::Churner {
            ctx.ledger
                .membership(gi, index as u64, Membership::JoinSent, now);
        }
    }
    sender.flush().await.map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + ctx.scenario.generator.connect_timeout;
    while counters.joins_pending.load(Relaxed) > 0 {
        if tokio::time::Instant::now() >= deadline || ctx.is_finished() {
            return Err(format!(
                "{} of {} Joins unanswered after {:?}",
                counters.joins_pending.load(Relaxed),
                roles.len(),
                ctx.scenario.generator.connect_timeout
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

async fn send_loop(
    ctx: &Arc<RunContext>,
    index: usize,
    conn: &mut Connection,
    outgoing: &mut Outgoing,
    start_us: u64,
) -> Result<(), SessionError> {
    let scheduled = send_scheduled(ctx, index, conn, outgoing, start_us).await;
    // Transfers under way go on after the schedule ends, until they end or the run does.
    let mut finished = std::pin::pin!(ctx.wait_finished());
    while outgoing.busy() {
        if outgoing.has_chunks() {
            while let Some(ev) = outgoing.try_event() {
                outgoing.handle(ev, &mut conn.sender).await?;
            }
            if ctx.is_finished() {
                break;
            }
            conn.queue_receipt_beside_upload()?;
            outgoing.write_chunk(&mut conn.sender).await?;
            continue;
        }
        let ev = tokio::select! {
            ev = outgoing.next_event() => ev,
            _ = &mut finished => break,
        };
        outgoing.handle(ev, &mut conn.sender).await?;
    }
    scheduled
}

/// Waits until `at_us`, writing file chunks and acting on file events meanwhile (each write's
/// time kept in `writes`). Returns `None` when the run was stopped.
async fn wait_until(
    ctx: &RunContext,
    at_us: u64,
    conn: &mut Connection,
    outgoing: &mut Outgoing,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    writes: &mut WriteTimes,
) -> Result<Option<()>, SessionError> {
    loop {
        while let Some(ev) = outgoing.try_event() {
            let handled = outgoing.handle(ev, &mut conn.sender);
            writes.timed(&ctx.clock, handled).await?;
        }
        if ctx.clock.now_us() >= at_us {
            return Ok(Some(()));
        }
        if outgoing.has_chunks() {
            conn.queue_receipt_beside_upload()?;
            let written = outgoing.write_chunk(&mut conn.sender);
            writes.timed(&ctx.clock, written).await?;
            continue;
        }
        let ev = tokio::select! {
            _ = ctx.timer.sleep_until(ctx.clock.at(at_us)) => return Ok(Some(())),
            _ = stop.wait_for(|s| *s) => return Ok(None),
            _ = tokio::time::sleep(RECEIPT_EVERY), if conn.receipts => None,
            ev = outgoing.next_event() => Some(ev),
        };
        let acted = async {
            match ev {
                Some(ev) => outgoing.handle(ev, &mut conn.sender).await,
                None => conn.confirm().await,
            }
        };
        writes.timed(&ctx.clock, acted).await?;
    }
}

/// When a client's own writes (and reconnects) held it: a write that waits is the transport
/// pushing back, which the corrected latency carries already, so that time is not the
/// generator's lateness. Schedule lag is the rest of how late an action went out.
#[derive(Debug, Default)]
struct WriteTimes {
    /// Spans (from, to) in µs on the run's clock, in order, none overlapping.
    spans: std::collections::VecDeque<(u64, u64)>,
}

impl WriteTimes {
    /// Spans closer than this are kept as one: a file's chunks go out back to back.
    const JOIN_US: u64 = 10;
    /// Spans kept at most; the oldest go first (an action asks about the time since it was
    /// due, and actions come in the order they are due).
    const MOST: usize = 4096;

    /// Does `work`, keeping its time as a write's.
    async fn timed<T>(&mut self, clock: &Clock, work: impl std::future::Future<Output = T>) -> T {
        let from = clock.now_us();
        let out = work.await;
        self.add(from, clock.now_us());
        out
    }

    fn add(&mut self, from: u64, to: u64) {
        if to <= from {
            return;
        }
        match self.spans.back_mut() {
            Some(last) if from <= last.1 + Self::JOIN_US => last.1 = last.1.max(to),
            _ => {
                self.spans.push_back((from, to));
                if self.spans.len() > Self::MOST {
                    self.spans.pop_front();
                }
            }
        }
    }

    /// Time spent in writes between `from` and `to`; forgets what ended before `from`.
    fn within(&mut self, from: u64, to: u64) -> u64 {
        while self.spans.front().is_some_and(|&(_, end)| end <= from) {
            self.spans.pop_front();
        }
        self.held(from, to)
    }

    /// Time spent in writes between `from` and `to`, forgetting nothing (see
    /// [`WriteTimes::within`]).
    fn held(&self, from: u64, to: u64) -> u64 {
        self.spans
            .iter()
            .map(|&(start, end)| end.min(to).saturating_sub(start.max(from)))
            .sum()
    }

    /// How late an action due at `at_us` went out at `now_us`, less the time writes held the
    /// client meanwhile.
    fn lag(&mut self, at_us: u64, now_us: u64) -> u64 {
        let late = now_us.saturating_sub(at_us);
        late.saturating_sub(self.within(at_us, now_us))
    }
}

/// What a client numbers as it sends: per partner and per group the next sequence number (for
/// the recipients' exactly-once accounting), which groups it has left, and its message ids.
#[derive(Default)]
struct Numbering {
    seqs: Vec<u64>,
    group_seqs: HashMap<usize, u64>,
    left: HashMap<usize, bool>,
    counter: u64,
}

/// Keeps the client's agenda until the schedule ends or the run stops: waits for each action,
/// records how late the generator woke for it, and does it. Churn interrupts the agenda with
/// a disconnect and a return.
async fn send_scheduled(
    ctx: &Arc<RunContext>,
    index: usize,
    conn: &mut Connection,
    outgoing: &mut Outgoing,
    start_us: u64,
) -> Result<(), SessionError> {
    let mut agenda = Agenda::new(&ctx.scenario, &ctx.plan, index, start_us);
    if agenda.is_empty() {
        return Ok(());
    }
    let mut numbering = Numbering {
        seqs: vec![0; agenda.partners().len()],
        ..Numbering::default()
    };
    let mut stop = ctx.stop_signal();
    let mut writes = WriteTimes::default();
    // Messages due while the client was away are not owed (as for a late connect).
    let mut back_us = 0;
    // How late past the schedule's end a send may still start: the lateness the run
    // accepts of every send. A client later than that is behind for good.
    let late_at_end = ctx.scenario.generator.max_schedule_lag.as_micros() as u64;
    loop {
        // A client behind its schedule sends what is overdue back to back, and the transport
        // may take every write at once: without giving way now and then it would hold its
        // worker, and the progress line, Ctrl-C and the clients beside it would wait.
        tokio::task::consume_budget().await;
        let churn_at = conn.churn.as_ref().map_or(u64::MAX, |c| c.next_at());
        if churn_at <= agenda.next_at() && churn_at < ctx.schedule_end() {
            if churn_at > ctx.clock.now_us()
                && wait_until(ctx, churn_at, conn, outgoing, &mut stop, &mut writes)
                    .await?
                    .is_none()
            {
                return Ok(());
            }
            let Some(d) = conn.churn.as_mut().map(ChurnSchedule::take) else {
                continue;
            };
            if d.handover {
                ctx.counters[index].handovers.fetch_add(1, Relaxed);
                if conn.move_address(ctx, index) {
                    ctx.counters[index].migrations.fetch_add(1, Relaxed);
                    continue;
                }
            }
            // The time away is the plan's, not the generator's lateness.
            let back = writes
                .timed(&ctx.clock, conn.leave_and_return(ctx, index, d))
                .await?;
            match back {
                // After a handover the messages due meanwhile are still owed: the person typed
                // them, and they go out late. After a drop they are not (the client was away).
                Some(_) if d.handover => back_us = d.at_us,
                Some(at) => back_us = at,
                None => return Ok(()),
            }
            continue;
        }
        let Some(action) = agenda.take() else {
            return Ok(());
        };
        let at_us = action.at_us();
        if at_us >= ctx.schedule_end() {
            return Ok(());
        }
        if at_us < back_us {
            continue;
        }
        // Idle until due, writing file chunks meanwhile. However late the client is when it
        // gets to the action (a late wake-up, or one before it that woke late and made this
        // one overdue), that lateness is the generator's own (timer, busy threads), and what
        // schedule lag measures, less the time the client's writes were held: a write held
        // by the transport is the server pushing back, which the corrected latency carries.
        if at_us > ctx.clock.now_us()
            && wait_until(ctx, at_us, conn, outgoing, &mut stop, &mut writes)
                .await?
                .is_none()
        {
            return Ok(());
        }
        // Sends stop with the schedule: what a client still this far behind has not sent
        // stays unsent (and counted so), or the drain would wait on a backlog of sends.
        // Behind is the generator's own lateness, as schedule lag has it: the time since the
        // schedule's end that the client spent away (a handover's outage, after which what
        // was typed meanwhile is still owed) or in writes the server held is not.
        let schedule_end = ctx.schedule_end();
        let now = ctx.clock.now_us();
        let behind = now
            .saturating_sub(schedule_end)
            .saturating_sub(writes.held(schedule_end, now));
        if behind > late_at_end {
            // A run stopped early left its sends out on purpose; only a run that ran its
            // whole schedule owes them.
            if schedule_end >= ctx.schedule_end_us {
                let unsent = std::iter::once(action)
                    .chain(std::iter::from_fn(|| agenda.take()))
                    .take_while(|a| a.at_us() < schedule_end)
                    .filter(|a| {
                        matches!(
                            a,
                            Action::Direct(_) | Action::Group(_, GroupEvent::Send { .. })
                        )
                    })
                    .count();
                ctx.counters[index].unsent.fetch_add(unsent as u64, Relaxed);
            }
            return Ok(());
        }
        // A connection the receiver found lost (the server gone, say) takes no more sends:
        // a transport's buffer can accept writes for a while after the peer is gone, and
        // each would be counted sent, and lost.
        if ctx.counters[index].connection_lost.load(Relaxed) {
            return Err(SessionError::Closed);
        }
        let lag = writes.lag(at_us, ctx.clock.now_us());
        ctx.recorder
            .record(Metric::ScheduleLag, lag, ctx.in_window(at_us));
        let acted = async {
            match action {
                Action::File(due) => {
                    outgoing.start(due);
                    Ok(())
                }
                Action::Direct(due) => {
                    let to = agenda.partners()[due.partner];
                    send_direct(ctx, index, conn, &mut numbering, due, to).await
                }
                Action::Group(at_us, GroupEvent::Send { group, size }) => {
                    send_group(ctx, index, conn, &mut numbering, at_us, group, size).await
                }
                Action::Group(_, GroupEvent::Toggle { group }) => {
                    toggle_membership(ctx, index, conn, &mut numbering, group).await
                }
            }
        };
        writes.timed(&ctx.clock, acted).await?;
    }
}

/// Sends one group message, recorded in the group ledger first (a full ledger skips it).
async fn send_group(
    ctx: &RunContext,
    index: usize,
    conn: &mut Connection,
    numbering: &mut Numbering,
    at_us: u64,
    group: usize,
    size: usize,
) -> Result<(), SessionError> {
    let user = index as u64;
    let counters = &ctx.counters[index];
    let seq = numbering.group_seqs.entry(group).or_insert(0);
    let sent_us = ctx.clock.now_us();
    let Some(msg_id) = ctx.ledger.open(group, user, at_us, sent_us) else {
        return Ok(());
    };
    let delay = sent_us.saturating_sub(at_us);
    ctx.recorder
        .record(Metric::SendDelay, delay, ctx.in_window(at_us));
    // Bodies carry wall-clock times (see `Clock::wall_us`).
    let header = Header {
        intended_us: ctx.clock.wall_us(at_us),
        sent_us: ctx.clock.wall_us(sent_us),
        measured: ctx.in_window(at_us),
        resent: false,
        sender: user,
        seq: *seq,
        run: ctx.run_tag,
    };
    *seq += 1;
    let body = body::encode(&header, size, &ctx.payload);
    counters.group_sent.fetch_add(1, Relaxed);
    if ctx.in_window(at_us) {
        counters.group_sent_in_window.fetch_add(1, Relaxed);
        ctx.group_in_window.record(at_us);
    }
    let to = Dest::Group(ctx.plan.groups[group].id);
    conn.sender.send(Op::Send { msg_id, to, body }).await
}

/// Leaves a group the client is in, or joins again one it left.
async fn toggle_membership(
    ctx: &RunContext,
    index: usize,
    conn: &mut Connection,
    numbering: &mut Numbering,
    group: usize,
) -> Result<(), SessionError> {
    let out = numbering.left.entry(group).or_insert(false);
    let id = ctx.plan.groups[group].id;
    let (op, kind) = if *out {
        (Op::Join { group: id }, Membership::JoinSent)
    } else {
        (Op::Leave { group: id }, Membership::LeaveSent)
    };
    *out = !*out;
    ctx.ledger
        .membership(group, index as u64, kind, ctx.clock.now_us());
    conn.sender.send(op).await
}

/// Sends one direct message to `to`, counted before the write.
async fn send_direct(
    ctx: &RunContext,
    index: usize,
    conn: &mut Connection,
    numbering: &mut Numbering,
    due: Due,
    to: u64,
) -> Result<(), SessionError> {
    let counters = &ctx.counters[index];
    let seq = &mut numbering.seqs[due.partner];
    let sent_us = ctx.clock.now_us();
    // Bodies carry wall-clock times, so that a client of another generator (a shard) times
    // this message on the same clock as this one (see `Clock::wall_us`).
    let header = Header {
        intended_us: ctx.clock.wall_us(due.at_us),
        sent_us: ctx.clock.wall_us(sent_us),
        measured: ctx.in_window(due.at_us),
        resent: false,
        sender: index as u64,
        seq: *seq,
        run: ctx.run_tag,
    };
    ctx.recorder.record(
        Metric::SendDelay,
        sent_us.saturating_sub(due.at_us),
        ctx.in_window(due.at_us),
    );
    *seq += 1;
    let body = body::encode(&header, due.size, &ctx.payload);
    let msg_id = direct_msg_id(due.at_us, numbering.counter);
    numbering.counter += 1;
    let to = Dest::User(to);
    // Counted before the write: the drain waits for every counted message, so none can
    // still be on its way out when the run declares itself drained.
    counters.sent.fetch_add(1, Relaxed);
    if ctx.in_window(due.at_us) {
        counters.sent_in_window.fetch_add(1, Relaxed);
        ctx.direct_in_window.record(due.at_us);
    }
    if let Some(awaiting) = &conn.awaiting {
        let seq = header.seq;
        let body = body.clone();
        awaiting.sent(msg_id, Unanswered { to, body, seq });
    }
    conn.queue_receipt(RECEIPT_BATCH)?;
    conn.sender.send(Op::Send { msg_id, to, body }).await
}

/// How long after sending began a login that completed at `now_us` came, if it came after:
/// its client's sends until then were never made, and none after the schedule's end were due
/// (a run stopped by Ctrl-C or a server gone). Not of a run whose schedule ended before
/// sending began: no send was missed, whenever the login completed.
fn login_late_by(now_us: u64, send_start_us: u64, schedule_end_us: u64) -> Option<u64> {
    (now_us > send_start_us && schedule_end_us > send_start_us)
        .then(|| now_us.min(schedule_end_us) - send_start_us)
}

#[cfg(test)]
mod tests {
    use super::WriteTimes;

    #[test]
    fn a_login_is_late_only_after_sending_began_in_a_schedule_that_reached_it() {
        use super::login_late_by;
        assert_eq!(login_late_by(5_000, 1_000, 10_000), Some(4_000));
        assert_eq!(login_late_by(900, 1_000, 10_000), None);
        // Stopped before sending began: a login completed after is not late for anything.
        assert_eq!(login_late_by(5_000, 1_000, 600), None);
        // Stopped after sending began: a login after the stop missed the sends before it.
        assert_eq!(login_late_by(5_000, 1_000, 3_000), Some(2_000));
    }

    #[test]
    fn logins_outlasting_a_lossy_path_are_put_down_to_its_losses() {
        use crate::config::network::NetworkSection;
        use crate::config::scenario::{Scenario, DEFAULT_SCENARIO};
        let mut s = Scenario::from_toml(DEFAULT_SCENARIO, "default.toml").expect("it reads");
        assert!(super::why_logins_outlasted(&s).contains("give a longer --ramp-up"));
        s.network = Some(NetworkSection::named("lossy"));
        assert!(super::why_logins_outlasted(&s).contains("which loses packets"));
        s.network = Some(NetworkSection::named("lan"));
        assert!(super::why_logins_outlasted(&s).contains("give a longer --ramp-up"));
    }

    #[test]
    fn lag_is_lateness_less_the_writes_that_held_the_client() {
        let mut w = WriteTimes::default();
        // Nothing written: every µs late is the generator's.
        assert_eq!(w.lag(1_000, 1_500), 500);
        // A write held from 2,000 to 9,000 µs: an action due at 3,000 and reached at 9,100
        // was late 6,100 µs, of which 6,000 in the write.
        w.add(2_000, 9_000);
        assert_eq!(w.lag(3_000, 9_100), 100);
        // Due before the write began: the time before it counts.
        let mut w = WriteTimes::default();
        w.add(2_000, 9_000);
        assert_eq!(w.lag(1_000, 9_100), 1_100);
        // Due after it ended: none of it is taken off.
        assert_eq!(w.lag(9_500, 9_700), 200);
        // Early is not late.
        assert_eq!(w.lag(10_000, 9_000), 0);
    }

    #[test]
    fn writes_back_to_back_are_one_span_and_old_ones_are_forgotten() {
        let mut w = WriteTimes::default();
        w.add(100, 200);
        w.add(205, 300);
        assert_eq!(w.spans.len(), 1, "{:?}", w.spans);
        w.add(1_000, 1_100);
        assert_eq!(w.spans.len(), 2);
        // A question about later times forgets the spans that ended before.
        assert_eq!(w.within(500, 2_000), 100);
        assert_eq!(w.spans.len(), 1);
        // An empty span is no span.
        w.add(5_000, 5_000);
        assert_eq!(w.spans.len(), 1);
    }
}
