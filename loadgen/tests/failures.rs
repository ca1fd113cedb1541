//! The generator does not hang or lie when a run goes wrong: an interrupt, a server that says
//! Bye in the middle, a server that hangs. Each run stops early, drains, and reports what it
//! measured with an invalid verdict and the reason.

mod util;

use std::time::Duration;

use imbench_loadgen::{ServerSpec, Verdict};
use imbench_server::ServerConfig;
use imbench_transport::Transport;
use util::{
    config, generator_runtime, interrupted_after, remote, small_scenario, small_scenario_with,
    ServerOnItsOwnThread,
};

const PLANNED: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_stops_the_schedule_and_reports_what_was_measured() {
    let c = interrupted_after(
        config(small_scenario(20, 20.0, PLANNED), ServerSpec::Embedded),
        Duration::from_millis(2500),
    );
    let r = imbench_loadgen::run(c).await.unwrap().report;
    let run = &r.runs[0];
    assert_eq!(r.verdict, Verdict::Invalid);
    assert!(
        r.invalid_reasons.iter().any(|w| w.contains("interrupted")),
        "{:?}",
        r.invalid_reasons
    );
    assert!(
        run.duration_s < PLANNED.as_secs_f64() / 2.0,
        "{}",
        run.duration_s
    );
    assert!(run.counters.sent > 100, "{:?}", run.counters);
    // What was sent before the interrupt was drained and accounted for.
    assert_eq!(run.counters.lost, 0, "{:?}", run.counters);
    assert_eq!(run.counters.delivered, run.counters.sent);
    assert!(run.metrics["direct"].count > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_shuts_down_mid_run_ends_the_run_as_invalid() {
    let server_config = ServerConfig::loopback().unwrap();
    let server = imbench_server::start(server_config.clone()).await.unwrap();
    let addr = server.addr(Transport::Quic).unwrap();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2000)).await;
        server.shutdown().await;
    });
    let scenario = small_scenario(10, 20.0, PLANNED);
    let r = imbench_loadgen::run(config(scenario, remote(&server_config, addr)))
        .await
        .unwrap()
        .report;
    let run = &r.runs[0];
    assert_eq!(r.verdict, Verdict::Invalid);
    assert!(
        r.invalid_reasons
            .iter()
            .any(|w| w.contains("server is gone")),
        "{:?}",
        r.invalid_reasons
    );
    assert!(
        run.duration_s < PLANNED.as_secs_f64() / 2.0,
        "{}",
        run.duration_s
    );
    assert!(run.counters.sent > 0);
}

/// A TCP server whose runtime is dropped at once `after` from now, with no Bye, as the kernel
/// closes a killed process's sockets: its configuration and address.
fn tcp_server_vanishing_after(after: Duration) -> (ServerConfig, std::net::SocketAddr) {
    let server_config = ServerConfig::loopback_on(&[Transport::Tcp]).unwrap();
    let server_rt = tokio::runtime::Runtime::new().unwrap();
    let server = server_rt
        .block_on(imbench_server::start(server_config.clone()))
        .unwrap();
    let addr = server.addr(Transport::Tcp).unwrap();
    std::mem::forget(server);
    std::thread::spawn(move || {
        std::thread::sleep(after);
        server_rt.shutdown_background();
    });
    (server_config, addr)
}

/// A QUIC server that ends as a killed process does, `after` from now: its runtime stopped
/// first, so that no task is left to send a close or Bye, then every handle to it dropped, so
/// that its UDP port closes with it.
fn quic_server_vanishing_after(after: Duration) -> (ServerConfig, std::net::SocketAddr) {
    let server_config = ServerConfig::loopback_on(&[Transport::Quic]).unwrap();
    let server_rt = tokio::runtime::Runtime::new().unwrap();
    let server = server_rt
        .block_on(imbench_server::start(server_config.clone()))
        .unwrap();
    let addr = server.addr(Transport::Quic).unwrap();
    std::thread::spawn(move || {
        std::thread::sleep(after);
        // The other way round, a connection dropped while its driver still ran could send a
        // CONNECTION_CLOSE (a killed process sends none), and the clients heard of it.
        server_rt.shutdown_background();
        drop(server);
    });
    (server_config, addr)
}

/// A QUIC server whose process ended closes no connection (QUIC hears nothing), but its port
/// is closed: the run stops on that, long before the answer timeout, and its period ends where
/// the server fell silent.
#[test]
fn a_quic_server_that_vanishes_is_noticed_by_its_closed_port() {
    let (server_config, addr) = quic_server_vanishing_after(Duration::from_millis(2500));
    let mut scenario = small_scenario(10, 20.0, PLANNED);
    // Far past the schedule: only the closed port can stop the run early.
    scenario.generator.answer_timeout = Duration::from_secs(60);
    let r = generator_runtime()
        .block_on(imbench_loadgen::run(config(
            scenario,
            remote(&server_config, addr),
        )))
        .unwrap()
        .report;
    assert_eq!(r.verdict, Verdict::Invalid);
    assert!(
        r.invalid_reasons
            .iter()
            .any(|w| w.contains("QUIC port") && w.contains("no longer takes datagrams")),
        "{:?}",
        r.invalid_reasons
    );
    let run = &r.runs[0];
    assert!(
        run.duration_s < PLANNED.as_secs_f64() / 2.0,
        "{}",
        run.duration_s
    );
    assert!(run.counters.lost > 0, "{:?}", run.counters);
}

/// A run of 10 clients each sending `rate` messages a second over TCP to a server whose
/// sockets all close, with no Bye, `after` from now (its runtime dropped at once, as the
/// kernel closes a killed process's sockets), checked to have stopped with every client's
/// connection lost, one error each.
fn run_against_a_server_that_vanishes(rate: f64, after: Duration) -> imbench_loadgen::Report {
    let (server_config, addr) = tcp_server_vanishing_after(after);
    let gen_rt = generator_runtime();
    let mut c = config(
        small_scenario(10, rate, PLANNED),
        remote(&server_config, addr),
    );
    c.transport = Transport::Tcp;
    let r = gen_rt.block_on(imbench_loadgen::run(c)).unwrap().report;
    // Every client found its connection gone, and the run stopped for it, one error each.
    assert_eq!(r.verdict, Verdict::Invalid);
    assert!(
        r.invalid_reasons
            .iter()
            .any(|w| w.contains("every client (10) lost its connection")),
        "{:?}",
        r.invalid_reasons
    );
    assert_eq!(r.runs[0].counters.errors, 10, "{:?}", r.runs[0].counters);
    // The last interval has none of them connected (the chart of clients connected drops).
    let last = r.runs[0].intervals.last().expect("intervals");
    assert_eq!(last.connected, 0, "{last:?}");
    r
}

#[test]
fn a_server_that_vanishes_while_clients_are_away_stops_the_run() {
    // Every client churns, away 0.5 s at a time: when the server goes, some are connected
    // (they lose their connection) and some are away (they fail to come back). Both are
    // without a connection, and the run stops for it rather than run out its schedule.
    let (server_config, addr) = tcp_server_vanishing_after(Duration::from_millis(2500));
    let gen_rt = generator_runtime();
    // The listener's socket outlives the server's runtime here, so a reconnect hangs until
    // its timeout rather than being refused as by a killed server's port: 1 s.
    let churn =
        "connect_timeout = \"1s\"\n[churn]\nfraction = 1.0\nrate = 10.0\noffline = \"500ms\"\n";
    let mut c = config(
        util::small_scenario_with(10, 20.0, PLANNED, churn),
        remote(&server_config, addr),
    );
    c.transport = Transport::Tcp;
    let r = gen_rt.block_on(imbench_loadgen::run(c)).unwrap().report;
    let run = &r.runs[0];
    assert!(run.counters.reconnects > 0, "{:?}", run.counters);
    assert!(
        run.problems.iter().any(|p| p.contains("reconnecting")),
        "nobody was away when the server went: {:?}",
        run.problems
    );
    assert!(
        r.invalid_reasons
            .iter()
            .any(|w| w.contains("every client (10) lost its connection")),
        "{:?}",
        r.invalid_reasons
    );
    assert!(
        run.duration_s < PLANNED.as_secs_f64() / 2.0,
        "{}",
        run.duration_s
    );
}

#[test]
fn a_server_whose_connections_close_without_a_word_is_noticed_by_idle_clients() {
    // The clients send almost nothing: only their receiving side can notice.
    let r = run_against_a_server_that_vanishes(0.001, Duration::from_secs(2));
    let run = &r.runs[0];
    assert!(
        run.duration_s < PLANNED.as_secs_f64() / 2.0,
        "{}",
        run.duration_s
    );
    assert!(
        run.problems
            .iter()
            .any(|p| p.contains("the server closed it")),
        "{:?}",
        run.problems
    );
}

#[test]
fn a_lost_connection_is_one_error_whichever_side_of_the_client_finds_it() {
    // Busy clients: the receiving side reads the close and the sending side's next write
    // fails, in either order; each client lost one connection, one error (checked there).
    // 1.5 s in: the measured period (from 0.7 s) is half over at the run's once-a-second look
    // at 1 s, and the next look is half a second after the server went.
    let r = run_against_a_server_that_vanishes(50.0, Duration::from_millis(1500));
    // The measured period ends when the last client lost its connection, not when the run
    // noticed (at that next look, before it was told of each loss): its send rate is the
    // schedule's 500 a second, not diluted by the time nothing could be sent.
    let run = &r.runs[0];
    assert!(
        run.throughput.sent_per_s > 0.85 * 500.0,
        "{} sent/s over {} s measured",
        run.throughput.sent_per_s,
        run.duration_s
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_to_clients_that_never_connected_are_lost_and_the_report_says_why() {
    for transport in [Transport::Quic, Transport::Tcp] {
        // The server takes 6 connections: 4 of the 10 clients never connect.
        let mut server_config = ServerConfig::loopback_on(&[transport]).unwrap();
        server_config.limits.max_connections = 6;
        let server = imbench_server::start(server_config.clone()).await.unwrap();
        let addr = server.addr(transport).unwrap();
        let scenario = small_scenario(10, 20.0, Duration::from_secs(1));
        let mut c = config(scenario, remote(&server_config, addr));
        c.transport = transport;
        let r = imbench_loadgen::run(c).await.unwrap().report;
        let run = &r.runs[0];
        assert_eq!(run.counters.connect_failures, 4, "{:?}", run.counters);
        assert!(run.counters.lost > 0, "{:?}", run.counters);
        assert!(
            run.notes
                .iter()
                .any(|n| n.starts_with("4 clients never connected")),
            "{:?}",
            run.notes
        );
        // Over TCP the refusal is a close without a word, from a port that welcomed the
        // others: the limit, not a port of another kind.
        if transport == Transport::Tcp {
            assert!(
                run.problems.iter().any(|p| p.contains("over its limit")),
                "{:?}",
                run.problems
            );
            assert!(
                !run.problems.iter().any(|p| p.contains("WebSocket")),
                "{:?}",
                run.problems
            );
        }
        server.shutdown().await;
    }
}

/// A TCP front for `upstream` that passes the first connection through (the run's probe) and
/// takes every later one without a word: logins that hang, as on a server that stopped
/// answering. Runs until the test's runtime ends.
async fn silent_after_the_probe(upstream: std::net::SocketAddr) -> std::net::SocketAddr {
    let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = front.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        let mut first = true;
        while let Ok((mut client, _)) = front.accept().await {
            if std::mem::take(&mut first) {
                tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            } else {
                held.push(client);
            }
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_that_fails_after_an_interrupt_is_left_out_not_counted_as_could_not_connect() {
    let server_config = ServerConfig::loopback_on(&[Transport::Tcp]).unwrap();
    let server = imbench_server::start(server_config.clone()).await.unwrap();
    let front = silent_after_the_probe(server.addr(Transport::Tcp).unwrap()).await;
    // Logins start every 0.2 s and hang; each gives up after 2 s, after the interrupt at
    // 1.5 s, while the run waits for them (up to 3 s).
    let mut scenario = util::small_scenario_with(20, 1.0, PLANNED, "connect_timeout = \"2s\"\n");
    scenario.ramp_up = Duration::from_secs(4);
    let mut c = config(scenario, remote(&server_config, front));
    c.transport = Transport::Tcp;
    let r = imbench_loadgen::run(interrupted_after(c, Duration::from_millis(1500)))
        .await
        .unwrap()
        .report;
    let run = &r.runs[0];
    assert_eq!(run.counters.connect_failures, 0, "{:?}", run.problems);
    assert!(
        run.notes
            .iter()
            .any(|n| n.starts_with("20 clients never logged in: the run was stopped first")),
        "{:?}",
        run.notes
    );
    assert!(
        r.invalid_reasons
            .iter()
            .all(|w| !w.contains("could not connect")),
        "{:?}",
        r.invalid_reasons
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_still_under_way_when_the_drain_ends_is_a_client_that_could_not_connect() {
    // 2,000 QUIC handshakes one at a time cannot end within the run's 0.6 s: the clients
    // still logging in or waiting their turn when the drain ends are given up then, not
    // let in afterwards to collect what was held for them as deliveries of this run.
    let mut scenario = util::small_scenario_with(
        2000,
        1.0,
        Duration::from_millis(200),
        "connect_concurrency = 1\nconnect_rate = 1000000\n",
    );
    scenario.ramp_up = Duration::from_millis(200);
    scenario.warmup = Duration::ZERO;
    scenario.drain = Duration::from_millis(200);
    let r = imbench_loadgen::run(config(scenario, ServerSpec::Embedded))
        .await
        .unwrap()
        .report;
    let c = &r.runs[0].counters;
    assert!(c.connect_failures > 0, "{c:?}");
    assert_eq!(r.verdict, Verdict::Invalid);
    assert!(
        r.invalid_reasons
            .iter()
            .any(|w| w.contains("clients could not connect")),
        "{:?}",
        r.invalid_reasons
    );
    assert!(
        r.runs[0]
            .problems
            .iter()
            .any(|p| p.contains("still logging in, or waiting its turn to, when the drain ended")),
        "{:?}",
        r.runs[0].problems
    );
    // What was sent to them is lost: they were not there to take it within the run.
    assert!(c.lost > 0, "{c:?}");
}

/// Runs `scenario` against a server on its own single-threaded runtime whose thread is
/// blocked `at` into the run for `hang`: its sockets stay open while it answers nothing, as a
/// deadlocked server's would.
fn run_with_a_server_that_hangs(
    scenario: imbench_loadgen::Scenario,
    at: Duration,
    hang: Duration,
) -> imbench_loadgen::Report {
    let server = ServerOnItsOwnThread::start();
    let target = server.target();
    let handle = server.handle.clone();
    let r = generator_runtime().block_on(async move {
        tokio::spawn(async move {
            tokio::time::sleep(at).await;
            handle.spawn(async move { std::thread::sleep(hang) });
        });
        imbench_loadgen::run(config(scenario, target))
            .await
            .unwrap()
            .report
    });
    drop(server);
    r
}

#[test]
fn a_server_that_hangs_is_noticed_by_the_answer_timeout() {
    let mut scenario = small_scenario(10, 20.0, PLANNED);
    scenario.generator.answer_timeout = Duration::from_secs(4);
    let r = run_with_a_server_that_hangs(
        scenario,
        Duration::from_millis(2000),
        Duration::from_secs(12),
    );
    let run = &r.runs[0];
    assert_eq!(r.verdict, Verdict::Invalid);
    assert!(
        r.invalid_reasons
            .iter()
            .any(|w| w.contains("answered nothing")),
        "{:?}",
        r.invalid_reasons
    );
    // The measured period ends where the server fell silent (1.3 s into it, to the watchdog's
    // check a second), not where that was noticed, the answer timeout (4 s) later.
    assert!(
        r.invalid_reasons[0].starts_with("stopped early: the server answered nothing"),
        "{:?}",
        r.invalid_reasons
    );
    assert!(run.duration_s < 3.5, "{}", run.duration_s);
    // Its rates are of the sends due in it: 10 clients at 20 a second, not those made into the
    // silence until it was noticed.
    assert!(
        run.throughput.sent_per_s < 300.0,
        "{} sent/s over {} s",
        run.throughput.sent_per_s,
        run.duration_s
    );
    // Messages sent into the hang were never answered: they are counted as lost, not hidden.
    assert!(run.counters.lost > 0, "{:?}", run.counters);
}

/// A server that hangs and comes back after the hang was noticed: what was sent into the
/// silence arrives in the drain, seconds late, and is out of the period (cut back to where
/// the silence began) as its sends are. Its latencies were counted, and the period delivered
/// twice what it sent (1,975 delivered/s for 1,018 sent/s).
#[test]
fn what_a_server_back_from_a_hang_delivers_late_is_outside_the_period_cut_short() {
    let mut scenario = small_scenario(10, 20.0, PLANNED);
    scenario.generator.answer_timeout = Duration::from_secs(2);
    // Noticed 2-3 s into it; back within the 3 s drain a stopped run allows.
    let r = run_with_a_server_that_hangs(
        scenario,
        Duration::from_millis(2000),
        Duration::from_millis(3500),
    );
    let run = &r.runs[0];
    assert!(
        r.invalid_reasons[0].starts_with("stopped early: the server answered nothing"),
        "{:?}",
        r.invalid_reasons
    );
    // What was sent into the silence came back: delivered late, not lost.
    assert_eq!(run.counters.lost, 0, "{:?}", run.counters);
    let direct = &run.metrics["direct"];
    assert!(
        run.throughput.delivered_per_s <= run.throughput.sent_per_s * 1.05,
        "{} delivered/s for {} sent/s; direct {direct:?}",
        run.throughput.delivered_per_s,
        run.throughput.sent_per_s
    );
    // The messages timed are those meant before the silence, not seconds into it.
    assert!(direct.p99_us < 1_000_000, "{direct:?}");
}

/// A server that hangs while large files are still on their way in the drain, with every
/// message answered: the transfers wait on it too, and the run says so once nothing has come
/// for the answer timeout, rather than waiting out the whole drain.
#[test]
fn a_server_that_hangs_under_file_transfers_is_noticed_by_the_answer_timeout() {
    let files = "[files]\nrate = 2.0\nsenders = 1\narrival = \"constant\"\nsize = \"2GiB\"\n";
    let started = std::time::Instant::now();
    let mut scenario = small_scenario_with(4, 2.0, Duration::from_secs(1), files);
    scenario.drain = Duration::from_secs(60);
    scenario.generator.answer_timeout = Duration::from_secs(2);
    let r = run_with_a_server_that_hangs(
        scenario,
        Duration::from_millis(2000),
        Duration::from_secs(8),
    );
    let took = started.elapsed();
    assert_eq!(r.verdict, Verdict::Invalid);
    assert!(
        r.invalid_reasons
            .iter()
            .any(|w| w.contains("answered nothing") && w.contains("file transfer")),
        "{:?}",
        r.invalid_reasons
    );
    assert!(
        took < Duration::from_secs(30),
        "the drain was waited out: {took:?}"
    );
}

/// A server that welcomes its clients and then reads nothing for two seconds: the generator's
/// writes fill the socket buffers and block, and `send_delay` shows how long sends were held
/// back, while `schedule_lag` (the generator's own punctuality) stays small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_reading_shows_as_send_delay_not_schedule_lag() {
    use bytes::BytesMut;
    use imbench_proto::{Codec, Frame, DEFAULT_MAX_FRAME_LEN};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const STALL: Duration = Duration::from_secs(2);

    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    // A small receive buffer, inherited by accepted connections, so that they fill quickly.
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(64).unwrap();
    let addr = listener.local_addr().unwrap();
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let mut done = done_rx.clone();
            tokio::spawn(async move {
                let codec = Codec::new(DEFAULT_MAX_FRAME_LEN);
                let mut buf = BytesMut::new();
                loop {
                    if let Ok(Some(Frame::Hello { .. })) = codec.decode(&mut buf) {
                        break;
                    }
                    if tcp.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                        return;
                    }
                }
                let mut out = BytesMut::new();
                codec
                    .encode(&Frame::Welcome { session: 1 }, &mut out)
                    .unwrap();
                let _ = tcp.write_all(&out).await;
                // Read nothing for two seconds, then read and drop everything until the test
                // ends.
                tokio::time::sleep(STALL).await;
                let mut sink = vec![0u8; 1 << 16];
                loop {
                    tokio::select! {
                        _ = done.wait_for(|d| *d) => return,
                        n = tcp.read(&mut sink) => if n.unwrap_or(0) == 0 { return },
                    }
                }
            });
        }
    });

    let server_config = ServerConfig::loopback().unwrap();
    // 2,000 messages of 4 KiB a second per client: 8 MB/s each, far past what the socket
    // buffers hold.
    let mut scenario = small_scenario(4, 2_000.0, Duration::from_secs(3));
    scenario.direct.size = imbench_loadgen::config::scenario::SizeDist::Fixed { bytes: 4096 };
    scenario.drain = Duration::from_secs(1);
    let mut c = config(scenario, remote(&server_config, addr));
    c.transport = Transport::Tcp;
    let r = imbench_loadgen::run(c).await.unwrap().report;
    let _ = done_tx.send(true);
    let run = &r.runs[0];
    let delay = &run.metrics["send_delay"];
    let lag = &run.metrics["schedule_lag"];
    assert!(
        delay.count > 0,
        "{delay:?} {:?} {:?}",
        r.invalid_reasons,
        run.counters
    );
    // Sends due early in the stall wait for most of it.
    assert!(
        delay.max_us >= STALL.as_micros() as u64 / 2,
        "send delay {delay:?}"
    );
    assert!(lag.p50_us < 100_000, "schedule lag {lag:?}");
}

/// A path whose round trips outlast the connect timeout for a transport's login is refused
/// before anything starts: two round trips over QUIC and TCP (the scenario says so itself),
/// three over TLS and WebSocket, four over WSS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_no_tls_login_could_cross_in_time_is_refused_before_the_run() {
    // 2 s each way: 8 s for two round trips, 12 s for three, against the 10 s timeout.
    let path = "[network.up]\ndelay = \"2s\"\n[network.down]\ndelay = \"2s\"\n";
    let scenario = small_scenario_with(4, 1.0, Duration::from_secs(1), path);
    for (transport, refused) in [
        (Transport::Tls, true),
        (Transport::Ws, true),
        (Transport::Wss, true),
    ] {
        let mut c = config(scenario.clone(), ServerSpec::Embedded);
        c.transport = transport;
        let e = imbench_loadgen::run::check_runnable(&c)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(e.contains("a login over"), refused, "{transport}: {e}");
    }
    let mut c = config(scenario, ServerSpec::Embedded);
    c.transport = Transport::Tcp;
    assert!(imbench_loadgen::run::check_runnable(&c).is_ok());
}
