//! The imbench load generator: simulated IM clients on an open-loop schedule, latency recorded
//! in HdrHistograms from each message's intended send time, every message accounted for, and a
//! verdict a CI job can gate on.
//!
//! # Layout
//!
//! - [`scenario`] — the TOML scenario format and command-line overrides.
//! - [`schedule`] — per-client send times, sizes and partners, from the seed.
//! - [`body`] — the measurement header inside every message body.
//! - [`client`] — one simulated client: connect, send on schedule, receive and time.
//! - [`receive`] — a client's receive path: every arriving frame checked, timed and counted.
//! - [`groups`] — group membership plan, group schedules and fan-out accounting.
//! - [`files`] — file contents, file schedules, verification and the transfer ledger.
//! - [`file_client`] — a client's transfers: offers, bytes out, files in.
//! - [`counters`] — each client's live counters and their totals, declared once.
//! - [`accounting`] — exactly-once bookkeeping per sender → recipient pair.
//! - [`metrics`] — per-thread histogram recording and the interval collector.
//! - [`timer`] — the precise timer the send schedule waits on.
//! - [`cpu_use`] — who used the CPUs during a run, and whether the machine was the limit.
//! - [`udp_drops`] — datagrams the kernel dropped on the run's UDP sockets.
//! - [`run`] — one run from server start to report.
//! - [`compare`] — one scenario once per transport, and the comparison table.
//! - [`capacity`] — the capacity search (`--find-max`): steps of rising load until an SLO fails.
//! - [`progress`] — the live display.
//! - [`report`] — report.json, verdicts and the end-of-run table.
//! - [`figures`] — every latency figure and counter a report holds, declared once.
//! - [`slo`] — SLO expressions.
//! - [`regression`] — `compare --fail-on-regression`: a report against a baseline's repeats.
//! - [`repeat`] — `run --repeat N`: the spread of each figure over repeated runs.
//! - [`hlog`] — intervals.hlog, the HdrHistogram interval log.
//! - [`html`] — report.html, the self-contained page with the plots.
//! - [`merge`] — shard reports added into one.
//! - [`summary`] — summary.md for CI job summaries.
#![warn(missing_docs)]

pub mod accounting;
pub mod body;
pub mod capacity;
pub mod churn;
pub mod client;
pub mod compare;
pub mod counters;
pub mod cpu_use;
pub mod figures;
pub mod file_client;
pub mod files;
pub mod groups;
pub mod hlog;
pub mod html;
pub mod merge;
pub mod metrics;
pub mod progress;
pub mod receive;
pub mod regression;
pub mod repeat;
pub mod report;
pub mod run;
pub mod scenario;
pub mod schedule;
pub mod slo;
pub mod summary;
pub mod timer;
pub mod udp_drops;

pub use report::{Report, Verdict};
pub use run::{run, ProgressMode, RunConfig, RunError, RunOutcome, ServerSpec, Shard};
pub use scenario::{Overrides, Scenario};

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
