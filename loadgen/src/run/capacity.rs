//! Capacity mode: raise the offered load step by step until an SLO fails, and report the
//! highest load that held, with the figures of every step.
//!
//! A step is a whole run of the scenario (connect, warm-up, measured period, drain) with every
//! rate of the scenario, direct and group, multiplied by the step's factor, and the same seed.
//! Steps grow geometrically until one fails, then the interval between the last step that held
//! and the first that failed is narrowed a few times, each time at the geometric midpoint of
//! the two loads (the square root of their product: equal ratios on either side, as the loads
//! grew). A step fails when its verdict is not OK:
//! an SLO failed, or the run was invalid (a saturated generator included), since a figure
//! measured by a saturated generator cannot show that the server held. A step the machine
//! alone spoiled (its CPUs busy with other work, a pause of the whole process) says nothing
//! of the load, so it runs again at the same load, up to [`SearchOptions::machine_retries`]
//! times; every try is kept among the steps.

pub use crate::report::capacity::{Capacity, Step};

/// Loads closer than this ratio are one load on any machine: the narrowing stops there.
const FINEST_RATIO: f64 = 1.01;
use crate::run::{run, RunConfig, RunError};

/// A step the search may not run.
enum Skipped {
    /// The run could not take place.
    Failed(RunError),
    /// The scenario at this load is not one `imbench run` would accept (it asks for more
    /// sends a second than any scenario may): the search stops growing here.
    OutOfBounds(crate::config::scenario::ScenarioError),
}

/// How the search proceeds.
#[derive(Debug, Clone, Copy)]
pub struct SearchOptions {
    /// Each step's load over the previous one's, while steps hold (above 1).
    pub growth: f64,
    /// Most loads tried before the refinement (tries again at one load count once).
    pub max_steps: usize,
    /// Narrowings of the interval between the last good and the first bad step.
    pub refine: usize,
    /// Tries more at the same load for a step the machine alone spoiled.
    pub machine_retries: usize,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            growth: 1.5,
            max_steps: 12,
            refine: 2,
            machine_retries: 2,
        }
    }
}

/// Runs the search. `config.out_dir`, when set, gets one sub-folder per step, and
/// `capacity.json`, `capacity.md` and `capacity.html`. `on_step` sees each step as it finishes.
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
            c.scenario.validate().map_err(Skipped::OutOfBounds)?;
            let outcome = run(c).await.map_err(Skipped::Failed)?;
            Ok::<Step, Skipped>(Step::from_report(load, &outcome.report, outcome.dir))
        }
    };
    let mut good: Option<f64> = None;
    let mut bad: Option<f64> = None;
    let mut stopped = None;
    let mut load = 1.0;
    let interrupted = || config.interrupt.as_ref().is_some_and(|rx| *rx.borrow());
    // Tries so far at the current load that the machine spoiled.
    let mut spoiled = 0;
    let mut loads = 0;
    while loads < opts.max_steps {
        let mut step = match run_step(load, steps.len() + 1).await {
            Ok(step) => step,
            Err(Skipped::Failed(e)) => return Err(e),
            Err(Skipped::OutOfBounds(e)) if !steps.is_empty() => {
                stopped = Some(format!("the next load, {load:.3}x, would be refused: {e}"));
                break;
            }
            // The first step is the scenario as given, which was checked already.
            Err(Skipped::OutOfBounds(e)) => return Err(RunError::Scenario(e)),
        };
        step.again = spoiled > 0;
        on_step(&step);
        let held = step.held();
        let again = step.spoiled_by_machine() && spoiled < opts.machine_retries;
        steps.push(step);
        if interrupted() {
            break;
        }
        if again {
            spoiled += 1;
            continue;
        }
        spoiled = 0;
        loads += 1;
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
        let mut refined = 0;
        // Past the finest ratio another step would try the same load under another name.
        while refined < opts.refine && hi / lo >= FINEST_RATIO {
            let mid = (lo * hi).sqrt();
            let mut step = match run_step(mid, steps.len() + 1).await {
                Ok(step) => step,
                Err(Skipped::Failed(e)) => return Err(e),
                // Between two loads that were accepted: cannot happen, but is no reason to
                // lose the steps already run.
                Err(Skipped::OutOfBounds(_)) => break,
            };
            step.again = spoiled > 0;
            on_step(&step);
            let again = step.spoiled_by_machine() && spoiled < opts.machine_retries;
            let held = step.held();
            steps.push(step);
            if interrupted() {
                break;
            }
            if again {
                spoiled += 1;
                continue;
            }
            spoiled = 0;
            refined += 1;
            if held {
                lo = mid;
            } else {
                hi = mid;
            }
        }
    }
    let interrupted = interrupted();
    let highest_held = crate::report::capacity::highest_held(&steps, interrupted);
    let capacity = Capacity {
        scenario: base.name.clone(),
        slo: base.slo.clone(),
        steps,
        highest_held,
        bounded: bad.is_some(),
        groups: base.groups.count > 0,
        interrupted,
        stopped,
    };
    if let Some(dir) = &config.out_dir {
        capacity.write(dir).map_err(|source| RunError::Write {
            path: dir.display().to_string(),
            source,
        })?;
    }
    Ok(capacity)
}
