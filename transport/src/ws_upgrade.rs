//! The first look at a WebSocket port's request: a request that is not a WebSocket upgrade (a
//! browser, `curl`, a health check) is answered `426 Upgrade Required`, and bytes that cannot
//! begin an HTTP request (a client of another transport: a frame's length, a TLS ClientHello)
//! `400 Bad Request` as soon as they come, each with a line saying what the port speaks, where
//! the WebSocket library would wait for a whole request head and close without a word. The
//! head read for that look is given back to the handshake unchanged, through [`Replayed`].

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::TransportError;

/// Longest request head read before the handshake: tungstenite's own limit on a request's
/// headers is of this order, and a head past it is no upgrade this server would take.
const MAX_HEAD: usize = 16 * 1024;

/// Longest HTTP method a request may begin with (`OPTIONS`, `CONNECT` and the like are shorter).
const MAX_METHOD: usize = 16;

/// What a request that is not a WebSocket upgrade is told, after the status line.
fn what_the_port_speaks(scheme: &str) -> String {
    format!(
        "This port speaks imbench's protocol over WebSocket ({scheme}, binary messages); \
         connect with a WebSocket client, e.g. `imbench run --transport {scheme}`.\n"
    )
}

/// A stream whose first bytes, already read, are handed out again before the rest.
pub(crate) struct Replayed<S> {
    head: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Replayed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.at < self.head.len() {
            let n = (self.head.len() - self.at).min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.head[at..at + n]);
            self.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replayed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Reads the request head from `stream`, for the WebSocket port of `scheme` (`ws` or `wss`):
/// a WebSocket upgrade comes back with its head to be read again, anything else is answered
/// and refused.
pub(crate) async fn expect_upgrade<S>(
    mut stream: S,
    scheme: &str,
) -> Result<Replayed<S>, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    while !has_end_of_head(&head) && head.len() < MAX_HEAD {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            // Closed before a whole head: the handshake says so in its own words.
            break;
        }
        head.extend_from_slice(&chunk[..n]);
        if !may_begin_http(&head) {
            answer(
                &mut stream,
                "400 Bad Request",
                "",
                &what_the_port_speaks(scheme),
            )
            .await;
            return Err(TransportError::WebSocket(
                "bytes that cannot begin an HTTP request (a client of another transport?): answered 400"
                    .into(),
            ));
        }
    }
    if has_end_of_head(&head) && !asks_for_websocket(&head) {
        let body = what_the_port_speaks(scheme);
        answer(
            &mut stream,
            "426 Upgrade Required",
            "Upgrade: websocket\r\n",
            &body,
        )
        .await;
        return Err(TransportError::NotAnUpgrade);
    }
    Ok(Replayed {
        head,
        at: 0,
        inner: stream,
    })
}

/// Writes an HTTP answer that closes the connection; the peer may be gone already, and the
/// refusal is the same either way.
async fn answer<S: AsyncWrite + Unpin>(stream: &mut S, status: &str, headers: &str, body: &str) {
    let answer = format!(
        "HTTP/1.1 {status}\r\n{headers}Connection: close\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Whether `head` may be the start of an HTTP request: a method (letters) and a space, or
/// the first letters of one.
fn may_begin_http(head: &[u8]) -> bool {
    let method = head.iter().take_while(|b| b.is_ascii_uppercase()).count();
    match head.get(method) {
        Some(b' ') => method > 0,
        Some(_) => false,
        None => method <= MAX_METHOD,
    }
}

fn has_end_of_head(head: &[u8]) -> bool {
    head.windows(4).any(|w| w == b"\r\n\r\n")
}

/// Whether the head has an `Upgrade` header naming `websocket` (names and values compared
/// without case, as HTTP has them).
fn asks_for_websocket(head: &[u8]) -> bool {
    head.split(|&b| b == b'\n').skip(1).any(|line| {
        let line = String::from_utf8_lossy(line);
        match line.split_once(':') {
            Some((name, value)) => {
                name.trim().eq_ignore_ascii_case("upgrade")
                    && value
                        .split(',')
                        .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
            }
            None => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upgrade_header_is_found_whatever_its_case() {
        assert!(asks_for_websocket(
            b"GET / HTTP/1.1\r\nHost: x\r\nUPGRADE: WebSocket\r\n\r\n"
        ));
        assert!(asks_for_websocket(
            b"GET / HTTP/1.1\r\nupgrade: h2c, websocket\r\n\r\n"
        ));
        assert!(!asks_for_websocket(
            b"GET / HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"
        ));
        assert!(!asks_for_websocket(
            b"GET /upgrade:websocket HTTP/1.1\r\nHost: x\r\n\r\n"
        ));
    }

    #[test]
    fn the_start_of_a_request_is_told_from_other_bytes() {
        for http in [&b"G"[..], b"GET", b"GET ", b"OPTIONS * HTTP/1.1"] {
            assert!(may_begin_http(http), "{http:?}");
        }
        for other in [
            &b"\0\0\0("[..],
            b"\x16\x03\x01",
            b"get /",
            b" GET",
            b"GETXXXXXXXXXXXXXXXXXX",
        ] {
            assert!(!may_begin_http(other), "{other:?}");
        }
    }

    #[tokio::test]
    async fn a_plain_request_is_answered_426_and_an_upgrade_is_read_again_whole() {
        let (mut client, server) = tokio::io::duplex(4096);
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(matches!(
            expect_upgrade(server, "wss").await,
            Err(TransportError::NotAnUpgrade)
        ));
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 426 "), "{answer}");
        assert!(answer.ends_with("--transport wss`.\n"), "{answer}");

        // A frame's length, where a method should be: answered at once, not at a timeout.
        let (mut client, server) = tokio::io::duplex(4096);
        client.write_all(&[0, 0, 0, 40, 1]).await.unwrap();
        assert!(expect_upgrade(server, "ws").await.is_err());
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");

        let (mut client, server) = tokio::io::duplex(4096);
        let request = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\nafter";
        client.write_all(request).await.unwrap();
        let mut replayed = expect_upgrade(server, "ws").await.unwrap();
        drop(client);
        let mut again = Vec::new();
        replayed.read_to_end(&mut again).await.unwrap();
        assert_eq!(again, request);
    }
}
