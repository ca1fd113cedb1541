//! `imbench-server`: the reference IM server as a standalone process.
//!
//! Prints the addresses it bound and the exact `imbench run --server …` line a client needs, and
//! writes the certificate and token secret that line points to.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use imbench_server::cert_facts::CertFacts;
use imbench_server::{process, Limits, Secret, ServerConfig};
use imbench_transport::tls::DEFAULT_CERT_NAMES;
use imbench_transport::{QuicOptions, ServerIdentity, Transport};

/// The imbench reference IM server: QUIC, TCP, TLS and WebSocket. Without any listen flag it
/// listens for QUIC on 127.0.0.1:4433.
#[derive(Parser, Debug)]
// A negative number is a value to refuse with its flag's name, not a flag of its own.
#[command(version, about, allow_negative_numbers = true)]
struct Args {
    /// Address to listen on for QUIC, IP:PORT or HOST:PORT (repeatable). Without any listen
    /// flag (--quic, --tcp, --tls, --ws, --wss): QUIC on 127.0.0.1:4433.
    #[arg(long, value_parser = imbench_server::listen_addr::parse)]
    quic: Vec<SocketAddr>,
    /// Address to listen on for plain TCP (repeatable).
    #[arg(long, value_parser = imbench_server::listen_addr::parse)]
    tcp: Vec<SocketAddr>,
    /// Address to listen on for TLS 1.3 over TCP (repeatable).
    #[arg(long, value_parser = imbench_server::listen_addr::parse)]
    tls: Vec<SocketAddr>,
    /// Address to listen on for WebSocket over TCP (repeatable).
    #[arg(long, value_parser = imbench_server::listen_addr::parse)]
    ws: Vec<SocketAddr>,
    /// Address to listen on for WebSocket over TLS 1.3 (repeatable).
    #[arg(long, value_parser = imbench_server::listen_addr::parse)]
    wss: Vec<SocketAddr>,
    /// PEM certificate chain to present (with --key). Without it a self-signed certificate is
    /// made at start.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key for --cert.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Names the self-signed certificate is valid for (repeat for several); clients must dial
    /// one of them. Defaults to localhost, 127.0.0.1, ::1 and the addresses it listens on (for
    /// 0.0.0.0 or ::, every address of the machine's interfaces). Not with --cert, whose
    /// certificate has names of its own.
    #[arg(long = "cert-name", conflicts_with = "cert", value_parser = cert_name)]
    cert_names: Vec<String>,
    /// File holding the token secret (64 hex digits). Without it a fresh secret is made.
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// Folder where the certificate and secret for clients are written.
    #[arg(long, default_value = "imbench-server-files")]
    client_dir: PathBuf,
    /// Folder where offline holds are kept on disk, so that held messages survive a crash or a
    /// restart; an Ack for a held message is then sent once it is on disk. One server per
    /// folder. Without it holds are kept in memory only.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to serve the server's counters on for Prometheus (`GET /metrics`, plain HTTP),
    /// e.g. 127.0.0.1:9464, or a bare port for that port on 127.0.0.1. Off without it.
    #[arg(long, value_parser = imbench_server::scrape::parse_listen_addr)]
    metrics_addr: Option<SocketAddr>,
    /// Connections served at once; more are refused.
    #[arg(long, default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Connections served at once from one IP address (0: no limit); more are answered
    /// `too_many_connections` and closed.
    #[arg(long, default_value_t = Limits::default().max_connections_per_address)]
    max_connections_per_address: usize,
    /// Time a connection has to say Hello.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, allow_hyphen_values = true)]
    hello_timeout: Duration,
    /// Frames queued per session before it counts as a slow consumer and is disconnected.
    #[arg(long, default_value_t = Limits::default().queue_capacity)]
    queue_capacity: usize,
    /// Bytes of deliveries all session queues together may hold (e.g. 256MiB); past it new
    /// messages are refused with `busy`.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    max_queued_bytes: u64,
    /// Bytes of deliveries one session may have waiting to be written before it counts as a
    /// slow consumer and is disconnected (e.g. 16MiB).
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    session_queue_bytes: u64,
    /// A client that accepts no byte for this long, while the server has something to write
    /// to it, is disconnected as a slow consumer; what it was not sent is held for it.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, allow_hyphen_values = true)]
    write_timeout: Duration,
    /// Deliveries a client that asked for receipts may leave unconfirmed before the server
    /// waits for its next receipt (0 counts as 1).
    #[arg(long, default_value_t = Limits::default().receipt_window)]
    receipt_window: usize,
    /// Largest message body accepted (e.g. 64KiB).
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    max_body: u64,
    /// Messages held per offline user.
    #[arg(long, default_value_t = Limits::default().hold_per_user)]
    hold_per_user: usize,
    /// Bytes held for all offline users together (e.g. 512MiB).
    #[arg(long, default_value = "512MiB", value_parser = parse_size)]
    hold_bytes: u64,
    /// Most members of one group
    #[arg(long, default_value_t = 10_000)]
    max_group_members: usize,
    /// Most groups one user may be in
    #[arg(long, default_value_t = 1_000)]
    groups_per_user: usize,
    /// Joins and Leaves per second one session may make, after a burst of --groups-per-user
    #[arg(long, default_value_t = 100)]
    group_changes_per_sec: u32,
    /// Largest file accepted (e.g. 4GiB)
    #[arg(long, default_value = "4GiB", value_parser = parse_size)]
    max_file_size: u64,
    /// File transfers one user may be sending at once
    #[arg(long, default_value_t = Limits::default().transfers_per_user)]
    transfers_per_user: usize,
    /// A transfer in which no byte moves for this long is ended
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, allow_hyphen_values = true)]
    file_idle_timeout: Duration,
    /// QUIC ACK frequency asked of clients: ack-eliciting packets a client may receive without
    /// acknowledging (0 to 1000; 8 means an ACK after 9, 0 an ACK for every packet; within
    /// 25 ms in any case), or `off` for RFC 9000's every second packet. Fewer ACKs to handle
    /// when fanning out
    #[arg(long, default_value_t = AckFrequencyArg(Some(imbench_transport::quic::DEFAULT_ACK_FREQUENCY)), value_parser = parse_ack_frequency, allow_hyphen_values = true)]
    quic_ack_frequency: AckFrequencyArg,
}

fn parse_size(s: &str) -> Result<u64, String> {
    parse_size::parse_size(s).map_err(|e| e.to_string())
}

fn main() -> anyhow::Result<()> {
    use std::io::IsTerminal;
    // Before any handler is installed, which would hide it.
    imbench_server::process::hangup_ignored();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only where a person reads them, not in a log file.
        .with_ansi(std::io::stderr().is_terminal())
        // A log line that cannot be written (stderr a closed pipe) is dropped: by default the
        // subscriber says so with eprintln!, which panics there, in whichever task logged,
        // and a client's bad handshake is enough to make rustls or quinn log.
        .log_internal_errors(false)
        .init();
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            // Help and the version, written here so that a failed write is told.
            let Some(text) = imbench_server::process::help_or_version(&e) else {
                e.exit()
            };
            use std::io::Write as _;
            let mut out = std::io::stdout();
            let written = out
                .write_all(format!("{text}\n").as_bytes())
                .and_then(|()| out.flush());
            // A reader that went away (`| head -1`) is no failure.
            if let Err(e) = written {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    say(
                        &mut std::io::stderr(),
                        &format!("imbench-server: what it printed was lost: writing to standard output failed: {e}\n"),
                    );
                }
            }
            return Ok(());
        }
    };
    if let Err(why) = check_limits(&args).and_then(|()| check_addresses(&args)) {
        say(&mut std::io::stderr(), &format!("imbench-server: {why}\n"));
        std::process::exit(2);
    }
    if let Err(e) = imbench_server::process::lock_in_memory() {
        say(
            &mut std::io::stderr(),
            &format!("imbench-server: note: could not lock its code in memory ({e}); where the machine pages out idle memory, a page fault can delay a delivery (run as root or raise `ulimit -l`)\n"),
        );
    }
    let threads = match imbench_server::process::worker_threads() {
        Ok(n) => n,
        Err(why) => {
            say(&mut std::io::stderr(), &format!("imbench-server: {why}\n"));
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    if let Err(e) = runtime.block_on(serve(args)) {
        // One line, each cause once: a start that fails (a port in use) is no crash, and a
        // backtrace (RUST_BACKTRACE set in the environment) would bury the reason.
        say(
            &mut std::io::stderr(),
            &format!(
                "imbench-server: {}\n",
                imbench_server::error_line::causes(&e)
            ),
        );
        std::process::exit(1);
    }
    Ok(())
}

/// The names a self-signed certificate is made for when none are given: the defaults and
/// every address the server listens on, so that a client dialling one verifies it without
/// `--server-name`. A wildcard (`0.0.0.0`, `::`) stands for the machine's `interfaces`: its
/// sockets take connections on each of them (an IPv6 wildcard on IPv4's too, as the sockets
/// are dual-stack).
fn self_signed_names(listening: &[SocketAddr], interfaces: &[IpAddr]) -> Vec<String> {
    let mut names: Vec<String> = DEFAULT_CERT_NAMES.iter().map(|s| s.to_string()).collect();
    let mut add = |ip: IpAddr| {
        let ip = ip.to_string();
        if !names.contains(&ip) {
            names.push(ip);
        }
    };
    for addr in listening {
        match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => interfaces
                .iter()
                .filter(|i| i.is_ipv4())
                .for_each(|&i| add(i)),
            IpAddr::V6(ip) if ip.is_unspecified() => interfaces.iter().for_each(|&i| add(i)),
            ip => add(ip),
        }
    }
    names
}

/// The addresses of the machine's interfaces that a client can dial by address alone: IPv6
/// link-local ones need an interface named with them, and are left out. None when the
/// interfaces cannot be read (the certificate is then made for the other names).
fn interface_addresses() -> Vec<IpAddr> {
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    interfaces
        .filter_map(|i| {
            let addr = i.address?;
            if let Some(v4) = addr.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                let v6 = addr.as_sockaddr_in6()?.ip();
                // fe80::/10
                (v6.segments()[0] & 0xffc0 != 0xfe80).then_some(IpAddr::V6(v6))
            }
        })
        .collect()
}

/// A name for the certificate: one a client can dial, so not empty or blank.
fn cert_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!(
            "{text:?} is no name a client can dial: give a host name or an address"
        ));
    }
    Ok(name.to_string())
}

async fn serve(args: Args) -> anyhow::Result<()> {
    // The names a certificate made here is valid for, to be printed with its path.
    let mut cert_names = None;
    let identity = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => ServerIdentity::from_pem_files(cert, key)
            .with_context(|| format!("loading {} and {}", cert.display(), key.display()))?,
        _ => {
            let names: Vec<String> = if args.cert_names.is_empty() {
                let listening: Vec<SocketAddr> =
                    [&args.quic, &args.tcp, &args.tls, &args.ws, &args.wss]
                        .into_iter()
                        .flatten()
                        .copied()
                        .collect();
                let interfaces = if listening.iter().any(|a| a.ip().is_unspecified()) {
                    interface_addresses()
                } else {
                    Vec::new()
                };
                self_signed_names(&listening, &interfaces)
            } else {
                args.cert_names.clone()
            };
            cert_names = Some(names.join(", "));
            ServerIdentity::self_signed(&names).context("making a self-signed certificate")?
        }
    };
    // A certificate of the user's own: what clients will check in it. Said before the server
    // starts, since a client refuses an expired one, a CA's, or one for other names, and the
    // server would take its handshakes and fail each.
    let given_cert = args
        .cert
        .as_ref()
        .and_then(|_| CertFacts::of_pem(identity.cert_chain_pem.as_bytes()).ok());
    if let (Some(facts), Some(path)) = (&given_cert, &args.cert) {
        for problem in facts.problems(std::time::SystemTime::now()) {
            say(
                &mut std::io::stderr(),
                &format!(
                    "imbench-server: warning: --cert {}: {problem}\n",
                    path.display()
                ),
            );
        }
    }
    let cert_path = args.client_dir.join("cert.pem");
    // The files for clients are written once the server is up: a start that fails (a port or
    // a data folder in use by another server) must not replace that server's files.
    let (secret, secret_path, new_secret) = match &args.secret_file {
        Some(path) => {
            refuse_shared_secret(path)?;
            let secret = Secret::from_file(path)
                .with_context(|| format!("--secret-file {}", path.display()))?;
            (secret, path.clone(), false)
        }
        None => (Secret::generate()?, args.client_dir.join("secret"), true),
    };
    let cert_pem = identity.cert_chain_pem.clone();
    let server_secret_hex = secret.to_hex();
    let max_body = usize::try_from(args.max_body).context("--max-body is too large")?;
    let mut listen: Vec<(Transport, SocketAddr)> = Vec::new();
    for (transport, addrs) in [
        (Transport::Quic, &args.quic),
        (Transport::Tcp, &args.tcp),
        (Transport::Tls, &args.tls),
        (Transport::Ws, &args.ws),
        (Transport::Wss, &args.wss),
    ] {
        listen.extend(addrs.iter().map(|&a| (transport, a)));
    }
    if listen.is_empty() {
        listen.push((Transport::Quic, SocketAddr::from(([127, 0, 0, 1], 4433))));
    }
    let (max_connections, files_note) = connection_limit(args.max_connections, &listen);
    let config = ServerConfig {
        listen,
        identity,
        secret,
        limits: Limits {
            max_connections,
            max_connections_per_address: args.max_connections_per_address,
            hello_timeout: args.hello_timeout,
            queue_capacity: args.queue_capacity,
            max_queued_bytes: usize::try_from(args.max_queued_bytes)
                .context("--max-queued-bytes is too large")?,
            session_queue_bytes: usize::try_from(args.session_queue_bytes)
                .context("--session-queue-bytes is too large")?,
            write_timeout: args.write_timeout,
            receipt_window: args.receipt_window.max(1),
            max_body,
            max_frame_len: imbench_proto::DEFAULT_MAX_FRAME_LEN,
            hold_per_user: args.hold_per_user,
            hold_bytes: usize::try_from(args.hold_bytes).context("--hold-bytes is too large")?,
            max_group_members: args.max_group_members,
            groups_per_user: args.groups_per_user,
            group_changes_per_sec: args.group_changes_per_sec,
            max_file_size: args.max_file_size,
            transfers_per_user: args.transfers_per_user,
            file_idle_timeout: args.file_idle_timeout,
        },
        quic: QuicOptions {
            ack_frequency: args.quic_ack_frequency.0,
            ..QuicOptions::default()
        },
        data_dir: args.data_dir.clone(),
    };
    // Held while the server runs: a second server given the same folder would write its own
    // secret and certificate over this one's, and the command this one printed would stop
    // logging in, with nothing said.
    let mut client_dir = ClientDir::take(&args.client_dir)?;
    let mut signals = Signals::install()?;
    let server = imbench_server::start(config)
        .await
        .context("starting the server")?;
    client_dir.will_write(&cert_path);
    std::fs::write(&cert_path, &cert_pem)
        .with_context(|| format!("writing {}", cert_path.display()))?;
    if new_secret {
        client_dir.will_write(&secret_path);
        write_private(&secret_path, &server_secret_hex)?;
    }
    let metrics = match args.metrics_addr {
        Some(addr) => Some(
            server
                .serve_metrics(addr)
                .await
                .with_context(|| format!("serving metrics on {addr} (--metrics-addr)"))?,
        ),
        None => None,
    };
    // Up: from here on the folder's files are this server's, whatever happens.
    client_dir.keep();
    // Written in one piece, and a closed stdout is not fatal: whoever started the server may
    // stop reading once it has the addresses, and println! would panic on the broken pipe.
    let mut banner = String::from("imbench-server listening:\n");
    for (transport, addr) in server.addrs() {
        banner.push_str(&format!("  {transport:<4} {addr}\n"));
    }
    banner.push_str(&format!(
        "certificate for clients: {}{}\n",
        cert_path.display(),
        match (&cert_names, &given_cert) {
            (Some(n), _) => format!(" (valid for {n})"),
            (None, Some(facts)) => format!(" ({})", facts.describe()),
            (None, None) => String::new(),
        }
    ));
    banner.push_str(&format!("token secret: {}\n", secret_path.display()));
    if let Some(note) = files_note {
        banner.push_str(&note);
    }
    if let Some(metrics) = &metrics {
        banner.push_str(&format!("metrics for Prometheus: {}\n", metrics.url()));
    }
    if let Some(file) = server.data_file() {
        let restored = server.restored();
        banner.push_str(&format!(
            "holds on disk: {} ({} messages for {} users restored, {} bytes of bodies)\n",
            file.display(),
            restored.messages,
            restored.users,
            restored.bytes
        ));
    }
    let mut transports: Vec<String> = server.addrs().iter().map(|(t, _)| t.to_string()).collect();
    transports.dedup();
    // A client dials a wildcard address's loopback; a certificate made for names alone is
    // verified for the first of them.
    let dialled = |a: &std::net::SocketAddr| match a.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, a.port()))
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
        }
        _ => *a,
    };
    // One address per transport: a run loads one server address for each.
    let mut targets: Vec<String> = Vec::new();
    let mut given: Vec<Transport> = Vec::new();
    for (t, a) in server.addrs() {
        if !given.contains(t) {
            given.push(*t);
            targets.push(format!("--server {t}={}", dialled(a)));
        }
    }
    // The name a client must check when the certificate does not name the address it dials.
    let covered = |ip: std::net::IpAddr| match &given_cert {
        Some(facts) => facts.covers(ip),
        None => args.cert_names.contains(&ip.to_string()),
    };
    let first_name = match &given_cert {
        // A wildcard is no name to dial by.
        Some(facts) => facts.dns_names.iter().find(|n| !n.starts_with('*')),
        None if args.cert.is_none() => args.cert_names.first(),
        None => None,
    };
    let server_name = match first_name {
        Some(name) if !server.addrs().iter().all(|(_, a)| covered(dialled(a).ip())) => {
            format!(" --server-name {name}")
        }
        _ => String::new(),
    };
    // tcp and ws check no certificate: the command gives one only when a transport does.
    let (server_name, cert) = if server.addrs().iter().any(|(t, _)| t.uses_tls()) {
        (server_name, format!(" --cert {}", cert_path.display()))
    } else {
        (String::new(), String::new())
    };
    banner.push_str(&format!(
        "run a load against it with:\n  imbench run --transport {} {}{server_name}{cert} --secret-file {}\n",
        transports.join(","),
        targets.join(" "),
        secret_path.display()
    ));
    say(&mut std::io::stdout(), &banner);
    let rss_start = process::rss_bytes();
    let cpu_start = process::cpu_seconds();
    tokio::select! {
        waited = signals.wait() => waited?,
        why = server.store_failed() => {
            // Nothing held from now on could be on disk: stop, rather than acknowledge what a
            // restart would lose. What was acknowledged before is on disk.
            say(&mut std::io::stderr(), &format!("imbench-server: {why}; stopping: the holds on disk could no longer be written, so no held message could be acknowledged\n"));
            std::process::exit(1);
        }
    }
    say(
        &mut std::io::stderr(),
        "shutting down: flushing queues and saying Bye to clients\n",
    );
    // What is still held once the sessions have handed back what they had: said at exit, with
    // where it goes.
    let pools = server.router().pools();
    let stats = server.shutdown().await;
    // Every transfer not relayed whole ended early: those the shutdown cut may not have
    // counted themselves yet when the counters are read.
    let files_ended_early = stats
        .transfers_started
        .saturating_sub(stats.transfers_relayed)
        .max(stats.transfers_aborted);
    say(&mut std::io::stderr(), &format!(
        "served {} sessions (at most {} at once, {} resumed a TLS session), routed {} deliveries ({} group messages), held {}, redelivered {} (unconfirmed when a connection ended), refused {} (hold full), {} (busy) and {} (body over --max-body), {} slow consumers, {} errors sent\n",
        stats.sessions_opened,
        stats.sessions_peak,
        stats.sessions_resumed,
        stats.routed,
        stats.group_messages,
        stats.held,
        stats.redelivered,
        stats.hold_full,
        stats.busy,
        stats.too_large,
        stats.slow_consumers,
        stats.errors_sent
    ));
    let held_bytes = pools.held_bytes();
    if held_bytes > 0 {
        let whither = match &args.data_dir {
            Some(dir) => format!("kept in {} for the next start", dir.display()),
            None => "gone with the process (holds survive a stop only with --data-dir)".to_string(),
        };
        say(
            &mut std::io::stderr(),
            &format!(
                "held at exit: {:.1} KiB of messages for offline users, {whither}\n",
                held_bytes as f64 / 1024.0
            ),
        );
    }
    say(&mut std::io::stderr(), &format!(
        "refused: {} connections over the limit, {} over the per-address limit, {} failed handshakes, {} plain HTTP requests, {} bad tokens, {} bad frames, {} Hello timeouts, {} protocol errors, {} group changes, {} file offers; files: {} relayed, {} ended early, {} bytes\n",
        stats.connections_refused,
        stats.connections_refused_per_address,
        stats.handshakes_failed,
        stats.http_requests_not_upgraded,
        stats.auth_failures,
        stats.bad_frames,
        stats.hello_timeouts,
        stats.protocol_errors,
        stats.group_refusals,
        stats.transfers_refused,
        stats.transfers_relayed,
        files_ended_early,
        stats.file_bytes
    ));
    if let (Some(start), Some(peak)) = (rss_start, process::peak_rss_bytes()) {
        // The kernel brings its high-water mark up to date lazily (RSS is counted per thread
        // and summed now and then): read after memory was given back, it can fall below the
        // resident set read at start, which the peak was at least.
        let peak = peak.max(start);
        let per_session = match stats.sessions_peak {
            0 => "no session was opened".to_string(),
            n => format!(
                "{} KiB per session at the peak",
                peak.saturating_sub(start) / n / 1024
            ),
        };
        say(
            &mut std::io::stderr(),
            &format!(
                "memory: peak RSS {} MiB ({} MiB at start), {per_session}\n",
                peak / (1024 * 1024),
                start / (1024 * 1024),
            ),
        );
    }
    if let (Some(start), Some(end)) = (cpu_start, process::cpu_seconds()) {
        say(
            &mut std::io::stderr(),
            &format!("cpu: {:.1} s\n", end - start),
        );
    }
    Ok(())
}

/// Writes `text` in one piece; a closed or broken output is not worth dying for.
fn say(out: &mut dyn std::io::Write, text: &str) {
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// An address given twice for the same kind of socket (UDP for QUIC, TCP for the others), or
/// within a wildcard given for that kind on the same port, would fail to bind as "address in
/// use", as if another process held it.
fn check_addresses(args: &Args) -> Result<(), String> {
    // The same port, and addresses one of which takes the other's: equal ones (an IPv4
    // address written as IPv6's mapped form too), or a wildcard (IPv6's takes IPv4 as well:
    // the sockets are dual-stack).
    let overlap = |a: SocketAddr, b: SocketAddr| {
        let (x, y) = (a.ip().to_canonical(), b.ip().to_canonical());
        let covers = |w: std::net::IpAddr, o: std::net::IpAddr| {
            w.is_unspecified() && (w.is_ipv6() || o.is_ipv4())
        };
        a.port() == b.port() && (x == y || covers(x, y) || covers(y, x))
    };
    let mut seen: Vec<(bool, SocketAddr, &str)> = Vec::new();
    let metrics: Vec<SocketAddr> = args.metrics_addr.into_iter().collect();
    for (flag, addrs, udp) in [
        ("--quic", &args.quic, true),
        ("--tcp", &args.tcp, false),
        ("--tls", &args.tls, false),
        ("--ws", &args.ws, false),
        ("--wss", &args.wss, false),
        // The metrics endpoint is a TCP listener too.
        ("--metrics-addr", &metrics, false),
    ] {
        for &addr in addrs {
            // Port 0 is a fresh port each time.
            if addr.port() == 0 {
                continue;
            }
            if let Some((_, earlier, first)) =
                seen.iter().find(|&&(u, a, _)| u == udp && overlap(a, addr))
            {
                let what = if *earlier == addr {
                    format!("{addr} is given twice")
                } else {
                    format!("{earlier} and {addr} overlap")
                };
                return Err(format!(
                    "{what} ({first} and {flag}): a port takes one listening socket of a kind"
                ));
            }
            seen.push((udp, addr, flag));
        }
    }
    Ok(())
}

/// Limits that would make the server refuse everyone, or disconnect every recipient at its
/// first message, are mistakes: said before anything starts (exit 2).
fn check_limits(args: &Args) -> Result<(), String> {
    // Said here as well as by the flag's own rule, which another flag given beside it
    // (--cert-name) can keep from being checked.
    if args.key.is_some() && args.cert.is_none() {
        return Err("--key goes with --cert: give the certificate chain it is the key of".into());
    }
    let zero = |name: &str, what: &str| Err(format!("{name} 0 {what}; give a positive value"));
    if args.max_connections == 0 {
        return zero("--max-connections", "would refuse every connection");
    }
    if args.max_body == 0 {
        return zero("--max-body", "would refuse every message");
    }
    if args.max_file_size == 0 {
        return zero("--max-file-size", "would refuse every file");
    }
    if args.transfers_per_user == 0 {
        return zero("--transfers-per-user", "would refuse every file");
    }
    if args.max_group_members == 0 {
        return zero("--max-group-members", "would refuse every group join");
    }
    if args.groups_per_user == 0 {
        return zero("--groups-per-user", "would refuse every group join");
    }
    if args.max_body.saturating_add(64) > u64::from(imbench_proto::DEFAULT_MAX_FRAME_LEN) {
        return Err(format!(
            "--max-body {} does not fit in a frame (at most {} bytes)",
            args.max_body,
            imbench_proto::DEFAULT_MAX_FRAME_LEN - 64
        ));
    }
    if args.queue_capacity == 0 || args.session_queue_bytes == 0 || args.max_queued_bytes == 0 {
        return Err(
            "--queue-capacity, --session-queue-bytes and --max-queued-bytes must be positive: at 0 every message is refused or every recipient cut off"
                .into(),
        );
    }
    if args.session_queue_bytes < args.max_body {
        return Err(format!(
            "--session-queue-bytes {} is smaller than --max-body {}: a recipient would be cut off at its first large message",
            args.session_queue_bytes, args.max_body
        ));
    }
    if args.hold_bytes < args.max_body {
        return Err(format!(
            "--hold-bytes {} is smaller than --max-body {}: a message that large to an offline user could never be held",
            args.hold_bytes, args.max_body
        ));
    }
    if args.max_queued_bytes < args.max_body {
        return Err(format!(
            "--max-queued-bytes {} is smaller than --max-body {}: a message that large would be refused `busy` with every queue empty",
            args.max_queued_bytes, args.max_body
        ));
    }
    for (name, value) in [
        ("--write-timeout", args.write_timeout),
        ("--hello-timeout", args.hello_timeout),
        ("--file-idle-timeout", args.file_idle_timeout),
    ] {
        // Under a millisecond no client on any network answers in time (and the file
        // transfers' idle check ticks at a quarter of its timeout, which must not round to 0).
        if value < Duration::from_millis(1) {
            return Err(format!(
                "{name} {} is under 1ms: it would give up on every client (or file transfer) at once",
                if value.is_zero() {
                    "0s".to_string()
                } else {
                    format!("{value:?}")
                }
            ));
        }
        // Past a day it means "never", which no clock can add up to; a deadline that far
        // away would overflow.
        if value > Duration::from_secs(24 * 3600) {
            return Err(format!(
                "{name} {} is over a day: give at most 24h",
                humantime::format_duration(value)
                    .to_string()
                    .replace("1day", "1 day")
            ));
        }
    }
    Ok(())
}

/// The file in `--client-dir` whose lock says a server uses the folder.
const CLIENT_DIR_LOCK: &str = ".lock";

/// The folder of files for clients, held for this server (its lock, let go with the process)
/// and, until the server is up ([`ClientDir::keep`]), what a start that fails removes: the
/// files it wrote there and the folders it made, so that it leaves nothing behind.
struct ClientDir {
    lock: Option<std::fs::File>,
    /// Folders that did not exist, innermost first.
    made_dirs: Vec<PathBuf>,
    /// Files that did not exist, in the order written (the lock file first).
    made_files: Vec<PathBuf>,
    kept: bool,
}

impl ClientDir {
    fn take(dir: &std::path::Path) -> anyhow::Result<Self> {
        let made_dirs = dir
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
            .map(std::path::Path::to_path_buf)
            .collect();
        let mut held = ClientDir {
            lock: None,
            made_dirs,
            made_files: Vec::new(),
            kept: false,
        };
        held.will_write(&dir.join(CLIENT_DIR_LOCK));
        held.lock = Some(lock_client_dir(dir)?);
        Ok(held)
    }

    /// Notes that `path` is about to be written: removed if the start fails and it is new.
    fn will_write(&mut self, path: &std::path::Path) {
        if !path.exists() {
            self.made_files.push(path.to_path_buf());
        }
    }

    /// The server is up: its files stay.
    fn keep(&mut self) {
        self.kept = true;
    }
}

impl Drop for ClientDir {
    fn drop(&mut self) {
        if !self.kept {
            // The lock file goes while still locked, so that no other server takes the file
            // on its way out.
            for file in self.made_files.iter().rev() {
                let _ = std::fs::remove_file(file);
            }
        }
        drop(self.lock.take());
        if !self.kept {
            for dir in &self.made_dirs {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}

/// Takes the lock of the folder of files for clients, so that one server at a time writes
/// there; the lock goes with the process.
fn lock_client_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    if dir.exists() && !dir.is_dir() {
        bail!("--client-dir {} is a file, not a folder", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(CLIENT_DIR_LOCK);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // A server stopped a moment ago (`kill -9`, then a restart at once) holds the lock until
    // its process has ended, which takes a while for one with many connections: it is given
    // that while before this one is refused.
    let deadline = std::time::Instant::now() + imbench_server::store::LOCK_GRACE;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "{} holds the files for clients of another imbench-server that is running (its secret and certificate): give this one a folder of its own with --client-dir",
                dir.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }
}

/// A token secret that others may read lets them log in as anyone: refused, as ssh refuses
/// a private key others can read.
fn refuse_shared_secret(path: &std::path::Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta =
            std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        if !meta.is_file() {
            // A device or a pipe holds no secret of its own, and chmod on it is no advice.
            bail!(
                "{} is not a regular file: give a file that holds the secret",
                path.display()
            );
        }
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            bail!(
                "{} may be read by others (mode {:o}): anyone who reads it can log in as any user; run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
    }
    Ok(())
}

/// Files the process keeps for itself beside its connections: listeners, the runtime's, and
/// room to open a file or two.
const SPARE_FILES: u64 = 64;

/// The connection limit the process can keep: each TCP, TLS or WebSocket connection holds an
/// open file (a QUIC connection does not), and a process out of files cannot accept anyone,
/// nor tell them why. The soft limit on open files is raised to the hard one; when even that
/// is below `asked`, the limit is capped under it and the note says so for the banner.
fn connection_limit(asked: usize, listen: &[(Transport, SocketAddr)]) -> (usize, Option<String>) {
    let files = imbench_server::process::raise_open_files();
    if listen.iter().all(|(t, _)| *t == Transport::Quic) {
        return (asked, None);
    }
    let Some(files) = files else {
        return (asked, None);
    };
    let room = usize::try_from(files.saturating_sub(SPARE_FILES + listen.len() as u64))
        .unwrap_or(usize::MAX)
        .max(1);
    if asked <= room {
        return (asked, None);
    }
    let note = format!(
        "connections: at most {room}, not {asked}: this process may open {files} files (ulimit -n) and each TCP, TLS or WebSocket connection takes one; raise the hard limit for more\n"
    );
    (room, Some(note))
}

fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    // A new file, readable by its owner only from its first byte, then renamed over the old
    // one: whatever was at `path` (a file others could read, one someone holds open, a
    // symbolic link to somewhere else) is replaced, never written through.
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("secret"),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut file| {
        writeln!(file, "{text}")?;
        file.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

/// SIGTERM, SIGINT and SIGHUP, caught from the moment this is made: made before the server says it
/// is listening, so that a signal sent as soon as the addresses are printed still shuts the
/// server down gracefully instead of killing it.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    /// SIGHUP (the terminal closed, an SSH session dropped), unless the server was started
    /// with it ignored (`nohup`), which a handler would undo.
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                term: signal(SignalKind::terminate()).context("installing SIGTERM handler")?,
                int: signal(SignalKind::interrupt()).context("installing SIGINT handler")?,
                hup: if imbench_server::process::hangup_ignored() {
                    None
                } else {
                    Some(signal(SignalKind::hangup()).context("installing SIGHUP handler")?)
                },
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn wait(&mut self) -> anyhow::Result<()> {
        #[cfg(unix)]
        {
            let hup = async {
                match &mut self.hup {
                    Some(hup) => hup.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.term.recv() => {}
                _ = self.int.recv() => {}
                _ = hup => {}
            }
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        Ok(())
    }
}

/// `--quic-ack-frequency`: a packet count, or `off`.
#[derive(Debug, Clone, Copy)]
struct AckFrequencyArg(Option<u32>);

impl std::fmt::Display for AckFrequencyArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("off"),
        }
    }
}

fn parse_ack_frequency(text: &str) -> Result<AckFrequencyArg, String> {
    imbench_transport::quic::parse_ack_frequency(text).map(AckFrequencyArg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(listening: &[&str], interfaces: &[&str]) -> Vec<String> {
        let listening: Vec<SocketAddr> = listening.iter().map(|a| a.parse().unwrap()).collect();
        let interfaces: Vec<IpAddr> = interfaces.iter().map(|a| a.parse().unwrap()).collect();
        self_signed_names(&listening, &interfaces)
    }

    #[test]
    fn a_wildcard_stands_for_the_interfaces_of_its_family() {
        let interfaces = ["127.0.0.1", "192.0.2.2", "2001:db8::2", "::1"];
        let defaults = ["localhost", "127.0.0.1", "::1"];
        assert_eq!(names(&["127.0.0.1:4433"], &interfaces), defaults);
        assert_eq!(
            names(&["0.0.0.0:4433", "198.51.100.1:4434"], &interfaces),
            [&defaults[..], &["192.0.2.2", "198.51.100.1"]].concat()
        );
        assert_eq!(
            names(&["[::]:4433"], &interfaces),
            [&defaults[..], &["192.0.2.2", "2001:db8::2"]].concat()
        );
        assert_eq!(names(&["0.0.0.0:1", "0.0.0.0:2"], &[]), defaults);
    }
}
