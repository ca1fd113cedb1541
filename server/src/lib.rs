//! The imbench reference IM server: authenticated sessions, direct-message routing with
//! acknowledgements, group fan-out, and bounded offline hold, over QUIC.
//!
//! A library first: `imbench run` embeds it in-process on loopback, tests start it on an
//! ephemeral port, and the `imbench-server` binary runs it standalone. Bodies are opaque bytes,
//! shared and never copied while routed.
//!
//! ```no_run
//! # async fn demo() -> Result<(), imbench_server::ServerError> {
//! let server = imbench_server::start(imbench_server::ServerConfig::loopback()?).await?;
//! println!("listening on {:?}", server.addrs());
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`auth`] — the token secret; tokens are an expiry and an HMAC-SHA256 of the user id and it.
//! - [`router`] — the user table, queues and the offline hold, with their policies.
//! - [`groups`] — group membership and fan-out.
//! - [`files`] — the file relay: one task per transfer, bounded memory, both ways to cancel.
//! - `session`: one connection from handshake to close (reader and writer tasks).
//! - [`stats`] — counters; `export` — them for a Prometheus scrape; [`scrape`] — the
//!   `GET /metrics` endpoint.
//! - [`store`] — the holds' copy on disk (`--data-dir`), written by a thread of its own.
//! - [`process`] — this process's memory and CPU time.
#![warn(missing_docs)]

mod addresses;
pub mod auth;
pub mod cert_facts;
pub mod error_line;
mod export;
pub mod files;
pub mod groups;
pub mod listen_addr;
pub mod process;
mod receipts;
pub mod router;
pub mod scrape;
mod session;
pub mod stats;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use imbench_transport::tls::DEFAULT_CERT_NAMES;
use imbench_transport::{Listener, QuicOptions, ServerIdentity, Transport, TransportError};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

pub use auth::Secret;
pub use stats::{Stats, StatsSnapshot};

use groups::{GroupLimits, Groups};
use router::{HoldLimits, QueueLimits, Router};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding or TLS setup failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The token secret could not be made.
    #[error(transparent)]
    Secret(#[from] auth::SecretError),
    /// A listener could not be bound.
    #[error("listening for {transport} on {addr}: {source}")]
    Bind {
        /// The transport.
        transport: Transport,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: TransportError,
    },
    /// The configuration names no address to listen on.
    #[error("no address to listen on")]
    NoListener,
    /// The holds' data folder could not be opened.
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// Limits that protect the server; every one bounds memory or time.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections (including those still in handshake) served at once; more are refused.
    pub max_connections: usize,
    /// Connections served at once from one IP address, 0 for no limit; more are answered
    /// `too_many_connections`.
    pub max_connections_per_address: usize,
    /// Time from a connection's first packet to its Hello; slower ones get `hello_timeout`.
    pub hello_timeout: Duration,
    /// Frames queued per session before the session counts as a slow consumer.
    pub queue_capacity: usize,
    /// Bytes of deliveries all session queues together may hold; past it new messages are
    /// refused with `busy`.
    pub max_queued_bytes: usize,
    /// Bytes of deliveries one session may have waiting to be written before it counts as a
    /// slow consumer and is disconnected.
    pub session_queue_bytes: usize,
    /// A client that accepts no byte for this long while the server has something to write to
    /// it is disconnected as a slow consumer; what it was not sent is held for it.
    pub write_timeout: Duration,
    /// Largest message body accepted; larger ones are rejected with `body_too_large`.
    pub max_body: usize,
    /// Largest frame accepted or sent, on every transport and side stream; a larger one ends
    /// the session with `frame_too_large`.
    pub max_frame_len: u32,
    /// Deliveries a session that asked for receipts may have written and not yet had
    /// confirmed; past it the writer waits for a receipt.
    pub receipt_window: usize,
    /// Messages held per offline user.
    pub hold_per_user: usize,
    /// Bytes held for all offline users together.
    pub hold_bytes: usize,
    /// Most members of one group; more Joins are refused with `group_full`.
    pub max_group_members: usize,
    /// Most groups one user is in; more Joins are refused with `too_many_groups`.
    pub groups_per_user: usize,
    /// Joins and Leaves one session may make per second on average, after a burst of
    /// `groups_per_user`; faster ones are refused with `too_many_requests`.
    pub group_changes_per_sec: u32,
    /// Largest file accepted; larger offers are refused with `file_too_large`.
    pub max_file_size: u64,
    /// File transfers one session may be sending at once; more are refused with
    /// `too_many_transfers`.
    pub transfers_per_user: usize,
    /// A transfer during which no byte moves for this long is ended with `transfer_stalled`.
    pub file_idle_timeout: Duration,
}

impl Limits {
    /// The permits of the connection semaphore: `max_connections`, or at most what one
    /// `acquire_many` takes back at shutdown (its proof that every session ended), which is
    /// past any machine's connections: a limit written as the largest number is no limit.
    pub fn connection_permits(&self) -> u32 {
        u32::try_from(self.max_connections).unwrap_or(u32::MAX)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 100_000,
            // Off: load generators, and so the users of this server, connect from one address.
            max_connections_per_address: 0,
            hello_timeout: Duration::from_secs(10),
            queue_capacity: 4096,
            max_queued_bytes: 256 * 1024 * 1024,
            session_queue_bytes: 16 * 1024 * 1024,
            write_timeout: Duration::from_secs(10),
            max_body: 64 * 1024,
            max_frame_len: imbench_proto::DEFAULT_MAX_FRAME_LEN,
            receipt_window: 4096,
            hold_per_user: 10_000,
            hold_bytes: 512 * 1024 * 1024,
            max_group_members: 10_000,
            groups_per_user: 1_000,
            group_changes_per_sec: 100,
            max_file_size: 4 << 30,
            transfers_per_user: 8,
            file_idle_timeout: Duration::from_secs(30),
        }
    }
}

/// Everything a server needs to start.
#[derive(Clone)]
pub struct ServerConfig {
    /// Where to listen, per transport (any set of them, each once or more).
    pub listen: Vec<(Transport, SocketAddr)>,
    /// The certificate and key to present.
    pub identity: ServerIdentity,
    /// The token secret.
    pub secret: Secret,
    /// Protective limits.
    pub limits: Limits,
    /// QUIC transport settings.
    pub quic: QuicOptions,
    /// Where holds are kept on disk; `None` keeps them in memory only.
    pub data_dir: Option<PathBuf>,
}

impl ServerConfig {
    /// QUIC on loopback on an ephemeral port, a fresh self-signed certificate and a fresh
    /// secret.
    pub fn loopback() -> Result<Self, ServerError> {
        Self::loopback_on(&[Transport::Quic])
    }

    /// [`ServerConfig::loopback`] listening on each of `transports`, each on its own
    /// ephemeral port.
    pub fn loopback_on(transports: &[Transport]) -> Result<Self, ServerError> {
        Ok(Self {
            listen: transports
                .iter()
                .map(|&t| (t, SocketAddr::from(([127, 0, 0, 1], 0))))
                .collect(),
            identity: ServerIdentity::self_signed(&DEFAULT_CERT_NAMES)?,
            secret: Secret::generate()?,
            limits: Limits::default(),
            quic: QuicOptions::default(),
            data_dir: None,
        })
    }
}

/// State shared by every task of one server.
pub(crate) struct State {
    router: Router,
    groups: Groups,
    transfers: Arc<files::Transfers>,
    secret: Secret,
    limits: Limits,
    stats: Arc<Stats>,
    /// The TLS sessions clients may resume, which count the handshakes that resumed.
    sessions: Arc<imbench_transport::ServerSessions>,
    next_session: AtomicU64,
    max_frame_len: u32,
    addresses: Arc<addresses::Addresses>,
    /// A QUIC connection's receive window once its client has said Hello.
    quic_receive_window: u32,
}

impl State {
    /// The counters now, with the resumed handshakes the TLS session store counted.
    fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            sessions_resumed: self.sessions.resumed(),
            ..self.stats.snapshot()
        }
    }
}

/// A server that is running; stop it with [`RunningServer::shutdown`].
pub struct RunningServer {
    addrs: Vec<(Transport, SocketAddr)>,
    restored: Restored,
    state: Arc<State>,
    /// The QUIC listeners, closed at the end of a shutdown. A TCP listener is its accept
    /// loop's alone, so that its socket closes as the shutdown starts.
    listeners: Vec<Arc<Listener>>,
    /// Broadcasts shutdown to the accept loop and every session; `true` once it started.
    shutdown: watch::Sender<bool>,
    /// One permit per connection being served: the connection limit, and, when all permits are
    /// back, the proof that every session has finished.
    permits: Arc<Semaphore>,
    accept_tasks: Vec<JoinHandle<()>>,
}

/// How long shutdown waits for the last holds to reach the disk.
const STORE_FLUSH_LIMIT: Duration = Duration::from_secs(10);

/// What a server found in its data folder when it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restored {
    /// Users with messages held.
    pub users: usize,
    /// Messages held for them.
    pub messages: usize,
    /// Bytes of their bodies.
    pub bytes: usize,
}

/// Binds the listeners and starts serving in the background on the current tokio runtime.
pub async fn start(config: ServerConfig) -> Result<RunningServer, ServerError> {
    if config.listen.is_empty() {
        return Err(ServerError::NoListener);
    }
    // Before binding: a folder in use by another server is a reason not to start at all.
    let store = match &config.data_dir {
        Some(dir) => Some(store::HoldStore::open(dir)?),
        None => None,
    };
    let mut listeners = Vec::new();
    let mut addrs = Vec::new();
    for &(transport, addr) in &config.listen {
        let codec = imbench_proto::Codec::new(config.limits.max_frame_len);
        let listener = Listener::bind(transport, addr, &config.identity, &config.quic, codec)
            .await
            .map_err(|source| ServerError::Bind {
                transport,
                addr,
                source,
            })?;
        addrs.push((
            transport,
            listener.local_addr().map_err(TransportError::from)?,
        ));
        listeners.push(Arc::new(listener));
    }
    let stats = Arc::new(Stats::default());
    let hold = HoldLimits {
        per_user: config.limits.hold_per_user,
        total_bytes: config.limits.hold_bytes,
    };
    let mut router = Router::new(hold, stats.clone()).with_queue_limits(QueueLimits {
        total_bytes: config.limits.max_queued_bytes,
        per_session_bytes: config.limits.session_queue_bytes,
    });
    let mut restored = Restored::default();
    if let Some((store, loaded)) = store {
        restored.users = loaded.len();
        restored.messages = loaded.iter().map(|(_, held)| held.len()).sum();
        restored.bytes = loaded
            .iter()
            .flat_map(|(_, held)| held.iter().map(|d| d.body.len()))
            .sum();
        router = router.with_store(Arc::new(store), loaded);
    }
    let state = Arc::new(State {
        sessions: config.identity.sessions.clone(),
        router,
        groups: Groups::new(
            GroupLimits {
                max_members: config.limits.max_group_members,
                groups_per_user: config.limits.groups_per_user,
            },
            stats.clone(),
        ),
        transfers: Arc::default(),
        secret: config.secret,
        limits: config.limits.clone(),
        stats,
        next_session: AtomicU64::new(1),
        max_frame_len: config.limits.max_frame_len,
        quic_receive_window: config.quic.admitted_receive_window(),
        addresses: addresses::Addresses::new(config.limits.max_connections_per_address),
    });
    let (shutdown, shutdown_rx) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(config.limits.connection_permits() as usize));
    let accept_tasks = listeners
        .iter()
        .map(|listener| {
            tokio::spawn(accept_loop(
                listener.clone(),
                state.clone(),
                permits.clone(),
                shutdown_rx.clone(),
            ))
        })
        .collect();
    listeners.retain(|l| matches!(**l, Listener::Quic(_)));
    Ok(RunningServer {
        addrs,
        restored,
        state,
        listeners,
        shutdown,
        permits,
        accept_tasks,
    })
}

async fn accept_loop(
    listener: Arc<Listener>,
    state: Arc<State>,
    permits: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut stopping = false;
    loop {
        let incoming = tokio::select! {
            _ = shutdown.changed(), if !stopping => {
                // A TCP listener's socket closes with this loop, and the kernel refuses what
                // comes next; a QUIC endpoint stays open for its connections' goodbyes, and
                // this loop turns new ones away (CONNECTION_REFUSED) until it closes. Either
                // way a client is told at once, not left to time out on a server that will
                // not answer.
                if matches!(*listener, Listener::Stream(_)) {
                    return;
                }
                stopping = true;
                continue;
            }
            incoming = listener.accept() => match incoming {
                Some(incoming) => incoming,
                None => return,
            },
        };
        if stopping {
            incoming.refuse();
            continue;
        }
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                state.stats.connections_accepted.fetch_add(1, Relaxed);
                let slot = state.addresses.take(incoming.remote().ip());
                let (state, shutdown) = (state.clone(), shutdown.clone());
                tokio::spawn(async move {
                    match slot {
                        Some(slot) => {
                            session::serve_connection(incoming, state, shutdown).await;
                            drop(slot);
                        }
                        None => session::refuse_address(incoming, &state).await,
                    }
                    drop(permit);
                });
            }
            Err(_) => {
                state.stats.connections_refused.fetch_add(1, Relaxed);
                incoming.refuse();
            }
        }
    }
}

impl RunningServer {
    /// Every bound address, by transport, in the order configured.
    pub fn addrs(&self) -> &[(Transport, SocketAddr)] {
        &self.addrs
    }

    /// The (first) bound address of `transport`, if the server listens on it.
    pub fn addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.addrs
            .iter()
            .find(|(t, _)| *t == transport)
            .map(|(_, a)| *a)
    }

    /// What was held on disk when the server started (all zero without a data folder).
    pub fn restored(&self) -> Restored {
        self.restored
    }

    /// The database holds are kept in, when the server keeps them on disk.
    pub fn data_file(&self) -> Option<&std::path::Path> {
        self.state.router.store().map(|s| s.path())
    }

    /// Completes, with why, when writing holds to disk failed: from then on nothing held is
    /// on disk, and no held message is acknowledged. Pending forever without a data folder.
    pub async fn store_failed(&self) -> String {
        match self.state.router.store() {
            Some(store) => store.failed().await,
            None => std::future::pending().await,
        }
    }

    /// Serves the server's figures for Prometheus on `addr` (`GET /metrics`) until the
    /// returned endpoint is dropped.
    pub async fn serve_metrics(
        &self,
        addr: SocketAddr,
    ) -> std::io::Result<scrape::MetricsEndpoint> {
        scrape::MetricsEndpoint::start(addr, export::registry(self.state.clone())).await
    }

    /// The server's figures as a Prometheus collector (names without a prefix), read at each
    /// scrape: for an endpoint that serves them beside others.
    pub fn figures(&self) -> Box<dyn prometheus_client::collector::Collector> {
        Box::new(export::ServerFigures {
            state: self.state.clone(),
        })
    }

    /// The server's counters now.
    pub fn stats(&self) -> StatsSnapshot {
        self.state.snapshot()
    }

    /// The router, for inspecting holds and sessions.
    pub fn router(&self) -> &Router {
        &self.state.router
    }

    /// The groups, for inspecting membership.
    pub fn groups(&self) -> &Groups {
        &self.state.groups
    }

    /// Graceful shutdown within a bounded time: stop accepting, let every session write what
    /// is queued and a Bye, then close the endpoint. Returns the counters as they stand at the
    /// end, with what the shutdown itself ended.
    pub async fn shutdown(self) -> StatsSnapshot {
        self.shutdown_within(Duration::from_secs(5)).await
    }

    /// [`RunningServer::shutdown`] with a chosen bound: `limit` for the sessions to end, and
    /// at most as long (and a second at most) for the QUIC connections' close to be done.
    pub async fn shutdown_within(self, limit: Duration) -> StatsSnapshot {
        // Stored even when no accept loop is left to be told.
        self.shutdown.send_replace(true);
        let all = self.state.limits.connection_permits();
        let _ = tokio::time::timeout(limit, self.permits.acquire_many(all)).await;
        for listener in &self.listeners {
            listener.close(0, "server shut down");
        }
        let _ = tokio::time::timeout(limit.min(Duration::from_secs(1)), async {
            for listener in &self.listeners {
                listener.wait_idle().await;
            }
        })
        .await;
        // QUIC's accept loops end as their endpoints close, TCP's have ended already.
        for task in self.accept_tasks {
            task.abort();
            let _ = task.await;
        }
        // What the sessions handed back as they ended is held now: on disk before the process
        // goes.
        if let Some(store) = self.state.router.store() {
            match tokio::time::timeout(STORE_FLUSH_LIMIT, store.flush()).await {
                Ok(true) => {}
                Ok(false) => tracing::error!("holds not all written to {}", store.path().display()),
                Err(_) => tracing::error!(
                    "holds not all written to {} within {STORE_FLUSH_LIMIT:?}",
                    store.path().display()
                ),
            }
        }
        self.state.snapshot()
    }
}
