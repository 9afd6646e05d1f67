//! `Sidecar`: the inbound and outbound listeners of workloads' proxies, after Istio's
//! `networking/v1alpha3/sidecar.proto`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::destination_rule::{
    ConnectionPoolSettings, each_item, is_default, is_istio_fqdn, validate_connection_pool,
};
use super::gateway::{
    Port, Protocol, ServerTlsMode, ServerTlsSettings, UNIX_PREFIX, check_bind_ip,
    check_listener_host, check_unix_address, validate_server_tls,
};
use crate::common::PortSelector;
use crate::validate::rules::{check_dns1123_label, check_labels, check_port};
use crate::validate::{Checker, Validate};

/// Describes the proxy of the workloads it selects: which inbound ports it serves and which
/// services it can reach.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Sidecar {
    /// Workloads this Sidecar applies to; every workload in the namespace when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
    /// Inbound listeners.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<IstioIngressListener>,
    /// Outbound listeners and the services they can reach.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<IstioEgressListener>,
    /// Connection pool for inbound connections, unless a listener sets its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_connection_pool: Option<ConnectionPoolSettings>,
    /// What to do with traffic to unknown destinations; overrides the mesh setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
}

/// The networking API's workload selector (`labels`), shared with ServiceEntry.
pub use crate::common::LabelSelector as WorkloadSelector;

/// The port of a Sidecar listener (`SidecarPort`); same fields as the Gateway [`Port`].
pub type SidecarPort = Port;

/// An inbound listener of the sidecar.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IstioIngressListener {
    /// Port the listener receives traffic on. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<SidecarPort>,
    /// IP address to bind to; the instance IP when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bind: String,
    /// How traffic reaches the listener.
    #[serde(default, skip_serializing_if = "is_default")]
    pub capture_mode: CaptureMode,
    /// Where traffic is forwarded: `127.0.0.1:PORT`, `0.0.0.0:PORT`, `[::1]:PORT` or
    /// `unix:///path`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default_endpoint: String,
    /// TLS termination for this port (HTTPS and TLS protocols only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsSettings>,
    /// Connection pool for this port; overrides `inboundConnectionPool`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
}

/// An outbound listener of the sidecar.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IstioEgressListener {
    /// Port of the listener; unset for the catch-all listener, which must be last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<SidecarPort>,
    /// IP address or `unix://` socket to bind to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bind: String,
    /// How traffic reaches the listener.
    #[serde(default, skip_serializing_if = "is_default")]
    pub capture_mode: CaptureMode,
    /// Reachable services as `namespace/dnsName` (`./*`, `istio-system/*`, `*/example.com`).
    /// Required.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

/// How traffic is captured into a listener bound to an IP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaptureMode {
    /// The environment's default.
    #[default]
    Default,
    /// iptables redirection.
    Iptables,
    /// No capture: the application talks to the listener directly.
    None,
}

/// Handling of outbound traffic to destinations unknown to the mesh.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutboundTrafficPolicy {
    /// `REGISTRY_ONLY` or `ALLOW_ANY`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub mode: OutboundTrafficMode,
    /// Proxy that unknown traffic is sent to (`ALLOW_ANY` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_proxy: Option<EgressProxy>,
}

/// Outbound traffic policy mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundTrafficMode {
    /// Only services in the registry are reachable.
    #[default]
    RegistryOnly,
    /// Unknown destinations are passed through (or to `egressProxy`).
    AllowAny,
}

/// The `Destination` of an egress proxy: a service, optional subset and port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EgressProxy {
    /// Service name from the registry. Required.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// Subset of the service.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subset: String,
    /// Port on the service. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}

impl Validate for Sidecar {
    fn validate(&self, cx: &mut Checker) {
        if let Some(selector) = &self.workload_selector {
            cx.field("workloadSelector", |cx| validate_selector(cx, selector));
        }
        if self.ingress.is_empty()
            && self.egress.is_empty()
            && self.outbound_traffic_policy.is_none()
            && self.inbound_connection_pool.is_none()
        {
            cx.error(
                "Sidecar is empty: set at least one of ingress, egress, outboundTrafficPolicy or \
                 inboundConnectionPool",
            );
            return;
        }
        let mut ports = BTreeSet::new();
        cx.each("ingress", &self.ingress, |cx, listener| {
            validate_ingress(cx, listener, &mut ports);
        });
        if let Some(pool) = &self.inbound_connection_pool {
            cx.field("inboundConnectionPool", |cx| {
                validate_connection_pool(cx, pool)
            });
        }
        validate_egress(cx, &self.egress);
        if let Some(policy) = &self.outbound_traffic_policy {
            cx.field("outboundTrafficPolicy", |cx| {
                validate_outbound_policy(cx, policy)
            });
        }
    }
}

fn validate_selector(cx: &mut Checker, selector: &WorkloadSelector) {
    if selector.labels.is_empty() {
        cx.warning(
            "workload selector has no labels, so the Sidecar applies to every workload in the namespace",
        );
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
}

fn validate_ingress(cx: &mut Checker, listener: &IstioIngressListener, ports: &mut BTreeSet<u32>) {
    let Some(port) = &listener.port else {
        cx.error_at(
            "port",
            "port is required for ingress listeners: the port traffic arrives on",
        );
        return;
    };
    cx.field("port", |cx| {
        check_sidecar_port(cx, port);
        cx.field("number", |cx| {
            if check_port(cx, port.number) && !ports.insert(port.number) {
                cx.error(format!(
                    "port {} is used by another ingress listener; ports must be unique",
                    port.number
                ));
            }
        });
    });
    cx.field("bind", |cx| {
        if listener.bind.starts_with(UNIX_PREFIX) {
            cx.error("ingress listeners cannot bind to a unix domain socket; use an IP address");
        } else {
            check_bind_ip(cx, &listener.bind);
        }
    });
    if !listener.default_endpoint.is_empty() {
        cx.field("defaultEndpoint", |cx| {
            check_default_endpoint(cx, &listener.default_endpoint)
        });
    }
    let protocol = Protocol::parse(&port.protocol);
    if let Some(tls) = &listener.tls {
        cx.field("tls", |cx| {
            for (name, set) in [
                ("subjectAltNames", !tls.subject_alt_names.is_empty()),
                ("httpsRedirect", tls.https_redirect),
                ("credentialName", !tls.credential_name.is_empty()),
                ("credentialNames", !tls.credential_names.is_empty()),
                ("tlsCertificates", !tls.tls_certificates.is_empty()),
            ] {
                if set {
                    cx.error_at(
                        name,
                        format!("{name} is not supported in Sidecar ingress tls"),
                    );
                }
            }
            if matches!(
                tls.mode,
                ServerTlsMode::IstioMutual | ServerTlsMode::AutoPassthrough
            ) {
                cx.error_at(
                    "mode",
                    "Sidecar ingress tls mode must be SIMPLE, MUTUAL, OPTIONAL_MUTUAL or PASSTHROUGH",
                );
            }
            if !protocol.is_some_and(Protocol::is_tls) {
                cx.error(format!(
                    "tls settings need port protocol HTTPS or TLS, not {:?}",
                    port.protocol
                ));
            }
            validate_server_tls(cx, tls);
        });
    }
    if let Some(pool) = &listener.connection_pool {
        cx.field("connectionPool", |cx| {
            validate_connection_pool(cx, pool);
            if pool.http.is_some() && !protocol.is_some_and(Protocol::is_http) {
                cx.warning_at(
                    "http",
                    format!(
                        "port {} has protocol {:?}, not HTTP, so only the tcp settings apply",
                        port.number, port.protocol
                    ),
                );
            }
        });
    }
}

/// Name, protocol and target port checks shared by ingress and egress ports.
fn check_sidecar_port(cx: &mut Checker, port: &SidecarPort) {
    if !port.name.is_empty() {
        cx.field("name", |cx| {
            check_dns1123_label(cx, "port name", &port.name)
        });
    }
    cx.field("protocol", |cx| {
        Protocol::check_optional(cx, &port.protocol)
    });
    if port.target_port > 0 {
        cx.error_at(
            "targetPort",
            "targetPort has no effect on Sidecars; remove it",
        );
    }
}

/// Istio accepts `127.0.0.1:PORT`, `0.0.0.0:PORT`, `[::1]:PORT`, `[::]:PORT`, `:PORT` and
/// `unix://` sockets.
fn check_default_endpoint(cx: &mut Checker, endpoint: &str) {
    if let Some(path) = endpoint.strip_prefix(UNIX_PREFIX) {
        check_unix_address(cx, path);
        return;
    }
    let form = "defaultEndpoint must be 127.0.0.1:PORT, 0.0.0.0:PORT, [::1]:PORT, [::]:PORT or \
                unix:///path/to/socket";
    let Some((host, port)) = split_host_port(endpoint) else {
        cx.error(format!("{endpoint:?} is not host:port; {form}"));
        return;
    };
    if !matches!(host, "" | "127.0.0.1" | "0.0.0.0" | "::1" | "::") {
        cx.error(format!("host {host:?} is not allowed; {form}"));
    }
    match port.parse::<u32>() {
        Ok(n) => {
            check_port(cx, n);
        }
        Err(_) => cx.error(format!("port {port:?} is not a number; {form}")),
    }
}

/// Go's `net.SplitHostPort`, for the forms a default endpoint can take.
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return Some((host, after.strip_prefix(':')?));
    }
    let (host, port) = s.rsplit_once(':')?;
    (!host.contains(':')).then_some((host, port))
}

fn validate_egress(cx: &mut Checker, egress: &[IstioEgressListener]) {
    let mut catch_all_seen = false;
    let mut ports = BTreeSet::new();
    let mut sockets = BTreeSet::new();
    let last = egress.len().saturating_sub(1);
    let indexed: Vec<(usize, &IstioEgressListener)> = egress.iter().enumerate().collect();
    each_item(cx, "egress", &indexed, |cx, &(index, listener)| {
        match &listener.port {
            None => {
                if catch_all_seen {
                    cx.error("only one egress listener may omit port (the catch-all listener)");
                } else if index != last {
                    cx.error(
                        "the egress listener without a port (the catch-all) must be the last listener",
                    );
                }
                catch_all_seen = true;
                if !listener.bind.is_empty() {
                    cx.warning_at(
                        "bind",
                        "bind has no effect on an egress listener without a port; set port too",
                    );
                }
            }
            Some(port) => {
                cx.field("port", |cx| check_sidecar_port(cx, port));
                if port.number == 0 {
                    // Port 0 means a Unix domain socket listener.
                    cx.field("bind", |cx| match listener.bind.strip_prefix(UNIX_PREFIX) {
                        None => cx.error(
                            "a listener with port 0 must bind to a unix domain socket \
                             (unix:///path/to/socket)",
                        ),
                        Some(path) => {
                            if check_unix_address(cx, path)
                                && !sockets.insert(listener.bind.as_str())
                            {
                                cx.error(format!(
                                    "unix domain socket {:?} is used by another egress listener",
                                    listener.bind
                                ));
                            }
                        }
                    });
                    if !matches!(
                        listener.capture_mode,
                        CaptureMode::Default | CaptureMode::None
                    ) {
                        cx.error_at(
                            "captureMode",
                            "captureMode must be DEFAULT or NONE for unix domain socket listeners",
                        );
                    }
                } else {
                    cx.field("port", |cx| {
                        cx.field("number", |cx| {
                            if check_port(cx, port.number) && !ports.insert(port.number) {
                                cx.error(format!(
                                    "port {} is used by another egress listener; ports on \
                                     IP-bound listeners must be unique",
                                    port.number
                                ));
                            }
                        })
                    });
                    cx.field("bind", |cx| check_bind_ip(cx, &listener.bind));
                }
            }
        }
        check_egress_hosts(cx, &listener.hosts);
    });
}

fn check_egress_hosts(cx: &mut Checker, hosts: &[String]) {
    if hosts.is_empty() {
        cx.error_at(
            "hosts",
            "an egress listener needs at least one host, such as \"./*\" or \"istio-system/*\"",
        );
        return;
    }
    let mut by_namespace: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    each_item(cx, "hosts", hosts, |cx, value| {
        if let Some((ns, host)) = value.split_once('/').filter(|(ns, _)| !ns.starts_with('~')) {
            let services = by_namespace.entry(ns).or_default();
            let duplicate = if host == "*" {
                !services.is_empty()
            } else {
                services.contains(host) || services.contains("*")
            };
            if duplicate {
                cx.warning(format!(
                    "host {value:?} is already covered by another host of this listener"
                ));
            }
            services.insert(host);
        }
        check_listener_host(cx, value, false);
    });
    let everything = by_namespace.get("*").is_some_and(|s| s.contains("*"));
    if everything && by_namespace.len() != 1 {
        cx.warning_at(
            "hosts",
            "\"*/*\" already selects every host; the other entries are redundant",
        );
    }
}

fn validate_outbound_policy(cx: &mut Checker, policy: &OutboundTrafficPolicy) {
    let Some(proxy) = &policy.egress_proxy else {
        return;
    };
    cx.field("egressProxy", |cx| {
        if policy.mode != OutboundTrafficMode::AllowAny {
            cx.error("egressProxy can only be set with mode: ALLOW_ANY");
            return;
        }
        cx.field("host", |cx| {
            if proxy.host.is_empty() {
                cx.error("egressProxy host is required");
            } else if !is_istio_fqdn(&proxy.host) {
                cx.error(format!(
                    "egressProxy host {:?} must be a fully qualified domain name, without wildcards",
                    proxy.host
                ));
            }
        });
        if !proxy.subset.is_empty() {
            cx.field("subset", |cx| {
                check_dns1123_label(cx, "subset name", &proxy.subset)
            });
        }
        match proxy.port {
            None => cx.error_at("port", "egressProxy port is required"),
            Some(port) => {
                cx.field("port", |cx| cx.field("number", |cx| check_port(cx, port.number)));
            }
        }
    });
}

#[cfg(test)]
mod tests;
