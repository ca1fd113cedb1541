//! The imbench driver: the imbench protocol over QUIC, TCP, TLS or WebSocket to the reference
//! server. Logging in is Hello (with the user's token) answered by Welcome; operations and
//! events are frames one for one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use imbench_proto::{Frame, HELLO_RECEIPTS, PROTOCOL_VERSION};
use imbench_server::Secret;
use imbench_transport::framed::Link;
use imbench_transport::{
    ClientTickets, Connector, FrameReader, FrameWriter, FramedConnection, Resumption, SideRecv,
    SideSend, SideStream, SideStreams, Transport, TransportError,
};

use super::{ConnectError, Event, Events, Login, Op, Sender, Session, SessionError};

/// Where the clients connect and how they prove who they are.
pub struct ImbenchDriver {
    /// Over which transport.
    pub transport: Transport,
    /// The connector shared by all clients.
    pub connector: Connector,
    /// Server address.
    pub addr: SocketAddr,
    /// Name its certificate is checked against.
    pub server_name: String,
    /// For minting tokens.
    pub secret: Secret,
    /// What a client does when it connects again.
    pub resumption: Resumption,
    /// Each client's own session tickets, kept across its connections.
    pub tickets: ClientTicketStores,
    /// Whether any client got a Welcome from this address: then it is an imbench server's
    /// port, and a later connection closed without a word was refused for a limit.
    pub welcomed: std::sync::atomic::AtomicBool,
}

/// Session tickets per client: each client resumes only sessions it made itself.
#[derive(Default)]
pub struct ClientTicketStores(std::sync::Mutex<HashMap<u64, Arc<ClientTickets>>>);

impl ClientTicketStores {
    /// `user`'s store, made empty on its first connection.
    fn of(&self, user: u64) -> Arc<ClientTickets> {
        let mut stores = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        stores
            .entry(user)
            .or_insert_with(ClientTickets::new)
            .clone()
    }
}

impl ImbenchDriver {
    /// Connects as `user`: handshake, Hello (asking for receipts when `receipts`), Welcome.
    pub async fn connect(&self, user: u64, receipts: bool) -> Result<Session, ConnectError> {
        let failed = |what: String| ConnectError::Failed(what);
        let tickets = self
            .resumption
            .keeps_tickets()
            .then(|| self.tickets.of(user));
        let mut conn = self
            .connector
            .connect_as(
                self.addr,
                &self.server_name,
                tickets.as_ref(),
                self.resumption,
            )
            .await
            .map_err(|e| {
                let text = e.to_string();
                if text.contains("CaUsedAsEndEntity") {
                    ConnectError::Misconfigured(format!(
                        "{text}: the server's certificate is a CA's (basicConstraints CA:TRUE, as `openssl req -x509` makes by default), which TLS does not take for a server's own; make it with `-addext basicConstraints=critical,CA:FALSE`, or let imbench-server make one"
                    ))
                } else if ["expired", "not valid yet", "notvalidyet"]
                    .iter()
                    .any(|w| text.to_lowercase().contains(w))
                {
                    ConnectError::Misconfigured(format!(
                        "{text}: the server's certificate is out of date (or this machine's clock is): give imbench-server a current one, or let it make one (it makes a fresh self-signed certificate at each start without --cert)"
                    ))
                } else if text.contains("UnknownIssuer") {
                    ConnectError::Misconfigured(format!(
                        "{text}: the server's certificate is signed by an authority --cert does not hold; give as --cert the certificate of the authority that signed it (or a file with it and the server's)"
                    ))
                } else if text.contains("invalid peer certificate") {
                    ConnectError::Misconfigured(format!(
                        "{text}: --cert is not this server's certificate, or the name checked ({}) is not one it is valid for (--server-name)",
                        self.server_name
                    ))
                } else if self.welcomed.load(std::sync::atomic::Ordering::Relaxed)
                    && (text.contains("handshake eof")
                        || text.contains("Handshake not finished")
                        || matches!(&e, imbench_transport::TransportError::Io(io)
                            if io.kind() == std::io::ErrorKind::ConnectionReset))
                {
                    // A port that has welcomed others speaks this transport: one that closes
                    // the next connection at once is at its limit, not another kind of port.
                    failed(format!(
                        "connecting to {}: {e} (the port closed the connection at once after welcoming others, as imbench-server does over --max-connections or the open files its ulimit -n allows; its `refused:` line at exit counts them)",
                        self.addr
                    ))
                } else if let Some(hint) = not_this_transport(self.transport, &text) {
                    ConnectError::Misconfigured(format!(
                        "{} {hint} (it said: {text}): is it an imbench server's {} port?",
                        self.addr, self.transport
                    ))
                } else if self.transport == Transport::Ws
                    && !self.welcomed.load(std::sync::atomic::Ordering::Relaxed)
                    && matches!(&e, imbench_transport::TransportError::Io(io)
                        if io.kind() == std::io::ErrorKind::ConnectionReset)
                {
                    // The port took the connection and reset it on the upgrade request, as a
                    // program that closes on bytes it cannot read does (mosquitto); an imbench
                    // server that has welcomed others does so only over its limit.
                    ConnectError::Misconfigured(format!(
                        "{} reset the connection on a WebSocket upgrade request, which an imbench server's ws port accepts unless it is at its connection limit (--max-connections, or its ulimit -n): is it a plain TCP port (--transport tcp), or another program's (an MQTT broker does this: --target mqtt://…)?",
                        self.addr
                    ))
                } else if matches!(&e, imbench_transport::TransportError::Io(io)
                    if io.kind() == std::io::ErrorKind::ConnectionRefused)
                {
                    failed(format!(
                        "nothing listens on TCP port {} of {} (the host refused the connection): is the server running, with --{} on that port?",
                        self.addr.port(),
                        self.addr.ip(),
                        self.transport
                    ))
                } else if text.contains("refused to accept a new connection") {
                    // QUIC's CONNECTION_REFUSED, which names no cause: say the server's.
                    failed(format!(
                        "connecting to {}: {e} (imbench-server refuses a QUIC connection so when it serves --max-connections already, or is shutting down; its `refused:` line at exit counts them)",
                        self.addr
                    ))
                } else {
                    failed(format!("connecting to {}: {e}", self.addr))
                }
            })?;
        let hello = Frame::Hello {
            version: PROTOCOL_VERSION,
            user,
            token: self.secret.token_for(user),
            flags: if receipts { HELLO_RECEIPTS } else { 0 },
        };
        conn.writer
            .write_frame(&hello)
            .await
            .map_err(|e| failed(format!("sending Hello: {e}")))?;
        let resumed = tickets.as_ref().is_some_and(|t| t.offered_ticket());
        let mut login = if resumed { Login::Resumed } else { Login::Full };
        if let Some(early) = conn.early.take() {
            // Hello went out as 0-RTT data; the Welcome comes in the same flight that completes
            // the handshake, so waiting for the handshake here costs no time.
            login = Login::ZeroRtt;
            let fresh = early
                .settle()
                .await
                .map_err(|e| failed(format!("completing a 0-RTT handshake: {e}")))?;
            if let Some((reader, mut writer)) = fresh {
                login = Login::ZeroRttRefused;
                writer
                    .write_frame(&hello)
                    .await
                    .map_err(|e| failed(format!("sending Hello again after 0-RTT: {e}")))?;
                conn.reader = reader;
                conn.writer = writer;
            }
        }
        match conn.reader.read_frame().await {
            Ok(Some(Frame::Welcome { .. })) => {
                self.welcomed
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                Ok(session(conn, login))
            }
            Ok(Some(Frame::Error { code, reason })) => {
                let hint = if code == imbench_proto::ErrorCode::BAD_TOKEN {
                    " (the clients' token secret is not the server's: check --secret-file)"
                } else {
                    ""
                };
                Err(ConnectError::Refused(format!("{code}: {reason}{hint}")))
            }
            Ok(Some(other)) => Err(failed(format!("expected Welcome, got {}", other.name()))),
            // An imbench server answers Hello, even to refuse it; a WebSocket port closes on a
            // Hello that is not an HTTP upgrade.
            Ok(None) if matches!(self.transport, Transport::Tcp | Transport::Tls) => {
                Err(self.closed_after_hello())
            }
            // A program that closes on bytes it cannot read, with our Hello unread, resets
            // the connection (mosquitto does): the same answer as a close without a word.
            Err(TransportError::Io(e))
                if self.transport == Transport::Tcp
                    && e.kind() == std::io::ErrorKind::ConnectionReset =>
            {
                Err(self.closed_after_hello())
            }
            Ok(None) => Err(failed("server closed the connection after Hello".into())),
            Err(e)
                if self.transport == Transport::Tls && e.to_string().contains("close_notify") =>
            {
                Err(self.closed_after_hello())
            }
            Err(TransportError::Decode(e)) => Err(ConnectError::Misconfigured(format!(
                "{} is not an imbench server: it answered Hello with bytes that are not an imbench frame ({e}){}",
                self.addr,
                answered_text(&e)
            ))),
            Err(e) => Err(failed(format!("waiting for Welcome: {e}"))),
        }
    }

    /// A port that took the connection and closed it on Hello without a word.
    fn closed_after_hello(&self) -> ConnectError {
        if self.welcomed.load(std::sync::atomic::Ordering::Relaxed) {
            // The port has welcomed others: it is an imbench server's, which over TCP and TLS
            // closes a connection over its limit so, before reading it.
            return ConnectError::Failed(format!(
                "{} closed the connection on Hello without an answer, as imbench-server does to a connection over its limit (--max-connections, or the open files its ulimit -n allows: its `refused:` line at exit counts them)",
                self.addr
            ));
        }
        ConnectError::Misconfigured(format!(
            "{} closed the connection on Hello without an answer, which an imbench server's {} port gives even to refuse one, unless it is at its connection limit (--max-connections, or its ulimit -n): is it a WebSocket port (--transport {ws}, or as a --target imbench+{ws}://), or another program's (an MQTT broker does this: --target mqtt://…)?",
            self.addr,
            self.transport,
            ws = if self.transport == Transport::Tls { "wss" } else { "ws" }
        ))
    }

    /// `quic 127.0.0.1:4433`.
    pub fn describe(&self) -> String {
        format!("{} {}", self.transport, self.addr)
    }
}

/// What a connection error means when the port speaks something other than `transport`: a
/// TLS handshake answered with bytes that are not TLS, an HTTP server that does not upgrade to
/// WebSocket.
fn not_this_transport(transport: Transport, error: &str) -> Option<&'static str> {
    // Bytes that are not TLS, or a plain server (a WebSocket port's HTTP) that closed on the
    // ClientHello it could not read.
    let not_tls = error.contains("InvalidContentType")
        || error.contains("corrupt message")
        || error.contains("handshake eof");
    match transport {
        Transport::Tls | Transport::Wss if not_tls => {
            Some("did not answer TLS; a plain port takes --transport tcp or ws (as a --target: imbench+tcp:// or imbench+ws://)")
        }
        // A TLS port answers a plain HTTP request with an alert, imbench-server's TCP port
        // with a frame, another server with its own greeting: none of them HTTP.
        Transport::Ws if error.contains("invalid HTTP version") => {
            Some("answered the WebSocket upgrade with bytes that are not HTTP: it is no WebSocket port. A TLS port takes --transport tls or wss, whichever it serves, and imbench-server's plain TCP port (--tcp) takes --transport tcp (as a --target: imbench+tls://, imbench+wss:// or imbench+tcp://)")
        }
        // TLS went through; what answered the upgrade inside it is no HTTP server.
        Transport::Wss if error.contains("invalid HTTP version") => {
            Some("answered the WebSocket upgrade (inside TLS) with bytes that are not HTTP: it is no WebSocket port. imbench-server's TLS port (--tls) takes --transport tls (as a --target: imbench+tls://)")
        }
        Transport::Ws | Transport::Wss if error.contains("WebSocket") => {
            Some("did not accept a WebSocket upgrade")
        }
        _ => None,
    }
}

/// What another protocol's answer began with, when its first bytes are text (an HTTP status
/// line, NATS's INFO, an SMTP greeting): they were read as an imbench frame's length.
fn answered_text(e: &imbench_proto::DecodeError) -> String {
    let imbench_proto::DecodeError::TooLarge { len, .. } = e else {
        return String::new();
    };
    let bytes = len.to_be_bytes();
    // A TLS record (an alert, or a handshake) begins with its type and version 3.x.
    if matches!(bytes, [0x15 | 0x16, 0x03, ..]) {
        return ": it answered in TLS, so a TLS port takes --transport tls or wss (as a --target: imbench+tls:// or imbench+wss://)".into();
    }
    // An HTTP answer: imbench-server's WebSocket ports answer bytes that are not HTTP so.
    if &bytes == b"HTTP" {
        return ": it answered in HTTP: if it is imbench-server's WebSocket port (--ws, or --wss inside TLS), it takes --transport ws or wss (as a --target: imbench+ws:// or imbench+wss://); another web server is no imbench server".into();
    }
    if bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!(": it began {:?}", String::from_utf8_lossy(&bytes))
    } else {
        String::new()
    }
}

fn session(conn: FramedConnection, login: Login) -> Session {
    let FramedConnection {
        reader,
        writer,
        link,
        migrator,
        ..
    } = conn;
    let side_streams = link
        .side_streams(imbench_proto::Codec::default())
        .map(|side| FileStreams { side });
    Session {
        sender: Sender::Imbench(ImbenchSender { writer, link }),
        events: Events::Imbench(ImbenchEvents { reader }),
        side_streams,
        login,
        migrator,
    }
}

/// Operations as frames on the connection.
pub struct ImbenchSender {
    writer: FrameWriter,
    link: Link,
}

impl ImbenchSender {
    /// Encodes `op` into the pending batch.
    pub fn queue(&mut self, op: Op) -> Result<(), SessionError> {
        let frame = match op {
            Op::Send { msg_id, to, body } => Frame::Send { msg_id, to, body },
            Op::Join { group } => Frame::Join { group },
            Op::Leave { group } => Frame::Leave { group },
            Op::Receipt { count } => Frame::Receipt { count },
            Op::FileOffer {
                transfer_id,
                to,
                size,
                sha256,
                name,
            } => Frame::FileOffer {
                transfer_id,
                to,
                size,
                sha256,
                name,
            },
            Op::FileChunk { transfer_id, data } => Frame::FileChunk { transfer_id, data },
        };
        Ok(self.writer.queue(&frame)?)
    }

    /// Writes the batch.
    pub async fn flush(&mut self) -> Result<(), SessionError> {
        Ok(self.writer.flush().await?)
    }

    /// Bye, then the write side shut.
    pub async fn close(&mut self, reason: &str) {
        let bye = Frame::Bye {
            reason: reason.to_string(),
        };
        if self.writer.write_frame(&bye).await.is_ok() {
            let _ = self.writer.shutdown().await;
        }
    }

    /// Closes the connection at once.
    pub fn abort(&mut self, reason: &str) {
        self.link.abort(0, reason);
    }
}

/// Frames from the connection, as events.
pub struct ImbenchEvents {
    reader: FrameReader,
}

impl ImbenchEvents {
    /// The next frame as an event; `None` when the connection ended.
    pub async fn next(&mut self) -> Result<Option<Event>, SessionError> {
        Ok(self.reader.read_frame().await?.map(event_of))
    }
}

/// What a frame from the server means to the client.
fn event_of(frame: Frame) -> Event {
    match frame {
        Frame::Deliver {
            msg_id,
            from,
            to,
            body,
        } => Event::Delivered {
            msg_id,
            from,
            to,
            body,
        },
        Frame::Ack { msg_id } => Event::Acked { msg_id },
        Frame::Reject { msg_id, code } => Event::Rejected { msg_id, code },
        Frame::Joined { group, .. } => Event::Joined { group },
        Frame::Left { group } => Event::Left { group },
        Frame::GroupRefused { group, code } => Event::GroupRefused {
            group,
            code,
            said: None,
        },
        Frame::FileAccepted { transfer_id } => Event::FileAccepted { transfer_id },
        Frame::FileIncoming {
            transfer_id,
            size,
            sha256,
            name,
            ..
        } => Event::FileIncoming {
            transfer_id,
            size,
            sha256,
            name,
        },
        Frame::FileChunk { transfer_id, data } => Event::FileChunk { transfer_id, data },
        Frame::FileCancel { transfer_id, code } => Event::FileCancelled { transfer_id, code },
        Frame::Pong { .. } => Event::Alive,
        Frame::Bye { reason } => Event::Closed { reason },
        Frame::Error { code, reason } => Event::Failed { code, reason },
        other => Event::Unexpected {
            what: format!("a {} frame", other.name()).into(),
        },
    }
}

/// Files on streams of their own beside the session's frames (QUIC), so chat never waits
/// behind file bytes. Each stream opens with one frame naming the transfer: `FileData` from a
/// sender, `FileIncoming` to a recipient.
#[derive(Clone)]
pub struct FileStreams {
    side: SideStreams,
}

/// A file arriving on a stream of its own.
pub struct IncomingFile {
    /// Bytes that will follow.
    pub size: u64,
    /// SHA-256 as the sender declared it.
    pub sha256: [u8; imbench_proto::SHA256_LEN],
    /// The file's name.
    pub name: String,
    /// The bytes.
    pub bytes: SideRecv,
}

/// The files arriving on a session's streams.
pub struct IncomingFiles {
    streams: tokio::sync::mpsc::Receiver<Result<SideStream, imbench_transport::TransportError>>,
}

impl FileStreams {
    /// Opens the stream for accepted transfer `transfer_id`; write the file, then finish it.
    pub async fn open(&self, transfer_id: u64) -> Result<SideSend, SessionError> {
        Ok(self.side.open(&Frame::FileData { transfer_id }).await?)
    }

    /// The files that will arrive on this session's streams.
    pub fn incoming(&self) -> IncomingFiles {
        IncomingFiles {
            streams: self.side.incoming(),
        }
    }
}

impl IncomingFiles {
    /// The next file; `None` once the session ended.
    pub async fn next(&mut self) -> Option<IncomingFile> {
        loop {
            if let Ok(SideStream::File {
                header:
                    Frame::FileIncoming {
                        size, sha256, name, ..
                    },
                bytes,
            }) = self.streams.recv().await?
            {
                return Some(IncomingFile {
                    size,
                    sha256,
                    name,
                    bytes,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_transports_answer_is_named() {
        // A TLS alert read as a frame's length: 0x15 0x03 0x03 …
        let tls = imbench_proto::DecodeError::TooLarge {
            len: u32::from_be_bytes([0x15, 0x03, 0x03, 0x00]),
            max: 65_792,
        };
        assert!(answered_text(&tls).contains("a TLS port takes --transport tls or wss"));
        let http = imbench_proto::DecodeError::TooLarge {
            len: u32::from_be_bytes(*b"HTTP"),
            max: 65_792,
        };
        assert!(answered_text(&http).contains("--transport ws"));
        // A plain port that closed on a ClientHello.
        let hint = not_this_transport(Transport::Tls, "i/o: tls handshake eof");
        assert!(hint.is_some_and(|h| h.contains("plain port")));
        assert!(not_this_transport(Transport::Tcp, "i/o: tls handshake eof").is_none());
        // A plain WebSocket upgrade to a TLS port.
        let hint = not_this_transport(
            Transport::Ws,
            "WebSocket protocol error: httparse error: invalid HTTP version",
        );
        assert!(hint.is_some_and(|h| h.contains("--transport tls or wss")));
        // The same inside TLS: a TLS port that is no WebSocket one.
        let hint = not_this_transport(
            Transport::Wss,
            "WebSocket protocol error: httparse error: invalid HTTP version",
        );
        assert!(hint.is_some_and(|h| h.contains("(--tls) takes --transport tls")));
    }
}
