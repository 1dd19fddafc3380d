//! Collecting the metrics a trial reports and pushing them to a DBManager.
//!
//! This crate owns the trial side of Katib's observation log: reading lines from a child
//! process's output or from a followed file, parsing them in Katib's TEXT or JSON-lines format,
//! and delivering the points to a DBManager over gRPC in batches, with retries and a bounded
//! buffer. It also owns `sextant collect` ([`run_collect`], [`CollectArgs`]), which wraps a
//! training command the way Katib's metrics-collector sidecar wraps a training container.
//!
//! The parsers are `sextant-metrics-format`'s (pure: no I/O, no clock; the caller passes the time
//! of reading), re-exported as [`parse`]. This crate depends on that and on `sextant-proto` only
//! among ours: it must not depend on the store (it talks to any DBManager, ours or Katib's, over
//! the wire) nor on the controller.
//!
//! # Layout
//! - [`parse`]: re-export of `sextant-metrics-format`: points, statistics, line splitting with a
//!   bounded line length, and the two parsers ([`parse::text`], [`parse::json`]).
//! - [`source`]: reading a child's output while passing it through, and following a file.
//! - [`push`]: the [`Pusher`], which batches, retries and buffers points for a DBManager.
//! - [`collect`]: `sextant collect`: its arguments, its configuration and [`run_collect`].

pub mod collect;
/// The parsers, from `sextant-metrics-format`.
pub use sextant_metrics_format as parse;
pub mod push;
pub mod source;

use std::path::PathBuf;

pub use collect::{
    CollectArgs, CollectConfig, CollectOutcome, run_collect, run_collect_with_output,
};
pub use parse::{
    LineFormat, MetricsParser, ParseStats, ParsedMetric, StreamParser, json::JsonParser,
    text::TextParser,
};
pub use push::{PushConfig, PushReport, Pusher};

/// Everything that can go wrong while setting up or running a collection.
///
/// Delivery failures to the DBManager are not errors: they are retried and, when they cannot be
/// overcome, counted in the [`PushReport`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The metric names or formats cannot make a parser.
    #[error(transparent)]
    Format(#[from] sextant_metrics_format::FormatError),
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
