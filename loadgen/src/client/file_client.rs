//! The client side of file transfers: offers, the bytes going out (a QUIC stream per file, or
//! FileChunk frames interleaved with chat on the one connection), and files coming in, checked
//! against their digest and timed.
//!
//! A sender's transfer goes: due → digest computed (on a blocking thread) → FileOffer written →
//! FileAccepted read (by the client's receive task, which passes it on) → bytes written. Over
//! QUIC a task of its own writes the stream; on the other transports the client's send loop
//! writes one chunk at a time whenever no chat message is due, so chat waits behind at most one
//! chunk in the client, and behind whatever the socket already holds.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use imbench_proto::{Dest, ErrorCode, SHA256_LEN};
use tokio::sync::mpsc;

use crate::client::context::RunContext;
use crate::driver::imbench::FileStreams;
use crate::driver::{Op, Sender, SessionError};
use crate::measure::file_ledger::Outcome;
use crate::measure::metrics::Metric;
use crate::workload::files::{self, Check, Content, FileDue, Incoming, Intended, Key, CHUNK};
use imbench_transport::SideRecv;

/// What the send loop learns about its transfers from elsewhere.
#[derive(Debug)]
pub enum FileEvent {
    /// The digest is ready: write the offer.
    Ready {
        /// The sender's transfer id.
        id: u64,
        /// The transfer.
        due: FileDue,
        /// The file's digest.
        sha256: [u8; SHA256_LEN],
    },
    /// The server accepted the offer.
    Accepted(u64),
    /// The server refused the offer or ended the transfer.
    Cancelled(u64, ErrorCode),
}

/// One client's outgoing transfers.
pub struct Outgoing {
    ctx: Arc<RunContext>,
    user: u64,
    streams: Option<FileStreams>,
    events: mpsc::UnboundedReceiver<FileEvent>,
    events_tx: mpsc::UnboundedSender<FileEvent>,
    next_id: u64,
    preparing: usize,
    offered: HashMap<u64, FileDue>,
    /// Transfer id, what is left to write, and whether the recipient is in another shard.
    sending: VecDeque<(u64, Content, bool)>,
    /// Transfers to corrupt on purpose (`files.corrupt_every`).
    corrupt: std::collections::HashSet<u64>,
}

impl Outgoing {
    /// The transfers of client `user`; `streams` are its session's file streams, if it has them.
    /// Events for it go to the sender this returns beside it.
    pub fn new(
        ctx: Arc<RunContext>,
        user: u64,
        streams: Option<FileStreams>,
    ) -> (Self, mpsc::UnboundedSender<FileEvent>) {
        let (events_tx, events) = mpsc::unbounded_channel();
        let outgoing = Self {
            ctx,
            user,
            streams,
            events,
            events_tx: events_tx.clone(),
            next_id: 0,
            preparing: 0,
            offered: HashMap::new(),
            sending: VecDeque::new(),
            corrupt: std::collections::HashSet::new(),
        };
        (outgoing, events_tx)
    }

    /// Starts transfer `due`: its digest is computed off the async threads, then the offer
    /// goes out from [`Outgoing::handle`].
    pub fn start(&mut self, due: FileDue) {
        let id = self.next_id;
        self.next_id += 1;
        let key = (self.user, id);
        let measured = self.ctx.in_window(due.at_us);
        let nth = self.ctx.files.start(key, due.at_us, due.size, measured);
        let every = self.ctx.scenario.files.corrupt_every;
        if every > 0 && (nth + 1).is_multiple_of(every) {
            self.corrupt.insert(id);
        }
        self.preparing += 1;
        let seed = self.ctx.scenario.seed;
        let tx = self.events_tx.clone();
        tokio::task::spawn_blocking(move || {
            let sha256 = files::digest(seed, key, due.size);
            let _ = tx.send(FileEvent::Ready { id, due, sha256 });
        });
    }

    /// Whether any transfer still needs this client's send loop.
    pub fn busy(&self) -> bool {
        self.preparing > 0 || !self.offered.is_empty() || !self.sending.is_empty()
    }

    /// Whether chunks are waiting to be written (byte-stream transports only).
    pub fn has_chunks(&self) -> bool {
        !self.sending.is_empty()
    }

    /// The next event; waits for one.
    pub async fn next_event(&mut self) -> FileEvent {
        match self.events.recv().await {
            Some(ev) => ev,
            // This struct holds a sender, so the channel never closes while it lives.
            None => std::future::pending().await,
        }
    }

    /// An event already waiting, if any.
    pub fn try_event(&mut self) -> Option<FileEvent> {
        self.events.try_recv().ok()
    }

    /// Acts on an event: writes an offer, starts sending, or records a refusal or failure.
    pub async fn handle(&mut self, ev: FileEvent, writer: &mut Sender) -> Result<(), SessionError> {
        match ev {
            FileEvent::Ready { id, due, sha256 } => {
                self.preparing -= 1;
                self.offered.insert(id, due);
                let intended = Intended {
                    wall_us: self.ctx.clock.wall_us(due.at_us),
                    measured: self.ctx.in_window(due.at_us),
                };
                let offer = Op::FileOffer {
                    transfer_id: id,
                    to: Dest::User(due.to),
                    size: due.size,
                    sha256,
                    name: files::file_name((self.user, id), intended),
                };
                writer.send(offer).await?;
            }
            FileEvent::Accepted(id) => {
                let Some(due) = self.offered.remove(&id) else {
                    return Ok(());
                };
                let key = (self.user, id);
                self.ctx.files.accepted(key);
                let corrupt_at = self.corrupt.remove(&id).then_some(due.size / 2);
                let content = Content::new(self.ctx.scenario.seed, key, due.size, corrupt_at);
                // A recipient in another shard records the outcome there.
                let elsewhere = self.ctx.shard.is_some_and(|sh| !sh.owns(due.to as usize));
                match &self.streams {
                    Some(streams) => {
                        let streams = streams.clone();
                        let ctx = self.ctx.clone();
                        tokio::spawn(send_stream(ctx, streams, key, content, elsewhere));
                    }
                    None => self.sending.push_back((id, content, elsewhere)),
                }
            }
            FileEvent::Cancelled(id, code) => {
                let key = (self.user, id);
                self.corrupt.remove(&id);
                let outcome = if self.offered.remove(&id).is_some() {
                    Outcome::Refused(code)
                } else {
                    self.sending.retain(|(i, _, _)| *i != id);
                    Outcome::Failed
                };
                if self.ctx.files.end(key, outcome) {
                    self.ctx.note_problem(format!(
                        "client {}: file transfer {id} {}: {code}",
                        self.user,
                        if matches!(outcome, Outcome::Refused(_)) {
                            "refused"
                        } else {
                            "cancelled"
                        }
                    ));
                }
            }
        }
        Ok(())
    }

    /// Writes the next chunk of the transfers being sent, taking turns between them.
    pub async fn write_chunk(&mut self, writer: &mut Sender) -> Result<(), SessionError> {
        let Some((id, mut content, elsewhere)) = self.sending.pop_front() else {
            return Ok(());
        };
        if let Some(data) = content.next_piece(CHUNK) {
            writer
                .send(Op::FileChunk {
                    transfer_id: id,
                    data,
                })
                .await?;
        }
        if content.left() > 0 {
            self.sending.push_back((id, content, elsewhere));
        } else if elsewhere {
            self.ctx.files.end((self.user, id), Outcome::HandedOver);
        }
        Ok(())
    }

    /// The connection broke: every transfer of this sender that has not ended has failed.
    pub fn fail_all(&mut self) {
        self.ctx.files.fail_all_of(self.user);
        self.offered.clear();
        self.sending.clear();
    }
}

/// Writes one file on a QUIC stream of its own.
/// A transfer to a recipient `elsewhere` (in another shard) is handed over once every byte is
/// written.
async fn send_stream(
    ctx: Arc<RunContext>,
    streams: FileStreams,
    key: Key,
    mut content: Content,
    elsewhere: bool,
) {
    let result: Result<(), String> = async {
        let mut send = streams.open(key.1).await.map_err(|e| e.to_string())?;
        while let Some(piece) = content.next_piece(CHUNK) {
            send.write_chunk(piece).await.map_err(|e| e.to_string())?;
        }
        send.finish();
        Ok(())
    }
    .await;
    match result {
        Ok(()) if elsewhere => {
            ctx.files.end(key, Outcome::HandedOver);
        }
        Ok(()) => {}
        Err(why) => {
            if ctx.files.end(key, Outcome::Failed) && !ctx.is_finished() {
                ctx.note_problem(format!("client {}: file {} not sent: {why}", key.0, key.1));
            }
        }
    }
}

/// Files coming in over the byte-stream transports, by the server's transfer id.
#[derive(Default)]
pub struct IncomingChunks {
    files: HashMap<u64, Incoming>,
}

impl IncomingChunks {
    /// FileIncoming: a file starts.
    pub fn begin(&mut self, ctx: &RunContext, transfer_id: u64, incoming: Incoming) {
        note_arrival(ctx, &incoming);
        if incoming.size() == 0 {
            conclude(ctx, &incoming, incoming.check(), ctx.clock.now_us());
            return;
        }
        self.files.insert(transfer_id, incoming);
    }

    /// FileChunk: the next bytes of a file.
    pub fn chunk(&mut self, ctx: &RunContext, transfer_id: u64, data: &[u8]) {
        let Some(incoming) = self.files.get_mut(&transfer_id) else {
            ctx.note_problem(format!("file bytes for unknown transfer {transfer_id}"));
            return;
        };
        ctx.files
            .bytes_arrived
            .fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let check = incoming.feed(data);
        if check != Check::Partial {
            if let Some(incoming) = self.files.remove(&transfer_id) {
                conclude(ctx, &incoming, check, ctx.clock.now_us());
            }
        }
    }

    /// FileCancel: the server ended a file early.
    pub fn cancel(&mut self, ctx: &RunContext, transfer_id: u64) {
        if let Some(incoming) = self.files.remove(&transfer_id) {
            failed_arriving(ctx, &incoming, "the server cancelled it");
        }
    }

    /// The connection ended: every file still arriving has failed.
    pub fn fail_all(&mut self, ctx: &RunContext) {
        for (_, incoming) in self.files.drain() {
            failed_arriving(ctx, &incoming, "the connection ended");
        }
    }
}

/// Receives the files that arrive on the session's file streams, each in a task of its own,
/// until the session ends.
pub async fn receive_streams(ctx: Arc<RunContext>, streams: FileStreams) {
    let mut files = streams.incoming();
    while let Some(file) = files.next().await {
        let incoming = Incoming::new(&file.name, file.size, file.sha256, ctx.clock.now_us());
        note_arrival(&ctx, &incoming);
        tokio::spawn(receive_stream(ctx.clone(), incoming, file.bytes));
    }
}

async fn receive_stream(ctx: Arc<RunContext>, mut incoming: Incoming, mut recv: SideRecv) {
    loop {
        match recv.read_chunk(4 * CHUNK).await {
            Ok(Some(chunk)) => {
                ctx.files
                    .bytes_arrived
                    .fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
                let check = incoming.feed(&chunk);
                if check != Check::Partial {
                    return conclude(&ctx, &incoming, check, ctx.clock.now_us());
                }
            }
            Ok(None) => {
                let check = incoming.check();
                return conclude(&ctx, &incoming, check, ctx.clock.now_us());
            }
            Err(e) => return failed_arriving(&ctx, &incoming, &format!("its stream failed: {e}")),
        }
    }
}

/// A file stopped arriving before its end: failed, and why is a problem of the run (the first
/// outcome of a transfer only, and not once the run is over).
fn failed_arriving(ctx: &RunContext, incoming: &Incoming, why: &str) {
    let Some(key) = incoming.key else {
        return;
    };
    if ctx.files.end(key, Outcome::Failed) && !ctx.is_finished() {
        // A sender in another shard counts the transfer there; the reason is seen only here.
        let elsewhere = ctx.shard.is_some_and(|sh| !sh.owns(key.0 as usize));
        ctx.note_problem(format!(
            "file {} from client {} failed while arriving: {why}{}",
            key.1,
            key.0,
            if elsewhere {
                " (counted in files_failed by its sender's shard)"
            } else {
                ""
            }
        ));
    }
}

/// A file from a sender in another shard is not in this generator's ledger: it is entered as
/// it begins to arrive, with the intended start its name carries.
fn note_arrival(ctx: &RunContext, incoming: &Incoming) {
    if let (Some(_), Some(key), Some(intended)) = (ctx.shard, incoming.key, incoming.intended) {
        if ctx.files.planned(key).is_none() {
            ctx.files
                .arriving_from_elsewhere(key, intended, incoming.size());
        }
    }
}

/// Records how a file that arrived whole (or too long, or too short) ended.
fn conclude(ctx: &RunContext, incoming: &Incoming, check: Check, now_us: u64) {
    let Some(key) = incoming.key else {
        ctx.note_problem("a file that no simulated client sent".into());
        return;
    };
    let Some(planned) = ctx.files.planned(key) else {
        return;
    };
    let outcome = match check {
        Check::Verified => Outcome::Verified,
        Check::Corrupted => Outcome::Corrupted,
        Check::TooLong | Check::Partial => Outcome::Failed,
    };
    if !ctx.files.end(key, outcome) {
        return;
    }
    match outcome {
        Outcome::Verified => {
            // From another shard's sender: timed on the wall clock, in its measured period.
            let (latency, measured) = match planned.elsewhere {
                Some(i) => (ctx.clock.since_wall(i.wall_us, now_us), i.measured),
                None => (
                    now_us.saturating_sub(planned.intended_us),
                    ctx.in_window(planned.intended_us),
                ),
            };
            ctx.recorder.record(Metric::File, latency, measured);
            let size = incoming.size();
            ctx.files.bytes_verified.fetch_add(size, Relaxed);
            if measured {
                ctx.files.bytes_verified_in_window.fetch_add(size, Relaxed);
                ctx.files
                    .last_verified_in_window_us
                    .fetch_max(now_us, Relaxed);
            }
            let elapsed_us = now_us.saturating_sub(incoming.started_us).max(1);
            let kib_per_s = (size as f64 / 1024.0) / (elapsed_us as f64 / 1e6);
            let mut h = ctx
                .files
                .throughput
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            h.saturating_record((kib_per_s.round() as u64).max(1));
        }
        Outcome::Corrupted => ctx.note_problem(format!(
            "file {} from client {} arrived whole but its SHA-256 does not match",
            key.1, key.0
        )),
        _ => ctx.note_problem(format!(
            "file {} from client {} arrived with {} of {} bytes",
            key.1,
            key.0,
            incoming.received(),
            incoming.size()
        )),
    }
}
