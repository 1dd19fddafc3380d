//! What the integration tests of several crates share: where the test database servers are,
//! names that no other test or test run uses, and isolated databases on every backend.
//!
//! Dev-only: crates take it as a dev-dependency, never as a dependency, and it is not
//! published. It depends on `sextant-store` (for [`Backend`]) and sqlx (to create and drop
//! databases past the store).
//!
//! The servers are PostgreSQL at `postgres://postgres@127.0.0.1:5432/test` and MariaDB at
//! `mysql://root@127.0.0.1:3306/test` (`.ci/run` starts both when they are down), overridden
//! with `SEXTANT_TEST_POSTGRES_URL` and `SEXTANT_TEST_MYSQL_URL`. A server that cannot be
//! reached fails the test.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
pub use sextant_store::Backend;
use sqlx::Connection as _;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// The PostgreSQL database the tests use.
pub fn postgres_url() -> String {
    std::env::var("SEXTANT_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// The MariaDB (MySQL) database the tests use.
pub fn mysql_url() -> String {
    std::env::var("SEXTANT_TEST_MYSQL_URL").unwrap_or_else(|_| DEFAULT_MYSQL_URL.to_owned())
}

/// `{prefix}-{pid}-{time}-{count}` (hexadecimal): unique in this process (the counter) and
/// across processes and runs against the same servers (the process id and the time in
/// seconds), since databases and observation logs outlive a test. Short, and made of
/// lowercase letters, digits and `-`, so with such a prefix it is a valid Kubernetes name; with
/// `-` turned into `_`, a valid SQL identifier.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default();
    format!(
        "{prefix}-{:x}-{:x}-{:x}",
        std::process::id(),
        seconds % (1 << 24),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The URL `base_url` with its path (the database name) replaced by `database`.
pub fn replace_database(base_url: &str, database: &str) -> String {
    let (without_query, query) = match base_url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (base_url, None),
    };
    let authority_start = without_query.find("://").map_or(0, |index| index + 3);
    let path_start = without_query[authority_start..]
        .find('/')
        .map_or(without_query.len(), |index| authority_start + index);
    let mut url = format!("{}/{database}", &without_query[..path_start]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// An isolated database for one test: a file in a temporary directory (SQLite), a schema of its
/// own in the test database, selected through `search_path` (PostgreSQL), or a database of its
/// own (MariaDB). [`TestDatabase::drop_database`] removes it.
pub struct TestDatabase {
    /// Where to connect.
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(tempfile::TempDir),
    Postgres { base_url: String, schema: String },
    MySql { base_url: String, database: String },
}

impl TestDatabase {
    /// A new, empty database on `backend`.
    pub async fn create(backend: Backend) -> anyhow::Result<TestDatabase> {
        let name = unique_name("sextant-test").replace('-', "_");
        match backend {
            Backend::Sqlite => {
                let directory = tempfile::tempdir()?;
                let url = format!("sqlite://{}/store.db", directory.path().display());
                Ok(TestDatabase {
                    url,
                    cleanup: Cleanup::Sqlite(directory),
                })
            }
            Backend::Postgres => {
                let base_url = postgres_url();
                let mut connection =
                    sqlx::PgConnection::connect(&base_url)
                        .await
                        .with_context(|| {
                            format!("PostgreSQL at {base_url} must be running for this test")
                        })?;
                sqlx::query(&format!("CREATE SCHEMA {name}"))
                    .execute(&mut connection)
                    .await?;
                connection.close().await?;
                let separator = if base_url.contains('?') { '&' } else { '?' };
                let url = format!("{base_url}{separator}options=-c%20search_path%3D{name}");
                Ok(TestDatabase {
                    url,
                    cleanup: Cleanup::Postgres {
                        base_url,
                        schema: name,
                    },
                })
            }
            Backend::MySql => {
                let base_url = mysql_url();
                let mut connection = sqlx::MySqlConnection::connect(&base_url)
                    .await
                    .with_context(|| {
                        format!("MariaDB at {base_url} must be running for this test")
                    })?;
                sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
                    .execute(&mut connection)
                    .await?;
                connection.close().await?;
                let url = replace_database(&base_url, &name);
                Ok(TestDatabase {
                    url,
                    cleanup: Cleanup::MySql {
                        base_url,
                        database: name,
                    },
                })
            }
        }
    }

    /// Removes the database and everything in it.
    pub async fn drop_database(self) -> anyhow::Result<()> {
        match self.cleanup {
            Cleanup::Sqlite(directory) => Ok(directory.close()?),
            Cleanup::Postgres { base_url, schema } => {
                let mut connection = sqlx::PgConnection::connect(&base_url).await?;
                sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                    .execute(&mut connection)
                    .await?;
                Ok(connection.close().await?)
            }
            Cleanup::MySql { base_url, database } => {
                let mut connection = sqlx::MySqlConnection::connect(&base_url).await?;
                sqlx::raw_sql(&format!("DROP DATABASE {database}"))
                    .execute(&mut connection)
                    .await?;
                Ok(connection.close().await?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_differ_and_fit_kubernetes_and_sql() {
        let (first, second) = (unique_name("exp"), unique_name("exp"));
        assert_ne!(first, second);
        assert!(first.len() < 40, "{first}");
        assert!(
            first
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{first}"
        );
    }

    #[test]
    fn a_database_name_replaces_the_path_and_keeps_the_query() {
        assert_eq!(
            replace_database(
                "mysql://root@127.0.0.1:3306/test?ssl-mode=disabled",
                "other"
            ),
            "mysql://root@127.0.0.1:3306/other?ssl-mode=disabled"
        );
        assert_eq!(
            replace_database("postgres://127.0.0.1", "other"),
            "postgres://127.0.0.1/other"
        );
    }
}
