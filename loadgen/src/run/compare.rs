//! One scenario run once per leg — a transport to imbench's server, or another system — with
//! the same seed and so the same send schedule message for message, and one report with a run
//! per leg (compared side by side by `report::comparison`).

use imbench_transport::Transport;

use crate::report::comparison::combine;
use crate::report::{Report, Verdict};
use crate::run::{run, RunConfig, RunError, RunOutcome, ServerSpec};

pub use crate::report::comparison::GONE_BEFORE_IT_RAN;

/// What one run of a comparison loads, and over which transport.
#[derive(Clone)]
pub struct Leg {
    /// The transport (TCP for another system's protocol).
    pub transport: Transport,
    /// The system.
    pub server: ServerSpec,
    /// Its name in the reports, when the transport or system alone would not tell it apart.
    pub label: Option<String>,
    /// The target's URL as given, its password hidden (see `RunConfig::target_url`).
    pub target_url: Option<String>,
}

/// The run of `config` over one leg.
fn leg_config(config: &RunConfig, leg: &Leg) -> RunConfig {
    let mut c = config.clone();
    c.transport = leg.transport;
    c.server = leg.server.clone();
    c.label = leg.label.clone();
    c.target_url = leg.target_url.clone();
    c.out_dir = None;
    c
}

/// Checks, before anything is brought up (`on_path`: the network path the run will make or
/// join), that the machine has the memory and the open files each leg's run needs.
pub fn check_files_each(config: &RunConfig, legs: &[Leg], on_path: bool) -> Result<(), RunError> {
    for leg in legs {
        let c = leg_config(config, leg);
        crate::run::check_files_on(&c, c.transport, on_path)?;
    }
    Ok(())
}

/// Checks that each leg's run could take place (the scenario is one its target can run, and
/// the target is reached and logged in to), without running any. Every target is checked, so
/// that one invocation names each one that is wrong.
pub async fn check_each(config: &RunConfig, legs: &[Leg]) -> Result<(), RunError> {
    let mut failed = Vec::new();
    for leg in legs {
        match crate::run::probe(&leg_config(config, leg)).await {
            Ok(()) => {}
            Err(e @ RunError::InterruptedBeforeStart) => return Err(e),
            Err(e) => failed.push(e),
        }
    }
    match failed.len() {
        0 => Ok(()),
        1 => Err(failed.remove(0)),
        _ => Err(RunError::Several(failed)),
    }
}

/// Runs `config` once per leg, in order, and returns one report with a run per leg.
/// `config.out_dir`, when set, receives the combined report.json.
pub async fn run_each(
    config: RunConfig,
    legs: &[Leg],
    on_run: impl FnMut(&Report),
) -> Result<RunOutcome, RunError> {
    run_each_again(config, legs, false, on_run).await
}

/// [`run_each`], `again` after the same legs ran before (a repeat): the check of every leg
/// before the first is not made again, so that a target that went away since is reported as a
/// run that could not take place beside the others' runs, not made the end of them all.
pub async fn run_each_again(
    config: RunConfig,
    legs: &[Leg],
    again: bool,
    mut on_run: impl FnMut(&Report),
) -> Result<RunOutcome, RunError> {
    // Refuse before the first run what a later one could not hold, reach or log in to,
    // rather than after the earlier ones ran.
    if legs.len() > 1 && !again {
        check_each(&config, legs).await?;
    }
    let interrupted = || config.interrupt.as_ref().is_some_and(|rx| *rx.borrow());
    let mut reports = Vec::new();
    let mut not_run = Vec::new();
    // Runs that could not take place although their target passed the check (it went away
    // in the meantime, say): the others are still measured and reported.
    let mut failed: Vec<(String, RunError)> = Vec::new();
    for (i, leg) in legs.iter().enumerate() {
        let name = || super::run_name(leg.label.as_deref(), &leg.server, leg.transport);
        let others = if i + 1 < legs.len() {
            "; going on with the others"
        } else {
            ""
        };
        if interrupted() && !reports.is_empty() {
            // Ctrl-C during an earlier leg: the legs that ran are the report.
            not_run.push(name());
            continue;
        }
        match run(leg_config(&config, leg)).await {
            Ok(outcome) => {
                on_run(&outcome.report);
                reports.push(outcome.report);
            }
            // Ctrl-C while this leg connected: what it says of the server is the interrupt's
            // doing, and the legs that ran before are still the report.
            Err(_) if interrupted() && !reports.is_empty() => {
                crate::errln!(
                    "imbench: interrupted before {} began: it does not run",
                    name()
                );
                not_run.push(name());
            }
            Err(e @ RunError::InterruptedBeforeStart) => return Err(e),
            Err(e) if legs.len() == 1 => return Err(e),
            Err(e) => {
                crate::errln!(
                    "imbench: {}: the run could not take place: {e}{others}",
                    name()
                );
                failed.push((name(), e));
            }
        }
    }
    if !not_run.is_empty() {
        // Legs left out: a repeat does not count this comparison as whole.
        super::measuring::note_cut();
    }
    if reports.is_empty() {
        let mut errors: Vec<RunError> = failed.into_iter().map(|(_, e)| e).collect();
        return Err(match errors.len() {
            0 => RunError::NoTransport,
            1 => errors.remove(0),
            _ => RunError::Several(errors),
        });
    }
    let mut report = combine(reports).ok_or(RunError::NoTransport)?;
    // A comparison that lacks some of what was asked is no comparison to pass on.
    let mut missing = |why: String| {
        report.verdict = Verdict::Invalid;
        report.ok = false;
        report.invalid_reasons.push(why);
    };
    for (name, e) in &failed {
        missing(format!("{name}: {GONE_BEFORE_IT_RAN}: {e}"));
    }
    if !not_run.is_empty() {
        missing(format!("interrupted: {} did not run", not_run.join(", ")));
    }
    RunOutcome::written(report, config.out_dir.as_deref())
}
