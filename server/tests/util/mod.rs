//! Shared helpers for the server's end-to-end tests: a server on an ephemeral loopback port, a
//! minimal real client over any transport, and a macro that runs one test body over every
//! transport.
#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use imbench_proto::{Dest, Frame, PROTOCOL_VERSION};
use imbench_server::{Limits, RunningServer, ServerConfig};
use imbench_transport::{Connector, FramedConnection, QuicOptions, Transport};

/// Longest any single read in a test waits before the test fails instead of hanging.
pub const READ_LIMIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub server: RunningServer,
    pub config: ServerConfig,
    pub connector: Connector,
    pub transport: Transport,
    pub addr: std::net::SocketAddr,
}

/// Generates one `#[tokio::test]` per transport, each calling `body(transport)`.
#[macro_export]
macro_rules! over_every_transport {
    ($body:ident) => {
        mod $body {
            use imbench_transport::Transport;
            #[tokio::test]
            async fn quic() {
                super::$body(Transport::Quic).await
            }
            #[tokio::test]
            async fn tcp() {
                super::$body(Transport::Tcp).await
            }
            #[tokio::test]
            async fn tls() {
                super::$body(Transport::Tls).await
            }
            #[tokio::test]
            async fn ws() {
                super::$body(Transport::Ws).await
            }
            #[tokio::test]
            async fn wss() {
                super::$body(Transport::Wss).await
            }
        }
    };
}

pub async fn start(limits: Limits) -> TestServer {
    start_with(limits, QuicOptions::default()).await
}

/// A QUIC server with `limits`; clients connect with `client_quic`.
pub async fn start_with(limits: Limits, client_quic: QuicOptions) -> TestServer {
    start_over_with(Transport::Quic, limits, client_quic).await
}

/// A server with `limits` listening on `transport` only.
pub async fn start_over(transport: Transport, limits: Limits) -> TestServer {
    start_over_with(transport, limits, QuicOptions::default()).await
}

async fn start_over_with(
    transport: Transport,
    limits: Limits,
    client_quic: QuicOptions,
) -> TestServer {
    let mut config = ServerConfig::loopback_on(&[transport]).expect("config");
    config.limits = limits;
    let server = imbench_server::start(config.clone())
        .await
        .expect("server starts");
    let addr = server.addr(transport).expect("listening");
    let connector = Connector::new(
        transport,
        &config.identity.client_trust(),
        &client_quic,
        1,
        addr,
    )
    .expect("connector");
    TestServer {
        server,
        config,
        connector,
        transport,
        addr,
    }
}

impl TestServer {
    /// A connection that has not said anything yet.
    pub async fn raw(&self) -> FramedConnection {
        self.connector
            .connect(self.addr, "localhost")
            .await
            .expect("connects")
    }

    /// A logged-in client.
    pub async fn client(&self, user: u64) -> FramedConnection {
        let mut conn = self.raw().await;
        let token = self.config.secret.token_for(user);
        conn.writer
            .write_frame(&Frame::Hello {
                version: PROTOCOL_VERSION,
                user,
                token,
            })
            .await
            .expect("hello");
        match read(&mut conn).await {
            Some(Frame::Welcome { .. }) => conn,
            other => panic!("expected Welcome, got {other:?}"),
        }
    }
}

/// The next frame, or None at end of stream; fails the test after [`READ_LIMIT`].
pub async fn read(conn: &mut FramedConnection) -> Option<Frame> {
    tokio::time::timeout(READ_LIMIT, conn.reader.read_frame())
        .await
        .expect("read timed out")
        .ok()
        .flatten()
}

pub fn send(msg_id: u64, to: u64, body: &'static [u8]) -> Frame {
    Frame::Send {
        msg_id,
        to: Dest::User(to),
        body: Bytes::from_static(body),
    }
}

/// Reads until an Error frame and returns its code; panics on anything else but deliveries.
pub async fn expect_error(conn: &mut FramedConnection) -> imbench_proto::ErrorCode {
    loop {
        match read(conn).await {
            Some(Frame::Error { code, .. }) => return code,
            Some(Frame::Deliver { .. }) | Some(Frame::Ack { .. }) => continue,
            other => panic!("expected an Error frame, got {other:?}"),
        }
    }
}

/// Whether the connection is closed: reads reach the end, or fail, within the limit.
pub async fn closes(conn: &mut FramedConnection) -> bool {
    loop {
        match tokio::time::timeout(READ_LIMIT, conn.reader.read_frame()).await {
            Err(_) => return false,
            Ok(Ok(Some(_))) => continue,
            Ok(_) => return true,
        }
    }
}
