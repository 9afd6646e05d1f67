//! Registry (model lands next).
