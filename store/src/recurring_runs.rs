//! Recurring runs (a pipeline on a cron schedule), kept for `sextant server`: one JSON record
//! per name, owned by the server.

use sqlx::QueryBuilder;

use crate::database_url::Backend;
use crate::error::Result;
use crate::name_column::StoredName;
use crate::observation_log::check_name;
use crate::store::{Store, with_pool};

impl Store {
    /// Creates or replaces a recurring run's record.
    pub async fn put_recurring_run(&self, name: &str, record: &str) -> Result<()> {
        const OPERATION: &str = "write a recurring run";
        check_name("recurring run name", name)?;
        let on_conflict = match self.backend() {
            Backend::MySql => " ON DUPLICATE KEY UPDATE record = VALUES(record)",
            Backend::Sqlite | Backend::Postgres => {
                " ON CONFLICT (name) DO UPDATE SET record = excluded.record"
            }
        };
        with_pool!(self, pool => {
            let mut upsert = QueryBuilder::new("INSERT INTO recurring_runs (name, record) VALUES (");
            upsert.separated(", ").push_bind(name).push_bind(record);
            upsert.push(")").push(on_conflict);
            upsert
                .build()
                .execute(pool)
                .await
                .map_err(|source| self.query_error(OPERATION, source))?;
            Ok(())
        })
    }

    /// A recurring run's record, if stored.
    pub async fn get_recurring_run(&self, name: &str) -> Result<Option<String>> {
        const OPERATION: &str = "read a recurring run";
        with_pool!(self, pool => {
            let mut select = QueryBuilder::new("SELECT record FROM recurring_runs WHERE name = ");
            select.push_bind(name);
            select
                .build_query_scalar::<String>()
                .fetch_optional(pool)
                .await
                .map_err(|source| self.query_error(OPERATION, source))
        })
    }

    /// Every recurring run's name and record, by name.
    pub async fn list_recurring_runs(&self) -> Result<Vec<(String, String)>> {
        const OPERATION: &str = "list recurring runs";
        let rows: Vec<(StoredName, String)> = with_pool!(self, pool => {
            let mut select = QueryBuilder::new("SELECT name, record FROM recurring_runs ORDER BY name");
            select
                .build_query_as()
                .fetch_all(pool)
                .await
                .map_err(|source| self.query_error(OPERATION, source))?
        });
        Ok(rows
            .into_iter()
            .map(|(name, record)| (name.0, record))
            .collect())
    }

    /// Deletes a recurring run (the runs it started stay); false if it was not stored.
    pub async fn delete_recurring_run(&self, name: &str) -> Result<bool> {
        const OPERATION: &str = "delete a recurring run";
        with_pool!(self, pool => {
            let mut delete = QueryBuilder::new("DELETE FROM recurring_runs WHERE name = ");
            delete.push_bind(name);
            let done = delete
                .build()
                .execute(pool)
                .await
                .map_err(|source| self.query_error(OPERATION, source))?;
            Ok(done.rows_affected() > 0)
        })
    }
}
