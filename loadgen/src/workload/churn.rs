//! Connection churn: when a churning client drops its connection, how, and for how long (the
//! scenario's `[churn]` section turned into one schedule per client, drawn from the seed), and
//! what a client keeps so that nothing is lost across the gap.
//!
//! Across a reconnect a message can be received twice, legitimately, in two ways: the server
//! delivers again what the recipient had not confirmed by receipt when its connection dropped,
//! and a sender sends again what had no Ack when its own connection dropped. The recipient drops
//! the second copy by the sender's sequence number and counts it as a redelivery. Any other
//! second copy is counted as a duplicate, which is a fault.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use bytes::Bytes;
use imbench_proto::Dest;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::config::scenario::Scenario;
use crate::workload::schedule::exponential;

/// Mixed into the seed so that churn draws are independent of the message schedule's.
const CHURN_STREAM: u64 = 0xC4C4_17A0_5EED_0001;

/// One planned disconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnect {
    /// When (µs since run start).
    pub at_us: u64,
    /// Closed at once with no Bye, rather than with Bye and a wait for the server to close.
    pub abrupt: bool,
    /// A change of networks: the client's address changes (see `[churn] handover`).
    pub handover: bool,
}

/// One client's disconnects.
#[derive(Debug)]
pub struct ChurnSchedule {
    rng: SmallRng,
    mean_gap_us: f64,
    abrupt: f64,
    handover: f64,
    next_us: f64,
    /// How long the client stays away each time (µs).
    pub offline_us: u64,
}

impl ChurnSchedule {
    /// The schedule of client `index`, counting from `start_us`; `None` when it does not churn.
    /// `churners` is [`churning_clients`] of `s`, worked out once for all clients.
    pub fn new(s: &Scenario, index: usize, start_us: u64, churners: usize) -> Option<Self> {
        if !s.churn.enabled() || !churns(s, index) {
            return None;
        }
        let churners = churners.max(1) as f64;
        let mut rng = rng_for(s, index);
        // Each churner drops at rate / churners, so that together they drop at `rate`.
        let mean_gap_us = 1e6 * churners / s.churn.rate;
        let first = exponential(&mut rng, mean_gap_us);
        Some(Self {
            rng,
            mean_gap_us,
            abrupt: s.churn.abrupt,
            handover: s.churn.handover,
            next_us: start_us as f64 + first,
            offline_us: s.churn.offline.as_micros() as u64,
        })
    }

    /// When the next disconnect is due.
    pub fn next_at(&self) -> u64 {
        self.next_us as u64
    }

    /// The next disconnect. The one after it is drawn from when this client is back, so a
    /// client is never told to drop while it is away.
    pub fn take(&mut self) -> Disconnect {
        let at_us = self.next_us as u64;
        let abrupt = self.rng.random::<f64>() < self.abrupt;
        // Drawn only when asked for, so that scenarios without handovers keep their schedules.
        let handover = self.handover > 0.0 && self.rng.random::<f64>() < self.handover;
        self.next_us += self.offline_us as f64 + exponential(&mut self.rng, self.mean_gap_us);
        Disconnect {
            at_us,
            // A connection lost with its address says no Bye.
            abrupt: abrupt || handover,
            handover,
        }
    }
}

/// A message sent and not yet answered, kept so that it can be sent again after a reconnect.
#[derive(Debug, Clone)]
pub struct Unanswered {
    /// Where it went.
    pub to: Dest,
    /// Its body, as sent.
    pub body: Bytes,
    /// The sender's sequence number for the recipient.
    pub seq: u64,
}

/// One client's messages awaiting an Ack or a Reject, by message id (which grows with the
/// intended time, so the map's order is the sending order).
#[derive(Debug, Default)]
pub struct AwaitingAnswer(Mutex<BTreeMap<u64, Unanswered>>);

impl AwaitingAnswer {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Unanswered>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a message just sent.
    pub fn sent(&self, msg_id: u64, message: Unanswered) {
        self.map().insert(msg_id, message);
    }

    /// Notes an Ack or a Reject. False when the message was not waiting: a second answer,
    /// to a copy sent again after a reconnect.
    pub fn answered(&self, msg_id: u64) -> bool {
        self.map().remove(&msg_id).is_some()
    }

    /// Every message still waiting, oldest first (they stay waiting).
    pub fn waiting(&self) -> Vec<(u64, Unanswered)> {
        self.map().iter().map(|(&id, m)| (id, m.clone())).collect()
    }
}

/// Messages that were sent a second time, by (sender, recipient, seq): a second copy of one of
/// these at the recipient is a redelivery, not a duplicate. A sequence number counts the
/// messages of one sender to one recipient, so the recipient is part of what names a message.
#[derive(Debug, Default)]
pub struct Resent(Mutex<HashSet<(u64, Dest, u64)>>);

impl Resent {
    /// Notes that `sender` sent its `seq` to `to` again.
    pub fn note(&self, sender: u64, to: Dest, seq: u64) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((sender, to, seq));
    }

    /// Whether `sender` sent its `seq` to `to` again.
    pub fn contains(&self, sender: u64, to: Dest, seq: u64) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&(sender, to, seq))
    }
}

fn rng_for(s: &Scenario, index: usize) -> SmallRng {
    SmallRng::seed_from_u64(
        (s.seed ^ CHURN_STREAM) ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03),
    )
}

/// Whether client `index` is one of the churning ones.
pub fn churns(s: &Scenario, index: usize) -> bool {
    let mut rng = SmallRng::seed_from_u64(
        s.seed ^ CHURN_STREAM.rotate_left(17) ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    s.churn.enabled() && rng.random::<f64>() < s.churn.fraction
}

/// How many clients churn.
pub fn churning_clients(s: &Scenario) -> usize {
    (0..s.clients).filter(|&i| churns(s, i)).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::scenario::ConnectionChurn;
    use std::time::Duration;

    #[test]
    fn a_message_sent_again_is_named_by_its_recipient_too() {
        // Sequence numbers count per recipient: sender 3's seq 7 to user 1 is not its seq 7 to
        // user 2, and a second copy of the latter is a duplicate.
        let resent = Resent::default();
        resent.note(3, Dest::User(1), 7);
        assert!(resent.contains(3, Dest::User(1), 7));
        assert!(!resent.contains(3, Dest::User(2), 7));
        assert!(!resent.contains(4, Dest::User(1), 7));
        assert!(!resent.contains(3, Dest::User(1), 8));
    }

    fn scenario(clients: usize, churn: ConnectionChurn) -> Scenario {
        let mut s = Scenario::builtin_default();
        s.clients = clients;
        s.churn = churn;
        s
    }

    #[test]
    fn the_churning_share_follows_the_fraction() {
        let s = scenario(
            2_000,
            ConnectionChurn {
                fraction: 0.25,
                rate: 10.0,
                ..ConnectionChurn::default()
            },
        );
        let n = churning_clients(&s);
        assert!(
            (400..600).contains(&n),
            "{n} of 2000 churn at fraction 0.25"
        );
    }

    #[test]
    fn no_churn_section_means_no_schedule() {
        let s = scenario(100, ConnectionChurn::default());
        assert!((0..100).all(|i| ChurnSchedule::new(&s, i, 0, churning_clients(&s)).is_none()));
    }

    #[test]
    fn disconnects_add_up_to_the_rate_and_leave_room_to_come_back() {
        let s = scenario(
            200,
            ConnectionChurn {
                fraction: 0.5,
                rate: 20.0,
                offline: Duration::from_millis(100),
                abrupt: 0.3,
                handover: 0.0,
            },
        );
        let horizon_us = 100_000_000;
        let (mut total, mut abrupt) = (0u64, 0u64);
        for i in 0..s.clients {
            let Some(mut c) = ChurnSchedule::new(&s, i, 0, churning_clients(&s)) else {
                continue;
            };
            let mut back_at = 0;
            while c.next_at() < horizon_us {
                let d = c.take();
                assert!(d.at_us >= back_at, "told to drop while away");
                back_at = d.at_us + c.offline_us;
                total += 1;
                abrupt += u64::from(d.abrupt);
            }
        }
        // 20/s over 100 s, less the time spent away (100 ms per drop per client).
        let per_s = total as f64 / 100.0;
        assert!((15.0..22.0).contains(&per_s), "{per_s} disconnects/s");
        let share = abrupt as f64 / total as f64;
        assert!((0.25..0.35).contains(&share), "abrupt share {share}");
    }

    #[test]
    fn handovers_take_their_share_and_are_never_polite() {
        let s = scenario(
            100,
            ConnectionChurn {
                fraction: 1.0,
                rate: 50.0,
                offline: Duration::from_millis(100),
                abrupt: 0.0,
                handover: 0.4,
            },
        );
        let (mut total, mut handovers) = (0u64, 0u64);
        for i in 0..s.clients {
            let mut c =
                ChurnSchedule::new(&s, i, 0, churning_clients(&s)).expect("every client churns");
            while c.next_at() < 20_000_000 {
                let d = c.take();
                total += 1;
                handovers += u64::from(d.handover);
                // A connection lost with its address says no Bye; the others here are polite.
                assert_eq!(d.abrupt, d.handover, "{d:?}");
            }
        }
        let share = handovers as f64 / total as f64;
        assert!((0.35..0.45).contains(&share), "handover share {share}");
        let mut bad = s.clone();
        bad.churn.handover = 1.5;
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("churn.handover must be from 0 to 1"), "{err}");
    }

    #[test]
    fn a_churn_scenario_with_groups_or_an_offline_past_the_drain_is_refused() {
        let base = r#"
name = "t"
clients = 10
ramp_up = "1s"
warmup = "1s"
duration = "5s"
drain = "2s"
seed = 1
[direct]
rate = 1.0
arrival = "poisson"
size = { dist = "fixed", bytes = 100 }
partners = { pick = "random", count = 2 }
"#;
        let churn = "[churn]\nfraction = 0.5\nrate = 1.0\n";
        let ok = format!("{base}{churn}");
        assert!(Scenario::from_toml(&ok, "t").is_ok());
        let with_groups = format!("{ok}[groups]\ncount = 1\nrate = 1.0\n");
        let err = Scenario::from_toml(&with_groups, "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("direct chat only"), "{err}");
        let too_long = format!("{ok}offline = \"3s\"\n");
        let err = Scenario::from_toml(&too_long, "t").unwrap_err().to_string();
        assert!(err.contains("shorter than drain"), "{err}");
        let bad_share = format!("{base}[churn]\nfraction = 1.5\nrate = 1.0\n");
        let err = Scenario::from_toml(&bad_share, "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("churn.fraction"), "{err}");
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let churn = ConnectionChurn {
            fraction: 1.0,
            rate: 5.0,
            ..ConnectionChurn::default()
        };
        let s = scenario(10, churn);
        let draw = || {
            let mut c =
                ChurnSchedule::new(&s, 3, 0, churning_clients(&s)).expect("every client churns");
            (0..5).map(|_| c.take()).collect::<Vec<_>>()
        };
        assert_eq!(draw(), draw());
    }
}
