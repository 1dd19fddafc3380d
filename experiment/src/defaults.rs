//! Katib's defaulting (its mutating webhook's `SetDefault`), applied before validation and
//! before the engine sees a spec.
//!
//! Defaults: `parallelTrialCount` 3 (Sextant caps it at a positive `maxTrialCount`, where
//! Katib would then reject its own default); the `StdOut` collector, and for `File`,
//! `TensorFlowEvent` and `PrometheusMetric` Katib's default sources; a metric strategy for the
//! objective and every additional metric (`min` when minimizing, `max` when maximizing; each of
//! several objectives by its own direction), and with several objectives, the single
//! objective's `objectiveMetricName` and `type` from the first;
//! `resumePolicy: Never`; the `uniform` distribution for int and double parameters; for run
//! kinds Katib knows (Job, Kubeflow jobs, TrainJob) the success and failure conditions and
//! primary pod labels; and, beyond Katib, a Job's `primaryContainerName` when the Job has
//! exactly one container.

use crate::api::common::{
    CollectorKind, CollectorSpec, FileFormat, FileSystemKind, FileSystemPath, HttpGetAction,
    IntOrString, MetricStrategy, MetricsCollectorSpec, SourceSpec,
};
use crate::api::experiment::{
    Distribution, Experiment, ParameterType, ResumePolicy, TrialTemplate,
};
use crate::api::template::RunKind;

/// `parallelTrialCount` when not set.
pub const DEFAULT_PARALLEL_TRIAL_COUNT: i32 = 3;

/// Katib's default metrics file path of the `File` collector.
pub const DEFAULT_METRICS_FILE_PATH: &str = "/var/log/katib/metrics.log";

/// Katib's default directory of the `TensorFlowEvent` collector.
pub const DEFAULT_TENSORFLOW_EVENT_DIRECTORY: &str = "/var/log/katib/tfevent/";

/// Katib's default Prometheus path.
pub const DEFAULT_PROMETHEUS_PATH: &str = "/metrics";

/// Katib's default Prometheus port.
pub const DEFAULT_PROMETHEUS_PORT: i64 = 8080;

/// Fills every default in place; applying it twice changes nothing more.
pub fn apply_defaults(experiment: &mut Experiment) {
    let spec = &mut experiment.spec;
    // Capped by a positive maxTrialCount, so that an experiment of two trials that never
    // mentions parallelism is not rejected for Katib's default of 3 exceeding its budget.
    let parallel_default = match spec.max_trial_count {
        Some(max) if max > 0 => DEFAULT_PARALLEL_TRIAL_COUNT.min(max),
        _ => DEFAULT_PARALLEL_TRIAL_COUNT,
    };
    spec.parallel_trial_count.get_or_insert(parallel_default);
    spec.resume_policy.get_or_insert(ResumePolicy::Never);

    for parameter in &mut spec.parameters {
        if matches!(
            parameter.parameter_type,
            Some(ParameterType::Double | ParameterType::Int)
        ) {
            parameter
                .feasible_space
                .distribution
                .get_or_insert(Distribution::Uniform);
        }
    }

    if let Some(objective) = &mut spec.objective {
        // Several objectives: the first is Katib's single objective, for everything that
        // reads only that.
        if let Some(primary) = objective.objectives.first() {
            if objective.objective_metric_name.is_empty() {
                objective.objective_metric_name = primary.metric_name.clone();
            }
            if objective.objective_type.is_none() {
                objective.objective_type = primary.objective_type.clone();
            }
        }
        let missing: Vec<MetricStrategy> = objective
            .metric_names()
            .filter(|name| !name.is_empty())
            .filter(|name| !objective.metric_strategies.iter().any(|s| s.name == *name))
            .map(|name| MetricStrategy {
                name: name.to_owned(),
                value: objective.default_strategy_for(name),
            })
            .collect();
        objective.metric_strategies.extend(missing);
    }

    default_metrics_collector(
        spec.metrics_collector_spec
            .get_or_insert_with(MetricsCollectorSpec::default),
    );

    if let Some(template) = &mut spec.trial_template
        && let Some(trial_spec) = template.trial_spec.clone()
    {
        apply_template_defaults(template, &trial_spec);
    }
}

/// Katib's per-kind defaults of a trial template whose run object is `run_object` (the inline
/// `trialSpec`, or what a driver read from the template's ConfigMap): success and failure
/// conditions, primary pod labels, and a Job's only container as the primary one.
pub fn apply_template_defaults(template: &mut TrialTemplate, run_object: &serde_json::Value) {
    let Some(kind) = RunKind::of_template(run_object) else {
        return;
    };
    if let Some((success, failure)) = kind.default_conditions()
        && template.success_condition.is_empty()
        && template.failure_condition.is_empty()
    {
        template.success_condition = success.to_owned();
        template.failure_condition = failure.to_owned();
    }
    if template.primary_pod_labels.is_empty() {
        template.primary_pod_labels = kind.default_primary_pod_labels();
    }
    if kind == RunKind::Job && template.primary_container_name.is_empty() {
        let containers = run_object
            .pointer("/spec/template/spec/containers")
            .and_then(serde_json::Value::as_array);
        if let Some([only]) = containers.map(Vec::as_slice)
            && let Some(name) = only.get("name").and_then(serde_json::Value::as_str)
        {
            template.primary_container_name = name.to_owned();
        }
    }
}

/// The experiment with every default filled.
pub fn with_defaults(mut experiment: Experiment) -> Experiment {
    apply_defaults(&mut experiment);
    experiment
}

fn default_metrics_collector(collector_spec: &mut MetricsCollectorSpec) {
    let kind = collector_spec
        .collector
        .get_or_insert(CollectorSpec {
            kind: CollectorKind::StdOut,
            custom_collector: None,
        })
        .kind
        .clone();
    match kind {
        CollectorKind::File => {
            let source = collector_spec
                .source
                .get_or_insert_with(SourceSpec::default);
            let path = source
                .file_system_path
                .get_or_insert_with(|| FileSystemPath {
                    path: DEFAULT_METRICS_FILE_PATH.into(),
                    ..FileSystemPath::default()
                });
            path.kind.get_or_insert(FileSystemKind::File);
            path.format.get_or_insert(FileFormat::Text);
        }
        CollectorKind::TensorFlowEvent => {
            let source = collector_spec
                .source
                .get_or_insert_with(SourceSpec::default);
            let path = source
                .file_system_path
                .get_or_insert_with(|| FileSystemPath {
                    path: DEFAULT_TENSORFLOW_EVENT_DIRECTORY.into(),
                    ..FileSystemPath::default()
                });
            path.kind.get_or_insert(FileSystemKind::Directory);
        }
        CollectorKind::PrometheusMetric => {
            let source = collector_spec
                .source
                .get_or_insert_with(SourceSpec::default);
            let http_get = source.http_get.get_or_insert_with(HttpGetAction::default);
            http_get
                .path
                .get_or_insert_with(|| DEFAULT_PROMETHEUS_PATH.into());
            http_get
                .port
                .get_or_insert(IntOrString::Int(DEFAULT_PROMETHEUS_PORT));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::common::{MetricStrategyType, ObjectiveSpec, ObjectiveType};
    use crate::api::experiment::TrialTemplate;
    use crate::api::template::{JOB_FAILURE_CONDITION, JOB_SUCCESS_CONDITION};

    fn job_experiment() -> Experiment {
        let mut experiment = Experiment::default();
        experiment.spec.objective = Some(ObjectiveSpec {
            objective_type: Some(ObjectiveType::Maximize),
            objective_metric_name: "accuracy".into(),
            additional_metric_names: vec!["loss".into()],
            metric_strategies: vec![MetricStrategy {
                name: "loss".into(),
                value: MetricStrategyType::Min,
            }],
            ..ObjectiveSpec::default()
        });
        experiment.spec.trial_template = Some(TrialTemplate {
            trial_spec: Some(serde_json::json!({
                "apiVersion": "batch/v1",
                "kind": "Job",
                "spec": {"template": {"spec": {"containers": [{"name": "trainer"}]}}}
            })),
            ..TrialTemplate::default()
        });
        experiment
    }

    #[test]
    fn katib_defaults_are_filled() {
        let experiment = with_defaults(job_experiment());
        let spec = &experiment.spec;
        assert_eq!(spec.parallel_trial_count, Some(3));
        assert_eq!(spec.resume_policy, Some(ResumePolicy::Never));
        assert_eq!(
            spec.metrics_collector_spec
                .as_ref()
                .map(MetricsCollectorSpec::kind),
            Some(CollectorKind::StdOut)
        );
        let objective = spec.objective.as_ref().expect("objective kept");
        assert_eq!(objective.strategy_for("accuracy"), MetricStrategyType::Max);
        assert_eq!(objective.strategy_for("loss"), MetricStrategyType::Min);
        assert_eq!(objective.metric_strategies.len(), 2);
        let template = spec.trial_template.as_ref().expect("template kept");
        assert_eq!(template.success_condition, JOB_SUCCESS_CONDITION);
        assert_eq!(template.failure_condition, JOB_FAILURE_CONDITION);
        assert_eq!(template.primary_container_name, "trainer");
    }

    #[test]
    fn defaulting_is_idempotent_and_keeps_given_values() {
        let mut experiment = job_experiment();
        experiment.spec.parallel_trial_count = Some(7);
        let once = with_defaults(experiment);
        let twice = with_defaults(once.clone());
        assert_eq!(once, twice);
        assert_eq!(once.spec.parallel_trial_count, Some(7));
    }

    #[test]
    fn default_parallelism_fits_a_small_budget() {
        let mut experiment = job_experiment();
        experiment.spec.max_trial_count = Some(2);
        assert_eq!(with_defaults(experiment).spec.parallel_trial_count, Some(2));
    }

    #[test]
    fn file_collector_gets_katib_default_source() {
        let mut experiment = job_experiment();
        experiment.spec.metrics_collector_spec = Some(MetricsCollectorSpec {
            source: None,
            collector: Some(CollectorSpec {
                kind: CollectorKind::File,
                custom_collector: None,
            }),
        });
        let experiment = with_defaults(experiment);
        let path = experiment
            .spec
            .metrics_collector_spec
            .and_then(|spec| spec.source)
            .and_then(|source| source.file_system_path)
            .expect("a default path");
        assert_eq!(path.path, DEFAULT_METRICS_FILE_PATH);
        assert_eq!(path.kind, Some(FileSystemKind::File));
        assert_eq!(path.format, Some(FileFormat::Text));
    }
}
