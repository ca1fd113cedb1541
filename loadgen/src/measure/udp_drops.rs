//! Datagrams the kernel dropped on the run's UDP sockets because their receive buffer was full.
//!
//! A QUIC run on loopback loses nothing on the wire; what it can lose is datagrams that arrive
//! while a socket's receive buffer is full (the buffer too small for the burst, or the process
//! too slow to read). QUIC then recovers them with retransmissions and probe timeouts, whose
//! backoff puts milliseconds to seconds into the latency figures. So a run reads each of its
//! sockets' `drops` column in `/proc/net/udp` and `/proc/net/udp6` at the start of the measured
//! period, once a second through it and at its end (so a socket opened or closed meanwhile, as
//! a client's own is when it reconnects, counts too): the generator's own sockets (found through `/proc/self/fd`, which
//! includes the embedded server's, in every network namespace this process's threads are in),
//! and, when the server is on this machine's loopback, the socket bound to the server's port.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Drops on the run's sockets at one moment.
#[derive(Debug, Clone, Default)]
pub struct DropSnapshot {
    /// Drops by socket inode, for this process's UDP sockets.
    own: HashMap<u64, u64>,
    /// Drops of the socket bound to the server's port, when it is on loopback elsewhere.
    server: Option<u64>,
}

/// Drops over the measured period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UdpDrops {
    /// On this process's sockets (the generator's, and the embedded server's when it runs
    /// here).
    pub this_process: u64,
    /// On a standalone server's socket on this machine's loopback; `None` when the server is
    /// embedded or elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standalone_server: Option<u64>,
}

impl UdpDrops {
    /// All drops seen.
    pub fn total(&self) -> u64 {
        self.this_process + self.standalone_server.unwrap_or(0)
    }
}

impl DropSnapshot {
    /// Reads the drops now. `server` is the standalone server's address, if it has one here.
    pub fn take(server: Option<SocketAddr>) -> Self {
        let own_inodes = own_socket_inodes();
        let rows = parse_udp_table(&udp_tables());
        let own = rows
            .iter()
            .filter(|r| own_inodes.contains(&r.inode))
            .map(|r| (r.inode, r.drops))
            .collect();
        let server = server.filter(|a| a.ip().is_loopback()).map(|a| {
            rows.iter()
                .filter(|r| r.port == a.port() && !own_inodes.contains(&r.inode))
                .map(|r| r.drops)
                .sum()
        });
        Self { own, server }
    }
}

/// Drops over a period, from snapshots taken through it (once a second): a socket opened during
/// the period counts from 0, and one closed during it (a client's own socket when it reconnects
/// or changes networks) counts up to the last snapshot that saw it.
#[derive(Debug, Clone, Default)]
pub struct DropTally {
    /// Drops by socket inode when the period began, or 0 for a socket opened since.
    first: HashMap<u64, u64>,
    /// Drops by socket inode at the latest snapshot that listed the socket.
    last: HashMap<u64, u64>,
    server_first: Option<u64>,
    server_last: Option<u64>,
}

impl DropTally {
    /// A period that begins at `start`.
    pub fn start(start: DropSnapshot) -> Self {
        Self {
            first: start.own.clone(),
            last: start.own,
            server_first: start.server,
            server_last: start.server,
        }
    }

    /// Takes in a snapshot taken later in the period.
    pub fn observe(&mut self, later: DropSnapshot) {
        for (inode, drops) in later.own {
            self.first.entry(inode).or_insert(0);
            self.last.insert(inode, drops);
        }
        if later.server.is_some() {
            self.server_last = later.server;
        }
    }

    /// The drops over the period so far.
    pub fn drops(&self) -> UdpDrops {
        let this_process = self
            .last
            .iter()
            .map(|(inode, d)| d.saturating_sub(self.first.get(inode).copied().unwrap_or(0)))
            .sum();
        let standalone_server = match (self.server_first, self.server_last) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        UdpDrops {
            this_process,
            standalone_server,
        }
    }
}

/// The UDP tables of every network namespace a thread of this process is in, once each: on
/// an emulated path the embedded server's threads are in one namespace and the generator's in
/// another, and `/proc/net/udp` lists only the sockets of the namespace of the thread that
/// reads it.
fn udp_tables() -> String {
    let mut table = String::new();
    let mut read = |dir: &std::path::Path| {
        for name in ["udp", "udp6"] {
            if let Ok(t) = std::fs::read_to_string(dir.join(name)) {
                table.push_str(&t);
            }
        }
    };
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        read(std::path::Path::new("/proc/net"));
        return table;
    };
    let mut seen = HashSet::new();
    for task in tasks.flatten() {
        let Ok(namespace) = std::fs::read_link(task.path().join("ns/net")) else {
            continue;
        };
        if seen.insert(namespace) {
            read(&task.path().join("net"));
        }
    }
    table
}

/// Inodes of this process's sockets, from the `socket:[N]` links in `/proc/self/fd`.
fn own_socket_inodes() -> HashSet<u64> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return HashSet::new();
    };
    dir.flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|target| {
            let t = target.to_str()?;
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

#[derive(Debug, PartialEq)]
struct Row {
    port: u16,
    inode: u64,
    drops: u64,
}

/// Rows of `/proc/net/udp{,6}`: `sl local_address rem_address st tx_queue:rx_queue tr:tm
/// retrnsmt uid timeout inode ref pointer drops`; the local address is `HEXIP:HEXPORT`.
fn parse_udp_table(text: &str) -> Vec<Row> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 13 || !f[0].ends_with(':') {
                return None;
            }
            let port = u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok()?;
            Some(Row {
                port,
                inode: f[9].parse().ok()?,
                drops: f[f.len() - 1].parse().ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
  1: 0100007F:9C40 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17\n\
  2: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 99 2 0000000000000000 0\n";

    #[test]
    fn rows_give_port_inode_and_drops() {
        let rows = parse_udp_table(TABLE);
        assert_eq!(
            rows,
            vec![
                Row {
                    port: 40000,
                    inode: 4242,
                    drops: 17
                },
                Row {
                    port: 68,
                    inode: 99,
                    drops: 0
                }
            ]
        );
    }

    #[test]
    fn drops_count_every_socket_seen_during_the_period() {
        let mut tally = DropTally::start(DropSnapshot {
            own: [(1, 10), (2, 5)].into(),
            server: Some(100),
        });
        // Socket 2 drops 3 more, then closes; socket 3 opens and drops 4, then 7 in all.
        tally.observe(DropSnapshot {
            own: [(1, 12), (2, 8), (3, 4)].into(),
            server: Some(110),
        });
        tally.observe(DropSnapshot {
            own: [(1, 25), (3, 7)].into(),
            server: Some(130),
        });
        let d = tally.drops();
        assert_eq!(d.this_process, 15 + 3 + 7);
        assert_eq!(d.standalone_server, Some(30));
        assert_eq!(d.total(), 55);
        // Nothing dropped: nothing counted.
        let quiet = DropTally::start(DropSnapshot {
            own: [(1, 10)].into(),
            server: None,
        });
        assert_eq!(quiet.drops(), UdpDrops::default());
    }

    /// A socket made by a thread in another network namespace (as the embedded server's are on
    /// an emulated path) is found too.
    #[cfg(target_os = "linux")]
    #[test]
    #[ignore = "needs root; .ci/run runs it"]
    fn a_socket_in_another_namespace_of_this_process_is_found() {
        let (made, socket) = std::sync::mpsc::channel();
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("needs root");
            // A new namespace's loopback is down; a wildcard bind needs no interface.
            let s = std::net::UdpSocket::bind("0.0.0.0:0").expect("binds");
            made.send(s).expect("main waits");
            let _ = wait.recv();
        });
        let s = socket.recv().expect("the thread made a socket");
        let inode = {
            use std::os::fd::AsRawFd;
            let link = std::fs::read_link(format!("/proc/self/fd/{}", s.as_raw_fd())).unwrap();
            let t = link.to_string_lossy().into_owned();
            t.trim_start_matches("socket:[")
                .trim_end_matches(']')
                .parse::<u64>()
                .unwrap()
        };
        assert!(
            !std::fs::read_to_string("/proc/net/udp")
                .unwrap()
                .contains(&format!(" {inode} ")),
            "this thread's namespace does not list it"
        );
        let snap = DropSnapshot::take(None);
        assert!(snap.own.contains_key(&inode), "{:?}", snap.own);
        drop(done);
        thread.join().unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_socket_of_this_process_is_found() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let snap = DropSnapshot::take(None);
        assert!(!snap.own.is_empty(), "the bound socket is listed");
        drop(s);
    }
}
