//! Collecting the metrics a trial reports and pushing them to a DBManager.
//!
//! This crate owns the trial side of Katib's observation log: parsing the TEXT format (Katib's
//! default `name=value` regex or custom `metricsFormat` regexes, with an optional leading RFC3339
//! timestamp) and JSON lines, reading them from a child process's output or from a followed file,
//! and delivering the points to a DBManager over gRPC in batches, with retries and a bounded
//! buffer. It also owns `sextant collect` ([`run_collect`], [`CollectArgs`]), which wraps a
//! training command the way Katib's metrics-collector sidecar wraps a training container.
//!
//! The parsers are pure (no I/O, no clock: the caller passes the time of reading) so they can be
//! benchmarked and fuzzed alone. This crate depends on `sextant-proto` only among ours: it must not
//! depend on the store (it talks to any DBManager, ours or Katib's, over the wire) nor on the
//! controller.
//!
//! # Layout
//! - [`parse`]: points, statistics, line splitting with a bounded line length, and the two
//!   parsers ([`parse::text`], [`parse::json`]).
//! - [`source`]: reading a child's output while passing it through, and following a file.
//! - [`push`]: the [`Pusher`], which batches, retries and buffers points for a DBManager.
//! - [`collect`]: `sextant collect`: its arguments, its configuration and [`run_collect`].

pub mod collect;
pub mod parse;
pub mod push;
pub mod source;

use std::path::PathBuf;

pub use collect::{
    CollectArgs, CollectConfig, CollectOutcome, run_collect, run_collect_with_output,
};
pub use parse::{
    LineFormat, MetricPoint, MetricsParser, ParseStats, StreamParser, json::JsonParser,
    text::TextParser,
};
pub use push::{PushConfig, PushReport, Pusher};

/// Everything that can go wrong while setting up or running a collection.
///
/// Delivery failures to the DBManager are not errors: they are retried and, when they cannot be
/// overcome, counted in the [`PushReport`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
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
    /// The DBManager address is not a valid URI.
    #[error("DBManager address `{address}` is invalid")]
    InvalidDbManagerAddress {
        /// The address as given.
        address: String,
        /// What the URI parser said.
        #[source]
        source: tonic::transport::Error,
    },
    /// No command was given to run.
    #[error("no command given to run (put it after `--`)")]
    NoCommand,
    /// The command could not be started.
    #[error("cannot start command `{program}`")]
    Spawn {
        /// The program, as given.
        program: String,
        /// Why the operating system refused.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the command failed.
    #[error("cannot wait for command `{program}`")]
    Wait {
        /// The program, as given.
        program: String,
        /// Why the operating system refused.
        #[source]
        source: std::io::Error,
    },
    /// A metrics file could not be read (other than not existing yet, which is waited for).
    #[error("cannot read metrics file {path}")]
    ReadFile {
        /// The file being followed.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// Reading a child's output stream failed.
    #[error("cannot read the command's {stream}")]
    ReadStream {
        /// `stdout` or `stderr`.
        stream: &'static str,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
