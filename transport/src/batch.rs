//! Datagrams of many QUIC connections sent together: a socket that an endpoint carrying many
//! connections sends through, which holds each datagram briefly, then hands the kernel a run
//! of those going to one address in one system call with UDP segmentation offload (GSO).
//!
//! quinn sends each connection's datagrams on their own: when a server hands one group message
//! to 1,000 members, or a generator acknowledges for 1,000 clients, that is 1,000 `sendmsg`
//! calls, each taking its datagram through the kernel's UDP stack and waking the receiver. They
//! all go to one address (the generator's socket, the server's), so one call can carry a run of
//! them of one size: the kernel passes the run as one buffer, and a receiver that takes
//! coalesced reads (quinn's endpoints do) gets it in one read. On a real network the run leaves
//! as separate packets (the network card or the kernel cuts it), one after another.
//!
//! The datagrams are sent by a task of their own once it has yielded to the other tasks that
//! were ready (tokio's `yield_now`): when the worker it runs on has nothing else ready, or at
//! its periodic look at the network (every 61 tasks run). A run is what the connections queued
//! meanwhile; at a light load it is one datagram, sent a few microseconds later than quinn
//! would have sent it.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};

use quinn::udp::{EcnCodepoint, RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

/// Bytes a socket holds before quinn is told it cannot take more: about 180 full-size
/// datagrams, those being sent included. A connection told so waits, as it does for a full
/// kernel buffer.
const HELD_BYTES: usize = 256 * 1024;

/// The most one system call carries, as the kernel allows for one UDP send.
const MAX_SEND_BYTES: usize = 65_000;

/// One datagram (or one connection's own segmented run) waiting to be sent.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Held {
    destination: SocketAddr,
    ecn: Option<EcnCodepoint>,
    src_ip: Option<IpAddr>,
    /// Where its bytes start in [`Batch::bytes`], and how many.
    start: usize,
    len: usize,
    /// The segment size of a run quinn made itself; `None` for one datagram.
    segment_size: Option<usize>,
}

/// Datagrams in the order quinn gave them, their contents back to back.
#[derive(Default)]
struct Batch {
    held: Vec<Held>,
    bytes: Vec<u8>,
}

impl Batch {
    fn push(&mut self, t: &Transmit) {
        self.held.push(Held {
            destination: t.destination,
            ecn: t.ecn,
            src_ip: t.src_ip,
            start: self.bytes.len(),
            len: t.contents.len(),
            segment_size: t.segment_size,
        });
        self.bytes.extend_from_slice(t.contents);
    }

    /// Keeps `self`'s datagrams from its `from`th on (those not sent), in place, then
    /// appends `after`'s: in the order quinn gave them, in the allocation `self` already has.
    fn keep_from_then(&mut self, from: usize, after: &Batch) {
        let base = self.held.get(from).map_or(self.bytes.len(), |h| h.start);
        self.bytes.drain(..base);
        self.held.drain(..from);
        for h in &mut self.held {
            h.start -= base;
        }
        let shift = self.bytes.len();
        self.held.extend(after.held.iter().map(|h| Held {
            start: h.start + shift,
            ..*h
        }));
        self.bytes.extend_from_slice(&after.bytes);
    }

    /// Empties `self`, keeping what it has allocated.
    fn clear(&mut self) {
        self.held.clear();
        self.bytes.clear();
    }
}

/// What waits to be sent, and who waits for room.
#[derive(Default)]
struct Queue {
    batch: Batch,
    /// The last batch sent, emptied: the next one to fill. Two batches taking turns keep
    /// their allocations, where a fresh one would grow its two vectors from nothing at every
    /// send (at light load, an allocation or two for every datagram).
    spare: Batch,
    /// Bytes taken out to be sent and not yet sent or put back: they still take room.
    in_flight: usize,
    /// Connections told to wait for room, woken once some is made.
    waiting: Vec<Waker>,
    /// How many system calls and datagrams went out: the figure that says whether holding
    /// datagrams paid.
    calls: u64,
    datagrams: u64,
}

impl Queue {
    /// Whether one more transmit may be held. It may take the held bytes past [`HELD_BYTES`]
    /// by its own length (at most a connection's segmented run).
    fn has_room(&self) -> bool {
        self.batch.bytes.len() + self.in_flight < HELD_BYTES
    }

    fn wake_waiting(&mut self) {
        for w in self.waiting.drain(..) {
            w.wake();
        }
    }
}

/// The part of a [`BatchingSocket`] its sending task shares.
struct Shared {
    inner: Arc<dyn AsyncUdpSocket>,
    queue: Mutex<Queue>,
    /// Held by whoever sends (the task, or the socket's drop), so that two never send at
    /// once and out of order; the queue stays free for connections meanwhile.
    sending: Mutex<()>,
    /// Wakes the sending task when the queue stops being empty, and when the socket is gone.
    wake: Arc<tokio::sync::Notify>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The task holds no reference while it waits: this tells it to end.
        self.wake.notify_one();
    }
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
    /// Hands `socket` to quinn through `runtime` and starts the sending task, which ends when
    /// the socket and its pollers are dropped. Must be called within a tokio runtime.
    pub(crate) fn wrap(
        runtime: &dyn quinn::Runtime,
        socket: std::net::UdpSocket,
    ) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        Ok(Self::new(runtime.wrap_udp_socket(socket)?))
    }

    fn new(inner: Arc<dyn AsyncUdpSocket>) -> Arc<Self> {
        let wake = Arc::new(tokio::sync::Notify::new());
        let shared = Arc::new(Shared {
            inner,
            queue: Mutex::new(Queue::default()),
            sending: Mutex::new(()),
            wake: wake.clone(),
        });
        tokio::spawn(send_task(Arc::downgrade(&shared), wake));
        Arc::new(Self { shared })
    }
}

impl Drop for BatchingSocket {
    fn drop(&mut self) {
        // What is still held (a connection's last close, say) goes out now, as far as the
        // kernel takes it.
        self.shared.send_held();
        let q = self.shared.lock();
        tracing::debug!(
            "UDP socket sent {} datagrams in {} system calls",
            q.datagrams,
            q.calls
        );
    }
}

/// Sends what is held each time the queue fills from empty, once the worker has run what else
/// was ready.
async fn send_task(shared: Weak<Shared>, wake: Arc<tokio::sync::Notify>) {
    loop {
        wake.notified().await;
        // Let the connections that are ready queue their datagrams too.
        tokio::task::yield_now().await;
        let Some(s) = shared.upgrade() else { return };
        while !s.send_held() {
            // The kernel's buffer is full: wait until it takes more.
            let mut poller = s.inner.clone().create_io_poller();
            if let Err(e) = std::future::poll_fn(|cx| poller.as_mut().poll_writable(cx)).await {
                // Nothing more will be sent: what is held is dropped (QUIC finds it lost)
                // rather than keeping every connection waiting for room.
                tracing::debug!("UDP socket cannot send: {e}");
                let mut q = s.lock();
                q.batch.clear();
                q.wake_waiting();
                break;
            }
        }
    }
}

impl Shared {
    /// The queue; one that a panic left poisoned is as good, as every change to it is whole.
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends what is held until none is left (`true`) or the kernel takes no more (`false`),
    /// a run of equal ones to one address in each call. The queue is not locked while sending:
    /// connections go on queueing, behind what is being sent.
    fn send_held(&self) -> bool {
        let _sending = self.sending.lock().unwrap_or_else(|e| e.into_inner());
        let mut batch = {
            let mut q = self.lock();
            q.in_flight = q.batch.bytes.len();
            let spare = std::mem::take(&mut q.spare);
            std::mem::replace(&mut q.batch, spare)
        };
        let (mut calls, mut datagrams) = (0, 0);
        let mut next = 0;
        while next < batch.held.len() {
            let first = batch.held[next];
            let max_segments = self.inner.max_transmit_segments().max(1);
            let (count, bytes) = run_length(&batch.held[next..], max_segments);
            let transmit = Transmit {
                destination: first.destination,
                ecn: first.ecn,
                contents: &batch.bytes[first.start..first.start + bytes],
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
                // quinn's socket reports no other failure (it logs it and drops the
                // datagrams, which QUIC finds lost); should one come, the same holds.
                Err(e) => tracing::debug!("UDP send to {} failed: {e}", first.destination),
            }
            // A kernel or device that cannot segment refuses the run, and quinn's socket
            // stops segmenting: the run was not sent, and goes again a datagram at a time.
            // (Should quinn's socket have sent it after all, on its retry without optional
            // fields, the receivers drop the copies as duplicates.)
            if count > 1 && self.inner.max_transmit_segments() < count {
                continue;
            }
            calls += 1;
            datagrams += match (count, first.segment_size) {
                (1, Some(size)) => first.len.div_ceil(size) as u64,
                _ => count as u64,
            };
            next += count;
        }
        let mut q = self.lock();
        q.in_flight = 0;
        q.calls += calls;
        q.datagrams += datagrams;
        let all_sent = next == batch.held.len();
        if all_sent {
            batch.clear();
            q.spare = batch;
        } else {
            // What was not sent goes back first, then what was queued meanwhile; both
            // batches keep their allocations (this is when the kernel's buffer is full and
            // the queue at its largest).
            let mut queued = std::mem::take(&mut q.batch);
            batch.keep_from_then(next, &queued);
            queued.clear();
            q.batch = batch;
            q.spare = queued;
        }
        if q.has_room() {
            q.wake_waiting();
        }
        all_sent
    }
}

/// How many datagrams at the front of `held` one call can carry, and their bytes: single
/// datagrams of one size to one address, up to `max_segments` and the kernel's limit for one
/// send. A run quinn segmented itself goes alone. (Segmentation allows a shorter last
/// datagram, but one that is longer than the rest, such as a probe of the path's MTU, could
/// then take the others down with it if the path refuses it.)
fn run_length(held: &[Held], max_segments: usize) -> (usize, usize) {
    let first = held[0];
    if first.segment_size.is_some() {
        return (1, first.len);
    }
    let mut count = 1;
    let mut bytes = first.len;
    for h in &held[1..] {
        let joins = count < max_segments
            && h.segment_size.is_none()
            && h.destination == first.destination
            && h.ecn == first.ecn
            && h.src_ip == first.src_ip
            && h.len == first.len
            && bytes + h.len <= MAX_SEND_BYTES;
        if !joins {
            break;
        }
        count += 1;
        bytes += h.len;
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
        let mut q = self.shared.lock();
        // The same test as the poller's, so that a connection told there is room finds it.
        if !q.has_room() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let was_empty = q.batch.held.is_empty();
        q.batch.push(transmit);
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
        let mut q = self.shared.lock();
        if q.has_room() {
            return Poll::Ready(Ok(()));
        }
        if !q.waiting.iter().any(|w| w.will_wake(cx.waker())) {
            q.waiting.push(cx.waker().clone());
        }
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
        let mut q = vec![held(1, 100, None); 5];
        assert_eq!(run_length(&q, 64), (5, 500));
        assert_eq!(
            run_length(&q, 3),
            (3, 300),
            "no more than the kernel segments"
        );
        q[2] = held(2, 100, None);
        assert_eq!(run_length(&q, 64), (2, 200), "another address ends it");
        q[2] = held(1, 120, None);
        assert_eq!(run_length(&q, 64), (2, 200), "a longer datagram ends it");
        q[2] = held(1, 60, None);
        assert_eq!(run_length(&q, 64), (2, 200), "and a shorter one");
        q[1] = held(1, 300, Some(100));
        assert_eq!(
            run_length(&q, 64),
            (1, 100),
            "quinn's own runs are not joined"
        );
        q[0] = held(1, 300, Some(100));
        assert_eq!(run_length(&q, 64), (1, 300), "and go alone");
        let big = vec![held(1, 1400, None); 64];
        assert_eq!(
            run_length(&big, 64),
            (46, 64_400),
            "within one send's bytes"
        );
    }

    #[test]
    fn what_could_not_be_sent_goes_back_before_what_was_queued_meanwhile() {
        let t = |contents: &'static [u8]| Transmit {
            destination: SocketAddr::from(([127, 0, 0, 1], 1)),
            ecn: None,
            contents,
            segment_size: None,
            src_ip: None,
        };
        let mut taken = Batch::default();
        for c in [&b"aa"[..], b"bbb", b"c"] {
            taken.push(&t(c));
        }
        let mut queued = Batch::default();
        queued.push(&t(b"dddd"));
        taken.keep_from_then(1, &queued);
        let contents: Vec<&[u8]> = taken
            .held
            .iter()
            .map(|h| &taken.bytes[h.start..h.start + h.len])
            .collect();
        assert_eq!(contents, vec![&b"bbb"[..], b"c", b"dddd"]);
        assert_eq!(taken.bytes, b"bbbcdddd", "the sent ones' bytes are let go");
        let mut all_sent = queued;
        all_sent.keep_from_then(1, &Batch::default());
        assert!(all_sent.held.is_empty() && all_sent.bytes.is_empty());
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
        let q = socket.shared.lock();
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
        // Room may come before the last of them is sent, should the kernel's buffer fill.
        tokio::time::timeout(Duration::from_secs(5), async {
            while counts(&socket).1 < accepted as u64 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("every one sent");
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
