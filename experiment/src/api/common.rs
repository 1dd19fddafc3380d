//! Types every kind shares (Katib's `common/v1beta1`): algorithm and early-stopping specs, the
//! objective, parameter assignments, observations and the metrics collector spec.

use serde::{Deserialize, Serialize};

use crate::api::string_enum;

/// The sentinel Katib stores as a metric value when a metric was never reported.
pub const UNAVAILABLE_METRIC_VALUE: &str = "unavailable";

/// A search algorithm and its settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlgorithmSpec {
    /// Katib's algorithm name (`random`, `tpe`, ...).
    #[serde(default)]
    pub algorithm_name: String,
    /// The algorithm's settings, as name/value strings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub algorithm_settings: Vec<AlgorithmSetting>,
}

/// One algorithm or early-stopping setting.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlgorithmSetting {
    /// The setting's name.
    pub name: String,
    /// Its value as written.
    #[serde(default)]
    pub value: String,
}

/// Katib spells early-stopping settings with their own type of the same shape.
pub type EarlyStoppingSetting = AlgorithmSetting;

/// An early-stopping algorithm and its settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EarlyStoppingSpec {
    /// The algorithm's name (`medianstop`, `successivehalving`, `asha`).
    #[serde(default)]
    pub algorithm_name: String,
    /// Its settings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub algorithm_settings: Vec<EarlyStoppingSetting>,
}

string_enum! {
    /// How an early-stopping rule compares a reported value with its threshold.
    ComparisonType {
        /// Equal to the threshold.
        Equal = "equal",
        /// Below the threshold.
        Less = "less",
        /// Above the threshold.
        Greater = "greater",
    }
}

/// An early-stopping rule attached to a trial.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EarlyStoppingRule {
    /// The metric the rule watches.
    pub name: String,
    /// The threshold, as a string.
    pub value: String,
    /// The comparison that stops the trial.
    pub comparison: ComparisonType,
    /// The first reported value that is compared.
    #[serde(default)]
    pub start_step: i32,
}

string_enum! {
    /// Whether the objective metric is minimized or maximized.
    ObjectiveType {
        /// Lower is better.
        Minimize = "minimize",
        /// Higher is better.
        Maximize = "maximize",
    }
}

string_enum! {
    /// Which of a metric's reported values stands for the trial.
    MetricStrategyType {
        /// The smallest reported value.
        Min = "min",
        /// The largest reported value.
        Max = "max",
        /// The last reported value.
        Latest = "latest",
    }
}

/// The strategy for one metric.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricStrategy {
    /// The metric.
    pub name: String,
    /// Which reported value stands for the trial.
    pub value: MetricStrategyType,
}

/// What an experiment optimizes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectiveSpec {
    /// Minimize or maximize; absent is invalid.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub objective_type: Option<ObjectiveType>,
    /// Succeed as soon as a trial reaches this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<f64>,
    /// The metric optimized (with several objectives, defaulting fills it from the first).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub objective_metric_name: String,
    /// Other metrics to collect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_metric_names: Vec<String>,
    /// Per metric, which reported value stands for the trial; defaulting fills every metric.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_strategies: Vec<MetricStrategy>,
    /// Sextant's several objectives, each metric with its direction, the primary one first (it
    /// is `objectiveMetricName` and `type`, which defaulting fills from it). Absent: Katib's
    /// single objective.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objectives: Vec<ObjectiveMetricSpec>,
}

/// One objective of an experiment with several.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectiveMetricSpec {
    /// The metric optimized.
    #[serde(default)]
    pub metric_name: String,
    /// Minimize or maximize it; absent is invalid.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub objective_type: Option<ObjectiveType>,
}

impl ObjectiveSpec {
    /// Every metric collected, each once: the objective metric, the other objectives, then the
    /// additional metrics.
    pub fn metric_names(&self) -> impl Iterator<Item = &str> {
        let mut seen = std::collections::HashSet::new();
        std::iter::once(self.objective_metric_name.as_str())
            .chain(self.objectives.iter().map(|o| o.metric_name.as_str()))
            .chain(self.additional_metric_names.iter().map(String::as_str))
            .filter(move |name| seen.insert(*name))
    }

    /// Every optimized metric with its direction, the primary one first: the `objectives`, or
    /// Katib's single objective when there are none.
    pub fn objective_metrics(&self) -> Vec<(&str, Option<&ObjectiveType>)> {
        if self.objectives.is_empty() {
            vec![(
                self.objective_metric_name.as_str(),
                self.objective_type.as_ref(),
            )]
        } else {
            self.objectives
                .iter()
                .map(|o| (o.metric_name.as_str(), o.objective_type.as_ref()))
                .collect()
        }
    }

    /// Whether more than one metric is optimized.
    pub fn is_multi_objective(&self) -> bool {
        self.objectives.len() > 1
    }

    /// The strategy for `metric_name`: the one given, else the default for its direction (an
    /// objective's own, Katib's objective type for any other metric): `min` when minimizing,
    /// `max` when maximizing, `latest` otherwise.
    pub fn strategy_for(&self, metric_name: &str) -> MetricStrategyType {
        self.metric_strategies
            .iter()
            .find(|strategy| strategy.name == metric_name)
            .map(|strategy| strategy.value.clone())
            .unwrap_or_else(|| self.default_strategy_for(metric_name))
    }

    /// The strategy a metric gets when none is given: its own direction's when it is one of
    /// several objectives, else Katib's default for the objective type.
    pub fn default_strategy_for(&self, metric_name: &str) -> MetricStrategyType {
        let direction = self
            .objectives
            .iter()
            .find(|objective| objective.metric_name == metric_name)
            .map_or(self.objective_type.as_ref(), |objective| {
                objective.objective_type.as_ref()
            });
        match direction {
            Some(ObjectiveType::Minimize) => MetricStrategyType::Min,
            Some(ObjectiveType::Maximize) => MetricStrategyType::Max,
            _ => MetricStrategyType::Latest,
        }
    }
}

/// One parameter's value in a trial.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParameterAssignment {
    /// The search parameter.
    pub name: String,
    /// Its value as a string.
    pub value: String,
}

/// One metric of a trial's observation: its smallest, largest and last reported values, each
/// `unavailable` when nothing numeric was reported.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metric {
    /// The metric's name.
    pub name: String,
    /// The smallest reported value.
    #[serde(default)]
    pub min: String,
    /// The largest reported value.
    #[serde(default)]
    pub max: String,
    /// The last reported value.
    #[serde(default)]
    pub latest: String,
}

impl Metric {
    /// A metric that was never reported.
    pub fn unavailable(name: impl Into<String>) -> Metric {
        Metric {
            name: name.into(),
            min: UNAVAILABLE_METRIC_VALUE.into(),
            max: UNAVAILABLE_METRIC_VALUE.into(),
            latest: UNAVAILABLE_METRIC_VALUE.into(),
        }
    }
}

/// What a trial reported.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    /// One entry per collected metric.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
}

impl Observation {
    /// The metric named `name`, if observed.
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|metric| metric.name == name)
    }

    /// Katib's `IsObservationAvailable`: the objective metric is present and its latest value
    /// is not `unavailable`.
    pub fn is_available_for(&self, objective_metric_name: &str) -> bool {
        self.metric(objective_metric_name).is_some_and(|metric| {
            metric.latest != UNAVAILABLE_METRIC_VALUE && !metric.latest.is_empty()
        })
    }
}

string_enum! {
    /// How metrics are collected from a trial.
    CollectorKind {
        /// The primary container's (process's) standard output, parsed as TEXT.
        StdOut = "StdOut",
        /// A file the trial writes, TEXT or JSON lines.
        File = "File",
        /// TensorFlow event files in a directory.
        TensorFlowEvent = "TensorFlowEvent",
        /// A Prometheus endpoint.
        PrometheusMetric = "PrometheusMetric",
        /// A user-supplied collector container.
        Custom = "Custom",
        /// The trial pushes metrics to the DBManager itself (`report_metrics`).
        Push = "Push",
    }
}

string_enum! {
    /// Whether a metrics path is a file or a directory.
    FileSystemKind {
        /// A directory.
        Directory = "Directory",
        /// A file.
        File = "File",
        /// Katib's explicit invalid marker.
        Invalid = "Invalid",
    }
}

string_enum! {
    /// The format of a metrics file.
    FileFormat {
        /// `name=value` text parsed by regular expressions.
        Text = "TEXT",
        /// One JSON object per line.
        Json = "JSON",
    }
}

/// Where a metrics file lives and how it is written.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileSystemPath {
    /// The path; locally, a relative path is relative to the trial's working directory.
    #[serde(default)]
    pub path: String,
    /// File or directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<FileSystemKind>,
    /// TEXT or JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<FileFormat>,
}

/// Regular expressions that pick metrics out of TEXT output.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterSpec {
    /// Each with two capture groups: the metric name, then its value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics_format: Vec<String>,
}

/// The schema Kubernetes gives an `IntOrString` field.
pub(crate) fn int_or_string(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "x-kubernetes-int-or-string": true })
}

/// Kubernetes' `IntOrString`, as ports are written.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(untagged)]
pub enum IntOrString {
    /// A number.
    Int(i64),
    /// A name.
    String(String),
}

/// One HTTP header of an `httpGet` source.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpHeader {
    /// The header's name.
    pub name: String,
    /// Its value.
    #[serde(default)]
    pub value: String,
}

/// Kubernetes' `HTTPGetAction`: where a Prometheus collector scrapes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpGetAction {
    /// The URL path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The port, by number or name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::api::common::int_or_string")]
    pub port: Option<IntOrString>,
    /// The host; the pod's IP when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `HTTP` or `HTTPS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_headers: Vec<HttpHeader>,
}

/// Where metrics come from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceSpec {
    /// A Prometheus endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetAction>,
    /// A metrics file or directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_system_path: Option<FileSystemPath>,
    /// Regular expressions for TEXT metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterSpec>,
}

/// Which collector runs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CollectorSpec {
    /// The collector kind.
    pub kind: CollectorKind,
    /// For `Custom`: the Kubernetes container to inject, kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::api::free_form_object")]
    pub custom_collector: Option<serde_json::Value>,
}

/// How a trial's metrics are collected.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricsCollectorSpec {
    /// Where the metrics come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceSpec>,
    /// Which collector reads them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector: Option<CollectorSpec>,
}

impl MetricsCollectorSpec {
    /// The collector kind, `StdOut` when none is given (Katib's default).
    pub fn kind(&self) -> CollectorKind {
        self.collector
            .as_ref()
            .map(|collector| collector.kind.clone())
            .unwrap_or(CollectorKind::StdOut)
    }
}
