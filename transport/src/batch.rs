//! Datagrams of many QUIC connections sent together: a socket that an endpoint carrying many
//! connections sends through, which holds each datagram until the tokio worker sending it has
//! nothing else ready to run, then hands the kernel those going to one address in one system
//! call with UDP segmentation offload (GSO).
//!
//! quinn sends each connection's datagrams on their own: when a server hands one group message
//! to 1,000 members, or a generator acknowledges for 1,000 clients, that is 1,000 `sendmsg`
//! calls, each taking its datagram through the kernel's UDP stack and waking the receiver. They
//! all go to one address (the generator's socket, the server's), so one call can carry a run of
//! them of one size: the kernel passes the run as one buffer, and a receiver that takes
//! coalesced reads (quinn's endpoints do) gets it in one read.
//!
//! A datagram waits at most until the worker that queued it runs out of ready tasks or
//! reaches its periodic look at the network (tokio's `yield_now`), so a run is the burst that
//! one worker produced in one go; at a light load a run is one datagram, sent a few
//! microseconds later than quinn would have sent it.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};

use quinn::udp::{EcnCodepoint, RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

/// Bytes a socket holds before quinn is told it cannot take more: about 180 full-size
/// datagrams. A connection told so waits, as it does for a full kernel buffer.
const HELD_BYTES: usize = 256 * 1024;

/// The most one system call carries, as the kernel allows for one UDP send.
const MAX_SEND_BYTES: usize = 65_000;

/// One datagram (or one connection's own segmented run) waiting to be sent.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Held {
    destination: SocketAddr,
    ecn: Option<EcnCodepoint>,
    src_ip: Option<IpAddr>,
    /// Where its bytes start in [`Queue::bytes`] (counted from the front, sent bytes
    /// included), and how many.
    start: usize,
    len: usize,
    /// The segment size of a run quinn made itself; `None` for one datagram.
    segment_size: Option<usize>,
}

/// What waits to be sent, in the order quinn gave it.
#[derive(Default)]
struct Queue {
    held: VecDeque<Held>,
    /// The contents of every held datagram, back to back. Bytes of sent ones at the front are
    /// dropped when the queue empties.
    bytes: Vec<u8>,
    /// Bytes before `held[0]` already sent.
    sent: usize,
    /// Connections told to wait for room, woken once some is made.
    waiting: Vec<Waker>,
    /// How many system calls and datagrams went out: the figure that says whether holding
    /// datagrams paid.
    calls: u64,
    datagrams: u64,
}

impl Queue {
    fn held_bytes(&self) -> usize {
        self.bytes.len() - self.sent
    }

    /// Whether one more transmit may be held. It may take the held bytes past [`HELD_BYTES`]
    /// by its own length (at most a connection's segmented run).
    fn has_room(&self) -> bool {
        self.held_bytes() < HELD_BYTES
    }
}

/// The part of a [`BatchingSocket`] its sending task shares.
struct Shared {
    inner: Arc<dyn AsyncUdpSocket>,
    queue: Mutex<Queue>,
    /// Wakes the sending task when the queue stops being empty.
    wake: tokio::sync::Notify,
}

/// A UDP socket for quinn that sends the datagrams of its connections in runs; see the module
/// documentation.
pub(crate) struct BatchingSocket {
    shared: Arc<Shared>,
}

impl fmt::Debug for BatchingSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchingSocket")
            .field("inner", &self.shared.inner)
            .finish_non_exhaustive()
    }
}

impl BatchingSocket {
    /// Wraps `inner` and starts its sending task, which ends when the socket is dropped.
    /// Must be called within a tokio runtime.
    pub(crate) fn wrap(inner: Arc<dyn AsyncUdpSocket>) -> Arc<dyn AsyncUdpSocket> {
        Self::new(inner)
    }

    fn new(inner: Arc<dyn AsyncUdpSocket>) -> Arc<Self> {
        let shared = Arc::new(Shared {
            inner,
            queue: Mutex::new(Queue::default()),
            wake: tokio::sync::Notify::new(),
        });
        tokio::spawn(send_task(Arc::downgrade(&shared)));
        Arc::new(Self { shared })
    }
}

impl Drop for BatchingSocket {
    fn drop(&mut self) {
        // What is still held (a connection's last close, say) goes out now, as far as the
        // kernel takes it; the sending task then finds the socket gone and ends.
        self.shared.send_held();
        if let Ok(q) = self.shared.queue.lock() {
            tracing::debug!(
                "UDP socket sent {} datagrams in {} system calls",
                q.datagrams,
                q.calls
            );
        }
        self.shared.wake.notify_one();
    }
}

/// Sends what is held each time the queue fills from empty, once the worker has run what else
/// was ready.
async fn send_task(shared: Weak<Shared>) {
    loop {
        let Some(s) = shared.upgrade() else { return };
        s.wake.notified().await;
        // Let the connections that are ready queue their datagrams too.
        tokio::task::yield_now().await;
        loop {
            s.send_held();
            if s.queue.lock().map(|q| q.held.is_empty()).unwrap_or(true) {
                break;
            }
            // The kernel's buffer is full: wait until it takes more.
            let mut poller = s.inner.clone().create_io_poller();
            if std::future::poll_fn(|cx| poller.as_mut().poll_writable(cx))
                .await
                .is_err()
            {
                break;
            }
        }
        drop(s);
    }
}

impl Shared {
    /// Sends held datagrams until none is left or the kernel takes no more, a run of equal
    /// ones to one address in each call.
    fn send_held(&self) {
        let Ok(mut q) = self.queue.lock() else { return };
        let max_segments = self.inner.max_transmit_segments().max(1);
        while let Some(first) = q.held.front().copied() {
            let (count, bytes) = run_length(&q.held, max_segments);
            let start = first.start;
            let transmit = Transmit {
                destination: first.destination,
                ecn: first.ecn,
                contents: &q.bytes[start..start + bytes],
                segment_size: if count > 1 {
                    Some(first.len)
                } else {
                    first.segment_size
                },
                src_ip: first.src_ip,
            };
            match self.inner.try_send(&transmit) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // Another failure loses these datagrams, as a failed send does in quinn:
                // QUIC finds them lost and sends their contents again.
                Err(e) => tracing::debug!("UDP send to {} failed: {e}", first.destination),
            }
            q.calls += 1;
            q.datagrams += match (count, first.segment_size) {
                (1, Some(size)) => first.len.div_ceil(size) as u64,
                _ => count as u64,
            };
            q.held.drain(..count);
            q.sent += bytes;
        }
        if q.held.is_empty() {
            q.bytes.clear();
            q.sent = 0;
        }
        for w in q.waiting.drain(..) {
            w.wake();
        }
    }
}

/// How many datagrams at the front of `held` one call can carry, and their bytes: single
/// datagrams of one size to one address, up to `max_segments` and the kernel's limit for one
/// send (the last may be shorter, as segmentation allows). A run quinn segmented itself goes
/// alone.
fn run_length(held: &VecDeque<Held>, max_segments: usize) -> (usize, usize) {
    let first = held[0];
    if first.segment_size.is_some() {
        return (1, first.len);
    }
    let mut count = 1;
    let mut bytes = first.len;
    for h in held.iter().skip(1) {
        let joins = count < max_segments
            && h.segment_size.is_none()
            && h.destination == first.destination
            && h.ecn == first.ecn
            && h.src_ip == first.src_ip
            && h.len <= first.len
            && bytes + h.len <= MAX_SEND_BYTES;
        if !joins {
            break;
        }
        count += 1;
        bytes += h.len;
        // A shorter datagram can only end a run.
        if h.len < first.len {
            break;
        }
    }
    (count, bytes)
}

impl AsyncUdpSocket for BatchingSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(RoomPoller {
            shared: self.shared.clone(),
        })
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        let Ok(mut q) = self.shared.queue.lock() else {
            return self.shared.inner.try_send(transmit);
        };
        // The same test as the poller's, so that a connection told there is room finds it.
        if !q.has_room() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let was_empty = q.held.is_empty();
        let start = q.sent + q.held_bytes();
        q.bytes.extend_from_slice(transmit.contents);
        q.held.push_back(Held {
            destination: transmit.destination,
            ecn: transmit.ecn,
            src_ip: transmit.src_ip,
            start,
            len: transmit.contents.len(),
            segment_size: transmit.segment_size,
        });
        drop(q);
        if was_empty {
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [io::IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.shared.inner.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.shared.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.shared.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.shared.inner.may_fragment()
    }
}

/// Tells a connection whether the socket has room for its next datagram, and wakes it when
/// some is made.
struct RoomPoller {
    shared: Arc<Shared>,
}

impl fmt::Debug for RoomPoller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoomPoller").finish_non_exhaustive()
    }
}

impl UdpPoller for RoomPoller {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context) -> Poll<io::Result<()>> {
        let Ok(mut q) = self.shared.queue.lock() else {
            return Poll::Ready(Ok(()));
        };
        if q.has_room() {
            return Poll::Ready(Ok(()));
        }
        q.waiting.push(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn held(destination: u16, len: usize, segment_size: Option<usize>) -> Held {
        Held {
            destination: SocketAddr::from(([127, 0, 0, 1], destination)),
            ecn: None,
            src_ip: None,
            start: 0,
            len,
            segment_size,
        }
    }

    #[test]
    fn a_run_is_datagrams_of_one_size_to_one_address() {
        let q: VecDeque<Held> = [held(1, 100, None); 5].into_iter().collect();
        assert_eq!(run_length(&q, 64), (5, 500));
        assert_eq!(
            run_length(&q, 3),
            (3, 300),
            "no more than the kernel segments"
        );
        let mut q = q;
        q[2] = held(2, 100, None);
        assert_eq!(run_length(&q, 64), (2, 200), "another address ends it");
        q[2] = held(1, 120, None);
        assert_eq!(run_length(&q, 64), (2, 200), "a longer datagram ends it");
        q[2] = held(1, 60, None);
        assert_eq!(run_length(&q, 64), (3, 260), "a shorter one is its last");
        q[1] = held(1, 300, Some(100));
        assert_eq!(
            run_length(&q, 64),
            (1, 100),
            "quinn's own runs are not joined"
        );
        q[0] = held(1, 300, Some(100));
        assert_eq!(run_length(&q, 64), (1, 300), "and go alone");
        let big: VecDeque<Held> = [held(1, 1400, None); 64].into_iter().collect();
        assert_eq!(
            run_length(&big, 64),
            (46, 64_400),
            "within one send's bytes"
        );
    }

    fn sockets() -> (Arc<BatchingSocket>, std::net::UdpSocket) {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let inner = quinn::Runtime::wrap_udp_socket(&quinn::TokioRuntime, sender).unwrap();
        (BatchingSocket::new(inner), receiver)
    }

    fn send(socket: &BatchingSocket, to: SocketAddr, contents: &[u8]) -> io::Result<()> {
        socket.try_send(&Transmit {
            destination: to,
            ecn: None,
            contents,
            segment_size: None,
            src_ip: None,
        })
    }

    fn receive(receiver: &std::net::UdpSocket, count: usize) -> Vec<Vec<u8>> {
        let mut buf = [0u8; 2048];
        (0..count)
            .map(|_| {
                let n = receiver.recv(&mut buf).expect("a datagram within 5 s");
                buf[..n].to_vec()
            })
            .collect()
    }

    fn counts(socket: &BatchingSocket) -> (u64, u64) {
        let q = socket.shared.queue.lock().unwrap();
        (q.calls, q.datagrams)
    }

    #[tokio::test]
    async fn datagrams_queued_together_arrive_whole_in_order_from_fewer_calls() {
        let (socket, receiver) = sockets();
        let to = receiver.local_addr().unwrap();
        let sent: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 100]).collect();
        for d in &sent {
            send(&socket, to, d).unwrap();
        }
        assert_eq!(counts(&socket), (0, 0), "held until the task runs");
        let got = tokio::task::spawn_blocking(move || receive(&receiver, 20))
            .await
            .unwrap();
        assert_eq!(got, sent);
        let segments = socket.max_transmit_segments() as u64;
        assert_eq!(counts(&socket), (20u64.div_ceil(segments), 20));
    }

    #[tokio::test]
    async fn a_full_socket_turns_connections_away_until_it_has_sent() {
        let (socket, receiver) = sockets();
        let to = receiver.local_addr().unwrap();
        let datagram = [7u8; 1200];
        let mut accepted = 0;
        while send(&socket, to, &datagram).is_ok() {
            accepted += 1;
            assert!(accepted < 1000, "the socket never said it was full");
        }
        assert_eq!(accepted, HELD_BYTES.div_ceil(datagram.len()));
        let mut poller = socket.clone().create_io_poller();
        let waker = std::task::Waker::noop();
        let pending = poller
            .as_mut()
            .poll_writable(&mut Context::from_waker(waker));
        assert!(
            pending.is_pending(),
            "told there is room when there is none"
        );
        tokio::time::timeout(
            Duration::from_secs(5),
            std::future::poll_fn(|cx| poller.as_mut().poll_writable(cx)),
        )
        .await
        .expect("woken once the held datagrams went out")
        .unwrap();
        send(&socket, to, &datagram).expect("room again");
    }

    #[tokio::test]
    async fn what_is_held_when_the_socket_goes_is_sent() {
        let (socket, receiver) = sockets();
        let to = receiver.local_addr().unwrap();
        // One sent the usual way first, so that the runtime has seen the socket writable:
        // a socket it has not yet seen so is not written to.
        send(&socket, to, &[9; 10]).unwrap();
        let receiver = tokio::task::spawn_blocking(move || {
            assert_eq!(receive(&receiver, 1), vec![vec![9; 10]]);
            receiver
        })
        .await
        .unwrap();
        for i in 0..3u8 {
            send(&socket, to, &[i; 10]).unwrap();
        }
        drop(socket);
        let got = receive(&receiver, 3);
        assert_eq!(got, vec![vec![0; 10], vec![1; 10], vec![2; 10]]);
    }
}
