//! imbench transports: every connection, whatever carries it, ends as a [`FramedConnection`]
//! that reads and writes [`imbench_proto::Frame`]s, so the server core and the load generator
//! never see which transport they drive.
//!
//! # Layout
//!
//! - [`framed`] — [`FrameReader`] and [`FrameWriter`] over any byte stream, and
//!   [`FramedConnection`], a reader, a writer and a way to close them.
//! - [`quic`] — QUIC through quinn: a listener for the server, a connector for clients, and the
//!   QUIC options both share.
//! - [`tls`] — the server's certificate and key (self-signed or from PEM files) and what a client
//!   trusts.
#![warn(missing_docs)]

pub mod framed;
pub mod quic;
pub mod tls;

pub use framed::{FrameReader, FrameWriter, FramedConnection};
pub use quic::{QuicConnector, QuicListener, QuicOptions};
pub use tls::{ClientTrust, ServerIdentity};

/// Why a transport operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Reading or writing the underlying byte stream failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent bytes that are not a valid frame.
    #[error("bad frame from peer: {0}")]
    Decode(#[from] imbench_proto::DecodeError),
    /// A frame could not be encoded (too large for the codec's limit).
    #[error("cannot encode frame: {0}")]
    Encode(#[from] imbench_proto::EncodeError),
    /// The peer closed the stream in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    TruncatedStream,
    /// The QUIC handshake or connection failed.
    #[error("QUIC connection: {0}")]
    Quic(#[from] quinn::ConnectionError),
    /// A QUIC connection could not be started (bad address or server name).
    #[error("QUIC connect: {0}")]
    QuicConnect(#[from] quinn::ConnectError),
    /// Certificates or keys could not be made, read or used.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// A timeout set by the caller expired.
    #[error("timed out after {0:?} while {1}")]
    Timeout(std::time::Duration, &'static str),
}
