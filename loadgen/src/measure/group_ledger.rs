//! The group ledger: every group message sent, every membership change and delivery seen,
//! and after the run the accounting of each message against the membership it was routed to.
//!
//! # Accounting and the join/leave race
//!
//! The server routes a group message to the members it has at the moment it routes it, and on
//! each member's connection Joined comes before every message routed to it and Left after the
//! last one. The generator cannot see that moment, only that it lies between the sender's write
//! (`S`) and the sender's receipt of the Ack (`A`). So for each message and member:
//!
//! - **expected**: the member's Joined arrived before `S`, and it had not sent Leave before `A`.
//!   It must get the message; if it does not, the delivery is **lost**.
//! - **in the race**: its membership changed between `S` and `A`. Either outcome is correct;
//!   a delivery counts as `race_delivered`, an absence as nothing.
//! - otherwise it was not a member, and a delivery would be **unexpected** (a server bug).
//!
//! `fanout` is intended send → receipt at the last expected member, recorded only for messages
//! every expected member received; the others count as `incomplete`. `fanout_spread` is first →
//! last expected member.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::config::scenario::Scenario;
use crate::measure::counters::counters;
use crate::measure::metrics::{new_histogram, MAX_US};
use crate::workload::groups::{Bucket, GroupPlan};
use crate::workload::message_ids::{group_msg_id, slot_in_id, MAX_SLOTS};

/// A change in one member's membership, as the generator saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// Join written.
    JoinSent,
    /// Joined received.
    Joined,
    /// Leave written.
    LeaveSent,
    /// Left received.
    Left,
}

#[derive(Debug, Clone, Copy)]
struct MembershipEvent {
    group: usize,
    user: u64,
    kind: Membership,
    at_us: u64,
}

/// A delivery to a churning member, classified after the run.
#[derive(Debug, Clone, Copy)]
pub struct ChurnerDelivery {
    /// Ledger slot of the message.
    pub slot: usize,
    /// The member.
    pub user: u64,
    /// When it arrived.
    pub at_us: u64,
}

/// One group message's record.
#[derive(Debug, Default)]
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

const REJECTED: u64 = u64::MAX;

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

impl GroupLedger {
    /// A ledger sized for the scenario's expected group messages, with room for Poisson
    /// variation.
    pub fn new(s: &Scenario, plan: &GroupPlan) -> Self {
        let window = (s.warmup + s.duration).as_secs_f64();
        let expected = s.groups.rate * plan.groups.len() as f64 * window;
        let capacity = if plan.groups.is_empty() {
            0
        } else {
            ((expected * 1.2 + 6.0 * expected.sqrt() + 1024.0) as usize).min(MAX_SLOTS)
        };
        Self {
            slots: (0..capacity).map(|_| Slot::default()).collect(),
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
        let slot = self.next.fetch_add(1, Relaxed);
        let Some(s) = self.slots.get(slot) else {
            self.untracked.fetch_add(1, Relaxed);
            return None;
        };
        self.counters[group].sent.fetch_add(1, Relaxed);
        s.group.store(group as u64, Relaxed);
        s.sender.store(sender, Relaxed);
        s.intended_us.store(intended_us, Relaxed);
        s.sent_us.store(sent_us, Relaxed);
        s.first_us.store(u64::MAX, Relaxed);
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

    /// Accounts for every message. Call once every client task has ended; `window` is the
    /// measured period (intended times), `end_us` the end of the drain.
    pub fn settle(&self, plan: &GroupPlan, window: (u64, u64), end_us: u64) -> GroupOutcome {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let churned = self
            .churner_deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let members = MembershipHistory::new(plan, &log);
        let mut by_slot: HashMap<usize, Vec<ChurnerDelivery>> = HashMap::new();
        for d in churned {
            by_slot.entry(d.slot).or_default().push(d);
        }
        let mut out = GroupOutcome::new(plan);
        let used = self.next.load(Relaxed).min(self.slots.len());
        for (i, s) in self.slots[..used].iter().enumerate() {
            let group = s.group.load(Relaxed) as usize;
            let sender = s.sender.load(Relaxed);
            let intended = s.intended_us.load(Relaxed);
            let sent = s.sent_us.load(Relaxed);
            let answered = s.answered_us.load(Relaxed);
            if answered == REJECTED || group >= plan.groups.len() {
                continue;
            }
            // Unanswered messages were never confirmed routed: the race window runs to the end.
            let acked = if answered == 0 { end_us } else { answered };
            let g = &mut out.groups[group];
            let mut expected = members.stable_joined_by(group, sent, sender) as u64;
            let mut delivered = u64::from(s.delivered.load(Relaxed));
            let mut first = s.first_us.load(Relaxed);
            let mut last = s.last_us.load(Relaxed);
            let mut race = u64::from(s.race_delivered.load(Relaxed));
            let mut unexpected = 0;
            let churner_got = by_slot.remove(&i).unwrap_or_default();
            for c in members.churners(group) {
                let class = members.classify(group, c, sent, acked);
                let got = churner_got.iter().find(|d| d.user == c);
                match (class, got) {
                    (Class::Expected, Some(d)) => {
                        expected += 1;
                        delivered += 1;
                        first = first.min(d.at_us);
                        last = last.max(d.at_us);
                    }
                    (Class::Expected, None) => expected += 1,
                    (Class::Race, Some(_)) => race += 1,
                    (Class::NotMember, Some(_)) => unexpected += 1,
                    (_, None) => {}
                }
            }
            g.counts.expected += expected;
            g.counts.delivered_expected += delivered.min(expected);
            g.counts.race_delivered += race;
            g.counts.unexpected += unexpected + delivered.saturating_sub(expected);
            let measured = (window.0..window.1).contains(&intended);
            if delivered >= expected {
                if expected > 0 && measured {
                    let bucket = plan.groups[group].bucket().index();
                    let fanout = last.saturating_sub(intended).clamp(1, MAX_US);
                    let spread = last.saturating_sub(first).clamp(1, MAX_US);
                    for (h, v) in [
                        (&mut out.fanout, fanout),
                        (&mut out.fanout_by_bucket[bucket], fanout),
                        (&mut out.spread, spread),
                        (&mut out.spread_by_bucket[bucket], spread),
                    ] {
                        h.saturating_record(v);
                    }
                }
            } else {
                g.counts.lost += expected - delivered;
                g.counts.incomplete += 1;
            }
        }
        for (g, c) in out.groups.iter_mut().zip(&self.counters) {
            g.counts.sent = c.sent.load(Relaxed);
            g.counts.duplicated = c.duplicated.load(Relaxed);
            g.counts.reordered = c.reordered.load(Relaxed);
        }
        out.untracked = self.untracked.load(Relaxed);
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Expected,
    Race,
    NotMember,
}

/// Who was in which group when, rebuilt from the membership log.
struct MembershipHistory {
    /// Per group: Joined times of members that never churn, sorted.
    stable: Vec<Vec<u64>>,
    /// Per group: the sender's own Joined time, by user.
    stable_by_user: Vec<HashMap<u64, u64>>,
    /// Per group and churning member: its events in time order.
    churners: Vec<HashMap<u64, Vec<(Membership, u64)>>>,
}

impl MembershipHistory {
    fn new(plan: &GroupPlan, log: &[MembershipEvent]) -> Self {
        let n = plan.groups.len();
        let mut h = Self {
            stable: vec![Vec::new(); n],
            stable_by_user: vec![HashMap::new(); n],
            churners: vec![HashMap::new(); n],
        };
        for (gi, g) in plan.groups.iter().enumerate() {
            for &c in &g.members[g.senders..g.senders + g.churners] {
                h.churners[gi].insert(c, Vec::new());
            }
        }
        for e in log {
            if e.group >= n {
                continue;
            }
            if let Some(events) = h.churners[e.group].get_mut(&e.user) {
                events.push((e.kind, e.at_us));
            } else if e.kind == Membership::Joined {
                h.stable[e.group].push(e.at_us);
                h.stable_by_user[e.group].insert(e.user, e.at_us);
            }
        }
        for s in &mut h.stable {
            s.sort_unstable();
        }
        for g in &mut h.churners {
            for events in g.values_mut() {
                events.sort_by_key(|e| e.1);
            }
        }
        h
    }

    /// Stable members of `group`, other than `sender`, whose Joined arrived by `at_us`.
    fn stable_joined_by(&self, group: usize, at_us: u64, sender: u64) -> usize {
        let n = self.stable[group].partition_point(|&t| t <= at_us);
        let sender_counted = self.stable_by_user[group]
            .get(&sender)
            .is_some_and(|&t| t <= at_us);
        n - usize::from(sender_counted)
    }

    fn churners(&self, group: usize) -> impl Iterator<Item = u64> + '_ {
        self.churners[group].keys().copied()
    }

    /// Whether churning member `user` had to get a message written at `sent` and acked at
    /// `acked`.
    ///
    /// Membership comes in epochs: the k-th Join written opens epoch k, its Joined confirms
    /// it, the k-th Leave written asks to end it and the k-th Left confirms the end (the server
    /// answers in order, so the k-th of each kind belong together, even when a member toggles
    /// again before the previous answer arrived). Certainly a member from Joined to the Leave
    /// written; possibly a member from the Join written to the Left received.
    fn classify(&self, group: usize, user: u64, sent: u64, acked: u64) -> Class {
        let Some(events) = self.churners[group].get(&user) else {
            return Class::NotMember;
        };
        let times = |kind: Membership| -> Vec<u64> {
            events.iter().filter(|e| e.0 == kind).map(|e| e.1).collect()
        };
        let (join_sent, joined) = (times(Membership::JoinSent), times(Membership::Joined));
        let (leave_sent, left) = (times(Membership::LeaveSent), times(Membership::Left));
        let expected = joined
            .iter()
            .enumerate()
            .any(|(k, &j)| j <= sent && leave_sent.get(k).is_none_or(|&l| l >= acked));
        if expected {
            return Class::Expected;
        }
        let possible = join_sent
            .iter()
            .enumerate()
            .any(|(k, &j)| j <= acked && left.get(k).is_none_or(|&l| l >= sent));
        if possible {
            Class::Race
        } else {
            Class::NotMember
        }
    }
}

counters! {
    /// What the ledger concluded about group messages: of one group, or added over groups.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct GroupCounts {
        /// Messages sent to the group.
        sent,
        /// Deliveries owed by the membership when each message was routed (see the module's
        /// definition).
        expected,
        /// Owed deliveries that arrived.
        delivered_expected,
        /// Deliveries to members whose membership changed while the message was routed.
        race_delivered,
        /// Owed deliveries that never arrived.
        lost,
        /// Messages whose fan-out never completed.
        incomplete,
        /// Deliveries received again.
        duplicated,
        /// Deliveries out of order per sender.
        reordered,
        /// Deliveries to a member that was certainly not in the group.
        unexpected,
    }
}

/// One group's accounting.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GroupSummary {
    /// Group id.
    pub id: u64,
    /// Members planned.
    pub members: usize,
    /// Its counts (flattened into the group's entry in report.json).
    #[serde(flatten)]
    pub counts: GroupCounts,
}

/// Everything the ledger concluded.
pub struct GroupOutcome {
    /// Per group.
    pub groups: Vec<GroupSummary>,
    /// Intended send → last expected member, messages in the measured period.
    pub fanout: Histogram<u64>,
    /// First → last expected member.
    pub spread: Histogram<u64>,
    /// `fanout` per size bucket.
    pub fanout_by_bucket: Vec<Histogram<u64>>,
    /// `spread` per size bucket.
    pub spread_by_bucket: Vec<Histogram<u64>>,
    /// Messages sent beyond the ledger's capacity.
    pub untracked: u64,
}

impl GroupOutcome {
    fn new(plan: &GroupPlan) -> Self {
        Self {
            groups: plan
                .groups
                .iter()
                .map(|g| GroupSummary {
                    id: g.id,
                    members: g.members.len(),
                    ..GroupSummary::default()
                })
                .collect(),
            fanout: new_histogram(),
            spread: new_histogram(),
            fanout_by_bucket: Bucket::ALL.iter().map(|_| new_histogram()).collect(),
            spread_by_bucket: Bucket::ALL.iter().map(|_| new_histogram()).collect(),
            untracked: 0,
        }
    }

    /// The counts added over every group.
    pub fn total(&self) -> GroupCounts {
        GroupCounts::sum(self.groups.iter().map(|g| &g.counts))
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
        let ledger = GroupLedger::new(&s, &plan);
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
    fn a_churner_is_in_the_race_only_while_its_change_is_in_flight() {
        let (plan, ledger) = small_ledger();
        let l = &ledger;
        l.membership(0, 1, Membership::JoinSent, 100);
        l.membership(0, 1, Membership::Joined, 120);
        l.membership(0, 1, Membership::LeaveSent, 300);
        l.membership(0, 1, Membership::Left, 320);
        let h = MembershipHistory::new(&plan, &l.log.lock().expect("log").clone());
        // Before the Join was written: not a member.
        assert_eq!(h.classify(0, 1, 10, 90), Class::NotMember);
        // Written before Joined arrived but acked after the Join went out: race.
        assert_eq!(h.classify(0, 1, 110, 130), Class::Race);
        // Wholly inside the membership: expected.
        assert_eq!(h.classify(0, 1, 150, 250), Class::Expected);
        // Acked after the Leave went out: race.
        assert_eq!(h.classify(0, 1, 290, 310), Class::Race);
        // After Left arrived: not a member.
        assert_eq!(h.classify(0, 1, 330, 340), Class::NotMember);
    }

    #[test]
    fn a_churner_that_toggles_before_the_answer_keeps_its_epochs_apart() {
        let (plan, ledger) = small_ledger();
        let l = &ledger;
        // Joined at 20; Leave written at 100 and Join written again at 110, before Left (130)
        // and the new Joined (140) arrive.
        for (kind, at) in [
            (Membership::JoinSent, 10),
            (Membership::Joined, 20),
            (Membership::LeaveSent, 100),
            (Membership::JoinSent, 110),
            (Membership::Left, 130),
            (Membership::Joined, 140),
        ] {
            l.membership(0, 1, kind, at);
        }
        let h = MembershipHistory::new(&plan, &l.log.lock().expect("log").clone());
        assert_eq!(h.classify(0, 1, 50, 60), Class::Expected);
        // Written after the Leave, acked before the new Join: the server may still have had
        // the old membership (Left came only at 130).
        assert_eq!(h.classify(0, 1, 102, 105), Class::Race);
        assert_eq!(h.classify(0, 1, 150, 160), Class::Expected);
        assert_eq!(h.classify(0, 1, 1, 5), Class::NotMember);
    }
}
