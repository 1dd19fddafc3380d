//! The multi-objective quality runner: median and interquartile range of the hypervolume after
//! a number of trials (higher is better) on ZDT1, ZDT2, DTLZ2 and the held-out ZDT3, or of the
//! best feasible regret on the constrained Branin, over several seeds, with CPU per suggestion.
//!
//! ```text
//! cargo run -p sextant-algorithms --example pareto_quality -- nsga2 all 200 10 [name=value ...]
//! ```
//!
//! Arguments: algorithm, problem (`zdt1`, `zdt2`, `dtlz2`, `zdt3`, `constrained-branin` or
//! `all` for the multi-objective ones), trials, seeds, then algorithm settings. Seed `s` runs
//! with `random_state = s`. It lives in this crate, not beside the single-objective runner of
//! the `sextant` package, so it builds with the algorithms alone; the dev profile compiles
//! this crate optimized, so the figures are those of optimized code.
//!
//! CPU per suggestion is the CPU time of this thread (Linux's `/proc/thread-self/schedstat`),
//! which other processes on a shared machine do not inflate; it includes the test problem,
//! which costs next to nothing.

use sextant_algorithms::Setting;
use sextant_algorithms::test_functions::{TestFunction, median};
use sextant_algorithms::test_problems::{TestProblem, problem_trajectory};

fn main() -> Result<(), String> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let [algorithm, problem, trials, seeds, extra @ ..] = arguments.as_slice() else {
        return Err("usage: pareto_quality ALGORITHM PROBLEM TRIALS SEEDS [name=value ...]".into());
    };
    let problems = if problem == "all" {
        TestProblem::MULTI_OBJECTIVE.to_vec()
    } else {
        vec![TestProblem::from_name(problem).ok_or(format!("unknown problem {problem:?}"))?]
    };
    let trials: usize = trials.parse().map_err(|_| "TRIALS must be an integer")?;
    let seeds: u64 = seeds.parse().map_err(|_| "SEEDS must be an integer")?;
    let mut settings_extra = Vec::new();
    for setting in extra {
        let (name, value) = setting
            .split_once('=')
            .ok_or(format!("setting {setting:?} is not name=value"))?;
        settings_extra.push(Setting::new(name, value));
    }
    println!("| problem | {algorithm} median | IQR | CPU per suggestion |");
    println!("| --- | --- | --- | --- |");
    for problem in problems {
        let mut finals = Vec::new();
        let cpu_before = thread_cpu_seconds()?;
        for seed in 0..seeds {
            let mut settings = vec![Setting::new("random_state", seed.to_string())];
            settings.extend(settings_extra.iter().cloned());
            let history = problem_trajectory(algorithm, &settings, problem, trials)
                .map_err(|error| error.to_string())?;
            finals.push(match problem {
                TestProblem::ConstrainedBranin => {
                    problem.best_feasible(&history) - TestFunction::Branin.optimum()
                }
                _ => problem.hypervolume(&history),
            });
        }
        let per_suggestion =
            (thread_cpu_seconds()? - cpu_before) * 1e3 / (seeds as f64 * trials as f64);
        finals.sort_by(f64::total_cmp);
        let quartile = |q: f64| finals[((finals.len() - 1) as f64 * q).round() as usize];
        let (middle, low, high) = (median(&mut finals.clone()), quartile(0.25), quartile(0.75));
        // Regrets reach 1e-6 and below, hypervolumes are read to a few decimals.
        let figures = match problem {
            TestProblem::ConstrainedBranin => format!("{middle:.3e} | {low:.3e} – {high:.3e}"),
            _ => format!("{middle:.4} | {low:.4} – {high:.4}"),
        };
        println!(
            "| {} | {figures} | {per_suggestion:.3} ms |",
            problem.name()
        );
    }
    Ok(())
}

/// The CPU time this thread has used: the first field of `/proc/thread-self/schedstat`, in
/// nanoseconds.
fn thread_cpu_seconds() -> Result<f64, String> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat")
        .map_err(|error| format!("reading /proc/thread-self/schedstat (Linux only): {error}"))?;
    let nanoseconds: f64 = text
        .split_whitespace()
        .next()
        .and_then(|field| field.parse().ok())
        .ok_or("schedstat's first field is not a number")?;
    Ok(nanoseconds / 1e9)
}
