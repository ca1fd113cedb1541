//! report.json's model: the report, each run's figures, counters, verdict and what the machine
//! did. Plain serde types; everything else in `report` builds or reads these.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::config::scenario::Scenario;
use crate::measure::group_records::GroupRecords;
use crate::measure::group_records::{GroupCounts, GroupSummary};
use crate::report::figures::{bucket_names, Counters, FIGURES};
use crate::workload::groups::Bucket;

/// File transfers beyond the counters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileReport {
    /// Bytes of every verified file.
    pub bytes_verified: u64,
    /// Per verified file, its size over the time from FileIncoming to its last byte verified,
    /// in KiB/s. The `_us` fields of this summary hold KiB/s, not microseconds.
    pub throughput_kib_s: MetricSummary,
}

impl FileReport {
    /// The per-file speeds in MiB/s, p50, min and max, as every view shows them; `None` when no
    /// file was verified (no speed at all, not a speed of 0).
    pub fn speeds_mib_s(&self) -> Option<[f64; 3]> {
        let t = &self.throughput_kib_s;
        let mib = |kib: u64| kib as f64 / 1024.0;
        (t.count > 0).then(|| [mib(t.p50_us), mib(t.min_us), mib(t.max_us)])
    }
}

/// Group accounting over all groups, and per group.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GroupReport {
    /// Acked.
    pub acked: u64,
    /// Refused by the server.
    pub rejected: u64,
    /// The ledger's counts over all groups; `sent` is the group messages the clients wrote.
    #[serde(flatten)]
    pub counts: GroupCounts,
    /// Messages not sent because the ledger was full.
    pub untracked: u64,
    /// Joins and Leaves the server refused.
    pub refused_membership_changes: u64,
    /// Size buckets present, smallest first.
    pub buckets: Vec<Bucket>,
    /// Per group.
    pub groups: Vec<GroupSummary>,
}

/// The shape of report.json this imbench writes. Raised whenever a field changes meaning or
/// goes away (new fields with a default need no raise); readers take every schema up to
/// theirs and refuse newer ones ([`crate::report::read`]). 3: `scenario.slo` may hold SLOs a
/// run was not judged on, named in its `slo_lifted` (an older merge would judge them). 4:
/// `cpu.us_per_message` is null for a period that sent no message (it was 0), and the CPU per
/// delivery divides by the deliveries received while its CPU was counted (`cpu.deliveries`).
pub const REPORT_SCHEMA: u32 = 4;

fn first_schema() -> u32 {
    1
}

/// Whole report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Shape of this file: [`REPORT_SCHEMA`] when written, 1 for reports written before the
    /// field existed.
    #[serde(default = "first_schema")]
    pub schema: u32,
    /// imbench version.
    pub version: String,
    /// The scenario as run (overrides applied).
    pub scenario: Scenario,
    /// Where it ran.
    pub machine: Machine,
    /// True when every run is valid and every SLO held.
    pub ok: bool,
    /// `ok`, `slo_failed` or `invalid`.
    pub verdict: Verdict,
    /// Why the run is invalid, if it is. A reason that is the machine's (its CPUs, its pauses),
    /// not the generator's or the server's, begins with [`THE_MACHINE`].
    ///
    /// [`THE_MACHINE`]: crate::measure::cpu_use::THE_MACHINE
    pub invalid_reasons: Vec<String>,
    /// One entry per transport run.
    pub runs: Vec<RunReport>,
    /// `i/n` when this generator ran one shard of the clients; `lost` is then judged only
    /// once the shards are merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
}

/// Outcome, ordered by severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Valid, all SLOs held.
    Ok,
    /// Valid, an SLO failed.
    SloFailed,
    /// The figures cannot be trusted (clients could not connect, connections lost, generator
    /// saturated).
    Invalid,
}

/// The machine a report was made on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// Logical CPUs available.
    pub cpus: usize,
    /// Operating system.
    pub os: String,
    /// CPU architecture.
    pub arch: String,
    /// Kernel release, where known.
    pub kernel: Option<String>,
    /// Total memory in bytes, where known.
    pub memory_bytes: Option<u64>,
}

/// A run's `server` when the server ran in the generator's process.
pub const EMBEDDED: &str = "embedded";

/// One transport's run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// Transport name.
    pub transport: String,
    /// [`EMBEDDED`] or the server address.
    pub server: String,
    /// The target's URL as given (`--target`), its password or token hidden; absent for
    /// imbench's own server given by `--server` or embedded, and in reports from before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Measured period in seconds.
    pub duration_s: f64,
    /// Latency summaries by metric name.
    pub metrics: BTreeMap<String, MetricSummary>,
    /// Message accounting.
    pub counters: Counters,
    /// Rates over the measured period.
    pub throughput: Throughput,
    /// The generator's own lateness.
    pub schedule_lag: ScheduleLag,
    /// The timer the sends waited on: `precise` or `tokio` (`generator.timer`, with `auto`
    /// decided).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timer: Option<crate::config::scenario::TimerKind>,
    /// SLO verdicts.
    pub slo: Vec<SloResult>,
    /// SLOs of the scenario this run was not judged on: a default (the file had no `[slo]`)
    /// on what its target promises to lose (`lost == 0` under churn against core NATS, say).
    /// A merge leaves them out too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slo_lifted: Vec<String>,
    /// Group accounting, when the run had groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupReport>,
    /// File accounting, when the scenario has files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<FileReport>,
    /// Process memory.
    pub memory: Memory,
    /// Process CPU over the measured period, where the platform tells.
    #[serde(default)]
    pub cpu: Option<Cpu>,
    /// Who used the CPUs this process may run on over the measured period: generator,
    /// embedded server, timer, other processes, steal; and how long this process's threads
    /// waited for a CPU. Where the platform tells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_use: Option<crate::measure::cpu_use::CpuUse>,
    /// What the run did differently from what was asked, and why (a stretched ramp-up).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Datagrams the kernel dropped on the run's UDP sockets over the measured period (QUIC
    /// runs), where the platform tells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_drops: Option<crate::measure::udp_drops::UdpDrops>,
    /// Problems seen (first few verbatim) and how many there were.
    pub problems: Vec<String>,
    /// Total number of problems.
    pub problem_count: usize,
    /// Per-second time series.
    pub intervals: Vec<IntervalPoint>,
    /// Wall-clock start of the run, seconds since the Unix epoch.
    #[serde(default)]
    pub started_unix_s: f64,
    /// Per-second histograms of measured samples, written to intervals.hlog (not to the JSON).
    #[serde(skip)]
    pub interval_log: Vec<IntervalHistograms>,
    /// A shard's group messages as records, for `imbench merge` to settle with the other
    /// shards' (written to group-ledger.json, not to the JSON).
    #[serde(skip)]
    pub group_records: Option<GroupRecords>,
}

impl RunReport {
    /// Whether this run measured less than the whole period of `whole` (an interrupt, a
    /// server gone): a part of a period, whose figures beside whole runs' would pass for noise.
    pub fn cut_short(&self, whole: std::time::Duration) -> bool {
        // A millisecond's slack for the rounding of a duration written as seconds.
        self.duration_s + 1e-3 < whole.as_secs_f64()
    }

    /// Whether this run's clients were imbench's own (its server, embedded, by `--server` or an
    /// `imbench+…` target), which alone count [`crate::report::figures::OWN_CLIENTS_ONLY`].
    pub fn own_clients(&self) -> bool {
        self.target.as_deref().is_none_or(|t| {
            // `NAME=URL` names a target; a URL's own `=` comes after its scheme.
            let url = match (t.find('='), t.find("://")) {
                (Some(eq), Some(scheme)) if eq < scheme => &t[eq + 1..],
                _ => t,
            };
            url.get(..7)
                .is_some_and(|s| s.eq_ignore_ascii_case("imbench"))
        })
    }

    /// The counter `name` of this run; `None` for one its clients cannot count (another
    /// system's run has no `resumed`: its 0 would read as "none happened").
    pub fn counter_given(&self, name: &str) -> Option<u64> {
        if !self.own_clients() && crate::report::figures::OWN_CLIENTS_ONLY.contains(&name) {
            return None;
        }
        self.counters.get(name)
    }

    /// Whether the server ran in the generator's process.
    pub fn embedded(&self) -> bool {
        self.server == EMBEDDED
    }

    /// What the run loaded, as its headings say: a target's URL (two brokers, or one at two
    /// QoS, differ there), or imbench's own server by its address (`embedded server`).
    pub fn against(&self) -> String {
        match &self.target {
            Some(url) => url.clone(),
            None => format!("{} server", self.server),
        }
    }

    /// The accounting every view prints under the latency rows, a line each: messages, churn
    /// (when clients reconnected), groups, files, throughput.
    pub fn accounting_lines(&self) -> Vec<String> {
        let c = &self.counters;
        let mut lines = vec![format!(
            "messages: sent {} acked {} rejected {} (busy {}) delivered {} lost {} duplicated {} reordered {} corrupted {} errors {}",
            c.sent, c.acked, c.rejected, c.rejected_busy, c.delivered, c.lost, c.duplicated, c.reordered, c.corrupted, c.errors
        )];
        if c.reconnects > 0
            || c.redeliveries > 0
            || c.resent > 0
            || c.handovers > 0
            || c.dropped_unanswered > 0
        {
            let mut line = format!(
                "churn: reconnects {} redeliveries {} resent {}",
                c.reconnects, c.redeliveries, c.resent
            );
            if c.dropped_unanswered > 0 {
                line += &format!(
                    "; {} taken unanswered by dropped connections (at most once: never sent again)",
                    c.dropped_unanswered
                );
            }
            if c.handovers > 0 {
                line += &format!(
                    "; handovers {}, of which {} moved the connection to the new address",
                    c.handovers, c.migrations
                );
            }
            lines.push(line);
        }
        if c.resumed > 0 || c.zero_rtt > 0 || c.zero_rtt_refused > 0 {
            lines.push(format!(
                "logins: session tickets offered {} (resumed unless the server had lost the session), Hello as 0-RTT data taken {} refused {}",
                c.resumed, c.zero_rtt, c.zero_rtt_refused
            ));
        }
        if let Some(g) = &self.group {
            let n = &g.counts;
            lines.push(format!(
                "groups: {} groups, sent {} acked {} rejected {}; deliveries expected {} delivered {} lost {} (in {} incomplete messages), race {} duplicated {} reordered {} unexpected {}",
                g.groups.len(), n.sent, g.acked, g.rejected, n.expected, n.delivered_expected, n.lost, n.incomplete, n.race_delivered, n.duplicated, n.reordered, n.unexpected
            ));
        }
        if let Some(f) = &self.files {
            let per_file = match f.speeds_mib_s() {
                Some([p50, min, max]) => format!(
                    "per-file MiB/s p50 {p50:.1} min {min:.1} max {max:.1} (of {})",
                    f.throughput_kib_s.count
                ),
                None => "per-file MiB/s -".to_string(),
            };
            lines.push(format!(
                "files (the whole run, warm-up included): sent {} verified {} refused {} corrupted {} failed {} unfinished {}; {per_file}; {:.1} MiB/s verified of the files due in the measured period",
                c.files_sent, c.files_verified, c.files_refused, c.files_corrupted, c.files_failed, c.files_unfinished,
                self.throughput.file_bytes_per_s / (1024.0 * 1024.0)
            ));
        }
        // A run stopped before its measured period began has no rate, not one of 0.
        lines.push(if self.duration_s > 0.0 {
            format!(
                "throughput: {:.0} sent/s, {:.0} delivered/s (measured period)",
                self.throughput.sent_per_s, self.throughput.delivered_per_s
            )
        } else {
            "throughput: nothing was measured".to_string()
        });
        lines
    }
}

impl RunReport {
    /// The latency rows every renderer shows, in table order: each declared figure the report
    /// holds that has samples (or is one every run should have), then the group figures per
    /// size bucket. A report written before a figure existed (`send_delay`, say) lacks it.
    pub fn latency_rows(&self) -> Vec<(String, &MetricSummary)> {
        let mut rows: Vec<(String, &MetricSummary)> = FIGURES
            .iter()
            .filter_map(|f| {
                let m = self.metrics.get(f.name)?;
                (m.count > 0 || f.always).then(|| (f.name.to_string(), m))
            })
            .collect();
        if let Some(g) = &self.group {
            for &b in &g.buckets {
                for name in bucket_names(b) {
                    if let Some(m) = self.metrics.get(&name) {
                        rows.push((name, m));
                    }
                }
            }
        }
        rows
    }
}

/// One interval's histograms of measured samples, per metric that had any.
#[derive(Debug, Clone)]
pub struct IntervalHistograms {
    /// Start, seconds since the run started.
    pub start_s: f64,
    /// End, seconds since the run started.
    pub end_s: f64,
    /// (metric name, histogram in µs).
    pub histograms: Vec<(String, Histogram<u64>)>,
}

/// A latency histogram's summary, and the histogram itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MetricSummary {
    /// Samples.
    pub count: u64,
    /// Smallest, µs.
    pub min_us: u64,
    /// Mean, µs.
    pub mean_us: f64,
    /// Median, µs.
    pub p50_us: u64,
    /// 90th percentile, µs.
    pub p90_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// 99.9th percentile, µs.
    pub p999_us: u64,
    /// Largest, µs.
    pub max_us: u64,
    /// The full histogram, HdrHistogram V2 compressed, base64.
    pub histogram: String,
}

/// The columns of a latency row in every view, after the metric's name.
pub const LATENCY_COLUMNS: [&str; 6] = ["count", "p50", "p90", "p99", "p99.9", "max"];

impl MetricSummary {
    /// This metric's cells under [`LATENCY_COLUMNS`].
    pub fn cells(&self) -> [String; 6] {
        [
            self.count.to_string(),
            self.shown(self.p50_us),
            self.shown(self.p90_us),
            self.shown(self.p99_us),
            self.shown(self.p999_us),
            self.shown(self.max_us),
        ]
    }

    /// `v`, one of this metric's statistics, as every view shows it: a duration, or `-` when
    /// the metric has no samples.
    pub fn shown(&self, v: u64) -> String {
        if self.count == 0 {
            "-".to_string()
        } else {
            crate::config::slo::three_digits(v as f64)
        }
    }
}

/// Rates over the measured period.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Throughput {
    /// Messages due in the measured period, per second.
    pub sent_per_s: f64,
    /// Deliveries of messages due in the measured period, per second.
    pub delivered_per_s: f64,
    /// Bytes of verified files whose transfer was due in the measured period, per second of
    /// the measured period or, when longer, of the time until the last of them was verified.
    pub file_bytes_per_s: f64,
}

impl Throughput {
    /// Each rate's name, as SLOs and regression checks write it.
    pub const NAMES: &'static [&'static str] =
        &["sent_per_s", "delivered_per_s", "file_bytes_per_s"];

    /// The rate called `name`.
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "sent_per_s" => Some(self.sent_per_s),
            "delivered_per_s" => Some(self.delivered_per_s),
            "file_bytes_per_s" => Some(self.file_bytes_per_s),
            _ => None,
        }
    }
}

/// The generator's lateness against its own schedule.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScheduleLag {
    /// Median lateness, µs.
    pub p50_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// Largest, µs.
    pub max_us: u64,
    /// The p99 above which the run counts as saturated, µs.
    pub limit_us: u64,
    /// Whether p99 exceeded the limit with the generator the cause: it had more to do than its
    /// CPU time allowed.
    pub saturated: bool,
    /// Whether p99 exceeded the limit with the machine the cause: a thread of this process with
    /// nothing to do was late too (the hiccup meter), or the process's threads waited for a CPU
    /// longer than they ran. Never true with `saturated`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub late_for_the_machine: bool,
}

/// One SLO's verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SloResult {
    /// As written.
    pub expr: String,
    /// The measured value.
    pub value: String,
    /// Whether it held.
    pub ok: bool,
}

/// Memory of the generator process.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Memory {
    /// Resident set before any client connected.
    pub rss_before_bytes: u64,
    /// Highest resident set seen while clients were connected and before measuring.
    pub rss_connected_bytes: u64,
    /// Peak resident set of the process.
    pub peak_rss_bytes: u64,
    /// (connected − before) / `clients` (0 when none was logged in).
    pub bytes_per_client: u64,
    /// Clients logged in when `rss_connected_bytes` was read, those the figure is of: fewer
    /// than the scenario's when a run was interrupted during its ramp-up or some failed to
    /// connect (absent in reports written before it was kept, whose figure is over all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<u64>,
    /// Whether the server ran in this process (then the figure covers both sides).
    pub server_embedded: bool,
    /// Runs this process ran before this one (`--repeat`, `--transport all`, a search's
    /// steps): its clients may take memory those freed, so the figure may read low.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub earlier_runs: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// CPU time the whole process (generator, and the server when embedded) used while the
/// measured period's messages were being sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cpu {
    /// User plus system CPU seconds over the measured period.
    pub seconds: f64,
    /// Average cores busy: `seconds` / the period's length.
    pub cores: f64,
    /// CPU µs per message sent in the period (send, route, deliver, account, both sides when
    /// the server is embedded); `None` (null) when the period sent no direct or group message
    /// (files only), where it would be no figure, not 0.
    #[serde(default)]
    pub us_per_message: Option<f64>,
    /// The generator's CPU µs per delivery in the period (direct deliveries, and each member's
    /// copy of a group message): what the load tool costs per unit of work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_us_per_delivery: Option<f64>,
    /// The embedded server's CPU µs per delivery in the period (embedded runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_us_per_delivery: Option<f64>,
    /// What the two figures above divide by: deliveries received over the span their CPU is
    /// of, from the period's start to the schedule's end (a backlog received in the drain is
    /// left out with the drain's CPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<u64>,
}

impl Cpu {
    pub(crate) fn over(seconds: f64, period_s: f64, messages: u64) -> Self {
        Self {
            seconds,
            cores: seconds / period_s.max(f64::EPSILON),
            us_per_message: (messages > 0).then(|| seconds * 1e6 / messages as f64),
            generator_us_per_delivery: None,
            server_us_per_delivery: None,
            deliveries: None,
        }
    }

    /// Adds the per-delivery split from the threads' accounting: `deliveries` were received
    /// over the span `u` is of, whose CPU is counted over `over_s` of it (the measured period,
    /// when the run found it had ended before the span did: a server silent for a while).
    pub(crate) fn split(
        mut self,
        u: &crate::measure::cpu_use::CpuUse,
        deliveries: u64,
        over_s: f64,
    ) -> Self {
        self.deliveries = Some(deliveries);
        if deliveries > 0 {
            let per = |cores: f64| cores * over_s * 1e6 / deliveries as f64;
            // The timer serves the generator's schedule: it is the generator's cost.
            self.generator_us_per_delivery = Some(per(u.generator_cores + u.timer_cores));
            self.server_us_per_delivery = u.server_cores.map(per);
        }
        self
    }
}

/// One second of the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IntervalPoint {
    /// End of the interval, seconds since the run started.
    pub t_s: f64,
    /// Clients connected at the end of the interval (those away on a planned disconnect are
    /// not, nor those whose connection was lost and not made again).
    pub connected: u64,
    /// Messages sent so far (direct and group).
    pub sent: u64,
    /// Deliveries so far (direct, and group deliveries to each member).
    pub delivered: u64,
    /// Group deliveries timed in this interval.
    #[serde(default)]
    pub group_count: u64,
    /// p99 group latency in this interval, µs.
    #[serde(default)]
    pub group_p99_us: u64,
    /// Deliveries timed in this interval.
    pub direct_count: u64,
    /// Median direct latency in this interval, µs.
    pub direct_p50_us: u64,
    /// p99 direct latency in this interval, µs.
    pub direct_p99_us: u64,
    /// Largest direct latency in this interval, µs.
    pub direct_max_us: u64,
    /// p99 schedule lag in this interval, µs.
    pub lag_p99_us: u64,
    /// Schedule lag samples in this interval (0 in reports written before it was kept).
    #[serde(default)]
    pub lag_count: u64,
    /// Send errors so far (0 in reports written before it was kept).
    #[serde(default)]
    pub errors: u64,
    /// Messages the server refused so far, direct and group.
    #[serde(default)]
    pub refused: u64,
    /// Clients whose connection ended before the run did, so far.
    #[serde(default)]
    pub dropped: u64,
}

impl Memory {
    /// Reads the process's peak memory and works out the per-client figure: `connected` was
    /// read with `clients` logged in.
    pub fn measure(before: u64, connected: u64, clients: usize, server_embedded: bool) -> Self {
        Self {
            rss_before_bytes: before,
            rss_connected_bytes: connected,
            // The kernel's high-water mark lags (RSS is counted per thread and summed now and
            // then): the readings taken here were reached, so the peak was at least those.
            peak_rss_bytes: imbench_server::process::peak_rss_bytes()
                .unwrap_or(0)
                .max(connected)
                .max(before),
            bytes_per_client: connected
                .saturating_sub(before)
                .checked_div(clients as u64)
                .unwrap_or(0),
            clients: Some(clients as u64),
            server_embedded,
            earlier_runs: 0,
        }
    }
}

/// The process's resident set now, in bytes (0 where /proc is missing).
pub fn rss_bytes() -> u64 {
    imbench_server::process::rss_bytes().unwrap_or(0)
}

impl Machine {
    /// Describes this machine.
    pub fn current() -> Self {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_string())
        };
        let memory_bytes = read("/proc/meminfo").and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?.to_string();
            line["MemTotal:".len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        });
        Self {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            os: std::env::consts::OS.to_string(),
            arch: std::env::consts::ARCH.to_string(),
            kernel: read("/proc/sys/kernel/osrelease"),
            memory_bytes: memory_bytes.map(|k| k * 1024),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Cpu, Memory};

    #[test]
    fn cpu_per_message_of_a_period_without_messages_is_no_figure() {
        assert_eq!(Cpu::over(2.0, 10.0, 0).us_per_message, None);
        assert_eq!(Cpu::over(2.0, 10.0, 1_000).us_per_message, Some(2_000.0));
        // Written as null, and read back from a report that wrote 0 or nothing.
        let json = serde_json::to_value(Cpu::over(2.0, 10.0, 0)).unwrap();
        assert!(json["us_per_message"].is_null(), "{json}");
        let old: Cpu = serde_json::from_str(r#"{"seconds":1,"cores":0.1}"#).unwrap();
        assert_eq!(old.us_per_message, None);
    }

    #[test]
    fn memory_per_client_is_over_the_clients_logged_in_when_it_was_read() {
        let m = Memory::measure(10 << 20, 40 << 20, 300, false);
        assert_eq!(
            (m.bytes_per_client, m.clients),
            ((30 << 20) / 300, Some(300))
        );
        // None logged in (every login failed): no figure, rather than the growth over one.
        let none = Memory::measure(10 << 20, 12 << 20, 0, true);
        assert_eq!((none.bytes_per_client, none.clients), (0, Some(0)));
    }
}
