//! Overload, test-sized: senders flood a group whose members do not read. The server binary
//! stays up, its memory stays bounded, and it pushes back with `Reject busy` rather than
//! queueing without end; every message is answered, and every acked one is delivered once the
//! members read. (A file of its own, so that the server's memory is measured in a process of
//! its own.)

mod util;

use std::collections::HashSet;

use bytes::Bytes;
use imbench_proto::{Dest, ErrorCode, Frame};
use imbench_server::Secret;
use imbench_transport::{ClientTrust, Connector, FramedConnection, QuicOptions, Transport};
use util::process::{memory_kib, start_with_args};
use util::read;

const GROUP: u64 = 7;
const MEMBERS: u64 = 20;
const SENDERS: u64 = 4;
const PER_SENDER: u64 = 2_500;
const BODY: usize = 16 * 1024;
/// Far below what the flood would queue without pushback: 10,000 bodies of 16 KiB to 20
/// members is over 150 MiB of distinct bodies alone.
const BOUND_KIB: u64 = 64 * 1024;

async fn join(conn: &mut FramedConnection) {
    conn.writer
        .write_frame(&Frame::Join { group: GROUP })
        .await
        .expect("join");
    loop {
        match read(conn).await {
            Some(Frame::Joined { group: GROUP, .. }) => return,
            Some(_) => continue,
            None => panic!("closed before Joined"),
        }
    }
}

/// Sends `PER_SENDER` group messages without waiting, reading the answers beside it; returns
/// the ids acked and the number refused busy.
async fn flood(conn: FramedConnection, sender: u64) -> (HashSet<u64>, u64) {
    let body = Bytes::from(vec![sender as u8; BODY]);
    let FramedConnection {
        mut writer,
        mut reader,
        link,
        ..
    } = conn;
    let writing = tokio::spawn(async move {
        for i in 0..PER_SENDER {
            let frame = Frame::Send {
                msg_id: sender << 32 | i,
                to: Dest::Group(GROUP),
                body: body.clone(),
            };
            writer.write_frame(&frame).await.expect("send");
        }
        writer
    });
    let (mut acked, mut busy) = (HashSet::new(), 0);
    while (acked.len() as u64 + busy) < PER_SENDER {
        let frame = tokio::time::timeout(util::READ_LIMIT, reader.read_frame())
            .await
            .expect("an answer within the limit")
            .expect("read")
            .expect("open");
        match frame {
            Frame::Ack { msg_id } => assert!(acked.insert(msg_id), "acked twice: {msg_id}"),
            Frame::Reject {
                code: ErrorCode::BUSY,
                ..
            } => busy += 1,
            Frame::Deliver { .. } => {}
            other => panic!("sender {sender}: unexpected {other:?}"),
        }
    }
    // The connection stays open until every answer is in.
    let writer = writing.await.expect("writer");
    drop((writer, reader, link));
    (acked, busy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_pushed_back_with_busy_and_memory_stays_bounded() {
    let server = start_with_args("overload", &["--max-queued-bytes", "8MiB"]);
    let pid = server.child.id();
    let trust = ClientTrust::from_pem_file(&server.dir.join("cert.pem")).expect("cert.pem");
    let secret = Secret::from_file(&server.dir.join("secret")).expect("secret");
    let addr = server
        .addrs
        .iter()
        .find(|(t, _)| *t == Transport::Tcp)
        .map(|&(_, a)| a)
        .expect("tcp address");
    let connector = Connector::new(
        Transport::Tcp,
        &trust,
        &QuicOptions::default(),
        1,
        addr,
        imbench_proto::Codec::default(),
    )
    .expect("connector");
    let (_, before_kib) = memory_kib(pid);

    // Members that join and then do not read.
    let mut members = Vec::new();
    for m in 0..MEMBERS {
        let mut conn = util::login(&connector, addr, &secret, 100 + m).await;
        join(&mut conn).await;
        members.push(conn);
    }
    let mut floods = Vec::new();
    for s in 1..=SENDERS {
        let mut conn = util::login(&connector, addr, &secret, s).await;
        join(&mut conn).await;
        floods.push(tokio::spawn(flood(conn, s)));
    }
    let mut acked = HashSet::new();
    let mut busy = 0;
    for f in floods {
        let (a, b) = f.await.expect("flood");
        acked.extend(a);
        busy += b;
    }
    let (peak_kib, _) = memory_kib(pid);
    eprintln!(
        "acked {}, busy {busy}, server memory {before_kib} KiB before, {peak_kib} KiB at the peak",
        acked.len()
    );
    assert!(busy > 0, "the server never pushed back");
    assert!(!acked.is_empty(), "the server accepted nothing");
    assert!(
        peak_kib < before_kib + BOUND_KIB,
        "server peak memory {peak_kib} KiB from {before_kib} KiB before the flood"
    );

    // Still serving: a newcomer gets in and is answered.
    let mut newcomer = util::login(&connector, addr, &secret, 999).await;
    newcomer
        .writer
        .write_frame(&Frame::Ping { nonce: 1 })
        .await
        .expect("ping");
    assert_eq!(read(&mut newcomer).await, Some(Frame::Pong { nonce: 1 }));

    // Nothing acked was lost: each member now reads every acked message, once.
    for (m, conn) in members.iter_mut().enumerate() {
        let mut got = HashSet::new();
        while got.len() < acked.len() {
            match read(conn).await {
                Some(Frame::Deliver { msg_id, .. }) => {
                    assert!(
                        acked.contains(&msg_id),
                        "member {m}: {msg_id} was not acked"
                    );
                    assert!(got.insert(msg_id), "member {m}: {msg_id} twice");
                }
                Some(Frame::Joined { .. }) => {}
                other => panic!("member {m}: expected deliveries, got {other:?}"),
            }
        }
    }
}
