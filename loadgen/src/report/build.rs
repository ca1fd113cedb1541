//! A report built from what a run measured ([`Measurement`]): figures, counters, rates, SLO
//! verdicts and the reasons a run is invalid.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::config::scenario::{Scenario, TimerKind};
use crate::config::slo::{format_micros, Op, Slo, Target};
use crate::measure::counters::ClientTotals;
use crate::measure::cpu_use::{is_the_machines, CpuUse, THE_MACHINE};
use crate::measure::file_ledger::FileTotals;
use crate::measure::group_records::{GroupCounts, GroupOutcome};
use crate::measure::metrics::Metric;
use crate::report::figures::{bucket_names, Counters, FANOUT, FANOUT_SPREAD, FIGURES};
use crate::report::histogram::summarize;
use crate::report::model::{
    Cpu, FileReport, GroupReport, IntervalHistograms, IntervalPoint, Machine, Memory,
    MetricSummary, Report, RunReport, ScheduleLag, SloResult, Throughput, Verdict,
};
use crate::workload::groups::Bucket;

/// Everything a finished run hands over for its report, as plain data: the report is built
/// from this alone, never from the live run.
pub struct Measurement {
    /// The scenario as run, with overrides applied.
    pub scenario: Scenario,
    /// Of its SLOs, those this run is not judged on ([`RunReport::slo_lifted`]).
    pub slo_lifted: Vec<String>,
    /// When the run's clock started.
    pub started_at: std::time::SystemTime,
    /// Start of the measured period, µs on the run's clock.
    pub measure_start_us: u64,
    /// End of the measured period: as planned, or when the run was stopped.
    pub measure_end_us: u64,
    /// Why the run was stopped, if it was, with when (see `RunContext::stop_reason`).
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
    /// The transport the clients used (`memory` for the in-memory hub).
    pub transport: String,
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
    /// Deliveries received over the span `cpu_use` is of (from the measured period's start
    /// to the schedule's end, whatever messages they were of).
    pub delivered_with_cpu: Option<u64>,
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
            slo_lifted,
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
            delivered_with_cpu,
            udp_drops,
            groups,
        } = m;
        let s = &scenario;
        let mut metrics = BTreeMap::new();
        let histogram = |name: &str| -> Histogram<u64> {
            histograms
                .iter()
                .find(|(m, _)| m.name() == name)
                .map(|(_, h)| h.clone())
                .unwrap_or_else(crate::measure::metrics::new_histogram)
        };
        for f in FIGURES {
            metrics.insert(f.name.to_string(), summarize(&histogram(f.name)));
        }
        for &b in &buckets {
            let [group, _, _] = bucket_names(b);
            metrics.insert(group.clone(), summarize(&histogram(&group)));
        }
        metrics.extend(fanout_metrics(&groups, &buckets));
        let (sent, rejected, delivered) = (c.sent, c.rejected, c.delivered);
        let expected = sent.saturating_sub(rejected);
        let group = (!groups.groups.is_empty()).then(|| GroupReport {
            acked: c.group_acked,
            rejected: c.group_rejected,
            counts: GroupCounts {
                sent: c.group_sent,
                ..groups.total()
            },
            untracked: groups.untracked,
            refused_membership_changes: c.group_refused,
            buckets: buckets.clone(),
            groups: groups.groups.clone(),
        });
        let g = group.clone().unwrap_or_default();
        let gc = &g.counts;
        let counters = Counters {
            clients: c.connected,
            connect_failures: c.connect_failed,
            disconnects: c.disconnected,
            sent: sent + gc.sent,
            acked: c.acked + g.acked,
            rejected: rejected + g.rejected,
            rejected_busy: c.rejected_busy,
            expected: expected + gc.expected,
            delivered: delivered + gc.delivered_expected,
            // A shard's clients receive from every shard and send to every shard: what is lost
            // is known only when the shards' reports are added (`imbench merge`).
            lost: if shard.is_some() {
                0
            } else {
                expected.saturating_sub(delivered) + gc.lost
            },
            duplicated: c.duplicated,
            reordered: c.reordered,
            corrupted: c.corrupted,
            // A delivery to a non-member is the server routing wrongly: an error.
            errors: c.errors + gc.unexpected,
            reconnects: c.reconnects,
            redeliveries: c.redelivered,
            resent: c.resent,
            dropped_unanswered: c.dropped_unanswered + c.group_dropped_unanswered,
            resumed: c.resumed,
            zero_rtt: c.zero_rtt,
            zero_rtt_refused: c.zero_rtt_refused,
            handovers: c.handovers,
            migrations: c.migrations,
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
        let cpu_limit_reason = cpu_use.as_ref().and_then(|u| {
            u.limit_reason(
                s.generator.max_cpu_busy,
                s.generator.max_cpu_wait.as_secs_f64() * 1e6,
            )
        });
        let late_reason = (lag.p99_us > limit_us).then(|| {
            // Who used the CPUs is said once: in the CPU limit's own reason when it has one.
            let why = late_schedule_reason(
                lag,
                limit_us,
                metrics.get(Metric::Hiccup.name()),
                cpu_use.as_ref(),
                cpu_limit_reason.is_none(),
            );
            // tokio's timer wheel alone wakes a send about a millisecond late, up to two at p99: a limit near
            // that is one the timer misses on an idle machine.
            if timer == TimerKind::Tokio && !is_the_machines(&why) {
                format!(
                    "{why} (with tokio's timer, which by itself wakes a send about 1 ms late and up to about {} at p99; the precise timer, `--timer precise`, does not)",
                    crate::config::slo::format_micros(
                        crate::measure::timer::TOKIO_TIMER_LATENESS.as_micros() as f64
                    )
                )
            } else {
                why
            }
        });
        let schedule_lag = ScheduleLag {
            p50_us: lag.p50_us,
            p99_us: lag.p99_us,
            max_us: lag.max_us,
            limit_us,
            saturated: late_reason
                .as_ref()
                .is_some_and(|why| !is_the_machines(why)),
            late_for_the_machine: late_reason.as_ref().is_some_and(|why| is_the_machines(why)),
        };
        let mut run = RunReport {
            transport,
            server,
            target: None,
            duration_s,
            metrics,
            counters,
            throughput,
            schedule_lag,
            timer: Some(timer),
            slo: Vec::new(),
            slo_lifted,
            group,
            files,
            memory,
            cpu: cpu_seconds.map(|cpu_s| {
                // Read when the run stopped: a period cut short after the fact (a server silent
                // since before it was noticed) is shorter than the span the CPU was read over,
                // whose use is taken as even over it.
                let (cpu_s, over_s) = match cpu_use.as_ref() {
                    Some(u) => match u.span_beyond(rate_s) {
                        Some(span_s) => (cpu_s * rate_s / span_s, rate_s),
                        None => (cpu_s, u.period_s),
                    },
                    None => (cpu_s, rate_s),
                };
                let cpu = Cpu::over(cpu_s, rate_s, sent_in_window);
                match (&cpu_use, delivered_with_cpu) {
                    (Some(u), Some(received)) => cpu.split(u, received, over_s),
                    _ => cpu,
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
            group_records: None,
        };
        // A shard's latencies are of its own clients' samples, but its counts and rates are
        // part of the load's and its fan-out is settled only with the others' records: those
        // SLOs are judged on the merge.
        let (judged, on_merge): (Vec<&String>, Vec<&String>) = s
            .slo
            .iter()
            .filter(|e| !run.slo_lifted.contains(e))
            .partition(|e| shard.is_none() || judged_in_a_shard(e));
        if duration_s > 0.0 {
            run.slo = judged
                .into_iter()
                .map(|e| evaluate_with(e, &run, shard.is_none()))
                .collect();
        } else if !judged.is_empty() {
            // Stopped before the measured period began: every figure is empty, and an SLO
            // listed as failed on "no samples" would blame the system for what was not run.
            let names: Vec<&str> = judged.iter().map(|e| e.as_str()).collect();
            run.notes.push(format!(
                "SLOs not judged, since nothing was measured: {}",
                names.join(", ")
            ));
        }
        if let (Some(shard), false) = (&shard, on_merge.is_empty()) {
            let names: Vec<&str> = on_merge.iter().map(|e| e.as_str()).collect();
            run.notes.push(format!(
                "shard {shard}: SLOs on counts, rates and fan-out are judged when the shards are merged: {}",
                names.join(", ")
            ));
        }

        let mut invalid_reasons = Vec::new();
        if let Some(why) = stop_reason {
            invalid_reasons.push(why);
        }
        let (replaced, unsent) = (c.replaced, c.unsent);
        let c = &run.counters;
        if c.connect_failures > 0 {
            invalid_reasons.push(format!(
                "{} of {} clients could not connect",
                c.connect_failures, s.clients
            ));
        }
        if c.disconnects > 0 {
            // The server closes a session when its user logs in again elsewhere: two
            // generators running the same clients.
            let why = if replaced > 0 {
                format!(
                    ", {replaced} of them logged out by a newer login of their user id (`replaced`): another generator runs the same clients against this server (the same --shard, or JOB_COMPLETION_INDEX, twice; or another run at once)"
                )
            } else if run.transport == "quic"
                && s.quic.keep_alive.trim() == "off"
                && run.problems.iter().any(|p| p.contains("timed out"))
            {
                format!(": {}", quiet_quic_times_out(s.quic.idle_timeout))
            } else {
                String::new()
            };
            invalid_reasons.push(format!(
                "{} lost {} connection during the run{why}",
                if c.disconnects == 1 {
                    "1 client".to_string()
                } else {
                    format!("{} clients", c.disconnects)
                },
                if c.disconnects == 1 { "its" } else { "their" }
            ));
        }
        // Of the measured period, not the run: a warm-up's messages are not measured.
        // A shard's clients may only receive (the senders are in other shards): it measured
        // something when it timed a delivery.
        let received = shard.is_some() && deliveries > 0;
        if duration_s > 0.0 && sent_in_window == 0 && file_totals.sent_in_window == 0 && !received {
            // A load of no message (rates of 0, say) passes every SLO on messages: `lost == 0`
            // of nothing is no finding, and a gate on it would pass a run that measured none.
            invalid_reasons.push(if unsent > 0 {
                // Sends were made, of messages due before the period: the generator never
                // caught up to it.
                "nothing due in the measured period was sent: the generator, behind its schedule, was still sending what was due before it when the schedule ended, so no figure is of the period's messages".to_string()
            } else {
                "nothing was sent in the measured period: no figure is of a message (the direct, group and file rates are 0, or too low for so short a period)"
                    .to_string()
            });
        }
        if c.sent > 0 && c.acked == 0 && c.rejected > 0 {
            // Nothing lost, nothing late: nothing measured either. A server refusing everything
            // (a body over its limit, a full hold, an overload) is not a passing run.
            invalid_reasons.push(format!(
                "the server refused every message ({} of {} sent, {} of them busy): nothing was delivered to measure",
                c.rejected, c.sent, c.rejected_busy
            ));
        }
        let every_join_refused =
            shard.is_none() && gc.sent > 0 && gc.expected == 0 && g.refused_membership_changes > 0;
        if every_join_refused {
            // Every join refused (a room service the server does not have, say): the groups
            // delivered nothing, which no SLO on what was owed would notice.
            invalid_reasons.push(format!(
                "no group message had a member to deliver to: the server refused {} joins or leaves (see the problems)",
                g.refused_membership_changes
            ));
        }
        if g.untracked > 0 {
            invalid_reasons.push(format!(
                "{} group messages were not sent: the generator's message ledger was full",
                g.untracked
            ));
        }
        // Before saturation: a machine that stopped the process also makes the schedule late,
        // and the pause is then the cause.
        if let Some(why) = run
            .metrics
            .get(Metric::Hiccup.name())
            .and_then(|h| hiccup_reason(h, s.generator.max_hiccup))
        {
            invalid_reasons.push(why);
        }
        if let Some(why) = late_reason {
            invalid_reasons.push(why);
        }
        if unsent > 0 {
            // Sent, they would have been a backlog that the drain waited on, latencies of the
            // generator's own making: they are left out, and the figures are short of them.
            invalid_reasons.push(format!(
                "{unsent} {} due before the schedule's end never sent: the generator was still more than {} behind its schedule when the schedule ended, where sends stop",
                if unsent == 1 { "message" } else { "messages" },
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
        if let Some(why) = cpu_limit_reason {
            invalid_reasons.push(why);
        }
        let (files_sent, files_refused) = (run.counters.files_sent, run.counters.files_refused);
        if files_sent > 0 && files_refused == files_sent {
            // As with messages: a server that took no file measured no transfer, and no SLO on
            // what failed or arrived corrupted would notice.
            invalid_reasons.push(format!(
                "the server refused every file offered ({files_refused} of {files_sent}; see the problems): no transfer was measured"
            ));
        } else if files_refused > 0 {
            run.notes.push(format!(
                "the server refused {files_refused} of {files_sent} files offered ({:.1} %; see the problems): the file figures are of those it took; add an SLO such as `files_refused == 0` to fail such a run",
                files_refused as f64 * 100.0 / files_sent as f64
            ));
        }
        if let Some((churning, most)) = s.churn.beyond_reach(s.clients) {
            // Asked for more than can be: the clients dropped as often as they could, which
            // reads as the rate asked for unless said.
            let asked = if s.churn.rate < 1e6 {
                s.churn.rate.to_string()
            } else {
                format!("{:.1e}", s.churn.rate)
            };
            run.notes.push(format!(
                "churn.rate is {asked} a second, more than the churning clients can make: about {churning:.0} of them, each away for {} a time, drop at most {most:.0} times a second together, so each dropped again as soon as it was back (`reconnects` counts the drops made)",
                humantime::format_duration(s.churn.offline)
            ));
        }
        if g.refused_membership_changes > 0 && !every_join_refused {
            // A refused join leaves a group smaller than the scenario's: its fan-out is of the
            // members the server let in, not of the group asked for.
            run.notes.push(format!(
                "the server refused {} joins or leaves (see the problems): groups were not all as the scenario has them, and the group figures are of the members it let in; add an SLO such as `errors == 0` to fail such a run",
                g.refused_membership_changes
            ));
        }
        let verdict = if !invalid_reasons.is_empty() {
            Verdict::Invalid
        } else if run.slo.iter().any(|r| !r.ok) {
            Verdict::SloFailed
        } else {
            Verdict::Ok
        };
        Report {
            schema: super::model::REPORT_SCHEMA,
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
}

/// Why the machine's own pauses make the run invalid, if they do: the hiccup meter woke later
/// than `limit` at least once in the measured period.
fn hiccup_reason(h: &MetricSummary, limit: std::time::Duration) -> Option<String> {
    let limit_us = limit.as_micros() as u64;
    (h.count > 0 && h.max_us > limit_us).then(|| {
        format!(
            "{} paused this process for {} (a thread asking to wake every millisecond woke that late; limit {}): every latency figure may hold a pause of the machine's that long",
            crate::measure::cpu_use::THE_MACHINE,
            format_micros(h.max_us as f64),
            format_micros(limit_us as f64)
        )
    })
}

/// Why the schedule's lag p99 was over its limit. The generator was saturated unless the
/// machine explains the lateness: the hiccup meter, a thread of this process with nothing to do
/// but wake every millisecond, was late by at least half as much (the machine paused the whole
/// process, and any task would have been as late), or the process's threads waited for a CPU
/// longer than they ran (steal, other processes: it was short of CPU, not of time to do its
/// work in). The meter's p99 is set beside the lag's; but a lag of fewer than
/// [`FEW_SENDS`] samples has its largest for p99, one send, and the meter's largest pause is
/// set beside that.
fn late_schedule_reason(
    lag: &MetricSummary,
    limit_us: u64,
    hiccup: Option<&MetricSummary>,
    cpu: Option<&CpuUse>,
    with_breakdown: bool,
) -> String {
    let late = format!(
        "schedule lag p99 {} exceeds {}",
        format_micros(lag.p99_us as f64),
        format_micros(limit_us as f64)
    );
    let breakdown = cpu
        .filter(|_| with_breakdown)
        .map_or(String::new(), |u| format!(": {}", u.breakdown()));
    let few = lag.count < FEW_SENDS;
    let pause = hiccup
        .filter(|h| h.count > 0)
        .map(|h| if few { h.max_us } else { h.p99_us });
    if let Some(pause) = pause.filter(|&us| us * 2 >= lag.p99_us) {
        let at = if few {
            format!(
                "at most (the lag's p99 of {} sends is its largest)",
                lag.count
            )
        } else {
            "at p99".to_string()
        };
        return format!(
            "{THE_MACHINE} was the limit: {late}, and a thread of this process that only wakes every millisecond was {} late {at} (hiccup): the machine held the whole process up{breakdown}",
            format_micros(pause as f64)
        );
    }
    if let Some(u) = cpu.filter(|u| u.waited_longer_than_ran()) {
        return format!(
            "{THE_MACHINE} was the limit: {late} while this process's threads waited longer for a CPU ({:.2} cores) than they ran ({:.2}){breakdown}",
            u.wait_cores,
            u.ran_cores()
        );
    }
    format!("generator saturated: {late}")
}

/// Why QUIC clients with keep-alives off lost their connections: without them a quiet
/// connection times out by design.
pub fn quiet_quic_times_out(idle_timeout: std::time::Duration) -> String {
    format!(
        "quic.keep_alive is off, so a QUIC connection that hears nothing for quic.idle_timeout ({}) times out (the problems say `timed out`)",
        humantime::format_duration(idle_timeout)
    )
}

/// Samples of the schedule's lag below which its p99 is its largest: one send.
const FEW_SENDS: u64 = 100;

/// Looks up what an SLO refers to and judges it.
pub fn evaluate(expr: &str, run: &RunReport) -> SloResult {
    evaluate_with(expr, run, true)
}

/// [`evaluate`], with the messages that never arrived taken into a latency's percentile only
/// when `losses_known`: a shard's clients receive from every shard, so what of its own sends
/// arrived is known only once the shards are merged.
pub(crate) fn evaluate_with(expr: &str, run: &RunReport, losses_known: bool) -> SloResult {
    let never_arrived =
        |target: &Target, run: &RunReport| never_arrived(target, run).filter(|_| losses_known);
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
    if let Target::Latency { metric, stat } = &slo.target {
        // A percentile of nothing is 0 µs, which would pass any bound: an SLO on a figure
        // that has no samples has nothing to hold and fails.
        if stat != "count" && run.metrics.get(metric).is_some_and(|m| m.count == 0) {
            // None arrived of messages that were sent: every one later than any bound.
            if let Some(n) = never_arrived(&slo.target, run).filter(|n| n.lost > 0) {
                return SloResult {
                    expr: slo.expr.clone(),
                    value: format!(
                        "unbounded: {} of {} {} ({:.2} %), none delivered",
                        n.lost,
                        n.owed,
                        n.what,
                        n.lost as f64 * 100.0 / n.owed as f64
                    ),
                    ok: slo.holds(f64::INFINITY),
                };
            }
            return SloResult {
                expr: slo.expr.clone(),
                value: "no samples".into(),
                ok: false,
            };
        }
    }
    let value = target_value(&slo.target, run);
    let never_arrived = never_arrived(&slo.target, run);
    if let (Some(v), Some(n)) = (value, &never_arrived) {
        let Lost {
            lost,
            owed,
            left_out,
            what,
            ..
        } = *n;
        if n.beyond() {
            // A message that never arrived is later than any bound: with more of them than
            // the percentile leaves out, the percentile over all messages is unbounded,
            // whatever the delivered ones' figure.
            return SloResult {
                expr: slo.expr.clone(),
                value: format!(
                    "unbounded: {lost} of {owed} {what} ({:.2} %, more than {left_out} leaves out); the delivered ones' is {}",
                    lost as f64 * 100.0 / owed as f64,
                    slo.show(v)
                ),
                ok: slo.holds(f64::INFINITY),
            };
        }
        if let Some((all, of_delivered, stat)) = over_every_message(&slo.target, run, n) {
            // Fewer lost than the percentile leaves out: it is still a delivered message's
            // figure, but a higher one of theirs, the lost ones being above every delivered.
            return SloResult {
                expr: slo.expr.clone(),
                value: format!(
                    "{} over all messages: {lost} of {owed} {what} ({:.2} %), later than any delivered, so this is the delivered ones' p{of_delivered}; their {stat} is {}",
                    slo.show(all),
                    lost as f64 * 100.0 / owed as f64,
                    slo.show(v)
                ),
                ok: slo.holds(all),
            };
        }
    }
    match value {
        Some(v) => SloResult {
            expr: slo.expr.clone(),
            value: match few_for_percentile(&slo.target, run) {
                Some(count) => format!("{} (the largest of {count})", slo.show(v)),
                None => slo.show(v),
            },
            ok: slo.holds(v),
        },
        None => SloResult {
            expr: slo.expr.clone(),
            // A figure this run did not produce (a size bucket without groups of that size)
            // is as empty as one it produced with no samples.
            value: if counted_only_by_own_clients(&slo.target, run) {
                "not counted: only imbench's own clients count it".into()
            } else if slo_target_known(&slo.target) {
                "no samples".into()
            } else {
                "no such metric".into()
            },
            ok: false,
        },
    }
}

/// Whether `target` is a counter this run holds but its clients cannot count (`resumed` of a
/// NATS run), by [`RunReport::counter_given`]'s rule.
fn counted_only_by_own_clients(target: &Target, run: &RunReport) -> bool {
    matches!(target, Target::Number(n)
        if run.counters.get(n).is_some() && run.counter_given(n).is_none())
}

/// Whether SLO `expr` is on a counter `run`'s clients cannot count.
pub(crate) fn not_counted_here(expr: &str, run: &RunReport) -> bool {
    Slo::parse(expr).is_ok_and(|slo| counted_only_by_own_clients(&slo.target, run))
}

/// What a fan-out's `lost` counts, in words.
const NEVER_EVERY_MEMBER: &str = "group messages never reached every member";

/// The messages of a figure that never arrived, against the percentile an SLO judges.
#[derive(Clone, Copy)]
struct Lost {
    /// Messages that never arrived (or never reached every member, for a fan-out).
    lost: u64,
    /// Of how many.
    owed: u64,
    /// What the percentile leaves out, in thousandths.
    left_out_permille: u128,
    /// What the percentile leaves out, in words.
    left_out: &'static str,
    /// What `lost` counts, in words.
    what: &'static str,
}

impl Lost {
    /// More never arrived than the percentile leaves out: it is one of them, unbounded.
    fn beyond(&self) -> bool {
        u128::from(self.lost) * 1000 > u128::from(self.owed) * self.left_out_permille
    }
}

/// The percentile an SLO judges over all of a figure's messages when `n` of them never arrived
/// but fewer than it leaves out: the delivered ones' figure at the higher quantile that puts
/// the lost ones above every delivered one, that quantile in words ("92.6"), and the
/// percentile's name. `None` when nothing was lost, or the figure has no histogram to read it
/// from.
fn over_every_message<'a>(
    target: &'a Target,
    run: &RunReport,
    n: &Lost,
) -> Option<(f64, String, &'a str)> {
    let Target::Latency { metric, stat } = target else {
        return None;
    };
    let q = match stat.as_str() {
        "p50" => 0.5,
        "p90" => 0.9,
        "p99" => 0.99,
        "p999" => 0.999,
        _ => return None,
    };
    if n.lost == 0 || n.owed == 0 {
        return None;
    }
    let delivered_share = 1.0 - n.lost as f64 / n.owed as f64;
    let of_delivered = (q / delivered_share).min(1.0);
    let h = crate::report::histogram::decode_histogram(run.metrics.get(metric)?)?;
    if h.is_empty() {
        return None;
    }
    let shown = format!("{:.3}", of_delivered * 100.0);
    let shown = shown
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string();
    Some((
        h.value_at_quantile(of_delivered) as f64,
        shown,
        stat.as_str(),
    ))
}

/// For a latency SLO on a figure whose samples are deliveries (`direct`, `group`) or fan-outs
/// (`fanout`, `fanout_spread`): how many of its messages never arrived (never reached every
/// owed member), of how many, and what the percentile leaves out (nothing, for `max` and
/// `mean`). The counts are the run's (warm-up and drain included), the figure's samples the
/// measured period's; for direct messages without groups, the measured period's own share
/// when more of its messages were lost than of the run's.
fn never_arrived(target: &Target, run: &RunReport) -> Option<Lost> {
    let Target::Latency { metric, stat } = target else {
        return None;
    };
    // What the percentile leaves out, in thousandths (integers: 1 - 0.9 is not 0.1 in f64).
    let (left_out_permille, left_out) = match stat.as_str() {
        "p50" => (500u128, "the 50 % p50"),
        "p90" => (100, "the 10 % p90"),
        "p99" => (10, "the 1 % p99"),
        "p999" => (1, "the 0.1 % p999"),
        "max" => (0, "none, as max"),
        // A mean over all messages has each lost one's infinity in it.
        "mean" => (0, "none, as a mean"),
        _ => return None,
    };
    let group = run.group.as_ref().map(|g| &g.counts);
    let never_arrived = "messages never arrived";
    let (lost, owed, what) = match metric.as_str() {
        "direct" | "direct_uncorrected" => (
            run.counters
                .lost
                .saturating_sub(group.map_or(0, |g| g.lost)),
            run.counters
                .expected
                .saturating_sub(group.map_or(0, |g| g.expected)),
            never_arrived,
        ),
        "group" => {
            let g = group?;
            (g.lost, g.expected, "deliveries never arrived")
        }
        // A fan-out that never completed has no completion time: it is later than any bound.
        // Of the group messages whose fan-out was settled (a refused one owes none).
        FANOUT | FANOUT_SPREAD => {
            let g = group?;
            (g.incomplete, g.settled, NEVER_EVERY_MEMBER)
        }
        // A size bucket's figures, of its groups' messages.
        name => {
            let bucket = Bucket::ALL
                .into_iter()
                .find(|&b| bucket_names(b).iter().any(|n| n == name))?;
            let of_bucket = run
                .group
                .as_ref()?
                .groups
                .iter()
                .filter(|g| Bucket::of(g.members) == bucket)
                .map(|g| &g.counts);
            let counts = GroupCounts::sum(of_bucket);
            if name.starts_with(Metric::Group.name()) {
                (counts.lost, counts.expected, "deliveries never arrived")
            } else {
                (counts.incomplete, counts.settled, NEVER_EVERY_MEMBER)
            }
        }
    };
    let (lost, owed) = match (metric.as_str(), measured_direct_lost(metric, run)) {
        (_, Some((m_lost, m_owed)))
            if u128::from(m_lost) * u128::from(owed) > u128::from(lost) * u128::from(m_owed) =>
        {
            (m_lost, m_owed)
        }
        _ => (lost, owed),
    };
    (owed > 0).then_some(Lost {
        lost,
        owed,
        left_out_permille,
        left_out,
        what,
    })
}

/// For `direct` in a run without groups: the direct messages of the measured period that never
/// arrived, and of how many, from its send rate (the share of the run's sends that were owed a
/// delivery, not refused) and the figure's samples. A server that stopped in the measured
/// period lost a larger share of it than of the whole run.
fn measured_direct_lost(metric: &str, run: &RunReport) -> Option<(u64, u64)> {
    if !matches!(metric, "direct" | "direct_uncorrected") || run.group.is_some() {
        return None;
    }
    let c = &run.counters;
    if c.sent == 0 {
        return None;
    }
    let sent = (run.throughput.sent_per_s * run.duration_s).round();
    let owed = (sent * c.expected as f64 / c.sent as f64).round() as u64;
    let delivered = run.metrics.get(metric)?.count;
    // The rates must tell of the same samples (a report edited by hand, or of another make,
    // may not): otherwise the run's counts are all there is to go by.
    let rated = (run.throughput.delivered_per_s * run.duration_s).round() as u64;
    if rated.abs_diff(delivered) > 1 + delivered / 100 {
        return None;
    }
    // A share, not a count: the measured period cannot have lost more than the run did. A
    // server refusing most messages leaves few owed, and the share of the period's sends that
    // were refused is not the run's exactly: without the cap, that difference reads as losses.
    (owed > 0).then(|| (owed.saturating_sub(delivered).min(c.lost), owed))
}

/// The sample count when an SLO's percentile is taken over too few samples to be anything but
/// their largest (p99 of fewer than 100): the reader should know the bound held or failed on
/// one sample, not on a distribution.
fn few_for_percentile(target: &Target, run: &RunReport) -> Option<u64> {
    let Target::Latency { metric, stat } = target else {
        return None;
    };
    let needed = match stat.as_str() {
        "p90" => 10,
        "p99" => 100,
        "p999" => 1000,
        _ => return None,
    };
    let count = run.metrics.get(metric)?.count;
    (count > 0 && count < needed).then_some(count)
}

/// [`target_value`] as an SLO judges it: a percentile of deliveries or fan-outs over all their
/// messages, the lost ones later than any (infinite when they reach it).
pub fn judged_value(target: &Target, run: &RunReport) -> Option<f64> {
    let value = target_value(target, run)?;
    let Some(n) = never_arrived(target, run) else {
        return Some(value);
    };
    if n.beyond() {
        return Some(f64::INFINITY);
    }
    Some(over_every_message(target, run, &n).map_or(value, |(all, _, _)| all))
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
    let group = || run.group.as_ref()?.counts.get(name);
    // Through `counter_given`: another system's run has no `resumed`, not a 0 of it.
    run.counter_given(name)
        .or_else(group)
        .map(|v| v as f64)
        .or_else(|| run.throughput.get(name))
}

/// The fan-out figures of settled group messages, by metric name: over all groups and per size
/// bucket (a run's own, or the shards' settled together by `imbench merge`).
pub(crate) fn fanout_metrics(
    groups: &GroupOutcome,
    buckets: &[Bucket],
) -> Vec<(String, MetricSummary)> {
    let mut out = vec![
        (FANOUT.to_string(), summarize(&groups.fanout)),
        (FANOUT_SPREAD.to_string(), summarize(&groups.spread)),
    ];
    for &b in buckets {
        let [_, fanout, spread] = bucket_names(b);
        out.push((fanout, summarize(&groups.fanout_by_bucket[b.index()])));
        out.push((spread, summarize(&groups.spread_by_bucket[b.index()])));
    }
    out
}

/// Whether SLO `expr` can be judged on one shard's report: a latency of its own clients'
/// samples other than fan-out.
fn judged_in_a_shard(expr: &str) -> bool {
    match Slo::parse(expr) {
        Ok(slo) => {
            matches!(slo.target, Target::Latency { metric, .. } if !metric.starts_with(FANOUT))
        }
        // An SLO that does not parse is refused before any run.
        Err(_) => true,
    }
}

/// Whether `target` names a figure a report can hold (with groups, files, any size bucket),
/// so that a typo in an SLO is refused before a run rather than failing after it.
pub fn slo_target_known(target: &Target) -> bool {
    match target {
        Target::Latency { metric, .. } => {
            FIGURES.iter().any(|f| f.name == metric)
                || Bucket::ALL
                    .iter()
                    .any(|&b| bucket_names(b).contains(metric))
        }
        Target::Number(name) => {
            let name = name.as_str();
            Counters::NAMES.contains(&name)
                || GroupCounts::NAMES.contains(&name)
                || Throughput::NAMES.contains(&name)
        }
    }
}

/// Why `slo`, on a known figure, holds or fails whatever the run does, if it does: no figure is
/// below 0, and a count is a whole number, so `lost == 0.5` and `direct.p99 < 0` can never
/// hold, and `lost >= 0` always does.
pub fn slo_never_decides(slo: &Slo) -> Option<String> {
    let t = slo.threshold;
    if !t.is_finite() {
        return None;
    }
    let (what, whole) = match &slo.target {
        Target::Number(name)
            if Counters::NAMES.contains(&name.as_str())
                || GroupCounts::NAMES.contains(&name.as_str()) =>
        {
            (format!("{name} is a count, a whole number from 0"), true)
        }
        Target::Number(name) => (format!("{name} is a rate, never below 0"), false),
        Target::Latency { metric, stat } if stat == "count" => (
            format!("{metric}.count is a count, a whole number from 0"),
            true,
        ),
        Target::Latency { metric, stat } => (
            format!("{metric}.{stat} is a latency, never below 0"),
            false,
        ),
    };
    let unreachable = t < 0.0 || (whole && t.fract() != 0.0);
    let never = match slo.op {
        Op::Eq => unreachable,
        Op::Lt => t <= 0.0,
        Op::Le => t < 0.0,
        Op::Ne | Op::Gt | Op::Ge => false,
    };
    let always = match slo.op {
        Op::Ne => unreachable,
        Op::Ge => t <= 0.0,
        Op::Gt => t < 0.0,
        Op::Eq | Op::Lt | Op::Le => false,
    };
    match (never, always) {
        (true, _) => Some(format!("{what}, so this can never hold")),
        (_, true) => Some(format!("{what}, so this always holds")),
        _ => None,
    }
}

/// Every name an SLO may use, for the message that refuses an unknown one.
pub fn slo_names() -> Vec<String> {
    let mut names: Vec<String> = FIGURES.iter().map(|f| format!("{}.STAT", f.name)).collect();
    names.push("group_le10.STAT (and the other size buckets)".into());
    let numbers = Counters::NAMES
        .iter()
        .chain(GroupCounts::NAMES)
        .chain(Throughput::NAMES);
    for n in numbers {
        if !names.iter().any(|x| x == n) {
            names.push(n.to_string());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn hiccups(max_us: u64, count: u64) -> MetricSummary {
        MetricSummary {
            count,
            max_us,
            ..MetricSummary::default()
        }
    }

    #[test]
    fn a_percentile_judged_on_fewer_samples_than_it_needs_says_it_is_their_largest() {
        let mut report = crate::report::read::from_json(include_str!("testdata/schema-1-a.json"))
            .expect("a committed report reads");
        let run = &mut report.runs[0];
        let direct = run
            .metrics
            .get_mut("direct")
            .expect("the report has direct");
        direct.count = 91;
        direct.p99_us = 5_610;
        direct.p90_us = 2_000;
        let p99 = evaluate("direct.p99 < 500ms", run);
        assert_eq!(
            (p99.value.as_str(), p99.ok),
            ("5.61ms (the largest of 91)", true)
        );
        // Ten samples are enough for p90, a hundred for p99; max is the largest by name.
        assert_eq!(evaluate("direct.p90 < 500ms", run).value, "2.00ms");
        assert!(!evaluate("direct.max < 500ms", run)
            .value
            .contains("largest"));
        run.metrics.get_mut("direct").expect("direct").count = 100;
        assert_eq!(evaluate("direct.p99 < 500ms", run).value, "5.61ms");
    }

    #[test]
    fn a_counter_only_imbench_clients_count_is_not_judged_against_another_system() {
        let mut report = crate::report::read::from_json(include_str!("testdata/schema-1-a.json"))
            .expect("a committed report reads");
        let run = &mut report.runs[0];
        run.counters.resumed = 0;
        assert!(
            evaluate("resumed < 1", run).ok,
            "the reference server's own 0"
        );
        run.target = Some("nats://127.0.0.1:4222".into());
        let r = evaluate("resumed < 1", run);
        assert_eq!(
            (r.value.as_str(), r.ok),
            ("not counted: only imbench's own clients count it", false)
        );
        // Counters every client counts are judged as before.
        assert_eq!(
            target_value(&Slo::parse("reconnects < 1").expect("parses").target, run),
            Some(run.counters.reconnects as f64)
        );
    }

    /// A run of 10,000 direct messages in 10 s whose 9,900 delivered ones took 10 µs, 20 µs, …
    /// 99 ms, the run's counts saying `lost` never arrived.
    fn direct_run(lost: u64) -> RunReport {
        let mut report = crate::report::read::from_json(include_str!("testdata/schema-1-a.json"))
            .expect("a committed report reads");
        let mut run = report.runs.remove(0);
        run.group = None;
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("bounds");
        for i in 1..=9_900u64 {
            h.record(i * 10).expect("in range");
        }
        run.metrics.insert("direct".to_string(), summarize(&h));
        (run.counters.sent, run.counters.expected, run.counters.lost) = (10_000, 10_000, lost);
        run.duration_s = 10.0;
        run.throughput.sent_per_s = 1_000.0;
        run.throughput.delivered_per_s = 990.0;
        run
    }

    #[test]
    fn a_percentile_that_lost_messages_reach_is_unbounded() {
        // 1 % lost: p99 over all messages is the last delivered one, not the delivered p99.
        let mut run = direct_run(100);
        let p99 = evaluate("direct.p99 < 98.5ms", &run);
        assert!(!p99.ok, "{p99:?}");
        assert_eq!(
            p99.value,
            "99.01ms over all messages: 100 of 10000 messages never arrived (1.00 %), later than any delivered, so this is the delivered ones' p100; their p99 is 98.05ms"
        );
        // Half a percent (of the run, and of the measured period): between the two.
        run.counters.lost = 50;
        run.throughput.sent_per_s = 995.0;
        let p99 = evaluate("direct.p99 < 200ms", &run);
        assert!(
            p99.value
                .starts_with("98.56ms over all messages: 50 of 9950")
                && p99.value.contains("p99.5;"),
            "{p99:?}"
        );
        // More than 1 %: the p99 is a message that never arrived.
        run.counters.lost = 6_421;
        let p99 = evaluate("direct.p99 < 200ms", &run);
        assert!(!p99.ok, "{p99:?}");
        assert_eq!(
            p99.value,
            "unbounded: 6421 of 10000 messages never arrived (64.21 %, more than the 1 % p99 leaves out); the delivered ones' is 98.05ms"
        );
        // p50 holds while half arrived; max never with any lost; a lower bound always.
        run.counters.lost = 4_000;
        assert!(evaluate("direct.p50 < 200ms", &run).ok);
        assert!(!evaluate("direct.p90 < 200ms", &run).ok);
        // Exactly a tenth lost: p90 is still the last delivered one.
        run.counters.lost = 1_000;
        assert!(evaluate("direct.p90 < 200ms", &run).ok);
        run.counters.lost = 1;
        assert!(!evaluate("direct.max < 10s", &run).ok);
        assert!(!evaluate("direct.mean < 10s", &run).ok);
        assert!(evaluate("direct.min < 10s", &run).ok);
        assert!(evaluate("direct.p99 > 1ms", &run).ok);
        // Other figures (ack, connect) are not deliveries.
        run.counters.lost = 6_421;
        assert!(!evaluate("ack.p99 < 1h", &run).value.contains("unbounded"));
    }

    #[test]
    fn a_shards_latency_is_of_what_its_clients_received() {
        // A shard's clients receive from every shard: fewer deliveries timed than its own
        // sends owed (9,900 of 10,000) is no loss of its own to count; a whole run's are.
        let run = direct_run(100);
        let whole = evaluate("direct.p99 < 200ms", &run);
        assert!(whole.value.contains("over all messages"), "{whole:?}");
        let shard = evaluate_with("direct.p99 < 200ms", &run, false);
        assert!(shard.ok && shard.value == "98.05ms", "{shard:?}");
    }

    #[test]
    fn the_measured_periods_own_losses_count_when_it_lost_more_than_the_run() {
        // The run's counts say 10,100 of 30,000 lost, but 20,000 were due in the measured
        // period and 9,900 of them arrived: a server that stopped half-way through it lost
        // half of the period's, a third of the run's.
        let mut run = direct_run(10_100);
        (run.counters.sent, run.counters.expected) = (30_000, 30_000);
        run.throughput.sent_per_s = 2_000.0;
        let p50 = evaluate("direct.p50 < 200ms", &run);
        assert!(!p50.ok, "{p50:?}");
        assert!(
            p50.value
                .starts_with("unbounded: 10100 of 20000 messages never arrived"),
            "{p50:?}"
        );
        // None delivered: unbounded, not "no samples" as of a run that sent nothing.
        let mut none = direct_run(10_000);
        none.metrics.get_mut("direct").expect("direct").count = 0;
        let p99 = evaluate("direct.p99 < 200ms", &none);
        assert!(!p99.ok, "{p99:?}");
        assert!(
            p99.value
                .starts_with("unbounded: 10000 of 10000 messages never arrived"),
            "{p99:?}"
        );
        // Rates that do not tell of the figure's samples (an edited report) are not used.
        run.throughput.delivered_per_s = 500.0;
        let p50 = evaluate("direct.p50 < 200ms", &run);
        assert!(p50.ok && p50.value.contains("10100 of 30000"), "{p50:?}");
    }

    #[test]
    fn a_server_refusing_most_messages_loses_none_in_the_measured_period_when_the_run_lost_none() {
        // 3,981 sent, 3,832 refused (bodies over the server's limit), the other 149 delivered;
        // of the measured period's 2,970 sends the 107 delivered were a little fewer than the
        // run's share of accepted ones (111) would have it.
        let mut run = direct_run(0);
        (
            run.counters.sent,
            run.counters.rejected,
            run.counters.expected,
        ) = (3_981, 3_832, 149);
        run.duration_s = 10.0;
        run.throughput.sent_per_s = 297.0;
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("bounds");
        for i in 1..=107u64 {
            h.record(i * 10).expect("in range");
        }
        run.metrics.insert("direct".to_string(), summarize(&h));
        run.throughput.delivered_per_s = 10.7;
        let p99 = evaluate("direct.p99 < 200ms", &run);
        assert!(p99.ok && !p99.value.contains("never arrived"), "{p99:?}");
    }

    #[test]
    fn a_fanout_percentile_that_incomplete_fanouts_reach_is_unbounded() {
        let mut report = crate::report::read::from_json(include_str!("testdata/schema-1-a.json"))
            .expect("a committed report reads");
        let run = &mut report.runs[0];
        run.metrics.insert(
            FANOUT.to_string(),
            MetricSummary {
                count: 1_332,
                p99_us: 75_010,
                ..MetricSummary::default()
            },
        );
        let group = run.group.get_or_insert_with(Default::default);
        (group.counts.settled, group.counts.incomplete) = (3_827, 38);
        // Under 1 % incomplete: the p99 is among the completed.
        let p99 = evaluate("fanout.p99 < 500ms", run);
        assert_eq!((p99.value.as_str(), p99.ok), ("75.01ms", true));
        // 54 % never reached every member: no completion time bounds them.
        run.group.as_mut().expect("groups").counts.incomplete = 2_063;
        let p99 = evaluate("fanout.p99 < 500ms", run);
        assert!(!p99.ok, "{p99:?}");
        assert!(
            p99.value
                .starts_with("unbounded: 2063 of 3827 group messages never reached every member"),
            "{}",
            p99.value
        );
        // Of the messages whose fan-out was settled (3,000 more sent were refused): 38
        // incomplete of 827 is past what p99 leaves out (of all 3,827 sent it was not).
        let group = run.group.as_mut().expect("groups");
        (group.counts.sent, group.rejected) = (3_827, 3_000);
        (group.counts.incomplete, group.counts.settled) = (38, 827);
        let p99 = evaluate("fanout.p99 < 500ms", run);
        assert!(!p99.ok, "{p99:?}");
        assert!(
            p99.value.starts_with("unbounded: 38 of 827 "),
            "{}",
            p99.value
        );
        // A size bucket's figure is judged on its own groups' messages.
        run.metrics.insert(
            "fanout_le1000".to_string(),
            MetricSummary {
                count: 700,
                p99_us: 75_010,
                ..MetricSummary::default()
            },
        );
        let of_size = |members, incomplete, settled| crate::measure::group_records::GroupSummary {
            id: 0,
            members,
            counts: GroupCounts {
                incomplete,
                settled,
                ..GroupCounts::default()
            },
        };
        run.group.as_mut().expect("groups").groups =
            vec![of_size(1_000, 38, 827), of_size(10, 0, 5_000)];
        let p99 = evaluate("fanout_le1000.p99 < 500ms", run);
        assert!(
            p99.value.starts_with("unbounded: 38 of 827 "),
            "{}",
            p99.value
        );
        run.group.as_mut().expect("groups").groups =
            vec![of_size(1_000, 1, 827), of_size(10, 38, 5_000)];
        let p99 = evaluate("fanout_le1000.p99 < 500ms", run);
        assert_eq!((p99.value.as_str(), p99.ok), ("75.01ms", true));
    }

    #[test]
    fn a_pause_longer_than_the_limit_makes_the_run_invalid_and_says_how_long() {
        let limit = Duration::from_millis(50);
        let why = hiccup_reason(&hiccups(73_000, 8_000), limit).expect("over the limit");
        assert!(why.contains("73.00ms"), "{why}");
        assert!(why.contains("limit 50.00ms"), "{why}");
        // At the limit, under it, or with no samples at all (an old report): nothing to say.
        assert_eq!(hiccup_reason(&hiccups(50_000, 8_000), limit), None);
        assert_eq!(hiccup_reason(&hiccups(900, 8_000), limit), None);
        assert_eq!(hiccup_reason(&hiccups(73_000, 0), limit), None);
    }

    /// The CPU of a run: `ran` cores between generator and server, `waited` cores on run
    /// queues, over `wakeups` wake-ups.
    fn cpu(ran: f64, waited: f64, wakeups: u64) -> CpuUse {
        CpuUse {
            cpus: 2,
            period_s: 10.0,
            generator_cores: ran / 2.0,
            server_cores: Some(ran / 2.0),
            steal_cores: 0.7,
            wait_cores: waited,
            wakeups,
            ..CpuUse::default()
        }
    }

    #[test]
    fn a_late_schedule_is_the_machines_only_when_an_idle_thread_was_late_too_or_the_process_waited_for_cpu(
    ) {
        let limit = 10_000;
        let lag = |count, p99_us| MetricSummary {
            count,
            p99_us,
            max_us: p99_us,
            ..MetricSummary::default()
        };
        let hiccup = |p99_us, max_us| MetricSummary {
            count: 10_000,
            p99_us,
            max_us,
            ..MetricSummary::default()
        };
        let sends = lag(10_000, 13_070);
        // The CI run of 2026-12-02: 0.71 cores stolen, the idle thread 11.66 ms late at p99.
        let paused = late_schedule_reason(
            &sends,
            limit,
            Some(&hiccup(11_660, 31_630)),
            Some(&cpu(0.46, 0.75, 50_000)),
            true,
        );
        assert!(is_the_machines(&paused), "{paused}");
        assert!(paused.contains("11.66ms late at p99"), "{paused}");
        assert!(paused.contains("13.07ms exceeds 10.00ms"), "{paused}");
        assert!(paused.contains("steal 0.70"), "{paused}");
        let said_elsewhere = late_schedule_reason(
            &sends,
            limit,
            Some(&hiccup(11_660, 31_630)),
            Some(&cpu(0.46, 0.75, 50_000)),
            false,
        );
        assert!(is_the_machines(&said_elsewhere), "{said_elsewhere}");
        assert!(!said_elsewhere.contains("steal"), "{said_elsewhere}");
        // Idle thread on time, but the process waited for a CPU longer than it ran.
        let starved = late_schedule_reason(
            &sends,
            limit,
            Some(&hiccup(300, 900)),
            Some(&cpu(0.46, 0.75, 50_000)),
            true,
        );
        assert!(is_the_machines(&starved), "{starved}");
        assert!(
            starved.contains("(0.75 cores) than they ran (0.46)"),
            "{starved}"
        );
        // The generator's: the idle thread on time (or late by less than half the lag, its
        // longest pause aside), the process running more than it waited, or too few wake-ups
        // to judge the wait.
        for (h, use_) in [
            (Some(hiccup(300, 40_000)), Some(cpu(1.4, 0.3, 50_000))),
            (Some(hiccup(6_000, 40_000)), Some(cpu(1.4, 0.3, 50_000))),
            (Some(hiccup(300, 900)), Some(cpu(0.46, 0.75, 999))),
            (Some(MetricSummary::default()), None),
            (None, None),
        ] {
            let why = late_schedule_reason(&sends, limit, h.as_ref(), use_.as_ref(), true);
            assert_eq!(
                why,
                "generator saturated: schedule lag p99 13.07ms exceeds 10.00ms"
            );
        }
        // Half the lag is enough for the pauses to be the cause.
        let half = late_schedule_reason(&sends, limit, Some(&hiccup(6_535, 7_000)), None, true);
        assert!(is_the_machines(&half), "{half}");
        // 19 sends (4 a second for 5 s, a --find-max step of 2026-12-02): their p99 is the
        // one latest, 12.72 ms, beside the machine's longest pause of 17.01 ms, not its p99.
        let few = lag(19, 12_720);
        let one = late_schedule_reason(&few, limit, Some(&hiccup(3_471, 17_007)), None, true);
        assert!(is_the_machines(&one), "{one}");
        assert!(
            one.contains("17.01ms late at most (the lag's p99 of 19 sends is its largest)"),
            "{one}"
        );
        let generators = late_schedule_reason(&few, limit, Some(&hiccup(3_471, 5_000)), None, true);
        assert!(
            generators.starts_with("generator saturated"),
            "{generators}"
        );
    }
}
