//! One message's round trip through the real server, per transport, in-process on loopback:
//! the sender writes Send, the recipient reads Deliver and the sender reads Ack. And the cost
//! of a connection (handshakes, Hello, Welcome) per transport. A regression in one transport
//! shows here without running a load.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use imbench_proto::{Dest, Frame, PROTOCOL_VERSION};
use imbench_server::{RunningServer, ServerConfig};
use imbench_transport::{Connector, FramedConnection, QuicOptions, Transport};

struct Setup {
    runtime: tokio::runtime::Runtime,
    config: ServerConfig,
    server: RunningServer,
}

async fn login(
    connector: &Connector,
    server: &RunningServer,
    config: &ServerConfig,
    transport: Transport,
    user: u64,
) -> FramedConnection {
    let addr = server.addr(transport).expect("listening");
    let mut conn = connector
        .connect(addr, "localhost")
        .await
        .expect("connects");
    let token = config.secret.token_for(user);
    conn.writer
        .write_frame(&Frame::Hello {
            version: PROTOCOL_VERSION,
            user,
            token,
            flags: 0,
        })
        .await
        .expect("hello");
    match conn.reader.read_frame().await {
        Ok(Some(Frame::Welcome { .. })) => conn,
        other => panic!("expected Welcome, got {other:?}"),
    }
}

fn connector(s: &Setup, transport: Transport) -> Connector {
    let addr = s.server.addr(transport).expect("listening");
    let trust = s.config.identity.client_trust();
    s.runtime
        .block_on(async {
            Connector::new(
                transport,
                &trust,
                &QuicOptions::default(),
                1,
                addr,
                imbench_proto::Codec::default(),
            )
        })
        .expect("connector")
}

fn transports(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let config = ServerConfig::loopback_on(&Transport::ALL).expect("config");
    let server = runtime
        .block_on(imbench_server::start(config.clone()))
        .expect("server");
    let s = Setup {
        runtime,
        config,
        server,
    };
    let body = Bytes::from(vec![0x42; 100]);
    let mut group = c.benchmark_group("round_trip_100B");
    for t in Transport::ALL {
        let connector = connector(&s, t);
        let (mut a, mut b) = s.runtime.block_on(async {
            (
                login(&connector, &s.server, &s.config, t, 1).await,
                login(&connector, &s.server, &s.config, t, 2).await,
            )
        });
        let mut msg_id = 0u64;
        group.bench_function(BenchmarkId::from_parameter(t), |bench| {
            bench.iter(|| {
                msg_id += 1;
                s.runtime.block_on(async {
                    let send = Frame::Send {
                        msg_id,
                        to: Dest::User(2),
                        body: body.clone(),
                    };
                    a.writer.write_frame(&send).await.expect("send");
                    match b.reader.read_frame().await {
                        Ok(Some(Frame::Deliver { msg_id: got, .. })) if got == msg_id => {}
                        other => panic!("expected Deliver {msg_id}, got {other:?}"),
                    }
                    match a.reader.read_frame().await {
                        Ok(Some(Frame::Ack { msg_id: got })) if got == msg_id => {}
                        other => panic!("expected Ack {msg_id}, got {other:?}"),
                    }
                })
            })
        });
        a.link.abort(0, "done");
        b.link.abort(0, "done");
    }
    group.finish();

    let mut group = c.benchmark_group("connect");
    group.sample_size(30);
    for t in Transport::ALL {
        let connector = connector(&s, t);
        let mut user = 1000u64;
        group.bench_function(BenchmarkId::from_parameter(t), |bench| {
            bench.iter(|| {
                user += 1;
                s.runtime.block_on(async {
                    let conn = login(&connector, &s.server, &s.config, t, user).await;
                    conn.link.abort(0, "measured");
                })
            })
        });
    }
    group.finish();
    s.runtime.block_on(s.server.shutdown());
}

criterion_group!(benches, transports);
criterion_main!(benches);
