//! Where lines come from: a child process's output, or a file that a trial writes.
//!
//! [`collect_stream`] reads a pipe to its end, writing every chunk to a pass-through writer
//! unchanged (the user still sees the training output, byte for byte, as soon as it is written)
//! before parsing it. [`follow_file`] has `tail -f` semantics: it waits for the file to appear,
//! reads it from the beginning, keeps reading what is appended until told to stop, then reads to
//! the end once more so nothing written before the stop is missed. A file that is rewritten is
//! read again from its start: one that shrinks (truncated), and one replaced by another file at
//! the same path (deleted and created again, renamed over), told apart by its inode rather than
//! its size, since a rewrite can be as long as what it replaced.
//!
//! A followed file may be shared with earlier writers (trials appending to one file outside their
//! own directories): [`FollowStart::end_of`] marks where it ends before the writer starts, and
//! only what comes after is read, unless the file is rewritten in the meantime.
//!
//! Both send the points of each chunk as one message, stamped with the time the chunk was read.

use std::io::SeekFrom;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::pin::pin;
use std::time::Duration;

use chrono::Utc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::parse::{ParsedMetric, StreamParser};
use crate::{Error, Result};

/// How much is read at once: large enough that a fast writer costs few system calls.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// How often a followed file is checked for new data, and a missing one for existence.
pub const DEFAULT_FOLLOW_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Where [`follow_file`] starts reading its file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FollowStart {
    /// The file's device, inode and length when it was marked; `None` for its beginning.
    mark: Option<(u64, u64, u64)>,
}

impl FollowStart {
    /// The file's beginning: everything in it is wanted.
    pub const BEGINNING: FollowStart = FollowStart { mark: None };

    /// The end of the file at `path` now (its beginning when there is none): what it holds now is
    /// someone else's.
    pub fn end_of(path: &Path) -> FollowStart {
        FollowStart {
            mark: std::fs::metadata(path)
                .ok()
                .map(|metadata| (metadata.dev(), metadata.ino(), metadata.len())),
        }
    }

    /// Where to start reading `file`: the mark, unless the file was replaced (another inode) or
    /// truncated (shorter than the mark) since it was marked.
    fn offset_in(self, file: &std::fs::Metadata) -> u64 {
        match self.mark {
            Some((device, inode, length))
                if (device, inode) == (file.dev(), file.ino()) && length <= file.len() =>
            {
                length
            }
            _ => 0,
        }
    }
}

/// Reads `reader` to its end, or until `give_up` completes, passing every chunk through to
/// `passthrough` and parsing it.
///
/// `stream` names the stream in errors (`stdout`, `stderr`). A pass-through writer that fails
/// (its reader went away) is dropped with a warning and collection continues, so the child never
/// blocks on a full pipe. Points are sent on `points`; if the receiver is gone they are discarded.
/// `give_up` is for a pipe that a process outliving the command holds open: what was read by
/// then counts, a last line without its end included.
pub async fn collect_stream<R, W>(
    mut reader: R,
    mut passthrough: Option<W>,
    stream: &'static str,
    parser: &mut StreamParser,
    points: &mpsc::Sender<Vec<ParsedMetric>>,
    give_up: impl Future<Output = ()>,
) -> Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut give_up = pin!(give_up);
    let mut buffer = vec![0_u8; READ_CHUNK_BYTES];
    loop {
        let length = tokio::select! {
            read = reader.read(&mut buffer) => {
                read.map_err(|source| Error::ReadStream { stream, source })?
            }
            () = &mut give_up => {
                tracing::warn!(stream, "the command's output stays open after it ended (a process it left?); no longer reading it");
                break;
            }
        };
        if length == 0 {
            break;
        }
        let chunk = &buffer[..length];
        if let Some(writer) = passthrough.as_mut() {
            let written = async {
                writer.write_all(chunk).await?;
                writer.flush().await
            };
            if let Err(error) = written.await {
                tracing::warn!(stream, %error, "cannot pass the command's output through; still collecting");
                passthrough = None;
            }
        }
        let mut found = Vec::new();
        parser.feed(chunk, Utc::now(), &mut found);
        send(points, found).await;
    }
    let mut found = Vec::new();
    parser.finish(Utc::now(), &mut found);
    send(points, found).await;
    Ok(())
}

/// Follows the file at `path` from `start` until `stop` completes, then reads what is left and
/// returns.
///
/// A missing file is waited for (checked every `poll_interval`); if it still does not exist when
/// `stop` completes, nothing is read. Any other error opening or reading it is returned.
pub async fn follow_file(
    path: &Path,
    start: FollowStart,
    parser: &mut StreamParser,
    points: &mpsc::Sender<Vec<ParsedMetric>>,
    stop: impl Future<Output = ()>,
    poll_interval: Duration,
) -> Result<()> {
    let mut stop = pin!(stop);
    let mut stopping = false;
    let read_error = |source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    };
    let mut file = loop {
        match tokio::fs::File::open(path).await {
            Ok(file) => break file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                if stopping {
                    return Ok(());
                }
                tokio::select! {
                    () = &mut stop => stopping = true,
                    () = tokio::time::sleep(poll_interval) => {}
                }
            }
            Err(error) => return Err(read_error(error)),
        }
    };
    let mut position = start.offset_in(&file.metadata().await.map_err(read_error)?);
    file.seek(SeekFrom::Start(position))
        .await
        .map_err(read_error)?;
    let mut buffer = vec![0_u8; READ_CHUNK_BYTES];
    loop {
        let length = file.read(&mut buffer).await.map_err(read_error)?;
        if length > 0 {
            position += length as u64;
            let mut found = Vec::new();
            parser.feed(&buffer[..length], Utc::now(), &mut found);
            send(points, found).await;
            continue;
        }
        if stopping {
            break;
        }
        let open = file.metadata().await.map_err(read_error)?;
        if let Ok(at_path) = tokio::fs::metadata(path).await
            && (at_path.dev(), at_path.ino()) != (open.dev(), open.ino())
        {
            tracing::info!(path = %path.display(), "metrics file was replaced; reading the new one from the start");
            file = tokio::fs::File::open(path).await.map_err(read_error)?;
            position = 0;
            parser.reset_line();
            continue;
        }
        if open.len() < position {
            tracing::info!(path = %path.display(), "metrics file was truncated; reading it from the start");
            file.seek(SeekFrom::Start(0)).await.map_err(read_error)?;
            position = 0;
            parser.reset_line();
            continue;
        }
        tokio::select! {
            () = &mut stop => stopping = true,
            () = tokio::time::sleep(poll_interval) => {}
        }
    }
    let mut found = Vec::new();
    parser.finish(Utc::now(), &mut found);
    send(points, found).await;
    Ok(())
}

async fn send(points: &mpsc::Sender<Vec<ParsedMetric>>, found: Vec<ParsedMetric>) {
    if !found.is_empty() && points.send(found).await.is_err() {
        tracing::debug!("point receiver closed; discarding points");
    }
}
