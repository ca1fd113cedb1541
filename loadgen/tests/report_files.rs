//! The files a run writes: report.json reads back, intervals.hlog reads back with the
//! HdrHistogram interval-log reader and its intervals add up to the report's totals,
//! intervals.jsonl has the report's seconds line by line, and summary.md carries the verdict
//! and the figures.

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
        let from_log =
            imbench_loadgen::report::hlog::total_for(&log, &format!("quic.{metric}")).unwrap();
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
    assert!(imbench_loadgen::report::hlog::base_time(&log).is_some());

    // intervals.jsonl: one line per second of the run, the same figures as report.json's.
    let lines = std::fs::read_to_string(dir.join("intervals.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), run.intervals.len());
    for (row, point) in rows.iter().zip(&run.intervals) {
        assert_eq!(row["run"], "quic");
        assert_eq!(row["t_s"], point.t_s);
        assert_eq!(row["delivered"], point.delivered);
        assert_eq!(row["direct_p99_us"], point.direct_p99_us);
    }
    assert!(rows.iter().any(|r| r["direct_count"].as_u64() > Some(0)));

    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(md.contains("## imbench: test over quic"), "{md}");
    assert!(
        md.contains("| direct |") && md.contains("| fanout |"),
        "{md}"
    );

    // The terminal table, summary.md and report.html list the same latency rows in the same
    // order: the report's shared view.
    let rows: Vec<String> = run.latency_rows().into_iter().map(|(n, _)| n).collect();
    assert!(rows.len() >= 8, "{rows:?}");
    let table = report.table();
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let order_in = |text: &str, cell: &dyn Fn(&str) -> String| -> Vec<usize> {
        rows.iter()
            .map(|n| text.find(&cell(n)).unwrap_or_else(|| panic!("{n} missing")))
            .collect()
    };
    for (what, at) in [
        ("table", order_in(&table, &|n| format!("\n{n:<20} "))),
        ("summary.md", order_in(&md, &|n| format!("| {n} |"))),
        (
            "report.html",
            order_in(&html, &|n| format!("<tr><td>{n}</td>")),
        ),
    ] {
        assert!(
            at.windows(2).all(|w| w[0] < w[1]),
            "{what}: {rows:?} at {at:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merging_two_shards_adds_their_histograms_and_counters() {
    // Two shards of one load (the same scenario, seed included) against one server, at once.
    let server_config = imbench_server::ServerConfig::loopback().expect("config");
    let server = imbench_server::start(server_config.clone())
        .await
        .expect("server");
    let addr = server
        .addr(imbench_transport::Transport::Quic)
        .expect("quic");
    let shard = |index| {
        let mut scenario = small_scenario_with(
            20,
            20.0,
            Duration::from_secs(1),
            "[groups]\ncount = 2\nmembers = { dist = \"fixed\", size = 4 }\nrate = 10.0\n",
        );
        scenario.slo = vec!["lost == 0".into(), "direct.count > 100000".into()];
        let mut c = config(scenario, util::remote(&server_config, addr));
        c.shard = Some(imbench_loadgen::Shard { index, count: 2 });
        imbench_loadgen::run(c)
    };
    let (one, two) = tokio::join!(shard(1), shard(2));
    let mut shards = Vec::new();
    for report in [one.expect("shard 1").report, two.expect("shard 2").report] {
        // Through JSON, as `imbench merge` reads them; the group records are a file of their
        // own beside it.
        let json = serde_json::to_string(&report).unwrap();
        let mut read = serde_json::from_str::<Report>(&json).unwrap();
        read.runs[0].group_records = report.runs[0].group_records.clone();
        shards.push(read);
    }
    let merged = imbench_loadgen::report::merge::merge(&shards).unwrap();
    let (a, b, m) = (&shards[0].runs[0], &shards[1].runs[0], &merged.runs[0]);
    // (Fan-out is settled from both shards' records at the merge, so it is no sum.)
    for metric in ["direct", "ack", "group", "connect"] {
        let mut both = decode_histogram(&a.metrics[metric]).unwrap();
        both.add(decode_histogram(&b.metrics[metric]).unwrap())
            .unwrap();
        assert_eq!(
            decode_histogram(&m.metrics[metric]).unwrap(),
            both,
            "{metric}"
        );
        assert_eq!(
            m.metrics[metric].p99_us,
            both.value_at_quantile(0.99),
            "{metric}"
        );
    }
    assert_eq!(m.counters.sent, a.counters.sent + b.counters.sent);
    // (What was delivered is settled across the shards at the merge, a message of one shard's
    // sender to the other's recipient included: two_shards_merged_equal_one_run_of_both.)
    assert_eq!(m.counters.clients, 20);
    assert!(
        m.group.as_ref().unwrap().counts.expected > 0,
        "{:?}",
        m.group
    );
    assert!(
        (m.throughput.sent_per_s - a.throughput.sent_per_s - b.throughput.sent_per_s).abs() < 1e-6
    );
    // SLOs are judged again on the sums.
    let count = m
        .slo
        .iter()
        .find(|s| s.expr.starts_with("direct.count"))
        .unwrap();
    assert_eq!(count.value, m.metrics["direct"].count.to_string());
    assert_eq!(merged.verdict, imbench_loadgen::Verdict::SloFailed);
    // Shards of different transports are not one load.
    let mut other = shards[1].clone();
    other.runs[0].transport = "tcp".into();
    assert!(imbench_loadgen::report::merge::merge(&[shards[0].clone(), other]).is_err());
    // Nor are runs whose transports only read the same joined: two runs beside one named
    // "quic,quic" (a report is a file; merging them read past the second's runs).
    let mut two = shards[0].clone();
    two.runs.push(two.runs[0].clone());
    let mut one = shards[1].clone();
    one.runs[0].transport = format!("{0},{0}", one.runs[0].transport);
    let e =
        imbench_loadgen::report::merge::merge(&[two, one]).expect_err("a run more in one report");
    assert!(e.to_string().contains("report 2 ran"), "{e}");
    // Durations near the largest a report can hold are no panic either.
    let mut huge = shards[1].clone();
    huge.scenario.drain = std::time::Duration::MAX;
    let _ = imbench_loadgen::report::merge::merge(&[shards[0].clone(), huge]);
    // Nor are the same report twice, or a run an hour later.
    let refused = |reports: &[Report], says: &str| {
        let e = imbench_loadgen::report::merge::merge(reports)
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{e}");
    };
    refused(
        &[shards[0].clone(), shards[0].clone()],
        "it is report 1 again",
    );
    let mut later = shards[1].clone();
    later.runs[0].started_unix_s += 3600.0;
    refused(&[shards[0].clone(), later], "apart from report 1");
    let mut faster = shards[1].clone();
    faster.scenario.direct.rate *= 1.5;
    refused(&[shards[0].clone(), faster], "it ran direct.rate");
    let mut whole = shards[0].clone();
    whole.shard = None;
    refused(
        &[whole.clone(), shards[1].clone()],
        "report 1: it is a whole run, not a shard",
    );
    // Whole runs are not parts of one load: each logged in as every one of the users.
    let mut again = whole.clone();
    again.runs[0].started_unix_s += 0.5;
    refused(&[whole, again], "report 1: it is a whole run, not a shard");
    // Shards that started further apart than the warm-up: merged, with a note that says so.
    let mut apart = [shards[0].clone(), shards[1].clone()];
    apart[1].runs[0].started_unix_s = apart[0].runs[0].started_unix_s;
    let together = imbench_loadgen::report::merge::merge(&apart).unwrap();
    assert!(!together.runs[0].notes.iter().any(|n| n.contains("apart")));
    apart[1].runs[0].started_unix_s += apart[1].scenario.warmup.as_secs_f64() + 0.5;
    let merged_apart = imbench_loadgen::report::merge::merge(&apart).unwrap();
    assert!(
        merged_apart.runs[0]
            .notes
            .iter()
            .any(|n| n.contains("started up to") && n.contains("warm-up")),
        "{:?}",
        merged_apart.runs[0].notes
    );
    // Two shards of three are part of the load, not all of it.
    let mut of_three = [shards[0].clone(), shards[1].clone()];
    of_three[0].shard = Some("1/3".into());
    of_three[1].shard = Some("3/3".into());
    refused(&of_three, "shard 2 of 3 missing");
    // A count edited into billions is said in a line, at once, not listed.
    of_three[0].shard = Some("1/4000000000".into());
    of_three[1].shard = Some("4000000000/4000000000".into());
    refused(
        &of_three,
        "shard 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21 and 3999999978 more of 4000000000 missing",
    );
}

/// Two generators, each running one shard of a scenario's clients against one server at the
/// same time, merge into the report one generator running all of them makes: the same
/// messages sent, all delivered, none lost, as many timed; the same group messages complete
/// their fan-out, though every group has members in both shards; and the same files arrive
/// verified, though a file's sender and recipient may run in different shards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_merged_equal_one_run_of_both() {
    let server_config = imbench_server::ServerConfig::loopback().unwrap();
    let server = imbench_server::start(server_config.clone()).await.unwrap();
    let addr = server.addr(imbench_transport::Transport::Quic).unwrap();
    let more = "[groups]\ncount = 3\nmembers = { dist = \"fixed\", size = 6 }\nsenders = 2\n\
                rate = 10.0\n[files]\nrate = 8.0\nsenders = 6\n\
                size = { dist = \"fixed\", bytes = \"64KiB\" }\nto = \"contact\"\n";
    let scenario = || {
        let mut s = small_scenario_with(12, 10.0, Duration::from_millis(1500), more);
        // Every login well before sending begins: a late one skips the sends due before it,
        // and the runs would differ in `sent` (a busy machine made one so at 200 ms).
        s.ramp_up = Duration::from_secs(2);
        s.slo = ["direct.p99 < 10s", "fanout.p99 < 10s", "lost == 0"]
            .map(String::from)
            .to_vec();
        s
    };

    let whole = imbench_loadgen::run(config(scenario(), util::remote(&server_config, addr)))
        .await
        .unwrap()
        .report;

    let dir = std::env::temp_dir().join(format!("imbench-shard-records-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let shard = |index| {
        let mut c = config(scenario(), util::remote(&server_config, addr));
        c.shard = Some(imbench_loadgen::Shard { index, count: 2 });
        c.out_dir = Some(dir.join(format!("shard-{index}")));
        imbench_loadgen::run(c)
    };
    let (one, two) = tokio::join!(shard(1), shard(2));
    let (one, two) = (one.unwrap().report, two.unwrap().report);
    assert_eq!(one.shard.as_deref(), Some("1/2"));
    assert_eq!(one.runs[0].counters.clients, 6);
    for start in [
        "shard 1/2: this report holds",
        "shard 1/2: a group's members",
    ] {
        assert!(
            one.runs[0].notes.iter().any(|n| n.starts_with(start)),
            "{:?}",
            one.runs[0].notes
        );
    }
    // A shard alone has no fan-out: its groups' other members ran in the other shard.
    assert_eq!(one.runs[0].metrics["fanout"].count, 0);
    // So it judges only its own latencies; the rest waits for the merge.
    let judged: Vec<&str> = one.runs[0].slo.iter().map(|r| r.expr.as_str()).collect();
    assert_eq!(judged, ["direct.p99 < 10s"]);
    assert!(
        one.runs[0]
            .notes
            .iter()
            .any(|n| n.contains("judged when the shards are merged: fanout.p99 < 10s, lost == 0")),
        "{:?}",
        one.runs[0].notes
    );

    // The records each shard wrote beside its report read back as the ones it kept.
    let folder = dir.join("shard-1");
    let json = std::fs::read_to_string(folder.join("report.json")).unwrap();
    let mut read: Report = serde_json::from_str(&json).unwrap();
    assert!(read.runs[0].group_records.is_none());
    read.read_group_records(&folder).unwrap();
    assert_eq!(read.runs[0].group_records, one.runs[0].group_records);
    // Another shard's records beside this report are refused, not settled as its own.
    std::fs::copy(
        dir.join("shard-2/group-ledger.json"),
        dir.join("copy-of-2.json"),
    )
    .unwrap();
    std::fs::copy(dir.join("copy-of-2.json"), folder.join("group-ledger.json")).unwrap();
    let err = read.read_group_records(&folder).unwrap_err();
    assert!(
        err.contains("not written with the report beside it"),
        "{err}"
    );
    // Without them a merge cannot settle the groups, and says so.
    let mut bare = two.clone();
    bare.runs[0].group_records = None;
    let err = imbench_loadgen::report::merge::merge(&[one.clone(), bare]).unwrap_err();
    assert!(err.to_string().contains("group-ledger.json"), "{err}");

    let merged = imbench_loadgen::report::merge::merge(&[one.clone(), two.clone()]).unwrap();
    // A merged report among the shards (a merge's --out inside their folder) is named so.
    let err = imbench_loadgen::report::merge::merge(&[merged.clone(), one, two]).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "report 1: it is a merged report (an earlier imbench merge wrote it), not a shard"
        ),
        "{err}"
    );
    let (w, m) = (&whole.runs[0].counters, &merged.runs[0].counters);
    assert!(w.sent > 100, "{w:?}");
    assert_eq!(m.sent, w.sent, "the shards send what one generator sends");
    assert_eq!(m.clients, w.clients);
    assert_eq!(
        (m.expected, m.delivered, m.lost),
        (w.expected, w.delivered, 0)
    );
    assert_eq!(w.lost, 0);
    assert!(w.files_verified > 5, "{w:?}");
    assert_eq!(
        (m.files_sent, m.files_verified, m.files_unfinished),
        (w.files_sent, w.files_verified, 0)
    );
    assert_eq!(m.files_failed + m.files_corrupted, 0);
    for metric in ["direct", "group", "fanout", "file"] {
        assert_eq!(
            merged.runs[0].metrics[metric].count, whole.runs[0].metrics[metric].count,
            "{metric}"
        );
    }
    let (wg, mg) = (
        whole.runs[0].group.as_ref().unwrap(),
        merged.runs[0].group.as_ref().unwrap(),
    );
    assert!(wg.counts.expected > 100, "{wg:?}");
    assert_eq!(mg.counts.expected, wg.counts.expected);
    assert_eq!((mg.counts.lost, mg.counts.incomplete), (0, 0));
    assert_eq!(merged.scenario.clients, 12);
    assert_eq!(merged.runs[0].slo.len(), 3);
    assert_eq!(
        merged.verdict,
        imbench_loadgen::Verdict::Ok,
        "{:?}",
        merged.invalid_reasons
    );
    let notes = &merged.runs[0].notes;
    assert!(
        notes[0].starts_with("merged from 2 shards (1/2, 2/2)"),
        "{notes:?}"
    );
    assert!(
        !notes.iter().any(|n| n.starts_with("shard 1/2:")),
        "{notes:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    server.shutdown().await;
}

/// Shards that start apart still time each other's messages on one clock: a message carries
/// wall-clock times, not times since its own generator's start. Shard 2 starts 300 ms after
/// shard 1 (each with a warm-up longer than that, so everyone is connected before anything
/// is measured): timed on each shard's own start, half the messages would show 300 ms more
/// than they took and the other half nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_started_apart_time_each_others_messages_on_one_clock() {
    let server_config = imbench_server::ServerConfig::loopback().unwrap();
    let server = imbench_server::start(server_config.clone()).await.unwrap();
    let addr = server.addr(imbench_transport::Transport::Quic).unwrap();
    let shard = |index| {
        let mut s = small_scenario_with(12, 10.0, Duration::from_millis(1500), "");
        s.warmup = Duration::from_secs(1);
        let mut c = config(s, util::remote(&server_config, addr));
        c.shard = Some(imbench_loadgen::Shard { index, count: 2 });
        imbench_loadgen::run(c)
    };
    let later = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        shard(2).await
    };
    let (one, two) = tokio::join!(shard(1), later);
    let (one, two) = (one.unwrap().report, two.unwrap().report);
    // The same shards as if the second had loaded another server: not one load.
    let mut elsewhere = two.clone();
    elsewhere.runs[0].server = "127.0.0.1:1".into();
    let err = imbench_loadgen::report::merge::merge(&[one.clone(), elsewhere]).unwrap_err();
    assert!(
        err.to_string()
            .contains("it loaded the server at 127.0.0.1:1, report 1 the one at"),
        "{err}"
    );
    let merged = imbench_loadgen::report::merge::merge(&[one, two]).unwrap();
    let direct = &merged.runs[0].metrics["direct"];
    assert!(direct.count > 100, "{direct:?}");
    assert_eq!(merged.runs[0].counters.lost, 0);
    assert!(
        direct.p99_us < 150_000,
        "a clock per shard shows in the latency: {direct:?}"
    );
    assert!(direct.min_us > 0, "{direct:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_shard_needs_a_shared_server() {
    let mut c = config(
        small_scenario_with(4, 1.0, Duration::from_millis(100), ""),
        ServerSpec::Embedded,
    );
    c.shard = Some("1/2".parse().unwrap());
    let err = imbench_loadgen::run(c).await.err().expect("refused");
    assert!(err.to_string().contains("--server"), "{err}");
    assert!("0/2".parse::<imbench_loadgen::Shard>().is_err());
    assert!("3/2".parse::<imbench_loadgen::Shard>().is_err());
}

/// The same shard run twice at once logs in the same user ids twice: the server closes the
/// older session of each (`replaced`), and the reports say that is why their clients were
/// disconnected; the merge refuses the pair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_shard_twice_is_named_as_such() {
    let server_config = imbench_server::ServerConfig::loopback().unwrap();
    let server = imbench_server::start(server_config.clone()).await.unwrap();
    let addr = server.addr(imbench_transport::Transport::Quic).unwrap();
    let shard = || {
        let mut c = config(
            small_scenario_with(12, 10.0, Duration::from_millis(1000), ""),
            util::remote(&server_config, addr),
        );
        c.shard = Some(imbench_loadgen::Shard { index: 1, count: 2 });
        imbench_loadgen::run(c)
    };
    let (a, b) = tokio::join!(shard(), shard());
    let (a, b) = (a.unwrap().report, b.unwrap().report);
    let reasons: Vec<&String> = a.invalid_reasons.iter().chain(&b.invalid_reasons).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("`replaced`") && r.contains("the same --shard")),
        "{reasons:?}"
    );
    let err = imbench_loadgen::report::merge::merge(&[a, b]).unwrap_err();
    assert!(
        err.to_string().contains("shard 1/2 is also report 1"),
        "{err}"
    );
    server.shutdown().await;
}
