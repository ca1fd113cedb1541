//! One scenario run once per transport, with the same seed and so the same send schedule
//! message for message, and one report with a run per transport (compared side by side by
//! `report::comparison`).

use imbench_transport::Transport;

use crate::report::comparison::combine;
use crate::report::Report;
use crate::run::{run, RunConfig, RunError, RunOutcome};

/// Runs `config` once per transport in `transports`, in order, and returns one report with a
/// run per transport. `config.out_dir`, when set, receives the combined report.json. `remote`
/// gives, for a remote server, the address of each transport (ignored when embedded).
pub async fn run_each(
    config: RunConfig,
    transports: &[Transport],
    mut on_run: impl FnMut(&Report),
    mut configure: impl FnMut(&mut RunConfig, Transport) -> Result<(), RunError>,
) -> Result<RunOutcome, RunError> {
    // Refuse before the first run what a later one could not hold, rather than after it.
    for &t in transports {
        crate::run::check_files(&config, t)?;
    }
    let mut reports = Vec::new();
    for &t in transports {
        let mut c = config.clone();
        c.transport = t;
        c.out_dir = None;
        configure(&mut c, t)?;
        let outcome = run(c).await?;
        on_run(&outcome.report);
        reports.push(outcome.report);
    }
    let report = combine(reports).ok_or(RunError::NoTransport)?;
    RunOutcome::written(report, config.out_dir.as_deref())
}
