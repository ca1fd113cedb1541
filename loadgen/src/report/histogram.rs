//! A histogram in a report: its summary (count, percentiles) and the full HdrHistogram,
//! V2-deflate encoded in base64, so any figure can be recomputed or merged later.

use base64::Engine;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use crate::report::model::MetricSummary;

/// Summarises a histogram and encodes it.
pub fn summarize(h: &Histogram<u64>) -> MetricSummary {
    let mut bytes = Vec::new();
    // Serialising into memory fails only on a histogram too large to encode, not here.
    let _ = V2DeflateSerializer::new().serialize(h, &mut bytes);
    let empty = h.is_empty();
    let q = |p: f64| if empty { 0 } else { h.value_at_quantile(p) };
    MetricSummary {
        count: h.len(),
        min_us: if empty { 0 } else { h.min() },
        mean_us: if empty { 0.0 } else { h.mean() },
        p50_us: q(0.5),
        p90_us: q(0.9),
        p99_us: q(0.99),
        p999_us: q(0.999),
        max_us: if empty { 0 } else { h.max() },
        histogram: base64::engine::general_purpose::STANDARD.encode(bytes),
    }
}

/// Decodes a summary's histogram.
pub fn decode_histogram(s: &MetricSummary) -> Option<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&s.histogram)
        .ok()?;
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut &bytes[..])
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_survive_the_round_trip_through_json() {
        let mut h = crate::measure::metrics::new_histogram();
        for v in [5u64, 50, 500, 5_000, 50_000] {
            h.record(v).unwrap();
        }
        let s = summarize(&h);
        let json = serde_json::to_string(&s).unwrap();
        let back: MetricSummary = serde_json::from_str(&json).unwrap();
        let decoded = decode_histogram(&back).unwrap();
        assert_eq!(decoded.len(), 5);
        assert_eq!(decoded.value_at_quantile(0.5), h.value_at_quantile(0.5));
        assert_eq!(back.p99_us, h.value_at_quantile(0.99));
        let empty = summarize(&crate::measure::metrics::new_histogram());
        assert_eq!((empty.count, empty.p99_us, empty.max_us), (0, 0, 0));
    }
}
