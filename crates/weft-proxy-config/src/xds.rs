//! Configuration from a control plane (xDS over ADS) into weft's model.
//!
//! The xDS client receives resources one type at a time; this module gives it three things:
//!
//! - [`ads_config`]: the bootstrap's `dynamic_resources`, checked (ADS over gRPC, API version
//!   V3, `envoy_grpc` naming a static cluster) and reduced to what the client needs.
//! - [`decode`]: one resource of a `DiscoveryResponse` into its Envoy type, with the same checks
//!   a bootstrap gets (`validate.rules`, and the support tables of [`crate::convert::support`]).
//! - [`convert_xds`]: the bootstrap's static resources plus every dynamic resource into a
//!   [`ProxyConfig`]. It assembles one bootstrap (static resources first, then the dynamic
//!   listeners and clusters, RDS route configurations resolved where an HCM names them, EDS
//!   assignments put into their clusters' `load_assignment`) and runs the bootstrap's conversion,
//!   so both paths apply the same rules. An error names the one xDS resource it is about
//!   ([`XdsError::resource`]), so the client can reject that resource and keep the rest.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{self as core, ApiVersion, ConfigSource};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier,
};
use envoy_types::pb::google::protobuf::Any;
use prost_reflect::DynamicMessage;

use crate::{
    ConfigError, ErrorKind,
    convert::{Dynamic, at, convert_with, duration, host_port, invalid, support, unsupported},
    descriptors,
    model::ProxyConfig,
};

/// Envoy's default `initial_fetch_timeout`.
pub const DEFAULT_INITIAL_FETCH_TIMEOUT: Duration = Duration::from_secs(15);

const HCM_TYPE: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const RESOURCE_WRAPPER: &str = "envoy.service.discovery.v3.Resource";

/// The xDS resource types weft's client subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    /// CDS: `envoy.config.cluster.v3.Cluster`.
    Cluster,
    /// EDS: `envoy.config.endpoint.v3.ClusterLoadAssignment`.
    ClusterLoadAssignment,
    /// LDS: `envoy.config.listener.v3.Listener`.
    Listener,
    /// RDS: `envoy.config.route.v3.RouteConfiguration`.
    RouteConfiguration,
}

impl ResourceType {
    /// Every type, in the order Envoy subscribes to them over ADS.
    pub const ALL: [ResourceType; 4] = [
        ResourceType::Cluster,
        ResourceType::ClusterLoadAssignment,
        ResourceType::Listener,
        ResourceType::RouteConfiguration,
    ];

    /// The message's full name.
    pub fn full_name(self) -> &'static str {
        match self {
            ResourceType::Cluster => "envoy.config.cluster.v3.Cluster",
            ResourceType::ClusterLoadAssignment => "envoy.config.endpoint.v3.ClusterLoadAssignment",
            ResourceType::Listener => "envoy.config.listener.v3.Listener",
            ResourceType::RouteConfiguration => "envoy.config.route.v3.RouteConfiguration",
        }
    }

    /// The type URL of `DiscoveryRequest`/`DiscoveryResponse`.
    pub fn type_url(self) -> &'static str {
        match self {
            ResourceType::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            ResourceType::ClusterLoadAssignment => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
            ResourceType::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            ResourceType::RouteConfiguration => {
                "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
            }
        }
    }

    /// The type whose URL is `url`.
    pub fn from_type_url(url: &str) -> Option<ResourceType> {
        Self::ALL.into_iter().find(|t| t.type_url() == url)
    }

    /// How errors name a resource of this type: `route configuration "9080"`.
    pub fn label(self) -> &'static str {
        match self {
            ResourceType::Cluster => "cluster",
            ResourceType::ClusterLoadAssignment => "cluster load assignment",
            ResourceType::Listener => "listener",
            ResourceType::RouteConfiguration => "route configuration",
        }
    }

    /// The short name Envoy uses in logs and stats (`cds`, `eds`, `lds`, `rds`).
    pub fn short_name(self) -> &'static str {
        match self {
            ResourceType::Cluster => "cds",
            ResourceType::ClusterLoadAssignment => "eds",
            ResourceType::Listener => "lds",
            ResourceType::RouteConfiguration => "rds",
        }
    }
}

/// One xDS resource: its type and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceId {
    /// The resource's type.
    pub kind: ResourceType,
    /// Its name (`cluster_name` for a `ClusterLoadAssignment`).
    pub name: String,
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.kind.label(), self.name)
    }
}

/// A configuration error from xDS, attributed to the one resource it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct XdsError {
    /// The resource at fault; `None` when the error is about the bootstrap's static part (which
    /// was accepted at startup, so this only happens when a dynamic resource clashes with it in
    /// a way weft cannot pin on the dynamic resource).
    pub resource: Option<ResourceId>,
    /// What is wrong; its path is relative to the resource.
    pub error: Box<ConfigError>,
}

impl fmt::Display for XdsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.resource {
            Some(r) => write!(f, "{r}: {}", self.error),
            None => write!(f, "bootstrap: {}", self.error),
        }
    }
}

impl XdsError {
    fn about(kind: ResourceType, name: &str, error: ConfigError) -> Self {
        XdsError {
            resource: Some(ResourceId {
                kind,
                name: name.to_owned(),
            }),
            error: Box::new(error),
        }
    }
}

/// A decoded, checked xDS resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    /// From CDS.
    Cluster(Box<Cluster>),
    /// From EDS.
    ClusterLoadAssignment(Box<ClusterLoadAssignment>),
    /// From LDS.
    Listener(Box<Listener>),
    /// From RDS.
    RouteConfiguration(Box<RouteConfiguration>),
}

impl Resource {
    /// The resource's name.
    pub fn name(&self) -> &str {
        match self {
            Resource::Cluster(c) => &c.name,
            Resource::ClusterLoadAssignment(c) => &c.cluster_name,
            Resource::Listener(l) => &l.name,
            Resource::RouteConfiguration(r) => &r.name,
        }
    }

    /// The resource's type.
    pub fn kind(&self) -> ResourceType {
        match self {
            Resource::Cluster(_) => ResourceType::Cluster,
            Resource::ClusterLoadAssignment(_) => ResourceType::ClusterLoadAssignment,
            Resource::Listener(_) => ResourceType::Listener,
            Resource::RouteConfiguration(_) => ResourceType::RouteConfiguration,
        }
    }
}

/// Every dynamic resource the client holds, to be converted with the bootstrap's static ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct XdsResources {
    /// Listeners from LDS, in the order they should be applied.
    pub listeners: Vec<Listener>,
    /// Route configurations from RDS, by name.
    pub routes: HashMap<String, RouteConfiguration>,
    /// Clusters from CDS, in the order they should be applied.
    pub clusters: Vec<Cluster>,
    /// Cluster load assignments from EDS, by EDS service name.
    pub endpoints: HashMap<String, ClusterLoadAssignment>,
}

/// How the xDS client reaches its control plane, from `dynamic_resources`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdsConfig {
    /// The static cluster named by `ads_config.grpc_services[0].envoy_grpc.cluster_name`.
    pub cluster_name: String,
    /// Host (IP or DNS name) and port of that cluster's first endpoint.
    pub target: (String, u16),
    /// `cds_config` is set: subscribe to clusters. The value is its `initial_fetch_timeout`
    /// (`None`: wait forever).
    pub cds: Option<Option<Duration>>,
    /// `lds_config` is set: subscribe to listeners, with its `initial_fetch_timeout`.
    pub lds: Option<Option<Duration>>,
}

/// A name to subscribe to with EDS or RDS, and how long to wait for it before warming gives up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The EDS service name or RDS route configuration name.
    pub name: String,
    /// The config source's `initial_fetch_timeout` (`None`: wait forever).
    pub initial_fetch_timeout: Option<Duration>,
}

/// The bootstrap's ADS configuration, checked: `None` when it has no `dynamic_resources` (or
/// an empty one).
///
/// weft's client speaks state-of-the-world ADS (`api_type: GRPC`) with the V3 transport and
/// resource versions; `DELTA_GRPC`, separate (non-aggregated) xDS streams, REST, file-based
/// sources and `google_grpc` are rejected as unsupported.
pub fn ads_config(bootstrap: &Bootstrap) -> Result<Option<AdsConfig>, ConfigError> {
    use core::api_config_source::ApiType;
    let Some(dr) = &bootstrap.dynamic_resources else {
        return Ok(None);
    };
    let path = "dynamic_resources";
    let Some(ads) = &dr.ads_config else {
        if dr.cds_config.is_some() || dr.lds_config.is_some() {
            return Err(unsupported(
                at(path, "ads_config"),
                "unsupported: dynamic_resources without ads_config (weft's xDS client fetches \
                 cds_config and lds_config over ADS only)",
            ));
        }
        return Ok(None);
    };
    let ads_path = at(path, "ads_config");
    match ApiType::try_from(ads.api_type) {
        Ok(ApiType::Grpc) => {}
        Ok(ApiType::DeltaGrpc) => {
            return Err(unsupported(
                at(&ads_path, "api_type"),
                "unsupported: ads_config api_type DELTA_GRPC (weft's xDS client speaks \
                 state-of-the-world ADS: use GRPC)",
            ));
        }
        Ok(other) => {
            return Err(unsupported(
                at(&ads_path, "api_type"),
                format!(
                    "unsupported: ads_config api_type {} (weft's xDS client speaks ADS over \
                     gRPC: use GRPC)",
                    other.as_str_name()
                ),
            ));
        }
        Err(_) => {
            return Err(invalid(
                at(&ads_path, "api_type"),
                format!("unknown api_type {}", ads.api_type),
            ));
        }
    }
    api_version(
        ads.transport_api_version,
        &at(&ads_path, "transport_api_version"),
    )?;
    let [service] = ads.grpc_services.as_slice() else {
        return Err(ConfigError::new(
            ErrorKind::Constraint,
            at(&ads_path, "grpc_services"),
            format!(
                "ads_config must have exactly one gRPC service, found {}",
                ads.grpc_services.len()
            ),
        ));
    };
    let service_path = at(&ads_path, "grpc_services[0]");
    let Some(core::grpc_service::TargetSpecifier::EnvoyGrpc(envoy_grpc)) =
        &service.target_specifier
    else {
        return Err(unsupported(
            &service_path,
            "unsupported: ads_config gRPC service without envoy_grpc (weft reaches the control \
             plane through a static cluster)",
        ));
    };
    let cluster_path = at(&service_path, "envoy_grpc.cluster_name");
    let statics = bootstrap.static_resources.as_ref();
    let Some((index, cluster)) = statics
        .into_iter()
        .flat_map(|s| s.clusters.iter().enumerate())
        .find(|(_, c)| c.name == envoy_grpc.cluster_name)
    else {
        return Err(ConfigError::new(
            ErrorKind::Constraint,
            cluster_path,
            format!(
                "ads_config names cluster {:?}, which is not a static cluster (the control \
                 plane must be reachable before any dynamic cluster is known)",
                envoy_grpc.cluster_name
            ),
        ));
    };
    let endpoint_path = format!(
        "static_resources.clusters[{index}].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address"
    );
    let address = cluster
        .load_assignment
        .as_ref()
        .and_then(|la| la.endpoints.first())
        .and_then(|l| l.lb_endpoints.first())
        .and_then(|e| match &e.host_identifier {
            Some(
                envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier::Endpoint(
                    ep,
                ),
            ) => ep.address.as_ref(),
            _ => None,
        });
    let Some(address) = address else {
        return Err(ConfigError::new(
            ErrorKind::Constraint,
            cluster_path,
            format!(
                "ads_config cluster {:?} has no endpoint to reach the control plane at",
                envoy_grpc.cluster_name
            ),
        ));
    };
    let resource = format!("cluster {:?}", cluster.name);
    let target = host_port(Some(address), &endpoint_path, &resource)?;
    let cds = dr
        .cds_config
        .as_ref()
        .map(|cs| require_ads(Some(cs), &at(path, "cds_config"), "cds_config"))
        .transpose()?;
    let lds = dr
        .lds_config
        .as_ref()
        .map(|cs| require_ads(Some(cs), &at(path, "lds_config"), "lds_config"))
        .transpose()?;
    Ok(Some(AdsConfig {
        cluster_name: envoy_grpc.cluster_name.clone(),
        target,
        cds,
        lds,
    }))
}

#[allow(deprecated, reason = "V2 is named only to reject it")]
fn api_version(version: i32, path: &str) -> Result<(), ConfigError> {
    match ApiVersion::try_from(version) {
        // AUTO means V3, the only version Envoy 1.40 speaks.
        Ok(ApiVersion::Auto | ApiVersion::V3) => Ok(()),
        Ok(ApiVersion::V2) => Err(unsupported(
            path,
            "unsupported: xDS API version V2 (removed from Envoy; use V3)",
        )),
        Err(_) => Err(invalid(path, format!("unknown API version {version}"))),
    }
}

/// Checks that a config source is `ads: {}` with the V3 resource version; returns its
/// `initial_fetch_timeout` (unset: 15 s; zero: `None`, wait forever).
pub(crate) fn require_ads(
    source: Option<&ConfigSource>,
    path: &str,
    resource: &str,
) -> Result<Option<Duration>, ConfigError> {
    use core::config_source::ConfigSourceSpecifier;
    let Some(source) = source else {
        return Err(ConfigError::new(
            ErrorKind::Constraint,
            path,
            format!("{resource}: needs a config source (weft supports `ads: {{}}`)"),
        ));
    };
    if !matches!(
        source.config_source_specifier,
        Some(ConfigSourceSpecifier::Ads(_))
    ) {
        return Err(unsupported(
            path,
            format!("unsupported: {resource} config source other than ads"),
        ));
    }
    api_version(
        source.resource_api_version,
        &at(path, "resource_api_version"),
    )?;
    fetch_timeout(source, path)
}

fn fetch_timeout(source: &ConfigSource, path: &str) -> Result<Option<Duration>, ConfigError> {
    match &source.initial_fetch_timeout {
        None => Ok(Some(DEFAULT_INITIAL_FETCH_TIMEOUT)),
        Some(d) => {
            let d = duration(d, &at(path, "initial_fetch_timeout"))?;
            Ok((!d.is_zero()).then_some(d))
        }
    }
}

/// Decodes one resource of a `DiscoveryResponse` of type `kind` (also when wrapped in an
/// `envoy.service.discovery.v3.Resource`) and checks it as a bootstrap's resources are checked:
/// the `validate.rules` constraints and the support tables. Conversion-time checks are left to
/// [`convert_xds`].
pub fn decode(kind: ResourceType, any: &Any) -> Result<Resource, XdsError> {
    let _lease = crate::descriptors::lease();
    let unnamed = |e: ConfigError| XdsError::about(kind, "", e);
    let type_name = crate::parse::decode::type_url_name(&any.type_url)
        .map_err(|why| unnamed(ConfigError::new(ErrorKind::TypeMismatch, "", why)))?;
    let desc = descriptors::message(kind.full_name()).map_err(unnamed)?;
    let message = if type_name == RESOURCE_WRAPPER {
        let wrapper = DynamicMessage::decode(
            descriptors::message(RESOURCE_WRAPPER).map_err(unnamed)?,
            any.value.as_slice(),
        )
        .map_err(|e| {
            unnamed(ConfigError::new(
                ErrorKind::InvalidValue,
                "",
                format!("undecodable {RESOURCE_WRAPPER}: {e}"),
            ))
        })?;
        let inner = wrapper
            .transcode_to::<envoy_types::pb::envoy::service::discovery::v3::Resource>()
            .ok()
            .and_then(|r| r.resource)
            .unwrap_or_default();
        return decode(kind, &inner);
    } else if type_name == kind.full_name() {
        DynamicMessage::decode(desc, any.value.as_slice()).map_err(|e| {
            unnamed(ConfigError::new(
                ErrorKind::InvalidValue,
                "",
                format!("undecodable {type_name}: {e}"),
            ))
        })?
    } else {
        return Err(unnamed(ConfigError::new(
            ErrorKind::TypeMismatch,
            "",
            format!(
                "a {} response holds a {type_name}",
                kind.short_name().to_ascii_uppercase()
            ),
        )));
    };
    let name_field = match kind {
        ResourceType::ClusterLoadAssignment => "cluster_name",
        _ => "name",
    };
    let name = message
        .get_field_by_name(name_field)
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let fail = |e: ConfigError| XdsError::about(kind, &name, e);
    if name.is_empty() {
        return Err(fail(ConfigError::new(
            ErrorKind::Constraint,
            name_field,
            format!("an xDS {} needs a {name_field}", kind.label()),
        )));
    }
    crate::pgv::validate(&message).map_err(fail)?;
    let label = format!("{} {name:?}", kind.label());
    support::check(&message, "", &label).map_err(fail)?;
    let transcode_error = |e: prost::DecodeError| {
        fail(ConfigError::new(
            ErrorKind::Internal,
            "",
            format!("converting to {}: {e}", kind.full_name()),
        ))
    };
    Ok(match kind {
        ResourceType::Cluster => {
            Resource::Cluster(message.transcode_to().map_err(transcode_error)?)
        }
        ResourceType::ClusterLoadAssignment => {
            Resource::ClusterLoadAssignment(message.transcode_to().map_err(transcode_error)?)
        }
        ResourceType::Listener => {
            Resource::Listener(message.transcode_to().map_err(transcode_error)?)
        }
        ResourceType::RouteConfiguration => {
            Resource::RouteConfiguration(message.transcode_to().map_err(transcode_error)?)
        }
    })
}

/// The EDS subscription of an EDS cluster (`eds_cluster_config.service_name`, or the cluster's
/// name); `None` for other clusters.
pub fn eds_subscription(cluster: &Cluster) -> Option<Subscription> {
    use envoy_types::pb::envoy::config::cluster::v3::cluster::{
        ClusterDiscoveryType, DiscoveryType,
    };
    let eds = Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32));
    if cluster.cluster_discovery_type != eds {
        return None;
    }
    let config = cluster.eds_cluster_config.as_ref();
    let name = config
        .map(|c| c.service_name.as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or(&cluster.name)
        .to_owned();
    let initial_fetch_timeout = config
        .and_then(|c| c.eds_config.as_ref())
        .map_or(Ok(Some(DEFAULT_INITIAL_FETCH_TIMEOUT)), |cs| {
            fetch_timeout(cs, "")
        })
        .unwrap_or(Some(DEFAULT_INITIAL_FETCH_TIMEOUT));
    Some(Subscription {
        name,
        initial_fetch_timeout,
    })
}

/// The RDS subscriptions of a listener's HTTP connection managers, in order, without repeats.
pub fn rds_subscriptions(listener: &Listener) -> Vec<Subscription> {
    let mut out: Vec<Subscription> = Vec::new();
    let chains = listener
        .filter_chains
        .iter()
        .chain(listener.default_filter_chain.as_ref());
    for filter in chains.flat_map(|c| c.filters.iter()) {
        use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
        let Some(ConfigType::TypedConfig(any)) = &filter.config_type else {
            continue;
        };
        if crate::convert::any_type(any, "").ok().as_deref() != Some(HCM_TYPE) {
            continue;
        }
        let Ok(hcm) = crate::unpack::<HttpConnectionManager>(any) else {
            continue;
        };
        if let Some(RouteSpecifier::Rds(rds)) = &hcm.route_specifier
            && !out.iter().any(|s| s.name == rds.route_config_name)
        {
            let initial_fetch_timeout = rds
                .config_source
                .as_ref()
                .map_or(Ok(Some(DEFAULT_INITIAL_FETCH_TIMEOUT)), |cs| {
                    fetch_timeout(cs, "")
                })
                .unwrap_or(Some(DEFAULT_INITIAL_FETCH_TIMEOUT));
            out.push(Subscription {
                name: rds.route_config_name.clone(),
                initial_fetch_timeout,
            });
        }
    }
    out
}

/// Converts the bootstrap's static resources plus `resources` into weft's model.
///
/// Dynamic listeners and clusters follow the static ones; an HCM's `rds` takes the route
/// configuration of that name from `resources.routes` (an empty one while RDS has not
/// delivered it, as Envoy serves 404 until then), with `validate_clusters` defaulting to false
/// as for RDS in Envoy; an EDS cluster (static or dynamic) gets the assignment of its service
/// name from `resources.endpoints` (none yet: no endpoints). Errors name the resource at fault.
pub fn convert_xds(
    bootstrap: &Bootstrap,
    base_dir: &Path,
    resources: &XdsResources,
) -> Result<ProxyConfig, XdsError> {
    let _lease = crate::descriptors::lease();
    let mut assembled = bootstrap.clone();
    let statics = assembled.static_resources.get_or_insert_default();
    let static_listeners = statics.listeners.len();
    let static_clusters = statics.clusters.len();
    statics
        .listeners
        .extend(resources.listeners.iter().cloned());
    statics.clusters.extend(resources.clusters.iter().cloned());
    // Which cluster index got which EDS assignment, to attribute errors inside it.
    let mut assignments: HashMap<usize, String> = HashMap::new();
    for (i, cluster) in statics.clusters.iter_mut().enumerate() {
        let Some(sub) = eds_subscription(cluster) else {
            continue;
        };
        let cla = match resources.endpoints.get(&sub.name) {
            Some(cla) => {
                assignments.insert(i, sub.name.clone());
                cla.clone()
            }
            None => ClusterLoadAssignment {
                cluster_name: sub.name.clone(),
                ..Default::default()
            },
        };
        cluster.load_assignment = Some(cla);
    }
    let rds_failure = Cell::new(None);
    let dynamic = Dynamic {
        routes: Some(&resources.routes),
        eds_assignments: true,
        rds_failure: Some(&rds_failure),
    };
    convert_with(&assembled, base_dir, &dynamic).map_err(|error| {
        if let Some(name) = rds_failure.take() {
            return XdsError::about(ResourceType::RouteConfiguration, &name, error);
        }
        attribute(
            error,
            static_listeners,
            static_clusters,
            resources,
            &assignments,
        )
    })
}

/// Finds the dynamic resource an error's path points into and makes the path relative to it.
fn attribute(
    mut error: ConfigError,
    static_listeners: usize,
    static_clusters: usize,
    resources: &XdsResources,
    assignments: &HashMap<usize, String>,
) -> XdsError {
    let unattributed = |error| XdsError {
        resource: None,
        error: Box::new(error),
    };
    let Some((field, index, rest)) = indexed(&error.path, "static_resources.") else {
        return unattributed(error);
    };
    let rest = rest.to_owned();
    match field {
        "listeners" if index >= static_listeners => {
            let Some(l) = resources.listeners.get(index - static_listeners) else {
                return unattributed(error);
            };
            error.path = rest;
            XdsError::about(ResourceType::Listener, &l.name, error)
        }
        "clusters" => {
            if let (Some(service), Some(inner)) = (
                assignments.get(&index),
                rest.strip_prefix("load_assignment"),
            ) {
                error.path = inner.trim_start_matches('.').to_owned();
                return XdsError::about(ResourceType::ClusterLoadAssignment, service, error);
            }
            match index
                .checked_sub(static_clusters)
                .and_then(|i| resources.clusters.get(i))
            {
                Some(c) => {
                    error.path = rest;
                    XdsError::about(ResourceType::Cluster, &c.name, error)
                }
                None => unattributed(error),
            }
        }
        _ => unattributed(error),
    }
}

/// `static_resources.listeners[3].address` → `("listeners", 3, "address")`.
fn indexed<'a>(path: &'a str, prefix: &str) -> Option<(&'a str, usize, &'a str)> {
    let rest = path.strip_prefix(prefix)?;
    let (field, rest) = rest.split_once('[')?;
    let (index, rest) = rest.split_once(']')?;
    let index = index.parse().ok()?;
    Some((field, index, rest.trim_start_matches('.')))
}

#[cfg(test)]
mod tests;
