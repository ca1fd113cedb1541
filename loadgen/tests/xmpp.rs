//! The XMPP driver against a real Prosody and a real ejabberd (Debian's `prosody` and
//! `ejabberd` packages), each started on a free loopback port with a configuration the test
//! writes, and stopped by its PID. Ignored by a plain `cargo test` (the servers may not be
//! installed, and ejabberd runs as its own user, so as root); `.ci/run` installs them and runs
//! these with `cargo test -p imbench-loadgen --test xmpp -- --ignored`.

mod util;

use std::time::Duration;

use imbench_loadgen::RunError;
use util::{
    assert_every_message_accounted, assert_refused_as_misconfigured, config, imbench_in,
    run_late_logins, self_signed_cert, small_scenario_with, Daemon, Ejabberd, Prosody, GROUPS,
    TINY_TOML,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs prosody; .ci/run installs it and runs these"]
async fn direct_chat_and_groups_account_for_every_message() {
    // Prosody's default configuration: rooms stay locked until their maker configures them,
    // which the driver does.
    let server = Prosody::start("chat", "");
    let scenario = || small_scenario_with(30, 20.0, Duration::from_secs(2), GROUPS);
    // The first run registers its accounts in band as its clients log in: until a partner's
    // account exists, a message to it is bounced (rejected), never lost.
    let outcome = imbench_loadgen::run(config(scenario(), server.target("", "")))
        .await
        .expect("a run against prosody that registers its accounts");
    let c = &outcome.report.runs[0].counters;
    assert_eq!((c.clients, c.connect_failures), (30, 0), "{c:?}");
    assert_eq!(c.acked + c.rejected, c.sent, "{c:?}");
    assert_eq!(c.expected, c.delivered, "{c:?}");
    assert_eq!((c.lost, c.duplicated, c.errors), (0, 0, 0), "{c:?}");
    // The second logs in to them: every message is acked and delivered once. Acks are stream
    // management's <a/>; rooms send members their own messages back, which must not count.
    let outcome = imbench_loadgen::run(config(scenario(), server.target("", "")))
        .await
        .expect("a run against prosody that logs in to its accounts");
    assert_every_message_accounted(&outcome.report, "xmpp", 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ejabberd and root; .ci/run installs it and runs these"]
async fn ejabberd_carries_direct_chat_and_rooms_with_every_message_accounted() {
    let server = Ejabberd::start("chat");
    // Logins spread over 3 s: a message to a client still logging in when sending begins is
    // acknowledged and then bounced by an ejabberd without offline storage (the tests' own, see
    // `Ejabberd`), and at 150 logins a second on a busy machine 4 to 15 of them were late.
    let scenario = || {
        let mut s = small_scenario_with(30, 20.0, Duration::from_secs(2), GROUPS);
        s.ramp_up = Duration::from_secs(3);
        s
    };
    // The first run registers the accounts in band as its clients log in. Unlike Prosody,
    // ejabberd acknowledges a message before it finds that its recipient has no account yet,
    // and bounces it after: such a message is lost, and the bounce named as an error.
    let outcome = imbench_loadgen::run(config(scenario(), server.target("")))
        .await
        .expect("a run against ejabberd that registers its accounts");
    let run = &outcome.report.runs[0];
    let c = &run.counters;
    assert_eq!(
        (c.clients, c.connect_failures, c.duplicated),
        (30, 0, 0),
        "{c:?}"
    );
    assert!(c.lost <= c.errors + c.errors / 10 + 5, "{c:?}");
    assert!(
        c.errors == 0
            || run
                .problems
                .iter()
                .any(|p| p.contains("XMPP bounce (service-unavailable)")),
        "{:?}",
        run.problems
    );
    // The second logs in to accounts that all exist: every message is acked and delivered
    // once, in rooms and between users.
    let outcome = imbench_loadgen::run(config(scenario(), server.target("")))
        .await
        .expect("a run against ejabberd that logs in to its accounts");
    assert_every_message_accounted(&outcome.report, "xmpp", 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs prosody; .ci/run installs it and runs these"]
async fn what_arrives_while_a_client_is_away_is_kept_and_delivered_once() {
    let server = Prosody::start("churn", "smacks_hibernation_time = 0");
    // A third of the clients leave (half of them abruptly) and come back 300 ms later;
    // Prosody's offline storage keeps their messages meanwhile.
    let churn = "[churn]\nfraction = 0.3\nrate = 8.0\noffline = \"300ms\"\nabrupt = 0.5\n";
    let scenario = small_scenario_with(30, 20.0, Duration::from_secs(3), churn);
    let outcome = imbench_loadgen::run(config(scenario, server.target("", "")))
        .await
        .expect("a run with churn");
    let c = &outcome.report.runs[0].counters;
    assert!(c.reconnects >= 10, "{c:?}");
    assert_eq!(c.expected, c.delivered, "{c:?}");
    assert_eq!((c.lost, c.duplicated), (0, 0), "{c:?}");
}

/// ejabberd without offline storage (the tests' own) acknowledges what is sent to a client
/// that is away and bounces it after: lost, each with an error and a problem in the server's
/// words, and a note that says what the bounces mean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ejabberd and root; .ci/run installs it and runs these"]
async fn what_ejabberd_bounces_for_a_client_away_is_lost_and_said_in_a_note() {
    let server = Ejabberd::start("churn");
    let scenario = |more: &str| {
        let mut s = small_scenario_with(30, 20.0, Duration::from_secs(3), more);
        s.ramp_up = Duration::from_secs(3);
        s
    };
    // The first run registers the accounts; the second churns on them.
    imbench_loadgen::run(config(scenario(""), server.target("")))
        .await
        .expect("a run that registers the accounts");
    let churn = "[churn]\nfraction = 0.3\nrate = 8.0\noffline = \"500ms\"\n";
    let outcome = imbench_loadgen::run(config(scenario(churn), server.target("")))
        .await
        .expect("a run with churn");
    let run = &outcome.report.runs[0];
    let c = &run.counters;
    assert!(c.reconnects >= 10 && c.lost > 0, "{c:?}");
    assert!(
        run.problems
            .iter()
            .any(|p| p.contains("XMPP bounce (service-unavailable)")),
        "{:?}",
        run.problems
    );
    assert!(
        run.notes
            .iter()
            .any(|n| n.contains("and then bounced") && n.contains("mod_offline")),
        "{:?}",
        run.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs prosody; .ci/run installs it and runs these"]
async fn rooms_on_a_service_the_server_does_not_have_make_the_run_invalid() {
    let server = Prosody::start("no-muc", "");
    let scenario = small_scenario_with(12, 5.0, Duration::from_secs(1), GROUPS);
    let target = server.target("", "?muc=rooms.nowhere");
    let outcome = imbench_loadgen::run(config(scenario, target))
        .await
        .expect("a run whose joins are refused");
    let report = &outcome.report;
    assert_eq!(report.verdict, imbench_loadgen::Verdict::Invalid);
    assert!(
        report
            .invalid_reasons
            .iter()
            .any(|r| r.contains("no group message had a member")),
        "{:?}",
        report.invalid_reasons
    );
    // The problems name the service given, which is what to change.
    let run = &report.runs[0];
    assert!(
        run.problems
            .iter()
            .any(|p| p.contains("refused") && p.contains("rooms.nowhere")),
        "{:?}",
        run.problems
    );
}

#[tokio::test]
#[ignore = "needs prosody; .ci/run installs it and runs these"]
async fn accounts_that_cannot_log_in_are_refused_before_the_run_as_a_usage_error() {
    let server = Prosody::start("auth", "");
    let scenario = small_scenario_with(4, 1.0, Duration::from_secs(1), "");
    let refused = |result: Result<imbench_loadgen::RunOutcome, RunError>, needle: &str| match result
    {
        Err(e @ RunError::Refused { .. }) => {
            assert!(e.to_string().contains(needle), "{e}");
            assert_eq!(e.exit_code(), imbench_loadgen::exit_code::USAGE);
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a run whose accounts cannot log in went ahead"),
    };
    // No such accounts, and registration not asked for.
    let no = imbench_loadgen::run(config(scenario.clone(), server.target("", "?register=no")));
    refused(no.await, "register=no");
    // Registered with one password, then given another.
    let outcome = imbench_loadgen::run(config(scenario.clone(), server.target("", "")))
        .await
        .expect("the accounts registered");
    assert_eq!(outcome.report.runs[0].counters.connect_failures, 0);
    let other = server.target("imbench-{user}:another@", "");
    refused(
        imbench_loadgen::run(config(scenario.clone(), other)).await,
        "another password",
    );
    // A domain the server does not host: the server answered, so the target is wrong.
    let elsewhere = server.target("", "/example.invalid");
    match imbench_loadgen::run(config(scenario, elsewhere)).await {
        Err(e) => {
            assert!(
                e.to_string()
                    .contains("does not host the XMPP domain \"example.invalid\""),
                "{e}"
            );
            assert_eq!(e.exit_code(), imbench_loadgen::exit_code::USAGE, "{e}");
        }
        Ok(_) => panic!("a run on a domain the server does not host went ahead"),
    }
}

#[test]
#[ignore = "needs prosody; .ci/run installs it and runs these"]
fn imbench_run_takes_an_xmpp_target_and_says_what_a_wrong_port_is() {
    let server = Prosody::start("cli", "");
    let dir = server.daemon.dir.clone();
    std::fs::write(dir.join("s.toml"), TINY_TOML).unwrap();
    let url = server.url("", "");
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
    assert!(text.contains("tiny over xmpp"), "{text}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("r/report.json")).unwrap()).unwrap();
    assert_eq!(report["runs"][0]["transport"], "xmpp");

    // A port that answers with something else than XMPP.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let http = std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 512];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(b"<html><body>not here</body></html>");
        }
    });
    let wrong = format!("xmpp://127.0.0.1:{port}");
    let (out, text) = imbench_in(&dir, &["run", "s.toml", "--target", &wrong]);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("XMPP"), "{text}");
    drop(http);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs prosody; .ci/run installs it and runs these"]
async fn starttls_carries_the_chat_and_a_plain_client_is_told_to_ask_for_it() {
    let certs = Daemon::folder("prosody-tls-certs");
    let (cert, key) = self_signed_cert(&certs);
    // Encryption required, as on a server facing a network; PLAIN only over TLS.
    let server = Prosody::start(
        "tls",
        &format!(
            r#"modules_enabled = {{ "roster"; "saslauth"; "tls"; "disco"; "ping"; "register"; "smacks"; "offline" }}
modules_disabled = {{ "s2s" }}
c2s_require_encryption = true
allow_unencrypted_plain_auth = false
ssl = {{ certificate = "{}"; key = "{}" }}"#,
            cert.display(),
            key.display()
        ),
    );
    let trusted = format!("?tls=starttls&ca={}", cert.display());
    let scenario = || small_scenario_with(30, 20.0, Duration::from_secs(2), GROUPS);
    // The first run registers the accounts (over TLS: registration comes after STARTTLS).
    let outcome = imbench_loadgen::run(config(scenario(), server.target("", &trusted)))
        .await
        .expect("a run over STARTTLS that registers its accounts");
    let c = &outcome.report.runs[0].counters;
    assert_eq!((c.clients, c.connect_failures), (30, 0), "{c:?}");
    assert_eq!((c.lost, c.duplicated, c.errors), (0, 0, 0), "{c:?}");
    let outcome = imbench_loadgen::run(config(scenario(), server.target("", &trusted)))
        .await
        .expect("a run over STARTTLS");
    assert_every_message_accounted(&outcome.report, "xmpp-tls", 30);

    let small = small_scenario_with(4, 1.0, Duration::from_secs(1), "");
    let (other, _) = self_signed_cert(&certs.join("other"));
    let untrusted = format!("?tls=starttls&ca={}", other.display());
    for (options, says) in [
        // No TLS asked for: the server offers STARTTLS and no PLAIN without it.
        ("", "add tls=starttls"),
        // Another CA (another self-signed certificate) did not sign the server's.
        (untrusted.as_str(), "not signed by a certificate in"),
    ] {
        let refused = imbench_loadgen::run(config(small.clone(), server.target("", options))).await;
        assert_refused_as_misconfigured(refused, &[says]);
    }
    drop(server);
    let _ = std::fs::remove_dir_all(certs);
}

#[test]
#[ignore = "needs prosody; .ci/run installs it and runs these"]
fn a_ramp_up_shorter_than_the_logins_says_why_messages_were_refused() {
    let server = Prosody::start("late", "");
    let dir = server.daemon.dir.clone();
    // All at once, one login (and registration) at a time: the last clients' accounts do not
    // exist yet when their partners begin sending to them, and Prosody bounces those messages.
    let (run, text) = run_late_logins(&dir, &server.url("", ""));
    assert!(run.counters.rejected > 0, "{text}");
    assert!(
        run.notes
            .iter()
            .any(|n| n.contains("logged in only after sending had begun")
                && n.contains("account did not exist yet")),
        "{:?}",
        run.notes
    );
    // The refusal in XMPP's words, not as the code the driver counts it under.
    assert!(
        run.problems
            .iter()
            .any(|p| p.contains("message refused: an error stanza (service-unavailable")),
        "{:?}",
        run.problems
    );
    assert!(!text.contains("recipient_offline"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs prosody; .ci/run installs it and runs these"]
async fn a_prosody_killed_mid_run_is_said_to_have_closed_without_a_word() {
    let mut server = Prosody::start("killed", "");
    let scenario = small_scenario_with(10, 10.0, Duration::from_secs(4), "");
    let run = tokio::spawn(imbench_loadgen::run(config(
        scenario,
        server.target("", ""),
    )));
    // Clients register and log in within the first second or two, then measure: kill the
    // server while they send. A killed server writes no `</stream:stream>`.
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let _ = server.daemon.child.kill();
    let outcome = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the run ends by itself")
        .expect("the run's task")
        .expect("a report");
    let problems = &outcome.report.runs[0].problems;
    assert_eq!(
        outcome.report.verdict,
        imbench_loadgen::Verdict::Invalid,
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("closed the connection without ending the stream")),
        "{problems:?}"
    );
    assert!(
        !problems
            .iter()
            .any(|p| p.ends_with("the XMPP server ended the stream")),
        "{problems:?}"
    );
}
