//! Acquisition functions on the posterior of a minimized, standardized objective: expected
//! improvement, probability of improvement and the lower confidence bound, each written as a
//! value to maximize with its derivatives in the posterior mean and standard deviation.
//!
//! EI and PI are used in logarithmic form, computed without underflow far from the incumbent
//! (Ament et al., "Unexpected Improvements to Expected Improvement for Bayesian Optimization",
//! NeurIPS 2023): plain EI is exactly zero over most of the space after a few dozen trials,
//! which leaves a gradient-based optimizer nothing to follow.

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
pub fn hedge_probabilities(gains: &[f64; 3]) -> [f64; 3] {
    let largest = gains.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let weights = gains.map(|gain| (gain - largest).exp());
    let total: f64 = weights.iter().sum();
    weights.map(|weight| weight / total)
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
    fn hedge_probabilities_sum_to_one_even_for_huge_gains() {
        let probabilities = hedge_probabilities(&[1e300, -1e300, 0.0]);
        assert!((probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(probabilities[0], 1.0);
        assert_eq!(hedge_probabilities(&[0.0; 3]), [1.0 / 3.0; 3]);
    }
}
