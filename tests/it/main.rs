//! End-to-end tests of the `sextant` binary: real processes, real gRPC over loopback.
//!
//! One test binary for the whole package keeps link time down on small machines.

mod artifacts;
mod deploy;
mod hostile_input;
mod k8s_persistence_agent;
mod k8s_pipeline_runs;
mod k8s_recurring_runs;
mod k8s_schema;
mod k8s_tune_step;
mod katib_interop;
mod kubernetes;
mod observation_log_durability;
mod pipelines;
mod python_client;
mod remote_cli;
mod run_experiment;
mod serve_early_stopping;
mod serve_suggestion;
mod server;
mod support;
