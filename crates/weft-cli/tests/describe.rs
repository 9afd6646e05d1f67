//! `weft describe service` as a user runs it: the real binary on files in a temporary directory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Output};

const CONFIG: &str = r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 9080, name: http, protocol: HTTP}
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
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 100}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
"#;

const ROUTES: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: reviews, subset: v2}
  - route:
    - destination: {host: reviews, subset: v1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-late, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  http:
  - route:
    - destination: {host: reviews, subset: v3}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-ingress, namespace: shop}
spec:
  hosts: [reviews]
  gateways: [public]
  http:
  - route:
    - destination: {host: reviews}
"#;

fn setup(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weft-describe-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("service.yaml"), CONFIG).unwrap();
    std::fs::write(dir.join("routes.yaml"), ROUTES).unwrap();
    dir
}

fn weft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .output()
        .expect("run weft")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn text_report_explains_what_applies_and_why_not() {
    let dir = setup("text");
    let d = dir.to_str().unwrap();
    let out = weft(&["describe", "service", "reviews", "-n", "shop", "-f", d]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    let routes = dir.join("routes.yaml");
    let routes = routes.display();
    let service = dir.join("service.yaml");
    let service = service.display();
    for line in [
        "Service: reviews.shop.svc.cluster.local (namespace shop)".to_owned(),
        format!("  Declared by ServiceEntry shop/reviews at {service}:1, resolution STATIC"),
        format!("DestinationRule: shop/reviews ({service}:31)"),
        "  Cluster outbound|9080||reviews.shop.svc.cluster.local: load balancer LEAST_REQUEST, TLS DISABLE".to_owned(),
        "    Circuit breakers: max connections 100, max pending requests unlimited, max requests unlimited, max retries unlimited".to_owned(),
        format!("  Subset v3 (version=v3) at {service}:38: 0 endpoint(s)"),
        "  Routes: virtual host reviews.shop.svc.cluster.local:9080, from VirtualService shop/reviews".to_owned(),
        format!("    http[0] ({routes}:7): when header end-user exact jason -> reviews subset v2"),
        format!("  shop/reviews-late ({routes}:19): shadowed by shop/reviews ({routes}:5), an earlier VirtualService for the same host: sidecars use only the first one (merge the rules into it)"),
        format!("  shop/reviews-ingress ({routes}:29): bound only to gateways (shop/public); add `mesh` to spec.gateways to apply it to sidecars"),
    ] {
        assert!(text.contains(&format!("{line}\n")), "missing {line:?} in:\n{text}");
    }
    assert!(text.contains("subset v3"), "{text}");
    assert!(text.contains("selects no endpoints on port 9080"), "{text}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn traced_requests_take_the_real_route() {
    let dir = setup("trace");
    let d = dir.to_str().unwrap();
    let routes = dir.join("routes.yaml");
    let out = weft(&[
        "describe",
        "service",
        "reviews.shop.svc.cluster.local",
        "-f",
        d,
        "--header",
        "end-user=jason",
        "--path",
        "/reviews/1",
    ]);
    let text = stdout(&out);
    assert!(
        text.contains(
            "  Outcome: forwarded to cluster outbound|9080|v2|reviews.shop.svc.cluster.local\n"
        ),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!(
            "  From: VirtualService shop/reviews spec.http[0].match[0] ({}:8)\n",
            routes.display()
        )),
        "{text}"
    );
    let out = weft(&[
        "describe", "service", "reviews", "-n", "shop", "-f", d, "--path", "/", "-o", "json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["trace"]["outcome"],
        "forwarded to cluster outbound|9080|v1|reviews.shop.svc.cluster.local"
    );
    assert_eq!(json["destination_rule"]["name"], "shop/reviews");
    assert_eq!(json["virtual_services"][0]["name"], "shop/reviews");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn client_labels_and_unknown_services() {
    let dir = setup("client");
    let d = dir.to_str().unwrap();
    let out = weft(&["describe", "service", "nope", "-n", "shop", "-f", d]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no service \"nope.shop.svc.cluster.local\"")
    );
    let out = weft(&[
        "describe",
        "service",
        "reviews",
        "-n",
        "shop",
        "-f",
        d,
        "--client-namespace",
        "web",
        "--client-label",
        "app=web",
        "-o",
        "json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["client"]["namespace"], "web");
    assert_eq!(json["client"]["labels"]["app"], "web");
    std::fs::remove_dir_all(&dir).ok();
}
