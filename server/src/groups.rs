//! Group membership and fan-out.
//!
//! A group is created by its first Join and dropped when its last member leaves. Membership
//! belongs to the user, not the connection: a member that is offline keeps its membership and
//! the router holds its group messages like direct ones.
//!
//! # Ordering and locks
//!
//! Each group sits behind its own read-write lock. Fan-out takes the read lock and offers the
//! message to each member's bounded queue (`try_send`, never an await and never a socket write),
//! so many messages of one group fan out at once. Join and Leave take the write lock and put
//! their reply (Joined, Left) on the member's own queue while they hold it. A member therefore
//! sees, on its one ordered connection, Joined before any message routed with it as a member
//! and Left after the last one: the membership at the moment a message is routed is exactly
//! the set of members who get it.
//!
//! The body is a reference-counted `Bytes`: fan-out to N members copies no body, only N small
//! queue entries.
//!
//! # Lock order
//!
//! The server's locks are taken in this order and never the other way, so no two tasks can
//! wait for each other:
//!
//! 1. the group table's shard of the group (`Groups::groups`; Join and Leave hold it while they
//!    change the group, Route only while it clones the group's handle);
//! 2. the group's member lock (`RwLock<Members>`: write for Join and Leave, read for Route);
//! 3. the membership count's shard of the user (`Groups::memberships`; Join takes it under 1
//!    and 2, Leave after releasing them);
//! 4. the router's shard of a recipient (`Router::users`), taken by Route under 2, once per
//!    member.
//!
//! The router never calls back into the groups, and a reply (Joined, Left) goes onto the
//! member's own queue with `try_send`, which takes none of these locks.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use dashmap::DashMap;
use imbench_proto::ErrorCode;

use crate::router::{Delivery, Outbound, Routed, Router};
use crate::stats::Stats;

/// Bounds on groups.
#[derive(Debug, Clone, Copy)]
pub struct GroupLimits {
    /// Most members of one group.
    pub max_members: usize,
    /// Most groups one user belongs to.
    pub groups_per_user: usize,
}

impl Default for GroupLimits {
    fn default() -> Self {
        Self {
            max_members: 10_000,
            groups_per_user: 1_000,
        }
    }
}

/// The members of one group, with O(1) add, remove and lookup.
#[derive(Debug, Default)]
struct Members {
    list: Vec<u64>,
    position: HashMap<u64, usize>,
}

impl Members {
    fn contains(&self, user: u64) -> bool {
        self.position.contains_key(&user)
    }

    fn add(&mut self, user: u64) {
        self.position.insert(user, self.list.len());
        self.list.push(user);
    }

    fn remove(&mut self, user: u64) -> bool {
        let Some(i) = self.position.remove(&user) else {
            return false;
        };
        self.list.swap_remove(i);
        if let Some(&moved) = self.list.get(i) {
            self.position.insert(moved, i);
        }
        true
    }
}

/// What a group message came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FanOut {
    /// Queued for members online.
    pub queued: usize,
    /// Held for members offline.
    pub held: usize,
    /// Members whose hold was full: they will not get the message.
    pub refused: usize,
}

/// Every group on the server.
pub struct Groups {
    groups: DashMap<u64, Arc<RwLock<Members>>>,
    memberships: DashMap<u64, usize>,
    limits: GroupLimits,
    stats: Arc<Stats>,
}

impl Groups {
    /// No groups yet.
    pub fn new(limits: GroupLimits, stats: Arc<Stats>) -> Self {
        Self {
            groups: DashMap::new(),
            memberships: DashMap::new(),
            limits,
            stats,
        }
    }

    /// Makes `user` a member of `group`, creating the group if needed. `reply` is called with
    /// Joined while the membership change is exclusive, so that it precedes every message
    /// routed to the new member on the member's queue.
    pub fn join(
        &self,
        group: u64,
        user: u64,
        reply: impl FnOnce(Outbound),
    ) -> Result<(), ErrorCode> {
        // The map entry stays locked until the member is in, so a concurrent last Leave
        // cannot drop the group from under this join.
        let entry = self.groups.entry(group).or_default();
        let mut members = write(&entry);
        if members.contains(user) {
            reply(Outbound::Joined(group, members.list.len() as u32));
            return Ok(());
        }
        if members.list.len() >= self.limits.max_members {
            drop(members);
            drop(entry);
            self.drop_if_empty(group);
            return self.refuse(ErrorCode::GROUP_FULL);
        }
        {
            let mut count = self.memberships.entry(user).or_insert(0);
            if *count >= self.limits.groups_per_user {
                drop(count);
                drop(members);
                drop(entry);
                self.drop_if_empty(group);
                return self.refuse(ErrorCode::TOO_MANY_GROUPS);
            }
            *count += 1;
        }
        members.add(user);
        reply(Outbound::Joined(group, members.list.len() as u32));
        self.stats.group_joins.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Ends `user`'s membership of `group`. `reply` is called with Left once no message of
    /// the group can be routed to the user any more.
    pub fn leave(
        &self,
        group: u64,
        user: u64,
        reply: impl FnOnce(Outbound),
    ) -> Result<(), ErrorCode> {
        let Some(entry) = self.groups.get_mut(&group) else {
            return self.refuse(ErrorCode::NOT_A_MEMBER);
        };
        let mut members = write(&entry);
        if !members.remove(user) {
            return self.refuse(ErrorCode::NOT_A_MEMBER);
        }
        reply(Outbound::Left(group));
        let now_empty = members.list.is_empty();
        drop(members);
        drop(entry);
        if let dashmap::mapref::entry::Entry::Occupied(mut count) = self.memberships.entry(user) {
            *count.get_mut() -= 1;
            if *count.get() == 0 {
                count.remove();
            }
        }
        if now_empty {
            self.drop_if_empty(group);
        }
        self.stats.group_leaves.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Routes `d` from `sender` to every other member of `group`. Only members may send.
    pub fn route(
        &self,
        group: u64,
        sender: u64,
        d: Delivery,
        router: &Router,
    ) -> Result<FanOut, ErrorCode> {
        let Some(members) = self.groups.get(&group).map(|e| Arc::clone(&e)) else {
            return Err(ErrorCode::NOT_A_MEMBER);
        };
        let members = read(&members);
        if !members.contains(sender) {
            return Err(ErrorCode::NOT_A_MEMBER);
        }
        if router.busy() {
            return Err(ErrorCode::BUSY);
        }
        let mut out = FanOut::default();
        for &member in members.list.iter().filter(|&&m| m != sender) {
            match router.route_member(member, d.clone()) {
                Routed::Queued => out.queued += 1,
                Routed::Held => out.held += 1,
                Routed::Refused(_) => out.refused += 1,
            }
        }
        self.stats.group_messages.fetch_add(1, Ordering::Relaxed);
        self.stats
            .group_deliveries
            .fetch_add((out.queued + out.held) as u64, Ordering::Relaxed);
        Ok(out)
    }

    /// Members of `group` now (0 for a group that does not exist).
    pub fn size(&self, group: u64) -> usize {
        self.groups
            .get(&group)
            .map_or(0, |members| read(&members).list.len())
    }

    /// Groups `user` belongs to.
    pub fn memberships(&self, user: u64) -> usize {
        self.memberships.get(&user).map_or(0, |c| *c)
    }

    /// Groups that exist.
    pub fn count(&self) -> usize {
        self.groups.len()
    }

    fn drop_if_empty(&self, group: u64) {
        self.groups
            .remove_if(&group, |_, members| read(members).list.is_empty());
    }

    fn refuse(&self, code: ErrorCode) -> Result<(), ErrorCode> {
        self.stats.group_refusals.fetch_add(1, Ordering::Relaxed);
        Err(code)
    }
}

// A panic while a group lock is held leaves the membership itself consistent (every change is
// one push or one swap_remove), so a poisoned lock is used as it stands.
fn read(lock: &RwLock<Members>) -> std::sync::RwLockReadGuard<'_, Members> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write(lock: &RwLock<Members>) -> std::sync::RwLockWriteGuard<'_, Members> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::FileSink;
    use crate::router::{HoldLimits, Kick, SessionHandle};
    use bytes::Bytes;
    use imbench_proto::Dest;
    use tokio::sync::mpsc;

    fn setup(limits: GroupLimits) -> (Groups, Router) {
        let stats = Arc::new(Stats::default());
        let router = Router::new(
            HoldLimits {
                per_user: 100,
                total_bytes: 1 << 20,
            },
            stats.clone(),
        );
        (Groups::new(limits, stats), router)
    }

    fn online(router: &Router, user: u64, cap: usize) -> mpsc::Receiver<Outbound> {
        let (tx, rx) = mpsc::channel(cap);
        router.register(
            user,
            SessionHandle {
                id: user,
                tx,
                kick: Arc::new(Kick::default()),
                files: FileSink::closed(),
                load: Arc::default(),
            },
        );
        rx
    }

    fn msg(id: u64, from: u64, group: u64) -> Delivery {
        Delivery {
            msg_id: id,
            from,
            to: Dest::Group(group),
            body: Bytes::from_static(b"hello group"),
            key: None,
        }
    }

    fn drain(rx: &mut mpsc::Receiver<Outbound>) -> Vec<String> {
        let mut seen = Vec::new();
        while let Ok(o) = rx.try_recv() {
            seen.push(match o {
                Outbound::Deliver(d) => format!("msg {}", d.msg_id),
                Outbound::Joined(g, n) => format!("joined {g} ({n})"),
                Outbound::Left(g) => format!("left {g}"),
                other => format!("{other:?}"),
            });
        }
        seen
    }

    fn ignore(_: Outbound) {}

    #[test]
    fn members_get_every_message_except_their_own() {
        let (groups, router) = setup(GroupLimits::default());
        let mut rxs: Vec<_> = (1..=3).map(|u| online(&router, u, 16)).collect();
        for u in 1..=3 {
            groups.join(7, u, ignore).expect("join");
        }
        let out = groups.route(7, 1, msg(10, 1, 7), &router).expect("route");
        assert_eq!(
            out,
            FanOut {
                queued: 2,
                held: 0,
                refused: 0
            }
        );
        assert!(drain(&mut rxs[0]).is_empty());
        assert_eq!(drain(&mut rxs[1]), vec!["msg 10"]);
        assert_eq!(drain(&mut rxs[2]), vec!["msg 10"]);
    }

    #[test]
    fn fan_out_shares_one_body() {
        let (groups, router) = setup(GroupLimits::default());
        let mut rx = online(&router, 2, 4);
        groups.join(1, 1, ignore).expect("join");
        groups.join(1, 2, ignore).expect("join");
        let d = msg(1, 1, 1);
        let sent_ptr = d.body.as_ptr();
        groups.route(1, 1, d, &router).expect("route");
        let Ok(Outbound::Deliver(got)) = rx.try_recv() else {
            panic!("no delivery")
        };
        assert_eq!(got.body.as_ptr(), sent_ptr, "the body was copied");
    }

    #[test]
    fn joined_and_left_bracket_exactly_the_messages_routed_in_between() {
        let (groups, router) = setup(GroupLimits::default());
        let (session_tx, mut rx) = mpsc::channel(16);
        router.register(
            2,
            SessionHandle {
                id: 2,
                tx: session_tx.clone(),
                kick: Arc::new(Kick::default()),
                files: FileSink::closed(),
                load: Arc::default(),
            },
        );
        groups.join(5, 1, ignore).expect("join");
        groups.route(5, 1, msg(1, 1, 5), &router).expect("route");
        let tx = |o| session_tx.try_send(o).expect("queue has room");
        groups.join(5, 2, tx).expect("join");
        groups.route(5, 1, msg(2, 1, 5), &router).expect("route");
        groups.leave(5, 2, tx).expect("leave");
        groups.route(5, 1, msg(3, 1, 5), &router).expect("route");
        assert_eq!(drain(&mut rx), vec!["joined 5 (2)", "msg 2", "left 5"]);
    }

    #[test]
    fn offline_members_keep_membership_and_get_held_messages() {
        let (groups, router) = setup(GroupLimits::default());
        groups.join(3, 1, ignore).expect("join");
        groups.join(3, 2, ignore).expect("join");
        let out = groups.route(3, 1, msg(9, 1, 3), &router).expect("route");
        assert_eq!(out.held, 1);
        assert_eq!(router.held_for(2), 1);
    }

    #[test]
    fn limits_refuse_with_typed_codes_and_leave_membership_unchanged() {
        let (groups, router) = setup(GroupLimits {
            max_members: 2,
            groups_per_user: 2,
        });
        groups.join(1, 1, ignore).expect("join");
        groups.join(1, 2, ignore).expect("join");
        assert_eq!(groups.join(1, 3, ignore), Err(ErrorCode::GROUP_FULL));
        assert_eq!(groups.size(1), 2);
        // Joining again is not a second membership.
        groups.join(1, 1, ignore).expect("rejoin");
        assert_eq!(groups.memberships(1), 1);
        groups.join(2, 1, ignore).expect("join");
        assert_eq!(groups.join(3, 1, ignore), Err(ErrorCode::TOO_MANY_GROUPS));
        assert_eq!(
            groups.size(3),
            0,
            "a refused join must not leave a group behind"
        );
        assert_eq!(groups.count(), 2);
        assert_eq!(
            groups.route(1, 3, msg(1, 3, 1), &router),
            Err(ErrorCode::NOT_A_MEMBER)
        );
        assert_eq!(groups.leave(1, 3, ignore), Err(ErrorCode::NOT_A_MEMBER));
        assert_eq!(groups.leave(9, 1, ignore), Err(ErrorCode::NOT_A_MEMBER));
    }

    #[test]
    fn the_last_leave_drops_the_group_and_frees_the_membership() {
        let (groups, _router) = setup(GroupLimits::default());
        groups.join(4, 1, ignore).expect("join");
        groups.join(4, 2, ignore).expect("join");
        groups.leave(4, 1, ignore).expect("leave");
        assert_eq!(groups.size(4), 1);
        groups.leave(4, 2, ignore).expect("leave");
        assert_eq!(groups.count(), 0);
        assert_eq!(groups.memberships(1), 0);
        assert_eq!(groups.memberships(2), 0);
    }

    #[test]
    fn a_slow_member_is_cut_off_alone() {
        let (groups, router) = setup(GroupLimits::default());
        let mut fast = online(&router, 2, 64);
        let (tx, _slow_rx) = mpsc::channel(2);
        let slow_kick = Arc::new(Kick::default());
        router.register(
            3,
            SessionHandle {
                id: 3,
                tx,
                kick: slow_kick.clone(),
                files: FileSink::closed(),
                load: Arc::default(),
            },
        );
        for u in 1..=3 {
            groups.join(1, u, ignore).expect("join");
        }
        for id in 0..10 {
            groups.route(1, 1, msg(id, 1, 1), &router).expect("route");
        }
        assert_eq!(
            drain(&mut fast).len(),
            10,
            "the fast member missed messages"
        );
        // The slow member's queue held 2; the rest wait in its hold, nothing refused.
        assert_eq!(router.held_for(3), 8);
    }
}
