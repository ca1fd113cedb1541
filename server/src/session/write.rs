//! A session's writing side: everything to the client, in one coalesced write per wake-up.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use imbench_proto::{ErrorCode, Frame};
use imbench_transport::framed::FrameWriter;
use imbench_transport::TransportError;
use tokio::sync::{mpsc, oneshot};

use super::{Ending, IDLE_BUFFER, WRITE_BATCH, WRITE_BATCH_BYTES};

/// How long the last writes of a stopping server may take, however slowly the client reads:
/// less than the session's close grace, so that what was not taken is known before the
/// connection is cut.
const SHUTDOWN_WRITES: Duration = Duration::from_secs(1);
use crate::receipts::Unconfirmed;
use crate::router::{Delivery, Kick, Outbound, Pools, SessionLoad, Written};
use crate::stats::Stats;
use crate::store::HoldStore;

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

/// The next receipt while deliveries are kept unconfirmed; pending forever otherwise.
async fn next_receipt(receipts: &Option<Unconfirmed>) {
    match receipts {
        Some(r) if r.keeps_any() => r.receipt().await,
        _ => std::future::pending().await,
    }
}

/// The session's writing side, a task of its own that alone writes to the connection: Welcome,
/// then what was held for the user, then whatever its queue brings, until the reader tells it
/// how the session ended.
pub(super) struct SessionWriter {
    /// Frames to the client.
    pub writer: FrameWriter,
    /// The session's queue (deliveries from the router, answers from the reader).
    pub rx: mpsc::Receiver<Outbound>,
    /// The server-wide charges for waiting deliveries, told what has been written.
    pub pools: Arc<Pools>,
    /// This session's share of them.
    pub load: Arc<SessionLoad>,
    /// What was held for the user while it was offline, written first (carried: charged to
    /// the hold until written).
    pub held: VecDeque<Delivery>,
    /// File frames for a client without side streams, yielding to chat between chunks.
    pub lane: Option<mpsc::Receiver<Frame>>,
    /// Deliveries written and not yet confirmed, when the client asked for receipts.
    pub receipts: Option<Unconfirmed>,
    /// The first frame.
    pub welcome: Frame,
    /// How the session ended, from the reader.
    pub stop: oneshot::Receiver<Ending>,
    /// Ends the session when the client stops accepting bytes.
    pub kick: Arc<Kick>,
    /// How long the client may accept no byte while there is something to write.
    pub write_timeout: Duration,
    /// Where a stalled client is counted.
    pub stats: Arc<Stats>,
    /// The holds' copy on disk, told when a stored delivery has reached its client.
    pub store: Option<Arc<HoldStore>>,
}

/// One frame in the write being built: where its bytes end in the batch, and, for a delivery,
/// which pool it is charged to.
struct InBatch {
    end: usize,
    out: Outbound,
    carried: bool,
}

/// What the writer hands back when it stops.
pub(super) struct Unwritten {
    /// The session's queue, for the router to empty into the user's hold.
    pub rx: mpsc::Receiver<Outbound>,
    /// Every delivery not written, or written and not confirmed (those first, in the order
    /// written).
    pub deliveries: VecDeque<Delivery>,
    /// How many of them were written.
    pub unconfirmed: usize,
}

impl SessionWriter {
    /// Writes until told to stop, then hands back what it did not deliver.
    pub(super) async fn run(self) -> Unwritten {
        let SessionWriter {
            mut writer,
            mut rx,
            pools,
            load,
            held,
            mut lane,
            mut receipts,
            welcome,
            mut stop,
            kick,
            write_timeout,
            stats,
            store,
        } = self;
        // Without receipts, written is as far as the server can know a stored delivery got;
        // with them, the receipt that covers it has it forgotten (Unconfirmed).
        let confirms = receipts.is_some();
        let forget_written = |d: &Delivery| {
            if let (Some(store), Some(key), false) = (&store, d.key, confirms) {
                store.forget(key);
            }
        };
        // The first `carried` deliveries of `pending` came from the hold.
        let mut carried = held.len();
        let mut pending: VecDeque<Outbound> = held.into_iter().map(Outbound::Deliver).collect();
        let mut in_batch: Vec<InBatch> = Vec::new();
        // Both buffers start empty and are trimmed after a burst: at 10,000 mostly idle sessions a
        // pre-sized batch of 512 deliveries would cost more memory than the QUIC connection itself.
        let mut batch = Vec::new();
        let mut healthy = writer.write_frame(&welcome).await.is_ok();
        let ending = loop {
            if !healthy {
                break None;
            }
            let mut file_frame = None;
            let mut room = usize::MAX;
            if let Some(r) = receipts.as_mut() {
                room = r.room();
                // Charged until confirmed, so that the queue bounds hold what is kept too.
                pools.written(&load, r.take_covered());
            }
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
                        // Still charged: a delivery leaves the account once it is written.
                        pending.extend(batch.drain(..));
                    }
                    frame = next_file_frame(&mut lane) => file_frame = Some(frame),
                    // What a receipt covers lets go of its charge now, not when something
                    // next comes to write: an idle client's last burst must not keep counting
                    // against its queue bound (a kick), the server's (busy) or its hold's.
                    _ = next_receipt(&receipts) => continue,
                }
            } else if let Ok(ending) = stop.try_recv() {
                break Some(ending);
            }
            while in_batch.len() < WRITE_BATCH && writer.pending() < WRITE_BATCH_BYTES {
                let Some(o) = pending.pop_front() else {
                    break;
                };
                let mut from_hold = false;
                if let Outbound::Deliver(d) = &o {
                    if room == 0 {
                        pending.push_front(o);
                        break;
                    }
                    room -= 1;
                    from_hold = count_off_carried(&mut carried);
                    if let Some(r) = receipts.as_mut() {
                        r.written(d.clone(), from_hold);
                    }
                }
                healthy &= writer.queue(&o.to_frame()).is_ok();
                in_batch.push(InBatch {
                    end: writer.pending(),
                    out: o,
                    carried: from_hold,
                });
            }
            // One file chunk per write at most, after the chat frames: a chat frame waits behind
            // at most one chunk here (the socket's own buffer is another matter).
            if file_frame.is_none() {
                file_frame = lane.as_mut().and_then(|l| l.try_recv().ok());
            }
            if let Some(frame) = file_frame {
                healthy &= writer.queue(&frame).is_ok();
            }
            let accepted = match writer.flush_progressing(write_timeout).await {
                Ok(()) => usize::MAX,
                Err(TransportError::Stalled { accepted, .. }) => {
                    stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
                    kick.kick(ErrorCode::SLOW_CONSUMER);
                    healthy = false;
                    accepted
                }
                // The connection is gone: what it took before is as good as written (the
                // client may or may not have read it; receipts are how a client makes sure),
                // what it did not take goes back to the hold.
                Err(TransportError::BrokenWrite { accepted, source }) => {
                    tracing::debug!("session writer: {source}");
                    healthy = false;
                    accepted
                }
                Err(e) => {
                    tracing::debug!("session writer: {e}");
                    healthy = false;
                    0
                }
            };
            let mut written = Written::default();
            let mut not_sent = Vec::new();
            for f in in_batch.drain(..) {
                if let Outbound::Deliver(d) = &f.out {
                    if receipts.is_some() {
                        // Kept, and charged, until a receipt covers it.
                    } else if f.end <= accepted {
                        written.add(d, f.carried);
                        forget_written(d);
                    } else {
                        // Not all of its bytes reached the client, which cannot have read it:
                        // it goes back with the rest (the unconfirmed ones already do).
                        carried += usize::from(f.carried);
                        not_sent.push(f.out);
                    }
                }
            }
            pools.written(&load, written);
            for o in not_sent.into_iter().rev() {
                pending.push_front(o);
            }
            if pending.is_empty() && pending.capacity() > IDLE_BUFFER {
                pending.shrink_to(IDLE_BUFFER);
                batch.shrink_to(IDLE_BUFFER);
            }
        };
        match ending {
            Some(Ending::Shutdown) if healthy => {
                while let Ok(o) = rx.try_recv() {
                    pending.push_back(o);
                }
                let mut ok = true;
                // The server is going away: a receipt could no longer change anything, so the
                // window does not hold these back.
                let mut last_written = Vec::new();
                for o in pending.drain(..) {
                    ok &= writer.queue(&o.to_frame()).is_ok();
                    // Kept like any other: the reader has stopped, so no receipt covers these
                    // and they go back to the hold, for the client to drop the copies it got.
                    if let Outbound::Deliver(d) = &o {
                        let from_hold = count_off_carried(&mut carried);
                        if let Some(r) = receipts.as_mut() {
                            r.written(d.clone(), from_hold);
                        }
                    }
                    last_written.push((writer.pending(), o));
                }
                let bye = Frame::Bye {
                    reason: "server shutting down".into(),
                };
                ok &= writer.queue(&bye).is_ok();
                // Within the session's close grace, after which the connection is cut: what a
                // slow reader has not taken by then is known, and goes back to the hold (to
                // disk with --data-dir) rather than being taken for written.
                let accepted = if !ok {
                    0
                } else {
                    let deadline = tokio::time::Instant::now() + SHUTDOWN_WRITES;
                    match writer.flush_by(deadline).await {
                        Ok(()) => {
                            let _ = writer.shutdown().await;
                            usize::MAX
                        }
                        Err(
                            TransportError::Stalled { accepted, .. }
                            | TransportError::BrokenWrite { accepted, .. },
                        ) => accepted,
                        Err(_) => 0,
                    }
                };
                for (end, o) in last_written {
                    match &o {
                        Outbound::Deliver(d) if end <= accepted => forget_written(d),
                        // With receipts these are kept already, as unconfirmed.
                        Outbound::Deliver(_) if receipts.is_none() => pending.push_back(o),
                        _ => {}
                    }
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
        Unwritten {
            rx,
            deliveries: unwritten,
            unconfirmed,
        }
    }
}

/// Whether the next delivery to be written is one of the `carried` ones (those from the hold,
/// which come first), counting it off: it stays charged to the hold, not the queue.
fn count_off_carried(carried: &mut usize) -> bool {
    let from_hold = *carried > 0;
    *carried = carried.saturating_sub(1);
    from_hold
}
