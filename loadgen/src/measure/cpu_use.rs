//! Who used the CPUs during a run: the generator, the embedded server, the precise timer, the
//! rest of the machine, and the hypervisor (steal); and how long this process's threads waited
//! for a CPU while they could have run.
//!
//! A latency figure is only a figure about the server when the machine had CPU to spare. When
//! the CPUs this process may run on were (nearly) all busy, whoever used them, the generator
//! woke late, the server read late, and the numbers measure the machine instead. So each run
//! takes two snapshots (start and end of the measured period) of:
//!
//! - every thread of this process: `/proc/self/task/<tid>/schedstat` gives the nanoseconds it
//!   ran and the nanoseconds it waited on a run queue; its name (`comm`) tells whose it is
//!   (the embedded server's runtime names its threads [`SERVER_THREAD_NAME`], the timer thread
//!   is [`TIMER_THREAD_NAME`], the hiccup meter's is [`HICCUP_THREAD_NAME`], everything else
//!   is the generator);
//! - the CPUs this process may use (`Cpus_allowed_list` in `/proc/self/status`, so `taskset`
//!   is honoured) in `/proc/stat`: busy, idle and steal ticks;
//! - the UDP sends of the machine (`OutDatagrams` in `/proc/net/snmp`, summed over the
//!   network namespaces this process's threads are in: on an emulated path, the clients' and
//!   the embedded server's): on loopback with the server embedded, what the run's messages
//!   cost in sends, both sides together. The kernel counts a send once even when it carries
//!   a run of datagrams, as imbench's shared QUIC sockets send them.
//!
//! Elsewhere than Linux the snapshot is empty and nothing is judged.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::measure::hiccups::HICCUP_THREAD_NAME;

/// How every reason that a run is invalid because of the machine begins: the words a person
/// reads, and what `imbench run --find-max` and `scripts/machine-limited` look for.
pub const THE_MACHINE: &str = "the machine";

/// True when an invalid reason is the machine's, not the generator's or the server's.
pub fn is_the_machines(reason: &str) -> bool {
    reason.starts_with(THE_MACHINE)
}

/// Thread name of the embedded server's runtime (at most 15 bytes: Linux keeps no more).
pub const SERVER_THREAD_NAME: &str = "imbench-server";

/// Wake-ups below which the mean wait per wake-up is not judged.
const MIN_WAKEUPS: u64 = 1_000;

/// Thread name of the precise timer.
pub const TIMER_THREAD_NAME: &str = "imbench-timer";

/// Whose a thread is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Side {
    Generator,
    Server,
    Timer,
    /// The hiccup meter: its CPU counts with the timer's; its thousand wake-ups a second, and
    /// its waits for a CPU, are its measurement, not the run's, so they are left out.
    HiccupMeter,
}

impl Side {
    fn of(comm: &str) -> Self {
        // Linux truncates names to 15 bytes; both names fit, so a prefix match is exact.
        if comm.starts_with(SERVER_THREAD_NAME) {
            Side::Server
        } else if comm.starts_with(TIMER_THREAD_NAME) {
            Side::Timer
        } else if comm.starts_with(HICCUP_THREAD_NAME) {
            Side::HiccupMeter
        } else {
            Side::Generator
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct ThreadTimes {
    run_ns: u64,
    wait_ns: u64,
    /// Times the thread was put on a CPU.
    slices: u64,
}

/// CPU ticks of the CPUs this process may use, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct MachineTicks {
    busy: u64,
    idle: u64,
    steal: u64,
}

/// One reading of this process's threads and of the machine.
#[derive(Debug, Clone, Default)]
pub struct CpuSnapshot {
    threads: HashMap<u32, (Side, ThreadTimes)>,
    machine: Option<MachineTicks>,
    /// UDP sends so far in each network namespace this process has a thread in
    /// (by the namespace's link name, `net:[INODE]`).
    udp_out: HashMap<std::path::PathBuf, u64>,
    cpus: usize,
    at: Option<std::time::Instant>,
}

impl CpuSnapshot {
    /// Reads the threads and the machine now.
    pub fn take() -> Self {
        let cpus_allowed = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("Cpus_allowed_list:"))?;
                parse_cpu_list(line["Cpus_allowed_list:".len()..].trim())
            });
        let machine = match (&cpus_allowed, std::fs::read_to_string("/proc/stat")) {
            (Some(allowed), Ok(stat)) => parse_proc_stat(&stat, allowed),
            _ => None,
        };
        let mut threads = HashMap::new();
        // The network namespaces this process's threads are in (one, or on an emulated path
        // the clients' and the embedded server's), each with a thread in it whose
        // `net/snmp` is that namespace's.
        let mut namespaces: HashMap<std::path::PathBuf, std::path::PathBuf> = HashMap::new();
        if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
            for entry in dir.flatten() {
                let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                    continue;
                };
                let path = entry.path();
                if let Ok(ns) = std::fs::read_link(path.join("ns/net")) {
                    namespaces
                        .entry(ns)
                        .or_insert_with(|| path.join("net/snmp"));
                }
                // A thread may end between the listing and the read: skip it.
                let (Ok(comm), Ok(schedstat)) = (
                    std::fs::read_to_string(path.join("comm")),
                    std::fs::read_to_string(path.join("schedstat")),
                ) else {
                    continue;
                };
                if let Some(times) = parse_schedstat(&schedstat) {
                    threads.insert(tid, (Side::of(comm.trim()), times));
                }
            }
        }
        Self {
            threads,
            machine,
            udp_out: udp_out_of(namespaces),
            cpus: cpus_allowed.map_or(0, |c| c.len()),
            at: Some(std::time::Instant::now()),
        }
    }
}

/// "1 CPU", "2 CPUs".
pub fn cpus(n: usize) -> String {
    format!("{n} CPU{}", if n == 1 { "" } else { "s" })
}

/// A share as a percentage with the digits it needs: `90` for 0.9, `0.0001` for 0.000001 (a
/// limit set that low is still not 0 %).
fn percent(share: f64) -> String {
    let p = share * 100.0;
    if p >= 1.0 || p <= 0.0 {
        return format!("{p:.0}");
    }
    let digits = (-p.log10()).ceil() as usize;
    format!("{p:.digits$}")
}

/// Where the CPU went over a period, in cores (CPU seconds per second).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUse {
    /// CPUs this process was allowed to run on.
    pub cpus: usize,
    /// Length of the period, seconds.
    pub period_s: f64,
    /// The generator's threads (clients, receive paths, recording, progress).
    pub generator_cores: f64,
    /// The embedded server's threads; `None` when the server ran elsewhere.
    pub server_cores: Option<f64>,
    /// The measuring threads: the precise timer and the hiccup meter.
    pub timer_cores: f64,
    /// Everything else on those CPUs: other processes and the kernel's own work.
    pub other_cores: f64,
    /// Time the hypervisor gave those CPUs to someone else.
    pub steal_cores: f64,
    /// Share of those CPUs' time that was busy (this process, others and steal), 0 to 1.
    pub busy_fraction: f64,
    /// This process's threads waiting on a run queue while runnable, in cores: on average so
    /// many of its threads were ready to run and had no CPU.
    pub wait_cores: f64,
    /// The mean wait, in µs, between a thread of this process becoming runnable and running.
    /// On an idle machine this is the scheduler's (and hypervisor's) wake-up time, tens of
    /// µs; when the CPUs are short it grows to the scheduler's time slices, milliseconds.
    #[serde(default)]
    pub wait_per_wakeup_us: f64,
    /// Times this process's threads were put on a CPU: its wake-ups.
    #[serde(default)]
    pub wakeups: u64,
    /// UDP sends of the whole machine, the kernel's `OutDatagrams` (all processes; on
    /// loopback, both sides of the run's QUIC connections and anything else that sent UDP; on
    /// an emulated path, in the clients' and the embedded server's namespaces). A send that
    /// carries a run of datagrams (segmentation offload) counts once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_datagrams: Option<u64>,
}

impl CpuUse {
    /// The span these readings were taken over when it is longer than a measured period of
    /// `period_s`: a period the run found, after the fact, had ended earlier (a server silent
    /// since before it was noticed), over which the use is taken as even. `None` when the span
    /// is the period, to the 1 % the two clocks' reads may differ by.
    pub fn span_beyond(&self, period_s: f64) -> Option<f64> {
        (self.period_s > period_s * 1.01).then_some(self.period_s)
    }

    /// What happened between two snapshots; `None` where the readings are missing.
    pub fn between(start: &CpuSnapshot, end: &CpuSnapshot, server_here: bool) -> Option<Self> {
        let (Some(t0), Some(t1)) = (start.at, end.at) else {
            return None;
        };
        let period_s = t1.duration_since(t0).as_secs_f64();
        if period_s <= 0.0 || end.threads.is_empty() {
            return None;
        }
        let mut run: HashMap<Side, u64> = HashMap::new();
        let mut wait = 0u64;
        let mut slices = 0u64;
        for (tid, (side, now)) in &end.threads {
            // A thread born during the period started from zero.
            let before = start.threads.get(tid).map(|(_, t)| *t).unwrap_or_default();
            *run.entry(*side).or_default() += now.run_ns.saturating_sub(before.run_ns);
            if *side == Side::HiccupMeter {
                continue;
            }
            wait += now.wait_ns.saturating_sub(before.wait_ns);
            slices += now.slices.saturating_sub(before.slices);
        }
        let cores = |ns: u64| ns as f64 / 1e9 / period_s;
        let generator_cores = cores(run.get(&Side::Generator).copied().unwrap_or(0));
        let server_cores = cores(run.get(&Side::Server).copied().unwrap_or(0));
        let timer_cores = cores(
            run.get(&Side::Timer).copied().unwrap_or(0)
                + run.get(&Side::HiccupMeter).copied().unwrap_or(0),
        );
        let ours = generator_cores + server_cores + timer_cores;
        let cpus = end.cpus;
        let (busy_fraction, steal_cores, other_cores) = match (start.machine, end.machine) {
            (Some(a), Some(b)) => {
                let busy = b.busy.saturating_sub(a.busy) as f64;
                let idle = b.idle.saturating_sub(a.idle) as f64;
                let steal = b.steal.saturating_sub(a.steal) as f64;
                let total = busy + idle;
                if total > 0.0 {
                    // /proc/stat counts 10 ms ticks, the threads' figures nanoseconds: at least
                    // what this process used was busy, whatever the ticks say.
                    let busy_fraction = (busy / total)
                        .max(((ours + steal / total * cpus as f64) / cpus.max(1) as f64).min(1.0));
                    let busy_cores = busy_fraction * cpus as f64;
                    let steal_cores = steal / total * cpus as f64;
                    // Ticks are coarse (10 ms): never report a negative share for the others.
                    let other = (busy_cores - steal_cores - ours).max(0.0);
                    (busy_fraction, steal_cores, other)
                } else {
                    (0.0, 0.0, 0.0)
                }
            }
            _ => (0.0, 0.0, 0.0),
        };
        Some(Self {
            cpus,
            period_s,
            generator_cores,
            server_cores: server_here.then_some(server_cores),
            timer_cores,
            other_cores,
            steal_cores,
            busy_fraction,
            wait_cores: cores(wait),
            wait_per_wakeup_us: if slices == 0 {
                0.0
            } else {
                wait as f64 / 1e3 / slices as f64
            },
            wakeups: slices,
            // Over the namespaces read both times: one met only once (a path that came up
            // or went down between the readings) has no difference to give.
            udp_datagrams: {
                let both: Vec<u64> = end
                    .udp_out
                    .iter()
                    .filter_map(|(ns, b)| Some(b.saturating_sub(*start.udp_out.get(ns)?)))
                    .collect();
                (!both.is_empty()).then(|| both.iter().sum())
            },
        })
    }

    /// Why the machine, not the server, set the figures, if it did: the CPUs were busier than
    /// `max_busy` (a fraction), or this process's threads waited longer than `max_wait_us` on
    /// average for a CPU each time they became runnable.
    pub fn limit_reason(&self, max_busy: f64, max_wait_us: f64) -> Option<String> {
        // Strictly above: a limit of 1.0 never fires.
        let busy = self.busy_fraction > max_busy;
        // A mean over a handful of wake-ups (a run that sent nothing) says nothing.
        let waiting = self.wakeups >= MIN_WAKEUPS && self.wait_per_wakeup_us > max_wait_us;
        if !busy && !waiting {
            return None;
        }
        let mut why = if busy {
            // Above the limit, shown so: 90.4 % against a limit of 90 % is not "90% busy".
            let shown = format!("{:.0}", self.busy_fraction * 100.0);
            let shown = if shown == percent(max_busy) {
                format!("over {shown}")
            } else {
                shown
            };
            format!(
                "{THE_MACHINE} was the limit: its {} {} {shown}% busy (limit {}%)",
                cpus(self.cpus),
                if self.cpus == 1 { "was" } else { "were" },
                percent(max_busy)
            )
        } else {
            format!(
                "{THE_MACHINE} was the limit: this process's threads waited {:.0} µs for a CPU each time they woke (limit {max_wait_us:.0} µs)",
                self.wait_per_wakeup_us
            )
        };
        why.push_str(&format!(": {}", self.breakdown()));
        Some(why)
    }

    /// This process's threads, over enough wake-ups to judge, waited on a run queue for longer
    /// than they ran: it was short of CPU, not of time to do its work in. A process with more
    /// work than one CPU does runs most of the time it is runnable, unless its threads outnumber
    /// the CPUs, and then the CPUs are all busy, which [`Self::limit_reason`] judges.
    pub fn waited_longer_than_ran(&self) -> bool {
        self.wakeups >= MIN_WAKEUPS && self.wait_cores > self.ran_cores()
    }

    /// What this process's threads ran, in cores: the generator's, the embedded server's and
    /// the measuring threads'.
    pub fn ran_cores(&self) -> f64 {
        self.generator_cores + self.server_cores.unwrap_or(0.0) + self.timer_cores
    }

    /// Who used the CPUs, in words.
    pub fn breakdown(&self) -> String {
        let mut parts = vec![format!("generator {:.2}", self.generator_cores)];
        if let Some(s) = self.server_cores {
            parts.push(format!("embedded server {s:.2}"));
        }
        if self.timer_cores >= 0.005 {
            parts.push(format!("timer {:.2}", self.timer_cores));
        }
        parts.push(format!("other processes {:.2}", self.other_cores));
        parts.push(format!("steal {:.2}", self.steal_cores));
        parts.push(format!("waiting for a CPU {:.2}", self.wait_cores));
        format!(
            "{} cores; {:.0} µs wait per wake-up",
            parts.join(", "),
            self.wait_per_wakeup_us
        )
    }
}

/// `0-3,5,7-8` → the CPU numbers.
fn parse_cpu_list(list: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b - a > 65_536 {
                    return None;
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    (!cpus.is_empty()).then_some(cpus)
}

/// Sums the `cpuN` lines of `/proc/stat` for the CPUs in `allowed`. Fields after the name:
/// user nice system idle iowait irq softirq steal (guest time is already inside user).
fn parse_proc_stat(stat: &str, allowed: &[usize]) -> Option<MachineTicks> {
    let mut t = MachineTicks::default();
    let mut found = 0;
    for line in stat.lines() {
        let Some(rest) = line.strip_prefix("cpu") else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let Some(Ok(n)) = fields.next().map(str::parse::<usize>) else {
            continue; // the all-CPU line "cpu  …"
        };
        if !allowed.contains(&n) {
            continue;
        }
        let v: Vec<u64> = fields.take(8).filter_map(|f| f.parse().ok()).collect();
        if v.len() < 8 {
            return None;
        }
        let (user, nice, system, idle, iowait, irq, softirq, steal) =
            (v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
        t.busy += user + nice + system + irq + softirq + steal;
        t.idle += idle + iowait;
        t.steal += steal;
        found += 1;
    }
    (found > 0).then_some(t)
}

/// UDP sends so far in each network namespace of `namespaces` (its name, and the
/// `snmp` file of a thread in it); this process's own, `/proc/net/snmp`, when none could be
/// read.
fn udp_out_of(
    namespaces: HashMap<std::path::PathBuf, std::path::PathBuf>,
) -> HashMap<std::path::PathBuf, u64> {
    let read = |f: &std::path::Path| {
        std::fs::read_to_string(f)
            .ok()
            .and_then(|s| parse_udp_out(&s))
    };
    let counts: HashMap<std::path::PathBuf, u64> = namespaces
        .into_iter()
        .filter_map(|(ns, file)| Some((ns, read(&file)?)))
        .collect();
    if !counts.is_empty() {
        return counts;
    }
    read(std::path::Path::new("/proc/net/snmp"))
        .map(|n| (std::path::PathBuf::from("own"), n))
        .into_iter()
        .collect()
}

/// `OutDatagrams` of the second `Udp:` line of `/proc/net/snmp` (the first names the fields).
fn parse_udp_out(snmp: &str) -> Option<u64> {
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let names: Vec<&str> = lines.next()?.split_whitespace().collect();
    let values: Vec<&str> = lines.next()?.split_whitespace().collect();
    let i = names.iter().position(|n| *n == "OutDatagrams")?;
    values.get(i)?.parse().ok()
}

/// `/proc/<pid>/task/<tid>/schedstat`: nanoseconds on a CPU, nanoseconds waiting on a run
/// queue, time slices.
fn parse_schedstat(s: &str) -> Option<ThreadTimes> {
    let mut f = s.split_whitespace();
    Some(ThreadTimes {
        run_ns: f.next()?.parse().ok()?,
        wait_ns: f.next()?.parse().ok()?,
        slices: f.next()?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_are_read_as_taskset_writes_them() {
        assert_eq!(parse_cpu_list("0-1"), Some(vec![0, 1]));
        assert_eq!(parse_cpu_list("0,2-4,7"), Some(vec![0, 2, 3, 4, 7]));
        assert_eq!(parse_cpu_list("3"), Some(vec![3]));
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("4-2"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn only_the_allowed_cpus_are_summed() {
        let stat = "cpu  30 0 10 100 0 0 0 5 0 0\n\
                    cpu0 10 0 5 50 0 0 0 5 0 0\n\
                    cpu1 20 0 5 50 2 1 1 0 0 0\n\
                    intr 1 2 3\n";
        let both = parse_proc_stat(stat, &[0, 1]).unwrap();
        assert_eq!(both.busy, 10 + 5 + 5 + 20 + 5 + 1 + 1);
        assert_eq!(both.idle, 50 + 50 + 2);
        assert_eq!(both.steal, 5);
        let one = parse_proc_stat(stat, &[1]).unwrap();
        assert_eq!((one.busy, one.idle, one.steal), (27, 52, 0));
        assert_eq!(parse_proc_stat(stat, &[5]), None);
    }

    #[test]
    fn udp_datagrams_sent_are_read_by_field_name() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                    Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors\n\
                    Udp: 6129580 0 131097 6261411 131097\n\
                    UdpLite: InDatagrams NoPorts InErrors OutDatagrams\n\
                    UdpLite: 0 0 0 0\n";
        assert_eq!(parse_udp_out(snmp), Some(6_261_411));
        assert_eq!(parse_udp_out("Udp: InDatagrams\nUdp: 5\n"), None);
    }

    #[test]
    fn thread_names_decide_the_side() {
        assert_eq!(Side::of("imbench-server"), Side::Server);
        assert_eq!(Side::of("imbench-timer"), Side::Timer);
        assert_eq!(Side::of(HICCUP_THREAD_NAME), Side::HiccupMeter);
        assert_eq!(Side::of("tokio-runtime-w"), Side::Generator);
        assert_eq!(Side::of("imbench"), Side::Generator);
    }

    fn snapshot(
        at: std::time::Instant,
        threads: &[(u32, Side, u64, u64)],
        machine: MachineTicks,
    ) -> CpuSnapshot {
        CpuSnapshot {
            threads: threads
                .iter()
                .map(|&(tid, side, run_ns, wait_ns)| {
                    // One wake-up per 100 µs of waiting.
                    let slices = wait_ns / 100_000;
                    (
                        tid,
                        (
                            side,
                            ThreadTimes {
                                run_ns,
                                wait_ns,
                                slices,
                            },
                        ),
                    )
                })
                .collect(),
            machine: Some(machine),
            udp_out: HashMap::new(),
            cpus: 2,
            at: Some(at),
        }
    }

    #[test]
    fn udp_datagrams_add_up_over_the_namespaces_read_both_times() {
        let t0 = std::time::Instant::now();
        let t1 = t0 + std::time::Duration::from_secs(1);
        let ns = |n: &str| std::path::PathBuf::from(n);
        let mut start = snapshot(t0, &[(1, Side::Generator, 0, 0)], MachineTicks::default());
        let mut end = snapshot(t1, &[(1, Side::Generator, 1, 0)], MachineTicks::default());
        assert_eq!(
            CpuUse::between(&start, &end, false).unwrap().udp_datagrams,
            None
        );
        start.udp_out = [(ns("client"), 100), (ns("server"), 1_000)].into();
        // A namespace met only at the end gives no difference, whatever its count.
        end.udp_out = [
            (ns("client"), 150),
            (ns("server"), 1_070),
            (ns("new"), 9_999),
        ]
        .into();
        let u = CpuUse::between(&start, &end, false).unwrap();
        assert_eq!(u.udp_datagrams, Some(120));
    }

    #[test]
    fn a_busy_machine_is_the_limit_and_the_breakdown_says_who_used_it() {
        let t0 = std::time::Instant::now();
        let t1 = t0 + std::time::Duration::from_secs(2);
        let start = snapshot(
            t0,
            &[(1, Side::Generator, 0, 0), (2, Side::Server, 0, 0)],
            MachineTicks::default(),
        );
        // Over 2 s on 2 CPUs (400 ticks): 390 busy. The generator ran 1.2 s, the server 0.8 s,
        // a thread born during the period 0.2 s; they waited 0.6 s in all.
        let end = snapshot(
            t1,
            &[
                (1, Side::Generator, 1_200_000_000, 400_000_000),
                (2, Side::Server, 800_000_000, 100_000_000),
                (3, Side::Generator, 200_000_000, 100_000_000),
            ],
            MachineTicks {
                busy: 390,
                idle: 10,
                steal: 20,
            },
        );
        let u = CpuUse::between(&start, &end, true).unwrap();
        assert!((u.generator_cores - 0.7).abs() < 1e-9);
        assert_eq!(u.server_cores, Some(0.4));
        assert!((u.busy_fraction - 0.975).abs() < 1e-9);
        assert!((u.steal_cores - 0.1).abs() < 1e-9);
        // 1.95 cores busy − 0.1 steal − 1.1 ours.
        assert!((u.other_cores - 0.75).abs() < 1e-9);
        assert!((u.wait_cores - 0.3).abs() < 1e-9);
        assert!((u.wait_per_wakeup_us - 100.0).abs() < 1e-9);
        let why = u.limit_reason(0.9, 1000.0).unwrap();
        assert!(why.contains("98% busy"), "{why}");
        assert!(why.contains("embedded server 0.40"), "{why}");
        // 90.4 % against a limit of 90 % would read "90% busy (limit 90%)".
        let near = CpuUse {
            busy_fraction: 0.904,
            ..u.clone()
        };
        let near = near.limit_reason(0.9, 1000.0).unwrap();
        assert!(near.contains("were over 90% busy (limit 90%)"), "{near}");
        // The same period judged against looser limits passes; waiting alone can also fail it.
        assert_eq!(u.limit_reason(0.99, 1000.0), None);
        assert_eq!(u.limit_reason(1.0, 1000.0), None);
        assert!(u
            .limit_reason(0.99, 50.0)
            .unwrap()
            .contains("waited 100 µs"));
        // Without an embedded server its share is not reported.
        assert_eq!(
            CpuUse::between(&start, &end, false).unwrap().server_cores,
            None
        );
    }

    #[test]
    fn the_hiccup_meter_counts_as_the_timer_and_its_wake_ups_are_left_out() {
        let t0 = std::time::Instant::now();
        let t1 = t0 + std::time::Duration::from_secs(1);
        let start = snapshot(t0, &[], MachineTicks::default());
        let end = snapshot(
            t1,
            &[
                (1, Side::Generator, 100_000_000, 10_000_000),
                (2, Side::Timer, 20_000_000, 0),
                (3, Side::HiccupMeter, 10_000_000, 500_000_000),
            ],
            MachineTicks {
                busy: 30,
                idle: 170,
                steal: 0,
            },
        );
        let u = CpuUse::between(&start, &end, false).unwrap();
        assert!((u.timer_cores - 0.03).abs() < 1e-9);
        assert!((u.generator_cores - 0.1).abs() < 1e-9);
        // Only the generator's 100 wake-ups and 10 ms of waiting count.
        assert_eq!(u.wakeups, 100);
        assert!((u.wait_per_wakeup_us - 100.0).abs() < 1e-9);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_seen() {
        let a = CpuSnapshot::take();
        let spin_until = std::time::Instant::now() + std::time::Duration::from_millis(50);
        while std::time::Instant::now() < spin_until {
            std::hint::spin_loop();
        }
        let b = CpuSnapshot::take();
        let u = CpuUse::between(&a, &b, false).unwrap();
        assert!(u.cpus >= 1);
        assert!(u.generator_cores > 0.0, "{u:?}");
    }

    #[test]
    fn a_limit_under_one_percent_is_not_printed_as_zero() {
        assert_eq!(percent(0.9), "90");
        assert_eq!(percent(1.0), "100");
        assert_eq!(percent(0.05), "5");
        assert_eq!(percent(0.005), "0.5");
        assert_eq!(percent(0.000001), "0.0001");
        assert_eq!(percent(0.0), "0");
    }
}
