//! imbench loadgen.
