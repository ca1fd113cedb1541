//! Group messages as plain records, and their accounting. A run's group ledger hands its
//! content over as [`GroupRecords`]; [`settle`] accounts for every message from them. A shard
//! (`--shard`) writes its records beside its report ([`GROUP_RECORDS_FILE`]), because a group's
//! members may run in several generators: only the records of every shard, added with
//! [`GroupRecords::combine`], say whether a message reached all of them and when the last one
//! got it (`imbench merge`).
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
//!
//! # One clock
//!
//! Every time in the records of one run is on one clock: the run's own for a run that settles
//! itself, the wall clock (µs since the Unix epoch) in a shard's file. Generators on one machine
//! share the wall clock, so their records compare exactly; on several machines a comparison
//! (a member's Joined against a send, a sender's intended time against a member's receipt) is
//! off by as much as their clocks disagree.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use hdrhistogram::Histogram;

use crate::measure::counters::counters;
use crate::measure::metrics::{new_histogram, MAX_US};
use crate::workload::groups::{Bucket, GroupPlan};

/// The file a shard writes its group records to, beside report.json.
pub const GROUP_RECORDS_FILE: &str = "group-ledger.json";

/// `Sent::answered_us` of a message the server refused.
pub const REJECTED: u64 = u64::MAX;

/// A change in one member's membership, as the generator saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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

/// One membership change of one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipEvent {
    /// Group index.
    pub group: usize,
    /// The member.
    pub user: u64,
    /// What changed.
    pub kind: Membership,
    /// When.
    pub at_us: u64,
}

/// A delivery to a churning member, classified when the message is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChurnerDelivery {
    /// Ledger slot of the message.
    pub slot: usize,
    /// The member.
    pub user: u64,
    /// When it arrived.
    pub at_us: u64,
}

/// One group message, as its sender recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// Its ledger slot: the name every member's generator knows it by.
    pub slot: usize,
    /// Group index.
    pub group: usize,
    /// The sender.
    pub sender: u64,
    /// When it was meant to be sent.
    pub intended_us: u64,
    /// When it was written.
    pub sent_us: u64,
    /// When its Ack arrived: 0 when none did, [`REJECTED`] when it was refused.
    pub answered_us: u64,
    /// Whether its intended time is in the sender's measured period.
    pub measured: bool,
}

/// What the stable members (that never churn) one generator runs received of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipts {
    /// Ledger slot of the message.
    pub slot: usize,
    /// Deliveries to members whose Joined came before the send.
    pub delivered: u32,
    /// Deliveries to members whose Joined came after it (in the race).
    pub race: u32,
    /// The first of `delivered`.
    pub first_us: u64,
    /// The last of `delivered`.
    pub last_us: u64,
}

/// What settling needs of a planned group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    /// Its wire id.
    pub id: u64,
    /// Members planned.
    pub members: usize,
    /// The members that leave and rejoin.
    pub churners: Vec<u64>,
}

/// Everything a ledger holds after a run, as plain records on one clock.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupRecords {
    /// The planned groups, by index.
    pub groups: Vec<Shape>,
    /// Per group, what the members counted as it came: `sent`, `duplicated` and `reordered`
    /// (the rest is settled).
    pub counts: Vec<GroupCounts>,
    /// Messages sent.
    pub sent: Vec<Sent>,
    /// Deliveries to stable members, per message.
    pub receipts: Vec<Receipts>,
    /// Deliveries to churning members.
    pub churner_deliveries: Vec<ChurnerDelivery>,
    /// Every membership change seen.
    pub membership: Vec<MembershipEvent>,
    /// The end of the drain: a message never answered may have been routed until then.
    pub end_us: u64,
    /// Messages not sent because the ledger was full.
    pub untracked: u64,
}

/// Why records cannot be added into one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordsError {
    /// The parts planned different groups.
    #[error("part {0} planned other groups than part 1: not shards of one scenario")]
    OtherGroups(usize),
    /// Two parts sent the same message.
    #[error("part {part} also sent group message {slot}: the same shard twice")]
    SentTwice {
        /// Which part (1-based).
        part: usize,
        /// The message's slot.
        slot: usize,
    },
}

impl Shape {
    /// The shapes of a plan's groups.
    pub fn of(plan: &GroupPlan) -> Vec<Shape> {
        plan.groups
            .iter()
            .map(|g| Shape {
                id: g.id,
                members: g.members.len(),
                churners: g.members[g.senders..g.senders + g.churners].to_vec(),
            })
            .collect()
    }
}

impl GroupRecords {
    /// The records of generators that ran one scenario's clients between them, as one: what
    /// each sent, and what all their members received of each message.
    pub fn combine(parts: Vec<GroupRecords>) -> Result<GroupRecords, RecordsError> {
        let mut parts = parts.into_iter();
        let Some(mut all) = parts.next() else {
            return Ok(GroupRecords::default());
        };
        let mut receipts: BTreeMap<usize, Receipts> =
            all.receipts.iter().map(|r| (r.slot, *r)).collect();
        let mut sent: HashMap<usize, usize> = all.sent.iter().map(|s| (s.slot, 1)).collect();
        for (i, p) in parts.enumerate() {
            let part = i + 2;
            if p.groups != all.groups {
                return Err(RecordsError::OtherGroups(part));
            }
            for (a, b) in all.counts.iter_mut().zip(&p.counts) {
                *a = GroupCounts::sum([&*a, b].into_iter());
            }
            for s in &p.sent {
                if sent.insert(s.slot, part).is_some() {
                    return Err(RecordsError::SentTwice { part, slot: s.slot });
                }
            }
            all.sent.extend(p.sent);
            for r in p.receipts {
                receipts
                    .entry(r.slot)
                    .and_modify(|a| {
                        // Read from the shards' files, which may hold anything.
                        a.delivered = a.delivered.saturating_add(r.delivered);
                        a.race = a.race.saturating_add(r.race);
                        a.first_us = a.first_us.min(r.first_us);
                        a.last_us = a.last_us.max(r.last_us);
                    })
                    .or_insert(r);
            }
            all.churner_deliveries.extend(p.churner_deliveries);
            all.membership.extend(p.membership);
            all.end_us = all.end_us.max(p.end_us);
            all.untracked = all.untracked.saturating_add(p.untracked);
        }
        all.receipts = receipts.into_values().collect();
        Ok(all)
    }
}

/// Accounts for every message of `r` (see the module's definition of expected, lost, race and
/// fan-out).
pub fn settle(r: &GroupRecords) -> GroupOutcome {
    let members = MembershipHistory::new(&r.groups, &r.membership);
    let receipts: HashMap<usize, &Receipts> = r.receipts.iter().map(|x| (x.slot, x)).collect();
    let mut by_slot: HashMap<usize, Vec<&ChurnerDelivery>> = HashMap::new();
    for d in &r.churner_deliveries {
        by_slot.entry(d.slot).or_default().push(d);
    }
    let mut out = GroupOutcome::new(&r.groups);
    for s in &r.sent {
        if s.answered_us == REJECTED || s.group >= r.groups.len() {
            continue;
        }
        // Unanswered messages were never confirmed routed: the race window runs to the end.
        let acked = if s.answered_us == 0 {
            r.end_us
        } else {
            s.answered_us
        };
        let g = &mut out.groups[s.group];
        g.counts.settled += 1;
        let got = receipts.get(&s.slot);
        let mut expected = members.stable_joined_by(s.group, s.sent_us, s.sender) as u64;
        let mut delivered = got.map_or(0, |x| u64::from(x.delivered));
        let mut first = got.map_or(u64::MAX, |x| x.first_us);
        let mut last = got.map_or(0, |x| x.last_us);
        let mut race = got.map_or(0, |x| u64::from(x.race));
        let mut unexpected = 0;
        let churner_got = by_slot.remove(&s.slot).unwrap_or_default();
        for c in members.churners(s.group) {
            let class = members.classify(s.group, c, s.sent_us, acked);
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
        if delivered >= expected {
            if expected > 0 && s.measured {
                let bucket = Bucket::of(r.groups[s.group].members).index();
                let fanout = last.saturating_sub(s.intended_us).clamp(1, MAX_US);
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
    out.take_live_counts(r);
    out
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
    fn new(groups: &[Shape], log: &[MembershipEvent]) -> Self {
        let n = groups.len();
        let mut h = Self {
            stable: vec![Vec::new(); n],
            stable_by_user: vec![HashMap::new(); n],
            churners: vec![HashMap::new(); n],
        };
        for (gi, g) in groups.iter().enumerate() {
            for &c in &g.churners {
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
        /// Messages whose fan-out was settled: those tracked that the server did not refuse
        /// (`incomplete` is of these; 0 in reports written before it was kept).
        #[serde(default)]
        settled,
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
    /// Nothing settled yet, for groups of these shapes.
    pub fn new(groups: &[Shape]) -> Self {
        Self {
            groups: groups
                .iter()
                .map(|g| GroupSummary {
                    id: g.id,
                    members: g.members,
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

    /// Only what the members counted as it came (sent, duplicated, reordered): what a shard
    /// knows alone, before its records meet those of the other shards.
    pub fn counted_only(r: &GroupRecords) -> Self {
        let mut out = Self::new(&r.groups);
        out.take_live_counts(r);
        out
    }

    /// Takes what the members counted as it came, per group, from `r`.
    pub(crate) fn take_live_counts(&mut self, r: &GroupRecords) {
        for (g, c) in self.groups.iter_mut().zip(&r.counts) {
            g.counts.sent = c.sent;
            g.counts.duplicated = c.duplicated;
            g.counts.reordered = c.reordered;
        }
        self.untracked = r.untracked;
    }

    /// The counts added over every group.
    pub fn total(&self) -> GroupCounts {
        GroupCounts::sum(self.groups.iter().map(|g| &g.counts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One group of four: sender 0, churner 1, stable members 2 and 3.
    fn shapes() -> Vec<Shape> {
        vec![Shape {
            id: 1,
            members: 4,
            churners: vec![1],
        }]
    }

    fn history(events: &[(Membership, u64)]) -> MembershipHistory {
        let log: Vec<MembershipEvent> = events
            .iter()
            .map(|&(kind, at_us)| MembershipEvent {
                group: 0,
                user: 1,
                kind,
                at_us,
            })
            .collect();
        MembershipHistory::new(&shapes(), &log)
    }

    #[test]
    fn a_churner_is_in_the_race_only_while_its_change_is_in_flight() {
        let h = history(&[
            (Membership::JoinSent, 100),
            (Membership::Joined, 120),
            (Membership::LeaveSent, 300),
            (Membership::Left, 320),
        ]);
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
        // Joined at 20; Leave written at 100 and Join written again at 110, before Left (130)
        // and the new Joined (140) arrive.
        let h = history(&[
            (Membership::JoinSent, 10),
            (Membership::Joined, 20),
            (Membership::LeaveSent, 100),
            (Membership::JoinSent, 110),
            (Membership::Left, 130),
            (Membership::Joined, 140),
        ]);
        assert_eq!(h.classify(0, 1, 50, 60), Class::Expected);
        // Written after the Leave, acked before the new Join: the server may still have had
        // the old membership (Left came only at 130).
        assert_eq!(h.classify(0, 1, 102, 105), Class::Race);
        assert_eq!(h.classify(0, 1, 150, 160), Class::Expected);
        assert_eq!(h.classify(0, 1, 1, 5), Class::NotMember);
    }

    fn joined(user: u64, at_us: u64) -> MembershipEvent {
        MembershipEvent {
            group: 0,
            user,
            kind: Membership::Joined,
            at_us,
        }
    }

    /// Two generators: the first runs the sender 0 and member 2, the second member 3 (the
    /// churner never joins). One message, intended at 90, sent at 100.
    fn two_parts() -> (GroupRecords, GroupRecords) {
        let counts = vec![GroupCounts::default()];
        let first = GroupRecords {
            groups: shapes(),
            counts: vec![GroupCounts {
                sent: 1,
                ..GroupCounts::default()
            }],
            sent: vec![Sent {
                slot: 7,
                group: 0,
                sender: 0,
                intended_us: 90,
                sent_us: 100,
                answered_us: 150,
                measured: true,
            }],
            receipts: vec![Receipts {
                slot: 7,
                delivered: 1,
                race: 0,
                first_us: 200,
                last_us: 200,
            }],
            membership: vec![joined(0, 10), joined(2, 10)],
            end_us: 1_000,
            ..GroupRecords::default()
        };
        let second = GroupRecords {
            groups: shapes(),
            counts,
            receipts: vec![Receipts {
                slot: 7,
                delivered: 1,
                race: 0,
                first_us: 260,
                last_us: 260,
            }],
            membership: vec![joined(3, 20)],
            end_us: 1_100,
            ..GroupRecords::default()
        };
        (first, second)
    }

    #[test]
    fn a_message_whose_members_ran_in_two_generators_completes_at_the_last_of_all() {
        let (first, second) = two_parts();
        // Alone, the sender's generator sees one of two members: the message looks incomplete.
        let alone = settle(&first);
        assert_eq!(alone.total().expected, 1);
        let all = GroupRecords::combine(vec![first, second]).expect("one load");
        let out = settle(&all);
        let t = out.total();
        assert_eq!((t.sent, t.expected, t.delivered_expected), (1, 2, 2));
        assert_eq!((t.lost, t.incomplete, t.settled), (0, 0, 1));
        // Refused, it owes no fan-out: nothing settled, nothing incomplete.
        let (mut refused, second) = two_parts();
        refused.sent[0].answered_us = REJECTED;
        let t = settle(&GroupRecords::combine(vec![refused, second]).expect("one load")).total();
        assert_eq!((t.expected, t.incomplete, t.settled), (0, 0, 0));
        assert_eq!(out.fanout.len(), 1);
        assert_eq!(out.fanout.max(), out.fanout.highest_equivalent(260 - 90));
        assert_eq!(out.spread.max(), out.spread.highest_equivalent(260 - 200));
    }

    #[test]
    fn a_member_of_another_generator_that_got_nothing_is_a_loss() {
        let (first, mut second) = two_parts();
        second.receipts.clear();
        let out = settle(&GroupRecords::combine(vec![first, second]).expect("one load"));
        let t = out.total();
        assert_eq!((t.expected, t.delivered_expected, t.lost), (2, 1, 1));
        assert_eq!((t.incomplete, t.settled), (1, 1));
        assert_eq!(out.fanout.len(), 0);
    }

    #[test]
    fn records_of_other_groups_or_the_same_sender_twice_are_refused() {
        let (first, mut second) = two_parts();
        second.groups[0].members = 5;
        assert_eq!(
            GroupRecords::combine(vec![first.clone(), second]),
            Err(RecordsError::OtherGroups(2))
        );
        assert_eq!(
            GroupRecords::combine(vec![first.clone(), first]),
            Err(RecordsError::SentTwice { part: 2, slot: 7 })
        );
    }
}
