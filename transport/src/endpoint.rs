//! One listener and one connector type over every transport, so that the server's accept loop
//! and the generator's clients are written once.

use std::net::SocketAddr;
use std::sync::Arc;

use imbench_proto::Codec;

use crate::quic::{IncomingQuic, QuicConnector, QuicListener, QuicOptions};
use crate::resume::{ClientTickets, Resumption};
use crate::stream::{IncomingStream, StreamConnector, StreamListener};
use crate::tls::{ClientTrust, ServerIdentity};
use crate::{FramedConnection, Transport, TransportError};

/// Accepts connections of one transport.
pub enum Listener {
    /// QUIC.
    Quic(QuicListener),
    /// TCP, TLS, WS or WSS.
    Stream(StreamListener),
}

impl Listener {
    /// Binds `transport` on `addr`, presenting `identity` where TLS is involved; `codec` sets
    /// the largest frame accepted or sent, whatever the transport.
    pub async fn bind(
        transport: Transport,
        addr: SocketAddr,
        identity: &ServerIdentity,
        quic: &QuicOptions,
        codec: Codec,
    ) -> Result<Self, TransportError> {
        Ok(match transport {
            Transport::Quic => Listener::Quic(QuicListener::bind(addr, identity, quic, codec)?),
            other => Listener::Stream(StreamListener::bind(addr, other, identity, codec).await?),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Listener::Quic(l) => l.local_addr(),
            Listener::Stream(l) => l.local_addr(),
        }
    }

    /// The next connection attempt; `None` once a QUIC listener is closed.
    pub async fn accept(&self) -> Option<Incoming> {
        match self {
            Listener::Quic(l) => l.accept().await.map(|i| Incoming::Quic(Box::new(i))),
            Listener::Stream(l) => Some(Incoming::Stream(l.accept().await)),
        }
    }

    /// Stops a QUIC listener and closes its connections (stream listeners stop when dropped).
    pub fn close(&self, code: u32, reason: &str) {
        if let Listener::Quic(l) = self {
            l.close(code, reason);
        }
    }

    /// Waits until a QUIC listener's connections are closed.
    pub async fn wait_idle(&self) {
        if let Listener::Quic(l) = self {
            l.wait_idle().await;
        }
    }
}

/// A connection attempt before its handshake.
pub enum Incoming {
    /// QUIC (boxed: it is much larger than the stream variant).
    Quic(Box<IncomingQuic>),
    /// TCP, TLS, WS or WSS.
    Stream(IncomingStream),
}

impl Incoming {
    /// The peer's address.
    pub fn remote(&self) -> SocketAddr {
        match self {
            Incoming::Quic(i) => i.remote(),
            Incoming::Stream(i) => i.remote(),
        }
    }

    /// Turns the attempt away.
    pub fn refuse(self) {
        match self {
            Incoming::Quic(i) => i.refuse(),
            Incoming::Stream(i) => i.refuse(),
        }
    }

    /// Completes the handshakes.
    pub async fn establish(self) -> Result<FramedConnection, TransportError> {
        match self {
            Incoming::Quic(i) => i.establish().await,
            Incoming::Stream(i) => i.establish().await,
        }
    }
}

/// Opens client connections of one transport to one server.
pub enum Connector {
    /// QUIC, over several UDP endpoints.
    Quic(QuicConnector),
    /// TCP, TLS, WS or WSS.
    Stream(StreamConnector),
}

impl Connector {
    /// A connector for `transport` to `server`, trusting `trust`. `quic_endpoints` is how many
    /// UDP sockets QUIC clients share; `codec` sets the largest frame accepted or sent,
    /// whatever the transport.
    pub fn new(
        transport: Transport,
        trust: &ClientTrust,
        quic: &QuicOptions,
        quic_endpoints: usize,
        server: SocketAddr,
        codec: Codec,
    ) -> Result<Self, TransportError> {
        Ok(match transport {
            Transport::Quic => Connector::Quic(QuicConnector::new(
                trust,
                quic,
                quic_endpoints,
                server,
                codec,
            )?),
            other => Connector::Stream(StreamConnector::new(other, trust, codec)?),
        })
    }

    /// Connects, verifying the certificate (where there is one) for `server_name`, with a full
    /// handshake.
    pub async fn connect(
        &self,
        server: SocketAddr,
        server_name: &str,
    ) -> Result<FramedConnection, TransportError> {
        self.connect_as(server, server_name, None, Resumption::Off)
            .await
    }

    /// [`Connector::connect`] for one client, which resumes its earlier session from
    /// `tickets` (its own) as `resumption` says; see [`crate::resume`].
    pub async fn connect_as(
        &self,
        server: SocketAddr,
        server_name: &str,
        tickets: Option<&Arc<ClientTickets>>,
        resumption: Resumption,
    ) -> Result<FramedConnection, TransportError> {
        let tickets = tickets.filter(|_| resumption.keeps_tickets());
        match self {
            Connector::Quic(c) => {
                let early = resumption == Resumption::ZeroRtt;
                c.connect_as(server, server_name, tickets, early).await
            }
            Connector::Stream(c) => c.connect_as(server, server_name, tickets).await,
        }
    }
}
