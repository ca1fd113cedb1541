//! One direction of an emulated link: what happens to each packet offered to it. A packet is
//! lost (at random, or in bursts), dropped because the link's queue is full, or delivered at a
//! time worked out from the link's bandwidth (the packet waits for those before it to be
//! serialised, then for its own bits), its one-way delay and a jitter. Packets leave in the order
//! they came: jitter spreads their delays but never reorders them, as on one path through one
//! queue; a packet whose delay came out shorter than the one before it waits for that one, so
//! packets closer together than the jitter are delayed more than the delay on average.
//!
//! Pure: time is given by the caller, randomness comes from a seeded generator, so the model is
//! tested without a clock or a network.

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// The properties of one direction of a link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// One-way delay added to every packet.
    #[serde(default, with = "humantime_serde")]
    pub delay: Duration,
    /// Each packet's delay varies by up to this much either way (uniformly), never below 0.
    #[serde(default, with = "humantime_serde")]
    pub jitter: Duration,
    /// Share of packets lost, over a long run: 0.01 is 1 %.
    #[serde(default)]
    pub loss: f64,
    /// Mean length of a run of lost packets: 1 loses each packet on its own; above 1, losses
    /// come in bursts of this mean length (a two-state Gilbert model) at the same long-run
    /// share.
    #[serde(default = "one")]
    pub loss_burst: f64,
    /// Bandwidth in bits per second; none is unlimited.
    #[serde(default)]
    pub rate_bps: Option<u64>,
    /// Bytes the link's queue holds while packets wait for the bandwidth; a packet that does
    /// not fit is dropped (tail drop). Used only with a bandwidth.
    #[serde(default = "default_queue")]
    pub queue_bytes: u64,
}

/// What the link does, in a few words: `25ms ±5ms, 1 % loss in bursts of 3, 8 Mbit/s`, or
/// `nothing` for a link that passes packets on untouched.
impl std::fmt::Display for LinkSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.delay.is_zero() || !self.jitter.is_zero() {
            let mut delay = humantime::format_duration(self.delay).to_string();
            if !self.jitter.is_zero() {
                delay.push_str(&format!(" ±{}", humantime::format_duration(self.jitter)));
            }
            parts.push(delay);
        }
        if self.loss > 0.0 {
            let mut loss = format!("{} % loss", self.loss * 100.0);
            if self.loss_burst > 1.0 {
                loss.push_str(&format!(" in bursts of {}", self.loss_burst));
            }
            parts.push(loss);
        }
        if let Some(bps) = self.rate_bps {
            parts.push(if bps >= 1_000_000 {
                format!("{} Mbit/s", bps as f64 / 1e6)
            } else {
                format!("{} kbit/s", bps as f64 / 1e3)
            });
            // The queue matters only behind a bandwidth; named when not the default, so that
            // two links that differ in it read apart.
            if self.queue_bytes != default_queue() {
                parts.push(if self.queue_bytes.is_multiple_of(1024) {
                    format!("queue {} KiB", self.queue_bytes / 1024)
                } else {
                    format!("queue {} B", self.queue_bytes)
                });
            }
        }
        if parts.is_empty() {
            return f.write_str("nothing");
        }
        f.write_str(&parts.join(", "))
    }
}

fn one() -> f64 {
    1.0
}

/// 64 KiB: about 40 full-size packets.
fn default_queue() -> u64 {
    64 * 1024
}

impl Default for LinkSpec {
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            loss_burst: one(),
            rate_bps: None,
            queue_bytes: default_queue(),
        }
    }
}

/// What a link spec may not be.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error(
        "loss must be at least 0 and below 1 (0.01 is 1 %; 1 would lose every packet), not {0}"
    )]
    Loss(f64),
    #[error("loss_burst is a mean run of lost packets: at least 1, not {0}")]
    Burst(f64),
    #[error("rate_bps must be above 0 (leave it out for no limit)")]
    Rate,
    #[error("queue_bytes must hold at least one full packet (1,500 bytes), not {0}")]
    Queue(u64),
    #[error("a delay of {0:?} is not a network path's: at most 60 s")]
    DelayTooLong(Duration),
    #[error("a jitter of {0:?} is not a network path's: at most 10 s")]
    JitterTooLong(Duration),
    #[error("loss_burst {0} without loss loses nothing: give loss too, or leave loss_burst out")]
    BurstWithoutLoss(f64),
    #[error("queue_bytes holds packets waiting for a bandwidth, and there is none: give rate_bps too, or leave queue_bytes out")]
    QueueWithoutRate,
}

impl LinkSpec {
    /// Refuses what no path can be.
    pub fn validate(&self) -> Result<(), SpecError> {
        // A loss of 1 loses every packet: no connection could ever be made over it.
        if !(0.0..1.0).contains(&self.loss) {
            return Err(SpecError::Loss(self.loss));
        }
        if !(self.loss_burst >= 1.0 && self.loss_burst.is_finite()) {
            return Err(SpecError::Burst(self.loss_burst));
        }
        if self.rate_bps == Some(0) {
            return Err(SpecError::Rate);
        }
        if self.queue_bytes < 1500 {
            return Err(SpecError::Queue(self.queue_bytes));
        }
        if self.delay > Duration::from_secs(60) {
            return Err(SpecError::DelayTooLong(self.delay));
        }
        if self.jitter > Duration::from_secs(10) {
            return Err(SpecError::JitterTooLong(self.jitter));
        }
        // Settings that would do nothing are refused rather than run without their effect:
        // whoever wrote them expected one.
        if self.loss == 0.0 && self.loss_burst > 1.0 {
            return Err(SpecError::BurstWithoutLoss(self.loss_burst));
        }
        if self.rate_bps.is_none() && self.queue_bytes != default_queue() {
            return Err(SpecError::QueueWithoutRate);
        }
        Ok(())
    }

    /// Whether the link passes packets on at once, untouched.
    pub fn is_transparent(&self) -> bool {
        self.delay.is_zero() && self.jitter.is_zero() && self.loss == 0.0 && self.rate_bps.is_none()
    }
}

/// What became of a packet offered to a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// To be delivered at this instant.
    Deliver(Instant),
    /// Lost on the way.
    Lost,
    /// Dropped: the link's queue was full.
    QueueFull,
    /// Dropped: the client's address was out of reach (see [`crate::flows::Outages`]).
    Unreachable,
}

/// One direction of a link, with its state: the loss model's, the queue's, the last departure.
#[derive(Debug)]
pub struct Link {
    spec: LinkSpec,
    rng: SmallRng,
    /// In the Gilbert model's bad state (every packet lost).
    in_burst: bool,
    /// When the link has finished serialising the packets already queued.
    free_at: Option<Instant>,
    /// The last delivery time given out: no packet leaves before it.
    last_delivery: Option<Instant>,
}

impl Link {
    /// A link with `spec` (validated by the caller), its randomness from `seed`.
    pub fn new(spec: LinkSpec, seed: u64) -> Self {
        Self {
            spec,
            rng: SmallRng::seed_from_u64(seed),
            in_burst: false,
            free_at: None,
            last_delivery: None,
        }
    }

    /// The link's spec.
    pub fn spec(&self) -> &LinkSpec {
        &self.spec
    }

    /// Offers a packet of `bytes` arriving at `now`.
    pub fn offer(&mut self, now: Instant, bytes: usize) -> Fate {
        if self.lose() {
            return Fate::Lost;
        }
        let sent = match self.spec.rate_bps {
            None => now,
            Some(rate) => {
                let start = self.free_at.map_or(now, |f| f.max(now));
                // Bytes still waiting ahead of this packet, at the link's rate.
                let backlog = (start - now).as_secs_f64() * rate as f64 / 8.0;
                if backlog + bytes as f64 > self.spec.queue_bytes as f64 {
                    return Fate::QueueFull;
                }
                let done = start + Duration::from_secs_f64(bytes as f64 * 8.0 / rate as f64);
                self.free_at = Some(done);
                done
            }
        };
        let at = sent + self.delay_sample();
        let at = self.last_delivery.map_or(at, |last| at.max(last));
        self.last_delivery = Some(at);
        Fate::Deliver(at)
    }

    /// Whether the next packet is lost.
    fn lose(&mut self) -> bool {
        let p = self.spec.loss;
        if p <= 0.0 {
            return false;
        }
        let burst = self.spec.loss_burst;
        if burst <= 1.0 {
            return self.rng.random_bool(p);
        }
        // Gilbert: leave a burst with probability 1/burst (so bursts last `burst` packets on
        // average); enter one at the rate that makes the long-run share of lost packets p.
        if self.in_burst {
            self.in_burst = !self.rng.random_bool(1.0 / burst);
        } else {
            let enter = (p / (burst * (1.0 - p))).min(1.0);
            self.in_burst = p >= 1.0 || self.rng.random_bool(enter);
        }
        self.in_burst
    }

    fn delay_sample(&mut self) -> Duration {
        let base = self.spec.delay.as_secs_f64();
        let j = self.spec.jitter.as_secs_f64();
        let d = if j > 0.0 {
            base + self.rng.random_range(-j..=j)
        } else {
            base
        };
        Duration::from_secs_f64(d.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_says_what_it_does_in_a_few_words() {
        let link = LinkSpec {
            delay: Duration::from_millis(25),
            jitter: Duration::from_millis(5),
            loss: 0.01,
            loss_burst: 3.0,
            rate_bps: Some(8_000_000),
            ..LinkSpec::default()
        };
        assert_eq!(
            link.to_string(),
            "25ms ±5ms, 1 % loss in bursts of 3, 8 Mbit/s"
        );
        let slow = LinkSpec {
            rate_bps: Some(750_000),
            ..LinkSpec::default()
        };
        assert_eq!(slow.to_string(), "750 kbit/s");
        let queued = LinkSpec {
            queue_bytes: 16 * 1024,
            ..slow.clone()
        };
        assert_eq!(queued.to_string(), "750 kbit/s, queue 16 KiB");
        // Without a bandwidth nothing queues.
        let unlimited = LinkSpec {
            queue_bytes: 1500,
            ..LinkSpec::default()
        };
        assert_eq!(unlimited.to_string(), "nothing");
        assert_eq!(LinkSpec::default().to_string(), "nothing");
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn a_delay_is_added_to_every_packet() {
        let mut l = Link::new(
            LinkSpec {
                delay: ms(20),
                ..LinkSpec::default()
            },
            1,
        );
        let t0 = Instant::now();
        assert_eq!(l.offer(t0, 1200), Fate::Deliver(t0 + ms(20)));
        assert_eq!(l.offer(t0 + ms(5), 1200), Fate::Deliver(t0 + ms(25)));
    }

    #[test]
    fn jitter_spreads_delays_within_its_bounds_without_reordering() {
        let mut l = Link::new(
            LinkSpec {
                delay: ms(20),
                jitter: ms(5),
                ..LinkSpec::default()
            },
            2,
        );
        let t0 = Instant::now();
        // Packets 10 ms apart: no packet is held back behind another, each delay is its own.
        let mut spread = (Duration::MAX, Duration::ZERO);
        for i in 0..2_000u64 {
            let now = t0 + ms(i * 10);
            let Fate::Deliver(at) = l.offer(now, 100) else {
                panic!("no loss configured")
            };
            let d = at - now;
            spread = (spread.0.min(d), spread.1.max(d));
        }
        assert!(spread.0 >= ms(15) && spread.0 < ms(16), "{spread:?}");
        assert!(spread.1 <= ms(25) && spread.1 > ms(24), "{spread:?}");
        // Packets 100 µs apart: a packet whose delay came out shorter waits for the one
        // before it, as behind it in a queue.
        let t1 = t0 + ms(30_000);
        let mut last = t1;
        for i in 0..2_000u64 {
            let now = t1 + Duration::from_micros(i * 100);
            let Fate::Deliver(at) = l.offer(now, 100) else {
                panic!("no loss configured")
            };
            assert!(at >= last, "packet {i} would overtake the one before");
            assert!(at - now >= ms(15), "{:?}", at - now);
            last = at;
        }
    }

    #[test]
    fn random_loss_takes_its_share() {
        let mut l = Link::new(
            LinkSpec {
                loss: 0.05,
                ..LinkSpec::default()
            },
            3,
        );
        let t0 = Instant::now();
        let lost = (0..100_000)
            .filter(|_| l.offer(t0, 100) == Fate::Lost)
            .count();
        assert!((4_500..=5_500).contains(&lost), "{lost}");
    }

    #[test]
    fn burst_loss_keeps_the_share_in_runs_of_the_mean_length() {
        let mut l = Link::new(
            LinkSpec {
                loss: 0.05,
                loss_burst: 4.0,
                ..LinkSpec::default()
            },
            4,
        );
        let t0 = Instant::now();
        let fates: Vec<bool> = (0..200_000)
            .map(|_| l.offer(t0, 100) == Fate::Lost)
            .collect();
        let lost = fates.iter().filter(|x| **x).count();
        let runs = fates.windows(2).filter(|w| !w[0] && w[1]).count();
        assert!((8_500..=11_500).contains(&lost), "{lost}");
        let mean = lost as f64 / runs as f64;
        assert!((3.4..=4.6).contains(&mean), "mean burst {mean}");
    }

    #[test]
    fn bandwidth_spaces_packets_and_a_full_queue_drops() {
        // 1 Mbit/s: a 1,250-byte packet takes 10 ms; the queue holds 4 of them.
        let mut l = Link::new(
            LinkSpec {
                rate_bps: Some(1_000_000),
                queue_bytes: 5_000,
                ..LinkSpec::default()
            },
            5,
        );
        let t0 = Instant::now();
        let fates: Vec<Fate> = (0..6).map(|_| l.offer(t0, 1_250)).collect();
        assert_eq!(fates[0], Fate::Deliver(t0 + ms(10)));
        assert_eq!(fates[3], Fate::Deliver(t0 + ms(40)));
        assert_eq!(fates[4], Fate::QueueFull);
        assert_eq!(fates[5], Fate::QueueFull);
        // Once the queue drains, packets pass again.
        assert_eq!(l.offer(t0 + ms(40), 1_250), Fate::Deliver(t0 + ms(50)));
    }

    #[test]
    fn specs_no_path_can_have_are_refused() {
        let bad = |f: fn(&mut LinkSpec)| {
            let mut s = LinkSpec::default();
            f(&mut s);
            s.validate()
        };
        assert_eq!(bad(|s| s.loss = 1.5), Err(SpecError::Loss(1.5)));
        assert_eq!(bad(|s| s.loss = 1.0), Err(SpecError::Loss(1.0)));
        assert_eq!(bad(|s| s.loss_burst = 0.5), Err(SpecError::Burst(0.5)));
        assert_eq!(bad(|s| s.rate_bps = Some(0)), Err(SpecError::Rate));
        assert_eq!(bad(|s| s.queue_bytes = 100), Err(SpecError::Queue(100)));
        assert!(bad(|s| s.delay = Duration::from_secs(61)).is_err());
        assert_eq!(
            bad(|s| s.loss_burst = 3.0),
            Err(SpecError::BurstWithoutLoss(3.0))
        );
        assert_eq!(
            bad(|s| {
                s.loss = 0.01;
                s.loss_burst = 3.0;
            }),
            Ok(())
        );
        assert_eq!(
            bad(|s| s.queue_bytes = 3000),
            Err(SpecError::QueueWithoutRate)
        );
        assert_eq!(
            bad(|s| {
                s.queue_bytes = 3000;
                s.rate_bps = Some(1_000_000);
            }),
            Ok(())
        );
        assert_eq!(bad(|_| {}), Ok(()));
        assert!(LinkSpec::default().is_transparent());
    }
}
