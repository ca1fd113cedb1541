//! Live progress: one updating line on a terminal, plain lines (one a second) otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::client::context::RunContext;
use crate::measure::counters::ClientTotals;
use crate::report::IntervalPoint;

/// What one progress update shows.
struct Lines {
    phase: &'static str,
    elapsed_s: f64,
    planned_s: f64,
    /// When the drain began: the schedule's end, or later when that end was set back to
    /// where a server fell silent (the drain counts from when that was noticed).
    drain_began_s: f64,
    connected: u64,
    clients: u64,
    failed: u64,
    dropped: u64,
    errors: u64,
    refused: u64,
    sent_rate: f64,
    delivered_rate: f64,
    /// (deliveries timed this second, their p99 in µs), when the scenario has direct chat.
    direct: Option<(u64, u64)>,
    /// The same for group deliveries, when it has groups.
    group: Option<(u64, u64)>,
    /// (sends this second, their schedule lag's p99 in µs).
    lag: (u64, u64),
}

impl Lines {
    /// Where the run is and what went wrong so far:
    /// `[12.0s/38.0s] measure clients 1000/1000 errors 0 refused 0`.
    fn state(&self) -> String {
        let mut clients = format!("clients {}/{}", self.connected, self.clients);
        if self.failed > 0 {
            clients.push_str(&format!(" ({} failed)", self.failed));
        }
        if self.dropped > 0 {
            clients.push_str(&format!(" ({} dropped)", self.dropped));
        }
        // Tenths of a second only while they are a visible part of the time.
        let seconds = |s: f64| {
            if s < 100.0 {
                format!("{s:.1}")
            } else {
                format!("{s:.0}")
            }
        };
        // The drain has no planned length (it lasts as long as the last messages take): past
        // the schedule's end the clock stops at it and the drain counts its own time.
        let (elapsed, phase) = if self.elapsed_s > self.planned_s {
            (
                self.planned_s,
                format!(
                    "{} +{:.1}s",
                    self.phase,
                    (self.elapsed_s - self.drain_began_s.max(self.planned_s)).max(0.0)
                ),
            )
        } else {
            (self.elapsed_s, self.phase.to_string())
        };
        format!(
            "[{:>4}s/{}s] {phase:<7} {clients} errors {} refused {}",
            seconds(elapsed),
            seconds(self.planned_s),
            self.errors,
            self.refused
        )
    }

    /// This second's rates and p99 latencies:
    /// `sent 992/s delivered 992/s p99 direct 311µs lag 108µs`.
    fn rates(&self) -> String {
        let p99 = |(count, us): (u64, u64)| {
            if count > 0 {
                crate::config::slo::three_digits(us as f64)
            } else {
                "-".into()
            }
        };
        let mut line = format!(
            "sent {:.0}/s delivered {:.0}/s p99",
            self.sent_rate, self.delivered_rate
        );
        if let Some(d) = self.direct {
            line.push_str(&format!(" direct {}", p99(d)));
        }
        if let Some(g) = self.group {
            line.push_str(&format!(" group {}", p99(g)));
        }
        line.push_str(&format!(" lag {}", p99(self.lag)));
        line
    }
}

/// The phase the run is in now: ramp-up, warm-up, measure or drain.
pub fn phase(ctx: &RunContext) -> &'static str {
    let now = ctx.clock.now_us();
    // A run stopped early (Ctrl-C in its ramp-up) ends its schedule there: what follows is
    // its drain, whichever phase was planned for that time.
    if now >= ctx.schedule_end() {
        "drain"
    } else if now < ctx.send_start_us {
        "ramp-up"
    } else if now < ctx.measure_start_us {
        "warm-up"
    } else {
        "measure"
    }
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A live line on a terminal, plain lines otherwise.
    Auto,
    /// Plain lines, one a second.
    Plain,
    /// Nothing.
    Quiet,
}

/// The progress display of one run. It never waits for stderr (see [`crate::stderr`]).
pub struct Progress {
    /// Whether anything is shown.
    shown: bool,
    /// The live display on a terminal; plain lines without one.
    bar: Option<ProgressBar>,
    /// Plain lines skipped because stderr was not read as fast as they came.
    skipped: u64,
    last: Option<IntervalPoint>,
}

impl Progress {
    /// Chooses the display from `mode` and whether stderr is a terminal.
    pub fn new(mode: ProgressMode, ctx: &RunContext) -> Self {
        let tty = std::io::stderr().is_terminal();
        let s = &ctx.scenario;
        let bar = (mode == ProgressMode::Auto && tty).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar
        });
        let shown = mode != ProgressMode::Quiet;
        if shown {
            let clients = match ctx.shard {
                Some(shard) => format!(
                    "{} of {} clients (shard {shard})",
                    super::clients_in(s, ctx.shard),
                    s.clients
                ),
                None => format!("{} clients", s.clients),
            };
            crate::errln!(
                "imbench: {} — {clients} to {}; ramp-up {}, warm-up {}, measure {}",
                s.name,
                ctx.driver.describe(),
                span(s.ramp_up),
                span(s.warmup),
                span(s.duration)
            );
        }
        Self {
            shown,
            bar,
            skipped: 0,
            last: None,
        }
    }

    /// Shows the interval that just ended.
    pub fn update(&mut self, ctx: &RunContext, p: &IntervalPoint, totals: &ClientTotals) {
        let (sent_rate, delivered_rate) = match &self.last {
            Some(l) if p.t_s > l.t_s => {
                let dt = p.t_s - l.t_s;
                (
                    (p.sent - l.sent) as f64 / dt,
                    (p.delivered - l.delivered) as f64 / dt,
                )
            }
            // The first second: since the start.
            None if p.t_s > 0.0 => (p.sent as f64 / p.t_s, p.delivered as f64 / p.t_s),
            _ => (0.0, 0.0),
        };
        let lines = Lines {
            phase: phase(ctx),
            elapsed_s: p.t_s,
            // The schedule's end; the drain after it is as long as the last messages take.
            planned_s: ctx.schedule_end() as f64 / 1e6,
            drain_began_s: ctx.drain_began_us() as f64 / 1e6,
            connected: p.connected,
            // A shard's own clients: the others connect from other generators.
            clients: super::clients_in(&ctx.scenario, ctx.shard) as u64,
            failed: totals.connect_failed,
            dropped: totals.disconnected,
            errors: totals.errors,
            refused: totals.rejected + totals.group_rejected,
            sent_rate,
            delivered_rate,
            direct: (ctx.scenario.direct.rate > 0.0).then_some((p.direct_count, p.direct_p99_us)),
            group: (!ctx.plan.groups.is_empty()).then_some((p.group_count, p.group_p99_us)),
            lag: (
                p.sent - self.last.as_ref().map_or(0, |l| l.sent.min(p.sent)),
                p.lag_p99_us,
            ),
        };
        let stderr = crate::stderr::stderr();
        match &self.bar {
            // Two short lines on a terminal: one line of all this wraps at 80 columns.
            Some(bar) => stderr.bar(bar, format!("{}\n  {}", lines.state(), lines.rates())),
            None if self.shown
                && !stderr.progress_line(format!("{} | {}", lines.state(), lines.rates())) =>
            {
                self.skipped += 1;
            }
            None => {}
        }
        self.last = Some(p.clone());
    }

    /// Removes the live line; says how many lines a slow reader of stderr missed.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            crate::stderr::stderr().clear_bar(&bar);
        }
        if self.skipped > 0 {
            crate::errln!(
                "imbench: {} progress lines were not shown: stderr was not read as fast as they came, and the run went on without waiting for it",
                std::mem::take(&mut self.skipped)
            );
        }
    }
}

impl Drop for Progress {
    /// A run that ends early removes its live line too.
    fn drop(&mut self) {
        self.finish();
    }
}

/// A phase's length as a person reads it: seconds to a tenth under a minute, whole seconds
/// in larger units above (a warm-up of a year is not 31557600.0s).
fn span(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_reads_in_seconds_under_a_minute_and_in_larger_units_above() {
        assert_eq!(span(Duration::from_millis(500)), "0.5s");
        assert_eq!(span(Duration::from_millis(59_940)), "59.9s");
        assert_eq!(span(Duration::from_millis(90_400)), "1m 30s");
        assert_eq!(span(Duration::from_secs(2 * 3600)), "2h");
    }

    #[test]
    fn a_live_latency_has_three_digits_and_at_most_six_characters() {
        for (us, shown) in [
            (311.0, "311µs"),
            (999.4, "999µs"),
            (999.6, "1.00ms"),
            (1_920.0, "1.92ms"),
            (34_710.0, "34.7ms"),
            (347_130.0, "347ms"),
            (1_204_000.0, "1.20s"),
            (61_000_000.0, "61.0s"),
        ] {
            assert_eq!(crate::config::slo::three_digits(us), shown);
        }
        for us in [
            0.0,
            9_994.9,
            99_949.0,
            999_499.0,
            9_994_999.0,
            99_949_999.0,
            1e11,
        ] {
            assert!(
                crate::config::slo::three_digits(us).chars().count() <= 6,
                "{}",
                crate::config::slo::three_digits(us)
            );
        }
    }

    #[test]
    fn each_line_fits_in_80_columns_at_a_large_run() {
        let lines = Lines {
            phase: "measure",
            elapsed_s: 1234.5,
            planned_s: 3600.0,
            drain_began_s: 3600.0,
            connected: 99_999,
            clients: 100_000,
            failed: 1,
            dropped: 0,
            errors: 12_345,
            refused: 67_890,
            sent_rate: 123_456.0,
            delivered_rate: 1_234_567.0,
            direct: Some((5, 347_130)),
            group: Some((7, 99_940)),
            lag: (1_000, 9_994),
        };
        for line in [lines.state(), format!("  {}", lines.rates())] {
            assert!(
                line.chars().count() <= 80,
                "{} columns: {line}",
                line.chars().count()
            );
        }
        assert!(lines.state().starts_with("[1234s/3600s] measure clients"));
        let draining = Lines {
            phase: "drain",
            elapsed_s: 12.0,
            planned_s: 11.5,
            drain_began_s: 11.5,
            ..lines
        };
        assert!(
            draining
                .state()
                .starts_with("[11.5s/11.5s] drain +0.5s clients"),
            "{}",
            draining.state()
        );
        // A schedule ended back where a server fell silent (3.5 s), noticed at 6.0 s: the
        // drain counts from when it was noticed, within the 3 s a stopped run waits.
        let cut_back = Lines {
            elapsed_s: 7.0,
            planned_s: 3.5,
            drain_began_s: 6.0,
            ..draining
        };
        assert!(
            cut_back.state().starts_with("[ 3.5s/3.5s] drain +1.0s"),
            "{}",
            cut_back.state()
        );
        assert!(
            lines
                .rates()
                .ends_with("p99 direct 347ms group 99.9ms lag 9.99ms"),
            "{}",
            lines.rates()
        );
        let quiet = Lines {
            group: Some((0, 0)),
            ..lines
        };
        assert!(quiet.rates().contains("group - lag"), "{}", quiet.rates());
    }
}
