//! Multi-objective and constrained test problems, and the loop that runs an algorithm on one:
//! what the multi-objective quality tests and the quality runner measure.
//!
//! Every objective is minimized. ZDT1, ZDT2 and ZDT3 are Zitzler, Deb and Thiele's (2000) and
//! DTLZ2 Deb, Thiele, Laumanns and Zitzler's (2002), each on 6 variables in `[0, 1]` (DTLZ2
//! with 3 objectives), the sizes the peers' published figures use; hypervolume is measured to
//! the reference point (11, 11) for the ZDT problems and (1.1, 1.1, 1.1) for DTLZ2. ZDT3 (a
//! front in five pieces) is held out: no setting was chosen on it.
//!
//! The constrained problem is Branin on `[-5, 10] x [0, 15]` under the disk constraint
//! `(x0 - 2.5)^2 + (x1 - 7.5)^2 <= 50`, our choice: it leaves one of Branin's three global
//! minima feasible, (pi, 2.275) with value 0.397887, and cuts the other two off, so a search
//! that ignores the constraint is drawn to infeasible points.

use std::f64::consts::PI;

use crate::SuggestError;
use crate::history::{TrialRecord, observed_outcomes};
use crate::hypervolume::hypervolume;
use crate::objective::{Bound, Constraint, Direction, Objective, ObjectiveMetric};
use crate::settings::Setting;
use crate::space::{Distribution, Domain, Parameter, SearchSpace, Value};
use crate::test_functions::{TestFunction, sequential_run};

/// A multi-objective or constrained test problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestProblem {
    /// ZDT1: a convex front `f2 = 1 - sqrt(f1)`.
    Zdt1,
    /// ZDT2: a concave front `f2 = 1 - f1^2`.
    Zdt2,
    /// ZDT3: a front in five disconnected pieces (held out).
    Zdt3,
    /// DTLZ2 with three objectives: the front is the positive octant of the unit sphere.
    Dtlz2,
    /// Branin under a disk constraint: one objective, one constraint.
    ConstrainedBranin,
}

/// The number of variables of the ZDT and DTLZ problems.
const VARIABLES: usize = 6;

impl TestProblem {
    /// The problems with several objectives, in the order of the anchor table.
    pub const MULTI_OBJECTIVE: [TestProblem; 4] = [
        TestProblem::Zdt1,
        TestProblem::Zdt2,
        TestProblem::Dtlz2,
        TestProblem::Zdt3,
    ];

    /// The problem's name as the quality runner spells it.
    pub fn name(self) -> &'static str {
        match self {
            TestProblem::Zdt1 => "zdt1",
            TestProblem::Zdt2 => "zdt2",
            TestProblem::Zdt3 => "zdt3",
            TestProblem::Dtlz2 => "dtlz2",
            TestProblem::ConstrainedBranin => "constrained-branin",
        }
    }

    /// Looks a problem up by [`TestProblem::name`].
    pub fn from_name(name: &str) -> Option<TestProblem> {
        TestProblem::MULTI_OBJECTIVE
            .into_iter()
            .chain([TestProblem::ConstrainedBranin])
            .find(|problem| problem.name() == name)
    }

    /// The search space: `x0, x1, ...` as uniform doubles.
    pub fn space(self) -> SearchSpace {
        let bounds = match self {
            TestProblem::ConstrainedBranin => TestFunction::Branin.bounds(),
            _ => vec![(0.0, 1.0); VARIABLES],
        };
        let parameters = bounds
            .into_iter()
            .enumerate()
            .map(|(index, (min, max))| Parameter {
                name: format!("x{index}"),
                domain: Domain::Double {
                    min,
                    max,
                    step: None,
                    distribution: Distribution::Uniform,
                },
            })
            .collect();
        SearchSpace::new(parameters).expect("names x0.. are unique and non-empty")
    }

    /// The objectives (metrics `f1`, `f2`, ...) and constraints (metric `c1`).
    pub fn objective(self) -> Objective {
        let metric = |index: usize| ObjectiveMetric::new(Direction::Minimize, format!("f{index}"));
        let mut objective = Objective::several(
            metric(1),
            (2..=self.objective_count()).map(metric).collect(),
        );
        if self == TestProblem::ConstrainedBranin {
            objective.constraints.push(Constraint {
                metric_name: "c1".into(),
                bound: Bound::Max(50.0),
            });
        }
        objective
    }

    /// How many objectives the problem has.
    pub fn objective_count(self) -> usize {
        match self {
            TestProblem::Zdt1 | TestProblem::Zdt2 | TestProblem::Zdt3 => 2,
            TestProblem::Dtlz2 => 3,
            TestProblem::ConstrainedBranin => 1,
        }
    }

    /// The hypervolume reference point.
    pub fn reference(self) -> Vec<f64> {
        match self {
            TestProblem::Dtlz2 => vec![1.1; 3],
            _ => vec![11.0; self.objective_count()],
        }
    }

    /// The metrics at `x`: the objectives `f1, f2, ...`, then the constrained metric `c1` if
    /// any.
    pub fn evaluate(self, x: &[f64]) -> Vec<(String, f64)> {
        let values = match self {
            TestProblem::Zdt1 | TestProblem::Zdt2 | TestProblem::Zdt3 => {
                let f1 = x[0];
                let g = 1.0 + 9.0 * x[1..].iter().sum::<f64>() / (x.len() - 1) as f64;
                let ratio = f1 / g;
                let h = match self {
                    TestProblem::Zdt1 => 1.0 - ratio.sqrt(),
                    TestProblem::Zdt2 => 1.0 - ratio * ratio,
                    _ => 1.0 - ratio.sqrt() - ratio * (10.0 * PI * f1).sin(),
                };
                vec![f1, g * h]
            }
            TestProblem::Dtlz2 => {
                let g: f64 = x[2..].iter().map(|v| (v - 0.5).powi(2)).sum();
                let (a, b) = (x[0] * PI / 2.0, x[1] * PI / 2.0);
                vec![
                    (1.0 + g) * a.cos() * b.cos(),
                    (1.0 + g) * a.cos() * b.sin(),
                    (1.0 + g) * a.sin(),
                ]
            }
            TestProblem::ConstrainedBranin => {
                let disk = (x[0] - 2.5).powi(2) + (x[1] - 7.5).powi(2);
                return vec![
                    ("f1".into(), TestFunction::Branin.evaluate(x)),
                    ("c1".into(), disk),
                ];
            }
        };
        values
            .into_iter()
            .enumerate()
            .map(|(index, value)| (format!("f{}", index + 1), value))
            .collect()
    }

    /// The hypervolume of the feasible Pareto front of `trials` to [`TestProblem::reference`].
    pub fn hypervolume(self, trials: &[TrialRecord]) -> f64 {
        let objective = self.objective();
        let feasible: Vec<Vec<f64>> = observed_outcomes(trials, &objective)
            .into_iter()
            .filter(|(_, outcome)| outcome.is_feasible())
            .map(|(_, outcome)| outcome.losses)
            .collect();
        hypervolume(&feasible, &self.reference())
    }

    /// The lowest first objective of a feasible trial; infinity when none is feasible.
    pub fn best_feasible(self, trials: &[TrialRecord]) -> f64 {
        observed_outcomes(trials, &self.objective())
            .into_iter()
            .filter(|(_, outcome)| outcome.is_feasible())
            .map(|(_, outcome)| outcome.losses[0])
            .fold(f64::INFINITY, f64::min)
    }
}

/// The `trials` finished trials that `algorithm` proposes one at a time on `problem` (the full
/// history each time, as a controller with `parallelTrialCount: 1` asks), each with every
/// metric reported and the first objective as its objective value.
pub fn problem_trajectory(
    algorithm: &str,
    settings: &[Setting],
    problem: TestProblem,
    trials: usize,
) -> Result<Vec<TrialRecord>, SuggestError> {
    sequential_run(
        algorithm,
        settings,
        &problem.space(),
        &problem.objective(),
        trials,
        |assignment| {
            let x: Vec<f64> = assignment
                .values
                .iter()
                .map(|value| match value {
                    Value::Double(v) => *v,
                    Value::Int(v) => *v as f64,
                    Value::Choice(index) => *index as f64,
                })
                .collect();
            let metrics = problem.evaluate(&x);
            (metrics[0].1, metrics)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fronts_are_where_the_definitions_put_them() {
        // On the front (x1.. = 0 for ZDT, 0.5 for DTLZ2) the objectives satisfy the front's
        // equation.
        let f = TestProblem::Zdt1.evaluate(&[0.25, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert!((f[1].1 - 0.5).abs() < 1e-12);
        let f = TestProblem::Zdt2.evaluate(&[0.5, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert!((f[1].1 - 0.75).abs() < 1e-12);
        let f = TestProblem::Dtlz2.evaluate(&[0.3, 0.7, 0.5, 0.5, 0.5, 0.5]);
        let radius: f64 = f.iter().map(|(_, v)| v * v).sum();
        assert!((radius - 1.0).abs() < 1e-12);
        let f = TestProblem::ConstrainedBranin.evaluate(&[PI, 2.275]);
        assert!((f[0].1 - 0.397_887).abs() < 1e-5 && f[1].1 <= 50.0);
    }

    #[test]
    fn a_dense_sample_of_the_true_front_has_its_known_hypervolume() {
        let points: Vec<Vec<f64>> = (0..=2000)
            .map(|k| {
                let f1 = k as f64 / 2000.0;
                vec![f1, 1.0 - f1.sqrt()]
            })
            .collect();
        let volume = hypervolume(&points, &TestProblem::Zdt1.reference());
        assert!((volume - (121.0 - 1.0 / 3.0)).abs() < 0.01, "{volume}");
    }
}
