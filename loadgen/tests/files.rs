//! File transfers measured end to end against a real server: every file verified on each
//! transport, a corrupted byte caught and counted, chat latency split by whether a transfer
//! was moving, and a known delay showing in the file latency.

mod util;

use std::time::Duration;

use imbench_loadgen::{ServerSpec, Verdict};
use imbench_transport::Transport;
use util::{config, interrupted_after, small_scenario_with};

const FILES: &str = r#"
[files]
rate = 20.0
senders = 4
arrival = "constant"
size = { dist = "log_uniform", min = "1KiB", max = "1MiB" }
"#;

async fn every_file_is_verified(transport: Transport) {
    let scenario = small_scenario_with(8, 20.0, Duration::from_millis(1500), FILES);
    let mut cfg = config(scenario, ServerSpec::Embedded);
    cfg.transport = transport;
    let out = imbench_loadgen::run(cfg).await.expect("run");
    let run = &out.report.runs[0];
    let c = &run.counters;
    assert!(
        c.files_sent >= 20,
        "{transport}: {} files sent",
        c.files_sent
    );
    assert_eq!(c.files_verified, c.files_sent, "{transport}: {c:?}");
    assert_eq!(
        (
            c.files_refused,
            c.files_corrupted,
            c.files_failed,
            c.files_unfinished
        ),
        (0, 0, 0, 0),
        "{transport}"
    );
    let files = run.files.as_ref().expect("a files section");
    assert_eq!(files.throughput_kib_s.count, c.files_verified);
    assert!(files.bytes_verified >= c.files_verified * 1024);
    // The file histogram holds the files due in the measured period.
    let file = &run.metrics["file"];
    assert!(file.count > 0 && file.count <= c.files_verified);
    // Every chat delivery lands in exactly one of the two halves.
    let m = &run.metrics;
    assert_eq!(
        m["direct_during_files"].count + m["direct_without_files"].count,
        m["direct"].count,
        "{transport}"
    );
    assert_eq!(c.lost, 0);
    assert_eq!(out.report.verdict, Verdict::Ok, "{:?}", out.report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_file_is_verified_over_quic() {
    every_file_is_verified(Transport::Quic).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_file_is_verified_over_tcp() {
    every_file_is_verified(Transport::Tcp).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_file_is_verified_over_wss() {
    every_file_is_verified(Transport::Wss).await
}

/// With every second file corrupted after its digest was taken, exactly those files count as
/// corrupted, none as verified, and an SLO on it fails the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_is_caught_and_counted() {
    let more = format!("{FILES}corrupt_every = 2\n[slo]\nfiles_corrupted = \"== 0\"\n");
    let scenario = small_scenario_with(8, 5.0, Duration::from_millis(1500), &more);
    let out = imbench_loadgen::run(config(scenario, ServerSpec::Embedded))
        .await
        .expect("run");
    let c = &out.report.runs[0].counters;
    assert_eq!(c.files_corrupted, c.files_sent / 2, "{c:?}");
    assert_eq!(c.files_verified, c.files_sent - c.files_sent / 2, "{c:?}");
    assert_eq!(out.report.verdict, Verdict::SloFailed);
}

/// Every datagram delayed by 30 ms each way: a file cannot be verified sooner than the offer,
/// the accept and the bytes crossing (two round trips of 60 ms), and the histogram shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_delay_shows_in_the_file_latency() {
    let server_config = imbench_server::ServerConfig::loopback().unwrap();
    let server = imbench_server::start(server_config.clone()).await.unwrap();
    let delay = Duration::from_millis(30);
    let proxy = util::delay_proxy(server.addr(Transport::Quic).unwrap(), delay).await;
    let files = r#"
[files]
rate = 4.0
senders = 2
arrival = "constant"
size = { dist = "fixed", bytes = "4KiB" }
"#;
    let mut scenario = small_scenario_with(4, 1.0, Duration::from_millis(2000), files);
    scenario.generator.max_schedule_lag = Duration::from_secs(1);
    let spec = util::remote(&server_config, proxy);
    let out = imbench_loadgen::run(config(scenario, spec))
        .await
        .expect("run");
    let run = &out.report.runs[0];
    let file = &run.metrics["file"];
    assert!(file.count > 0, "{:?}", run.counters);
    // Offer → FileAccepted is one round trip; FileData + bytes → recipient is two more
    // one-way trips (sender → server → recipient).
    assert!(
        file.min_us >= 4 * delay.as_micros() as u64,
        "fastest file {} µs with {} ms each way",
        file.min_us,
        delay.as_millis()
    );
    server.shutdown().await;
}

/// Transfers under way when a run is interrupted are unfinished: the connections the run
/// closes as it ends break them off, and that is not the system failing them (they were
/// counted failed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_under_way_at_an_interrupt_are_unfinished_not_failed() {
    let big = r#"
[files]
rate = 8.0
senders = 4
arrival = "constant"
size = { dist = "fixed", bytes = "50MiB" }
"#;
    let scenario = small_scenario_with(8, 5.0, Duration::from_secs(30), big);
    let cfg = interrupted_after(
        config(scenario, ServerSpec::Embedded),
        Duration::from_millis(1500),
    );
    let out = imbench_loadgen::run(cfg).await.expect("run");
    let c = &out.report.runs[0].counters;
    assert_eq!(out.report.verdict, Verdict::Invalid);
    assert!(c.files_unfinished > 0, "{c:?}");
    assert_eq!(
        (c.files_failed, c.files_refused, c.files_corrupted),
        (0, 0, 0),
        "{c:?}"
    );
    assert_eq!(c.files_verified + c.files_unfinished, c.files_sent, "{c:?}");
}
