//! The quality runner: median and interquartile range of simple regret for one algorithm on the
//! standard test functions, over several seeds.
//!
//! ```text
//! cargo run --release --example quality -- --algorithm tpe --function branin --trials 100 --seeds 10
//! cargo run --release --example quality -- --algorithm bayesianoptimization --function all
//! ```
//!
//! Each seed `s` runs with `random_state = s`; the table prints one row per function.

use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use sextant_algorithms::Setting;
use sextant_algorithms::test_functions::{TestFunction, median, regret_curve};

/// Command-line options of the quality runner.
#[derive(Debug, Parser)]
struct Options {
    /// Katib's algorithm name.
    #[arg(long)]
    algorithm: String,
    /// A function name (branin, hartmann6, rosenbrock, ackley, levy, styblinski-tang, mixed) or `all`
    /// (the six standard ones).
    #[arg(long, default_value = "all")]
    function: String,
    /// Trials per run.
    #[arg(long, default_value_t = 100)]
    trials: usize,
    /// Runs, with random_state 0..seeds.
    #[arg(long, default_value_t = 10)]
    seeds: u64,
    /// Extra algorithm settings as name=value.
    #[arg(long = "setting")]
    settings: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let functions = if options.function == "all" {
        TestFunction::ALL.to_vec()
    } else {
        vec![
            TestFunction::from_name(&options.function)
                .with_context(|| format!("unknown function {:?}", options.function))?,
        ]
    };
    let mut extra = Vec::new();
    for setting in &options.settings {
        let Some((name, value)) = setting.split_once('=') else {
            bail!("--setting {setting:?} is not name=value");
        };
        extra.push(Setting::new(name, value));
    }
    println!(
        "| function | {} median regret | IQR | time per suggestion |",
        options.algorithm
    );
    println!("| --- | --- | --- | --- |");
    for function in functions {
        let mut finals = Vec::new();
        let started = Instant::now();
        for seed in 0..options.seeds {
            let mut settings = vec![Setting::new("random_state", seed.to_string())];
            settings.extend(extra.iter().cloned());
            let curve = regret_curve(&options.algorithm, &settings, function, options.trials)?;
            finals.push(*curve.last().context("no trials run")?);
        }
        let per_suggestion =
            started.elapsed().as_secs_f64() * 1e3 / (options.seeds as f64 * options.trials as f64);
        finals.sort_by(f64::total_cmp);
        let quartile = |q: f64| finals[((finals.len() - 1) as f64 * q).round() as usize];
        let iqr = (quartile(0.25), quartile(0.75));
        println!(
            "| {} | {:.3e} | {:.3e} – {:.3e} | {:.2} ms |",
            function.name(),
            median(&mut finals.clone()),
            iqr.0,
            iqr.1,
            per_suggestion
        );
    }
    Ok(())
}
