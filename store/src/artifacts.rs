//! Which content-addressed objects `sextant server` keeps for pipeline steps' output artifacts
//! and trials' output logs.
//!
//! The objects themselves live in object storage under their SHA-256; this module keeps the
//! names that refer to them. One object may be named by many rows (a cached step's artifact is
//! the same bytes as its source's), so deleting names reports the digests no row names any more,
//! for the caller to delete from object storage.

use sqlx::QueryBuilder;

use crate::database_url::Backend;
use crate::error::Result;
use crate::name_column::StoredName;
use crate::observation_log::check_name;
use crate::pipeline_runs::NO_ITEM;
use crate::store::{Store, with_pool};

/// One stored artifact: a name and the object holding its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredArtifact {
    /// The artifact's name (a step's output name, or `output.log` for a trial).
    pub name: String,
    /// The SHA-256 of the object's bytes, lowercase hex.
    pub digest: String,
    /// The object's size in bytes.
    pub size: u64,
    /// The artifact was a directory, stored as a tar archive.
    pub archive: bool,
}

/// A step instance's stored artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepArtifact {
    /// The step.
    pub step_name: String,
    /// The `withItems` index, `None` for a step without items.
    pub item_index: Option<u32>,
    /// The artifact.
    pub artifact: StoredArtifact,
}

/// What owns an artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactOwner<'a> {
    /// A step instance of a pipeline run.
    Step {
        /// The run.
        run_id: &'a str,
        /// The step.
        step_name: &'a str,
        /// The `withItems` index.
        item_index: Option<u32>,
    },
    /// A trial of an experiment.
    Trial {
        /// The experiment.
        experiment_name: &'a str,
        /// The trial.
        trial_name: &'a str,
    },
}

/// How many rows name the object `digest`.
fn count_references<'a, DB>(digest: &'a str) -> QueryBuilder<'a, DB>
where
    DB: sqlx::Database,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let mut count = QueryBuilder::new("SELECT (SELECT COUNT(*) FROM run_artifacts WHERE digest = ");
    count
        .push_bind(digest)
        .push(") + (SELECT COUNT(*) FROM trial_artifacts WHERE digest = ")
        .push_bind(digest)
        .push(")");
    count
}

fn size_column(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

impl Store {
    /// Records (or replaces) an owner's artifact. Returns the digest the replaced row named when
    /// no row names it any more, for the caller to delete the object.
    pub async fn put_artifact(
        &self,
        owner: ArtifactOwner<'_>,
        artifact: &StoredArtifact,
    ) -> Result<Option<String>> {
        const OPERATION: &str = "record an artifact";
        check_name("artifact name", &artifact.name)?;
        let size = size_column(artifact.size);
        with_pool!(self, pool => {
            let mut transaction = pool
                .begin()
                .await
                .map_err(|source| self.query_error(OPERATION, source))?;
            let mut select = match owner {
                ArtifactOwner::Step { run_id, step_name, item_index } => {
                    check_name("pipeline run id", run_id)?;
                    let mut select = QueryBuilder::new(
                        "SELECT digest FROM run_artifacts WHERE run_id = ",
                    );
                    select
                        .push_bind(run_id)
                        .push(" AND step_name = ")
                        .push_bind(step_name)
                        .push(" AND item_index = ")
                        .push_bind(item_index.map_or(NO_ITEM, i64::from));
                    select
                }
                ArtifactOwner::Trial { trial_name, .. } => {
                    check_name("trial name", trial_name)?;
                    let mut select =
                        QueryBuilder::new("SELECT digest FROM trial_artifacts WHERE trial_name = ");
                    select.push_bind(trial_name);
                    select
                }
            };
            select.push(" AND name = ").push_bind(artifact.name.as_str());
            let replaced: Option<StoredName> = select
                .build_query_scalar()
                .fetch_optional(&mut *transaction)
                .await
                .map_err(|source| self.query_error(OPERATION, source))?;
            let mut write = match owner {
                ArtifactOwner::Step { run_id, step_name, item_index } => {
                    let mut insert = QueryBuilder::new(
                        "INSERT INTO run_artifacts \
                         (run_id, step_name, item_index, name, digest, size, archive) VALUES (",
                    );
                    insert
                        .separated(", ")
                        .push_bind(run_id)
                        .push_bind(step_name)
                        .push_bind(item_index.map_or(NO_ITEM, i64::from))
                        .push_bind(artifact.name.as_str())
                        .push_bind(artifact.digest.as_str())
                        .push_bind(size)
                        .push_bind(artifact.archive);
                    insert.push(")").push(match self.backend() {
                        Backend::MySql => {
                            " ON DUPLICATE KEY UPDATE digest = VALUES(digest), \
                             size = VALUES(size), archive = VALUES(archive)"
                        }
                        Backend::Sqlite | Backend::Postgres => {
                            " ON CONFLICT (run_id, step_name, item_index, name) DO UPDATE SET \
                             digest = excluded.digest, size = excluded.size, \
                             archive = excluded.archive"
                        }
                    });
                    insert
                }
                ArtifactOwner::Trial { experiment_name, trial_name } => {
                    let mut insert = QueryBuilder::new(
                        "INSERT INTO trial_artifacts \
                         (trial_name, name, experiment_name, digest, size, archive) VALUES (",
                    );
                    insert
                        .separated(", ")
                        .push_bind(trial_name)
                        .push_bind(artifact.name.as_str())
                        .push_bind(experiment_name)
                        .push_bind(artifact.digest.as_str())
                        .push_bind(size)
                        .push_bind(artifact.archive);
                    insert.push(")").push(match self.backend() {
                        Backend::MySql => {
                            " ON DUPLICATE KEY UPDATE experiment_name = VALUES(experiment_name), \
                             digest = VALUES(digest), size = VALUES(size), \
                             archive = VALUES(archive)"
                        }
                        Backend::Sqlite | Backend::Postgres => {
                            " ON CONFLICT (trial_name, name) DO UPDATE SET \
                             experiment_name = excluded.experiment_name, \
                             digest = excluded.digest, size = excluded.size, \
                             archive = excluded.archive"
                        }
                    });
                    insert
                }
            };
            write
                .build()
                .execute(&mut *transaction)
                .await
                .map_err(|source| self.query_error(OPERATION, source))?;
            let orphaned = match replaced {
                Some(StoredName(old)) if old != artifact.digest => {
                    let references: i64 = count_references(&old)
                        .build_query_scalar()
                        .fetch_one(&mut *transaction)
                        .await
                        .map_err(|source| self.query_error(OPERATION, source))?;
                    (references == 0).then_some(old)
                }
                _ => None,
            };
            transaction
                .commit()
                .await
                .map_err(|source| self.query_error(OPERATION, source))?;
            Ok(orphaned)
        })
    }

    /// A run's stored artifacts, by step, item index and name.
    pub async fn list_run_artifacts(&self, run_id: &str) -> Result<Vec<StepArtifact>> {
        const OPERATION: &str = "list a run's artifacts";
        let rows: Vec<(StoredName, i64, StoredName, StoredName, i64, bool)> = with_pool!(self, pool => {
            let mut select = QueryBuilder::new(
                "SELECT step_name, item_index, name, digest, size, archive \
                 FROM run_artifacts WHERE run_id = ",
            );
            select
                .push_bind(run_id)
                .push(" ORDER BY step_name, item_index, name");
            select
                .build_query_as()
                .fetch_all(pool)
                .await
                .map_err(|source| self.query_error(OPERATION, source))?
        });
        Ok(rows
            .into_iter()
            .map(
                |(step, item_index, name, digest, size, archive)| StepArtifact {
                    step_name: step.0,
                    item_index: u32::try_from(item_index).ok(),
                    artifact: StoredArtifact {
                        name: name.0,
                        digest: digest.0,
                        size: u64::try_from(size).unwrap_or(0),
                        archive,
                    },
                },
            )
            .collect())
    }

    /// A trial's stored artifacts, by name.
    pub async fn list_trial_artifacts(&self, trial_name: &str) -> Result<Vec<StoredArtifact>> {
        const OPERATION: &str = "list a trial's artifacts";
        let rows: Vec<(StoredName, StoredName, i64, bool)> = with_pool!(self, pool => {
            let mut select = QueryBuilder::new(
                "SELECT name, digest, size, archive FROM trial_artifacts WHERE trial_name = ",
            );
            select.push_bind(trial_name).push(" ORDER BY name");
            select
                .build_query_as()
                .fetch_all(pool)
                .await
                .map_err(|source| self.query_error(OPERATION, source))?
        });
        Ok(rows
            .into_iter()
            .map(|(name, digest, size, archive)| StoredArtifact {
                name: name.0,
                digest: digest.0,
                size: u64::try_from(size).unwrap_or(0),
                archive,
            })
            .collect())
    }

    /// The names of the trials of `experiment_name` that have stored artifacts.
    pub async fn trials_with_artifacts(&self, experiment_name: &str) -> Result<Vec<String>> {
        const OPERATION: &str = "list the trials with artifacts";
        let rows: Vec<StoredName> = with_pool!(self, pool => {
            let mut select = QueryBuilder::new(
                "SELECT DISTINCT trial_name FROM trial_artifacts WHERE experiment_name = ",
            );
            select.push_bind(experiment_name);
            select
                .build_query_scalar()
                .fetch_all(pool)
                .await
                .map_err(|source| self.query_error(OPERATION, source))?
        });
        Ok(rows.into_iter().map(|name| name.0).collect())
    }

    /// Forgets every artifact of a run; returns the digests no row names any more.
    pub async fn delete_run_artifacts(&self, run_id: &str) -> Result<Vec<String>> {
        self.delete_artifacts("run_artifacts", "run_id", run_id)
            .await
    }

    /// Forgets every artifact of an experiment's trials; returns the digests no row names any
    /// more.
    pub async fn delete_experiment_artifacts(&self, experiment_name: &str) -> Result<Vec<String>> {
        self.delete_artifacts("trial_artifacts", "experiment_name", experiment_name)
            .await
    }

    async fn delete_artifacts(
        &self,
        table: &'static str,
        column: &'static str,
        owner: &str,
    ) -> Result<Vec<String>> {
        const OPERATION: &str = "delete artifacts";
        with_pool!(self, pool => {
            let mut transaction = pool
                .begin()
                .await
                .map_err(|source| self.query_error(OPERATION, source))?;
            let mut select = QueryBuilder::new(format!(
                "SELECT DISTINCT digest FROM {table} WHERE {column} = "
            ));
            select.push_bind(owner);
            let digests: Vec<StoredName> = select
                .build_query_scalar()
                .fetch_all(&mut *transaction)
                .await
                .map_err(|source| self.query_error(OPERATION, source))?;
            let mut delete = QueryBuilder::new(format!("DELETE FROM {table} WHERE {column} = "));
            delete.push_bind(owner);
            delete
                .build()
                .execute(&mut *transaction)
                .await
                .map_err(|source| self.query_error(OPERATION, source))?;
            let mut orphaned = Vec::new();
            for StoredName(digest) in digests {
                let references: i64 = count_references(&digest)
                    .build_query_scalar()
                    .fetch_one(&mut *transaction)
                    .await
                    .map_err(|source| self.query_error(OPERATION, source))?;
                if references == 0 {
                    orphaned.push(digest);
                }
            }
            transaction
                .commit()
                .await
                .map_err(|source| self.query_error(OPERATION, source))?;
            Ok(orphaned)
        })
    }
}
