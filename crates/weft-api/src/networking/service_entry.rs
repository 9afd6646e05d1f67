//! `ServiceEntry`: services added to the mesh's registry by hand (external APIs, VMs), after
//! Istio's `networking/v1alpha3/service_entry.proto`.
//!
//! Also home of [`Protocol`], Istio's port protocols, which the registry needs to classify the
//! ports of every service, not only ServiceEntries.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::workload_entry::{AddressKind, WorkloadEntry, check_endpoint, fqdn_problem};

use crate::validate::rules::{
    check_dns1123_label, check_ip_or_cidr, check_labels, check_port, check_wildcard_host,
    is_dns1123_label,
};
use crate::validate::{Checker, Validate};

/// Adds entries to the service registry: hosts, their ports, and where their endpoints are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceEntry {
    /// Host names of the service, possibly with a wildcard prefix. Required.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Virtual IPs or CIDR blocks of the service. Traffic to them is matched to this service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Ports of the service. Unix socket endpoints need exactly one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// Whether the service is outside the mesh (default) or part of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// How the proxy finds the endpoints' IP addresses (default `NONE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// Endpoints of the service. Only one of `endpoints` and `workloadSelector` may be set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<WorkloadEntry>,
    /// Selects pods and `WorkloadEntry` resources of this namespace as the endpoints
    /// (`MESH_INTERNAL` services only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
    /// Namespaces the service is visible to: `.` (own), `*` (all, the default), `~` (none) or
    /// namespace names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    /// Subject alternative names the server certificate must carry one of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
}

impl ServiceEntry {
    /// The location, defaulted.
    pub fn location(&self) -> Location {
        self.location.unwrap_or_default()
    }

    /// The resolution, defaulted.
    pub fn resolution(&self) -> Resolution {
        self.resolution.unwrap_or_default()
    }
}

/// A port of a service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServicePort {
    /// Port number. Required.
    #[serde(default)]
    pub number: u32,
    /// Protocol: `HTTP`, `HTTPS`, `GRPC`, `HTTP2`, `MONGO`, `TCP`, `TLS`... Empty means
    /// detected from the traffic.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    /// Name of the port, a DNS label. Required.
    #[serde(default)]
    pub name: String,
    /// Port on the endpoints; defaults to `number`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

impl ServicePort {
    /// The declared protocol, parsed as Istio does (case-insensitive). An empty or unknown
    /// protocol is [`Protocol::Unsupported`], which Istio treats as "detect from traffic".
    pub fn protocol(&self) -> Protocol {
        Protocol::parse(&self.protocol)
    }

    /// The port endpoints receive traffic on when they do not name their own: `targetPort` if
    /// set (and non-zero), else `number`.
    pub fn target_port_or_number(&self) -> u32 {
        self.target_port.filter(|p| *p != 0).unwrap_or(self.number)
    }
}

/// Whether a service is part of the mesh.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Location {
    /// Outside the mesh, typically an external API: no mTLS, no Istio policy at the server.
    #[default]
    #[serde(rename = "MESH_EXTERNAL")]
    MeshExternal,
    /// Part of the mesh, such as VMs added to it.
    #[serde(rename = "MESH_INTERNAL")]
    MeshInternal,
}

/// How the proxy resolves the endpoints of a ServiceEntry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Resolution {
    /// Connections are already resolved: forward to the original destination IP.
    #[default]
    #[serde(rename = "NONE")]
    None,
    /// Use the IPs (or Unix sockets) listed in `endpoints`.
    #[serde(rename = "STATIC")]
    Static,
    /// Resolve the endpoints' addresses, or the hosts when there are no endpoints, with DNS and
    /// balance over all answers.
    #[serde(rename = "DNS")]
    Dns,
    /// Like `DNS`, but connect to the first answer only; suits large web services.
    #[serde(rename = "DNS_ROUND_ROBIN")]
    DnsRoundRobin,
    /// Resolve the name in the Host header or SNI at request time; wildcard hosts only.
    #[serde(rename = "DYNAMIC_DNS")]
    DynamicDns,
}

impl Resolution {
    /// The name as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Static => "STATIC",
            Self::Dns => "DNS",
            Self::DnsRoundRobin => "DNS_ROUND_ROBIN",
            Self::DynamicDns => "DYNAMIC_DNS",
        }
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The networking API's workload selector (`labels`), shared with Sidecar.
pub use crate::common::LabelSelector as WorkloadSelector;

/// A port protocol as Istio understands it (`pkg/config/protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP/1.1.
    Http,
    /// HTTPS, passed through or terminated like TLS.
    Https,
    /// gRPC (HTTP/2).
    Grpc,
    /// gRPC-Web.
    GrpcWeb,
    /// HTTP/2 without TLS.
    Http2,
    /// A generic outbound HTTP proxy port (Sidecar egress listeners).
    HttpProxy,
    /// MongoDB.
    Mongo,
    /// MySQL.
    Mysql,
    /// Redis.
    Redis,
    /// Opaque TCP.
    Tcp,
    /// TLS routed by SNI, not terminated.
    Tls,
    /// UDP (not proxied).
    Udp,
    /// Unknown or unset: Istio detects HTTP versus TCP from the traffic.
    Unsupported,
}

/// Ports Istio treats as TCP when their name carries no protocol, because sniffing would break
/// the server-first protocols on them (SMTP, DNS, MySQL, MongoDB).
const WELL_KNOWN_TCP_PORTS: [u32; 4] = [25, 53, 3306, 27017];

impl Protocol {
    /// Istio's `protocol.Parse`: a protocol name, ignoring case. Anything unknown, including
    /// the empty string, is [`Protocol::Unsupported`].
    pub fn parse(s: &str) -> Protocol {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Self::Tcp,
            "udp" => Self::Udp,
            "grpc" => Self::Grpc,
            "grpc-web" => Self::GrpcWeb,
            "http" => Self::Http,
            "http_proxy" => Self::HttpProxy,
            "http2" => Self::Http2,
            "https" => Self::Https,
            "tls" => Self::Tls,
            "mongo" => Self::Mongo,
            "redis" => Self::Redis,
            "mysql" => Self::Mysql,
            _ => Self::Unsupported,
        }
    }

    /// Istio's protocol selection by port name (`kube.ConvertProtocol` without `appProtocol`):
    /// the name's prefix before the first `-` (`http-api` → HTTP, `grpc-web-x` → gRPC-Web).
    /// Unknown prefixes are [`Protocol::Unsupported`] (sniffed), except on well-known
    /// server-first ports (25, 53, 3306, 27017), which are TCP.
    pub fn from_port_name(name: &str, port: u32) -> Protocol {
        // "grpc-web" contains the separator, so it is checked before splitting.
        let is_grpc_web = name
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("grpc-web"));
        if is_grpc_web {
            return Self::GrpcWeb;
        }
        let prefix = name.split('-').next().unwrap_or(name);
        match Self::parse(prefix) {
            Self::Unsupported if WELL_KNOWN_TCP_PORTS.contains(&port) => Self::Tcp,
            p => p,
        }
    }

    /// Istio's spelling of the protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "HTTP",
            Self::Https => "HTTPS",
            Self::Grpc => "GRPC",
            Self::GrpcWeb => "GRPC-Web",
            Self::Http2 => "HTTP2",
            Self::HttpProxy => "HTTP_PROXY",
            Self::Mongo => "Mongo",
            Self::Mysql => "MySQL",
            Self::Redis => "Redis",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
            Self::Udp => "UDP",
            Self::Unsupported => "UnsupportedProtocol",
        }
    }

    /// Carried over HTTP (any version).
    pub fn is_http(self) -> bool {
        matches!(
            self,
            Self::Http | Self::Http2 | Self::HttpProxy | Self::Grpc | Self::GrpcWeb
        )
    }

    /// Carried over HTTP/2.
    pub fn is_http2(self) -> bool {
        matches!(self, Self::Http2 | Self::Grpc | Self::GrpcWeb)
    }

    /// gRPC or gRPC-Web.
    pub fn is_grpc(self) -> bool {
        matches!(self, Self::Grpc | Self::GrpcWeb)
    }

    /// Proxied as opaque TCP (Istio's `IsTCP`: TCP, HTTPS, TLS and the database protocols).
    pub fn is_tcp(self) -> bool {
        matches!(
            self,
            Self::Tcp | Self::Https | Self::Tls | Self::Mongo | Self::Redis | Self::Mysql
        )
    }

    /// On top of TLS (HTTPS or TLS).
    pub fn is_tls(self) -> bool {
        matches!(self, Self::Https | Self::Tls)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Istio's `ValidateServiceEntry`, plus the CRD schema rules Kubernetes enforces before it.
impl Validate for ServiceEntry {
    fn validate(&self, cx: &mut Checker) {
        let resolution = self.resolution();
        self.check_selector(cx);
        self.check_hosts(cx, resolution);
        self.check_addresses(cx, resolution);
        let port_names = self.check_ports(cx);
        self.check_resolution(cx, resolution, &port_names);
        self.check_multi_host_ports(cx, resolution);
        cx.field("exportTo", |cx| check_export_to(cx, &self.export_to));
    }
}

impl ServiceEntry {
    fn check_selector(&self, cx: &mut Checker) {
        let Some(selector) = &self.workload_selector else {
            return;
        };
        cx.field("workloadSelector", |cx| {
            if !self.endpoints.is_empty() {
                cx.error("only one of workloadSelector or endpoints may be set: a ServiceEntry either lists its endpoints or selects workloads");
            }
            if selector.labels.is_empty() {
                cx.warning("workload selector has no labels, so it selects every workload in the namespace");
            }
            cx.field("labels", |cx| {
                check_labels(cx, &selector.labels);
                for (k, v) in &selector.labels {
                    if k.contains('*') || v.contains('*') {
                        cx.error(format!(
                            "wildcards are not supported in workload selectors: {k}={v}"
                        ));
                    }
                }
            });
        });
    }

    fn check_hosts(&self, cx: &mut Checker, resolution: Resolution) {
        if self.hosts.is_empty() {
            cx.error_at(
                "hosts",
                "at least one host is required, such as api.example.com",
            );
        }
        cx.each("hosts", &self.hosts, |cx, host| {
            if host == "*" {
                cx.error("a ServiceEntry host cannot be \"*\"; use a wildcard domain such as \"*.example.com\"");
                return;
            }
            if !check_wildcard_host(cx, host) {
                return;
            }
            let tld = host.strip_suffix('.').unwrap_or(host).rsplit('.').next();
            if tld.is_some_and(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit())) {
                cx.error(format!(
                    "host {host:?} has an all-numeric top-level label; hosts are names (put IP addresses in addresses)"
                ));
                return;
            }
            // Istio accepts `*foo.example.com` but only means full-label wildcards.
            if resolution != Resolution::DynamicDns && host.contains('*') && !host.starts_with("*.")
            {
                cx.warning(format!(
                    "partial wildcard {host:?} is not supported; only a whole first label (\"*.example.com\") is"
                ));
            }
        });
    }

    fn check_addresses(&self, cx: &mut Checker, resolution: Resolution) {
        cx.each("addresses", &self.addresses, |cx, address| {
            if check_ip_or_cidr(cx, address)
                && address.contains('/')
                && !matches!(resolution, Resolution::None | Resolution::Static)
            {
                cx.error(format!(
                    "CIDR address {address:?} is only allowed with resolution NONE or STATIC, not {resolution}"
                ));
            }
        });
        // Without addresses a TCP port can only be matched by port number, which no other service
        // may then share. Istio's IP auto-allocation covers every resolution except NONE.
        if self.addresses.is_empty() && resolution == Resolution::None {
            let tcp: Vec<&str> = self
                .ports
                .iter()
                .filter(|p| p.protocol.is_empty() || p.protocol == "TCP")
                .map(|p| p.name.as_str())
                .collect();
            if !tcp.is_empty() {
                cx.warning_at(
                    "addresses",
                    format!(
                        "addresses are required for ports serving TCP (or unset) protocol with resolution NONE (ports {}); without them every IP on those ports matches this service",
                        tcp.join(", ")
                    ),
                );
            }
        }
    }

    /// Checks every port and returns the declared port names.
    fn check_ports(&self, cx: &mut Checker) -> BTreeSet<&str> {
        let mut names = BTreeSet::new();
        let mut numbers = BTreeSet::new();
        // Not `cx.each`: the names borrowed from `self` outlive the per-item closure.
        for (i, port) in self.ports.iter().enumerate() {
            cx.field("ports", |cx| cx.index(i, |cx| {
            cx.field("name", |cx| {
                if check_dns1123_label(cx, "port name", &port.name)
                    && !names.insert(port.name.as_str())
                {
                    cx.error(format!(
                        "port name {:?} is already defined; port names must be unique",
                        port.name
                    ));
                }
            });
            cx.field("number", |cx| {
                if check_port(cx, port.number) && !numbers.insert(port.number) {
                    cx.error(format!(
                        "port {} is already defined; port numbers must be unique",
                        port.number
                    ));
                }
            });
            if let Some(target) = port.target_port {
                cx.field("targetPort", |cx| check_port(cx, target));
            }
            if !port.protocol.is_empty() && port.protocol() == Protocol::Unsupported {
                cx.error_at(
                    "protocol",
                    format!(
                        "unsupported protocol {:?}; expected one of HTTP, HTTPS, GRPC, GRPC-Web, HTTP2, MONGO, MYSQL, REDIS, TCP, TLS, UDP (or leave it empty to detect)",
                        port.protocol
                    ),
                );
            }
            }));
        }
        names
    }

    fn check_resolution(&self, cx: &mut Checker, resolution: Resolution, ports: &BTreeSet<&str>) {
        match resolution {
            Resolution::None => {
                if !self.endpoints.is_empty() {
                    cx.error_at("endpoints", "endpoints cannot be set with resolution NONE; use STATIC for IP endpoints or DNS for host names");
                }
                if self.workload_selector.is_some() {
                    cx.warning_at(
                        "workloadSelector",
                        "workloadSelector should not be set with resolution NONE; use STATIC",
                    );
                }
            }
            Resolution::Static => {
                cx.each("endpoints", &self.endpoints, |cx, ep| {
                    check_endpoint(cx, ep, Some(ports), AddressKind::IpOrUnix);
                });
            }
            Resolution::Dns | Resolution::DnsRoundRobin => {
                if self.endpoints.is_empty() {
                    cx.each("hosts", &self.hosts, |cx, host| {
                        if host != "*"
                            && let Some(problem) = fqdn_problem(host)
                        {
                            cx.error(format!(
                                "host {host:?} cannot be resolved with {resolution} when no endpoints are given ({problem}); list endpoints, or use resolution NONE or DYNAMIC_DNS for wildcard hosts"
                            ));
                        }
                    });
                }
                if resolution == Resolution::DnsRoundRobin && self.endpoints.len() > 1 {
                    cx.error_at(
                        "endpoints",
                        "resolution DNS_ROUND_ROBIN allows at most one endpoint; use DNS for several",
                    );
                }
                cx.each("endpoints", &self.endpoints, |cx, ep| {
                    check_endpoint(cx, ep, Some(ports), AddressKind::IpOrHost);
                });
                let tcp_port = self.ports.iter().any(|p| p.protocol().is_tcp());
                if !self.addresses.is_empty() && tcp_port && self.hosts.len() > 1 {
                    cx.warning_at("hosts", "a service entry with addresses and a TCP port should have only one host: TCP traffic to the address cannot tell the hosts apart");
                }
            }
            Resolution::DynamicDns => self.check_dynamic_dns(cx),
        }
        let total: u64 = self
            .endpoints
            .iter()
            .map(|ep| u64::from(ep.weight.unwrap_or(0).max(1)))
            .sum();
        if total > u64::from(u32::MAX) {
            cx.warning_at(
                "endpoints",
                format!("endpoint weights add up to {total}, more than 4294967295; Envoy rejects such a cluster"),
            );
        }
    }

    fn check_dynamic_dns(&self, cx: &mut Checker) {
        cx.each("hosts", &self.hosts, |cx, host| {
            if !host.starts_with('*') {
                cx.error(format!(
                    "host {host:?} must be a wildcard (such as \"*.example.com\") with resolution DYNAMIC_DNS"
                ));
            }
        });
        if !self.addresses.is_empty() {
            cx.error_at("addresses", "addresses cannot be set with resolution DYNAMIC_DNS: routes are built from the hosts only");
        }
        if !self.endpoints.is_empty() {
            cx.error_at("endpoints", "endpoints cannot be set with resolution DYNAMIC_DNS: the destination is resolved from the Host header or SNI");
        }
        cx.each("ports", &self.ports, |cx, port| {
            if !matches!(
                port.protocol(),
                Protocol::Http | Protocol::Tls | Protocol::Grpc | Protocol::Http2
            ) {
                cx.error_at(
                    "protocol",
                    format!(
                        "protocol {:?} cannot be used with resolution DYNAMIC_DNS; use HTTP, TLS, GRPC or HTTP2 so the host can be read from the request",
                        port.protocol
                    ),
                );
            }
        });
    }

    /// Several hosts can only be told apart by Host header or SNI, so every port must carry
    /// HTTP or TLS (unless resolution is NONE, where hosts are not used to route).
    fn check_multi_host_ports(&self, cx: &mut Checker, resolution: Resolution) {
        if resolution == Resolution::None || self.hosts.len() < 2 {
            return;
        }
        cx.each("ports", &self.ports, |cx, port| {
            let p = port.protocol();
            if !p.is_http() && !p.is_tls() {
                cx.error_at(
                    "protocol",
                    format!(
                        "port {:?} ({}) is neither HTTP nor TLS, so traffic for the {} hosts cannot be told apart; use one host per ServiceEntry or an HTTP/TLS protocol",
                        port.name,
                        if port.protocol.is_empty() { "no protocol" } else { port.protocol.as_str() },
                        self.hosts.len()
                    ),
                );
            }
        });
    }
}

/// Istio's `validateExportTo` for ServiceEntries (`~` allowed, alone). The resource's own
/// namespace is not known here, so `.` next to that namespace's name is left to analysis.
fn check_export_to(cx: &mut Checker, export_to: &[String]) {
    let mut seen = BTreeSet::new();
    for (i, e) in export_to.iter().enumerate() {
        cx.index(i, |cx| {
            if !seen.insert(e.as_str()) {
                cx.error(format!("duplicate exportTo entry {e:?}"));
            } else if !matches!(e.as_str(), "." | "*" | "~") && !is_dns1123_label(e) {
                cx.error(format!(
                    "invalid exportTo entry {e:?}: expected \".\", \"*\", \"~\" or a namespace name"
                ));
            }
        });
    }
    if export_to.len() > 1 {
        if seen.contains("*") {
            cx.error("exportTo cannot combine \"*\" (all namespaces) with other entries");
        }
        if seen.contains("~") {
            cx.error("exportTo cannot combine \"~\" (no namespace) with other entries");
        }
    }
}

#[cfg(test)]
mod tests;
