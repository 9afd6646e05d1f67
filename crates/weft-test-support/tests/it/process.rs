use std::process::Command;
use std::time::{Duration, Instant};

use weft_test_support::{ChildProcess, HttpServer, wait_for_http_ok, wait_for_port, weft_binary};

fn sh(script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    cmd
}

#[tokio::test]
async fn captures_output_and_terminates_on_drop() {
    let mut child = ChildProcess::spawn(sh("echo out; echo err >&2; exec sleep 30"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(child.stdout().contains("out") && child.stderr().contains("err")) {
        assert!(Instant::now() < deadline, "{}", child.tail(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(child.tail(5).contains("out"));
    assert!(child.try_wait().is_none());
    let started = Instant::now();
    let status = child.terminate().unwrap();
    assert!(!status.success());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "SIGTERM suffices"
    );
}

#[tokio::test]
async fn sigkill_after_the_grace_period() {
    // `exec` keeps the ignored SIGTERM and leaves no grandchild behind.
    let mut child = ChildProcess::spawn(sh("trap '' TERM; exec sleep 5"))
        .with_grace(Duration::from_millis(200));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    child.terminate().unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[tokio::test]
#[should_panic(expected = "exited")]
async fn waiting_on_a_dead_child_panics_with_its_logs() {
    let mut child = ChildProcess::spawn(sh("echo boom >&2; exit 3"));
    child
        .wait_for_port("127.0.0.1:1".parse().unwrap(), Duration::from_secs(5))
        .await;
}

#[tokio::test]
async fn waits_for_ports_and_readiness() {
    let server = HttpServer::start("ready").await;
    wait_for_port(server.addr(), Duration::from_secs(1))
        .await
        .unwrap();
    wait_for_http_ok(&server.url("/ready"), Duration::from_secs(1))
        .await
        .unwrap();
    let err = wait_for_http_ok(&server.url("/?x"), Duration::from_millis(100)).await;
    assert!(err.is_ok());
    let not_ready = HttpServer::start("nr").await;
    not_ready.fail_next(1000, 503);
    assert!(
        wait_for_http_ok(&not_ready.url("/"), Duration::from_millis(200))
            .await
            .is_err()
    );
    let free = weft_test_support::free_addr();
    assert!(
        wait_for_port(free, Duration::from_millis(100))
            .await
            .is_err()
    );
}

#[test]
fn weft_binary_prefers_an_explicit_path() {
    let exe = std::env::current_exe().unwrap();
    assert_eq!(weft_binary(Some(&exe)), Some(exe));
}
