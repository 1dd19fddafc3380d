//! Cutting a byte stream into lines of bounded length.
//!
//! Chunks arrive however the pipe or file delivers them; a line may span many chunks. Complete
//! lines inside one chunk are handed out as borrowed slices without copying; only the unfinished
//! tail of a chunk is kept, and never more than the line length limit of it: past the limit the
//! rest of that line is discarded as it arrives and the line is reported as
//! [`Line::Oversized`] once its end is seen.

/// One line cut from the stream, without its terminator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A line within the length limit.
    Complete(&'a [u8]),
    /// A line longer than the limit, whose bytes were dropped.
    Oversized,
}

/// Splits chunks at `\n` and `\r`, ignoring empty lines.
#[derive(Clone, Debug)]
pub struct LineSplitter {
    /// The unfinished line carried over from earlier chunks.
    pending: Vec<u8>,
    max_line_bytes: usize,
    /// The current line already exceeded the limit; drop bytes until its end.
    discarding: bool,
}

impl LineSplitter {
    /// A splitter that reports lines longer than `max_line_bytes` as [`Line::Oversized`].
    pub fn new(max_line_bytes: usize) -> LineSplitter {
        LineSplitter {
            pending: Vec::new(),
            max_line_bytes,
            discarding: false,
        }
    }

    /// Calls `each_line` for every line that `chunk` completes, and keeps the unfinished rest.
    pub fn push(&mut self, chunk: &[u8], mut each_line: impl FnMut(Line<'_>)) {
        let mut rest = chunk;
        while let Some(end) = memchr::memchr2(b'\n', b'\r', rest) {
            let segment = &rest[..end];
            rest = &rest[end + 1..];
            if self.discarding {
                self.discarding = false;
                each_line(Line::Oversized);
            } else if self.pending.is_empty() {
                if segment.len() > self.max_line_bytes {
                    each_line(Line::Oversized);
                } else if !segment.is_empty() {
                    each_line(Line::Complete(segment));
                }
            } else {
                if self.pending.len() + segment.len() > self.max_line_bytes {
                    each_line(Line::Oversized);
                } else {
                    self.pending.extend_from_slice(segment);
                    each_line(Line::Complete(&self.pending));
                }
                self.pending.clear();
            }
        }
        if self.discarding {
            return;
        }
        if self.pending.len() + rest.len() > self.max_line_bytes {
            self.discarding = true;
            self.pending = Vec::new();
        } else {
            self.pending.extend_from_slice(rest);
        }
    }

    /// Hands out the last line of a stream that ended without a terminator.
    pub fn finish(&mut self, mut each_line: impl FnMut(Line<'_>)) {
        if self.discarding {
            each_line(Line::Oversized);
        } else if !self.pending.is_empty() {
            each_line(Line::Complete(&self.pending));
        }
        self.reset();
    }

    /// Drops the unfinished line.
    pub fn reset(&mut self) {
        self.pending.clear();
        self.discarding = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]], max_line_bytes: usize) -> Vec<Option<String>> {
        let mut splitter = LineSplitter::new(max_line_bytes);
        let mut lines = Vec::new();
        let mut record = |line: Line<'_>| {
            lines.push(match line {
                Line::Complete(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
                Line::Oversized => None,
            })
        };
        for chunk in chunks {
            splitter.push(chunk, &mut record);
        }
        splitter.finish(&mut record);
        lines
    }

    #[test]
    fn splits_on_newline_carriage_return_and_both() {
        let lines = split(&[b"a\nb\r\nc\rd"], 100);
        assert_eq!(
            lines,
            ["a", "b", "c", "d"].map(|line| Some(line.to_string()))
        );
    }

    #[test]
    fn joins_lines_across_chunks() {
        let lines = split(&[b"ab", b"c", b"d\ne", b"f\n"], 100);
        assert_eq!(lines, [Some("abcd".to_string()), Some("ef".to_string())]);
    }

    #[test]
    fn empty_lines_are_ignored() {
        assert!(split(&[b"\n\n\r\n", b"\n"], 100).is_empty());
    }

    #[test]
    fn long_lines_are_reported_once_and_never_buffered_whole() {
        let mut splitter = LineSplitter::new(4);
        let mut lines = Vec::new();
        for chunk in [&b"ok\n12"[..], b"345", b"678", b"9\nfine"] {
            splitter.push(chunk, |line| {
                lines.push(matches!(line, Line::Oversized));
            });
            assert!(splitter.pending.len() <= 4);
        }
        splitter.finish(|line| lines.push(matches!(line, Line::Oversized)));
        assert_eq!(lines, [false, true, false]);
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_kept() {
        assert_eq!(split(&[b"1234\n12345\n"], 4), [Some("1234".into()), None]);
        assert_eq!(
            split(&[b"12", b"34\n", b"12", b"345\n"], 4),
            [Some("1234".into()), None]
        );
    }

    #[test]
    fn an_oversized_last_line_without_terminator_is_reported() {
        assert_eq!(split(&[b"a\n", b"123456"], 4), [Some("a".into()), None]);
    }
}
