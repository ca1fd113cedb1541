//! Helpers for the generator's end-to-end tests: small scenarios, a server reachable as a
//! remote target, and a UDP proxy that delays every datagram by a known amount.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use imbench_loadgen::{ProgressMode, RunConfig, Scenario, ServerSpec};
use imbench_server::ServerConfig;
use imbench_transport::QuicOptions;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A scenario small enough for a test: `clients` clients at `rate` msg/s each.
pub fn small_scenario(clients: usize, rate: f64, duration: Duration) -> Scenario {
    small_scenario_with(clients, rate, duration, "")
}

/// [`small_scenario`] with more TOML (a `[groups]` section, say) after it.
pub fn small_scenario_with(clients: usize, rate: f64, duration: Duration, more: &str) -> Scenario {
    let text = format!(
        r#"
name = "test"
clients = {clients}
ramp_up = "200ms"
warmup = "500ms"
duration = "{}ms"
drain = "5s"
seed = 11
[direct]
rate = {rate}
arrival = "poisson"
size = {{ dist = "fixed", bytes = 100 }}
partners = {{ pick = "random", count = 2 }}
# These runs test what is measured, not the generator's punctuality or the CPU left over on a
# busy test machine (tests run side by side).
[generator]
max_schedule_lag = "250ms"
max_cpu_busy = 1.0
max_cpu_wait = "1h"
max_hiccup = "1h"
{more}
"#,
        duration.as_millis()
    );
    Scenario::from_toml(&text, "test").expect("test scenario")
}

pub fn config(scenario: Scenario, server: ServerSpec) -> RunConfig {
    RunConfig {
        scenario,
        server,
        out_dir: None,
        progress: ProgressMode::Quiet,
        quic: QuicOptions::default(),
        transport: imbench_transport::Transport::Quic,
        interrupt: None,
        shard: None,
    }
}

/// How a run reaches `config`'s server at `addr` (which may be a proxy in front of it).
pub fn remote(config: &ServerConfig, addr: SocketAddr) -> ServerSpec {
    ServerSpec::Remote {
        addr,
        trust: config.identity.client_trust(),
        secret: Box::new(config.secret.clone()),
        server_name: Some("localhost".into()),
    }
}

/// A UDP proxy on loopback that forwards datagrams both ways, each `delay` late. Returns the
/// address clients should use. Runs until the test's runtime ends.
pub async fn delay_proxy(upstream: SocketAddr, delay: Duration) -> SocketAddr {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind proxy"));
    let addr = front.local_addr().expect("proxy addr");
    // Datagrams towards clients, with the time each may leave.
    let (to_client, mut to_client_rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>, SocketAddr)>();
    let sender = front.clone();
    tokio::spawn(async move {
        while let Some((at, data, dest)) = to_client_rx.recv().await {
            tokio::time::sleep_until(at).await;
            let _ = sender.send_to(&data, dest).await;
        }
    });
    tokio::spawn(async move {
        let mut backs: HashMap<SocketAddr, mpsc::UnboundedSender<(Instant, Vec<u8>)>> =
            HashMap::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((n, client)) = front.recv_from(&mut buf).await else {
                return;
            };
            let at = Instant::now() + delay;
            let tx = backs.entry(client).or_insert_with(|| {
                let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
                let to_client = to_client.clone();
                tokio::spawn(async move {
                    let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind back"));
                    back.connect(upstream).await.expect("connect upstream");
                    let reader = back.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 65536];
                        while let Ok(n) = reader.recv(&mut buf).await {
                            let at = Instant::now() + delay;
                            if to_client.send((at, buf[..n].to_vec(), client)).is_err() {
                                return;
                            }
                        }
                    });
                    while let Some((at, data)) = rx.recv().await {
                        tokio::time::sleep_until(at).await;
                        let _ = back.send(&data).await;
                    }
                });
                tx
            });
            let _ = tx.send((at, buf[..n].to_vec()));
        }
    });
    addr
}
