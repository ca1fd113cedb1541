//! The run report: `report.json`'s model, built from what a run measured, with its verdict
//! (SLOs, validity), and every view of it: the end-of-run table, summary.md, report.html,
//! intervals.hlog, the transport comparison, merged shards, regression gating and repeat
//! spreads. `report` reads measurements and reports; it never reaches into a live run.

pub mod build;
pub mod capacity;
pub(crate) mod charts;
pub mod comparison;
pub mod figures;
pub mod heading;
pub mod histogram;
pub mod hlog;
pub mod html;
pub mod load_settings;
pub mod merge;
pub mod model;
pub mod read;
pub mod regression;
pub mod repeat;
pub mod summary;
pub mod table;
pub mod write;

pub use build::{
    evaluate, slo_names, slo_never_decides, slo_target_known, target_value, Measurement,
};
pub use histogram::{decode_histogram, summarize};
pub use model::*;
