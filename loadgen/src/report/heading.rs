//! How imbench's report files name themselves in their first lines, by which a folder's files
//! are told for imbench's (`write::written_by_imbench`) before a run writes over them.

/// How summary.md, report.html and a search's capacity.md and .html name themselves: their
/// heading and title begin with it.
pub const TITLE_PREFIX: &str = "imbench: ";

/// intervals.hlog's first line is a comment that begins with it.
pub const HLOG_PREFIX: &str = "imbench ";
