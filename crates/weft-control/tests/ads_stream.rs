//! The control plane over real gRPC: SotW and delta streams get their resources, a push after
//! a file change arrives, and a stream without a node ends with an error status.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use weft_control::{ControlPlane, Options};

const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

fn service(name: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: shop}}
spec:
  hosts: [{name}.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.9}}]
"
    )
}

fn node() -> Node {
    Node {
        id: "sidecar~10.1.0.1~client.shop~shop.svc.cluster.local".into(),
        ..Default::default()
    }
}

async fn start(dir: &std::path::Path) -> ControlPlane {
    ControlPlane::start(Options {
        config: vec![dir.to_path_buf()],
        xds_address: SocketAddr::from(([127, 0, 0, 1], 0)),
        monitoring_address: SocketAddr::from(([127, 0, 0, 1], 0)),
        debounce: Duration::from_millis(20),
        ..Options::default()
    })
    .await
    .unwrap()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("weft-ads-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn client(cp: &ControlPlane) -> AggregatedDiscoveryServiceClient<tonic::transport::Channel> {
    AggregatedDiscoveryServiceClient::connect(format!("http://{}", cp.xds_address))
        .await
        .unwrap()
}

/// The next response on `inbound`, within 10 s.
async fn next<T>(inbound: &mut tonic::Streaming<T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), inbound.message())
        .await
        .expect("a response within 10 s")
        .expect("the stream is healthy")
        .expect("the stream is open")
}

fn has_cluster(resources: &[envoy_types::pb::google::protobuf::Any], host: &str) -> bool {
    resources
        .iter()
        .any(|r| String::from_utf8_lossy(&r.value).contains(host))
}

#[tokio::test]
async fn sotw_stream_gets_clusters_then_a_push_after_a_change() {
    let dir = temp_dir("sotw");
    std::fs::write(dir.join("a.yaml"), service("web")).unwrap();
    let cp = start(&dir).await;
    let (tx, rx) = mpsc::channel(8);
    tx.send(DiscoveryRequest {
        node: Some(node()),
        type_url: CDS.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut inbound = client(&cp)
        .await
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut inbound).await;
    assert_eq!(first.type_url, CDS);
    assert!(has_cluster(&first.resources, "web.shop.svc.cluster.local"));
    tx.send(DiscoveryRequest {
        type_url: CDS.into(),
        version_info: first.version_info.clone(),
        response_nonce: first.nonce.clone(),
        ..Default::default()
    })
    .await
    .unwrap();

    std::fs::write(dir.join("b.yaml"), service("api")).unwrap();
    let pushed = next(&mut inbound).await;
    assert_ne!(pushed.version_info, first.version_info);
    assert!(has_cluster(&pushed.resources, "api.shop.svc.cluster.local"));
    cp.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn delta_stream_gets_clusters_with_versions() {
    let dir = temp_dir("delta");
    std::fs::write(dir.join("a.yaml"), service("web")).unwrap();
    let cp = start(&dir).await;
    let (tx, rx) = mpsc::channel(8);
    tx.send(DeltaDiscoveryRequest {
        node: Some(node()),
        type_url: CDS.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut inbound = client(&cp)
        .await
        .delta_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut inbound).await;
    assert_eq!(first.type_url, CDS);
    assert!(
        first
            .resources
            .iter()
            .any(|r| r.name.contains("web.shop.svc.cluster.local") && !r.version.is_empty())
    );
    cp.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_stream_without_a_node_ends_with_invalid_argument() {
    let dir = temp_dir("nonode");
    let cp = start(&dir).await;
    let (tx, rx) = mpsc::channel(8);
    tx.send(DiscoveryRequest {
        type_url: CDS.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut inbound = client(&cp)
        .await
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let err = tokio::time::timeout(Duration::from_secs(10), inbound.message())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("node"), "{}", err.message());
    cp.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
