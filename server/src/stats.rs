//! Server counters: relaxed atomics bumped on the paths they count, read as a snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Live counters, shared by every task of one server.
        #[derive(Debug, Default)]
        pub struct Stats { $($(#[$doc])* pub $name: AtomicU64,)* }

        /// A copy of [`Stats`] at one moment.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct StatsSnapshot { $($(#[$doc])* pub $name: u64,)* }

        impl Stats {
            /// Reads every counter.
            pub fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    /// Connection attempts accepted for a handshake.
    connections_accepted,
    /// Connection attempts refused over the connection limit.
    connections_refused,
    /// Connections answered `too_many_connections`: their address had its fill.
    connections_refused_per_address,
    /// Handshakes that failed or timed out.
    handshakes_failed,
    /// Sessions that completed Hello.
    sessions_opened,
    /// Sessions currently live.
    sessions_active,
    /// Most sessions live at once.
    sessions_peak,
    /// Messages queued for a live recipient.
    routed,
    /// Messages put on hold for an offline recipient (including those moved back from a queue).
    held,
    /// Deliveries written to a session that asked for receipts, not confirmed by the time it
    /// ended, and so held to be delivered again.
    redelivered,
    /// Messages refused with `busy`: the session queues held `max_queued_bytes` or more.
    busy,
    /// Messages refused because a hold was full.
    hold_full,
    /// Sessions disconnected because their queue filled.
    slow_consumers,
    /// Error frames sent (bad frames, bad tokens, timeouts, kicks).
    errors_sent,
    /// Hello frames with a token that did not verify.
    auth_failures,
    /// Connections closed for bytes that are not a frame (malformed, oversize, unknown kind).
    bad_frames,
    /// Connections closed for not saying Hello in time.
    hello_timeouts,
    /// Connections closed for valid frames out of place (no Hello first, a second Hello, a
    /// server's frame from a client, a protocol version the server does not speak).
    protocol_errors,
    /// Joins that made a new membership.
    group_joins,
    /// Leaves that ended a membership.
    group_leaves,
    /// Joins and Leaves refused (limits, not a member, rate).
    group_refusals,
    /// Group messages routed.
    group_messages,
    /// Deliveries those group messages fanned out to (queued or held).
    group_deliveries,
    /// File offers refused (limits, offline recipient, groups).
    transfers_refused,
    /// File transfers accepted and started.
    transfers_started,
    /// File transfers whose every byte reached the recipient's connection.
    transfers_relayed,
    /// File transfers ended early by either side, a stall or a size mismatch.
    transfers_aborted,
    /// File bytes relayed.
    file_bytes,
}
