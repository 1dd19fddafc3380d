//! The successive-halving quality runner: on the synthetic learning-curve benchmark
//! (`sextant_algorithms::asha_benchmark`: 81 configurations of up to 27 epochs on 8 workers),
//! the epochs asynchronous successive halving spends and the best final accuracy it keeps,
//! against running every trial to the end, per seed.
//!
//! ```text
//! cargo run -p sextant-algorithms --example asha_quality -- SEEDS [tied] [name=value ...]
//! ```
//!
//! `tied` ties how fast a configuration learns to how good it is (`Speed::TiedToQuality`);
//! by default speed is a hyperparameter of its own. The settings are the early-stopping algorithm's (`min_resource`, `reduction_factor`,
//! `min_early_stopping_rate`); seeds run from 0.

use sextant_algorithms::Setting;
use sextant_algorithms::asha_benchmark::{BENCHMARK, Benchmark, Speed, summarize};

fn main() -> Result<(), String> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let [seeds, settings @ ..] = arguments.as_slice() else {
        return Err("usage: asha_quality SEEDS [tied] [name=value ...]".into());
    };
    let (benchmark, settings) = match settings {
        [tied, settings @ ..] if tied == "tied" => (
            Benchmark {
                speed: Speed::TiedToQuality,
                ..BENCHMARK
            },
            settings,
        ),
        _ => (BENCHMARK, settings),
    };
    let seeds: u64 = seeds.parse().map_err(|_| "SEEDS must be an integer")?;
    let settings = settings
        .iter()
        .map(|setting| {
            let (name, value) = setting
                .split_once('=')
                .ok_or(format!("setting {setting:?} is not name=value"))?;
            Ok(Setting::new(name, value))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let summary = summarize(benchmark, &settings, 0..seeds).map_err(|error| error.to_string())?;
    println!("{summary}");
    Ok(())
}
