//! Trials scheduled per second: an experiment of 1,000 trials of a no-op command (`echo`
//! printing the metric), random search, parallelTrialCount 8, run by the local driver with a
//! SQLite store, all included.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sextant_controller::local::{LocalConfig, TrialSlots, default_max_parallel, run_experiment};
use sextant_experiment::load_experiments;
use sextant_store::Store;

const TRIALS: u64 = 1000;

fn experiment_yaml(name: &str) -> String {
    format!(
        r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: {name}
spec:
  objective: {{type: minimize, objectiveMetricName: loss}}
  algorithm: {{algorithmName: random}}
  parallelTrialCount: 8
  maxTrialCount: {TRIALS}
  parameters:
    - {{name: x, parameterType: double, feasibleSpace: {{min: "0", max: "1"}}}}
  trialTemplate:
    trialParameters:
      - {{name: x, reference: x}}
    trialSpec:
      apiVersion: sextant.dev/v1beta1
      kind: Process
      spec:
        command: [echo, "loss=${{trialParameters.x}}"]
"#
    )
}

fn trials_per_second(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("local_driver");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(TRIALS));
    let mut run_number = 0;
    group.bench_function("1000_noop_trials_parallel_8", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                run_number += 1;
                let scratch = tempfile::tempdir().expect("tempdir");
                let name = format!("bench-{run_number}");
                let experiment = load_experiments(&experiment_yaml(&name))
                    .expect("valid")
                    .remove(0);
                let config = LocalConfig {
                    experiment_dir: scratch.path().to_path_buf(),
                    template_dir: scratch.path().to_path_buf(),
                    trials_dir: scratch.path().join("trials"),
                    suggestion_service: None,
                    trial_slots: TrialSlots::new(default_max_parallel()),
                    trial_env: Vec::new(),
                };
                let url = format!("sqlite://{}", scratch.path().join("bench.db").display());
                total += runtime.block_on(async {
                    let store = Store::connect(&url).await.expect("store");
                    let started = Instant::now();
                    let outcome = run_experiment(
                        &store,
                        experiment,
                        &config,
                        std::future::pending::<()>(),
                        |_| {},
                    )
                    .await
                    .expect("runs");
                    let elapsed = started.elapsed();
                    let status = outcome.experiment.status.expect("status");
                    assert_eq!(status.trials_succeeded as u64, TRIALS);
                    store.close().await;
                    elapsed
                });
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, trials_per_second);
criterion_main!(benches);
