//! One client connection, from handshake to close: the session and who owns what in it.
//!
//! - **Handshake** (`serve_connection`): the transport's handshake, then Hello (version, token),
//!   both within the Hello timeout. A refusal is one Error frame, then close.
//! - **Open** (`run_session`): the session registers with the router, which hands back what was
//!   held for the user and from then on routes to the session's bounded queue.
//! - **Read** ([`read::SessionReader`], the task that did the handshake): decodes the client's
//!   frames and routes them; it answers on the session's own queue and never writes to the
//!   connection.
//! - **Write** ([`write::SessionWriter`], a task of its own): the only writer to the
//!   connection; drains the queue in one coalesced write per wake-up.
//! - **Close**: the reader tells the writer how the session ended ([`Ending`]); the writer
//!   hands back what it did not deliver, and the router holds that for the user's next
//!   connection.
//!
//! Neither task holds a lock across an await; the locks they take briefly are listed, in order,
//! in `groups.rs`.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use imbench_proto::{ErrorCode, Frame, HELLO_RECEIPTS, PROTOCOL_VERSION};
use imbench_transport::Incoming;
use imbench_transport::{FramedConnection, SideStreams, TransportError};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{timeout, Instant};

use crate::files::FileSink;
use crate::receipts::{Confirmations, Unconfirmed};
use crate::router::{Kick, SessionHandle};
use crate::State;

mod answers;
mod read;
mod write;

use read::SessionReader;
use write::{SessionWriter, Unwritten};

/// Most frames written in one coalesced write.
const WRITE_BATCH: usize = 512;

/// Bytes after which a coalesced write takes no more frames: the write buffer is an encoded
/// copy of what it holds, so it is kept small beside the bodies it copies.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// Capacity an idle session keeps in its write buffers.
const IDLE_BUFFER: usize = 16;

/// How long a closing connection waits for its last frames to reach the peer.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Beyond [`CLOSE_GRACE`], how long a new login waits for the session it replaces to end.
const REPLACE_SLACK: Duration = Duration::from_secs(1);

/// QUIC close codes: 0 for an orderly close, otherwise the protocol error code.
const CLOSE_OK: u32 = 0;

/// Runs one connection: handshake, Hello, then the session until either side ends it.
pub(crate) async fn serve_connection(
    incoming: Incoming,
    state: Arc<State>,
    shutdown: watch::Receiver<bool>,
) {
    let deadline = Instant::now() + state.limits.hello_timeout;
    let establish = incoming.establish();
    tokio::pin!(establish);
    let conn = match tokio::time::timeout_at(deadline, &mut establish).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(imbench_transport::TransportError::NotAnUpgrade)) => {
            state
                .stats
                .http_requests_not_upgraded
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        Ok(Err(e)) => {
            tracing::debug!("handshake failed: {e}");
            state
                .stats
                .handshakes_failed
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        // The deadline runs from the first packet to the Hello: a handshake still going on at
        // it is a Hello timeout. One that finishes within a grace (the close's, at most the
        // deadline again) is told so, as the client has a connection then and would otherwise
        // see it merely lost; one that does not is dropped (nothing to say it on).
        Err(_) => {
            let reason = format!(
                "no Hello within {:?}: the handshake had not finished",
                state.limits.hello_timeout
            );
            // No longer than the deadline itself: a short --hello-timeout against handshakes
            // that never finish holds each at most twice as long.
            let grace = CLOSE_GRACE.min(state.limits.hello_timeout);
            if let Ok(Ok(conn)) = timeout(grace, establish).await {
                return refuse(conn, &state, ErrorCode::HELLO_TIMEOUT, &reason).await;
            }
            tracing::debug!("{reason}");
            state.stats.hello_timeouts.fetch_add(1, Ordering::Relaxed);
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
            if let Err(why) = state.secret.check(user, &token) {
                state.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
                let reason = format!("user {user}: {why}");
                return refuse(conn, &state, ErrorCode::BAD_TOKEN, &reason).await;
            }
            (user, flags & HELLO_RECEIPTS != 0)
        }
        Ok(Ok(Some(other))) => {
            let reason = format!("{} before Hello", other.name());
            return refuse(conn, &state, ErrorCode::HELLO_REQUIRED, &reason).await;
        }
    };
    conn.link.admit(state.quic_receive_window);
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
    // A bounded channel counts its room with a semaphore: a capacity past what one counts is
    // the most it counts (the queue's bytes are bounded apart, by `session_queue_bytes`).
    let (tx, rx) = mpsc::channel(
        state
            .limits
            .queue_capacity
            .min(tokio::sync::Semaphore::MAX_PERMITS),
    );
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
        load: Arc::default(),
    };
    // An earlier session of the user (a connection that went half-open, say) ends first and
    // hands back what it did not write, so that this one writes those before anything newer;
    // one whose writer is stuck is cut after its close grace, and waited for a little longer.
    if state.router.predecessor_pending(user) {
        state
            .router
            .replace(user, CLOSE_GRACE + REPLACE_SLACK)
            .await;
    }
    let held = state.router.register(user, handle.clone());
    state.stats.sessions_opened.fetch_add(1, Ordering::Relaxed);
    let live = state.stats.sessions_active.fetch_add(1, Ordering::Relaxed) + 1;
    state.stats.sessions_peak.fetch_max(live, Ordering::Relaxed);

    let confirmations = receipts.then(|| Arc::new(Confirmations::default()));
    let unconfirmed = confirmations.clone().map(|c| {
        Unconfirmed::new(
            c,
            state.limits.receipt_window,
            state.router.store().cloned(),
        )
    });
    let (stop_tx, stop_rx) = oneshot::channel();
    let mut writer_task = tokio::spawn(
        SessionWriter {
            writer,
            rx,
            pools: state.router.pools(),
            load: handle.load.clone(),
            held,
            lane,
            receipts: unconfirmed,
            welcome: Frame::Welcome { session: id },
            stop: stop_rx,
            kick: kick.clone(),
            write_timeout: state.limits.write_timeout,
            stats: state.stats.clone(),
            store: state.router.store().cloned(),
        }
        .run(),
    );

    // Clients may send each message, and each file, on a QUIC stream of its own; those join the
    // session here, beside the frames on its main stream.
    let mut extra = side.as_ref().map(SideStreams::incoming);
    let ending = SessionReader {
        reader: &mut reader,
        extra: &mut extra,
        user,
        confirmations: confirmations.as_deref(),
        tx: &tx,
        kick: &kick,
        shutdown: &mut shutdown,
        state: &state,
    }
    .run()
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
    let Unwritten {
        mut rx,
        deliveries: unwritten,
        unconfirmed,
    } = joined.unwrap_or_else(|e| {
        // A writer that panicked is a bug; one cancelled is the runtime shutting down under
        // the session (a process ending at once), nothing to tell. Either way what it held is
        // gone, but the user's slot is freed.
        if e.is_panic() {
            tracing::error!("session {id} writer task failed: {e}");
        } else {
            tracing::debug!("session {id} writer task cancelled: {e}");
        }
        Unwritten {
            rx: mpsc::channel(1).1,
            deliveries: VecDeque::new(),
            unconfirmed: 0,
        }
    });
    state
        .stats
        .redelivered
        .fetch_add(unconfirmed as u64, Ordering::Relaxed);
    state.router.unregister(user, &handle, unwritten, &mut rx);
    state.stats.sessions_active.fetch_sub(1, Ordering::Relaxed);
    if graceful {
        link.close(CLOSE_OK, "session ended", CLOSE_GRACE).await;
    } else {
        link.abort(CLOSE_OK, "bye");
    }
}
