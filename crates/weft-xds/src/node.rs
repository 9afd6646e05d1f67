//! Who is asking: the Envoy `Node` a proxy sends on its first discovery request, read with
//! Istio's conventions so an Envoy bootstrapped the way istio-proxy is understood unchanged.
//!
//! Node id: `<type>~<ip>~<name>.<namespace>~<namespace>.svc.<domain>` where type is `sidecar`
//! or `router`. Metadata (a protobuf `Struct`): `NAMESPACE`, `LABELS`, `WORKLOAD_NAME`,
//! `SERVICE_ACCOUNT`, `CLUSTER_ID`, `INSTANCE_IPS` (comma-separated), `GENERATOR` (`grpc` for
//! proxyless gRPC clients). Metadata wins over the id where both say something.

use std::collections::BTreeMap;
use std::net::IpAddr;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};

/// What kind of proxy a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyKind {
    /// A workload's sidecar.
    Sidecar,
    /// A gateway (ingress or egress).
    Router,
}

/// Which resources the node can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Generator {
    /// Envoy or weft's proxy: full listeners with filter chains.
    Envoy,
    /// A proxyless gRPC client: `api_listener`s named `host:port`, RDS, CDS, EDS.
    Grpc,
}

/// A proxy as the translation sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProxyNode {
    /// The node id as sent.
    pub id: String,
    /// Sidecar or gateway.
    pub kind: ProxyKind,
    /// What it can consume.
    pub generator: Generator,
    /// Its addresses (`INSTANCE_IPS`, else the id's IP).
    pub ips: Vec<IpAddr>,
    /// Namespace.
    pub namespace: String,
    /// Workload name (`WORKLOAD_NAME`, else the id's name part).
    pub workload: String,
    /// Workload labels (`LABELS`).
    pub labels: BTreeMap<String, String>,
    /// Service account (`SERVICE_ACCOUNT`).
    pub service_account: String,
    /// Cluster id (`CLUSTER_ID`).
    pub cluster_id: String,
    /// DNS domain (`<namespace>.svc.cluster.local` form, from the id).
    pub dns_domain: String,
    /// Locality from `node.locality` (`region/zone/subzone`).
    pub locality: weft_registry::Locality,
}

/// A node the control plane cannot serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// The request carried no node (only allowed after the first request of a stream).
    #[error("the first discovery request carries no node")]
    Missing,
    /// The node names no namespace, neither in metadata nor in its id.
    #[error(
        "node {0:?} names no namespace: set metadata NAMESPACE or use an id of the form \
         sidecar~<ip>~<name>.<namespace>~<namespace>.svc.cluster.local"
    )]
    NoNamespace(String),
    /// The id's type part is neither `sidecar` nor `router`.
    #[error("node {0:?}: proxy type {1:?} is neither \"sidecar\" nor \"router\"")]
    BadType(String, String),
}

impl ProxyNode {
    /// Reads a node.
    pub fn from_node(node: &Node) -> Result<ProxyNode, NodeError> {
        let meta = node.metadata.as_ref();
        let text = |key: &str| meta.and_then(|m| string_field(m, key)).unwrap_or_default();

        let mut parts = node.id.splitn(4, '~');
        let (kind_part, ip_part, name_part, domain_part) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let kind = match kind_part {
            "router" => ProxyKind::Router,
            // A bare id (no `~`) is a sidecar, as for most proxyless clients.
            "sidecar" | "" => ProxyKind::Sidecar,
            _ if !node.id.contains('~') => ProxyKind::Sidecar,
            other => return Err(NodeError::BadType(node.id.clone(), other.to_owned())),
        };
        let (id_name, id_namespace) = name_part.rsplit_once('.').unwrap_or((name_part, ""));

        let mut namespace = text("NAMESPACE");
        if namespace.is_empty() {
            namespace = id_namespace.to_owned();
        }
        if namespace.is_empty() {
            return Err(NodeError::NoNamespace(node.id.clone()));
        }
        let mut workload = text("WORKLOAD_NAME");
        if workload.is_empty() {
            workload = id_name.to_owned();
        }
        let mut ips: Vec<IpAddr> = text("INSTANCE_IPS")
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        if ips.is_empty()
            && let Ok(ip) = ip_part.parse()
        {
            ips.push(ip);
        }
        let labels = meta
            .and_then(|m| m.fields.get("LABELS"))
            .and_then(|v| match &v.kind {
                Some(Kind::StructValue(s)) => Some(s),
                _ => None,
            })
            .map(|s| {
                s.fields
                    .iter()
                    .filter_map(|(k, v)| match &v.kind {
                        Some(Kind::StringValue(v)) => Some((k.clone(), v.clone())),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let generator = match text("GENERATOR").as_str() {
            "grpc" => Generator::Grpc,
            _ => Generator::Envoy,
        };
        let locality = node
            .locality
            .as_ref()
            .map(|l| weft_registry::Locality {
                region: l.region.clone(),
                zone: l.zone.clone(),
                subzone: l.sub_zone.clone(),
            })
            .unwrap_or_default();
        Ok(ProxyNode {
            id: node.id.clone(),
            kind,
            generator,
            ips,
            namespace,
            workload,
            labels,
            service_account: text("SERVICE_ACCOUNT"),
            cluster_id: text("CLUSTER_ID"),
            dns_domain: domain_part.to_owned(),
            locality,
        })
    }
}

/// `metadata.fields[key]` as a string (numbers and booleans are not coerced).
fn string_field(s: &Struct, key: &str) -> Option<String> {
    match s.fields.get(key) {
        Some(Value {
            kind: Some(Kind::StringValue(v)),
        }) => Some(v.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(v: &str) -> Value {
        Value {
            kind: Some(Kind::StringValue(v.to_owned())),
        }
    }

    #[test]
    fn istio_sidecar_id_alone() {
        let node = Node {
            id: "sidecar~10.1.2.3~productpage-v1-abc.bookinfo~bookinfo.svc.cluster.local".into(),
            ..Default::default()
        };
        let p = ProxyNode::from_node(&node).unwrap();
        assert_eq!(p.kind, ProxyKind::Sidecar);
        assert_eq!(p.namespace, "bookinfo");
        assert_eq!(p.workload, "productpage-v1-abc");
        assert_eq!(p.ips, vec!["10.1.2.3".parse::<IpAddr>().unwrap()]);
        assert_eq!(p.dns_domain, "bookinfo.svc.cluster.local");
        assert_eq!(p.generator, Generator::Envoy);
    }

    #[test]
    fn metadata_wins_over_the_id() {
        let mut labels = Struct::default();
        labels.fields.insert("app".into(), string("reviews"));
        labels.fields.insert("version".into(), string("v2"));
        let mut meta = Struct::default();
        meta.fields.insert("NAMESPACE".into(), string("shop"));
        meta.fields
            .insert("WORKLOAD_NAME".into(), string("reviews-v2"));
        meta.fields
            .insert("INSTANCE_IPS".into(), string("127.0.1.2, ::1"));
        meta.fields
            .insert("SERVICE_ACCOUNT".into(), string("reviews"));
        meta.fields.insert("GENERATOR".into(), string("grpc"));
        meta.fields.insert(
            "LABELS".into(),
            Value {
                kind: Some(Kind::StructValue(labels)),
            },
        );
        let node = Node {
            id: "router~10.0.0.1~gw.other~other.svc.cluster.local".into(),
            metadata: Some(meta),
            ..Default::default()
        };
        let p = ProxyNode::from_node(&node).unwrap();
        assert_eq!(p.kind, ProxyKind::Router);
        assert_eq!(p.namespace, "shop");
        assert_eq!(p.workload, "reviews-v2");
        assert_eq!(p.ips.len(), 2);
        assert_eq!(p.labels["version"], "v2");
        assert_eq!(p.service_account, "reviews");
        assert_eq!(p.generator, Generator::Grpc);
    }

    #[test]
    fn nodes_it_cannot_serve() {
        let no_ns = Node {
            id: "client-1".into(),
            ..Default::default()
        };
        assert!(matches!(
            ProxyNode::from_node(&no_ns),
            Err(NodeError::NoNamespace(_))
        ));
        let bad = Node {
            id: "waypoint~1.2.3.4~a.b~b.svc.cluster.local".into(),
            ..Default::default()
        };
        assert!(matches!(
            ProxyNode::from_node(&bad),
            Err(NodeError::BadType(_, _))
        ));
    }
}
