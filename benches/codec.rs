//! Frame encode and decode: the per-message cost every transport pays on both sides.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use imbench_proto::{Codec, Dest, Frame};

fn deliver(size: usize) -> Frame {
    Frame::Deliver {
        msg_id: 42,
        from: 7,
        to: Dest::User(9),
        body: Bytes::from(vec![0xab; size]),
    }
}

fn codec(c: &mut Criterion) {
    let codec = Codec::default();
    let mut group = c.benchmark_group("codec");
    for size in [100usize, 1024, 16 * 1024] {
        let frame = deliver(size);
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("encode_deliver", size), &frame, |b, f| {
            let mut buf = BytesMut::with_capacity(64 * 1024);
            b.iter(|| {
                buf.clear();
                codec.encode(f, &mut buf).expect("encodes");
            })
        });
        let mut wire = BytesMut::new();
        codec.encode(&frame, &mut wire).expect("encodes");
        group.bench_with_input(
            BenchmarkId::new("decode_deliver", size),
            &wire,
            |b, wire| {
                b.iter(|| {
                    let mut buf = wire.clone();
                    codec
                        .decode(&mut buf)
                        .expect("decodes")
                        .expect("whole frame")
                })
            },
        );
    }
    // A batch of 64 small frames in one buffer, as a coalesced write delivers them.
    let mut batch = BytesMut::new();
    for _ in 0..64 {
        codec.encode(&deliver(100), &mut batch).expect("encodes");
    }
    group.throughput(Throughput::Elements(64));
    group.bench_function("decode_batch_64x100", |b| {
        b.iter(|| {
            let mut buf = batch.clone();
            let mut n = 0;
            while let Some(_f) = codec.decode(&mut buf).expect("decodes") {
                n += 1;
            }
            assert_eq!(n, 64);
        })
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
