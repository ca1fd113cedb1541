//! The path end to end, with real namespaces, TUN devices and kernel sockets: a configured
//! delay shows in the round trip, loss takes its share and TCP recovers from it with every
//! byte, and nothing is left behind once the path is down.
//!
//! Ignored by plain `cargo test` because it needs root; `.ci/run` (root) runs it with
//! `cargo test -p imbench-netpath --test path -- --ignored`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use imbench_netpath::{netns, LinkSpec, NetPath, PathError, PathSpec, CLIENT_ADDR, SERVER_ADDR};

fn io(e: std::io::Error) -> PathError {
    PathError::Namespace(e.to_string())
}

/// A UDP echo on the server side and a socket on the client side to ping it from.
fn echo(path: &NetPath) -> (UdpSocket, SocketAddr) {
    let server = path
        .server_namespace()
        .run(|| UdpSocket::bind((SERVER_ADDR, 0)).map_err(io))
        .expect("a socket on the server side");
    let addr = server.local_addr().unwrap();
    server
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let idle = Instant::now();
        // Bounded: the test's pings take seconds; the echo stops after 60 s whatever happens.
        while idle.elapsed() < Duration::from_secs(60) {
            if let Ok((n, from)) = server.recv_from(&mut buf) {
                if &buf[..n] == b"stop" {
                    return;
                }
                let _ = server.send_to(&buf[..n], from);
            }
        }
    });
    let client = path
        .client_namespace()
        .run(|| UdpSocket::bind((CLIENT_ADDR, 0)).map_err(io))
        .expect("a socket on the client side");
    (client, addr)
}

/// Sends `count` numbered pings one after the other: the round trips of those answered.
fn ping(client: &UdpSocket, to: SocketAddr, count: u32, wait: Duration) -> Vec<Duration> {
    client.set_read_timeout(Some(wait)).unwrap();
    let mut rtts = Vec::new();
    let mut buf = [0u8; 64];
    for i in 0..count {
        let sent = Instant::now();
        client.send_to(&i.to_be_bytes(), to).unwrap();
        // Stale answers (to a ping given up on) are skipped.
        while let Ok(n) = client.recv(&mut buf) {
            if n == 4 && buf[..4] == i.to_be_bytes() {
                rtts.push(sent.elapsed());
                break;
            }
        }
    }
    let _ = client.send_to(b"stop", to);
    rtts
}

#[test]
#[ignore = "needs root; .ci/run runs it"]
fn a_configured_delay_shows_in_the_round_trip() {
    let path = NetPath::up(
        &PathSpec::symmetric(LinkSpec {
            delay: Duration::from_millis(20),
            ..LinkSpec::default()
        }),
        1,
    )
    .expect("the path comes up");
    let (client, to) = echo(&path);
    let mut rtts = ping(&client, to, 40, Duration::from_secs(1));
    assert_eq!(rtts.len(), 40, "no loss configured");
    rtts.sort();
    let (min, median) = (rtts[0], rtts[rtts.len() / 2]);
    assert!(min >= Duration::from_millis(40), "never early: {min:?}");
    assert!(
        median <= Duration::from_millis(44),
        "within 10 % of 40 ms: median {median:?}"
    );
    let (up, down) = path.stats();
    assert!(
        up.delivered >= 40 && down.delivered >= 40,
        "{up:?} {down:?}"
    );
}

#[test]
#[ignore = "needs root; .ci/run runs it"]
fn loss_takes_its_share_and_is_counted() {
    let path = NetPath::up(
        &PathSpec {
            up: LinkSpec {
                loss: 0.2,
                ..LinkSpec::default()
            },
            down: LinkSpec::default(),
            shared: false,
        },
        2,
    )
    .expect("the path comes up");
    let (client, to) = echo(&path);
    let answered = ping(&client, to, 500, Duration::from_millis(100)).len();
    let missing = 500 - answered;
    assert!((60..=140).contains(&missing), "{missing} of 500 lost");
    let (up, down) = path.stats();
    // Every missing answer is a ping the link lost on the way up (the stop message may be too).
    assert!(
        up.lost == missing as u64 || up.lost == missing as u64 + 1,
        "{up:?} vs {missing}"
    );
    assert_eq!(down.lost, 0);
}

#[test]
#[ignore = "needs root; .ci/run runs it"]
fn tcp_delivers_every_byte_through_a_lossy_path() {
    let path = NetPath::up(
        &PathSpec::symmetric(LinkSpec {
            delay: Duration::from_millis(5),
            loss: 0.02,
            ..LinkSpec::default()
        }),
        3,
    )
    .expect("the path comes up");
    let listener = path
        .server_namespace()
        .run(|| TcpListener::bind((SERVER_ADDR, 0)).map_err(io))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    const BYTES: usize = 1 << 20;
    let receiver = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut data = Vec::new();
        s.read_to_end(&mut data).map(|_| data)
    });
    let mut stream = path
        .client_namespace()
        .run(move || TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(io))
        .expect("connects over the path");
    let sent: Vec<u8> = (0..BYTES).map(|i| (i % 251) as u8).collect();
    stream.write_all(&sent).unwrap();
    drop(stream);
    let got = receiver.join().unwrap().expect("reads to the end");
    assert!(
        got == sent,
        "{} of {BYTES} bytes, or not the same",
        got.len()
    );
    let (up, down) = path.stats();
    assert!(
        up.lost > 0 && down.lost > 0,
        "loss was applied: {up:?} {down:?}"
    );
}

#[test]
#[ignore = "needs root; .ci/run runs it"]
fn nothing_is_left_once_the_path_is_down() {
    let path = NetPath::up(&PathSpec::default(), 4).expect("the path comes up");
    let names = [
        path.server_namespace().name().to_string(),
        path.client_namespace().name().to_string(),
    ];
    for n in &names {
        assert!(netns::existing().contains(n), "{n} is up");
    }
    drop(path);
    // Other tests of this process may have paths up; this one's two are gone.
    for n in &names {
        assert!(!netns::existing().contains(n), "{n} is left");
    }
}
