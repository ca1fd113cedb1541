//! The report folder: report.json, intervals.hlog, report.html and summary.md.

use std::path::Path;

use crate::report::model::Report;

impl Report {
    /// Writes `report.json`, `intervals.hlog`, `summary.md` and `report.html` into `dir`
    /// (created if needed).
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
        std::fs::write(dir.join("report.html"), crate::report::html::render(self))?;
        std::fs::write(
            dir.join("summary.md"),
            crate::report::summary::markdown(self),
        )
    }
}
