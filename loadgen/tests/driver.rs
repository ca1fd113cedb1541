//! The driver seam: whole runs of simulated clients over the in-memory hub, with no server and
//! no transport, accounted for exactly as over the imbench driver.

mod util;

use std::time::Duration;

use imbench_loadgen::{RunError, ServerSpec, Verdict};
use util::{config, small_scenario_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_run_direct_chat_and_groups_without_any_transport() {
    let scenario = small_scenario_with(
        30,
        20.0,
        Duration::from_secs(2),
        "[groups]\ncount = 3\nmembers = { dist = \"fixed\", size = 6 }\nrate = 10.0\n",
    );
    let outcome = imbench_loadgen::run(config(scenario, ServerSpec::Memory))
        .await
        .expect("a run over the hub");
    let report = outcome.report;
    let run = &report.runs[0];
    let c = &run.counters;
    assert_eq!(report.verdict, Verdict::Ok, "{:?}", report.invalid_reasons);
    assert_eq!(
        (run.transport.as_str(), run.server.as_str()),
        ("memory", "memory")
    );
    assert_eq!((c.clients, c.connect_failures, c.disconnects), (30, 0, 0));
    assert!(c.sent > 500, "{c:?}");
    assert_eq!(c.expected, c.delivered, "{c:?}");
    assert_eq!((c.lost, c.duplicated, c.corrupted, c.errors), (0, 0, 0, 0));
    let group = run.group.as_ref().expect("group accounting");
    assert!(group.counts.delivered_expected > 100, "{group:?}");
    assert_eq!(
        (group.counts.lost, group.counts.incomplete),
        (0, 0),
        "{group:?}"
    );
    for metric in ["connect", "direct", "ack", "group", "fanout"] {
        assert!(run.metrics[metric].count > 0, "{metric} has no samples");
    }
    assert!(run.problems.is_empty(), "{:?}", run.problems);
}

#[tokio::test]
async fn a_scenario_with_files_is_refused_over_the_hub() {
    let scenario = small_scenario_with(
        4,
        1.0,
        Duration::from_secs(1),
        "[files]\nrate = 0.5\nsize = { dist = \"fixed\", bytes = \"4KiB\" }\n",
    );
    match imbench_loadgen::run(config(scenario, ServerSpec::Memory)).await {
        Err(e @ RunError::Unsupported(_)) => {
            assert!(e.to_string().contains("no files"), "{e}");
            assert_eq!(e.exit_code(), imbench_loadgen::exit_code::USAGE);
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a run with files went ahead over the hub"),
    }
}
