//! Regression gating (`imbench compare --fail-on-regression`): each chosen figure of a new
//! report against the same figure over a baseline of repeated runs.
//!
//! The baseline's repeats measure the noise: for each figure, its spread (largest − smallest,
//! relative to the median) over the repeats. A figure regressed when it got worse than the
//! baseline median by more than the threshold *and* by more than that spread. A single baseline
//! run measures no noise; the report says so, and only the threshold applies.
//!
//! The candidate may be repeated runs too (a folder of them, run beside the baseline's on the
//! same machine): its figure is then the median over its repeats, so one unlucky run of a
//! side-by-side comparison is not taken for the change's.

use std::fmt::Write as _;

use crate::config::slo::{three_digits, Slo, Target};
use crate::report::model::RunReport;

/// Figures checked when none are named: the latencies a user gates on, delivered throughput,
/// and the files' verified bytes a second. Those a report does not have (group or file figures
/// without that workload) are left out.
pub const DEFAULT_CHECKS: [&str; 8] = [
    "direct.p50",
    "direct.p99",
    "ack.p99",
    "group.p99",
    "fanout.p99",
    "file.p99",
    "delivered_per_s",
    "file_bytes_per_s",
];

/// The name of the figure for CPU per message (the process's, both sides when the server is
/// embedded): a gate may check it and the spread of repeats shows it, but no SLO names it.
pub const CPU_FIGURE: &str = "cpu_us_per_message";

/// One figure to check and which way is worse.
#[derive(Debug, Clone)]
pub struct Check {
    /// As written: `direct.p99`, `delivered_per_s`.
    pub name: String,
    target: Target,
    /// Latencies and failures get worse upwards; rates downwards.
    higher_is_worse: bool,
}

impl Check {
    /// Parses a figure name as SLOs write it.
    pub fn parse(name: &str) -> Result<Self, String> {
        // Not a figure an SLO may name (a machine's CPU is no promise of the system's), but
        // one a gate may watch: more CPU per message is worse.
        if name == CPU_FIGURE {
            return Ok(Self {
                name: name.to_string(),
                target: Target::Number(name.to_string()),
                higher_is_worse: true,
            });
        }
        // A condition is an SLO's, not a check's: a check's bound is the baseline.
        if name.contains(['<', '>', '=']) {
            return Err(format!(
                "{name:?}: a check is a figure's name alone, such as direct.p99; how much worse it may get than the baseline is --fail-on-regression (a bound of its own is an SLO: --slo)"
            ));
        }
        // Parsed as an SLO's left side; its errors are of the figure, not of an SLO.
        let slo = Slo::parse(&format!("{name} > 0")).map_err(|e| e.why().to_string())?;
        if let Target::Number(n) = &slo.target {
            if crate::report::figures::FIGURES.iter().any(|f| f.name == n) {
                return Err(format!(
                    "{n} is a latency: name a statistic of it, as {n}.p99 (min, mean, p50, p90, p99, p999, max or count)"
                ));
            }
        }
        if !crate::report::build::slo_target_known(&slo.target) {
            return Err(format!(
                "no figure is called {name:?}; one of: {}, {CPU_FIGURE}",
                crate::report::build::slo_names().join(", ")
            ));
        }
        use crate::report::figures::{counter_worse, Worse};
        let higher_is_worse = match &slo.target {
            // A metric's sample count is how many were measured (deliveries, sends): fewer
            // is worse, as for a rate.
            Target::Latency { stat, .. } if stat == "count" => false,
            Target::Latency { .. } => true,
            Target::Number(n) => match counter_worse(n) {
                Some(Worse::Higher) => true,
                Some(Worse::Lower) => false,
                Some(Worse::Neither) => {
                    return Err(format!(
                        "{name} counts what the scenario asked for (its churn), not how well it went: neither more nor fewer is a regression"
                    ))
                }
                // A rate: fewer is worse.
                None => false,
            },
        };
        Ok(Self {
            name: name.to_string(),
            target: slo.target,
            higher_is_worse,
        })
    }

    /// The figure's value in `run`; `None` when the run does not have it.
    pub(crate) fn value(&self, run: &RunReport) -> Option<f64> {
        if self.name == CPU_FIGURE {
            return run.cpu.as_ref().and_then(|c| c.us_per_message);
        }
        // A count of a workload the run did not have is no figure (not a 0 that holds).
        if let Target::Number(n) = &self.target {
            let of_files = n.starts_with("files_") || n == "file_bytes_per_s";
            let of_groups = crate::measure::group_records::GroupCounts::NAMES.contains(&n.as_str())
                && !crate::report::figures::Counters::NAMES.contains(&n.as_str());
            if (of_files && run.files.is_none()) || (of_groups && run.group.is_none()) {
                return None;
            }
        }
        // A latency of a metric with no samples is no figure.
        if let Target::Latency { metric, .. } = &self.target {
            if run.metrics.get(metric).is_none_or(|m| m.count == 0) {
                return None;
            }
        }
        // Judged as an SLO judges it: a candidate that lost messages is not faster for it. A
        // counter another system's clients cannot count (`resumed` of a NATS run) is none.
        crate::report::build::judged_value(&self.target, run)
    }

    fn show(&self, v: f64) -> String {
        if v.is_infinite() {
            return "unbounded (lost)".into();
        }
        if self.name == CPU_FIGURE {
            // A few µs per message apart is a difference worth seeing.
            return format!("{v:.1}");
        }
        match &self.target {
            Target::Latency { stat, .. } if stat == "count" => format!("{v:.0}"),
            Target::Latency { .. } => three_digits(v),
            // Bytes a second read as the report's table gives them.
            Target::Number(n) if n == "file_bytes_per_s" => {
                format!("{:.2} MiB/s", v / (1024.0 * 1024.0))
            }
            Target::Number(_) => format!("{v:.0}"),
        }
    }
}

/// The verdict on one figure of one transport.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Figure name.
    pub name: String,
    /// Transport of the run.
    pub transport: String,
    /// Baseline median.
    pub baseline: f64,
    /// Baseline spread relative to its median; `None` with a single baseline run.
    pub noise: Option<f64>,
    /// The new value: the median of the candidate's repeats when it has several.
    pub value: f64,
    /// Candidate runs the value is the median of (1: a single report).
    pub runs: usize,
    /// How much worse the new value is, relative to the baseline median (negative: better).
    pub worse_by: f64,
    /// Worse by more than the threshold and the noise, or missing from the candidate.
    pub regressed: bool,
    /// The baseline has the figure and the candidate does not (or has no sample of it), in
    /// every run or in some: a change that stops a figure from being measured, even in one run
    /// of several, is not let through as "no change".
    pub missing: bool,
    /// Candidate runs of this transport without the figure (with `missing`), and of them all.
    pub missing_in: (usize, usize),
    shown: (String, String),
}

/// The median of values sorted ascending (the mean of the middle two for an even count).
pub(crate) fn median_of_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// How a set of values compares to a baseline: median, relative spread, relative worsening.
pub fn judge(baseline: &[f64], value: f64, higher_is_worse: bool, threshold: f64) -> Judgement {
    let mut sorted = baseline.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = median_of_sorted(&sorted);
    let spread = (n > 1).then(|| sorted[n - 1] - sorted[0]);
    let worse = if higher_is_worse {
        value - median
    } else {
        median - value
    };
    // Judged in the figure's own units: relative to a median of 0 (a count of errors that
    // was 0 in most baseline runs) every spread and every worsening is infinite, and the
    // two could not be told apart.
    let regressed =
        worse > 0.0 && worse > threshold * median.abs() && worse > spread.unwrap_or(0.0);
    let relative = |x: f64| {
        if median != 0.0 {
            x / median.abs()
        } else if x == 0.0 {
            0.0
        } else {
            x.signum() * f64::INFINITY
        }
    };
    let noise = spread.map(relative);
    let worse_by = relative(worse);
    Judgement {
        median,
        noise,
        worse_by,
        regressed,
    }
}

/// See [`judge`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judgement {
    /// Baseline median.
    pub median: f64,
    /// Baseline spread relative to the median (`None` with one baseline value).
    pub noise: Option<f64>,
    /// Relative worsening of the new value.
    pub worse_by: f64,
    /// Worse by more than the threshold and the noise.
    pub regressed: bool,
}

/// Checks each transport of `candidate` (one report's runs per repeat; a single report is one
/// repeat) against the runs of the same transport in `baseline` (one report per repeat). A
/// figure of repeated candidate runs is their median.
pub fn compare(
    baseline: &[&[RunReport]],
    candidate: &[&[RunReport]],
    checks: &[Check],
    threshold: f64,
) -> Vec<Finding> {
    // Transports in the order the candidate's first repeat ran them, then any only later ones.
    let mut transports: Vec<&str> = Vec::new();
    for run in candidate.iter().flat_map(|runs| runs.iter()) {
        if !transports.contains(&run.transport.as_str()) {
            transports.push(&run.transport);
        }
    }
    // Then the baseline's that the candidate dropped, when the two share any (with none in
    // common there is nothing to gate, which the caller says): their figures are missing.
    let baseline_names = || {
        baseline
            .iter()
            .flat_map(|runs| runs.iter())
            .map(|r| r.transport.as_str())
    };
    if baseline_names().any(|t| transports.contains(&t)) {
        for t in baseline_names() {
            if !transports.contains(&t) {
                transports.push(t);
            }
        }
    }
    let values_of = |repeats: &[&[RunReport]], transport: &str, check: &Check| -> Vec<f64> {
        repeats
            .iter()
            .filter_map(|runs| runs.iter().find(|r| r.transport == transport))
            .filter_map(|r| check.value(r))
            .collect()
    };
    let mut findings = Vec::new();
    for transport in transports {
        for check in checks {
            let base = values_of(baseline, transport, check);
            if base.is_empty() {
                continue;
            }
            let mut now = values_of(candidate, transport, check);
            // Of every repeat of the candidate: one in which the transport or target did not
            // run (gone by then) lacks its figures as much as one that ran without them.
            let missing_in = (candidate.len().saturating_sub(now.len()), candidate.len());
            if now.is_empty() {
                let j = judge(&base, f64::NAN, check.higher_is_worse, threshold);
                findings.push(Finding {
                    name: check.name.clone(),
                    transport: transport.to_string(),
                    baseline: j.median,
                    noise: j.noise,
                    value: f64::NAN,
                    runs: 0,
                    worse_by: f64::NAN,
                    regressed: true,
                    missing: true,
                    missing_in,
                    shown: (check.show(j.median), "-".into()),
                });
                continue;
            }
            now.sort_by(f64::total_cmp);
            let value = median_of_sorted(&now);
            let j = judge(&base, value, check.higher_is_worse, threshold);
            findings.push(Finding {
                name: check.name.clone(),
                transport: transport.to_string(),
                baseline: j.median,
                noise: j.noise,
                value,
                runs: now.len(),
                worse_by: j.worse_by,
                // The median of the runs that have it would hide those that lost it.
                regressed: j.regressed || missing_in.0 > 0,
                missing: missing_in.0 > 0,
                missing_in,
                shown: (check.show(j.median), check.show(value)),
            });
        }
    }
    findings
}

/// The candidate's runs (by name) that the baseline has no run of: shown, not gated.
pub fn not_in_baseline(baseline: &[&[RunReport]], candidate: &[&[RunReport]]) -> Vec<String> {
    let in_baseline = |t: &str| {
        baseline
            .iter()
            .flat_map(|runs| runs.iter())
            .any(|r| r.transport == t)
    };
    let mut names: Vec<String> = Vec::new();
    for run in candidate.iter().flat_map(|runs| runs.iter()) {
        if !in_baseline(&run.transport) && !names.contains(&run.transport) {
            names.push(run.transport.clone());
        }
    }
    names
}

/// The findings as a table, one row per figure, with the verdict.
pub fn table(findings: &[Finding], threshold: f64, repeats: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "regression check: worse than the baseline median by more than {:.0}% and by more than the baseline's own spread ({} baseline run{}); `worse by` is positive when worse, for latencies (higher) and rates (lower) alike",
        threshold * 100.0,
        repeats,
        if repeats == 1 { ", so no noise measured" } else { "s" }
    );
    let candidate_runs = findings.iter().map(|f| f.runs).max().unwrap_or(1);
    if candidate_runs > 1 {
        let _ = writeln!(
            out,
            "`now` is the median of the candidate's {candidate_runs} runs"
        );
    }
    let _ = writeln!(
        out,
        "{:<10} {:<18} {:>12} {:>8} {:>12} {:>9}  verdict",
        "transport", "figure", "baseline", "noise", "now", "worse by"
    );
    for f in findings {
        // Against a baseline of 0 any change is infinitely worse or better: no percentage.
        let worse_by = if f.worse_by.is_finite() && f.baseline != 0.0 {
            format!("{:+.0}%", f.worse_by * 100.0)
        } else {
            "-".to_string()
        };
        let _ = writeln!(
            out,
            "{:<10} {:<18} {:>12} {:>8} {:>12} {:>9}  {}",
            f.transport,
            f.name,
            f.shown.0,
            f.noise
                .map_or("-".to_string(), |n| format!("{:.0}%", n * 100.0)),
            f.shown.1,
            worse_by,
            match (f.missing, f.missing_in) {
                (true, (lacking, all)) if lacking < all => format!(
                    "MISSING in {lacking} of the candidate's {all} runs (`now` is of the others)"
                ),
                (true, _) => "MISSING: the candidate has no such figure".to_string(),
                (false, _) if f.regressed => "REGRESSED".to_string(),
                (false, _) => "ok".to_string(),
            }
        );
    }
    out
}

/// The largest threshold, as a fraction (1,000,000 %).
const MAX_THRESHOLD: f64 = 10_000.0;

/// Parses a threshold such as `10%` or `0.1`.
pub fn parse_threshold(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let percent = t.ends_with('%');
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("{s:?} is not a threshold: write it as 10% or 0.1"))?;
    // Past a million percent no figure of a real run regresses: a gate that cannot trip.
    if !(v.is_finite() && (0.0..=MAX_THRESHOLD).contains(&v)) {
        return Err(format!(
            "{s:?}: a threshold is from 0% to {:.0}%",
            MAX_THRESHOLD * 100.0
        ));
    }
    if !percent && v > 1.0 {
        // 10 as a fraction is 1000 %: a gate that never trips. Say what was meant.
        return Err(format!(
            "{s:?} as a fraction is {:.0}%: write {t}% for {t} percent, or a fraction up to 1",
            v * 100.0
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worse_by_more_than_threshold_and_noise_regresses() {
        // Baseline p99s of 10, 11, 12 ms: median 11, noise 2/11 = 18 %.
        let base = [10_000.0, 11_000.0, 12_000.0];
        let j = judge(&base, 22_000.0, true, 0.5);
        assert!(j.regressed, "2x is caught: {j:?}");
        assert!((j.worse_by - 1.0).abs() < 1e-9);
        // Within the threshold.
        assert!(!judge(&base, 15_000.0, true, 0.5).regressed);
        // Past the threshold but within the noise.
        let noisy = [5_000.0, 11_000.0, 20_000.0];
        let j = judge(&noisy, 18_000.0, true, 0.5);
        assert!(j.worse_by > 0.5 && !j.regressed, "{j:?}");
        // Better is never a regression.
        assert!(!judge(&base, 1_000.0, true, 0.0).regressed);
    }

    #[test]
    fn rates_regress_downwards() {
        let base = [1000.0, 1010.0, 990.0];
        assert!(judge(&base, 400.0, false, 0.5).regressed);
        assert!(!judge(&base, 2000.0, false, 0.5).regressed);
        let check = Check::parse("delivered_per_s").unwrap();
        assert!(!check.higher_is_worse);
        assert!(Check::parse("direct.p99").unwrap().higher_is_worse);
        assert!(Check::parse("direct.p98").is_err());
        // A sample count is a number, and fewer is worse.
        let count = Check::parse("direct.count").unwrap();
        assert!(!count.higher_is_worse);
        assert_eq!(count.show(422.0), "422");
        assert_eq!(Check::parse("direct.p99").unwrap().show(422.0), "422µs");
        // CPU per message: a gate's figure, and more is worse.
        let cpu = Check::parse(CPU_FIGURE).unwrap();
        assert!(cpu.higher_is_worse);
        assert!(Check::parse("dierct.p99").unwrap_err().contains(CPU_FIGURE));
        // Said of the figure, not of an SLO it never wrote.
        let e = Check::parse("direct.p98").unwrap_err();
        assert!(e.contains("p98") && !e.contains("> 0"), "{e}");
        let e = Check::parse("direct").unwrap_err();
        assert!(e.contains("name a statistic of it, as direct.p99"), "{e}");
        // A count of a workload a run did not have is no figure, not a 0.
        let mut run = crate::report::read::from_json(include_str!("testdata/schema-1-a.json"))
            .expect("a committed report reads")
            .runs
            .remove(0);
        run.files = None;
        run.group = None;
        for name in ["files_verified", "file_bytes_per_s", "incomplete"] {
            assert_eq!(Check::parse(name).unwrap().value(&run), None, "{name}");
        }
        assert!(Check::parse("lost").unwrap().value(&run).is_some());
        // File bytes a second read in MiB/s, as the report's table gives them.
        let bytes = Check::parse("file_bytes_per_s").unwrap();
        assert_eq!(bytes.show(3.0 * 1024.0 * 1024.0), "3.00 MiB/s");
        assert_eq!(Check::parse("delivered_per_s").unwrap().show(992.4), "992");
    }

    #[test]
    fn counters_regress_the_way_they_get_worse() {
        // Fewer delivered is worse; more lost is worse; a churn count is neither.
        assert!(!Check::parse("delivered").unwrap().higher_is_worse);
        assert!(!Check::parse("clients").unwrap().higher_is_worse);
        assert!(Check::parse("lost").unwrap().higher_is_worse);
        assert!(Check::parse("incomplete").unwrap().higher_is_worse);
        let e = Check::parse("direct.p99<1ms").unwrap_err();
        assert!(e.contains("a figure's name alone"), "{e}");
        let e = Check::parse("handovers").unwrap_err();
        assert!(e.contains("neither more nor fewer"), "{e}");
        let base = [100_000.0, 100_000.0];
        let delivered = Check::parse("delivered").unwrap();
        assert!(judge(&base, 50_000.0, delivered.higher_is_worse, 0.1).regressed);
        assert!(!judge(&base, 120_000.0, delivered.higher_is_worse, 0.1).regressed);
        // A baseline mostly at 0 with one run's blip: what is within the blip is noise, what
        // is past it regressed (relative to a median of 0 both were infinite, and passed).
        let errors = [0.0, 0.0, 5.0];
        assert!(!judge(&errors, 3.0, true, 0.1).regressed);
        assert!(judge(&errors, 500.0, true, 0.1).regressed);
        assert!(judge(&[0.0, 0.0, 0.0], 1.0, true, 0.1).regressed);
        assert!(!judge(&[0.0, 0.0, 0.0], 0.0, true, 0.1).regressed);
    }

    #[test]
    fn a_figure_some_candidate_runs_lack_is_missing_whatever_the_others_say() {
        let report = crate::report::read::from_json(include_str!("testdata/schema-1-a.json"))
            .expect("a committed report reads");
        let run = report.runs[0].clone();
        let without = {
            let mut r = run.clone();
            r.metrics.get_mut("direct").expect("direct").count = 0;
            r
        };
        let baseline = [vec![run.clone()], vec![run.clone()]];
        let baseline: Vec<&[RunReport]> = baseline.iter().map(Vec::as_slice).collect();
        let checks = [Check::parse("direct.p99").unwrap()];
        let some = [vec![run.clone()], vec![without.clone()], vec![without]];
        let some: Vec<&[RunReport]> = some.iter().map(Vec::as_slice).collect();
        let f = &compare(&baseline, &some, &checks, 0.1)[0];
        assert!(f.missing && f.regressed, "{f:?}");
        assert_eq!(f.missing_in, (2, 3));
        let shown = table(std::slice::from_ref(f), 0.1, 2);
        assert!(
            shown.contains("MISSING in 2 of the candidate's 3 runs"),
            "{shown}"
        );
        // A target gone after the first repeat: those without it lack its figures too.
        let gone = [vec![run.clone()], vec![], vec![]];
        let gone: Vec<&[RunReport]> = gone.iter().map(Vec::as_slice).collect();
        let f = &compare(&baseline, &gone, &checks, 0.1)[0];
        assert!(f.missing && f.regressed, "{f:?}");
        assert_eq!(f.missing_in, (2, 3));
        let all = [vec![run.clone()], vec![run]];
        let all: Vec<&[RunReport]> = all.iter().map(Vec::as_slice).collect();
        let f = &compare(&baseline, &all, &checks, 0.1)[0];
        assert!(!f.missing && !f.regressed, "{f:?}");
    }

    #[test]
    fn a_transport_the_candidate_dropped_is_missing_and_one_it_added_is_named() {
        let report = crate::report::read::from_json(include_str!("testdata/schema-1-a.json"))
            .expect("a committed report reads");
        let named = |t: &str| {
            let mut r = report.runs[0].clone();
            t.clone_into(&mut r.transport);
            r
        };
        let both = [vec![named("quic"), named("tcp")]];
        let both: Vec<&[RunReport]> = both.iter().map(Vec::as_slice).collect();
        let quic = [vec![named("quic")]];
        let quic: Vec<&[RunReport]> = quic.iter().map(Vec::as_slice).collect();
        let checks = [Check::parse("direct.p99").unwrap()];
        let dropped = compare(&both, &quic, &checks, 0.1);
        let tcp = dropped
            .iter()
            .find(|f| f.transport == "tcp")
            .expect("tcp judged");
        assert!(tcp.missing && tcp.regressed, "{tcp:?}");
        assert_eq!(not_in_baseline(&both, &quic), Vec::<String>::new());
        let added = compare(&quic, &both, &checks, 0.1);
        assert!(
            added.iter().all(|f| f.transport == "quic" && !f.regressed),
            "{added:?}"
        );
        assert_eq!(not_in_baseline(&quic, &both), ["tcp"]);
        // Nothing in common: nothing to gate, said by the caller.
        let nats = [vec![named("nats")]];
        let nats: Vec<&[RunReport]> = nats.iter().map(Vec::as_slice).collect();
        assert!(compare(&quic, &nats, &checks, 0.1).is_empty());
    }

    #[test]
    fn a_candidate_that_lost_messages_is_judged_over_all_of_them() {
        let mut report = crate::report::read::from_json(include_str!("testdata/schema-1-a.json"))
            .expect("a committed report reads");
        let run = &mut report.runs[0];
        run.group = None;
        let p99 = Check::parse("direct.p99").unwrap();
        let delivered = p99.value(run).expect("a p99");
        // 30 % lost: its p99 is one of the lost, later than any bound, and it regressed.
        (run.counters.expected, run.counters.lost) = (10_000, 3_000);
        let judged = p99.value(run).expect("a p99");
        assert!(judged.is_infinite(), "{judged}");
        assert!(judge(&[delivered, delivered], judged, true, 0.75).regressed);
        assert_eq!(p99.show(judged), "unbounded (lost)");
    }

    #[test]
    fn a_counter_another_systems_clients_cannot_count_is_not_gated() {
        let mut report = crate::report::read::from_json(include_str!("testdata/schema-1-a.json"))
            .expect("a committed report reads");
        let run = &mut report.runs[0];
        let resumed = Check::parse("resumed").unwrap();
        assert_eq!(resumed.value(run), Some(run.counters.resumed as f64));
        run.target = Some("nats://127.0.0.1:4222".into());
        assert_eq!(resumed.value(run), None, "not measured, not a 0 that holds");
        // Counted by every client, it stays a figure.
        assert!(Check::parse("lost").unwrap().value(run).is_some());
    }

    #[test]
    fn one_baseline_run_measures_no_noise() {
        let j = judge(&[100.0], 160.0, true, 0.5);
        assert_eq!(j.noise, None);
        assert!(j.regressed);
        assert!(!judge(&[100.0], 140.0, true, 0.5).regressed);
    }

    #[test]
    fn thresholds_parse() {
        assert_eq!(parse_threshold("10%").unwrap(), 0.1);
        assert_eq!(parse_threshold("0.25").unwrap(), 0.25);
        assert!(parse_threshold("ten").is_err());
        assert!(parse_threshold("-5%").is_err());
        assert!(parse_threshold("10")
            .unwrap_err()
            .contains("write 10% for 10 percent"));
        assert_eq!(parse_threshold("1").unwrap(), 1.0);
        assert_eq!(parse_threshold("250%").unwrap(), 2.5);
        for past in ["inf%", "100000000000000000000000%"] {
            let e = parse_threshold(past).unwrap_err();
            assert!(e.contains("from 0% to 1000000%"), "{e}");
        }
    }
}
