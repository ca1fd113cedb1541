//! Receipts end to end: what a client that asked for receipts had not confirmed when its
//! connection dropped is delivered again on its next connection, the window bounds what is
//! written unconfirmed, and a client that did not ask gets none of it.

#[macro_use]
mod util;

use std::time::Duration;

use imbench_proto::{ErrorCode, Frame, HELLO_RECEIPTS};
use imbench_server::Limits;
use imbench_transport::{FramedConnection, Transport};
use util::{read, send, start_over, TestServer};

/// Sends `n` messages from user 1 to user 2 and waits for their Acks.
async fn alice_sends(t: &TestServer, n: u64) {
    let mut alice = t.client(1).await;
    for id in 0..n {
        alice.writer.queue(&send(id, 2, b"m")).expect("queue");
    }
    alice.writer.flush().await.expect("flush");
    for id in 0..n {
        assert_eq!(read(&mut alice).await, Some(Frame::Ack { msg_id: id }));
    }
}

/// Reads `n` deliveries and returns their ids.
async fn deliveries(conn: &mut FramedConnection, n: usize) -> Vec<u64> {
    let mut ids = Vec::new();
    while ids.len() < n {
        match read(conn).await {
            Some(Frame::Deliver { msg_id, .. }) => ids.push(msg_id),
            other => panic!("expected a delivery, got {other:?}"),
        }
    }
    ids
}

/// Asserts that the next thing the server says is the Pong to a Ping sent now.
async fn nothing_more(conn: &mut FramedConnection) {
    conn.writer
        .write_frame(&Frame::Ping { nonce: 77 })
        .await
        .expect("ping");
    assert_eq!(read(conn).await, Some(Frame::Pong { nonce: 77 }));
}

over_every_transport!(what_was_not_confirmed_is_delivered_again_after_an_abrupt_drop);

async fn what_was_not_confirmed_is_delivered_again_after_an_abrupt_drop(transport: Transport) {
    let t = start_over(transport, Limits::default()).await;
    let mut bob = t.client_with(2, HELLO_RECEIPTS).await;
    alice_sends(&t, 10).await;
    assert_eq!(deliveries(&mut bob, 10).await, (0..10).collect::<Vec<_>>());
    bob.writer
        .write_frame(&Frame::Receipt { count: 4 })
        .await
        .expect("receipt");
    // The Pong comes after the server has read the receipt.
    nothing_more(&mut bob).await;
    // Gone without a word; the server cannot know bob read 4..9.
    bob.link.abort(0, "dropped");
    drop(bob);

    let mut bob = t.client_with(2, HELLO_RECEIPTS).await;
    assert_eq!(deliveries(&mut bob, 6).await, (4..10).collect::<Vec<_>>());
    nothing_more(&mut bob).await;
    assert_eq!(t.server.stats().redelivered, 6);
    t.server.shutdown().await;
}

over_every_transport!(a_client_that_did_not_ask_for_receipts_gets_nothing_again);

async fn a_client_that_did_not_ask_for_receipts_gets_nothing_again(transport: Transport) {
    let t = start_over(transport, Limits::default()).await;
    let mut bob = t.client(2).await;
    alice_sends(&t, 10).await;
    assert_eq!(deliveries(&mut bob, 10).await, (0..10).collect::<Vec<_>>());
    nothing_more(&mut bob).await;
    bob.link.abort(0, "dropped");
    drop(bob);

    let mut bob = t.client(2).await;
    nothing_more(&mut bob).await;
    assert_eq!(t.server.stats().redelivered, 0);
    t.server.shutdown().await;
}

#[tokio::test]
async fn everything_confirmed_before_bye_is_not_delivered_again() {
    let t = start_over(Transport::Tcp, Limits::default()).await;
    let mut bob = t.client_with(2, HELLO_RECEIPTS).await;
    alice_sends(&t, 10).await;
    deliveries(&mut bob, 10).await;
    bob.writer
        .queue(&Frame::Receipt { count: 10 })
        .expect("receipt");
    bob.writer
        .write_frame(&Frame::Bye {
            reason: "later".into(),
        })
        .await
        .expect("bye");
    assert!(util::closes(&mut bob).await);

    let mut bob = t.client_with(2, HELLO_RECEIPTS).await;
    nothing_more(&mut bob).await;
    assert_eq!(t.server.stats().redelivered, 0);
    t.server.shutdown().await;
}

over_every_transport!(the_window_holds_back_deliveries_until_a_receipt);

async fn the_window_holds_back_deliveries_until_a_receipt(transport: Transport) {
    let limits = Limits {
        receipt_window: 4,
        ..Limits::default()
    };
    let t = start_over(transport, limits).await;
    let mut bob = t.client_with(2, HELLO_RECEIPTS).await;
    alice_sends(&t, 10).await;
    assert_eq!(deliveries(&mut bob, 4).await, vec![0, 1, 2, 3]);
    // The fifth delivery waits for a receipt, and the Pong waits behind it.
    bob.writer
        .write_frame(&Frame::Ping { nonce: 5 })
        .await
        .expect("ping");
    let early = tokio::time::timeout(Duration::from_millis(300), bob.reader.read_frame()).await;
    assert!(early.is_err(), "past the window the server wrote {early:?}");
    bob.writer
        .write_frame(&Frame::Receipt { count: 4 })
        .await
        .expect("receipt");
    assert_eq!(deliveries(&mut bob, 4).await, vec![4, 5, 6, 7]);
    bob.writer
        .write_frame(&Frame::Receipt { count: 8 })
        .await
        .expect("receipt");
    assert_eq!(deliveries(&mut bob, 2).await, vec![8, 9]);
    assert_eq!(read(&mut bob).await, Some(Frame::Pong { nonce: 5 }));
    t.server.shutdown().await;
}

#[tokio::test]
async fn a_receipt_from_a_client_that_did_not_ask_is_a_protocol_error() {
    let t = start_over(Transport::Tcp, Limits::default()).await;
    let mut bob = t.client(2).await;
    bob.writer
        .write_frame(&Frame::Receipt { count: 1 })
        .await
        .expect("receipt");
    assert_eq!(
        util::expect_error(&mut bob).await,
        ErrorCode::UNEXPECTED_FRAME
    );
    t.server.shutdown().await;
}

/// A server whose sessions may queue 1 MiB, bob (user 2, who asked for receipts) and alice
/// (user 1) logged in to it.
async fn one_mib_queue() -> (TestServer, FramedConnection, FramedConnection) {
    let limits = Limits {
        session_queue_bytes: 1024 * 1024,
        ..Limits::default()
    };
    let t = start_over(Transport::Tcp, limits).await;
    let bob = t.client_with(2, HELLO_RECEIPTS).await;
    let alice = t.client(1).await;
    (t, bob, alice)
}

/// Sends messages `ids` of 60 KiB to user 2, each once acked.
async fn sends_large(alice: &mut FramedConnection, ids: std::ops::Range<u64>) {
    let body = bytes::Bytes::from(vec![7u8; 60 * 1024]);
    for msg_id in ids {
        let send = Frame::Send {
            msg_id,
            to: imbench_proto::Dest::User(2),
            body: body.clone(),
        };
        alice.writer.write_frame(&send).await.expect("send");
        assert_eq!(read(alice).await, Some(Frame::Ack { msg_id }));
    }
}

/// A receipt lets go of what it covers at once, also when the server has nothing more to
/// write to the client: the charges of an idle client's last burst used to stay until
/// something else came for it, so that its next burst found the bound full and it was cut
/// off as a slow consumer although it had confirmed everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_frees_the_queue_bound_at_once() {
    // 17 deliveries of 60 KiB fill 1 MiB all but one more.
    const BURST: u64 = 17;
    let (t, mut bob, mut alice) = one_mib_queue().await;
    for round in 0..3 {
        sends_large(&mut alice, round * BURST..(round + 1) * BURST).await;
        let got = deliveries(&mut bob, BURST as usize).await;
        assert_eq!(
            got,
            (round * BURST..(round + 1) * BURST).collect::<Vec<_>>()
        );
        let count = (round + 1) * BURST;
        bob.writer
            .write_frame(&Frame::Receipt { count })
            .await
            .expect("receipt");
        // Nothing else for bob meanwhile: only the receipt can free the bound.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    nothing_more(&mut bob).await;
    assert_eq!(t.server.stats().slow_consumers, 0);
    t.server.shutdown().await;
}

/// Deliveries written and not yet confirmed count against --session-queue-bytes, as those not
/// yet written do: a client that reads everything and confirms nothing is a slow consumer once
/// they fill it, and gets them all again on its next connection. They used to be kept outside
/// every bound, up to the window (4,096 here) times the largest body, for each such client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_kept_unconfirmed_counts_against_the_session_queue() {
    const SENT: u64 = 40;
    let (t, mut bob, mut alice) = one_mib_queue().await;
    sends_large(&mut alice, 0..SENT).await;
    let mut first = Vec::new();
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(5), bob.reader.read_frame()).await {
            Ok(Ok(Some(Frame::Deliver { msg_id, .. }))) => first.push(msg_id),
            Ok(Ok(Some(Frame::Error { code, .. }))) => break Some(code),
            Ok(Ok(Some(other))) => panic!("unexpected {other:?}"),
            Ok(_) => break None,
            Err(_) => break None,
        }
    };
    assert_eq!(
        ended,
        Some(ErrorCode::SLOW_CONSUMER),
        "read {} of {SENT} without confirming one and was not cut off",
        first.len()
    );
    assert!(first.len() < SENT as usize, "read {}", first.len());
    drop(bob);
    let mut again = t.client_with(2, HELLO_RECEIPTS).await;
    let second = deliveries(&mut again, SENT as usize).await;
    assert_eq!(second, (0..SENT).collect::<Vec<_>>());
    nothing_more(&mut again).await;
    t.server.shutdown().await;
}
