//! Cross-resource analysis (filled in below).
