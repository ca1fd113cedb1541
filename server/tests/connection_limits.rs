//! Connection limits: one address cannot take more than its share, and past the global limit
//! new connections are turned away before any handshake; both are counted, and the connections
//! already served carry on.

#[macro_use]
mod util;

use std::time::Duration;

use imbench_proto::{ErrorCode, Frame};
use imbench_server::Limits;
use imbench_transport::Transport;
use util::{expect_error, read, send, start_over, TestServer};

/// Says Hello as `user` on a new connection and returns what the server answered, or `None`
/// when the connection could not be made or was closed without a frame.
async fn hello(t: &TestServer, user: u64) -> Option<Frame> {
    let mut conn = t.connector.connect(t.addr, "localhost").await.ok()?;
    conn.writer.write_frame(&t.hello(user, 0)).await.ok()?;
    tokio::time::timeout(util::READ_LIMIT, conn.reader.read_frame())
        .await
        .expect("an answer or a close within the limit")
        .ok()
        .flatten()
}

over_every_transport!(one_address_gets_at_most_its_share_of_connections);

async fn one_address_gets_at_most_its_share_of_connections(transport: Transport) {
    let limits = Limits {
        max_connections_per_address: 2,
        ..Limits::default()
    };
    let t = start_over(transport, limits).await;
    let mut alice = t.client(1).await;
    let mut bob = t.client(2).await;
    let mut third = t.raw().await;
    let _ = third.writer.write_frame(&t.hello(3, 0)).await;
    assert_eq!(
        expect_error(&mut third).await,
        ErrorCode::TOO_MANY_CONNECTIONS
    );
    assert_eq!(t.server.stats().connections_refused_per_address, 1);
    // The two served connections are untouched.
    alice
        .writer
        .write_frame(&send(1, 2, b"hi"))
        .await
        .expect("send");
    assert_eq!(read(&mut alice).await, Some(Frame::Ack { msg_id: 1 }));
    assert!(matches!(
        read(&mut bob).await,
        Some(Frame::Deliver { msg_id: 1, .. })
    ));
    // When one leaves, its slot is free again (given back as its session ends).
    bob.writer
        .write_frame(&Frame::Bye {
            reason: "done".into(),
        })
        .await
        .expect("bye");
    assert!(util::closes(&mut bob).await);
    let mut welcomed = false;
    for _ in 0..100 {
        match hello(&t, 4).await {
            Some(Frame::Welcome { .. }) => {
                welcomed = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(welcomed, "the address never got its slot back");
    t.server.shutdown().await;
}

async fn past_the_global_limit_connections_are_turned_away(transport: Transport) {
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let t = start_over(transport, limits).await;
    let mut alice = t.client(1).await;
    let _bob = t.client(2).await;
    assert_eq!(hello(&t, 3).await, None);
    assert_eq!(t.server.stats().connections_refused, 1);
    alice
        .writer
        .write_frame(&send(1, 2, b"hi"))
        .await
        .expect("send");
    assert_eq!(read(&mut alice).await, Some(Frame::Ack { msg_id: 1 }));
    t.server.shutdown().await;
}

#[tokio::test]
async fn past_the_global_limit_quic_connections_are_turned_away() {
    past_the_global_limit_connections_are_turned_away(Transport::Quic).await;
}

#[tokio::test]
async fn past_the_global_limit_tcp_connections_are_turned_away() {
    past_the_global_limit_connections_are_turned_away(Transport::Tcp).await;
}
