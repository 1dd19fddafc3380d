//! A trial's observation (per objective metric: min, max and latest value) computed from its
//! observation log, as Katib's controller computes it; shared by every driver, which reads the
//! log from its store.

use crate::api::common::{Metric, ObjectiveSpec, Observation, UNAVAILABLE_METRIC_VALUE};

/// One reported value of a trial's observation log, as [`from_log`] reads it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoggedValue<'a> {
    /// The metric's name.
    pub metric_name: &'a str,
    /// The value as reported: `0.93`, `1e-5`, `unavailable`.
    pub value: &'a str,
    /// The finite number the value stands for, if any, by the rule of the store that kept it.
    pub number: Option<f64>,
}

/// The observation of a trial whose log holds `log`, in report order. Metrics never reported
/// are left out; a metric reported only with non-numeric values has `unavailable` min and max.
pub fn from_log(objective: &ObjectiveSpec, log: &[LoggedValue<'_>]) -> Observation {
    let metrics = objective
        .metric_names()
        .filter_map(|name| {
            let reported: Vec<&LoggedValue<'_>> = log
                .iter()
                .filter(|logged| logged.metric_name == name)
                .collect();
            let latest = reported.last()?;
            let numbers: Vec<f64> = reported.iter().filter_map(|logged| logged.number).collect();
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
                latest: latest.value.to_owned(),
            })
        })
        .collect();
    Observation { metrics }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged<'a>(metric_name: &'a str, value: &'a str) -> LoggedValue<'a> {
        LoggedValue {
            metric_name,
            value,
            number: value.parse().ok().filter(|number: &f64| number.is_finite()),
        }
    }

    #[test]
    fn each_objective_metric_gets_its_extremes_and_latest_report() {
        let objective = ObjectiveSpec {
            objective_metric_name: "loss".into(),
            additional_metric_names: vec!["accuracy".into(), "never".into()],
            ..ObjectiveSpec::default()
        };
        let log = [
            logged("loss", "0.5"),
            logged("accuracy", "unavailable"),
            logged("loss", "0.25"),
            logged("other", "7"),
            logged("loss", "unavailable"),
        ];
        let metrics = from_log(&objective, &log).metrics;
        let shown: Vec<_> = metrics
            .iter()
            .map(|m| {
                (
                    m.name.as_str(),
                    m.min.as_str(),
                    m.max.as_str(),
                    m.latest.as_str(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("loss", "0.25", "0.5", "unavailable"),
                ("accuracy", "unavailable", "unavailable", "unavailable"),
            ]
        );
    }
}
