//! Group workloads end to end against the real server: every owed delivery accounted for,
//! with and without members leaving and rejoining while messages flow.

mod util;

use std::time::Duration;

use imbench_loadgen::{ServerSpec, Verdict};
use util::{config, small_scenario_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stable_groups_owe_every_other_member_each_message() {
    // Direct chat off: only groups. Three groups of 6, every member sends.
    let scenario = small_scenario_with(
        30,
        0.0,
        Duration::from_secs(2),
        "[groups]\ncount = 3\nmembers = { dist = \"fixed\", size = 6 }\nrate = 40.0\n",
    );
    let outcome = imbench_loadgen::run(config(scenario, ServerSpec::Embedded))
        .await
        .unwrap();
    let r = &outcome.report;
    let run = &r.runs[0];
    let g = run.group.as_ref().expect("group report");
    assert!(g.counts.sent > 150, "{g:?}");
    assert_eq!((g.acked, g.rejected), (g.counts.sent, 0));
    // Each message is owed to the 5 others, except to a member whose Joined arrived after the
    // message was written: the last clients connect just as sending begins, so a few of the
    // first messages may fall into their join (the race window) and are owed to fewer.
    let all = g.counts.sent * 5;
    assert!(g.counts.expected + g.counts.race_delivered <= all, "{g:?}");
    assert!(g.counts.expected >= all / 2, "{g:?}");
    assert_eq!(g.counts.delivered_expected, g.counts.expected);
    assert_eq!(
        (g.counts.lost, g.counts.incomplete, g.counts.unexpected),
        (0, 0, 0),
        "{g:?}"
    );
    assert_eq!((g.counts.duplicated, g.counts.reordered), (0, 0));
    let per_group: u64 = g.groups.iter().map(|x| x.counts.sent).sum();
    assert_eq!(per_group, g.counts.sent);
    // Each measured message has one fan-out figure and five per-recipient figures.
    let fanout = &run.metrics["fanout"];
    let group = &run.metrics["group"];
    assert!(fanout.count > 0);
    assert_eq!(group.count, fanout.count * 5);
    assert!(fanout.p50_us >= group.p50_us);
    assert_eq!(run.metrics["fanout_le10"].count, fanout.count);
    assert_eq!(run.counters.lost, 0);
    assert_eq!(run.counters.sent, g.counts.sent);
    assert_eq!(r.verdict, Verdict::Ok, "{:?}", r.invalid_reasons);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churning_members_are_accounted_exactly_beside_direct_chat() {
    // Two senders and four churning members per group, each churner changing membership
    // about twice a second, while direct chat runs too.
    let scenario = small_scenario_with(
        40,
        5.0,
        Duration::from_secs(3),
        "[groups]\ncount = 4\nmembers = { dist = \"uniform\", min = 8, max = 20 }\nsenders = 2\nrate = 50.0\nchurn = { members = 4, rate = 8.0 }\n",
    );
    let outcome = imbench_loadgen::run(config(scenario, ServerSpec::Embedded))
        .await
        .unwrap();
    let r = &outcome.report;
    let run = &r.runs[0];
    let g = run.group.as_ref().expect("group report");
    assert!(g.counts.sent > 400, "{g:?}");
    assert_eq!(g.acked, g.counts.sent);
    // Churn happened: some deliveries fell into a membership change.
    assert_eq!(g.refused_membership_changes, 0);
    assert_eq!(g.counts.delivered_expected, g.counts.expected, "{g:?}");
    assert_eq!(
        (g.counts.lost, g.counts.unexpected, g.counts.duplicated),
        (0, 0, 0),
        "{g:?}"
    );
    // Churners are out about half the time, so fewer than sent × (members − 1) are owed.
    let most: u64 = g
        .groups
        .iter()
        .map(|x| x.counts.sent * (x.members as u64 - 1))
        .sum();
    assert!(
        g.counts.expected < most,
        "expected {} of at most {most}",
        g.counts.expected
    );
    assert_eq!(run.counters.lost, 0);
    assert!(run.metrics["direct"].count > 0);
    assert_eq!(r.verdict, Verdict::Ok, "{:?}", r.invalid_reasons);
}

/// A full group refuses some members' first Join; a churning member refused so goes on asking
/// to leave and join again, and those answers (refused or not) answer no first Join: the
/// count of Joins still waiting ends at 0, never below it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_joins_and_membership_changes_leave_no_join_waiting() {
    let mut server_config = imbench_server::ServerConfig::loopback().expect("config");
    server_config.limits.max_group_members = 5;
    let server = imbench_server::start(server_config.clone())
        .await
        .expect("server");
    let addr = server
        .addr(imbench_transport::Transport::Quic)
        .expect("quic");
    let scenario = small_scenario_with(
        20,
        0.0,
        Duration::from_secs(2),
        "[groups]\ncount = 2\nmembers = { dist = \"fixed\", size = 9 }\nsenders = 1\nrate = 10.0\nchurn = { members = 4, rate = 8.0 }\n",
    );
    let mut c = config(scenario, util::remote(&server_config, addr));
    let live = std::sync::Arc::new(imbench_loadgen::run::live_metrics::LiveBoard::default());
    c.live = Some(live.clone());
    let r = imbench_loadgen::run(c).await.expect("run").report;
    let g = r.runs[0].group.as_ref().expect("group report");
    assert!(r.runs[0].counters.errors > 0, "some joins were refused");
    assert!(g.counts.sent > 0, "{g:?}");
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &live.registry()).expect("encode");
    let pending: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("imbench_joins_pending{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert_eq!(pending, vec![0.0], "{text}");
    server.shutdown().await;
}
