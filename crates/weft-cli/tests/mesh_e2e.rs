//! Istio's traffic-management tasks, end to end: `weft control` serves Istio YAML to sidecars
//! (real Envoy bootstrapped like istio-proxy, and weft's own proxy), which route real requests
//! to test upstreams on loopback. Each scenario runs with both sidecars and expects the outcome
//! Istio's task documents; every test also asserts that no proxy rejected (NACKed) anything.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod mesh;

use std::collections::BTreeMap;
use std::time::Duration;

use mesh::{ControlPlane, Kind, Net, Sidecar, Workload, sidecar};
use weft_test_support::{
    HttpServer, HttpServerHandle, HttpVersion, LoadConfig, TestPki, TestResponse, http1_get,
    https_get, load_with,
};

/// `reviews` v1/v2/v3 behind a ServiceEntry, a client whose Sidecar (captureMode NONE) gives
/// it an egress listener on {{NET}}.1.1:9080, and the subsets.
const BASE: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: demo}
spec:
  hosts: [reviews.demo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP, targetPort: 8080}]
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: demo}
spec: {address: "{{NET}}.2.1", labels: {app: reviews, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: demo}
spec: {address: "{{NET}}.2.2", labels: {app: reviews, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v3, namespace: demo}
spec: {address: "{{NET}}.2.3", labels: {app: reviews, version: v3}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client, namespace: demo}
spec:
  workloadSelector: {labels: {app: client}}
  egress:
  - port: {number: 9080, protocol: HTTP, name: http}
    bind: "{{NET}}.1.1"
    captureMode: NONE
    hosts: ["./*"]
---
"#;

const SUBSETS: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: demo}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
---
"#;

struct Env {
    net: Net,
    cp: ControlPlane,
    client: Sidecar,
    upstreams: BTreeMap<&'static str, HttpServerHandle>,
}

impl Env {
    /// Starts upstreams, the control plane on `BASE` + `extra`, and the client's sidecar;
    /// `None` when the sidecar kind is unavailable here (Envoy not installed, outside CI).
    async fn start(kind: Kind, extra: &str) -> Option<Env> {
        let net = Net::new();
        let mut upstreams = BTreeMap::new();
        for (i, v) in ["v1", "v2", "v3"].into_iter().enumerate() {
            let server = HttpServer::builder()
                .name(v)
                .bind(net.addr(2, i as u8 + 1, 8080))
                .start()
                .await;
            upstreams.insert(v, server);
        }
        let cp = ControlPlane::start(net, &format!("{BASE}{extra}")).await;
        let client = sidecar(
            kind,
            &cp,
            &Workload {
                name: "client",
                namespace: "demo",
                ip: net.ip(1, 1),
                labels: &[("app", "client")],
                router: false,
            },
        )
        .await?;
        cp.wait_synced(1).await;
        Some(Env {
            net,
            cp,
            client,
            upstreams,
        })
    }

    async fn apply(&self, extra: &str) {
        self.cp.apply(&format!("{BASE}{extra}")).await;
    }

    async fn get(&self, headers: &[(&str, &str)]) -> TestResponse {
        self.get_path("/", headers).await
    }

    async fn get_path(&self, path: &str, headers: &[(&str, &str)]) -> TestResponse {
        tokio::time::timeout(
            Duration::from_secs(15),
            http1_get(self.net.addr(1, 1, 9080), "reviews", path, headers),
        )
        .await
        .expect("request timed out")
        .expect("request failed")
    }

    /// `n` requests: how many each upstream answered (`status:<code>` for non-2xx).
    async fn spread(&self, n: usize, headers: &[(&str, &str)]) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for _ in 0..n {
            let r = self.get(headers).await;
            let key = match (r.status.as_u16(), r.served_by()) {
                (200, Some(s)) => s.to_owned(),
                (status, _) => format!("status:{status}"),
            };
            *out.entry(key).or_default() += 1;
        }
        out
    }

    /// `requests` GETs of `reviews` through the client's sidecar, `concurrency` connections.
    fn load(&self, requests: usize, concurrency: usize) -> LoadConfig {
        let mut load = LoadConfig::new(self.net.addr(1, 1, 9080), requests, concurrency);
        load.host = "reviews".into();
        load
    }

    /// Continuous traffic while the test changes things: 300 req/s on 4 connections.
    fn steady_load(&self, requests: usize) -> LoadConfig {
        let mut load = self.load(requests, 4);
        load.rate = Some(300);
        load.max_duration = Duration::from_secs(20);
        load
    }

    async fn finish(self) {
        self.cp.assert_no_nacks().await;
        drop(self.client);
    }
}

macro_rules! both {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn envoy() {
                super::$scenario(super::Kind::Envoy).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn envoy_delta() {
                super::$scenario(super::Kind::EnvoyDelta).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn weft() {
                super::$scenario(super::Kind::Weft).await;
            }
        }
    };
}

/// Istio task "Request routing": the user `jason` gets v2, everyone else v1.
async fn header_routing(kind: Kind) {
    let vs = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: demo}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
"#;
    let Some(env) = Env::start(kind, &format!("{SUBSETS}{vs}")).await else {
        return;
    };
    let jason = env.spread(10, &[("end-user", "jason")]).await;
    assert_eq!(jason, BTreeMap::from([("v2".to_owned(), 10)]));
    let others = env.spread(10, &[("end-user", "alice")]).await;
    assert_eq!(others, BTreeMap::from([("v1".to_owned(), 10)]));
    let anonymous = env.spread(10, &[]).await;
    assert_eq!(anonymous, BTreeMap::from([("v1".to_owned(), 10)]));

    // The sidecar's admin /config_dump shows what it runs from the control plane, in Envoy's
    // shape (what `istioctl proxy-config` reads).
    let dump = http1_get(env.client.admin, "admin", "/config_dump", &[])
        .await
        .unwrap()
        .json();
    let section = |ty: &str, key: &str| -> Vec<serde_json::Value> {
        dump["configs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["@type"].as_str().unwrap().ends_with(&format!(".{ty}")))
            .and_then(|c| c[key].as_array().cloned())
            .unwrap_or_default()
    };
    let routes: Vec<String> = section("RoutesConfigDump", "dynamic_route_configs")
        .iter()
        .map(|r| r["route_config"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        routes.contains(&format!("{}:9080", env.net.ip(1, 1))),
        "{routes:?}"
    );
    let clusters: Vec<String> = section("ClustersConfigDump", "dynamic_active_clusters")
        .iter()
        .map(|c| c["cluster"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        clusters.contains(&"outbound|9080|v2|reviews.demo.svc.cluster.local".to_owned()),
        "{clusters:?}"
    );
    env.finish().await;
}
both!(header_routing);

fn weighted(v1: u32, v3: u32) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: demo}}
spec:
  hosts: [reviews]
  http:
  - route:
    - {{destination: {{host: reviews, subset: v1}}, weight: {v1}}}
    - {{destination: {{host: reviews, subset: v3}}, weight: {v3}}}
"#
    )
}

/// Istio task "Traffic shifting": 50/50 between v1 and v3, then all to v3.
async fn traffic_shifting(kind: Kind) {
    let Some(env) = Env::start(kind, &format!("{SUBSETS}{}", weighted(50, 50))).await else {
        return;
    };
    let spread = env.spread(200, &[]).await;
    let (v1, v3) = (
        spread.get("v1").copied().unwrap_or(0),
        spread.get("v3").copied().unwrap_or(0),
    );
    assert_eq!(v1 + v3, 200, "{spread:?}");
    // Binomial(200, 0.5): 60..=140 is more than 5 standard deviations wide.
    assert!((60..=140).contains(&v1), "50/50 split gave {spread:?}");

    env.apply(&format!("{SUBSETS}{}", weighted(0, 100))).await;
    let spread = env.spread(50, &[]).await;
    assert_eq!(spread, BTreeMap::from([("v3".to_owned(), 50)]));
    env.finish().await;
}
both!(traffic_shifting);

/// Istio task "Request timeouts": a 0.5 s route timeout cuts off a 3 s upstream with 504.
async fn request_timeout(kind: Kind) {
    let vs = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: demo}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v2}}]
    timeout: 0.5s
"#;
    let Some(env) = Env::start(kind, &format!("{SUBSETS}{vs}")).await else {
        return;
    };
    let fast = env.get(&[]).await;
    assert_eq!(fast.status.as_u16(), 200);
    let started = std::time::Instant::now();
    let slow = env.get(&[("x-test-delay-ms", "3000")]).await;
    let took = started.elapsed();
    assert_eq!(slow.status.as_u16(), 504, "{}", slow.text());
    assert!(
        took < Duration::from_millis(2500),
        "timeout fired after {took:?}"
    );
    env.finish().await;
}
both!(request_timeout);

/// Istio task "Fault injection": jason gets a 1 s delay, and an HTTP 500 abort on another
/// path; other users are untouched.
async fn fault_injection(kind: Kind) {
    let vs = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: demo}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}, uri: {prefix: /abort}}]
    fault: {abort: {httpStatus: 500, percentage: {value: 100}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{headers: {end-user: {exact: jason}}}]
    fault: {delay: {fixedDelay: 1s, percentage: {value: 100}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - route: [{destination: {host: reviews, subset: v1}}]
"#;
    let Some(env) = Env::start(kind, &format!("{SUBSETS}{vs}")).await else {
        return;
    };
    let aborted = env.get_path("/abort", &[("end-user", "jason")]).await;
    assert_eq!(aborted.status.as_u16(), 500);
    assert_eq!(
        aborted.served_by(),
        None,
        "an abort never reaches the upstream"
    );
    let started = std::time::Instant::now();
    let delayed = env.get(&[("end-user", "jason")]).await;
    assert_eq!(delayed.status.as_u16(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "no delay: {:?}",
        started.elapsed()
    );
    let started = std::time::Instant::now();
    let other = env.get_path("/abort", &[("end-user", "alice")]).await;
    assert_eq!(other.status.as_u16(), 200);
    assert!(started.elapsed() < Duration::from_millis(900));
    env.finish().await;
}
both!(fault_injection);

/// Retries hide a flaky upstream: the first two attempts fail with 503, the caller sees 200.
async fn retries(kind: Kind) {
    let vs = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: demo}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v1}}]
    retries: {attempts: 3, retryOn: 5xx, perTryTimeout: 2s}
"#;
    let Some(env) = Env::start(kind, &format!("{SUBSETS}{vs}")).await else {
        return;
    };
    env.upstreams["v1"].fail_next(2, 503);
    let before = env.upstreams["v1"].request_count();
    let r = env.get(&[]).await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(
        env.upstreams["v1"].request_count() - before,
        3,
        "two retries"
    );
    env.finish().await;
}
both!(retries);

/// Istio task "Circuit breaking": one connection, one pending request; a burst of concurrent
/// requests overflows and is answered 503 with `x-envoy-overloaded`.
async fn circuit_breaking(kind: Kind) {
    let dr = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: demo}
spec:
  host: reviews
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}
  subsets:
  - {name: v1, labels: {version: v1}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: demo}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v1}}]
"#;
    let Some(env) = Env::start(kind, dr).await else {
        return;
    };
    let mut load = env.load(40, 10);
    load.headers = vec![("x-test-delay-ms".into(), "200".into())];
    load.max_duration = Duration::from_secs(30);
    let report = load_with(load).await;
    let overflow = report.statuses.get(&503).copied().unwrap_or(0);
    assert!(report.ok > 0, "{report:?}");
    assert!(overflow > 0, "no request overflowed: {:?}", report.statuses);
    env.finish().await;
}
both!(circuit_breaking);

/// Istio task "Mirroring": all traffic to v1, mirrored to v2; callers see v1's answers, v2
/// receives the copies with the `-shadow` authority.
async fn mirroring(kind: Kind) {
    let vs = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: demo}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v1}, weight: 100}]
    mirror: {host: reviews, subset: v2}
    mirrorPercentage: {value: 100.0}
"#;
    let Some(env) = Env::start(kind, &format!("{SUBSETS}{vs}")).await else {
        return;
    };
    let spread = env.spread(10, &[]).await;
    assert_eq!(spread, BTreeMap::from([("v1".to_owned(), 10)]));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while env.upstreams["v2"].request_count() < 10 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(env.upstreams["v2"].request_count(), 10);
    let copy = env.upstreams["v2"].last_request().unwrap();
    assert!(
        copy.header("host").unwrap_or_default().ends_with("-shadow"),
        "mirrored authority: {:?}",
        copy.header("host")
    );
    env.finish().await;
}
both!(mirroring);

/// Outlier detection: a host that answers 500 is ejected after one error and the rest of the
/// traffic goes to the healthy hosts.
async fn outlier_ejection(kind: Kind) {
    let dr = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: demo}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection:
      consecutive5xxErrors: 1
      interval: 100ms
      baseEjectionTime: 60s
      maxEjectionPercent: 50
"#;
    let Some(env) = Env::start(kind, dr).await else {
        return;
    };
    env.upstreams["v1"].fail_next(1000, 500);
    // Until v1 is ejected, some requests hit it; afterwards none do.
    let _ = env.spread(10, &[]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let spread = env.spread(30, &[]).await;
    assert_eq!(
        spread.get("status:500"),
        None,
        "v1 was not ejected: {spread:?}"
    );
    assert_eq!(spread.values().sum::<usize>(), 30);
    env.finish().await;
}
both!(outlier_ejection);

/// A configuration change under continuous load fails no request.
async fn change_under_load(kind: Kind) {
    let Some(env) = Env::start(kind, &format!("{SUBSETS}{}", weighted(100, 0))).await else {
        return;
    };
    let running = tokio::spawn(load_with(env.steady_load(1500)));
    tokio::time::sleep(Duration::from_millis(800)).await;
    env.apply(&format!("{SUBSETS}{}", weighted(50, 50))).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    env.apply(&format!("{SUBSETS}{}", weighted(0, 100))).await;
    let report = running.await.unwrap();
    assert_eq!(
        report.failed, 0,
        "{:?} {:?}",
        report.statuses, report.errors
    );
    assert!(
        report.served_by.contains_key("v1") && report.served_by.contains_key("v3"),
        "{:?}",
        report.served_by
    );
    // Route updates reach running connections (as RDS does in Envoy): nobody reconnects.
    assert_eq!(
        report.connections, 4,
        "connections were replaced by a route change"
    );
    env.finish().await;
}
both!(change_under_load);

/// Killing the control plane under load fails no request; after a restart the proxy resyncs
/// and follows new configuration.
async fn control_plane_restart(kind: Kind) {
    let Some(mut env) = Env::start(kind, &format!("{SUBSETS}{}", weighted(100, 0))).await else {
        return;
    };
    let running = tokio::spawn(load_with(env.steady_load(1200)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.cp.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Change the configuration while the control plane is down, then bring it back.
    std::fs::write(
        env.cp.dir.join("config/mesh.yaml"),
        env.net
            .render(&format!("{BASE}{SUBSETS}{}", weighted(0, 100))),
    )
    .unwrap();
    env.cp.restart().await;
    env.cp.wait_synced(1).await;
    let report = running.await.unwrap();
    assert_eq!(
        report.failed, 0,
        "{:?} {:?}",
        report.statuses, report.errors
    );
    let spread = env.spread(20, &[]).await;
    assert_eq!(spread, BTreeMap::from([("v3".to_owned(), 20)]));
    env.finish().await;
}
both!(control_plane_restart);

/// Istio task "Ingress gateways": a Gateway with an HTTP server and an HTTPS (SIMPLE, certificate
/// from files) server on bound addresses, VirtualServices bound to it routing by path to
/// subsets; the gateway proxy routes accordingly and answers 404 for unknown hosts.
async fn ingress_gateway(kind: Kind) {
    let pki = TestPki::new();
    let cert = pki.server_cert(&["bookinfo.example.com"]);
    let config = format!(
        r#"{SUBSETS}
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: bookinfo-gateway, namespace: demo}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 8080, name: http, protocol: HTTP}}
    bind: "{{{{NET}}}}.3.1"
    hosts: ["bookinfo.example.com"]
  - port: {{number: 8443, name: https, protocol: HTTPS}}
    bind: "{{{{NET}}}}.3.1"
    hosts: ["bookinfo.example.com"]
    tls: {{mode: SIMPLE, serverCertificate: "{cert}", privateKey: "{key}"}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: bookinfo, namespace: demo}}
spec:
  hosts: ["bookinfo.example.com"]
  gateways: [bookinfo-gateway]
  http:
  - match: [{{uri: {{prefix: /v2}}}}]
    route: [{{destination: {{host: reviews.demo.svc.cluster.local, subset: v2, port: {{number: 9080}}}}}}]
  - route: [{{destination: {{host: reviews.demo.svc.cluster.local, subset: v1, port: {{number: 9080}}}}}}]
"#,
        cert = cert.cert_path.display(),
        key = cert.key_path.display(),
    );
    let Some(env) = Env::start(kind, &config).await else {
        return;
    };
    let Some(_gateway) = sidecar(
        kind,
        &env.cp,
        &Workload {
            name: "ingressgateway",
            namespace: "demo",
            ip: env.net.ip(3, 1),
            labels: &[("istio", "ingressgateway")],
            router: true,
        },
    )
    .await
    else {
        return;
    };
    env.cp.wait_synced(2).await;
    let http = env.net.addr(3, 1, 8080);
    let r = http1_get(http, "bookinfo.example.com", "/v2/x", &[])
        .await
        .unwrap();
    assert_eq!((r.status.as_u16(), r.served_by()), (200, Some("v2")));
    let r = http1_get(http, "bookinfo.example.com", "/", &[])
        .await
        .unwrap();
    assert_eq!((r.status.as_u16(), r.served_by()), (200, Some("v1")));
    let r = http1_get(http, "other.example.com", "/", &[])
        .await
        .unwrap();
    assert_eq!(r.status.as_u16(), 404);

    let tls = pki.client_tls("bookinfo.example.com", None);
    let r = https_get(
        env.net.addr(3, 1, 8443),
        HttpVersion::Http1,
        &tls,
        "bookinfo.example.com",
        "/v2/secure",
        &[],
    )
    .await
    .unwrap();
    assert_eq!((r.status.as_u16(), r.served_by()), (200, Some("v2")));
    env.finish().await;
}
both!(ingress_gateway);

/// Both ends meshed without capture: the client's sidecar sends to the reviews workload's
/// sidecar (a Sidecar ingress listener on the workload's address, port 9080), which forwards
/// to the application on `defaultEndpoint` (the workload's own address, port 8081).
async fn two_hops(kind: Kind) {
    let config = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: demo}
spec:
  hosts: [ratings.demo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-v1, namespace: demo}
spec: {address: "{{NET}}.4.1", labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: ratings, namespace: demo}
spec:
  workloadSelector: {labels: {app: ratings}}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: http}
    defaultEndpoint: "0.0.0.0:8081"
    captureMode: NONE
  egress:
  - hosts: ["./*"]
    captureMode: NONE
    port: {number: 9999, protocol: HTTP, name: unused}
    bind: "{{NET}}.4.1"
"#;
    let Some(env) = Env::start(kind, config).await else {
        return;
    };
    let app = HttpServer::builder()
        .name("ratings-app")
        .bind(env.net.addr(4, 1, 8081))
        .start()
        .await;
    let Some(ratings) = sidecar(
        kind,
        &env.cp,
        &Workload {
            name: "ratings-v1",
            namespace: "demo",
            ip: env.net.ip(4, 1),
            labels: &[("app", "ratings")],
            router: false,
        },
    )
    .await
    else {
        return;
    };
    env.cp.wait_synced(2).await;
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        http1_get(env.net.addr(1, 1, 9080), "ratings", "/ratings/1", &[]),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert_eq!(r.served_by(), Some("ratings-app"));
    let seen = app.last_request().unwrap();
    assert_eq!(seen.path, "/ratings/1");
    // The request went through the ratings sidecar's inbound cluster.
    let stats = http1_get(ratings.admin, "admin", "/stats", &[])
        .await
        .unwrap()
        .text();
    let inbound = stats
        .lines()
        .find_map(|l| l.strip_prefix("cluster.inbound|9080||.upstream_rq_total: "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert_eq!(inbound, Some(1), "inbound stats:\n{stats}");
    env.finish().await;
}
both!(two_hops);

/// A change that fails validation is rejected with file, line and field; the last good
/// configuration keeps serving and no proxy sees the bad version.
async fn invalid_change_keeps_last_good(kind: Kind) {
    let Some(env) = Env::start(kind, &format!("{SUBSETS}{}", weighted(100, 0))).await else {
        return;
    };
    let reloads = env.cp.get("/debug/config_status").await["reloads"]
        .as_u64()
        .unwrap();
    let generation = env.cp.generation().await;
    // A negative weight fails validation.
    std::fs::write(
        env.cp.dir.join("config/mesh.yaml"),
        env.net.render(
            &format!("{BASE}{SUBSETS}{}", weighted(0, 100)).replace("weight: 100", "weight: -5"),
        ),
    )
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        let s = env.cp.get("/debug/config_status").await;
        if s["reloads"].as_u64().unwrap() > reloads {
            break s;
        }
        assert!(tokio::time::Instant::now() < deadline, "no reload: {s:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let rejected = &status["rejected"][0];
    assert_eq!(
        rejected["resource"], "VirtualService demo/reviews",
        "{status:#}"
    );
    assert!(
        rejected["location"]
            .as_str()
            .unwrap()
            .contains("mesh.yaml:"),
        "{status:#}"
    );
    assert!(
        rejected["message"].as_str().unwrap().contains("weight"),
        "{status:#}"
    );
    assert_eq!(rejected["kept_last_good"], true);
    assert_eq!(
        env.cp.generation().await,
        generation,
        "nothing new was pushed"
    );
    let spread = env.spread(20, &[]).await;
    assert_eq!(spread, BTreeMap::from([("v1".to_owned(), 20)]));
    env.finish().await;
}
both!(invalid_change_keeps_last_good);
