//! Quality of `bayesianoptimization` on fixed seeds: after a short run its median simple regret
//! must be far below random search's over the same seeds, so a regression in the model, the
//! acquisition or its optimizer fails CI. When written, the margins were about 1000x (Branin,
//! 30 trials) and 4000x (Hartmann6, 60 trials); the tests ask for 50x and 10x (Hartmann6 has a
//! local optimum at regret 0.12 that some seeds stay in for a while). On Styblinski-Tang the
//! model must also carry what it learns about one parameter across the others (the additive
//! kernel component), which a regression in the kernel or its fit loses first.

use sextant_algorithms::Setting;
use sextant_algorithms::test_functions::{TestFunction, median, regret_curve};

const SEEDS: u64 = 5;

fn median_final_regret(algorithm: &str, function: TestFunction, trials: usize) -> f64 {
    let mut finals: Vec<f64> = (0..SEEDS)
        .map(|seed| {
            let settings = [Setting::new("random_state", seed.to_string())];
            let curve = regret_curve(algorithm, &settings, function, trials).expect("runs");
            curve[trials - 1]
        })
        .collect();
    median(&mut finals)
}

fn assert_far_better_than_random(function: TestFunction, trials: usize, factor: f64) {
    let gp = median_final_regret("bayesianoptimization", function, trials);
    let random = median_final_regret("random", function, trials);
    println!("{}: gp {gp:.3e}, random {random:.3e}", function.name());
    assert!(gp.is_finite() && gp >= 0.0);
    assert!(
        gp * factor < random,
        "{}: median regret {gp} is not below 1/{factor} of random search's {random}",
        function.name()
    );
}

#[test]
fn gp_beats_random_search_on_branin() {
    assert_far_better_than_random(TestFunction::Branin, 30, 50.0);
}

#[test]
fn gp_beats_random_search_on_hartmann6() {
    assert_far_better_than_random(TestFunction::Hartmann6, 60, 10.0);
}

#[test]
fn gp_puts_most_coordinates_of_styblinski_tang_in_the_better_basin() {
    // Each coordinate left in the worse of its two basins costs 14.1, so the bound asks for
    // none in the median run. Measured: median regret 1.7 after 100 trials (43 without the
    // additive kernel component, random search 109).
    let gp = median_final_regret("bayesianoptimization", TestFunction::StyblinskiTang, 100);
    println!("styblinski-tang: gp {gp:.3e}");
    assert!(gp.is_finite() && gp >= 0.0);
    assert!(gp < 10.0, "median regret {gp} after 100 trials (bound 10)");
}
