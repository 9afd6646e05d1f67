//! `Gateway`: a load balancer at the edge of the mesh, after Istio's
//! `networking/v1alpha3/gateway.proto`.
//!
//! [`Port`] and [`ServerTlsSettings`] are shared with Sidecar listeners.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::destination_rule::{each_item, has_numeric_tld, is_default};
use crate::common::Labels;
use crate::validate::rules::{check_labels, check_port, check_wildcard_host, is_dns1123_label};
use crate::validate::{Checker, Validate};

/// A load balancer at the edge of the mesh receiving incoming or outgoing connections.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Gateway {
    /// The servers (ports and hosts) the gateway exposes. At least one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<Server>,
    /// Labels of the gateway pods this configuration applies to.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub selector: Labels,
}

/// One port exposed by a gateway, with the hosts it serves and its TLS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Server {
    /// Port the proxy listens on. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<Port>,
    /// IP address or `unix://` socket to bind to; all addresses when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bind: String,
    /// Hosts served, as `host` or `namespace/host` (`*`, `*.example.com`, `prod/*`). Required.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// TLS settings; required for HTTPS and TLS ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsSettings>,
    /// Loopback endpoint or socket traffic is forwarded to (`127.0.0.1:8080`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default_endpoint: String,
    /// Optional name, used to tag statistics; unique across servers.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// A port on which a proxy listens (Gateway `Port`; Sidecar `SidecarPort` has the same fields).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Port {
    /// Port number; 0 only for Unix domain socket binds.
    #[serde(default, skip_serializing_if = "is_default")]
    pub number: u32,
    /// `HTTP`, `HTTPS`, `GRPC`, `GRPC-WEB`, `HTTP2`, `MONGO`, `TCP`, `TLS`... (any case).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    /// Port name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Deprecated and without effect.
    #[serde(default, skip_serializing_if = "is_default")]
    pub target_port: u32,
}

/// TLS settings of a server or Sidecar ingress listener (`ServerTLSSettings`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerTlsSettings {
    /// Redirect plain HTTP requests to HTTPS with a 301.
    #[serde(default, skip_serializing_if = "is_default")]
    pub https_redirect: bool,
    /// How TLS is handled; `PASSTHROUGH` when unset.
    #[serde(default, skip_serializing_if = "is_default")]
    pub mode: ServerTlsMode,
    /// Server certificate file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server_certificate: String,
    /// Server private key file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub private_key: String,
    /// CA bundle file used to verify client certificates.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_certificates: String,
    /// Certificate revocation list file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_crl: String,
    /// Secret holding the certificate, key and optional CA; exclusive with the file fields.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub credential_name: String,
    /// Like `credentialName`, for up to two certificates (RSA and ECDSA).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credential_names: Vec<String>,
    /// Secret or config map holding the client CA for mutual TLS.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_cert_credential_name: String,
    /// Up to two certificate/key file pairs (RSA and ECDSA).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_certificates: Vec<TlsCertificate>,
    /// Names accepted in the client certificate's subject alternative names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// Accepted base64 SHA-256 hashes of client certificates' SPKI.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_certificate_spki: Vec<String>,
    /// Accepted hex SHA-256 hashes of client certificates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_certificate_hash: Vec<String>,
    /// Minimum TLS version.
    #[serde(default, skip_serializing_if = "is_default")]
    pub min_protocol_version: TlsProtocol,
    /// Maximum TLS version.
    #[serde(default, skip_serializing_if = "is_default")]
    pub max_protocol_version: TlsProtocol,
    /// Cipher suites (BoringSSL names); Envoy's defaults when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
    /// Verify client certificates but let failures through (Gateway API
    /// `AllowInsecureFallback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

/// One certificate/key pair of [`ServerTlsSettings::tls_certificates`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsCertificate {
    /// Server certificate file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server_certificate: String,
    /// Private key file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub private_key: String,
    /// CA bundle file (hidden in Istio's docs).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_certificates: String,
}

/// How a server handles TLS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerTlsMode {
    /// Forward the connection untouched, routing on SNI.
    #[default]
    Passthrough,
    /// Terminate TLS.
    Simple,
    /// Terminate TLS and require a client certificate.
    Mutual,
    /// Forward on SNI without routes (east-west gateways, `AUTO_PASSTHROUGH`).
    AutoPassthrough,
    /// Mutual TLS with Istio's workload certificates.
    IstioMutual,
    /// Mutual TLS when the client presents a certificate, plain TLS otherwise.
    OptionalMutual,
}

/// TLS protocol version.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum TlsProtocol {
    /// Envoy's default.
    #[default]
    #[serde(rename = "TLS_AUTO")]
    TlsAuto,
    /// TLS 1.0.
    #[serde(rename = "TLSV1_0")]
    TlsV1_0,
    /// TLS 1.1.
    #[serde(rename = "TLSV1_1")]
    TlsV1_1,
    /// TLS 1.2.
    #[serde(rename = "TLSV1_2")]
    TlsV1_2,
    /// TLS 1.3.
    #[serde(rename = "TLSV1_3")]
    TlsV1_3,
}

impl Validate for Gateway {
    fn validate(&self, cx: &mut Checker) {
        if self.servers.is_empty() {
            cx.error_at("servers", "a Gateway needs at least one server");
        }
        let mut port_names = BTreeSet::new();
        let mut server_names = BTreeSet::new();
        each_item(cx, "servers", &self.servers, |cx, server| {
            validate_server(cx, server);
            if let Some(port) = &server.port {
                // An empty name is already an error of its own.
                if !port.name.is_empty() && !port_names.insert(port.name.as_str()) {
                    cx.field("port", |cx| {
                        cx.error_at(
                            "name",
                            format!(
                                "duplicate port name {:?}; port names must be unique across servers",
                                port.name
                            ),
                        )
                    });
                }
                let http = Protocol::parse(&port.protocol).is_some_and(Protocol::is_http);
                if !http && server.tls.as_ref().is_some_and(|t| t.https_redirect) {
                    cx.field("tls", |cx| {
                        cx.warning_at(
                            "httpsRedirect",
                            "httpsRedirect only has an effect on HTTP servers",
                        )
                    });
                }
            }
            if !server.name.is_empty() && !server_names.insert(server.name.as_str()) {
                cx.warning_at(
                    "name",
                    format!(
                        "duplicate server name {:?}; server names should be unique",
                        server.name
                    ),
                );
            }
        });
        // Istio does not reject these, but a selector that is not a valid label can match no pod.
        cx.field("selector", |cx| {
            let mut scratch = Checker::new(cx.path());
            check_labels(&mut scratch, &self.selector);
            for issue in scratch.into_issues() {
                cx.warning(format!("{}; the selector matches no pod", issue.message));
            }
        });
    }
}

fn validate_server(cx: &mut Checker, server: &Server) {
    if server.hosts.is_empty() {
        cx.error_at(
            "hosts",
            "a server needs at least one host, such as \"*\", \"example.com\" or \"prod/*.example.com\"",
        );
    }
    cx.each("hosts", &server.hosts, |cx, host| {
        check_listener_host(cx, host, true);
    });
    let port_ok = match &server.port {
        None => {
            cx.error_at("port", "port is required");
            false
        }
        Some(port) => cx.field("port", |cx| validate_server_port(cx, port, &server.bind)),
    };
    cx.field("bind", |cx| {
        if let Some(path) = server.bind.strip_prefix(UNIX_PREFIX) {
            check_unix_address(cx, path);
            if let Some(port) = server.port.as_ref().filter(|p| p.number != 0) {
                cx.error(format!(
                    "port number must be 0 for a unix domain socket bind, not {}",
                    port.number
                ));
            }
        } else {
            check_bind_ip(cx, &server.bind);
        }
    });
    if let Some(tls) = &server.tls {
        cx.field("tls", |cx| validate_server_tls(cx, tls));
    }
    let protocol = match (&server.port, port_ok) {
        (Some(port), true) => Protocol::parse(&port.protocol),
        _ => None,
    };
    let Some(protocol) = protocol else { return };
    match &server.tls {
        None if protocol.is_tls() => cx.error_at(
            "tls",
            "HTTPS and TLS servers need tls settings (for example mode: SIMPLE with credentialName)",
        ),
        Some(tls) if !protocol.is_tls() => {
            if !protocol.is_http() {
                cx.error_at(
                    "tls",
                    "tls settings are only allowed on HTTPS and TLS servers (and httpsRedirect on HTTP)",
                );
            } else if !matches!(
                tls.mode,
                ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
            ) || !tls.ca_certificates.is_empty()
                || !tls.private_key.is_empty()
                || !tls.server_certificate.is_empty()
            {
                cx.error_at(
                    "tls",
                    "plain-text HTTP servers cannot terminate TLS; use protocol HTTPS, or keep only \
                     tls.httpsRedirect",
                );
            }
        }
        _ => {}
    }
}

/// Checks a gateway server port; returns whether it is usable for protocol-dependent checks.
fn validate_server_port(cx: &mut Checker, port: &Port, bind: &str) -> bool {
    let mut ok = true;
    if Protocol::parse(&port.protocol).is_none() {
        cx.error_at("protocol", unsupported_protocol(&port.protocol));
        ok = false;
    }
    if port.number > 0 || !bind.starts_with(UNIX_PREFIX) {
        ok &= cx.field("number", |cx| check_port(cx, port.number));
    }
    if port.target_port > 0 {
        cx.error_at(
            "targetPort",
            "targetPort has no effect on Gateways; remove it",
        );
        ok = false;
    }
    if port.name.is_empty() {
        cx.error_at("name", "port name is required");
        ok = false;
    }
    ok
}

/// The `unix://` prefix of socket addresses in `bind` and `defaultEndpoint`.
pub(crate) const UNIX_PREFIX: &str = "unix://";

/// Istio's `ValidateUnixAddress`: an absolute file path, or an abstract socket (`@name`).
pub(crate) fn check_unix_address(cx: &mut Checker, path: &str) -> bool {
    if path.is_empty() {
        cx.error("unix domain socket address must not be empty");
        false
    } else if path.starts_with('@') || (path.starts_with('/') && !path.ends_with('/')) {
        true
    } else {
        cx.error(format!(
            "unix domain socket {path:?} must be an absolute path to a file (unix:///path/to/socket) \
             or an abstract socket (unix://@name)"
        ));
        false
    }
}

/// A `bind` address that must be empty or an IP address.
pub(crate) fn check_bind_ip(cx: &mut Checker, bind: &str) -> bool {
    if bind.is_empty() || bind.parse::<IpAddr>().is_ok() {
        true
    } else {
        cx.error(format!("bind {bind:?} is not a valid IP address"));
        false
    }
}

/// Istio's `ValidateNamespaceSlashWildcardHostname`: a `namespace/dnsName` host, or for gateways
/// also a bare host. Short names and partial wildcards (`*foo.com`) are rejected; gateways accept
/// IP addresses; sidecars accept a `~`-prefixed namespace.
pub(crate) fn check_listener_host(cx: &mut Checker, value: &str, is_gateway: bool) -> bool {
    let Some((ns, host)) = value.split_once('/') else {
        if is_gateway {
            return check_host_part(cx, value, true);
        }
        cx.error(format!(
            "host {value:?} must be of the form namespace/dnsName, e.g. \"./*\", \
             \"istio-system/*\" or \"*/example.com\""
        ));
        return false;
    };
    if ns.is_empty() || host.is_empty() {
        cx.error(format!(
            "host {value:?}: the namespace and dnsName around '/' must not be empty"
        ));
        return false;
    }
    let bare_ns = if is_gateway {
        ns
    } else {
        ns.strip_prefix('~').unwrap_or(ns)
    };
    if !(bare_ns.is_empty() || bare_ns == "*" || bare_ns == "." || is_dns1123_label(bare_ns)) {
        cx.error(format!(
            "invalid namespace {ns:?} in host {value:?}: expected \"*\", \".\" or a namespace name"
        ));
        return false;
    }
    check_host_part(cx, host, is_gateway)
}

fn check_host_part(cx: &mut Checker, host: &str, is_gateway: bool) -> bool {
    if host != "*" && !host.contains('.') {
        cx.error(format!(
            "short name {host:?} is not allowed; use a fully qualified name such as \
             {host}.default.svc.cluster.local, or a wildcard"
        ));
        return false;
    }
    if host.contains('*') && host != "*" && !host.starts_with("*.") {
        cx.error(format!(
            "partial wildcard {host:?} is not allowed; a wildcard must be a whole label (\"*.example.com\")"
        ));
        return false;
    }
    if is_gateway && host.parse::<IpAddr>().is_ok() {
        return true;
    }
    if !check_wildcard_host(cx, host) {
        return false;
    }
    if has_numeric_tld(host) {
        cx.error(format!(
            "host {host:?} is not a valid host name: its top-level label is all digits"
        ));
        return false;
    }
    true
}

/// Checks server TLS settings (Istio's `validateTLSOptions`); also used for Sidecar ingress.
pub(crate) fn validate_server_tls(cx: &mut Checker, tls: &ServerTlsSettings) {
    if matches!(
        tls.min_protocol_version,
        TlsProtocol::TlsV1_0 | TlsProtocol::TlsV1_1
    ) && tls.cipher_suites.is_empty()
    {
        cx.warning_at(
            "minProtocolVersion",
            "TLS versions below 1.2 need cipherSuites set: the default suites no longer include \
             ones they can use",
        );
    }
    let mut seen = BTreeSet::new();
    each_item(cx, "cipherSuites", &tls.cipher_suites, |cx, suite| {
        if !is_valid_cipher_suite(suite) {
            cx.warning(format!("ignoring unknown cipher suite {suite:?}"));
        } else if !seen.insert(suite.as_str()) {
            cx.warning(format!("ignoring duplicate cipher suite {suite:?}"));
        }
    });

    let has_files = !tls.server_certificate.is_empty()
        || !tls.private_key.is_empty()
        || !tls.ca_certificates.is_empty();
    match tls.mode {
        ServerTlsMode::IstioMutual => {
            for (name, set) in [
                ("serverCertificate", !tls.server_certificate.is_empty()),
                ("privateKey", !tls.private_key.is_empty()),
                ("caCertificates", !tls.ca_certificates.is_empty()),
                ("tlsCertificates", !tls.tls_certificates.is_empty()),
                ("credentialName", !tls.credential_name.is_empty()),
                ("credentialNames", !tls.credential_names.is_empty()),
            ] {
                if set {
                    cx.error_at(
                        name,
                        format!("ISTIO_MUTUAL uses Istio's own certificates; remove {name}"),
                    );
                }
            }
            return;
        }
        ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
            if has_files
                || !tls.ca_crl.is_empty()
                || !tls.tls_certificates.is_empty()
                || !tls.credential_name.is_empty()
                || !tls.credential_names.is_empty() =>
        {
            cx.warning(format!(
                "{} mode does not terminate TLS; its certificates are ignored",
                mode_name(tls.mode)
            ));
        }
        _ => {}
    }

    let sources = [
        !tls.server_certificate.is_empty() && !tls.private_key.is_empty(),
        !tls.credential_name.is_empty(),
        !tls.credential_names.is_empty(),
        !tls.tls_certificates.is_empty(),
    ];
    if sources.iter().filter(|&&s| s).count() > 1 {
        cx.error(
            "set only one certificate source: credentialName, credentialNames, \
             serverCertificate/privateKey or tlsCertificates",
        );
    }

    let terminates = matches!(
        tls.mode,
        ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual
    );
    if terminates && (!tls.credential_name.is_empty() || !tls.credential_names.is_empty()) {
        // The certificates (and the client CA) come from the referenced secret.
        return;
    }
    if terminates {
        let prefix = if tls.mode == ServerTlsMode::Simple {
            "SIMPLE TLS"
        } else {
            if tls.ca_certificates.is_empty() {
                cx.error_at(
                    "caCertificates",
                    "MUTUAL TLS requires caCertificates (the client CA bundle) or a credentialName",
                );
            }
            "MUTUAL TLS"
        };
        if tls.tls_certificates.len() > 2 {
            cx.warning_at(
                "tlsCertificates",
                format!("{prefix} supports at most 2 server certificates (RSA and ECDSA)"),
            );
        }
        if tls.tls_certificates.is_empty() {
            check_cert_pair(cx, prefix, &tls.server_certificate, &tls.private_key);
        } else {
            cx.each("tlsCertificates", &tls.tls_certificates, |cx, cert| {
                check_cert_pair(cx, prefix, &cert.server_certificate, &cert.private_key);
            });
        }
    }
    if !tls.ca_crl.is_empty() {
        if !tls.credential_name.is_empty() {
            cx.error_at(
                "caCrl",
                "caCrl cannot be used with credentialName; put the CRL in the credential",
            );
        }
        if tls.mode == ServerTlsMode::Simple {
            cx.error_at(
                "caCrl",
                "caCrl is not supported with SIMPLE TLS (there are no client certificates)",
            );
        }
    }
}

fn check_cert_pair(cx: &mut Checker, prefix: &str, cert: &str, key: &str) {
    if cert.is_empty() {
        cx.error_at(
            "serverCertificate",
            format!("{prefix} requires serverCertificate (or a credentialName)"),
        );
    }
    if key.is_empty() {
        cx.error_at(
            "privateKey",
            format!("{prefix} requires privateKey (or a credentialName)"),
        );
    }
}

fn mode_name(mode: ServerTlsMode) -> &'static str {
    match mode {
        ServerTlsMode::Passthrough => "PASSTHROUGH",
        ServerTlsMode::Simple => "SIMPLE",
        ServerTlsMode::Mutual => "MUTUAL",
        ServerTlsMode::AutoPassthrough => "AUTO_PASSTHROUGH",
        ServerTlsMode::IstioMutual => "ISTIO_MUTUAL",
        ServerTlsMode::OptionalMutual => "OPTIONAL_MUTUAL",
    }
}

/// Cipher suites Istio accepts (BoringSSL names, `bssl ciphers -openssl-name ALL` without PSK).
const CIPHER_SUITES: [&str; 15] = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-SHA",
    "AES256-SHA",
    "DES-CBC3-SHA",
];

/// Istio's `IsValidCipherSuite`: known names, `ALL`, and operator expressions (`-`, `+`, `[`...)
/// that are passed through unparsed.
fn is_valid_cipher_suite(suite: &str) -> bool {
    match suite.chars().next() {
        None => true,
        Some(c) if !c.is_alphanumeric() => true,
        Some(_) => suite == "ALL" || CIPHER_SUITES.contains(&suite),
    }
}

fn unsupported_protocol(protocol: &str) -> String {
    format!(
        "unsupported protocol {protocol:?}; expected one of HTTP, HTTPS, GRPC, GRPC-WEB, HTTP2, \
         HTTP_PROXY, MONGO, REDIS, MYSQL, TCP, TLS or UDP (any case)"
    )
}

/// Port protocols as Istio parses them (`pkg/config/protocol`), case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Tcp,
    Udp,
    Grpc,
    GrpcWeb,
    Http,
    HttpProxy,
    Http2,
    Https,
    Tls,
    Mongo,
    Redis,
    MySql,
}

impl Protocol {
    /// Parses a protocol name; `None` for names Istio treats as unsupported.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
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
            "mysql" => Self::MySql,
            _ => return None,
        })
    }

    /// HTTP-family protocols (plain text).
    pub(crate) fn is_http(self) -> bool {
        matches!(
            self,
            Self::Http | Self::Http2 | Self::HttpProxy | Self::Grpc | Self::GrpcWeb
        )
    }

    /// Protocols that carry TLS on the wire.
    pub(crate) fn is_tls(self) -> bool {
        matches!(self, Self::Https | Self::Tls)
    }

    /// Records an error unless `s` is empty (protocol sniffing) or a known protocol.
    pub(crate) fn check_optional(cx: &mut Checker, s: &str) -> bool {
        if s.is_empty() || Self::parse(s).is_some() {
            true
        } else {
            cx.error(unsupported_protocol(s));
            false
        }
    }
}

#[cfg(test)]
mod tests;
