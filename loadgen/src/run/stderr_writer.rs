//! Writes the live progress to stderr from a thread of its own.
//!
//! A write to stderr blocks while nobody reads it: a terminal stopped with Ctrl-S, a pipe into
//! a reader that is busy, a log file held up by the kernel's writeback. Written from the run
//! loop, such a write held that loop (and the tokio worker under it) for as long: the
//! per-second timeline bunched up, the watchdog and Ctrl-C waited, and the run could not end.
//! Here the loop only hands a line over; a line that finds the queue full is skipped and
//! counted, and the run says at its end how many were.

use std::io::Write;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

use indicatif::ProgressBar;

/// Lines that may wait for a slow reader before new ones are skipped: a quarter of a minute of
/// progress, enough for a reader that only pauses.
const QUEUE: usize = 16;

/// What the run loop hands over.
enum Output {
    /// A plain line (the newline is added).
    Line(String),
    /// The live display's new text.
    Bar(String),
}

/// The handle the run loop writes through.
pub struct StderrWriter {
    sender: Option<SyncSender<Output>>,
    thread: Option<JoinHandle<()>>,
    /// Lines the queue had no room for.
    skipped: u64,
}

impl StderrWriter {
    /// Starts the writing thread over stderr, with the live display `bar` if there is one.
    pub fn stderr(bar: Option<ProgressBar>) -> Self {
        Self::over(std::io::stderr(), bar)
    }

    /// Starts the writing thread over `sink`. Without a thread (the system refused one) lines
    /// are skipped and counted: a run is not stopped for its progress display.
    pub fn over(sink: impl Write + Send + 'static, bar: Option<ProgressBar>) -> Self {
        let (sender, receiver) = sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("imbench-progress".into())
            .spawn(move || write_all(receiver, sink, bar))
            .ok();
        Self {
            sender: thread.is_some().then_some(sender),
            thread,
            skipped: 0,
        }
    }

    /// Hands `line` to the thread, or skips it when the queue is full.
    pub fn line(&mut self, line: String) {
        if !self.send(Output::Line(line)) {
            self.skipped += 1;
        }
    }

    /// Hands the live display's new text to the thread; a display that cannot keep up just
    /// shows a later one.
    pub fn bar(&mut self, text: String) {
        self.send(Output::Bar(text));
    }

    fn send(&mut self, output: Output) -> bool {
        match self.sender.as_ref().map(|s| s.try_send(output)) {
            Some(Ok(())) => true,
            Some(Err(TrySendError::Full(_))) | None => false,
            // The thread is gone (it stops only when the queue is closed, or on a panic in
            // the display): nothing more can be shown.
            Some(Err(TrySendError::Disconnected(_))) => {
                self.sender = None;
                false
            }
        }
    }

    /// Waits until everything handed over is written and the live display is cleared, and
    /// says how many lines were skipped. This waits for stderr's reader: call it once the run
    /// is over.
    pub fn finish(&mut self) -> u64 {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.skipped
    }
}

impl Drop for StderrWriter {
    /// A run that ends early still clears its live display before anything else is printed.
    fn drop(&mut self) {
        self.finish();
    }
}

/// The thread's loop: writes until the run loop's handle is gone. A closed stderr ends
/// nothing: the lines are dropped, as every other write to it is.
fn write_all(receiver: Receiver<Output>, mut sink: impl Write, bar: Option<ProgressBar>) {
    for output in receiver {
        match (output, &bar) {
            (Output::Line(line), _) => {
                let _ = writeln!(sink, "{line}");
            }
            (Output::Bar(text), Some(bar)) => {
                bar.set_message(text);
                bar.tick();
            }
            (Output::Bar(_), None) => {}
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// A sink that holds every write until it is let go, and keeps what it was given.
    #[derive(Clone)]
    struct HeldSink {
        gate: Arc<Mutex<()>>,
        written: Arc<Mutex<Vec<u8>>>,
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
    fn a_reader_that_stops_reading_holds_up_no_line_and_the_skipped_are_counted() {
        let sink = HeldSink {
            gate: Arc::new(Mutex::new(())),
            written: Arc::new(Mutex::new(Vec::new())),
        };
        let held = sink.gate.lock().unwrap();
        let mut writer = StderrWriter::over(sink.clone(), None);
        // Every hand-over returns while the sink holds its first write: 100 lines from a
        // thread that says when it is done.
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let handing = std::thread::spawn(move || {
            for i in 0..100 {
                writer.line(format!("line {i}"));
            }
            done_tx.send(()).unwrap();
            writer
        });
        // A bound only for a writer that would block; a working one returns at once.
        done_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("a line handed over waited for the sink");
        let mut writer = handing.join().unwrap();
        drop(held);
        let skipped = writer.finish();
        let written = String::from_utf8(sink.written.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = written.lines().collect();
        // The thread took one line before the queue filled behind it.
        assert!(
            (100 - QUEUE as u64 - 1..=100 - QUEUE as u64).contains(&skipped),
            "skipped {skipped}"
        );
        assert_eq!(lines.len() as u64, 100 - skipped);
        // In the order handed over, from the first.
        let numbers: Vec<u32> = lines
            .iter()
            .map(|l| l.trim_start_matches("line ").parse().unwrap())
            .collect();
        assert_eq!(numbers[0], 0);
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    }

    #[test]
    fn everything_handed_over_is_written_before_finish_returns() {
        let sink = HeldSink {
            gate: Arc::new(Mutex::new(())),
            written: Arc::new(Mutex::new(Vec::new())),
        };
        let mut writer = StderrWriter::over(sink.clone(), None);
        for i in 0..QUEUE {
            writer.line(format!("{i}"));
        }
        writer.bar("not a line".into());
        assert_eq!(writer.finish(), 0);
        let written = String::from_utf8(sink.written.lock().unwrap().clone()).unwrap();
        assert_eq!(written.lines().count(), QUEUE);
        // A second finish (the drop's) has nothing left to do.
        assert_eq!(writer.finish(), 0);
    }
}
