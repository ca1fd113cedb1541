//! The server's group routing path without sockets: one message offered to every other member
//! of a group of 10 to 10,000, then each member's queue drained (as its writer would). What is
//! measured is the per-recipient cost of fan-out: membership walk, user-table lookup, queue push
//! and the shared body's reference count.

use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use imbench_proto::Dest;
use imbench_server::files::FileSink;
use imbench_server::groups::{GroupLimits, Groups};
use imbench_server::router::{
    Delivery, HoldLimits, Kick, Outbound, Router, SessionHandle, SessionLoad, Written,
};
use imbench_server::Stats;
use tokio::sync::mpsc;

const GROUP: u64 = 1;

fn fanout(c: &mut Criterion) {
    let mut bench = c.benchmark_group("fanout");
    for members in [10u64, 100, 1_000, 10_000] {
        let stats = Arc::new(Stats::default());
        let router = Router::new(
            HoldLimits {
                per_user: 16,
                total_bytes: 1 << 20,
            },
            stats.clone(),
        );
        let groups = Groups::new(GroupLimits::default(), stats);
        let mut queues: Vec<(mpsc::Receiver<Outbound>, Arc<SessionLoad>)> = Vec::new();
        let pools = router.pools();
        for user in 0..members {
            let (tx, rx) = mpsc::channel(64);
            let load = Arc::new(SessionLoad::default());
            router.register(
                user,
                SessionHandle {
                    id: user,
                    tx,
                    kick: Arc::new(Kick::default()),
                    files: FileSink::closed(),
                    load: load.clone(),
                },
            );
            groups.join(GROUP, user, |_| {}).expect("join");
            queues.push((rx, load));
        }
        let body = Bytes::from(vec![0x5a; 100]);
        bench.throughput(Throughput::Elements(members - 1));
        bench.bench_function(BenchmarkId::new("route_100B", members), |b| {
            let mut msg_id = 0;
            b.iter(|| {
                msg_id += 1;
                let d = Delivery {
                    msg_id,
                    from: 0,
                    to: Dest::Group(GROUP),
                    body: body.clone(),
                    key: None,
                };
                let out = groups.route(GROUP, 0, d, &router).expect("routes");
                assert_eq!(out.queued as u64, members - 1, "every member queued");
                // What each session's writer does once the delivery is written.
                for (q, load) in &mut queues {
                    let mut written = Written::default();
                    while let Ok(o) = q.try_recv() {
                        if let Outbound::Deliver(d) = &o {
                            written.add(d, false);
                        }
                    }
                    pools.written(load, written);
                }
            })
        });
    }
    bench.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
