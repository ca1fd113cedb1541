//! The measurement header the generator puts at the front of every body, and the payload that
//! follows it. The server treats bodies as opaque; only the generator reads this.
//!
//! ```text
//! intended_us u64 | sent_after_us u32 | flags u32 | sender u64 | seq u64 | crc32 u32 | payload…
//! ```
//!
//! The flags' upper 16 bits are the run's tag ([`Header::run`]): a message of another run that
//! reaches this one's clients (two generators at once on one NATS subject prefix, say) is told
//! apart from this run's own, whose sender and sequence numbers it may well repeat.
//!
//! `intended_us` is wall-clock time, µs since the Unix epoch, taken from the generator's one
//! monotonic clock (`measure::clock::Clock::wall_us`): generators that load one server together
//! (shards) then time each other's messages on one clock. `sent_after_us` is how long after
//! it the message was handed to the transport (at most about 71 minutes). Flag
//! [`MEASURED`] says the sender's measurement window holds the intended time: the receiver
//! times the message only then, so the messages timed are those the senders meant, whichever
//! generator receives them. Flag [`RESENT`] marks a copy sent again after a reconnect (its
//! first Ack never came): a recipient that got the first copy counts the second as a
//! redelivery, not a duplicate, in whichever generator it runs. `seq` counts the sender's
//! messages to this one recipient, from 0.
//! The CRC-32 covers the first 32 header bytes and the payload, so any altered byte is
//! detected.

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes of header in front of every body: the scenario's smallest body.
pub const HEADER_LEN: usize = crate::config::scenario::MIN_BODY as usize;

/// The flag bit that says the message is in its sender's measurement window.
pub const MEASURED: u32 = 1;

/// The flag bit that says this copy is sent again, after a reconnect.
pub const RESENT: u32 = 2;

/// Where the flags are in a body.
const FLAGS_AT: usize = 12;

/// Where in the flags the run's tag begins (the bits below it are the flags proper).
const RUN_SHIFT: u32 = 16;

/// What the header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// When the schedule meant the message to be sent (wall clock, µs since the Unix epoch).
    pub intended_us: u64,
    /// When it was actually handed to the transport (wall clock, µs since the Unix epoch; on
    /// the wire as the time after `intended_us`, at most `u32::MAX` µs).
    pub sent_us: u64,
    /// The intended time is in the sender's measurement window.
    pub measured: bool,
    /// This copy is sent again after a reconnect.
    pub resent: bool,
    /// The sender's user id.
    pub sender: u64,
    /// The sender's sequence number towards this recipient.
    pub seq: u64,
    /// The run's tag (`RunContext::run_tag`): the same in every shard of one run, another in
    /// another run.
    pub run: u16,
}

/// Why a body did not check out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Shorter than the header.
    Short,
    /// The checksum does not match.
    Checksum,
}

/// Builds a body of `len` bytes (at least [`HEADER_LEN`]) with payload taken from `pool`.
pub fn encode(h: &Header, len: usize, pool: &[u8]) -> Bytes {
    let payload_len = len.saturating_sub(HEADER_LEN);
    let mut buf = BytesMut::with_capacity(HEADER_LEN + payload_len);
    buf.put_u64(h.intended_us);
    let sent_after = h.sent_us.saturating_sub(h.intended_us);
    buf.put_u32(u32::try_from(sent_after).unwrap_or(u32::MAX));
    buf.put_u32(
        u32::from(h.run) << RUN_SHIFT
            | if h.measured { MEASURED } else { 0 }
            | if h.resent { RESENT } else { 0 },
    );
    buf.put_u64(h.sender);
    buf.put_u64(h.seq);
    // Vary where the payload starts so that bodies differ, without drawing random bytes.
    let start = if pool.len() > payload_len {
        (h.seq.wrapping_mul(7919) % (pool.len() - payload_len) as u64) as usize
    } else {
        0
    };
    let payload = &pool[start..(start + payload_len).min(pool.len())];
    let mut crc = crc32fast::Hasher::new();
    crc.update(&buf[..32]);
    crc.update(payload);
    buf.put_u32(crc.finalize());
    buf.put_slice(payload);
    buf.freeze()
}

/// Reads and verifies a body's header.
pub fn decode(body: &[u8]) -> Result<Header, BodyError> {
    if body.len() < HEADER_LEN {
        return Err(BodyError::Short);
    }
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&body[i..i + 8]);
        u64::from_be_bytes(b)
    };
    let stored = u32::from_be_bytes([body[32], body[33], body[34], body[35]]);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&body[..32]);
    crc.update(&body[HEADER_LEN..]);
    if crc.finalize() != stored {
        return Err(BodyError::Checksum);
    }
    let u32_at = |i: usize| u32::from_be_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
    let intended_us = u64_at(0);
    Ok(Header {
        intended_us,
        sent_us: intended_us.saturating_add(u64::from(u32_at(8))),
        measured: u32_at(FLAGS_AT) & MEASURED != 0,
        resent: u32_at(FLAGS_AT) & RESENT != 0,
        sender: u64_at(16),
        seq: u64_at(24),
        // The upper 16 bits, which fit.
        run: (u32_at(FLAGS_AT) >> RUN_SHIFT) as u16,
    })
}

/// `body` (one [`encode`] made) as a copy sent again: its [`RESENT`] flag set and its checksum
/// made anew. A body too short to hold a header is returned as it is.
pub fn resent(body: &Bytes) -> Bytes {
    if body.len() < HEADER_LEN {
        return body.clone();
    }
    let mut b = BytesMut::from(&body[..]);
    let flags = u32::from_be_bytes([
        b[FLAGS_AT],
        b[FLAGS_AT + 1],
        b[FLAGS_AT + 2],
        b[FLAGS_AT + 3],
    ]) | RESENT;
    b[FLAGS_AT..FLAGS_AT + 4].copy_from_slice(&flags.to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&b[..32]);
    crc.update(&b[HEADER_LEN..]);
    b[32..36].copy_from_slice(&crc.finalize().to_be_bytes());
    b.freeze()
}

/// A block of pseudo-random bytes that payloads are cut from.
pub fn payload_pool(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_any_flipped_byte_is_caught() {
        let pool = payload_pool(3, 4096);
        let h = Header {
            intended_us: 1_764_547_200_000_123,
            sent_us: 1_764_547_200_000_456,
            measured: true,
            resent: false,
            sender: 7,
            seq: 99,
            run: 0xbeef,
        };
        let body = encode(&h, 200, &pool);
        assert_eq!(body.len(), 200);
        assert_eq!(decode(&body), Ok(h));
        // A copy sent again says so, and still checks out.
        let again = resent(&body);
        assert_eq!(decode(&again), Ok(Header { resent: true, ..h }));
        assert_eq!(again[HEADER_LEN..], body[HEADER_LEN..]);
        let outside = Header {
            measured: false,
            ..h
        };
        assert_eq!(decode(&encode(&outside, 200, &pool)), Ok(outside));
        // Sent before its intended time (a timer a µs early) reads as sent at it; sent more
        // than u32::MAX µs after it, as sent u32::MAX µs after it.
        let early = Header {
            sent_us: h.intended_us - 1,
            ..h
        };
        assert_eq!(
            decode(&encode(&early, 200, &pool)).unwrap().sent_us,
            h.intended_us
        );
        let late = Header {
            sent_us: h.intended_us + (1 << 40),
            ..h
        };
        assert_eq!(
            decode(&encode(&late, 200, &pool)).unwrap().sent_us,
            h.intended_us + u64::from(u32::MAX)
        );
        for i in 0..body.len() {
            let mut bad = body.to_vec();
            bad[i] ^= 0x10;
            assert_eq!(decode(&bad), Err(BodyError::Checksum), "byte {i}");
        }
        assert_eq!(decode(&body[..10]), Err(BodyError::Short));
        assert_eq!(encode(&h, HEADER_LEN, &pool).len(), HEADER_LEN);
    }
}
