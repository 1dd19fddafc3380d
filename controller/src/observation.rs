//! A trial's observation (per objective metric: min, max and latest value) computed from its
//! observation log, as Katib's controller computes it, and the reported values of one metric
//! read from the store; shared by the local and Kubernetes drivers.

use sextant_store::observation_log::numeric_value;
use sextant_store::{MetricPoint, ObservationLogFilter, Store};

use crate::api::common::{Metric, ObjectiveSpec, Observation, UNAVAILABLE_METRIC_VALUE};

/// The observation of a trial whose log holds `points`, in report order. Metrics never reported
/// are left out; a metric reported only with non-numeric values has `unavailable` min and max.
pub fn from_log(objective: &ObjectiveSpec, points: &[MetricPoint]) -> Observation {
    let metrics = objective
        .metric_names()
        .filter_map(|name| {
            let reported: Vec<&MetricPoint> = points
                .iter()
                .filter(|point| point.metric_name == name)
                .collect();
            let latest = reported.last()?;
            let numbers: Vec<f64> = reported
                .iter()
                .filter_map(|point| numeric_value(&point.value))
                .collect();
            let extreme = |pick: fn(f64, f64) -> f64| {
                numbers
                    .iter()
                    .copied()
                    .reduce(pick)
                    .map(sextant_algorithms::space::format_double)
                    .unwrap_or_else(|| UNAVAILABLE_METRIC_VALUE.to_string())
            };
            Some(Metric {
                name: name.to_string(),
                min: extreme(f64::min),
                max: extreme(f64::max),
                latest: latest.value.clone(),
            })
        })
        .collect();
    Observation { metrics }
}

/// The numeric values a trial reported for `metric_name`, in report order (what early
/// stopping reads); non-numeric reports are left out.
pub async fn numeric_values(
    store: &Store,
    trial_name: &str,
    metric_name: &str,
) -> Result<Vec<f64>, sextant_store::Error> {
    let filter = ObservationLogFilter {
        metric_name: Some(metric_name.to_owned()),
        ..ObservationLogFilter::trial(trial_name.to_owned())
    };
    Ok(store
        .get_observation_log(&filter)
        .await?
        .into_iter()
        .filter_map(|point| numeric_value(&point.value))
        .collect())
}
