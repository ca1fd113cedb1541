//! The report folder: report.json, intervals.hlog, intervals.jsonl, report.html and
//! summary.md.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::measure::group_records::{GroupRecords, GROUP_RECORDS_FILE};
use crate::report::heading::{HLOG_PREFIX, TITLE_PREFIX};
use crate::report::model::{IntervalPoint, Report};

/// One line of intervals.jsonl: one second of one run, its fields as in report.json.
#[derive(Serialize)]
struct IntervalLine<'a> {
    run: &'a str,
    #[serde(flatten)]
    point: &'a IntervalPoint,
}

/// Every run's seconds as JSON lines, run after run.
fn interval_lines(report: &Report) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    for run in &report.runs {
        for point in &run.intervals {
            let line = IntervalLine {
                run: &run.transport,
                point,
            };
            serde_json::to_writer(&mut out, &line).map_err(std::io::Error::other)?;
            out.write_all(b"\n")?;
        }
    }
    Ok(out)
}

/// The version of group-ledger.json's layout.
const GROUP_RECORDS_SCHEMA: u32 = 1;

/// group-ledger.json: a shard's group records, one entry per run of its report.
#[derive(serde::Serialize, serde::Deserialize)]
struct GroupRecordsFile {
    schema: u32,
    /// The shard and the runs' start times of the report written with it: records beside
    /// another run's report are refused.
    shard: Option<String>,
    started_unix_s: Vec<f64>,
    runs: Vec<Option<GroupRecords>>,
}

/// The start times of `report`'s runs.
fn starts(report: &Report) -> Vec<f64> {
    report.runs.iter().map(|r| r.started_unix_s).collect()
}

/// The files a report folder holds (and a shard's group records, [`GROUP_RECORDS_FILE`]).
const REPORT_JSON: &str = "report.json";
const INTERVALS_HLOG: &str = "intervals.hlog";
const INTERVALS_JSONL: &str = "intervals.jsonl";
const REPORT_HTML: &str = "report.html";
const SUMMARY_MD: &str = "summary.md";

/// report.json while it is written, renamed when whole.
pub const REPORT_JSON_PARTIAL: &str = ".report.json.partial";

/// Every file a report folder may hold, by name.
pub const REPORT_FILES: [&str; 6] = [
    REPORT_JSON,
    INTERVALS_HLOG,
    INTERVALS_JSONL,
    REPORT_HTML,
    SUMMARY_MD,
    GROUP_RECORDS_FILE,
];

/// The most of a file other than report.json read to tell whose it is: its first line says.
const HEAD_BYTES: u64 = 64 * 1024;

/// Whether the file at `path`, named as one of a report folder's, is one imbench wrote: a run
/// given that folder removes it, which must not happen to another tool's report.json or a
/// summary.md of the user's. `Err` says why not, in words that follow the file's name. An
/// empty file (as a run killed while writing it leaves) is imbench's to remove.
pub fn written_by_imbench(path: &Path) -> Result<(), String> {
    use std::io::Read;
    let unreadable = |e: std::io::Error| format!("which cannot be read ({e})");
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let file = std::fs::File::open(path).map_err(unreadable)?;
    if file.metadata().map_err(unreadable)?.len() == 0 {
        return Ok(());
    }
    if name == REPORT_JSON {
        return report_json_shape(file);
    }
    // The others by their start: their first line says whose they are.
    let mut bytes = Vec::new();
    file.take(HEAD_BYTES)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    let head = String::from_utf8_lossy(&bytes);
    let ours = match name {
        INTERVALS_JSONL => head
            .lines()
            .next()
            .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .is_some_and(|v| v.get("t_s").is_some()),
        GROUP_RECORDS_FILE => head.starts_with("{\"schema\":"),
        INTERVALS_HLOG => head.starts_with(&format!("#{HLOG_PREFIX}")),
        n if n.ends_with(".md") => head.starts_with(&format!("## {TITLE_PREFIX}")),
        n if n.ends_with(".html") => head.contains(&format!("<title>{TITLE_PREFIX}")),
        _ => false,
    };
    if ours {
        Ok(())
    } else {
        Err("which imbench did not write (it does not begin as imbench's do)".into())
    }
}

/// Whether `file` has the shape of an imbench report.json of any version: an object with its
/// `version`, `scenario` and `runs`, whatever its schema. Not whether it reads: an older
/// imbench's may judge its SLOs in other words than this one, and is still imbench's. Read as
/// a stream that keeps nothing of the runs, so another tool's file of gigabytes costs no memory.
fn report_json_shape(file: std::fs::File) -> Result<(), String> {
    use serde::de::IgnoredAny;
    #[derive(serde::Deserialize)]
    struct Shape {
        version: String,
        #[allow(dead_code)]
        scenario: std::collections::BTreeMap<String, IgnoredAny>,
        #[allow(dead_code)]
        runs: Vec<IgnoredAny>,
    }
    match serde_json::from_reader::<_, Shape>(std::io::BufReader::new(file)) {
        Ok(shape) if !shape.version.is_empty() => Ok(()),
        Ok(_) => Err(
            "which imbench did not write (not an imbench report: its version is empty)".into(),
        ),
        // Whose a file cut short is cannot be told (an imbench before reports were written
        // aside and renamed left one on a full disk): not said to be another's.
        Err(e) if e.is_eof() => Err(format!(
            "which ends too early to tell whose it is ({e}): remove it if it is a report of imbench's"
        )),
        Err(e) => Err(format!(
            "which imbench did not write (not an imbench report: {e})"
        )),
    }
}

impl Report {
    /// Reads the group records a shard wrote beside its report in `dir`, if it wrote any, into
    /// its runs.
    pub fn read_group_records(&mut self, dir: &Path) -> Result<(), String> {
        let path = dir.join(GROUP_RECORDS_FILE);
        if !path.is_file() {
            return Ok(());
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let file: GroupRecordsFile = serde_json::from_str(&text)
            .map_err(|e| format!("{} does not read as group records: {e}", path.display()))?;
        if file.schema != GROUP_RECORDS_SCHEMA
            || file.runs.len() != self.runs.len()
            || file.shard != self.shard
            || file.started_unix_s != starts(self)
        {
            return Err(format!(
                "{} was not written with the report beside it (it is of {} started at {:?}, the report of {} started at {:?}): give the folders as the shards wrote them",
                path.display(),
                file.shard.as_deref().unwrap_or("a whole run"),
                file.started_unix_s,
                self.shard.as_deref().unwrap_or("a whole run"),
                starts(self)
            ));
        }
        for (run, records) in self.runs.iter_mut().zip(file.runs) {
            run.group_records = records;
        }
        Ok(())
    }

    /// Removes what an earlier run wrote into `dir` (the files [`Report::write`] writes), so
    /// a run that then fails leaves no earlier report to be taken for its own. Returns whether
    /// there was an earlier report.json.
    pub fn clear_earlier(dir: &Path) -> std::io::Result<bool> {
        let had_report = dir.join(REPORT_JSON).is_file();
        // The summary and the page first: what stays when a removal fails (a file the user
        // cannot delete) is then never a summary saying OK beside half a report.
        for name in [
            SUMMARY_MD,
            REPORT_HTML,
            REPORT_JSON,
            INTERVALS_HLOG,
            INTERVALS_JSONL,
            GROUP_RECORDS_FILE,
        ] {
            let file = dir.join(name);
            if file.is_file() {
                std::fs::remove_file(&file)
                    .map_err(|e| std::io::Error::new(e.kind(), format!("{name}: {e}")))?;
            }
        }
        Ok(had_report)
    }

    /// Writes `report.json`, `intervals.hlog`, `intervals.jsonl`, `summary.md` and
    /// `report.html` into `dir` (created if needed), and a shard's group-ledger.json.
    ///
    /// report.json comes last, whole or not at all (written aside and renamed), and an earlier
    /// one goes first: a folder whose writing failed half-way (a full disk) holds no
    /// report.json that `imbench report` or `compare` could take for this run's, or pair with
    /// this run's other files. Nor does it keep any of the other files: a summary.md that
    /// says OK beside a report that could not be written would be read (a CI job's summary)
    /// as the run's.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        self.write_files(dir).inspect_err(|_| {
            let _ = Self::clear_earlier(dir);
        })
    }

    /// report.json's content: the report as it is, but for the counters a run of another
    /// system could not count ([`crate::report::figures::OWN_CLIENTS_ONLY`]), which are
    /// `null` there rather than a 0 a script would take for "none happened".
    pub fn to_json(&self) -> std::io::Result<serde_json::Value> {
        let mut json = serde_json::to_value(self).map_err(std::io::Error::other)?;
        for (i, run) in self.runs.iter().enumerate() {
            if run.own_clients() {
                continue;
            }
            if let Some(counters) = json["runs"][i]["counters"].as_object_mut() {
                for name in crate::report::figures::OWN_CLIENTS_ONLY {
                    counters.insert(name.to_string(), serde_json::Value::Null);
                }
            }
        }
        Ok(json)
    }

    fn write_files(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_string_pretty(&self.to_json()?).map_err(std::io::Error::other)?;
        let report = dir.join(REPORT_JSON);
        if report.is_file() {
            std::fs::remove_file(&report)?;
        }
        // An earlier report's per-second files must not be taken for this one's (a merged
        // report has none of its own).
        for (name, has) in [
            (
                INTERVALS_HLOG,
                self.runs.iter().any(|r| !r.interval_log.is_empty()),
            ),
            (
                INTERVALS_JSONL,
                self.runs.iter().any(|r| !r.intervals.is_empty()),
            ),
        ] {
            let path = dir.join(name);
            if has {
                let text = if name == INTERVALS_HLOG {
                    crate::report::hlog::encode(self)?
                } else {
                    interval_lines(self)?
                };
                std::fs::write(&path, text)?;
            } else if path.is_file() {
                std::fs::remove_file(&path)?;
            }
        }
        let records = dir.join(GROUP_RECORDS_FILE);
        if self.runs.iter().any(|r| r.group_records.is_some()) {
            let file = GroupRecordsFile {
                schema: GROUP_RECORDS_SCHEMA,
                shard: self.shard.clone(),
                started_unix_s: starts(self),
                runs: self.runs.iter().map(|r| r.group_records.clone()).collect(),
            };
            let json = serde_json::to_string(&file).map_err(std::io::Error::other)?;
            std::fs::write(&records, json)?;
        } else if records.is_file() {
            // An earlier run's records must not be taken for this one's.
            std::fs::remove_file(&records)?;
        }
        std::fs::write(dir.join(REPORT_HTML), crate::report::html::render(self))?;
        std::fs::write(dir.join(SUMMARY_MD), crate::report::summary::markdown(self))?;
        let aside = dir.join(REPORT_JSON_PARTIAL);
        std::fs::write(&aside, json)
            .and_then(|()| std::fs::rename(&aside, &report))
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&aside);
            })
    }
}

#[cfg(test)]
mod tests {
    use super::{
        GROUP_RECORDS_FILE, INTERVALS_HLOG, INTERVALS_JSONL, REPORT_HTML, REPORT_JSON, SUMMARY_MD,
    };

    #[test]
    fn a_report_that_cannot_be_written_leaves_no_summary_or_page_behind() {
        let report = crate::report::read::from_json(include_str!("testdata/schema-1-a.json"))
            .expect("the test report reads");
        let dir = std::env::temp_dir().join(format!("imbench-write-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        report.write(&dir).expect("a folder that takes it");
        assert!(dir.join(SUMMARY_MD).is_file() && dir.join(REPORT_JSON).is_file());
        // A folder where report.json would go: the last step, the rename, fails.
        std::fs::remove_file(dir.join(REPORT_JSON)).expect("removed");
        std::fs::create_dir(dir.join(REPORT_JSON)).expect("a folder in its way");
        assert!(report.write(&dir).is_err());
        for name in [SUMMARY_MD, REPORT_HTML] {
            assert!(!dir.join(name).exists(), "{name} was left");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_file_a_report_writes_is_known_for_imbench_s_and_another_s_is_not() {
        let report = crate::report::read::from_json(include_str!("testdata/schema-1-a.json"))
            .expect("the test report reads");
        let dir = std::env::temp_dir().join(format!("imbench-own-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        report.write(&dir).expect("a folder that takes it");
        // This report has no per-second histograms, so no intervals.hlog: its first line is
        // written below as the writer writes it.
        std::fs::write(
            dir.join(INTERVALS_HLOG),
            crate::report::hlog::encode(&report).expect("an interval log"),
        )
        .expect("written");
        for name in [
            REPORT_JSON,
            INTERVALS_JSONL,
            INTERVALS_HLOG,
            REPORT_HTML,
            SUMMARY_MD,
        ] {
            let why = super::written_by_imbench(&dir.join(name));
            assert_eq!(why, Ok(()), "{name}");
        }
        // An older imbench's report, which judged an SLO in other words than this one: it
        // does not read, but it is imbench's to replace.
        let mut older: serde_json::Value =
            serde_json::from_str(include_str!("testdata/schema-1-a.json")).expect("JSON");
        older["runs"][0]["slo"][0]["value"] = "in the words of another version".into();
        let text = older.to_string();
        assert!(crate::report::read::from_json(&text).is_err());
        std::fs::write(dir.join(REPORT_JSON), text).expect("written");
        assert_eq!(super::written_by_imbench(&dir.join(REPORT_JSON)), Ok(()));
        // Another tool's files of those names, and an empty one (a run killed writing it).
        for (name, text, foreign) in [
            (REPORT_JSON, r#"{"tool":"k6"}"#, true),
            (REPORT_JSON, "[]", true),
            (SUMMARY_MD, "# Meeting notes", true),
            (REPORT_HTML, "<html><title>pytest</title>", true),
            (INTERVALS_JSONL, "{\"a\":1}\n", true),
            (
                INTERVALS_HLOG,
                "#[StartTime: 1.0 (seconds since epoch)]",
                true,
            ),
            (SUMMARY_MD, "imbench notes of mine", true),
            (REPORT_HTML, "<title>imbench results</title>", true),
            (GROUP_RECORDS_FILE, "{\"groups\":[]}", true),
            (REPORT_JSON, "{\n  \"version\": \"0.1", true),
            (SUMMARY_MD, "", false),
        ] {
            std::fs::write(dir.join(name), text).expect("written");
            let why = super::written_by_imbench(&dir.join(name));
            assert_eq!(why.is_err(), foreign, "{name} holding {text:?}: {why:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn counters_another_systems_run_cannot_give_are_null_and_read_back() {
        let mut report = crate::report::read::from_json(include_str!("testdata/schema-1-a.json"))
            .expect("the test report reads");
        report.runs.truncate(1);
        let mut other = report.runs[0].clone();
        other.transport = "nats".into();
        other.target = Some("nats://127.0.0.1:4222".into());
        report.runs[0].counters.resumed = 3;
        report.runs.push(other);
        let json = report.to_json().expect("a value");
        let counters = |i: usize| json["runs"][i]["counters"].clone();
        assert_eq!(counters(0)["resumed"], 3, "imbench's own clients count it");
        for name in crate::report::figures::OWN_CLIENTS_ONLY {
            assert!(counters(1)[name].is_null(), "{name}");
        }
        assert!(counters(1)["sent"].is_u64());
        let back = crate::report::read::from_json(&json.to_string()).expect("reads back");
        assert_eq!(back.runs[1].counter_given("resumed"), None);
        assert_eq!(back.runs[0].counter_given("resumed"), Some(3));
    }

    #[test]
    fn a_report_without_per_second_files_removes_an_earlier_reports() {
        let mut report = crate::report::read::from_json(include_str!("testdata/schema-1-a.json"))
            .expect("the test report reads");
        // As a merged report is: no per-second rows of its own.
        for run in &mut report.runs {
            run.intervals.clear();
            run.interval_log.clear();
        }
        let dir = std::env::temp_dir().join(format!("imbench-write-old-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("made");
        for name in [INTERVALS_HLOG, INTERVALS_JSONL] {
            std::fs::write(dir.join(name), "an earlier run's").expect("written");
        }
        report.write(&dir).expect("written over");
        for name in [INTERVALS_HLOG, INTERVALS_JSONL] {
            assert!(!dir.join(name).exists(), "{name} was left");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
