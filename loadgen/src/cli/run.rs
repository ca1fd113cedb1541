//! `imbench run`: one run, repeated runs, a transport comparison or a capacity search.

use imbench_loadgen::run::compare::Leg;
use imbench_loadgen::{exit_code, RunConfig};

use super::args::{configure, RunArgs};

/// Why a path `imbench run` makes cannot serve a server of one's own, and what to do instead.
const PATH_FOR_EMBEDDED_ONLY: &str = "a path that imbench run makes (--network, [network]) \
     carries the embedded server's traffic only; for a server of your own, hold the path with \
     `imbench path` and give --namespace (docs/network.md)";

pub(crate) fn run(args: RunArgs) -> u8 {
    // `--network loopback` makes no path: beside a server of one's own it takes a scenario's
    // [network] away (a lossy scenario run against that server as it is).
    let makes_a_path = args
        .network
        .as_deref()
        .is_some_and(|n| !n.eq_ignore_ascii_case(imbench_loadgen::config::network::LOOPBACK));
    if makes_a_path && (!args.server.is_empty() || !args.target.is_empty()) {
        imbench_loadgen::errln!("imbench: {PATH_FOR_EMBEDDED_ONLY}");
        return exit_code::USAGE;
    }
    let (config, legs) = match configure(&args) {
        Ok(configured) => configured,
        Err(e) => {
            imbench_loadgen::errln!("imbench: {}", imbench_server::error_line::causes(&e));
            return exit_code::USAGE;
        }
    };
    // The server side of a held path, dialled from outside it: nothing there answers, and
    // the run would say only that (the server's banner inside the path prints this address).
    let path_server = imbench_netpath::SERVER_ADDR.to_string();
    let dials_path_server = legs
        .iter()
        .any(|l| l.server.host() == Some(path_server.clone()));
    if args.namespace.is_none() && dials_path_server {
        let held = imbench_loadgen::config::held_path::held_client_namespaces();
        // Where the machine's own network is that one, the address is a real host of it too
        // (a path, inside its namespaces, is apart from them): said only while a path is held.
        // Inside a path's server side it is this side's own.
        use imbench_netpath::ServerAddrHere;
        let here = imbench_netpath::server_addr_here();
        // A process put on a held path's client side by hand (`ip netns exec`) is where it
        // should be. (The address is not a test of that: a machine may have it for its own.)
        let on_a_held_path = held.iter().any(|ns| same_namespace_as(ns));
        let hint = match here {
            ServerAddrHere::Own => false,
            ServerAddrHere::OnANetwork => !held.is_empty(),
            ServerAddrHere::Elsewhere => true,
        };
        if !on_a_held_path && hint {
            imbench_loadgen::errln!(
                "imbench: {path_server} is where `imbench path` puts a path's server side, reached only from its client side: {}",
                match held.as_slice() {
                    [] => "no path is held now (`imbench path` holds one)".to_string(),
                    [one] => format!("give --namespace {one}"),
                    more => format!("give --namespace with one of {}", more.join(", ")),
                }
            );
        }
    }
    // --namespace is checked first: a scenario's [network] must not quietly make a path of
    // its own instead.
    if let Some(name) = &args.namespace {
        if matches!(config.server, imbench_loadgen::ServerSpec::Embedded) {
            imbench_loadgen::errln!(
                "imbench: --namespace puts the clients on the client side of a path, where \
                 the embedded server is not: give the --server (or --target) you started on \
                 its server side, or --network for a path with the embedded server on it"
            );
            return exit_code::USAGE;
        }
        if name.starts_with(imbench_netpath::netns::PREFIX) && name.ends_with("-server") {
            imbench_loadgen::errln!(
                "imbench: --namespace {name} is the server side of a path: give its client \
                 side, the `-client` namespace `imbench path` printed"
            );
            return exit_code::USAGE;
        }
        if !imbench_netpath::is_root() {
            imbench_loadgen::errln!(
                "imbench: --namespace needs root (it joins a network namespace)"
            );
            return exit_code::USAGE;
        }
        if !imbench_netpath::netns::exists(name) {
            imbench_loadgen::errln!(
                "imbench: --namespace {name}: no such network namespace (`ip netns list` \
                 lists them; `imbench path` prints the one to give)"
            );
            return exit_code::USAGE;
        }
    }
    // What cannot run is refused before anything is brought up (a network path, above all).
    if args.find_max && legs.len() > 1 {
        imbench_loadgen::errln!("imbench: --find-max searches one transport or target at a time");
        return exit_code::USAGE;
    }
    let scales = |s: &imbench_loadgen::Scenario| {
        s.direct.rate > 0.0 || (s.groups.count > 0 && s.groups.rate > 0.0)
    };
    if args.find_max && !scales(&config.scenario) {
        // Every step would run the same load, and "held" at each would read as a capacity.
        imbench_loadgen::errln!(
            "imbench: --find-max raises the direct and group rates, and scenario {:?} has neither above 0 (with --rate and --group-rate as given; files and churn keep their own rates): give it [direct] or [groups] with a rate above 0",
            config.scenario.name
        );
        return exit_code::USAGE;
    }
    if args.repeat == 0 {
        imbench_loadgen::errln!("imbench: --repeat must be at least 1");
        return exit_code::USAGE;
    }
    if let Err(e) = imbench_loadgen::run::check_runnable(&config) {
        imbench_loadgen::errln!("imbench: {e}");
        return e.exit_code();
    }
    if let Some(addr) = args.metrics_addr {
        // Bound for real once the runtime runs; a port that is taken is said now.
        if let Err(e) = std::net::TcpListener::bind(addr) {
            imbench_loadgen::errln!("imbench: serving metrics on {addr} (--metrics-addr): {e}");
            return exit_code::USAGE;
        }
    }
    let spec = match network_spec(&config, args.namespace.is_some()) {
        Ok(spec) => spec,
        Err(code) => return code,
    };
    let on_path = spec.is_some() || args.namespace.is_some();
    // On a held path, its recorded [network] (shared or a link per client) decides whether the
    // clients need a socket each, not the scenario's (read again once the path is joined).
    let mut checked = config.clone();
    if let Some(name) = &args.namespace {
        checked.scenario.network = imbench_loadgen::config::held_path::HeldPath::read(name);
    }
    if let Err(e) = imbench_loadgen::run::compare::check_files_each(&checked, &legs, on_path) {
        imbench_loadgen::errln!("imbench: {e}");
        return e.exit_code();
    }
    let mut config = config;
    // A folder this run creates and then leaves empty (it failed, or was quit, before writing
    // anything) is removed again however the command ends, so that nothing is left to be
    // mistaken for a report.
    let mut created = config
        .out_dir
        .as_deref()
        .map(missing_folders)
        .unwrap_or_default();
    // The default folder is named after the second the run started: a run started in the same
    // second (in parallel, or one after a short one) takes the next free name instead of
    // writing over the other's report.
    if let (None, Some(root)) = (&args.out, &config.out_dir) {
        match reserve_folder(root) {
            Ok(reserved) => {
                created.retain(|dir| dir != root);
                created.insert(0, reserved.clone());
                config.out_dir = Some(reserved);
            }
            Err(e) => {
                imbench_loadgen::errln!(
                    "imbench: making the report folder {}: {e}",
                    root.display()
                );
                return exit_code::USAGE;
            }
        }
    }
    let mut created_guard = RemovedIfEmpty(created.clone());
    // A Ctrl-C from here on is noted and taken once the runtime listens, so that the folder
    // and the network path are always cleaned up.
    let early = super::EarlyInterrupt::catch();
    let several = args.repeat > 1 || args.find_max;
    // Held until the command ends: another run given the same folder meanwhile is refused.
    let _held = match &config.out_dir {
        Some(root) => match check_out_dir(root, several).and_then(|()| hold_out_dir(root)) {
            Ok(folder) => {
                if several {
                    let what = if args.find_max {
                        "search\n"
                    } else {
                        "repeat\n"
                    };
                    // Unwritable, the folder fails the run's own writes, which say so.
                    let _ = std::fs::write(root.join(SEVERAL_RUNS_MARK), what);
                }
                Some(folder)
            }
            Err(why) => {
                // A folder another run holds is that run's, even while it is still empty.
                if locked_by_another(root) {
                    created_guard.0.clear();
                }
                imbench_loadgen::errln!("imbench: {why}");
                return exit_code::USAGE;
            }
        },
        None => None,
    };
    // The emulated network path comes up before the runtime: the generator's threads join its
    // client side as they start.
    let seed = config.scenario.seed;
    let path = match spec.map(|(section, spec)| network_path(&section, &spec, seed)) {
        None => None,
        Some(Ok(path)) => Some(path),
        Some(Err(code)) => return code,
    };
    // The clients' namespace: the client side of the path this run made, or of one that
    // `imbench path` holds (--namespace).
    let namespace = match (&path, &args.namespace) {
        (Some(path), _) => Some(path.client_namespace().name().to_string()),
        (None, Some(name)) => Some(name.clone()),
        (None, None) => None,
    };
    // With the server embedded the two runtimes split the CPUs (run::workers), unless
    // TOKIO_WORKER_THREADS says how many the generator has.
    let embedded = legs
        .iter()
        .any(|l| matches!(l.server, imbench_loadgen::ServerSpec::Embedded));
    let threads = match imbench_server::process::told_worker_threads() {
        Ok(Some(n)) => n,
        Ok(None) if embedded => {
            imbench_loadgen::run::workers::WorkerSplit::of_this_machine().generator
        }
        Ok(None) => imbench_server::process::one_per_cpu(),
        Err(why) => {
            imbench_loadgen::errln!("imbench: {why}");
            return exit_code::USAGE;
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(threads).enable_all();
    if let Some(name) = namespace {
        builder.on_thread_start(move || {
            if let Err(e) = imbench_netpath::netns::enter(&name) {
                imbench_loadgen::errln!("imbench: a generator thread: {e}");
            }
        });
    }
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            imbench_loadgen::errln!("imbench: starting the tokio runtime: {e}");
            return exit_code::INVALID;
        }
    };
    config.interrupt = Some(interrupt_on_ctrl_c(&runtime, created.clone(), early));
    // Held until the command ends: the endpoint serves every run of it.
    let _endpoint = match args.metrics_addr {
        Some(addr) => {
            let live =
                std::sync::Arc::new(imbench_loadgen::run::live_metrics::LiveBoard::default());
            match runtime.block_on(imbench_server::scrape::MetricsEndpoint::start(
                addr,
                live.registry(),
            )) {
                Ok(endpoint) => {
                    // Said even with --progress quiet: with port 0 it is the only way to know.
                    imbench_loadgen::errln!("imbench: metrics for Prometheus: {}", endpoint.url());
                    config.live = Some(live);
                    Some(endpoint)
                }
                Err(e) => {
                    imbench_loadgen::errln!(
                        "imbench: serving metrics on {addr} (--metrics-addr): {e}"
                    );
                    return exit_code::USAGE;
                }
            }
        }
        None => None,
    };
    if let Some(path) = path {
        // This thread too: the run's own connections (the probe) start from it. The metrics
        // endpoint above was bound first, so it stays reachable from outside the path.
        if let Err(e) = path.client_namespace().enter() {
            imbench_loadgen::errln!("imbench: {e}");
            return exit_code::INVALID;
        }
        config.path = Some(path);
    } else if let Some(name) = &args.namespace {
        // A path whose holder was killed is no path any more: its namespaces are leftovers.
        if let Some(pid) = imbench_netpath::netns::orphaned(name) {
            imbench_loadgen::errln!(
                "imbench: --namespace {name}: the imbench process that held this path (PID {pid}) is gone, and left the namespace behind; hold the path again with `imbench path`"
            );
            return exit_code::USAGE;
        }
        // Joined after the metrics endpoint was bound, as with a path of the run's own.
        if let Err(e) = imbench_netpath::netns::enter(name) {
            imbench_loadgen::errln!("imbench: --namespace {name}: {e} (it needs root)");
            return exit_code::USAGE;
        }
        config.namespace = Some(name.clone());
        // The report names the path the clients are on: the one `imbench path` recorded for
        // this namespace, not the scenario's [network] (none when nothing was recorded).
        config.scenario.network = imbench_loadgen::config::held_path::HeldPath::read(name);
    }
    if let (Some(root), false) = (&config.out_dir, several) {
        // The folder is this run's: a run that fails leaves no earlier report in it to pass
        // for its own. A run refused (bad usage: a scenario its target cannot run, a login
        // the target refuses) leaves it as it was: it is told before the folder is touched,
        // from the same checks the run would make.
        let checked = runtime.block_on(imbench_loadgen::run::compare::check_each(&config, &legs));
        let refused = checked.as_ref().err().filter(|e| {
            e.exit_code() == exit_code::USAGE
                || matches!(e, imbench_loadgen::RunError::InterruptedBeforeStart)
        });
        if let Some(e) = refused {
            let code = run_failed(e);
            say_earlier_report_kept(root);
            return code;
        }
        // Ctrl-C during the check leaves the earlier report too.
        if config.interrupt.as_ref().is_some_and(|rx| *rx.borrow()) {
            let code = run_failed(&imbench_loadgen::RunError::InterruptedBeforeStart);
            say_earlier_report_kept(root);
            return code;
        }
        let failed = checked.err();
        match imbench_loadgen::Report::clear_earlier(root) {
            Ok(true) => imbench_loadgen::errln!(
                "imbench: {} held an earlier report: removed, {}",
                root.display(),
                if failed.is_some() {
                    "as this run could not take place"
                } else {
                    "this run's goes there"
                }
            ),
            Ok(false) => {}
            Err(e) => {
                imbench_loadgen::errln!(
                    "imbench: {}: removing an earlier report: {e}",
                    root.display()
                );
                return exit_code::USAGE;
            }
        }
        if let Some(e) = failed {
            return run_failed(&e);
        }
    }
    run_into(&runtime, config, &legs, &args)
}

/// The folders of `root` that do not exist yet, itself first, then each parent up to the
/// first one that does (`reports/` for the default `reports/NAME-TIME`).
fn missing_folders(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    root.ancestors()
        .take_while(|dir| !dir.as_os_str().is_empty() && !dir.exists())
        .map(std::path::Path::to_path_buf)
        .collect()
}

/// Creates `root`, or the first of `root-2`, `root-3`, … that does not exist yet (its parents
/// as needed): a folder no other run has, even one started at the same moment, since each
/// name is taken by an atomic `mkdir`.
fn reserve_folder(root: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    /// More runs than this in one second under one name is not a race but a loop gone wrong.
    const MOST: u32 = 1000;
    if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    for n in 1..=MOST {
        let candidate = match n {
            1 => root.to_path_buf(),
            n => {
                let mut name = root.as_os_str().to_os_string();
                name.push(format!("-{n}"));
                std::path::PathBuf::from(name)
            }
        };
        match std::fs::create_dir(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        format!("{MOST} folders of that name exist already"),
    ))
}

/// Removes the folders `created`, innermost first, each only if it is empty.
fn remove_if_empty(created: &[std::path::PathBuf]) {
    for dir in created {
        // The mark of repeats or a search that wrote nothing is no content of its own.
        let only_the_mark = std::fs::read_dir(dir).is_ok_and(|mut entries| {
            entries.all(|e| e.is_ok_and(|e| e.file_name() == SEVERAL_RUNS_MARK))
        });
        if only_the_mark {
            let _ = std::fs::remove_file(dir.join(SEVERAL_RUNS_MARK));
        }
        // Only succeeds on an empty folder.
        if std::fs::remove_dir(dir).is_err() {
            return;
        }
    }
}

/// The report folders this command created, removed when the command ends if they are still
/// empty.
struct RemovedIfEmpty(Vec<std::path::PathBuf>);

impl Drop for RemovedIfEmpty {
    fn drop(&mut self) {
        remove_if_empty(&self.0);
    }
}

/// The run (`--find-max`, `--repeat` or one), once its report folder is ready.
fn run_into(
    runtime: &tokio::runtime::Runtime,
    config: RunConfig,
    legs: &[Leg],
    args: &RunArgs,
) -> u8 {
    if args.find_max {
        return find_max(runtime, config, args);
    }
    if args.repeat > 1 {
        return repeat(runtime, config, legs, args);
    }
    run_once(runtime, config, legs, false).0
}

/// `--repeat N`: N runs into run-1 … run-N, then the spread table and repeat.json.
fn repeat(
    runtime: &tokio::runtime::Runtime,
    config: RunConfig,
    legs: &[Leg],
    args: &RunArgs,
) -> u8 {
    let Some(root) = config.out_dir.clone() else {
        return exit_code::USAGE;
    };
    let mut reports = Vec::new();
    let mut worst = exit_code::OK;
    for i in 1..=args.repeat {
        // A blank line between runs, none before the first (`| head -1` shows a heading).
        if i > 1 {
            outln!();
        }
        outln!("== run {i} of {}", args.repeat);
        let mut c = config.clone();
        c.out_dir = Some(root.join(format!("run-{i}")));
        let mut cuts = imbench_loadgen::run::measuring::Cuts::from_now();
        let (code, report) = run_once(runtime, c, legs, i > 1);
        // An interrupt that came once this run had measured everything leaves it whole.
        let cut = cuts.since();
        if code == exit_code::USAGE {
            // Nothing ran, and the next run would be refused the same way.
            return code;
        }
        worst = worst.max(code);
        let interrupted = config.interrupt.as_ref().is_some_and(|rx| *rx.borrow());
        // Stopped before its measured period ended (its server went away, say): a part of a
        // period, as a run cut short by Ctrl-C is.
        let stopped_early = |r: &imbench_loadgen::Report| {
            r.runs
                .iter()
                .any(|run| run.cut_short(config.scenario.duration))
        };
        match report {
            // A run cut short measured a part of its period: beside whole runs its figures
            // would pass for noise. Its folder stays; the spread is of the whole runs.
            Ok(_) if cut => {}
            Ok(r) if stopped_early(&r) => {
                imbench_loadgen::errln!(
                    "imbench: run {i} was stopped before its measured period ended ({}): no more repeats, and run {i} (in {}) is not in the spread",
                    r.invalid_reasons.first().map_or("see its report", String::as_str),
                    root.join(format!("run-{i}")).display()
                );
                worst = worst.max(exit_code::INVALID);
                break;
            }
            Ok(r) => reports.push(r),
            // Ctrl-C before this run began: the repeats end with the whole runs before it.
            Err(Unreported::NotRun) if interrupted => {
                imbench_loadgen::errln!(
                    "imbench: interrupted before run {i} began; no more repeats"
                );
                worst = worst.max(exit_code::INVALID);
                break;
            }
            // Its server gone, say: the repeats end, with the spread of the runs before it.
            Err(Unreported::NotRun) => {
                imbench_loadgen::errln!(
                    "imbench: run {i} could not take place; stopping the repeats"
                );
                worst = worst.max(exit_code::INVALID);
                break;
            }
            // It ran, and its folder would not take the report (a full disk): the next
            // would fare no better. Its empty folder goes; the spread is of the runs before.
            Err(Unreported::NotWritten) => {
                let run_i = root.join(format!("run-{i}"));
                let _ = std::fs::remove_dir(&run_i);
                imbench_loadgen::errln!(
                    "imbench: run {i} ran, but its report could not be written in {} (see above); stopping the repeats",
                    run_i.display()
                );
                worst = worst.max(exit_code::INVALID);
                break;
            }
        }
        if interrupted {
            let run_i = root.join(format!("run-{i}"));
            if cut {
                imbench_loadgen::errln!(
                    "imbench: interrupted; no more repeats, and run {i} (in {}) is not in the spread",
                    run_i.display()
                );
            } else if i < args.repeat {
                imbench_loadgen::errln!(
                    "imbench: interrupted; no more repeats (run {i}, in {}, had ended and is in the spread)",
                    run_i.display()
                );
            }
            if i < args.repeat {
                // Fewer runs than asked for: the spread is not the one asked for.
                worst = worst.max(exit_code::INVALID);
            }
            break;
        }
    }
    if reports.is_empty() {
        // The first run was interrupted: there is no spread to give.
        return worst;
    }
    let mut summary = imbench_loadgen::report::repeat::summarize(&reports);
    summary.asked = args.repeat;
    out!("{}", summary.table());
    let path = root.join(imbench_loadgen::report::repeat::REPEAT_JSON);
    let written = serde_json::to_string_pretty(&summary)
        .map_err(std::io::Error::other)
        .and_then(|json| std::fs::write(&path, json));
    match written {
        Ok(()) => outln!("repeat: {}", path.display()),
        Err(e) => {
            imbench_loadgen::errln!("imbench: writing {}: {e}", path.display());
            return exit_code::INVALID;
        }
    }
    worst.max(summary.verdict().exit_code())
}

/// Whether this process is in the network namespace `name` (`ip netns` names them).
fn same_namespace_as(name: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(own), Ok(named)) = (
        std::fs::metadata("/proc/self/ns/net"),
        std::fs::metadata(format!("/run/netns/{name}")),
    ) else {
        return false;
    };
    (own.dev(), own.ino()) == (named.dev(), named.ino())
}

/// Says that `root` still holds an earlier run's report, when it does: a run refused or
/// stopped before it began leaves it as it was, and a reader of the folder must not take it
/// for this run's.
fn say_earlier_report_kept(root: &std::path::Path) {
    if root.join("report.json").is_file() {
        imbench_loadgen::errln!(
            "imbench: {} still holds an earlier run's report, left as it was: it is not this run's",
            root.display()
        );
    }
}

/// Says why a run could not take place and gives its exit code.
fn run_failed(e: &imbench_loadgen::RunError) -> u8 {
    let code = e.exit_code();
    if code == exit_code::USAGE || matches!(e, imbench_loadgen::RunError::InterruptedBeforeStart) {
        imbench_loadgen::errln!("imbench: {e}");
    } else {
        imbench_loadgen::errln!("imbench: run invalid: {e}");
    }
    code
}

/// One run over every transport asked for: its exit code, and its report when it took place.
/// `again` when the same legs ran before (see [`imbench_loadgen::run::compare::run_each_again`]).
fn run_once(
    runtime: &tokio::runtime::Runtime,
    config: RunConfig,
    legs: &[Leg],
    again: bool,
) -> (u8, Result<imbench_loadgen::Report, Unreported>) {
    let several = legs.len() > 1;
    let mut shown = 0;
    let result = runtime.block_on(imbench_loadgen::run::compare::run_each_again(
        config,
        legs,
        again,
        |report| {
            if several {
                // Each leg's table apart from the one before.
                if shown > 0 {
                    outln!();
                }
                shown += 1;
                out!("{}", report.table());
            }
        },
    ));
    match result {
        Ok(outcome) => {
            if several {
                out!(
                    "{}",
                    imbench_loadgen::report::comparison::comparison_table(&outcome.report)
                );
                outln!("verdict: {}", outcome.report.verdict_line());
            } else {
                out!("{}", outcome.report.table());
            }
            if let Some(dir) = &outcome.dir {
                outln!(
                    "report: {} (for a person: {})",
                    dir.join("report.json").display(),
                    dir.join("report.html").display()
                );
            }
            (outcome.report.verdict.exit_code(), Ok(outcome.report))
        }
        Err(e) => {
            // The run took place and only its folder failed: its figures are still shown.
            if let imbench_loadgen::RunError::Write {
                report: Some(report),
                ..
            } = &e
            {
                if several {
                    out!(
                        "{}",
                        imbench_loadgen::report::comparison::comparison_table(report)
                    );
                    outln!("verdict: {}", report.verdict_line());
                } else {
                    out!("{}", report.table());
                }
            }
            (run_failed(&e), Err(Unreported::of(&e)))
        }
    }
}

/// Why a run left no report: it could not take place, or it ran and its report could not be
/// written (a full disk).
enum Unreported {
    NotRun,
    NotWritten,
}

impl Unreported {
    fn of(e: &imbench_loadgen::RunError) -> Self {
        match e {
            imbench_loadgen::RunError::Write { .. } => Self::NotWritten,
            _ => Self::NotRun,
        }
    }
}

/// Most `--refine`: ten narrowings of even a tenfold step leave loads 0.2 % apart.
const MAX_REFINE: usize = 10;

/// Most `--growth`: past it a step is a different load, not the next one.
const MAX_GROWTH: f64 = 10.0;

/// Least `--growth`: steps closer than 1 % are within one run's own noise, and the table's
/// load factors (three decimals) would read alike.
const MIN_GROWTH: f64 = 1.01;

fn find_max(runtime: &tokio::runtime::Runtime, config: RunConfig, args: &RunArgs) -> u8 {
    use imbench_loadgen::run::capacity::{self, SearchOptions};
    if !(args.growth >= MIN_GROWTH && args.growth <= MAX_GROWTH) {
        imbench_loadgen::errln!(
            "imbench: --growth is each step's load over the one before: at least {MIN_GROWTH} and at most {MAX_GROWTH}, got {}",
            args.growth
        );
        return exit_code::USAGE;
    }
    if args.refine > MAX_REFINE {
        imbench_loadgen::errln!(
            "imbench: --refine is how many times the search narrows between the last load that held and the first that failed: at most {MAX_REFINE}, got {}",
            args.refine
        );
        return exit_code::USAGE;
    }
    if args.max_steps == 0 {
        imbench_loadgen::errln!("imbench: --max-steps must be at least 1");
        return exit_code::USAGE;
    }
    if config.scenario.slo.is_empty() {
        imbench_loadgen::errln!("imbench: --find-max needs at least one SLO (in the scenario or with --slo) to know when to stop");
        return exit_code::USAGE;
    }
    let opts = SearchOptions {
        growth: args.growth,
        max_steps: args.max_steps,
        refine: args.refine,
        ..SearchOptions::default()
    };
    let mut n = 0;
    let mut cuts = imbench_loadgen::run::measuring::Cuts::from_now();
    let search = capacity::find_max(config.clone(), opts, |step| {
        n += 1;
        // Cut short by an interrupt (one that came after the step had measured everything
        // leaves it whole, and the search counts it).
        let interrupted = cuts.since();
        // The search tries a load again after the machine alone spoiled it.
        let again = if step.again { " again" } else { "" };
        imbench_loadgen::errln!(
            "step {n}: load {:.3}x{again}, {:.0} sent/s, {:.0} delivered/s: {}{}",
            step.load,
            step.sent_per_s,
            step.delivered_per_s,
            match (step.held(), interrupted) {
                (true, _) => "held",
                (false, true) => "interrupted",
                (false, false) if step.verdict == imbench_loadgen::Verdict::Invalid => "INVALID",
                (false, false) => "FAILED",
            },
            if step.why.is_empty() {
                String::new()
            } else {
                format!(" ({})", step.why.join("; "))
            }
        );
    });
    match runtime.block_on(search) {
        Ok(cap) => {
            out!("{}", cap.table());
            if let Some(dir) = &config.out_dir {
                use imbench_loadgen::report::capacity::{CAPACITY_HTML, CAPACITY_JSON};
                outln!(
                    "report: {} (for a person: {}; each step's own report in its step-NN folder)",
                    dir.join(CAPACITY_JSON).display(),
                    dir.join(CAPACITY_HTML).display()
                );
            }
            cap.verdict().exit_code()
        }
        Err(e) => run_failed(&e),
    }
}

/// The network path the scenario asks for, if any, checked before anything is brought up:
/// `Err` is the exit code when it cannot be had (a path that is no path, a server this process
/// does not start).
#[allow(clippy::type_complexity)]
fn network_spec(
    config: &RunConfig,
    joined: bool,
) -> Result<
    Option<(
        imbench_loadgen::config::network::NetworkSection,
        imbench_netpath::PathSpec,
    )>,
    u8,
> {
    let Some(section) = &config.scenario.network else {
        return Ok(None);
    };
    if joined && !matches!(config.server, imbench_loadgen::ServerSpec::Embedded) {
        // The path is up already (`imbench path`), and the scenario's [network] is what it
        // is: kept in the report, not made again.
        return Ok(None);
    }
    let spec = match section.path() {
        Ok(Some(spec)) => spec,
        Ok(None) => return Ok(None),
        Err(e) => {
            imbench_loadgen::errln!("imbench: {e}");
            return Err(exit_code::USAGE);
        }
    };
    if !matches!(config.server, imbench_loadgen::ServerSpec::Embedded) {
        imbench_loadgen::errln!("imbench: {PATH_FOR_EMBEDDED_ONLY}");
        return Err(exit_code::USAGE);
    }
    Ok(Some((section.clone(), spec)))
}

/// Brings up the network path `spec` (`section` names it) with the scenario's `seed`: `Err` is
/// the exit code when it cannot be (not root, no TUN device, no iproute2).
fn network_path(
    section: &imbench_loadgen::config::network::NetworkSection,
    spec: &imbench_netpath::PathSpec,
    seed: u64,
) -> Result<std::sync::Arc<imbench_netpath::NetPath>, u8> {
    super::path::sweep_leftovers();
    match imbench_netpath::NetPath::up(spec, seed) {
        Ok(path) => {
            // The namespaces of killed imbench processes are gone; the records of the paths
            // those held go with them.
            imbench_loadgen::config::held_path::remove_stale_records();
            imbench_loadgen::errln!(
                "imbench: network path {}: clients {} and server {} in namespaces {} and {}",
                section.describe(),
                imbench_netpath::CLIENT_ADDR,
                imbench_netpath::SERVER_ADDR,
                path.client_namespace().name(),
                path.server_namespace().name()
            );
            Ok(std::sync::Arc::new(path))
        }
        // What this machine lacks (root, iproute2) is set up as a flag is: a usage error.
        Err(
            e @ (imbench_netpath::PathError::NotRoot
            | imbench_netpath::PathError::Spec(_)
            | imbench_netpath::PathError::Tool(_)),
        ) => {
            imbench_loadgen::errln!("imbench: {e}");
            Err(exit_code::USAGE)
        }
        Err(e) => {
            imbench_loadgen::errln!("imbench: bringing up the network path: {e}");
            Err(exit_code::INVALID)
        }
    }
}

/// How long after the first interrupt a second one counts as a second (see
/// [`interrupt_on_ctrl_c`]).
const SECOND_INTERRUPT_AFTER: std::time::Duration = std::time::Duration::from_millis(300);

/// How long a second Ctrl-C waits for its last words to reach stderr before it quits.
const QUIT_SAYS_WITHIN: std::time::Duration = std::time::Duration::from_millis(200);

/// The first Ctrl-C stops the run gracefully (it drains briefly and writes its report); a
/// second one, from 0.3 s after it, exits at once.
fn interrupt_on_ctrl_c(
    runtime: &tokio::runtime::Runtime,
    created: Vec<std::path::PathBuf>,
    early: super::EarlyInterrupt,
) -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    runtime.spawn(async move {
        if super::ctrl_c_or_term(&early).await {
            // The run is told before anything is said (saying it may wait for stderr); a run
            // that was measuring says itself what the interrupt stops.
            let measuring = imbench_loadgen::run::measuring::interrupt(|| {
                tx.send_replace(true);
            });
            if !measuring {
                imbench_loadgen::errln!(
                    "imbench: interrupted while no run was measuring: nothing is cut short, and no further run starts (Ctrl-C again to quit at once)"
                );
            }
            let first = std::time::Instant::now();
            let again = async {
                loop {
                    if tokio::signal::ctrl_c().await.is_err() {
                        return false;
                    }
                    // `timeout` (without --foreground) signals the process and then its whole
                    // group, so one interrupt can arrive twice, microseconds apart: only one
                    // that comes later is a person asking again.
                    if first.elapsed() >= SECOND_INTERRUPT_AFTER {
                        return true;
                    }
                }
            };
            if again.await {
                imbench_loadgen::errln!(
                    "imbench: interrupted again; quitting at once: no report is written (a --find-max search keeps the step folders it finished, without capacity.json)"
                );
                // No destructor runs on this exit: an emulated path's namespaces go now, and
                // a report folder this run made and has not written into.
                imbench_netpath::netns::remove_own();
                remove_if_empty(&created);
                // At once: the line above gets a moment, not a stderr nobody reads.
                imbench_loadgen::stderr::stderr().flush(QUIT_SAYS_WITHIN);
                std::process::exit(i32::from(exit_code::INVALID));
            }
        }
    });
    rx
}

/// Takes a report folder for this run, until the returned handle is dropped (or the process
/// ends, however it ends): two runs given the same `--out` at once (two CI jobs in one
/// workspace) would each clear and write the folder, and one's report would be lost while both
/// said where it was. The lock is the kernel's (`flock` on the folder), so a run that was killed
/// holds nothing.
pub(crate) fn hold_out_dir(root: &std::path::Path) -> Result<std::fs::File, String> {
    let folder = std::fs::File::open(root)
        .map_err(|e| format!("opening the report folder {}: {e}", root.display()))?;
    match folder.try_lock() {
        Ok(()) => Ok(folder),
        Err(std::fs::TryLockError::WouldBlock) => Err(being_written(root)),
        Err(std::fs::TryLockError::Error(e)) => Err(format!(
            "taking the report folder {} for this run: {e}",
            root.display()
        )),
    }
}

/// Why a folder another run holds cannot be this run's.
fn being_written(root: &std::path::Path) -> String {
    format!(
        "--out {}: another run is writing its report there now; give each run a folder of its own",
        root.display()
    )
}

/// Whether another run or merge holds `dir` ([`hold_out_dir`]) at this moment. The look is a
/// shared lock, given back at once: runs looking at one folder together (the shards of one
/// load, started at once into folders side by side) do not take each other for its holder.
fn locked_by_another(dir: &std::path::Path) -> bool {
    std::fs::File::open(dir)
        .is_ok_and(|f| matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock)))
}

/// The file written and removed to see that a report folder takes files, its name followed
/// by the process's id: two runs checking one folder at once do not remove each other's.
const PROBE: &str = ".imbench-write-check";

/// Written into the folder of a `--repeat`'s runs or a search's steps as they begin: one quit
/// before its repeat.json or capacity.json (a second Ctrl-C) still says whose its run-N or
/// step-NN folders are, even when only run-1 was written.
pub(crate) const SEVERAL_RUNS_MARK: &str = ".imbench-several-runs";

/// Makes sure a run's report folder can be written and holds nothing that would be read in
/// place of the new report, or mixed with it: the runs of an earlier `--repeat` or the steps
/// of an earlier `--find-max` beside a single report, or a single report beside new repeated
/// runs or steps (`compare` and `report` read whichever they find), or old runs or steps
/// beside new ones (a shorter search would leave the old search's later steps behind).
/// Creates the folder, so an unwritable one is found before the run, not after it.
pub(crate) fn check_out_dir(root: &std::path::Path, several: bool) -> Result<(), String> {
    if root.exists() && !root.is_dir() {
        return Err(format!("--out {} is a file, not a folder", root.display()));
    }
    // Being written by another run: whatever it holds yet is that run's, not an earlier one's.
    if locked_by_another(root) {
        return Err(being_written(root));
    }
    // A run (or a step) of a --repeat or a search: written over, it would mix another load
    // into theirs, under a spread (or a capacity) that no longer tells of it.
    let absolute = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
    // The same while the other's repeats or steps are still being written, before its
    // repeat.json or capacity.json is.
    if let Some(parent) = absolute.parent().filter(|p| locked_by_another(p)) {
        return Err(format!(
            "--out {} is in {}, which another run is writing now (its repeated runs or a search's steps): a run written there would replace or join them; give a folder outside it",
            root.display(),
            parent.display()
        ));
    }
    if let Some(parent) = absolute.parent() {
        use imbench_loadgen::report::capacity::CAPACITY_JSON;
        use imbench_loadgen::report::repeat::REPEAT_JSON;
        if let Some(of) = [
            (REPEAT_JSON, "repeated runs"),
            (CAPACITY_JSON, "a search's steps"),
        ]
        .into_iter()
        .find_map(|(file, what)| parent.join(file).is_file().then_some(what))
        .or_else(|| {
            parent.join(SEVERAL_RUNS_MARK).is_file().then_some(
                "the runs of a --repeat or the steps of a search, quit before it said so",
            )
        }) {
            return Err(format!(
                "--out {} is in {}, which holds {of}: a run written there would replace or join them; give a folder outside it",
                root.display(),
                parent.display()
            ));
        }
    }
    if !root.exists() && root.symlink_metadata().is_ok() {
        return Err(format!(
            "--out {} is a symbolic link to nothing: make the folder it names, or give another",
            root.display()
        ));
    }
    if let Ok(entries) = std::fs::read_dir(root) {
        let names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        use imbench_loadgen::report::capacity::{CAPACITY_HTML, CAPACITY_JSON, CAPACITY_MD};
        let runs = |n: &String| {
            n.starts_with("run-")
                || n == imbench_loadgen::report::repeat::REPEAT_JSON
                || n.starts_with("step-")
                || n == CAPACITY_JSON
        };
        // Anything else is not imbench's: a folder of the user's (`--out .`, `--out /`), or
        // one holding report folders (`--out shards`, whose shards `merge` would then find
        // beside a whole run's report).
        let report_file =
            |n: &String| imbench_loadgen::report::write::REPORT_FILES.contains(&n.as_str());
        let ours = |n: &String| {
            runs(n)
                || report_file(n)
                || [CAPACITY_MD, CAPACITY_HTML].contains(&n.as_str())
                || n.starts_with(PROBE)
                || n == SEVERAL_RUNS_MARK
                // Left by a run killed while it wrote its report.json.
                || n == imbench_loadgen::report::write::REPORT_JSON_PARTIAL
        };
        let mut foreign: Vec<&String> = names.iter().filter(|n| !ours(n)).collect();
        if !foreign.is_empty() {
            foreign.sort();
            let shown: Vec<&str> = foreign.iter().take(5).map(|n| n.as_str()).collect();
            // Report folders of their own (shards collected in one place) are not this run's
            // to replace either, and are named as what they are.
            let reports = foreign
                .iter()
                .all(|n| root.join(n.as_str()).join("report.json").is_file());
            return Err(format!(
                "--out {} holds {} ({}{}): give a folder of the report's own (it is made when missing)",
                root.display(),
                if reports {
                    "report folders of other runs, which a run there would sit among"
                } else {
                    "things that are not imbench's reports"
                },
                shown.join(", "),
                if foreign.len() > shown.len() { ", …" } else { "" }
            ));
        }
        let mut stale: Vec<&String> = if several {
            names
                .iter()
                .filter(|n| runs(n) || *n == "report.json")
                .collect()
        } else {
            names.iter().filter(|n| runs(n)).collect()
        };
        if !stale.is_empty() {
            stale.sort();
            let list: Vec<&str> = stale.iter().map(|n| n.as_str()).collect();
            return Err(format!(
                "{} already holds {} from an earlier run; give another --out or remove {}",
                root.display(),
                list.join(", "),
                if list.len() == 1 { "it" } else { "them" }
            ));
        }
        // Named as imbench's, but not written by it: what is written there (one run's report,
        // a merged one, a search's capacity pages) would replace the user's file.
        let written_here = |n: &String| {
            if several {
                // A search writes its capacity.md and .html here, its runs' reports below.
                [CAPACITY_MD, CAPACITY_HTML].contains(&n.as_str())
            } else {
                report_file(n)
            }
        };
        let mut named: Vec<&String> = names.iter().filter(|n| written_here(n)).collect();
        named.sort();
        for name in named {
            let path = root.join(name.as_str());
            if !path.is_file() {
                continue;
            }
            if let Err(why) = imbench_loadgen::report::write::written_by_imbench(&path) {
                return Err(format!(
                    "--out {} holds {name}, {why}; the report written there would replace it: give a folder of the report's own (it is made when missing)",
                    root.display()
                ));
            }
        }
    }
    std::fs::create_dir_all(root)
        .map_err(|e| format!("cannot create the report folder {}: {e}", root.display()))?;
    // A folder that exists but takes no file (read-only, not ours) would fail only after the
    // whole run, losing it.
    let probe = root.join(format!("{PROBE}-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| format!("cannot write in the report folder {}: {e}", root.display()))
}
