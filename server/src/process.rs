//! This process's resident memory and CPU time, read from Linux's /proc. Both binaries report
//! them so that per-client memory and CPU per message are figures, not guesses. Elsewhere the
//! readings are `None`.

/// Resident set now, in bytes.
pub fn rss_bytes() -> Option<u64> {
    status_kib("VmRSS:").map(|k| k * 1024)
}

/// Highest resident set since the process started, in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    status_kib("VmHWM:").map(|k| k * 1024)
}

/// User plus system CPU time used by every thread of the process so far, in seconds.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_cpu_seconds(&stat)
}

/// Fields 14 and 15 of /proc/self/stat are utime and stime in clock ticks. The command name
/// (field 2) may hold spaces, so counting starts after its closing parenthesis. Linux fixes
/// the tick exposed to user space (USER_HZ) at 100 per second.
fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    const USER_HZ: f64 = 100.0;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_kib(&status, field)
}

fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
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
    fn cpu_fields_are_found_after_a_command_name_with_spaces() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0";
        assert_eq!(parse_cpu_seconds(stat), Some(3.25));
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
}
