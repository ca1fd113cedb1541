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
//! Every delivery waiting for a user is charged, from the moment it is admitted until its
//! bytes have been written to the user's connection, to one of two server-wide pools
//! ([`Pools`]): **queued** (routed to a live session) or **held** (kept for an offline user,
//! and, after the user reconnects, until its session has written it). Each session keeps its
//! own share of both ([`SessionLoad`]), so that what it leaves behind when it ends is charged
//! again exactly once.
//!
//! - A session's outbound queue is bounded ([`crate::Limits::queue_capacity`] frames and
//!   [`QueueLimits::per_session_bytes`] bytes). When either is full the recipient is not
//!   keeping up: it is disconnected with `slow_consumer`, and the message is held for its next
//!   connection if the hold has room (refused with `hold_full` otherwise).
//! - At most [`HoldLimits::per_user`] messages are held for one user, counting those its
//!   ending session is still handing back; past it a message is refused with `hold_full`.
//!   While a reconnected user's session still has that many held messages to write, or holds
//!   together are at their byte bound while it has any, new messages for it are refused the
//!   same way: a user that never reads cannot grow its hold by connecting and disconnecting.
//! - Held bytes are bounded in total ([`HoldLimits::total_bytes`]); a message that would
//!   exceed it is refused with `hold_full`, so the sender knows it was not accepted. What a
//!   session leaves in its queue when it ends was already acknowledged and is held even past
//!   the bounds: never more than that session's queue bounds, and, while the holds are over
//!   their bound, once per user.
//! - All session queues together hold at most [`QueueLimits::total_bytes`] of deliveries.
//!   Past it the server is busy: a new message is refused with `busy` (a Reject, not an Ack) until writers
//!   have caught up. This is the pushback under overload that does not depend on the
//!   transport's flow control: fan-out turns one read frame into many queued deliveries, which
//!   flow control on the sender's connection cannot see.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use imbench_proto::{Dest, ErrorCode, Frame};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, Notify};

use crate::stats::Stats;
use crate::store::{HoldStore, StoreKey};

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
    /// Where it is on disk, while it is held and the server keeps holds there
    /// (`--data-dir`): forgotten once the client has it.
    pub key: Option<StoreKey>,
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
            key: None,
        }
    }

    pub(crate) fn held_cost(&self) -> usize {
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
    /// What the session has waiting to be written.
    pub load: Arc<SessionLoad>,
}

/// Deliveries one session has not written yet, by the pool they are charged to: routed to it
/// (queued), or carried over from the user's hold.
#[derive(Debug, Default)]
pub struct SessionLoad {
    queued: AtomicUsize,
    queued_bytes: AtomicUsize,
    carried: AtomicUsize,
    carried_bytes: AtomicUsize,
}

impl SessionLoad {
    /// Messages waiting: queued and carried.
    pub fn waiting(&self) -> usize {
        self.queued.load(Ordering::Acquire) + self.carried.load(Ordering::Acquire)
    }

    /// Messages carried over from the hold, not yet written.
    pub fn carried(&self) -> usize {
        self.carried.load(Ordering::Acquire)
    }

    /// Bytes charged for deliveries routed to the session and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::Acquire)
    }

    fn add_queued(&self, cost: usize) {
        self.queued.fetch_add(1, Ordering::AcqRel);
        self.queued_bytes.fetch_add(cost, Ordering::AcqRel);
    }

    fn sub_queued(&self, cost: usize) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
        self.queued_bytes.fetch_sub(cost, Ordering::AcqRel);
    }

    /// Empties the account: (queued bytes, carried bytes) it held.
    fn settle(&self) -> (usize, usize) {
        self.queued.store(0, Ordering::Release);
        self.carried.store(0, Ordering::Release);
        (
            self.queued_bytes.swap(0, Ordering::AcqRel),
            self.carried_bytes.swap(0, Ordering::AcqRel),
        )
    }
}

/// What a writer wrote in one flush, by pool.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Deliveries that had been routed to the session.
    pub queued: usize,
    /// Their charge.
    pub queued_bytes: usize,
    /// Deliveries carried over from the user's hold.
    pub carried: usize,
    /// Their charge.
    pub carried_bytes: usize,
}

impl Written {
    /// Notes one delivery written; `carried` when it came from the hold.
    pub fn add(&mut self, d: &Delivery, carried: bool) {
        if carried {
            self.carried += 1;
            self.carried_bytes += d.held_cost();
        } else {
            self.queued += 1;
            self.queued_bytes += d.held_cost();
        }
    }
}

/// Bytes charged for waiting deliveries, server-wide, by pool.
#[derive(Debug, Default)]
pub struct Pools {
    queued: AtomicUsize,
    held: AtomicUsize,
}

impl Pools {
    /// Takes what a session's writer wrote out of both the session's account and the pools.
    pub fn written(&self, load: &SessionLoad, w: Written) {
        if w.queued > 0 {
            load.queued.fetch_sub(w.queued, Ordering::AcqRel);
            load.queued_bytes
                .fetch_sub(w.queued_bytes, Ordering::AcqRel);
            self.queued.fetch_sub(w.queued_bytes, Ordering::AcqRel);
        }
        if w.carried > 0 {
            load.carried.fetch_sub(w.carried, Ordering::AcqRel);
            load.carried_bytes
                .fetch_sub(w.carried_bytes, Ordering::AcqRel);
            self.held.fetch_sub(w.carried_bytes, Ordering::AcqRel);
        }
    }

    /// Bytes queued for live sessions now.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Bytes held now (offline, or carried by a session not yet written).
    pub fn held_bytes(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }
}

enum Slot {
    Online(SessionHandle),
    Offline {
        /// Held, oldest first.
        held: VecDeque<Delivery>,
        /// The session that ended and has not yet handed back what it did not write.
        returning: Option<Arc<SessionLoad>>,
    },
}

impl Slot {
    fn offline(held: VecDeque<Delivery>) -> Self {
        Slot::Offline {
            held,
            returning: None,
        }
    }
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

/// Bounds on what waits in live sessions' queues.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Bytes of deliveries all session queues together may hold.
    pub total_bytes: usize,
    /// Bytes of deliveries one session may have waiting before it counts as a slow consumer.
    pub per_session_bytes: usize,
}

impl QueueLimits {
    /// No bound beyond each queue's capacity in frames.
    pub const NONE: QueueLimits = QueueLimits {
        total_bytes: usize::MAX / 4,
        per_session_bytes: usize::MAX / 4,
    };
}

/// Resolves user destinations to sessions or holds.
pub struct Router {
    users: DashMap<u64, Slot>,
    pools: Arc<Pools>,
    limits: HoldLimits,
    queue: QueueLimits,
    stats: Arc<Stats>,
    /// The holds' copy on disk, when the server keeps one.
    store: Option<Arc<HoldStore>>,
    /// Told whenever a session has been removed, which is when a newer login waiting in
    /// [`Router::replace`] may find no earlier session left.
    session_ended: Notify,
}

impl Router {
    /// An empty table.
    pub fn new(limits: HoldLimits, stats: Arc<Stats>) -> Self {
        Self {
            users: DashMap::new(),
            pools: Arc::default(),
            limits,
            queue: QueueLimits::NONE,
            stats,
            store: None,
            session_ended: Notify::new(),
        }
    }

    /// Keeps a copy of every hold in `store`, starting with `loaded` (what it had on disk),
    /// which is held again as it was, even past the hold bounds: it was acknowledged.
    pub fn with_store(mut self, store: Arc<HoldStore>, loaded: crate::store::Loaded) -> Self {
        for (user, held) in loaded {
            let cost = held.iter().map(Delivery::held_cost).sum();
            self.pools.held.fetch_add(cost, Ordering::AcqRel);
            self.users.insert(user, Slot::offline(held));
        }
        self.store = Some(store);
        self
    }

    /// The holds' copy on disk, if the server keeps one.
    pub fn store(&self) -> Option<&Arc<HoldStore>> {
        self.store.as_ref()
    }

    /// Bounds the session queues (see the module's queue policy).
    pub fn with_queue_limits(mut self, queue: QueueLimits) -> Self {
        self.queue = queue;
        self
    }

    /// What waiting deliveries are charged, for session writers to take out what they write.
    pub fn pools(&self) -> Arc<Pools> {
        self.pools.clone()
    }

    /// Whether waiting deliveries take as much as the server accepts. Counts a refusal when so.
    pub fn busy(&self) -> bool {
        let busy = self.pools.queued_bytes() >= self.queue.total_bytes;
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
                    // A user still being written its hold is bounded as the hold is: by its
                    // own count, and by the holds' bytes together.
                    if h.load.carried() > 0
                        && (h.load.waiting() >= self.limits.per_user
                            || self.pools.held_bytes() >= self.limits.total_bytes)
                    {
                        return self.refuse_hold();
                    }
                    let cost = d.held_cost();
                    if h.load.queued_bytes() + cost > self.queue.per_session_bytes {
                        return self.slow_consumer(user, e.get_mut(), d);
                    }
                    // Counted before the send: the writer may take it out at once.
                    h.load.add_queued(cost);
                    self.pools.queued.fetch_add(cost, Ordering::AcqRel);
                    match h.tx.try_send(Outbound::Deliver(d)) {
                        Ok(()) => {
                            self.stats.routed.fetch_add(1, Ordering::Relaxed);
                            Routed::Queued
                        }
                        Err(TrySendError::Full(Outbound::Deliver(d))) => {
                            h.load.sub_queued(cost);
                            self.pools.queued.fetch_sub(cost, Ordering::AcqRel);
                            self.slow_consumer(user, e.get_mut(), d)
                        }
                        // The session is ending; it moves its queue into the hold when it
                        // unregisters, in front of this message.
                        Err(TrySendError::Closed(Outbound::Deliver(d))) => {
                            h.load.sub_queued(cost);
                            self.pools.queued.fetch_sub(cost, Ordering::AcqRel);
                            let returning = h.load.clone();
                            self.start_hold(user, e.get_mut(), returning, d)
                        }
                        Err(_) => unreachable!("try_send returns the value it was given"),
                    }
                }
                Slot::Offline { held, returning } => {
                    let coming = returning.as_deref().map_or(0, SessionLoad::waiting);
                    if held.len() + coming >= self.limits.per_user
                        || !self.reserve_hold(d.held_cost())
                    {
                        return self.refuse_hold();
                    }
                    held.push_back(self.stored(user, d));
                    self.stats.held.fetch_add(1, Ordering::Relaxed);
                    Routed::Held
                }
            },
            Entry::Vacant(e) => {
                if self.limits.per_user == 0 || !self.reserve_hold(d.held_cost()) {
                    return self.refuse_hold();
                }
                e.insert(Slot::offline(VecDeque::from([self.stored(user, d)])));
                self.stats.held.fetch_add(1, Ordering::Relaxed);
                Routed::Held
            }
        }
    }

    /// Whether an earlier session of `user` is live, or has ended without yet handing back
    /// what it did not write: a new session of the user waits for it (see
    /// [`Router::replace`]), so that those come first.
    pub fn predecessor_pending(&self, user: u64) -> bool {
        match self.users.get(&user).as_deref() {
            Some(Slot::Online(_)) => true,
            Some(Slot::Offline { returning, .. }) => returning.is_some(),
            None => false,
        }
    }

    /// Ends the live session of `user`, if any, for a newer login of the user (`replaced`), and
    /// waits, at most `wait`, until no earlier session is left to hand back what it did not
    /// write. Then the new session's [`Router::register`] finds those in the hold, in front of
    /// whatever was held since, and writes them first: the newer login must not get newer
    /// messages ahead of older ones the earlier session took with it.
    pub async fn replace(&self, user: u64, wait: Duration) {
        if let Some(Slot::Online(previous)) = self.users.get(&user).as_deref() {
            previous.kick.kick(ErrorCode::REPLACED);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before the check, so that a session ending between the check and the
            // wait still wakes this one.
            let ended = self.session_ended.notified();
            let mut ended = std::pin::pin!(ended);
            ended.as_mut().enable();
            if !self.predecessor_pending(user)
                || tokio::time::timeout_at(deadline, ended).await.is_err()
            {
                return;
            }
        }
    }

    /// Makes `handle` the user's live session. Returns what was held for the user, oldest
    /// first, to be written before anything the queue receives; it stays charged to the hold,
    /// as carried by the session, until written. A previous session of the same user is kicked
    /// with `replaced`.
    pub fn register(&self, user: u64, handle: SessionHandle) -> VecDeque<Delivery> {
        let load = handle.load.clone();
        match self.users.entry(user) {
            Entry::Occupied(mut e) => match std::mem::replace(e.get_mut(), Slot::Online(handle)) {
                Slot::Online(previous) => {
                    previous.kick.kick(ErrorCode::REPLACED);
                    VecDeque::new()
                }
                Slot::Offline { held, .. } => {
                    let bytes = held.iter().map(Delivery::held_cost).sum();
                    load.carried.fetch_add(held.len(), Ordering::AcqRel);
                    load.carried_bytes.fetch_add(bytes, Ordering::AcqRel);
                    held
                }
            },
            Entry::Vacant(e) => {
                e.insert(Slot::Online(handle));
                VecDeque::new()
            }
        }
    }

    /// Removes session `session` of `user`. `unwritten` (deliveries the writer had not written,
    /// or not had confirmed) and whatever is still in `rx` go back into the user's hold, in
    /// front of anything held since, so that nothing acknowledged is lost and order is kept.
    /// The session's account is settled, and what it hands back is charged to the hold.
    pub fn unregister(
        &self,
        user: u64,
        session: &SessionHandle,
        mut unwritten: VecDeque<Delivery>,
        rx: &mut mpsc::Receiver<Outbound>,
    ) {
        // After close, routing to this session fails with Closed and starts a hold instead.
        rx.close();
        while let Ok(o) = rx.try_recv() {
            if let Outbound::Deliver(d) = o {
                unwritten.push_back(d);
            }
        }
        let entry = self.users.entry(user);
        // Under the user's lock, so that no route is half way through charging this session.
        let (queued, carried) = session.load.settle();
        self.pools.queued.fetch_sub(queued, Ordering::AcqRel);
        self.pools.held.fetch_sub(carried, Ordering::AcqRel);
        let cost: usize = unwritten.iter().map(Delivery::held_cost).sum();
        match entry {
            Entry::Occupied(mut e) => match e.get_mut() {
                Slot::Online(h) if h.id == session.id => {
                    if unwritten.is_empty() {
                        e.remove();
                    } else {
                        self.force_hold(cost, unwritten.len());
                        self.restore_front(user, &mut unwritten);
                        *e.get_mut() = Slot::offline(unwritten);
                    }
                }
                Slot::Online(newer) => {
                    // The user already reconnected: hand the leftovers to the new session.
                    let newer = newer.clone();
                    while let Some(d) = unwritten.pop_front() {
                        let cost = d.held_cost();
                        newer.load.add_queued(cost);
                        self.pools.queued.fetch_add(cost, Ordering::AcqRel);
                        if let Err(failed) = newer.tx.try_send(Outbound::Deliver(d)) {
                            newer.load.sub_queued(cost);
                            self.pools.queued.fetch_sub(cost, Ordering::AcqRel);
                            newer.kick.kick(ErrorCode::SLOW_CONSUMER);
                            if let TrySendError::Full(Outbound::Deliver(d))
                            | TrySendError::Closed(Outbound::Deliver(d)) = failed
                            {
                                unwritten.push_front(d);
                            }
                            let cost = unwritten.iter().map(Delivery::held_cost).sum();
                            self.force_hold(cost, unwritten.len());
                            self.restore_front(user, &mut unwritten);
                            *e.get_mut() = Slot::Offline {
                                held: std::mem::take(&mut unwritten),
                                returning: Some(newer.load.clone()),
                            };
                            break;
                        }
                    }
                }
                Slot::Offline { held, returning } => {
                    self.force_hold(cost, unwritten.len());
                    self.restore_front(user, &mut unwritten);
                    unwritten.append(held);
                    *held = unwritten;
                    if returning
                        .as_ref()
                        .is_some_and(|r| Arc::ptr_eq(r, &session.load))
                    {
                        *returning = None;
                    }
                    // A hold that refused everything and got nothing back is no hold at all.
                    if held.is_empty() && returning.is_none() {
                        e.remove();
                    }
                }
            },
            Entry::Vacant(e) => {
                if !unwritten.is_empty() {
                    self.force_hold(cost, unwritten.len());
                    self.restore_front(user, &mut unwritten);
                    e.insert(Slot::offline(unwritten));
                }
            }
        }
        // After the user's entry is let go, so that a login woken here finds it settled.
        self.session_ended.notify_waiters();
    }

    /// Messages held for `user` (zero when online or unknown).
    pub fn held_for(&self, user: u64) -> usize {
        match self.users.get(&user).as_deref() {
            Some(Slot::Offline { held, .. }) => held.len(),
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
        self.pools.held_bytes()
    }

    fn refuse_hold(&self) -> Routed {
        self.stats.hold_full.fetch_add(1, Ordering::Relaxed);
        Routed::Refused(ErrorCode::HOLD_FULL)
    }

    /// The live session in `slot` is not keeping up: it is kicked, and `d` is held for the
    /// user's next connection if the hold takes it.
    fn slow_consumer(&self, user: u64, slot: &mut Slot, d: Delivery) -> Routed {
        let Slot::Online(h) = slot else {
            unreachable!("only a live session is a slow consumer")
        };
        self.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
        h.kick.kick(ErrorCode::SLOW_CONSUMER);
        let returning = h.load.clone();
        self.start_hold(user, slot, returning, d)
    }

    /// Starts holding for a user whose session is ending and will hand back what `returning`
    /// counts.
    fn start_hold(
        &self,
        user: u64,
        slot: &mut Slot,
        returning: Arc<SessionLoad>,
        d: Delivery,
    ) -> Routed {
        let routed =
            if returning.waiting() >= self.limits.per_user || !self.reserve_hold(d.held_cost()) {
                self.refuse_hold();
                *slot = Slot::offline(VecDeque::new());
                Routed::Refused(ErrorCode::HOLD_FULL)
            } else {
                self.stats.held.fetch_add(1, Ordering::Relaxed);
                *slot = Slot::offline(VecDeque::from([self.stored(user, d)]));
                Routed::Held
            };
        if let Slot::Offline { returning: r, .. } = slot {
            *r = Some(returning);
        }
        routed
    }

    /// `d`, stored on disk as held for `user` when the server keeps holds there.
    fn stored(&self, user: u64, mut d: Delivery) -> Delivery {
        if let Some(store) = &self.store {
            store.hold(user, &mut d);
        }
        d
    }

    /// Stores `returned` (going back to the front of `user`'s hold) again, in front of
    /// everything stored for the user. Some were stored before (carried from the hold), some
    /// not (routed to the session): they all take new keys in their order.
    fn restore_front(&self, user: u64, returned: &mut VecDeque<Delivery>) {
        if let Some(store) = &self.store {
            store.rehold_front(user, returned);
        }
    }

    fn reserve_hold(&self, cost: usize) -> bool {
        let limit = self.limits.total_bytes;
        self.pools
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held + cost <= limit).then_some(held + cost)
            })
            .is_ok()
    }

    fn force_hold(&self, cost: usize, messages: usize) {
        self.pools.held.fetch_add(cost, Ordering::AcqRel);
        self.stats
            .held
            .fetch_add(messages as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::FileSink;

    /// What one test message (a one-byte body) is charged.
    const COST: usize = 1 + HELD_OVERHEAD;

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
            key: None,
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
                load: Arc::default(),
            },
            rx,
        )
    }

    fn ids(q: &VecDeque<Delivery>) -> Vec<u64> {
        q.iter().map(|d| d.msg_id).collect()
    }

    #[test]
    fn full_session_queues_make_the_server_busy_until_a_writer_writes_some() {
        let r = router(10, 1 << 20).with_queue_limits(QueueLimits {
            total_bytes: 2 * COST,
            per_session_bytes: usize::MAX / 4,
        });
        let (h, mut rx) = session(1, 100);
        r.register(2, h.clone());
        assert_eq!(r.route(2, msg(1)), Routed::Queued);
        assert_eq!(r.route(2, msg(2)), Routed::Queued);
        assert_eq!(r.route(2, msg(3)), Routed::Refused(ErrorCode::BUSY));
        // Offline users' holds are bounded on their own, but a busy server refuses them too.
        assert_eq!(r.route(9, msg(4)), Routed::Refused(ErrorCode::BUSY));
        // Taken out of the queue is not yet written: still charged.
        let taken = rx.try_recv().expect("queued");
        assert_eq!(r.route(2, msg(5)), Routed::Refused(ErrorCode::BUSY));
        let Outbound::Deliver(d) = taken else {
            panic!("a delivery")
        };
        let mut w = Written::default();
        w.add(&d, false);
        r.pools().written(&h.load, w);
        assert_eq!(r.route(2, msg(6)), Routed::Queued);
        assert_eq!(r.stats.busy.load(Ordering::Relaxed), 3);
        // What a session leaves in its queue is taken out as it goes to the hold.
        r.unregister(2, &h, VecDeque::new(), &mut rx);
        assert_eq!(r.pools().queued_bytes(), 0);
        assert_eq!(r.held_for(2), 2);
        assert_eq!(r.held_bytes(), 2 * COST);
    }

    #[test]
    fn offline_messages_are_held_then_handed_over_in_order_and_charged_until_written() {
        let r = router(10, 1 << 20);
        assert_eq!(r.route(2, msg(1)), Routed::Held);
        assert_eq!(r.route(2, msg(2)), Routed::Held);
        assert_eq!(r.held_for(2), 2);
        let (h, _rx) = session(1, 8);
        let held = r.register(2, h.clone());
        assert_eq!(ids(&held), vec![1, 2]);
        assert_eq!(
            r.held_bytes(),
            2 * COST,
            "carried by the session, not yet written"
        );
        assert_eq!(h.load.carried(), 2);
        let mut w = Written::default();
        held.iter().for_each(|d| w.add(d, true));
        r.pools().written(&h.load, w);
        assert_eq!((r.held_bytes(), h.load.carried()), (0, 0));
        assert_eq!(r.route(2, msg(3)), Routed::Queued);
    }

    #[test]
    fn full_hold_refuses_instead_of_dropping() {
        let r = router(2, 1 << 20);
        r.route(2, msg(1));
        r.route(2, msg(2));
        assert_eq!(r.route(2, msg(3)), Routed::Refused(ErrorCode::HOLD_FULL));
        let tight = router(100, 2 * COST);
        tight.route(5, msg(1));
        tight.route(6, msg(2));
        assert_eq!(
            tight.route(7, msg(3)),
            Routed::Refused(ErrorCode::HOLD_FULL)
        );
    }

    #[test]
    fn a_user_that_never_reads_cannot_grow_its_hold_by_reconnecting() {
        const PER_USER: usize = 5;
        let r = router(PER_USER, 1 << 20);
        let mut next = 0;
        for cycle in 0..6u64 {
            // Offline: senders fill the hold.
            while r.route(2, msg(next)) == Routed::Held {
                next += 1;
            }
            next += 1;
            // Online, reading nothing: carried deliveries stay unwritten, and new ones are
            // refused while the carried backlog is at the bound.
            let (h, mut rx) = session(cycle, 3);
            let carried = r.register(2, h.clone());
            let mut routed = 0;
            for _ in 0..20 {
                if r.route(2, msg(next)) == Routed::Queued {
                    routed += 1;
                }
                next += 1;
            }
            r.unregister(2, &h, carried, &mut rx);
            let held = r.held_for(2);
            assert!(
                held <= PER_USER + 3,
                "cycle {cycle}: {held} held ({routed} queued while online)"
            );
            assert_eq!(r.held_bytes(), held * COST, "cycle {cycle}");
        }
    }

    #[test]
    fn a_reconnected_user_gets_nothing_new_while_the_holds_are_over_their_bytes() {
        // Room for two held messages in all; the user has three carried back from before.
        let r = router(100, 2 * COST);
        let (h, mut rx) = session(1, 8);
        r.register(2, h.clone());
        for id in 1..=3 {
            assert_eq!(r.route(2, msg(id)), Routed::Queued);
        }
        r.unregister(2, &h, VecDeque::new(), &mut rx);
        assert_eq!(
            r.held_bytes(),
            3 * COST,
            "leftovers are held past the bound"
        );
        let (h2, _rx2) = session(2, 8);
        assert_eq!(r.register(2, h2).len(), 3);
        assert_eq!(r.route(2, msg(4)), Routed::Refused(ErrorCode::HOLD_FULL));
        // A user with nothing carried is served as usual.
        let (h3, _rx3) = session(3, 8);
        r.register(5, h3);
        assert_eq!(r.route(5, msg(5)), Routed::Queued);
    }

    #[tokio::test]
    async fn a_slow_consumer_is_held_for_only_as_far_as_its_bound() {
        // The kicked session will hand back two; the user may have three held.
        let r = router(3, 1 << 20);
        let (h, mut rx) = session(1, 2);
        r.register(2, h.clone());
        r.route(2, msg(1));
        r.route(2, msg(2));
        assert_eq!(r.route(2, msg(3)), Routed::Held);
        assert_eq!(r.route(2, msg(4)), Routed::Refused(ErrorCode::HOLD_FULL));
        r.unregister(2, &h, VecDeque::new(), &mut rx);
        assert_eq!(r.held_for(2), 3);
        assert_eq!(r.held_bytes(), 3 * COST);
    }

    #[tokio::test]
    async fn a_full_queue_kicks_the_slow_session_and_holds_everything_in_order() {
        // Full in frames (a queue of two), or in bytes (room for two messages' charge).
        let by_frames = (router(10, 1 << 20), 2);
        let by_bytes = (
            router(10, 1 << 20).with_queue_limits(QueueLimits {
                total_bytes: 1 << 20,
                per_session_bytes: 2 * COST,
            }),
            100,
        );
        for (r, capacity) in [by_frames, by_bytes] {
            let (h, mut rx) = session(1, capacity);
            r.register(2, h.clone());
            assert_eq!(r.route(2, msg(1)), Routed::Queued);
            assert_eq!(r.route(2, msg(2)), Routed::Queued);
            assert_eq!(r.route(2, msg(3)), Routed::Held);
            assert_eq!(h.kick.kicked().await, ErrorCode::SLOW_CONSUMER);
            r.unregister(2, &h, VecDeque::new(), &mut rx);
            assert_eq!(r.held_for(2), 3);
            let (h2, _rx2) = session(2, 8);
            assert_eq!(ids(&r.register(2, h2)), vec![1, 2, 3]);
        }
    }

    #[tokio::test]
    async fn unwritten_messages_return_to_the_hold_ahead_of_newer_ones() {
        let r = router(10, 1 << 20);
        let (h, mut rx) = session(1, 8);
        r.register(2, h.clone());
        r.route(2, msg(2));
        // The session is going: routing now finds its queue closed and holds.
        rx.close();
        assert_eq!(r.route(2, msg(3)), Routed::Held);
        r.unregister(2, &h, VecDeque::from([msg(1)]), &mut rx);
        assert_eq!(r.held_bytes(), 3 * COST);
        assert_eq!(r.pools().queued_bytes(), 0);
        let (h2, _rx2) = session(2, 8);
        assert_eq!(ids(&r.register(2, h2)), vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn a_second_login_replaces_the_first() {
        let r = router(10, 1 << 20);
        let (h1, mut rx1) = session(1, 8);
        r.register(2, h1.clone());
        r.route(2, msg(1));
        let (h2, mut rx2) = session(2, 8);
        r.register(2, h2.clone());
        assert_eq!(h1.kick.kicked().await, ErrorCode::REPLACED);
        r.unregister(2, &h1, VecDeque::new(), &mut rx1);
        assert!(r.is_online(2));
        assert_eq!(h2.load.waiting(), 1);
        let Some(Outbound::Deliver(d)) = rx2.recv().await else {
            panic!("leftover not handed over")
        };
        assert_eq!(d.msg_id, 1);
    }
}
