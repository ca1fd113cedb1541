//! Frames over a byte stream: a buffered reader that yields whole frames, a writer that
//! coalesces frames into one write, and the pair of them with a way to close the connection.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use imbench_proto::{Codec, Frame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::TransportError;

/// Initial read buffer. Small on purpose: a server holds one per connection, and chat frames
/// are small; the buffer grows (up to the codec's frame limit) only for larger frames.
const READ_BUFFER: usize = 1024;

/// Write buffer capacity kept between bursts.
const IDLE_WRITE_BUFFER: usize = 16 * 1024;

/// Reads whole frames from a byte stream.
pub struct FrameReader {
    io: Box<dyn AsyncRead + Send + Unpin>,
    buf: BytesMut,
    codec: Codec,
}

impl FrameReader {
    /// Wraps a byte stream; frames above `codec`'s limit are refused.
    pub fn new(io: Box<dyn AsyncRead + Send + Unpin>, codec: Codec) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            codec,
        }
    }

    /// The next frame, or `None` when the peer finished the stream cleanly between frames.
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, TransportError> {
        loop {
            if let Some(frame) = self.codec.decode(&mut self.buf)? {
                return Ok(Some(frame));
            }
            if self.buf.capacity() == self.buf.len() {
                self.buf.reserve(READ_BUFFER);
            }
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(TransportError::TruncatedStream)
                };
            }
        }
    }
}

/// Writes frames to a byte stream, coalescing everything queued with [`FrameWriter::queue`]
/// into one write on [`FrameWriter::flush`]: per-write cost, not per-frame cost, is what limits
/// fan-out.
pub struct FrameWriter {
    io: Box<dyn AsyncWrite + Send + Unpin>,
    buf: BytesMut,
    codec: Codec,
}

impl FrameWriter {
    /// Wraps a byte stream; frames above `codec`'s limit are refused before they are written.
    pub fn new(io: Box<dyn AsyncWrite + Send + Unpin>, codec: Codec) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            codec,
        }
    }

    /// Encodes `frame` into the pending batch without writing it.
    pub fn queue(&mut self, frame: &Frame) -> Result<(), TransportError> {
        self.codec.encode(frame, &mut self.buf)?;
        Ok(())
    }

    /// Bytes queued and not yet written.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Writes everything queued in one write.
    pub async fn flush(&mut self) -> Result<(), TransportError> {
        if !self.buf.is_empty() {
            self.io.write_all(&self.buf).await?;
            self.buf.clear();
            // A burst must not leave every idle connection holding a large buffer.
            if self.buf.capacity() > IDLE_WRITE_BUFFER {
                self.buf = BytesMut::new();
            }
        }
        self.io.flush().await?;
        Ok(())
    }

    /// Writes everything queued, as [`FrameWriter::flush`], but gives up with
    /// [`TransportError::Stalled`] when the peer accepts no byte for `idle`: a peer that
    /// stopped reading must not hold a writer, and what it was sent, for ever. The batch is
    /// dropped either way; the error ([`TransportError::BrokenWrite`] when the connection
    /// failed) says how much of it was written.
    pub async fn flush_progressing(&mut self, idle: Duration) -> Result<(), TransportError> {
        self.flush_until(idle, || tokio::time::Instant::now() + idle)
            .await
    }

    /// Writes everything queued, as [`FrameWriter::flush`], but stops at `deadline` with
    /// [`TransportError::Stalled`], saying how much was written: for a last write that must end
    /// in time however slowly the peer reads. The batch is dropped either way.
    pub async fn flush_by(&mut self, deadline: tokio::time::Instant) -> Result<(), TransportError> {
        let within = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.flush_until(within, || deadline).await
    }

    /// Writes everything queued, giving up at the time `give_up` says, asked afresh before each
    /// write (a moving limit for an idle time, a fixed one for a deadline). `said` is the time
    /// the error reports.
    async fn flush_until(
        &mut self,
        said: Duration,
        give_up: impl Fn() -> tokio::time::Instant,
    ) -> Result<(), TransportError> {
        let mut accepted = 0;
        let stalled = |accepted| TransportError::Stalled {
            idle: said,
            accepted,
        };
        let broken = |accepted, source| TransportError::BrokenWrite { accepted, source };
        while accepted < self.buf.len() {
            // The timer is polled only when the write cannot go ahead at once, so a write that
            // does costs no timer.
            let n = tokio::select! {
                biased;
                n = self.io.write(&self.buf[accepted..]) => n,
                _ = tokio::time::sleep_until(give_up()) => {
                    self.clear();
                    return Err(stalled(accepted));
                }
            };
            match n {
                Ok(0) => {
                    self.clear();
                    return Err(broken(accepted, std::io::ErrorKind::WriteZero.into()));
                }
                Ok(n) => accepted += n,
                Err(e) => {
                    self.clear();
                    return Err(broken(accepted, e));
                }
            }
        }
        self.clear();
        tokio::select! {
            biased;
            r = self.io.flush() => r.map_err(|e| broken(accepted, e))?,
            _ = tokio::time::sleep_until(give_up()) => return Err(stalled(accepted)),
        }
        Ok(())
    }

    fn clear(&mut self) {
        self.buf.clear();
        // A burst must not leave every idle connection holding a large buffer.
        if self.buf.capacity() > IDLE_WRITE_BUFFER {
            self.buf = BytesMut::new();
        }
    }

    /// Writes `bytes` as they are, after anything queued: for probing a peer with malformed
    /// input.
    pub async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        self.flush().await?;
        self.io.write_all(bytes).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// Queues `frame` and writes it at once.
    pub async fn write_frame(&mut self, frame: &Frame) -> Result<(), TransportError> {
        self.queue(frame)?;
        self.flush().await
    }

    /// Finishes the sending side: the peer reads end-of-stream after the last frame.
    pub async fn shutdown(&mut self) -> Result<(), TransportError> {
        self.flush().await?;
        self.io.shutdown().await?;
        Ok(())
    }
}

/// What is underneath a framed connection, kept to close it properly.
#[derive(Clone)]
pub enum Link {
    /// A QUIC connection; the frames travel on one of its bidirectional streams.
    Quic(quinn::Connection),
    /// A TCP connection, bare or under TLS or WebSocket.
    Stream(crate::stream::StreamLink),
}

/// A connection that speaks frames: read and write halves that can move to separate tasks, and
/// the link underneath to close it.
pub struct FramedConnection {
    /// Incoming frames.
    pub reader: FrameReader,
    /// Outgoing frames.
    pub writer: FrameWriter,
    /// Closes the connection as a whole.
    pub link: Link,
    /// The peer's address.
    pub peer: SocketAddr,
    /// A client's QUIC connection handed back before its handshake completed, so that its
    /// first frames go out as 0-RTT data: settle it after writing them.
    pub early: Option<crate::quic::EarlyData>,
    /// A client's QUIC connection on a UDP socket of its own, which can move to a new address
    /// and carry on.
    pub migrator: Option<crate::quic::Migrator>,
}

impl Link {
    /// Closes the connection after giving the peer up to `grace` to read what was written and
    /// close its side first. Call after the writer's `shutdown`, so that a final Error or Bye
    /// frame reaches the peer instead of being discarded by an abrupt close.
    pub async fn close(&self, code: u32, reason: &str, grace: Duration) {
        match self {
            Link::Quic(conn) => {
                let _ = tokio::time::timeout(grace, conn.closed()).await;
                conn.close(code.into(), reason.as_bytes());
            }
            Link::Stream(s) => s.close(grace).await,
        }
    }

    /// The connection's side streams, each frame in them limited by `codec`: QUIC has them,
    /// the byte-stream transports do not.
    pub fn side_streams(&self, codec: imbench_proto::Codec) -> Option<crate::side::SideStreams> {
        match self {
            Link::Quic(conn) => Some(crate::side::SideStreams::new(conn.clone(), codec)),
            Link::Stream(_) => None,
        }
    }

    /// Lets a client that has said Hello use the connection fully: over QUIC, open side
    /// streams and have `receive_window` bytes in flight (see
    /// [`crate::QuicOptions::admitted_receive_window`]); before, a server connection allows
    /// neither. Nothing to do on the other transports.
    pub fn admit(&self, receive_window: u32) {
        if let Link::Quic(conn) = self {
            conn.set_max_concurrent_uni_streams(crate::quic::MAX_UNI_STREAMS.into());
            conn.set_receive_window(receive_window.into());
        }
    }

    /// Closes the connection at once; unsent data is discarded.
    pub fn abort(&self, code: u32, reason: &str) {
        match self {
            Link::Quic(conn) => conn.close(code.into(), reason.as_bytes()),
            Link::Stream(s) => s.abort(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;

    /// Takes at most `room` bytes, a few at a time, then fails as a reset connection does.
    struct BreaksAfter {
        room: usize,
    }

    impl AsyncWrite for BreaksAfter {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            if self.room == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::ConnectionReset.into()));
            }
            let n = buf.len().min(self.room).min(7);
            self.room -= n;
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A connection that fails part way through a batch says how much of it went: the frames
    /// after that never left, and a server puts them back for the next connection.
    #[tokio::test]
    async fn a_write_that_breaks_says_how_much_was_written() {
        for (room, flush) in [(50, true), (50, false), (0, true)] {
            let mut writer = FrameWriter::new(Box::new(BreaksAfter { room }), Codec::default());
            for _ in 0..10 {
                let bye = Frame::Bye {
                    reason: "a reason long enough".into(),
                };
                writer.queue(&bye).expect("encodes");
            }
            let queued = writer.pending();
            assert!(queued > room);
            let result = if flush {
                writer.flush_progressing(Duration::from_secs(1)).await
            } else {
                writer
                    .flush_by(tokio::time::Instant::now() + Duration::from_secs(1))
                    .await
            };
            match result {
                Err(TransportError::BrokenWrite { accepted, source }) => {
                    assert_eq!(accepted, room);
                    assert_eq!(source.kind(), std::io::ErrorKind::ConnectionReset);
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(writer.pending(), 0, "the batch is dropped");
        }
    }
}
