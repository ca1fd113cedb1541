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
//! - [`side`] — side streams: a connection's streams for bulk bytes beside its frames (QUIC's
//!   unidirectional streams; absent on the byte-stream transports).
//! - [`stream`] — TCP, TLS over TCP, and WebSocket (`ws`, `wss`).
//! - [`endpoint`] — a listener and a connector for any of them, so that callers pick a
//!   [`Transport`] and nothing else.
//! - [`resume`] — TLS session resumption: each client's own tickets, 0-RTT, and the server's
//!   session store.
//! - [`tls`] — the server's certificate and key (self-signed or from PEM files) and what a client
//!   trusts.
#![warn(missing_docs)]

mod batch;
pub mod endpoint;
pub mod framed;
pub mod quic;
pub mod resume;
pub mod side;
pub mod stream;
pub mod tls;
mod ws_upgrade;

pub use endpoint::{Connector, Incoming, Listener};
pub use framed::{FrameReader, FrameWriter, FramedConnection};
pub use quic::{EarlyData, Migrator, QuicConnector, QuicListener, QuicOptions};
pub use resume::{ClientTickets, Resumption, ServerSessions};
pub use side::{SideRecv, SideSend, SideStream, SideStreams};
pub use tls::{ClientTrust, ServerIdentity};

/// The transports imbench speaks, each carrying the same frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// QUIC (quinn), TLS 1.3 inside; frames on one long-lived stream per connection.
    Quic,
    /// Plain TCP.
    Tcp,
    /// TLS 1.3 over TCP (rustls).
    Tls,
    /// WebSocket, binary messages, over plain TCP.
    Ws,
    /// WebSocket, binary messages, over TLS 1.3.
    Wss,
}

impl Transport {
    /// Every transport, in the order comparisons list them.
    pub const ALL: [Transport; 5] = [
        Transport::Quic,
        Transport::Tcp,
        Transport::Tls,
        Transport::Ws,
        Transport::Wss,
    ];

    /// Whether its connections are TLS (QUIC's own, or over TCP): a server certificate is
    /// presented and checked.
    pub fn uses_tls(self) -> bool {
        matches!(self, Transport::Quic | Transport::Tls | Transport::Wss)
    }

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Quic => "quic",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Transport {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Transport::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown transport {s:?}: expected quic, tcp, tls, ws or wss"))
    }
}

/// Why a transport operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Reading or writing the underlying byte stream failed.
    #[error("i/o: {}", with_causes(.0))]
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
    /// The WebSocket handshake or framing failed.
    #[error("WebSocket: {0}")]
    WebSocket(String),
    /// A WebSocket port got a plain HTTP request, no upgrade (a browser, a health check), and
    /// answered it 426.
    #[error("a plain HTTP request, not a WebSocket upgrade: answered 426")]
    NotAnUpgrade,
    /// A timeout set by the caller expired.
    #[error("timed out after {0:?} while {1}")]
    Timeout(std::time::Duration, &'static str),
    /// The peer accepted no byte for this long while there were bytes to write; `accepted`
    /// bytes of the batch had been written before it stalled.
    #[error("the peer accepted no byte for {idle:?}")]
    Stalled {
        /// How long nothing moved.
        idle: std::time::Duration,
        /// Bytes of the batch written before that.
        accepted: usize,
    },
    /// The connection failed part way through a batch; `accepted` bytes of it had been
    /// written before.
    #[error("i/o after {accepted} bytes of the write: {source}")]
    BrokenWrite {
        /// Bytes of the batch written before the failure.
        accepted: usize,
        /// What failed.
        source: std::io::Error,
    },
    /// The peer abandoned a side stream, with this code (an imbench error code).
    #[error("stream reset by the peer with code {0}")]
    StreamReset(u16),
}

/// An I/O error with what caused it: quinn's read and write errors wrap the connection's own
/// error ("connection lost" over "timed out", or over the peer's close) and say only the first.
fn with_causes(e: &std::io::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.get_ref().and_then(|inner| inner.source());
    while let Some(c) = cause {
        let said = c.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_io_error_says_what_caused_it() {
        let lost = quinn::ReadError::ConnectionLost(quinn::ConnectionError::TimedOut);
        let e = super::TransportError::from(std::io::Error::from(lost));
        assert_eq!(e.to_string(), "i/o: connection lost: timed out");
        let plain =
            super::TransportError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(plain.to_string(), "i/o: connection reset");
    }
}
