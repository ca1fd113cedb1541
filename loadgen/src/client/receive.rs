//! A client's receive path: every event that arrives on one session is checked, timed and
//! counted here.
//!
//! [`Receiver::on_event`] does the work for one event and never waits, so the same code serves
//! the client's receiving task ([`receive`]) and the benchmark that prices it against a reader
//! that only reads (`benches/receive_path.rs`).

use std::collections::HashMap;
use std::sync::atomic::{
    AtomicBool, AtomicU64,
    Ordering::{AcqRel, Relaxed},
};
use std::sync::Arc;

use imbench_proto::{Dest, ErrorCode};
use tokio::sync::mpsc::UnboundedSender;

use crate::client::context::RunContext;
use crate::client::file_client::{FileEvent, IncomingChunks};
use crate::driver::{Event, Events};
use crate::measure::accounting::{Arrival, Inbox};
use crate::measure::counters::ClientCounters;
use crate::measure::group_ledger::{ChurnerDelivery, Membership};
use crate::measure::metrics::Metric;
use crate::workload::body;
use crate::workload::churn::AwaitingAnswer;
use crate::workload::files::Incoming;
use crate::workload::groups::Role;
use crate::workload::message_ids::{intended_of, is_group};

/// What the receiver knows of one of its groups.
struct MemberView {
    index: usize,
    churner: bool,
    bucket: Metric,
    /// When the latest Joined arrived; `None` before the first.
    joined_us: Option<u64>,
    /// The first Join (sent at login, counted in `joins_pending`) has had its answer, a Joined
    /// or a refusal. A churner's later changes are answered too, and must not count again.
    first_join_answered: bool,
    inbox: Inbox,
}

/// What a receiving task shares with its client, and the direct-chat inbox it carries over
/// from the client's previous connection.
pub struct Receiving {
    /// Direct messages already seen, per sender.
    pub inbox: Inbox,
    /// Deliveries received, for the receipts the client sends.
    pub received: Arc<AtomicU64>,
    /// Set when the client closes this connection on purpose.
    pub leaving: Arc<AtomicBool>,
    /// Direct messages sent again after a reconnect and not yet answered.
    pub awaiting: Option<Arc<AwaitingAnswer>>,
    /// Answers to this client's own file offers.
    pub file_events: UnboundedSender<FileEvent>,
}

/// What to do after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait for the next event.
    Read,
    /// The connection is over (Bye or Error from the server).
    End,
}

/// The receive path of client `index` on one connection.
pub struct Receiver<'a> {
    ctx: &'a RunContext,
    index: usize,
    counters: &'a ClientCounters,
    shared: Receiving,
    views: HashMap<u64, MemberView>,
    incoming_files: IncomingChunks,
    churner_deliveries: Vec<ChurnerDelivery>,
    /// Direct latencies are also split by whether a file was moving (only when files run).
    split_by_files: bool,
}

impl<'a> Receiver<'a> {
    /// The receive path of client `index`, starting from what its previous connection saw.
    pub fn new(ctx: &'a RunContext, index: usize, shared: Receiving) -> Self {
        let views = ctx.plan.roles[index]
            .iter()
            .map(|&(gi, role)| {
                let g = &ctx.plan.groups[gi];
                let view = MemberView {
                    index: gi,
                    churner: role == Role::Churner,
                    bucket: Metric::group_bucket(g.bucket()),
                    joined_us: None,
                    first_join_answered: false,
                    inbox: Inbox::default(),
                };
                (g.id, view)
            })
            .collect();
        Self {
            ctx,
            index,
            counters: &ctx.counters[index],
            shared,
            views,
            incoming_files: IncomingChunks::default(),
            churner_deliveries: Vec::new(),
            split_by_files: ctx.scenario.files.rate > 0.0,
        }
    }

    /// Whether a connection that ends now ends against the plan (not a planned disconnect, not
    /// the end of the run).
    fn unplanned(&self) -> bool {
        !self.ctx.is_finished() && !self.shared.leaving.load(Relaxed)
    }

    /// The connection failed under the client. The sending side may have found the same
    /// loss first: one loss is one error.
    pub fn on_error(&mut self, error: impl std::fmt::Display) {
        if self.unplanned() && !self.counters.connection_lost.swap(true, AcqRel) {
            self.ctx.connection_lost();
            self.counters.errors.fetch_add(1, Relaxed);
            self.counters.disconnected.store(true, Relaxed);
            self.ctx
                .note_problem(format!("client {}: connection lost: {error}", self.index));
        }
    }

    /// Checks, times and counts one event that arrived at `now` (the run clock's µs).
    pub fn on_event(&mut self, event: Event, now: u64) -> Next {
        let c = self.counters;
        match event {
            Event::Delivered {
                msg_id,
                from,
                to: Dest::Group(group),
                body,
            } => {
                self.shared.received.fetch_add(1, Relaxed);
                self.group_delivery(msg_id, from, group, &body, now);
            }
            Event::Delivered { from, body, to, .. } => {
                self.shared.received.fetch_add(1, Relaxed);
                if to == Dest::User(self.index as u64) {
                    self.direct_delivery(from, &body, now);
                } else {
                    // Routed to the wrong client: not a delivery of anything sent to this one,
                    // whose sequence numbers it would otherwise take.
                    c.corrupted.fetch_add(1, Relaxed);
                    self.ctx.note_problem(format!(
                        "client {}: a direct message for {to:?} arrived here",
                        self.index
                    ));
                }
            }
            Event::Acked { msg_id } => {
                self.ctx.answer_heard(now);
                self.ack(msg_id, now);
            }
            Event::Rejected { msg_id, code } => {
                self.ctx.answer_heard(now);
                if code == ErrorCode::BUSY {
                    c.rejected_busy.fetch_add(1, Relaxed);
                }
                if is_group(msg_id) {
                    c.group_rejected.fetch_add(1, Relaxed);
                    self.ctx.ledger.rejected(msg_id);
                    if code != ErrorCode::BUSY {
                        self.ctx.note_problem(format!(
                            "client {}: group message refused: {}",
                            self.index,
                            self.ctx.driver.refusal_in_words(code)
                        ));
                    }
                } else if self.awaiting_none_or_answered(msg_id) {
                    c.rejected.fetch_add(1, Relaxed);
                    // A refusal other than a full server's is the server's rules (a body over
                    // its limit, an access rule): the problems name it, as for groups.
                    if code != ErrorCode::BUSY {
                        self.ctx.note_problem(format!(
                            "client {}: message refused: {}",
                            self.index,
                            self.ctx.driver.refusal_in_words(code)
                        ));
                    }
                }
            }
            Event::Joined { group } => {
                if let Some(view) = self.views.get_mut(&group) {
                    if !view.first_join_answered {
                        view.first_join_answered = true;
                        c.joins_pending.fetch_sub(1, Relaxed);
                    }
                    view.joined_us = Some(now);
                    let user = self.index as u64;
                    self.ctx
                        .ledger
                        .membership(view.index, user, Membership::Joined, now);
                }
            }
            Event::Left { group } => {
                if let Some(view) = self.views.get(&group) {
                    let user = self.index as u64;
                    self.ctx
                        .ledger
                        .membership(view.index, user, Membership::Left, now);
                }
            }
            Event::GroupRefused { group, code, said } => {
                c.group_refused.fetch_add(1, Relaxed);
                c.errors.fetch_add(1, Relaxed);
                // Only the first answer for a group counts against the Joins sent at login:
                // a churner's later changes (a refused Leave, a full group, too many changes)
                // are answered too, and must not count again.
                if let Some(view) = self.views.get_mut(&group) {
                    if !view.first_join_answered {
                        view.first_join_answered = true;
                        c.joins_pending.fetch_sub(1, Relaxed);
                    }
                }
                self.ctx.note_problem(match said {
                    Some(said) => format!("client {}: {said}", self.index),
                    None => format!("client {}: group {group} refused: {code}", self.index),
                });
            }
            Event::FileAccepted { transfer_id } => {
                let _ = self
                    .shared
                    .file_events
                    .send(FileEvent::Accepted(transfer_id));
            }
            Event::FileCancelled { transfer_id, code } => {
                if transfer_id & imbench_proto::RELAY_ID_BIT != 0 {
                    self.incoming_files.cancel(self.ctx, transfer_id);
                } else {
                    let _ = self
                        .shared
                        .file_events
                        .send(FileEvent::Cancelled(transfer_id, code));
                }
            }
            Event::FileIncoming {
                transfer_id,
                size,
                sha256,
                name,
            } => {
                let incoming = Incoming::new(&name, size, sha256, now);
                self.incoming_files.begin(self.ctx, transfer_id, incoming);
            }
            Event::FileChunk { transfer_id, data } => {
                self.incoming_files.chunk(self.ctx, transfer_id, &data);
            }
            Event::Alive => {}
            Event::Closed { reason } => {
                if self.unplanned() {
                    c.connection_lost.store(true, Relaxed);
                    self.ctx.connection_lost();
                    c.disconnected.store(true, Relaxed);
                    self.ctx
                        .note_problem(format!("client {}: server said Bye: {reason}", self.index));
                }
                return Next::End;
            }
            Event::Failed { code, reason } => {
                // The sending side may find the same end: one error for it.
                if !c.connection_lost.swap(true, AcqRel) {
                    c.errors.fetch_add(1, Relaxed);
                }
                if self.unplanned() {
                    self.ctx.connection_lost();
                    c.disconnected.store(true, Relaxed);
                    if code == ErrorCode::REPLACED {
                        c.replaced.store(true, Relaxed);
                    }
                    // Another system's reason is in its own words; the code is only the
                    // driver's translation of them.
                    self.ctx.note_problem(if self.ctx.driver.speaks_imbench() {
                        format!("client {}: server sent {code}: {reason}", self.index)
                    } else {
                        format!("client {}: {reason}", self.index)
                    });
                }
                return Next::End;
            }
            Event::Bounced { what } => {
                c.errors.fetch_add(1, Relaxed);
                c.bounced.fetch_add(1, Relaxed);
                self.ctx
                    .note_problem(format!("client {}: {what}", self.index));
            }
            Event::Unexpected { what } => {
                c.errors.fetch_add(1, Relaxed);
                self.ctx
                    .note_problem(format!("client {}: unexpected: {what}", self.index));
            }
        }
        Next::Read
    }

    /// True when no resent message awaits an answer, or `msg_id`'s answer is the first one.
    fn awaiting_none_or_answered(&self, msg_id: u64) -> bool {
        self.shared
            .awaiting
            .as_ref()
            .is_none_or(|a| a.answered(msg_id))
    }

    fn group_delivery(&mut self, msg_id: u64, from: u64, group: u64, body: &[u8], now: u64) {
        let ctx = self.ctx;
        let c = self.counters;
        let (Some(view), Ok(h)) = (self.views.get_mut(&group), body::decode(body)) else {
            c.corrupted.fetch_add(1, Relaxed);
            return;
        };
        if h.sender != from || from_another_run(ctx, self.index, &h, from) {
            c.corrupted.fetch_add(1, Relaxed);
            return;
        }
        let counters = &ctx.ledger.counters[view.index];
        match view.inbox.receive(from, h.seq) {
            Arrival::New { reordered } => {
                counters.delivered.fetch_add(1, Relaxed);
                ctx.ledger.deliveries.fetch_add(1, Relaxed);
                if reordered {
                    c.reordered.fetch_add(1, Relaxed);
                    counters.reordered.fetch_add(1, Relaxed);
                }
                // Timed when the sender meant it to be; its times are wall-clock times.
                let measured = ctx.still_measured(h.measured, h.intended_us);
                let latency = ctx.clock.since_wall(h.intended_us, now);
                ctx.recorder.record(Metric::Group, latency, measured);
                ctx.recorder.record(view.bucket, latency, measured);
                if view.churner {
                    if let Some(slot) = ctx.ledger.slot_of(msg_id) {
                        self.churner_deliveries.push(ChurnerDelivery {
                            slot,
                            user: self.index as u64,
                            at_us: now,
                        });
                    }
                } else if view
                    .joined_us
                    .is_some_and(|j| j <= ctx.clock.local_us(h.sent_us))
                {
                    ctx.ledger.delivered_expected(msg_id, now);
                } else {
                    ctx.ledger.delivered_in_race(msg_id);
                }
            }
            Arrival::Duplicate => {
                c.duplicated.fetch_add(1, Relaxed);
                counters.duplicated.fetch_add(1, Relaxed);
            }
            Arrival::Redelivered => {
                c.redelivered.fetch_add(1, Relaxed);
            }
        }
    }

    fn direct_delivery(&mut self, from: u64, body: &[u8], now: u64) {
        let ctx = self.ctx;
        let c = self.counters;
        let h = match body::decode(body) {
            Ok(h) if h.sender == from && !from_another_run(ctx, self.index, &h, from) => h,
            _ => {
                c.corrupted.fetch_add(1, Relaxed);
                return;
            }
        };
        match self.shared.inbox.receive(from, h.seq) {
            Arrival::New { reordered } => {
                c.delivered.fetch_add(1, Relaxed);
                if reordered {
                    c.reordered.fetch_add(1, Relaxed);
                }
                // Timed when the sender meant it to be (its window, as every generator's is
                // its own); the body's times are wall-clock times (`Clock::wall_us`).
                let measured = ctx.still_measured(h.measured, h.intended_us);
                let r = &ctx.recorder;
                let latency = ctx.clock.since_wall(h.intended_us, now);
                r.record(Metric::Direct, latency, measured);
                if self.split_by_files {
                    let m = if ctx.files.moving.load(Relaxed) > 0 {
                        Metric::DirectDuringFiles
                    } else {
                        Metric::DirectWithoutFiles
                    };
                    r.record(m, latency, measured);
                }
                r.record(
                    Metric::DirectUncorrected,
                    ctx.clock.since_wall(h.sent_us, now),
                    measured,
                );
            }
            // A copy sent again after a reconnect: marked in its body (by a sender in any
            // shard), or the first copy arriving after it (a sender here).
            Arrival::Duplicate
                if h.resent
                    || ctx
                        .resent
                        .contains(from, Dest::User(self.index as u64), h.seq) =>
            {
                c.redelivered.fetch_add(1, Relaxed);
            }
            Arrival::Duplicate => {
                c.duplicated.fetch_add(1, Relaxed);
            }
            Arrival::Redelivered => {
                c.redelivered.fetch_add(1, Relaxed);
            }
        }
    }

    fn ack(&mut self, msg_id: u64, now: u64) {
        let c = self.counters;
        let intended = if is_group(msg_id) {
            c.group_acked.fetch_add(1, Relaxed);
            self.ctx.ledger.acked(msg_id, now);
            intended_of(msg_id)
        } else {
            if !self.awaiting_none_or_answered(msg_id) {
                // The answer to a copy sent again: the first answer counted.
                return;
            }
            c.acked.fetch_add(1, Relaxed);
            intended_of(msg_id)
        };
        self.ctx.recorder.record(
            Metric::Ack,
            now.saturating_sub(intended),
            self.ctx.in_window(intended),
        );
    }

    /// Ends this connection's receive path: hands the group bookkeeping to the ledger, fails
    /// what was still arriving if the run goes on, and gives back the direct-chat inbox for
    /// the client's next connection.
    pub fn finish(mut self) -> Inbox {
        let ctx = self.ctx;
        ctx.ledger
            .add_churner_deliveries(std::mem::take(&mut self.churner_deliveries));
        if !ctx.is_finished() {
            // The connection ended under the run: nothing more of any file moves on it.
            self.incoming_files.fail_all(ctx);
            ctx.files.fail_all_of(self.index as u64);
        }
        self.shared.inbox
    }
}

/// Reads one connection until it ends; hands back the inbox for the next connection.
pub async fn receive(
    ctx: Arc<RunContext>,
    index: usize,
    mut events: Events,
    shared: Receiving,
) -> Inbox {
    let mut receiver = Receiver::new(&ctx, index, shared);
    loop {
        let event = match events.next().await {
            Ok(Some(event)) => event,
            // Closed with no word (a killed server's kernel closes its sockets): unless the
            // client or the run ended it, the connection was lost all the same.
            Ok(None) => {
                receiver.on_error("the server closed it");
                break;
            }
            Err(e) => {
                receiver.on_error(e);
                break;
            }
        };
        let now = ctx.clock.now_us();
        let next = receiver.on_event(event, now);
        // A send that fell due while this worker was busy with arrivals leaves now, not after
        // the rest of the burst.
        ctx.timer.fire_due();
        if next == Next::End {
            break;
        }
    }
    receiver.finish()
}

/// Whether a delivery is another run's: one an earlier run left held on the server (its data
/// folder, or a broker's persistent session), or one a run going on at the same time sent on
/// the same subjects or topics (a second generator on one NATS subject prefix). This run's
/// accounting must not take it for one of its own, whose sender and sequence numbers it may
/// repeat. In a shard the time allows for fellow shards that began before this process (by up
/// to the warm-up, as shards are to start: docs/runs.md, Shards), whose tag is this run's; a
/// message older than that is an earlier load's, whose tag may be this one's too (the same
/// scenario, split the same way).
fn from_another_run(ctx: &RunContext, index: usize, h: &body::Header, from: u64) -> bool {
    let began = ctx.clock.wall_us(0);
    let earlier = match ctx.shard {
        None => h.sent_us < began,
        Some(_) => h.sent_us < began.saturating_sub(ctx.scenario.warmup.as_micros() as u64),
    };
    if earlier {
        ctx.note_problem(format!(
            "client {index}: a message from {from} sent before this run began{} (left on the server by an earlier run): counted in `corrupted`",
            if ctx.shard.is_some() {
                " and more than its warm-up before this shard started, as no fellow shard of this load could have"
            } else {
                ""
            }
        ));
    } else if h.run != ctx.run_tag {
        ctx.note_problem(format!(
            "client {index}: a message from {from} of another run (its tag {}, this run's {}): another generator runs on the same subjects, topics or accounts of this server at the same time; give each run its own (a PREFIX, or account names); counted in `corrupted`",
            h.run, ctx.run_tag
        ));
    }
    earlier || h.run != ctx.run_tag
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::scenario::Scenario;
    use crate::driver::memory::Hub;
    use crate::driver::Driver;

    /// A direct message the server gave to the wrong client is counted as corrupted and named,
    /// not taken for the next message its sender sent to this client.
    #[test]
    fn a_direct_message_for_another_client_is_not_taken_for_one_to_this_client() {
        let mut s = Scenario::builtin_default();
        s.clients = 3;
        let (timer, _thread) = crate::measure::timer::Timer::tokio();
        let ctx = RunContext::new(
            s,
            Driver::Memory(Hub::new()),
            timer,
            None,
            "memory",
            Vec::new(),
        );
        let (file_events, _) = tokio::sync::mpsc::unbounded_channel();
        let shared = Receiving {
            inbox: Inbox::default(),
            received: Arc::default(),
            leaving: Arc::default(),
            awaiting: None,
            file_events,
        };
        let mut receiver = Receiver::new(&ctx, 1, shared);
        let now_wall = ctx.clock.wall_us(ctx.clock.now_us());
        let header = body::Header {
            intended_us: now_wall,
            sent_us: now_wall,
            measured: false,
            resent: false,
            sender: 0,
            seq: 0,
            run: ctx.run_tag,
        };
        let body = body::encode(&header, body::HEADER_LEN, &[0; 64]);
        let to = |user| Event::Delivered {
            msg_id: 0,
            from: 0,
            to: Dest::User(user),
            body: body.clone(),
        };
        let c = &ctx.counters[1];
        receiver.on_event(to(2), ctx.clock.now_us());
        assert_eq!(
            (c.corrupted.load(Relaxed), c.delivered.load(Relaxed)),
            (1, 0)
        );
        receiver.on_event(to(1), ctx.clock.now_us());
        assert_eq!(
            (c.corrupted.load(Relaxed), c.delivered.load(Relaxed)),
            (1, 1),
            "the message for this client was taken for a copy"
        );
    }

    /// In a shard, a message with this load's tag sent before this process started is a fellow
    /// shard's when within the warm-up before, an earlier load's (left held on the server)
    /// when older.
    #[test]
    fn a_shard_takes_a_message_older_than_its_warm_up_for_an_earlier_loads() {
        let mut s = Scenario::builtin_default();
        s.clients = 4;
        s.warmup = std::time::Duration::from_secs(2);
        let (timer, _thread) = crate::measure::timer::Timer::tokio();
        let shard = Some(crate::config::shard::Shard { index: 1, count: 2 });
        let ctx = RunContext::new(
            s,
            Driver::Memory(Hub::new()),
            timer,
            shard,
            "memory",
            Vec::new(),
        );
        let began = ctx.clock.wall_us(0);
        let sent = |ago_us: u64| body::Header {
            intended_us: began - ago_us,
            sent_us: began - ago_us,
            measured: false,
            resent: false,
            sender: 3,
            seq: 0,
            run: ctx.run_tag,
        };
        assert!(
            !from_another_run(&ctx, 1, &sent(500_000), 3),
            "a fellow shard's"
        );
        assert!(
            from_another_run(&ctx, 1, &sent(5_000_000), 3),
            "an earlier load's"
        );
        assert!(ctx
            .problems()
            .0
            .iter()
            .any(|p| p.contains("more than its warm-up before this shard started")));
    }
}
