//! What the simulated clients do, drawn from the scenario and its seed: send schedules and
//! the agenda that merges them,
//! message ids, group plans and schedules, file contents and schedules, connection churn, and the
//! measurement header in each message body. Pure: the same seed gives the same workload.

pub mod agenda;
pub mod body;
pub mod churn;
pub mod files;
pub mod groups;
pub mod message_ids;
pub mod schedule;
