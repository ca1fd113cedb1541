//! File transfers of the simulated clients: what each file contains, when each sender starts
//! one, how its bytes leave (a QUIC stream of its own, or FileChunk frames on the one
//! connection) and how the recipient verifies them. The run-wide ledger that gives every
//! transfer exactly one outcome is `measure::file_ledger`.
//!
//! A file's bytes are a pseudo-random stream keyed by the run's seed, the sender and the
//! transfer id, so the sender never holds a file: it hashes the stream once (off the async
//! threads) for the offer, then generates it again chunk by chunk as it sends. The file name
//! carries the sender and transfer id, which is how the recipient finds the transfer in the
//! ledger, and the transfer's intended start on the wall clock with whether it falls in the
//! sender's measured period, which is how a recipient in another generator (a shard) times it.

use bytes::Bytes;
use imbench_proto::SHA256_LEN;
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};

use crate::config::scenario::{Arrival, FileSize, Scenario};

/// Bytes per FileChunk frame, and per piece written to a QUIC file stream.
pub const CHUNK: usize = 32 * 1024;

/// A transfer, named run-wide: (sender, sender's transfer id).
pub type Key = (u64, u64);

/// When a transfer was meant to start, as its file name carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intended {
    /// Wall-clock µs since the Unix epoch (`Clock::wall_us`).
    pub wall_us: u64,
    /// Whether it is in the sender's measured period.
    pub measured: bool,
}

/// The file name that carries a transfer's key and intended start:
/// `imbench-SENDER-ID-WALLUS-M.bin`, M 1 when measured.
pub fn file_name(key: Key, intended: Intended) -> String {
    format!(
        "imbench-{}-{}-{}-{}.bin",
        key.0,
        key.1,
        intended.wall_us,
        u8::from(intended.measured)
    )
}

/// The key and intended start a file name carries, if it is one of ours.
pub fn parse_name(name: &str) -> Option<(Key, Intended)> {
    let rest = name.strip_prefix("imbench-")?.strip_suffix(".bin")?;
    let mut parts = rest.split('-');
    let mut next = || parts.next()?.parse::<u64>().ok();
    let key = (next()?, next()?);
    let wall_us = next()?;
    let measured = match next()? {
        0 => false,
        1 => true,
        _ => return None,
    };
    Some((key, Intended { wall_us, measured }))
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

/// A file arriving at a recipient: its declared size and digest, and the digest so far.
pub struct Incoming {
    /// The transfer, from the file name (`None` for a file that is not one of ours).
    pub key: Option<Key>,
    /// Its intended start, from the file name.
    pub intended: Option<Intended>,
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
        let parsed = parse_name(name);
        Self {
            key: parsed.map(|p| p.0),
            intended: parsed.map(|p| p.1),
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

    const AT: Intended = Intended {
        wall_us: 1_764_000_000_123_456,
        measured: true,
    };

    #[test]
    fn a_file_name_carries_the_transfer_and_its_intended_start() {
        let name = file_name((12, 3), AT);
        assert_eq!(name, "imbench-12-3-1764000000123456-1.bin");
        assert_eq!(parse_name(&name), Some(((12, 3), AT)));
        let early = Intended {
            measured: false,
            ..AT
        };
        assert_eq!(parse_name(&file_name((1, 0), early)), Some(((1, 0), early)));
        for other in [
            "photo.jpg",
            "imbench-1-2.bin",
            "imbench-1-2-3-7.bin",
            "imbench-a-2-3-1.bin",
        ] {
            assert_eq!(parse_name(other), None, "{other}");
        }
    }

    #[test]
    fn content_is_reproducible_and_its_digest_verifies_it() {
        let key = (3, 7);
        let size = 100_000;
        let sha = digest(42, key, size);
        let mut a = Content::new(42, key, size, None);
        let mut incoming = Incoming::new(&file_name(key, AT), size, sha, 0);
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
        let mut incoming = Incoming::new(&file_name(key, AT), size, sha, 0);
        let mut last = Check::Partial;
        while let Some(piece) = content.next_piece(CHUNK) {
            last = incoming.feed(&piece);
        }
        assert_eq!(last, Check::Corrupted);
        let mut long = Incoming::new(&file_name(key, AT), 1, sha, 0);
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
}
