//! The seam between a simulated client and the system it loads. A driver logs a user in and
//! gives back a [`Session`]: a [`Sender`] that carries the client's operations ([`Op`]: send a
//! direct or group message, join, leave, confirm deliveries, offer a file) and a stream of
//! [`Event`]s (deliveries, answers, membership changes, files, the end of the session).
//!
//! The client drives a session from its workload and feeds what arrives to its receive path;
//! it never sees frames, sockets or a transport. The drivers:
//!
//! - [`imbench`] — the imbench protocol over QUIC, TCP, TLS or WebSocket, against the
//!   reference server (embedded or standalone).
//! - [`nats`] — core NATS, against a NATS server (subjects per user and per group).
//! - [`mqtt`] — MQTT 3.1.1 or 5 at QoS 0, 1 or 2, against a broker (topics per user and per
//!   group).
//! - [`xmpp`] — XMPP, against a server such as Prosody (chat messages, multi-user chat rooms
//!   for groups, stream management for acks).
//! - [`memory`] — an in-process hub with no transport at all: it proves a client runs without
//!   one, and tests the client layer without sockets.
//!
//! Dispatch is by enum rather than trait objects: the send and receive paths run per message,
//! and an enum match costs nothing where a boxed future would allocate.

pub mod envelope;
pub mod imbench;
pub mod memory;
pub mod mqtt;
pub mod nats;
pub mod tls;
pub mod url;
pub mod xmpp;

use bytes::Bytes;
use imbench_proto::{Dest, ErrorCode, SHA256_LEN};

/// A connect timeout below which a first login that timed out is put down to the timeout,
/// not to the port or the server: a login is a handshake and a round trip or two, so under
/// this the setting is the likelier fault.
pub const SHORT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(100);

/// What a client asks of the system it loads.
#[derive(Debug, Clone)]
pub enum Op {
    /// A message to a user or a group.
    Send {
        /// The client's id for it; answers name it.
        msg_id: u64,
        /// A user or a group.
        to: Dest,
        /// The body, with its measurement header.
        body: Bytes,
    },
    /// Join a group.
    Join {
        /// The group.
        group: u64,
    },
    /// Leave a group.
    Leave {
        /// The group.
        group: u64,
    },
    /// Everything delivered so far, `count` deliveries on this session, has arrived: the
    /// system need not hold it for a reconnect.
    Receipt {
        /// Deliveries received on this session.
        count: u64,
    },
    /// Offer a file to a user.
    FileOffer {
        /// The client's id for the transfer.
        transfer_id: u64,
        /// The recipient.
        to: Dest,
        /// Bytes that will follow.
        size: u64,
        /// SHA-256 of the bytes.
        sha256: [u8; SHA256_LEN],
        /// The file's name.
        name: String,
    },
    /// The next bytes of an accepted transfer, in order (sessions without side streams).
    FileChunk {
        /// The transfer.
        transfer_id: u64,
        /// The bytes.
        data: Bytes,
    },
}

/// What arrives for a client.
#[derive(Debug, Clone)]
pub enum Event {
    /// A message for this client.
    Delivered {
        /// The sender's id for it.
        msg_id: u64,
        /// The sending user.
        from: u64,
        /// This user, or the group it came through.
        to: Dest,
        /// The body as sent.
        body: Bytes,
    },
    /// A message this client sent was accepted.
    Acked {
        /// The client's id for it.
        msg_id: u64,
    },
    /// A message this client sent was refused.
    Rejected {
        /// The client's id for it.
        msg_id: u64,
        /// Why.
        code: ErrorCode,
    },
    /// A Join took effect.
    Joined {
        /// The group.
        group: u64,
    },
    /// A Leave took effect.
    Left {
        /// The group.
        group: u64,
    },
    /// A Join or Leave was refused.
    GroupRefused {
        /// The group.
        group: u64,
        /// Why, in imbench's codes (what is counted).
        code: ErrorCode,
        /// Why, in the system's own words, naming what it refused (a room, a topic), when
        /// the code alone would not tell a person what to change.
        said: Option<String>,
    },
    /// A file offer was accepted: send its bytes.
    FileAccepted {
        /// The client's id for the transfer.
        transfer_id: u64,
    },
    /// A file is on its way to this client.
    FileIncoming {
        /// The system's id for the transfer on this session.
        transfer_id: u64,
        /// Bytes that will follow.
        size: u64,
        /// SHA-256 as the sender declared it.
        sha256: [u8; SHA256_LEN],
        /// The file's name.
        name: String,
    },
    /// The next bytes of a file arriving on the session itself.
    FileChunk {
        /// The transfer.
        transfer_id: u64,
        /// The bytes.
        data: Bytes,
    },
    /// A transfer was refused or ended early.
    FileCancelled {
        /// The transfer, numbered as on this session.
        transfer_id: u64,
        /// Why.
        code: ErrorCode,
    },
    /// The system ended the session in order, saying why.
    Closed {
        /// Why.
        reason: String,
    },
    /// The system ended the session with an error.
    Failed {
        /// Why.
        code: ErrorCode,
        /// In words.
        reason: String,
    },
    /// A message this client sent, which the system had accepted, came back undelivered (an
    /// XMPP server without offline storage bounces what it acknowledged for a recipient who is
    /// not online): counted as an error, and said in a note with the system's reason.
    Bounced {
        /// What arrived, in words.
        what: String,
    },
    /// Something this client did not ask for; named for the report.
    Unexpected {
        /// What arrived (with what the system said of it, where it said something).
        what: std::borrow::Cow<'static, str>,
    },
    /// An answer to a liveness probe; carries nothing to count.
    Alive,
}

/// Why a session could not be opened.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectError {
    /// The system answered and refused this user (a bad token, an unsupported version): the
    /// configuration is wrong, and trying again will not help.
    #[error("refused: {0}")]
    Refused(String),
    /// The address answered, but not as the configuration says it would (a certificate that is
    /// not the server's, a port that is not an imbench server): trying again will not help.
    #[error("{0}")]
    Misconfigured(String),
    /// The system could not be reached, or the session broke while it was opened.
    #[error("{0}")]
    Failed(String),
}

/// TLS alerts with which a server that requires a client certificate answers a client that
/// presents none: TLS 1.3's own, and the one TLS 1.2 and some servers (nats-server) send. In
/// TLS 1.3 the client has finished its handshake by then, so the alert arrives at its first
/// read, in whatever words the driver wraps it.
const NO_CLIENT_CERTIFICATE_ALERTS: [&str; 2] = [
    "received fatal alert: CertificateRequired",
    "received fatal alert: BadCertificate",
];

/// A login a server ended for the client certificate imbench does not present is a setting
/// of the server's to change, said as such (a usage error), not a port that is not the
/// system's or a server out of reach.
fn client_certificate_wanted(e: ConnectError) -> ConnectError {
    let (ConnectError::Failed(why) | ConnectError::Misconfigured(why)) = &e else {
        return e;
    };
    match NO_CLIENT_CERTIFICATE_ALERTS.iter().find(|a| why.contains(*a)) {
        Some(alert) => ConnectError::Misconfigured(format!(
            "the server asks for a client certificate (it ended the TLS session with \"{}\"), and imbench presents none: let this listener take clients without one (nats-server: `verify: false` in its tls block; mosquitto: `require_certificate false`), or point imbench at a listener that needs none (the client saw: {why})",
            alert.trim_start_matches("received fatal alert: ")
        )),
        None => e,
    }
}

/// Why a session failed once open.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The transport underneath failed.
    #[error(transparent)]
    Transport(#[from] imbench_transport::TransportError),
    /// The session is closed.
    #[error("the session is closed")]
    Closed,
    /// The driver cannot do this (files over the in-memory hub, say).
    #[error("{0}")]
    Unsupported(&'static str),
    /// The system sent something its protocol does not allow.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The system ended the connection without a word its protocol has for it (a broker
    /// that went away); in words.
    #[error("{0}")]
    Ended(String),
}

/// Why a TCP connection to `place` (`HOST:PORT`) for a client of `what` (`a NATS server`)
/// failed: a refused one is the commonest mistake (a server not running, a wrong port), and
/// says so in those words.
pub(crate) fn tcp_connect_failed(what: &str, place: &str, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::ConnectionRefused {
        format!(
            "nothing listens on {place} (the host refused the connection): is {what} running on that port?"
        )
    } else {
        format!("connecting to {what} at {place}: {e}")
    }
}

/// Whether something accepts a TCP connection at `addr` within a second.
async fn accepts_tcp(addr: std::net::SocketAddr) -> bool {
    let connect = tokio::net::TcpStream::connect(addr);
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(1), connect).await,
        Ok(Ok(_))
    )
}

/// A system clients log in to.
pub enum Driver {
    /// The imbench protocol to the reference server.
    Imbench(Box<imbench::ImbenchDriver>),
    /// The in-process hub.
    Memory(memory::Hub),
    /// A NATS server.
    Nats(nats::NatsDriver),
    /// An MQTT broker.
    Mqtt(mqtt::MqttDriver),
    /// An XMPP server.
    Xmpp(xmpp::XmppDriver),
}

impl Driver {
    /// Logs `user` in; `receipts` asks the system to hold deliveries until they are confirmed.
    pub async fn connect(&self, user: u64, receipts: bool) -> Result<Session, ConnectError> {
        let connected = match self {
            Driver::Imbench(d) => d.connect(user, receipts).await,
            Driver::Memory(hub) => Ok(hub.connect(user)),
            Driver::Nats(d) => d.connect(user).await,
            Driver::Mqtt(d) => d.connect(user).await,
            Driver::Xmpp(d) => d.connect(user).await,
        };
        connected.map_err(client_certificate_wanted)
    }

    /// The run's first connection, given `timeout`: as [`Driver::connect`], except that a
    /// QUIC server's port the host says is closed fails it at once (QUIC alone hears nothing
    /// and waits out the timeout).
    pub async fn first_connect(
        &self,
        user: u64,
        receipts: bool,
        timeout: std::time::Duration,
    ) -> Result<Result<Session, ConnectError>, tokio::time::error::Elapsed> {
        // A host name that does not resolve is the command line's to fix (a usage error), not
        // a server that is down.
        let address = match self {
            Driver::Nats(d) => Some(d.address()),
            Driver::Mqtt(d) => Some(d.address()),
            Driver::Xmpp(d) => Some(d.address()),
            Driver::Imbench(_) | Driver::Memory(_) => None,
        };
        if let Some(address) = address {
            if let Err(e) = tokio::net::lookup_host(&address).await {
                return Ok(Err(ConnectError::Misconfigured(format!(
                    "{address}: the host name does not resolve ({e})"
                ))));
            }
        }
        let connect = tokio::time::timeout(timeout, self.connect(user, receipts));
        let (addr, transport) = match self {
            Driver::Imbench(d) => (d.addr, d.transport),
            _ => return connect.await,
        };
        if transport != imbench_transport::Transport::Quic {
            let connected = connect.await;
            // Under SHORT_CONNECT_TIMEOUT the timeout is what to name (the run says so), not
            // the port.
            if connected.is_err() && timeout >= SHORT_CONNECT_TIMEOUT && accepts_tcp(addr).await {
                // A server that hangs looks the same as another program's port that waits
                // for its own kind of request: not a usage error until told apart.
                return Ok(Err(ConnectError::Failed(format!(
                    "{addr} accepts connections but did not answer within {timeout:?}: is it an imbench server's {transport} port, and is the server not hung or paused?"
                ))));
            }
            return connected;
        }
        tokio::select! {
            connected = connect => connected,
            true = imbench_transport::quic::udp_port_refused(addr, timeout) => {
                Ok(Err(ConnectError::Failed(format!(
                    "nothing listens on UDP port {} of {} (the host refused a datagram to it): is the server running, with --quic on that port?",
                    addr.port(),
                    addr.ip()
                ))))
            }
        }
    }

    /// What the clients connect to, in words (`quic 127.0.0.1:4433`).
    pub fn describe(&self) -> String {
        match self {
            Driver::Imbench(d) => d.describe(),
            Driver::Memory(_) => "the in-memory hub".to_string(),
            Driver::Nats(d) => d.describe(),
            Driver::Mqtt(d) => d.describe(),
            Driver::Xmpp(d) => d.describe(),
        }
    }

    /// Whether the system promises each message at most once (MQTT at QoS 0): the client
    /// then never sends a message again after a reconnect.
    pub fn at_most_once(&self) -> bool {
        match self {
            Driver::Mqtt(d) => d.at_most_once(),
            _ => false,
        }
    }

    /// Whether the system speaks imbench's own protocol, whose error codes a report may quote
    /// as they are (another system's codes are the driver's translation of its words).
    pub fn speaks_imbench(&self) -> bool {
        matches!(self, Driver::Imbench(_) | Driver::Memory(_))
    }

    /// A refusal counted as `code`, in the words of the system's protocol.
    pub fn refusal_in_words(&self, code: ErrorCode) -> String {
        match self {
            Driver::Mqtt(_) => mqtt::refusal_in_words(code),
            Driver::Xmpp(_) => xmpp::refusal_in_words(code),
            _ => code.to_string(),
        }
    }

    /// Whether file transfers can run over this driver.
    pub fn carries_files(&self) -> bool {
        matches!(self, Driver::Imbench(_))
    }
}

/// One logged-in user: what it sends, what it receives, and where the driver has them, the
/// streams file bytes travel on beside the session.
pub struct Session {
    /// The client's operations.
    pub sender: Sender,
    /// What arrives.
    pub events: Events,
    /// Streams of their own for file bytes (QUIC), when the session has them.
    pub side_streams: Option<imbench::FileStreams>,
    /// How the login went: a full handshake, a resumed session, Hello as 0-RTT data.
    pub login: Login,
    /// Moves the session's QUIC connection to a new address, when it has a socket of its own.
    pub migrator: Option<imbench_transport::Migrator>,
}

/// How a session's connection was set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Login {
    /// A full handshake, or a transport with no session to resume.
    #[default]
    Full,
    /// The handshake offered the client's own session ticket.
    Resumed,
    /// Resumed, and Hello went out as 0-RTT data that the server took.
    ZeroRtt,
    /// Resumed, Hello went out as 0-RTT data, the server refused it, and it was sent again.
    ZeroRttRefused,
}

/// The sending half of a session.
pub enum Sender {
    /// imbench frames on a transport.
    Imbench(imbench::ImbenchSender),
    /// The in-process hub.
    Memory(memory::MemorySender),
    /// NATS commands on a TCP connection.
    Nats(nats::NatsSender),
    /// Requests to an MQTT client's event loop.
    Mqtt(mqtt::MqttSender),
    /// XMPP stanzas on a TCP connection.
    Xmpp(xmpp::XmppSender),
}

impl Sender {
    /// Takes `op` into the pending batch without sending it.
    pub fn queue(&mut self, op: Op) -> Result<(), SessionError> {
        match self {
            Sender::Imbench(s) => s.queue(op),
            Sender::Memory(s) => s.apply(op),
            Sender::Nats(s) => s.queue(op),
            Sender::Mqtt(s) => s.queue(op),
            Sender::Xmpp(s) => s.queue(op),
        }
    }

    /// Sends everything queued.
    pub async fn flush(&mut self) -> Result<(), SessionError> {
        match self {
            Sender::Imbench(s) => s.flush().await,
            Sender::Memory(_) => Ok(()),
            Sender::Nats(s) => s.flush().await,
            Sender::Mqtt(s) => s.flush().await,
            Sender::Xmpp(s) => s.flush().await,
        }
    }

    /// Sends `op` at once.
    pub async fn send(&mut self, op: Op) -> Result<(), SessionError> {
        self.queue(op)?;
        self.flush().await
    }

    /// Ends the session in order: says goodbye and stops sending. The system then closes the
    /// session, which ends its events.
    pub async fn close(&mut self, reason: &str) {
        match self {
            Sender::Imbench(s) => s.close(reason).await,
            Sender::Memory(s) => s.leave(),
            Sender::Nats(s) => s.close(reason).await,
            Sender::Mqtt(s) => s.close(reason).await,
            Sender::Xmpp(s) => s.close(reason).await,
        }
    }

    /// Cuts the session at once: nothing unsent or unread is kept.
    pub fn abort(&mut self, reason: &str) {
        match self {
            Sender::Imbench(s) => s.abort(reason),
            Sender::Memory(s) => s.leave(),
            Sender::Nats(s) => s.abort(reason),
            Sender::Mqtt(s) => s.abort(reason),
            Sender::Xmpp(s) => s.abort(reason),
        }
    }
}

/// The receiving half of a session.
pub enum Events {
    /// imbench frames from a transport.
    Imbench(imbench::ImbenchEvents),
    /// The in-process hub.
    Memory(memory::MemoryEvents),
    /// What a NATS server sends.
    Nats(nats::NatsEvents),
    /// What an MQTT broker sends (boxed: the event loop is large).
    Mqtt(Box<mqtt::MqttEvents>),
    /// What an XMPP server sends (boxed: it keeps the ack bookkeeping).
    Xmpp(Box<xmpp::XmppEvents>),
}

impl Events {
    /// The next event; `None` when the session ended without a word.
    pub async fn next(&mut self) -> Result<Option<Event>, SessionError> {
        match self {
            Events::Imbench(e) => e.next().await,
            Events::Memory(e) => Ok(e.next().await),
            Events::Nats(e) => e.next().await,
            Events::Mqtt(e) => e.next().await,
            Events::Xmpp(e) => e.next().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ConnectError;

    #[test]
    fn a_login_ended_for_want_of_a_client_certificate_is_a_usage_error_that_says_so() {
        for alert in ["CertificateRequired", "BadCertificate"] {
            let said = super::client_certificate_wanted(ConnectError::Failed(format!(
                "waiting for the server's PONG: i/o: received fatal alert: {alert}"
            )));
            let ConnectError::Misconfigured(why) = said else {
                panic!("{alert}: not a usage error");
            };
            assert!(
                why.contains(&format!("TLS session with \"{alert}\"")),
                "{why}"
            );
        }
        let other = super::client_certificate_wanted(ConnectError::Failed("timed out".into()));
        assert!(matches!(other, ConnectError::Failed(_)));
    }
    #[test]
    fn a_refused_connection_says_nothing_listens_there() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let said = super::tcp_connect_failed("a NATS server", "127.0.0.1:1", &refused);
        assert!(said.starts_with("nothing listens on 127.0.0.1:1"), "{said}");
        let other = std::io::Error::from(std::io::ErrorKind::TimedOut);
        let said = super::tcp_connect_failed("an MQTT broker", "h:1", &other);
        assert!(
            said.starts_with("connecting to an MQTT broker at h:1: "),
            "{said}"
        );
    }
}
