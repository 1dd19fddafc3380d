//! Temporary quality runner of the TPE helper (deleted before hand-off).
use std::time::Instant;
use sextant_algorithms::Setting;
use sextant_algorithms::test_functions::{TestFunction, median, regret_curve};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let algorithm = &args[1];
    let functions: Vec<TestFunction> = if args.len() > 2 && args[2] != "all" { vec![TestFunction::from_name(&args[2]).unwrap()] } else { TestFunction::ALL.to_vec() };
    let trials: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(100);
    let seeds: u64 = args.get(4).map(|s| s.parse().unwrap()).unwrap_or(10);
    let extra: Vec<Setting> = args.iter().skip(5).map(|a| { let (n, v) = a.split_once('=').unwrap(); Setting::new(n, v) }).collect();
    for function in functions {
        let started = Instant::now();
        let mut finals = Vec::new();
        for seed in 0..seeds {
            let mut settings = vec![Setting::new("random_state", seed.to_string())];
            settings.extend(extra.iter().cloned());
            let curve = regret_curve(algorithm, &settings, function, trials).unwrap();
            finals.push(*curve.last().unwrap());
        }
        let per = started.elapsed().as_secs_f64() * 1e3 / (seeds as f64 * trials as f64);
        finals.sort_by(f64::total_cmp);
        let q = |p: f64| finals[((finals.len() - 1) as f64 * p).round() as usize];
        println!("| {} | {:.3e} | {:.3e} – {:.3e} | {:.3} ms |", function.name(), median(&mut finals.clone()), q(0.25), q(0.75), per);
    }
}
