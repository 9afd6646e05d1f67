//! Child processes for end-to-end tests (weft, Envoy), with their output kept in files and shown
//! when a test fails, and lookup of the binaries.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use http::Uri;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::BoxError;
use crate::client::{HttpConnection, HttpVersion};
use crate::tempdir::TempDir;

/// How long [`ChildProcess`] waits after SIGTERM before SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// A child process started by a test. Its stdout and stderr go to files (see
/// [`ChildProcess::stdout_path`]); if the test panics while the child is alive, their last lines
/// are printed to stderr so the failure shows what the process said. On drop the child (and only
/// it, by PID) gets SIGTERM, then SIGKILL after a grace period.
///
/// Only the direct child is signalled: a child that forks helpers must stop them itself.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    child: Child,
    logs: TempDir,
    grace: Duration,
    status: Option<ExitStatus>,
}

impl ChildProcess {
    /// Spawns `cmd` (stdin null, stdout/stderr to files); panics if it cannot be started.
    pub fn spawn(cmd: Command) -> Self {
        let program = cmd.get_program().to_string_lossy().into_owned();
        Self::try_spawn(cmd).unwrap_or_else(|e| panic!("spawn {program}: {e}"))
    }

    /// Like [`Self::spawn`], returning the error instead.
    pub fn try_spawn(mut cmd: Command) -> std::io::Result<Self> {
        let name = Path::new(cmd.get_program())
            .file_name()
            .map_or_else(|| "child".to_owned(), |n| n.to_string_lossy().into_owned());
        let logs = TempDir::new(&format!("proc-{name}"));
        cmd.stdin(Stdio::null())
            .stdout(File::create(logs.join("stdout"))?)
            .stderr(File::create(logs.join("stderr"))?);
        let child = cmd.spawn()?;
        tracing::debug!(%name, pid = child.id(), logs = %logs.path().display(), "spawned");
        Ok(Self {
            name,
            child,
            logs,
            grace: DEFAULT_GRACE,
            status: None,
        })
    }

    /// Sets the SIGTERM → SIGKILL grace period.
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Path of the captured stdout.
    pub fn stdout_path(&self) -> PathBuf {
        self.logs.join("stdout")
    }

    /// Path of the captured stderr.
    pub fn stderr_path(&self) -> PathBuf {
        self.logs.join("stderr")
    }

    /// Everything written to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.stdout_path()).unwrap_or_default()
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    /// The last `lines` lines of stdout and of stderr, labelled.
    pub fn tail(&self, lines: usize) -> String {
        format!(
            "--- {} (pid {}) stdout, last {lines} lines ---\n{}\n--- stderr ---\n{}",
            self.name,
            self.child.id(),
            last_lines(&self.stdout(), lines),
            last_lines(&self.stderr(), lines)
        )
    }

    /// The exit status, if the child has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits until `addr` accepts TCP connections; panics with the logs if the child exits first
    /// or `timeout` passes.
    pub async fn wait_for_port(&mut self, addr: SocketAddr, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if TcpStream::connect(addr).await.is_ok() {
                return;
            }
            self.check_alive_before(deadline, &format!("port {addr}"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `GET url` answers 2xx; panics with the logs if the child exits first or
    /// `timeout` passes.
    pub async fn wait_for_http_ok(&mut self, url: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if http_ok(url).await.is_ok() {
                return;
            }
            self.check_alive_before(deadline, &format!("{url} to answer 2xx"));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn check_alive_before(&mut self, deadline: Instant, what: &str) {
        if let Some(status) = self.try_wait() {
            panic!(
                "{} exited ({status}) while waiting for {what}\n{}",
                self.name,
                self.tail(40)
            );
        }
        if Instant::now() >= deadline {
            panic!("timed out waiting for {what}\n{}", self.tail(40));
        }
    }

    /// Stops the child: SIGTERM, then SIGKILL after the grace period. Returns its exit status.
    /// Blocks the calling thread while it waits (it also runs from `Drop`, which cannot await).
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        if let Some(status) = self.try_wait() {
            return Some(status);
        }
        // The child is not reaped yet, so its PID cannot have been reused: signalling it by PID
        // is safe. std has no SIGTERM, so ask kill(1).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = std::time::Instant::now() + self.grace;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        self.status = self.child.wait().ok();
        self.status
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.tail(40));
        }
        self.terminate();
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Waits until `addr` accepts TCP connections (polling every 20 ms).
pub async fn wait_for_port(addr: SocketAddr, timeout: Duration) -> Result<(), BoxError> {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("nothing listens on {addr} after {timeout:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `GET url` (plain `http://host:port/path`) answers 2xx (polling every 50 ms).
pub async fn wait_for_http_ok(url: &str, timeout: Duration) -> Result<(), BoxError> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match http_ok(url).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(format!("{url} not ready after {timeout:?}: {last}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn http_ok(url: &str) -> Result<(), BoxError> {
    let uri: Uri = url.parse()?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("{url}: only http:// URLs are supported").into());
    }
    let authority = uri.authority().ok_or("URL without host")?;
    let addr: SocketAddr = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    )
    .parse()
    .map_err(|_| format!("{url}: the host must be an IP address"))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let attempt = async {
        let mut conn = HttpConnection::connect(addr, HttpVersion::Http1).await?;
        conn.get(authority.as_str(), path, &[]).await
    };
    let resp = tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .map_err(|_| "request timed out")??;
    if resp.status.is_success() {
        Ok(())
    } else {
        Err(format!("status {}", resp.status).into())
    }
}

/// The Envoy binary from `WEFT_ENVOY` (set by `scripts/tool-paths` after
/// `scripts/install-test-deps`), if set and non-empty. Panics if it is set to a missing file.
pub fn envoy_binary() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os("WEFT_ENVOY").filter(|v| !v.is_empty())?);
    assert!(
        path.is_file(),
        "WEFT_ENVOY={} does not exist; run scripts/install-test-deps",
        path.display()
    );
    Some(path)
}

/// The Envoy binary for a comparison test. Without `WEFT_ENVOY`, prints a skip message and
/// returns `None` so the test can return early, except when `CI` is set: CI must run the
/// comparison, so this panics there.
///
/// ```no_run
/// let Some(envoy) = weft_test_support::require_envoy() else { return };
/// ```
pub fn require_envoy() -> Option<PathBuf> {
    envoy_binary().or_else(|| skip_unless_ci("WEFT_ENVOY"))
}

/// The Python interpreter with `grpcio` installed, from `WEFT_PYTHON_GRPC` (set by
/// `scripts/tool-paths` after `scripts/install-test-deps`), if set and non-empty. Panics if it
/// is set to a missing file.
pub fn python_grpc() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os("WEFT_PYTHON_GRPC").filter(|v| !v.is_empty())?);
    assert!(
        path.is_file(),
        "WEFT_PYTHON_GRPC={} does not exist; run scripts/install-test-deps",
        path.display()
    );
    Some(path)
}

/// The Python interpreter for a test that runs a stock gRPC (xDS) client. Like
/// [`require_envoy`]: without `WEFT_PYTHON_GRPC` the test is skipped with a message, except
/// under `CI`, where this panics.
///
/// ```no_run
/// let Some(python) = weft_test_support::require_python_grpc() else { return };
/// ```
pub fn require_python_grpc() -> Option<PathBuf> {
    python_grpc().or_else(|| skip_unless_ci("WEFT_PYTHON_GRPC"))
}

/// Prints that a test is skipped because `var` is unset, or panics when `CI` is set.
fn skip_unless_ci(var: &str) -> Option<PathBuf> {
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    assert!(
        !ci,
        "CI is set but {var} is not: run scripts/install-test-deps and source scripts/tool-paths"
    );
    eprintln!(
        "SKIPPED: {var} is not set (run scripts/install-test-deps, then `. scripts/tool-paths`)"
    );
    None
}

/// Locates the `weft` binary for end-to-end tests.
///
/// `env!("CARGO_BIN_EXE_weft")` only exists when compiling weft-cli's own integration tests, so
/// other crates find it here, in order:
/// 1. `explicit`, when given (weft-cli's tests pass `env!("CARGO_BIN_EXE_weft")`);
/// 2. env `WEFT_BIN`;
/// 3. next to the running test executable: tests live in `target/<profile>/deps/`, binaries in
///    `target/<profile>/`;
/// 4. `$CARGO_TARGET_DIR/debug/weft`.
///
/// Returns `None` if none exists; build it with `cargo build -p weft-cli` first (Cargo builds
/// it automatically only for weft-cli's own tests).
pub fn weft_binary(explicit: Option<&Path>) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    candidates.extend(explicit.map(Path::to_path_buf));
    candidates.extend(std::env::var_os("WEFT_BIN").map(PathBuf::from));
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            candidates.push(dir.join("weft"));
        }
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(target).join("debug").join("weft"));
    }
    candidates.into_iter().find(|p| p.is_file())
}
