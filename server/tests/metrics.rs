//! The server's Prometheus endpoint (`--metrics-addr`), against the binary: a scrape shows what
//! the server did (a session opened, a message held and the bytes it is charged), in the
//! OpenMetrics text a Prometheus server reads; other requests get plain HTTP errors.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use imbench_proto::Dest;
use imbench_transport::Transport;
use util::attack::{login, send_to};
use util::process::{start_with_args, Server};

/// The endpoint's address from the banner.
fn metrics_addr(server: &Server) -> String {
    server
        .banner_line("metrics for Prometheus: http://")
        .trim_end_matches("/metrics")
        .to_string()
}

/// Sends `request` as is; returns the whole answer.
fn http(addr: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("an answer");
    answer
}

/// The value of sample `name` in a scrape.
fn sample(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in\n{scrape}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_shows_sessions_holds_and_their_bytes() {
    let server = start_with_args("metrics", &["--metrics-addr", "127.0.0.1:0"]);
    let addr = metrics_addr(&server);
    let scrape = |path: &str| http(&addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
    let before = scrape("/metrics");
    assert!(before.starts_with("HTTP/1.1 200 OK\r\n"), "{before}");
    assert!(before.contains("content-type: application/openmetrics-text"));
    assert!(before.trim_end().ends_with("# EOF"), "{before}");
    assert_eq!(sample(&before, "imbench_server_sessions_opened_total"), 0.0);
    assert_eq!(sample(&before, "imbench_server_held_bytes"), 0.0);

    let mut sender = login(&server, Transport::Tcp, 1).await;
    let (acked, _) = send_to(
        &mut sender,
        1,
        3,
        Dest::User(77),
        &Bytes::from_static(b"hi"),
    )
    .await;
    assert_eq!(acked, 3);
    let after = scrape("/metrics?from=test");
    assert_eq!(sample(&after, "imbench_server_sessions_opened_total"), 1.0);
    assert_eq!(sample(&after, "imbench_server_sessions_active"), 1.0);
    assert_eq!(sample(&after, "imbench_server_held_total"), 3.0);
    assert!(sample(&after, "imbench_server_held_bytes") >= 3.0 * 2.0);
    assert!(sample(&after, "imbench_server_resident_memory_bytes") > 1e6);
    assert!(
        after.contains("# HELP imbench_server_hold_full Messages refused because a hold was full.")
    );

    assert!(scrape("/").starts_with("HTTP/1.1 404"));
    let slash = scrape("/metrics/");
    assert!(slash.starts_with("HTTP/1.1 200 OK\r\n"), "{slash}");
    let head = http(&addr, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "headers only: {head}");
    assert!(!head.contains("content-length"), "{head}");
    let post = http(
        &addr,
        "POST /metrics HTTP/1.1\r\nHost: x\r\ncontent-length: 0\r\n\r\n",
    );
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    assert!(post.contains("allow: GET, HEAD"), "{post}");
    assert!(http(&addr, "\x16\x03\x01 not http\r\n\r\n").starts_with("HTTP/1.1 400"));
}

/// A port already taken is said at start, naming the flag.
#[test]
fn a_metrics_address_in_use_is_refused_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let dir = std::env::temp_dir().join(format!("imbench-metrics-taken-{}", std::process::id()));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_imbench-server"))
        .args([
            "--tcp",
            "127.0.0.1:0",
            "--metrics-addr",
            &addr,
            "--client-dir",
        ])
        .arg(&dir)
        .output()
        .expect("runs");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("--metrics-addr"), "{stderr}");
}

/// Connections that never send a request hold the scrape slots until their time is up; one
/// more is told 503 at once instead of being reset, and a bare port is taken for loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scraper_past_the_open_slots_is_told_503() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = probe.local_addr().expect("addr").port();
    drop(probe);
    let server = start_with_args("metrics-busy", &["--metrics-addr", &port.to_string()]);
    let addr = metrics_addr(&server);
    assert_eq!(addr, format!("127.0.0.1:{port}"));
    let idle: Vec<TcpStream> = (0..imbench_server::scrape::MAX_SCRAPES)
        .map(|_| TcpStream::connect(&addr).expect("connects"))
        .collect();
    // The endpoint accepts them in turn; give it a moment to take all of them.
    std::thread::sleep(Duration::from_millis(300));
    let busy = http(&addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(busy.starts_with("HTTP/1.1 503"), "{busy}");
    drop(idle);
}
