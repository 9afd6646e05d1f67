//! The Aggregated Discovery Service (in progress).
