//! Clients that misbehave on purpose, one way each, for the attack tests and the soak: each
//! is bounded in count and time.

use std::time::Duration;

use bytes::Bytes;
use imbench_proto::{Dest, ErrorCode, Frame};
use imbench_transport::{FramedConnection, QuicOptions, Transport};

use super::process::Server;
use super::read;

/// Reads until `n` answers (Ack or Reject) have come; returns how many were acks.
pub async fn answers(conn: &mut FramedConnection, n: usize) -> usize {
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

pub async fn login(server: &Server, transport: Transport, user: u64) -> FramedConnection {
    super::login(
        &server.connector(transport),
        server.addr(transport),
        &server.secret(),
        user,
    )
    .await
}

/// A newcomer over `transport` logs in and is answered.
pub async fn assert_served(server: &Server, transport: Transport) {
    let mut honest = login(server, transport, 5).await;
    honest
        .writer
        .write_frame(&Frame::Ping { nonce: 1 })
        .await
        .expect("ping");
    assert_eq!(read(&mut honest).await, Some(Frame::Pong { nonce: 1 }));
}

/// A client that reads nothing: QUIC with a 64 KiB receive window, so that what the server
/// has for it stays in the server instead of in a socket buffer.
pub async fn non_reader(server: &Server, user: u64) -> FramedConnection {
    let quic = QuicOptions {
        stream_receive_window: Some(64 * 1024),
        receive_window: Some(64 * 1024),
        ..QuicOptions::default()
    };
    super::login(
        &server.connector_with(Transport::Quic, &quic),
        server.addr(Transport::Quic),
        &server.secret(),
        user,
    )
    .await
}

/// Sends `n` messages of `body` to `to` from `conn`, then reads their answers; returns how many
/// were acked and the codes of those refused.
pub async fn send_to(
    conn: &mut FramedConnection,
    first_id: u64,
    n: u64,
    to: Dest,
    body: &Bytes,
) -> (usize, Vec<ErrorCode>) {
    let mut refused = Vec::new();
    let mut acked = 0;
    for chunk in (0..n).collect::<Vec<_>>().chunks(50) {
        for &i in chunk {
            let frame = Frame::Send {
                msg_id: first_id + i,
                to,
                body: body.clone(),
            };
            conn.writer.queue(&frame).expect("queue");
        }
        conn.writer.flush().await.expect("write");
        let mut got = 0;
        while got < chunk.len() {
            match read(conn).await {
                Some(Frame::Ack { .. }) => {
                    acked += 1;
                    got += 1;
                }
                Some(Frame::Reject { code, .. }) => {
                    refused.push(code);
                    got += 1;
                }
                Some(_) => {}
                None => panic!("sender closed"),
            }
        }
    }
    (acked, refused)
}

/// Reads deliveries until none comes for a second; returns their ids.
pub async fn drain(conn: &mut FramedConnection) -> Vec<u64> {
    let mut ids = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(1), conn.reader.read_frame()).await {
            Ok(Ok(Some(Frame::Deliver { msg_id, .. }))) => ids.push(msg_id),
            Ok(Ok(Some(_))) => {}
            _ => return ids,
        }
    }
}

/// Opens up to `streams` unidirectional streams on `conn` and writes `bytes` on each, giving
/// up on whatever the server does not allow within a second; returns the streams opened.
pub async fn flood_streams(
    link: &imbench_transport::framed::Link,
    streams: usize,
    bytes: &[u8],
) -> usize {
    let imbench_transport::framed::Link::Quic(quic) = link else {
        panic!("a QUIC connection")
    };
    let mut opened = 0;
    let mut sends = Vec::new();
    for _ in 0..streams {
        match tokio::time::timeout(Duration::from_millis(200), quic.open_uni()).await {
            Ok(Ok(send)) => {
                opened += 1;
                sends.push(send);
            }
            _ => break,
        }
    }
    for send in &mut sends {
        let _ = tokio::time::timeout(Duration::from_millis(500), send.write_all(bytes)).await;
    }
    // Kept open (not finished) while the server's memory is measured.
    std::mem::forget(sends);
    opened
}

/// Opens a WebSocket to `addr` by hand and starts a binary message that announces `announced`
/// bytes and carries `sent` of them, never finishing it.
pub async fn partial_ws_message(
    addr: std::net::SocketAddr,
    announced: u64,
    sent: usize,
) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.expect("request");
    let mut answer = Vec::new();
    while !answer.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        if tcp.read(&mut byte).await.expect("answer") == 0 {
            panic!("closed during the handshake");
        }
        answer.push(byte[0]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 101"), "not upgraded");
    // FIN, binary; masked, 64-bit length; a zero mask keeps the payload as written.
    let mut frame = vec![0x82, 0x80 | 127];
    frame.extend_from_slice(&announced.to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.resize(frame.len() + sent, 0);
    let _ = tokio::time::timeout(Duration::from_millis(500), tcp.write_all(&frame)).await;
    tcp
}
