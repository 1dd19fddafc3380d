//! The experiment controller: Katib's Experiment, Trial and Suggestion API types, their
//! defaulting and validation, and the pure experiment engine that decides what to do next.
//!
//! This crate owns the API contract (`kubeflow.org/v1beta1`, also read as
//! `sextant.dev/v1beta1`, and the custom resource definitions generated from it), the decisions
//! of the controller, and the two drivers that carry them out: on one machine ([`local`]) and in
//! a Kubernetes cluster ([`kube`]). The API types, parsing, defaulting, validation, the trial
//! conditions and the engine are pure: no tokio, no file or network I/O, no clock (time comes in
//! [`engine::Observed::now`]). Only the drivers (and [`suggest`], which they share) do I/O
//! around the engine. It depends on `sextant-algorithms` (search domain, settings
//! validation), `sextant-metrics` (reading and parsing trial output), `sextant-process`
//! (trials' process groups), `sextant-store` (observation logs, the
//! local driver's memory), `sextant-pipeline` (pipeline trials, their Argo compilation and the
//! `tune` step, through its public API), `sextant-suggestion` and `sextant-proto` (asking the
//! search algorithm, in process or from a remote Suggestion service), and kube / kube-runtime
//! (the Kubernetes driver); nothing depends on it but the binary.
//!
//! Typical use: [`parse::parse_experiments`], then [`defaults::apply_defaults`], then
//! [`validation::validate`] (or [`load_experiments`] for all three), then repeatedly
//! [`engine::plan`] on what the driver observes.
//!
//! # Layout
//! - [`api`]: the API types, field for field; conditions and their update rule.
//! - [`parse`]: reading Experiments from multi-document YAML.
//! - [`defaults`]: Katib's defaulting.
//! - [`validation`]: Katib's webhook rules and Sextant's own, every error with its field path.
//! - [`domain`]: conversion of the spec to the search domain model of `sextant-algorithms`.
//! - [`placeholders`]: `${trialParameters.x}` and `${trialSpec.Name}` references, and their
//!   substitution into template strings.
//! - [`conditions`]: re-export of `sextant-conditions`, Katib's GJSON-style success and failure
//!   conditions of trial run objects (its own crate: it depends on nothing of ours).
//! - [`engine`]: the pure `plan(observed)` and the status computation.
//! - [`observation`]: a trial's observation from its observation log.
//! - [`suggest`]: asking the search algorithm, in process or from a service.
//! - [`local`]: the local driver: `sextant run` on one machine.
//! - [`kube`]: the Kubernetes driver: `sextant controller`.
//! - [`cli`]: `sextant run`, `validate` and `get` (and `pipeline` with the `tune` kind): the
//!   commands and their text, for the binary to call.

pub mod api;
pub mod cli;
pub use sextant_conditions as conditions;
pub mod defaults;
pub mod domain;
pub mod engine;
pub mod kube;
pub mod local;
pub mod observation;
pub mod parse;
pub mod placeholders;
pub mod suggest;
pub mod validation;

pub use api::experiment::Experiment;
pub use engine::{Action, Observed, ObservedSuggestion, ObservedTrial, Plan, RunState, plan};
pub use validation::{FieldError, ValidationErrors};

/// Why a file's Experiments cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file is not valid YAML or does not fit the schema.
    #[error(transparent)]
    Parse(#[from] parse::ParseError),
    /// An Experiment breaks validation rules.
    #[error(
        "experiment {} is invalid:\n{errors}",
        sextant_store::echo::echo_quoted(name)
    )]
    Invalid {
        /// The experiment's `metadata.name`.
        name: String,
        /// Every problem found.
        errors: ValidationErrors,
    },
}

/// Parses, defaults and validates every Experiment of a YAML text.
pub fn load_experiments(text: &str) -> Result<Vec<Experiment>, LoadError> {
    let mut experiments = parse::parse_experiments(text)?;
    for experiment in &mut experiments {
        defaults::apply_defaults(experiment);
        validation::validate(experiment).map_err(|errors| LoadError::Invalid {
            name: experiment.metadata.name.clone(),
            errors,
        })?;
    }
    Ok(experiments)
}
