//! The `Pusher` against a recording DBManager: batching, retries, rejection, overflow, giving up.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use sextant_metrics::{Error, ParsedMetric, PushConfig, Pusher};

use crate::db_manager::{RecordingDbManager, rebind, unused_address};
use crate::support::eventually;

fn points(range: std::ops::RangeInclusive<u32>) -> Vec<ParsedMetric> {
    range
        .map(|number| ParsedMetric {
            name: "loss".to_string(),
            value: number.to_string(),
            timestamp: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
                + chrono::Duration::nanoseconds(i64::from(number)),
        })
        .collect()
}

fn push_config() -> PushConfig {
    PushConfig {
        batch_size: 100,
        batch_interval: Duration::from_millis(200),
        buffer_limit: 10_000,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        request_timeout: Duration::from_secs(2),
        flush_timeout: Duration::from_secs(5),
    }
}

fn numbers(range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range.map(|number| number.to_string()).collect()
}

#[tokio::test]
async fn batches_go_out_by_size_then_by_time() -> anyhow::Result<()> {
    let db = RecordingDbManager::default();
    let (_server, address) = db.serve_anywhere();
    let pusher = Pusher::start(&address.to_string(), "trial-b", push_config())?;
    pusher.push(points(1..=250)).await;
    // The last 50 are fewer than a batch: only the batch interval sends them, before `finish`.
    assert!(eventually(Duration::from_secs(5), || db.batch_sizes().len() == 3).await);
    assert_eq!(db.batch_sizes(), [100, 100, 50]);
    let report = pusher.finish().await;
    assert_eq!(report.received, 250);
    assert_eq!(report.delivered, 250);
    assert_eq!(db.values_of("loss"), numbers(1..=250));
    let first = &db.points()[0];
    assert_eq!(first.trial_name, "trial-b");
    assert_eq!(first.time_stamp, "2026-01-02T03:04:05.000000001Z");
    Ok(())
}

#[tokio::test]
async fn transient_errors_are_retried_until_delivered_once() -> anyhow::Result<()> {
    let db = RecordingDbManager::default();
    let (_server, address) = db.serve_anywhere();
    db.fail_next(3);
    let pusher = Pusher::start(&format!("http://{address}"), "trial-r", push_config())?;
    pusher.push(points(1..=10)).await;
    let report = pusher.finish().await;
    assert_eq!(report.failed_attempts, 3);
    assert_eq!(report.delivered, 10);
    assert_eq!(db.values_of("loss"), numbers(1..=10));
    Ok(())
}

#[tokio::test]
async fn a_batch_stored_before_its_reply_was_lost_is_not_stored_twice() -> anyhow::Result<()> {
    let db = RecordingDbManager::default();
    let (_server, address) = db.serve_anywhere();
    db.lose_ack_next(2);
    let pusher = Pusher::start(&address.to_string(), "trial-l", push_config())?;
    pusher.push(points(1..=10)).await;
    pusher.push(points(11..=15)).await;
    let report = pusher.finish().await;
    assert_eq!(report.failed_attempts, 2);
    assert_eq!(report.delivered, 15);
    let mut stored = db.values_of("loss");
    stored.sort_by_key(|value| value.parse::<u32>().unwrap_or(0));
    assert_eq!(stored, numbers(1..=15), "every point exactly once");
    Ok(())
}

#[tokio::test]
async fn permanent_errors_drop_the_batch_instead_of_blocking() -> anyhow::Result<()> {
    let db = RecordingDbManager::default();
    let (_server, address) = db.serve_anywhere();
    db.reject_all();
    let pusher = Pusher::start(&address.to_string(), "trial-p", push_config())?;
    pusher.push(points(1..=5)).await;
    let started = std::time::Instant::now();
    let report = pusher.finish().await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "finish did not wait for the timeout"
    );
    assert_eq!(report.rejected, 5);
    assert_eq!(report.delivered, 0);
    assert_eq!(report.failed_attempts, 0);
    Ok(())
}

#[tokio::test]
async fn a_full_buffer_drops_the_oldest_points() -> anyhow::Result<()> {
    let db = RecordingDbManager::default();
    let address = unused_address();
    let config = PushConfig {
        buffer_limit: 10,
        batch_size: 5,
        ..push_config()
    };
    let pusher = Pusher::start(&address.to_string(), "trial-o", config)?;
    pusher.push(points(1..=25)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _server = db.serve(rebind(address).await);
    let report = pusher.finish().await;
    assert_eq!(report.received, 25);
    assert_eq!(report.dropped, 15);
    assert_eq!(report.delivered, 10);
    assert!(report.failed_attempts > 0);
    assert_eq!(db.values_of("loss"), numbers(16..=25));
    Ok(())
}

#[tokio::test]
async fn an_unreachable_db_manager_is_given_up_at_the_flush_timeout() -> anyhow::Result<()> {
    let config = PushConfig {
        flush_timeout: Duration::from_millis(300),
        ..push_config()
    };
    let pusher = Pusher::start(&unused_address().to_string(), "trial-u", config)?;
    pusher.push(points(1..=3)).await;
    let started = std::time::Instant::now();
    let report = pusher.finish().await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(report.undelivered, 3);
    assert_eq!(report.delivered, 0);
    assert!(report.failed_attempts > 0);
    Ok(())
}

#[tokio::test]
async fn an_invalid_address_is_a_typed_error() {
    let error = Pusher::start("http://exa mple:1", "trial", PushConfig::default()).unwrap_err();
    assert!(
        matches!(&error, Error::InvalidDbManagerAddress { address, .. } if address == "http://exa mple:1"),
        "{error}"
    );
}
