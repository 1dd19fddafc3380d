//! Box-constrained limited-memory BFGS: the optimizer for the Gaussian process's
//! hyperparameters and for polishing the acquisition function.
//!
//! The method is the projected quasi-Newton scheme of Kim, Sra & Dhillon, "Tackling
//! Box-Constrained Optimization via a New Projected Quasi-Newton Approach" (SIAM J. Sci. Comput.
//! 2010): variables held at a bound by their gradient are fixed for the iteration, the search
//! direction is the L-BFGS two-loop recursion (Nocedal & Wright, *Numerical Optimization*, 2nd
//! ed., Algorithm 7.4) on the free variables, and the step is an Armijo backtracking search
//! along the projection of that direction onto the box. It needs far less code than the
//! Cauchy-point machinery of L-BFGS-B (Byrd, Lu, Nocedal & Zhu 1995) and serves the small,
//! smooth problems here equally well.

use std::collections::VecDeque;

/// Limits of one minimization.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Most iterations (each costs one or more evaluations).
    pub max_iterations: usize,
    /// Correction pairs kept.
    pub memory: usize,
    /// Stop when the projected gradient's largest component is below this.
    pub gradient_tolerance: f64,
    /// Stop when an iteration improves the value by less than this, relative to its size.
    pub relative_tolerance: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_iterations: 50,
            memory: 8,
            gradient_tolerance: 1e-5,
            relative_tolerance: 1e-9,
        }
    }
}

/// The best point found.
#[derive(Debug, Clone, PartialEq)]
pub struct Minimum {
    /// Where.
    pub point: Vec<f64>,
    /// The objective there (`+inf` when even the start could not be evaluated).
    pub value: f64,
}

struct Correction {
    step: Vec<f64>,
    gradient_change: Vec<f64>,
    inverse_curvature: f64,
}

/// Minimizes `objective` over the box `[lower, upper]` from `start`.
///
/// `objective(x, gradient)` returns the value at `x` and writes the gradient; a non-finite value
/// marks `x` as unusable, and the line search steps back from it.
pub fn minimize<F>(
    mut objective: F,
    start: &[f64],
    lower: &[f64],
    upper: &[f64],
    options: &Options,
) -> Minimum
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    let dimensions = start.len();
    let project = |point: &mut [f64]| {
        for ((value, low), high) in point.iter_mut().zip(lower).zip(upper) {
            *value = value.clamp(*low, *high);
        }
    };
    let mut point = start.to_vec();
    project(&mut point);
    let mut gradient = vec![0.0; dimensions];
    let mut value = objective(&point, &mut gradient);
    if !value.is_finite() || gradient.iter().any(|g| !g.is_finite()) {
        return Minimum {
            point,
            value: f64::INFINITY,
        };
    }
    let mut memory: VecDeque<Correction> = VecDeque::with_capacity(options.memory);
    let mut direction = vec![0.0; dimensions];
    let mut coefficients = vec![0.0; options.memory];
    let mut trial = vec![0.0; dimensions];
    let mut trial_gradient = vec![0.0; dimensions];

    for _ in 0..options.max_iterations {
        // Variables at a bound whose gradient pushes outward stay fixed this iteration.
        let free: Vec<bool> = (0..dimensions)
            .map(|i| {
                !((point[i] <= lower[i] && gradient[i] > 0.0)
                    || (point[i] >= upper[i] && gradient[i] < 0.0))
            })
            .collect();
        let projected_gradient = (0..dimensions)
            .map(|i| ((point[i] - gradient[i]).clamp(lower[i], upper[i]) - point[i]).abs())
            .fold(0.0, f64::max);
        if projected_gradient < options.gradient_tolerance {
            break;
        }
        two_loop(&memory, &gradient, &free, &mut direction, &mut coefficients);
        let mut slope: f64 = direction.iter().zip(&gradient).map(|(d, g)| d * g).sum();
        if slope.is_nan() || slope >= 0.0 {
            memory.clear();
            for i in 0..dimensions {
                direction[i] = if free[i] { -gradient[i] } else { 0.0 };
            }
            slope = direction.iter().zip(&gradient).map(|(d, g)| d * g).sum();
            if slope.is_nan() || slope >= 0.0 {
                break;
            }
        }
        // Without curvature information the first step is scaled to move at most one unit.
        let mut step_length = if memory.is_empty() {
            let largest = direction.iter().fold(0.0_f64, |m, d| m.max(d.abs()));
            (1.0 / largest).min(1.0)
        } else {
            1.0
        };
        let mut accepted = None;
        for _ in 0..30 {
            for i in 0..dimensions {
                trial[i] = point[i] + step_length * direction[i];
            }
            project(&mut trial);
            let decrease: f64 = (0..dimensions)
                .map(|i| gradient[i] * (trial[i] - point[i]))
                .sum();
            if decrease == 0.0 {
                break;
            }
            let trial_value = objective(&trial, &mut trial_gradient);
            if trial_value.is_finite()
                && trial_gradient.iter().all(|g| g.is_finite())
                && trial_value <= value + 1e-4 * decrease
            {
                accepted = Some(trial_value);
                break;
            }
            step_length *= 0.5;
        }
        let Some(trial_value) = accepted else {
            if memory.is_empty() {
                break;
            }
            memory.clear();
            continue;
        };
        let step: Vec<f64> = (0..dimensions).map(|i| trial[i] - point[i]).collect();
        let gradient_change: Vec<f64> = (0..dimensions)
            .map(|i| trial_gradient[i] - gradient[i])
            .collect();
        let curvature: f64 = step.iter().zip(&gradient_change).map(|(s, y)| s * y).sum();
        let change_norm: f64 = gradient_change.iter().map(|y| y * y).sum();
        if curvature > 1e-12 * change_norm.max(f64::MIN_POSITIVE) {
            if memory.len() == options.memory {
                memory.pop_front();
            }
            memory.push_back(Correction {
                step,
                gradient_change,
                inverse_curvature: 1.0 / curvature,
            });
        }
        let improvement = value - trial_value;
        point.copy_from_slice(&trial);
        gradient.copy_from_slice(&trial_gradient);
        value = trial_value;
        if improvement <= options.relative_tolerance * value.abs().max(1.0) {
            break;
        }
    }
    Minimum { point, value }
}

/// `direction = -H * gradient` on the free variables, by the two-loop recursion.
fn two_loop(
    memory: &VecDeque<Correction>,
    gradient: &[f64],
    free: &[bool],
    direction: &mut [f64],
    coefficients: &mut [f64],
) {
    let masked = |values: &mut [f64]| {
        for (value, is_free) in values.iter_mut().zip(free) {
            if !is_free {
                *value = 0.0;
            }
        }
    };
    direction.copy_from_slice(gradient);
    masked(direction);
    for (index, correction) in memory.iter().enumerate().rev() {
        let a = correction.inverse_curvature * dot(&correction.step, direction);
        coefficients[index] = a;
        axpy(-a, &correction.gradient_change, direction);
    }
    if let Some(newest) = memory.back() {
        let scale = 1.0
            / (newest.inverse_curvature * dot(&newest.gradient_change, &newest.gradient_change));
        direction.iter_mut().for_each(|d| *d *= scale);
    }
    for (index, correction) in memory.iter().enumerate() {
        let b = correction.inverse_curvature * dot(&correction.gradient_change, direction);
        axpy(coefficients[index] - b, &correction.step, direction);
    }
    masked(direction);
    direction.iter_mut().for_each(|d| *d = -*d);
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rosenbrock(x: &[f64], gradient: &mut [f64]) -> f64 {
        let (a, b) = (x[0], x[1]);
        gradient[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
        gradient[1] = 200.0 * (b - a * a);
        (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
    }

    #[test]
    fn finds_the_unconstrained_minimum_of_rosenbrock() {
        let options = Options {
            max_iterations: 200,
            ..Options::default()
        };
        let found = minimize(rosenbrock, &[-1.2, 1.0], &[-5.0; 2], &[5.0; 2], &options);
        assert!(found.value < 1e-8, "{found:?}");
        assert!((found.point[0] - 1.0).abs() < 1e-3 && (found.point[1] - 1.0).abs() < 1e-3);
    }

    #[test]
    fn stops_on_an_active_bound() {
        // The minimum of (x - 3)^2 + (y + 1)^2 over [0, 2] x [0, 2] is the corner (2, 0).
        let objective = |x: &[f64], gradient: &mut [f64]| {
            gradient[0] = 2.0 * (x[0] - 3.0);
            gradient[1] = 2.0 * (x[1] + 1.0);
            (x[0] - 3.0).powi(2) + (x[1] + 1.0).powi(2)
        };
        let found = minimize(
            objective,
            &[1.0, 1.0],
            &[0.0; 2],
            &[2.0; 2],
            &Options::default(),
        );
        assert_eq!(found.point, vec![2.0, 0.0]);
        assert!((found.value - 2.0).abs() < 1e-12);
    }

    #[test]
    fn an_unusable_start_is_reported_as_infinite() {
        let objective = |_: &[f64], _: &mut [f64]| f64::NAN;
        let found = minimize(objective, &[0.5], &[0.0], &[1.0], &Options::default());
        assert_eq!(found.value, f64::INFINITY);
    }
}
