//! Misbehaving clients get a typed Error and are closed, while well-behaved clients on the same
//! server keep being served: the same checks over every transport.

#[macro_use]
mod util;

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use imbench_proto::{ErrorCode, Frame, PROTOCOL_VERSION, TOKEN_LEN};
use imbench_server::Limits;
use imbench_transport::Transport;
use util::{closes, expect_error, read, send, start, start_over, TestServer};

fn raw_frame(len: u32, kind: u8, fields: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_u32(len);
    b.put_u8(kind);
    b.put_slice(fields);
    b.to_vec()
}

/// Two good clients chat in a loop until told to stop; returns how many round trips they made.
async fn chat_until(t: &TestServer, stop: tokio::sync::watch::Receiver<bool>) -> u64 {
    let mut a = t.client(100).await;
    let mut b = t.client(101).await;
    let mut rounds = 0;
    while !*stop.borrow() {
        a.writer
            .write_frame(&send(rounds, 101, b"still here"))
            .await
            .unwrap();
        assert_eq!(read(&mut a).await, Some(Frame::Ack { msg_id: rounds }));
        assert!(
            matches!(read(&mut b).await, Some(Frame::Deliver { msg_id, .. }) if msg_id == rounds)
        );
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    rounds
}

over_every_transport!(bad_clients_are_refused_and_good_ones_keep_going);

async fn bad_clients_are_refused_and_good_ones_keep_going(transport: Transport) {
    let t = start_over(
        transport,
        Limits {
            hello_timeout: Duration::from_millis(500),
            ..Limits::default()
        },
    )
    .await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let t = std::sync::Arc::new(t);
    let good = tokio::spawn({
        let t = t.clone();
        async move { chat_until(&t, stop_rx).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;

    let hello = |user: u64, token: [u8; TOKEN_LEN]| Frame::Hello {
        version: PROTOCOL_VERSION,
        user,
        token,
        flags: 0,
    };
    let cases: Vec<(&str, Vec<u8>, ErrorCode)> = vec![
        (
            "garbage",
            b"\xde\xad\xbe\xef\x00\x01garbage".to_vec(),
            ErrorCode::FRAME_TOO_LARGE,
        ),
        (
            "oversize length",
            raw_frame(50_000_000, 0x10, &[]),
            ErrorCode::FRAME_TOO_LARGE,
        ),
        (
            "unknown kind",
            raw_frame(1, 0x7f, &[]),
            ErrorCode::UNKNOWN_KIND,
        ),
        (
            "truncated Hello",
            raw_frame(5, 0x01, &[0, 1, 0, 0]),
            ErrorCode::BAD_FRAME,
        ),
        ("empty frame", vec![0, 0, 0, 0], ErrorCode::BAD_FRAME),
    ];
    for (what, bytes, want) in cases {
        let mut conn = t.raw().await;
        conn.writer.write_raw(&bytes).await.unwrap();
        assert_eq!(expect_error(&mut conn).await, want, "{transport}: {what}");
        assert!(
            closes(&mut conn).await,
            "{transport}: {what}: connection closes"
        );
    }

    // Frames that decode but are not allowed.
    let mut wrong_token = t.raw().await;
    wrong_token
        .writer
        .write_frame(&hello(5, t.config.secret.token_for(6)))
        .await
        .unwrap();
    assert_eq!(expect_error(&mut wrong_token).await, ErrorCode::BAD_TOKEN);
    assert!(closes(&mut wrong_token).await);

    // A token for the right user whose time has passed: refused, and told why.
    let mut expired = t.raw().await;
    let past = std::time::SystemTime::now() - Duration::from_secs(3600);
    expired
        .writer
        .write_frame(&hello(5, t.config.secret.token_until(5, past)))
        .await
        .unwrap();
    match read(&mut expired).await {
        Some(Frame::Error { code, reason }) => {
            assert_eq!(code, ErrorCode::BAD_TOKEN, "{transport}");
            assert!(reason.contains("expired"), "{transport}: {reason}");
        }
        other => panic!("{transport}: expected an Error, got {other:?}"),
    }
    assert!(closes(&mut expired).await);

    let mut old_version = t.raw().await;
    let token = t.config.secret.token_for(5);
    old_version
        .writer
        .write_frame(&Frame::Hello {
            version: 99,
            user: 5,
            token,
            flags: 0,
        })
        .await
        .unwrap();
    assert_eq!(
        expect_error(&mut old_version).await,
        ErrorCode::UNSUPPORTED_VERSION
    );

    let mut eager = t.raw().await;
    eager
        .writer
        .write_frame(&send(1, 100, b"no hello"))
        .await
        .unwrap();
    assert_eq!(expect_error(&mut eager).await, ErrorCode::HELLO_REQUIRED);
    assert!(closes(&mut eager).await);

    let mut twice = t.client(8).await;
    twice
        .writer
        .write_frame(&hello(8, t.config.secret.token_for(8)))
        .await
        .unwrap();
    assert_eq!(expect_error(&mut twice).await, ErrorCode::UNEXPECTED_FRAME);
    assert!(closes(&mut twice).await);

    let mut bad_mid_session = t.client(9).await;
    bad_mid_session
        .writer
        .write_raw(&raw_frame(1, 0x66, &[]))
        .await
        .unwrap();
    assert_eq!(
        expect_error(&mut bad_mid_session).await,
        ErrorCode::UNKNOWN_KIND
    );

    // A connection that opens its stream but never says Hello.
    let mut silent = t.raw().await;
    silent.writer.write_raw(&[0, 0]).await.unwrap();
    assert_eq!(expect_error(&mut silent).await, ErrorCode::HELLO_TIMEOUT);
    assert!(closes(&mut silent).await);

    stop_tx.send(true).unwrap();
    let rounds = good.await.unwrap();
    assert!(rounds > 0, "good clients made progress");
    let stats = t.server.stats();
    assert_eq!(stats.auth_failures, 2);
    // Each refusal is counted by kind: five malformed openings and one mid-session, the silent
    // connection, and old version + no Hello + second Hello.
    assert_eq!(
        (
            stats.bad_frames,
            stats.hello_timeouts,
            stats.protocol_errors
        ),
        (6, 1, 3),
        "{transport}: {stats:?}"
    );
    assert!(stats.errors_sent >= 11, "{stats:?}");
}

#[tokio::test]
async fn sends_to_a_group_one_is_not_in_and_oversize_bodies_are_refused_with_a_code() {
    let t = start(Limits::default()).await;
    let mut a = t.client(1).await;
    a.writer
        .write_frame(&Frame::Send {
            msg_id: 4,
            to: imbench_proto::Dest::Group(1),
            body: bytes::Bytes::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        read(&mut a).await,
        Some(Frame::Reject {
            msg_id: 4,
            code: ErrorCode::NOT_A_MEMBER
        })
    );
    let big = Frame::Send {
        msg_id: 5,
        to: imbench_proto::Dest::User(2),
        body: bytes::Bytes::from(vec![0u8; 1000]),
    };
    drop(a);
    let t2 = start(Limits {
        max_body: 100,
        ..Limits::default()
    })
    .await;
    let mut a = t2.client(1).await;
    a.writer.write_frame(&big).await.unwrap();
    assert_eq!(
        read(&mut a).await,
        Some(Frame::Reject {
            msg_id: 5,
            code: ErrorCode::BODY_TOO_LARGE
        })
    );
    assert_eq!(
        t2.server.stats().too_large,
        1,
        "counted where it is summed up"
    );
}

/// A connection whose handshake has not finished by the Hello deadline is a Hello timeout: the
/// deadline runs from its first packet to its Hello. It was counted as a failed handshake, so a
/// server with too short a `--hello-timeout` showed no Hello timeouts at all.
#[tokio::test]
async fn a_handshake_unfinished_at_the_hello_deadline_is_a_hello_timeout() {
    let limits = Limits {
        hello_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let t = start_over(Transport::Tls, limits).await;
    // A TCP connection to the TLS port that never sends its ClientHello.
    let _silent = tokio::net::TcpStream::connect(t.addr)
        .await
        .expect("connects");
    let deadline = tokio::time::Instant::now() + util::READ_LIMIT;
    while t.server.stats().hello_timeouts == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = t.server.stats();
    assert_eq!(
        (stats.hello_timeouts, stats.handshakes_failed),
        (1, 0),
        "{stats:?}"
    );
    t.server.shutdown().await;
}

/// A WebSocket port answers a plain HTTP request (a health check) 426 and counts it apart
/// from failed handshakes, and answers a client of another transport (a frame's length where
/// a method should be) 400 at once, not at the Hello deadline.
#[tokio::test]
async fn a_websocket_port_answers_what_is_no_upgrade_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = start_over(Transport::Ws, Limits::default()).await;
    let answer_to = |request: &'static [u8]| {
        let addr = t.addr;
        async move {
            let mut tcp = tokio::net::TcpStream::connect(addr)
                .await
                .expect("connects");
            tcp.write_all(request).await.expect("writes");
            let mut answer = String::new();
            tokio::time::timeout(util::READ_LIMIT, tcp.read_to_string(&mut answer))
                .await
                .expect("answered before the read limit")
                .expect("reads");
            answer
        }
    };
    let started = std::time::Instant::now();
    let health = answer_to(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(health.starts_with("HTTP/1.1 426 "), "{health}");
    let frame = answer_to(&[0, 0, 0, 40, 1, 0, 1]).await;
    assert!(frame.starts_with("HTTP/1.1 400 "), "{frame}");
    // Well before the Hello timeout (10 s).
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let deadline = tokio::time::Instant::now() + util::READ_LIMIT;
    while t.server.stats().handshakes_failed == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = t.server.stats();
    assert_eq!(
        (stats.http_requests_not_upgraded, stats.handshakes_failed),
        (1, 1),
        "{stats:?}"
    );
    t.server.shutdown().await;
}

/// A client whose handshake outlasts the Hello deadline but finishes within the grace after it
/// is told why it is closed; it saw its connection merely lost. Over QUIC the server's side of
/// the handshake ends when it sees the client's stream, which is when the Hello is written: the
/// client writes it half a deadline late. (A deadline of 1 ms, shorter than any handshake, was
/// also shorter than the grace a busy machine needed.)
#[tokio::test]
async fn a_client_whose_handshake_outlasts_the_hello_deadline_is_told_so() {
    // The grace after the deadline is at most 2 s: a 2 s deadline and a Hello 1 s into the
    // grace leave 1 s either side for a busy machine.
    let hello_timeout = Duration::from_secs(2);
    let limits = Limits {
        hello_timeout,
        ..Limits::default()
    };
    let t = start_over(Transport::Quic, limits).await;
    let start = tokio::time::Instant::now();
    let mut conn = t.raw().await;
    tokio::time::sleep_until(start + hello_timeout * 3 / 2).await;
    conn.writer
        .write_frame(&t.hello(1, 0))
        .await
        .expect("hello");
    assert_eq!(expect_error(&mut conn).await, ErrorCode::HELLO_TIMEOUT);
    assert_eq!(t.server.stats().hello_timeouts, 1);
    t.server.shutdown().await;
}
