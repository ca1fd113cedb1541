//! Exactly-once accounting: what each recipient received from each sender, so that after the
//! drain every message is classed as delivered, duplicated, reordered or lost.
//!
//! Definitions (per sender → recipient pair, `seq` counting from 0 in send order):
//! - a **duplicate** is a delivery of a `seq` already received;
//! - a delivery is **reordered** when a higher `seq` of the pair arrived before it;
//! - **delivered** counts distinct `seq`s received intact;
//! - **lost** = sent − rejected − delivered, over the whole run, after the drain.

use std::collections::{BTreeSet, HashMap};

/// What one delivery turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// First time this message arrived; `reordered` if a later one of the pair came first.
    New {
        /// A later message of the same pair arrived earlier.
        reordered: bool,
    },
    /// Already received.
    Duplicate,
}

/// One recipient's view of one sender.
#[derive(Debug, Default)]
struct PairState {
    /// Every seq below this has arrived.
    contiguous: u64,
    /// Seqs above `contiguous` that arrived (normally empty: delivery is in order).
    ahead: BTreeSet<u64>,
    /// Highest seq seen, if any.
    highest: Option<u64>,
}

/// Everything one recipient received, by sender.
#[derive(Debug, Default)]
pub struct Inbox {
    pairs: HashMap<u64, PairState>,
}

impl Inbox {
    /// Notes the arrival of `seq` from `sender`.
    pub fn receive(&mut self, sender: u64, seq: u64) -> Arrival {
        let p = self.pairs.entry(sender).or_default();
        if seq < p.contiguous || p.ahead.contains(&seq) {
            return Arrival::Duplicate;
        }
        let reordered = p.highest.is_some_and(|h| seq < h);
        p.highest = Some(p.highest.map_or(seq, |h| h.max(seq)));
        if seq == p.contiguous {
            p.contiguous += 1;
            while p.ahead.remove(&p.contiguous) {
                p.contiguous += 1;
            }
        } else {
            p.ahead.insert(seq);
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
}
