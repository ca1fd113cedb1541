//! Helpers for the generator's end-to-end tests: small scenarios, a server reachable as a
//! remote target, and a UDP proxy that delays every datagram by a known amount.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use imbench_loadgen::{RunConfig, Scenario, ServerSpec};
use imbench_server::ServerConfig;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A scenario small enough for a test: `clients` clients at `rate` msg/s each.
pub fn small_scenario(clients: usize, rate: f64, duration: Duration) -> Scenario {
    small_scenario_with(clients, rate, duration, "")
}

/// [`small_scenario`] with more TOML (a `[groups]` section, say) after it.
pub fn small_scenario_with(clients: usize, rate: f64, duration: Duration, more: &str) -> Scenario {
    let text = format!(
        r#"
name = "test"
clients = {clients}
ramp_up = "200ms"
warmup = "500ms"
duration = "{}ms"
drain = "5s"
seed = 11
[direct]
rate = {rate}
arrival = "poisson"
size = {{ dist = "fixed", bytes = 100 }}
partners = {{ pick = "random", count = 2 }}
# These runs test what is measured, not the generator's punctuality or the CPU left over on a
# busy test machine (tests run side by side).
[generator]
max_schedule_lag = "250ms"
max_cpu_busy = 1.0
max_cpu_wait = "1h"
max_hiccup = "1h"
{more}
"#,
        duration.as_millis()
    );
    Scenario::from_toml(&text, "test").expect("test scenario")
}

pub fn config(scenario: Scenario, server: ServerSpec) -> RunConfig {
    RunConfig::new(scenario, server, imbench_transport::Transport::Quic)
}

/// `config` with an interrupt (as Ctrl-C gives) `after` from now: call it inside the runtime.
pub fn interrupted_after(mut config: RunConfig, after: Duration) -> RunConfig {
    let (tx, rx) = tokio::sync::watch::channel(false);
    config.interrupt = Some(rx);
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        let _ = tx.send(true);
    });
    config
}

/// How a run reaches `config`'s server at `addr` (which may be a proxy in front of it).
pub fn remote(config: &ServerConfig, addr: SocketAddr) -> ServerSpec {
    ServerSpec::Remote {
        addr,
        trust: config.identity.client_trust(),
        secret: Box::new(config.secret.clone()),
        server_name: Some("localhost".into()),
    }
}

/// A UDP proxy on loopback that forwards datagrams both ways, each `delay` late. Returns the
/// address clients should use. Runs until the test's runtime ends.
pub async fn delay_proxy(upstream: SocketAddr, delay: Duration) -> SocketAddr {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind proxy"));
    let addr = front.local_addr().expect("proxy addr");
    // Datagrams towards clients, with the time each may leave.
    let (to_client, mut to_client_rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>, SocketAddr)>();
    let sender = front.clone();
    tokio::spawn(async move {
        while let Some((at, data, dest)) = to_client_rx.recv().await {
            tokio::time::sleep_until(at).await;
            let _ = sender.send_to(&data, dest).await;
        }
    });
    tokio::spawn(async move {
        let mut backs: HashMap<SocketAddr, mpsc::UnboundedSender<(Instant, Vec<u8>)>> =
            HashMap::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((n, client)) = front.recv_from(&mut buf).await else {
                return;
            };
            let at = Instant::now() + delay;
            let tx = backs.entry(client).or_insert_with(|| {
                let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
                let to_client = to_client.clone();
                tokio::spawn(async move {
                    let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind back"));
                    back.connect(upstream).await.expect("connect upstream");
                    let reader = back.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 65536];
                        while let Ok(n) = reader.recv(&mut buf).await {
                            let at = Instant::now() + delay;
                            if to_client.send((at, buf[..n].to_vec(), client)).is_err() {
                                return;
                            }
                        }
                    });
                    while let Some((at, data)) = rx.recv().await {
                        tokio::time::sleep_until(at).await;
                        let _ = back.send(&data).await;
                    }
                });
                tx
            });
            let _ = tx.send((at, buf[..n].to_vec()));
        }
    });
    addr
}

/// A server program of a test's own (nats-server, mosquitto), with its configuration and log in
/// a folder of its own; stopped by PID, and its folder removed, when dropped.
pub struct Daemon {
    pub child: std::process::Child,
    pub dir: std::path::PathBuf,
}

/// Pauses the process `pid` (a server the test started) with SIGSTOP, and from a thread of
/// its own lets it go on (SIGCONT) after `pause`, whatever the test does meanwhile.
pub fn pause_for(pid: u32, pause: Duration) -> std::thread::JoinHandle<()> {
    let signal = move |name: &str| {
        let sent = std::process::Command::new("kill")
            .args(["-s", name, &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -s {name} {pid}");
    };
    signal("STOP");
    std::thread::spawn(move || {
        std::thread::sleep(pause);
        signal("CONT");
    })
}

/// Runs `scenario` against `target`, whose server `pid` is paused for 6 s as it begins (longer than NATS's 3 s wait for INFO and rumqttc's 5 s network timeout were), with a
/// `connect_timeout` of 20 s: every login waits it out, none fails for a shorter wait of the
/// driver's own, and nothing is lost.
pub async fn assert_a_paused_server_gets_the_whole_connect_timeout(pid: u32, target: ServerSpec) {
    let scenario = small_scenario_with(
        10,
        5.0,
        Duration::from_secs(1),
        "connect_timeout = \"20s\"\n",
    );
    let resumed = pause_for(pid, Duration::from_secs(6));
    let outcome = imbench_loadgen::run(config(scenario, target)).await;
    resumed.join().expect("the server is let go on");
    let outcome = outcome.expect("a run that waited for the server");
    let run = &outcome.report.runs[0];
    let c = &run.counters;
    assert_eq!(
        (c.clients, c.connect_failures, c.lost),
        (10, 0, 0),
        "{c:?} {:?}",
        run.problems
    );
}

/// How long a started server may take to say it listens: a deadline, not a timing check.
pub const READY_WITHIN: Duration = Duration::from_secs(60);

impl Daemon {
    /// A fresh folder for `name`'s configuration and log.
    pub fn folder(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("imbench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test folder");
        dir
    }

    /// Starts `program` with `args` in `dir`, its output into `dir/log`; `package` names the
    /// Debian package to install when the program is missing.
    pub fn start(program: &str, args: &[&str], dir: std::path::PathBuf, package: &str) -> Self {
        let mut command = std::process::Command::new(program);
        command.args(args);
        Self::spawn(command, dir, package)
    }

    /// Starts `command` in `dir`, its output into `dir/log`.
    pub fn spawn(
        mut command: std::process::Command,
        dir: std::path::PathBuf,
        package: &str,
    ) -> Self {
        let log = std::fs::File::create(dir.join("log")).expect("log file");
        let err = log.try_clone().expect("log file");
        let child = command
            .current_dir(&dir)
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {command:?} ({e}): install Debian's {package}"));
        Daemon { child, dir }
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// Waits until `ready` finds what it needs in the log, or panics after a minute or when
    /// the program ends (an Erlang node beside busy tests once took over 10 s to listen).
    pub fn wait_for<T>(&mut self, ready: impl Fn(&str) -> Option<T>) -> T {
        let deadline = std::time::Instant::now() + READY_WITHIN;
        while std::time::Instant::now() < deadline {
            let log = self.log();
            if let Some(found) = ready(&log) {
                return found;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the server exited ({status}): {log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "the server was not ready within {READY_WITHIN:?}: {}",
            self.log()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port nothing listens on now (the kernel's choice), for a server that cannot
/// pick its own.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A self-signed certificate for `localhost` and 127.0.0.1 and its key, written into `dir` as
/// `cert.pem` and `key.pem`: a server's TLS identity, and the CA file its clients trust.
pub fn self_signed_cert(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    self_signed_cert_for(dir, &["localhost", "127.0.0.1"])
}

/// A self-signed certificate for `names` only, written as [`self_signed_cert`] writes one.
pub fn self_signed_cert_for(
    dir: &std::path::Path,
    names: &[&str],
) -> (std::path::PathBuf, std::path::PathBuf) {
    let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let made = rcgen::generate_simple_self_signed(names).expect("a certificate");
    std::fs::create_dir_all(dir).expect("a folder for the certificate");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).expect("write cert.pem");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("write key.pem");
    (cert, key)
}

/// Checks a TLS target of another system whose certificate `cert` names 127.0.0.1 only (see
/// [`self_signed_cert_for`]): with `cert` as `ca=`, chat and groups are all accounted for under
/// the name `system`; with another CA's (made in `certs`), or with the server reached by a name
/// the certificate does not hold (`localhost`), the run stops before it starts. `tls` makes the
/// target from its host and its query (`?ca=…`).
pub async fn assert_tls_trusts_its_ca_only(
    tls: impl Fn(&str, &str) -> ServerSpec,
    cert: &std::path::Path,
    certs: &std::path::Path,
    system: &str,
) {
    let scenario = small_scenario_with(30, 20.0, Duration::from_secs(2), GROUPS);
    let trusted = format!("?ca={}", cert.display());
    let outcome = imbench_loadgen::run(config(scenario, tls("127.0.0.1", &trusted)))
        .await
        .expect("a run over TLS with the server's certificate as the CA");
    assert_every_message_accounted(&outcome.report, system, 30);
    // Another CA (another self-signed certificate) did not sign the server's.
    let (other, _) = self_signed_cert(&certs.join("other"));
    let untrusted = format!("?ca={}", other.display());
    let small = small_scenario_with(4, 1.0, Duration::from_secs(1), "");
    let untrusted = imbench_loadgen::run(config(small.clone(), tls("127.0.0.1", &untrusted))).await;
    assert_refused_as_misconfigured(untrusted, &["not signed by a certificate in", "other"]);
    // The right CA, but the server reached by a name its certificate was not issued for.
    let by_name = imbench_loadgen::run(config(small, tls("localhost", &trusted))).await;
    assert_refused_as_misconfigured(by_name, &["not for localhost", "127.0.0.1"]);
}

/// Checks that a run stopped before it started as a usage error (exit 2), with every one of
/// `says` in its message.
pub fn assert_refused_as_misconfigured<T>(
    result: Result<T, imbench_loadgen::RunError>,
    says: &[&str],
) {
    match result {
        Err(e @ imbench_loadgen::RunError::Misconfigured { .. }) => {
            for words in says {
                assert!(e.to_string().contains(words), "{words:?} not in: {e}");
            }
            assert_eq!(e.exit_code(), imbench_loadgen::exit_code::USAGE);
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("the run went ahead"),
    }
}

/// A nats-server of this test's own; stopped (by PID) when dropped.
pub struct NatsServer {
    pub daemon: Daemon,
    pub port: u16,
}

impl NatsServer {
    /// Starts nats-server with `conf` (a listen address is added) and waits until it listens.
    pub fn start(name: &str, conf: &str) -> Self {
        let dir = Daemon::folder(&format!("nats-{name}"));
        // Port -1: the server picks a free one and logs it.
        std::fs::write(
            dir.join("nats.conf"),
            format!("host: 127.0.0.1\nport: -1\n{conf}\n"),
        )
        .expect("write nats.conf");
        let mut daemon = Daemon::start("nats-server", &["-c", "nats.conf"], dir, "nats-server");
        const NEEDLE: &str = "Listening for client connections on 127.0.0.1:";
        let port = daemon.wait_for(|log| {
            log.lines().find_map(|l| {
                let at = l.find(NEEDLE)? + NEEDLE.len();
                l[at..].trim().parse().ok()
            })
        });
        NatsServer { daemon, port }
    }

    pub fn url(&self, credentials: &str) -> String {
        format!("nats://{credentials}127.0.0.1:{}", self.port)
    }

    pub fn target(&self, credentials: &str) -> ServerSpec {
        ServerSpec::Nats(
            imbench_loadgen::driver::nats::NatsTarget::parse(&self.url(credentials))
                .expect("a nats target"),
        )
    }
}

/// A mosquitto of this test's own; stopped (by PID) when dropped.
pub struct Mosquitto {
    pub daemon: Daemon,
    pub port: u16,
}

impl Mosquitto {
    /// Starts mosquitto listening on a free loopback port, with `conf` added to its
    /// configuration. Nagle's algorithm is off (`set_tcp_nodelay`): with it on, a delivery
    /// written while the previous one is unacknowledged waits for the client's delayed ACK.
    pub fn start(name: &str, conf: &str) -> Self {
        let dir = Daemon::folder(&format!("mosquitto-{name}"));
        let port = free_port();
        std::fs::write(
            dir.join("mosquitto.conf"),
            format!("listener {port} 127.0.0.1\nset_tcp_nodelay true\nmax_queued_messages 100000\n{conf}\n"),
        )
        .expect("write mosquitto.conf");
        let mut daemon = Daemon::start("mosquitto", &["-c", "mosquitto.conf"], dir, "mosquitto");
        daemon.wait_for(|log| log.contains(" running").then_some(()));
        Mosquitto { daemon, port }
    }

    pub fn url(&self, credentials: &str, options: &str) -> String {
        format!("mqtt://{credentials}127.0.0.1:{}{options}", self.port)
    }

    pub fn target(&self, credentials: &str, options: &str) -> ServerSpec {
        ServerSpec::Mqtt(
            imbench_loadgen::driver::mqtt::MqttTarget::parse(&self.url(credentials, options))
                .expect("a target"),
        )
    }
}

/// A Prosody of this test's own (Debian's `prosody`); stopped (by PID) when dropped.
pub struct Prosody {
    pub daemon: Daemon,
    pub port: u16,
}

impl Prosody {
    /// Starts Prosody in the foreground on a free loopback port, its data in the test's
    /// folder: domain `localhost`, rooms on `conference.localhost`, in-band registration open,
    /// plain SASL allowed on loopback, stream management on, Nagle's algorithm off (with it
    /// on, a delivery written while the previous one is unacknowledged waits for the client's
    /// delayed ACK, 40 ms); `conf` is added to the global section.
    pub fn start(name: &str, conf: &str) -> Self {
        let dir = Daemon::folder(&format!("prosody-{name}"));
        let port = free_port();
        std::fs::create_dir_all(dir.join("data")).expect("data folder");
        std::fs::create_dir_all(dir.join("certs")).expect("certs folder");
        let d = dir.display();
        std::fs::write(
            dir.join("prosody.cfg.lua"),
            format!(
                r#"run_as_root = true
daemonize = false
data_path = "{d}/data"
certificates = "{d}/certs"
admin_socket = "{d}/admin.sock"
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
c2s_direct_tls_ports = {{}}
s2s_ports = {{}}
http_ports = {{}}
https_ports = {{}}
log = {{ info = "*console" }}
network_settings = {{ nagle = false }}
modules_enabled = {{ "roster"; "saslauth"; "disco"; "ping"; "register"; "smacks"; "offline" }}
modules_disabled = {{ "s2s"; "tls" }}
allow_registration = true
min_seconds_between_registrations = 0
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_hashed"
storage = "internal"
{conf}
VirtualHost "localhost"
Component "conference.localhost" "muc"
"#
            ),
        )
        .expect("write prosody.cfg.lua");
        let mut daemon = Daemon::start(
            "prosody",
            &["--config", "prosody.cfg.lua", "-F"],
            dir,
            "prosody",
        );
        let needle = format!("Activated service 'c2s' on [127.0.0.1]:{port}");
        daemon.wait_for(|log| log.contains(&needle).then_some(()));
        Prosody { daemon, port }
    }

    pub fn url(&self, credentials: &str, options: &str) -> String {
        format!("xmpp://{credentials}127.0.0.1:{}{options}", self.port)
    }

    pub fn target(&self, credentials: &str, options: &str) -> ServerSpec {
        ServerSpec::Xmpp(
            imbench_loadgen::driver::xmpp::XmppTarget::parse(&self.url(credentials, options))
                .expect("an xmpp target"),
        )
    }
}

/// An ejabberd of this test's own (Debian's `ejabberd`), beside an `epmd` of its own (Erlang's
/// node name server, which a node needs), each one process stopped by its PID when dropped:
/// domain `localhost`, rooms on `conference.localhost`, in-band registration open with no
/// wait between registrations, plain SASL on loopback, stream management on, no traffic
/// shaping, and no offline storage (with `mod_offline`, a message sent while its recipient was
/// logging in was sometimes neither delivered then nor bounced, and reached the next run, which
/// counts it `corrupted`). It runs as the package's `ejabberd` user (Erlang refuses nothing as root, but ejabberd's
/// files are that user's), so the test runs as root.
pub struct Ejabberd {
    pub daemon: Daemon,
    _epmd: Daemon,
    pub port: u16,
}

impl Ejabberd {
    pub fn start(name: &str) -> Self {
        let epmd_port = free_port().to_string();
        let epmd = Daemon::start(
            "epmd",
            &["-port", &epmd_port],
            Daemon::folder(&format!("epmd-{name}")),
            "erlang-base (with ejabberd)",
        );
        // The node must find this epmd (it starts one of its own, a daemon nobody would
        // stop, only when told to: it is told not to).
        let deadline = std::time::Instant::now() + READY_WITHIN;
        while std::net::TcpStream::connect(("127.0.0.1", epmd_port.parse::<u16>().unwrap()))
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "epmd did not listen: {}",
                epmd.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let dir = Daemon::folder(&format!("ejabberd-{name}"));
        let port = free_port();
        std::fs::write(
            dir.join("ejabberd.yml"),
            format!(
                r#"hosts: [localhost]
loglevel: info
listen:
  - port: {port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    shaper: none
    access: c2s
    starttls_required: false
auth_method: internal
registration_timeout: infinity
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  register:
    allow: all
shaper: {{}}
shaper_rules:
  max_user_sessions: 10
modules:
  mod_disco: {{}}
  mod_muc:
    host: conference.localhost
    access: all
    access_create: all
    access_persistent: all
  mod_ping: {{}}
  mod_register:
    ip_access: all
    access: register
  mod_roster: {{}}
  mod_stream_mgmt: {{}}
"#
            ),
        )
        .expect("write ejabberd.yml");
        let owned = std::process::Command::new("chown")
            .args(["-R", "ejabberd:ejabberd"])
            .arg(&dir)
            .status()
            .expect("chown runs");
        assert!(owned.success(), "chown to ejabberd: run the test as root");
        // ejabberd's own libraries are where Debian puts them for this machine's architecture.
        let libs = std::fs::read_dir("/usr/lib")
            .expect("/usr/lib")
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                std::fs::read_dir(p).is_ok_and(|mut d| {
                    d.any(|e| {
                        e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("ejabberd-"))
                    })
                })
            })
            .expect("ejabberd's libraries under /usr/lib: install Debian's ejabberd");
        let d = dir.display();
        // `erl` hands over to the emulator in the same process (exec), so the PID is the node's.
        let mut command = std::process::Command::new("setpriv");
        command
            .args([
                "--reuid=ejabberd",
                "--regid=ejabberd",
                "--init-groups",
                "erl",
            ])
            .args([
                "-sname",
                &format!("imbench-{name}-{}@localhost", std::process::id()),
            ])
            .args(["-mnesia", "dir", &format!("\"{d}/db\"")])
            .args([
                "-start_epmd",
                "false",
                "-s",
                "ejabberd",
                "-noshell",
                "-noinput",
            ])
            .env("HOME", &dir)
            .env("EJABBERD_CONFIG_PATH", dir.join("ejabberd.yml"))
            .env("EJABBERD_LOG_PATH", dir.join("ejabberd.log"))
            .env("ERL_LIBS", libs)
            .env("ERL_EPMD_PORT", &epmd_port);
        let mut daemon = Daemon::spawn(command, dir, "ejabberd");
        let needle = format!("Start accepting TCP connections at 127.0.0.1:{port}");
        daemon.wait_for(|log| log.contains(&needle).then_some(()));
        Ejabberd {
            daemon,
            _epmd: epmd,
            port,
        }
    }

    pub fn target(&self, options: &str) -> ServerSpec {
        ServerSpec::Xmpp(
            imbench_loadgen::driver::xmpp::XmppTarget::parse(&format!(
                "xmpp://127.0.0.1:{}{options}",
                self.port
            ))
            .expect("an xmpp target"),
        )
    }
}

/// The groups of the chat-and-groups runs against other systems.
pub const GROUPS: &str =
    "[groups]\ncount = 3\nmembers = { dist = \"fixed\", size = 6 }\nrate = 10.0\n";

/// Checks a run of [`GROUPS`] and direct chat against another system named `system`: every
/// client connected and stayed, every send was acked and delivered once, every group message
/// reached every member but its sender, nothing else arrived, and every figure has samples.
pub fn assert_every_message_accounted(
    report: &imbench_loadgen::Report,
    system: &str,
    clients: u64,
) {
    let run = &report.runs[0];
    let c = &run.counters;
    assert_eq!(
        report.verdict,
        imbench_loadgen::Verdict::Ok,
        "{:?}",
        report.invalid_reasons
    );
    assert_eq!(run.transport, system);
    assert_eq!(
        (c.clients, c.connect_failures, c.disconnects),
        (clients, 0, 0)
    );
    assert!(c.sent > 500, "{c:?}");
    assert_eq!(c.acked, c.sent, "{c:?}");
    assert_eq!(
        c.expected, c.delivered,
        "{c:?} {:?} {:?}",
        run.problems, run.notes
    );
    assert_eq!(
        (c.lost, c.duplicated, c.corrupted, c.errors),
        (0, 0, 0, 0),
        "{:?}",
        run.problems
    );
    let group = run.group.as_ref().expect("group accounting");
    assert!(group.counts.delivered_expected > 100, "{group:?}");
    let g = &group.counts;
    assert_eq!(
        (g.lost, g.incomplete, g.unexpected, g.duplicated),
        (0, 0, 0, 0),
        "{group:?}"
    );
    for metric in ["connect", "direct", "ack", "group", "fanout"] {
        assert!(run.metrics[metric].count > 0, "{metric} has no samples");
    }
    assert!(run.problems.is_empty(), "{:?}", run.problems);
}

/// A scenario file for runs through the binary: 10 clients of direct chat for 1 s, nothing
/// lost as its SLO, and machine limits relaxed, the schedule lag's too: these runs test paths,
/// not punctuality, and run beside other tests on a busy machine (a debug build there once
/// lagged 45 ms at p99 and the run was called saturated).
pub const TINY_TOML: &str =
    "name = \"tiny\"\nclients = 10\nramp_up = \"100ms\"\nwarmup = \"200ms\"\n\
    duration = \"1s\"\ndrain = \"3s\"\nseed = 5\n[direct]\nrate = 20.0\narrival = \"constant\"\n\
    size = { dist = \"fixed\", bytes = \"64B\" }\npartners = { pick = \"ring\", count = 2 }\n\
    [slo]\nlost = \"== 0\"\n\
    [generator]\nmax_schedule_lag = \"1s\"\nmax_cpu_busy = 1.0\nmax_cpu_wait = \"1h\"\n\
    max_hiccup = \"1h\"\n";

/// [`TINY_TOML`] with 100 clients logging in one at a time from the start and sending at once
/// (no ramp-up) to random partners: the last ones log in well after sending began.
pub fn late_logins_toml() -> String {
    TINY_TOML
        .replace("clients = 10", "clients = 100")
        .replace("ramp_up = \"100ms\"", "ramp_up = \"0s\"")
        .replace("rate = 20.0", "rate = 50.0")
        .replace("arrival = \"constant\"", "arrival = \"poisson\"")
        .replace("pick = \"ring\"", "pick = \"random\"")
        .replace("[generator]\n", "[generator]\nconnect_concurrency = 1\n")
}

/// Runs [`late_logins_toml`] in `dir` against `url` (into `dir/late`): its one run's report,
/// and what the command printed.
pub fn run_late_logins(
    dir: &std::path::Path,
    url: &str,
) -> (imbench_loadgen::report::RunReport, String) {
    std::fs::write(dir.join("late.toml"), late_logins_toml()).expect("write late.toml");
    let (_, text) = imbench_in(dir, &["run", "late.toml", "--target", url, "--out", "late"]);
    let report: imbench_loadgen::Report = serde_json::from_str(
        &std::fs::read_to_string(dir.join("late/report.json")).expect("late/report.json"),
    )
    .expect("a report");
    let run = report.runs.into_iter().next().expect("one run");
    (run, text)
}

/// The imbench binary the tests run: this build's, or the one `IMBENCH_BIN` names (a path from
/// the workspace's folder or an absolute one). CI runs the tests that time logins through the
/// binary with a debug build of the tests and the release binary it has built already (a
/// release build of the tests is several minutes more).
pub fn imbench_bin() -> std::path::PathBuf {
    let Some(bin) = std::env::var_os("IMBENCH_BIN") else {
        return env!("CARGO_BIN_EXE_imbench").into();
    };
    // Tests run in their crate's folder and start imbench in folders of their own.
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = workspace.join(bin);
    std::fs::canonicalize(&bin)
        .unwrap_or_else(|e| panic!("IMBENCH_BIN names {}: {e}", bin.display()))
}

/// Runs the imbench binary in `dir` with `args`: how it ended, and its stdout and stderr as
/// one text.
pub fn imbench_in(dir: &std::path::Path, args: &[&str]) -> (std::process::Output, String) {
    let out = std::process::Command::new(imbench_bin())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("imbench runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out, text)
}

/// A server on a single-threaded runtime of its own, driven by a thread of its own: a task
/// that blocks that thread (`handle.spawn(async { std::thread::sleep(…) })`) stalls the whole
/// server, as a hung server would, while the generator keeps its schedule on another runtime
/// ([`generator_runtime`]).
pub struct ServerOnItsOwnThread {
    pub config: ServerConfig,
    pub addr: SocketAddr,
    /// Where to spawn what should run on the server's thread.
    pub handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerOnItsOwnThread {
    /// Starts a loopback server over QUIC.
    pub fn start() -> Self {
        Self::start_with(ServerConfig::loopback().expect("server config"))
    }

    /// Starts a server of `config`, listening over QUIC.
    pub fn start_with(config: ServerConfig) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("the server's runtime");
        let server = runtime
            .block_on(imbench_server::start(config.clone()))
            .expect("the server starts");
        let addr = server
            .addr(imbench_transport::Transport::Quic)
            .expect("listening over QUIC");
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            runtime.block_on(async {
                let _ = stopped.await;
                server.shutdown().await;
            })
        });
        Self {
            config,
            addr,
            handle,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// How a run reaches it.
    pub fn target(&self) -> ServerSpec {
        remote(&self.config, self.addr)
    }

    /// Shuts the server down and waits for its thread (for a stall still going on, too).
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the server's thread ends");
        }
    }
}

impl Drop for ServerOnItsOwnThread {
    /// Asks the server to shut down without waiting: a test ends without waiting out a stall
    /// it started.
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The generator's runtime in tests that start a server beside it: two workers, as on the
/// machines the tests run on.
pub fn generator_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("the generator's runtime")
}
