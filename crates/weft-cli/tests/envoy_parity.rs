//! Envoy is the reference: the same bootstrap runs through Envoy 1.40 and through weft, the same
//! requests go to both, and what comes back (and what the upstreams see) must match.
//!
//! Scenarios are data, one feature area per file: every `tests/parity/<area>/<scenario>.yaml`
//! holds a list of request cases, then `---`, then the bootstrap template those cases need and
//! nothing more (`{{VARS}}` are filled in per side: `LISTEN*` and `ADMIN` get free ports,
//! `UPSTREAM_*`, `TLS_*`, `TCP_*` and `DEAD` point at the test servers below, `CERT`/`KEY` are
//! the proxies' server certificate, `CA` the test CA, and `{{STANDARD_CLUSTERS}}` expands to
//! `parity/clusters.inc`, one cluster per test server). `build.rs` declares each file as one test
//! (`routing/domains.yaml` is `routing::domains`); every differing case is reported by name. A
//! case also states what Envoy must answer (`expect`), so a scenario cannot pass by both sides
//! failing the same boring way.
//!
//! Values that differ by design are compared by shape: a `set-cookie` value that is a generated
//! hash (16 hex digits, derived from the client's port) reads `<hash>`, and a case with
//! `sticky_cookie` checks that requests carrying the generated cookie stay on the upstream the
//! first request reached, whichever that was.
//!
//! Requires `WEFT_ENVOY` (set by `scripts/test`); without it the test is skipped with a message,
//! except under CI where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use weft_test_support::{
    ChildProcess, ClientTls, HttpConnection, HttpServer, HttpServerHandle, HttpVersion, TcpServer,
    TempDir, TestPki, TestResponse, WebSocketClient, WsMessage, free_port, require_envoy,
    tcp_read_line,
};

/// Response headers compared by value in every case; others by presence only.
const RESPONSE_HEADERS: &[&str] = &[
    "server",
    "content-type",
    "location",
    "x-config-level",
    "x-route-resp",
    "x-envoy-overloaded",
];
const RESPONSE_PRESENT: &[&str] = &["x-envoy-upstream-service-time"];
/// Request headers the upstream sees, compared by value in every case.
const UPSTREAM_HEADERS: &[&str] = &[
    "host",
    "x-forwarded-proto",
    "x-vhost",
    "x-route",
    "x-remove-me",
    "x-canary",
];

/// One request case of a scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// Unique within its file; reported on a difference.
    name: String,
    #[serde(default = "default_host")]
    host: String,
    #[serde(default = "default_path")]
    path: String,
    #[serde(default = "default_method")]
    method: String,
    /// Request headers; a list value sends the header once per item.
    #[serde(default)]
    headers: serde_json::Map<String, serde_json::Value>,
    /// Request body.
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    via: Via,
    /// Which `{{LISTEN*}}` port to connect to.
    #[serde(default = "default_listener")]
    listener: String,
    /// Which loopback address to connect to (the listener may bind 0.0.0.0).
    #[serde(default = "default_connect")]
    connect: IpAddr,
    /// TLS client settings for `via: tls`.
    #[serde(default)]
    tls: Option<TlsCase>,
    /// Make an upstream answer the next requests with a status, before each side's request.
    #[serde(default)]
    fail: Option<Fail>,
    /// Send the request this many times in a row and compare every answer.
    #[serde(default = "one")]
    repeat: u32,
    /// Send this many copies at once and compare the sorted answers.
    #[serde(default = "one")]
    parallel: u32,
    /// Start the parallel copies this long apart (the n-th after n times this), so each is
    /// seen in a known state of the proxy, e.g. the first already on its connection.
    #[serde(default)]
    stagger_ms: u64,
    /// Wait this long after the answer before reading what the upstreams saw (mirrors).
    #[serde(default)]
    settle_ms: u64,
    /// Compare whether the answer took at least this long (fault delays).
    #[serde(default)]
    slow_ms: Option<u64>,
    /// Extra response headers compared by value.
    #[serde(default)]
    response_headers: Vec<String>,
    /// Extra upstream request headers compared by value.
    #[serde(default)]
    upstream_headers: Vec<String>,
    /// The name of a cookie the proxy generates for a hash policy: after the answer, the request
    /// is sent again [`STICKY_FOLLOW_UPS`] times carrying the generated cookie, and what is
    /// compared is whether they all reached the first request's upstream (which one depends on
    /// the client's port, so it is not compared) and set no new cookie.
    #[serde(default)]
    sticky_cookie: Option<String>,
    /// For `via: raw`: what is written, and when.
    #[serde(default)]
    raw: Vec<RawStep>,
    /// For `via: websocket`: what happens on the tunnel after the handshake.
    #[serde(default)]
    websocket: WsSession,
    /// Do not compare what the upstreams saw, only the answer: for a case where Envoy's own
    /// behaviour varies from run to run (the scenario must say why in a comment).
    #[serde(default)]
    answer_only: bool,
    /// What Envoy must answer: keeps the scenario honest.
    expect: Expect,
}

#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Via {
    #[default]
    Http1,
    Http2,
    Tls,
    /// Open a TCP connection and read one line (identify servers behind `tcp_proxy`).
    Tcp,
    /// A WebSocket handshake over HTTP/1.1 (the case's headers added), then its `websocket`
    /// session; the status is the handshake's, the body tells how the session went.
    Websocket,
    /// The case's `raw` steps written on one plain TCP connection, then everything read until
    /// the proxy closes it (or 5 s pass): the status and headers are the last response's, the
    /// body lists every response's status and whether the connection was closed.
    Raw,
}

/// One step of a `via: raw` case: wait `pause_ms`, then write `send`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    #[serde(default)]
    pause_ms: u64,
    send: String,
}

/// A WebSocket session: `echoes` text messages, one every `every_ms`, each waiting for the
/// upstream's echo; then `quiet_ms` without traffic, after which the tunnel must still echo
/// (or has been closed by the proxy, which is what is compared). With
/// `request_while_open_ms`, a plain GET of the same path is sent instead of the quiet period:
/// whether it is answered within that time with the tunnel open, then after the client closed
/// the tunnel, is compared.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WsSession {
    #[serde(default)]
    echoes: u32,
    #[serde(default)]
    every_ms: u64,
    #[serde(default)]
    quiet_ms: u64,
    #[serde(default)]
    request_while_open_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsCase {
    sni: String,
    /// `h2` or `http/1.1`.
    #[serde(default = "default_alpn")]
    alpn: String,
    /// Present a client certificate (issued by the test CA) whose only name is this URI SAN.
    #[serde(default)]
    client_uri: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fail {
    #[serde(default = "default_fail_upstream")]
    upstream: String,
    count: u32,
    status: u16,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// Status of the (first) answer; 0 for TCP cases.
    status: u16,
    /// Which server answered (`x-served-by`, or the TCP line); `none` for a local reply.
    #[serde(default)]
    served_by: Option<String>,
}

fn default_host() -> String {
    "api.example.com".to_owned()
}
fn default_path() -> String {
    "/".to_owned()
}
fn default_method() -> String {
    "GET".to_owned()
}
fn default_listener() -> String {
    "LISTEN".to_owned()
}
fn default_connect() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}
fn default_alpn() -> String {
    "http/1.1".to_owned()
}
fn default_fail_upstream() -> String {
    "a".to_owned()
}
fn one() -> u32 {
    1
}

/// What a client and the upstreams observed for one request, with volatile values removed.
#[derive(Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Observation {
    status: u16,
    body: Option<String>,
    headers: BTreeMap<String, String>,
    served_by: Option<String>,
    /// Whether the answer took at least `slow_ms`.
    slow: Option<bool>,
    /// Per upstream that received requests: how many, and what the last one looked like.
    upstreams: BTreeMap<String, BTreeMap<String, String>>,
    /// For `sticky_cookie` cases: how the follow-up requests went.
    affinity: Option<String>,
}

/// Requests sent with the generated cookie in a `sticky_cookie` case.
const STICKY_FOLLOW_UPS: usize = 5;

/// A port no other scenario of this process was given. Under `cargo test` the files run in
/// parallel threads, the kernel hands a just-released port out again, and Envoy binds with
/// `SO_REUSEPORT`: without this two proxies could share a listener port and answer each other's
/// requests.
fn unique_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = free_port();
        if GIVEN.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// The test servers behind both proxies.
struct Upstreams {
    http: Vec<HttpServerHandle>,
    _tcp: Vec<weft_test_support::TcpServerHandle>,
    vars: BTreeMap<String, String>,
    pki: TestPki,
}

impl Upstreams {
    async fn start(dir: &TempDir) -> Self {
        let pki = TestPki::new();
        let cert = pki.server_cert(&["tls.test", "*.tls.test"]);
        let mut http = Vec::new();
        let mut vars = BTreeMap::new();
        for name in ["a", "b", "c"] {
            let server = HttpServer::start(name).await;
            vars.insert(
                format!("UPSTREAM_{}", name.to_uppercase()),
                server.addr().port().to_string(),
            );
            http.push(server);
        }
        for name in ["tls-a", "tls-b"] {
            let server = HttpServer::builder()
                .name(name)
                .tls(pki.server_config(&cert))
                .start()
                .await;
            vars.insert(
                name.replace('-', "_").to_uppercase(),
                server.addr().port().to_string(),
            );
            http.push(server);
        }
        let mut tcp = Vec::new();
        for name in ["tcp-a", "tcp-b"] {
            let server = TcpServer::identify(SocketAddr::from(([127, 0, 0, 1], 0)), name).await;
            vars.insert(
                name.replace('-', "_").to_uppercase(),
                server.addr().port().to_string(),
            );
            tcp.push(server);
        }
        vars.insert("DEAD".to_owned(), unique_port().to_string());
        // The proxies' own server certificate (TLS termination scenarios).
        let cert_path = dir.path().join("proxy-cert.pem");
        let key_path = dir.path().join("proxy-key.pem");
        std::fs::copy(&cert.cert_path, &cert_path).unwrap();
        std::fs::copy(&cert.key_path, &key_path).unwrap();
        vars.insert("CERT".to_owned(), cert_path.display().to_string());
        vars.insert("KEY".to_owned(), key_path.display().to_string());
        vars.insert("CA".to_owned(), pki.ca_path().display().to_string());
        Self {
            http,
            _tcp: tcp,
            vars,
            pki,
        }
    }

    fn server(&self, name: &str) -> &HttpServerHandle {
        self.http
            .iter()
            .find(|s| s.name() == name)
            .unwrap_or_else(|| panic!("no upstream named {name}"))
    }

    fn clear(&self) {
        for s in &self.http {
            s.clear_requests();
        }
    }
}

struct Side {
    name: &'static str,
    proc: ChildProcess,
    ports: BTreeMap<String, u16>,
}

async fn start(
    bin: &Path,
    args: &[&str],
    template: &str,
    vars: &BTreeMap<String, String>,
    dir: &TempDir,
    name: &'static str,
    file: &str,
) -> Side {
    let standard = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parity/clusters.inc"),
    )
    .unwrap();
    let template = template.replace("{{STANDARD_CLUSTERS}}", standard.trim_end());
    let template = template.as_str();
    let mut text = template.to_owned();
    let mut ports = BTreeMap::new();
    // Every {{LISTEN*}} and {{ADMIN}} gets a free port of its own.
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        let var = &rest[start + 2..start + len];
        if (var.starts_with("LISTEN") || var == "ADMIN") && !ports.contains_key(var) {
            ports.insert(var.to_owned(), unique_port());
        }
        rest = &rest[start + len..];
    }
    for (k, port) in &ports {
        text = text.replace(&format!("{{{{{k}}}}}"), &port.to_string());
    }
    for (k, v) in vars {
        text = text.replace(&format!("{{{{{k}}}}}"), v);
    }
    assert!(
        !text.contains("{{"),
        "{file}: unknown template variable in {text}"
    );
    let path: PathBuf = dir
        .path()
        .join(format!("{}-{name}.yaml", file.replace('/', "-")));
    std::fs::write(&path, text).unwrap();
    let mut cmd = Command::new(bin);
    cmd.args(args).arg("-c").arg(&path);
    let mut proc = ChildProcess::spawn(cmd);
    for port in ports.values() {
        let addr = SocketAddr::from(([127, 0, 0, 1], *port));
        proc.wait_for_port(addr, Duration::from_secs(20)).await;
    }
    Side { name, proc, ports }
}

/// Sends one request of `case` to `side` and reads the whole answer (`None` status on failure).
async fn send(side: &Side, case: &Case, ups: &Upstreams) -> Result<TestResponse, String> {
    send_with(side, case, ups, &[]).await
}

/// [`send`] with `extra` request headers in place of the case's headers of the same names.
async fn send_with(
    side: &Side,
    case: &Case,
    ups: &Upstreams,
    extra: &[(&str, &str)],
) -> Result<TestResponse, String> {
    let port = *side
        .ports
        .get(&case.listener)
        .unwrap_or_else(|| panic!("{}: no {{{{{}}}}} port", case.name, case.listener));
    let addr = SocketAddr::new(case.connect, port);
    let mut conn = match case.via {
        Via::Http1 => HttpConnection::connect(addr, HttpVersion::Http1).await,
        Via::Http2 => HttpConnection::connect(addr, HttpVersion::Http2).await,
        Via::Tls => {
            let tls = case.tls.as_ref().expect("via: tls needs tls:");
            let version = if tls.alpn == "h2" {
                HttpVersion::Http2
            } else {
                HttpVersion::Http1
            };
            let cert = tls
                .client_uri
                .as_deref()
                .map(|uri| ups.pki.client_cert(uri));
            let client: ClientTls = ups.pki.client_tls(&tls.sni, cert.as_ref());
            HttpConnection::connect_tls(addr, version, &client).await
        }
        Via::Tcp | Via::Raw => unreachable!("TCP and raw cases are read from sockets"),
        Via::Websocket => unreachable!("WebSocket cases run a session"),
    }
    .map_err(|e| format!("connect: {e}"))?;
    let mut req = http::Request::builder()
        .method(case.method.as_str())
        .uri(case.path.as_str())
        .header("host", case.host.as_str());
    for (name, value) in &case.headers {
        if extra.iter().any(|(e, _)| e.eq_ignore_ascii_case(name)) {
            continue;
        }
        match value {
            serde_json::Value::Array(items) => {
                for item in items {
                    req = req.header(
                        name.as_str(),
                        item.as_str().expect("header values are text"),
                    );
                }
            }
            other => {
                req = req.header(
                    name.as_str(),
                    other.as_str().expect("header values are text"),
                );
            }
        }
    }
    for (name, value) in extra {
        req = req.header(*name, *value);
    }
    let body = Bytes::from(case.body.clone().unwrap_or_default());
    let req = req.body(body).map_err(|e| format!("request: {e}"))?;
    tokio::time::timeout(Duration::from_secs(10), conn.send(req))
        .await
        .map_err(|_| "no answer within 10s".to_owned())?
        .map_err(|e| format!("request failed: {e}"))
}

fn summarize(resp: Result<TestResponse, String>, case: &Case) -> Observation {
    let resp = match resp {
        Ok(resp) => resp,
        Err(e) => {
            // Errors carry addresses and ports; only whether it failed is comparable.
            let kind = e.split(':').next().unwrap_or_default().to_owned();
            return Observation {
                body: Some(format!("client error ({kind})")),
                ..Observation::default()
            };
        }
    };
    let mut hs = BTreeMap::new();
    for name in RESPONSE_HEADERS
        .iter()
        .copied()
        .chain(case.response_headers.iter().map(String::as_str))
    {
        let values: Vec<&str> = resp
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if !values.is_empty() {
            let mut joined = values.join(" | ");
            if name.eq_ignore_ascii_case("set-cookie") {
                joined = mask_cookie_hashes(&joined);
            }
            hs.insert(name.to_owned(), joined);
        }
    }
    for name in RESPONSE_PRESENT {
        if resp.header(name).is_some() {
            hs.insert((*name).to_owned(), "<present>".to_owned());
        }
    }
    let served_by = resp.served_by().map(str::to_owned);
    // Bodies from the upstream echo volatile details; compare only local replies.
    let body = served_by.is_none().then(|| resp.text());
    Observation {
        status: resp.status.as_u16(),
        body,
        headers: hs,
        served_by,
        slow: None,
        upstreams: BTreeMap::new(),
        affinity: None,
    }
}

/// `"` + 16 lowercase hex digits + `"` (a generated hash cookie's value) becomes `"<hash>"`;
/// anything else, an uppercase or shorter value included, stays as it is.
fn mask_cookie_hashes(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find('"') {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let candidate = rest.get(..17);
        if candidate.is_some_and(|c| {
            c.ends_with('"')
                && c[..16]
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        }) {
            out.push_str("<hash>\"");
            rest = &rest[17..];
        }
    }
    out.push_str(rest);
    out
}

/// The value of the cookie `name` a response sets, without its quotes.
fn set_cookie_value(resp: &TestResponse, name: &str) -> Option<String> {
    resp.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let (pair, _) = v.split_once(';').unwrap_or((v, ""));
            let value = pair.strip_prefix(name)?.strip_prefix('=')?;
            Some(value.trim_matches('"').to_owned())
        })
}

/// The follow-up requests of a `sticky_cookie` case, carrying the cookie the first answer set.
async fn follow_ups(
    side: &Side,
    case: &Case,
    ups: &Upstreams,
    name: &str,
    value: Option<String>,
    first: Option<&str>,
) -> String {
    let Some(value) = value else {
        return "no cookie set".to_owned();
    };
    let cookie = format!("{name}=\"{value}\"");
    let (mut same, mut set_again) = (0, 0);
    for _ in 0..STICKY_FOLLOW_UPS {
        if let Ok(resp) = send_with(side, case, ups, &[("cookie", cookie.as_str())]).await {
            same += usize::from(first.is_some() && resp.served_by() == first);
            set_again += usize::from(resp.headers.contains_key("set-cookie"));
        }
    }
    format!("{same} of {STICKY_FOLLOW_UPS} on the first upstream; {set_again} set a cookie again")
}

/// For `sticky_cookie` cases, the upstreams without their names: how many were used and how
/// many requests they received in all.
fn anonymous_upstream_view(ups: &Upstreams) -> BTreeMap<String, BTreeMap<String, String>> {
    let counts: Vec<usize> = ups
        .http
        .iter()
        .map(|s| s.requests().len())
        .filter(|n| *n > 0)
        .collect();
    let mut m = BTreeMap::new();
    m.insert("upstreams used".to_owned(), counts.len().to_string());
    m.insert(
        "requests".to_owned(),
        counts.iter().sum::<usize>().to_string(),
    );
    BTreeMap::from([("*".to_owned(), m)])
}

fn upstream_view(case: &Case, ups: &Upstreams) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for server in &ups.http {
        let requests = server.requests();
        let Some(r) = requests.last() else { continue };
        let mut m = BTreeMap::new();
        m.insert("count".to_owned(), requests.len().to_string());
        m.insert(":method".to_owned(), r.method.to_string());
        m.insert(":path".to_owned(), r.path.clone());
        m.insert(
            "body".to_owned(),
            String::from_utf8_lossy(&r.body).into_owned(),
        );
        for name in UPSTREAM_HEADERS
            .iter()
            .copied()
            .chain(case.upstream_headers.iter().map(String::as_str))
        {
            let values: Vec<&str> = r
                .headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                // Generated request ids differ between runs; compare that one was generated.
                .map(|v| if is_uuid(v) { "<uuid>" } else { v })
                .collect();
            if !values.is_empty() {
                m.insert(name.to_owned(), values.join(" | "));
            }
        }
        // On retries the expected timeout is what is left of the route timeout: equal up to
        // timing, so compare it to the second.
        if let Some(ms) = r
            .header("x-envoy-expected-rq-timeout-ms")
            .and_then(|v| v.parse::<u64>().ok())
        {
            m.insert(
                "x-envoy-expected-rq-timeout-ms".to_owned(),
                format!("~{}s", (ms + 500) / 1000),
            );
        }
        m.insert(
            "has x-request-id".to_owned(),
            r.headers.contains_key("x-request-id").to_string(),
        );
        out.insert(server.name().to_owned(), m);
    }
    out
}

fn is_uuid(v: &str) -> bool {
    v.len() == 36
        && v.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// A `via: websocket` case against one side: the handshake's status and `x-served-by`, and in
/// the body how the session went (closed during the echoes, closed while quiet, or still open).
async fn websocket_session(side: &Side, case: &Case) -> Observation {
    let addr = SocketAddr::new(case.connect, side.ports[&case.listener]);
    let headers: Vec<(&str, &str)> = case
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().expect("header values are text")))
        .collect();
    let mut obs = Observation::default();
    let mut ws =
        match WebSocketClient::connect_with(addr, None, &case.host, &case.path, &headers).await {
            Ok(ws) => ws,
            Err(e) => {
                // "WebSocket handshake answered 408, not 101"
                let e = e.to_string();
                obs.status = e
                    .split_once("answered ")
                    .and_then(|(_, rest)| rest.split(',').next()?.parse().ok())
                    .unwrap_or(0);
                obs.body = Some(format!("handshake failed (status {})", obs.status));
                return obs;
            }
        };
    obs.status = 101;
    obs.served_by = ws.served_by().map(str::to_owned);
    let session = &case.websocket;
    let mut echoed = 0;
    for i in 0..session.echoes {
        tokio::time::sleep(Duration::from_millis(session.every_ms)).await;
        if !echo(&mut ws, &format!("message {i}")).await {
            obs.body = Some("closed during the echoes".to_owned());
            return obs;
        }
        echoed += 1;
    }
    if let Some(wait) = session.request_while_open_ms {
        let (host, path) = (case.host.clone(), case.path.clone());
        let get = tokio::spawn(async move {
            weft_test_support::http1_get(addr, &host, &path, &[])
                .await
                .map(|r| r.status.as_u16())
        });
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let while_open = if get.is_finished() {
            "answered while the tunnel was open"
        } else {
            "waiting while the tunnel was open"
        };
        let closed = ws.close().await.is_ok();
        let answer = match tokio::time::timeout(Duration::from_secs(5), get).await {
            Ok(Ok(Ok(status))) => format!("status {status}"),
            Ok(_) => "failed".to_owned(),
            Err(_) => "no answer within 5s".to_owned(),
        };
        obs.body = Some(format!(
            "{echoed} echoed; a request {while_open}, then {answer} (tunnel closed: {closed})"
        ));
        return obs;
    }
    let after = if session.quiet_ms == 0 {
        "open"
    } else {
        match tokio::time::timeout(Duration::from_millis(session.quiet_ms), ws.recv()).await {
            Ok(Err(_)) => "closed while quiet",
            Ok(Ok(_)) => "an unexpected message while quiet",
            Err(_) if echo(&mut ws, "after the quiet").await => "open after the quiet",
            Err(_) => "broken after the quiet",
        }
    };
    obs.body = Some(format!("{echoed} echoed; {after}"));
    obs
}

/// Sends `text` and reads its echo: whether the tunnel still works.
async fn echo(ws: &mut WebSocketClient, text: &str) -> bool {
    ws.send_text(text).await.is_ok()
        && matches!(ws.recv().await, Ok(WsMessage::Text(t)) if t == text)
}

/// Plays `steps` on one connection to `addr` and reads until it closes (at most 5 s).
async fn raw_session(addr: SocketAddr, steps: &[RawStep]) -> Observation {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut obs = Observation::default();
    let mut sock = match tokio::net::TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(_) => {
            obs.body = Some("client error (connect)".to_owned());
            return obs;
        }
    };
    let mut written = true;
    for step in steps {
        tokio::time::sleep(Duration::from_millis(step.pause_ms)).await;
        written &= sock.write_all(step.send.as_bytes()).await.is_ok();
    }
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut got)).await;
    let closed = matches!(read, Ok(Ok(_)) | Ok(Err(_)));
    // The responses, in order: each a head and a `content-length` body.
    let mut statuses = Vec::new();
    let mut rest = &got[..];
    while let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&rest[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut headers = BTreeMap::new();
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let body_end = (end + 4 + len).min(rest.len());
        let body = String::from_utf8_lossy(&rest[end + 4..body_end]).into_owned();
        rest = &rest[body_end..];
        statuses.push(status.to_string());
        obs.status = status;
        obs.served_by = headers.get("x-served-by").cloned();
        obs.headers = ["content-type", "content-length", "connection", "server"]
            .into_iter()
            .filter_map(|n| Some((n.to_owned(), headers.get(n)?.clone())))
            .collect();
        // The upstream's JSON body names ports; a local reply's text is compared.
        if !headers.contains_key("x-served-by") {
            obs.body = Some(body);
        }
    }
    let last = obs.body.take().unwrap_or_default();
    obs.body = Some(format!(
        "responses [{}], written: {written}, closed: {closed}, last local reply: {last:?}",
        statuses.join(" ")
    ));
    obs
}

/// Runs `case` against one side: every repetition, or every parallel copy (sorted).
async fn observe(side: &Side, case: &Case, ups: &Upstreams) -> Vec<Observation> {
    if case.via == Via::Websocket {
        ups.clear();
        let mut obs = websocket_session(side, case).await;
        obs.upstreams = upstream_view(case, ups);
        return vec![obs];
    }
    if case.via == Via::Raw {
        let addr = SocketAddr::new(case.connect, side.ports[&case.listener]);
        return vec![raw_session(addr, &case.raw).await];
    }
    if case.via == Via::Tcp {
        let port = side.ports[&case.listener];
        let line = tcp_read_line(SocketAddr::new(case.connect, port))
            .await
            .unwrap_or_else(|e| format!("client error: {}", e.to_string().contains("within")));
        return vec![Observation {
            served_by: Some(line),
            ..Observation::default()
        }];
    }
    let mut out = Vec::new();
    for _ in 0..case.repeat {
        ups.clear();
        if let Some(fail) = &case.fail {
            ups.server(&fail.upstream)
                .fail_next(fail.count, fail.status);
        }
        if case.parallel > 1 {
            let sends = (0..case.parallel).map(|i| async move {
                tokio::time::sleep(Duration::from_millis(case.stagger_ms * u64::from(i))).await;
                send(side, case, ups).await
            });
            let answers = futures_join_all(sends).await;
            let mut obs: Vec<Observation> = answers
                .into_iter()
                .map(|resp| summarize(resp, case))
                .collect();
            obs.sort();
            out.extend(obs);
        } else {
            let started = std::time::Instant::now();
            let resp = send(side, case, ups).await;
            let elapsed = started.elapsed();
            let cookie = case
                .sticky_cookie
                .as_deref()
                .and_then(|name| set_cookie_value(resp.as_ref().ok()?, name));
            let mut obs = summarize(resp, case);
            obs.slow = case.slow_ms.map(|ms| elapsed >= Duration::from_millis(ms));
            if case.settle_ms > 0 {
                tokio::time::sleep(Duration::from_millis(case.settle_ms)).await;
            }
            if let Some(name) = &case.sticky_cookie {
                let first = obs.served_by.take();
                obs.affinity =
                    Some(follow_ups(side, case, ups, name, cookie, first.as_deref()).await);
                // Which upstream the cookie leads to depends on the client's port.
                obs.served_by = first.map(|_| "<hashed>".to_owned());
                obs.upstreams = anonymous_upstream_view(ups);
            } else if !case.answer_only {
                obs.upstreams = upstream_view(case, ups);
            }
            out.push(obs);
        }
        if let Some(fail) = &case.fail {
            // Leftover failures must not leak into the next case.
            ups.server(&fail.upstream).fail_next(0, fail.status);
        }
    }
    out
}

/// Runs futures concurrently on this task and collects their outputs in order.
async fn futures_join_all<F: Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut results: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if results[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => results[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    results.into_iter().map(Option::unwrap).collect()
}

/// Splits a scenario file into its cases and its bootstrap template.
fn load(file: &str) -> (Vec<Case>, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/parity")
        .join(format!("{file}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap();
    let (cases, template) = text
        .split_once("\n---\n")
        .unwrap_or_else(|| panic!("{file}: cases, then ---, then the bootstrap"));
    let docs = weft_yaml::parse_documents(cases);
    let doc = docs
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{file}: no cases"))
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    let cases: Vec<Case> = serde_json::from_value(doc.value["cases"].clone())
        .unwrap_or_else(|e| panic!("{file}: cases: {e}"));
    let mut names = std::collections::BTreeSet::new();
    for case in &cases {
        assert!(
            names.insert(case.name.as_str()),
            "{file}: duplicate case {}",
            case.name
        );
    }
    (cases, template.to_owned())
}

/// Runs every case of `parity/<file>.yaml` through Envoy and weft and fails listing every case
/// that differs or whose Envoy answer is not what the case expects.
async fn run(file: &str) {
    let Some(envoy) = require_envoy() else { return };
    let weft = PathBuf::from(env!("CARGO_BIN_EXE_weft"));
    let (cases, template) = load(file);
    let dir = TempDir::new("parity");
    let ups = Upstreams::start(&dir).await;
    let mut envoy_side = start(
        &envoy,
        &["--concurrency", "1", "-l", "error", "--use-dynamic-base-id"],
        &template,
        &ups.vars,
        &dir,
        "envoy",
        file,
    )
    .await;
    let mut weft_side = start(
        &weft,
        &["proxy", "--concurrency", "1", "-l", "error"],
        &template,
        &ups.vars,
        &dir,
        "weft",
        file,
    )
    .await;

    let mut problems = Vec::new();
    for case in &cases {
        let mut got = Vec::new();
        for side in [&envoy_side, &weft_side] {
            got.push(observe(side, case, &ups).await);
            // Let a slow upstream response finish before the next request.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let reference = &got[0][0];
        let expected_by = case.expect.served_by.as_deref().map(|s| s != "none");
        let by_ok = match (&case.expect.served_by, expected_by) {
            (Some(name), Some(true)) => reference.served_by.as_deref() == Some(name.as_str()),
            (Some(_), Some(false)) => reference.served_by.is_none(),
            _ => true,
        };
        let slow_ok = case.slow_ms.is_none() || reference.slow == Some(true);
        if reference.status != case.expect.status || !by_ok || !slow_ok {
            problems.push(format!(
                "{file}/{}: Envoy did not answer as the case expects ({:?}):\n  envoy: {:?}",
                case.name, case.expect, got[0]
            ));
        }
        if got[0] != got[1] {
            problems.push(format!(
                "{file}/{}: weft differs from Envoy\n  envoy: {:?}\n  weft:  {:?}",
                case.name, got[0], got[1]
            ));
        }
    }
    for side in [&mut envoy_side, &mut weft_side] {
        assert!(
            side.proc.try_wait().is_none(),
            "{file}: {} exited:\n{}",
            side.name,
            side.proc.tail(30)
        );
    }
    eprintln!("{file}: {} cases compared", cases.len());
    assert!(
        problems.is_empty(),
        "{} of {} cases differ:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
}

/// The masking must not hide a difference in shape: only exactly 16 lowercase hex digits in
/// quotes count as a generated value.
#[test]
fn only_generated_cookie_values_are_masked() {
    assert_eq!(
        mask_cookie_hashes("sid=\"480caea74e2a3edc\"; Max-Age=60 | b=\"0123456789abcdef\""),
        "sid=\"<hash>\"; Max-Age=60 | b=\"<hash>\""
    );
    for kept in [
        "sid=480caea74e2a3edc; HttpOnly",
        "sid=\"480CAEA74E2A3EDC\"",
        "sid=\"480caea74e2a3ed\"",
        "sid=\"480caea74e2a3edc0\"",
        "\"",
    ] {
        assert_eq!(mask_cookie_hashes(kept), kept);
    }
}

include!(concat!(env!("OUT_DIR"), "/parity_scenarios.rs"));
