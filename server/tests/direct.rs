//! Direct messages end to end over real QUIC connections: exactly once and in order, offline
//! hold, slow consumers, shutdown.

#[macro_use]
mod util;

use std::time::Duration;

use imbench_proto::{Dest, ErrorCode, Frame};
use imbench_server::Limits;
use imbench_transport::QuicOptions;
use imbench_transport::Transport;
use util::{read, send, start, start_over, start_with};

over_every_transport!(every_message_is_acked_and_delivered_once_in_order);

async fn every_message_is_acked_and_delivered_once_in_order(transport: Transport) {
    let t = start_over(transport, Limits::default()).await;
    let mut alice = t.client(1).await;
    let mut bob = t.client(2).await;
    const N: u64 = 500;
    for id in 0..N {
        alice.writer.queue(&send(id, 2, b"hi bob")).unwrap();
    }
    alice.writer.flush().await.unwrap();
    for id in 0..N {
        assert_eq!(read(&mut alice).await, Some(Frame::Ack { msg_id: id }));
        match read(&mut bob).await {
            Some(Frame::Deliver {
                msg_id,
                from: 1,
                to: Dest::User(2),
                body,
            }) => {
                assert_eq!(msg_id, id);
                assert_eq!(&body[..], b"hi bob");
            }
            other => panic!("expected delivery {id}, got {other:?}"),
        }
    }
    // Nothing more: a Ping's Pong is the next thing bob sees.
    bob.writer
        .write_frame(&Frame::Ping { nonce: 9 })
        .await
        .unwrap();
    assert_eq!(read(&mut bob).await, Some(Frame::Pong { nonce: 9 }));
    assert_eq!(t.server.stats().routed, N);
    t.server.shutdown().await;
}

#[tokio::test]
async fn messages_for_an_offline_user_are_held_and_delivered_on_connect() {
    let t = start(Limits::default()).await;
    let mut alice = t.client(1).await;
    for id in 0..20 {
        alice
            .writer
            .write_frame(&send(id, 7, b"while you were out"))
            .await
            .unwrap();
        assert_eq!(read(&mut alice).await, Some(Frame::Ack { msg_id: id }));
    }
    assert_eq!(t.server.router().held_for(7), 20);
    let mut carol = t.client(7).await;
    for id in 0..20 {
        match read(&mut carol).await {
            Some(Frame::Deliver {
                msg_id, from: 1, ..
            }) => assert_eq!(msg_id, id),
            other => panic!("expected held delivery {id}, got {other:?}"),
        }
    }
    assert_eq!(t.server.router().held_for(7), 0);
    t.server.shutdown().await;
}

#[tokio::test]
async fn a_full_hold_rejects_instead_of_acking() {
    let t = start(Limits {
        hold_per_user: 3,
        ..Limits::default()
    })
    .await;
    let mut alice = t.client(1).await;
    for id in 0..3 {
        alice.writer.write_frame(&send(id, 7, b"x")).await.unwrap();
        assert_eq!(read(&mut alice).await, Some(Frame::Ack { msg_id: id }));
    }
    alice.writer.write_frame(&send(3, 7, b"x")).await.unwrap();
    assert_eq!(
        read(&mut alice).await,
        Some(Frame::Reject {
            msg_id: 3,
            code: ErrorCode::HOLD_FULL
        })
    );
    t.server.shutdown().await;
}

#[tokio::test]
async fn a_reader_that_stops_is_disconnected_and_its_queue_is_held() {
    // Bob's tiny receive window makes the server's writer block almost at once, so bob's
    // bounded queue fills while alice keeps sending.
    let quic = QuicOptions {
        stream_receive_window: Some(4096),
        ..QuicOptions::default()
    };
    let limits = Limits {
        queue_capacity: 16,
        ..Limits::default()
    };
    let t = start_with(limits, quic).await;
    let mut alice = t.client(1).await;
    let mut bob = t.client(2).await;
    const N: u64 = 2000;
    // Alice reads her acks as she goes: her queue is bounded by the same limit.
    for batch in (0..N).collect::<Vec<_>>().chunks(8) {
        for id in batch {
            alice
                .writer
                .queue(&send(*id, 2, b"are you there?"))
                .unwrap();
        }
        alice.writer.flush().await.unwrap();
        for id in batch {
            assert_eq!(
                read(&mut alice).await,
                Some(Frame::Ack { msg_id: *id }),
                "acked"
            );
        }
    }
    assert_eq!(t.server.stats().slow_consumers, 1);
    // Bob now reads what reached him, then the Error that ends the session.
    let mut seen = Vec::new();
    loop {
        match read(&mut bob).await {
            Some(Frame::Deliver { msg_id, .. }) => seen.push(msg_id),
            Some(Frame::Error { code, .. }) => {
                assert_eq!(code, ErrorCode::SLOW_CONSUMER);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let held = t.server.router().held_for(2) as u64;
    assert!(
        held >= N - 16 - seen.len() as u64 - 64,
        "held {held}, saw {}",
        seen.len()
    );
    // Reconnecting gets the held messages, in order, after the ones already seen.
    let mut bob = t.client(2).await;
    for _ in 0..held {
        match read(&mut bob).await {
            Some(Frame::Deliver { msg_id, .. }) => {
                assert!(seen.last().is_none_or(|last| msg_id > *last), "order");
                seen.push(msg_id);
            }
            other => panic!("expected a held delivery, got {other:?}"),
        }
    }
    let unique: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates");
    t.server.shutdown().await;
}

#[tokio::test]
async fn shutdown_flushes_queues_and_says_bye() {
    shutdown_flushes_queues_and_says_bye_within(Limits::default()).await;
}

/// Limits written as the largest number (none): shutdown still waits for every session to
/// write what is queued and its Bye (it took back as many permits as it counts at once, and
/// closed the endpoint under the sessions).
#[tokio::test]
async fn shutdown_says_bye_with_limits_written_as_the_largest_number() {
    shutdown_flushes_queues_and_says_bye_within(Limits {
        max_connections: usize::MAX,
        queue_capacity: usize::MAX,
        ..Limits::default()
    })
    .await;
}

async fn shutdown_flushes_queues_and_says_bye_within(limits: Limits) {
    // More than the connection's flow-control window holds: most of it is still queued on the
    // server when shutdown begins, and goes out only as bob reads.
    const QUEUED: u64 = 2000;
    static BODY: [u8; 1024] = [3; 1024];
    let t = start(limits).await;
    let mut alice = t.client(1).await;
    let mut bob = t.client(2).await;
    for id in 1..=QUEUED {
        alice.writer.write_frame(&send(id, 2, &BODY)).await.unwrap();
    }
    acked(&mut alice, QUEUED as usize).await;
    let server = t.server;
    let stopping = tokio::spawn(server.shutdown_within(Duration::from_secs(5)));
    for id in 1..=QUEUED {
        let frame = read(&mut bob).await;
        assert!(
            matches!(frame, Some(Frame::Deliver { msg_id, .. }) if msg_id == id),
            "delivery {id}: {frame:?}"
        );
    }
    assert!(matches!(read(&mut bob).await, Some(Frame::Bye { .. })));
    assert!(matches!(read(&mut alice).await, Some(Frame::Bye { .. })));
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("bounded")
        .unwrap();
}

/// A newer login of a user whose earlier connection still holds undelivered messages (it reads
/// nothing, as a connection gone half-open, and was kicked as a slow consumer): the earlier
/// session ends first, and the newer one gets what it had not written, then what was held
/// meanwhile, then what is sent since: each once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_login_gets_the_earlier_sessions_leftovers_first() {
    static BODY: [u8; 60 * 1024] = [7; 60 * 1024];
    let limits = Limits {
        session_queue_bytes: 1024 * 1024,
        ..Limits::default()
    };
    let t = start_over(Transport::Tcp, limits).await;
    let mut alice = t.client(1).await;
    let stalled = t.client(2).await;
    // 18 MB: more than the loopback sockets' buffers hold, so the stalled session's writer
    // blocks, its queue fills and it is kicked, with messages still queued.
    for id in 0..300 {
        alice.writer.write_frame(&send(id, 2, &BODY)).await.unwrap();
    }
    acked(&mut alice, 300).await;
    let mut bob = t.client(2).await;
    for id in 300..310 {
        alice.writer.write_frame(&send(id, 2, &BODY)).await.unwrap();
    }
    acked(&mut alice, 10).await;
    let mut got = Vec::new();
    while let Ok(Ok(Some(frame))) =
        tokio::time::timeout(Duration::from_secs(4), bob.reader.read_frame()).await
    {
        if let Frame::Deliver { msg_id, .. } = frame {
            got.push(msg_id);
        }
    }
    drop(stalled);
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "in order, each once: {got:?}"
    );
    // What the stalled connection's sockets took counts as delivered (no receipts); the rest,
    // and all sent since, came here.
    assert!(got.ends_with(&(300..310).collect::<Vec<u64>>()), "{got:?}");
    assert!(got.len() > 100, "{got:?}");
    t.server.shutdown().await;
}

/// Reads until `n` Acks have come; a Reject or the end of the connection fails the test.
async fn acked(conn: &mut imbench_transport::FramedConnection, n: usize) {
    let mut acks = 0;
    while acks < n {
        match read(conn).await {
            Some(Frame::Ack { .. }) => acks += 1,
            Some(Frame::Reject { code, .. }) => panic!("refused: {code}"),
            Some(_) => {}
            None => panic!("the sender's connection ended"),
        }
    }
}
