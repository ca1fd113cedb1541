//! The generator's per-message bookkeeping: drawing the schedule, building and checking the
//! measurement header, recording a latency, and exactly-once accounting.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use imbench_loadgen::measure::accounting::Inbox;
use imbench_loadgen::measure::metrics::{Metric, Recorder};
use imbench_loadgen::workload::body::{self, Header};
use imbench_loadgen::workload::schedule::Schedule;
use imbench_loadgen::Scenario;

fn generator(c: &mut Criterion) {
    let scenario = Scenario::builtin_default();
    let mut group = c.benchmark_group("generator");
    group.throughput(Throughput::Elements(1));

    let mut schedule = Schedule::new(&scenario, 3, 0).expect("direct chat is on");
    group.bench_function("schedule_next_due", |b| b.iter(|| schedule.next_due()));

    let pool = body::payload_pool(1, 128 * 1024);
    let header = Header {
        intended_us: 1_000_000,
        sent_us: 1_000_050,
        measured: true,
        resent: false,
        sender: 3,
        seq: 17,
        run: 1,
    };
    group.bench_function("body_encode_100B", |b| {
        b.iter(|| body::encode(&header, 100, &pool))
    });
    let encoded = body::encode(&header, 100, &pool);
    group.bench_function("body_verify_100B", |b| {
        b.iter(|| body::decode(&encoded).expect("valid"))
    });

    let recorder = Recorder::new();
    let mut v = 0u64;
    group.bench_function("record_latency", |b| {
        b.iter(|| {
            v = (v + 7919) % 200_000;
            recorder.record(Metric::Direct, v + 1, true);
        })
    });

    let mut inbox = Inbox::default();
    let mut seq = 0u64;
    group.bench_function("inbox_receive_in_order", |b| {
        b.iter(|| {
            seq += 1;
            inbox.receive(seq % 5, seq / 5)
        })
    });
    group.finish();
}

criterion_group!(benches, generator);
criterion_main!(benches);
