//! Pipeline runs and the states of their step instances, for the pipeline crate's `RunStore`.
//!
//! The records are JSON text owned by the pipeline crate (`sextant-pipeline` implements its
//! `RunStore` trait for [`Store`] on top of these methods), so this crate stays independent of
//! it, as it is of the controller. Beside each record the store keeps only what queries select
//! on: the run id, step name and item index (the key), the phase, and the cache key of a step.
//! Writes are single upsert statements, retried a few times when the database reports a
//! deadlock (MySQL can, for concurrent inserts into one index gap).

use sqlx::QueryBuilder;

use std::future::Future;

use crate::database_url::Backend;
use crate::error::{Error, Result};
use crate::observation_log::check_name;
use crate::store::{Store, with_pool};

/// A pipeline run's record to store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineRunWrite<'a> {
    /// The run's id.
    pub run_id: &'a str,
    /// `metadata.name` of its pipeline.
    pub pipeline_name: &'a str,
    /// The run's phase, as the pipeline crate spells it.
    pub phase: &'a str,
    /// The trial the run belongs to, when a trial's template is a Pipeline.
    pub trial_name: Option<&'a str>,
    /// The whole run, JSON text.
    pub record: &'a str,
}

/// A step instance's state to store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineStepWrite<'a> {
    /// The run the instance belongs to; the run must be stored.
    pub run_id: &'a str,
    /// The step's name.
    pub step_name: &'a str,
    /// The `withItems` index, `None` for a step without items.
    pub item_index: Option<u32>,
    /// The instance's phase (`Succeeded`, `Failed`, ...), as the pipeline crate spells it.
    pub phase: &'a str,
    /// The digest of the instance's resolved inputs, when caching applied.
    pub cache_key: Option<&'a str>,
    /// The whole state, JSON text.
    pub record: &'a str,
}

/// The item index stored for a step without items (the key column is NOT NULL).
pub(crate) const NO_ITEM: i64 = -1;

// === impl Store: pipeline runs ===

impl Store {
    /// Creates or replaces a pipeline run's record.
    pub async fn put_pipeline_run(&self, run: &PipelineRunWrite<'_>) -> Result<()> {
        const OPERATION: &str = "write a pipeline run";
        check_name("pipeline run id", run.run_id)?;
        if let Some(trial_name) = run.trial_name {
            check_name("trial name", trial_name)?;
        }
        let on_conflict = match self.backend() {
            Backend::MySql => {
                " ON DUPLICATE KEY UPDATE pipeline_name = VALUES(pipeline_name), \
                 phase = VALUES(phase), trial_name = VALUES(trial_name), record = VALUES(record)"
            }
            Backend::Sqlite | Backend::Postgres => {
                " ON CONFLICT (run_id) DO UPDATE SET pipeline_name = excluded.pipeline_name, \
                 phase = excluded.phase, trial_name = excluded.trial_name, \
                 record = excluded.record"
            }
        };
        retry_on_deadlock(|| async {
            with_pool!(self, pool => {
                let mut upsert = QueryBuilder::new(
                    "INSERT INTO pipeline_runs (run_id, pipeline_name, phase, trial_name, record) \
                     VALUES (",
                );
                let mut values = upsert.separated(", ");
                values
                    .push_bind(run.run_id)
                    .push_bind(run.pipeline_name)
                    .push_bind(run.phase)
                    .push_bind(run.trial_name)
                    .push_bind(run.record);
                upsert.push(")").push(on_conflict);
                upsert
                    .build()
                    .execute(pool)
                    .await
                    .map_err(|source| self.query_error(OPERATION, source))?;
                Ok(())
            })
        })
        .await
    }

    /// Creates or replaces the state of one step instance of a stored run.
    ///
    /// One upsert statement, not an update followed by an insert: on MySQL two such
    /// transactions for different instances lock the same index gap and deadlock.
    pub async fn put_pipeline_step(&self, step: &PipelineStepWrite<'_>) -> Result<()> {
        const OPERATION: &str = "write a pipeline step";
        check_name("pipeline run id", step.run_id)?;
        check_name("pipeline step name", step.step_name)?;
        let item_index = step.item_index.map_or(NO_ITEM, i64::from);
        let on_conflict = match self.backend() {
            Backend::MySql => {
                " ON DUPLICATE KEY UPDATE phase = VALUES(phase), cache_key = VALUES(cache_key), \
                 record = VALUES(record)"
            }
            Backend::Sqlite | Backend::Postgres => {
                " ON CONFLICT (run_id, step_name, item_index) DO UPDATE SET phase = excluded.phase, \
                 cache_key = excluded.cache_key, record = excluded.record"
            }
        };
        retry_on_deadlock(|| async {
            with_pool!(self, pool => {
                // The position only matters for a new instance (an update keeps the stored one);
                // two instances first recorded at the same moment may share it.
                let mut last = QueryBuilder::new(
                    "SELECT COALESCE(MAX(position), 0) FROM pipeline_steps WHERE run_id = ",
                );
                last.push_bind(step.run_id);
                let last_position = last
                    .build_query_scalar::<i64>()
                    .fetch_one(pool)
                    .await
                    .map_err(|source| self.query_error(OPERATION, source))?;
                let mut upsert = QueryBuilder::new(
                    "INSERT INTO pipeline_steps \
                     (run_id, step_name, item_index, position, phase, cache_key, record) VALUES (",
                );
                let mut values = upsert.separated(", ");
                values
                    .push_bind(step.run_id)
                    .push_bind(step.step_name)
                    .push_bind(item_index)
                    .push_bind(last_position + 1)
                    .push_bind(step.phase)
                    .push_bind(step.cache_key)
                    .push_bind(step.record);
                upsert.push(")").push(on_conflict);
                upsert
                    .build()
                    .execute(pool)
                    .await
                    .map_err(|source| self.query_error(OPERATION, source))?;
                Ok(())
            })
        })
        .await
    }

    /// The record of a stored pipeline run.
    pub async fn get_pipeline_run(&self, run_id: &str) -> Result<Option<String>> {
        const OPERATION: &str = "read a pipeline run";
        with_pool!(self, pool => {
            let mut select = QueryBuilder::new("SELECT record FROM pipeline_runs WHERE run_id = ");
            select.push_bind(run_id);
            select
                .build_query_scalar::<String>()
                .fetch_optional(pool)
                .await
                .map_err(|source| self.query_error(OPERATION, source))
        })
    }

    /// The records of every stored pipeline run, by run id.
    pub async fn list_pipeline_runs(&self) -> Result<Vec<String>> {
        const OPERATION: &str = "list pipeline runs";
        with_pool!(self, pool => {
            let mut select = QueryBuilder::new("SELECT record FROM pipeline_runs ORDER BY run_id");
            select
                .build_query_scalar::<String>()
                .fetch_all(pool)
                .await
                .map_err(|source| self.query_error(OPERATION, source))
        })
    }

    /// The records of the pipeline runs of one trial, by run id.
    pub async fn list_pipeline_runs_of_trial(&self, trial_name: &str) -> Result<Vec<String>> {
        const OPERATION: &str = "list a trial's pipeline runs";
        with_pool!(self, pool => {
            let mut select =
                QueryBuilder::new("SELECT record FROM pipeline_runs WHERE trial_name = ");
            select.push_bind(trial_name).push(" ORDER BY run_id");
            select
                .build_query_scalar::<String>()
                .fetch_all(pool)
                .await
                .map_err(|source| self.query_error(OPERATION, source))
        })
    }

    /// Deletes a run with its step instances; false if it was not stored.
    pub async fn delete_pipeline_run(&self, run_id: &str) -> Result<bool> {
        const OPERATION: &str = "delete a pipeline run";
        with_pool!(self, pool => {
            let mut transaction = pool
                .begin()
                .await
                .map_err(|source| self.query_error(OPERATION, source))?;
            // Steps first: SQLite enforces the foreign key only when told to.
            let mut steps = QueryBuilder::new("DELETE FROM pipeline_steps WHERE run_id = ");
            steps.push_bind(run_id);
            steps
                .build()
                .execute(&mut *transaction)
                .await
                .map_err(|source| self.query_error(OPERATION, source))?;
            let mut run = QueryBuilder::new("DELETE FROM pipeline_runs WHERE run_id = ");
            run.push_bind(run_id);
            let done = run
                .build()
                .execute(&mut *transaction)
                .await
                .map_err(|source| self.query_error(OPERATION, source))?;
            transaction
                .commit()
                .await
                .map_err(|source| self.query_error(OPERATION, source))?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// The records of a run's step instances, in the order they were first stored.
    pub async fn list_pipeline_steps(&self, run_id: &str) -> Result<Vec<String>> {
        const OPERATION: &str = "list pipeline steps";
        with_pool!(self, pool => {
            let mut select = QueryBuilder::new("SELECT record FROM pipeline_steps WHERE run_id = ");
            select
                .push_bind(run_id)
                .push(" ORDER BY position, step_name, item_index");
            select
                .build_query_scalar::<String>()
                .fetch_all(pool)
                .await
                .map_err(|source| self.query_error(OPERATION, source))
        })
    }

    /// The record of a step instance stored with `cache_key` in `phase`, from any run.
    pub async fn find_pipeline_step_by_cache_key(
        &self,
        cache_key: &str,
        phase: &str,
    ) -> Result<Option<String>> {
        const OPERATION: &str = "look up a cached pipeline step";
        with_pool!(self, pool => {
            let mut select =
                QueryBuilder::new("SELECT record FROM pipeline_steps WHERE cache_key = ");
            select
                .push_bind(cache_key)
                .push(" AND phase = ")
                .push_bind(phase)
                .push(" LIMIT 1");
            select
                .build_query_scalar::<String>()
                .fetch_optional(pool)
                .await
                .map_err(|source| self.query_error(OPERATION, source))
        })
    }
}

/// How often a write that lost a deadlock is tried in all.
const DEADLOCK_ATTEMPTS: u32 = 5;

/// Runs `write` again when the database chose it as a deadlock victim (SQLSTATE 40001 on
/// MySQL, 40P01 on PostgreSQL); the victim's transaction was rolled back, so a retry is safe.
async fn retry_on_deadlock<Write, Written>(mut write: Write) -> Result<()>
where
    Write: FnMut() -> Written,
    Written: Future<Output = Result<()>>,
{
    let mut attempt = 1;
    loop {
        match write().await {
            Err(Error::Query {
                source: sqlx::Error::Database(database_error),
                ..
            }) if attempt < DEADLOCK_ATTEMPTS
                && matches!(database_error.code().as_deref(), Some("40001" | "40P01")) =>
            {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(5 * u64::from(attempt))).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn steps_upsert_by_key_keep_their_first_position_and_index_by_cache_key() {
        let directory = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}/store.db", directory.path().display()))
            .await
            .unwrap();
        let run = |run_id, phase, trial_name, record| PipelineRunWrite {
            run_id,
            pipeline_name: "p",
            phase,
            trial_name,
            record,
        };
        store
            .put_pipeline_run(&run("r1", "Running", None, "{\"run\":1}"))
            .await
            .unwrap();
        store
            .put_pipeline_run(&run("r1", "Succeeded", None, "{\"run\":2}"))
            .await
            .unwrap();
        store
            .put_pipeline_run(&run("r3", "Running", Some("t-2"), "r3"))
            .await
            .unwrap();
        store
            .put_pipeline_run(&run("r0", "Running", Some("t-2"), "r0"))
            .await
            .unwrap();
        store
            .put_pipeline_run(&run("r4", "Running", Some("t-20"), "r4"))
            .await
            .unwrap();
        assert_eq!(
            store.list_pipeline_runs_of_trial("t-2").await.unwrap(),
            vec!["r0", "r3"]
        );
        assert!(
            store
                .list_pipeline_runs_of_trial("t")
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.get_pipeline_run("r1").await.unwrap().as_deref(),
            Some("{\"run\":2}")
        );
        assert_eq!(store.get_pipeline_run("r2").await.unwrap(), None);
        let write = |step_name, item_index, phase, cache_key, record| PipelineStepWrite {
            run_id: "r1",
            step_name,
            item_index,
            phase,
            cache_key,
            record,
        };
        store
            .put_pipeline_step(&write("b", None, "Running", None, "b1"))
            .await
            .unwrap();
        store
            .put_pipeline_step(&write("a", Some(0), "Running", None, "a1"))
            .await
            .unwrap();
        store
            .put_pipeline_step(&write("b", None, "Succeeded", Some("k"), "b2"))
            .await
            .unwrap();
        assert_eq!(
            store.list_pipeline_steps("r1").await.unwrap(),
            vec!["b2", "a1"]
        );
        assert_eq!(
            store
                .find_pipeline_step_by_cache_key("k", "Succeeded")
                .await
                .unwrap()
                .as_deref(),
            Some("b2")
        );
        assert_eq!(
            store
                .find_pipeline_step_by_cache_key("k", "Failed")
                .await
                .unwrap(),
            None
        );
        let orphan = PipelineStepWrite {
            run_id: "nope",
            ..write("c", None, "Running", None, "c")
        };
        assert!(
            store.put_pipeline_step(&orphan).await.is_err(),
            "a step needs its run"
        );
    }
}
