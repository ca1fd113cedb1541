//! How many tokio worker threads the generator and the embedded server each get when they
//! share one machine.
//!
//! Each runtime left to itself runs a worker per CPU, so a run with the server embedded
//! brings twice as many workers as there are CPUs. Measured on 2 CPUs (docs/performance.md),
//! one worker a side cost 25 % less CPU per message at light load than two a side, and less at
//! 10,000 clients and in fan-out: a worker with nothing to do is woken to steal its sibling's
//! tasks, and threads of the two runtimes take turns on the same CPUs. The CPUs are split
//! between the two instead.

/// Worker threads of a run with the server embedded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerSplit {
    /// The generator's runtime (the clients, their accounting, the run's own tasks).
    pub generator: usize,
    /// The embedded server's runtime.
    pub server: usize,
}

impl WorkerSplit {
    /// This machine's CPUs (as far as the process may use them) split between the two.
    pub fn of_this_machine() -> Self {
        Self::of(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    /// `cpus` split in two, the generator taking the odd one: it also runs the clients'
    /// accounting, and the server's half is what a standalone server on the same CPUs would
    /// share with it anyway. Each side has at least one.
    pub fn of(cpus: usize) -> Self {
        let server = (cpus / 2).max(1);
        let generator = cpus.saturating_sub(server).max(1);
        Self { generator, server }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpus_are_split_and_each_side_has_one_at_least() {
        let split = |cpus| {
            let s = WorkerSplit::of(cpus);
            (s.generator, s.server)
        };
        assert_eq!(split(1), (1, 1));
        assert_eq!(split(2), (1, 1));
        assert_eq!(split(3), (2, 1));
        assert_eq!(split(8), (4, 4));
        assert_eq!(split(0), (1, 1));
    }
}
