//! What the generator's receive path costs per delivery, against the floor: a reader that reads
//! each frame and throws it away.
//!
//! One process, the same connections for both: an imbench server on its own runtime, 1,000
//! receiving clients logged in over TCP or QUIC on a single-threaded runtime of their own, and
//! one sender on a third runtime that sends direct messages round-robin to them at 50,000 a
//! second (50 a second per receiver, so each delivery is its own read, as in real IM load).
//! Each reading task either throws the frame away (`bare`) or hands it to the generator's
//! [`Receiver`] (`full`: body decode and checksum, exactly-once inbox, counters, histograms).
//! Both read through the imbench driver, so both pay for turning frames into events.
//!
//! The figure criterion reports is the receivers' thread CPU time per delivery (from
//! /proc/thread-self/schedstat), not wall time: `full` over `bare` is the price of the
//! generator's bookkeeping on top of reading.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use imbench_loadgen::client::context::RunContext;
use imbench_loadgen::client::receive::{Next, Receiver, Receiving};
use imbench_loadgen::driver::imbench::ImbenchDriver;
use imbench_loadgen::driver::{Driver, Events, Op, Sender};
use imbench_loadgen::measure::accounting::Inbox;
use imbench_loadgen::measure::timer::Timer;
use imbench_loadgen::workload::body::{self, Header};
use imbench_loadgen::Scenario;
use imbench_proto::Dest;
use imbench_server::ServerConfig;
use imbench_transport::{Connector, Transport};
use tokio::runtime::{Builder, Runtime};

/// Receiving clients.
const RECEIVERS: usize = 1000;
/// Deliveries a second the sender paces itself to.
const RATE: u64 = 50_000;
/// The sender's pacing tick.
const TICK: Duration = Duration::from_millis(1);
/// The longest one batch of deliveries may take to arrive before the benchmark gives up.
const ARRIVAL_LIMIT: Duration = Duration::from_secs(60);

/// The receivers' thread: a single-threaded runtime whose CPU time is the measured figure.
struct Receivers {
    runtime: tokio::runtime::Handle,
    /// Frames read so far, both modes.
    delivered: Arc<AtomicU64>,
    /// True: full receive path; false: read and throw away.
    full: Arc<AtomicBool>,
}

impl Receivers {
    /// Starts a thread with a single-threaded runtime that logs in every receiver and reads.
    fn start(endpoint: Endpoint) -> (Self, Arc<RunContext>) {
        let delivered = Arc::new(AtomicU64::new(0));
        let full = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let (d, f) = (delivered.clone(), full.clone());
        std::thread::Builder::new()
            .name("bench-receivers".into())
            .spawn(move || {
                let runtime = Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("receivers' runtime");
                runtime.block_on(async move {
                    let ctx = Arc::new(endpoint.context());
                    for index in 0..RECEIVERS {
                        let conn = imbench_loadgen::client::connect(&ctx, index as u64)
                            .await
                            .expect("receiver logs in");
                        std::mem::forget(conn.sender);
                        let (ctx, d, f) = (ctx.clone(), d.clone(), f.clone());
                        tokio::spawn(read(ctx, index, conn.events, d, f));
                    }
                    let _ = ready_tx.send((tokio::runtime::Handle::current(), ctx.clone()));
                    std::future::pending::<()>().await
                })
            })
            .expect("receivers' thread");
        let (runtime, ctx) = ready.recv().expect("receivers logged in");
        let receivers = Self {
            runtime,
            delivered,
            full,
        };
        (receivers, ctx)
    }

    /// CPU time the receivers' thread has used so far.
    fn cpu(&self) -> Duration {
        let (tx, rx) = std::sync::mpsc::channel();
        // Runs on the receivers' own (only) thread.
        self.runtime.spawn(async move {
            let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
            let ns: u64 = stat
                .split_whitespace()
                .next()
                .and_then(|f| f.parse().ok())
                .expect("schedstat run time");
            let _ = tx.send(Duration::from_nanos(ns));
        });
        rx.recv().expect("receivers' thread answers")
    }
}

/// Where the server listens and what a client needs to log in.
#[derive(Clone)]
struct Endpoint {
    transport: Transport,
    trust: imbench_transport::ClientTrust,
    quic: imbench_transport::QuicOptions,
    addr: std::net::SocketAddr,
    secret: imbench_server::Secret,
}

impl Endpoint {
    /// A run context for clients of this server. Called inside the runtime its connections
    /// will run on (a QUIC endpoint's work runs where it was made).
    fn context(&self) -> RunContext {
        let mut scenario = Scenario::builtin_default();
        scenario.clients = RECEIVERS + 1;
        // Every delivery is in the measured window, so the full path records each one.
        scenario.ramp_up = Duration::ZERO;
        scenario.warmup = Duration::ZERO;
        scenario.duration = Duration::from_secs(24 * 3600);
        let t = self.transport;
        let connector = Connector::new(
            t,
            &self.trust,
            &self.quic,
            1,
            self.addr,
            imbench_proto::Codec::default(),
        )
        .expect("connector");
        let (timer, timer_thread) = Timer::tokio();
        std::mem::forget(timer_thread);
        let driver = Driver::Imbench(Box::new(ImbenchDriver {
            transport: t,
            connector,
            addr: self.addr,
            server_name: "localhost".into(),
            secret: self.secret.clone(),
            resumption: imbench_transport::Resumption::Off,
            tickets: Default::default(),
            welcomed: Default::default(),
        }));
        RunContext::new(scenario, driver, timer, None, "bench", Vec::new())
    }
}

/// One transport's setup: server, context, receivers and sender.
struct Setup {
    _server_runtime: Runtime,
    sender_runtime: Runtime,
    receivers: Receivers,
    sender: Sender,
    ctx: Arc<RunContext>,
    /// Per receiver, the next sequence number of a message the full path will see.
    seq: Vec<u64>,
    next_msg_id: u64,
}

fn setup(transport: Transport) -> Setup {
    let server_runtime = Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-server")
        .enable_all()
        .build()
        .expect("server runtime");
    let sender_runtime = Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-sender")
        .enable_all()
        .build()
        .expect("sender runtime");
    let config = ServerConfig::loopback_on(&[transport]).expect("server config");
    let trust = config.identity.client_trust();
    let secret = config.secret.clone();
    let quic = config.quic.clone();
    let server = server_runtime
        .block_on(imbench_server::start(config))
        .expect("server starts");
    let addr = server.addr(transport).expect("listening");
    std::mem::forget(server); // lives as long as its runtime

    let endpoint = Endpoint {
        transport,
        trust,
        quic,
        addr,
        secret,
    };
    let (receivers, ctx) = Receivers::start(endpoint.clone());
    let sender = sender_runtime.block_on(async {
        // A connection of its own, so none of the sender's work lands on the receivers' thread.
        let own = endpoint.context();
        let conn = imbench_loadgen::client::connect(&own, RECEIVERS as u64)
            .await
            .expect("sender logs in");
        std::mem::forget(own);
        // The server's Acks are read and dropped so they never hold it up.
        let mut acks = conn.events;
        tokio::spawn(async move { while let Ok(Some(_)) = acks.next().await {} });
        conn.sender
    });
    Setup {
        _server_runtime: server_runtime,
        sender_runtime,
        receivers,
        sender,
        ctx,
        seq: vec![0; RECEIVERS],
        next_msg_id: 1,
    }
}

/// One receiving client's task: every frame is read; in full mode it also goes through the
/// generator's receive path.
async fn read(
    ctx: Arc<RunContext>,
    index: usize,
    mut events: Events,
    delivered: Arc<AtomicU64>,
    full: Arc<AtomicBool>,
) {
    let (file_events, _) = tokio::sync::mpsc::unbounded_channel();
    let shared = Receiving {
        inbox: Inbox::default(),
        received: Arc::new(AtomicU64::new(0)),
        leaving: Arc::new(AtomicBool::new(false)),
        awaiting: None,
        file_events,
    };
    let mut receiver = Receiver::new(&ctx, index, shared);
    while let Ok(Some(event)) = events.next().await {
        if full.load(Relaxed) {
            let now = ctx.clock.now_us();
            if receiver.on_event(event, now) == Next::End {
                break;
            }
        }
        delivered.fetch_add(1, Relaxed);
    }
}

impl Setup {
    /// Sends `n` messages paced at [`RATE`], waits until all arrived, and gives the CPU time
    /// the receivers used for them.
    fn deliver(&mut self, n: u64, full: bool) -> Duration {
        self.receivers.full.store(full, Relaxed);
        let target = self.receivers.delivered.load(Relaxed) + n;
        let cpu_before = self.receivers.cpu();
        let pool = &self.ctx.payload;
        let ctx = &self.ctx;
        let sender = &mut self.sender;
        let seq = &mut self.seq;
        let next_msg_id = &mut self.next_msg_id;
        let per_tick = (RATE * TICK.as_micros() as u64 / 1_000_000).max(1);
        self.sender_runtime.block_on(async {
            let mut tick = tokio::time::interval(TICK);
            let mut sent = 0;
            let mut to = *next_msg_id as usize % RECEIVERS;
            while sent < n {
                tick.tick().await;
                for _ in 0..per_tick.min(n - sent) {
                    // Bodies carry wall-clock times, as the generator's do.
                    let now = ctx.clock.wall_us(ctx.clock.now_us());
                    let header = Header {
                        intended_us: now,
                        sent_us: now,
                        measured: true,
                        resent: false,
                        sender: RECEIVERS as u64,
                        seq: seq[to],
                        // This run's: the receivers hold every body to it.
                        run: ctx.run_tag,
                    };
                    if full {
                        seq[to] += 1;
                    }
                    let op = Op::Send {
                        msg_id: *next_msg_id,
                        to: Dest::User(to as u64),
                        body: body::encode(&header, 100, pool),
                    };
                    *next_msg_id += 1;
                    to = (to + 1) % RECEIVERS;
                    sender.queue(op).expect("queue Send");
                    sent += 1;
                }
                sender.flush().await.expect("send");
            }
        });
        let deadline = Instant::now() + ARRIVAL_LIMIT;
        while self.receivers.delivered.load(Relaxed) < target {
            assert!(Instant::now() < deadline, "deliveries stopped arriving");
            std::thread::sleep(Duration::from_millis(1));
        }
        self.receivers.cpu() - cpu_before
    }
}

fn receive_path(c: &mut Criterion) {
    for transport in [Transport::Tcp, Transport::Quic] {
        let mut setup = setup(transport);
        let mut group = c.benchmark_group(format!("receive_path/{transport}"));
        group.throughput(Throughput::Elements(1));
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(2));
        // Side by side: bare and full alternate on the same connections.
        group.bench_function("bare_reader", |b| {
            b.iter_custom(|n| setup.deliver(n, false))
        });
        group.bench_function("full_receive_path", |b| {
            b.iter_custom(|n| setup.deliver(n, true))
        });
        group.finish();
    }
}

criterion_group!(benches, receive_path);
criterion_main!(benches);
