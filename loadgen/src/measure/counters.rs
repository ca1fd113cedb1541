//! Counters declared once. Each client's live counters: the atomics its tasks update, and the
//! plain totals over all clients that the progress display, the drain and the report read.
//! And [`counters!`], which declares a set of plain counters with their names, lookup by name
//! and sum (the report's message counters, the group ledger's counts).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Declares a set of plain counters once: the struct (serialised in report.json), their names
/// in order, lookup by name (SLOs) and the sum over several of them (per group, per shard).
macro_rules! counters {
    ($(#[$meta:meta])* pub struct $ty:ident { $( $(#[$fmeta:meta])* $name:ident, )* }) => {
        $(#[$meta])*
        pub struct $ty {
            $( $(#[$fmeta])* pub $name: u64, )*
        }

        impl $ty {
            /// Every counter's name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name)),*];

            /// The counter called `name`.
            pub fn get(&self, name: &str) -> Option<u64> {
                match name {
                    $( stringify!($name) => Some(self.$name), )*
                    _ => None,
                }
            }

            /// Every counter with its name, in declaration order.
            pub fn each(&self) -> Vec<(&'static str, u64)> {
                vec![$( (stringify!($name), self.$name) ),*]
            }

            /// Each counter added over `all` (read from shards' reports, which may be
            /// anything: at most u64::MAX).
            pub fn sum<'a>(all: impl Iterator<Item = &'a Self> + Clone) -> Self {
                Self {
                    $( $name: all.clone().fold(0u64, |sum, c| sum.saturating_add(c.$name)), )*
                }
            }
        }
    };
}
pub(crate) use counters;

/// Declares the per-client counters (flags and counts) and their totals from one list.
macro_rules! client_counters {
    (
        flags { $( $(#[doc = $fdoc:literal])* $flag:ident, )* }
        counts { $( $(#[doc = $cdoc:literal])* $count:ident, )* }
    ) => {
        /// Counters of one client, written by its own tasks only and read by the progress
        /// display and the report.
        #[derive(Debug, Default)]
        pub struct ClientCounters {
            $( $(#[doc = $fdoc])* pub $flag: AtomicBool, )*
            $( $(#[doc = $cdoc])* pub $count: AtomicU64, )*
        }

        /// [`ClientCounters`] added over clients: each count summed, and for each flag the
        /// number of clients that had it set.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct ClientTotals {
            $( $(#[doc = $fdoc])* pub $flag: u64, )*
            $( $(#[doc = $cdoc])* pub $count: u64, )*
        }

        impl ClientTotals {
            /// The totals of `clients` now.
            pub fn of(clients: &[ClientCounters]) -> Self {
                let mut t = Self::default();
                for c in clients {
                    $( t.$flag += u64::from(c.$flag.load(Relaxed)); )*
                    $( t.$count += c.$count.load(Relaxed); )*
                }
                t
            }

            /// Each flag (how many clients have it now) with its name and what it means.
            pub fn flags(&self) -> Vec<(&'static str, &'static str, u64)> {
                vec![$( (stringify!($flag), concat!($($fdoc, "\n"),*), self.$flag), )*]
            }

            /// Each count with its name and what it counts.
            pub fn counts(&self) -> Vec<(&'static str, &'static str, u64)> {
                vec![$( (stringify!($count), concat!($($cdoc, "\n"),*), self.$count), )*]
            }
        }
    };
}

client_counters! {
    flags {
        /// Hello answered with Welcome, on its first connection or a later one; stays set.
        connected,
        /// The connection attempt failed or timed out; stays set.
        connect_failed,
        /// The connection ended before the run did (server gone, or it closed us); stays set.
        disconnected,
        /// Without a connection against the plan: its connection ended, or (`[churn]`) an
        /// attempt to come back failed; cleared when the client connects again. Of the two
        /// sides of a connection, the first to find its loss sets it and counts the error (a
        /// failed attempt counts none).
        connection_lost,
        /// This client will send nothing more (its schedule ended, or it never connected);
        /// stays set.
        done_sending,
        /// Away on a planned disconnect (`[churn]`) right now: dropped, and not back yet.
        away,
        /// Its connection was closed because a newer login took its user id (`replaced`);
        /// stays set.
        replaced,
    }
    counts {
        /// Send frames written.
        sent,
        /// Send frames written whose intended time is in the measured period.
        sent_in_window,
        /// Acks received.
        acked,
        /// Rejects received (the server refused the message).
        rejected,
        /// Of the Rejects, direct and group, those with code `busy`: the server pushed back.
        rejected_busy,
        /// Distinct messages received intact.
        delivered,
        /// Messages received again.
        duplicated,
        /// Messages that arrived after a later one of the same pair.
        reordered,
        /// Deliveries whose body failed its checksum or named the wrong sender.
        corrupted,
        /// Error frames, unexpected frames and transport failures.
        errors,
        /// Group messages written.
        group_sent,
        /// Group messages written whose intended time is in the measured period.
        group_sent_in_window,
        /// Acks of group messages.
        group_acked,
        /// Rejects of group messages.
        group_rejected,
        /// Joins written and not yet answered.
        joins_pending,
        /// Joins or Leaves the server refused.
        group_refused,
        /// Connections made again after a planned disconnect (`[churn]`).
        reconnects,
        /// Messages this client sent that the system accepted and then bounced back
        /// undelivered (an XMPP server without offline storage, to a recipient not online).
        bounced,
        /// Second copies dropped because a reconnect explains them: the server sent again what
        /// this client had not confirmed, or the sender sent again what it had no answer for.
        redelivered,
        /// Messages this client sent again after reconnecting, having had no answer for them.
        resent,
        /// Direct messages unanswered on a connection this client dropped on purpose
        /// (`[churn]`) where nothing is sent again (at most once: MQTT at QoS 0). No answer can
        /// come for them; whether they arrived is the recipients' count.
        dropped_unanswered,
        /// Group messages so (as `dropped_unanswered`).
        group_dropped_unanswered,
        /// Connections whose handshake offered this client's own session ticket.
        resumed,
        /// Logins sent as 0-RTT data that the server took.
        zero_rtt,
        /// Logins sent as 0-RTT data that the server refused (sent again after the handshake).
        zero_rtt_refused,
        /// Planned disconnects that were handovers (a change of address).
        handovers,
        /// Handovers whose connection moved to the new address and carried on (QUIC).
        migrations,
        /// Direct and group messages due before the schedule's end that this client, behind
        /// its schedule by more than the schedule-lag limit when it ended, never sent (sends
        /// stop there, so that the drain has an end).
        unsent,
    }
}

impl ClientCounters {
    /// Direct messages answered (acked or rejected), or that can have no answer (taken
    /// unanswered by a connection dropped on purpose, at most once).
    pub fn answered(&self) -> u64 {
        self.acked.load(Relaxed)
            + self.rejected.load(Relaxed)
            + self.dropped_unanswered.load(Relaxed)
    }

    /// Group messages so (as [`ClientCounters::answered`]).
    pub fn group_answered(&self) -> u64 {
        self.group_acked.load(Relaxed)
            + self.group_rejected.load(Relaxed)
            + self.group_dropped_unanswered.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_counts_and_count_flags() {
        let clients: Vec<ClientCounters> = (0..3).map(|_| ClientCounters::default()).collect();
        clients[0].connected.store(true, Relaxed);
        clients[2].connected.store(true, Relaxed);
        clients[1].sent.fetch_add(5, Relaxed);
        clients[2].sent.fetch_add(2, Relaxed);
        let t = ClientTotals::of(&clients);
        assert_eq!(
            (t.connected, t.connect_failed, t.sent, t.acked),
            (2, 0, 7, 0)
        );
    }
}
