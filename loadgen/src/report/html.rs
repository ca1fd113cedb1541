//! report.html: one self-contained page for a person, opened first after a run. Styles, data
//! and scripts are inline (the charts are drawn by uPlot, inlined from a pinned release; see
//! `charts`), and nothing is fetched from anywhere, so the file opens offline and can be
//! attached to a CI run as it is. Without scripts the tables still read.
//!
//! What it shows, in order: the verdict; the figures a person looks at first (rates, lost,
//! the main latencies) and every counter that is not zero, one column per transport or target;
//! with several, a comparison of p50 and p99 as bars; the percentile distribution of each
//! latency, one chart per metric and one line per transport (x is 1/(1−p) on a log axis, the
//! HdrHistogram convention); over time, with the run's phases shaded: clients connected, sent
//! and delivered per second, direct and group latency, schedule lag, errors, refusals and
//! dropped clients per second; then each run's tables, the scenario and the machine.

use std::fmt::Write as _;

use crate::report::charts::{self, align, Chart, Line, Phase, Style, XKind, PALETTE};
use crate::report::figures::FIGURES;
use crate::report::heading::TITLE_PREFIX;
use crate::report::histogram::decode_histogram;
use crate::report::model::{IntervalPoint, Report, RunReport, Verdict, LATENCY_COLUMNS};

/// Highest percentile plotted: 99.999 %, as 1/(1−p) = 10^5.
const TOP_DECADES: u32 = 5;
/// Points per decade of 1/(1−p) on the percentile charts.
const POINTS_PER_DECADE: u32 = 10;

/// Renders `report` as a self-contained HTML page.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let title = format!("{TITLE_PREFIX}{}", escape(&report.scenario.name));
    // The network too, as summary.md's heading names it: a tab of a run over 4g is not one of
    // a run on loopback. (The line under the heading names it on the page.)
    let tab = format!("{title}{}", escape(&report.network_suffix()));
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{tab}</title><style>{STYLE}{}</style></head><body>\n<h1>{title}</h1>\n",
        charts::styles()
    );
    let class = match report.verdict {
        Verdict::Ok => "ok",
        Verdict::SloFailed => "fail",
        Verdict::Invalid => "invalid",
    };
    let _ = writeln!(
        out,
        "<p class=\"verdict {class}\">verdict: {}</p>",
        escape(&report.verdict_line())
    );
    let transports: Vec<&str> = report.runs.iter().map(|r| r.transport.as_str()).collect();
    // What the runs did, which an interrupt makes less than the scenario asked.
    let clients = report
        .runs
        .iter()
        .map(|r| r.counters.clients)
        .max()
        .unwrap_or(0);
    let measured = report.runs.iter().map(|r| r.duration_s).fold(0.0, f64::max);
    // Those that never connected are said beside them, as the text table says them.
    let never = match report
        .runs
        .iter()
        .map(|r| r.counters.connect_failures)
        .max()
        .unwrap_or(0)
    {
        0 => String::new(),
        n => format!(" ({n} never connected)"),
    };
    let _ = writeln!(
        out,
        "<p>{clients} clients{never}, {measured:.1} s measured, over {}{}; imbench {}</p>",
        escape(&transports.join(", ")),
        escape(&report.network_suffix()),
        escape(&report.version)
    );

    out.push_str("<h2>At a glance</h2>\n");
    glance(&mut out, report);
    if report.runs.len() > 1 {
        out.push_str("<h2>Comparison</h2>\n");
        out.push_str(
            "<p class=\"note\">p50 (light) and p99 (dark) of each latency, one bar per run \
             (transport or target), on one scale per metric.</p>\n",
        );
        comparison(&mut out, report);
    }

    let mut all: Vec<Chart> = Vec::new();
    let mut section = |out: &mut String, heading: &str, note: &str, charts: Vec<Chart>| {
        let charts: Vec<Chart> = charts.into_iter().filter(Chart::has_values).collect();
        if charts.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "<h2>{heading}</h2>\n<p class=\"note\">{note}</p>\n<div class=\"grid\">"
        );
        for c in charts {
            out.push_str(&charts::placeholder(all.len(), &escape(&c.title)));
            all.push(c);
        }
        out.push_str("</div>\n");
    };
    section(
        &mut out,
        "Latency distribution",
        "One chart per latency, one line per run (transport or target): the latency (y, ms) below which a \
         fraction p of the measured samples fall, p on a log axis of 1/(1−p). Hover for values; \
         click a legend entry to hide its line; drag to zoom, double-click to zoom out.",
        percentile_charts(report),
    );
    section(
        &mut out,
        "Over time",
        "Per second of the whole run, its phases shaded (ramp-up, warm-up, the measured period, \
         drain). Latencies are those timed in that second; a gap is a second without one.",
        time_charts(report),
    );
    if all.is_empty() {
        out.push_str("<p class=\"note\">(no samples to chart)</p>\n");
    }

    out.push_str("<h2>Each run</h2>\n");
    for run in &report.runs {
        run_tables(&mut out, report, run);
    }

    out.push_str("<h2>Scenario</h2>\n<pre>");
    let scenario = toml::to_string_pretty(&report.scenario)
        .unwrap_or_else(|e| format!("(cannot show the scenario: {e})"));
    out.push_str(&escape(&scenario));
    out.push_str("</pre>\n<h2>Machine</h2>\n<table>");
    let m = &report.machine;
    row(&mut out, "CPUs", &m.cpus.to_string());
    row(&mut out, "OS / arch", &format!("{} / {}", m.os, m.arch));
    if let Some(k) = &m.kernel {
        row(&mut out, "kernel", k);
    }
    if let Some(b) = m.memory_bytes {
        row(&mut out, "memory", &format!("{} MiB", b / (1024 * 1024)));
    }
    out.push_str("</table>\n");
    out.push_str(&charts::scripts(&all, &phases(report)));
    out.push_str("</body></html>\n");
    out
}

pub(crate) const STYLE: &str =
    "body{font-family:system-ui,sans-serif;margin:2em auto;padding:0 1em;max-width:1200px;color:#222}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .8em;border-bottom:1px solid #eee;white-space:nowrap;\
text-align:right}td:first-child,th:first-child{text-align:left}\
.verdict{font-weight:bold;padding:.4em .8em;display:inline-block}.ok{background:#dfd}\
.fail{background:#fdd}.invalid{background:#fec}.note{color:#555;font-size:.9em}\
pre{background:#f6f6f6;padding:1em;overflow:auto}\
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,480px),1fr));gap:1em}\
.chart{margin:0;min-width:0}.chart figcaption{font-weight:bold;font-size:.95em}.plot{width:100%}\
.bar{display:inline-block;height:.8em;vertical-align:middle;margin-right:.4em}\
td.bars{text-align:left;width:60%}.steps td:last-child,.steps th:last-child{text-align:left}.wide{overflow-x:auto}details{margin:.5em 0}";

fn row(out: &mut String, name: &str, value: &str) {
    let _ = writeln!(
        out,
        "<tr><td>{}</td><td>{}</td></tr>",
        escape(name),
        escape(value)
    );
}

/// The colour of run `i` on every chart and bar of the page.
fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// A rate of `run`'s measured period; `-` for a run stopped before that period began.
fn measured_rate(run: &RunReport, rate: f64) -> String {
    if run.duration_s > 0.0 {
        format!("{rate:.0}")
    } else {
        "-".into()
    }
}

/// A table with one column per run: the headline figures, then every counter that is not zero
/// in some run; the counters that are zero everywhere are listed below it, folded.
fn glance(out: &mut String, report: &Report) {
    let runs = &report.runs;
    let mut rows: Vec<(String, Vec<String>)> = vec![
        (
            "verdict".into(),
            runs.iter()
                .map(|r| run_verdict(report, r).0.to_string())
                .collect(),
        ),
        (
            "sent/s (measured period)".into(),
            runs.iter()
                .map(|r| measured_rate(r, r.throughput.sent_per_s))
                .collect(),
        ),
        (
            "delivered/s (measured period)".into(),
            runs.iter()
                .map(|r| measured_rate(r, r.throughput.delivered_per_s))
                .collect(),
        ),
    ];
    // Each run's own percentiles are of the messages delivered; beside the Comparison's,
    // judged over every message owed, a run that lost some says which these are.
    let of_delivered = if runs.iter().any(|r| r.counters.lost > 0) {
        " (of those delivered)"
    } else {
        ""
    };
    for f in FIGURES.iter().filter(|f| f.plotted) {
        let shown: Vec<Option<&crate::report::model::MetricSummary>> = runs
            .iter()
            .map(|r| r.metrics.get(f.name).filter(|m| m.count > 0))
            .collect();
        if shown.iter().any(Option::is_some) {
            let cell = |m: &Option<&crate::report::model::MetricSummary>, p99: bool| {
                m.map_or("-".to_string(), |m| {
                    let c = m.cells();
                    if p99 {
                        c[3].clone()
                    } else {
                        c[1].clone()
                    }
                })
            };
            rows.push((
                format!("{} p50 / p99{of_delivered}", f.name),
                shown
                    .iter()
                    .map(|m| format!("{} / {}", cell(m, false), cell(m, true)))
                    .collect(),
            ));
        }
    }
    if runs.iter().any(|r| r.files.is_some()) {
        // As the terminal's `files:` line gives them (see `RunReport::accounting_lines`).
        rows.push((
            "file MiB/s verified (measured period)".into(),
            runs.iter()
                .map(|r| format!("{:.1}", r.throughput.file_bytes_per_s / (1024.0 * 1024.0)))
                .collect(),
        ));
        rows.push((
            "per-file MiB/s p50 / min / max".into(),
            runs.iter()
                .map(|r| match r.files.as_ref().and_then(|f| f.speeds_mib_s()) {
                    Some([p50, min, max]) => format!("{p50:.1} / {min:.1} / {max:.1}"),
                    None => "-".to_string(),
                })
                .collect(),
        ));
    }
    let mut zero: Vec<&str> = Vec::new();
    for name in crate::report::figures::Counters::NAMES {
        // A counter another system's clients cannot count is "-" for its run, not 0.
        let values: Vec<Option<u64>> = runs.iter().map(|r| r.counter_given(name)).collect();
        if values.iter().all(Option::is_none) {
            continue;
        }
        if values.iter().flatten().all(|&v| v == 0) {
            zero.push(name);
        } else {
            rows.push((
                name.to_string(),
                values
                    .iter()
                    .map(|v| v.map_or("-".to_string(), |v| v.to_string()))
                    .collect(),
            ));
        }
    }
    out.push_str("<div class=\"wide\"><table><tr><th></th>");
    for (i, r) in runs.iter().enumerate() {
        let _ = write!(
            out,
            "<th><span class=\"bar\" style=\"width:.8em;background:{}\"></span>{}</th>",
            colour(i),
            escape(&r.transport)
        );
    }
    out.push_str("</tr>\n");
    for (name, cells) in rows {
        let _ = write!(out, "<tr><td>{}</td>", escape(&name));
        for c in cells {
            let _ = write!(out, "<td>{}</td>", escape(&c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table></div>\n");
    if !zero.is_empty() {
        let _ = writeln!(
            out,
            "<details><summary>{} counters are 0 in every run that counts them</summary><p>{}</p></details>",
            zero.len(),
            escape(&zero.join(", "))
        );
    }
}

/// Bars of p50 and p99 per latency and run, on one scale per latency. The figures are judged
/// as an SLO judges them (a target that lost messages is not the quicker for it); an unbounded
/// one gets the whole bar.
fn comparison(out: &mut String, report: &Report) {
    use crate::report::comparison::{judged_percentile, show_judged};
    out.push_str(
        "<div class=\"wide\"><table><tr><th>latency</th><th>run</th><th>p50 / p99</th></tr>\n",
    );
    for f in FIGURES.iter().filter(|f| f.compared) {
        let found: Vec<(usize, &RunReport, f64, f64)> = report
            .runs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let p50 = judged_percentile(r, f.name, "p50")?;
                let p99 = judged_percentile(r, f.name, "p99")?;
                Some((i, r, p50, p99))
            })
            .collect();
        let top = found
            .iter()
            .map(|&(_, _, _, p99)| p99)
            .filter(|v| v.is_finite())
            .fold(1.0, f64::max);
        for (n, &(i, r, p50, p99)) in found.iter().enumerate() {
            // At most 75 % of the cell, so the figure beside the bar stays on its line.
            let width = |v: f64| (v / top * 75.0).clamp(0.5, 75.0);
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"bars\">\
                 <span class=\"bar\" style=\"width:{:.1}%;background:{};opacity:.45\"></span>{}<br>\
                 <span class=\"bar\" style=\"width:{:.1}%;background:{}\"></span>{}</td></tr>",
                if n == 0 {
                    escape(f.name)
                } else {
                    String::new()
                },
                escape(&r.transport),
                width(p50),
                colour(i),
                escape(&show_judged(p50)),
                width(p99),
                colour(i),
                escape(&show_judged(p99)),
            );
        }
    }
    out.push_str("</table></div>\n");
}

/// One chart per plotted latency with samples, one line per run. A line stops at the highest
/// percentile its sample count resolves (1/(1−p) at most the count: the 99.9th of 200 samples
/// would only repeat the largest).
fn percentile_charts(report: &Report) -> Vec<Chart> {
    let top = 10f64.powi(TOP_DECADES as i32);
    FIGURES
        .iter()
        .filter(|f| f.plotted)
        .map(|f| {
            let found: Vec<(usize, &RunReport, hdrhistogram::Histogram<u64>)> = report
                .runs
                .iter()
                .enumerate()
                .filter_map(|(i, run)| {
                    let summary = run.metrics.get(f.name).filter(|m| m.count > 0)?;
                    Some((i, run, decode_histogram(summary)?))
                })
                .collect();
            let reach = found
                .iter()
                .map(|(_, _, h)| h.len() as f64)
                .fold(1.0, f64::max)
                .min(top);
            let x: Vec<f64> = (0..=TOP_DECADES * POINTS_PER_DECADE)
                .map(|k| 10f64.powf(f64::from(k) / f64::from(POINTS_PER_DECADE)))
                .filter(|v| *v <= reach * (1.0 + 1e-9))
                .collect();
            Chart {
                title: format!("{} latency by percentile", f.name),
                x_kind: XKind::Percentile,
                x_label: "percentile".into(),
                y_label: "ms".into(),
                lines: found
                    .iter()
                    .map(|(i, run, h)| {
                        let count = h.len() as f64;
                        // The line ends before the largest sample: the legend names both.
                        Line::new(
                            format!(
                                "{} ({} samples, max {})",
                                run.transport,
                                h.len(),
                                crate::config::slo::three_digits(h.max() as f64)
                            ),
                            colour(*i),
                            Style::Line,
                            x.iter()
                                .map(|v| {
                                    (*v <= count * (1.0 + 1e-9))
                                        .then(|| h.value_at_quantile(1.0 - 1.0 / v) as f64 / 1000.0)
                                })
                                .collect(),
                        )
                    })
                    .collect(),
                x,
                mark_x: None,
                thresholds: Vec::new(),
            }
        })
        .collect()
}

/// A rate over less than this would be mostly noise: such a row (the last, shorter one) is
/// joined to the next, or left out at the end.
const MIN_RATE_SPAN_S: f64 = 0.25;

/// Interval rows are placed on the charts' x axis to this resolution, seconds.
const TIME_RESOLUTION_S: f64 = 0.1;

/// A series over time before alignment: (second, value, or `None` for a gap).
struct Series {
    label: String,
    colour: &'static str,
    style: Style,
    points: Vec<(f64, Option<f64>)>,
}

/// A gauge at each row of the run, the last, shorter one too.
fn gauge(run: &RunReport, pick: impl Fn(&IntervalPoint) -> Option<f64>) -> Vec<(f64, Option<f64>)> {
    run.intervals.iter().map(|p| (p.t_s, pick(p))).collect()
}

/// Schedule lag's p99 in ms at each row, or a gap where nothing was sent since the row before
/// (a row keeps 0 then, which is no lag measured, not no lag).
fn lag(run: &RunReport) -> Vec<(f64, Option<f64>)> {
    let mut sent = 0;
    run.intervals
        .iter()
        .map(|p| {
            let any = p.sent > sent;
            sent = p.sent;
            (p.t_s, any.then(|| p.lag_p99_us as f64 / 1000.0))
        })
        .collect()
}

/// A counter so far, as a rate per second over the span since the row before.
fn rate(run: &RunReport, pick: Counter) -> Vec<(f64, Option<f64>)> {
    let (mut since, mut before) = (0.0, 0);
    let mut out = Vec::new();
    for p in &run.intervals {
        let span = p.t_s - since;
        if span < MIN_RATE_SPAN_S {
            continue;
        }
        let now = pick(p);
        out.push((p.t_s, Some(now.saturating_sub(before) as f64 / span)));
        (since, before) = (p.t_s, now);
    }
    out
}

/// A latency in ms from a row, or a gap where the row timed none.
fn latency_ms(count: Counter, us: Counter) -> impl Fn(&IntervalPoint) -> Option<f64> {
    move |p| (count(p) > 0).then(|| us(p) as f64 / 1000.0)
}

/// A chart over time of `series`, from 0 s so a ramp-up or warm-up shorter than a second is
/// shaded too.
fn time_chart(title: &str, y_label: &str, series: Vec<Series>) -> Chart {
    let mut points: Vec<Vec<(f64, Option<f64>)>> = vec![vec![(0.0, None)]];
    points.extend(series.iter().map(|s| s.points.clone()));
    let (x, mut values) = align(&points, TIME_RESOLUTION_S);
    values.remove(0);
    Chart {
        title: title.to_string(),
        x_kind: XKind::Seconds,
        x_label: "seconds".into(),
        y_label: y_label.into(),
        x,
        lines: series
            .into_iter()
            .zip(values)
            .map(|(s, v)| Line::aligned(s.label, s.colour, s.style, v))
            .collect(),
        mark_x: None,
        thresholds: Vec::new(),
    }
}

/// A counter of an interval row.
type Counter = fn(&IntervalPoint) -> u64;

/// The series one run adds to a chart, given its colour and a namer of its lines.
type RunSeries<'a> = &'a dyn Fn(&'static str, &dyn Fn(&str) -> String, &RunReport) -> Vec<Series>;

/// Charts over time, one line (or a pair) per run.
fn time_charts(report: &Report) -> Vec<Chart> {
    let runs = &report.runs;
    let each = |f: RunSeries| {
        runs.iter()
            .enumerate()
            .flat_map(|(i, r)| {
                let name = |what: &str| {
                    if runs.len() > 1 {
                        format!("{} {what}", r.transport)
                    } else {
                        what.to_string()
                    }
                };
                f(colour(i), &name, r)
            })
            .collect::<Vec<_>>()
    };
    let one = |label: String, colour, style, points| Series {
        label,
        colour,
        style,
        points,
    };
    vec![
        time_chart(
            "Clients connected",
            "clients",
            each(&|c, name, r| {
                // No one is connected at 0 s; a run without rows (a merge) has no line at all.
                let mut points = Vec::new();
                if !r.intervals.is_empty() {
                    points.push((0.0, Some(0.0)));
                }
                points.extend(gauge(r, |p| Some(p.connected as f64)));
                vec![one(name("connected"), c, Style::Line, points)]
            }),
        ),
        // Delivered first, so the dashed line of sent is drawn over it where they agree.
        time_chart(
            "Messages sent (dashed) and delivered per second",
            "per second",
            each(&|c, name, r| {
                vec![
                    one(
                        name("delivered/s"),
                        c,
                        Style::Line,
                        rate(r, |p| p.delivered),
                    ),
                    one(name("sent/s"), c, Style::Dashed, rate(r, |p| p.sent)),
                ]
            }),
        ),
        time_chart(
            "Direct latency: p99 and p50 (dashed)",
            "ms",
            each(&|c, name, r| {
                vec![
                    one(
                        name("direct p99"),
                        c,
                        Style::Line,
                        gauge(r, latency_ms(|p| p.direct_count, |p| p.direct_p99_us)),
                    ),
                    one(
                        name("direct p50"),
                        c,
                        Style::Dashed,
                        gauge(r, latency_ms(|p| p.direct_count, |p| p.direct_p50_us)),
                    ),
                ]
            }),
        ),
        time_chart(
            "Group latency p99",
            "ms",
            each(&|c, name, r| {
                vec![one(
                    name("group p99"),
                    c,
                    Style::Line,
                    gauge(r, latency_ms(|p| p.group_count, |p| p.group_p99_us)),
                )]
            }),
        ),
        time_chart(
            "Schedule lag p99 (how late the generator sent)",
            "ms",
            each(&|c, name, r| vec![one(name("lag p99"), c, Style::Line, lag(r))]),
        ),
        time_chart(
            "Errors (solid), refusals (dashed) and dropped clients (dots) per second",
            "per second",
            each(&|c, name, r| {
                let kinds: [(&str, Style, Counter); 3] = [
                    ("errors/s", Style::Line, |p| p.errors),
                    ("refused/s", Style::Dashed, |p| p.refused),
                    ("dropped/s", Style::Dots, |p| p.dropped),
                ];
                kinds
                    .into_iter()
                    .filter(|(_, _, pick)| r.intervals.iter().any(|p| pick(p) > 0))
                    .map(|(what, style, pick)| one(name(what), c, style, rate(r, pick)))
                    .collect()
            }),
        ),
    ]
}

/// The run's phases as planned by its scenario; the drain runs to the last second recorded.
fn phases(report: &Report) -> Vec<Phase> {
    let s = &report.scenario;
    let end = report
        .runs
        .iter()
        .filter_map(|r| r.intervals.last().map(|p| p.t_s))
        .fold(0.0, f64::max);
    let ramp = s.ramp_up.as_secs_f64();
    let warm = ramp + s.warmup.as_secs_f64();
    let measured = warm + s.duration.as_secs_f64();
    vec![
        Phase {
            name: "ramp-up",
            from_s: 0.0,
            to_s: ramp,
        },
        Phase {
            name: "warm-up",
            from_s: ramp,
            to_s: warm,
        },
        Phase {
            name: "measured",
            from_s: warm,
            to_s: measured,
        },
        Phase {
            name: "drain",
            from_s: measured,
            to_s: end.max(measured),
        },
    ]
}

/// One run's verdict, as a word and the page's class for its colour: invalid (for the
/// reasons the report gives it), SLO FAILED, or OK.
fn run_verdict(report: &Report, run: &RunReport) -> (&'static str, &'static str) {
    if !crate::report::comparison::invalid_reasons_of(report, &run.transport).is_empty() {
        ("INVALID", "invalid")
    } else if run.slo.iter().any(|s| !s.ok) {
        ("SLO FAILED", "fail")
    } else {
        ("OK", "ok")
    }
}

fn run_tables(out: &mut String, report: &Report, run: &RunReport) {
    let (word, class) = run_verdict(report, run);
    let _ = writeln!(
        out,
        "<h3>{} ({}), {:.1} s measured: <span class=\"{class}\">{word}</span></h3>",
        escape(&run.transport),
        escape(&run.against()),
        run.duration_s
    );
    let reasons = crate::report::comparison::invalid_reasons_of(report, &run.transport);
    if !reasons.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"invalid\">Invalid: {}</p>",
            escape(&reasons.join("; "))
        );
    }
    out.push_str("<div class=\"wide\"><table><tr><th>latency</th>");
    for column in LATENCY_COLUMNS {
        let _ = write!(out, "<th>{column}</th>");
    }
    out.push_str("</tr>\n");
    for (name, m) in run.latency_rows() {
        let _ = write!(out, "<tr><td>{}</td>", escape(&name));
        for cell in m.cells() {
            let _ = write!(out, "<td>{}</td>", escape(&cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table></div>\n");
    if let Some(g) = &run.group {
        out.push_str("<details><summary>group counts</summary><table>\n");
        for (name, value) in g.counts.each() {
            row(out, &format!("group {name}"), &value.to_string());
        }
        out.push_str("</table></details>\n");
    }
    if !run.slo.is_empty() {
        out.push_str("<table><tr><th>SLO</th><th>value</th><th>verdict</th></tr>\n");
        for s in &run.slo {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                escape(&s.expr),
                escape(&s.value),
                if s.ok { "ok" } else { "fail" },
                if s.ok { "ok" } else { "FAIL" }
            );
        }
        out.push_str("</table>\n");
    }
    if !run.problems.is_empty() {
        out.push_str("<p>Problems:</p><ul>");
        for p in &run.problems {
            let _ = write!(out, "<li>{}</li>", escape(p));
        }
        out.push_str("</ul>\n");
    }
    if !run.notes.is_empty() {
        out.push_str("<p>Notes:</p><ul>");
        for n in &run.notes {
            let _ = write!(out, "<li>{}</li>", escape(n));
        }
        out.push_str("</ul>\n");
    }
}

/// Escapes text for HTML.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::histogram::summarize;

    fn baseline() -> Report {
        serde_json::from_str(include_str!(
            "../../../reports/baselines/ci/run-1/report.json"
        ))
        .expect("the committed baseline reads")
    }

    fn histogram_of(samples: u64) -> hdrhistogram::Histogram<u64> {
        let mut h = hdrhistogram::Histogram::new(3).expect("a histogram");
        for v in 1..=samples {
            h.record(v * 10).expect("in range");
        }
        h
    }

    fn point(t_s: f64, connected: u64, delivered: u64, direct_count: u64) -> IntervalPoint {
        IntervalPoint {
            t_s,
            connected,
            delivered,
            sent: delivered,
            direct_count,
            direct_p99_us: 2000,
            ..IntervalPoint::default()
        }
    }

    #[test]
    fn a_percentile_line_stops_at_what_its_samples_resolve() {
        let mut report = baseline();
        report.runs.truncate(1);
        let mut second = report.runs[0].clone();
        second.transport = "tcp".into();
        report.runs[0]
            .metrics
            .insert("direct".into(), summarize(&histogram_of(50)));
        second
            .metrics
            .insert("direct".into(), summarize(&histogram_of(2_000)));
        report.runs.push(second);
        let charts = percentile_charts(&report);
        let direct = charts
            .iter()
            .find(|c| c.title.starts_with("direct "))
            .expect("a direct chart");
        // The axis reaches the larger count's resolution (1/(1−p) ≤ 2,000), not 99.999 %.
        let last = *direct.x.last().expect("points");
        assert!((1_000.0..=2_000.0).contains(&last), "{last}");
        let reached = |l: &Line| {
            let i = l.values.iter().rposition(Option::is_some).expect("values");
            direct.x[i]
        };
        assert!(reached(&direct.lines[0]) <= 50.0, "{:?}", direct.lines[0]);
        assert!(reached(&direct.lines[0]) >= 25.0, "{:?}", direct.lines[0]);
        assert_eq!(reached(&direct.lines[1]), last);
    }

    #[test]
    fn time_charts_start_at_zero_and_keep_the_last_short_interval() {
        let mut report = baseline();
        report.runs.truncate(1);
        report.runs[0].intervals = vec![
            point(1.0, 10, 100, 5),
            point(2.0, 10, 300, 0),
            point(3.0, 10, 500, 5),
            point(3.1, 10, 520, 5),
            point(3.6, 8, 620, 5),
        ];
        let charts = time_charts(&report);
        let find = |t: &str| {
            charts
                .iter()
                .find(|c| c.title.starts_with(t))
                .expect("the chart")
        };
        let clients = find("Clients");
        assert_eq!(clients.x.first(), Some(&0.0));
        assert_eq!(clients.lines[0].values.first(), Some(&Some(0.0)));
        assert_eq!(clients.x.last(), Some(&3.6));
        assert_eq!(clients.lines[0].values.last(), Some(&Some(8.0)));

        // Rates: the 0.1 s row is joined to the next, so the last rate is over 0.6 s.
        let rates = find("Messages");
        assert_eq!(rates.lines[0].label, "delivered/s");
        let delivered: Vec<(f64, f64)> = rates
            .x
            .iter()
            .zip(&rates.lines[0].values)
            .filter_map(|(x, v)| Some((*x, (*v)?)))
            .collect();
        assert_eq!(delivered.len(), 4, "{delivered:?}");
        assert_eq!(delivered[0], (1.0, 100.0));
        let (t, r) = delivered[3];
        assert!(
            (t - 3.6).abs() < 1e-9 && (r - 200.0).abs() < 1e-6,
            "{t} {r}"
        );
        // 0 s and 3.1 s are points other lines have; this one passes them over.
        assert!(rates.lines[0].absent.contains(&0), "{:?}", rates.lines[0]);

        // A second without a sample is a gap, not a point passed over.
        let direct = find("Direct");
        let at_two = direct.x.iter().position(|x| *x == 2.0).expect("2 s");
        assert_eq!(direct.lines[0].values[at_two], None);
        assert!(!direct.lines[0].absent.contains(&at_two));
    }

    #[test]
    fn lag_is_a_gap_where_nothing_was_sent_and_no_rows_draw_nothing() {
        let mut report = baseline();
        report.runs.truncate(1);
        let mut rows = vec![point(1.0, 10, 0, 0), point(2.0, 10, 100, 5)];
        rows[1].lag_p99_us = 250;
        report.runs[0].intervals = rows;
        let lag = lag(&report.runs[0]);
        assert_eq!(lag, vec![(1.0, None), (2.0, Some(0.25))]);
        report.runs[0].intervals.clear();
        assert!(
            time_charts(&report).iter().all(|c| !c.has_values()),
            "a merged report has no rows"
        );
    }

    #[test]
    fn file_speeds_are_on_the_page_where_a_run_sent_files() {
        let mut report = baseline();
        report.runs.truncate(1);
        assert!(!render(&report).contains("per-file MiB/s"));
        let mut with_files = report.runs[0].clone();
        with_files.transport = "tcp".into();
        with_files.throughput.file_bytes_per_s = 3.0 * 1024.0 * 1024.0;
        with_files.files = Some(crate::report::model::FileReport {
            bytes_verified: 1 << 20,
            throughput_kib_s: crate::report::model::MetricSummary {
                count: 2,
                min_us: 1024,
                p50_us: 2048,
                max_us: 4096,
                ..Default::default()
            },
        });
        report.runs.push(with_files);
        let page = render(&report);
        assert!(
            page.contains(
                "<td>per-file MiB/s p50 / min / max</td><td>-</td><td>2.0 / 1.0 / 4.0</td>"
            ),
            "{page}"
        );
        assert!(page.contains("<td>3.0</td>"), "{page}");
    }

    #[test]
    fn each_run_says_its_own_verdict_and_the_header_what_was_measured() {
        let mut report = baseline();
        report.runs.truncate(1);
        let mut tcp = report.runs[0].clone();
        tcp.transport = "tcp".into();
        tcp.duration_s = 1.5;
        report.runs[0].transport = "quic".into();
        report.runs.push(tcp);
        report.invalid_reasons = vec!["tcp: the machine was the limit".into()];
        report.verdict = Verdict::Invalid;
        let page = render(&report);
        assert!(
            page.contains("<span class=\"invalid\">INVALID</span></h3>"),
            "tcp's heading"
        );
        assert!(page.contains("Invalid: the machine was the limit"));
        assert_eq!(
            page.matches("<span class=\"ok\">OK</span></h3>").count(),
            1,
            "quic's"
        );
        let measured = report.runs[0].duration_s.max(1.5);
        assert!(page.contains(&format!("{measured:.1} s measured, over quic, tcp")));
    }
}
