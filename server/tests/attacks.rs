//! Attacks on the server's memory and fairness bounds, each against the server binary in a
//! process of its own, bounded in count and time. Each test names the bound it checks, drives
//! a client that misbehaves in one way, and measures the server's resident memory or an honest
//! client's service beside it.

mod util;

use std::time::Duration;

use bytes::Bytes;
use imbench_proto::{Dest, ErrorCode, Frame};
use imbench_transport::{FramedConnection, Transport};
use util::process::{start_with_args, Server};
use util::read;

/// An offline user the attacks send to.
const OFFLINE: u64 = 77;

/// Reads until `n` answers (Ack or Reject) have come; returns how many were acks.
async fn answers(conn: &mut FramedConnection, n: usize) -> usize {
    let (mut got, mut acks) = (0, 0);
    while got < n {
        match read(conn).await {
            Some(Frame::Ack { .. }) => {
                acks += 1;
                got += 1;
            }
            Some(Frame::Reject { .. }) => got += 1,
            Some(_) => {}
            None => panic!("closed after {got} of {n} answers"),
        }
    }
    acks
}

async fn login(server: &Server, transport: Transport, user: u64) -> FramedConnection {
    util::login(
        &server.connector(transport),
        server.addr(transport),
        &server.secret(),
        user,
    )
    .await
}

/// A held body is charged for what it keeps alive. A tiny message read in the same buffer as a
/// large one used to be a slice of that buffer, so holding it kept the whole buffer: 3,000
/// held one-byte messages cost the server about 180 MiB while the hold counted 200 KB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_held_messages_do_not_pin_their_read_buffers() {
    const ROUNDS: u64 = 3_000;
    let server = start_with_args("attack-pin", &[]);
    let mut attacker = login(&server, Transport::Tcp, 1).await;
    let before = server.rss_kib();
    // Each round: a large message to a group nobody is in (refused and dropped), then one byte
    // for the offline user (held), in one write so that both land in one read buffer.
    let large = Bytes::from(vec![7u8; 60 * 1024]);
    for round in 0..ROUNDS {
        attacker
            .writer
            .queue(&Frame::Send {
                msg_id: round * 2,
                to: Dest::Group(999),
                body: large.clone(),
            })
            .expect("queue");
        attacker
            .writer
            .queue(&Frame::Send {
                msg_id: round * 2 + 1,
                to: Dest::User(OFFLINE),
                body: Bytes::from_static(b"x"),
            })
            .expect("queue");
        attacker.writer.flush().await.expect("write");
        if round % 100 == 99 {
            answers(&mut attacker, 200).await;
        }
    }
    let grown = server.rss_kib().saturating_sub(before);
    eprintln!("{ROUNDS} held one-byte messages: server resident memory grew {grown} KiB");
    assert!(
        grown < 32 * 1024,
        "{ROUNDS} held one-byte messages grew the server by {grown} KiB"
    );
}

/// Silences an unused-import warning while later attacks are added.
#[allow(dead_code)]
fn _codes() -> (ErrorCode, Duration) {
    (ErrorCode::BUSY, Duration::ZERO)
}
