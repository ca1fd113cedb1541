//! The XMPP driver: imbench's clients against an XMPP server (Prosody, ejabberd, …) over a
//! plain TCP client connection.
//!
//! How the chat maps onto XMPP:
//!
//! - **connect**: the client stream to the target's domain (STARTTLS first, and a new stream
//!   over TLS, for `tls=starttls`), SASL PLAIN as the account
//!   `NAME@DOMAIN` (the target's name template with the user's number in it), registering the
//!   account in band (XEP-0077) first when the server does not know it and offers that;
//!   resource binding; stream management (XEP-0198) enabled; available presence. The client is
//!   online when the server says it has handled the presence.
//! - **direct**: `<message type='chat'>` to the recipient's bare JID.
//! - **group**: a multi-user chat room (XEP-0045) `g-GROUP@MUC`, the client's nickname its
//!   user number. Join is presence to the room, in effect when the room sends the client its
//!   own presence back (status 110); Leave is unavailable presence, in effect at the room's
//!   unavailable self-presence. A message is `<message type='groupchat'>` to the room. A room
//!   sends every message back to its sender too; the driver drops that copy.
//! - **ack**: stream management. Each batch the client writes ends with `<r/>`; the server's
//!   `<a h='N'/>` says it has handled the first N stanzas of the stream (routed each message to
//!   the recipient's session, storage or room): every message among them is acked. A message
//!   the server bounces (`type='error'`, the id the client gave it) is rejected, and not acked
//!   when the `<a/>` covering it arrives.
//! - **received**: the server's `<r/>` is answered with the number of its stanzas handed to
//!   the client so far, never more.
//! - **offline**: what a server keeps for a user who is away is its own configuration
//!   (Prosody's `mod_offline`); it sends it at the next login.
//!
//! The body travels base64-encoded in `<body>` (XML cannot carry every byte), with the sender
//! and message id in front of it ([`super::envelope`]).
//!
//! The client is the protocol written here ([`wire`], on quick-xml) rather than a full XMPP
//! library: the driver needs stream management's acknowledgements per batch, which the
//! libraries keep to themselves, and nothing of rosters, TLS negotiation or reconnection.

pub mod wire;

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::BytesMut;
use imbench_proto::{Dest, ErrorCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::tls::{self, ReadHalf, TlsClient, WriteHalf};
use super::{envelope, ConnectError, Event, Events, Op, Sender, Session, SessionError};
use wire::{Element, Incoming};

/// Largest element the driver reads from a server.
const MAX_ELEMENT: usize = 4 * 1024 * 1024;

/// How long the server has to begin its stream. A server opens it at once unless it is
/// overloaded (Prosody's one thread busy with logins took over 3 s at 333 logins a second).
const HEADER_WAIT: Duration = Duration::from_secs(10);

/// The resource every client binds.
const RESOURCE: &str = "imbench";

/// How often a join refused because its room is still locked is asked again, and the wait
/// before the first retry (growing by as much at each).
const MAX_JOIN_RETRIES: u32 = 10;
const JOIN_RETRY_WAIT: Duration = Duration::from_millis(20);

/// The part of an account name that the user's number replaces.
const USER_SLOT: &str = "{user}";

/// An XMPP server to load, from
/// `xmpp://[NAME[:PASSWORD]@]HOST:PORT[/DOMAIN][?muc=SERVICE&register=yes|no&tls=starttls|no&ca=FILE]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmppTarget {
    /// Host name or address.
    pub host: String,
    /// TCP port of client connections.
    pub port: u16,
    /// The server's XMPP domain: accounts are `NAME@DOMAIN`.
    pub domain: String,
    /// The multi-user chat service rooms live on.
    pub muc: String,
    /// Account names, with `{user}` where the user's number goes.
    pub name: String,
    /// Every account's password.
    pub password: String,
    /// Whether an account the server does not know is registered in band.
    pub register: bool,
    /// STARTTLS before SASL, for `tls=starttls`; the certificate is checked against the domain.
    pub tls: Option<TlsClient>,
}

/// Why a target is not an XMPP address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// Not `xmpp://…`.
    #[error("an XMPP target starts with xmpp://, got {0:?}")]
    Scheme(String),
    /// No port, or not a number.
    #[error(
        "an XMPP target needs HOST:PORT with a port from 1 to 65535 (client connections are on 5222 unless told otherwise), got {0:?}"
    )]
    HostPort(String),
    /// Something else that is wrong, in words.
    #[error("{0}")]
    Invalid(String),
}

impl XmppTarget {
    /// Reads a target. Accounts are `imbench-{user}` with password `imbench` unless given; the
    /// domain is the path, or the host when it is a name (`localhost` for an address); rooms
    /// are on `conference.DOMAIN`; unknown accounts are registered.
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        let invalid = |s: String| TargetError::Invalid(s);
        let rest = url
            .strip_prefix("xmpp://")
            .ok_or_else(|| TargetError::Scheme(url.to_string()))?;
        let parts = super::url::split(rest);
        let decode = |s: &str| {
            super::url::percent_decode(s).ok_or_else(|| {
                invalid("the name, password or file name has a % that is not %XX: a % of its own is written %25 (@, :, /, ? and # may be written as they are, or as %40, %3A, %2F, %3F and %23)".into())
            })
        };
        let (name, password) = match parts.userinfo {
            Some(cred) => match cred.split_once(':') {
                Some((n, p)) => (decode(n)?, Some(decode(p)?)),
                None => (decode(cred)?, None),
            },
            None => (String::new(), None),
        };
        let (host, port) = super::url::host_port(parts.host_port)
            .ok_or_else(|| TargetError::HostPort(parts.host_port.to_string()))?;
        let name = if name.is_empty() {
            format!("imbench-{USER_SLOT}")
        } else {
            name
        };
        if name.matches(USER_SLOT).count() != 1 {
            return Err(invalid(format!(
                "account name {name:?}: each client logs in as an account of its own, so the name needs {USER_SLOT} once where its number goes (e.g. load-{USER_SLOT}; write it %7Buser%7D in a shell that minds braces)"
            )));
        }
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        if !name_ok(&name.replace(USER_SLOT, "0")) {
            return Err(invalid(format!(
                "account name {name:?}: ASCII letters, digits, '-', '_' and '.' besides {USER_SLOT}"
            )));
        }
        let domain = if !parts.path.is_empty() {
            parts.path.to_string()
        } else if host.parse::<std::net::IpAddr>().is_ok() {
            "localhost".to_string()
        } else {
            host.to_string()
        };
        let domain_ok = |d: &str| {
            !d.is_empty()
                && d.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
        };
        if !domain_ok(&domain) {
            return Err(invalid(format!(
                "XMPP domain {domain:?}: a host name such as example.org"
            )));
        }
        if password.as_deref() == Some("") {
            return Err(invalid(
                "an empty password: give one after the colon, or leave the colon out for the default".into(),
            ));
        }
        let mut target = Self {
            host: host.to_string(),
            port,
            muc: format!("conference.{domain}"),
            domain,
            name,
            password: password.unwrap_or_else(|| "imbench".to_string()),
            register: true,
            tls: None,
        };
        let pairs = super::url::query_pairs(parts.query)
            .map_err(|key| invalid(format!("{key} is given twice in the XMPP target")))?;
        let (mut starttls, mut ca) = (false, None);
        for (key, value) in pairs {
            match (key, value) {
                ("muc", service) if domain_ok(service) => target.muc = service.to_string(),
                ("muc", service) => {
                    return Err(invalid(format!(
                        "muc={service:?}: muc takes the domain of the server's multi-user chat service (conference.example.org)"
                    )))
                }
                ("register", "yes") => target.register = true,
                ("register", "no") => target.register = false,
                ("register", other) => {
                    return Err(invalid(format!(
                        "register={other:?}: register takes yes or no"
                    )))
                }
                ("tls", "starttls") => starttls = true,
                ("tls", "no") => starttls = false,
                ("tls", other) => {
                    return Err(invalid(format!(
                        "tls={other:?}: tls takes starttls or no (the default)"
                    )))
                }
                ("ca", file) => ca = Some(file),
                _ => {
                    let written = super::url::option_as_written(key, value);
                    return Err(invalid(format!(
                        "unknown option {written:?} in the XMPP target: muc=SERVICE (where rooms are), register=yes|no, tls=starttls|no, ca=FILE"
                    )))
                }
            }
        }
        target.tls = super::tls::from_options(starttls, ca, "add tls=starttls to the XMPP target")
            .map_err(invalid)?;
        Ok(target)
    }

    /// `xmpp 127.0.0.1:5222 (localhost, rooms on conference.localhost)`, without the password.
    pub fn describe(&self) -> String {
        let tls = match &self.tls {
            Some(tls) => format!(", STARTTLS: {}", tls.describe()),
            None => String::new(),
        };
        format!(
            "xmpp {} ({}, rooms on {}{tls})",
            super::url::show_host_port(&self.host, self.port),
            self.domain,
            self.muc
        )
    }

    /// The account name of `user`.
    pub fn account(&self, user: u64) -> String {
        self.name
            .replace(USER_SLOT, itoa::Buffer::new().format(user))
    }

    fn user_jid(&self, user: u64) -> String {
        format!("{}@{}", self.account(user), self.domain)
    }

    fn room_jid(&self, group: u64) -> String {
        format!("g-{group}@{}", self.muc)
    }

    /// The group a room's JID (`g-7@muc/nick` or bare) names, when it is one of this run's.
    fn group_of(&self, jid: &str) -> Option<u64> {
        let bare = jid.split_once('/').map_or(jid, |(b, _)| b);
        let (local, service) = bare.split_once('@')?;
        if service != self.muc {
            return None;
        }
        local.strip_prefix("g-")?.parse().ok()
    }
}

/// Logs clients in to one XMPP server.
pub struct XmppDriver {
    target: Arc<XmppTarget>,
}

/// The stream of a client while it logs in.
struct LoginStream {
    read: ReadHalf,
    write: WriteHalf,
    inbuf: BytesMut,
    in_stream: bool,
    place: String,
    /// The XMPP domain the stream asks for.
    domain: String,
}

impl LoginStream {
    async fn send(&mut self, text: &str) -> Result<(), ConnectError> {
        self.write
            .write_all(text.as_bytes())
            .await
            .map_err(|e| ConnectError::Failed(format!("writing to {}: {e}", self.place)))
    }

    /// The next item of the server's stream.
    async fn next(&mut self) -> Result<Incoming, ConnectError> {
        match next_item(&mut self.read, &mut self.inbuf, &mut self.in_stream).await {
            Ok(Some(item)) => Ok(item),
            Ok(None) if !self.in_stream => Err(ConnectError::Misconfigured(format!(
                "{} closed the connection without opening an XMPP stream: is this an XMPP client port?",
                self.place
            ))),
            Ok(None) => Err(ConnectError::Failed(format!(
                "{} closed the connection while the client logged in",
                self.place
            ))),
            Err(SessionError::Protocol(e)) => Err(ConnectError::Misconfigured(format!(
                "{} does not speak XMPP ({e}): is this an XMPP client port?",
                self.place
            ))),
            // A server of another protocol (an MQTT broker, say) resets a connection whose
            // first bytes make no sense to it: before any stream, that is the wrong port.
            Err(SessionError::Transport(imbench_transport::TransportError::Io(e)))
                if !self.in_stream
                    && matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                    ) =>
            {
                Err(ConnectError::Misconfigured(format!(
                    "{} reset the connection without opening an XMPP stream ({e}): is this an XMPP client port?",
                    self.place
                )))
            }
            Err(e) => Err(ConnectError::Failed(format!(
                "reading from {}: {e}",
                self.place
            ))),
        }
    }

    /// The next element, past a stream header; a stream error or end fails the login.
    async fn element(&mut self) -> Result<Element, ConnectError> {
        loop {
            match self.next().await? {
                Incoming::StreamOpen => {}
                Incoming::StreamEnd => {
                    return Err(ConnectError::Failed(format!(
                        "{} ended the stream while the client logged in",
                        self.place
                    )))
                }
                Incoming::Element(e) if e.name == "error" => {
                    let condition = wire::condition(&e).unwrap_or("unknown");
                    // A server that demands encryption it cannot offer says no more than this.
                    let hint = if condition == "undefined-condition"
                        || condition == "policy-violation"
                    {
                        " (does the server require encryption? Add tls=starttls to the target, or allow plain connections on this listener, Prosody: c2s_require_encryption = false)"
                    } else {
                        ""
                    };
                    if condition == "host-unknown" {
                        // The server answered, for domains other than the one asked: the
                        // target's path names a domain it does not host.
                        return Err(ConnectError::Misconfigured(format!(
                            "{} does not host the XMPP domain {:?} (host-unknown): the path of xmpp://HOST:PORT/DOMAIN is the domain, and without one it is HOST (localhost when HOST is an IP address); give a domain the server hosts (Prosody: a VirtualHost)",
                            self.place, self.domain
                        )));
                    }
                    return Err(ConnectError::Failed(format!(
                        "{} ended the stream with an error: {condition}{hint}",
                        self.place
                    )));
                }
                Incoming::Element(e) => return Ok(e),
            }
        }
    }

    /// Opens the stream and reads the server's features.
    async fn open(&mut self, domain: &str) -> Result<Element, ConnectError> {
        let mut out = String::new();
        wire::stream_open(&mut out, domain);
        self.send(&out).await?;
        let first = tokio::time::timeout(HEADER_WAIT, self.element())
            .await
            .map_err(|_| {
                ConnectError::Failed(format!(
                    "{} did not open an XMPP stream within {HEADER_WAIT:?}: an XMPP server opens it at once unless it is overloaded; is this an XMPP client port?",
                    self.place
                ))
            })??;
        if first.name != "features" {
            return Err(ConnectError::Misconfigured(format!(
                "{} began its stream with <{}>, not its features",
                self.place, first.name
            )));
        }
        Ok(first)
    }

    /// STARTTLS: TLS on this connection, the certificate checked against `domain`, and a new
    /// stream over it; its features.
    async fn starttls(
        self,
        client: &TlsClient,
        features: &Element,
        domain: &str,
    ) -> Result<(Self, Element), ConnectError> {
        let mut login = self;
        if !features
            .children
            .iter()
            .any(|c| c.name == "starttls" && c.is_in(wire::TLS))
        {
            return Err(ConnectError::Misconfigured(format!(
                "the XMPP server at {} does not offer STARTTLS (Prosody: mod_tls and a certificate for {domain}); leave tls=starttls out of the target for a plain connection",
                login.place
            )));
        }
        let mut out = String::new();
        wire::starttls(&mut out);
        login.send(&out).await?;
        let answer = login.element().await?;
        if answer.name != "proceed" || !answer.is_in(wire::TLS) {
            return Err(ConnectError::Failed(format!(
                "the XMPP server at {} answered STARTTLS with <{}>",
                login.place, answer.name
            )));
        }
        // Whitespace between elements is allowed and means nothing; anything else would be
        // plain text the TLS layer never sees.
        if !login.inbuf.iter().all(u8::is_ascii_whitespace) {
            return Err(ConnectError::Failed(format!(
                "the XMPP server at {} sent more after <proceed/> before TLS began",
                login.place
            )));
        }
        let LoginStream {
            read,
            write,
            mut inbuf,
            place,
            domain: asked,
            ..
        } = login;
        inbuf.clear();
        let tcp = tls::reunite_plain(read, write).ok_or_else(|| {
            ConnectError::Failed("STARTTLS on a connection that is not plain TCP".into())
        })?;
        let secured = client
            .handshake(tcp, domain, "tls=no")
            .await
            .map_err(|e| ConnectError::Misconfigured(format!("{place}: {e}")))?;
        let (read, write) = tls::split_tls(secured);
        let mut login = LoginStream {
            read,
            write,
            inbuf,
            in_stream: false,
            place,
            domain: asked,
        };
        let features = login.open(domain).await?;
        Ok((login, features))
    }

    /// `<iq>`'s answer to the request `id`, skipping anything else.
    async fn iq_answer(&mut self, id: &str) -> Result<Element, ConnectError> {
        loop {
            let e = self.element().await?;
            if e.name == "iq" && e.attr("id") == Some(id) {
                return Ok(e);
            }
        }
    }
}

impl XmppDriver {
    /// Clients of `target`.
    pub fn new(target: XmppTarget) -> Self {
        Self {
            target: Arc::new(target),
        }
    }

    /// What the clients connect to.
    pub fn describe(&self) -> String {
        self.target.describe()
    }

    /// Where the clients connect, as `HOST:PORT`.
    pub fn address(&self) -> String {
        crate::driver::url::show_host_port(&self.target.host, self.target.port)
    }

    /// Logs `user` in: stream, SASL (registering first if need be), bind, stream management,
    /// presence; `Ok` once the server has handled the presence.
    pub async fn connect(&self, user: u64) -> Result<Session, ConnectError> {
        let target = &self.target;
        let place = super::url::show_host_port(&target.host, target.port);
        let stream = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| {
                ConnectError::Failed(super::tcp_connect_failed("an XMPP server", &place, &e))
            })?;
        let _ = stream.set_nodelay(true);
        let (read, write) = tls::split_plain(stream);
        let mut login = LoginStream {
            read,
            write,
            inbuf: BytesMut::with_capacity(8 * 1024),
            in_stream: false,
            place: place.clone(),
            domain: target.domain.clone(),
        };
        let account = target.account(user);
        let mut features = login.open(&target.domain).await?;
        if let Some(client) = &target.tls {
            (login, features) = login.starttls(client, &features, &target.domain).await?;
        }
        self.authenticate(&mut login, &features, &account).await?;

        // A new stream after SASL, as RFC 6120 asks.
        login.in_stream = false;
        let features = login.open(&target.domain).await?;
        if !features
            .children
            .iter()
            .any(|c| c.name == "sm" && c.is_in(wire::SM))
        {
            return Err(ConnectError::Misconfigured(format!(
                "the XMPP server at {place} offers no stream management (XEP-0198), which is how the driver learns that a message was handled: enable it (Prosody: mod_smacks; ejabberd: mod_stream_mgmt)"
            )));
        }
        let mut out = String::new();
        wire::bind(&mut out, "bind", RESOURCE);
        login.send(&out).await?;
        let bound = login.iq_answer("bind").await?;
        if bound.attr("type") != Some("result") {
            return Err(ConnectError::Failed(format!(
                "the server refused to bind a resource for {account}: {}",
                wire::error_condition(&bound).unwrap_or("no reason given")
            )));
        }
        out.clear();
        wire::enable_sm(&mut out);
        wire::presence(&mut out);
        wire::ack_request(&mut out);
        login.send(&out).await?;
        loop {
            let e = login.element().await?;
            match e.name.as_str() {
                "enabled" => break,
                "failed" => {
                    return Err(ConnectError::Failed(format!(
                        "the server refused stream management for {account}"
                    )))
                }
                _ => {}
            }
        }
        // Everything after <enabled/> counts for stream management: the events side takes it
        // in order, the <a/> that says the presence was handled among it.
        let mut early = VecDeque::new();
        loop {
            let e = login.element().await?;
            let online =
                e.name == "a" && e.attr("h").and_then(|h| h.parse::<u32>().ok()) >= Some(1);
            early.push_back(e);
            if online {
                break;
            }
        }
        let LoginStream {
            read, write, inbuf, ..
        } = login;
        // The presence was stanza 1.
        let writer = Arc::new(tokio::sync::Mutex::new(StanzaWriter { write, stanzas: 1 }));
        let (answers_tx, answers_rx) = unbounded_channel();
        let closing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        Ok(Session {
            sender: Sender::Xmpp(XmppSender {
                target: target.clone(),
                user,
                writer: writer.clone(),
                out: String::with_capacity(4096),
                stanzas: 0,
                batch: Vec::new(),
                answers: answers_tx,
                closing: closing.clone(),
            }),
            events: Events::Xmpp(Box::new(XmppEvents {
                target: target.clone(),
                user,
                nick: user.to_string(),
                read,
                inbuf,
                writer,
                answers: answers_rx,
                acks: Acks::after(1),
                handled: 0,
                early,
                join_retries: Default::default(),
                ready: VecDeque::new(),
                closing,
            })),
            side_streams: None,
            login: super::Login::Full,
            migrator: None,
        })
    }

    /// SASL PLAIN as `account`, registering it first when the server does not know it.
    async fn authenticate(
        &self,
        login: &mut LoginStream,
        features: &Element,
        account: &str,
    ) -> Result<(), ConnectError> {
        let target = &self.target;
        let place = login.place.clone();
        let plain = features.child("mechanisms").is_some_and(|m| {
            m.children
                .iter()
                .any(|c| c.name == "mechanism" && c.text == "PLAIN")
        });
        if !plain {
            let fix = if target.tls.is_some() {
                "allow PLAIN over TLS on this listener"
            } else if features.child("starttls").is_some() {
                "it offers STARTTLS: add tls=starttls to the target (and ca=FILE when its certificate is not signed by a root this machine trusts), or allow PLAIN on plain connections (Prosody: c2s_require_encryption = false, allow_unencrypted_plain_auth = true)"
            } else {
                "allow it on this listener (Prosody: c2s_require_encryption = false, allow_unencrypted_plain_auth = true)"
            };
            let over = if target.tls.is_some() {
                "over TLS"
            } else {
                "on a plain connection"
            };
            return Err(ConnectError::Misconfigured(format!(
                "the XMPP server at {place} does not offer SASL PLAIN {over}: {fix}"
            )));
        }
        let can_register = features.child("register").is_some();
        let mut registered = false;
        loop {
            let mut out = String::new();
            wire::auth_plain(&mut out, account, &target.password);
            login.send(&out).await?;
            let answer = login.element().await?;
            match answer.name.as_str() {
                "success" => return Ok(()),
                "failure" => {
                    let condition = wire::condition(&answer).unwrap_or("unknown").to_string();
                    if condition != "not-authorized" || registered || !target.register {
                        let hint = if target.register || condition != "not-authorized" {
                            ""
                        } else {
                            " (with register=no: the account does not exist, or its password is not the target's)"
                        };
                        return Err(ConnectError::Refused(format!(
                            "the XMPP server at {place} refused {account}@{}: {condition}{hint}",
                            target.domain
                        )));
                    }
                    if !can_register {
                        return Err(ConnectError::Refused(format!(
                            "the XMPP server at {place} refused {account}@{} (not-authorized) and offers no in-band registration: create the accounts (prosodyctl register, ejabberdctl register) or allow registration",
                            target.domain
                        )));
                    }
                    self.register(login, account).await?;
                    registered = true;
                }
                other => {
                    return Err(ConnectError::Failed(format!(
                        "the XMPP server at {place} answered SASL with <{other}>"
                    )))
                }
            }
        }
    }

    /// Registers `account` in band (XEP-0077).
    async fn register(&self, login: &mut LoginStream, account: &str) -> Result<(), ConnectError> {
        let target = &self.target;
        let mut out = String::new();
        wire::register(&mut out, "register", account, &target.password);
        login.send(&out).await?;
        let answer = login.iq_answer("register").await?;
        if answer.attr("type") == Some("result") {
            return Ok(());
        }
        let condition = wire::error_condition(&answer).unwrap_or("no reason given");
        let why = if condition == "conflict" {
            "the account exists with another password (the target's password is the one every account has)".to_string()
        } else {
            format!("{condition} (registration may be closed or throttled: Prosody's allow_registration, min_seconds_between_registrations)")
        };
        Err(ConnectError::Refused(format!(
            "the XMPP server at {} refused to register {account}@{}: {why}",
            super::url::show_host_port(&target.host, target.port),
            target.domain
        )))
    }
}

/// Reads until one whole item of the stream is in `inbuf`; `None` at the end of the
/// connection.
async fn next_item<R: tokio::io::AsyncRead + Unpin>(
    read: &mut R,
    inbuf: &mut BytesMut,
    in_stream: &mut bool,
) -> Result<Option<Incoming>, SessionError> {
    loop {
        let item = wire::next_element(inbuf, *in_stream, MAX_ELEMENT)
            .map_err(|e| SessionError::Protocol(e.to_string()))?;
        if let Some(item) = item {
            if item == Incoming::StreamOpen {
                *in_stream = true;
            }
            return Ok(Some(item));
        }
        if inbuf.capacity() - inbuf.len() < 4096 {
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

/// XMPP stanza error conditions (RFC 6120, 8.3.3) and the imbench code each counts as, for the
/// report's counts; read the other way, the conditions a code stands for, for its words.
const CONDITIONS: [(&str, ErrorCode); 13] = [
    ("service-unavailable", ErrorCode::RECIPIENT_OFFLINE),
    ("recipient-unavailable", ErrorCode::RECIPIENT_OFFLINE),
    // A room that is locked, or gone.
    ("item-not-found", ErrorCode::NOT_A_MEMBER),
    ("not-acceptable", ErrorCode::NOT_A_MEMBER),
    ("forbidden", ErrorCode::NOT_A_MEMBER),
    ("registration-required", ErrorCode::NOT_A_MEMBER),
    ("not-allowed", ErrorCode::NOT_A_MEMBER),
    // A room service (or a domain) the server does not know.
    ("remote-server-not-found", ErrorCode::UNSUPPORTED_DEST),
    ("remote-server-timeout", ErrorCode::UNSUPPORTED_DEST),
    ("host-unknown", ErrorCode::UNSUPPORTED_DEST),
    ("resource-constraint", ErrorCode::TOO_MANY_REQUESTS),
    ("policy-violation", ErrorCode::TOO_MANY_REQUESTS),
    ("not-authorized", ErrorCode::BAD_TOKEN),
];

/// The imbench code nearest to an XMPP stanza error's condition, for the report's counts.
fn error_code(condition: &str) -> ErrorCode {
    CONDITIONS
        .iter()
        .find(|(name, _)| *name == condition)
        .map_or(ErrorCode::BAD_FRAME, |(_, code)| *code)
}

/// A refusal counted as `code`, in XMPP's words: the stanza error conditions it stands for.
pub(crate) fn refusal_in_words(code: ErrorCode) -> String {
    let names: Vec<&str> = CONDITIONS
        .iter()
        .filter(|(_, c)| *c == code)
        .map(|(name, _)| *name)
        .collect();
    if names.is_empty() {
        "an error stanza of a condition the driver does not name".to_string()
    } else {
        format!("an error stanza ({})", names.join(" or "))
    }
}

/// The client's half of the connection, and how many stanzas went out on it since stream
/// management began: both sides write stanzas (the sending side its operations, the events
/// side answers to the server's `<iq>`s and room set-up), and the server's `<a h='N'/>` counts
/// them in the order they were written, so they are numbered here, as they are written.
struct StanzaWriter {
    write: WriteHalf,
    stanzas: u64,
}

impl StanzaWriter {
    /// Writes `text`, which holds `stanzas` stanzas; the number of the first of them.
    async fn write(&mut self, text: &str, stanzas: u64) -> Result<u64, SessionError> {
        let first = self.stanzas + 1;
        self.write.write_all(text.as_bytes()).await.map_err(io)?;
        self.stanzas += stanzas;
        Ok(first)
    }
}

/// A session's operations, written as stanzas.
pub struct XmppSender {
    target: Arc<XmppTarget>,
    user: u64,
    writer: Arc<tokio::sync::Mutex<StanzaWriter>>,
    out: String,
    /// Stanzas in `out`.
    stanzas: u64,
    /// Messages of the batch being written: (their place among its stanzas, from 0; message id).
    batch: Vec<(u64, u64)>,
    /// To the events side: (stanza number, message id), in the order written.
    answers: UnboundedSender<Vec<(u64, u64)>>,
    /// Set when this side ends the session: the connection's end is then expected.
    closing: Arc<std::sync::atomic::AtomicBool>,
}

impl XmppSender {
    /// Encodes `op` into the pending batch.
    pub fn queue(&mut self, op: Op) -> Result<(), SessionError> {
        if self.closing.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(SessionError::Closed);
        }
        match op {
            Op::Send { msg_id, to, body } => {
                let payload = envelope::wrap(self.user, msg_id, &body);
                let text = base64::engine::general_purpose::STANDARD.encode(payload);
                let (jid, kind) = match to {
                    Dest::User(u) => (self.target.user_jid(u), "chat"),
                    Dest::Group(g) => (self.target.room_jid(g), "groupchat"),
                };
                wire::message(&mut self.out, &jid, kind, msg_id, &text);
                self.batch.push((self.stanzas, msg_id));
                self.stanzas += 1;
            }
            Op::Join { group } => {
                let nick = self.nick();
                wire::muc_join(&mut self.out, &self.target.room_jid(group), &nick);
                self.stanzas += 1;
            }
            Op::Leave { group } => {
                let nick = self.nick();
                wire::muc_leave(&mut self.out, &self.target.room_jid(group), &nick);
                self.stanzas += 1;
            }
            // Stream management's own answers say what arrived.
            Op::Receipt { .. } => {}
            Op::FileOffer { .. } | Op::FileChunk { .. } => {
                return Err(SessionError::Unsupported(
                    "the XMPP driver carries no files",
                ))
            }
        }
        Ok(())
    }

    fn nick(&self) -> String {
        self.user.to_string()
    }

    /// Writes the batch and the `<r/>` whose answer acks it.
    pub async fn flush(&mut self) -> Result<(), SessionError> {
        if self.out.is_empty() {
            return Ok(());
        }
        if !self.batch.is_empty() {
            wire::ack_request(&mut self.out);
        }
        let mut w = self.writer.lock().await;
        if !self.batch.is_empty() {
            // Numbered as they go out, and handed over before, so the answer is waiting when
            // the <a/> arrives.
            let first = w.stanzas + 1;
            let numbered = self
                .batch
                .drain(..)
                .map(|(k, id)| (first + k, id))
                .collect();
            let _ = self.answers.send(numbered);
        }
        let result = w.write(&self.out, self.stanzas).await;
        self.out.clear();
        self.stanzas = 0;
        result.map(|_| ())
    }

    /// Ends the stream in order; the server ends its own, which ends the events.
    pub async fn close(&mut self, _reason: &str) {
        let _ = self.flush().await;
        self.closing
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let mut end = String::new();
        wire::stream_close(&mut end);
        let mut w = self.writer.lock().await;
        let _ = w.write(&end, 0).await;
    }

    /// Stops at once; the connection closes when both halves are gone.
    pub fn abort(&mut self, _reason: &str) {
        self.closing
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.out.clear();
        if let Ok(mut w) = self.writer.try_lock() {
            let _ = super::tls::shutdown_now(&mut w.write);
        }
    }
}

/// Which messages the server's `<a h='N'/>` acks: those among its first N stanzas, less those
/// it bounced.
#[derive(Debug, Default)]
struct Acks {
    /// Messages written and not yet acked: (stanza number, message id), in order.
    waiting: VecDeque<(u64, u64)>,
    /// The stanzas the server has said it handled.
    acked_to: u64,
    /// Messages the server bounced before an `<a/>` covered them.
    bounced: HashSet<u64>,
}

impl Acks {
    /// Bookkeeping for a stream whose first `handled` stanzas are already handled.
    fn after(handled: u64) -> Self {
        Self {
            acked_to: handled,
            ..Self::default()
        }
    }

    /// Messages the sending side wrote, in order.
    fn written(&mut self, batch: Vec<(u64, u64)>) {
        self.waiting.extend(batch);
    }

    /// The server bounced `msg_id`: it is rejected, not acked, when it was waiting for its
    /// ack (true); false when it was acked before, or never written.
    fn bounced(&mut self, msg_id: u64) -> bool {
        let waiting = self.waiting.iter().any(|&(_, id)| id == msg_id);
        if waiting {
            self.bounced.insert(msg_id);
        }
        waiting
    }

    /// The messages acked by the server's `<a h='h'/>`.
    fn handled(&mut self, h: u32) -> impl Iterator<Item = u64> + '_ {
        // h counts modulo 2^32: the count is the nearest at or above the last one with these
        // low bits (fewer than 2^32 stanzas are ever unacked).
        self.acked_to += u64::from(h.wrapping_sub(self.acked_to as u32));
        let through = self.acked_to;
        let count = self.waiting.partition_point(|&(n, _)| n <= through);
        let bounced = &mut self.bounced;
        self.waiting
            .drain(..count)
            .filter_map(move |(_, id)| (!bounced.remove(&id)).then_some(id))
    }
}

/// What the server sends a session, as events.
pub struct XmppEvents {
    target: Arc<XmppTarget>,
    user: u64,
    nick: String,
    read: ReadHalf,
    inbuf: BytesMut,
    /// For answers to the server's `<r/>` and `<iq>`s, and rooms' set-up.
    writer: Arc<tokio::sync::Mutex<StanzaWriter>>,
    answers: UnboundedReceiver<Vec<(u64, u64)>>,
    /// Messages written and not yet acked.
    acks: Acks,
    /// The server's stanzas handed to the client (modulo 2^32 on the wire).
    handled: u32,
    /// What arrived while the client logged in, after stream management began.
    early: VecDeque<Element>,
    /// Joins asked again because the room was still locked, by group.
    join_retries: std::collections::HashMap<u64, u32>,
    /// Events of one element not yet handed out.
    ready: VecDeque<Event>,
    /// Set by the sending side when it ends the session.
    closing: Arc<std::sync::atomic::AtomicBool>,
}

impl XmppEvents {
    /// The next event; `None` when the connection ended.
    pub async fn next(&mut self) -> Result<Option<Event>, SessionError> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Ok(Some(e));
            }
            let element = match self.early.pop_front() {
                Some(e) => e,
                None => {
                    let mut in_stream = true;
                    match next_item(&mut self.read, &mut self.inbuf, &mut in_stream).await? {
                        Some(Incoming::Element(e)) => e,
                        Some(Incoming::StreamOpen) => continue,
                        item @ (Some(Incoming::StreamEnd) | None) => {
                            if self.closing.load(std::sync::atomic::Ordering::Relaxed) {
                                return Ok(None);
                            }
                            self.closing
                                .store(true, std::sync::atomic::Ordering::Relaxed);
                            // `</stream:stream>` is the server's word; a connection that just
                            // ended (a server killed) had none.
                            let reason = if item.is_some() {
                                "the XMPP server ended the stream"
                            } else {
                                "the XMPP server closed the connection without ending the stream"
                            };
                            return Ok(Some(Event::Failed {
                                code: ErrorCode::SHUTTING_DOWN,
                                reason: reason.into(),
                            }));
                        }
                    }
                }
            };
            if let Some(event) = self.on_element(element).await? {
                return Ok(Some(event));
            }
        }
    }

    /// Writes `text`, which holds `stanzas` stanzas.
    async fn write(&self, text: &str, stanzas: u64) -> Result<(), SessionError> {
        let mut w = self.writer.lock().await;
        w.write(text, stanzas).await.map(|_| ())
    }

    /// What one element of the stream means for the client.
    async fn on_element(&mut self, e: Element) -> Result<Option<Event>, SessionError> {
        let stanza = matches!(e.name.as_str(), "message" | "presence" | "iq");
        if stanza {
            self.handled = self.handled.wrapping_add(1);
        }
        match e.name.as_str() {
            "message" => Ok(self.on_message(&e)),
            "presence" => self.on_presence(&e).await,
            "iq" => {
                if matches!(e.attr("type"), Some("get" | "set")) {
                    let mut out = String::new();
                    wire::iq_answer(&mut out, &e);
                    self.write(&out, 1).await?;
                }
                Ok(None)
            }
            "r" => {
                let mut out = String::new();
                wire::ack_answer(&mut out, self.handled);
                self.write(&out, 0).await?;
                Ok(None)
            }
            "a" => {
                let h = e
                    .attr("h")
                    .and_then(|h| h.parse::<u32>().ok())
                    .ok_or_else(|| SessionError::Protocol("an <a/> without a count".into()))?;
                self.on_acked(h);
                Ok(None)
            }
            "error" => {
                let condition = wire::condition(&e).unwrap_or("unknown");
                self.closing
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                Ok(Some(Event::Failed {
                    code: if condition == "conflict" {
                        ErrorCode::REPLACED
                    } else {
                        ErrorCode::SHUTTING_DOWN
                    },
                    reason: format!("XMPP stream error: {condition}"),
                }))
            }
            _ => Ok(None),
        }
    }

    /// The server has handled its first `h` stanzas of the stream (modulo 2^32).
    fn on_acked(&mut self, h: u32) {
        self.take_written();
        let acked = self.acks.handled(h);
        self.ready
            .extend(acked.map(|msg_id| Event::Acked { msg_id }));
    }

    /// Takes in what the sending side has written since.
    fn take_written(&mut self) {
        while let Ok(batch) = self.answers.try_recv() {
            self.acks.written(batch);
        }
    }

    fn on_message(&mut self, e: &Element) -> Option<Event> {
        let from = e.attr("from").unwrap_or("");
        if e.attr("type") == Some("error") {
            let msg_id = e.attr("id")?.parse().ok()?;
            self.take_written();
            if !self.acks.bounced(msg_id) {
                // Acked before: the recipient's session ended with the message unconfirmed
                // (cut off, say), and the server gave up on it. Whether it arrived is the
                // recipient's count: the sender does not take it back.
                return Some(Event::Bounced {
                    what: format!(
                        "XMPP bounce ({}) of message {msg_id}, which the server had acked",
                        wire::error_condition(e).unwrap_or("no condition given")
                    ),
                });
            }
            return Some(Event::Rejected {
                msg_id,
                code: error_code(wire::error_condition(e).unwrap_or("")),
            });
        }
        // A room's subject, chat states, receipts: nothing of the run's.
        let body = e.child("body")?;
        let to = if e.attr("type") == Some("groupchat") {
            Dest::Group(self.target.group_of(from)?)
        } else {
            Dest::User(self.user)
        };
        let Some((sender, msg_id, body)) = base64::engine::general_purpose::STANDARD
            .decode(body.text.trim())
            .ok()
            .and_then(|bytes| envelope::open(bytes.into()))
        else {
            return Some(Event::Unexpected {
                what: "an XMPP message without imbench's envelope".into(),
            });
        };
        if sender == self.user && matches!(to, Dest::Group(_)) {
            // The room's copy of the client's own message.
            return None;
        }
        Some(Event::Delivered {
            msg_id,
            from: sender,
            to,
            body,
        })
    }

    async fn on_presence(&mut self, e: &Element) -> Result<Option<Event>, SessionError> {
        let Some(from) = e.attr("from") else {
            return Ok(None);
        };
        let Some(group) = self.target.group_of(from) else {
            return Ok(None);
        };
        if e.attr("type") == Some("error") {
            let condition = wire::error_condition(e).unwrap_or("");
            // A room another member has just made stays locked until its maker has configured
            // it, which the maker's client does at once (below): ask again a little later.
            let tries = self.join_retries.entry(group).or_insert(0);
            if condition == "item-not-found" && *tries < MAX_JOIN_RETRIES {
                *tries += 1;
                let mut out = String::new();
                wire::muc_join(&mut out, &self.target.room_jid(group), &self.nick);
                let writer = self.writer.clone();
                let wait = JOIN_RETRY_WAIT * *tries;
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    let _ = writer.lock().await.write(&out, 1).await;
                });
                return Ok(None);
            }
            self.join_retries.remove(&group);
            // The room's address names the service (muc=…), which is what a person changes.
            let hint = match condition {
                "remote-server-not-found" | "service-unavailable" | "item-not-found" => format!(
                    ": is {} a multi-user chat service of this server (muc=…)?",
                    self.target.muc
                ),
                _ => String::new(),
            };
            return Ok(Some(Event::GroupRefused {
                group,
                code: error_code(condition),
                said: Some(format!(
                    "joining room {} refused: {condition}{hint}",
                    self.target.room_jid(group)
                )),
            }));
        }
        let Some((_, nick)) = from.split_once('/') else {
            return Ok(None);
        };
        let statuses: Vec<&str> = e
            .children
            .iter()
            .filter(|x| x.name == "x")
            .flat_map(|x| x.children.iter())
            .filter(|s| s.name == "status")
            .filter_map(|s| s.attr("code"))
            .collect();
        if nick != self.nick || !statuses.contains(&"110") {
            // Other occupants coming and going.
            return Ok(None);
        }
        if e.attr("type") == Some("unavailable") {
            return Ok(Some(Event::Left { group }));
        }
        self.join_retries.remove(&group);
        if statuses.contains(&"201") {
            // This client made the room: accept the default configuration (an "instant room",
            // XEP-0045 10.1.2), which unlocks it for the other members.
            let mut out = String::new();
            wire::muc_instant_room(&mut out, &self.target.room_jid(group));
            self.write(&out, 1).await?;
        }
        Ok(Some(Event::Joined { group }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stanza_error_counts_as_a_code_and_is_named_back_by_its_conditions() {
        assert_eq!(
            error_code("service-unavailable"),
            ErrorCode::RECIPIENT_OFFLINE
        );
        assert_eq!(error_code("no-such-condition"), ErrorCode::BAD_FRAME);
        let words = refusal_in_words(ErrorCode::RECIPIENT_OFFLINE);
        assert_eq!(
            words,
            "an error stanza (service-unavailable or recipient-unavailable)"
        );
        assert!(!words.contains("recipient_offline"), "{words}");
        assert!(refusal_in_words(ErrorCode::BUSY).contains("does not name"));
    }

    #[test]
    fn targets_are_read_with_their_accounts_domain_and_rooms() {
        let t = XmppTarget::parse("xmpp://127.0.0.1:5222").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 5222));
        assert_eq!(t.domain, "localhost");
        assert_eq!(t.muc, "conference.localhost");
        assert_eq!(t.account(7), "imbench-7");
        assert_eq!(t.user_jid(7), "imbench-7@localhost");
        assert_eq!(t.room_jid(3), "g-3@conference.localhost");
        assert_eq!(t.password, "imbench");
        assert!(t.register);
        let t = XmppTarget::parse(
            "xmpp://load-%7Buser%7D.x:p%40ss@chat.example.org:5223?muc=rooms.example.org&register=no",
        )
        .unwrap();
        assert_eq!(t.domain, "chat.example.org");
        assert_eq!(t.account(12), "load-12.x");
        assert_eq!(t.password, "p@ss");
        assert_eq!(t.muc, "rooms.example.org");
        assert!(!t.register);
        assert_eq!(
            t.describe(),
            "xmpp chat.example.org:5223 (chat.example.org, rooms on rooms.example.org)"
        );
        let t = XmppTarget::parse("xmpp://{user}@10.0.0.1:5222/im.example").unwrap();
        assert_eq!(
            (t.domain.as_str(), t.account(1).as_str()),
            ("im.example", "1")
        );
        assert_eq!(t.group_of("g-3@conference.im.example/9"), Some(3));
        assert_eq!(t.group_of("g-3@conference.other"), None);
        assert_eq!(t.group_of("imbench-3@im.example"), None);
    }

    #[test]
    fn a_target_that_is_not_right_says_what_is_wrong() {
        assert!(matches!(
            XmppTarget::parse("nats://127.0.0.1:1"),
            Err(TargetError::Scheme(_))
        ));
        for bad in ["xmpp://h", "xmpp://:5222", "xmpp://h:0", "xmpp://h:x"] {
            assert!(
                matches!(XmppTarget::parse(bad), Err(TargetError::HostPort(_))),
                "{bad}"
            );
        }
        let err = |url: &str| XmppTarget::parse(url).unwrap_err().to_string();
        assert!(err("xmpp://bob:pw@h:1").contains("{user}"));
        assert!(err("xmpp://{user}{user}@h:1").contains("{user}"));
        assert!(err("xmpp://a%20{user}@h:1").contains("letters"));
        assert!(err("xmpp://h:1/bad_domain").contains("domain"));
        assert!(err("xmpp://h:1?qos=1").contains("unknown option"));
        assert!(err("xmpp://h:1?muc=").contains("muc takes the domain"));
        assert!(err("xmpp://h:1?register=yes&register=no").contains("twice"));
        assert!(err("xmpp://a%2{user}@h:1").contains("%XX"));
        assert!(err("xmpp://h:1?register=maybe").contains("yes or no"));
        assert!(err("xmpp://{user}:@h:1").contains("empty password"));
        let t = XmppTarget::parse("xmpp://[::1]:5222").unwrap();
        assert_eq!((t.host.as_str(), t.domain.as_str()), ("::1", "localhost"));
    }

    #[test]
    fn an_ack_count_that_wraps_past_2_to_the_32_still_acks_in_order() {
        let base = u64::from(u32::MAX);
        let mut acks = Acks::after(base - 1);
        acks.written(vec![(base, 10), (base + 1, 11)]);
        acks.written(vec![(base + 2, 12), (base + 3, 13)]);
        assert!(acks.bounced(11));
        assert!(!acks.bounced(99), "never written");
        // 2^32 + 1 on the wire is 1: the first three, less the one bounced.
        assert_eq!(acks.handled(1).collect::<Vec<_>>(), [10, 12]);
        assert_eq!(acks.acked_to, base + 2);
        assert!(acks.bounced.is_empty());
        assert!(!acks.bounced(10), "acked before");
        // An <a/> that repeats the count acks nothing more.
        assert_eq!(acks.handled(1).count(), 0);
        assert_eq!(acks.handled(2).collect::<Vec<_>>(), [13]);
    }
}
