//! One simulated client: connect and say Hello, then send on its schedule (open loop) while a
//! second task receives, checks and times everything that arrives.
//!
//! Open loop means the schedule does not wait for replies: a message due at `t` is stamped with
//! `t` as its intended send time, and if the client is late (because a write blocked) the
//! lateness counts in the latency (the coordinated-omission correction). A message id carries
//! its intended time, so an Ack is timed without any per-message state.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use imbench_proto::{Dest, Frame, PROTOCOL_VERSION};
use imbench_transport::{FrameReader, FrameWriter, FramedConnection, TransportError};

use crate::accounting::{Arrival, Inbox};
use crate::body::{self, Header};
use crate::metrics::Metric;
use crate::run::RunContext;
use crate::schedule::Schedule;

/// Bits of a message id below the intended time.
const MSG_ID_COUNTER_BITS: u32 = 20;

/// Counters of one client, written by its own two tasks only and read by the progress display.
#[derive(Debug, Default)]
pub struct ClientCounters {
    /// Hello answered with Welcome.
    pub connected: AtomicBool,
    /// The connection attempt failed or timed out.
    pub connect_failed: AtomicBool,
    /// The connection ended before the run did (server gone, or it closed us).
    pub disconnected: AtomicBool,
    /// This client will send nothing more (its schedule ended, or it never connected).
    pub done_sending: AtomicBool,
    /// Send frames written.
    pub sent: AtomicU64,
    /// Send frames written whose intended time is in the measured period.
    pub sent_in_window: AtomicU64,
    /// Acks received.
    pub acked: AtomicU64,
    /// Rejects received (the server refused the message).
    pub rejected: AtomicU64,
    /// Distinct messages received intact.
    pub delivered: AtomicU64,
    /// Messages received again.
    pub duplicated: AtomicU64,
    /// Messages that arrived after a later one of the same pair.
    pub reordered: AtomicU64,
    /// Deliveries whose body failed its checksum or named the wrong sender.
    pub corrupted: AtomicU64,
    /// Error frames, unexpected frames and transport failures.
    pub errors: AtomicU64,
}

/// Connects as `user`: handshake, Hello, Welcome.
pub async fn connect(ctx: &RunContext, user: u64) -> Result<FramedConnection, String> {
    let target = &ctx.target;
    let mut conn = target
        .connector
        .connect(target.addr, &target.server_name)
        .await
        .map_err(|e| format!("connecting to {}: {e}", target.addr))?;
    let token = target.secret.token_for(user);
    conn.writer
        .write_frame(&Frame::Hello {
            version: PROTOCOL_VERSION,
            user,
            token,
        })
        .await
        .map_err(|e| format!("sending Hello: {e}"))?;
    match conn.reader.read_frame().await {
        Ok(Some(Frame::Welcome { .. })) => Ok(conn),
        Ok(Some(Frame::Error { code, reason })) => {
            Err(format!("server refused Hello: {code}: {reason}"))
        }
        Ok(Some(other)) => Err(format!("expected Welcome, got {}", other.name())),
        Ok(None) => Err("server closed the connection after Hello".into()),
        Err(e) => Err(format!("waiting for Welcome: {e}")),
    }
}

/// Runs client `index` from its ramp-up slot to the end of the drain.
pub async fn run_client(ctx: Arc<RunContext>, index: usize) {
    let counters = &ctx.counters[index];
    let user = index as u64;
    let s = &ctx.scenario;
    let slot_us = (s.ramp_up.as_micros() as u64).saturating_mul(index as u64) / s.clients as u64;
    tokio::time::sleep_until(ctx.clock.at(slot_us)).await;

    let conn = {
        let _permit = ctx.connect_permits.acquire().await;
        let started = ctx.clock.now_us();
        match tokio::time::timeout(s.generator.connect_timeout, connect(&ctx, user)).await {
            Ok(Ok(conn)) => {
                ctx.recorder
                    .record(Metric::Connect, ctx.clock.now_us() - started, true);
                conn
            }
            Ok(Err(e)) => return connect_failed(&ctx, index, e),
            Err(_) => {
                let e = format!("no Welcome within {:?}", s.generator.connect_timeout);
                return connect_failed(&ctx, index, e);
            }
        }
    };
    counters.connected.store(true, Relaxed);
    let FramedConnection {
        reader,
        mut writer,
        link,
        ..
    } = conn;
    let receiver = tokio::spawn(receive(ctx.clone(), index, reader));

    // A client that connects after sending began starts its schedule when it connects: it does
    // not owe the messages it could not have sent.
    let start_us = ctx.send_start_us.max(ctx.clock.now_us());
    if let Err(e) = send_loop(&ctx, index, &mut writer, start_us).await {
        counters.errors.fetch_add(1, Relaxed);
        if !ctx.is_finished() {
            counters.disconnected.store(true, Relaxed);
            ctx.note_problem(format!("client {index}: sending failed: {e}"));
        }
    }
    counters.done_sending.store(true, Relaxed);
    ctx.wait_finished().await;
    // Say Bye; the server then closes, which ends the receiver.
    let bye = Frame::Bye {
        reason: "run finished".into(),
    };
    if writer.write_frame(&bye).await.is_ok() {
        let _ = writer.shutdown().await;
    }
    // The receiver ends when the server closes after Bye; past the wait, close regardless.
    let _ = tokio::time::timeout(Duration::from_secs(5), receiver).await;
    link.abort(0, "run finished");
}

fn connect_failed(ctx: &RunContext, index: usize, why: String) {
    ctx.counters[index].connect_failed.store(true, Relaxed);
    ctx.counters[index].done_sending.store(true, Relaxed);
    ctx.note_problem(format!("client {index} could not connect: {why}"));
}

async fn send_loop(
    ctx: &RunContext,
    index: usize,
    writer: &mut FrameWriter,
    start_us: u64,
) -> Result<(), TransportError> {
    let Some(mut schedule) = Schedule::new(&ctx.scenario, index, start_us) else {
        return Ok(());
    };
    let counters = &ctx.counters[index];
    let user = index as u64;
    let mut seqs = vec![0u64; schedule.partners.len()];
    let mut counter = 0u64;
    loop {
        let due = schedule.next_due();
        if due.at_us >= ctx.schedule_end_us {
            return Ok(());
        }
        if due.at_us > ctx.clock.now_us() {
            // Idle until due: any lateness on waking is the generator's own (timer, busy
            // threads), so it is what schedule lag measures. When a send is already overdue the
            // lateness came from a blocked write, which the corrected latency already carries.
            tokio::time::sleep_until(ctx.clock.at(due.at_us)).await;
            let lag = ctx.clock.now_us().saturating_sub(due.at_us);
            ctx.recorder
                .record(Metric::ScheduleLag, lag, ctx.in_window(due.at_us));
        }
        let seq = &mut seqs[due.partner];
        let header = Header {
            intended_us: due.at_us,
            sent_us: ctx.clock.now_us(),
            sender: user,
            seq: *seq,
        };
        *seq += 1;
        let body = body::encode(&header, due.size, &ctx.payload);
        let msg_id =
            (due.at_us << MSG_ID_COUNTER_BITS) | (counter & ((1 << MSG_ID_COUNTER_BITS) - 1));
        counter += 1;
        let to = Dest::User(schedule.partners[due.partner]);
        // Counted before the write: the drain waits for every counted message, so none can
        // still be on its way out when the run declares itself drained.
        counters.sent.fetch_add(1, Relaxed);
        if ctx.in_window(due.at_us) {
            counters.sent_in_window.fetch_add(1, Relaxed);
        }
        writer
            .write_frame(&Frame::Send { msg_id, to, body })
            .await?;
    }
}

async fn receive(ctx: Arc<RunContext>, index: usize, mut reader: FrameReader) {
    let c = &ctx.counters[index];
    let mut inbox = Inbox::default();
    loop {
        let frame = match reader.read_frame().await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                if !ctx.is_finished() {
                    c.errors.fetch_add(1, Relaxed);
                    c.disconnected.store(true, Relaxed);
                    ctx.note_problem(format!("client {index}: connection lost: {e}"));
                }
                break;
            }
        };
        let now = ctx.clock.now_us();
        match frame {
            Frame::Deliver { from, body, .. } => match body::decode(&body) {
                Ok(h) if h.sender == from => match inbox.receive(from, h.seq) {
                    Arrival::New { reordered } => {
                        c.delivered.fetch_add(1, Relaxed);
                        if reordered {
                            c.reordered.fetch_add(1, Relaxed);
                        }
                        let measured = ctx.in_window(h.intended_us);
                        let r = &ctx.recorder;
                        r.record(Metric::Direct, now.saturating_sub(h.intended_us), measured);
                        r.record(
                            Metric::DirectUncorrected,
                            now.saturating_sub(h.sent_us),
                            measured,
                        );
                    }
                    Arrival::Duplicate => {
                        c.duplicated.fetch_add(1, Relaxed);
                    }
                },
                _ => {
                    c.corrupted.fetch_add(1, Relaxed);
                }
            },
            Frame::Ack { msg_id } => {
                c.acked.fetch_add(1, Relaxed);
                let intended = msg_id >> MSG_ID_COUNTER_BITS;
                ctx.recorder.record(
                    Metric::Ack,
                    now.saturating_sub(intended),
                    ctx.in_window(intended),
                );
            }
            Frame::Reject { .. } => {
                c.rejected.fetch_add(1, Relaxed);
            }
            Frame::Pong { .. } => {}
            Frame::Bye { .. } => break,
            Frame::Error { code, reason } => {
                c.errors.fetch_add(1, Relaxed);
                if !ctx.is_finished() {
                    c.disconnected.store(true, Relaxed);
                    ctx.note_problem(format!("client {index}: server sent {code}: {reason}"));
                }
                break;
            }
            other => {
                c.errors.fetch_add(1, Relaxed);
                ctx.note_problem(format!("client {index}: unexpected {} frame", other.name()));
            }
        }
    }
}
