//! The decoded descriptors are dropped when idle and decoded again on the next use, with the
//! same results. Its own test binary: releasing the pool while other tests of the same process
//! hold descriptors outside an operation would mix two decodings.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use weft_proxy_config::{convert_bootstrap, parse_bootstrap, release_idle_descriptors};

const BOOTSTRAP: &str = r#"
static_resources:
  listeners:
  - name: web
    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                route: {cluster: app, timeout: 2s}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: app
    connect_timeout: 1s
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8080}}}
"#;

fn load() -> String {
    let path = Path::new("bootstrap.yaml");
    let bootstrap = parse_bootstrap(path, BOOTSTRAP).unwrap();
    format!(
        "{:?}",
        convert_bootstrap(&bootstrap, Path::new(".")).unwrap()
    )
}

#[test]
fn descriptors_are_released_when_idle_and_decoded_again_on_use() {
    let first = load();
    assert!(
        !release_idle_descriptors(Duration::from_secs(3600)),
        "used a moment ago: not idle for an hour"
    );
    assert!(release_idle_descriptors(Duration::ZERO), "idle: released");
    assert!(
        !release_idle_descriptors(Duration::ZERO),
        "nothing left to release"
    );
    // A bad value is still caught by the rules read from the re-decoded pool's options.
    let bad = BOOTSTRAP.replace("connect_timeout: 1s", "connect_timeout: -1s");
    let err = parse_bootstrap(Path::new("bootstrap.yaml"), &bad)
        .and_then(|b| convert_bootstrap(&b, Path::new(".")))
        .unwrap_err();
    assert!(err.to_string().contains("connect_timeout"), "{err}");
    assert_eq!(
        load(),
        first,
        "same configuration from freshly decoded descriptors"
    );
    assert!(release_idle_descriptors(Duration::ZERO));
}
