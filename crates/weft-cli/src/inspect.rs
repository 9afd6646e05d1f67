//! `weft proxy-status` and `weft proxy-config`: what the control plane sends each proxy, read
//! from its debug endpoints (as istioctl reads istiod's).

use std::process::ExitCode;

use http_body_util::{BodyExt, Empty};
use serde_json::Value;

#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// The control plane's monitoring address.
    #[arg(long = "control-plane", default_value = "127.0.0.1:15014")]
    control_plane: String,

    /// Output: table or json.
    #[arg(short = 'o', long, default_value = "table", value_parser = ["table", "json"])]
    output: String,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ConfigArgs {
    /// What to show.
    #[arg(value_parser = ["cluster", "clusters", "listener", "listeners", "route", "routes", "endpoint", "endpoints", "all"])]
    kind: String,

    /// The proxy: its node id, or `<workload>.<namespace>`.
    proxy: String,

    /// The control plane's monitoring address.
    #[arg(long = "control-plane", default_value = "127.0.0.1:15014")]
    control_plane: String,

    /// Output: table or json.
    #[arg(short = 'o', long, default_value = "table", value_parser = ["table", "json"])]
    output: String,
}

pub(crate) fn status(args: StatusArgs) -> ExitCode {
    let body = match get(&args.control_plane, "/debug/syncz") {
        Ok(v) => v,
        Err(e) => return fail(&e),
    };
    if args.output == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    let mut rows = vec![vec![
        "NAME".to_owned(),
        "MODE".to_owned(),
        "CDS".to_owned(),
        "LDS".to_owned(),
        "EDS".to_owned(),
        "RDS".to_owned(),
        "GENERATION".to_owned(),
    ]];
    let proxies = body["proxies"].as_array().cloned().unwrap_or_default();
    for p in &proxies {
        let mut row = vec![
            format!(
                "{}.{}",
                p["workload"].as_str().unwrap_or(""),
                p["namespace"].as_str().unwrap_or("")
            ),
            p["mode"].as_str().unwrap_or("").to_owned(),
        ];
        for t in ["CDS", "LDS", "EDS", "RDS"] {
            let s = &p["types"][t];
            let mut cell = s["status"].as_str().unwrap_or("").to_owned();
            if s["last_nack"].is_string() {
                cell.push_str(" (NACK)");
            }
            row.push(cell);
        }
        row.push(format!(
            "{}/{}",
            p["generation"].as_u64().unwrap_or(0),
            body["generation"].as_u64().unwrap_or(0)
        ));
        rows.push(row);
    }
    print_table(&rows);
    for p in &proxies {
        for t in ["CDS", "LDS", "EDS", "RDS"] {
            if let Some(err) = p["types"][t]["last_nack"].as_str() {
                println!("{} rejected {t}: {err}", p["proxy"].as_str().unwrap_or(""));
            }
        }
    }
    ExitCode::SUCCESS
}

pub(crate) fn config(args: ConfigArgs) -> ExitCode {
    let path = format!("/debug/config_dump?proxyID={}", encode(&args.proxy));
    let dump = match get(&args.control_plane, &path) {
        Ok(v) => v,
        Err(e) => return fail(&e),
    };
    let kind = args.kind.trim_end_matches('s');
    let section = |ty: &str, key: &str| -> Vec<Value> {
        dump["configs"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["@type"].as_str().is_some_and(|t| t.ends_with(ty)))
            .and_then(|c| c[key].as_array().cloned())
            .unwrap_or_default()
    };
    if args.output == "json" {
        let out = match kind {
            "all" => dump.clone(),
            "cluster" => Value::Array(section("ClustersConfigDump", "dynamic_active_clusters")),
            "listener" => Value::Array(section("ListenersConfigDump", "dynamic_listeners")),
            "route" => Value::Array(section("RoutesConfigDump", "dynamic_route_configs")),
            _ => Value::Array(section("EndpointsConfigDump", "dynamic_endpoint_configs")),
        };
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    if matches!(kind, "cluster" | "all") {
        let mut rows = vec![
            vec!["SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE"]
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        ];
        for c in section("ClustersConfigDump", "dynamic_active_clusters") {
            let name = c["cluster"]["name"].as_str().unwrap_or("").to_owned();
            let ty = c["cluster"]["type"].as_str().unwrap_or("EDS").to_owned();
            let parts: Vec<&str> = name.splitn(4, '|').collect();
            let row = match parts.as_slice() {
                [dir, port, subset, host] => vec![
                    host.to_string(),
                    port.to_string(),
                    subset.to_string(),
                    dir.to_string(),
                    ty,
                ],
                _ => vec![name.clone(), "-".into(), "-".into(), "-".into(), ty],
            };
            rows.push(row);
        }
        print_table(&rows);
    }
    if matches!(kind, "listener" | "all") {
        let mut rows = vec![vec![
            "NAME".to_owned(),
            "ADDRESS".to_owned(),
            "PORT".to_owned(),
            "CHAINS".to_owned(),
        ]];
        for l in section("ListenersConfigDump", "dynamic_listeners") {
            let listener = &l["active_state"]["listener"];
            let sa = &listener["address"]["socket_address"];
            rows.push(vec![
                l["name"].as_str().unwrap_or("").to_owned(),
                sa["address"].as_str().unwrap_or("").to_owned(),
                sa["port_value"].to_string(),
                listener["filter_chains"]
                    .as_array()
                    .map_or(0, Vec::len)
                    .to_string(),
            ]);
        }
        print_table(&rows);
    }
    if matches!(kind, "route" | "all") {
        let mut rows = vec![vec![
            "NAME".to_owned(),
            "VIRTUAL HOST".to_owned(),
            "DOMAINS".to_owned(),
            "ROUTES".to_owned(),
        ]];
        for r in section("RoutesConfigDump", "dynamic_route_configs") {
            let rc = &r["route_config"];
            for vh in rc["virtual_hosts"].as_array().into_iter().flatten() {
                let domains: Vec<&str> = vh["domains"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let shown = if domains.len() > 3 {
                    format!("{} + {} more", domains[..2].join(", "), domains.len() - 2)
                } else {
                    domains.join(", ")
                };
                rows.push(vec![
                    rc["name"].as_str().unwrap_or("").to_owned(),
                    vh["name"].as_str().unwrap_or("").to_owned(),
                    shown,
                    vh["routes"].as_array().map_or(0, Vec::len).to_string(),
                ]);
            }
        }
        print_table(&rows);
    }
    if matches!(kind, "endpoint" | "all") {
        let mut rows = vec![vec![
            "ENDPOINT".to_owned(),
            "LOCALITY".to_owned(),
            "PRIORITY".to_owned(),
            "CLUSTER".to_owned(),
        ]];
        for e in section("EndpointsConfigDump", "dynamic_endpoint_configs") {
            let cla = &e["endpoint_config"];
            let cluster = cla["cluster_name"].as_str().unwrap_or("");
            for le in cla["endpoints"].as_array().into_iter().flatten() {
                let loc = &le["locality"];
                let locality = [&loc["region"], &loc["zone"], &loc["sub_zone"]]
                    .iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join("/");
                for ep in le["lb_endpoints"].as_array().into_iter().flatten() {
                    let sa = &ep["endpoint"]["address"]["socket_address"];
                    rows.push(vec![
                        format!(
                            "{}:{}",
                            sa["address"].as_str().unwrap_or(""),
                            sa["port_value"]
                        ),
                        locality.clone(),
                        le["priority"].as_u64().unwrap_or(0).to_string(),
                        cluster.to_owned(),
                    ]);
                }
            }
        }
        print_table(&rows);
    }
    ExitCode::SUCCESS
}

fn fail(e: &str) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::FAILURE
}

fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// GETs `path` from the control plane's monitoring server and parses the JSON body.
fn get(addr: &str, path: &str) -> Result<Value, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let unreachable = |e: &dyn std::fmt::Display| {
            format!("cannot reach the control plane at {addr}: {e} (is `weft control` running? set --control-plane)")
        };
        let stream = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        .map_err(|e| unreachable(&e))?
        .map_err(|e| unreachable(&e))?;
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| unreachable(&e))?;
        tokio::spawn(conn);
        let req = http::Request::get(path)
            .header(http::header::HOST, addr)
            .body(Empty::<bytes::Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = send.send_request(req).await.map_err(|e| unreachable(&e))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            return Err(format!(
                "{path}: {status}: {}",
                String::from_utf8_lossy(&body).trim()
            ));
        }
        serde_json::from_slice(&body).map_err(|e| format!("{path}: not JSON: {e}"))
    })
}
