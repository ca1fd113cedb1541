//! A Prometheus endpoint: `GET /metrics` (and `HEAD`) over plain HTTP/1.1, answered with a registry's
//! figures as they are at that moment (OpenMetrics text). imbench-server serves its own
//! counters on it (`--metrics-addr`); the generator serves its live figures the same way.
//!
//! Scrapes are small and rare: each connection gets one answer and is closed, at most
//! [`MAX_SCRAPES`] are served at once, and a request must arrive whole within
//! [`REQUEST_TIMEOUT`] and [`MAX_REQUEST`] bytes, so that the endpoint costs nothing a client
//! can grow.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// What a scrape answer is.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The path the figures are served on.
pub const PATH: &str = "/metrics";

/// Scrapes served at once; more connections are answered 503 and closed at once.
pub const MAX_SCRAPES: usize = 16;

/// Time a scraper has to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest request read.
pub const MAX_REQUEST: usize = 8 * 1024;

/// A running endpoint; stops when dropped.
#[derive(Debug)]
pub struct MetricsEndpoint {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsEndpoint {
    /// Binds `addr` and serves `registry` on it in the background.
    pub async fn start(addr: SocketAddr, registry: Registry) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let registry = Arc::new(registry);
        let task = tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(MAX_SCRAPES));
            let turned_away = Arc::new(Semaphore::new(MAX_SCRAPES));
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of files, for instance: try again shortly rather than spin.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    // Said rather than reset, so that a scraper logs why; as many more again
                    // are told, each for at most a second, and past those the connection is
                    // closed: the endpoint's cost stays bounded.
                    if let Ok(permit) = turned_away.clone().try_acquire_owned() {
                        tokio::spawn(async move {
                            let _ = tokio::time::timeout(BUSY_ANSWER_TIME, say_busy(stream)).await;
                            drop(permit);
                        });
                    }
                    continue;
                };
                let registry = registry.clone();
                tokio::spawn(async move {
                    if let Err(e) = answer(stream, &registry).await {
                        tracing::debug!("metrics scrape: {e}");
                    }
                    drop(permit);
                });
            }
        });
        Ok(Self { addr, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address to scrape.
    pub fn url(&self) -> String {
        format!("http://{}{PATH}", self.addr)
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request and answers it.
async fn answer(mut stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(1024);
    let head = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut chunk = [0u8; 1024];
        loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(None);
            }
            request.extend_from_slice(&chunk[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut parsed = httparse::Request::new(&mut headers);
            match parsed.parse(&request) {
                Ok(httparse::Status::Complete(_)) => {
                    return Ok(Some((
                        parsed.method.unwrap_or_default().to_string(),
                        parsed.path.unwrap_or_default().to_string(),
                    )));
                }
                Ok(httparse::Status::Partial) if request.len() < MAX_REQUEST => {}
                _ => return Ok(Some((String::new(), String::new()))),
            }
        }
    })
    .await;
    let (method, path) = match head {
        Ok(Ok(Some(head))) => head,
        Ok(Ok(None)) | Err(_) => return Ok(()),
        Ok(Err(e)) => return Err(e),
    };
    let response = match (method.as_str(), target_path(&path)) {
        ("HEAD", PATH) => head_only(&response("200 OK", CONTENT_TYPE, "")),
        ("GET", PATH) => {
            let mut body = String::new();
            match prometheus_client::encoding::text::encode(&mut body, registry) {
                Ok(()) => response("200 OK", CONTENT_TYPE, &body),
                Err(_) => response(
                    "500 Internal Server Error",
                    "text/plain",
                    "encoding failed\n",
                ),
            }
        }
        ("GET", _) => response(
            "404 Not Found",
            "text/plain; charset=utf-8",
            &format!("the figures are at {PATH}\n"),
        ),
        ("HEAD", _) => head_only(&response("404 Not Found", "text/plain; charset=utf-8", "")),
        ("", _) => response("400 Bad Request", "text/plain", "not an HTTP request\n"),
        _ => response(
            "405 Method Not Allowed\r\nallow: GET, HEAD",
            "text/plain",
            "GET or HEAD only\n",
        ),
    };
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// The answer when [`MAX_SCRAPES`] are already being served.
const BUSY: &str = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
                    content-length: 22\r\nconnection: close\r\nretry-after: 1\r\n\r\n\
                    too many scrapes open\n";

/// Time a connection told [`BUSY`] is kept for its request to be read, so that closing it
/// does not reset the answer away.
const BUSY_ANSWER_TIME: Duration = Duration::from_secs(1);

/// Answers [`BUSY`] and reads what the client sent (up to [`MAX_REQUEST`]) until it closes.
/// The path a request's target names: its origin form (`/metrics`), or the path of its
/// absolute form (`http://host:9090/metrics`, which a client speaking through a proxy sends
/// and an HTTP/1.1 server must take), without its query or a trailing slash (`/metrics/` is
/// what a hand-typed URL often has; it means the same).
fn target_path(target: &str) -> &str {
    let path = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |at| &rest[at..]),
        None => target,
    };
    let path = path.split('?').next().unwrap_or_default();
    if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    }
}

async fn say_busy(mut stream: TcpStream) -> std::io::Result<()> {
    stream.write_all(BUSY.as_bytes()).await?;
    stream.shutdown().await?;
    let mut chunk = [0u8; 1024];
    let mut read = 0;
    while read < MAX_REQUEST {
        match stream.read(&mut chunk).await? {
            0 => break,
            n => read += n,
        }
    }
    Ok(())
}

/// A HEAD answer: the headers of `full` without a length (the body is not sent).
fn head_only(full: &str) -> String {
    let head = full.split("\r\n\r\n").next().unwrap_or_default();
    let head: Vec<&str> = head
        .split("\r\n")
        .filter(|l| !l.starts_with("content-length"))
        .collect();
    format!("{}\r\n\r\n", head.join("\r\n"))
}

/// `--metrics-addr`'s value: `HOST:PORT`, or a bare port for that port on 127.0.0.1 (loopback
/// only: give `0.0.0.0:PORT` to be scraped from elsewhere).
pub fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let bare = text.trim_start_matches(':');
    if let Ok(port) = bare.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    // Digits alone are a port, out of range.
    if !bare.is_empty() && bare.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("{text:?} is no port (0 to 65535)"));
    }
    crate::listen_addr::parse(text).map_err(|e| format!("{e} (a port alone is one on 127.0.0.1)"))
}

fn response(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_target_in_any_form_names_its_path() {
        for (target, path) in [
            ("/metrics", "/metrics"),
            ("/metrics/", "/metrics"),
            ("/metrics?x=1", "/metrics"),
            ("http://127.0.0.1:9090/metrics", "/metrics"),
            ("http://[::1]:9090/metrics/?x", "/metrics"),
            ("http://host", "/"),
            ("/", "/"),
            ("/other", "/other"),
        ] {
            assert_eq!(target_path(target), path, "{target}");
        }
    }

    #[test]
    fn a_listen_address_may_be_a_port_an_address_or_a_host_name() {
        assert_eq!(
            parse_listen_addr("9464"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 9464)))
        );
        assert_eq!(
            parse_listen_addr(":9464"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 9464)))
        );
        assert_eq!(
            parse_listen_addr("[::1]:9464"),
            Ok(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 9464)))
        );
        let named = parse_listen_addr("localhost:9464").expect("localhost resolves");
        assert!(named.ip().is_loopback() && named.port() == 9464, "{named}");
        let e = parse_listen_addr("localhost").unwrap_err();
        assert!(e.contains("HOST:PORT"), "{e}");
        let e = parse_listen_addr("99999").unwrap_err();
        assert_eq!(e, "\"99999\" is no port (0 to 65535)");
        let e = parse_listen_addr("300.1.1.1:80").unwrap_err();
        assert!(e.contains("300.1.1.1 is no IPv4 address"), "{e}");
    }
}
