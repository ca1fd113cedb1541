//! Connection churn end to end: clients drop their connections (cleanly and abruptly) and come
//! back while everyone chats, and every acknowledged message still arrives exactly once.

mod util;

use std::time::Duration;

use imbench_loadgen::{ServerSpec, Verdict};
use imbench_transport::Transport;
use util::{config, interrupted_after, small_scenario_with};

const CHURN: &str = r#"
[churn]
fraction = 0.5
rate = 25.0
offline = "200ms"
abrupt = 0.5
"#;

async fn churn_run(transport: Transport) {
    let mut scenario = small_scenario_with(30, 40.0, Duration::from_secs(4), CHURN);
    scenario.slo = vec!["lost == 0".into(), "duplicated == 0".into()];
    let mut c = config(scenario, ServerSpec::Embedded);
    c.transport = transport;
    let r = imbench_loadgen::run(c).await.expect("run").report;
    let run = &r.runs[0];
    let n = &run.counters;
    assert_eq!(r.verdict, Verdict::Ok, "{:?} {n:?}", r.invalid_reasons);
    assert!(n.reconnects >= 40, "{n:?}");
    assert!(n.sent > 2_000, "{n:?}");
    assert_eq!(n.rejected, 0, "{n:?}");
    assert_eq!(n.lost, 0, "{n:?}");
    assert_eq!(n.duplicated, 0, "{n:?}");
    assert_eq!(n.corrupted, 0, "{n:?}");
    assert_eq!(n.delivered, n.sent, "{n:?}");
    assert_eq!(n.acked, n.sent, "{n:?}");
    // Messages for a client that is away wait for it: 200 ms at most, and some wait long.
    let direct = &run.metrics["direct"];
    assert!(direct.max_us >= 100_000, "{direct:?}");
    // Over time, a client away is not counted as connected (about 5 of 30 are, at any time).
    let connected: Vec<u64> = run.intervals.iter().map(|p| p.connected).collect();
    assert!(connected.iter().any(|&c| c < 30), "{connected:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_arrives_exactly_once_through_churn_over_quic() {
    churn_run(Transport::Quic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_arrives_exactly_once_through_churn_over_tcp() {
    churn_run(Transport::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_arrives_exactly_once_through_churn_over_wss() {
    churn_run(Transport::Wss).await;
}

// `offline` is long beside anything the machine can add (a debug build's QUIC handshake on a
// busy CI machine gave a p99 of 131 ms): a client that waited it would hold up its messages for
// a second, and a third of the run's messages with them.
const HANDOVERS: &str = r#"
[churn]
fraction = 1.0
rate = 40.0
offline = "1s"
handover = 1.0
"#;

/// Clients that change networks: over QUIC every connection moves to its new address and
/// carries on, over TCP every one connects again; nothing acknowledged is lost either way.
/// `endpoints` is `[generator] endpoints`; the counters and the run's notes.
async fn handover_run(
    transport: Transport,
    endpoints: usize,
) -> (imbench_loadgen::report::figures::Counters, Vec<String>) {
    let mut scenario = small_scenario_with(20, 20.0, Duration::from_secs(3), HANDOVERS);
    scenario.slo = vec!["lost == 0".into(), "duplicated == 0".into()];
    scenario.generator.endpoints = endpoints;
    let mut c = config(scenario, ServerSpec::Embedded);
    c.transport = transport;
    let r = imbench_loadgen::run(c).await.expect("run").report;
    let n = r.runs[0].counters.clone();
    assert_eq!(r.verdict, Verdict::Ok, "{:?} {n:?}", r.invalid_reasons);
    assert!(n.handovers >= 20, "{n:?}");
    assert_eq!(n.lost, 0, "{n:?}");
    assert_eq!(n.duplicated, 0, "{n:?}");
    assert_eq!(n.delivered, n.sent, "{n:?}");
    // Without an emulated path a handover has no outage, whichever transport: nothing waits
    // the scenario's 1 s `offline` (over TCP the client connects again at once).
    let direct = &r.runs[0].metrics["direct"];
    assert!(direct.p99_us < 500_000, "{direct:?}");
    (n, r.runs[0].notes.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quic_client_that_changes_address_keeps_its_connection() {
    let (n, notes) = handover_run(Transport::Quic, 0).await;
    assert_eq!(n.migrations, n.handovers, "{n:?}");
    assert_eq!(n.reconnects, 0, "{n:?}");
    assert!(!notes.iter().any(|n| n.contains("endpoints")), "{notes:?}");
}

/// Clients that share UDP sockets have no socket of their own to move: they connect again,
/// and the run says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_clients_on_shared_sockets_connect_again_and_the_run_says_why() {
    let (n, notes) = handover_run(Transport::Quic, 2).await;
    assert_eq!(n.migrations, 0, "{n:?}");
    assert_eq!(n.reconnects, n.handovers, "{n:?}");
    assert!(
        notes
            .iter()
            .any(|n| n.contains("endpoints = 2") && n.contains("reconnects instead")),
        "{notes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_client_that_changes_address_connects_again() {
    let (n, notes) = handover_run(Transport::Tcp, 0).await;
    assert_eq!(n.migrations, 0, "{n:?}");
    assert_eq!(n.reconnects, n.handovers, "{n:?}");
    // 40 a second asked of 20 clients away 1 s each: they make at most 20, and it is said.
    assert!(
        notes
            .iter()
            .any(|n| n.contains("churn.rate is 40 a second") && n.contains("at most 20 times")),
        "{notes:?}"
    );
}

/// Interrupted while churning clients are away: the run still ends with a report, and no
/// client task fails on the way out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_while_clients_are_away_still_reports() {
    let churn = r#"
[churn]
fraction = 1.0
rate = 40.0
offline = "1s"
abrupt = 0.5
"#;
    let scenario = small_scenario_with(20, 10.0, Duration::from_secs(30), churn);
    let c = interrupted_after(
        config(scenario, ServerSpec::Embedded),
        Duration::from_millis(2500),
    );
    let r = imbench_loadgen::run(c).await.expect("run").report;
    let run = &r.runs[0];
    assert_eq!(r.verdict, Verdict::Invalid);
    assert!(run.counters.reconnects > 0, "{:?}", run.counters);
    assert!(
        run.problems.iter().all(|p| !p.contains("panicked")),
        "{:?}",
        run.problems
    );
}

/// Churn split over two shards against one server: a client of one shard is away while the
/// other shard's clients write to it; the server holds those messages, and the merge finds
/// every one delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_in_two_shards_loses_nothing_once_merged() {
    let server_config = imbench_server::ServerConfig::loopback().expect("config");
    let server = imbench_server::start(server_config.clone())
        .await
        .expect("server");
    let addr = server.addr(Transport::Quic).expect("quic");
    let shard = |index| {
        let scenario = small_scenario_with(30, 20.0, Duration::from_secs(3), CHURN);
        let mut c = config(scenario, util::remote(&server_config, addr));
        c.shard = Some(imbench_loadgen::Shard { index, count: 2 });
        imbench_loadgen::run(c)
    };
    let (one, two) = tokio::join!(shard(1), shard(2));
    let merged = imbench_loadgen::report::merge::merge(&[
        one.expect("shard 1").report,
        two.expect("shard 2").report,
    ])
    .expect("merge");
    let n = &merged.runs[0].counters;
    assert!(n.reconnects >= 20, "{n:?}");
    assert!(n.sent > 1_000, "{n:?}");
    assert_eq!((n.lost, n.duplicated, n.corrupted), (0, 0, 0), "{n:?}");
    assert_eq!(n.delivered, n.sent, "{n:?}");
    server.shutdown().await;
}
