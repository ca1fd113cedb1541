//! TLS session resumption, on both sides.
//!
//! A real client keeps the session tickets its server gave it and offers one when it connects
//! again: TLS 1.3 then skips the certificate exchange, and over QUIC the client may send its
//! first bytes in the very first flight (0-RTT). Simulated clients must each keep their own
//! tickets: with one ticket store shared by thousands of clients (what a single rustls client
//! configuration does by default), a client's *first* connection resumes a session another
//! client made, and connect latency measures a handshake no real first connection gets.
//!
//! - [`Resumption`] — what the clients do: never resume, resume with a ticket, or resume and
//!   send early data (0-RTT, QUIC only).
//! - [`ClientTickets`] — one client's ticket store, which tells whether the last handshake
//!   offered a ticket.
//! - [`ServerSessions`] — the server's session store: big enough for every client of a large
//!   run, single-use (the replay protection 0-RTT needs), and counting resumed handshakes.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use rustls::client::{ClientSessionMemoryCache, ClientSessionStore, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;
use rustls::server::{ServerSessionMemoryCache, StoresServerSessions};
use rustls::NamedGroup;

/// Sessions a server remembers for resumption; each ticket it issues holds one, and a client
/// gets two per connection. Past this the oldest are forgotten and those clients do a full
/// handshake again.
pub const SERVER_SESSIONS: usize = 65_536;

/// Server names a client's own store remembers tickets for (each client dials one server).
const CLIENT_SERVER_NAMES: usize = 4;

/// What clients do when they connect again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Resumption {
    /// Every connection is a full handshake: no ticket is kept.
    Off,
    /// A client offers a ticket from its own earlier connection (TLS 1.3 resumption: no
    /// certificate exchange, the same round trips).
    #[default]
    Ticket,
    /// As `Ticket`, and over QUIC the client's first bytes (Hello) go in the first flight as
    /// 0-RTT data, so a reconnect logs in one round trip sooner. Over TCP transports this is
    /// `Ticket`: rustls's early data over TCP is not used.
    ZeroRtt,
}

impl Resumption {
    /// Every choice, in the order help lists them.
    pub const ALL: [Resumption; 3] = [Resumption::Off, Resumption::Ticket, Resumption::ZeroRtt];

    /// The name used in scenarios, on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Resumption::Off => "off",
            Resumption::Ticket => "ticket",
            Resumption::ZeroRtt => "0rtt",
        }
    }

    /// Whether clients keep tickets at all.
    pub fn keeps_tickets(self) -> bool {
        self != Resumption::Off
    }
}

impl fmt::Display for Resumption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Resumption {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        Resumption::ALL
            .into_iter()
            .find(|r| r.name() == s || (*r == Resumption::ZeroRtt && s == "0-rtt"))
            .ok_or_else(|| format!("resumption {s:?} is not one of off, ticket, 0rtt"))
    }
}

/// One client's TLS session tickets, kept across its connections.
#[derive(Debug)]
pub struct ClientTickets {
    cache: ClientSessionMemoryCache,
    /// Whether a ticket was taken for a handshake since [`ClientTickets::offered_ticket`] last
    /// asked.
    offered: AtomicBool,
}

impl ClientTickets {
    /// An empty store: the client's first connection is a full handshake.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            cache: ClientSessionMemoryCache::new(CLIENT_SERVER_NAMES),
            offered: AtomicBool::new(false),
        })
    }

    /// Whether the handshake since the last call offered a ticket (resumed, if the server
    /// still had the session).
    pub fn offered_ticket(&self) -> bool {
        self.offered.swap(false, Relaxed)
    }
}

impl ClientSessionStore for ClientTickets {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.cache.set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.cache.kx_hint(server_name)
    }

    fn set_tls12_session(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.cache.set_tls12_session(server_name, value);
    }

    fn tls12_session(
        &self,
        server_name: &ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.cache.tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.cache.remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        self.cache.insert_tls13_ticket(server_name, value);
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        let ticket = self.cache.take_tls13_ticket(server_name);
        if ticket.is_some() {
            self.offered.store(true, Relaxed);
        }
        ticket
    }
}

/// A client configuration that resumes with `tickets` (a client's own), or never resumes.
pub(crate) fn client_config(
    base: &rustls::ClientConfig,
    tickets: Option<&Arc<ClientTickets>>,
    early_data: bool,
) -> rustls::ClientConfig {
    let mut config = base.clone();
    match tickets {
        Some(t) => {
            config.resumption = rustls::client::Resumption::store(t.clone());
            config.enable_early_data = early_data;
        }
        None => {
            config.resumption = rustls::client::Resumption::disabled();
            config.enable_early_data = false;
        }
    }
    config
}

/// The server's session store: single-use sessions (a ticket resumes once, so 0-RTT data
/// cannot be replayed with it), counting the handshakes that resumed.
#[derive(Debug)]
pub struct ServerSessions {
    cache: Arc<ServerSessionMemoryCache>,
    resumed: AtomicU64,
}

impl ServerSessions {
    /// A store for up to [`SERVER_SESSIONS`] sessions.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            cache: ServerSessionMemoryCache::new(SERVER_SESSIONS),
            resumed: AtomicU64::new(0),
        })
    }

    /// Handshakes that resumed a session so far, over every listener sharing this store.
    pub fn resumed(&self) -> u64 {
        self.resumed.load(Relaxed)
    }
}

impl StoresServerSessions for ServerSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.cache.put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache.get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        let session = self.cache.take(key);
        if session.is_some() {
            self.resumed.fetch_add(1, Relaxed);
        }
        session
    }

    fn can_cache(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Connector, Listener, QuicOptions, ServerIdentity, Transport};
    use imbench_proto::{Codec, Frame};

    /// A server on `transport` that answers each Ping with a Pong, forever.
    async fn echo_server(transport: Transport, id: &ServerIdentity) -> std::net::SocketAddr {
        let listener = Listener::bind(
            transport,
            "127.0.0.1:0".parse().unwrap(),
            id,
            &QuicOptions::default(),
            Codec::default(),
        )
        .await
        .unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Some(incoming) = listener.accept().await {
                tokio::spawn(async move {
                    let mut conn = incoming.establish().await.unwrap();
                    conn.link.admit(crate::quic::SERVER_RECEIVE_WINDOW);
                    while let Ok(Some(Frame::Ping { nonce })) = conn.reader.read_frame().await {
                        conn.writer
                            .write_frame(&Frame::Pong { nonce })
                            .await
                            .unwrap();
                    }
                });
            }
        });
        addr
    }

    /// Connects with `tickets`, says Ping and reads the Pong; whether the Ping went as 0-RTT
    /// data the server took.
    async fn ping(
        connector: &Connector,
        addr: std::net::SocketAddr,
        tickets: &Arc<ClientTickets>,
        resumption: Resumption,
    ) -> bool {
        let mut conn = connector
            .connect_as(addr, "localhost", Some(tickets), resumption)
            .await
            .unwrap();
        conn.writer
            .write_frame(&Frame::Ping { nonce: 7 })
            .await
            .unwrap();
        let mut took_early = false;
        if let Some(early) = conn.early.take() {
            match early.settle().await.unwrap() {
                None => took_early = true,
                Some((reader, mut writer)) => {
                    writer.write_frame(&Frame::Ping { nonce: 7 }).await.unwrap();
                    conn.reader = reader;
                    conn.writer = writer;
                }
            }
        }
        assert_eq!(
            conn.reader.read_frame().await.unwrap(),
            Some(Frame::Pong { nonce: 7 })
        );
        took_early
    }

    #[tokio::test]
    async fn a_client_resumes_its_own_session_and_only_when_asked() {
        for transport in [Transport::Quic, Transport::Tls, Transport::Wss] {
            let id = ServerIdentity::self_signed(&crate::tls::DEFAULT_CERT_NAMES).unwrap();
            let addr = echo_server(transport, &id).await;
            let connector = Connector::new(
                transport,
                &id.client_trust(),
                &QuicOptions::default(),
                1,
                addr,
                Codec::default(),
            )
            .unwrap();
            for resumption in Resumption::ALL {
                let what = format!("{transport} {resumption}");
                let before = id.sessions.resumed();
                let tickets = ClientTickets::new();
                // A first connection never resumes, whatever another client did before.
                assert!(
                    !ping(&connector, addr, &tickets, resumption).await,
                    "{what}"
                );
                assert!(!tickets.offered_ticket(), "{what}: first connection");
                let early = ping(&connector, addr, &tickets, resumption).await;
                let resumed = id.sessions.resumed() - before;
                assert_eq!(
                    tickets.offered_ticket(),
                    resumption.keeps_tickets(),
                    "{what}"
                );
                assert_eq!(resumed, u64::from(resumption.keeps_tickets()), "{what}");
                let zero_rtt = transport == Transport::Quic && resumption == Resumption::ZeroRtt;
                assert_eq!(early, zero_rtt, "{what}: 0-RTT data taken");
                // Another client's tickets are not this one's.
                let other = ClientTickets::new();
                assert!(!ping(&connector, addr, &other, resumption).await, "{what}");
                assert!(!other.offered_ticket(), "{what}: someone else's session");
            }
        }
    }

    #[test]
    fn names_parse_back() {
        for r in Resumption::ALL {
            assert_eq!(r.name().parse::<Resumption>(), Ok(r));
        }
        assert_eq!("0-RTT".parse::<Resumption>(), Ok(Resumption::ZeroRtt));
        assert!("yes".parse::<Resumption>().is_err());
    }
}
