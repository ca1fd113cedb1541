//! The scenario's `[network]` section: the emulated path the clients reach the server over
//! (`imbench-netpath`), as a named profile of a common kind of network, each direction
//! replaceable in full. No section (or `profile = "loopback"`) is loopback, with no path.

use std::time::Duration;

use imbench_netpath::{LinkSpec, PathSpec};
use serde::{Deserialize, Serialize};

/// The `[network]` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    /// A named path (see [`PROFILES`]); without it, a path with nothing but what `up` and
    /// `down` say. Names are not case-sensitive: kept in lower case, so that `4G` and `4g`
    /// read, and compare, as one path.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lower_case"
    )]
    pub profile: Option<String>,
    /// Client to server, replacing the profile's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up: Option<LinkSpec>,
    /// Server to client, replacing the profile's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<LinkSpec>,
    /// One link every client shares (clients behind one access link) instead of a link each
    /// (each phone its own radio link).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

fn lower_case<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(|name| name.to_ascii_lowercase()))
}

/// The name that means no emulated path.
pub const LOOPBACK: &str = "loopback";

/// A named path: its name, what it stands for, and its two directions.
pub struct Profile {
    /// What `--network` and `network.profile` call it.
    pub name: &'static str,
    /// What it stands for, in a few words.
    pub about: &'static str,
    up: Link,
    down: Link,
}

/// One direction of a profile: one-way delay and jitter in µs, loss, mean burst, bit rate.
struct Link {
    delay_us: u64,
    jitter_us: u64,
    loss: f64,
    burst: f64,
    rate_bps: Option<u64>,
}

impl Link {
    fn spec(&self) -> LinkSpec {
        LinkSpec {
            delay: Duration::from_micros(self.delay_us),
            jitter: Duration::from_micros(self.jitter_us),
            loss: self.loss,
            loss_burst: self.burst,
            rate_bps: self.rate_bps,
            ..LinkSpec::default()
        }
    }
}

const MBIT: u64 = 1_000_000;

const fn link(delay_us: u64, jitter_us: u64, loss: f64, burst: f64, rate_bps: Option<u64>) -> Link {
    Link {
        delay_us,
        jitter_us,
        loss,
        burst,
        rate_bps,
    }
}

/// The named paths. Their figures, and where they come from, are in docs/network.md.
pub const PROFILES: &[Profile] = &[
    Profile {
        name: "lan",
        about: "wired LAN: 0.5 ms round trip, 1 Gbit/s",
        up: link(250, 0, 0.0, 1.0, Some(1_000 * MBIT)),
        down: link(250, 0, 0.0, 1.0, Some(1_000 * MBIT)),
    },
    Profile {
        name: "wifi",
        about: "home Wi-Fi: 10 ms round trip, jitter, 0.2 % loss, 40/20 Mbit/s",
        up: link(5_000, 2_000, 0.002, 1.0, Some(20 * MBIT)),
        down: link(5_000, 2_000, 0.002, 1.0, Some(40 * MBIT)),
    },
    Profile {
        name: "4g",
        about: "LTE: 50 ms round trip, jitter, 0.5 % loss, 20/8 Mbit/s",
        up: link(25_000, 5_000, 0.005, 1.0, Some(8 * MBIT)),
        down: link(25_000, 5_000, 0.005, 1.0, Some(20 * MBIT)),
    },
    Profile {
        name: "3g",
        about: "3G: 300 ms round trip, jitter, 1 % loss, 1.6 Mbit/s down, 750 kbit/s up",
        up: link(150_000, 20_000, 0.01, 1.0, Some(750_000)),
        down: link(150_000, 20_000, 0.01, 1.0, Some(1_600_000)),
    },
    Profile {
        name: "lossy",
        about: "a bad mobile link: 50 ms round trip, 3 % loss in bursts of 3, 10 Mbit/s",
        up: link(25_000, 5_000, 0.03, 3.0, Some(10 * MBIT)),
        down: link(25_000, 5_000, 0.03, 3.0, Some(10 * MBIT)),
    },
];

/// The names a profile may have, for messages: loopback and each profile's.
pub fn profile_names() -> String {
    std::iter::once(LOOPBACK)
        .chain(PROFILES.iter().map(|p| p.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses a path on which a login outlasts the connect timeout: every client would fail,
/// which is better said before the ramp-up than after it. `trips` is how many round trips a
/// login takes and `login` says so in words ("a login takes two").
pub fn check_login_round_trips(
    path: &PathSpec,
    connect_timeout: Duration,
    trips: u32,
    login: &str,
) -> Result<(), String> {
    let round_trip = path.up.delay + path.down.delay;
    if round_trip * trips < connect_timeout {
        return Ok(());
    }
    Err(format!(
        "network: a round trip takes {} on this path (up {} + down {}), and {login}, which is not within generator.connect_timeout ({}): no client could log in; give a shorter delay or a longer connect_timeout",
        humantime::format_duration(round_trip),
        humantime::format_duration(path.up.delay),
        humantime::format_duration(path.down.delay),
        humantime::format_duration(connect_timeout),
    ))
}

/// The profiles that are paths (all but loopback), as a user may type them.
pub fn path_profile_names() -> String {
    PROFILES
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

impl NetworkSection {
    /// The section `--network NAME` stands for.
    pub fn named(name: &str) -> Self {
        Self {
            profile: Some(name.to_ascii_lowercase()),
            ..Self::default()
        }
    }

    /// The path this section asks for; `None` for loopback (no path).
    pub fn path(&self) -> Result<Option<PathSpec>, String> {
        let base = match self.profile.as_deref() {
            None => Some(PathSpec::default()),
            Some(name) if name.eq_ignore_ascii_case(LOOPBACK) => None,
            Some(name) => {
                let known = PROFILES.iter().find(|p| p.name.eq_ignore_ascii_case(name));
                let p = known.ok_or_else(|| {
                    format!(
                        "network.profile {name:?} is not a known path; known: {}",
                        profile_names()
                    )
                })?;
                Some(PathSpec {
                    up: p.up.spec(),
                    down: p.down.spec(),
                    shared: false,
                })
            }
        };
        let Some(mut spec) = base else {
            if self.shared {
                return Err(
                    "network: profile \"loopback\" is no path, so shared = true has no link to \
                     share: leave it out, or name a profile"
                        .into(),
                );
            }
            if self.up.is_some() || self.down.is_some() {
                return Err(
                    "network: profile \"loopback\" is no path, so [network.up] and \
                     [network.down] have nothing to change: leave them out, or name a profile"
                        .into(),
                );
            }
            return Ok(None);
        };
        if let Some(up) = &self.up {
            spec.up = up.clone();
        }
        if let Some(down) = &self.down {
            spec.down = down.clone();
        }
        spec.shared = self.shared;
        spec.up.validate().map_err(|e| format!("network.up: {e}"))?;
        spec.down
            .validate()
            .map_err(|e| format!("network.down: {e}"))?;
        Ok(Some(spec))
    }

    /// The path's name for a person: the profile's name; a path that is not a profile as it
    /// stands ("custom", or a profile with a direction replaced) with what each direction
    /// does, so that two such paths read apart; `shared …` when every client shares one link.
    pub fn describe(&self) -> String {
        let shared = if self.shared { "shared " } else { "" };
        let changed = self.up.is_some() || self.down.is_some();
        let name = match (&self.profile, changed) {
            (Some(p), false) => return format!("{shared}{p}"),
            (Some(p), true) => format!("{shared}{p} changed"),
            (None, _) => format!("{shared}custom"),
        };
        match self.path() {
            Ok(Some(spec)) => format!("{name}: up {}; down {}", spec.up, spec.down),
            _ => name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kept_in_lower_case_and_a_custom_path_says_what_it_is() {
        assert_eq!(NetworkSection::named("4G").describe(), "4g");
        let shared: NetworkSection =
            toml::from_str("profile = \"lan\"\nshared = true").expect("reads");
        assert_eq!(shared.describe(), "shared lan");
        let queued: NetworkSection =
            toml::from_str("[up]\ndelay = \"10ms\"\nrate_bps = 1000000\nqueue_bytes = 1500\n")
                .expect("reads");
        assert_eq!(
            queued.describe(),
            "custom: up 10ms, 1 Mbit/s, queue 1500 B; down nothing"
        );
        let read: NetworkSection = toml::from_str("profile = \"WiFi\"").expect("reads");
        assert_eq!(read.profile.as_deref(), Some("wifi"));
        let custom: NetworkSection =
            toml::from_str("[up]\ndelay = \"25ms\"\n[down]\ndelay = \"5ms\"\nloss = 0.01\n")
                .expect("reads");
        assert_eq!(custom.describe(), "custom: up 25ms; down 5ms, 1 % loss");
        let changed: NetworkSection =
            toml::from_str("profile = \"4g\"\n[up]\ndelay = \"1ms\"\n").expect("reads");
        assert!(
            changed.describe().starts_with("4g changed: up 1ms; down "),
            "{}",
            changed.describe()
        );
    }

    #[test]
    fn every_profile_is_a_valid_path_and_loopback_is_none() {
        for p in PROFILES {
            let spec = NetworkSection::named(p.name)
                .path()
                .unwrap_or_else(|e| panic!("{}: {e}", p.name))
                .expect("a path");
            assert!(!spec.up.is_transparent(), "{}", p.name);
        }
        assert_eq!(NetworkSection::named("loopback").path(), Ok(None));
        let mut shared_loopback = NetworkSection::named("loopback");
        shared_loopback.shared = true;
        assert!(shared_loopback
            .path()
            .is_err_and(|e| e.contains("no link to share")));
    }

    #[test]
    fn a_direction_replaces_the_profiles_and_bad_input_is_named() {
        let toml = "profile = \"4g\"\n[up]\ndelay = \"100ms\"\nloss = 0.1\n";
        let s: NetworkSection = toml::from_str(toml).expect("parses");
        let spec = s.path().unwrap().unwrap();
        assert_eq!(spec.up.delay, Duration::from_millis(100));
        assert_eq!(spec.up.rate_bps, None, "the whole direction is replaced");
        assert_eq!(spec.down.delay, Duration::from_millis(25));
        assert_eq!(
            s.describe(),
            "4g changed: up 100ms, 10 % loss; down 25ms ±5ms, 0.5 % loss, 20 Mbit/s"
        );
        let e = NetworkSection::named("5g").path().unwrap_err();
        assert!(
            e.contains("\"5g\"") && e.contains("lan, wifi, 4g, 3g, lossy"),
            "{e}"
        );
        let bad: NetworkSection = toml::from_str("[down]\nloss = 2.0\n").unwrap();
        assert!(bad.path().unwrap_err().starts_with("network.down: loss"));
        assert!(toml::from_str::<NetworkSection>("[up]\ndelya = \"1ms\"\n").is_err());
    }
}
