//! One run: start (or reach) the server, ramp the clients up, keep the schedule, drain, and turn
//! what was measured into a [`Report`].
//!
//! Timeline, in µs since the run's clock started:
//!
//! ```text
//! 0 ── ramp_up ── send_start ── warmup ── measure_start ── duration ── measure_end ── drain ──▶
//!      clients connect     messages flow, not recorded     recorded          no new sends
//! ```

pub mod capacity;
pub mod compare;
mod group_limits;
pub mod live_metrics;
pub mod measuring;
mod port_watch;
pub mod progress;
pub mod workers;

use crate::client::context::RunContext;
use crate::config::shard::Shard;
use crate::driver::imbench::ImbenchDriver;
use crate::driver::memory::Hub;
use crate::driver::mqtt::MqttDriver;
use crate::driver::nats::NatsDriver;
use crate::driver::{ConnectError, Driver};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use imbench_server::{RunningServer, Secret, ServerConfig};
use imbench_transport::{ClientTrust, Connector, QuicOptions, Transport};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client;
use crate::config::scenario::Scenario;
use crate::config::scenario::TimerKind;
use crate::measure::counters::ClientTotals;
use crate::measure::cpu_use::{CpuSnapshot, CpuUse};
use crate::measure::group_records::GroupOutcome;
use crate::measure::group_records::GROUP_RECORDS_FILE;
use crate::measure::hiccups::HiccupMeter;
use crate::measure::metrics::Metric;
use crate::measure::udp_drops::{DropSnapshot, DropTally};
use crate::report::{self, IntervalPoint, Report};
use crate::run::progress::{Progress, ProgressMode};

/// Why a run could not take place at all.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The embedded server could not start.
    #[error("starting the embedded server: {0}")]
    Server(#[from] imbench_server::ServerError),
    /// Client-side transport setup failed.
    #[error("setting up clients: {0}")]
    Transport(#[from] imbench_transport::TransportError),
    /// The server answered and refused the clients' login: the configuration is wrong.
    #[error("the server ({target}) refused the clients' login: {why}")]
    Refused {
        /// Where, in words.
        target: String,
        /// What it said.
        why: String,
    },
    /// What answered is not what the configuration says: a wrong certificate, not an imbench
    /// server.
    #[error("the server ({target}) is not what the flags say: {why}")]
    Misconfigured {
        /// Where, in words.
        target: String,
        /// What was found.
        why: String,
    },
    /// Ctrl-C (or SIGTERM) came while the run was still reaching the server: nothing ran.
    #[error("interrupted while reaching the server, before the run began: nothing was measured, no report written")]
    InterruptedBeforeStart,
    /// The server could not be reached, or the probe connection broke.
    #[error("cannot reach the server ({target}): {why}")]
    Unreachable {
        /// Where, in words.
        target: String,
        /// What happened.
        why: String,
    },
    /// The scenario's settings do not apply.
    #[error(transparent)]
    Scenario(#[from] crate::config::scenario::ScenarioError),
    /// An SLO (from the scenario's [slo] or --slo) names nothing a report holds, or names it
    /// the wrong way.
    #[error("SLO {expr:?}: {why}")]
    Slo {
        /// The expression as given.
        expr: String,
        /// What is wrong with it.
        why: String,
    },
    /// No server address was given for a transport.
    #[error("no server address for {0}")]
    NoAddress(Transport),
    /// The run asks for something its server or driver cannot do.
    #[error("{0}")]
    Unsupported(String),
    /// A comparison was asked for over no transport at all.
    #[error("no transport to run over")]
    NoTransport,
    /// `--shard` was asked for where it cannot work.
    #[error("--shard: {0}")]
    Shard(String),
    /// The embedded server did not listen on the transport asked for.
    #[error("the embedded server does not listen on {0}")]
    NotListening(Transport),
    /// The process may not open the file descriptors the run needs.
    #[error("{0}")]
    TooFewFiles(String),
    /// The machine has not the memory the run's clients need.
    #[error("{0}")]
    TooLittleMemory(String),
    /// A thread the run needs (the embedded server's runtime, the timer) could not start.
    #[error("starting {what}: {source}")]
    Thread {
        /// Which.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// Several targets of a comparison failed the check before the first run: each is named.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  and "))]
    Several(Vec<RunError>),
    /// The report could not be written.
    #[error("writing the report to {path}: {source}")]
    Write {
        /// Where.
        path: String,
        /// The cause.
        source: std::io::Error,
        /// The run's report, when a run took place: the caller can still show it.
        report: Option<Box<Report>>,
    },
}

/// Which server a run drives.
#[derive(Clone)]
pub enum ServerSpec {
    /// Start the reference server in-process on loopback.
    Embedded,
    /// No server and no transport: the clients talk to an in-process hub (`driver::memory`).
    /// Proves the clients run on the driver seam alone; files are not carried.
    Memory,
    /// A server that is already running.
    Remote {
        /// Its QUIC address.
        addr: SocketAddr,
        /// The certificate(s) to trust.
        trust: ClientTrust,
        /// Its token secret (boxed: it holds an expanded HMAC key).
        secret: Box<Secret>,
        /// The name to verify its certificate for; defaults to the address's IP.
        server_name: Option<String>,
    },
    /// A NATS server that is already running (`driver::nats`).
    Nats(crate::driver::nats::NatsTarget),
    /// An MQTT broker that is already running (`driver::mqtt`).
    Mqtt(crate::driver::mqtt::MqttTarget),
    /// An XMPP server that is already running (`driver::xmpp`).
    Xmpp(crate::driver::xmpp::XmppTarget),
}

impl ServerSpec {
    /// Whether another system's target is spoken to over TLS (`nats+tls`, `mqtts`,
    /// STARTTLS); `false` for imbench's own server and the in-process hub, whose transport
    /// says it.
    fn target_tls(&self) -> bool {
        match self {
            ServerSpec::Nats(t) => t.tls.is_some(),
            ServerSpec::Mqtt(t) => t.tls.is_some(),
            ServerSpec::Xmpp(t) => t.tls.is_some(),
            ServerSpec::Embedded | ServerSpec::Remote { .. } | ServerSpec::Memory => false,
        }
    }

    /// The host a server of one's own is reached at (as given: an address or a name); `None`
    /// for the embedded server and the in-process hub.
    pub fn host(&self) -> Option<String> {
        match self {
            ServerSpec::Remote { addr, .. } => Some(addr.ip().to_string()),
            ServerSpec::Nats(t) => Some(t.host.clone()),
            ServerSpec::Mqtt(t) => Some(t.host.clone()),
            ServerSpec::Xmpp(t) => Some(t.host.clone()),
            ServerSpec::Embedded | ServerSpec::Memory => None,
        }
    }

    /// The system's protocol where it is not imbench's own, with what sets its figures apart
    /// (`mqtt-qos2-persistent`): reports show it where they show the transport.
    pub fn protocol(&self) -> Option<String> {
        let tls = tls_tag(self.target_tls());
        match self {
            ServerSpec::Memory => Some("memory".into()),
            ServerSpec::Nats(t) => Some(format!(
                "nats{tls}{}",
                // The storage is named: a stream on disk and one in memory are compared often.
                t.jetstream
                    .map(|s| format!("-jetstream-{}", s.name()))
                    .unwrap_or_default()
            )),
            ServerSpec::Xmpp(_) => Some(format!("xmpp{tls}")),
            ServerSpec::Mqtt(t) => Some(format!(
                "mqtt{}{tls}{}{}",
                if t.version == crate::driver::mqtt::Version::V5 {
                    "5"
                } else {
                    ""
                },
                match t.qos {
                    0 => "-qos0",
                    2 => "-qos2",
                    _ => "",
                },
                if t.persistent { "-persistent" } else { "" }
            )),
            ServerSpec::Embedded | ServerSpec::Remote { .. } => None,
        }
    }
}

/// A ramp-up as a note gives it: `20ms` below a second (where `0.0s` would hide it), `2.0s`
/// from there; none at all as `0s`.
fn short_duration(d: Duration) -> String {
    if d.is_zero() {
        "0s".to_string()
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis().max(1))
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// What a system's name gains when its clients use TLS.
fn tls_tag(tls: bool) -> &'static str {
    if tls {
        "-tls"
    } else {
        ""
    }
}

/// Everything a run needs.
#[derive(Clone)]
pub struct RunConfig {
    /// What to do.
    pub scenario: Scenario,
    /// Against what.
    pub server: ServerSpec,
    /// Where the report folder goes; `None` writes nothing.
    pub out_dir: Option<PathBuf>,
    /// Progress display.
    pub progress: ProgressMode,
    /// Client QUIC settings.
    pub quic: QuicOptions,
    /// The transport the clients use.
    pub transport: Transport,
    /// When this turns true the run stops its schedule, drains briefly and reports what it
    /// measured (Ctrl-C in the command line).
    pub interrupt: Option<watch::Receiver<bool>>,
    /// Run only this share of the clients: generators on several machines, each with its own
    /// shard of one scenario, load one server together; `imbench merge` adds their reports.
    pub shard: Option<Shard>,
    /// This run's name where reports name a run by its transport or system (`mqtt-2` beside
    /// another `mqtt`); `None` names it so.
    pub label: Option<String>,
    /// The target's URL as given (`--target`), its password or token hidden; `None` for
    /// imbench's server given by `--server` or embedded. Reports show it beside the run.
    pub target_url: Option<String>,
    /// Where the run publishes its live figures for a Prometheus endpoint, if one is served.
    pub live: Option<Arc<live_metrics::LiveBoard>>,
    /// The emulated network path the scenario's `[network]` asked for, brought up by the
    /// caller with the clients' threads in its client side; the embedded server is put on
    /// its server side.
    pub path: Option<Arc<imbench_netpath::NetPath>>,
    /// The network namespace the caller put the clients in (`--namespace`: the client side of
    /// a path `imbench path` holds), named in the report.
    pub namespace: Option<String>,
}

impl RunConfig {
    /// `scenario` against `server` over `transport`, the rest as a run with no flags has it:
    /// no report folder, no progress lines, the default QUIC settings, all the clients, no
    /// interrupt, label, live figures or network path.
    pub fn new(scenario: Scenario, server: ServerSpec, transport: Transport) -> Self {
        Self {
            scenario,
            server,
            out_dir: None,
            progress: ProgressMode::Quiet,
            quic: QuicOptions::default(),
            transport,
            interrupt: None,
            shard: None,
            label: None,
            target_url: None,
            live: None,
            path: None,
            namespace: None,
        }
    }
}

/// What a finished run produced.
pub struct RunOutcome {
    /// The report (also written to `dir` when an output folder was given).
    pub report: Report,
    /// The report folder, if one was written.
    pub dir: Option<PathBuf>,
}

impl RunOutcome {
    /// `report`, written into `dir` first when there is one.
    pub fn written(mut report: Report, dir: Option<&std::path::Path>) -> Result<Self, RunError> {
        if let Some(dir) = dir {
            if let Err(source) = report.write(dir) {
                // Shown after all, its verdict says what the exit code does: a run whose report
                // is lost is not one to pass on.
                report.verdict = crate::report::Verdict::Invalid;
                report.ok = false;
                report.invalid_reasons.push(format!(
                    "the report could not be written to {}: {source}",
                    dir.display()
                ));
                return Err(RunError::Write {
                    path: dir.display().to_string(),
                    source,
                    report: Some(Box::new(report)),
                });
            }
        }
        let dir = dir.map(std::path::Path::to_path_buf);
        Ok(RunOutcome { report, dir })
    }
}

/// What makes a configuration unrunnable whatever the machine and the server: checked by
/// [`run`], and by a command before it brings anything up (a network path, say).
pub fn check_runnable(config: &RunConfig) -> Result<(), RunError> {
    let s = &config.scenario;
    // Known before anything starts: waiting out the whole schedule to say that nothing was
    // sent in it would give a usage mistake the verdict of a run that cannot be trusted.
    let groups_send = s.groups.count > 0 && s.groups.rate > 0.0;
    if s.direct.rate <= 0.0 && !groups_send && s.files.rate <= 0.0 {
        return Err(RunError::Scenario(
            crate::config::scenario::ScenarioError::Invalid(format!(
                "{:?} sends nothing: it has no [direct], [groups] or [files] with a rate above 0 (as the scenario stands with --rate and --group-rate, where given), so no figure could be of a message; give one a rate above 0",
                s.name
            )),
        ));
    }
    if config.shard.is_some() && matches!(config.server, ServerSpec::Embedded | ServerSpec::Memory)
    {
        return Err(RunError::Shard(
            "shards of one load must share a server: give its address with --server or --target"
                .into(),
        ));
    }
    // Judged on the split, not on this shard: some shards of a split into more shards than
    // clients have one, and would run while their fellows are refused.
    if let Some(shard) = config.shard.filter(|&sh| sh.count > s.clients) {
        return Err(RunError::Shard(format!(
            "{} shards of {} clients: some have no client; run at most {} shards",
            shard.count, s.clients, s.clients
        )));
    }
    check_login_within_timeout(config)?;
    check_slo_names(s)
}

/// The scenario refuses a path on which two round trips, the fewest a login takes, outlast
/// the connect timeout; over TLS and WebSocket a login takes more of them.
fn check_login_within_timeout(config: &RunConfig) -> Result<(), RunError> {
    let s = &config.scenario;
    let Some(Ok(Some(path))) = s.network.as_ref().map(|n| n.path()) else {
        return Ok(());
    };
    if !matches!(config.server, ServerSpec::Embedded) {
        return Ok(());
    }
    // The transport's handshakes, then Hello and Welcome.
    let (trips, which) = match config.transport {
        Transport::Quic | Transport::Tcp => return Ok(()),
        Transport::Tls => (3, "TCP's, TLS's, then Hello's"),
        Transport::Ws => (3, "TCP's, the WebSocket upgrade's, then Hello's"),
        Transport::Wss => (4, "TCP's, TLS's, the WebSocket upgrade's, then Hello's"),
    };
    crate::config::network::check_login_round_trips(
        &path,
        s.generator.connect_timeout,
        trips,
        &format!("a login over {} takes {trips} ({which})", config.transport),
    )
    .map_err(|e| RunError::Scenario(crate::config::scenario::ScenarioError::Invalid(e)))
}

/// A run's name in its report (and in its run tag): the label the user gave it, or the
/// system's protocol (`nats`, `mqtt-qos0`), or imbench's transport.
pub fn run_name(label: Option<&str>, server: &ServerSpec, transport: Transport) -> String {
    label
        .map(str::to_string)
        .or_else(|| server.protocol())
        .unwrap_or_else(|| transport.to_string())
}

/// Runs begun in this process so far: a run's memory figure may take what earlier ones freed.
static RUNS_IN_THIS_PROCESS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Runs one scenario to the end and builds its report.
pub async fn run(config: RunConfig) -> Result<RunOutcome, RunError> {
    // Until the loop below has settled the figures, an interrupt cuts this run short.
    let mut measuring = measuring::Measuring::begin();
    let earlier_runs = RUNS_IN_THIS_PROCESS.fetch_add(1, Relaxed);
    check_runnable(&config)?;
    let s = config.scenario.clone();
    check_path(&config)?;
    let mut s = s;
    let clients_here = clients_in(&s, config.shard);
    check_files(&config, config.transport)?;
    let mut notes = pace_connections(&mut s, paced_as(&config), config.shard);
    const LOST: &str =
        "what was sent to a client while it was disconnected is lost, and counted in `lost`";
    let keeps_nothing = match &config.server {
        ServerSpec::Nats(_) => Some(format!(
            "core NATS keeps nothing for a client that is offline: {LOST}"
        )),
        ServerSpec::Mqtt(t) if t.qos == 0 => Some(format!(
            "at QoS 0 an MQTT broker need not keep anything for a client that is offline, even in a persistent session (mosquitto keeps nothing unless queue_qos0_messages is set): {LOST}"
        )),
        // At QoS 2 the broker's PUBREC comes before it routes the message, so it cannot say.
        ServerSpec::Mqtt(t)
            if !t.persistent && t.version == crate::driver::mqtt::Version::V5 && t.qos == 1 =>
        {
            Some(
            "an MQTT broker keeps nothing for a client with a clean session that is offline (?session=persistent asks it to): over MQTT 5 its PUBACK says nobody was subscribed, and such a direct message is counted in `rejected`; one already on its way when the client left is counted in `lost`".to_string(),
        )
        }
        ServerSpec::Mqtt(t) if !t.persistent => Some(format!(
            "an MQTT broker keeps nothing for a client with a clean session that is offline (?session=persistent asks it to): {LOST}"
        )),
        _ => None,
    };
    if let Some(shard) = config.shard {
        notes.push(format!(
            "shard {shard}: this report holds this generator's clients only, and does not judge `lost` (it cannot know what the other shards delivered): merge every shard's report with `imbench merge`"
        ));
        if s.groups.count > 0 {
            notes.push(format!(
                "shard {shard}: a group's members run in every shard, so this report has no fan-out and no group accounting of its own (its `delivered` and `expected` are of direct messages only, while `delivered/s` counts every delivery timed here); they are settled when the shards are merged, from the records each shard writes to {GROUP_RECORDS_FILE}"
            ));
        }
    }
    // A loss the target promises is no failure of it: a default on `lost` is not judged on
    // this run (the scenario, shared by every leg, keeps it).
    let mut slo_lifted = Vec::new();
    let churns = s.churn.enabled() && crate::workload::churn::churning_clients(&s) > 0;
    if let Some(note) = keeps_nothing.filter(|_| churns) {
        notes.push(note);
        if let Some(expr) = s.default_slo_on("lost") {
            notes.push(format!(
                "so `{expr}`, which a scenario file without an [slo] table is judged on, is not judged against this target; bound it with --slo 'lost < N'"
            ));
            slo_lifted.push(expr.clone());
        }
    }
    if s.churn.enabled() && crate::workload::churn::churning_clients(&s) == 0 {
        // Each client is drawn with the fraction's chance: a small share of few clients can
        // draw none, and a run without churn must not pass for one with it.
        notes.push(format!(
            "[churn]: no client churns: each of the {} clients is drawn with a chance of {} (churn.fraction), and none was; raise the fraction or the clients for churn",
            s.clients, s.churn.fraction
        ));
    }
    let imbench_quic = config.transport == Transport::Quic
        && matches!(
            config.server,
            ServerSpec::Embedded | ServerSpec::Remote { .. }
        );
    if imbench_quic && s.churn.enabled() && s.churn.handover > 0.0 && s.generator.endpoints > 0 {
        // A connection can move only with a socket of its own to move.
        notes.push(format!(
            "[generator] endpoints = {}: QUIC clients share UDP sockets and cannot move their connections, so every handover reconnects instead (endpoints = 0 gives each connection a socket it can move)",
            s.generator.endpoints
        ));
    }
    let timer_kind = s.generator.timer.resolve(s.sends_per_s(clients_here));
    let tokio_late = crate::measure::timer::TOKIO_TIMER_LATENESS;
    if timer_kind == TimerKind::Tokio && s.generator.max_schedule_lag <= tokio_late {
        // Said before the run, not only in its verdict: such a limit fails on an idle machine.
        notes.push(format!(
            "generator.max_schedule_lag is {}, and the sends wait on tokio's timer{}, which by itself wakes a send about 1 ms late and up to about {} at p99: expect the run to be called saturated however idle the generator; give `--timer precise` or a limit above {}",
            crate::config::slo::format_micros(s.generator.max_schedule_lag.as_micros() as f64),
            if s.generator.timer == TimerKind::Auto {
                format!(
                    " (`auto` picks it above {} sends a second)",
                    crate::config::scenario::PRECISE_TIMER_MAX_SENDS_PER_S
                )
            } else {
                String::new()
            },
            crate::config::slo::format_micros(tokio_late.as_micros() as f64),
            crate::config::slo::format_micros(tokio_late.as_micros() as f64),
        ));
    }
    if config.progress != ProgressMode::Quiet {
        for note in &notes {
            crate::errln!("imbench: {note}");
        }
    }
    if matches!(config.server, ServerSpec::Embedded) {
        group_limits::check_memberships(&s)?;
    }
    let (driver, embedded) = driver_for(&config, &s).await?;
    check_driver_gives(&driver, &s)?;
    // Fail fast, with the reason, when the server cannot be reached at all. Before the run's
    // clock starts: on a slow path this login takes round trips that would otherwise come out
    // of the ramp-up and the warm-up.
    first_login(&driver, &config).await?;
    let path_before = config.path.as_ref().map(|p| p.stats());
    // This run's name on the live endpoint, as in its report.
    let target = run_name(config.label.as_deref(), &config.server, config.transport);
    if let Some(live) = &config.live {
        live.set_server(
            embedded
                .as_ref()
                .and_then(|e| e.server.as_ref())
                .map(RunningServer::figures),
        );
    }
    let rss_before = report::rss_bytes();

    // Held until the run ends: dropping it stops the timer thread.
    let (timer, _timer_thread) = match timer_kind {
        TimerKind::Tokio => crate::measure::timer::Timer::tokio(),
        _ => crate::measure::timer::Timer::precise().map_err(|source| RunError::Thread {
            what: "the timer thread",
            source,
        })?,
    };
    let mut ctx = RunContext::new(s.clone(), driver, timer, config.shard, &target, notes);
    if embedded.is_some() {
        group_limits::check_plan(&ctx.plan)?;
    }
    ctx.outages = config.path.as_ref().map(|path| path.outages());
    let ctx = Arc::new(ctx);
    let (measure_start_us, schedule_end_us) = (ctx.measure_start_us, ctx.schedule_end_us);
    // Held until the run ends: the machine's own pauses, beside the run (the `hiccup` figure).
    let _hiccup_meter = {
        let ctx = ctx.clone();
        HiccupMeter::start(move |late_us| {
            let intended_us = ctx.clock.now_us().saturating_sub(late_us);
            ctx.recorder
                .record(Metric::Hiccup, late_us, ctx.in_window(intended_us));
        })
        .map_err(|source| RunError::Thread {
            what: "the hiccup meter's thread",
            source,
        })?
    };

    let mut clients = start_clients(&ctx, config.shard, || {
        config.interrupt.as_ref().is_some_and(|rx| *rx.borrow())
    });

    let mut progress = Progress::new(config.progress, &ctx);
    let mut intervals = Vec::new();
    let mut interval_log = Vec::new();
    let mut rss_connected = rss_before;
    // Clients that had logged in when `rss_connected` was last read: the memory per client is of them,
    // not of those asked for (a run interrupted during its ramp-up, or a ramp-up that could not
    // connect everyone, holds fewer).
    let mut clients_at_rss = 0;
    let mut tick = tokio::time::interval_at(
        Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let mut drain_deadline = ctx.clock.at(schedule_end_us) + s.drain;
    let mut cpu_at_measure_start = None;
    let mut cpu_at_schedule_end = None;
    let mut threads_at_measure_start = None;
    let mut threads_at_schedule_end = None;
    // Deliveries received by then, read with the CPU: the CPU per delivery divides the CPU of
    // that span by what arrived in it (the measured period's messages may arrive in the drain,
    // whose CPU is not counted).
    let mut delivered_at_measure_start = None;
    let mut delivered_at_schedule_end = None;
    // Clients not yet logged in (nor failed) when the measured period began: their logins'
    // work falls in it.
    let mut logging_in_at_measure_start = 0;
    // A standalone QUIC server on loopback: its socket's drops are read too.
    let server_socket = match (&config.server, config.transport) {
        (ServerSpec::Remote { addr, .. }, Transport::Quic) => Some(*addr),
        _ => None,
    };
    // Drops from the start of the measured period to the end of the schedule, for imbench's
    // QUIC (the only transport on UDP sockets; another system's target runs over TCP).
    let mut drops: Option<DropTally> = None;
    let mut group_quiet = GroupQuiet::default();
    let mut watchdog = Watchdog::new(s.generator.answer_timeout)
        .on_held_path(config.namespace.clone())
        .watching_port(server_socket);
    let mut interrupt = config.interrupt.clone();
    loop {
        let now_us = ctx.clock.now_us();
        if now_us >= measure_start_us && cpu_at_measure_start.is_none() {
            // The memory of the clients connected by now, read once more here: a ramp-up and
            // warm-up shorter than the one-second tick would have no reading at all.
            rss_connected = rss_connected.max(report::rss_bytes());
            clients_at_rss = logged_in(&ctx);
            logging_in_at_measure_start =
                clients_in(&s, config.shard).saturating_sub(clients_at_rss + failed_logins(&ctx));
            cpu_at_measure_start = Some(imbench_server::process::cpu_seconds());
            threads_at_measure_start = Some(CpuSnapshot::take());
            delivered_at_measure_start = Some(deliveries_so_far(&ctx));
            drops = imbench_quic.then(|| DropTally::start(DropSnapshot::take(server_socket)));
        }
        let schedule_over = now_us >= ctx.schedule_end();
        if schedule_over && cpu_at_schedule_end.is_none() {
            watchdog.schedule_ended(&ctx);
            cpu_at_schedule_end = Some(imbench_server::process::cpu_seconds());
            threads_at_schedule_end = Some(CpuSnapshot::take());
            delivered_at_schedule_end = Some(deliveries_so_far(&ctx));
            if let Some(d) = &mut drops {
                d.observe(DropSnapshot::take(server_socket));
            }
        }
        if schedule_over
            && ((drained(&ctx) && group_quiet.check(&ctx)) || Instant::now() >= drain_deadline)
        {
            if ctx.stop_reason().is_none() {
                if let Some(why) = watchdog.silent_through_drain(&ctx, s.drain) {
                    // Silent from before the schedule's end: the period ends where it fell
                    // silent. From within the drain: the period was whole.
                    ctx.stop_at(why, watchdog.silence_began_us(&ctx));
                }
            }
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(ctx.clock.at(measure_start_us)), if cpu_at_measure_start.is_none() => {}
            _ = tick.tick() => {
                let (point, totals) = interval_point(&ctx, &mut intervals, &mut interval_log);
                if ctx.clock.now_us() <= measure_start_us {
                    rss_connected = rss_connected.max(report::rss_bytes());
                    clients_at_rss = logged_in(&ctx);
                }
                // A socket a client closes during the period takes its count with it: look
                // once a second, so that at most the last second's drops of one go unseen.
                if let (Some(d), false) = (&mut drops, schedule_over) {
                    d.observe(DropSnapshot::take(server_socket));
                }
                progress.update(&ctx, &point, &totals);
                if let Some(live) = &config.live {
                    live.publish(&ctx, &target, &point, totals);
                }
                // Through the drain too: a server that went silent near the end of the
                // schedule is a server that stopped, not messages that were late.
                watch_server(&ctx, &mut watchdog, &mut drain_deadline);
            }
            // A client without its connection: if it was the last one, the run stops now.
            () = ctx.loss_noticed(), if ctx.stop_reason().is_none() => {
                watch_server(&ctx, &mut watchdog, &mut drain_deadline);
            }
            _ = tokio::time::sleep(Duration::from_millis(50)), if schedule_over => {}
            _ = tokio::time::sleep_until(ctx.clock.at(ctx.schedule_end())), if !schedule_over => {}
            changed = wait_interrupt(&mut interrupt) => {
                if changed {
                    // Handled once: the watch stays set, and would be ready at every turn.
                    interrupt = None;
                    measuring.cut_short();
                    let wait = humantime::format_duration(STOPPED_DRAIN);
                    if schedule_over {
                        crate::errln!(
                            "imbench: interrupted in the drain: up to {wait} more for what is in flight, then the report (Ctrl-C again to quit at once)"
                        );
                    } else {
                        crate::errln!(
                            "imbench: interrupted; stopping the run: no more sends, up to {wait} for what is in flight, then a report of what it measured (Ctrl-C again to quit at once)"
                        );
                    }
                    let at = ctx.clock.now_us() as f64 / 1e6;
                    ctx.stop(if schedule_over {
                        format!(
                            "interrupted at {at:.1}s; messages still on their way then were waited for {}s more at most, not the rest of the drain",
                            STOPPED_DRAIN.as_secs()
                        )
                    } else if ctx.clock.now_us() < ctx.measure_start_us {
                        format!(
                            "interrupted at {at:.2}s, before the measured period began at {:.2}s: nothing was measured",
                            ctx.measure_start_us as f64 / 1e6
                        )
                    } else {
                        format!("interrupted at {at:.1}s; this report covers what was measured until then")
                    });
                    drain_deadline = drain_deadline.min(Instant::now() + STOPPED_DRAIN);
                }
            }
        }
    }
    measuring.settled(config.interrupt.as_ref());
    ctx.finish();
    let _ = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(ended) = clients.join_next().await {
            // A client task that panicked is a generator bug; it must not pass unseen.
            if let Err(e) = ended {
                if e.is_panic() {
                    ctx.note_problem(format!("a client task panicked: {e}"));
                }
            }
        }
    })
    .await;
    clients.abort_all();
    let (last, totals) = interval_point(&ctx, &mut intervals, &mut interval_log);
    progress.finish();
    if let Some(live) = &config.live {
        live.publish(&ctx, &target, &last, totals);
        live.set_server(None);
    }

    let server_label = match &config.server {
        ServerSpec::Embedded => report::model::EMBEDDED.to_string(),
        ServerSpec::Remote { addr, .. } => addr.to_string(),
        ServerSpec::Memory => "memory".to_string(),
        ServerSpec::Nats(target) => target.host_port.clone(),
        ServerSpec::Mqtt(target) => format!("{}:{}", target.host, target.port),
        ServerSpec::Xmpp(target) => format!("{}:{}", target.host, target.port),
    };
    let window = (measure_start_us, ctx.schedule_end());
    let (groups, group_records) = match ctx.shard {
        // Other shards' members received this shard's messages: the shards' records, on the
        // wall clock they share, are settled together by `imbench merge`.
        Some(_) if !ctx.plan.groups.is_empty() => {
            let records = ctx
                .ledger
                .records(&ctx.plan, window, ctx.clock.now_us(), |t| {
                    ctx.clock.wall_us(t)
                });
            (GroupOutcome::counted_only(&records), Some(records))
        }
        _ => (
            ctx.ledger.settle(&ctx.plan, window, ctx.clock.now_us()),
            None,
        ),
    };
    let (problems, problem_count) = ctx.problems();
    let memory = report::Memory {
        earlier_runs,
        ..report::Memory::measure(
            rss_before,
            rss_connected,
            clients_at_rss,
            embedded.is_some(),
        )
    };
    let cpu_used = match (
        cpu_at_measure_start.flatten(),
        cpu_at_schedule_end.flatten(),
    ) {
        // A run stopped before its measured period took the end before the start: it
        // measured no CPU.
        (Some(start), Some(end)) if end >= start => Some(end - start),
        _ => None,
    };
    let cpu_use = match (&threads_at_measure_start, &threads_at_schedule_end) {
        (Some(a), Some(b)) => CpuUse::between(a, b, embedded.is_some()),
        _ => None,
    };
    let udp_drops = match (&drops, cpu_at_schedule_end.is_some()) {
        (Some(d), true) => Some(d.drops()),
        _ => None,
    };
    let mut notes = ctx.notes.clone();
    let totals = ClientTotals::of(&ctx.counters);
    let (sent, refused) = (
        totals.sent + totals.group_sent,
        totals.rejected + totals.group_rejected,
    );
    if refused > 0 {
        // A verdict of OK beside most messages refused would read as a server that coped.
        notes.push(format!(
            "the server refused {refused} of {sent} messages sent ({:.1} %): latencies are of \
             those it accepted; add an SLO such as `rejected == 0` to fail such a run",
            refused as f64 * 100.0 / sent.max(1) as f64
        ));
    }
    let late = ctx.late_logins.load(std::sync::atomic::Ordering::Relaxed);
    let latest_us = ctx
        .latest_login_after_send_start_us
        .load(std::sync::atomic::Ordering::Relaxed);
    let short = totals.rejected > 0 || totals.delivered < totals.sent;
    // Said when something went missing, or when a login came so late that its client's
    // missing sends are a share of the load: the last client of a ramp-up often logs in a
    // moment after sending began, which on its own costs nothing worth a note.
    if late > 0
        && (short || Duration::from_micros(latest_us) >= LATE_LOGIN_WORTH_A_NOTE)
        && config.shard.is_none()
    {
        let where_they_went = match &config.server {
            _ if !short => "",
            // NATS keeps nothing for a client that is not there, and an MQTT broker has no
            // session for a client that has not logged in yet (an earlier run's is cleared).
            ServerSpec::Nats(_) | ServerSpec::Mqtt(_) => "; a message sent to one of them before it was online had nobody to go to, and is counted in `lost` (over MQTT 5 at QoS 1, `rejected`)",
            // An account this run registers does not exist before its first login: the
            // server refuses a message to it. One to an account that exists but is not online
            // yet is kept by a server with offline storage; ejabberd without it acknowledges
            // the message and bounces it after.
            ServerSpec::Xmpp(_) => "; a message to one whose account did not exist yet (a run that registers its accounts makes them as it logs in) was refused, and is counted in `rejected`; one to an account not online yet is kept by a server with offline storage and delivered at the login, or bounced (ejabberd without `mod_offline` acknowledges it first: `lost`, with an error)",
            _ => "",
        };
        // A late client begins its sends when it logs in (it does not owe those it could not
        // have sent), so `sent` falls short of the schedule, and of another target's run of it.
        notes.push(format!(
            "{late} {} only after sending had begun, the last {} after (the ramp-up of {} was shorter than the logins took): each began its sends when it logged in, so this run sent fewer messages than its schedule had{where_they_went}; a longer --ramp-up gives every client time",
            if late == 1 { "client logged in" } else { "clients logged in" },
            short_duration(Duration::from_micros(latest_us)),
            short_duration(ctx.scenario.ramp_up)
        ));
    }
    // A ramp-up the logins outlasted into the measured period: their handshakes' work is in
    // its figures (a machine slower than the scenario was written for), and may be what made
    // its schedule late. Not said of a run stopped before it began measuring.
    if logging_in_at_measure_start > 0 && ctx.schedule_end() > measure_start_us {
        notes.push(format!(
            "{logging_in_at_measure_start} of {} clients were still logging in, or waiting their turn to, when the measured period began at {} (ramp-up {}, warm-up {}): their logins' work is in its CPU and latency figures, and may have made its schedule late; a longer --ramp-up keeps the logins out of it",
            clients_in(&s, config.shard),
            short_duration(Duration::from_micros(measure_start_us)),
            short_duration(ctx.scenario.ramp_up),
            short_duration(ctx.scenario.warmup),
        ));
    }
    // Clients that never connected received nothing: what was sent to them is lost, and the
    // count of lost says nothing of the system's delivery until that is said.
    if totals.connect_failed > 0 && short {
        let n = totals.connect_failed;
        let counted = match &config.server {
            // The server answers for an account it does not have, or keeps what it can.
            ServerSpec::Xmpp(_) => "is refused by the server when the account does not exist (counted in `rejected`), or kept for a later login by one with offline storage, and so never delivered in this run (`lost`)",
            ServerSpec::Mqtt(t)
                if t.version == crate::driver::mqtt::Version::V5 && t.qos >= 1 && !t.persistent =>
            {
                "is counted in `rejected` when the broker's PUBACK or PUBREC says nobody was subscribed, otherwise in `lost`"
            }
            _ => "is counted in `lost`",
        };
        notes.push(format!(
            "{n} {} never connected (see the problems for why): what the others sent {} had nobody to receive it and {counted}",
            if n == 1 { "client" } else { "clients" },
            if n == 1 { "it" } else { "them" },
        ));
    }
    // A stopped run leaves out the clients it had not logged in yet (not started, waiting for
    // their turn, or logging in when it ended): not the system's failure, but what was sent
    // to them is lost all the same.
    let left_out = (clients_in(&s, config.shard) as u64)
        .saturating_sub(totals.connected + totals.connect_failed);
    if left_out > 0 && ctx.schedule_end() < ctx.schedule_end_us {
        let sent_any = totals.sent + totals.group_sent > 0;
        notes.push(format!(
            "{left_out} {} never logged in: the run was stopped first{}",
            if left_out == 1 { "client" } else { "clients" },
            match (sent_any, left_out == 1) {
                (false, _) => String::new(),
                (true, true) => " (what was sent to it is counted in `lost`)".to_string(),
                (true, false) => " (what was sent to them is counted in `lost`)".to_string(),
            },
        ));
    }
    // Another system's access rules can let a client publish and not receive: everything is
    // acked, nothing arrives, and every message is lost without a word from the server.
    let accepted = totals.acked + totals.group_acked;
    let arrived = totals.delivered
        + ctx
            .ledger
            .deliveries
            .load(std::sync::atomic::Ordering::Relaxed);
    if accepted > 0
        && arrived == 0
        && config.shard.is_none()
        && matches!(
            config.server,
            ServerSpec::Nats(_) | ServerSpec::Mqtt(_) | ServerSpec::Xmpp(_)
        )
    {
        notes.push(format!(
            "the server accepted {accepted} messages and delivered none: do the server's access rules let the clients both publish and read their topics or subjects (a broker may take a message it is not allowed to route and drop it without a word)?"
        ));
    }
    // A server that acknowledged messages and bounced them after: what it lost is explained,
    // in its own words in the problems.
    if totals.bounced > 0 {
        notes.push(format!(
            "the server acknowledged {} and then bounced {} back (the problems give its reason for each): a server that keeps nothing for a client that is not online (ejabberd without `mod_offline`) bounces what was sent to one away or not yet logged in, and a room on a service the server does not have (`remote-server-not-found`: see the target's `muc=`) bounces every group message to it; each is counted in `errors`, and in `lost` unless its recipient had received it before its session ended",
            messages(totals.bounced),
            if totals.bounced == 1 { "it" } else { "them" },
        ));
    }
    if let Some(ns) = &config.namespace {
        notes.push(match &ctx.scenario.network {
            Some(held) => format!(
                "clients in network namespace {ns} (--namespace), on the path `imbench path` holds there: {}; the scenario's [network], if any, was not used",
                held.describe()
            ),
            None => format!(
                "clients in network namespace {ns} (--namespace), on a path `imbench path` did not record: this report cannot name it"
            ),
        });
        // The machine's counters are read where the run's threads are: the server, in the
        // path's other namespace, is not in them.
        if config.transport == Transport::Quic && matches!(config.server, ServerSpec::Remote { .. })
        {
            notes.push(format!(
                "UDP sends per message are counted in the clients' namespace {ns} only: the server's, in the path's other namespace, are not in them"
            ));
        }
    }
    if let (Some(path), Some(before)) = (&config.path, path_before) {
        notes.push(path_note(before, path.stats()));
    }
    let mut report = Report::build(report::Measurement {
        scenario: ctx.scenario.clone(),
        slo_lifted,
        started_at: ctx.clock.started_at,
        measure_start_us,
        measure_end_us: ctx.schedule_end(),
        stop_reason: ctx.stop_reason(),
        shard: ctx.shard.map(|s| s.to_string()),
        notes,
        timer: ctx.timer.kind(),
        histograms: Metric::ALL
            .iter()
            .map(|&m| (m, ctx.recorder.total(m)))
            .collect(),
        buckets: ctx.plan.buckets(),
        clients: {
            // A period cut short after the fact (a server silent since before it was noticed)
            // counted sends made into the silence as the period's: only those due before its
            // end are.
            let mut totals = ClientTotals::of(&ctx.counters);
            let end = ctx.schedule_end();
            totals.sent_in_window = totals.sent_in_window.min(ctx.direct_in_window.before(end));
            totals.group_sent_in_window = totals
                .group_sent_in_window
                .min(ctx.group_in_window.before(end));
            totals
        },
        files: ctx.files.totals(),
        transport: target,
        server: server_label,
        intervals,
        interval_log,
        problems,
        problem_count,
        memory,
        cpu_seconds: cpu_used,
        cpu_use,
        delivered_with_cpu: match (delivered_at_measure_start, delivered_at_schedule_end) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        },
        udp_drops,
        groups,
    });
    for run in &mut report.runs {
        run.group_records = group_records.clone();
        run.target = config.target_url.clone();
    }
    if let Some(server) = embedded {
        // An interrupted run has waited for what was in flight already: the user is waiting
        // for the report, not for sessions on a slow path to end in order.
        let limit = if config.interrupt.as_ref().is_some_and(|rx| *rx.borrow()) {
            INTERRUPTED_SERVER_STOP
        } else {
            EMBEDDED_SERVER_STOP
        };
        server.shutdown(limit).await;
    }
    RunOutcome::written(report, config.out_dir.as_deref())
}

/// An unreachable server, when the clients reach it through an emulated path: the path's
/// loss, delay or bandwidth may be what kept the first login from completing, not the server.
fn through_the_path(e: RunError, config: &RunConfig) -> RunError {
    // The next leg of a comparison after the held path went down under the one before.
    let gone = match &e {
        RunError::Unreachable { .. } => config.namespace.as_deref().and_then(held_path_gone),
        _ => None,
    };
    match e {
        RunError::Unreachable { target, why } if gone.is_some() => RunError::Unreachable {
            target,
            why: format!("{why} ({})", gone.unwrap_or_default()),
        },
        // A loopback address inside a held path's client namespace is that namespace's own
        // loopback, where nothing of the host listens.
        RunError::Unreachable { target, why }
            if config.namespace.is_some() && names_loopback(&target) =>
        {
            let ns = config.namespace.as_deref().unwrap_or_default();
            RunError::Unreachable {
                target,
                why: format!(
                    "{why} (the clients run in network namespace {ns}, whose loopback is its own: a server on this host's loopback cannot be reached from there; give the address on the path's server side, {})",
                    imbench_netpath::SERVER_ADDR
                ),
            }
        }
        RunError::Unreachable { target, why } if on_a_path(config) => {
            let path = config.scenario.network.as_ref().map_or_else(
                || "the emulated path".to_string(),
                |n| format!("network path {}", n.describe()),
            );
            RunError::Unreachable {
                target,
                why: format!(
                    "{why} (through {path}: its loss, delay or bandwidth may be what kept the first login from completing within the connect timeout)"
                ),
            }
        }
        e => e,
    }
}

/// When the held path whose client side is `namespace` has gone (its `imbench path` ended,
/// or was killed), what that means for the clients on it.
fn held_path_gone(namespace: &str) -> Option<String> {
    let gone = !imbench_netpath::netns::exists(namespace)
        || imbench_netpath::netns::orphaned(namespace).is_some();
    gone.then(|| {
        format!(
            "the path the clients are on is gone (the `imbench path` that held {namespace} has ended), and nothing carries their packets any more"
        )
    })
}

/// Whether a target's description names a loopback address (`127.0.0.1:4222`, `[::1]:1883`,
/// `localhost:5222`).
fn names_loopback(target: &str) -> bool {
    ["127.", "localhost", "[::1]"]
        .iter()
        .any(|host| target.contains(host))
}

/// Whether `config`'s clients are on an emulated path: this run's own, or one `imbench path`
/// holds (`--namespace`).
fn on_a_path(config: &RunConfig) -> bool {
    config.path.is_some() || config.namespace.is_some()
}

/// How many UDP endpoints the generator's QUIC clients share; 0 gives each connection a
/// socket of its own (and takes an open file per client). On an emulated path with a link per
/// client, a client's link is told by its port, and a client that changes networks (a
/// handover) moves its connection to a new socket: both need a socket each.
fn quic_endpoints(s: &Scenario, on_path: bool) -> usize {
    let link_each = on_path && s.network.as_ref().is_some_and(|n| !n.shared);
    let handovers = s.churn.enabled() && s.churn.handover > 0.0;
    match s.generator.endpoints {
        0 if link_each || handovers => 0,
        0 => s.clients.div_ceil(1000).clamp(1, 16),
        n => n,
    }
}

/// The driver for `config`'s server, and the embedded server when the run starts one.
async fn driver_for(
    config: &RunConfig,
    s: &Scenario,
) -> Result<(Driver, Option<EmbeddedServer>), RunError> {
    // Validated with the scenario, so this does not fail here.
    let quic = s.quic.apply(&config.quic).map_err(RunError::Scenario)?;
    let mut embedded: Option<EmbeddedServer> = None;
    // The path is this run's own, or one `imbench path` holds (`--namespace`, whose recorded
    // [network] the scenario now carries).
    let endpoints = quic_endpoints(s, on_a_path(config));
    let imbench = |addr: SocketAddr, trust: &ClientTrust, secret: Secret, server_name: String| {
        let connector = Connector::new(
            config.transport,
            trust,
            &quic,
            endpoints,
            addr,
            imbench_proto::Codec::default(),
        )?;
        Ok::<_, RunError>(Driver::Imbench(Box::new(ImbenchDriver {
            transport: config.transport,
            connector,
            addr,
            server_name,
            secret,
            resumption: s.generator.resumption.into(),
            tickets: Default::default(),
            welcomed: Default::default(),
        })))
    };
    let driver = match &config.server {
        ServerSpec::Embedded => {
            let mut server_config = ServerConfig::loopback_on(&[config.transport])?;
            server_config.quic = quic.clone();
            let namespace = config.path.as_ref().map(|path| {
                for (_, addr) in &mut server_config.listen {
                    *addr = SocketAddr::from((imbench_netpath::SERVER_ADDR, 0));
                }
                path.server_namespace().name().to_string()
            });
            let trust = server_config.identity.client_trust();
            let secret = server_config.secret.clone();
            let server = EmbeddedServer::start(server_config, namespace).await?;
            let addr = server
                .server
                .as_ref()
                .and_then(|srv| srv.addr(config.transport))
                .ok_or(RunError::NotListening(config.transport))?;
            embedded = Some(server);
            imbench(addr, &trust, secret, "localhost".to_string())?
        }
        ServerSpec::Remote {
            addr,
            trust,
            secret,
            server_name,
        } => imbench(
            *addr,
            trust,
            Secret::clone(secret),
            server_name.clone().unwrap_or_else(|| addr.ip().to_string()),
        )?,
        ServerSpec::Memory => Driver::Memory(Hub::new()),
        ServerSpec::Nats(target) => Driver::Nats(NatsDriver::new(
            target.clone(),
            s.largest_body() as usize + crate::driver::envelope::ENVELOPE_LEN,
        )),
        ServerSpec::Mqtt(target) => Driver::Mqtt(MqttDriver::new(
            target.clone(),
            s.largest_body() + crate::driver::envelope::ENVELOPE_LEN as u64,
            s.clients.max(s.groups.count) as u64,
            s.generator.connect_timeout,
        )),
        ServerSpec::Xmpp(target) => {
            Driver::Xmpp(crate::driver::xmpp::XmppDriver::new(target.clone()))
        }
    };
    Ok((driver, embedded))
}

/// Checks that `config`'s system can be reached and lets a client log in, without running
/// anything: a comparison checks each of its targets this way before the first one runs. The
/// embedded server is not started for this; it is always there.
pub async fn probe(config: &RunConfig) -> Result<(), RunError> {
    // Held as a run's, so that an interrupt's handler leaves the words to the error this
    // check returns for it (it said "no run was measuring" beside it).
    let _checking = measuring::Measuring::begin();
    let s = &config.scenario;
    check_slo_names(s)?;
    check_files(config, config.transport)?;
    if matches!(config.server, ServerSpec::Embedded) {
        return Ok(());
    }
    let (driver, _) = driver_for(config, s).await?;
    check_driver_gives(&driver, s)?;
    first_login(&driver, config).await
}

/// Logs one client in through `driver` and out again: the server answers, and lets a client
/// of `config` in, or the error says why not. The user is one past the scenario's clients
/// (no client's own), with receipts, which it never sends: whatever a server holds for it (a
/// server that keeps holds across runs) goes back to its hold when it leaves, instead of
/// being written to a connection that reads nothing and forgotten. Ctrl-C while it is still
/// unanswered ends it at once, and the error says so.
async fn first_login(driver: &Driver, config: &RunConfig) -> Result<(), RunError> {
    let s = &config.scenario;
    let timeout = s.generator.connect_timeout;
    let probed = tokio::select! {
        probed = driver.first_connect(s.clients as u64, true, timeout) => probed,
        () = interrupted(config) => return Err(RunError::InterruptedBeforeStart),
    };
    judge_probe(probed, driver.describe(), timeout)
        .await
        .map_err(|e| through_the_path(e, config))
}

/// Completes when `config`'s run is interrupted (Ctrl-C), and never when it cannot be.
async fn interrupted(config: &RunConfig) {
    match config.interrupt.clone() {
        // A sender that is gone can no longer interrupt.
        Some(mut rx) => {
            if rx.wait_for(|stop| *stop).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

pub use crate::report::figures::OWN_CLIENTS_ONLY;

/// Refuses what a driver cannot give: files on one that carries none, and an SLO on a
/// counter only imbench's own clients make ([`OWN_CLIENTS_ONLY`]) on another system.
fn check_driver_gives(driver: &Driver, s: &Scenario) -> Result<(), RunError> {
    if s.files.rate > 0.0 && !driver.carries_files() {
        return Err(RunError::Unsupported(format!(
            "{} carries no files; this scenario sends them (leave out its [files], or set their rate = 0)",
            driver.describe()
        )));
    }
    if !matches!(driver, Driver::Imbench(_)) {
        for expr in &s.slo {
            let Ok((name, _, _)) = crate::config::slo::Slo::split(expr) else {
                continue;
            };
            if OWN_CLIENTS_ONLY.contains(&name) {
                return Err(RunError::Slo {
                    expr: expr.clone(),
                    why: format!(
                        "{} gives no {name}: it counts what only imbench's own clients do (QUIC 0-RTT, TLS session resumption, QUIC connection migration), and would read 0 here for not being measured",
                        driver.describe()
                    ),
                });
            }
        }
    }
    Ok(())
}

/// What a first connection, made before any client runs, says: closed again when it was
/// made, or why the run cannot take place (`timeout` is how long it was given).
async fn judge_probe(
    probed: Result<Result<crate::driver::Session, ConnectError>, tokio::time::error::Elapsed>,
    target: String,
    timeout: Duration,
) -> Result<(), RunError> {
    match probed {
        Ok(Ok(mut session)) => {
            session.sender.close("probe").await;
            session.sender.abort("probe");
            Ok(())
        }
        Ok(Err(ConnectError::Refused(why))) => Err(RunError::Refused { target, why }),
        Ok(Err(ConnectError::Misconfigured(why))) => Err(RunError::Misconfigured { target, why }),
        Ok(Err(ConnectError::Failed(why))) => Err(RunError::Unreachable { target, why }),
        Err(_) => {
            // A port of something else that waits for its own kind of request (an HTTP
            // server) says nothing, as does a host whose firewall drops the packets.
            let why = if timeout < crate::driver::SHORT_CONNECT_TIMEOUT {
                // Short enough that a login over a real path (or on a busy machine) may not
                // fit in it: the setting is more likely at fault than the server.
                format!(
                    "no answer within {timeout:?}, the scenario's generator.connect_timeout: a login takes a handshake and a round trip or two, which even on loopback can take longer than that; give a longer connect_timeout (the default is {:?})",
                    crate::config::scenario::GeneratorOptions::default().connect_timeout
                )
            } else {
                format!(
                    "no answer within {timeout:?} (generator.connect_timeout): is the address right, and the server running? (a server that hangs, a host that drops the packets, or something that takes a connection and waits for its own kind of request looks like this)"
                )
            };
            Err(RunError::Unreachable { target, why })
        }
    }
}

/// The reference server run in this process, on a runtime of its own: its threads are named
/// [`crate::measure::cpu_use::SERVER_THREAD_NAME`] so that its CPU is told apart from the generator's,
/// and its tasks do not queue behind the clients' on the same workers (as they would not in a
/// real deployment). It has its share of the machine's CPUs ([`workers::WorkerSplit`]).
struct EmbeddedServer {
    server: Option<RunningServer>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl EmbeddedServer {
    /// Starts the server; with `namespace`, every thread of its runtime joins that network
    /// namespace first, so its sockets live there (the server side of an emulated path).
    async fn start(config: ServerConfig, namespace: Option<String>) -> Result<Self, RunError> {
        let threads = workers::WorkerSplit::of_this_machine().server;
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder
            .worker_threads(threads)
            .thread_name(crate::measure::cpu_use::SERVER_THREAD_NAME)
            .enable_all();
        if let Some(name) = namespace {
            builder.on_thread_start(move || {
                if let Err(e) = imbench_netpath::netns::enter(&name) {
                    // The server's sockets would then be on loopback, which the clients
                    // cannot reach: the run fails to connect and says so.
                    crate::errln!("imbench: the embedded server's thread: {e}");
                }
            });
        }
        let runtime = builder.build().map_err(|source| RunError::Thread {
            what: "the embedded server's runtime",
            source,
        })?;
        let started = runtime.spawn(imbench_server::start(config));
        // Dropped on an error path, `this` lets the runtime's threads go (see `Drop`).
        let mut this = Self {
            server: None,
            runtime: Some(runtime),
        };
        let server = started.await.map_err(|e| RunError::Thread {
            what: "the embedded server",
            source: std::io::Error::other(e.to_string()),
        })??;
        this.server = Some(server);
        Ok(this)
    }

    async fn shutdown(mut self, limit: Duration) {
        if let Some(runtime) = self.runtime.take() {
            if let Some(server) = self.server.take() {
                let _ = runtime.spawn(server.shutdown_within(limit)).await;
            }
            runtime.shutdown_background();
        }
    }
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        // A runtime cannot be dropped from async code; this one lets its threads go instead.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// What the emulated network path did to this run's packets, each way, for the report.
fn path_note(
    before: (
        imbench_netpath::DirectionStats,
        imbench_netpath::DirectionStats,
    ),
    after: (
        imbench_netpath::DirectionStats,
        imbench_netpath::DirectionStats,
    ),
) -> String {
    let way = |b: imbench_netpath::DirectionStats, a: imbench_netpath::DirectionStats| {
        a.since(&b).summary()
    };
    format!(
        "network path: clients to server {}; server to clients {}",
        way(before.0, after.0),
        way(before.1, after.1)
    )
}

/// Refuses a run whose scenario asks for an emulated network path that is not up, or a path
/// around a server this process does not start.
fn check_path(config: &RunConfig) -> Result<(), RunError> {
    let wanted = match &config.scenario.network {
        Some(n) => n.path().map_err(RunError::Unsupported)?.is_some(),
        None => false,
    };
    match (wanted, config.path.is_some(), &config.server) {
        (true, false, ServerSpec::Embedded) => Err(RunError::Unsupported(
            "the scenario's [network] path is brought up by the imbench command (imbench run), \
             not by a run started from the library"
                .into(),
        )),
        // Another server: the clients are wherever the caller put them (`--namespace`, the
        // client side of a path `imbench path` holds); the section describes that path.
        (_, false, _) | (_, true, ServerSpec::Embedded) => Ok(()),
        (_, true, _) => Err(RunError::Unsupported(
            "a path a run makes (--network, [network]) carries the embedded server's traffic \
             only; hold one with `imbench path` for a server of your own"
                .into(),
        )),
    }
}

/// Starts this generator's clients (those of `shard`), asking `interrupted` now and then:
/// starting half a million takes seconds, and Ctrl-C meanwhile stops it, so the run ends at
/// once. A client not started sends nothing, and is counted as done sending.
fn start_clients(
    ctx: &Arc<RunContext>,
    shard: Option<Shard>,
    interrupted: impl Fn() -> bool,
) -> JoinSet<()> {
    let mut clients = JoinSet::new();
    let mut stopped = false;
    for (n, index) in (0..ctx.scenario.clients)
        .filter(|&i| shard.is_none_or(|sh| sh.owns(i)))
        .enumerate()
    {
        stopped = stopped || (n % START_CHECK_EVERY == 0 && interrupted());
        if stopped {
            ctx.counters[index].done_sending.store(true, Relaxed);
        } else {
            clients.spawn(client::run_client(ctx.clone(), index));
        }
    }
    clients
}

/// Clients started between two looks at the interrupt (a few ms of work).
const START_CHECK_EVERY: usize = 1024;

/// The clients of `s` this generator runs.
pub(crate) fn clients_in(s: &Scenario, shard: Option<Shard>) -> usize {
    match shard {
        Some(sh) => sh.clients_of(s.clients),
        None => s.clients,
    }
}

/// Refuses an SLO whose left-hand side names no figure a report can hold, or that compares a
/// count so that no run can decide it (`lost == 0.5`): a typo must be a usage error before
/// the run, not an SLO failure after it.
pub fn check_slo_names(s: &Scenario) -> Result<(), RunError> {
    use crate::config::slo::{Slo, Target};
    for expr in &s.slo {
        let refuse = |why: String| RunError::Slo {
            expr: expr.clone(),
            why,
        };
        // What the name is decides the advice: a count given a statistic, a latency without
        // one, a count compared with a duration.
        let (name, op, value) = Slo::split(expr).map_err(|e| refuse(e.why().to_string()))?;
        let token = op.token();
        let is_number = |n: &str| report::slo_target_known(&Target::Number(n.to_string()));
        let is_latency = |n: &str| {
            report::slo_target_known(&Target::Latency {
                metric: n.to_string(),
                stat: "p99".into(),
            })
        };
        let plain = value.parse::<f64>().is_ok();
        match name.split_once('.') {
            Some((metric, _)) if is_number(metric) && !is_latency(metric) => {
                let example = if plain { value } else { "0" };
                return Err(refuse(format!(
                    "{metric:?} is a count or a rate, not a latency: it takes no statistic, as in {metric} {token} {example}"
                )));
            }
            None if is_latency(name) && !is_number(name) => {
                let example = if plain { "200ms" } else { value };
                return Err(refuse(format!(
                    "{name:?} is a latency: give it a statistic, as in {name}.p99 {token} {example}"
                )));
            }
            None if is_number(name) && !plain => {
                return Err(refuse(format!(
                    "{name:?} is a count or a rate: compare it with a plain number, as in {name} {token} 1"
                )));
            }
            _ => {}
        }
        let slo = Slo::parse(expr).map_err(|e| refuse(e.why().to_string()))?;
        if report::slo_target_known(&slo.target) {
            if let Some(why) = report::slo_never_decides(&slo) {
                return Err(refuse(why));
            }
            if let Some(why) = workload_missing(s, name) {
                return Err(refuse(why));
            }
            continue;
        }
        return Err(refuse(match &slo.target {
            Target::Latency { metric, .. } | Target::Number(metric) => format!(
                "no figure is called {metric:?}; one of: {}",
                report::slo_names().join(", ")
            ),
        }));
    }
    Ok(())
}

/// Why figure `name` cannot come from a run of `s`, when it is one of a workload `s` does not
/// run: such an SLO would fail on "no samples" or a 0 that says only that nothing was tried.
fn workload_missing(s: &Scenario, name: &str) -> Option<String> {
    let figure = name.split('.').next().unwrap_or(name);
    let of_files = figure.starts_with("file") || figure.ends_with("_files");
    let group_only = |n: &str| {
        crate::measure::group_records::GroupCounts::NAMES.contains(&n)
            && !crate::report::figures::Counters::NAMES.contains(&n)
    };
    let of_groups =
        figure.starts_with("group") || figure.starts_with("fanout") || group_only(figure);
    // Groups set to rate 0 by --group-rate keep the scenario's own group SLOs, which then
    // fail on "no samples" as documented: a direct-only run of a group scenario stays possible.
    let of_direct = [
        Metric::Direct.name(),
        Metric::DirectUncorrected.name(),
        Metric::DirectDuringFiles.name(),
        Metric::DirectWithoutFiles.name(),
    ]
    .contains(&figure);
    let (what, section) = if of_direct && s.direct.rate <= 0.0 {
        (
            "sends no direct messages",
            "[direct] with a rate above 0 (or --rate)",
        )
    } else if of_files && s.files.rate <= 0.0 {
        ("sends no files", "[files] with a rate above 0")
    } else if of_groups && s.groups.count == 0 {
        ("has no groups", "[groups]")
    } else if crate::report::figures::CHURN_FIGURES.contains(&figure) && !s.churn.enabled() {
        ("has no churn", "[churn] with a fraction and a rate above 0")
    } else {
        return bucket_missing(s, figure);
    };
    Some(format!(
        "scenario {:?} {what}, so {figure:?} would measure nothing: leave the SLO out, or give the scenario {section}",
        s.name
    ))
}

/// Why size-bucket figure `figure` (`fanout_le1000`, `group_gt1000` …) cannot come from a run
/// of `s`: the scenario's plan, drawn from its seed before the run as every run draws it, has
/// no group of that size.
fn bucket_missing(s: &Scenario, figure: &str) -> Option<String> {
    use crate::report::figures::bucket_names;
    use crate::workload::groups::{Bucket, GroupPlan};
    // The bucket, and which of its figures (group, fanout, fanout_spread) is named.
    let (bucket, kind) = Bucket::ALL.into_iter().find_map(|b| {
        let kind = bucket_names(b).iter().position(|n| n == figure)?;
        Some((b, kind))
    })?;
    let has = GroupPlan::new(s).buckets();
    if has.contains(&bucket) {
        return None;
    }
    let those: Vec<String> = has.iter().map(|b| bucket_names(*b)[kind].clone()).collect();
    Some(format!(
        "scenario {:?} has no group of {figure:?}'s size, so it would measure nothing: name the figure of a size it has ({}), or give [groups] members of that size and the clients to fill them",
        s.name,
        those.join(", ")
    ))
}

/// Makes sure the machine has the memory a run of `config` over `transport` needs and the
/// process may open its files (see [`ensure_memory`] and [`ensure_files`]).
pub fn check_files(config: &RunConfig, transport: Transport) -> Result<(), RunError> {
    check_files_on(config, transport, on_a_path(config))
}

/// [`check_files`] before the network path `config` asks for is up (`on_path`): what cannot
/// run is refused before anything is brought up.
pub fn check_files_on(
    config: &RunConfig,
    transport: Transport,
    on_path: bool,
) -> Result<(), RunError> {
    let clients = clients_in(&config.scenario, config.shard);
    let embedded = matches!(config.server, ServerSpec::Embedded);
    ensure_memory(clients, embedded)?;
    let quic_sockets = if transport == Transport::Quic
        && matches!(
            config.server,
            ServerSpec::Embedded | ServerSpec::Remote { .. }
        ) {
        match quic_endpoints(&config.scenario, on_path) {
            0 => QuicSockets::EachClient,
            n => QuicSockets::Shared(n as u64),
        }
    } else {
        QuicSockets::Shared(0)
    };
    ensure_files(transport, clients, embedded, quic_sockets)
}

/// The UDP sockets of QUIC clients: one each, or the endpoints they share.
#[derive(Clone, Copy, Debug, PartialEq)]
enum QuicSockets {
    EachClient,
    Shared(u64),
}

/// Memory a client takes at least on each side: a third of the least measured at 10,000
/// clients (33-54 KiB a client on the generator, 46-53 KiB a session on the server;
/// docs/performance.md), so that only a run that cannot fit is refused.
const LEAST_BYTES_PER_CLIENT: u64 = 16 * 1024;

/// Refuses a run whose clients cannot fit in the memory this machine has: it would grow for
/// minutes of ramp-up and then swap or be killed, with nothing to show for it.
fn ensure_memory(clients: usize, embedded: bool) -> Result<(), RunError> {
    let sides = if embedded { 2 } else { 1 };
    let needed = (clients as u64)
        .saturating_mul(LEAST_BYTES_PER_CLIENT)
        .saturating_mul(sides);
    let Some(available) = crate::measure::memory::available_bytes() else {
        return Ok(());
    };
    if needed <= available {
        return Ok(());
    }
    let gib = |b: u64| format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64);
    let (each, remedies) = if embedded {
        (
            "on each side: the server is embedded",
            "use fewer clients, run the server standalone, or shard the load over several generators (--shard)",
        )
    } else {
        (
            "in the generator",
            "use fewer clients, or shard the load over several generators (--shard)",
        )
    };
    Err(RunError::TooLittleMemory(format!(
        "{clients} clients need at least {} of memory ({} KiB a client {each}), and this machine has {} available; {remedies}",
        gib(needed),
        LEAST_BYTES_PER_CLIENT / 1024,
        gib(available)
    )))
}

/// File descriptors a run needs beyond one per connection: the runtime, the endpoints, the
/// report files, the standard streams.
const SPARE_FILES: u64 = 256;

/// Raises the process's open-file limit to its hard limit when the run needs more than the
/// soft one allows, and refuses the run, saying why, when even the hard limit is too low: a
/// client that cannot open a socket fails to connect, and half a run's clients failing is a
/// run nobody can use.
fn ensure_files(
    transport: Transport,
    clients: usize,
    embedded: bool,
    quic_sockets: QuicSockets,
) -> Result<(), RunError> {
    // QUIC clients share a few UDP endpoints (or have one each) and the server has one
    // socket; the stream transports take descriptors per connection on each side.
    let needed = match (transport, quic_sockets) {
        (Transport::Quic, QuicSockets::EachClient) => clients as u64,
        (Transport::Quic, QuicSockets::Shared(n)) => n,
        _ => {
            clients as u64
                * imbench_transport::stream::FILES_PER_CONNECTION
                * if embedded { 2 } else { 1 }
        }
    } + SPARE_FILES;
    #[cfg(unix)]
    {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
            return Ok(());
        };
        if needed <= soft {
            return Ok(());
        }
        if needed <= hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
            return Ok(());
        }
        match (transport, quic_sockets) {
            (Transport::Quic, QuicSockets::EachClient) => {
                return Err(RunError::TooFewFiles(format!(
                    "{clients} quic clients with a UDP socket each (on a network path with a link per client, or with handovers to move) need about {needed} open files, but this process may open {hard} (ulimit -Hn); raise the limit, or use fewer clients"
                )));
            }
            (Transport::Quic, QuicSockets::Shared(n)) => {
                return Err(RunError::TooFewFiles(format!(
                    "generator.endpoints = {n}: as many UDP sockets need about {needed} open files, but this process may open {hard} (ulimit -Hn); give fewer endpoints (0, the default, gives one per 1,000 clients)"
                )));
            }
            _ => {}
        }
        let per = imbench_transport::stream::FILES_PER_CONNECTION;
        let (both, remedies) = if embedded {
            (
                format!(
                    " ({per} per connection on each side: the server is embedded; a standalone \
                     server needs only half in this process)"
                ),
                "raise the limit, use fewer clients, or run the server standalone",
            )
        } else {
            (
                format!(" ({per} per connection)"),
                "raise the limit, use fewer clients, or shard the load over several generators (--shard)",
            )
        };
        Err(RunError::TooFewFiles(format!(
            "{clients} {transport} clients need about {needed} open files{both}, but this process may open {hard} (ulimit -Hn); {remedies}"
        )))
    }
    #[cfg(not(unix))]
    {
        let _ = needed;
        Ok(())
    }
}

/// The transport whose default connect rate paces `config`'s logins: its own, or for another
/// system's target (whose clients speak over TCP) TLS when the target asks for it, the
/// handshake being what costs.
fn paced_as(config: &RunConfig) -> Transport {
    if config.server.target_tls() {
        Transport::Tls
    } else {
        config.transport
    }
}

/// Stretches the scenario's ramp-up so that no more than the connect rate of connections
/// start per second; returns what it changed, in words.
fn pace_connections(s: &mut Scenario, transport: Transport, shard: Option<Shard>) -> Vec<String> {
    let rate = s.generator.connect_rate_for(transport);
    let here = clients_in(s, shard);
    let needed = Duration::from_secs_f64(here as f64 / rate);
    if needed <= s.ramp_up {
        return Vec::new();
    }
    let whose = if s.generator.connect_rate > 0.0 {
        "generator.connect_rate / --connect-rate"
    } else {
        if transport.uses_tls() {
            "the default for a transport with a TLS handshake; set --connect-rate to change it"
        } else {
            "the default for a transport without TLS; set --connect-rate to change it"
        }
    };
    let per_s = |r: f64| {
        if r < 10.0 {
            format!("{r:.1}")
        } else {
            format!("{r:.0}")
        }
    };
    let asked = if s.ramp_up.is_zero() {
        format!("ramp-up 0s asks for all {here} connections at once")
    } else {
        format!(
            "ramp-up {:.1}s asks for {} connections/s",
            s.ramp_up.as_secs_f64(),
            per_s(here as f64 / s.ramp_up.as_secs_f64())
        )
    };
    let note = format!(
        "{asked}, more than the connect rate of {}/s ({whose}): ramping up over {} instead",
        per_s(rate),
        short_duration(needed)
    );
    s.ramp_up = needed;
    vec![note]
}

/// A login this long after sending began is said, whatever went missing: its client's sends
/// until then were not made, and the run sent fewer messages than its schedule had.
const LATE_LOGIN_WORTH_A_NOTE: Duration = Duration::from_millis(100);

/// How long a stopped run waits for what is in flight, at most.
pub const STOPPED_DRAIN: Duration = Duration::from_secs(3);

/// How long the embedded server's sessions have to end in order once a run is over.
const EMBEDDED_SERVER_STOP: Duration = Duration::from_secs(2);

/// The same once the run was interrupted (Ctrl-C), after [`STOPPED_DRAIN`].
const INTERRUPTED_SERVER_STOP: Duration = Duration::from_millis(200);

/// Resolves to `true` once the interrupt fires; never resolves without one.
async fn wait_interrupt(interrupt: &mut Option<watch::Receiver<bool>>) -> bool {
    match interrupt {
        Some(rx) => {
            let fired = rx.wait_for(|v| *v).await.is_ok();
            if !fired {
                // The sender is gone without firing: never again.
                *interrupt = None;
            }
            fired
        }
        None => std::future::pending().await,
    }
}

/// Stops the run when the watchdog finds the server gone, and cuts the drain short: no wait
/// at all when no client holds a connection (nothing more can arrive). When no client holds
/// one, the schedule ends when the last of them lost its own: the clients sent nothing after
/// it, and the measured period ends there, not when it was noticed.
fn watch_server(ctx: &RunContext, watchdog: &mut Watchdog, drain_deadline: &mut Instant) {
    if ctx.stop_reason().is_some() {
        return;
    }
    let Some(why) = watchdog.check(ctx) else {
        return;
    };
    let process_ended = watchdog.port_closed().is_some();
    let wait = if holding_a_connection(ctx) == 0 && !process_ended {
        match ctx.last_loss_us() {
            Some(at) => ctx.stop_at(why, at),
            None => ctx.stop(why),
        }
        Duration::ZERO
    } else {
        // A server silent for the answer timeout went silent that long ago: the measured
        // period ends there, not when it was noticed (after the schedule's end, perhaps).
        match watchdog.silent_since_us(ctx) {
            Some(at) => ctx.stop_at(why, at),
            None => ctx.stop(why),
        }
        // Nothing more can arrive from a server whose process has ended.
        if process_ended {
            Duration::ZERO
        } else {
            STOPPED_DRAIN
        }
    };
    *drain_deadline = (*drain_deadline).min(Instant::now() + wait);
}

/// What a broker's closing every connection at once may mean on MQTT, where it says nothing.
const MQTT_TAKEN_OVER: &str = "an MQTT broker also closes a client's connection without a word when another connects with its client id: another run against this broker on the same PREFIX (give each run its own) does this to every client; and over MQTT 3.1.1, at a packet over its size limit (mosquitto's max_packet_size): keep the scenario's largest body under it";

/// Notices a server that has gone: every client lost its connection, or messages are being
/// sent and nothing has been answered for a while.
struct Watchdog {
    limit: Duration,
    answered: u64,
    /// File bytes received by the last check: while transfers are under way, news too.
    arrived: u64,
    since: Instant,
    /// The last check (run clock µs) at which the server had nothing to answer, or files
    /// were arriving: news of it other than an answer.
    other_news_us: u64,
    /// Answers counted when the schedule ended: the drain's silence is measured against it,
    /// not against when the last check (once a second) saw the count move.
    answered_at_schedule_end: Option<u64>,
    /// The client side of the held path the clients are on (`--namespace`), if any: a path
    /// whose holder ended carries nothing, which looks like a server that stopped.
    held_path: Option<String>,
    /// A standalone QUIC server's port, watched for a process that ended (QUIC hears no
    /// close from it).
    port: Option<port_watch::PortWatch>,
}

impl Watchdog {
    fn new(limit: Duration) -> Self {
        Self {
            limit,
            answered: 0,
            arrived: 0,
            since: Instant::now(),
            other_news_us: 0,
            answered_at_schedule_end: None,
            held_path: None,
            port: None,
        }
    }

    /// The same, watching the port of the standalone QUIC server at `addr` as well.
    fn watching_port(self, addr: Option<SocketAddr>) -> Self {
        Self {
            port: addr.map(port_watch::PortWatch::start),
            ..self
        }
    }

    /// Why the server is gone, when its QUIC port was found closed.
    fn port_closed(&self) -> Option<String> {
        self.port.as_ref().and_then(port_watch::PortWatch::gone)
    }

    /// The watchdog, for clients on the held path whose client side is `namespace`.
    fn on_held_path(self, namespace: Option<String>) -> Self {
        Self {
            held_path: namespace,
            ..self
        }
    }

    /// Why nothing was answered, as far as this process can tell.
    fn why_silent(&self) -> String {
        match self.held_path.as_deref().and_then(held_path_gone) {
            Some(gone) => gone,
            None => "it stopped or hung".into(),
        }
    }

    /// When the server last answered, or last had nothing to answer (run clock µs): the
    /// last answer itself (to the millisecond), not the check a second that saw the count
    /// move, which may be up to a second into the silence, whose sends would then be in the
    /// period and their latencies the length of the silence.
    fn silence_began_us(&self, ctx: &RunContext) -> u64 {
        let silent_for = u64::try_from(self.since.elapsed().as_micros()).unwrap_or(u64::MAX);
        let checked = ctx.clock.now_us().saturating_sub(silent_for);
        let heard = ctx.last_answer_us().unwrap_or(0).max(self.other_news_us);
        if heard > 0 {
            heard.min(checked)
        } else {
            checked
        }
    }

    /// [`Watchdog::silence_began_us`], when the server has been silent for the watchdog's
    /// limit: what [`Watchdog::check`] reports then is that silence.
    fn silent_since_us(&self, ctx: &RunContext) -> Option<u64> {
        (self.since.elapsed() >= self.limit || self.port_closed().is_some())
            .then(|| self.silence_began_us(ctx))
    }

    /// Notes the answers so far, once, when the schedule ends and the drain begins.
    fn schedule_ended(&mut self, ctx: &RunContext) {
        if self.answered_at_schedule_end.is_none() {
            self.answered_at_schedule_end = Some(sent_and_answered(ctx).1);
        }
    }

    fn check(&mut self, ctx: &RunContext) -> Option<String> {
        let connected = logged_in(ctx);
        // Lost now: a client that came back (churn) after losing a connection is not gone.
        let lost = ctx
            .counters
            .iter()
            .filter(|c| c.connection_lost.load(Relaxed))
            .count();
        if connected > 0 && lost == connected {
            // During the ramp-up, of those logged in so far.
            let here = clients_in(&ctx.scenario, ctx.shard);
            let every = if connected < here {
                format!("every client logged in so far ({connected} of {here})")
            } else {
                format!("every client ({connected})")
            };
            let replaced = ctx
                .counters
                .iter()
                .filter(|c| c.replaced.load(Relaxed))
                .count();
            if replaced == lost {
                // The server closes a session when its user logs in again elsewhere.
                return Some(format!(
                    "{every} was logged out by a newer login of its user id: another generator runs the same clients against this server (the same --shard, or JOB_COMPLETION_INDEX, twice; or a second run at once)"
                ));
            }
            // A server that is still there may have closed them for a reason of its own (a
            // message over its size limit, say): each client's problem says what it was told.
            // Over QUIC without keep-alives a quiet connection times out by design.
            let quiet = match &ctx.driver {
                crate::driver::Driver::Imbench(d)
                    if d.transport == Transport::Quic
                        && ctx.scenario.quic.keep_alive.trim() == "off" =>
                {
                    format!(
                        "; {}",
                        crate::report::build::quiet_quic_times_out(ctx.scenario.quic.idle_timeout)
                    )
                }
                // MQTT 3.1.1 has no word for it: a broker closes a client's connection when
                // another connects with its client id, which is what a second run on the same
                // prefix does to every client at once.
                // Unless the broker said why (an MQTT 5 reason code, in the problems).
                crate::driver::Driver::Mqtt(_)
                    if !ctx.problems().0.iter().any(|p| {
                        p.contains("reason 0x")
                            || p.contains(crate::driver::mqtt::wire::OVER_MAXIMUM)
                    }) =>
                {
                    format!("; {}", MQTT_TAKEN_OVER)
                }
                _ => String::new(),
            };
            return Some(format!(
                "{every} {} (the report's problems say what the clients were told){quiet}",
                crate::report::capacity::EVERY_CONNECTION_LOST
            ));
        }
        let here = clients_in(&ctx.scenario, ctx.shard);
        let failed = failed_logins(ctx);
        if here > 0 && failed == here {
            // Nothing can be measured: waiting out the schedule would only delay the verdict.
            return Some(format!(
                "no client could connect ({failed} of {here} failed): the report's problems say why"
            ));
        }
        let (sent, answered) = sent_and_answered(ctx);
        // File transfers under way wait on the server too (a drain of large files, say), and
        // their bytes arriving are news of it.
        let transfers = ctx.files.unfinished();
        // A closed port is the server's end, whatever waits: nothing more can be answered.
        if let Some(gone) = self.port_closed() {
            if answered >= sent && transfers == 0 {
                self.other_news_us = ctx.clock.now_us();
            }
            return Some(gone);
        }
        let arrived = ctx.files.bytes_arrived.load(Relaxed);
        let file_news = arrived > self.arrived;
        self.arrived = arrived;
        // Only an answer is news of the server: a count that fell (a client without a
        // connection leaves its messages out) keeps the silence running.
        if answered > self.answered || file_news || (answered >= sent && transfers == 0) {
            if file_news || (answered >= sent && transfers == 0) {
                self.other_news_us = ctx.clock.now_us();
            }
            self.answered = answered;
            self.since = Instant::now();
            return None;
        }
        self.answered = answered;
        (self.since.elapsed() >= self.limit).then(|| {
            let waiting = match (sent.saturating_sub(answered), transfers) {
                (n, 0) => messages(n),
                (0, t) => file_transfers(t),
                (n, t) => format!("{} and {}", messages(n), file_transfers(t)),
            };
            format!(
                "the server answered nothing for {:?} while {waiting} waited: {}",
                self.limit,
                self.why_silent()
            )
        })
    }

    /// At the end of a drain that did not empty: whether the server answered nothing during
    /// the whole of it (`drain`, when shorter than the watchdog's limit) while messages waited.
    fn silent_through_drain(&mut self, ctx: &RunContext, drain: Duration) -> Option<String> {
        let (sent, answered) = sent_and_answered(ctx);
        // A server that stopped a moment before the schedule's end was silent through the
        // whole drain, though the check a second before the end still saw it answer.
        let silent = self.check(ctx).is_some()
            || self.since.elapsed() >= drain
            || self.answered_at_schedule_end == Some(answered);
        // How long it has been silent, to the check a second: a server that stopped well
        // before the schedule's end (not long enough for the watchdog's limit) is said to.
        let silent_for = self.since.elapsed();
        (silent && sent > answered && !drain.is_zero()).then(|| {
            let since = if silent_for > drain + Duration::from_secs(1) {
                format!(
                    " and for about {:.0} s in all, from before the schedule's end",
                    silent_for.as_secs_f64()
                )
            } else {
                String::new()
            };
            format!(
                "the server answered nothing through the whole drain ({drain:.1?}){since} while {} waited: {}",
                messages(sent - answered),
                self.why_silent()
            )
        })
    }
}

/// Clients that have logged in so far (some may have lost their connection since).
fn logged_in(ctx: &RunContext) -> usize {
    ctx.counters
        .iter()
        .filter(|c| c.connected.load(Relaxed))
        .count()
}

/// Clients whose login failed so far.
fn failed_logins(ctx: &RunContext) -> usize {
    ctx.counters
        .iter()
        .filter(|c| c.connect_failed.load(Relaxed))
        .count()
}

/// Clients that hold a connection now: logged in, and not lost since.
fn holding_a_connection(ctx: &RunContext) -> usize {
    ctx.counters
        .iter()
        .filter(|c| c.connected.load(Relaxed) && !c.connection_lost.load(Relaxed))
        .count()
}

/// `n` messages, in words.
fn messages(n: u64) -> String {
    format!("{n} message{}", if n == 1 { "" } else { "s" })
}

/// `n` file transfers, in words.
fn file_transfers(n: u64) -> String {
    format!("{n} file transfer{}", if n == 1 { "" } else { "s" })
}

/// Messages sent so far, direct and group, and how many of them the server has answered
/// (acked or rejected).
fn sent_and_answered(ctx: &RunContext) -> (u64, u64) {
    // What a client wrote on a connection it has since lost can never be answered: waiting for
    // it says nothing of whether the server still answers the others.
    let live = |c: &crate::measure::counters::ClientCounters, n: u64| {
        if c.connection_lost.load(Relaxed) {
            0
        } else {
            n
        }
    };
    let sent = ctx.sum(|c| live(c, c.sent.load(Relaxed) + c.group_sent.load(Relaxed)));
    let answered = ctx.sum(|c| live(c, c.answered() + c.group_answered()));
    (sent, answered)
}

/// Every client has stopped sending, every sent message is answered (acked or rejected),
/// every accepted direct message delivered, and every file transfer ended.
fn drained(ctx: &RunContext) -> bool {
    if ctx.shard.is_some() {
        // Other shards' messages to this shard's clients may still be on their way, and this
        // shard's to theirs are counted there: a shard always waits out the drain.
        return false;
    }
    if !ctx.counters.iter().all(|c| c.done_sending.load(Relaxed)) {
        return false;
    }
    let sent = ctx.sum(|c| c.sent.load(Relaxed));
    let rejected = ctx.sum(|c| c.rejected.load(Relaxed));
    let delivered = ctx.sum(|c| c.delivered.load(Relaxed));
    let group_sent = ctx.sum(|c| c.group_sent.load(Relaxed));
    // Counting those a dropped connection took unanswered (at most once): they will have none.
    let answered = ctx.sum(crate::measure::counters::ClientCounters::answered);
    let group_answered = ctx.sum(crate::measure::counters::ClientCounters::group_answered);
    answered >= sent
        && delivered + rejected >= sent
        && group_answered >= group_sent
        && ctx.files.unfinished() == 0
}

/// How many deliveries a group message owes is settled only after the run (it depends on
/// membership at the moment the server routed it), so the drain waits for group deliveries to
/// stop arriving: none for [`GROUP_QUIET`].
#[derive(Default)]
struct GroupQuiet {
    seen: u64,
    since: Option<Instant>,
}

const GROUP_QUIET: Duration = Duration::from_millis(300);

impl GroupQuiet {
    fn check(&mut self, ctx: &RunContext) -> bool {
        if ctx.plan.groups.is_empty() {
            return true;
        }
        let now = ctx.ledger.deliveries.load(Relaxed);
        if now != self.seen || self.since.is_none() {
            self.seen = now;
            self.since = Some(Instant::now());
            return false;
        }
        self.since.is_some_and(|t| t.elapsed() >= GROUP_QUIET)
    }
}

/// Closes the interval that just ended: its row and histograms are kept, and the row is
/// returned with the clients' counters summed (once a tick, for every view of it).
fn interval_point(
    ctx: &RunContext,
    points: &mut Vec<IntervalPoint>,
    log: &mut Vec<report::IntervalHistograms>,
) -> (IntervalPoint, ClientTotals) {
    let interval = ctx.recorder.collect();
    let end_s = ctx.clock.now_us() as f64 / 1e6;
    let start_s = log.last().map_or(0.0, |l| l.end_s);
    let measured: Vec<(String, hdrhistogram::Histogram<u64>)> = Metric::ALL
        .iter()
        .filter(|m| !interval.measured[**m as usize].is_empty())
        .map(|m| (m.name().to_string(), interval.measured[*m as usize].clone()))
        .collect();
    log.push(report::IntervalHistograms {
        start_s,
        end_s,
        histograms: measured,
    });
    let d = interval.get(Metric::Direct);
    let totals = ClientTotals::of(&ctx.counters);
    let point = IntervalPoint {
        t_s: ctx.clock.now_us() as f64 / 1e6,
        // Not those away on a planned disconnect, nor those whose connection is lost now
        // (a server gone left the count at every client).
        connected: ctx
            .counters
            .iter()
            .filter(|c| {
                c.connected.load(Relaxed)
                    && !c.away.load(Relaxed)
                    && !c.connection_lost.load(Relaxed)
            })
            .count() as u64,
        errors: totals.errors,
        refused: totals.rejected + totals.group_rejected,
        dropped: totals.disconnected,
        sent: ctx.sum(|c| c.sent.load(Relaxed) + c.group_sent.load(Relaxed)),
        delivered: deliveries_so_far(ctx),
        group_count: interval.get(Metric::Group).len(),
        group_p99_us: interval.get(Metric::Group).value_at_quantile(0.99),
        direct_count: d.len(),
        direct_p50_us: d.value_at_quantile(0.5),
        direct_p99_us: d.value_at_quantile(0.99),
        direct_max_us: d.max(),
        lag_p99_us: interval.get(Metric::ScheduleLag).value_at_quantile(0.99),
        lag_count: interval.get(Metric::ScheduleLag).len(),
    };
    points.push(point.clone());
    (point, totals)
}

impl RunError {
    /// The exit code for this error: 2 when the command line or scenario asked for something
    /// that cannot run here, 3 when the run itself failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Scenario(_)
            | RunError::Slo { .. }
            | RunError::NoAddress(_)
            | RunError::NoTransport
            | RunError::Unsupported(_)
            | RunError::Refused { .. }
            | RunError::Misconfigured { .. }
            | RunError::Shard(_)
            | RunError::TooFewFiles(_)
            | RunError::TooLittleMemory(_) => crate::exit_code::USAGE,
            RunError::Several(all) => all
                .iter()
                .map(RunError::exit_code)
                .max()
                .unwrap_or(crate::exit_code::INVALID),
            _ => crate::exit_code::INVALID,
        }
    }
}

/// Deliveries received so far: direct messages, and each member's copy of a group message.
fn deliveries_so_far(ctx: &RunContext) -> u64 {
    ctx.sum(|c| c.delivered.load(Relaxed)) + ctx.ledger.deliveries.load(Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_that_cannot_be_written_is_shown_invalid() {
        let report =
            crate::report::read::from_json(include_str!("../report/testdata/schema-1-a.json"))
                .expect("the test report reads");
        assert!(report.ok, "the test report passed");
        // A file where the report's folder would go.
        let file = std::env::temp_dir().join(format!("imbench-unwritable-{}", std::process::id()));
        std::fs::write(&file, "in the way").expect("a file");
        let failed = RunOutcome::written(report, Some(&file));
        let _ = std::fs::remove_file(&file);
        let Err(RunError::Write {
            report: Some(shown),
            ..
        }) = failed
        else {
            panic!("written into a file");
        };
        assert_eq!(shown.verdict, crate::report::Verdict::Invalid);
        assert!(!shown.ok);
        assert!(
            shown
                .verdict_line()
                .contains("the report could not be written to"),
            "{}",
            shown.verdict_line()
        );
    }

    /// A run's shared state over the in-memory hub, with `groups` groups of 5 members.
    fn context(groups: usize) -> (RunContext, crate::measure::timer::TimerThread) {
        let mut s = Scenario::builtin_default();
        s.clients = 10;
        s.groups.count = groups;
        s.groups.members = crate::config::scenario::GroupSize::Fixed { size: 5 };
        let (timer, thread) = crate::measure::timer::Timer::tokio();
        let driver = Driver::Memory(Hub::new());
        (
            RunContext::new(s, driver, timer, None, "memory", Vec::new()),
            thread,
        )
    }

    #[test]
    fn a_run_stopped_in_its_ramp_up_is_in_its_drain_after() {
        let (ctx, _timer) = context(0);
        assert_eq!(progress::phase(&ctx), "ramp-up");
        ctx.stop("interrupted".into());
        assert_eq!(progress::phase(&ctx), "drain");
    }

    #[test]
    fn every_committed_scenario_names_only_real_figures_in_its_slos() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let s = Scenario::from_toml(&text, &path.display().to_string()).unwrap();
            checked += s.slo.len();
            check_slo_names(&s).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        assert!(checked > 10, "{checked} SLOs");
        let mut typo = Scenario::builtin_default();
        typo.slo.push("dierct.p99 < 1ms".into());
        assert!(check_slo_names(&typo).is_err());
        // A name used the wrong way is told what it is and how it is written; a count compared
        // so that no run can decide it is refused (a rate is not a count).
        for (expr, says) in [
            ("lost.p99<1", "it takes no statistic, as in lost < 1"),
            ("lost.p99 < 1ms", "it takes no statistic, as in lost < 0"),
            (
                "direct < 200",
                "give it a statistic, as in direct.p99 < 200ms",
            ),
            ("direct<1s", "give it a statistic, as in direct.p99 < 1s"),
            ("lost<1ms", "compare it with a plain number, as in lost < 1"),
            ("direct.p99 < 200", "needs a unit: 200ms, 200us or 200s"),
            ("lost == 0.5", "can never hold"),
            ("lost < 0", "can never hold"),
            ("lost >= 0", "always holds"),
            (
                "direct.p99 < 0",
                "a latency, never below 0, so this can never hold",
            ),
            ("ack.max >= 0us", "always holds"),
            ("direct.count == 0.5", "direct.count is a count"),
            ("delivered_per_s < 0", "a rate, never below 0"),
            ("incomplete != 1.5", "always holds"),
            ("incomplete == 0", "has no groups"),
            (
                "files_verified > 0",
                "sends no files, so \"files_verified\"",
            ),
            ("direct_during_files.p99 < 1s", "sends no files"),
            ("fanout.p99 < 1s", "has no groups"),
            ("group_le10.p50 < 1s", "has no groups"),
            ("group_gt1000.p50 < 1s", "has no groups"),
            ("reconnects > 0", "has no churn"),
            ("reconnect.p99 < 1s", "has no churn"),
        ] {
            let mut s = Scenario::builtin_default();
            s.slo.push(expr.into());
            let e = check_slo_names(&s).unwrap_err().to_string();
            assert!(e.contains(says), "{expr}: {e}");
        }
        // A scenario of groups only: no direct figure.
        let mut groups_only = Scenario::builtin_default();
        groups_only.direct.rate = 0.0;
        groups_only.groups.count = 2;
        groups_only.slo.push("direct.p99 < 1s".into());
        let e = check_slo_names(&groups_only).unwrap_err().to_string();
        assert!(e.contains("sends no direct messages"), "{e}");
        for fine in [
            "lost == 0",
            "lost <= 0",
            "sent > 0",
            "delivered_per_s == 0.5",
            "direct.p99 < 1us",
            "direct.max > 0us",
        ] {
            let mut s = Scenario::builtin_default();
            s.slo.push(fine.into());
            check_slo_names(&s).unwrap_or_else(|e| panic!("{fine}: {e}"));
        }
    }

    #[test]
    fn a_problem_after_a_flood_of_another_kind_is_still_named() {
        let (ctx, _timer) = context(0);
        for i in 0..40 {
            ctx.note_problem(format!("client {i}: server said Bye: server shutting down"));
        }
        ctx.note_problem("client 7: protocol error: unexpected frame".into());
        ctx.note_problem("client 8: protocol error: unexpected frame".into());
        let (kept, total) = ctx.problems();
        assert_eq!(total, 42);
        assert_eq!(kept.len(), 11, "{kept:?}");
        assert_eq!(kept[10], "client 7: protocol error: unexpected frame");
    }

    #[test]
    fn an_slo_on_a_group_size_the_plan_never_draws_is_refused_before_the_run() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/groups.toml");
        let groups = Scenario::from_file(&path).unwrap();
        let with = |clients: usize, expr: &str| {
            let mut s = groups.clone();
            s.clients = clients;
            s.slo.push(expr.into());
            check_slo_names(&s)
        };
        // Groups of 3 to 500 members: none above 1,000.
        let e = with(1000, "fanout_gt1000.p99 < 1s")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no group of \"fanout_gt1000\"'s size"), "{e}");
        assert!(
            e.contains("fanout_le10, fanout_le100, fanout_le1000"),
            "{e}"
        );
        let e = with(1000, "fanout_spread_gt1000.p99 < 1s")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("(fanout_spread_le10, fanout_spread_le100"),
            "{e}"
        );
        with(1000, "fanout_le1000.p99 < 1s").unwrap();
        with(1000, "group_le10.p99 < 1s").unwrap();
        // Members are capped by the clients: at 50, no group is above 100.
        let e = with(50, "group_le1000.p99 < 1s").unwrap_err().to_string();
        assert!(e.contains("(group_le10, group_le100)"), "{e}");
    }

    #[test]
    fn an_slo_on_what_only_imbenchs_own_clients_count_is_refused_on_another_system() {
        let mut s = Scenario::builtin_default();
        s.slo = vec!["lost == 0".into(), "resumed > 0".into()];
        let other = Driver::Memory(Hub::new());
        let e = check_driver_gives(&other, &s).expect_err("resumed is not another system's");
        assert!(e.to_string().contains("gives no resumed"), "{e}");
        assert_eq!(e.exit_code(), crate::exit_code::USAGE);
        s.slo.pop();
        check_driver_gives(&other, &s).expect("lost is every system's");
    }

    #[tokio::test]
    async fn an_interrupt_while_clients_start_stops_starting_them() {
        let mut s = Scenario::builtin_default();
        s.clients = 5000;
        let (timer, _thread) = crate::measure::timer::Timer::tokio();
        let ctx = Arc::new(RunContext::new(
            s,
            Driver::Memory(Hub::new()),
            timer,
            None,
            "memory",
            Vec::new(),
        ));
        // Interrupted at the third look: two batches started, the rest never.
        let looks = std::sync::atomic::AtomicUsize::new(0);
        let mut clients = start_clients(&ctx, None, || looks.fetch_add(1, Relaxed) >= 2);
        assert_eq!(clients.len(), 2 * START_CHECK_EVERY);
        let done = |i: usize| ctx.counters[i].done_sending.load(Relaxed);
        assert!((2 * START_CHECK_EVERY..5000).all(done));
        clients.abort_all();
        // Not interrupted: every client of the shard starts.
        let shard = Some("2/3".parse().expect("a shard"));
        let mut all = start_clients(&ctx, shard, || false);
        assert_eq!(all.len(), (0..5000).filter(|i| i % 3 == 1).count());
        all.abort_all();
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_fires_after_its_limit_without_an_answer_and_not_before() {
        let (ctx, _timer) = context(0);
        let limit = Duration::from_secs(5);
        let mut watchdog = Watchdog::new(limit);
        ctx.counters[0].connected.store(true, Relaxed);
        ctx.counters[0].sent.store(3, Relaxed);
        assert_eq!(watchdog.check(&ctx), None);
        tokio::time::advance(limit - Duration::from_millis(1)).await;
        assert_eq!(watchdog.check(&ctx), None);
        // An answer restarts the wait.
        ctx.counters[0].acked.store(1, Relaxed);
        assert_eq!(watchdog.check(&ctx), None);
        tokio::time::advance(limit - Duration::from_millis(1)).await;
        assert_eq!(watchdog.check(&ctx), None);
        tokio::time::advance(Duration::from_millis(2)).await;
        let why = watchdog
            .check(&ctx)
            .expect("the server is silent past the limit");
        assert!(
            why.contains("answered nothing for 5s while 2 messages waited"),
            "{why}"
        );
        // Everything answered: nothing waits, whatever the time.
        ctx.counters[0].rejected.store(2, Relaxed);
        tokio::time::advance(limit * 2).await;
        assert_eq!(watchdog.check(&ctx), None);
    }

    #[test]
    fn a_loopback_target_is_told_from_another() {
        for target in [
            "nats 127.0.0.1:4222",
            "mqtt [::1]:1883",
            "xmpp localhost:5222",
        ] {
            assert!(names_loopback(target), "{target}");
        }
        assert!(!names_loopback("nats 192.0.2.1:4222"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silence_on_a_held_path_whose_holder_ended_names_the_path() {
        let (ctx, _timer) = context(0);
        let limit = Duration::from_secs(5);
        ctx.counters[0].connected.store(true, Relaxed);
        ctx.counters[0].sent.store(3, Relaxed);
        // A held path's name with the PID of no process: its holder has ended.
        let mut gone = Watchdog::new(limit).on_held_path(Some("imbench-0-1-client".into()));
        let mut plain = Watchdog::new(limit);
        assert_eq!(gone.check(&ctx), None);
        assert_eq!(plain.check(&ctx), None);
        tokio::time::advance(limit * 2).await;
        let why = gone.check(&ctx).expect("silent past the limit");
        assert!(
            why.contains("the path the clients are on is gone")
                && why.contains("imbench-0-1-client")
                && !why.contains("stopped or hung"),
            "{why}"
        );
        let why = plain.check(&ctx).expect("silent past the limit");
        assert!(why.ends_with("it stopped or hung"), "{why}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_silent_from_just_before_the_schedules_end_is_silent_through_the_drain() {
        let (ctx, _timer) = context(0);
        let drain = Duration::from_secs(3);
        let mut watchdog = Watchdog::new(Duration::from_secs(10));
        ctx.counters[0].connected.store(true, Relaxed);
        ctx.counters[0].sent.store(10, Relaxed);
        ctx.counters[0].acked.store(8, Relaxed);
        // The last check before the end saw answers move; the server stops after it.
        assert_eq!(watchdog.check(&ctx), None);
        tokio::time::advance(Duration::from_millis(700)).await;
        ctx.counters[0].acked.store(9, Relaxed);
        watchdog.schedule_ended(&ctx);
        tokio::time::advance(Duration::from_millis(300)).await;
        assert_eq!(watchdog.check(&ctx), None);
        tokio::time::advance(drain - Duration::from_millis(300)).await;
        let why = watchdog
            .silent_through_drain(&ctx, drain)
            .expect("nothing answered since the schedule ended");
        assert!(
            why.contains("through the whole drain (3.0s) while 1 message waited"),
            "{why}"
        );
        // Silent since long before the schedule's end: said so.
        let mut long = Watchdog::new(Duration::from_secs(10));
        assert_eq!(long.check(&ctx), None);
        tokio::time::advance(Duration::from_secs(7)).await;
        long.schedule_ended(&ctx);
        tokio::time::advance(drain).await;
        let why = long
            .silent_through_drain(&ctx, drain)
            .expect("nothing answered for 10 s");
        assert!(
            why.contains("(3.0s) and for about 10 s in all, from before the schedule's end"),
            "{why}"
        );
        // An answer during the drain is a server that is slow, not one that stopped.
        let mut answering = Watchdog::new(Duration::from_secs(10));
        ctx.counters[0].sent.store(11, Relaxed);
        answering.schedule_ended(&ctx);
        tokio::time::advance(drain).await;
        ctx.counters[0].acked.store(10, Relaxed);
        assert_eq!(answering.silent_through_drain(&ctx, drain), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_sees_every_client_gone_at_once() {
        let (ctx, _timer) = context(0);
        let mut watchdog = Watchdog::new(Duration::from_secs(60));
        for c in &ctx.counters[..2] {
            c.connected.store(true, Relaxed);
        }
        ctx.counters[0].connection_lost.store(true, Relaxed);
        assert_eq!(watchdog.check(&ctx), None);
        ctx.counters[1].connection_lost.store(true, Relaxed);
        let why = watchdog
            .check(&ctx)
            .expect("both connected clients are gone");
        // Of those logged in: the others had not yet.
        assert!(
            why.contains("every client logged in so far (2 of ")
                && why.contains(") lost its connection"),
            "{why}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_ends_a_run_in_which_no_client_could_connect() {
        let (ctx, _timer) = context(0);
        let mut watchdog = Watchdog::new(Duration::from_secs(60));
        let (last, others) = ctx.counters.split_last().expect("clients");
        for c in others {
            c.connect_failed.store(true, Relaxed);
        }
        assert_eq!(watchdog.check(&ctx), None, "one client may still connect");
        last.connect_failed.store(true, Relaxed);
        let why = watchdog.check(&ctx).expect("nobody could connect");
        assert!(why.contains("no client could connect"), "{why}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_silent_through_the_whole_drain_is_a_stopped_server() {
        let (ctx, _timer) = context(0);
        let drain = Duration::from_secs(3);
        let mut watchdog = Watchdog::new(Duration::from_secs(10));
        ctx.counters[0].connected.store(true, Relaxed);
        ctx.counters[0].sent.store(5, Relaxed);
        ctx.counters[0].acked.store(2, Relaxed);
        assert_eq!(watchdog.check(&ctx), None);
        tokio::time::advance(drain - Duration::from_millis(1)).await;
        assert_eq!(watchdog.silent_through_drain(&ctx, drain), None);
        tokio::time::advance(Duration::from_millis(2)).await;
        let why = watchdog
            .silent_through_drain(&ctx, drain)
            .expect("nothing answered during the drain");
        assert!(why.contains("through the whole drain"), "{why}");
        // Everything answered by then: late, perhaps, but not a stopped server.
        ctx.counters[0].acked.store(5, Relaxed);
        tokio::time::advance(drain * 2).await;
        assert_eq!(watchdog.silent_through_drain(&ctx, drain), None);
    }

    #[tokio::test(start_paused = true)]
    async fn group_deliveries_count_as_quiet_only_after_a_quiet_spell() {
        let (ctx, _timer) = context(2);
        let mut quiet = GroupQuiet::default();
        assert!(!quiet.check(&ctx), "the first look starts the spell");
        tokio::time::advance(GROUP_QUIET - Duration::from_millis(1)).await;
        assert!(!quiet.check(&ctx));
        ctx.ledger.deliveries.fetch_add(1, Relaxed);
        tokio::time::advance(Duration::from_millis(2)).await;
        assert!(!quiet.check(&ctx), "a delivery restarts the spell");
        tokio::time::advance(GROUP_QUIET).await;
        assert!(quiet.check(&ctx));
        let (no_groups, _timer) = context(0);
        assert!(GroupQuiet::default().check(&no_groups));
    }

    #[tokio::test]
    async fn a_run_is_drained_once_everything_sent_is_answered_and_delivered() {
        let (ctx, _timer) = context(0);
        for c in &ctx.counters {
            c.done_sending.store(true, Relaxed);
        }
        let c = &ctx.counters[3];
        c.sent.store(4, Relaxed);
        c.acked.store(3, Relaxed);
        c.rejected.store(1, Relaxed);
        c.delivered.store(2, Relaxed);
        assert!(!drained(&ctx), "one accepted message is still on its way");
        c.delivered.store(3, Relaxed);
        assert!(drained(&ctx));
        ctx.counters[5].done_sending.store(false, Relaxed);
        assert!(!drained(&ctx), "a client still sends");
    }

    #[test]
    fn quic_needs_no_file_per_client_and_the_stream_transports_say_what_they_need() {
        let shared = QuicSockets::Shared(16);
        assert!(ensure_files(Transport::Quic, 100_000_000, true, shared).is_ok());
        let Err(RunError::TooFewFiles(why)) =
            ensure_files(Transport::Quic, 10, true, QuicSockets::Shared(100_000_000))
        else {
            panic!("a hundred million endpoints cannot fit any process's limit");
        };
        assert!(why.contains("generator.endpoints = 100000000"), "{why}");
        let Err(RunError::TooFewFiles(why)) =
            ensure_files(Transport::Quic, 100_000_000, true, QuicSockets::EachClient)
        else {
            panic!("a hundred million UDP sockets cannot fit any process's limit");
        };
        assert!(why.contains("need about 100000256 open files"), "{why}");
        assert!(why.contains("a UDP socket each"), "{why}");
        let Err(RunError::TooFewFiles(why)) =
            ensure_files(Transport::Tcp, 100_000_000, true, shared)
        else {
            panic!("a hundred million TCP clients cannot fit any process's limit");
        };
        assert!(why.contains("need about 200000256 open files"), "{why}");
        assert!(why.contains("ulimit -Hn"), "{why}");
    }

    #[test]
    fn quic_clients_have_a_socket_each_on_a_path_with_a_link_each_and_with_handovers() {
        let mut s = Scenario::builtin_default();
        s.clients = 10_000;
        assert_eq!(quic_endpoints(&s, false), 10);
        s.network = Some(crate::config::network::NetworkSection::named("4g"));
        assert_eq!(quic_endpoints(&s, true), 0, "a link per client");
        assert_eq!(quic_endpoints(&s, false), 10, "the section, but no path up");
        s.network.as_mut().unwrap().shared = true;
        assert_eq!(quic_endpoints(&s, true), 10, "one link all share");
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/mobile.toml");
        let mobile = Scenario::from_file(&path).unwrap();
        assert!(mobile.churn.handover > 0.0);
        assert_eq!(quic_endpoints(&mobile, false), 0, "handovers move sockets");
    }

    /// Another system's target is paced as TLS when it asks for TLS, as plain TCP otherwise.
    #[test]
    fn a_target_with_tls_is_paced_as_a_tls_handshake() {
        let config = |server: ServerSpec| {
            RunConfig::new(Scenario::builtin_default(), server, Transport::Tcp)
        };
        let mqtt = |url: &str| {
            ServerSpec::Mqtt(crate::driver::mqtt::MqttTarget::parse(url).expect("a target"))
        };
        assert_eq!(
            paced_as(&config(mqtt("mqtts://127.0.0.1:8883"))),
            Transport::Tls
        );
        assert_eq!(
            paced_as(&config(mqtt("mqtt://127.0.0.1:1883"))),
            Transport::Tcp
        );
        let mut s = Scenario::builtin_default();
        s.ramp_up = Duration::ZERO;
        let notes = pace_connections(&mut s, Transport::Tls, None);
        assert!(notes[0].contains("with a TLS handshake"), "{notes:?}");
    }

    #[test]
    fn a_ramp_up_is_stretched_only_past_the_connect_rate() {
        let mut s = Scenario::builtin_default();
        s.clients = 10_000;
        s.ramp_up = Duration::from_secs(3);
        let notes = pace_connections(&mut s, Transport::Quic, None);
        assert_eq!(
            s.ramp_up,
            Duration::from_secs(10),
            "1,000 a second with TLS"
        );
        assert!(
            notes[0].contains("ramp-up 3.0s asks for 3333 connections/s"),
            "{notes:?}"
        );
        // Plain TCP connects faster by default: 5,000 a second is 2 s, shorter than asked.
        let mut t = Scenario::builtin_default();
        t.clients = 10_000;
        t.ramp_up = Duration::from_secs(3);
        assert!(pace_connections(&mut t, Transport::Tcp, None).is_empty());
        assert_eq!(t.ramp_up, Duration::from_secs(3));
        // A shard paces its own share of the clients; a rate set by hand wins.
        let mut u = Scenario::builtin_default();
        u.clients = 10_000;
        u.ramp_up = Duration::from_secs(1);
        u.generator.connect_rate = 2_500.0;
        let shard = Some(Shard { index: 1, count: 2 });
        let notes = pace_connections(&mut u, Transport::Quic, shard);
        assert_eq!(u.ramp_up, Duration::from_secs(2));
        assert!(notes[0].contains("--connect-rate"), "{notes:?}");
    }
}
