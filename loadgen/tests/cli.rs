//! The `imbench` binary: each documented exit code, and errors that say what is wrong.

use std::path::PathBuf;
use std::process::{Command, Output};

const TINY: &str = r#"
name = "tiny"
clients = 10
ramp_up = "100ms"
warmup = "200ms"
duration = "1s"
drain = "3s"
seed = 5
[direct]
rate = 20.0
arrival = "constant"
size = { dist = "fixed", bytes = "64B" }
partners = { pick = "ring", count = 2 }
# These tests are about exit codes, not the generator's punctuality or the CPU left over on a
# busy test machine.
[generator]
max_schedule_lag = "1s"
max_cpu_busy = 1.0
max_cpu_wait = "1h"
max_hiccup = "1h"
"#;

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("imbench-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }

    /// A file `name` holding a fresh random token secret (not any server's).
    fn random_secret(&self, name: &str) -> PathBuf {
        self.file(name, &imbench_server::Secret::generate().unwrap().to_hex())
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn imbench(dir: &Dir, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imbench"))
        .current_dir(&dir.0)
        .args(args)
        .output()
        .expect("runs imbench")
}

/// Starts imbench with `args` in `dir`, its output kept for `wait_with_output`.
fn started(dir: &Dir, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_imbench"))
        .current_dir(&dir.0)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts imbench")
}

/// Waits, for at most 20 s, until `path` is a folder: a run started beside has made it.
fn wait_for_folder(path: &std::path::Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !path.is_dir() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Runs imbench with `args` in `dir`, sends it SIGINT (as Ctrl-C does) after `after`, and
/// returns its output and how long it took to end after the signal.
fn interrupted(
    dir: &Dir,
    args: &[&str],
    after: std::time::Duration,
) -> (Output, std::time::Duration) {
    signalled(dir, args, after, "INT")
}

/// Runs imbench, sends it `signal` after `after`, and waits for it to end.
fn signalled(
    dir: &Dir,
    args: &[&str],
    after: std::time::Duration,
    signal: &str,
) -> (Output, std::time::Duration) {
    let child = Command::new(env!("CARGO_BIN_EXE_imbench"))
        .args(args)
        .current_dir(&dir.0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let sent = std::time::Instant::now();
    let killed = Command::new("kill")
        .args(["-s", signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    (out, sent.elapsed())
}

/// What `scripts/machine-limited` says of the report in `dir`/`report`: 0 when it failed for
/// the machine alone (or an SLO on one of `metrics`), 1 otherwise.
fn machine_limited(dir: &Dir, report: &str, metrics: &[&str]) -> Option<i32> {
    machine_limited_with(&[], dir, report, metrics)
}

/// `scripts/machine-limited` with `options` before the report folder.
fn machine_limited_with(
    options: &[&str],
    dir: &Dir,
    report: &str,
    metrics: &[&str],
) -> Option<i32> {
    Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/machine-limited"
    ))
    .args(options)
    .arg(dir.0.join(report))
    .args(metrics)
    .output()
    .expect("scripts/machine-limited runs (python3)")
    .status
    .code()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn exit_0_when_slos_hold_and_the_report_is_written() {
    let dir = Dir::new("ok");
    let scenario = dir.file("s.toml", TINY);
    let out = imbench(
        &dir,
        &[
            "run",
            scenario.to_str().unwrap(),
            "--slo",
            "lost==0",
            "--slo",
            "direct.p99<2s",
            "--out",
            "r",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The last line names the page for a person beside the file for machines.
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(
        last.contains("report.json") && last.contains("report.html"),
        "{last}"
    );
    assert!(!text(&out).contains("earlier report"), "{}", text(&out));
    let version = imbench(&dir, &["--version"]);
    assert!(
        String::from_utf8_lossy(&version.stdout).starts_with("imbench "),
        "{}",
        text(&version)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.0.join("r/report.json")).unwrap())
            .unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["runs"][0]["transport"], "quic");
    // Into the same folder again: the run says it replaces the report there.
    let again = imbench(&dir, &["run", scenario.to_str().unwrap(), "--out", "r"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(
        text(&again).contains("r held an earlier report: removed, this run's goes there"),
        "{}",
        text(&again)
    );
    // A run that fails into a folder leaves no earlier report there to pass for its own.
    let earlier = std::fs::read_to_string(dir.0.join("r/report.json")).unwrap();
    std::fs::create_dir_all(dir.0.join("failed")).unwrap();
    dir.file("failed/report.json", &earlier);
    let secret = dir.random_secret("secret");
    let failed = imbench(
        &dir,
        &[
            "run",
            scenario.to_str().unwrap(),
            "--out",
            "failed",
            "--transport",
            "tcp",
            "--server",
            "127.0.0.1:1",
            "--secret-file",
            secret.to_str().unwrap(),
        ],
    );
    assert_eq!(failed.status.code(), Some(3), "{}", text(&failed));
    assert!(
        !dir.0.join("failed/report.json").exists(),
        "{}",
        text(&failed)
    );
    assert!(
        text(&failed).contains("removed, as this run could not take place"),
        "{}",
        text(&failed)
    );
    // A run refused for its usage leaves the earlier report as it was: here an SLO on a
    // counter only imbench's own clients make, against another system (nothing listens there:
    // the scenario is refused before anything is reached), in a scenario with churn (without,
    // the SLO is refused sooner, for the scenario's sake).
    dir.file("failed/report.json", &earlier);
    let churning = dir.file(
        "churning.toml",
        &format!("{TINY}[churn]\nfraction = 0.5\nrate = 2.0\noffline = \"100ms\"\n"),
    );
    let refused = imbench(
        &dir,
        &[
            "run",
            churning.to_str().unwrap(),
            "--out",
            "failed",
            "--target",
            "nats://127.0.0.1:1",
            "--slo",
            "zero_rtt == 0",
        ],
    );
    assert!(
        text(&refused).contains("gives no zero_rtt"),
        "{}",
        text(&refused)
    );
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert_eq!(
        std::fs::read_to_string(dir.0.join("failed/report.json")).ok(),
        Some(earlier.clone()),
        "{}",
        text(&refused)
    );
    assert!(
        text(&refused).contains("failed still holds an earlier run's report, left as it was"),
        "{}",
        text(&refused)
    );
    for m in [
        "direct",
        "direct_uncorrected",
        "ack",
        "connect",
        "group",
        "fanout",
        "file",
    ] {
        assert!(
            report["runs"][0]["metrics"][m]["count"].is_u64(),
            "{m} missing"
        );
    }
    assert!(
        report["runs"][0]["metrics"]["direct"]["count"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(report["runs"][0]["counters"]["lost"], 0);
    // The hiccup meter woke about once a millisecond through the measured period, and the
    // table shows its row.
    let duration_ms = report["runs"][0]["duration_s"].as_f64().unwrap() * 1e3;
    let hiccups = report["runs"][0]["metrics"]["hiccup"]["count"]
        .as_u64()
        .unwrap() as f64;
    assert!(
        hiccups > duration_ms * 0.9 && hiccups < duration_ms * 1.1,
        "{hiccups} hiccup samples in {duration_ms} ms"
    );
    let t = text(&out);
    assert!(t.contains("\nhiccup "), "{t}");
    assert!(
        t.contains("p99.9") && t.contains("duplicated") && t.contains("verdict: OK"),
        "{t}"
    );
}

/// The default report folder is named after the second the run starts; a run that finds that
/// name taken (another run started in the same second) takes the next, and leaves the other's
/// report as it was.
#[test]
fn a_second_run_given_a_folder_a_run_is_writing_is_refused() {
    let dir = Dir::new("held-out");
    let scenario = dir.file("s.toml", TINY);
    let out = dir.0.join("same");
    let quiet_run = |out: &str, more: &[&str]| {
        let mut args = vec!["run", scenario.to_str().unwrap(), "--progress", "quiet"];
        args.extend(more);
        args.extend(["--out", out]);
        started(&dir, &args)
    };
    let first = quiet_run("same", &[]);
    // The folder is made, then taken at once; the run lasts seconds more.
    wait_for_folder(&out);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let second = imbench(
        &dir,
        &[
            "run",
            scenario.to_str().unwrap(),
            "--seed",
            "9",
            "--out",
            "same",
        ],
    );
    let first = first.wait_with_output().unwrap();
    assert_eq!(second.status.code(), Some(2), "{}", text(&second));
    assert!(
        text(&second).contains("another run is writing its report there now"),
        "{}",
        text(&second)
    );
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        report["scenario"]["seed"], 5,
        "the first run's report is whole"
    );
    // Once the first has ended, the folder is free again.
    let third = imbench(&dir, &["run", scenario.to_str().unwrap(), "--out", "same"]);
    assert_eq!(third.status.code(), Some(0), "{}", text(&third));

    // Runs started at once into folders side by side (the shards of one load) each look at
    // the folder they share: none takes another's look for a run holding it.
    let beside: Vec<_> = (0..4)
        .map(|i| quiet_run(&format!("side/by-{i}"), &[]))
        .collect();
    for run in beside {
        let out = run.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }

    // Repeats being written: neither their folder nor one of their runs' is another's, even
    // before their repeat.json is written.
    let repeats = dir.0.join("rep");
    let first = quiet_run("rep", &["--repeat", "2"]);
    wait_for_folder(&repeats.join("run-1"));
    let into_a_run = imbench(
        &dir,
        &["run", scenario.to_str().unwrap(), "--out", "rep/run-1"],
    );
    let over_them = imbench(
        &dir,
        &[
            "run",
            scenario.to_str().unwrap(),
            "--repeat",
            "2",
            "--out",
            "rep",
        ],
    );
    let first = first.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert_eq!(into_a_run.status.code(), Some(2), "{}", text(&into_a_run));
    assert!(
        text(&into_a_run).contains("which another run is writing now"),
        "{}",
        text(&into_a_run)
    );
    assert_eq!(over_them.status.code(), Some(2), "{}", text(&over_them));
    assert!(
        text(&over_them).contains("another run is writing its report there now"),
        "{}",
        text(&over_them)
    );
}

#[test]
fn a_run_whose_default_folder_is_taken_writes_beside_it() {
    let dir = Dir::new("taken");
    let scenario = dir.file("s.toml", TINY);
    // Every name the run could take in the next seconds, each holding another run's report.
    let now = std::time::SystemTime::now();
    let taken: Vec<PathBuf> = (0..20)
        .map(|s| {
            let stamp = humantime::format_rfc3339_seconds(now + std::time::Duration::from_secs(s))
                .to_string()
                .replace(['-', ':'], "");
            let folder = dir.0.join(format!("reports/tiny-{stamp}"));
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::write(folder.join("report.json"), "another run's").unwrap();
            folder
        })
        .collect();
    let out = imbench(&dir, &["run", scenario.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("earlier report"), "{}", text(&out));
    for folder in &taken {
        assert_eq!(
            std::fs::read_to_string(folder.join("report.json")).unwrap(),
            "another run's"
        );
    }
    let written: Vec<String> = std::fs::read_dir(dir.0.join("reports"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("-2"))
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    let report = dir.0.join("reports").join(&written[0]).join("report.json");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("reports/{}/report.json", written[0])),
        "{}",
        text(&out)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    assert_eq!(report["ok"], true);
}

/// `compare --help` names every figure the gate checks by default.
#[test]
fn compare_help_names_the_default_checks() {
    let dir = Dir::new("compare-help");
    let out = imbench(&dir, &["compare", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout).replace(char::is_whitespace, "");
    for name in imbench_loadgen::report::regression::DEFAULT_CHECKS {
        assert!(help.contains(name), "{name} not in: {help}");
    }
}

#[test]
fn exit_1_when_an_slo_fails() {
    let dir = Dir::new("slo");
    // Churn so rare (one drop in 1,000 s) that no client reconnects in this run.
    let scenario = dir.file(
        "s.toml",
        &format!("{TINY}[churn]\nfraction = 1.0\nrate = 0.001\noffline = \"100ms\"\n"),
    );
    let out = imbench(
        &dir,
        &[
            "run",
            scenario.to_str().unwrap(),
            "--slo",
            "direct.p50<1us",
            "--slo",
            "reconnect.p99<10s",
            "--out",
            "r",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("FAIL"), "{}", text(&out));
    // No client reconnects in this run: a bound on that latency has nothing to hold.
    let report = std::fs::read_to_string(dir.0.join("r/report.json")).expect("report");
    assert!(
        report.contains("no samples"),
        "an SLO on no samples passed: {report}"
    );
    // Without [churn] at all, the same SLO is refused before the run.
    let plain = dir.file("plain.toml", TINY);
    let args = ["run", plain.to_str().unwrap(), "--slo", "reconnect.p99<10s"];
    let out = imbench(&dir, &args);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("has no churn"), "{}", text(&out));
    // Missed SLOs on the system's figures are not the machine's, whatever it was doing.
    assert_eq!(machine_limited(&dir, "r", &["schedule_lag"]), Some(1));
}

#[test]
fn a_mistyped_target_is_named_without_its_password() {
    let dir = Dir::new("typo-secret");
    for url in [
        "mqtt://bob:s3cretPW@127.0.0.1:1883?qso=2",
        "nats://s3cretPW@127.0.0.1",
        "xmpp://u-{user}:s3cret%50W@127.0.0.1:5222?muc=",
    ] {
        let out = imbench(&dir, &["run", "--target", url]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(!text(&out).contains("s3cret"), "{}", text(&out));
        assert!(
            text(&out).contains(":***@") || text(&out).contains("//***@"),
            "{}",
            text(&out)
        );
    }
}

#[test]
fn a_missed_slo_on_the_schedule_lag_alone_may_be_the_machines() {
    let dir = Dir::new("lag-slo");
    let scenario = dir.file("s.toml", TINY);
    let out = imbench(
        &dir,
        &[
            "run",
            scenario.to_str().unwrap(),
            "--slo",
            "schedule_lag.count<1",
            "--out",
            "r",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(machine_limited(&dir, "r", &["schedule_lag"]), Some(0));
    // Only when the caller says that metric is the machine's.
    assert_eq!(machine_limited(&dir, "r", &[]), Some(1));
    assert_eq!(machine_limited(&dir, "no-such-report", &[]), Some(2));
    // A folder of repeated runs is judged over every run in it, and a merge's reasons name
    // the shard first.
    let report = std::fs::read_to_string(dir.0.join("r/report.json")).unwrap();
    for run in ["reps/run-1", "reps/run-2"] {
        std::fs::create_dir_all(dir.0.join(run)).unwrap();
        std::fs::write(dir.0.join(run).join("report.json"), &report).unwrap();
    }
    assert_eq!(machine_limited(&dir, "reps", &["schedule_lag"]), Some(0));
    assert_eq!(machine_limited(&dir, "reps", &[]), Some(1));
    let mut merged: serde_json::Value = serde_json::from_str(&report).unwrap();
    merged["verdict"] = serde_json::json!("invalid");
    merged["invalid_reasons"] =
        serde_json::json!(["shard 2: the machine was the limit: its CPUs were 97% busy"]);
    std::fs::create_dir_all(dir.0.join("merged")).unwrap();
    std::fs::write(dir.0.join("merged/report.json"), merged.to_string()).unwrap();
    assert_eq!(machine_limited(&dir, "merged", &["schedule_lag"]), Some(0));
    // A late schedule is the machine's only when the caller says so, and so are the run's
    // missed SLOs on latencies and rates (here the one on schedule_lag); one on a count never.
    merged["invalid_reasons"] = serde_json::json!([
        "this: generator saturated: schedule lag p99 39.00ms exceeds 10.00ms",
        "this: the machine paused this process for 63.00ms"
    ]);
    std::fs::create_dir_all(dir.0.join("late")).unwrap();
    std::fs::write(dir.0.join("late/report.json"), merged.to_string()).unwrap();
    let saturated = "--saturated-too";
    let figures = "--figures-too";
    assert_eq!(machine_limited(&dir, "late", &["schedule_lag"]), Some(1));
    assert_eq!(
        machine_limited_with(&[saturated], &dir, "late", &["schedule_lag"]),
        Some(0)
    );
    assert_eq!(
        machine_limited_with(&[saturated], &dir, "late", &[]),
        Some(1)
    );
    assert_eq!(
        machine_limited_with(&[saturated, figures], &dir, "late", &[]),
        Some(0)
    );
    assert_eq!(machine_limited_with(&[figures], &dir, "late", &[]), Some(1));
    // An option after the folder is an option still, not a metric's name.
    assert_eq!(
        machine_limited(&dir, "late", &["schedule_lag", saturated]),
        Some(0)
    );
    // Sends the generator was too far behind to make before the schedule ended are a late
    // schedule too.
    let mut behind = merged.clone();
    behind["invalid_reasons"] = serde_json::json!([
        "this: 1,204 messages due before the schedule's end never sent: the generator was still more than 10.00ms behind its schedule when the schedule ended, where sends stop"
    ]);
    std::fs::create_dir_all(dir.0.join("behind")).unwrap();
    std::fs::write(dir.0.join("behind/report.json"), behind.to_string()).unwrap();
    assert_eq!(machine_limited(&dir, "behind", &["schedule_lag"]), Some(1));
    assert_eq!(
        machine_limited_with(&[saturated], &dir, "behind", &["schedule_lag"]),
        Some(0)
    );
    merged["runs"][0]["slo"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"expr": "lost == 0", "value": "3", "ok": false}));
    std::fs::create_dir_all(dir.0.join("late-lost")).unwrap();
    std::fs::write(dir.0.join("late-lost/report.json"), merged.to_string()).unwrap();
    assert_eq!(
        machine_limited_with(&[saturated, figures], &dir, "late-lost", &[]),
        Some(1)
    );
    assert_eq!(
        machine_limited_with(&["--saturated"], &dir, "late", &[]),
        Some(2)
    );
    // Datagrams dropped are the machine's beside its being the limit, not on their own.
    let drops = "quic: the kernel dropped 16508 datagrams on the run's UDP sockets (this process's): their receive buffers were full";
    let starved = "quic: the machine was the limit: its 2 CPUs were 100% busy (limit 90%)";
    for (folder, reasons, code) in [
        ("drops-starved", vec![drops, starved], Some(0)),
        ("drops-alone", vec![drops], Some(1)),
        (
            "drops-other-run",
            vec![
                drops,
                "tcp: the machine was the limit: its 2 CPUs were 100% busy",
            ],
            Some(1),
        ),
    ] {
        let mut report = behind.clone();
        report["invalid_reasons"] = serde_json::json!(reasons);
        std::fs::create_dir_all(dir.0.join(folder)).unwrap();
        std::fs::write(dir.0.join(folder).join("report.json"), report.to_string()).unwrap();
        assert_eq!(
            machine_limited(&dir, folder, &["schedule_lag"]),
            code,
            "{folder}"
        );
    }
    // A capacity search says itself whether the machine ended it.
    for (machine, code) in [(true, Some(0)), (false, Some(1))] {
        let folder = format!("search-{machine}");
        std::fs::create_dir_all(dir.0.join(&folder)).unwrap();
        let search = serde_json::json!({"machine": machine, "highest_held": null, "stopped": "the machine alone spoiled all 3 tries"});
        std::fs::write(
            dir.0.join(&folder).join("capacity.json"),
            search.to_string(),
        )
        .unwrap();
        assert_eq!(machine_limited(&dir, &folder, &[]), code, "{folder}");
    }
}

#[test]
fn exit_2_for_a_typo_or_a_bad_flag_naming_it() {
    let dir = Dir::new("usage");
    let scenario = dir.file("s.toml", &TINY.replace("drain", "drian"));
    let out = imbench(&dir, &["run", scenario.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("drian"), "{}", text(&out));
    let out = imbench(&dir, &["run", "--slo", "direct.p99 about 3"]);
    assert_eq!(out.status.code(), Some(2));
    let out = imbench(&dir, &["run", "--clients", "many"]);
    assert_eq!(out.status.code(), Some(2));
    let out = imbench(&dir, &["run", "--clients", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("--clients") && text(&out).contains("at least 1 client"),
        "{}",
        text(&out)
    );
    // A negative value is the flag's, refused for what it is, not an unknown argument.
    for (flag, value, says) in [
        ("--warmup", "-1s", "a duration is 0 or more"),
        ("--clients", "-3", "not a number of clients"),
        ("--seed", "-1", "invalid digit"),
    ] {
        let out = imbench(&dir, &["run", flag, value]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(
            text(&out).contains(flag) && text(&out).contains(says),
            "{flag} {value}: {}",
            text(&out)
        );
    }
    let out = imbench(&dir, &["compare", "a", "b", "--fail-on-regression", "-5%"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("a threshold is from 0%"),
        "{}",
        text(&out)
    );
    // A misspelt figure in a file's [slo] names the file; the same from --slo does not.
    let slo_typo = dir.file(
        "slo-typo.toml",
        &format!("{TINY}[slo]\n\"direkt.p99\" = \"< 1s\"\n"),
    );
    let out = imbench(&dir, &["run", slo_typo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("slo-typo.toml: [slo]") && text(&out).contains("direkt"),
        "{}",
        text(&out)
    );
    let tiny = dir.file("tiny.toml", TINY);
    let out = imbench(
        &dir,
        &["run", tiny.to_str().unwrap(), "--slo", "direkt.p99<1s"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("direkt") && !text(&out).contains("[slo]"),
        "{}",
        text(&out)
    );
    let out = imbench(&dir, &["run", "--find-max", "--growth", "0.5"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--growth"), "{}", text(&out));
    // Nothing for the search to raise: every step would run the same load and "hold".
    let out = imbench(&dir, &["run", "--find-max", "--rate", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("raises the direct and group rates"),
        "{}",
        text(&out)
    );
    let secret = dir.random_secret("secret");
    let plain = [
        "run",
        "--server",
        "127.0.0.1:4433",
        "--transport",
        "tcp,ws",
        "--secret-file",
        secret.to_str().unwrap(),
    ];
    let out = imbench(&dir, &plain);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("serves one transport"),
        "{}",
        text(&out)
    );
    let out = imbench(&dir, &["run", "--transport", "quic,pigeon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("pigeon"), "{}", text(&out));
    let out = imbench(&dir, &["run", "--growth", "2"]);
    assert_eq!(out.status.code(), Some(2), "--growth needs --find-max");
    let out = imbench(&dir, &["run", "/no/such/scenario.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("/no/such/scenario.toml"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_tcp_port_nothing_listens_on_is_named_as_such() {
    let dir = Dir::new("refused-tcp");
    let scenario = dir.file("s.toml", TINY);
    let secret = dir.random_secret("secret");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let out = imbench(
        &dir,
        &[
            "run",
            scenario.to_str().unwrap(),
            "--transport",
            "tcp",
            "--server",
            &addr,
            "--secret-file",
            secret.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("nothing listens on TCP port {port} of 127.0.0.1"))
            && text(&out).contains("with --tcp on that port"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_target_host_that_does_not_resolve_is_a_usage_error() {
    let dir = Dir::new("unresolved");
    let scenario = dir.file("s.toml", TINY);
    // `.invalid` never resolves (RFC 2606).
    for url in [
        "nats://no-such-host.invalid:4222",
        "mqtt://no-such-host.invalid:1883",
        "xmpp://u-{user}:pw@no-such-host.invalid:5222",
    ] {
        let out = imbench(&dir, &["run", scenario.to_str().unwrap(), "--target", url]);
        assert_eq!(out.status.code(), Some(2), "{url}: {}", text(&out));
        assert!(
            text(&out).contains("no-such-host.invalid") && text(&out).contains("does not resolve"),
            "{}",
            text(&out)
        );
    }
}

#[test]
fn exit_3_when_the_server_cannot_be_reached() {
    let dir = Dir::new("unreachable");
    let id = imbench_transport::ServerIdentity::self_signed(&["localhost"]).unwrap();
    let cert = dir.file("cert.pem", &id.cert_chain_pem);
    let secret = dir.random_secret("secret");
    // Bind a UDP port and never answer on it: nothing speaks QUIC there.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let run_with_timeout = |timeout: &str, extra: &[&str]| {
        let scenario = dir.file(
            &format!("s-{timeout}.toml"),
            &TINY.replace(
                "[generator]",
                &format!("[generator]\nconnect_timeout = \"{timeout}\""),
            ),
        );
        let mut args = vec![
            "run",
            scenario.to_str().unwrap(),
            "--server",
            &addr,
            "--cert",
            cert.to_str().unwrap(),
            "--secret-file",
            secret.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let started = std::time::Instant::now();
        let out = imbench(&dir, &args);
        (out, started.elapsed())
    };
    let (out, took) = run_with_timeout("2s", &["--out", "never/written"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        !dir.0.join("never").exists(),
        "a run that wrote nothing left its folder (or the one it made for it) behind"
    );
    assert!(
        text(&out).contains("cannot reach the server"),
        "{}",
        text(&out)
    );
    assert!(
        took < std::time::Duration::from_secs(20),
        "fails within seconds"
    );
    // Nothing on the port at all: the host says so, and the run does not wait out its 30 s.
    drop(silent);
    let (out, took) = run_with_timeout("30s", &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("nothing listens on UDP port"),
        "{}",
        text(&out)
    );
    assert!(
        took < std::time::Duration::from_secs(10),
        "told at once, not after the connect timeout"
    );
}

#[test]
fn exit_3_when_the_generator_is_saturated() {
    let dir = Dir::new("saturated");
    // No generator wakes a task with zero lateness, so a 1 µs bound is always exceeded.
    let scenario = dir.file(
        "s.toml",
        &TINY.replace("max_schedule_lag = \"1s\"", "max_schedule_lag = \"1us\""),
    );
    // tokio's 1 ms timer: the precise one can wake a send within its microsecond. That
    // millisecond is the generator's; but a machine that pauses the whole process as long (the
    // hiccup meter late by half the lag) or keeps its threads waiting for a CPU longer than they
    // run is the cause then, and the run says so: such a run is checked for that and tried again.
    // A machine busy through all five (the whole test suite beside a helper's runs made one so)
    // leaves the generator's verdict to `a_generator_that_stalls_…` in measurement.rs, whose
    // lateness is the generator's by construction, and the table's word for it to table.rs.
    for attempt in 1..=5 {
        let out_dir = format!("r{attempt}");
        let out = imbench(
            &dir,
            &[
                "run",
                scenario.to_str().unwrap(),
                "--timer",
                "tokio",
                "--out",
                &out_dir,
            ],
        );
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        let report = std::fs::read_to_string(dir.0.join(&out_dir).join("report.json")).unwrap();
        if report.contains("\"late_for_the_machine\": true") {
            assert!(text(&out).contains("LATE: the machine's"), "{}", text(&out));
            assert!(report.contains("\"saturated\": false"), "{report}");
            assert_eq!(machine_limited(&dir, &out_dir, &["schedule_lag"]), Some(0));
            continue;
        }
        assert!(text(&out).contains("generator saturated"), "{}", text(&out));
        assert!(text(&out).contains("SATURATED"), "{}", text(&out));
        assert!(report.contains("\"saturated\": true"), "{report}");
        // The generator's own lateness may be the code's: not the machine's alone.
        assert_eq!(machine_limited(&dir, &out_dir, &["schedule_lag"]), Some(1));
        return;
    }
    eprintln!("the machine made all five runs late: the generator's own lateness was not seen");
}

/// A schedule far beyond what the generator can send (ten million messages a second): sends
/// stop when the schedule ends, what was due and never sent is counted and makes the run
/// invalid, and the run ends within its drain, Ctrl-C included; it went on sending the
/// backlog for as long as that took, past its drain and through Ctrl-C.
#[test]
fn a_generator_far_behind_stops_sending_when_its_schedule_ends() {
    let dir = Dir::new("behind");
    let scenario = dir.file("s.toml", &TINY.replace("rate = 20.0", "rate = 1000000.0"));
    let started = std::time::Instant::now();
    let out = imbench(
        &dir,
        &[
            "run",
            scenario.to_str().unwrap(),
            "--progress",
            "quiet",
            "--out",
            "r",
        ],
    );
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("due before the schedule's end never sent"),
        "{said}"
    );
    // 1.3 s of schedule, 1 s late at most, 3 s of drain, and the report: a bound that does
    // not time the generator, but tells a run that ends from one that sends its backlog.
    assert!(
        took < std::time::Duration::from_secs(30),
        "took {took:?}: {said}"
    );
    let (out, after) = interrupted(
        &dir,
        &[
            "run",
            scenario.to_str().unwrap(),
            "--progress",
            "quiet",
            "--out",
            "i",
        ],
        std::time::Duration::from_millis(1500),
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        after < std::time::Duration::from_secs(15),
        "Ctrl-C took {after:?}"
    );
    assert!(dir.0.join("i/report.json").is_file());
}

#[test]
fn a_machine_pause_longer_than_max_hiccup_makes_the_run_invalid() {
    let dir = Dir::new("hiccup");
    // No thread wakes exactly on time, so a 1 µs bound on the machine's pauses is exceeded.
    let scenario = dir.file(
        "s.toml",
        &TINY.replace("max_hiccup = \"1h\"", "max_hiccup = \"1us\""),
    );
    let out = imbench(&dir, &["run", scenario.to_str().unwrap(), "--out", "r"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("the machine paused this process for"),
        "{}",
        text(&out)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.0.join("r/report.json")).unwrap())
            .unwrap();
    assert_eq!(report["verdict"], "invalid");
    assert_eq!(
        machine_limited(&dir, "r", &[]),
        Some(0),
        "a pause is the machine's"
    );
}

#[test]
fn ctrl_c_stops_the_run_and_still_writes_the_report() {
    let dir = Dir::new("interrupt");
    let scenario = dir.file(
        "s.toml",
        &TINY.replace("duration = \"1s\"", "duration = \"60s\""),
    );
    let args = [
        "run",
        scenario.to_str().unwrap(),
        "--out",
        "r",
        "--progress",
        "plain",
    ];
    let (out, _) = interrupted(&dir, &args, std::time::Duration::from_secs(3));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    // Said once: the run loop handles the interrupt once (it found it ready at every turn
    // of the drain, spinning a core and saying it each time).
    said_interrupted_once(&out);
    let report = std::fs::read_to_string(dir.0.join("r/report.json")).unwrap();
    assert!(report.contains("interrupted"));
    assert!(report.contains("\"verdict\": \"invalid\""));
}

/// The interrupt is said once on stderr (the run loop handled it at every turn of the drain,
/// and said it each time). Shows the start of what was printed otherwise: it may be a flood.
fn said_interrupted_once(out: &Output) {
    let said = String::from_utf8_lossy(&out.stderr)
        .matches("imbench: interrupted")
        .count();
    assert_eq!(
        said,
        1,
        "{}",
        text(out).chars().take(3000).collect::<String>()
    );
}

/// Ctrl-C while messages are in flight to a server that hangs: the run says once that it is
/// stopping and waits for them (the run loop found the interrupt ready at every turn of that
/// wait, and said it thousands of times a second while spinning a core).
#[test]
fn ctrl_c_with_messages_in_flight_is_said_once() {
    let dir = Dir::new("interrupt-in-flight");
    let transport = imbench_transport::Transport::Tcp;
    let config = imbench_server::ServerConfig::loopback_on(&[transport]).unwrap();
    let secret = dir.file("secret", &config.secret.to_hex());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = runtime
        .block_on(imbench_server::start(config))
        .expect("server starts");
    let addr = server.addr(transport).unwrap().to_string();
    std::mem::forget(server);
    // The server's one thread serves, then hangs from 1.5 s for 6 s with its sockets open.
    std::thread::spawn(move || {
        runtime.block_on(async {
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            std::thread::sleep(std::time::Duration::from_secs(6));
            std::future::pending::<()>().await
        })
    });
    let scenario = dir.file(
        "s.toml",
        &TINY.replace("duration = \"1s\"", "duration = \"60s\""),
    );
    let server_arg = format!("tcp={addr}");
    let args = [
        "run",
        scenario.to_str().unwrap(),
        "--transport",
        "tcp",
        "--server",
        &server_arg,
        "--secret-file",
        secret.to_str().unwrap(),
        "--out",
        "r",
        "--progress",
        "plain",
    ];
    let (out, _) = interrupted(&dir, &args, std::time::Duration::from_millis(2500));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    said_interrupted_once(&out);
}

#[test]
fn ctrl_c_in_a_comparison_keeps_the_runs_done_and_names_those_not_run() {
    let dir = Dir::new("interrupt-legs");
    let scenario = dir.file(
        "s.toml",
        &TINY.replace("duration = \"1s\"", "duration = \"60s\""),
    );
    let args = [
        "run",
        scenario.to_str().unwrap(),
        "--transport",
        "quic,tcp",
        "--out",
        "r",
        "--progress",
        "plain",
    ];
    let (out, _) = interrupted(&dir, &args, std::time::Duration::from_secs(3));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let report = std::fs::read_to_string(dir.0.join("r/report.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(json["runs"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(json["verdict"], "invalid");
    let reasons = json["invalid_reasons"].to_string();
    assert!(
        reasons.contains("interrupted: tcp did not run"),
        "{reasons}"
    );
}

/// Runs one after another share a process: the second's memory line says its figure may read
/// low (it takes memory the first freed), and report.json counts the runs before it.
#[test]
fn a_second_run_in_one_process_says_its_memory_may_read_low() {
    let dir = Dir::new("memory-second");
    let scenario = dir.file("s.toml", TINY);
    let args = [
        "run",
        scenario.to_str().unwrap(),
        "--transport",
        "quic,tcp",
        "--out",
        "r",
        "--progress",
        "quiet",
    ];
    let out = imbench(&dir, &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let all = text(&out);
    let lines: Vec<&str> = all.lines().filter(|l| l.starts_with("memory:")).collect();
    assert_eq!(lines.len(), 2, "{all}");
    assert!(!lines[0].contains("earlier run"), "{all}");
    assert!(
        lines[1].contains("after 1 earlier run in this process, whose freed memory it may reuse"),
        "{all}"
    );
    let report = std::fs::read_to_string(dir.0.join("r/report.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(json["runs"][1]["memory"]["earlier_runs"], 1, "{report}");
    assert!(
        json["runs"][0]["memory"].get("earlier_runs").is_none(),
        "{report}"
    );
}

#[test]
fn sigterm_and_sighup_stop_the_run_like_ctrl_c_and_the_report_is_written() {
    let dir = Dir::new("sigterm");
    let scenario = dir.file(
        "s.toml",
        &TINY.replace("duration = \"1s\"", "duration = \"60s\""),
    );
    // SIGHUP: the terminal closed, or the SSH session under the run dropped.
    for signal in ["TERM", "HUP"] {
        let args = ["run", scenario.to_str().unwrap(), "--out", signal];
        let (out, _) = signalled(&dir, &args, std::time::Duration::from_secs(3), signal);
        assert_eq!(out.status.code(), Some(3), "{signal}: {}", text(&out));
        let report = std::fs::read_to_string(dir.0.join(signal).join("report.json")).unwrap();
        assert!(report.contains("interrupted"), "{signal}");
    }
}

/// Under `nohup` (SIGHUP ignored when imbench starts) a closed terminal is no interrupt: the
/// run goes on to its end. A handler for SIGHUP would undo what nohup did.
#[test]
fn under_nohup_a_sighup_leaves_the_run_going() {
    let dir = Dir::new("nohup");
    let scenario = dir.file(
        "s.toml",
        &TINY.replace("duration = \"1s\"", "duration = \"3s\""),
    );
    let child = Command::new("nohup")
        .arg(env!("CARGO_BIN_EXE_imbench"))
        .args(["run", scenario.to_str().unwrap(), "--out", "r"])
        .current_dir(&dir.0)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let Ok(child) = child else {
        return; // No nohup on this machine.
    };
    std::thread::sleep(std::time::Duration::from_secs(1));
    let killed = Command::new("kill")
        .args(["-s", "HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = std::fs::read_to_string(dir.0.join("r/report.json")).unwrap();
    assert!(!report.contains("interrupted"), "{report}");
}

#[test]
fn a_closed_stderr_does_not_stop_the_run() {
    let dir = Dir::new("closed-stderr");
    let scenario = dir.file("s.toml", TINY);
    // Both streams into a pipe that closes after one line: progress lines, notes and the
    // table all meet a closed pipe.
    let script = format!(
        "{} run {} --out r --progress plain 2>&1 | head -1 >/dev/null; exit ${{PIPESTATUS[0]}}",
        env!("CARGO_BIN_EXE_imbench"),
        scenario.display()
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(dir.0.join("r/report.json").exists());
}

/// Starts `imbench run SCENARIO --duration DURATION --out r --progress plain` in the
/// scenario's folder with its stderr into `stderr`.
fn run_with_stderr(
    scenario: &std::path::Path,
    duration: &str,
    stderr: std::io::PipeWriter,
    stdout: std::process::Stdio,
) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_imbench"))
        .args(["run", scenario.to_str().unwrap(), "--duration", duration])
        .args(["--out", "r", "--progress", "plain"])
        .current_dir(scenario.parent().unwrap())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap()
}

#[test]
fn a_stderr_nobody_reads_holds_up_no_second_of_the_timeline() {
    use std::io::{Read, Write};
    let dir = Dir::new("held-stderr");
    let scenario = dir.file("s.toml", TINY);
    let (mut reader, writer) = std::io::pipe().unwrap();
    let mut filler = writer.try_clone().unwrap();
    let size = nix::fcntl::fcntl(&writer, nix::fcntl::FcntlArg::F_GETPIPE_SZ).unwrap();
    let mut child = run_with_stderr(&scenario, "8s", writer, std::process::Stdio::null());
    // Read until the first progress line (on a thread: the test's own copy of the pipe's
    // writing end keeps a read from ever ending), then fill the pipe and read nothing for
    // 5 s: every write to it waits that long.
    let (first_tx, first_rx) = std::sync::mpsc::channel();
    let reading = std::thread::spawn(move || {
        let mut text = Vec::new();
        let mut chunk = [0u8; 4096];
        while !String::from_utf8_lossy(&text).contains("s] ") {
            match reader.read(&mut chunk) {
                Ok(n) if n > 0 => text.extend_from_slice(&chunk[..n]),
                _ => break,
            }
        }
        let _ = first_tx.send(());
        (reader, text)
    });
    if first_rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .is_err()
    {
        let _ = child.kill();
        panic!("no progress line within a minute");
    }
    let (mut reader, mut text) = reading.join().unwrap();
    let filling = std::thread::spawn(move || {
        let _ = filler.write_all(&vec![b'.'; size as usize]);
    });
    let held = std::time::Duration::from_secs(5);
    std::thread::sleep(held);
    let _ = reader.read_to_end(&mut text);
    let status = child.wait().unwrap();
    filling.join().unwrap();
    let stderr = String::from_utf8_lossy(&text);
    assert_eq!(status.code(), Some(0), "{stderr}");
    // The per-second timeline kept its seconds while stderr was held: before, the run loop
    // waited in its write, and the seconds it missed came all at once when released.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.0.join("r/report.json")).unwrap())
            .unwrap();
    let times: Vec<f64> = report["runs"][0]["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["t_s"].as_f64().unwrap())
        .collect();
    assert!(times.len() >= 8, "{times:?}");
    let widest = times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    assert!(widest < held.as_secs_f64() / 2.0, "{times:?}");
}

#[test]
fn ctrl_c_the_report_and_the_table_do_not_wait_for_a_stderr_nobody_reads() {
    use std::io::{Read, Write};
    let dir = Dir::new("stopped-stderr");
    let scenario = dir.file("s.toml", TINY);
    // A pipe full from the start, read only at the end.
    let (mut reader, mut writer) = std::io::pipe().unwrap();
    let size = nix::fcntl::fcntl(&writer, nix::fcntl::FcntlArg::F_GETPIPE_SZ).unwrap();
    writer.write_all(&vec![b'.'; size as usize]).unwrap();
    let mut child = run_with_stderr(&scenario, "60s", writer, std::process::Stdio::piped());
    // Stdout as it comes.
    let mut stdout = child.stdout.take().unwrap();
    let table = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let shared = table.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut chunk) {
            if n == 0 {
                break;
            }
            shared.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    let pid = child.id().to_string();
    let signal = |name: &str| {
        Command::new("kill")
            .args(["-s", name, &pid])
            .status()
            .unwrap()
    };
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(signal("INT").success());
    // The report and the table come while stderr stays unread.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let printed = || String::from_utf8_lossy(&table.lock().unwrap()).into_owned();
    while !printed().contains("report: ") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let written = dir.0.join("r/report.json").exists() && printed().contains("report: ");
    // Then only the exit waits for stderr, and SIGTERM ends that wait.
    let mut ended = None;
    while ended.is_none() && std::time::Instant::now() < deadline {
        signal("TERM");
        std::thread::sleep(std::time::Duration::from_millis(200));
        ended = child.try_wait().unwrap();
    }
    let mut text = Vec::new();
    let _ = reader.read_to_end(&mut text);
    let status = child.wait().unwrap();
    let stderr = String::from_utf8_lossy(&text);
    assert!(
        written,
        "no report and table while stderr was not read: {stderr}\n{}",
        printed()
    );
    assert!(ended.is_some(), "the exit waited for stderr past SIGTERM");
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(printed().contains("interrupted at"), "{}", printed());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.0.join("r/report.json")).unwrap())
            .unwrap();
    assert!(
        report["runs"][0]["duration_s"].as_f64().unwrap() < 30.0,
        "{}",
        report["runs"][0]["duration_s"]
    );
}

#[test]
fn report_prints_a_comparison_again_as_the_run_printed_it() {
    let dir = Dir::new("rerender-several");
    let failing = dir.file("s.toml", &format!("{TINY}[slo]\ndirect.p99 = \"< 1us\"\n"));
    let run = imbench(
        &dir,
        &[
            "run",
            failing.to_str().unwrap(),
            "--transport",
            "quic,tcp",
            "--out",
            "m",
            "--progress",
            "quiet",
        ],
    );
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let again = imbench(&dir, &["report", "m"]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    // Every line the run printed but the last (where it wrote the report), in order.
    let live = String::from_utf8_lossy(&run.stdout).to_string();
    let reread = String::from_utf8_lossy(&again.stdout).to_string();
    let lines = |t: &str| t.lines().map(str::to_string).collect::<Vec<_>>();
    let (live, reread) = (lines(&live), lines(&reread));
    assert_eq!(live[..live.len() - 1], reread[..reread.len() - 1]);
    assert_eq!(
        live.iter().filter(|l| l.starts_with("verdict: ")).count(),
        3,
        "{live:?}"
    );
    assert!(live.contains(&"verdict: SLO FAILED (quic, tcp)".to_string()));
}

#[test]
fn report_rerenders_and_compare_puts_reports_side_by_side() {
    let dir = Dir::new("compare");
    let scenario = dir.file("s.toml", TINY);
    for out in ["base", "next"] {
        let run = imbench(&dir, &["run", scenario.to_str().unwrap(), "--out", out]);
        assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    }
    std::fs::remove_file(dir.0.join("base/summary.md")).unwrap();
    let out = imbench(&dir, &["report", "base"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let md = std::fs::read_to_string(dir.0.join("base/summary.md")).unwrap();
    assert!(md.contains("| direct |"), "{md}");
    // Views that cannot be written (a read-only artifact; here a folder where the page goes,
    // which root cannot write over either) leave the verdict to be read back.
    std::fs::rename(dir.0.join("base/report.html"), dir.0.join("page")).unwrap();
    std::fs::create_dir(dir.0.join("base/report.html")).unwrap();
    let out = imbench(&dir, &["report", "base"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("verdict: OK")
            && text(&out).contains("base/report.html not written")
            && !text(&out).contains("summary.md and"),
        "{}",
        text(&out)
    );
    std::fs::remove_dir(dir.0.join("base/report.html")).unwrap();
    std::fs::rename(dir.0.join("page"), dir.0.join("base/report.html")).unwrap();
    // Another report kept in that folder under another name has views of its own: the
    // folder's are left as they were.
    let mut other: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.0.join("next/report.json")).unwrap())
            .unwrap();
    other["scenario"]["name"] = serde_json::json!("the-other-one");
    dir.file("base/other.json", &other.to_string());
    let html = std::fs::read_to_string(dir.0.join("base/report.html")).unwrap();
    let out = imbench(&dir, &["report", "base/other.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("base/other.summary.md and base/other.html"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read_to_string(dir.0.join("base/summary.md")).unwrap(),
        md
    );
    assert_eq!(
        std::fs::read_to_string(dir.0.join("base/report.html")).unwrap(),
        html
    );
    assert!(std::fs::read_to_string(dir.0.join("base/other.summary.md"))
        .unwrap()
        .contains("the-other-one"));
    for extra in ["other.json", "other.summary.md", "other.html"] {
        std::fs::remove_file(dir.0.join("base").join(extra)).unwrap();
    }
    // A folder of report folders is not one report: one of them is named.
    let out = imbench(&dir, &["report", "."]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("in folders of their own") && text(&out).contains("base"),
        "{}",
        text(&out)
    );
    let out = imbench(&dir, &["compare", "base", "next/report.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("base") && t.contains("next") && t.contains("direct p99"),
        "{t}"
    );
    // One report of two runs side by side: compare says where their comparison is.
    let base = std::fs::read_to_string(dir.0.join("base/report.json")).unwrap();
    let mut two: serde_json::Value = serde_json::from_str(&base).unwrap();
    let run = two["runs"][0].clone();
    two["runs"].as_array_mut().unwrap().push(run);
    std::fs::create_dir_all(dir.0.join("two")).unwrap();
    dir.file("two/report.json", &two.to_string());
    let out = imbench(&dir, &["compare", "two"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("two holds 2 runs side by side: `imbench report two`"),
        "{}",
        text(&out)
    );
    // An invalid run keeps its mark under its folder's name; with churn, a different session
    // resumption is a different load, and compare says so.
    let next = std::fs::read_to_string(dir.0.join("next/report.json")).unwrap();
    let mut churned: serde_json::Value = serde_json::from_str(&next).unwrap();
    churned["scenario"]["churn"]["fraction"] = serde_json::json!(0.2);
    churned["scenario"]["churn"]["rate"] = serde_json::json!(1.0);
    let mut bad = churned.clone();
    bad["verdict"] = serde_json::json!("invalid");
    bad["ok"] = serde_json::json!(false);
    bad["invalid_reasons"] = serde_json::json!(["the machine was the limit"]);
    bad["scenario"]["generator"]["resumption"] = serde_json::json!("0rtt");
    for (name, report) in [("churned", &churned), ("bad", &bad)] {
        std::fs::create_dir_all(dir.0.join(name)).unwrap();
        std::fs::write(dir.0.join(name).join("report.json"), report.to_string()).unwrap();
    }
    // The same churn over another transport is the same load.
    let mut over_tcp = churned.clone();
    over_tcp["runs"][0]["transport"] = serde_json::json!("tcp");
    std::fs::create_dir_all(dir.0.join("over-tcp")).unwrap();
    std::fs::write(dir.0.join("over-tcp/report.json"), over_tcp.to_string()).unwrap();
    let out = imbench(&dir, &["compare", "churned", "over-tcp"]);
    assert!(!text(&out).contains("different loads"), "{}", text(&out));
    // And over TCP, where nothing resumes, another resumption setting is the same load too.
    let mut tcp_0rtt = over_tcp.clone();
    tcp_0rtt["scenario"]["generator"]["resumption"] = serde_json::json!("0rtt");
    std::fs::create_dir_all(dir.0.join("tcp-0rtt")).unwrap();
    std::fs::write(dir.0.join("tcp-0rtt/report.json"), tcp_0rtt.to_string()).unwrap();
    let out = imbench(&dir, &["compare", "over-tcp", "tcp-0rtt"]);
    assert!(!text(&out).contains("different loads"), "{}", text(&out));
    // A gate with nothing to judge says what is missing: a run of the same name, or the
    // figure checked.
    let gate = ["--fail-on-regression", "10%"];
    let out = imbench(
        &dir,
        &[&["compare", "churned", "over-tcp"][..], &gate].concat(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("has runs named tcp and the baseline quic"),
        "{}",
        text(&out)
    );
    let no_groups = ["compare", "base", "next", "--check", "fanout.p99"];
    let out = imbench(&dir, &[&no_groups[..], &gate].concat());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("none of the figures checked (fanout.p99)"),
        "{}",
        text(&out)
    );
    let out = imbench(&dir, &["compare", "churned", "bad"]);
    let t = text(&out);
    assert!(t.contains("bad*") && !t.contains("churned*"), "{t}");
    assert!(t.contains("(* the run was invalid"), "{t}");
    assert!(
        t.contains("resumption ticket") && t.contains("resumption 0rtt"),
        "{t}"
    );
    assert!(t.contains("comparison (of different loads"), "{t}");
    // A gate across different loads would judge the loads' difference: it is not gated.
    let mut other: serde_json::Value = serde_json::from_str(&next).unwrap();
    other["scenario"]["direct"]["rate"] = serde_json::json!(1000.0);
    std::fs::create_dir_all(dir.0.join("other")).unwrap();
    std::fs::write(dir.0.join("other/report.json"), other.to_string()).unwrap();
    let out = imbench(
        &dir,
        &["compare", "base", "other", "--fail-on-regression", "50%"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("verdict: NOT GATED: the reports ran different loads"));
    // So are bodies of another size, under the same name and rates.
    let mut bigger: serde_json::Value = serde_json::from_str(&next).unwrap();
    bigger["scenario"]["direct"]["size"]["bytes"] = serde_json::json!(60_000);
    std::fs::create_dir_all(dir.0.join("bigger")).unwrap();
    std::fs::write(dir.0.join("bigger/report.json"), bigger.to_string()).unwrap();
    let out = imbench(
        &dir,
        &["compare", "base", "bigger", "--fail-on-regression", "50%"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("direct.size.bytes 64 against 60000"),
        "{}",
        text(&out)
    );
    // The rows above the verdict say so too, whatever they read.
    assert!(
        text(&out)
            .contains("(of another load than the baseline's: its verdicts below are not gated"),
        "{}",
        text(&out)
    );
    // So is one against a server apart beside one against the server in the generator's process.
    let mut apart: serde_json::Value = serde_json::from_str(&next).unwrap();
    apart["runs"][0]["server"] = serde_json::json!("127.0.0.1:4433");
    std::fs::create_dir_all(dir.0.join("apart")).unwrap();
    std::fs::write(dir.0.join("apart/report.json"), apart.to_string()).unwrap();
    let out = imbench(
        &dir,
        &["compare", "base", "apart", "--fail-on-regression", "50%"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("embedded server") && text(&out).contains("server apart"),
        "{}",
        text(&out)
    );
    // Shards collected in one folder merge by naming the folder; a missing shard is refused.
    for (i, name) in ["a", "b"].iter().enumerate() {
        let mut shard: serde_json::Value = serde_json::from_str(&next).unwrap();
        shard["shard"] = serde_json::json!(format!("{}/2", i + 1));
        shard["runs"][0]["memory"] = serde_json::json!({
            "rss_before_bytes": 10u64 << 20,
            "rss_connected_bytes": 20u64 << 20,
            "peak_rss_bytes": 30u64 << 20,
            "bytes_per_client": 1024,
            "clients": 7 + i,
            "server_embedded": false,
        });
        if i == 0 {
            // Its target promised to lose what was sent to a client away: the default on
            // `lost` was not judged, and is not on the merge either.
            shard["runs"][0]["slo_lifted"] = serde_json::json!(["lost == 0"]);
        }
        if i == 1 {
            // The second shard stopped halfway (so it is invalid, and says why): its rate is
            // over half the time.
            let d = shard["runs"][0]["duration_s"].as_f64().unwrap();
            shard["runs"][0]["duration_s"] = serde_json::json!(d / 2.0);
            shard["verdict"] = serde_json::json!("invalid");
            shard["ok"] = serde_json::json!(false);
            shard["invalid_reasons"] = serde_json::json!(["stopped early: interrupted"]);
            // And it was given an SLO of its own, a count's, which the merge judges.
            shard["scenario"]["slo"] = serde_json::json!(["lost < 7"]);
            shard["runs"][0]["slo"] = serde_json::json!([]);
        }
        std::fs::create_dir_all(dir.0.join("shards").join(name)).unwrap();
        std::fs::write(
            dir.0.join("shards").join(name).join("report.json"),
            shard.to_string(),
        )
        .unwrap();
    }
    let out = imbench(&dir, &["merge", "shards", "--out", "merged"]);
    assert!(dir.0.join("merged/report.json").is_file(), "{}", text(&out));
    let merged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.0.join("merged/report.json")).unwrap())
            .unwrap();
    let one: serde_json::Value = serde_json::from_str(&next).unwrap();
    assert_eq!(
        merged["runs"][0]["counters"]["sent"].as_u64().unwrap(),
        2 * one["runs"][0]["counters"]["sent"].as_u64().unwrap()
    );
    // Rates add up over the longest shard's time; memory adds up over the generators.
    let rate = |r: &serde_json::Value| r["runs"][0]["throughput"]["sent_per_s"].as_f64().unwrap();
    assert!(
        (rate(&merged) - 1.5 * rate(&one)).abs() < 1e-6 * rate(&one),
        "{} against {}",
        rate(&merged),
        rate(&one)
    );
    assert!(
        merged["runs"][0]["notes"]
            .to_string()
            .contains("shard 2/2 measured"),
        "{}",
        merged["runs"][0]["notes"]
    );
    assert!(
        merged["runs"][0]["notes"]
            .to_string()
            .contains("shard 2/2 was given other SLOs (lost < 7) than shard 1/2 (duplicated == 0, corrupted == 0)"),
        "{}",
        merged["runs"][0]["notes"]
    );
    let judged = merged["runs"][0]["slo"].to_string();
    assert!(
        judged.contains("duplicated == 0") && !judged.contains("lost == 0"),
        "{judged}"
    );
    let memory = &merged["runs"][0]["memory"];
    assert_eq!(
        memory["peak_rss_bytes"].as_u64(),
        Some(60 << 20),
        "{memory}"
    );
    // Over the clients the shards held when they read it (7 and 8), not the scenario's.
    assert_eq!(
        memory["bytes_per_client"].as_u64(),
        Some((20 << 20) / 15),
        "{memory}"
    );
    assert!(
        text(&out).contains("the generators together"),
        "{}",
        text(&out)
    );
    // A merge is not written over one of its own reports, nor into the folder it reads.
    for into in ["shards/a", "shards"] {
        let out = imbench(&dir, &["merge", "shards/a", "shards/b", "--out", into]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(
            text(&out).contains("one of the reports merged"),
            "{}",
            text(&out)
        );
    }
    let out = imbench(&dir, &["merge", "shards", "--out", "shards"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // Nor into one of the folders a folder merged stands for, or a new one beside them.
    for into in ["shards/a", "shards/new", "shards/a/deeper"] {
        let out = imbench(&dir, &["merge", "shards", "--out", into]);
        assert_eq!(out.status.code(), Some(2), "{into}: {}", text(&out));
        assert!(
            text(&out).contains("is in shards, which is merged"),
            "{}",
            text(&out)
        );
    }
    // The same spelt from inside the folder, where "a" has no parent to compare.
    let out = Command::new(env!("CARGO_BIN_EXE_imbench"))
        .current_dir(dir.0.join("shards"))
        .args(["merge", ".", "--out", "a"])
        .output()
        .expect("runs imbench");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("which is merged"), "{}", text(&out));
    assert!(dir.0.join("shards/a/report.json").is_file());
    assert!(!dir.0.join("shards/new").exists());
    let out = imbench(&dir, &["merge", "shards/b", "--out", "part"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("shard 1 of 2 missing"),
        "{}",
        text(&out)
    );
    let out = imbench(&dir, &["compare", "base", "missing"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // An option between the reports is still an option, and the reports still two.
    let args = [
        "compare",
        "base",
        "--check",
        "direct.p99",
        "next/report.json",
    ];
    let out = imbench(&dir, &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = imbench(&dir, &["compare", "base"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("two reports or more"), "{}", text(&out));
}

/// A baseline of two repeats; a report equal to one of them passes, and the same report with
/// its direct p99 made ten times worse fails, naming the figure. (Ten times, so that the two
/// repeats' own spread on a busy machine cannot hide it.)
#[test]
fn a_gate_that_passes_a_candidate_which_failed_its_own_slos_says_so() {
    let dir = Dir::new("gate-slo");
    let passing = dir.file("s.toml", TINY);
    let strict = dir.file(
        "strict.toml",
        &format!("{TINY}[slo]\ndirect.p99 = \"< 1us\"\n"),
    );
    let run = imbench(&dir, &["run", passing.to_str().unwrap(), "--out", "base"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let run = imbench(&dir, &["run", strict.to_str().unwrap(), "--out", "cand"]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let args = [
        "compare",
        "base",
        "cand",
        "--fail-on-regression",
        "1000%",
        "--check",
        "delivered_per_s",
    ];
    let out = imbench(&dir, &args);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("cand/report.json failed its own SLOs (direct.p99 < 1us: ")
            && t.contains("verdict: OK: no figure regressed"),
        "{t}"
    );
}

#[test]
fn compare_fails_on_a_regression_beyond_threshold_and_noise() {
    let dir = Dir::new("regression");
    let scenario = dir.file("s.toml", TINY);
    for out in ["baseline/1", "baseline/2"] {
        let run = imbench(&dir, &["run", scenario.to_str().unwrap(), "--out", out]);
        assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    }
    // The same figures as the first run, at another time (a copy as it is is that run).
    let mut report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.0.join("baseline/1/report.json")).unwrap(),
    )
    .unwrap();
    let started = report["runs"][0]["started_unix_s"].as_f64().unwrap();
    report["runs"][0]["started_unix_s"] = serde_json::json!(started + 60.0);
    let report = report.to_string();
    std::fs::create_dir_all(dir.0.join("same")).unwrap();
    std::fs::write(dir.0.join("same/report.json"), &report).unwrap();
    let args = [
        "compare",
        "baseline",
        "same",
        "--fail-on-regression",
        "100%",
        "--check",
        "direct.p99",
    ];
    let out = imbench(&dir, &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("2 baseline runs"), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("verdict: OK: no figure regressed"),
        "{}",
        text(&out)
    );
    // CPU per message is a figure a gate may check, as the repeat table shows it.
    let cpu = [
        "compare",
        "baseline",
        "same",
        "--fail-on-regression",
        "1000%",
        "--check",
        "cpu_us_per_message",
    ];
    let out = imbench(&dir, &cpu);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("cpu_us_per_message"), "{}", text(&out));

    // Ten times the larger of the two baseline figures: worse than their median by more than
    // their spread however far apart a busy machine put them (a run ten times the smaller one
    // was once within a spread that wide).
    let p99_of = |run: &str| -> u64 {
        let text = std::fs::read_to_string(dir.0.join(run).join("report.json")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        json["runs"][0]["metrics"]["direct"]["p99_us"]
            .as_u64()
            .unwrap()
    };
    let largest = p99_of("baseline/1").max(p99_of("baseline/2"));
    let mut json: serde_json::Value = serde_json::from_str(&report).unwrap();
    let p99 = json["runs"][0]["metrics"]["direct"]["p99_us"]
        .as_u64()
        .unwrap();
    // Every sample of the candidate's `direct` so much later that its p99 is that, and its
    // figures agree with its histogram (a report edited otherwise is refused).
    let direct: imbench_loadgen::report::MetricSummary =
        serde_json::from_value(json["runs"][0]["metrics"]["direct"].clone()).unwrap();
    let h = imbench_loadgen::report::decode_histogram(&direct).expect("a histogram");
    let mut later = h.clone();
    later.reset();
    let factor = (largest * 10).div_ceil(p99.max(1));
    for v in h.iter_recorded() {
        later
            .record_n(v.value_iterated_to() * factor, v.count_at_value())
            .unwrap();
    }
    json["runs"][0]["metrics"]["direct"] =
        serde_json::to_value(imbench_loadgen::report::summarize(&later)).unwrap();
    std::fs::create_dir_all(dir.0.join("worse")).unwrap();
    std::fs::write(dir.0.join("worse/report.json"), json.to_string()).unwrap();
    let args = [
        "compare",
        "baseline",
        "worse",
        "--fail-on-regression",
        "100%",
        "--check",
        "direct.p99",
    ];
    let out = imbench(&dir, &args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("REGRESSED") && t.contains("direct.p99"), "{t}");
    let out = imbench(
        &dir,
        &["compare", "baseline", "worse", "--check", "direct.p98"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // A figure the baseline has and the candidate lost is no "no change".
    let mut lacking = json.clone();
    lacking["runs"][0]["metrics"]
        .as_object_mut()
        .unwrap()
        .remove("direct");
    std::fs::create_dir_all(dir.0.join("lacking")).unwrap();
    std::fs::write(dir.0.join("lacking/report.json"), lacking.to_string()).unwrap();
    let args = [
        "compare",
        "baseline",
        "lacking",
        "--fail-on-regression",
        "100%",
        "--check",
        "direct.p99",
        "--check",
        "delivered_per_s",
    ];
    let out = imbench(&dir, &args);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("MISSING: the candidate has no such figure"),
        "{t}"
    );
    // An invalid candidate is not gated, worse or not: its figures are not the system's.
    let mut invalid = json.clone();
    invalid["verdict"] = serde_json::json!("invalid");
    invalid["ok"] = serde_json::json!(false);
    invalid["invalid_reasons"] = serde_json::json!(["interrupted at 0.5s"]);
    std::fs::create_dir_all(dir.0.join("broken")).unwrap();
    std::fs::write(dir.0.join("broken/report.json"), invalid.to_string()).unwrap();
    let args = [
        "compare",
        "baseline",
        "broken",
        "--fail-on-regression",
        "100%",
        "--check",
        "direct.p99",
    ];
    let out = imbench(&dir, &args);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    assert!(
        t.contains("INVALID, not gated") && t.contains("interrupted at 0.5s"),
        "{t}"
    );
    // Beside a valid candidate that regressed, an invalid one does not hide the regression
    // (running it again would not undo the other's), and is named.
    let args = [
        "compare",
        "baseline",
        "worse",
        "broken",
        "--fail-on-regression",
        "100%",
        "--check",
        "direct.p99",
    ];
    let out = imbench(&dir, &args);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("verdict: REGRESSION (and not gated, invalid: broken"),
        "{t}"
    );

    // Repeated candidate runs are judged by their median: one worse run of three is not the
    // change's, two are.
    let worse = json.to_string();
    for (folder, runs) in [
        ("one-of-three", [&worse, &report, &report]),
        ("two-of-three", [&worse, &worse, &report]),
    ] {
        for (i, body) in runs.iter().enumerate() {
            let run = dir.0.join(folder).join(format!("run-{}", i + 1));
            std::fs::create_dir_all(&run).unwrap();
            std::fs::write(run.join("report.json"), body).unwrap();
        }
    }
    for (folder, code, says) in [
        ("one-of-three", 0, "one-of-three (3 runs)"),
        ("two-of-three", 1, "REGRESSED"),
    ] {
        let args = [
            "compare",
            "baseline",
            folder,
            "--fail-on-regression",
            "100%",
            "--check",
            "direct.p99",
        ];
        let out = imbench(&dir, &args);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(code), "{t}");
        assert!(t.contains(says), "{t}");
        assert!(t.contains("median of the candidate's 3 runs"), "{t}");
    }
    // Columns of the same folder name are told apart by their parent folder.
    let out = imbench(
        &dir,
        &["compare", "baseline", "one-of-three", "two-of-three"],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("one-of-three/run-1") && t.contains("two-of-three/run-1"),
        "{t}"
    );
}

/// A process started by a test, killed by PID when the test ends, whatever happened.
struct Started(std::process::Child);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_run_that_shares_its_cpu_with_a_busy_process_is_invalid_and_says_who_used_it() {
    let dir = Dir::new("busy-machine");
    // The default limits (90% busy), not the relaxed ones of the other tests.
    let scenario = dir.file(
        "s.toml",
        &TINY
            .replace("max_cpu_busy = 1.0\n", "")
            .replace("max_cpu_wait = \"1h\"\n", "")
            .replace("duration = \"1s\"", "duration = \"3s\""),
    );
    // A shell loop that keeps CPU 0 busy, and the run held to that same CPU: whatever the
    // rest of the machine does, the run's one CPU is all busy.
    let _hog = Started(
        Command::new("taskset")
            .args(["-c", "0", "sh", "-c", "while :; do :; done"])
            .spawn()
            .expect("taskset (util-linux) starts a busy loop"),
    );
    let out = Command::new("taskset")
        .args(["-c", "0", env!("CARGO_BIN_EXE_imbench")])
        .args(["run", scenario.to_str().unwrap(), "--out", "r"])
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.0.join("r/report.json")).unwrap())
            .unwrap();
    let reasons = report["invalid_reasons"].to_string();
    assert!(reasons.contains("the machine was the limit"), "{reasons}");
    let cpu_use = &report["runs"][0]["cpu_use"];
    assert_eq!(cpu_use["cpus"], 1, "{cpu_use}");
    // The busy loop had about half of the CPU: it shows as another process's.
    let other = cpu_use["other_cores"].as_f64().unwrap();
    assert!(other > 0.2, "{cpu_use}");
    assert!(cpu_use["server_cores"].as_f64().unwrap() > 0.0, "{cpu_use}");
}

#[test]
fn a_ramp_up_faster_than_the_connect_rate_is_stretched_and_the_run_says_so() {
    let dir = Dir::new("connect-rate");
    let scenario = dir.file(
        "s.toml",
        &TINY.replace("duration = \"1s\"", "duration = \"500ms\""),
    );
    // 40 clients in 100 ms is 400 a second; at 20 a second the ramp takes 2 s.
    let out = imbench(
        &dir,
        &[
            "run",
            scenario.to_str().unwrap(),
            "--clients",
            "40",
            "--connect-rate",
            "20",
            "--progress",
            "plain",
            "--out",
            "r",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("asks for 400 connections/s, more than the connect rate of 20/s"),
        "{}",
        text(&out)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.0.join("r/report.json")).unwrap())
            .unwrap();
    let run = &report["runs"][0];
    assert!(run["notes"][0]
        .as_str()
        .unwrap()
        .contains("ramping up over 2.0s"));
    assert_eq!(report["scenario"]["ramp_up"], "2s");
    // One second in, about 20 of the 40 had connected, not all of them.
    let first = run["intervals"][0]["connected"].as_u64().unwrap();
    assert!((10..=30).contains(&first), "{}", run["intervals"]);
    assert_eq!(run["counters"]["clients"], 40);
}

#[test]
fn a_group_rate_that_is_not_a_number_is_refused_without_groups_too() {
    let dir = Dir::new("group-rate-nan");
    let scenario = dir.file("s.toml", TINY);
    let out = imbench(
        &dir,
        &["run", scenario.to_str().unwrap(), "--group-rate", "nan"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("groups.rate must be a finite number of 0 or more, got NaN"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_scenario_without_slos_is_judged_on_its_accounting() {
    let dir = Dir::new("default-slo");
    let scenario = dir.file("s.toml", TINY);
    let slos = |out: &Output| -> serde_json::Value {
        assert_eq!(out.status.code(), Some(0), "{}", text(out));
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.0.join("r/report.json")).unwrap())
                .unwrap();
        report["scenario"]["slo"].clone()
    };
    let path = scenario.to_str().unwrap();
    let out = imbench(&dir, &["run", path, "--out", "r"]);
    assert_eq!(
        slos(&out),
        serde_json::json!(["lost == 0", "duplicated == 0", "corrupted == 0"])
    );
    assert!(
        text(&out).contains(
            "has no [slo] table, so the run is judged on its accounting: lost == 0, duplicated == 0, corrupted == 0;"
        ),
        "{}",
        text(&out)
    );
    // A flag on one of those figures takes its default's place, spelled as the file's are.
    let out = imbench(&dir, &["run", path, "--out", "r", "--slo", "lost<5"]);
    assert_eq!(
        slos(&out),
        serde_json::json!(["duplicated == 0", "corrupted == 0", "lost < 5"])
    );
    // An empty table judges nothing, and says nothing of it.
    let none = dir.file("none.toml", &format!("{TINY}\n[slo]\n"));
    let out = imbench(&dir, &["run", none.to_str().unwrap(), "--out", "r"]);
    assert_eq!(slos(&out), serde_json::json!([]));
    assert!(!text(&out).contains("[slo] table"), "{}", text(&out));
}

#[test]
fn repeat_runs_the_scenario_n_times_and_writes_the_spread() {
    let dir = Dir::new("repeat");
    let scenario = dir.file("s.toml", TINY);
    let out = twice(&dir, &scenario, "r");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("2 runs of tiny"), "{}", text(&out));
    for run in ["r/run-1/report.json", "r/run-2/report.json"] {
        assert!(dir.0.join(run).is_file(), "{run}");
    }
    let repeat: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.0.join("r/repeat.json")).unwrap())
            .unwrap();
    assert_eq!(repeat["runs"], 2);
    let figures = repeat["figures"].as_array().unwrap();
    let p99 = figures
        .iter()
        .find(|f| f["figure"] == "direct.p99")
        .expect("direct.p99 is among the figures");
    let values = p99["values"].as_array().unwrap();
    assert_eq!(values.len(), 2);
    let reports: Vec<serde_json::Value> = (1..=2)
        .map(|i| {
            let path = dir.0.join(format!("r/run-{i}/report.json"));
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
        })
        .collect();
    for (v, r) in values.iter().zip(&reports) {
        assert_eq!(
            v.as_f64(),
            r["runs"][0]["metrics"]["direct"]["p99_us"].as_f64()
        );
    }
    // `report` on the folder prints the spread again, with the worst run's exit code.
    let out = imbench(&dir, &["report", "r"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("2 runs of tiny: each figure in every run, its median and max/min"),
        "{}",
        text(&out)
    );
    let out = imbench(&dir, &["compare", "r"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("`imbench report r` shows each run's figures"),
        "{}",
        text(&out)
    );
    // A copy of one of its runs elsewhere is that run: a gate of it passes by construction.
    std::fs::create_dir_all(dir.0.join("c1")).unwrap();
    std::fs::copy(
        dir.0.join("r/run-1/report.json"),
        dir.0.join("c1/report.json"),
    )
    .unwrap();
    let gate = |candidate: &str| {
        imbench(
            &dir,
            &["compare", "r", candidate, "--fail-on-regression", "1000%"],
        )
    };
    let out = gate("c1/report.json");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("is a copy of the baseline's r/run-1/report.json"),
        "{}",
        text(&out)
    );
    // The folder is a baseline the regression gate takes: a run that started at another
    // time, with the same figures, is judged (and holds).
    let mut other: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.0.join("r/run-1/report.json")).unwrap())
            .unwrap();
    let started = other["runs"][0]["started_unix_s"].as_f64().unwrap();
    other["runs"][0]["started_unix_s"] = serde_json::json!(started + 60.0);
    std::fs::create_dir_all(dir.0.join("c2")).unwrap();
    std::fs::write(dir.0.join("c2/report.json"), other.to_string()).unwrap();
    let out = gate("c2");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The baseline given again as the candidate: a gate of it against itself is refused.
    let out = imbench(
        &dir,
        &["compare", "r", "./r", "--fail-on-regression", "10%"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("is the baseline r again"),
        "{}",
        text(&out)
    );
    // Two paths that name nothing are two missing reports, not one report twice.
    let out = imbench(
        &dir,
        &["compare", "nope1", "nope2", "--fail-on-regression", "10%"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("nope1") && !text(&out).contains("again"),
        "{}",
        text(&out)
    );
    // A single run into one of the runs' folders would mix another load into the spread.
    let out = imbench(
        &dir,
        &["run", scenario.to_str().unwrap(), "--out", "r/run-1"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("which holds repeated runs"),
        "{}",
        text(&out)
    );
    // A run folder repeat.json does not count is read, and said.
    std::fs::create_dir_all(dir.0.join("r/run-7")).unwrap();
    std::fs::copy(
        dir.0.join("r/run-1/report.json"),
        dir.0.join("r/run-7/report.json"),
    )
    .unwrap();
    let out = imbench(&dir, &["compare", "r", "r/run-1/report.json"]);
    assert!(
        text(&out).contains("run-7 read as runs of the baseline too"),
        "{}",
        text(&out)
    );
    std::fs::remove_dir_all(dir.0.join("r/run-7")).unwrap();
    // A run's report gone since: the baseline is the runs it has, and compare says so.
    std::fs::remove_file(dir.0.join("r/run-2/report.json")).unwrap();
    let gate = [
        "compare",
        "r",
        "c1/report.json",
        "--fail-on-regression",
        "1000%",
    ];
    let out = imbench(&dir, &gate);
    assert!(
        text(&out).contains("repeat.json for 2 whole runs, but no report.json in run-2"),
        "{}",
        text(&out)
    );
    // report prints the file's spread, and says the same.
    let out = imbench(&dir, &["report", "r"]);
    assert!(
        text(&out).contains("no report.json in r/run-2: the table is of repeat.json"),
        "{}",
        text(&out)
    );
    // Every run's report gone: repeat.json alone is no report to read a verdict from.
    let runs: Vec<_> = (1..=2).map(|n| dir.0.join(format!("r/run-{n}"))).collect();
    for run in &runs {
        std::fs::rename(run, run.with_extension("away")).unwrap();
    }
    let out = imbench(&dir, &["report", "r"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("holds none of its runs' reports any more"),
        "{}",
        text(&out)
    );
    for run in &runs {
        std::fs::rename(run.with_extension("away"), run).unwrap();
    }
    // A repeat.json cut short: report refuses it, compare reads the folders and says why.
    let repeat = dir.0.join("r/repeat.json");
    let whole = std::fs::read_to_string(&repeat).unwrap();
    std::fs::write(&repeat, &whole[..whole.len() / 2]).unwrap();
    let out = imbench(&dir, &["report", "r"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = imbench(&dir, &gate);
    assert!(
        text(&out).contains("repeat.json cannot be read (EOF")
            && text(&out).contains("every run folder in r is read"),
        "{}",
        text(&out)
    );
    // Repeats quit before their repeat.json was written leave runs that are theirs still,
    // however few: here only run-1 (the run-2 of a repeat quit in its second run is not).
    std::fs::remove_file(&repeat).unwrap();
    for entry in std::fs::read_dir(dir.0.join("r")).unwrap().flatten() {
        if entry.file_name() != "run-1" && entry.path().is_dir() {
            std::fs::remove_dir_all(entry.path()).unwrap();
        }
    }
    // compare takes such a series as a baseline, and says what it is.
    let out = imbench(&dir, &gate);
    assert!(
        text(&out).contains("r is a --repeat series that ended before its repeat.json"),
        "{}",
        text(&out)
    );
    let out = imbench(
        &dir,
        &["run", scenario.to_str().unwrap(), "--out", "r/run-1"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("which holds the runs of a --repeat"),
        "{}",
        text(&out)
    );
}

/// Ctrl-C in the second of three runs (wherever a slow machine puts it): the run cut short
/// keeps its folder but is left out of the spread, which is of the whole runs before it.
#[test]
fn an_interrupted_repeat_spreads_only_the_whole_runs() {
    let dir = Dir::new("repeat-interrupted");
    let scenario = dir.file(
        "s.toml",
        &TINY.replace("duration = \"1s\"", "duration = \"3s\""),
    );
    let args = [
        "run",
        scenario.to_str().unwrap(),
        "--repeat",
        "3",
        "--out",
        "r",
    ];
    let (out, _) = interrupted(&dir, &args, std::time::Duration::from_secs(5));
    let t = text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    let run_after = |words: &str| {
        t.split(words)
            .nth(1)
            .and_then(|rest| rest.split([' ', ',']).next())
            .and_then(|k| k.parse::<usize>().ok())
    };
    // The interrupt may also come as a run has ended, or before the next began: the runs
    // before it are whole and in the spread.
    let (cut, whole) = match (
        run_after("no more repeats, and run "),
        run_after("no more repeats (run "),
        run_after("interrupted before run "),
    ) {
        (Some(k), None, None) => (k, false),
        (None, Some(k), None) => (k + 1, true),
        (None, None, Some(k)) => (k, true),
        _ => panic!("names the run cut short, or the whole run before the stop: {t}"),
    };
    let report = std::fs::read_to_string(dir.0.join(format!(
        "r/run-{}/report.json",
        if whole { cut - 1 } else { cut }
    )))
    .unwrap();
    assert_eq!(report.contains("interrupted"), !whole, "{report}");
    let repeat = dir.0.join("r/repeat.json");
    if cut == 1 {
        assert!(!repeat.exists(), "{t}");
    } else {
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(repeat).unwrap()).unwrap();
        assert_eq!(json["runs"], cut - 1, "{t}");
        assert_eq!(json["asked"], 3, "{t}");
        let p99 = json["figures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["figure"] == "direct.p99")
            .expect("direct.p99 is among the figures");
        assert_eq!(p99["values"].as_array().unwrap().len(), cut - 1);
        if whole {
            return;
        }
        // As a baseline the folder is its whole runs too: the one cut short is left out.
        let candidate = format!("c{cut}");
        std::fs::create_dir_all(dir.0.join(&candidate)).unwrap();
        std::fs::copy(
            dir.0.join("r/run-1/report.json"),
            dir.0.join(&candidate).join("report.json"),
        )
        .unwrap();
        let out = imbench(
            &dir,
            &[
                "compare",
                "r",
                &format!("{candidate}/report.json"),
                "--fail-on-regression",
                "1000%",
            ],
        );
        let t = text(&out);
        assert!(
            t.contains(&format!(
                "run-{cut} left out: repeat.json counts {} whole",
                cut - 1
            )),
            "{t}"
        );
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(!table.contains(&format!("run-{cut}")), "{table}");
    }
}

#[test]
fn ctrl_c_during_a_long_ramp_up_stops_connecting_and_the_report_reads_back() {
    let dir = Dir::new("interrupt-ramp");
    let scenario = dir.file("s.toml", TINY);
    // 40 clients at 4 a second: a 10 s ramp-up, interrupted after 2 s.
    let args = [
        "run",
        scenario.to_str().unwrap(),
        "--clients",
        "40",
        "--connect-rate",
        "4",
        "--out",
        "r",
        "--progress",
        "plain",
    ];
    let (out, took) = interrupted(&dir, &args, std::time::Duration::from_secs(2));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    // Said once, though logins under way hold the loop in its drain a while.
    said_interrupted_once(&out);
    // The rest of the ramp-up alone would take 8 s; a stopped run drains for at most 3.
    assert!(
        took < std::time::Duration::from_secs(7),
        "stopped after {took:?}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.0.join("r/report.json")).unwrap())
            .unwrap();
    let run = &report["runs"][0];
    assert!(
        run["counters"]["clients"].as_u64().unwrap() < 40,
        "{}",
        run["counters"]
    );
    assert_eq!(run["throughput"]["sent_per_s"], 0.0);
    assert!(!text(&out).contains("NaN"), "{}", text(&out));
    // It reads back, and gives the interrupted run's verdict again.
    let reread = imbench(&dir, &["report", "r"]);
    assert_eq!(reread.status.code(), Some(3), "{}", text(&reread));
    assert!(text(&reread).contains("wrote"), "{}", text(&reread));
}

#[test]
fn a_report_from_before_a_metric_existed_reads_back() {
    // The CI baseline as committed on 2026-11-24 was written before send_delay existed.
    let dir = Dir::new("old-report");
    let old = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/report/testdata/schema-1-a.json");
    let text_of_old = std::fs::read_to_string(&old).unwrap();
    assert!(
        !text_of_old.contains("send_delay"),
        "the fixture lacks the metric"
    );
    dir.file("report.json", &text_of_old);
    let out = imbench(&dir, &["report", "report.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("direct"), "{}", text(&out));
    assert!(!text(&out).contains("was lost"), "{}", text(&out));
    // A table that cannot be written is said, the code stays the report's.
    if let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") {
        let out = Command::new(env!("CARGO_BIN_EXE_imbench"))
            .current_dir(&dir.0)
            .args(["report", "report.json"])
            .stdout(full)
            .output()
            .expect("runs imbench");
        assert_eq!(out.status.code(), Some(0));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("what it printed was lost") && err.contains("space"),
            "{err}"
        );
        // So is help (clap's own printing said nothing).
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_imbench"))
            .args(["run", "--help"])
            .stdout(full)
            .output()
            .expect("runs imbench");
        assert_eq!(out.status.code(), Some(0));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("what it printed was lost"), "{err}");
    }
    // A reader that went away is no failure and says nothing.
    let mut child = Command::new(env!("CARGO_BIN_EXE_imbench"))
        .current_dir(&dir.0)
        .args(["report", "report.json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs imbench");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("imbench ends");
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("was lost"), "{err}");
}

/// A reference server on loopback TCP, in this test's process, with its certificate and secret
/// written into `dir` as `imbench-server` writes them.
struct Standalone {
    _runtime: tokio::runtime::Runtime,
    addr: String,
    cert: PathBuf,
    secret: PathBuf,
}

fn standalone(dir: &Dir) -> Standalone {
    standalone_over(dir, imbench_transport::Transport::Tcp, |_| {})
}

/// An in-process server over `transport`, with the limits `limit` sets.
fn standalone_over(
    dir: &Dir,
    transport: imbench_transport::Transport,
    limit: impl FnOnce(&mut imbench_server::Limits),
) -> Standalone {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut config = imbench_server::ServerConfig::loopback_on(&[transport]).unwrap();
    limit(&mut config.limits);
    let cert = dir.file("cert.pem", &config.identity.cert_chain_pem);
    let secret = dir.file("secret", &config.secret.to_hex());
    let server = runtime
        .block_on(imbench_server::start(config))
        .expect("server starts");
    let addr = server.addr(transport).unwrap().to_string();
    // It serves until the runtime is dropped with the test.
    std::mem::forget(server);
    Standalone {
        _runtime: runtime,
        addr,
        cert,
        secret,
    }
}

#[test]
fn a_secret_that_is_not_the_servers_is_a_usage_error_that_says_so() {
    let dir = Dir::new("wrong-secret");
    let server = standalone(&dir);
    let scenario = dir.file("s.toml", TINY);
    let other = dir.random_secret("other-secret");
    let out = imbench(
        &dir,
        &[
            "run",
            scenario.to_str().unwrap(),
            "--server",
            &format!("tcp={}", server.addr),
            "--cert",
            server.cert.to_str().unwrap(),
            "--secret-file",
            other.to_str().unwrap(),
            "--transport",
            "tcp",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("refused the clients' login"), "{said}");
    assert!(said.contains("check --secret-file"), "{said}");
    assert!(!said.contains("cannot reach"), "{said}");
    // Written with the default mode, others may read it: said, not refused.
    assert!(said.contains("may be read by others"), "{said}");
}

#[test]
fn ctrl_c_during_the_drain_cuts_it_short_and_marks_the_run() {
    let dir = Dir::new("interrupt-drain");
    let server = standalone(&dir);
    // A shard always waits out its drain (other shards' messages may still come): 60 s here.
    let scenario = dir.file("s.toml", &TINY.replace("drain = \"3s\"", "drain = \"60s\""));
    let args = [
        "run",
        scenario.to_str().unwrap(),
        "--server",
        &format!("tcp={}", server.addr),
        "--cert",
        server.cert.to_str().unwrap(),
        "--secret-file",
        server.secret.to_str().unwrap(),
        "--transport",
        "tcp",
        "--shard",
        "1/1",
        "--out",
        "r",
        "--progress",
        "plain",
    ];
    // Ramp-up, warm-up and the measured second are over after 1.3 s: the drain has begun.
    let (out, took) = interrupted(&dir, &args, std::time::Duration::from_millis(3_000));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        took < std::time::Duration::from_secs(15),
        "ended {took:?} after Ctrl-C"
    );
    let report = std::fs::read_to_string(dir.0.join("r/report.json")).unwrap();
    assert!(
        report.contains("stopped during the drain: interrupted at"),
        "{report}"
    );
    assert!(report.contains("\"verdict\": \"invalid\""));
}

#[test]
fn an_slo_on_a_figure_that_does_not_exist_is_refused_before_the_run() {
    let dir = Dir::new("slo-typo");
    let scenario = dir.file(
        "s.toml",
        &TINY.replace("duration = \"1s\"", "duration = \"60s\""),
    );
    for slo in ["dircet.p99<5ms", "lsot==0"] {
        let started = std::time::Instant::now();
        let out = imbench(&dir, &["run", scenario.to_str().unwrap(), "--slo", slo]);
        assert_eq!(out.status.code(), Some(2), "{slo}: {}", text(&out));
        let said = text(&out);
        assert!(said.contains("no figure is called"), "{said}");
        assert!(
            said.contains("direct.STAT") && said.contains("lost"),
            "{said}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "refused before the 60 s run"
        );
    }
    // A real name used the wrong way says how it is used.
    for (slo, says) in [
        (
            "direct<1s",
            "is a latency: give it a statistic, as in direct.p99 < 1s",
        ),
        (
            "lost.p99<1ms",
            "is a count or a rate, not a latency: it takes no statistic",
        ),
        // A latency's bound needs its unit: 500 could be µs or ms.
        ("direct.p99<500", "needs a unit: 500ms, 500us or 500s"),
    ] {
        let out = imbench(&dir, &["run", scenario.to_str().unwrap(), "--slo", slo]);
        assert_eq!(out.status.code(), Some(2), "{slo}: {}", text(&out));
        assert!(text(&out).contains(says), "{slo}: {}", text(&out));
        assert!(!text(&out).contains("scenario:"), "{slo}: {}", text(&out));
    }
    // Every kind of real name is accepted: a latency, a bucket, a counter, a group count, a rate.
    for slo in [
        "direct.p99<5s",
        "fanout_gt1000.p99<5s",
        "lost==0",
        "incomplete==0",
        "delivered_per_s>0",
    ] {
        let s: imbench_loadgen::config::slo::Slo =
            imbench_loadgen::config::slo::Slo::parse(slo).unwrap_or_else(|e| panic!("{slo}: {e}"));
        assert!(
            imbench_loadgen::report::slo_target_known(&s.target),
            "{slo} refused"
        );
    }
}

#[test]
fn a_report_folder_that_cannot_hold_the_new_report_is_refused_before_the_run() {
    let dir = Dir::new("out-folder");
    let scenario = dir.file(
        "s.toml",
        &TINY.replace("duration = \"1s\"", "duration = \"60s\""),
    );
    let s = scenario.to_str().unwrap();
    // A file where the folder should go.
    dir.file("afile", "not a folder");
    // The runs of an earlier --repeat, and a single earlier report.
    std::fs::create_dir_all(dir.0.join("repeated/run-1")).unwrap();
    dir.file("repeated/repeat.json", "{}");
    std::fs::create_dir_all(dir.0.join("single")).unwrap();
    dir.file("single/report.json", "{}");
    // A page of the user's where a search would write its own.
    std::fs::create_dir_all(dir.0.join("pages")).unwrap();
    dir.file("pages/capacity.md", "# my notes on capacity");
    // The steps of an earlier capacity search.
    std::fs::create_dir_all(dir.0.join("searched/step-01")).unwrap();
    dir.file("searched/capacity.json", "{}");
    // A folder of the user's, and one that holds report folders (shards for a merge).
    std::fs::create_dir_all(dir.0.join("mine")).unwrap();
    dir.file("mine/notes.txt", "mine");
    std::fs::create_dir_all(dir.0.join("shards/shard-1")).unwrap();
    dir.file("shards/shard-1/report.json", "{}");
    let search =
        |out: &'static str| vec!["run", s, "--find-max", "--slo", "lost == 0", "--out", out];
    for (args, says) in [
        (
            vec!["run", s, "--out", "searched"],
            "already holds capacity.json, step-01",
        ),
        (search("searched"), "already holds capacity.json, step-01"),
        (search("single"), "already holds report.json"),
        (search("repeated"), "already holds repeat.json, run-1"),
        (vec!["run", s, "--out", "afile"], "is a file, not a folder"),
        (
            vec!["run", s, "--out", "mine"],
            "holds things that are not imbench's reports (notes.txt)",
        ),
        (
            vec!["run", s, "--out", "shards"],
            "holds report folders of other runs, which a run there would sit among (shard-1)",
        ),
        (
            vec!["run", s, "--out", "repeated"],
            "already holds repeat.json, run-1",
        ),
        (
            vec!["run", s, "--out", "single", "--repeat", "2"],
            "already holds report.json",
        ),
        // A file of imbench's name that imbench did not write: a run would replace it.
        (
            vec!["run", s, "--out", "single"],
            "holds report.json, which imbench did not write (not an imbench report",
        ),
        (
            search("pages"),
            "holds capacity.md, which imbench did not write",
        ),
    ] {
        let started = std::time::Instant::now();
        let out = imbench(&dir, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
    }
}

#[test]
fn a_repeated_baseline_shows_every_run_and_misuse_is_named() {
    // A copy of the committed CI baseline: five runs, run-1 … run-5.
    let dir = Dir::new("repeated-baseline");
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports/baselines/ci");
    for i in 1..=5 {
        let text = std::fs::read_to_string(source.join(format!("run-{i}/report.json"))).unwrap();
        std::fs::create_dir_all(dir.0.join(format!("base/run-{i}"))).unwrap();
        dir.file(&format!("base/run-{i}/report.json"), &text);
    }
    // `report` on the folder of runs says which folder to give.
    let out = imbench(&dir, &["report", "base"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("holds the runs of a --repeat"),
        "{}",
        text(&out)
    );
    // `compare` puts every baseline run beside the new report (here one of its own runs,
    // which it notes, and which a gate refuses: it is inside the spread it is judged by).
    let out = imbench(
        &dir,
        &[
            "compare",
            "base",
            "base/run-3",
            "--fail-on-regression",
            "10%",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("is one of the baseline base's own runs"),
        "{}",
        text(&out)
    );
    let out = imbench(&dir, &["compare", "base", "base/run-3"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let table = text(&out);
    for column in ["run-1", "run-2", "run-4", "run-5"] {
        assert!(table.contains(column), "{column} missing: {table}");
    }
    assert!(!table.contains("not a --repeat series"), "{table}");
    // Folders of other names side by side (two servers' reports, say) are pooled only with
    // a word.
    for name in ["nats", "mqtt"] {
        let text = std::fs::read_to_string(source.join("run-1/report.json")).unwrap();
        std::fs::create_dir_all(dir.0.join(format!("mixed/{name}"))).unwrap();
        dir.file(&format!("mixed/{name}/report.json"), &text);
    }
    let out = imbench(&dir, &["compare", "mixed", "base/run-3"]);
    assert!(
        text(&out).contains("mixed is not a --repeat series"),
        "{}",
        text(&out)
    );
    // A repeat.json whose counts make no sense (edited, or from something else) leaves the
    // runs as they are; counts near the largest number once made a list that long.
    for (runs, asked) in [(u64::MAX, u64::MAX), (u64::MAX, 0)] {
        dir.file(
            "base/repeat.json",
            &format!(
                r#"{{"scenario":"ci","runs":{runs},"asked":{asked},"verdicts":[],"figures":[]}}"#
            ),
        );
        let out = imbench(&dir, &["compare", "base", "base/run-3"]);
        assert_eq!(out.status.code(), Some(0), "{runs} {asked}: {}", text(&out));
        let table = text(&out);
        assert!(table.contains("run-5"), "{runs} {asked}: {table}");
    }
    // `report` prints a spread that agrees with itself, and refuses this one, quickly.
    let started = std::time::Instant::now();
    let out = imbench(&dir, &["report", "base/repeat.json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("does not hold what a --repeat writes"),
        "{}",
        text(&out)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // A --check on no figure is named as such (the candidate a copy of a run, outside).
    let run = std::fs::read_to_string(dir.0.join("base/run-3/report.json")).unwrap();
    std::fs::create_dir_all(dir.0.join("cand")).unwrap();
    dir.file("cand/report.json", &run);
    let out = imbench(
        &dir,
        &[
            "compare",
            "base",
            "cand",
            "--fail-on-regression",
            "10%",
            "--check",
            "dierct.p99",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("no figure is called \"dierct.p99\""),
        "{}",
        text(&out)
    );
}

/// `imbench run SCENARIO --repeat 2 --out OUT` in `dir`.
fn twice(dir: &Dir, scenario: &std::path::Path, out: &str) -> Output {
    imbench(
        dir,
        &[
            "run",
            scenario.to_str().unwrap(),
            "--repeat",
            "2",
            "--out",
            out,
        ],
    )
}

/// `report` on a --repeat folder whose runs' reports do not read says so: a note for one, a
/// refusal (exit 2) when none reads, as `compare` refuses such a folder.
#[test]
fn a_repeat_folder_whose_reports_do_not_read_is_not_reported_as_ok() {
    let dir = Dir::new("repeat-unreadable");
    let scenario = dir.file("s.toml", TINY);
    let out = twice(&dir, &scenario, "rep");
    assert!(dir.0.join("rep/repeat.json").is_file(), "{}", text(&out));
    dir.file("rep/run-2/report.json", "garbage");
    let out = imbench(&dir, &["report", "rep"]);
    assert!(
        text(&out).contains("run-2/report.json cannot be read"),
        "{}",
        text(&out)
    );
    dir.file("rep/run-1/report.json", "{\"truncated\": ");
    let out = imbench(&dir, &["report", "rep"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("holds none of its runs' reports in a form that reads"),
        "{}",
        text(&out)
    );
}

#[test]
fn plain_tcp_needs_no_certificate_and_quic_says_it_does() {
    let dir = Dir::new("no-cert");
    let server = standalone(&dir);
    let scenario = dir.file("s.toml", TINY);
    let s = scenario.to_str().unwrap();
    let tcp = format!("tcp={}", server.addr);
    let secret = server.secret.to_str().unwrap();
    let common = ["run", s, "--server", &tcp, "--secret-file", secret];
    let out = imbench(&dir, &[&common[..], &["--transport", "tcp"]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let quic = format!("quic={}", server.addr);
    let out = imbench(
        &dir,
        &[
            "run",
            s,
            "--server",
            &quic,
            "--secret-file",
            secret,
            "--transport",
            "quic",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("give --cert"), "{}", text(&out));
    // A secret file that is not there is said once, with the system's reason once.
    let out = imbench(
        &dir,
        &[
            "run",
            s,
            "--server",
            &tcp,
            "--secret-file",
            "no-such-secret",
            "--transport",
            "tcp",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("no-such-secret"), "{t}");
    assert_eq!(t.matches("os error 2").count(), 1, "{t}");
}

#[test]
fn a_port_that_is_not_an_imbench_server_is_named_as_such_with_what_it_said() {
    use std::io::{Read, Write};
    let dir = Dir::new("not-imbench");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Answers whatever comes as a web server would, for a bounded number of connections.
    std::thread::spawn(move || {
        for conn in listener.incoming().take(4) {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 256];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let scenario = dir.file("s.toml", TINY);
    let secret = dir.random_secret("secret");
    let target = format!("tcp={addr}");
    let out = imbench(
        &dir,
        &[
            "run",
            scenario.to_str().unwrap(),
            "--server",
            &target,
            "--secret-file",
            secret.to_str().unwrap(),
            "--transport",
            "tcp",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("is not an imbench server")
            && text(&out).contains("it answered in HTTP"),
        "{}",
        text(&out)
    );
}

#[test]
fn too_few_files_for_the_clients_is_a_usage_error_with_a_remedy_that_applies() {
    let dir = Dir::new("files");
    let secret = dir.random_secret("secret");
    // A hard limit of 2,000 files, whatever the machine's.
    let limited = |args: &[&str]| {
        Command::new("sh")
            .arg("-c")
            .arg("ulimit -S -n 1000 && ulimit -H -n 2000 && exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_imbench"))
            .args(args)
            .current_dir(&dir.0)
            .output()
            .expect("imbench runs")
    };
    let embedded = limited(&["run", "--clients", "3000", "--transport", "tcp"]);
    assert_eq!(embedded.status.code(), Some(2), "{}", text(&embedded));
    assert!(
        text(&embedded).contains("run the server standalone"),
        "{}",
        text(&embedded)
    );
    let standalone = limited(&[
        "run",
        "--clients",
        "3000",
        "--transport",
        "tcp",
        "--server",
        "tcp=127.0.0.1:1",
        "--secret-file",
        secret.to_str().unwrap(),
    ]);
    assert_eq!(standalone.status.code(), Some(2), "{}", text(&standalone));
    assert!(
        !text(&standalone).contains("standalone") && text(&standalone).contains("--shard"),
        "{}",
        text(&standalone)
    );
}

#[test]
fn a_server_that_refuses_every_message_makes_the_run_invalid() {
    let dir = Dir::new("all-refused");
    // Smaller than any body the generator sends.
    let server = standalone_over(&dir, imbench_transport::Transport::Tcp, |l| l.max_body = 8);
    let target = format!("tcp={}", server.addr);
    let secret = &server.secret;
    let scenario = dir.file("s.toml", TINY);
    let out = imbench(
        &dir,
        &[
            "run",
            scenario.to_str().unwrap(),
            "--server",
            &target,
            "--secret-file",
            secret.to_str().unwrap(),
            "--transport",
            "tcp",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("the server refused every message"),
        "{}",
        text(&out)
    );
    // And the problems say why, in the server's words.
    assert!(text(&out).contains(": message refused: "), "{}", text(&out));
}

#[test]
fn logins_that_outlast_the_ramp_up_into_the_measured_period_are_named() {
    let dir = Dir::new("logins-into-measure");
    // 100 clients one at a time, measured from the start: at the connect rate asked for the
    // ramp-up is a millisecond, which 100 handshakes in a row cannot fit.
    let scenario = dir.file(
        "s.toml",
        &TINY
            .replace("clients = 10", "clients = 100")
            .replace("ramp_up = \"100ms\"", "ramp_up = \"0s\"")
            .replace("warmup = \"200ms\"", "warmup = \"0s\"")
            .replace("[generator]\n", "[generator]\nconnect_concurrency = 1\n"),
    );
    let out = imbench(
        &dir,
        &[
            "run",
            scenario.to_str().unwrap(),
            "--connect-rate",
            "100000",
            "--out",
            "r",
        ],
    );
    let said = text(&out);
    assert!(
        said.contains("clients were still logging in, or waiting their turn to, when the measured period began"),
        "{said}"
    );
    assert!(
        said.contains("a longer --ramp-up keeps the logins out of it"),
        "{said}"
    );
    // Their sends before they logged in were not made, whatever arrived: said too.
    assert!(
        said.contains("clients logged in only after sending had begun, the last "),
        "{said}"
    );
    let report = std::fs::read_to_string(dir.0.join("r/report.json")).unwrap();
    assert!(
        report.contains("when the measured period began"),
        "{report}"
    );
}

#[test]
fn a_scenario_that_sends_nothing_is_refused_before_it_runs() {
    let dir = Dir::new("sends-nothing");
    let header = TINY.split("[direct]").next().unwrap_or_default();
    let scenario = dir.file("s.toml", header);
    let out = imbench(&dir, &["run", scenario.to_str().unwrap(), "--out", "r"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("\"tiny\" sends nothing"),
        "{}",
        text(&out)
    );
    assert!(!dir.0.join("r").exists(), "nothing ran");
    // --rate gives it direct chat.
    let out = imbench(&dir, &["run", scenario.to_str().unwrap(), "--rate", "5"]);
    assert_ne!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn a_server_that_refuses_files_and_joins_says_so() {
    let dir = Dir::new("files-refused");
    let server = standalone_over(&dir, imbench_transport::Transport::Tcp, |l| {
        l.max_file_size = 1024;
        l.max_group_members = 3;
    });
    let target = format!("tcp={}", server.addr);
    let secret = server.secret.to_str().unwrap().to_string();
    let run = |name: &str, files: &str| {
        let groups = "[groups]\ncount = 2\nmembers = { dist = \"fixed\", size = 6 }\nrate = 5.0\n";
        let scenario = dir.file(name, &format!("{TINY}{groups}[files]\nrate = 5.0\n{files}"));
        imbench(
            &dir,
            &[
                "run",
                scenario.to_str().unwrap(),
                "--server",
                &target,
                "--secret-file",
                &secret,
                "--transport",
                "tcp",
            ],
        )
    };
    // Every file over the server's limit: no transfer was measured.
    let out = run(
        "over.toml",
        "size = { dist = \"fixed\", bytes = \"4KiB\" }\n",
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("the server refused every file offered"),
        "{}",
        text(&out)
    );
    // Joins over the group's limit: a note, the groups being smaller than asked.
    assert!(
        text(&out).contains(
            "joins or leaves (see the problems): groups were not all as the scenario has them"
        ),
        "{}",
        text(&out)
    );
    // Some of them over it: a note, and the run judged on what it took.
    let out = run(
        "some.toml",
        "size = { dist = \"log_uniform\", min = \"256B\", max = \"4KiB\" }\n",
    );
    assert!(
        text(&out).contains("files offered (") && text(&out).contains("`files_refused == 0`"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("refused every file"), "{}", text(&out));
}

#[test]
fn a_certificate_that_is_not_the_servers_is_a_usage_error_that_names_cert() {
    let dir = Dir::new("wrong-cert");
    let server = standalone_over(&dir, imbench_transport::Transport::Tls, |_| {});
    let other = imbench_transport::ServerIdentity::self_signed(&["localhost"]).unwrap();
    let cert = dir.file("other-cert.pem", &other.cert_chain_pem);
    let target = format!("tls={}", server.addr);
    let secret = &server.secret;
    let scenario = dir.file("s.toml", TINY);
    let out = imbench(
        &dir,
        &[
            "run",
            scenario.to_str().unwrap(),
            "--server",
            &target,
            "--secret-file",
            secret.to_str().unwrap(),
            "--cert",
            cert.to_str().unwrap(),
            "--transport",
            "tls",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--cert"), "{}", text(&out));
}

/// The whole answer to `GET /metrics` on `addr`, if it answers.
fn scrape(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: imbench\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

/// The value of the first sample of `name` in a scrape (whatever its labels).
fn sample(scrape: &str, name: &str) -> Option<f64> {
    scrape.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        let value = match rest.strip_prefix('{') {
            Some(labelled) => labelled.split_once("} ")?.1,
            None => rest.strip_prefix(' ')?,
        };
        value.parse().ok()
    })
}

/// Ctrl-C while the first connection waits on a target that took it and says nothing: one
/// line says what was interrupted (the handler said beside it that no run was measuring).
#[test]
fn ctrl_c_while_reaching_a_silent_target_is_said_once() {
    let dir = Dir::new("silent-target");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Takes connections and never answers, for a bounded number of them.
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().take(4).flatten().collect();
        std::thread::sleep(std::time::Duration::from_secs(30));
        drop(held);
    });
    let scenario = dir.file("s.toml", TINY);
    let target = format!("nats://{addr}");
    let args = ["run", scenario.to_str().unwrap(), "--target", &target];
    let (out, _) = interrupted(&dir, &args, std::time::Duration::from_millis(1200));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("interrupted while reaching the server, before the run began"),
        "{all}"
    );
    assert!(!all.contains("no run was measuring"), "{all}");
}

#[test]
fn metrics_addr_serves_both_sides_live_and_a_taken_port_is_a_usage_error() {
    let dir = Dir::new("metrics");
    let scenario = dir.file(
        "s.toml",
        &TINY.replace("duration = \"1s\"", "duration = \"4s\""),
    );
    let scenario = scenario.to_str().unwrap();

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let refused = imbench(&dir, &["run", scenario, "--metrics-addr", &taken_addr]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        text(&refused).contains("--metrics-addr"),
        "{}",
        text(&refused)
    );
    drop(taken);

    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap().to_string();
    drop(free);
    let child = Command::new(env!("CARGO_BIN_EXE_imbench"))
        .args([
            "run",
            scenario,
            "--metrics-addr",
            &addr,
            "--progress",
            "plain",
        ])
        .args(["--out", "report"])
        .current_dir(&dir.0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Scraped until the run is measuring and has sent something, for at most 20 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut measuring = None;
    while measuring.is_none() && std::time::Instant::now() < deadline {
        if let Some(s) = scrape(&addr) {
            if s.contains("phase=\"measure\"") && sample(&s, "imbench_sent_total") > Some(0.0) {
                measuring = Some(s);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let live = measuring.expect("a scrape during the measured period");
    assert!(live.starts_with("HTTP/1.1 200 OK"), "{live}");
    assert!(
        live.contains("imbench_run_info{scenario=\"tiny\",target=\"quic\",phase=\"measure\"} 1")
    );
    assert_eq!(sample(&live, "imbench_clients_connected"), Some(10.0));
    assert!(sample(&live, "imbench_direct_p99_seconds").is_some_and(|s| s > 0.0 && s < 1.0));
    // The embedded server's own figures, beside the generator's.
    assert!(
        sample(&live, "imbench_server_sessions_opened_total") >= Some(10.0),
        "{live}"
    );
    assert!(text(&out).contains(&format!("metrics for Prometheus: http://{addr}/metrics")));
}

/// A load the machine alone spoiled is tried again, and the live lines say so.
#[test]
fn a_capacity_search_says_when_it_tries_a_load_again() {
    let dir = Dir::new("find-max-again");
    // Any use of the CPUs is over this limit: every step is the machine's.
    let scenario = dir.file(
        "s.toml",
        &TINY.replace("max_cpu_busy = 1.0", "max_cpu_busy = 0.000001"),
    );
    let out = imbench(
        &dir,
        &[
            "run",
            scenario.to_str().unwrap(),
            "--find-max",
            "--max-steps",
            "1",
            "--slo",
            "direct.p99 < 10s",
            "--progress",
            "quiet",
        ],
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(all.contains("step 1: load 1.000x, "), "{all}");
    for n in [2, 3] {
        assert!(
            all.contains(&format!("step {n}: load 1.000x again, ")),
            "{all}"
        );
    }
    assert!(!all.contains("step 4:"), "two tries more, no third: {all}");
    let refine = imbench(
        &dir,
        &[
            "run",
            scenario.to_str().unwrap(),
            "--find-max",
            "--refine",
            "11",
        ],
    );
    assert_eq!(refine.status.code(), Some(2), "{}", text(&refine));
    assert!(
        text(&refine).contains("at most 10, got 11"),
        "{}",
        text(&refine)
    );
}

/// A capacity search leaves a report a person can open (capacity.md, capacity.html with the
/// curve) beside capacity.json and the steps, and `imbench report` renders the folder again.
#[test]
fn a_capacity_search_writes_its_report_and_imbench_report_reads_the_folder() {
    let dir = Dir::new("find-max-report");
    let scenario = dir.file("s.toml", TINY);
    let out = imbench(
        &dir,
        &[
            "run",
            scenario.to_str().unwrap(),
            "--find-max",
            "--max-steps",
            "2",
            "--refine",
            "0",
            "--slo",
            "direct.p99 < 10s",
            "--progress",
            "quiet",
            "--out",
            "cap",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("capacity.html"), "{}", text(&out));
    let folder = dir.0.join("cap");
    let html = std::fs::read_to_string(folder.join("capacity.html")).expect("capacity.html");
    assert!(
        html.contains("id=\"chart-1\"") && html.contains("uPlot"),
        "the curve, twice"
    );
    assert!(
        html.contains("SLO direct.p99 < 10s (above the plot)"),
        "far above the figures: named, not drawn"
    );
    assert!(html.contains("href=\"step-02/report.html\""));
    let json = std::fs::read_to_string(folder.join("capacity.json")).unwrap();
    assert!(
        json.contains("\"report\": \"step-01\""),
        "step folders are named relative to the search: {json}"
    );
    let md = std::fs::read_to_string(folder.join("capacity.md")).expect("capacity.md");
    assert!(md.contains("highest load that held: 1.500x"), "{md}");
    std::fs::remove_file(folder.join("capacity.md")).unwrap();
    let out = imbench(&dir, &["report", "cap"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("capacity search for tiny"),
        "{}",
        text(&out)
    );
    assert!(folder.join("capacity.md").is_file(), "written again");
    let out = imbench(&dir, &["report", "cap/capacity.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("capacity search for tiny"));
    // A step folder is an ordinary report.
    let out = imbench(&dir, &["report", "cap/step-01"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The search's folder is not a baseline of repeats, and two steps are not shards of one
    // load: they ran different rates one after the other.
    let out = imbench(&dir, &["compare", "cap", "cap/step-01"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("holds a capacity search"),
        "{}",
        text(&out)
    );
    let out = imbench(
        &dir,
        &["merge", "cap/step-01", "cap/step-02", "--out", "merged"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("it is a whole run, not a shard"),
        "{}",
        text(&out)
    );
    // A step's report gone since: the table is capacity.json's, and report says so.
    std::fs::remove_dir_all(folder.join("step-01")).unwrap();
    let out = imbench(&dir, &["report", "cap"]);
    assert!(
        text(&out).contains("no report.json in cap/step-01: the table is of capacity.json"),
        "{}",
        text(&out)
    );
}

/// A search stopped by Ctrl-C (or SIGTERM) says so and exits 3: the highest load that held
/// before it is not the capacity. `imbench report` on its folder gives the same verdict.
#[test]
fn an_interrupted_capacity_search_says_so_and_exits_3() {
    let dir = Dir::new("find-max-interrupted");
    let scenario = dir.file(
        "s.toml",
        &TINY.replace("duration = \"1s\"", "duration = \"3s\""),
    );
    let args = [
        "run",
        scenario.to_str().unwrap(),
        "--find-max",
        "--slo",
        "lost == 0",
        "--progress",
        "quiet",
        "--out",
        "cap",
    ];
    let (out, _) = interrupted(&dir, &args, std::time::Duration::from_secs(5));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("interrupted during step"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("no step failed"), "{}", text(&out));
    let json = std::fs::read_to_string(dir.0.join("cap/capacity.json")).unwrap();
    assert!(json.contains("\"interrupted\": true"), "{json}");
    let out = imbench(&dir, &["report", "cap"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
}

/// Growth past ten times a step, or a rate no generator sends, is refused before anything
/// runs.
#[test]
fn a_search_or_rate_out_of_bounds_is_refused() {
    let dir = Dir::new("find-max-bounds");
    let scenario = dir.file("s.toml", TINY);
    let s = scenario.to_str().unwrap();
    let secret = dir.random_secret("secret");
    let secret = secret.to_str().unwrap();
    // A split into more shards than clients is refused in every shard, the first (which has a
    // client) as the last (which has none).
    let shard = |i: &'static str| {
        vec![
            "run",
            s,
            "--server",
            "tcp=127.0.0.1:9",
            "--transport",
            "tcp",
            "--secret-file",
            secret,
            "--shard",
            i,
        ]
    };
    for (args, says) in [
        (shard("1/300"), "300 shards of"),
        (shard("300/300"), "300 shards of"),
        // A path made for the embedded server, beside a server of one's own: what to do
        // instead, not only that the two flags conflict.
        (
            [&shard("1/1")[..8], &["--network", "lan"]].concat(),
            "hold the path with `imbench path` and give --namespace",
        ),
        (
            vec![
                "run",
                s,
                "--find-max",
                "--slo",
                "lost==0",
                "--growth",
                "1e300",
            ],
            "at most 10",
        ),
        (
            vec!["run", s, "--find-max", "--slo", "lost==0", "--growth", "1"],
            "--growth is each step's load",
        ),
        (
            vec![
                "run",
                s,
                "--find-max",
                "--slo",
                "lost==0",
                "--growth",
                "1.0001",
            ],
            "at least 1.01",
        ),
        (
            vec![
                "run",
                s,
                "--find-max",
                "--slo",
                "lost==0",
                "--max-steps",
                "0",
            ],
            "--max-steps must be at least 1",
        ),
        (vec!["run", s, "--rate", "1e300"], "at most 10000000"),
        // A negative rate is the scenario's error, not taken for a flag.
        (
            vec!["run", s, "--rate", "-1"],
            "direct.rate must be a finite number of 0 or more",
        ),
        (vec!["run", s, "--connect-rate", "-5"], "connect_rate"),
    ] {
        let out = imbench(&dir, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
    }
    // `--network loopback` is no path: beside a server of one's own it takes a scenario's
    // [network] away, and the run goes on to find nothing listening there.
    let lossy = dir.file(
        "lossy.toml",
        &std::fs::read_to_string(scenario.as_path())
            .unwrap()
            .replace("[generator]", "[network]\nprofile = \"lossy\"\n[generator]"),
    );
    let lossy = lossy.to_str().unwrap();
    let mut args = shard("1/1")[..8].to_vec();
    args[1] = lossy;
    let out = imbench(&dir, &args);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("imbench path"), "{}", text(&out));
    args.extend(["--network", "loopback"]);
    let out = imbench(&dir, &args);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("nothing listens"), "{}", text(&out));
}

/// A port that speaks something else is named as such for each transport: an HTTP/1.0 server
/// for TLS, WSS and WS, a port that accepts and says nothing for TCP (exit 2, not a wait).
#[test]
fn a_port_that_is_not_an_imbench_server_is_said_to_be_one_per_transport() {
    use std::io::{Read, Write};
    let dir = Dir::new("not-imbench-transports");
    let scenario = dir.file(
        "s.toml",
        &TINY.replace("[generator]", "[generator]\nconnect_timeout = \"1s\""),
    );
    let id = imbench_transport::ServerIdentity::self_signed(&["localhost"]).unwrap();
    let cert = dir.file("cert.pem", &id.cert_chain_pem);
    let secret = dir.random_secret("secret");
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let http_addr = http.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in http.incoming().flatten().take(8) {
            let mut stream = stream;
            let mut buf = [0u8; 1024];
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_millis(200)));
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n");
        }
    });
    let mute = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mute_addr = mute.local_addr().unwrap().to_string();
    let run = |transport: &str, addr: &str| {
        imbench(
            &dir,
            &[
                "run",
                scenario.to_str().unwrap(),
                "--transport",
                transport,
                "--server",
                addr,
                "--cert",
                cert.to_str().unwrap(),
                "--secret-file",
                secret.to_str().unwrap(),
            ],
        )
    };
    for (transport, addr, said) in [
        ("tls", &http_addr, "did not answer TLS"),
        ("wss", &http_addr, "did not answer TLS"),
        ("ws", &http_addr, "did not accept a WebSocket upgrade"),
        (
            "tcp",
            &mute_addr,
            "accepts connections but did not answer within 1s",
        ),
    ] {
        let out = run(transport, addr);
        // A port that answers as something else is a usage error; one that says nothing may
        // be a server that hangs, so the run is only invalid.
        let code = if transport == "tcp" { 3 } else { 2 };
        assert_eq!(out.status.code(), Some(code), "{transport}: {}", text(&out));
        assert!(text(&out).contains(said), "{transport}: {}", text(&out));
        assert!(
            text(&out).contains(&format!("an imbench server's {transport} port")),
            "{transport}: {}",
            text(&out)
        );
    }
    drop(mute);
}

#[test]
fn a_search_folder_without_its_capacity_json_names_a_step_to_read() {
    // What a search quit with a second Ctrl-C leaves: finished steps, no capacity.json.
    let dir = Dir::new("unfinished-search");
    let scenario = dir.file("s.toml", TINY);
    let out = imbench(&dir, &["run", scenario.to_str().unwrap(), "--out", "r"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    std::fs::create_dir_all(dir.0.join("search")).unwrap();
    std::fs::rename(dir.0.join("r"), dir.0.join("search/step-01")).unwrap();
    let out = imbench(&dir, &["report", "search"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(
            "holds 1 step(s) of a capacity search that ended before writing its capacity.json"
        ),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("search/step-01"), "{}", text(&out));
    let out = imbench(&dir, &["report", "search/step-01"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Nor are its steps a baseline of repeats (they ran different loads).
    for args in [
        ["compare", "search", "search/step-01"],
        ["compare", "search/step-01", "search"],
    ] {
        let out = imbench(&dir, &args);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(
            text(&out).contains("step(s) of a capacity search"),
            "{}",
            text(&out)
        );
    }
}

/// A run killed while its clients had deliveries unconfirmed (churn asks for receipts) leaves
/// them held on the server; the next run's clients get them, and must not count them as
/// their own.
#[test]
fn messages_an_earlier_run_left_on_the_server_are_not_counted_as_this_runs() {
    let dir = Dir::new("leftovers");
    let server = standalone(&dir);
    let scenarios = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let (churn, smoke) = (scenarios.join("churn.toml"), scenarios.join("smoke.toml"));
    let against = |scenario: &std::path::Path, out: &str| {
        vec![
            "run".to_string(),
            scenario.display().to_string(),
            "--transport".into(),
            "tcp".into(),
            "--server".into(),
            server.addr.clone(),
            "--secret-file".into(),
            server.secret.display().to_string(),
            "--progress".into(),
            "quiet".into(),
            "--out".into(),
            out.into(),
        ]
    };
    let first = against(&churn, "first");
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    // Killed outright in its measured period: nothing confirms what its clients received.
    signalled(&dir, &first, std::time::Duration::from_secs(3), "KILL");
    let second = against(&smoke, "second");
    let second: Vec<&str> = second.iter().map(String::as_str).collect();
    let out = imbench(&dir, &[&second[..], &["--duration", "2s"]].concat());
    let report: imbench_loadgen::Report =
        serde_json::from_str(&std::fs::read_to_string(dir.0.join("second/report.json")).unwrap())
            .unwrap();
    let c = &report.runs[0].counters;
    assert!(c.corrupted > 0, "nothing was left over: {}", text(&out));
    assert!(
        report.runs[0]
            .problems
            .iter()
            .any(|p| p.contains("sent before this run began")),
        "{:?}",
        report.runs[0].problems
    );
    // This run's own messages are accounted for as if nothing had been left.
    assert_eq!((c.delivered, c.lost, c.duplicated), (c.sent, 0, 0), "{c:?}");
    // corrupted == 0 fails (1), unless the machine spoiled the run, which makes it invalid (3)
    // whatever its SLOs: the accounting above holds either way.
    let machines = !report.invalid_reasons.is_empty()
        && report
            .invalid_reasons
            .iter()
            .all(|r| r.contains("the machine"));
    assert!(
        out.status.code() == Some(1) || (out.status.code() == Some(3) && machines),
        "corrupted == 0 fails: {}",
        text(&out)
    );
}

/// Ctrl-C while the target is checked (before the run, and before an earlier report in the
/// folder is touched) ends the command at once and leaves that report as it was: the check
/// waited out its connect timeout, and the report was removed after it.
#[test]
fn ctrl_c_while_the_target_is_checked_leaves_the_earlier_report() {
    let dir = Dir::new("interrupt-check");
    let scenario = dir.file("s.toml", TINY);
    let run = imbench(&dir, &["run", scenario.to_str().unwrap(), "--out", "r"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let earlier = std::fs::read_to_string(dir.0.join("r/report.json")).unwrap();
    // A port that takes connections and never answers: the check waits for its Welcome.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("imbench+tcp://{}", silent.local_addr().unwrap());
    let secret = dir.random_secret("secret");
    let args = [
        "run",
        scenario.to_str().unwrap(),
        "--target",
        &target,
        "--secret-file",
        secret.to_str().unwrap(),
        "--out",
        "r",
    ];
    let (out, took) = interrupted(&dir, &args, std::time::Duration::from_millis(1500));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        took < std::time::Duration::from_secs(5),
        "ended {took:?} after Ctrl-C: {}",
        text(&out)
    );
    assert_eq!(
        std::fs::read_to_string(dir.0.join("r/report.json")).ok(),
        Some(earlier),
        "{}",
        text(&out)
    );
}

/// A comparison whose one target could not take place is invalid as a whole, but the runs
/// that took place are not marked invalid in `compare`'s table, as they are not in the run's.
#[test]
fn compare_marks_no_run_invalid_for_a_target_that_could_not_take_place() {
    let dir = Dir::new("compare-target-gone");
    let scenario = dir.file("s.toml", TINY);
    let out = imbench(
        &dir,
        &[
            "run",
            scenario.to_str().unwrap(),
            "--transport",
            "quic,tcp",
            "--out",
            "a",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.0.join("a/report.json")).unwrap())
            .unwrap();
    report["verdict"] = serde_json::json!("invalid");
    report["ok"] = serde_json::json!(false);
    report["invalid_reasons"] =
        serde_json::json!(["nats: the run could not take place: nothing listens"]);
    for folder in ["gone-1", "gone-2"] {
        // Runs of their own, a minute apart (a copy as it is is the same run).
        for run in report["runs"].as_array_mut().unwrap() {
            let started = run["started_unix_s"].as_f64().unwrap();
            run["started_unix_s"] = serde_json::json!(started + 60.0);
        }
        std::fs::create_dir_all(dir.0.join(folder)).unwrap();
        std::fs::write(dir.0.join(folder).join("report.json"), report.to_string()).unwrap();
    }
    let out = imbench(&dir, &["compare", "gone-1", "gone-2"]);
    let t = text(&out);
    assert!(
        t.contains("gone-1:quic") && !t.contains("gone-1:quic*"),
        "{t}"
    );
    assert!(!t.contains("gone-2:tcp*"), "{t}");
    // The whole is still invalid, and says why; a gate on it is not judged.
    assert!(
        t.contains("note: gone-1:nats: the run could not take place"),
        "{t}"
    );
    // Only one target left of several: its column is still named by its target, and no
    // more invalid than the others were.
    let mut one = report.clone();
    one["runs"].as_array_mut().unwrap().truncate(1);
    std::fs::create_dir_all(dir.0.join("gone-one")).unwrap();
    std::fs::write(dir.0.join("gone-one/report.json"), one.to_string()).unwrap();
    let out = imbench(&dir, &["compare", "gone-one", "a"]);
    let t = text(&out);
    assert!(
        t.contains("gone-one:quic") && !t.contains("gone-one:quic*"),
        "{t}"
    );
    let out = imbench(
        &dir,
        &["compare", "gone-1", "gone-2", "--fail-on-regression", "50%"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    // A valid candidate against it: the rows say they are not gated, as the verdict does.
    let out = imbench(
        &dir,
        &["compare", "gone-1", "a", "--fail-on-regression", "50%"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("(an invalid baseline: the verdicts below are not gated"),
        "{}",
        text(&out)
    );
    // Runs timed on different send timers are said to be.
    let mut tokio: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.0.join("a/report.json")).unwrap())
            .unwrap();
    for run in tokio["runs"].as_array_mut().unwrap() {
        run["timer"] = serde_json::json!("tokio");
    }
    std::fs::create_dir_all(dir.0.join("tokio")).unwrap();
    std::fs::write(dir.0.join("tokio/report.json"), tokio.to_string()).unwrap();
    let out = imbench(&dir, &["compare", "a", "tokio"]);
    assert!(
        text(&out).contains("waited on different timers (precise and tokio)"),
        "{}",
        text(&out)
    );
}

/// `imbench path` with a scenario whose profile is unknown lists the paths it can hold, not
/// loopback, which it refuses.
#[test]
fn a_path_to_hold_from_a_scenario_of_an_unknown_profile_lists_the_paths() {
    let dir = Dir::new("path-unknown");
    let scenario = dir.file("s.toml", &format!("{TINY}[network]\nprofile = \"nope\"\n"));
    let out = imbench(&dir, &["path", scenario.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("known paths: lan, wifi") && !text(&out).contains("loopback"),
        "{}",
        text(&out)
    );
}

/// A baseline whose runs failed their SLOs is read, and said: their figures widen the noise
/// a gate allows, and nothing else would tell the reader why a gate let a change through.
#[test]
fn a_gate_on_a_baseline_whose_runs_failed_their_slos_says_so() {
    let dir = Dir::new("baseline-slo-failed");
    let failing = dir.file(
        "failing.toml",
        &format!("{TINY}[slo]\ndirect.p99 = \"< 1us\"\n"),
    );
    let passing = dir.file("s.toml", TINY);
    let out = imbench(
        &dir,
        &[
            "run",
            failing.to_str().unwrap(),
            "--repeat",
            "2",
            "--out",
            "b",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = imbench(&dir, &["run", passing.to_str().unwrap(), "--out", "c"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = imbench(
        &dir,
        &["compare", "b", "c", "--fail-on-regression", "1000%"],
    );
    let said = text(&out);
    for run in ["run-1", "run-2"] {
        assert!(
            said.contains(&format!(
                "the baseline's b/{run}/report.json failed its own SLOs"
            )),
            "{said}"
        );
    }
    // A passing run edited to a machine past its limits no longer holds together.
    let mut edited: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.0.join("c/report.json")).unwrap())
            .unwrap();
    edited["runs"][0]["cpu_use"]["busy_fraction"] = serde_json::json!(0.99);
    // (The scenario lifts the limit for a busy test machine: as a default scenario's.)
    edited["scenario"]["generator"]["max_cpu_busy"] = serde_json::json!(0.9);
    std::fs::create_dir_all(dir.0.join("e")).unwrap();
    std::fs::write(dir.0.join("e/report.json"), edited.to_string()).unwrap();
    let out = imbench(&dir, &["report", "e"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("cpu_use says the machine was the limit"),
        "{}",
        text(&out)
    );
}

/// A first login that times out under a connect timeout shorter than any login takes is put
/// down to the setting, not to a server that does not answer.
#[test]
fn a_connect_timeout_too_short_for_any_login_is_named() {
    let dir = Dir::new("short-connect-timeout");
    let scenario = dir.file(
        "s.toml",
        &TINY.replace("[generator]", "[generator]\nconnect_timeout = \"1ms\""),
    );
    // The embedded server over QUIC, whose login takes longer than 1 ms; and a TCP port that
    // takes the connection and says nothing (as a hung server's would), where the timeout,
    // not the port, is named.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let held: Vec<_> = silent.incoming().take(4).collect();
        std::thread::sleep(std::time::Duration::from_secs(5));
        drop(held);
    });
    let secret = dir.random_secret("secret");
    let s = scenario.to_str().unwrap();
    let server = format!("tcp={silent_addr}");
    for args in [
        vec!["run", s, "--progress", "quiet"],
        vec![
            "run",
            s,
            "--progress",
            "quiet",
            "--transport",
            "tcp",
            "--server",
            &server,
            "--secret-file",
            secret.to_str().unwrap(),
        ],
    ] {
        let out = imbench(&dir, &args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("the scenario's generator.connect_timeout")
                && text(&out).contains("the default is 10s"),
            "{args:?}: {}",
            text(&out)
        );
    }
}
