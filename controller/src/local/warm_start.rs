//! The history a warm start gives the algorithm, read from the store: the succeeded trials of
//! the experiments `spec.warmStart.fromExperiments` names, projected onto this experiment's
//! parameters by [`sextant_experiment::warm_start::source_history`]. `sextant run`, the
//! server's submission and every start or resume of the local driver read it here, so a name
//! the store does not hold, or an experiment whose values do not fit, is refused the same way
//! everywhere, naming `spec.warmStart.fromExperiments[i]`.

use sextant_experiment::api::experiment::Experiment;
use sextant_experiment::engine::ObservedTrial;
use sextant_experiment::warm_start::{self, source_names, source_path};
use sextant_experiment::{FieldError, ValidationErrors};
use sextant_store::Store;

use crate::local::{LocalError, load_trial};

/// The earlier experiments' trials, in the order `fromExperiments` names them (each one's in
/// creation order), ready to go ahead of this experiment's own in the algorithm's history;
/// [`LocalError::Invalid`] with every source that the store does not hold or that does not
/// fit. `experiment` must be valid.
pub async fn history_from_store(
    store: &Store,
    experiment: &Experiment,
) -> Result<Vec<ObservedTrial>, LocalError> {
    let mut history = Vec::new();
    let mut errors = Vec::new();
    for (index, name) in source_names(&experiment.spec).iter().enumerate() {
        let Some(record) = store.get_experiment(name).await? else {
            errors.push(FieldError {
                path: source_path(index),
                rule: format!(
                    "names no experiment in the store ({})",
                    sextant_echo::echo_quoted(name)
                ),
            });
            continue;
        };
        let source: Experiment =
            serde_json::from_str(&record.spec).map_err(|error| LocalError::Corrupt {
                what: format!("spec of experiment {name:?}"),
                reason: error.to_string(),
            })?;
        let trials = store
            .list_trials(name)
            .await?
            .into_iter()
            .map(|record| load_trial(record).map(|loaded| loaded.trial))
            .collect::<Result<Vec<_>, _>>()?;
        match warm_start::source_history(&experiment.spec, &source, &trials) {
            Ok(mut projected) => history.append(&mut projected),
            Err(rule) => errors.push(FieldError {
                path: source_path(index),
                rule,
            }),
        }
    }
    if errors.is_empty() {
        Ok(history)
    } else {
        Err(LocalError::Invalid(ValidationErrors(errors)))
    }
}
