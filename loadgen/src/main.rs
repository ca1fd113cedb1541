//! `imbench`: the command line of the load generator.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use imbench_loadgen::{exit_code, Overrides, ProgressMode, RunConfig, Scenario, ServerSpec};
use imbench_server::Secret;
use imbench_transport::{ClientTrust, QuicOptions};

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
    Run(RunArgs),
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Scenario file (TOML). Without one, the built-in twin of scenarios/default.toml.
    scenario: Option<PathBuf>,
    /// Transport to use (QUIC is the one this build offers).
    #[arg(long, value_enum, default_value_t = Transport::Quic)]
    transport: Transport,
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
    /// Capacity mode: run the scenario again and again with every rate multiplied by a growing
    /// factor until an SLO fails, then report the highest load that held
    #[arg(long)]
    find_max: bool,
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
    /// Address of a running imbench-server. Without it, the server runs in-process.
    #[arg(long, requires_all = ["cert", "secret_file"])]
    server: Option<SocketAddr>,
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

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Transport {
    Quic,
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
        Command::Run(args) => ExitCode::from(run(args)),
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
    if args.find_max {
        return find_max(&runtime, config, &args);
    }
    match runtime.block_on(imbench_loadgen::run(config)) {
        Ok(outcome) => {
            print!("{}", outcome.report.table());
            if let Some(dir) = &outcome.dir {
                println!("report: {}", dir.join("report.json").display());
            }
            outcome.report.verdict.exit_code()
        }
        Err(e) => {
            eprintln!("imbench: run invalid: {e}");
            exit_code::INVALID
        }
    }
}

fn find_max(runtime: &tokio::runtime::Runtime, config: RunConfig, args: &RunArgs) -> u8 {
    use imbench_loadgen::capacity::{self, SearchOptions};
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
            print!("{}", cap.table());
            if let Some(dir) = &config.out_dir {
                println!("report: {}", dir.join("capacity.json").display());
            }
            match (cap.best(), cap.steps.first()) {
                (Some(_), _) => exit_code::OK,
                (None, Some(first)) => first.verdict.exit_code(),
                (None, None) => exit_code::INVALID,
            }
        }
        Err(e) => {
            eprintln!("imbench: run invalid: {e}");
            exit_code::INVALID
        }
    }
}

/// Turns the flags into one validated configuration.
fn configure(args: &RunArgs) -> anyhow::Result<RunConfig> {
    use anyhow::Context;
    let mut scenario = match &args.scenario {
        Some(path) => Scenario::from_file(path)?,
        None => Scenario::builtin_default(),
    };
    let Transport::Quic = args.transport;
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
    })?;
    let server = match (args.server, &args.cert, &args.secret_file) {
        (Some(addr), Some(cert), Some(secret)) => ServerSpec::Remote {
            addr,
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
    })
}
