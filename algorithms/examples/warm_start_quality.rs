//! The warm-start quality runner: how many trials a second experiment, warm started from a
//! first one (`spec.warmStart.fromExperiments`), needs to reach the first's best value,
//! against the trials the first needed, over several seeds.
//!
//! ```text
//! cargo run -p sextant-algorithms --example warm_start_quality -- tpe branin 100 10
//! ```
//!
//! Arguments: algorithm, function (as the quality runner names them), trials, seeds. Seed `s`
//! runs the first experiment with `random_state = s` for TRIALS trials; the second, with
//! `random_state = s + 1000`, has the first's trials ahead of its own in every request's
//! history (as the drivers pass a warm start) and runs until it reaches the first's best value
//! or TRIALS trials. It lives in this crate so that it builds with the algorithms alone; the
//! dev profile compiles this crate optimized.

use sextant_algorithms::test_functions::{TestFunction, median, warm_start_run};

fn main() -> Result<(), String> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let [algorithm, function, trials, seeds] = arguments.as_slice() else {
        return Err("usage: warm_start_quality ALGORITHM FUNCTION TRIALS SEEDS".into());
    };
    let function =
        TestFunction::from_name(function).ok_or(format!("unknown function {function:?}"))?;
    let trials: usize = trials.parse().map_err(|_| "TRIALS must be an integer")?;
    let seeds: u64 = seeds.parse().map_err(|_| "SEEDS must be an integer")?;

    println!("| seed | first's best | first: trials to its best | warm started: trials to it |");
    println!("| --- | --- | --- | --- |");
    let mut first_counts = Vec::new();
    let mut second_counts = Vec::new();
    let mut reached = 0;
    for seed in 0..seeds {
        let run = warm_start_run(algorithm, function, trials, seed).map_err(|e| e.to_string())?;
        // A second run that never reached the first's best counts as one past its budget.
        let second = run.second_trials_to_best.unwrap_or(trials + 1);
        reached += usize::from(run.second_trials_to_best.is_some());
        println!(
            "| {seed} | {:.6} | {} | {} |",
            run.first_best,
            run.first_trials_to_best,
            run.second_trials_to_best
                .map_or_else(|| format!("not within {trials}"), |n| n.to_string())
        );
        first_counts.push(run.first_trials_to_best as f64);
        second_counts.push(second as f64);
    }
    println!();
    println!(
        "{algorithm} on {}: the first reached its best after a median of {} trials (budget \
         {trials}); warm started, the second reached it after a median of {} trials, on {reached} \
         of {seeds} seeds",
        function.name(),
        median(&mut first_counts),
        median(&mut second_counts),
    );
    Ok(())
}
