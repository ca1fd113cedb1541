//! The `imbench` command line: arguments ([`args`]), the configuration a run gets from them and
//! its scenario, and the commands: `run` ([`run`]), `report`, `compare` and `merge` on
//! report folders ([`reports`]), and `path`, an emulated network path held for a server started
//! by hand ([`path`]).

/// Writes to standard output and ignores a closed pipe: `imbench … | head` must not panic,
/// and a run whose reader went away still writes its report and exits with its own code. Any
/// other failure (a full disk behind a redirect) is said on stderr once the command ends.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        imbench_loadgen::stderr::stderr().before_stdout();
        crate::cli::stdout_written(write!(std::io::stdout(), $($arg)*));
    }};
}

/// [`out!`] with a newline.
macro_rules! outln {
    () => {{
        use std::io::Write as _;
        imbench_loadgen::stderr::stderr().before_stdout();
        crate::cli::stdout_written(writeln!(std::io::stdout()));
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        imbench_loadgen::stderr::stderr().before_stdout();
        crate::cli::stdout_written(writeln!(std::io::stdout(), $($arg)*));
    }};
}

/// The first failure to write standard output other than a closed pipe.
static STDOUT_FAILED: std::sync::OnceLock<std::io::Error> = std::sync::OnceLock::new();

/// Keeps the first failure of a write to standard output, for [`main`] to say: a reader that
/// went away is no failure, but a table lost to a full disk must not pass unnoticed.
fn stdout_written(result: std::io::Result<()>) {
    if let Err(e) = result {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            let _ = STDOUT_FAILED.set(e);
        }
    }
}

mod args;
mod path;
mod reports;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use args::RunArgs;

/// Benchmark and load-test instant messaging: delivery latency, fan-out, transports.
#[derive(Parser, Debug)]
#[command(name = "imbench", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a scenario and report latency, accounting and SLO verdicts.
    ///
    /// Exit codes: 0 all SLOs held, 1 an SLO failed, 2 bad command line or scenario,
    /// 3 the run is invalid (server unreachable, clients could not connect or were
    /// disconnected, generator saturated).
    Run(Box<RunArgs>),
    /// Re-render summary.md and report.html and print the table of a report folder (or
    /// report.json file; of NAME.json, NAME.summary.md and NAME.html); of a capacity
    /// search's folder (--find-max), capacity.md and capacity.html. Exits with the report's
    /// verdict, as the run did.
    Report {
        /// The report folder or its report.json, or a search's folder or its capacity.json.
        report: PathBuf,
    },
    /// Add shard reports of one load (run at the same time against one server) into one
    /// report: histograms added, counters summed, rates added over the longest shard's time,
    /// SLOs judged again.
    Merge {
        /// Report folders or report.json files; a folder without a report.json stands for the
        /// report folders in it (every shard's, collected in one folder).
        #[arg(required = true, num_args = 1..)]
        reports: Vec<PathBuf>,
        /// Folder for the merged report.
        #[arg(long)]
        out: PathBuf,
    },
    /// Bring up an emulated network path (needs root) and hold it until Ctrl-C: for a server
    /// started by hand on its server side (`ip netns exec …`) and `imbench run --namespace` on
    /// its client side. Prints the namespaces, addresses and commands.
    Path {
        /// A scenario whose [network] section is the path.
        scenario: Option<PathBuf>,
        /// A named path instead: lan, wifi, 4g, 3g, lossy.
        #[arg(long, value_name = "PROFILE", value_parser = args::held_path_profile)]
        network: Option<String>,
        /// Take the path down after this long, if not at Ctrl-C before (e.g. 10m).
        #[arg(long = "for", value_name = "DURATION", value_parser = imbench_loadgen::config::duration::parse)]
        hold: Option<std::time::Duration>,
    },
    /// Print reports side by side: each run of each report is a column, with its ratio to the
    /// first.
    Compare {
        /// Report folders or report.json files, the baseline first. Each may also be a folder
        /// of repeated runs (each in a subfolder with its report.json): the baseline's spread
        /// is the noise --fail-on-regression allows for, and a later folder's figure is the
        /// median of its runs.
        // At least two, checked when the command runs: with `num_args = 2..` clap counted the
        // reports on each side of an option apart (`compare a --check x b` was "1 provided").
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        /// Exit 1 when a figure of a later report is worse than the baseline's median by more
        /// than this (e.g. 10%) and by more than the baseline runs' own spread.
        #[arg(long, allow_hyphen_values = true, value_parser = imbench_loadgen::report::regression::parse_threshold)]
        fail_on_regression: Option<f64>,
        /// A figure to check, as SLOs name them (repeatable; default: direct.p50, direct.p99,
        /// ack.p99, group.p99, fanout.p99, file.p99, delivered_per_s and file_bytes_per_s,
        /// those present).
        #[arg(long = "check")]
        checks: Vec<String>,
    },
}

/// Ctrl-C or SIGTERM that comes before a command listens for them (while a network path comes
/// up, before the runtime runs): noted here instead of killing the process, which would leave
/// the path's namespaces behind, and taken as an interrupt once the command listens.
#[derive(Clone, Default)]
pub(crate) struct EarlyInterrupt(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl EarlyInterrupt {
    /// From now on Ctrl-C and SIGTERM are noted, not fatal: the caller must listen for them
    /// (with [`ctrl_c_or_term`]) before anything long.
    pub(crate) fn catch() -> Self {
        let early = Self::default();
        #[cfg(unix)]
        for signal in imbench_loadgen::stderr::interrupt_signals() {
            if let Err(e) = signal_hook::flag::register(signal, early.0.clone()) {
                imbench_loadgen::errln!("imbench: warning: listening for signal {signal}: {e}");
            }
        }
        early
    }

    fn came(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Waits for Ctrl-C or SIGTERM (what `timeout`, a CI job's cancel and `kill` send; treated
/// alike): whether one came (false when Ctrl-C cannot be listened for). One that `early` caught
/// before counts at once.
async fn ctrl_c_or_term(early: &EarlyInterrupt) -> bool {
    // Listening first, then looking at what came before: a signal between the two is seen
    // by one or the other.
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    #[cfg(unix)]
    let mut hup = (!imbench_server::process::hangup_ignored())
        .then(|| tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok())
        .flatten();
    if early.came() {
        return true;
    }
    #[cfg(unix)]
    {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => s.recv().await.is_some(),
                None => std::future::pending().await,
            }
        };
        if int.is_none() {
            return false;
        }
        tokio::select! {
            r = wait(int.take()) => r,
            r = wait(term.take()) => r,
            r = wait(hup.take()) => r,
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.is_ok()
    }
}

/// Parses the command line and runs the command; the process exit code.
pub fn main() -> ExitCode {
    use std::io::IsTerminal;
    // Before any handler is installed, which would hide it.
    imbench_server::process::hangup_ignored();
    // rumqttc warns once for every message an MQTT 5 broker refuses, and quinn-udp for the
    // sends of every client socket when the network under them goes (a held path taken
    // down): the run counts and names those already, and a line each would bury the table.
    // RUST_LOG still shows them.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,rumqttc=error,quinn_udp=error".into()),
        )
        // Through the queue every stderr line takes: a record logged by a task of the run
        // must not wait for a stderr nobody reads.
        .with_writer(imbench_loadgen::stderr::LogRecord::default)
        .with_ansi(std::io::stderr().is_terminal())
        // A log line that cannot be written (stderr a closed pipe) is dropped: by default the
        // subscriber says so with eprintln!, which panics there, in whichever task logged,
        // and a client's bad handshake is enough to make rustls or quinn log.
        .log_internal_errors(false)
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and the version: written as every table is, so that a failed write is told.
            let Some(text) = imbench_server::process::help_or_version(&e) else {
                e.exit()
            };
            outln!("{text}");
            if let Some(e) = STDOUT_FAILED.get() {
                imbench_loadgen::errln!(
                    "imbench: what it printed was lost: writing to standard output failed: {e}"
                );
            }
            imbench_loadgen::stderr::stderr().flush_at_exit();
            return ExitCode::SUCCESS;
        }
    };
    if let Err(e) = imbench_server::process::lock_in_memory() {
        imbench_loadgen::errln!(
            "imbench: note: could not lock its code in memory ({e}); where the machine pages out idle memory, a page fault can delay a send (run as root or raise `ulimit -l`)"
        );
    }
    let code = match cli.command {
        Command::Run(args) => ExitCode::from(run::run(*args)),
        Command::Report { report } => ExitCode::from(reports::rerender(&report)),
        Command::Compare {
            reports,
            fail_on_regression,
            checks,
        } => ExitCode::from(reports::compare(&reports, fail_on_regression, &checks)),
        Command::Merge { reports, out } => ExitCode::from(reports::merge(&reports, &out)),
        Command::Path {
            scenario,
            network,
            hold,
        } => ExitCode::from(path::hold(network.as_deref(), scenario.as_ref(), hold)),
    };
    if let Some(e) = STDOUT_FAILED.get() {
        imbench_loadgen::errln!(
            "imbench: what it printed was lost: writing to standard output failed: {e}"
        );
    }
    // The process ends when what it had to say is said: a stderr nobody reads holds up its
    // exit (until Ctrl-C or SIGTERM), no longer its run or its report.
    imbench_loadgen::stderr::stderr().flush_at_exit();
    code
}
