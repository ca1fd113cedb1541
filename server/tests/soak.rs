//! The soak: honest clients keep chatting for minutes while every attack of `attacks.rs` runs
//! beside them, against one server binary. The server's resident memory must stay under the
//! bound its limits document, and the honest clients must lose nothing.
//!
//! Ignored by default (it is long); `.ci/run` runs it for a short while, and
//! `IMBENCH_SOAK_SECS=300 cargo test --release -p imbench-server --test soak -- --ignored
//! --nocapture` for five minutes.

mod util;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use imbench_proto::{Dest, Frame};
use imbench_transport::Transport;
use util::attack::{flood_streams, login, non_reader, partial_ws_message, send_to};
use util::process::{memory_kib, start_with_args, Server};

const QUEUED_MIB: u64 = 64;
const HOLD_MIB: u64 = 64;
const SESSION_QUEUE_MIB: u64 = 8;
/// Users whose sessions the attacks end with messages still queued: each may leave one
/// session's queue in the hold past its bound.
const LEAVING_USERS: u64 = 40;
/// Per connection beyond its queued and held messages: a QUIC connection's state and send
/// buffer, a session's write buffer, read buffers (measured at well under this).
const PER_CONNECTION_KIB: u64 = 256;
/// Connections open at once at most: the honest pairs' and the attacks' (generous).
const CONNECTIONS: u64 = 400;
/// Honest pairs (a sender over TCP, a reader over QUIC) and each sender's rate a second.
const PAIRS: u64 = 10;
const HONEST_RATE: u64 = 50;

#[derive(Default)]
struct Honest {
    acked: AtomicU64,
    refused: AtomicU64,
    delivered: AtomicU64,
}

/// One honest sender to one honest reader, `HONEST_RATE` messages a second until `stop`; then
/// the reader reads until nothing comes for 5 s, and every acked message must have arrived.
async fn honest_pair(server: Arc<Server>, n: u64, honest: Arc<Honest>, stop: Arc<AtomicBool>) {
    let to = 20_000 + n;
    let mut sender = login(&server, Transport::Tcp, 10_000 + n).await;
    let mut reader = login(&server, Transport::Quic, to).await;
    let reading = tokio::spawn(async move {
        let mut got = HashSet::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(5), reader.reader.read_frame()).await {
                Ok(Ok(Some(Frame::Deliver { msg_id, .. }))) => {
                    got.insert(msg_id);
                }
                Ok(Ok(Some(_))) => {}
                _ => return got,
            }
        }
    });
    let body = Bytes::from(vec![b'h'; 64]);
    let mut acked = HashSet::new();
    let mut next = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(1_000 / HONEST_RATE));
    while !stop.load(Relaxed) {
        tick.tick().await;
        let send = Frame::Send {
            msg_id: next,
            to: Dest::User(to),
            body: body.clone(),
        };
        next += 1;
        sender.writer.write_frame(&send).await.expect("honest send");
        match util::read(&mut sender).await {
            Some(Frame::Ack { msg_id }) => {
                acked.insert(msg_id);
            }
            Some(Frame::Reject { code, .. }) => {
                eprintln!("honest sender {n}: refused {}", code.name());
                honest.refused.fetch_add(1, Relaxed);
            }
            other => panic!("honest sender {n}: {other:?}"),
        }
    }
    let got = reading.await.expect("reader");
    honest.acked.fetch_add(acked.len() as u64, Relaxed);
    honest
        .delivered
        .fetch_add(acked.intersection(&got).count() as u64, Relaxed);
}

/// Runs `attack` again and again until `stop`.
fn again<F, Fut>(
    stop: &Arc<AtomicBool>,
    rounds: &Arc<AtomicU64>,
    attack: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(u64) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let (stop, rounds) = (stop.clone(), rounds.clone());
    tokio::spawn(async move {
        let mut round = 0;
        while !stop.load(Relaxed) {
            attack(round).await;
            round += 1;
            rounds.fetch_add(1, Relaxed);
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long: .ci/run runs it for a short while"]
async fn honest_clients_lose_nothing_and_memory_stays_bounded_beside_every_attack() {
    let secs: u64 = std::env::var("IMBENCH_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(180);
    let server = Arc::new(start_with_args(
        "soak",
        &[
            "--ws",
            "127.0.0.1:0",
            "--max-queued-bytes",
            &format!("{QUEUED_MIB}MiB"),
            "--hold-bytes",
            &format!("{HOLD_MIB}MiB"),
            "--session-queue-bytes",
            &format!("{SESSION_QUEUE_MIB}MiB"),
            "--write-timeout",
            "2s",
            "--hello-timeout",
            "2s",
        ],
    ));
    let pid = server.child.id();
    let (_, start_kib) = memory_kib(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let honest = Arc::new(Honest::default());
    let pairs: Vec<_> = (0..PAIRS)
        .map(|n| tokio::spawn(honest_pair(server.clone(), n, honest.clone(), stop.clone())))
        .collect();

    let big = Bytes::from(vec![7u8; 60 * 1024]);
    let mut attacks = Vec::new();
    // Tiny held messages read beside large ones, to a new offline user each round.
    let s = server.clone();
    attacks.push(again(&stop, &rounds, move |round| {
        let (s, big) = (s.clone(), big.clone());
        async move {
            let mut conn = login(&s, Transport::Tcp, 1).await;
            for i in 0..200u64 {
                let _ = conn.writer.queue(&Frame::Send {
                    msg_id: i * 2,
                    to: Dest::Group(999),
                    body: big.clone(),
                });
                let _ = conn.writer.queue(&Frame::Send {
                    msg_id: i * 2 + 1,
                    to: Dest::User(100_000 + round % 50),
                    body: Bytes::from_static(b"x"),
                });
                if conn.writer.flush().await.is_err() {
                    return;
                }
            }
            util::attack::answers(&mut conn, 400).await;
        }
    }));
    // A user that connects without reading while a sender writes to it.
    let s = server.clone();
    attacks.push(again(&stop, &rounds, move |round| {
        let s = s.clone();
        async move {
            let user = 200_000 + round % 20;
            let mut sender = login(&s, Transport::Tcp, 2).await;
            let body = Bytes::from(vec![3u8; 16 * 1024]);
            let attacker = non_reader(&s, user).await;
            send_to(&mut sender, round * 1_000, 300, Dest::User(user), &body).await;
            drop(attacker);
        }
    }));
    // Clients that never read and a client that stalls, each sent 64 KiB messages.
    let s = server.clone();
    attacks.push(again(&stop, &rounds, move |round| {
        let s = s.clone();
        async move {
            let user = 300_000 + round % 20;
            let mut sender = login(&s, Transport::Tcp, 3).await;
            let body = Bytes::from(vec![5u8; 64 * 1024]);
            let _stalled = non_reader(&s, user).await;
            send_to(&mut sender, round * 1_000, 200, Dest::User(user), &body).await;
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    }));
    // QUIC connections that never say Hello, and logged-in ones announcing frames.
    let s = server.clone();
    attacks.push(again(&stop, &rounds, move |round| {
        let s = s.clone();
        async move {
            let megabyte = vec![0u8; 1 << 20];
            let conn = s
                .connector(Transport::Quic)
                .connect(s.addr(Transport::Quic), "localhost")
                .await;
            if let Ok(conn) = conn {
                flood_streams(&conn.link, 64, &megabyte).await;
            }
            let conn = login(&s, Transport::Quic, 400_000 + round % 20).await;
            flood_streams(&conn.link, 64, &(64u32 * 1024).to_be_bytes()).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }));
    // Unfinished WebSocket messages and idle TCP connections, never a Hello.
    let s = server.clone();
    attacks.push(again(&stop, &rounds, move |_| {
        let s = s.clone();
        async move {
            let mut held = Vec::new();
            for _ in 0..50 {
                held.push(partial_ws_message(s.addr(Transport::Ws), 1536 * 1024, 1 << 20).await);
                if let Ok(tcp) = tokio::net::TcpStream::connect(s.addr(Transport::Tcp)).await {
                    held.push(tcp);
                }
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    }));

    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut peak_kib = 0;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        peak_kib = peak_kib.max(memory_kib(pid).1);
    }
    stop.store(true, Relaxed);
    for p in pairs {
        p.await.expect("honest pair");
    }
    for a in attacks {
        a.abort();
    }
    // The documented bound: queues and holds at their limits, one session queue per user
    // that left with messages queued, and each connection's own cost.
    let bound_kib = start_kib
        + (QUEUED_MIB + HOLD_MIB + LEAVING_USERS * SESSION_QUEUE_MIB) * 1024
        + CONNECTIONS * PER_CONNECTION_KIB;
    let (acked, delivered, refused) = (
        honest.acked.load(Relaxed),
        honest.delivered.load(Relaxed),
        honest.refused.load(Relaxed),
    );
    eprintln!(
        "soak {secs} s: {} attack rounds; honest: {acked} acked, {delivered} delivered, {refused} refused; server {start_kib} KiB at start, peak {peak_kib} KiB, bound {bound_kib} KiB",
        rounds.load(Relaxed)
    );
    assert!(acked > 0, "the honest clients got nothing through");
    assert_eq!(delivered, acked, "honest messages acked and not delivered");
    assert!(
        peak_kib <= bound_kib,
        "server peak {peak_kib} KiB over the bound {bound_kib} KiB"
    );
}
