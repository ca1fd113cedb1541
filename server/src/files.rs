//! File relay: each accepted transfer is one task that moves the file's bytes from the
//! sender's connection to the recipient's as they come, never holding the file.
//!
//! # How bytes travel
//!
//! - Over QUIC the sender writes the file on a unidirectional stream of its own that starts
//!   with `FileData`, and the relay writes it to the recipient on a new stream that starts with
//!   `FileIncoming`. Chat frames travel on other streams and never wait behind file bytes.
//! - On the byte-stream transports (TCP, TLS, WebSocket) the bytes come as `FileChunk` frames
//!   on the sender's one connection and leave as `FileChunk` frames on the recipient's, through
//!   the recipient writer's file lane, which yields to chat frames between chunks.
//!
//! Either way the relay reads the next piece only after the previous one was handed to the
//! recipient's connection, so flow control runs end to end and a transfer of any size passes
//! through a fixed amount of memory: one chunk in the relay, the sender stream's receive window
//! (or [`SOURCE_CHUNKS`] chunks), and the recipient connection's send window (or
//! [`LANE_FRAMES`] frames).
//!
//! # Ending
//!
//! A transfer ends when `size` bytes reached the recipient's connection, or early: the sender
//! cancels, vanishes or sends the wrong number of bytes (the recipient gets `FileCancel` or a
//! stream reset with the code), the recipient cancels or vanishes (the sender gets
//! `FileCancel`, and its stream is stopped), or no byte moves for [`crate::Limits::file_idle_timeout`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use imbench_proto::{ErrorCode, Frame, RELAY_ID_BIT};
use imbench_transport::{SideRecv, SideSend, SideStreams};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::router::Outbound;
use crate::stats::Stats;

/// Largest piece of a file the relay moves at once; also the size of the FileChunk frames it
/// writes, well under the codec's frame limit.
pub const CHUNK: usize = 32 * 1024;

/// FileChunk frames from a sender on a byte-stream transport buffered ahead of the relay.
pub(crate) const SOURCE_CHUNKS: usize = 4;

/// File frames queued for a recipient's writer on a byte-stream transport.
pub(crate) const LANE_FRAMES: usize = 8;

/// How a session receives files.
#[derive(Debug, Clone)]
pub enum FileSink {
    /// On side streams of its connection (QUIC), one per file.
    Side(SideStreams),
    /// As frames in its writer's file lane.
    Lane(mpsc::Sender<Frame>),
}

impl FileSink {
    /// A sink whose every transfer fails at once, as if the recipient had gone: for tests and
    /// benchmarks that route messages without a connection.
    pub fn closed() -> Self {
        FileSink::Lane(mpsc::channel(1).0)
    }
}

/// Where a relay reads the file from.
pub(crate) enum Source {
    /// The sender's side stream, once it arrives.
    Side(oneshot::Receiver<SideRecv>),
    /// FileChunk payloads, in order, from the sender's session.
    Chunks(mpsc::Receiver<Bytes>),
}

/// A transfer the sender's session still tracks.
pub(crate) struct Outgoing {
    /// Where FileChunk payloads go (byte-stream transports); dropped after the last byte.
    pub chunks: Option<mpsc::Sender<Bytes>>,
    /// Bytes the sender still owes in FileChunk frames.
    pub remaining: u64,
    /// Where the side stream goes when it arrives.
    pub stream: Option<oneshot::Sender<SideRecv>>,
    /// Cancels the relay (the sender said FileCancel).
    pub cancel: Arc<Notify>,
    /// Set by the relay when it ends, however it ends.
    pub done: Arc<AtomicBool>,
}

/// Transfers in flight, by relay id, so that a recipient's FileCancel finds its relay.
#[derive(Default)]
pub struct Transfers {
    by_relay: DashMap<u64, (u64, Arc<Notify>)>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Transfers {
    /// A new relay id, unique in this server.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Cancels relay `relay_id` if `recipient` is its recipient. Returns whether it did.
    pub(crate) fn cancel_by_recipient(&self, relay_id: u64, recipient: u64) -> bool {
        match self.by_relay.get(&relay_id) {
            Some(entry) if entry.0 == recipient => {
                entry.1.notify_one();
                true
            }
            _ => false,
        }
    }

    /// Transfers in flight.
    pub fn active(&self) -> usize {
        self.by_relay.len()
    }
}

/// Everything one relay task needs.
pub(crate) struct Relay {
    pub relay_id: u64,
    pub sender: u64,
    pub sender_transfer_id: u64,
    /// The sender session's queue, for FileCancel.
    pub sender_tx: mpsc::Sender<Outbound>,
    pub recipient: u64,
    pub size: u64,
    pub sha256: [u8; imbench_proto::SHA256_LEN],
    pub name: String,
    pub sink: FileSink,
    /// Fired by the sender's FileCancel.
    pub sender_cancel: Arc<Notify>,
    pub done: Arc<AtomicBool>,
    pub idle_timeout: Duration,
    pub stats: Arc<Stats>,
    pub transfers: Arc<Transfers>,
}

/// Who ended a transfer early, and the code each side is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The sender cancelled, vanished, stalled or sent the wrong bytes: tell the recipient (and
    /// the sender, unless it cancelled or vanished).
    Sender(ErrorCode),
    /// The recipient cancelled or vanished: tell the sender.
    Recipient(ErrorCode),
}

/// Reads the file from wherever the sender writes it.
enum OpenSource {
    Side(SideRecv),
    Chunks(mpsc::Receiver<Bytes>),
}

/// Pieces taken from a QUIC stream at once: quinn hands over received data packet by packet,
/// so taking many per wake-up is what keeps the relay's cost per byte low.
const BATCH: usize = 32;

impl OpenSource {
    /// The next pieces (appended to `out`), `false` at the end, or the sender's failure.
    async fn next(&mut self, out: &mut Vec<Bytes>) -> Result<bool, ErrorCode> {
        match self {
            OpenSource::Side(recv) => {
                let mut bufs: [Bytes; BATCH] = std::array::from_fn(|_| Bytes::new());
                match recv.read_chunks(&mut bufs).await {
                    Ok(Some(n)) => {
                        out.extend(bufs.into_iter().take(n));
                        Ok(true)
                    }
                    Ok(None) => Ok(false),
                    Err(_) => Err(ErrorCode::TRANSFER_ABORTED),
                }
            }
            // The sender's session ended, or it cancelled, before the last byte.
            OpenSource::Chunks(rx) => match rx.recv().await {
                Some(bytes) => {
                    out.push(bytes);
                    Ok(true)
                }
                None => Err(ErrorCode::TRANSFER_ABORTED),
            },
        }
    }

    fn stop(self, code: ErrorCode) {
        if let OpenSource::Side(mut recv) = self {
            recv.stop(code.0);
        }
    }
}

/// Writes the file to the recipient.
enum OpenSink {
    Side(SideSend),
    Lane(mpsc::Sender<Frame>),
}

impl OpenSink {
    /// Writes every piece of `data` (and empties it).
    async fn write(&mut self, relay_id: u64, data: &mut Vec<Bytes>) -> Result<(), ()> {
        match self {
            OpenSink::Side(send) => {
                // One copy into a single buffer: quinn's send buffer walks its pieces for every
                // packet it builds, and packet-sized pieces made that walk the relay's largest
                // cost (measured with perf on the file_relay bench).
                if data.len() > 1 {
                    let total = data.iter().map(|p| p.len()).sum();
                    let mut joined = bytes::BytesMut::with_capacity(total);
                    for piece in data.drain(..) {
                        joined.extend_from_slice(&piece);
                    }
                    data.push(joined.freeze());
                }
                let result = send.write_chunks(data).await.map_err(|_| ());
                data.clear();
                result
            }
            OpenSink::Lane(lane) => {
                // Pieces from a QUIC stream are packet-sized: gather them into frames of up to
                // CHUNK bytes, so that a chat frame waits behind at most one of those.
                let mut frame = bytes::BytesMut::new();
                for piece in data.drain(..) {
                    if !frame.is_empty() && frame.len() + piece.len() > CHUNK {
                        let full = std::mem::take(&mut frame).freeze();
                        Self::send_chunk(lane, relay_id, full).await?;
                    }
                    if frame.is_empty() && piece.len() >= CHUNK {
                        Self::send_chunk(lane, relay_id, piece).await?;
                    } else {
                        frame.extend_from_slice(&piece);
                    }
                }
                if !frame.is_empty() {
                    Self::send_chunk(lane, relay_id, frame.freeze()).await?;
                }
                Ok(())
            }
        }
    }

    async fn send_chunk(lane: &mpsc::Sender<Frame>, relay_id: u64, data: Bytes) -> Result<(), ()> {
        lane.send(Frame::FileChunk {
            transfer_id: relay_id,
            data,
        })
        .await
        .map_err(|_| ())
    }

    async fn finish(self) {
        if let OpenSink::Side(mut send) = self {
            send.finish();
        }
    }

    async fn abort(self, relay_id: u64, code: ErrorCode) {
        match self {
            OpenSink::Side(mut send) => send.reset(code.0),
            OpenSink::Lane(lane) => {
                let cancel = Frame::FileCancel {
                    transfer_id: relay_id,
                    code,
                };
                // A recipient that stopped reading must not hold the relay forever.
                let _ = tokio::time::timeout(Duration::from_secs(2), lane.send(cancel)).await;
            }
        }
    }
}

impl Relay {
    /// Moves the file, then tells whichever side needs telling how it ended.
    pub(crate) async fn run(self, source: Source) {
        let cancel = Arc::new(Notify::new());
        self.transfers
            .by_relay
            .insert(self.relay_id, (self.recipient, cancel.clone()));
        self.stats.transfers_started.fetch_add(1, Ordering::Relaxed);
        let result = self.relay(source, &cancel).await;
        self.transfers.by_relay.remove(&self.relay_id);
        self.done.store(true, Ordering::Release);
        match result {
            Ok(()) => {
                self.stats.transfers_relayed.fetch_add(1, Ordering::Relaxed);
            }
            Err(failure) => {
                self.stats.transfers_aborted.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    "transfer {} from {} to {} ended early: {failure:?}",
                    self.relay_id,
                    self.sender,
                    self.recipient
                );
                // A sender that cancelled or left knows; one that stalled or sent the wrong
                // bytes is told, as the recipient is (on a byte stream nothing else would tell
                // it: its later chunks are dropped without a word).
                let tell_sender = match failure {
                    Failure::Recipient(code) => Some(code),
                    Failure::Sender(code) if code != ErrorCode::TRANSFER_ABORTED => Some(code),
                    Failure::Sender(_) => None,
                };
                if let Some(code) = tell_sender {
                    let _ = self
                        .sender_tx
                        .try_send(Outbound::FileCancel(self.sender_transfer_id, code));
                }
            }
        }
    }

    async fn relay(&self, source: Source, recipient_cancel: &Notify) -> Result<(), Failure> {
        let header = Frame::FileIncoming {
            transfer_id: self.relay_id,
            from: self.sender,
            size: self.size,
            sha256: self.sha256,
            name: self.name.clone(),
        };
        let gone = Failure::Recipient(ErrorCode::TRANSFER_ABORTED);
        // A recipient that grants no stream (or reads nothing) holds the transfer here, and
        // with it a byte-stream sender's reader: bounded like every other wait of a transfer,
        // and given up when either side cancels.
        let opened = async {
            match &self.sink {
                FileSink::Side(side) => side
                    .open(&header)
                    .await
                    .map(OpenSink::Side)
                    .map_err(|_| gone),
                FileSink::Lane(lane) => {
                    lane.send(header).await.map_err(|_| gone)?;
                    Ok(OpenSink::Lane(lane.clone()))
                }
            }
        };
        let mut sink = tokio::select! {
            biased;
            _ = recipient_cancel.notified() => return Err(Failure::Recipient(ErrorCode::TRANSFER_ABORTED)),
            _ = self.sender_cancel.notified() => return Err(Failure::Sender(ErrorCode::TRANSFER_ABORTED)),
            opened = tokio::time::timeout(self.idle_timeout, opened) => match opened {
                Ok(sink) => sink?,
                Err(_) => return Err(Failure::Recipient(ErrorCode::TRANSFER_STALLED)),
            },
        };
        let mut source = match source {
            Source::Chunks(rx) => OpenSource::Chunks(rx),
            Source::Side(stream) => {
                // The sender opens its stream once it has read FileAccepted.
                let arrived = tokio::select! {
                    biased;
                    _ = recipient_cancel.notified() => Err(Failure::Recipient(ErrorCode::TRANSFER_ABORTED)),
                    _ = self.sender_cancel.notified() => Err(Failure::Sender(ErrorCode::TRANSFER_ABORTED)),
                    stream = tokio::time::timeout(self.idle_timeout, stream) => match stream {
                        Ok(Ok(stream)) => Ok(stream),
                        Ok(Err(_)) => Err(Failure::Sender(ErrorCode::TRANSFER_ABORTED)),
                        Err(_) => Err(Failure::Sender(ErrorCode::TRANSFER_STALLED)),
                    },
                };
                match arrived {
                    Ok(stream) => OpenSource::Side(stream),
                    Err(failure) => {
                        let code = match failure {
                            Failure::Sender(c) | Failure::Recipient(c) => c,
                        };
                        sink.abort(self.relay_id, code).await;
                        return Err(failure);
                    }
                }
            }
        };
        let mut relayed = 0u64;
        let mut pieces: Vec<Bytes> = Vec::with_capacity(BATCH);
        // Made once, polled on every turn: a timer or a waiter per piece would cost more than
        // the piece.
        let mut recipient_cancelled = std::pin::pin!(recipient_cancel.notified());
        let mut sender_cancelled = std::pin::pin!(self.sender_cancel.notified());
        let mut idle_check =
            tokio::time::interval((self.idle_timeout / 4).max(Duration::from_millis(1)));
        let mut last_progress = tokio::time::Instant::now();
        let outcome = loop {
            if relayed == self.size {
                break Ok(());
            }
            let more = tokio::select! {
                biased;
                _ = &mut recipient_cancelled => break Err(Failure::Recipient(ErrorCode::TRANSFER_ABORTED)),
                _ = &mut sender_cancelled => break Err(Failure::Sender(ErrorCode::TRANSFER_ABORTED)),
                more = source.next(&mut pieces) => more,
                _ = idle_check.tick() => {
                    if last_progress.elapsed() >= self.idle_timeout {
                        break Err(Failure::Sender(ErrorCode::TRANSFER_STALLED));
                    }
                    continue;
                }
            };
            match more {
                Err(code) => break Err(Failure::Sender(code)),
                Ok(false) => break Err(Failure::Sender(ErrorCode::SIZE_MISMATCH)),
                Ok(true) => {}
            }
            let n: u64 = pieces.iter().map(|p| p.len() as u64).sum();
            relayed += n;
            if relayed > self.size {
                break Err(Failure::Sender(ErrorCode::SIZE_MISMATCH));
            }
            self.stats.file_bytes.fetch_add(n, Ordering::Relaxed);
            // One write future, kept across idle checks: dropping it half way would lose bytes.
            let written = {
                let write = sink.write(self.relay_id, &mut pieces);
                let mut write = std::pin::pin!(write);
                loop {
                    tokio::select! {
                        biased;
                        _ = &mut recipient_cancelled => break Err(Failure::Recipient(ErrorCode::TRANSFER_ABORTED)),
                        written = &mut write => break written.map_err(|()| gone),
                        _ = idle_check.tick() => {
                            if last_progress.elapsed() >= self.idle_timeout {
                                // The recipient has stopped reading.
                                break Err(Failure::Recipient(ErrorCode::TRANSFER_STALLED));
                            }
                        }
                    }
                }
            };
            if let Err(failure) = written {
                break Err(failure);
            }
            last_progress = tokio::time::Instant::now();
        };
        match outcome {
            Ok(()) => {
                sink.finish().await;
                Ok(())
            }
            Err(Failure::Sender(code)) => {
                source.stop(code);
                sink.abort(self.relay_id, code).await;
                Err(Failure::Sender(code))
            }
            Err(Failure::Recipient(code)) => {
                source.stop(code);
                sink.abort(self.relay_id, code).await;
                Err(Failure::Recipient(code))
            }
        }
    }
}

/// What the sender's session does with a FileChunk.
pub(crate) enum ChunkTarget {
    /// Hand the bytes to this relay (waiting for room: that is the flow control).
    Relay(mpsc::Sender<Bytes>),
    /// The transfer already ended; drop the bytes without a word (the sender has been told).
    Drop,
    /// Tell the sender this.
    Refuse(ErrorCode),
}

/// The transfers one session is sending.
pub(crate) struct SenderFiles {
    user: u64,
    quic: bool,
    outgoing: std::collections::HashMap<u64, Outgoing>,
}

impl SenderFiles {
    pub(crate) fn new(user: u64, quic: bool) -> Self {
        Self {
            user,
            quic,
            outgoing: std::collections::HashMap::new(),
        }
    }

    /// Accepts or refuses an offer. On acceptance the relay is running and FileAccepted is
    /// already queued ahead of anything the relay says.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn offer(
        &mut self,
        state: &crate::State,
        tx: &mpsc::Sender<Outbound>,
        transfer_id: u64,
        to: imbench_proto::Dest,
        size: u64,
        sha256: [u8; imbench_proto::SHA256_LEN],
        name: String,
    ) -> Result<(), ErrorCode> {
        self.outgoing.retain(|_, o| !o.done.load(Ordering::Acquire));
        let recipient = match to {
            imbench_proto::Dest::User(r) => r,
            imbench_proto::Dest::Group(_) => return Err(ErrorCode::UNSUPPORTED_DEST),
        };
        // The server's own ids have this bit: the sender's cancel would be taken for the
        // recipient's.
        if transfer_id & RELAY_ID_BIT != 0 {
            return Err(ErrorCode::UNKNOWN_TRANSFER);
        }
        if size > state.limits.max_file_size {
            return Err(ErrorCode::FILE_TOO_LARGE);
        }
        if self.outgoing.len() >= state.limits.transfers_per_user {
            return Err(ErrorCode::TOO_MANY_TRANSFERS);
        }
        if self.outgoing.contains_key(&transfer_id) {
            return Err(ErrorCode::UNKNOWN_TRANSFER);
        }
        let Some(session) = state.router.session_of(recipient) else {
            return Err(ErrorCode::RECIPIENT_OFFLINE);
        };
        let cancel = Arc::new(Notify::new());
        let done = Arc::new(AtomicBool::new(false));
        let (source, entry) = if self.quic {
            let (stream_tx, stream_rx) = oneshot::channel();
            let entry = Outgoing {
                chunks: None,
                remaining: 0,
                stream: Some(stream_tx),
                cancel: cancel.clone(),
                done: done.clone(),
            };
            (Source::Side(stream_rx), entry)
        } else {
            let (chunk_tx, chunk_rx) = mpsc::channel(SOURCE_CHUNKS);
            let entry = Outgoing {
                chunks: (size > 0).then_some(chunk_tx),
                remaining: size,
                stream: None,
                cancel: cancel.clone(),
                done: done.clone(),
            };
            (Source::Chunks(chunk_rx), entry)
        };
        // Queued before the relay starts, so that FileAccepted precedes any FileCancel.
        if tx.try_send(Outbound::FileAccepted(transfer_id)).is_err() {
            return Err(ErrorCode::SLOW_CONSUMER);
        }
        self.outgoing.insert(transfer_id, entry);
        let relay = Relay {
            relay_id: RELAY_ID_BIT | state.transfers.next_id(),
            sender: self.user,
            sender_transfer_id: transfer_id,
            sender_tx: tx.clone(),
            recipient,
            size,
            sha256,
            name,
            sink: session.files,
            sender_cancel: cancel,
            done,
            idle_timeout: state.limits.file_idle_timeout,
            stats: state.stats.clone(),
            transfers: state.transfers.clone(),
        };
        tokio::spawn(relay.run(source));
        Ok(())
    }

    /// Where the bytes of a FileChunk go.
    pub(crate) fn chunk(&mut self, transfer_id: u64, len: usize) -> ChunkTarget {
        let Some(entry) = self.outgoing.get_mut(&transfer_id) else {
            return ChunkTarget::Refuse(ErrorCode::UNKNOWN_TRANSFER);
        };
        let len = len as u64;
        if entry.done.load(Ordering::Acquire) {
            entry.remaining = entry.remaining.saturating_sub(len);
            return ChunkTarget::Drop;
        }
        let Some(chunks) = entry.chunks.clone() else {
            // Over QUIC the bytes belong on a stream; past the end there is nothing to take.
            return ChunkTarget::Refuse(ErrorCode::SIZE_MISMATCH);
        };
        if len > entry.remaining {
            entry.cancel.notify_one();
            entry.chunks = None;
            return ChunkTarget::Refuse(ErrorCode::SIZE_MISMATCH);
        }
        entry.remaining -= len;
        if entry.remaining == 0 {
            // The last bytes: the relay reads the end after them.
            entry.chunks = None;
        }
        ChunkTarget::Relay(chunks)
    }

    /// Hands a file's side stream to its relay; a stream for no accepted transfer is stopped.
    pub(crate) fn stream(&mut self, transfer_id: u64, mut bytes: SideRecv) {
        let waiting = self
            .outgoing
            .get_mut(&transfer_id)
            .and_then(|o| o.stream.take());
        match waiting {
            Some(tx) => {
                if let Err(mut bytes) = tx.send(bytes) {
                    bytes.stop(ErrorCode::TRANSFER_ABORTED.0);
                }
            }
            None => bytes.stop(ErrorCode::UNKNOWN_TRANSFER.0),
        }
    }

    /// The sender cancelled one of its transfers. Returns whether it had one by that id.
    pub(crate) fn cancel(&mut self, transfer_id: u64) -> bool {
        match self.outgoing.get_mut(&transfer_id) {
            Some(entry) => {
                entry.cancel.notify_one();
                entry.chunks = None;
                entry.stream = None;
                true
            }
            None => false,
        }
    }
}
