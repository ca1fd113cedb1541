//! An emulated network path: two namespaces, a server side and a client side, each with a TUN
//! device, and between the two devices a bridge of ours that passes every IP packet through a
//! [`Link`] for its direction. TCP sees real segment loss and retransmits, QUIC real datagram
//! loss: nothing above IP is touched.
//!
//! Each direction is two threads: a reader takes packets off one device and decides their fate
//! on their client's link ([`Flows`]), a writer holds them until their time and puts them on the
//! other device. Dropping the
//! [`NetPath`] stops the threads and removes the devices and namespaces.

use std::collections::BinaryHeap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::flows::{ClientEnd, Flows, Outages};
use crate::link::{Fate, LinkSpec};
use crate::netns::{self, Namespace};
use crate::PathError;

/// The server side's address on the path (TEST-NET-1: never routed anywhere).
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The client side's address on the path.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// The TUN device's name in each namespace.
const DEVICE: &str = "imb0";
/// Largest packet the devices carry.
const MTU: u16 = 1500;
/// How often a reader with nothing to read looks whether the path is being taken down.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Both directions of a path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathSpec {
    /// Client to server.
    #[serde(default)]
    pub up: LinkSpec,
    /// Server to client.
    #[serde(default)]
    pub down: LinkSpec,
    /// One link all clients share (an office's uplink), instead of a link per client (each
    /// phone its own radio link).
    #[serde(default)]
    pub shared: bool,
}

impl PathSpec {
    /// The same link both ways, one per client.
    pub fn symmetric(link: LinkSpec) -> Self {
        Self {
            up: link.clone(),
            down: link,
            shared: false,
        }
    }
}

/// Packets seen by one direction of a path.
#[derive(Debug, Default)]
pub struct DirectionCounters {
    /// Packets offered to the link.
    pub packets: AtomicU64,
    /// Their bytes.
    pub bytes: AtomicU64,
    /// Lost by the link's loss model.
    pub lost: AtomicU64,
    /// Dropped because the link's queue was full.
    pub queue_full: AtomicU64,
    /// Dropped because the client's address was out of reach (a network change).
    pub unreachable: AtomicU64,
    /// Put on the other device.
    pub delivered: AtomicU64,
    /// Packets that could not be put on the other device.
    pub write_errors: AtomicU64,
}

/// A snapshot of [`DirectionCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectionStats {
    pub packets: u64,
    pub bytes: u64,
    pub lost: u64,
    pub queue_full: u64,
    #[serde(default)]
    pub unreachable: u64,
    pub delivered: u64,
    pub write_errors: u64,
}

impl DirectionStats {
    /// What happened between `earlier` and this snapshot.
    pub fn since(&self, earlier: &DirectionStats) -> DirectionStats {
        DirectionStats {
            packets: self.packets.saturating_sub(earlier.packets),
            bytes: self.bytes.saturating_sub(earlier.bytes),
            lost: self.lost.saturating_sub(earlier.lost),
            queue_full: self.queue_full.saturating_sub(earlier.queue_full),
            unreachable: self.unreachable.saturating_sub(earlier.unreachable),
            delivered: self.delivered.saturating_sub(earlier.delivered),
            write_errors: self.write_errors.saturating_sub(earlier.write_errors),
        }
    }

    /// One line for people: packets, lost, dropped at a full queue, and (when any) dropped
    /// for an address out of reach.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "{} packet{}, {} lost, {} dropped at a full queue",
            self.packets,
            if self.packets == 1 { "" } else { "s" },
            self.lost,
            self.queue_full
        );
        if self.unreachable > 0 {
            text += &format!(", {} to or from an address out of reach", self.unreachable);
        }
        text
    }
}

impl DirectionCounters {
    fn snapshot(&self) -> DirectionStats {
        DirectionStats {
            packets: self.packets.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            lost: self.lost.load(Relaxed),
            queue_full: self.queue_full.load(Relaxed),
            unreachable: self.unreachable.load(Relaxed),
            delivered: self.delivered.load(Relaxed),
            write_errors: self.write_errors.load(Relaxed),
        }
    }
}

/// A path that is up. Dropping it takes it down.
pub struct NetPath {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    up: Arc<DirectionCounters>,
    down: Arc<DirectionCounters>,
    outages: Outages,
    // Declared last: dropped after the threads are joined and the devices closed.
    server: Namespace,
    client: Namespace,
}

impl NetPath {
    /// Brings a path up: namespaces, devices and the bridge between them. Needs root (or
    /// CAP_NET_ADMIN and CAP_SYS_ADMIN) and /dev/net/tun.
    pub fn up(spec: &PathSpec, seed: u64) -> Result<Self, PathError> {
        spec.up.validate()?;
        spec.down.validate()?;
        if !crate::is_root() {
            return Err(PathError::NotRoot);
        }
        // A caller that would name what it swept has done so first.
        let _ = netns::remove_orphans();
        let server = Namespace::create("server")?;
        let client = Namespace::create("client")?;
        let server_dev = Arc::new(server.run(|| device(SERVER_ADDR, CLIENT_ADDR))?);
        let client_dev = Arc::new(client.run(|| device(CLIENT_ADDR, SERVER_ADDR))?);
        let stop = Arc::new(AtomicBool::new(false));
        let up = Arc::new(DirectionCounters::default());
        let down = Arc::new(DirectionCounters::default());
        let outages = Outages::default();
        let mut threads = Vec::new();
        let mut spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.to_string())
                .spawn(f)
                .map(|h| threads.push(h))
                .map_err(|e| PathError::Namespace(format!("starting the bridge: {e}")))
        };
        for (name, from, to, link, counters) in [
            (
                "path up",
                client_dev.clone(),
                server_dev.clone(),
                Flows::with_outages(
                    spec.up.clone(),
                    seed,
                    ClientEnd::Source,
                    spec.shared,
                    outages.clone(),
                ),
                up.clone(),
            ),
            (
                "path down",
                server_dev,
                client_dev,
                Flows::with_outages(
                    spec.down.clone(),
                    seed ^ 0x9e37_79b9_7f4a_7c15,
                    ClientEnd::Destination,
                    spec.shared,
                    outages.clone(),
                ),
                down.clone(),
            ),
        ] {
            let (tx, rx) = mpsc::channel::<Due>();
            let (stop_r, stop_w, c) = (stop.clone(), stop.clone(), counters.clone());
            spawn(
                &format!("{name} reader"),
                Box::new(move || read_side(&from, link, &tx, &stop_r, &c)),
            )?;
            spawn(
                &format!("{name} writer"),
                Box::new(move || write_side(&to, &rx, &stop_w, &counters)),
            )?;
        }
        Ok(Self {
            stop,
            threads,
            up,
            down,
            outages,
            server,
            client,
        })
    }

    /// Client addresses out of reach for a while (a client changing networks), on both
    /// directions.
    pub fn outages(&self) -> Outages {
        self.outages.clone()
    }

    /// The namespace the server side lives in (`ip netns exec <name> imbench-server …`).
    pub fn server_namespace(&self) -> &Namespace {
        &self.server
    }

    /// The namespace the client side lives in.
    pub fn client_namespace(&self) -> &Namespace {
        &self.client
    }

    /// Packets seen so far: client to server, server to client.
    pub fn stats(&self) -> (DirectionStats, DirectionStats) {
        (self.up.snapshot(), self.down.snapshot())
    }
}

impl Drop for NetPath {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // The devices went with the threads; the namespaces go as the fields drop.
    }
}

/// A TUN device in the calling thread's namespace: `addr`, with `peer` at the other end.
fn device(addr: Ipv4Addr, peer: Ipv4Addr) -> Result<tun::Device, PathError> {
    let mut config = tun::Configuration::default();
    config
        .tun_name(DEVICE)
        .address(addr)
        .destination(peer)
        .netmask(Ipv4Addr::new(255, 255, 255, 255))
        .mtu(MTU)
        .up();
    tun::create(&config).map_err(|e| PathError::Device(e.to_string()))
}

/// A packet and when it is due on the other device; `seq` keeps the order of packets due at
/// the same instant.
struct Due {
    at: Instant,
    seq: u64,
    packet: Vec<u8>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    // Reversed: the heap's top is the packet due first.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Takes packets off `from` and sends each on with its delivery time, or counts it dropped.
fn read_side(
    from: &tun::Device,
    mut flows: Flows,
    to_writer: &mpsc::Sender<Due>,
    stop: &AtomicBool,
    c: &DirectionCounters,
) {
    let mut buf = vec![0u8; usize::from(MTU) + 64];
    let mut seq = 0u64;
    while !stop.load(Relaxed) {
        let n = match from.recv_timeout(&mut buf, STOP_POLL) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        c.packets.fetch_add(1, Relaxed);
        c.bytes.fetch_add(n as u64, Relaxed);
        match flows.offer(Instant::now(), &buf[..n]) {
            Fate::Deliver(at) => {
                seq += 1;
                let due = Due {
                    at,
                    seq,
                    packet: buf[..n].to_vec(),
                };
                if to_writer.send(due).is_err() {
                    return;
                }
            }
            Fate::Lost => {
                c.lost.fetch_add(1, Relaxed);
            }
            Fate::QueueFull => {
                c.queue_full.fetch_add(1, Relaxed);
            }
            Fate::Unreachable => {
                c.unreachable.fetch_add(1, Relaxed);
            }
        }
    }
}

/// Puts packets on `to` when their time comes. Each client's link gives its packets times in
/// their order; packets of different clients interleave by time.
fn write_side(
    to: &tun::Device,
    from_reader: &mpsc::Receiver<Due>,
    stop: &AtomicBool,
    c: &DirectionCounters,
) {
    // Linux lets a sleep overrun by 50 µs by default to batch wake-ups; a path's delays are
    // meant to the microsecond. Best effort: a failure leaves the default.
    let _ = nix::sys::prctl::set_timerslack(1_000);
    let mut waiting: BinaryHeap<Due> = BinaryHeap::new();
    while !stop.load(Relaxed) {
        let now = Instant::now();
        while waiting.peek().is_some_and(|d| d.at <= now) {
            if let Some(d) = waiting.pop() {
                match to.send(&d.packet) {
                    Ok(_) => c.delivered.fetch_add(1, Relaxed),
                    Err(_) => c.write_errors.fetch_add(1, Relaxed),
                };
            }
        }
        // Until the next packet is due, or a new one comes (it may be due sooner).
        let wait = waiting
            .peek()
            .map_or(STOP_POLL, |d| d.at.saturating_duration_since(now))
            .min(STOP_POLL);
        match from_reader.recv_timeout(wait) {
            Ok(d) => waiting.push(d),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directions_summary_counts_in_words() {
        let one = DirectionStats {
            packets: 1,
            ..DirectionStats::default()
        };
        assert_eq!(one.summary(), "1 packet, 0 lost, 0 dropped at a full queue");
        let many = DirectionStats {
            packets: 8057,
            lost: 2,
            unreachable: 1,
            ..DirectionStats::default()
        };
        assert_eq!(
            many.summary(),
            "8057 packets, 2 lost, 0 dropped at a full queue, 1 to or from an address out of reach"
        );
    }
}
