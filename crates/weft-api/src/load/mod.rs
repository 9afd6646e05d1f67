//! Loading (filled in below).
