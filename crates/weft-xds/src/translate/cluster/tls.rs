//! A DestinationRule's client `tls` settings as an `envoy.transport_sockets.tls` transport
//! socket holding an `UpstreamTlsContext`.

use envoy_types::pb::envoy::config::core::v3::{
    DataSource, TransportSocket, data_source::Specifier, transport_socket::ConfigType,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, SdsSecretConfig, SubjectAltNameMatcher,
    TlsCertificate, TlsParameters, UpstreamTlsContext, common_tls_context::ValidationContextType,
    subject_alt_name_matcher::SanType, tls_parameters::TlsProtocol,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use weft_api::networking::destination_rule::{ClientTlsMode, ClientTlsSettings};

/// Istio's SDS resource name of the workload certificate.
pub(crate) const SDS_DEFAULT: &str = "default";
/// Istio's SDS resource name of the mesh root certificate.
pub(crate) const SDS_ROOT: &str = "ROOTCA";
/// The transport socket name Istio and Envoy use for TLS.
pub(crate) const TLS_TRANSPORT_SOCKET: &str = "envoy.transport_sockets.tls";
const UPSTREAM_TLS_TYPE: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";

/// What the TLS context depends on besides the settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TlsTarget<'a> {
    /// The cluster's name (the default SNI for `ISTIO_MUTUAL`).
    pub(crate) cluster_name: &'a str,
    /// Whether the cluster speaks HTTP/2 upstream (advertised with ALPN).
    pub(crate) http2: bool,
    /// Identities the service's workloads present, used when the settings name no
    /// `subjectAltNames` (Istio does this for ServiceEntry services).
    pub(crate) service_identities: &'a [String],
    /// Whether the proxy is a sidecar and the DestinationRule has no workload selector: Istio
    /// then ignores `credentialName` in SIMPLE and MUTUAL mode so sidecars do not wait for
    /// secrets they may not read.
    pub(crate) sidecar_without_selector: bool,
}

/// The transport socket for `tls`, or `None` for plain text (`DISABLE`, or settings Istio
/// drops).
///
/// - `SIMPLE` / `MUTUAL` with files: the client certificate and key (`MUTUAL`) and the CA
///   bundle are referenced by file name, and `subjectAltNames` (else the service's identities)
///   are matched, only when a CA bundle is given and `insecureSkipVerify` is not set. istiod
///   serves such files over SDS from its agent; weft's proxy reads files itself. Without
///   `caCertificates` Istio verifies against the system roots; weft's proxy has no "system
///   roots" source, so the server is not verified then.
/// - `credentialName`: SDS secrets named as istiod names them (`<name>` for the certificate,
///   `<name>-cacert` for the CA); on sidecars without a workload-selecting rule Istio drops
///   the TLS settings altogether, and so does this.
/// - `ISTIO_MUTUAL`: the workload certificate and the mesh root from SDS, by the resource names
///   istiod uses (`default` and `ROOTCA`), SNI defaulting to the cluster name and ALPN `istio`
///   (plus `h2` for HTTP/2 clusters). The secrets themselves are not served yet: a proxy must
///   have them (weft's proxy reads them from `static_resources.secrets`). istiod also puts the
///   expected SANs into a `combined_validation_context`; weft's proxy does not accept that
///   message, so the root alone verifies the peer here.
pub(crate) fn transport_socket(
    tls: &ClientTlsSettings,
    target: TlsTarget<'_>,
) -> Option<TransportSocket> {
    let ctx = match tls.mode {
        ClientTlsMode::Disable => return None,
        ClientTlsMode::IstioMutual => istio_mutual(tls, target),
        ClientTlsMode::Simple | ClientTlsMode::Mutual => {
            if !tls.credential_name.is_empty() && target.sidecar_without_selector {
                return None;
            }
            user_tls(tls, target)
        }
    };
    Some(TransportSocket {
        name: TLS_TRANSPORT_SOCKET.to_owned(),
        config_type: Some(ConfigType::TypedConfig(Any {
            type_url: UPSTREAM_TLS_TYPE.to_owned(),
            value: ctx.encode_to_vec(),
        })),
    })
}

fn base_context() -> CommonTlsContext {
    CommonTlsContext {
        tls_params: Some(TlsParameters {
            tls_minimum_protocol_version: TlsProtocol::TlSv12 as i32,
            tls_maximum_protocol_version: TlsProtocol::TlSv13 as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn sds(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.to_owned(),
        ..Default::default()
    }
}

fn istio_mutual(tls: &ClientTlsSettings, target: TlsTarget<'_>) -> UpstreamTlsContext {
    let mut common = base_context();
    common.tls_certificate_sds_secret_configs = vec![sds(SDS_DEFAULT)];
    common.validation_context_type = Some(ValidationContextType::ValidationContextSdsSecretConfig(
        sds(SDS_ROOT),
    ));
    common.alpn_protocols = if target.http2 {
        vec!["istio".to_owned(), "h2".to_owned()]
    } else {
        vec!["istio".to_owned()]
    };
    UpstreamTlsContext {
        common_tls_context: Some(common),
        sni: if tls.sni.is_empty() {
            target.cluster_name.to_owned()
        } else {
            tls.sni.clone()
        },
        ..Default::default()
    }
}

fn user_tls(tls: &ClientTlsSettings, target: TlsTarget<'_>) -> UpstreamTlsContext {
    let mutual = tls.mode == ClientTlsMode::Mutual;
    let skip_verify = tls.insecure_skip_verify == Some(true);
    let sans: Vec<String> = if tls.subject_alt_names.is_empty() {
        target.service_identities.to_vec()
    } else {
        tls.subject_alt_names.clone()
    };
    let mut common = base_context();
    if !tls.credential_name.is_empty() {
        if mutual {
            common.tls_certificate_sds_secret_configs = vec![sds(&tls.credential_name)];
        }
        if !skip_verify {
            common.validation_context_type =
                Some(ValidationContextType::ValidationContextSdsSecretConfig(
                    sds(&format!("{}-cacert", tls.credential_name)),
                ));
        }
    } else {
        if mutual && !tls.client_certificate.is_empty() && !tls.private_key.is_empty() {
            common.tls_certificates = vec![TlsCertificate {
                certificate_chain: Some(file(&tls.client_certificate)),
                private_key: Some(file(&tls.private_key)),
                ..Default::default()
            }];
        }
        if !skip_verify && !tls.ca_certificates.is_empty() {
            common.validation_context_type = Some(ValidationContextType::ValidationContext(
                CertificateValidationContext {
                    trusted_ca: Some(file(&tls.ca_certificates)),
                    match_typed_subject_alt_names: sans.iter().map(|s| san_matcher(s)).collect(),
                    ..Default::default()
                },
            ));
        }
    }
    if target.http2 {
        common.alpn_protocols = vec!["h2".to_owned()];
    }
    UpstreamTlsContext {
        common_tls_context: Some(common),
        sni: tls.sni.clone(),
        ..Default::default()
    }
}

fn file(path: &str) -> DataSource {
    DataSource {
        specifier: Some(Specifier::Filename(path.to_owned())),
        ..Default::default()
    }
}

/// An exact matcher for `san`, typed by its form: a URI (`spiffe://...`), an IP address, or
/// else a DNS name.
fn san_matcher(san: &str) -> SubjectAltNameMatcher {
    let san_type = if san.contains("://") {
        SanType::Uri
    } else if san.parse::<std::net::IpAddr>().is_ok() {
        SanType::IpAddress
    } else {
        SanType::Dns
    };
    SubjectAltNameMatcher {
        san_type: san_type as i32,
        matcher: Some(StringMatcher {
            match_pattern: Some(MatchPattern::Exact(san.to_owned())),
            ..Default::default()
        }),
        ..Default::default()
    }
}
