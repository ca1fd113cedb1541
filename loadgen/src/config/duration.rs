//! Durations as a person writes them ("500ms", "30s", "2m"), on the command line and in a
//! scenario, read by humantime with one of its units refused: `M`, which it takes for a month
//! where the writer of `--duration 1M` meant a minute and would start a month-long run.

use std::time::Duration;

/// Reads `text` as a duration.
pub fn parse(text: &str) -> Result<Duration, String> {
    if uses_month(text) {
        return Err(format!(
            "{text:?}: \"M\" is a month (\"m\" is a minute): write {:?} for minutes, or spell \
             out \"months\"",
            text.replace('M', "m")
        ));
    }
    if text.trim_start().starts_with('-') {
        return Err(format!("{text:?}: a duration is 0 or more"));
    }
    let number = text.trim();
    if !number.is_empty() && number.bytes().all(|b| b == b'0') {
        // 0 is 0 in any unit (humantime takes "0" alone).
        return Ok(Duration::ZERO);
    }
    if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) {
        // humantime's own words suggest "5sec"; these docs write "5s".
        return Err(format!(
            "{text:?}: a unit is needed, as in {number}s, {number}ms or {number}m"
        ));
    }
    humantime::parse_duration(text).map_err(|e| format!("{text:?}: {e}"))
}

/// Whether `text` has `M` as a unit of its own: after a number, not the start of a word.
fn uses_month(text: &str) -> bool {
    let b = text.as_bytes();
    (0..b.len()).any(|i| {
        b[i] == b'M'
            && i > 0
            && (b[i - 1].is_ascii_digit() || b[i - 1] == b' ')
            && b.get(i + 1).is_none_or(|n| !n.is_ascii_alphabetic())
    })
}

/// For `#[serde(with = "crate::config::duration")]`: written as humantime writes it, read by
/// [`parse`].
pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    humantime_serde::serialize(d, s)
}

/// See [`serialize`].
pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_str(Text)
}

/// Reads a duration's text.
struct Text;

impl serde::de::Visitor<'_> for Text {
    type Value = Duration;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a duration in quotes, such as \"30s\" or \"500ms\"")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Duration, E> {
        parse(text).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capital_m_is_refused_for_the_month_it_would_be() {
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        for month in ["1M", "1 M", "2M30s"] {
            let e = parse(month).unwrap_err();
            assert!(
                e.contains("is a month") && e.contains("for minutes"),
                "{month}: {e}"
            );
        }
        // A month spelt out means one.
        assert!(parse("1month").is_ok());
        assert!(parse("1S").is_err());
    }

    #[test]
    fn a_number_without_a_unit_is_told_the_units_these_docs_use() {
        assert_eq!(
            parse("5").unwrap_err(),
            "\"5\": a unit is needed, as in 5s, 5ms or 5m"
        );
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        for zero in ["0", "00", " 0"] {
            assert_eq!(parse(zero), Ok(Duration::ZERO), "{zero:?}");
        }
    }

    #[test]
    fn a_negative_duration_is_refused_as_such() {
        for negative in ["-1s", " -500ms"] {
            let e = parse(negative).unwrap_err();
            assert!(e.contains("a duration is 0 or more"), "{negative}: {e}");
        }
    }
}
