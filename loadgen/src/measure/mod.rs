//! How a run is measured: the latency recorder, the clients' counters, exactly-once
//! accounting, the precise timer the schedule waits on, and the machine's side (CPU use, UDP
//! drops).

pub mod accounting;
pub mod counters;
pub mod cpu_use;
pub mod metrics;
pub mod timer;
pub mod udp_drops;
