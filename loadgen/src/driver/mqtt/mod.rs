//! The MQTT driver: imbench's clients against an MQTT 3.1.1 or MQTT 5 broker, through the
//! `rumqttc` client.
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
//!   drops that copy. MQTT 5 subscribes with No Local, so the broker does not send it; a copy
//!   that comes anyway is counted as unexpected.
//! - **ack**: PUBACK at QoS 1, PUBCOMP at QoS 2. An MQTT 5 broker may answer with a reason
//!   code of failure instead: the message is counted rejected (`busy` for "quota exceeded");
//!   "no matching subscribers" is an ack. QoS 0 has no answer of its own: as NATS's PONG, the
//!   broker's PINGRESP to a PINGREQ written after the message acks it. A broker reads a
//!   connection's packets in order, so it has read (and mosquitto has routed) every PUBLISH
//!   before the PINGREQ it answers; it promises nothing about delivery, and nothing is sent
//!   again, not even after a reconnect ([`MqttDriver::at_most_once`]). One ping is in flight at a time (MQTT allows no more); it covers every message
//!   written before it, and the next goes out when it is answered.
//! - **offline**: with a persistent session (`?session=persistent`) the broker keeps QoS 1 and
//!   2 messages for a client that is away and sends them when it is back; with a clean one
//!   (the default) nothing is kept and what was sent to an absent client is lost. MQTT 5
//!   asks the broker to keep a persistent session for an hour after its client has gone.
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
//! answer for. The two protocol versions are rumqttc's two clients, behind [`wire`].

mod target;
pub(crate) mod wire;
pub(crate) use wire::refusal_in_words;

pub use target::{MqttTarget, TargetError, Version};

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use imbench_proto::{Dest, ErrorCode};
use rumqttc::Outgoing;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::{envelope, ConnectError, Event, Events, Op, Sender, Session, SessionError};
use wire::{Client, Failure, Loop, Polled, Refusal};

/// Logs clients in to one broker.
pub struct MqttDriver {
    target: std::sync::Arc<MqttTarget>,
    /// The largest PUBLISH of the run, in bytes, held against an MQTT 5 broker's maximum.
    largest_publish: u64,
    /// Users whose persistent session left by an earlier run was cleared in this one.
    cleared: std::sync::Mutex<std::collections::HashSet<u64>>,
    /// How long a login may take (`generator.connect_timeout`): rumqttc's own network timeout
    /// (5 s by default) would otherwise end a slower one first.
    login_timeout: std::time::Duration,
}

impl MqttDriver {
    /// Clients of `target` that publish payloads of up to `largest_payload` bytes to users
    /// and groups numbered up to `largest_id`, each login given `login_timeout` (the run's
    /// `generator.connect_timeout`, which ends it).
    pub fn new(
        target: MqttTarget,
        largest_payload: u64,
        largest_id: u64,
        login_timeout: std::time::Duration,
    ) -> Self {
        let topic = target
            .user_topic(largest_id)
            .len()
            .max(target.group_topic(largest_id).len()) as u64;
        Self {
            largest_publish: wire::publish_size(topic, largest_payload),
            target: std::sync::Arc::new(target),
            cleared: Default::default(),
            login_timeout,
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

    /// QoS 0: at most once, so nothing is sent again.
    pub fn at_most_once(&self) -> bool {
        self.target.qos == 0
    }

    /// Ends a persistent session an earlier run left for `user`: its subscriptions (another
    /// run's groups) and what the broker kept for it would otherwise arrive in this run. A
    /// connection with a clean session discards it; the next one starts a fresh persistent one.
    async fn clear_old_session(&self, user: u64) {
        let (client, mut eventloop) = wire::client(&self.target, user, true, self.login_timeout);
        // The first poll connects: CONNECT and its CONNACK.
        if eventloop.poll().await.is_err() {
            // The connection proper says what is wrong, in its own words.
            return;
        }
        let _ = client.disconnect().await;
        while let Ok(event) = eventloop.poll().await {
            if matches!(event, Polled::Sent(Outgoing::Disconnect)) {
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
        let (client, mut eventloop) =
            wire::client(target, user, !target.persistent, self.login_timeout);
        let where_ = super::url::show_host_port(&target.host, target.port);
        client
            .subscribe(target.user_topic(user), target.qos(), false)
            .await
            .map_err(|_| {
                ConnectError::Failed("subscribing: the client's event loop has gone".into())
            })?;
        // With a persistent session the broker sends what it kept as soon as the connection is
        // back, before the SUBACK: those are deliveries, handed to the events side.
        let mut early = std::collections::VecDeque::new();
        loop {
            match eventloop.poll().await {
                Ok(e @ Polled::Message { .. }) => early.push_back(e),
                Ok(Polled::SubAck { refused, .. }) => {
                    if refused {
                        return Err(ConnectError::Refused(format!(
                            "the broker at {where_} refused the subscription to {}",
                            target.user_topic(user)
                        )));
                    }
                    break;
                }
                // The broker would end the connection at the first larger message (or the
                // library would, seeing this): said before the run instead.
                Ok(Polled::MaxPacket(max)) if u64::from(max) < self.largest_publish => {
                    return Err(ConnectError::Misconfigured(format!(
                        "the MQTT broker at {where_} takes packets of at most {max} bytes (Maximum Packet Size in its CONNACK), and this scenario's messages are PUBLISH packets of up to {} bytes (its largest body, imbench's {}-byte envelope and the topic), which the client would not send: raise the broker's limit (mosquitto's max_packet_size) or give the scenario smaller sizes",
                        self.largest_publish,
                        envelope::ENVELOPE_LEN
                    )));
                }
                Ok(_) => {}
                Err(Failure::Refused { code, why }) => {
                    let hint = refusal_hint(target, user, why);
                    return Err(ConnectError::Refused(format!(
                        "the broker at {where_} refused the connection: {code}{hint}"
                    )));
                }
                Err(Failure::Io(e)) => {
                    return Err(ConnectError::Failed(super::tcp_connect_failed(
                        "an MQTT broker",
                        &where_,
                        &e,
                    )))
                }
                // A handshake that fails is the target's TLS set-up, not the broker's load.
                Err(Failure::Tls(e)) => {
                    let why = match (&e, &target.tls) {
                        (rumqttc::TlsError::Io(io), Some(tls)) => {
                            tls.handshake_failed(io, &target.host, "mqtt://")
                        }
                        (other, _) => format!("the TLS handshake failed: {other}"),
                    };
                    return Err(ConnectError::Misconfigured(format!("{where_}: {why}")));
                }
                // Something answered, and not with a CONNACK: not an MQTT port (an HTTP
                // proxy, say), which no load changes.
                Err(Failure::NotMqtt(e)) => {
                    return Err(ConnectError::Misconfigured(format!(
                        "{where_} answered, but not as an MQTT broker ({e}): is this an MQTT port?"
                    )))
                }
                Err(Failure::Unreadable(e)) => {
                    return Err(ConnectError::Misconfigured(format!(
                        "{where_} answered, but not as an MQTT broker ({}: what it sent is not MQTT; rumqttc: {e}): is this an MQTT port?",
                        wire::NOT_CONNACK
                    )))
                }
                Err(e) => {
                    // A TLS listener drops a plain CONNECT without a word; so does a broker
                    // at its connection limit (other clients may be connected to it already).
                    let tls = if target.tls.is_none() {
                        " (a TLS listener takes mqtts://)"
                    } else {
                        ""
                    };
                    let full = if matches!(e, Failure::Ended | Failure::CutOff(_)) {
                        "; or the broker is at its connection limit (mosquitto's max_connections, or its open-file limit: see its log)"
                    } else {
                        ""
                    };
                    return Err(ConnectError::Failed(format!(
                        "{where_} did not answer as an MQTT broker ({}): is this an MQTT port?{tls}{full}",
                        e.describe()
                    )));
                }
            }
        }
        // An MQTT 5 broker may set a shorter keep-alive in its CONNACK; rumqttc would then ping
        // on that timer beside the driver's QoS 0 pings, and two pings in flight end a session.
        let keep_alive = eventloop.keep_alive();
        if target.qos == 0 && keep_alive < Duration::from_secs(wire::QOS0_KEEP_ALIVE_SECS.into()) {
            return Err(ConnectError::Misconfigured(format!(
                "the broker at {where_} set a keep-alive of {keep_alive:?} (MQTT 5 Server Keep Alive); at QoS 0 the driver's acks are pings, which the client's keep-alive pings would collide with: use version=3.1.1, or qos=1"
            )));
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
                broken: None,
                ready: std::collections::VecDeque::new(),
                pinged: PingAcks::default(),
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
    /// A message, and whether it is for one user (not a group).
    Publish {
        msg_id: u64,
        direct: bool,
    },
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
    client: Option<Client>,
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
                    Pending::Publish {
                        msg_id,
                        direct: matches!(to, Dest::User(_)),
                    },
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
                Queued::Publish { topic, payload } => client.publish(topic, qos, payload).await,
                // Not its own messages, where the protocol can say so (MQTT 5).
                Queued::Subscribe(g) => {
                    client
                        .subscribe(self.target.group_topic(g), qos, true)
                        .await
                }
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
    acks: Client,
    eventloop: Loop,
    pending: UnboundedReceiver<Pending>,
    /// Packet id → the message it acknowledges, and whether it is a direct one.
    by_pkid: HashMap<u16, (u64, bool)>,
    /// Packet id → the group a SUBSCRIBE or UNSUBSCRIBE was for (SUBACK and UNSUBACK tell
    /// which).
    subscribing: HashMap<u16, u64>,
    /// The sending side cut the session.
    abort: std::sync::Arc<tokio::sync::Notify>,
    /// Events that arrived while the session was being opened.
    early: std::collections::VecDeque<Polled>,
    done: bool,
    /// Why the session cannot go on, said at the next call.
    broken: Option<String>,
    /// Events made and not yet handed over (a PINGRESP acks several messages at once).
    ready: std::collections::VecDeque<Event>,
    /// QoS 0: the messages written and the ping that will ack them.
    pinged: PingAcks,
}

/// QoS 0's acks: messages written since the last PINGREQ, and those the PINGREQ in flight was
/// written after. Which messages a ping covers is settled when the ping is written, in the
/// order the event loop wrote packets, whoever asked for it.
#[derive(Debug, Default)]
struct PingAcks {
    written: Vec<u64>,
    in_flight: Option<Vec<u64>>,
    /// A PINGREQ is queued in the event loop and not yet written.
    asked: bool,
}

impl PingAcks {
    /// A message went out.
    fn written(&mut self, msg_id: u64) {
        self.written.push(msg_id);
    }

    /// A PINGREQ went out: it covers what was written before it.
    fn ping_written(&mut self) {
        self.asked = false;
        self.in_flight = Some(std::mem::take(&mut self.written));
    }

    /// The PINGRESP came: the messages it acks.
    fn answered(&mut self) -> Vec<u64> {
        self.in_flight.take().unwrap_or_default()
    }

    /// Whether to ask for a PINGREQ now, and noting that it was asked for: messages wait for
    /// one, and none is queued or in flight (`other_in_flight`: the library's own).
    fn ask(&mut self, other_in_flight: bool) -> bool {
        let due =
            !self.written.is_empty() && !self.asked && self.in_flight.is_none() && !other_in_flight;
        self.asked |= due;
        due
    }
}

impl MqttEvents {
    /// The next event; `None` when the session ended.
    pub async fn next(&mut self) -> Result<Option<Event>, SessionError> {
        self.ping_if_due().await?;
        if let Some(e) = self.ready.pop_front() {
            return Ok(Some(e));
        }
        while let Some(e) = self.early.pop_front() {
            if let Some(e) = self.on(e) {
                return Ok(Some(e));
            }
        }
        if let Some(why) = self.broken.take() {
            self.done = true;
            return Err(SessionError::Protocol(why));
        }
        while !self.done {
            self.ping_if_due().await?;
            let polled = tokio::select! {
                biased;
                _ = self.abort.notified() => {
                    self.eventloop.drop_connection();
                    self.done = true;
                    return Ok(None);
                }
                polled = self.eventloop.poll() => polled,
            };
            let event = match polled {
                Ok(e) => e,
                // The loop would reconnect if polled again; a session ends here.
                Err(Failure::RequestsDone) => {
                    self.done = true;
                    return Ok(None);
                }
                Err(Failure::Ended) => {
                    self.done = true;
                    return Err(SessionError::Ended(wire::ENDED.into()));
                }
                Err(e) => {
                    self.done = true;
                    return Err(SessionError::Protocol(format!("MQTT: {}", e.describe())));
                }
            };
            if let Some(e) = self.on(event) {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    fn on(&mut self, polled: Polled) -> Option<Event> {
        let acked = |by_pkid: &mut HashMap<u16, (u64, bool)>, pkid, refused: Option<Refusal>| {
            let (msg_id, direct) = by_pkid.remove(&pkid)?;
            let code = match refused {
                None => return Some(Event::Acked { msg_id }),
                // The broker has said nobody will get it: for a direct message, its recipient
                // was not online (a group's members are the group ledger's to count).
                Some(Refusal::NoSubscribers) if !direct => return Some(Event::Acked { msg_id }),
                Some(refusal) => refusal.code(),
            };
            Some(Event::Rejected { msg_id, code })
        };
        let qos = self.target.qos;
        match polled {
            Polled::Sent(Outgoing::Publish(_)) if qos == 0 => {
                if let Ok(Pending::Publish { msg_id, .. }) = self.pending.try_recv() {
                    self.pinged.written(msg_id);
                }
                None
            }
            Polled::Sent(Outgoing::PingReq) => {
                self.pinged.ping_written();
                None
            }
            Polled::PingResp => {
                let acked = self.pinged.answered();
                self.ready
                    .extend(acked.into_iter().map(|msg_id| Event::Acked { msg_id }));
                self.ready.pop_front()
            }
            Polled::Sent(Outgoing::Publish(pkid)) => {
                if let Ok(Pending::Publish { msg_id, direct }) = self.pending.try_recv() {
                    self.by_pkid.insert(pkid, (msg_id, direct));
                }
                None
            }
            Polled::Sent(Outgoing::Subscribe(pkid)) => {
                if let Ok(Pending::Subscribe(g)) = self.pending.try_recv() {
                    self.subscribing.insert(pkid, g);
                }
                None
            }
            Polled::Sent(Outgoing::Unsubscribe(pkid)) => {
                if let Ok(Pending::Unsubscribe(g)) = self.pending.try_recv() {
                    self.subscribing.insert(pkid, g);
                }
                None
            }
            Polled::Sent(Outgoing::Disconnect) => {
                self.done = true;
                Some(Event::Closed {
                    reason: "disconnected".into(),
                })
            }
            Polled::Message {
                topic,
                payload,
                incoming,
            } => {
                let event = self.delivered(&topic, payload);
                // Handed over (or dropped as not the client's): the broker may forget it.
                self.eventloop.ack(&self.acks, &incoming);
                event
            }
            Polled::PubAck { pkid, refused } if qos == 1 => acked(&mut self.by_pkid, pkid, refused),
            // At QoS 2 a PUBREC that refuses ends the flow; one that takes it goes on to PUBCOMP,
            // and so does "no subscribers" for a group message, acked there.
            Polled::PubRec {
                pkid,
                refused: Some(why),
                reason,
            } if qos == 2 => {
                let direct = self.by_pkid.get(&pkid).is_some_and(|&(_, direct)| direct);
                if why == Refusal::NoSubscribers && !direct {
                    return None;
                }
                if why != Refusal::NoSubscribers {
                    // rumqttc 0.25's MQTT 5 client keeps the refused message's place among
                    // those in flight (bytebeamio/rumqtt#1060): after as many refusals as the
                    // broker's Receive Maximum, the client sends nothing more, and the run
                    // would blame the broker. The session ends here, saying why.
                    self.broken = Some(format!(
                        "the broker refused a QoS 2 message ({} in its PUBREC), and the MQTT 5 client cannot go on sending after such refusals: use qos=1, or version=3.1.1, to load a broker that refuses messages",
                        reason.unwrap_or_default()
                    ));
                }
                acked(&mut self.by_pkid, pkid, Some(why))
            }
            Polled::PubComp { pkid } if qos == 2 => acked(&mut self.by_pkid, pkid, None),
            Polled::SubAck { pkid, refused } => {
                let group = self.subscribing.remove(&pkid)?;
                Some(if refused {
                    Event::GroupRefused {
                        group,
                        code: ErrorCode::NOT_A_MEMBER,
                        said: Some(format!(
                            "the broker refused the subscription to {} (SUBACK failure): does its ACL let this user read the topic?",
                            self.target.group_topic(group)
                        )),
                    }
                } else {
                    Event::Joined { group }
                })
            }
            Polled::UnsubAck { pkid } => {
                let group = self.subscribing.remove(&pkid)?;
                Some(Event::Left { group })
            }
            // Another connection with this client id took the session: told as the reference
            // server's and XMPP's newer login is, so that the run names the cause.
            Polled::Disconnected {
                reason,
                taken_over: true,
            } => {
                self.done = true;
                Some(Event::Failed {
                    code: ErrorCode::REPLACED,
                    reason,
                })
            }
            Polled::Disconnected { reason, .. } => {
                self.done = true;
                Some(Event::Closed { reason })
            }
            _ => None,
        }
    }

    /// QoS 0: sends a PINGREQ when messages wait for one and none is queued or in flight.
    /// Called before each poll of the loop, so a message written by the last one is covered
    /// by the next ping without waiting for anything else to happen.
    async fn ping_if_due(&mut self) -> Result<(), SessionError> {
        if self.done || !self.pinged.ask(self.eventloop.ping_unanswered()) {
            return Ok(());
        }
        match self.eventloop.ping().await {
            Ok(true) => self.pinged.ping_written(),
            // Queued in the loop: covered when the loop says it wrote it.
            Ok(false) => {}
            Err(e) => {
                self.done = true;
                return Err(SessionError::Protocol(format!("MQTT: writing a ping: {e}")));
            }
        }
        Ok(())
    }

    fn delivered(&self, topic: &str, payload: Bytes) -> Option<Event> {
        let Some((from, msg_id, body)) = envelope::open(payload) else {
            return Some(Event::Unexpected {
                what: "an MQTT message without imbench's envelope".into(),
            });
        };
        let Some(to) = self.target.dest_of(topic) else {
            return Some(Event::Unexpected {
                what: "an MQTT message on a topic the client never subscribed to".into(),
            });
        };
        if from == self.user && matches!(to, Dest::Group(_)) {
            return match self.target.version {
                // MQTT 3.1.1 sends a member's own group message back to it.
                Version::V3_1_1 => None,
                Version::V5 => Some(Event::Unexpected {
                    what: "an MQTT 5 broker sent a member its own group message (No Local)".into(),
                }),
            };
        }
        Some(Event::Delivered {
            msg_id,
            from,
            to,
            body,
        })
    }
}

/// What to add to a refused CONNECT's reason: what the user may mend, and how.
fn refusal_hint(target: &MqttTarget, user: u64, why: wire::LoginRefusal) -> String {
    let id = wire::client_id(target, user);
    let credentials = if target.credentials.is_none() {
        "the broker wants a user and password, and the target gives none: mqtt://USER:PASSWORD@HOST:PORT"
    } else {
        "check the user and password in the mqtt:// target"
    };
    match why {
        wire::LoginRefusal::Credentials => format!(" ({credentials})"),
        // mosquitto says so of a client id its `clientid_prefixes` refuses too.
        wire::LoginRefusal::NotAuthorized => {
            format!(" ({credentials}; or the broker does not take the client id {id})")
        }
        wire::LoginRefusal::Version => {
            " (the broker does not speak the MQTT version asked for: try version=3.1.1)".into()
        }
        wire::LoginRefusal::ClientId if id.len() > wire::PORTABLE_CLIENT_ID => format!(
            " (the client id {id} is {} bytes, and an MQTT broker need take only {}: give the target a shorter prefix, mqtt://HOST:PORT/PREFIX)",
            id.len(),
            wire::PORTABLE_CLIENT_ID
        ),
        wire::LoginRefusal::ClientId => format!(" (the client id was {id})"),
        wire::LoginRefusal::Other => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::{refusal_hint, wire::LoginRefusal, MqttTarget, PingAcks};

    #[test]
    fn a_refusal_names_what_to_mend() {
        let target = |url: &str| MqttTarget::parse(url).expect("a target");
        let plain = target("mqtt://h:1");
        let hint = refusal_hint(&plain, 7, LoginRefusal::NotAuthorized);
        assert!(
            hint.contains("gives none") && hint.contains("client id imbench-7"),
            "{hint}"
        );
        let given = target("mqtt://u:p@h:1");
        let hint = refusal_hint(&given, 7, LoginRefusal::NotAuthorized);
        assert!(
            hint.contains("check the user and password") && hint.contains("imbench-7"),
            "{hint}"
        );
        // A bad user name or password is that alone.
        let hint = refusal_hint(&plain, 7, LoginRefusal::Credentials);
        assert!(
            hint.contains("gives none") && !hint.contains("client id"),
            "{hint}"
        );
        let hint = refusal_hint(&given, 7, LoginRefusal::Credentials);
        assert!(
            hint.contains("check the user and password") && !hint.contains("client id"),
            "{hint}"
        );
        assert!(refusal_hint(&plain, 7, LoginRefusal::Version).contains("version=3.1.1"));
        assert_eq!(
            refusal_hint(&plain, 7, LoginRefusal::ClientId),
            " (the client id was imbench-7)"
        );
        // A prefix of 20 bytes: user 100's id (24 bytes) is longer than every broker must
        // take, user 10's (23) is not.
        let twenty = target("mqtt://h:1/abcdefghij/klmnopqrs");
        let long = refusal_hint(&twenty, 100, LoginRefusal::ClientId);
        assert!(
            long.contains("the client id abcdefghij.klmnopqrs-100 is 24 bytes")
                && long.contains("shorter prefix"),
            "{long}"
        );
        let at_most = refusal_hint(&twenty, 10, LoginRefusal::ClientId);
        assert_eq!(at_most, " (the client id was abcdefghij.klmnopqrs-10)");
        assert_eq!(refusal_hint(&plain, 7, LoginRefusal::Other), "");
    }

    #[test]
    fn a_ping_acks_what_was_written_before_it_and_the_next_goes_out_when_it_is_answered() {
        let mut p = PingAcks::default();
        assert!(!p.ask(false), "nothing written, nothing to ask");
        p.written(1);
        assert!(p.ask(false));
        assert!(!p.ask(false), "asked already");
        // Written while the ping waits in the loop's queue: still before it on the wire.
        p.written(2);
        p.ping_written();
        p.written(3);
        assert!(!p.ask(false), "one ping in flight at a time");
        assert_eq!(p.answered(), [1, 2]);
        assert!(p.ask(false), "3 waits for the next");
        p.ping_written();
        assert_eq!(p.answered(), [3]);
        assert!(p.answered().is_empty(), "a second answer acks nothing");
        p.written(4);
        assert!(!p.ask(true), "not beside the library's own ping");
        // The library's ping covers what was written before it all the same.
        p.ping_written();
        assert_eq!(p.answered(), [4]);
    }
}
