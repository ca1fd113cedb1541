//! A session's reading side: frames from the client, routed as they arrive.

use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

use imbench_proto::{Dest, ErrorCode, Frame, RELAY_ID_BIT};
use imbench_transport::framed::FrameReader;
use imbench_transport::{SideStream, TransportError};
use tokio::sync::{mpsc, watch};

use super::answers::Answers;
use super::Ending;
use crate::files::{ChunkTarget, SenderFiles};
use crate::receipts::Confirmations;
use crate::router::{Delivery, Kick, Outbound, Routed};
use crate::State;

/// How long a session of a server shutting down waits for its held messages to reach the
/// disk, so that what is stored is also acknowledged.
const SETTLE_AT_SHUTDOWN: Duration = Duration::from_secs(2);

/// What a client sent on a stream of its own; pending forever once there is nothing more.
async fn next_extra(
    extra: &mut Option<mpsc::Receiver<Result<SideStream, TransportError>>>,
) -> Result<Option<SideStream>, TransportError> {
    if let Some(rx) = extra {
        match rx.recv().await {
            Some(Ok(item)) => return Ok(Some(item)),
            Some(Err(e)) => return Err(e),
            None => *extra = None,
        }
    }
    std::future::pending().await
}

/// The session's reading side, owned by the task that did the handshake: it reads the client's
/// frames (and, over QUIC, its side streams), routes them, and answers on the session's own
/// queue, never writing to the connection itself.
pub(super) struct SessionReader<'a> {
    /// Frames on the connection's main stream.
    pub reader: &'a mut FrameReader,
    /// Frames and files on the client's side streams (QUIC only).
    pub extra: &'a mut Option<mpsc::Receiver<Result<SideStream, TransportError>>>,
    /// Who the session belongs to.
    pub user: u64,
    /// Where Receipt frames go, when the client asked for receipts.
    pub confirmations: Option<&'a Confirmations>,
    /// The session's own queue, for answers (Ack, Reject, Joined, …).
    pub tx: &'a mpsc::Sender<Outbound>,
    /// Fired when the server disconnects the session.
    pub kick: &'a Kick,
    /// Turns true when the server shuts down.
    pub shutdown: &'a mut watch::Receiver<bool>,
    /// The server.
    pub state: &'a State,
}

impl SessionReader<'_> {
    /// Reads until the session ends, and says how it ended.
    pub(super) async fn run(self) -> Ending {
        let SessionReader {
            reader,
            extra,
            user,
            confirmations,
            tx,
            kick,
            shutdown,
            state,
        } = self;
        let reply = |o: Outbound| {
            if tx.try_send(o).is_err() {
                // The client is not reading its own acks: same policy as for deliveries.
                state.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
                kick.kick(ErrorCode::SLOW_CONSUMER);
            }
        };
        let mut answers = Answers::new(state.router.store().map(|s| &**s));
        // The change a held message's Ack waits for: every change made so far.
        let stored = || state.router.store().map_or(0, |s| s.submitted());
        // Answers waiting for the disk are bounded like the session's queue: past it the
        // client's frames wait in its connection.
        let answer_room = state.limits.queue_capacity;
        let mut files = SenderFiles::new(user, extra.is_some());
        let mut changes = TokenBucket::new(
            state.limits.group_changes_per_sec,
            state.limits.groups_per_user.max(1),
        );
        loop {
            let frame = tokio::select! {
                biased;
                code = kick.kicked() => {
                    return Ending::Error(code, format!("disconnected by the server: {}", code.name()));
                }
                _ = shutdown.changed() => {
                    answers.settle(SETTLE_AT_SHUTDOWN, &reply).await;
                    return Ending::Shutdown;
                }
                _ = answers.ready() => {
                    answers.release(&reply);
                    continue;
                }
                frame = reader.read_frame(), if answers.len() < answer_room => frame,
                item = next_extra(extra), if answers.len() < answer_room => match item {
                    Ok(Some(SideStream::Frame(frame))) => Ok(Some(frame)),
                    Ok(Some(SideStream::File { header: Frame::FileData { transfer_id }, bytes })) => {
                        files.stream(transfer_id, bytes);
                        continue;
                    }
                    Ok(Some(SideStream::File { mut bytes, .. })) => {
                        // FileIncoming is the server's to send.
                        bytes.stop(ErrorCode::UNEXPECTED_FRAME.0);
                        continue;
                    }
                    Ok(None) => Ok(None),
                    Err(e) => Err(e),
                },
            };
            let frame = match frame {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ending::Client,
                Err(TransportError::Decode(e)) => return Ending::Error(e.code(), e.to_string()),
                Err(_) => return Ending::Client,
            };
            match frame {
                Frame::Send {
                    msg_id,
                    to: Dest::User(recipient),
                    body,
                } => {
                    if body.len() > state.limits.max_body {
                        state.stats.too_large.fetch_add(1, Ordering::Relaxed);
                        let refused = Outbound::Reject(msg_id, ErrorCode::BODY_TOO_LARGE);
                        answers.answer(0, refused, &reply);
                        continue;
                    }
                    let d = Delivery::owned(msg_id, user, Dest::User(recipient), &body);
                    match state.router.route(recipient, d) {
                        Routed::Queued => answers.answer(0, Outbound::Ack(msg_id), &reply),
                        Routed::Held => answers.answer(stored(), Outbound::Ack(msg_id), &reply),
                        Routed::Refused(code) => {
                            answers.answer(0, Outbound::Reject(msg_id, code), &reply);
                        }
                    }
                }
                Frame::Send {
                    msg_id,
                    to: Dest::Group(group),
                    body,
                } => {
                    if body.len() > state.limits.max_body {
                        state.stats.too_large.fetch_add(1, Ordering::Relaxed);
                        let refused = Outbound::Reject(msg_id, ErrorCode::BODY_TOO_LARGE);
                        answers.answer(0, refused, &reply);
                        continue;
                    }
                    let d = Delivery::owned(msg_id, user, Dest::Group(group), &body);
                    match state.groups.route(group, user, d, &state.router) {
                        Ok(out) => {
                            let after = if out.held > 0 { stored() } else { 0 };
                            answers.answer(after, Outbound::Ack(msg_id), &reply);
                        }
                        Err(code) => answers.answer(0, Outbound::Reject(msg_id, code), &reply),
                    }
                }
                Frame::Join { group } => {
                    let result = if changes.take() {
                        state.groups.join(group, user, reply)
                    } else {
                        state.stats.group_refusals.fetch_add(1, Ordering::Relaxed);
                        Err(ErrorCode::TOO_MANY_REQUESTS)
                    };
                    if let Err(code) = result {
                        reply(Outbound::GroupRefused(group, code));
                    }
                }
                Frame::Leave { group } => {
                    let result = if changes.take() {
                        state.groups.leave(group, user, reply)
                    } else {
                        state.stats.group_refusals.fetch_add(1, Ordering::Relaxed);
                        Err(ErrorCode::TOO_MANY_REQUESTS)
                    };
                    if let Err(code) = result {
                        reply(Outbound::GroupRefused(group, code));
                    }
                }
                Frame::FileOffer {
                    transfer_id,
                    to,
                    size,
                    sha256,
                    name,
                } => {
                    if let Err(code) = files.offer(state, tx, transfer_id, to, size, sha256, name) {
                        state
                            .stats
                            .transfers_refused
                            .fetch_add(1, Ordering::Relaxed);
                        reply(Outbound::FileCancel(transfer_id, code));
                    }
                }
                Frame::FileChunk { transfer_id, data } => {
                    match files.chunk(transfer_id, data.len()) {
                        ChunkTarget::Relay(relay) => {
                            // Waiting here for room is the flow control of a single-connection transport:
                            // the client's next frames wait behind its file, as they would in its socket.
                            tokio::select! {
                                biased;
                                code = kick.kicked() => {
                                    return Ending::Error(code, format!("disconnected by the server: {}", code.name()));
                                }
                                _ = shutdown.changed() => return Ending::Shutdown,
                                // A closed relay has ended the transfer and told the sender why.
                                _ = relay.send(data) => {}
                            }
                        }
                        ChunkTarget::Drop => {}
                        ChunkTarget::Refuse(code) => reply(Outbound::FileCancel(transfer_id, code)),
                    }
                }
                Frame::FileCancel { transfer_id, .. } => {
                    if transfer_id & RELAY_ID_BIT != 0 {
                        state.transfers.cancel_by_recipient(transfer_id, user);
                    } else {
                        files.cancel(transfer_id);
                    }
                }
                Frame::Receipt { count } => match confirmations {
                    Some(c) => c.confirm(count),
                    None => {
                        let reason =
                            "Receipt on a session that did not ask for receipts".to_string();
                        return Ending::Error(ErrorCode::UNEXPECTED_FRAME, reason);
                    }
                },
                Frame::Ping { nonce } => reply(Outbound::Pong(nonce)),
                Frame::Bye { .. } | Frame::Error { .. } => return Ending::Client,
                other => {
                    let reason = format!("{} is not a frame a client sends here", other.name());
                    return Ending::Error(ErrorCode::UNEXPECTED_FRAME, reason);
                }
            }
        }
    }
}

/// Allows `rate` events a second on average after a burst of `burst`.
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: u32, burst: usize) -> Self {
        Self {
            rate: f64::from(rate),
            burst: burst as f64,
            tokens: burst as f64,
            last: Instant::now(),
        }
    }

    /// Takes one token if there is one.
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
