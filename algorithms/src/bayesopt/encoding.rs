//! The map between assignments and points of the unit cube the Gaussian process works in.
//!
//! Double, int and discrete parameters take one coordinate each, on the parameter's search
//! scale ([`Parameter::to_unit`]: logarithmic for log distributions, the list index for
//! discrete values); a categorical parameter takes one coordinate per choice (one-hot), so no
//! false order is imposed on its choices; a parameter with a single value takes none.
//! [`Encoding::project`] moves any point of the cube to the encoding of the nearest feasible
//! assignment, which is how int, stepped and list parameters are handled: the acquisition is
//! always evaluated at a point that can actually be suggested (Garrido-Merchán &
//! Hernández-Lobato, "Dealing with Categorical and Integer-valued Variables in Bayesian
//! Optimization with Gaussian Processes", Neurocomputing 2020).
//!
//! # Conditional parameters
//!
//! Where a conditional parameter (see [`crate::space`]) is inactive its coordinates are imputed
//! with a constant ([`IMPUTED`] for a numeric coordinate, all zeros for a one-hot block), so
//! every point of a branch encodes its inactive parameters alike and the kernel compares trials
//! on the coordinates they share (imputation, one of the treatments Lévesque et al. compare in
//! "Bayesian Optimization for Conditional Hyperparameter Spaces", IJCNN 2017). A parameter
//! under a discrete parent also gets an indicator coordinate (1 active, 0 not), since the
//! parent's single coordinate does not show which of its values activate it; under categorical
//! parents the one-hot blocks already do. Measured on `test_functions`' `conditional`
//! (categorical root), 100 trials, seeds 0 to 29: imputation alone, median regret 2.8e-7 and no
//! seed stuck in a wrong branch; with an indicator on every conditional parameter as well,
//! 3.3e-7 and one seed stuck at 0.15. [`Encoding::project`] applies the same rule to
//! candidates, so the acquisition only ever scores encodings of canonical assignments, and
//! [`Encoding::movable_columns`] keeps the gradient polish off inactive coordinates.

use crate::space::{Assignment, Domain, Parameter, SearchSpace, Value};

/// The value an inactive parameter's numeric coordinate takes: the middle of the cube's side,
/// so an imputed point is never farther than half a side from an active one on that axis.
pub const IMPUTED: f64 = 0.5;

#[derive(Debug, Clone, PartialEq)]
enum Block {
    /// A parameter with one feasible value.
    Fixed(Value),
    /// One coordinate; `lattice` when only some of its values are feasible.
    Numeric { column: usize, lattice: bool },
    /// One coordinate per choice.
    OneHot { start: usize, choices: usize },
}

/// How one search space is laid out in the unit cube.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoding {
    blocks: Vec<Block>,
    width: usize,
    continuous: Vec<usize>,
    /// Per parameter, the indicator coordinate of a conditional one.
    indicators: Vec<Option<usize>>,
}

impl Encoding {
    /// The layout for `space`.
    pub fn new(space: &SearchSpace) -> Encoding {
        let mut blocks = Vec::with_capacity(space.len());
        let mut width = 0;
        let mut continuous = Vec::new();
        let mut indicators = Vec::with_capacity(space.len());
        for (index, parameter) in space.parameters().iter().enumerate() {
            if below_discrete_parent(space, index) {
                indicators.push(Some(width));
                width += 1;
            } else {
                indicators.push(None);
            }
            if parameter.cardinality() == Some(1) {
                blocks.push(Block::Fixed(parameter.nth_value(0)));
                continue;
            }
            match &parameter.domain {
                Domain::Categorical { choices } => {
                    blocks.push(Block::OneHot {
                        start: width,
                        choices: choices.len(),
                    });
                    width += choices.len();
                }
                domain => {
                    let lattice = !matches!(domain, Domain::Double { step: None, .. });
                    if !lattice {
                        continuous.push(width);
                    }
                    blocks.push(Block::Numeric {
                        column: width,
                        lattice,
                    });
                    width += 1;
                }
            }
        }
        Encoding {
            blocks,
            width,
            continuous,
            indicators,
        }
    }

    /// Coordinates per point.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The coordinates of continuous double parameters, the only ones a gradient can move.
    pub fn continuous_columns(&self) -> &[usize] {
        &self.continuous
    }

    /// Writes the point of `assignment` into `row`; `false` when the assignment does not fit
    /// the space (a trial of an older, different space), which then is not used.
    pub fn encode(&self, space: &SearchSpace, assignment: &Assignment, row: &mut [f64]) -> bool {
        if assignment.values.len() != self.blocks.len() {
            return false;
        }
        for ((block, parameter), value) in self
            .blocks
            .iter()
            .zip(space.parameters())
            .zip(&assignment.values)
        {
            if !kind_matches(parameter, *value) {
                return false;
            }
            match *block {
                Block::Fixed(_) => {}
                Block::Numeric { column, .. } => row[column] = parameter.to_unit(*value),
                Block::OneHot { start, choices } => {
                    let Value::Choice(index) = *value else {
                        return false;
                    };
                    if index >= choices {
                        return false;
                    }
                    row[start..start + choices]
                        .iter_mut()
                        .for_each(|x| *x = 0.0);
                    row[start + index] = 1.0;
                }
            }
        }
        self.impute(space, assignment, row);
        true
    }

    /// Writes the indicators of `assignment` into `row` and imputes the coordinates of its
    /// inactive parameters.
    fn impute(&self, space: &SearchSpace, assignment: &Assignment, row: &mut [f64]) {
        if !space.is_conditional() {
            return;
        }
        for ((block, indicator), active) in self
            .blocks
            .iter()
            .zip(&self.indicators)
            .zip(space.active(assignment))
        {
            if let Some(column) = indicator {
                row[*column] = if active { 1.0 } else { 0.0 };
            }
            if active {
                continue;
            }
            match *block {
                Block::Fixed(_) => {}
                Block::Numeric { column, .. } => row[column] = IMPUTED,
                Block::OneHot { start, choices } => row[start..start + choices]
                    .iter_mut()
                    .for_each(|x| *x = 0.0),
            }
        }
    }

    /// The continuous coordinates a gradient may move from `row`: those of the continuous
    /// double parameters active there.
    pub fn movable_columns(&self, space: &SearchSpace, row: &[f64]) -> Vec<usize> {
        if !space.is_conditional() {
            return self.continuous.clone();
        }
        let active = space.active(&self.decode(space, row));
        self.blocks
            .iter()
            .zip(active)
            .filter_map(|(block, active)| match *block {
                Block::Numeric {
                    column,
                    lattice: false,
                } if active => Some(column),
                _ => None,
            })
            .collect()
    }

    /// The feasible assignment nearest to `row`.
    pub fn decode(&self, space: &SearchSpace, row: &[f64]) -> Assignment {
        let values = self
            .blocks
            .iter()
            .zip(space.parameters())
            .map(|(block, parameter)| match *block {
                Block::Fixed(value) => value,
                Block::Numeric { column, .. } => parameter.from_unit(row[column]),
                Block::OneHot { start, choices } => {
                    Value::Choice(argmax(&row[start..start + choices]))
                }
            })
            .collect();
        space.canonical(&Assignment { values })
    }

    /// Moves `row` onto the encoding of the nearest feasible assignment (its canonical one, in
    /// a conditional space).
    pub fn project(&self, space: &SearchSpace, row: &mut [f64]) {
        for (block, parameter) in self.blocks.iter().zip(space.parameters()) {
            match *block {
                Block::Fixed(_) => {}
                Block::Numeric { column, lattice } => {
                    let clamped = if row[column].is_finite() {
                        row[column].clamp(0.0, 1.0)
                    } else {
                        0.5
                    };
                    row[column] = if lattice {
                        parameter.to_unit(parameter.from_unit(clamped))
                    } else {
                        clamped
                    };
                }
                Block::OneHot { start, choices } => {
                    let chosen = argmax(&row[start..start + choices]);
                    for (offset, x) in row[start..start + choices].iter_mut().enumerate() {
                        *x = if offset == chosen { 1.0 } else { 0.0 };
                    }
                }
            }
        }
        if space.is_conditional() {
            let assignment = self.decode(space, row);
            self.impute(space, &assignment, row);
        }
    }
}

/// Whether a discrete parameter is among the parents up the condition chain of the parameter
/// at `index`: then its single coordinate does not show where the parameter is active, and the
/// parameter gets an indicator. Under categorical parents alone the one-hot blocks already show
/// it, and an indicator measured worse (see the module docs).
fn below_discrete_parent(space: &SearchSpace, index: usize) -> bool {
    let mut current = index;
    // Conditions form no cycle (validation), so the walk ends at an always-active parameter.
    while let Some(condition) = space.condition(current) {
        if matches!(
            space.parameters()[condition.parent].domain,
            Domain::Discrete { .. }
        ) {
            return true;
        }
        current = condition.parent;
    }
    false
}

fn kind_matches(parameter: &Parameter, value: Value) -> bool {
    matches!(
        (&parameter.domain, value),
        (Domain::Double { .. }, Value::Double(_))
            | (Domain::Int { .. }, Value::Int(_))
            | (Domain::Discrete { .. }, Value::Choice(_))
            | (Domain::Categorical { .. }, Value::Choice(_))
    ) && match (&parameter.domain, value) {
        (Domain::Discrete { values, .. }, Value::Choice(index)) => index < values.len(),
        _ => true,
    }
}

/// The index of the largest value; the first on ties and `0` for NaN-only input.
fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (index, value) in values.iter().enumerate() {
        if *value > values[best] {
            best = index;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::{ParameterType, RawParameter};

    fn mixed_space() -> SearchSpace {
        let raw = |name: &str, kind, min: &str, max: &str, list: &[&str]| RawParameter {
            name: name.into(),
            parameter_type: Some(kind),
            min: min.into(),
            max: max.into(),
            list: list.iter().map(|s| s.to_string()).collect(),
            ..RawParameter::default()
        };
        SearchSpace::parse(&[
            raw("lr", ParameterType::Double, "0.001", "0.1", &[]),
            raw("layers", ParameterType::Int, "1", "5", &[]),
            raw(
                "optimizer",
                ParameterType::Categorical,
                "",
                "",
                &["sgd", "adam", "rmsprop"],
            ),
            raw("only", ParameterType::Categorical, "", "", &["x"]),
            raw(
                "batch",
                ParameterType::Discrete,
                "",
                "",
                &["16", "32", "64"],
            ),
        ])
        .expect("valid space")
    }

    #[test]
    fn projection_lands_on_feasible_points_and_round_trips() {
        let space = mixed_space();
        let encoding = Encoding::new(&space);
        assert_eq!(encoding.width(), 1 + 1 + 3 + 1);
        assert_eq!(encoding.continuous_columns(), &[0]);
        let mut row = vec![0.3, 0.41, 0.2, 0.7, 0.1, 0.8];
        encoding.project(&space, &mut row);
        assert_eq!(row[1], 0.5, "int 1..5 at 0.41 rounds to 3");
        assert_eq!(&row[2..5], &[0.0, 1.0, 0.0]);
        assert_eq!(row[5], 1.0);
        let assignment = encoding.decode(&space, &row);
        assert!(space.contains(&assignment));
        assert_eq!(assignment.values[1], Value::Int(3));
        assert_eq!(assignment.values[2], Value::Choice(1));
        assert_eq!(assignment.values[3], Value::Choice(0));
        let mut again = vec![0.0; 6];
        assert!(encoding.encode(&space, &assignment, &mut again));
        for (a, b) in again.iter().zip(&row) {
            assert!((a - b).abs() < 1e-12);
        }
        let mismatched = Assignment {
            values: vec![Value::Int(1); 5],
        };
        assert!(!encoding.encode(&space, &mismatched, &mut again));
    }

    #[test]
    fn inactive_parameters_are_imputed_and_flagged_under_a_discrete_parent() {
        let raw = |name: &str, kind, min: &str, max: &str, list: &[&str]| RawParameter {
            name: name.into(),
            parameter_type: Some(kind),
            min: min.into(),
            max: max.into(),
            list: list.iter().map(|s| s.to_string()).collect(),
            ..RawParameter::default()
        };
        let when = |parent: &str, value: &str| {
            Some(crate::space::RawCondition {
                parameter: parent.into(),
                values: vec![value.into()],
            })
        };
        let space = SearchSpace::parse(&[
            raw(
                "optimizer",
                ParameterType::Categorical,
                "",
                "",
                &["sgd", "adam"],
            ),
            RawParameter {
                condition: when("optimizer", "sgd"),
                ..raw("momentum", ParameterType::Double, "0", "1", &[])
            },
            raw("layers", ParameterType::Discrete, "", "", &["1", "2"]),
            RawParameter {
                condition: when("layers", "2"),
                ..raw("width", ParameterType::Double, "0", "1", &[])
            },
        ])
        .expect("valid space");
        let encoding = Encoding::new(&space);
        // optimizer one-hot (2), momentum (1), layers (1), width's indicator and coordinate (2).
        assert_eq!(encoding.width(), 6);
        let adam_one_layer = space
            .parse_assignment([("optimizer", "adam"), ("layers", "1")])
            .expect("parses");
        let mut row = vec![9.0; 6];
        assert!(encoding.encode(&space, &adam_one_layer, &mut row));
        assert_eq!(row, [0.0, 1.0, IMPUTED, 0.0, 0.0, IMPUTED]);
        // A candidate with values in inactive coordinates is projected onto the same row.
        let mut candidate = vec![0.2, 0.9, 0.7, 0.1, 0.6, 0.3];
        encoding.project(&space, &mut candidate);
        assert_eq!(candidate, row);
        assert_eq!(
            encoding.movable_columns(&space, &candidate),
            Vec::<usize>::new()
        );
        let sgd_two_layers = space
            .parse_assignment([
                ("optimizer", "sgd"),
                ("momentum", "0.25"),
                ("layers", "2"),
                ("width", "0.75"),
            ])
            .expect("parses");
        assert!(encoding.encode(&space, &sgd_two_layers, &mut row));
        assert_eq!(row, [1.0, 0.0, 0.25, 1.0, 1.0, 0.75]);
        assert_eq!(encoding.movable_columns(&space, &row), [2, 5]);
        assert_eq!(encoding.decode(&space, &row), sgd_two_layers);
    }
}
