//! `imbench run --repeat N`: one scenario run N times in a row, and the spread of each headline
//! figure over the runs, so that a reader sees the noise of the machine instead of guessing
//! it. The runs land in `run-1` … `run-N` of the report folder, which is also the layout
//! `imbench compare --fail-on-regression` takes as a baseline; `repeat.json` beside them holds
//! the spread.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::config::slo::{three_digits, times};
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
    /// One entry per transport and figure that every run of that transport has.
    pub figures: Vec<Spread>,
}

/// One figure over the runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spread {
    /// Transport of the runs.
    pub transport: String,
    /// Figure, as SLOs name it (latencies in µs).
    pub figure: String,
    /// Its value in each run, in order; none (`null`) in a run in which the transport or
    /// target did not run (it could not take place: gone by then).
    pub values: Vec<Option<f64>>,
    /// Smallest.
    pub min: f64,
    /// Median.
    pub median: f64,
    /// Largest.
    pub max: f64,
    /// Largest over smallest: 1.0 when every run agreed; none (`null`) when the smallest is
    /// 0 or only one run has the figure, where no ratio is one to read (files written before
    /// this wrote 0 there, read as none).
    #[serde(default, deserialize_with = "no_ratio_as_none")]
    pub max_over_min: Option<f64>,
}

impl Spread {
    /// The spread of `values`, of which at least one is there.
    fn of(transport: &str, figure: &str, values: Vec<Option<f64>>) -> Self {
        let mut sorted: Vec<f64> = values.iter().flatten().copied().collect();
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
            // One value has no spread to show.
            max_over_min: (min > 0.0 && sorted.len() > 1).then(|| max / min),
        }
    }
}

/// A ratio as repeat.json has it, the 0 older files wrote for none read as none.
fn no_ratio_as_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.filter(|&r| r > 0.0))
}

/// Works out the spread of each figure, per transport: of the figures that every run of the
/// transport has, with none in a run that did not run it (a target gone by then).
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
    // In the order they first ran.
    let mut transports: Vec<&str> = Vec::new();
    for run in reports.iter().flat_map(|r| &r.runs) {
        if !transports.contains(&run.transport.as_str()) {
            transports.push(&run.transport);
        }
    }
    for t in transports {
        let runs: Vec<_> = reports
            .iter()
            .map(|r| r.runs.iter().find(|run| run.transport == t))
            .collect();
        for check in &checks {
            let values: Vec<Option<f64>> = runs
                .iter()
                .map(|run| run.and_then(|run| check.value(run)))
                .collect();
            // A figure that a run of the transport lacks is no figure of every run.
            let of_each = runs
                .iter()
                .zip(&values)
                .all(|(run, value)| run.is_none() || value.is_some());
            if of_each && values.iter().any(Option::is_some) {
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
        // A transport's name, or a target's (`nats`, a NAME= given), as the gate's table has it.
        let mut header = format!("{:<10} {:<20}", "transport", "figure");
        for i in 1..=self.runs {
            let _ = write!(header, " {:>9}", format!("run {i}"));
        }
        let _ = writeln!(out, "{header} {:>9} {:>8}", "median", "max/min");
        for f in &self.figures {
            let show = |v: f64| {
                if f.figure.contains('.') {
                    three_digits(v)
                } else if f.figure == "file_bytes_per_s" {
                    // As the run's table and compare show it.
                    format!("{:.2}MiB/s", v / (1024.0 * 1024.0))
                } else {
                    format!("{v:.0}")
                }
            };
            let mut line = format!("{:<10} {:<20}", f.transport, f.figure);
            for v in &f.values {
                let _ = write!(line, " {:>9}", v.map_or_else(|| "-".to_string(), show));
            }
            let ratio = f.max_over_min.map_or_else(|| "-".to_string(), times);
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
        let values = [300.0, 100.0, 200.0, 150.0, 120.0].map(Some).to_vec();
        let s = Spread::of("quic", "direct.p99", values.clone());
        assert_eq!(s.values, values);
        assert_eq!((s.min, s.median, s.max), (100.0, 150.0, 300.0));
        assert!((s.max_over_min.unwrap_or_default() - 3.0).abs() < 1e-12);
        let even = Spread::of("tcp", "delivered_per_s", vec![Some(10.0), Some(20.0)]);
        assert_eq!(even.median, 15.0);
        let zero = Spread::of("tcp", "lost", vec![Some(0.0), Some(0.0)]);
        assert_eq!(zero.max_over_min, None);
        assert_eq!(
            Spread::of("quic", "lost", vec![Some(4.0)]).max_over_min,
            None
        );
        let json = serde_json::to_value(&zero).expect("JSON");
        assert!(json["max_over_min"].is_null(), "{json}");
        // A file of an older imbench wrote 0 for no ratio.
        let mut older = serde_json::to_value(&s).expect("JSON");
        older["max_over_min"] = serde_json::json!(0.0);
        let read: Spread = serde_json::from_value(older).expect("reads");
        assert_eq!(read.max_over_min, None);
        // A run without the transport is left out of the median and the ratio.
        let gone = Spread::of("nats", "direct.p50", vec![Some(200.0), None, Some(100.0)]);
        assert_eq!((gone.min, gone.median, gone.max), (100.0, 150.0, 200.0));
    }

    #[test]
    fn a_target_gone_after_its_first_run_keeps_its_row_with_the_runs_it_had() {
        let run: Report = serde_json::from_str(include_str!(
            "../../../reports/baselines/ci/run-1/report.json"
        ))
        .expect("the committed baseline reads");
        let mut two = run.clone();
        let mut other = two.runs[0].clone();
        other.transport = "nats".into();
        two.runs.push(other);
        let s = summarize(&[two, run.clone(), run]);
        let nats: Vec<&Spread> = s.figures.iter().filter(|f| f.transport == "nats").collect();
        assert!(!nats.is_empty(), "{:?}", s.figures);
        for f in nats {
            assert!(f.values[0].is_some() && f.values[1..].iter().all(Option::is_none));
        }
        let table = s.table();
        let row = table
            .lines()
            .find(|l| l.starts_with("nats") && l.contains("direct.p50"))
            .expect("a nats row");
        assert_eq!(
            row.split_whitespace().filter(|w| *w == "-").count(),
            3,
            "{row}"
        );
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
