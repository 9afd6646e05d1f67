//! Control-plane scale benchmark (not a test: `cargo bench -p weft-control --bench xds_scale`,
//! or `bench/xds-scale`).
//!
//! Generates a mesh of S services, starts the real `weft control` on it as a child process,
//! connects N simulated sidecars over ADS (state of the world or delta), and measures:
//!
//! - cold start: from spawning the control plane (and from opening the streams) until every
//!   client has received and ACKed CDS, EDS for every EDS cluster, LDS and RDS for every
//!   route configuration its listeners name;
//! - change: after rewriting one service's file (its VirtualService's header match changes),
//!   until every client has received and ACKed a route configuration carrying the change;
//! - the control plane's peak RSS (`VmHWM`) and CPU time (`utime + stime`);
//! - bytes received per client for the cold start and for the change push.
//!
//! Every wait has a deadline; traffic stays on 127.0.0.1; the child is killed on exit.

#![allow(missing_docs, unreachable_pub)]

mod client;
mod config;

use std::collections::HashSet;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tonic::transport::Endpoint;

use crate::client::{Event, Mode, Shared};
use crate::config::MeshShape;

#[derive(Debug, Clone)]
struct Args {
    weft: PathBuf,
    proxies: usize,
    shape: MeshShape,
    mode: Mode,
    streams_per_connection: usize,
    timeout: Duration,
    settle: Duration,
    header: bool,
}

fn usage() -> &'static str {
    "usage: xds_scale [--weft PATH] [--proxies N] [--services N] [--namespaces N] \
     [--mode sotw|delta] [--streams-per-connection N] [--timeout SECS] [--settle SECS] \
     [--header]"
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        weft: default_weft(),
        proxies: 100,
        shape: MeshShape {
            services: 100,
            namespaces: 10,
        },
        mode: Mode::Sotw,
        streams_per_connection: 100,
        timeout: Duration::from_secs(120),
        settle: Duration::from_secs(1),
        header: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or(format!("{flag} needs a value\n{}", usage()))
        };
        let num = |v: String| v.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            // cargo bench passes --bench to harness-less benchmarks.
            "--bench" => {}
            "--weft" => a.weft = PathBuf::from(value()?),
            "--proxies" => a.proxies = num(value()?)?,
            "--services" => a.shape.services = num(value()?)?,
            "--namespaces" => a.shape.namespaces = num(value()?)?.max(1),
            "--streams-per-connection" => a.streams_per_connection = num(value()?)?.max(1),
            "--timeout" => a.timeout = Duration::from_secs(num(value()?)? as u64),
            "--settle" => a.settle = Duration::from_secs(num(value()?)? as u64),
            "--header" => a.header = true,
            "--mode" => {
                a.mode = match value()?.as_str() {
                    "sotw" => Mode::Sotw,
                    "delta" => Mode::Delta,
                    m => return Err(format!("--mode {m}: sotw or delta")),
                }
            }
            "-h" | "--help" => return Err(usage().to_owned()),
            f => return Err(format!("unknown argument {f}\n{}", usage())),
        }
    }
    Ok(a)
}

/// `weft` next to this benchmark in the target directory (`target/release/deps/..` → `..`).
fn default_weft() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().and_then(Path::parent).map(|d| d.join("weft")))
        .unwrap_or_else(|| PathBuf::from("weft"))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xds_scale: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Kills the control plane when the benchmark ends, however it ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The control plane's resource use so far.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    peak_rss_mb: f64,
    rss_mb: f64,
    cpu_s: f64,
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn usage_of(pid: &str, ticks: f64) -> Usage {
    let mut u = Usage::default();
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        for line in status.lines() {
            let kb = |l: &str| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
                    / 1024.0
            };
            if line.starts_with("VmHWM:") {
                u.peak_rss_mb = kb(line);
            } else if line.starts_with("VmRSS:") {
                u.rss_mb = kb(line);
            }
        }
    }
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        && let Some((_, rest)) = stat.rsplit_once(')')
    {
        let f: Vec<f64> = rest
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0.0))
            .collect();
        if f.len() > 12 {
            u.cpu_s = (f[11] + f[12]) / ticks;
        }
    }
    u
}

fn free_port() -> Result<SocketAddr, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))
}

/// Whether the control plane's `/ready` answers 200.
fn ready(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.1 200")
}

/// Waits for events until `done` says so or the deadline passes; returns when it finished.
async fn wait_for(
    events: &mut mpsc::UnboundedReceiver<Event>,
    deadline: Instant,
    failures: &mut Vec<String>,
    mut on: impl FnMut(&Event) -> bool,
) -> Option<Instant> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(e)) => {
                if let Event::Failed(i, why) = &e {
                    failures.push(format!("client {i}: {why}"));
                }
                if on(&e) {
                    return Some(Instant::now());
                }
            }
            Ok(None) | Err(_) => return None,
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let n = args.proxies;
    let dir = std::env::temp_dir().join(format!("weft-xds-scale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    args.shape
        .write(&dir, 0)
        .map_err(|e| format!("writing the configuration: {e}"))?;
    let result = measure(&args, &dir, n).await;
    let _ = std::fs::remove_dir_all(&dir);
    let r = result?;
    let mode = match args.mode {
        Mode::Sotw => "SotW",
        Mode::Delta => "delta",
    };
    if args.header {
        println!(
            "| proxies | services | xDS | cold start s (streams open → synced) | change s | peak RSS MB | CPU s | KB/proxy cold | KB/proxy per change push |"
        );
        println!("|---:|---:|---|---:|---:|---:|---:|---:|---:|");
    }
    let secs =
        |d: Option<Duration>| d.map_or("timeout".to_owned(), |d| format!("{:.2}", d.as_secs_f64()));
    println!(
        "| {n} | {} | {mode} | {} ({}) | {} | {:.0} | {:.1} | {:.1} | {:.1} |",
        args.shape.services,
        secs(r.cold_from_spawn),
        secs(r.cold_from_streams),
        secs(r.change),
        r.usage.peak_rss_mb,
        r.usage.cpu_s,
        r.cold_bytes as f64 / n.max(1) as f64 / 1024.0,
        r.change_bytes as f64 / n.max(1) as f64 / 1024.0,
    );
    if r.cold_from_spawn.is_none() || r.change.is_none() {
        return Err("did not converge before the deadline".to_owned());
    }
    Ok(())
}

#[derive(Debug)]
struct Measured {
    cold_from_spawn: Option<Duration>,
    cold_from_streams: Option<Duration>,
    change: Option<Duration>,
    usage: Usage,
    cold_bytes: u64,
    change_bytes: u64,
}

async fn measure(args: &Args, dir: &Path, n: usize) -> Result<Measured, String> {
    let xds = free_port()?;
    let monitoring = free_port()?;
    let log = std::fs::File::create(dir.join("control.log")).map_err(|e| e.to_string())?;
    let ticks = clock_ticks();
    let spawned = Instant::now();
    let child = Command::new(&args.weft)
        .arg("control")
        .arg("-f")
        .arg(dir)
        .arg("--xds-address")
        .arg(xds.to_string())
        .arg("--monitoring-address")
        .arg(monitoring.to_string())
        .arg("--log-level")
        .arg("warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", args.weft.display()))?;
    let guard = ChildGuard(child);
    let pid = guard.0.id().to_string();
    let deadline = spawned + args.timeout;

    while !ready(monitoring) {
        if Instant::now() > deadline {
            return Err("the control plane never became ready".to_owned());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ready_at = spawned.elapsed();
    eprintln!(
        "control plane ready after {:.2} s ({} services, {} namespaces)",
        ready_at.as_secs_f64(),
        args.shape.services,
        args.shape.namespaces
    );

    // One HTTP/2 connection per `streams_per_connection` streams.
    let mut channels = Vec::new();
    for _ in 0..n.div_ceil(args.streams_per_connection) {
        let ch = Endpoint::from_shared(format!("http://{xds}"))
            .map_err(|e| e.to_string())?
            .initial_connection_window_size(Some(64 << 20))
            .initial_stream_window_size(Some(16 << 20))
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| format!("connecting to {xds}: {e}"))?;
        channels.push(ch);
    }
    let (tx, mut events) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared::new(tx));
    let streams_opened = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..n {
        let ns = args.shape.namespace_of(i);
        let ch = channels[i / args.streams_per_connection].clone();
        tasks.push(tokio::spawn(client::run(
            i,
            ns,
            args.mode,
            ch,
            shared.clone(),
        )));
    }
    let mut failures = Vec::new();
    let mut synced = HashSet::new();
    let cold = wait_for(&mut events, deadline, &mut failures, |e| {
        if let Event::Converged(i) = e {
            synced.insert(*i);
        }
        synced.len() == n
    })
    .await;
    let converged = synced.len();
    eprintln!(
        "cold start: {converged}/{n} clients synced, {} responses, {} failures",
        shared.responses.load(Ordering::Relaxed),
        failures.len()
    );
    tokio::time::sleep(args.settle).await;
    let cold_bytes = shared.bytes.load(Ordering::Relaxed);
    let after_cold = usage_of(&pid, ticks);
    eprintln!(
        "after cold start: peak RSS {:.0} MB, RSS now {:.0} MB, CPU {:.1} s",
        after_cold.peak_rss_mb, after_cold.rss_mb, after_cold.cpu_s
    );

    // One service changes.
    let before = shared.bytes.load(Ordering::Relaxed);
    let changed_at = Instant::now();
    args.shape
        .change(dir, 0, 1)
        .map_err(|e| format!("changing the configuration: {e}"))?;
    let change_deadline = changed_at + args.timeout;
    let before_by_type = shared.by_type();
    let mut marked = HashSet::new();
    let change = if cold.is_some() {
        wait_for(&mut events, change_deadline, &mut failures, |e| {
            if let Event::Marker(i, 1) = e {
                marked.insert(*i);
            }
            marked.len() == n
        })
        .await
    } else {
        None
    };
    eprintln!("change: {}/{n} clients have it", marked.len());
    tokio::time::sleep(args.settle).await;
    let change_bytes = shared.bytes.load(Ordering::Relaxed) - before;
    let after_by_type = shared.by_type();
    eprintln!(
        "bytes per proxy by type (CDS, EDS, LDS, RDS): cold {:?}, change push {:?}",
        before_by_type.map(|b| b / n.max(1) as u64),
        [0, 1, 2, 3].map(|i| (after_by_type[i] - before_by_type[i]) / n.max(1) as u64)
    );
    let usage = usage_of(&pid, ticks);
    eprintln!(
        "after the change: peak RSS {:.0} MB, RSS now {:.0} MB, CPU {:.1} s",
        usage.peak_rss_mb, usage.rss_mb, usage.cpu_s
    );
    for t in &tasks {
        t.abort();
    }
    drop(guard);
    for f in failures.iter().take(5) {
        eprintln!("{f}");
    }
    Ok(Measured {
        cold_from_spawn: cold.map(|t| t - spawned),
        cold_from_streams: cold.map(|t| t - streams_opened),
        change: change.map(|t| t - changed_at),
        usage,
        cold_bytes,
        change_bytes,
    })
}
