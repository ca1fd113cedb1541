//! How a run is measured: the latency recorder, the clients' counters, exactly-once
//! accounting, the group and file ledgers, the precise timer the schedule waits on, and the machine's side (CPU use, its
//! hiccups, UDP drops, the memory it has).

pub mod accounting;
pub mod clock;
pub mod counters;
pub mod cpu_use;
pub mod file_ledger;
pub mod group_ledger;
pub mod group_records;
pub mod hiccups;
pub mod memory;
pub mod metrics;
pub mod timer;
pub mod udp_drops;
pub mod window_sends;
