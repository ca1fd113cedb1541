//! The user table: for each user, either the queue of its live session or the messages held
//! while it is offline.
//!
//! One entry per user in a sharded map (`DashMap`). Routing a message and a session coming or
//! going both happen under that user's shard lock, and no await happens under it (queues are
//! offered with `try_send`), so a message is never routed to a session that is being torn down
//! and never stranded in a hold that its newly connected user has already drained.
//!
//! # Queue policy
//!
//! - A session's outbound queue is bounded ([`crate::Limits::queue_capacity`] frames). When it
//!   is full the recipient is not keeping up: it is disconnected with `slow_consumer`, and the
//!   message, together with everything still queued for it, is held for its next connection.
//!   An acknowledged message is never dropped for a slow reader.
//! - A hold is bounded per user ([`crate::Limits::hold_per_user`] messages) and in total
//!   ([`crate::Limits::hold_bytes`]). A message that would exceed either is refused with
//!   `hold_full` (a Reject instead of an Ack), so the sender knows it was not accepted.
//!   Messages moved back from a disconnected session's queue were already acknowledged and are
//!   held even past the per-user bound.
//! - All session queues together hold at most [`crate::Limits::max_queued_bytes`] of
//!   deliveries. Past it the server is busy: a new message is refused with `busy` (a Reject,
//!   not an Ack) until the writers have caught up. This is the pushback under overload that
//!   does not depend on the transport's flow control: fan-out turns one read frame into many
//!   queued deliveries, which flow control on the sender's connection cannot see.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use imbench_proto::{Dest, ErrorCode, Frame};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, Notify};

use crate::stats::Stats;

/// Accounting overhead charged per waiting message on top of its body: its slot in a queue,
/// the body's own allocation and its shared header. Measured: 3,000 held one-byte messages
/// grew the server binary by 444 KiB, about 150 bytes each (tests/attacks.rs).
const HELD_OVERHEAD: usize = 160;

/// A message on its way to one recipient.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The sender's message id.
    pub msg_id: u64,
    /// The sender.
    pub from: u64,
    /// The destination the sender used.
    pub to: Dest,
    /// The body, shared between all recipients (no copy per recipient).
    pub body: Bytes,
}

impl Delivery {
    /// A delivery of `body` with an allocation of its own. A body decoded from a connection
    /// is a slice of that connection's read buffer: a delivery that waits (queued or held)
    /// would keep the whole buffer alive, up to a frame limit's worth for a one-byte body.
    /// One copy per message (not per recipient) makes what a waiting delivery keeps what it
    /// is charged for.
    pub fn owned(msg_id: u64, from: u64, to: Dest, body: &Bytes) -> Self {
        Self {
            msg_id,
            from,
            to,
            body: Bytes::copy_from_slice(body),
        }
    }

    fn held_cost(&self) -> usize {
        self.body.len() + HELD_OVERHEAD
    }
}

/// What a session's writer sends to its client.
#[derive(Debug)]
pub enum Outbound {
    /// A message for the client.
    Deliver(Delivery),
    /// The client's message was routed.
    Ack(u64),
    /// The client's message was refused.
    Reject(u64, ErrorCode),
    /// Reply to the client's Ping.
    Pong(u64),
    /// The client's Join took effect: group, members after it.
    Joined(u64, u32),
    /// The client's Leave took effect.
    Left(u64),
    /// The client's Join or Leave was refused.
    GroupRefused(u64, ErrorCode),
    /// The client's file offer was accepted: send the bytes.
    FileAccepted(u64),
    /// The client's file transfer was refused or ended early.
    FileCancel(u64, ErrorCode),
}

impl Outbound {
    /// The frame that goes on the wire.
    pub fn to_frame(&self) -> Frame {
        match self {
            Outbound::Deliver(d) => Frame::Deliver {
                msg_id: d.msg_id,
                from: d.from,
                to: d.to,
                body: d.body.clone(),
            },
            Outbound::Ack(msg_id) => Frame::Ack { msg_id: *msg_id },
            Outbound::Reject(msg_id, code) => Frame::Reject {
                msg_id: *msg_id,
                code: *code,
            },
            Outbound::Pong(nonce) => Frame::Pong { nonce: *nonce },
            Outbound::Joined(group, members) => Frame::Joined {
                group: *group,
                members: *members,
            },
            Outbound::Left(group) => Frame::Left { group: *group },
            Outbound::GroupRefused(group, code) => Frame::GroupRefused {
                group: *group,
                code: *code,
            },
            Outbound::FileAccepted(transfer_id) => Frame::FileAccepted {
                transfer_id: *transfer_id,
            },
            Outbound::FileCancel(transfer_id, code) => Frame::FileCancel {
                transfer_id: *transfer_id,
                code: *code,
            },
        }
    }
}

/// Tells a session to end, with the code it should send its client. The first code wins.
#[derive(Debug, Default)]
pub struct Kick {
    code: AtomicU16,
    notify: Notify,
}

impl Kick {
    /// Asks the session to end with `code`.
    pub fn kick(&self, code: ErrorCode) {
        if self
            .code
            .compare_exchange(0, code.0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // notify_one stores a permit when nobody waits, so the kick is never missed.
            self.notify.notify_one();
        }
    }

    /// Completes once the session has been kicked; returns the code.
    pub async fn kicked(&self) -> ErrorCode {
        self.notify.notified().await;
        ErrorCode(self.code.load(Ordering::Acquire))
    }
}

/// How the router reaches a live session.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    /// Server-unique session id.
    pub id: u64,
    /// The session's bounded outbound queue.
    pub tx: mpsc::Sender<Outbound>,
    /// Ends the session.
    pub kick: Arc<Kick>,
    /// How the session receives files.
    pub files: crate::files::FileSink,
}

enum Slot {
    Online(SessionHandle),
    Offline(VecDeque<Delivery>),
}

/// What happened to a routed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed {
    /// Queued for the recipient's live session.
    Queued,
    /// Held for an offline recipient.
    Held,
    /// Not accepted; the sender gets a Reject with this code.
    Refused(ErrorCode),
}

/// Bounds on what is held for offline users.
#[derive(Debug, Clone, Copy)]
pub struct HoldLimits {
    /// Messages held per user.
    pub per_user: usize,
    /// Bytes held in total (bodies plus a fixed overhead per message).
    pub total_bytes: usize,
}

/// Bytes of deliveries sitting in session queues; the session writers take them out.
#[derive(Debug, Default)]
pub struct QueueMeter {
    bytes: AtomicUsize,
}

impl QueueMeter {
    /// Notes that a writer took `o` out of its queue.
    pub fn taken(&self, o: &Outbound) {
        if let Outbound::Deliver(d) = o {
            self.bytes.fetch_sub(d.held_cost(), Ordering::AcqRel);
        }
    }

    /// Bytes queued now.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }

    fn add(&self, cost: usize) {
        self.bytes.fetch_add(cost, Ordering::AcqRel);
    }

    fn sub(&self, cost: usize) {
        self.bytes.fetch_sub(cost, Ordering::AcqRel);
    }
}

/// Resolves user destinations to sessions or holds.
pub struct Router {
    users: DashMap<u64, Slot>,
    held_bytes: AtomicUsize,
    limits: HoldLimits,
    queued: Arc<QueueMeter>,
    max_queued: usize,
    stats: Arc<Stats>,
}

impl Router {
    /// An empty table.
    pub fn new(limits: HoldLimits, stats: Arc<Stats>) -> Self {
        Self {
            users: DashMap::new(),
            held_bytes: AtomicUsize::new(0),
            limits,
            queued: Arc::default(),
            max_queued: usize::MAX,
            stats,
        }
    }

    /// Refuses new messages with `busy` while session queues hold `bytes` or more.
    pub fn with_queue_limit(mut self, bytes: usize) -> Self {
        self.max_queued = bytes;
        self
    }

    /// What session queues hold; their writers note what they take out.
    pub fn queue_meter(&self) -> Arc<QueueMeter> {
        self.queued.clone()
    }

    /// Whether session queues hold as much as the server accepts. Counts a refusal when so.
    pub fn busy(&self) -> bool {
        let busy = self.queued.bytes() >= self.max_queued;
        if busy {
            self.stats.busy.fetch_add(1, Ordering::Relaxed);
        }
        busy
    }

    /// Routes `d` to `user`: queued if online, held if offline, refused if the server is busy
    /// or the hold is full.
    pub fn route(&self, user: u64, d: Delivery) -> Routed {
        if self.busy() {
            return Routed::Refused(ErrorCode::BUSY);
        }
        self.route_member(user, d)
    }

    /// Routes one delivery of a message already admitted as a whole (a group message, whose
    /// fan-out is not refused half way): as [`Router::route`], without the busy check.
    pub fn route_member(&self, user: u64, d: Delivery) -> Routed {
        match self.users.entry(user) {
            Entry::Occupied(mut e) => match e.get_mut() {
                Slot::Online(h) => {
                    let cost = d.held_cost();
                    // Counted before the send: the writer may take it out at once.
                    self.queued.add(cost);
                    match h.tx.try_send(Outbound::Deliver(d)) {
                        Ok(()) => {
                            self.stats.routed.fetch_add(1, Ordering::Relaxed);
                            Routed::Queued
                        }
                        Err(TrySendError::Full(Outbound::Deliver(d))) => {
                            self.queued.sub(cost);
                            self.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
                            h.kick.kick(ErrorCode::SLOW_CONSUMER);
                            self.start_hold(e.get_mut(), d)
                        }
                        // The session is ending; it moves its queue into the hold when it
                        // unregisters, in front of this message.
                        Err(TrySendError::Closed(Outbound::Deliver(d))) => {
                            self.queued.sub(cost);
                            self.start_hold(e.get_mut(), d)
                        }
                        Err(_) => unreachable!("try_send returns the value it was given"),
                    }
                }
                Slot::Offline(q) => {
                    if q.len() >= self.limits.per_user || !self.reserve_hold(d.held_cost()) {
                        self.stats.hold_full.fetch_add(1, Ordering::Relaxed);
                        return Routed::Refused(ErrorCode::HOLD_FULL);
                    }
                    q.push_back(d);
                    self.stats.held.fetch_add(1, Ordering::Relaxed);
                    Routed::Held
                }
            },
            Entry::Vacant(e) => {
                if self.limits.per_user == 0 || !self.reserve_hold(d.held_cost()) {
                    self.stats.hold_full.fetch_add(1, Ordering::Relaxed);
                    return Routed::Refused(ErrorCode::HOLD_FULL);
                }
                e.insert(Slot::Offline(VecDeque::from([d])));
                self.stats.held.fetch_add(1, Ordering::Relaxed);
                Routed::Held
            }
        }
    }

    /// Makes `handle` the user's live session. Returns what was held for the user, oldest
    /// first, to be written before anything the queue receives. A previous session of the same
    /// user is kicked with `replaced`.
    pub fn register(&self, user: u64, handle: SessionHandle) -> VecDeque<Delivery> {
        match self.users.entry(user) {
            Entry::Occupied(mut e) => match std::mem::replace(e.get_mut(), Slot::Online(handle)) {
                Slot::Online(previous) => {
                    previous.kick.kick(ErrorCode::REPLACED);
                    VecDeque::new()
                }
                Slot::Offline(held) => {
                    self.release_hold(held.iter().map(Delivery::held_cost).sum());
                    held
                }
            },
            Entry::Vacant(e) => {
                e.insert(Slot::Online(handle));
                VecDeque::new()
            }
        }
    }

    /// Removes session `session` of `user`. `unwritten` (deliveries the writer had not written)
    /// and whatever is still in `rx` go back into the user's hold, in front of anything held
    /// since, so that nothing acknowledged is lost and order is kept.
    pub fn unregister(
        &self,
        user: u64,
        session: u64,
        mut unwritten: VecDeque<Delivery>,
        rx: &mut mpsc::Receiver<Outbound>,
    ) {
        // After close, routing to this session fails with Closed and starts a hold instead.
        rx.close();
        while let Ok(o) = rx.try_recv() {
            self.queued.taken(&o);
            if let Outbound::Deliver(d) = o {
                unwritten.push_back(d);
            }
        }
        let cost: usize = unwritten.iter().map(Delivery::held_cost).sum();
        match self.users.entry(user) {
            Entry::Occupied(mut e) => match e.get_mut() {
                Slot::Online(h) if h.id == session => {
                    if unwritten.is_empty() {
                        e.remove();
                    } else {
                        self.force_hold(cost, unwritten.len());
                        *e.get_mut() = Slot::Offline(unwritten);
                    }
                }
                Slot::Online(newer) => {
                    // The user already reconnected: hand the leftovers to the new session.
                    let newer = newer.clone();
                    while let Some(d) = unwritten.pop_front() {
                        let cost = d.held_cost();
                        self.queued.add(cost);
                        if let Err(failed) = newer.tx.try_send(Outbound::Deliver(d)) {
                            self.queued.sub(cost);
                            newer.kick.kick(ErrorCode::SLOW_CONSUMER);
                            if let TrySendError::Full(Outbound::Deliver(d))
                            | TrySendError::Closed(Outbound::Deliver(d)) = failed
                            {
                                unwritten.push_front(d);
                            }
                            let cost = unwritten.iter().map(Delivery::held_cost).sum();
                            self.force_hold(cost, unwritten.len());
                            *e.get_mut() = Slot::Offline(std::mem::take(&mut unwritten));
                            break;
                        }
                    }
                }
                Slot::Offline(q) => {
                    self.force_hold(cost, unwritten.len());
                    unwritten.append(q);
                    *q = unwritten;
                }
            },
            Entry::Vacant(e) => {
                if !unwritten.is_empty() {
                    self.force_hold(cost, unwritten.len());
                    e.insert(Slot::Offline(unwritten));
                }
            }
        }
    }

    /// Messages held for `user` (zero when online or unknown).
    pub fn held_for(&self, user: u64) -> usize {
        match self.users.get(&user).as_deref() {
            Some(Slot::Offline(q)) => q.len(),
            _ => 0,
        }
    }

    /// The live session of `user`, if it has one.
    pub fn session_of(&self, user: u64) -> Option<SessionHandle> {
        match self.users.get(&user).as_deref() {
            Some(Slot::Online(h)) => Some(h.clone()),
            _ => None,
        }
    }

    /// Whether `user` has a live session.
    pub fn is_online(&self, user: u64) -> bool {
        matches!(self.users.get(&user).as_deref(), Some(Slot::Online(_)))
    }

    /// Bytes currently charged to holds.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes.load(Ordering::Relaxed)
    }

    fn start_hold(&self, slot: &mut Slot, d: Delivery) -> Routed {
        self.force_hold(d.held_cost(), 1);
        *slot = Slot::Offline(VecDeque::from([d]));
        Routed::Held
    }

    fn reserve_hold(&self, cost: usize) -> bool {
        let limit = self.limits.total_bytes;
        self.held_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held + cost <= limit).then_some(held + cost)
            })
            .is_ok()
    }

    fn force_hold(&self, cost: usize, messages: usize) {
        self.held_bytes.fetch_add(cost, Ordering::AcqRel);
        self.stats
            .held
            .fetch_add(messages as u64, Ordering::Relaxed);
    }

    fn release_hold(&self, cost: usize) {
        self.held_bytes.fetch_sub(cost, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::FileSink;

    fn router(per_user: usize, total_bytes: usize) -> Router {
        Router::new(
            HoldLimits {
                per_user,
                total_bytes,
            },
            Arc::new(Stats::default()),
        )
    }

    fn msg(id: u64) -> Delivery {
        Delivery {
            msg_id: id,
            from: 1,
            to: Dest::User(2),
            body: Bytes::from_static(b"x"),
        }
    }

    fn session(id: u64, cap: usize) -> (SessionHandle, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(cap);
        (
            SessionHandle {
                id,
                tx,
                kick: Arc::new(Kick::default()),
                files: FileSink::closed(),
            },
            rx,
        )
    }

    fn ids(q: &VecDeque<Delivery>) -> Vec<u64> {
        q.iter().map(|d| d.msg_id).collect()
    }

    #[test]
    fn full_session_queues_make_the_server_busy_until_a_writer_takes_some_out() {
        // Each test message costs 1 byte of body plus the overhead: room for two.
        let r = router(10, 1 << 20).with_queue_limit(2 * (1 + HELD_OVERHEAD));
        let (h, mut rx) = session(1, 100);
        r.register(2, h);
        assert_eq!(r.route(2, msg(1)), Routed::Queued);
        assert_eq!(r.route(2, msg(2)), Routed::Queued);
        assert_eq!(r.route(2, msg(3)), Routed::Refused(ErrorCode::BUSY));
        // Offline users' holds are bounded on their own, but a busy server refuses them too.
        assert_eq!(r.route(9, msg(4)), Routed::Refused(ErrorCode::BUSY));
        let taken = rx.try_recv().expect("queued");
        r.queue_meter().taken(&taken);
        assert_eq!(r.route(2, msg(5)), Routed::Queued);
        assert_eq!(r.stats.busy.load(Ordering::Relaxed), 2);
        // What a session leaves in its queue is taken out as it goes to the hold.
        r.unregister(2, 1, VecDeque::new(), &mut rx);
        assert_eq!(r.queue_meter().bytes(), 0);
        assert_eq!(r.held_for(2), 2);
    }

    #[test]
    fn offline_messages_are_held_then_handed_over_in_order() {
        let r = router(10, 1 << 20);
        assert_eq!(r.route(2, msg(1)), Routed::Held);
        assert_eq!(r.route(2, msg(2)), Routed::Held);
        assert_eq!(r.held_for(2), 2);
        let (h, _rx) = session(1, 8);
        assert_eq!(ids(&r.register(2, h)), vec![1, 2]);
        assert_eq!(r.held_bytes(), 0);
        assert_eq!(r.route(2, msg(3)), Routed::Queued);
    }

    #[test]
    fn full_hold_refuses_instead_of_dropping() {
        let r = router(2, 1 << 20);
        r.route(2, msg(1));
        r.route(2, msg(2));
        assert_eq!(r.route(2, msg(3)), Routed::Refused(ErrorCode::HOLD_FULL));
        let tight = router(100, 2 * (1 + HELD_OVERHEAD));
        tight.route(5, msg(1));
        tight.route(6, msg(2));
        assert_eq!(
            tight.route(7, msg(3)),
            Routed::Refused(ErrorCode::HOLD_FULL)
        );
    }

    #[tokio::test]
    async fn full_queue_kicks_the_slow_session_and_holds_everything_in_order() {
        let r = router(10, 1 << 20);
        let (h, mut rx) = session(1, 2);
        let kick = h.kick.clone();
        r.register(2, h);
        assert_eq!(r.route(2, msg(1)), Routed::Queued);
        assert_eq!(r.route(2, msg(2)), Routed::Queued);
        assert_eq!(r.route(2, msg(3)), Routed::Held);
        assert_eq!(kick.kicked().await, ErrorCode::SLOW_CONSUMER);
        r.unregister(2, 1, VecDeque::new(), &mut rx);
        assert_eq!(r.held_for(2), 3);
        let (h2, _rx2) = session(2, 8);
        assert_eq!(ids(&r.register(2, h2)), vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn unwritten_messages_return_to_the_hold_ahead_of_newer_ones() {
        let r = router(10, 1 << 20);
        let (h, mut rx) = session(1, 8);
        r.register(2, h);
        r.route(2, msg(2));
        // The session is going: routing now finds its queue closed and holds.
        rx.close();
        assert_eq!(r.route(2, msg(3)), Routed::Held);
        r.unregister(2, 1, VecDeque::from([msg(1)]), &mut rx);
        let (h2, _rx2) = session(2, 8);
        assert_eq!(ids(&r.register(2, h2)), vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn a_second_login_replaces_the_first() {
        let r = router(10, 1 << 20);
        let (h1, mut rx1) = session(1, 8);
        let k1 = h1.kick.clone();
        r.register(2, h1);
        r.route(2, msg(1));
        let (h2, mut rx2) = session(2, 8);
        r.register(2, h2);
        assert_eq!(k1.kicked().await, ErrorCode::REPLACED);
        r.unregister(2, 1, VecDeque::new(), &mut rx1);
        assert!(r.is_online(2));
        let Some(Outbound::Deliver(d)) = rx2.recv().await else {
            panic!("leftover not handed over")
        };
        assert_eq!(d.msg_id, 1);
    }
}
