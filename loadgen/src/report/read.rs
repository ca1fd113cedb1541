//! Reading report.json back: every schema up to this imbench's, and a clear refusal of newer
//! ones (a report from a newer imbench may mean something else by the same field).

use super::model::{Report, REPORT_SCHEMA};

/// Why a report.json could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Not JSON, or not the shape of a report (the parser's words, kept as text so that they
    /// are said once).
    #[error("{0}")]
    Shape(String),
    /// Written by a newer imbench in a shape this one does not know.
    #[error("written by a newer imbench (report schema {found}; this imbench reads up to {reads}): read it with that version or a later one")]
    Newer {
        /// The file's schema.
        found: u64,
        /// The newest this imbench reads.
        reads: u32,
    },
}

impl From<serde_json::Error> for ReadError {
    fn from(e: serde_json::Error) -> Self {
        ReadError::Shape(if e.is_eof() {
            format!("the file ends too early, cut short while it was written? ({e})")
        } else if e.is_syntax() {
            format!("not JSON: {e}")
        } else {
            format!("not an imbench report: {e}")
        })
    }
}

/// What a JSON value is, in words.
fn json_kind(value: &serde_json::Value) -> &'static str {
    use serde_json::Value as V;
    match value {
        V::Null => "null",
        V::Bool(_) => "boolean",
        V::Number(_) => "number",
        V::String(_) => "string",
        V::Array(_) => "array",
        V::Object(_) => "object",
    }
}

/// Parses a report.json of any schema up to [`REPORT_SCHEMA`].
pub fn from_json(text: &str) -> Result<Report, ReadError> {
    let value: serde_json::Value = serde_json::from_str(text)?;
    if !value.is_object() {
        // serde's words for a struct read from an array ("invalid length 0, expected struct
        // Report with 9 elements") say nothing to a person holding the file.
        return Err(ReadError::Shape(format!(
            "not an imbench report: it holds a JSON {}, where a report is an object",
            json_kind(&value)
        )));
    }
    let found = value
        .get("schema")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(1);
    if found == 0 {
        return Err(ReadError::Shape(
            "not an imbench report: its schema is 0, which no imbench wrote (the first is 1)"
                .into(),
        ));
    }
    if found > u64::from(REPORT_SCHEMA) {
        return Err(ReadError::Newer {
            found,
            reads: REPORT_SCHEMA,
        });
    }
    let mut report: Report = serde_json::from_value(value)?;
    if found < 4 {
        // Before schema 4 a period that sent no message wrote a CPU per message of 0: no figure.
        for run in &mut report.runs {
            if let Some(cpu) = run.cpu.as_mut() {
                cpu.us_per_message = cpu.us_per_message.filter(|&us| us > 0.0);
            }
        }
    }
    // Every run writes one entry per transport or target at least: a report without one is
    // an edited or broken file, and must not pass as a run that was OK.
    if report.runs.is_empty() {
        return Err(ReadError::Shape(
            "not an imbench report: it holds no runs (`runs` is empty)".into(),
        ));
    }
    check_histograms(&report)?;
    check_rates(&report)?;
    check_counts(&report)?;
    check_judgements(&report)?;
    check_limits(&report)?;
    Ok(report)
}

/// Refuses an SLO's judgement, or a verdict, that the report's own figures contradict (an SLO
/// shown as held on a figure that fails it, a verdict of OK beside a failed SLO, INVALID with
/// no reason): each SLO is judged again on the run's figures, as the run judged it, and the
/// verdict worked out again from the SLOs and the reasons the run was invalid.
fn check_judgements(report: &Report) -> Result<(), ReadError> {
    use super::model::Verdict;
    let losses_known = report.shard.is_none();
    let mut failed = false;
    let asked = &report.scenario.slo;
    let whole_s = report.scenario.duration.as_secs_f64();
    for run in &report.runs {
        let changed = |what: String| {
            Err(ReadError::Shape(format!(
                "runs[{}].{what}: the file was changed",
                run.transport
            )))
        };
        // The SLOs judged are the scenario's, less those lifted for this run; a shard judges
        // some of them on the merge, and a run that measured nothing judges none.
        if let Some(extra) = run.slo.iter().find(|slo| !asked.contains(&slo.expr)) {
            return changed(format!("slo {:?} is no SLO of its scenario", extra.expr));
        }
        if report.shard.is_none() && run.duration_s > 0.0 {
            let judged = |expr: &String| run.slo.iter().any(|slo| &slo.expr == expr);
            if let Some(left_out) = asked
                .iter()
                .find(|expr| !judged(expr) && !run.slo_lifted.contains(expr))
            {
                return changed(format!(
                    "slo leaves out {left_out:?}, which its scenario judges"
                ));
            }
        }
        // A measured period shorter than the scenario's was cut short (an interrupt, a server
        // gone), which makes a run invalid.
        if run.cut_short(report.scenario.duration) && report.invalid_reasons.is_empty() {
            return changed(format!(
                "duration_s is {}, short of the scenario's {whole_s} s, in a report with no reason it was invalid",
                run.duration_s
            ));
        }
        for slo in &run.slo {
            let again = super::build::evaluate_with(&slo.expr, run, losses_known);
            let mut same = again.ok == slo.ok && again.value == slo.value;
            if !same && super::build::not_counted_here(&slo.expr, run) {
                // A counter another system's clients cannot count, in a report written before
                // such an SLO was refused: that imbench judged its 0.
                same = crate::config::slo::Slo::parse(&slo.expr)
                    .is_ok_and(|s| s.show(0.0) == slo.value && s.holds(0.0) == slo.ok);
            }
            if !same {
                return Err(ReadError::Shape(format!(
                    "runs[{}].slo {:?} says {} ({}) where the run's own figures give {} ({}): the file was changed, or written by an imbench that judged it otherwise",
                    run.transport,
                    slo.expr,
                    slo.value,
                    if slo.ok { "held" } else { "failed" },
                    again.value,
                    if again.ok { "held" } else { "failed" }
                )));
            }
            failed |= !slo.ok;
        }
    }
    let judged = if !report.invalid_reasons.is_empty() {
        Verdict::Invalid
    } else if failed {
        Verdict::SloFailed
    } else {
        Verdict::Ok
    };
    if report.verdict != judged || report.ok != (judged == Verdict::Ok) {
        return Err(ReadError::Shape(format!(
            "verdict is {} (ok {}) where its SLOs and the reasons it was invalid give {}: the file was changed",
            as_written(report.verdict),
            report.ok,
            as_written(judged)
        )));
    }
    Ok(())
}

/// Refuses a schedule lag edited apart from the `schedule_lag` metric it summarizes, and a
/// lag or machine past the generator's limits in a report with no reason it was invalid: each
/// of those makes a run invalid, and a file that says otherwise was changed.
fn check_limits(report: &Report) -> Result<(), ReadError> {
    let g = &report.scenario.generator;
    for run in &report.runs {
        let changed = |what: String| {
            Err(ReadError::Shape(format!(
                "runs[{}].{what}: the file was changed",
                run.transport
            )))
        };
        let lag = &run.schedule_lag;
        if let Some(m) = run
            .metrics
            .get(crate::measure::metrics::Metric::ScheduleLag.name())
        {
            for (stat, said, held) in [
                ("p50", lag.p50_us, m.p50_us),
                ("p99", lag.p99_us, m.p99_us),
                ("max", lag.max_us, m.max_us),
            ] {
                if said != held {
                    return changed(format!(
                        "schedule_lag.{stat}_us is {said} where the metric schedule_lag gives {held}"
                    ));
                }
            }
        }
        let late = lag.p99_us > lag.limit_us;
        if late != (lag.saturated || lag.late_for_the_machine) {
            return changed(format!(
                "schedule_lag says p99 {} µs against a limit of {} µs, and {}",
                lag.p99_us,
                lag.limit_us,
                if late {
                    "neither that the generator was saturated nor that the machine was late"
                } else {
                    "that the run was late for it"
                }
            ));
        }
        if late && report.invalid_reasons.is_empty() {
            return changed(format!(
                "schedule_lag p99 {} µs is past its limit of {} µs in a report with no reason it was invalid",
                lag.p99_us, lag.limit_us
            ));
        }
        let machine = run
            .cpu_use
            .as_ref()
            .and_then(|u| u.limit_reason(g.max_cpu_busy, g.max_cpu_wait.as_secs_f64() * 1e6));
        if let (Some(why), true) = (machine, report.invalid_reasons.is_empty()) {
            return changed(format!(
                "cpu_use says {why}, in a report with no reason it was invalid"
            ));
        }
    }
    Ok(())
}

/// A verdict as report.json writes it (`slo_failed`), not as the code names it.
fn as_written(v: super::model::Verdict) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{v:?}"))
}

/// The most a run's measured period may last: a year, far past any run.
const MAX_DURATION_S: f64 = 365.0 * 86_400.0;

/// Refuses counts that a run cannot have written: `lost` other than the expected deliveries
/// that were not delivered (a shard's 0: its losses are known once the shards are merged), a
/// measured period that is negative or not a number, rates over a period of none. The table,
/// the SLOs and a gate would otherwise show them beside a verdict they contradict.
fn check_counts(report: &Report) -> Result<(), ReadError> {
    for run in &report.runs {
        let changed = |what: String| {
            Err(ReadError::Shape(format!(
                "runs[{}].{what}: the file was changed",
                run.transport
            )))
        };
        let d = run.duration_s;
        if !(0.0..=MAX_DURATION_S).contains(&d) {
            return changed(format!(
                "duration_s is {d}, which no run measures (0 to {MAX_DURATION_S} s)"
            ));
        }
        if d == 0.0 {
            if let Some(&name) = super::model::Throughput::NAMES
                .iter()
                .find(|&&n| run.throughput.get(n).is_some_and(|v| v > 0.0))
            {
                return changed(format!(
                    "throughput.{name} is a rate over a measured period of 0 s"
                ));
            }
        }
        let c = &run.counters;
        if report.shard.is_some() {
            if c.lost != 0 {
                return changed(format!(
                    "counters.lost is {} in a shard's report, whose losses are known only once the shards are merged",
                    c.lost
                ));
            }
            continue;
        }
        // A run counts as lost what was expected and not delivered, direct messages and group
        // deliveries each; a merge of shards, over their sum.
        let group = run.group.as_ref().map(|g| &g.counts);
        let (g_expected, g_delivered, g_lost) =
            group.map_or((0, 0, 0), |g| (g.expected, g.delivered_expected, g.lost));
        let by_parts = c
            .expected
            .checked_sub(g_expected)
            .zip(c.delivered.checked_sub(g_delivered))
            .map(|(e, d)| e.saturating_sub(d).saturating_add(g_lost));
        let whole = c.expected.saturating_sub(c.delivered);
        if c.lost != whole && by_parts != Some(c.lost) {
            return changed(format!(
                "counters.lost is {} where {} expected and {} delivered leave {whole}",
                c.lost, c.expected, c.delivered
            ));
        }
    }
    Ok(())
}

/// The most a rate of a report may be, a second: far past any machine's messages or bytes.
const MAX_RATE: f64 = 1e15;

/// Refuses a rate no run measures (negative, not a number, past [`MAX_RATE`]): a gate would
/// compare against it.
fn check_rates(report: &Report) -> Result<(), ReadError> {
    for run in &report.runs {
        for &name in super::model::Throughput::NAMES {
            let Some(v) = run.throughput.get(name) else {
                continue;
            };
            if !(0.0..=MAX_RATE).contains(&v) {
                return Err(ReadError::Shape(format!(
                    "runs[{}].throughput.{name} is {v}, which no run measures (0 to {MAX_RATE:e} a second): the file was changed",
                    run.transport
                )));
            }
        }
    }
    Ok(())
}

/// Refuses a latency whose histogram is not one, or holds another number of samples than its
/// summary says: the page, a merge and a comparison recompute figures from it, and a damaged
/// one would be left out or read as something else without a word.
fn check_histograms(report: &Report) -> Result<(), ReadError> {
    // Buckets of imbench's own histograms, not of the file's (a histogram made by hand with
    // coarse buckets would make any figure "the same").
    let buckets = crate::measure::metrics::new_histogram();
    for run in &report.runs {
        for (name, m) in &run.metrics {
            // A report written before histograms were kept has none to check.
            if m.histogram.is_empty() {
                continue;
            }
            let at = format!("runs[{}].metrics.{name}.histogram", run.transport);
            let h = super::histogram::read_histogram(m)
                .map_err(|why| ReadError::Shape(format!("{at} {why}")))?;
            if h.len() != m.count {
                return Err(ReadError::Shape(format!(
                    "{at} holds {} samples where its count says {}: the file was changed",
                    h.len(),
                    m.count
                )));
            }
            // The figures printed and gated on are the histogram's: one edited apart from it
            // (a p99 above the max) is refused, not shown.
            let from_histogram = super::histogram::summarize(&h);
            let stats = |s: &super::model::MetricSummary| {
                [
                    ("min", s.min_us),
                    ("p50", s.p50_us),
                    ("p90", s.p90_us),
                    ("p99", s.p99_us),
                    ("p999", s.p999_us),
                    ("max", s.max_us),
                ]
            };
            for ((stat, said), (_, held)) in stats(m).into_iter().zip(stats(&from_histogram)) {
                // The same bucket of the histogram: another version of the library may round
                // a percentile to another value within it.
                if !buckets.equivalent(said, held) {
                    return Err(ReadError::Shape(format!(
                        "runs[{}].metrics.{name}.{stat}_us is {said} where its histogram gives {held}: the file was changed",
                        run.transport
                    )));
                }
            }
            // A mean is a float: within the histogram's resolution (three digits), whatever
            // rounding another version of the library sums it with.
            let (said, held) = (m.mean_us, from_histogram.mean_us);
            if (said - held).abs() > 1e-3 * held.abs().max(1.0) {
                return Err(ReadError::Shape(format!(
                    "runs[{}].metrics.{name}.mean_us is {said} where its histogram gives {held}: the file was changed",
                    run.transport
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two runs of the CI baseline as committed on 2026-11-24, written before the schema field
    /// existed (kept here: the baseline itself is remade with today's schema).
    const BASELINES: [&str; 2] = [
        include_str!("testdata/schema-1-a.json"),
        include_str!("testdata/schema-1-b.json"),
    ];

    #[test]
    fn a_cpu_per_message_of_0_before_schema_4_reads_as_no_figure() {
        let mut old: serde_json::Value = serde_json::from_str(BASELINES[0]).unwrap();
        old["schema"] = serde_json::json!(3);
        old["runs"][0]["cpu"] =
            serde_json::json!({"seconds": 1.0, "cores": 0.1, "us_per_message": 0.0});
        let per = |old: &serde_json::Value| {
            let report = from_json(&old.to_string()).expect("reads");
            report.runs[0].cpu.as_ref().and_then(|c| c.us_per_message)
        };
        assert_eq!(per(&old), None);
        old["runs"][0]["cpu"]["us_per_message"] = serde_json::json!(250.0);
        assert_eq!(per(&old), Some(250.0));
        // Schema 4 wrote null for no figure, and a 0 it wrote is one.
        old["schema"] = serde_json::json!(4);
        old["runs"][0]["cpu"]["us_per_message"] = serde_json::json!(0.0);
        assert_eq!(per(&old), Some(0.0));
    }

    #[test]
    fn a_file_of_json_that_is_not_an_object_says_what_it_holds() {
        for (text, kind) in [
            ("[]", "array"),
            ("3", "number"),
            ("null", "null"),
            ("\"x\"", "string"),
        ] {
            let why = from_json(text).expect_err("not a report").to_string();
            assert_eq!(
                why,
                format!(
                    "not an imbench report: it holds a JSON {kind}, where a report is an object"
                )
            );
        }
    }

    #[test]
    fn an_slo_on_a_counter_another_system_cannot_count_reads_as_it_was_judged_then() {
        // Another system's run judged on `resumed`, as an imbench did before such an SLO was
        // refused: on its 0.
        let mut report: serde_json::Value = serde_json::from_str(BASELINES[0]).unwrap();
        report["scenario"]["slo"]
            .as_array_mut()
            .expect("a list")
            .push("resumed < 1".into());
        report["runs"][0]["target"] = "nats://127.0.0.1:4222".into();
        report["runs"][0]["slo"]
            .as_array_mut()
            .expect("a list")
            .push(serde_json::json!({"expr": "resumed < 1", "value": "0", "ok": true}));
        from_json(&report.to_string()).expect("judged on its 0 then: reads");
        // Flipped by hand, it is a changed file.
        let last = report["runs"][0]["slo"].as_array().map_or(0, Vec::len) - 1;
        report["runs"][0]["slo"][last]["ok"] = false.into();
        let why = from_json(&report.to_string())
            .expect_err("changed")
            .to_string();
        assert!(why.contains("resumed < 1"), "{why}");
    }

    #[test]
    fn every_older_report_reads_and_a_newer_one_is_refused_clearly() {
        for text in BASELINES {
            let report = from_json(text).expect("a committed baseline reads");
            assert_eq!(report.schema, 1);
            // Written again, it carries its shape and reads back the same.
            let mut again = report.clone();
            again.schema = REPORT_SCHEMA;
            let back = from_json(&serde_json::to_string(&again).unwrap()).expect("reads back");
            assert_eq!(back.schema, REPORT_SCHEMA);
            assert_eq!(back.runs.len(), report.runs.len());
        }
        let mut newer: serde_json::Value = serde_json::from_str(BASELINES[0]).unwrap();
        newer["schema"] = serde_json::json!(REPORT_SCHEMA + 1);
        let err = from_json(&newer.to_string()).expect_err("a newer schema");
        assert!(err.to_string().contains("newer imbench"), "{err}");
        let mut empty: serde_json::Value = serde_json::from_str(BASELINES[0]).unwrap();
        empty["runs"] = serde_json::json!([]);
        let err = from_json(&empty.to_string()).expect_err("no runs");
        assert!(err.to_string().contains("holds no runs"), "{err}");
        let shape = from_json("{}").expect_err("no fields").to_string();
        assert!(
            shape.starts_with("not an imbench report: missing field"),
            "{shape}"
        );
        let cut = from_json(&BASELINES[0][..200])
            .expect_err("cut")
            .to_string();
        assert!(cut.starts_with("the file ends too early"), "{cut}");
        assert_eq!(
            cut.matches("EOF while parsing").count(),
            1,
            "said once: {cut}"
        );
    }

    #[test]
    fn figures_edited_apart_from_their_histograms_and_rates_no_run_measures_are_refused() {
        let base: serde_json::Value = serde_json::from_str(BASELINES[0]).unwrap();
        let refused = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut r = base.clone();
            edit(&mut r);
            from_json(&r.to_string())
                .expect_err("an edited report")
                .to_string()
        };
        let p99 = base["runs"][0]["metrics"]["direct"]["p99_us"]
            .as_u64()
            .unwrap();
        let err = refused(&|r| r["runs"][0]["metrics"]["direct"]["p99_us"] = (p99 * 10).into());
        assert!(err.contains("metrics.direct.p99_us is"), "{err}");
        let mean = base["runs"][0]["metrics"]["direct"]["mean_us"]
            .as_f64()
            .unwrap();
        let err = refused(&|r| r["runs"][0]["metrics"]["direct"]["mean_us"] = (mean * 2.0).into());
        assert!(err.contains("metrics.direct.mean_us is"), "{err}");
        for bad in [-5.0, 1e308] {
            let err = refused(&|r| r["runs"][0]["throughput"]["delivered_per_s"] = bad.into());
            assert!(err.contains("throughput.delivered_per_s is"), "{err}");
        }
        let err = refused(&|r| r["schema"] = 0.into());
        assert!(err.contains("schema is 0"), "{err}");
        // A schedule lag apart from its metric, or past its limit in a valid run (a machine
        // past its limits in one: tests/cli.rs, on a report with the machine's figures).
        let err = refused(&|r| r["runs"][0]["schedule_lag"]["p99_us"] = 50_000.into());
        assert!(err.contains("schedule_lag.p99_us is 50000 where"), "{err}");
        let err = refused(&|r| {
            let lag = &mut r["runs"][0]["schedule_lag"];
            lag["limit_us"] = 1.into();
            lag["saturated"] = true.into();
        });
        assert!(err.contains("with no reason it was invalid"), "{err}");
    }

    #[test]
    fn a_damaged_histogram_is_refused_with_where_it_is() {
        let base: serde_json::Value = serde_json::from_str(BASELINES[0]).unwrap();
        let transport = base["runs"][0]["transport"].as_str().unwrap().to_string();
        let damaged = |field: &str, value: serde_json::Value| {
            let mut r = base.clone();
            r["runs"][0]["metrics"]["direct"][field] = value;
            from_json(&r.to_string())
                .expect_err("a damaged histogram")
                .to_string()
        };
        let at = format!("runs[{transport}].metrics.direct.histogram");
        let e = damaged("histogram", "!!notbase64".into());
        assert!(e.starts_with(&format!("{at} is not base64")), "{e}");
        let e = damaged("histogram", "AAAA".into());
        assert!(e.starts_with(&format!("{at} is not a histogram")), "{e}");
        let count = base["runs"][0]["metrics"]["direct"]["count"]
            .as_u64()
            .unwrap();
        let e = damaged("count", (count + 1).into());
        assert!(e.contains("the file was changed"), "{e}");
    }

    #[test]
    fn an_slo_or_a_verdict_its_figures_contradict_is_refused() {
        let base: serde_json::Value = serde_json::from_str(BASELINES[0]).unwrap();
        let reads = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut r = base.clone();
            edit(&mut r);
            from_json(&r.to_string()).map_err(|e| e.to_string())
        };
        let slos = base["runs"][0]["slo"].as_array().unwrap().len();
        assert!(slos > 0, "the baseline has SLOs to judge again");
        // A value, or a judgement, changed by hand.
        let e = reads(&|r| r["runs"][0]["slo"][0]["value"] = "1µs".into()).unwrap_err();
        assert!(
            e.contains("says 1µs (held) where the run's own figures give"),
            "{e}"
        );
        let e = reads(&|r| r["runs"][0]["slo"][0]["ok"] = false.into()).unwrap_err();
        assert!(e.contains("(failed) where"), "{e}");
        // A verdict its SLOs and reasons do not give.
        for verdict in ["slo_failed", "invalid"] {
            let e = reads(&|r| r["verdict"] = verdict.into()).unwrap_err();
            assert!(
                e.contains("verdict is")
                    && e.contains(&format!("verdict is {verdict} (ok true) where"))
                    && e.contains("give ok"),
                "{e}"
            );
        }
        let e = reads(&|r| r["ok"] = false.into()).unwrap_err();
        assert!(e.contains("(ok false)"), "{e}");
        // An SLO left out, or one the scenario never had.
        let e = reads(&|r| {
            r["runs"][0]["slo"].as_array_mut().unwrap().remove(0);
        })
        .unwrap_err();
        assert!(e.contains("which its scenario judges"), "{e}");
        let e = reads(&|r| r["runs"][0]["slo"][0]["expr"] = "lost == 1".into()).unwrap_err();
        assert!(e.contains("is no SLO of its scenario"), "{e}");
        // A period cut short in a report that gives no reason it was invalid.
        let e = reads(&|r| {
            let d = r["runs"][0]["duration_s"].as_f64().unwrap();
            r["runs"][0]["duration_s"] = (d / 2.0).into();
        })
        .unwrap_err();
        assert!(e.contains("short of the scenario's"), "{e}");
        // Invalid with its reason reads, as a run writes it.
        reads(&|r| {
            r["verdict"] = "invalid".into();
            r["ok"] = false.into();
            r["invalid_reasons"] = serde_json::json!(["interrupted at 0.5s"]);
        })
        .expect("an invalid run");
    }

    #[test]
    fn counts_no_run_writes_are_refused_and_those_it_writes_read() {
        // Without SLOs, which would be judged again on the edited counts (the test above).
        let mut base: serde_json::Value = serde_json::from_str(BASELINES[0]).unwrap();
        base["runs"][0]["slo"] = serde_json::json!([]);
        base["scenario"]["slo"] = serde_json::json!([]);
        let reads = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut r = base.clone();
            edit(&mut r);
            from_json(&r.to_string()).map_err(|e| e.to_string())
        };
        // Lost beside every expected message delivered; delivered short with none lost.
        let e = reads(&|r| r["runs"][0]["counters"]["lost"] = 500.into()).unwrap_err();
        assert!(e.contains("counters.lost is 500 where"), "{e}");
        let e = reads(&|r| r["runs"][0]["counters"]["delivered"] = 100.into()).unwrap_err();
        assert!(e.contains("leave 50050: the file was changed"), "{e}");
        // Delivered short and lost the rest: as a run writes it.
        reads(&|r| {
            r["runs"][0]["counters"]["delivered"] = 100.into();
            r["runs"][0]["counters"]["lost"] = 50_050.into();
        })
        .expect("a run that lost messages");
        // A shard's losses are the merge's to count.
        let e = reads(&|r| {
            r["shard"] = "1/2".into();
            r["runs"][0]["counters"]["lost"] = 3.into();
            r["runs"][0]["counters"]["delivered"] = 50_147.into();
        })
        .unwrap_err();
        assert!(e.contains("in a shard's report"), "{e}");
        reads(&|r| {
            r["shard"] = "1/2".into();
            r["runs"][0]["counters"]["delivered"] = 50_147.into();
        })
        .expect("a shard that received less than the others sent it");
        // Group deliveries lost, direct messages all delivered.
        reads(&|r| {
            r["runs"][0]["group"] = serde_json::json!({
                "acked": 10, "rejected": 0, "sent": 10, "expected": 1000,
                "delivered_expected": 990, "race_delivered": 0, "lost": 10, "incomplete": 1,
                "settled": 10, "duplicated": 0, "reordered": 0, "unexpected": 0,
                "untracked": 0, "refused_membership_changes": 0, "buckets": [], "groups": []
            });
            r["runs"][0]["counters"]["expected"] = 51_150.into();
            r["runs"][0]["counters"]["delivered"] = 51_140.into();
            r["runs"][0]["counters"]["lost"] = 10.into();
        })
        .expect("a run with groups");
        for bad in [-1.0, f64::MAX] {
            let e = reads(&|r| r["runs"][0]["duration_s"] = bad.into()).unwrap_err();
            assert!(e.contains("duration_s is"), "{e}");
        }
        let e = reads(&|r| r["runs"][0]["duration_s"] = 0.0.into()).unwrap_err();
        assert!(e.contains("over a measured period of 0 s"), "{e}");
    }
}
