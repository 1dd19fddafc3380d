//! Temporary quality runner (deleted before finishing).
use std::time::Instant;

use sextant_algorithms::Setting;
use sextant_algorithms::test_functions::{TestFunction, median, regret_curve};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let algorithm = args
        .get(1)
        .cloned()
        .unwrap_or("bayesianoptimization".into());
    let function = args.get(2).cloned().unwrap_or("all".into());
    let trials: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(100);
    let seeds: u64 = args.get(4).map(|s| s.parse().unwrap()).unwrap_or(10);
    let extra: Vec<Setting> = args[5.min(args.len())..]
        .iter()
        .map(|s| {
            let (n, v) = s.split_once('=').unwrap();
            Setting::new(n, v)
        })
        .collect();
    let functions = if function == "all" {
        TestFunction::ALL.to_vec()
    } else {
        vec![TestFunction::from_name(&function).unwrap()]
    };
    println!("| function | {algorithm} median regret | IQR | time per suggestion |");
    for function in functions {
        let mut finals = Vec::new();
        let started = Instant::now();
        for seed in 0..seeds {
            let mut settings = vec![Setting::new("random_state", seed.to_string())];
            settings.extend(extra.iter().cloned());
            let curve = regret_curve(&algorithm, &settings, function, trials).unwrap();
            finals.push(*curve.last().unwrap());
        }
        let per = started.elapsed().as_secs_f64() * 1e3 / (seeds as f64 * trials as f64);
        finals.sort_by(f64::total_cmp);
        let q = |q: f64| finals[((finals.len() - 1) as f64 * q).round() as usize];
        println!(
            "| {} | {:.3e} | {:.3e} – {:.3e} | {:.2} ms | all: {:?}",
            function.name(),
            median(&mut finals.clone()),
            q(0.25),
            q(0.75),
            per,
            finals
                .iter()
                .map(|v| format!("{v:.2e}"))
                .collect::<Vec<_>>()
        );
    }
}
