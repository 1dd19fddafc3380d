//! Acquisition functions on the posterior of a minimized, standardized objective: expected
//! improvement, probability of improvement and the lower confidence bound, each written as a
//! value to maximize with its derivatives in the posterior mean and standard deviation.
//!
//! EI and PI are used in logarithmic form, computed without underflow far from the incumbent
//! (Ament et al., "Unexpected Improvements to Expected Improvement for Bayesian Optimization",
//! NeurIPS 2023): plain EI is exactly zero over most of the space after a few dozen trials,
//! which leaves a gradient-based optimizer nothing to follow.
//!
//! With several objectives the acquisition is the logarithm of the expected hypervolume
//! improvement (EHVI; Emmerich, Giannakoglou & Naujoks, "Single- and Multiobjective
//! Evolutionary Optimization Assisted by Gaussian Random Field Metamodels", IEEE TEC 2006),
//! computed exactly over a box decomposition of the region the front does not dominate
//! ([`crate::hypervolume::non_dominated_boxes`]). Inside one box `[l, u)` the improvement of
//! an outcome `y` is the product over objectives of `(u - max(y, l))^+`, and with independent
//! Gaussian posteriors per objective its expectation factorizes into one-dimensional terms
//! `g(u) - g(l)` with `g(b) = E[(b - Y)^+] = sd * h((b - mean) / sd)`, the same `h` as EI
//! (Yang, Emmerich, Deutz & Bäck, "Efficient computation of expected hypervolume improvement
//! using box decomposition algorithms", J. Global Optimization 2019). Summing over boxes in
//! log space, with each term's logarithm from `ln h`, keeps it finite and smooth far from the
//! front, as log EI is (Ament et al. 2023 propose qLogEHVI for the same reason).
//!
//! Constraints multiply the acquisition by the probability that every constraint is met,
//! each from its own model (Gardner et al., "Bayesian Optimization with Inequality
//! Constraints", ICML 2014; Gelbart, Snoek & Adams, "Bayesian Optimization with Unknown
//! Constraints", UAI 2014): in log space, a sum of `ln Phi`. Before any feasible trial there is
//! nothing to improve on, and the probability of feasibility alone is maximized, as Gardner et
//! al. do.

use crate::hypervolume::{Cell, non_dominated_boxes};
use crate::stats::{normal_cdf, normal_pdf};

/// `sqrt(pi / 2)`.
const SQRT_HALF_PI: f64 = 1.253_314_137_315_500_3;
/// `ln(sqrt(2 pi))`.
const LN_SQRT_TWO_PI: f64 = 0.918_938_533_204_672_7;

/// The improvement PI asks for beyond the incumbent, in standard deviations of the observed
/// losses (scikit-optimize's `xi = 0.01`).
pub const PI_MARGIN: f64 = 0.01;
/// LCB's exploration weight `kappa` (scikit-optimize's default 1.96).
pub const LCB_KAPPA: f64 = 1.96;

/// One acquisition function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquisition {
    /// `ln` expected improvement over the best observed loss.
    ExpectedImprovement,
    /// `ln` probability of improving on the best observed loss by [`PI_MARGIN`].
    ProbabilityOfImprovement,
    /// The negated lower confidence bound `-(mean - kappa * sd)`.
    LowerConfidenceBound,
}

impl Acquisition {
    /// Every acquisition, in the order `gp_hedge` keeps its gains.
    pub const ALL: [Acquisition; 3] = [
        Acquisition::ExpectedImprovement,
        Acquisition::ProbabilityOfImprovement,
        Acquisition::LowerConfidenceBound,
    ];

    /// Katib's (scikit-optimize's) name.
    pub fn name(self) -> &'static str {
        match self {
            Acquisition::ExpectedImprovement => "EI",
            Acquisition::ProbabilityOfImprovement => "PI",
            Acquisition::LowerConfidenceBound => "LCB",
        }
    }

    /// The value to maximize at posterior `mean` and standard deviation `sd` (both on the
    /// standardized scale) given the best observed standardized loss, and its derivatives with
    /// respect to `mean` and `sd`.
    pub fn evaluate(self, mean: f64, sd: f64, best: f64) -> (f64, f64, f64) {
        match self {
            Acquisition::ExpectedImprovement => {
                let z = (best - mean) / sd;
                let (log_h, ratio) = log_expected_improvement_factor(z);
                (sd.ln() + log_h, -ratio / sd, (1.0 - ratio * z) / sd)
            }
            Acquisition::ProbabilityOfImprovement => {
                let z = (best - PI_MARGIN - mean) / sd;
                let (log_cdf, hazard) = log_normal_cdf(z);
                (log_cdf, -hazard / sd, -hazard * z / sd)
            }
            Acquisition::LowerConfidenceBound => (LCB_KAPPA * sd - mean, -1.0, LCB_KAPPA),
        }
    }
}

/// What a point is worth before the constraints: what the objectives' posteriors promise.
#[derive(Debug, Clone, Copy)]
pub enum Goal<'a> {
    /// One objective: an acquisition against the best feasible standardized loss.
    Improve {
        /// The acquisition function; a logarithm (EI or PI) when there are constraints.
        acquisition: Acquisition,
        /// The best feasible standardized loss.
        best: f64,
    },
    /// Several objectives: the log expected hypervolume improvement.
    Hypervolume(&'a HypervolumeImprovement),
    /// No feasible trial yet: feasibility alone.
    Feasibility,
}

/// The acquisition over every modelled output: the objectives first (one for
/// [`Goal::Improve`]), then one per constraint.
#[derive(Debug, Clone, Copy)]
pub struct Criterion<'a> {
    /// What the objectives contribute.
    pub goal: Goal<'a>,
    /// How many outputs are objectives.
    pub objectives: usize,
    /// Each constraint's bound on its model's standardized scale: met at or below it.
    pub thresholds: &'a [f64],
}

impl Criterion<'_> {
    /// The value to maximize at the outputs' posterior means and standard deviations (one
    /// each, objectives then constraints), writing its derivatives with respect to them.
    pub fn evaluate(
        &self,
        means: &[f64],
        sds: &[f64],
        d_means: &mut [f64],
        d_sds: &mut [f64],
    ) -> f64 {
        d_means.fill(0.0);
        d_sds.fill(0.0);
        let mut value = match self.goal {
            Goal::Improve { acquisition, best } => {
                let (value, d_mean, d_sd) = acquisition.evaluate(means[0], sds[0], best);
                d_means[0] = d_mean;
                d_sds[0] = d_sd;
                value
            }
            Goal::Hypervolume(improvement) => improvement.log_expected(
                &means[..self.objectives],
                &sds[..self.objectives],
                &mut d_means[..self.objectives],
                &mut d_sds[..self.objectives],
            ),
            Goal::Feasibility => 0.0,
        };
        for (j, threshold) in self.thresholds.iter().enumerate() {
            let output = self.objectives + j;
            let (log_probability, d_mean, d_sd) =
                log_probability_of_feasibility(means[output], sds[output], *threshold);
            value += log_probability;
            d_means[output] = d_mean;
            d_sds[output] = d_sd;
        }
        value
    }
}

/// `ln P(Y <= threshold)` for `Y ~ N(mean, sd^2)`, and its derivatives in `mean` and `sd`.
pub fn log_probability_of_feasibility(mean: f64, sd: f64, threshold: f64) -> (f64, f64, f64) {
    let z = (threshold - mean) / sd;
    let (log_cdf, hazard) = log_normal_cdf(z);
    (log_cdf, -hazard / sd, -hazard * z / sd)
}

/// The exact expected hypervolume improvement over a fixed front, prepared once per model:
/// the boxes of the region the front leaves, with their corners as indices into each
/// objective's distinct corner values, so one evaluation computes `g` once per value rather
/// than once per box.
#[derive(Debug, Clone)]
pub struct HypervolumeImprovement {
    /// Per objective, the distinct finite corner values.
    levels: Vec<Vec<f64>>,
    /// Per box and objective, the lower corner's level (`None`: minus infinity) and the upper
    /// one's.
    boxes: Vec<Vec<(Option<usize>, usize)>>,
}

/// `ln g(b)` at one level and its derivatives in the mean and the standard deviation.
#[derive(Debug, Clone, Copy)]
struct LevelTerm {
    log_g: f64,
    d_mean: f64,
    d_sd: f64,
}

/// Where `1 - g(l) / g(u)` is so small that the difference `g(u) - g(l)` is taken as the
/// integral of its derivative, `(u - l) Phi(z)` at the box's middle, instead of from the two
/// logarithms (whose relative error, about 1e-7, would dominate it).
const NARROW_BOX: f64 = 1e-4;

impl HypervolumeImprovement {
    /// The improvement over `front` (losses) up to `reference`, which must be finite.
    pub fn new(front: &[Vec<f64>], reference: &[f64]) -> HypervolumeImprovement {
        let cells: Vec<Cell> = non_dominated_boxes(front, reference);
        let levels: Vec<Vec<f64>> = (0..reference.len())
            .map(|m| {
                let mut values: Vec<f64> = cells
                    .iter()
                    .flat_map(|cell| [cell.lower[m], cell.upper[m]])
                    .filter(|v| v.is_finite())
                    .collect();
                values.sort_by(f64::total_cmp);
                values.dedup();
                values
            })
            .collect();
        // `levels` holds every finite corner of every box, so the search always finds it.
        let find = |m: usize, value: f64| {
            levels[m]
                .binary_search_by(|probe| probe.total_cmp(&value))
                .expect("every finite corner is a level")
        };
        let boxes = cells
            .iter()
            .map(|cell| {
                (0..reference.len())
                    .map(|m| {
                        let lower = cell.lower[m].is_finite().then(|| find(m, cell.lower[m]));
                        (lower, find(m, cell.upper[m]))
                    })
                    .collect()
            })
            .collect();
        HypervolumeImprovement { levels, boxes }
    }

    /// `ln EHVI` at independent Gaussian posteriors `(means, sds)`, one per objective, with
    /// its derivatives; minus infinity (and zero derivatives) when no box is left.
    pub fn log_expected(
        &self,
        means: &[f64],
        sds: &[f64],
        d_means: &mut [f64],
        d_sds: &mut [f64],
    ) -> f64 {
        let terms: Vec<Vec<LevelTerm>> = self
            .levels
            .iter()
            .enumerate()
            .map(|(m, values)| {
                let (mean, sd) = (means[m], sds[m]);
                values
                    .iter()
                    .map(|b| {
                        let z = (b - mean) / sd;
                        let (log_h, ratio) = log_expected_improvement_factor(z);
                        LevelTerm {
                            log_g: sd.ln() + log_h,
                            d_mean: -ratio / sd,
                            d_sd: (1.0 - ratio * z) / sd,
                        }
                    })
                    .collect()
            })
            .collect();
        let objectives = self.levels.len();
        // Per box: ln of its expected improvement and that logarithm's derivatives.
        let mut box_logs = Vec::with_capacity(self.boxes.len());
        let mut box_slopes = Vec::with_capacity(self.boxes.len() * 2 * objectives);
        for corners in &self.boxes {
            let mut log_value = 0.0;
            for (m, &(lower, upper)) in corners.iter().enumerate() {
                let top = terms[m][upper];
                let (log_difference, d_mean, d_sd) = match lower {
                    None => (top.log_g, top.d_mean, top.d_sd),
                    Some(lower) => {
                        let bottom = terms[m][lower];
                        let ratio = (bottom.log_g - top.log_g).exp();
                        let gap = 1.0 - ratio;
                        if gap > NARROW_BOX {
                            (
                                top.log_g + gap.ln(),
                                (top.d_mean - ratio * bottom.d_mean) / gap,
                                (top.d_sd - ratio * bottom.d_sd) / gap,
                            )
                        } else {
                            let (l, u) = (self.levels[m][lower], self.levels[m][upper]);
                            let (log_cdf, d_mean, d_sd) =
                                log_probability_of_feasibility(means[m], sds[m], 0.5 * (l + u));
                            ((u - l).ln() + log_cdf, d_mean, d_sd)
                        }
                    }
                };
                log_value += log_difference;
                box_slopes.push(d_mean);
                box_slopes.push(d_sd);
            }
            box_logs.push(log_value);
        }
        d_means.fill(0.0);
        d_sds.fill(0.0);
        let largest = box_logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !largest.is_finite() {
            return largest;
        }
        let weights: Vec<f64> = box_logs.iter().map(|v| (v - largest).exp()).collect();
        let total: f64 = weights.iter().sum();
        for (weight, slopes) in weights.iter().zip(box_slopes.chunks(2 * objectives)) {
            let share = weight / total;
            for m in 0..objectives {
                d_means[m] += share * slopes[2 * m];
                d_sds[m] += share * slopes[2 * m + 1];
            }
        }
        largest + total.ln()
    }
}

/// `erfc(x) * exp(x^2)` for `x >= 0`, from the Chebyshev fit of Press et al., *Numerical
/// Recipes* (2nd ed., §6.2, `erfcc`), whose form `t * exp(-x^2 + P(t))` lets the `exp(-x^2)`
/// cancel exactly; relative error below 1.2e-7.
fn scaled_erfc(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.5 * x);
    let polynomial = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    t * polynomial.exp()
}

/// `ln h(z)` with `h(z) = phi(z) + z Phi(z)` (so EI `= sd * h(z)`), and `h'(z) / h(z) =
/// Phi(z) / h(z)`.
fn log_expected_improvement_factor(z: f64) -> (f64, f64) {
    if z > -1.0 {
        let cdf = normal_cdf(z);
        let h = normal_pdf(z) + z * cdf;
        return (h.ln(), cdf / h);
    }
    let a = -z;
    // q = a Phi(z) / phi(z); h(z) = phi(z) (1 - q).
    // The switch point balances the closed form's error (1.2e-7 * a^2, relative) against the
    // series' truncation (10395 / a^10); both are near 3e-6 there.
    let remainder = if a < 9.0 {
        1.0 - a * SQRT_HALF_PI * scaled_erfc(a / std::f64::consts::SQRT_2)
    } else {
        // The asymptotic series of 1 - q, where the closed form cancels catastrophically.
        let inverse = 1.0 / (a * a);
        inverse * (1.0 - inverse * (3.0 - inverse * (15.0 - inverse * (105.0 - 945.0 * inverse))))
    };
    let log_h = -0.5 * z * z - LN_SQRT_TWO_PI + remainder.ln();
    (log_h, (1.0 - remainder) / (a * remainder))
}

/// `ln Phi(z)` and `phi(z) / Phi(z)`, accurate in the far left tail.
fn log_normal_cdf(z: f64) -> (f64, f64) {
    if z > -1.0 {
        let cdf = normal_cdf(z);
        return (cdf.ln(), normal_pdf(z) / cdf);
    }
    let a = -z;
    let scaled = scaled_erfc(a / std::f64::consts::SQRT_2);
    (
        (0.5 * scaled).ln() - 0.5 * a * a,
        2.0 / (scaled * (2.0 * std::f64::consts::PI).sqrt()),
    )
}

/// The probabilities with which `gp_hedge` picks each acquisition: a softmax of its gains
/// (Hoffman, Brochu & de Freitas, "Portfolio Allocation for Bayesian Optimization", UAI 2011,
/// with scikit-optimize's learning rate 1).
pub fn hedge_probabilities(gains: &[f64]) -> Vec<f64> {
    let largest = gains.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = gains.iter().map(|gain| (gain - largest).exp()).collect();
    let total: f64 = weights.iter().sum();
    weights.iter().map(|weight| weight / total).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_expected_improvement_is_finite_and_smooth_in_the_far_tail() {
        for z in [
            -3000.0, -200.0, -25.0, -9.0, -8.99, -5.0, -1.0, -0.99, 0.0, 3.0, 40.0,
        ] {
            let (value, ratio) = log_expected_improvement_factor(z);
            assert!(
                value.is_finite() && ratio.is_finite() && ratio > 0.0,
                "z={z}"
            );
        }
        // Matches the direct formula where that is accurate.
        let direct = |z: f64| (normal_pdf(z) + z * normal_cdf(z)).ln();
        for z in [-6.0, -3.0, -1.5] {
            let (value, _) = log_expected_improvement_factor(z);
            assert!((value - direct(z)).abs() < 1e-4, "z={z}");
        }
        // Continuous across the switch to the asymptotic series: the step matches the slope
        // (about 9 there) times the distance, up to the small mismatch of the two forms.
        let (left, slope) = log_expected_improvement_factor(-9.000_001);
        let (right, _) = log_expected_improvement_factor(-8.999_999);
        assert!((right - left - slope * 2e-6).abs() < 1e-5, "{left} {right}");
    }

    #[test]
    fn acquisition_derivatives_match_finite_differences() {
        for acquisition in Acquisition::ALL {
            for (mean, sd) in [(0.3, 0.5), (2.0, 0.1), (-0.5, 1.2), (9.0, 0.05)] {
                let (_, d_mean, d_sd) = acquisition.evaluate(mean, sd, 0.0);
                let h = 1e-6;
                let numeric_mean = (acquisition.evaluate(mean + h, sd, 0.0).0
                    - acquisition.evaluate(mean - h, sd, 0.0).0)
                    / (2.0 * h);
                let numeric_sd = (acquisition.evaluate(mean, sd + h, 0.0).0
                    - acquisition.evaluate(mean, sd - h, 0.0).0)
                    / (2.0 * h);
                let close = |a: f64, b: f64| (a - b).abs() < 1e-3 * a.abs().max(1.0);
                assert!(
                    close(numeric_mean, d_mean),
                    "{acquisition:?} mean {mean} sd {sd}"
                );
                assert!(
                    close(numeric_sd, d_sd),
                    "{acquisition:?} mean {mean} sd {sd}"
                );
            }
        }
    }

    #[test]
    fn log_expected_hypervolume_improvement_derivatives_match_finite_differences() {
        let front = vec![
            vec![0.0, 1.0, 0.6],
            vec![0.5, 0.2, 0.3],
            vec![1.0, 0.0, 0.9],
        ];
        let improvement = HypervolumeImprovement::new(&front, &[1.5, 1.5, 1.5]);
        for (means, sds) in [
            ([0.4, 0.5, 0.5], [0.3, 0.2, 0.4]),
            ([2.0, 1.8, 3.0], [0.1, 0.05, 0.2]),
            ([0.55, 0.25, 0.35], [1e-3, 1e-3, 1e-3]),
        ] {
            let (mut d_means, mut d_sds) = ([0.0; 3], [0.0; 3]);
            let value = improvement.log_expected(&means, &sds, &mut d_means, &mut d_sds);
            assert!(value.is_finite());
            let mut scratch = ([0.0; 3], [0.0; 3]);
            for m in 0..3 {
                let h = 1e-6 * sds[m];
                let shifted =
                    |delta_mean: f64, delta_sd: f64, scratch: &mut ([f64; 3], [f64; 3])| {
                        let (mut means, mut sds) = (means, sds);
                        means[m] += delta_mean;
                        sds[m] += delta_sd;
                        improvement.log_expected(&means, &sds, &mut scratch.0, &mut scratch.1)
                    };
                let numeric_mean =
                    (shifted(h, 0.0, &mut scratch) - shifted(-h, 0.0, &mut scratch)) / (2.0 * h);
                let numeric_sd =
                    (shifted(0.0, h, &mut scratch) - shifted(0.0, -h, &mut scratch)) / (2.0 * h);
                let close = |a: f64, b: f64| (a - b).abs() < 1e-3 * a.abs().max(1.0);
                assert!(
                    close(numeric_mean, d_means[m]),
                    "{means:?} {m}: {numeric_mean} {}",
                    d_means[m]
                );
                assert!(
                    close(numeric_sd, d_sds[m]),
                    "{means:?} {m}: {numeric_sd} {}",
                    d_sds[m]
                );
            }
        }
    }

    #[test]
    fn hedge_probabilities_sum_to_one_even_for_huge_gains() {
        let probabilities = hedge_probabilities(&[1e300, -1e300, 0.0]);
        assert!((probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(probabilities[0], 1.0);
        assert_eq!(hedge_probabilities(&[0.0; 3]), vec![1.0 / 3.0; 3]);
    }
}
