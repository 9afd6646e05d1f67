//! `weft proxy` as an operator runs it: the real binary with bootstrap files, reloads under load,
//! SIGTERM draining, the admin interface, TCP and gRPC, and mTLS interop with Envoy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use weft_test_support::{
    ChildProcess, HttpServer, LoadConfig, TcpServer, TempDir, TestPki, free_port, grpc_unary,
    http1_get, load_with, require_envoy, tcp_roundtrip,
};

fn weft() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weft"))
}

fn addr(port: u16) -> SocketAddr {
    format!("127.0.0.1:{port}").parse().unwrap()
}

const ROUTER: &str = r#"          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}"#;

/// A bootstrap: HTTP listener on `listen` routing `/` to cluster `backend` at `upstream`,
/// admin on `admin`, plus `extra_listeners`/`extra_clusters` YAML.
fn bootstrap(
    listen: u16,
    admin: u16,
    upstream: SocketAddr,
    extra_listeners: &str,
    extra_clusters: &str,
) -> String {
    bootstrap_with(
        listen,
        admin,
        upstream,
        "",
        "",
        extra_listeners,
        extra_clusters,
    )
}

/// [`bootstrap`] plus `chain_extra` in the ingress filter chain (a transport socket) and
/// `cluster_extra` in the `backend` cluster.
fn bootstrap_with(
    listen: u16,
    admin: u16,
    upstream: SocketAddr,
    chain_extra: &str,
    cluster_extra: &str,
    extra_listeners: &str,
    extra_clusters: &str,
) -> String {
    format!(
        r#"admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
static_resources:
  listeners:
  - name: ingress
    address: {{socket_address: {{address: 127.0.0.1, port_value: {listen}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [{{match: {{prefix: /}}, route: {{cluster: backend}}}}]
{ROUTER}
{chain_extra}
{extra_listeners}
  clusters:
  - name: backend
    connect_timeout: 1s
    type: STATIC
    load_assignment:
      cluster_name: backend
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {}}}}}}}}}]}}]
{cluster_extra}
{extra_clusters}
"#,
        upstream.port()
    )
}

/// A [`bootstrap`] whose `backend` cluster speaks HTTP/2 (to a gRPC server).
fn http2_backend(bootstrap: &str) -> String {
    bootstrap.replace(
        "  - name: backend\n    connect_timeout: 1s\n",
        "  - name: backend\n    connect_timeout: 1s\n    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        explicit_http_config: {http2_protocol_options: {}}\n",
    )
}

async fn start_weft(file: &Path, listen: u16) -> ChildProcess {
    let mut cmd = Command::new(weft());
    cmd.args([
        "proxy",
        "--concurrency",
        "2",
        "-l",
        "info",
        "--drain-time-s",
        "3",
        "-c",
    ])
    .arg(file);
    let mut proc = ChildProcess::spawn(cmd);
    proc.wait_for_port(addr(listen), Duration::from_secs(20))
        .await;
    proc
}

#[tokio::test]
async fn config_changes_under_load_drop_no_request() {
    let v1 = HttpServer::start("v1").await;
    let v2 = HttpServer::start("v2").await;
    let dir = TempDir::new("reload");
    let file = dir.path().join("bootstrap.yaml");
    let (listen, admin) = (free_port(), free_port());
    std::fs::write(&file, bootstrap(listen, admin, v1.addr(), "", "")).unwrap();
    let _weft = start_weft(&file, listen).await;

    let mut cfg = LoadConfig::new(addr(listen), 1500, 8);
    cfg.rate = Some(500);
    cfg.max_duration = Duration::from_secs(20);
    let load = tokio::spawn(load_with(cfg));
    tokio::time::sleep(Duration::from_millis(800)).await;
    std::fs::write(&file, bootstrap(listen, admin, v2.addr(), "", "")).unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    // An invalid file is reported and ignored: the running configuration keeps serving.
    std::fs::write(
        &file,
        "static_resources: {listeners: [{name: x, bogus_field: 1}]}\n",
    )
    .unwrap();
    let report = load.await.unwrap();
    assert_eq!(
        report.failed, 0,
        "errors {:?}, statuses {:?}, served by {:?}",
        report.errors, report.statuses, report.served_by
    );
    assert_eq!(report.ok, 1500);
    assert!(
        report.served_by.get("v1").copied().unwrap_or(0) > 0,
        "{:?}",
        report.served_by
    );
    assert!(
        report.served_by.get("v2").copied().unwrap_or(0) > 0,
        "{:?}",
        report.served_by
    );
    let after = http1_get(addr(listen), "x", "/", &[]).await.unwrap();
    assert_eq!(after.served_by(), Some("v2"));
}

#[tokio::test]
async fn reading_the_bootstrap_does_not_reload_it() {
    // Loading the bootstrap opens it, and inotify reports opens: reacting to them made one
    // `cat bootstrap.yaml` start a reload every 200 ms that never stopped.
    let v1 = HttpServer::start("v1").await;
    let v2 = HttpServer::start("v2").await;
    let dir = TempDir::new("reread");
    let file = dir.path().join("bootstrap.yaml");
    let (listen, admin) = (free_port(), free_port());
    std::fs::write(&file, bootstrap(listen, admin, v1.addr(), "", "")).unwrap();
    let weft = start_weft(&file, listen).await;
    let reloads = || weft.stderr().matches("configuration reloaded").count();

    for _ in 0..3 {
        std::fs::read(&file).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(reloads(), 0, "{}", weft.tail(20));

    std::fs::write(&file, bootstrap(listen, admin, v2.addr(), "", "")).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while http1_get(addr(listen), "x", "/", &[])
        .await
        .unwrap()
        .served_by()
        != Some("v2")
    {
        assert!(tokio::time::Instant::now() < deadline, "{}", weft.tail(20));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(reloads(), 1, "{}", weft.tail(20));
}

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_then_exits() {
    let upstream = HttpServer::start("slow").await;
    let dir = TempDir::new("drain");
    let file = dir.path().join("bootstrap.yaml");
    let (listen, admin) = (free_port(), free_port());
    std::fs::write(&file, bootstrap(listen, admin, upstream.addr(), "", "")).unwrap();
    let mut proc = start_weft(&file, listen).await;
    let inflight = tokio::spawn(async move {
        http1_get(addr(listen), "x", "/", &[("x-test-delay-ms", "700")]).await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(proc.pid().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let resp = inflight.await.unwrap().unwrap();
    assert_eq!(resp.status, 200, "the in-flight request completes");
    let mut exited = None;
    for _ in 0..100 {
        exited = proc.try_wait();
        if exited.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        exited.is_some_and(|s| s.success()),
        "exits cleanly: {exited:?}"
    );
}

#[tokio::test]
async fn admin_reports_like_envoy() {
    let upstream = HttpServer::start("a").await;
    let dir = TempDir::new("admin");
    let file = dir.path().join("bootstrap.yaml");
    let (listen, admin) = (free_port(), free_port());
    std::fs::write(&file, bootstrap(listen, admin, upstream.addr(), "", "")).unwrap();
    let _weft = start_weft(&file, listen).await;
    assert_eq!(
        http1_get(addr(listen), "x", "/", &[]).await.unwrap().status,
        200
    );
    let get = |path: &'static str| async move {
        http1_get(addr(admin), "admin", path, &[]).await.unwrap()
    };
    let ready = get("/ready").await;
    assert_eq!((ready.status.as_u16(), ready.text().trim()), (200, "LIVE"));
    let prom = get("/stats/prometheus").await.text();
    assert!(
        prom.contains("envoy_cluster_upstream_rq_total{envoy_cluster_name=\"backend\"} 1"),
        "{prom}"
    );
    assert!(prom.contains("envoy_http_downstream_rq_xx{envoy_http_conn_manager_prefix=\"ingress_http\",envoy_response_code_class=\"2\"} 1"), "{prom}");
    let clusters = get("/clusters").await.text();
    assert!(
        clusters.contains(&format!(
            "backend::{}::health_flags::healthy",
            upstream.addr()
        )),
        "{clusters}"
    );
    let dump: serde_json::Value = serde_json::from_str(&get("/config_dump").await.text()).unwrap();
    assert_eq!(
        dump["configs"][0]["@type"],
        "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump"
    );
    assert_eq!(
        dump["configs"][1]["static_clusters"][0]["cluster"]["name"],
        "backend"
    );
    let listeners = get("/listeners").await.text();
    assert!(
        listeners.contains(&format!("ingress::127.0.0.1:{listen}")),
        "{listeners}"
    );
}

#[tokio::test]
async fn tcp_proxy_and_grpc_over_http2() {
    let echo = TcpServer::echo("127.0.0.1:0".parse().unwrap()).await;
    let grpc = HttpServer::builder().name("grpc").http2().start().await;
    let dir = TempDir::new("tcp-grpc");
    let file = dir.path().join("bootstrap.yaml");
    let (listen, admin, tcp_port) = (free_port(), free_port(), free_port());
    let tcp_listener = format!(
        r#"  - name: tcp
    address: {{socket_address: {{address: 127.0.0.1, port_value: {tcp_port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp
          cluster: echo"#
    );
    let clusters = format!(
        r#"  - name: echo
    connect_timeout: 1s
    type: STATIC
    load_assignment:
      cluster_name: echo
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {}}}}}}}}}]}}]"#,
        echo.addr().port()
    );
    // The HTTP cluster speaks HTTP/2 to the gRPC server.
    let text = http2_backend(&bootstrap(
        listen,
        admin,
        grpc.addr(),
        &tcp_listener,
        &clusters,
    ));
    std::fs::write(&file, text).unwrap();
    let _weft = start_weft(&file, listen).await;

    let echoed = tcp_roundtrip(addr(tcp_port), None, b"hello through tcp_proxy")
        .await
        .unwrap();
    assert_eq!(echoed, b"hello through tcp_proxy");

    let reply = grpc_unary(addr(listen), "/test.Echo/Unary", &[], &b"ping"[..])
        .await
        .unwrap();
    assert_eq!(reply.grpc_status, 0, "{reply:?}");
    assert_eq!(&reply.message()[..], b"ping");
    let failing = grpc_unary(
        addr(listen),
        "/test.Echo/Unary",
        &[("x-test-grpc-status", "14")],
        &b"x"[..],
    )
    .await
    .unwrap();
    assert_eq!(
        failing.grpc_status, 14,
        "trailers pass through: {failing:?}"
    );
}

/// A route's `max_stream_duration`: its 0.2 s ends a slow HTTP request with Envoy's 504, and
/// with `grpc_timeout_header_max` a gRPC call's `grpc-timeout` sets the limit (capped at 1 s),
/// answered `DEADLINE_EXCEEDED`, the capped value going upstream.
#[tokio::test]
async fn route_max_stream_duration_and_grpc_timeout() {
    let upstream = HttpServer::builder().name("backend").http2().start().await;
    let dir = TempDir::new("route-max-duration");
    let file = dir.path().join("bootstrap.yaml");
    let (listen, admin) = (free_port(), free_port());
    let text = http2_backend(&bootstrap(listen, admin, upstream.addr(), "", "")).replace(
        "route: {cluster: backend}",
        "route: {cluster: backend, max_stream_duration: \
             {max_stream_duration: 0.2s, grpc_timeout_header_max: 1s}}",
    );
    std::fs::write(&file, text).unwrap();
    let _weft = start_weft(&file, listen).await;

    let slow = http1_get(addr(listen), "x", "/", &[("x-test-delay-ms", "1000")])
        .await
        .unwrap();
    assert_eq!(slow.status, 504);
    assert_eq!(slow.text(), "downstream duration timeout");
    let quick = http1_get(addr(listen), "x", "/", &[("x-test-delay-ms", "20")])
        .await
        .unwrap();
    assert_eq!(quick.status, 200, "{}", quick.text());

    // The header's 100 ms ends the call.
    let short = grpc_unary(
        addr(listen),
        "/test.Echo/Unary",
        &[("grpc-timeout", "100m"), ("x-test-delay-ms", "1000")],
        &b"x"[..],
    )
    .await
    .unwrap();
    assert_eq!(short.grpc_status, 4, "{short:?}");
    assert_eq!(
        short.grpc_message.as_deref(),
        Some("downstream duration timeout")
    );
    // 5 s asked for, 1 s allowed: longer than the route's own duration, shorter than the call.
    let capped = grpc_unary(
        addr(listen),
        "/test.Echo/Unary",
        &[("grpc-timeout", "5S"), ("x-test-delay-ms", "400")],
        &b"ping"[..],
    )
    .await
    .unwrap();
    assert_eq!(capped.grpc_status, 0, "{capped:?}");
    assert_eq!(&capped.message()[..], b"ping");
    let seen = upstream.last_request().unwrap();
    assert_eq!(seen.headers["grpc-timeout"], "1000m");
    let too_long = grpc_unary(
        addr(listen),
        "/test.Echo/Unary",
        &[("grpc-timeout", "5S"), ("x-test-delay-ms", "1500")],
        &b"x"[..],
    )
    .await
    .unwrap();
    assert_eq!(too_long.grpc_status, 4, "{too_long:?}");
}

/// One hop's bootstrap for a sidecar pair: `client` side originates mTLS to `next`, `server`
/// side terminates it (requiring a client certificate with a SPIFFE ID) and forwards in clear.
fn hop(
    side: &str,
    listen: u16,
    admin: u16,
    next: SocketAddr,
    pki: &TestPki,
    server: &weft_test_support::TestCert,
    client: &weft_test_support::TestCert,
) -> String {
    let ca = pki.ca_path().display().to_string();
    let (listener_tls, cluster_tls) = match side {
        "server" => (
            format!(
                r#"      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_certificates: [{{certificate_chain: {{filename: "{}"}}, private_key: {{filename: "{}"}}}}]
            validation_context:
              trusted_ca: {{filename: "{ca}"}}
              match_typed_subject_alt_names: [{{san_type: URI, matcher: {{exact: "spiffe://cluster.local/ns/default/sa/client"}}}}]"#,
                server.cert_path.display(),
                server.key_path.display()
            ),
            String::new(),
        ),
        _ => (
            String::new(),
            format!(
                r#"    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: server.mesh.local
        common_tls_context:
          tls_certificates: [{{certificate_chain: {{filename: "{}"}}, private_key: {{filename: "{}"}}}}]
          validation_context:
            trusted_ca: {{filename: "{ca}"}}
            match_typed_subject_alt_names: [{{san_type: DNS, matcher: {{exact: server.mesh.local}}}}]"#,
                client.cert_path.display(),
                client.key_path.display()
            ),
        ),
    };
    bootstrap_with(listen, admin, next, &listener_tls, &cluster_tls, "", "")
}

async fn spawn_hop(bin: &str, file: &Path, listen: u16, envoy: Option<&Path>) -> ChildProcess {
    let cmd = match (bin, envoy) {
        ("envoy", Some(e)) => {
            let mut c = Command::new(e);
            c.args([
                "--concurrency",
                "1",
                "-l",
                "error",
                "--use-dynamic-base-id",
                "-c",
            ])
            .arg(file);
            c
        }
        _ => {
            let mut c = Command::new(weft());
            c.args(["proxy", "--concurrency", "1", "-l", "error", "-c"])
                .arg(file);
            c
        }
    };
    let mut p = ChildProcess::spawn(cmd);
    p.wait_for_port(addr(listen), Duration::from_secs(20)).await;
    p
}

#[tokio::test]
async fn mtls_sidecar_pairs_interoperate_with_envoy() {
    let Some(envoy) = require_envoy() else { return };
    let upstream = HttpServer::start("app").await;
    let pki = TestPki::new();
    let server_cert = pki.server_cert(&["server.mesh.local"]);
    let client_cert = pki.client_cert("spiffe://cluster.local/ns/default/sa/client");
    let wrong_client = pki.client_cert("spiffe://cluster.local/ns/default/sa/intruder");
    let dir = TempDir::new("mtls");
    for (client_bin, server_bin) in [("weft", "weft"), ("weft", "envoy"), ("envoy", "weft")] {
        let (c_listen, c_admin, s_listen, s_admin) =
            (free_port(), free_port(), free_port(), free_port());
        let s_file = dir
            .path()
            .join(format!("{client_bin}-{server_bin}-server.yaml"));
        let c_file = dir
            .path()
            .join(format!("{client_bin}-{server_bin}-client.yaml"));
        std::fs::write(
            &s_file,
            hop(
                "server",
                s_listen,
                s_admin,
                upstream.addr(),
                &pki,
                &server_cert,
                &client_cert,
            ),
        )
        .unwrap();
        std::fs::write(
            &c_file,
            hop(
                "client",
                c_listen,
                c_admin,
                addr(s_listen),
                &pki,
                &server_cert,
                &client_cert,
            ),
        )
        .unwrap();
        let _server = spawn_hop(server_bin, &s_file, s_listen, Some(&envoy)).await;
        let _client = spawn_hop(client_bin, &c_file, c_listen, Some(&envoy)).await;
        let resp = http1_get(addr(c_listen), "app", "/through", &[])
            .await
            .unwrap();
        assert_eq!(
            resp.status,
            200,
            "{client_bin} -> {server_bin}: {}",
            resp.text()
        );
        assert_eq!(resp.served_by(), Some("app"));

        // A client identity the server side does not accept fails the handshake.
        let bad_file = dir
            .path()
            .join(format!("{client_bin}-{server_bin}-bad.yaml"));
        let (b_listen, b_admin) = (free_port(), free_port());
        std::fs::write(
            &bad_file,
            hop(
                "client",
                b_listen,
                b_admin,
                addr(s_listen),
                &pki,
                &server_cert,
                &wrong_client,
            ),
        )
        .unwrap();
        let _bad = spawn_hop(client_bin, &bad_file, b_listen, Some(&envoy)).await;
        let denied = http1_get(addr(b_listen), "app", "/", &[]).await.unwrap();
        assert_eq!(
            denied.status, 503,
            "{client_bin} -> {server_bin} with a wrong identity"
        );
    }
}

/// `weft proxy` replaces itself with `weft-dataplane` (same pid, the smaller binary) when that
/// sits next to `weft`, and serves traffic from there.
#[tokio::test]
async fn weft_proxy_runs_in_the_dataplane_binary() {
    let dir = TempDir::new("weft-dataplane-exec");
    let upstream = HttpServer::start("v1").await;
    let (listen, admin) = (free_port(), free_port());
    let file = dir.path().join("bootstrap.yaml");
    std::fs::write(&file, bootstrap(listen, admin, upstream.addr(), "", "")).unwrap();
    let proc = start_weft(&file, listen).await;
    let exe = std::fs::read_link(format!("/proc/{}/exe", proc.pid())).unwrap();
    assert_eq!(
        exe.file_name().unwrap(),
        "weft-dataplane",
        "weft proxy still runs in {}",
        exe.display()
    );
    let resp = http1_get(addr(listen), "a", "/", &[]).await.unwrap();
    assert_eq!(resp.status, 200);
}

/// Without `weft-dataplane` beside it, `weft proxy` runs the proxy itself.
#[test]
fn weft_proxy_runs_in_process_without_the_dataplane_binary() {
    let dir = TempDir::new("weft-alone");
    let alone = dir.path().join("weft");
    std::fs::copy(weft(), &alone).unwrap();
    let file = dir.path().join("bootstrap.yaml");
    std::fs::write(&file, bootstrap(free_port(), free_port(), addr(9), "", "")).unwrap();
    let out = Command::new(&alone)
        .args(["proxy", "--validate", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("OK"),
        "{out:?}"
    );
    assert!(
        out.stderr.is_empty(),
        "no warning about a missing binary: {out:?}"
    );
}
