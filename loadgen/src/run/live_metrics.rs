//! The generator's figures for a Prometheus scrape while it runs (`--metrics-addr`): what
//! the clients have counted so far, the last second's latencies, and, with the server
//! embedded, the server's own figures beside them, so that one dashboard shows both sides.
//!
//! Each run publishes onto a [`LiveBoard`] once a second (with the progress line); a scrape
//! reads the last publication, so it never touches the clients' counters itself.

use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::client::context::RunContext;
use crate::measure::counters::ClientTotals;
use crate::report::IntervalPoint;
use crate::run::progress::phase;

/// The prefix of the generator's names; the embedded server's are under `imbench_server`.
pub const PREFIX: &str = "imbench";

/// Client counts that go down as well as up: a level now, exported as a gauge.
const LEVELS: &[&str] = &["joins_pending"];

/// One publication: the run, its phase and its figures at one tick.
#[derive(Debug, Clone)]
struct Published {
    scenario: String,
    target: String,
    phase: &'static str,
    /// Whether the clients are imbench's own, which alone count
    /// [`crate::report::figures::OWN_CLIENTS_ONLY`]: another system's run leaves those out
    /// rather than serve a 0 that would read as "none happened".
    own_clients: bool,
    totals: ClientTotals,
    point: IntervalPoint,
}

/// What a scrape reads: the current run's last publication and its embedded server.
#[derive(Default)]
pub struct LiveBoard {
    published: Mutex<Option<Published>>,
    server: Mutex<Option<Box<dyn Collector>>>,
}

impl std::fmt::Debug for LiveBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveBoard")
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // What is behind these locks is replaced whole, never left half-written.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LiveBoard {
    /// A registry serving this board: the generator's figures, and the server's under
    /// `imbench_server`.
    pub fn registry(self: &Arc<Self>) -> Registry {
        let mut registry = Registry::with_prefix(PREFIX);
        registry.register_collector(Box::new(GeneratorFigures(self.clone())));
        registry
            .sub_registry_with_prefix("server")
            .register_collector(Box::new(ServerSlot(self.clone())));
        registry
    }

    /// Publishes the state of the run `target` at the tick that produced `point`.
    pub fn publish(
        &self,
        ctx: &RunContext,
        target: &str,
        point: &IntervalPoint,
        totals: ClientTotals,
    ) {
        *lock(&self.published) = Some(Published {
            scenario: ctx.scenario.name.clone(),
            target: target.to_string(),
            phase: phase(ctx),
            own_clients: matches!(ctx.driver, crate::driver::Driver::Imbench(_)),
            totals,
            point: point.clone(),
        });
    }

    /// The embedded server whose figures are served beside the generator's (`None` when the
    /// run is against another system, or over).
    pub fn set_server(&self, server: Option<Box<dyn Collector>>) {
        *lock(&self.server) = server;
    }
}

/// The generator's side of a scrape.
#[derive(Debug)]
struct GeneratorFigures(Arc<LiveBoard>);

/// The embedded server's side of a scrape, when there is one.
#[derive(Debug)]
struct ServerSlot(Arc<LiveBoard>);

impl Collector for ServerSlot {
    fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
        match lock(&self.0.server).as_ref() {
            Some(server) => server.encode(encoder),
            None => Ok(()),
        }
    }
}

/// One line of help from a doc comment's lines.
fn help(doc: &str) -> String {
    doc.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn gauge<N>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    labels: &[(&str, &str)],
    value: N,
) -> std::fmt::Result
where
    N: EncodeGaugeValue + std::fmt::Debug + Send + Sync + 'static,
{
    let gauge = ConstGauge::new(value);
    let mut metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
    gauge.encode(metric.encode_family(&labels)?)
}

impl Collector for GeneratorFigures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let Some(p) = lock(&self.0.published).clone() else {
            return Ok(());
        };
        let labels: &[(&str, &str)] = &[("scenario", &p.scenario), ("target", &p.target)];
        gauge(
            &mut encoder,
            "run_info",
            "The run being measured, and its phase (ramp-up, warm-up, measure, drain).",
            &[
                ("scenario", &p.scenario),
                ("target", &p.target),
                ("phase", p.phase),
            ],
            1i64,
        )?;
        gauge(
            &mut encoder,
            "elapsed_seconds",
            "Time since the run started.",
            labels,
            p.point.t_s,
        )?;
        for (name, doc, value) in p.totals.flags() {
            let name = format!("clients_{name}");
            // Most flags are set once and stay set (connected and later disconnected count in
            // both); a few are states cleared again (away, connection_lost): each flag's own
            // words say which.
            let help = format!("Clients whose flag is set: {}", help(doc));
            gauge(&mut encoder, &name, &help, labels, value as f64)?;
        }
        for (name, doc, value) in p.totals.counts() {
            if !p.own_clients && crate::report::figures::OWN_CLIENTS_ONLY.contains(&name) {
                continue;
            }
            if LEVELS.contains(&name) {
                gauge(&mut encoder, name, &help(doc), labels, value as f64)?;
                continue;
            }
            let counter = ConstCounter::new(value);
            let mut metric =
                encoder.encode_descriptor(name, &help(doc), None, counter.metric_type())?;
            counter.encode(metric.encode_family(&labels)?)?;
        }
        for (name, help, value) in last_second(&p.point) {
            gauge(&mut encoder, name, &help, labels, value)?;
        }
        Ok(())
    }
}

/// The last second's latency gauges (name, help, seconds), those with something timed in it:
/// a second that timed nothing has no figure, rather than a latency of zero (a punctual
/// schedule in a second that sent nothing, in the ramp-up or the drain).
fn last_second(point: &IntervalPoint) -> Vec<(&'static str, String, f64)> {
    let seconds = |us: u64| us as f64 / 1e6;
    [
        (
            "direct_p50_seconds",
            "Median direct-message latency",
            point.direct_count,
            point.direct_p50_us,
        ),
        (
            "direct_p99_seconds",
            "p99 direct-message latency",
            point.direct_count,
            point.direct_p99_us,
        ),
        (
            "direct_max_seconds",
            "Largest direct-message latency",
            point.direct_count,
            point.direct_max_us,
        ),
        (
            "group_p99_seconds",
            "p99 group delivery latency",
            point.group_count,
            point.group_p99_us,
        ),
        (
            "schedule_lag_p99_seconds",
            "p99 of how late the generator sent against its schedule",
            point.lag_count,
            point.lag_p99_us,
        ),
    ]
    .into_iter()
    .filter(|&(_, _, count, _)| count > 0)
    .map(|(name, what, _, us)| (name, format!("{what} over the last second."), seconds(us)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_that_timed_nothing_has_no_gauge_of_it() {
        let names = |p: &IntervalPoint| -> Vec<&str> {
            last_second(p).into_iter().map(|(n, _, _)| n).collect()
        };
        let quiet = IntervalPoint {
            lag_p99_us: 0,
            ..IntervalPoint::default()
        };
        assert!(names(&quiet).is_empty(), "{:?}", names(&quiet));
        let sending = IntervalPoint {
            lag_count: 40,
            lag_p99_us: 1_500,
            direct_count: 38,
            direct_p99_us: 2_000,
            ..IntervalPoint::default()
        };
        assert_eq!(
            names(&sending),
            [
                "direct_p50_seconds",
                "direct_p99_seconds",
                "direct_max_seconds",
                "schedule_lag_p99_seconds"
            ]
        );
        let lag = last_second(&sending);
        assert_eq!(lag[3].2, 0.0015);
    }

    #[test]
    fn another_systems_run_serves_no_counter_only_imbenchs_clients_make() {
        let scrape = |own_clients: bool| {
            let board = Arc::new(LiveBoard::default());
            *lock(&board.published) = Some(Published {
                scenario: "s".into(),
                target: "t".into(),
                phase: "measure",
                own_clients,
                totals: ClientTotals::default(),
                point: IntervalPoint::default(),
            });
            let mut text = String::new();
            prometheus_client::encoding::text::encode(&mut text, &board.registry()).unwrap();
            text
        };
        let own = scrape(true);
        let other = scrape(false);
        for name in crate::report::figures::OWN_CLIENTS_ONLY {
            let line = format!("imbench_{name}_total{{");
            assert!(own.contains(&line), "{name}: {own}");
            assert!(!other.contains(&line), "{name}: {other}");
        }
        assert!(other.contains("imbench_sent_total{"), "{other}");
    }
}
