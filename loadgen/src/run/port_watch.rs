//! Whether a standalone server's QUIC port still takes datagrams. A server process that ended
//! leaves its UDP port closed, and the host says so to a datagram sent there (ICMP port
//! unreachable), while QUIC itself hears nothing: its connections only time out. Asked twice a
//! second during a run, so that a server killed mid-run ends the run within about a second,
//! not after the watchdog's whole silence.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// How often the port is asked.
const EVERY: Duration = Duration::from_millis(500);

/// How long an answer to one datagram is waited for: on loopback or a LAN the host's refusal
/// comes within a round trip; a host that sends none leaves the watchdog's silence to judge.
const WAIT: Duration = Duration::from_millis(200);

/// Watches one QUIC server's port from a task of its own, until dropped.
pub struct PortWatch {
    addr: SocketAddr,
    closed: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl PortWatch {
    /// Starts asking `addr` (call within the run's runtime).
    pub fn start(addr: SocketAddr) -> Self {
        let closed = Arc::new(AtomicBool::new(false));
        let seen = closed.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(EVERY).await;
                if imbench_transport::quic::udp_port_refused(addr, WAIT).await {
                    seen.store(true, Relaxed);
                    return;
                }
            }
        });
        Self { addr, closed, task }
    }

    /// Why the server is gone, once its port was found closed.
    pub fn gone(&self) -> Option<String> {
        self.closed.load(Relaxed).then(|| {
            format!(
                "the server's QUIC port {} no longer takes datagrams (the host refused one sent to it): its process has ended",
                self.addr
            )
        })
    }
}

impl Drop for PortWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port that a socket held and then let go is found closed; one still held is not.
    #[tokio::test]
    async fn a_port_let_go_is_found_closed_and_a_held_one_is_not() {
        let held = std::net::UdpSocket::bind("127.0.0.1:0").expect("a socket");
        let held_addr = held.local_addr().expect("its address");
        let gone = std::net::UdpSocket::bind("127.0.0.1:0").expect("a socket");
        let gone_addr = gone.local_addr().expect("its address");
        drop(gone);
        let (live, dead) = (PortWatch::start(held_addr), PortWatch::start(gone_addr));
        // A deadline, not a timing check: the first ask is half a second in.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while dead.gone().is_none() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let said = dead.gone().expect("the let-go port is found closed");
        assert!(said.contains(&gone_addr.to_string()), "{said}");
        assert!(live.gone().is_none());
        drop(held);
    }
}
