//! An error and its causes as one line for a person, each said once: what both binaries print
//! when they stop on an error. An error that quotes its source in its own message (`reading
//! secret file …: No such file or directory`) is not followed by that source again, as
//! anyhow's `{:#}` would.

/// `e` and its causes, joined by ": ", each said once.
pub fn causes(e: &anyhow::Error) -> String {
    let mut said = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if said.contains(&text) {
            continue;
        }
        if !said.is_empty() {
            said.push_str(": ");
        }
        said.push_str(&text);
    }
    said
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading secret file s: {source}")]
    struct Quoting {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_its_error_quotes_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::new(Quoting { source: io }).context("reading --secret-file");
        assert_eq!(
            causes(&e),
            "reading --secret-file: reading secret file s: no such file"
        );
        // anyhow's own chain says the file's error twice.
        assert!(format!("{e:#}").ends_with("no such file: no such file"));
    }
}
