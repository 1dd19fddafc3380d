//! [`RunStore`] over Sextant's database ([`sextant_store::Store`]: SQLite, PostgreSQL, MySQL).
//!
//! The store crate keeps pipeline records as JSON text beside the columns it queries on (run id,
//! step, item index, phase, cache key) and knows nothing of this crate's types; this module
//! turns [`RunRecord`] and [`StepRecord`] into that text and back.

use sextant_store::Store;
use sextant_store::pipeline_runs::{PipelineRunWrite, PipelineStepWrite};

use crate::run_store::{
    RunRecord, RunStore, RunStoreError, StepPhase, StepRecord, StoreFuture, StoredRun,
};

impl RunStore for Store {
    fn save_run<'a>(&'a self, run: &'a RunRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let record = encode(run)?;
            self.put_pipeline_run(&PipelineRunWrite {
                run_id: &run.run_id,
                pipeline_name: &run.pipeline_name,
                phase: &run.phase.to_string(),
                trial_name: run.trial.as_deref(),
                record: &record,
            })
            .await?;
            Ok(())
        })
    }

    fn record_step<'a>(&'a self, run_id: &'a str, step: &'a StepRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let record = encode(step)?;
            let item_index = match step.item_index {
                Some(index) => Some(u32::try_from(index).map_err(|_| {
                    RunStoreError::Backend(format!("item index {index} is too large to store"))
                })?),
                None => None,
            };
            self.put_pipeline_step(&PipelineStepWrite {
                run_id,
                step_name: &step.step,
                item_index,
                phase: &step.phase.to_string(),
                cache_key: step.cache_key.as_deref(),
                record: &record,
            })
            .await?;
            Ok(())
        })
    }

    fn load_run<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Option<StoredRun>> {
        Box::pin(async move {
            let Some(run) = self.get_pipeline_run(run_id).await? else {
                return Ok(None);
            };
            let run: RunRecord = decode(&run)?;
            let steps = self
                .list_pipeline_steps(run_id)
                .await?
                .iter()
                .map(|text| decode(text))
                .collect::<Result<Vec<StepRecord>, _>>()?;
            Ok(Some(StoredRun { run, steps }))
        })
    }

    fn find_cached<'a>(&'a self, cache_key: &'a str) -> StoreFuture<'a, Option<StepRecord>> {
        Box::pin(async move {
            let found = self
                .find_pipeline_step_by_cache_key(cache_key, &StepPhase::Succeeded.to_string())
                .await?;
            found.map(|text| decode(&text)).transpose()
        })
    }
}

/// Every run stored in `store` (without their steps), oldest first.
pub async fn list_runs(store: &Store) -> Result<Vec<RunRecord>, RunStoreError> {
    oldest_first(&store.list_pipeline_runs().await?)
}

/// The runs of the trial `trial_name` (without their steps), oldest first.
pub async fn list_trial_runs(
    store: &Store,
    trial_name: &str,
) -> Result<Vec<RunRecord>, RunStoreError> {
    oldest_first(&store.list_pipeline_runs_of_trial(trial_name).await?)
}

fn oldest_first(records: &[String]) -> Result<Vec<RunRecord>, RunStoreError> {
    let mut runs = records
        .iter()
        .map(|text| decode::<RunRecord>(text))
        .collect::<Result<Vec<_>, _>>()?;
    runs.sort_by(|a, b| (a.created_at, &a.run_id).cmp(&(b.created_at, &b.run_id)));
    Ok(runs)
}

fn encode(value: &impl serde::Serialize) -> Result<String, RunStoreError> {
    serde_json::to_string(value).map_err(RunStoreError::Encode)
}

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, RunStoreError> {
    serde_json::from_str(text).map_err(RunStoreError::Decode)
}
