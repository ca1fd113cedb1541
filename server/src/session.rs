//! One client connection, from handshake to close.
//!
//! Two tasks per session. The reader (this module's `serve_connection`) decodes frames and
//! routes them; the writer drains the session's bounded queue and writes what it finds in one
//! coalesced write per wake-up. Neither holds a lock across an await. When the session ends,
//! the writer hands back whatever it had not written, and the router holds it for the user's
//! next connection.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use imbench_proto::{Dest, ErrorCode, Frame, HELLO_RECEIPTS, PROTOCOL_VERSION, RELAY_ID_BIT};
use imbench_transport::framed::{FrameReader, FrameWriter};
use imbench_transport::Incoming;
use imbench_transport::{FramedConnection, SideStream, SideStreams, TransportError};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{timeout, Instant};

use crate::files::{ChunkTarget, FileSink, SenderFiles};
use crate::receipts::{Confirmations, Unconfirmed};
use crate::router::{Delivery, Kick, Outbound, QueueMeter, Routed, SessionHandle};
use crate::State;

/// Most frames written in one coalesced write.
const WRITE_BATCH: usize = 512;

/// Capacity an idle session keeps in its write buffers.
const IDLE_BUFFER: usize = 16;

/// How long a closing connection waits for its last frames to reach the peer.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// QUIC close codes: 0 for an orderly close, otherwise the protocol error code.
const CLOSE_OK: u32 = 0;

/// Runs one connection: handshake, Hello, then the session until either side ends it.
pub(crate) async fn serve_connection(
    incoming: Incoming,
    state: Arc<State>,
    shutdown: watch::Receiver<bool>,
) {
    let deadline = Instant::now() + state.limits.hello_timeout;
    let conn = match tokio::time::timeout_at(deadline, incoming.establish()).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            tracing::debug!("handshake failed: {e}");
            state
                .stats
                .handshakes_failed
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        Err(_) => {
            state
                .stats
                .handshakes_failed
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let mut conn = conn;
    let first = tokio::time::timeout_at(deadline, conn.reader.read_frame()).await;
    let (user, receipts) = match first {
        Err(_) => {
            let reason = format!("no Hello within {:?}", state.limits.hello_timeout);
            return refuse(conn, &state, ErrorCode::HELLO_TIMEOUT, &reason).await;
        }
        Ok(Err(TransportError::Decode(e))) => {
            return refuse(conn, &state, e.code(), &e.to_string()).await;
        }
        Ok(Err(_)) | Ok(Ok(None)) => return,
        Ok(Ok(Some(Frame::Hello {
            version,
            user,
            token,
            flags,
        }))) => {
            if version != PROTOCOL_VERSION {
                let reason =
                    format!("protocol version {version}; this server speaks {PROTOCOL_VERSION}");
                return refuse(conn, &state, ErrorCode::UNSUPPORTED_VERSION, &reason).await;
            }
            if !state.secret.verify(user, &token) {
                state.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
                let reason = format!("token is not valid for user {user}");
                return refuse(conn, &state, ErrorCode::BAD_TOKEN, &reason).await;
            }
            (user, flags & HELLO_RECEIPTS != 0)
        }
        Ok(Ok(Some(other))) => {
            let reason = format!("{} before Hello", other.name());
            return refuse(conn, &state, ErrorCode::HELLO_REQUIRED, &reason).await;
        }
    };
    run_session(conn, user, receipts, state, shutdown).await;
}

/// Answers a connection from an address that has its fill of connections: the handshake
/// (bounded like any other), then `Error too_many_connections`, then close. Unlike the global
/// limit, which refuses before any handshake, this tells a legitimate client behind a shared
/// address why.
pub(crate) async fn refuse_address(incoming: Incoming, state: &State) {
    state
        .stats
        .connections_refused_per_address
        .fetch_add(1, Ordering::Relaxed);
    let ip = incoming.remote().ip();
    let conn = match timeout(state.limits.hello_timeout, incoming.establish()).await {
        Ok(Ok(conn)) => conn,
        _ => return,
    };
    let reason = format!(
        "{ip} already has {} connections, the most this server serves from one address",
        state.limits.max_connections_per_address
    );
    refuse(conn, state, ErrorCode::TOO_MANY_CONNECTIONS, &reason).await;
}

/// Counts a connection closed for misbehaving, by kind.
fn count_refusal(stats: &crate::stats::Stats, code: ErrorCode) {
    let counter = match code {
        ErrorCode::BAD_FRAME | ErrorCode::FRAME_TOO_LARGE | ErrorCode::UNKNOWN_KIND => {
            &stats.bad_frames
        }
        ErrorCode::HELLO_TIMEOUT => &stats.hello_timeouts,
        ErrorCode::UNSUPPORTED_VERSION
        | ErrorCode::HELLO_REQUIRED
        | ErrorCode::UNEXPECTED_FRAME => &stats.protocol_errors,
        // Tokens are counted as auth failures; kicks (slow consumer, replaced) elsewhere.
        _ => return,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Sends a typed error, then closes.
async fn refuse(mut conn: FramedConnection, state: &State, code: ErrorCode, reason: &str) {
    state.stats.errors_sent.fetch_add(1, Ordering::Relaxed);
    count_refusal(&state.stats, code);
    let error = Frame::Error {
        code,
        reason: reason.to_string(),
    };
    if conn.writer.write_frame(&error).await.is_ok() {
        let _ = conn.writer.shutdown().await;
    }
    conn.link.close(code.0.into(), reason, CLOSE_GRACE).await;
}

/// How the reader saw the session end, and so how the writer must stop.
enum Ending {
    /// The client said Bye, finished its stream, or vanished: write nothing more.
    Client,
    /// The client broke the protocol, or the server kicked it: write this Error, nothing else.
    Error(ErrorCode, String),
    /// The server is shutting down: write what is queued, then Bye.
    Shutdown,
}

async fn run_session(
    conn: FramedConnection,
    user: u64,
    receipts: bool,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    let FramedConnection {
        mut reader,
        writer,
        link,
        ..
    } = conn;
    let id = state.next_session.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::channel(state.limits.queue_capacity);
    let kick = Arc::new(Kick::default());
    // Files reach a QUIC client on streams of their own; the others get them through a lane of
    // the writer that yields to chat between chunks.
    let side = link.side_streams(imbench_proto::Codec::new(state.max_frame_len));
    let (files, lane) = match &side {
        Some(side) => (FileSink::Side(side.clone()), None),
        None => {
            let (lane_tx, lane_rx) = mpsc::channel(crate::files::LANE_FRAMES);
            (FileSink::Lane(lane_tx), Some(lane_rx))
        }
    };
    let handle = SessionHandle {
        id,
        tx: tx.clone(),
        kick: kick.clone(),
        files,
    };
    let held = state.router.register(user, handle);
    state.stats.sessions_opened.fetch_add(1, Ordering::Relaxed);
    let live = state.stats.sessions_active.fetch_add(1, Ordering::Relaxed) + 1;
    state.stats.sessions_peak.fetch_max(live, Ordering::Relaxed);

    let confirmations = receipts.then(|| Arc::new(Confirmations::default()));
    let unconfirmed = confirmations
        .clone()
        .map(|c| Unconfirmed::new(c, state.limits.receipt_window));
    let (stop_tx, stop_rx) = oneshot::channel();
    let mut writer_task = tokio::spawn(write_loop(
        writer,
        rx,
        state.router.queue_meter(),
        held,
        lane,
        unconfirmed,
        Frame::Welcome { session: id },
        stop_rx,
    ));

    // Clients may send each message, and each file, on a QUIC stream of its own; those join the
    // session here, beside the frames on its main stream.
    let mut extra = side.as_ref().map(SideStreams::incoming);
    let ending = read_loop(
        &mut reader,
        &mut extra,
        user,
        confirmations.as_deref(),
        &tx,
        &kick,
        &mut shutdown,
        &state,
    )
    .await;
    drop(extra);
    drop(reader);
    let graceful = !matches!(ending, Ending::Client);
    if let Ending::Error(code, _) = &ending {
        state.stats.errors_sent.fetch_add(1, Ordering::Relaxed);
        count_refusal(&state.stats, *code);
    }
    let _ = stop_tx.send(ending);

    // A client that stopped reading can keep the writer blocked on flow control: give it the
    // grace period, then cut the connection, which fails the pending write.
    let joined = match timeout(CLOSE_GRACE, &mut writer_task).await {
        Ok(joined) => joined,
        Err(_) => {
            link.abort(ErrorCode::SLOW_CONSUMER.0.into(), "writer blocked at close");
            writer_task.await
        }
    };
    let (mut rx, unwritten, unconfirmed) = joined.unwrap_or_else(|e| {
        // Only a bug gets here; what the writer held is gone, but the user's slot is freed.
        tracing::error!("session {id} writer task failed: {e}");
        (mpsc::channel(1).1, VecDeque::new(), 0)
    });
    state
        .stats
        .redelivered
        .fetch_add(unconfirmed as u64, Ordering::Relaxed);
    state.router.unregister(user, id, unwritten, &mut rx);
    state.stats.sessions_active.fetch_sub(1, Ordering::Relaxed);
    if graceful {
        link.close(CLOSE_OK, "session ended", CLOSE_GRACE).await;
    } else {
        link.abort(CLOSE_OK, "bye");
    }
}

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

#[allow(clippy::too_many_arguments)]
async fn read_loop(
    reader: &mut FrameReader,
    extra: &mut Option<mpsc::Receiver<Result<SideStream, TransportError>>>,
    user: u64,
    confirmations: Option<&Confirmations>,
    tx: &mpsc::Sender<Outbound>,
    kick: &Kick,
    shutdown: &mut watch::Receiver<bool>,
    state: &State,
) -> Ending {
    let reply = |o: Outbound| {
        if tx.try_send(o).is_err() {
            // The client is not reading its own acks: same policy as for deliveries.
            state.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
            kick.kick(ErrorCode::SLOW_CONSUMER);
        }
    };
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
            _ = shutdown.changed() => return Ending::Shutdown,
            frame = reader.read_frame() => frame,
            item = next_extra(extra) => match item {
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
                    reply(Outbound::Reject(msg_id, ErrorCode::BODY_TOO_LARGE));
                    continue;
                }
                let d = Delivery {
                    msg_id,
                    from: user,
                    to: Dest::User(recipient),
                    body,
                };
                match state.router.route(recipient, d) {
                    Routed::Queued | Routed::Held => reply(Outbound::Ack(msg_id)),
                    Routed::Refused(code) => reply(Outbound::Reject(msg_id, code)),
                }
            }
            Frame::Send {
                msg_id,
                to: Dest::Group(group),
                body,
            } => {
                if body.len() > state.limits.max_body {
                    reply(Outbound::Reject(msg_id, ErrorCode::BODY_TOO_LARGE));
                    continue;
                }
                let d = Delivery {
                    msg_id,
                    from: user,
                    to: Dest::Group(group),
                    body,
                };
                match state.groups.route(group, user, d, &state.router) {
                    Ok(_) => reply(Outbound::Ack(msg_id)),
                    Err(code) => reply(Outbound::Reject(msg_id, code)),
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
            Frame::FileChunk { transfer_id, data } => match files.chunk(transfer_id, data.len()) {
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
            },
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
                    let reason = "Receipt on a session that did not ask for receipts".to_string();
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

/// The next frame of the file lane; pending forever when there is no lane.
async fn next_file_frame(lane: &mut Option<mpsc::Receiver<Frame>>) -> Frame {
    if let Some(l) = lane {
        if let Some(frame) = l.recv().await {
            return frame;
        }
        // The session has left the router and no relay is running: nothing more can come.
        *lane = None;
    }
    std::future::pending().await
}

/// Writes Welcome, then what was held, then whatever the queue brings, until told to stop.
/// Returns the queue, every delivery it did not write or that was written and not confirmed
/// (those first, in the order written), and how many of them were written.
#[allow(clippy::too_many_arguments)]
async fn write_loop(
    mut writer: FrameWriter,
    mut rx: mpsc::Receiver<Outbound>,
    meter: Arc<QueueMeter>,
    held: VecDeque<Delivery>,
    mut lane: Option<mpsc::Receiver<Frame>>,
    mut receipts: Option<Unconfirmed>,
    welcome: Frame,
    mut stop: oneshot::Receiver<Ending>,
) -> (mpsc::Receiver<Outbound>, VecDeque<Delivery>, usize) {
    let mut pending: VecDeque<Outbound> = held.into_iter().map(Outbound::Deliver).collect();
    // Both buffers start empty and are trimmed after a burst: at 10,000 mostly idle sessions a
    // pre-sized batch of 512 deliveries would cost more memory than the QUIC connection itself.
    let mut batch = Vec::new();
    let mut healthy = writer.write_frame(&welcome).await.is_ok();
    let ending = loop {
        if !healthy {
            break None;
        }
        let mut file_frame = None;
        let mut room = receipts.as_mut().map_or(usize::MAX, Unconfirmed::room);
        let blocked = room == 0 && matches!(pending.front(), Some(Outbound::Deliver(_)));
        if blocked {
            // The client has as many deliveries unconfirmed as it may: wait for a receipt.
            let Some(r) = receipts.as_ref() else {
                break None;
            };
            tokio::select! {
                biased;
                ending = &mut stop => break ending.ok(),
                _ = r.receipt() => continue,
                frame = next_file_frame(&mut lane) => file_frame = Some(frame),
            }
        } else if pending.is_empty() {
            tokio::select! {
                biased;
                ending = &mut stop => break ending.ok(),
                n = rx.recv_many(&mut batch, WRITE_BATCH) => {
                    if n == 0 {
                        break None;
                    }
                    batch.iter().for_each(|o| meter.taken(o));
                    pending.extend(batch.drain(..));
                }
                frame = next_file_frame(&mut lane) => file_frame = Some(frame),
            }
        } else if let Ok(ending) = stop.try_recv() {
            break Some(ending);
        }
        let mut queued = 0;
        while queued < WRITE_BATCH {
            let Some(o) = pending.pop_front() else {
                break;
            };
            if let Outbound::Deliver(d) = &o {
                if room == 0 {
                    pending.push_front(o);
                    break;
                }
                room -= 1;
                if let Some(r) = receipts.as_mut() {
                    r.written(d.clone());
                }
            }
            healthy &= writer.queue(&o.to_frame()).is_ok();
            queued += 1;
        }
        // One file chunk per write at most, after the chat frames: a chat frame waits behind
        // at most one chunk here (the socket's own buffer is another matter).
        if file_frame.is_none() {
            file_frame = lane.as_mut().and_then(|l| l.try_recv().ok());
        }
        if let Some(frame) = file_frame {
            healthy &= writer.queue(&frame).is_ok();
        }
        healthy &= writer.flush().await.is_ok();
        if pending.is_empty() && pending.capacity() > IDLE_BUFFER {
            pending.shrink_to(IDLE_BUFFER);
            batch.shrink_to(IDLE_BUFFER);
        }
    };
    match ending {
        Some(Ending::Shutdown) if healthy => {
            while let Ok(o) = rx.try_recv() {
                meter.taken(&o);
                pending.push_back(o);
            }
            let mut ok = true;
            // The server is going away: a receipt could no longer change anything, so the
            // window does not hold these back.
            for o in pending.drain(..) {
                ok &= writer.queue(&o.to_frame()).is_ok();
            }
            let bye = Frame::Bye {
                reason: "server shutting down".into(),
            };
            if ok && writer.queue(&bye).is_ok() {
                let _ = writer.shutdown().await;
            }
        }
        Some(Ending::Error(code, reason)) if healthy => {
            let error = Frame::Error { code, reason };
            let _ = match writer.write_frame(&error).await {
                Ok(()) => writer.shutdown().await,
                Err(e) => Err(e),
            };
        }
        _ => {}
    }
    let mut unwritten = receipts
        .map(Unconfirmed::into_unconfirmed)
        .unwrap_or_default();
    let unconfirmed = unwritten.len();
    unwritten.extend(pending.into_iter().filter_map(|o| match o {
        Outbound::Deliver(d) => Some(d),
        _ => None,
    }));
    (rx, unwritten, unconfirmed)
}
