//! Holds on disk (`--data-dir`) against real crashes and restarts: the server binary runs in a
//! process of its own, is killed with SIGKILL (or stopped with SIGTERM) in the middle of a
//! load, and is started again on the same folder. Every message it acknowledged into a hold
//! must then reach its recipient, in order per sender, and nothing delivered comes back.

mod util;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use imbench_proto::{Dest, Frame, HELLO_RECEIPTS};
use imbench_server::Secret;
use imbench_transport::{FramedConnection, QuicOptions, Transport};
use util::attack::send_to;
use util::process::{start_with_args, wait_exit, Server};

/// A data folder and a secret file shared by the servers of one test, removed at its end.
struct Folder(PathBuf);

impl Folder {
    fn new(name: &str) -> Folder {
        let dir =
            std::env::temp_dir().join(format!("imbench-durable-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test folder");
        let secret = Secret::generate().expect("secret").to_hex();
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.join("secret"))
            .and_then(|mut f| f.write_all(secret.as_bytes()))
            .expect("secret file");
        Folder(dir)
    }

    fn data(&self) -> PathBuf {
        self.0.join("data")
    }

    fn secret(&self) -> Secret {
        Secret::from_file(&self.0.join("secret")).expect("secret")
    }

    /// A server on this folder's data and secret.
    fn server(&self, name: &str) -> Server {
        let data = self.data();
        let secret = self.0.join("secret");
        start_with_args(
            name,
            &[
                "--data-dir",
                path_str(&data),
                "--secret-file",
                path_str(&secret),
            ],
        )
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}

/// How many messages the banner says were restored from disk.
fn restored(server: &Server) -> usize {
    let line = server.banner_line("holds on disk:");
    line.split('(')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line}"))
}

/// Stops `server` as an operator would (SIGTERM) and waits for it to exit by itself.
fn stop_gracefully(server: &mut Server) {
    let pid = server.child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-s", "TERM", &pid])
        .status()
        .expect("kill");
    assert!(sent.success());
    let status = wait_exit(&mut server.child, Duration::from_secs(20)).expect("exits by itself");
    assert!(status.success(), "graceful stop exited {status}");
}

/// Reads deliveries until none comes for a second: (msg_id, sender) of each, checking that
/// its body is its id.
async fn received(conn: &mut FramedConnection) -> Vec<(u64, u64)> {
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(1), conn.reader.read_frame()).await {
            Ok(Ok(Some(Frame::Deliver {
                msg_id, from, body, ..
            }))) => {
                assert_eq!(body, body_of(msg_id), "body of {msg_id}");
                got.push((msg_id, from));
            }
            Ok(Ok(Some(_))) => {}
            _ => return got,
        }
    }
}

/// A message's body: its id, then padding, so that commits take some time and a kill finds
/// some in progress.
fn body_of(id: u64) -> Bytes {
    let mut body = id.to_le_bytes().to_vec();
    body.resize(2048, (id % 251) as u8);
    Bytes::from(body)
}

async fn login(
    server: &Server,
    secret: &Secret,
    transport: Transport,
    user: u64,
) -> FramedConnection {
    util::login(
        &server.connector(transport),
        server.addr(transport),
        secret,
        user,
    )
    .await
}

/// A sender streams messages to offline users; the server is killed with SIGKILL once some
/// thousands are acknowledged and while more are on the way. Started again on the same folder,
/// it hands every acknowledged message to its recipient, in order, once; after a graceful stop
/// a third start finds nothing left: what was delivered was forgotten on disk too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_held_messages_survive_kill_9() {
    const RECIPIENTS: [u64; 4] = [100, 101, 102, 103];
    const SENDER: u64 = 1;
    const MOST: u64 = 100_000;
    const KILL_AFTER: usize = 3_000;
    let folder = Folder::new("kill");
    let secret = folder.secret();
    let mut first = folder.server("durable-kill-1");
    assert_eq!(restored(&first), 0);

    let sender = login(&first, &secret, Transport::Tcp, SENDER).await;
    let FramedConnection {
        mut reader,
        mut writer,
        link,
        ..
    } = sender;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (enough_tx, enough) = tokio::sync::oneshot::channel();
    let reading = tokio::spawn({
        let acked = acked.clone();
        async move {
            let mut enough_tx = Some(enough_tx);
            while let Ok(Some(frame)) = reader.read_frame().await {
                if let Frame::Ack { msg_id } = frame {
                    let mut acked = acked.lock().expect("lock");
                    acked.push(msg_id);
                    if acked.len() == KILL_AFTER {
                        enough_tx.take().map(|tx| tx.send(()));
                    }
                }
            }
        }
    });
    let writing = tokio::spawn({
        let sent = sent.clone();
        async move {
            for id in 0..MOST {
                let frame = Frame::Send {
                    msg_id: id,
                    to: Dest::User(RECIPIENTS[id as usize % RECIPIENTS.len()]),
                    body: body_of(id),
                };
                if writer.queue(&frame).is_err() {
                    return;
                }
                if id % 20 == 19 {
                    if writer.flush().await.is_err() {
                        return;
                    }
                    sent.store(id + 1, std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(60), enough)
        .await
        .expect("acks within a minute")
        .expect("the reader saw enough acks");
    first.child.kill().expect("SIGKILL");
    first.child.wait().expect("reaped");
    let _ = tokio::time::timeout(Duration::from_secs(10), reading).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), writing).await;
    drop(link);
    let acked = acked.lock().expect("lock").clone();
    let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("killed with {} acknowledged of {sent} sent", acked.len());
    assert!(
        sent < MOST && (acked.len() as u64) < sent,
        "the kill came after the load ({} acked, {sent} sent)",
        acked.len()
    );

    let mut second = folder.server("durable-kill-2");
    let on_disk = restored(&second);
    assert!(
        on_disk >= acked.len(),
        "{on_disk} restored, {} acknowledged",
        acked.len()
    );
    let mut delivered = HashMap::new();
    for user in RECIPIENTS {
        let mut conn = login(&second, &secret, Transport::Tcp, user).await;
        let got = received(&mut conn).await;
        assert!(got.iter().all(|&(_, from)| from == SENDER));
        let ids: Vec<u64> = got.iter().map(|&(id, _)| id).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "user {user}: out of order or twice"
        );
        delivered.insert(user, ids);
    }
    let lost: Vec<u64> = acked
        .iter()
        .copied()
        .filter(|&id| {
            let user = RECIPIENTS[id as usize % RECIPIENTS.len()];
            delivered[&user].binary_search(&id).is_err()
        })
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged messages lost, first {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    let total: usize = delivered.values().map(Vec::len).sum();
    assert_eq!(total, on_disk, "everything restored is delivered");

    // Delivered messages are forgotten on disk: a graceful stop and a third start hold nothing.
    stop_gracefully(&mut second);
    let third = folder.server("durable-kill-3");
    assert_eq!(restored(&third), 0, "{:?}", third.banner);
}

/// A graceful stop (SIGTERM) keeps what the server had acknowledged and not delivered, not
/// only what was held: messages queued for a client that reads nothing and confirms nothing
/// go to disk at the stop, beside the offline user's hold, and all reach their recipients
/// after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_restart_keeps_queued_and_held_messages() {
    const LIVE: u64 = 200;
    const OFFLINE: u64 = 201;
    let folder = Folder::new("graceful");
    let secret = folder.secret();
    let mut first = folder.server("durable-graceful-1");
    // Receipts on, small windows, reads nothing: whatever the server writes it must keep.
    let quic = QuicOptions {
        stream_receive_window: Some(64 * 1024),
        receive_window: Some(64 * 1024),
        ..QuicOptions::default()
    };
    let silent = util::login_with(
        &first.connector_with(Transport::Quic, &quic),
        first.addr(Transport::Quic),
        &secret,
        LIVE,
        HELLO_RECEIPTS,
    )
    .await;
    let mut sender = login(&first, &secret, Transport::Tcp, 1).await;
    let bodies = |first_id: u64, n: u64| (first_id..first_id + n).map(body_of);
    let mut acked = 0;
    for (id, body) in (0..).zip(bodies(0, 300)) {
        acked += send_to(&mut sender, id, 1, Dest::User(LIVE), &body).await.0;
    }
    for (id, body) in (1_000..).zip(bodies(1_000, 50)) {
        acked += send_to(&mut sender, id, 1, Dest::User(OFFLINE), &body)
            .await
            .0;
    }
    assert_eq!(acked, 350);
    stop_gracefully(&mut first);
    drop(silent);

    let second = folder.server("durable-graceful-2");
    assert_eq!(restored(&second), 350, "{:?}", second.banner);
    for (user, expected) in [
        (LIVE, (0..300).collect::<Vec<u64>>()),
        (OFFLINE, (1_000..1_050).collect()),
    ] {
        let mut conn = login(&second, &secret, Transport::Tcp, user).await;
        let ids: Vec<u64> = received(&mut conn)
            .await
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, expected, "user {user}");
    }
}

/// A client without receipts that reads slowly when the server is stopped: what the server
/// could not hand it within the stop's last writes goes to disk and comes after the restart,
/// in order, none of it twice; only what its connection had taken and could not pass on before
/// it closed (at most a window's worth) is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_restart_keeps_what_a_slow_client_without_receipts_did_not_take() {
    const SLOW: u64 = 300;
    const SENT: u64 = 300;
    let folder = Folder::new("no-receipts");
    let secret = folder.secret();
    let mut first = folder.server("durable-no-receipts-1");
    let quic = QuicOptions {
        stream_receive_window: Some(64 * 1024),
        receive_window: Some(64 * 1024),
        ..QuicOptions::default()
    };
    let mut slow = util::login(
        &first.connector_with(Transport::Quic, &quic),
        first.addr(Transport::Quic),
        &secret,
        SLOW,
    )
    .await;
    // Twenty messages a second: the 600 KiB sent take it 15 s, far past the stop's last writes.
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Ok(Ok(Some(frame))) =
            tokio::time::timeout(Duration::from_secs(10), slow.reader.read_frame()).await
        {
            if let Frame::Deliver { msg_id, .. } = frame {
                got.push(msg_id);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        got
    });
    let mut sender = login(&first, &secret, Transport::Tcp, 1).await;
    let mut acked = 0;
    for id in 0..SENT {
        acked += send_to(&mut sender, id, 1, Dest::User(SLOW), &body_of(id))
            .await
            .0;
    }
    assert_eq!(acked, SENT as usize);
    stop_gracefully(&mut first);
    let before = reader.await.expect("the reader ends with the connection");

    let second = folder.server("durable-no-receipts-2");
    let mut conn = login(&second, &secret, Transport::Tcp, SLOW).await;
    let after: Vec<u64> = received(&mut conn)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let all: Vec<u64> = before.iter().chain(&after).copied().collect();
    assert!(
        all.windows(2).all(|w| w[0] < w[1]),
        "in order, none twice: before the stop {before:?}, after {after:?}"
    );
    let missing = SENT as usize - all.len();
    assert!(
        missing <= 40 && after.len() >= 100,
        "{missing} missing; {} before the stop, {} after",
        before.len(),
        after.len()
    );
}

/// Two servers on one data folder would each deliver and forget the other's holds: the second
/// is refused at start, saying why, and the first keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_folder_serves_one_server_at_a_time() {
    let folder = Folder::new("in-use");
    let secret = folder.secret();
    let first = folder.server("durable-in-use-1");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_imbench-server"))
        .args([
            "--tcp",
            "127.0.0.1:0",
            "--data-dir",
            path_str(&folder.data()),
        ])
        .args(["--secret-file", path_str(&folder.0.join("secret"))])
        .args(["--client-dir", path_str(&folder.0.join("second"))])
        .output()
        .expect("second server runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "second server started: {stderr}");
    assert!(
        stderr.contains("in use by another imbench-server"),
        "{stderr}"
    );
    let mut conn = login(&first, &secret, Transport::Tcp, 5).await;
    conn.writer
        .write_frame(&Frame::Ping { nonce: 9 })
        .await
        .expect("ping");
    assert_eq!(util::read(&mut conn).await, Some(Frame::Pong { nonce: 9 }));
}
