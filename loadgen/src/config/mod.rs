//! What a run is asked to do: the scenario (TOML and command-line overrides) and the SLOs it is
//! judged by. Depends on nothing else in the crate.

pub mod duration;
pub mod held_path;
pub mod network;
pub mod scenario;
pub mod shard;
pub mod slo;
