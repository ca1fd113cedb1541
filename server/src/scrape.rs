//! A Prometheus endpoint: `GET /metrics` over plain HTTP/1.1, answered with a registry's
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

/// Scrapes served at once; more connections are closed at once.
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
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of files, for instance: try again shortly rather than spin.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
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
    let path = path.split('?').next().unwrap_or_default();
    let response = match (method.as_str(), path) {
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
        ("", _) => response("400 Bad Request", "text/plain", "not an HTTP request\n"),
        _ => response("405 Method Not Allowed", "text/plain", "GET only\n"),
    };
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

fn response(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}
