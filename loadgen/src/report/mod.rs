//! The run report: `report.json` in the shape DESIGN.md gives, the verdict (SLOs, validity),
//! and the table printed at the end of a run.

pub mod figures;
pub mod hlog;
pub mod html;
pub mod merge;
pub mod regression;
pub mod repeat;
pub mod summary;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use base64::Engine;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::config::scenario::{Scenario, TimerKind};
use crate::config::slo::{format_micros, Slo, Target};
use crate::measure::counters::ClientTotals;
use crate::measure::metrics::Metric;
use crate::report::figures::{bucket_names, FANOUT, FANOUT_SPREAD, FIGURES};
use crate::workload::files::FileTotals;
use crate::workload::groups::{Bucket, GroupOutcome, GroupSummary};

/// File transfers beyond the counters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileReport {
    /// Bytes of every verified file.
    pub bytes_verified: u64,
    /// Per verified file, its size over the time from FileIncoming to its last byte verified,
    /// in KiB/s. The `_us` fields of this summary hold KiB/s, not microseconds.
    pub throughput_kib_s: MetricSummary,
}

/// Group accounting over all groups, and per group.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GroupReport {
    /// Group messages sent.
    pub sent: u64,
    /// Acked.
    pub acked: u64,
    /// Refused by the server.
    pub rejected: u64,
    /// Deliveries owed by the membership when each message was routed.
    pub expected: u64,
    /// Owed deliveries that arrived.
    pub delivered_expected: u64,
    /// Deliveries to members whose membership changed while the message was in flight.
    pub race_delivered: u64,
    /// Owed deliveries that never arrived.
    pub lost: u64,
    /// Messages whose fan-out never completed.
    pub incomplete: u64,
    /// Deliveries received again.
    pub duplicated: u64,
    /// Deliveries out of order per sender.
    pub reordered: u64,
    /// Deliveries to clients that were certainly not members.
    pub unexpected: u64,
    /// Messages not sent because the ledger was full.
    pub untracked: u64,
    /// Joins and Leaves the server refused.
    pub refused_membership_changes: u64,
    /// Size buckets present, smallest first.
    pub buckets: Vec<Bucket>,
    /// Per group.
    pub groups: Vec<GroupSummary>,
}

/// Whole report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
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
    /// Why the run is invalid, if it is.
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

/// One transport's run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// Transport name.
    pub transport: String,
    /// `embedded` or the server address.
    pub server: String,
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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

impl MetricSummary {
    /// `v`, one of this metric's statistics, as every view shows it: a duration, or `-` when
    /// the metric has no samples.
    pub fn shown(&self, v: u64) -> String {
        if self.count == 0 {
            "-".to_string()
        } else {
            format_micros(v as f64)
        }
    }
}

pub use crate::report::figures::Counters;

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
    /// Whether p99 exceeded the limit.
    pub saturated: bool,
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
    /// (connected − before) / clients.
    pub bytes_per_client: u64,
    /// Whether the server ran in this process (then the figure covers both sides).
    pub server_embedded: bool,
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
    /// the server is embedded).
    pub us_per_message: f64,
    /// The generator's CPU µs per delivery in the period (direct deliveries, and each member's
    /// copy of a group message): what the load tool costs per unit of work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_us_per_delivery: Option<f64>,
    /// The embedded server's CPU µs per delivery in the period (embedded runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_us_per_delivery: Option<f64>,
}

impl Cpu {
    fn over(seconds: f64, period_s: f64, messages: u64) -> Self {
        Self {
            seconds,
            cores: seconds / period_s.max(f64::EPSILON),
            us_per_message: if messages == 0 {
                0.0
            } else {
                seconds * 1e6 / messages as f64
            },
            generator_us_per_delivery: None,
            server_us_per_delivery: None,
        }
    }

    /// Adds the per-delivery split from the threads' accounting.
    fn split(mut self, u: &crate::measure::cpu_use::CpuUse, deliveries: u64) -> Self {
        if deliveries > 0 {
            let per = |cores: f64| cores * u.period_s * 1e6 / deliveries as f64;
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
    /// Clients connected.
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
}

impl Memory {
    /// Reads the process's peak memory and works out the per-client figure.
    pub fn measure(before: u64, connected: u64, clients: usize, server_embedded: bool) -> Self {
        Self {
            rss_before_bytes: before,
            rss_connected_bytes: connected,
            peak_rss_bytes: imbench_server::process::peak_rss_bytes().unwrap_or(0),
            bytes_per_client: connected.saturating_sub(before) / clients.max(1) as u64,
            server_embedded,
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

/// Summarises a histogram and encodes it.
pub fn summarize(h: &Histogram<u64>) -> MetricSummary {
    let mut bytes = Vec::new();
    // Serialising into memory fails only on a histogram too large to encode, not here.
    let _ = V2DeflateSerializer::new().serialize(h, &mut bytes);
    let empty = h.is_empty();
    let q = |p: f64| if empty { 0 } else { h.value_at_quantile(p) };
    MetricSummary {
        count: h.len(),
        min_us: if empty { 0 } else { h.min() },
        mean_us: if empty { 0.0 } else { h.mean() },
        p50_us: q(0.5),
        p90_us: q(0.9),
        p99_us: q(0.99),
        p999_us: q(0.999),
        max_us: if empty { 0 } else { h.max() },
        histogram: base64::engine::general_purpose::STANDARD.encode(bytes),
    }
}

/// Decodes a summary's histogram.
pub fn decode_histogram(s: &MetricSummary) -> Option<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&s.histogram)
        .ok()?;
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut &bytes[..])
        .ok()
}

/// Everything a finished run hands over for its report, as plain data: the report is built
/// from this alone, never from the live run.
pub struct Measurement {
    /// The scenario as run, with overrides applied.
    pub scenario: Scenario,
    /// When the run's clock started.
    pub started_at: std::time::SystemTime,
    /// Start of the measured period, µs on the run's clock.
    pub measure_start_us: u64,
    /// End of the measured period: as planned, or when the run was stopped.
    pub measure_end_us: u64,
    /// Why the run was stopped early, if it was.
    pub stop_reason: Option<String>,
    /// `i/n` when this generator ran one shard of the clients.
    pub shard: Option<String>,
    /// Things the run did differently from what was asked, and why.
    pub notes: Vec<String>,
    /// How sends waited for their intended time.
    pub timer: TimerKind,
    /// The recorder's measured-period histogram of each metric.
    pub histograms: Vec<(Metric, Histogram<u64>)>,
    /// The group size buckets the run's groups fall in.
    pub buckets: Vec<Bucket>,
    /// The clients' counters added up.
    pub clients: ClientTotals,
    /// The file ledger's figures.
    pub files: FileTotals,
    /// The transport the clients used.
    pub transport: imbench_transport::Transport,
    /// The server's label (embedded, or its address).
    pub server: String,
    /// One point a second.
    pub intervals: Vec<IntervalPoint>,
    /// Per-second histograms for intervals.hlog.
    pub interval_log: Vec<IntervalHistograms>,
    /// The first problems noted.
    pub problems: Vec<String>,
    /// All problems noted.
    pub problem_count: usize,
    /// Process memory.
    pub memory: Memory,
    /// Process CPU seconds over the measured period.
    pub cpu_seconds: Option<f64>,
    /// Who used the CPUs over the measured period.
    pub cpu_use: Option<crate::measure::cpu_use::CpuUse>,
    /// UDP receive-buffer drops over the measured period.
    pub udp_drops: Option<crate::measure::udp_drops::UdpDrops>,
    /// Group accounting.
    pub groups: GroupOutcome,
}

impl Report {
    /// Builds the report of a finished run.
    pub fn build(m: Measurement) -> Self {
        let Measurement {
            scenario,
            started_at,
            measure_start_us,
            measure_end_us,
            stop_reason,
            shard,
            notes,
            timer,
            histograms,
            buckets,
            clients: c,
            files: file_totals,
            transport,
            server,
            intervals,
            interval_log,
            problems,
            problem_count,
            memory,
            cpu_seconds,
            cpu_use,
            udp_drops,
            groups,
        } = m;
        let s = &scenario;
        let mut metrics = BTreeMap::new();
        let histogram = |name: &str| -> Histogram<u64> {
            match name {
                FANOUT => groups.fanout.clone(),
                FANOUT_SPREAD => groups.spread.clone(),
                _ => histograms
                    .iter()
                    .find(|(m, _)| m.name() == name)
                    .map(|(_, h)| h.clone())
                    .unwrap_or_else(crate::measure::metrics::new_histogram),
            }
        };
        for f in FIGURES {
            metrics.insert(f.name.to_string(), summarize(&histogram(f.name)));
        }
        for &b in &buckets {
            let [group, fanout, spread] = bucket_names(b);
            metrics.insert(group.clone(), summarize(&histogram(&group)));
            metrics.insert(fanout, summarize(&groups.fanout_by_bucket[b.index()]));
            metrics.insert(spread, summarize(&groups.spread_by_bucket[b.index()]));
        }
        let (sent, rejected, delivered) = (c.sent, c.rejected, c.delivered);
        let expected = sent.saturating_sub(rejected);
        let group = (!groups.groups.is_empty()).then(|| GroupReport {
            sent: c.group_sent,
            acked: c.group_acked,
            rejected: c.group_rejected,
            expected: groups.total(|g| g.expected),
            delivered_expected: groups.total(|g| g.delivered_expected),
            race_delivered: groups.total(|g| g.race_delivered),
            lost: groups.total(|g| g.lost),
            incomplete: groups.total(|g| g.incomplete),
            duplicated: groups.total(|g| g.duplicated),
            reordered: groups.total(|g| g.reordered),
            unexpected: groups.total(|g| g.unexpected),
            untracked: groups.untracked,
            refused_membership_changes: c.group_refused,
            buckets: buckets.clone(),
            groups: groups.groups.clone(),
        });
        let g = group.clone().unwrap_or_default();
        let counters = Counters {
            clients: c.connected,
            connect_failures: c.connect_failed,
            disconnects: c.disconnected,
            sent: sent + g.sent,
            acked: c.acked + g.acked,
            rejected: rejected + g.rejected,
            rejected_busy: c.rejected_busy,
            expected: expected + g.expected,
            delivered: delivered + g.delivered_expected,
            // A shard's clients receive from every shard and send to every shard: what is lost
            // is known only when the shards' reports are added (`imbench merge`).
            lost: if shard.is_some() {
                0
            } else {
                expected.saturating_sub(delivered) + g.lost
            },
            duplicated: c.duplicated,
            reordered: c.reordered,
            corrupted: c.corrupted,
            // A delivery to a non-member is the server routing wrongly: an error.
            errors: c.errors + g.unexpected,
            reconnects: c.reconnects,
            redeliveries: c.redelivered,
            resent: c.resent,
            files_sent: file_totals.sent,
            files_verified: file_totals.verified,
            files_refused: file_totals.refused,
            files_corrupted: file_totals.corrupted,
            files_failed: file_totals.failed,
            files_unfinished: file_totals.unfinished,
        };
        let files = (s.files.rate > 0.0).then(|| FileReport {
            bytes_verified: file_totals.bytes_verified,
            throughput_kib_s: summarize(&file_totals.throughput),
        });
        // A stopped run measured less than planned.
        let duration_s = measure_end_us.saturating_sub(measure_start_us) as f64 / 1e6;
        let rate_s = duration_s.max(1e-3);
        let sent_in_window = c.sent_in_window + c.group_sent_in_window;
        let deliveries = metrics[Metric::Direct.name()].count + metrics[Metric::Group.name()].count;
        let throughput = Throughput {
            // Over at least a millisecond: a run stopped before it measured anything has rates
            // of 0, not NaN (which JSON cannot hold).
            sent_per_s: sent_in_window as f64 / rate_s,
            delivered_per_s: deliveries as f64 / rate_s,
            // Over the measured period, or until the last of its files was verified when that
            // was later: a transfer due in the period may finish in the drain.
            file_bytes_per_s: file_totals.bytes_verified_in_window as f64
                / (file_totals
                    .last_verified_in_window_us
                    .saturating_sub(measure_start_us) as f64
                    / 1e6)
                    .max(rate_s),
        };
        let lag = &metrics[Metric::ScheduleLag.name()];
        let limit_us = s.generator.max_schedule_lag.as_micros() as u64;
        let schedule_lag = ScheduleLag {
            p50_us: lag.p50_us,
            p99_us: lag.p99_us,
            max_us: lag.max_us,
            limit_us,
            saturated: lag.p99_us > limit_us,
        };
        let mut run = RunReport {
            transport: transport.to_string(),
            server,
            duration_s,
            metrics,
            counters,
            throughput,
            schedule_lag,
            timer: Some(timer),
            slo: Vec::new(),
            group,
            files,
            memory,
            cpu: cpu_seconds.map(|cpu_s| {
                let cpu = Cpu::over(cpu_s, rate_s, sent_in_window);
                match &cpu_use {
                    Some(u) => cpu.split(u, deliveries),
                    None => cpu,
                }
            }),
            cpu_use: cpu_use.clone(),
            notes,
            udp_drops,
            problems,
            problem_count,
            intervals,
            started_unix_s: started_at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            interval_log,
        };
        run.slo = s.slo.iter().map(|e| evaluate(e, &run)).collect();

        let mut invalid_reasons = Vec::new();
        if let Some(why) = stop_reason {
            invalid_reasons.push(format!("stopped early: {why}"));
        }
        let c = &run.counters;
        if c.connect_failures > 0 {
            invalid_reasons.push(format!(
                "{} of {} clients could not connect",
                c.connect_failures, s.clients
            ));
        }
        if c.disconnects > 0 {
            invalid_reasons.push(format!(
                "{} clients lost their connection during the run",
                c.disconnects
            ));
        }
        if g.untracked > 0 {
            invalid_reasons.push(format!(
                "{} group messages were not sent: the generator's message ledger was full",
                g.untracked
            ));
        }
        if run.schedule_lag.saturated {
            invalid_reasons.push(format!(
                "generator saturated: schedule lag p99 {} exceeds {}",
                format_micros(run.schedule_lag.p99_us as f64),
                format_micros(limit_us as f64)
            ));
        }
        if let Some(d) = run.udp_drops.as_ref().filter(|d| d.total() > 0) {
            invalid_reasons.push(format!(
                "the kernel dropped {} datagrams on the run's UDP sockets ({}): their receive buffers were full, and QUIC's recovery of them is in the figures; see net.core.rmem_max",
                d.total(),
                match d.standalone_server {
                    Some(n) => format!("{} on this process's, {n} on the server's", d.this_process),
                    None => "this process's".to_string(),
                }
            ));
        }
        if let Some(why) = run.cpu_use.as_ref().and_then(|u| {
            u.limit_reason(
                s.generator.max_cpu_busy,
                s.generator.max_cpu_wait.as_secs_f64() * 1e6,
            )
        }) {
            invalid_reasons.push(why);
        }
        let verdict = if !invalid_reasons.is_empty() {
            Verdict::Invalid
        } else if run.slo.iter().any(|r| !r.ok) {
            Verdict::SloFailed
        } else {
            Verdict::Ok
        };
        Report {
            version: env!("CARGO_PKG_VERSION").to_string(),
            scenario: s.clone(),
            machine: Machine::current(),
            ok: verdict == Verdict::Ok,
            verdict,
            invalid_reasons,
            runs: vec![run],
            shard,
        }
    }

    /// Writes `report.json`, `intervals.hlog`, `summary.md` and `report.html` into `dir`
    /// (created if needed).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("report.json"), json)?;
        if self.runs.iter().any(|r| !r.interval_log.is_empty()) {
            std::fs::write(
                dir.join("intervals.hlog"),
                crate::report::hlog::encode(self)?,
            )?;
        }
        std::fs::write(dir.join("report.html"), crate::report::html::render(self))?;
        std::fs::write(
            dir.join("summary.md"),
            crate::report::summary::markdown(self),
        )
    }

    /// The end-of-run table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for run in &self.runs {
            let _ = writeln!(
                out,
                "\n{} over {} ({} server), {} clients, {:.1}s measured",
                self.scenario.name, run.transport, run.server, run.counters.clients, run.duration_s
            );
            let _ = writeln!(
                out,
                "{:<20} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "latency", "count", "p50", "p90", "p99", "p99.9", "max"
            );
            for (name, m) in run.latency_rows() {
                write_metric_row(&mut out, &name, m);
            }
            let c = &run.counters;
            let _ = writeln!(
                out,
                "\nmessages: sent {} acked {} rejected {} (busy {}) delivered {} lost {} duplicated {} reordered {} corrupted {} errors {}",
                c.sent, c.acked, c.rejected, c.rejected_busy, c.delivered, c.lost, c.duplicated, c.reordered, c.corrupted, c.errors
            );
            if c.reconnects > 0 || c.redeliveries > 0 || c.resent > 0 {
                let _ = writeln!(
                    out,
                    "churn: reconnects {} redeliveries {} resent {}",
                    c.reconnects, c.redeliveries, c.resent
                );
            }
            if let Some(g) = &run.group {
                let _ = writeln!(
                    out,
                    "groups: {} groups, sent {} acked {} rejected {}; deliveries expected {} delivered {} lost {} (in {} incomplete messages), race {} duplicated {} reordered {} unexpected {}",
                    g.groups.len(), g.sent, g.acked, g.rejected, g.expected, g.delivered_expected, g.lost, g.incomplete, g.race_delivered, g.duplicated, g.reordered, g.unexpected
                );
            }
            if let Some(f) = &run.files {
                let t = &f.throughput_kib_s;
                let mib = |kib: u64| kib as f64 / 1024.0;
                let _ = writeln!(
                    out,
                    "files: sent {} verified {} refused {} corrupted {} failed {} unfinished {}; per-file MiB/s p50 {:.1} min {:.1} max {:.1}; {:.1} MiB/s verified",
                    c.files_sent, c.files_verified, c.files_refused, c.files_corrupted, c.files_failed, c.files_unfinished,
                    mib(t.p50_us), mib(t.min_us), mib(t.max_us),
                    run.throughput.file_bytes_per_s / (1024.0 * 1024.0)
                );
            }
            let _ = writeln!(
                out,
                "throughput: {:.0} sent/s, {:.0} delivered/s (measured period)",
                run.throughput.sent_per_s, run.throughput.delivered_per_s
            );
            let l = &run.schedule_lag;
            let _ = writeln!(
                out,
                "schedule lag: p50 {} p99 {} max {} (limit p99 {}{}){}",
                format_micros(l.p50_us as f64),
                format_micros(l.p99_us as f64),
                format_micros(l.max_us as f64),
                format_micros(l.limit_us as f64),
                run.timer
                    .as_ref()
                    .map_or(String::new(), |t| format!("; {} timer", t.name())),
                if l.saturated { " — SATURATED" } else { "" }
            );
            let m = &run.memory;
            if m.bytes_per_client > 0 {
                let _ = writeln!(
                    out,
                    "memory: {} KiB per client ({}), peak RSS {} MiB",
                    m.bytes_per_client / 1024,
                    if m.server_embedded {
                        "generator + embedded server"
                    } else {
                        "generator"
                    },
                    m.peak_rss_bytes / (1024 * 1024)
                );
            }
            if let Some(cpu) = &run.cpu {
                let _ = writeln!(
                    out,
                    "cpu: {:.2} cores busy over the measured period, {:.0} µs per message",
                    cpu.cores, cpu.us_per_message
                );
                let mut per = Vec::new();
                if let Some(g) = cpu.generator_us_per_delivery {
                    per.push(format!("generator {g:.1}"));
                }
                if let Some(sv) = cpu.server_us_per_delivery {
                    per.push(format!("embedded server {sv:.1}"));
                }
                if !per.is_empty() {
                    let _ = writeln!(out, "cpu per delivery: {} µs", per.join(", "));
                }
            }
            if let Some(u) = &run.cpu_use {
                let _ = writeln!(
                    out,
                    "machine: {} CPUs {:.0}% busy: {}",
                    u.cpus,
                    u.busy_fraction * 100.0,
                    u.breakdown()
                );
                let in_period = run.throughput.sent_per_s * run.duration_s;
                if in_period >= 1.0 {
                    let mut per = format!(
                        "per message sent: {:.1} wake-ups of this process",
                        u.wakeups as f64 / in_period
                    );
                    // UDP is the machine's count: meaningful for a QUIC run on a machine
                    // doing little else.
                    if let Some(d) = u.udp_datagrams.filter(|_| run.transport == "quic") {
                        per.push_str(&format!(
                            ", {:.1} UDP datagrams sent by the whole machine",
                            d as f64 / in_period
                        ));
                    }
                    let _ = writeln!(out, "{per}");
                }
            }
            if let Some(d) = &run.udp_drops {
                let _ = writeln!(
                    out,
                    "udp: {} datagrams dropped by the kernel on the run's sockets{}",
                    d.total(),
                    if d.total() > 0 {
                        " — their receive buffers were full"
                    } else {
                        ""
                    }
                );
            }
            for note in &run.notes {
                let _ = writeln!(out, "note: {note}");
            }
            if !run.slo.is_empty() {
                let _ = writeln!(out, "SLOs:");
                for r in &run.slo {
                    let _ = writeln!(
                        out,
                        "  {:<4} {:<32} {}",
                        if r.ok { "ok" } else { "FAIL" },
                        r.expr,
                        r.value
                    );
                }
            }
            for p in &run.problems {
                let _ = writeln!(out, "problem: {p}");
            }
            if run.problem_count > run.problems.len() {
                let _ = writeln!(
                    out,
                    "… and {} more problems",
                    run.problem_count - run.problems.len()
                );
            }
        }
        let _ = writeln!(out, "verdict: {}", self.verdict_line());
        out
    }

    /// The verdict in words, with the reasons when invalid.
    pub fn verdict_line(&self) -> String {
        match self.verdict {
            Verdict::Ok => "OK".to_string(),
            Verdict::SloFailed => "SLO FAILED".to_string(),
            Verdict::Invalid => format!("INVALID ({})", self.invalid_reasons.join("; ")),
        }
    }
}

/// Looks up what an SLO refers to and judges it.
pub(crate) fn evaluate(expr: &str, run: &RunReport) -> SloResult {
    let slo = match Slo::parse(expr) {
        Ok(slo) => slo,
        Err(e) => {
            return SloResult {
                expr: expr.to_string(),
                value: e.to_string(),
                ok: false,
            }
        }
    };
    let value = target_value(&slo.target, run);
    match value {
        Some(v) => SloResult {
            expr: slo.expr.clone(),
            value: slo.show(v),
            ok: slo.holds(v),
        },
        None => SloResult {
            expr: slo.expr.clone(),
            value: "no such metric".into(),
            ok: false,
        },
    }
}

fn write_metric_row(out: &mut String, name: &str, m: &MetricSummary) {
    let f = |v: u64| m.shown(v);
    let _ = writeln!(
        out,
        "{:<20} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        name,
        m.count,
        f(m.p50_us),
        f(m.p90_us),
        f(m.p99_us),
        f(m.p999_us),
        f(m.max_us)
    );
}

/// The value of an SLO's left-hand side in `run`: a latency statistic in µs, or a counter or
/// rate.
pub fn target_value(target: &Target, run: &RunReport) -> Option<f64> {
    match target {
        Target::Latency { metric, stat } => run.metrics.get(metric).map(|m| match stat.as_str() {
            "min" => m.min_us as f64,
            "mean" => m.mean_us,
            "p50" => m.p50_us as f64,
            "p90" => m.p90_us as f64,
            "p99" => m.p99_us as f64,
            "p999" => m.p999_us as f64,
            "max" => m.max_us as f64,
            _ => m.count as f64,
        }),
        Target::Number(name) => number(run, name),
    }
}

fn number(run: &RunReport, name: &str) -> Option<f64> {
    if let Some(g) = &run.group {
        match name {
            "incomplete" => return Some(g.incomplete as f64),
            "race_delivered" => return Some(g.race_delivered as f64),
            "unexpected" => return Some(g.unexpected as f64),
            _ => {}
        }
    }
    if let Some(v) = run.counters.get(name) {
        return Some(v as f64);
    }
    let t = &run.throughput;
    Some(match name {
        "sent_per_s" => t.sent_per_s,
        "delivered_per_s" => t.delivered_per_s,
        "file_bytes_per_s" => t.file_bytes_per_s,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_survive_the_round_trip_through_json() {
        let mut h = crate::measure::metrics::new_histogram();
        for v in [5u64, 50, 500, 5_000, 50_000] {
            h.record(v).unwrap();
        }
        let s = summarize(&h);
        let json = serde_json::to_string(&s).unwrap();
        let back: MetricSummary = serde_json::from_str(&json).unwrap();
        let decoded = decode_histogram(&back).unwrap();
        assert_eq!(decoded.len(), 5);
        assert_eq!(decoded.value_at_quantile(0.5), h.value_at_quantile(0.5));
        assert_eq!(back.p99_us, h.value_at_quantile(0.99));
        let empty = summarize(&crate::measure::metrics::new_histogram());
        assert_eq!((empty.count, empty.p99_us, empty.max_us), (0, 0, 0));
    }
}
