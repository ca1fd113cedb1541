//! Criterion benchmarks live in this crate's bench targets; the library is empty.
