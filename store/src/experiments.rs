//! Experiments and their trials, as the experiment controller persists them.
//!
//! Specs, statuses, assignments, labels and observations are JSON text that the controller
//! writes and reads; the store keeps them verbatim so that it does not depend on the
//! controller's types. Experiments carry a resource version, bumped by every write, so that two
//! writers cannot silently overwrite each other (the same optimistic concurrency Kubernetes
//! offers the cluster mode). Every method that changes state runs in one transaction.

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Row};

use crate::database_url::Backend;
use crate::error::{Error, Result};
use crate::name_column::StoredName;
use crate::observation_log::check_name;
use crate::store::{DatabasePool, Store, with_pool};
use crate::time::{StoredTime, check_storable, from_sqlite_text, truncate_to_microseconds};

/// The condition a new trial starts in, with Katib's reason and message for it.
pub const CREATED_CONDITION: (&str, &str, &str) = ("Created", "TrialCreated", "Trial is created");

/// An experiment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExperimentRecord {
    /// The experiment's unique name.
    pub name: String,
    /// The experiment spec, JSON text.
    pub spec: String,
    /// The experiment status, JSON text.
    pub status: String,
    /// Starts at 1 and grows by one with every write; pass it back to detect concurrent writers.
    pub resource_version: i64,
    /// When the experiment was first stored.
    pub created_at: DateTime<Utc>,
    /// When it was last written.
    pub updated_at: DateTime<Utc>,
}

/// A trial to insert; it starts in the [`CREATED_CONDITION`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTrial {
    /// The trial's unique name.
    pub name: String,
    /// The experiment it belongs to, which must exist.
    pub experiment_name: String,
    /// The trial spec, JSON text.
    pub spec: String,
    /// The parameter assignments, JSON text.
    pub assignments: String,
    /// The trial's labels, JSON text.
    pub labels: String,
}

/// A trial as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTrial {
    /// The trial's unique name.
    pub name: String,
    /// The experiment it belongs to.
    pub experiment_name: String,
    /// The trial spec, JSON text.
    pub spec: String,
    /// The parameter assignments, JSON text.
    pub assignments: String,
    /// The trial's labels, JSON text.
    pub labels: String,
    /// The latest condition type (Katib's: `Created`, `Running`, `Succeeded`, `Failed`, ...).
    pub condition_type: String,
    /// The machine-readable reason for the latest condition.
    pub reason: String,
    /// The human-readable message for the latest condition.
    pub message: String,
    /// The trial's observation (metric summaries), JSON text, once computed.
    pub observation: Option<String>,
    /// When the trial was stored.
    pub created_at: DateTime<Utc>,
    /// When the trial started running.
    pub start_time: Option<DateTime<Utc>>,
    /// When the trial finished.
    pub completion_time: Option<DateTime<Utc>>,
    /// When the trial was last written.
    pub updated_at: DateTime<Utc>,
}

/// A trial written whole, as the persistence agent mirrors a cluster's Trial: every column is
/// given, the creation time included, so the row is a function of the object alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirroredTrial {
    /// Its name, experiment, spec, assignments and labels.
    pub trial: NewTrial,
    /// Its latest condition; the start and completion times are set as given (`None` clears).
    pub condition: TrialConditionUpdate,
    /// Its observation, JSON text, once it has one.
    pub observation: Option<String>,
    /// When the trial was created.
    pub created_at: DateTime<Utc>,
}

/// Whether writing a trial may replace a stored trial of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Existing {
    /// A trial of the name is an error ([`Error::TrialAlreadyExists`]).
    Refuse,
    /// A trial of the name is overwritten, every column.
    Replace,
}

/// A change of a trial's condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialConditionUpdate {
    /// The new condition type.
    pub condition_type: String,
    /// Why.
    pub reason: String,
    /// Said for people.
    pub message: String,
    /// Sets the start time, when given; a stored start time is kept otherwise.
    pub start_time: Option<DateTime<Utc>>,
    /// Sets the completion time, when given; a stored completion time is kept otherwise.
    pub completion_time: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct ExperimentRow {
    name: StoredName,
    spec: String,
    status: String,
    resource_version: i64,
    created_at: StoredTime,
    updated_at: StoredTime,
}

#[derive(sqlx::FromRow)]
struct TrialRow {
    name: StoredName,
    experiment_name: StoredName,
    spec: String,
    assignments: String,
    labels: String,
    condition_type: String,
    reason: String,
    message: String,
    observation: Option<String>,
    created_at: StoredTime,
    start_time: Option<StoredTime>,
    completion_time: Option<StoredTime>,
    updated_at: StoredTime,
}

impl From<TrialRow> for StoredTrial {
    fn from(row: TrialRow) -> StoredTrial {
        StoredTrial {
            name: row.name.0,
            experiment_name: row.experiment_name.0,
            spec: row.spec,
            assignments: row.assignments,
            labels: row.labels,
            condition_type: row.condition_type,
            reason: row.reason,
            message: row.message,
            observation: row.observation,
            created_at: row.created_at.0,
            start_time: row.start_time.map(|time| time.0),
            completion_time: row.completion_time.map(|time| time.0),
            updated_at: row.updated_at.0,
        }
    }
}

impl From<ExperimentRow> for ExperimentRecord {
    fn from(row: ExperimentRow) -> ExperimentRecord {
        ExperimentRecord {
            name: row.name.0,
            spec: row.spec,
            status: row.status,
            resource_version: row.resource_version,
            created_at: row.created_at.0,
            updated_at: row.updated_at.0,
        }
    }
}

const EXPERIMENT_COLUMNS: &str =
    "SELECT name, spec, status, resource_version, created_at, updated_at FROM experiments";

const TRIAL_COLUMNS: &str = "SELECT name, experiment_name, spec, assignments, labels, \
     condition_type, reason, message, observation, created_at, start_time, completion_time, \
     updated_at FROM trials";

/// What [`Store::list_trials`] is doing, in its errors.
const LIST_TRIALS: &str = "list trials";

fn now() -> StoredTime {
    StoredTime(truncate_to_microseconds(Utc::now()))
}

// === impl Store: experiments ===

impl Store {
    /// Creates the experiment or replaces its spec and status, bumping its resource version.
    ///
    /// `expected_resource_version`: `None` writes whatever is stored; `Some(0)` only creates
    /// (an existing experiment is a [`Error::Conflict`]); `Some(version)` only replaces that
    /// version (another is a conflict, none at all [`Error::ExperimentNotFound`]).
    pub async fn upsert_experiment(
        &self,
        name: &str,
        spec: &str,
        status: &str,
        expected_resource_version: Option<i64>,
    ) -> Result<ExperimentRecord> {
        check_name("experiment name", name)?;
        self.write_experiment(name, Some(spec), status, expected_resource_version, None)
            .await
    }

    /// Creates the experiment or replaces its spec and status as [`Store::upsert_experiment`]
    /// does, with the creation time given rather than now: the persistence agent mirrors a
    /// cluster's Experiment, whose row is then a function of the object alone, whenever the
    /// agent writes it.
    pub async fn mirror_experiment(
        &self,
        name: &str,
        spec: &str,
        status: &str,
        created_at: DateTime<Utc>,
    ) -> Result<ExperimentRecord> {
        check_name("experiment name", name)?;
        check_storable(created_at).map_err(|reason| Error::invalid_input("created_at", reason))?;
        self.write_experiment(name, Some(spec), status, None, Some(created_at))
            .await
    }

    /// Replaces an existing experiment's status, bumping its resource version; `Some(version)`
    /// makes the write conditional on the stored version, as in [`Store::upsert_experiment`].
    pub async fn update_experiment_status(
        &self,
        name: &str,
        status: &str,
        expected_resource_version: Option<i64>,
    ) -> Result<ExperimentRecord> {
        check_name("experiment name", name)?;
        self.write_experiment(name, None, status, expected_resource_version, None)
            .await
    }

    /// The experiment of that name, if stored.
    pub async fn get_experiment(&self, name: &str) -> Result<Option<ExperimentRecord>> {
        const OPERATION: &str = "read an experiment";
        let row: Option<ExperimentRow> = with_pool!(self, pool => {
            let mut select = QueryBuilder::new(EXPERIMENT_COLUMNS);
            select.push(" WHERE name = ").push_bind(name);
            select
                .build_query_as()
                .fetch_optional(pool)
                .await
                .map_err(|source| self.query_error(OPERATION, source))?
        });
        Ok(row.map(ExperimentRecord::from))
    }

    /// Every stored experiment, oldest first.
    pub async fn list_experiments(&self) -> Result<Vec<ExperimentRecord>> {
        const OPERATION: &str = "list experiments";
        let rows: Vec<ExperimentRow> = with_pool!(self, pool => {
            let mut select = QueryBuilder::new(EXPERIMENT_COLUMNS);
            select.push(" ORDER BY created_at, name");
            select
                .build_query_as()
                .fetch_all(pool)
                .await
                .map_err(|source| self.query_error(OPERATION, source))?
        });
        Ok(rows.into_iter().map(ExperimentRecord::from).collect())
    }

    /// Deletes an experiment, its trials and their observation logs; `false` if it was not stored.
    pub async fn delete_experiment(&self, name: &str) -> Result<bool> {
        const OPERATION: &str = "delete an experiment";
        with_pool!(self, pool => {
            let mut transaction = pool
                .begin()
                .await
                .map_err(|source| self.query_error(OPERATION, source))?;
            let mut delete_logs = QueryBuilder::new(
                "DELETE FROM observation_logs WHERE trial_name IN \
                 (SELECT name FROM trials WHERE experiment_name = ",
            );
            delete_logs.push_bind(name).push(")");
            delete_logs
                .build()
                .execute(&mut *transaction)
                .await
                .map_err(|source| self.query_error(OPERATION, source))?;
            // Trials go with their experiment through the foreign key's ON DELETE CASCADE.
            let mut delete_experiment = QueryBuilder::new("DELETE FROM experiments WHERE name = ");
            delete_experiment.push_bind(name);
            let deleted = delete_experiment
                .build()
                .execute(&mut *transaction)
                .await
                .map_err(|source| self.query_error(OPERATION, source))?
                .rows_affected();
            transaction
                .commit()
                .await
                .map_err(|source| self.query_error(OPERATION, source))?;
            Ok(deleted > 0)
        })
    }

    /// The update-or-insert behind [`Store::upsert_experiment`] (`spec` given),
    /// [`Store::mirror_experiment`] (`created_at` given too) and
    /// [`Store::update_experiment_status`] (`spec` absent: update only).
    ///
    /// It starts with the `UPDATE` so that the transaction's first statement is a write: on
    /// SQLite that takes the write lock at once (a read first would have to upgrade its lock
    /// later, which fails instead of waiting when another writer got there first).
    async fn write_experiment(
        &self,
        name: &str,
        spec: Option<&str>,
        status: &str,
        expected_resource_version: Option<i64>,
        created_at: Option<DateTime<Utc>>,
    ) -> Result<ExperimentRecord> {
        const OPERATION: &str = "write an experiment";
        let time = now();
        let created_at = stored_time(created_at);
        let row: ExperimentRow = with_pool!(self, pool => {
            let mut transaction = pool
                .begin()
                .await
                .map_err(|source| self.query_error(OPERATION, source))?;
            let mut update = QueryBuilder::new("UPDATE experiments SET status = ");
            update.push_bind(status);
            if let Some(spec) = spec {
                update.push(", spec = ").push_bind(spec);
            }
            if let Some(created_at) = created_at {
                update.push(", created_at = ").push_bind(created_at);
            }
            update
                .push(", resource_version = resource_version + 1, updated_at = ")
                .push_bind(time)
                .push(" WHERE name = ")
                .push_bind(name);
            if let Some(expected) = expected_resource_version {
                update.push(" AND resource_version = ").push_bind(expected);
            }
            let updated = update
                .build()
                .execute(&mut *transaction)
                .await
                .map_err(|source| self.query_error(OPERATION, source))?
                .rows_affected();
            if updated == 0 {
                let mut select = QueryBuilder::new("SELECT resource_version FROM experiments WHERE name = ");
                select.push_bind(name);
                let found: Option<i64> = select
                    .build_query_scalar()
                    .fetch_optional(&mut *transaction)
                    .await
                    .map_err(|source| self.query_error(OPERATION, source))?;
                match (found, spec, expected_resource_version) {
                    (Some(found), _, expected) => {
                        // Without an expected version the UPDATE matches any stored row, so a
                        // stored row here always comes with an expected version.
                        return Err(Error::Conflict {
                            name: name.to_owned(),
                            expected: expected.unwrap_or(found),
                            found,
                        });
                    }
                    (None, Some(spec), None | Some(0)) => {
                        let mut insert = QueryBuilder::new(
                            "INSERT INTO experiments (name, spec, status, resource_version, created_at, updated_at) VALUES (",
                        );
                        let mut values = insert.separated(", ");
                        values
                            .push_bind(name)
                            .push_bind(spec)
                            .push_bind(status)
                            .push_bind(1_i64)
                            .push_bind(created_at.unwrap_or(time))
                            .push_bind(time);
                        insert.push(")");
                        insert
                            .build()
                            .execute(&mut *transaction)
                            .await
                            .map_err(|source| self.query_error(OPERATION, source))?;
                    }
                    (None, _, _) => {
                        return Err(Error::ExperimentNotFound {
                            name: name.to_owned(),
                        });
                    }
                }
            }
            let mut select = QueryBuilder::new(EXPERIMENT_COLUMNS);
            select.push(" WHERE name = ").push_bind(name);
            let row = select
                .build_query_as()
                .fetch_one(&mut *transaction)
                .await
                .map_err(|source| self.query_error(OPERATION, source))?;
            transaction
                .commit()
                .await
                .map_err(|source| self.query_error(OPERATION, source))?;
            row
        });
        Ok(ExperimentRecord::from(row))
    }
}

// === impl Store: trials ===

impl Store {
    /// Stores a new trial in the [`CREATED_CONDITION`]; its experiment must exist.
    pub async fn insert_trial(&self, trial: &NewTrial) -> Result<StoredTrial> {
        let (condition_type, reason, message) = CREATED_CONDITION;
        self.insert_trial_in(
            trial,
            &TrialConditionUpdate {
                condition_type: condition_type.into(),
                reason: reason.into(),
                message: message.into(),
                start_time: None,
                completion_time: None,
            },
        )
        .await
    }

    /// Stores a new trial already in `condition` (a study's asked trial starts Running), in
    /// one statement rather than an insert and an update.
    pub async fn insert_trial_in(
        &self,
        trial: &NewTrial,
        condition: &TrialConditionUpdate,
    ) -> Result<StoredTrial> {
        self.write_trial(trial, condition, None, None, Existing::Refuse)
            .await
    }

    /// Creates or replaces a trial with every column given (see [`MirroredTrial`]); its
    /// experiment must exist.
    ///
    /// It starts with the `UPDATE` so that, on SQLite, the transaction takes the write lock at once.
    pub async fn mirror_trial(&self, mirrored: &MirroredTrial) -> Result<StoredTrial> {
        check_storable(mirrored.created_at)
            .map_err(|reason| Error::invalid_input("created_at", reason))?;
        self.write_trial(
            &mirrored.trial,
            &mirrored.condition,
            mirrored.observation.as_deref(),
            Some(mirrored.created_at),
            Existing::Replace,
        )
        .await
    }

    /// The insert behind [`Store::insert_trial_in`] (a stored trial of the name is refused) and
    /// [`Store::mirror_trial`] (it is replaced, every column; the `UPDATE` goes first so that,
    /// on SQLite, the transaction takes the write lock at once). `created_at` defaults to now.
    async fn write_trial(
        &self,
        trial: &NewTrial,
        condition: &TrialConditionUpdate,
        observation: Option<&str>,
        created_at: Option<DateTime<Utc>>,
        existing: Existing,
    ) -> Result<StoredTrial> {
        check_name("trial name", &trial.name)?;
        check_name("experiment name", &trial.experiment_name)?;
        check_condition_times(condition)?;
        let operation = match existing {
            Existing::Refuse => "insert a trial",
            Existing::Replace => "write a trial",
        };
        let time = now();
        let created_at = stored_time(created_at).unwrap_or(time);
        with_pool!(self, pool => {
            let mut transaction = pool
                .begin()
                .await
                .map_err(|source| self.query_error(operation, source))?;
            let mut replaced = 0;
            if existing == Existing::Replace {
                let mut update = QueryBuilder::new("UPDATE trials SET experiment_name = ");
                update
                    .push_bind(trial.experiment_name.as_str())
                    .push(", spec = ")
                    .push_bind(trial.spec.as_str())
                    .push(", assignments = ")
                    .push_bind(trial.assignments.as_str())
                    .push(", labels = ")
                    .push_bind(trial.labels.as_str())
                    .push(", condition_type = ")
                    .push_bind(condition.condition_type.as_str())
                    .push(", reason = ")
                    .push_bind(condition.reason.as_str())
                    .push(", message = ")
                    .push_bind(condition.message.as_str())
                    .push(", observation = ")
                    .push_bind(observation)
                    .push(", created_at = ")
                    .push_bind(created_at)
                    .push(", start_time = ")
                    .push_bind(stored_time(condition.start_time))
                    .push(", completion_time = ")
                    .push_bind(stored_time(condition.completion_time))
                    .push(", updated_at = ")
                    .push_bind(time)
                    .push(" WHERE name = ")
                    .push_bind(trial.name.as_str());
                replaced = update
                    .build()
                    .execute(&mut *transaction)
                    .await
                    .map_err(|source| self.query_error(operation, source))?
                    .rows_affected();
            }
            if replaced == 0 {
                let mut insert = QueryBuilder::new(
                    "INSERT INTO trials (name, experiment_name, spec, assignments, labels, \
                     condition_type, reason, message, observation, start_time, completion_time, \
                     created_at, updated_at) VALUES (",
                );
                let mut values = insert.separated(", ");
                values
                    .push_bind(trial.name.as_str())
                    .push_bind(trial.experiment_name.as_str())
                    .push_bind(trial.spec.as_str())
                    .push_bind(trial.assignments.as_str())
                    .push_bind(trial.labels.as_str())
                    .push_bind(condition.condition_type.as_str())
                    .push_bind(condition.reason.as_str())
                    .push_bind(condition.message.as_str())
                    .push_bind(observation)
                    .push_bind(stored_time(condition.start_time))
                    .push_bind(stored_time(condition.completion_time))
                    .push_bind(created_at)
                    .push_bind(time);
                insert.push(")");
                insert
                    .build()
                    .execute(&mut *transaction)
                    .await
                    .map_err(|source| match &source {
                        sqlx::Error::Database(database_error)
                            if database_error.is_foreign_key_violation() =>
                        {
                            Error::ExperimentNotFound { name: trial.experiment_name.clone() }
                        }
                        sqlx::Error::Database(database_error)
                            if database_error.is_unique_violation() =>
                        {
                            Error::TrialAlreadyExists { name: trial.name.clone() }
                        }
                        _ => self.query_error(operation, source),
                    })?;
            }
            let mut select = QueryBuilder::new(TRIAL_COLUMNS);
            select.push(" WHERE name = ").push_bind(trial.name.as_str());
            let row: TrialRow = select
                .build_query_as()
                .fetch_one(&mut *transaction)
                .await
                .map_err(|source| self.query_error(operation, source))?;
            transaction
                .commit()
                .await
                .map_err(|source| self.query_error(operation, source))?;
            Ok(StoredTrial::from(row))
        })
    }

    /// Deletes one trial (not its observation log, which its owner deletes); `false` if it was
    /// not stored.
    pub async fn delete_trial(&self, name: &str) -> Result<bool> {
        const OPERATION: &str = "delete a trial";
        with_pool!(self, pool => {
            let mut delete = QueryBuilder::new("DELETE FROM trials WHERE name = ");
            delete.push_bind(name);
            let deleted = delete
                .build()
                .execute(pool)
                .await
                .map_err(|source| self.query_error(OPERATION, source))?
                .rows_affected();
            Ok(deleted > 0)
        })
    }

    /// The trial of that name, if stored.
    pub async fn get_trial(&self, name: &str) -> Result<Option<StoredTrial>> {
        const OPERATION: &str = "read a trial";
        let row: Option<TrialRow> = with_pool!(self, pool => {
            let mut select = QueryBuilder::new(TRIAL_COLUMNS);
            select.push(" WHERE name = ").push_bind(name);
            select
                .build_query_as()
                .fetch_optional(pool)
                .await
                .map_err(|source| self.query_error(OPERATION, source))?
        });
        Ok(row.map(StoredTrial::from))
    }

    /// The trials of an experiment, oldest first.
    pub async fn list_trials(&self, experiment_name: &str) -> Result<Vec<StoredTrial>> {
        if let DatabasePool::Sqlite(pool) = &self.pool {
            return self.list_trials_sqlite(pool, experiment_name).await;
        }
        let rows: Vec<TrialRow> = with_pool!(self, pool => {
            let mut select = QueryBuilder::new(TRIAL_COLUMNS);
            select
                .push(" WHERE experiment_name = ")
                .push_bind(experiment_name)
                .push(" ORDER BY created_at, name");
            select
                .build_query_as()
                .fetch_all(pool)
                .await
                .map_err(|source| self.query_error(LIST_TRIALS, source))?
        });
        Ok(rows.into_iter().map(StoredTrial::from).collect())
    }

    /// One page of an experiment's trials in creation order (newest first when
    /// `newest_first`), only those in `condition` when one is given, and how many match in
    /// all: what a table of trials shows a page at a time, without reading the rest.
    pub async fn page_trials(
        &self,
        experiment_name: &str,
        condition: Option<&str>,
        newest_first: bool,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<StoredTrial>, usize)> {
        const OPERATION: &str = "read a page of trials";
        let to_i64 = |value: usize| i64::try_from(value).unwrap_or(i64::MAX);
        let direction = if newest_first { "DESC" } else { "ASC" };
        let (rows, total): (Vec<TrialRow>, i64) = with_pool!(self, pool => {
            let mut count = QueryBuilder::new("SELECT COUNT(*) FROM trials WHERE experiment_name = ");
            count.push_bind(experiment_name);
            let mut select = QueryBuilder::new(TRIAL_COLUMNS);
            select.push(" WHERE experiment_name = ").push_bind(experiment_name);
            if let Some(condition) = condition {
                count.push(" AND condition_type = ").push_bind(condition);
                select.push(" AND condition_type = ").push_bind(condition);
            }
            select
                .push(format_args!(" ORDER BY created_at {direction}, name {direction} LIMIT "))
                .push_bind(to_i64(limit))
                .push(" OFFSET ")
                .push_bind(to_i64(offset));
            let total = count
                .build_query_scalar()
                .fetch_one(pool)
                .await
                .map_err(|source| self.query_error(OPERATION, source))?;
            let rows = select
                .build_query_as()
                .fetch_all(pool)
                .await
                .map_err(|source| self.query_error(OPERATION, source))?;
            (rows, total)
        });
        Ok((
            rows.into_iter().map(StoredTrial::from).collect(),
            usize::try_from(total).unwrap_or_default(),
        ))
    }

    /// [`Store::list_trials`] on SQLite: sqlx hands each row of a SQLite query from its worker
    /// thread to the caller one at a time, which costs more than reading it for thousands of
    /// small rows; so SQLite builds the list as one JSON array of rows (in C), and one value
    /// crosses over. Two halves of the list (by rowid parity) are built and read at once on two
    /// pooled connections, one task each: each half needs only its own connection and thread,
    /// and listing 10,000 trials over HTTP went from about 58 ms to about 44 ms. Each half
    /// is a snapshot of its own; the two are taken together, and a trial is in exactly one.
    async fn list_trials_sqlite(
        &self,
        pool: &sqlx::SqlitePool,
        experiment_name: &str,
    ) -> Result<Vec<StoredTrial>> {
        let halves = [0, 1].map(|parity| {
            let pool = pool.clone();
            let experiment_name = experiment_name.to_owned();
            tokio::spawn(async move { sqlite_trials_half(&pool, &experiment_name, parity).await })
        });
        let mut trials = Vec::new();
        for half in halves {
            // A half's task ends by finishing or panicking (it is cancelled only when the
            // runtime shuts down, which ends this call too); its panic is this call's.
            let half = half
                .await
                .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
            trials.extend(half?);
        }
        // The array is ordered here, not by the aggregate's `ORDER BY`: SQLite sorts an
        // aggregate's input through a temporary b-tree of whole rows, which spilled to disk for
        // 10,000 trials (listing them over HTTP took 83.6 ms with it, 72 ms without). Each
        // half arrives from the `(experiment_name, created_at)` index already in order but for
        // ties, and a stable sort merges such runs in linear time.
        trials.sort_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
        Ok(trials)
    }

    /// Sets a trial's condition (and start or completion time, when given).
    pub async fn update_trial_condition(
        &self,
        trial_name: &str,
        update: &TrialConditionUpdate,
    ) -> Result<StoredTrial> {
        check_condition_times(update)?;
        self.update_trial(
            trial_name,
            TrialChange {
                condition: Some(update),
                observation: None,
            },
        )
        .await
    }

    /// Sets (or, with `None`, clears) a trial's observation JSON.
    pub async fn update_trial_observation(
        &self,
        trial_name: &str,
        observation: Option<&str>,
    ) -> Result<StoredTrial> {
        self.update_trial(
            trial_name,
            TrialChange {
                condition: None,
                observation: Some(observation),
            },
        )
        .await
    }

    /// Sets a trial's observation JSON and its condition together, as one write: a trial's
    /// outcome is never stored half.
    pub async fn update_trial_outcome(
        &self,
        trial_name: &str,
        observation: &str,
        condition: &TrialConditionUpdate,
    ) -> Result<StoredTrial> {
        check_condition_times(condition)?;
        self.update_trial(
            trial_name,
            TrialChange {
                condition: Some(condition),
                observation: Some(Some(observation)),
            },
        )
        .await
    }

    async fn update_trial(&self, trial_name: &str, change: TrialChange<'_>) -> Result<StoredTrial> {
        const OPERATION: &str = "update a trial";
        let row: TrialRow = with_pool!(self, pool => {
            let mut transaction = pool
                .begin()
                .await
                .map_err(|source| self.query_error(OPERATION, source))?;
            let mut update = QueryBuilder::new("UPDATE trials SET updated_at = ");
            update.push_bind(now());
            if let Some(condition) = change.condition {
                update
                    .push(", condition_type = ")
                    .push_bind(condition.condition_type.as_str())
                    .push(", reason = ")
                    .push_bind(condition.reason.as_str())
                    .push(", message = ")
                    .push_bind(condition.message.as_str())
                    .push(", start_time = COALESCE(")
                    .push_bind(stored_time(condition.start_time))
                    .push(", start_time), completion_time = COALESCE(")
                    .push_bind(stored_time(condition.completion_time))
                    .push(", completion_time)");
            }
            if let Some(observation) = change.observation {
                update.push(", observation = ").push_bind(observation);
            }
            update.push(" WHERE name = ").push_bind(trial_name);
            let updated = update
                .build()
                .execute(&mut *transaction)
                .await
                .map_err(|source| self.query_error(OPERATION, source))?
                .rows_affected();
            if updated == 0 {
                return Err(Error::TrialNotFound {
                    name: trial_name.to_owned(),
                });
            }
            let mut select = QueryBuilder::new(TRIAL_COLUMNS);
            select.push(" WHERE name = ").push_bind(trial_name);
            let row = select
                .build_query_as()
                .fetch_one(&mut *transaction)
                .await
                .map_err(|source| self.query_error(OPERATION, source))?;
            transaction
                .commit()
                .await
                .map_err(|source| self.query_error(OPERATION, source))?;
            row
        });
        Ok(StoredTrial::from(row))
    }
}

/// What [`Store::update_trial`] changes: the condition, the observation (set or cleared), or
/// both.
struct TrialChange<'a> {
    condition: Option<&'a TrialConditionUpdate>,
    observation: Option<Option<&'a str>>,
}

/// A condition's time as stored (microseconds, as every backend keeps them).
fn stored_time(time: Option<DateTime<Utc>>) -> Option<StoredTime> {
    time.map(|time| StoredTime(truncate_to_microseconds(time)))
}

/// A condition's times must be storable by every backend.
fn check_condition_times(condition: &TrialConditionUpdate) -> Result<()> {
    for (field, time) in [
        ("start_time", condition.start_time),
        ("completion_time", condition.completion_time),
    ] {
        if let Some(time) = time {
            check_storable(time).map_err(|reason| Error::invalid_input(field, reason))?;
        }
    }
    Ok(())
}

/// The trials of an experiment whose rowid has this parity (0 or 1), read as one JSON array
/// built by SQLite (see [`Store::list_trials`]), in the index's order.
async fn sqlite_trials_half(
    pool: &sqlx::SqlitePool,
    experiment_name: &str,
    parity: i64,
) -> Result<Vec<StoredTrial>> {
    // The times are only parsed, so they are borrowed from the text (they hold no escapes)
    // rather than copied: four allocations fewer per trial. (Embedding the JSON columns as
    // JSON, with `json(...)`, saves their escaping but costs SQLite more in parsing them.)
    type JsonRow<'a> = (
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        Option<String>,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
    );
    // A blob, not text: SQLite copies a text result to terminate it when it is read.
    let mut select = QueryBuilder::new(
        "SELECT CAST(json_group_array(json_array(name, experiment_name, spec, assignments, \
         labels, condition_type, reason, message, observation, created_at, start_time, \
         completion_time, updated_at)) AS BLOB) FROM trials WHERE experiment_name = ",
    );
    select
        .push_bind(experiment_name)
        .push(" AND rowid % 2 = ")
        .push_bind(parity);
    let query_error = |source| Error::Query {
        backend: Backend::Sqlite,
        operation: LIST_TRIALS,
        source,
    };
    let row = select.build().fetch_one(pool).await.map_err(query_error)?;
    // Borrowed from the row: the array is megabytes for thousands of trials.
    let text: &[u8] = row.try_get(0).map_err(query_error)?;
    let corrupt = |reason: String| Error::Corrupt {
        what: format!("the trials of experiment {experiment_name:?}"),
        reason,
    };
    let time = |text: &str| from_sqlite_text(text).map_err(corrupt);
    let rows: Vec<JsonRow<'_>> =
        serde_json::from_slice(text).map_err(|error| corrupt(error.to_string()))?;
    rows.into_iter()
        .map(|row| {
            Ok(StoredTrial {
                created_at: time(row.9)?,
                start_time: row.10.map(time).transpose()?,
                completion_time: row.11.map(time).transpose()?,
                updated_at: time(row.12)?,
                name: row.0,
                experiment_name: row.1,
                spec: row.2,
                assignments: row.3,
                labels: row.4,
                condition_type: row.5,
                reason: row.6,
                message: row.7,
                observation: row.8,
            })
        })
        .collect()
}
