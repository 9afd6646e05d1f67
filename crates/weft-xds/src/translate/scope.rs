//! What one proxy can see: its workload, the Sidecar resource that applies to it, the services
//! visible to it, its inbound ports and (for gateways) the Gateway servers it runs.

use std::net::IpAddr;

use weft_api::Loaded;
use weft_api::networking::gateway::Server;
use weft_api::networking::sidecar::Sidecar;
use weft_registry::{Service, Workload};

use crate::mesh::Mesh;
use crate::node::ProxyNode;

/// One proxy's view of the mesh.
#[derive(Debug)]
pub struct Scope<'a> {
    /// The mesh.
    pub mesh: &'a Mesh,
    /// The proxy.
    pub node: &'a ProxyNode,
    /// The proxy's workload in the registry, when one matches its name and namespace.
    pub workload: Option<&'a Workload>,
    /// The Sidecar resource that applies (workload-selecting in the proxy's namespace, else the
    /// namespace default, else the root namespace default).
    pub sidecar: Option<(&'a Loaded, &'a Sidecar)>,
    /// Services the proxy may call, after `exportTo` and Sidecar egress scoping, in a stable
    /// order.
    pub services: Vec<&'a Service>,
}

/// A port the proxy receives traffic on for its own application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundPort {
    /// The port traffic arrives on (the service's target port, or a Sidecar ingress port).
    pub port: u16,
    /// Istio protocol name (`HTTP`, `TCP`, `GRPC`...).
    pub protocol: String,
    /// Where the application listens (`127.0.0.1:<port>` by default, or a Sidecar ingress
    /// `defaultEndpoint`).
    pub endpoint: std::net::SocketAddr,
    /// Address a `captureMode: NONE` ingress listener binds; `None` behind capture.
    pub bind: Option<IpAddr>,
}

/// A Gateway server this proxy runs.
#[derive(Debug, Clone, Copy)]
pub struct GatewayServer<'a> {
    /// The Gateway resource.
    pub gateway: &'a Loaded,
    /// Index in its `servers`.
    pub index: usize,
    /// The server.
    pub server: &'a Server,
}

impl<'a> Scope<'a> {
    /// The scope of `node` in `mesh`.
    pub fn new(mesh: &'a Mesh, node: &'a ProxyNode) -> Scope<'a> {
        let workload = mesh
            .registry
            .workloads()
            .iter()
            .find(|w| w.namespace == node.namespace && w.name == node.workload);
        let mut services: Vec<&Service> = mesh
            .registry
            .services()
            .iter()
            .filter(|s| s.visible_from(&node.namespace))
            .collect();
        services.sort_by(|a, b| (&a.hostname, &a.namespace).cmp(&(&b.hostname, &b.namespace)));
        Scope {
            mesh,
            node,
            workload,
            sidecar: None,
            services,
        }
    }
}
