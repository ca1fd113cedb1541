//! The NATS driver against a real nats-server (Debian's `nats-server` package), started on an
//! ephemeral loopback port with a configuration each test writes, and stopped by its PID.
//! Ignored by a plain `cargo test` (the server may not be installed); `.ci/run` installs it and
//! runs them with `cargo test -p imbench-loadgen --test nats -- --ignored`.

mod util;

use std::time::Duration;

use imbench_loadgen::driver::nats::NatsTarget;
use imbench_loadgen::{RunError, ServerSpec};
use util::{
    assert_every_message_accounted, assert_refused_as_misconfigured, assert_tls_trusts_its_ca_only,
    config, imbench_in, run_late_logins, self_signed_cert_for, small_scenario_with, Daemon,
    NatsServer, GROUPS, TINY_TOML,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server; .ci/run installs it and runs these"]
async fn direct_chat_and_groups_over_nats_account_for_every_message() {
    let nats = NatsServer::start("chat", "");
    let scenario = small_scenario_with(30, 20.0, Duration::from_secs(2), GROUPS);
    let outcome = imbench_loadgen::run(config(scenario, nats.target("")))
        .await
        .expect("a run against nats-server");
    // Acks are the PONG after each batch; echo is off, so no member hears its own group message.
    assert_every_message_accounted(&outcome.report, "nats", 30);
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
    let dir = nats.daemon.dir.clone();
    std::fs::write(dir.join("s.toml"), TINY_TOML).unwrap();
    let url = nats.url("");
    let run = [
        "run",
        "s.toml",
        "--target",
        &url,
        "--out",
        "r",
        "--progress",
        "quiet",
    ];
    let (out, text) = imbench_in(&dir, &run);
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
    let (out, text) = imbench_in(&dir, &["run", "files.toml", "--target", &url, "--out", "f"]);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("carries no files"), "{text}");

    // The flags of imbench's own server do not go with another system's target.
    let (out, _) = imbench_in(&dir, &["run", "--target", &url, "--transport", "tcp"]);
    assert_eq!(out.status.code(), Some(2));

    // Core NATS keeps nothing for a client away on a planned disconnect: a file without SLOs
    // is not judged on `lost` against it, and says so; its other accounting still is.
    let churn = TINY_TOML.replace("[slo]\nlost = \"== 0\"\n", "")
        + "[churn]\nfraction = 0.5\nrate = 4.0\noffline = \"300ms\"\n";
    std::fs::write(dir.join("churn.toml"), churn).unwrap();
    let run = ["run", "churn.toml", "--target", &url, "--out", "c"];
    let (out, text) = imbench_in(&dir, &run);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("is not judged against this target"), "{text}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("c/report.json")).unwrap()).unwrap();
    let run = &report["runs"][0];
    assert_eq!(run["slo_lifted"], serde_json::json!(["lost == 0"]));
    let judged: Vec<&str> = run["slo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["expr"].as_str().unwrap())
        .collect();
    assert_eq!(judged, ["duplicated == 0", "corrupted == 0"]);
    // The scenario, shared by every target of a run, keeps it: another target's run is judged
    // on it.
    assert!(
        report["scenario"]["slo"].to_string().contains("lost == 0"),
        "{}",
        report["scenario"]["slo"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server; .ci/run installs it and runs these"]
async fn a_nats_server_that_goes_away_mid_run_makes_the_run_invalid() {
    let mut nats = NatsServer::start("gone", "");
    let scenario = small_scenario_with(20, 10.0, Duration::from_secs(4), "");
    let run = tokio::spawn(imbench_loadgen::run(config(scenario, nats.target(""))));
    // Clients connect within 200 ms, warm up for a second, then measure: stop the server
    // while they send.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let _ = nats.daemon.child.kill();
    let outcome = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the run ends by itself")
        .expect("the run's task")
        .expect("a report");
    let report = outcome.report;
    let c = &report.runs[0].counters;
    assert_eq!(report.verdict, imbench_loadgen::Verdict::Invalid);
    // NATS closes without a word; each client still sees its connection end.
    assert_eq!(c.disconnects, 20, "{c:?}");
    assert!(
        report.runs[0]
            .problems
            .iter()
            .any(|p| p.contains("closed the connection")),
        "{:?}",
        report.runs[0].problems
    );
}

#[test]
#[ignore = "needs nats-server; .ci/run installs it and runs these"]
fn a_comparison_checks_every_target_before_the_first_runs() {
    let nats = NatsServer::start("legs", "");
    let dir = nats.daemon.dir.clone();
    let started = std::time::Instant::now();
    // Nothing listens on port 1: the second target is unreachable, and nothing runs.
    let (out, text) = imbench_in(
        &dir,
        &[
            "run",
            "--duration",
            "30s",
            "--out",
            "r",
            "--progress",
            "quiet",
            "--target",
            &nats.url(""),
            "--target",
            "nats://127.0.0.1:1",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the first target ran first"
    );
    assert!(!dir.join("r/report.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server; .ci/run installs it and runs these"]
async fn two_shards_load_one_nats_server_and_merge_into_one_report() {
    let nats = NatsServer::start("shards", "");
    let shard = |index| {
        let mut c = config(
            small_scenario_with(12, 10.0, Duration::from_millis(1500), ""),
            nats.target(""),
        );
        c.shard = Some(imbench_loadgen::Shard { index, count: 2 });
        imbench_loadgen::run(c)
    };
    let (one, two) = tokio::join!(shard(1), shard(2));
    let (one, two) = (one.expect("shard 1").report, two.expect("shard 2").report);
    assert_eq!(one.runs[0].counters.clients, 6);
    let merged = imbench_loadgen::report::merge::merge(&[one, two]).expect("a merge");
    let m = &merged.runs[0].counters;
    assert_eq!(m.clients, 12);
    assert!(m.sent > 100, "{m:?}");
    assert_eq!((m.delivered, m.lost), (m.sent, 0), "{m:?}");
}

/// Two runs at once on one subject prefix hear each other's messages: each tells them from its
/// own by the run's tag in the body (the same senders and sequence numbers, so without it the
/// other's copies were taken for deliveries and its own then counted twice), and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server; .ci/run installs it and runs these"]
async fn two_runs_at_once_on_one_prefix_tell_each_others_messages_apart() {
    let nats = NatsServer::start("two-runs", "");
    let run = || {
        let scenario = small_scenario_with(10, 10.0, Duration::from_millis(1500), "");
        imbench_loadgen::run(config(scenario, nats.target("")))
    };
    let (one, two) = tokio::join!(run(), run());
    for outcome in [one.expect("run 1"), two.expect("run 2")] {
        let run = &outcome.report.runs[0];
        let c = &run.counters;
        assert_eq!((c.duplicated, c.lost), (0, 0), "{c:?}");
        assert!(
            c.corrupted > 0,
            "the other run's messages were not told apart: {c:?}"
        );
        assert!(
            run.problems.iter().any(|p| p.contains("of another run")),
            "{:?}",
            run.problems
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server; .ci/run installs it and runs these"]
async fn tls_carries_the_chat_and_a_certificate_not_trusted_is_a_usage_error() {
    let certs = Daemon::folder("nats-tls-certs");
    let (cert, key) = self_signed_cert_for(&certs, &["127.0.0.1"]);
    let nats = NatsServer::start(
        "tls",
        &format!(
            "tls {{ cert_file: \"{}\", key_file: \"{}\" }}",
            cert.display(),
            key.display()
        ),
    );
    let tls = |host: &str, options: &str| {
        let url = format!("nats+tls://{host}:{}{options}", nats.port);
        ServerSpec::Nats(NatsTarget::parse(&url).expect("a nats+tls target"))
    };
    assert_tls_trusts_its_ca_only(&tls, &cert, &certs, "nats-tls").await;
    let small = small_scenario_with(4, 1.0, Duration::from_secs(1), "");
    // A plain client is told the server wants TLS.
    let plain = imbench_loadgen::run(config(small, nats.target(""))).await;
    assert_refused_as_misconfigured(plain, &["requires TLS", "nats+tls://"]);
    drop(nats);
    let _ = std::fs::remove_dir_all(certs);
}

/// A NATS server paused for longer than a few seconds as the run begins: its logins wait as
/// long as `connect_timeout` allows (INFO came after a 3 s wait of the driver's own before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server; .ci/run installs it and runs these"]
async fn a_paused_server_gets_the_whole_connect_timeout() {
    let nats = NatsServer::start("paused", "");
    util::assert_a_paused_server_gets_the_whole_connect_timeout(
        nats.daemon.child.id(),
        nats.target(""),
    )
    .await;
}

/// A server that requires a client certificate (`verify: true`) is said to, as a usage error:
/// imbench presents none, and the server's alert is no sign of a wrong port or a server out
/// of reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server; .ci/run installs it and runs these"]
async fn a_server_that_requires_a_client_certificate_is_said_to() {
    let certs = Daemon::folder("nats-verify-certs");
    let (cert, key) = self_signed_cert_for(&certs, &["127.0.0.1"]);
    let nats = NatsServer::start(
        "verify",
        &format!(
            "tls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\", verify: true }}",
            cert.display(),
            key.display(),
            cert.display()
        ),
    );
    let url = format!("nats+tls://127.0.0.1:{}?ca={}", nats.port, cert.display());
    let target = ServerSpec::Nats(NatsTarget::parse(&url).expect("a nats+tls target"));
    let small = small_scenario_with(4, 1.0, Duration::from_secs(1), "");
    let refused = imbench_loadgen::run(config(small, target)).await;
    assert_refused_as_misconfigured(
        refused,
        &["asks for a client certificate", "imbench presents none"],
    );
    drop(nats);
    let _ = std::fs::remove_dir_all(certs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server; .ci/run installs it and runs these"]
async fn jetstream_acks_each_message_once_stored_and_a_server_without_it_is_named() {
    let store = Daemon::folder("nats-jetstream-store");
    let monitor = util::free_port();
    let nats = NatsServer::start(
        "jetstream",
        &format!(
            "jetstream {{ store_dir: \"{}\" }}\nhttp: \"127.0.0.1:{monitor}\"",
            store.display()
        ),
    );
    let jetstream = |path: &str, storage: &str| {
        let url = format!("{}{path}?jetstream={storage}", nats.url(""));
        ServerSpec::Nats(NatsTarget::parse(&url).expect("a jetstream target"))
    };
    let scenario = || small_scenario_with(30, 20.0, Duration::from_secs(2), GROUPS);
    let outcome = imbench_loadgen::run(config(scenario(), jetstream("", "file")))
        .await
        .expect("a run into a JetStream stream on disk");
    // Acks are JetStream's publish acknowledgements; delivery is core NATS's, as without it.
    assert_every_message_accounted(&outcome.report, "nats-jetstream-file", 30);
    // The stream kept them: JetStream's own count (its monitoring page) holds every message
    // acked (and the warm-up's, which the counters leave out).
    let jsz = http_get(monitor, "/jsz");
    let json: serde_json::Value = serde_json::from_str(&jsz).expect("jsz is JSON");
    let stored = json["messages"].as_u64().expect("a message count");
    let acked = outcome.report.runs[0].counters.acked;
    assert!(
        stored >= acked && acked > 0,
        "stored {stored}, acked {acked}"
    );
    // In memory, by default, a stream of its own beside the one on disk.
    let memory = imbench_loadgen::run(config(scenario(), jetstream("", "memory")))
        .await
        .expect("a run into a JetStream stream in memory, beside the one on disk");
    assert_every_message_accounted(&memory.report, "nats-jetstream-memory", 30);
    // The same stream with other options is refused, naming how to clear it.
    let other =
        imbench_loadgen::run(config(scenario(), jetstream("/imbench-file", "memory"))).await;
    assert_refused_as_misconfigured(other, &["nats stream rm imbench-file"]);

    // A JetStream with less room than the stream may take says how much it needs.
    let small_store = Daemon::folder("nats-jetstream-small");
    let cramped = NatsServer::start(
        "jetstream-small",
        &format!(
            "jetstream {{ store_dir: \"{}\", max_memory_store: 64MB }}",
            small_store.display()
        ),
    );
    let url = format!("{}?jetstream=memory", cramped.url(""));
    let target = ServerSpec::Nats(NatsTarget::parse(&url).expect("a jetstream target"));
    let small = small_scenario_with(4, 1.0, Duration::from_secs(1), "");
    let refused = imbench_loadgen::run(config(small, target)).await;
    assert_refused_as_misconfigured(refused, &["up to 1024 MiB", "max_memory_store"]);
    drop(cramped);
    let _ = std::fs::remove_dir_all(small_store);

    let plain = NatsServer::start("no-jetstream", "");
    let url = format!("{}?jetstream=memory", plain.url(""));
    let target = ServerSpec::Nats(NatsTarget::parse(&url).expect("a jetstream target"));
    let small = small_scenario_with(4, 1.0, Duration::from_secs(1), "");
    let refused = imbench_loadgen::run(config(small, target)).await;
    assert_refused_as_misconfigured(refused, &["does not run JetStream", "-js"]);
    drop(nats);
    let _ = std::fs::remove_dir_all(store);
}

/// The body of `GET path` from a local HTTP server on `port` (nats-server's monitoring).
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("monitoring port");
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("request");
    let mut all = String::new();
    s.read_to_string(&mut all).expect("response");
    all.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server; .ci/run installs it and runs these"]
async fn a_ramp_up_shorter_than_the_logins_says_why_messages_were_lost() {
    let nats = NatsServer::start("late", "");
    let dir = nats.daemon.dir.clone();
    // All at once, one login at a time: the last clients are in well after sending began,
    // their partners send to them before, and core NATS has nobody to give those messages to.
    let (run, text) = run_late_logins(&dir, &nats.url(""));
    assert!(run.counters.lost > 0, "{text}");
    assert!(
        text.contains("logged in only after sending had begun"),
        "{text}"
    );
    assert!(
        run.notes
            .iter()
            .any(|n| n.contains("logged in only after sending had begun")),
        "{:?}",
        run.notes
    );
}

/// A server whose max_payload is below the scenario's largest message is refused before the
/// run, from its INFO: it would close every client's connection at the first such message, and
/// the run would read as a server gone.
#[tokio::test]
#[ignore = "needs nats-server; .ci/run installs it and runs these"]
async fn messages_larger_than_the_servers_max_payload_are_refused_before_the_run() {
    let nats = NatsServer::start("max-payload", "max_payload: 512");
    let sized = |bytes: u64| {
        let mut s = small_scenario_with(4, 5.0, Duration::from_secs(1), "");
        s.direct.size = imbench_loadgen::config::scenario::SizeDist::Fixed { bytes };
        s
    };
    util::assert_refused_as_misconfigured(
        imbench_loadgen::run(config(sized(1024), nats.target(""))).await,
        &["at most 512 bytes", "max_payload", "up to 1040 bytes"],
    );
    // Up to the limit with the envelope, it runs.
    let outcome = imbench_loadgen::run(config(sized(496), nats.target("")))
        .await
        .expect("a run within max_payload");
    let c = &outcome.report.runs[0].counters;
    assert_eq!((c.lost, c.connect_failures), (0, 0), "{c:?}");
}

/// Runs `imbench run --repeat 3` in `dir` with `targets`, killing `victim` once the first
/// run's report is written: the command's exit code and words, and repeat.json's run count.
fn repeat_losing(
    dir: &std::path::Path,
    targets: &[String],
    victim: &mut std::process::Child,
) -> (Option<i32>, String, Option<u64>) {
    std::fs::write(dir.join("s.toml"), TINY_TOML).expect("write the scenario");
    let mut args: Vec<&str> = vec!["run", "s.toml", "--repeat", "3", "--out", "r"];
    for t in targets {
        args.extend(["--target", t]);
    }
    let child = std::process::Command::new(util::imbench_bin())
        .args(&args)
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("imbench runs");
    let first = dir.join("r/run-1/report.json");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !first.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = victim.kill();
    let _ = victim.wait();
    let out = child.wait_with_output().expect("imbench ends");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let runs = std::fs::read_to_string(dir.join("r/repeat.json"))
        .ok()
        .and_then(|json| serde_json::from_str::<serde_json::Value>(&json).ok())
        .and_then(|v| v["runs"].as_u64());
    (out.status.code(), text, runs)
}

#[test]
#[ignore = "needs nats-server and mosquitto; .ci/run installs them and runs these"]
fn a_repeat_whose_target_goes_away_keeps_the_spread_of_what_ran() {
    // One of two targets gone after the first run: the other goes on being measured, and the
    // spread is of all three runs (the repeats used to end at the second, with no spread).
    let nats = NatsServer::start("repeat-both", "");
    let mut mqtt = util::Mosquitto::start("repeat-both", "allow_anonymous true");
    let dir = Daemon::folder("repeat-both");
    let targets = [nats.url(""), format!("broker={}", mqtt.url("", ""))];
    let (code, text, runs) = repeat_losing(&dir, &targets, &mut mqtt.daemon.child);
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains("broker: the run could not take place"),
        "{text}"
    );
    assert_eq!(runs, Some(3), "{text}");
    // The target gone keeps its first run's figures in the spread, none in the others.
    let spread: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("r/repeat.json")).expect("repeat.json"),
    )
    .expect("JSON");
    let broker = spread["figures"]
        .as_array()
        .expect("figures")
        .iter()
        .find(|f| f["transport"] == "broker" && f["figure"] == "direct.p50")
        .unwrap_or_else(|| panic!("no row of the target gone: {spread}"));
    assert!(broker["values"][0].is_f64(), "{broker}");
    assert!(
        broker["values"][1].is_null() && broker["values"][2].is_null(),
        "{broker}"
    );
    assert!(text.contains("broker     direct.p50"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
    // Its only target gone: the repeats stop, with the spread of the runs before.
    let mut alone = NatsServer::start("repeat-alone", "");
    let dir = Daemon::folder("repeat-alone");
    let (code, text, runs) = repeat_losing(&dir, &[alone.url("")], &mut alone.daemon.child);
    assert_eq!(code, Some(3), "{text}");
    // Run 2 either found the server gone or lost it part-way: either way it is no whole run.
    assert!(
        text.contains("run 2 could not take place; stopping the repeats")
            || text.contains("run 2 was stopped before its measured period ended"),
        "{text}"
    );
    assert_eq!(runs, Some(1), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
    drop(nats);
}

// Needs no server: it runs with every `cargo test`.
#[tokio::test]
async fn a_port_that_answers_in_another_protocol_is_a_usage_error_said_as_such() {
    // Bytes without a line and then the end, as imbench's own server sends its Error frame at
    // its Hello timeout; and a port that closes without a word (a server at its limit).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (port, silent_port) = (
        listener.local_addr().unwrap().port(),
        silent.local_addr().unwrap().port(),
    );
    std::thread::spawn(move || {
        use std::io::Write;
        for mut stream in listener.incoming().flatten().take(8) {
            let _ = stream.write_all(&[0, 0, 0, 9, 7, 1, 2, 3, 4, 5, 6, 7, 8]);
        }
    });
    std::thread::spawn(move || {
        for stream in silent.incoming().flatten().take(8) {
            drop(stream);
        }
    });
    let scenario = small_scenario_with(4, 1.0, Duration::from_secs(1), "");
    let target = |port: u16| {
        ServerSpec::Nats(NatsTarget::parse(&format!("nats://127.0.0.1:{port}")).unwrap())
    };
    match imbench_loadgen::run(config(scenario.clone(), target(port))).await {
        Err(e) => {
            assert!(
                e.to_string()
                    .contains("is not a NATS server: it sent 13 bytes"),
                "{e}"
            );
            assert_eq!(e.exit_code(), imbench_loadgen::exit_code::USAGE, "{e}");
        }
        Ok(_) => panic!("a run went ahead against a port that is not NATS"),
    }
    match imbench_loadgen::run(config(scenario, target(silent_port))).await {
        Err(e) => {
            assert!(
                e.to_string()
                    .contains("closed the connection before saying anything"),
                "{e}"
            );
            assert!(!e.to_string().contains("at once"), "{e}");
        }
        Ok(_) => panic!("a run went ahead against a port that closes at once"),
    }
}
