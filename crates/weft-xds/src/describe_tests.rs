use std::collections::BTreeMap;

use super::*;
use crate::translate::testing::mesh;

const SERVICE: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 9080, name: http, protocol: HTTP}
  - {number: 9091, name: tcp-db}
  workloadSelector:
    labels: {app: reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: shop}
spec:
  address: 10.0.0.1
  labels: {app: reviews, version: v1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: shop}
spec:
  address: 10.0.0.2
  labels: {app: reviews, version: v2}
"#;

fn query(port: Option<u16>) -> Query {
    Query {
        host: "reviews".into(),
        namespace: "shop".into(),
        port,
        client: None,
    }
}

fn client(ns: &str, labels: &[(&str, &str)]) -> Option<Client> {
    Some(Client {
        namespace: ns.into(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    })
}

fn run(extra: &str, q: &Query) -> Report {
    let m = mesh(&format!("{SERVICE}---\n{extra}"));
    describe(&m, q).unwrap()
}

fn ignored<'r>(r: &'r Report, name: &str) -> &'r VsIgnored {
    r.ignored_virtual_services
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("{name} not ignored: {r:#?}"))
}

fn other_rule<'r>(r: &'r Report, name: &str) -> &'r RuleChoice {
    r.other_destination_rules
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("{name} not listed: {r:#?}"))
}

#[test]
fn service_ports_protocols_and_endpoints() {
    let r = run("", &query(None));
    assert_eq!(r.service.host, "reviews.shop.svc.cluster.local");
    assert_eq!(r.service.source, "ServiceEntry shop/reviews");
    assert_eq!(r.service.location.as_deref(), Some("test.yaml:2"));
    assert_eq!(r.service.resolution, "STATIC");
    let tcp = &r.service.ports[1];
    assert_eq!(
        (tcp.declared.as_str(), tcp.effective.as_str()),
        ("(not set)", "TCP")
    );
    let workloads: Vec<_> = r
        .service
        .endpoints
        .iter()
        .filter(|e| e.service_port == 9080)
        .map(|e| (e.workload.as_str(), e.address.as_str()))
        .collect();
    assert_eq!(
        workloads,
        [("reviews-v1", "10.0.0.1"), ("reviews-v2", "10.0.0.2")]
    );
    assert_eq!(r.client.namespace, "shop");
    assert!(r.destination_rule.is_none());
    // Istio's defaults: least request, unlimited circuit breakers, no TLS.
    let p = r.ports[0].policy.as_ref().unwrap();
    assert_eq!(p.cluster, "outbound|9080||reviews.shop.svc.cluster.local");
    assert_eq!(p.load_balancer, "LEAST_REQUEST");
    assert_eq!(p.circuit_breakers.max_connections, u32::MAX);
    assert_eq!(p.tls_mode, "DISABLE");
    assert!(p.outlier_detection.is_none());
}

#[test]
fn unknown_service_and_port_are_errors() {
    let m = mesh(SERVICE);
    let mut q = query(None);
    q.host = "ratings".into();
    assert_eq!(
        describe(&m, &q).unwrap_err(),
        DescribeError::UnknownService("ratings.shop.svc.cluster.local".into())
    );
    assert!(matches!(
        describe(&m, &query(Some(1))).unwrap_err(),
        DescribeError::UnknownPort { port: 1, .. }
    ));
}

const RULES: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: in-service-ns, namespace: shop}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool:
      tcp: {maxConnections: 100}
      http: {http1MaxPendingRequests: 10, http2MaxRequests: 50, maxRetries: 3}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}
    tls: {mode: ISTIO_MUTUAL}
  subsets:
  - {name: v1, labels: {version: v1}}
  - name: v3
    labels: {version: v3}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: later-same-host, namespace: shop}
spec:
  host: reviews.shop.svc.cluster.local
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: wildcard, namespace: shop}
spec:
  host: "*.shop.svc.cluster.local"
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: in-root, namespace: istio-system}
spec:
  host: reviews.shop.svc.cluster.local
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: elsewhere, namespace: other}
spec:
  host: reviews.shop.svc.cluster.local
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: private, namespace: shop}
spec:
  host: reviews
  exportTo: ["."]
"#;

#[test]
fn destination_rule_choice_and_why_others_lose() {
    let r = run(RULES, &query(None));
    let chosen = r.destination_rule.as_ref().unwrap();
    assert_eq!(chosen.name, "shop/in-service-ns");
    assert!(chosen.reason.contains("exact host"), "{}", chosen.reason);
    assert!(
        other_rule(&r, "shop/later-same-host")
            .reason
            .contains("comes first in load order")
    );
    assert!(
        other_rule(&r, "shop/wildcard")
            .reason
            .contains("more specific host")
    );
    let root = other_rule(&r, "istio-system/in-root");
    assert!(root.reason.contains("found first"), "{}", root.reason);
    assert!(
        other_rule(&r, "other/elsewhere")
            .reason
            .contains("neither the client's")
    );
    // Exported only to its own namespace: still applies to a client there, so it loses on load
    // order; from another namespace it is not visible.
    let mut q = query(None);
    q.client = client("frontend", &[]);
    let r = run(RULES, &q);
    let private = other_rule(&r, "shop/private");
    assert!(
        private.reason.contains("not exported"),
        "{}",
        private.reason
    );
    assert_eq!(private.location, "test.yaml:76");
}

#[test]
fn client_namespace_rule_wins_over_the_service_namespace() {
    let extra = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: mine, namespace: frontend}
spec:
  host: reviews.shop.svc.cluster.local
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: theirs, namespace: shop}
spec:
  host: reviews
"#;
    let mut q = query(None);
    q.client = client("frontend", &[]);
    let r = run(extra, &q);
    let chosen = r.destination_rule.as_ref().unwrap();
    assert_eq!(chosen.name, "frontend/mine");
    assert!(chosen.reason.contains("the client's namespace"));
    assert!(other_rule(&r, "shop/theirs").reason.contains("found first"));
}

#[test]
fn workload_selectors_decide_between_rules() {
    let extra = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: plain, namespace: shop}
spec:
  host: reviews
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: for-canary, namespace: shop}
spec:
  host: reviews
  workloadSelector:
    matchLabels: {track: canary}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: for-other-ns, namespace: frontend}
spec:
  host: reviews.shop.svc.cluster.local
  workloadSelector:
    matchLabels: {track: canary}
"#;
    let mut q = query(None);
    q.client = client("shop", &[("track", "canary")]);
    let r = run(extra, &q);
    assert_eq!(r.destination_rule.as_ref().unwrap().name, "shop/for-canary");
    assert!(
        other_rule(&r, "shop/plain")
            .reason
            .contains("has a workloadSelector matching the client")
    );
    assert!(
        other_rule(&r, "frontend/for-other-ns")
            .reason
            .contains("only applies to workloads in its own namespace")
    );

    q.client = client("shop", &[("track", "stable")]);
    let r = run(extra, &q);
    assert_eq!(r.destination_rule.as_ref().unwrap().name, "shop/plain");
    let sel = other_rule(&r, "shop/for-canary");
    assert!(
        sel.reason
            .contains("does not match the client's labels track=stable")
    );
}

#[test]
fn effective_policy_per_port_and_subset_and_empty_subsets() {
    let r = run(RULES, &query(Some(9080)));
    let port = &r.ports[0];
    let p = port.policy.as_ref().unwrap();
    assert_eq!(p.load_balancer, "ROUND_ROBIN");
    let cb = p.circuit_breakers;
    assert_eq!(
        (
            cb.max_connections,
            cb.max_pending_requests,
            cb.max_requests,
            cb.max_retries
        ),
        (100, 10, 50, 3)
    );
    let o = p.outlier_detection.unwrap();
    assert_eq!(o.consecutive_5xx, Some(5));
    assert_eq!(o.interval_ms, Some(10_000));
    assert_eq!(o.base_ejection_time_ms, Some(30_000));
    assert_eq!(o.max_ejection_percent, Some(50));
    assert_eq!(p.tls_mode, "ISTIO_MUTUAL");

    let v1 = &port.subsets[0];
    assert_eq!(v1.endpoints.len(), 1);
    assert_eq!(v1.endpoints[0].workload, "reviews-v1");
    assert_eq!(
        v1.policy.as_ref().unwrap().cluster,
        "outbound|9080|v1|reviews.shop.svc.cluster.local"
    );
    let v3 = &port.subsets[1];
    assert!(v3.endpoints.is_empty());
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("subset v3") && w.contains("selects no endpoints")),
        "{:?}",
        r.warnings
    );
    assert!(!r.warnings.iter().any(|w| w.contains("subset v1")));
}

const ROUTES: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: first, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match:
    - uri: {prefix: /api}
      headers:
        end-user: {exact: jason}
    route:
    - destination: {host: reviews, subset: v2}
  - route:
    - destination: {host: reviews, subset: v1}
  - match:
    - uri: {prefix: /never}
    route:
    - destination: {host: reviews, subset: v2}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: second, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  http:
  - route:
    - destination: {host: reviews}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: gateway-only, namespace: shop}
spec:
  hosts: [reviews]
  gateways: [ingress]
  http:
  - route:
    - destination: {host: reviews}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: private, namespace: shop}
spec:
  hosts: [reviews]
  exportTo: ["."]
  http:
  - route:
    - destination: {host: reviews}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wildcard, namespace: shop}
spec:
  hosts: ["*.shop.svc.cluster.local"]
  http:
  - route:
    - destination: {host: reviews}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: orphan-delegate, namespace: shop}
spec:
  http:
  - route:
    - destination: {host: reviews, subset: v1}
"#;

#[test]
fn applied_virtual_service_with_matches_destinations_and_dead_rules() {
    let r = run(ROUTES, &query(Some(9080)));
    assert_eq!(r.virtual_services.len(), 1, "{r:#?}");
    let vs = &r.virtual_services[0];
    assert_eq!(vs.name, "shop/first");
    assert_eq!(vs.ports, [9080]);
    assert_eq!(
        vs.http[0].matches,
        ["uri prefix /api, header end-user exact jason"]
    );
    assert_eq!(vs.http[0].destinations, ["reviews subset v2"]);
    assert!(vs.http[1].matches.is_empty());
    // Rule 2 comes after the catch-all rule 1: the analyzer's shadowing check says so.
    assert_eq!(vs.unreachable.len(), 1, "{:?}", vs.unreachable);
    assert!(
        vs.unreachable[0].contains("rule #2"),
        "{}",
        vs.unreachable[0]
    );
    let routes = r.ports[0].routes.as_ref().unwrap();
    assert_eq!(routes.virtual_service.as_deref(), Some("shop/first"));
    assert_eq!(routes.virtual_host, "reviews.shop.svc.cluster.local:9080");
    // Translation stops after the catch-all: two Envoy routes.
    assert_eq!(routes.envoy_routes.len(), 2);
    // The TCP port has no HTTP routes.
    let r = run(ROUTES, &query(None));
    assert!(r.ports[1].routes.is_none());
}

#[test]
fn why_virtual_services_do_not_apply() {
    let r = run(ROUTES, &query(Some(9080)));
    let second = ignored(&r, "shop/second");
    assert!(
        second.reason.contains("shadowed by shop/first"),
        "{}",
        second.reason
    );
    assert!(second.reason.contains("test.yaml:"), "{}", second.reason);
    let gw = ignored(&r, "shop/gateway-only");
    assert!(
        gw.reason.contains("bound only to gateways (shop/ingress)"),
        "{}",
        gw.reason
    );
    assert!(gw.location.starts_with("test.yaml:"));
    let wildcard = ignored(&r, "shop/wildcard");
    assert!(
        wildcard
            .reason
            .contains("names reviews.shop.svc.cluster.local exactly")
    );
    let delegate = ignored(&r, "shop/orphan-delegate");
    assert!(delegate.reason.contains("no VirtualService references"));
    // `private` is only exported to shop: a client in frontend does not see it.
    let mut q = query(Some(9080));
    q.client = client("frontend", &[]);
    let r = run(ROUTES, &q);
    let private = ignored(&r, "shop/private");
    assert!(
        private
            .reason
            .contains("not exported to the client's namespace frontend")
    );
}

#[test]
fn source_conditions_and_ports_that_skip_the_client() {
    let extra = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: for-canary, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match:
    - sourceLabels: {track: canary}
    route:
    - destination: {host: reviews, subset: v2}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: from-frontend, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match:
    - sourceNamespace: frontend
    route:
    - destination: {host: reviews}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: other-port, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match:
    - port: 9999
    route:
    - destination: {host: reviews}
"#;
    let r = run(extra, &query(Some(9080)));
    assert!(r.virtual_services.is_empty());
    assert!(
        ignored(&r, "shop/for-canary")
            .reason
            .contains("sourceLabels track=canary do not match the client's labels {}")
    );
    assert!(
        ignored(&r, "shop/from-frontend")
            .reason
            .contains("sourceNamespace frontend is not the client's namespace shop")
    );
    let port = ignored(&r, "shop/other-port");
    assert!(
        port.reason.contains("match.port 9999 only"),
        "{}",
        port.reason
    );
    assert!(port.location.starts_with("test.yaml:"));
    // Istio's default route is in force.
    let routes = r.ports[0].routes.as_ref().unwrap();
    assert!(routes.virtual_service.is_none());

    // A canary client gets the first one; the others are shadowed for it.
    let mut q = query(Some(9080));
    q.client = client("shop", &[("track", "canary")]);
    let r = run(extra, &q);
    assert_eq!(r.virtual_services[0].name, "shop/for-canary");
    assert!(
        ignored(&r, "shop/from-frontend")
            .reason
            .contains("shadowed")
    );
}

#[test]
fn delegates_apply_through_their_root() {
    let extra = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: root, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match:
    - uri: {prefix: /r}
    delegate: {name: leaf}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: leaf, namespace: shop}
spec:
  http:
  - route:
    - destination: {host: reviews, subset: v1}
"#;
    let r = run(extra, &query(Some(9080)));
    assert_eq!(r.virtual_services[0].name, "shop/root");
    assert_eq!(
        r.virtual_services[0].http[0].destinations,
        ["delegate ./leaf"]
    );
    let leaf = ignored(&r, "shop/leaf");
    assert!(
        leaf.reason.contains("apply only as part of shop/root"),
        "{}",
        leaf.reason
    );
}

#[test]
fn warnings_for_services_the_client_cannot_use() {
    let extra = r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: frontend}
spec:
  egress:
  - hosts: ["./*"]
"#;
    let mut q = query(None);
    q.client = client("frontend", &[]);
    let r = run(extra, &q);
    assert!(
        r.warnings.iter().any(|w| w.contains("egress hosts")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn route_origins_agree_with_the_real_route_table() {
    let m = mesh(&format!("{SERVICE}---\n{ROUTES}"));
    let q = query(Some(9080));
    let r = describe(&m, &q).unwrap();
    let table = route_table(&m, &q, 9080).unwrap();
    let vh = table
        .virtual_hosts
        .iter()
        .find(|v| v.name == "reviews.shop.svc.cluster.local:9080")
        .unwrap();
    let routes = r.ports[0].routes.as_ref().unwrap();
    assert_eq!(vh.routes.len(), routes.envoy_routes.len());
    let origin = r
        .route_origin("reviews.shop.svc.cluster.local:9080", 1)
        .unwrap();
    assert!(
        origin.starts_with("VirtualService shop/first spec.http[1] (test.yaml:"),
        "{origin}"
    );
    assert!(
        r.route_origin("reviews.shop.svc.cluster.local:9080", 5)
            .is_none()
    );
}
