//! Conversions between Katib's wire messages and the typed domain model.
//!
//! Parsing happens once per request, here; the algorithms never see a string they must parse.

use sextant_algorithms::registry::check_algorithm_name;
use sextant_algorithms::settings::Setting;
use sextant_algorithms::{
    Assignment, Constraint, Direction, Distribution, Objective, ObjectiveMetric, ParameterType,
    RawCondition, RawParameter, SearchSpace, TrialCondition, TrialRecord,
};
use sextant_proto::api;

use crate::error::{Error, Result};

/// The parts of a request's experiment that every algorithm needs, typed.
#[derive(Debug, Clone)]
pub struct ParsedExperiment {
    /// The validated search space.
    pub space: SearchSpace,
    /// What is optimized.
    pub objective: Objective,
    /// `algorithm.algorithm_name`.
    pub algorithm_name: String,
    /// `algorithm.algorithm_settings`.
    pub settings: Vec<Setting>,
    /// `max_trial_count`, when positive.
    pub max_trial_count: Option<u32>,
    /// `parallel_trial_count`, when positive.
    pub parallel_trial_count: Option<u32>,
}

/// Whether a request must carry parameter specs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parameters {
    /// GetSuggestions: there is nothing to search without them.
    Required,
    /// ValidateAlgorithmSettings: Katib's own validation tests send settings alone, and Katib
    /// checks them on their own; an algorithm whose settings refer to the space (hyperband's
    /// `resource_name`, cmaes' dimensions) then fails on the empty space, as Katib's does.
    Optional,
}

/// Reads the experiment of a request, validating its algorithm name first (so a request for
/// an algorithm Sextant does not have is answered with that, whatever else it holds), then
/// its parameter specs.
pub fn parse_experiment(
    experiment: Option<&api::Experiment>,
    parameters: Parameters,
) -> Result<ParsedExperiment> {
    let spec = experiment
        .and_then(|experiment| experiment.spec.as_ref())
        .ok_or_else(|| Error::InvalidRequest {
            field: "experiment.spec".into(),
            rule: "is required".into(),
        })?;
    let algorithm = spec.algorithm.as_ref();
    let algorithm_name = algorithm
        .map(|algorithm| algorithm.algorithm_name.clone())
        .unwrap_or_default();
    if algorithm_name.is_empty() {
        return Err(Error::InvalidRequest {
            field: "experiment.spec.algorithm.algorithm_name".into(),
            rule: "is required".into(),
        });
    }
    check_algorithm_name(&algorithm_name)?;
    let raw: Vec<RawParameter> = spec
        .parameter_specs
        .as_ref()
        .map(|specs| specs.parameters.iter().map(raw_parameter).collect())
        .unwrap_or_default();
    let space = if raw.is_empty() && parameters == Parameters::Optional {
        SearchSpace::without_parameters()
    } else {
        SearchSpace::parse(&raw).map_err(Error::InvalidSpace)?
    };
    let objective = spec
        .objective
        .as_ref()
        .map(parse_objective)
        .unwrap_or_else(|| Objective::new(Direction::Minimize, ""));
    let settings = algorithm
        .map(|algorithm| {
            algorithm
                .algorithm_settings
                .iter()
                .map(|setting| Setting::new(&setting.name, &setting.value))
                .collect()
        })
        .unwrap_or_default();
    let positive = |count: i32| u32::try_from(count).ok().filter(|count| *count > 0);
    Ok(ParsedExperiment {
        space,
        objective,
        algorithm_name,
        settings,
        max_trial_count: positive(spec.max_trial_count),
        parallel_trial_count: positive(spec.parallel_trial_count),
    })
}

/// A wire parameter spec as the domain model's raw, unvalidated parameter.
pub fn raw_parameter(spec: &api::ParameterSpec) -> RawParameter {
    let parameter_type = match api::ParameterType::try_from(spec.parameter_type) {
        Ok(api::ParameterType::Double) => Some(ParameterType::Double),
        Ok(api::ParameterType::Int) => Some(ParameterType::Int),
        Ok(api::ParameterType::Discrete) => Some(ParameterType::Discrete),
        Ok(api::ParameterType::Categorical) => Some(ParameterType::Categorical),
        Ok(api::ParameterType::UnknownType) | Err(_) => None,
    };
    let feasible = spec.feasible_space.clone().unwrap_or_default();
    let distribution = match api::Distribution::try_from(feasible.distribution) {
        Ok(api::Distribution::Uniform) => Some(Distribution::Uniform),
        Ok(api::Distribution::LogUniform) => Some(Distribution::LogUniform),
        Ok(api::Distribution::Normal) => Some(Distribution::Normal),
        Ok(api::Distribution::LogNormal) => Some(Distribution::LogNormal),
        Ok(api::Distribution::Unspecified) | Err(_) => None,
    };
    RawParameter {
        name: spec.name.clone(),
        parameter_type,
        min: feasible.min,
        max: feasible.max,
        step: feasible.step,
        list: feasible.list,
        distribution,
        condition: spec.condition.as_ref().map(|condition| RawCondition {
            parameter: condition.parameter.clone(),
            values: condition.values.clone(),
        }),
    }
}

fn parse_direction(objective_type: i32) -> Direction {
    match api::ObjectiveType::try_from(objective_type) {
        Ok(api::ObjectiveType::Maximize) => Direction::Maximize,
        _ => Direction::Minimize,
    }
}

/// Katib's single objective, or Sextant's several (`objectives`, authoritative when present:
/// the first is the primary one) with outcome constraints (a bound each, so `max` and `min` on
/// one metric are two).
fn parse_objective(spec: &api::ObjectiveSpec) -> Objective {
    let (direction, metric_name) = match spec.objectives.first() {
        Some(primary) => (parse_direction(primary.r#type), primary.metric_name.clone()),
        None => (
            parse_direction(spec.r#type),
            spec.objective_metric_name.clone(),
        ),
    };
    Objective {
        direction,
        metric_name,
        // proto3 cannot tell an unset goal from 0.0; the service does not need it.
        goal: None,
        additional_metric_names: spec.additional_metric_names.clone(),
        secondary_objectives: spec
            .objectives
            .iter()
            .skip(1)
            .map(|entry| ObjectiveMetric::new(parse_direction(entry.r#type), &entry.metric_name))
            .collect(),
        constraints: spec
            .constraints
            .iter()
            .flat_map(|constraint| {
                Constraint::within(&constraint.metric_name, constraint.max, constraint.min)
            })
            .collect(),
    }
}

/// Reads the request's trials against the space. Katib sends every trial, pending and failed
/// ones too, and a trial that has not succeeded may carry only some of its assignments (Katib's
/// own services read what they need and pass over the rest). A trial with a result (succeeded
/// or early stopped) must fit the space: it would inform the model, so a malformed one is an
/// error naming it. A trial without a result whose assignment does not fit cannot inform the
/// model and is skipped, counted in a debug log; one that fits is kept, so its point stays
/// taken and a pending trial keeps its place (grid, hyperband's rungs, cmaes' generations).
pub fn parse_trials(
    space: &SearchSpace,
    objective: &Objective,
    trials: &[api::Trial],
) -> Result<Vec<TrialRecord>> {
    let mut records = Vec::with_capacity(trials.len());
    let mut skipped = Vec::new();
    for (index, trial) in trials.iter().enumerate() {
        match parse_trial(space, objective, trial, index) {
            Ok(record) => records.push(record),
            Err(Error::InvalidTrial { condition, .. }) if !condition.has_result() => {
                skipped.push(trial.name.as_str());
            }
            Err(error) => return Err(error),
        }
    }
    if !skipped.is_empty() {
        tracing::debug!(
            skipped = skipped.len(),
            trials = ?skipped,
            "trials without a result and with an assignment that does not fit the space are skipped"
        );
    }
    Ok(records)
}

fn parse_trial(
    space: &SearchSpace,
    objective: &Objective,
    trial: &api::Trial,
    index: usize,
) -> Result<TrialRecord> {
    let spec = trial.spec.as_ref();
    let pairs = spec
        .and_then(|spec| spec.parameter_assignments.as_ref())
        .map(|assignments| assignments.assignments.as_slice())
        .unwrap_or_default();
    let status = trial.status.clone().unwrap_or_default();
    let condition = match api::trial_status::TrialConditionType::try_from(status.condition) {
        Ok(api::trial_status::TrialConditionType::Created) => TrialCondition::Created,
        Ok(api::trial_status::TrialConditionType::Running) => TrialCondition::Running,
        Ok(api::trial_status::TrialConditionType::Succeeded) => TrialCondition::Succeeded,
        Ok(api::trial_status::TrialConditionType::Killed) => TrialCondition::Killed,
        Ok(api::trial_status::TrialConditionType::Failed) => TrialCondition::Failed,
        Ok(api::trial_status::TrialConditionType::Metricsunavailable) => {
            TrialCondition::MetricsUnavailable
        }
        Ok(api::trial_status::TrialConditionType::Earlystopped) => TrialCondition::EarlyStopped,
        Ok(api::trial_status::TrialConditionType::Unknown) | Err(_) => TrialCondition::Unknown,
    };
    let assignment = space
        .parse_assignment(
            pairs
                .iter()
                .map(|pair| (pair.name.as_str(), pair.value.as_str())),
        )
        .map_err(|source| Error::InvalidTrial {
            index,
            name: trial.name.clone(),
            condition,
            source,
        })?;
    let metrics: Vec<(String, String)> = status
        .observation
        .map(|observation| {
            observation
                .metrics
                .into_iter()
                .map(|metric| (metric.name, metric.value))
                .collect()
        })
        .unwrap_or_default();
    let objective_value = metrics
        .iter()
        .find(|(name, _)| *name == objective.metric_name)
        .and_then(|(_, value)| value.trim().parse::<f64>().ok());
    Ok(TrialRecord {
        name: trial.name.clone(),
        assignment,
        condition,
        objective_value,
        metrics,
        labels: spec
            .map(|spec| spec.labels.clone().into_iter().collect())
            .unwrap_or_default(),
        start_time: Some(status.start_time).filter(|time| !time.is_empty()),
    })
}

/// An assignment as Katib's name/value pairs.
pub fn wire_assignment(
    space: &SearchSpace,
    assignment: &Assignment,
) -> Vec<api::ParameterAssignment> {
    space
        .format_assignment(assignment)
        .into_iter()
        .map(|(name, value)| api::ParameterAssignment { name, value })
        .collect()
}

#[cfg(test)]
mod tests {
    use sextant_algorithms::Bound;

    use super::*;

    #[test]
    fn several_objectives_and_constraints_are_read_from_sextants_fields() {
        let spec = api::ObjectiveSpec {
            r#type: api::ObjectiveType::Minimize as i32,
            objective_metric_name: "loss".into(),
            objectives: vec![
                api::ObjectiveMetric {
                    metric_name: "loss".into(),
                    r#type: api::ObjectiveType::Minimize as i32,
                },
                api::ObjectiveMetric {
                    metric_name: "accuracy".into(),
                    r#type: api::ObjectiveType::Maximize as i32,
                },
            ],
            constraints: vec![api::OutcomeConstraint {
                metric_name: "memory".into(),
                max: Some(512.0),
                min: Some(1.0),
            }],
            ..Default::default()
        };
        let objective = parse_objective(&spec);
        assert_eq!(
            (objective.metric_name.as_str(), objective.direction),
            ("loss", Direction::Minimize)
        );
        assert_eq!(
            objective.secondary_objectives,
            [ObjectiveMetric::new(Direction::Maximize, "accuracy")]
        );
        let bounds: Vec<Bound> = objective.constraints.iter().map(|c| c.bound).collect();
        assert_eq!(bounds, [Bound::Max(512.0), Bound::Min(1.0)]);
    }

    #[test]
    fn katibs_single_objective_reads_as_before() {
        let spec = api::ObjectiveSpec {
            r#type: api::ObjectiveType::Maximize as i32,
            objective_metric_name: "accuracy".into(),
            ..Default::default()
        };
        let objective = parse_objective(&spec);
        assert_eq!(objective.metric_name, "accuracy");
        assert_eq!(objective.direction, Direction::Maximize);
        assert!(!objective.is_multi_objective() && objective.constraints.is_empty());
    }
}
