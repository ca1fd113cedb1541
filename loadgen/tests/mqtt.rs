//! The MQTT driver against a real mosquitto (Debian's `mosquitto` package), started on a free
//! loopback port with a configuration each test writes, and stopped by its PID. Ignored by a
//! plain `cargo test` (the broker may not be installed); `.ci/run` installs it and runs them
//! with `cargo test -p imbench-loadgen --test mqtt -- --ignored`.

mod util;

use std::process::Command;
use std::time::Duration;

use imbench_loadgen::driver::mqtt::MqttTarget;
use imbench_loadgen::{RunError, ServerSpec, Verdict};
use util::{
    assert_every_message_accounted, assert_tls_trusts_its_ca_only, config, imbench_in,
    self_signed_cert_for, small_scenario_with, Daemon, Mosquitto, NatsServer, GROUPS, TINY_TOML,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto; .ci/run installs it and runs these"]
async fn direct_chat_and_groups_at_qos_1_account_for_every_message() {
    let broker = Mosquitto::start("chat", "allow_anonymous true");
    let scenario = small_scenario_with(30, 20.0, Duration::from_secs(2), GROUPS);
    let outcome = imbench_loadgen::run(config(scenario, broker.target("", "")))
        .await
        .expect("a run against mosquitto");
    // Acks are PUBACKs; the broker sends members their own group messages, which must not count.
    assert_every_message_accounted(&outcome.report, "mqtt", 30);
}

/// A broker paused for longer than rumqttc's 5 s network timeout as the run begins: its
/// logins wait as long as `connect_timeout` allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto; .ci/run installs it and runs these"]
async fn a_paused_broker_gets_the_whole_connect_timeout() {
    let broker = Mosquitto::start("paused", "allow_anonymous true");
    util::assert_a_paused_server_gets_the_whole_connect_timeout(
        broker.daemon.child.id(),
        broker.target("", ""),
    )
    .await;
}

/// QoS 0 has no answer of its own: the broker's PINGRESP to a ping written after a message
/// acks it. Every message is acked once (none twice, none left waiting, so the drain ends) and,
/// on loopback where nothing is dropped, delivered; groups too; over both versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto; .ci/run installs it and runs these"]
async fn qos_0_is_acked_by_the_brokers_ping_answers_over_both_versions() {
    let broker = Mosquitto::start("qos0", "allow_anonymous true");
    for (query, name) in [("?qos=0", "mqtt-qos0"), ("?version=5&qos=0", "mqtt5-qos0")] {
        let scenario = small_scenario_with(30, 20.0, Duration::from_secs(2), GROUPS);
        let outcome = imbench_loadgen::run(config(scenario, broker.target("", query)))
            .await
            .expect("a run at QoS 0");
        assert_every_message_accounted(&outcome.report, name, 30);
        // The drain ended as soon as everything was answered, not at its limit.
        let c = &outcome.report.runs[0].counters;
        assert_eq!(c.acked + c.rejected, c.sent, "{c:?}");
    }
    // An MQTT 5 broker that shortens the keep-alive would have the library's pings meet the
    // driver's: refused before the run, saying so. 3.1.1 has no such override.
    let short = Mosquitto::start("qos0-keepalive", "allow_anonymous true\nmax_keepalive 60");
    let scenario = small_scenario_with(4, 5.0, Duration::from_secs(1), "");
    match imbench_loadgen::run(config(
        scenario.clone(),
        short.target("", "?version=5&qos=0"),
    ))
    .await
    {
        Err(e) => {
            assert!(e.to_string().contains("Server Keep Alive"), "{e}");
            assert_eq!(e.exit_code(), imbench_loadgen::exit_code::USAGE, "{e}");
        }
        Ok(_) => panic!("QoS 0 went ahead beside a 60 s keep-alive"),
    }
    let outcome = imbench_loadgen::run(config(scenario, short.target("", "?qos=0")))
        .await
        .expect("QoS 0 over 3.1.1 beside a broker's max_keepalive");
    let c = &outcome.report.runs[0].counters;
    assert_eq!((c.acked, c.lost), (c.sent, 0), "{c:?}");

    // At most once: a message a dropped connection took with it is not sent again. Messages
    // it took have no answer, and never will: the drain does not wait for one, and a broker
    // that answered everything else is not called hung (a persistent session left one or two
    // messages a run so before).
    // scenarios/churn.toml's load, whose runs showed it.
    let churn = "[churn]\nfraction = 0.2\nrate = 20.0\noffline = \"300ms\"\nabrupt = 0.5\n";
    for query in ["?qos=0", "?qos=0&session=persistent"] {
        let mut scenario = small_scenario_with(200, 10.0, Duration::from_secs(3), churn);
        // Shorter than the watchdog's limit, as in scenarios/churn.toml: the drain's silence is
        // what is judged.
        scenario.drain = Duration::from_secs(3);
        let outcome = imbench_loadgen::run(config(scenario, broker.target("", query)))
            .await
            .expect("churn at QoS 0");
        let c = &outcome.report.runs[0].counters;
        assert!(c.reconnects >= 10, "{query}: {c:?}");
        assert_eq!(
            (c.resent, c.redeliveries, c.duplicated),
            (0, 0, 0),
            "{query}: {c:?}"
        );
        // Every message answered, or counted as taken unanswered by a dropped connection.
        assert_eq!(
            c.acked + c.rejected + c.dropped_unanswered,
            c.sent,
            "{query}: {c:?}"
        );
        let hung = |r: &String| r.contains("answered nothing");
        assert!(
            !outcome.report.invalid_reasons.iter().any(hung),
            "{query}: {:?}",
            outcome.report.invalid_reasons
        );
    }
}

/// A broker that goes away under the run: each client's loss is one error, with its cause,
/// however many of its sends then find the session closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto; .ci/run installs it and runs these"]
async fn a_broker_that_dies_costs_each_client_one_error() {
    for query in ["?qos=0", ""] {
        let broker = Mosquitto::start("dies", "allow_anonymous true");
        let scenario = small_scenario_with(10, 20.0, Duration::from_secs(3), "");
        let run = tokio::spawn(imbench_loadgen::run(config(
            scenario,
            broker.target("", query),
        )));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        drop(broker);
        let outcome = run.await.expect("the run's task").expect("a report");
        let c = &outcome.report.runs[0].counters;
        assert_eq!(c.disconnects, 10, "{query}: {c:?}");
        assert_eq!(c.errors, c.disconnects, "{query}: {c:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto; .ci/run installs it and runs these"]
async fn qos_2_is_acked_by_pubcomp_and_delivers_exactly_once() {
    let broker = Mosquitto::start("qos2", "allow_anonymous true");
    let scenario = small_scenario_with(20, 20.0, Duration::from_secs(2), "");
    let outcome = imbench_loadgen::run(config(scenario, broker.target("", "?qos=2")))
        .await
        .expect("a run at QoS 2");
    let c = &outcome.report.runs[0].counters;
    assert_eq!(outcome.report.verdict, Verdict::Ok);
    assert!(c.sent > 300, "{c:?}");
    assert_eq!((c.acked, c.delivered), (c.sent, c.sent), "{c:?}");
    assert_eq!((c.lost, c.duplicated), (0, 0), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto; .ci/run installs it and runs these"]
async fn a_persistent_session_keeps_what_arrives_while_a_client_is_away() {
    let broker = Mosquitto::start("churn", "allow_anonymous true");
    // A third of the clients drop their connection (half of them abruptly) and come back
    // 300 ms later; the broker keeps their QoS 1 messages meanwhile.
    let churn = "[churn]\nfraction = 0.3\nrate = 8.0\noffline = \"300ms\"\nabrupt = 0.5\n";
    let scenario = small_scenario_with(30, 20.0, Duration::from_secs(3), churn);
    let outcome = imbench_loadgen::run(config(
        scenario.clone(),
        broker.target("", "?session=persistent"),
    ))
    .await
    .expect("a run with persistent sessions");
    let c = &outcome.report.runs[0].counters;
    assert!(c.reconnects >= 10, "{c:?}");
    assert_eq!(c.expected, c.delivered, "{c:?}");
    assert_eq!((c.lost, c.duplicated), (0, 0), "{c:?}");
    // With clean sessions the same schedule loses what was sent to absent clients, and the
    // report says why.
    let outcome = imbench_loadgen::run(config(scenario, broker.target("", "")))
        .await
        .expect("a run with clean sessions");
    let run = &outcome.report.runs[0];
    assert!(run.counters.lost > 0, "{:?}", run.counters);
    assert!(
        run.notes.iter().any(|n| n.contains("keeps nothing")),
        "{:?}",
        run.notes
    );
}

#[tokio::test]
#[ignore = "needs mosquitto; .ci/run installs it and runs these"]
async fn a_wrong_password_is_refused_before_the_run_as_a_usage_error() {
    let dir = Daemon::folder("mosquitto-passwords");
    let passwords = dir.join("passwords");
    let made = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwords)
        .args(["bob", "s3cret"])
        .status()
        .expect("mosquitto_passwd (Debian's mosquitto)");
    assert!(made.success());
    let broker = Mosquitto::start(
        "auth",
        &format!(
            "allow_anonymous false\npassword_file {}",
            passwords.display()
        ),
    );
    let scenario = small_scenario_with(4, 1.0, Duration::from_secs(1), "");
    match imbench_loadgen::run(config(scenario.clone(), broker.target("bob:wrong@", ""))).await {
        Err(e @ RunError::Refused { .. }) => {
            assert!(e.to_string().contains("user and password"), "{e}");
            assert_eq!(e.exit_code(), imbench_loadgen::exit_code::USAGE);
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a run with a wrong password went ahead"),
    }
    let outcome = imbench_loadgen::run(config(scenario, broker.target("bob:s3cret@", "")))
        .await
        .expect("the right password");
    assert_eq!(outcome.report.runs[0].counters.connect_failures, 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
#[ignore = "needs mosquitto; .ci/run installs it and runs these"]
fn imbench_run_takes_an_mqtt_target_at_every_qos() {
    let broker = Mosquitto::start("cli", "allow_anonymous true");
    let dir = broker.daemon.dir.clone();
    std::fs::write(dir.join("s.toml"), TINY_TOML).unwrap();
    let url = broker.url("", "");
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
    assert!(text.contains("tiny over mqtt"), "{text}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("r/report.json")).unwrap()).unwrap();
    assert_eq!(report["runs"][0]["transport"], "mqtt");

    let qos0 = broker.url("", "?qos=0");
    let (out, text) = imbench_in(&dir, &["run", "s.toml", "--target", &qos0]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("tiny over mqtt-qos0"), "{text}");
    let (out, text) = imbench_in(
        &dir,
        &["run", "s.toml", "--target", &broker.url("", "?qos=3")],
    );
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("qos=0, qos=1 (the default) or qos=2"),
        "{text}"
    );
}

#[test]
#[ignore = "needs mosquitto; .ci/run installs it and runs these"]
fn a_second_run_on_the_same_prefix_is_named_as_the_likely_cause_of_every_client_cut_off() {
    let broker = Mosquitto::start("taken", "allow_anonymous true");
    let dir = broker.daemon.dir.clone();
    // The first run lasts long enough for the second to log its clients in meanwhile.
    let long = TINY_TOML.replace("duration = \"1s\"", "duration = \"8s\"");
    std::fs::write(dir.join("long.toml"), long).unwrap();
    std::fs::write(dir.join("s.toml"), TINY_TOML).unwrap();
    let url = broker.url("", "");
    let second = std::thread::spawn({
        let (dir, url) = (dir.clone(), url.clone());
        move || {
            std::thread::sleep(Duration::from_secs(2));
            imbench_in(
                &dir,
                &["run", "s.toml", "--target", &url, "--progress", "quiet"],
            )
        }
    });
    let first = Command::new(util::imbench_bin())
        .args(["run", "long.toml", "--target", &url, "--progress", "quiet"])
        .current_dir(&dir)
        .output()
        .expect("imbench runs");
    let _ = second.join();
    let text = String::from_utf8_lossy(&first.stdout).to_string()
        + &String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(3), "{text}");
    assert!(
        text.contains("every client (10) lost its connection")
            && text.contains("another run against this broker on the same PREFIX"),
        "{text}"
    );
}

/// The reference server's driver pointed at mosquitto's port: mosquitto resets a connection
/// whose first bytes are not MQTT, with the Hello unread. That is a usage error that names the
/// likely cause, as a close without a word is (it was "cannot reach the server", exit 3); over
/// WebSocket it resets the upgrade request, which says the same.
#[test]
#[ignore = "needs mosquitto; .ci/run installs it and runs these"]
fn the_reference_driver_at_a_brokers_port_is_a_usage_error_naming_mqtt() {
    use std::os::unix::fs::PermissionsExt as _;
    let broker = Mosquitto::start("not-imbench", "allow_anonymous true");
    let dir = broker.daemon.dir.clone();
    std::fs::write(dir.join("s.toml"), TINY_TOML).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, "ab".repeat(32)).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    for (transport, said) in [
        ("tcp", "closed the connection on Hello without an answer"),
        ("ws", "reset the connection on a WebSocket upgrade request"),
    ] {
        let target = format!("imbench+{transport}://127.0.0.1:{}", broker.port);
        let run = [
            "run",
            "s.toml",
            "--target",
            &target,
            "--secret-file",
            "secret",
        ];
        let (out, text) = imbench_in(&dir, &run);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(text.contains(said) && text.contains("mqtt://"), "{text}");
    }
}

/// mosquitto takes a message over its `message_size_limit` from an MQTT 3.1.1 client, acks it
/// and drops it, saying nothing: a scenario file without SLOs is judged on its accounting all
/// the same, and such a run fails (it was called OK, with most messages lost).
#[test]
#[ignore = "needs mosquitto; .ci/run installs it and runs these"]
fn a_broker_dropping_big_messages_fails_a_scenario_without_slos() {
    let broker = Mosquitto::start("size-limit", "allow_anonymous true\nmessage_size_limit 200");
    let dir = broker.daemon.dir.clone();
    let without_slos = TINY_TOML.replace("[slo]\nlost = \"== 0\"\n", "").replace(
        "size = { dist = \"fixed\", bytes = \"64B\" }",
        "size = { dist = \"uniform\", min = \"64B\", max = \"1KiB\" }",
    );
    assert!(!without_slos.contains("[slo]"), "{without_slos}");
    std::fs::write(dir.join("s.toml"), without_slos).unwrap();
    let url = broker.url("", "");
    let run = ["run", "s.toml", "--target", &url, "--out", "r"];
    let (out, text) = imbench_in(&dir, &run);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("has no [slo] table"), "{text}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("r/report.json")).unwrap()).unwrap();
    let c = &report["runs"][0]["counters"];
    assert!(c["lost"].as_u64().unwrap() > 0, "{c}");
    assert_eq!(c["acked"], c["sent"], "{c}");
    assert_eq!(report["verdict"], "slo_failed", "{}", report["verdict"]);
}

/// Over MQTT 5, mosquitto answers a message over its `message_size_limit` with reason 0x95
/// (packet too large), a code MQTT 5 gives no PUBACK: the client cannot read it and the
/// connection is lost. The run says what happened and what to do, not that a packet could not
/// be read "as response for connect".
#[test]
#[ignore = "needs mosquitto; .ci/run installs it and runs these"]
fn a_message_over_the_brokers_size_limit_over_mqtt_5_is_named_packet_too_large() {
    let broker = Mosquitto::start(
        "size-limit-5",
        "allow_anonymous true\nmessage_size_limit 200",
    );
    let dir = broker.daemon.dir.clone();
    let big = TINY_TOML.replace(
        "size = { dist = \"fixed\", bytes = \"64B\" }",
        "size = { dist = \"fixed\", bytes = \"1KiB\" }",
    );
    assert!(big.contains("1KiB"), "{big}");
    std::fs::write(dir.join("s.toml"), big).unwrap();
    let url = broker.url("", "?version=5");
    let (out, text) = imbench_in(&dir, &["run", "s.toml", "--target", &url]);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("reason 0x95, packet too large"), "{text}");
    assert!(!text.contains("response for connect"), "{text}");
    // The broker said why: no guess at a second run on the same prefix.
    assert!(!text.contains("same PREFIX"), "{text}");
}

/// An MQTT 5 broker gives its largest packet in its CONNACK (mosquitto's `max_packet_size`),
/// and the client library will not send a larger one: every client lost its connection at
/// its first large message and the verdict guessed at a broker gone. Refused before the run
/// now, naming both sizes; a scenario whose packets fit runs.
#[test]
#[ignore = "needs mosquitto; .ci/run installs it and runs these"]
fn messages_over_an_mqtt_5_brokers_maximum_packet_are_refused_before_the_run() {
    let broker = Mosquitto::start("max-packet-5", "allow_anonymous true\nmax_packet_size 300");
    let dir = broker.daemon.dir.clone();
    let big = TINY_TOML.replace(
        "size = { dist = \"fixed\", bytes = \"64B\" }",
        "size = { dist = \"uniform\", min = \"64B\", max = \"1KiB\" }",
    );
    assert!(big.contains("1KiB"), "{big}");
    std::fs::write(dir.join("big.toml"), big).unwrap();
    std::fs::write(dir.join("small.toml"), TINY_TOML).unwrap();
    let url = broker.url("", "?version=5");
    let (out, text) = imbench_in(&dir, &["run", "big.toml", "--target", &url, "--out", "big"]);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("at most 300 bytes (Maximum Packet Size in its CONNACK)"),
        "{text}"
    );
    assert!(!dir.join("big").exists(), "{text}");
    let (out, text) = imbench_in(
        &dir,
        &["run", "small.toml", "--target", &url, "--out", "small"],
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
}

#[test]
#[ignore = "needs mosquitto and nats-server; .ci/run installs them and runs these"]
fn several_targets_run_the_same_schedule_side_by_side() {
    let broker = Mosquitto::start("several", "allow_anonymous true");
    let nats = NatsServer::start("several", "");
    let dir = broker.daemon.dir.clone();
    std::fs::write(dir.join("s.toml"), TINY_TOML).unwrap();
    let (nats_url, mqtt_url) = (nats.url(""), broker.url("", ""));
    let (out, text) = imbench_in(
        &dir,
        &[
            "run",
            "s.toml",
            "--progress",
            "quiet",
            "--out",
            "r",
            "--target",
            &nats_url,
            "--target",
            &mqtt_url,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("comparison (10 clients)"), "{text}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("r/report.json")).unwrap()).unwrap();
    let runs = report["runs"].as_array().expect("runs");
    let names: Vec<&str> = runs
        .iter()
        .filter_map(|r| r["transport"].as_str())
        .collect();
    assert_eq!(names, ["nats", "mqtt"]);
    // One seed, one schedule: both systems were sent exactly the same messages.
    let sent: Vec<u64> = runs
        .iter()
        .filter_map(|r| r["counters"]["sent"].as_u64())
        .collect();
    assert!(sent[0] > 100 && sent[0] == sent[1], "{sent:?}");
    for r in runs {
        assert_eq!(r["counters"]["lost"], 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto; .ci/run installs it and runs these"]
async fn a_persistent_session_left_by_an_earlier_run_is_cleared_first() {
    let broker = Mosquitto::start("stale", "allow_anonymous true");
    // Two runs of the same clients with different seeds: their groups differ, and the first
    // run's subscriptions stay in the broker with its persistent sessions.
    for seed in [1, 2] {
        let mut scenario = small_scenario_with(30, 10.0, Duration::from_secs(2), GROUPS);
        scenario.seed = seed;
        let outcome =
            imbench_loadgen::run(config(scenario, broker.target("", "?session=persistent")))
                .await
                .expect("a run with persistent sessions");
        let run = &outcome.report.runs[0];
        let (c, g) = (&run.counters, &run.group.as_ref().expect("groups").counts);
        assert_eq!(
            (c.corrupted, c.lost, g.unexpected),
            (0, 0, 0),
            "seed {seed}: {c:?} {g:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto; .ci/run installs it and runs these"]
async fn mqtts_carries_the_chat_and_a_certificate_not_trusted_is_a_usage_error() {
    let certs = Daemon::folder("mosquitto-tls-certs");
    let (cert, key) = self_signed_cert_for(&certs, &["127.0.0.1"]);
    let broker = Mosquitto::start(
        "tls",
        &format!(
            "allow_anonymous true\ncertfile {}\nkeyfile {}",
            cert.display(),
            key.display()
        ),
    );
    let tls = |host: &str, options: &str| {
        let url = format!("mqtts://{host}:{}{options}", broker.port);
        ServerSpec::Mqtt(MqttTarget::parse(&url).expect("an mqtts target"))
    };
    assert_tls_trusts_its_ca_only(&tls, &cert, &certs, "mqtt-tls").await;
    let small = small_scenario_with(4, 1.0, Duration::from_secs(1), "");
    // A plain client to a TLS listener fails before the run, not in it, and is told of mqtts.
    match imbench_loadgen::run(config(small, broker.target("", ""))).await {
        Err(e) => assert!(e.to_string().contains("mqtts://"), "{e}"),
        Ok(_) => panic!("a plain run went ahead against a TLS listener"),
    }
    drop(broker);
    let _ = std::fs::remove_dir_all(certs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto; .ci/run installs it and runs these"]
async fn mqtt_5_accounts_for_every_message_and_keeps_a_persistent_session() {
    let broker = Mosquitto::start("v5", "allow_anonymous true");
    // Groups over MQTT 5 are subscribed with No Local: a member's own message coming back
    // would count as an error, and the helper wants none.
    let scenario = small_scenario_with(30, 20.0, Duration::from_secs(2), GROUPS);
    let outcome = imbench_loadgen::run(config(scenario, broker.target("", "?version=5")))
        .await
        .expect("a run over MQTT 5");
    assert_every_message_accounted(&outcome.report, "mqtt5", 30);

    let scenario = small_scenario_with(20, 20.0, Duration::from_secs(2), "");
    let outcome = imbench_loadgen::run(config(scenario, broker.target("", "?version=5&qos=2")))
        .await
        .expect("QoS 2 over MQTT 5");
    let c = &outcome.report.runs[0].counters;
    assert!(c.sent > 300, "{c:?}");
    assert_eq!((c.acked, c.delivered), (c.sent, c.sent), "{c:?}");
    assert_eq!((c.lost, c.duplicated), (0, 0), "{c:?}");

    // MQTT 5 ends a session with its connection unless the client asks for an expiry: the
    // messages for clients that are away are kept only because the driver asks.
    let churn = "[churn]\nfraction = 0.3\nrate = 8.0\noffline = \"300ms\"\nabrupt = 0.5\n";
    let scenario = small_scenario_with(30, 20.0, Duration::from_secs(3), churn);
    let outcome = imbench_loadgen::run(config(
        scenario,
        broker.target("", "?version=5&session=persistent"),
    ))
    .await
    .expect("persistent sessions over MQTT 5");
    let run = &outcome.report.runs[0];
    assert_eq!(run.transport, "mqtt5-persistent");
    let c = &run.counters;
    assert!(c.reconnects >= 10, "{c:?}");
    assert_eq!(c.expected, c.delivered, "{c:?}");
    assert_eq!((c.lost, c.duplicated), (0, 0), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto; .ci/run installs it and runs these"]
async fn a_message_an_mqtt_5_broker_refuses_is_counted_rejected_not_lost() {
    // Anonymous clients may write to users' topics and only read groups'.
    let dir = Daemon::folder("mosquitto-acl");
    let acl = dir.join("acl");
    std::fs::write(
        &acl,
        "topic readwrite imbench/u/#\ntopic read imbench/g/#\n",
    )
    .unwrap();
    let broker = Mosquitto::start(
        "v5-acl",
        &format!("allow_anonymous true\nacl_file {}", acl.display()),
    );
    let scenario = small_scenario_with(30, 20.0, Duration::from_secs(2), GROUPS);
    let outcome = imbench_loadgen::run(config(scenario.clone(), broker.target("", "?version=5")))
        .await
        .expect("a run over MQTT 5");
    let run = &outcome.report.runs[0];
    let (c, g) = (&run.counters, run.group.as_ref().expect("groups"));
    // The broker answers each group message with "not authorized": refused, so nobody is
    // owed it. Direct messages go through.
    assert!(g.rejected > 20, "{g:?}");
    assert_eq!(g.acked, 0, "{g:?}");
    assert_eq!((c.lost, g.counts.lost), (0, 0), "{c:?} {g:?}");
    assert!(c.delivered > 300, "{c:?}");
    assert_eq!(c.expected, c.delivered, "{c:?}");

    // MQTT 3.1.1 has no word for it: the broker acknowledges and drops the message, and the
    // run counts it lost.
    let outcome = imbench_loadgen::run(config(scenario.clone(), broker.target("", "")))
        .await
        .expect("a run over MQTT 3.1.1");
    let run = &outcome.report.runs[0];
    let g = run.group.as_ref().expect("groups");
    assert_eq!(g.rejected, 0, "{g:?}");
    assert!(g.counts.lost > 0, "{g:?}");

    // At QoS 2 the MQTT 5 client cannot go on after a refusal (bytebeamio/rumqtt#1060): the
    // session ends and says so, rather than going quiet and having the broker blamed.
    let outcome = imbench_loadgen::run(config(scenario, broker.target("", "?version=5&qos=2")))
        .await
        .expect("a run over MQTT 5 at QoS 2");
    assert_eq!(outcome.report.verdict, Verdict::Invalid);
    let run = &outcome.report.runs[0];
    assert!(
        run.problems
            .iter()
            .any(|p| p.contains("NotAuthorized in its PUBREC") && p.contains("use qos=1")),
        "{:?}",
        run.problems
    );
    drop(broker);
    let _ = std::fs::remove_dir_all(dir);
}

/// A broker whose access rules let clients publish and not read acks everything and delivers
/// nothing, without a word: the run says what to look at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto; .ci/run installs it and runs these"]
async fn a_broker_that_lets_clients_write_and_not_read_is_named_in_a_note() {
    let dir = Daemon::folder("mosquitto-write-only-acl");
    let acl = dir.join("acl");
    std::fs::write(&acl, "topic write imbench/#\n").unwrap();
    let broker = Mosquitto::start(
        "write-only",
        &format!("allow_anonymous true\nacl_file {}", acl.display()),
    );
    let scenario = small_scenario_with(10, 10.0, Duration::from_secs(1), "");
    let outcome = imbench_loadgen::run(config(scenario, broker.target("", "")))
        .await
        .expect("a run against a write-only broker");
    let run = &outcome.report.runs[0];
    let c = &run.counters;
    assert!(c.acked > 0 && c.delivered == 0, "{c:?}");
    assert!(
        run.notes
            .iter()
            .any(|n| n.contains("delivered none") && n.contains("both publish and read")),
        "{:?}",
        run.notes
    );
    drop(broker);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto; .ci/run installs it and runs these"]
async fn mqtt_5_says_when_a_direct_message_had_nobody_to_go_to() {
    let broker = Mosquitto::start("v5-away", "allow_anonymous true");
    // Clean sessions: while a client is away nobody is subscribed to its topic, and an MQTT 5
    // broker's PUBACK says "no matching subscribers".
    let churn = "[churn]\nfraction = 0.3\nrate = 8.0\noffline = \"300ms\"\n";
    let scenario = small_scenario_with(30, 20.0, Duration::from_secs(3), churn);
    let outcome = imbench_loadgen::run(config(scenario, broker.target("", "?version=5")))
        .await
        .expect("clean sessions over MQTT 5");
    let run = &outcome.report.runs[0];
    let c = &run.counters;
    assert!(c.reconnects >= 10, "{c:?}");
    assert!(c.rejected > 0, "{c:?}");
    assert_eq!(c.rejected_busy, 0, "{c:?}");
    assert_eq!(c.acked + c.rejected, c.sent, "{c:?}");
    assert!(
        run.notes
            .iter()
            .any(|n| n.contains("counted in `rejected`")),
        "{:?}",
        run.notes
    );
}

// Needs no broker: it runs with every `cargo test`.
#[tokio::test]
async fn a_port_that_answers_but_not_as_mqtt_is_a_usage_error() {
    // An HTTP answer to CONNECT, as a proxy or a web server on the wrong port gives.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut stream in listener.incoming().flatten().take(8) {
            let mut first = [0u8; 64];
            let _ = stream.read(&mut first);
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let scenario = small_scenario_with(4, 1.0, Duration::from_secs(1), "");
    for version in ["3.1.1", "5"] {
        let url = format!("mqtt://127.0.0.1:{port}?version={version}");
        let target = ServerSpec::Mqtt(MqttTarget::parse(&url).unwrap());
        match imbench_loadgen::run(config(scenario.clone(), target)).await {
            Err(e) => {
                assert!(e.to_string().contains("not as an MQTT broker"), "{e}");
                // Said in MQTT's words, not as the packet type rumqttc read "HTTP" as.
                assert!(
                    e.to_string().contains("its first answer was not a CONNACK"),
                    "{e}"
                );
                assert!(!e.to_string().contains("PubAck"), "{e}");
                assert_eq!(e.exit_code(), imbench_loadgen::exit_code::USAGE, "{e}");
            }
            Ok(_) => panic!("a run went ahead against an HTTP port"),
        }
    }
}

/// Two runs at once on one broker, each with its own prefix, keep out of each other's way:
/// client ids carry the prefix, so neither logs the other's clients out (with `imbench-USER`
/// for both, mosquitto closed the older connection of each id and one run lost every client).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto; .ci/run installs it and runs these"]
async fn two_runs_at_once_with_their_own_prefixes_keep_apart() {
    let broker = Mosquitto::start("two-runs", "allow_anonymous true");
    let run_under = |prefix: &str| {
        let target = ServerSpec::Mqtt(
            MqttTarget::parse(&format!("{}/{prefix}", broker.url("", ""))).expect("a target"),
        );
        imbench_loadgen::run(config(
            small_scenario_with(20, 20.0, Duration::from_secs(2), ""),
            target,
        ))
    };
    let (one, other) = tokio::join!(run_under("one"), run_under("two/runs"));
    for outcome in [one, other] {
        let report = outcome.expect("a run beside another").report;
        let c = &report.runs[0].counters;
        assert_eq!((c.clients, c.disconnects), (20, 0), "{c:?}");
        assert_eq!((c.lost, c.duplicated, c.errors), (0, 0, 0), "{c:?}");
        assert_eq!(c.expected, c.delivered, "{c:?}");
    }
}

/// Clients a broker turns away at its connection limit are told that it may be that, not
/// only that the port may not be MQTT's (mosquitto closes such a connection without a word).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto; .ci/run installs it and runs these"]
async fn clients_past_the_brokers_connection_limit_are_told_it_may_be_that() {
    let broker = Mosquitto::start("full", "allow_anonymous true\nmax_connections 5");
    let scenario = small_scenario_with(8, 5.0, Duration::from_secs(1), "");
    let outcome = imbench_loadgen::run(config(scenario, broker.target("", "")))
        .await
        .expect("a run with clients turned away");
    let run = &outcome.report.runs[0];
    // mosquitto let 5 or 6 in (its count and the check before the run's own connection).
    let c = &run.counters;
    assert!(
        c.connect_failures >= 2 && c.clients + c.connect_failures == 8,
        "{c:?}"
    );
    assert!(
        run.problems
            .iter()
            .any(|p| p.contains("or the broker is at its connection limit")),
        "{:?}",
        run.problems
    );
}

/// A broker that refuses the client id (mosquitto's `clientid_prefixes` refuses every id that
/// does not start with the one given, as "not authorized") is told the id beside the credentials
/// it may want: the error spoke only of a user and password.
#[tokio::test]
#[ignore = "needs mosquitto; .ci/run installs it and runs these"]
async fn a_client_id_the_broker_refuses_is_named() {
    let broker = Mosquitto::start("ids", "allow_anonymous true\nclientid_prefixes other-");
    let scenario = small_scenario_with(3, 1.0, Duration::from_secs(1), "");
    match imbench_loadgen::run(config(scenario, broker.target("", "/chat/room"))).await {
        Err(e @ RunError::Refused { .. }) => {
            assert_eq!(e.exit_code(), imbench_loadgen::exit_code::USAGE);
            assert!(
                e.to_string()
                    .contains("or the broker does not take the client id chat.room-3"),
                "{e}"
            );
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a run with its client ids refused went ahead"),
    }
}
