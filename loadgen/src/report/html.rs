//! report.html: one self-contained page for a person. Plots are inline SVG drawn with
//! plotters, styles are inline CSS, and there is no script, font or image from anywhere, so
//! the file opens offline and can be attached to a CI run as it is.
//!
//! What it shows, per report: the verdict; the percentile distribution of each latency metric
//! in the HdrHistogram convention (x is 1/(1−p) on a log axis, so 90 %, 99 %, 99.9 % … are
//! evenly spaced), one line per transport and metric; direct latency (p50, p99) and message
//! rates per second; the counters and SLO verdicts of each run; the scenario and the machine.

use std::fmt::Write as _;

use plotters::prelude::*;

use crate::report::figures::FIGURES;
use crate::report::histogram::decode_histogram;
use crate::report::model::{IntervalPoint, Report, RunReport, Verdict, LATENCY_COLUMNS};

/// Highest percentile plotted: 99.999 %.
const TOP_QUANTILE: f64 = 0.99999;

pub(crate) const WIDTH: u32 = 900;
pub(crate) const HEIGHT: u32 = 420;

/// Line colours, in turn.
pub(crate) const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// Renders `report` as a self-contained HTML page.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let title = format!("imbench: {}", escape(&report.scenario.name));
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body>\n<h1>{title}</h1>\n"
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
    let _ = writeln!(
        out,
        "<p>{} clients, {} over {}; imbench {}</p>",
        report.scenario.clients,
        escape(&humantime::format_duration(report.scenario.duration).to_string()),
        escape(&transports.join(", ")),
        escape(&report.version)
    );

    out.push_str("<h2>Latency distribution</h2>\n");
    out.push_str(
        "<p class=\"note\">Each line is one metric over one transport: the latency (y) below \
         which a fraction p of the samples fall, with p on a log axis of 1/(1−p).</p>\n",
    );
    out.push_str(&percentile_plot(report));

    out.push_str("<h2>Over time</h2>\n");
    out.push_str(
        "<p class=\"note\">Per second of the run (ramp-up, warm-up, measured period and \
         drain): direct latency of the deliveries timed in that second, and messages sent and \
         delivered per second.</p>\n",
    );
    out.push_str(&latency_over_time(report));
    out.push_str(&rates_over_time(report));

    for run in &report.runs {
        run_tables(&mut out, run);
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
    out.push_str("</table>\n</body></html>\n");
    out
}

pub(crate) const STYLE: &str =
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1000px;color:#222}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .8em;border-bottom:1px solid #eee;\
text-align:right}td:first-child,th:first-child{text-align:left}\
.verdict{font-weight:bold;padding:.4em .8em;display:inline-block}.ok{background:#dfd}\
.fail{background:#fdd}.invalid{background:#fec}.note{color:#555;font-size:.9em}\
pre{background:#f6f6f6;padding:1em;overflow:auto}svg{max-width:100%;height:auto}";

fn row(out: &mut String, name: &str, value: &str) {
    let _ = writeln!(
        out,
        "<tr><td>{}</td><td>{}</td></tr>",
        escape(name),
        escape(value)
    );
}

fn run_tables(out: &mut String, run: &RunReport) {
    let _ = writeln!(
        out,
        "<h2>Run over {} ({} server), {:.1} s measured</h2>",
        escape(&run.transport),
        escape(&run.server),
        run.duration_s
    );
    out.push_str("<table><tr><th>latency</th>");
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
    out.push_str("</table>\n<table><tr><th>counter</th><th>value</th></tr>\n");
    for (name, value) in run.counters.each() {
        row(out, name, &value.to_string());
    }
    if let Some(g) = &run.group {
        for (name, value) in g.counts.each() {
            row(out, &format!("group {name}"), &value.to_string());
        }
    }
    row(
        out,
        "sent/s (measured period)",
        &format!("{:.0}", run.throughput.sent_per_s),
    );
    row(
        out,
        "delivered/s (measured period)",
        &format!("{:.0}", run.throughput.delivered_per_s),
    );
    out.push_str("</table>\n");
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
}

/// One line of a plot: its label and its points.
struct Series {
    label: String,
    points: Vec<(f64, f64)>,
}

fn percentile_plot(report: &Report) -> String {
    let mut series = Vec::new();
    for run in &report.runs {
        for name in FIGURES.iter().filter(|f| f.plotted).map(|f| f.name) {
            let Some(summary) = run.metrics.get(name).filter(|m| m.count > 0) else {
                continue;
            };
            let Some(h) = decode_histogram(summary) else {
                continue;
            };
            let mut points = Vec::new();
            for v in h.iter_quantiles(2) {
                let q = v.quantile_iterated_to();
                if q > TOP_QUANTILE {
                    break;
                }
                points.push((1.0 / (1.0 - q), v.value_iterated_to() as f64 / 1000.0));
            }
            points.push((
                1.0 / (1.0 - TOP_QUANTILE),
                h.value_at_quantile(TOP_QUANTILE) as f64 / 1000.0,
            ));
            series.push(Series {
                label: format!("{} {name}", run.transport),
                points,
            });
        }
    }
    let x_max = 1.0 / (1.0 - TOP_QUANTILE);
    draw(
        &series,
        (1.0, x_max),
        true,
        "percentile",
        "latency (ms)",
        |x| {
            // 1/(1−p) = 10^k ↔ p = 1 − 10^−k.
            let p = (1.0 - 1.0 / x) * 100.0;
            if p < 1.0 {
                "0%".to_string()
            } else {
                format!("{}%", trim(p))
            }
        },
    )
}

fn latency_over_time(report: &Report) -> String {
    let mut series = Vec::new();
    for run in &report.runs {
        let p50 = run
            .intervals
            .iter()
            .filter(|i| i.direct_count > 0)
            .map(|i| (i.t_s, i.direct_p50_us as f64 / 1000.0))
            .collect();
        let p99 = run
            .intervals
            .iter()
            .filter(|i| i.direct_count > 0)
            .map(|i| (i.t_s, i.direct_p99_us as f64 / 1000.0))
            .collect();
        series.push(Series {
            label: format!("{} direct p50", run.transport),
            points: p50,
        });
        series.push(Series {
            label: format!("{} direct p99", run.transport),
            points: p99,
        });
    }
    let x_max = span(&series);
    draw(
        &series,
        (0.0, x_max),
        false,
        "seconds",
        "latency (ms)",
        seconds,
    )
}

fn rates_over_time(report: &Report) -> String {
    let mut series = Vec::new();
    for run in &report.runs {
        let rate = |pick: fn(&IntervalPoint) -> u64| {
            run.intervals
                .windows(2)
                .map(|w| {
                    let dt = (w[1].t_s - w[0].t_s).max(1e-3);
                    (
                        w[1].t_s,
                        pick(&w[1]).saturating_sub(pick(&w[0])) as f64 / dt,
                    )
                })
                .collect::<Vec<_>>()
        };
        series.push(Series {
            label: format!("{} sent/s", run.transport),
            points: rate(|i| i.sent),
        });
        series.push(Series {
            label: format!("{} delivered/s", run.transport),
            points: rate(|i| i.delivered),
        });
    }
    let x_max = span(&series);
    draw(
        &series,
        (0.0, x_max),
        false,
        "seconds",
        "per second",
        seconds,
    )
}

fn seconds(x: &f64) -> String {
    if x.fract().abs() < 1e-9 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

fn span(series: &[Series]) -> f64 {
    series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(1.0, f64::max)
}

/// Draws `series` into an SVG string; a plot with no points says so instead.
fn draw(
    series: &[Series],
    x_range: (f64, f64),
    log_x: bool,
    x_label: &str,
    y_label: &str,
    x_format: impl Fn(&f64) -> String,
) -> String {
    let y_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    if series.iter().all(|s| s.points.is_empty()) {
        return "<p class=\"note\">(no samples)</p>\n".to_string();
    }
    let y_top = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    let mut svg = String::new();
    let drawn = (|| -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut builder = ChartBuilder::on(&root);
        builder
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60);
        if log_x {
            let mut chart =
                builder.build_cartesian_2d((x_range.0..x_range.1).log_scale(), 0.0..y_top)?;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(y_label)
                .x_label_formatter(&x_format)
                .draw()?;
            lines(&mut chart, series)?;
        } else {
            let mut chart = builder.build_cartesian_2d(x_range.0..x_range.1, 0.0..y_top)?;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(y_label)
                .x_label_formatter(&x_format)
                .draw()?;
            lines(&mut chart, series)?;
        }
        root.present()?;
        Ok(())
    })();
    svg_or_note(drawn, svg)
}

/// The SVG drawn, or a note saying why drawing it failed.
pub(crate) fn svg_or_note(drawn: Result<(), Box<dyn std::error::Error>>, svg: String) -> String {
    match drawn {
        Ok(()) => svg + "\n",
        Err(e) => format!(
            "<p class=\"note\">(plot failed: {})</p>\n",
            escape(&e.to_string())
        ),
    }
}

fn lines<'a, DB, X>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, plotters::coord::types::RangedCoordf64>>,
    series: &[Series],
) -> Result<(), Box<dyn std::error::Error>>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    X: Ranged<ValueType = f64>,
{
    for (i, s) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                colour.stroke_width(2),
            ))?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
    }
    legend(chart)
}

/// The series' labels, boxed in the upper left.
pub(crate) fn legend<'a, DB, X>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, plotters::coord::types::RangedCoordf64>>,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    X: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    Ok(())
}

fn trim(p: f64) -> String {
    let s = format!("{p:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
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
