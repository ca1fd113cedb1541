//! The memory this machine has for a run: `MemAvailable` in `/proc/meminfo`, what the kernel
//! reckons can be handed out without swapping. Elsewhere than Linux nothing is known.

/// Bytes available now; `None` when the machine does not say.
pub fn available_bytes() -> Option<u64> {
    parse_available(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

fn parse_available(meminfo: &str) -> Option<u64> {
    imbench_server::process::parse_status_kib(meminfo, "MemAvailable:").map(|kib| kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_memavailable_in_bytes() {
        let text = "MemTotal:       24588800 kB\nMemFree:         1000000 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(parse_available(text), Some(20_000_000 * 1024));
        assert_eq!(parse_available("MemTotal: 1 kB\n"), None);
        assert_eq!(parse_available("MemAvailable: lots\n"), None);
    }
}
