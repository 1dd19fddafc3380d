//! Sources: a stream passed through byte for byte, and a followed file.

use std::io::Write;
use std::time::Duration;

use sextant_metrics::parse::{LineFormat, MetricsParser, ParsedMetric, StreamParser};
use sextant_metrics::source::{FollowStart, collect_stream, follow_file};
use tokio::sync::{mpsc, oneshot};

fn text_parser() -> StreamParser {
    StreamParser::new(MetricsParser::new(LineFormat::Text, &["loss".to_string()], &[]).unwrap())
}

fn drain(receiver: &mut mpsc::Receiver<Vec<ParsedMetric>>) -> Vec<String> {
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
        std::future::pending(),
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
            FollowStart::BEGINNING,
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
            FollowStart::BEGINNING,
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
        FollowStart::BEGINNING,
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
        FollowStart::BEGINNING,
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

#[tokio::test]
async fn a_file_followed_from_its_end_skips_earlier_lines_unless_it_was_rewritten()
-> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("shared.log");
    let follow = async |start| -> anyhow::Result<Vec<String>> {
        let (sender, mut receiver) = mpsc::channel(16);
        let mut parser = text_parser();
        follow_file(
            &path,
            start,
            &mut parser,
            &sender,
            std::future::ready(()),
            Duration::from_millis(20),
        )
        .await?;
        Ok(drain(&mut receiver))
    };
    std::fs::write(&path, b"loss=1\n")?;
    let start = FollowStart::end_of(&path);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)?
        .write_all(b"loss=2\n")?;
    assert_eq!(follow(start).await?, ["2"]);
    // Truncated and written again since the mark: all of it is new.
    let start = FollowStart::end_of(&path);
    std::fs::write(&path, b"loss=3\n")?;
    assert_eq!(follow(start).await?, ["3"]);
    // Replaced by a longer file: all of it is new too.
    let start = FollowStart::end_of(&path);
    let replacement = directory.path().join("replacement.log");
    std::fs::write(&replacement, b"loss=4\nloss=5\nloss=6\n")?;
    std::fs::rename(&replacement, &path)?;
    assert_eq!(follow(start).await?, ["4", "5", "6"]);
    // No file when marked: read from its beginning.
    let missing = directory.path().join("later.log");
    let start = FollowStart::end_of(&missing);
    assert_eq!(start, FollowStart::BEGINNING);
    Ok(())
}

#[tokio::test]
async fn a_stream_given_up_on_keeps_its_last_unended_line() -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    // The writing end stays open, as a pipe a background process holds.
    let (mut writer, reader) = tokio::io::duplex(1024);
    writer.write_all(b"loss=1\nloss=2").await?;
    let (sender, mut receiver) = mpsc::channel(16);
    let (give_up, given_up) = oneshot::channel::<()>();
    let reading = tokio::spawn(async move {
        let mut parser = text_parser();
        collect_stream(
            reader,
            None::<tokio::io::Sink>,
            "stdout",
            &mut parser,
            &sender,
            async {
                let _ = given_up.await;
            },
        )
        .await
    });
    let first = receiver.recv().await.expect("a first batch");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].value, "1");
    give_up.send(()).unwrap();
    reading.await??;
    assert_eq!(drain(&mut receiver), ["2"]);
    drop(writer);
    Ok(())
}
