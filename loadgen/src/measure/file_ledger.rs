//! The run-wide file ledger: every transfer offered, and exactly one outcome for each
//! (verified, corrupted, refused, failed), with the bytes and per-file throughput of those
//! verified.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use hdrhistogram::Histogram;
use imbench_proto::ErrorCode;

use crate::workload::files::{Intended, Key};

/// How a transfer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every byte arrived and the digest matched.
    Verified,
    /// Every byte arrived and the digest did not match.
    Corrupted,
    /// The server refused the offer (the code says why).
    Refused(ErrorCode),
    /// The transfer ended early: cancelled, a side went away, or the connection broke.
    Failed,
    /// The sender wrote every byte to a recipient in another generator (a shard): its part is
    /// done, and the outcome is the recipient's generator's to record. Counted nowhere.
    HandedOver,
}

struct Entry {
    intended_us: u64,
    size: u64,
    accepted: bool,
    outcome: Option<Outcome>,
    /// Set for a transfer from a sender in another generator (a shard), which this one only
    /// receives: its intended start, as the file name carries it.
    elsewhere: Option<Intended>,
}

/// What the ledger knows of a transfer before its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    /// Intended start on the run's clock (of a transfer this generator sent).
    pub intended_us: u64,
    /// Bytes.
    pub size: u64,
    /// For a transfer from another generator's sender: its intended start on the wall clock.
    pub elsewhere: Option<Intended>,
}

/// Every transfer of the run and its outcome; the first outcome reported wins.
pub struct FileLedger {
    entries: Mutex<HashMap<Key, Entry>>,
    /// Transfers accepted and not yet ended: chat latency is split on this.
    pub moving: AtomicI64,
    /// Transfers started and not yet ended.
    pub open: AtomicI64,
    /// Offers made.
    pub sent: AtomicU64,
    /// Of those, offers whose intended start is in the measured period.
    pub sent_in_window: AtomicU64,
    /// Offers accepted.
    pub accepted: AtomicU64,
    /// Offers refused.
    pub refused: AtomicU64,
    /// Files verified.
    pub verified: AtomicU64,
    /// Files whose digest did not match.
    pub corrupted: AtomicU64,
    /// Transfers ended early.
    pub failed: AtomicU64,
    /// Bytes of files received so far, whole or not: news that the server still relays them
    /// (the watchdog's, while transfers are all that is left).
    pub bytes_arrived: AtomicU64,
    /// Bytes of verified files.
    pub bytes_verified: AtomicU64,
    /// Bytes of verified files whose intended start is in the measured period.
    pub bytes_verified_in_window: AtomicU64,
    /// When the last of those was verified (µs since run start).
    pub last_verified_in_window_us: AtomicU64,
    /// Per verified file: size / (FileIncoming → verified), in KiB/s.
    pub throughput: Mutex<Histogram<u64>>,
    /// The run has ended ([`FileLedger::close`]).
    closed: AtomicBool,
}

impl Default for FileLedger {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            moving: AtomicI64::new(0),
            open: AtomicI64::new(0),
            sent: AtomicU64::new(0),
            sent_in_window: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            verified: AtomicU64::new(0),
            corrupted: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            bytes_arrived: AtomicU64::new(0),
            bytes_verified: AtomicU64::new(0),
            bytes_verified_in_window: AtomicU64::new(0),
            last_verified_in_window_us: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            // Bounds are constants hdrhistogram accepts: 1 KiB/s to 1 TiB/s.
            throughput: Mutex::new(
                Histogram::new_with_bounds(1, 1 << 30, 3)
                    .unwrap_or_else(|e| panic!("histogram bounds: {e}")),
            ),
        }
    }
}

impl FileLedger {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A transfer starts (its offer is about to be prepared); `measured` when its intended
    /// start is in the measured period. Returns how many started before it in the run.
    pub fn start(&self, key: Key, intended_us: u64, size: u64, measured: bool) -> u64 {
        self.lock().insert(
            key,
            Entry {
                intended_us,
                size,
                accepted: false,
                outcome: None,
                elsewhere: None,
            },
        );
        self.open.fetch_add(1, Relaxed);
        if measured {
            self.sent_in_window.fetch_add(1, Relaxed);
        }
        self.sent.fetch_add(1, Relaxed)
    }

    /// A file from a sender in another generator (a shard) begins to arrive: this generator
    /// records how it ends at the recipient. It is not counted as sent, nor as open (the
    /// sender's generator counts those).
    pub fn arriving_from_elsewhere(&self, key: Key, intended: Intended, size: u64) {
        let mut entries = self.lock();
        if entries.contains_key(&key) {
            return;
        }
        entries.insert(
            key,
            Entry {
                intended_us: 0,
                size,
                accepted: true,
                outcome: None,
                elsewhere: Some(intended),
            },
        );
        self.moving.fetch_add(1, Relaxed);
    }

    /// The server accepted the offer.
    pub fn accepted(&self, key: Key) {
        let mut entries = self.lock();
        if let Some(e) = entries.get_mut(&key) {
            if !e.accepted && e.outcome.is_none() {
                e.accepted = true;
                self.accepted.fetch_add(1, Relaxed);
                self.moving.fetch_add(1, Relaxed);
            }
        }
    }

    /// What the ledger knows of a transfer, if it knows it.
    pub fn planned(&self, key: Key) -> Option<Planned> {
        self.lock().get(&key).map(|e| Planned {
            intended_us: e.intended_us,
            size: e.size,
            elsewhere: e.elsewhere,
        })
    }

    /// The run has ended: the connections it closes now break off the transfers still under
    /// way, which stay unfinished rather than failed. A file that arrives whole meanwhile is
    /// still verified, as its latency is recorded.
    pub fn close(&self) {
        self.closed.store(true, Relaxed);
    }

    /// Records how a transfer ended. Returns false when it had already ended (the other side
    /// saw it first) or is unknown, or for a failure after the run ended ([`FileLedger::close`]).
    pub fn end(&self, key: Key, outcome: Outcome) -> bool {
        if outcome == Outcome::Failed && self.closed.load(Relaxed) {
            return false;
        }
        let mut entries = self.lock();
        let Some(e) = entries.get_mut(&key) else {
            return false;
        };
        if e.outcome.is_some() {
            return false;
        }
        e.outcome = Some(outcome);
        if e.accepted {
            self.moving.fetch_sub(1, Relaxed);
        }
        let from_elsewhere = e.elsewhere.is_some();
        if !from_elsewhere {
            self.open.fetch_sub(1, Relaxed);
        }
        let counter = match outcome {
            Outcome::Verified => Some(&self.verified),
            Outcome::Corrupted => Some(&self.corrupted),
            Outcome::Refused(_) => Some(&self.refused),
            // A file from another generator that broke off here is that generator's failure
            // or, once it handed the file over, unfinished when the shards are merged.
            Outcome::Failed if from_elsewhere => None,
            Outcome::Failed => Some(&self.failed),
            Outcome::HandedOver => None,
        };
        if let Some(c) = counter {
            c.fetch_add(1, Relaxed);
        }
        true
    }

    /// Ends every open transfer of `sender` as failed (its connection broke).
    pub fn fail_all_of(&self, sender: u64) {
        let keys: Vec<Key> = self
            .lock()
            .iter()
            .filter(|(k, e)| k.0 == sender && e.outcome.is_none())
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            self.end(key, Outcome::Failed);
        }
    }

    /// Transfers started and not ended.
    pub fn unfinished(&self) -> u64 {
        self.open.load(Relaxed).max(0) as u64
    }

    /// The throughput histogram so far.
    pub fn throughput(&self) -> Histogram<u64> {
        self.throughput
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// What the file ledger holds at the end of a run, as plain numbers.
#[derive(Debug, Clone)]
pub struct FileTotals {
    /// Transfers offered.
    pub sent: u64,
    /// Of those, transfers due in the measured period.
    pub sent_in_window: u64,
    /// Offers the server refused.
    pub refused: u64,
    /// Files verified whole.
    pub verified: u64,
    /// Files whole with a wrong digest.
    pub corrupted: u64,
    /// Transfers that ended early.
    pub failed: u64,
    /// Transfers still under way.
    pub unfinished: u64,
    /// Bytes of verified files.
    pub bytes_verified: u64,
    /// Of those, bytes of files whose transfer was due in the measured period.
    pub bytes_verified_in_window: u64,
    /// When the last of the files due in the measured period was verified (run clock, µs).
    pub last_verified_in_window_us: u64,
    /// Per-file throughput, KiB/s.
    pub throughput: Histogram<u64>,
}

impl FileLedger {
    /// The ledger's figures now.
    pub fn totals(&self) -> FileTotals {
        FileTotals {
            sent: self.sent.load(Relaxed),
            sent_in_window: self.sent_in_window.load(Relaxed),
            refused: self.refused.load(Relaxed),
            verified: self.verified.load(Relaxed),
            corrupted: self.corrupted.load(Relaxed),
            failed: self.failed.load(Relaxed),
            unfinished: self.unfinished(),
            bytes_verified: self.bytes_verified.load(Relaxed),
            bytes_verified_in_window: self.bytes_verified_in_window.load(Relaxed),
            last_verified_in_window_us: self.last_verified_in_window_us.load(Relaxed),
            throughput: self.throughput(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_keeps_the_first_outcome() {
        let l = FileLedger::default();
        l.start((1, 1), 10, 100, true);
        l.accepted((1, 1));
        assert_eq!(l.moving.load(Relaxed), 1);
        assert!(l.end((1, 1), Outcome::Verified));
        assert!(!l.end((1, 1), Outcome::Failed));
        assert_eq!(l.verified.load(Relaxed), 1);
        assert_eq!(l.failed.load(Relaxed), 0);
        assert_eq!((l.moving.load(Relaxed), l.unfinished()), (0, 0));
        l.start((2, 1), 10, 100, true);
        l.fail_all_of(2);
        assert_eq!(l.failed.load(Relaxed), 1);
    }

    #[test]
    fn after_the_run_a_transfer_broken_off_stays_unfinished_and_one_completed_counts() {
        let l = FileLedger::default();
        for sender in [1, 2] {
            l.start((sender, 1), 10, 100, true);
            l.accepted((sender, 1));
        }
        l.close();
        l.fail_all_of(1);
        assert!(!l.end((1, 1), Outcome::Failed));
        assert!(l.end((2, 1), Outcome::Verified));
        assert_eq!((l.failed.load(Relaxed), l.verified.load(Relaxed)), (0, 1));
        assert_eq!(l.unfinished(), 1);
    }

    #[test]
    fn a_transfer_between_shards_counts_once_on_each_side() {
        let at = Intended {
            wall_us: 5,
            measured: true,
        };
        // The sender's generator: sent, accepted, handed over; nothing open or moving after.
        let sender = FileLedger::default();
        sender.start((1, 1), 10, 100, true);
        sender.accepted((1, 1));
        assert!(sender.end((1, 1), Outcome::HandedOver));
        assert_eq!(
            (sender.sent.load(Relaxed), sender.verified.load(Relaxed)),
            (1, 0)
        );
        assert_eq!((sender.moving.load(Relaxed), sender.unfinished()), (0, 0));
        // The recipient's: moving while it arrives, verified, never sent or open.
        let recipient = FileLedger::default();
        recipient.arriving_from_elsewhere((1, 1), at, 100);
        assert_eq!(recipient.moving.load(Relaxed), 1);
        assert_eq!(
            recipient.planned((1, 1)).and_then(|p| p.elsewhere),
            Some(at)
        );
        assert!(recipient.end((1, 1), Outcome::Verified));
        assert_eq!(recipient.verified.load(Relaxed), 1);
        assert_eq!(recipient.sent.load(Relaxed), 0);
        assert_eq!(
            (recipient.moving.load(Relaxed), recipient.unfinished()),
            (0, 0)
        );
        // One that broke off at the recipient is not its failure to count.
        recipient.arriving_from_elsewhere((1, 2), at, 100);
        assert!(recipient.end((1, 2), Outcome::Failed));
        assert_eq!(recipient.failed.load(Relaxed), 0);
        assert_eq!(recipient.unfinished(), 0);
    }
}
