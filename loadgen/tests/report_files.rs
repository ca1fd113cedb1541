//! The files a run writes: report.json reads back, intervals.hlog reads back with the
//! HdrHistogram interval-log reader and its intervals add up to the report's totals, and
//! summary.md carries the verdict and the figures.

mod util;

use std::time::Duration;

use imbench_loadgen::report::decode_histogram;
use imbench_loadgen::{Report, ServerSpec};
use util::{config, small_scenario_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_json_hlog_and_summary_agree() {
    let dir = std::env::temp_dir().join(format!("imbench-report-files-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let scenario = small_scenario_with(
        20,
        20.0,
        Duration::from_secs(2),
        "[groups]\ncount = 2\nmembers = { dist = \"fixed\", size = 5 }\nrate = 10.0\n",
    );
    let mut c = config(scenario, ServerSpec::Embedded);
    c.out_dir = Some(dir.clone());
    imbench_loadgen::run(c).await.unwrap();

    let json = std::fs::read_to_string(dir.join("report.json")).unwrap();
    let report: Report = serde_json::from_str(&json).unwrap();
    let run = &report.runs[0];
    assert!(run.started_unix_s > 1.6e9, "{}", run.started_unix_s);

    let log = std::fs::read(dir.join("intervals.hlog")).unwrap();
    let text = String::from_utf8_lossy(&log);
    assert!(
        text.contains("#[BaseTime:") && text.contains("Tag=quic.direct,"),
        "{text}"
    );
    for metric in ["direct", "ack", "group", "connect"] {
        let from_log = imbench_loadgen::hlog::total_for(&log, &format!("quic.{metric}")).unwrap();
        let summary = &run.metrics[metric];
        let from_json = decode_histogram(summary).unwrap();
        assert!(summary.count > 0, "{metric}");
        assert_eq!(from_log.len(), summary.count, "{metric}: count");
        assert_eq!(from_log, from_json, "{metric}: histograms differ");
        assert_eq!(
            from_log.value_at_quantile(0.99),
            summary.p99_us,
            "{metric}: p99"
        );
    }
    assert!(imbench_loadgen::hlog::base_time(&log).is_some());

    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(md.contains("## imbench: test over quic"), "{md}");
    assert!(
        md.contains("| direct |") && md.contains("| fanout |"),
        "{md}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
