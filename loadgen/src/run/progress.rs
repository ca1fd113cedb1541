//! Live progress: one updating line on a terminal, plain lines (one a second) otherwise.

use std::io::IsTerminal;
use std::sync::atomic::Ordering::Relaxed;

use indicatif::{ProgressBar, ProgressStyle};

use crate::client::context::RunContext;
use crate::config::slo::format_micros;
use crate::report::IntervalPoint;

/// The phase the run is in now: ramp-up, warm-up, measure or drain.
pub fn phase(ctx: &RunContext) -> &'static str {
    let now = ctx.clock.now_us();
    if now < ctx.send_start_us {
        "ramp-up"
    } else if now < ctx.measure_start_us {
        "warm-up"
    } else if now < ctx.schedule_end() {
        "measure"
    } else {
        "drain"
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

/// The progress display of one run.
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    last: Option<IntervalPoint>,
}

impl Progress {
    /// Chooses the display from `mode` and whether stderr is a terminal.
    pub fn new(mode: ProgressMode, ctx: &RunContext) -> Self {
        let tty = std::io::stderr().is_terminal();
        let s = &ctx.scenario;
        if mode != ProgressMode::Quiet {
            crate::errln!(
                "imbench: {} — {} clients to {}; ramp-up {:.1}s, warm-up {:.1}s, measure {:.1}s",
                s.name,
                s.clients,
                ctx.driver.describe(),
                s.ramp_up.as_secs_f64(),
                s.warmup.as_secs_f64(),
                s.duration.as_secs_f64()
            );
        }
        let bar = (mode == ProgressMode::Auto && tty).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar
        });
        let plain = mode == ProgressMode::Plain || (mode == ProgressMode::Auto && !tty);
        Self {
            bar,
            plain,
            last: None,
        }
    }

    /// Shows the interval that just ended.
    pub fn update(&mut self, ctx: &RunContext, p: &IntervalPoint) {
        let (sent_rate, delivered_rate) = match &self.last {
            Some(l) if p.t_s > l.t_s => {
                let dt = p.t_s - l.t_s;
                (
                    (p.sent - l.sent) as f64 / dt,
                    (p.delivered - l.delivered) as f64 / dt,
                )
            }
            _ => (0.0, 0.0),
        };
        let phase = phase(ctx);
        let failed = ctx
            .counters
            .iter()
            .filter(|c| c.connect_failed.load(Relaxed))
            .count();
        let p99 = |count: u64, us: u64| {
            if count > 0 {
                format_micros(us as f64)
            } else {
                "-".into()
            }
        };
        let mut latency = Vec::new();
        if ctx.scenario.direct.rate > 0.0 {
            latency.push(format!(
                "direct p99 {}",
                p99(p.direct_count, p.direct_p99_us)
            ));
        }
        if !ctx.plan.groups.is_empty() {
            latency.push(format!("group p99 {}", p99(p.group_count, p.group_p99_us)));
        }
        let line = format!(
            "[{:>5.1}s] {phase:<7} clients {}/{}{} | sent {:.0}/s delivered {:.0}/s | {} | lag p99 {}",
            p.t_s,
            p.connected,
            ctx.scenario.clients,
            if failed > 0 { format!(" ({failed} failed)") } else { String::new() },
            sent_rate,
            delivered_rate,
            latency.join(" | "),
            format_micros(p.lag_p99_us as f64),
        );
        if let Some(bar) = &self.bar {
            bar.set_message(line);
            bar.tick();
        } else if self.plain {
            crate::errln!("{line}");
        }
        self.last = Some(p.clone());
    }

    /// Removes the live line.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
