//! `intervals.hlog`: the run's per-second histograms in the HdrHistogram interval log format,
//! which the HdrHistogram tools of other languages read (HistogramLogProcessor, HdrHistogram
//! plotters). One tagged histogram per metric, transport and second, tagged
//! `<transport>.<metric>`; values in µs; measured samples only, so the intervals of a tag add
//! up to the totals in report.json. The fan-out figures, settled once the run has ended, have
//! no intervals.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;

use crate::report::heading::HLOG_PREFIX;
use crate::report::model::Report;

/// The interval log of every run in `report`, as bytes.
pub fn encode(report: &Report) -> std::io::Result<Vec<u8>> {
    let base = report
        .runs
        .iter()
        .map(|r| r.started_unix_s)
        .fold(f64::INFINITY, f64::min);
    let base = if base.is_finite() { base } else { 0.0 };
    let base_time = UNIX_EPOCH + Duration::from_secs_f64(base.max(0.0));
    let mut out = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    let mut header = IntervalLogWriterBuilder::new();
    header
        .add_comment(&format!(
            "{HLOG_PREFIX}{} interval log: scenario {}, {} run(s); values in microseconds; tag = transport.metric",
            report.version,
            report.scenario.name,
            report.runs.len()
        ))
        .with_start_time(base_time)
        .with_base_time(base_time);
    drop(header.begin_log_with(&mut out, &mut serializer)?);
    // The column legend, uncommented, as the Java writer puts it and every reader skips.
    out.extend_from_slice(
        b"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n",
    );
    let mut body = IntervalLogWriterBuilder::new();
    body.with_max_value_divisor(1000.0);
    let mut writer = body.begin_log_with(&mut out, &mut serializer)?;
    for run in &report.runs {
        let offset = (run.started_unix_s - base).max(0.0);
        for interval in &run.interval_log {
            let start = Duration::from_secs_f64(offset + interval.start_s.max(0.0));
            let length = Duration::from_secs_f64((interval.end_s - interval.start_s).max(0.0));
            for (metric, h) in &interval.histograms {
                let tag = format!("{}.{}", run.transport, metric);
                let tag = Tag::new(&tag).ok_or_else(|| {
                    std::io::Error::other(format!("{tag} cannot be an interval log tag"))
                })?;
                writer
                    .write_histogram(h, start, length, Some(tag))
                    .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
            }
        }
    }
    Ok(out)
}

/// Every histogram of `tag` in an interval log, added into one (for checking a log against the
/// report it came with).
pub fn total_for(log: &[u8], tag: &str) -> Result<Histogram<u64>, String> {
    use base64::Engine;
    let mut total = crate::measure::metrics::new_histogram();
    for entry in IntervalLogIterator::new(log) {
        let entry = entry.map_err(|e| format!("{e:?}"))?;
        if let LogEntry::Interval(h) = entry {
            if h.tag().map(|t| t.as_str()) != Some(tag) {
                continue;
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(h.encoded_histogram())
                .map_err(|e| e.to_string())?;
            let decoded = crate::report::histogram::decode_v2(&bytes).map_err(|e| e.to_string())?;
            total.add(&decoded).map_err(|e| format!("{e:?}"))?;
        }
    }
    Ok(total)
}

/// The base time written in a log (seconds since the epoch), if any and if a time can hold it.
pub fn base_time(log: &[u8]) -> Option<SystemTime> {
    IntervalLogIterator::new(log).find_map(|e| match e {
        Ok(LogEntry::BaseTime(d)) => UNIX_EPOCH.checked_add(d),
        _ => None,
    })
}
