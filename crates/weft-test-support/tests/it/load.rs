use std::time::Duration;

use weft_test_support::{HttpServer, LoadConfig, load, load_with};

#[tokio::test]
async fn load_counts_everything() {
    let server = HttpServer::start("l").await;
    let report = load(server.addr(), 200, 4, None).await;
    assert_eq!(report.ok, 200, "{report:?}");
    assert_eq!(report.failed, 0);
    assert_eq!(report.statuses[&200], 200);
    assert_eq!(report.served_by["l"], 200);
    assert_eq!(report.latencies.len(), 200);
    assert!(report.connections <= 4);
    assert!(report.percentile(99.0) >= report.percentile(50.0));
}

#[tokio::test]
async fn load_reports_failures() {
    let server = HttpServer::start("l").await;
    server.set_flaky(Some(4));
    let report = load(server.addr(), 100, 2, None).await;
    assert_eq!(report.failed, 25);
    assert_eq!(report.statuses[&503], 25);
}

#[tokio::test]
async fn load_is_time_bounded() {
    let server = HttpServer::start("l").await;
    let mut config = LoadConfig::new(server.addr(), 1000, 2);
    config.rate = Some(20);
    config.max_duration = Duration::from_millis(300);
    let report = load_with(config).await;
    assert!(
        report.elapsed < Duration::from_secs(1),
        "{:?}",
        report.elapsed
    );
    assert!(report.ok > 0 && report.ok <= 8, "{}", report.ok);
    assert_eq!(report.not_sent, 1000 - report.total());
}

#[tokio::test]
async fn load_counts_requests_lost_to_connection_resets() {
    let server = HttpServer::start("l").await;
    let mut config = LoadConfig::new(server.addr(), 10, 1);
    config.headers = vec![("x-test-reset".into(), "true".into())];
    let report = load_with(config).await;
    assert_eq!(report.failed, 10);
    assert_eq!(report.errors.values().sum::<usize>(), 10);
}
