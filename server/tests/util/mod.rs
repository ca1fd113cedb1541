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
        imbench_proto::Codec::default(),
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
        self.client_with(user, 0).await
    }

    /// The Hello that `user` says with its valid token and `flags`.
    pub fn hello(&self, user: u64, flags: u8) -> Frame {
        Frame::Hello {
            version: PROTOCOL_VERSION,
            user,
            token: self.config.secret.token_for(user),
            flags,
        }
    }

    /// A logged-in client that said Hello with `flags`.
    pub async fn client_with(&self, user: u64, flags: u8) -> FramedConnection {
        let mut conn = self.raw().await;
        conn.writer
            .write_frame(&self.hello(user, flags))
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

/// Bytes per FileChunk a test client writes on the byte-stream transports.
pub const TEST_CHUNK: usize = 32 * 1024;

/// `len` bytes that differ from position to position, so that a lost, repeated or moved
/// piece shows.
pub fn file_content(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0])
        .collect()
}

/// Offers `content` to `to` as transfer `transfer_id` and waits for the server's answer:
/// `Ok` once accepted, the FileCancel code otherwise. Frames other than the answer are skipped.
pub async fn offer(
    conn: &mut FramedConnection,
    transfer_id: u64,
    to: u64,
    size: u64,
) -> Result<(), imbench_proto::ErrorCode> {
    conn.writer
        .write_frame(&Frame::FileOffer {
            transfer_id,
            to: Dest::User(to),
            size,
            sha256: [0; 32],
            name: format!("test-{transfer_id}.bin"),
        })
        .await
        .expect("offer written");
    loop {
        match read(conn).await {
            Some(Frame::FileAccepted { transfer_id: t }) if t == transfer_id => return Ok(()),
            Some(Frame::FileCancel {
                transfer_id: t,
                code,
            }) if t == transfer_id => return Err(code),
            Some(_) => continue,
            None => panic!("connection ended while waiting for the answer to an offer"),
        }
    }
}

/// Reads until the FileCancel of `transfer_id` and returns its code; other frames are skipped.
pub async fn file_cancel(
    conn: &mut FramedConnection,
    transfer_id: u64,
) -> imbench_proto::ErrorCode {
    loop {
        match read(conn).await {
            Some(Frame::FileCancel {
                transfer_id: t,
                code,
            }) if t == transfer_id => return code,
            Some(_) => continue,
            None => panic!("connection ended before FileCancel of transfer {transfer_id}"),
        }
    }
}

/// Logs in as `user` over `connector` to `addr`, with a token from `secret`.
pub async fn login(
    connector: &Connector,
    addr: std::net::SocketAddr,
    secret: &imbench_server::Secret,
    user: u64,
) -> FramedConnection {
    login_with(connector, addr, secret, user, 0).await
}

/// [`login`] with Hello flags.
pub async fn login_with(
    connector: &Connector,
    addr: std::net::SocketAddr,
    secret: &imbench_server::Secret,
    user: u64,
    flags: u8,
) -> FramedConnection {
    let mut conn = connector
        .connect(addr, "localhost")
        .await
        .expect("connects");
    conn.writer
        .write_frame(&Frame::Hello {
            version: PROTOCOL_VERSION,
            user,
            token: secret.token_for(user),
            flags,
        })
        .await
        .expect("hello");
    match read(&mut conn).await {
        Some(Frame::Welcome { .. }) => conn,
        other => panic!("expected Welcome, got {other:?}"),
    }
}

/// Where a test client writes a file's bytes: its own QUIC stream, or FileChunk frames.
pub enum FileOut {
    Side(imbench_transport::SideSend),
    Chunks(u64),
}

impl FileOut {
    /// Starts writing the bytes of accepted transfer `transfer_id`.
    pub async fn open(link: &imbench_transport::framed::Link, transfer_id: u64) -> FileOut {
        match link.side_streams(imbench_proto::Codec::default()) {
            Some(side) => {
                let header = Frame::FileData { transfer_id };
                let send = side.open(&header).await.expect("file stream opens");
                FileOut::Side(send)
            }
            None => FileOut::Chunks(transfer_id),
        }
    }

    /// Writes `bytes`; an error means the server stopped taking them.
    pub async fn write(&mut self, conn: &mut FramedConnection, bytes: &[u8]) -> Result<(), String> {
        match self {
            FileOut::Side(send) => send
                .write_chunk(Bytes::copy_from_slice(bytes))
                .await
                .map_err(|e| e.to_string()),
            FileOut::Chunks(transfer_id) => {
                for piece in bytes.chunks(TEST_CHUNK) {
                    let chunk = Frame::FileChunk {
                        transfer_id: *transfer_id,
                        data: Bytes::copy_from_slice(piece),
                    };
                    conn.writer
                        .write_frame(&chunk)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            }
        }
    }

    pub fn finish(self) {
        if let FileOut::Side(mut send) = self {
            send.finish();
        }
    }
}

/// How a file reached a test client.
#[derive(Debug)]
pub enum Received {
    /// Whole: the FileIncoming header and every byte.
    Whole(Frame, Vec<u8>),
    /// Cut short with this code (a FileCancel, or a QUIC stream reset) after some bytes.
    Cancelled(imbench_proto::ErrorCode, usize),
}

/// Where a test client finds incoming files: QUIC streams, or frames on the connection.
pub struct FileIn {
    /// Frames read on the connection while looking for file frames.
    pub skipped: Vec<Frame>,
    streams: Option<
        tokio::sync::mpsc::Receiver<
            Result<imbench_transport::SideStream, imbench_transport::TransportError>,
        >,
    >,
}

impl FileIn {
    pub fn new(conn: &FramedConnection) -> FileIn {
        let streams = conn
            .link
            .side_streams(imbench_proto::Codec::default())
            .map(|side| side.incoming());
        FileIn {
            skipped: Vec::new(),
            streams,
        }
    }

    /// The FileIncoming header of the next file, and where its bytes come from.
    pub async fn next_header(
        &mut self,
        conn: &mut FramedConnection,
    ) -> (Frame, Option<imbench_transport::SideRecv>) {
        match &mut self.streams {
            Some(rx) => match tokio::time::timeout(READ_LIMIT, rx.recv()).await {
                Ok(Some(Ok(imbench_transport::SideStream::File { header, bytes }))) => {
                    (header, Some(bytes))
                }
                Ok(_) => panic!("expected a file stream"),
                Err(_) => panic!("no file stream within {READ_LIMIT:?}"),
            },
            None => loop {
                match read(conn).await {
                    Some(header @ Frame::FileIncoming { .. }) => return (header, None),
                    Some(other) => self.skipped.push(other),
                    None => panic!("connection ended before a file arrived"),
                }
            },
        }
    }

    /// Reads the next file whole, or until it is cut short.
    pub async fn receive(&mut self, conn: &mut FramedConnection) -> Received {
        self.receive_keeping(conn, true).await
    }

    /// Reads the next file without keeping its bytes: `Whole` holds an empty vector, and the
    /// count is the header's size.
    pub async fn drain(&mut self, conn: &mut FramedConnection) -> Received {
        self.receive_keeping(conn, false).await
    }

    async fn receive_keeping(&mut self, conn: &mut FramedConnection, keep: bool) -> Received {
        let (header, stream) = self.next_header(conn).await;
        let Frame::FileIncoming {
            transfer_id, size, ..
        } = header
        else {
            panic!("expected FileIncoming, got {header:?}")
        };
        let mut got = Vec::new();
        let mut count = 0usize;
        match stream {
            Some(mut recv) => loop {
                match tokio::time::timeout(READ_LIMIT, recv.read_chunk(1 << 20)).await {
                    Err(_) => panic!("file stream stalled after {count} bytes"),
                    Ok(Ok(Some(chunk))) => {
                        count += chunk.len();
                        if keep {
                            got.extend_from_slice(&chunk);
                        }
                    }
                    Ok(Ok(None)) => {
                        assert_eq!(count as u64, size, "stream length");
                        return Received::Whole(header, got);
                    }
                    Ok(Err(imbench_transport::TransportError::StreamReset(code))) => {
                        return Received::Cancelled(imbench_proto::ErrorCode(code), count);
                    }
                    Ok(Err(e)) => panic!("file stream failed: {e}"),
                }
            },
            None => loop {
                if count as u64 == size {
                    return Received::Whole(header, got);
                }
                match read(conn).await {
                    Some(Frame::FileChunk {
                        transfer_id: t,
                        data,
                    }) if t == transfer_id => {
                        count += data.len();
                        if keep {
                            got.extend_from_slice(&data);
                        }
                    }
                    Some(Frame::FileCancel {
                        transfer_id: t,
                        code,
                    }) if t == transfer_id => return Received::Cancelled(code, count),
                    Some(other) => self.skipped.push(other),
                    None => panic!("connection ended in the middle of a file"),
                }
            },
        }
    }
}

pub mod attack;
pub mod process;
