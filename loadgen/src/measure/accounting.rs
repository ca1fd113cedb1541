//! Exactly-once accounting: what each recipient received from each sender, so that after the
//! drain every message is classed as delivered, duplicated, reordered or lost.
//!
//! Definitions (per sender → recipient pair, `seq` counting from 0 in send order):
//! - a **redelivery** is a delivery of a `seq` already received on an earlier connection of the
//!   recipient: the server could not know the first copy arrived (the connection dropped before
//!   the client's receipt reached it), so it sent it again, and the client dropped it;
//! - a **duplicate** is any other delivery of a `seq` already received (a fault, unless the
//!   sender sent it again itself; see [`crate::workload::churn`]);
//! - a delivery is **reordered** when a higher `seq` of the pair arrived before it;
//! - **delivered** counts distinct `seq`s received intact;
//! - **lost** = sent − rejected − delivered, over the whole run, after the drain.

use std::collections::{BTreeMap, HashMap};

/// What one delivery turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// First time this message arrived; `reordered` if a later one of the pair came first.
    New {
        /// A later message of the same pair arrived earlier.
        reordered: bool,
    },
    /// Already received on this connection.
    Duplicate,
    /// Already received, on an earlier connection.
    Redelivered,
}

/// One recipient's view of one sender.
#[derive(Debug, Default)]
struct PairState {
    /// Every seq below this has arrived.
    contiguous: u64,
    /// Seqs above `contiguous` that arrived, with the connection they arrived on (normally
    /// empty: delivery is in order).
    ahead: BTreeMap<u64, u32>,
    /// Highest seq seen, if any.
    highest: Option<u64>,
    /// The connection this pair last saw a delivery on.
    connection: u32,
    /// `contiguous` when that connection's first delivery of this pair arrived: every seq
    /// below it arrived on an earlier connection.
    before_connection: u64,
}

/// Everything one recipient received, by sender.
#[derive(Debug, Default)]
pub struct Inbox {
    pairs: HashMap<u64, PairState>,
    /// Connections before the current one.
    connection: u32,
}

impl Inbox {
    /// Notes that the recipient connected again: what arrives from now on arrives on a new
    /// connection.
    pub fn new_connection(&mut self) {
        self.connection += 1;
    }

    /// Notes the arrival of `seq` from `sender`.
    pub fn receive(&mut self, sender: u64, seq: u64) -> Arrival {
        let connection = self.connection;
        let p = self.pairs.entry(sender).or_default();
        if p.connection != connection {
            p.connection = connection;
            p.before_connection = p.contiguous;
        }
        if seq < p.contiguous || p.ahead.contains_key(&seq) {
            // A seq merged into `contiguous` from `ahead` during this connection counts as
            // received on this one: a rare case (it needs reordering) that errs towards
            // reporting a duplicate, never towards hiding one.
            let earlier =
                seq < p.before_connection || p.ahead.get(&seq).is_some_and(|&c| c < connection);
            return if earlier {
                Arrival::Redelivered
            } else {
                Arrival::Duplicate
            };
        }
        let reordered = p.highest.is_some_and(|h| seq < h);
        p.highest = Some(p.highest.map_or(seq, |h| h.max(seq)));
        if seq == p.contiguous {
            p.contiguous += 1;
            while p.ahead.remove(&p.contiguous).is_some() {
                p.contiguous += 1;
            }
        } else {
            p.ahead.insert(seq, connection);
        }
        Arrival::New { reordered }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_in_order_reordered_and_duplicates() {
        let mut inbox = Inbox::default();
        assert_eq!(inbox.receive(1, 0), Arrival::New { reordered: false });
        assert_eq!(inbox.receive(1, 2), Arrival::New { reordered: false });
        assert_eq!(inbox.receive(1, 1), Arrival::New { reordered: true });
        assert_eq!(inbox.receive(1, 1), Arrival::Duplicate);
        assert_eq!(inbox.receive(1, 2), Arrival::Duplicate);
        assert_eq!(inbox.receive(1, 0), Arrival::Duplicate);
        assert_eq!(inbox.receive(2, 0), Arrival::New { reordered: false });
        assert_eq!(inbox.receive(1, 3), Arrival::New { reordered: false });
    }

    #[test]
    fn a_copy_from_before_the_reconnect_is_a_redelivery_and_a_second_one_after_it_a_duplicate() {
        let mut inbox = Inbox::default();
        assert_eq!(inbox.receive(1, 0), Arrival::New { reordered: false });
        assert_eq!(inbox.receive(1, 1), Arrival::New { reordered: false });
        assert_eq!(inbox.receive(1, 3), Arrival::New { reordered: false });
        inbox.new_connection();
        assert_eq!(inbox.receive(1, 1), Arrival::Redelivered);
        assert_eq!(inbox.receive(1, 3), Arrival::Redelivered);
        assert_eq!(inbox.receive(1, 2), Arrival::New { reordered: true });
        assert_eq!(inbox.receive(1, 4), Arrival::New { reordered: false });
        assert_eq!(inbox.receive(1, 4), Arrival::Duplicate);
        // A pair first heard from after the reconnect has nothing from before it.
        assert_eq!(inbox.receive(2, 0), Arrival::New { reordered: false });
        assert_eq!(inbox.receive(2, 0), Arrival::Duplicate);
    }
}
