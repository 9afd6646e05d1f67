//! Envoy resources as translation produces them, and their xDS type URLs.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::google::protobuf::Any;
use prost::Message;

/// The xDS resource types weft serves, in Envoy's warming order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TypeUrl {
    /// CDS.
    Cluster,
    /// EDS.
    Endpoint,
    /// LDS.
    Listener,
    /// RDS.
    Route,
}

impl TypeUrl {
    /// Every type, in the order a push sends them (CDS, EDS, LDS, RDS), which is the order
    /// Envoy warms them in.
    pub const ALL: [TypeUrl; 4] = [
        TypeUrl::Cluster,
        TypeUrl::Endpoint,
        TypeUrl::Listener,
        TypeUrl::Route,
    ];

    /// The full type URL.
    pub fn as_str(self) -> &'static str {
        match self {
            TypeUrl::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            TypeUrl::Endpoint => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
            TypeUrl::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            TypeUrl::Route => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        }
    }

    /// The type for a URL.
    pub fn parse(url: &str) -> Option<TypeUrl> {
        TypeUrl::ALL.into_iter().find(|t| t.as_str() == url)
    }

    /// The short name istioctl uses (`CDS`, `EDS`, `LDS`, `RDS`).
    pub fn short(self) -> &'static str {
        match self {
            TypeUrl::Cluster => "CDS",
            TypeUrl::Endpoint => "EDS",
            TypeUrl::Listener => "LDS",
            TypeUrl::Route => "RDS",
        }
    }

    /// Whether a client subscribing to no names means "everything" (CDS, LDS) rather than
    /// "nothing" (EDS, RDS).
    pub fn wildcard_by_default(self) -> bool {
        matches!(self, TypeUrl::Cluster | TypeUrl::Listener)
    }
}

/// Everything one proxy gets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    /// LDS.
    pub listeners: Vec<Listener>,
    /// RDS.
    pub routes: Vec<RouteConfiguration>,
    /// CDS.
    pub clusters: Vec<Cluster>,
    /// EDS.
    pub endpoints: Vec<ClusterLoadAssignment>,
}

impl Resources {
    /// `(name, Any)` for every resource of type `t`.
    pub fn encode(&self, t: TypeUrl) -> Vec<(String, Any)> {
        fn pack<M: Message>(t: TypeUrl, name: &str, m: &M) -> (String, Any) {
            (
                name.to_owned(),
                Any {
                    type_url: t.as_str().to_owned(),
                    value: m.encode_to_vec(),
                },
            )
        }
        match t {
            TypeUrl::Cluster => self.clusters.iter().map(|c| pack(t, &c.name, c)).collect(),
            TypeUrl::Endpoint => self
                .endpoints
                .iter()
                .map(|c| pack(t, &c.cluster_name, c))
                .collect(),
            TypeUrl::Listener => self.listeners.iter().map(|l| pack(t, &l.name, l)).collect(),
            TypeUrl::Route => self.routes.iter().map(|r| pack(t, &r.name, r)).collect(),
        }
    }
}
