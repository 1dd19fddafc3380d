//! Conversions from the API's string-typed spec to the search domain model of
//! `sextant-algorithms`: parameters to a [`SearchSpace`], the objective to an [`Objective`],
//! settings to [`Setting`]s, trial conditions, early-stopping rules both ways. Validation and the drivers share
//! them, so both read a spec the same way.

use sextant_algorithms::early_stopping;
use sextant_algorithms::space::{
    Distribution as SpaceDistribution, ParameterType as SpaceParameterType, RawCondition,
};
use sextant_algorithms::{
    Constraint, Direction, Objective, ObjectiveMetric, RawParameter, SearchSpace, Setting,
    SpaceError, TrialCondition,
};

use crate::api::common::{
    AlgorithmSetting, ComparisonType, EarlyStoppingRule, ObjectiveSpec, ObjectiveType,
};
use crate::api::experiment::{
    ConstraintSpec, Distribution, ExperimentSpec, ParameterSpec, ParameterType,
};
use crate::api::trial::TrialConditionType;

/// A parameter spec as the search space parses it. Katib's `unknown` type and values outside
/// Katib's set become `None` (rejected by the space); Katib's `unknown` distribution reads as
/// unspecified (uniform), as in Katib's suggestion services.
pub fn raw_parameter(spec: &ParameterSpec) -> RawParameter {
    let parameter_type = match &spec.parameter_type {
        Some(ParameterType::Double) => Some(SpaceParameterType::Double),
        Some(ParameterType::Int) => Some(SpaceParameterType::Int),
        Some(ParameterType::Discrete) => Some(SpaceParameterType::Discrete),
        Some(ParameterType::Categorical) => Some(SpaceParameterType::Categorical),
        Some(ParameterType::Unknown | ParameterType::Other(_)) | None => None,
    };
    let distribution = match &spec.feasible_space.distribution {
        Some(Distribution::Uniform) => Some(SpaceDistribution::Uniform),
        Some(Distribution::LogUniform) => Some(SpaceDistribution::LogUniform),
        Some(Distribution::Normal) => Some(SpaceDistribution::Normal),
        Some(Distribution::LogNormal) => Some(SpaceDistribution::LogNormal),
        Some(Distribution::Unknown | Distribution::Other(_)) | None => None,
    };
    RawParameter {
        name: spec.name.clone(),
        parameter_type,
        min: spec.feasible_space.min.clone(),
        max: spec.feasible_space.max.clone(),
        step: spec.feasible_space.step.clone(),
        list: spec.feasible_space.list.clone(),
        distribution,
        condition: spec.condition.as_ref().map(|condition| RawCondition {
            parameter: condition.parameter.clone(),
            values: condition.values.clone(),
        }),
    }
}

/// The search space of an experiment's parameters.
pub fn search_space(parameters: &[ParameterSpec]) -> Result<SearchSpace, Vec<SpaceError>> {
    let raw: Vec<RawParameter> = parameters.iter().map(raw_parameter).collect();
    SearchSpace::parse(&raw)
}

/// A direction; `None` when not minimize or maximize.
fn direction(objective_type: Option<&ObjectiveType>) -> Option<Direction> {
    match objective_type? {
        ObjectiveType::Minimize => Some(Direction::Minimize),
        ObjectiveType::Maximize => Some(Direction::Maximize),
        ObjectiveType::Other(_) => None,
    }
}

/// The objectives, without constraints; `None` when a type is missing or not
/// minimize/maximize. The first of several objectives is the single objective of Katib's
/// fields (defaulting makes them agree).
pub fn objective(spec: &ObjectiveSpec) -> Option<Objective> {
    let secondary_objectives = spec
        .objectives
        .iter()
        .skip(1)
        .map(|objective| {
            Some(ObjectiveMetric::new(
                direction(objective.objective_type.as_ref())?,
                objective.metric_name.clone(),
            ))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Objective {
        direction: direction(spec.objective_type.as_ref())?,
        metric_name: spec.objective_metric_name.clone(),
        goal: spec.goal,
        additional_metric_names: spec.additional_metric_names.clone(),
        secondary_objectives,
        constraints: Vec::new(),
    })
}

/// The experiment's objectives with its outcome constraints.
pub fn constrained_objective(spec: &ExperimentSpec) -> Option<Objective> {
    let mut objective = objective(spec.objective.as_ref()?)?;
    objective.constraints = constraints(&spec.constraints);
    Some(objective)
}

/// The outcome constraints as the algorithms read them: a bound each (`max` and `min` on one
/// metric are two).
pub fn constraints(specs: &[ConstraintSpec]) -> Vec<Constraint> {
    specs
        .iter()
        .flat_map(|spec| Constraint::within(&spec.metric_name, spec.max, spec.min))
        .collect()
}

/// Algorithm or early-stopping settings as the algorithms read them.
pub fn settings(settings: &[AlgorithmSetting]) -> Vec<Setting> {
    settings
        .iter()
        .map(|setting| Setting::new(&setting.name, &setting.value))
        .collect()
}

/// A trial's condition as the algorithms see it.
pub fn trial_condition(condition: TrialConditionType) -> TrialCondition {
    match condition {
        TrialConditionType::Created => TrialCondition::Created,
        TrialConditionType::Running => TrialCondition::Running,
        TrialConditionType::Succeeded => TrialCondition::Succeeded,
        TrialConditionType::Killed => TrialCondition::Killed,
        TrialConditionType::Failed => TrialCondition::Failed,
        TrialConditionType::MetricsUnavailable => TrialCondition::MetricsUnavailable,
        TrialConditionType::EarlyStopped => TrialCondition::EarlyStopped,
    }
}

/// An early-stopping rule as a Trial carries it (Katib's `EarlyStoppingRule`).
pub fn trial_rule(rule: &early_stopping::EarlyStoppingRule) -> EarlyStoppingRule {
    EarlyStoppingRule {
        name: rule.metric_name.clone(),
        value: sextant_algorithms::space::format_double(rule.value),
        comparison: match rule.comparison {
            early_stopping::Comparison::Equal => ComparisonType::Equal,
            early_stopping::Comparison::Less => ComparisonType::Less,
            early_stopping::Comparison::Greater => ComparisonType::Greater,
        },
        start_step: i32::try_from(rule.start_step).unwrap_or(i32::MAX),
    }
}

/// A Trial's early-stopping rule as the algorithms enforce it; `None` when its value is not a
/// number or its comparison is unknown.
pub fn enforced_rule(rule: &EarlyStoppingRule) -> Option<early_stopping::EarlyStoppingRule> {
    Some(early_stopping::EarlyStoppingRule {
        metric_name: rule.name.clone(),
        value: rule.value.parse().ok()?,
        comparison: match rule.comparison {
            ComparisonType::Equal => early_stopping::Comparison::Equal,
            ComparisonType::Less => early_stopping::Comparison::Less,
            ComparisonType::Greater => early_stopping::Comparison::Greater,
            ComparisonType::Other(_) => return None,
        },
        start_step: u32::try_from(rule.start_step).unwrap_or(0),
    })
}
