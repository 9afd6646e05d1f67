//! Upstream clusters at run time: hosts, load balancing, circuit breakers, connection pools.

pub mod cluster;
pub mod connect;
pub mod health;
pub mod outlier;
pub mod pool;
pub mod stats;

pub use cluster::{ClusterRuntime, ClusterShared, HostRuntime, Permit};

/// A static HTTP/1.1 cluster named `c` with no endpoints, default limits and no health
/// checking, for unit tests to adjust.
#[cfg(test)]
pub(crate) fn test_cluster() -> weft_proxy_config::model::Cluster {
    use std::time::Duration;
    use weft_proxy_config::model::{Cluster, Discovery, DnsLookupFamily, UpstreamProtocol};
    Cluster {
        name: "c".into(),
        discovery: Discovery::Static,
        connect_timeout: Duration::from_secs(1),
        lb: weft_proxy_lb::LbConfig::default()
            .validate()
            .unwrap_or_else(|e| unreachable!("default LB config: {e}")),
        localities: vec![],
        circuit_breakers: Default::default(),
        outlier_detection: None,
        health_checks: vec![],
        tls: None,
        protocol: UpstreamProtocol::Http1,
        idle_timeout: Duration::from_secs(4),
        max_requests_per_connection: None,
        dns_refresh_rate: Duration::from_secs(5),
        dns_lookup_family: DnsLookupFamily::V4Only,
        original_dst_use_http_header: false,
        per_connection_buffer_limit_bytes: 1 << 20,
    }
}
