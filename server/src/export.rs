//! The server's figures for a Prometheus scrape: every counter of [`crate::stats`], the bytes
//! waiting in queues and holds, and the process's memory and CPU time, read at scrape time.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::stats::Kind;
use crate::State;

/// The prefix of every name the server exports.
pub const PREFIX: &str = "imbench_server";

/// Reads the server's figures at each scrape.
pub(crate) struct ServerFigures {
    pub(crate) state: Arc<State>,
}

impl std::fmt::Debug for ServerFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerFigures")
    }
}

/// Gauges are signed; no figure here comes near the limit, but none wraps if one did.
fn saturating(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A registry holding the server's figures, under [`PREFIX`].
pub(crate) fn registry(state: Arc<State>) -> Registry {
    let mut registry = Registry::with_prefix(PREFIX);
    registry.register_collector(Box::new(ServerFigures { state }));
    registry
}

fn gauge<N>(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: N) -> std::fmt::Result
where
    N: EncodeGaugeValue + std::fmt::Debug + Send + Sync + 'static,
{
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

impl Collector for ServerFigures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        for figure in self.state.snapshot().figures() {
            let help = figure.help.split_whitespace().collect::<Vec<_>>().join(" ");
            match figure.kind {
                Kind::Counter => {
                    let counter = ConstCounter::new(figure.value);
                    let metric = encoder.encode_descriptor(
                        figure.name,
                        &help,
                        None,
                        counter.metric_type(),
                    )?;
                    counter.encode(metric)?;
                }
                Kind::Gauge => gauge(&mut encoder, figure.name, &help, saturating(figure.value))?,
            }
        }
        let pools = self.state.router.pools();
        gauge(
            &mut encoder,
            "queued_bytes",
            "Bytes charged for deliveries waiting in live sessions' queues (bounded by --max-queued-bytes).",
            saturating(pools.queued_bytes() as u64),
        )?;
        gauge(
            &mut encoder,
            "held_bytes",
            "Bytes charged for held deliveries, offline or carried by a session and not yet written (bounded by --hold-bytes).",
            saturating(pools.held_bytes() as u64),
        )?;
        if let Some(rss) = crate::process::rss_bytes() {
            gauge(
                &mut encoder,
                "resident_memory_bytes",
                "Resident memory of the server process.",
                saturating(rss),
            )?;
        }
        if let Some(cpu) = crate::process::cpu_seconds() {
            gauge(
                &mut encoder,
                "cpu_seconds",
                "CPU time the server process has used, user and system.",
                cpu,
            )?;
        }
        Ok(())
    }
}
