//! The weft proxy runtime (being built).
