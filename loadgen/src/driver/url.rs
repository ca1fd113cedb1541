//! What the targets' URLs share: credentials before an `@`, percent-encoded so that a password
//! may hold `@`, `:` or `/`.

/// `s` with each `%XX` replaced by the byte it stands for; `None` when a `%` is not followed by
/// two hex digits or the result is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_become_the_characters_they_stand_for() {
        assert_eq!(
            percent_decode("p%40ss%3Aw%2Frd").as_deref(),
            Some("p@ss:w/rd")
        );
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("100%"), None);
        assert_eq!(percent_decode("%zz"), None);
    }
}
