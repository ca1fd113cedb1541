//! `imbench merge`: shard reports of one load, run at the same time by several generators
//! against one server, added into one report. Histograms are added (so the merged percentiles
//! are those of all samples, not an average of percentiles), counters and rates summed, SLOs
//! judged again on the sums. Reports that cannot be parts of one load (the same one twice, the
//! same shard twice, runs that did not overlap in time, a load with a shard missing) are refused.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::shard::Shard;
use crate::measure::group_records::GroupCounts;
use crate::measure::group_records::{settle, GroupRecords, RecordsError, GROUP_RECORDS_FILE};
use crate::measure::metrics::Metric;
use crate::report::build::evaluate;
use crate::report::build::fanout_metrics;
use crate::report::figures::Counters;
use crate::report::histogram::{decode_histogram, summarize};
use crate::report::model::{
    FileReport, GroupReport, Memory, Report, RunReport, ScheduleLag, Verdict,
};

/// Why reports cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("no reports to merge")]
    Empty,
    /// A histogram in a report does not decode.
    #[error("report {index}: the {metric} histogram does not decode")]
    Histogram {
        /// Which report (0-based).
        index: usize,
        /// Which metric.
        metric: String,
    },
    /// The reports ran different transports.
    #[error("report {} ran {found}, the first ran {expected}: merge shards of one load", index + 1)]
    Transports {
        /// Which report (0-based; said counting from 1, in the order given).
        index: usize,
        /// Transports of the first report.
        expected: String,
        /// Transports of this one.
        found: String,
    },
    /// Shards of the load are missing: the merge would report part of the load as all of it.
    #[error("shard {}{} of {count} missing: a merge without every shard would report part of the load as all of it; give every shard's report", missing.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", "), if *more > 0 { format!(" and {more} more") } else { String::new() })]
    MissingShards {
        /// The first missing shards' indices (1-based), at most [`MISSING_NAMED`].
        missing: Vec<usize>,
        /// Missing shards beyond those named.
        more: usize,
        /// Shards in the load.
        count: usize,
    },
    /// A shard ran groups and its group records are not beside its report.
    #[error("report {}: its run had groups, but no {GROUP_RECORDS_FILE} is beside it: the fan-out of a group whose members ran in several shards is settled from every shard's records; merge the folders the shards wrote", index + 1)]
    NoGroupRecords {
        /// Which report (0-based).
        index: usize,
    },
    /// The shards' group records are not of one load.
    #[error("group records: {0}")]
    GroupRecords(RecordsError),
    /// The reports are not parts of one load.
    #[error("report {}: {why}: merge the reports of generators that loaded one server at the same time", index + 1)]
    NotOneLoad {
        /// Which report (0-based; said counting from 1, in the order given).
        index: usize,
        /// What gives it away.
        why: String,
    },
}

/// When a report's clients were connected and sending, in Unix seconds: from its clock's
/// start to the end of its drain.
fn active_span(r: &Report) -> Option<(f64, f64)> {
    let run = r.runs.first()?;
    let s = &r.scenario;
    // In seconds: a report is a file, and a sum of its durations could overflow.
    let planned = [s.ramp_up, s.warmup, s.duration, s.drain]
        .iter()
        .map(Duration::as_secs_f64)
        .sum::<f64>();
    Some((run.started_unix_s, run.started_unix_s + planned))
}

/// How `r`'s scenario differs from `first`'s in what shards of one load share (the steps of
/// one capacity search, for one, run one after the other at different rates), if it does.
fn different_load(first: &Report, r: &Report) -> Option<String> {
    first
        .scenario
        .load_fields()
        .into_iter()
        .zip(r.scenario.load_fields())
        .find(|((_, x), (_, y))| x != y)
        .map(|((what, x), (_, y))| format!("{what} {y} where report 1 ran {x}"))
}

/// Refuses reports that cannot be parts of one load: whole runs, the same report twice, the
/// same shard twice, shards of different splits, or runs that did not overlap in time.
fn check_one_load(reports: &[Report]) -> Result<(), MergeError> {
    let not = |index: usize, why: String| Err(MergeError::NotOneLoad { index, why });
    let first = &reports[0];
    // Whole runs cannot be parts of one load: each one's clients are all of the scenario's
    // users, so two at once log in as the same users, and one after the other they loaded the
    // server in turns. (A merged report is named as one next.)
    if let Some(index) = reports
        .iter()
        .position(|r| r.shard.is_none() && !is_merged(r))
    {
        return not(
            index,
            "it is a whole run, not a shard (imbench run --shard I/N); merge adds the shards of one load".into(),
        );
    }
    if let Some(index) = reports.iter().position(is_merged) {
        return not(
            index,
            "it is a merged report (an earlier imbench merge wrote it), not a shard: give only the shards' reports, or a folder that holds them and no merge".into(),
        );
    }
    for (index, r) in reports.iter().enumerate().skip(1) {
        for (earlier, e) in reports[..index].iter().enumerate() {
            let started = |x: &Report| x.runs.first().map(|run| run.started_unix_s);
            if started(r) == started(e) && r.shard == e.shard {
                return not(index, format!("it is report {} again", earlier + 1));
            }
            if let Some(shard) = r.shard.as_ref().filter(|s| e.shard.as_ref() == Some(*s)) {
                return not(
                    index,
                    format!("shard {shard} is also report {}", earlier + 1),
                );
            }
        }
        let count = |x: &Report| {
            x.shard
                .as_ref()
                .and_then(|s| s.split_once('/').map(|(_, n)| n.to_string()))
        };
        if count(r) != count(first) {
            // Whole runs and merges were refused above: both are shards.
            let shard = |x: &Report| x.shard.clone().unwrap_or_default();
            return not(
                index,
                format!(
                    "it is shard {}, report 1 is shard {}: shards of different splits",
                    shard(r),
                    shard(first)
                ),
            );
        }
        if let Some(what) = different_load(first, r) {
            return not(index, format!("it ran {what}"));
        }
        // Shards of one load reach one imbench server at one address (a Kubernetes
        // service's name resolves to the same address in every pod): at two, each shard's
        // messages to the other's clients went to a server those clients were not on, and
        // read as lost. Another system may be a cluster whose nodes the shards were given.
        let servers = |x: &Report| {
            x.runs
                .iter()
                .map(|run| run.server.clone())
                .collect::<Vec<_>>()
        };
        let own = |x: &Report| x.runs.iter().all(|run| run.own_clients());
        // Runs of other transports, or a run more, are named by the transports' check.
        let alike = r.runs.len() == first.runs.len();
        if alike && own(r) && own(first) && servers(r) != servers(first) {
            return not(
                index,
                format!(
                    "it loaded the server at {}, report 1 the one at {}",
                    servers(r).join(", "),
                    servers(first).join(", ")
                ),
            );
        }
        if let (Some(a), Some(b)) = (active_span(first), active_span(r)) {
            if b.0 > a.1 || a.0 > b.1 {
                return not(
                    index,
                    format!(
                        "it ran {:.0} s apart from report 1, not beside it",
                        (b.0 - a.0).abs()
                    ),
                );
            }
        }
    }
    let shards: Vec<Shard> = reports
        .iter()
        .filter_map(|r| r.shard.as_deref()?.parse().ok())
        .collect();
    if let Some(count) = shards.first().map(|s| s.count) {
        // The count comes from a file: billions of shards are named in a line, not listed.
        let present = shards
            .iter()
            .map(|s| s.index)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let missing: Vec<usize> = (1..=count)
            .filter(|i| !shards.iter().any(|s| s.index == *i))
            .take(MISSING_NAMED)
            .collect();
        if !missing.is_empty() {
            let more = count.saturating_sub(present + missing.len());
            return Err(MergeError::MissingShards {
                missing,
                more,
                count,
            });
        }
    }
    Ok(())
}

/// Missing shards named one by one in [`MergeError::MissingShards`].
const MISSING_NAMED: usize = 20;

/// Adds `reports` (shards of one load) into one. Runs are matched by position and must have
/// the same transports.
pub fn merge(reports: &[Report]) -> Result<Report, MergeError> {
    let first = reports.first().ok_or(MergeError::Empty)?;
    // Compared as lists: joined, ["a", "b"] and ["a,b"] would pass as the same.
    let names = |r: &Report| {
        r.runs
            .iter()
            .map(|run| run.transport.clone())
            .collect::<Vec<_>>()
    };
    check_one_load(reports)?;
    for (index, r) in reports.iter().enumerate() {
        if names(r) != names(first) {
            return Err(MergeError::Transports {
                index,
                expected: names(first).join(","),
                found: names(r).join(","),
            });
        }
    }
    // Reports made with --shard split one scenario's clients; what they lost is known only
    // from their sums.
    let sharded = reports.iter().all(|r| r.shard.is_some());
    let mut runs = Vec::new();
    for position in 0..first.runs.len() {
        let shards: Vec<&RunReport> = reports.iter().map(|r| &r.runs[position]).collect();
        let mut run = merge_runs(&shards, &first.scenario, sharded)?;
        run.notes = merged_notes(reports, position);
        runs.push(run);
    }
    // Shards that started further apart than the warm-up sent to clients of a later shard
    // before those had connected: the server held those messages, and their latency is the
    // wait, which one generator running everyone would not have had.
    let starts: Vec<f64> = reports
        .iter()
        .filter_map(|r| r.runs.first().map(|run| run.started_unix_s))
        .collect();
    let spread = starts.iter().copied().fold(f64::MIN, f64::max)
        - starts.iter().copied().fold(f64::MAX, f64::min);
    if spread > first.scenario.warmup.as_secs_f64() {
        for run in &mut runs {
            run.notes.push(format!(
                "the shards started up to {spread:.1} s apart, more than the warm-up of {:?}: messages to clients of a later shard waited on the server until they connected, and their latency shows it; an earlier shard's clients left before a later shard stopped sending to them, and what it sent after is lost here and held on the server for the next load (restart it); start every shard within the warm-up",
                first.scenario.warmup
            ));
        }
    }
    let mut invalid_reasons: Vec<String> = reports
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            r.invalid_reasons
                .iter()
                .map(move |w| format!("shard {}: {w}", i + 1))
        })
        .collect();
    for run in &runs {
        if run.schedule_lag.saturated {
            invalid_reasons.push(format!(
                "{}: a shard's generator was saturated",
                run.transport
            ));
        }
    }
    invalid_reasons.dedup();
    let verdict = if !invalid_reasons.is_empty() {
        Verdict::Invalid
    } else if runs.iter().any(|r| r.slo.iter().any(|s| !s.ok)) {
        Verdict::SloFailed
    } else {
        Verdict::Ok
    };
    let mut scenario = first.scenario.clone();
    if !sharded {
        scenario.clients = reports.iter().map(|r| r.scenario.clients).sum();
    }
    Ok(Report {
        schema: super::model::REPORT_SCHEMA,
        version: first.version.clone(),
        scenario,
        machine: first.machine.clone(),
        ok: verdict == Verdict::Ok,
        verdict,
        invalid_reasons,
        runs,
        shard: None,
    })
}

/// The generators' memory together: each shard is a process of its own, so their resident
/// sets add up, and a client's share is the whole's over the clients they held when it was
/// read (the scenario's `clients` for shards written before that was kept).
fn merge_memory(shards: &[&RunReport], clients: usize) -> Memory {
    let sum = |f: fn(&Memory) -> u64| add_up(shards.iter().map(|r| f(&r.memory)));
    let held: Option<u64> = shards
        .iter()
        .map(|r| r.memory.clients)
        .try_fold(0u64, |sum, n| n.map(|n| sum.saturating_add(n)));
    let clients = held.unwrap_or(clients as u64);
    let before = sum(|m| m.rss_before_bytes);
    let connected = sum(|m| m.rss_connected_bytes);
    Memory {
        rss_before_bytes: before,
        rss_connected_bytes: connected,
        peak_rss_bytes: sum(|m| m.peak_rss_bytes),
        bytes_per_client: connected
            .saturating_sub(before)
            .checked_div(clients)
            .unwrap_or(0),
        clients: Some(clients),
        server_embedded: shards.iter().any(|r| r.memory.server_embedded),
        // Each shard's generator is a process of its own; the largest count says as much.
        earlier_runs: shards
            .iter()
            .map(|r| r.memory.earlier_runs)
            .max()
            .unwrap_or(0),
    }
}

/// Whether `r` is what `merge` wrote.
fn is_merged(r: &Report) -> bool {
    r.runs.first().is_some_and(is_merged_run)
}

/// Whether `run` is one `merge` made of several generators' runs.
pub fn is_merged_run(run: &RunReport) -> bool {
    run.notes
        .first()
        .is_some_and(|n| n.starts_with(MERGED_FROM))
}

/// How a merged report's first note begins.
const MERGED_FROM: &str = "merged from ";

/// The notes of the runs at `position`, each once, without what each shard said of itself
/// (that it is one, and judges no `lost`: the merge does), and what the merge is made of.
fn merged_notes(reports: &[Report], position: usize) -> Vec<String> {
    let mut notes: Vec<String> = Vec::new();
    for r in reports {
        let own = r.shard.as_ref().map(|s| format!("shard {s}:"));
        for note in &r.runs[position].notes {
            let of_itself = own.as_ref().is_some_and(|p| note.starts_with(p.as_str()));
            if !of_itself && !notes.contains(note) {
                notes.push(note.clone());
            }
        }
    }
    let shards: Vec<&str> = reports.iter().filter_map(|r| r.shard.as_deref()).collect();
    let what = if shards.len() == reports.len() {
        format!(
            "{MERGED_FROM}{} ({}) that loaded one server together: `lost`, and fan-out where groups ran, are settled from all of them",
            if shards.len() == 1 { "1 shard".to_string() } else { format!("{} shards", shards.len()) },
            shards.join(", ")
        )
    } else {
        format!(
            "{MERGED_FROM}{} reports of generators that loaded one server together",
            reports.len()
        )
    };
    notes.insert(0, what);
    // SLOs are no part of the load (shards may be given their own): the merge judges the
    // first's, and says so when another was given others.
    let first_slo = &reports[0].scenario.slo;
    let set = |slo: &[String]| -> std::collections::BTreeSet<String> {
        slo.iter()
            .map(|e| crate::config::slo::Slo::parse(e).map_or(e.clone(), |s| s.expr))
            .collect()
    };
    for (i, r) in reports.iter().enumerate().skip(1) {
        if set(&r.scenario.slo) != set(first_slo) {
            let who = |i: usize, r: &Report| {
                r.shard
                    .as_ref()
                    .map_or(format!("report {}", i + 1), |s| format!("shard {s}"))
            };
            // What the merge judges: the first's, less what its run was not judged on.
            let lifted = &reports[0].runs[position].slo_lifted;
            let judged: Vec<&str> = first_slo
                .iter()
                .filter(|e| !lifted.contains(e))
                .map(String::as_str)
                .collect();
            notes.push(format!(
                "{} was given other SLOs ({}) than {} ({}): the merge is judged on the latter",
                who(i, r),
                r.scenario.slo.join(", "),
                who(0, &reports[0]),
                judged.join(", ")
            ));
        }
    }
    // A shard that stopped early measured less: its counts are in, its rate is not the load's.
    let longest = reports
        .iter()
        .map(|r| r.runs[position].duration_s)
        .fold(0.0, f64::max);
    for (i, r) in reports.iter().enumerate() {
        let d = r.runs[position].duration_s;
        if d < longest * 0.9 {
            let who = r
                .shard
                .as_ref()
                .map_or(format!("report {}", i + 1), |s| format!("shard {s}"));
            notes.push(format!(
                "{who} measured {d:.1}s of the {longest:.1}s the others did (it stopped early): the rates are over {longest:.1}s, with what it did in its {d:.1}s"
            ));
        }
    }
    notes
}

fn merge_runs(
    shards: &[&RunReport],
    scenario: &crate::config::scenario::Scenario,
    sharded: bool,
) -> Result<RunReport, MergeError> {
    let slo = &scenario.slo;
    let first = shards[0];
    let mut metrics = BTreeMap::new();
    for name in first.metrics.keys() {
        let mut total = crate::measure::metrics::new_histogram();
        for (index, run) in shards.iter().enumerate() {
            let Some(summary) = run.metrics.get(name) else {
                continue;
            };
            let h = decode_histogram(summary).ok_or_else(|| MergeError::Histogram {
                index,
                metric: name.clone(),
            })?;
            // Every imbench histogram has the same bounds, so adding cannot fail.
            let _ = total.add(&h);
        }
        metrics.insert(name.clone(), summarize(&total));
    }
    let mut counters = Counters::sum(shards.iter().map(|r| &r.counters));
    if sharded {
        // A file sent to another shard is counted sent by its sender's shard and verified (or
        // not) by its recipient's; one that neither ended is unfinished.
        counters.files_unfinished = counters.files_sent.saturating_sub(add_up(
            [
                counters.files_refused,
                counters.files_verified,
                counters.files_corrupted,
                counters.files_failed,
            ]
            .into_iter(),
        ));
    }
    // Each shard's rate is over its own measured time; together they are over the longest. A
    // shard that stopped early (interrupted) adds what it did in its shorter time, not its rate.
    let duration_s = shards.iter().map(|r| r.duration_s).fold(0.0, f64::max);
    let together = |rate: fn(&RunReport) -> f64| -> f64 {
        if duration_s <= 0.0 {
            return shards.iter().map(|r| rate(r)).sum();
        }
        shards.iter().map(|r| rate(r) * r.duration_s).sum::<f64>() / duration_s
    };
    let mut throughput = first.throughput.clone();
    throughput.sent_per_s = together(|r| r.throughput.sent_per_s);
    throughput.delivered_per_s = together(|r| r.throughput.delivered_per_s);
    throughput.file_bytes_per_s = together(|r| r.throughput.file_bytes_per_s);
    let lag = metrics.get(Metric::ScheduleLag.name());
    let limit_us = first.schedule_lag.limit_us;
    let schedule_lag = ScheduleLag {
        p50_us: lag.map_or(0, |l| l.p50_us),
        p99_us: lag.map_or(0, |l| l.p99_us),
        max_us: lag.map_or(0, |l| l.max_us),
        limit_us,
        saturated: shards.iter().any(|r| r.schedule_lag.saturated),
        late_for_the_machine: shards.iter().any(|r| r.schedule_lag.late_for_the_machine),
    };
    let group = merge_groups(shards);
    let mut run = RunReport {
        transport: first.transport.clone(),
        server: first.server.clone(),
        target: first.target.clone(),
        duration_s,
        metrics,
        counters,
        throughput,
        schedule_lag,
        timer: first.timer,
        slo: Vec::new(),
        slo_lifted: first.slo_lifted.clone(),
        group,
        files: merge_files(shards),
        memory: merge_memory(shards, scenario.clients),
        cpu: None,
        // Each shard ran on its own machine: their CPU figures do not add up to one.
        cpu_use: None,
        udp_drops: None,
        // `merge` gives the merged run its notes (`merged_notes`).
        notes: Vec::new(),
        problems: shards
            .iter()
            .flat_map(|r| r.problems.clone())
            .take(20)
            .collect(),
        problem_count: shards.iter().map(|r| r.problem_count).sum(),
        intervals: Vec::new(),
        started_unix_s: shards
            .iter()
            .map(|r| r.started_unix_s)
            .fold(f64::INFINITY, f64::min),
        interval_log: Vec::new(),
        group_records: None,
    };
    if sharded {
        if run.group.is_some() {
            settle_groups(&mut run, shards)?;
        }
        // Each shard's clients receive from every shard: what is lost is known only now, with
        // the group messages settled.
        let c = &mut run.counters;
        c.lost = c.expected.saturating_sub(c.delivered);
    }
    run.slo = slo
        .iter()
        .filter(|e| !run.slo_lifted.contains(e))
        .map(|e| evaluate(e, &run))
        .collect();
    Ok(run)
}

/// Accounts for the group messages of shards: a message sent in one shard reached members in
/// every shard, so whether it reached all of them, and when the last one got it, is known only
/// from every shard's records (see `measure::group_records`).
fn settle_groups(run: &mut RunReport, shards: &[&RunReport]) -> Result<(), MergeError> {
    let mut parts = Vec::new();
    for (index, shard) in shards.iter().enumerate() {
        let records = shard
            .group_records
            .clone()
            .ok_or(MergeError::NoGroupRecords { index })?;
        parts.push(records);
    }
    let all = GroupRecords::combine(parts).map_err(MergeError::GroupRecords)?;
    let outcome = settle(&all);
    let total = outcome.total();
    if let Some(group) = &mut run.group {
        run.metrics.extend(fanout_metrics(&outcome, &group.buckets));
        // The shards' own counts hold what each counted as it came; the rest is settled here.
        group.counts = GroupCounts {
            sent: group.counts.sent,
            ..total.clone()
        };
        group.groups = outcome.groups;
    }
    let c = &mut run.counters;
    c.expected += total.expected;
    c.delivered += total.delivered_expected;
    c.errors += total.unexpected;
    Ok(())
}

fn merge_files(shards: &[&RunReport]) -> Option<FileReport> {
    let parts: Vec<&FileReport> = shards.iter().filter_map(|r| r.files.as_ref()).collect();
    parts.first()?;
    let mut throughput = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 1 << 30, 3).ok()?;
    for part in &parts {
        if let Some(h) = decode_histogram(&part.throughput_kib_s) {
            let _ = throughput.add(&h);
        }
    }
    Some(FileReport {
        bytes_verified: add_up(parts.iter().map(|f| f.bytes_verified)),
        throughput_kib_s: summarize(&throughput),
    })
}

fn merge_groups(shards: &[&RunReport]) -> Option<GroupReport> {
    let parts: Vec<&GroupReport> = shards.iter().filter_map(|r| r.group.as_ref()).collect();
    parts.first()?;
    let sum = |f: fn(&GroupReport) -> u64| add_up(parts.iter().map(|g| f(g)));
    let mut buckets: Vec<_> = parts.iter().flat_map(|g| g.buckets.clone()).collect();
    buckets.sort();
    buckets.dedup();
    Some(GroupReport {
        acked: sum(|g| g.acked),
        rejected: sum(|g| g.rejected),
        counts: GroupCounts::sum(parts.iter().map(|g| &g.counts)),
        untracked: sum(|g| g.untracked),
        refused_membership_changes: sum(|g| g.refused_membership_changes),
        buckets,
        groups: parts.iter().flat_map(|g| g.groups.clone()).collect(),
    })
}
/// Counts read from shards' reports added up: a report may hold anything, and a sum past
/// u64::MAX stays there rather than wrapping round.
fn add_up(counts: impl Iterator<Item = u64>) -> u64 {
    counts.fold(0, u64::saturating_add)
}
