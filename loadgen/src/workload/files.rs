//! File transfers of the simulated clients: what each file contains, when each sender starts
//! one, how its bytes leave (a QUIC stream of its own, or FileChunk frames on the one
//! connection), how the recipient verifies them, and the run-wide ledger that gives every
//! transfer exactly one outcome.
//!
//! A file's bytes are a pseudo-random stream keyed by the run's seed, the sender and the
//! transfer id, so the sender never holds a file: it hashes the stream once (off the async
//! threads) for the offer, then generates it again chunk by chunk as it sends. The file name
//! carries the sender and transfer id, which is how the recipient finds the transfer in the
//! ledger.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use bytes::Bytes;
use hdrhistogram::Histogram;
use imbench_proto::{ErrorCode, SHA256_LEN};
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};

use crate::config::scenario::{Arrival, FileSize, Scenario};

/// Bytes per FileChunk frame, and per piece written to a QUIC file stream.
pub const CHUNK: usize = 32 * 1024;

/// A transfer, named run-wide: (sender, sender's transfer id).
pub type Key = (u64, u64);

/// The file name that carries a transfer's key.
pub fn file_name(key: Key) -> String {
    format!("imbench-{}-{}.bin", key.0, key.1)
}

/// The key a file name carries, if it is one of ours.
pub fn key_of(name: &str) -> Option<Key> {
    let rest = name.strip_prefix("imbench-")?.strip_suffix(".bin")?;
    let (sender, id) = rest.split_once('-')?;
    Some((sender.parse().ok()?, id.parse().ok()?))
}

/// The bytes of one file, generated piece by piece.
pub struct Content {
    rng: SmallRng,
    left: u64,
    offset: u64,
    corrupt_at: Option<u64>,
}

impl Content {
    /// File `key` of `size` bytes in a run seeded with `seed`; with `corrupt_at`, the byte at
    /// that offset is flipped.
    pub fn new(seed: u64, key: Key, size: u64, corrupt_at: Option<u64>) -> Self {
        let mix = seed
            ^ key.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ key.1.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
            ^ 0xF11E;
        Self {
            rng: SmallRng::seed_from_u64(mix),
            left: size,
            offset: 0,
            corrupt_at,
        }
    }

    /// Bytes not yet generated.
    pub fn left(&self) -> u64 {
        self.left
    }

    /// The next piece, at most `max` bytes; `None` at the end.
    pub fn next_piece(&mut self, max: usize) -> Option<Bytes> {
        if self.left == 0 {
            return None;
        }
        let n = (max as u64).min(self.left) as usize;
        let mut buf = vec![0u8; n];
        self.rng.fill_bytes(&mut buf);
        if let Some(at) = self.corrupt_at {
            if (self.offset..self.offset + n as u64).contains(&at) {
                buf[(at - self.offset) as usize] ^= 0x5A;
            }
        }
        self.offset += n as u64;
        self.left -= n as u64;
        Some(Bytes::from(buf))
    }
}

/// SHA-256 of file `key` as generated (without any corruption). Takes a while for large
/// files: call it off the async threads.
pub fn digest(seed: u64, key: Key, size: u64) -> [u8; SHA256_LEN] {
    let mut content = Content::new(seed, key, size, None);
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    while let Some(piece) = content.next_piece(256 * 1024) {
        ctx.update(&piece);
    }
    let mut out = [0u8; SHA256_LEN];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// One sender's file schedule: when each transfer is due, its size and its recipient.
pub struct FileSchedule {
    rng: SmallRng,
    arrival: Arrival,
    mean_gap_us: f64,
    size: FileSize,
    next_us: f64,
    contacts: Vec<u64>,
}

/// One transfer the schedule asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FileDue {
    /// Intended start (µs since run start).
    pub at_us: u64,
    /// File size in bytes.
    pub size: u64,
    /// Recipient's user id.
    pub to: u64,
}

impl FileSchedule {
    /// Client `index`'s transfers from `start_us`; `None` when it sends no files.
    pub fn new(s: &Scenario, index: usize, start_us: u64) -> Option<Self> {
        let f = &s.files;
        let senders = if f.senders == 0 { s.clients } else { f.senders };
        if f.rate <= 0.0 || index >= senders {
            return None;
        }
        let contacts = crate::workload::schedule::contacts(s, index);
        if contacts.is_empty() {
            return None;
        }
        let mut rng = SmallRng::seed_from_u64(
            s.seed ^ 0xF11E_5EED ^ (index as u64).wrapping_mul(0x2545_F491),
        );
        let mean_gap_us = 1e6 * senders as f64 / f.rate;
        let first = match f.arrival {
            Arrival::Poisson => crate::workload::schedule::exponential(&mut rng, mean_gap_us),
            Arrival::Constant => rng.random::<f64>() * mean_gap_us,
        };
        Some(Self {
            rng,
            arrival: f.arrival,
            mean_gap_us,
            size: f.size,
            next_us: start_us as f64 + first,
            contacts,
        })
    }

    /// When the next transfer is due.
    pub fn next_at(&self) -> u64 {
        self.next_us as u64
    }

    /// The next transfer.
    pub fn take_next(&mut self) -> FileDue {
        let at_us = self.next_us as u64;
        self.next_us += match self.arrival {
            Arrival::Poisson => {
                crate::workload::schedule::exponential(&mut self.rng, self.mean_gap_us)
            }
            Arrival::Constant => self.mean_gap_us,
        };
        let size = match self.size {
            FileSize::Fixed { bytes } => bytes,
            FileSize::LogUniform { min, max } => {
                let (lo, hi) = ((min as f64).ln(), (max as f64).ln());
                let v = (lo + self.rng.random::<f64>() * (hi - lo)).exp();
                (v.round() as u64).clamp(min, max)
            }
        };
        let to = self.contacts[self.rng.random_range(0..self.contacts.len())];
        FileDue { at_us, size, to }
    }
}

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
}

struct Entry {
    intended_us: u64,
    size: u64,
    accepted: bool,
    outcome: Option<Outcome>,
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
    /// Bytes of verified files.
    pub bytes_verified: AtomicU64,
    /// Bytes of verified files whose intended start is in the measured period.
    pub bytes_verified_in_window: AtomicU64,
    /// When the last of those was verified (µs since run start).
    pub last_verified_in_window_us: AtomicU64,
    /// Per verified file: size / (FileIncoming → verified), in KiB/s.
    pub throughput: Mutex<Histogram<u64>>,
}

impl Default for FileLedger {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            moving: AtomicI64::new(0),
            open: AtomicI64::new(0),
            sent: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            verified: AtomicU64::new(0),
            corrupted: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            bytes_verified: AtomicU64::new(0),
            bytes_verified_in_window: AtomicU64::new(0),
            last_verified_in_window_us: AtomicU64::new(0),
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

    /// A transfer starts (its offer is about to be prepared). Returns how many started before
    /// it in the run.
    pub fn start(&self, key: Key, intended_us: u64, size: u64) -> u64 {
        self.lock().insert(
            key,
            Entry {
                intended_us,
                size,
                accepted: false,
                outcome: None,
            },
        );
        self.open.fetch_add(1, Relaxed);
        self.sent.fetch_add(1, Relaxed)
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

    /// Intended start and size of a transfer, while the ledger knows it.
    pub fn planned(&self, key: Key) -> Option<(u64, u64)> {
        self.lock().get(&key).map(|e| (e.intended_us, e.size))
    }

    /// Records how a transfer ended. Returns false when it had already ended (the other side
    /// saw it first) or is unknown.
    pub fn end(&self, key: Key, outcome: Outcome) -> bool {
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
        self.open.fetch_sub(1, Relaxed);
        let counter = match outcome {
            Outcome::Verified => &self.verified,
            Outcome::Corrupted => &self.corrupted,
            Outcome::Refused(_) => &self.refused,
            Outcome::Failed => &self.failed,
        };
        counter.fetch_add(1, Relaxed);
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

/// A file arriving at a recipient: its declared size and digest, and the digest so far.
pub struct Incoming {
    /// The transfer, from the file name (`None` for a file that is not one of ours).
    pub key: Option<Key>,
    size: u64,
    expected: [u8; SHA256_LEN],
    received: u64,
    ctx: ring::digest::Context,
    /// When the header arrived (µs since run start).
    pub started_us: u64,
}

/// What a recipient concluded from a file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// More bytes are due.
    Partial,
    /// Every byte arrived and the digest matched.
    Verified,
    /// Every byte arrived and the digest did not match.
    Corrupted,
    /// More bytes arrived than the header declared.
    TooLong,
}

impl Incoming {
    /// A file announced by FileIncoming.
    pub fn new(name: &str, size: u64, sha256: [u8; SHA256_LEN], now_us: u64) -> Self {
        Self {
            key: key_of(name),
            size,
            expected: sha256,
            received: 0,
            ctx: ring::digest::Context::new(&ring::digest::SHA256),
            started_us: now_us,
        }
    }

    /// Bytes declared.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Takes the next bytes; once all arrived, checks the digest.
    pub fn feed(&mut self, data: &[u8]) -> Check {
        self.received += data.len() as u64;
        if self.received > self.size {
            return Check::TooLong;
        }
        self.ctx.update(data);
        self.check()
    }

    /// Whether every byte arrived, and if so whether the digest matches.
    pub fn check(&self) -> Check {
        if self.received < self.size {
            return Check::Partial;
        }
        let got = self.ctx.clone().finish();
        if got.as_ref() == self.expected {
            Check::Verified
        } else {
            Check::Corrupted
        }
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_reproducible_and_its_digest_verifies_it() {
        let key = (3, 7);
        let size = 100_000;
        let sha = digest(42, key, size);
        let mut a = Content::new(42, key, size, None);
        let mut incoming = Incoming::new(&file_name(key), size, sha, 0);
        assert_eq!(incoming.key, Some(key));
        let mut last = Check::Partial;
        while let Some(piece) = a.next_piece(CHUNK) {
            last = incoming.feed(&piece);
        }
        assert_eq!(last, Check::Verified);
        // Another key gives other bytes.
        assert_ne!(digest(42, (3, 8), size), sha);
    }

    #[test]
    fn one_flipped_byte_is_caught() {
        let key = (1, 1);
        let size = 3 * CHUNK as u64 + 5;
        let sha = digest(9, key, size);
        let mut content = Content::new(9, key, size, Some(size / 2));
        let mut incoming = Incoming::new(&file_name(key), size, sha, 0);
        let mut last = Check::Partial;
        while let Some(piece) = content.next_piece(CHUNK) {
            last = incoming.feed(&piece);
        }
        assert_eq!(last, Check::Corrupted);
        let mut long = Incoming::new(&file_name(key), 1, sha, 0);
        assert_eq!(long.feed(&[0, 0]), Check::TooLong);
    }

    #[test]
    fn log_uniform_sizes_spread_over_decades() {
        let mut s = Scenario::builtin_default();
        s.files.rate = 100.0;
        s.files.size = FileSize::LogUniform {
            min: 1_000,
            max: 1_000_000,
        };
        let mut sched = FileSchedule::new(&s, 0, 0).expect("a sender");
        let sizes: Vec<u64> = (0..3000).map(|_| sched.take_next().size).collect();
        assert!(sizes.iter().all(|&n| (1_000..=1_000_000).contains(&n)));
        let decade = |lo: u64, hi: u64| sizes.iter().filter(|&&n| n >= lo && n < hi).count();
        let (a, b, c) = (
            decade(1_000, 10_000),
            decade(10_000, 100_000),
            decade(100_000, 1_000_001),
        );
        for n in [a, b, c] {
            assert!((800..1200).contains(&n), "decades {a} {b} {c}");
        }
    }

    #[test]
    fn the_ledger_keeps_the_first_outcome() {
        let l = FileLedger::default();
        l.start((1, 1), 10, 100);
        l.accepted((1, 1));
        assert_eq!(l.moving.load(Relaxed), 1);
        assert!(l.end((1, 1), Outcome::Verified));
        assert!(!l.end((1, 1), Outcome::Failed));
        assert_eq!(l.verified.load(Relaxed), 1);
        assert_eq!(l.failed.load(Relaxed), 0);
        assert_eq!((l.moving.load(Relaxed), l.unfinished()), (0, 0));
        l.start((2, 1), 10, 100);
        l.fail_all_of(2);
        assert_eq!(l.failed.load(Relaxed), 1);
    }
}
