//! Katib's metrics formats: turning lines of trial output into metric points, without I/O.
//!
//! A [`MetricsParser`] examines one line at a time and appends the points it finds to a vector the
//! caller owns (so a line without metrics costs no allocation). A [`StreamParser`] pairs one with
//! a [`LineSplitter`], which cuts arbitrary chunks of bytes (as a pipe or a file delivers them)
//! into lines while never holding more than a bounded number of bytes of one line: a line longer
//! than [`DEFAULT_MAX_LINE_BYTES`] is skipped and counted in [`ParseStats::oversized`], so a
//! runaway line (a progress bar without newlines, a dumped tensor) cannot exhaust memory.
//!
//! Lines end at `\n`, at `\r\n` and at a lone `\r`: progress bars (tqdm, Keras) redraw with `\r`,
//! and each redraw is a line of its own, stamped with its own time of reading. Empty lines are
//! ignored and not counted. Invalid UTF-8 is replaced with U+FFFD per line (as Go's regexp, which
//! Katib uses, treats it), never a panic.
//!
//! Its own crate, apart from the collector (`sextant-metrics`, which reads processes and files
//! and pushes to a DBManager), so that what only checks a format can use the very parser the
//! collector runs: the experiment crate's validation of `metricsFormat` regexes. Pure: no I/O,
//! no async runtime, no clock (the caller passes the time of reading), nothing else of ours;
//! the `clap` feature lets [`LineFormat`] be a command-line value.
//!
//! # Layout
//! - this module: points, statistics, the format and the parser over both formats.
//! - [`lines`]: line splitting with a bounded line length.
//! - [`text`]: the TEXT format (Katib's default `name=value` regex or custom `metricsFormat`
//!   regexes, with an optional leading RFC3339 timestamp).
//! - [`json`]: JSON lines.

pub mod json;
pub mod lines;
pub mod text;

use chrono::{DateTime, Utc};

pub use lines::{Line, LineSplitter};

use crate::{json::JsonParser, text::TextParser};

/// Why a parser cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// No metric name was given, so nothing could ever be collected.
    #[error("no metric names given: at least one is needed, the first is the objective")]
    NoMetricNames,
    /// A metric name was empty, which would match every line.
    #[error("metric name {index} is empty")]
    EmptyMetricName {
        /// Position of the empty name in the list.
        index: usize,
    },
    /// A `metricsFormat` regex does not compile.
    #[error("metricsFormat regex `{regex}` is invalid")]
    InvalidMetricsFormat {
        /// The regex as given.
        regex: String,
        /// What the regex compiler said.
        #[source]
        source: regex::Error,
    },
    /// A `metricsFormat` regex has fewer than the two capture groups (name, value) Katib requires.
    #[error(
        "metricsFormat regex `{regex}` has {groups} capture group(s); it needs at least two: \
         group 1 the metric name, group 2 the value"
    )]
    MetricsFormatNeedsTwoGroups {
        /// The regex as given.
        regex: String,
        /// How many capture groups it has (not counting the whole match).
        groups: usize,
    },
    /// `metricsFormat` regexes were given with the JSON format, which has no use for them (Katib
    /// rejects the same combination).
    #[error("metricsFormat regexes apply to the TEXT format only, not to JSON")]
    MetricsFormatWithJson,
}

/// The result type of this crate.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;

/// Lines longer than this many bytes are skipped (and counted): 1 MiB, far beyond any line that
/// reports metrics, small enough that a runaway line cannot exhaust memory.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

/// One reported value of one metric, as parsed from a trial's output (the store's
/// `MetricPoint` is the same value once logged under a trial's name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedMetric {
    /// The metric's name, exactly as requested.
    pub name: String,
    /// The value as the trial reported it (`0.3`, `.98`, `nan`, `1e999`): the DBManager keeps this
    /// text and derives a number only when it parses to a finite one.
    pub value: String,
    /// When the value was reported: the line's own timestamp when it has one, else the time the
    /// line was read.
    pub timestamp: DateTime<Utc>,
}

/// Counts of what a parser has seen, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParseStats {
    /// Non-empty lines examined, oversized ones included.
    pub lines: u64,
    /// Points produced.
    pub points: u64,
    /// Lines that produced no point: no requested metric in them, not valid JSON, or too long.
    pub skipped: u64,
    /// Of the skipped lines, those longer than the line length limit.
    pub oversized: u64,
}

impl ParseStats {
    /// Adds another parser's counts to these (stdout and stderr are parsed separately).
    pub fn add(&mut self, other: ParseStats) {
        self.lines += other.lines;
        self.points += other.points;
        self.skipped += other.skipped;
        self.oversized += other.oversized;
    }
}

/// The two line formats Katib knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum), value(rename_all = "lower"))]
pub enum LineFormat {
    /// `name=value` pairs found by regexes (Katib's `TEXT`).
    #[default]
    Text,
    /// One JSON object per line (Katib's `JSON`).
    Json,
}

/// Checks that at least one name is given and none is empty (an empty name is a substring of
/// every line).
pub(crate) fn validate_metric_names(metric_names: &[String]) -> crate::Result<()> {
    if metric_names.is_empty() {
        return Err(crate::FormatError::NoMetricNames);
    }
    match metric_names.iter().position(|name| name.trim().is_empty()) {
        Some(index) => Err(crate::FormatError::EmptyMetricName { index }),
        None => Ok(()),
    }
}

/// Looks `name` up in a parser's names and their seen flags.
fn metric_seen(metric_names: &[String], seen: &[bool], name: &str) -> bool {
    metric_names
        .iter()
        .zip(seen)
        .any(|(wanted, seen)| *seen && wanted == name)
}

/// A parser of either format, so sources need not be generic.
#[derive(Clone, Debug)]
pub enum MetricsParser {
    /// The TEXT format.
    Text(TextParser),
    /// The JSON-lines format.
    Json(JsonParser),
}

impl MetricsParser {
    /// Builds the parser for `format`, validating names and regexes.
    ///
    /// `metrics_formats` are custom TEXT regexes (Katib's `metricsFormat`); empty means Katib's
    /// default regex. They are an error with the JSON format.
    pub fn new(
        format: LineFormat,
        metric_names: &[String],
        metrics_formats: &[String],
    ) -> crate::Result<MetricsParser> {
        match format {
            LineFormat::Text => Ok(MetricsParser::Text(TextParser::new(
                metric_names,
                metrics_formats,
            )?)),
            LineFormat::Json if !metrics_formats.is_empty() => {
                Err(crate::FormatError::MetricsFormatWithJson)
            }
            LineFormat::Json => Ok(MetricsParser::Json(JsonParser::new(metric_names)?)),
        }
    }

    /// Parses one line (without its terminator), appending its points to `points`.
    ///
    /// `read_time` stamps points whose line carries no timestamp of its own.
    pub fn parse_line(
        &mut self,
        line: &[u8],
        read_time: DateTime<Utc>,
        points: &mut Vec<ParsedMetric>,
    ) {
        match self {
            MetricsParser::Text(parser) => parser.parse_line(line, read_time, points),
            MetricsParser::Json(parser) => parser.parse_line(line, read_time, points),
        }
    }

    /// Counts a line that was too long to be kept (the splitter dropped it).
    pub fn record_oversized_line(&mut self) {
        let stats = match self {
            MetricsParser::Text(parser) => &mut parser.stats,
            MetricsParser::Json(parser) => &mut parser.stats,
        };
        stats.lines += 1;
        stats.skipped += 1;
        stats.oversized += 1;
    }

    /// The counts so far.
    pub fn stats(&self) -> ParseStats {
        match self {
            MetricsParser::Text(parser) => parser.stats,
            MetricsParser::Json(parser) => parser.stats,
        }
    }

    /// Whether `name` produced at least one point so far.
    pub fn metric_seen(&self, name: &str) -> bool {
        match self {
            MetricsParser::Text(parser) => parser.metric_seen(name),
            MetricsParser::Json(parser) => parser.metric_seen(name),
        }
    }
}

/// A parser fed with arbitrary chunks of a byte stream.
#[derive(Clone, Debug)]
pub struct StreamParser {
    splitter: LineSplitter,
    parser: MetricsParser,
}

impl StreamParser {
    /// Wraps `parser`, cutting lines at [`DEFAULT_MAX_LINE_BYTES`].
    pub fn new(parser: MetricsParser) -> StreamParser {
        StreamParser::with_max_line_bytes(parser, DEFAULT_MAX_LINE_BYTES)
    }

    /// Wraps `parser`, skipping lines longer than `max_line_bytes`.
    pub fn with_max_line_bytes(parser: MetricsParser, max_line_bytes: usize) -> StreamParser {
        StreamParser {
            splitter: LineSplitter::new(max_line_bytes),
            parser,
        }
    }

    /// Parses every line that `chunk` completes, appending points to `points`.
    pub fn feed(&mut self, chunk: &[u8], read_time: DateTime<Utc>, points: &mut Vec<ParsedMetric>) {
        let parser = &mut self.parser;
        self.splitter.push(chunk, |line| {
            Self::handle_line(parser, line, read_time, points)
        });
    }

    /// Parses the last line when the stream ended without a terminator.
    pub fn finish(&mut self, read_time: DateTime<Utc>, points: &mut Vec<ParsedMetric>) {
        let parser = &mut self.parser;
        self.splitter
            .finish(|line| Self::handle_line(parser, line, read_time, points));
    }

    /// Forgets a partial line, for a followed file that was truncated and starts over.
    pub fn reset_line(&mut self) {
        self.splitter.reset();
    }

    /// The counts so far.
    pub fn stats(&self) -> ParseStats {
        self.parser.stats()
    }

    /// Whether `name` produced at least one point so far.
    pub fn metric_seen(&self, name: &str) -> bool {
        self.parser.metric_seen(name)
    }

    fn handle_line(
        parser: &mut MetricsParser,
        line: Line<'_>,
        read_time: DateTime<Utc>,
        points: &mut Vec<ParsedMetric>,
    ) {
        match line {
            Line::Complete(bytes) => parser.parse_line(bytes, read_time, points),
            Line::Oversized => parser.record_oversized_line(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn stream_parser_joins_chunks_and_counts_oversized_lines() {
        let parser = MetricsParser::new(LineFormat::Text, &names(&["loss"]), &[]).unwrap();
        let mut stream = StreamParser::with_max_line_bytes(parser, 16);
        let mut points = Vec::new();
        let now = Utc::now();
        stream.feed(b"lo", now, &mut points);
        stream.feed(b"ss=0.5\nloss=", now, &mut points);
        stream.feed(b"0.25000000000000000000\nloss=0.1", now, &mut points);
        stream.finish(now, &mut points);
        let values: Vec<&str> = points.iter().map(|point| point.value.as_str()).collect();
        assert_eq!(values, ["0.5", "0.1"]);
        assert_eq!(
            stream.stats(),
            ParseStats {
                lines: 3,
                points: 2,
                skipped: 1,
                oversized: 1
            }
        );
    }

    #[test]
    fn json_with_metrics_formats_is_an_error() {
        let error = MetricsParser::new(LineFormat::Json, &names(&["loss"]), &names(&["(a)(b)"]))
            .unwrap_err();
        assert!(matches!(error, crate::FormatError::MetricsFormatWithJson));
    }
}
