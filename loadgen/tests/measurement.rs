//! The latency figures mean what docs/measurement.md says: a known network delay shows up in
//! full, and a server stall shows up in the corrected figures but far less in the uncorrected
//! ones.

mod util;

use std::time::Duration;

use imbench_loadgen::report::MetricSummary;
use imbench_loadgen::{Report, ServerSpec, Verdict};
use imbench_server::ServerConfig;
use util::{
    config, delay_proxy, generator_runtime, remote, small_scenario, small_scenario_with,
    ServerOnItsOwnThread,
};

fn metric<'a>(r: &'a Report, name: &str) -> &'a MetricSummary {
    &r.runs[0].metrics[name]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_is_delivered_exactly_once() {
    let scenario = small_scenario(40, 20.0, Duration::from_secs(2));
    let outcome = imbench_loadgen::run(config(scenario, ServerSpec::Embedded))
        .await
        .unwrap();
    let r = &outcome.report;
    let c = &r.runs[0].counters;
    assert_eq!(c.clients, 40);
    assert!(c.sent > 1000, "{c:?}");
    assert_eq!(c.acked, c.sent);
    assert_eq!(c.delivered, c.sent);
    assert_eq!(
        (c.lost, c.duplicated, c.corrupted, c.reordered, c.errors),
        (0, 0, 0, 0, 0)
    );
    let direct = metric(r, "direct");
    // Only messages due in the measured window are timed, and each once.
    assert!(
        direct.count > 0 && direct.count < c.delivered,
        "{}",
        direct.count
    );
    assert_eq!(metric(r, "direct_uncorrected").count, direct.count);
    assert_eq!(metric(r, "connect").count, 40);
    assert_eq!(r.verdict, Verdict::Ok, "{:?}", r.invalid_reasons);
}

/// A run whose warm-up sent messages and whose measured period sent none measured nothing: it
/// is invalid, however well the warm-up's messages went (it was judged on the whole run's
/// counters, and passed). The schedule is the seed's, so the same every time: 4 clients at 1
/// a second send in the 500 ms warm-up and not in the 100 ms after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_measured_period_with_no_send_is_invalid_whatever_the_warm_up_sent() {
    let scenario = small_scenario_with(4, 1.0, Duration::from_millis(100), "");
    let outcome = imbench_loadgen::run(config(scenario, ServerSpec::Embedded))
        .await
        .unwrap();
    let r = &outcome.report;
    let run = &r.runs[0];
    assert!(
        run.counters.sent > 0,
        "the warm-up sent nothing: {:?}",
        run.counters
    );
    assert_eq!(run.throughput.sent_per_s, 0.0, "a send fell in the period");
    assert_eq!(r.verdict, Verdict::Invalid, "{:?}", r.invalid_reasons);
    assert!(
        r.invalid_reasons
            .iter()
            .any(|w| w.contains("nothing was sent in the measured period")),
        "{:?}",
        r.invalid_reasons
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_network_delay_shows_in_full() {
    const D: Duration = Duration::from_millis(40);
    let server_config = ServerConfig::loopback().unwrap();
    let server = imbench_server::start(server_config.clone()).await.unwrap();
    let proxy = delay_proxy(server.addr(imbench_transport::Transport::Quic).unwrap(), D).await;
    // Direct chat and two groups of 5.
    let scenario = small_scenario_with(
        10,
        10.0,
        Duration::from_secs(2),
        "[groups]\ncount = 2\nmembers = { dist = \"fixed\", size = 5 }\nsenders = 1\nrate = 20.0\n",
    );
    let outcome = imbench_loadgen::run(config(scenario, remote(&server_config, proxy)))
        .await
        .unwrap();
    let r = &outcome.report;
    assert_eq!(r.runs[0].counters.lost, 0);
    let d = D.as_micros() as u64;
    // Sender → proxy → server, then server → proxy → recipient: two delays at least.
    for name in ["direct", "direct_uncorrected", "ack", "group", "fanout"] {
        let m = metric(r, name);
        assert!(m.count > 50, "{name}: {} samples", m.count);
        assert!(
            m.min_us >= 2 * d,
            "{name}: min {}µs below 2 × {}µs",
            m.min_us,
            d
        );
        assert!(
            m.p50_us < 2 * d + 60_000,
            "{name}: p50 {}µs far above 2 × {}µs",
            m.p50_us,
            d
        );
    }
    // Handshake round trip plus Hello → Welcome: four one-way trips.
    assert!(
        metric(r, "connect").min_us >= 4 * d,
        "connect {}µs",
        metric(r, "connect").min_us
    );
    server.shutdown().await;
}

#[test]
fn a_server_stall_shows_in_corrected_percentiles_not_uncorrected() {
    const STALL: Duration = Duration::from_millis(1000);
    // The server runs on its own single-threaded runtime, so blocking that thread stalls the
    // whole server while the generator, on another runtime, keeps its schedule.
    let mut server_config = ServerConfig::loopback().unwrap();
    // A small receive window makes the generator's writes block soon after the stall begins,
    // as they would against any server that stops reading.
    server_config.quic.stream_receive_window = Some(1024);
    let server = ServerOnItsOwnThread::start_with(server_config);
    let report = generator_runtime().block_on(async {
        // 5 clients at 200 msg/s for 8 s; the stall starts 2.5 s into the run (measured window
        // is 0.7 s – 8.7 s).
        let scenario = small_scenario(5, 200.0, Duration::from_secs(8));
        let server_handle = server.handle.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            server_handle.spawn(async move { std::thread::sleep(STALL) });
        });
        imbench_loadgen::run(config(scenario, server.target()))
            .await
            .unwrap()
            .report
    });
    drop(server);
    let r = &report;
    assert_eq!(r.runs[0].counters.lost, 0, "{:?}", r.runs[0].counters);
    let corrected = metric(r, "direct");
    let uncorrected = metric(r, "direct_uncorrected");
    let stall = STALL.as_micros() as u64;
    eprintln!(
        "corrected p50 {} p99 {} max {} mean {:.0}; uncorrected p50 {} p99 {} max {} mean {:.0}",
        corrected.p50_us,
        corrected.p99_us,
        corrected.max_us,
        corrected.mean_us,
        uncorrected.p50_us,
        uncorrected.p99_us,
        uncorrected.max_us,
        uncorrected.mean_us
    );
    // Messages due during the stall waited for its end: the worst waited nearly all of it, and
    // they are ~12% of the window, so the corrected p99 sits deep inside the stall.
    assert!(
        corrected.max_us >= stall * 9 / 10,
        "corrected max {}",
        corrected.max_us
    );
    assert!(
        corrected.p99_us >= stall / 2,
        "corrected p99 {}",
        corrected.p99_us
    );
    // Uncorrected, only the few messages already written when the window filled saw the stall.
    assert!(
        uncorrected.p99_us <= stall / 4,
        "uncorrected p99 {}",
        uncorrected.p99_us
    );
    assert!(corrected.mean_us >= 3.0 * uncorrected.mean_us);
    // The generator kept its schedule: writes held by the server are not its lateness.
    let lag = metric(r, "schedule_lag");
    assert!(lag.p99_us < stall / 10, "schedule_lag p99 {}", lag.p99_us);
}

/// CPU per delivery divides the CPU of a span by the deliveries received in that span: with
/// the server stalled over the period's end, the period's last messages arrive in the drain,
/// whose CPU is not counted, and they are not counted in what it divides by either (they were:
/// every message due in the period, making the figure too low under a backlog).
#[test]
fn cpu_per_delivery_divides_by_what_arrived_while_its_cpu_was_counted() {
    let server = ServerOnItsOwnThread::start();
    let report = generator_runtime().block_on(async {
        // 5 clients at 100 msg/s for 2 s (the measured period is 0.7 s - 2.7 s of the run's
        // clock, which starts a little after this one); the server stops for 3 s from 2.0 s,
        // past the schedule's end however slow the start, so what is due from then arrives in
        // the drain.
        let scenario = small_scenario(5, 100.0, Duration::from_secs(2));
        let server_handle = server.handle.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(2000)).await;
            server_handle.spawn(async move { std::thread::sleep(Duration::from_millis(3000)) });
        });
        imbench_loadgen::run(config(scenario, server.target()))
            .await
            .unwrap()
            .report
    });
    drop(server);
    let run = &report.runs[0];
    assert_eq!(run.counters.lost, 0, "{:?}", run.counters);
    let timed = metric(&report, "direct").count;
    let cpu = run.cpu.as_ref().expect("CPU measured");
    let received = cpu.deliveries.expect("the deliveries it divides by");
    // About 0.7 s of the period's 2 s was due in the stall: some 35 % arrived in the drain.
    assert!(
        received * 10 < timed * 9,
        "received {received} in the span of {timed} timed"
    );
    let u = run.cpu_use.as_ref().expect("the threads' CPU");
    let generator = cpu.generator_us_per_delivery.expect("per delivery");
    let expected = (u.generator_cores + u.timer_cores) * u.period_s * 1e6 / received as f64;
    assert!(
        (generator - expected).abs() < 1e-6 * expected.max(1.0),
        "{generator} {expected}"
    );
}

#[test]
fn a_generator_that_stalls_shows_in_schedule_lag_for_every_send_it_made_late() {
    const STALL: Duration = Duration::from_millis(60);
    // The generator on one worker thread that a task blocks now and then, the server on
    // runtimes of its own (embedded): every send due during a block goes out late when it
    // ends, not only the one whose wake-up the block swallowed first.
    let gen_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let report = gen_rt.block_on(async {
        // 5 clients at 200 msg/s: a send every 5 ms per client, 12 of them due in each block.
        let mut scenario = small_scenario(5, 200.0, Duration::from_secs(3));
        // Below the blocks, so that the run is judged: the lateness is the generator's.
        scenario.generator.max_schedule_lag = Duration::from_millis(20);
        let stalls = tokio::spawn(async {
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(240)).await;
                std::thread::sleep(STALL);
            }
        });
        let report = imbench_loadgen::run(config(scenario, ServerSpec::Embedded))
            .await
            .unwrap()
            .report;
        stalls.abort();
        report
    });
    let r = &report;
    let lag = metric(r, "schedule_lag");
    let sent = r.runs[0].counters.sent;
    eprintln!(
        "schedule_lag count {} p50 {} p90 {} p99 {} max {}; sent {sent}",
        lag.count, lag.p50_us, lag.p90_us, lag.p99_us, lag.max_us
    );
    // A fifth of the time blocked: about a sixth of the sends leave 10 ms late or more. Timed
    // only at the first wake-up each block swallows, one send in sixty would.
    assert!(lag.p90_us >= 10_000, "schedule_lag p90 {}", lag.p90_us);
    assert!(
        lag.max_us >= STALL.as_micros() as u64 / 2,
        "max {}",
        lag.max_us
    );
    // Every send is timed once: as many lags as acks of the measured sends (direct chat only,
    // nothing refused).
    assert_eq!(r.runs[0].counters.rejected, 0);
    assert!(lag.count > 1_000, "{}", lag.count);
    assert_eq!(lag.count, metric(r, "ack").count);
    // The generator's own thread was blocked, not the machine's other threads (the hiccup
    // meter's): the run is the generator's to blame, and says so, unless the machine was
    // busier still (a run beside the whole test suite had a core stolen and its threads
    // waiting longer for a CPU than they ran, which the run names instead).
    let judged = &r.runs[0].schedule_lag;
    let reasons = &r.invalid_reasons;
    if judged.late_for_the_machine {
        assert!(
            reasons
                .iter()
                .any(|why| why.starts_with("the machine was the limit")),
            "{reasons:?}"
        );
        eprintln!("the machine was busier than the blocks: {reasons:?}");
        return;
    }
    assert!(judged.saturated, "{judged:?} {reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|why| why.contains("generator saturated")),
        "{reasons:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transport_runs_the_same_schedule_exactly_once() {
    use imbench_transport::Transport;
    let mut scenario = small_scenario(20, 20.0, Duration::from_secs(1));
    // A client still logging in when sending begins skips the sends due before its login, so
    // `sent` is the same on every transport only if every login ends in time: the last client
    // starts at 95 % of the ramp-up, and at 200 ms a busy machine once made a TCP login late.
    scenario.ramp_up = Duration::from_secs(2);
    let legs: Vec<_> = Transport::ALL
        .iter()
        .map(|&transport| imbench_loadgen::run::compare::Leg {
            transport,
            server: ServerSpec::Embedded,
            label: None,
            target_url: None,
        })
        .collect();
    let outcome = imbench_loadgen::run::compare::run_each(
        config(scenario, ServerSpec::Embedded),
        &legs,
        |_| {},
    )
    .await
    .unwrap();
    let r = &outcome.report;
    let names: Vec<&str> = r.runs.iter().map(|run| run.transport.as_str()).collect();
    assert_eq!(names, ["quic", "tcp", "tls", "ws", "wss"]);
    // The same seed gives the same schedule: every transport sends exactly the same messages.
    let sent = r.runs[0].counters.sent;
    assert!(sent > 300, "{sent}");
    for run in &r.runs {
        let c = &run.counters;
        assert_eq!(c.sent, sent, "{}", run.transport);
        assert_eq!((c.acked, c.delivered), (sent, sent), "{}", run.transport);
        assert_eq!(
            (c.lost, c.duplicated, c.reordered, c.corrupted, c.errors),
            (0, 0, 0, 0, 0),
            "{}",
            run.transport
        );
        assert_eq!(run.metrics["connect"].count, 20, "{}", run.transport);
    }
    assert_eq!(r.verdict, Verdict::Ok, "{:?}", r.invalid_reasons);
    let table = imbench_loadgen::report::comparison::comparison_table(r);
    assert!(
        table.contains("direct p99") && table.contains("wss"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quic_stream_per_message_delivers_everything_once() {
    let scenario = util::small_scenario_with(
        20,
        20.0,
        Duration::from_secs(2),
        "[quic]\nstreams = \"per_message\"\n",
    );
    let r = imbench_loadgen::run(config(scenario, ServerSpec::Embedded))
        .await
        .unwrap()
        .report;
    let c = &r.runs[0].counters;
    assert!(c.sent > 500, "{c:?}");
    assert_eq!((c.acked, c.delivered), (c.sent, c.sent), "{c:?}");
    // Separate streams are not ordered relative to each other, so reordering is allowed here;
    // loss, duplication and corruption are not.
    assert_eq!(
        (c.lost, c.duplicated, c.corrupted, c.errors),
        (0, 0, 0, 0),
        "{c:?}"
    );
    assert_eq!(r.verdict, Verdict::Ok, "{:?}", r.invalid_reasons);
}

/// A target that passed the check before the first run and is gone by its own turn costs the
/// comparison that run, not the runs already made: they are reported, and the report says
/// which run could not take place (it was all lost, and nothing written).
#[test]
fn a_target_gone_by_its_turn_leaves_the_runs_made_reported() {
    use imbench_loadgen::run::compare::{run_each, Leg};
    use imbench_transport::Transport;
    let mut server = Some(ServerOnItsOwnThread::start());
    let target = server.as_ref().expect("started").target();
    let leg = |server: ServerSpec, label: &str| Leg {
        transport: Transport::Quic,
        server,
        label: Some(label.into()),
        target_url: None,
    };
    let legs = [
        leg(ServerSpec::Embedded, "first"),
        leg(target, "gone"),
        leg(ServerSpec::Embedded, "third"),
    ];
    let outcome = generator_runtime()
        .block_on(run_each(
            config(
                small_scenario(5, 20.0, Duration::from_secs(1)),
                ServerSpec::Embedded,
            ),
            &legs,
            // After the first run: the second target goes away.
            |_| {
                if let Some(mut server) = server.take() {
                    server.stop();
                }
            },
        ))
        .expect("the runs that took place are the outcome");
    let r = &outcome.report;
    let names: Vec<&str> = r.runs.iter().map(|run| run.transport.as_str()).collect();
    assert_eq!(names, ["first", "third"]);
    assert_eq!(r.verdict, Verdict::Invalid);
    assert!(
        r.invalid_reasons
            .iter()
            .any(|why| why.starts_with("gone: the run could not take place")),
        "{:?}",
        r.invalid_reasons
    );
}
