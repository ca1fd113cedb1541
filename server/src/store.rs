//! Offline holds kept on disk (`--data-dir`): a message acknowledged into a hold survives a
//! crash (`kill -9`, power loss) and a restart.
//!
//! The holds stay in memory as before; this is their copy on disk, one SQLite database
//! (write-ahead log, `synchronous=FULL`) in the data folder, opened in exclusive mode so that a
//! second server cannot use the same folder. One thread of its own writes it: the router, which
//! works under its shard locks and never waits, only numbers each change and sends it there.
//! The thread applies every change that has arrived in one transaction and commits it (one
//! `fsync` for all of them: group commit), then publishes the number of the last change
//! committed. A session acknowledges a held message once that number has reached the one its
//! change got, so an Ack for a held message means "on disk".
//!
//! A stored delivery is forgotten when its client has it: once written to the connection, or,
//! for a client that sends receipts, once a receipt covers it. A crash in between delivers it
//! again after the restart (at least once; the client drops the copy by message id).
//!
//! Each stored delivery has a key that orders a user's hold: new holds take keys counting up,
//! and deliveries that go back to the front of a hold (what a session that ended did not
//! deliver) are stored again under keys counting down, below every key in use.

use std::collections::VecDeque;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{mpsc as std_mpsc, Mutex};

use bytes::Bytes;
use imbench_proto::Dest;
use rusqlite::{params, Connection, OpenFlags};
use tokio::sync::watch;

use crate::router::Delivery;

/// Where a delivery is in the store; orders a user's hold, oldest first.
pub type StoreKey = i64;

/// The database's file name in the data folder.
pub const DATABASE_FILE: &str = "holds.sqlite3";

/// How long a server starting waits for a folder another server holds (its data folder, its
/// folder of files for clients) before it is refused: a server stopped a moment ago holds its
/// locks until its process has ended, which for one with many connections takes a while.
pub const LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// The layout this code writes; a database with a newer one is refused, not misread.
const SCHEMA_VERSION: i64 = 1;

/// Changes taken into one transaction at most, so that a flood cannot make one commit (and
/// every Ack waiting for it) arbitrarily long.
const MAX_CHANGES_PER_COMMIT: usize = 8192;

/// The furthest from 0 a stored key may be when the database is opened (see
/// [`StoreError::KeysOutOfRange`]).
const MAX_KEY: i64 = i64::MAX / 2;

/// Why the store could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data folder could not be made or read.
    #[error("data folder {path}: {source}")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The data folder is a file.
    #[error("--data-dir {path} is a file, not a folder")]
    NotAFolder {
        /// The path.
        path: PathBuf,
    },
    /// The database or its folder cannot be written by this process.
    #[error("cannot write {path}: {why} (the folder and the file must be writable by the user the server runs as, with room left)")]
    Unwritable {
        /// The database file.
        path: PathBuf,
        /// What the system said.
        why: String,
    },
    /// A database that some other program made.
    #[error("{path} is not an imbench-server hold database (it has tables of another program); give --data-dir a folder of its own")]
    NotOurs {
        /// The database file.
        path: PathBuf,
    },
    /// A hold database whose keys this server would not have written: so far from 0 that the
    /// next ones would run past what a key holds.
    #[error("{path} holds a message under key {key}, further from 0 than this server writes keys; it was not written by imbench-server as it is (move it away to start with none held)")]
    KeysOutOfRange {
        /// The database file.
        path: PathBuf,
        /// The key furthest from 0.
        key: i64,
    },
    /// Another process has the database open.
    #[error("{path} is in use by another imbench-server (one data folder per server)")]
    InUse {
        /// The database file.
        path: PathBuf,
    },
    /// The database was written by a newer imbench-server.
    #[error("{path} has layout version {found}; this imbench-server reads version {SCHEMA_VERSION} and older")]
    Newer {
        /// The database file.
        path: PathBuf,
        /// The version found.
        found: i64,
    },
    /// A row that cannot be a held message.
    #[error("{path}: stored message {key} is damaged: {why}")]
    Damaged {
        /// The database file.
        path: PathBuf,
        /// Its key.
        key: StoreKey,
        /// What is wrong with it.
        why: &'static str,
    },
    /// SQLite failed.
    #[error("{path}: {source}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
    /// The writing thread could not be started.
    #[error("starting the hold store's writer: {0}")]
    Thread(std::io::Error),
}

/// One held delivery as stored.
struct Row {
    key: StoreKey,
    user: u64,
    delivery: Delivery,
}

enum Change {
    /// A delivery was held.
    Hold(Row),
    /// A delivery reached its client.
    Forget(StoreKey),
    /// Deliveries went back to the front of a hold: their old keys go, the new rows come, in
    /// one transaction so that a crash leaves one or the other.
    Rehold {
        forget: Vec<StoreKey>,
        hold: Vec<Row>,
    },
}

/// Numbers changes and hands them to the writer, in the order numbered.
struct Inbox {
    /// The last number given.
    submitted: u64,
    /// Next key for the back of a hold.
    back: StoreKey,
    /// Next key for the front of a hold (counting down).
    front: StoreKey,
    tx: std_mpsc::Sender<(u64, Change)>,
}

/// What was on disk when the store was opened: each user's hold, oldest first.
pub type Loaded = Vec<(u64, VecDeque<Delivery>)>;

/// The holds' copy on disk, and the thread that writes it.
pub struct HoldStore {
    path: PathBuf,
    inbox: Mutex<Inbox>,
    /// The number of the last change committed.
    durable: watch::Receiver<u64>,
    /// Set once, when a write failed: no change after it is on disk.
    failed: watch::Receiver<Option<String>>,
    /// The writer, joined on drop so that the database is closed (and its lock released)
    /// once the store is gone.
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for HoldStore {
    fn drop(&mut self) {
        // The writer ends when its channel does: replace the sender, then wait for the last
        // commit.
        let inbox = self.inbox.get_mut().unwrap_or_else(|p| p.into_inner());
        inbox.tx = std_mpsc::channel().0;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl std::fmt::Debug for HoldStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HoldStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl HoldStore {
    /// Opens (or creates) the store in `dir` and reads what it holds.
    pub fn open(dir: &Path) -> Result<(HoldStore, Loaded), StoreError> {
        let folder = |source| StoreError::Folder {
            path: dir.to_path_buf(),
            source,
        };
        if dir.exists() && !dir.is_dir() {
            return Err(StoreError::NotAFolder {
                path: dir.to_path_buf(),
            });
        }
        // Held bodies are the users' messages: a folder this creates, and the database file,
        // are their owner's only (a folder that exists keeps the mode it was given).
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(folder)?;
        let path = dir.join(DATABASE_FILE);
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|source| StoreError::Unwritable {
                path: path.clone(),
                why: source.to_string(),
            })?;
        // Busy is another process holding the exclusive lock, whichever statement meets it;
        // a file or folder this user may not write is said as such, not as SQLite's code.
        let db = |source: rusqlite::Error| {
            if is_busy(&source) {
                return StoreError::InUse { path: path.clone() };
            }
            match source.sqlite_error_code() {
                Some(
                    rusqlite::ErrorCode::CannotOpen
                    | rusqlite::ErrorCode::ReadOnly
                    | rusqlite::ErrorCode::PermissionDenied
                    | rusqlite::ErrorCode::SystemIoFailure,
                ) => StoreError::Unwritable {
                    path: path.clone(),
                    why: source.to_string(),
                },
                _ => StoreError::Database {
                    path: path.clone(),
                    source,
                },
            }
        };
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db)?;
        // A folder in use is said after a short while, not after waiting for the other server
        // to let go: the while is for a server stopped a moment ago, whose process is ending.
        conn.busy_timeout(LOCK_GRACE).map_err(db)?;
        // Exclusive before anything else: the first access takes the lock and keeps it, and a
        // second server finds the database busy instead of writing beside this one.
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(db)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(db)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!("{}: journal mode {mode}, not WAL", path.display());
        }
        // Every commit reaches the disk before it counts as done (the sync policy an Ack
        // promises).
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(db)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Newer {
                path,
                found: version,
            });
        }
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .map_err(db)?;
        // A database this server made has its version set in the transaction that made its
        // table: one without a version and with tables is some other program's.
        if version == 0 && tables > 0 {
            return Err(StoreError::NotOurs { path });
        }
        conn.execute_batch(&format!(
            "BEGIN;
             CREATE TABLE IF NOT EXISTS held (
                 key INTEGER PRIMARY KEY,
                 user INTEGER NOT NULL,
                 msg_id INTEGER NOT NULL,
                 sender INTEGER NOT NULL,
                 to_group INTEGER NOT NULL,
                 dest INTEGER NOT NULL,
                 body BLOB NOT NULL
             );
             CREATE INDEX IF NOT EXISTS held_by_user ON held (user, key);
             PRAGMA user_version = {SCHEMA_VERSION};
             COMMIT;"
        ))
        .map_err(db)?;
        let (loaded, lowest, highest) = load(&conn, &path)?;
        // Keys grow by one a hold from 0 at the back and shrink at the front: half of a key's
        // range is more holds than a server makes, and leaves the other half for what follows.
        for key in [lowest, highest] {
            if key.unsigned_abs() > MAX_KEY.unsigned_abs() {
                return Err(StoreError::KeysOutOfRange { path, key });
            }
        }

        let (tx, rx) = std_mpsc::channel();
        let (durable_tx, durable) = watch::channel(0);
        let (failed_tx, failed) = watch::channel(None);
        let thread_path = path.clone();
        let writer = std::thread::Builder::new()
            .name("hold-store".into())
            .spawn(move || write_loop(conn, &thread_path, rx, &durable_tx, &failed_tx))
            .map_err(StoreError::Thread)?;
        let store = HoldStore {
            path,
            inbox: Mutex::new(Inbox {
                submitted: 0,
                back: highest.max(0) + 1,
                front: lowest.min(0) - 1,
                tx,
            }),
            durable,
            failed,
            writer: Some(writer),
        };
        Ok((store, loaded))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores `d`, held for `user` behind everything held for it; sets its key.
    pub fn hold(&self, user: u64, d: &mut Delivery) {
        let mut inbox = self.inbox();
        let key = inbox.back;
        inbox.back += 1;
        d.key = Some(key);
        let row = Row {
            key,
            user,
            delivery: d.clone(),
        };
        inbox.submit(Change::Hold(row));
    }

    /// Stores `deliveries` again, in order, in front of everything held for `user`; sets
    /// their keys.
    pub fn rehold_front(&self, user: u64, deliveries: &mut VecDeque<Delivery>) {
        if deliveries.is_empty() {
            return;
        }
        let mut inbox = self.inbox();
        let n = deliveries.len() as StoreKey;
        let first = inbox.front - n + 1;
        inbox.front -= n;
        let mut forget = Vec::new();
        let mut hold = Vec::with_capacity(deliveries.len());
        for (d, key) in deliveries.iter_mut().zip(first..) {
            forget.extend(d.key.replace(key));
            hold.push(Row {
                key,
                user,
                delivery: d.clone(),
            });
        }
        inbox.submit(Change::Rehold { forget, hold });
    }

    /// The delivery stored under `key` reached its client.
    pub fn forget(&self, key: StoreKey) {
        self.inbox().submit(Change::Forget(key));
    }

    /// The number of the last change handed to the writer: once [`HoldStore::durable`] reaches
    /// it, every change made before this call is on disk.
    pub fn submitted(&self) -> u64 {
        self.inbox().submitted
    }

    /// The number of the last change on disk.
    pub fn durable(&self) -> watch::Receiver<u64> {
        self.durable.clone()
    }

    /// Completes when a write has failed, with why; pending forever while all is well.
    pub async fn failed(&self) -> String {
        let mut failed = self.failed.clone();
        let why = match failed.wait_for(Option::is_some).await {
            Ok(why) => why.clone().unwrap_or_default(),
            Err(_) => "the hold store's writer stopped".to_string(),
        };
        why
    }

    /// Waits until every change made so far is on disk. False when a write failed.
    pub async fn flush(&self) -> bool {
        let target = self.submitted();
        let mut durable = self.durable();
        tokio::select! {
            done = durable.wait_for(|&d| d >= target) => done.is_ok(),
            _ = self.failed() => false,
        }
    }

    fn inbox(&self) -> std::sync::MutexGuard<'_, Inbox> {
        // A panic while holding this lock cannot leave the counters half-updated (each is
        // one store), so a poisoned lock is still usable.
        self.inbox.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inbox {
    fn submit(&mut self, change: Change) {
        self.submitted += 1;
        // A send fails only once the writer has stopped after a failed write; the server is
        // then stopping (HoldStore::failed), and the change was never going to be on disk.
        let _ = self.tx.send((self.submitted, change));
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Every stored row, by user and key; the lowest and highest key.
fn load(conn: &Connection, path: &Path) -> Result<(Loaded, StoreKey, StoreKey), StoreError> {
    let db = |source| StoreError::Database {
        path: path.to_path_buf(),
        source,
    };
    let mut statement = conn
        .prepare(
            "SELECT key, user, msg_id, sender, to_group, dest, body FROM held ORDER BY user, key",
        )
        .map_err(db)?;
    let mut rows = statement.query([]).map_err(db)?;
    let mut loaded: Loaded = Vec::new();
    let (mut lowest, mut highest) = (0, 0);
    while let Some(row) = rows.next().map_err(db)? {
        let key: StoreKey = row.get(0).map_err(db)?;
        let damaged = |why| StoreError::Damaged {
            path: path.to_path_buf(),
            key,
            why,
        };
        // u64 ids are stored as the i64 with the same bits.
        let user = row.get::<_, i64>(1).map_err(db)? as u64;
        let msg_id = row.get::<_, i64>(2).map_err(db)? as u64;
        let from = row.get::<_, i64>(3).map_err(db)? as u64;
        let dest = row.get::<_, i64>(5).map_err(db)? as u64;
        let to = match row.get::<_, i64>(4).map_err(db)? {
            0 => Dest::User(dest),
            1 => Dest::Group(dest),
            _ => return Err(damaged("its destination is neither a user nor a group")),
        };
        let body: Vec<u8> = row.get(6).map_err(|_| damaged("its body is not a blob"))?;
        lowest = lowest.min(key);
        highest = highest.max(key);
        let delivery = Delivery {
            msg_id,
            from,
            to,
            body: Bytes::from(body),
            key: Some(key),
        };
        match loaded.last_mut() {
            Some((u, hold)) if *u == user => hold.push_back(delivery),
            _ => loaded.push((user, VecDeque::from([delivery]))),
        }
    }
    Ok((loaded, lowest, highest))
}

/// The writer thread: everything that has arrived, in one transaction, until every sender is
/// gone or a write fails.
fn write_loop(
    mut conn: Connection,
    path: &Path,
    rx: std_mpsc::Receiver<(u64, Change)>,
    durable: &watch::Sender<u64>,
    failed: &watch::Sender<Option<String>>,
) {
    let mut batch = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_CHANGES_PER_COMMIT {
            match rx.try_recv() {
                Ok(change) => batch.push(change),
                Err(_) => break,
            }
        }
        let last = batch.last().map_or(0, |(n, _)| *n);
        match commit(&mut conn, batch.drain(..)) {
            Ok(()) => {
                durable.send_replace(last);
            }
            Err(e) => {
                let why = format!("writing {}: {e}", path.display());
                // Said by whoever waits on `failed` (the binary prints it and stops).
                tracing::debug!("{why}");
                failed.send_replace(Some(why));
                return;
            }
        }
    }
}

fn commit(
    conn: &mut Connection,
    changes: impl Iterator<Item = (u64, Change)>,
) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT OR REPLACE INTO held (key, user, msg_id, sender, to_group, dest, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut delete = tx.prepare_cached("DELETE FROM held WHERE key = ?1")?;
        let mut put = |row: &Row| {
            let d = &row.delivery;
            let (to_group, dest) = match d.to {
                Dest::User(u) => (0, u),
                Dest::Group(g) => (1, g),
            };
            insert.execute(params![
                row.key,
                row.user as i64,
                d.msg_id as i64,
                d.from as i64,
                to_group,
                dest as i64,
                &d.body[..]
            ])
        };
        for (_, change) in changes {
            match change {
                Change::Hold(row) => {
                    put(&row)?;
                }
                Change::Forget(key) => {
                    delete.execute([key])?;
                }
                Change::Rehold { forget, hold } => {
                    for key in forget {
                        delete.execute([key])?;
                    }
                    for row in &hold {
                        put(row)?;
                    }
                }
            }
        }
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: u64) -> Delivery {
        Delivery {
            msg_id: id,
            from: 7,
            to: if id.is_multiple_of(2) {
                Dest::User(2)
            } else {
                Dest::Group(u64::MAX)
            },
            body: Bytes::from(vec![id as u8; 3]),
            key: None,
        }
    }

    fn ids(q: &VecDeque<Delivery>) -> Vec<u64> {
        q.iter().map(|d| d.msg_id).collect()
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("imbench-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[tokio::test]
    async fn holds_survive_reopening_in_order_and_forgotten_ones_do_not() {
        let dir = temp_dir("reopen");
        {
            let (store, loaded) = HoldStore::open(&dir).expect("open");
            assert!(loaded.is_empty());
            let mut held: VecDeque<Delivery> = (1..=4).map(msg).collect();
            for d in held.iter_mut() {
                store.hold(2, d);
            }
            let mut other = msg(10);
            store.hold(u64::MAX, &mut other);
            store.forget(held[1].key.expect("stored"));
            // 1 and 3 went out and came back: they go in front of 4, in their order.
            let mut back = VecDeque::from([held[0].clone(), held[2].clone()]);
            store.rehold_front(2, &mut back);
            assert!(store.flush().await);
        }
        let (_store, loaded) = HoldStore::open(&dir).expect("reopen");
        assert_eq!(loaded.len(), 2);
        let hold_of = |user| &loaded.iter().find(|(u, _)| *u == user).expect("user").1;
        assert_eq!(ids(hold_of(2)), vec![1, 3, 4]);
        let one = &hold_of(2)[0];
        assert_eq!(
            (one.from, one.to, &one.body[..]),
            (7, Dest::Group(u64::MAX), &[1u8; 3][..])
        );
        assert_eq!(ids(hold_of(u64::MAX)), vec![10]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn keys_after_reopening_go_behind_and_in_front_of_those_loaded() {
        let dir = temp_dir("keys");
        {
            let (store, _) = HoldStore::open(&dir).expect("open");
            let mut a = VecDeque::from([msg(1)]);
            store.rehold_front(2, &mut a);
            let mut b = msg(2);
            store.hold(2, &mut b);
            assert!(store.flush().await);
        }
        {
            let (store, loaded) = HoldStore::open(&dir).expect("reopen");
            assert_eq!(ids(&loaded[0].1), vec![1, 2]);
            let mut c = msg(3);
            store.hold(2, &mut c);
            let mut front = VecDeque::from([msg(0)]);
            store.rehold_front(2, &mut front);
            assert!(store.flush().await);
        }
        let (_store, loaded) = HoldStore::open(&dir).expect("reopen");
        assert_eq!(ids(&loaded[0].1), vec![0, 1, 2, 3]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_folder_it_makes_is_its_owners_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("mode").join("nested");
        let (_store, _) = HoldStore::open(&dir).expect("open");
        let mode = std::fs::metadata(&dir)
            .expect("folder")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        let _ = std::fs::remove_dir_all(dir.parent().expect("parent"));
    }

    #[test]
    fn the_database_is_its_owners_only_and_a_file_or_a_foreign_database_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("refusals");
        {
            let (_store, _) = HoldStore::open(&dir).expect("open");
        }
        let mode = std::fs::metadata(dir.join(DATABASE_FILE))
            .expect("database")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let file = dir.join("a-file");
        std::fs::write(&file, "x").expect("file");
        assert!(matches!(
            HoldStore::open(&file),
            Err(StoreError::NotAFolder { .. })
        ));

        let foreign = dir.join("foreign");
        std::fs::create_dir_all(&foreign).expect("folder");
        Connection::open(foreign.join(DATABASE_FILE))
            .and_then(|c| c.execute_batch("CREATE TABLE photos (id INTEGER)"))
            .expect("another program's database");
        assert!(matches!(
            HoldStore::open(&foreign),
            Err(StoreError::NotOurs { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_database_with_keys_this_server_would_not_write_is_refused() {
        for key in [i64::MAX, i64::MIN] {
            let dir = temp_dir("far-keys");
            drop(HoldStore::open(&dir).expect("a new store"));
            Connection::open(dir.join(DATABASE_FILE))
                .and_then(|c| {
                    c.execute(
                        "INSERT INTO held (key, user, msg_id, sender, to_group, dest, body)
                         VALUES (?1, 2, 1, 7, 0, 2, x'00')",
                        [key],
                    )
                })
                .expect("a row written by hand");
            match HoldStore::open(&dir) {
                Err(StoreError::KeysOutOfRange { key: k, .. }) => assert_eq!(k, key),
                Err(e) => panic!("{key}: {e}"),
                Ok(_) => panic!("{key}: opened"),
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn a_second_server_cannot_open_the_same_folder() {
        let dir = temp_dir("in-use");
        let (_first, _) = HoldStore::open(&dir).expect("open");
        match HoldStore::open(&dir) {
            Err(StoreError::InUse { .. }) => {}
            other => panic!("expected InUse, got {other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
