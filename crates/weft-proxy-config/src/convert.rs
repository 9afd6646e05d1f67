//! Envoy protobufs into weft's typed model ([`crate::model`]), once, at the boundary.
//!
//! [`convert_bootstrap`] does three things, in this order:
//!
//! 1. **Support check** ([`support`]): every field set in the bootstrap must be one weft reads
//!    or one it knowingly accepts without effect; anything else is an
//!    [`ErrorKind::Unsupported`] error naming the resource and the field
//!    (`unsupported: listener "ingress" field "tcp_fast_open_queue_length"`). The tables are
//!    the documentation too: `docs/proxy-support.md` is generated from them.
//! 2. **Conversion** with Envoy's defaults applied (`listener.rs`, `hcm.rs`, `route.rs`,
//!    `cluster.rs`, `tls.rs`), so the data plane reads plain values.
//! 3. **Envoy's load-time checks**: duplicate listener names and addresses, duplicate cluster
//!    names, the router last in every HTTP filter chain, routes naming known clusters
//!    (`validate_clusters`, on by default for inline route configurations), TLS files that
//!    exist, `sds` secrets that are defined in `static_resources.secrets`, EDS only with a
//!    control plane.
//!
//! Relative file names (certificates, keys, CA bundles, direct response bodies) are resolved
//! against `base_dir` and stored absolute. Envoy resolves them against its working directory;
//! [`load_bootstrap`] therefore passes the process's current directory, and callers embedding
//! a bootstrap elsewhere choose the directory explicitly.

mod cluster;
mod hcm;
mod listener;
mod route;
pub mod support;
mod tls;

#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::google::protobuf::Duration as PbDuration;
use prost::{Message, Name};
use prost_reflect::DynamicMessage;

use crate::{
    descriptors,
    error::{ConfigError, ErrorKind, join_path},
    model::{Admin, Locality, Node, ProxyConfig},
};

pub use support::markdown as support_markdown;

/// Reads, parses and converts the bootstrap at `path`. Relative file names inside it are
/// resolved against the process's current directory, as Envoy does. Errors carry the file and,
/// when the field can be found in it, the line.
pub fn load_bootstrap(path: &Path) -> Result<ProxyConfig, ConfigError> {
    let _lease = crate::descriptors::lease();
    let text = std::fs::read_to_string(path).map_err(|e| {
        let mut err = ConfigError::new(
            ErrorKind::Syntax,
            "",
            format!("cannot read the bootstrap: {e}"),
        );
        err.file = Some(path.to_owned());
        err
    })?;
    let bootstrap = crate::parse_bootstrap(path, &text)?;
    let cwd = std::env::current_dir().map_err(|e| {
        ConfigError::new(
            ErrorKind::Internal,
            "",
            format!("cannot determine the current directory: {e}"),
        )
    })?;
    convert_bootstrap(&bootstrap, &cwd).map_err(|mut e| {
        e.file = Some(path.to_owned());
        if e.line.is_none() {
            e.line = weft_yaml::parse_documents(&text)
                .into_iter()
                .next()
                .and_then(Result::ok)
                .and_then(|doc| doc.fields.line_of(&e.path));
        }
        e
    })
}

/// Converts a parsed bootstrap into weft's model. See the [module docs](self) for what is
/// checked; `base_dir` resolves relative file names.
pub fn convert_bootstrap(
    bootstrap: &Bootstrap,
    base_dir: &Path,
) -> Result<ProxyConfig, ConfigError> {
    let _lease = crate::descriptors::lease();
    convert_with(bootstrap, base_dir, &Dynamic::default())
}

/// What the xDS client adds to a conversion: the route configurations RDS delivered, and
/// whether EDS clusters carry the endpoints EDS delivered in their `load_assignment`.
#[derive(Default)]
pub(crate) struct Dynamic<'a> {
    /// RDS resources by name; `None` converts RDS references into empty route tables.
    pub(crate) routes: Option<&'a HashMap<String, RouteConfiguration>>,
    /// EDS clusters' `load_assignment` holds the ClusterLoadAssignment from the control plane.
    pub(crate) eds_assignments: bool,
    /// Set to the name of the RDS route configuration whose conversion failed.
    pub(crate) rds_failure: Option<&'a Cell<Option<String>>>,
}

pub(crate) fn convert_with(
    bootstrap: &Bootstrap,
    base_dir: &Path,
    dynamic_parts: &Dynamic<'_>,
) -> Result<ProxyConfig, ConfigError> {
    let desc = descriptors::message(&Bootstrap::full_name())?;
    let dynamic =
        DynamicMessage::decode(desc, bootstrap.encode_to_vec().as_slice()).map_err(|e| {
            ConfigError::new(
                ErrorKind::Internal,
                "",
                format!("re-encoding the bootstrap: {e}"),
            )
        })?;
    let statics = bootstrap.static_resources.clone().unwrap_or_default();
    // Duplicate names first: Envoy reports them before anything about the resources' content.
    unique_names(
        statics.clusters.iter().map(|c| &c.name),
        "clusters",
        "cluster",
    )?;
    unique_names(
        statics.listeners.iter().map(|l| &l.name),
        "listeners",
        "listener",
    )?;
    support::check(&dynamic, "", "bootstrap")?;
    let ads = crate::xds::ads_config(bootstrap)?.is_some();

    let mut secrets = HashMap::new();
    for (i, secret) in statics.secrets.iter().enumerate() {
        if secrets.insert(secret.name.clone(), (i, secret)).is_some() {
            return Err(ConfigError::new(
                ErrorKind::Constraint,
                format!("static_resources.secrets[{i}].name"),
                format!("duplicate static secret name {:?}", secret.name),
            ));
        }
    }
    let no_rds_failure = Cell::new(None);
    let mut ctx = Ctx {
        base_dir,
        secrets,
        cluster_names: HashSet::new(),
        ads,
        routes: dynamic_parts.routes,
        eds_assignments: dynamic_parts.eds_assignments,
        rds_failure: dynamic_parts.rds_failure.unwrap_or(&no_rds_failure),
    };

    let mut clusters = Vec::with_capacity(statics.clusters.len());
    for (i, c) in statics.clusters.iter().enumerate() {
        let path = format!("static_resources.clusters[{i}]");
        ctx.cluster_names.insert(c.name.clone());
        clusters.push(Arc::new(cluster::convert(c, &path, &ctx)?));
    }

    let mut listeners = Vec::with_capacity(statics.listeners.len());
    let mut addresses: HashMap<SocketAddr, String> = HashMap::new();
    for (i, l) in statics.listeners.iter().enumerate() {
        let path = format!("static_resources.listeners[{i}]");
        let listener = listener::convert(l, &path, &ctx)?;
        if listener.bind_to_port
            && let Some(first) = addresses.insert(listener.address, listener.name.clone())
        {
            return Err(ConfigError::new(
                ErrorKind::Constraint,
                join_path(&path, "address"),
                format!(
                    "listener {:?} has the same address {} as listener {first:?}",
                    listener.name, listener.address
                ),
            ));
        }
        listeners.push(Arc::new(listener));
    }

    let admin = match &bootstrap.admin {
        Some(a) if a.address.is_some() => Some(Admin {
            address: socket_address(a.address.as_ref(), "admin.address", "admin")?,
        }),
        _ => None,
    };
    let node = bootstrap
        .node
        .as_ref()
        .map(|n| Node {
            id: n.id.clone(),
            cluster: n.cluster.clone(),
            locality: locality(n.locality.as_ref()),
            metadata: n.metadata.as_ref().map(struct_to_json).unwrap_or_default(),
            user_agent_name: crate::model::USER_AGENT_NAME.to_owned(),
        })
        .unwrap_or_default();
    Ok(ProxyConfig {
        node,
        admin,
        listeners,
        clusters,
    })
}

fn unique_names<'a>(
    names: impl Iterator<Item = &'a String>,
    field: &str,
    kind: &str,
) -> Result<(), ConfigError> {
    let mut seen = HashSet::new();
    for (i, name) in names.enumerate() {
        if !seen.insert(name) {
            return Err(ConfigError::new(
                ErrorKind::Constraint,
                format!("static_resources.{field}[{i}].name"),
                format!("duplicate {kind} name {name:?}: {kind} names must be unique"),
            ));
        }
    }
    Ok(())
}

/// What every converter may need to look up.
pub(crate) struct Ctx<'a> {
    /// Relative file names are resolved against this.
    pub(crate) base_dir: &'a Path,
    /// `static_resources.secrets` by name.
    pub(crate) secrets: HashMap<String, (usize, &'a Secret)>,
    /// Names of the static clusters (for `validate_clusters`).
    pub(crate) cluster_names: HashSet<String>,
    /// The bootstrap configures ADS (`dynamic_resources.ads_config`): EDS clusters and RDS
    /// route configurations are allowed.
    pub(crate) ads: bool,
    /// Route configurations delivered by RDS, when converting for the xDS client.
    pub(crate) routes: Option<&'a HashMap<String, RouteConfiguration>>,
    /// EDS clusters' `load_assignment` came from EDS (the xDS client put it there).
    pub(crate) eds_assignments: bool,
    /// The name of the RDS route configuration whose conversion failed, so the xDS client can
    /// reject that resource rather than the listener naming it.
    pub(crate) rds_failure: &'a Cell<Option<String>>,
}

/// A protobuf `Struct` as a JSON object.
pub(crate) fn struct_to_json(
    s: &envoy_types::pb::google::protobuf::Struct,
) -> serde_json::Map<String, serde_json::Value> {
    s.fields
        .iter()
        .map(|(k, v)| (k.clone(), value_to_json(v)))
        .collect()
}

fn value_to_json(v: &envoy_types::pb::google::protobuf::Value) -> serde_json::Value {
    use envoy_types::pb::google::protobuf::value::Kind;
    use serde_json::Value as J;
    match &v.kind {
        None | Some(Kind::NullValue(_)) => J::Null,
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n).map_or(J::Null, J::Number),
        Some(Kind::StringValue(s)) => J::String(s.clone()),
        Some(Kind::BoolValue(b)) => J::Bool(*b),
        Some(Kind::StructValue(s)) => J::Object(struct_to_json(s)),
        Some(Kind::ListValue(l)) => J::Array(l.values.iter().map(value_to_json).collect()),
    }
}

pub(crate) fn unsupported(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::new(ErrorKind::Unsupported, path, message)
}

pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::new(ErrorKind::InvalidValue, path, message)
}

pub(crate) fn constraint(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::new(ErrorKind::Constraint, path, message)
}

/// `path.field`.
pub(crate) fn at(path: &str, field: &str) -> String {
    join_path(path, field)
}

/// A protobuf duration as a std one; negative durations are errors.
pub(crate) fn duration(d: &PbDuration, path: &str) -> Result<std::time::Duration, ConfigError> {
    let (Ok(secs), Ok(nanos)) = (u64::try_from(d.seconds), u32::try_from(d.nanos)) else {
        return Err(invalid(path, "must not be negative"));
    };
    Ok(std::time::Duration::new(secs, nanos))
}

/// An optional duration, or `default` when unset.
pub(crate) fn duration_or(
    d: Option<&PbDuration>,
    path: &str,
    default: std::time::Duration,
) -> Result<std::time::Duration, ConfigError> {
    d.map_or(Ok(default), |d| duration(d, path))
}

/// Envoy's timeout convention: unset → `default`, zero → disabled (`None`).
pub(crate) fn timeout(
    d: Option<&PbDuration>,
    path: &str,
    default: Option<std::time::Duration>,
) -> Result<Option<std::time::Duration>, ConfigError> {
    match d {
        None => Ok(default),
        Some(d) => {
            let d = duration(d, path)?;
            Ok((!d.is_zero()).then_some(d))
        }
    }
}

pub(crate) fn opt_duration(
    d: Option<&PbDuration>,
    path: &str,
) -> Result<Option<std::time::Duration>, ConfigError> {
    d.map(|d| duration(d, path)).transpose()
}

pub(crate) fn locality(l: Option<&core::Locality>) -> Locality {
    l.map(|l| Locality {
        region: l.region.clone(),
        zone: l.zone.clone(),
        sub_zone: l.sub_zone.clone(),
    })
    .unwrap_or_default()
}

/// A port from a `uint32` field.
pub(crate) fn port(value: u32, path: &str) -> Result<u16, ConfigError> {
    u16::try_from(value).map_err(|_| invalid(path, format!("port {value} is above 65535")))
}

/// An `Address` that must be an IP socket address (listeners, admin, STATIC endpoints).
pub(crate) fn socket_address(
    address: Option<&core::Address>,
    path: &str,
    resource: &str,
) -> Result<SocketAddr, ConfigError> {
    let (host, port_value) = host_port(address, path, resource)?;
    let ip: IpAddr = host.parse().map_err(|_| {
        invalid(
            at(path, "socket_address.address"),
            format!("{host:?} is not an IP address"),
        )
    })?;
    Ok(SocketAddr::new(ip, port_value))
}

/// The host and port of a socket `Address` (host may be a DNS name).
pub(crate) fn host_port(
    address: Option<&core::Address>,
    path: &str,
    resource: &str,
) -> Result<(String, u16), ConfigError> {
    use core::address::Address as Kind;
    use core::socket_address::{PortSpecifier, Protocol};
    let Some(Kind::SocketAddress(sa)) = address.and_then(|a| a.address.as_ref()) else {
        return Err(unsupported(
            path,
            format!("unsupported: {resource} address must be a socket_address"),
        ));
    };
    let sa_path = at(path, "socket_address");
    if sa.protocol != Protocol::Tcp as i32 {
        return Err(unsupported(
            at(&sa_path, "protocol"),
            format!("unsupported: {resource} protocol UDP (weft proxies TCP only)"),
        ));
    }
    let port_value = match sa.port_specifier {
        Some(PortSpecifier::PortValue(p)) => port(p, &at(&sa_path, "port_value"))?,
        Some(PortSpecifier::NamedPort(_)) => {
            return Err(unsupported(
                at(&sa_path, "named_port"),
                format!("unsupported: {resource} field \"named_port\""),
            ));
        }
        None => 0,
    };
    Ok((sa.address.clone(), port_value))
}

/// The full name of the message an `Any` holds; for a `TypedStruct`, of the message it stands
/// for.
pub(crate) fn any_type(
    any: &envoy_types::pb::google::protobuf::Any,
    path: &str,
) -> Result<String, ConfigError> {
    use crate::parse::decode::type_url_name;
    let name = type_url_name(&any.type_url).map_err(|why| invalid(path, why))?;
    if !descriptors::TYPED_STRUCTS.contains(&name) {
        return Ok(name.to_owned());
    }
    let msg = DynamicMessage::decode(descriptors::message(name)?, any.value.as_slice())
        .map_err(|e| invalid(path, format!("undecodable {name}: {e}")))?;
    let inner = msg
        .get_field_by_name("type_url")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    type_url_name(&inner)
        .map(str::to_owned)
        .map_err(|why| invalid(at(path, "type_url"), why))
}
