//! The table printed at the end of a run.

use std::fmt::Write as _;

use crate::config::slo::format_micros;
use crate::measure::metrics::Metric;
use crate::report::model::{Report, RunReport, Verdict, LATENCY_COLUMNS};

/// Below this many clients the memory per client is mostly what the process takes once (about
/// 30 MiB with the server embedded: 2,986 KiB a client at 10 clients, 427 at 100, 167 at
/// 1,000 and 151 at 2,000), and the table says so.
const FEW_CLIENTS_FOR_MEMORY: u64 = 1_000;

/// What the `memory:` line of `run` must say of its figure.
fn memory_qualifiers(run: &crate::report::model::RunReport) -> String {
    let m = &run.memory;
    let mut said = String::new();
    // Read before every client had logged in (a run stopped in its ramp-up): over how many.
    if let Some(n) = m.clients.filter(|&n| n != run.counters.clients) {
        said.push_str(&format!("; over the {n} logged in when it was read"));
    }
    if m.earlier_runs > 0 {
        // Runs one after another share one process: this one's clients may take memory the
        // earlier ones freed, and what the process takes once was taken before it.
        said.push_str(&format!(
            "; after {} earlier run{} in this process, whose freed memory it may reuse, so it may read low",
            m.earlier_runs,
            if m.earlier_runs == 1 { "" } else { "s" }
        ));
    } else if let Some(n) = m
        .clients
        .filter(|&n| n < FEW_CLIENTS_FOR_MEMORY && said.is_empty())
    {
        // What the process allocates once (runtimes, sockets' buffers, histograms: some
        // 30 MiB here) is a large share of a few clients'.
        said.push_str(&format!(
            "; over only {n} clients, with what the process takes once in it"
        ));
    }
    said
}

impl Report {
    /// The end-of-run table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for (i, run) in self.runs.iter().enumerate() {
            // Runs apart by a blank line; none before the first, so the output's first line is
            // the heading (`| head -1`).
            if i > 0 {
                out.push('\n');
            }
            // The clients that connected; those that never did are said beside them, as the
            // comparison counts the scenario's.
            let never = match run.counters.connect_failures {
                0 => String::new(),
                n => format!(" ({n} never connected)"),
            };
            let _ = writeln!(
                out,
                "{} over {} ({}{}), {} client{}{never}, {:.1}s measured",
                self.scenario.name,
                run.transport,
                run.against(),
                self.network_suffix(),
                run.counters.clients,
                if run.counters.clients == 1 { "" } else { "s" },
                run.duration_s
            );
            write_row(&mut out, "latency", LATENCY_COLUMNS.map(String::from));
            for (name, m) in run.latency_rows() {
                write_row(&mut out, &name, m.cells());
            }
            out.push('\n');
            for line in run.accounting_lines() {
                let _ = writeln!(out, "{line}");
            }
            let l = &run.schedule_lag;
            let sends = run
                .metrics
                .get(Metric::ScheduleLag.name())
                .map_or(0, |m| m.count);
            let _ = writeln!(
                out,
                "schedule lag: {} (limit p99 {}{}){}",
                // No send in the measured period: 0 µs would read as a punctual schedule.
                if sends == 0 {
                    "no send was measured".to_string()
                } else {
                    format!(
                        "p50 {} p99 {} max {}",
                        format_micros(l.p50_us as f64),
                        format_micros(l.p99_us as f64),
                        format_micros(l.max_us as f64)
                    )
                },
                format_micros(l.limit_us as f64),
                run.timer
                    .as_ref()
                    .map_or(String::new(), |t| format!("; {} timer", t.name())),
                if l.saturated {
                    " — SATURATED"
                } else if l.late_for_the_machine {
                    " — LATE: the machine's (see the verdict)"
                } else {
                    ""
                }
            );
            let m = &run.memory;
            if m.bytes_per_client > 0 {
                let _ = writeln!(
                    out,
                    "memory: {} KiB per client ({}{}), peak RSS {} MiB",
                    m.bytes_per_client / 1024,
                    match (crate::report::merge::is_merged_run(run), m.server_embedded,) {
                        (true, _) => "the generators together",
                        (false, true) => "generator + embedded server",
                        (false, false) => "generator",
                    },
                    memory_qualifiers(run),
                    m.peak_rss_bytes / (1024 * 1024)
                );
            }
            if let Some(cpu) = &run.cpu {
                let _ = writeln!(
                    out,
                    "cpu: {:.2} cores busy over the measured period, {}",
                    cpu.cores,
                    cpu.us_per_message.map_or_else(
                        || "no message sent in it to divide by".to_string(),
                        |us| format!("{us:.0} µs per message")
                    )
                );
                let mut per = Vec::new();
                if let Some(g) = cpu.generator_us_per_delivery {
                    per.push(format!("generator {g:.1}"));
                }
                if let Some(sv) = cpu.server_us_per_delivery {
                    per.push(format!("embedded server {sv:.1}"));
                }
                if !per.is_empty() {
                    let _ = writeln!(out, "cpu per delivery: {} µs", per.join(", "));
                }
            }
            if let Some(u) = &run.cpu_use {
                let _ = writeln!(
                    out,
                    "machine: {} {:.0}% busy: {}",
                    crate::measure::cpu_use::cpus(u.cpus),
                    u.busy_fraction * 100.0,
                    u.breakdown()
                );
                // The sends of the span the wake-ups were counted over, at the period's rate:
                // longer than the period when the run found it had ended before (a server
                // silent for a while), while the clients went on sending.
                let span_s = u.span_beyond(run.duration_s).unwrap_or(run.duration_s);
                let in_period = run.throughput.sent_per_s * span_s;
                if in_period >= 1.0 {
                    let mut per = format!(
                        "per message sent: {:.1} wake-ups of this process",
                        u.wakeups as f64 / in_period
                    );
                    // UDP is the machine's count: meaningful for a QUIC run on a machine
                    // doing little else. The kernel counts a send, and a send may carry a
                    // run of datagrams (segmentation offload), so it says sends.
                    if let Some(d) = u.udp_datagrams.filter(|_| run.transport == "quic") {
                        per.push_str(&format!(
                            ", {:.1} UDP sends by the whole machine",
                            d as f64 / in_period
                        ));
                    }
                    let _ = writeln!(out, "{per}");
                }
            }
            if let Some(d) = &run.udp_drops {
                let _ = writeln!(
                    out,
                    "udp: {} datagrams dropped by the kernel on the run's sockets{}",
                    d.total(),
                    if d.total() > 0 {
                        " — their receive buffers were full"
                    } else {
                        ""
                    }
                );
            }
            for note in &run.notes {
                let _ = writeln!(out, "note: {note}");
            }
            if !run.slo.is_empty() {
                let _ = writeln!(out, "SLOs:");
                for r in &run.slo {
                    let _ = writeln!(
                        out,
                        "  {:<4} {:<32} {}",
                        if r.ok { "ok" } else { "FAIL" },
                        r.expr,
                        r.value
                    );
                }
            }
            for p in &run.problems {
                let _ = writeln!(out, "problem: {p}");
            }
            if run.problem_count > run.problems.len() {
                let _ = writeln!(
                    out,
                    "… and {} more problems",
                    run.problem_count - run.problems.len()
                );
            }
            // Several runs side by side: each its own verdict, as each printed it when it ran,
            // then the comparison and the whole's verdict.
            if self.runs.len() > 1 {
                let _ = writeln!(out, "verdict: {}", self.run_verdict_line(run));
            }
        }
        if self.runs.len() > 1 {
            out.push_str(&crate::report::comparison::comparison_table(self));
        }
        let _ = writeln!(out, "verdict: {}", self.verdict_line());
        out
    }

    /// The verdict of `run`, one of this report's runs, alone, as it printed it when it ran:
    /// invalid for the reasons that name it, else whether its SLOs held. A reason of the whole
    /// (a leg that did not run, or could not) is the whole's verdict's, not this run's.
    pub fn run_verdict_line(&self, run: &RunReport) -> String {
        let reasons = crate::report::comparison::invalid_reasons_of(self, &run.transport);
        if !reasons.is_empty() {
            format!("INVALID ({})", reasons.join("; "))
        } else if run.slo.iter().any(|slo| !slo.ok) {
            "SLO FAILED".to_string()
        } else {
            "OK".to_string()
        }
    }

    /// `, network 4g` when the run went over an emulated network path (the scenario's
    /// `[network]`), for every heading that says what ran; empty on loopback.
    pub fn network_suffix(&self) -> String {
        match &self.scenario.network {
            Some(n)
                if !n
                    .profile
                    .as_deref()
                    .is_some_and(|p| p.eq_ignore_ascii_case(crate::config::network::LOOPBACK)) =>
            {
                format!(", network {}", n.describe())
            }
            _ => String::new(),
        }
    }

    /// The verdict in words, with the reasons when invalid.
    pub fn verdict_line(&self) -> String {
        // Of several runs, those whose SLOs failed are named: beside another's invalid run,
        // the whole's verdict would not otherwise say that they failed.
        let failed: Vec<&str> = if self.runs.len() > 1 {
            self.runs
                .iter()
                .filter(|run| self.run_verdict_line(run) == "SLO FAILED")
                .map(|run| run.transport.as_str())
                .collect()
        } else {
            Vec::new()
        };
        match self.verdict {
            Verdict::Ok => "OK".to_string(),
            Verdict::SloFailed if failed.is_empty() => "SLO FAILED".to_string(),
            Verdict::SloFailed => format!("SLO FAILED ({})", failed.join(", ")),
            Verdict::Invalid if failed.is_empty() => {
                format!("INVALID ({})", self.invalid_reasons.join("; "))
            }
            Verdict::Invalid => format!(
                "INVALID ({}); SLO FAILED in {}",
                self.invalid_reasons.join("; "),
                failed.join(", ")
            ),
        }
    }
}

fn write_row(out: &mut String, name: &str, cells: [String; 6]) {
    let _ = write!(out, "{name:<20}");
    for cell in cells {
        let _ = write!(out, " {cell:>9}");
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_that_measured_nothing_has_no_rate_of_zero() {
        let mut r = one_run();
        assert!(r.table().contains(" sent/s, "));
        r.runs[0].duration_s = 0.0;
        let table = r.table();
        assert!(
            table.contains("throughput: nothing was measured"),
            "{table}"
        );
        assert!(!table.contains(" sent/s, "), "{table}");
        let page = crate::report::html::render(&r);
        for rate in ["sent/s", "delivered/s"] {
            let row = format!("{rate} (measured period)</td><td>-</td>");
            assert!(page.contains(&row), "{rate} on the page");
        }
    }

    #[test]
    fn the_pages_own_percentiles_say_they_are_of_the_delivered_when_some_were_lost() {
        let mut r = one_run();
        let said = "direct p50 / p99 (of those delivered)";
        assert!(!crate::report::html::render(&r).contains(said));
        r.runs[0].counters.lost = 3;
        assert!(crate::report::html::render(&r).contains(said));
    }

    /// The committed CI baseline's first run alone.
    fn one_run() -> Report {
        let mut r: Report = serde_json::from_str(include_str!(
            "../../../reports/baselines/ci/run-1/report.json"
        ))
        .expect("the committed baseline reads");
        r.runs.truncate(1);
        r
    }

    #[test]
    fn several_runs_each_say_their_verdict_and_the_whole_names_those_that_failed_slos() {
        let mut r = one_run();
        let mut second = r.runs[0].clone();
        second.transport = "nats".into();
        second.slo = vec![crate::report::model::SloResult {
            expr: "lost == 0".into(),
            value: "325".into(),
            ok: false,
        }];
        let mut third = r.runs[0].clone();
        third.transport = "xmpp".into();
        r.runs.push(second);
        r.runs.push(third);
        r.verdict = Verdict::Invalid;
        // A reason of the whole names no run (a leg that never ran): no run's own verdict.
        r.invalid_reasons = vec![
            "xmpp: the machine was the limit".into(),
            "interrupted: mqtt did not run".into(),
        ];
        let verdicts: Vec<String> = r
            .table()
            .lines()
            .filter(|l| l.starts_with("verdict: "))
            .map(str::to_string)
            .collect();
        assert_eq!(
            verdicts,
            [
                "verdict: OK",
                "verdict: SLO FAILED",
                "verdict: INVALID (the machine was the limit)",
                "verdict: INVALID (xmpp: the machine was the limit; interrupted: mqtt did not run); SLO FAILED in nats",
            ]
        );
        assert!(
            r.table().contains("(ratios are to "),
            "the comparison is in it"
        );
        // One run alone: its verdict, once, and no comparison.
        let alone = one_run();
        assert_eq!(alone.table().matches("verdict: ").count(), 1);
        assert!(!alone.table().contains("(ratios are to "));
    }

    /// The table's first line that begins with `prefix`.
    fn line_of(r: &Report, prefix: &str) -> String {
        r.table()
            .lines()
            .find(|l| l.starts_with(prefix))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no line begins {prefix:?}"))
    }

    #[test]
    fn the_heading_and_the_schedule_line_say_what_went_wrong() {
        let mut r = one_run();
        let schedule_line = |r: &Report| line_of(r, "schedule lag:");
        // The heading says how many never connected, when some did not.
        let heading = |r: &Report| r.table().lines().next().unwrap_or_default().to_string();
        assert!(!heading(&r).contains("never connected"), "{}", heading(&r));
        r.runs[0].counters.connect_failures = 75;
        assert!(
            heading(&r).contains(" clients (75 never connected), "),
            "{}",
            heading(&r)
        );
        let lag = &mut r.runs[0].schedule_lag;
        (lag.saturated, lag.late_for_the_machine) = (false, false);
        let on_time = schedule_line(&r);
        assert!(
            !on_time.contains("SATURATED") && !on_time.contains("LATE"),
            "{on_time}"
        );
        r.runs[0].schedule_lag.saturated = true;
        assert!(
            schedule_line(&r).ends_with(" — SATURATED"),
            "{}",
            schedule_line(&r)
        );
        let lag = &mut r.runs[0].schedule_lag;
        (lag.saturated, lag.late_for_the_machine) = (false, true);
        assert!(
            schedule_line(&r).ends_with(" — LATE: the machine's (see the verdict)"),
            "{}",
            schedule_line(&r)
        );
    }

    #[test]
    fn memory_read_before_every_client_logged_in_says_over_how_many() {
        let mut r = one_run();
        let memory_line = |r: &Report| line_of(r, "memory:");
        let run = &mut r.runs[0];
        run.memory.bytes_per_client = 300 * 1024;
        run.memory.clients = Some(run.counters.clients);
        assert!(
            !memory_line(&r).contains("logged in"),
            "{}",
            memory_line(&r)
        );
        r.runs[0].memory.clients = Some(41);
        assert!(
            memory_line(&r).contains("; over the 41 logged in when it was read)"),
            "{}",
            memory_line(&r)
        );
    }

    #[test]
    fn memory_over_few_clients_says_what_the_process_takes_once_is_in_it() {
        let mut r = one_run();
        let memory_line = |r: &Report| line_of(r, "memory:");
        let run = &mut r.runs[0];
        run.memory.bytes_per_client = 700 * 1024;
        run.counters.clients = 50;
        run.memory.clients = Some(50);
        let few = memory_line(&r);
        assert!(
            few.contains("; over only 50 clients, with what the process takes once in it)"),
            "{few}"
        );
        r.runs[0].counters.clients = FEW_CLIENTS_FOR_MEMORY;
        r.runs[0].memory.clients = Some(FEW_CLIENTS_FOR_MEMORY);
        assert!(
            !memory_line(&r).contains("over only"),
            "{}",
            memory_line(&r)
        );
        // A second run side by side in the same process starts from what the first left.
        let mut second = r.runs[0].clone();
        second.transport = "tcp".into();
        second.memory.earlier_runs = 1;
        r.runs.push(second);
        let table = r.table();
        let lines: Vec<&str> = table.lines().filter(|l| l.starts_with("memory:")).collect();
        assert_eq!(lines.len(), 2, "{table}");
        assert!(!lines[0].contains("earlier run"), "{}", lines[0]);
        assert!(
            lines[1]
                .contains("; after 1 earlier run in this process, whose freed memory it may reuse"),
            "{}",
            lines[1]
        );
    }
}
