//! Temporary quality and CPU-time runner (deleted before finishing).
use sextant_algorithms::algorithm::{BuildContext, SuggestRequest};
use sextant_algorithms::test_functions::{TestFunction, median, regret_curve};
use sextant_algorithms::*;

fn cpu() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn main() {
    let objective = Objective::new(Direction::Minimize, "value");
    for function in [TestFunction::Branin, TestFunction::Hartmann6] {
        let space = function.space();
        let algorithm = build_algorithm(
            "bayesianoptimization",
            &[Setting::new("random_state", "1")],
            &BuildContext {
                space: &space,
                objective: &objective,
                max_trial_count: None,
                parallel_trial_count: None,
            },
        )
        .unwrap();
        for n in [10usize, 100, 1000] {
            let mut s = 7u64;
            let mut r = || {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (s >> 11) as f64 / (1u64 << 53) as f64
            };
            let past: Vec<TrialRecord> = (0..n)
                .map(|i| {
                    let q: Vec<f64> = (0..space.len()).map(|_| r()).collect();
                    let a = space.from_quantiles(&q);
                    let v = function.evaluate_assignment(&a);
                    let mut t = TrialRecord::new(format!("t{i}"), a, TrialCondition::Succeeded);
                    t.objective_value = Some(v);
                    t
                })
                .collect();
            let reps = if n == 1000 { 5 } else { 40 };
            let t = cpu();
            for _ in 0..reps {
                algorithm
                    .suggest(&SuggestRequest {
                        space: &space,
                        objective: &objective,
                        trials: &past,
                        count: 1,
                    })
                    .unwrap();
            }
            println!(
                "suggest {}-d n={n}: {:.3} ms CPU",
                space.len(),
                (cpu() - t) as f64 / reps as f64 / 1e6
            );
        }
    }
    if std::env::args().nth(1).is_none() {
        return;
    }
    println!("| function | median regret | IQR | CPU per suggestion |");
    for function in TestFunction::ALL {
        let mut finals = Vec::new();
        let t = cpu();
        for seed in 0..10u64 {
            let curve = regret_curve(
                "bayesianoptimization",
                &[Setting::new("random_state", seed.to_string())],
                function,
                100,
            )
            .unwrap();
            finals.push(*curve.last().unwrap());
        }
        let per = (cpu() - t) as f64 / 1000.0 / 1e6;
        finals.sort_by(f64::total_cmp);
        let q = |q: f64| finals[((finals.len() - 1) as f64 * q).round() as usize];
        println!(
            "| {} | {:.3e} | {:.3e} – {:.3e} | {:.2} ms |",
            function.name(),
            median(&mut finals.clone()),
            q(0.25),
            q(0.75),
            per
        );
    }
}
