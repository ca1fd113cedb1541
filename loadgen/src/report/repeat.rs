//! `imbench run --repeat N`: one scenario run N times in a row, and the spread of each headline
//! figure over the runs, so that a reader sees the noise of the machine instead of guessing
//! it. The runs land in `run-1` … `run-N` of the report folder, which is also the layout
//! `imbench compare --fail-on-regression` takes as a baseline; `repeat.json` beside them holds
//! the spread.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::config::slo::format_micros;
use crate::report::model::{Report, Verdict};
use crate::report::regression::{Check, CPU_FIGURE, DEFAULT_CHECKS};

/// The file a `--repeat` writes beside its run folders: [`RepeatSummary`] as JSON.
pub const REPEAT_JSON: &str = "repeat.json";

/// The spread of every headline figure over repeated runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepeatSummary {
    /// Scenario name.
    pub scenario: String,
    /// Whole runs made, those in the spread.
    pub runs: usize,
    /// Runs asked for (`--repeat N`): more than `runs` when Ctrl-C, or a run stopped early or
    /// one that could not take place, ended the repeats.
    #[serde(default)]
    pub asked: usize,
    /// Each run's verdict, in order.
    pub verdicts: Vec<Verdict>,
    /// One entry per transport and figure that every run has.
    pub figures: Vec<Spread>,
}

/// One figure over the runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spread {
    /// Transport of the runs.
    pub transport: String,
    /// Figure, as SLOs name it (latencies in µs).
    pub figure: String,
    /// Its value in each run, in order.
    pub values: Vec<f64>,
    /// Smallest.
    pub min: f64,
    /// Median.
    pub median: f64,
    /// Largest.
    pub max: f64,
    /// Largest over smallest: 1.0 when every run agreed (0 when the smallest is 0).
    pub max_over_min: f64,
}

impl Spread {
    fn of(transport: &str, figure: &str, values: Vec<f64>) -> Self {
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let median = crate::report::regression::median_of_sorted(&sorted);
        let (min, max) = (sorted[0], sorted[sorted.len() - 1]);
        Self {
            transport: transport.to_string(),
            figure: figure.to_string(),
            values,
            min,
            median,
            max,
            max_over_min: if min > 0.0 { max / min } else { 0.0 },
        }
    }
}

/// Works out the spread of each figure that every report has, per transport.
pub fn summarize(reports: &[Report]) -> RepeatSummary {
    // The figures a regression gate checks, how precisely the generator kept time, and what
    // a login cost (first connections and, under churn, reconnects).
    let checks: Vec<Check> = DEFAULT_CHECKS
        .iter()
        .chain(&[
            "schedule_lag.p50",
            "schedule_lag.p99",
            "connect.p50",
            "reconnect.p50",
            CPU_FIGURE,
        ])
        .filter_map(|n| Check::parse(n).ok())
        .collect();
    let mut figures = Vec::new();
    let transports: Vec<String> = reports
        .first()
        .map(|r| r.runs.iter().map(|run| run.transport.clone()).collect())
        .unwrap_or_default();
    for t in &transports {
        let runs: Vec<_> = reports
            .iter()
            .filter_map(|r| r.runs.iter().find(|run| &run.transport == t))
            .collect();
        if runs.len() != reports.len() {
            continue;
        }
        for check in &checks {
            let values: Option<Vec<f64>> = runs.iter().map(|run| check.value(run)).collect();
            if let Some(values) = values {
                figures.push(Spread::of(t, &check.name, values));
            }
        }
    }
    RepeatSummary {
        scenario: reports
            .first()
            .map(|r| r.scenario.name.clone())
            .unwrap_or_default(),
        runs: reports.len(),
        asked: reports.len(),
        verdicts: reports.iter().map(|r| r.verdict).collect(),
        figures,
    }
}

impl RepeatSummary {
    /// The worst verdict of the runs.
    pub fn verdict(&self) -> Verdict {
        self.verdicts
            .iter()
            .copied()
            .max()
            .unwrap_or(Verdict::Invalid)
    }

    /// The spread table printed after the runs.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let cut = if self.asked > self.runs {
            format!(" ({} asked; the repeats ended early)", self.asked)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "\n{} run{} of {}{cut}: each figure in every run, its median and max/min",
            self.runs,
            if self.runs == 1 { "" } else { "s" },
            self.scenario
        );
        let mut header = format!("{:<10} {:<20}", "transport", "figure");
        for i in 1..=self.runs {
            let _ = write!(header, " {:>9}", format!("run {i}"));
        }
        let _ = writeln!(out, "{header} {:>9} {:>8}", "median", "max/min");
        for f in &self.figures {
            let show = |v: f64| {
                if f.figure.contains('.') {
                    format_micros(v)
                } else {
                    format!("{v:.0}")
                }
            };
            let mut line = format!("{:<10} {:<20}", f.transport, f.figure);
            for v in &f.values {
                let _ = write!(line, " {:>9}", show(*v));
            }
            let ratio = if f.max_over_min > 0.0 {
                format!("{:.2}x", f.max_over_min)
            } else {
                "-".to_string()
            };
            let _ = writeln!(out, "{line} {:>9} {:>8}", show(f.median), ratio);
        }
        let verdicts: Vec<&str> = self
            .verdicts
            .iter()
            .map(|v| match v {
                Verdict::Ok => "ok",
                Verdict::SloFailed => "slo_failed",
                Verdict::Invalid => "invalid",
            })
            .collect();
        let _ = writeln!(out, "verdicts: {}", verdicts.join(", "));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spread_has_every_value_in_order_with_median_and_ratio() {
        let s = Spread::of(
            "quic",
            "direct.p99",
            vec![300.0, 100.0, 200.0, 150.0, 120.0],
        );
        assert_eq!(s.values, vec![300.0, 100.0, 200.0, 150.0, 120.0]);
        assert_eq!((s.min, s.median, s.max), (100.0, 150.0, 300.0));
        assert!((s.max_over_min - 3.0).abs() < 1e-12);
        let even = Spread::of("tcp", "delivered_per_s", vec![10.0, 20.0]);
        assert_eq!(even.median, 15.0);
        let zero = Spread::of("tcp", "lost", vec![0.0, 0.0]);
        assert_eq!(zero.max_over_min, 0.0);
    }

    #[test]
    fn the_worst_verdict_wins() {
        let s = RepeatSummary {
            scenario: "x".into(),
            runs: 3,
            asked: 3,
            verdicts: vec![Verdict::Ok, Verdict::SloFailed, Verdict::Ok],
            figures: Vec::new(),
        };
        assert_eq!(s.verdict(), Verdict::SloFailed);
        assert!(s.table().contains("verdicts: ok, slo_failed, ok"));
        assert!(s.table().contains("3 runs of x: each"), "{}", s.table());
        // Cut short: said, with the number asked for.
        let cut = RepeatSummary {
            runs: 1,
            asked: 3,
            verdicts: vec![Verdict::Ok],
            ..s
        };
        assert!(
            cut.table()
                .contains("1 run of x (3 asked; the repeats ended early)"),
            "{}",
            cut.table()
        );
    }

    #[test]
    fn logins_are_in_the_spread_when_every_run_has_them() {
        let run: Report = serde_json::from_str(include_str!(
            "../../../reports/baselines/ci/run-1/report.json"
        ))
        .expect("the committed baseline reads");
        // A run with churn has reconnects too.
        let mut churned = run.clone();
        for r in &mut churned.runs {
            let connect = r.metrics["connect"].clone();
            r.metrics.insert("reconnect".to_string(), connect);
        }
        let figures = |reports: &[Report]| -> Vec<String> {
            summarize(reports)
                .figures
                .into_iter()
                .map(|f| f.figure)
                .collect()
        };
        let both = figures(&[churned.clone(), churned.clone()]);
        assert!(both.iter().any(|f| f == "connect.p50"), "{both:?}");
        assert!(both.iter().any(|f| f == "reconnect.p50"), "{both:?}");
        // A figure one run lacks is no spread.
        let one = figures(&[churned, run]);
        assert!(one.iter().any(|f| f == "connect.p50"), "{one:?}");
        assert!(!one.iter().any(|f| f == "reconnect.p50"), "{one:?}");
    }
}
