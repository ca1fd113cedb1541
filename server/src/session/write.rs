//! A session's writing side: everything to the client, in one coalesced write per wake-up.

use std::collections::VecDeque;
use std::sync::Arc;

use imbench_proto::Frame;
use imbench_transport::framed::FrameWriter;
use tokio::sync::{mpsc, oneshot};

use super::{Ending, IDLE_BUFFER, WRITE_BATCH};
use crate::receipts::Unconfirmed;
use crate::router::{Delivery, Outbound, QueueMeter};

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

/// The session's writing side, a task of its own that alone writes to the connection: Welcome,
/// then what was held for the user, then whatever its queue brings, until the reader tells it
/// how the session ended.
pub(super) struct SessionWriter {
    /// Frames to the client.
    pub writer: FrameWriter,
    /// The session's queue (deliveries from the router, answers from the reader).
    pub rx: mpsc::Receiver<Outbound>,
    /// The server-wide count of queued bytes, told what leaves the queue.
    pub meter: Arc<QueueMeter>,
    /// What was held for the user while it was offline, written first.
    pub held: VecDeque<Delivery>,
    /// File frames for a client without side streams, yielding to chat between chunks.
    pub lane: Option<mpsc::Receiver<Frame>>,
    /// Deliveries written and not yet confirmed, when the client asked for receipts.
    pub receipts: Option<Unconfirmed>,
    /// The first frame.
    pub welcome: Frame,
    /// How the session ended, from the reader.
    pub stop: oneshot::Receiver<Ending>,
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
            meter,
            held,
            mut lane,
            mut receipts,
            welcome,
            mut stop,
        } = self;
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
        Unwritten {
            rx,
            deliveries: unwritten,
            unconfirmed,
        }
    }
}
