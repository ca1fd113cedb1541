//! What the targets' URLs share: credentials before the last `@` (a password may hold `@`, `:`
//! or `/` as written, or percent-encoded); `HOST:PORT`; and `?key=value` options, each given
//! at most once.

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

/// What follows `plain` or `tls` (two schemes with their `://`) at the start of `url`, and
/// whether it was `tls`; `None` when it starts with neither.
pub fn strip_scheme<'a>(url: &'a str, plain: &str, tls: &str) -> Option<(&'a str, bool)> {
    match url.strip_prefix(tls) {
        Some(rest) => Some((rest, true)),
        None => url.strip_prefix(plain).map(|rest| (rest, false)),
    }
}

/// The parts of `SCHEME://[USERINFO@]HOST:PORT[/PATH][?QUERY]` after the scheme.
#[derive(Debug, PartialEq, Eq)]
pub struct Parts<'a> {
    /// What came before the last `@` of the authority, still encoded.
    pub userinfo: Option<&'a str>,
    /// `HOST:PORT` as written.
    pub host_port: &'a str,
    /// After the first `/`, without it; empty when there is none.
    pub path: &'a str,
    /// After the `?`, without it; empty when there is none.
    pub query: &'a str,
}

/// Splits what follows `SCHEME://`. The credentials end at the last `@` that `HOST:PORT`
/// follows, so a password holding `@`, `:`, `/` or `?` reads right written as it is (no path
/// of a target holds an `@`, and an option's value is followed by no port). Without such an
/// `@` (a port mistyped, say), at the last `@` before the options.
pub fn split(rest: &str) -> Parts<'_> {
    let before_host = rest.rmatch_indices('@').map(|(at, _)| at).find(|&at| {
        let after = &rest[at + 1..];
        host_port(after.split(['/', '?']).next().unwrap_or_default()).is_some()
    });
    let (userinfo, after, query) = match before_host {
        Some(at) => {
            let (after, query) = rest[at + 1..]
                .split_once('?')
                .unwrap_or((&rest[at + 1..], ""));
            (Some(&rest[..at]), after, query)
        }
        // No `@` that HOST:PORT follows (its port is mistyped, say). When what comes before
        // the first `/` or `?` is a HOST:PORT, an `@` after it is an option's or the path's;
        // otherwise the credentials still end at the last `@`, so that a password holding
        // `@`, `/` or `?` is hidden whole in the error that names the port.
        None => {
            let authority = rest.split(['/', '?']).next().unwrap_or_default();
            match rest.rsplit_once('@') {
                Some((u, after)) if host_port(authority).is_none() => {
                    let (after, query) = after.split_once('?').unwrap_or((after, ""));
                    (Some(u), after, query)
                }
                _ => {
                    let (head, query) = rest.split_once('?').unwrap_or((rest, ""));
                    (None, head, query)
                }
            }
        }
    };
    let (host_port, path) = after.split_once('/').unwrap_or((after, ""));
    Parts {
        userinfo,
        host_port,
        path,
        query,
    }
}

/// `HOST:PORT` with a host that is not empty and a port above 0; an IPv6 address in brackets
/// comes back without them.
pub fn host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port = port.parse::<u16>().ok().filter(|&p| p > 0)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then_some((host, port))
}

/// `HOST:PORT` as a person writes it: an IPv6 address in brackets, `[::1]:1883`.
pub fn show_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The `key=value` pairs of a query (a pair without `=` has an empty value), in order; `Err`
/// names a key given twice.
pub fn query_pairs(query: &str) -> Result<Vec<(&str, &str)>, String> {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if pairs.iter().any(|(k, _)| *k == key) {
            return Err(key.to_string());
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// An option of a target's query as it was written (`qos=5`, or `retain` given without a
/// value), for the message that refuses it: every driver quotes it the same way.
pub fn option_as_written(key: &str, value: &str) -> String {
    if value.is_empty() {
        key.to_string()
    } else {
        format!("{key}={value}")
    }
}

/// `url` as reports may show it: a password after `USER:` becomes `***`, and so does a NATS
/// token (`nats://TOKEN@HOST:PORT`); the rest as given.
pub fn without_secrets(url: &str) -> String {
    let Some((scheme, separator, rest)) = scheme_and_rest(url) else {
        return url.to_string();
    };
    let Some(userinfo) = split(rest).userinfo else {
        return url.to_string();
    };
    let shown = match secret_of(url) {
        Some(_) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***"),
            None => "***".to_string(),
        },
        None => userinfo.to_string(),
    };
    // The userinfo is the start of what follows the scheme, up to the `@` it ends at.
    format!("{scheme}{separator}{shown}{}", &rest[userinfo.len()..])
}

/// A URL's scheme, what separates it from the rest, and the rest: `://`, or a mistyped
/// `:/`, `//` or `:` after a scheme of letters (`nats:/bob:pw@h:1`), so that a password in a
/// URL refused for its scheme is hidden too.
fn scheme_and_rest(url: &str) -> Option<(&str, &str, &str)> {
    if let Some((scheme, rest)) = url.split_once("://") {
        return Some((scheme, "://", rest));
    }
    let end = url.find(|c: char| !(c.is_ascii_alphanumeric() || c == '+'))?;
    let (scheme, after) = url.split_at(end);
    let separator = ["//", ":/", ":"]
        .into_iter()
        .find(|sep| after.starts_with(sep))?;
    Some((scheme, separator, &after[separator.len()..]))
}

/// The secret `url` carries, as written: the password after `USER:`, or a NATS token.
fn secret_of(url: &str) -> Option<&str> {
    let (scheme, _, rest) = scheme_and_rest(url)?;
    let userinfo = split(rest).userinfo?;
    match userinfo.split_once(':') {
        Some((_, password)) => Some(password),
        None if scheme.to_ascii_lowercase().starts_with("nats") => Some(userinfo),
        None => None,
    }
    .filter(|s| !s.is_empty())
}

/// `text` (an error about `url`, say) with `url`'s secret, as written and decoded, shown as
/// `***`: the URL as [`without_secrets`] shows it, and the secret where it stands as a word of
/// its own. Inside other words it stays (a password `e` hidden everywhere garbled every
/// message, and the gaps spelled it out).
pub fn hide_secrets(text: &str, url: &str) -> String {
    let Some(secret) = secret_of(url) else {
        return text.to_string();
    };
    let mut out = text.replace(url, &without_secrets(url));
    out = replace_words(&out, secret, "***");
    if let Some(decoded) = percent_decode(secret).filter(|d| !d.is_empty()) {
        out = replace_words(&out, &decoded, "***");
    }
    out
}

/// `text` with each `word` that no letter, digit or `_` touches on either side replaced.
fn replace_words(text: &str, word: &str, with: &str) -> String {
    let part_of_a_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = String::with_capacity(text.len());
    let (mut from, mut search) = (0, 0);
    // Each place the word begins, overlapping ones too: one inside a longer word may overlap
    // one that stands alone.
    while let Some(found) = text.get(search..).and_then(|rest| rest.find(word)) {
        let at = search + found;
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        if word.is_empty() || part_of_a_word(before) || part_of_a_word(after) {
            // On to the next character boundary after this start.
            search = at + text[at..].chars().next().map_or(1, char::len_utf8);
            continue;
        }
        out.push_str(&text[from..at]);
        out.push_str(with);
        from = at + word.len();
        search = from;
    }
    out.push_str(&text[from..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_shown_in_a_report_hides_its_password_and_token() {
        assert_eq!(
            without_secrets("mqtt://u:p%40ss@h:1?qos=0"),
            "mqtt://u:***@h:1?qos=0"
        );
        assert_eq!(
            without_secrets("nats://s3cret@h:1/pre"),
            "nats://***@h:1/pre"
        );
        assert_eq!(
            without_secrets("nats+tls://u:p@ss@h:1"),
            "nats+tls://u:***@h:1"
        );
        assert_eq!(
            without_secrets("xmpp://user{user}@h:1/example.org"),
            "xmpp://user{user}@h:1/example.org"
        );
        assert_eq!(
            without_secrets("mqtt://h:1?ca=/a@b.pem"),
            "mqtt://h:1?ca=/a@b.pem"
        );
        assert_eq!(without_secrets("h:1"), "h:1");
    }

    #[test]
    fn an_error_about_a_url_hides_its_secret_as_written_and_decoded() {
        let url = "mqtt://bob:s3c%40ret@h:1?qso=2";
        assert_eq!(
            hide_secrets(&format!("{url:?}: unknown option; password s3c@ret"), url),
            "\"mqtt://bob:***@h:1?qso=2\": unknown option; password ***"
        );
        assert_eq!(
            hide_secrets("nats://tok@h:1 x", "nats://tok@h:1"),
            "nats://***@h:1 x"
        );
        assert_eq!(
            hide_secrets("xmpp://name@h:1", "xmpp://name@h:1"),
            "xmpp://name@h:1"
        );
        // A short password is hidden in the URL, and not inside the words around it.
        let url = "nats://bob:e@127.0.0.1:99999";
        assert_eq!(
            hide_secrets(
                &format!("{url}: a NATS target needs HOST:PORT (the port is e)"),
                url
            ),
            "nats://bob:***@127.0.0.1:99999: a NATS target needs HOST:PORT (the port is ***)"
        );
        let url = "mqtt://u:t@h:1?qos=5";
        assert_eq!(
            hide_secrets("the MQTT target takes qos=0, 1 or 2", url),
            "the MQTT target takes qos=0, 1 or 2"
        );
        // A URL with a mistyped "://" hides its password too.
        assert_eq!(
            without_secrets("nats:/bob:pw@h:4222"),
            "nats:/bob:***@h:4222"
        );
        assert_eq!(without_secrets("mqtt//u:pw@h:1"), "mqtt//u:***@h:1");
        assert_eq!(without_secrets("nats:tok@h:1"), "nats:***@h:1");
        // A secret that stands alone right after an overlapping occurrence inside a word.
        assert_eq!(replace_words("xa.a.a", "a.a", "***"), "xa.***");
        assert_eq!(replace_words("é e é", "e", "***"), "é *** é");
    }

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

    #[test]
    fn a_password_with_a_question_mark_as_written_is_a_password() {
        assert_eq!(
            split("al:p@ss:w/rd?x@127.0.0.1:43230/pre?jetstream=file"),
            Parts {
                userinfo: Some("al:p@ss:w/rd?x"),
                host_port: "127.0.0.1:43230",
                path: "pre",
                query: "jetstream=file",
            }
        );
        assert_eq!(
            without_secrets("mqtt://bob:s3c?ret@127.0.0.1:41884"),
            "mqtt://bob:***@127.0.0.1:41884"
        );
        // With its port mistyped, missing or 0, the password is still hidden whole.
        for url in [
            "mqtt://bob:s3c?ret@127.0.0.1:99999",
            "nats://al:p@ss:w/rd?x@127.0.0.1:99999",
            "mqtt://dan:x#y/z@w:v?u@127.0.0.1:0",
            "xmpp://al:p@ss:w/rd?x@127.0.0.1",
        ] {
            let host = split(url.split_once("://").unwrap().1).host_port;
            let said = hide_secrets(&format!("{url}: needs HOST:PORT, got {host:?}"), url);
            assert!(
                !said.contains("s3c") && !said.contains("ss:w") && !said.contains("w:v"),
                "{said}"
            );
        }
    }

    #[test]
    fn a_url_splits_at_its_last_at_its_first_slash_and_its_question_mark() {
        assert_eq!(
            split("u:p@ss@h:1/a/b?x=1&y"),
            Parts {
                userinfo: Some("u:p@ss"),
                host_port: "h:1",
                path: "a/b",
                query: "x=1&y",
            }
        );
        assert_eq!(
            split("h:1"),
            Parts {
                userinfo: None,
                host_port: "h:1",
                path: "",
                query: "",
            }
        );
        // A password holding `/`, `@` and `:` as written.
        assert_eq!(
            split("bob:p@ss:w/rd@h:1/pre"),
            Parts {
                userinfo: Some("bob:p@ss:w/rd"),
                host_port: "h:1",
                path: "pre",
                query: "",
            }
        );
        assert_eq!(
            without_secrets("nats://bob:p@ss:w/rd@h:1"),
            "nats://bob:***@h:1"
        );
        // A `/` in the query is the query's.
        assert_eq!(split("h:1?ca=/etc/ca.pem").query, "ca=/etc/ca.pem");
        assert_eq!(split("h:1?ca=/etc/ca.pem").path, "");
    }

    #[test]
    fn a_scheme_says_whether_it_is_tls() {
        assert_eq!(
            strip_scheme("mqtts://h:1", "mqtt://", "mqtts://"),
            Some(("h:1", true))
        );
        assert_eq!(
            strip_scheme("mqtt://h:1", "mqtt://", "mqtts://"),
            Some(("h:1", false))
        );
        assert_eq!(strip_scheme("nats://h:1", "mqtt://", "mqtts://"), None);
    }

    #[test]
    fn host_and_port_need_both() {
        assert_eq!(host_port("h:4222"), Some(("h", 4222)));
        assert_eq!(host_port("[::1]:5222"), Some(("::1", 5222)));
        for bad in ["h", ":1", "h:0", "h:x", "h:70000", "[]:1"] {
            assert_eq!(host_port(bad), None, "{bad}");
        }
        // And back, as the target was written.
        assert_eq!(show_host_port("::1", 5222), "[::1]:5222");
        assert_eq!(show_host_port("h", 4222), "h:4222");
    }

    #[test]
    fn query_pairs_keep_their_order_and_refuse_a_key_twice() {
        assert_eq!(
            query_pairs("a=1&b&&c=x=y").unwrap(),
            vec![("a", "1"), ("b", ""), ("c", "x=y")]
        );
        assert_eq!(query_pairs("a=1&a=2"), Err("a".to_string()));
        assert!(query_pairs("").unwrap().is_empty());
    }

    #[test]
    fn an_option_is_quoted_as_written() {
        assert_eq!(option_as_written("qos", "5"), "qos=5");
        assert_eq!(option_as_written("retain", ""), "retain");
    }
}
