//! Scheduling overhead: a DAG of 1,000 no-op steps (`true`), 8 wide, run locally; reports steps
//! per second. Each layer of 8 steps depends on the whole previous layer, so the scheduler does
//! real dependency bookkeeping while process start-up stays the only real work. Measured twice:
//! recording into the JSON-lines file store, and into the SQLite database the CLI uses.

use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sextant_pipeline::{
    CancellationToken, Executor, ExecutorConfig, FileRunStore, Pipeline, RunPhase, RunRequest,
    RunStore, StepKindRegistry,
};
use sextant_store::Store;

const STEPS: usize = 1_000;
const WIDTH: usize = 8;

fn pipeline() -> Pipeline {
    let mut yaml = String::from(
        "apiVersion: sextant.dev/v1beta1\nkind: Pipeline\nmetadata: {name: noop}\nspec:\n  steps:\n",
    );
    for index in 0..STEPS {
        let layer = index / WIDTH;
        let depends_on = if layer == 0 {
            String::new()
        } else {
            let previous = (layer - 1) * WIDTH..layer * WIDTH;
            previous
                .map(|step| format!("s{step}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        // Writing to a String cannot fail.
        let _ = writeln!(
            yaml,
            "    - {{name: s{index}, command: ['true'], dependsOn: [{depends_on}]}}"
        );
    }
    Pipeline::from_yaml(&yaml).expect("the generated pipeline is valid")
}

fn bench_store(
    criterion: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    store: Arc<dyn RunStore>,
    root: &Path,
) {
    let pipeline = pipeline();
    let executor = Executor::new(
        store,
        StepKindRegistry::default(),
        ExecutorConfig {
            parallelism: WIDTH,
            kill_grace: Duration::from_secs(1),
        },
    );
    let mut run_number = 0;
    let mut group = criterion.benchmark_group("scheduling");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(STEPS as u64));
    group.bench_function(name, |bencher| {
        bencher.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                run_number += 1;
                let run_id = format!("run-{run_number}");
                let request = RunRequest {
                    run_dir: root.join(&run_id),
                    run_id,
                    params: Default::default(),
                    cache: false,
                    trial: None,
                };
                let started = Instant::now();
                let report = runtime
                    .block_on(executor.run(&pipeline, request, None, CancellationToken::new()))
                    .expect("the run is carried out");
                total += started.elapsed();
                assert_eq!(report.phase, RunPhase::Succeeded);
            }
            total
        });
    });
    group.finish();
}

fn scheduling(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let file_root = tempfile::tempdir().expect("a temporary directory");
    let file_store = Arc::new(FileRunStore::new(file_root.path()));
    bench_store(
        criterion,
        &runtime,
        "1000_noop_steps_width_8_file_store",
        file_store,
        file_root.path(),
    );
    let sqlite_root = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}/runs.db", sqlite_root.path().display());
    let sqlite_store = runtime
        .block_on(Store::connect(&url))
        .expect("a SQLite store");
    bench_store(
        criterion,
        &runtime,
        "1000_noop_steps_width_8_sqlite",
        Arc::new(sqlite_store),
        sqlite_root.path(),
    );
}

criterion_group!(benches, scheduling);
criterion_main!(benches);
