//! Validation of a defaulted Experiment: Katib's webhook rules, the algorithm's and early
//! stopping's own settings checks, the placeholder checks of the trial template, and the
//! store-free rules of a warm start ([`crate::warm_start`]), every problem reported at once
//! with the field path it concerns. That the experiments a warm start names exist and fit is
//! checked by the drivers, which can read them.
//!
//! What Sextant rejects as out of scope (each with a rule starting with `not supported`):
//! neural architecture search (`spec.nasConfig`, the `enas` and `darts` algorithms);
//! and the metrics collectors `TensorFlowEvent` (Sextant
//! has no TensorFlow event-file reader), `PrometheusMetric` (Katib ships no implementation
//! either) and `Custom` (a user container injected into the trial's pod has no local meaning).
//!
//! Where Sextant differs from Katib's webhook, on purpose: `metadata.name` is matched whole
//! (Katib's pattern is unanchored at the end); a `configMap` source needs only `templatePath`
//! (locally a file; name and namespace matter in a cluster only); a `File` collector's path
//! may be relative (to the trial's working directory); `trialParameters` may be empty when
//! the template has no placeholders; `min > max`, unparsable bounds and duplicate list
//! values are rejected (Katib lets the suggestion service fail later); and success and
//! failure conditions are not needed for Sextant's own `Process` and `Pipeline` kinds.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use sextant_algorithms::algorithm::BuildContext;
use sextant_algorithms::early_stopping::build_early_stopping;
use sextant_algorithms::{SettingsError, SpaceError, build_algorithm, known_algorithms};
use sextant_echo::{cut, echo, echo_quoted};
use sextant_metrics_format::text::TextParser;
use sextant_pipeline_expr::condition::MAX_CONDITION_BYTES;

use crate::api::common::{
    AlgorithmSetting, CollectorKind, FileFormat, FileSystemKind, MetricStrategyType,
    MetricsCollectorSpec, ObjectiveSpec, ObjectiveType,
};
use crate::api::experiment::{
    Experiment, ExperimentSpec, ParameterType, ResumePolicy, TrialTemplate,
};
use crate::api::template::{PipelineTemplate, ProcessTemplate, RunKind};
use crate::api::{KATIB_API_VERSION, SEXTANT_API_VERSION, is_supported_api_version};
use crate::domain;
use crate::placeholders::{MetadataReference, find_placeholders, is_array_item};

/// The longest experiment name Katib accepts.
pub const MAX_EXPERIMENT_NAME_LENGTH: usize = 40;

/// The longest rule message kept whole; rules that quote a long value are cut past it.
const MAX_RULE_CHARACTERS: usize = 1000;

/// One problem: where, and which rule it breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field path, e.g. `spec.parameters[2].feasibleSpace`.
    pub path: String,
    /// The rule broken, with the values involved, e.g. `min 5 > max 1`.
    pub rule: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.path, self.rule)
    }
}

/// Every problem found in a spec, in the order of the spec's fields.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                formatter.write_str("\n")?;
            }
            write!(formatter, "{error}")?;
        }
        Ok(())
    }
}

impl ValidationErrors {
    /// Whether some error is about `path` exactly.
    pub fn has_path(&self, path: &str) -> bool {
        self.0.iter().any(|error| error.path == path)
    }
}

/// Validates a defaulted experiment (see [`crate::defaults::apply_defaults`]). A `configMap`
/// template is not read here (validation does no I/O); use [`validate_with_template`] once the
/// driver has read it.
pub fn validate(experiment: &Experiment) -> Result<(), ValidationErrors> {
    validate_with_template(experiment, None)
}

/// Validates a defaulted experiment, checking the placeholders of a `configMap` template
/// whose content the caller has read and parsed.
pub fn validate_with_template(
    experiment: &Experiment,
    config_map_template: Option<&serde_json::Value>,
) -> Result<(), ValidationErrors> {
    let mut errors = Errors::default();
    validate_search(experiment, &mut errors);
    validate_trial_template(&experiment.spec, config_map_template, &mut errors);
    if let Some(collector) = &experiment.spec.metrics_collector_spec {
        validate_metrics_collector(collector, &mut errors);
    }
    errors.finish()
}

/// Validates a defaulted study: an experiment whose trials its client runs and reports
/// (`sextant server`'s ask and tell), so it has no trial template, and giving one is an error
/// (its metrics collector, defaulted like an experiment's, is not used). Every other rule is
/// the experiment's.
pub fn validate_study(experiment: &Experiment) -> Result<(), ValidationErrors> {
    let mut errors = Errors::default();
    validate_search(experiment, &mut errors);
    if experiment.spec.trial_template.is_some() {
        errors.push(
            "spec.trialTemplate",
            "a study has no trial template: its client runs the trials and reports them",
        );
    }
    errors.finish()
}

/// The rules of the header, the counts, the objective, the constraints, the parameters, the
/// algorithms and the resume policy: everything but how trials run.
fn validate_search(experiment: &Experiment, errors: &mut Errors) {
    validate_header(experiment, errors);
    let spec = &experiment.spec;
    validate_counts(spec, errors);
    let objective_ok = validate_objective(spec, errors);
    validate_constraints(spec, errors);
    let space = validate_parameters(spec, errors);
    validate_algorithm(spec, space.as_ref(), objective_ok, errors);
    validate_early_stopping(spec, errors);
    for error in crate::warm_start::validate(experiment, space.as_ref()) {
        errors.push(error.path, error.rule);
    }
    if let Some(ResumePolicy::Other(policy)) = &spec.resume_policy {
        errors.push(
            "spec.resumePolicy",
            format!("invalid resume policy {policy:?}; expected Never, LongRunning or FromVolume"),
        );
    }
}

/// Katib's rules for changing a live or completed experiment: only `parallelTrialCount`,
/// `maxTrialCount` and `maxFailedTrialCount` may change; a completed experiment may be
/// changed only when it is restartable; `maxTrialCount` must stay above the trials so far.
pub fn validate_update(old: &Experiment, new: &Experiment) -> Result<(), ValidationErrors> {
    let mut errors = Errors::default();
    let budget_free = |spec: &ExperimentSpec| ExperimentSpec {
        parallel_trial_count: None,
        max_trial_count: None,
        max_failed_trial_count: None,
        ..spec.clone()
    };
    if old.spec == new.spec {
        return Ok(());
    }
    if budget_free(&old.spec) != budget_free(&new.spec) {
        errors.push(
            "spec",
            "only spec.parallelTrialCount, spec.maxTrialCount and spec.maxFailedTrialCount are editable",
        );
    }
    if let Some(status) = &old.status {
        let completed = crate::engine::is_completed(status);
        if completed && !crate::engine::is_restartable(&old.spec, status) {
            errors.push(
                "spec.resumePolicy",
                "a completed experiment can be restarted only if it succeeded by reaching max trials and spec.resumePolicy is LongRunning or FromVolume",
            );
        }
        if let Some(max) = new.spec.max_trial_count
            && max <= status.trials
        {
            errors.push(
                "spec.maxTrialCount",
                format!(
                    "{max} must be greater than status.trials ({})",
                    status.trials
                ),
            );
        }
    }
    errors.finish()
}

// === rules ===

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, rule: impl Into<String>) {
        // Rules quote the values they are about; whatever a rule quotes, its message stays short.
        let rule = cut(&rule.into(), MAX_RULE_CHARACTERS).into_owned();
        self.0.push(FieldError {
            path: path.into(),
            rule,
        });
    }

    fn finish(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(self.0))
        }
    }
}

fn validate_header(experiment: &Experiment, errors: &mut Errors) {
    if !is_supported_api_version(&experiment.api_version) {
        errors.push(
            "apiVersion",
            format!(
                "{} is not supported; expected {KATIB_API_VERSION} or {SEXTANT_API_VERSION}",
                echo_quoted(&experiment.api_version)
            ),
        );
    }
    if experiment.kind != crate::api::experiment::EXPERIMENT_KIND {
        errors.push(
            "kind",
            format!("{} is not Experiment", echo_quoted(&experiment.kind)),
        );
    }
    let name = &experiment.metadata.name;
    if name.is_empty() {
        errors.push("metadata.name", "is required");
    } else if !is_experiment_name(name) {
        errors.push(
            "metadata.name",
            format!(
                "{} must consist of lower case alphanumeric characters or '-', start with a letter, end with an alphanumeric character, and be at most {MAX_EXPERIMENT_NAME_LENGTH} characters long",
                echo_quoted(name)
            ),
        );
    }
}

/// Katib's experiment name rule `^[a-z]([-a-z0-9]*[a-z0-9])?$`, at most 40 characters.
pub(crate) fn is_experiment_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    name.len() <= MAX_EXPERIMENT_NAME_LENGTH
        && bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

fn validate_counts(spec: &ExperimentSpec, errors: &mut Errors) {
    if let Some(max_failed) = spec.max_failed_trial_count
        && max_failed < 0
    {
        errors.push(
            "spec.maxFailedTrialCount",
            format!("{max_failed} must not be less than 0"),
        );
    }
    if let Some(max) = spec.max_trial_count
        && max <= 0
    {
        errors.push(
            "spec.maxTrialCount",
            format!("{max} must be greater than 0"),
        );
    }
    if let Some(parallel) = spec.parallel_trial_count
        && parallel <= 0
    {
        errors.push(
            "spec.parallelTrialCount",
            format!("{parallel} must be greater than 0"),
        );
    }
    if let Some(max) = spec.max_trial_count {
        if let Some(max_failed) = spec.max_failed_trial_count
            && max_failed > max
        {
            errors.push(
                "spec.maxFailedTrialCount",
                format!("{max_failed} must be less than or equal to spec.maxTrialCount ({max})"),
            );
        }
        if let Some(parallel) = spec.parallel_trial_count
            && parallel > max
        {
            errors.push(
                "spec.parallelTrialCount",
                format!("{parallel} must be less than or equal to spec.maxTrialCount ({max})"),
            );
        }
    }
}

/// Returns whether the objective is usable for building the algorithm.
/// Sextant's several objectives: each a named metric with a direction, no metric twice, the
/// first the same as Katib's single objective fields, and no `goal` (it needs one objective).
fn validate_objectives(objective: &ObjectiveSpec, errors: &mut Errors) {
    let Some(first) = objective.objectives.first() else {
        return;
    };
    let mut seen = HashMap::new();
    for (index, entry) in objective.objectives.iter().enumerate() {
        let path = format!("spec.objective.objectives[{index}]");
        if entry.metric_name.is_empty() {
            errors.push(format!("{path}.metricName"), "is required");
        } else if let Some(at) = seen.insert(entry.metric_name.as_str(), index) {
            errors.push(
                format!("{path}.metricName"),
                format!(
                    "{} is named twice (also at index {at}): each metric is one objective",
                    echo_quoted(&entry.metric_name)
                ),
            );
        }
        match &entry.objective_type {
            None => errors.push(format!("{path}.type"), "is required: minimize or maximize"),
            Some(ObjectiveType::Other(other)) => errors.push(
                format!("{path}.type"),
                format!("{} must be minimize or maximize", echo_quoted(other)),
            ),
            Some(_) => {}
        }
    }
    if !objective.objective_metric_name.is_empty()
        && objective.objective_metric_name != first.metric_name
    {
        errors.push(
            "spec.objective.objectiveMetricName",
            format!(
                "{} must be the first of spec.objective.objectives ({}), or be left out",
                echo_quoted(&objective.objective_metric_name),
                echo_quoted(&first.metric_name)
            ),
        );
    }
    if objective.objective_type.is_some() && objective.objective_type != first.objective_type {
        errors.push(
            "spec.objective.type",
            "must be the type of the first of spec.objective.objectives, or be left out",
        );
    }
    if objective.is_multi_objective() && objective.goal.is_some() {
        errors.push(
            "spec.objective.goal",
            "cannot be used with several objectives: a goal needs one objective to reach it",
        );
    }
}

/// Sextant's outcome constraints: each on a collected metric, with a finite `max`, `min` or
/// both, `min` not above `max`.
fn validate_constraints(spec: &ExperimentSpec, errors: &mut Errors) {
    let metric_names: Vec<&str> = spec
        .objective
        .iter()
        .flat_map(|objective| objective.metric_names())
        .collect();
    for (index, constraint) in spec.constraints.iter().enumerate() {
        let path = format!("spec.constraints[{index}]");
        if constraint.metric_name.is_empty() {
            errors.push(format!("{path}.metricName"), "is required");
        } else if !metric_names.contains(&constraint.metric_name.as_str()) {
            errors.push(
                format!("{path}.metricName"),
                format!(
                    "{} is not collected: name it in spec.objective.additionalMetricNames (or \
                     as an objective)",
                    echo_quoted(&constraint.metric_name)
                ),
            );
        }
        if constraint.max.is_none() && constraint.min.is_none() {
            errors.push(path.clone(), "needs max, min or both");
        }
        for (field, bound) in [("max", constraint.max), ("min", constraint.min)] {
            if let Some(bound) = bound
                && !bound.is_finite()
            {
                errors.push(
                    format!("{path}.{field}"),
                    format!("{bound} must be a finite number"),
                );
            }
        }
        if let (Some(min), Some(max)) = (constraint.min, constraint.max)
            && min > max
        {
            errors.push(
                format!("{path}.min"),
                format!("{min} is above max {max}: no value could meet the constraint"),
            );
        }
    }
}

fn validate_objective(spec: &ExperimentSpec, errors: &mut Errors) -> bool {
    let Some(objective) = &spec.objective else {
        errors.push("spec.objective", "is required");
        return false;
    };
    let before = errors.0.len();
    match &objective.objective_type {
        None => errors.push("spec.objective.type", "is required: minimize or maximize"),
        Some(ObjectiveType::Other(other)) => errors.push(
            "spec.objective.type",
            format!("{other:?} must be minimize or maximize"),
        ),
        Some(_) => {}
    }
    if objective.objective_metric_name.is_empty() {
        errors.push("spec.objective.objectiveMetricName", "is required");
    }
    if let Some(goal) = objective.goal
        && !goal.is_finite()
    {
        errors.push(
            "spec.objective.goal",
            format!("{goal} must be a finite number"),
        );
    }
    validate_objectives(objective, errors);
    let mut seen = HashMap::new();
    for (index, name) in objective.additional_metric_names.iter().enumerate() {
        let path = format!("spec.objective.additionalMetricNames[{index}]");
        if name.is_empty() {
            errors.push(path, "must not be empty");
        } else if *name == objective.objective_metric_name {
            errors.push(
                path,
                format!("{name:?} must not repeat spec.objective.objectiveMetricName"),
            );
        } else if let Some(at) = objective
            .objectives
            .iter()
            .position(|other| other.metric_name == *name)
        {
            errors.push(
                path,
                format!("{name:?} is already an objective (spec.objective.objectives[{at}])"),
            );
        } else if let Some(first) = seen.insert(name.as_str(), index) {
            errors.push(
                path,
                format!("duplicate metric {name:?} (also at index {first})"),
            );
        }
    }
    let mut strategies_seen = HashMap::new();
    for (index, strategy) in objective.metric_strategies.iter().enumerate() {
        let path = format!("spec.objective.metricStrategies[{index}]");
        if !objective.metric_names().any(|name| name == strategy.name) {
            errors.push(
                format!("{path}.name"),
                format!(
                    "{:?} is neither the objective metric nor an additional metric",
                    strategy.name
                ),
            );
        } else if let Some(first) = strategies_seen.insert(strategy.name.as_str(), index) {
            errors.push(
                format!("{path}.name"),
                format!(
                    "duplicate strategy for {:?} (also at index {first})",
                    strategy.name
                ),
            );
        }
        if let MetricStrategyType::Other(value) = &strategy.value {
            errors.push(
                format!("{path}.value"),
                format!("{value:?} must be min, max or latest"),
            );
        }
    }
    errors.0.len() == before
}

fn validate_parameters(
    spec: &ExperimentSpec,
    errors: &mut Errors,
) -> Option<sextant_algorithms::SearchSpace> {
    if spec.nas_config.is_some() {
        errors.push(
            "spec.nasConfig",
            "not supported: neural architecture search is out of Sextant's scope",
        );
    }
    if spec.parameters.is_empty() {
        if spec.nas_config.is_none() {
            errors.push("spec.parameters", "at least one parameter is required");
        }
        return None;
    }
    let mut own_type_errors = Vec::new();
    for (index, parameter) in spec.parameters.iter().enumerate() {
        let path = format!("spec.parameters[{index}]");
        let space = &parameter.feasible_space;
        match &parameter.parameter_type {
            Some(ParameterType::Other(other)) => {
                own_type_errors.push(index);
                errors.push(
                    format!("{path}.parameterType"),
                    format!(
                        "{other:?} is not supported; expected double, int, discrete or categorical"
                    ),
                );
            }
            Some(ParameterType::Double | ParameterType::Int) if !space.list.is_empty() => {
                errors.push(
                    format!("{path}.feasibleSpace.list"),
                    "is not supported for an int or double parameter (use min and max)",
                );
            }
            Some(ParameterType::Discrete | ParameterType::Categorical)
                if !space.min.is_empty() || !space.max.is_empty() || !space.step.is_empty() =>
            {
                errors.push(
                    format!("{path}.feasibleSpace"),
                    "min, max and step are not supported for a discrete or categorical parameter (use list)",
                );
            }
            _ => {}
        }
        if let Some(crate::api::experiment::Distribution::Other(other)) = &space.distribution {
            errors.push(
                format!("{path}.feasibleSpace.distribution"),
                format!(
                    "{other:?} is not supported; expected uniform, logUniform, normal or logNormal"
                ),
            );
        }
    }
    match domain::search_space(&spec.parameters) {
        Ok(space) => Some(space),
        Err(space_errors) => {
            for error in space_errors {
                match error {
                    SpaceError::InvalidParameter {
                        index, field, rule, ..
                    } => {
                        if field == "parameterType" && own_type_errors.contains(&index) {
                            continue;
                        }
                        errors.push(format!("spec.parameters[{index}].{field}"), rule);
                    }
                    other => errors.push("spec.parameters", other.to_string()),
                }
            }
            None
        }
    }
}

fn validate_algorithm(
    spec: &ExperimentSpec,
    space: Option<&sextant_algorithms::SearchSpace>,
    objective_ok: bool,
    errors: &mut Errors,
) {
    let Some(algorithm) = &spec.algorithm else {
        errors.push("spec.algorithm", "is required");
        return;
    };
    let name = algorithm.algorithm_name.as_str();
    if name.is_empty() {
        errors.push("spec.algorithm.algorithmName", "is required");
        return;
    }
    if let Some(reason) = sextant_algorithms::registry::unsupported_reason(name) {
        errors.push(
            "spec.algorithm.algorithmName",
            format!("not supported: {reason}"),
        );
        return;
    }
    if !known_algorithms().contains(&name) {
        errors.push(
            "spec.algorithm.algorithmName",
            format!(
                "unknown algorithm {name:?}; known algorithms: {}",
                known_algorithms().join(", ")
            ),
        );
        return;
    }
    let settings_path = "spec.algorithm.algorithmSettings";
    if !check_duplicate_settings(&algorithm.algorithm_settings, settings_path, errors) {
        return;
    }
    // The settings can only be checked against a valid space and objective.
    let (Some(space), true) = (space, objective_ok) else {
        return;
    };
    let Some(objective) = domain::constrained_objective(spec) else {
        return;
    };
    let context = BuildContext {
        space,
        objective: &objective,
        max_trial_count: spec.max_trial_count.and_then(|n| u32::try_from(n).ok()),
        parallel_trial_count: spec
            .parallel_trial_count
            .and_then(|n| u32::try_from(n).ok()),
    };
    if let Err(error) = build_algorithm(
        name,
        &domain::settings(&algorithm.algorithm_settings),
        &context,
    ) {
        push_settings_error(
            &error,
            &algorithm.algorithm_settings,
            "spec.algorithm",
            errors,
        );
    }
}

fn validate_early_stopping(spec: &ExperimentSpec, errors: &mut Errors) {
    let Some(early_stopping) = &spec.early_stopping else {
        return;
    };
    if early_stopping.algorithm_name.is_empty() {
        errors.push("spec.earlyStopping.algorithmName", "is required");
        return;
    }
    let settings_path = "spec.earlyStopping.algorithmSettings";
    if !check_duplicate_settings(&early_stopping.algorithm_settings, settings_path, errors) {
        return;
    }
    if let Err(error) = build_early_stopping(
        &early_stopping.algorithm_name,
        &domain::settings(&early_stopping.algorithm_settings),
    ) {
        push_settings_error(
            &error,
            &early_stopping.algorithm_settings,
            "spec.earlyStopping",
            errors,
        );
    }
}

/// Reports settings given twice; returns whether there were none.
fn check_duplicate_settings(
    settings: &[AlgorithmSetting],
    path: &str,
    errors: &mut Errors,
) -> bool {
    let mut seen = HashMap::new();
    let mut clean = true;
    for (index, setting) in settings.iter().enumerate() {
        if let Some(first) = seen.insert(setting.name.as_str(), index) {
            errors.push(
                format!("{path}[{index}].name"),
                format!(
                    "duplicate setting {:?} (also at index {first})",
                    setting.name
                ),
            );
            clean = false;
        }
    }
    clean
}

fn push_settings_error(
    error: &SettingsError,
    settings: &[AlgorithmSetting],
    spec_path: &str,
    errors: &mut Errors,
) {
    let index_of = |name: &str| settings.iter().position(|setting| setting.name == name);
    let path = match error {
        SettingsError::UnknownAlgorithm { .. } | SettingsError::UnsupportedAlgorithm { .. } => {
            format!("{spec_path}.algorithmName")
        }
        SettingsError::UnknownSetting { setting, .. } => match index_of(setting) {
            Some(index) => format!("{spec_path}.algorithmSettings[{index}].name"),
            None => format!("{spec_path}.algorithmSettings"),
        },
        SettingsError::InvalidValue { setting, .. } => match index_of(setting) {
            Some(index) => format!("{spec_path}.algorithmSettings[{index}].value"),
            None => format!("{spec_path}.algorithmSettings"),
        },
        SettingsError::MissingSettings { .. } => format!("{spec_path}.algorithmSettings"),
        SettingsError::UnsupportedSpace { .. } => spec_path.to_owned(),
        SettingsError::SingleObjectiveOnly { .. } => format!("{spec_path}.algorithmName"),
    };
    errors.push(path, error.to_string());
}

fn validate_trial_template(
    spec: &ExperimentSpec,
    config_map_template: Option<&serde_json::Value>,
    errors: &mut Errors,
) {
    let Some(template) = &spec.trial_template else {
        errors.push("spec.trialTemplate", "is required");
        return;
    };
    let (template_value, template_path) = match (&template.trial_spec, &template.config_map) {
        (Some(_), Some(_)) => {
            errors.push(
                "spec.trialTemplate",
                "only one of spec.trialTemplate.trialSpec and spec.trialTemplate.configMap may be specified",
            );
            return;
        }
        (None, None) => {
            errors.push(
                "spec.trialTemplate",
                "spec.trialTemplate.trialSpec or spec.trialTemplate.configMap must be specified",
            );
            return;
        }
        (Some(trial_spec), None) => (Some(trial_spec), "spec.trialTemplate.trialSpec".to_owned()),
        (None, Some(config_map)) => {
            if config_map.template_path.is_empty() {
                errors.push("spec.trialTemplate.configMap.templatePath", "is required");
            }
            (
                config_map_template,
                format!(
                    "spec.trialTemplate.configMap({})",
                    echo(&config_map.template_path)
                ),
            )
        }
    };

    let kind = match template_value {
        Some(value) => validate_run_object(template, value, &template_path, errors),
        None => None,
    };
    let is_sextant_kind = kind.as_ref().is_some_and(RunKind::is_sextant_kind);
    if !is_sextant_kind {
        if template.primary_container_name.is_empty() {
            errors.push("spec.trialTemplate.primaryContainerName", "is required");
        }
        if template.success_condition.is_empty() || template.failure_condition.is_empty() {
            errors.push(
                "spec.trialTemplate",
                "successCondition and failureCondition must be specified for this kind of trial",
            );
        }
    }
    validate_trial_parameters(spec, template, template_value, &template_path, errors);
}

/// Checks the run object's shape; returns its kind when it has one.
fn validate_run_object(
    template: &TrialTemplate,
    value: &serde_json::Value,
    path: &str,
    errors: &mut Errors,
) -> Option<RunKind> {
    if !value.is_object() {
        errors.push(path, "must be an object with apiVersion, kind and spec");
        return None;
    }
    for field in ["apiVersion", "kind"] {
        if !value.get(field).is_some_and(serde_json::Value::is_string) {
            errors.push(format!("{path}.{field}"), "is required");
        }
    }
    for field in ["name", "namespace"] {
        if value
            .get("metadata")
            .and_then(|metadata| metadata.get(field))
            .is_some()
        {
            errors.push(
                format!("{path}.metadata.{field}"),
                "must be omitted: the trial's own is used",
            );
        }
    }
    let kind = RunKind::of_template(value)?;
    match &kind {
        RunKind::Process => match serde_json::from_value::<ProcessTemplate>(value.clone()) {
            Ok(process) if process.spec.command.is_empty() => errors.push(
                format!("{path}.spec.command"),
                "must name the program to run",
            ),
            Ok(_) => {}
            Err(error) => errors.push(path, format!("is not a valid Process: {error}")),
        },
        RunKind::Pipeline => match serde_json::from_value::<PipelineTemplate>(value.clone()) {
            Ok(pipeline) if !pipeline.spec.is_object() => {
                errors.push(format!("{path}.spec"), "must be a pipeline spec object")
            }
            Ok(pipeline) => validate_pipeline_conditions(&pipeline.spec, path, errors),
            Err(error) => errors.push(path, format!("is not a valid Pipeline: {error}")),
        },
        RunKind::Job => {
            let containers = value
                .pointer("/spec/template/spec/containers")
                .and_then(serde_json::Value::as_array);
            match containers {
                None => errors.push(
                    format!("{path}.spec.template.spec.containers"),
                    "a Job needs at least one container",
                ),
                Some(containers) => {
                    let name = &template.primary_container_name;
                    let named = containers
                        .iter()
                        .any(|c| c.get("name").and_then(serde_json::Value::as_str) == Some(name));
                    if !name.is_empty() && !named {
                        errors.push(
                            "spec.trialTemplate.primaryContainerName",
                            format!("{name:?} names no container of {path}.spec.template.spec.containers"),
                        );
                    }
                }
            }
        }
        _ => {}
    }
    Some(kind)
}

/// Parses the `when` of each step of a Pipeline template, so an expression that can never run
/// (malformed, too long, nested too deep) is refused before any trial starts, here and in the
/// cluster controller alike. `${...}` placeholders stand for one bare word while checking.
fn validate_pipeline_conditions(spec: &serde_json::Value, path: &str, errors: &mut Errors) {
    let Some(steps) = spec.get("steps").and_then(serde_json::Value::as_array) else {
        return;
    };
    let placeholder = regex::Regex::new(r"\$\{[^}]*\}").ok();
    for (index, step) in steps.iter().enumerate() {
        let Some(text) = step.get("when").and_then(serde_json::Value::as_str) else {
            continue;
        };
        let step_name = step
            .get("name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        let checked = if text.len() > MAX_CONDITION_BYTES {
            // Not worth substituting: too long either way.
            text.to_owned()
        } else {
            placeholder.as_ref().map_or_else(
                || text.to_owned(),
                |placeholder| placeholder.replace_all(text, "x").into_owned(),
            )
        };
        if let Err(error) = sextant_pipeline_expr::condition::Condition::parse(&checked) {
            errors.push(
                format!("{path}.spec.steps[{index}].when"),
                format!(
                    "step {}: bad condition `{}`: {error}",
                    echo_quoted(step_name),
                    echo(text)
                ),
            );
        }
    }
}

fn validate_trial_parameters(
    spec: &ExperimentSpec,
    template: &TrialTemplate,
    template_value: Option<&serde_json::Value>,
    template_path: &str,
    errors: &mut Errors,
) {
    let parameter_names: Vec<&str> = spec.parameters.iter().map(|p| p.name.as_str()).collect();
    let conditional: Vec<&str> = spec
        .parameters
        .iter()
        .filter(|p| p.condition.is_some())
        .map(|p| p.name.as_str())
        .collect();
    // Trial parameters whose value a trial may lack: a conditional parameter, no default.
    let mut may_be_absent = HashMap::new();
    let mut names = HashMap::new();
    let mut references = HashMap::new();
    for (index, trial_parameter) in template.trial_parameters.iter().enumerate() {
        let path = format!("spec.trialTemplate.trialParameters[{index}]");
        let name = trial_parameter.name.as_str();
        if name.is_empty() || name.contains(['{', '}']) {
            errors.push(
                format!("{path}.name"),
                format!("{name:?} must be non-empty and must not contain '{{' or '}}'"),
            );
        } else if let Some(first) = names.insert(name, index) {
            errors.push(
                format!("{path}.name"),
                format!("duplicate trial parameter {name:?} (also at index {first})"),
            );
        }
        let reference = trial_parameter.reference.as_str();
        if reference.is_empty() {
            errors.push(format!("{path}.reference"), "is required");
            continue;
        }
        match (conditional.contains(&reference), &trial_parameter.default) {
            (true, None) => {
                may_be_absent.insert(name, reference);
            }
            (false, Some(_)) => errors.push(
                format!("{path}.default"),
                format!(
                    "applies only to a conditional parameter; {reference:?} has a value in every trial"
                ),
            ),
            _ => {}
        }
        if let Some(first) = references.insert(reference, index) {
            errors.push(
                format!("{path}.reference"),
                format!("duplicate reference {reference:?} (also at index {first})"),
            );
        }
        match MetadataReference::parse(reference) {
            Some(Err(key)) => errors.push(
                format!("{path}.reference"),
                format!(
                    "unknown trial metadata reference ${{trialSpec.{key}}}; expected Name, Namespace, Kind, APIVersion, Labels[key] or Annotations[key]"
                ),
            ),
            Some(Ok(MetadataReference::Label(key))) => {
                check_template_metadata(template_value, "labels", &key, &path, errors)
            }
            Some(Ok(MetadataReference::Annotation(key))) => {
                check_template_metadata(template_value, "annotations", &key, &path, errors)
            }
            Some(Ok(_)) => {}
            None => {
                if !parameter_names.is_empty() && !parameter_names.contains(&reference) {
                    errors.push(
                        format!("{path}.reference"),
                        format!("{reference:?} names no parameter of spec.parameters"),
                    );
                }
            }
        }
    }

    let Some(template_value) = template_value else {
        return;
    };
    let uses = find_placeholders(template_value);
    let mut used: BTreeMap<&str, ()> = BTreeMap::new();
    for placeholder in &uses {
        used.insert(placeholder.name.as_str(), ());
        let path = if placeholder.path.is_empty() {
            template_path.to_owned()
        } else {
            format!("{template_path}.{}", placeholder.path)
        };
        if let Some(reference) = may_be_absent.get(placeholder.name.as_str())
            && !is_array_item(&placeholder.path)
        {
            errors.push(
                path.clone(),
                format!(
                    "placeholder ${{trialParameters.{}}} stands for the conditional parameter {reference:?}, which a trial may leave out: use it only inside an array item such as an argv item (dropped when the parameter is inactive), or give the trial parameter a default",
                    placeholder.name
                ),
            );
        }
        if !names.contains_key(placeholder.name.as_str()) {
            errors.push(
                path,
                format!(
                    "placeholder ${{trialParameters.{}}} names no entry of spec.trialTemplate.trialParameters",
                    placeholder.name
                ),
            );
        }
    }
    for (index, trial_parameter) in template.trial_parameters.iter().enumerate() {
        let name = trial_parameter.name.as_str();
        if !name.is_empty() && !used.contains_key(name) {
            errors.push(
                format!("spec.trialTemplate.trialParameters[{index}].name"),
                format!("{name:?} is not used: {template_path} has no ${{trialParameters.{name}}}"),
            );
        }
    }
}

fn check_template_metadata(
    template_value: Option<&serde_json::Value>,
    field: &str,
    key: &str,
    path: &str,
    errors: &mut Errors,
) {
    let Some(template_value) = template_value else {
        return;
    };
    let present = template_value
        .get("metadata")
        .and_then(|metadata| metadata.get(field))
        .and_then(|map| map.get(key))
        .is_some();
    if !present {
        errors.push(
            format!("{path}.reference"),
            format!("the template's metadata.{field} has no key {key:?}"),
        );
    }
}

fn validate_metrics_collector(spec: &MetricsCollectorSpec, errors: &mut Errors) {
    let kind = spec.kind();
    let kind_path = "spec.metricsCollectorSpec.collector.kind";
    match &kind {
        CollectorKind::StdOut | CollectorKind::Push | CollectorKind::File => {}
        CollectorKind::TensorFlowEvent => errors.push(
            kind_path,
            "not supported: Sextant has no TensorFlow event-file reader; print metrics (StdOut), write a File, or Push them",
        ),
        CollectorKind::PrometheusMetric => errors.push(
            kind_path,
            "not supported: Katib ships no Prometheus collector and neither does Sextant",
        ),
        CollectorKind::Custom => errors.push(
            kind_path,
            "not supported: Sextant does not inject collector containers; use StdOut, File or Push",
        ),
        CollectorKind::Other(other) if other == "None" => errors.push(
            kind_path,
            "\"None\" was renamed Push in Katib v0.18; use Push",
        ),
        CollectorKind::Other(other) => errors.push(
            kind_path,
            format!(
                "invalid metrics collector kind {other:?}; expected one of {}",
                CollectorKind::KNOWN.join(", ")
            ),
        ),
    }
    let source = spec.source.as_ref();
    let file_system_path = source.and_then(|source| source.file_system_path.as_ref());
    let path_prefix = "spec.metricsCollectorSpec.source.fileSystemPath";
    if kind == CollectorKind::File {
        match file_system_path {
            None => errors.push(path_prefix, "is required for the File collector"),
            Some(file) => {
                if file.path.is_empty() {
                    errors.push(format!("{path_prefix}.path"), "is required");
                }
                if file
                    .kind
                    .as_ref()
                    .is_some_and(|k| *k != FileSystemKind::File)
                {
                    errors.push(
                        format!("{path_prefix}.kind"),
                        "must be File for the File collector",
                    );
                }
            }
        }
    }
    if let Some(FileFormat::Other(other)) = file_system_path.and_then(|file| file.format.as_ref()) {
        errors.push(
            format!("{path_prefix}.format"),
            format!("{other:?} must be TEXT or JSON"),
        );
    }
    let formats = source
        .and_then(|source| source.filter.as_ref())
        .map(|filter| filter.metrics_format.as_slice())
        .unwrap_or_default();
    let is_json = file_system_path.and_then(|file| file.format.as_ref()) == Some(&FileFormat::Json);
    if is_json && !formats.is_empty() {
        errors.push(
            "spec.metricsCollectorSpec.source.filter",
            "must be empty when the metrics file format is JSON",
        );
    }
    for (index, format) in formats.iter().enumerate() {
        // The metrics format crate reads Katib's Go-syntax regexes (a literal `{`, ASCII
        // `\\w`); checking with its parser accepts exactly what the collector will run.
        let probe_metric = ["metric".to_owned()];
        if let Err(error) = TextParser::new(&probe_metric, std::slice::from_ref(format)) {
            let rule = match std::error::Error::source(&error) {
                Some(source) => format!("{error}: {source}"),
                None => error.to_string(),
            };
            errors.push(
                format!("spec.metricsCollectorSpec.source.filter.metricsFormat[{index}]"),
                rule,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn experiment_names_follow_katib_rule_anchored() {
        assert!(is_experiment_name("random-example-1"));
        assert!(!is_experiment_name("Random"));
        assert!(!is_experiment_name("ends-"));
        assert!(!is_experiment_name("1st"));
        assert!(!is_experiment_name(&"a".repeat(41)));
        assert!(is_experiment_name(&"a".repeat(40)));
    }

    #[test]
    fn errors_display_one_per_line() {
        let errors = ValidationErrors(vec![
            FieldError {
                path: "spec.a".into(),
                rule: "r1".into(),
            },
            FieldError {
                path: "spec.b".into(),
                rule: "r2".into(),
            },
        ]);
        assert_eq!(errors.to_string(), "spec.a: r1\nspec.b: r2");
        assert!(errors.has_path("spec.b"));
    }
}
