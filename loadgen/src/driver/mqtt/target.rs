//! An MQTT target as the user writes it: broker, credentials, topic prefix, protocol version,
//! QoS, session kind and TLS.

use rumqttc::QoS;

use crate::driver::tls::TlsClient;
use imbench_proto::Dest;

/// An MQTT broker to load, from
/// `mqtt://[USER:PASS@]HOST:PORT[/PREFIX][?version=3.1.1|5&qos=0|1|2&session=clean|persistent]`.
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
    /// The protocol the clients speak.
    pub version: Version,
    /// 0 (no answer: the driver's pings stand in), 1 (PUBACK) or 2 (PUBCOMP).
    pub qos: u8,
    /// Whether the broker keeps each client's session while it is away.
    pub persistent: bool,
    /// TLS, for an `mqtts://` target; the certificate is checked against the host.
    pub tls: Option<TlsClient>,
}

/// The MQTT protocol version the clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// MQTT 3.1.1, the default: what every broker speaks.
    V3_1_1,
    /// MQTT 5: a group is subscribed with No Local, so the broker does not send a member its
    /// own messages; a refusal of a message comes with a reason code.
    V5,
}

/// Why a target is not an MQTT address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// Not `mqtt://…` or `mqtts://…`.
    #[error("an MQTT target starts with mqtt:// (or mqtts:// for TLS), got {0:?}")]
    Scheme(String),
    /// No port, or not a number.
    #[error(
        "an MQTT target needs HOST:PORT with a port from 1 to 65535 (brokers listen on 1883, and on 8883 for mqtts://, unless told otherwise), got {0:?}"
    )]
    HostPort(String),
    /// A topic prefix MQTT would not take.
    #[error(
        "topic prefix {0:?}: levels of ASCII letters, digits, '-', '_' and '.' separated by '/'"
    )]
    Prefix(String),
    /// An option that is not known, or a value it does not take.
    #[error("{0}")]
    Option(String),
}

impl MqttTarget {
    /// Reads a target; the prefix is `imbench`, MQTT 3.1.1, QoS 1 and clean sessions unless given;
    /// `mqtts://` is TLS, with the machine's roots unless `ca=FILE` names others.
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        let (rest, tls) = crate::driver::url::strip_scheme(url, "mqtt://", "mqtts://")
            .ok_or_else(|| TargetError::Scheme(url.to_string()))?;
        let parts = crate::driver::url::split(rest);
        let decode = |s: &str| {
            crate::driver::url::percent_decode(s).ok_or_else(|| {
                TargetError::Option(
                    "the user, password or file name has a % that is not %XX: a % of its own is written %25 (@, :, /, ? and # may be written as they are, or as %40, %3A, %2F, %3F and %23)".into(),
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
        let (host, port) = crate::driver::url::host_port(parts.host_port)
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
            version: Version::V3_1_1,
            qos: 1,
            persistent: false,
            tls: None,
        };
        let pairs = crate::driver::url::query_pairs(parts.query).map_err(|key| {
            TargetError::Option(format!("{key} is given twice in the MQTT target"))
        })?;
        let mut ca = None;
        for (key, value) in pairs {
            match (key, value) {
                ("version", "3.1.1") => target.version = Version::V3_1_1,
                ("version", "5") => target.version = Version::V5,
                ("qos", "0") => target.qos = 0,
                ("qos", "1") => target.qos = 1,
                ("qos", "2") => target.qos = 2,
                ("session", "clean") => target.persistent = false,
                ("session", "persistent") => target.persistent = true,
                ("ca", file) => ca = Some(file),
                ("version", v) => {
                    return Err(TargetError::Option(format!(
                        "version={v:?}: the MQTT target takes version=3.1.1 (the default; protocol level 4) or version=5"
                    )))
                }
                ("qos", v) => {
                    return Err(TargetError::Option(format!(
                        "qos={v:?}: the MQTT target takes qos=0, qos=1 (the default) or qos=2"
                    )))
                }
                ("session", v) => {
                    return Err(TargetError::Option(format!(
                        "session={v:?}: the MQTT target takes session=clean (the default) or session=persistent"
                    )))
                }
                _ => {
                    let written = crate::driver::url::option_as_written(key, value);
                    return Err(TargetError::Option(format!(
                        "unknown option {written:?} in the MQTT target: version=3.1.1|5, qos=0|1|2, session=clean|persistent, ca=FILE (with mqtts://)"
                    )));
                }
            }
        }
        target.tls =
            crate::driver::tls::from_options(tls, ca, "write the target as mqtts://…?ca=FILE")
                .map_err(TargetError::Option)?;
        Ok(target)
    }

    /// `mqtt 127.0.0.1:1883 (MQTT 3.1.1, QoS 1, clean sessions)`, without credentials.
    pub fn describe(&self) -> String {
        let version = match self.version {
            Version::V3_1_1 => "MQTT 3.1.1, ",
            Version::V5 => "MQTT 5, ",
        };
        let tls = match &self.tls {
            Some(tls) => format!(", {}", tls.describe()),
            None => String::new(),
        };
        format!(
            "mqtt {} ({version}QoS {}, {} sessions{tls})",
            crate::driver::url::show_host_port(&self.host, self.port),
            self.qos,
            if self.persistent {
                "persistent"
            } else {
                "clean"
            }
        )
    }

    pub(super) fn qos(&self) -> QoS {
        match self.qos {
            0 => QoS::AtMostOnce,
            2 => QoS::ExactlyOnce,
            _ => QoS::AtLeastOnce,
        }
    }

    pub(super) fn user_topic(&self, user: u64) -> String {
        format!("{}/u/{user}", self.prefix)
    }

    pub(super) fn group_topic(&self, group: u64) -> String {
        format!("{}/g/{group}", self.prefix)
    }

    /// Who a topic of this run names.
    pub(super) fn dest_of(&self, topic: &str) -> Option<Dest> {
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
        assert_eq!((t.version, t.qos, t.persistent), (Version::V3_1_1, 2, true));
        assert_eq!(t.group_topic(1), "load/test/g/1");
        assert_eq!(
            t.describe(),
            "mqtt broker:8883 (MQTT 3.1.1, QoS 2, persistent sessions)"
        );
        assert_eq!(t.tls, None);
        let t = MqttTarget::parse("mqtt://broker:1883?version=5&qos=2").unwrap();
        assert_eq!((t.version, t.qos), (Version::V5, 2));
        assert_eq!(
            t.describe(),
            "mqtt broker:1883 (MQTT 5, QoS 2, clean sessions)"
        );
        let t = MqttTarget::parse("mqtt://broker:1883?version=3.1.1").unwrap();
        assert_eq!(t.version, Version::V3_1_1);
        let ca_file = crate::driver::tls::TestCaFile::new("mqtt-parse");
        let ca = &ca_file.path;
        let t = MqttTarget::parse(&format!("mqtts://broker:8883?ca={}", ca.display())).unwrap();
        assert_eq!(
            t.describe(),
            format!(
                "mqtt broker:8883 (MQTT 3.1.1, QoS 1, clean sessions, TLS, CA {})",
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
            ("mqtt://h:1?qos=3", "qos=0, qos=1 (the default) or qos=2"),
            ("mqtt://h:1?retain=1", "unknown option"),
            ("mqtt://h:1?version=4", "protocol level 4"),
            ("mqtt://h:1?version=", "version=3.1.1 (the default"),
            ("mqtt://h:1?session=sticky", "session=persistent"),
            ("mqtt://h:1?version=5&version=5", "given twice"),
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
