//! Route matching (being built).
