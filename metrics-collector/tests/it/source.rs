//! Sources: a stream passed through byte for byte, and a followed file.

use std::io::Write;
use std::time::Duration;

use sextant_metrics::parse::{LineFormat, MetricPoint, MetricsParser, StreamParser};
use sextant_metrics::source::{collect_stream, follow_file};
use tokio::sync::{mpsc, oneshot};

fn text_parser() -> StreamParser {
    StreamParser::new(MetricsParser::new(LineFormat::Text, &["loss".to_string()], &[]).unwrap())
}

fn drain(receiver: &mut mpsc::Receiver<Vec<MetricPoint>>) -> Vec<String> {
    let mut values = Vec::new();
    while let Ok(points) = receiver.try_recv() {
        values.extend(points.into_iter().map(|point| point.value));
    }
    values
}

#[tokio::test]
async fn a_stream_passes_through_unchanged_and_survives_bad_input() -> anyhow::Result<()> {
    let mut input = b"loss=1\r\nprogress 10%\rprogress 20% loss=2\r\xff\xfe\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    input.extend_from_slice(b" loss=9\nloss=3");
    let mut output = Vec::new();
    let mut parser = text_parser();
    let (sender, mut receiver) = mpsc::channel(1024);
    collect_stream(
        &input[..],
        Some(&mut output),
        "stdout",
        &mut parser,
        &sender,
    )
    .await?;
    assert!(output == input, "the output differs from the input");
    assert_eq!(drain(&mut receiver), ["1", "2", "3"]);
    let stats = parser.stats();
    assert_eq!((stats.lines, stats.points, stats.oversized), (6, 3, 1));
    Ok(())
}

#[tokio::test]
async fn a_followed_file_is_waited_for_read_as_it_grows_and_reread_when_truncated()
-> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("metrics.log");
    let (sender, mut receiver) = mpsc::channel(1024);
    let (stop, stop_receiver) = oneshot::channel::<()>();
    let follow_path = path.clone();
    let follower = tokio::spawn(async move {
        let mut parser = text_parser();
        let result = follow_file(
            &follow_path,
            &mut parser,
            &sender,
            async {
                let _ = stop_receiver.await;
            },
            Duration::from_millis(20),
        )
        .await;
        result.map(|()| parser.stats())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut file = std::fs::File::create(&path)?;
    file.write_all(b"loss=1\nlo")?;
    file.flush()?;
    let mut values = Vec::new();
    assert!(
        crate::support::eventually(Duration::from_secs(5), || {
            values.extend(drain(&mut receiver));
            values == ["1"]
        })
        .await
    );
    file.write_all(b"ss=2\n")?;
    file.flush()?;
    assert!(
        crate::support::eventually(Duration::from_secs(5), || {
            values.extend(drain(&mut receiver));
            values == ["1", "2"]
        })
        .await
    );
    // Truncate and write shorter content: it is read from the start.
    drop(file);
    std::fs::write(&path, b"loss=3\n")?;
    assert!(
        crate::support::eventually(Duration::from_secs(5), || {
            values.extend(drain(&mut receiver));
            values == ["1", "2", "3"]
        })
        .await
    );
    // Written just before the stop, without a newline: still read.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)?
        .write_all(b"loss=4")?;
    stop.send(()).unwrap();
    let stats = follower.await??;
    values.extend(drain(&mut receiver));
    assert_eq!(values, ["1", "2", "3", "4"]);
    assert_eq!(stats.points, 4);
    Ok(())
}

#[tokio::test]
async fn a_followed_file_replaced_by_a_longer_one_is_read_from_the_start() -> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("metrics.log");
    std::fs::write(&path, b"loss=1\n")?;
    let (sender, mut receiver) = mpsc::channel(1024);
    let (stop, stop_receiver) = oneshot::channel::<()>();
    let follow_path = path.clone();
    let follower = tokio::spawn(async move {
        let mut parser = text_parser();
        follow_file(
            &follow_path,
            &mut parser,
            &sender,
            async {
                let _ = stop_receiver.await;
            },
            Duration::from_millis(20),
        )
        .await
    });
    let mut values = Vec::new();
    assert!(
        crate::support::eventually(Duration::from_secs(5), || {
            values.extend(drain(&mut receiver));
            values == ["1"]
        })
        .await
    );
    // A new file renamed over the old one, longer than what was read: a size check alone
    // would take it for the old file grown and skip its first bytes.
    let replacement = directory.path().join("metrics.new");
    std::fs::write(&replacement, b"loss=22222\nloss=3\n")?;
    std::fs::rename(&replacement, &path)?;
    assert!(
        crate::support::eventually(Duration::from_secs(5), || {
            values.extend(drain(&mut receiver));
            values == ["1", "22222", "3"]
        })
        .await,
        "{values:?}"
    );
    stop.send(()).unwrap();
    follower.await??;
    Ok(())
}

#[tokio::test]
async fn a_file_that_never_appears_ends_quietly_on_stop() -> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    let (sender, mut receiver) = mpsc::channel(16);
    let mut parser = text_parser();
    follow_file(
        &directory.path().join("never"),
        &mut parser,
        &sender,
        tokio::time::sleep(Duration::from_millis(100)),
        Duration::from_millis(20),
    )
    .await?;
    assert!(drain(&mut receiver).is_empty());
    Ok(())
}

#[tokio::test]
async fn a_path_that_is_a_directory_is_a_read_error() -> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    let (sender, _receiver) = mpsc::channel(16);
    let mut parser = text_parser();
    let error = follow_file(
        directory.path(),
        &mut parser,
        &sender,
        tokio::time::sleep(Duration::from_secs(5)),
        Duration::from_millis(20),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&error, sextant_metrics::Error::ReadFile { path, .. } if path == directory.path()),
        "{error}"
    );
    Ok(())
}
