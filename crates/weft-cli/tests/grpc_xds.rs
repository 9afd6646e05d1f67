//! A stock proxyless gRPC client (gRPC Python, `grpcio`) resolving `xds:///` targets through
//! `weft control`: the client gets listeners, routes, clusters and endpoints from weft exactly
//! as it would from istiod, and its calls reach the subset the VirtualService names.
//!
//! Needs `WEFT_PYTHON_GRPC` (`scripts/install-test-deps`, then `. scripts/tool-paths`); skipped
//! with a message without it, except under `CI`, where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weft_test_support::{
    ChildProcess, HttpServer, HttpServerHandle, TempDir, free_addr, require_python_grpc,
    unique_loopback_ip,
};

const HOST: &str = "reviews.demo.svc.cluster.local";
const PORT: u16 = 9080;
const METHOD: &str = "/echo.Echo/Unary";
/// The client's node id, in Istio's sidecar form; `client.demo` in `weft proxy-status`.
const NODE_ID: &str = "sidecar~127.0.3.1~client.demo~demo.svc.cluster.local";

fn weft() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weft"))
}

fn client_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/grpc_xds/client.py")
}

/// The registry: `reviews` (gRPC on 9080) served by two WorkloadEntries, one per version, each
/// on its own loopback address and port.
fn registry(v1: SocketAddr, v2: SocketAddr) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews, namespace: demo}}
spec:
  hosts: [{HOST}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {PORT}, name: grpc, protocol: GRPC}}]
  workloadSelector:
    labels: {{app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: reviews-v1, namespace: demo}}
spec:
  address: {v1ip}
  labels: {{app: reviews, version: v1}}
  ports: {{grpc: {v1port}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: reviews-v2, namespace: demo}}
spec:
  address: {v2ip}
  labels: {{app: reviews, version: v2}}
  ports: {{grpc: {v2port}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: demo}}
spec:
  host: {HOST}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
"#,
        v1ip = v1.ip(),
        v1port = v1.port(),
        v2ip = v2.ip(),
        v2port = v2.port(),
    )
}

/// A VirtualService: requests with `x-fault: abort` fail with an injected UNAVAILABLE, those
/// with `x-user: jason` go to v1, everything else to `default`.
fn virtual_service(default: &str) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: demo}}
spec:
  hosts: [{HOST}]
  http:
  - match: [{{headers: {{x-fault: {{exact: abort}}}}}}]
    fault: {{abort: {{percentage: {{value: 100}}, grpcStatus: UNAVAILABLE}}}}
    route: [{{destination: {{host: {HOST}, subset: v1}}}}]
  - match: [{{headers: {{x-user: {{exact: jason}}}}}}]
    route: [{{destination: {{host: {HOST}, subset: v1}}}}]
  - route:
    - {{destination: {{host: {HOST}, subset: {default}}}, weight: 100}}
"#
    )
}

/// Writes `name` in `dir` atomically (the control plane watches the directory and must never
/// read half a file).
fn write_config(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// The gRPC xDS bootstrap (`GRPC_XDS_BOOTSTRAP`): weft as the xDS server, and a node that asks
/// for proxyless resources (`GENERATOR: grpc`), as istio-agent writes it for proxyless pods.
fn bootstrap(xds: SocketAddr) -> String {
    let doc = json!({
        "xds_servers": [{
            "server_uri": xds.to_string(),
            "channel_creds": [{"type": "insecure"}],
            "server_features": ["xds_v3"],
        }],
        "node": {
            "id": NODE_ID,
            "metadata": {
                "GENERATOR": "grpc",
                "NAMESPACE": "demo",
                "WORKLOAD_NAME": "client",
                "INSTANCE_IPS": "127.0.3.1",
                "LABELS": {"app": "client"},
            },
            "locality": {},
        },
    });
    serde_json::to_string_pretty(&doc).unwrap()
}

/// The outcome of one call.
#[derive(Debug)]
struct Call {
    served_by: Option<String>,
    code: String,
    details: String,
}

/// `served_by/code (details)` per call.
fn summary(calls: &[Call]) -> String {
    let parts: Vec<String> = calls
        .iter()
        .map(|c| {
            format!(
                "{}/{} ({})",
                c.served_by.as_deref().unwrap_or("-"),
                c.code,
                c.details
            )
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

/// The Python client: one long-lived channel to `xds:///reviews...:9080`, driven line by line.
struct GrpcClient {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: PathBuf,
}

impl GrpcClient {
    fn start(python: &Path, bootstrap: &Path, logs: &TempDir) -> Self {
        let stderr = logs.join("client.stderr");
        let mut child = Command::new(python)
            .arg(client_script())
            .arg(format!("xds:///{HOST}:{PORT}"))
            .arg(METHOD)
            .arg("120")
            .env("GRPC_XDS_BOOTSTRAP", bootstrap)
            // grpcio logs every xDS response it rejects (a NACK) and why.
            .env("GRPC_VERBOSITY", "debug")
            .env("GRPC_TRACE", "xds_client,xds_resolver")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", python.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
        }
    }

    /// Up to `n` unary calls with `metadata` (the client stops at the first failure); each
    /// waits for the channel to be ready, up to 10 s.
    fn calls(&mut self, n: usize, metadata: &[(&str, &str)]) -> Vec<Call> {
        let command = json!({"calls": n, "metadata": metadata, "timeout": 10});
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
        let mut out = Vec::new();
        loop {
            let line = match self
                .lines
                .recv_timeout(Duration::from_secs(10 * n as u64 + 10))
            {
                Ok(line) => line,
                Err(e) => panic!("the gRPC client stopped answering ({e})\n{}", self.log()),
            };
            let v: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("client printed {line:?}: {e}\n{}", self.log()));
            if v["done"].as_bool() == Some(true) {
                return out;
            }
            out.push(Call {
                served_by: v["served_by"].as_str().map(str::to_owned),
                code: v["code"].as_str().unwrap_or_default().to_owned(),
                details: v["details"].as_str().unwrap_or_default().to_owned(),
            });
        }
    }

    /// Panics unless all `n` calls succeed and `want` answers each.
    fn expect_all(&mut self, n: usize, metadata: &[(&str, &str)], want: &str) {
        let calls = self.calls(n, metadata);
        let ok = calls.len() == n
            && calls
                .iter()
                .all(|c| c.code == "OK" && c.served_by.as_deref() == Some(want));
        assert!(
            ok,
            "with {metadata:?} all {n} calls should reach {want}, got {}\n{}",
            summary(&calls),
            self.log()
        );
    }

    /// Panics unless all `n` calls fail with `code` without reaching a backend.
    fn expect_failure(&mut self, n: usize, metadata: &[(&str, &str)], code: &str) {
        for _ in 0..n {
            let calls = self.calls(1, metadata);
            assert!(
                calls.len() == 1 && calls[0].code == code && calls[0].served_by.is_none(),
                "with {metadata:?} the call should fail with {code}, got {}\n{}",
                summary(&calls),
                self.log()
            );
        }
    }

    /// The last lines of the client's log (gRPC's xDS client trace).
    fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "--- gRPC client log, last 60 lines ---\n{}",
            lines[lines.len().saturating_sub(60)..].join("\n")
        )
    }

    /// Lines where the gRPC xDS client reports a rejected (NACKed) resource.
    fn nacks(&self) -> Vec<String> {
        std::fs::read_to_string(&self.stderr)
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                let l = l.to_ascii_lowercase();
                l.contains("nack") || l.contains("invalid resource") || l.contains("rejected")
            })
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for GrpcClient {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log());
        }
        // Closing stdin ends the client; kill it if it does not go within a few seconds.
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `weft proxy-status -o json`.
fn proxy_status(monitoring: SocketAddr) -> Value {
    let out = Command::new(weft())
        .args(["proxy-status", "-o", "json", "--control-plane"])
        .arg(monitoring.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "weft proxy-status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Waits until `weft proxy-status` shows the gRPC client SYNCED on every type, and checks it
/// never rejected anything.
fn assert_synced(monitoring: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = proxy_status(monitoring);
        let client = status["proxies"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["proxy"] == NODE_ID)
            .cloned()
            .unwrap_or_else(|| panic!("the gRPC client is not in proxy-status: {status:#}"));
        for t in ["LDS", "RDS", "CDS", "EDS"] {
            let s = &client["types"][t];
            assert!(
                s["last_nack"].is_null() && s["rejections"].as_u64() == Some(0),
                "the gRPC client rejected {t}: {s:#}"
            );
        }
        let synced = ["LDS", "RDS", "CDS", "EDS"]
            .iter()
            .all(|t| client["types"][t]["status"] == "SYNCED");
        if synced {
            assert_eq!(client["mode"], "sotw", "{client:#}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the gRPC client is not SYNCED: {client:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Backends {
    v1: HttpServerHandle,
    v2: HttpServerHandle,
}

async fn backends() -> Backends {
    let start = |name: &'static str| async move {
        HttpServer::builder()
            .name(name)
            .bind(SocketAddr::new(unique_loopback_ip(), 0))
            .http2()
            .start()
            .await
    };
    Backends {
        v1: start("v1").await,
        v2: start("v2").await,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_python_client_follows_virtual_service_subsets() {
    let Some(python) = require_python_grpc() else {
        return;
    };
    let backends = backends().await;
    let dir = TempDir::new("grpc-xds");
    let config = dir.join("config");
    std::fs::create_dir(&config).unwrap();
    write_config(
        &config,
        "registry.yaml",
        &registry(backends.v1.addr(), backends.v2.addr()),
    );
    write_config(&config, "vs.yaml", &virtual_service("v2"));

    let xds = free_addr();
    let monitoring = free_addr();
    let mut cmd = Command::new(weft());
    cmd.arg("control")
        .arg("-f")
        .arg(&config)
        .arg("--xds-address")
        .arg(xds.to_string())
        .arg("--monitoring-address")
        .arg(monitoring.to_string());
    let mut control = ChildProcess::spawn(cmd);
    control
        .wait_for_http_ok(
            &format!("http://{monitoring}/ready"),
            Duration::from_secs(15),
        )
        .await;

    let bootstrap_path = dir.join("bootstrap.json");
    std::fs::write(&bootstrap_path, bootstrap(xds)).unwrap();

    // The whole conversation with the client blocks on pipes: keep it off the runtime that
    // serves the backends.
    let result = tokio::task::spawn_blocking(move || {
        let mut client = GrpcClient::start(&python, &bootstrap_path, &dir);

        // 100% to v2, except the header match.
        client.expect_all(10, &[], "v2");
        client.expect_all(5, &[("x-user", "jason")], "v1");
        client.expect_all(3, &[("x-user", "someone-else")], "v2");
        client.expect_failure(3, &[("x-fault", "abort")], "UNAVAILABLE");
        assert_synced(monitoring);

        // Move the default route to v1: the same channel follows the push.
        write_config(&config, "vs.yaml", &virtual_service("v1"));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let calls = client.calls(1, &[]);
            if calls[0].code == "OK" && calls[0].served_by.as_deref() == Some("v1") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the client did not move to v1: {}\n{}",
                summary(&calls),
                client.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        client.expect_all(10, &[], "v1");
        client.expect_all(3, &[("x-user", "jason")], "v1");
        assert_synced(monitoring);

        let nacks = client.nacks();
        assert!(
            nacks.is_empty(),
            "the gRPC client rejected resources:\n{}",
            nacks.join("\n")
        );
        (config, dir)
    })
    .await;
    let (_config, _dir) = match result {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{}", control.tail(40));
            std::panic::resume_unwind(e.into_panic());
        }
    };
    // Every successful call is one request at a backend: before the change 13 to v2 and 5 to
    // v1, after it 1 + 10 + 3 to v1 (plus calls that still found v2 while the push travelled).
    let (v1, v2) = (backends.v1.request_count(), backends.v2.request_count());
    assert!(v1 == 19 && v2 >= 13, "v1 served {v1} calls, v2 {v2}");
}
