//! A scripted ADS server (`StreamAggregatedResources`) for testing xDS clients, and builders for
//! the few Envoy resources such tests need.
//!
//! The test decides every response: [`MockAds::respond`] sends one `DiscoveryResponse` to the
//! connected stream (or queues it until a client connects), and every `DiscoveryRequest` the
//! client sends is recorded, so the test can wait for and assert ACKs, NACKs, versions, nonces
//! and subscribed names. Nothing is sent on the server's own initiative.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use futures_util::Stream;
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc, oneshot};
use tonic::{Request, Response, Status, Streaming};

/// `type_url` of CDS.
pub const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// `type_url` of EDS.
pub const EDS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
/// `type_url` of LDS.
pub const LDS: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// `type_url` of RDS.
pub const RDS: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

type ResponseTx = mpsc::UnboundedSender<Result<DiscoveryResponse, Status>>;

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<DiscoveryRequest>>,
    /// The response channel of the latest stream.
    stream: Mutex<Option<ResponseTx>>,
    /// Responses pushed while no client was connected.
    queued: Mutex<Vec<DiscoveryResponse>>,
    streams_opened: Mutex<usize>,
    nonce: Mutex<u64>,
    changed: Notify,
}

struct Service(Arc<Shared>);

type ResponseStream = Pin<Box<dyn Stream<Item = Result<DiscoveryResponse, Status>> + Send>>;
type DeltaStream = Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for Service {
    type StreamAggregatedResourcesStream = ResponseStream;
    type DeltaAggregatedResourcesStream = DeltaStream;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::unbounded_channel();
        for queued in self.0.queued.lock().drain(..) {
            let _ = tx.send(Ok(queued));
        }
        *self.0.stream.lock() = Some(tx);
        *self.0.streams_opened.lock() += 1;
        self.0.changed.notify_waiters();
        let shared = self.0.clone();
        tokio::spawn(async move {
            while let Ok(Some(req)) = inbound.message().await {
                shared.requests.lock().push(req);
                shared.changed.notify_waiters();
            }
        });
        let stream =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|r| (r, rx)) },
            );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<DeltaStream>, Status> {
        Err(Status::unimplemented(
            "the mock ADS server speaks state of the world only",
        ))
    }
}

/// A running mock ADS server on loopback. Dropping it (or [`MockAds::stop`]) closes the
/// listening socket and ends the open stream.
pub struct MockAds {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for MockAds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockAds")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MockAds {
    /// Starts on a free loopback port.
    pub async fn start() -> MockAds {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// Starts on `addr` (to restart a stopped server where clients expect it).
    pub async fn start_on(addr: SocketAddr) -> MockAds {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("mock ADS cannot bind {addr}: {e}"));
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let service = AggregatedDiscoveryServiceServer::new(Service(shared.clone()));
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });
        MockAds {
            addr,
            shared,
            stop: Some(stop),
            task,
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends a response of `type_url` with `version` and `resources`, with a fresh nonce
    /// (`n1`, `n2`...), which is returned.
    pub fn respond(&self, type_url: &str, version: &str, resources: Vec<Any>) -> String {
        let nonce = {
            let mut n = self.shared.nonce.lock();
            *n += 1;
            format!("n{n}")
        };
        self.push(DiscoveryResponse {
            version_info: version.to_owned(),
            resources,
            type_url: type_url.to_owned(),
            nonce: nonce.clone(),
            ..Default::default()
        });
        nonce
    }

    /// Sends `response` as is to the connected client, or queues it for the next one.
    pub fn push(&self, response: DiscoveryResponse) {
        let mut stream = self.shared.stream.lock();
        let delivered = match stream.as_ref() {
            Some(tx) => tx.send(Ok(response.clone())).is_ok(),
            None => false,
        };
        if !delivered {
            *stream = None;
            self.shared.queued.lock().push(response);
        }
    }

    /// Every request received, in order, over all streams.
    pub fn requests(&self) -> Vec<DiscoveryRequest> {
        self.shared.requests.lock().clone()
    }

    /// Requests of one type, in order.
    pub fn requests_of(&self, type_url: &str) -> Vec<DiscoveryRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.type_url == type_url)
            .collect()
    }

    /// How many streams clients opened.
    pub fn streams_opened(&self) -> usize {
        *self.shared.streams_opened.lock()
    }

    /// Waits up to `timeout` for a request (among all received so far or later) matching
    /// `pred`; returns its index in [`MockAds::requests`] and the request. Panics on timeout,
    /// listing what was received.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&DiscoveryRequest) -> bool,
    ) -> (usize, DiscoveryRequest) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            if let Some(found) = self
                .requests()
                .into_iter()
                .enumerate()
                .find(|(_, r)| pred(r))
            {
                return found;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "no request {what} within {timeout:?}; received:\n{}",
                    self.requests()
                        .iter()
                        .map(describe)
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
        }
    }

    /// Waits for the ACK or NACK of the response with `nonce`.
    pub async fn wait_for_reply(&self, type_url: &str, nonce: &str) -> DiscoveryRequest {
        self.wait_for(
            Duration::from_secs(20),
            &format!("replying to {type_url} nonce {nonce}"),
            |r| r.type_url == type_url && r.response_nonce == nonce,
        )
        .await
        .1
    }

    /// Stops listening and ends the open stream (the client sees it close).
    pub async fn stop(mut self) {
        self.shutdown();
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
        self.task.abort();
    }

    fn shutdown(&mut self) {
        // Ending the response stream ends the call; then the server stops accepting.
        *self.shared.stream.lock() = None;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for MockAds {
    fn drop(&mut self) {
        self.shutdown();
        self.task.abort();
    }
}

/// One line per request, for failure messages.
pub fn describe(r: &DiscoveryRequest) -> String {
    format!(
        "{} version={:?} nonce={:?} names={:?} node={} error={:?}",
        r.type_url.rsplit('.').next().unwrap_or_default(),
        r.version_info,
        r.response_nonce,
        r.resource_names,
        r.node.is_some(),
        r.error_detail.as_ref().map(|e| e.message.as_str())
    )
}

/// Builders for the Envoy resources xDS tests send.
pub mod resources {
    use std::net::SocketAddr;

    use envoy_types::pb::envoy::config::cluster::v3::{
        Cluster,
        cluster::{ClusterDiscoveryType, DiscoveryType, EdsClusterConfig},
    };
    use envoy_types::pb::envoy::config::core::v3::{
        Address, AggregatedConfigSource, ApiVersion, ConfigSource, SocketAddress,
        address::Address as AddressKind, config_source::ConfigSourceSpecifier,
        socket_address::PortSpecifier,
    };
    use envoy_types::pb::envoy::config::endpoint::v3::{
        ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
        lb_endpoint::HostIdentifier,
    };
    use envoy_types::pb::envoy::config::listener::v3::{
        Filter, FilterChain, Listener, filter::ConfigType,
    };
    use envoy_types::pb::envoy::config::route::v3::{
        Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route::Action,
        route_action::ClusterSpecifier, route_match::PathSpecifier,
    };
    use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        HttpConnectionManager, HttpFilter, Rds, http_connection_manager::RouteSpecifier,
        http_filter::ConfigType as HttpConfigType,
    };
    use envoy_types::pb::google::protobuf::{Any, Duration};
    use prost::{Message, Name};

    /// `msg` packed into an `Any`.
    pub fn any<T: Message + Name>(msg: &T) -> Any {
        Any {
            type_url: T::type_url(),
            value: msg.encode_to_vec(),
        }
    }

    fn ads_source() -> ConfigSource {
        ConfigSource {
            config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
            resource_api_version: ApiVersion::V3 as i32,
            ..Default::default()
        }
    }

    fn address(addr: SocketAddr) -> Address {
        Address {
            address: Some(AddressKind::SocketAddress(SocketAddress {
                address: addr.ip().to_string(),
                port_specifier: Some(PortSpecifier::PortValue(u32::from(addr.port()))),
                ..Default::default()
            })),
        }
    }

    /// An HTTP listener on `addr` whose connection manager takes route configuration `route`
    /// from RDS over ADS.
    pub fn http_listener(name: &str, addr: SocketAddr, route: &str) -> Listener {
        let hcm = HttpConnectionManager {
            stat_prefix: name.to_owned(),
            route_specifier: Some(RouteSpecifier::Rds(Rds {
                config_source: Some(ads_source()),
                route_config_name: route.to_owned(),
            })),
            http_filters: vec![HttpFilter {
                name: "envoy.filters.http.router".to_owned(),
                config_type: Some(HttpConfigType::TypedConfig(any(&Router::default()))),
                ..Default::default()
            }],
            ..Default::default()
        };
        Listener {
            name: name.to_owned(),
            address: Some(address(addr)),
            filter_chains: vec![FilterChain {
                filters: vec![Filter {
                    name: "envoy.filters.network.http_connection_manager".to_owned(),
                    config_type: Some(ConfigType::TypedConfig(any(&hcm))),
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// A route configuration sending every request to `cluster`.
    pub fn route(name: &str, cluster: &str) -> RouteConfiguration {
        RouteConfiguration {
            name: name.to_owned(),
            virtual_hosts: vec![VirtualHost {
                name: "all".to_owned(),
                domains: vec!["*".to_owned()],
                routes: vec![Route {
                    r#match: Some(RouteMatch {
                        path_specifier: Some(PathSpecifier::Prefix("/".to_owned())),
                        ..Default::default()
                    }),
                    action: Some(Action::Route(RouteAction {
                        cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.to_owned())),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// An EDS cluster fetching the assignment of `service` over ADS.
    pub fn eds_cluster(name: &str, service: &str) -> Cluster {
        Cluster {
            name: name.to_owned(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
            connect_timeout: Some(Duration {
                seconds: 1,
                nanos: 0,
            }),
            eds_cluster_config: Some(EdsClusterConfig {
                eds_config: Some(ads_source()),
                service_name: service.to_owned(),
            }),
            ..Default::default()
        }
    }

    /// The endpoints of EDS service `service`.
    pub fn assignment(service: &str, endpoints: &[SocketAddr]) -> ClusterLoadAssignment {
        ClusterLoadAssignment {
            cluster_name: service.to_owned(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: endpoints
                    .iter()
                    .map(|a| LbEndpoint {
                        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                            address: Some(address(*a)),
                            ..Default::default()
                        })),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// A bootstrap (YAML) for a proxy whose configuration comes from the ADS server at
    /// `control_plane`, with an admin interface on `admin` and `node_id`.
    pub fn ads_bootstrap(control_plane: SocketAddr, admin: SocketAddr, node_id: &str) -> String {
        format!(
            r#"node:
  id: {node_id}
  cluster: test
  metadata: {{NAMESPACE: default}}
admin:
  address: {{socket_address: {{address: {admin_ip}, port_value: {admin_port}}}}}
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services:
    - envoy_grpc: {{cluster_name: xds-grpc}}
  cds_config: {{ads: {{}}, resource_api_version: V3}}
  lds_config: {{ads: {{}}, resource_api_version: V3}}
static_resources:
  clusters:
  - name: xds-grpc
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: xds-grpc
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: {cp_ip}, port_value: {cp_port}}}}}}}
"#,
            admin_ip = admin.ip(),
            admin_port = admin.port(),
            cp_ip = control_plane.ip(),
            cp_port = control_plane.port(),
        )
    }
}
