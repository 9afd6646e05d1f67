//! Building meshes and proxies from YAML, and checking output against weft's proxy.

use std::path::Path;

use envoy_types::pb::envoy::config::bootstrap::v3::{Bootstrap, bootstrap::StaticResources};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source::Specifier};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, Secret, TlsCertificate, UpstreamTlsContext, secret,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use prost::Message;

use crate::mesh::Mesh;
use crate::node::ProxyNode;

/// A mesh from Istio YAML; loading must report nothing (some tests feed resources that fail
/// validation on purpose).
pub(crate) fn mesh(yaml: &str) -> Mesh {
    crate::translate::testing::mesh_unchecked(yaml)
}

/// A sidecar in `namespace` with `labels`, at `locality` (`region/zone/subzone`).
pub(crate) fn node(namespace: &str, labels: &[(&str, &str)], locality: &str) -> ProxyNode {
    let mut node = crate::translate::testing::sidecar(namespace, "client", "10.9.9.9", labels);
    node.service_account = "client".to_owned();
    node.locality = weft_registry::Locality::parse(locality);
    node
}

/// The cluster named `name`.
pub(crate) fn find<'a>(clusters: &'a [Cluster], name: &str) -> &'a Cluster {
    clusters.iter().find(|c| c.name == name).unwrap_or_else(|| {
        let names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
        panic!("no cluster {name:?} among {names:?}")
    })
}

/// The cluster's upstream HTTP options, decoded.
pub(crate) fn http_options(c: &Cluster) -> Option<HttpProtocolOptions> {
    c.typed_extension_protocol_options
        .get(super::HTTP_PROTOCOL_OPTIONS)
        .map(|any| HttpProtocolOptions::decode(any.value.as_slice()).unwrap())
}

/// The cluster's upstream TLS context, decoded.
pub(crate) fn tls_context(c: &Cluster) -> Option<UpstreamTlsContext> {
    use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
    let ts = c.transport_socket.as_ref()?;
    assert_eq!(ts.name, "envoy.transport_sockets.tls");
    match &ts.config_type {
        Some(ConfigType::TypedConfig(any)) => {
            assert_eq!(
                any.type_url,
                "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
            );
            Some(UpstreamTlsContext::decode(any.value.as_slice()).unwrap())
        }
        other => panic!("unexpected transport socket config {other:?}"),
    }
}

fn inline(s: &str) -> Option<DataSource> {
    Some(DataSource {
        specifier: Some(Specifier::InlineString(s.to_owned())),
        ..Default::default()
    })
}

/// Runs weft's proxy converter over `clusters` in a bootstrap (with `dynamic_resources`, which
/// EDS clusters need, and the SDS secrets `default` and `ROOTCA` as static secrets); any
/// rejection fails the test.
pub(crate) fn accept(clusters: &[Cluster]) -> weft_proxy_config::model::ProxyConfig {
    let secrets = vec![
        Secret {
            name: "default".to_owned(),
            r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
                certificate_chain: inline("cert"),
                private_key: inline("key"),
                ..Default::default()
            })),
        },
        Secret {
            name: "ROOTCA".to_owned(),
            r#type: Some(secret::Type::ValidationContext(
                CertificateValidationContext {
                    trusted_ca: inline("ca"),
                    ..Default::default()
                },
            )),
        },
    ];
    let bootstrap = Bootstrap {
        static_resources: Some(StaticResources {
            clusters: clusters.to_vec(),
            secrets,
            ..Default::default()
        }),
        ..Default::default()
    };
    let bootstrap = crate::translate::testing::with_ads(bootstrap);
    match weft_proxy_config::convert_bootstrap(&bootstrap, Path::new(".")) {
        Ok(cfg) => cfg,
        Err(e) => panic!("weft's proxy rejects the clusters: {e}"),
    }
}
