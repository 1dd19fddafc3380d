//! The `tune` pipeline step kind: an experiment embedded in a pipeline, run to the end with the
//! local driver, whose best parameter values and objective become the step's outputs.
//!
//! ```yaml
//! - name: tune
//!   kind: tune
//!   spec:                       # an Experiment's spec: parameters, objective, algorithm, ...
//!     objective: {type: minimize, objectiveMetricName: value}
//!     algorithm: {algorithmName: random}
//!     maxTrialCount: 12
//!     parameters: [{name: x1, parameterType: double, feasibleSpace: {min: "-5", max: "10"}}]
//!     trialTemplate: {...}
//!   outputs:
//!     params: [{name: x1, path: x1.txt}, {name: objective, path: objective.txt}]
//! ```
//!
//! - The experiment is named after the run and the step (`<run id>-<step>[-<item>]`, lowercased,
//!   other characters turned into `-`, shortened with a digest past Katib's 40 characters), and
//!   recorded in the same store as the pipeline run: `sextant get trials NAME` shows its trials.
//!   A retried or resumed step continues that experiment instead of starting over.
//! - Outputs: one per search parameter, named as the parameter, holding the best trial's value;
//!   and `objective`, the best trial's objective value under the objective metric's strategy.
//!   They are also written to `best.json` in the step's working directory. Later steps read
//!   them as `{{steps.tune.outputs.params.x1}}`; like every output, they must be declared in
//!   `outputs.params` (the declared path is not read: the values come from the experiment). A
//!   search parameter may therefore not be called `objective`.
//! - Trials run in the directory `sextant` was started in, unless the trial template's
//!   `workingDir` says otherwise (relative paths are relative to that directory); their scratch
//!   directories are under the step's working directory, in `trials/`.
//! - The step fails when the experiment does not succeed (too many failed trials, no trial with
//!   an objective value); cancellation and the step's timeout stop every trial.

use std::path::PathBuf;

use futures::future::BoxFuture;
use serde_json::json;
use sextant_pipeline::{StepContext, StepFailure, StepKind, StepOutputs};
use sextant_store::Store;

use crate::local::{LocalConfig, TrialSlots, run_experiment};
use sextant_experiment::api::experiment::ExperimentConditionType;
use sextant_experiment::api::has_true_condition;
use sextant_experiment::engine::objective_value;
use sextant_experiment::validation::MAX_EXPERIMENT_NAME_LENGTH;

/// The name steps use in `kind:`.
pub const TUNE_KIND: &str = "tune";

/// The output parameter holding the best trial's objective value.
pub const OBJECTIVE_OUTPUT: &str = "objective";

/// How many random characters the API server appends to a `generateName`.
const GENERATED_SUFFIX_LENGTH: usize = 5;

/// The `tune` step kind, running experiments into `store`.
#[derive(Debug, Clone)]
pub struct TuneStepKind {
    store: Store,
    experiment_dir: PathBuf,
    trial_slots: TrialSlots,
}

impl TuneStepKind {
    /// A `tune` kind whose experiments are recorded in `store` and whose trials run in
    /// `experiment_dir` unless their template says otherwise, taking slots from
    /// `trial_slots`.
    pub fn new(store: Store, experiment_dir: PathBuf, trial_slots: TrialSlots) -> TuneStepKind {
        TuneStepKind {
            store,
            experiment_dir,
            trial_slots,
        }
    }

    async fn tune(&self, ctx: StepContext) -> Result<StepOutputs, StepFailure> {
        let spec = ctx.kind_spec.clone().ok_or_else(|| {
            StepFailure::Kind("a tune step needs a `spec`: the experiment's spec".into())
        })?;
        let name = experiment_name(&ctx.run_id, &ctx.step, ctx.item_index);
        let document = json!({
            "apiVersion": "kubeflow.org/v1beta1",
            "kind": "Experiment",
            "metadata": {"name": name},
            "spec": spec,
        });
        // JSON is YAML; serializing a JSON value cannot fail.
        let text = serde_json::to_string(&document).unwrap_or_default();
        let experiment = sextant_experiment::load_experiments(&text)
            .map_err(|error| StepFailure::Kind(format!("the tune step's spec: {error}")))?
            .into_iter()
            .next()
            .ok_or_else(|| StepFailure::Kind("the tune step's spec holds no experiment".into()))?;
        if let Some(clash) = objective_output_clash(&experiment) {
            return Err(StepFailure::Kind(format!("spec.parameters: {clash}")));
        }
        let config = LocalConfig {
            experiment_dir: self.experiment_dir.clone(),
            template_dir: self.experiment_dir.clone(),
            trials_dir: ctx.work_dir.join("trials"),
            suggestion_service: None,
            trial_slots: self.trial_slots.clone(),
            trial_env: Vec::new(),
        };
        let timeout = ctx.timeout;
        let cancellation = ctx.cancellation.clone();
        let shutdown = async move {
            match timeout {
                Some(timeout) => {
                    tokio::select! {
                        () = cancellation.cancelled() => {}
                        () = tokio::time::sleep(timeout) => {}
                    }
                }
                None => cancellation.cancelled().await,
            }
        };
        let outcome = run_experiment(&self.store, experiment, &config, shutdown, |_| {})
            .await
            .map_err(|error| StepFailure::Kind(format!("experiment {name}: {error}")))?;
        if outcome.interrupted {
            return Err(if ctx.cancellation.is_cancelled() {
                StepFailure::Cancelled
            } else {
                StepFailure::TimedOut(ctx.timeout.unwrap_or_default())
            });
        }
        let experiment = outcome.experiment;
        let status = experiment.status.clone().unwrap_or_default();
        if !has_true_condition(&status.conditions, &ExperimentConditionType::Succeeded) {
            let why = status
                .conditions
                .iter()
                .rev()
                .find(|condition| condition.condition_type == ExperimentConditionType::Failed)
                .map(|condition| format!("{}: {}", condition.reason, condition.message))
                .unwrap_or_else(|| "it did not succeed".into());
            return Err(StepFailure::Kind(format!(
                "experiment {name} failed: {why}"
            )));
        }
        let optimal = status.current_optimal_trial;
        let objective = experiment.spec.objective.clone().unwrap_or_default();
        let objective_metric = optimal
            .observation
            .metric(&objective.objective_metric_name)
            .and_then(|metric| {
                objective_value(
                    metric,
                    &objective.strategy_for(&objective.objective_metric_name),
                )
            });
        let Some(objective_metric) =
            objective_metric.filter(|_| !optimal.best_trial_name.is_empty())
        else {
            return Err(StepFailure::Kind(format!(
                "experiment {name} succeeded without a trial reporting {}",
                objective.objective_metric_name
            )));
        };
        let mut outputs = StepOutputs::default();
        for assignment in &optimal.parameter_assignments {
            outputs
                .params
                .insert(assignment.name.clone(), assignment.value.clone());
        }
        let objective_text = sextant_algorithms::space::format_double(objective_metric);
        outputs
            .params
            .insert(OBJECTIVE_OUTPUT.into(), objective_text.clone());
        let best = json!({
            "experiment": name,
            "trial": optimal.best_trial_name,
            "parameters": optimal
                .parameter_assignments
                .iter()
                .map(|assignment| (assignment.name.clone(), json!(assignment.value)))
                .collect::<serde_json::Map<_, _>>(),
            "objective": objective_text,
        });
        let best_path = ctx.work_dir.join("best.json");
        std::fs::write(&best_path, format!("{best:#}\n")).map_err(|source| StepFailure::Io {
            action: "cannot write",
            path: best_path,
            source,
        })?;
        Ok(outputs)
    }
}

impl StepKind for TuneStepKind {
    fn kind(&self) -> &str {
        TUNE_KIND
    }

    fn run(&self, ctx: StepContext) -> BoxFuture<'_, Result<StepOutputs, StepFailure>> {
        Box::pin(self.tune(ctx))
    }
}

/// Why the experiment of a tune step cannot give its outputs, if it cannot: a search parameter
/// named as the output that holds the objective value.
pub(crate) fn objective_output_clash(
    experiment: &sextant_experiment::Experiment,
) -> Option<String> {
    experiment
        .spec
        .parameters
        .iter()
        .any(|parameter| parameter.name == OBJECTIVE_OUTPUT)
        .then(|| {
            format!(
                "a tune step's parameter may not be called `{OBJECTIVE_OUTPUT}` (that output holds the objective value)"
            )
        })
}

/// A valid experiment name for a step instance of a run, stable across retries and resumes.
fn experiment_name(run_id: &str, step: &str, item_index: Option<usize>) -> String {
    let mut raw = format!("{run_id}-{step}");
    if let Some(index) = item_index {
        raw.push_str(&format!("-{index}"));
    }
    name_within(&raw, MAX_EXPERIMENT_NAME_LENGTH)
}

/// The `generateName` of the experiment of a step of a pipeline that runs elsewhere (on Argo):
/// [`experiment_name`]'s rule, short enough that the API server's random suffix keeps the name
/// within Katib's limit, then `-`.
pub(crate) fn experiment_generate_name(pipeline: &str, step: &str) -> String {
    let room = MAX_EXPERIMENT_NAME_LENGTH - GENERATED_SUFFIX_LENGTH - 1;
    format!("{}-", name_within(&format!("{pipeline}-{step}"), room))
}

/// `raw` as a Katib experiment name of at most `max_length` characters: lowercased, other
/// characters turned into `-`, starting with a letter, and past the limit shortened with a
/// digest of the whole so that distinct inputs stay distinct.
fn name_within(raw: &str, max_length: usize) -> String {
    let mut name: String = raw
        .chars()
        .map(|character| {
            let character = character.to_ascii_lowercase();
            if character.is_ascii_lowercase() || character.is_ascii_digit() {
                character
            } else {
                '-'
            }
        })
        .collect();
    if !name.starts_with(|character: char| character.is_ascii_lowercase()) {
        name.insert_str(0, "tune-");
    }
    if name.len() > max_length {
        // Keep it unique: a prefix, then a digest of the whole (FNV-1a, stable everywhere).
        let digest = raw.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
        let digest = format!("{digest:016x}");
        name.truncate(max_length - digest.len() - 1);
        name = format!("{}-{digest}", name.trim_end_matches('-'));
    }
    name.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn experiment_names_are_valid_and_distinct() {
        assert_eq!(
            experiment_name("demo-20261129-155000-123", "tune", None),
            "demo-20261129-155000-123-tune"
        );
        assert_eq!(experiment_name("Run_1", "t", Some(2)), "run-1-t-2");
        assert_eq!(experiment_name("9lives", "t", None), "tune-9lives-t");
        let long = "a-very-long-pipeline-name-for-tuning-20261129-155000-123";
        let first = experiment_name(long, "tune", None);
        let second = experiment_name(long, "tune2", None);
        assert!(first.len() <= MAX_EXPERIMENT_NAME_LENGTH, "{first}");
        assert_ne!(first, second);
        assert!(first.starts_with("a-very-long"));
    }

    #[test]
    fn generated_names_leave_room_for_the_api_servers_suffix() {
        assert_eq!(experiment_generate_name("Demo", "tune"), "demo-tune-");
        let long = "a-very-long-pipeline-name-for-tuning";
        let prefix = experiment_generate_name(long, "tune");
        assert_eq!(
            prefix.len() + GENERATED_SUFFIX_LENGTH,
            MAX_EXPERIMENT_NAME_LENGTH,
            "{prefix}"
        );
        assert!(prefix.starts_with("a-very-long") && prefix.ends_with('-'));
        assert_ne!(prefix, experiment_generate_name(long, "tune2"));
    }
}
