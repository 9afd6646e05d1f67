//! End-to-end harness: `weft control` over a config directory, sidecars (real Envoy
//! bootstrapped the way Istio bootstraps istio-proxy, or weft's own proxy) and test upstreams,
//! all on loopback. Each test process gets its own `127.<n>.0.0/16` so tests run in parallel
//! on fixed ports.

#![allow(dead_code, unreachable_pub)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use weft_test_support::{ChildProcess, TempDir, free_port, http1_get, require_envoy};

/// Which proxy runs as the sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Envoy 1.40, bootstrapped like istio-proxy (state-of-the-world ADS).
    Envoy,
    /// The same Envoy speaking incremental (delta) ADS.
    EnvoyDelta,
    /// `weft proxy --control-plane ...`.
    Weft,
}

/// `127.<net>.<x>.<y>` for this test process.
#[derive(Debug, Clone, Copy)]
pub struct Net(u8);

impl Net {
    /// A /16 of loopback for this process.
    pub fn new() -> Net {
        Net(1 + (std::process::id() % 250) as u8)
    }

    /// `127.<net>.x.y`.
    pub fn ip(&self, x: u8, y: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, self.0, x, y))
    }

    /// `127.<net>.x.y:port`.
    pub fn addr(&self, x: u8, y: u8, port: u16) -> SocketAddr {
        SocketAddr::new(self.ip(x, y), port)
    }

    /// `text` with `{{NET}}` replaced by `127.<net>`.
    pub fn render(&self, text: &str) -> String {
        text.replace("{{NET}}", &format!("127.{}", self.0))
    }
}

/// A running control plane and its configuration directory.
pub struct ControlPlane {
    pub dir: TempDir,
    pub net: Net,
    pub xds: SocketAddr,
    pub monitoring: SocketAddr,
    pub process: Option<ChildProcess>,
}

pub fn weft_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weft"))
}

impl ControlPlane {
    /// Writes `yaml` (with `{{NET}}` rendered) and starts `weft control` on it.
    pub async fn start(net: Net, yaml: &str) -> ControlPlane {
        let dir = TempDir::new("mesh");
        std::fs::create_dir_all(dir.join("config")).unwrap();
        std::fs::write(dir.join("config/mesh.yaml"), net.render(yaml)).unwrap();
        let mut cp = ControlPlane {
            dir,
            net,
            xds: SocketAddr::from(([127, 0, 0, 1], free_port())),
            monitoring: SocketAddr::from(([127, 0, 0, 1], free_port())),
            process: None,
        };
        cp.restart().await;
        cp
    }

    /// (Re)starts the control plane process on the same addresses.
    pub async fn restart(&mut self) {
        let mut cmd = Command::new(weft_bin());
        cmd.args(["control", "-f"])
            .arg(self.dir.join("config"))
            .args(["--xds-address", &self.xds.to_string()])
            .args(["--monitoring-address", &self.monitoring.to_string()]);
        let mut p = ChildProcess::spawn(cmd);
        p.wait_for_http_ok(
            &format!("http://{}/ready", self.monitoring),
            Duration::from_secs(20),
        )
        .await;
        self.process = Some(p);
    }

    /// Kills the control plane (SIGKILL: no goodbye to the proxies).
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = Command::new("kill")
                .args(["-KILL", &p.pid().to_string()])
                .status();
            p.terminate();
        }
    }

    /// GETs a JSON debug endpoint.
    pub async fn get(&self, path: &str) -> Value {
        let resp = http1_get(self.monitoring, "control", path, &[])
            .await
            .unwrap();
        assert_eq!(resp.status, 200, "{path}: {}", resp.text());
        resp.json()
    }

    /// The served generation.
    pub async fn generation(&self) -> u64 {
        self.get("/debug/config_status").await["generation"]
            .as_u64()
            .unwrap()
    }

    /// Replaces the configuration and waits until the new generation is served and every
    /// connected proxy ACKed it.
    pub async fn apply(&self, yaml: &str) {
        let before = self.generation().await;
        let tmp = self.dir.join("mesh.yaml.tmp");
        std::fs::write(&tmp, self.net.render(yaml)).unwrap();
        std::fs::rename(&tmp, self.dir.join("config/mesh.yaml")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let status = self.get("/debug/config_status").await;
            if status["generation"].as_u64().unwrap() > before {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "configuration not reloaded: {status:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.wait_synced(1).await;
    }

    /// Waits until at least `proxies` proxies are connected, all at the served generation
    /// with every subscribed type acknowledged.
    pub async fn wait_synced(&self, proxies: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.get("/debug/syncz").await;
            let generation = s["generation"].as_u64().unwrap();
            let list = s["proxies"].as_array().unwrap();
            let synced = list.len() >= proxies
                && list.iter().all(|p| {
                    p["generation"].as_u64() == Some(generation)
                        && ["CDS", "LDS", "EDS", "RDS"]
                            .iter()
                            .all(|t| p["types"][t]["status"] != "STALE")
                        && ["CDS", "LDS"]
                            .iter()
                            .all(|t| p["types"][t]["status"] == "SYNCED")
                });
            if synced {
                return;
            }
            assert!(Instant::now() < deadline, "proxies not in sync: {s:#}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// NACKs received so far (`pilot_total_xds_rejects`, all types).
    pub async fn rejects(&self) -> u64 {
        let resp = http1_get(self.monitoring, "control", "/metrics", &[])
            .await
            .unwrap();
        resp.text()
            .lines()
            .filter(|l| l.starts_with("pilot_total_xds_rejects{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// Asserts no proxy rejected anything, showing what was rejected otherwise.
    pub async fn assert_no_nacks(&self) {
        let n = self.rejects().await;
        if n > 0 {
            panic!(
                "{n} xDS responses rejected: {:#}",
                self.get("/debug/syncz").await
            );
        }
    }
}

/// A sidecar process.
pub struct Sidecar {
    pub process: ChildProcess,
    pub admin: SocketAddr,
    _dir: TempDir,
}

/// What a sidecar is.
pub struct Workload<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub ip: IpAddr,
    pub labels: &'a [(&'a str, &'a str)],
    /// A gateway (`router`) rather than a sidecar.
    pub router: bool,
}

/// Starts a sidecar of `kind` for `w`; `None` when Envoy is wanted but not installed (outside
/// CI).
pub async fn sidecar(kind: Kind, cp: &ControlPlane, w: &Workload<'_>) -> Option<Sidecar> {
    let dir = TempDir::new("sidecar");
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let proxy_type = if w.router { "router" } else { "sidecar" };
    let node_id = format!(
        "{proxy_type}~{}~{}.{}~{}.svc.cluster.local",
        w.ip, w.name, w.namespace, w.namespace
    );
    let mut process = match kind {
        Kind::Envoy | Kind::EnvoyDelta => {
            let api_type = if kind == Kind::EnvoyDelta {
                "DELTA_GRPC"
            } else {
                "GRPC"
            };
            let envoy = require_envoy()?;
            let labels: Vec<String> = w
                .labels
                .iter()
                .map(|(k, v)| format!("{k}: \"{v}\""))
                .collect();
            let bootstrap = format!(
                r#"node:
  id: "{node_id}"
  cluster: "{name}.{ns}"
  metadata:
    NAMESPACE: "{ns}"
    WORKLOAD_NAME: "{name}"
    INSTANCE_IPS: "{ip}"
    LABELS: {{{labels}}}
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin_port}}}}}}}
dynamic_resources:
  ads_config:
    api_type: {api_type}
    transport_api_version: V3
    grpc_services: [{{envoy_grpc: {{cluster_name: xds-grpc}}}}]
    set_node_on_first_message_only: true
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
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {xds_port}}}}}}}}}]}}]
"#,
                name = w.name,
                ns = w.namespace,
                ip = w.ip,
                labels = labels.join(", "),
                admin_port = admin.port(),
                xds_port = cp.xds.port(),
            );
            let path = dir.write("envoy.yaml", bootstrap);
            let mut cmd = Command::new(envoy);
            cmd.arg("-c")
                .arg(&path)
                .args(["--base-id", &admin.port().to_string()])
                .args(["-l", "warning", "--concurrency", "1"]);
            ChildProcess::spawn(cmd)
        }
        Kind::Weft => {
            let mut cmd = Command::new(weft_bin());
            cmd.args(["proxy", "--control-plane", &cp.xds.to_string()])
                .args(["--workload", w.name, "--namespace", w.namespace])
                .args(["--ip", &w.ip.to_string()])
                .args(["--type", proxy_type])
                .args(["--admin", &admin.to_string()])
                .args(["--concurrency", "1"]);
            for (k, v) in w.labels {
                cmd.args(["--label", &format!("{k}={v}")]);
            }
            ChildProcess::spawn(cmd)
        }
    };
    process
        .wait_for_http_ok(&format!("http://{admin}/ready"), Duration::from_secs(20))
        .await;
    Some(Sidecar {
        process,
        admin,
        _dir: dir,
    })
}
