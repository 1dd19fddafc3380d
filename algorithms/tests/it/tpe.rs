//! Quality of `tpe` and `multivariate-tpe`: on Branin and Hartmann6, over fixed seeds, each
//! must reach a median simple regret after 60 trials well below (under half of) random
//! search's over the same seeds, and below a fixed bound, so a degraded model fails here; on
//! the mixed space, `multivariate-tpe` must find the best int values on nearly every seed.

use sextant_algorithms::Setting;
use sextant_algorithms::test_functions::{TestFunction, median, regret_curve};

const TRIALS: usize = 60;
const SEEDS: u64 = 8;

fn median_regret(algorithm: &str, function: TestFunction) -> f64 {
    let mut finals: Vec<f64> = (0..SEEDS)
        .map(|seed| {
            let settings = [Setting::new("random_state", seed.to_string())];
            let curve = regret_curve(algorithm, &settings, function, TRIALS).expect("runs");
            assert_eq!(curve.len(), TRIALS);
            assert!(
                curve
                    .iter()
                    .all(|regret| regret.is_finite() && *regret >= -1e-9)
            );
            curve[TRIALS - 1]
        })
        .collect();
    median(&mut finals)
}

fn assert_beats_random(algorithm: &str, function: TestFunction, bound: f64) {
    let random = median_regret("random", function);
    let model = median_regret(algorithm, function);
    assert!(
        model < 0.5 * random && model < bound,
        "{algorithm} on {}: median regret {model:.4} vs random {random:.4} (bound {bound})",
        function.name()
    );
}

#[test]
fn tpe_beats_random_search_on_branin() {
    // Measured: tpe 0.014, random 0.50.
    assert_beats_random("tpe", TestFunction::Branin, 0.1);
}

#[test]
fn tpe_beats_random_search_on_hartmann6() {
    // Measured: tpe 0.28 (0.34 with uniform weights in the good group), random 1.33.
    assert_beats_random("tpe", TestFunction::Hartmann6, 0.4);
}

#[test]
fn multivariate_tpe_beats_random_search_on_branin() {
    // Measured: multivariate-tpe 0.048, random 0.50.
    assert_beats_random("multivariate-tpe", TestFunction::Branin, 0.15);
}

#[test]
fn multivariate_tpe_beats_random_search_on_hartmann6() {
    // Measured: multivariate-tpe 0.14, random 1.33.
    assert_beats_random("multivariate-tpe", TestFunction::Hartmann6, 0.4);
}

#[test]
fn multivariate_tpe_settles_the_integers_of_a_mixed_space() {
    // On the mixed space (a double, a log-uniform double, two ints, a four-way categorical),
    // regret after 100 trials over seeds 0 to 9. When its kernels were a fraction of an int's
    // cell wide, `multivariate-tpe` kept the good trials' int values and six seeds of ten
    // stayed one step off the best `x3` (regret 0.01): median 0.0093, against 0.0102 for
    // `tpe` and 0.058 for random search. With kernels at least half a cell wide: median
    // 0.00004, every seed below 0.0005.
    let function = TestFunction::Mixed;
    let finals: Vec<f64> = (0..10)
        .map(|seed| {
            let settings = [Setting::new("random_state", seed.to_string())];
            let curve = regret_curve("multivariate-tpe", &settings, function, 100).expect("runs");
            assert!(
                curve
                    .iter()
                    .all(|regret| regret.is_finite() && *regret >= -1e-9)
            );
            curve[99]
        })
        .collect();
    let stuck = finals.iter().filter(|regret| **regret > 0.005).count();
    let model = median(&mut finals.clone());
    assert!(
        stuck <= 1 && model < 0.001,
        "multivariate-tpe on mixed: regrets {finals:?}, median {model:.5}"
    );
}
