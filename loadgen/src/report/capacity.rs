//! A capacity search's report: every step's figures (`capacity.json`), the table printed at the
//! end, `capacity.md` for a person or a CI summary, and `capacity.html` with the capacity
//! curve: p50 and p99 of the latency the SLOs look at, against the rate sent and the rate
//! delivered, with the SLO's line and the highest load that held marked.
//!
//! The search itself (which loads to try) is `run::capacity`; this module only describes what
//! it found, so `imbench report` can render a search's folder again without running anything.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::slo::{format_micros, Op, Slo, Target};
use crate::measure::metrics::Metric;
use crate::report::charts::{self, placeholder, scripts, Chart, Line, Style, XKind, PALETTE};
use crate::report::figures::FANOUT;
use crate::report::heading::TITLE_PREFIX;
use crate::report::html::{escape, STYLE};
use crate::report::{Report, Verdict};

/// How a run stopped because every client lost its connection says so, after the count: a
/// search tells a server that went away by it.
pub const EVERY_CONNECTION_LOST: &str =
    "lost its connection: the server is gone, or closed them all";

/// One step's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    /// Factor applied to the scenario's rates.
    pub load: f64,
    /// Direct messages per second per client offered.
    pub direct_rate: f64,
    /// Messages per second per group offered.
    pub group_rate: f64,
    /// Messages sent per second in the measured period (the offered load: sends follow the
    /// schedule, not the answers).
    pub sent_per_s: f64,
    /// Deliveries per second in the measured period.
    pub delivered_per_s: f64,
    /// p50 of `direct`, µs (0 when the metric had no samples; 0 too in searches written before
    /// the p50s were kept).
    #[serde(default)]
    pub direct_p50_us: u64,
    /// p99 of `direct`, µs (0 when the metric had no samples).
    pub direct_p99_us: u64,
    /// p50 of `group`, µs.
    #[serde(default)]
    pub group_p50_us: u64,
    /// p99 of `group`, µs.
    pub group_p99_us: u64,
    /// p50 of `fanout`, µs.
    #[serde(default)]
    pub fanout_p50_us: u64,
    /// p99 of `fanout`, µs.
    pub fanout_p99_us: u64,
    /// Expected deliveries that never arrived.
    pub lost: u64,
    /// The step's verdict.
    pub verdict: Verdict,
    /// SLOs that failed and reasons the run was invalid.
    pub why: Vec<String>,
    /// Where the step's report went: its folder's name, beside capacity.json (an absolute
    /// path in searches written before the names were kept relative).
    pub report: Option<PathBuf>,
    /// True when the step tried its load again because the machine alone spoiled the try
    /// before (not kept in searches written before).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub again: bool,
    /// The timer the step's sends waited on (`auto` picks by rate, so steps can differ; not
    /// kept in searches written before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timer: Option<crate::config::scenario::TimerKind>,
}

impl Step {
    /// The figures of a step run at `load`, from its report (written to `dir`, if anywhere:
    /// only its name is kept, so the search's folder can be moved).
    pub fn from_report(load: f64, r: &Report, dir: Option<PathBuf>) -> Self {
        let run = &r.runs[0];
        let stat = |m: &str, p50: bool| {
            run.metrics
                .get(m)
                .map_or(0, |m| if p50 { m.p50_us } else { m.p99_us })
        };
        let mut why: Vec<String> = r.invalid_reasons.clone();
        // A step stopped before it measured anything missed its SLOs for that alone: the
        // reason it stopped says all there is.
        let measured = run.duration_s > 0.0 || r.verdict != Verdict::Invalid;
        why.extend(
            run.slo
                .iter()
                .filter(|s| !s.ok && measured)
                .map(|s| format!("{} was {}", s.expr, s.value)),
        );
        Self {
            load,
            direct_rate: r.scenario.direct.rate,
            // A rate without groups to send to offers nothing.
            group_rate: if r.scenario.groups.count > 0 {
                r.scenario.groups.rate
            } else {
                0.0
            },
            sent_per_s: run.throughput.sent_per_s,
            delivered_per_s: run.throughput.delivered_per_s,
            direct_p50_us: stat(Metric::Direct.name(), true),
            direct_p99_us: stat(Metric::Direct.name(), false),
            group_p50_us: stat(Metric::Group.name(), true),
            group_p99_us: stat(Metric::Group.name(), false),
            fanout_p50_us: stat(FANOUT, true),
            fanout_p99_us: stat(FANOUT, false),
            lost: run.counters.lost,
            verdict: r.verdict,
            why,
            report: dir.map(|d| d.file_name().map_or(d.clone(), PathBuf::from)),
            timer: run.timer,
            again: false,
        }
    }

    /// Whether the step held.
    pub fn held(&self) -> bool {
        self.verdict == Verdict::Ok
    }

    /// True when the step was invalid for the machine's reasons alone (its CPUs, its pauses),
    /// with every SLO held: the load may well hold on another try.
    pub fn spoiled_by_machine(&self) -> bool {
        self.verdict == Verdict::Invalid
            && !self.why.is_empty()
            && self
                .why
                .iter()
                .all(|w| crate::measure::cpu_use::is_the_machines(w))
    }

    /// True when the step's run stopped because every client lost its connection: the
    /// server went away, or closed them all.
    pub fn lost_every_connection(&self) -> bool {
        self.verdict == Verdict::Invalid
            && self.why.iter().any(|w| w.contains(EVERY_CONNECTION_LOST))
    }

    /// p50 and p99 of one of the latencies a step keeps, µs.
    fn latency(&self, metric: &str) -> Option<(u64, u64)> {
        match metric {
            m if m == Metric::Direct.name() => Some((self.direct_p50_us, self.direct_p99_us)),
            m if m == Metric::Group.name() => Some((self.group_p50_us, self.group_p99_us)),
            FANOUT => Some((self.fanout_p50_us, self.fanout_p99_us)),
            _ => None,
        }
    }
}

/// The latencies a step keeps, in the order they are shown.
const KEPT: [&str; 3] = [Metric::Direct.name(), Metric::Group.name(), FANOUT];

/// The search's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Capacity {
    /// The scenario's name.
    pub scenario: String,
    /// SLOs every step had to meet.
    pub slo: Vec<String>,
    /// Every step, in the order run.
    pub steps: Vec<Step>,
    /// Index into `steps` of the highest load that held, if any did.
    pub highest_held: Option<usize>,
    /// Whether a failing step was found above it (otherwise the search ran out of steps and
    /// the capacity is at least the highest step).
    pub bounded: bool,
    /// Whether the scenario has groups.
    pub groups: bool,
    /// Whether the search was interrupted (Ctrl-C): the loads above its last step were never
    /// tried, and that step was cut short unless `last_step_whole`.
    #[serde(default)]
    pub interrupted: bool,
    /// Whether the interrupt came once the last step had measured all it was to (while it
    /// wrote its report, or between steps): that step is whole and counts. Searches written
    /// before this was kept have their last step cut short when interrupted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub last_step_whole: bool,
    /// Why the search stopped growing before any step failed: it ran out of steps
    /// (`--max-steps`), the next load would have asked for more than a scenario may, or the
    /// machine spoiled every try at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Whether the machine, not the load, ended the search: every try at the load above the
    /// highest that held was invalid for the machine's reasons alone (`stopped` says so).
    #[serde(default)]
    pub machine: bool,
    /// Whether a step could not run at all (the server went away between steps, say): the
    /// loads above the highest that held are not known, and `stopped` says why.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cut_off: bool,
}

/// The file names a search writes beside its step folders.
pub const CAPACITY_JSON: &str = "capacity.json";
/// The Markdown summary.
pub const CAPACITY_MD: &str = "capacity.md";
/// The page with the capacity curve.
pub const CAPACITY_HTML: &str = "capacity.html";

/// Whether step `i` of `len` run is the one an interrupt cut short: the last, when `cut_last`
/// (the search was interrupted while that step measured). Its figures are partial whatever
/// they show, so it is neither the capacity nor plotted.
fn cut_short(cut_last: bool, len: usize, i: usize) -> bool {
    cut_last && i + 1 == len
}

/// Index of the highest load that held among `steps`, leaving out the last when an interrupt
/// cut it short (`cut_last`).
pub fn highest_held(steps: &[Step], cut_last: bool) -> Option<usize> {
    steps
        .iter()
        .enumerate()
        .filter(|(i, s)| s.held() && !cut_short(cut_last, steps.len(), *i))
        .max_by(|a, b| a.1.load.total_cmp(&b.1.load))
        .map(|(i, _)| i)
}

impl Capacity {
    /// The step with the highest load that held.
    pub fn best(&self) -> Option<&Step> {
        self.highest_held
            .and_then(|i| self.steps.get(i))
            .filter(|s| s.held())
    }

    /// The search's verdict, what `imbench run --find-max` and `imbench report` exit with:
    /// OK when a load held and the search ended by itself; the first step's verdict when
    /// none held; invalid when it was interrupted, when the machine ended it, or when a step
    /// could not run.
    pub fn verdict(&self) -> Verdict {
        if self.interrupted || self.machine || self.cut_off {
            return Verdict::Invalid;
        }
        match (self.best(), self.steps.first()) {
            (Some(_), _) => Verdict::Ok,
            (None, Some(first)) => first.verdict,
            (None, None) => Verdict::Invalid,
        }
    }

    /// Whether step `i` is the one an interrupt cut short.
    fn cut_short(&self, i: usize) -> bool {
        cut_short(self.last_step_cut(), self.steps.len(), i)
    }

    /// Whether an interrupt cut the last step short.
    pub fn last_step_cut(&self) -> bool {
        self.interrupted && !self.last_step_whole
    }

    /// Reads `capacity.json`'s text.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        let capacity: Self = serde_json::from_str(text)?;
        // The answer is the steps' own: one that names another step (an index edited by
        // hand) would be printed beside steps that contradict it.
        let held = highest_held(&capacity.steps, capacity.last_step_cut());
        if capacity.highest_held != held {
            // The file's index counts from 0; the table and the step folders from 1.
            let show = |i: Option<usize>| {
                i.map_or("none".to_string(), |i| format!("{i} (step {})", i + 1))
            };
            return Err(<serde_json::Error as serde::de::Error>::custom(format!(
                "highest_held is {} where its steps give {}: the file was changed",
                show(capacity.highest_held),
                show(held)
            )));
        }
        Ok(capacity)
    }

    /// Writes capacity.json, capacity.md and capacity.html into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(CAPACITY_JSON), json)?;
        self.write_views(dir)
    }

    /// Writes capacity.md and capacity.html into `dir` (what `imbench report` renders again).
    pub fn write_views(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::write(dir.join(CAPACITY_MD), self.markdown())?;
        std::fs::write(dir.join(CAPACITY_HTML), self.html())
    }

    /// The latencies worth plotting: those the SLOs name among the kept ones, else every kept
    /// one with samples.
    fn plotted(&self) -> Vec<&'static str> {
        let named: Vec<&'static str> = KEPT
            .iter()
            .copied()
            .filter(|k| self.slo_lines().iter().any(|(m, _, _)| m == k))
            .collect();
        if !named.is_empty() {
            return named;
        }
        KEPT.iter()
            .copied()
            .filter(|k| {
                self.steps
                    .iter()
                    .any(|s| s.latency(k).is_some_and(|(_, p99)| p99 > 0))
            })
            .collect()
    }

    /// The latency SLOs on a p50 or p99 of a kept metric: (metric, the SLO as written,
    /// threshold µs).
    fn slo_lines(&self) -> Vec<(String, String, f64)> {
        self.slo
            .iter()
            .filter_map(|e| Slo::parse(e).ok())
            .filter_map(|s| match s.target {
                Target::Latency { metric, stat } if stat == "p50" || stat == "p99" => {
                    Some((metric, s.expr, s.threshold))
                }
                _ => None,
            })
            .collect()
    }

    fn answer(&self) -> String {
        let held = |b: &Step| {
            format!(
                "{:.3}x ({:.0} sent/s, {:.0} delivered/s)",
                b.load, b.sent_per_s, b.delivered_per_s
            )
        };
        if self.interrupted {
            let n = self.steps.len();
            let (when, before) = if self.last_step_whole {
                ("after", "")
            } else {
                ("during", " before it")
            };
            return match self.best() {
                Some(b) => format!(
                    "interrupted {when} step {n}, so the search did not finish: the highest \
                     load that held{before}, {}, is not the capacity",
                    held(b)
                ),
                None if self.last_step_whole => {
                    format!("interrupted after step {n}; no step held")
                }
                None => format!("interrupted during step {n}, before any step held"),
            };
        }
        match self.best() {
            Some(b) => format!(
                "highest load that held: {}{}",
                held(b),
                match (&self.stopped, self.bounded) {
                    (Some(why), _) => format!(" — the search stopped there: {why}"),
                    (None, true) => String::new(),
                    (None, false) => " — no step failed, so the capacity may be higher".into(),
                }
            ),
            None => match self.steps.first() {
                Some(first) if first.verdict == Verdict::Invalid => {
                    // The first try and those again at its load.
                    let tries = 1 + self.steps[1..].iter().take_while(|s| s.again).count();
                    let what = if tries > 1 {
                        format!("the first load was invalid on all {tries} tries (the first: ")
                    } else {
                        "the first step was invalid (".to_string()
                    };
                    format!(
                        "no step held: {what}{}), so the search says nothing of the capacity",
                        first.why.join("; ")
                    )
                }
                Some(first) => {
                    // An SLO that load helps meet (a floor on a rate or a count) fails at a
                    // load too low, not too high: the search, which only raises the load,
                    // cannot find where it holds by going down.
                    let failed: Vec<Slo> = self
                        .slo
                        .iter()
                        .filter_map(|e| Slo::parse(e).ok())
                        .filter(|s| {
                            let said = format!("{} was ", s.expr);
                            first.why.iter().any(|w| w.starts_with(&said))
                        })
                        .collect();
                    // Said only when nothing else failed: a latency over its limit beside
                    // it is the load being too much after all.
                    let only_floors = !failed.is_empty()
                        && failed.len() == first.why.len()
                        && failed.iter().all(|s| matches!(s.op, Op::Gt | Op::Ge));
                    let floors: Vec<&str> = failed.iter().map(|s| s.expr.as_str()).collect();
                    if !only_floors {
                        "no step held: the first load is already too much".to_string()
                    } else {
                        format!(
                            "no step held: the first load failed {}, a floor that more load helps meet rather than breaks; the search only raises the load from the scenario's, so give a first load that meets it (a higher --rate or --group-rate), or search with SLOs that load breaks (latency, lost)",
                            floors.join(", ")
                        )
                    }
                }
                None => "no step held: the first load is already too much".to_string(),
            },
        }
    }

    /// A warning when the steps' sends waited on different timers: the `auto` timer is
    /// precise up to a rate and tokio's (about 1 ms later) above it, which moves sub-ms
    /// latencies by that much between steps, not the server.
    fn timer_warning(&self) -> Option<String> {
        // Of steps that measured sends: one interrupted before its measured period has no
        // latency a timer could have moved.
        let mut kinds: Vec<_> = self
            .steps
            .iter()
            .filter(|s| s.sent_per_s > 0.0)
            .filter_map(|s| s.timer)
            .collect();
        kinds.dedup();
        (kinds.len() > 1).then(|| {
            "warning: the steps did not all use the same send timer (generator.timer = \"auto\" \
             switches from the precise timer to tokio's 1 ms one at a rate), so latencies below \
             a few ms differ between steps by the timer, not the server: give --timer precise \
             (or tokio) to compare steps"
                .to_string()
        })
    }

    fn rows(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let micros = |v: u64| {
            if v == 0 {
                "-".to_string()
            } else {
                format_micros(v as f64)
            }
        };
        let mut head: Vec<String> = ["step", "load", "sent/s", "delivered/s"]
            .map(String::from)
            .to_vec();
        let shown: Vec<&str> = KEPT
            .iter()
            .copied()
            .filter(|k| {
                self.steps
                    .iter()
                    .any(|s| s.latency(k).is_some_and(|(_, p99)| p99 > 0))
            })
            .collect();
        head.extend(shown.iter().map(|k| format!("{k} p99")));
        head.extend(["lost".to_string(), "verdict".to_string()]);
        let rows = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut row = vec![
                    (i + 1).to_string(),
                    format!("{:.3}x{}", s.load, if s.again { " again" } else { "" }),
                    format!("{:.0}", s.sent_per_s),
                    format!("{:.0}", s.delivered_per_s),
                ];
                for k in &shown {
                    row.push(micros(s.latency(k).map_or(0, |(_, p99)| p99)));
                }
                row.push(s.lost.to_string());
                row.push(format!(
                    "{}{}",
                    if self.cut_short(i) {
                        "interrupted"
                    } else if s.held() {
                        "held"
                    } else if s.verdict == Verdict::Invalid {
                        "INVALID"
                    } else {
                        "FAILED"
                    },
                    if s.why.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", s.why.join("; "))
                    }
                ));
                row
            })
            .collect();
        (head, rows)
    }

    /// The table printed at the end.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\ncapacity search for {} (SLOs: {})",
            self.scenario,
            self.slo.join(", ")
        );
        let (head, rows) = self.rows();
        let last = head.len() - 1;
        // Each column as wide as its widest cell ("1.000x again" is wider than a number).
        let widths: Vec<usize> = (0..last)
            .map(|i| {
                rows.iter()
                    .chain(std::iter::once(&head))
                    .map(|r| r[i].chars().count())
                    .max()
                    .unwrap_or(0)
                    .max(if i == 0 { 4 } else { 11 })
            })
            .collect();
        let line = |cells: &[String]| {
            let mut l = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i == last {
                    let _ = write!(l, "  {c}");
                } else {
                    let _ = write!(l, "{c:>w$} ", w = widths[i]);
                }
            }
            l.trim_end().to_string()
        };
        let _ = writeln!(out, "{}", line(&head));
        for r in &rows {
            let _ = writeln!(out, "{}", line(r));
        }
        let _ = writeln!(out, "{}", self.answer());
        if let Some(w) = self.timer_warning() {
            let _ = writeln!(out, "{w}");
        }
        out
    }

    /// capacity.md: the answer and every step, as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "## {TITLE_PREFIX}capacity of {}\n", self.scenario);
        let _ = writeln!(
            out,
            "SLOs every step had to meet: {}\n",
            self.slo.join(", ")
        );
        let _ = writeln!(out, "**{}**\n", self.answer());
        if let Some(w) = self.timer_warning() {
            let _ = writeln!(out, "{w}\n");
        }
        let (head, rows) = self.rows();
        let _ = writeln!(out, "| {} |", head.join(" | "));
        let _ = writeln!(
            out,
            "|{}",
            head.iter()
                .enumerate()
                .map(|(i, _)| if i + 1 == head.len() {
                    " --- |"
                } else {
                    " ---: |"
                })
                .collect::<String>()
        );
        for r in rows {
            let _ = writeln!(out, "| {} |", r.join(" | ").replace('\n', " "));
        }
        out
    }

    /// capacity.html: the curve against the rate sent and the rate delivered, and the table.
    pub fn html(&self) -> String {
        let title = format!("{TITLE_PREFIX}capacity of {}", escape(&self.scenario));
        let mut out = String::new();
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title}</title><style>{STYLE}{}</style></head><body>\n<h1>{title}</h1>\n",
            charts::styles()
        );
        let class = if self.verdict() == Verdict::Ok {
            "ok"
        } else {
            "fail"
        };
        let _ = writeln!(
            out,
            "<p class=\"verdict {class}\">{}</p>\n<p>SLOs every step had to meet: {}</p>",
            escape(&self.answer()),
            escape(&self.slo.join(", "))
        );
        if let Some(w) = self.timer_warning() {
            let _ = writeln!(out, "<p class=\"invalid\">{}</p>", escape(&w));
        }
        let thresholds = self
            .slo_lines()
            .iter()
            .any(|(m, _, _)| KEPT.contains(&m.as_str()));
        let _ = writeln!(
            out,
            "<p class=\"note\">Each point is one step (a whole run at that load): p99 with dots, \
             p50 dashed; a ring marks a step that failed (an SLO, or an invalid run).{} The grey \
             vertical line is the highest load that held. A step cut short by an interrupt is not \
             plotted. Hover for values; click a legend entry to hide its line; drag to \
             zoom.</p>",
            if thresholds {
                " The dashed black line is the SLO's threshold (named in the legend when it is \
                 far above the figures)."
            } else {
                ""
            }
        );
        let metrics = self.plotted();
        let charts = [
            self.curve(
                &metrics,
                "Latency against the rate delivered",
                |s| s.delivered_per_s,
                "delivered per second",
            ),
            self.curve(
                &metrics,
                "Latency against the rate sent (offered)",
                |s| s.sent_per_s,
                "sent per second",
            ),
        ];
        let plottable = (0..self.steps.len()).any(|i| !self.cut_short(i));
        if metrics.is_empty() || !plottable {
            out.push_str("<p class=\"note\">(no latency samples)</p>\n");
        } else {
            out.push_str("<div class=\"grid\">\n");
            for (i, c) in charts.iter().enumerate() {
                out.push_str(&placeholder(i, &escape(&c.title)));
            }
            out.push_str("</div>\n");
        }
        out.push_str("<h2>Steps</h2>\n<div class=\"wide\"><table class=\"steps\">\n<tr>");
        let (head, rows) = self.rows();
        for h in &head {
            let _ = write!(out, "<th>{}</th>", escape(h));
        }
        out.push_str("</tr>\n");
        for (r, s) in rows.iter().zip(&self.steps) {
            out.push_str("<tr>");
            for (i, c) in r.iter().enumerate() {
                let cell = escape(c);
                match (&s.report, i) {
                    (Some(dir), 0) => {
                        let name = dir.file_name().map_or_else(
                            || dir.display().to_string(),
                            |n| n.to_string_lossy().to_string(),
                        );
                        let _ = write!(
                            out,
                            "<td><a href=\"{}/report.html\">{cell}</a></td>",
                            escape(&name)
                        );
                    }
                    _ => {
                        let _ = write!(out, "<td>{cell}</td>");
                    }
                }
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table></div>\n");
        if !metrics.is_empty() && plottable {
            out.push_str(&scripts(&charts, &[]));
        }
        out.push_str("</body></html>\n");
        out
    }

    /// One chart: p50 (dashed) and p99 of each plotted latency (ms) against `x` of each step,
    /// a ring on each step that failed, the SLO's threshold, the highest load that held.
    fn curve(
        &self,
        metrics: &[&'static str],
        title: &str,
        x: impl Fn(&Step) -> f64,
        x_label: &str,
    ) -> Chart {
        let mut steps: Vec<&Step> = self
            .steps
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.cut_short(*i))
            .map(|(_, s)| s)
            .collect();
        steps.sort_by(|a, b| x(a).total_cmp(&x(b)));
        let ms = |us: u64| (us > 0).then_some(us as f64 / 1000.0);
        let mut lines = Vec::new();
        for (n, m) in metrics.iter().enumerate() {
            let colour = PALETTE[n % PALETTE.len()];
            for (stat, p50) in [("p50", true), ("p99", false)] {
                let value = |s: &Step| s.latency(m).and_then(|(a, b)| ms(if p50 { a } else { b }));
                lines.push(Line::new(
                    format!("{m} {stat}"),
                    colour,
                    if p50 { Style::Dashed } else { Style::Dots },
                    steps.iter().map(|s| value(s)).collect(),
                ));
                if steps.iter().any(|s| !s.held()) {
                    lines.push(Line::new(
                        format!("{m} {stat}: failed"),
                        colour,
                        Style::Rings,
                        steps
                            .iter()
                            .map(|s| if s.held() { None } else { value(s) })
                            .collect(),
                    ));
                }
            }
        }
        let y_max = lines
            .iter()
            .flat_map(|l| l.values.iter().flatten())
            .fold(0.0, |a: f64, b| a.max(*b));
        let mut thresholds = Vec::new();
        for (m, expr, t) in self.slo_lines() {
            if !metrics.contains(&m.as_str()) {
                continue;
            }
            let t = t / 1000.0;
            // A threshold far above the figures would flatten every curve to the floor: it is
            // then named in the legend, not drawn.
            let drawn = t <= y_max * 2.0;
            // The line itself is drawn across the whole plot; this entry is its legend.
            lines.push(Line::new(
                if drawn {
                    format!("SLO {expr}")
                } else {
                    format!("SLO {expr} (above the plot)")
                },
                "#000000",
                Style::Dashed,
                steps.iter().map(|_| None).collect(),
            ));
            if drawn {
                thresholds.push(t);
            }
        }
        Chart {
            title: title.to_string(),
            x_kind: XKind::Rate,
            x_label: x_label.to_string(),
            y_label: "ms".into(),
            x: steps.iter().map(|s| x(s)).collect(),
            lines,
            mark_x: self.best().map(&x),
            thresholds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(load: f64, delivered: f64, fanout_p99_ms: u64, held: bool) -> Step {
        Step {
            load,
            direct_rate: 0.0,
            group_rate: 50.0 * load,
            sent_per_s: 50.0 * load,
            delivered_per_s: delivered,
            direct_p50_us: 0,
            direct_p99_us: 0,
            group_p50_us: fanout_p99_ms * 300,
            group_p99_us: fanout_p99_ms * 800,
            fanout_p50_us: fanout_p99_ms * 400,
            fanout_p99_us: fanout_p99_ms * 1000,
            lost: 0,
            verdict: if held {
                Verdict::Ok
            } else {
                Verdict::SloFailed
            },
            why: if held {
                vec![]
            } else {
                vec![format!("fanout.p99 < 50ms was {fanout_p99_ms}ms")]
            },
            report: Some(PathBuf::from(format!("/x/step-{:02}", (load * 2.0) as u32))),
            timer: Some(crate::config::scenario::TimerKind::Precise),
            again: false,
        }
    }

    fn search() -> Capacity {
        Capacity {
            scenario: "fanout-1000".into(),
            slo: vec!["fanout.p99 < 50ms".into(), "lost == 0".into()],
            steps: vec![
                step(1.0, 50_000.0, 20, true),
                step(1.5, 75_000.0, 61, false),
                step(1.22, 61_000.0, 35, true),
            ],
            highest_held: Some(2),
            bounded: true,
            groups: true,
            interrupted: false,
            last_step_whole: false,
            stopped: None,
            machine: false,
            cut_off: false,
        }
    }

    /// A first step that failed only a floor (a rate the load was too low for) is said to
    /// be so, not "already too much".
    #[test]
    fn a_first_step_short_of_a_floor_is_not_called_too_much() {
        let mut c = search();
        c.steps.truncate(1);
        c.steps[0].verdict = Verdict::SloFailed;
        c.highest_held = None;
        c.slo.push("sent_per_s > 1500".into());
        c.steps[0].why = vec!["sent_per_s > 1500 was 1000".into()];
        let answer = c.answer();
        assert!(
            answer.contains("the first load failed sent_per_s > 1500, a floor"),
            "{answer}"
        );
        // Beside a latency over its limit, the load was too much after all.
        c.steps[0].why = vec![
            "fanout.p99 < 50ms was 61ms".into(),
            "sent_per_s > 1500 was 1000".into(),
        ];
        assert_eq!(
            c.answer(),
            "no step held: the first load is already too much"
        );
        // A floor whose threshold starts another's is not taken for it.
        c.slo.push("sent_per_s > 100".into());
        c.slo.push("sent_per_s > 1000".into());
        c.steps[0].why = vec!["sent_per_s > 1000 was 900".into()];
        assert!(
            c.answer().contains("failed sent_per_s > 1000, a floor"),
            "{}",
            c.answer()
        );
        c.steps[0].why = vec!["fanout.p99 < 50ms was 61ms".into()];
        assert_eq!(
            c.answer(),
            "no step held: the first load is already too much"
        );
    }

    #[test]
    fn a_search_the_machine_ended_gives_a_lower_bound_and_is_invalid() {
        let mut c = search();
        assert_eq!(c.verdict(), Verdict::Ok);
        c.bounded = false;
        c.machine = true;
        c.stopped = Some("the machine alone spoiled all 3 tries at the next load, 1.830x".into());
        assert_eq!(c.verdict(), Verdict::Invalid);
        let t = c.table();
        assert!(
            t.contains("highest load that held: 1.220x")
                && t.contains("the search stopped there: the machine alone spoiled"),
            "{t}"
        );
    }

    #[test]
    fn a_search_a_step_of_which_could_not_run_is_invalid_and_says_why() {
        let mut c = search();
        c.bounded = false;
        c.cut_off = true;
        c.stopped = Some("step 3 could not run (cannot reach the server)".into());
        assert_eq!(c.verdict(), Verdict::Invalid);
        assert!(c
            .table()
            .contains("the search stopped there: step 3 could not run"));
        let back = Capacity::from_json(&serde_json::to_string(&c).unwrap()).unwrap();
        assert!(back.cut_off);
    }

    #[test]
    fn an_answer_its_steps_do_not_give_is_refused() {
        let mut c = search();
        assert_eq!(c.highest_held, Some(2));
        for edited in [Some(1), Some(9), None] {
            c.highest_held = edited;
            let e = Capacity::from_json(&serde_json::to_string(&c).unwrap())
                .expect_err("an edited answer")
                .to_string();
            assert!(
                e.contains("where its steps give 2 (step 3): the file was changed"),
                "{e}"
            );
        }
    }

    #[test]
    fn the_table_shows_rates_sent_and_delivered_and_only_latencies_with_samples() {
        let t = search().table();
        assert!(t.contains("sent/s") && t.contains("delivered/s"), "{t}");
        assert!(t.contains("fanout p99") && t.contains("group p99"), "{t}");
        assert!(!t.contains("direct p99"), "no direct samples: {t}");
        assert!(!t.contains("direct/s"), "{t}");
        assert!(t.contains("highest load that held: 1.220x (61 sent/s, 61000 delivered/s)"));
        assert!(t.contains("FAILED: fanout.p99 < 50ms was 61ms"), "{t}");
    }

    #[test]
    fn the_page_plots_the_slos_latency_with_its_threshold_and_links_each_step() {
        let c = search();
        assert_eq!(c.plotted(), vec![FANOUT], "the SLO names fanout");
        let html = c.html();
        assert!(
            html.contains("id=\"chart-0\"") && html.contains("id=\"chart-1\""),
            "against delivered and sent"
        );
        assert!(html.contains("uPlot") && html.contains("imbench-charts"));
        assert!(html.contains("href=\"step-02/report.html\""));
        let chart = c.curve(&c.plotted(), "t", |s| s.delivered_per_s, "delivered");
        let labels: Vec<&str> = chart.lines.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "fanout p50",
                "fanout p50: failed",
                "fanout p99",
                "fanout p99: failed",
                "SLO fanout.p99 < 50ms"
            ],
            "the SLO's line is labelled with its operator"
        );
        assert_eq!(chart.x, vec![50_000.0, 61_000.0, 75_000.0], "steps by rate");
        assert_eq!(
            chart.lines[3].values,
            vec![None, None, Some(61.0)],
            "a ring on the step that failed only"
        );
        assert_eq!(chart.thresholds, vec![50.0], "drawn across the plot");
        assert_eq!(chart.mark_x, Some(61_000.0), "the highest load that held");
        let md = c.markdown();
        assert!(md.contains("**highest load that held: 1.220x"), "{md}");
        assert_eq!(
            md.lines().filter(|l| l.starts_with("| ")).count(),
            5,
            "{md}"
        );
    }

    #[test]
    fn an_interrupted_search_is_invalid_and_does_not_name_a_capacity() {
        let mut c = search();
        assert_eq!(c.verdict(), Verdict::Ok);
        c.interrupted = true;
        c.steps[2].verdict = Verdict::Invalid;
        c.highest_held = Some(0);
        assert_eq!(c.verdict(), Verdict::Invalid);
        let t = c.table();
        assert!(
            t.contains("interrupted during step 3, so the search did not finish"),
            "{t}"
        );
        assert!(t.contains("is not the capacity"), "{t}");
        assert!(t.lines().any(|l| l.contains("  interrupted")), "{t}");
        c.steps.truncate(1);
        c.steps[0].verdict = Verdict::Invalid;
        c.highest_held = None;
        assert!(c
            .table()
            .contains("interrupted during step 1, before any step held"));
        assert_eq!(c.verdict(), Verdict::Invalid);
    }

    #[test]
    fn a_step_an_interrupt_cut_short_is_not_the_capacity_even_if_it_held() {
        let mut c = search();
        assert_eq!(highest_held(&c.steps, false), Some(2));
        c.interrupted = true;
        assert_eq!(highest_held(&c.steps, true), Some(0), "1.22x was cut short");
        c.highest_held = highest_held(&c.steps, true);
        let t = c.table();
        let last = t
            .lines()
            .find(|l| l.trim_start().starts_with("3 "))
            .expect("step 3's row");
        assert!(
            last.contains("interrupted") && !last.contains("held"),
            "{t}"
        );
        let chart = c.curve(&c.plotted(), "t", |s| s.sent_per_s, "sent");
        assert_eq!(chart.x.len(), 2, "the cut-short step is not plotted");
        // Interrupted once step 3 had measured everything: it is whole, and counts.
        c.last_step_whole = true;
        c.highest_held = highest_held(&c.steps, c.last_step_cut());
        assert_eq!(c.highest_held, Some(2));
        let t = c.table();
        let last = t
            .lines()
            .find(|l| l.trim_start().starts_with("3 "))
            .expect("step 3's row");
        assert!(last.contains("held"), "{t}");
        assert!(
            t.contains("interrupted after step 3, so the search did not finish"),
            "{t}"
        );
        assert_eq!(c.verdict(), Verdict::Invalid, "the search did not finish");
        let chart = c.curve(&c.plotted(), "t", |s| s.sent_per_s, "sent");
        assert_eq!(chart.x.len(), 3);
        // It is kept in capacity.json.
        let again = Capacity::from_json(&serde_json::to_string(&c).unwrap()).unwrap();
        assert!(again.last_step_whole);
    }

    #[test]
    fn only_a_step_the_machine_alone_spoiled_is_spoiled_by_the_machine() {
        let mut s = step(1.0, 50_000.0, 20, false);
        s.verdict = Verdict::Invalid;
        s.why = vec![
            "the machine was the limit: its 2 CPUs were 97% busy (limit 90%)".into(),
            "the machine paused this process for 62.75ms".into(),
        ];
        assert!(s.spoiled_by_machine());
        s.why.push("fanout.p99 < 50ms was 61.00ms".into());
        assert!(!s.spoiled_by_machine(), "an SLO failed too");
        s.why = vec!["generator saturated: schedule lag p99 12.00ms exceeds 10.00ms".into()];
        assert!(!s.spoiled_by_machine(), "the generator's own limit");
        s.why.clear();
        assert!(!s.spoiled_by_machine(), "no reason given");
        s.why = vec!["the machine was the limit".into()];
        s.verdict = Verdict::SloFailed;
        assert!(!s.spoiled_by_machine(), "not invalid");
    }

    #[test]
    fn steps_on_different_timers_are_called_out_and_an_invalid_first_step_is_not_too_much() {
        let mut c = search();
        assert!(!c.table().contains("send timer"));
        c.steps[1].timer = Some(crate::config::scenario::TimerKind::Tokio);
        // Not of a step that measured nothing (interrupted in its warm-up).
        let measured = c.steps[1].sent_per_s;
        c.steps[1].sent_per_s = 0.0;
        assert!(!c.table().contains("send timer"));
        c.steps[1].sent_per_s = measured;
        for page in [c.table(), c.markdown(), c.html()] {
            assert!(
                page.contains("did not all use the same send timer"),
                "{page}"
            );
        }
        c.steps.truncate(1);
        c.steps[0].verdict = Verdict::Invalid;
        c.steps[0].why = vec!["the machine was the limit".into()];
        c.highest_held = None;
        let t = c.table();
        assert!(
            t.contains("the first step was invalid (the machine was the limit)"),
            "{t}"
        );
        assert!(!t.contains("already too much"), "{t}");
    }

    #[test]
    fn a_threshold_far_above_the_figures_is_named_not_drawn() {
        let mut c = search();
        c.slo = vec!["fanout.p99 < 10s".into()];
        let chart = c.curve(&c.plotted(), "t", |s| s.sent_per_s, "sent");
        let slo = chart.lines.last().unwrap();
        assert_eq!(slo.label, "SLO fanout.p99 < 10s (above the plot)");
        assert!(chart.thresholds.is_empty(), "not drawn");
    }

    #[test]
    fn a_search_written_before_p50s_were_kept_still_reads() {
        let mut old = serde_json::to_value(search()).unwrap();
        for s in old["steps"].as_array_mut().unwrap() {
            let s = s.as_object_mut().unwrap();
            s.retain(|k, _| !k.ends_with("_p50_us"));
        }
        let c = Capacity::from_json(&old.to_string()).expect("reads");
        assert_eq!(c.steps[0].fanout_p50_us, 0);
        assert_eq!(c.steps[0].fanout_p99_us, 20_000);
        assert!(c.html().contains("id=\"chart-0\""));
        let chart = c.curve(&c.plotted(), "t", |s| s.sent_per_s, "sent");
        assert!(chart.lines[0].values.iter().all(Option::is_none), "no p50s");
        assert!(
            chart.lines[2].values.iter().all(Option::is_some),
            "the p99s"
        );
    }

    #[test]
    fn without_a_latency_slo_every_latency_with_samples_is_plotted() {
        let mut c = search();
        c.slo = vec!["lost == 0".into()];
        assert_eq!(c.plotted(), vec![Metric::Group.name(), FANOUT]);
        c.highest_held = None;
        c.steps.truncate(0);
        assert!(c.html().contains("no latency samples"));
        assert!(c.table().contains("no step held"));
    }
}
