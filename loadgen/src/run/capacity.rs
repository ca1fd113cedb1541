//! Capacity mode: raise the offered load step by step until an SLO fails, and report the
//! highest load that held, with the figures of every step.
//!
//! A step is a whole run of the scenario (connect, warm-up, measured period, drain) with every
//! rate of the scenario, direct and group, multiplied by the step's factor, and the same seed.
//! Steps grow geometrically until one fails, then the interval between the last step that held
//! and the first that failed is halved a few times. A step fails when its verdict is not OK:
//! an SLO failed, or the run was invalid (a saturated generator included), since a figure
//! measured by a saturated generator cannot show that the server held.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::measure::metrics::Metric;
use crate::report::{Report, Verdict};
use crate::run::{run, RunConfig, RunError};

/// How the search proceeds.
#[derive(Debug, Clone, Copy)]
pub struct SearchOptions {
    /// Each step's load over the previous one's, while steps hold (above 1).
    pub growth: f64,
    /// Most steps before the refinement.
    pub max_steps: usize,
    /// Halvings of the interval between the last good and the first bad step.
    pub refine: usize,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            growth: 1.5,
            max_steps: 12,
            refine: 2,
        }
    }
}

/// One step's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    /// Factor applied to the scenario's rates.
    pub load: f64,
    /// Direct messages per second per client offered.
    pub direct_rate: f64,
    /// Messages per second per group offered.
    pub group_rate: f64,
    /// Messages sent per second in the measured period.
    pub sent_per_s: f64,
    /// Deliveries per second in the measured period.
    pub delivered_per_s: f64,
    /// p99 of `direct`, `group` and `fanout`, µs (0 when the metric had no samples).
    pub direct_p99_us: u64,
    /// p99 of `group`, µs.
    pub group_p99_us: u64,
    /// p99 of `fanout`, µs.
    pub fanout_p99_us: u64,
    /// Expected deliveries that never arrived.
    pub lost: u64,
    /// The step's verdict.
    pub verdict: Verdict,
    /// SLOs that failed and reasons the run was invalid.
    pub why: Vec<String>,
    /// Where the step's report went.
    pub report: Option<PathBuf>,
}

impl Step {
    fn from_report(load: f64, r: &Report, dir: Option<PathBuf>) -> Self {
        let run = &r.runs[0];
        let p99 = |m: &str| run.metrics.get(m).map_or(0, |m| m.p99_us);
        let mut why: Vec<String> = r.invalid_reasons.clone();
        why.extend(
            run.slo
                .iter()
                .filter(|s| !s.ok)
                .map(|s| format!("{} was {}", s.expr, s.value)),
        );
        Self {
            load,
            direct_rate: r.scenario.direct.rate,
            group_rate: r.scenario.groups.rate,
            sent_per_s: run.throughput.sent_per_s,
            delivered_per_s: run.throughput.delivered_per_s,
            direct_p99_us: p99(Metric::Direct.name()),
            group_p99_us: p99(Metric::Group.name()),
            fanout_p99_us: p99(crate::report::figures::FANOUT),
            lost: run.counters.lost,
            verdict: r.verdict,
            why,
            report: dir,
        }
    }

    /// Whether the step held.
    pub fn held(&self) -> bool {
        self.verdict == Verdict::Ok
    }
}

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
}

impl Capacity {
    /// The step with the highest load that held.
    pub fn best(&self) -> Option<&Step> {
        self.highest_held.map(|i| &self.steps[i])
    }

    /// The table printed at the end.
    pub fn table(&self) -> String {
        use crate::config::slo::format_micros;
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\ncapacity search for {} (SLOs: {})",
            self.scenario,
            self.slo.join(", ")
        );
        let _ = writeln!(
            out,
            "{:>6} {:>11} {:>10} {:>10} {:>12} {:>10} {:>10} {:>10} {:>6}  verdict",
            "step",
            "load",
            "direct/s",
            "group/s",
            "delivered/s",
            "direct p99",
            "group p99",
            "fanout p99",
            "lost"
        );
        let micros = |v: u64| {
            if v == 0 {
                "-".to_string()
            } else {
                format_micros(v as f64)
            }
        };
        let rate = |r: f64, on: bool| {
            if on {
                format!("{r:.3}")
            } else {
                "-".to_string()
            }
        };
        for (i, s) in self.steps.iter().enumerate() {
            let _ = writeln!(
                out,
                "{:>6} {:>10.3}x {:>10} {:>10} {:>12.0} {:>10} {:>10} {:>10} {:>6}  {}{}",
                i + 1,
                s.load,
                rate(s.direct_rate, s.direct_rate > 0.0),
                rate(s.group_rate, self.groups),
                s.delivered_per_s,
                micros(s.direct_p99_us),
                micros(s.group_p99_us),
                micros(s.fanout_p99_us),
                s.lost,
                if s.held() { "held" } else { "FAILED" },
                if s.why.is_empty() {
                    String::new()
                } else {
                    format!(": {}", s.why.join("; "))
                }
            );
        }
        match self.best() {
            Some(b) => {
                let _ = writeln!(
                    out,
                    "highest load that held: {:.3}x ({:.0} sent/s, {:.0} delivered/s){}",
                    b.load,
                    b.sent_per_s,
                    b.delivered_per_s,
                    if self.bounded {
                        ""
                    } else {
                        " — no step failed, so the capacity may be higher"
                    }
                );
            }
            None => {
                let _ = writeln!(out, "no step held: the first load is already too much");
            }
        }
        out
    }
}

/// Runs the search. `config.out_dir`, when set, gets one sub-folder per step and
/// `capacity.json`. `on_step` sees each step as it finishes.
pub async fn find_max(
    config: RunConfig,
    opts: SearchOptions,
    mut on_step: impl FnMut(&Step),
) -> Result<Capacity, RunError> {
    let base = config.scenario.clone();
    let mut steps: Vec<Step> = Vec::new();
    let run_step = |load: f64, n: usize| {
        let mut c = config.clone();
        c.scenario.direct.rate = base.direct.rate * load;
        c.scenario.groups.rate = base.groups.rate * load;
        c.out_dir = config
            .out_dir
            .as_ref()
            .map(|d| d.join(format!("step-{n:02}")));
        async move {
            let outcome = run(c).await?;
            Ok::<Step, RunError>(Step::from_report(load, &outcome.report, outcome.dir))
        }
    };
    let mut good: Option<f64> = None;
    let mut bad: Option<f64> = None;
    let mut load = 1.0;
    let interrupted = || config.interrupt.as_ref().is_some_and(|rx| *rx.borrow());
    for _ in 0..opts.max_steps {
        let step = run_step(load, steps.len() + 1).await?;
        on_step(&step);
        let held = step.held();
        steps.push(step);
        if interrupted() {
            break;
        }
        if held {
            good = Some(load);
            load *= opts.growth;
        } else {
            bad = Some(load);
            break;
        }
    }
    if let (Some(lo), Some(hi), false) = (good, bad, interrupted()) {
        let (mut lo, mut hi) = (lo, hi);
        for _ in 0..opts.refine {
            let mid = (lo * hi).sqrt();
            let step = run_step(mid, steps.len() + 1).await?;
            on_step(&step);
            if step.held() {
                lo = mid;
            } else {
                hi = mid;
            }
            steps.push(step);
            if interrupted() {
                break;
            }
        }
    }
    let highest_held = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.held())
        .max_by(|a, b| a.1.load.total_cmp(&b.1.load))
        .map(|(i, _)| i);
    let capacity = Capacity {
        scenario: base.name.clone(),
        slo: base.slo.clone(),
        steps,
        highest_held,
        bounded: bad.is_some(),
        groups: base.groups.count > 0,
    };
    if let Some(dir) = &config.out_dir {
        let json = serde_json::to_string_pretty(&capacity).map_err(|e| RunError::Write {
            path: dir.display().to_string(),
            source: std::io::Error::other(e),
        })?;
        std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::write(dir.join("capacity.json"), json))
            .map_err(|source| RunError::Write {
                path: dir.display().to_string(),
                source,
            })?;
    }
    Ok(capacity)
}
