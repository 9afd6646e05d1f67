use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use envoy_types::pb::google::rpc::Status as RpcStatus;

use super::delta::DeltaStream;
use super::sotw::{RequestKind, SotwStream};
use super::*;

fn cluster(name: &str, timeout_s: i64) -> Cluster {
    Cluster {
        name: name.into(),
        connect_timeout: Some(envoy_types::pb::google::protobuf::Duration {
            seconds: timeout_s,
            nanos: 0,
        }),
        ..Default::default()
    }
}

fn cla(name: &str) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: name.into(),
        ..Default::default()
    }
}

fn snap(clusters: &[(&str, i64)]) -> Snapshot {
    Snapshot::new(Resources {
        clusters: clusters.iter().map(|(n, t)| cluster(n, *t)).collect(),
        endpoints: clusters.iter().map(|(n, _)| cla(n)).collect(),
        listeners: vec![Listener {
            name: "l".into(),
            ..Default::default()
        }],
        routes: Vec::new(),
    })
}

fn req(t: TypeUrl, names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: t.as_str().into(),
        resource_names: names.iter().map(|s| s.to_string()).collect(),
        version_info: version.into(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

#[test]
fn sotw_first_request_gets_everything_then_ack_is_quiet() {
    let s = snap(&[("a", 1), ("b", 1)]);
    let mut st = SotwStream::default();
    let (kind, out) = st.on_request(&req(TypeUrl::Cluster, &[], "", ""), &s);
    assert_eq!(kind, RequestKind::Ok);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].resources.len(), 2);
    let (v, n) = (out[0].version_info.clone(), out[0].nonce.clone());
    assert_eq!(st.status()[&TypeUrl::Cluster].sync(), SyncStatus::Stale);

    let (_, out) = st.on_request(&req(TypeUrl::Cluster, &[], &v, &n), &s);
    assert!(out.is_empty(), "an ACK is not answered");
    let status = &st.status()[&TypeUrl::Cluster];
    assert_eq!(status.sync(), SyncStatus::Synced);
    assert_eq!(status.acked_version, v);
}

#[test]
fn sotw_eds_sends_only_named_and_answers_new_names() {
    let s = snap(&[("a", 1), ("b", 1)]);
    let mut st = SotwStream::default();
    let (_, out) = st.on_request(&req(TypeUrl::Endpoint, &["a"], "", ""), &s);
    assert_eq!(out[0].resources.len(), 1);
    let n = out[0].nonce.clone();
    let v = out[0].version_info.clone();
    // ACK that also subscribes to b: answered with both.
    let (_, out) = st.on_request(&req(TypeUrl::Endpoint, &["a", "b"], &v, &n), &s);
    assert_eq!(out[0].resources.len(), 2);
    // EDS naming nothing subscribes to nothing (not wildcard).
    let mut st = SotwStream::default();
    let (_, out) = st.on_request(&req(TypeUrl::Endpoint, &[], "", ""), &s);
    assert_eq!(out[0].resources.len(), 0);
}

#[test]
fn sotw_stale_nonce_is_ignored_and_nack_is_recorded() {
    let s = snap(&[("a", 1)]);
    let mut st = SotwStream::default();
    let (_, out) = st.on_request(&req(TypeUrl::Cluster, &[], "", ""), &s);
    let n = out[0].nonce.clone();
    let (kind, out) = st.on_request(&req(TypeUrl::Cluster, &["x"], "", "999"), &s);
    assert_eq!(kind, RequestKind::Stale);
    assert!(out.is_empty());

    let mut nack = req(TypeUrl::Cluster, &[], "", &n);
    nack.error_detail = Some(RpcStatus {
        code: 3,
        message: "cluster a: bad".into(),
        details: Vec::new(),
    });
    let (kind, out) = st.on_request(&nack, &s);
    assert_eq!(kind, RequestKind::Nack("cluster a: bad".into()));
    assert!(
        out.is_empty(),
        "a NACK is not answered with the same config"
    );
    let status = &st.status()[&TypeUrl::Cluster];
    assert_eq!(status.sync(), SyncStatus::Stale);
    assert_eq!(status.rejections, 1);
}

#[test]
fn sotw_push_sends_changed_types_and_endpoints_after_clusters() {
    let s1 = snap(&[("a", 1)]);
    let mut st = SotwStream::default();
    for t in [TypeUrl::Cluster, TypeUrl::Endpoint, TypeUrl::Listener] {
        let names: &[&str] = if t == TypeUrl::Endpoint { &["a"] } else { &[] };
        let (_, out) = st.on_request(&req(t, names, "", ""), &s1);
        let (v, n) = (out[0].version_info.clone(), out[0].nonce.clone());
        st.on_request(&req(t, names, &v, &n), &s1);
    }
    // Nothing changed: nothing sent.
    assert!(st.on_snapshot(&snap(&[("a", 1)])).is_empty());
    // A cluster changed: CDS, then EDS (unchanged, but the proxy warms the cluster until it
    // gets endpoints); LDS unchanged is not sent.
    let out = st.on_snapshot(&snap(&[("a", 2)]));
    let types: Vec<_> = out.iter().map(|r| r.type_url.as_str()).collect();
    assert_eq!(
        types,
        vec![TypeUrl::Cluster.as_str(), TypeUrl::Endpoint.as_str()]
    );
    // Versions differ for different content, and are stable for the same content.
    assert_ne!(
        snap(&[("a", 1)]).of(TypeUrl::Cluster).resources["a"].version,
        snap(&[("a", 2)]).of(TypeUrl::Cluster).resources["a"].version
    );
}

fn dreq(t: TypeUrl, sub: &[&str], unsub: &[&str], nonce: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: t.as_str().into(),
        resource_names_subscribe: sub.iter().map(|s| s.to_string()).collect(),
        resource_names_unsubscribe: unsub.iter().map(|s| s.to_string()).collect(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

#[test]
fn delta_sends_only_changes_and_removals() {
    let mut st = DeltaStream::default();
    let (_, out) = st.on_request(
        &dreq(TypeUrl::Cluster, &[], &[], ""),
        &snap(&[("a", 1), ("b", 1)]),
    );
    assert_eq!(out[0].resources.len(), 2, "wildcard: everything");
    let n = out[0].nonce.clone();
    st.on_request(
        &dreq(TypeUrl::Cluster, &[], &[], &n),
        &snap(&[("a", 1), ("b", 1)]),
    );
    assert_eq!(st.status()[&TypeUrl::Cluster].sync(), SyncStatus::Synced);

    // b changes, a stays, c appears.
    let out = st.on_snapshot(&snap(&[("a", 1), ("b", 2), ("c", 1)]));
    let names: Vec<_> = out[0].resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, vec!["b", "c"]);
    assert!(out[0].removed_resources.is_empty());
    // a disappears.
    let out = st.on_snapshot(&snap(&[("b", 2), ("c", 1)]));
    assert!(out[0].resources.is_empty());
    assert_eq!(out[0].removed_resources, vec!["a".to_string()]);
    // No change: nothing.
    assert!(st.on_snapshot(&snap(&[("b", 2), ("c", 1)])).is_empty());
}

#[test]
fn delta_named_subscriptions_and_initial_versions() {
    let s = snap(&[("a", 1), ("b", 1)]);
    let mut st = DeltaStream::default();
    // A reconnecting proxy already holds a at the current version: only b is sent.
    let mut first = dreq(TypeUrl::Endpoint, &["a", "b", "missing"], &[], "");
    first.initial_resource_versions.insert(
        "a".into(),
        s.of(TypeUrl::Endpoint).resources["a"].version.clone(),
    );
    let (_, out) = st.on_request(&first, &s);
    let names: Vec<_> = out[0].resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, vec!["b"]);
    assert_eq!(
        out[0].removed_resources,
        vec!["missing".to_string()],
        "a subscribed name that does not exist is reported, so the proxy stops waiting"
    );
    // Unsubscribe b: nothing to send; a later change to b is not sent.
    let (_, out) = st.on_request(&dreq(TypeUrl::Endpoint, &[], &["b"], ""), &s);
    assert!(out.is_empty());
    assert!(st.on_snapshot(&snap(&[("a", 1), ("b", 5)])).is_empty());
    // The missing name is not reported again on every push.
    assert!(st.on_snapshot(&snap(&[("a", 1), ("b", 6)])).is_empty());
}

#[test]
fn delta_nack_resends_on_next_change() {
    let mut st = DeltaStream::default();
    let (_, out) = st.on_request(&dreq(TypeUrl::Cluster, &[], &[], ""), &snap(&[("a", 1)]));
    let mut nack = dreq(TypeUrl::Cluster, &[], &[], &out[0].nonce);
    nack.error_detail = Some(RpcStatus {
        code: 3,
        message: "no".into(),
        details: Vec::new(),
    });
    let (kind, out) = st.on_request(&nack, &snap(&[("a", 1)]));
    assert_eq!(kind, RequestKind::Nack("no".into()));
    assert!(out.is_empty());
    assert_eq!(st.status()[&TypeUrl::Cluster].rejections, 1);
    let out = st.on_snapshot(&snap(&[("a", 1), ("b", 1)]));
    assert_eq!(
        out[0].resources.len(),
        2,
        "the rejected resources are sent again"
    );
}

const SE: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: shop}
spec:
  hosts: [web.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: shop}
spec: {address: 10.0.0.1, labels: {app: web}}
";

async fn shared(mesh: Mesh, a: &ProxyNode, b: &ProxyNode) -> bool {
    let state = Arc::new(MeshState::new(
        1,
        Arc::new(mesh),
        Arc::default(),
        Arc::new(Semaphore::new(1)),
    ));
    let (x, y) = (state.snapshot(a).await, state.snapshot(b).await);
    // Sharing must never change what a proxy gets.
    assert_eq!(
        x.resources(),
        translate::translate(&state.mesh, a),
        "shared translation differs from {}'s own",
        a.id
    );
    assert_eq!(
        y.resources(),
        translate::translate(&state.mesh, b),
        "shared translation differs from {}'s own",
        b.id
    );
    Arc::ptr_eq(&x, &y)
}

#[tokio::test]
async fn proxies_without_a_workload_share_a_translation_whatever_their_name_and_ip() {
    use crate::translate::testing::{mesh, sidecar};
    let a = sidecar("shop", "client-a", "10.9.0.1", &[("app", "client")]);
    let b = sidecar("shop", "client-b", "10.9.0.2", &[("app", "client")]);
    assert!(shared(mesh(SE), &a, &b).await);

    // Another namespace, other labels or another address family: translated separately.
    let other_ns = sidecar("bank", "client-a", "10.9.0.1", &[("app", "client")]);
    assert!(!shared(mesh(SE), &a, &other_ns).await);
    let other_labels = sidecar("shop", "client-b", "10.9.0.2", &[("app", "other")]);
    assert!(!shared(mesh(SE), &a, &other_labels).await);
    let v6 = sidecar("shop", "client-b", "fd00::2", &[("app", "client")]);
    assert!(!shared(mesh(SE), &a, &v6).await);
}

#[tokio::test]
async fn proxies_the_registry_knows_or_that_bind_their_address_are_translated_alone() {
    use crate::translate::testing::{mesh, sidecar};
    let client = sidecar("shop", "client-b", "10.9.0.2", &[("app", "web")]);
    // Found by name, and by address: their inbound listeners are theirs.
    let by_name = sidecar("shop", "web-1", "10.9.0.1", &[("app", "web")]);
    assert!(!shared(mesh(SE), &by_name, &client).await);
    let by_ip = sidecar("shop", "web-x", "10.0.0.1", &[("app", "web")]);
    assert!(!shared(mesh(SE), &by_ip, &client).await);

    // A Sidecar with ingress listeners binds the node's address.
    let sc = format!(
        "{SE}---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: default, namespace: shop}}
spec:
  ingress:
  - port: {{number: 9080, protocol: HTTP, name: http}}
    defaultEndpoint: 0.0.0.0:9080
"
    );
    let a = sidecar("shop", "client-a", "10.9.0.1", &[("app", "client")]);
    let b = sidecar("shop", "client-b", "10.9.0.2", &[("app", "client")]);
    assert!(!shared(mesh(&sc), &a, &b).await);
}

#[test]
fn delta_same_snapshot_again_is_quiet_but_a_resubscribed_missing_name_is_reported_again() {
    let interner = Arc::new(Interner::default());
    let s = Arc::new(interner.snapshot(snap(&[("a", 1)])));
    let mut st = DeltaStream::new(interner.clone());
    let (_, out) = st.on_request(&dreq(TypeUrl::Endpoint, &["a", "gone"], &[], ""), &s);
    assert_eq!(out[0].resources.len(), 1);
    assert_eq!(out[0].removed_resources, vec!["gone".to_string()]);
    // The same content again (a new generation that changed other proxies' resources).
    let again = interner.snapshot(snap(&[("a", 1)]));
    assert!(Arc::ptr_eq(
        again.shared(TypeUrl::Endpoint),
        s.shared(TypeUrl::Endpoint)
    ));
    assert!(st.on_snapshot(&again).is_empty());
    // Dropping and asking again for the missing name: told again.
    let (_, out) = st.on_request(&dreq(TypeUrl::Endpoint, &[], &["gone"], ""), &again);
    assert!(out.is_empty());
    let (_, out) = st.on_request(&dreq(TypeUrl::Endpoint, &["gone"], &[], ""), &again);
    assert_eq!(out[0].removed_resources, vec!["gone".to_string()]);
    assert!(out[0].resources.is_empty(), "a is still held");
    // Dropping a held name and asking again: sent again.
    let (_, out) = st.on_request(&dreq(TypeUrl::Endpoint, &[], &["a"], ""), &again);
    assert!(out.is_empty());
    let (_, out) = st.on_request(&dreq(TypeUrl::Endpoint, &["a"], &[], ""), &again);
    assert_eq!(out[0].resources.len(), 1);
}

#[test]
fn interned_subscriptions_and_types_are_shared() {
    let interner = Interner::default();
    let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let a = interner.names(set(&["x", "y"]));
    let b = interner.names(set(&["y", "x"]));
    assert!(Arc::ptr_eq(&a, &b));
    assert!(!Arc::ptr_eq(&a, &interner.names(set(&["x"]))));

    let one = interner.snapshot(snap(&[("a", 1)]));
    let two = interner.snapshot(snap(&[("a", 2)]));
    assert!(Arc::ptr_eq(
        one.shared(TypeUrl::Listener),
        two.shared(TypeUrl::Listener)
    ));
    assert!(!Arc::ptr_eq(
        one.shared(TypeUrl::Cluster),
        two.shared(TypeUrl::Cluster)
    ));
    // SotW streams subscribed to the same names get the same memoized version.
    let sel = Some(a);
    assert_eq!(
        one.of(TypeUrl::Cluster).version_of(&sel),
        snapshot::set_version(one.of(TypeUrl::Cluster).select(sel.as_deref()))
    );
}
