//! The group ledger: every group message sent, every membership change and delivery seen,
//! live, written lock-free by senders and recipients. After the run it hands its content over
//! as [`GroupRecords`], which `group_records::settle` accounts for (the accounting and the
//! join/leave race are defined there).
//!
//! A message is named by its ledger slot, which its id carries. Generators that run shards of
//! one scenario give their senders disjoint ranges of one slot space, sized from the scenario
//! alone, so that a member in one shard records a message of another shard's sender under the
//! slot every shard knows it by.

use std::ops::Range;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

use crate::config::scenario::Scenario;
use crate::config::shard::Shard;
use crate::measure::group_records::{
    settle, GroupCounts, GroupOutcome, GroupRecords, MembershipEvent, Receipts, Sent, Shape,
    REJECTED,
};
pub use crate::measure::group_records::{ChurnerDelivery, Membership};
use crate::workload::groups::GroupPlan;
use crate::workload::message_ids::{group_msg_id, slot_in_id, MAX_SLOTS};

/// One group message's record.
#[derive(Debug)]
struct Slot {
    group: AtomicU64,
    sender: AtomicU64,
    intended_us: AtomicU64,
    sent_us: AtomicU64,
    /// 0 until answered; `REJECTED` when refused.
    answered_us: AtomicU64,
    /// Deliveries to members that joined before the send and never churn.
    delivered: AtomicU32,
    race_delivered: AtomicU32,
    first_us: AtomicU64,
    last_us: AtomicU64,
}

impl Default for Slot {
    fn default() -> Self {
        Self {
            group: AtomicU64::new(0),
            sender: AtomicU64::new(0),
            intended_us: AtomicU64::new(0),
            sent_us: AtomicU64::new(0),
            answered_us: AtomicU64::new(0),
            delivered: AtomicU32::new(0),
            race_delivered: AtomicU32::new(0),
            // A member may receive a message before (or without) its sender's slot being
            // opened here: another shard's sender.
            first_us: AtomicU64::new(u64::MAX),
            last_us: AtomicU64::new(0),
        }
    }
}

/// Counters of one group, live.
#[derive(Debug, Default)]
pub struct GroupCounters {
    /// Messages sent to the group.
    pub sent: AtomicU64,
    /// Distinct deliveries received (expected and in-race).
    pub delivered: AtomicU64,
    /// Deliveries received again.
    pub duplicated: AtomicU64,
    /// Deliveries that arrived after a later one of the same sender.
    pub reordered: AtomicU64,
}

/// Every group message of a run, written lock-free by senders and recipients and read once,
/// after every client task has ended.
pub struct GroupLedger {
    slots: Vec<Slot>,
    /// The slots this generator's senders open, in order.
    own: Range<usize>,
    next: AtomicUsize,
    /// Group messages sent beyond the ledger's capacity (not tracked for fan-out).
    pub untracked: AtomicU64,
    /// Per group, by index.
    pub counters: Vec<GroupCounters>,
    /// Every group delivery received, for the drain's quiet check.
    pub deliveries: AtomicU64,
    log: Mutex<Vec<MembershipEvent>>,
    churner_deliveries: Mutex<Vec<ChurnerDelivery>>,
}

/// Slots for `expected` messages, with room for Poisson variation.
fn capacity(expected: f64) -> usize {
    (expected * 1.2 + 6.0 * expected.sqrt() + 1024.0) as usize
}

/// The slot range of each of `count` shards: sized by the group messages its senders are due
/// to send (a group's rate is split evenly among its senders), laid end to end.
fn shard_ranges(s: &Scenario, plan: &GroupPlan, count: usize) -> Vec<Range<usize>> {
    let window = (s.warmup + s.duration).as_secs_f64();
    let mut share = vec![0.0; count];
    for g in &plan.groups {
        for &m in &g.members[..g.senders] {
            share[m as usize % count] += 1.0 / g.senders.max(1) as f64;
        }
    }
    let mut start = 0;
    share
        .iter()
        .map(|&sh| {
            let n = if sh > 0.0 {
                capacity(s.groups.rate * window * sh)
            } else {
                0
            };
            let range = start.min(MAX_SLOTS)..(start + n).min(MAX_SLOTS);
            start += n;
            range
        })
        .collect()
}

impl GroupLedger {
    /// A ledger sized for the scenario's expected group messages; with a shard, one whose
    /// senders open the shard's range of the slot space every shard shares.
    pub fn new(s: &Scenario, plan: &GroupPlan, shard: Option<Shard>) -> Self {
        let (len, own) = if plan.groups.is_empty() {
            (0, 0..0)
        } else {
            match shard {
                None => {
                    let window = (s.warmup + s.duration).as_secs_f64();
                    let n =
                        capacity(s.groups.rate * plan.groups.len() as f64 * window).min(MAX_SLOTS);
                    (n, 0..n)
                }
                Some(sh) => {
                    let ranges = shard_ranges(s, plan, sh.count);
                    let len = ranges.last().map_or(0, |r| r.end);
                    (len, ranges[sh.index - 1].clone())
                }
            }
        };
        Self {
            slots: (0..len).map(|_| Slot::default()).collect(),
            own,
            next: AtomicUsize::new(0),
            untracked: AtomicU64::new(0),
            counters: (0..plan.groups.len())
                .map(|_| GroupCounters::default())
                .collect(),
            deliveries: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            churner_deliveries: Mutex::new(Vec::new()),
        }
    }

    /// Records a message about to be sent and returns its message id, or `None` when the ledger
    /// is full: the message is then not sent, and counted as `untracked`.
    pub fn open(&self, group: usize, sender: u64, intended_us: u64, sent_us: u64) -> Option<u64> {
        let slot = self.own.start + self.next.fetch_add(1, Relaxed);
        let Some(s) = self.slots.get(slot).filter(|_| slot < self.own.end) else {
            self.untracked.fetch_add(1, Relaxed);
            return None;
        };
        self.counters[group].sent.fetch_add(1, Relaxed);
        s.group.store(group as u64, Relaxed);
        s.sender.store(sender, Relaxed);
        s.intended_us.store(intended_us, Relaxed);
        s.sent_us.store(sent_us, Relaxed);
        Some(group_msg_id(intended_us, slot))
    }
    /// The sender got the Ack of `msg_id` at `at_us`.
    pub fn acked(&self, msg_id: u64, at_us: u64) {
        if let Some(s) = self.slot(msg_id) {
            s.answered_us.store(at_us.max(1), Relaxed);
        }
    }

    /// The sender got a Reject of `msg_id`.
    pub fn rejected(&self, msg_id: u64) {
        if let Some(s) = self.slot(msg_id) {
            s.answered_us.store(REJECTED, Relaxed);
        }
    }

    /// A member that joined before the message was sent, and never churns, received it.
    pub fn delivered_expected(&self, msg_id: u64, at_us: u64) {
        if let Some(s) = self.slot(msg_id) {
            s.delivered.fetch_add(1, Relaxed);
            s.first_us.fetch_min(at_us, Relaxed);
            s.last_us.fetch_max(at_us, Relaxed);
        }
    }

    /// A member whose Joined arrived after the message was sent received it.
    pub fn delivered_in_race(&self, msg_id: u64) {
        if let Some(s) = self.slot(msg_id) {
            s.race_delivered.fetch_add(1, Relaxed);
        }
    }

    /// Slot index of a group message id that this ledger tracks.
    pub fn slot_of(&self, msg_id: u64) -> Option<usize> {
        slot_in_id(msg_id).filter(|&slot| slot < self.slots.len())
    }

    fn slot(&self, msg_id: u64) -> Option<&Slot> {
        self.slot_of(msg_id).map(|i| &self.slots[i])
    }

    /// Notes a membership change.
    pub fn membership(&self, group: usize, user: u64, kind: Membership, at_us: u64) {
        let e = MembershipEvent {
            group,
            user,
            kind,
            at_us,
        };
        self.log.lock().unwrap_or_else(|p| p.into_inner()).push(e);
    }

    /// Hands over a client's deliveries to churning members, at the end of its receive task.
    pub fn add_churner_deliveries(&self, d: Vec<ChurnerDelivery>) {
        if !d.is_empty() {
            let mut all = self
                .churner_deliveries
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            all.extend(d);
        }
    }

    /// Accounts for every message, on the run's clock. Call once every client task has ended;
    /// `window` is the measured period (intended times), `end_us` the end of the drain.
    pub fn settle(&self, plan: &GroupPlan, window: (u64, u64), end_us: u64) -> GroupOutcome {
        settle(&self.records(plan, window, end_us, |t| t))
    }

    /// What the ledger holds, as records, with every time passed through `time` (the wall
    /// clock, for a shard's records that meet other shards'). Call once every client task has
    /// ended.
    pub fn records(
        &self,
        plan: &GroupPlan,
        window: (u64, u64),
        end_us: u64,
        time: impl Fn(u64) -> u64,
    ) -> GroupRecords {
        let used = self.own.start + self.next.load(Relaxed).min(self.own.len());
        let sent = (self.own.start..used)
            .map(|slot| {
                let s = &self.slots[slot];
                let intended = s.intended_us.load(Relaxed);
                let answered = s.answered_us.load(Relaxed);
                Sent {
                    slot,
                    group: s.group.load(Relaxed) as usize,
                    sender: s.sender.load(Relaxed),
                    intended_us: time(intended),
                    sent_us: time(s.sent_us.load(Relaxed)),
                    answered_us: match answered {
                        0 | REJECTED => answered,
                        t => time(t),
                    },
                    measured: (window.0..window.1).contains(&intended),
                }
            })
            .collect();
        let receipts = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(slot, s)| {
                let delivered = s.delivered.load(Relaxed);
                let race = s.race_delivered.load(Relaxed);
                (delivered + race > 0).then(|| Receipts {
                    slot,
                    delivered,
                    race,
                    first_us: match s.first_us.load(Relaxed) {
                        u64::MAX => u64::MAX,
                        t => time(t),
                    },
                    last_us: if delivered > 0 {
                        time(s.last_us.load(Relaxed))
                    } else {
                        0
                    },
                })
            })
            .collect();
        let churner_deliveries = self
            .churner_deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let membership = self.log.lock().unwrap_or_else(|p| p.into_inner()).clone();
        GroupRecords {
            groups: Shape::of(plan),
            counts: self
                .counters
                .iter()
                .map(|c| GroupCounts {
                    sent: c.sent.load(Relaxed),
                    duplicated: c.duplicated.load(Relaxed),
                    reordered: c.reordered.load(Relaxed),
                    ..GroupCounts::default()
                })
                .collect(),
            sent,
            receipts,
            churner_deliveries: churner_deliveries
                .into_iter()
                .map(|d| ChurnerDelivery {
                    at_us: time(d.at_us),
                    ..d
                })
                .collect(),
            membership: membership
                .into_iter()
                .map(|e| MembershipEvent {
                    at_us: time(e.at_us),
                    ..e
                })
                .collect(),
            end_us: time(end_us),
            untracked: self.untracked.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::groups::PlannedGroup;

    fn scenario(text: &str) -> Scenario {
        let base = crate::config::scenario::DEFAULT_SCENARIO;
        Scenario::from_toml(&format!("{base}\n{text}"), "t").expect("scenario")
    }

    /// A ledger over one group of four: sender 0, churner 1, stable members 2 and 3.
    fn small_ledger() -> (GroupPlan, GroupLedger) {
        let plan = GroupPlan {
            groups: vec![PlannedGroup {
                id: 1,
                members: vec![0, 1, 2, 3],
                senders: 1,
                churners: 1,
            }],
            roles: vec![Vec::new(); 4],
        };
        let s = scenario("");
        let ledger = GroupLedger::new(&s, &plan, None);
        (plan, ledger)
    }

    #[test]
    fn settle_counts_expected_lost_race_and_fanout() {
        let (plan, ledger) = small_ledger();
        let l = &ledger;
        for (user, at) in [(0, 10), (2, 10), (3, 10)] {
            l.membership(0, user, Membership::Joined, at);
        }
        // The churner is in from 10 to 500 (Leave written at 500, Left seen at 520).
        l.membership(0, 1, Membership::JoinSent, 5);
        l.membership(0, 1, Membership::Joined, 10);
        l.membership(0, 1, Membership::LeaveSent, 500);
        l.membership(0, 1, Membership::Left, 520);
        // Message A, sent at 100 and acked at 150: expected at 1, 2, 3; all arrive.
        let a = l.open(0, 0, 90, 100).expect("slot");
        l.acked(a, 150);
        l.delivered_expected(a, 200);
        l.delivered_expected(a, 260);
        l.add_churner_deliveries(vec![ChurnerDelivery {
            slot: l.slot_of(a).expect("slot"),
            user: 1,
            at_us: 230,
        }]);
        // Message B, sent at 490 and acked at 510: the churner's Leave is in the race window,
        // and it did not get it; member 3 lost it.
        let b = l.open(0, 0, 480, 490).expect("slot");
        l.acked(b, 510);
        l.delivered_expected(b, 600);
        // Message C, sent at 600 after the churner left; rejected messages count nowhere.
        let c = l.open(0, 0, 590, 600).expect("slot");
        l.acked(c, 610);
        l.delivered_expected(c, 700);
        l.delivered_expected(c, 700);
        let d = l.open(0, 0, 595, 605).expect("slot");
        l.rejected(d);
        let out = l.settle(&plan, (0, 10_000), 20_000);
        let g = &out.groups[0].counts;
        assert_eq!(g.sent, 4);
        assert_eq!(g.expected, 3 + 2 + 2);
        assert_eq!(g.delivered_expected, 3 + 1 + 2);
        assert_eq!(g.lost, 1);
        assert_eq!(g.incomplete, 1);
        assert_eq!(g.race_delivered, 0);
        assert_eq!(g.unexpected, 0);
        // Fan-out of A: intended 90 → last expected member at 260, first at 200; of C:
        // 590 → 700, both at once. B never completed and has none.
        assert_eq!(out.fanout.len(), 2);
        assert_eq!(out.fanout.max(), out.fanout.highest_equivalent(260 - 90));
        assert_eq!(out.fanout.min(), out.fanout.lowest_equivalent(700 - 590));
        assert_eq!(out.spread.max(), out.spread.highest_equivalent(260 - 200));
        assert_eq!(out.spread.min(), 1);
    }

    #[test]
    fn shards_open_disjoint_slots_and_a_member_records_any_of_them() {
        let s = scenario(
            "[groups]\ncount = 4\nsenders = 2\nrate = 10.0\nmembers = { dist = \"zipf\", min = 3, max = 6 }",
        );
        let plan = GroupPlan::new(&s);
        let one = Shard { index: 1, count: 2 };
        let two = Shard { index: 2, count: 2 };
        let (a, b) = (
            GroupLedger::new(&s, &plan, Some(one)),
            GroupLedger::new(&s, &plan, Some(two)),
        );
        assert_eq!(a.slots.len(), b.slots.len());
        assert!(a.own.end <= b.own.start || b.own.end <= a.own.start);
        let id = b.open(0, 1, 500, 510).expect("slot");
        // Shard 1's member receives shard 2's message under the same slot.
        a.delivered_expected(id, 900);
        let r = a.records(&plan, (0, 10_000), 20_000, |t| t + 1_000_000);
        assert_eq!(r.receipts.len(), 1);
        assert_eq!(r.receipts[0].slot, b.slot_of(id).expect("slot"));
        assert_eq!(
            (r.receipts[0].first_us, r.receipts[0].last_us),
            (1_000_900, 1_000_900)
        );
        assert!(r.sent.is_empty());
        let sent = b.records(&plan, (0, 10_000), 20_000, |t| t).sent;
        assert_eq!(sent.len(), 1);
        assert!(sent[0].measured);
    }
}
