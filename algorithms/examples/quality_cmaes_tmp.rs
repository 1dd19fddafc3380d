//! Temporary quality runner for cmaes (deleted before the work is handed back).
use sextant_algorithms::Setting;
use sextant_algorithms::test_functions::{TestFunction, median, regret_curve};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let algorithm = args.get(1).cloned().unwrap_or("cmaes".into());
    let trials: usize = args.get(2).map(|t| t.parse().unwrap()).unwrap_or(100);
    let seeds: u64 = args.get(3).map(|t| t.parse().unwrap()).unwrap_or(10);
    let extra: Vec<Setting> = args[4.min(args.len())..]
        .iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            Setting::new(k, v)
        })
        .collect();
    for function in TestFunction::ALL {
        let started = Instant::now();
        let mut finals = Vec::new();
        for seed in 0..seeds {
            let mut settings = vec![Setting::new("random_state", seed.to_string())];
            settings.extend(extra.iter().cloned());
            let curve = regret_curve(&algorithm, &settings, function, trials).unwrap();
            finals.push(*curve.last().unwrap());
        }
        let per = started.elapsed().as_secs_f64() * 1e3 / (seeds as f64 * trials as f64);
        finals.sort_by(f64::total_cmp);
        let q = |p: f64| finals[((finals.len() - 1) as f64 * p).round() as usize];
        println!(
            "| {} | {:.3e} | {:.3e} – {:.3e} | {:.3} ms |",
            function.name(),
            median(&mut finals.clone()),
            q(0.25),
            q(0.75),
            per
        );
    }
}
