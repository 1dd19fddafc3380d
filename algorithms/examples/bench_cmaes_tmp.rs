//! Temporary timing of one cmaes suggestion (deleted before the work is handed back).
use sextant_algorithms::algorithm::{BuildContext, SuggestRequest};
use sextant_algorithms::test_functions::TestFunction;
use sextant_algorithms::{
    Direction, Objective, Setting, TrialCondition, TrialRecord, build_algorithm,
};
use std::time::Instant;

fn main() {
    let objective = Objective::new(Direction::Minimize, "value");
    for function in [TestFunction::Branin, TestFunction::Hartmann6] {
        let space = function.space();
        let algorithm = build_algorithm(
            "cmaes",
            &[
                Setting::new("random_state", "1"),
                Setting::new("restart_strategy", "ipop"),
            ],
            &BuildContext {
                space: &space,
                objective: &objective,
                max_trial_count: None,
                parallel_trial_count: None,
            },
        )
        .unwrap();
        let mut history: Vec<TrialRecord> = Vec::new();
        for trials in [10usize, 100, 1000] {
            while history.len() < trials {
                let s = algorithm
                    .suggest(&SuggestRequest {
                        space: &space,
                        objective: &objective,
                        trials: &history,
                        count: 1,
                    })
                    .unwrap();
                let a = s.suggestions[0].assignment.clone();
                let v = function.evaluate_assignment(&a);
                let mut t = TrialRecord::new(
                    format!("trial-{}", history.len()),
                    a,
                    TrialCondition::Succeeded,
                );
                t.objective_value = Some(v);
                history.push(t);
            }
            let mut times = Vec::new();
            for _ in 0..200 {
                let started = Instant::now();
                let s = algorithm
                    .suggest(&SuggestRequest {
                        space: &space,
                        objective: &objective,
                        trials: &history,
                        count: 1,
                    })
                    .unwrap();
                times.push(started.elapsed().as_secs_f64() * 1e6);
                std::hint::black_box(s);
            }
            times.sort_by(f64::total_cmp);
            println!(
                "cmaes/{}-d/{trials}: median {:.1} µs",
                space.len(),
                times[times.len() / 2]
            );
        }
    }
}
