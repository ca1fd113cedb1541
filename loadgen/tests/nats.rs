//! The NATS driver against a real nats-server (Debian's `nats-server` package), started on an
//! ephemeral loopback port with a configuration each test writes, and stopped by its PID.
//! Ignored by a plain `cargo test` (the server may not be installed); `.ci/run` installs it and
//! runs them with `cargo test -p imbench-loadgen --test nats -- --ignored`.

mod util;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use imbench_loadgen::driver::nats::NatsTarget;
use imbench_loadgen::{RunError, ServerSpec, Verdict};
use util::{config, small_scenario_with};

/// A nats-server of this test's own; stopped (by PID) when dropped.
struct NatsServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl NatsServer {
    /// Starts nats-server with `conf` (a listen address is added) and waits until it listens.
    fn start(name: &str, conf: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("imbench-nats-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test folder");
        let conf_path = dir.join("nats.conf");
        // Port -1: the server picks a free one and logs it.
        std::fs::write(&conf_path, format!("host: 127.0.0.1\nport: -1\n{conf}\n"))
            .expect("write nats.conf");
        let log_path = dir.join("nats.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting nats-server ({e}): install Debian's nats-server package")
            });
        let mut server = NatsServer {
            child,
            port: 0,
            dir,
        };
        server.port = wait_for_port(&log_path, &mut server.child);
        server
    }

    fn url(&self, credentials: &str) -> String {
        format!("nats://{credentials}127.0.0.1:{}", self.port)
    }

    fn target(&self, credentials: &str) -> ServerSpec {
        ServerSpec::Nats(NatsTarget::parse(&self.url(credentials)).expect("a nats target"))
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The port nats-server says it listens on, read from its log.
fn wait_for_port(log: &Path, child: &mut Child) -> u16 {
    const NEEDLE: &str = "Listening for client connections on 127.0.0.1:";
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(port) = text.lines().find_map(|l| {
            let at = l.find(NEEDLE)? + NEEDLE.len();
            l[at..].trim().parse().ok()
        }) {
            return port;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("nats-server exited ({status}): {text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nats-server did not listen within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server; .ci/run installs it and runs these"]
async fn direct_chat_and_groups_over_nats_account_for_every_message() {
    let nats = NatsServer::start("chat", "");
    let scenario = small_scenario_with(
        30,
        20.0,
        Duration::from_secs(2),
        "[groups]\ncount = 3\nmembers = { dist = \"fixed\", size = 6 }\nrate = 10.0\n",
    );
    let outcome = imbench_loadgen::run(config(scenario, nats.target("")))
        .await
        .expect("a run against nats-server");
    let report = outcome.report;
    let run = &report.runs[0];
    let c = &run.counters;
    assert_eq!(report.verdict, Verdict::Ok, "{:?}", report.invalid_reasons);
    assert_eq!(run.transport, "nats");
    assert_eq!((c.clients, c.connect_failures, c.disconnects), (30, 0, 0));
    // Every send was acked by the PONG after it, and delivered once to its recipient.
    assert!(c.sent > 500, "{c:?}");
    assert_eq!(c.acked, c.sent, "{c:?}");
    assert_eq!(c.expected, c.delivered, "{c:?}");
    assert_eq!((c.lost, c.duplicated, c.corrupted, c.errors), (0, 0, 0, 0));
    // Group messages reached every member but their sender (echo is off).
    let group = run.group.as_ref().expect("group accounting");
    assert!(group.counts.delivered_expected > 100, "{group:?}");
    assert_eq!(
        (
            group.counts.lost,
            group.counts.incomplete,
            group.counts.unexpected
        ),
        (0, 0, 0),
        "{group:?}"
    );
    for metric in ["connect", "direct", "ack", "group", "fanout"] {
        assert!(run.metrics[metric].count > 0, "{metric} has no samples");
    }
    assert!(run.problems.is_empty(), "{:?}", run.problems);
}

#[tokio::test]
#[ignore = "needs nats-server; .ci/run installs it and runs these"]
async fn a_wrong_password_is_refused_before_the_run_as_a_usage_error() {
    let nats = NatsServer::start("auth", "authorization { user: bob, password: s3cret }");
    let scenario = small_scenario_with(4, 1.0, Duration::from_secs(1), "");
    match imbench_loadgen::run(config(scenario.clone(), nats.target("bob:wrong@"))).await {
        Err(e @ RunError::Refused { .. }) => {
            assert!(e.to_string().contains("Authorization Violation"), "{e}");
            assert_eq!(e.exit_code(), imbench_loadgen::exit_code::USAGE);
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a run with a wrong password went ahead"),
    }
    // The right one logs in.
    let outcome = imbench_loadgen::run(config(scenario, nats.target("bob:s3cret@")))
        .await
        .expect("the right password");
    assert_eq!(outcome.report.runs[0].counters.connect_failures, 0);
}

#[test]
#[ignore = "needs nats-server; .ci/run installs it and runs these"]
fn imbench_run_takes_a_nats_target_and_refuses_what_nats_cannot_carry() {
    let nats = NatsServer::start("cli", "");
    let dir = nats.dir.clone();
    let scenario = dir.join("s.toml");
    std::fs::write(
        &scenario,
        "name = \"tiny\"\nclients = 10\nramp_up = \"100ms\"\nwarmup = \"200ms\"\nduration = \"1s\"\ndrain = \"3s\"\nseed = 5\n\
         [direct]\nrate = 20.0\narrival = \"constant\"\nsize = { dist = \"fixed\", bytes = \"64B\" }\n\
         partners = { pick = \"ring\", count = 2 }\n[slo]\nlost = \"== 0\"\n\
         [generator]\nmax_cpu_busy = 1.0\nmax_cpu_wait = \"1h\"\nmax_hiccup = \"1h\"\n",
    )
    .unwrap();
    let imbench = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_imbench"))
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("imbench runs")
    };
    let url = nats.url("");
    let out = imbench(&[
        "run",
        "s.toml",
        "--target",
        &url,
        "--out",
        "r",
        "--progress",
        "quiet",
    ]);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("tiny over nats"), "{text}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("r/report.json")).unwrap()).unwrap();
    assert_eq!(report["runs"][0]["transport"], "nats");
    assert_eq!(report["runs"][0]["counters"]["lost"], 0);

    // Files have no form on core NATS: refused before anything runs.
    std::fs::write(
        dir.join("files.toml"),
        "name = \"f\"\nclients = 4\nramp_up = \"100ms\"\nwarmup = \"0s\"\nduration = \"1s\"\ndrain = \"1s\"\nseed = 1\n[files]\nrate = 0.5\nsize = { dist = \"fixed\", bytes = \"4KiB\" }\n",
    )
    .unwrap();
    let out = imbench(&["run", "files.toml", "--target", &url, "--out", "f"]);
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("carries no files"), "{text}");

    // The flags of imbench's own server do not go with another system's target.
    let out = imbench(&["run", "--target", &url, "--transport", "tcp"]);
    assert_eq!(out.status.code(), Some(2));
}
