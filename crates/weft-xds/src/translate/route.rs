//! RouteConfigurations from VirtualServices.

use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use weft_registry::Service;

use super::Scope;
use super::scope::GatewayServer;

/// The RDS table `name` of an outbound HTTP listener on `port` serving `services`.
pub fn outbound_route_config(
    _scope: &Scope<'_>,
    name: &str,
    _port: u16,
    _services: &[&Service],
) -> RouteConfiguration {
    RouteConfiguration {
        name: name.to_owned(),
        ..Default::default()
    }
}

/// The RDS table `name` of an inbound HTTP listener on `port`, forwarding to `cluster`.
pub fn inbound_route_config(
    _scope: &Scope<'_>,
    name: &str,
    _port: u16,
    _cluster: &str,
) -> RouteConfiguration {
    RouteConfiguration {
        name: name.to_owned(),
        ..Default::default()
    }
}

/// The RDS table `name` of a gateway listener serving `servers` (all on one port).
pub fn gateway_route_config(
    _scope: &Scope<'_>,
    name: &str,
    _servers: &[GatewayServer<'_>],
) -> RouteConfiguration {
    RouteConfiguration {
        name: name.to_owned(),
        ..Default::default()
    }
}
