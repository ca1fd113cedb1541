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

/// What runs the search's steps: whole runs of the scenario, or (in tests) a table.
trait Steps {
    /// One run at `load`, as step `n` (from 1).
    async fn run_step(&self, load: f64, n: usize) -> Result<Step, Skipped>;
    /// Whether the user stopped the search.
    fn interrupted(&self) -> bool;
    /// Whether the interrupt cut the last step run short (not when it came once that step
    /// had measured everything).
    fn last_step_cut(&self) -> bool {
        true
    }
}

/// Steps that are runs of `config`'s scenario, each in its folder under its `out_dir`.
struct Runs<'a> {
    config: &'a RunConfig,
    opts: SearchOptions,
    /// Whether an interrupt cut the last step run short.
    last_cut: std::cell::Cell<bool>,
}

impl Steps for Runs<'_> {
    async fn run_step(&self, load: f64, n: usize) -> Result<Step, Skipped> {
        let base = &self.config.scenario;
        let mut c = self.config.clone();
        c.scenario.direct.rate = base.direct.rate * load;
        c.scenario.groups.rate = base.groups.rate * load;
        c.out_dir = self
            .config
            .out_dir
            .as_ref()
            .map(|d| d.join(step_folder(n, self.opts)));
        c.scenario.validate().map_err(Skipped::OutOfBounds)?;
        let mut cuts = crate::run::measuring::Cuts::from_now();
        let outcome = run(c).await;
        self.last_cut.set(cuts.since());
        let outcome = outcome.map_err(Skipped::Failed)?;
        Ok(Step::from_report(load, &outcome.report, outcome.dir))
    }

    fn interrupted(&self) -> bool {
        self.config
            .interrupt
            .as_ref()
            .is_some_and(|rx| *rx.borrow())
    }

    fn last_step_cut(&self) -> bool {
        self.last_cut.get()
    }
}

/// A search under way: the steps so far and how to run another.
struct Search<'a, R, F> {
    runner: &'a R,
    opts: SearchOptions,
    steps: Vec<Step>,
    on_step: F,
}

/// Where a search ended.
struct Searched {
    steps: Vec<Step>,
    /// A load above the highest that held failed.
    bounded: bool,
    /// Why it stopped before a load failed, if it did.
    stopped: Option<String>,
    /// The machine, not the load, ended it.
    machine: bool,
    /// A step could not run (its run failed to start or to reach the server).
    cut_off: bool,
    interrupted: bool,
    /// Interrupted once the last step had measured everything: that step counts.
    last_step_whole: bool,
}

impl<R: Steps, F: FnMut(&Step)> Search<'_, R, F> {
    fn interrupted(&self) -> bool {
        self.runner.interrupted()
    }

    async fn run_step(&self, load: f64) -> Result<Step, Skipped> {
        self.runner.run_step(load, self.steps.len() + 1).await
    }

    /// Runs `load` until a try is not the machine's alone or the tries again are spent,
    /// keeping every try among the steps: what they came to, or `None` when the user stopped
    /// the search.
    async fn try_load(&mut self, load: f64) -> Result<Option<Tried>, Skipped> {
        let mut tries = 0;
        loop {
            let mut step = match self.run_step(load).await {
                // Ctrl-C before this step's run began: the search ends with the steps before
                // (before the first, nothing ran and the error says so).
                Err(Skipped::Failed(RunError::InterruptedBeforeStart))
                    if !self.steps.is_empty() =>
                {
                    crate::errln!(
                        "imbench: interrupted before step {} began; the search ends",
                        self.steps.len() + 1
                    );
                    return Ok(None);
                }
                step => step?,
            };
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

/// Grows the load until one fails (or the steps run out, or the next load is out of bounds),
/// then narrows the interval between the last that held and the first that failed.
async fn search<R: Steps>(
    runner: &R,
    opts: SearchOptions,
    on_step: impl FnMut(&Step),
) -> Result<Searched, RunError> {
    let mut search = Search {
        runner,
        opts,
        steps: Vec::new(),
        on_step,
    };
    let mut good: Option<f64> = None;
    let mut bad: Option<f64> = None;
    let mut stopped = None;
    let mut machine = false;
    let mut cut_off = false;
    // A step that could not run once others had: the search ends with the steps it has,
    // written and summed up, rather than lose them to the error.
    let mut could_not_run = |e: RunError, n: usize, then: String| {
        cut_off = true;
        format!("step {n} could not run ({e}), so {then}")
    };
    let mut load = 1.0;
    // Every outcome but a held load ends the rise: set after the loop, it ran out of steps.
    let mut last_held = false;
    for _ in 0..opts.max_steps {
        last_held = false;
        match search.try_load(load).await {
            Ok(None) => break,
            Ok(Some(Tried::Held)) => {
                good = Some(load);
                load *= opts.growth;
                last_held = true;
            }
            Ok(Some(Tried::Failed)) => {
                bad = Some(load);
                break;
            }
            // The machine ended the search at its first load: the answer says so in words
            // ("invalid on all N tries"), and `machine` for a script that tries again.
            Ok(Some(Tried::Spoiled)) if good.is_none() => {
                let tries = opts.machine_retries + 1;
                stopped = Some(format!(
                    "the machine alone spoiled all {tries} tries at the first load, {load:.3}x \
                     (its CPUs busy with other work, or the process paused), so nothing is \
                     known of the capacity"
                ));
                machine = true;
                break;
            }
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
            Err(Skipped::Failed(e)) if !search.steps.is_empty() => {
                let then = match good {
                    Some(_) => "the capacity above the highest load that held is not known",
                    None => "no load held before it",
                };
                stopped = Some(could_not_run(e, search.steps.len() + 1, then.into()));
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
    if last_held && !search.interrupted() {
        stopped = Some(if opts.max_steps == 1 {
            "the one load tried held (--max-steps 1), so the capacity is higher".to_string()
        } else {
            format!(
                "all {} rising loads held (--max-steps), so the capacity is higher",
                opts.max_steps
            )
        });
    }
    if let (Some(mut lo), Some(mut hi), false) = (good, bad, search.interrupted()) {
        // Whether the step that failed at `hi` lost every connection: the load's doing (a
        // server that closed them all), or the server's going away, which the next step
        // then finds.
        let lost_all = |steps: &[Step]| steps.last().is_some_and(Step::lost_every_connection);
        let mut hi_lost_all = lost_all(&search.steps);
        // The lowest load that failed for the load's sake, the bound left when the server
        // turns out to have gone.
        let mut failed = (!hi_lost_all).then_some(hi);
        for _ in 0..opts.refine {
            let Some(mid) = midpoint(lo, hi) else { break };
            match search.try_load(mid).await {
                Ok(None) => break,
                Ok(Some(Tried::Held)) => lo = mid,
                Ok(Some(Tried::Failed)) => {
                    hi = mid;
                    hi_lost_all = lost_all(&search.steps);
                    if !hi_lost_all {
                        failed = Some(mid);
                    }
                }
                // Nothing known between the two: the interval stays as it is, and says so.
                Ok(Some(Tried::Spoiled)) => {
                    let tries = opts.machine_retries + 1;
                    stopped = Some(format!(
                        "the machine alone spoiled all {tries} tries at {mid:.3}x, so the \
                         narrowing stopped: the capacity lies between {lo:.3}x, which held, \
                         and {hi:.3}x, which failed"
                    ));
                    break;
                }
                // The server went away: the load at `hi` did not fail, it lost the server.
                Err(Skipped::Failed(e)) if hi_lost_all => {
                    bad = failed;
                    let gone = format!(
                        "the server went away: the step at {hi:.3}x lost every connection and \
                         this one could not reach it, so"
                    );
                    let then = match failed {
                        Some(f) => format!(
                            "{gone} the narrowing stopped: the capacity lies between {lo:.3}x, \
                             which held, and {f:.3}x, which failed"
                        ),
                        None => {
                            format!("{gone} the capacity above {lo:.3}x, which held, is not known")
                        }
                    };
                    stopped = Some(could_not_run(e, search.steps.len() + 1, then));
                    break;
                }
                Err(Skipped::Failed(e)) => {
                    let then = format!(
                        "the narrowing stopped: the capacity lies between {lo:.3}x, which held, \
                         and {hi:.3}x, which failed"
                    );
                    stopped = Some(could_not_run(e, search.steps.len() + 1, then));
                    break;
                }
                // Between two loads that were accepted: cannot happen, but is no reason to
                // lose the steps already run.
                Err(Skipped::OutOfBounds(_)) => break,
            }
        }
    }
    let interrupted = search.interrupted();
    Ok(Searched {
        interrupted,
        last_step_whole: interrupted && !runner.last_step_cut(),
        steps: search.steps,
        bounded: bad.is_some(),
        stopped,
        machine,
        cut_off,
    })
}

/// Runs the search. `config.out_dir`, when set, gets one sub-folder per step, and
/// `capacity.json`, `capacity.md` and `capacity.html`. `on_step` sees each step as it finishes.
pub async fn find_max(
    config: RunConfig,
    opts: SearchOptions,
    on_step: impl FnMut(&Step),
) -> Result<Capacity, RunError> {
    let runs = Runs {
        config: &config,
        opts,
        last_cut: std::cell::Cell::new(false),
    };
    let Searched {
        steps,
        bounded,
        stopped,
        machine,
        cut_off,
        interrupted,
        last_step_whole,
    } = search(&runs, opts, on_step).await?;
    let base = &config.scenario;
    let highest_held =
        crate::report::capacity::highest_held(&steps, interrupted && !last_step_whole);
    let capacity = Capacity {
        scenario: base.name.clone(),
        slo: base.slo.clone(),
        steps,
        highest_held,
        bounded,
        groups: base.groups.count > 0,
        interrupted,
        last_step_whole,
        stopped,
        machine,
        cut_off,
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
    use crate::report::Verdict;

    /// Steps whose verdict is a function of the load and of how many steps ran before.
    struct Table<V: Fn(f64, usize) -> (Verdict, &'static str)> {
        verdict: V,
        run: std::sync::atomic::AtomicUsize,
    }

    impl<V: Fn(f64, usize) -> (Verdict, &'static str)> Steps for Table<V> {
        async fn run_step(&self, load: f64, n: usize) -> Result<Step, Skipped> {
            let before = self.run.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            assert_eq!(n, before + 1, "steps are numbered in the order run");
            let (verdict, why) = (self.verdict)(load, before);
            Ok(Step {
                load,
                direct_rate: load,
                group_rate: 0.0,
                sent_per_s: load * 100.0,
                delivered_per_s: load * 100.0,
                direct_p50_us: 0,
                direct_p99_us: 0,
                group_p50_us: 0,
                group_p99_us: 0,
                fanout_p50_us: 0,
                fanout_p99_us: 0,
                lost: 0,
                verdict,
                why: if why.is_empty() {
                    vec![]
                } else {
                    vec![why.to_string()]
                },
                report: None,
                again: false,
                timer: None,
            })
        }

        fn interrupted(&self) -> bool {
            false
        }
    }

    /// A step's verdict as a plain function of its load and the steps run before it.
    type StepVerdict = fn(f64, usize) -> (Verdict, &'static str);

    /// Steps that all hold, interrupted once `stop_after` have run; `cut` says whether the
    /// interrupt cut the last of them short.
    struct Interrupted {
        table: Table<StepVerdict>,
        stop_after: usize,
        cut: bool,
    }

    impl Steps for Interrupted {
        async fn run_step(&self, load: f64, n: usize) -> Result<Step, Skipped> {
            self.table.run_step(load, n).await
        }

        fn interrupted(&self) -> bool {
            self.table.run.load(std::sync::atomic::Ordering::Relaxed) >= self.stop_after
        }

        fn last_step_cut(&self) -> bool {
            self.cut
        }
    }

    #[test]
    fn an_interrupt_after_a_step_measured_everything_keeps_that_step_whole() {
        for cut in [true, false] {
            let runner = Interrupted {
                table: Table {
                    verdict: |_, _| (Verdict::Ok, ""),
                    run: Default::default(),
                },
                stop_after: 2,
                cut,
            };
            let done = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime")
                .block_on(search(&runner, OPTS, |_| {}))
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(done.interrupted);
            assert_eq!(done.steps.len(), 2);
            assert_eq!(done.last_step_whole, !cut);
            let highest = crate::report::capacity::highest_held(&done.steps, !done.last_step_whole);
            assert_eq!(highest, Some(if cut { 0 } else { 1 }), "cut: {cut}");
        }
    }

    const MACHINE: &str = "the machine was the limit: its 2 CPUs were 99% busy (limit 90%)";
    const OPTS: SearchOptions = SearchOptions {
        growth: 2.0,
        max_steps: 8,
        refine: 2,
        machine_retries: 2,
    };

    fn searched(verdict: impl Fn(f64, usize) -> (Verdict, &'static str)) -> (Searched, Vec<f64>) {
        let table = Table {
            verdict,
            run: Default::default(),
        };
        let done = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(search(&table, OPTS, |_| {}))
            .unwrap_or_else(|e| panic!("{e}"));
        let loads = done.steps.iter().map(|s| s.load).collect();
        (done, loads)
    }

    #[test]
    fn a_load_the_machine_spoiled_on_every_try_ends_the_search_as_the_machines() {
        // Loads up to 2 hold; 4 is spoiled by the machine every time.
        let (done, loads) = searched(|load, _| {
            if load <= 2.0 {
                (Verdict::Ok, "")
            } else {
                (Verdict::Invalid, MACHINE)
            }
        });
        assert_eq!(loads, [1.0, 2.0, 4.0, 4.0, 4.0]);
        assert!(
            done.machine && !done.bounded,
            "nothing failed for the load's sake"
        );
        let why = done.stopped.expect("says why it stopped");
        assert!(
            why.contains("all 3 tries at the next load, 4.000x"),
            "{why}"
        );
    }

    #[test]
    fn a_try_spoiled_once_runs_again_and_the_search_goes_on() {
        // The machine spoils the first try at 4 only; 8 fails on an SLO.
        let (done, loads) = searched(|load, run| match load {
            l if l == 4.0 && run == 2 => (Verdict::Invalid, MACHINE),
            l if l < 8.0 => (Verdict::Ok, ""),
            _ => (Verdict::SloFailed, "direct.p99 < 1ms was 3ms"),
        });
        assert_eq!(&loads[..5], [1.0, 2.0, 4.0, 4.0, 8.0]);
        assert!(done.bounded && !done.machine && done.stopped.is_none());
        assert!(done.steps[3].again, "the second try at 4 says so");
    }

    #[test]
    fn a_midpoint_the_machine_spoiled_stops_the_narrowing_and_says_between_what() {
        // 1 and 2 hold, 4 fails on an SLO, the midpoint (2.83) is the machine's every time.
        let (done, loads) = searched(|load, _| match load {
            l if l <= 2.0 => (Verdict::Ok, ""),
            4.0 => (Verdict::SloFailed, "lost == 0 was 3"),
            _ => (Verdict::Invalid, MACHINE),
        });
        assert_eq!(loads.len(), 6, "{loads:?}");
        assert!(loads[3..].iter().all(|l| (l - 8f64.sqrt()).abs() < 1e-9));
        assert!(
            done.bounded && !done.machine,
            "4 failed for the load's sake"
        );
        let why = done.stopped.expect("says why the narrowing stopped");
        assert!(
            why.contains("between 2.000x, which held, and 4.000x, which failed"),
            "{why}"
        );
    }

    /// Steps that hold until step `fails_at`, which cannot run at all (the server gone).
    struct Unreachable {
        table: Table<StepVerdict>,
        fails_at: usize,
    }

    impl Steps for Unreachable {
        async fn run_step(&self, load: f64, n: usize) -> Result<Step, Skipped> {
            if n == self.fails_at {
                return Err(Skipped::Failed(RunError::Unsupported(
                    "cannot reach the server".into(),
                )));
            }
            self.table.run_step(load, n).await
        }

        fn interrupted(&self) -> bool {
            false
        }
    }

    #[test]
    fn a_server_that_went_away_mid_step_does_not_bound_the_capacity() {
        // 1 and 2 hold, 4 loses every connection, and the next step cannot reach the server.
        const LOST: &str = "stopped early: every client (50) lost its connection: the server \
                            is gone, or closed them all";
        assert!(LOST.contains(crate::report::capacity::EVERY_CONNECTION_LOST));
        let runner = Unreachable {
            table: Table {
                verdict: |load, _| match load {
                    l if l <= 2.0 => (Verdict::Ok, ""),
                    _ => (Verdict::Invalid, LOST),
                },
                run: Default::default(),
            },
            fails_at: 4,
        };
        let done = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(search(&runner, OPTS, |_| {}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(done.steps.len(), 3);
        assert!(
            done.cut_off && !done.bounded,
            "nothing failed for the load's sake"
        );
        let why = done.stopped.expect("says why it stopped");
        assert!(
            why.contains("the server went away") && why.contains("above 2.000x"),
            "{why}"
        );
        // 4 fails on an SLO, the midpoint (2.83) loses the server: 4 still bounds it.
        let runner = Unreachable {
            table: Table {
                verdict: |load, _| match load {
                    l if l <= 2.0 => (Verdict::Ok, ""),
                    4.0 => (Verdict::SloFailed, "lost == 0 was 3"),
                    _ => (Verdict::Invalid, LOST),
                },
                run: Default::default(),
            },
            fails_at: 5,
        };
        let done = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(search(&runner, OPTS, |_| {}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(done.steps.len(), 4);
        assert!(done.cut_off && done.bounded, "4 failed for the load's sake");
        let why = done.stopped.expect("says why it stopped");
        assert!(
            why.contains("the server went away")
                && why.contains("between 2.000x, which held, and 4.000x, which failed"),
            "{why}"
        );
    }

    #[test]
    fn a_step_that_cannot_run_ends_the_search_with_the_steps_it_has() {
        let runner = Unreachable {
            table: Table {
                verdict: |_, _| (Verdict::Ok, ""),
                run: Default::default(),
            },
            fails_at: 3,
        };
        let search_of = |runner: &Unreachable| {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime")
                .block_on(search(runner, OPTS, |_| {}))
        };
        let done = search_of(&runner).unwrap_or_else(|e| panic!("the steps were lost: {e}"));
        assert_eq!(done.steps.len(), 2);
        assert!(done.cut_off && !done.bounded && !done.machine);
        let why = done.stopped.expect("says why it stopped");
        assert!(
            why.starts_with("step 3 could not run (") && why.contains("cannot reach the server"),
            "{why}"
        );
        // The first step that cannot run is the search's error: there is nothing to keep.
        let first = Unreachable {
            table: Table {
                verdict: |_, _| (Verdict::Ok, ""),
                run: Default::default(),
            },
            fails_at: 1,
        };
        assert!(search_of(&first).is_err());
    }

    #[test]
    fn a_search_whose_every_load_held_says_it_ran_out_of_steps() {
        let (done, loads) = searched(|_, _| (Verdict::Ok, ""));
        assert_eq!(loads.len(), OPTS.max_steps);
        assert!(!done.bounded && !done.machine);
        let why = done.stopped.expect("says why it stopped");
        assert!(
            why.contains("all 8 rising loads held (--max-steps)"),
            "{why}"
        );
    }

    #[test]
    fn a_first_load_the_machine_spoiled_on_every_try_ends_the_search_as_the_machines() {
        let (done, loads) = searched(|_, _| (Verdict::Invalid, MACHINE));
        assert_eq!(loads, [1.0, 1.0, 1.0]);
        assert!(done.machine && !done.bounded);
        let why = done.stopped.as_deref().unwrap_or_default();
        assert!(why.contains("all 3 tries at the first load"), "{why}");
    }

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
