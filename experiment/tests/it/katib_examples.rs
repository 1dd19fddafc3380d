//! Every Experiment of Katib's examples (copied under `tests/data/katib-examples`) passes
//! validation, except the features Sextant declares out of scope, which fail with a
//! "not supported" error at the field that uses them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sextant_experiment::defaults::apply_defaults;
use sextant_experiment::parse::parse_experiments;
use sextant_experiment::validation::validate;

/// Examples that must fail, with the field path of the expected error and a part of its rule.
const EXPECTED_FAILURES: &[(&str, &str, &str)] = &[
    (
        "examples/v1beta1/nas/darts-cpu.yaml",
        "spec.algorithm.algorithmName",
        "not supported",
    ),
    (
        "examples/v1beta1/nas/darts-gpu.yaml",
        "spec.algorithm.algorithmName",
        "not supported",
    ),
    (
        "examples/v1beta1/nas/enas-cpu.yaml",
        "spec.algorithm.algorithmName",
        "not supported",
    ),
    (
        "examples/v1beta1/nas/enas-gpu.yaml",
        "spec.algorithm.algorithmName",
        "not supported",
    ),
    (
        "examples/v1beta1/nas/enas-cpu.yaml",
        "spec.nasConfig",
        "not supported",
    ),
    (
        "examples/v1beta1/kubeflow-training-operator/tfjob-mnist-with-summaries.yaml",
        "spec.metricsCollectorSpec.collector.kind",
        "not supported",
    ),
    (
        "examples/v1beta1/metrics-collector/custom-metrics-collector.yaml",
        "spec.metricsCollectorSpec.collector.kind",
        "not supported",
    ),
    // This copy of the example never uses its trial parameter `learningRate` in the template
    // (its `params` entry has a `reference` where a `value: ${trialParameters.learningRate}`
    // belongs); Katib's webhook rejects it for the same reason.
    (
        "examples/v1beta1/tekton/pipeline-run.yaml",
        "spec.trialTemplate.trialParameters[0].name",
        "\"learningRate\" is not used",
    ),
    // Katib's simple-pbt example asks for at most 2 trials and allows 3 failures; Katib's own
    // webhook refuses that too ("should be less than or equal to spec.maxTrialCount"). Its
    // algorithm, pbt, validates.
    (
        "examples/v1beta1/hp-tuning/simple-pbt.yaml",
        "spec.maxFailedTrialCount",
        "must be less than or equal to spec.maxTrialCount",
    ),
    // Katib's own end-to-end test of its webhook: an algorithm that does not exist.
    (
        "test/e2e/v1beta1/testdata/invalid-experiment.yaml",
        "spec.algorithm.algorithmName",
        "unknown algorithm \"invalid-algorithm\"",
    ),
];

fn examples_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/katib-examples")
}

fn yaml_files(directory: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(directory).with_context(|| format!("reading {directory:?}"))? {
        let path = entry?.path();
        if path.is_dir() {
            yaml_files(&path, found)?;
        } else if path
            .extension()
            .is_some_and(|extension| extension == "yaml")
        {
            found.push(path);
        }
    }
    Ok(())
}

#[test]
fn every_katib_example_validates_except_declared_out_of_scope_features() -> Result<()> {
    let root = examples_root();
    let mut files = Vec::new();
    yaml_files(&root, &mut files)?;
    files.sort();
    assert!(
        files.len() >= 30,
        "expected Katib's examples under {root:?}, found {}",
        files.len()
    );

    let mut problems = Vec::new();
    let mut experiment_count = 0;
    for file in &files {
        let relative = file
            .strip_prefix(&root)?
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(file)?;
        let experiments =
            parse_experiments(&text).with_context(|| format!("parsing {relative}"))?;
        let expected: Vec<_> = EXPECTED_FAILURES
            .iter()
            .filter(|(path, _, _)| *path == relative)
            .collect();
        for mut experiment in experiments {
            experiment_count += 1;
            apply_defaults(&mut experiment);
            // The types are field for field: JSON out and back loses nothing.
            let json = serde_json::to_value(&experiment)?;
            let back: sextant_experiment::Experiment = serde_json::from_value(json)?;
            assert_eq!(back, experiment, "{relative}: JSON round trip");
            match (validate(&experiment), expected.is_empty()) {
                (Ok(()), true) => {}
                (Ok(()), false) => {
                    problems.push(format!("{relative}: validated, expected a failure"))
                }
                (Err(errors), true) => {
                    problems.push(format!("{relative}: unexpected errors:\n{errors}"))
                }
                (Err(errors), false) => {
                    for (_, field, rule) in &expected {
                        let matched = errors
                            .0
                            .iter()
                            .any(|error| error.path == *field && error.rule.contains(rule));
                        if !matched {
                            problems.push(format!(
                                "{relative}: expected {field}: ...{rule}..., got:\n{errors}"
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    assert_eq!(
        experiment_count,
        files.len(),
        "one Experiment per example file"
    );
    Ok(())
}
