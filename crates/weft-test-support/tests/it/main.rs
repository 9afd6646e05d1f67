//! Tests of the test support itself: every server, scripting header, client and harness piece.

// Tests panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod grpc;
mod http;
mod load;
mod process;
mod tcp;
mod tls;
