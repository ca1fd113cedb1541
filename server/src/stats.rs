//! Server counters: relaxed atomics bumped on the paths they count, read as a snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[doc = $doc:literal])+ $kind:ident $name:ident),* $(,)?) => {
        /// Live counters, shared by every task of one server.
        #[derive(Debug, Default)]
        pub struct Stats { $($(#[doc = $doc])+ pub $name: AtomicU64,)* }

        /// A copy of [`Stats`] at one moment.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct StatsSnapshot { $($(#[doc = $doc])+ pub $name: u64,)* }

        impl Stats {
            /// Reads every counter.
            pub fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }

        impl StatsSnapshot {
            /// Every figure with its name, what it counts (its doc comment) and its kind, for
            /// exporting.
            pub fn figures(&self) -> Vec<Figure> {
                vec![$(Figure {
                    name: stringify!($name),
                    help: concat!($($doc, "\n"),+),
                    kind: Kind::$kind,
                    value: self.$name,
                },)*]
            }
        }
    };
}

/// Whether a figure only grows, or goes up and down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only grows while the server runs.
    Counter,
    /// A level now (sessions live) or the highest level so far.
    Gauge,
}

/// One figure of a [`StatsSnapshot`].
#[derive(Debug, Clone, Copy)]
pub struct Figure {
    /// Its field name.
    pub name: &'static str,
    /// Its doc comment, one line per source line.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// Its value.
    pub value: u64,
}

counters! {
    /// Connection attempts accepted for a handshake.
    Counter connections_accepted,
    /// Connection attempts refused over the connection limit.
    Counter connections_refused,
    /// Connections answered `too_many_connections`: their address had its fill.
    Counter connections_refused_per_address,
    /// Handshakes that failed or timed out.
    Counter handshakes_failed,
    /// Plain HTTP requests (no WebSocket upgrade: a browser, a health check) a WebSocket port
    /// answered 426; not failed handshakes.
    Counter http_requests_not_upgraded,
    /// Sessions that completed Hello.
    Counter sessions_opened,
    /// TLS handshakes (TLS, WSS, QUIC) that resumed a session from an earlier connection of
    /// the same client. The session store counts them; this field only names the figure.
    Counter sessions_resumed,
    /// Sessions currently live.
    Gauge sessions_active,
    /// Most sessions live at once.
    Gauge sessions_peak,
    /// Messages queued for a live recipient.
    Counter routed,
    /// Messages put on hold for an offline recipient (including those moved back from a queue).
    Counter held,
    /// Deliveries written to a session that asked for receipts, not confirmed by the time it
    /// ended, and so held to be delivered again.
    Counter redelivered,
    /// Messages refused with `busy`: the session queues held `max_queued_bytes` or more.
    Counter busy,
    /// Messages refused because a hold was full.
    Counter hold_full,
    /// Messages refused because their body was larger than the limit (`--max-body`).
    Counter too_large,
    /// Sessions disconnected because their queue filled.
    Counter slow_consumers,
    /// Error frames sent (bad frames, bad tokens, timeouts, kicks).
    Counter errors_sent,
    /// Hello frames with a token that did not verify.
    Counter auth_failures,
    /// Connections closed for bytes that are not a frame (malformed, oversize, unknown kind).
    Counter bad_frames,
    /// Connections closed for not saying Hello in time.
    Counter hello_timeouts,
    /// Connections closed for valid frames out of place (no Hello first, a second Hello, a
    /// server's frame from a client, a protocol version the server does not speak).
    Counter protocol_errors,
    /// Joins that made a new membership.
    Counter group_joins,
    /// Leaves that ended a membership.
    Counter group_leaves,
    /// Joins and Leaves refused (limits, not a member, rate).
    Counter group_refusals,
    /// Group messages routed.
    Counter group_messages,
    /// Deliveries those group messages fanned out to (queued or held).
    Counter group_deliveries,
    /// File offers refused (limits, offline recipient, groups).
    Counter transfers_refused,
    /// File transfers accepted and started.
    Counter transfers_started,
    /// File transfers whose every byte reached the recipient's connection.
    Counter transfers_relayed,
    /// File transfers ended early by either side, a stall or a size mismatch.
    Counter transfers_aborted,
    /// File bytes relayed.
    Counter file_bytes,
}
