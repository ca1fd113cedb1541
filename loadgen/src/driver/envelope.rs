//! The few bytes other systems' drivers put in front of a body: the sending user and the
//! sender's message id, big-endian. imbench's own protocol carries both in its frames; NATS and
//! MQTT messages carry only a subject or topic and bytes, and what a recipient counts must not
//! depend on how a system names its subjects.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Bytes in front of every body.
pub const ENVELOPE_LEN: usize = 16;

/// The envelope of a message `msg_id` from `from`.
pub fn head(from: u64, msg_id: u64) -> [u8; ENVELOPE_LEN] {
    let mut head = [0u8; ENVELOPE_LEN];
    let mut w = &mut head[..];
    w.put_u64(from);
    w.put_u64(msg_id);
    head
}

/// `body` with its envelope in front, as one buffer.
pub fn wrap(from: u64, msg_id: u64, body: &[u8]) -> Bytes {
    let mut payload = BytesMut::with_capacity(ENVELOPE_LEN + body.len());
    payload.put_slice(&head(from, msg_id));
    payload.put_slice(body);
    payload.freeze()
}

/// The sender, the message id and the body of a payload; `None` when it is too short to be
/// one of imbench's.
pub fn open(mut payload: Bytes) -> Option<(u64, u64, Bytes)> {
    if payload.len() < ENVELOPE_LEN {
        return None;
    }
    let from = payload.get_u64();
    let msg_id = payload.get_u64();
    Some((from, msg_id, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_wrapped_opens_to_the_same_and_a_short_payload_does_not() {
        let wrapped = wrap(7, 1 << 40, b"body");
        assert_eq!(&wrapped[..ENVELOPE_LEN], &head(7, 1 << 40));
        assert_eq!(
            open(wrapped),
            Some((7, 1 << 40, Bytes::from_static(b"body")))
        );
        assert_eq!(open(Bytes::from_static(&[0; ENVELOPE_LEN - 1])), None);
    }
}
