//! `imbench`: the command line of the load generator.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use imbench_loadgen::{exit_code, Overrides, ProgressMode, RunConfig, Scenario, ServerSpec};
use imbench_server::Secret;
use imbench_transport::{ClientTrust, QuicOptions, Transport};

/// Writes to standard output and ignores a closed pipe: `imbench … | head` must not panic,
/// and a run whose reader went away still writes its report and exits with its own code.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// [`out!`] with a newline.
macro_rules! outln {
    () => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout());
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Benchmark and load-test instant messaging: delivery latency, fan-out, transports.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
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
    /// report.json file).
    Report {
        /// The report folder or its report.json.
        report: PathBuf,
    },
    /// Add shard reports of one load (run at the same time against one server) into one
    /// report: histograms added, counters and rates summed, SLOs judged again.
    Merge {
        /// Report folders or report.json files.
        #[arg(required = true, num_args = 2..)]
        reports: Vec<PathBuf>,
        /// Folder for the merged report.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print reports side by side: each run of each report is a column, with its ratio to the
    /// first.
    Compare {
        /// Report folders or report.json files, the baseline first. The baseline may also be
        /// a folder of repeated runs (each in a subfolder with its report.json): their spread
        /// is the noise --fail-on-regression allows for.
        #[arg(required = true, num_args = 2..)]
        reports: Vec<PathBuf>,
        /// Exit 1 when a figure of a later report is worse than the baseline's median by more
        /// than this (e.g. 10%) and by more than the baseline runs' own spread.
        #[arg(long, value_parser = imbench_loadgen::report::regression::parse_threshold)]
        fail_on_regression: Option<f64>,
        /// A figure to check, as SLOs name them (repeatable; default: direct.p50, direct.p99,
        /// ack.p99, group.p99, fanout.p99, file.p99 and delivered_per_s, those present).
        #[arg(long = "check")]
        checks: Vec<String>,
    },
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Scenario file (TOML). Without one, the built-in twin of scenarios/default.toml.
    scenario: Option<PathBuf>,
    /// Transport(s): quic, tcp, tls, ws, wss, a comma list of them, or all. With several, the
    /// scenario runs once per transport, same seed and schedule, and a comparison table ends
    /// the output.
    #[arg(long, default_value = "quic", value_parser = parse_transports)]
    transport: TransportList,
    /// Simulated clients.
    #[arg(long)]
    clients: Option<usize>,
    /// Measured period, e.g. 30s or 2m.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Warm-up before measuring.
    #[arg(long, value_parser = humantime::parse_duration)]
    warmup: Option<Duration>,
    /// Period over which clients connect.
    #[arg(long, value_parser = humantime::parse_duration)]
    ramp_up: Option<Duration>,
    /// Longest wait for outstanding deliveries after the last send.
    #[arg(long, value_parser = humantime::parse_duration)]
    drain: Option<Duration>,
    /// Seed for schedules, sizes and partners.
    #[arg(long)]
    seed: Option<u64>,
    /// Direct messages per second per client.
    #[arg(long)]
    rate: Option<f64>,
    /// Messages per second to each group (the scenario's groups.rate)
    #[arg(long)]
    group_rate: Option<f64>,
    /// Connections started per second at most (generator.connect_rate; default by transport:
    /// 1000 with TLS, 5000 without). A shorter ramp-up is stretched to clients / rate
    #[arg(long)]
    connect_rate: Option<f64>,
    /// How sends wait for their time: precise (timer thread, µs), tokio (1 ms wheel), or auto
    /// (precise up to 2,000 sends/s, tokio above; the default)
    #[arg(long, value_enum)]
    timer: Option<imbench_loadgen::config::scenario::TimerKind>,
    /// Capacity mode: run the scenario again and again with every rate multiplied by a growing
    /// factor until an SLO fails, then report the highest load that held
    #[arg(long)]
    find_max: bool,
    /// Run shard I of N of the scenario's clients (client k is in shard k % N + 1), against
    /// the --server the other shards use; add the shards' reports with `imbench merge`.
    /// Direct chat only
    #[arg(long, value_name = "I/N", conflicts_with = "find_max")]
    shard: Option<imbench_loadgen::Shard>,
    /// Run the scenario N times in a row (into run-1 … run-N of the report folder) and print
    /// the spread of each headline figure; repeat.json holds it. The folder is a baseline for
    /// `imbench compare --fail-on-regression`
    #[arg(long, default_value_t = 1, value_name = "N", conflicts_with_all = ["find_max", "shard"])]
    repeat: usize,
    /// With --find-max: each step's load over the previous one's
    #[arg(long, default_value_t = 1.5, requires = "find_max")]
    growth: f64,
    /// With --find-max: most rising steps
    #[arg(long, default_value_t = 12, requires = "find_max")]
    max_steps: usize,
    /// With --find-max: halvings between the last load that held and the first that failed
    #[arg(long, default_value_t = 2, requires = "find_max")]
    refine: usize,
    /// An SLO such as 'direct.p99<500ms' or 'lost==0' (repeatable; added to the scenario's).
    #[arg(long = "slo")]
    slo: Vec<String>,
    /// Address of a running imbench-server, or TRANSPORT=ADDR per transport (repeatable), as
    /// imbench-server prints. Without it, the server runs in-process.
    #[arg(long, requires_all = ["cert", "secret_file"], value_parser = parse_server)]
    server: Vec<ServerArg>,
    /// PEM certificate to trust for --server (imbench-server writes one).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// File with the server's token secret (imbench-server writes one).
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// Name to verify the server certificate for (default: the --server IP).
    #[arg(long)]
    server_name: Option<String>,
    /// Report folder (default: reports/<scenario>-<UTC time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Progress display: auto (live line on a terminal), plain, or quiet.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    progress: ProgressArg,
}

#[derive(Clone, Debug)]
struct TransportList(Vec<Transport>);

fn parse_transports(s: &str) -> Result<TransportList, String> {
    let mut list = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if part.eq_ignore_ascii_case("all") {
            list.extend(Transport::ALL);
        } else {
            list.push(part.parse::<Transport>()?);
        }
    }
    let mut seen = std::collections::HashSet::new();
    list.retain(|t| seen.insert(*t));
    if list.is_empty() {
        return Err("no transport named".into());
    }
    Ok(TransportList(list))
}

/// `--server ADDR` or `--server TRANSPORT=ADDR`.
#[derive(Clone, Debug)]
struct ServerArg {
    transport: Option<Transport>,
    addr: SocketAddr,
}

fn parse_server(s: &str) -> Result<ServerArg, String> {
    let (transport, addr) = match s.split_once('=') {
        Some((t, a)) => (Some(t.parse::<Transport>()?), a),
        None => (None, s),
    };
    let addr = addr
        .trim()
        .parse()
        .map_err(|e| format!("{addr:?} is not an address such as 127.0.0.1:4433: {e}"))?;
    Ok(ServerArg { transport, addr })
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum ProgressArg {
    Auto,
    Plain,
    Quiet,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => ExitCode::from(run(*args)),
        Command::Report { report } => ExitCode::from(rerender(&report)),
        Command::Compare {
            reports,
            fail_on_regression,
            checks,
        } => ExitCode::from(compare(&reports, fail_on_regression, &checks)),
        Command::Merge { reports, out } => ExitCode::from(merge(&reports, &out)),
    }
}

fn run(args: RunArgs) -> u8 {
    let config = match configure(&args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("imbench: {e:#}");
            return exit_code::USAGE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("imbench: starting the tokio runtime: {e}");
            return exit_code::INVALID;
        }
    };
    let mut config = config;
    config.interrupt = Some(interrupt_on_ctrl_c(&runtime));
    let transports = args.transport.0.clone();
    if args.find_max {
        if transports.len() > 1 {
            eprintln!("imbench: --find-max searches one transport at a time");
            return exit_code::USAGE;
        }
        return find_max(&runtime, config, &args);
    }
    if args.repeat == 0 {
        eprintln!("imbench: --repeat must be at least 1");
        return exit_code::USAGE;
    }
    if args.repeat > 1 {
        return repeat(&runtime, config, &args);
    }
    run_once(&runtime, config, &args).0
}

/// `--repeat N`: N runs into run-1 … run-N, then the spread table and repeat.json.
fn repeat(runtime: &tokio::runtime::Runtime, config: RunConfig, args: &RunArgs) -> u8 {
    let Some(root) = config.out_dir.clone() else {
        return exit_code::USAGE;
    };
    // Old run folders beside new ones would join the spread and any baseline made of it.
    if let Ok(entries) = std::fs::read_dir(&root) {
        let mut stale: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("run-") || n == "repeat.json")
            .collect();
        if !stale.is_empty() {
            stale.sort();
            eprintln!(
                "imbench: {} already holds {} from an earlier run; give another --out or remove them",
                root.display(),
                stale.join(", ")
            );
            return exit_code::USAGE;
        }
    }
    let mut reports = Vec::new();
    let mut worst = exit_code::OK;
    for i in 1..=args.repeat {
        outln!(
            "
== run {i} of {}",
            args.repeat
        );
        let mut c = config.clone();
        c.out_dir = Some(root.join(format!("run-{i}")));
        let (code, report) = run_once(runtime, c, args);
        if code == exit_code::USAGE {
            // Nothing ran, and the next run would be refused the same way.
            return code;
        }
        worst = worst.max(code);
        let interrupted = config.interrupt.as_ref().is_some_and(|rx| *rx.borrow());
        match report {
            Some(r) => reports.push(r),
            None => {
                eprintln!("imbench: run {i} could not take place; stopping the repeats");
                return worst.max(exit_code::INVALID);
            }
        }
        if interrupted {
            eprintln!("imbench: interrupted; no more repeats");
            break;
        }
    }
    let summary = imbench_loadgen::report::repeat::summarize(&reports);
    out!("{}", summary.table());
    let path = root.join("repeat.json");
    let written = serde_json::to_string_pretty(&summary)
        .map_err(std::io::Error::other)
        .and_then(|json| std::fs::write(&path, json));
    match written {
        Ok(()) => outln!("repeat: {}", path.display()),
        Err(e) => {
            eprintln!("imbench: writing {}: {e}", path.display());
            return exit_code::INVALID;
        }
    }
    worst.max(summary.verdict().exit_code())
}

/// Says why a run could not take place and gives its exit code.
fn run_failed(e: &imbench_loadgen::RunError) -> u8 {
    let code = e.exit_code();
    if code == exit_code::USAGE {
        eprintln!("imbench: {e}");
    } else {
        eprintln!("imbench: run invalid: {e}");
    }
    code
}

/// One run over every transport asked for: its exit code, and its report when it took place.
fn run_once(
    runtime: &tokio::runtime::Runtime,
    config: RunConfig,
    args: &RunArgs,
) -> (u8, Option<imbench_loadgen::Report>) {
    let transports = args.transport.0.clone();
    let servers = args.server.clone();
    let several = transports.len() > 1;
    let result = runtime.block_on(imbench_loadgen::run::compare::run_each(
        config,
        &transports,
        |report| {
            if several {
                out!("{}", report.table());
            }
        },
        |c, t| {
            if let ServerSpec::Remote { addr, .. } = &mut c.server {
                *addr = server_for(&servers, t)
                    .ok_or_else(|| imbench_loadgen::RunError::NoAddress(t))?;
            }
            Ok(())
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
                outln!("report: {}", dir.join("report.json").display());
            }
            (outcome.report.verdict.exit_code(), Some(outcome.report))
        }
        Err(e) => (run_failed(&e), None),
    }
}

fn find_max(runtime: &tokio::runtime::Runtime, config: RunConfig, args: &RunArgs) -> u8 {
    use imbench_loadgen::run::capacity::{self, SearchOptions};
    if !(args.growth.is_finite() && args.growth > 1.0) || args.max_steps == 0 {
        eprintln!("imbench: --growth must be above 1 and --max-steps at least 1");
        return exit_code::USAGE;
    }
    if config.scenario.slo.is_empty() {
        eprintln!("imbench: --find-max needs at least one SLO (in the scenario or with --slo) to know when to stop");
        return exit_code::USAGE;
    }
    let opts = SearchOptions {
        growth: args.growth,
        max_steps: args.max_steps,
        refine: args.refine,
    };
    let mut n = 0;
    let search = capacity::find_max(config.clone(), opts, |step| {
        n += 1;
        eprintln!(
            "step {n}: load {:.3}x, {:.0} sent/s, {:.0} delivered/s: {}{}",
            step.load,
            step.sent_per_s,
            step.delivered_per_s,
            if step.held() { "held" } else { "FAILED" },
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
                outln!("report: {}", dir.join("capacity.json").display());
            }
            match (cap.best(), cap.steps.first()) {
                (Some(_), _) => exit_code::OK,
                (None, Some(first)) => first.verdict.exit_code(),
                (None, None) => exit_code::INVALID,
            }
        }
        Err(e) => run_failed(&e),
    }
}

/// Reads a report folder's report.json (or the file itself).
fn load_report(path: &std::path::Path) -> anyhow::Result<(PathBuf, imbench_loadgen::Report)> {
    use anyhow::Context;
    let file = if path.is_dir() {
        path.join("report.json")
    } else {
        path.to_path_buf()
    };
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let report = serde_json::from_str(&text)
        .with_context(|| format!("{} is not an imbench report", file.display()))?;
    Ok((file, report))
}

fn rerender(path: &std::path::Path) -> u8 {
    match load_report(path) {
        Ok((file, report)) => {
            out!("{}", report.table());
            let dir = file.parent().unwrap_or(std::path::Path::new("."));
            let summary = dir.join("summary.md");
            let html = dir.join("report.html");
            let written = std::fs::write(
                &summary,
                imbench_loadgen::report::summary::markdown(&report),
            )
            .map_err(|e| (summary.clone(), e))
            .and_then(|()| {
                std::fs::write(&html, imbench_loadgen::report::html::render(&report))
                    .map_err(|e| (html.clone(), e))
            });
            match written {
                Ok(()) => {
                    outln!("wrote {} and {}", summary.display(), html.display());
                    exit_code::OK
                }
                Err((path, e)) => {
                    eprintln!("imbench: writing {}: {e}", path.display());
                    exit_code::INVALID
                }
            }
        }
        Err(e) => {
            eprintln!("imbench: {e:#}");
            exit_code::USAGE
        }
    }
}

fn merge(paths: &[PathBuf], out: &std::path::Path) -> u8 {
    let mut reports = Vec::new();
    for path in paths {
        match load_report(path) {
            Ok((_, r)) => reports.push(r),
            Err(e) => {
                eprintln!("imbench: {e:#}");
                return exit_code::USAGE;
            }
        }
    }
    let merged = match imbench_loadgen::report::merge::merge(&reports) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("imbench: {e}");
            return exit_code::USAGE;
        }
    };
    out!("{}", merged.table());
    if let Err(e) = merged.write(out) {
        eprintln!("imbench: writing {}: {e}", out.display());
        return exit_code::INVALID;
    }
    outln!("report: {}", out.join("report.json").display());
    merged.verdict.exit_code()
}

/// A baseline: one report, or a folder whose subfolders each hold one (repeated runs), in
/// name order.
fn load_baseline(
    path: &std::path::Path,
) -> anyhow::Result<Vec<(PathBuf, imbench_loadgen::Report)>> {
    if path.is_dir() && !path.join("report.json").exists() {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("report.json").is_file())
            .collect();
        dirs.sort();
        if dirs.is_empty() {
            anyhow::bail!(
                "{} holds neither report.json nor run folders with one",
                path.display()
            );
        }
        return dirs.iter().map(|d| load_report(d)).collect();
    }
    Ok(vec![load_report(path)?])
}

fn compare(paths: &[PathBuf], fail_on_regression: Option<f64>, check_names: &[String]) -> u8 {
    use imbench_loadgen::report::regression;
    let names: Vec<String> = if check_names.is_empty() {
        regression::DEFAULT_CHECKS
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        check_names.to_vec()
    };
    let checks: Result<Vec<regression::Check>, String> =
        names.iter().map(|n| regression::Check::parse(n)).collect();
    let checks = match checks {
        Ok(c) => c,
        Err(e) => {
            eprintln!("imbench: --check: {e}");
            return exit_code::USAGE;
        }
    };
    let baseline = match load_baseline(&paths[0]) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("imbench: {e:#}");
            return exit_code::USAGE;
        }
    };
    let mut loaded = vec![baseline[0].clone()];
    for path in &paths[1..] {
        match load_report(path) {
            Ok(r) => loaded.push(r),
            Err(e) => {
                eprintln!("imbench: {e:#}");
                return exit_code::USAGE;
            }
        }
    }
    let mut regressed = false;
    if let Some(threshold) = fail_on_regression {
        let repeats: Vec<&[imbench_loadgen::report::RunReport]> =
            baseline.iter().map(|(_, r)| r.runs.as_slice()).collect();
        for (file, candidate) in &loaded[1..] {
            let findings = regression::compare(&repeats, &candidate.runs, &checks, threshold);
            outln!("{}:", file.display());
            out!("{}", regression::table(&findings, threshold, repeats.len()));
            if findings.is_empty() {
                eprintln!(
                    "imbench: {} shares no figure and transport with the baseline",
                    file.display()
                );
                return exit_code::USAGE;
            }
            regressed |= findings.iter().any(|f| f.regressed);
        }
    }
    let mut all: Option<imbench_loadgen::Report> = None;
    for (file, mut report) in loaded {
        // Columns are named after the report folder, and the transport when it has several.
        let name = file.parent().and_then(|d| d.file_name()).map_or_else(
            || file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let several = report.runs.len() > 1;
        for run in &mut report.runs {
            run.transport = if several {
                format!("{name}:{}", run.transport)
            } else {
                name.clone()
            };
        }
        match &mut all {
            None => all = Some(report),
            Some(a) => {
                a.verdict = a.verdict.max(report.verdict);
                a.runs.extend(report.runs);
            }
        }
    }
    if let Some(all) = all {
        out!(
            "{}",
            imbench_loadgen::report::comparison::comparison_table(&all)
        );
    }
    if regressed {
        outln!("verdict: REGRESSION");
        exit_code::SLO_FAILED
    } else {
        exit_code::OK
    }
}

/// The first Ctrl-C stops the run gracefully (it drains briefly and writes its report); a
/// second one exits at once.
fn interrupt_on_ctrl_c(runtime: &tokio::runtime::Runtime) -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    runtime.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("imbench: interrupted; stopping the schedule, draining briefly, writing the report (Ctrl-C again to quit at once)");
            let _ = tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(i32::from(exit_code::INVALID));
            }
        }
    });
    rx
}

/// The address of `transport` among the `--server` flags: a tagged one, or an untagged one
/// when only one transport runs.
fn server_for(servers: &[ServerArg], transport: Transport) -> Option<SocketAddr> {
    servers
        .iter()
        .find(|s| s.transport == Some(transport))
        .or_else(|| servers.iter().find(|s| s.transport.is_none()))
        .map(|s| s.addr)
}

/// Turns the flags into one validated configuration.
fn configure(args: &RunArgs) -> anyhow::Result<RunConfig> {
    use anyhow::Context;
    let mut scenario = match &args.scenario {
        Some(path) => Scenario::from_file(path)?,
        None => Scenario::builtin_default(),
    };
    scenario.apply(&Overrides {
        clients: args.clients,
        duration: args.duration,
        warmup: args.warmup,
        ramp_up: args.ramp_up,
        drain: args.drain,
        seed: args.seed,
        rate: args.rate,
        group_rate: args.group_rate,
        slo: args.slo.clone(),
        connect_rate: args.connect_rate,
        timer: args.timer,
    })?;
    let first = args.transport.0[0];
    let server = match (args.server.first(), &args.cert, &args.secret_file) {
        (Some(_), Some(cert), Some(secret)) => ServerSpec::Remote {
            addr: {
                for &t in &args.transport.0 {
                    if server_for(&args.server, t).is_none() {
                        anyhow::bail!("no --server address for {t}: give --server {t}=HOST:PORT");
                    }
                }
                server_for(&args.server, first).unwrap_or(args.server[0].addr)
            },
            trust: ClientTrust::from_pem_file(cert).context("reading --cert")?,
            secret: Box::new(Secret::from_file(secret).context("reading --secret-file")?),
            server_name: args.server_name.clone(),
        },
        (None, None, None) => ServerSpec::Embedded,
        _ => anyhow::bail!("--cert and --secret-file go with --server"),
    };
    let out_dir = Some(args.out.clone().unwrap_or_else(|| {
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            .to_string()
            .replace(['-', ':'], "");
        PathBuf::from("reports").join(format!("{}-{stamp}", scenario.name))
    }));
    let progress = match args.progress {
        ProgressArg::Auto => ProgressMode::Auto,
        ProgressArg::Plain => ProgressMode::Plain,
        ProgressArg::Quiet => ProgressMode::Quiet,
    };
    Ok(RunConfig {
        scenario,
        server,
        out_dir,
        progress,
        quic: QuicOptions::default(),
        transport: first,
        interrupt: None,
        shard: args.shard,
    })
}
