//! Warm starts (`spec.warmStart`, Katib issue 934): an experiment that begins from what
//! earlier experiments learned (`fromExperiments`), or that tries known-good points first
//! (`enqueue`, as Optuna's `enqueue_trial`). This module holds the pure rules; the drivers read
//! the earlier experiments (from the store, or in a cluster from the namespace) and ask through
//! `sextant-controller`'s `suggest` module, which puts both rules to work for every driver.
//!
//! **`fromExperiments`.** Each named experiment's succeeded trials with a value for the
//! objective are given to the algorithm ahead of this experiment's own trials, as finished
//! trials of its history ([`source_history`]). They are never this experiment's trials: they
//! count against neither `maxTrialCount` nor `parallelTrialCount`, never become its optimal
//! trial, and are read again whenever a driver starts or resumes the experiment (a study's at
//! each ask). Their metrics are read by this experiment's strategies. Rules:
//! - the objectives must be the same metrics with the same directions, in the same order, and
//!   the earlier experiment must collect every metric this one constrains, or its values would
//!   mean something else here: the experiment is refused, naming
//!   `spec.warmStart.fromExperiments[i]`;
//! - every parameter of this space must be a parameter of the earlier one, of the same type,
//!   or none of its trials could be placed here: refused likewise. Parameters only the earlier
//!   experiment has are dropped from its trials (the projection onto the shared parameters);
//! - a trial with a value this space cannot take (outside its bounds, off its step, not in its
//!   list) is left out, since the algorithms model this space only;
//! - failed, killed, metrics-unavailable and early-stopped trials are left out: an
//!   early-stopped value measures a shortened run, which the earlier experiment's stopping rule
//!   judged and this experiment's algorithm would read as a finished one;
//! - only the earlier experiment's own trials are read, not what it was warm started from.
//!
//! Only the algorithms that learn from finished trials take a warm start from experiments
//! ([`WARM_START_ALGORITHMS`]); validation refuses it for the others.
//!
//! **`enqueue`.** Each entry gives every active parameter a value (a number or a string, checked
//! against the parameter's feasible space). The first suggestions are the entries, in order,
//! each exactly once ([`next_enqueued`]): the trial made from entry `i` carries the label
//! [`ENQUEUED_INDEX_LABEL`] = `i`, and an entry is taken once a stored trial (or an assignment
//! about to become one) carries its index, so neither a resume nor a restarted driver repeats
//! or skips one. A label, rather than matching values, keeps two equal entries two trials, and
//! an algorithm's suggestion that happens to equal an entry from taking its place. Enqueued
//! trials are this experiment's trials: they count against `maxTrialCount` (so there may not
//! be more entries than it allows) and a failed one is not retried. `hyperband` and `pbt`
//! refuse enqueued points ([`OWN_TRIALS_ONLY_ALGORITHMS`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

pub use sextant_algorithms::registry::{OWN_TRIALS_ONLY_ALGORITHMS, WARM_START_ALGORITHMS};
use sextant_algorithms::{Assignment, SearchSpace};
use sextant_echo::{echo, echo_quoted};

use crate::api::common::ParameterAssignment;
use crate::api::experiment::{Experiment, ExperimentSpec};
use crate::api::trial::TrialConditionType;
use crate::domain;
use crate::engine::{ObservedTrial, RunState, objective_value};
use crate::validation::FieldError;

/// The label of a trial made from `spec.warmStart.enqueue[i]`: its index `i`.
pub const ENQUEUED_INDEX_LABEL: &str = "sextant.dev/enqueued-index";

/// An enqueued point ready to become a trial.
#[derive(Clone, Debug, PartialEq)]
pub struct EnqueuedPoint {
    /// Its position in `spec.warmStart.enqueue`.
    pub index: usize,
    /// Its values, in the order of `spec.parameters`, written as the space writes them.
    pub parameter_assignments: Vec<ParameterAssignment>,
    /// The trial's labels: [`ENQUEUED_INDEX_LABEL`].
    pub labels: BTreeMap<String, String>,
}

/// The names of the experiments a spec warm starts from.
pub fn source_names(spec: &ExperimentSpec) -> &[String] {
    spec.warm_start
        .as_ref()
        .map_or(&[], |warm_start| warm_start.from_experiments.as_slice())
}

/// The path of `spec.warmStart.fromExperiments[index]`, where every problem with that source
/// is reported.
pub fn source_path(index: usize) -> String {
    format!("spec.warmStart.fromExperiments[{index}]")
}

/// The next at most `count` enqueued points of a validated spec that no trial or pending
/// assignment has taken yet, in order. `taken` is the labels of every trial of the experiment
/// and of every assignment produced but not yet a trial.
pub fn next_enqueued<'a>(
    spec: &ExperimentSpec,
    taken: impl IntoIterator<Item = &'a BTreeMap<String, String>>,
    count: usize,
) -> Vec<EnqueuedPoint> {
    let Some(warm_start) = spec.warm_start.as_ref().filter(|w| !w.enqueue.is_empty()) else {
        return Vec::new();
    };
    let Ok(space) = domain::search_space(&spec.parameters) else {
        return Vec::new();
    };
    let taken: BTreeSet<usize> = taken
        .into_iter()
        .filter_map(|labels| labels.get(ENQUEUED_INDEX_LABEL)?.parse().ok())
        .collect();
    warm_start
        .enqueue
        .iter()
        .enumerate()
        .filter(|(index, _)| !taken.contains(index))
        // A validated spec's entries all parse; one that does not is never proposed.
        .filter_map(|(index, entry)| {
            let assignment = parse_entry(&space, entry, index).ok()?;
            Some(EnqueuedPoint {
                index,
                parameter_assignments: space
                    .format_assignment(&assignment)
                    .into_iter()
                    .map(|(name, value)| ParameterAssignment { name, value })
                    .collect(),
                labels: BTreeMap::from([(ENQUEUED_INDEX_LABEL.to_owned(), index.to_string())]),
            })
        })
        .take(count)
        .collect()
}

/// The trials of `source` (an earlier experiment, with its trials in creation order) that the
/// algorithm of the experiment `spec` describes learns from, projected onto this experiment's
/// parameters; or the rule that keeps every one of them out (see the module docs). `spec` must
/// be valid.
pub fn source_history(
    spec: &ExperimentSpec,
    source: &Experiment,
    trials: &[ObservedTrial],
) -> Result<Vec<ObservedTrial>, String> {
    let source_name = echo_quoted(&source.metadata.name);
    let objective = spec.objective.clone().unwrap_or_default();
    let source_objective = source.spec.objective.clone().unwrap_or_default();
    let optimized = objective.objective_metrics();
    if optimized != source_objective.objective_metrics() {
        let describe = |metrics: Vec<(&str, Option<&crate::api::common::ObjectiveType>)>| {
            metrics
                .iter()
                .map(|(name, direction)| {
                    let direction = direction.map_or("no direction", |d| d.as_str());
                    format!("{} ({direction})", echo(name))
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(format!(
            "experiment {source_name} optimizes {}, this one {}: its values do not compare",
            describe(source_objective.objective_metrics()),
            describe(optimized)
        ));
    }
    let collected: Vec<&str> = source_objective.metric_names().collect();
    for constraint in &spec.constraints {
        if !collected.contains(&constraint.metric_name.as_str()) {
            return Err(format!(
                "experiment {source_name} does not collect {}, which spec.constraints bounds",
                echo_quoted(&constraint.metric_name)
            ));
        }
    }
    let source_types: HashMap<&str, _> = source
        .spec
        .parameters
        .iter()
        .map(|parameter| (parameter.name.as_str(), parameter.parameter_type.as_ref()))
        .collect();
    for parameter in &spec.parameters {
        match source_types.get(parameter.name.as_str()) {
            None => {
                return Err(format!(
                    "experiment {source_name} has no parameter {}, so none of its trials has a \
                     value for it",
                    echo_quoted(&parameter.name)
                ));
            }
            Some(source_type) if *source_type != parameter.parameter_type.as_ref() => {
                fn name(t: Option<&crate::api::experiment::ParameterType>) -> &str {
                    t.map_or("untyped", |t| t.as_str())
                }
                return Err(format!(
                    "parameter {} is {} in experiment {source_name} and {} here",
                    echo_quoted(&parameter.name),
                    name(*source_type),
                    name(parameter.parameter_type.as_ref())
                ));
            }
            Some(_) => {}
        }
    }
    let space = domain::search_space(&spec.parameters).map_err(|errors| {
        format!(
            "spec.parameters is invalid: {}",
            errors.first().map(ToString::to_string).unwrap_or_default()
        )
    })?;
    let primary_strategy = objective.strategy_for(&objective.objective_metric_name);
    Ok(trials
        .iter()
        .filter(|trial| trial.condition == TrialConditionType::Succeeded)
        .filter(|trial| {
            trial
                .observation
                .metrics
                .iter()
                .find(|metric| metric.name == objective.objective_metric_name)
                .and_then(|metric| objective_value(metric, &primary_strategy))
                .is_some()
        })
        .filter_map(|trial| {
            let pairs = trial
                .parameter_assignments
                .iter()
                .filter(|pair| space.parameters().iter().any(|p| p.name == pair.name))
                .map(|pair| (pair.name.as_str(), pair.value.as_str()));
            let assignment = space.parse_assignment(pairs).ok()?;
            space.contains(&assignment).then(|| ObservedTrial {
                name: trial.name.clone(),
                parameter_assignments: space
                    .format_assignment(&assignment)
                    .into_iter()
                    .map(|(name, value)| ParameterAssignment { name, value })
                    .collect(),
                condition: TrialConditionType::Succeeded,
                run: RunState::Succeeded,
                observation: trial.observation.clone(),
                stop_requested: false,
            })
        })
        .collect())
}

/// The store-free rules of `spec.warmStart`: source names well formed, distinct and not the
/// experiment itself, an algorithm that learns from them; every enqueued point a full, feasible
/// assignment of `space` (when the parameters are valid), no more of them than
/// `maxTrialCount`, and an algorithm that takes them.
pub(crate) fn validate(experiment: &Experiment, space: Option<&SearchSpace>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let Some(warm_start) = &experiment.spec.warm_start else {
        return errors;
    };
    let mut push = |path: String, rule: String| errors.push(FieldError { path, rule });
    let algorithm = experiment
        .spec
        .algorithm
        .as_ref()
        .map_or("", |algorithm| algorithm.algorithm_name.as_str());

    let mut seen = HashMap::new();
    for (index, name) in warm_start.from_experiments.iter().enumerate() {
        let path = source_path(index);
        if name.is_empty() {
            push(path, "must name an experiment".into());
        } else if !crate::validation::is_experiment_name(name) {
            push(
                path,
                format!("{} is not an experiment name", echo_quoted(name)),
            );
        } else if *name == experiment.metadata.name {
            push(
                path,
                "names this experiment: an experiment cannot warm start from itself".into(),
            );
        } else if let Some(first) = seen.insert(name.as_str(), index) {
            push(
                path,
                format!(
                    "{} is named twice (also at index {first})",
                    echo_quoted(name)
                ),
            );
        }
    }
    if !warm_start.from_experiments.is_empty()
        && !algorithm.is_empty()
        && !WARM_START_ALGORITHMS.contains(&algorithm)
    {
        push(
            "spec.warmStart.fromExperiments".into(),
            format!(
                "algorithm {algorithm} does not learn from earlier trials; warm start from \
                 experiments works with {}",
                WARM_START_ALGORITHMS.join(", ")
            ),
        );
    }

    if warm_start.enqueue.is_empty() {
        return errors;
    }
    if OWN_TRIALS_ONLY_ALGORITHMS.contains(&algorithm) {
        push(
            "spec.warmStart.enqueue".into(),
            format!(
                "algorithm {algorithm} rebuilds its state from the trials it proposed, so it \
                 cannot take enqueued points"
            ),
        );
    }
    if let Some(max) = experiment.spec.max_trial_count
        && usize::try_from(max).is_ok_and(|max| warm_start.enqueue.len() > max)
    {
        push(
            "spec.warmStart.enqueue".into(),
            format!(
                "has {} points but spec.maxTrialCount is {max}: every enqueued point is a trial \
                 of the experiment",
                warm_start.enqueue.len()
            ),
        );
    }
    if let Some(space) = space {
        for (index, entry) in warm_start.enqueue.iter().enumerate() {
            if let Err(mut found) = parse_entry(space, entry, index) {
                errors.append(&mut found);
            }
        }
    }
    errors
}

/// Reads `spec.warmStart.enqueue[index]` as an assignment of `space`: every parameter given,
/// none unknown, each value a number or a string the parameter can take. Every problem is
/// reported, with the path of the value it is about.
fn parse_entry(
    space: &SearchSpace,
    entry: &BTreeMap<String, serde_json::Value>,
    index: usize,
) -> Result<Assignment, Vec<FieldError>> {
    let path = format!("spec.warmStart.enqueue[{index}]");
    let mut errors = Vec::new();
    for name in entry.keys() {
        if !space.parameters().iter().any(|p| p.name == *name) {
            errors.push(FieldError {
                path: format!("{path}.{name}"),
                rule: "names no parameter of spec.parameters".into(),
            });
        }
    }
    // A value for each parameter the point gives; which of the missing ones are required is
    // known once the parents' values are (an inactive conditional parameter needs none).
    let mut values: Vec<Option<sextant_algorithms::Value>> = Vec::with_capacity(space.len());
    for parameter in space.parameters() {
        let value_path = format!("{path}.{}", parameter.name);
        values.push(None);
        let text = match entry.get(&parameter.name) {
            None => continue,
            Some(serde_json::Value::String(text)) => text.clone(),
            Some(serde_json::Value::Number(number)) => number.to_string(),
            Some(other) => {
                errors.push(FieldError {
                    path: value_path,
                    rule: format!("{} must be a number or a string", echo(&other.to_string())),
                });
                continue;
            }
        };
        let infeasible = match parameter.parse_value(&text) {
            Ok(value) => match parameter.infeasibility(value) {
                None => {
                    if let Some(slot) = values.last_mut() {
                        *slot = Some(value);
                    }
                    continue;
                }
                Some(rule) => rule,
            },
            Err(sextant_algorithms::SpaceError::InvalidValue { rule, .. }) => rule,
            Err(other) => other.to_string(),
        };
        errors.push(FieldError {
            path: value_path,
            rule: format!("{} {infeasible}", echo(&text)),
        });
    }
    let filled = Assignment {
        values: values
            .iter()
            .zip(space.parameters())
            .map(|(value, parameter)| value.unwrap_or_else(|| parameter.inactive_value()))
            .collect(),
    };
    let active = space.active(&filled);
    for (index, parameter) in space.parameters().iter().enumerate() {
        if active[index] && values[index].is_none() && !entry.contains_key(&parameter.name) {
            errors.push(FieldError {
                path: format!("{path}.{}", parameter.name),
                rule: "is required: an enqueued point gives every active parameter a value".into(),
            });
        }
    }
    if errors.is_empty() {
        Ok(filled)
    } else {
        Err(errors)
    }
}
