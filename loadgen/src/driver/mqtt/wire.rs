//! The two MQTT protocol versions behind one face: rumqttc has a client and an event loop for
//! 3.1.1 and others, with their own packet types, for 5. The driver speaks to [`Client`] and
//! [`Loop`] and reads [`Polled`]; only this file knows which version is under them.

use std::time::Duration;

use bytes::Bytes;
use imbench_proto::ErrorCode;
use rumqttc::v5::mqttbytes::v5 as p5;
use rumqttc::Outgoing;

use super::target::{MqttTarget, Version};

/// Largest packet either way: MQTT's own limit is 256 MiB, rumqttc's default 10 KiB.
const MAX_PACKET: usize = 1024 * 1024;

/// Requests a client may have queued for its event loop.
pub(super) const REQUEST_CAPACITY: usize = 4096;

/// Messages a client may have sent and not yet seen acknowledged (the broker may ask for
/// fewer). rumqttc's 3.1.1 client allows 100 by default; its MQTT 5 client would allow 65,535
/// and allocate a slot for each up front, megabytes per client: at 30 clients on a busy
/// machine a connect took 100 ms instead of 0.5 ms. Both are given this.
const INFLIGHT: u16 = 100;

/// How long an MQTT 5 broker keeps a persistent session after its client has gone. (3.1.1
/// has no such setting: the broker keeps it until told otherwise.) A run's clients are away
/// for seconds; an hour bounds what a run leaves on the broker.
const SESSION_EXPIRY_SECS: u32 = 3600;

/// Keep-alive asked for at QoS 0, seconds: the longest MQTT can say. At QoS 0 the driver's acks
/// are its own pings (see the driver), and rumqttc pings on its keep-alive timer whatever else
/// is in flight; a second ping before the first is answered ends the session. So rumqttc's
/// timer must not fire within a run.
pub(super) const QOS0_KEEP_ALIVE_SECS: u16 = u16::MAX;

/// Keep-alive otherwise, seconds.
const KEEP_ALIVE_SECS: u16 = 30;

/// The requesting side of one connection.
#[derive(Clone)]
pub(super) enum Client {
    V3(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// The connection itself: the event loop that reads, writes and keeps the MQTT state (boxed:
/// either is large).
pub(super) enum Loop {
    V3(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

/// A message the broker delivered, kept to acknowledge it once handed over (boxed: an MQTT 5
/// PUBLISH carries its properties).
pub(super) enum Incoming {
    V3(Box<rumqttc::Publish>),
    V5(Box<p5::Publish>),
}

/// What one poll of the loop brought, in the terms the driver needs.
pub(super) enum Polled {
    /// A request went out with this packet id.
    Sent(Outgoing),
    /// The broker delivered a message on `topic`.
    Message {
        topic: String,
        payload: Bytes,
        incoming: Incoming,
    },
    /// PUBACK; `refused` carries an MQTT 5 reason code of failure.
    PubAck { pkid: u16, refused: Option<Refusal> },
    /// PUBREC: at QoS 2 only a refusal ends the flow here; success goes on to PUBCOMP.
    /// `reason` is the broker's reason code, named, when it is not success.
    PubRec {
        pkid: u16,
        refused: Option<Refusal>,
        reason: Option<String>,
    },
    /// PUBCOMP.
    PubComp { pkid: u16 },
    /// SUBACK, refused when any filter was.
    SubAck { pkid: u16, refused: bool },
    /// UNSUBACK.
    UnsubAck { pkid: u16 },
    /// PINGRESP: the answer to the PINGREQ in flight.
    PingResp,
    /// The broker ended the session; `taken_over` when it said another connection took the
    /// client id (MQTT 5's Session Taken Over).
    Disconnected { reason: String, taken_over: bool },
    /// An MQTT 5 CONNACK's Maximum Packet Size: the largest packet the broker takes.
    MaxPacket(u32),
    /// Anything else (CONNACK, PUBREL …).
    Other,
}

/// Why an MQTT 5 broker refused a message it was sent, or that it had nobody to send it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Quota exceeded: the broker is shedding load.
    Busy,
    /// Not authorized, or a topic it does not take.
    NotAllowed,
    /// Any other reason code of failure.
    Other,
    /// Not a failure: the broker took the message and had nobody subscribed to give it to.
    NoSubscribers,
}

/// Each refusal, the imbench code it counts as and its words: one table for both ways.
const REFUSALS: [(Refusal, ErrorCode, &str); 4] = [
    (Refusal::Busy, ErrorCode::BUSY, "quota exceeded"),
    (
        Refusal::NotAllowed,
        ErrorCode::UNSUPPORTED_DEST,
        "not authorized, or a topic the broker does not take",
    ),
    (
        Refusal::Other,
        ErrorCode::UNEXPECTED_FRAME,
        "a failure reason code",
    ),
    (
        Refusal::NoSubscribers,
        ErrorCode::RECIPIENT_OFFLINE,
        "no matching subscribers: the recipient was not online",
    ),
];

impl Refusal {
    /// The imbench code the refusal counts as.
    pub(super) fn code(self) -> ErrorCode {
        REFUSALS
            .iter()
            .find(|(r, _, _)| *r == self)
            .map_or(ErrorCode::UNEXPECTED_FRAME, |(_, code, _)| *code)
    }
}

/// A refusal counted as `code`, in MQTT's words: what the broker's acknowledgement said.
pub(crate) fn refusal_in_words(code: ErrorCode) -> String {
    match REFUSALS.iter().find(|(_, c, _)| *c == code) {
        Some((_, _, words)) => format!("the broker's acknowledgement said {words}"),
        None => format!("refused ({code})"),
    }
}

/// The kind of a refused CONNECT, for what the user may mend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LoginRefusal {
    /// The user or password ("bad user name or password").
    Credentials,
    /// "Not authorized": the user or password, or to some brokers the client id.
    NotAuthorized,
    /// The broker does not speak the version asked for.
    Version,
    /// The broker would not take the client id.
    ClientId,
    /// Anything else (the server unavailable, say).
    Other,
}

/// Why a poll failed.
pub(super) enum Failure {
    /// The broker answered CONNECT with a refusal: its code in words, and its kind.
    Refused { code: String, why: LoginRefusal },
    /// The socket.
    Io(std::io::Error),
    /// The TLS handshake.
    Tls(rumqttc::TlsError),
    /// The requesting side has gone.
    RequestsDone,
    /// The peer answered CONNECT with a packet that is not a CONNACK: not an MQTT port.
    NotMqtt(String),
    /// The peer sent bytes the client could not read as MQTT, in rumqttc's words: before the
    /// CONNACK, not an MQTT port; later, a packet of the broker's the library does not know.
    Unreadable(String),
    /// An MQTT 5 broker answered a message with reason 0x95, "packet too large", where MQTT 5
    /// gives a PUBACK or PUBREC no such code (mosquitto does, over its `message_size_limit`):
    /// the library cannot read it, and the connection is lost.
    TooLarge,
    /// A message over the broker's maximum packet size (an MQTT 5 CONNACK's), which the
    /// library will not send: it ends the connection instead.
    OverMaximum { size: u64, max: u64 },
    /// The broker closed the connection (or reset it) without a DISCONNECT.
    Ended,
    /// The connection was reset while the client waited for an answer, in words.
    CutOff(String),
    /// Anything else, in rumqttc's words.
    Other(String),
}

/// A CONNACK's reason as rumqttc names it (`BadUserNamePassword`) in words, as the MQTT
/// specification writes them (`bad user name password`).
fn in_words(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// What answered with bytes that are not a CONNACK: another packet (rumqttc would name the
/// packet type it decoded, and a NATS server's `INFO` reads as a PUBACK, which says nothing to
/// the user) or nothing MQTT can read.
pub(super) const NOT_CONNACK: &str = "its first answer was not a CONNACK";

/// A connection the broker ended without a DISCONNECT, in words.
pub(super) const ENDED: &str = "the broker closed the connection";

/// Whether an I/O error reading what should be MQTT is the peer cutting the connection (a
/// TLS listener does that to a plain CONNECT), rather than bytes that are not MQTT.
fn is_cut_off(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe
    )
}

impl Failure {
    fn from_v3(e: rumqttc::ConnectionError) -> Self {
        use rumqttc::ConnectReturnCode as C;
        use rumqttc::ConnectionError as E;
        match e {
            E::ConnectionRefused(code) => Failure::Refused {
                why: match code {
                    C::BadUserNamePassword => LoginRefusal::Credentials,
                    C::NotAuthorized => LoginRefusal::NotAuthorized,
                    C::RefusedProtocolVersion => LoginRefusal::Version,
                    C::BadClientId => LoginRefusal::ClientId,
                    _ => LoginRefusal::Other,
                },
                code: in_words(&format!("{code:?}")),
            },
            E::Io(e) if is_cut_off(&e) => {
                Failure::CutOff(format!("the connection was cut off: {e}"))
            }
            E::Io(e) => Failure::Io(e),
            E::Tls(e) => Failure::Tls(e),
            E::RequestsDone => Failure::RequestsDone,
            E::NotConnAck(_) => Failure::NotMqtt(NOT_CONNACK.to_string()),
            // Cut off while reading the answer: a broker that will not talk (or a TLS listener).
            E::MqttState(rumqttc::StateError::Deserialization(rumqttc::Error::Io(io)))
                if is_cut_off(&io) =>
            {
                Failure::CutOff(format!("the connection was cut off: {io}"))
            }
            E::MqttState(rumqttc::StateError::Deserialization(
                rumqttc::Error::OutgoingPacketTooLarge { pkt_size, max },
            )) => Failure::OverMaximum {
                size: pkt_size as u64,
                max: max as u64,
            },
            E::MqttState(rumqttc::StateError::Deserialization(d)) => {
                Failure::Unreadable(d.to_string())
            }
            E::MqttState(rumqttc::StateError::ConnectionAborted) => Failure::Ended,
            E::MqttState(rumqttc::StateError::Io(io)) if is_cut_off(&io) => Failure::Ended,
            other => Failure::Other(other.to_string()),
        }
    }

    fn from_v5(e: rumqttc::v5::ConnectionError) -> Self {
        use p5::ConnectReturnCode as C;
        use rumqttc::v5::ConnectionError as E;
        match e {
            E::ConnectionRefused(code) => Failure::Refused {
                why: match code {
                    C::BadUserNamePassword => LoginRefusal::Credentials,
                    C::NotAuthorized => LoginRefusal::NotAuthorized,
                    C::RefusedProtocolVersion | C::UnsupportedProtocolVersion => {
                        LoginRefusal::Version
                    }
                    C::BadClientId | C::ClientIdentifierNotValid => LoginRefusal::ClientId,
                    _ => LoginRefusal::Other,
                },
                code: in_words(&format!("{code:?}")),
            },
            E::Io(e) if is_cut_off(&e) => {
                Failure::CutOff(format!("the connection was cut off: {e}"))
            }
            E::Io(e) => Failure::Io(e),
            E::Tls(e) => Failure::Tls(e),
            E::RequestsDone => Failure::RequestsDone,
            E::NotConnAck(_) => Failure::NotMqtt(NOT_CONNACK.to_string()),
            E::MqttState(rumqttc::v5::StateError::Deserialization(
                rumqttc::v5::mqttbytes::Error::Io(io),
            )) if is_cut_off(&io) => Failure::CutOff(format!("the connection was cut off: {io}")),
            E::MqttState(rumqttc::v5::StateError::Deserialization(
                rumqttc::v5::mqttbytes::Error::InvalidConnectReturnCode(PACKET_TOO_LARGE),
            )) => Failure::TooLarge,
            E::MqttState(
                rumqttc::v5::StateError::OutgoingPacketTooLarge { pkt_size, max }
                | rumqttc::v5::StateError::Deserialization(
                    rumqttc::v5::mqttbytes::Error::OutgoingPacketTooLarge { pkt_size, max },
                ),
            ) => Failure::OverMaximum {
                size: u64::from(pkt_size),
                max: u64::from(max),
            },
            E::MqttState(rumqttc::v5::StateError::Deserialization(d)) => {
                Failure::Unreadable(d.to_string())
            }
            E::MqttState(rumqttc::v5::StateError::ConnectionAborted) => Failure::Ended,
            E::MqttState(rumqttc::v5::StateError::Io(io)) if is_cut_off(&io) => Failure::Ended,
            other => Failure::Other(other.to_string()),
        }
    }

    /// The failure in rumqttc's words, for a session that ends on it.
    pub(super) fn describe(&self) -> String {
        match self {
            Failure::Refused { code, .. } => format!("connection refused: {code}"),
            Failure::Io(e) => format!("I/O: {e}"),
            Failure::Tls(e) => format!("TLS: {e}"),
            Failure::RequestsDone => "requests done".into(),
            Failure::NotMqtt(e) | Failure::CutOff(e) | Failure::Other(e) => e.clone(),
            Failure::Unreadable(e) => {
                format!("the broker sent a packet the client could not read (rumqttc: {e})")
            }
            Failure::Ended => ENDED.into(),
            Failure::OverMaximum { size, max } => format!(
                "a message's packet of {size} bytes is {OVER_MAXIMUM} ({max} bytes, which its CONNACK gave), and the client does not send such a packet but ends its connection: keep the scenario's largest body (direct.size, groups.size) under the broker's limit"
            ),
            Failure::TooLarge => "the broker answered a message with reason 0x95, packet too large (over its size limit: mosquitto's message_size_limit or max_packet_size), which MQTT 5 allows in no PUBACK or PUBREC and the client cannot read, so the connection is lost: keep the scenario's largest body (direct.size, groups.size) under the broker's limit".into(),
        }
    }
}

/// What a message over an MQTT 5 broker's maximum packet size is said to be: the broker says
/// why it lost every connection as plainly as a reason code does.
pub(crate) const OVER_MAXIMUM: &str = "over the broker's maximum packet size";

/// The bytes of a PUBLISH of `payload` bytes to a topic of `topic` bytes at QoS 1 or 2 with no
/// properties: its fixed header, topic name, packet id and MQTT 5's property length (one byte
/// more than 3.1.1's).
pub(super) fn publish_size(topic: u64, payload: u64) -> u64 {
    let remaining = 2 + topic + 2 + 1 + payload;
    let length_bytes = match remaining {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    };
    1 + length_bytes + remaining
}

/// MQTT 5's reason code "packet too large".
const PACKET_TOO_LARGE: u8 = 0x95;

/// The client id of `user`: `PREFIX-USER`.
pub(super) fn client_id(target: &MqttTarget, user: u64) -> String {
    // The prefix names the client too: two runs at once on one broker, each with its own
    // prefix, would otherwise log each other's clients out (a broker keeps one connection per
    // client id). Each `/` of the prefix is a `.` in the id (so prefixes `a/b` and `a.b`
    // share their ids).
    format!("{}-{user}", target.prefix.replace('/', "."))
}

/// The most bytes of a client id every MQTT 3.1.1 broker must take (MQTT 3.1.1, 3.1.3.1);
/// longer ones a broker may refuse.
pub(super) const PORTABLE_CLIENT_ID: usize = 23;

/// A client of `user` and its event loop, not yet connected (the loop connects when first
/// polled). `clean` starts a fresh session and keeps none after the connection. rumqttc's
/// network timeout (for the connection and CONNACK, and for each flush after) is the run's
/// `login_timeout`, whole seconds rounded up: the run's own timeout, started first, ends a
/// login that slow, with its own words.
pub(super) fn client(
    target: &MqttTarget,
    user: u64,
    clean: bool,
    login_timeout: std::time::Duration,
) -> (Client, Loop) {
    let id = client_id(target, user);
    // rumqttc leaves Nagle's algorithm on: a small PUBLISH written while the previous one is
    // unacknowledged would wait for the broker's delayed ACK (40 ms on Linux), and the figure
    // would measure that.
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network.set_connection_timeout(login_timeout.as_secs_f64().ceil().max(1.0) as u64);
    let transport = target.tls.as_ref().map(|tls| {
        rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(tls.config()))
    });
    match target.version {
        Version::V3_1_1 => {
            let mut options = rumqttc::MqttOptions::new(id, &target.host, target.port);
            options
                .set_keep_alive(keep_alive(target))
                .set_clean_session(clean)
                .set_inflight(INFLIGHT)
                .set_manual_acks(true)
                .set_max_packet_size(MAX_PACKET, MAX_PACKET)
                .set_request_channel_capacity(REQUEST_CAPACITY);
            if let Some((u, p)) = &target.credentials {
                options.set_credentials(u, p);
            }
            if let Some(t) = transport {
                options.set_transport(t);
            }
            let (client, mut eventloop) = rumqttc::AsyncClient::new(options, REQUEST_CAPACITY);
            eventloop.set_network_options(network);
            (Client::V3(client), Loop::V3(Box::new(eventloop)))
        }
        Version::V5 => {
            let mut options = rumqttc::v5::MqttOptions::new(id, &target.host, target.port);
            options
                .set_keep_alive(keep_alive(target))
                .set_clean_start(clean)
                .set_outgoing_inflight_upper_limit(INFLIGHT)
                .set_manual_acks(true)
                .set_max_packet_size(Some(MAX_PACKET as u32))
                .set_request_channel_capacity(REQUEST_CAPACITY)
                .set_network_options(network);
            // MQTT 5 ends a session with its connection unless given an expiry: a persistent
            // session needs one to be kept at all.
            if !clean {
                options.set_session_expiry_interval(Some(SESSION_EXPIRY_SECS));
            }
            if let Some((u, p)) = &target.credentials {
                options.set_credentials(u, p);
            }
            if let Some(t) = transport {
                options.set_transport(t);
            }
            let (client, eventloop) = rumqttc::v5::AsyncClient::new(options, REQUEST_CAPACITY);
            (Client::V5(client), Loop::V5(Box::new(eventloop)))
        }
    }
}

fn keep_alive(target: &MqttTarget) -> Duration {
    let secs = if target.qos == 0 {
        QOS0_KEEP_ALIVE_SECS
    } else {
        KEEP_ALIVE_SECS
    };
    Duration::from_secs(secs.into())
}

fn qos5(qos: rumqttc::QoS) -> rumqttc::v5::mqttbytes::QoS {
    match qos {
        rumqttc::QoS::AtMostOnce => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        rumqttc::QoS::AtLeastOnce => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        rumqttc::QoS::ExactlyOnce => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
    }
}

/// The requests fail only when the event loop has gone.
#[derive(Debug)]
pub(super) struct LoopGone;

impl Client {
    pub(super) async fn publish(
        &self,
        topic: String,
        qos: rumqttc::QoS,
        payload: Bytes,
    ) -> Result<(), LoopGone> {
        match self {
            Client::V3(c) => c
                .publish_bytes(topic, qos, false, payload)
                .await
                .map_err(|_| LoopGone),
            Client::V5(c) => c
                .publish_bytes(topic, qos5(qos), false, payload)
                .await
                .map_err(|_| LoopGone),
        }
    }

    /// SUBSCRIBE; `not_own` asks an MQTT 5 broker not to send the client what it publishes
    /// itself (No Local). 3.1.1 has no such option.
    pub(super) async fn subscribe(
        &self,
        topic: String,
        qos: rumqttc::QoS,
        not_own: bool,
    ) -> Result<(), LoopGone> {
        match self {
            Client::V3(c) => c.subscribe(topic, qos).await.map_err(|_| LoopGone),
            Client::V5(c) => {
                let mut filter = p5::Filter::new(topic, qos5(qos));
                filter.nolocal = not_own;
                c.subscribe_many([filter]).await.map_err(|_| LoopGone)
            }
        }
    }

    pub(super) async fn unsubscribe(&self, topic: String) -> Result<(), LoopGone> {
        match self {
            Client::V3(c) => c.unsubscribe(topic).await.map_err(|_| LoopGone),
            Client::V5(c) => c.unsubscribe(topic).await.map_err(|_| LoopGone),
        }
    }

    pub(super) async fn disconnect(&self) -> Result<(), LoopGone> {
        match self {
            Client::V3(c) => c.disconnect().await.map_err(|_| LoopGone),
            Client::V5(c) => c.disconnect().await.map_err(|_| LoopGone),
        }
    }
}

impl Loop {
    /// The next thing the connection brought.
    pub(super) async fn poll(&mut self) -> Result<Polled, Failure> {
        match self {
            Loop::V3(l) => l.poll().await.map(polled_v3).map_err(Failure::from_v3),
            Loop::V5(l) => match l.poll().await {
                Ok(event) => Ok(polled_v5(event)),
                // MQTT 5 brokers say why they end a session; rumqttc makes it an error.
                Err(rumqttc::v5::ConnectionError::MqttState(
                    rumqttc::v5::StateError::ServerDisconnect {
                        reason_code,
                        reason_string,
                    },
                )) => Ok(Polled::Disconnected {
                    taken_over: reason_code == p5::DisconnectReasonCode::SessionTakenOver,
                    reason: match reason_string {
                        Some(why) => format!("the broker disconnected: {reason_code:?}, {why}"),
                        None => format!("the broker disconnected: {reason_code:?}"),
                    },
                }),
                Err(e) => Err(Failure::from_v5(e)),
            },
        }
    }

    /// Closes the socket as it is, like a client that vanished: no DISCONNECT.
    pub(super) fn drop_connection(&mut self) {
        match self {
            Loop::V3(l) => l.network = None,
            // `clean` also moves what was in flight to the loop's own queue; the loop is not
            // polled again.
            Loop::V5(l) => l.clean(),
        }
    }

    /// Acknowledges a delivery (PUBACK at QoS 1, PUBREC at QoS 2) through `client`. A full
    /// request queue leaves the ack to the loop's own queue, sent after it.
    /// Sends a PINGREQ. Over 3.1.1 it is written at once, after every packet the loop has
    /// written (`Ok(true)`). rumqttc's own queue for such requests sleeps on the runtime's
    /// timer before each (a zero sleep is still a tick: up to a millisecond), and MQTT 5's
    /// connection is the loop's alone, so there the request is queued (`Ok(false)`) and goes
    /// out at the loop's next turn, a tick later.
    pub(super) async fn ping(&mut self) -> Result<bool, String> {
        match self {
            Loop::V3(l) => {
                let Some(network) = l.network.as_mut() else {
                    return Err("the connection is gone".into());
                };
                network
                    .write(rumqttc::Packet::PingReq)
                    .await
                    .map_err(|e| e.to_string())?;
                network.flush().await.map_err(|e| e.to_string())?;
                // As rumqttc's own ping would: its PINGRESP clears it.
                l.state.await_pingresp = true;
                Ok(true)
            }
            Loop::V5(l) => {
                l.pending.push_back(rumqttc::v5::Request::PingReq);
                Ok(false)
            }
        }
    }

    /// Whether a PINGREQ is written and not yet answered.
    pub(super) fn ping_unanswered(&self) -> bool {
        match self {
            Loop::V3(l) => l.state.await_pingresp,
            Loop::V5(l) => l.state.await_pingresp,
        }
    }

    /// The keep-alive in force: the one asked for, or one an MQTT 5 broker set in its CONNACK
    /// (Server Keep Alive).
    pub(super) fn keep_alive(&self) -> Duration {
        match self {
            Loop::V3(l) => l.mqtt_options.keep_alive(),
            Loop::V5(l) => l.options.keep_alive(),
        }
    }

    pub(super) fn ack(&mut self, client: &Client, incoming: &Incoming) {
        match (self, client, incoming) {
            (Loop::V3(l), Client::V3(c), Incoming::V3(p)) => {
                if let Err(rumqttc::ClientError::TryRequest(ack)) = c.try_ack(p) {
                    l.pending.push_back(ack);
                }
            }
            (Loop::V5(l), Client::V5(c), Incoming::V5(p)) => {
                if let Err(rumqttc::v5::ClientError::TryRequest(ack)) = c.try_ack(p) {
                    l.pending.push_back(ack);
                }
            }
            // One client and its loop are made together, of one version.
            _ => {}
        }
    }
}

fn polled_v3(event: rumqttc::Event) -> Polled {
    use rumqttc::Packet as P;
    let packet = match event {
        rumqttc::Event::Outgoing(o) => return Polled::Sent(o),
        rumqttc::Event::Incoming(packet) => packet,
    };
    match packet {
        P::Publish(p) => Polled::Message {
            topic: p.topic.clone(),
            payload: p.payload.clone(),
            incoming: Incoming::V3(Box::new(p)),
        },
        P::PubAck(a) => Polled::PubAck {
            pkid: a.pkid,
            refused: None,
        },
        P::PubRec(r) => Polled::PubRec {
            pkid: r.pkid,
            refused: None,
            reason: None,
        },
        P::PubComp(c) => Polled::PubComp { pkid: c.pkid },
        P::SubAck(ack) => Polled::SubAck {
            pkid: ack.pkid,
            refused: ack
                .return_codes
                .iter()
                .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure)),
        },
        P::UnsubAck(ack) => Polled::UnsubAck { pkid: ack.pkid },
        P::PingResp => Polled::PingResp,
        P::Disconnect => Polled::Disconnected {
            reason: "the broker disconnected".into(),
            taken_over: false,
        },
        _ => Polled::Other,
    }
}

fn polled_v5(event: rumqttc::v5::Event) -> Polled {
    use p5::Packet as P;
    let packet = match event {
        rumqttc::v5::Event::Outgoing(o) => return Polled::Sent(o),
        rumqttc::v5::Event::Incoming(packet) => packet,
    };
    match packet {
        // A topic that is not UTF-8 names nobody of this run; the driver says so.
        P::Publish(p) => Polled::Message {
            topic: String::from_utf8_lossy(&p.topic).into_owned(),
            payload: p.payload.clone(),
            incoming: Incoming::V5(Box::new(p)),
        },
        P::PubAck(a) => Polled::PubAck {
            pkid: a.pkid,
            refused: puback_refusal(&a.reason),
        },
        P::PubRec(r) => {
            let refused = pubrec_refusal(&r.reason);
            Polled::PubRec {
                pkid: r.pkid,
                refused,
                reason: refused.map(|_| format!("{:?}", r.reason)),
            }
        }
        P::PubComp(c) => Polled::PubComp { pkid: c.pkid },
        P::SubAck(ack) => Polled::SubAck {
            pkid: ack.pkid,
            refused: ack
                .return_codes
                .iter()
                .any(|c| !matches!(c, p5::SubscribeReasonCode::Success(_))),
        },
        P::UnsubAck(ack) => Polled::UnsubAck { pkid: ack.pkid },
        P::PingResp(_) => Polled::PingResp,
        P::ConnAck(c) => c
            .properties
            .and_then(|p| p.max_packet_size)
            .map_or(Polled::Other, Polled::MaxPacket),
        P::Disconnect(d) => Polled::Disconnected {
            taken_over: d.reason_code == p5::DisconnectReasonCode::SessionTakenOver,
            reason: format!("the broker disconnected: {:?}", d.reason_code),
        },
        _ => Polled::Other,
    }
}

/// "No matching subscribers" is a success code: the broker took the message and had nobody to
/// give it to (a recipient that is away with a clean session, or not yet connected).
fn puback_refusal(reason: &p5::PubAckReason) -> Option<Refusal> {
    use p5::PubAckReason as R;
    match reason {
        R::Success => None,
        R::NoMatchingSubscribers => Some(Refusal::NoSubscribers),
        R::QuotaExceeded => Some(Refusal::Busy),
        R::NotAuthorized | R::TopicNameInvalid => Some(Refusal::NotAllowed),
        _ => Some(Refusal::Other),
    }
}

fn pubrec_refusal(reason: &p5::PubRecReason) -> Option<Refusal> {
    use p5::PubRecReason as R;
    match reason {
        R::Success => None,
        R::NoMatchingSubscribers => Some(Refusal::NoSubscribers),
        R::QuotaExceeded => Some(Refusal::Busy),
        R::NotAuthorized | R::TopicNameInvalid => Some(Refusal::NotAllowed),
        _ => Some(Refusal::Other),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_publish_is_as_large_as_the_library_makes_it() {
        // Held against a broker's maximum: a byte short refuses a run that would have fitted.
        for (topic, payload) in [
            (10, 0),
            (12, 100),
            (20, 16_000),
            (30, 16_360),
            (9, 3_000_000),
        ] {
            let mut publish = p5::Publish::new(
                "t".repeat(topic),
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                vec![0u8; payload],
                None,
            );
            publish.pkid = 1;
            assert_eq!(
                super::publish_size(topic as u64, payload as u64),
                publish.size() as u64,
                "topic {topic}, payload {payload}"
            );
        }
    }

    #[test]
    fn a_refusals_reason_reads_as_words() {
        assert_eq!(
            super::in_words("BadUserNamePassword"),
            "bad user name password"
        );
        assert_eq!(super::in_words("NotAuthorized"), "not authorized");
    }

    #[test]
    fn a_refusal_counts_as_one_code_and_is_named_back_in_mqtts_words() {
        use super::{refusal_in_words, ErrorCode, Refusal};
        for refusal in [
            Refusal::Busy,
            Refusal::NotAllowed,
            Refusal::Other,
            Refusal::NoSubscribers,
        ] {
            let words = refusal_in_words(refusal.code());
            assert!(
                words.starts_with("the broker's acknowledgement said"),
                "{words}"
            );
        }
        assert!(refusal_in_words(ErrorCode::RECIPIENT_OFFLINE).contains("no matching subscribers"));
        // A code no acknowledgement gives keeps imbench's name.
        assert!(refusal_in_words(ErrorCode::BAD_TOKEN).contains("bad_token"));
    }

    use super::*;

    #[test]
    fn a_session_taken_over_is_told_from_another_disconnect() {
        let disconnect = |code| {
            polled_v5(rumqttc::v5::Event::Incoming(p5::Packet::Disconnect(
                p5::Disconnect::new(code),
            )))
        };
        let taken_over =
            |polled| matches!(polled, Polled::Disconnected { taken_over, .. } if taken_over);
        assert!(taken_over(disconnect(
            p5::DisconnectReasonCode::SessionTakenOver
        )));
        assert!(!taken_over(disconnect(
            p5::DisconnectReasonCode::ServerShuttingDown
        )));
    }

    #[test]
    fn mqtt_5_reason_codes_of_failure_are_refusals_and_no_subscribers_is_told_apart() {
        use p5::{PubAckReason as A, PubRecReason as R};
        for (reason, refusal) in [
            (A::Success, None),
            (A::NoMatchingSubscribers, Some(Refusal::NoSubscribers)),
            (A::QuotaExceeded, Some(Refusal::Busy)),
            (A::NotAuthorized, Some(Refusal::NotAllowed)),
            (A::UnspecifiedError, Some(Refusal::Other)),
        ] {
            assert_eq!(puback_refusal(&reason), refusal, "{reason:?}");
        }
        for (reason, refusal) in [
            (R::Success, None),
            (R::NoMatchingSubscribers, Some(Refusal::NoSubscribers)),
            (R::TopicNameInvalid, Some(Refusal::NotAllowed)),
        ] {
            assert_eq!(pubrec_refusal(&reason), refusal, "{reason:?}");
        }
    }

    #[test]
    fn the_target_s_version_picks_the_client() {
        let target = MqttTarget::parse("mqtt://127.0.0.1:1?version=5").unwrap();
        let (made, _loop) = client(&target, 1, true, std::time::Duration::from_secs(10));
        assert!(matches!(made, Client::V5(_)));
        let target = MqttTarget::parse("mqtt://127.0.0.1:1").unwrap();
        let (made, _loop) = client(&target, 1, true, std::time::Duration::from_secs(10));
        assert!(matches!(made, Client::V3(_)));
    }
}
