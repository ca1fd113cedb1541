//! The report folder: report.json, intervals.hlog, intervals.jsonl, report.html and
//! summary.md.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

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

impl Report {
    /// Writes `report.json`, `intervals.hlog`, `intervals.jsonl`, `summary.md` and
    /// `report.html` into `dir` (created if needed).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("report.json"), json)?;
        if self.runs.iter().any(|r| !r.interval_log.is_empty()) {
            std::fs::write(
                dir.join("intervals.hlog"),
                crate::report::hlog::encode(self)?,
            )?;
        }
        if self.runs.iter().any(|r| !r.intervals.is_empty()) {
            std::fs::write(dir.join("intervals.jsonl"), interval_lines(self)?)?;
        }
        std::fs::write(dir.join("report.html"), crate::report::html::render(self))?;
        std::fs::write(
            dir.join("summary.md"),
            crate::report::summary::markdown(self),
        )
    }
}
