//! The imbench load generator: simulated IM clients on an open-loop schedule, latency recorded
//! in HdrHistograms from each message's intended send time, every message accounted for, and a
//! verdict a CI job can gate on.
//!
//! # Layout
//!
//! Dependencies point one way: `run` → `client` → {`driver`, `workload`, `measure`} →
//! `config`, and
//! `run` → `report` → {`measure`, `workload`, `config`}. `report` never imports `run` or
//! `client`; `measure` never imports `client` (`tests/layers.rs` checks this).
//!
//! - [`config`] — the scenario and its SLOs.
//! - [`workload`] — schedules, group plans, files, churn and the message body header: what the
//!   clients do, from the seed.
//! - [`measure`] — the recorder, counters, exactly-once accounting, the precise timer, CPU use
//!   and UDP drops.
//! - [`driver`] — the seam between a client and the system it loads: log in, operations,
//!   events; the imbench protocol over a transport, NATS, MQTT, or an in-memory hub.
//! - [`client`] — one simulated client: connect, send on schedule, receive and time.
//! - [`run`] — one run from server start to report; transport comparison, capacity search,
//!   the live display.
//! - [`report`] — report.json and what is made from it: the table, summary.md, report.html,
//!   intervals.hlog, merge, regression gating, repeat spreads.
//! - [`stderr`] — standard error written from a thread of its own, so that nothing a run does
//!   waits for a reader of it.
#![warn(missing_docs)]

/// `eprintln!` that never panics and never waits: a closed standard error (`imbench run … 2>&1
/// | head`) must not stop a run halfway, nor one that nobody reads hold it up. The line goes
/// to [`stderr`]'s thread; what cannot be written is dropped.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        $crate::stderr::stderr().line(format!($($arg)*));
    }};
}

pub mod client;
pub mod config;
pub mod driver;
pub mod measure;
pub mod report;
pub mod run;
pub mod stderr;
pub mod workload;

pub use config::scenario::{Overrides, Scenario};
pub use config::shard::Shard;
pub use report::{Report, Verdict};
pub use run::progress::ProgressMode;
pub use run::{run, RunConfig, RunError, RunOutcome, ServerSpec};

/// Process exit codes of `imbench run`.
pub mod exit_code {
    /// The run was valid and every SLO held.
    pub const OK: u8 = 0;
    /// The run was valid and at least one SLO failed.
    pub const SLO_FAILED: u8 = 1;
    /// Bad command line or scenario; nothing ran.
    pub const USAGE: u8 = 2;
    /// The run itself is invalid: the server could not be reached, clients could not connect
    /// or lost their connection, the generator was saturated, or the report could not be
    /// written.
    pub const INVALID: u8 = 3;
}

impl Verdict {
    /// The exit code for this verdict.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Ok => exit_code::OK,
            Verdict::SloFailed => exit_code::SLO_FAILED,
            Verdict::Invalid => exit_code::INVALID,
        }
    }
}
