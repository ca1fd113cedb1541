//! `imbench report`, `compare` and `merge`: what is done with report folders after a run.

use std::path::PathBuf;

use imbench_loadgen::exit_code;
use imbench_loadgen::report::comparison::{
    invalid_reasons_of, of_a_target_gone, of_several_targets,
};

/// The folder `file` lies in: `.` for a bare file name, whose parent is empty (and an empty
/// path joined with `run-1` would print as `run-1`, not as the folder it is in).
fn folder_of(file: &std::path::Path) -> &std::path::Path {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    }
}

/// The folders of `folders` that hold no report.json any more: runs or steps a spread or a
/// search still counts, deleted or moved since.
fn without_report(folders: impl Iterator<Item = PathBuf>) -> Vec<PathBuf> {
    folders
        .filter(|folder| !folder.join("report.json").is_file())
        .collect()
}

/// Reads a report folder's report.json (or the file itself).
fn load_report(path: &std::path::Path) -> anyhow::Result<(PathBuf, imbench_loadgen::Report)> {
    use anyhow::Context;
    let file = if path.is_dir() {
        path.join("report.json")
    } else {
        path.to_path_buf()
    };
    let search = path.join(imbench_loadgen::report::capacity::CAPACITY_JSON);
    if path.is_dir() && !file.exists() && search.is_file() {
        anyhow::bail!(
            "{} holds a capacity search (step-01, step-02, …, {}), not one report: give one step, \
             such as {}; `imbench report {}` prints the whole search",
            path.display(),
            imbench_loadgen::report::capacity::CAPACITY_JSON,
            path.join("step-01").display(),
            path.display()
        );
    }
    if path.is_dir() && !file.exists() {
        // A search quit before it wrote its capacity.json (a second Ctrl-C) leaves its steps.
        let mut steps: Vec<PathBuf> = std::fs::read_dir(path)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("step-"))
                            && p.join("report.json").is_file()
                    })
                    .collect()
            })
            .unwrap_or_default();
        steps.sort();
        if let Some(first) = steps.first() {
            anyhow::bail!(
                "{} holds {} step(s) of a capacity search that ended before writing its {} (quit with a second Ctrl-C?): give one step, such as {}",
                path.display(),
                steps.len(),
                imbench_loadgen::report::capacity::CAPACITY_JSON,
                first.display()
            );
        }
    }
    if path.is_dir() && !file.exists() && path.join("run-1/report.json").is_file() {
        anyhow::bail!(
            "{} holds the runs of a --repeat (run-1, run-2, …), not one report: give one of them, such as {}",
            path.display(),
            path.join("run-1").display()
        );
    }
    if path.is_dir() && !file.exists() {
        // A folder of reports in folders of their own: shards collected for a merge, say.
        let mut inner: Vec<std::path::PathBuf> = std::fs::read_dir(path)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.join("report.json").is_file())
                    .collect()
            })
            .unwrap_or_default();
        inner.sort();
        if let Some(first) = inner.first() {
            anyhow::bail!(
                "{} holds {} report(s) in folders of their own, not one report: give one of them, such as {} (shards of one load are added into one by `imbench merge {} --out DIR`)",
                path.display(),
                inner.len(),
                first.display(),
                path.display()
            );
        }
    }
    if file
        .file_name()
        .is_some_and(|n| n == imbench_loadgen::report::repeat::REPEAT_JSON)
    {
        let folder = folder_of(&file);
        anyhow::bail!(
            "{} is the spread of a --repeat's runs, not a report: give one run, such as {}, or the folder {} to `imbench compare`",
            file.display(),
            folder.join("run-1").display(),
            folder.display()
        );
    }
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let report = imbench_loadgen::report::read::from_json(&text)
        .with_context(|| format!("reading {}", file.display()))?;
    Ok((file, report))
}

/// `imbench report` on a `--repeat`'s folder (or its repeat.json): the spread table the run
/// printed, with the worst run's exit code. Each run's own report is in its run-N folder.
fn rerender_repeat(file: &std::path::Path) -> u8 {
    use imbench_loadgen::report::repeat::RepeatSummary;
    let summary = match std::fs::read_to_string(file)
        .map_err(anyhow::Error::from)
        .and_then(|text| serde_json::from_str::<RepeatSummary>(&text).map_err(anyhow::Error::from))
    {
        Ok(s) => s,
        Err(e) => {
            imbench_loadgen::errln!(
                "imbench: reading {}: {}",
                file.display(),
                imbench_server::error_line::causes(&e)
            );
            return exit_code::USAGE;
        }
    };
    // Read back, it is trusted no further than it agrees with itself: a table of `runs`
    // columns from an edited file could be as long as the largest number.
    let mut counts = summary.figures.iter().map(|f| f.values.len());
    if summary.verdicts.len() != summary.runs || counts.any(|n| n != summary.runs) {
        imbench_loadgen::errln!(
            "imbench: {} does not hold what a --repeat writes: it counts {} runs beside {} verdicts, or a figure with another number of values; give one run's folder instead",
            file.display(),
            summary.runs,
            summary.verdicts.len()
        );
        return exit_code::USAGE;
    }
    let folder = folder_of(file);
    // The spread is the file's; a run whose own report has gone since (deleted, moved) is
    // in it, but no longer there to look at or to gate on: said, as `compare` says it.
    let gone = without_report((1..=summary.runs).map(|n| folder.join(format!("run-{n}"))));
    // A run whose report.json is there but does not read (damaged, truncated) is no more
    // there to look at or gate on than one that has gone: `compare` refuses it.
    let unreadable: Vec<(PathBuf, String)> = (1..=summary.runs)
        .map(|n| folder.join(format!("run-{n}")))
        .filter(|run| !gone.contains(run))
        .filter_map(|run| {
            load_report(&run)
                .err()
                .map(|e| (run, imbench_server::error_line::causes(&e)))
        })
        .collect();
    if summary.runs > 0 && gone.len() + unreadable.len() == summary.runs && !unreadable.is_empty() {
        imbench_loadgen::errln!(
            "imbench: {} holds none of its runs' reports in a form that reads ({}: {}): repeat.json alone is no report; give a folder whose runs' reports read",
            folder.display(),
            unreadable[0].0.display(),
            unreadable[0].1
        );
        return exit_code::USAGE;
    }
    if summary.runs > 0 && gone.len() == summary.runs {
        // Nothing left of what the spread is of: a verdict read back from it would be of
        // runs no one can look at any more.
        imbench_loadgen::errln!(
            "imbench: {} holds none of its runs' reports any more (no report.json in {} … run-{}): repeat.json alone is no report; give a folder that holds them",
            folder.display(),
            folder.join("run-1").display(),
            summary.runs
        );
        return exit_code::USAGE;
    }
    out!("{}", summary.table().trim_start_matches('\n'));
    let first_there = (1..=summary.runs)
        .map(|n| folder.join(format!("run-{n}")))
        .find(|run| !gone.contains(run))
        .unwrap_or_else(|| folder.join("run-1"));
    outln!(
        "each run's report is in its folder: {}, …",
        first_there.display()
    );
    const NAMED: usize = 5;
    if !gone.is_empty() {
        let more = if gone.len() > NAMED { ", …" } else { "" };
        imbench_loadgen::errln!(
            "imbench: note: no report.json in {}{more}: the table is of repeat.json, which still counts them; `imbench compare` reads only the runs that are there",
            gone[..gone.len().min(NAMED)]
                .iter()
                .map(|run| run.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for (run, why) in &unreadable {
        imbench_loadgen::errln!(
            "imbench: note: {} cannot be read ({why}): the table is of repeat.json, which still counts it; `imbench compare` refuses the folder until it reads",
            run.join("report.json").display()
        );
    }
    // As the run exited: repeats that ended before the runs asked for are an invalid whole.
    if summary.asked > summary.runs {
        exit_code::INVALID
    } else {
        summary.verdict().exit_code()
    }
}

/// `imbench report` on a capacity search's folder: its table, and capacity.md and
/// capacity.html written again.
fn rerender_capacity(dir: &std::path::Path) -> u8 {
    use imbench_loadgen::report::capacity::{Capacity, CAPACITY_HTML, CAPACITY_JSON, CAPACITY_MD};
    let file = dir.join(CAPACITY_JSON);
    let capacity = match std::fs::read_to_string(&file)
        .map_err(anyhow::Error::from)
        .and_then(|text| Capacity::from_json(&text).map_err(anyhow::Error::from))
    {
        Ok(c) => c,
        Err(e) => {
            imbench_loadgen::errln!(
                "imbench: reading {}: {}",
                file.display(),
                imbench_server::error_line::causes(&e)
            );
            return exit_code::USAGE;
        }
    };
    // Its first line first: the blank line before it sets it apart from a run's own output.
    out!("{}", capacity.table().trim_start_matches('\n'));
    // As for repeats: a step whose report has gone since is in the table still (it is
    // capacity.json's), but no longer there to look at, and the page links to nothing.
    let gone = without_report(
        capacity
            .steps
            .iter()
            .filter_map(|step| step.report.as_ref())
            .map(|report| dir.join(report)),
    );
    if !gone.is_empty() {
        imbench_loadgen::errln!(
            "imbench: note: no report.json in {}: the table is of capacity.json, which still counts {}",
            gone.iter()
                .map(|folder| folder.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            if gone.len() == 1 { "that step" } else { "those steps" }
        );
    }
    match capacity.write_views(dir) {
        Ok(()) => {
            outln!(
                "wrote {} and {}",
                dir.join(CAPACITY_MD).display(),
                dir.join(CAPACITY_HTML).display()
            );
            capacity.verdict().exit_code()
        }
        Err(e) => {
            // As for a run's report: the search's verdict is read still.
            imbench_loadgen::errln!(
                "imbench: note: {} and {} not written: {e}",
                dir.join(CAPACITY_MD).display(),
                dir.join(CAPACITY_HTML).display()
            );
            capacity.verdict().exit_code()
        }
    }
}

/// Where `imbench report` writes the summary and the page of the report in `file`: a folder's
/// `summary.md` and `report.html` for its `report.json`; for a report kept under another name
/// (`other.json`), `other.summary.md` and `other.html` beside it, so that the folder's own
/// views are not replaced by another report's.
fn views_of(file: &std::path::Path) -> (PathBuf, PathBuf) {
    let dir = folder_of(file);
    if file.file_name().is_some_and(|n| n == "report.json") {
        return (dir.join("summary.md"), dir.join("report.html"));
    }
    // A report under a name that does not end in .json keeps its whole name in its views':
    // `weird.html`'s page is `weird.html.html`, never the report itself.
    let named = if file.extension().is_some_and(|e| e == "json") {
        file.file_stem()
    } else {
        file.file_name()
    };
    let stem = named.map_or_else(|| "report".into(), |s| s.to_string_lossy().into_owned());
    (
        dir.join(format!("{stem}.summary.md")),
        dir.join(format!("{stem}.html")),
    )
}

pub(crate) fn rerender(path: &std::path::Path) -> u8 {
    use imbench_loadgen::report::capacity::CAPACITY_JSON;
    if path.is_dir() && !path.join("report.json").exists() && path.join(CAPACITY_JSON).is_file() {
        return rerender_capacity(path);
    }
    if path.is_file() && path.file_name().is_some_and(|n| n == CAPACITY_JSON) {
        return rerender_capacity(folder_of(path));
    }
    use imbench_loadgen::report::repeat::REPEAT_JSON;
    if path.is_dir() && !path.join("report.json").exists() && path.join(REPEAT_JSON).is_file() {
        return rerender_repeat(&path.join(REPEAT_JSON));
    }
    if path.is_file() && path.file_name().is_some_and(|n| n == REPEAT_JSON) {
        return rerender_repeat(path);
    }
    match load_report(path) {
        Ok((file, report)) => {
            // As the run printed it: with several runs, the comparison and the verdict after
            // their tables.
            out!("{}", report.table());
            let (summary, html) = views_of(&file);
            let written = std::fs::write(
                &summary,
                imbench_loadgen::report::summary::markdown(&report),
            )
            .map_err(|e| (summary.clone(), e))
            .and_then(|()| {
                std::fs::write(&html, imbench_loadgen::report::html::render(&report))
                    .map_err(|e| (html.clone(), e))
            });
            match written {
                Ok(()) => {
                    outln!("wrote {} and {}", summary.display(), html.display());
                    // As the run exited, so a script can read a verdict back from a folder.
                    report.verdict.exit_code()
                }
                Err((path, e)) => {
                    // The verdict is read still (a downloaded artifact, a read-only checkout
                    // of the baseline): the views are what could not be written.
                    // The summary is written first: when it fails, the page is not tried.
                    let not_written = if path == summary {
                        format!("{} and {}", summary.display(), html.display())
                    } else {
                        html.display().to_string()
                    };
                    imbench_loadgen::errln!(
                        "imbench: note: {not_written} not written: {}: {e}",
                        path.display()
                    );
                    report.verdict.exit_code()
                }
            }
        }
        Err(e) => {
            imbench_loadgen::errln!("imbench: {}", imbench_server::error_line::causes(&e));
            exit_code::USAGE
        }
    }
}

pub(crate) fn merge(paths: &[PathBuf], out: &std::path::Path) -> u8 {
    // The merge written over one of its own reports would lose that shard for good (its
    // group ledger is removed with it), and into a folder of reports would be read as one.
    // Absolute first: `merge . --out s1` has no parent to compare in its relative spelling.
    let absolute = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let same = |a: &std::path::Path, b: &std::path::Path| matches!((absolute(a).canonicalize(), absolute(b).canonicalize()), (Ok(x), Ok(y)) if x == y);
    // A report folder, or the folder that holds it (where the next `merge FOLDER` would read
    // the merged report as one more).
    let folder_of = |p: &PathBuf| {
        if p.is_file() {
            p.parent().map(|d| d.to_path_buf())
        } else {
            Some(p.clone())
        }
    };
    // Inside a folder merged (`merge SHARDS --out SHARDS/s1`): one of the shards' folders
    // that folder stands for, or a new one among them. Folders not made yet are not.
    let out_abs = absolute(out);
    let inside = |dir: &std::path::Path| out_abs.ancestors().skip(1).any(|up| same(up, dir));
    if let Some(input) = paths.iter().find(|p| {
        folder_of(p).is_some_and(|d| {
            let d = absolute(&d);
            same(&d, out) || d.parent().is_some_and(|up| same(up, out)) || inside(&d)
        })
    }) {
        let why = if folder_of(input).is_some_and(|d| inside(&absolute(&d))) {
            format!(
                "is in {}, which is merged: the merge would replace one of its reports, or be read as one more the next time; give a folder outside it",
                input.display()
            )
        } else if same(input, out) {
            "is one of the reports merged: the merge would replace it; give another folder".into()
        } else {
            format!(
                "is one of the reports merged (it holds {}): the merge would replace it; give another folder",
                input.display()
            )
        };
        imbench_loadgen::errln!("imbench: --out {} {why}", out.display());
        return exit_code::USAGE;
    }
    // Refused before anything is read or printed, as `run --out` does: a file, a folder of
    // repeated runs or of a search, a folder that cannot be written in.
    let existed = out.exists();
    // Held while the merge writes, as a run holds its folder.
    let held =
        match super::run::check_out_dir(out, false).and_then(|()| super::run::hold_out_dir(out)) {
            Ok(folder) => folder,
            Err(why) => {
                imbench_loadgen::errln!("imbench: {why}");
                return exit_code::USAGE;
            }
        };
    let code = merge_into(paths, out);
    drop(held);
    if !existed {
        // Only succeeds on an empty folder: one the merge did not write in.
        let _ = std::fs::remove_dir(out);
    }
    code
}

/// `merge` once its report folder is ready.
fn merge_into(paths: &[PathBuf], out: &std::path::Path) -> u8 {
    // A folder without a report of its own stands for the report folders in it (the shards'
    // folders, collected in one place), in name order.
    let mut files = Vec::new();
    let mut reports = Vec::new();
    for path in paths {
        match load_baseline(path) {
            Ok(loaded) => {
                for (file, mut r) in loaded {
                    // A shard's group records lie beside its report.json.
                    if let Err(e) = r.read_group_records(folder_of(&file)) {
                        imbench_loadgen::errln!("imbench: {e}");
                        return exit_code::USAGE;
                    }
                    files.push(file);
                    reports.push(r);
                }
            }
            Err(e) => {
                imbench_loadgen::errln!("imbench: {}", imbench_server::error_line::causes(&e));
                return exit_code::USAGE;
            }
        }
    }
    let merged = match imbench_loadgen::report::merge::merge(&reports) {
        Ok(m) => m,
        Err(e) => {
            let order: Vec<String> = files
                .iter()
                .enumerate()
                .map(|(i, p)| format!("{} {}", i + 1, p.display()))
                .collect();
            imbench_loadgen::errln!(
                "imbench: {e}\n(reports in the order given: {})",
                order.join(", ")
            );
            return exit_code::USAGE;
        }
    };
    if out.join("report.json").is_file() {
        imbench_loadgen::errln!(
            "imbench: {} holds an earlier report; the merged one replaces it",
            out.display()
        );
    }
    out!("{}", merged.table());
    if let Err(e) = merged.write(out) {
        imbench_loadgen::errln!("imbench: writing {}: {e}", out.display());
        return exit_code::INVALID;
    }
    outln!(
        "report: {} (for a person: {})",
        out.join("report.json").display(),
        out.join("report.html").display()
    );
    merged.verdict.exit_code()
}

/// Column names of `compare`: each report's folder, and the transport when it has several
/// (added by the caller). When two folders have the same name (`base/run-1` beside
/// `new/run-1`), every column is named with its parent folder too.
fn column_names<'a>(files: impl Iterator<Item = &'a std::path::Path>) -> Vec<String> {
    let name_of = |dir: Option<&std::path::Path>| {
        dir.and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().into_owned())
    };
    let files: Vec<&std::path::Path> = files.collect();
    let short: Vec<String> = files
        .iter()
        .map(|f| name_of(f.parent()).unwrap_or_else(|| f.display().to_string()))
        .collect();
    // Two alike (run-1 of two folders of repeats): every column is named with its parent
    // folder too, so the columns of one folder read alike.
    let alike = short
        .iter()
        .enumerate()
        .any(|(i, name)| short[..i].contains(name));
    files
        .iter()
        .zip(&short)
        .map(
            |(file, name)| match name_of(file.parent().and_then(|d| d.parent())) {
                Some(parent) if alike => format!("{parent}/{name}"),
                _ => name.clone(),
            },
        )
        .collect()
}

/// The N of a folder named run-N, as `--repeat` names them (`run-07` is not one).
fn run_number(dir: &std::path::Path) -> Option<usize> {
    let name = dir.file_name()?.to_str()?.strip_prefix("run-")?;
    let n = name.parse::<usize>().ok()?;
    (n.to_string() == name).then_some(n)
}

/// A baseline, or a candidate of `compare`: one report, or a folder whose subfolders each hold
/// one (repeated runs), in name order.
fn load_baseline(
    path: &std::path::Path,
) -> anyhow::Result<Vec<(PathBuf, imbench_loadgen::Report)>> {
    let search = path.join(imbench_loadgen::report::capacity::CAPACITY_JSON);
    if path.is_dir() && !path.join("report.json").exists() && search.is_file() {
        // Its steps ran different loads: they are not repeats of one. Says so.
        return Ok(vec![load_report(path)?]);
    }
    if path.is_dir() && !path.join("report.json").exists() {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("report.json").is_file())
            .collect();
        // run-2 before run-10.
        dirs.sort_by_key(|d| {
            let name = d.file_name().map(|n| n.to_string_lossy().into_owned());
            let name = name.unwrap_or_default();
            let number = name.rsplit('-').next().and_then(|n| n.parse::<u64>().ok());
            (number.is_none(), number, name)
        });
        if dirs.is_empty() {
            anyhow::bail!(
                "{} holds neither report.json nor run folders with one",
                path.display()
            );
        }
        let step = |d: &PathBuf| {
            d.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("step-"))
        };
        if dirs.iter().any(step) {
            // The steps of a search quit before its capacity.json (a second Ctrl-C) ran
            // different loads: they are no repeats of one. `load_report` says so.
            return Ok(vec![load_report(path)?]);
        }
        // A --repeat cut short by Ctrl-C: its last run measured part of its period, and its
        // spread (repeat.json) is of the whole runs before it; so is this baseline.
        let repeat_json = path.join(imbench_loadgen::report::repeat::REPEAT_JSON);
        if !repeat_json.exists() && path.join(super::run::SEVERAL_RUNS_MARK).is_file() {
            // A series killed outright leaves its runs without the summary that says which
            // were whole: the last folder may be of a run cut short.
            imbench_loadgen::errln!(
                "imbench: note: {} is a --repeat series that ended before its repeat.json (killed, or a second Ctrl-C): its {} run folder(s) are read as runs of it, though the last may have measured only part of its period",
                path.display(),
                dirs.len()
            );
        }
        if !repeat_json.exists()
            && !path.join(super::run::SEVERAL_RUNS_MARK).is_file()
            && dirs.len() > 1
            && !dirs.iter().all(|d| run_number(d).is_some())
        {
            // Folders of different runs put side by side (two servers' reports, say) would
            // otherwise be pooled as noise of one baseline without a word.
            imbench_loadgen::errln!(
                "imbench: note: {} is not a --repeat series (no repeat.json, and not only run-N folders): its {} folders with a report.json are read as runs of one baseline, their spread its noise; give one report's folder to compare that report alone",
                path.display(),
                dirs.len()
            );
        }
        let spread = std::fs::read_to_string(&repeat_json).ok().and_then(|t| {
            serde_json::from_str::<imbench_loadgen::report::repeat::RepeatSummary>(&t)
                .map_err(|e| {
                    // Damaged: which runs were whole is not known, and every folder is read.
                    imbench_loadgen::errln!(
                        "imbench: note: {} cannot be read ({e}): every run folder in {} is read as a run of it",
                        repeat_json.display(),
                        path.display()
                    );
                })
                .ok()
        });
        if let Some(summary) = spread.filter(|s| s.runs > 0) {
            // The counts come from a file: folders are matched against them, no list of their
            // length is made.
            let whole = dirs
                .iter()
                .filter(|d| run_number(d).is_some_and(|n| (1..=summary.runs).contains(&n)))
                .count();
            // Only the runs after the whole ones, up to those asked for: any other folder is
            // not the repeat's to leave out.
            let cut_short =
                |d: &PathBuf| run_number(d).is_some_and(|n| n > summary.runs && n <= summary.asked);
            let cut: Vec<String> = dirs
                .iter()
                .filter(|d| cut_short(d))
                .map(|d| d.display().to_string())
                .collect();
            if whole < summary.runs {
                // Damaged or pruned since: a baseline of fewer runs than its spread says.
                // The first few: the counts come from a file, and may be absurd.
                const NAMED: usize = 5;
                let missing: Vec<String> = (1..=summary.runs)
                    .filter(|n| !dirs.iter().any(|d| run_number(d) == Some(*n)))
                    .take(NAMED + 1)
                    .map(|n| format!("run-{n}"))
                    .collect();
                let more = if missing.len() > NAMED { ", …" } else { "" };
                imbench_loadgen::errln!(
                    "imbench: note: {} has repeat.json for {} whole runs, but no report.json in {}{more}: it counts as the {whole} it has",
                    path.display(),
                    summary.runs,
                    missing[..missing.len().min(NAMED)].join(", ")
                );
            }
            // Folders repeat.json does not count (added by hand since): read, and said.
            let extra: Vec<String> = dirs
                .iter()
                .filter(|d| run_number(d).is_none_or(|n| n > summary.asked))
                .map(|d| d.display().to_string())
                .collect();
            if !extra.is_empty() {
                imbench_loadgen::errln!(
                    "imbench: note: {} read as runs of the baseline too, though its repeat.json counts {} asked",
                    extra.join(", "),
                    summary.asked
                );
            }
            if !cut.is_empty() && whole == summary.runs {
                imbench_loadgen::errln!(
                    "imbench: note: {} left out: repeat.json counts {} whole run(s) of the {} asked, as a run cut short (by an interrupt, or a server gone) is not one",
                    cut.join(", "),
                    summary.runs,
                    summary.asked
                );
                dirs.retain(|d| !cut_short(d));
            }
        }
        return dirs.iter().map(|d| load_report(d)).collect();
    }
    if path.is_dir() && path.join("run-1").join("report.json").is_file() {
        imbench_loadgen::errln!(
            "imbench: note: {} holds a report.json beside run folders: that one report is read, not the runs (give the folder of the runs alone to read them)",
            path.display()
        );
    }
    Ok(vec![load_report(path)?])
}

pub(crate) fn compare(
    paths: &[PathBuf],
    fail_on_regression: Option<f64>,
    check_names: &[String],
) -> u8 {
    use imbench_loadgen::report::regression;
    if paths.len() < 2 {
        // A report of several transports or targets holds its own comparison already, and
        // a folder of repeated runs its spread.
        let repeated = paths.first().is_some_and(|p| {
            p.join(imbench_loadgen::report::repeat::REPEAT_JSON)
                .is_file()
                && !p.join("report.json").exists()
        });
        let several = if repeated {
            format!(
                " ({} holds repeated runs: `imbench report {}` shows each run's figures and their spread)",
                paths[0].display(),
                paths[0].display()
            )
        } else {
            paths
                .first()
                .and_then(|p| load_report(p).ok())
                .filter(|(_, r)| r.runs.len() > 1)
                .map_or(String::new(), |(_, r)| {
                    format!(
                        " ({} holds {} runs side by side: `imbench report {}` shows their comparison)",
                        paths[0].display(),
                        r.runs.len(),
                        paths[0].display()
                    )
                })
        };
        imbench_loadgen::errln!(
            "imbench: compare needs two reports or more, the baseline first; got one{several}"
        );
        return exit_code::USAGE;
    }
    if fail_on_regression.is_none() && !check_names.is_empty() {
        imbench_loadgen::errln!(
            "imbench: note: --check names the figures a gate judges, and changes nothing without --fail-on-regression"
        );
    }
    // The baseline given again as a candidate (a CI job's paths mixed up) passes any gate.
    let same_file = |a: &std::path::Path, b: &std::path::Path| {
        let canonical = |p: &std::path::Path| {
            let file = if p.is_dir() {
                p.join("report.json")
            } else {
                p.to_path_buf()
            };
            std::fs::canonicalize(&file).unwrap_or(file)
        };
        // Two paths that name nothing are not one report: each is said to be missing below.
        canonical(a) == canonical(b)
            || matches!(
                (std::fs::canonicalize(a), std::fs::canonicalize(b)),
                (Ok(x), Ok(y)) if x == y
            )
    };
    if let Some(again) = paths[1..].iter().find(|p| same_file(&paths[0], p)) {
        if fail_on_regression.is_some() {
            imbench_loadgen::errln!(
                "imbench: {} is the baseline {} again: a gate of a report against itself passes whatever it holds",
                again.display(),
                paths[0].display()
            );
            return exit_code::USAGE;
        }
        imbench_loadgen::errln!(
            "imbench: note: {} is the baseline {} again",
            again.display(),
            paths[0].display()
        );
    }
    // One of a repeated baseline's own runs given as the candidate is inside the spread it
    // is judged against: the same mix-up, a gate that passes by construction.
    let inside = |run: &std::path::Path| {
        let folder = |p: &std::path::Path| {
            let p = if p.is_file() { p.parent() } else { Some(p) };
            p.and_then(|p| std::fs::canonicalize(p).ok())
        };
        match (folder(run), std::fs::canonicalize(&paths[0]).ok()) {
            (Some(run), Some(base)) => run.parent() == Some(base.as_path()) && run != base,
            _ => false,
        }
    };
    if paths[0]
        .join(imbench_loadgen::report::repeat::REPEAT_JSON)
        .is_file()
        || paths[0].join("run-1/report.json").is_file()
    {
        if let Some(own) = paths[1..].iter().find(|p| inside(p)) {
            if fail_on_regression.is_some() {
                imbench_loadgen::errln!(
                    "imbench: {} is one of the baseline {}'s own runs: a gate of it against the spread it is part of passes whatever it holds",
                    own.display(),
                    paths[0].display()
                );
                return exit_code::USAGE;
            }
            imbench_loadgen::errln!(
                "imbench: note: {} is one of the baseline {}'s own runs",
                own.display(),
                paths[0].display()
            );
        }
    }
    let names: Vec<String> = if check_names.is_empty() {
        regression::DEFAULT_CHECKS
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        check_names.to_vec()
    };
    let checks: Result<Vec<regression::Check>, String> =
        names.iter().map(|n| regression::Check::parse(n)).collect();
    let mut checks = match checks {
        Ok(c) => c,
        Err(e) => {
            imbench_loadgen::errln!("imbench: --check: {e}");
            return exit_code::USAGE;
        }
    };
    // A figure named twice is checked once (one row of the table).
    let mut seen = std::collections::HashSet::new();
    checks.retain(|c| seen.insert(c.name.clone()));
    let baseline = match load_baseline(&paths[0]) {
        Ok(b) => b,
        Err(e) => {
            imbench_loadgen::errln!("imbench: {}", imbench_server::error_line::causes(&e));
            return exit_code::USAGE;
        }
    };
    // Every run of a repeated baseline or candidate is a column: the reader sees its noise.
    let mut loaded = baseline.clone();
    // Each later report, or folder of repeated runs, with how many columns it adds.
    let mut candidates: Vec<(&PathBuf, std::ops::Range<usize>)> = Vec::new();
    for path in &paths[1..] {
        match load_baseline(path) {
            Ok(runs) => {
                let first = loaded.len();
                loaded.extend(runs);
                candidates.push((path, first..loaded.len()));
            }
            Err(e) => {
                imbench_loadgen::errln!("imbench: {}", imbench_server::error_line::causes(&e));
                return exit_code::USAGE;
            }
        }
    }
    // A copy of the baseline under another path (a folder copied, a CI cache restored under
    // the candidate's name) is the same run: started at the same microsecond, with every
    // figure the same.
    let same_run = |a: &imbench_loadgen::Report, b: &imbench_loadgen::Report| {
        !a.runs.is_empty()
            && a.runs.iter().all(|run| run.started_unix_s > 0.0)
            && serde_json::to_value(&a.runs).ok() == serde_json::to_value(&b.runs).ok()
    };
    for (path, range) in &candidates {
        // The baseline given again is said above, as such.
        if same_file(&paths[0], path) {
            continue;
        }
        let copy = loaded[range.clone()].iter().find_map(|(file, report)| {
            baseline
                .iter()
                .find(|(_, b)| same_run(b, report))
                .map(|(base, _)| (file, base))
        });
        if let Some((file, base)) = copy {
            let what = format!(
                "{} is a copy of the baseline's {} (the same runs: the same start and figures)",
                file.display(),
                base.display()
            );
            if fail_on_regression.is_some() {
                imbench_loadgen::errln!(
                    "imbench: {what}: a gate of a report against itself passes whatever it holds; give {} a run of its own",
                    path.display()
                );
                return exit_code::USAGE;
            }
            imbench_loadgen::errln!("imbench: note: {what}");
        }
    }
    // Ratios between different loads say little: say so rather than print them silently.
    // A search's steps run rates such as 14.142135623730953/s: four significant digits say
    // them. Which loads are one is judged on the rates themselves (`exact`), not as shown.
    let shown_rate = |r: f64| {
        let digits = if r > 0.0 {
            (3 - r.log10().floor() as i32).clamp(0, 12) as usize
        } else {
            0
        };
        let shown = format!("{r:.digits$}");
        if shown.contains('.') {
            shown
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string()
        } else {
            shown
        }
    };
    let load_as = |r: &imbench_loadgen::Report, exact: bool| {
        let rate = |v: f64| if exact { v.to_string() } else { shown_rate(v) };
        let s = &r.scenario;
        let mut rates = format!("direct {}/s", rate(s.direct.rate));
        if s.groups.count > 0 {
            rates.push_str(&format!(
                ", {} groups at {}/s",
                s.groups.count,
                rate(s.groups.rate)
            ));
        }
        if s.files.rate > 0.0 {
            rates.push_str(&format!(", files {}/s", rate(s.files.rate)));
        }
        // A shard ran part of the clients: its figures are part of a load.
        let shard = r
            .shard
            .as_ref()
            .map_or(String::new(), |sh| format!(", shard {sh} of them"));
        // The server in the generator's process shares its CPUs: its figures are another
        // set-up's than a server's apart.
        let server = if r
            .runs
            .iter()
            .all(imbench_loadgen::report::RunReport::embedded)
        {
            "embedded server"
        } else {
            "server apart"
        };
        format!(
            "{} ({} clients{shard}, {rates}, {:?} measured, {server}{})",
            s.name,
            s.clients,
            s.duration,
            r.network_suffix()
        )
    };
    // The loads a set of reports ran, one entry for each that differs.
    let loads_of = |reports: &[&imbench_loadgen::Report]| -> Vec<String> {
        let exact: Vec<String> = reports.iter().map(|r| load_as(r, true)).collect();
        let shown: Vec<String> = reports.iter().map(|r| load_as(r, false)).collect();
        let distinct = |v: &[String]| {
            let mut v = v.to_vec();
            v.dedup();
            v
        };
        // Rates that differ beyond what four digits show are shown whole.
        let mut loads = match (distinct(&exact), distinct(&shown)) {
            (exact, shown) if exact.len() == shown.len() => shown,
            (exact, _) => exact,
        };
        // Resumption decides what a reconnect costs where one resumes a TLS session: with
        // churn, over quic, tls or wss, another setting is another load. Elsewhere (tcp, ws,
        // other systems, no churn) it changes nothing, so the same churn over TCP and over
        // QUIC, or over TCP with and without it, is one load.
        let mut resumptions: Vec<String> = reports
            .iter()
            .filter(|r| {
                r.scenario.churn.enabled()
                    && r.runs
                        .iter()
                        .any(|run| matches!(run.transport.as_str(), "quic" | "tls" | "wss"))
            })
            .map(|r| format!("resumption {}", r.scenario.generator.resumption.name()))
            .collect();
        resumptions.sort();
        resumptions.dedup();
        if resumptions.len() > 1 {
            loads.push(resumptions.join(" against "));
        }
        // The same name, clients and rates can still be another load: bodies of another size,
        // other partners, groups of other sizes, other files, churn.
        let scenarios: Vec<&imbench_loadgen::config::scenario::Scenario> =
            reports.iter().map(|r| &r.scenario).collect();
        let settings = imbench_loadgen::report::load_settings::differences(&scenarios);
        if !settings.is_empty() {
            loads.push(settings.join(", "));
        }
        loads
    };
    let every: Vec<&imbench_loadgen::Report> = loaded.iter().map(|(_, r)| r).collect();
    let loads = loads_of(&every);
    // Each candidate is gated on whether it ran the baseline's load: another candidate's
    // load is no reason not to gate it.
    let of_another_load = |columns: &std::ops::Range<usize>| {
        let mut these: Vec<&imbench_loadgen::Report> = baseline.iter().map(|(_, r)| r).collect();
        these.extend(loaded[columns.clone()].iter().map(|(_, r)| r));
        loads_of(&these).len() > 1
    };
    if loads.len() > 1 {
        imbench_loadgen::errln!(
            "imbench: note: these reports ran different loads ({}); their ratios compare those loads",
            loads.join("; ")
        );
    }
    // The same load timed on another send timer: sub-millisecond latencies move by the timer
    // (tokio's wakes up to 1 ms late), which a gate would take for the system's doing.
    let mut timers: Vec<&str> = loaded
        .iter()
        .flat_map(|(_, r)| &r.runs)
        .filter_map(|run| run.timer.map(|t| t.name()))
        .collect();
    timers.sort_unstable();
    timers.dedup();
    if timers.len() > 1 {
        imbench_loadgen::errln!(
            "imbench: note: these runs' sends waited on different timers ({}): latencies below a few ms differ by the timer, not the system; give each the same --timer",
            timers.join(" and ")
        );
    }
    let mut regressed = false;
    // Whether a gate's table went to stdout before the comparison (which a blank line then
    // sets apart; on its own, the comparison starts at its first line).
    let mut gated_table = false;
    // Candidates that ran another load than the baseline's: not gated (a "regression" between
    // two loads is the difference between them).
    let mut other_loads: Vec<String> = Vec::new();
    // An invalid run's figures are not the system's: a gate on them would call noise or a
    // broken run a regression (or let one through), so the gate says it cannot judge.
    let mut not_gated = Vec::new();
    if fail_on_regression.is_some() {
        for (file, report) in &loaded {
            if report.verdict == imbench_loadgen::report::Verdict::Invalid {
                let why = report
                    .invalid_reasons
                    .first()
                    .map_or("invalid".to_string(), |w| w.clone());
                not_gated.push(format!("{} ({why})", file.display()));
            }
        }
        // A baseline run that failed its SLOs (a stall in one of the repeats, say) is in the
        // spread the noise is measured over: a noise that wide lets any candidate through.
        if baseline.len() > 1 {
            for (file, report) in &baseline {
                if report.verdict == imbench_loadgen::report::Verdict::SloFailed {
                    imbench_loadgen::errln!(
                        "imbench: note: the baseline's {} failed its own SLOs: its figures widen the noise the gate allows (the table's `noise`); a baseline of runs that passed gates closer",
                        file.display()
                    );
                }
            }
        }
        // The gate judges a change against the baseline, not the SLOs; a candidate that
        // failed its own is said, so that a passing gate is not read as a passing run.
        for (file, report) in &loaded[baseline.len()..] {
            if report.verdict == imbench_loadgen::report::Verdict::SloFailed {
                let failed: Vec<String> = report
                    .runs
                    .iter()
                    .flat_map(|run| run.slo.iter().filter(|slo| !slo.ok))
                    .map(|slo| format!("{}: {}", slo.expr, slo.value))
                    .collect();
                imbench_loadgen::errln!(
                    "imbench: note: {} failed its own SLOs ({}); the gate judges it against the baseline, not against them",
                    file.display(),
                    if failed.is_empty() {
                        "its verdict says so".to_string()
                    } else {
                        failed.join(", ")
                    }
                );
            }
        }
    }
    if let Some(threshold) = fail_on_regression {
        let repeats: Vec<&[imbench_loadgen::report::RunReport]> =
            baseline.iter().map(|(_, r)| r.runs.as_slice()).collect();
        for (path, columns) in &candidates {
            let candidate: Vec<&[imbench_loadgen::report::RunReport]> = loaded[columns.clone()]
                .iter()
                .map(|(_, r)| r.runs.as_slice())
                .collect();
            let findings = regression::compare(&repeats, &candidate, &checks, threshold);
            let another_load = of_another_load(columns);
            // A single report is named by its file, repeated runs by their folder.
            let shown = match &loaded[columns.clone()] {
                [(file, _)] => file.display().to_string(),
                _ => format!("{} ({} runs)", path.display(), columns.len()),
            };
            // Nothing in common: what is missing, not an empty table. Reports the gate would not
            // judge anyway (different loads, an invalid run) get that verdict below.
            if findings.is_empty() {
                let runs_of = |reports: &[(std::path::PathBuf, imbench_loadgen::Report)]| {
                    let mut names: Vec<String> = reports
                        .iter()
                        .flat_map(|(_, r)| r.runs.iter().map(|run| run.transport.clone()))
                        .collect();
                    names.sort();
                    names.dedup();
                    names
                };
                let (base_runs, new_runs) = (runs_of(&baseline), runs_of(&loaded[columns.clone()]));
                let shared: Vec<&String> =
                    new_runs.iter().filter(|n| base_runs.contains(n)).collect();
                let checked: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
                if shared.is_empty() {
                    imbench_loadgen::errln!(
                        "imbench: {shown} has runs named {} and the baseline {}: no run of one to set beside a run of the other, so there is nothing to gate (without --fail-on-regression, compare shows them side by side)",
                        new_runs.join(", "),
                        base_runs.join(", ")
                    );
                } else {
                    let shared: Vec<&str> = shared.iter().map(|n| n.as_str()).collect();
                    imbench_loadgen::errln!(
                        "imbench: the baseline's {} runs have none of the figures checked ({}): a figure with no samples (fanout.p99 in runs without groups, say) cannot be gated; name one they have with --check",
                        shared.join(", "),
                        checked.join(", ")
                    );
                }
                if another_load || !not_gated.is_empty() {
                    if another_load {
                        other_loads.push(shown);
                    }
                    continue;
                }
                return exit_code::USAGE;
            }
            outln!("{shown}, against {}:", paths[0].display());
            gated_table = true;
            if another_load {
                outln!("(of another load than the baseline's: its verdicts below are not gated, see the verdict)");
            } else if loaded[columns.clone()]
                .iter()
                .any(|(_, r)| r.verdict == imbench_loadgen::report::Verdict::Invalid)
            {
                outln!("(an invalid run: its verdicts below are not gated, see the verdict)");
            } else if baseline
                .iter()
                .any(|(_, r)| r.verdict == imbench_loadgen::report::Verdict::Invalid)
            {
                outln!("(an invalid baseline: the verdicts below are not gated, see the verdict)");
            }
            out!("{}", regression::table(&findings, threshold, repeats.len()));
            let unjudged = regression::not_in_baseline(&repeats, &candidate);
            if !unjudged.is_empty() {
                outln!(
                    "not gated: {} (the baseline has no run of {}; run it there too to gate {})",
                    unjudged.join(", "),
                    if unjudged.len() == 1 { "it" } else { "them" },
                    if unjudged.len() == 1 { "it" } else { "them" }
                );
            }
            // An invalid candidate's "regression" is not the system's; a valid candidate's is,
            // whatever became of the others.
            let invalid = loaded[columns.clone()]
                .iter()
                .any(|(_, r)| r.verdict == imbench_loadgen::report::Verdict::Invalid);
            regressed |= !invalid && !another_load && findings.iter().any(|f| f.regressed);
            if another_load {
                other_loads.push(shown);
            }
        }
    }
    let baseline_invalid = baseline
        .iter()
        .any(|(_, r)| r.verdict == imbench_loadgen::report::Verdict::Invalid);
    let mut all: Option<imbench_loadgen::Report> = None;
    let names = column_names(loaded.iter().map(|(file, _)| file.as_path()));
    for ((_, mut report), name) in loaded.into_iter().zip(names) {
        // A run of several targets is one however many of them took place: each column is
        // named by its target, and the one left is no more invalid than the run's own table
        // says.
        let several = of_several_targets(&report);
        // The reasons a run was invalid follow it to its new column name, so the table still
        // marks it.
        let columns: Vec<String> = report
            .runs
            .iter()
            .map(|run| {
                if several {
                    format!("{name}:{}", run.transport)
                } else {
                    name.clone()
                }
            })
            .collect();
        let mut invalid = Vec::new();
        for (run, column) in report.runs.iter().zip(&columns) {
            let own = invalid_reasons_of(&report, &run.transport);
            for why in own {
                invalid.push(format!("{column}: {why}"));
            }
        }
        // A reason of the whole comparison (such as an interrupt) names no run: it is every
        // run's.
        let named = |why: &str| {
            report
                .runs
                .iter()
                .any(|run| why.starts_with(&format!("{}: ", run.transport)))
        };
        for why in report
            .invalid_reasons
            .iter()
            .filter(|w| several && !named(w))
        {
            // A target that could not take place has no column: its reason is its own, not
            // every column's (the run's own table marks none of the others).
            if of_a_target_gone(why) {
                invalid.push(format!("{name}:{why}"));
                continue;
            }
            for column in &columns {
                invalid.push(format!("{column}: {why}"));
            }
        }
        report.invalid_reasons = invalid;
        for (run, column) in report.runs.iter_mut().zip(columns) {
            run.transport = column;
        }
        match &mut all {
            None => all = Some(report),
            Some(a) => {
                a.verdict = a.verdict.max(report.verdict);
                a.invalid_reasons.extend(report.invalid_reasons);
                a.runs.extend(report.runs);
            }
        }
    }
    if let Some(all) = all {
        use imbench_loadgen::report::comparison::{comparison_table, comparison_table_headed};
        // The heading names a load only when every report ran the same one.
        let table = if loads.len() > 1 {
            comparison_table_headed(&all, "comparison (of different loads: see the note above)")
        } else {
            comparison_table(&all)
        };
        let table = if gated_table {
            table.as_str()
        } else {
            table.trim_start_matches('\n')
        };
        out!("{table}");
        // A target that could not take place has no column to mark: said beside the table.
        for why in &all.invalid_reasons {
            let of_a_column = all
                .runs
                .iter()
                .any(|run| why.starts_with(&format!("{}: ", run.transport)));
            if !of_a_column {
                imbench_loadgen::errln!("imbench: note: {why}");
            }
        }
    }
    let (line, code) = gate_verdict(&Gate {
        gating: fail_on_regression.is_some(),
        regressed,
        baseline_invalid,
        not_gated: &not_gated,
        other_loads: &other_loads,
        loads_differ: loads.len() > 1,
    });
    if let Some(line) = line {
        outln!("{line}");
    }
    code
}

/// What a comparison found, for its verdict.
struct Gate<'a> {
    /// `--fail-on-regression` was given.
    gating: bool,
    /// A valid candidate of the baseline's load regressed.
    regressed: bool,
    /// A baseline run was invalid.
    baseline_invalid: bool,
    /// Invalid reports, each with why.
    not_gated: &'a [String],
    /// Candidates that ran another load than the baseline's.
    other_loads: &'a [String],
    /// The reports ran more than one load in all.
    loads_differ: bool,
}

/// The verdict line of a comparison (none for one without a gate that found nothing) and its
/// exit code. A valid candidate of the baseline's load that regressed against a valid
/// baseline is the verdict whatever became of the others (invalid, or of another load): running
/// them again would not change it.
fn gate_verdict(g: &Gate) -> (Option<String>, u8) {
    if g.regressed && !g.baseline_invalid {
        let mut beside = Vec::new();
        if !g.not_gated.is_empty() {
            beside.push(format!("invalid: {}", g.not_gated.join("; ")));
        }
        if !g.other_loads.is_empty() {
            beside.push(format!(
                "of another load than the baseline's: {}",
                g.other_loads.join("; ")
            ));
        }
        let line = if beside.is_empty() {
            "verdict: REGRESSION".to_string()
        } else {
            format!(
                "verdict: REGRESSION (and not gated, {})",
                beside.join("; and ")
            )
        };
        return (Some(line), exit_code::SLO_FAILED);
    }
    if g.gating && (!g.other_loads.is_empty() || g.loads_differ) {
        // A change is judged on one load before and after it: against another load, a
        // "regression" is the difference between the loads.
        return (
            Some("verdict: NOT GATED: the reports ran different loads (see the note above); the gate compares one load before and after a change".to_string()),
            exit_code::INVALID,
        );
    }
    if !g.not_gated.is_empty() {
        return (
            Some(format!(
                "verdict: INVALID, not gated: an invalid run's figures are not the system's: {}",
                g.not_gated.join("; ")
            )),
            exit_code::INVALID,
        );
    }
    // A gate that passed says so, as one that failed does.
    let line = g
        .gating
        .then(|| "verdict: OK: no figure regressed".to_string());
    (line, exit_code::OK)
}

#[cfg(test)]
mod tests {
    use super::column_names;
    use std::path::Path;

    fn names(files: &[&str]) -> Vec<String> {
        column_names(files.iter().map(|f| Path::new(*f)))
    }

    /// A report's views never take the report's own name, whatever it is called.
    #[test]
    fn a_reports_views_are_beside_it_never_over_it() {
        let views = |f: &str| {
            let (md, html) = super::views_of(Path::new(f));
            (md.display().to_string(), html.display().to_string())
        };
        assert_eq!(
            views("r/report.json"),
            ("r/summary.md".into(), "r/report.html".into())
        );
        assert_eq!(
            views("r/old.json"),
            ("r/old.summary.md".into(), "r/old.html".into())
        );
        assert_eq!(
            views("r/weird.html"),
            ("r/weird.html.summary.md".into(), "r/weird.html.html".into())
        );
        for f in ["r/weird.html", "r/x.summary.md", "r/report.json", "r/a"] {
            let (md, html) = views(f);
            assert!(md != f && html != f, "{f}");
        }
    }

    /// A candidate of the baseline's load that regressed fails the gate (exit 1) beside one
    /// of another load, which alone would leave it not gated (exit 3).
    #[test]
    fn a_regression_is_the_verdict_beside_a_candidate_of_another_load() {
        use super::{gate_verdict, Gate};
        let other = vec!["ci1/report.json".to_string()];
        let gate = |regressed| Gate {
            gating: true,
            regressed,
            baseline_invalid: false,
            not_gated: &[],
            other_loads: &other,
            loads_differ: true,
        };
        let (line, code) = gate_verdict(&gate(true));
        assert_eq!(code, imbench_loadgen::exit_code::SLO_FAILED);
        let line = line.expect("a verdict");
        assert!(
            line.starts_with("verdict: REGRESSION (and not gated, of another load than the baseline's: ci1/report.json"),
            "{line}"
        );
        let (line, code) = gate_verdict(&gate(false));
        assert_eq!(code, imbench_loadgen::exit_code::INVALID);
        assert!(line.expect("a verdict").starts_with("verdict: NOT GATED"));
    }

    #[test]
    fn columns_are_named_by_folder_and_by_parent_too_when_two_are_alike() {
        assert_eq!(
            names(&[
                "b/run-1/report.json",
                "b/run-2/report.json",
                "next/report.json"
            ]),
            ["run-1", "run-2", "next"]
        );
        // One folder's runs read alike beside another's.
        assert_eq!(
            names(&[
                "b/run-1/report.json",
                "b/run-2/report.json",
                "n/run-1/report.json",
                "t/next/report.json",
            ]),
            ["b/run-1", "b/run-2", "n/run-1", "t/next"]
        );
    }
}
