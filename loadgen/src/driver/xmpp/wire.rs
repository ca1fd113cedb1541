//! XMPP on the wire, as much of it as the driver speaks: reading the server's stream one
//! top-level element at a time, and writing the few stanzas and stream elements a client
//! sends.
//!
//! An XMPP stream is one XML document that never ends while the session lives: the server's
//! `<stream:stream>` opens it, and stanzas (`<message>`, `<presence>`, `<iq>`) and stream
//! management elements follow as its children. [`next_element`] finds where the next child
//! ends in what has been read so far (quick-xml reads the bytes; nesting is counted here) and
//! builds it as a small tree; until a whole child is in the buffer it asks for more bytes.

use bytes::{Buf, BytesMut};
use quick_xml::events::Event as XmlEvent;
use quick_xml::Reader;

/// The namespace of stream management (XEP-0198) version 3.
pub const SM: &str = "urn:xmpp:sm:3";

/// The namespace of STARTTLS (RFC 6120, section 5).
pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";

/// One element of the server's stream, with its attributes, children and text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// Its local name (`message`, `a`, `features`), without a prefix.
    pub name: String,
    /// Its attributes by local name, values unescaped; `xmlns` among them.
    pub attrs: Vec<(String, String)>,
    /// Its child elements, in order.
    pub children: Vec<Element>,
    /// Its own text, unescaped (the text of its children is theirs).
    pub text: String,
}

impl Element {
    /// The value of attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first child called `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Whether this element's namespace is `ns`.
    pub fn is_in(&self, ns: &str) -> bool {
        self.attr("xmlns") == Some(ns)
    }
}

/// What the server's stream holds next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// `<stream:stream …>`: the stream (re)opened.
    StreamOpen,
    /// `</stream:stream>`: the server ended the stream.
    StreamEnd,
    /// A whole child of the stream: a stanza, features, a SASL answer, an SM element.
    Element(Element),
}

/// Why the server's bytes are not XMPP.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// Not well-formed XML.
    #[error("not well-formed XML: {0}")]
    Xml(String),
    /// One element larger than the driver reads.
    #[error("an element of more than {0} bytes")]
    TooLarge(usize),
    /// Something other than an XMPP stream.
    #[error("not an XMPP stream: {0}")]
    NotXmpp(String),
    /// Elements nested deeper than any stanza the driver reads.
    #[error("elements nested more than {0} deep")]
    TooDeep(usize),
}

/// The deepest nesting of a stream's child read: stanzas nest a few levels (a message, its
/// body or a MUC `x`, an item), and a tree ten thousand deep would take the reader's stack
/// with it when dropped.
pub const MAX_DEPTH: usize = 64;

/// The next whole top-level item in `buf`, taken out of it; `None` when more bytes are needed.
/// `in_stream` says whether the server's stream header has been read (children are at depth
/// one then).
pub fn next_element(
    buf: &mut BytesMut,
    in_stream: bool,
    max: usize,
) -> Result<Option<Incoming>, WireError> {
    loop {
        let Some((end, found)) = scan(buf, in_stream)? else {
            if buf.len() > max {
                return Err(WireError::TooLarge(max));
            }
            return Ok(None);
        };
        let item = match found {
            Found::Skip => None,
            Found::StreamOpen => Some(Incoming::StreamOpen),
            Found::StreamEnd => Some(Incoming::StreamEnd),
            Found::Element => Some(Incoming::Element(build(&buf[..end])?)),
        };
        buf.advance(end);
        if let Some(item) = item {
            return Ok(Some(item));
        }
    }
}

/// What the scan found at the front of the buffer.
enum Found {
    /// Whitespace, an XML declaration, a comment: nothing the session uses.
    Skip,
    StreamOpen,
    StreamEnd,
    Element,
}

/// Where the first complete item in `buf` ends, and what it is; `None` when it is not all
/// there yet.
fn scan(buf: &[u8], in_stream: bool) -> Result<Option<(usize, Found)>, WireError> {
    let mut reader = Reader::from_reader(buf);
    let config = reader.config_mut();
    // A stanza's end tag matches its start, but the stream's own end tag closes a start read
    // long ago, in another buffer.
    config.check_end_names = false;
    config.allow_unmatched_ends = true;
    let mut depth = 0usize;
    loop {
        let event = match reader.read_event() {
            Ok(event) => event,
            // The buffer may end inside a tag or a reference: wait for more bytes. A real
            // error shows again, and the element then grows past the driver's limit.
            Err(_) => return Ok(None),
        };
        let end = reader.buffer_position() as usize;
        match event {
            XmlEvent::Eof => return Ok(None),
            XmlEvent::Start(start) => {
                if depth == 0 && start.local_name().as_ref() == b"stream" {
                    return Ok(Some((end, Found::StreamOpen)));
                }
                if depth == 0 && !in_stream {
                    return Err(WireError::NotXmpp(format!(
                        "it began with <{}>",
                        String::from_utf8_lossy(start.name().as_ref())
                    )));
                }
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(WireError::TooDeep(MAX_DEPTH));
                }
            }
            XmlEvent::Empty(start) if depth == 0 => {
                if !in_stream {
                    return Err(WireError::NotXmpp(format!(
                        "it began with <{}/>",
                        String::from_utf8_lossy(start.name().as_ref())
                    )));
                }
                return Ok(Some((end, Found::Element)));
            }
            XmlEvent::End(tag) => {
                if depth == 0 {
                    if tag.local_name().as_ref() == b"stream" {
                        return Ok(Some((end, Found::StreamEnd)));
                    }
                    return Err(WireError::Xml(format!(
                        "an end tag </{}> with nothing open",
                        String::from_utf8_lossy(tag.name().as_ref())
                    )));
                }
                depth -= 1;
                if depth == 0 {
                    return Ok(Some((end, Found::Element)));
                }
            }
            // Text before the stream is not XMPP (an SSH or HTTP server's greeting, say).
            XmlEvent::Text(text)
                if depth == 0 && !in_stream && !text.iter().all(u8::is_ascii_whitespace) =>
            {
                let shown: String = String::from_utf8_lossy(&text).chars().take(40).collect();
                return Err(WireError::NotXmpp(format!("it began with {shown:?}")));
            }
            // Text between stanzas (whitespace keep-alives), the declaration, comments.
            _ if depth == 0 => {
                // Text at the end of the buffer may go on; anything else is whole.
                if matches!(event, XmlEvent::Text(_)) && end == buf.len() {
                    return Ok(None);
                }
                return Ok(Some((end, Found::Skip)));
            }
            _ => {}
        }
    }
}

/// The tree of one complete element.
fn build(bytes: &[u8]) -> Result<Element, WireError> {
    let xml = |e: &dyn std::fmt::Display| WireError::Xml(e.to_string());
    let mut reader = Reader::from_reader(bytes);
    let mut stack: Vec<(Element, String)> = Vec::new();
    loop {
        let event = reader.read_event().map_err(|e| xml(&e))?;
        let (start, empty) = match event {
            XmlEvent::Start(s) => (s, false),
            XmlEvent::Empty(s) => (s, true),
            XmlEvent::Text(t) => {
                if let Some((_, raw)) = stack.last_mut() {
                    raw.push_str(&t.decode().map_err(|e| xml(&e))?);
                }
                continue;
            }
            XmlEvent::CData(t) => {
                if let Some((_, raw)) = stack.last_mut() {
                    // Escaped, so that unescaping the whole text gives it back as it was.
                    raw.push_str(&quick_xml::escape::escape(t.decode().map_err(|e| xml(&e))?));
                }
                continue;
            }
            XmlEvent::GeneralRef(r) => {
                if let Some((_, raw)) = stack.last_mut() {
                    raw.push('&');
                    raw.push_str(&r.decode().map_err(|e| xml(&e))?);
                    raw.push(';');
                }
                continue;
            }
            XmlEvent::End(_) => {
                let Some((mut done, raw)) = stack.pop() else {
                    return Err(WireError::Xml("an end tag with nothing open".into()));
                };
                done.text = quick_xml::escape::unescape(&raw)
                    .map_err(|e| xml(&e))?
                    .into_owned();
                match stack.last_mut() {
                    Some((parent, _)) => parent.children.push(done),
                    None => return Ok(done),
                }
                continue;
            }
            XmlEvent::Eof => return Err(WireError::Xml("the element is not closed".into())),
            _ => continue,
        };
        let mut element = Element {
            name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
            ..Element::default()
        };
        for attr in start.attributes() {
            let attr = attr.map_err(|e| xml(&e))?;
            let value = attr.unescape_value().map_err(|e| xml(&e))?.into_owned();
            let key = String::from_utf8_lossy(attr.key.local_name().as_ref()).into_owned();
            element.attrs.push((key, value));
        }
        if empty {
            match stack.last_mut() {
                Some((parent, _)) => parent.children.push(element),
                None => return Ok(element),
            }
        } else {
            stack.push((element, String::new()));
        }
    }
}

/// `s` made safe inside an attribute value or text.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}

/// The client's stream header to `domain`.
pub fn stream_open(out: &mut String, domain: &str) {
    out.push_str("<?xml version='1.0'?><stream:stream to='");
    out.push_str(&escape(domain));
    out.push_str(
        "' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
    );
}

/// The end of the client's stream.
pub fn stream_close(out: &mut String) {
    out.push_str("</stream:stream>");
}

/// SASL PLAIN for `user` with `password`.
pub fn auth_plain(out: &mut String, user: &str, password: &str) {
    use base64::Engine as _;
    let mut plain = Vec::with_capacity(user.len() + password.len() + 2);
    plain.push(0);
    plain.extend_from_slice(user.as_bytes());
    plain.push(0);
    plain.extend_from_slice(password.as_bytes());
    out.push_str("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>");
    out.push_str(&base64::engine::general_purpose::STANDARD.encode(plain));
    out.push_str("</auth>");
}

/// In-band registration (XEP-0077) of `user` with `password`.
pub fn register(out: &mut String, id: &str, user: &str, password: &str) {
    out.push_str("<iq type='set' id='");
    out.push_str(id);
    out.push_str("'><query xmlns='jabber:iq:register'><username>");
    out.push_str(&escape(user));
    out.push_str("</username><password>");
    out.push_str(&escape(password));
    out.push_str("</password></query></iq>");
}

/// Binds `resource`.
pub fn bind(out: &mut String, id: &str, resource: &str) {
    out.push_str("<iq type='set' id='");
    out.push_str(id);
    out.push_str("'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>");
    out.push_str(&escape(resource));
    out.push_str("</resource></bind></iq>");
}

/// Turns stream management on.
pub fn enable_sm(out: &mut String) {
    out.push_str("<enable xmlns='urn:xmpp:sm:3'/>");
}

/// Asks the server to start TLS on this connection.
pub fn starttls(out: &mut String) {
    out.push_str("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
}

/// Asks the server how many stanzas it has handled.
pub fn ack_request(out: &mut String) {
    out.push_str("<r xmlns='urn:xmpp:sm:3'/>");
}

/// Tells the server that `handled` of its stanzas were handled (modulo 2^32).
pub fn ack_answer(out: &mut String, handled: u32) {
    out.push_str("<a xmlns='urn:xmpp:sm:3' h='");
    out.push_str(itoa::Buffer::new().format(handled));
    out.push_str("'/>");
}

/// Available presence to the server.
pub fn presence(out: &mut String) {
    out.push_str("<presence/>");
}

/// A message of `kind` (`chat`, `groupchat`) to `to`, its id `id` and its body already in
/// the text XMPP carries (base64).
pub fn message(out: &mut String, to: &str, kind: &str, id: u64, body: &str) {
    out.push_str("<message to='");
    out.push_str(&escape(to));
    out.push_str("' type='");
    out.push_str(kind);
    out.push_str("' id='");
    out.push_str(itoa::Buffer::new().format(id));
    out.push_str("'><body>");
    out.push_str(body);
    out.push_str("</body></message>");
}

/// Joins the room `room` as `nick` (XEP-0045), asking for no history.
pub fn muc_join(out: &mut String, room: &str, nick: &str) {
    out.push_str("<presence to='");
    out.push_str(&escape(room));
    out.push('/');
    out.push_str(&escape(nick));
    out.push_str(
        "'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>",
    );
}

/// Accepts a new room's default configuration as its maker (XEP-0045 10.1.2), unlocking it.
pub fn muc_instant_room(out: &mut String, room: &str) {
    out.push_str("<iq type='set' id='instant' to='");
    out.push_str(&escape(room));
    out.push_str("'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>");
}

/// Leaves the room `room` where this client is `nick`.
pub fn muc_leave(out: &mut String, room: &str, nick: &str) {
    out.push_str("<presence type='unavailable' to='");
    out.push_str(&escape(room));
    out.push('/');
    out.push_str(&escape(nick));
    out.push_str("'/>");
}

/// The answer to an `<iq>` the client does not serve: `service-unavailable`, as RFC 6120
/// asks; a ping (XEP-0199) gets an empty result.
pub fn iq_answer(out: &mut String, iq: &Element) {
    let id = escape(iq.attr("id").unwrap_or(""));
    let to = iq.attr("from").map(escape);
    if iq.child("ping").is_some() {
        out.push_str("<iq type='result' id='");
    } else {
        out.push_str("<iq type='error' id='");
    }
    out.push_str(&id);
    if let Some(to) = &to {
        out.push_str("' to='");
        out.push_str(to);
    }
    if iq.child("ping").is_some() {
        out.push_str("'/>");
    } else {
        out.push_str("'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>");
    }
}

/// The condition an error element carries (a stream error, a SASL failure, a stanza's
/// `<error>`): the name of its first child other than `text`.
pub fn condition(error: &Element) -> Option<&str> {
    error
        .children
        .iter()
        .find(|c| c.name != "text")
        .map(|c| c.name.as_str())
}

/// The condition of a stanza's `<error>`.
pub fn error_condition(stanza: &Element) -> Option<&str> {
    condition(stanza.child("error")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "<?xml version='1.0'?><stream:stream xml:lang='en' from='localhost' \
        xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='x' \
        version='1.0'><stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
        <mechanism>PLAIN</mechanism></mechanisms></stream:features> \
        <message from='a@b/r' type='chat' id='7'><body>a&amp;b&#x41;<![CDATA[<c>]]></body></message>\
        <a h='2' xmlns='urn:xmpp:sm:3'/><r xmlns='urn:xmpp:sm:3'/></stream:stream>";

    fn read_all(chunks: &[&[u8]]) -> Vec<Incoming> {
        let mut buf = BytesMut::new();
        let mut items = Vec::new();
        let mut in_stream = false;
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(item) = next_element(&mut buf, in_stream, 1 << 20).unwrap() {
                in_stream |= item == Incoming::StreamOpen;
                items.push(item);
            }
        }
        assert!(buf.iter().all(u8::is_ascii_whitespace), "left: {buf:?}");
        items
    }

    #[test]
    fn an_element_nested_past_the_limit_is_refused_not_built() {
        let open =
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
        let nested = |n: usize| format!("{}{}", "<a>".repeat(n), "</a>".repeat(n));
        let mut buf = BytesMut::from(format!("{open}{}", nested(MAX_DEPTH)).as_bytes());
        assert_eq!(
            next_element(&mut buf, false, 1 << 20),
            Ok(Some(Incoming::StreamOpen))
        );
        assert!(matches!(
            next_element(&mut buf, true, 1 << 20),
            Ok(Some(Incoming::Element(_)))
        ));
        // Deeper: refused as soon as the depth passes, before the rest has arrived.
        let mut buf = BytesMut::from("<a>".repeat(MAX_DEPTH + 1).as_bytes());
        assert_eq!(
            next_element(&mut buf, true, 1 << 20),
            Err(WireError::TooDeep(MAX_DEPTH))
        );
    }

    #[test]
    fn a_stream_reads_as_the_same_elements_however_its_bytes_are_cut() {
        let whole = read_all(&[SERVER.as_bytes()]);
        assert_eq!(whole.len(), 6, "{whole:?}");
        assert_eq!(whole[0], Incoming::StreamOpen);
        let Incoming::Element(features) = &whole[1] else {
            panic!("{whole:?}")
        };
        assert_eq!(features.name, "features");
        let mechanisms = features.child("mechanisms").unwrap();
        assert!(mechanisms.is_in("urn:ietf:params:xml:ns:xmpp-sasl"));
        assert_eq!(mechanisms.children[0].text, "PLAIN");
        let Incoming::Element(message) = &whole[2] else {
            panic!("{whole:?}")
        };
        assert_eq!(message.attr("id"), Some("7"));
        assert_eq!(message.child("body").unwrap().text, "a&bA<c>");
        let Incoming::Element(a) = &whole[3] else {
            panic!("{whole:?}")
        };
        assert_eq!((a.name.as_str(), a.attr("h")), ("a", Some("2")));
        assert!(a.is_in(SM));
        assert_eq!(whole[5], Incoming::StreamEnd);
        let bytes = SERVER.as_bytes();
        for cut in 1..bytes.len() {
            assert_eq!(
                read_all(&[&bytes[..cut], &bytes[cut..]]),
                whole,
                "cut at {cut}"
            );
        }
        let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(read_all(&one_by_one), whole);
    }

    #[test]
    fn what_is_not_xmpp_or_too_large_is_an_error() {
        for greeting in [
            &b"<html><body>"[..],
            b"SSH-2.0-OpenSSH_9.2\r\n",
            b"HTTP/1.1 400",
        ] {
            let mut buf = BytesMut::from(greeting);
            assert!(
                matches!(
                    next_element(&mut buf, false, 1 << 20),
                    Err(WireError::NotXmpp(_))
                ),
                "{greeting:?}"
            );
        }
        let mut buf = BytesMut::from(&b"<stream:stream><message><body>"[..]);
        assert_eq!(
            next_element(&mut buf, false, 1 << 20),
            Ok(Some(Incoming::StreamOpen))
        );
        buf.extend_from_slice(&[b'x'; 100]);
        assert_eq!(
            next_element(&mut buf, true, 64),
            Err(WireError::TooLarge(64))
        );
    }

    #[test]
    fn what_the_client_writes_reads_back() {
        let mut out = String::new();
        stream_open(&mut out, "example.org");
        message(&mut out, "g-1@muc.example.org", "groupchat", 42, "AAE=");
        muc_join(&mut out, "g-1@muc.example.org", "7");
        ack_answer(&mut out, u32::MAX);
        register(&mut out, "reg", "a<b", "p'w");
        let items = read_all(&[out.as_bytes()]);
        let elements: Vec<&Element> = items
            .iter()
            .filter_map(|i| match i {
                Incoming::Element(e) => Some(e),
                _ => None,
            })
            .collect();
        assert_eq!(elements[0].attr("to"), Some("g-1@muc.example.org"));
        assert_eq!(elements[0].attr("id"), Some("42"));
        assert_eq!(elements[0].child("body").unwrap().text, "AAE=");
        assert_eq!(elements[1].attr("to"), Some("g-1@muc.example.org/7"));
        assert_eq!(elements[2].attr("h"), Some("4294967295"));
        let query = elements[3].child("query").unwrap();
        assert_eq!(query.child("username").unwrap().text, "a<b");
        assert_eq!(query.child("password").unwrap().text, "p'w");
        let iq: Element = Element {
            name: "iq".into(),
            attrs: vec![
                ("id".into(), "p1".into()),
                ("from".into(), "localhost".into()),
            ],
            children: vec![Element {
                name: "ping".into(),
                ..Element::default()
            }],
            text: String::new(),
        };
        let mut answer = String::new();
        iq_answer(&mut answer, &iq);
        assert_eq!(answer, "<iq type='result' id='p1' to='localhost'/>");
    }
}
