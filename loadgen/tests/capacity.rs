//! The capacity search raises the load until an SLO fails and reports the highest load that
//! held. The SLO here is on offered throughput, so where it must fail is known in advance.

mod util;

use std::time::Duration;

use imbench_loadgen::run::capacity::{find_max, SearchOptions};
use imbench_loadgen::{ServerSpec, Verdict};
use util::{config, small_scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_stops_at_the_first_failing_step_and_reports_the_last_that_held() {
    // 20 clients × 10 msg/s = 200 msg/s at load 1; the SLO breaks above 500 msg/s, so loads
    // 1 and 2 hold, 4 (800 msg/s) fails, and the refinement tries 2.83 (about 566 msg/s).
    let mut scenario = small_scenario(20, 10.0, Duration::from_secs(1));
    scenario.slo = vec!["sent_per_s < 500".into(), "lost == 0".into()];
    let opts = SearchOptions {
        growth: 2.0,
        max_steps: 6,
        refine: 1,
        // The steps are judged on offered throughput; one the machine spoiled is not run again,
        // so that the steps are the ones listed below.
        machine_retries: 0,
    };
    let mut seen = Vec::new();
    let cap = find_max(config(scenario, ServerSpec::Embedded), opts, |s| {
        seen.push(s.load)
    })
    .await
    .expect("search runs");
    let loads: Vec<f64> = cap.steps.iter().map(|s| s.load).collect();
    assert_eq!(loads, seen, "every step reported as it finished");
    assert_eq!(loads.len(), 4, "{loads:?}");
    assert_eq!(&loads[..3], &[1.0, 2.0, 4.0]);
    assert!((loads[3] - 8f64.sqrt()).abs() < 1e-9);
    let held: Vec<bool> = cap.steps.iter().map(|s| s.held()).collect();
    assert_eq!(&held[..3], &[true, true, false]);
    assert_eq!(cap.steps[2].verdict, Verdict::SloFailed);
    assert!(cap.steps[2].why.iter().any(|w| w.contains("sent_per_s")));
    assert!(cap.bounded);
    // The rates were really scaled, and the answer is the highest load that held.
    assert!((cap.steps[1].direct_rate - 20.0).abs() < 1e-9);
    let best = cap.best().expect("a load held");
    assert!(best.held() && best.sent_per_s < 500.0);
    assert_eq!(best.load, if held[3] { loads[3] } else { 2.0 });
    for s in &cap.steps {
        assert_eq!(s.held(), s.sent_per_s < 500.0, "step at {}: {s:?}", s.load);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_the_machine_alone_spoiled_runs_again_at_the_same_load_and_one_an_slo_failed_does_not(
) {
    // Any use of the CPUs is more than this limit: every step is invalid for the machine.
    let mut scenario = small_scenario(10, 5.0, Duration::from_secs(1));
    scenario.slo = vec!["lost == 0".into()];
    scenario.generator.max_cpu_busy = 1e-9;
    let opts = SearchOptions {
        growth: 2.0,
        max_steps: 3,
        refine: 1,
        machine_retries: 2,
    };
    let cap = find_max(config(scenario.clone(), ServerSpec::Embedded), opts, |_| {})
        .await
        .expect("search runs");
    let loads: Vec<f64> = cap.steps.iter().map(|s| s.load).collect();
    assert_eq!(loads, [1.0, 1.0, 1.0], "three tries at the first load");
    let again: Vec<bool> = cap.steps.iter().map(|s| s.again).collect();
    assert_eq!(again, [false, true, true]);
    assert!(cap.table().contains("1.000x again"), "{}", cap.table());
    assert!(
        cap.table()
            .contains("the first load was invalid on all 3 tries"),
        "{}",
        cap.table()
    );
    for s in &cap.steps {
        assert!(s.spoiled_by_machine(), "{s:?}");
        assert!(
            s.why
                .iter()
                .all(|w| w.starts_with("the machine was the limit")),
            "{s:?}"
        );
    }
    assert!(cap.best().is_none());
    assert_eq!(cap.verdict(), Verdict::Invalid);

    // An SLO that fails at the first load ends the search at once, machine or not.
    scenario.generator.max_cpu_busy = 1.0;
    scenario.slo = vec!["sent_per_s < 1".into()];
    let cap = find_max(config(scenario, ServerSpec::Embedded), opts, |_| {})
        .await
        .expect("search runs");
    assert_eq!(cap.steps.len(), 1, "{:?}", cap.steps);
    assert_eq!(cap.steps[0].verdict, Verdict::SloFailed);
}
