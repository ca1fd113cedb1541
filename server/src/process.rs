//! This process's resident memory (from Linux's /proc) and CPU time (getrusage), keeping
//! its pages in memory, and how many threads its runtime gets. Both binaries report
//! them so that per-client memory and CPU per message are figures, not guesses. Elsewhere the
//! readings are `None`.

/// What clap answered instead of arguments when it is help or the version, rendered for
/// standard output (colour codes only where a person reads them), without its last newline.
/// Both binaries print it themselves: clap's own printing loses a failed write (a full disk)
/// without a word.
pub fn help_or_version(e: &clap::Error) -> Option<String> {
    use std::io::IsTerminal as _;
    if !matches!(
        e.kind(),
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
    ) {
        return None;
    }
    let rendered = e.render();
    let text = if std::io::stdout().is_terminal() {
        rendered.ansi().to_string()
    } else {
        rendered.to_string()
    };
    Some(text.trim_end_matches('\n').to_string())
}

/// Resident set now, in bytes.
pub fn rss_bytes() -> Option<u64> {
    status_kib("VmRSS:").map(|k| k * 1024)
}

/// Highest resident set since the process started, in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    status_kib("VmHWM:").map(|k| k * 1024)
}

/// Locks the pages mapped now (the program's code and data, its libraries) in memory. Some
/// machines page out memory nobody touched for a while, file-backed pages included (Linux's
/// DAMON `pageout`, seen on this project's VMs); a send whose code was paged out then waits
/// for the disk, and a latency figure measures that wait. Needs root or a `memlock` limit
/// above the program's size.
pub fn lock_in_memory() -> Result<(), String> {
    use nix::sys::mman::{mlockall, MlockAllFlags};
    mlockall(MlockAllFlags::MCL_CURRENT).map_err(|e| match e {
        // What mlockall says past RLIMIT_MEMLOCK: no memory is short, the limit is.
        nix::errno::Errno::ENOMEM => {
            "more than this user's locked-memory limit, `ulimit -l`".into()
        }
        e => e.to_string(),
    })
}

/// The environment variable tokio reads for its number of worker threads.
pub const WORKER_THREADS_VAR: &str = "TOKIO_WORKER_THREADS";

/// Worker threads for a binary's tokio runtime: `TOKIO_WORKER_THREADS` when it is set (tokio
/// itself panics on a value that is not a positive number, so it is read here first and such a
/// value is refused with its name), else one per CPU.
pub fn worker_threads() -> Result<usize, String> {
    Ok(told_worker_threads()?.unwrap_or_else(one_per_cpu))
}

/// A worker per CPU, the default.
pub fn one_per_cpu() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The worker threads `TOKIO_WORKER_THREADS` asks for; `None` when it is not set.
pub fn told_worker_threads() -> Result<Option<usize>, String> {
    std::env::var_os(WORKER_THREADS_VAR)
        .map(|value| worker_threads_from(&value.to_string_lossy()))
        .transpose()
}

fn worker_threads_from(value: &str) -> Result<usize, String> {
    match value.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_WORKER_THREADS).contains(&n) => Ok(n),
        _ => Err(format!(
            "{WORKER_THREADS_VAR}={value:?} is not a number of worker threads: give one from 1 to {MAX_WORKER_THREADS}, or unset it for the default (a worker per CPU, or with the server embedded in `imbench run` half the CPUs each)"
        )),
    }
}

/// More worker threads than any machine this runs on has CPUs for (each thread costs a stack).
const MAX_WORKER_THREADS: usize = 4096;

/// User plus system CPU time used by every thread of the process so far, in seconds, to the
/// microsecond (getrusage: the kernel's own run time of every thread, living or ended; the
/// clock-tick fields of /proc/self/stat move in 10 ms steps, too coarse for a short run).
pub fn cpu_seconds() -> Option<f64> {
    use nix::sys::resource::{getrusage, UsageWho};
    use nix::sys::time::TimeValLike;
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let us = usage.user_time().num_microseconds() + usage.system_time().num_microseconds();
    Some(us as f64 / 1e6)
}

/// Raises this process's soft limit on open files to its hard limit, and returns the limit
/// now in force (`None` where it cannot be read). Every TCP, TLS or WebSocket connection
/// holds one file; the soft limit is often far below what the hard limit allows.
pub fn raise_open_files() -> Option<u64> {
    #[cfg(unix)]
    {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
        if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
            return Some(hard);
        }
        Some(soft)
    }
    #[cfg(not(unix))]
    None
}

/// Whether SIGHUP was ignored when this process started, as `nohup` leaves it: a closed
/// terminal is then no reason to stop, and neither binary listens for it (a handler would undo
/// what nohup did). Read once, from `/proc/self/status`, before any handler is installed:
/// each binary calls it first thing in `main`. Elsewhere than Linux, `false`.
pub fn hangup_ignored() -> bool {
    static IGNORED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IGNORED.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| signal_ignored(&status, 1))
            .unwrap_or(false)
    })
}

/// Whether signal number `signal` is in the `SigIgn:` mask of a `/proc/<pid>/status` text.
pub fn signal_ignored(status: &str, signal: u32) -> Option<bool> {
    let line = status.lines().find(|l| l.starts_with("SigIgn:"))?;
    let mask = u64::from_str_radix(line["SigIgn:".len()..].trim(), 16).ok()?;
    let bit = 1u64.checked_shl(signal.checked_sub(1)?)?;
    Some(mask & bit != 0)
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_kib(&status, field)
}

/// The number of KiB on the line of `text` that starts with `field` (`"VmHWM:"`), in the
/// `Name:   1234 kB` form of `/proc/self/status` and `/proc/meminfo`.
pub fn parse_status_kib(text: &str, field: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ignored_signal_is_read_off_the_status_mask() {
        let status = "Name:\tx\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000001001\n";
        assert_eq!(signal_ignored(status, 1), Some(true));
        assert_eq!(signal_ignored(status, 13), Some(true));
        assert_eq!(signal_ignored(status, 2), Some(false));
        assert_eq!(signal_ignored("Name:\tx\n", 1), None);
        assert_eq!(signal_ignored(status, 0), None);
    }

    #[test]
    fn status_fields_are_read_in_kib() {
        let status = "Name:\timbench\nVmHWM:\t  514144 kB\nVmRSS:\t   5740 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(514_144));
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(5_740));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_memory_and_cpu_readings() {
        // The kernel updates the peak lazily, so it can trail the current figure briefly.
        assert!(rss_bytes().unwrap_or(0) > 0);
        assert!(peak_rss_bytes().unwrap_or(0) > 0);
        assert!(cpu_seconds().is_some());
    }

    /// The first number of a /proc/self/status line (the real uid, for `Uid:`).
    fn status_first_number(field: &str) -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with(field))?;
        line[field.len()..].split_whitespace().next()?.parse().ok()
    }

    #[test]
    fn root_can_lock_the_pages_it_has_mapped() {
        let uid = status_first_number("Uid:");
        if uid != Some(0) {
            return; // A memlock limit below the test binary's size may refuse; the binaries say so.
        }
        lock_in_memory().expect("root may lock its pages");
        assert!(status_kib("VmLck:").unwrap_or(0) > 0, "nothing locked");
    }

    #[test]
    fn cpu_time_moves_in_steps_finer_than_a_clock_tick() {
        // Spin until the reading changes: the first change is one step of its resolution. The
        // clock-tick fields of /proc/self/stat would step by 10 ms; getrusage steps by microseconds.
        let start = cpu_seconds().unwrap();
        let mut now = start;
        for _ in 0..100_000_000u64 {
            now = cpu_seconds().unwrap();
            if now != start {
                break;
            }
        }
        let step = now - start;
        assert!(step > 0.0 && step < 0.005, "first step {step} s");
    }

    #[test]
    fn a_worker_thread_count_from_the_environment_is_read_or_refused() {
        assert_eq!(super::worker_threads_from("3"), Ok(3));
        assert_eq!(super::worker_threads_from(" 1\n"), Ok(1));
        for bad in ["0", "abc", "-1", "", "4097", "99999999999999999999999"] {
            let e = super::worker_threads_from(bad).unwrap_err();
            assert!(
                e.contains("TOKIO_WORKER_THREADS") && e.contains("from 1 to"),
                "{e}"
            );
        }
    }
}
