//! One 100 MiB file over QUIC on loopback, two ways in the same run: a plain quinn bulk
//! transfer (one stream, client to server, nothing else), and the same bytes relayed by the
//! imbench server from one client to another (offer, accept, the sender's stream in, a new
//! stream out to the recipient). Both use imbench's QUIC settings, so the ratio of the two is
//! the cost of relaying.

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use imbench_proto::{Codec, Dest, Frame, PROTOCOL_VERSION};
use imbench_server::{RunningServer, ServerConfig};
use imbench_transport::framed::Link;
use imbench_transport::{
    Connector, FramedConnection, Listener, QuicOptions, ServerIdentity, SideRecv, SideSend,
    SideStream, SideStreams, Transport,
};

const SIZE: usize = 100 * 1024 * 1024;
const WRITE: usize = 64 * 1024;

fn quic_of(conn: &FramedConnection) -> quinn::Connection {
    match &conn.link {
        Link::Quic(q) => q.clone(),
        Link::Stream(_) => panic!("a QUIC connection"),
    }
}

async fn write_file(send: &mut quinn::SendStream, piece: &Bytes) {
    for _ in 0..SIZE / WRITE {
        send.write_chunk(piece.clone()).await.expect("write");
    }
    send.finish().expect("finish");
}

async fn read_to_end(mut recv: quinn::RecvStream) -> usize {
    let mut n = 0;
    while let Some(chunk) = recv.read_chunk(1 << 20, true).await.expect("read") {
        n += chunk.bytes.len();
    }
    n
}

/// The side streams of a QUIC connection, as the server and the generator use them.
fn side_of(conn: &FramedConnection) -> SideStreams {
    conn.link
        .side_streams(Codec::default())
        .expect("a QUIC connection has side streams")
}

async fn write_side(send: &mut SideSend, piece: &Bytes) {
    for _ in 0..SIZE / WRITE {
        send.write_chunk(piece.clone()).await.expect("write");
    }
    send.finish();
}

async fn read_side(mut recv: SideRecv) -> usize {
    let mut n = 0;
    while let Some(chunk) = recv.read_chunk(1 << 20).await.expect("read") {
        n += chunk.len();
    }
    n
}

/// A bare quinn connection between two imbench QUIC endpoints.
async fn plain_pair() -> (FramedConnection, FramedConnection, std::sync::Arc<Listener>) {
    let id = ServerIdentity::self_signed(&["localhost"]).expect("identity");
    let opts = QuicOptions::default();
    let listener = std::sync::Arc::new(
        Listener::bind(
            Transport::Quic,
            "127.0.0.1:0".parse().unwrap(),
            &id,
            &opts,
            imbench_proto::Codec::default(),
        )
        .await
        .expect("bind"),
    );
    let addr = listener.local_addr().expect("addr");
    let connector = Connector::new(
        Transport::Quic,
        &id.client_trust(),
        &opts,
        1,
        addr,
        imbench_proto::Codec::default(),
    )
    .expect("connector");
    let accepting = listener.clone();
    // The server side is established once the client's main stream carries a first frame.
    let server = tokio::spawn(async move {
        accepting
            .accept()
            .await
            .expect("incoming")
            .establish()
            .await
    });
    let mut client = connector.connect(addr, "localhost").await.expect("client");
    client
        .writer
        .write_frame(&Frame::Ping { nonce: 0 })
        .await
        .expect("ping");
    let server = server.await.expect("accept task").expect("server");
    // As the server does after Hello: side streams and the full receive window.
    server.link.admit(opts.admitted_receive_window());
    (client, server, listener)
}

async fn plain_transfer(piece: &Bytes) -> Duration {
    let (client, server, _listener) = plain_pair().await;
    let (c, s) = (quic_of(&client), quic_of(&server));
    let start = Instant::now();
    let reader = tokio::spawn(async move {
        let recv = s.accept_uni().await.expect("stream");
        read_to_end(recv).await
    });
    let mut send = c.open_uni().await.expect("open");
    write_file(&mut send, piece).await;
    assert_eq!(reader.await.expect("reader"), SIZE);
    start.elapsed()
}

async fn login(server: &RunningServer, config: &ServerConfig, user: u64) -> FramedConnection {
    let addr = server.addr(Transport::Quic).expect("listening");
    let trust = config.identity.client_trust();
    let connector = Connector::new(
        Transport::Quic,
        &trust,
        &QuicOptions::default(),
        1,
        addr,
        imbench_proto::Codec::default(),
    )
    .expect("connector");
    let mut conn = connector
        .connect(addr, "localhost")
        .await
        .expect("connects");
    conn.writer
        .write_frame(&Frame::Hello {
            version: PROTOCOL_VERSION,
            user,
            token: config.secret.token_for(user),
            flags: 0,
        })
        .await
        .expect("hello");
    match conn.reader.read_frame().await {
        Ok(Some(Frame::Welcome { .. })) => conn,
        other => panic!("expected Welcome, got {other:?}"),
    }
}

async fn relayed_transfer(
    server: &RunningServer,
    config: &ServerConfig,
    piece: &Bytes,
) -> Duration {
    let mut alice = login(server, config, 1).await;
    let bob = login(server, config, 2).await;
    let mut incoming = side_of(&bob).incoming();
    let start = Instant::now();
    alice
        .writer
        .write_frame(&Frame::FileOffer {
            transfer_id: 1,
            to: Dest::User(2),
            size: SIZE as u64,
            sha256: [0; 32],
            name: "bench.bin".into(),
        })
        .await
        .expect("offer");
    match alice.reader.read_frame().await {
        Ok(Some(Frame::FileAccepted { .. })) => {}
        other => panic!("expected FileAccepted, got {other:?}"),
    }
    let reader = tokio::spawn(async move {
        match incoming.recv().await {
            Some(Ok(SideStream::File { bytes, .. })) => read_side(bytes).await,
            _ => panic!("expected a file stream"),
        }
    });
    let mut send = side_of(&alice)
        .open(&Frame::FileData { transfer_id: 1 })
        .await
        .expect("file stream");
    write_side(&mut send, piece).await;
    assert_eq!(reader.await.expect("reader"), SIZE);
    let elapsed = start.elapsed();
    alice.link.abort(0, "done");
    bob.link.abort(0, "done");
    elapsed
}

fn file_relay(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let config = ServerConfig::loopback().expect("config");
    let server = runtime
        .block_on(imbench_server::start(config.clone()))
        .expect("server");
    let piece = Bytes::from(vec![0x5Au8; WRITE]);
    let mut g = c.benchmark_group("file_100MiB_quic");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.bench_function("plain_quinn", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += plain_transfer(&piece).await;
                }
                total
            })
        })
    });
    g.bench_function("relayed", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += relayed_transfer(&server, &config, &piece).await;
                }
                total
            })
        })
    });
    g.finish();
    runtime.block_on(server.shutdown());
}

criterion_group!(benches, file_relay);
criterion_main!(benches);
