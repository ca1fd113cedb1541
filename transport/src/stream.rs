//! The byte-stream transports: plain TCP, TLS 1.3 over TCP (rustls), and WebSocket with binary
//! messages, plain (`ws`) or over TLS (`wss`). All of them carry the same frames on one ordered
//! byte stream per connection, so everything on a connection shares one queue: what QUIC's
//! separate streams avoid.
//!
//! Over WebSocket a binary message carries whatever the writer coalesced (one or more whole
//! frames); the reader treats the messages' payloads as one byte stream, so frame boundaries
//! and message boundaries need not agree.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{Sink, Stream, StreamExt};
use imbench_proto::Codec;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::framed::{FrameReader, FrameWriter, FramedConnection, Link};
use crate::resume::ClientTickets;
use crate::tls::{ClientTrust, ServerIdentity};
use crate::{Transport, TransportError};

/// Largest WebSocket message sent; a bigger coalesced batch goes out as several messages.
/// Frames are a byte stream over the messages, so no message needs to hold a whole batch, and
/// the bound a receiver keeps per connection is this, the protocol's own frame size.
const WS_MESSAGE: usize = 64 * 1024;

/// WebSocket read buffer. tungstenite allocates it up front for every connection (128 KiB by
/// default: 1.25 GiB for 10,000 connections); chat frames are small.
const WS_READ_BUFFER: usize = 16 * 1024;

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        .max_message_size(Some(WS_MESSAGE))
        .max_frame_size(Some(WS_MESSAGE))
}

/// File descriptors one stream connection (TCP, TLS, WS, WSS) holds: its socket, shared by
/// its reader, its writer and its [`StreamLink`].
pub const FILES_PER_CONNECTION: u64 = 1;

/// What closes a stream connection: a share of its TCP socket, so that the connection can be
/// shut down while its reader and writer are owned by other tasks. A share, not a duplicate
/// descriptor: a server or generator holding 10,000 connections then needs 10,000
/// descriptors, not 20,000.
#[derive(Debug, Clone)]
pub struct StreamLink {
    socket: Arc<TcpStream>,
}

impl StreamLink {
    /// Sends FIN after what was written, then gives the peer up to `grace` to close its side,
    /// reading and discarding whatever it still sends, so that the close does not turn into a
    /// reset that could destroy the last frames before the peer read them.
    pub async fn close(&self, grace: Duration) {
        let _ = socket2::SockRef::from(&*self.socket).shutdown(std::net::Shutdown::Write);
        let _ = tokio::time::timeout(grace, async {
            let mut sink = [0u8; 4096];
            loop {
                if self.socket.readable().await.is_err() {
                    break;
                }
                match self.socket.try_read(&mut sink) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => break,
                }
            }
        })
        .await;
        self.abort();
    }

    /// Shuts the connection down at once in both directions.
    pub fn abort(&self) {
        let _ = socket2::SockRef::from(&*self.socket).shutdown(std::net::Shutdown::Both);
    }
}

/// One TCP socket shared by a connection's reader, writer and link: reads and writes go
/// through readiness and `try_read`/`try_write`, which take the socket by reference.
struct SharedTcp(Arc<TcpStream>);

/// Shares `tcp` between the link that closes it and the I/O that uses it.
fn share(tcp: TcpStream) -> (StreamLink, SharedTcp) {
    let socket = Arc::new(tcp);
    (
        StreamLink {
            socket: socket.clone(),
        },
        SharedTcp(socket),
    )
}

impl AsyncRead for SharedTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let room = unfilled.len();
            let mut got = 0;
            // A read that did not fill the buffer emptied the socket: its readiness is cleared
            // here (by answering WouldBlock to `try_io`, which clears only if no new data came
            // meanwhile), as tokio's own TcpStream does, so the next poll waits for data
            // instead of asking the kernel again for nothing: one read per arrival, not two.
            let read = self.0.try_io(tokio::io::Interest::READABLE, || {
                got = self.0.try_read(unfilled)?;
                if got > 0 && got < room {
                    return Err(std::io::ErrorKind::WouldBlock.into());
                }
                Ok(())
            });
            match read {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && got > 0 => {}
                // Readiness was stale; it is cleared now, so the next poll waits.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
            buf.advance(got);
            return Poll::Ready(Ok(()));
        }
    }
}

impl SharedTcp {
    /// Runs `write` once the socket is writable, again after readiness that proves stale.
    fn poll_write_with(
        &self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&TcpStream) -> std::io::Result<usize>,
    ) -> Poll<std::io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match write(&self.0) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SharedTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.poll_write_with(cx, |tcp| tcp.try_write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.poll_write_with(cx, |tcp| tcp.try_write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(socket2::SockRef::from(&*self.0).shutdown(std::net::Shutdown::Write))
    }
}

fn rustls_server(
    identity: &ServerIdentity,
    alpn: Option<&[u8]>,
) -> Result<TlsAcceptor, TransportError> {
    let mut tls = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TransportError::Tls(format!("TLS 1.3 setup: {e}")))?
        .with_no_client_auth()
        .with_single_cert(identity.cert_chain.clone(), identity.key.clone_key())
        .map_err(|e| TransportError::Tls(format!("server certificate: {e}")))?;
    if let Some(alpn) = alpn {
        tls.alpn_protocols = vec![alpn.to_vec()];
    }
    tls.session_storage = identity.sessions.clone();
    Ok(TlsAcceptor::from(Arc::new(tls)))
}

fn rustls_client(
    trust: &ClientTrust,
    alpn: Option<&[u8]>,
) -> Result<Arc<rustls::ClientConfig>, TransportError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TransportError::Tls(format!("TLS 1.3 setup: {e}")))?
        .with_root_certificates(trust.root_store()?)
        .with_no_client_auth();
    if let Some(alpn) = alpn {
        tls.alpn_protocols = vec![alpn.to_vec()];
    }
    // A client that keeps no tickets does a full handshake every time; see `crate::resume`.
    tls.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(tls))
}

fn alpn(transport: Transport) -> Option<&'static [u8]> {
    // Raw framed TLS announces the imbench protocol; WebSocket over TLS is HTTP/1.1 first.
    match transport {
        Transport::Tls => Some(crate::quic::ALPN),
        _ => None,
    }
}

/// Accepts TCP, TLS, WS or WSS connections on one address.
pub struct StreamListener {
    listener: TcpListener,
    transport: Transport,
    tls: Option<TlsAcceptor>,
    codec: Codec,
    /// When an accept error was last logged, and how many have not been since.
    accept_errors: std::sync::Mutex<(Option<std::time::Instant>, u64)>,
}

/// How often a listener that keeps failing to accept (out of files, say) says so.
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

impl StreamListener {
    /// Listens on `addr` for `transport` (any but QUIC); TLS and WSS present `identity`.
    pub async fn bind(
        addr: SocketAddr,
        transport: Transport,
        identity: &ServerIdentity,
        codec: Codec,
    ) -> Result<Self, TransportError> {
        let tls = match transport {
            Transport::Tls | Transport::Wss => Some(rustls_server(identity, alpn(transport))?),
            Transport::Tcp | Transport::Ws => None,
            Transport::Quic => {
                return Err(TransportError::Tls(
                    "QUIC is served by QuicListener, not StreamListener".into(),
                ))
            }
        };
        let listener = TcpListener::bind(addr).await?;
        Ok(Self {
            listener,
            transport,
            tls,
            codec,
            accept_errors: std::sync::Mutex::new((None, 0)),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The next connection. Errors of one accept (for example too many open files) are logged,
    /// once in [`ACCEPT_ERROR_LOG_EVERY`] with the count since, and the listener waits briefly
    /// before trying again, rather than ending.
    pub async fn accept(&self) -> IncomingStream {
        loop {
            match self.listener.accept().await {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    return IncomingStream {
                        tcp,
                        peer,
                        transport: self.transport,
                        tls: self.tls.clone(),
                        codec: self.codec,
                    };
                }
                Err(e) => {
                    self.log_accept_error(&e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

impl StreamListener {
    fn log_accept_error(&self, e: &std::io::Error) {
        let mut log = self.accept_errors.lock().unwrap_or_else(|p| p.into_inner());
        let (last, unsaid) = &mut *log;
        let now = std::time::Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < ACCEPT_ERROR_LOG_EVERY) {
            *unsaid += 1;
            return;
        }
        let more = match *unsaid {
            0 => String::new(),
            n => format!(" ({n} more since the last report)"),
        };
        tracing::warn!("accepting a {} connection: {e}{more}", self.transport);
        (*last, *unsaid) = (Some(now), 0);
    }
}

/// An accepted TCP connection before its TLS or WebSocket handshake.
pub struct IncomingStream {
    tcp: TcpStream,
    peer: SocketAddr,
    transport: Transport,
    tls: Option<TlsAcceptor>,
    codec: Codec,
}

impl IncomingStream {
    /// The peer's address.
    pub fn remote(&self) -> SocketAddr {
        self.peer
    }

    /// Closes the connection without a handshake.
    pub fn refuse(self) {
        drop(self.tcp);
    }

    /// Completes the TLS and WebSocket handshakes the transport needs.
    pub async fn establish(self) -> Result<FramedConnection, TransportError> {
        let (link, tcp) = share(self.tcp);
        let (peer, codec) = (self.peer, self.codec);
        match (self.transport, self.tls) {
            (Transport::Tcp, _) => {
                let w = SharedTcp(tcp.0.clone());
                Ok(framed(Box::new(tcp), Box::new(w), link, peer, codec))
            }
            (Transport::Tls, Some(tls)) => {
                let stream = tls.accept(tcp).await?;
                let (r, w) = tokio::io::split(stream);
                Ok(framed(Box::new(r), Box::new(w), link, peer, codec))
            }
            (Transport::Ws, _) => {
                let tcp = crate::ws_upgrade::expect_upgrade(tcp, "ws").await?;
                let ws = tokio_tungstenite::accept_async_with_config(tcp, Some(ws_config()))
                    .await
                    .map_err(ws_err)?;
                Ok(ws_framed(ws, link, peer, codec))
            }
            (Transport::Wss, Some(tls)) => {
                let stream = tls.accept(tcp).await?;
                let stream = crate::ws_upgrade::expect_upgrade(stream, "wss").await?;
                let ws = tokio_tungstenite::accept_async_with_config(stream, Some(ws_config()))
                    .await
                    .map_err(ws_err)?;
                Ok(ws_framed(ws, link, peer, codec))
            }
            (t, _) => Err(TransportError::Tls(format!(
                "{t} is not a stream transport"
            ))),
        }
    }
}

/// Opens TCP, TLS, WS or WSS connections.
pub struct StreamConnector {
    transport: Transport,
    tls: Option<Arc<rustls::ClientConfig>>,
    codec: Codec,
}

impl StreamConnector {
    /// A connector for `transport` (any but QUIC) trusting `trust` for TLS and WSS.
    pub fn new(
        transport: Transport,
        trust: &ClientTrust,
        codec: Codec,
    ) -> Result<Self, TransportError> {
        let tls = match transport {
            Transport::Tls | Transport::Wss => Some(rustls_client(trust, alpn(transport))?),
            Transport::Tcp | Transport::Ws => None,
            Transport::Quic => {
                return Err(TransportError::Tls(
                    "QUIC connections come from QuicConnector".into(),
                ))
            }
        };
        Ok(Self {
            transport,
            tls,
            codec,
        })
    }

    /// Connects to `server`; TLS and WSS verify the certificate for `server_name`, with a full
    /// handshake.
    pub async fn connect(
        &self,
        server: SocketAddr,
        server_name: &str,
    ) -> Result<FramedConnection, TransportError> {
        self.connect_as(server, server_name, None).await
    }

    /// [`StreamConnector::connect`] for one client: with `tickets`, TLS and WSS resume the
    /// client's earlier session when they can (the same round trips, no certificate).
    pub async fn connect_as(
        &self,
        server: SocketAddr,
        server_name: &str,
        tickets: Option<&Arc<ClientTickets>>,
    ) -> Result<FramedConnection, TransportError> {
        let tls = self.tls.as_ref().map(|base| match tickets {
            Some(t) => {
                TlsConnector::from(Arc::new(crate::resume::client_config(base, Some(t), false)))
            }
            None => TlsConnector::from(base.clone()),
        });
        let tcp = TcpStream::connect(server).await?;
        let _ = tcp.set_nodelay(true);
        let (link, tcp) = share(tcp);
        let codec = self.codec;
        let name = || {
            rustls::pki_types::ServerName::try_from(server_name.to_string())
                .map_err(|e| TransportError::Tls(format!("server name {server_name:?}: {e}")))
        };
        let url = format!("ws://{}/imbench", host_port(server_name, server));
        match (self.transport, &tls) {
            (Transport::Tcp, _) => {
                let w = SharedTcp(tcp.0.clone());
                Ok(framed(Box::new(tcp), Box::new(w), link, server, codec))
            }
            (Transport::Tls, Some(tls)) => {
                let stream = tls.connect(name()?, tcp).await?;
                let (r, w) = tokio::io::split(stream);
                Ok(framed(Box::new(r), Box::new(w), link, server, codec))
            }
            (Transport::Ws, _) => {
                let (ws, _) =
                    tokio_tungstenite::client_async_with_config(url, tcp, Some(ws_config()))
                        .await
                        .map_err(ws_err)?;
                Ok(ws_framed(ws, link, server, codec))
            }
            (Transport::Wss, Some(tls)) => {
                let stream = tls.connect(name()?, tcp).await?;
                let (ws, _) =
                    tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config()))
                        .await
                        .map_err(ws_err)?;
                Ok(ws_framed(ws, link, server, codec))
            }
            (t, _) => Err(TransportError::Tls(format!(
                "{t} is not a stream transport"
            ))),
        }
    }
}

fn host_port(name: &str, addr: SocketAddr) -> String {
    if name.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{name}]:{}", addr.port())
    } else {
        format!("{name}:{}", addr.port())
    }
}

fn ws_err(e: tokio_tungstenite::tungstenite::Error) -> TransportError {
    match e {
        tokio_tungstenite::tungstenite::Error::Io(e) => TransportError::Io(e),
        other => TransportError::WebSocket(other.to_string()),
    }
}

fn framed(
    r: Box<dyn AsyncRead + Send + Unpin>,
    w: Box<dyn AsyncWrite + Send + Unpin>,
    link: StreamLink,
    peer: SocketAddr,
    codec: Codec,
) -> FramedConnection {
    FramedConnection {
        early: None,
        migrator: None,
        reader: FrameReader::new(r, codec),
        writer: FrameWriter::new(w, codec),
        link: Link::Stream(link),
        peer,
    }
}

fn ws_framed<S>(
    ws: WebSocketStream<S>,
    link: StreamLink,
    peer: SocketAddr,
    codec: Codec,
) -> FramedConnection
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sink, stream) = ws.split();
    framed(
        Box::new(WsReader {
            stream,
            pending: Bytes::new(),
        }),
        Box::new(WsWriter {
            sink,
            buf: BytesMut::new(),
        }),
        link,
        peer,
        codec,
    )
}

/// Reads the payloads of binary WebSocket messages as one byte stream.
struct WsReader<S> {
    stream: SplitStream<WebSocketStream<S>>,
    pending: Bytes,
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsReader<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        while self.pending.is_empty() {
            match ready!(Pin::new(&mut self.stream).poll_next(cx)) {
                Some(Ok(Message::Binary(b))) => self.pending = b,
                // Control messages are the WebSocket layer's business.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "text WebSocket message; imbench frames travel in binary messages",
                    )))
                }
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                Some(Err(e)) => return Poll::Ready(Err(std::io::Error::other(e))),
            }
        }
        let n = self.pending.len().min(buf.remaining());
        let chunk = self.pending.split_to(n);
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

/// Collects writes and sends them as one binary WebSocket message per flush.
struct WsWriter<S> {
    sink: SplitSink<WebSocketStream<S>, Message>,
    buf: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsWriter<S> {
    /// Hands the collected bytes to the WebSocket as one message.
    fn poll_send_buffered(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.buf.is_empty() {
            return Poll::Ready(Ok(()));
        }
        ready!(Pin::new(&mut self.sink).poll_ready(cx)).map_err(std::io::Error::other)?;
        let message = Message::Binary(self.buf.split().freeze());
        Pin::new(&mut self.sink)
            .start_send(message)
            .map_err(std::io::Error::other)?;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsWriter<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.buf.len() >= WS_MESSAGE {
            ready!(self.poll_send_buffered(cx))?;
        }
        // No message larger than a receiver takes: a long write goes out in several.
        let n = data.len().min(WS_MESSAGE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_send_buffered(cx))?;
        Pin::new(&mut self.sink)
            .poll_flush(cx)
            .map_err(std::io::Error::other)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_send_buffered(cx))?;
        Pin::new(&mut self.sink)
            .poll_close(cx)
            .map_err(std::io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imbench_proto::Frame;

    #[tokio::test]
    async fn frames_cross_every_stream_transport_both_ways() {
        let id = ServerIdentity::self_signed(&crate::tls::DEFAULT_CERT_NAMES).unwrap();
        for transport in [
            Transport::Tcp,
            Transport::Tls,
            Transport::Ws,
            Transport::Wss,
        ] {
            let listener = StreamListener::bind(
                "127.0.0.1:0".parse().unwrap(),
                transport,
                &id,
                Codec::default(),
            )
            .await
            .unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(async move {
                let mut conn = listener.accept().await.establish().await.unwrap();
                while let Some(frame) = conn.reader.read_frame().await.unwrap() {
                    let Frame::Ping { nonce } = frame else {
                        panic!("unexpected {frame:?}")
                    };
                    conn.writer.queue(&Frame::Pong { nonce }).unwrap();
                    conn.writer.flush().await.unwrap();
                }
                conn.writer.shutdown().await.unwrap();
                conn.link.close(0, "done", Duration::from_secs(1)).await;
            });
            let connector =
                StreamConnector::new(transport, &id.client_trust(), Codec::default()).unwrap();
            let mut conn = connector.connect(addr, "localhost").await.unwrap();
            // A batch larger than one WebSocket message, to cross message boundaries.
            let n = 100_000u64;
            for nonce in 0..n {
                conn.writer.queue(&Frame::Ping { nonce }).unwrap();
            }
            conn.writer.flush().await.unwrap();
            for nonce in 0..n {
                assert_eq!(
                    conn.reader.read_frame().await.unwrap(),
                    Some(Frame::Pong { nonce }),
                    "{transport}"
                );
            }
            conn.writer.shutdown().await.unwrap();
            assert_eq!(conn.reader.read_frame().await.unwrap(), None, "{transport}");
            server.await.unwrap();
        }
    }
}
