//! Experiments as data and decisions: Katib's Experiment, Trial and Suggestion API types, their
//! parsing, defaulting and validation, the trial template placeholders, and the pure engine
//! that decides what to do next.
//!
//! This crate owns the API contract (`kubeflow.org/v1beta1`, also read as
//! `sextant.dev/v1beta1`) and the decisions of every driver: the local one, the Kubernetes one
//! and the server's (in `sextant-controller`) observe the world, call [`engine::plan`] and carry
//! out its actions. It is pure, and Cargo holds it to that: no tokio, no kube, no sqlx, no file
//! or network I/O, no clock (time comes in [`engine::Observed::now`]). It depends on
//! `sextant-algorithms` (search domain, settings validation), `sextant-conditions` (the default
//! success and failure conditions of run kinds), `sextant-pipeline-expr` (checking a Pipeline
//! template's `when` conditions), `sextant-metrics-format` (checking `metricsFormat` regexes with
//! the collector's own parser) and `sextant-echo` (input quoted in messages).
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
//! - [`engine`]: the pure `plan(observed)` and the status computation.
//! - [`observation`]: a trial's observation from its observation log.
//! - [`warm_start`]: `spec.warmStart`: enqueued points first, each once, and the trials of
//!   earlier experiments as the algorithm's history.

pub mod api;
pub mod defaults;
pub mod domain;
pub mod engine;
pub mod observation;
pub mod parse;
pub mod placeholders;
pub mod validation;
pub mod warm_start;

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
    #[error("experiment {} is invalid:\n{errors}", sextant_echo::echo_quoted(name))]
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
