//! Trials' observation logs read from the store, for both drivers: a trial's observation
//! (computed by `sextant_experiment::observation`) and the numeric values of one metric (what
//! early stopping reads).

use sextant_experiment::api::common::{ObjectiveSpec, Observation};
use sextant_experiment::observation::{LoggedValue, from_log};
use sextant_store::observation_log::numeric_value;
use sextant_store::{MetricPoint, ObservationLogFilter, Store};

/// The observation of a trial whose stored log holds `points`, in report order.
pub fn observation(objective: &ObjectiveSpec, points: &[MetricPoint]) -> Observation {
    let log: Vec<LoggedValue<'_>> = points
        .iter()
        .map(|point| LoggedValue {
            metric_name: &point.metric_name,
            value: &point.value,
            number: numeric_value(&point.value),
        })
        .collect();
    from_log(objective, &log)
}

/// The numeric values a trial reported for `metric_name`, in report order; non-numeric reports
/// are left out.
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
