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
    read_histogram(s).ok()
}

/// Decodes a summary's histogram, or says why it is not one.
pub fn read_histogram(s: &MetricSummary) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&s.histogram)
        .map_err(|e| format!("is not base64: {e}"))?;
    decode_v2(&bytes).map_err(|e| format!("is not a histogram: {e}"))
}

/// The most bytes a histogram may inflate to. One of imbench's (1 µs to an hour, 3 digits)
/// holds about 30,000 counts, a few KiB encoded even when every one is set; the largest any
/// encoder can describe (5 digits, 1 to u64::MAX) about 6 million, some 60 MiB at worst.
const MAX_INFLATED: u64 = 64 * 1024 * 1024;

/// The format's cookies (HdrHistogram's V2 encoding, plain and deflated) and its header:
/// cookie, payload length, normalizing offset, digits (4 bytes each), lowest, highest and the
/// integer-to-double ratio (8 bytes each).
const V2_COOKIE: u32 = 0x1c84_9313;
const V2_DEFLATE_COOKIE: u32 = 0x1c84_9314;
const V2_HEADER: usize = 40;

/// Why bytes from a file are not a histogram.
#[derive(Debug, thiserror::Error)]
pub enum HistogramDecodeError {
    /// Neither of the V2 cookies.
    #[error("not an HdrHistogram V2 encoding")]
    NotV2,
    /// A length in it runs past its end.
    #[error("the encoding says it is longer than it is")]
    Truncated,
    /// Inflated, it would be larger than any histogram.
    #[error("it inflates to more than {} MiB", MAX_INFLATED >> 20)]
    TooLarge,
    /// The deflated part is not zlib.
    #[error("{0}")]
    Deflate(std::io::Error),
    /// hdrhistogram's decoder refused it.
    #[error("{0}")]
    Decode(hdrhistogram::serialization::DeserializeError),
}

/// Decodes an HdrHistogram V2 encoding (deflated or not) from a file someone may have made by
/// hand. hdrhistogram's own decoder sets aside as many bytes as the header's payload length
/// says (up to 4 GiB) before it reads any of them, so the lengths are checked against what
/// is there first, and the inflated size is bounded.
pub fn decode_v2(bytes: &[u8]) -> Result<Histogram<u64>, HistogramDecodeError> {
    use std::io::Read;
    let be32 = |b: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    let inflated;
    let plain = match be32(bytes, 0) {
        Some(V2_COOKIE) => bytes,
        Some(V2_DEFLATE_COOKIE) => {
            let len = be32(bytes, 4).ok_or(HistogramDecodeError::Truncated)? as usize;
            let deflated = bytes
                .get(8..8usize.saturating_add(len))
                .ok_or(HistogramDecodeError::Truncated)?;
            let mut out = Vec::new();
            flate2::read::ZlibDecoder::new(deflated)
                .take(MAX_INFLATED + 1)
                .read_to_end(&mut out)
                .map_err(HistogramDecodeError::Deflate)?;
            if out.len() as u64 > MAX_INFLATED {
                return Err(HistogramDecodeError::TooLarge);
            }
            inflated = out;
            &inflated[..]
        }
        _ => return Err(HistogramDecodeError::NotV2),
    };
    if be32(plain, 0) != Some(V2_COOKIE) {
        return Err(HistogramDecodeError::NotV2);
    }
    let payload = be32(plain, 4).ok_or(HistogramDecodeError::Truncated)? as usize;
    if plain.len() < V2_HEADER || payload > plain.len() - V2_HEADER {
        return Err(HistogramDecodeError::Truncated);
    }
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut &plain[..])
        .map_err(HistogramDecodeError::Decode)
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

    /// A V2 header (plain) with `payload` as its payload length and nothing after it.
    fn header_claiming(payload: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&V2_COOKIE.to_be_bytes());
        b.extend_from_slice(&payload.to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&3u32.to_be_bytes());
        b.extend_from_slice(&1u64.to_be_bytes());
        b.extend_from_slice(&3_600_000_000u64.to_be_bytes());
        b.extend_from_slice(&1.0f64.to_be_bytes());
        b
    }

    fn deflated(plain: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(plain).unwrap();
        let z = z.finish().unwrap();
        let mut b = V2_DEFLATE_COOKIE.to_be_bytes().to_vec();
        b.extend_from_slice(&(z.len() as u32).to_be_bytes());
        b.extend_from_slice(&z);
        b
    }

    #[test]
    fn lengths_that_are_not_there_are_refused_before_anything_is_set_aside() {
        // Nearly 4 GiB of payload claimed, none there: hdrhistogram's decoder would zero that
        // much memory before reading; this one says the encoding is truncated.
        let claim = header_claiming(u32::MAX - 64);
        for bytes in [claim.clone(), deflated(&claim)] {
            assert!(
                matches!(decode_v2(&bytes), Err(HistogramDecodeError::Truncated)),
                "{:?}",
                decode_v2(&bytes)
            );
        }
        // A deflated length past the end, an unknown cookie, and too few bytes.
        let mut long = deflated(&claim);
        long[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decode_v2(&long),
            Err(HistogramDecodeError::Truncated)
        ));
        assert!(matches!(
            decode_v2(b"nope"),
            Err(HistogramDecodeError::NotV2)
        ));
        assert!(matches!(
            decode_v2(&[0x1c]),
            Err(HistogramDecodeError::NotV2)
        ));
        // An honest empty payload decodes, plain and deflated.
        let empty = header_claiming(0);
        assert_eq!(decode_v2(&empty).unwrap().len(), 0);
        assert_eq!(decode_v2(&deflated(&empty)).unwrap().len(), 0);
    }

    #[test]
    fn what_inflates_past_the_bound_is_refused() {
        let mut huge = header_claiming(0);
        huge.resize(MAX_INFLATED as usize + 100, 0);
        assert!(matches!(
            decode_v2(&deflated(&huge)),
            Err(HistogramDecodeError::TooLarge)
        ));
    }
}
