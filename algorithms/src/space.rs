//! Search spaces: typed parameters, their feasible spaces and distributions, and the values an
//! assignment gives them.
//!
//! Katib describes a parameter with strings (`min: "0.01"`, `list: ["sgd", "adam"]`); they are
//! parsed and validated once, here, into a [`SearchSpace`], and nothing downstream re-parses
//! them. Values are typed ([`Value`]) and rendered back to Katib's strings only at the edge.
//!
//! # Distribution semantics
//!
//! Every algorithm that samples from the prior (random search, Sobol, the start-up phase of the
//! model-based algorithms) maps a uniform number `u` in `[0, 1)` through
//! [`Parameter::from_quantile`], which gives the distribution below. Model-based algorithms model
//! the *scale* of the parameter ([`Parameter::to_unit`]/[`Parameter::from_unit`]): linear for
//! uniform and normal, logarithmic for logUniform and logNormal.
//!
//! | distribution | double / int parameter with `[min, max]` |
//! | --- | --- |
//! | unspecified, `uniform` | uniform on `[min, max]` |
//! | `logUniform` | `exp` of uniform on `[ln min, ln max]`; requires `min > 0` |
//! | `normal` | normal with mean `(min + max) / 2` and standard deviation `(max - min) / 6`, truncated to `[min, max]` |
//! | `logNormal` | `exp` of a normal with mean `(ln min + ln max) / 2` and standard deviation `(ln max - ln min) / 6`, truncated to `[min, max]`; requires `min > 0` |
//!
//! Truncation is exact (inverse-CDF sampling between the bounds), so no value ever leaves
//! `[min, max]`. With `step`, values are `min + k * step` for whole `k` with the value `<= max`;
//! a continuous draw is snapped to the nearest such point. Int parameters take whole values
//! (step 1 unless given). Discrete parameters are an ordered list of numbers; categorical
//! parameters an unordered list of strings; both are sampled uniformly and ignore
//! `distribution`.
//!
//! # Conditional parameters
//!
//! A parameter may carry a [`Condition`]: it is *active* only when its parent, a categorical or
//! discrete parameter, is active and takes one of the given values (ConfigSpace's
//! `InCondition`; Lindauer et al., "SMAC3", JMLR 2022). Conditions nest to any depth and may
//! not form a cycle. An assignment still holds one value per parameter, so every algorithm's
//! vector arithmetic works unchanged, but an inactive parameter's slot holds its
//! [`Parameter::inactive_value`] and means nothing: [`SearchSpace::active`] says which slots
//! count, [`SearchSpace::format_assignment`] leaves the inactive ones out (a trial never sees
//! them), [`SearchSpace::parse_assignment`] does not ask for them, and
//! [`SearchSpace::assignment_key`] and [`SearchSpace::contains`] ignore them, so two
//! assignments that differ only in inactive slots are the same point.

use std::collections::HashSet;
use std::fmt;

use crate::stats::{normal_cdf, normal_quantile};

/// The most grid points one parameter may have; beyond it a grid is a configuration mistake
/// (a step far too small), not a search space anyone can enumerate.
pub const MAX_POINTS_PER_PARAMETER: u64 = 10_000_000;

/// Katib's parameter types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParameterType {
    /// A real number in `[min, max]`.
    Double,
    /// A whole number in `[min, max]`.
    Int,
    /// One number from a list.
    Discrete,
    /// One string from a list.
    Categorical,
}

/// Katib's prior distributions for double and int parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Distribution {
    /// Uniform on `[min, max]` (also what an unspecified distribution means).
    #[default]
    Uniform,
    /// Uniform in the logarithm.
    LogUniform,
    /// Truncated normal centred in the range.
    Normal,
    /// Truncated normal in the logarithm.
    LogNormal,
}

impl Distribution {
    /// Whether the parameter is searched on a logarithmic scale.
    pub fn is_log(self) -> bool {
        matches!(self, Distribution::LogUniform | Distribution::LogNormal)
    }
}

/// A parameter as Katib's API spells it: strings, not yet validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawParameter {
    /// The parameter's name.
    pub name: String,
    /// Its type; `None` stands for Katib's `UNKNOWN_TYPE` or an unrecognized type name.
    pub parameter_type: Option<ParameterType>,
    /// `feasibleSpace.min`, empty when absent.
    pub min: String,
    /// `feasibleSpace.max`, empty when absent.
    pub max: String,
    /// `feasibleSpace.step`, empty when absent.
    pub step: String,
    /// `feasibleSpace.list`.
    pub list: Vec<String>,
    /// `feasibleSpace.distribution`; `None` when unspecified.
    pub distribution: Option<Distribution>,
    /// `condition` (Sextant's): when the parameter is active; `None` for always.
    pub condition: Option<RawCondition>,
}

/// A condition as the spec writes it: the parent's name and the values that activate the
/// parameter, as strings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawCondition {
    /// `condition.parameter`: the parent's name.
    pub parameter: String,
    /// `condition.values`: the parent's values under which the parameter is active.
    pub values: Vec<String>,
}

/// When a parameter is active: its parent is active and takes one of `values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The index of the parent, a categorical or discrete parameter, in the space.
    pub parent: usize,
    /// The indices into the parent's list that activate the parameter, ascending, no repeats.
    pub values: Vec<usize>,
}

/// The feasible values of a parameter, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Domain {
    /// Real values.
    Double {
        /// Lower bound, inclusive.
        min: f64,
        /// Upper bound, inclusive.
        max: f64,
        /// Spacing of the allowed values, when only a lattice is allowed.
        step: Option<f64>,
        /// Prior and scale.
        distribution: Distribution,
    },
    /// Whole values.
    Int {
        /// Lower bound, inclusive.
        min: i64,
        /// Upper bound, inclusive.
        max: i64,
        /// Spacing of the allowed values (at least 1).
        step: i64,
        /// Prior and scale.
        distribution: Distribution,
    },
    /// An ordered list of numbers, kept with the strings they were written as.
    Discrete {
        /// The numbers, in the order given.
        values: Vec<f64>,
        /// The strings as written, rendered back unchanged.
        labels: Vec<String>,
    },
    /// An unordered list of strings.
    Categorical {
        /// The choices.
        choices: Vec<String>,
    },
}

/// One validated parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    /// The parameter's name, unique in its space.
    pub name: String,
    /// Its feasible values.
    pub domain: Domain,
}

/// The value of one parameter in an assignment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// A double parameter's value.
    Double(f64),
    /// An int parameter's value.
    Int(i64),
    /// The index into a discrete or categorical parameter's list.
    Choice(usize),
}

/// Values for every parameter of a space, in the space's parameter order.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// One value per parameter; the slot of a parameter that is inactive under the others'
    /// values (see [`SearchSpace::active`]) is ignored, and holds the parameter's
    /// [`Parameter::inactive_value`] once the assignment is [`SearchSpace::canonical`].
    pub values: Vec<Value>,
}

/// A validated list of uniquely named parameters, non-empty unless made by
/// [`SearchSpace::without_parameters`], with the conditions under which they are active.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSpace {
    parameters: Vec<Parameter>,
    /// One entry per parameter; `None` for an always-active one.
    conditions: Vec<Option<Condition>>,
    /// Every parameter index, each after its parent, so one pass decides activity.
    order: Vec<usize>,
}

/// A parameter spec or an assignment that does not fit the space.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpaceError {
    /// One parameter's spec breaks a rule.
    #[error("parameters[{index}].{field} ({name:?}): {rule}")]
    InvalidParameter {
        /// Position of the parameter in the spec.
        index: usize,
        /// The parameter's name as given.
        name: String,
        /// The offending field, relative to the parameter (`feasibleSpace.min`).
        field: String,
        /// The rule it breaks, with the values involved.
        rule: String,
    },
    /// A space needs at least one parameter.
    #[error("parameters: at least one parameter is required")]
    NoParameters,
    /// An assignment names a parameter the space does not have.
    #[error("assignment names unknown parameter {name:?}")]
    UnknownParameter {
        /// The unknown name.
        name: String,
    },
    /// An assignment lacks a value for a parameter.
    #[error("assignment has no value for parameter {name:?}")]
    MissingValue {
        /// The parameter without a value.
        name: String,
    },
    /// An assignment gives a parameter a value it cannot take.
    #[error("parameter {name:?}: value {value:?} {rule}")]
    InvalidValue {
        /// The parameter.
        name: String,
        /// The value as given.
        value: String,
        /// Why it does not fit.
        rule: String,
    },
}

// === impl SearchSpace ===

impl SearchSpace {
    /// Parses and validates Katib-style parameter specs, reporting every problem found.
    pub fn parse(raw: &[RawParameter]) -> Result<SearchSpace, Vec<SpaceError>> {
        if raw.is_empty() {
            return Err(vec![SpaceError::NoParameters]);
        }
        let mut errors = Vec::new();
        let mut parameters = Vec::with_capacity(raw.len());
        let mut seen = HashSet::new();
        for (index, spec) in raw.iter().enumerate() {
            if !spec.name.is_empty() && !seen.insert(spec.name.as_str()) {
                errors.push(invalid(index, spec, "name", "duplicate parameter name"));
            }
            match Parameter::parse(index, spec) {
                Ok(parameter) => parameters.push(Some(parameter)),
                Err(mut found) => {
                    errors.append(&mut found);
                    parameters.push(None);
                }
            }
        }
        // Conditions are checked even when some parameter is invalid, so every problem is
        // reported at once; a parent that failed to parse is not judged again.
        let conditions = parse_conditions(raw, &parameters, &mut errors);
        let order = match topological_order(&conditions) {
            Ok(order) => order,
            Err(cycle) => {
                errors.push(invalid(
                    cycle[0],
                    &raw[cycle[0]],
                    "condition.parameter",
                    cycle_rule(&cycle, |index| &raw[index].name),
                ));
                Vec::new()
            }
        };
        if errors.is_empty() {
            Ok(SearchSpace {
                parameters: parameters.into_iter().flatten().collect(),
                conditions,
                order,
            })
        } else {
            Err(errors)
        }
    }

    /// Builds a space from parameters already typed, checking names are unique and non-empty.
    pub fn new(parameters: Vec<Parameter>) -> Result<SearchSpace, SpaceError> {
        if parameters.is_empty() {
            return Err(SpaceError::NoParameters);
        }
        let mut seen = HashSet::new();
        for (index, parameter) in parameters.iter().enumerate() {
            if parameter.name.is_empty() || !seen.insert(parameter.name.as_str()) {
                return Err(SpaceError::InvalidParameter {
                    index,
                    name: parameter.name.clone(),
                    field: "name".into(),
                    rule: "names must be non-empty and unique".into(),
                });
            }
        }
        Ok(SearchSpace {
            conditions: vec![None; parameters.len()],
            order: (0..parameters.len()).collect(),
            parameters,
        })
    }

    /// The same space with `conditions`, given as `(child, condition)` pairs, checking each as
    /// [`SearchSpace::parse`] does: the parent is another categorical or discrete parameter,
    /// the values are in its list, and the conditions form no cycle.
    pub fn with_conditions(
        mut self,
        conditions: Vec<(usize, Condition)>,
    ) -> Result<SearchSpace, SpaceError> {
        for (child, condition) in conditions {
            let rule = |rule: String| SpaceError::InvalidParameter {
                index: child,
                name: self
                    .parameters
                    .get(child)
                    .map(|parameter| parameter.name.clone())
                    .unwrap_or_default(),
                field: "condition".into(),
                rule,
            };
            let (Some(parameter), Some(parent)) = (
                self.parameters.get(child),
                self.parameters.get(condition.parent),
            ) else {
                return Err(rule("child or parent index out of range".into()));
            };
            check_parent(&parameter.name, child, parent, condition.parent).map_err(rule)?;
            let len = parent.cardinality().unwrap_or(0);
            if condition.values.is_empty()
                || condition.values.iter().any(|value| *value as u64 >= len)
                || condition.values.windows(2).any(|pair| pair[0] >= pair[1])
            {
                return Err(rule(format!(
                    "values must be ascending, distinct indices into the list of {:?}",
                    parent.name
                )));
            }
            self.conditions[child] = Some(condition);
        }
        self.order =
            topological_order(&self.conditions).map_err(|cycle| SpaceError::InvalidParameter {
                index: cycle[0],
                name: self.parameters[cycle[0]].name.clone(),
                field: "condition".into(),
                rule: cycle_rule(&cycle, |index| &self.parameters[index].name),
            })?;
        Ok(self)
    }

    /// The space of a request that checks settings alone: Katib's `ValidateAlgorithmSettings`
    /// may carry settings and no parameters. Algorithms are built against it to validate their
    /// settings and never asked to search it.
    pub fn without_parameters() -> SearchSpace {
        SearchSpace {
            parameters: Vec::new(),
            conditions: Vec::new(),
            order: Vec::new(),
        }
    }

    /// The condition of the parameter at `index`; `None` when it is always active.
    pub fn condition(&self, index: usize) -> Option<&Condition> {
        self.conditions.get(index).and_then(Option::as_ref)
    }

    /// Whether any parameter has a condition.
    pub fn is_conditional(&self) -> bool {
        self.conditions.iter().any(Option::is_some)
    }

    /// Which parameters are active under the assignment: a parameter without a condition
    /// always is, one with a condition when its parent is active and takes one of the
    /// condition's values.
    pub fn active(&self, assignment: &Assignment) -> Vec<bool> {
        let mut active = vec![true; self.parameters.len()];
        for &index in &self.order {
            if let Some(condition) = &self.conditions[index] {
                active[index] = active[condition.parent]
                    && matches!(
                        assignment.values.get(condition.parent),
                        Some(Value::Choice(choice)) if condition.values.binary_search(choice).is_ok()
                    );
            }
        }
        active
    }

    /// The parameters grouped by their condition, so each group is active or inactive as a
    /// whole: the always-active parameters first, then one group per distinct condition, each
    /// after the group holding its parent. Indices ascend within a group. This is the group
    /// decomposition of Optuna's `TPESampler(group=True)`, read from the conditions instead of
    /// from which parameters past trials happened to share.
    pub fn condition_groups(&self) -> Vec<Vec<usize>> {
        let mut groups: Vec<(Option<&Condition>, Vec<usize>)> = Vec::new();
        // Visiting parameters parents first places each group after its parent's group, and
        // the always-active group first: the order starts at a parameter without a parent.
        for &index in &self.order {
            let condition = self.conditions[index].as_ref();
            match groups.iter_mut().find(|(key, _)| *key == condition) {
                Some((_, members)) => members.push(index),
                None => groups.push((condition, vec![index])),
            }
        }
        groups
            .into_iter()
            .map(|(_, mut members)| {
                members.sort_unstable();
                members
            })
            .collect()
    }

    /// The space of the parameters at `indices` alone, without conditions: what an algorithm
    /// searches for one of the [`SearchSpace::condition_groups`].
    pub fn subspace(&self, indices: &[usize]) -> SearchSpace {
        let parameters: Vec<Parameter> = indices
            .iter()
            .map(|index| self.parameters[*index].clone())
            .collect();
        SearchSpace {
            conditions: vec![None; parameters.len()],
            order: (0..parameters.len()).collect(),
            parameters,
        }
    }

    /// The assignment with every inactive slot set to its parameter's
    /// [`Parameter::inactive_value`], so equal points are equal values.
    pub fn canonical(&self, assignment: &Assignment) -> Assignment {
        let active = self.active(assignment);
        Assignment {
            values: assignment
                .values
                .iter()
                .zip(&self.parameters)
                .zip(active)
                .map(|((value, parameter), active)| {
                    if active {
                        *value
                    } else {
                        parameter.inactive_value()
                    }
                })
                .collect(),
        }
    }

    /// The parameters, in spec order.
    pub fn parameters(&self) -> &[Parameter] {
        &self.parameters
    }

    /// The number of parameters.
    pub fn len(&self) -> usize {
        self.parameters.len()
    }

    /// Whether the space has no parameter (only [`SearchSpace::without_parameters`]).
    pub fn is_empty(&self) -> bool {
        self.parameters.is_empty()
    }

    /// Reads an assignment given as name/value strings, in any order.
    pub fn parse_assignment<'a, I>(&self, pairs: I) -> Result<Assignment, SpaceError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut values: Vec<Option<Value>> = vec![None; self.parameters.len()];
        for (name, text) in pairs {
            let index = self
                .parameters
                .iter()
                .position(|parameter| parameter.name == name)
                .ok_or_else(|| SpaceError::UnknownParameter { name: name.into() })?;
            values[index] = Some(self.parameters[index].parse_value(text)?);
        }
        // Activity is decided by the parents' values alone, so the inactive placeholders
        // below never change it.
        let filled = Assignment {
            values: values
                .iter()
                .zip(&self.parameters)
                .map(|(value, parameter)| value.unwrap_or_else(|| parameter.inactive_value()))
                .collect(),
        };
        let active = self.active(&filled);
        // Parents first: a missing parent is the problem, not the children it would activate.
        if let Some(&missing) = self
            .order
            .iter()
            .find(|index| active[**index] && values[**index].is_none())
        {
            return Err(SpaceError::MissingValue {
                name: self.parameters[missing].name.clone(),
            });
        }
        // A value given for an inactive parameter (a client that sends every parameter) is
        // ignored, as it would be by the trial.
        Ok(self.canonical(&filled))
    }

    /// Renders an assignment as Katib's name/value strings, leaving out inactive parameters.
    pub fn format_assignment(&self, assignment: &Assignment) -> Vec<(String, String)> {
        let active = self.active(assignment);
        self.parameters
            .iter()
            .zip(&assignment.values)
            .zip(active)
            .filter(|(_, active)| *active)
            .map(|((parameter, value), _)| (parameter.name.clone(), parameter.format_value(*value)))
            .collect()
    }

    /// A canonical text key of an assignment, equal for assignments that render equally
    /// (inactive slots do not count).
    pub fn assignment_key(&self, assignment: &Assignment) -> String {
        let active = self.active(assignment);
        let mut key = String::new();
        for ((parameter, value), active) in
            self.parameters.iter().zip(&assignment.values).zip(active)
        {
            if active {
                key.push_str(&parameter.format_value(*value));
            }
            key.push('\u{1f}');
        }
        key
    }

    /// Maps one uniform number per parameter to an assignment drawn from the priors; the
    /// numbers of inactive parameters go unused.
    pub fn from_quantiles(&self, quantiles: &[f64]) -> Assignment {
        self.canonical(&Assignment {
            values: self
                .parameters
                .iter()
                .zip(quantiles)
                .map(|(parameter, &u)| parameter.from_quantile(u))
                .collect(),
        })
    }

    /// Whether every active value of the assignment is feasible for its parameter.
    pub fn contains(&self, assignment: &Assignment) -> bool {
        assignment.values.len() == self.parameters.len()
            && self
                .parameters
                .iter()
                .zip(&assignment.values)
                .zip(self.active(assignment))
                .all(|((parameter, value), active)| !active || parameter.contains(*value))
    }
}

// === impl Parameter ===

impl Parameter {
    fn parse(index: usize, spec: &RawParameter) -> Result<Parameter, Vec<SpaceError>> {
        let mut errors = Vec::new();
        if spec.name.is_empty() {
            errors.push(invalid(index, spec, "name", "must not be empty"));
        }
        let domain = match spec.parameter_type {
            None => {
                errors.push(invalid(
                    index,
                    spec,
                    "parameterType",
                    "unknown parameter type; expected double, int, discrete or categorical",
                ));
                None
            }
            Some(ParameterType::Double) => parse_double(index, spec, &mut errors),
            Some(ParameterType::Int) => parse_int(index, spec, &mut errors),
            Some(ParameterType::Discrete) => parse_discrete(index, spec, &mut errors),
            Some(ParameterType::Categorical) => parse_categorical(index, spec, &mut errors),
        };
        match domain {
            Some(domain) if errors.is_empty() => Ok(Parameter {
                name: spec.name.clone(),
                domain,
            }),
            _ => Err(errors),
        }
    }

    /// The Katib type of the parameter.
    pub fn parameter_type(&self) -> ParameterType {
        match self.domain {
            Domain::Double { .. } => ParameterType::Double,
            Domain::Int { .. } => ParameterType::Int,
            Domain::Discrete { .. } => ParameterType::Discrete,
            Domain::Categorical { .. } => ParameterType::Categorical,
        }
    }

    /// The number of distinct values, or `None` for a continuous double parameter.
    pub fn cardinality(&self) -> Option<u64> {
        match &self.domain {
            Domain::Double {
                min,
                max,
                step: Some(step),
                ..
            } => Some(lattice_len(*min, *max, *step)),
            Domain::Double { step: None, .. } => None,
            Domain::Int { min, max, step, .. } => {
                Some(((*max as i128 - *min as i128) / *step as i128 + 1) as u64)
            }
            Domain::Discrete { values, .. } => Some(values.len() as u64),
            Domain::Categorical { choices } => Some(choices.len() as u64),
        }
    }

    /// The value an inactive slot holds: the first in enumeration order (the lower bound, the
    /// first list entry). Being one fixed value, it is also what the model-based algorithms
    /// impute for the parameter where it is inactive.
    pub fn inactive_value(&self) -> Value {
        self.nth_value(0)
    }

    /// The `k`-th value in this parameter's enumeration order, for `k < cardinality`.
    pub fn nth_value(&self, k: u64) -> Value {
        match &self.domain {
            Domain::Double { min, max, step, .. } => Value::Double(snap_double(
                *min,
                *max,
                *step,
                min + step.unwrap_or(0.0) * k as f64,
            )),
            Domain::Int { min, step, .. } => Value::Int(min + step * k as i64),
            Domain::Discrete { .. } | Domain::Categorical { .. } => Value::Choice(k as usize),
        }
    }

    /// Maps a uniform number in `[0, 1)` to a value drawn from the parameter's prior (see the
    /// module docs for each distribution).
    pub fn from_quantile(&self, u: f64) -> Value {
        let u = u.clamp(0.0, 1.0);
        match &self.domain {
            Domain::Double {
                min,
                max,
                step,
                distribution,
            } => {
                let x = quantile_on_range(*min, *max, *distribution, u);
                Value::Double(snap_double(*min, *max, *step, x))
            }
            Domain::Int {
                min,
                max,
                step,
                distribution,
            } => match distribution {
                Distribution::Uniform => {
                    let count = (*max - *min) / *step + 1;
                    let k = ((u * count as f64) as i64).min(count - 1);
                    Value::Int(min + k * step)
                }
                _ => {
                    // Widen by half a step so both end points get their share of the mass
                    // after rounding; keep the lower end positive for the log scales.
                    let half = *step as f64 / 2.0;
                    let mut low = *min as f64 - half;
                    if distribution.is_log() && low <= 0.0 {
                        low = *min as f64;
                    }
                    let x = quantile_on_range(low, *max as f64 + half, *distribution, u);
                    Value::Int(snap_int(*min, *max, *step, x))
                }
            },
            Domain::Discrete { values, .. } => Value::Choice(index_of_quantile(u, values.len())),
            Domain::Categorical { choices } => Value::Choice(index_of_quantile(u, choices.len())),
        }
    }

    /// Maps a value to `[0, 1]` on the parameter's search scale (log for log distributions);
    /// choices map to their index spread over `[0, 1]`.
    pub fn to_unit(&self, value: Value) -> f64 {
        match (&self.domain, value) {
            (
                Domain::Double {
                    min,
                    max,
                    distribution,
                    ..
                },
                Value::Double(x),
            ) => scale_to_unit(*min, *max, distribution.is_log(), x),
            (
                Domain::Int {
                    min,
                    max,
                    distribution,
                    ..
                },
                Value::Int(x),
            ) => scale_to_unit(*min as f64, *max as f64, distribution.is_log(), x as f64),
            (Domain::Discrete { values, .. }, Value::Choice(index)) => {
                choice_to_unit(index, values.len())
            }
            (Domain::Categorical { choices }, Value::Choice(index)) => {
                choice_to_unit(index, choices.len())
            }
            _ => 0.5,
        }
    }

    /// Maps a point of `[0, 1]` on the search scale back to the nearest feasible value.
    pub fn from_unit(&self, u: f64) -> Value {
        let u = if u.is_finite() {
            u.clamp(0.0, 1.0)
        } else {
            0.5
        };
        match &self.domain {
            Domain::Double {
                min,
                max,
                step,
                distribution,
            } => {
                let x = unit_to_scale(*min, *max, distribution.is_log(), u);
                Value::Double(snap_double(*min, *max, *step, x))
            }
            Domain::Int {
                min,
                max,
                step,
                distribution,
            } => {
                let x = unit_to_scale(*min as f64, *max as f64, distribution.is_log(), u);
                Value::Int(snap_int(*min, *max, *step, x))
            }
            Domain::Discrete { values, .. } => Value::Choice(unit_to_choice(u, values.len())),
            Domain::Categorical { choices } => Value::Choice(unit_to_choice(u, choices.len())),
        }
    }

    /// The feasible value nearest to the number `x` for an int or double parameter (clamped to
    /// the bounds, rounded to the step); `None` for a list parameter, whose values are not
    /// numbers on a line.
    pub fn nearest_value(&self, x: f64) -> Option<Value> {
        match &self.domain {
            Domain::Double { min, max, step, .. } => {
                Some(Value::Double(snap_double(*min, *max, *step, x)))
            }
            Domain::Int { min, max, step, .. } => Some(Value::Int(snap_int(*min, *max, *step, x))),
            Domain::Discrete { .. } | Domain::Categorical { .. } => None,
        }
    }

    /// Whether the value is feasible: in bounds, on the step lattice, a valid list index.
    pub fn contains(&self, value: Value) -> bool {
        self.infeasibility(value).is_none()
    }

    /// Why the value is not feasible (`is above max 1`, `is not min + k * step (min 0, step
    /// 0.5)`), or `None` when it is: the one rule behind [`Parameter::contains`], worded for
    /// people who wrote the value (a warm start's enqueued points).
    pub fn infeasibility(&self, value: Value) -> Option<String> {
        match (&self.domain, value) {
            (Domain::Double { min, max, step, .. }, Value::Double(x)) => {
                if !x.is_finite() {
                    Some("is not a finite number".into())
                } else if x < *min {
                    Some(format!("is below min {}", format_double(*min)))
                } else if x > *max {
                    Some(format!("is above max {}", format_double(*max)))
                } else {
                    step.filter(|step| snap_double(*min, *max, Some(*step), x) != x)
                        .map(|step| {
                            format!(
                                "is not min + k * step (min {}, step {})",
                                format_double(*min),
                                format_double(step)
                            )
                        })
                }
            }
            (Domain::Int { min, max, step, .. }, Value::Int(x)) => {
                if x < *min {
                    Some(format!("is below min {min}"))
                } else if x > *max {
                    Some(format!("is above max {max}"))
                } else if (x - min) % step != 0 {
                    Some(format!("is not min + k * step (min {min}, step {step})"))
                } else {
                    None
                }
            }
            (Domain::Discrete { values, .. }, Value::Choice(index)) if index < values.len() => None,
            (Domain::Categorical { choices }, Value::Choice(index)) if index < choices.len() => {
                None
            }
            (Domain::Discrete { .. } | Domain::Categorical { .. }, Value::Choice(_)) => {
                Some("is not in the list".into())
            }
            (_, _) => Some(format!("is not a value of type {}", self.parameter_type())),
        }
    }

    /// Reads a value as Katib sends it. Numbers outside the bounds are accepted (a history may
    /// hold trials of an earlier, wider space); list values must be in the list.
    pub fn parse_value(&self, text: &str) -> Result<Value, SpaceError> {
        let bad = |rule: &str| SpaceError::InvalidValue {
            name: self.name.clone(),
            value: text.into(),
            rule: rule.into(),
        };
        let trimmed = text.trim();
        match &self.domain {
            Domain::Double { .. } => match trimmed.parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(Value::Double(x)),
                _ => Err(bad("is not a finite number")),
            },
            Domain::Int { .. } => {
                if let Ok(x) = trimmed.parse::<i64>() {
                    return Ok(Value::Int(x));
                }
                match trimmed.parse::<f64>() {
                    Ok(x) if x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15 => {
                        Ok(Value::Int(x as i64))
                    }
                    _ => Err(bad("is not a whole number")),
                }
            }
            Domain::Discrete { values, labels } => {
                if let Some(index) = labels.iter().position(|label| label == text) {
                    return Ok(Value::Choice(index));
                }
                let number = trimmed
                    .parse::<f64>()
                    .map_err(|_| bad("is not in the list"))?;
                values
                    .iter()
                    .position(|value| *value == number)
                    .map(Value::Choice)
                    .ok_or_else(|| bad("is not in the list"))
            }
            Domain::Categorical { choices } => choices
                .iter()
                .position(|choice| choice == text)
                .map(Value::Choice)
                .ok_or_else(|| bad("is not in the list")),
        }
    }

    /// Renders a value as Katib's string: shortest round-trip decimal for doubles, the list
    /// entry as written for choices.
    pub fn format_value(&self, value: Value) -> String {
        match (&self.domain, value) {
            (Domain::Discrete { labels, .. }, Value::Choice(index)) => {
                labels.get(index).cloned().unwrap_or_default()
            }
            (Domain::Categorical { choices }, Value::Choice(index)) => {
                choices.get(index).cloned().unwrap_or_default()
            }
            (_, Value::Double(x)) => format_double(x),
            (_, Value::Int(x)) => x.to_string(),
            (_, Value::Choice(index)) => index.to_string(),
        }
    }
}

impl fmt::Display for ParameterType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParameterType::Double => "double",
            ParameterType::Int => "int",
            ParameterType::Discrete => "discrete",
            ParameterType::Categorical => "categorical",
        })
    }
}

/// Renders a double so that it parses back to the same number and reads naturally
/// (`0.1`, `3`, `1e-7`).
pub fn format_double(x: f64) -> String {
    if x == x.trunc() && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

// === parsing helpers ===

/// Reads every parameter's condition; `parameters[i]` is `None` where that spec was invalid.
fn parse_conditions(
    raw: &[RawParameter],
    parameters: &[Option<Parameter>],
    errors: &mut Vec<SpaceError>,
) -> Vec<Option<Condition>> {
    raw.iter()
        .enumerate()
        .map(|(index, spec)| {
            let written = spec.condition.as_ref()?;
            let Some(parent) = raw
                .iter()
                .position(|other| !other.name.is_empty() && other.name == written.parameter)
            else {
                errors.push(invalid(
                    index,
                    spec,
                    "condition.parameter",
                    format!("{:?} names no parameter of the space", written.parameter),
                ));
                return None;
            };
            let parent_parameter = parameters[parent].as_ref()?;
            if let Err(rule) = check_parent(&spec.name, index, parent_parameter, parent) {
                errors.push(invalid(index, spec, "condition.parameter", rule));
                return None;
            }
            if written.values.is_empty() {
                errors.push(invalid(
                    index,
                    spec,
                    "condition.values",
                    "must hold at least one value of the parent's list",
                ));
                return None;
            }
            let mut values = Vec::with_capacity(written.values.len());
            for (position, text) in written.values.iter().enumerate() {
                match parent_parameter.parse_value(text) {
                    Ok(Value::Choice(choice)) if !values.contains(&choice) => values.push(choice),
                    Ok(_) => errors.push(invalid(
                        index,
                        spec,
                        &format!("condition.values[{position}]"),
                        format!("duplicate value {text:?}"),
                    )),
                    Err(_) => errors.push(invalid(
                        index,
                        spec,
                        &format!("condition.values[{position}]"),
                        format!(
                            "{text:?} is not in the list of parent {:?} ({})",
                            parent_parameter.name,
                            list_labels(parent_parameter).join(", ")
                        ),
                    )),
                }
            }
            if values.len() != written.values.len() {
                return None;
            }
            values.sort_unstable();
            Some(Condition { parent, values })
        })
        .collect()
}

/// Why `parent` cannot be the parent of the parameter `name` at `index`, if it cannot.
fn check_parent(
    name: &str,
    index: usize,
    parent: &Parameter,
    parent_index: usize,
) -> Result<(), String> {
    if parent_index == index {
        return Err(format!("{name:?} cannot be conditioned on itself"));
    }
    match parent.parameter_type() {
        ParameterType::Categorical | ParameterType::Discrete => Ok(()),
        other => Err(format!(
            "parent {:?} is a {other} parameter; a condition's parent must be categorical or discrete",
            parent.name
        )),
    }
}

fn list_labels(parameter: &Parameter) -> &[String] {
    match &parameter.domain {
        Domain::Discrete { labels, .. } => labels,
        Domain::Categorical { choices } => choices,
        _ => &[],
    }
}

/// The rule a cycle of conditions breaks, naming the parameters along it.
fn cycle_rule<'a>(cycle: &[usize], name_of: impl Fn(usize) -> &'a str) -> String {
    let names: Vec<&str> = cycle
        .iter()
        .chain(cycle.first())
        .map(|index| name_of(*index))
        .collect();
    format!(
        "conditions form a cycle: {} (each conditioned on the next)",
        names.join(" -> ")
    )
}

/// Every index with each parent before its children; on a cycle, the indices along it, each
/// conditioned on the next.
fn topological_order(conditions: &[Option<Condition>]) -> Result<Vec<usize>, Vec<usize>> {
    // 0 = not visited, 1 = on the current path, 2 = placed.
    let mut state = vec![0u8; conditions.len()];
    let mut order = Vec::with_capacity(conditions.len());
    for start in 0..conditions.len() {
        // Walk up the chain of parents, then place it top-down; the chain is a path because
        // each parameter has at most one parent.
        let mut chain = Vec::new();
        let mut current = Some(start);
        while let Some(index) = current {
            match state[index] {
                2 => break,
                1 => {
                    let from = chain.iter().position(|seen| *seen == index).unwrap_or(0);
                    return Err(chain[from..].to_vec());
                }
                _ => {
                    state[index] = 1;
                    chain.push(index);
                    current = conditions[index].as_ref().map(|condition| condition.parent);
                }
            }
        }
        for index in chain.into_iter().rev() {
            state[index] = 2;
            order.push(index);
        }
    }
    Ok(order)
}

fn invalid(index: usize, spec: &RawParameter, field: &str, rule: impl Into<String>) -> SpaceError {
    SpaceError::InvalidParameter {
        index,
        name: spec.name.clone(),
        field: field.into(),
        rule: rule.into(),
    }
}

fn parse_double(index: usize, spec: &RawParameter, errors: &mut Vec<SpaceError>) -> Option<Domain> {
    let number = |field: &str, text: &str, errors: &mut Vec<SpaceError>| -> Option<f64> {
        if text.trim().is_empty() {
            errors.push(invalid(
                index,
                spec,
                field,
                "is required for a double parameter",
            ));
            return None;
        }
        match text.trim().parse::<f64>() {
            Ok(x) if x.is_finite() => Some(x),
            _ => {
                errors.push(invalid(
                    index,
                    spec,
                    field,
                    format!("{text:?} is not a finite number"),
                ));
                None
            }
        }
    };
    let min = number("feasibleSpace.min", &spec.min, errors);
    let max = number("feasibleSpace.max", &spec.max, errors);
    let step = if spec.step.trim().is_empty() {
        Some(None)
    } else {
        match spec.step.trim().parse::<f64>() {
            Ok(step) if step.is_finite() && step > 0.0 => Some(Some(step)),
            _ => {
                errors.push(invalid(
                    index,
                    spec,
                    "feasibleSpace.step",
                    format!("step {:?} must be a number > 0", spec.step),
                ));
                None
            }
        }
    };
    let distribution = spec.distribution.unwrap_or_default();
    let (min, max, step) = (min?, max?, step?);
    check_range(index, spec, min, max, distribution, errors);
    if let Some(step) = step
        && min <= max
        && lattice_len(min, max, step) > MAX_POINTS_PER_PARAMETER
    {
        errors.push(invalid(
            index,
            spec,
            "feasibleSpace.step",
            format!(
                "step {step} gives more than {MAX_POINTS_PER_PARAMETER} values in [{min}, {max}]"
            ),
        ));
    }
    Some(Domain::Double {
        min,
        max,
        step,
        distribution,
    })
}

fn parse_int(index: usize, spec: &RawParameter, errors: &mut Vec<SpaceError>) -> Option<Domain> {
    let whole = |field: &str, text: &str, errors: &mut Vec<SpaceError>| -> Option<i64> {
        if text.trim().is_empty() {
            errors.push(invalid(
                index,
                spec,
                field,
                "is required for an int parameter",
            ));
            return None;
        }
        match text.trim().parse::<i64>() {
            Ok(x) if x.abs() < 1 << 53 => Some(x),
            _ => {
                errors.push(invalid(
                    index,
                    spec,
                    field,
                    format!("{text:?} is not a whole number within ±2^53"),
                ));
                None
            }
        }
    };
    let min = whole("feasibleSpace.min", &spec.min, errors);
    let max = whole("feasibleSpace.max", &spec.max, errors);
    let step = if spec.step.trim().is_empty() {
        Some(1)
    } else {
        match spec.step.trim().parse::<i64>() {
            Ok(step) if step > 0 => Some(step),
            _ => {
                errors.push(invalid(
                    index,
                    spec,
                    "feasibleSpace.step",
                    format!("step {:?} must be a whole number > 0", spec.step),
                ));
                None
            }
        }
    };
    let distribution = spec.distribution.unwrap_or_default();
    let (min, max, step) = (min?, max?, step?);
    check_range(index, spec, min as f64, max as f64, distribution, errors);
    let max = if min <= max {
        // Keep only values reachable from `min` in whole steps, so `max` is itself feasible.
        min + (max - min) / step * step
    } else {
        max
    };
    Some(Domain::Int {
        min,
        max,
        step,
        distribution,
    })
}

fn check_range(
    index: usize,
    spec: &RawParameter,
    min: f64,
    max: f64,
    distribution: Distribution,
    errors: &mut Vec<SpaceError>,
) {
    if min > max {
        errors.push(invalid(
            index,
            spec,
            "feasibleSpace",
            format!("min {} > max {}", spec.min.trim(), spec.max.trim()),
        ));
    }
    if distribution.is_log() && min <= 0.0 {
        errors.push(invalid(
            index,
            spec,
            "feasibleSpace.min",
            format!(
                "min {} must be > 0 for a {} distribution",
                spec.min.trim(),
                if distribution == Distribution::LogUniform {
                    "logUniform"
                } else {
                    "logNormal"
                }
            ),
        ));
    }
}

fn parse_list(index: usize, spec: &RawParameter, errors: &mut Vec<SpaceError>) -> bool {
    if spec.list.is_empty() {
        errors.push(invalid(
            index,
            spec,
            "feasibleSpace.list",
            "must hold at least one value",
        ));
        return false;
    }
    let mut seen = HashSet::new();
    let mut ok = true;
    for (position, item) in spec.list.iter().enumerate() {
        if !seen.insert(item.as_str()) {
            errors.push(invalid(
                index,
                spec,
                &format!("feasibleSpace.list[{position}]"),
                format!("duplicate value {item:?}"),
            ));
            ok = false;
        }
    }
    ok
}

fn parse_discrete(
    index: usize,
    spec: &RawParameter,
    errors: &mut Vec<SpaceError>,
) -> Option<Domain> {
    if !parse_list(index, spec, errors) {
        return None;
    }
    let mut values = Vec::with_capacity(spec.list.len());
    for (position, item) in spec.list.iter().enumerate() {
        match item.trim().parse::<f64>() {
            Ok(x) if x.is_finite() => values.push(x),
            _ => errors.push(invalid(
                index,
                spec,
                &format!("feasibleSpace.list[{position}]"),
                format!(
                    "discrete value {item:?} is not a finite number (use categorical for strings)"
                ),
            )),
        }
    }
    (values.len() == spec.list.len()).then(|| Domain::Discrete {
        values,
        labels: spec.list.clone(),
    })
}

fn parse_categorical(
    index: usize,
    spec: &RawParameter,
    errors: &mut Vec<SpaceError>,
) -> Option<Domain> {
    parse_list(index, spec, errors).then(|| Domain::Categorical {
        choices: spec.list.clone(),
    })
}

// === numeric helpers ===

/// The number of lattice points `min + k * step` that are `<= max`, tolerating rounding error.
fn lattice_len(min: f64, max: f64, step: f64) -> u64 {
    let span = ((max - min) / step * (1.0 + 1e-12) + 1e-9).floor();
    if span.is_finite() && span >= 0.0 {
        (span as u64).saturating_add(1)
    } else {
        u64::MAX
    }
}

fn snap_double(min: f64, max: f64, step: Option<f64>, x: f64) -> f64 {
    let x = x.clamp(min, max);
    match step {
        None => x,
        Some(step) => {
            let last = lattice_len(min, max, step).saturating_sub(1) as f64;
            let k = ((x - min) / step).round().clamp(0.0, last);
            // Round away the binary noise of `k * step` (0.1 * 3 = 0.30000000000000004) so the
            // value renders as the user wrote the lattice.
            let value = min + k * step;
            let rounded: f64 = format!("{value:.12}").parse().unwrap_or(value);
            rounded.clamp(min, max)
        }
    }
}

fn snap_int(min: i64, max: i64, step: i64, x: f64) -> i64 {
    let last = (max - min) / step;
    let k = ((x - min as f64) / step as f64).round();
    let k = if k.is_finite() {
        (k as i64).clamp(0, last)
    } else {
        0
    };
    min + k * step
}

fn quantile_on_range(min: f64, max: f64, distribution: Distribution, u: f64) -> f64 {
    if max <= min {
        return min;
    }
    match distribution {
        Distribution::Uniform => min + u * (max - min),
        Distribution::LogUniform => (min.ln() + u * (max.ln() - min.ln())).exp(),
        Distribution::Normal => truncated_normal_quantile(min, max, u),
        Distribution::LogNormal => truncated_normal_quantile(min.ln(), max.ln(), u).exp(),
    }
}

/// Inverse CDF of the normal with mean at the centre of `[low, high]` and standard deviation
/// a sixth of its width, truncated to `[low, high]`.
fn truncated_normal_quantile(low: f64, high: f64, u: f64) -> f64 {
    let mean = (low + high) / 2.0;
    let sd = (high - low) / 6.0;
    let lower = normal_cdf(-3.0);
    let upper = normal_cdf(3.0);
    let p = (lower + u * (upper - lower)).clamp(1e-300, 1.0 - 1e-16);
    (mean + sd * normal_quantile(p)).clamp(low, high)
}

fn scale_to_unit(min: f64, max: f64, log: bool, x: f64) -> f64 {
    if max <= min {
        return 0.5;
    }
    let u = if log {
        (x.max(min).ln() - min.ln()) / (max.ln() - min.ln())
    } else {
        (x - min) / (max - min)
    };
    u.clamp(0.0, 1.0)
}

fn unit_to_scale(min: f64, max: f64, log: bool, u: f64) -> f64 {
    if max <= min {
        return min;
    }
    if log {
        (min.ln() + u * (max.ln() - min.ln())).exp()
    } else {
        min + u * (max - min)
    }
}

fn index_of_quantile(u: f64, len: usize) -> usize {
    ((u * len as f64) as usize).min(len.saturating_sub(1))
}

fn choice_to_unit(index: usize, len: usize) -> f64 {
    if len <= 1 {
        0.5
    } else {
        index as f64 / (len - 1) as f64
    }
}

fn unit_to_choice(u: f64, len: usize) -> usize {
    if len <= 1 {
        0
    } else {
        ((u * (len - 1) as f64).round() as usize).min(len - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn double(name: &str, min: &str, max: &str) -> RawParameter {
        RawParameter {
            name: name.into(),
            parameter_type: Some(ParameterType::Double),
            min: min.into(),
            max: max.into(),
            ..RawParameter::default()
        }
    }

    #[test]
    fn min_above_max_names_the_field_and_rule() {
        let errors = SearchSpace::parse(&[double("lr", "0.1", "1"), double("m", "5", "1")])
            .expect_err("min > max must be rejected");
        assert_eq!(
            errors[0].to_string(),
            r#"parameters[1].feasibleSpace ("m"): min 5 > max 1"#
        );
    }

    #[test]
    fn infeasible_values_say_which_bound_or_step_they_break() {
        let stepped = RawParameter {
            step: "0.5".into(),
            ..double("x", "0", "2")
        };
        let int = RawParameter {
            name: "n".into(),
            parameter_type: Some(ParameterType::Int),
            min: "1".into(),
            max: "9".into(),
            step: "2".into(),
            ..RawParameter::default()
        };
        let space = SearchSpace::parse(&[stepped, int]).expect("valid");
        let [x, n] = space.parameters() else {
            panic!("two parameters")
        };
        assert_eq!(x.infeasibility(Value::Double(1.5)), None);
        assert_eq!(
            x.infeasibility(Value::Double(5.0)).as_deref(),
            Some("is above max 2")
        );
        assert_eq!(
            x.infeasibility(Value::Double(-1.0)).as_deref(),
            Some("is below min 0")
        );
        assert_eq!(
            x.infeasibility(Value::Double(0.7)).as_deref(),
            Some("is not min + k * step (min 0, step 0.5)")
        );
        assert_eq!(n.infeasibility(Value::Int(3)), None);
        assert_eq!(
            n.infeasibility(Value::Int(4)).as_deref(),
            Some("is not min + k * step (min 1, step 2)")
        );
        assert_eq!(
            n.infeasibility(Value::Double(3.0)).as_deref(),
            Some("is not a value of type int")
        );
        assert!(!n.contains(Value::Int(11)) && n.contains(Value::Int(9)));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let bad_step = RawParameter {
            step: "0".into(),
            ..double("a", "1", "2")
        };
        let empty_list = RawParameter {
            name: "b".into(),
            parameter_type: Some(ParameterType::Categorical),
            ..RawParameter::default()
        };
        let unknown = RawParameter {
            name: "c".into(),
            ..RawParameter::default()
        };
        let errors = SearchSpace::parse(&[bad_step, empty_list, unknown, double("d", "x", "1")])
            .expect_err("invalid");
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 4, "{text:?}");
        assert!(text[0].contains("feasibleSpace.step") && text[0].contains("> 0"));
        assert!(text[1].contains("feasibleSpace.list") && text[1].contains("\"b\""));
        assert!(text[2].contains("parameterType") && text[2].contains("\"c\""));
        assert!(text[3].contains("feasibleSpace.min") && text[3].contains("not a finite number"));
    }

    #[test]
    fn log_distributions_need_positive_min() {
        let raw = RawParameter {
            distribution: Some(Distribution::LogUniform),
            ..double("lr", "0", "1")
        };
        let errors = SearchSpace::parse(&[raw]).expect_err("invalid");
        assert!(errors[0].to_string().contains("must be > 0"));
    }

    #[test]
    fn double_lattice_values_render_as_written() {
        let raw = RawParameter {
            step: "0.1".into(),
            ..double("x", "0", "1")
        };
        let space = SearchSpace::parse(&[raw]).expect("valid");
        let parameter = &space.parameters()[0];
        assert_eq!(parameter.cardinality(), Some(11));
        assert_eq!(parameter.format_value(parameter.from_unit(0.3)), "0.3");
        assert_eq!(parameter.format_value(parameter.nth_value(10)), "1");
        assert!(parameter.contains(parameter.from_quantile(0.77)));
    }

    #[test]
    fn int_max_is_trimmed_to_the_step_lattice() {
        let raw = RawParameter {
            parameter_type: Some(ParameterType::Int),
            step: "3".into(),
            ..double("n", "1", "11")
        };
        let space = SearchSpace::parse(&[raw]).expect("valid");
        let parameter = &space.parameters()[0];
        assert_eq!(parameter.cardinality(), Some(4));
        assert_eq!(parameter.from_quantile(0.999), Value::Int(10));
    }

    #[test]
    fn normal_prior_concentrates_in_the_middle_and_stays_in_bounds() {
        let raw = RawParameter {
            distribution: Some(Distribution::Normal),
            ..double("x", "0", "6")
        };
        let space = SearchSpace::parse(&[raw]).expect("valid");
        let parameter = &space.parameters()[0];
        let value = |u: f64| match parameter.from_quantile(u) {
            Value::Double(x) => x,
            other => panic!("{other:?}"),
        };
        assert!((value(0.5) - 3.0).abs() < 1e-9);
        assert!(value(0.0) >= 0.0 && value(1.0) <= 6.0);
        // Within one standard deviation (1.0) of the mean lies about 68% of the mass.
        assert!(value(0.16) > 1.9 && value(0.84) < 4.1);
    }

    #[test]
    fn assignments_round_trip_through_strings() {
        let space = SearchSpace::parse(&[
            double("lr", "0.001", "0.1"),
            RawParameter {
                name: "opt".into(),
                parameter_type: Some(ParameterType::Categorical),
                list: vec!["sgd".into(), "adam".into()],
                ..RawParameter::default()
            },
            RawParameter {
                name: "batch".into(),
                parameter_type: Some(ParameterType::Discrete),
                list: vec!["16".into(), "32".into()],
                ..RawParameter::default()
            },
        ])
        .expect("valid");
        let assignment = space
            .parse_assignment([("opt", "adam"), ("lr", "0.01"), ("batch", "32")])
            .expect("parses");
        assert_eq!(
            space.format_assignment(&assignment),
            vec![
                ("lr".to_string(), "0.01".to_string()),
                ("opt".to_string(), "adam".to_string()),
                ("batch".to_string(), "32".to_string())
            ]
        );
        assert_eq!(
            space.parse_assignment([("lr", "0.01"), ("bogus", "1")]),
            Err(SpaceError::UnknownParameter {
                name: "bogus".into()
            })
        );
        assert!(matches!(
            space.parse_assignment([("lr", "0.01"), ("opt", "rmsprop"), ("batch", "16")]),
            Err(SpaceError::InvalidValue { .. })
        ));
    }

    fn categorical(name: &str, list: &[&str]) -> RawParameter {
        RawParameter {
            name: name.into(),
            parameter_type: Some(ParameterType::Categorical),
            list: list.iter().map(|item| item.to_string()).collect(),
            ..RawParameter::default()
        }
    }

    fn when(parent: &str, values: &[&str]) -> Option<RawCondition> {
        Some(RawCondition {
            parameter: parent.into(),
            values: values.iter().map(|value| value.to_string()).collect(),
        })
    }

    /// `optimizer` in {sgd, adam}; `momentum` only for sgd; `nesterov` only when momentum is
    /// active and `schedule` is step (two levels deep through `schedule`, itself for sgd).
    fn optimizer_space() -> SearchSpace {
        SearchSpace::parse(&[
            RawParameter {
                condition: when("schedule", &["step"]),
                ..categorical("nesterov", &["yes", "no"])
            },
            categorical("optimizer", &["sgd", "adam"]),
            RawParameter {
                condition: when("optimizer", &["sgd"]),
                ..double("momentum", "0", "0.99")
            },
            RawParameter {
                condition: when("optimizer", &["sgd"]),
                ..categorical("schedule", &["step", "cosine"])
            },
        ])
        .expect("valid conditional space")
    }

    #[test]
    fn conditions_nest_and_decide_what_an_assignment_shows() {
        let space = optimizer_space();
        assert!(space.is_conditional());
        let sgd = space
            .parse_assignment([
                ("optimizer", "sgd"),
                ("momentum", "0.9"),
                ("schedule", "step"),
                ("nesterov", "no"),
            ])
            .expect("every active parameter given");
        assert_eq!(space.active(&sgd), [true, true, true, true]);
        assert_eq!(space.format_assignment(&sgd).len(), 4);
        // Adam leaves momentum, schedule and (through schedule) nesterov inactive: they need
        // no value, a value given for them is ignored, and they are never rendered.
        let adam = space
            .parse_assignment([("optimizer", "adam"), ("momentum", "0.5")])
            .expect("inactive parameters need no value");
        assert_eq!(space.active(&adam), [false, true, false, false]);
        assert_eq!(
            space.format_assignment(&adam),
            [("optimizer".to_string(), "adam".to_string())]
        );
        assert_eq!(adam, space.canonical(&adam));
        // A different value in an inactive slot is the same point.
        let mut other = adam.clone();
        other.values[2] = Value::Double(0.7);
        assert!(space.contains(&other));
        assert_eq!(space.assignment_key(&other), space.assignment_key(&adam));
        assert_ne!(space.assignment_key(&sgd), space.assignment_key(&adam));
        // An active parameter still needs its value.
        assert_eq!(
            space.parse_assignment([("optimizer", "sgd"), ("momentum", "0.9")]),
            Err(SpaceError::MissingValue {
                name: "schedule".into()
            })
        );
        // Prior draws leave inactive slots at their fixed value.
        let drawn = space.from_quantiles(&[0.9, 0.9, 0.4, 0.9]);
        assert_eq!(space.active(&drawn), [false, true, false, false]);
        assert_eq!(drawn.values[2], Value::Double(0.0));
    }

    #[test]
    fn bad_conditions_name_the_field_and_rule() {
        let errors = SearchSpace::parse(&[
            categorical("optimizer", &["sgd", "adam"]),
            double("lr", "0.001", "0.1"),
            RawParameter {
                condition: when("lr", &["0.01"]),
                ..double("momentum", "0", "1")
            },
            RawParameter {
                condition: when("optimizer", &["rmsprop"]),
                ..double("beta", "0", "1")
            },
            RawParameter {
                condition: when("missing", &["x"]),
                ..double("gamma", "0", "1")
            },
            RawParameter {
                condition: when("self", &["a"]),
                ..categorical("self", &["a", "b"])
            },
            RawParameter {
                condition: when("optimizer", &[]),
                ..double("delta", "0", "1")
            },
        ])
        .expect_err("every condition is invalid");
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                r#"parameters[2].condition.parameter ("momentum"): parent "lr" is a double parameter; a condition's parent must be categorical or discrete"#,
                r#"parameters[3].condition.values[0] ("beta"): "rmsprop" is not in the list of parent "optimizer" (sgd, adam)"#,
                r#"parameters[4].condition.parameter ("gamma"): "missing" names no parameter of the space"#,
                r#"parameters[5].condition.parameter ("self"): "self" cannot be conditioned on itself"#,
                r#"parameters[6].condition.values ("delta"): must hold at least one value of the parent's list"#,
            ]
        );
    }

    #[test]
    fn a_cycle_of_conditions_is_rejected() {
        let errors = SearchSpace::parse(&[
            double("lr", "0.001", "0.1"),
            RawParameter {
                condition: when("b", &["x"]),
                ..categorical("a", &["x", "y"])
            },
            RawParameter {
                condition: when("a", &["y"]),
                ..categorical("b", &["x", "y"])
            },
        ])
        .expect_err("a and b condition each other");
        assert_eq!(
            errors[0].to_string(),
            r#"parameters[1].condition.parameter ("a"): conditions form a cycle: a -> b -> a (each conditioned on the next)"#
        );
    }

    #[test]
    fn a_discrete_parent_matches_values_as_numbers() {
        let space = SearchSpace::parse(&[
            RawParameter {
                name: "layers".into(),
                parameter_type: Some(ParameterType::Discrete),
                list: vec!["1".into(), "2".into()],
                ..RawParameter::default()
            },
            RawParameter {
                condition: when("layers", &["2.0"]),
                ..double("width2", "8", "64")
            },
        ])
        .expect("2.0 is the discrete value 2");
        assert_eq!(space.condition(1).map(|c| c.values.clone()), Some(vec![1]));
    }

    #[test]
    fn groups_follow_conditions_and_typed_conditions_are_checked() {
        let space = optimizer_space();
        // Always active: optimizer; for sgd: momentum and schedule; for step: nesterov.
        assert_eq!(space.condition_groups(), [vec![1], vec![2, 3], vec![0]]);
        let sub = space.subspace(&[2, 3]);
        assert_eq!(sub.len(), 2);
        assert!(!sub.is_conditional());
        let pair = SearchSpace::parse(&[categorical("a", &["x", "y"]), categorical("b", &["x"])])
            .expect("valid");
        let on = |parent: usize| Condition {
            parent,
            values: vec![0],
        };
        assert_eq!(
            pair.clone()
                .with_conditions(vec![(0, on(1)), (1, on(0))])
                .expect_err("a cycle")
                .to_string(),
            r#"parameters[0].condition ("a"): conditions form a cycle: a -> b -> a (each conditioned on the next)"#
        );
        assert!(
            pair.clone()
                .with_conditions(vec![(
                    1,
                    Condition {
                        parent: 0,
                        values: vec![2]
                    }
                )])
                .is_err(),
            "index 2 is outside a's list"
        );
        let conditioned = pair.with_conditions(vec![(1, on(0))]).expect("valid");
        assert_eq!(conditioned.condition(1), Some(&on(0)));
    }
}
