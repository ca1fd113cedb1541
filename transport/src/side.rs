//! Side streams: streams of their own beside a connection's frames, each opened with one header
//! frame and then carrying bulk bytes (a file), so that frames never wait behind them. QUIC has
//! them (its unidirectional streams); the byte-stream transports do not, and
//! [`Link::side_streams`](crate::framed::Link::side_streams) says so with `None`.
//!
//! This is the only place outside [`crate::quic`] that knows the streams are quinn's: the server
//! and the load generator open, accept, read and write side streams through these types.

use bytes::Bytes;
use imbench_proto::{Codec, Frame};

use crate::TransportError;

/// The side streams of one connection.
#[derive(Clone, Debug)]
pub struct SideStreams {
    conn: quinn::Connection,
    codec: Codec,
}

/// What a peer sent on one side stream.
pub enum SideStream {
    /// A frame (a stream may carry several, each its own item).
    Frame(Frame),
    /// Bulk bytes: the stream began with `header` ([`Frame::FileData`] client to server,
    /// [`Frame::FileIncoming`] server to client), and the rest of it is left unread for the
    /// caller.
    File {
        /// The frame the stream began with.
        header: Frame,
        /// The bytes after it.
        bytes: SideRecv,
    },
}

impl SideStreams {
    pub(crate) fn new(conn: quinn::Connection, codec: Codec) -> Self {
        Self { conn, codec }
    }

    /// Opens a stream and writes `header` at its front; write the bytes after it, then
    /// [`SideSend::finish`].
    pub async fn open(&self, header: &Frame) -> Result<SideSend, TransportError> {
        let send = crate::quic::open_uni_with(&self.conn, header, &self.codec).await?;
        Ok(SideSend(send))
    }

    /// Every stream the peer opens, as it arrives; the receiver ends with the connection.
    pub fn incoming(&self) -> tokio::sync::mpsc::Receiver<Result<SideStream, TransportError>> {
        crate::quic::uni_streams(self.conn.clone(), self.codec)
    }
}

/// The writing end of a side stream.
pub struct SideSend(quinn::SendStream);

impl SideSend {
    /// Writes `data` in order (emptying each piece).
    pub async fn write_chunks(&mut self, data: &mut [Bytes]) -> Result<(), TransportError> {
        self.0
            .write_all_chunks(data)
            .await
            .map_err(|e| TransportError::Io(std::io::Error::from(e)))
    }

    /// Writes one piece.
    pub async fn write_chunk(&mut self, data: Bytes) -> Result<(), TransportError> {
        self.0
            .write_chunk(data)
            .await
            .map_err(|e| TransportError::Io(std::io::Error::from(e)))
    }

    /// Ends the stream after everything written.
    pub fn finish(&mut self) {
        let _ = self.0.finish();
    }

    /// Abandons the stream, telling the peer `code`.
    pub fn reset(&mut self, code: u16) {
        let _ = self.0.reset(u32::from(code).into());
    }
}

/// The reading end of a side stream.
pub struct SideRecv(pub(crate) quinn::RecvStream);

impl SideRecv {
    /// Up to `out.len()` pieces as they arrived: `Some(n)` pieces read, `None` at the end.
    pub async fn read_chunks(
        &mut self,
        out: &mut [Bytes],
    ) -> Result<Option<usize>, TransportError> {
        self.0.read_chunks(out).await.map_err(read_error)
    }

    /// The next piece of at most `max` bytes, in order; `None` at the end.
    pub async fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>, TransportError> {
        self.0
            .read_chunk(max, true)
            .await
            .map(|c| c.map(|c| c.bytes))
            .map_err(read_error)
    }

    /// Everything up to the end of the stream, refusing more than `limit` bytes.
    pub async fn read_to_end(&mut self, limit: usize) -> Result<Vec<u8>, TransportError> {
        let mut out = Vec::new();
        while let Some(chunk) = self
            .read_chunk(limit.saturating_sub(out.len()).max(1))
            .await?
        {
            if out.len() + chunk.len() > limit {
                return Err(TransportError::Io(std::io::Error::other(format!(
                    "stream longer than {limit} bytes"
                ))));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Tells the peer to stop sending, with `code`.
    pub fn stop(&mut self, code: u16) {
        let _ = self.0.stop(u32::from(code).into());
    }
}

/// A read error, with the peer's code when it reset the stream.
fn read_error(e: quinn::ReadError) -> TransportError {
    match e {
        quinn::ReadError::Reset(code) => {
            TransportError::StreamReset(u16::try_from(code.into_inner()).unwrap_or(u16::MAX))
        }
        other => TransportError::Io(std::io::Error::from(other)),
    }
}
