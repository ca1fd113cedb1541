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
use crate::run::{run, RunConfig, RunError};

/// Loads closer than this ratio are one load on any machine: the narrowing stops there.
const FINEST_RATIO: f64 = 1.01;

/// A step the search may not run.
enum Skipped {
    /// The run could not take place.
    Failed(RunError),
    /// The scenario at this load is not one `imbench run` would accept (it asks for more
    /// sends a second than any scenario may): the search stops growing here.
    OutOfBounds(crate::config::scenario::ScenarioError),
}

/// What the tries at one load came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tried {
    /// The load held.
    Held,
    /// The load failed: an SLO, or the run was invalid for its own reasons.
    Failed,
    /// Every try was spoiled by the machine alone: nothing is known of the load.
    Spoiled,
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

/// The load between one that held (`lo`) and one that failed (`hi`) to try next: their
/// geometric midpoint, or none when the two are within [`FINEST_RATIO`] of each other and
/// another step would try the same load under another name.
fn midpoint(lo: f64, hi: f64) -> Option<f64> {
    (hi / lo >= FINEST_RATIO).then(|| (lo * hi).sqrt())
}

/// The folder of step `n`: `step-01` and on, numbered with as many digits as the search's
/// last possible step needs (at least two), so that the folders sort in the order they ran.
fn step_folder(n: usize, opts: SearchOptions) -> String {
    let most = (opts.max_steps.saturating_add(opts.refine))
        .saturating_mul(opts.machine_retries.saturating_add(1));
    let width = most.max(10).to_string().len();
    format!("step-{n:0width$}")
}

/// A search under way: the steps so far and how to run another.
struct Search<'a, F> {
    config: &'a RunConfig,
    opts: SearchOptions,
    steps: Vec<Step>,
    on_step: F,
}

impl<F: FnMut(&Step)> Search<'_, F> {
    /// Whether the user stopped the search.
    fn interrupted(&self) -> bool {
        self.config
            .interrupt
            .as_ref()
            .is_some_and(|rx| *rx.borrow())
    }

    /// One run of the scenario at `load`, in the next step's folder.
    async fn run_step(&self, load: f64) -> Result<Step, Skipped> {
        let base = &self.config.scenario;
        let mut c = self.config.clone();
        c.scenario.direct.rate = base.direct.rate * load;
        c.scenario.groups.rate = base.groups.rate * load;
        c.out_dir = self
            .config
            .out_dir
            .as_ref()
            .map(|d| d.join(step_folder(self.steps.len() + 1, self.opts)));
        c.scenario.validate().map_err(Skipped::OutOfBounds)?;
        let outcome = run(c).await.map_err(Skipped::Failed)?;
        Ok(Step::from_report(load, &outcome.report, outcome.dir))
    }

    /// Runs `load` until a try is not the machine's alone or the tries again are spent,
    /// keeping every try among the steps: what they came to, or `None` when the user stopped
    /// the search.
    async fn try_load(&mut self, load: f64) -> Result<Option<Tried>, Skipped> {
        let mut tries = 0;
        loop {
            let mut step = self.run_step(load).await?;
            step.again = tries > 0;
            (self.on_step)(&step);
            let tried = if step.held() {
                Tried::Held
            } else if step.spoiled_by_machine() {
                Tried::Spoiled
            } else {
                Tried::Failed
            };
            self.steps.push(step);
            if self.interrupted() {
                return Ok(None);
            }
            if tried != Tried::Spoiled || tries >= self.opts.machine_retries {
                return Ok(Some(tried));
            }
            tries += 1;
        }
    }
}

/// Runs the search. `config.out_dir`, when set, gets one sub-folder per step, and
/// `capacity.json`, `capacity.md` and `capacity.html`. `on_step` sees each step as it finishes.
pub async fn find_max(
    config: RunConfig,
    opts: SearchOptions,
    on_step: impl FnMut(&Step),
) -> Result<Capacity, RunError> {
    let mut search = Search {
        config: &config,
        opts,
        steps: Vec::new(),
        on_step,
    };
    let mut good: Option<f64> = None;
    let mut bad: Option<f64> = None;
    let mut stopped = None;
    let mut machine = false;
    let mut load = 1.0;
    for _ in 0..opts.max_steps {
        match search.try_load(load).await {
            Ok(None) => break,
            Ok(Some(Tried::Held)) => {
                good = Some(load);
                load *= opts.growth;
            }
            Ok(Some(Tried::Failed)) => {
                bad = Some(load);
                break;
            }
            // The first load's own tries say so in the answer ("invalid on all N tries").
            Ok(Some(Tried::Spoiled)) if good.is_none() => break,
            Ok(Some(Tried::Spoiled)) => {
                let tries = opts.machine_retries + 1;
                stopped = Some(format!(
                    "the machine alone spoiled all {tries} tries at the next load, {load:.3}x \
                     (its CPUs busy with other work, or the process paused), so the capacity \
                     above this load is not known"
                ));
                machine = true;
                break;
            }
            Err(Skipped::Failed(e)) => return Err(e),
            Err(Skipped::OutOfBounds(e)) if !search.steps.is_empty() => {
                stopped = Some(format!("the next load, {load:.3}x, would be refused: {e}"));
                break;
            }
            // The first step is the scenario as given, which was checked already.
            Err(Skipped::OutOfBounds(e)) => return Err(RunError::Scenario(e)),
        }
    }
    if let (Some(mut lo), Some(mut hi), false) = (good, bad, search.interrupted()) {
        for _ in 0..opts.refine {
            let Some(mid) = midpoint(lo, hi) else { break };
            match search.try_load(mid).await {
                Ok(None) => break,
                Ok(Some(Tried::Held)) => lo = mid,
                Ok(Some(Tried::Failed)) => hi = mid,
                // Nothing known between the two: the interval stays as it is.
                Ok(Some(Tried::Spoiled)) => break,
                Err(Skipped::Failed(e)) => return Err(e),
                // Between two loads that were accepted: cannot happen, but is no reason to
                // lose the steps already run.
                Err(Skipped::OutOfBounds(_)) => break,
            }
        }
    }
    let interrupted = search.interrupted();
    let steps = search.steps;
    let base = &config.scenario;
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
        machine,
    };
    if let Some(dir) = &config.out_dir {
        capacity.write(dir).map_err(|source| RunError::Write {
            path: dir.display().to_string(),
            source,
            report: None,
        })?;
    }
    Ok(capacity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_narrowing_takes_the_geometric_midpoint_until_the_loads_are_within_one_percent() {
        let mid = midpoint(2.0, 8.0).expect("far apart");
        assert!((mid - 4.0).abs() < 1e-12, "{mid}");
        assert!(midpoint(1.0, 1.0101).is_some());
        assert_eq!(midpoint(1.0, 1.0099), None);
        assert_eq!(midpoint(3.0, 3.0), None);
    }

    #[test]
    fn step_folders_sort_in_the_order_the_steps_ran() {
        let default = SearchOptions::default();
        assert_eq!(step_folder(1, default), "step-01");
        assert_eq!(step_folder(42, default), "step-42");
        let long = SearchOptions {
            max_steps: 40,
            ..default
        };
        // (40 + 2) loads, each tried up to 3 times: 126 steps at most.
        assert_eq!(step_folder(7, long), "step-007");
        assert_eq!(step_folder(126, long), "step-126");
    }
}
