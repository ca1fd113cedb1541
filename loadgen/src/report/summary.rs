//! `summary.md`: the verdict, the latency tables, the counters, the notes and the SLO verdicts in
//! Markdown, for a CI job summary or a pull-request comment.

use std::fmt::Write as _;

use crate::report::heading::TITLE_PREFIX;
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
        "## {TITLE_PREFIX}{} over {}{} — {verdict}\n",
        text(&report.scenario.name),
        transports.join(", "),
        report.network_suffix()
    );
    for why in &report.invalid_reasons {
        let _ = writeln!(out, "- {}", text(why));
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
            let _ = writeln!(out, "> {}\n", text(note));
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

/// Text from a scenario or a run (a name, a reason, a note) as Markdown shows it: its `<`, `>`
/// and `&` escaped outside code spans, so that a name such as `<!--` cannot hide the rest of
/// the summary in the page that renders it. Within a code span (`` `direct.p99 < 1s` ``)
/// nothing is HTML and an escape would show as written. Quotes stay as they are (html.rs's
/// `escape` writes them as entities, which an attribute needs and a reader of the raw
/// Markdown would have to decode).
fn text(s: &str) -> String {
    let parts: Vec<&str> = s.split('`').collect();
    // A last backtick without its pair opens no code span.
    let unpaired_last = parts.len().is_multiple_of(2);
    let mut out = String::with_capacity(s.len());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push('`');
        }
        let in_code = i % 2 == 1 && !(unpaired_last && i == parts.len() - 1);
        if in_code {
            out.push_str(part);
        } else {
            out.push_str(
                &part
                    .replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;"),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_in_a_name_or_note_is_shown_as_text() {
        let mut report = crate::report::read::from_json(include_str!("testdata/schema-1-a.json"))
            .expect("a committed report reads");
        report.scenario.name = "a <!-- b & c".into();
        report.runs[0].notes.push("<b>bold</b>".into());
        let md = markdown(&report);
        assert!(
            md.starts_with("## imbench: a &lt;!-- b &amp; c over "),
            "{md}"
        );
        assert!(md.contains("> &lt;b&gt;bold&lt;/b&gt;\n"), "{md}");
        // Code spans are shown as written; an unpaired backtick opens none.
        assert_eq!(text("add `a < 1` & <b>"), "add `a < 1` &amp; &lt;b&gt;");
        assert_eq!(text("x ` <b>"), "x ` &lt;b&gt;");
    }

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
