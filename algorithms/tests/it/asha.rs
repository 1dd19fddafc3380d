//! Asynchronous successive halving on the synthetic learning-curve benchmark
//! (`sextant_algorithms::asha_benchmark`).

use sextant_algorithms::asha_benchmark::{BENCHMARK, summarize};
use sextant_algorithms::settings::Setting;

/// Over seeds 0 to 9, with rungs at epochs 3, 9 and 27, ASHA spends at most half the epochs of
/// running every trial to the end, and its best final accuracy is within the noise of the full
/// run's. Run with `--nocapture` to see the figures.
#[test]
fn asha_halves_the_epochs_and_keeps_the_best_final_value() {
    let settings = [
        Setting::new("min_resource", "3"),
        Setting::new("reduction_factor", "3"),
    ];
    let summary = summarize(BENCHMARK, &settings, 0..10).expect("valid settings");
    eprintln!("{summary}");
    let noise = BENCHMARK.noise;
    assert!(
        summary.largest_epoch_ratio() <= 0.5,
        "ASHA spent {:.3} of the full run's epochs",
        summary.largest_epoch_ratio()
    );
    // Within noise: the typical shortfall is below one deviation of an observation, the
    // largest below two.
    assert!(summary.median_gap() <= noise, "{summary}");
    assert!(summary.largest_gap() <= 2.0 * noise, "{summary}");
}
