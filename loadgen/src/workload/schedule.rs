//! Per-client send schedules: when each message is due, how big it is, and who gets it. Drawn
//! from the scenario's seed, so the same scenario and seed give the same schedule.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::config::scenario::{Arrival, Partners, Scenario, SizeDist};

/// One client's message stream.
pub struct Schedule {
    rng: SmallRng,
    arrival: Arrival,
    mean_gap_us: f64,
    size: SizeDist,
    next_us: f64,
    /// Contacts (user ids) of this client.
    pub partners: Vec<u64>,
}

/// One message the schedule asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Due {
    /// When it is due (µs since run start).
    pub at_us: u64,
    /// Body size in bytes.
    pub size: usize,
    /// Index into [`Schedule::partners`].
    pub partner: usize,
}

impl Schedule {
    /// The schedule of client `index` (user id = index), starting at `start_us`; `None` when
    /// direct chat is off.
    pub fn new(s: &Scenario, index: usize, start_us: u64) -> Option<Self> {
        if s.direct.rate <= 0.0 {
            return None;
        }
        let mut rng = client_rng(s, index);
        let partners = pick_partners(s.direct.partners, index, s.clients, &mut rng);
        let mean_gap_us = 1e6 / s.direct.rate;
        // A random first offset, so clients do not send in lockstep.
        let first = match s.direct.arrival {
            Arrival::Poisson => exponential(&mut rng, mean_gap_us),
            Arrival::Constant => rng.random::<f64>() * mean_gap_us,
        };
        Some(Self {
            rng,
            arrival: s.direct.arrival,
            mean_gap_us,
            size: s.direct.size,
            next_us: start_us as f64 + first,
            partners,
        })
    }

    /// The next message due.
    pub fn next_due(&mut self) -> Due {
        let at_us = self.next_us as u64;
        self.next_us += match self.arrival {
            Arrival::Poisson => exponential(&mut self.rng, self.mean_gap_us),
            Arrival::Constant => self.mean_gap_us,
        };
        let size = match self.size {
            SizeDist::Fixed { bytes } => bytes,
            SizeDist::Uniform { min, max } => self.rng.random_range(min..=max),
        } as usize;
        let partner = self.rng.random_range(0..self.partners.len());
        Due {
            at_us,
            size,
            partner,
        }
    }
}

/// Client `index`'s contacts: the users its direct messages and its files go to.
pub(crate) fn contacts(s: &Scenario, index: usize) -> Vec<u64> {
    let mut rng = client_rng(s, index);
    pick_partners(s.direct.partners, index, s.clients, &mut rng)
}

fn client_rng(s: &Scenario, index: usize) -> SmallRng {
    SmallRng::seed_from_u64(s.seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

pub(crate) fn exponential(rng: &mut SmallRng, mean: f64) -> f64 {
    // 1 - u is in (0, 1], so the logarithm is finite.
    -(1.0 - rng.random::<f64>()).ln() * mean
}

fn pick_partners(p: Partners, index: usize, clients: usize, rng: &mut SmallRng) -> Vec<u64> {
    match p {
        Partners::Ring { count } => (1..=count)
            .map(|k| ((index + k) % clients) as u64)
            .collect(),
        Partners::Random { count } => {
            let mut chosen = Vec::with_capacity(count);
            while chosen.len() < count {
                let c = rng.random_range(0..clients);
                if c != index && !chosen.contains(&(c as u64)) {
                    chosen.push(c as u64);
                }
            }
            chosen
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(arrival: Arrival, rate: f64) -> Scenario {
        let mut s = Scenario::builtin_default();
        s.direct.arrival = arrival;
        s.direct.rate = rate;
        s
    }

    #[test]
    fn poisson_schedule_has_the_mean_rate_and_is_reproducible() {
        let s = scenario(Arrival::Poisson, 100.0);
        let mut a = Schedule::new(&s, 5, 0).unwrap();
        let mut b = Schedule::new(&s, 5, 0).unwrap();
        let n = 20_000;
        let mut last = 0;
        for _ in 0..n {
            let d = a.next_due();
            assert_eq!(d, b.next_due());
            assert!(d.at_us >= last);
            last = d.at_us;
        }
        let rate = n as f64 / (last as f64 / 1e6);
        assert!((rate - 100.0).abs() < 3.0, "rate {rate}");
    }

    #[test]
    fn constant_schedule_is_evenly_spaced() {
        let mut s = Schedule::new(&scenario(Arrival::Constant, 10.0), 1, 1_000).unwrap();
        let first = s.next_due().at_us;
        assert!((1_000..101_000).contains(&first));
        assert_eq!(s.next_due().at_us - first, 100_000);
    }

    #[test]
    fn partners_are_distinct_and_never_self() {
        let s = Scenario::builtin_default();
        for i in 0..200 {
            let p = Schedule::new(&s, i, 0).unwrap().partners;
            assert_eq!(p.len(), 5);
            assert!(!p.contains(&(i as u64)));
            let mut q = p.clone();
            q.sort();
            q.dedup();
            assert_eq!(q.len(), 5);
        }
        let ring = pick_partners(
            Partners::Ring { count: 2 },
            9,
            10,
            &mut SmallRng::seed_from_u64(0),
        );
        assert_eq!(ring, vec![0, 1]);
        assert!(Schedule::new(&scenario(Arrival::Poisson, 0.0), 0, 0).is_none());
    }
}
