//! Standard error, written from a thread of its own.
//!
//! A write to stderr blocks while nobody reads it: a terminal stopped with Ctrl-S, a pipe into
//! a reader that is busy, a log file held up by the kernel's writeback. Written where they are
//! made, such writes held the run loop (its timeline stopped, then bunched), the Ctrl-C handler
//! (an interrupt took effect only when stderr was read again) and the report (written only
//! after the last line got out). Here every line is handed to one thread that writes them in
//! order: the live progress is skipped when a few of its lines are already waiting, log
//! records when very many are, and the other lines queue.
//!
//! Standard output stays written where it is made; before it is, what is queued for stderr is
//! given a moment (half a second at most, and none once such a moment went by in vain) to get
//! out first, so that the two keep their order on one terminal. The process's exit waits for
//! the queue, until Ctrl-C or SIGTERM.

use std::io::Write;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use indicatif::ProgressBar;

/// Lines queued beyond which a progress update is skipped: a quarter of a minute of progress,
/// enough for a reader that only pauses.
pub const PROGRESS_QUEUE: usize = 16;

/// Items queued beyond which a log record is skipped.
pub const LOG_QUEUE: usize = 10_000;

/// How long a write to stdout waits for stderr's queue to empty first. Once it waited this
/// long in vain, stdout waits no more until the queue has emptied.
const STDOUT_WAITS: Duration = Duration::from_millis(500);

/// What the thread writes.
enum Item {
    /// A line (the newline is added).
    Line(String),
    /// The live display's new text.
    Bar(ProgressBar, String),
    /// The live display's end: it is removed.
    ClearBar(ProgressBar),
}

/// What is queued, shared by the writers and the thread.
#[derive(Default)]
struct State {
    /// Items handed over and not yet written.
    pending: usize,
    /// A bounded wait for the queue ran out, and it has not been empty since.
    stalled: bool,
    /// Log records skipped because [`LOG_QUEUE`] items were waiting.
    logs_skipped: u64,
}

/// A queue of lines and the thread that writes them to one sink.
pub struct Writer {
    sender: Mutex<Option<Sender<Item>>>,
    state: Mutex<State>,
    emptied: Condvar,
}

impl Writer {
    /// Starts the thread that writes to `sink`. Without a thread (the system refused one),
    /// nothing is queued and every line is written where it is made.
    fn start(sink: impl Write + Send + 'static) -> &'static Self {
        let writer: &'static Self = Box::leak(Box::new(Self {
            sender: Mutex::new(None),
            state: Mutex::new(State::default()),
            emptied: Condvar::new(),
        }));
        let (sender, receiver) = channel();
        let started = std::thread::Builder::new()
            .name("imbench-stderr".into())
            .spawn(move || writer.write_all(receiver, sink));
        if started.is_ok() {
            *lock(&writer.sender) = Some(sender);
        }
        writer
    }

    /// The thread's loop. An item whose writing panics (the live display's library) is
    /// counted as written all the same: a count that never came down would hold the exit.
    fn write_all(&self, receiver: Receiver<Item>, mut sink: impl Write) {
        // The live display on screen: a line is written with it put aside and drawn again
        // below, or its next redraw (which moves up over what it drew) would erase the line.
        let mut live: Option<ProgressBar> = None;
        // Once the display's library has panicked (its lock poisoned, every later call would
        // panic again and say so), no display is drawn: lines go on bare.
        let mut given_up = false;
        for item in receiver {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match item {
                // A closed stderr ends nothing: the line is dropped.
                Item::Line(line) => {
                    let mut written = false;
                    if let Some(bar) = &live {
                        // A display whose library panicked once (a poisoned lock) would take
                        // every line after with it: it is given up, and the line written bare.
                        let suspended =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                bar.suspend(|| {
                                    let _ = writeln!(sink, "{line}");
                                    let _ = sink.flush();
                                    written = true;
                                })
                            }));
                        if suspended.is_err() {
                            live = None;
                            given_up = true;
                        }
                    }
                    if !written {
                        let _ = writeln!(sink, "{line}");
                    }
                }
                Item::Bar(bar, text) if !given_up => {
                    let _ = live.take();
                    let drawn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        bar.set_message(text);
                        bar.tick();
                    }));
                    match drawn {
                        Ok(()) => live = Some(bar),
                        Err(_) => given_up = true,
                    }
                }
                Item::Bar(..) => {}
                Item::ClearBar(bar) => {
                    live = None;
                    if !given_up {
                        bar.finish_and_clear();
                    }
                }
            }));
            let mut state = lock(&self.state);
            state.pending -= 1;
            if state.pending == 0 {
                state.stalled = false;
                self.emptied.notify_all();
            }
        }
    }

    /// Queues `item`, or gives it back when there is no thread.
    fn send(&self, item: Item) -> Result<(), Item> {
        let sender = lock(&self.sender);
        let Some(sender) = sender.as_ref() else {
            return Err(item);
        };
        lock(&self.state).pending += 1;
        sender.send(item).map_err(|e| {
            lock(&self.state).pending -= 1;
            e.0
        })
    }

    /// Queues a line.
    pub fn line(&self, line: String) {
        if let Err(Item::Line(line)) = self.send(Item::Line(line)) {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    }

    /// Queues a line when fewer than `limit` items are waiting; false when it was skipped.
    fn line_below(&self, limit: usize, line: String) -> bool {
        if lock(&self.state).pending >= limit {
            return false;
        }
        self.line(line);
        true
    }

    /// Queues a progress line unless [`PROGRESS_QUEUE`] items are waiting already; false when
    /// it was skipped.
    pub fn progress_line(&self, line: String) -> bool {
        self.line_below(PROGRESS_QUEUE, line)
    }

    /// Queues the live display's new text when nothing is waiting: a display that cannot keep
    /// up skips to the first update that finds the queue empty, rather than replaying old ones.
    pub fn bar(&self, bar: &ProgressBar, text: String) {
        if lock(&self.state).pending == 0 {
            let _ = self.send(Item::Bar(bar.clone(), text));
        }
    }

    /// Queues a log record unless [`LOG_QUEUE`] items are waiting already: a log at debug
    /// level into a stderr nobody reads must not fill the memory. Those skipped are counted
    /// and said at the exit.
    fn log_line(&self, line: String) {
        if !self.line_below(LOG_QUEUE, line) {
            lock(&self.state).logs_skipped += 1;
        }
    }

    /// Queues the removal of the live display.
    pub fn clear_bar(&self, bar: &ProgressBar) {
        if let Err(Item::ClearBar(bar)) = self.send(Item::ClearBar(bar.clone())) {
            bar.finish_and_clear();
        }
    }

    /// Waits until everything queued is written, for at most `within`; true when it was. A
    /// wait that ran out marks the queue stalled (see [`Writer::before_stdout`]).
    pub fn flush(&self, within: Duration) -> bool {
        let state = lock(&self.state);
        let waiting = |s: &mut State| s.pending > 0;
        let (mut state, waited) = self
            .emptied
            .wait_timeout_while(state, within, waiting)
            .unwrap_or_else(|e| e.into_inner());
        if waited.timed_out() && state.pending > 0 {
            state.stalled = true;
            return false;
        }
        true
    }

    /// Waits until everything queued is written, as long as it takes unless Ctrl-C or SIGTERM
    /// comes meanwhile (the process's last wait: a stderr nobody reads must not keep it
    /// forever); says first how many log records were skipped, if any.
    pub fn flush_at_exit(&self) {
        let skipped = std::mem::take(&mut lock(&self.state).logs_skipped);
        if skipped > 0 {
            self.line(format!(
                "imbench: {skipped} log records were not shown: stderr was not read as fast as they came"
            ));
        }
        if self.flush(Duration::ZERO) {
            return;
        }
        let signalled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        #[cfg(unix)]
        for signal in interrupt_signals() {
            let _ = signal_hook::flag::register(signal, signalled.clone());
        }
        while !self.flush(Duration::from_millis(100)) {
            if signalled.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
        }
    }

    /// Gives what is queued a moment to get out before something is written to stdout; none
    /// once such a moment went by in vain and the queue has not emptied since.
    pub fn before_stdout(&self) {
        if !lock(&self.state).stalled {
            self.flush(STDOUT_WAITS);
        }
    }
}

/// One log record on its way to [`stderr`]: the logging library writes a record into it and
/// drops it, and the drop queues the record as a line.
#[derive(Default)]
pub struct LogRecord(Vec<u8>);

impl Write for LogRecord {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogRecord {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let text = text.trim_end_matches('\n');
        if !text.is_empty() {
            stderr().log_line(text.to_string());
        }
    }
}

/// A lock that a panic elsewhere does not poison for the writer: the counts stay usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The process's stderr writer, started on first use.
pub fn stderr() -> &'static Writer {
    static WRITER: OnceLock<&'static Writer> = OnceLock::new();
    WRITER.get_or_init(|| Writer::start(std::io::stderr()))
}

/// The signals that interrupt a command as Ctrl-C does: SIGINT, SIGTERM (what `timeout`, a CI
/// job's cancel and `kill` send) and SIGHUP (the terminal closed, an SSH session dropped): each
/// ends the run with its report, rather than killing the process without one. SIGHUP only
/// when the process did not start with it ignored: under `nohup` a run goes on when the
/// terminal closes, and a handler would undo that.
#[cfg(unix)]
pub fn interrupt_signals() -> Vec<i32> {
    let mut signals = vec![signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM];
    if !imbench_server::process::hangup_ignored() {
        signals.push(signal_hook::consts::SIGHUP);
    }
    signals
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Long enough for any flush in these tests: one that takes it has failed.
    const A_MINUTE: Duration = Duration::from_secs(60);

    /// A sink that holds every write until it is let go, and keeps what it was given.
    #[derive(Clone)]
    struct HeldSink {
        gate: Arc<Mutex<()>>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl HeldSink {
        fn new() -> Self {
            Self {
                gate: Arc::new(Mutex::new(())),
                written: Arc::new(Mutex::new(Vec::new())),
            }
        }
        fn lines(&self) -> Vec<String> {
            String::from_utf8(self.written.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        }
    }

    impl Write for HeldSink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _open = self
                .gate
                .lock()
                .map_err(|_| std::io::Error::other("gate"))?;
            self.written
                .lock()
                .map_err(|_| std::io::Error::other("written"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_sink_that_stops_reading_holds_up_no_line_and_progress_is_skipped_past_its_queue() {
        let sink = HeldSink::new();
        let held = sink.gate.lock().unwrap();
        let writer = Writer::start(sink.clone());
        // Every hand-over returns while the sink holds its first write: from a thread that
        // says when it is done, so that a writer that blocked would fail, not hang the tests.
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let shown: Vec<bool> = (0..100)
                .map(|i| writer.progress_line(format!("progress {i}")))
                .collect();
            writer.line("an error".into());
            let flushed = writer.flush(Duration::from_millis(50));
            done_tx.send((shown, flushed)).unwrap();
        });
        let (shown, flushed) = done_rx
            .recv_timeout(A_MINUTE)
            .expect("a line handed over waited for the sink");
        assert!(!flushed, "nothing was written yet");
        drop(held);
        let skipped = shown.iter().filter(|s| !**s).count();
        assert_eq!(skipped, 100 - PROGRESS_QUEUE, "{shown:?}");
        // Wait for the thread: the last line is the error, which is never skipped.
        let deadline = std::time::Instant::now() + A_MINUTE;
        while sink.lines().last().map(String::as_str) != Some("an error") {
            assert!(std::time::Instant::now() < deadline, "{:?}", sink.lines());
            std::thread::sleep(Duration::from_millis(10));
        }
        let lines = sink.lines();
        assert_eq!(lines.len(), PROGRESS_QUEUE + 1, "{lines:?}");
        assert_eq!(lines[0], "progress 0");
        assert_eq!(
            lines[PROGRESS_QUEUE - 1],
            format!("progress {}", PROGRESS_QUEUE - 1)
        );
    }

    #[test]
    fn a_flush_waits_until_everything_queued_is_written() {
        let sink = HeldSink::new();
        let writer = Writer::start(sink.clone());
        for i in 0..PROGRESS_QUEUE * 4 {
            writer.line(format!("{i}"));
        }
        assert!(writer.flush(A_MINUTE));
        assert_eq!(sink.lines().len(), PROGRESS_QUEUE * 4);
        assert!(writer.flush(Duration::ZERO));
    }

    #[test]
    fn the_live_display_and_log_records_give_way_to_a_queue() {
        let sink = HeldSink::new();
        let held = sink.gate.lock().unwrap();
        let writer = Writer::start(sink.clone());
        writer.line("held".into());
        writer.bar(&ProgressBar::hidden(), "skipped: a line is waiting".into());
        assert_eq!(lock(&writer.state).pending, 1);
        for i in 0..LOG_QUEUE + 5 {
            writer.log_line(format!("{i}"));
        }
        assert_eq!(lock(&writer.state).pending, LOG_QUEUE);
        assert_eq!(lock(&writer.state).logs_skipped, 6);
        drop(held);
        assert!(writer.flush(A_MINUTE));
        assert_eq!(sink.lines().len(), LOG_QUEUE);
    }

    #[test]
    fn stdout_waits_no_more_once_stderr_stalled_until_it_empties() {
        let sink = HeldSink::new();
        let held = sink.gate.lock().unwrap();
        let writer = Writer::start(sink.clone());
        writer.line("held".into());
        writer.before_stdout();
        assert!(lock(&writer.state).stalled);
        drop(held);
        assert!(writer.flush(A_MINUTE));
        assert!(!lock(&writer.state).stalled);
    }
}
