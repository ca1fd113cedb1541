//! QUIC through quinn. Each client connection carries its frames on one long-lived
//! bidirectional stream, opened by the client; TLS 1.3 with the ALPN protocol `imbench/1`.
//!
//! Many client connections share a UDP endpoint (quinn multiplexes them), but one endpoint is
//! driven by one task, so the connector spreads its connections over several endpoints to use
//! more than one core.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use imbench_proto::Codec;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Endpoint, IdleTimeout, TransportConfig, VarInt};

use crate::framed::{FrameReader, FrameWriter, FramedConnection, Link};
use crate::resume::ClientTickets;
use crate::side::{SideRecv, SideStream};
use crate::tls::{ClientTrust, ServerIdentity};
use crate::TransportError;

/// Unidirectional streams a peer may have open at once (one per message in flight, for clients
/// that send a stream per message; one per file transfer). quinn keeps state for every stream
/// a peer may open, so this is memory per connection on both sides: at 1,024 a QUIC connection
/// took about 100 KiB on each side, at 64 about 55 KiB (2,000 clients, measured). A client that
/// has more messages in flight on streams of their own waits for credit, as with any flow
/// control, and `send_delay` shows it.
pub(crate) const MAX_UNI_STREAMS: u32 = 64;

/// Bytes a server accepts on a connection, over all its streams, before the client has said
/// Hello: enough for a Hello, nothing to speak of for a crowd of connections that never do.
const PRE_HELLO_WINDOW: u32 = 16 * 1024;

/// A server's connection-wide receive window once the client has said Hello, unless
/// [`QuicOptions::receive_window`] sets one: it bounds what quinn buffers for one connection
/// over all its streams, which the per-stream window alone does not (64 streams of 1.25 MB).
pub const SERVER_RECEIVE_WINDOW: u32 = 8 * 1024 * 1024;

/// The ALPN protocol both sides insist on, so that an imbench client never talks to something
/// else by accident.
pub const ALPN: &[u8] = b"imbench/1";

/// QUIC congestion controllers quinn offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Congestion {
    /// CUBIC (quinn's default): loss-based, the Linux TCP default.
    #[default]
    Cubic,
    /// NewReno: loss-based, the RFC 9002 reference.
    NewReno,
    /// BBR (quinn's is experimental): model-based, paces to the measured bottleneck.
    Bbr,
}

/// QUIC settings shared by server and client. Defaults suit thousands of mostly idle chat
/// connections on one machine.
#[derive(Debug, Clone)]
pub struct QuicOptions {
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// Keep-alive interval, so that quiet connections outlive `idle_timeout`.
    pub keep_alive: Option<Duration>,
    /// Per-stream receive window (flow control); `None` keeps quinn's default (1.25 MB).
    pub stream_receive_window: Option<u32>,
    /// Connection-wide receive window; `None` keeps quinn's default on a client (unlimited, so
    /// the stream window is what binds) and [`SERVER_RECEIVE_WINDOW`] on a server. A server
    /// applies it only after Hello; before, a connection gets 16 KiB and no side streams.
    pub receive_window: Option<u32>,
    /// Most bytes a connection holds unacknowledged or waiting to be sent, over all its streams;
    /// `None` keeps quinn's default (8 × the stream window, 10 MB). A file relay writes into
    /// this buffer, so it bounds the server's memory per recipient connection; the default,
    /// 4 MiB, still covers the bandwidth-delay product of a gigabit link at 30 ms.
    pub send_window: Option<u64>,
    /// Congestion controller.
    pub congestion: Congestion,
    /// Whether quinn interleaves streams fairly when several have data (its default), or sends
    /// them one after another, which packs each stream's data more densely.
    pub send_fairness: bool,
    /// Client side: after Hello (on the connection's bidirectional stream), write each flush
    /// (each message, when written one at a time) on a unidirectional stream of its own instead
    /// of the one long-lived stream. Messages then never wait behind each other's losses, and
    /// are no longer ordered relative to each other.
    pub stream_per_message: bool,
    /// UDP send and receive buffer requested for each endpoint's socket. The kernel caps it
    /// at `net.core.rmem_max` / `wmem_max`. Linux's default (about 208 KiB) overflows when
    /// thousands of connections share one socket, and every dropped datagram costs a QUIC
    /// retransmission and a congestion-window cut.
    pub socket_buffer: usize,
    /// ACK frequency (the QUIC extension draft-ietf-quic-ack-frequency, which quinn speaks on
    /// both sides): the number of ack-eliciting packets this side asks its peer to receive
    /// before it must send an ACK; the peer still acknowledges within its max_ack_delay
    /// (25 ms). `None` asks nothing, and the peer follows RFC 9000: an ACK for every second
    /// packet. Fewer ACKs mean fewer datagrams for both sides to handle when one side sends
    /// many packets, as a server fanning group messages out does.
    pub ack_frequency: Option<u32>,
}

/// The ack-eliciting threshold [`QuicOptions::ack_frequency`] asks for by default: with it a
/// 1 -> 1,000 fan-out at 100,000 deliveries a second sent 10 % fewer datagrams and had a lower
/// fan-out p99 in each of three runs against three without (docs/transports.md).
pub const DEFAULT_ACK_FREQUENCY: u32 = 8;

/// The largest ACK frequency a setting may ask for. Past a few dozen packets the peer's
/// max_ack_delay (25 ms) sends the ACK first at any rate short of tens of thousands of
/// packets a second, so a larger count is a typo, not a tuning.
pub const MAX_ACK_FREQUENCY: u32 = 1000;

/// Reads an ACK frequency as a person writes it (a scenario's `quic.ack_frequency`, the
/// server's `--quic-ack-frequency`): a whole number of packets from 0 to
/// [`MAX_ACK_FREQUENCY`], where 0 asks for an ACK of every packet and 8 for an ACK after 9
/// packets, or `off` (`None`) to ask nothing and keep RFC 9000's ACK of every second packet.
pub fn parse_ack_frequency(text: &str) -> Result<Option<u32>, String> {
    let t = text.trim();
    if t == "off" {
        return Ok(None);
    }
    match t.parse::<u64>() {
        Ok(n) if n <= u64::from(MAX_ACK_FREQUENCY) => Ok(Some(n as u32)),
        Ok(n) => Err(format!(
            "{n} packets is more than an ACK frequency may be (at most {MAX_ACK_FREQUENCY})"
        )),
        Err(_) => Err(format!(
            "{text:?} is not an ACK frequency: give a whole number of packets from 0 (an ACK \
             for every packet) to {MAX_ACK_FREQUENCY}, or off (RFC 9000's ACK for every second \
             packet)"
        )),
    }
}

impl Default for QuicOptions {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(60),
            keep_alive: Some(Duration::from_secs(10)),
            stream_receive_window: None,
            receive_window: None,
            send_window: Some(4 * 1024 * 1024),
            congestion: Congestion::Cubic,
            send_fairness: true,
            stream_per_message: false,
            socket_buffer: 4 * 1024 * 1024,
            ack_frequency: Some(DEFAULT_ACK_FREQUENCY),
        }
    }
}

impl QuicOptions {
    fn transport_config(&self) -> Result<TransportConfig, TransportError> {
        let mut t = TransportConfig::default();
        let idle = IdleTimeout::try_from(self.idle_timeout).map_err(|_| {
            TransportError::Tls(format!("idle timeout {:?} too large", self.idle_timeout))
        })?;
        t.max_idle_timeout(Some(idle));
        t.keep_alive_interval(self.keep_alive);
        // One chat stream per connection; a few spare for later features.
        t.max_concurrent_bidi_streams(VarInt::from_u32(4));
        // Clients that send a stream per message need room for many at once.
        t.max_concurrent_uni_streams(VarInt::from_u32(MAX_UNI_STREAMS));
        if let Some(w) = self.stream_receive_window {
            t.stream_receive_window(VarInt::from_u32(w));
        }
        if let Some(w) = self.receive_window {
            t.receive_window(VarInt::from_u32(w));
        }
        if let Some(w) = self.send_window {
            t.send_window(w);
        }
        t.send_fairness(self.send_fairness);
        if let Some(threshold) = self.ack_frequency {
            let mut ack = quinn::AckFrequencyConfig::default();
            ack.ack_eliciting_threshold(VarInt::from_u32(threshold));
            t.ack_frequency_config(Some(ack));
        }
        match self.congestion {
            Congestion::Cubic => {
                t.congestion_controller_factory(Arc::new(quinn::congestion::CubicConfig::default()))
            }
            Congestion::NewReno => t.congestion_controller_factory(Arc::new(
                quinn::congestion::NewRenoConfig::default(),
            )),
            Congestion::Bbr => {
                t.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()))
            }
        };
        Ok(t)
    }

    /// The server's: as a client's, but a connection that has not said Hello may open no side
    /// stream and send little; [`crate::framed::Link::admit`] opens both after Hello.
    fn server_transport_config(&self) -> Result<Arc<TransportConfig>, TransportError> {
        let mut t = self.transport_config()?;
        t.max_concurrent_uni_streams(VarInt::from_u32(0));
        t.receive_window(VarInt::from_u32(PRE_HELLO_WINDOW));
        Ok(Arc::new(t))
    }

    /// The server's connection-wide receive window after Hello.
    pub fn admitted_receive_window(&self) -> u32 {
        self.receive_window.unwrap_or(SERVER_RECEIVE_WINDOW)
    }
}

/// A UDP socket bound to `addr` with `buffer` bytes of send and receive buffer requested.
fn udp_socket(addr: SocketAddr, buffer: usize) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(false).ok();
    }
    // Best effort: a smaller buffer than asked for still works, only worse under load.
    if let Err(e) = socket.set_recv_buffer_size(buffer) {
        tracing::warn!("cannot set UDP receive buffer to {buffer} bytes: {e}");
    }
    if let Err(e) = socket.set_send_buffer_size(buffer) {
        tracing::warn!("cannot set UDP send buffer to {buffer} bytes: {e}");
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

fn runtime() -> std::io::Result<Arc<dyn quinn::Runtime>> {
    quinn::default_runtime()
        .ok_or_else(|| std::io::Error::other("QUIC needs a tokio runtime; none is running"))
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    crate::tls::provider()
}

fn tls_err(what: &str) -> impl Fn(rustls::Error) -> TransportError + '_ {
    move |e| TransportError::Tls(format!("{what}: {e}"))
}

/// Whether the host at `addr` says nothing listens on that UDP port: an empty datagram is
/// sent from a connected socket, and the kernel reports the ICMP "port unreachable" it gets
/// back as a refused connection. QUIC itself never tells: quinn waits out its whole timeout.
/// `false` when nothing is heard within `wait` (a port that is open, or a host or firewall that
/// answers nothing); a QUIC server drops the empty datagram as too short to be a packet.
pub async fn udp_port_refused(addr: SocketAddr, wait: Duration) -> bool {
    let bind: SocketAddr = match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let Ok(socket) = tokio::net::UdpSocket::bind(bind).await else {
        return false;
    };
    if socket.connect(addr).await.is_err() {
        return false;
    }
    let refused = |e: &std::io::Error| e.kind() == std::io::ErrorKind::ConnectionRefused;
    if let Err(e) = socket.send(&[]).await {
        return refused(&e);
    }
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(wait, socket.recv(&mut buf)).await,
        Ok(Err(e)) if refused(&e)
    )
}

/// Server side: a bound QUIC endpoint that accepts connections.
pub struct QuicListener {
    endpoint: Endpoint,
    codec: Codec,
}

impl QuicListener {
    /// Binds a QUIC endpoint on `addr` presenting `identity`.
    pub fn bind(
        addr: SocketAddr,
        identity: &ServerIdentity,
        opts: &QuicOptions,
        codec: Codec,
    ) -> Result<Self, TransportError> {
        let mut tls = rustls::ServerConfig::builder_with_provider(ring())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_err("TLS 1.3 setup"))?
            .with_no_client_auth()
            .with_single_cert(identity.cert_chain.clone(), identity.key.clone_key())
            .map_err(tls_err("server certificate"))?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        tls.session_storage = identity.sessions.clone();
        // Clients resuming a session may send Hello as 0-RTT data; quinn takes either no early
        // data or this value, and bounds what it buffers by its own flow control.
        tls.max_early_data_size = u32::MAX;
        let crypto = QuicServerConfig::try_from(tls)
            .map_err(|e| TransportError::Tls(format!("QUIC server crypto: {e}")))?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(opts.server_transport_config()?);
        // The server's one socket takes every client's datagrams, so it needs the large
        // buffer more than any client socket does.
        let socket = udp_socket(addr, opts.socket_buffer)?;
        let runtime = runtime()?;
        let socket = crate::batch::BatchingSocket::wrap(runtime.as_ref(), socket)?;
        let endpoint =
            Endpoint::new_with_abstract_socket(Default::default(), Some(config), socket, runtime)?;
        Ok(Self { endpoint, codec })
    }

    /// The address actually bound (useful after binding port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// The next incoming connection attempt, or `None` once the listener is closed. The
    /// handshake has not happened yet: call [`IncomingQuic::establish`] in a task of its own so
    /// that one slow handshake does not hold up the others.
    pub async fn accept(&self) -> Option<IncomingQuic> {
        let incoming = self.endpoint.accept().await?;
        Some(IncomingQuic {
            incoming,
            codec: self.codec,
        })
    }

    /// Stops accepting and closes every connection with `code` and `reason`.
    pub fn close(&self, code: u32, reason: &str) {
        self.endpoint.close(code.into(), reason.as_bytes());
    }

    /// Waits until every connection has been closed and its close acknowledged or timed out.
    pub async fn wait_idle(&self) {
        self.endpoint.wait_idle().await;
    }
}

/// A connection attempt that has not completed its handshake.
pub struct IncomingQuic {
    incoming: quinn::Incoming,
    codec: Codec,
}

impl IncomingQuic {
    /// The address the attempt came from.
    pub fn remote(&self) -> SocketAddr {
        self.incoming.remote_address()
    }

    /// Turns the attempt away without a handshake (for example over a connection limit).
    pub fn refuse(self) {
        self.incoming.refuse();
    }

    /// Completes the handshake and waits for the client to open its chat stream.
    ///
    /// The connection is used as soon as the client's first flight arrives (0.5-RTT): a
    /// client that sent Hello as 0-RTT data gets its Welcome in the server's first flight,
    /// which is what 0-RTT is for. The server authenticates clients by the token in Hello,
    /// never by TLS, so answering before the client's Finished weakens nothing it relies on.
    pub async fn establish(self) -> Result<FramedConnection, TransportError> {
        let peer = self.incoming.remote_address();
        let conn = match self.incoming.accept()?.into_0rtt() {
            Ok((conn, _)) => conn,
            Err(connecting) => connecting.await?,
        };
        let (send, recv) = conn.accept_bi().await?;
        Ok(FramedConnection {
            reader: FrameReader::new(Box::new(recv), self.codec),
            writer: FrameWriter::new(Box::new(send), self.codec),
            link: Link::Quic(conn),
            peer,
            early: None,
            migrator: None,
        })
    }
}

/// Client side: opens QUIC connections to one server, spread over several UDP endpoints.
pub struct QuicConnector {
    /// Shared by the connections in turn; empty: each connection gets a socket of its own.
    endpoints: Vec<Endpoint>,
    /// Where a connection's own socket is bound, and its buffer size.
    bind: SocketAddr,
    socket_buffer: usize,
    next: AtomicUsize,
    codec: Codec,
    stream_per_message: bool,
    /// The client TLS configuration each connection starts from (resumption off).
    tls: Arc<rustls::ClientConfig>,
    transport: Arc<TransportConfig>,
    /// The configuration of a connection without tickets, built once: only a client's own
    /// ticket store needs a configuration of its own.
    plain: quinn::ClientConfig,
}

impl QuicConnector {
    /// A connector with `endpoints` UDP sockets bound on the unspecified address of `server`'s
    /// family, trusting `trust`. With 0, each connection gets a socket (and a quinn endpoint)
    /// of its own, which it can move to another socket: see [`FramedConnection::migrator`].
    pub fn new(
        trust: &ClientTrust,
        opts: &QuicOptions,
        endpoints: usize,
        server: SocketAddr,
        codec: Codec,
    ) -> Result<Self, TransportError> {
        let mut tls = rustls::ClientConfig::builder_with_provider(ring())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_err("TLS 1.3 setup"))?
            .with_root_certificates(trust.root_store()?)
            .with_no_client_auth();
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let tls = Arc::new(tls);
        let transport = Arc::new(opts.transport_config()?);
        let config = client_config(&tls, None, false, &transport)?;
        let bind_ip: IpAddr = match server {
            SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let bind = SocketAddr::new(bind_ip, 0);
        let endpoints = (0..endpoints)
            .map(|_| client_endpoint(bind, opts.socket_buffer, &config, true))
            .collect::<Result<Vec<_>, std::io::Error>>()?;
        Ok(Self {
            endpoints,
            bind,
            socket_buffer: opts.socket_buffer,
            next: AtomicUsize::new(0),
            codec,
            stream_per_message: opts.stream_per_message,
            tls,
            transport,
            plain: config,
        })
    }

    /// Connects to `server`, verifying its certificate for `server_name`, and opens the chat
    /// stream, with a full handshake. Nothing reaches the server on that stream until the first
    /// frame is written.
    pub async fn connect(
        &self,
        server: SocketAddr,
        server_name: &str,
    ) -> Result<FramedConnection, TransportError> {
        self.connect_as(server, server_name, None, false).await
    }

    /// [`QuicConnector::connect`] for one client. With `tickets` the handshake resumes the client's earlier session when it can; with
    /// `early_data` as well, the connection is handed back before the handshake completes, so
    /// that the first frames go out as 0-RTT data (see [`FramedConnection::early`]).
    pub async fn connect_as(
        &self,
        server: SocketAddr,
        server_name: &str,
        tickets: Option<&Arc<ClientTickets>>,
        early_data: bool,
    ) -> Result<FramedConnection, TransportError> {
        let config = match tickets {
            None => self.plain.clone(),
            tickets => client_config(&self.tls, tickets, early_data, &self.transport)?,
        };
        let (endpoint, own) = if self.endpoints.is_empty() {
            (
                client_endpoint(self.bind, self.socket_buffer, &config, false)?,
                true,
            )
        } else {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len();
            (self.endpoints[i].clone(), false)
        };
        let connecting = endpoint.connect_with(config, server, server_name)?;
        let (conn, accepted) = match connecting.into_0rtt() {
            Ok((conn, accepted)) if early_data => (conn, Some(accepted)),
            // into_0rtt succeeds only with a ticket that allows early data, which a client
            // configuration without early data never has.
            Ok((conn, _)) => (conn, None),
            Err(connecting) => (connecting.await?, None),
        };
        let (reader, writer) = self.chat_stream(&conn).await?;
        let early = accepted.map(|accepted| EarlyData {
            accepted,
            conn: conn.clone(),
            codec: self.codec,
            stream_per_message: self.stream_per_message,
        });
        let migrator = own.then(|| Migrator {
            endpoint,
            bind: self.bind,
            socket_buffer: self.socket_buffer,
        });
        Ok(FramedConnection {
            reader,
            writer,
            link: Link::Quic(conn),
            peer: server,
            early,
            migrator,
        })
    }

    async fn chat_stream(
        &self,
        conn: &quinn::Connection,
    ) -> Result<(FrameReader, FrameWriter), TransportError> {
        chat_stream(conn, self.codec, self.stream_per_message).await
    }

    /// Waits until every connection made through this connector is fully closed.
    pub async fn wait_idle(&self) {
        for e in &self.endpoints {
            e.wait_idle().await;
        }
    }
}

/// Opens the chat stream of a client connection: frames are read from it, and written on it
/// (or, per message, on streams of their own).
async fn chat_stream(
    conn: &quinn::Connection,
    codec: Codec,
    stream_per_message: bool,
) -> Result<(FrameReader, FrameWriter), TransportError> {
    let (send, recv) = conn.open_bi().await?;
    let writer: Box<dyn tokio::io::AsyncWrite + Send + Unpin> = if stream_per_message {
        Box::new(PerMessageWriter {
            conn: conn.clone(),
            first: Some(send),
            buf: Vec::new(),
            pending: None,
            hello_sent: false,
        })
    } else {
        Box::new(send)
    };
    Ok((
        FrameReader::new(Box::new(recv), codec),
        FrameWriter::new(writer, codec),
    ))
}

/// A client endpoint on a socket of its own, bound to `bind`: shared by many connections
/// (`shared`), or the one connection's own (see [`OneDatagramPerRead`]).
fn client_endpoint(
    bind: SocketAddr,
    socket_buffer: usize,
    config: &quinn::ClientConfig,
    shared: bool,
) -> std::io::Result<Endpoint> {
    let runtime = runtime()?;
    let socket = udp_socket(bind, socket_buffer)?;
    let socket = if shared {
        crate::batch::BatchingSocket::wrap(runtime.as_ref(), socket)?
    } else {
        OneDatagramPerRead::wrap(runtime.as_ref(), socket)?
    };
    let mut e = Endpoint::new_with_abstract_socket(Default::default(), None, socket, runtime)?;
    e.set_default_client_config(config.clone());
    Ok(e)
}

/// The socket of an endpoint that carries one client connection, with no datagrams coalesced:
/// each of the (up to 32) datagrams one system call reads has a slot of its own, one datagram
/// long.
///
/// quinn gives every endpoint a receive buffer for 32 datagrams of as many segments as the
/// kernel may coalesce into one (GRO, 64 on Linux) of 1,472 bytes each: 2.9 MiB. For an
/// endpoint that carries many connections that is what lets one read take a burst. For one
/// client's own connection, which gets a few datagrams at a time, it is 2.9 MiB per client
/// that glibc's allocator ended up keeping resident in part: about 370 KiB per client more
/// than clients sharing endpoints took (2,000 clients, measured). Without coalescing the
/// buffer is 46 KiB.
#[derive(Debug)]
struct OneDatagramPerRead(Arc<dyn quinn::AsyncUdpSocket>);

impl OneDatagramPerRead {
    /// Hands `socket` to quinn with coalescing off, so that a read never needs more room
    /// than one datagram.
    fn wrap(
        runtime: &dyn quinn::Runtime,
        socket: std::net::UdpSocket,
    ) -> std::io::Result<Arc<dyn quinn::AsyncUdpSocket>> {
        // quinn turns coalescing on as it takes the socket; a coalesced read would not fit
        // the smaller buffer and be cut short, so it is turned off after, through a second
        // descriptor of the same socket.
        #[cfg(target_os = "linux")]
        let twin = socket.try_clone()?;
        let inner = runtime.wrap_udp_socket(socket)?;
        // A kernel without coalescing refuses the option, and needs nothing turned off.
        #[cfg(target_os = "linux")]
        if let Err(e) =
            nix::sys::socket::setsockopt(&twin, nix::sys::socket::sockopt::UdpGroSegment, &false)
        {
            if inner.max_receive_segments() > 1 {
                return Err(e.into());
            }
        }
        Ok(Arc::new(Self(inner)))
    }
}

impl quinn::AsyncUdpSocket for OneDatagramPerRead {
    fn create_io_poller(self: Arc<Self>) -> std::pin::Pin<Box<dyn quinn::UdpPoller>> {
        self.0.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &quinn::udp::Transmit) -> std::io::Result<()> {
        self.0.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut std::task::Context,
        bufs: &mut [std::io::IoSliceMut<'_>],
        meta: &mut [quinn::udp::RecvMeta],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.0.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        1
    }

    fn may_fragment(&self) -> bool {
        self.0.may_fragment()
    }
}

/// A client connection's own UDP socket, which it can leave for another one: to the server the
/// client has a new address, as a phone that moves from Wi-Fi to its mobile network has, and
/// QUIC carries the connection over (connection migration: the server validates the new path
/// and goes on). TCP has no such thing: a connection is its addresses.
pub struct Migrator {
    endpoint: Endpoint,
    bind: SocketAddr,
    socket_buffer: usize,
}

impl Migrator {
    /// A fresh socket to move to; its port tells it apart on an emulated path.
    pub fn new_socket(&self) -> std::io::Result<std::net::UdpSocket> {
        udp_socket(self.bind, self.socket_buffer)
    }

    /// Moves the connection to `socket`; the old one is closed.
    pub fn move_to(&self, socket: std::net::UdpSocket) -> std::io::Result<()> {
        let socket = OneDatagramPerRead::wrap(runtime()?.as_ref(), socket)?;
        self.endpoint.rebind_abstract(socket)
    }

    /// The port of the socket the connection uses now.
    pub fn port(&self) -> std::io::Result<u16> {
        Ok(self.endpoint.local_addr()?.port())
    }
}

/// A client's QUIC configuration: resuming with `tickets` (and sending early data when asked),
/// or never resuming.
fn client_config(
    base: &rustls::ClientConfig,
    tickets: Option<&Arc<ClientTickets>>,
    early_data: bool,
    transport: &Arc<TransportConfig>,
) -> Result<quinn::ClientConfig, TransportError> {
    let tls = crate::resume::client_config(base, tickets, early_data);
    let crypto = QuicClientConfig::try_from(tls)
        .map_err(|e| TransportError::Tls(format!("QUIC client crypto: {e}")))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport.clone());
    Ok(config)
}

/// A client connection whose first frames go out as 0-RTT data, before its handshake has
/// completed. The server may refuse them (it lost the session, or the ticket is spent): they
/// are then lost, and the client must write them again on a fresh stream.
pub struct EarlyData {
    accepted: quinn::ZeroRttAccepted,
    conn: quinn::Connection,
    codec: Codec,
    stream_per_message: bool,
}

impl EarlyData {
    /// Waits for the handshake to complete. `None` when the server took the early data;
    /// otherwise it refused them, and here is a fresh chat stream to write them again on.
    pub async fn settle(self) -> Result<Option<(FrameReader, FrameWriter)>, TransportError> {
        if self.accepted.await {
            return Ok(None);
        }
        Ok(Some(
            chat_stream(&self.conn, self.codec, self.stream_per_message).await?,
        ))
    }
}

/// A write in progress; it hands back the bidirectional stream when it wrote on it.
type Pending = std::pin::Pin<
    Box<dyn std::future::Future<Output = std::io::Result<Option<quinn::SendStream>>> + Send>,
>;

/// Writes the first flush (Hello) on the connection's bidirectional stream, and every later
/// flush on a new unidirectional stream that it finishes at once.
struct PerMessageWriter {
    conn: quinn::Connection,
    /// The bidirectional stream: written once (Hello), then kept open, since finishing it
    /// would end the session.
    first: Option<quinn::SendStream>,
    buf: Vec<u8>,
    pending: Option<Pending>,
    hello_sent: bool,
}

impl PerMessageWriter {
    fn poll_pending(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if let Some(fut) = self.pending.as_mut() {
            let back = std::task::ready!(fut.as_mut().poll(cx))?;
            self.pending = None;
            if back.is_some() {
                self.first = back;
            }
        }
        std::task::Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for PerMessageWriter {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::ready!(self.poll_pending(cx))?;
        self.buf.extend_from_slice(data);
        std::task::Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        if self.buf.is_empty() {
            return std::task::Poll::Ready(Ok(()));
        }
        let bytes = std::mem::take(&mut self.buf);
        let first = if self.hello_sent {
            None
        } else {
            self.first.take()
        };
        let fut: Pending = match first {
            // The first flush opens the bidirectional stream the server accepts the session on.
            Some(mut send) => {
                self.hello_sent = true;
                Box::pin(async move {
                    send.write_all(&bytes).await?;
                    Ok(Some(send))
                })
            }
            None => {
                let conn = self.conn.clone();
                Box::pin(async move {
                    let mut s = conn.open_uni().await.map_err(std::io::Error::other)?;
                    s.write_all(&bytes).await?;
                    s.finish().map_err(std::io::Error::other)?;
                    Ok(None)
                })
            }
        };
        self.pending = Some(fut);
        self.poll_pending(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::ready!(self.as_mut().poll_flush(cx))?;
        // Now the session may end: finish the bidirectional stream.
        if let Some(mut send) = self.first.take() {
            let _ = send.finish();
        }
        std::task::Poll::Ready(Ok(()))
    }
}

/// Reads exactly one frame from the front of `recv`, and not one byte more, so that whatever
/// follows (a file's bytes) is left on the stream. `None` when the stream ends before any byte.
pub(crate) async fn read_one_frame(
    recv: &mut quinn::RecvStream,
    codec: &Codec,
) -> Result<Option<imbench_proto::Frame>, TransportError> {
    let mut buf = bytes::BytesMut::with_capacity(4);
    buf.resize(4, 0);
    match recv.read_exact(&mut buf[..]).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(quinn::ReadExactError::FinishedEarly(_)) => {
            return Err(TransportError::TruncatedStream)
        }
        Err(quinn::ReadExactError::ReadError(e)) => return Err(std::io::Error::from(e).into()),
    }
    // The length is checked against the limit before anything is allocated for it.
    if let Some(frame) = codec.decode(&mut buf)? {
        return Ok(Some(frame));
    }
    // Memory follows the bytes that arrive, not the length announced: a stream that sends a
    // length prefix and nothing more costs next to nothing.
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    while buf.len() < 4 + len {
        match recv.read_chunk(4 + len - buf.len(), true).await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
            Ok(None) => return Err(TransportError::TruncatedStream),
            Err(e) => return Err(std::io::Error::from(e).into()),
        }
    }
    codec
        .decode(&mut buf)?
        .map(Some)
        .ok_or(TransportError::TruncatedStream)
}

/// Opens a unidirectional stream on `conn` and writes `header` at its front; the caller writes
/// the rest (a file's bytes) and finishes it.
pub(crate) async fn open_uni_with(
    conn: &quinn::Connection,
    header: &imbench_proto::Frame,
    codec: &Codec,
) -> Result<quinn::SendStream, TransportError> {
    let mut buf = bytes::BytesMut::new();
    codec.encode(header, &mut buf)?;
    let mut send = conn.open_uni().await?;
    send.write_all(&buf).await.map_err(std::io::Error::from)?;
    Ok(send)
}

/// What a QUIC peer sent on unidirectional streams: frames (one stream per message) and files
/// (one stream per file). A task accepts each stream; the receiver ends when the connection
/// does.
pub(crate) fn uni_streams(
    conn: quinn::Connection,
    codec: Codec,
) -> tokio::sync::mpsc::Receiver<Result<SideStream, TransportError>> {
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(async move {
        while let Ok(mut recv) = conn.accept_uni().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let first = match read_one_frame(&mut recv, &codec).await {
                    Ok(Some(
                        header @ (imbench_proto::Frame::FileData { .. }
                        | imbench_proto::Frame::FileIncoming { .. }),
                    )) => {
                        let file = SideStream::File {
                            header,
                            bytes: SideRecv(recv),
                        };
                        let _ = tx.send(Ok(file)).await;
                        return;
                    }
                    Ok(Some(frame)) => frame,
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                if tx.send(Ok(SideStream::Frame(first))).await.is_err() {
                    return;
                }
                let mut reader = FrameReader::new(Box::new(recv), codec);
                loop {
                    match reader.read_frame().await {
                        Ok(Some(frame)) => {
                            if tx.send(Ok(SideStream::Frame(frame))).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => return,
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    }
                }
            });
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    #[test]
    fn ack_frequencies_read_as_written_and_nonsense_is_named() {
        assert_eq!(super::parse_ack_frequency("8"), Ok(Some(8)));
        assert_eq!(super::parse_ack_frequency(" 0 "), Ok(Some(0)));
        assert_eq!(super::parse_ack_frequency("off"), Ok(None));
        assert_eq!(super::parse_ack_frequency("1000"), Ok(Some(1000)));
        let big = super::parse_ack_frequency("99999999999").unwrap_err();
        assert!(big.contains("at most 1000"), "{big}");
        for bad in ["-3", "1.5", "true", "of", ""] {
            let e = super::parse_ack_frequency(bad).unwrap_err();
            assert!(e.contains("whole number of packets from 0"), "{bad}: {e}");
        }
    }

    use super::*;
    use imbench_proto::Frame;

    /// A server and a client connected over loopback, the client's Ping 0 written (the chat
    /// stream opens with it) and the server admitted; nothing read yet.
    async fn connected(
        server_opts: &QuicOptions,
        client_opts: &QuicOptions,
    ) -> (QuicListener, FramedConnection, FramedConnection) {
        connected_through(server_opts, client_opts, 1).await
    }

    /// [`connected`] with the client's connector spreading connections over `endpoints`
    /// shared endpoints, or giving each its own with 0.
    async fn connected_through(
        server_opts: &QuicOptions,
        client_opts: &QuicOptions,
        endpoints: usize,
    ) -> (QuicListener, FramedConnection, FramedConnection) {
        let id = ServerIdentity::self_signed(&crate::tls::DEFAULT_CERT_NAMES).unwrap();
        let listener = QuicListener::bind(
            "127.0.0.1:0".parse().unwrap(),
            &id,
            server_opts,
            Codec::default(),
        )
        .unwrap();
        let addr = listener.local_addr().unwrap();
        let connector = QuicConnector::new(
            &id.client_trust(),
            client_opts,
            endpoints,
            addr,
            Codec::default(),
        )
        .unwrap();
        let accept = tokio::spawn(async move {
            let server = listener.accept().await.unwrap().establish().await.unwrap();
            server.link.admit(SERVER_RECEIVE_WINDOW);
            (listener, server)
        });
        let mut client = connector.connect(addr, "localhost").await.unwrap();
        client
            .writer
            .write_frame(&Frame::Ping { nonce: 0 })
            .await
            .unwrap();
        let (listener, server) = accept.await.unwrap();
        (listener, server, client)
    }

    #[tokio::test]
    async fn a_stream_per_message_client_sends_hello_on_the_main_stream_and_the_rest_apart() {
        let client_opts = QuicOptions {
            stream_per_message: true,
            ..QuicOptions::default()
        };
        let (_listener, mut server, mut client) =
            connected(&QuicOptions::default(), &client_opts).await;
        assert_eq!(
            server.reader.read_frame().await.unwrap(),
            Some(Frame::Ping { nonce: 0 })
        );
        let Link::Quic(conn) = &server.link else {
            panic!("a QUIC link")
        };
        let mut apart = uni_streams(conn.clone(), Codec::default());
        for nonce in 1..=3 {
            client
                .writer
                .write_frame(&Frame::Ping { nonce })
                .await
                .unwrap();
        }
        let mut got: Vec<u64> = Vec::new();
        for _ in 0..3 {
            match apart.recv().await {
                Some(Ok(SideStream::Frame(Frame::Ping { nonce }))) => got.push(nonce),
                Some(Ok(SideStream::Frame(other))) => panic!("expected a Ping, got {other:?}"),
                Some(Ok(SideStream::File { header, .. })) => {
                    panic!("expected a Ping on its own stream, got file {header:?}")
                }
                Some(Err(e)) => panic!("expected a Ping on its own stream, got {e}"),
                None => panic!("expected a Ping on its own stream, got the end"),
            }
        }
        got.sort();
        assert_eq!(got, vec![1, 2, 3]);
        // Shutting the writer down finishes the main stream: the server reads its end.
        client.writer.shutdown().await.unwrap();
        assert_eq!(server.reader.read_frame().await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_connections_own_socket_is_read_a_datagram_at_a_time() {
        let socket = udp_socket("127.0.0.1:0".parse().unwrap(), 1 << 20).unwrap();
        let twin = socket.try_clone().unwrap();
        let wrapped = OneDatagramPerRead::wrap(runtime().unwrap().as_ref(), socket).unwrap();
        assert_eq!(wrapped.max_receive_segments(), 1);
        // What the wrapper undoes: quinn's own socket coalesces where the kernel can (and a
        // kernel that cannot may not even read the option back: nothing to check there).
        #[cfg(target_os = "linux")]
        {
            use nix::sys::socket::{getsockopt, sockopt::UdpGroSegment};
            let plain = udp_socket("127.0.0.1:0".parse().unwrap(), 1 << 20).unwrap();
            let plain_twin = plain.try_clone().unwrap();
            let quinns = runtime().unwrap().wrap_udp_socket(plain).unwrap();
            if quinns.max_receive_segments() > 1 {
                assert!(getsockopt(&plain_twin, UdpGroSegment).unwrap());
                assert!(!getsockopt(&twin, UdpGroSegment).unwrap());
            }
        }
        #[cfg(not(target_os = "linux"))]
        drop(twin);
    }

    /// Reads `count` Pings numbered from `first`, in order.
    async fn read_pings(conn: &mut FramedConnection, first: u64, count: u64) {
        for nonce in first..first + count {
            let frame = tokio::time::timeout(Duration::from_secs(10), conn.reader.read_frame())
                .await
                .unwrap_or_else(|_| panic!("Ping {nonce} never came"))
                .unwrap();
            assert_eq!(frame, Some(Frame::Ping { nonce }));
        }
    }

    #[tokio::test]
    async fn a_burst_reaches_a_connection_on_its_own_socket_whole_and_after_it_moves() {
        // The smaller receive buffer of a connection's own endpoint takes a burst of full
        // datagrams, on its first socket and on the one it moves to.
        let opts = QuicOptions::default();
        let (_listener, mut server, mut client) = connected_through(&opts, &opts, 0).await;
        server.reader.read_frame().await.unwrap();
        let burst = 20_000;
        for nonce in 0..burst {
            server
                .writer
                .write_frame(&Frame::Ping { nonce })
                .await
                .unwrap();
        }
        read_pings(&mut client, 0, burst).await;
        let migrator = client
            .migrator
            .take()
            .expect("a connection on its own socket");
        migrator.move_to(migrator.new_socket().unwrap()).unwrap();
        for nonce in burst..2 * burst {
            server
                .writer
                .write_frame(&Frame::Ping { nonce })
                .await
                .unwrap();
        }
        read_pings(&mut client, burst, burst).await;
    }

    #[tokio::test]
    async fn a_file_stream_hands_over_its_bytes_after_the_header() {
        let opts = QuicOptions::default();
        let (_listener, mut server, client) = connected(&opts, &opts).await;
        server.reader.read_frame().await.unwrap();
        let Link::Quic(client_conn) = &client.link else {
            panic!("a QUIC link")
        };
        let Link::Quic(server_conn) = &server.link else {
            panic!("a QUIC link")
        };
        let mut streams = uni_streams(server_conn.clone(), Codec::default());
        // Bytes that look like a frame must stay file bytes.
        let mut ping = bytes::BytesMut::new();
        Codec::default()
            .encode(&Frame::Ping { nonce: 9 }, &mut ping)
            .unwrap();
        let mut content = ping.to_vec();
        for i in 0..100_000u32 {
            content.extend_from_slice(&i.to_be_bytes());
        }
        let mut send = open_uni_with(
            client_conn,
            &Frame::FileData { transfer_id: 7 },
            &Codec::default(),
        )
        .await
        .unwrap();
        send.write_all(&content).await.unwrap();
        send.finish().unwrap();
        let Some(Ok(SideStream::File { header, mut bytes })) = streams.recv().await else {
            panic!("expected a file stream")
        };
        assert_eq!(header, Frame::FileData { transfer_id: 7 });
        let got = bytes.read_to_end(1 << 20).await.unwrap();
        assert_eq!(got.len(), content.len());
        assert!(got == content, "the file's bytes arrive unchanged");
    }

    #[tokio::test]
    async fn frames_cross_a_quic_connection_both_ways() {
        let id = ServerIdentity::self_signed(&crate::tls::DEFAULT_CERT_NAMES).unwrap();
        let opts = QuicOptions::default();
        let listener =
            QuicListener::bind("127.0.0.1:0".parse().unwrap(), &id, &opts, Codec::default())
                .unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut conn = listener.accept().await.unwrap().establish().await.unwrap();
            while let Some(frame) = conn.reader.read_frame().await.unwrap() {
                let Frame::Ping { nonce } = frame else {
                    panic!("unexpected {frame:?}")
                };
                conn.writer
                    .write_frame(&Frame::Pong { nonce })
                    .await
                    .unwrap();
            }
            conn.writer.shutdown().await.unwrap();
            conn.link.close(0, "done", Duration::from_secs(1)).await;
        });
        let connector = QuicConnector::new(
            &id.client_trust(),
            &opts,
            2,
            addr,
            imbench_proto::Codec::default(),
        )
        .unwrap();
        let mut conn = connector.connect(addr, "localhost").await.unwrap();
        for nonce in 0..3 {
            conn.writer.queue(&Frame::Ping { nonce }).unwrap();
        }
        conn.writer.flush().await.unwrap();
        for nonce in 0..3 {
            assert_eq!(
                conn.reader.read_frame().await.unwrap(),
                Some(Frame::Pong { nonce })
            );
        }
        conn.writer.shutdown().await.unwrap();
        assert_eq!(conn.reader.read_frame().await.unwrap(), None);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn untrusted_certificate_fails_the_handshake() {
        let server_id = ServerIdentity::self_signed(&["localhost"]).unwrap();
        let other = ServerIdentity::self_signed(&["localhost"]).unwrap();
        let opts = QuicOptions::default();
        let listener = QuicListener::bind(
            "127.0.0.1:0".parse().unwrap(),
            &server_id,
            &opts,
            Codec::default(),
        )
        .unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Some(inc) = listener.accept().await {
                let _ = inc.establish().await;
            }
        });
        let connector = QuicConnector::new(
            &other.client_trust(),
            &opts,
            1,
            addr,
            imbench_proto::Codec::default(),
        )
        .unwrap();
        let err = connector
            .connect(addr, "localhost")
            .await
            .err()
            .expect("must fail");
        assert!(matches!(err, TransportError::Quic(_)), "{err}");
    }

    /// The ACK frames a client sends while the server writes `frames` Pings to it one packet
    /// at a time, with the server asking for `ack_frequency`.
    async fn client_acks_for(ack_frequency: Option<u32>, frames: u64) -> (u64, u64) {
        let server_opts = QuicOptions {
            ack_frequency,
            ..QuicOptions::default()
        };
        let client_opts = QuicOptions {
            ack_frequency: None,
            ..QuicOptions::default()
        };
        let (_listener, mut server, mut client) = connected(&server_opts, &client_opts).await;
        server.reader.read_frame().await.unwrap();
        let Link::Quic(conn) = &client.link else {
            panic!("a QUIC link")
        };
        let before = conn.stats().frame_tx.acks;
        let writer = tokio::spawn(async move {
            for nonce in 1..=frames {
                server
                    .writer
                    .write_frame(&Frame::Ping { nonce })
                    .await
                    .unwrap();
                // Apart, so that each goes in a packet of its own.
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
            server
        });
        for _ in 1..=frames {
            client.reader.read_frame().await.unwrap();
        }
        let _server = writer.await.unwrap();
        (
            conn.stats().frame_tx.acks - before,
            conn.stats().frame_rx.ack_frequency,
        )
    }

    #[tokio::test]
    async fn a_server_asking_for_ack_frequency_gets_fewer_acks() {
        let (rfc, rfc_requests) = client_acks_for(None, 200).await;
        let (fewer, requests) = client_acks_for(Some(16), 200).await;
        assert_eq!(rfc_requests, 0);
        assert!(requests >= 1, "the client was never asked");
        // RFC 9000: an ACK for every second packet (about 100 here). Asked to wait for 17,
        // the client sends about 12, plus one per 25 ms of max_ack_delay.
        assert!(
            rfc >= 60,
            "{rfc} ACKs for 200 packets without the extension"
        );
        assert!(
            fewer * 2 < rfc,
            "{fewer} ACKs with it against {rfc} without"
        );
    }

    #[tokio::test]
    async fn a_closed_udp_port_is_told_apart_from_a_quic_server() {
        let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let closed = taken.local_addr().unwrap();
        drop(taken);
        let wait = Duration::from_secs(2);
        assert!(
            udp_port_refused(closed, wait).await,
            "nothing listens on {closed}"
        );
        let id = ServerIdentity::self_signed(&crate::tls::DEFAULT_CERT_NAMES).unwrap();
        let listener = QuicListener::bind(
            "127.0.0.1:0".parse().unwrap(),
            &id,
            &QuicOptions::default(),
            Codec::default(),
        )
        .unwrap();
        let open = listener.local_addr().unwrap();
        let started = std::time::Instant::now();
        assert!(!udp_port_refused(open, Duration::from_millis(300)).await);
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "it waited for an answer"
        );
    }
}
