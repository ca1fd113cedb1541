//! Scenarios: what a run does, read from TOML (strictly: an unknown or misspelt field is an
//! error that names it), with command-line overrides applied in one place.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// (De)serializes a size distribution, `$dist`, derived with `remote = "$dist"`: as its table,
/// or from a bare size for its `Fixed` variant, with an error that shows both forms (`$table`
/// is an example table).
macro_rules! bare_size_or_table {
    ($dist:ident, $table:literal) => {
        impl Serialize for $dist {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                $dist::serialize(self, s)
            }
        }

        impl<'de> Deserialize<'de> for $dist {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                use serde::de::value::{F64Deserializer, I64Deserializer, StrDeserializer};
                struct Visit;
                impl<'de> serde::de::Visitor<'de> for Visit {
                    type Value = $dist;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str(concat!(
                            "a size such as \"100B\" or 100, or a table such as ",
                            $table
                        ))
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        map: A,
                    ) -> Result<$dist, A::Error> {
                        $dist::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$dist, E> {
                        size(StrDeserializer::new(v)).map(|bytes| $dist::Fixed { bytes })
                    }
                    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<$dist, E> {
                        Ok($dist::Fixed { bytes: v })
                    }
                    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<$dist, E> {
                        size(I64Deserializer::new(v)).map(|bytes| $dist::Fixed { bytes })
                    }
                    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<$dist, E> {
                        size(F64Deserializer::new(v)).map(|bytes| $dist::Fixed { bytes })
                    }
                }
                d.deserialize_any(Visit)
            }
        }
    };
}

/// The built-in twin of `scenarios/default.toml`, used when no scenario file is given.
pub const DEFAULT_SCENARIO: &str = include_str!("../../../scenarios/default.toml");

/// The most clients a load may have, over all its shards.
pub const MAX_CLIENTS: usize = 100_000_000;

/// What a scenario file without an `[slo]` table is judged on: every message accounted for.
/// A run that lost most of its messages is not called OK for want of an objective; an empty
/// `[slo]` table judges nothing.
pub const ACCOUNTING_SLOS: [&str; 3] = ["lost == 0", "duplicated == 0", "corrupted == 0"];

/// And every file, when the scenario sends files (an SLO on files is refused without them):
/// none corrupted, none failed, and none still on its way when the run ended (a file too
/// large for the run's drain, or a path too slow for it, was never measured, and a run in
/// which no file arrived is not OK).
pub const FILE_ACCOUNTING_SLOS: [&str; 3] = [
    "files_corrupted == 0",
    "files_failed == 0",
    "files_unfinished == 0",
];

/// Why a scenario is not usable.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("reading scenario {path}: {cause}")]
    Read {
        /// The file.
        path: String,
        /// The cause (in the message, not a separate source, so it is said once).
        cause: std::io::Error,
    },
    /// The TOML is malformed, has an unknown, missing or mistyped field, or a value that
    /// makes no sense.
    #[error("scenario {origin}: {message}")]
    Parse {
        /// File name or "built-in default".
        origin: String,
        /// What the TOML parser said, naming the field.
        message: String,
    },
    /// Values that parse but make no sense together.
    #[error("scenario: {0}")]
    Invalid(String),
    /// An SLO, from the scenario's [slo] or from --slo, does not parse.
    #[error(transparent)]
    Slo(#[from] crate::config::slo::SloError),
}

impl ScenarioError {
    /// What is wrong with an SLO of the scenario file `origin`, named with its file and table.
    pub fn in_slo_table(origin: &str, why: impl std::fmt::Display) -> Self {
        ScenarioError::Parse {
            origin: origin.to_string(),
            message: format!("[slo]: {why}"),
        }
    }
}

/// One load scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name used for the report folder.
    pub name: String,
    /// Simulated clients, each with its own connection.
    pub clients: usize,
    /// Clients start connecting spread evenly over this period.
    #[serde(with = "crate::config::duration")]
    pub ramp_up: Duration,
    /// After ramp-up, messages flow for this long before anything is recorded.
    #[serde(with = "crate::config::duration")]
    pub warmup: Duration,
    /// The measured period.
    #[serde(with = "crate::config::duration")]
    pub duration: Duration,
    /// After the last send, how long to wait at most for outstanding deliveries.
    #[serde(with = "crate::config::duration")]
    pub drain: Duration,
    /// Seed for every random choice (schedules, sizes, partners).
    pub seed: u64,
    /// Direct chats between clients (leave the section out, or set `rate = 0`, to switch
    /// them off).
    #[serde(default)]
    pub direct: DirectLoad,
    /// Group broadcasts (leave the section out, or set `count = 0`, to switch them off).
    #[serde(default)]
    pub groups: GroupLoad,
    /// File transfers (leave the section out, or set `rate = 0`, to switch them off).
    #[serde(default)]
    pub files: FilesLoad,
    /// Clients dropping their connections and coming back (leave the section out, or set
    /// `rate = 0`, to switch it off).
    #[serde(default)]
    pub churn: ConnectionChurn,
    /// How the generator itself behaves.
    #[serde(default)]
    pub generator: GeneratorOptions,
    /// QUIC settings, for the clients and for the embedded server alike.
    #[serde(default)]
    pub quic: QuicSettings,
    /// Service-level objectives: `"metric.stat" = "< 500ms"`, `lost = "== 0"`.
    #[serde(default, deserialize_with = "slo_table", serialize_with = "slo_list")]
    pub slo: Vec<String>,
    /// The emulated network path between clients and server (`[network]`); none is loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<crate::config::network::NetworkSection>,
    /// Of `slo`, those given by default because the file had no `[slo]` table
    /// ([`ACCOUNTING_SLOS`]) and still in force: an `--slo` on the same figure takes the place
    /// of its default, and a target that promises a loss lifts `lost == 0`.
    #[serde(skip)]
    pub default_slos: Vec<String>,
}

/// The direct-chat workload.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectLoad {
    /// Messages per second per client (0 switches direct chat off).
    pub rate: f64,
    /// Arrival process of each client's sends.
    pub arrival: Arrival,
    /// Body size distribution (the 36-byte measurement header included).
    pub size: SizeDist,
    /// How each client picks who it writes to.
    pub partners: Partners,
}

impl Default for DirectLoad {
    fn default() -> Self {
        Self {
            rate: 0.0,
            arrival: Arrival::Poisson,
            size: SizeDist::Fixed { bytes: 100 },
            partners: Partners::Random { count: 1 },
        }
    }
}

/// The group workload: groups drawn from the simulated clients, messages sent to them by some
/// of their members, and members leaving and rejoining while it runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupLoad {
    /// Number of groups (0 switches groups off).
    pub count: usize,
    /// Members per group.
    pub members: GroupSize,
    /// Members of each group that send to it, the first ones drawn (0: every member sends).
    pub senders: usize,
    /// Messages per second to each group, spread over its senders.
    pub rate: f64,
    /// Arrival process of each sender's messages.
    pub arrival: Arrival,
    /// Body size distribution (the 36-byte measurement header included).
    pub size: SizeDist,
    /// Membership churn while messages flow.
    pub churn: Churn,
}

impl Default for GroupLoad {
    fn default() -> Self {
        Self {
            count: 0,
            members: GroupSize::Fixed { size: 10 },
            senders: 0,
            rate: 1.0,
            arrival: Arrival::Poisson,
            size: SizeDist::Fixed { bytes: 100 },
            churn: Churn::default(),
        }
    }
}

/// The file-transfer workload: some clients send files to their contacts (the same contacts
/// as their direct chats) while everything else runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilesLoad {
    /// Transfers started per second, over all senders together (0 switches files off).
    pub rate: f64,
    /// Clients that send files: the first `senders` clients (0: every client).
    pub senders: usize,
    /// Arrival process of each sender's transfers.
    pub arrival: Arrival,
    /// File sizes.
    pub size: FileSize,
    /// Who receives a file. Only `"contact"` (one of the sender's direct-chat contacts): the
    /// reference server does not send files to groups.
    pub to: FileRecipients,
    /// Flip one byte in every n-th file after its digest was taken (0: never), to check that
    /// the recipients' verification catches it: each such file counts as corrupted.
    pub corrupt_every: u64,
}

impl Default for FilesLoad {
    fn default() -> Self {
        Self {
            rate: 0.0,
            senders: 0,
            arrival: Arrival::Poisson,
            size: FileSize::LogUniform {
                min: 10 * 1024,
                max: 10 * 1024 * 1024,
            },
            to: FileRecipients::Contact,
            corrupt_every: 0,
        }
    }
}

/// File sizes: a table (`{ dist = "log_uniform", min = "10KiB", max = "20MiB" }`), or a bare
/// size (`"1MiB"`) for a fixed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "dist",
    rename_all = "snake_case",
    deny_unknown_fields,
    remote = "FileSize"
)]
pub enum FileSize {
    /// Every file the same size.
    Fixed {
        /// Size, e.g. `"1MiB"`.
        #[serde(deserialize_with = "size")]
        bytes: u64,
    },
    /// Log-uniform between two sizes: as many files between 10 and 100 KiB as between 1 and
    /// 10 MiB, as with pictures, documents and videos together.
    LogUniform {
        /// Smallest.
        #[serde(deserialize_with = "size")]
        min: u64,
        /// Largest.
        #[serde(deserialize_with = "size")]
        max: u64,
    },
}

bare_size_or_table!(
    FileSize,
    "{ dist = \"log_uniform\", min = \"10KiB\", max = \"20MiB\" }"
);

/// Who receives files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileRecipients {
    /// One of the sender's contacts, drawn per file.
    Contact,
}

/// How many members a group has.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "dist",
    rename_all = "snake_case",
    deny_unknown_fields,
    remote = "GroupSize"
)]
pub enum GroupSize {
    /// Every group the same size.
    Fixed {
        /// Members.
        size: usize,
    },
    /// Uniform between two sizes, inclusive.
    Uniform {
        /// Smallest.
        min: usize,
        /// Largest.
        max: usize,
    },
    /// Zipf between two sizes: size s is drawn with weight 1/s^exponent, so most groups are
    /// small and a few are large, as in real messaging systems.
    Zipf {
        /// Smallest.
        min: usize,
        /// Largest.
        max: usize,
        /// Skew; 1.0 is classic Zipf.
        #[serde(default = "one")]
        exponent: f64,
    },
}

fn one() -> f64 {
    1.0
}

/// Group sizes: a table (`{ dist = "zipf", min = 3, max = 500 }`), or a bare count (`10`)
/// for a fixed one, as sizes in bytes may be bare.
impl Serialize for GroupSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        GroupSize::serialize(self, s)
    }
}

impl<'de> Deserialize<'de> for GroupSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = GroupSize;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a number of members such as 10, or a table such as { dist = \"zipf\", min = 3, max = 500 }",
                )
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<GroupSize, A::Error> {
                GroupSize::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<GroupSize, E> {
                usize::try_from(v)
                    .map(|size| GroupSize::Fixed { size })
                    .map_err(|_| {
                        E::custom(format!("{v} members is more than this machine can count"))
                    })
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<GroupSize, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!(
                        "a number of members is not negative, got {v}"
                    ))),
                }
            }
        }
        d.deserialize_any(Visit)
    }
}

/// Members leaving and rejoining during the run.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Churn {
    /// Members of each group that churn (drawn from those that do not send).
    pub members: usize,
    /// Membership changes (a Leave or a rejoin) per second per group, over its churning
    /// members together.
    pub rate: f64,
}

/// Clients that drop their connection and reconnect after a while.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionChurn {
    /// Share of clients that churn, from 0 to 1; which ones is drawn from the seed.
    pub fraction: f64,
    /// Disconnects per second, over all churning clients together (exponential gaps).
    pub rate: f64,
    /// How long a client stays away before it connects again.
    #[serde(with = "crate::config::duration")]
    pub offline: Duration,
    /// Share of disconnects that are abrupt (the transport is closed at once, with no Bye and
    /// whatever was unread thrown away), from 0 to 1; the others say Bye and wait for the
    /// server to close.
    pub abrupt: f64,
    /// Share of disconnects that are handovers, from 0 to 1: the client changes networks (from
    /// Wi-Fi to its mobile network, say), its old address is gone at once and the new one
    /// works after `offline`. A QUIC client moves its connection to the new address and
    /// carries on (connection migration); over the other transports the connection is lost
    /// with its address and the client connects again. Either way the messages due meanwhile
    /// are still owed: they go out late, and their latency shows it. Outages need an emulated
    /// path (`[network]`); without one the new address works at once.
    #[serde(default)]
    pub handover: f64,
}

impl Default for ConnectionChurn {
    fn default() -> Self {
        Self {
            fraction: 0.0,
            rate: 0.0,
            offline: Duration::from_millis(500),
            abrupt: 0.5,
            handover: 0.0,
        }
    }
}

impl ConnectionChurn {
    /// Whether any client churns.
    pub fn enabled(&self) -> bool {
        self.fraction > 0.0 && self.rate > 0.0
    }

    /// When `rate` is more than the churning clients of `clients` can make (a client away for
    /// `offline` drops at most once in it): how many they are, about, and the most drops a
    /// second they make together, dropping again as soon as each is back.
    pub fn beyond_reach(&self, clients: usize) -> Option<(f64, f64)> {
        let churning = (clients as f64 * self.fraction).max(1.0);
        let most = churning / self.offline.as_secs_f64();
        (self.enabled() && self.rate > most).then_some((churning, most))
    }
}

/// When a client's messages are due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    /// Exponential gaps: independent sends at the mean rate.
    Poisson,
    /// Equal gaps, with a random phase per client.
    Constant,
}

/// Body sizes: a table (`{ dist = "fixed", bytes = "100B" }`), or a bare size (`"100B"`,
/// `100`) for a fixed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "dist",
    rename_all = "snake_case",
    deny_unknown_fields,
    remote = "SizeDist"
)]
pub enum SizeDist {
    /// Every body the same size.
    Fixed {
        /// Size, e.g. `"100B"` or `100`.
        #[serde(deserialize_with = "size")]
        bytes: u64,
    },
    /// Uniform between two sizes, inclusive.
    Uniform {
        /// Smallest.
        #[serde(deserialize_with = "size")]
        min: u64,
        /// Largest.
        #[serde(deserialize_with = "size")]
        max: u64,
    },
}

bare_size_or_table!(
    SizeDist,
    "{ dist = \"uniform\", min = \"100B\", max = \"1KiB\" }"
);

/// Chat partners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "pick", rename_all = "snake_case", deny_unknown_fields)]
pub enum Partners {
    /// `count` distinct contacts drawn at random per client; each message goes to one of them.
    Random {
        /// Contacts per client.
        count: usize,
    },
    /// Client i writes to clients i+1 … i+count (wrapping).
    Ring {
        /// Contacts per client.
        count: usize,
    },
}

/// QUIC transport settings a user may want to compare. Each default is quinn's own, except
/// keep-alive, which imbench turns on so that idle simulated clients stay connected, and ACK
/// frequency, which it asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuicSettings {
    /// `"cubic"` (default), `"new_reno"` or `"bbr"`.
    pub congestion: CongestionName,
    /// Per-stream receive window (flow control), e.g. `"1MiB"`; unset keeps quinn's 1.25 MB.
    #[serde(deserialize_with = "opt_size", skip_serializing_if = "Option::is_none")]
    pub stream_receive_window: Option<u64>,
    /// Whole-connection receive window; unset keeps quinn's (unlimited).
    #[serde(deserialize_with = "opt_size", skip_serializing_if = "Option::is_none")]
    pub receive_window: Option<u64>,
    /// Interleave streams fairly (true, default) or send each stream's data in turn.
    pub send_fairness: bool,
    /// Keep-alive interval, or `"off"`.
    pub keep_alive: String,
    /// Close a connection idle this long.
    #[serde(with = "crate::config::duration")]
    pub idle_timeout: Duration,
    /// `"one"` (default): every frame on one long-lived stream per client, in order.
    /// `"per_message"`: each message on a unidirectional stream of its own.
    pub streams: StreamMode,
    /// ACK frequency the clients ask of the server (and, embedded, the server of the clients):
    /// ack-eliciting packets received before an ACK is due, or `"off"` for RFC 9000's every
    /// second packet. Default 8 (imbench's choice, not quinn's; see docs/transports.md).
    pub ack_frequency: AckFrequency,
}

/// `quic.ack_frequency`: the threshold to ask for (a packet count from 0 to
/// [`imbench_transport::quic::MAX_ACK_FREQUENCY`]), `None` for `"off"`. Read as the server's
/// `--quic-ack-frequency` is, whether written as a number or a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckFrequency(pub Option<u32>);

impl Serialize for AckFrequency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(n) => s.serialize_u32(n),
            None => s.serialize_str("off"),
        }
    }
}

impl<'de> Deserialize<'de> for AckFrequency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = AckFrequency;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a packet count or \"off\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<AckFrequency, E> {
                imbench_transport::quic::parse_ack_frequency(v)
                    .map(AckFrequency)
                    .map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<AckFrequency, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<AckFrequency, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<AckFrequency, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<AckFrequency, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(Visit)
    }
}

/// How a QUIC client lays its messages on streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamMode {
    /// One long-lived bidirectional stream per client.
    One,
    /// A unidirectional stream per message (replies still come on the long-lived stream).
    PerMessage,
}

impl Default for QuicSettings {
    fn default() -> Self {
        Self {
            congestion: CongestionName::Cubic,
            stream_receive_window: None,
            receive_window: None,
            send_fairness: true,
            keep_alive: "10s".into(),
            idle_timeout: Duration::from_secs(60),
            streams: StreamMode::One,
            ack_frequency: AckFrequency(Some(imbench_transport::quic::DEFAULT_ACK_FREQUENCY)),
        }
    }
}

/// A congestion controller by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CongestionName {
    /// CUBIC.
    Cubic,
    /// NewReno.
    NewReno,
    /// BBR.
    Bbr,
}

impl QuicSettings {
    /// These settings on top of `base`.
    pub fn apply(
        &self,
        base: &imbench_transport::QuicOptions,
    ) -> Result<imbench_transport::QuicOptions, ScenarioError> {
        use imbench_transport::quic::Congestion;
        let bad = |m: String| ScenarioError::Invalid(m);
        let window = |name: &str, v: Option<u64>| -> Result<Option<u32>, ScenarioError> {
            v.map(|w| {
                u32::try_from(w).ok().filter(|w| *w >= 1024).ok_or_else(|| {
                    let unit = if w == 1 { "byte" } else { "bytes" };
                    bad(format!("quic.{name}: {w} {unit} is outside 1KiB..4GiB"))
                })
            })
            .transpose()
        };
        let keep_alive = match self.keep_alive.trim() {
            "off" | "none" => None,
            text => Some(crate::config::duration::parse(text).map_err(|e| {
                bad(format!(
                    "quic.keep_alive: {e} (a duration such as \"10s\", or \"off\")"
                ))
            })?),
        };
        // Shorter, every idle client sends more keep-alives than a chatting one sends messages
        // (at 0 without a pause), and the run measures its own keep-alives.
        if let Some(k) = keep_alive.filter(|k| *k < MIN_KEEP_ALIVE) {
            return Err(bad(format!(
                "quic.keep_alive is at least {} (or \"off\"), got {}",
                humantime::format_duration(MIN_KEEP_ALIVE),
                humantime::format_duration(k)
            )));
        }
        // Shorter, a client is dropped between two of its messages.
        if self.idle_timeout < MIN_IDLE_TIMEOUT {
            return Err(bad(format!(
                "quic.idle_timeout is at least {}, got {}",
                humantime::format_duration(MIN_IDLE_TIMEOUT),
                humantime::format_duration(self.idle_timeout)
            )));
        }
        if keep_alive.is_some_and(|k| k >= self.idle_timeout) {
            return Err(bad(
                "quic.keep_alive must be shorter than quic.idle_timeout".into(),
            ));
        }
        Ok(imbench_transport::QuicOptions {
            congestion: match self.congestion {
                CongestionName::Cubic => Congestion::Cubic,
                CongestionName::NewReno => Congestion::NewReno,
                CongestionName::Bbr => Congestion::Bbr,
            },
            stream_receive_window: window("stream_receive_window", self.stream_receive_window)?
                .or(base.stream_receive_window),
            receive_window: window("receive_window", self.receive_window)?.or(base.receive_window),
            send_fairness: self.send_fairness,
            stream_per_message: self.streams == StreamMode::PerMessage,
            keep_alive,
            idle_timeout: self.idle_timeout,
            ack_frequency: self.ack_frequency.0,
            ..base.clone()
        })
    }
}

fn opt_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    size(d).map(Some)
}

/// Generator settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeneratorOptions {
    /// Connections being set up at once.
    pub connect_concurrency: usize,
    /// A connection (handshake + Hello + Welcome) that takes longer fails the run.
    #[serde(with = "crate::config::duration")]
    pub connect_timeout: Duration,
    /// The run counts as saturated (invalid) when the generator's schedule lag p99 exceeds
    /// this: its own lateness would then distort the latency figures.
    #[serde(with = "crate::config::duration")]
    pub max_schedule_lag: Duration,
    /// UDP endpoints the QUIC clients share; 0 picks one per 1,000 clients (at most 16).
    pub endpoints: usize,
    /// A run whose messages go unanswered this long (the server stopped or hung) is stopped
    /// and reported as invalid.
    #[serde(with = "crate::config::duration")]
    pub answer_timeout: Duration,
    /// Connections started per second at most; 0 picks a rate by transport (see
    /// [`GeneratorOptions::connect_rate_for`]). A ramp-up shorter than clients / rate is
    /// stretched to it, and the run says so.
    pub connect_rate: f64,
    /// How sends wait for their time: `precise` (a timer thread, µs), `tokio` (1 ms wheel),
    /// or `auto` (precise at light load; see [`PRECISE_TIMER_MAX_SENDS_PER_S`]).
    pub timer: TimerKind,
    /// The run is invalid when the CPUs it may use were busier than this share (0 to 1) over
    /// the measured period, whoever kept them busy: the machine, not the server, then set the
    /// figures. 1.0 turns the check off.
    pub max_cpu_busy: f64,
    /// The run is invalid when this process's threads waited longer than this for a CPU, on
    /// average, each time they became runnable: the CPUs were shared with more work than they
    /// could do at once.
    #[serde(with = "crate::config::duration")]
    pub max_cpu_wait: Duration,
    /// The run is invalid when the machine paused this process for longer than this during the
    /// measured period (the `hiccup` figure's maximum): every latency figure then holds a
    /// pause of the machine's as long as that.
    #[serde(with = "crate::config::duration")]
    pub max_hiccup: Duration,
    /// What a client does when it connects again (`[churn]`): resume its own TLS session
    /// (`ticket`, what real clients do), also send Hello as 0-RTT data over QUIC (`0rtt`), or
    /// do a full handshake every time (`off`). A first connection is always a full handshake.
    /// Over plain TCP and WS there is no session to resume.
    pub resumption: ResumptionName,
}

/// Session resumption by name (also the `--resumption` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
pub enum ResumptionName {
    /// A full handshake on every connection.
    #[serde(rename = "off")]
    #[value(name = "off")]
    Off,
    /// A reconnect offers the client's own session ticket.
    #[default]
    #[serde(rename = "ticket")]
    #[value(name = "ticket")]
    Ticket,
    /// As ticket, and over QUIC Hello goes out as 0-RTT data.
    #[serde(rename = "0rtt", alias = "0-rtt")]
    #[value(name = "0rtt", alias = "0-rtt")]
    ZeroRtt,
}

impl ResumptionName {
    /// The name scenarios and `--resumption` use.
    pub fn name(self) -> &'static str {
        imbench_transport::Resumption::from(self).name()
    }
}

impl From<ResumptionName> for imbench_transport::Resumption {
    fn from(name: ResumptionName) -> Self {
        use imbench_transport::Resumption;
        match name {
            ResumptionName::Off => Resumption::Off,
            ResumptionName::Ticket => Resumption::Ticket,
            ResumptionName::ZeroRtt => Resumption::ZeroRtt,
        }
    }
}

/// How the generator waits for a send's intended time (also the `--timer` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    // The doc line is also `--help`'s text, which shows no links: the figure is
    // PRECISE_TIMER_MAX_SENDS_PER_S, written out.
    /// `precise` up to 2,000 sends a second from this generator, `tokio` above.
    #[default]
    Auto,
    /// A timer thread with 1 ns slack that wakes each send a learned lead early, and a short
    /// spin on the worker to the exact moment.
    Precise,
    /// tokio's timer: 1 ms resolution, no extra thread.
    Tokio,
}

/// The send rate up to which `timer = "auto"` picks the precise timer. Each precise wait is a
/// wake-up of its own, where tokio's wheel wakes once a millisecond for every send due: at
/// 10,000 sends a second the precise timer measured 4.1–4.8 wake-ups of the process per
/// message against 0.8, 137–149 µs of CPU per message against 101–107, and one-second stalls
/// of 17–29 ms in three runs of five; at 1,000 and 2,000 a second none of that showed.
pub const PRECISE_TIMER_MAX_SENDS_PER_S: f64 = 2_000.0;

impl TimerKind {
    /// The name scenarios and report.json use.
    pub fn name(self) -> &'static str {
        match self {
            TimerKind::Auto => "auto",
            TimerKind::Precise => "precise",
            TimerKind::Tokio => "tokio",
        }
    }

    /// The timer a generator sending `sends_per_s` uses: `Auto` decided.
    pub fn resolve(self, sends_per_s: f64) -> TimerKind {
        match self {
            TimerKind::Auto if sends_per_s <= PRECISE_TIMER_MAX_SENDS_PER_S => TimerKind::Precise,
            TimerKind::Auto => TimerKind::Tokio,
            other => other,
        }
    }
}

/// Default [`GeneratorOptions::max_hiccup`]. An idle 2-vCPU VM here pauses a process for 1 to
/// 8 ms a few dozen times a minute, which the figure shows; a pause this long is rare enough
/// that a run holding one measured the machine.
pub const DEFAULT_MAX_HICCUP: Duration = Duration::from_millis(50);

/// Connections a second the generator starts at most, by default, over handshakes with TLS
/// (QUIC, TLS, WSS): about a third of what one server endpoint completed on a 2-core machine
/// while also serving the clients already connected.
pub const DEFAULT_CONNECT_RATE_TLS: f64 = 1_000.0;

/// The same over plain TCP and WebSocket, whose handshakes cost no cryptography.
pub const DEFAULT_CONNECT_RATE_PLAIN: f64 = 5_000.0;

impl Default for GeneratorOptions {
    fn default() -> Self {
        Self {
            connect_concurrency: 256,
            connect_timeout: Duration::from_secs(10),
            max_schedule_lag: Duration::from_millis(10),
            endpoints: 0,
            answer_timeout: Duration::from_secs(10),
            connect_rate: 0.0,
            timer: TimerKind::Auto,
            max_cpu_busy: 0.9,
            max_cpu_wait: Duration::from_micros(500),
            max_hiccup: DEFAULT_MAX_HICCUP,
            resumption: ResumptionName::Ticket,
        }
    }
}

impl GeneratorOptions {
    /// The connect rate in force for `transport`: the scenario's, or the default for it.
    pub fn connect_rate_for(&self, transport: imbench_transport::Transport) -> f64 {
        if self.connect_rate > 0.0 {
            return self.connect_rate;
        }
        // A TLS handshake is what costs.
        if transport.uses_tls() {
            DEFAULT_CONNECT_RATE_TLS
        } else {
            DEFAULT_CONNECT_RATE_PLAIN
        }
    }
}

/// The shortest `quic.keep_alive`.
pub const MIN_KEEP_ALIVE: Duration = Duration::from_millis(100);

/// The shortest `quic.idle_timeout`.
pub const MIN_IDLE_TIMEOUT: Duration = Duration::from_secs(1);

/// The shortest measured period a run may have.
pub const MIN_DURATION: Duration = Duration::from_millis(100);

/// The longest any one of a scenario's times may be: a year is past any run's length, and a
/// deadline much further off than that would overflow the clock it is added to.
pub const MAX_SPAN: Duration = Duration::from_secs(366 * 24 * 3600);

/// Command-line values that replace the scenario's.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--clients`
    pub clients: Option<usize>,
    /// `--duration`
    pub duration: Option<Duration>,
    /// `--warmup`
    pub warmup: Option<Duration>,
    /// `--ramp-up`
    pub ramp_up: Option<Duration>,
    /// `--drain`
    pub drain: Option<Duration>,
    /// `--seed`
    pub seed: Option<u64>,
    /// `--rate`
    pub rate: Option<f64>,
    /// `--group-rate`
    pub group_rate: Option<f64>,
    /// `--slo`, added to the scenario's.
    pub slo: Vec<String>,
    /// `--connect-rate`
    pub connect_rate: Option<f64>,
    /// `--timer`
    pub timer: Option<TimerKind>,
    /// `--resumption`
    pub resumption: Option<ResumptionName>,
    /// `--network`: a named path, replacing the scenario's `[network]`.
    pub network: Option<String>,
}

impl Overrides {
    /// The flags given that change the load or its times, as typed (`--clients 30`), for an
    /// error they cause: the file alone was fine.
    fn given(&self) -> Vec<String> {
        let time = |d: &Option<Duration>| d.map(|d| humantime::format_duration(d).to_string());
        [
            ("--clients", self.clients.map(|v| v.to_string())),
            ("--duration", time(&self.duration)),
            ("--warmup", time(&self.warmup)),
            ("--ramp-up", time(&self.ramp_up)),
            ("--drain", time(&self.drain)),
            ("--rate", self.rate.map(|v| v.to_string())),
            ("--group-rate", self.group_rate.map(|v| v.to_string())),
            ("--connect-rate", self.connect_rate.map(|v| v.to_string())),
            ("--network", self.network.clone()),
        ]
        .into_iter()
        .filter_map(|(flag, value)| value.map(|v| format!("{flag} {v}")))
        .collect()
    }
}

/// The smallest body: the measurement header every message carries (its layout is in
/// `workload::body`: intended and actual send time, sender, sequence number, checksum).
pub const MIN_BODY: u64 = 36;

/// Most sends a second one scenario may ask for, over all clients: ten times what one
/// generator process sends on a large machine. Past it a typo (`--rate 1e30`) would be
/// scheduled, not refused.
pub const MAX_SENDS_PER_S: f64 = 10_000_000.0;

impl Scenario {
    /// What makes two runs' loads one: the shards of one load must agree on each (a merge
    /// refuses reports that do not, and the shards' run tag is made of them). Settings each
    /// process may set for itself (its ramp-up, stretched to its own clients; its generator's
    /// options; its drain, SLOs and network) are not among them.
    pub fn load_fields(&self) -> [(&'static str, String); 8] {
        [
            ("scenario", self.name.clone()),
            ("seed", self.seed.to_string()),
            ("clients", self.clients.to_string()),
            ("direct.rate", self.direct.rate.to_string()),
            ("groups.rate", self.groups.rate.to_string()),
            ("groups.count", self.groups.count.to_string()),
            ("files.rate", self.files.rate.to_string()),
            ("duration", format!("{:?}", self.duration)),
        ]
    }
}

impl Scenario {
    /// Sends a second this scenario's schedules ask of `clients` of its clients: direct
    /// messages, group messages (each group's rate is shared by its senders, so a share of
    /// the clients sends that share of it) and file offers.
    pub fn sends_per_s(&self, clients: usize) -> f64 {
        let share = clients as f64 / self.clients.max(1) as f64;
        let groups = self.groups.count as f64 * self.groups.rate;
        clients as f64 * self.direct.rate + share * (groups + self.files.rate)
    }

    /// Reads and checks a scenario file. A file without an `[slo]` table is judged on
    /// [`ACCOUNTING_SLOS`] (and [`FILE_ACCOUNTING_SLOS`] when it sends files); a scenario
    /// made with [`Scenario::from_toml`] has no SLO it does not give.
    pub fn from_file(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ScenarioError::Read {
            path: path.display().to_string(),
            cause,
        })?;
        let mut scenario = Self::from_toml(&text, &path.display().to_string())?;
        // Read as the scenario was, field by field: as a `toml::Table` a file with an integer
        // past i64 (a `connect_concurrency` of u64::MAX, the documented "no limit") would not
        // parse, and its SLOs would be dropped for the default ones.
        #[derive(serde::Deserialize)]
        struct SloTable {
            slo: Option<serde::de::IgnoredAny>,
        }
        let has_slo_table = toml::from_str::<SloTable>(&text).map_or(true, |t| t.slo.is_some());
        if !has_slo_table {
            let files = if scenario.files.rate > 0.0 {
                &FILE_ACCOUNTING_SLOS[..]
            } else {
                &[]
            };
            scenario.slo = ACCOUNTING_SLOS
                .iter()
                .chain(files)
                .map(|e| e.to_string())
                .collect();
            scenario.default_slos = scenario.slo.clone();
        }
        Ok(scenario)
    }

    /// The SLO on `figure` when it is one given by default and still in force.
    pub fn default_slo_on(&self, figure: &str) -> Option<&String> {
        self.default_slos
            .iter()
            .find(|e| slo_figure(e).as_deref() == Some(figure))
    }

    /// Lifts the SLO on `figure` when it is one given by default; whether it was.
    pub fn lift_default_slo(&mut self, figure: &str) -> bool {
        let Some(expr) = self.default_slo_on(figure).cloned() else {
            return false;
        };
        self.default_slos.retain(|e| *e != expr);
        self.slo.retain(|e| *e != expr);
        true
    }

    /// The built-in default scenario.
    pub fn builtin_default() -> Self {
        // The file is part of the source and covered by a test; it always parses.
        Self::from_toml(DEFAULT_SCENARIO, "built-in default")
            .unwrap_or_else(|e| panic!("built-in scenario is broken: {e}"))
    }

    /// Parses and checks TOML; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ScenarioError> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        // A value that makes no sense is named with the file it is in, as a typo is.
        scenario.validate().map_err(|e| match e {
            ScenarioError::Invalid(message) => ScenarioError::Parse {
                origin: origin.to_string(),
                message,
            },
            ScenarioError::Slo(e) => ScenarioError::in_slo_table(origin, e),
            other => other,
        })?;
        Ok(scenario)
    }

    /// Applies command-line overrides, then checks the result again.
    pub fn apply(&mut self, o: &Overrides) -> Result<(), ScenarioError> {
        if let Some(v) = o.clients {
            self.clients = v;
        }
        if let Some(v) = o.duration {
            self.duration = v;
        }
        if let Some(v) = o.warmup {
            self.warmup = v;
        }
        if let Some(v) = o.ramp_up {
            self.ramp_up = v;
        }
        if let Some(v) = o.drain {
            self.drain = v;
        }
        if let Some(v) = o.seed {
            self.seed = v;
        }
        if let Some(v) = o.rate {
            self.direct.rate = v;
        }
        if let Some(v) = o.group_rate {
            self.groups.rate = v;
        }
        if let Some(v) = o.connect_rate {
            self.generator.connect_rate = v;
        }
        if let Some(name) = &o.network {
            self.network = Some(crate::config::network::NetworkSection::named(name));
        }
        if let Some(v) = o.resumption {
            self.generator.resumption = v;
        }
        if let Some(v) = o.timer {
            self.generator.timer = v;
        }
        // A flag on a figure the defaults judge says what the user wants of it.
        for flag in &o.slo {
            if let Some(figure) = slo_figure(flag) {
                self.lift_default_slo(&figure);
            }
        }
        // The same objective from a flag and from the file (or given twice) is judged once.
        let spelled = |e: &str| crate::config::slo::Slo::parse(e).map_or(e.to_string(), |s| s.expr);
        // Kept as the file's are spelled (`lost == 0` for `lost==0`), so that lists of them
        // read alike.
        for expr in &o.slo {
            if !self
                .slo
                .iter()
                .any(|e| crate::config::slo::Slo::same_expr(e, expr))
            {
                self.slo.push(spelled(expr));
            }
        }
        self.validate().map_err(|e| match e {
            // The file's own values were checked as it was read: the flags made this.
            ScenarioError::Invalid(why) if !o.given().is_empty() => {
                ScenarioError::Invalid(format!("{why} (with {})", o.given().join(" ")))
            }
            e => e,
        })
    }

    /// Checks values that TOML types cannot.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |m: String| Err(ScenarioError::Invalid(m));
        if self.clients == 0 {
            return bad("clients must be at least 1".into());
        }
        // It names the report folder and heads every table.
        if self.name.trim().is_empty() {
            return bad("name must not be empty or only blanks".into());
        }
        // A line break or a tab in it would break every heading and table it begins.
        if self.name.chars().any(char::is_control) {
            return bad(format!(
                "name {:?} holds a line break or another control character: give it on one line",
                self.name
            ));
        }
        // Every shard holds a slot per client of the whole load; past this the sizes the run
        // works out (memory, files, the ramp-up) stop meaning anything.
        if self.clients > MAX_CLIENTS {
            return bad(format!(
                "clients must be at most {MAX_CLIENTS} over all shards together, got {}",
                self.clients
            ));
        }
        // A measured period shorter than this holds a handful of sends at most, and the CPU
        // shares of so short a window are noise (a microsecond "used" 194 cores).
        if self.duration < MIN_DURATION {
            return bad(format!(
                "duration must be at least {}, got {}",
                humantime::format_duration(MIN_DURATION),
                humantime::format_duration(self.duration)
            ));
        }
        let g = &self.generator;
        for (name, value) in [
            ("ramp_up", self.ramp_up),
            ("warmup", self.warmup),
            ("duration", self.duration),
            ("drain", self.drain),
            ("churn.offline", self.churn.offline),
            ("quic.idle_timeout", self.quic.idle_timeout),
            ("generator.connect_timeout", g.connect_timeout),
            ("generator.max_schedule_lag", g.max_schedule_lag),
            ("generator.answer_timeout", g.answer_timeout),
            ("generator.max_cpu_wait", g.max_cpu_wait),
            ("generator.max_hiccup", g.max_hiccup),
        ] {
            if value > MAX_SPAN {
                return bad(format!(
                    "{name} must be at most {} days, got {:.1} days",
                    MAX_SPAN.as_secs() / (24 * 3600),
                    value.as_secs_f64() / (24.0 * 3600.0)
                ));
            }
        }
        check_rate("direct.rate", self.direct.rate)?;
        check_size("direct.size", self.direct.size)?;
        if let Some(n) = &self.network {
            if let Some(path) = n.path().map_err(ScenarioError::Invalid)? {
                // A login takes two round trips at least (the transport's handshake, then the
                // login itself).
                super::network::check_login_round_trips(
                    &path,
                    self.generator.connect_timeout,
                    2,
                    "a login takes two",
                )
                .map_err(ScenarioError::Invalid)?;
            }
        }
        self.validate_groups()?;
        self.validate_files()?;
        self.validate_churn()?;
        let count = match self.direct.partners {
            Partners::Random { count } | Partners::Ring { count } => count,
        };
        if count == 0 && self.direct.rate > 0.0 {
            return bad("direct.partners.count must be at least 1".into());
        }
        if count >= self.clients && self.direct.rate > 0.0 {
            return bad(format!(
                "{} too few for direct.partners.count = {count}: each client writes to {count} \
                 others, so this scenario needs at least {} clients (or a smaller \
                 direct.partners.count in a scenario file)",
                if self.clients == 1 {
                    "1 client is".to_string()
                } else {
                    format!("{} clients are", self.clients)
                },
                count + 1
            ));
        }
        let sends = self.sends_per_s(self.clients);
        if sends > MAX_SENDS_PER_S {
            return bad(format!(
                "this scenario asks for {sends:.3e} sends a second over its {} clients; one \
                 scenario may ask for at most {MAX_SENDS_PER_S:.0} (lower direct.rate, \
                 groups.rate or files.rate, or --rate / --group-rate)",
                self.clients
            ));
        }
        self.quic
            .apply(&imbench_transport::QuicOptions::default())?;
        let g = &self.generator;
        if g.connect_concurrency == 0 {
            return bad("generator.connect_concurrency must be at least 1".into());
        }
        if !(g.connect_rate.is_finite() && (g.connect_rate == 0.0 || g.connect_rate >= 0.1)) {
            return bad(format!(
                "generator.connect_rate must be 0 (automatic) or at least 0.1 connections a second, got {}",
                g.connect_rate
            ));
        }
        if !(g.max_cpu_busy > 0.0 && g.max_cpu_busy <= 1.0) {
            return bad(format!(
                "generator.max_cpu_busy is a share of the CPUs, above 0 and at most 1, got {}",
                g.max_cpu_busy
            ));
        }
        if g.max_cpu_wait.is_zero() {
            return bad("generator.max_cpu_wait must be more than 0".into());
        }
        if g.connect_timeout.is_zero() {
            return bad("generator.connect_timeout must be more than 0".into());
        }
        if g.max_schedule_lag.is_zero() {
            return bad("generator.max_schedule_lag must be more than 0".into());
        }
        // The watchdog looks once a second: a shorter limit would stop a run whose server
        // merely had nothing to answer between two looks.
        if g.answer_timeout < Duration::from_secs(1) {
            return bad(format!(
                "generator.answer_timeout is at least 1s, got {}",
                humantime::format_duration(g.answer_timeout)
            ));
        }
        if g.max_hiccup.is_zero() {
            return bad("generator.max_hiccup must be more than 0".into());
        }
        // The shape only: the names and what each may be compared with are checked against
        // the report's figures before a run (`run::check_slo_names`), where the advice can
        // name what a figure is.
        for expr in &self.slo {
            crate::config::slo::Slo::split(expr)?;
        }
        Ok(())
    }

    fn validate_groups(&self) -> Result<(), ScenarioError> {
        let bad = |m: String| Err(ScenarioError::Invalid(m));
        let g = &self.groups;
        // Checked without groups too: --group-rate nan is a mistake whatever the scenario.
        check_rate("groups.rate", g.rate)?;
        if g.count == 0 {
            return Ok(());
        }
        // Group ids leave room for this many groups above each plan's first (`GroupPlan`).
        if g.count > 1 << 24 {
            return bad(format!(
                "groups.count is at most 16,777,216, got {}",
                g.count
            ));
        }
        check_size("groups.size", g.size)?;
        let (lo, hi) = g.members.bounds();
        if lo < 2 {
            return bad("groups.members: a group needs at least 2 members".into());
        }
        if lo > hi {
            return bad(format!("groups.members: min {lo} is above max {hi}"));
        }
        if let GroupSize::Zipf { exponent, .. } = g.members {
            if !(exponent.is_finite() && exponent > 0.0) {
                return bad(format!(
                    "groups.members.exponent must be above 0, got {exponent}"
                ));
            }
        }
        let server_max = imbench_server::Limits::default().max_group_members;
        if hi > server_max {
            return bad(format!(
                "groups.members: {hi} is above the server's {server_max}-member limit"
            ));
        }
        if hi > self.clients {
            return bad(format!(
                "groups.members: groups of up to {hi} need at least that many clients, not {}",
                self.clients
            ));
        }
        if g.senders > lo {
            return bad(format!(
                "groups.senders is {} but the smallest group has {lo} members",
                g.senders
            ));
        }
        if g.churn.members > 0 {
            let senders = if g.senders == 0 { lo } else { g.senders };
            if g.churn.members + senders > lo {
                return bad(format!(
                    "groups.churn.members is {} but the smallest group has {lo} members, {senders} of them senders (churning members do not send)",
                    g.churn.members
                ));
            }
        }
        check_rate("groups.churn.rate", g.churn.rate)?;
        if g.churn.rate > 0.0 && g.churn.members == 0 {
            return bad("groups.churn.rate needs groups.churn.members above 0".into());
        }
        if g.churn.members > 0 && g.churn.rate == 0.0 {
            return bad(format!(
                "groups.churn.members is {} but groups.churn.rate is 0, so they would never leave or rejoin (and would not send either): give a rate (changes a second per group, 0.5 say), or members = 0 for no churn",
                g.churn.members
            ));
        }
        Ok(())
    }

    fn validate_files(&self) -> Result<(), ScenarioError> {
        let bad = |m: String| Err(ScenarioError::Invalid(m));
        let f = &self.files;
        check_rate("files.rate", f.rate)?;
        if f.rate == 0.0 {
            return Ok(());
        }
        if f.senders > self.clients {
            return bad(format!(
                "files.senders is {} but there are only {} clients",
                f.senders, self.clients
            ));
        }
        if self.clients < 2 {
            return bad("files need at least 2 clients: a sender and a contact".into());
        }
        let (lo, hi) = match f.size {
            FileSize::Fixed { bytes } => (bytes, bytes),
            FileSize::LogUniform { min, max } => (min, max),
        };
        if lo == 0 {
            return bad("files.size: a file needs at least 1 byte".into());
        }
        if lo > hi {
            return bad(format!("files.size: min {lo} is above max {hi}"));
        }
        let server_max = imbench_server::Limits::default().max_file_size;
        if hi > server_max {
            return bad(format!(
                "files.size: {hi} bytes is above the server's {server_max}-byte file limit"
            ));
        }
        let count = self.partner_count();
        if count == 0 || count >= self.clients {
            return bad(format!(
                "files go to direct.partners contacts, and direct.partners.count is {count} with {} clients",
                self.clients
            ));
        }
        Ok(())
    }

    fn validate_churn(&self) -> Result<(), ScenarioError> {
        let bad = |m: String| Err(ScenarioError::Invalid(m));
        let c = &self.churn;
        if !(c.fraction.is_finite() && (0.0..=1.0).contains(&c.fraction)) {
            return bad(format!(
                "churn.fraction must be from 0 to 1, got {}",
                c.fraction
            ));
        }
        if !(c.abrupt.is_finite() && (0.0..=1.0).contains(&c.abrupt)) {
            return bad(format!(
                "churn.abrupt must be from 0 to 1, got {}",
                c.abrupt
            ));
        }
        if !(c.handover.is_finite() && (0.0..=1.0).contains(&c.handover)) {
            return bad(format!(
                "churn.handover must be from 0 to 1, got {}",
                c.handover
            ));
        }
        check_rate("churn.rate", c.rate)?;
        // Disconnects asked for and no client to make them: a section that would do nothing
        // is refused rather than run without its effect.
        if c.rate > 0.0 && c.fraction == 0.0 {
            return bad(format!(
                "churn.rate is {} a second, but churn.fraction is 0, so no client would drop: give fraction (the share of clients that drop and come back, 0.2 say), or rate = 0 for no churn",
                c.rate
            ));
        }
        if c.fraction > 0.0 && c.rate == 0.0 {
            return bad(format!(
                "churn.fraction is {}, but churn.rate is 0, so no client would drop: give rate (disconnects a second over all the churning clients, 2.0 say), or fraction = 0 for no churn",
                c.fraction
            ));
        }
        if !c.enabled() {
            return Ok(());
        }
        if self.groups.count > 0 || self.files.rate > 0.0 {
            return bad(
                "[churn] works with direct chat only: leave [groups] and [files] out of a churn scenario"
                    .into(),
            );
        }
        if c.offline >= self.drain {
            return bad(format!(
                "churn.offline ({:?}) must be shorter than drain ({:?}): a client that drops just before the end must be back in time to receive what was held for it",
                c.offline, self.drain
            ));
        }
        Ok(())
    }

    /// Each client's contacts.
    pub fn partner_count(&self) -> usize {
        match self.direct.partners {
            Partners::Random { count } | Partners::Ring { count } => count,
        }
    }
}

impl GroupSize {
    /// Smallest and largest size this distribution gives.
    pub fn bounds(&self) -> (usize, usize) {
        match *self {
            GroupSize::Fixed { size } => (size, size),
            GroupSize::Uniform { min, max } | GroupSize::Zipf { min, max, .. } => (min, max),
        }
    }
}

impl SizeDist {
    /// Smallest and largest body this distribution gives.
    pub fn bounds(&self) -> (u64, u64) {
        match *self {
            SizeDist::Fixed { bytes } => (bytes, bytes),
            SizeDist::Uniform { min, max } => (min, max),
        }
    }
}

impl Scenario {
    /// The largest body a message of this scenario has (direct or to a group; files apart).
    pub fn largest_body(&self) -> u64 {
        let direct = (self.direct.rate > 0.0).then(|| self.direct.size.bounds().1);
        let group = (self.groups.count > 0).then(|| self.groups.size.bounds().1);
        direct.into_iter().chain(group).max().unwrap_or(0)
    }
}

/// A rate (per second) is a finite number of 0 or more: `inf` and `nan` parse as numbers
/// and are refused here by name.
fn check_rate(name: &str, rate: f64) -> Result<(), ScenarioError> {
    if rate.is_finite() && rate >= 0.0 {
        Ok(())
    } else {
        Err(ScenarioError::Invalid(format!(
            "{name} must be a finite number of 0 or more, got {rate}"
        )))
    }
}

fn check_size(field: &str, size: SizeDist) -> Result<(), ScenarioError> {
    let (lo, hi) = size.bounds();
    let bad = |m: String| Err(ScenarioError::Invalid(m));
    if lo > hi {
        return bad(format!("{field}: min {lo} is above max {hi}"));
    }
    if lo < MIN_BODY {
        return bad(format!(
            "{field}: {lo} bytes is below the {MIN_BODY}-byte measurement header"
        ));
    }
    let max_body = imbench_server::Limits::default().max_body as u64;
    if hi > max_body {
        return bad(format!(
            "{field}: {hi} bytes is above the {max_body}-byte body limit"
        ));
    }
    Ok(())
}

fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    /// A size as a whole number of bytes or as text with a unit; anything else is said as
    /// what it is, not as a failed match of serde's variants.
    struct Size;
    impl serde::de::Visitor<'_> for Size {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a size: a whole number of bytes, or text such as \"100B\" or \"64KiB\"")
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<u64, E> {
            Ok(n)
        }
        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<u64, E> {
            u64::try_from(n).map_err(|_| E::custom(format!("a size is not negative, got {n}")))
        }
        fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<u64, E> {
            Err(E::custom(format!(
                "a size is a whole number of bytes (or text such as \"100B\"), got {n}"
            )))
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<u64, E> {
            parse_size::parse_size(s).map_err(|e| {
                E::custom(format!(
                    "size {s:?}: {e}; a size is a whole number of bytes with a unit of B, KB, MB or GB (powers of ten) or KiB, MiB or GiB (powers of two), e.g. \"100B\" or \"64KiB\""
                ))
            })
        }
    }
    d.deserialize_any(Size)
}

/// The figure an SLO expression judges (`lost` of `lost == 0`), when it has that shape.
fn slo_figure(expr: &str) -> Option<String> {
    crate::config::slo::Slo::split(expr)
        .ok()
        .map(|(name, _, _)| name.to_string())
}

/// Flattens `[slo]` into expressions: `direct.p99 = "< 1s"` (a dotted key, so a nested table)
/// becomes `"direct.p99 < 1s"`.
fn slo_table<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut Vec<String>) -> Result<(), String> {
        for (key, value) in table {
            let name = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                toml::Value::Table(t) => walk(&name, t, out)?,
                // The table's form is `name = "OP VALUE"`: a value without its comparison
                // is said in that form, not as the expression it would join into.
                toml::Value::String(s)
                    if !s.trim_start().starts_with(['<', '>', '=', '!']) =>
                {
                    return Err(format!(
                        "slo.{name} = {s:?} has no comparison: give one of < <= > >= == != before the value, as in {name} = \"== {}\"",
                        s.trim()
                    ))
                }
                toml::Value::String(s) => out.push(format!("{name} {}", s.trim())),
                other => {
                    return Err(format!(
                        "slo.{name}: expected a string such as \"< 500ms\", got {other}"
                    ))
                }
            }
        }
        Ok(())
    }
    // A scenario file writes a table; report.json keeps the flattened list.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        List(Vec<String>),
        Table(toml::Table),
    }
    match Form::deserialize(d)? {
        Form::List(list) => Ok(list),
        Form::Table(table) => {
            let mut out = Vec::new();
            walk("", &table, &mut out).map_err(serde::de::Error::custom)?;
            // TOML keeps `direct.p99` (a dotted key) and `"direct.p99"` (one quoted key) apart;
            // flattened they are one figure, which would be judged twice, by two bounds.
            let mut seen = std::collections::HashSet::new();
            for expr in &out {
                let name = expr.split(' ').next().unwrap_or_default();
                if !seen.insert(name) {
                    return Err(serde::de::Error::custom(format!(
                        "slo.{name} is given twice (as a dotted key and as a quoted one): keep one"
                    )));
                }
            }
            Ok(out)
        }
    }
}

fn slo_list<S: serde::Serializer>(slo: &[String], s: S) -> Result<S::Ok, S::Error> {
    slo.serialize(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference scenario of docs/workloads.md, every section in it, is a scenario once
    /// [churn] (direct chat only) is left out, as the page says; with it, it is refused for
    /// that reason and no other.
    #[test]
    fn the_documented_scenario_runs_once_churn_is_left_out() {
        let page = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/workloads.md"),
        )
        .unwrap();
        let after = &page[page.find("## Scenario files").unwrap()..];
        let start = after.find("```toml\n").unwrap() + "```toml\n".len();
        let block = &after[start..start + after[start..].find("```").unwrap()];
        let e = Scenario::from_toml(block, "docs").unwrap_err().to_string();
        assert!(e.contains("[churn] works with direct chat only"), "{e}");
        // Every line of the [churn] table out, up to the next table.
        let mut in_churn = false;
        let without: String = block
            .lines()
            .filter(|line| {
                if line.starts_with('[') {
                    in_churn = line.starts_with("[churn]");
                }
                !in_churn
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let s = Scenario::from_toml(&without, "docs").unwrap_or_else(|e| panic!("{e}"));
        assert!(s.groups.count > 0 && s.files.rate > 0.0 && s.network.is_some());
    }

    #[test]
    fn shipped_scenarios_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut seen = 0;
        // Those in scenarios/, and the one the Kubernetes manifests run.
        for dir in ["scenarios", "deploy/base"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "toml") {
                    let s = Scenario::from_file(&path)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    // A message of another load taken for one of this run's is `corrupted`: a
                    // scenario that judges its losses judges that too, or a server (or a
                    // subject prefix) that was not fresh would pass.
                    let judges = |figure: &str| {
                        s.slo
                            .iter()
                            .any(|e| e.split_whitespace().next() == Some(figure))
                    };
                    assert!(
                        !judges("lost") || judges("corrupted"),
                        "{}: {:?}",
                        path.display(),
                        s.slo
                    );
                    seen += 1;
                }
            }
        }
        assert!(seen >= 5);
        assert_eq!(Scenario::builtin_default().clients, 1000);
    }

    #[test]
    fn a_file_without_an_slo_table_is_judged_on_its_accounting() {
        let dir = std::env::temp_dir().join(format!("imbench-slo-table-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let load = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            Scenario::from_file(&path).unwrap()
        };
        let without =
            DEFAULT_SCENARIO.replace("[slo]\nlost = \"== 0\"\ncorrupted = \"== 0\"\n", "");
        assert!(!without.contains("slo"), "{without}");
        let s = load("none.toml", &without);
        assert_eq!(s.slo, ACCOUNTING_SLOS);
        assert_eq!(s.default_slos, s.slo);
        // With files, every file too.
        let files = "[files]\nrate = 1.0\nsenders = 2\nsize = \"10KiB\"\n";
        let s = load("files.toml", &format!("{without}{files}"));
        assert_eq!(s.slo.len(), 6, "{:?}", s.slo);
        assert!(
            s.slo.iter().any(|e| e == "files_failed == 0")
                && s.slo.iter().any(|e| e == "files_unfinished == 0"),
            "{:?}",
            s.slo
        );
        // An empty table, a dotted key and the table itself are the file's own: no default.
        for (name, text) in [
            ("empty.toml", format!("{without}[slo]\n")),
            (
                "dotted.toml",
                without.replace("seed = ", "slo.lost = \"< 3\"\nseed = "),
            ),
            ("table.toml", DEFAULT_SCENARIO.to_string()),
            // An integer past i64 (toml's own) is still a file with its table.
            (
                "big.toml",
                DEFAULT_SCENARIO.replace("seed = 1", "seed = 18446744073709551615"),
            ),
        ] {
            let s = load(name, &text);
            assert!(s.default_slos.is_empty(), "{name}: {:?}", s.default_slos);
            let own = match name {
                "empty.toml" => 0,
                "dotted.toml" => 1,
                _ => 2,
            };
            assert_eq!(s.slo.len(), own, "{name}");
        }
        // A flag on a defaulted figure takes its place; a target that promises a loss lifts
        // the default on `lost`, and only a default.
        let mut s = load("none.toml", &without);
        s.apply(&Overrides {
            slo: vec!["duplicated<3".into()],
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(s.slo, ["lost == 0", "corrupted == 0", "duplicated < 3"]);
        assert!(s.lift_default_slo("lost"));
        assert!(!s.lift_default_slo("duplicated"));
        assert_eq!(s.slo, ["corrupted == 0", "duplicated < 3"]);
        let mut own = load("table.toml", DEFAULT_SCENARIO);
        assert!(!own.lift_default_slo("lost"));
        assert_eq!(own.slo, ["corrupted == 0", "lost == 0"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn more_clients_than_a_load_may_have_are_refused() {
        let text = DEFAULT_SCENARIO.replace("clients = 1000", "clients = 2305843009213693952");
        let err = Scenario::from_toml(&text, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("clients must be at most 100000000"), "{err}");
        let mut s = Scenario::builtin_default();
        s.clients = MAX_CLIENTS;
        s.direct.rate = 0.01;
        s.validate().unwrap();
    }

    #[test]
    fn a_bare_member_count_is_a_fixed_group_size() {
        let groups = |members: &str| {
            format!("{DEFAULT_SCENARIO}[groups]\ncount = 2\nmembers = {members}\nsenders = 1\n")
        };
        let s = Scenario::from_toml(&groups("5"), "t.toml").unwrap();
        assert_eq!(s.groups.members, GroupSize::Fixed { size: 5 });
        let s = Scenario::from_toml(
            &groups("{ dist = \"uniform\", min = 3, max = 9 }"),
            "t.toml",
        )
        .unwrap();
        assert_eq!(s.groups.members, GroupSize::Uniform { min: 3, max: 9 });
        for bad in ["-5", "\"5\"", "5.5"] {
            let err = Scenario::from_toml(&groups(bad), "t.toml")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("members") || err.contains("group"),
                "{bad}: {err}"
            );
        }
        // Written back as a table, as reports keep it.
        let json = serde_json::to_string(&GroupSize::Fixed { size: 5 }).unwrap();
        assert_eq!(json, r#"{"dist":"fixed","size":5}"#);
    }

    #[test]
    fn a_name_on_more_than_one_line_is_refused() {
        let text = DEFAULT_SCENARIO.replace("name = \"default\"", "name = \"a\\nb\"");
        let err = Scenario::from_toml(&text, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds a line break"), "{err}");
    }

    #[test]
    fn one_figure_given_twice_in_the_slo_table_is_refused() {
        let text = DEFAULT_SCENARIO.replace(
            "[slo]\n",
            "[slo]\ndirect.p99 = \"< 1s\"\n\"direct.p99\" = \"< 1us\"\n",
        );
        let err = Scenario::from_toml(&text, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("slo.direct.p99 is given twice"), "{err}");
    }

    #[test]
    fn group_churn_that_would_never_change_a_membership_is_refused() {
        let groups = |churn: &str| {
            format!("{DEFAULT_SCENARIO}[groups]\ncount = 2\nmembers = {{ dist = \"fixed\", size = 5 }}\nsenders = 1\nchurn = {churn}\n")
        };
        for still in ["{ members = 1 }", "{ members = 1, rate = 0 }"] {
            let err = Scenario::from_toml(&groups(still), "t.toml")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("would never leave or rejoin"),
                "{still}: {err}"
            );
        }
        Scenario::from_toml(&groups("{ members = 1, rate = 0.5 }"), "t.toml").unwrap();
        Scenario::from_toml(&groups("{ members = 0 }"), "t.toml").unwrap();
    }

    #[test]
    fn a_churn_rate_past_what_the_clients_can_make_is_known() {
        let mut churn = ConnectionChurn {
            fraction: 0.2,
            rate: 600.0,
            offline: Duration::from_millis(300),
            ..ConnectionChurn::default()
        };
        // 200 churning clients away 300 ms at a time: at most about 667 drops a second.
        assert_eq!(churn.beyond_reach(1000), None);
        churn.rate = 1e9;
        let (churning, most) = churn.beyond_reach(1000).expect("beyond");
        assert_eq!(churning, 200.0);
        assert!((most - 666.67).abs() < 0.01, "{most}");
    }

    #[test]
    fn an_slo_in_the_table_without_a_comparison_is_said_in_the_tables_words() {
        let text = DEFAULT_SCENARIO.replace("lost = \"== 0\"", "lost = \"0\"");
        let err = Scenario::from_toml(&text, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("slo.lost = \"0\" has no comparison") && err.contains("lost = \"== 0\""),
            "{err}"
        );
        // One whose comparison is no comparison is named with its file too.
        let text = DEFAULT_SCENARIO.replace("lost = \"== 0\"", "lost = \"= 0\"");
        let err = Scenario::from_toml(&text, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("scenario t.toml: [slo]: "), "{err}");
    }

    #[test]
    fn an_empty_name_is_refused() {
        let text = DEFAULT_SCENARIO.replace("name = \"default\"", "name = \" \"");
        let err = Scenario::from_toml(&text, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("name must not be empty"), "{err}");
    }

    #[test]
    fn a_value_a_flag_made_impossible_names_the_flag() {
        let mut s = Scenario::builtin_default();
        s.groups.count = 2;
        s.groups.members = GroupSize::Fixed { size: 50 };
        s.validate().unwrap();
        let err = s
            .apply(&Overrides {
                clients: Some(30),
                seed: Some(4),
                ..Overrides::default()
            })
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("need at least that many clients, not 30 (with --clients 30)"),
            "{err}"
        );
    }

    #[test]
    fn a_typo_names_the_field() {
        let text = DEFAULT_SCENARIO.replace("clients = 1000", "clientz = 1000");
        let err = Scenario::from_toml(&text, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("clientz"), "{err}");
        let text = DEFAULT_SCENARIO.replace("rate = 1.0", "rate = 1.0\nburst = 3");
        let err = Scenario::from_toml(&text, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("burst"), "{err}");
        let text = DEFAULT_SCENARIO.replace("count = 5", "cuont = 5");
        let err = Scenario::from_toml(&text, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cuont"), "{err}");
        let text = DEFAULT_SCENARIO.replace("\"poisson\"", "\"poison\"");
        let err = Scenario::from_toml(&text, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("poison"), "{err}");
    }

    #[test]
    fn a_rate_past_what_any_generator_sends_is_refused() {
        let mut s = Scenario::builtin_default();
        let err = s
            .apply(&Overrides {
                rate: Some(1e300),
                ..Overrides::default()
            })
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 10000000"), "{err}");
        let mut s = Scenario::builtin_default();
        s.apply(&Overrides {
            rate: Some(MAX_SENDS_PER_S / s.clients as f64 / 2.0),
            ..Overrides::default()
        })
        .expect("half the bound is a load");
    }

    #[test]
    fn sizes_and_slos_read_as_people_write_them() {
        let text = DEFAULT_SCENARIO
            .replace(
                "{ dist = \"fixed\", bytes = \"100B\" }",
                "{ dist = \"uniform\", min = 64, max = \"2KiB\" }",
            )
            .replace(
                "lost = \"== 0\"",
                "lost = \"== 0\"\ndirect.p99 = \"< 1s\"\n\"ack.p50\" = \"<= 5ms\"",
            );
        let s = Scenario::from_toml(&text, "t").unwrap();
        assert_eq!(s.direct.size, SizeDist::Uniform { min: 64, max: 2048 });
        let mut slo = s.slo.clone();
        slo.sort();
        assert_eq!(
            slo,
            vec![
                "ack.p50 <= 5ms",
                "corrupted == 0",
                "direct.p99 < 1s",
                "lost == 0"
            ]
        );
        // The same objective again from flags, however spaced, is judged once.
        let mut s = s;
        s.apply(&Overrides {
            slo: vec![
                "direct.p99<1s".into(),
                "lost==0".into(),
                "direct.p99 < 2s".into(),
                "direct.p99<1000 ms ".into(),
            ],
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(s.slo.len(), 5, "{:?}", s.slo);
        for (bytes, says) in [
            ("-100", "not negative, got -100"),
            ("100.5", "a whole number of bytes"),
            ("true", "a size: a whole number of bytes"),
            ("\"100 parsecs\"", "size \"100 parsecs\""),
        ] {
            let text = DEFAULT_SCENARIO.replace("\"100B\"", bytes);
            let err = Scenario::from_toml(&text, "t").unwrap_err().to_string();
            assert!(
                err.contains(says) && !err.contains("untagged"),
                "{bytes}: {err}"
            );
        }
        // A bare size is a fixed one, for bodies and for files.
        let files = format!("{DEFAULT_SCENARIO}\n[files]\nrate = 1.0\nsize = \"2MiB\"\n");
        let s = Scenario::from_toml(&files, "t").unwrap();
        assert_eq!(s.files.size, FileSize::Fixed { bytes: 2 << 20 });
        let files = files.replace("\"2MiB\"", "\"2 furlongs\"");
        let err = Scenario::from_toml(&files, "t").unwrap_err().to_string();
        assert!(err.contains("size \"2 furlongs\""), "{err}");
        let table = "{ dist = \"fixed\", bytes = \"100B\" }";
        for (bare, bytes) in [("\"1KiB\"", 1024), ("300", 300)] {
            let s = Scenario::from_toml(&DEFAULT_SCENARIO.replace(table, bare), "t").unwrap();
            assert_eq!(s.direct.size, SizeDist::Fixed { bytes }, "{bare}");
        }
        for (bare, says) in [
            ("true", "a size such as \"100B\" or 100, or a table"),
            ("-5", "not negative, got -5"),
            ("\"100 parsecs\"", "size \"100 parsecs\""),
            ("{ dist = \"fixed\", size = 5 }", "unknown field `size`"),
        ] {
            let text = DEFAULT_SCENARIO.replace(table, bare);
            let err = Scenario::from_toml(&text, "t").unwrap_err().to_string();
            assert!(err.contains(says), "{bare}: {err}");
        }
    }

    #[test]
    fn quic_settings_are_read_checked_and_applied() {
        use imbench_transport::quic::Congestion;
        let text = format!(
            "{DEFAULT_SCENARIO}\n[quic]\ncongestion = \"bbr\"\nstream_receive_window = \"64KiB\"\nsend_fairness = false\nkeep_alive = \"off\"\nack_frequency = 4\n"
        );
        let s = Scenario::from_toml(&text, "t").unwrap();
        let o = s
            .quic
            .apply(&imbench_transport::QuicOptions::default())
            .unwrap();
        assert_eq!(o.congestion, Congestion::Bbr);
        assert_eq!(o.stream_receive_window, Some(65536));
        assert!(!o.send_fairness);
        assert_eq!(o.keep_alive, None);
        assert_eq!(o.ack_frequency, Some(4));
        let quoted = format!("{DEFAULT_SCENARIO}\n[quic]\nack_frequency = \"8\"\n");
        assert_eq!(
            Scenario::from_toml(&quoted, "t")
                .unwrap()
                .quic
                .ack_frequency,
            AckFrequency(Some(8)),
            "a count in quotes is a count"
        );
        let off = format!("{DEFAULT_SCENARIO}\n[quic]\nack_frequency = \"off\"\n");
        let off = Scenario::from_toml(&off, "t").unwrap().quic;
        let off = off.apply(&imbench_transport::QuicOptions::default());
        assert_eq!(off.unwrap().ack_frequency, None);
        let defaults = Scenario::builtin_default()
            .quic
            .apply(&imbench_transport::QuicOptions::default())
            .unwrap();
        assert_eq!(defaults.congestion, Congestion::Cubic);
        assert_eq!(defaults.keep_alive, Some(Duration::from_secs(10)));
        assert_eq!(
            defaults.ack_frequency,
            Some(imbench_transport::quic::DEFAULT_ACK_FREQUENCY)
        );
        for (bad, field) in [
            ("ack_frequency = \"of\"", "ack_frequency"),
            (
                "ack_frequency = -1",
                "from 0 (an ACK for every packet) to 1000",
            ),
            ("ack_frequency = 1.5", "\"1.5\" is not an ACK frequency"),
            ("ack_frequency = true", "\"true\" is not an ACK frequency"),
            ("ack_frequency = 99999999999", "at most 1000"),
            ("congestion = \"vegas\"", "vegas"),
            ("keep_alive = \"soon\"", "keep_alive"),
            ("keep_alive = \"2m\"", "keep_alive"),
            ("keep_alive = \"0s\"", "keep_alive is at least 100ms"),
            ("keep_alive = \"1ms\"", "keep_alive is at least 100ms"),
            (
                "keep_alive = \"off\"\nidle_timeout = \"0s\"",
                "idle_timeout is at least 1s",
            ),
            ("stream_receive_window = 10", "stream_receive_window"),
            ("pacing = true", "pacing"),
        ] {
            let text = format!("{DEFAULT_SCENARIO}\n[quic]\n{bad}\n");
            let err = Scenario::from_toml(&text, "t").unwrap_err().to_string();
            assert!(err.contains(field), "{bad}: {err}");
        }
    }

    #[test]
    fn nonsense_values_are_refused() {
        // Churn with a rate and no client to drop would do nothing.
        for churn in ["rate = 5.0", "rate = 5.0\nfraction = 0.0"] {
            let text = format!("{DEFAULT_SCENARIO}\n[churn]\n{churn}\n");
            let err = Scenario::from_toml(&text, "t").unwrap_err().to_string();
            assert!(
                err.contains("churn.fraction is 0, so no client would drop"),
                "{err}"
            );
        }
        for churn in ["fraction = 0.5", "fraction = 0.5\nrate = 0.0"] {
            let text = format!("{DEFAULT_SCENARIO}\n[churn]\n{churn}\n");
            let err = Scenario::from_toml(&text, "t").unwrap_err().to_string();
            assert!(
                err.contains("churn.rate is 0, so no client would drop"),
                "{err}"
            );
        }
        let off = format!("{DEFAULT_SCENARIO}\n[churn]\nrate = 0.0\n");
        assert!(
            Scenario::from_toml(&off, "t").is_ok(),
            "rate = 0 is no churn"
        );
        let mut s = Scenario::builtin_default();
        let o = Overrides {
            clients: Some(3),
            ..Overrides::default()
        };
        let err = s.apply(&o).unwrap_err().to_string();
        assert!(
            err.contains("3 clients are too few") && err.contains("at least 6 clients"),
            "{err}"
        );
        let text = DEFAULT_SCENARIO.replace("\"100B\"", "\"10B\"");
        assert!(Scenario::from_toml(&text, "t")
            .unwrap_err()
            .to_string()
            .contains("header"));
        let mut s = Scenario::builtin_default();
        let o = Overrides {
            slo: vec!["direct.p99 ~ 3".into()],
            ..Overrides::default()
        };
        assert!(s.apply(&o).is_err());
        // A time past any run's length (its deadline would overflow the clock), from the
        // command line and from a scenario file alike.
        let mut s = Scenario::builtin_default();
        let o = Overrides {
            drain: Some(Duration::from_secs(
                300_000_000_000 * 365 * 24 * 3600 / 1000,
            )),
            ..Overrides::default()
        };
        let err = s.apply(&o).unwrap_err().to_string();
        assert!(err.contains("drain must be at most"), "{err}");
        let text = format!("{DEFAULT_SCENARIO}\n[generator]\nconnect_timeout = \"2years\"\n");
        let err = Scenario::from_toml(&text, "t").unwrap_err().to_string();
        assert!(
            err.contains("generator.connect_timeout must be at most"),
            "{err}"
        );
    }

    #[test]
    fn a_path_no_login_could_cross_within_the_connect_timeout_is_refused() {
        let with = |network: &str, generator: &str| {
            let text = format!("{DEFAULT_SCENARIO}\n[generator]\n{generator}\n{network}\n");
            Scenario::from_toml(&text, "t").map_err(|e| e.to_string())
        };
        let err = with("[network.up]\ndelay = \"60s\"", "").unwrap_err();
        assert!(
            err.contains("a round trip takes 1m on this path")
                && err.contains("connect_timeout (10s)"),
            "{err}"
        );
        // Two round trips of 4 s are 8 s, inside 10 s; not inside 5 s.
        let four_each_way = "[network.up]\ndelay = \"2s\"\n[network.down]\ndelay = \"2s\"";
        assert!(with(four_each_way, "").is_ok());
        assert!(with(four_each_way, "connect_timeout = \"5s\"").is_err());
        assert!(with("[network]\nprofile = \"3g\"", "").is_ok());
        let err = with("[network.up]\nloss_burst = 3.0", "").unwrap_err();
        assert!(
            err.contains("network.up: loss_burst 3 without loss"),
            "{err}"
        );
    }

    #[test]
    fn generator_limits_of_zero_are_refused() {
        for (bad, says) in [
            (
                "connect_timeout = \"0s\"",
                "connect_timeout must be more than 0",
            ),
            (
                "max_schedule_lag = \"0s\"",
                "max_schedule_lag must be more than 0",
            ),
            ("answer_timeout = \"0s\"", "answer_timeout is at least 1s"),
            (
                "answer_timeout = \"500ms\"",
                "answer_timeout is at least 1s",
            ),
        ] {
            let text = format!("{DEFAULT_SCENARIO}\n[generator]\n{bad}\n");
            let err = Scenario::from_toml(&text, "t").unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
        let fine = format!("{DEFAULT_SCENARIO}\n[generator]\nanswer_timeout = \"1s\"\n");
        assert!(Scenario::from_toml(&fine, "t").is_ok());
    }

    #[test]
    fn resumption_reads_from_the_scenario_and_the_flag() {
        let text = format!("{DEFAULT_SCENARIO}\n[generator]\nresumption = \"0rtt\"\n");
        let mut s = Scenario::from_toml(&text, "t").unwrap();
        assert_eq!(s.generator.resumption, ResumptionName::ZeroRtt);
        s.apply(&Overrides {
            resumption: Some(ResumptionName::Off),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(s.generator.resumption, ResumptionName::Off);
        assert_eq!(
            Scenario::builtin_default().generator.resumption,
            ResumptionName::Ticket
        );
        let bad = format!("{DEFAULT_SCENARIO}\n[generator]\nresumption = \"always\"\n");
        let err = Scenario::from_toml(&bad, "t").unwrap_err().to_string();
        assert!(err.contains("0rtt"), "{err}");
    }

    #[test]
    fn resumption_names_are_the_same_in_scenarios_flags_and_reports() {
        use clap::ValueEnum;
        for r in ResumptionName::value_variants() {
            let json = serde_json::to_string(r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.name()));
            let flag = r.to_possible_value().unwrap();
            assert_eq!(flag.get_name(), r.name());
        }
    }

    #[test]
    fn timer_names_are_those_of_the_scenario_format() {
        for k in [TimerKind::Auto, TimerKind::Precise, TimerKind::Tokio] {
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.name()));
        }
    }

    #[test]
    fn auto_picks_the_precise_timer_at_light_load_only() {
        let mut s = Scenario::builtin_default();
        assert_eq!(s.sends_per_s(s.clients), 1_000.0);
        assert_eq!(
            s.generator.timer.resolve(s.sends_per_s(s.clients)),
            TimerKind::Precise
        );
        s.clients = 10_000;
        assert_eq!(
            s.generator.timer.resolve(s.sends_per_s(s.clients)),
            TimerKind::Tokio
        );
        // Half of the clients (a shard) send half of it.
        assert_eq!(s.sends_per_s(5_000), 5_000.0);
        // A choice made by hand stands.
        s.generator.timer = TimerKind::Precise;
        assert_eq!(s.generator.timer.resolve(1e9), TimerKind::Precise);
        s.generator.timer = TimerKind::Tokio;
        assert_eq!(s.generator.timer.resolve(1.0), TimerKind::Tokio);
    }
}
