//! Quality of `cmaes` on fixed seeds: after 100 trials its median simple regret must be well
//! below random search's over the same seeds, so a regression in the update, the sampling or
//! the replay of the state from the history fails CI. Measured margins: Branin 59x and
//! Hartmann6 6.2x (34x and 4.0x before the population size and the rank-one learning rate were
//! fitted to short budgets); the tests ask for 20x and 5x.

use sextant_algorithms::Setting;
use sextant_algorithms::test_functions::{TestFunction, median, regret_curve};

const SEEDS: u64 = 8;
const TRIALS: usize = 100;

fn median_final_regret(algorithm: &str, function: TestFunction, extra: &[Setting]) -> f64 {
    let mut finals: Vec<f64> = (0..SEEDS)
        .map(|seed| {
            let mut settings = vec![Setting::new("random_state", seed.to_string())];
            settings.extend(extra.iter().cloned());
            let curve = regret_curve(algorithm, &settings, function, TRIALS).expect("runs");
            curve[TRIALS - 1]
        })
        .collect();
    median(&mut finals)
}

fn assert_better_than_random(function: TestFunction, factor: f64, extra: &[Setting]) {
    let cmaes = median_final_regret("cmaes", function, extra);
    let random = median_final_regret("random", function, &[]);
    println!(
        "{}: cmaes {cmaes:.3e}, random {random:.3e}",
        function.name()
    );
    assert!(cmaes.is_finite() && cmaes >= 0.0);
    assert!(
        cmaes * factor < random,
        "{}: median regret {cmaes} is not below 1/{factor} of random search's {random}",
        function.name()
    );
}

#[test]
fn cmaes_beats_random_search_on_branin() {
    assert_better_than_random(TestFunction::Branin, 20.0, &[]);
}

#[test]
fn cmaes_beats_random_search_on_hartmann6() {
    assert_better_than_random(TestFunction::Hartmann6, 5.0, &[]);
}

#[test]
fn cmaes_with_bipop_restarts_beats_random_search_on_branin() {
    assert_better_than_random(
        TestFunction::Branin,
        20.0,
        &[Setting::new("restart_strategy", "bipop")],
    );
}
