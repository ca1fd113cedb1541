//! Deliveries written to a client that confirms what it reads, kept until it does.
//!
//! Writing a frame to a connection does not mean the client read it: an abrupt drop loses
//! whatever sat in socket buffers or in flight. A client that says Hello with
//! [`imbench_proto::HELLO_RECEIPTS`] counts the Deliver frames it has received on the
//! connection and sends the running count in `Receipt` frames. The session's writer keeps each
//! delivery it writes until a receipt covers it; when the session ends, the ones not covered go
//! back to the user's hold, in front of what was never written, and are delivered again on the
//! next connection. The client drops the copies it had already received by message id, so every
//! acknowledged message is received exactly once.
//!
//! The kept deliveries are bounded by a window: with that many unconfirmed, the writer writes
//! no more deliveries until a receipt arrives. They also stay charged to the session's queue
//! and the server's pool until confirmed, so that `--session-queue-bytes` and
//! `--max-queued-bytes` bound them as they bound deliveries not yet written. A client that
//! stops confirming is then a slow consumer like one that stops reading: its queue fills and
//! it is disconnected, and nothing is lost.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::router::{Delivery, Written};
use crate::store::HoldStore;

/// The count a client has confirmed, shared between a session's reader (which hears the
/// receipts) and its writer (which keeps the deliveries).
#[derive(Debug, Default)]
pub(crate) struct Confirmations {
    count: AtomicU64,
    arrived: Notify,
}

impl Confirmations {
    /// Notes a receipt for the first `count` deliveries. Counts only grow; an older, smaller
    /// count arriving late changes nothing.
    pub(crate) fn confirm(&self, count: u64) {
        self.count.fetch_max(count, Ordering::AcqRel);
        self.arrived.notify_one();
    }
}

/// The writer's side: deliveries written and not yet confirmed.
#[derive(Debug)]
pub(crate) struct Unconfirmed {
    confirmations: Arc<Confirmations>,
    window: usize,
    /// Deliveries written on this connection so far.
    written: u64,
    /// The last `kept.len()` of them, oldest first, each with whether it came from the hold.
    kept: VecDeque<(Delivery, bool)>,
    /// What receipts have covered since [`Unconfirmed::take_covered`] last took it: the
    /// charges the writer may now let go.
    covered: Written,
    /// The holds' copy on disk: a stored delivery is forgotten once a receipt covers it.
    store: Option<Arc<HoldStore>>,
}

impl Unconfirmed {
    pub(crate) fn new(
        confirmations: Arc<Confirmations>,
        window: usize,
        store: Option<Arc<HoldStore>>,
    ) -> Self {
        Self {
            confirmations,
            window: window.max(1),
            written: 0,
            kept: VecDeque::new(),
            covered: Written::default(),
            store,
        }
    }

    /// Notes that `d` was queued for writing; `carried` when it came from the hold.
    pub(crate) fn written(&mut self, d: Delivery, carried: bool) {
        self.written += 1;
        self.kept.push_back((d, carried));
    }

    /// The deliveries receipts have covered since the last call, for their charges to go.
    pub(crate) fn take_covered(&mut self) -> Written {
        std::mem::take(&mut self.covered)
    }

    /// Drops what receipts now cover.
    fn trim(&mut self) {
        // A client cannot have received what was never written to it: a count past that is
        // cut back, so that it does not cover deliveries written later.
        let confirmed = self
            .confirmations
            .count
            .fetch_min(self.written, Ordering::AcqRel)
            .min(self.written);
        let first_kept = self.written - self.kept.len() as u64;
        let covered = confirmed.saturating_sub(first_kept) as usize;
        for (d, carried) in self.kept.drain(..covered.min(self.kept.len())) {
            self.covered.add(&d, carried);
            if let (Some(store), Some(key)) = (&self.store, d.key) {
                store.forget(key);
            }
        }
        if self.kept.is_empty() && self.kept.capacity() > 64 {
            self.kept.shrink_to(64);
        }
    }

    /// How many more deliveries may be written before the next receipt.
    pub(crate) fn room(&mut self) -> usize {
        self.trim();
        self.window.saturating_sub(self.kept.len())
    }

    /// Whether any delivery is kept, waiting for a receipt.
    pub(crate) fn keeps_any(&self) -> bool {
        !self.kept.is_empty()
    }

    /// Waits until a receipt arrives (at once if one arrived since the last wait).
    pub(crate) async fn receipt(&self) {
        self.confirmations.arrived.notified().await;
    }

    /// The deliveries no receipt covers, oldest first.
    pub(crate) fn into_unconfirmed(mut self) -> VecDeque<Delivery> {
        self.trim();
        self.kept.into_iter().map(|(d, _)| d).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use imbench_proto::Dest;

    fn delivery(msg_id: u64) -> Delivery {
        Delivery {
            msg_id,
            from: 1,
            to: Dest::User(2),
            body: Bytes::from_static(b"x"),
            key: None,
        }
    }

    fn ids(q: &VecDeque<Delivery>) -> Vec<u64> {
        q.iter().map(|d| d.msg_id).collect()
    }

    /// A client's receipts and a writer's window of `window` over them, nothing written yet.
    fn window(window: usize) -> (Arc<Confirmations>, Unconfirmed) {
        let c = Arc::new(Confirmations::default());
        let u = Unconfirmed::new(c.clone(), window, None);
        (c, u)
    }

    #[test]
    fn keeps_what_no_receipt_covers() {
        let (c, mut u) = window(10);
        for id in 0..5 {
            u.written(delivery(id), false);
        }
        assert_eq!(u.room(), 5);
        c.confirm(3);
        assert_eq!(u.room(), 8);
        // A late, smaller receipt does not bring anything back.
        c.confirm(1);
        u.written(delivery(5), false);
        assert_eq!(ids(&u.into_unconfirmed()), vec![3, 4, 5]);
    }

    #[test]
    fn a_receipt_past_what_was_written_covers_only_what_was_written() {
        let (c, mut u) = window(4);
        u.written(delivery(0), false);
        c.confirm(1_000);
        assert_eq!(u.room(), 4);
        u.written(delivery(1), false);
        assert_eq!(ids(&u.into_unconfirmed()), vec![1]);
    }

    #[test]
    fn the_window_bounds_what_is_kept() {
        let (c, mut u) = window(2);
        u.written(delivery(0), false);
        u.written(delivery(1), false);
        assert_eq!(u.room(), 0);
        c.confirm(1);
        assert_eq!(u.room(), 1);
    }

    /// A delivery stays charged until a receipt covers it, then its charge is let go once, to
    /// the pool it came from.
    #[test]
    fn what_receipts_cover_is_handed_back_once_by_pool() {
        let (c, mut u) = window(10);
        u.written(delivery(0), true);
        u.written(delivery(1), false);
        u.written(delivery(2), false);
        assert_eq!(u.room(), 7);
        assert_eq!(u.take_covered(), Written::default());
        c.confirm(2);
        assert_eq!(u.room(), 9);
        let covered = u.take_covered();
        let one = delivery(0).held_cost();
        assert_eq!(
            covered,
            Written {
                queued: 1,
                queued_bytes: one,
                carried: 1,
                carried_bytes: one,
            }
        );
        assert_eq!(u.room(), 9);
        assert_eq!(u.take_covered(), Written::default(), "handed back twice");
    }

    #[tokio::test]
    async fn a_receipt_wakes_a_waiting_writer_even_if_it_came_first() {
        let (c, u) = window(1);
        c.confirm(1);
        // The permit stored by the receipt completes the wait; without it this would hang.
        tokio::time::timeout(std::time::Duration::from_secs(10), u.receipt())
            .await
            .expect("the receipt was not remembered");
    }
}
