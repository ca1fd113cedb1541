//! Runs of one scenario over several transports, side by side: one report holding every run,
//! and the comparison table with each value's ratio to the first transport's.

use std::fmt::Write as _;

use crate::config::slo::{three_digits, times, Target};
use crate::report::figures::FIGURES;
use crate::report::model::{Report, RunReport, Verdict};

/// Merges single-transport reports into one: every run kept, the worst verdict wins, and each
/// reason for invalidity names its transport. `None` when there are none.
pub fn combine(mut reports: Vec<Report>) -> Option<Report> {
    if reports.len() == 1 {
        return reports.pop();
    }
    let mut it = reports.into_iter();
    let mut all = it.next()?;
    let first = all
        .runs
        .first()
        .map(|r| r.transport.clone())
        .unwrap_or_default();
    all.invalid_reasons = all
        .invalid_reasons
        .iter()
        .map(|r| format!("{first}: {r}"))
        .collect();
    for r in it {
        let t = r
            .runs
            .first()
            .map(|r| r.transport.clone())
            .unwrap_or_default();
        all.verdict = all.verdict.max(r.verdict);
        all.invalid_reasons
            .extend(r.invalid_reasons.iter().map(|why| format!("{t}: {why}")));
        all.runs.extend(r.runs);
    }
    all.ok = all.verdict == Verdict::Ok;
    Some(all)
}

/// A latency percentile of `run` (`p50`, `p99`, `p999`) in µs as an SLO judges it: over every
/// message, those that never arrived counted as never arriving, so that a target that lost
/// messages is not the quicker for it; infinite when they reach past the percentile. `None`
/// when the run has no sample of `metric`.
pub(crate) fn judged_percentile(run: &RunReport, metric: &str, stat: &str) -> Option<f64> {
    run.metrics.get(metric).filter(|m| m.count > 0)?;
    let target = Target::Latency {
        metric: metric.to_string(),
        stat: stat.to_string(),
    };
    crate::report::build::judged_value(&target, run)
}

/// A judged latency as the tables show it.
pub(crate) fn show_judged(us: f64) -> String {
    if us.is_infinite() {
        "unbounded (lost)".to_string()
    } else {
        three_digits(us)
    }
}

/// The comparison table: a row per metric and percentile (and throughput, loss, CPU), a
/// column per transport, and each value's ratio to the first transport's.
pub fn comparison_table(report: &Report) -> String {
    let heading = format!(
        "comparison ({} clients{})",
        report.scenario.clients,
        report.network_suffix()
    );
    comparison_table_headed(report, &heading)
}

/// Width of the rows' names: the longest figure's with its longest statistic
/// (`direct_without_files p99.9`), and a space.
fn label_width() -> usize {
    let longest = FIGURES.iter().map(|f| f.name.len()).max().unwrap_or(0);
    longest + " p99.9 ".len()
}

/// [`comparison_table`] under `heading`: for runs of different loads, whose first run's load
/// is not theirs.
pub fn comparison_table_headed(report: &Report, heading: &str) -> String {
    let runs = &report.runs;
    let mut out = String::new();
    if runs.len() < 2 {
        return out;
    }
    let width = label_width();
    let _ = write!(out, "\n{heading}\n{:<width$}", "");
    let invalid = |name: &str| !invalid_reasons_of(report, name).is_empty();
    let any_invalid = runs.iter().any(|r| invalid(&r.transport));
    // Wide enough for a figure with its ratio, and for the longest name (with its mark).
    let column = runs
        .iter()
        .map(|r| r.transport.chars().count() + 1)
        .fold(18, usize::max);
    for r in runs {
        let mark = if invalid(&r.transport) { "*" } else { "" };
        let _ = write!(out, " {:>column$}", format!("{}{mark}", r.transport));
    }
    out.push('\n');
    let row =
        |out: &mut String, name: &str, values: Vec<Option<f64>>, show: &dyn Fn(f64) -> String| {
            let _ = write!(out, "{name:<width$}");
            let base = values.first().copied().flatten();
            for (i, v) in values.iter().enumerate() {
                let cell = match (v, base) {
                    (Some(v), _) if i == 0 => show(*v),
                    (Some(v), Some(b)) if b > 0.0 && b.is_finite() && v.is_finite() => {
                        format!("{} ({})", show(*v), times(v / b))
                    }
                    (Some(v), _) => show(*v),
                    (None, _) => "-".to_string(),
                };
                let _ = write!(out, " {cell:>column$}");
            }
            out.push('\n');
        };
    let micros = |v: f64| show_judged(v);
    for name in FIGURES.iter().filter(|f| f.compared).map(|f| f.name) {
        let present = runs
            .iter()
            .any(|r| r.metrics.get(name).is_some_and(|m| m.count > 0));
        if !present {
            continue;
        }
        // As an SLO judges them: a target that lost messages is not the quicker for it.
        for (stat, judged) in [("p50", "p50"), ("p99", "p99"), ("p99.9", "p999")] {
            let values = runs
                .iter()
                .map(|r| judged_percentile(r, name, judged))
                .collect();
            row(&mut out, &format!("{name} {stat}"), values, &micros);
        }
    }
    let per_run = |f: fn(&RunReport) -> Option<f64>| runs.iter().map(f).collect::<Vec<_>>();
    let count = |v: f64| format!("{v:.0}");
    // What was sent first: a target that sent less (clients away under churn owe nothing
    // meanwhile) delivered less for that reason.
    row(
        &mut out,
        "sent",
        per_run(|r| Some(r.counters.sent as f64)),
        &count,
    );
    row(
        &mut out,
        "delivered/s",
        // A run stopped before its measured period has no rate, not one of 0.
        per_run(|r| (r.duration_s > 0.0).then_some(r.throughput.delivered_per_s)),
        &count,
    );
    row(
        &mut out,
        "lost",
        per_run(|r| Some(r.counters.lost as f64)),
        &count,
    );
    // A message the system refused is not lost, but not delivered either: beside `lost`, a
    // target that refused what another lost would otherwise read as one that kept it.
    let rejected = per_run(|r| Some(r.counters.rejected as f64));
    if rejected.iter().flatten().any(|&v| v > 0.0) {
        row(&mut out, "rejected", rejected, &count);
    }
    // A counter's row, only where some run counted something.
    let counted = |counter: &str| -> Option<Vec<Option<f64>>> {
        let values: Vec<Option<f64>> = runs
            .iter()
            .map(|r| r.counter_given(counter).map(|v| v as f64))
            .collect();
        values.iter().flatten().any(|&v| v > 0.0).then_some(values)
    };
    // Delivered twice or wrong (a message an earlier run left, say): rows where it happened.
    for counter in ["duplicated", "corrupted"] {
        if let Some(values) = counted(counter) {
            row(&mut out, counter, values, &count);
        }
    }
    // What churn and handovers did, where they happened: how reconnects logged in and how
    // many connections moved explain the reconnect and direct rows above.
    for counter in ["reconnects", "resumed", "zero_rtt", "migrations"] {
        if let Some(values) = counted(counter) {
            row(&mut out, counter, values, &count);
        }
    }
    if runs.iter().any(|r| r.files.is_some()) {
        row(
            &mut out,
            "file MiB/s",
            // A run that sent no files has no figure, not a throughput of 0.
            per_run(|r| {
                r.files
                    .is_some()
                    .then(|| r.throughput.file_bytes_per_s / (1024.0 * 1024.0))
            }),
            &|v| format!("{v:.1}"),
        );
        row(
            &mut out,
            "files failed",
            per_run(|r| r.files.is_some().then_some(r.counters.files_failed as f64)),
            &|v| format!("{v:.0}"),
        );
        // As the run's own table counts them: a transfer still under way at the end did not
        // fail, nor did one that arrived with the wrong hash.
        for (label, counter) in [
            ("files unfinished", "files_unfinished"),
            ("files corrupted", "files_corrupted"),
        ] {
            if let Some(values) = counted(counter) {
                row(&mut out, label, values, &count);
            }
        }
    }
    row(
        &mut out,
        "cpu µs/message",
        per_run(|r| r.cpu.as_ref().and_then(|c| c.us_per_message)),
        &|v| format!("{v:.0}"),
    );
    let _ = writeln!(out, "(ratios are to {})", runs[0].transport);
    if any_invalid {
        let _ = writeln!(
            out,
            "(* the run was invalid: its figures are not the system's; the verdict says why)"
        );
    }
    out
}

/// How the reason a comparison's target has no run begins, after its name (`nats: …`): the
/// target's own, not the other runs'.
pub const GONE_BEFORE_IT_RAN: &str = "the run could not take place";

/// Why the run named `name` of `report` is invalid: of a run of one target, every reason; of
/// several targets (however many of them took place), those `combine` named after it
/// (`tcp: …`), without the name.
pub fn invalid_reasons_of<'a>(report: &'a Report, name: &str) -> Vec<&'a str> {
    if !of_several_targets(report) {
        return report.invalid_reasons.iter().map(String::as_str).collect();
    }
    let prefix = format!("{name}: ");
    report
        .invalid_reasons
        .iter()
        .filter_map(|why| why.strip_prefix(&prefix))
        .collect()
}

/// Whether `report` is of a run of several targets: more than one run, or one left of
/// several (the others could not take place, each said in a reason of its own).
pub fn of_several_targets(report: &Report) -> bool {
    report.runs.len() > 1 || report.invalid_reasons.iter().any(|w| of_a_target_gone(w))
}

/// Whether `why` says that a target of a comparison could not take place (`nats: the run
/// could not take place: …`): a reason of that target, not of the runs that did.
pub fn of_a_target_gone(why: &str) -> bool {
    why.split_once(": ")
        .is_some_and(|(target, rest)| !target.contains(' ') && rest.starts_with(GONE_BEFORE_IT_RAN))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report_of(transport: &str, invalid: Option<&str>) -> Report {
        let mut r: Report = serde_json::from_str(include_str!(
            "../../../reports/baselines/ci/run-1/report.json"
        ))
        .expect("the committed baseline reads");
        r.runs.truncate(1);
        r.runs[0].transport = transport.to_string();
        r.invalid_reasons = invalid.map(|w| vec![w.to_string()]).unwrap_or_default();
        if invalid.is_some() {
            r.verdict = Verdict::Invalid;
        }
        r
    }

    #[test]
    fn the_one_run_left_of_several_targets_has_only_its_own_reasons() {
        let mut left = report_of("tcp", Some("nats: the run could not take place: refused"));
        assert!(of_several_targets(&left));
        assert!(invalid_reasons_of(&left, "tcp").is_empty());
        left.invalid_reasons
            .push("tcp: the machine was the limit".into());
        assert_eq!(
            invalid_reasons_of(&left, "tcp"),
            ["the machine was the limit"]
        );
        // A run of one target keeps every reason, whatever its words.
        let alone = report_of("tcp", Some("interrupted: a: b"));
        assert!(!of_several_targets(&alone));
        assert_eq!(invalid_reasons_of(&alone, "tcp"), ["interrupted: a: b"]);
    }

    #[test]
    fn an_invalid_run_is_marked_in_the_comparison() {
        let both = combine(vec![
            report_of("nats", None),
            report_of("mqtt", Some("the machine was the limit")),
        ])
        .expect("two runs");
        let table = comparison_table(&both);
        assert!(
            table.contains("mqtt*") && !table.contains("nats*"),
            "{table}"
        );
        assert!(table.contains("(* the run was invalid"), "{table}");
        assert!(
            !table.contains("\nresumed"),
            "no churn, no resumption row: {table}"
        );
        let fine = combine(vec![report_of("nats", None), report_of("tcp", None)]).unwrap();
        assert!(
            !comparison_table(&fine).contains('*'),
            "{}",
            comparison_table(&fine)
        );
    }

    #[test]
    fn a_target_that_lost_messages_is_not_the_quicker_for_it() {
        let tcp = report_of("tcp", None);
        let mut nats = report_of("nats", None);
        let owed = nats.runs[0].counters.expected;
        assert!(owed > 100, "the baseline owes messages");
        nats.runs[0].counters.lost = owed / 20;
        let table = comparison_table(&combine(vec![tcp, nats]).expect("two runs"));
        let row = |name: &str| {
            table
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .map(|l| l[label_width()..].to_string())
                .unwrap_or_default()
        };
        // 5 % lost reaches past the 1 % a p99 leaves out: no figure, no ratio.
        let p99 = row("direct p99");
        assert!(p99.trim_end().ends_with("unbounded (lost)"), "{table}");
        assert!(!p99.contains("x)"), "{table}");
        let html = crate::report::html::render(
            &combine(vec![report_of("tcp", None), {
                let mut n = report_of("nats", None);
                n.runs[0].counters.lost = owed / 20;
                n
            }])
            .expect("two runs"),
        );
        assert!(
            html.contains("unbounded (lost)"),
            "the comparison bars say so too"
        );
    }

    #[test]
    fn a_long_name_widens_its_columns_and_the_rows_stay_aligned() {
        let long = "nats-jetstream-memory-and-more";
        let table = comparison_table(
            &combine(vec![report_of("tcp", None), report_of(long, None)]).expect("two runs"),
        );
        let header = table
            .lines()
            .find(|l| l.trim_end().ends_with(long))
            .expect("a header");
        let row = table
            .lines()
            .find(|l| l.starts_with("direct p50 "))
            .expect("a row");
        assert_eq!(header.chars().count(), row.chars().count(), "{table}");
    }

    #[test]
    fn what_a_target_refused_is_a_row_beside_what_another_lost() {
        let mut mqtt = report_of("mqtt", None);
        mqtt.runs[0].counters.lost = 653;
        let mut mqtt5 = report_of("mqtt-2", None);
        mqtt5.runs[0].counters.rejected = 654;
        let table = comparison_table(&combine(vec![mqtt, mqtt5]).expect("two runs"));
        let row = |name: &str| {
            let line = table.lines().find(|l| l.starts_with(&format!("{name} ")));
            line.map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        };
        assert_eq!(row("lost").as_deref(), Some("653 0 (0x)"), "{table}");
        assert_eq!(row("rejected").as_deref(), Some("0 654"), "{table}");
        assert!(row("corrupted").is_none(), "{table}");
        assert!(row("sent").is_some(), "{table}");
        // What an earlier run left, counted corrupted, shows beside lost.
        let mut held = report_of("b", None);
        held.runs[0].counters.corrupted = 302;
        let both = comparison_table(&combine(vec![report_of("a", None), held]).expect("two runs"));
        assert!(both.contains("\ncorrupted "), "{both}");
        // Nothing refused anywhere: no row.
        let none = combine(vec![report_of("a", None), report_of("b", None)]).expect("two runs");
        assert!(!comparison_table(&none).contains("\nrejected"));
    }

    #[test]
    fn churn_counters_are_rows_where_a_run_has_them() {
        let mut quic = report_of("quic", None);
        quic.runs[0].counters.reconnects = 91;
        quic.runs[0].counters.zero_rtt = 91;
        quic.runs[0].counters.resumed = 91;
        let mut tcp = report_of("tcp", None);
        tcp.runs[0].counters.reconnects = 90;
        let table = comparison_table(&combine(vec![quic, tcp]).expect("two runs"));
        let line = |name: &str| {
            table
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("no {name} row: {table}"))
                .split_whitespace()
                .skip(1)
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(line("reconnects"), "91 90 (0.99x)");
        assert_eq!(line("zero_rtt"), "91 0 (0x)");
        assert_eq!(line("resumed"), "91 0 (0x)");
        assert!(!table.contains("\nmigrations"), "{table}");
        // Another system's clients resume no TLS session of imbench's: not measured, not 0.
        let mut quic = report_of("quic", None);
        quic.runs[0].counters.resumed = 77;
        let mut nats = report_of("nats", None);
        nats.runs[0].target = Some("nats://127.0.0.1:4222".into());
        let mut named = report_of("broker", None);
        named.runs[0].target = Some("broker=mqtt://127.0.0.1:1883?session=persistent".into());
        let table = comparison_table(&combine(vec![quic, nats, named]).expect("three runs"));
        let resumed = table
            .lines()
            .find(|l| l.starts_with("resumed "))
            .unwrap_or_else(|| panic!("no resumed row: {table}"));
        assert_eq!(
            resumed.split_whitespace().skip(1).collect::<Vec<_>>(),
            ["77", "-", "-"],
            "{table}"
        );
    }

    #[test]
    fn a_run_knows_whether_its_clients_were_imbench_s_own() {
        let mut run = report_of("quic", None).runs.remove(0);
        assert!(run.own_clients());
        run.target = Some("imbench+quic://127.0.0.1:4433".into());
        assert!(run.own_clients());
        run.target = Some("ref=imbench+tcp://127.0.0.1:4434".into());
        assert!(run.own_clients());
        run.target = Some("IMBENCH+QUIC://127.0.0.1:4433".into());
        assert!(run.own_clients());
        run.target = Some("xmpp://u:***@127.0.0.1:5222?register=yes".into());
        assert!(!run.own_clients());
        assert_eq!(run.counter_given("resumed"), None);
        assert!(run.counter_given("lost").is_some());
    }
}
