//! The group workload: which clients are in which group (the plan), and when members send
//! and churn (the schedules). The ledger that accounts for every group message is
//! `measure::group_ledger`.

use rand::rngs::SmallRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::config::scenario::{Arrival, GroupSize, Scenario, SizeDist};

/// Group sizes are reported in these buckets, so latency can be read against size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Bucket {
    /// Up to 10 members.
    Le10,
    /// 11 to 100.
    Le100,
    /// 101 to 1,000.
    Le1000,
    /// More than 1,000.
    Gt1000,
}

impl Bucket {
    /// Every bucket, smallest first.
    pub const ALL: [Bucket; 4] = [Bucket::Le10, Bucket::Le100, Bucket::Le1000, Bucket::Gt1000];

    /// The bucket of a group of `members`.
    pub fn of(members: usize) -> Self {
        match members {
            0..=10 => Bucket::Le10,
            11..=100 => Bucket::Le100,
            101..=1000 => Bucket::Le1000,
            _ => Bucket::Gt1000,
        }
    }

    /// Suffix of the per-bucket metric names (`group_le100`, `fanout_gt1000` …).
    pub fn suffix(self) -> &'static str {
        match self {
            Bucket::Le10 => "le10",
            Bucket::Le100 => "le100",
            Bucket::Le1000 => "le1000",
            Bucket::Gt1000 => "gt1000",
        }
    }

    /// Position in [`Bucket::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What a client does in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends to the group (and receives the others' messages).
    Sender,
    /// Receives only.
    Member,
    /// Receives, and leaves and rejoins during the run.
    Churner,
}

/// One planned group.
#[derive(Debug, Clone)]
pub struct PlannedGroup {
    /// The group id on the wire.
    pub id: u64,
    /// Members (user ids): senders first, then churners, then the rest.
    pub members: Vec<u64>,
    /// How many of `members` send.
    pub senders: usize,
    /// How many after the senders churn.
    pub churners: usize,
}

impl PlannedGroup {
    /// The size bucket.
    pub fn bucket(&self) -> Bucket {
        Bucket::of(self.members.len())
    }
}

/// The wire id of a plan's first group; the others follow it. A server keeps the memberships
/// of earlier loads (a member is in a group until it leaves), so plans that differ (another
/// seed, other clients or groups) use ids of their own: otherwise a member of an earlier
/// load's group would receive this load's messages to the group of the same id. Every
/// generator of one load (its shards) computes the same ids. Below 2^53, so that JSON readers
/// that hold numbers as doubles read them exactly.
fn first_group_id(s: &Scenario) -> u64 {
    // FNV-1a: a hash that is the same in every build, unlike std's.
    let text = format!("{}|{}|{}|{:?}", s.name, s.seed, s.clients, s.groups);
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    // 28 bits of it above room for 2^24 groups.
    ((hash >> 36) << 24) + 1
}

/// Every group and every client's part in them, drawn from the scenario's seed.
#[derive(Debug, Clone, Default)]
pub struct GroupPlan {
    /// The groups; group `i` has id `first_group_id + i`.
    pub groups: Vec<PlannedGroup>,
    /// For each client, the groups it is in (index into `groups`) and its role.
    pub roles: Vec<Vec<(usize, Role)>>,
}

impl GroupPlan {
    /// Draws the plan.
    pub fn new(s: &Scenario) -> Self {
        let g = &s.groups;
        let mut plan = GroupPlan {
            groups: Vec::with_capacity(g.count),
            roles: vec![Vec::new(); s.clients],
        };
        if g.count == 0 {
            return plan;
        }
        let mut rng = SmallRng::seed_from_u64(s.seed ^ 0x6772_6f75_7073);
        let first_id = first_group_id(s);
        let sizes = SizeSampler::new(g.members);
        for index in 0..g.count {
            let size = sizes.draw(&mut rng).min(s.clients);
            let members: Vec<u64> = sample(&mut rng, s.clients, size)
                .into_iter()
                .map(|m| m as u64)
                .collect();
            let senders = if g.senders == 0 { size } else { g.senders };
            let churners = g.churn.members.min(size - senders);
            for (position, &m) in members.iter().enumerate() {
                let role = if position < senders {
                    Role::Sender
                } else if position < senders + churners {
                    Role::Churner
                } else {
                    Role::Member
                };
                plan.roles[m as usize].push((index, role));
            }
            plan.groups.push(PlannedGroup {
                id: first_id + index as u64,
                members,
                senders,
                churners,
            });
        }
        plan
    }

    /// Index of the group with wire id `id`.
    pub fn index_of(&self, id: u64) -> Option<usize> {
        let first = self.groups.first()?.id;
        let i = usize::try_from(id.checked_sub(first)?).ok()?;
        (i < self.groups.len()).then_some(i)
    }

    /// Buckets that have at least one group.
    pub fn buckets(&self) -> Vec<Bucket> {
        let mut b: Vec<Bucket> = self.groups.iter().map(PlannedGroup::bucket).collect();
        b.sort();
        b.dedup();
        b
    }
}

/// Draws group sizes.
struct SizeSampler {
    min: usize,
    /// Cumulative weights for sizes min..=max (Zipf), empty otherwise.
    cdf: Vec<f64>,
    dist: GroupSize,
}

impl SizeSampler {
    fn new(dist: GroupSize) -> Self {
        let (min, max) = dist.bounds();
        let cdf = match dist {
            GroupSize::Zipf { exponent, .. } => {
                let mut total = 0.0;
                (min..=max)
                    .map(|s| {
                        total += (s as f64).powf(-exponent);
                        total
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        Self { min, cdf, dist }
    }

    fn draw(&self, rng: &mut SmallRng) -> usize {
        match self.dist {
            GroupSize::Fixed { size } => size,
            GroupSize::Uniform { min, max } => rng.random_range(min..=max),
            GroupSize::Zipf { .. } => {
                let total = self.cdf.last().copied().unwrap_or(0.0);
                let u = rng.random::<f64>() * total;
                self.min + self.cdf.partition_point(|&c| c < u)
            }
        }
    }
}

/// What a client's group schedule asks for next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GroupEvent {
    /// Send a message of `size` bytes to group index `group`.
    Send {
        /// Group index.
        group: usize,
        /// Body size.
        size: usize,
    },
    /// Leave group index `group` if in it, rejoin it if not.
    Toggle {
        /// Group index.
        group: usize,
    },
}

/// One client's timeline of group sends and membership changes.
pub struct GroupSchedule {
    rng: SmallRng,
    sends: Option<Stream>,
    toggles: Option<Stream>,
    size: SizeDist,
}

/// One Poisson or constant stream over weighted groups.
struct Stream {
    next_us: f64,
    mean_gap_us: f64,
    arrival: Arrival,
    /// (group index, cumulative rate)
    groups: Vec<(usize, f64)>,
}

impl Stream {
    fn new(
        groups: Vec<(usize, f64)>,
        arrival: Arrival,
        start_us: u64,
        rng: &mut SmallRng,
    ) -> Option<Self> {
        let mut total = 0.0;
        let groups: Vec<(usize, f64)> = groups
            .into_iter()
            .filter(|(_, r)| *r > 0.0)
            .map(|(g, r)| {
                total += r;
                (g, total)
            })
            .collect();
        if total <= 0.0 {
            return None;
        }
        let mean_gap_us = 1e6 / total;
        let first = match arrival {
            Arrival::Poisson => exponential(rng, mean_gap_us),
            Arrival::Constant => rng.random::<f64>() * mean_gap_us,
        };
        Some(Self {
            next_us: start_us as f64 + first,
            mean_gap_us,
            arrival,
            groups,
        })
    }

    fn advance(&mut self, rng: &mut SmallRng) -> (u64, usize) {
        let at = self.next_us as u64;
        self.next_us += match self.arrival {
            Arrival::Poisson => exponential(rng, self.mean_gap_us),
            Arrival::Constant => self.mean_gap_us,
        };
        let total = self.groups.last().map_or(0.0, |g| g.1);
        let u = rng.random::<f64>() * total;
        let i = self
            .groups
            .partition_point(|g| g.1 < u)
            .min(self.groups.len() - 1);
        (at, self.groups[i].0)
    }
}

impl GroupSchedule {
    /// Client `index`'s schedule from `start_us`; `None` when it neither sends to a group nor
    /// churns.
    pub fn new(s: &Scenario, plan: &GroupPlan, index: usize, start_us: u64) -> Option<Self> {
        let roles = plan.roles.get(index)?;
        let mut rng =
            SmallRng::seed_from_u64(s.seed ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
        let g = &s.groups;
        let sends: Vec<(usize, f64)> = roles
            .iter()
            .filter(|(_, r)| *r == Role::Sender)
            .map(|&(gi, _)| (gi, g.rate / plan.groups[gi].senders.max(1) as f64))
            .collect();
        let toggles: Vec<(usize, f64)> = roles
            .iter()
            .filter(|(_, r)| *r == Role::Churner)
            .map(|&(gi, _)| (gi, g.churn.rate / plan.groups[gi].churners.max(1) as f64))
            .collect();
        let sends = Stream::new(sends, g.arrival, start_us, &mut rng);
        let toggles = Stream::new(toggles, Arrival::Poisson, start_us, &mut rng);
        if sends.is_none() && toggles.is_none() {
            return None;
        }
        Some(Self {
            rng,
            sends,
            toggles,
            size: g.size,
        })
    }

    /// When the next event is due (µs since run start).
    pub fn next_at(&self) -> u64 {
        let s = self.sends.as_ref().map_or(f64::INFINITY, |s| s.next_us);
        let t = self.toggles.as_ref().map_or(f64::INFINITY, |t| t.next_us);
        s.min(t).min(u64::MAX as f64) as u64
    }

    /// Takes the next event and when it is due.
    pub fn take_next(&mut self) -> (u64, GroupEvent) {
        let s = self.sends.as_ref().map_or(f64::INFINITY, |s| s.next_us);
        let t = self.toggles.as_ref().map_or(f64::INFINITY, |t| t.next_us);
        if s <= t {
            if let Some(sends) = &mut self.sends {
                let (at, group) = sends.advance(&mut self.rng);
                let size = match self.size {
                    SizeDist::Fixed { bytes } => bytes,
                    SizeDist::Uniform { min, max } => self.rng.random_range(min..=max),
                } as usize;
                return (at, GroupEvent::Send { group, size });
            }
        }
        match &mut self.toggles {
            Some(toggles) => {
                let (at, group) = toggles.advance(&mut self.rng);
                (at, GroupEvent::Toggle { group })
            }
            // new() refuses a schedule with neither stream.
            None => (u64::MAX, GroupEvent::Toggle { group: 0 }),
        }
    }
}

fn exponential(rng: &mut SmallRng, mean: f64) -> f64 {
    -(1.0 - rng.random::<f64>()).ln() * mean
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(text: &str) -> Scenario {
        let base = crate::config::scenario::DEFAULT_SCENARIO;
        Scenario::from_toml(&format!("{base}\n{text}"), "t").expect("scenario")
    }

    #[test]
    fn plan_draws_distinct_members_with_roles_in_order() {
        let s = scenario(
            "[groups]\ncount = 20\nmembers = { dist = \"uniform\", min = 5, max = 50 }\nsenders = 2\nchurn = { members = 3, rate = 1.0 }",
        );
        let plan = GroupPlan::new(&s);
        assert_eq!(plan.groups.len(), 20);
        for (gi, g) in plan.groups.iter().enumerate() {
            assert!((5..=50).contains(&g.members.len()));
            let mut m = g.members.clone();
            m.sort();
            m.dedup();
            assert_eq!(m.len(), g.members.len(), "a member twice");
            assert_eq!((g.senders, g.churners), (2, 3));
            for (pos, &u) in g.members.iter().enumerate() {
                let role = plan.roles[u as usize]
                    .iter()
                    .find(|(i, _)| *i == gi)
                    .map(|r| r.1);
                let want = match pos {
                    0..=1 => Role::Sender,
                    2..=4 => Role::Churner,
                    _ => Role::Member,
                };
                assert_eq!(role, Some(want));
            }
        }
        // The same seed gives the same plan, ids included: every shard names a group alike.
        let again = GroupPlan::new(&s);
        assert_eq!(again.groups[7].members, plan.groups[7].members);
        assert_eq!(again.groups[7].id, plan.groups[7].id);
        assert_eq!(plan.index_of(plan.groups[7].id), Some(7));
        assert_eq!(plan.groups[7].id, plan.groups[0].id + 7);
        assert!(plan.groups[19].id < 1 << 53);
        // Another seed draws other groups, under other ids: a server still holding the
        // memberships of the first load would otherwise deliver to its members.
        let mut other = s.clone();
        other.seed += 1;
        let other = GroupPlan::new(&other);
        let ids = |p: &GroupPlan| p.groups.iter().map(|g| g.id).collect::<Vec<_>>();
        assert!(ids(&other).iter().all(|id| !ids(&plan).contains(id)));
    }

    #[test]
    fn zipf_sizes_follow_the_power_law_within_bounds() {
        let s =
            scenario("[groups]\ncount = 4000\nmembers = { dist = \"zipf\", min = 2, max = 1000 }");
        let plan = GroupPlan::new(&s);
        let sizes: Vec<usize> = plan.groups.iter().map(|g| g.members.len()).collect();
        assert!(sizes.iter().all(|s| (2..=1000).contains(s)));
        // P(size <= 10) = sum 1/s for s in 2..=10 over sum 1/s for s in 2..=1000.
        let h = |a: usize, b: usize| (a..=b).map(|s| 1.0 / s as f64).sum::<f64>();
        let want = h(2, 10) / h(2, 1000);
        let got = sizes.iter().filter(|&&s| s <= 10).count() as f64 / sizes.len() as f64;
        assert!(
            (got - want).abs() < 0.03,
            "P(size <= 10) {got}, want {want}"
        );
        let twos = sizes.iter().filter(|&&s| s == 2).count();
        let twenties = sizes.iter().filter(|&&s| s == 20).count();
        assert!(twos > 4 * twenties, "size 2: {twos}, size 20: {twenties}");
    }

    #[test]
    fn sender_rate_is_the_group_rate_over_its_senders() {
        let s = scenario("[groups]\ncount = 1\nmembers = { dist = \"fixed\", size = 4 }\nsenders = 2\nrate = 100.0");
        let plan = GroupPlan::new(&s);
        let sender = plan.groups[0].members[0] as usize;
        let mut sched = GroupSchedule::new(&s, &plan, sender, 0).expect("a sender");
        let mut last = 0;
        let n = 5000;
        for _ in 0..n {
            let (at, e) = sched.take_next();
            assert!(matches!(e, GroupEvent::Send { group: 0, .. }));
            last = at;
        }
        let rate = n as f64 / (last as f64 / 1e6);
        assert!((rate - 50.0).abs() < 3.0, "rate {rate}");
        let member = plan.groups[0].members[3] as usize;
        assert!(GroupSchedule::new(&s, &plan, member, 0).is_none());
    }
}
