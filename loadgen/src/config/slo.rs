//! Service-level objectives: `direct.p99 < 500ms`, `lost == 0`, `delivered_per_s > 1000`.
//!
//! Grammar: `NAME OP VALUE`. NAME is `metric.stat` for a latency (stat: min, mean, p50, p90,
//! p99, p999 (or p99.9), max, count) or a counter or throughput name. OP is one of
//! `< <= > >= == !=`. A latency VALUE takes a unit (`us`, `ms`, `s`, `m`, `h`; a bare number is refused, but
//! 0); other values are plain numbers.

use std::fmt;

/// Why an SLO expression does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SLO {expr:?}: {why}")]
pub struct SloError {
    expr: String,
    why: String,
}

impl SloError {
    /// What is wrong, without the expression.
    pub fn why(&self) -> &str {
        &self.why
    }
}

/// What an SLO looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A latency statistic of a metric, in µs.
    Latency {
        /// Metric name (`direct`, `ack`, …).
        metric: String,
        /// Statistic (`p99`, `max`, …), normalised (`p99.9` → `p999`).
        stat: String,
    },
    /// A counter or a throughput figure.
    Number(String),
}

/// Comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    /// The comparison as written.
    pub fn token(self) -> &'static str {
        OPS.iter()
            .find(|(_, op)| *op == self)
            .map_or("==", |(t, _)| *t)
    }
}

/// A parsed SLO.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    /// The expression as written, with one space each side of the comparison.
    pub expr: String,
    /// What it looks at.
    pub target: Target,
    /// How it compares.
    pub op: Op,
    /// The threshold (µs for latencies).
    pub threshold: f64,
}

const STATS: [&str; 8] = ["min", "mean", "p50", "p90", "p99", "p999", "max", "count"];

/// The comparisons, longest first where one begins another.
const OPS: [(&str, Op); 6] = [
    ("<=", Op::Le),
    (">=", Op::Ge),
    ("==", Op::Eq),
    ("!=", Op::Ne),
    ("<", Op::Lt),
    (">", Op::Gt),
];

impl Slo {
    /// Whether `other` judges the same figure the same way, however each is spelled
    /// (`direct.p99<200 ms` and `direct.p99 < 200ms`).
    pub fn same_as(&self, other: &Slo) -> bool {
        self.target == other.target && self.op == other.op && self.threshold == other.threshold
    }

    /// Whether the expressions `a` and `b` are one objective: [`Slo::same_as`] when both
    /// parse, else the same text.
    pub fn same_expr(a: &str, b: &str) -> bool {
        match (Slo::parse(a), Slo::parse(b)) {
            (Ok(a), Ok(b)) => a.same_as(&b),
            _ => a.trim() == b.trim(),
        }
    }

    /// Splits one expression into its name, comparison and value, checking only that it has
    /// that shape: what the name may be is the report's to know.
    pub fn split(expr: &str) -> Result<(&str, Op, &str), SloError> {
        let err = |why: &str| SloError {
            expr: expr.to_string(),
            why: why.to_string(),
        };
        let (at, token, op) = OPS
            .iter()
            .filter_map(|(t, op)| expr.find(t).map(|at| (at, *t, *op)))
            .min_by_key(|(at, t, _)| (*at, std::cmp::Reverse(t.len())))
            .ok_or_else(|| err("no comparison (one of < <= > >= == !=)"))?;
        let name = expr[..at].trim();
        let value = expr[at + token.len()..].trim();
        if name.is_empty() || value.is_empty() {
            return Err(err("expected NAME OP VALUE"));
        }
        // `<>` or `>>` is read as `<` before a value starting with `>`: say what was meant.
        let trailing: String = value
            .chars()
            .take_while(|c| matches!(c, '<' | '>' | '=' | '!'))
            .collect();
        if !trailing.is_empty() {
            return Err(err(&format!(
                "{:?} is not a comparison; one of < <= > >= == !=",
                format!("{token}{trailing}")
            )));
        }
        // `=>` or `=<` is read as `>` or `<` after a name ending in `=`: say what was meant.
        if let Some(stray) = name.strip_suffix('=').or_else(|| name.strip_suffix('!')) {
            // `name` is trimmed: where it starts in `expr`, after any leading space.
            let name_at = expr.len() - expr.trim_start().len();
            let written = &expr[name_at + stray.len()..at + token.len()];
            return Err(err(&format!(
                "{:?} is not a comparison; one of < <= > >= == !=",
                written.trim()
            )));
        }
        Ok((name, op, value))
    }

    /// Parses one expression.
    pub fn parse(expr: &str) -> Result<Self, SloError> {
        let err = |why: &str| SloError {
            expr: expr.to_string(),
            why: why.to_string(),
        };
        let (name, op, value) = Self::split(expr)?;
        let token = op.token();
        let target = match name.split_once('.') {
            Some((metric, stat)) => {
                let stat = if stat == "p99.9" { "p999" } else { stat };
                if !STATS.contains(&stat) {
                    return Err(err(&format!(
                        "unknown statistic {stat:?}; one of {}",
                        STATS.join(", ")
                    )));
                }
                Target::Latency {
                    metric: metric.to_string(),
                    stat: stat.to_string(),
                }
            }
            None => Target::Number(name.to_string()),
        };
        let threshold = match &target {
            Target::Latency { stat, .. } if stat != "count" => {
                parse_micros(value).map_err(|w| err(&w))?
            }
            _ => value.parse::<f64>().map_err(|_| {
                if parse_micros(value).is_ok() && matches!(&target, Target::Latency { .. }) {
                    err(&format!(
                        "{name} is a number of samples, not a duration: compare it with a number, as in {name} > 100"
                    ))
                } else if parse_micros(value).is_ok() {
                    // A duration compared with a bare name: the statistic was left out.
                    err(&format!(
                        "{value:?} is a duration, and {name:?} has no statistic: a latency is compared as METRIC.STAT (as in direct.p99 < {value}), a count or a rate with a plain number"
                    ))
                } else {
                    err(&format!("{value:?} is not a number"))
                }
            })?,
        };
        // NaN compares false with everything and infinity true with every figure: neither is
        // a limit a run can be held to.
        if !threshold.is_finite() {
            return Err(err(&format!("{value:?} is not a finite number")));
        }
        Ok(Self {
            // One spelling however it was typed (`direct.p99<1ms` on the command line beside
            // `direct.p99 < 200ms` from a scenario): the value as written, the rest spaced.
            expr: format!("{name} {token} {value}"),
            target,
            op,
            threshold,
        })
    }

    /// Whether `value` meets the objective.
    pub fn holds(&self, value: f64) -> bool {
        let t = self.threshold;
        match self.op {
            Op::Lt => value < t,
            Op::Le => value <= t,
            Op::Gt => value > t,
            Op::Ge => value >= t,
            Op::Eq => value == t,
            Op::Ne => value != t,
        }
    }

    /// Formats `value` the way the threshold is read (a duration for latencies).
    pub fn show(&self, value: f64) -> String {
        match &self.target {
            Target::Latency { stat, .. } if stat != "count" => {
                let shown = format_micros(value);
                // Rounded as the table rounds, a value just past the bound reads as the bound
                // (1503 µs failing `< 1500us` as "1.50ms"): then it is shown in whole µs.
                if value != self.threshold && shown == format_micros(self.threshold) {
                    format!("{value:.0}µs")
                } else {
                    shown
                }
            }
            _ => format_number(value),
        }
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expr)
    }
}

fn parse_micros(text: &str) -> Result<f64, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 250ms"))?;
    let scale = match unit.trim() {
        // 0 is 0 in any unit; any other bare number is ambiguous.
        "" if n == 0.0 => 1.0,
        "" => {
            return Err(format!(
                "{text:?} needs a unit: {text}ms, {text}us or {text}s (a bare number could be any)"
            ))
        }
        "us" | "µs" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" | "min" => 60e6,
        "h" => 3600e6,
        // A second comparison after the bound (`< 1ms < 2ms`): one bound to an SLO.
        other if other.contains(['<', '>', '=']) => {
            return Err(format!(
            "{text:?}: an SLO has one comparison and one bound; give each bound an SLO of its own"
        ))
        }
        other => return Err(format!("unknown unit {other:?}; use us, ms, s, m or h")),
    };
    Ok(n * scale)
}

/// A duration in µs as people read it: `850µs`, `12.3ms`, `1.50s`.
pub fn format_micros(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.0}µs")
    } else if us < 1_000_000.0 {
        format!("{:.2}ms", us / 1e3)
    } else {
        format!("{:.2}s", us / 1e6)
    }
}

/// A latency in µs to three significant digits (`311µs`, `1.92ms`, `34.7ms`, `512ms`,
/// `1.20s`), as the histograms hold it and the latency tables show it: at most six
/// characters, so that the live line keeps within 80 columns whatever the figures. A figure
/// held against a bound (an SLO's value) is [`format_micros`]'s, finer near the bound.
pub fn three_digits(us: f64) -> String {
    match us {
        us if us < 999.5 => format!("{us:.0}µs"),
        us if us < 9_995.0 => format!("{:.2}ms", us / 1e3),
        us if us < 99_950.0 => format!("{:.1}ms", us / 1e3),
        us if us < 999_500.0 => format!("{:.0}ms", us / 1e3),
        us if us < 9_995_000.0 => format!("{:.2}s", us / 1e6),
        us if us < 99_950_000.0 => format!("{:.1}s", us / 1e6),
        us if us < 999_500_000.0 => format!("{:.0}s", us / 1e6),
        // From 1,000 s: minutes, then hours (a run lasts a year at most).
        us if us < 5_999_970_000_000.0 => format!("{:.0}m", us / 60e6),
        us => format!("{:.0}h", us / 3_600e6),
    }
}

/// A ratio of two figures (`1.38x`, `0.25x`): two decimals, and two significant digits below
/// 0.01, where two decimals would make a small figure (`0.0042x`) look like none (`0.00x`).
pub fn times(ratio: f64) -> String {
    if ratio == 0.0 {
        "0x".to_string()
    } else if ratio.abs() < 0.01 {
        let decimals = (1 - ratio.abs().log10().floor() as i32).clamp(3, 12) as usize;
        format!("{ratio:.decimals$}x")
    } else {
        format!("{ratio:.2}x")
    }
}

fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_ratio_keeps_two_significant_digits() {
        assert_eq!(times(1.3849), "1.38x");
        assert_eq!(times(0.25), "0.25x");
        assert_eq!(times(0.0042), "0.0042x");
        assert_eq!(times(0.000123), "0.00012x");
        assert_eq!(times(0.0), "0x");
        assert_eq!(times(652.0), "652.00x");
    }

    #[test]
    fn a_mistyped_comparison_or_a_count_with_a_unit_says_what_was_meant() {
        let e = Slo::parse("direct.p99 < 1ms < 2ms").unwrap_err();
        assert!(
            e.why().contains("one comparison and one bound"),
            "{}",
            e.why()
        );
        let e = Slo::parse("direct.p99 => 1s").unwrap_err();
        assert!(
            e.why().contains("\"=>\" is not a comparison"),
            "{}",
            e.why()
        );
        let e = Slo::parse("direct.p99=<1s").unwrap_err();
        assert!(
            e.why().contains("\"=<\" is not a comparison"),
            "{}",
            e.why()
        );
        let e = Slo::parse("lost <> 0").unwrap_err();
        assert!(
            e.why().contains("\"<>\" is not a comparison"),
            "{}",
            e.why()
        );
        // Leading space and a name that is not ASCII: the typo is still what is shown.
        let e = Slo::parse("  é=<1ms").unwrap_err();
        assert!(
            e.why().contains("\"=<\" is not a comparison"),
            "{}",
            e.why()
        );
        let e = Slo::parse("direct.count>1ms").unwrap_err();
        assert!(e.why().contains("a number of samples"), "{}", e.why());
        assert!(!e.why().contains("direct.count.p99"), "{}", e.why());
        assert!(Slo::parse("direct.count > 100").is_ok());
        // Only the shape is checked when splitting: what a name may be is the report's.
        assert_eq!(Slo::split("lost.p99<1").unwrap(), ("lost.p99", Op::Lt, "1"));
        for (token, op) in OPS {
            assert_eq!(op.token(), token);
        }
        assert!(Slo::split("direct.p99 => 1s").is_err());
        assert!(Slo::split("direct.p99 1s").is_err());
    }

    #[test]
    fn a_threshold_that_is_not_a_finite_number_is_refused() {
        let huge = format!("direct.p99 < {}s", "9".repeat(400));
        for expr in [
            "lost < nan",
            "delivered_per_s > NaN",
            "lost < 1e999",
            "lost < inf",
            huge.as_str(),
        ] {
            let e = Slo::parse(expr).expect_err(expr);
            assert!(e.to_string().contains("not a finite number"), "{expr}: {e}");
        }
        assert!(Slo::parse("lost < 1e9").is_ok());
    }

    #[test]
    fn hours_are_a_unit_as_in_durations() {
        assert_eq!(Slo::parse("direct.max < 1h").unwrap().threshold, 3600e6);
    }

    #[test]
    fn a_value_just_past_its_bound_does_not_read_as_the_bound() {
        let slo = Slo::parse("direct.p99<1500us").unwrap();
        assert!(!slo.holds(1503.0));
        assert_eq!(slo.show(1503.0), "1503µs");
        assert_eq!(slo.show(1500.0), "1.50ms");
        assert_eq!(slo.show(1620.0), "1.62ms");
    }

    #[test]
    fn parses_what_the_readme_shows() {
        let s = Slo::parse("direct.p99<500ms").unwrap();
        assert_eq!(
            s.target,
            Target::Latency {
                metric: "direct".into(),
                stat: "p99".into()
            }
        );
        assert_eq!((s.op, s.threshold), (Op::Lt, 500_000.0));
        let s = Slo::parse(" lost == 0 ").unwrap();
        assert_eq!(
            (s.target, s.op, s.threshold),
            (Target::Number("lost".into()), Op::Eq, 0.0)
        );
        let s = Slo::parse("ack.p99.9 <= 1.5s").unwrap();
        assert_eq!(
            s.target,
            Target::Latency {
                metric: "ack".into(),
                stat: "p999".into()
            }
        );
        assert_eq!((s.op, s.threshold), (Op::Le, 1_500_000.0));
        assert_eq!(Slo::parse("delivered_per_s >= 1000").unwrap().op, Op::Ge);
        assert_eq!(Slo::parse("connect.max > 20us").unwrap().threshold, 20.0);
        assert_eq!(Slo::parse("connect.count > 20").unwrap().threshold, 20.0);
        assert_eq!(Slo::parse("direct.max > 0").unwrap().threshold, 0.0);
        let e = Slo::parse("direct.p99<500").unwrap_err();
        assert!(
            e.why().contains("needs a unit: 500ms, 500us or 500s"),
            "{e}"
        );
    }

    #[test]
    fn verdicts_follow_the_operator() {
        let s = Slo::parse("direct.p99 < 1ms").unwrap();
        assert!(s.holds(999.0));
        assert!(!s.holds(1000.0));
        assert!(Slo::parse("lost == 0").unwrap().holds(0.0));
        assert!(!Slo::parse("lost == 0").unwrap().holds(1.0));
        assert!(Slo::parse("errors != 3").unwrap().holds(2.0));
    }

    #[test]
    fn junk_is_refused_with_a_reason() {
        for bad in [
            "direct.p99",
            "direct.p98 < 1s",
            "direct.p99 < soon",
            "lost == none",
            "< 3",
            "direct.p99 < 3d",
        ] {
            assert!(Slo::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_durations() {
        assert_eq!(format_micros(850.0), "850µs");
        assert_eq!(format_micros(12_345.0), "12.35ms");
        assert_eq!(format_micros(1_500_000.0), "1.50s");
    }
}
