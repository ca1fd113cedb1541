//! Groups end to end over real QUIC connections: membership replies, fan-out to every other
//! member exactly once and in order, limits, and one member that stops reading next to members
//! that keep up.

mod util;

use bytes::Bytes;
use imbench_proto::{Dest, ErrorCode, Frame};
use imbench_server::Limits;
use imbench_transport::{FramedConnection, QuicOptions};
use util::{read, start, start_with, TestServer};

fn group_send(msg_id: u64, group: u64, body: &'static [u8]) -> Frame {
    Frame::Send {
        msg_id,
        to: Dest::Group(group),
        body: Bytes::from_static(body),
    }
}

async fn join(conn: &mut FramedConnection, group: u64) -> Frame {
    conn.writer
        .write_frame(&Frame::Join { group })
        .await
        .expect("join written");
    read(conn).await.expect("a reply to Join")
}

async fn members(
    t: &TestServer,
    users: std::ops::RangeInclusive<u64>,
    group: u64,
) -> Vec<FramedConnection> {
    let mut conns = Vec::new();
    for user in users {
        let mut c = t.client(user).await;
        match join(&mut c, group).await {
            Frame::Joined { group: g, .. } if g == group => {}
            other => panic!("expected Joined, got {other:?}"),
        }
        conns.push(c);
    }
    conns
}

#[tokio::test]
async fn every_other_member_gets_each_message_once_in_order() {
    let t = start(Limits::default()).await;
    let mut conns = members(&t, 1..=5, 42).await;
    const N: u64 = 200;
    for id in 0..N {
        conns[0]
            .writer
            .queue(&group_send(id, 42, b"to all"))
            .unwrap();
    }
    conns[0].writer.flush().await.unwrap();
    for id in 0..N {
        assert_eq!(read(&mut conns[0]).await, Some(Frame::Ack { msg_id: id }));
    }
    for member in &mut conns[1..] {
        for id in 0..N {
            match read(member).await {
                Some(Frame::Deliver {
                    msg_id,
                    from: 1,
                    to: Dest::Group(42),
                    body,
                }) => {
                    assert_eq!(msg_id, id);
                    assert_eq!(&body[..], b"to all");
                }
                other => panic!("expected delivery {id}, got {other:?}"),
            }
        }
    }
    // The sender got none of its own messages: its next frame is the Pong.
    conns[0]
        .writer
        .write_frame(&Frame::Ping { nonce: 1 })
        .await
        .unwrap();
    assert_eq!(read(&mut conns[0]).await, Some(Frame::Pong { nonce: 1 }));
    let stats = t.server.stats();
    assert_eq!(stats.group_messages, N);
    assert_eq!(stats.group_deliveries, N * 4);
    t.server.shutdown().await;
}

#[tokio::test]
async fn a_member_sees_only_what_was_routed_between_joined_and_left() {
    let t = start(Limits::default()).await;
    let mut alice = members(&t, 1..=1, 7).await.remove(0);
    let mut bob = t.client(2).await;
    alice
        .writer
        .write_frame(&group_send(1, 7, b"before"))
        .await
        .unwrap();
    assert_eq!(read(&mut alice).await, Some(Frame::Ack { msg_id: 1 }));
    assert!(matches!(
        join(&mut bob, 7).await,
        Frame::Joined {
            group: 7,
            members: 2
        }
    ));
    alice
        .writer
        .write_frame(&group_send(2, 7, b"during"))
        .await
        .unwrap();
    assert_eq!(read(&mut alice).await, Some(Frame::Ack { msg_id: 2 }));
    bob.writer
        .write_frame(&Frame::Leave { group: 7 })
        .await
        .unwrap();
    match read(&mut bob).await {
        Some(Frame::Deliver { msg_id: 2, .. }) => {}
        other => panic!("expected message 2, got {other:?}"),
    }
    assert_eq!(read(&mut bob).await, Some(Frame::Left { group: 7 }));
    alice
        .writer
        .write_frame(&group_send(3, 7, b"after"))
        .await
        .unwrap();
    assert_eq!(read(&mut alice).await, Some(Frame::Ack { msg_id: 3 }));
    bob.writer
        .write_frame(&Frame::Ping { nonce: 5 })
        .await
        .unwrap();
    assert_eq!(read(&mut bob).await, Some(Frame::Pong { nonce: 5 }));
    // A non-member may not send to the group.
    bob.writer
        .write_frame(&group_send(9, 7, b"let me in"))
        .await
        .unwrap();
    assert_eq!(
        read(&mut bob).await,
        Some(Frame::Reject {
            msg_id: 9,
            code: ErrorCode::NOT_A_MEMBER
        })
    );
    t.server.shutdown().await;
}

#[tokio::test]
async fn group_limits_refuse_with_typed_codes() {
    let limits = Limits {
        max_group_members: 2,
        groups_per_user: 2,
        group_changes_per_sec: 1,
        ..Limits::default()
    };
    let t = start(limits).await;
    let mut conns = members(&t, 1..=2, 1).await;
    let mut carol = t.client(3).await;
    assert_eq!(
        join(&mut carol, 1).await,
        Frame::GroupRefused {
            group: 1,
            code: ErrorCode::GROUP_FULL
        }
    );
    assert!(matches!(join(&mut conns[0], 2).await, Frame::Joined { .. }));
    // Alice has used her burst of two changes; the third within the second is refused.
    assert_eq!(
        join(&mut conns[0], 3).await,
        Frame::GroupRefused {
            group: 3,
            code: ErrorCode::TOO_MANY_REQUESTS
        }
    );
    assert_eq!(
        join(&mut conns[1], 2).await,
        Frame::Joined {
            group: 2,
            members: 2
        }
    );
    assert_eq!(t.server.groups().memberships(1), 2);
    // The session is still served after every refusal.
    conns[0]
        .writer
        .write_frame(&group_send(1, 1, b"still here"))
        .await
        .unwrap();
    assert_eq!(read(&mut conns[0]).await, Some(Frame::Ack { msg_id: 1 }));
    assert!(t.server.stats().group_refusals >= 2);
    t.server.shutdown().await;
}

#[tokio::test]
async fn a_member_that_stops_reading_does_not_hold_back_the_others() {
    // Every member has a tiny receive window, so a member that stops reading blocks the
    // server's writer for it almost at once and its bounded queue fills.
    let quic = QuicOptions {
        stream_receive_window: Some(4096),
        ..QuicOptions::default()
    };
    let limits = Limits {
        queue_capacity: 16,
        ..Limits::default()
    };
    let t = start_with(limits, quic).await;
    let mut conns = members(&t, 1..=4, 9).await;
    let mut stalled = conns.pop().expect("four members");
    const N: u64 = 1500;
    for batch in (0..N).collect::<Vec<_>>().chunks(10) {
        for id in batch {
            conns[0]
                .writer
                .queue(&group_send(*id, 9, b"keep up if you can"))
                .unwrap();
        }
        conns[0].writer.flush().await.unwrap();
        for id in batch {
            assert_eq!(read(&mut conns[0]).await, Some(Frame::Ack { msg_id: *id }));
        }
        // The members that read get every message of the batch now, while the stalled one
        // reads nothing.
        for member in &mut conns[1..] {
            for id in batch {
                match read(member).await {
                    Some(Frame::Deliver { msg_id, .. }) => assert_eq!(msg_id, *id),
                    other => panic!("expected delivery {id}, got {other:?}"),
                }
            }
        }
    }
    assert_eq!(t.server.stats().slow_consumers, 1);
    // The stalled member was cut off; what it did not get is held for it, nothing dropped.
    let mut seen = 0;
    loop {
        match read(&mut stalled).await {
            Some(Frame::Deliver { .. }) => seen += 1,
            Some(Frame::Error { code, .. }) => {
                assert_eq!(code, ErrorCode::SLOW_CONSUMER);
                break;
            }
            other => panic!("expected deliveries then an Error, got {other:?}"),
        }
    }
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while t.server.router().is_online(4) {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the stalled session ends");
    assert_eq!(seen + t.server.router().held_for(4) as u64, N);
    t.server.shutdown().await;
}
