//! The imbench wire protocol: frame types and their codec, with no IO.
//!
//! Every transport (QUIC streams, TCP, TLS, WebSocket messages) carries the same frames, so the
//! server core and the load generator speak one language whatever they run over. This crate only
//! turns bytes into frames and back: it can be tested, fuzzed and benchmarked without a socket.
//!
//! # Wire format
//!
//! ```text
//! u32 length (big endian, counts kind + fields) | u8 kind | fields…
//! ```
//!
//! Integers are big endian. Strings are a `u16` length then UTF-8. A message body is always the
//! last field and runs to the end of the frame, so it needs no length of its own.
//!
//! # Layout
//!
//! - [`frame`] — the [`Frame`] enum, destinations and error codes.
//! - [`codec`] — [`Codec`], which encodes frames and decodes them from a buffer, and its errors.
#![warn(missing_docs)]

pub mod codec;
pub mod frame;

pub use codec::{Codec, DecodeError, EncodeError, DEFAULT_MAX_FRAME_LEN};
pub use frame::{
    Dest, ErrorCode, Frame, HELLO_RECEIPTS, PROTOCOL_VERSION, RELAY_ID_BIT, SHA256_LEN, TOKEN_LEN,
};
