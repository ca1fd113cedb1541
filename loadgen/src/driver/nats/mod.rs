//! The NATS driver: imbench's clients against a NATS server (core NATS, and JetStream for the
//! acknowledgement when the target asks), over plain TCP or TLS.
//!
//! How the chat maps onto NATS:
//!
//! - **connect**: a TCP connection, the server's INFO (then TLS, for a `nats+tls://` target, as
//!   NATS starts it), then CONNECT (user and password or a
//!   token when the target has them; `echo` off, so a group message does not come back to its
//!   sender), SUB to the user's own subject, and PING; the server's PONG means it has processed
//!   all of it, and the client is online.
//! - **direct**: a PUB to the recipient's subject `PREFIX.u.USER`.
//! - **group**: a PUB to `PREFIX.g.GROUP`; a member is a client subscribed to it. Join is SUB,
//!   Leave is UNSUB; each takes effect when the PONG of the PING that follows it arrives.
//! - **ack**: every batch of operations the client writes ends with a PING. NATS processes a
//!   connection's commands in order, so its PONG says the server has routed every message of
//!   the batch: each is then acked. With `jetstream=`, a message carries a reply subject and
//!   is acked by JetStream's answer there, which says a stream stored it. Core NATS keeps
//!   nothing: there is no refusal, no hold for a user who is offline, and a message to one is
//!   lost (counted as such); a JetStream stream keeps it, but delivery is still core NATS's.
//!
//! The message's sender and id travel in front of the body ([`super::envelope`]).
//!
//! The client is the NATS protocol written here ([`wire`]) rather than the `async-nats` crate:
//! that crate's `flush` writes the client's buffer and does not wait for the server, and it has
//! no call that sends a PING and waits for its PONG, which is the only answer core NATS gives
//! a publisher. It also keeps a task and a channel per client, which the generator's receive
//! path does not need.

pub mod wire;

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use imbench_proto::Dest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::tls::{self, ReadHalf, TlsClient, WriteHalf};
use super::{envelope, ConnectError, Event, Events, Op, Sender, Session, SessionError};
use wire::{Auth, ServerOp};

/// The subscription id of a user's own subject; a group's is its id plus [`FIRST_GROUP_SID`].
const OWN_SID: u64 = 1;
const FIRST_GROUP_SID: u64 = 3;
/// The subscription of a client's JetStream acknowledgements, and of the answer to the stream's
/// creation.
const ACK_SID: u64 = 0;
const SETUP_SID: u64 = 2;

/// How long the stream's creation may take before JetStream is taken to be off.
const JETSTREAM_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The same wait when the server's INFO does not say it runs JetStream: without it the
/// question goes unanswered (this driver does not ask for NATS's "no responders" status,
/// which needs message headers), and only a server that forwards JetStream's API elsewhere
/// answers at all, within a few round trips of even a slow path.
const JETSTREAM_WAIT_UNOFFERED: std::time::Duration = std::time::Duration::from_secs(2);

/// What a JetStream stream keeps: at most this long, and this many bytes (the oldest go first),
/// so that runs do not fill the server.
const STREAM_MAX_AGE_NS: u64 = 3_600_000_000_000;
const STREAM_MAX_BYTES: u64 = 1 << 30;

/// Where a JetStream stream keeps its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// In the server's memory.
    Memory,
    /// On the server's disk.
    File,
}

impl Storage {
    /// As written in a target (`?jetstream=file`).
    pub fn name(self) -> &'static str {
        match self {
            Storage::Memory => "memory",
            Storage::File => "file",
        }
    }
}

/// Largest message the driver accepts from a server (NATS's own default `max_payload`).
const MAX_PAYLOAD: usize = 1024 * 1024;

/// A NATS server to load, from a `nats://[USER:PASS@|TOKEN@]HOST:PORT[/PREFIX]` target, or
/// `nats+tls://…[?ca=FILE]` for TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsTarget {
    /// `HOST:PORT`.
    pub host_port: String,
    /// The host alone: what the server's certificate must be valid for.
    pub host: String,
    /// How clients log in.
    pub auth: Auth,
    /// The first token of every subject the run uses.
    pub prefix: String,
    /// TLS after the server's INFO, for a `nats+tls://` target.
    pub tls: Option<TlsClient>,
    /// Publish into a JetStream stream, acked by its acknowledgement (`jetstream=memory|file`).
    pub jetstream: Option<Storage>,
}

/// Why a target is not a NATS address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// Not `nats://…` or `nats+tls://…`.
    #[error("a NATS target starts with nats:// (or nats+tls:// for TLS), got {0:?}")]
    Scheme(String),
    /// No port, or not a number.
    #[error(
        "a NATS target needs HOST:PORT with a port from 1 to 65535 (NATS listens on 4222 unless told otherwise), got {0:?}"
    )]
    HostPort(String),
    /// A credential with a `%` that is not an escape.
    #[error(
        "the user, password or token has a % that is not %XX: a % of its own is written %25 (@, :, /, ? and # may be written as they are, or as %40, %3A, %2F, %3F and %23)"
    )]
    Escape,
    /// An option that is not known, or a value it does not take.
    #[error("{0}")]
    Options(String),
    /// A subject prefix NATS would not take.
    #[error(
        "subject prefix {0:?}: tokens of ASCII letters, digits, '-' and '_' separated by dots"
    )]
    Prefix(String),
}

impl NatsTarget {
    /// Reads `nats://[USER:PASS@|TOKEN@]HOST:PORT[/PREFIX]` or the same with `nats+tls://` and
    /// an optional `?ca=FILE`; the subject prefix is `imbench` unless a path gives another.
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        let (rest, tls) = super::url::strip_scheme(url, "nats://", "nats+tls://")
            .ok_or_else(|| TargetError::Scheme(url.to_string()))?;
        let parts = super::url::split(rest);
        let decode = |s: &str| super::url::percent_decode(s).ok_or(TargetError::Escape);
        let auth = match parts.userinfo {
            Some(cred) => match cred.split_once(':') {
                Some((u, p)) => Auth::UserPass(decode(u)?, decode(p)?),
                None => Auth::Token(decode(cred)?),
            },
            None => Auth::None,
        };
        let (host, _) = super::url::host_port(parts.host_port)
            .ok_or_else(|| TargetError::HostPort(parts.host_port.to_string()))?;
        let given_prefix = (!parts.path.is_empty()).then_some(parts.path);
        let prefix = given_prefix.unwrap_or("imbench");
        let prefix_ok = wire::valid_subject(prefix)
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if !prefix_ok {
            return Err(TargetError::Prefix(prefix.to_string()));
        }
        let pairs = super::url::query_pairs(parts.query).map_err(|key| {
            TargetError::Options(format!("{key} is given twice in the NATS target"))
        })?;
        let mut ca = None;
        let mut jetstream = None;
        for (key, value) in pairs {
            match key {
                "jetstream" => {
                    jetstream = Some(match value {
                        "memory" => Storage::Memory,
                        "file" => Storage::File,
                        other => {
                            return Err(TargetError::Options(format!(
                                "jetstream={other:?}: jetstream takes memory or file (where the stream keeps the messages)"
                            )))
                        }
                    })
                }
                "ca" => ca = Some(value),
                _ => {
                    let written = super::url::option_as_written(key, value);
                    return Err(TargetError::Options(format!(
                        "unknown option {written:?} in the NATS target: jetstream=memory|file, ca=FILE (with nats+tls://)"
                    )))
                }
            }
        }
        let tls = super::tls::from_options(tls, ca, "write the target as nats+tls://…?ca=FILE")
            .map_err(TargetError::Options)?;
        // A stream in memory and one on disk are compared often, in one command against one
        // server: by default each has a prefix (and so a stream) of its own, or the second
        // would find the first's stream with other options.
        let prefix = match (given_prefix, jetstream) {
            (None, Some(storage)) => format!("{prefix}-{}", storage.name()),
            _ => prefix.to_string(),
        };
        Ok(Self {
            host_port: parts.host_port.to_string(),
            host: host.to_string(),
            auth,
            prefix,
            tls,
            jetstream,
        })
    }

    /// `nats 127.0.0.1:4222`, without credentials; TLS and its roots when it is on.
    pub fn describe(&self) -> String {
        let mut notes = Vec::new();
        if let Some(tls) = &self.tls {
            notes.push(tls.describe());
        }
        if let Some(storage) = self.jetstream {
            notes.push(format!(
                "JetStream stream {} in {}",
                self.stream_name(),
                storage.name()
            ));
        }
        if notes.is_empty() {
            format!("nats {}", self.host_port)
        } else {
            format!("nats {} ({})", self.host_port, notes.join(", "))
        }
    }

    /// The JetStream stream that keeps the run's subjects: the prefix, dots made underscores.
    pub fn stream_name(&self) -> String {
        self.prefix.replace('.', "_")
    }

    fn user_subject(&self, user: u64) -> String {
        format!("{}.u.{user}", self.prefix)
    }

    fn group_subject(&self, group: u64) -> String {
        format!("{}.g.{group}", self.prefix)
    }
}

/// Logs clients in to one NATS server.
pub struct NatsDriver {
    target: Arc<NatsTarget>,
    /// Where JetStream's acknowledgements come back: `_INBOX.imbench.RUN.USER.MSG`, RUN new
    /// with each driver, so that no answer meant for another run is taken for one of this.
    inbox: Arc<str>,
    /// Whether the stream is there, found out by the first client to connect.
    stream: tokio::sync::OnceCell<Result<(), String>>,
    /// The largest payload the scenario publishes (its largest body in its envelope): a
    /// server whose `max_payload` is smaller closes the connection at the first such message.
    largest_payload: usize,
}

impl NatsDriver {
    /// Clients of `target` that publish payloads of up to `largest_payload` bytes.
    pub fn new(target: NatsTarget, largest_payload: usize) -> Self {
        Self {
            target: Arc::new(target),
            inbox: format!("_INBOX.imbench.{:016x}", rand::random::<u64>()).into(),
            stream: tokio::sync::OnceCell::new(),
            largest_payload,
        }
    }

    /// What the clients connect to.
    pub fn describe(&self) -> String {
        self.target.describe()
    }

    /// Where the clients connect, as `HOST:PORT`.
    pub fn address(&self) -> String {
        self.target.host_port.clone()
    }

    /// Connects as `user` and subscribes to its subject; `Ok` once the server confirmed both.
    pub async fn connect(&self, user: u64) -> Result<Session, ConnectError> {
        let target = &self.target;
        let failed = |what: String| ConnectError::Failed(what);
        // A port that answers as something else is a wrong address given: a usage error.
        let not_nats = |what: String| ConnectError::Misconfigured(what);
        let mut stream = TcpStream::connect(&target.host_port).await.map_err(|e| {
            failed(super::tcp_connect_failed(
                "a NATS server",
                &target.host_port,
                &e,
            ))
        })?;
        let _ = stream.set_nodelay(true);
        let mut inbuf = BytesMut::with_capacity(4096);
        // A NATS server speaks first, at once. A port that takes the connection and says
        // nothing may be another program's or a paused server: the login's own timeout
        // (`generator.connect_timeout`, around every login) ends the wait, not a shorter one
        // here, which would fail a server paused for less than the run allows.
        let first = next_op(&mut stream, &mut inbuf).await;
        let info = match first {
            Ok(Some(ServerOp::Info(info))) => info,
            Ok(Some(other)) => {
                return Err(not_nats(format!(
                    "{} is not a NATS server: it began with {other:?}",
                    target.host_port
                )))
            }
            // A NATS server cut off in the middle of its INFO (at its limit, or going away).
            Ok(None) if inbuf.starts_with(b"INFO") => {
                return Err(failed(format!(
                    "{} closed the connection in the middle of its INFO",
                    target.host_port
                )))
            }
            // Bytes and then the end, no line among them: another protocol's greeting or
            // refusal (imbench's own server's Error frame, at its Hello timeout).
            Ok(None) if !inbuf.is_empty() => {
                return Err(not_nats(format!(
                    "{} is not a NATS server: it sent {} bytes that are no NATS operation and closed the connection",
                    target.host_port,
                    inbuf.len()
                )))
            }
            // A server at its connection limit may close without a word, as may a busy one.
            Ok(None) => {
                return Err(failed(format!(
                    "{} closed the connection before saying anything (a NATS server begins with INFO)",
                    target.host_port
                )))
            }
            Err(e) => {
                return Err(not_nats(format!(
                    "{} is not a NATS server: {e}",
                    target.host_port
                )))
            }
        };
        if let Some(max) = wire::max_payload(&info).filter(|&max| max < self.largest_payload) {
            return Err(ConnectError::Misconfigured(format!(
                "the NATS server at {} takes messages of at most {max} bytes (max_payload in its INFO), and this scenario's are up to {} bytes (its largest body and imbench's {}-byte envelope), which the server would answer by closing the connection: raise its max_payload or give the scenario smaller sizes",
                target.host_port,
                self.largest_payload,
                super::envelope::ENVELOPE_LEN
            )));
        }
        let offers = wire::tls_offer(&info);
        let (mut read, mut write) = match &target.tls {
            None if offers == wire::TlsOffer::Required => {
                return Err(not_nats(format!(
                    "the NATS server at {} requires TLS: write the target as nats+tls://{}/… (with ?ca=FILE when its certificate is not signed by a root this machine trusts)",
                    target.host_port, target.host_port
                )))
            }
            None => tls::split_plain(stream),
            Some(_) if offers == wire::TlsOffer::No => {
                return Err(not_nats(format!(
                    "the NATS server at {} offers no TLS (its INFO has neither tls_required nor tls_available): use nats:// or configure TLS on the server",
                    target.host_port
                )))
            }
            Some(client) => {
                if !inbuf.is_empty() {
                    return Err(failed(
                        "the server sent more than its INFO before TLS began".into(),
                    ));
                }
                let secured = client
                    .handshake(stream, &target.host, "nats://")
                    .await
                    .map_err(|e| ConnectError::Misconfigured(format!("{}: {e}", target.host_port)))?;
                tls::split_tls(secured)
            }
        };
        let mut out = BytesMut::with_capacity(512);
        wire::connect(
            &mut out,
            &format!("imbench-{user}"),
            &target.auth,
            target.tls.is_some(),
        );
        wire::subscribe(&mut out, &target.user_subject(user), OWN_SID);
        let ack_inbox = target.jetstream.map(|_| format!("{}.{user}", self.inbox));
        if let Some(inbox) = &ack_inbox {
            wire::subscribe(&mut out, &format!("{inbox}.*"), ACK_SID);
        }
        wire::ping(&mut out);
        write
            .write_all(&out)
            .await
            .map_err(|e| failed(format!("sending CONNECT: {e}")))?;
        loop {
            match next_op(&mut read, &mut inbuf).await {
                Ok(Some(ServerOp::Pong)) => break,
                Ok(Some(ServerOp::Err(e))) => {
                    return Err(if e.to_ascii_lowercase().contains("authori") {
                        ConnectError::Refused(if target.auth == wire::Auth::None {
                            format!("{e} (the server wants a user and password or a token, and the target gives none: nats://USER:PASSWORD@HOST:PORT or nats://TOKEN@HOST:PORT)")
                        } else {
                            format!(
                                "{e} (check the user and password or token in the nats:// target)"
                            )
                        })
                    } else {
                        failed(format!("the server answered CONNECT with -ERR {e}"))
                    })
                }
                Ok(Some(ServerOp::Ping)) => {
                    let _ = write.write_all(b"PONG\r\n").await;
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(failed(
                        "the server closed the connection after CONNECT".into(),
                    ))
                }
                Err(e) => return Err(failed(format!("waiting for the server's PONG: {e}"))),
            }
        }
        if let Some(storage) = target.jetstream {
            // Only the server's answer is kept for the others; a connection that failed on
            // the way leaves the question to the next.
            let ready = self
                .stream
                .get_or_try_init(|| {
                    create_stream(
                        &mut read,
                        &mut write,
                        &mut inbuf,
                        target,
                        storage,
                        &self.inbox,
                        wire::offers_jetstream(&info),
                    )
                })
                .await
                .map_err(ConnectError::Failed)?;
            if let Err(why) = ready {
                return Err(ConnectError::Misconfigured(why.clone()));
            }
        }
        let writer = Arc::new(tokio::sync::Mutex::new(write));
        let (answers_tx, answers_rx) = unbounded_channel();
        let closing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        Ok(Session {
            sender: Sender::Nats(NatsSender {
                target: target.clone(),
                user,
                writer: writer.clone(),
                out: BytesMut::with_capacity(4096),
                ack_inbox,
                reply: String::new(),
                batch: Vec::new(),
                answers: answers_tx,
                closing: closing.clone(),
            }),
            events: Events::Nats(NatsEvents {
                user,
                read,
                inbuf,
                writer,
                answers: answers_rx,
                ready: VecDeque::new(),
                closing,
            }),
            side_streams: None,
            login: crate::driver::Login::Full,
            migrator: None,
        })
    }
}

/// Makes sure the target's JetStream stream exists (a stream of the same name and
/// configuration is taken as it is), on the connection of the first client to log in (the
/// check before the run, as a rule). The inner result is the server's answer, which holds for
/// the whole run; the outer error is this connection's trouble, which the next may not have.
async fn create_stream(
    read: &mut ReadHalf,
    write: &mut WriteHalf,
    inbuf: &mut BytesMut,
    target: &NatsTarget,
    storage: Storage,
    inbox: &str,
    offered: bool,
) -> Result<Result<(), String>, String> {
    let name = target.stream_name();
    let config = serde_json::json!({
        "name": name,
        "subjects": [format!("{}.>", target.prefix)],
        "storage": storage.name(),
        "retention": "limits",
        "discard": "old",
        "max_age": STREAM_MAX_AGE_NS,
        "max_bytes": STREAM_MAX_BYTES,
        "num_replicas": 1,
    });
    let reply = format!("{inbox}.setup");
    let mut out = BytesMut::with_capacity(512);
    wire::subscribe(&mut out, &reply, SETUP_SID);
    wire::publish_for_reply(
        &mut out,
        &format!("$JS.API.STREAM.CREATE.{name}"),
        Some(&reply),
        b"",
        config.to_string().as_bytes(),
    );
    let place = &target.host_port;
    write
        .write_all(&out)
        .await
        .map_err(|e| format!("asking {place} for stream {name}: {e}"))?;
    let wait = if offered {
        JETSTREAM_WAIT
    } else {
        JETSTREAM_WAIT_UNOFFERED
    };
    let waited = tokio::time::timeout(wait, async {
        loop {
            match next_op(read, inbuf).await {
                Ok(Some(ServerOp::Msg {
                    sid: SETUP_SID,
                    payload,
                    ..
                })) => return Ok(Ok(payload)),
                Ok(Some(ServerOp::Ping)) => {
                    let _ = write.write_all(b"PONG\r\n").await;
                }
                // A permission refused, as a rule: the server's word, for the whole run.
                Ok(Some(ServerOp::Err(e))) => return Ok(Err(format!("-ERR {e}"))),
                Ok(Some(_)) => {}
                Ok(None) => return Err("the server closed the connection".to_string()),
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await;
    let answer = match waited {
        Err(_) if offered => {
            return Ok(Err(format!(
                "the NATS server at {place} did not answer the creation of JetStream stream {name} within {wait:?}, though its INFO says JetStream is on: is its JetStream short of resources, or is this account's JetStream off?"
            )))
        }
        Err(_) => {
            return Ok(Err(format!(
                "the NATS server at {place} does not run JetStream (its INFO does not say \"jetstream\":true, and the creation of stream {name} went unanswered for {wait:?}): start it with -js, or jetstream {{}} in its configuration, or drop ?jetstream= from the target"
            )))
        }
        Ok(Err(e)) => return Err(format!("creating JetStream stream {name} at {place}: {e}")),
        Ok(Ok(Err(e))) => {
            return Ok(Err(format!(
                "the NATS server at {place} refused JetStream stream {name}: {e}"
            )))
        }
        Ok(Ok(Ok(answer))) => answer,
    };
    out.clear();
    wire::unsubscribe(&mut out, SETUP_SID);
    let _ = write.write_all(&out).await;
    Ok(wire::jetstream_answer(&answer).map(|_| ()).map_err(|e| {
        let hint = if e.contains("10058") {
            format!(" (a stream {name} with another configuration is there, from a run with other options: delete it, nats stream rm {name}, or give the target another prefix)")
        } else if e.contains("10065") {
            format!(" (another stream takes subjects under {}: give the target another prefix)", target.prefix)
        } else if e.contains("10028") || e.contains("insufficient") {
            format!(
                " (imbench's stream may hold up to {} MiB: the server's JetStream needs that much room in its {} store, its max_{}_store)",
                STREAM_MAX_BYTES >> 20,
                storage.name(),
                storage.name()
            )
        } else {
            String::new()
        };
        format!("the NATS server at {place} refused JetStream stream {name}: {e}{hint}")
    }))
}

/// Reads until one whole operation is in `inbuf`; `None` at the end of the stream.
async fn next_op<R: tokio::io::AsyncRead + Unpin>(
    read: &mut R,
    inbuf: &mut BytesMut,
) -> Result<Option<ServerOp>, SessionError> {
    loop {
        if let Some(op) = wire::parse(inbuf, MAX_PAYLOAD).map_err(protocol)? {
            return Ok(Some(op));
        }
        if inbuf.capacity() - inbuf.len() < 1024 {
            inbuf.reserve(16 * 1024);
        }
        if read.read_buf(inbuf).await.map_err(io)? == 0 {
            return Ok(None);
        }
    }
}

fn io(e: std::io::Error) -> SessionError {
    SessionError::Transport(imbench_transport::TransportError::Io(e))
}

fn protocol(e: wire::WireError) -> SessionError {
    SessionError::Protocol(e.to_string())
}

/// The imbench code nearest to a NATS `-ERR`, for the report's counts; the reason is kept in
/// words beside it.
fn error_code(reason: &str) -> imbench_proto::ErrorCode {
    use imbench_proto::ErrorCode;
    let r = reason.to_ascii_lowercase();
    if r.contains("slow consumer") {
        ErrorCode::SLOW_CONSUMER
    } else if r.contains("maximum payload") {
        ErrorCode::BODY_TOO_LARGE
    } else if r.contains("authori") {
        ErrorCode::BAD_TOKEN
    } else {
        ErrorCode::BAD_FRAME
    }
}

/// JetStream's answer to the message `tail` names: stored (acked), or refused.
fn stored(tail: Option<u64>, payload: &[u8]) -> Event {
    let Some(msg_id) = tail else {
        return Event::Unexpected {
            what: "a JetStream acknowledgement on a subject that names no message".into(),
        };
    };
    match wire::jetstream_answer(payload) {
        Ok(_) => Event::Acked { msg_id },
        // The stream did not keep it, but core NATS routed it all the same: it is neither
        // acked nor refused (a refusal would take it out of what recipients are expected to
        // get, and its delivery would then hide a message lost elsewhere). It stays unacked
        // and the error is counted.
        Err(why) => Event::Unexpected {
            what: format!("a message JetStream did not store ({why}; core NATS still routed it)")
                .into(),
        },
    }
}

/// What the PONG of one batch's PING answers.
#[derive(Debug)]
enum Answer {
    Acked(u64),
    Joined(u64),
    Left(u64),
}

/// A session's operations, written as NATS commands.
pub struct NatsSender {
    target: Arc<NatsTarget>,
    user: u64,
    writer: Arc<tokio::sync::Mutex<WriteHalf>>,
    out: BytesMut,
    /// With JetStream: this client's inbox for acknowledgements (a message's id follows it).
    ack_inbox: Option<String>,
    /// The reply subject being written, kept to save an allocation per message.
    reply: String,
    /// What the next PING's PONG will answer.
    batch: Vec<Answer>,
    /// To the events side, in the order the PINGs are written.
    answers: UnboundedSender<Vec<Answer>>,
    /// Set when this side ends the session: the connection's end is then expected.
    closing: Arc<std::sync::atomic::AtomicBool>,
}

impl NatsSender {
    /// Encodes `op` into the pending batch.
    pub fn queue(&mut self, op: Op) -> Result<(), SessionError> {
        if self.closing.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(SessionError::Closed);
        }
        match op {
            Op::Send { msg_id, to, body } => {
                let subject = match to {
                    Dest::User(u) => self.target.user_subject(u),
                    Dest::Group(g) => self.target.group_subject(g),
                };
                let head = envelope::head(self.user, msg_id);
                match &self.ack_inbox {
                    // JetStream answers each message on its reply subject once it is stored.
                    Some(inbox) => {
                        self.reply.clear();
                        self.reply.push_str(inbox);
                        self.reply.push('.');
                        self.reply.push_str(itoa::Buffer::new().format(msg_id));
                        wire::publish_for_reply(
                            &mut self.out,
                            &subject,
                            Some(&self.reply),
                            &head,
                            &body,
                        );
                    }
                    None => {
                        wire::publish(&mut self.out, &subject, &head, &body);
                        self.batch.push(Answer::Acked(msg_id));
                    }
                }
            }
            Op::Join { group } => {
                let subject = self.target.group_subject(group);
                wire::subscribe(&mut self.out, &subject, FIRST_GROUP_SID + group);
                self.batch.push(Answer::Joined(group));
            }
            Op::Leave { group } => {
                wire::unsubscribe(&mut self.out, FIRST_GROUP_SID + group);
                self.batch.push(Answer::Left(group));
            }
            // Core NATS holds nothing for a reconnect: there is nothing to confirm.
            Op::Receipt { .. } => {}
            Op::FileOffer { .. } | Op::FileChunk { .. } => {
                return Err(SessionError::Unsupported(
                    "the NATS driver carries no files",
                ))
            }
        }
        Ok(())
    }

    /// Writes the batch and the PING whose PONG answers it.
    pub async fn flush(&mut self) -> Result<(), SessionError> {
        if self.out.is_empty() {
            return Ok(());
        }
        if !self.batch.is_empty() {
            wire::ping(&mut self.out);
            // Before the write, so the answer is waiting when the PONG arrives.
            let _ = self.answers.send(std::mem::take(&mut self.batch));
        }
        let mut w = self.writer.lock().await;
        let result = w.write_all(&self.out).await;
        self.out.clear();
        result.map_err(io)
    }

    /// Stops sending: the write side is shut, the server closes the connection, and the
    /// events end.
    pub async fn close(&mut self, _reason: &str) {
        let _ = self.flush().await;
        self.closing
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.writer.lock().await.shutdown().await;
    }

    /// Stops sending at once; the connection closes when both halves are gone.
    pub fn abort(&mut self, _reason: &str) {
        self.closing
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.out.clear();
        if let Ok(mut w) = self.writer.try_lock() {
            // Shutting the write side down is what a dropped half would do; no waiting.
            let _ = tls::shutdown_now(&mut w);
        }
    }
}

/// What the server sends a session, as events.
pub struct NatsEvents {
    user: u64,
    read: ReadHalf,
    inbuf: BytesMut,
    /// For PONGs to the server's PINGs.
    writer: Arc<tokio::sync::Mutex<WriteHalf>>,
    answers: UnboundedReceiver<Vec<Answer>>,
    /// Events of one PONG not yet handed out.
    ready: VecDeque<Event>,
    /// Set by the sending side when it ends the session.
    closing: Arc<std::sync::atomic::AtomicBool>,
}

impl NatsEvents {
    /// The next event; `None` when the connection ended.
    pub async fn next(&mut self) -> Result<Option<Event>, SessionError> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Ok(Some(e));
            }
            let Some(op) = next_op(&mut self.read, &mut self.inbuf).await? else {
                if self.closing.load(std::sync::atomic::Ordering::Relaxed) {
                    return Ok(None);
                }
                // NATS says nothing before it closes a connection it did not mean to keep: an
                // end the client did not ask for is the session failing.
                self.closing
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                return Ok(Some(Event::Failed {
                    code: imbench_proto::ErrorCode::SHUTTING_DOWN,
                    reason: "the NATS server closed the connection".into(),
                }));
            };
            match op {
                ServerOp::Msg {
                    sid: ACK_SID,
                    tail,
                    payload,
                } => return Ok(Some(stored(tail, &payload))),
                ServerOp::Msg { sid, payload, .. } => {
                    return Ok(Some(self.delivered(sid, payload)))
                }
                ServerOp::Pong => {
                    // A PONG nobody asked for (there is none today) answers nothing.
                    if let Ok(answers) = self.answers.try_recv() {
                        self.ready.extend(answers.into_iter().map(|a| match a {
                            Answer::Acked(msg_id) => Event::Acked { msg_id },
                            Answer::Joined(group) => Event::Joined { group },
                            Answer::Left(group) => Event::Left { group },
                        }));
                    }
                }
                ServerOp::Ping => {
                    let mut w = self.writer.lock().await;
                    w.write_all(b"PONG\r\n").await.map_err(io)?;
                }
                ServerOp::Err(reason) => {
                    return Ok(Some(Event::Failed {
                        code: error_code(&reason),
                        reason: format!("NATS: {reason}"),
                    }))
                }
                ServerOp::Info(_) | ServerOp::Ok => {}
            }
        }
    }

    fn delivered(&self, sid: u64, payload: Bytes) -> Event {
        let Some((from, msg_id, body)) = envelope::open(payload) else {
            return Event::Unexpected {
                what: "a NATS message without imbench's envelope".into(),
            };
        };
        let to = match sid {
            OWN_SID => Dest::User(self.user),
            s if s >= FIRST_GROUP_SID => Dest::Group(s - FIRST_GROUP_SID),
            _ => {
                return Event::Unexpected {
                    what: "a NATS message on a subscription the client never made".into(),
                }
            }
        };
        Event::Delivered {
            msg_id,
            from,
            to,
            body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_read_with_their_credentials_and_prefix() {
        let t = NatsTarget::parse("nats://127.0.0.1:4222").unwrap();
        assert_eq!(t.host_port, "127.0.0.1:4222");
        assert_eq!(t.auth, Auth::None);
        assert_eq!(t.prefix, "imbench");
        // A stream's default prefix names its storage.
        for (url, prefix) in [
            ("nats://h:1?jetstream=memory", "imbench-memory"),
            ("nats://h:1?jetstream=file", "imbench-file"),
            ("nats://h:1/mine?jetstream=file", "mine"),
        ] {
            assert_eq!(NatsTarget::parse(url).unwrap().prefix, prefix, "{url}");
        }
        assert_eq!(t.user_subject(7), "imbench.u.7");
        assert_eq!(t.group_subject(3), "imbench.g.3");
        let t = NatsTarget::parse("nats://bob:s3cret@nats.example:4333/load.test").unwrap();
        assert_eq!(t.auth, Auth::UserPass("bob".into(), "s3cret".into()));
        assert_eq!(t.host_port, "nats.example:4333");
        assert_eq!(t.group_subject(1), "load.test.g.1");
        assert_eq!(t.describe(), "nats nats.example:4333");
        let t = NatsTarget::parse("nats://tok@localhost:4222").unwrap();
        assert_eq!(t.auth, Auth::Token("tok".into()));
        assert_eq!(t.tls, None);
        // TLS: the certificate is checked against the host.
        let ca_file = crate::driver::tls::TestCaFile::new("nats-parse");
        let ca = &ca_file.path;
        let t = NatsTarget::parse(&format!("nats+tls://[::1]:4222/x?ca={}", ca.display())).unwrap();
        assert_eq!(
            (t.host.as_str(), t.host_port.as_str()),
            ("::1", "[::1]:4222")
        );
        assert!(t.tls.is_some());
        assert!(t.describe().contains("TLS, CA"), "{}", t.describe());
    }

    #[test]
    fn a_target_that_is_not_nats_says_what_is_wrong() {
        assert!(matches!(
            NatsTarget::parse("mqtt://127.0.0.1:1883"),
            Err(TargetError::Scheme(_))
        ));
        for bad in [
            "nats://127.0.0.1",
            "nats://:4222",
            "nats://h:0",
            "nats://h:42x",
        ] {
            assert!(
                matches!(NatsTarget::parse(bad), Err(TargetError::HostPort(_))),
                "{bad}"
            );
        }
        for (bad, says) in [
            ("nats://h:1?qos=2", "unknown option \"qos=2\""),
            ("nats://h:1?ca=/x.pem", "nats+tls://"),
            ("nats://h:1?jetstream=disk", "memory or file"),
            ("nats://h:1?jetstream", "memory or file"),
            ("nats+tls://h:1?ca=/x.pem&ca=/y.pem", "given twice"),
            (
                "nats+tls://h:1?ca=/nonexistent/ca.pem",
                "ca=/nonexistent/ca.pem",
            ),
        ] {
            let e = NatsTarget::parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert_eq!(
            NatsTarget::parse("nats://bob:p%40ss%3Aw%2Frd@h:1")
                .unwrap()
                .auth,
            Auth::UserPass("bob".into(), "p@ss:w/rd".into())
        );
        assert_eq!(
            NatsTarget::parse("nats://bob:100%@h:1"),
            Err(TargetError::Escape)
        );
        for bad in ["nats://h:1/a..b", "nats://h:1/a.*", "nats://h:1/a b"] {
            assert!(
                matches!(NatsTarget::parse(bad), Err(TargetError::Prefix(_))),
                "{bad}"
            );
        }
    }
}
