//! `summary.md`: the verdict, the latency tables, the counters, the notes and the SLO verdicts in
//! Markdown, for a CI job summary or a pull-request comment.

use std::fmt::Write as _;

use crate::report::model::{Report, Verdict, LATENCY_COLUMNS};

/// The Markdown summary of `report`.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let verdict = match report.verdict {
        Verdict::Ok => "✅ OK".to_string(),
        Verdict::SloFailed => "❌ SLO failed".to_string(),
        Verdict::Invalid => "⚠️ invalid".to_string(),
    };
    let transports: Vec<&str> = report.runs.iter().map(|r| r.transport.as_str()).collect();
    let _ = writeln!(
        out,
        "## imbench: {} over {}{} — {verdict}\n",
        report.scenario.name,
        transports.join(", "),
        report.network_suffix()
    );
    for why in &report.invalid_reasons {
        let _ = writeln!(out, "- {why}");
    }
    if !report.invalid_reasons.is_empty() {
        out.push('\n');
    }
    if report.runs.len() > 1 {
        let _ = writeln!(
            out,
            "### Comparison\n\n```text{}```\n",
            crate::report::comparison::comparison_table(report)
        );
    }
    for run in &report.runs {
        let c = &run.counters;
        let _ = writeln!(
            out,
            "### {} — {} clients, {:.1} s measured\n",
            run.transport, c.clients, run.duration_s
        );
        let _ = writeln!(out, "| latency | {} |", LATENCY_COLUMNS.join(" | "));
        let _ = writeln!(out, "| --- |{}", " ---: |".repeat(LATENCY_COLUMNS.len()));
        for (name, m) in run.latency_rows() {
            let _ = writeln!(out, "| {name} | {} |", m.cells().join(" | "));
        }
        out.push('\n');
        for line in run.accounting_lines() {
            let _ = writeln!(out, "{line}\n");
        }
        // What the table notes (late logins, SLOs not judged, …) a summary reader needs too.
        for note in &run.notes {
            let _ = writeln!(out, "> {note}\n");
        }
        if !run.slo.is_empty() {
            let _ = writeln!(out, "| SLO | measured | |\n| --- | ---: | --- |");
            for r in &run.slo {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} |",
                    r.expr,
                    r.value,
                    if r.ok { "✅" } else { "❌" }
                );
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_notes_are_in_the_summary() {
        let mut report = crate::report::read::from_json(include_str!("testdata/schema-1-a.json"))
            .expect("a committed report reads");
        let md = markdown(&report);
        assert!(!md.contains("\n> "), "{md}");
        report.runs[0]
            .notes
            .push("SLOs not judged, since nothing was measured: lost == 0".into());
        let md = markdown(&report);
        assert!(
            md.contains("> SLOs not judged, since nothing was measured: lost == 0\n"),
            "{md}"
        );
    }
}
