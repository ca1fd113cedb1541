//! Encoding frames into a buffer and decoding them out of one.
//!
//! Decoding is total: any byte string yields a frame, a request for more bytes, or a typed
//! [`DecodeError`]. It never panics, and it never reserves more than 16 KiB ahead of the bytes
//! it has, nor past the declared frame length, which is checked against the limit before
//! anything is reserved (as mini-redis checks that a whole frame is buffered before it parses).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::frame::{Dest, ErrorCode, Frame, SHA256_LEN, TOKEN_LEN};

/// Default upper bound on one frame (kind + fields): 64 KiB of body plus headroom.
pub const DEFAULT_MAX_FRAME_LEN: u32 = 64 * 1024 + 256;

/// Most bytes [`Codec::decode`] reserves ahead of a partial frame.
const RESERVE_AHEAD: usize = 16 * 1024;

const LEN_PREFIX: usize = 4;

const KIND_HELLO: u8 = 0x01;
const KIND_WELCOME: u8 = 0x02;
const KIND_ERROR: u8 = 0x03;
const KIND_SEND: u8 = 0x10;
const KIND_ACK: u8 = 0x11;
const KIND_REJECT: u8 = 0x12;
const KIND_DELIVER: u8 = 0x13;
const KIND_RECEIPT: u8 = 0x14;
const KIND_JOIN: u8 = 0x20;
const KIND_LEAVE: u8 = 0x21;
const KIND_JOINED: u8 = 0x22;
const KIND_LEFT: u8 = 0x23;
const KIND_GROUP_REFUSED: u8 = 0x24;
const KIND_FILE_OFFER: u8 = 0x40;
const KIND_FILE_ACCEPTED: u8 = 0x41;
const KIND_FILE_INCOMING: u8 = 0x42;
const KIND_FILE_DATA: u8 = 0x43;
const KIND_FILE_CHUNK: u8 = 0x44;
const KIND_FILE_CANCEL: u8 = 0x45;
const KIND_PING: u8 = 0x30;
const KIND_PONG: u8 = 0x31;
const KIND_BYE: u8 = 0x32;

const DEST_USER: u8 = 1;
const DEST_GROUP: u8 = 2;

/// Why bytes could not be decoded into a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The length prefix was zero: a frame has at least a kind byte.
    #[error("empty frame (length 0)")]
    Empty,
    /// The length prefix exceeds the limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Declared length.
        len: u32,
        /// The decoder's limit.
        max: u32,
    },
    /// The kind byte is not one this decoder knows.
    #[error("unknown frame kind 0x{0:02x}")]
    UnknownKind(u8),
    /// The frame ended before all its fields.
    #[error("{0} frame is truncated")]
    Truncated(&'static str),
    /// The frame had bytes after its last field.
    #[error("{0} frame has trailing bytes")]
    TrailingBytes(&'static str),
    /// A string field was not UTF-8.
    #[error("{0} frame has a string that is not UTF-8")]
    BadUtf8(&'static str),
    /// A destination tag was neither user nor group.
    #[error("unknown destination tag {0}")]
    BadDest(u8),
}

impl DecodeError {
    /// The error code a server replies with when a client sends these bytes.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::TooLarge { .. } => ErrorCode::FRAME_TOO_LARGE,
            DecodeError::UnknownKind(_) => ErrorCode::UNKNOWN_KIND,
            _ => ErrorCode::BAD_FRAME,
        }
    }
}

/// Why a frame could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The encoded frame would exceed the codec's limit.
    #[error("{kind} frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Frame name.
        kind: &'static str,
        /// Encoded length (kind + fields).
        len: usize,
        /// The codec's limit.
        max: u32,
    },
    /// A string field is longer than its u16 length prefix can say.
    #[error("{0} frame has a string longer than 65535 bytes")]
    StringTooLong(&'static str),
}

/// Encodes and decodes frames, enforcing a maximum frame length both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codec {
    max_frame_len: u32,
}

impl Default for Codec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_LEN)
    }
}

impl Codec {
    /// A codec that refuses frames longer than `max_frame_len` (kind + fields).
    pub fn new(max_frame_len: u32) -> Self {
        Self {
            max_frame_len: max_frame_len.max(1),
        }
    }

    /// The limit this codec enforces.
    pub fn max_frame_len(&self) -> u32 {
        self.max_frame_len
    }

    /// Decodes one frame from the front of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds only part of a frame; the caller reads more bytes and
    /// calls again. On `Ok(Some(_))` the frame's bytes are consumed. On error the stream is not
    /// resynchronisable and the connection should be closed. Body fields share `buf`'s
    /// allocation (no copy).
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        if buf.len() < LEN_PREFIX {
            return Ok(None);
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if len == 0 {
            return Err(DecodeError::Empty);
        }
        if len > self.max_frame_len {
            return Err(DecodeError::TooLarge {
                len,
                max: self.max_frame_len,
            });
        }
        let total = LEN_PREFIX + len as usize;
        if buf.len() < total {
            // Room for what is announced, a piece at a time: memory follows the bytes that
            // arrive, so a peer that announces a large frame and sends nothing costs little.
            buf.reserve((total - buf.len()).min(RESERVE_AHEAD));
            return Ok(None);
        }
        buf.advance(LEN_PREFIX);
        let frame = buf.split_to(len as usize).freeze();
        parse_frame(frame).map(Some)
    }

    /// Appends the encoding of `frame` to `buf`.
    pub fn encode(&self, frame: &Frame, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let len = encoded_len(frame)?;
        if len > self.max_frame_len as usize {
            return Err(EncodeError::TooLarge {
                kind: frame.name(),
                len,
                max: self.max_frame_len,
            });
        }
        buf.reserve(LEN_PREFIX + len);
        // Cannot truncate: len <= max_frame_len, a u32.
        buf.put_u32(len as u32);
        write_fields(frame, buf);
        Ok(())
    }
}

/// Length of `frame`'s encoding without its length prefix (kind + fields).
fn encoded_len(frame: &Frame) -> Result<usize, EncodeError> {
    let string = |s: &str| {
        if s.len() > u16::MAX as usize {
            Err(EncodeError::StringTooLong(frame.name()))
        } else {
            Ok(2 + s.len())
        }
    };
    let fields = match frame {
        Frame::Hello { .. } => 2 + 8 + TOKEN_LEN + 1,
        Frame::Welcome { .. }
        | Frame::Ack { .. }
        | Frame::Receipt { .. }
        | Frame::Ping { .. }
        | Frame::Pong { .. }
        | Frame::Join { .. }
        | Frame::Leave { .. }
        | Frame::Left { .. }
        | Frame::FileAccepted { .. }
        | Frame::FileData { .. } => 8,
        Frame::FileOffer { name, .. } => 8 + 9 + 8 + SHA256_LEN + string(name)?,
        Frame::FileIncoming { name, .. } => 8 + 8 + 8 + SHA256_LEN + string(name)?,
        Frame::FileChunk { data, .. } => 8 + data.len(),
        Frame::FileCancel { .. } => 8 + 2,
        Frame::Joined { .. } => 8 + 4,
        Frame::GroupRefused { .. } => 8 + 2,
        Frame::Error { reason, .. } => 2 + string(reason)?,
        Frame::Send { body, .. } => 8 + 9 + body.len(),
        Frame::Reject { .. } => 8 + 2,
        Frame::Deliver { body, .. } => 8 + 8 + 9 + body.len(),
        Frame::Bye { reason } => string(reason)?,
    };
    Ok(1 + fields)
}

fn write_fields(frame: &Frame, buf: &mut BytesMut) {
    match frame {
        Frame::Hello {
            version,
            user,
            token,
            flags,
        } => {
            buf.put_u8(KIND_HELLO);
            buf.put_u16(*version);
            buf.put_u64(*user);
            buf.put_slice(token);
            buf.put_u8(*flags);
        }
        Frame::Welcome { session } => {
            buf.put_u8(KIND_WELCOME);
            buf.put_u64(*session);
        }
        Frame::Error { code, reason } => {
            buf.put_u8(KIND_ERROR);
            buf.put_u16(code.0);
            put_string(buf, reason);
        }
        Frame::Send { msg_id, to, body } => {
            buf.put_u8(KIND_SEND);
            buf.put_u64(*msg_id);
            put_dest(buf, *to);
            buf.put_slice(body);
        }
        Frame::Receipt { count } => {
            buf.put_u8(KIND_RECEIPT);
            buf.put_u64(*count);
        }
        Frame::Ack { msg_id } => {
            buf.put_u8(KIND_ACK);
            buf.put_u64(*msg_id);
        }
        Frame::Reject { msg_id, code } => {
            buf.put_u8(KIND_REJECT);
            buf.put_u64(*msg_id);
            buf.put_u16(code.0);
        }
        Frame::Deliver {
            msg_id,
            from,
            to,
            body,
        } => {
            buf.put_u8(KIND_DELIVER);
            buf.put_u64(*msg_id);
            buf.put_u64(*from);
            put_dest(buf, *to);
            buf.put_slice(body);
        }
        Frame::Join { group } => {
            buf.put_u8(KIND_JOIN);
            buf.put_u64(*group);
        }
        Frame::Leave { group } => {
            buf.put_u8(KIND_LEAVE);
            buf.put_u64(*group);
        }
        Frame::Joined { group, members } => {
            buf.put_u8(KIND_JOINED);
            buf.put_u64(*group);
            buf.put_u32(*members);
        }
        Frame::Left { group } => {
            buf.put_u8(KIND_LEFT);
            buf.put_u64(*group);
        }
        Frame::GroupRefused { group, code } => {
            buf.put_u8(KIND_GROUP_REFUSED);
            buf.put_u64(*group);
            buf.put_u16(code.0);
        }
        Frame::FileOffer {
            transfer_id,
            to,
            size,
            sha256,
            name,
        } => {
            buf.put_u8(KIND_FILE_OFFER);
            buf.put_u64(*transfer_id);
            put_dest(buf, *to);
            buf.put_u64(*size);
            buf.put_slice(sha256);
            put_string(buf, name);
        }
        Frame::FileAccepted { transfer_id } => {
            buf.put_u8(KIND_FILE_ACCEPTED);
            buf.put_u64(*transfer_id);
        }
        Frame::FileIncoming {
            transfer_id,
            from,
            size,
            sha256,
            name,
        } => {
            buf.put_u8(KIND_FILE_INCOMING);
            buf.put_u64(*transfer_id);
            buf.put_u64(*from);
            buf.put_u64(*size);
            buf.put_slice(sha256);
            put_string(buf, name);
        }
        Frame::FileData { transfer_id } => {
            buf.put_u8(KIND_FILE_DATA);
            buf.put_u64(*transfer_id);
        }
        Frame::FileChunk { transfer_id, data } => {
            buf.put_u8(KIND_FILE_CHUNK);
            buf.put_u64(*transfer_id);
            buf.put_slice(data);
        }
        Frame::FileCancel { transfer_id, code } => {
            buf.put_u8(KIND_FILE_CANCEL);
            buf.put_u64(*transfer_id);
            buf.put_u16(code.0);
        }
        Frame::Ping { nonce } => {
            buf.put_u8(KIND_PING);
            buf.put_u64(*nonce);
        }
        Frame::Pong { nonce } => {
            buf.put_u8(KIND_PONG);
            buf.put_u64(*nonce);
        }
        Frame::Bye { reason } => {
            buf.put_u8(KIND_BYE);
            put_string(buf, reason);
        }
    }
}

fn put_string(buf: &mut BytesMut, s: &str) {
    // Length checked by encoded_len.
    buf.put_u16(s.len() as u16);
    buf.put_slice(s.as_bytes());
}

fn put_dest(buf: &mut BytesMut, dest: Dest) {
    match dest {
        Dest::User(id) => {
            buf.put_u8(DEST_USER);
            buf.put_u64(id);
        }
        Dest::Group(id) => {
            buf.put_u8(DEST_GROUP);
            buf.put_u64(id);
        }
    }
}

/// Parses one whole frame (kind + fields, without the length prefix).
fn parse_frame(bytes: Bytes) -> Result<Frame, DecodeError> {
    let mut r = FieldReader {
        bytes,
        kind: "frame",
    };
    let kind = r.u8()?;
    r.kind = match kind {
        KIND_HELLO => "Hello",
        KIND_WELCOME => "Welcome",
        KIND_ERROR => "Error",
        KIND_SEND => "Send",
        KIND_ACK => "Ack",
        KIND_RECEIPT => "Receipt",
        KIND_REJECT => "Reject",
        KIND_DELIVER => "Deliver",
        KIND_JOIN => "Join",
        KIND_LEAVE => "Leave",
        KIND_JOINED => "Joined",
        KIND_LEFT => "Left",
        KIND_GROUP_REFUSED => "GroupRefused",
        KIND_FILE_OFFER => "FileOffer",
        KIND_FILE_ACCEPTED => "FileAccepted",
        KIND_FILE_INCOMING => "FileIncoming",
        KIND_FILE_DATA => "FileData",
        KIND_FILE_CHUNK => "FileChunk",
        KIND_FILE_CANCEL => "FileCancel",
        KIND_PING => "Ping",
        KIND_PONG => "Pong",
        KIND_BYE => "Bye",
        other => return Err(DecodeError::UnknownKind(other)),
    };
    let frame = match kind {
        KIND_HELLO => Frame::Hello {
            version: r.u16()?,
            user: r.u64()?,
            token: r.token()?,
            flags: r.u8()?,
        },
        KIND_WELCOME => Frame::Welcome { session: r.u64()? },
        KIND_ERROR => Frame::Error {
            code: ErrorCode(r.u16()?),
            reason: r.string()?,
        },
        KIND_SEND => Frame::Send {
            msg_id: r.u64()?,
            to: r.dest()?,
            body: r.rest(),
        },
        KIND_ACK => Frame::Ack { msg_id: r.u64()? },
        KIND_RECEIPT => Frame::Receipt { count: r.u64()? },
        KIND_REJECT => Frame::Reject {
            msg_id: r.u64()?,
            code: ErrorCode(r.u16()?),
        },
        KIND_DELIVER => Frame::Deliver {
            msg_id: r.u64()?,
            from: r.u64()?,
            to: r.dest()?,
            body: r.rest(),
        },
        KIND_JOIN => Frame::Join { group: r.u64()? },
        KIND_LEAVE => Frame::Leave { group: r.u64()? },
        KIND_JOINED => Frame::Joined {
            group: r.u64()?,
            members: r.u32()?,
        },
        KIND_LEFT => Frame::Left { group: r.u64()? },
        KIND_GROUP_REFUSED => Frame::GroupRefused {
            group: r.u64()?,
            code: ErrorCode(r.u16()?),
        },
        KIND_FILE_OFFER => Frame::FileOffer {
            transfer_id: r.u64()?,
            to: r.dest()?,
            size: r.u64()?,
            sha256: r.digest()?,
            name: r.string()?,
        },
        KIND_FILE_ACCEPTED => Frame::FileAccepted {
            transfer_id: r.u64()?,
        },
        KIND_FILE_INCOMING => Frame::FileIncoming {
            transfer_id: r.u64()?,
            from: r.u64()?,
            size: r.u64()?,
            sha256: r.digest()?,
            name: r.string()?,
        },
        KIND_FILE_DATA => Frame::FileData {
            transfer_id: r.u64()?,
        },
        KIND_FILE_CHUNK => Frame::FileChunk {
            transfer_id: r.u64()?,
            data: r.rest(),
        },
        KIND_FILE_CANCEL => Frame::FileCancel {
            transfer_id: r.u64()?,
            code: ErrorCode(r.u16()?),
        },
        KIND_PING => Frame::Ping { nonce: r.u64()? },
        KIND_PONG => Frame::Pong { nonce: r.u64()? },
        _ => Frame::Bye {
            reason: r.string()?,
        },
    };
    r.finish()?;
    Ok(frame)
}

/// Reads fields off a frame's bytes, turning a short read into [`DecodeError::Truncated`].
struct FieldReader {
    bytes: Bytes,
    kind: &'static str,
}

impl FieldReader {
    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.bytes.remaining() < n {
            Err(DecodeError::Truncated(self.kind))
        } else {
            Ok(())
        }
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        self.need(1)?;
        Ok(self.bytes.get_u8())
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        self.need(2)?;
        Ok(self.bytes.get_u16())
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.need(4)?;
        Ok(self.bytes.get_u32())
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        self.need(8)?;
        Ok(self.bytes.get_u64())
    }

    fn token(&mut self) -> Result<[u8; TOKEN_LEN], DecodeError> {
        self.need(TOKEN_LEN)?;
        let mut token = [0u8; TOKEN_LEN];
        self.bytes.copy_to_slice(&mut token);
        Ok(token)
    }

    fn digest(&mut self) -> Result<[u8; SHA256_LEN], DecodeError> {
        self.need(SHA256_LEN)?;
        let mut digest = [0u8; SHA256_LEN];
        self.bytes.copy_to_slice(&mut digest);
        Ok(digest)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let len = self.u16()? as usize;
        self.need(len)?;
        let raw = self.bytes.split_to(len);
        String::from_utf8(raw.to_vec()).map_err(|_| DecodeError::BadUtf8(self.kind))
    }

    fn dest(&mut self) -> Result<Dest, DecodeError> {
        match self.u8()? {
            DEST_USER => Ok(Dest::User(self.u64()?)),
            DEST_GROUP => Ok(Dest::Group(self.u64()?)),
            other => Err(DecodeError::BadDest(other)),
        }
    }

    fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.bytes)
    }

    fn finish(&self) -> Result<(), DecodeError> {
        if self.bytes.has_remaining() {
            Err(DecodeError::TrailingBytes(self.kind))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(frame: &Frame) -> BytesMut {
        let mut buf = BytesMut::new();
        Codec::default().encode(frame, &mut buf).expect("encodes");
        buf
    }

    fn raw(kind: u8, fields: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        buf.put_u32(1 + fields.len() as u32);
        buf.put_u8(kind);
        buf.put_slice(fields);
        buf
    }

    fn arb_dest() -> impl Strategy<Value = Dest> {
        prop_oneof![
            any::<u64>().prop_map(Dest::User),
            any::<u64>().prop_map(Dest::Group)
        ]
    }

    fn arb_body() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..512).prop_map(Bytes::from)
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        prop_oneof![
            (
                any::<u16>(),
                any::<u64>(),
                any::<[u8; TOKEN_LEN]>(),
                any::<u8>()
            )
                .prop_map(|(version, user, token, flags)| Frame::Hello {
                    version,
                    user,
                    token,
                    flags,
                }),
            any::<u64>().prop_map(|session| Frame::Welcome { session }),
            (any::<u16>(), ".{0,40}").prop_map(|(c, reason)| Frame::Error {
                code: ErrorCode(c),
                reason
            }),
            (any::<u64>(), arb_dest(), arb_body()).prop_map(|(msg_id, to, body)| Frame::Send {
                msg_id,
                to,
                body
            }),
            any::<u64>().prop_map(|msg_id| Frame::Ack { msg_id }),
            any::<u64>().prop_map(|count| Frame::Receipt { count }),
            (any::<u64>(), any::<u16>()).prop_map(|(msg_id, c)| Frame::Reject {
                msg_id,
                code: ErrorCode(c)
            }),
            (any::<u64>(), any::<u64>(), arb_dest(), arb_body()).prop_map(
                |(msg_id, from, to, body)| Frame::Deliver {
                    msg_id,
                    from,
                    to,
                    body
                }
            ),
            any::<u64>().prop_map(|group| Frame::Join { group }),
            any::<u64>().prop_map(|group| Frame::Leave { group }),
            (any::<u64>(), any::<u32>())
                .prop_map(|(group, members)| Frame::Joined { group, members }),
            any::<u64>().prop_map(|group| Frame::Left { group }),
            (any::<u64>(), any::<u16>()).prop_map(|(group, c)| Frame::GroupRefused {
                group,
                code: ErrorCode(c)
            }),
            (
                any::<u64>(),
                arb_dest(),
                any::<u64>(),
                any::<[u8; 32]>(),
                ".{0,40}"
            )
                .prop_map(|(transfer_id, to, size, sha256, name)| Frame::FileOffer {
                    transfer_id,
                    to,
                    size,
                    sha256,
                    name
                }),
            any::<u64>().prop_map(|transfer_id| Frame::FileAccepted { transfer_id }),
            (
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                any::<[u8; 32]>(),
                ".{0,40}"
            )
                .prop_map(|(transfer_id, from, size, sha256, name)| {
                    Frame::FileIncoming {
                        transfer_id,
                        from,
                        size,
                        sha256,
                        name,
                    }
                }),
            any::<u64>().prop_map(|transfer_id| Frame::FileData { transfer_id }),
            (any::<u64>(), arb_body())
                .prop_map(|(transfer_id, data)| Frame::FileChunk { transfer_id, data }),
            (any::<u64>(), any::<u16>()).prop_map(|(transfer_id, c)| Frame::FileCancel {
                transfer_id,
                code: ErrorCode(c)
            }),
            any::<u64>().prop_map(|nonce| Frame::Ping { nonce }),
            any::<u64>().prop_map(|nonce| Frame::Pong { nonce }),
            ".{0,40}".prop_map(|reason| Frame::Bye { reason }),
        ]
    }

    proptest! {
        #[test]
        fn every_frame_round_trips(frame in arb_frame()) {
            let mut buf = encode(&frame);
            let decoded = Codec::default().decode(&mut buf).expect("decodes");
            prop_assert_eq!(decoded, Some(frame));
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn frames_split_anywhere_round_trip(
            frames in proptest::collection::vec(arb_frame(), 1..8),
            chunk in 1usize..64,
        ) {
            let mut wire = BytesMut::new();
            for f in &frames {
                Codec::default().encode(f, &mut wire).expect("encodes");
            }
            let codec = Codec::default();
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for piece in wire.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Some(f) = codec.decode(&mut buf).expect("decodes") {
                    out.push(f);
                }
            }
            prop_assert_eq!(out, frames);
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let codec = Codec::new(128);
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = codec.decode(&mut buf) {}
        }
    }

    #[test]
    fn partial_frame_asks_for_more() {
        let full = encode(&Frame::Ack { msg_id: 7 });
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(Codec::default().decode(&mut buf), Ok(None), "cut at {cut}");
            assert_eq!(buf.len(), cut, "nothing consumed");
        }
    }

    #[test]
    fn oversize_length_is_refused_before_reserving() {
        let codec = Codec::new(1024);
        let mut buf = BytesMut::with_capacity(8);
        buf.put_u32(u32::MAX);
        buf.put_u8(KIND_SEND);
        let before = buf.capacity();
        assert_eq!(
            codec.decode(&mut buf),
            Err(DecodeError::TooLarge {
                len: u32::MAX,
                max: 1024
            })
        );
        assert_eq!(buf.capacity(), before);
        assert_eq!(
            DecodeError::TooLarge { len: 1, max: 0 }.code(),
            ErrorCode::FRAME_TOO_LARGE
        );
    }

    #[test]
    fn encoder_refuses_what_the_decoder_would() {
        let codec = Codec::new(64);
        let frame = Frame::Send {
            msg_id: 1,
            to: Dest::User(2),
            body: Bytes::from(vec![0; 64]),
        };
        let err = codec.encode(&frame, &mut BytesMut::new()).unwrap_err();
        assert!(
            matches!(err, EncodeError::TooLarge { kind: "Send", .. }),
            "{err}"
        );
    }

    #[test]
    fn malformed_frames_get_typed_errors() {
        let codec = Codec::default();
        let cases: Vec<(BytesMut, DecodeError)> = vec![
            (BytesMut::from(&[0u8, 0, 0, 0][..]), DecodeError::Empty),
            (raw(0xee, &[]), DecodeError::UnknownKind(0xee)),
            (raw(KIND_ACK, &[1, 2, 3]), DecodeError::Truncated("Ack")),
            (raw(KIND_ACK, &[0; 9]), DecodeError::TrailingBytes("Ack")),
            (
                raw(KIND_BYE, &[0, 2, 0xff, 0xfe]),
                DecodeError::BadUtf8("Bye"),
            ),
            (raw(KIND_BYE, &[0, 9, b'a']), DecodeError::Truncated("Bye")),
            (
                raw(KIND_SEND, &[0, 0, 0, 0, 0, 0, 0, 1, 7, 0]),
                DecodeError::BadDest(7),
            ),
            (
                raw(KIND_HELLO, &[0, 1, 0, 0, 0, 0, 0, 0, 0, 1]),
                DecodeError::Truncated("Hello"),
            ),
        ];
        for (mut buf, want) in cases {
            assert_eq!(codec.decode(&mut buf), Err(want.clone()), "{want}");
            assert_eq!(
                want.code() == ErrorCode::BAD_FRAME,
                !matches!(want, DecodeError::UnknownKind(_))
            );
        }
    }

    #[test]
    fn body_shares_the_read_buffer() {
        let body = Bytes::from_static(b"hello there");
        let mut buf = encode(&Frame::Send {
            msg_id: 1,
            to: Dest::User(9),
            body: body.clone(),
        });
        let start = buf.as_ptr() as usize;
        let end = start + buf.len();
        let Some(Frame::Send { body: got, .. }) = Codec::default().decode(&mut buf).unwrap() else {
            panic!("expected Send");
        };
        assert_eq!(got, body);
        let p = got.as_ptr() as usize;
        assert!(
            p >= start && p < end,
            "body was copied out of the read buffer"
        );
    }
}
