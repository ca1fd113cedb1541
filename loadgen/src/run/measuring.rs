//! Whether a run of this process is measuring now, and how many runs an interrupt cut short.
//!
//! Ctrl-C belongs to the process, not to one run: its handler says what it stops, which
//! depends on whether a run is still playing its schedule or has settled what it measured
//! (and is writing its report, or none has begun). A command that runs several times
//! (`--repeat`) keeps a run out of its spread only when the interrupt came
//! before that run had measured all it was to.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;

/// Held while an interrupt is told to the runs, and while a run lets go: so that a run that
/// ends at that moment either was counted as measuring and sees the interrupt, or was not.
static TELLING: Mutex<()> = Mutex::new(());

/// Runs under way, each from its start until it has settled what it measured (a count, as
/// tests run several at once).
static MEASURING: AtomicUsize = AtomicUsize::new(0);

/// Runs that an interrupt stopped before their schedule and drain were through.
static CUT_SHORT: AtomicU64 = AtomicU64::new(0);

/// Whether any run (or a check before one) has begun in this process.
static BEGUN: AtomicBool = AtomicBool::new(false);

/// Held by a run while it measures (and by a comparison's check of a target before its runs,
/// whose interrupt its own error says); dropping it says the run has settled its figures.
pub(crate) struct Measuring {
    cut: bool,
}

impl Measuring {
    pub(crate) fn begin() -> Self {
        MEASURING.fetch_add(1, SeqCst);
        BEGUN.store(true, SeqCst);
        Self { cut: false }
    }

    /// The run stops early for an interrupt.
    pub(crate) fn cut_short(&mut self) {
        if !self.cut {
            self.cut = true;
            CUT_SHORT.fetch_add(1, SeqCst);
        }
    }
}

impl Measuring {
    /// The run has settled its figures. When an interrupt was told to it while it measured
    /// and it ended before it saw it (its schedule and drain were through), it says so: the
    /// interrupt's handler left the words to the run.
    pub(crate) fn settled(self, interrupt: Option<&tokio::sync::watch::Receiver<bool>>) {
        let _telling = TELLING.lock().unwrap_or_else(|e| e.into_inner());
        // Read under the lock: an interrupt told before it was seen by this run.
        let interrupted = interrupt.is_some_and(|rx| *rx.borrow());
        if interrupted && !self.cut {
            crate::errln!(
                "imbench: interrupted as the run ended: nothing was cut short, and no further run starts (Ctrl-C again to quit at once)"
            );
        }
        drop(self);
    }
}

impl Drop for Measuring {
    fn drop(&mut self) {
        MEASURING.fetch_sub(1, SeqCst);
    }
}

/// Tells the runs of an interrupt (`tell`) and says whether a run will say what it stops: one
/// measuring now, or, when none has begun yet (a Ctrl-C while a network path comes up), the
/// first to begin, which finds the interrupt before it starts. If not, no run was cut short.
pub fn interrupt(tell: impl FnOnce()) -> bool {
    let _telling = TELLING.lock().unwrap_or_else(|e| e.into_inner());
    let said_by_a_run = now() || !BEGUN.load(SeqCst);
    tell();
    said_by_a_run
}

/// Counts a run cut short by an interrupt outside a run's own loop: a comparison whose later
/// legs an interrupt kept from running is not whole either.
pub(crate) fn note_cut() {
    CUT_SHORT.fetch_add(1, SeqCst);
}

/// Whether a run is measuring now: an interrupt now cuts it short.
pub fn now() -> bool {
    MEASURING.load(SeqCst) > 0
}

/// How many runs of this process an interrupt has cut short so far.
pub fn cut_short() -> u64 {
    CUT_SHORT.load(SeqCst)
}

/// Tells, run after run, whether an interrupt cut the runs since the last look short.
pub struct Cuts(u64);

impl Cuts {
    /// Counting from now.
    pub fn from_now() -> Self {
        Self(cut_short())
    }

    /// Whether a run was cut short since the last call (or since [`Cuts::from_now`]).
    pub fn since(&mut self) -> bool {
        let now = cut_short();
        std::mem::replace(&mut self.0, now) < now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_measuring_while_held_and_its_cut_is_counted() {
        let before = cut_short();
        let mut run = Measuring::begin();
        assert!(now());
        run.cut_short();
        run.cut_short();
        // Once for the run, whatever else other tests' runs add meanwhile.
        assert!(cut_short() > before);
        drop(run);
        let mut cuts = Cuts::from_now();
        Measuring::begin().cut_short();
        assert!(cuts.since());
    }

    #[test]
    fn an_interrupt_is_told_and_a_measuring_run_is_seen() {
        let run = Measuring::begin();
        let mut told = false;
        assert!(interrupt(|| told = true));
        assert!(told);
        run.settled(None);
    }
}
