//! The MQTT driver: imbench's clients against an MQTT 3.1.1 broker, through the `rumqttc`
//! client.
//!
//! How the chat maps onto MQTT:
//!
//! - **connect**: CONNECT with client id `imbench-USER` (a user and password when the target
//!   has them), clean or persistent session as the target asks, then SUBSCRIBE to the user's
//!   topic `PREFIX/u/USER`; the client is online at the SUBACK.
//! - **direct**: PUBLISH to the recipient's topic.
//! - **group**: PUBLISH to `PREFIX/g/GROUP`; members are the clients subscribed to it. Join is
//!   SUBSCRIBE (in effect at its SUBACK), Leave is UNSUBSCRIBE (at its UNSUBACK). MQTT 3.1.1
//!   sends a group message back to its sender too (it has no "not to me" option); the driver
//!   drops that copy.
//! - **ack**: PUBACK at QoS 1, PUBCOMP at QoS 2. QoS 0 has no answer at all, and is refused.
//! - **offline**: with a persistent session (`?session=persistent`) the broker keeps QoS 1 and
//!   2 messages for a client that is away and sends them when it is back; with a clean one
//!   (the default) nothing is kept and what was sent to an absent client is lost.
//! - **received**: a delivery is acknowledged to the broker (PUBACK at QoS 1, PUBREC at QoS
//!   2) only once the events side has handed it to the client, not when the library reads
//!   it: rumqttc reads packets in batches and would acknowledge a whole batch at once, so a
//!   client cut off abruptly in the middle of one lost messages the broker counted delivered.
//!
//! As on NATS, the sender and message id travel in front of the body ([`super::envelope`]).
//!
//! `rumqttc` keeps the MQTT state (packet ids, the QoS 1 and 2 flows, keep-alive pings) in an
//! event loop that the events side polls; the sending side hands it requests in order, and
//! tells the events side, in the same order, which message or group each packet id will
//! answer for.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use imbench_proto::Dest;
use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event as MqttEvent, EventLoop};
use rumqttc::{MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::tls::TlsClient;
use super::{envelope, ConnectError, Event, Events, Op, Sender, Session, SessionError};

/// Largest packet either way: MQTT's own limit is 256 MiB, rumqttc's default 10 KiB.
const MAX_PACKET: usize = 1024 * 1024;

/// Requests a client may have queued for its event loop.
const REQUEST_CAPACITY: usize = 4096;

/// An MQTT broker to load, from `mqtt://[USER:PASS@]HOST:PORT[/PREFIX][?qos=1|2&session=clean|persistent]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttTarget {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User and password, when the broker asks for them.
    pub credentials: Option<(String, String)>,
    /// The first level of every topic the run uses.
    pub prefix: String,
    /// 1 (PUBACK) or 2 (PUBCOMP).
    pub qos: u8,
    /// Whether the broker keeps each client's session while it is away.
    pub persistent: bool,
    /// TLS, for an `mqtts://` target; the certificate is checked against the host.
    pub tls: Option<TlsClient>,
}

/// Why a target is not an MQTT address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// Not `mqtt://…` or `mqtts://…`.
    #[error("an MQTT target starts with mqtt:// (or mqtts:// for TLS), got {0:?}")]
    Scheme(String),
    /// No port, or not a number.
    #[error(
        "an MQTT target needs HOST:PORT (brokers listen on 1883, and on 8883 for mqtts://, unless told otherwise), got {0:?}"
    )]
    HostPort(String),
    /// A topic prefix MQTT would not take.
    #[error("topic prefix {0:?}: levels of letters, digits, '-' and '_' separated by '/'")]
    Prefix(String),
    /// An option that is not known, or a value it does not take.
    #[error("{0}")]
    Option(String),
}

impl MqttTarget {
    /// Reads a target; the prefix is `imbench`, QoS 1 and clean sessions unless given;
    /// `mqtts://` is TLS, with the machine's roots unless `ca=FILE` names others.
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        let (rest, tls) = super::url::strip_scheme(url, "mqtt://", "mqtts://")
            .ok_or_else(|| TargetError::Scheme(url.to_string()))?;
        let parts = super::url::split(rest);
        let decode = |s: &str| {
            super::url::percent_decode(s).ok_or_else(|| {
                TargetError::Option(
                    "the user, password or file name has a % that is not %XX: write @, : and / as %40, %3A and %2F".into(),
                )
            })
        };
        let credentials = match parts.userinfo {
            Some(cred) => Some(match cred.split_once(':') {
                Some((u, p)) => (decode(u)?, decode(p)?),
                None => (decode(cred)?, String::new()),
            }),
            None => None,
        };
        let (host, port) = super::url::host_port(parts.host_port)
            .ok_or_else(|| TargetError::HostPort(parts.host_port.to_string()))?;
        let prefix = if parts.path.is_empty() {
            "imbench"
        } else {
            parts.path
        };
        let prefix_ok = prefix.split('/').all(|level| {
            !level.is_empty()
                && level
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
        if !prefix_ok {
            return Err(TargetError::Prefix(prefix.to_string()));
        }
        let mut target = Self {
            host: host.to_string(),
            port,
            credentials,
            prefix: prefix.to_string(),
            qos: 1,
            persistent: false,
            tls: None,
        };
        let pairs = super::url::query_pairs(parts.query).map_err(|key| {
            TargetError::Option(format!("{key} is given twice in the MQTT target"))
        })?;
        let mut ca = None;
        for (key, value) in pairs {
            match (key, value) {
                ("qos", "1") => target.qos = 1,
                ("qos", "2") => target.qos = 2,
                ("qos", "0") => {
                    return Err(TargetError::Option(
                        "qos=0 has no acknowledgement from the broker, so neither `ack` nor exactly-once accounting can be measured; use qos=1 or qos=2".into(),
                    ))
                }
                ("session", "clean") => target.persistent = false,
                ("session", "persistent") => target.persistent = true,
                ("ca", file) => ca = Some(file),
                _ => {
                    let value = if value.is_empty() { key.to_string() } else { format!("{key}={value}") };
                    return Err(TargetError::Option(format!(
                        "unknown option {value:?} in the MQTT target: qos=1|2, session=clean|persistent, ca=FILE (with mqtts://)"
                    )));
                }
            }
        }
        target.tls = super::tls::from_options(tls, ca, "write the target as mqtts://…?ca=FILE")
            .map_err(TargetError::Option)?;
        Ok(target)
    }

    /// `mqtt 127.0.0.1:1883 (QoS 1, clean sessions)`, without credentials.
    pub fn describe(&self) -> String {
        let tls = match &self.tls {
            Some(tls) => format!(", {}", tls.describe()),
            None => String::new(),
        };
        format!(
            "mqtt {}:{} (QoS {}, {} sessions{tls})",
            self.host,
            self.port,
            self.qos,
            if self.persistent {
                "persistent"
            } else {
                "clean"
            }
        )
    }

    fn qos(&self) -> QoS {
        if self.qos == 2 {
            QoS::ExactlyOnce
        } else {
            QoS::AtLeastOnce
        }
    }

    fn user_topic(&self, user: u64) -> String {
        format!("{}/u/{user}", self.prefix)
    }

    fn group_topic(&self, group: u64) -> String {
        format!("{}/g/{group}", self.prefix)
    }

    /// Who a topic of this run names.
    fn dest_of(&self, topic: &str) -> Option<Dest> {
        let rest = topic.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        let (kind, id) = rest.split_once('/')?;
        let id = id.parse().ok()?;
        match kind {
            "u" => Some(Dest::User(id)),
            "g" => Some(Dest::Group(id)),
            _ => None,
        }
    }
}

/// Logs clients in to one broker.
pub struct MqttDriver {
    target: std::sync::Arc<MqttTarget>,
    /// Users whose persistent session left by an earlier run was cleared in this one.
    cleared: std::sync::Mutex<std::collections::HashSet<u64>>,
}

impl MqttDriver {
    /// Clients of `target`.
    pub fn new(target: MqttTarget) -> Self {
        Self {
            target: std::sync::Arc::new(target),
            cleared: Default::default(),
        }
    }

    /// What the clients connect to.
    pub fn describe(&self) -> String {
        self.target.describe()
    }

    /// A client of `user` and its event loop, not yet connected (the loop connects when
    /// first polled).
    fn client(&self, user: u64, clean: bool) -> (AsyncClient, EventLoop) {
        let target = &self.target;
        let mut options = MqttOptions::new(format!("imbench-{user}"), &target.host, target.port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(clean)
            .set_manual_acks(true)
            .set_max_packet_size(MAX_PACKET, MAX_PACKET)
            .set_request_channel_capacity(REQUEST_CAPACITY);
        if let Some((u, p)) = &target.credentials {
            options.set_credentials(u, p);
        }
        if let Some(tls) = &target.tls {
            options.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(tls.config()),
            ));
        }
        let (client, mut eventloop) = AsyncClient::new(options, REQUEST_CAPACITY);
        // rumqttc leaves Nagle's algorithm on: a small PUBLISH written while the previous one
        // is unacknowledged would wait for the broker's delayed ACK (40 ms on Linux), and the
        // figure would measure that.
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        (client, eventloop)
    }

    /// Ends a persistent session an earlier run left for `user`: its subscriptions (another
    /// run's groups) and what the broker kept for it would otherwise arrive in this run. A
    /// connection with a clean session discards it; the next one starts a fresh persistent one.
    async fn clear_old_session(&self, user: u64) {
        let (client, mut eventloop) = self.client(user, true);
        loop {
            match eventloop.poll().await {
                Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => break,
                Ok(_) => {}
                // The connection proper says what is wrong, in its own words.
                Err(_) => return,
            }
        }
        let _ = client.disconnect().await;
        while let Ok(event) = eventloop.poll().await {
            if matches!(event, MqttEvent::Outgoing(Outgoing::Disconnect)) {
                break;
            }
        }
    }

    /// Connects as `user` and subscribes to its topic; `Ok` at the SUBACK.
    pub async fn connect(&self, user: u64) -> Result<Session, ConnectError> {
        let target = &self.target;
        let first = target.persistent
            && self
                .cleared
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(user);
        if first {
            self.clear_old_session(user).await;
        }
        let (client, mut eventloop) = self.client(user, !target.persistent);
        let where_ = format!("{}:{}", target.host, target.port);
        client
            .subscribe(target.user_topic(user), target.qos())
            .await
            .map_err(|e| ConnectError::Failed(format!("subscribing: {e}")))?;
        // With a persistent session the broker sends what it kept as soon as the connection is
        // back, before the SUBACK: those are deliveries, handed to the events side.
        let mut early = std::collections::VecDeque::new();
        loop {
            match eventloop.poll().await {
                Ok(e @ MqttEvent::Incoming(Packet::Publish(_))) => early.push_back(e),
                Ok(MqttEvent::Incoming(Packet::SubAck(ack))) => {
                    if ack
                        .return_codes
                        .iter()
                        .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                    {
                        return Err(ConnectError::Refused(format!(
                            "the broker at {where_} refused the subscription to {}",
                            target.user_topic(user)
                        )));
                    }
                    break;
                }
                Ok(_) => {}
                Err(ConnectionError::ConnectionRefused(code)) => {
                    let hint = match code {
                        ConnectReturnCode::BadUserNamePassword
                        | ConnectReturnCode::NotAuthorized => {
                            " (check the user and password in the mqtt:// target)"
                        }
                        _ => "",
                    };
                    return Err(ConnectError::Refused(format!(
                        "the broker at {where_} refused the connection: {code:?}{hint}"
                    )));
                }
                Err(ConnectionError::Io(e)) => {
                    return Err(ConnectError::Failed(format!(
                        "connecting to the broker at {where_}: {e}"
                    )))
                }
                // A handshake that fails is the target's TLS set-up, not the broker's load.
                Err(ConnectionError::Tls(e)) => {
                    let why = match (&e, &target.tls) {
                        (rumqttc::TlsError::Io(io), Some(tls)) => {
                            tls.handshake_failed(io, &target.host, "mqtt://")
                        }
                        (other, _) => format!("the TLS handshake failed: {other}"),
                    };
                    return Err(ConnectError::Misconfigured(format!("{where_}: {why}")));
                }
                Err(e) => {
                    // A TLS listener drops a plain CONNECT without a word.
                    let tls = if target.tls.is_none() {
                        " (a TLS listener takes mqtts://)"
                    } else {
                        ""
                    };
                    return Err(ConnectError::Failed(format!(
                        "{where_} did not answer as an MQTT broker ({e}): is this an MQTT port?{tls}"
                    )));
                }
            }
        }
        let (pending_tx, pending_rx) = unbounded_channel();
        let abort = std::sync::Arc::new(tokio::sync::Notify::new());
        let acks = client.clone();
        Ok(Session {
            sender: Sender::Mqtt(MqttSender {
                target: target.clone(),
                user,
                client: Some(client),
                queued: Vec::new(),
                pending: pending_tx,
                abort: abort.clone(),
            }),
            events: Events::Mqtt(Box::new(MqttEvents {
                target: target.clone(),
                user,
                acks,
                eventloop,
                pending: pending_rx,
                by_pkid: HashMap::new(),
                subscribing: HashMap::new(),
                abort,
                early,
                done: false,
            })),
            side_streams: None,
            login: super::Login::Full,
            migrator: None,
        })
    }
}

/// A request the event loop will number, in the order the sender handed it over.
#[derive(Debug)]
enum Pending {
    Publish(u64),
    Subscribe(u64),
    Unsubscribe(u64),
}

/// What a request queued by the client becomes.
enum Queued {
    Publish { topic: String, payload: Bytes },
    Subscribe(u64),
    Unsubscribe(u64),
}

/// A session's operations, handed to its event loop.
pub struct MqttSender {
    target: std::sync::Arc<MqttTarget>,
    user: u64,
    client: Option<AsyncClient>,
    queued: Vec<(Queued, Pending)>,
    pending: UnboundedSender<Pending>,
    /// Tells the events side to drop the connection.
    abort: std::sync::Arc<tokio::sync::Notify>,
}

impl MqttSender {
    /// Takes `op` into the pending batch.
    pub fn queue(&mut self, op: Op) -> Result<(), SessionError> {
        if self.client.is_none() {
            return Err(SessionError::Closed);
        }
        match op {
            Op::Send { msg_id, to, body } => {
                let topic = match to {
                    Dest::User(u) => self.target.user_topic(u),
                    Dest::Group(g) => self.target.group_topic(g),
                };
                self.queued.push((
                    Queued::Publish {
                        topic,
                        payload: envelope::wrap(self.user, msg_id, &body),
                    },
                    Pending::Publish(msg_id),
                ));
            }
            Op::Join { group } => self
                .queued
                .push((Queued::Subscribe(group), Pending::Subscribe(group))),
            Op::Leave { group } => self
                .queued
                .push((Queued::Unsubscribe(group), Pending::Unsubscribe(group))),
            // The broker's own session state decides what is kept for a reconnect.
            Op::Receipt { .. } => {}
            Op::FileOffer { .. } | Op::FileChunk { .. } => {
                return Err(SessionError::Unsupported(
                    "the MQTT driver carries no files",
                ))
            }
        }
        Ok(())
    }

    /// Hands the batch to the event loop.
    pub async fn flush(&mut self) -> Result<(), SessionError> {
        let Some(client) = &self.client else {
            return Err(SessionError::Closed);
        };
        let qos = self.target.qos();
        for (request, pending) in self.queued.drain(..) {
            // Before the request, so the events side knows it when its packet id shows.
            let _ = self.pending.send(pending);
            let sent = match request {
                Queued::Publish { topic, payload } => {
                    client.publish_bytes(topic, qos, false, payload).await
                }
                Queued::Subscribe(g) => client.subscribe(self.target.group_topic(g), qos).await,
                Queued::Unsubscribe(g) => client.unsubscribe(self.target.group_topic(g)).await,
            };
            sent.map_err(|_| SessionError::Closed)?;
        }
        Ok(())
    }

    /// DISCONNECT, then the event loop ends.
    pub async fn close(&mut self, _reason: &str) {
        let _ = self.flush().await;
        if let Some(client) = self.client.take() {
            let _ = client.disconnect().await;
        }
    }

    /// Ends at once: the events side drops the connection, with no DISCONNECT. (Dropping the
    /// client is not enough: the event loop keeps a handle of its own to its requests.)
    pub fn abort(&mut self, _reason: &str) {
        self.queued.clear();
        self.client = None;
        self.abort.notify_one();
    }
}

impl Drop for MqttSender {
    fn drop(&mut self) {
        // A sender gone without closing ends the session as it always did when the request
        // channel closed; the events side now keeps a handle of its own (for its acks), so it
        // is told.
        if self.client.is_some() {
            self.abort.notify_one();
        }
    }
}

/// What the broker sends a session, as events.
pub struct MqttEvents {
    target: std::sync::Arc<MqttTarget>,
    user: u64,
    /// Acknowledges deliveries once handed over (manual acks).
    acks: AsyncClient,
    eventloop: EventLoop,
    pending: UnboundedReceiver<Pending>,
    /// Packet id → the message it acknowledges.
    by_pkid: HashMap<u16, u64>,
    /// Packet id → the group a SUBSCRIBE or UNSUBSCRIBE was for (SUBACK and UNSUBACK tell
    /// which).
    subscribing: HashMap<u16, u64>,
    /// The sending side cut the session.
    abort: std::sync::Arc<tokio::sync::Notify>,
    /// Events that arrived while the session was being opened.
    early: std::collections::VecDeque<MqttEvent>,
    done: bool,
}

impl MqttEvents {
    /// The next event; `None` when the session ended.
    pub async fn next(&mut self) -> Result<Option<Event>, SessionError> {
        while let Some(e) = self.early.pop_front() {
            if let Some(e) = self.on(e) {
                return Ok(Some(e));
            }
        }
        while !self.done {
            let polled = tokio::select! {
                biased;
                _ = self.abort.notified() => {
                    // Closes the socket as it is, like a client that vanished.
                    self.eventloop.network = None;
                    self.done = true;
                    return Ok(None);
                }
                polled = self.eventloop.poll() => polled,
            };
            let event = match polled {
                Ok(e) => e,
                // The loop would reconnect if polled again; a session ends here.
                Err(ConnectionError::RequestsDone) => {
                    self.done = true;
                    return Ok(None);
                }
                Err(e) => {
                    self.done = true;
                    return Err(SessionError::Protocol(format!("MQTT: {e}")));
                }
            };
            if let Some(e) = self.on(event) {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    fn on(&mut self, event: MqttEvent) -> Option<Event> {
        match event {
            MqttEvent::Outgoing(Outgoing::Publish(pkid)) => {
                if let Ok(Pending::Publish(msg_id)) = self.pending.try_recv() {
                    self.by_pkid.insert(pkid, msg_id);
                }
                None
            }
            MqttEvent::Outgoing(Outgoing::Subscribe(pkid)) => {
                if let Ok(Pending::Subscribe(g)) = self.pending.try_recv() {
                    self.subscribing.insert(pkid, g);
                }
                None
            }
            MqttEvent::Outgoing(Outgoing::Unsubscribe(pkid)) => {
                if let Ok(Pending::Unsubscribe(g)) = self.pending.try_recv() {
                    self.subscribing.insert(pkid, g);
                }
                None
            }
            MqttEvent::Outgoing(Outgoing::Disconnect) => {
                self.done = true;
                Some(Event::Closed {
                    reason: "disconnected".into(),
                })
            }
            MqttEvent::Outgoing(_) => None,
            MqttEvent::Incoming(packet) => self.incoming(packet),
        }
    }

    fn incoming(&mut self, packet: Packet) -> Option<Event> {
        let acked = |by_pkid: &mut HashMap<u16, u64>, pkid| {
            by_pkid.remove(&pkid).map(|msg_id| Event::Acked { msg_id })
        };
        match packet {
            Packet::Publish(p) => {
                let event = self.delivered(&p.topic, p.payload.clone());
                // Handed over (or dropped as not the client's): the broker may forget it. A
                // full request queue leaves the ack to the loop's own queue, sent after it.
                if let Err(rumqttc::ClientError::TryRequest(ack)) = self.acks.try_ack(&p) {
                    self.eventloop.pending.push_back(ack);
                }
                event
            }
            Packet::PubAck(a) if self.target.qos == 1 => acked(&mut self.by_pkid, a.pkid),
            Packet::PubComp(c) if self.target.qos == 2 => acked(&mut self.by_pkid, c.pkid),
            Packet::SubAck(ack) => {
                let group = self.subscribing.remove(&ack.pkid)?;
                let refused = ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure));
                Some(if refused {
                    Event::GroupRefused {
                        group,
                        code: imbench_proto::ErrorCode::NOT_A_MEMBER,
                    }
                } else {
                    Event::Joined { group }
                })
            }
            Packet::UnsubAck(ack) => {
                let group = self.subscribing.remove(&ack.pkid)?;
                Some(Event::Left { group })
            }
            Packet::Disconnect => {
                self.done = true;
                Some(Event::Closed {
                    reason: "the broker disconnected".into(),
                })
            }
            _ => None,
        }
    }

    fn delivered(&self, topic: &str, payload: Bytes) -> Option<Event> {
        let Some((from, msg_id, body)) = envelope::open(payload) else {
            return Some(Event::Unexpected {
                what: "an MQTT message without imbench's envelope",
            });
        };
        let Some(to) = self.target.dest_of(topic) else {
            return Some(Event::Unexpected {
                what: "an MQTT message on a topic the client never subscribed to",
            });
        };
        if from == self.user && matches!(to, Dest::Group(_)) {
            // MQTT 3.1.1 sends a member's own group message back to it.
            return None;
        }
        Some(Event::Delivered {
            msg_id,
            from,
            to,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_read_with_credentials_prefix_and_options() {
        let t = MqttTarget::parse("mqtt://127.0.0.1:1883").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.qos, t.persistent),
            ("127.0.0.1", 1883, 1, false)
        );
        assert_eq!(t.credentials, None);
        assert_eq!(t.user_topic(4), "imbench/u/4");
        assert_eq!(t.dest_of("imbench/g/9"), Some(Dest::Group(9)));
        assert_eq!(t.dest_of("imbench/u/x"), None);
        assert_eq!(t.dest_of("other/u/1"), None);
        let t = MqttTarget::parse("mqtt://bob:pw@broker:8883/load/test?qos=2&session=persistent")
            .unwrap();
        assert_eq!(t.credentials, Some(("bob".into(), "pw".into())));
        assert_eq!((t.qos, t.persistent), (2, true));
        assert_eq!(t.group_topic(1), "load/test/g/1");
        assert_eq!(
            t.describe(),
            "mqtt broker:8883 (QoS 2, persistent sessions)"
        );
        assert_eq!(t.tls, None);
        let ca = crate::driver::tls::test_ca_file("mqtt-parse");
        let t = MqttTarget::parse(&format!("mqtts://broker:8883?ca={}", ca.display())).unwrap();
        assert_eq!(
            t.describe(),
            format!(
                "mqtt broker:8883 (QoS 1, clean sessions, TLS, CA {})",
                ca.display()
            )
        );
    }

    #[test]
    fn a_target_mqtt_cannot_measure_says_why() {
        for (bad, what) in [
            ("nats://h:1", "mqtt://"),
            ("mqtt://h", "HOST:PORT"),
            ("mqtt://h:1/a//b", "prefix"),
            ("mqtt://h:1/a/+", "prefix"),
            ("mqtt://h:1?qos=0", "no acknowledgement"),
            ("mqtt://h:1?qos=3", "unknown option"),
            ("mqtt://h:1?retain=1", "unknown option"),
            ("mqtt://h:1?qos=1&qos=2", "given twice"),
            ("mqtt://u:100%@h:1", "%XX"),
            ("mqtt://h:1?ca=/x.pem", "mqtts://"),
            ("mqtts://h:1?ca=/nonexistent/x.pem", "/nonexistent/x.pem"),
        ] {
            let e = MqttTarget::parse(bad).unwrap_err().to_string();
            assert!(e.contains(what), "{bad}: {e}");
        }
    }
}
