//! The NATS client protocol on the wire: the lines a client writes (CONNECT, PUB, SUB, UNSUB,
//! PING, PONG) and an incremental parser of what the server sends (INFO, MSG, PING, PONG, +OK,
//! -ERR). The protocol is text lines ending in CRLF; MSG is followed by its payload and a CRLF.
//! Only what the driver uses is here: no headers (HMSG is refused at CONNECT); reply subjects
//! only for JetStream, whose publish acknowledgements and API answers come back on them.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The longest control line accepted from a server. INFO is the longest the server sends (it
/// lists the cluster's URLs); anything longer without a CRLF is not NATS.
pub const MAX_LINE: usize = 64 * 1024;

/// What the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerOp {
    /// The server's description (JSON), first on every connection and again when the cluster
    /// changes.
    Info(String),
    /// A message on a subscription.
    Msg {
        /// The subscription it arrived on.
        sid: u64,
        /// The number after the subject's last dot, when it ends in one: on the inbox of
        /// JetStream's acknowledgements, the message they answer for.
        tail: Option<u64>,
        /// Its payload.
        payload: Bytes,
    },
    /// The server checks the client is alive: answer PONG.
    Ping,
    /// The answer to the client's PING: everything the client sent before it was processed.
    Pong,
    /// Acknowledges a command in verbose mode (the driver does not ask for it).
    Ok,
    /// An error; most end the connection (authorization, parser, slow consumer).
    Err(String),
}

/// What cannot be NATS.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// A control line longer than [`MAX_LINE`].
    #[error("a line of more than {MAX_LINE} bytes without CRLF")]
    LineTooLong,
    /// A line that does not parse.
    #[error("cannot read the server's line {0:?}")]
    Malformed(String),
    /// A payload larger than the client accepts.
    #[error("a message of {0} bytes, more than the {1} accepted")]
    TooLarge(usize, usize),
}

/// Takes one complete operation off the front of `buf`, or `None` until more bytes arrive.
pub fn parse(buf: &mut BytesMut, max_payload: usize) -> Result<Option<ServerOp>, WireError> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() > MAX_LINE {
            Err(WireError::LineTooLong)
        } else {
            Ok(None)
        };
    };
    let line = &buf[..end];
    let (op, rest) = match line.iter().position(|&b| b == b' ' || b == b'\t') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &line[line.len()..]),
    };
    let malformed = || WireError::Malformed(String::from_utf8_lossy(line).into_owned());
    let parsed = if op.eq_ignore_ascii_case(b"MSG") {
        let text = std::str::from_utf8(rest).map_err(|_| malformed())?;
        let fields: Vec<&str> = text.split_ascii_whitespace().collect();
        // subject sid [reply-to] size
        let (subject, sid, size) = match fields.as_slice() {
            [subject, sid, size] | [subject, sid, _, size] => (subject, sid, size),
            _ => return Err(malformed()),
        };
        let tail = subject
            .rsplit_once('.')
            .and_then(|(_, last)| last.parse().ok());
        let sid: u64 = sid.parse().map_err(|_| malformed())?;
        let size: usize = size.parse().map_err(|_| malformed())?;
        if size > max_payload {
            return Err(WireError::TooLarge(size, max_payload));
        }
        let whole = end + 2 + size + 2;
        if buf.len() < whole {
            // Room for the rest, once, so the next reads fill it.
            buf.reserve(whole - buf.len());
            return Ok(None);
        }
        if &buf[whole - 2..whole] != b"\r\n" {
            return Err(malformed());
        }
        buf.advance(end + 2);
        let payload = buf.split_to(size).freeze();
        buf.advance(2);
        return Ok(Some(ServerOp::Msg { sid, tail, payload }));
    } else if op.eq_ignore_ascii_case(b"PING") {
        ServerOp::Ping
    } else if op.eq_ignore_ascii_case(b"PONG") {
        ServerOp::Pong
    } else if op.eq_ignore_ascii_case(b"+OK") {
        ServerOp::Ok
    } else if op.eq_ignore_ascii_case(b"-ERR") {
        let text = String::from_utf8_lossy(rest);
        ServerOp::Err(text.trim().trim_matches('\'').to_string())
    } else if op.eq_ignore_ascii_case(b"INFO") {
        ServerOp::Info(String::from_utf8_lossy(rest).into_owned())
    } else {
        return Err(malformed());
    };
    buf.advance(end + 2);
    Ok(Some(parsed))
}

/// `CONNECT {json}` with the options the driver needs: no +OK for every command, no echo of
/// the client's own messages (a group message is not delivered back to its sender), no headers.
pub fn connect(buf: &mut BytesMut, name: &str, auth: &Auth, tls: bool) {
    let mut options = serde_json::json!({
        "verbose": false,
        "pedantic": false,
        "echo": false,
        "headers": false,
        "lang": "rust",
        "version": env!("CARGO_PKG_VERSION"),
        "name": name,
        "protocol": 1,
        "tls_required": tls,
    });
    match auth {
        Auth::None => {}
        Auth::Token(t) => options["auth_token"] = t.as_str().into(),
        Auth::UserPass(u, p) => {
            options["user"] = u.as_str().into();
            options["pass"] = p.as_str().into();
        }
    }
    buf.put_slice(b"CONNECT ");
    buf.put_slice(options.to_string().as_bytes());
    buf.put_slice(b"\r\n");
}

/// What a JetStream API answer or publish acknowledgement says: `Err` with the server's words
/// when it carries an error (`{"error":{"code":503,"description":"…"}}`).
pub fn jetstream_answer(payload: &[u8]) -> Result<serde_json::Value, String> {
    let json: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|_| format!("not JSON: {:?}", String::from_utf8_lossy(payload)))?;
    match json.get("error") {
        Some(error) => Err(format!(
            "{} (code {}, error code {})",
            error
                .get("description")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("no description"),
            error.get("code").unwrap_or(&serde_json::Value::Null),
            error.get("err_code").unwrap_or(&serde_json::Value::Null),
        )),
        None => Ok(json),
    }
}

/// What a server's INFO says of TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsOffer {
    /// Every client must start TLS after the INFO.
    Required,
    /// A client may.
    Available,
    /// It has no TLS (or an INFO that is not JSON says nothing of it).
    No,
}

/// Reads the TLS fields of an INFO's JSON.
pub fn tls_offer(info: &str) -> TlsOffer {
    let json: serde_json::Value = serde_json::from_str(info).unwrap_or_default();
    let flag = |name: &str| json.get(name).and_then(serde_json::Value::as_bool) == Some(true);
    if flag("tls_required") {
        TlsOffer::Required
    } else if flag("tls_available") {
        TlsOffer::Available
    } else {
        TlsOffer::No
    }
}

/// Whether a server's INFO says it runs JetStream (`"jetstream":true`, which nats-server
/// writes from 2.2 on). A server that does not say so may still answer JetStream's API for
/// another (a leaf node's hub), so this shortens the wait for an answer rather than refusing.
pub fn offers_jetstream(info: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(info)
        .ok()
        .and_then(|json| json.get("jetstream")?.as_bool())
        == Some(true)
}

/// The largest payload a server's INFO says it takes, when it says.
pub fn max_payload(info: &str) -> Option<usize> {
    let json: serde_json::Value = serde_json::from_str(info).ok()?;
    usize::try_from(json.get("max_payload")?.as_u64()?).ok()
}

/// How a client proves who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// Nothing.
    None,
    /// A token.
    Token(String),
    /// A user and password.
    UserPass(String, String),
}

/// `PUB subject size`, the payload: `head` then `body`.
pub fn publish(buf: &mut BytesMut, subject: &str, head: &[u8], body: &[u8]) {
    publish_for_reply(buf, subject, None, head, body);
}

/// `PUB subject [reply] size`, then `head` and `body` as one payload: with a reply subject, the
/// answer (JetStream's acknowledgement) is sent there.
pub fn publish_for_reply(
    buf: &mut BytesMut,
    subject: &str,
    reply: Option<&str>,
    head: &[u8],
    body: &[u8],
) {
    buf.put_slice(b"PUB ");
    buf.put_slice(subject.as_bytes());
    buf.put_u8(b' ');
    if let Some(reply) = reply {
        buf.put_slice(reply.as_bytes());
        buf.put_u8(b' ');
    }
    buf.put_slice(
        itoa::Buffer::new()
            .format(head.len() + body.len())
            .as_bytes(),
    );
    buf.put_slice(b"\r\n");
    buf.put_slice(head);
    buf.put_slice(body);
    buf.put_slice(b"\r\n");
}

/// `SUB subject sid`.
pub fn subscribe(buf: &mut BytesMut, subject: &str, sid: u64) {
    buf.put_slice(b"SUB ");
    buf.put_slice(subject.as_bytes());
    buf.put_u8(b' ');
    buf.put_slice(itoa::Buffer::new().format(sid).as_bytes());
    buf.put_slice(b"\r\n");
}

/// `UNSUB sid`.
pub fn unsubscribe(buf: &mut BytesMut, sid: u64) {
    buf.put_slice(b"UNSUB ");
    buf.put_slice(itoa::Buffer::new().format(sid).as_bytes());
    buf.put_slice(b"\r\n");
}

/// `PING`: the server answers PONG once it has processed everything before it.
pub fn ping(buf: &mut BytesMut) {
    buf.put_slice(b"PING\r\n");
}

/// `PONG`: the answer to the server's PING.
pub fn pong(buf: &mut BytesMut) {
    buf.put_slice(b"PONG\r\n");
}

/// Whether `subject` is one NATS accepts as a literal: tokens of printable characters without
/// spaces or wildcards, separated by single dots.
pub fn valid_subject(subject: &str) -> bool {
    !subject.is_empty()
        && subject.split('.').all(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'*' && b != b'>')
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn jetstream_answers_are_read_with_their_errors() {
        let ack = jetstream_answer(br#"{"stream":"imbench","seq":42}"#).unwrap();
        assert_eq!(ack["seq"], 42);
        let e = jetstream_answer(
            br#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}"#,
        )
        .unwrap_err();
        assert_eq!(e, "maximum messages exceeded (code 503, error code 10077)");
        assert!(jetstream_answer(b"+OK").is_err());
        let mut b = BytesMut::new();
        publish_for_reply(&mut b, "im.u.2", Some("_INBOX.a.7"), b"ab", b"c");
        assert_eq!(&b[..], b"PUB im.u.2 _INBOX.a.7 3\r\nabc\r\n");
    }

    #[test]
    fn an_info_says_whether_jetstream_is_on() {
        assert!(offers_jetstream(r#"{"headers":true,"jetstream":true}"#));
        assert!(!offers_jetstream(
            r#"{"headers":true,"max_payload":1048576}"#
        ));
        assert!(!offers_jetstream(r#"{"jetstream":false}"#));
        assert!(!offers_jetstream("not json"));
    }

    #[test]
    fn an_info_says_whether_tls_is_required_offered_or_absent() {
        assert_eq!(tls_offer(r#"{"tls_required":true}"#), TlsOffer::Required);
        assert_eq!(tls_offer(r#"{"tls_available":true}"#), TlsOffer::Available);
        assert_eq!(
            tls_offer(r#"{"tls_required":false,"port":4222}"#),
            TlsOffer::No
        );
        assert_eq!(tls_offer("not json"), TlsOffer::No);
    }

    use super::*;

    fn all(bytes: &[u8]) -> Vec<ServerOp> {
        let mut buf = BytesMut::from(bytes);
        let mut ops = Vec::new();
        while let Some(op) = parse(&mut buf, 1 << 20).unwrap() {
            ops.push(op);
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        ops
    }

    #[test]
    fn every_server_operation_is_read() {
        let ops = all(
            b"INFO {\"max_payload\":1048576}\r\nPING\r\nPONG\r\n+OK\r\n-ERR 'Authorization Violation'\r\n\
              MSG im.u.7 1 5\r\nhello\r\nMSG im.g.3 9 _INBOX.x 0\r\n\r\nmsg a.b 2 3\r\nx\r\n\r\n",
        );
        assert_eq!(
            ops,
            vec![
                ServerOp::Info("{\"max_payload\":1048576}".into()),
                ServerOp::Ping,
                ServerOp::Pong,
                ServerOp::Ok,
                ServerOp::Err("Authorization Violation".into()),
                ServerOp::Msg {
                    sid: 1,
                    tail: Some(7),
                    payload: Bytes::from_static(b"hello")
                },
                ServerOp::Msg {
                    sid: 9,
                    tail: Some(3),
                    payload: Bytes::new()
                },
                // A payload may hold CRLF: its length, not a line end, decides.
                ServerOp::Msg {
                    sid: 2,
                    tail: None,
                    payload: Bytes::from_static(b"x\r\n")
                },
            ]
        );
    }

    #[test]
    fn an_operation_split_anywhere_is_read_once_whole() {
        let wire: &[u8] = b"MSG s 4 10\r\n0123456789\r\nPONG\r\n";
        for cut in 0..wire.len() {
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut ops = Vec::new();
            while let Some(op) = parse(&mut buf, 1 << 20).unwrap() {
                ops.push(op);
            }
            buf.extend_from_slice(&wire[cut..]);
            while let Some(op) = parse(&mut buf, 1 << 20).unwrap() {
                ops.push(op);
            }
            assert_eq!(ops.len(), 2, "cut at {cut}");
            assert_eq!(
                ops[0],
                ServerOp::Msg {
                    sid: 4,
                    tail: None,
                    payload: Bytes::from_static(b"0123456789")
                }
            );
        }
    }

    #[test]
    fn what_is_not_nats_is_refused() {
        let mut b = BytesMut::from(&b"HTTP/1.1 400 Bad Request\r\n"[..]);
        assert!(matches!(parse(&mut b, 100), Err(WireError::Malformed(_))));
        let mut b = BytesMut::from(&b"MSG s x 3\r\nabc\r\n"[..]);
        assert!(matches!(parse(&mut b, 100), Err(WireError::Malformed(_))));
        let mut b = BytesMut::from(&b"MSG s 1 3\r\nabcXY"[..]);
        assert!(matches!(parse(&mut b, 100), Err(WireError::Malformed(_))));
        let mut b = BytesMut::from(&b"MSG s 1 300\r\n"[..]);
        assert_eq!(parse(&mut b, 100), Err(WireError::TooLarge(300, 100)));
        let mut b = BytesMut::from(&vec![b'x'; MAX_LINE + 1][..]);
        assert_eq!(parse(&mut b, 100), Err(WireError::LineTooLong));
    }

    #[test]
    fn commands_are_written_as_the_protocol_spells_them() {
        let mut b = BytesMut::new();
        publish(&mut b, "im.u.2", b"ab", b"cde");
        subscribe(&mut b, "im.g.5", 7);
        unsubscribe(&mut b, 7);
        ping(&mut b);
        pong(&mut b);
        assert_eq!(
            &b[..],
            b"PUB im.u.2 5\r\nabcde\r\nSUB im.g.5 7\r\nUNSUB 7\r\nPING\r\nPONG\r\n"
        );
        let mut c = BytesMut::new();
        connect(
            &mut c,
            "imbench-1",
            &Auth::UserPass("u".into(), "p\"w".into()),
            true,
        );
        let line = std::str::from_utf8(&c).unwrap();
        assert!(
            line.starts_with("CONNECT {") && line.ends_with("}\r\n"),
            "{line}"
        );
        let json: serde_json::Value = serde_json::from_str(&line[8..line.len() - 2]).unwrap();
        assert_eq!(json["echo"], false);
        assert_eq!(json["verbose"], false);
        assert_eq!(json["pass"], "p\"w");
        assert_eq!(json["tls_required"], true);
    }

    #[test]
    fn subjects_are_checked() {
        assert!(valid_subject("imbench.u.7"));
        assert!(valid_subject("a"));
        for bad in ["", "a..b", ".a", "a.", "a b", "a.*", "a.>"] {
            assert!(!valid_subject(bad), "{bad:?}");
        }
    }
}
