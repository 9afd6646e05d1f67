//! Upstream clusters at run time: hosts, load balancing, circuit breakers, connection pools.

pub mod cluster;
pub mod connect;
pub mod health;
pub mod outlier;
pub mod pool;
pub mod stats;

pub use cluster::{ClusterRuntime, ClusterShared, HostRuntime, Permit};
