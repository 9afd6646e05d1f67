//! `WorkloadEntry` and `WorkloadGroup`: workloads outside Kubernetes (VMs, bare metal), after
//! Istio's `networking/v1alpha3/workload_entry.proto` and `workload_group.proto`.
//!
//! A [`WorkloadEntry`] is also the shape of a `ServiceEntry` endpoint, so the endpoint checks
//! shared by both live here ([`check_endpoint`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::service_entry::ServicePort;
use crate::common::Labels;
use crate::validate::rules::{check_dns1123_label, check_labels, check_port};
use crate::validate::{Checker, Validate};

/// Prefix of a Unix domain socket address (`unix:///var/run/app.sock`, `unix://@abstract`).
pub const UNIX_ADDRESS_PREFIX: &str = "unix://";

/// A workload outside Kubernetes, or one endpoint of a `ServiceEntry`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadEntry {
    /// IP address, fully-qualified host name (DNS resolution only) or `unix://` socket path,
    /// without a port. May be empty when `network` is set.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// Service port name → this endpoint's port. Takes precedence over the service port's
    /// `targetPort`. Not allowed for `unix://` addresses.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<String, u32>,
    /// Labels of the endpoint.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
    /// The L3 network the endpoint lives in; endpoints of other networks are reached through
    /// that network's gateway. Required if `address` is empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub network: String,
    /// Failure domain as `region/zone/subzone` (more levels may follow, separated by `/`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub locality: String,
    /// Load-balancing weight; unset or 0 means the default weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Service account of the workload's sidecar, in the configuration's namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account: String,
}

impl WorkloadEntry {
    /// The socket path (or `@abstract` name) when the address is a `unix://` address.
    pub fn unix_socket_path(&self) -> Option<&str> {
        self.address.strip_prefix(UNIX_ADDRESS_PREFIX)
    }

    /// The port on this endpoint that receives traffic for `port`: the endpoint's own port for
    /// the port's name if it has one, else the service port's `targetPort`, else its number.
    pub fn port_for(&self, port: &ServicePort) -> u32 {
        self.ports
            .get(&port.name)
            .copied()
            .unwrap_or_else(|| port.target_port_or_number())
    }
}

impl Validate for WorkloadEntry {
    fn validate(&self, cx: &mut Checker) {
        // Istio does not check a standalone entry's ports against any ServiceEntry: that needs
        // the other resource, and belongs to analysis.
        check_endpoint(cx, self, None, AddressKind::Any);
    }
}

/// A template for the `WorkloadEntry` resources of VMs that join the mesh on their own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadGroup {
    /// Labels and annotations given to every generated `WorkloadEntry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<WorkloadGroupMetadata>,
    /// The generated entries' spec. `address` and `labels` should not be set here: the address
    /// comes from the workload, labels from `metadata`. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<WorkloadEntry>,
    /// How the agent on the VM checks the workload's readiness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ReadinessProbe>,
}

/// `WorkloadGroup.ObjectMeta`: metadata copied onto generated `WorkloadEntry` resources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadGroupMetadata {
    /// Labels to attach.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
    /// Annotations to attach.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub annotations: Labels,
}

/// Readiness check run by the agent next to the workload, mirroring Kubernetes probes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawReadinessProbe", into = "RawReadinessProbe")]
pub struct ReadinessProbe {
    /// Seconds after the workload starts before the first probe.
    pub initial_delay_seconds: Option<i32>,
    /// Seconds after which a probe times out (default 1).
    pub timeout_seconds: Option<i32>,
    /// Seconds between probes (default 10).
    pub period_seconds: Option<i32>,
    /// Consecutive successes needed after a failure (default 1).
    pub success_threshold: Option<i32>,
    /// Consecutive failures needed after a success (default 3).
    pub failure_threshold: Option<i32>,
    /// How health is checked. Exactly one is required.
    pub method: Option<HealthCheckMethod>,
}

/// The `health_check_method` oneof of a [`ReadinessProbe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheckMethod {
    /// `httpGet`: an HTTP GET; a 2xx or 3xx status means healthy.
    HttpGet(HttpHealthCheckConfig),
    /// `tcpSocket`: healthy if a connection can be opened.
    TcpSocket(TcpHealthCheckConfig),
    /// `exec`: healthy if the command exits with status 0.
    Exec(ExecHealthCheckConfig),
    /// `grpc`: a gRPC health check call.
    Grpc(GrpcHealthCheckConfig),
}

/// An HTTP GET readiness check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpHealthCheckConfig {
    /// Path to request.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Port to connect to. Required.
    #[serde(default)]
    pub port: u32,
    /// Host to connect to; defaults to the workload's IP. Usually a `Host` header is meant.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// `HTTP` (default) or `HTTPS`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scheme: String,
    /// Headers sent with the request; repeated names are allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_headers: Vec<HttpHeader>,
}

/// A header of an HTTP readiness check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpHeader {
    /// Header name.
    #[serde(default)]
    pub name: String,
    /// Header value.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
}

/// A TCP connect readiness check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TcpHealthCheckConfig {
    /// Host to connect to; defaults to localhost.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// Port to connect to. Required.
    #[serde(default)]
    pub port: u32,
}

/// A command readiness check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExecHealthCheckConfig {
    /// Command and arguments. Required.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
}

/// A gRPC health-check readiness check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GrpcHealthCheckConfig {
    /// Port to call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Fully-qualified name of the service to check.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service: String,
}

impl Validate for WorkloadGroup {
    fn validate(&self, cx: &mut Checker) {
        if let Some(meta) = &self.metadata {
            cx.field("metadata", |cx| {
                cx.field("labels", |cx| check_labels(cx, &meta.labels));
            });
        }
        match &self.template {
            // Istio deliberately skips the WorkloadEntry checks here (address is filled in per
            // VM); the CRD schema still checks the port map, so weft does too.
            Some(t) => cx.field("template", |cx| check_template(cx, t)),
            None => cx.error_at(
                "template",
                "template is required (use `template: {}` to take every default)",
            ),
        }
        if let Some(probe) = &self.probe {
            cx.field("probe", |cx| check_probe(cx, probe));
        }
    }
}

/// What an endpoint address may be, which depends on the ServiceEntry's resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddressKind {
    /// A standalone WorkloadEntry: IP, host name or Unix socket (resolution is unknown).
    Any,
    /// `resolution: STATIC`: IP or Unix socket.
    IpOrUnix,
    /// `resolution: DNS` / `DNS_ROUND_ROBIN`: IP or host name.
    IpOrHost,
}

/// Istio's `validateWorkloadEntry` plus the CRD schema rules: address, ports, labels, service
/// account. `service_ports` is the ServiceEntry's port names when checking one of its endpoints.
pub(crate) fn check_endpoint(
    cx: &mut Checker,
    we: &WorkloadEntry,
    service_ports: Option<&BTreeSet<&str>>,
    kind: AddressKind,
) {
    let addr = we.address.as_str();
    cx.field("address", |cx| {
        if addr.is_empty() {
            if kind == AddressKind::IpOrHost {
                cx.error("address is required with DNS resolution: set an IP address or a host name");
            } else if we.network.is_empty() {
                cx.error("address is required unless network is set (the endpoint is then reached through that network's gateway)");
            } else {
                cx.warning(format!(
                    "address is unset; the endpoint is only reachable through the gateway of network {:?}",
                    we.network
                ));
            }
        } else if let Some(path) = we.unix_socket_path() {
            if kind == AddressKind::IpOrHost {
                cx.error(format!(
                    "unix socket address {addr:?} cannot be used with DNS resolution; use resolution STATIC"
                ));
            } else if let Some(problem) = unix_path_problem(path) {
                cx.error(format!("invalid unix socket address {addr:?}: {problem}"));
            }
        } else if addr.parse::<IpAddr>().is_err() {
            if kind == AddressKind::IpOrUnix {
                cx.error(format!(
                    "endpoint address {addr:?} is not an IP address; resolution STATIC needs IPs (use resolution DNS for host names)"
                ));
            } else if let Some(problem) = fqdn_problem(addr) {
                cx.error(format!(
                    "endpoint address {addr:?} is not a valid IP address or host name: {problem}"
                ));
            }
        }
    });

    let unix = we.unix_socket_path().is_some() && kind != AddressKind::IpOrHost;
    if unix && !we.ports.is_empty() {
        cx.error_at(
            "ports",
            format!("unix socket endpoint {addr:?} must not set ports; remove the port map"),
        );
    }
    cx.field("ports", |cx| check_port_map(cx, &we.ports, service_ports));
    if unix && service_ports.is_some_and(|p| p.len() != 1) {
        cx.error_at(
            "address",
            "a unix socket endpoint needs exactly one port declared in the ServiceEntry",
        );
    }
    cx.field("labels", |cx| check_labels(cx, &we.labels));
    check_service_account(cx, &we.service_account);
}

/// Why `host` is not a host name Istio's `ValidateFQDN` accepts, if it is not: at most 255
/// characters, DNS-1123 labels, an optional trailing dot, and a top-level label that is not all
/// digits (so an IP address mistyped as a host is caught).
pub(crate) fn fqdn_problem(host: &str) -> Option<String> {
    if host.is_empty() {
        return Some("empty host name".to_owned());
    }
    if host.len() > 255 {
        return Some("longer than 255 characters".to_owned());
    }
    let trimmed = host.strip_suffix('.').unwrap_or(host);
    let labels: Vec<&str> = trimmed.split('.').collect();
    if let Some(tld) = labels.last().filter(|l| is_all_digits(l)) {
        return Some(format!("top-level label {tld:?} cannot be all-numeric"));
    }
    labels
        .iter()
        .find(|l| !crate::validate::rules::is_dns1123_label(l))
        .map(|l| format!("label {l:?} is not a valid DNS-1123 label"))
}

fn is_all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Istio's `ValidateUnixAddress` on the part after `unix://`.
fn unix_path_problem(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        Some("the socket path is empty")
    } else if path.starts_with('@') {
        None
    } else if !path.starts_with('/') {
        Some(
            "expected an absolute path (unix:///path/to/socket) or an abstract socket (unix://@name)",
        )
    } else if path.ends_with('/') {
        Some("the path names a directory, not a socket")
    } else {
        None
    }
}

/// Port map entries: names are DNS labels (and declared service ports, when known), values
/// valid port numbers.
fn check_port_map(
    cx: &mut Checker,
    ports: &BTreeMap<String, u32>,
    service_ports: Option<&BTreeSet<&str>>,
) {
    for (name, port) in ports {
        cx.field(name, |cx| {
            check_dns1123_label(cx, "port name", name);
            if let Some(declared) = service_ports
                && !declared.contains(name.as_str())
            {
                cx.error(format!(
                    "endpoint port {name:?} is not defined by the service entry; use one of the names in spec.ports ({})",
                    declared.iter().copied().collect::<Vec<_>>().join(", ")
                ));
            }
            check_port(cx, *port);
        });
    }
}

/// Istio does not check the name, but Kubernetes service accounts are DNS-1123 subdomains; a
/// name that cannot exist cannot get an identity, so this is worth a warning.
fn check_service_account(cx: &mut Checker, sa: &str) {
    if !sa.is_empty() && !crate::meta::is_dns1123_subdomain(sa) {
        cx.warning_at(
            "serviceAccount",
            format!(
                "service account {sa:?} is not a valid Kubernetes name (lowercase letters, digits, '-' and '.'); the workload cannot get an identity for it"
            ),
        );
    }
}

fn check_template(cx: &mut Checker, t: &WorkloadEntry) {
    if !t.address.is_empty() {
        cx.warning_at(
            "address",
            "address is ignored in a template: each generated WorkloadEntry takes its VM's address",
        );
    }
    if !t.labels.is_empty() {
        cx.warning_at(
            "labels",
            "set labels in metadata.labels rather than template.labels",
        );
    }
    cx.field("labels", |cx| check_labels(cx, &t.labels));
    cx.field("ports", |cx| check_port_map(cx, &t.ports, None));
    check_service_account(cx, &t.service_account);
}

/// Istio's `validateReadinessProbe`.
fn check_probe(cx: &mut Checker, probe: &ReadinessProbe) {
    for (name, value) in [
        ("initialDelaySeconds", probe.initial_delay_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("periodSeconds", probe.period_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ] {
        if let Some(v) = value.filter(|v| *v < 0) {
            cx.error_at(name, format!("{name} is {v}; it must be non-negative"));
        }
    }
    match &probe.method {
        None => cx.error("one of httpGet, tcpSocket or exec is required"),
        Some(HealthCheckMethod::HttpGet(h)) => cx.field("httpGet", |cx| {
            cx.field("port", |cx| check_port(cx, h.port));
            if !matches!(h.scheme.as_str(), "" | "HTTP" | "HTTPS") {
                cx.error_at(
                    "scheme",
                    format!("scheme {:?} must be \"HTTP\" or \"HTTPS\"", h.scheme),
                );
            }
            cx.each("httpHeaders", &h.http_headers, |cx, header| {
                cx.field("name", |cx| check_probe_header_name(cx, &header.name));
            });
        }),
        Some(HealthCheckMethod::TcpSocket(t)) => {
            cx.field("tcpSocket", |cx| {
                cx.field("port", |cx| check_port(cx, t.port))
            });
        }
        Some(HealthCheckMethod::Exec(e)) => cx.field("exec", |cx| {
            if e.command.is_empty() {
                cx.error_at("command", "exec.command is required: the command to run");
            }
            cx.each("command", &e.command, |cx, arg| {
                if arg.is_empty() {
                    cx.error("command entries must not be empty");
                }
            });
        }),
        // Istio's webhook has no case for grpc and rejects it as an unknown method, so weft does
        // too: accepting it would let a config through that Istio refuses.
        Some(HealthCheckMethod::Grpc(_)) => cx.error_at(
            "grpc",
            "grpc readiness probes are not supported by Istio; use httpGet, tcpSocket or exec",
        ),
    }
}

/// Istio's `ValidateProbeHeaderName`: `^[-A-Za-z0-9]+$` (stricter than request headers).
fn check_probe_header_name(cx: &mut Checker, name: &str) {
    if name.is_empty() {
        cx.error("header name must not be empty");
    } else if !name.bytes().all(|b| b == b'-' || b.is_ascii_alphanumeric()) {
        cx.error(format!(
            "header name {name:?} is not valid: only letters, digits and '-' are allowed"
        ));
    }
}

/// The wire shape of [`ReadinessProbe`]: the oneof members sit next to the other fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawReadinessProbe {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    initial_delay_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    period_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    success_threshold: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failure_threshold: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http_get: Option<HttpHealthCheckConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tcp_socket: Option<TcpHealthCheckConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exec: Option<ExecHealthCheckConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    grpc: Option<GrpcHealthCheckConfig>,
}

impl TryFrom<RawReadinessProbe> for ReadinessProbe {
    type Error = String;

    fn try_from(raw: RawReadinessProbe) -> Result<Self, Self::Error> {
        let mut methods = [
            raw.http_get.map(HealthCheckMethod::HttpGet),
            raw.tcp_socket.map(HealthCheckMethod::TcpSocket),
            raw.exec.map(HealthCheckMethod::Exec),
            raw.grpc.map(HealthCheckMethod::Grpc),
        ]
        .into_iter()
        .flatten();
        let method = methods.next();
        if methods.next().is_some() {
            return Err("only one of httpGet, tcpSocket, exec or grpc may be set".to_owned());
        }
        Ok(Self {
            initial_delay_seconds: raw.initial_delay_seconds,
            timeout_seconds: raw.timeout_seconds,
            period_seconds: raw.period_seconds,
            success_threshold: raw.success_threshold,
            failure_threshold: raw.failure_threshold,
            method,
        })
    }
}

impl From<ReadinessProbe> for RawReadinessProbe {
    fn from(p: ReadinessProbe) -> Self {
        let mut raw = RawReadinessProbe {
            initial_delay_seconds: p.initial_delay_seconds,
            timeout_seconds: p.timeout_seconds,
            period_seconds: p.period_seconds,
            success_threshold: p.success_threshold,
            failure_threshold: p.failure_threshold,
            ..Self::default()
        };
        match p.method {
            Some(HealthCheckMethod::HttpGet(h)) => raw.http_get = Some(h),
            Some(HealthCheckMethod::TcpSocket(t)) => raw.tcp_socket = Some(t),
            Some(HealthCheckMethod::Exec(e)) => raw.exec = Some(e),
            Some(HealthCheckMethod::Grpc(g)) => raw.grpc = Some(g),
            None => {}
        }
        raw
    }
}

#[cfg(test)]
mod tests;
