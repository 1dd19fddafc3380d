//! The drivers of experiments: on one machine ([`local`]: `sextant run`) and in a Kubernetes
//! cluster ([`kube`]: `sextant controller`), around the pure engine of `sextant-experiment`.
//!
//! `sextant-experiment` owns the API contract (Katib's types, parsing, defaulting, validation,
//! placeholders) and the decisions (`plan(observed) -> actions`), with no tokio, kube or sqlx;
//! this crate observes the world for it and carries out what it decides. It depends on
//! `sextant-experiment`, `sextant-conditions` (judging a run object from its status),
//! `sextant-algorithms` (search domain, settings validation), `sextant-metrics` (reading and
//! parsing trial output), `sextant-process` (trials' process groups), `sextant-store`
//! (observation logs, the local driver's memory), `sextant-pipeline` (pipeline trials, their
//! Argo compilation and the `tune` step, through its public API), `sextant-suggestion` and
//! `sextant-proto` (asking the search algorithm, in process or from a remote Suggestion
//! service), and kube / kube-runtime (the Kubernetes driver); only the binary and `sextant-server`
//! (which runs submitted experiments with the local driver) depend on it.
//!
//! # Layout
//! - [`observation_log`]: trials' observation logs read from the store.
//! - [`suggest`]: asking the search algorithm, in process or from a service.
//! - [`local`]: the local driver: `sextant run` on one machine.
//! - [`kube`]: the Kubernetes driver: `sextant controller`, the custom resources and their
//!   definitions, and pipelines compiled for a cluster ([`kube::tune_argo`]: `tune` steps as
//!   Argo resource templates).
//! - [`cli`]: `sextant run`, `validate` and `get` (and `pipeline` with the `tune` kind): the
//!   commands and their text, for the binary to call.

pub mod cli;
pub mod kube;
pub mod local;
pub mod observation_log;
pub mod suggest;
