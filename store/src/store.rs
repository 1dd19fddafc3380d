//! The [`Store`] handle: connecting to the database a URL names, migrating it, and running one
//! piece of query code against whichever of the three pools is behind it.
//!
//! The store holds one concrete sqlx pool per backend instead of sqlx's `Any` driver, because
//! `Any` narrows column types to a common subset (no `TIMESTAMPTZ`, no `DATETIME(6)`); the
//! `with_pool!` macro expands one body of query code once per concrete pool,
//! so the queries are still written only once.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};

use crate::database_url::{Backend, redact_password};
use crate::error::{Error, Result};

/// How the store connects; [`StoreConfig::default`] suits a server and the tests.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// How long [`Store::connect_with`] keeps retrying a server that refuses connections (it may
    /// be starting up), and how long a query waits for a free pooled connection.
    pub connect_timeout: Duration,
    /// The most connections held to a PostgreSQL or MySQL server. SQLite allows one writer at a
    /// time, so its pool is kept small whatever this says.
    pub max_connections: u32,
    /// How long a SQLite statement waits for another connection's write lock before failing.
    pub sqlite_busy_timeout: Duration,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            connect_timeout: Duration::from_secs(10),
            max_connections: 10,
            sqlite_busy_timeout: Duration::from_secs(10),
        }
    }
}

/// A connection pool to the store's database; cheap to clone (clones share the pool).
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: DatabasePool,
}

/// The concrete pool behind a [`Store`].
#[derive(Debug, Clone)]
pub(crate) enum DatabasePool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// Runs `$body` with `$pool` bound to the store's concrete pool, once per backend, so that one
/// text of query code serves all three; `$body` must type-check for each of them.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            $crate::store::DatabasePool::Sqlite($pool) => $body,
            $crate::store::DatabasePool::Postgres($pool) => $body,
            $crate::store::DatabasePool::MySql($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// The largest number of connections to a SQLite file: readers run beside the one writer in WAL
/// mode, and more writers would only queue on the file lock.
const SQLITE_MAX_CONNECTIONS: u32 = 4;

/// SQLite's page cache per connection, in KiB when negative (SQLite's convention): 32 MiB.
const SQLITE_CACHE_SIZE: &str = "-32768";

/// How much of the SQLite file is memory-mapped: 256 MiB.
const SQLITE_MMAP_SIZE: &str = "268435456";

/// The pause between attempts to reach a server that refuses connections.
const CONNECT_RETRY_INTERVAL: Duration = Duration::from_millis(200);

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");
static MYSQL_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/mysql");

// === impl Store ===

impl Store {
    /// Connects to the database `url` names and brings its schema up to date.
    ///
    /// `sqlite://PATH` opens (and on first use creates, with its directory) a SQLite file in WAL
    /// mode; `sqlite::memory:` a private in-memory database. `postgres://...` and `mysql://...`
    /// connect to a server, waiting up to [`StoreConfig::connect_timeout`] for one that refuses
    /// connections. Errors name the backend and the URL without its password.
    pub async fn connect(url: &str) -> Result<Store> {
        Store::connect_with(url, &StoreConfig::default()).await
    }

    /// Like [`Store::connect`], with explicit settings.
    pub async fn connect_with(url: &str, config: &StoreConfig) -> Result<Store> {
        let redacted_url = redact_password(url);
        let backend = Backend::from_url(url).ok_or_else(|| Error::UnsupportedUrl {
            url: redacted_url.clone(),
        })?;
        let invalid_url = |source| Error::InvalidUrl {
            backend,
            url: redacted_url.clone(),
            source,
        };
        let pool = match backend {
            Backend::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(invalid_url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // In WAL mode, NORMAL syncs the log at checkpoints only: a committed
                    // transaction survives the process being killed (the log is in the OS page
                    // cache), and only a power loss can drop the last commits, never corrupt the file.
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(config.sqlite_busy_timeout)
                    .foreign_keys(true)
                    // The default page cache (2 MiB) makes index updates of a growing
                    // observation log read pages back from the file; a larger cache and a
                    // memory-mapped file keep them in memory.
                    .pragma("cache_size", SQLITE_CACHE_SIZE)
                    .pragma("mmap_size", SQLITE_MMAP_SIZE);
                let in_memory = url.contains(":memory:") || url.contains("mode=memory");
                if !in_memory {
                    create_parent_directory(options.get_filename())?;
                }
                wait_for_server(&options, backend, &redacted_url, config.connect_timeout).await?;
                // An in-memory database lives as long as one connection to it does, and each
                // pooled connection would otherwise see a database of its own; one connection
                // that never expires keeps it whole.
                let pool_options = if in_memory {
                    SqlitePoolOptions::new()
                        .max_connections(1)
                        .min_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None)
                } else {
                    SqlitePoolOptions::new()
                        .max_connections(SQLITE_MAX_CONNECTIONS.min(config.max_connections))
                };
                let pool = pool_options
                    .acquire_timeout(config.connect_timeout)
                    .connect_with(options)
                    .await
                    .map_err(|source| connect_error(backend, &redacted_url, source))?;
                DatabasePool::Sqlite(pool)
            }
            Backend::Postgres => {
                let options = PgConnectOptions::from_str(url).map_err(invalid_url)?;
                wait_for_server(&options, backend, &redacted_url, config.connect_timeout).await?;
                let pool = PgPoolOptions::new()
                    .max_connections(config.max_connections)
                    .acquire_timeout(config.connect_timeout)
                    .connect_with(options)
                    .await
                    .map_err(|source| connect_error(backend, &redacted_url, source))?;
                DatabasePool::Postgres(pool)
            }
            Backend::MySql => {
                // sqlx accepts only the `mysql` scheme; `mariadb://` is our alias for it.
                let mysql_url = match url.split_once("://") {
                    Some((scheme, rest)) if scheme.eq_ignore_ascii_case("mariadb") => {
                        format!("mysql://{rest}")
                    }
                    _ => url.to_owned(),
                };
                let options = MySqlConnectOptions::from_str(&mysql_url).map_err(invalid_url)?;
                wait_for_server(&options, backend, &redacted_url, config.connect_timeout).await?;
                let pool = MySqlPoolOptions::new()
                    .max_connections(config.max_connections)
                    .acquire_timeout(config.connect_timeout)
                    .connect_with(options)
                    .await
                    .map_err(|source| connect_error(backend, &redacted_url, source))?;
                DatabasePool::MySql(pool)
            }
        };
        let store = Store { pool };
        store.migrate(&redacted_url).await?;
        tracing::debug!(%backend, url = %redacted_url, "store connected and migrated");
        Ok(store)
    }

    /// The backend behind this store.
    pub fn backend(&self) -> Backend {
        match &self.pool {
            DatabasePool::Sqlite(_) => Backend::Sqlite,
            DatabasePool::Postgres(_) => Backend::Postgres,
            DatabasePool::MySql(_) => Backend::MySql,
        }
    }

    /// Checks that the database answers, for health checks: takes a pooled connection and pings it.
    pub async fn ping(&self) -> Result<()> {
        with_pool!(self, pool => {
            let mut connection = pool.acquire().await.map_err(|source| self.query_error("ping the database", source))?;
            connection.ping().await.map_err(|source| self.query_error("ping the database", source))
        })
    }

    /// Closes every connection; later calls fail. SQLite checkpoints its log on the last close.
    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }

    pub(crate) fn query_error(&self, operation: &'static str, source: sqlx::Error) -> Error {
        Error::Query {
            backend: self.backend(),
            operation,
            source,
        }
    }

    async fn migrate(&self, redacted_url: &str) -> Result<()> {
        let result = match &self.pool {
            DatabasePool::Sqlite(pool) => SQLITE_MIGRATOR.run(pool).await,
            DatabasePool::Postgres(pool) => POSTGRES_MIGRATOR.run(pool).await,
            DatabasePool::MySql(pool) => MYSQL_MIGRATOR.run(pool).await,
        };
        result.map_err(|source| Error::Migrate {
            backend: self.backend(),
            url: redacted_url.to_owned(),
            source,
        })
    }
}

fn connect_error(backend: Backend, redacted_url: &str, source: sqlx::Error) -> Error {
    Error::Connect {
        backend,
        url: redacted_url.to_owned(),
        source,
    }
}

/// Opens one connection directly, outside any pool, so that a wrong host, port, user or database
/// fails with the driver's own reason (a pool would only say it timed out). A server that
/// refuses connections is retried until `timeout`, as it may still be starting.
async fn wait_for_server<Options: ConnectOptions>(
    options: &Options,
    backend: Backend,
    redacted_url: &str,
    timeout: Duration,
) -> Result<()>
where
    Options::Connection: Sized,
{
    let deadline = Instant::now() + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let error = match tokio::time::timeout(remaining, options.connect()).await {
            Ok(Ok(connection)) => {
                // The connection only proved the server reachable; a failure to close it
                // politely changes nothing for the pool that follows.
                let _ = connection.close().await;
                return Ok(());
            }
            Ok(Err(error)) => error,
            Err(_elapsed) => sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} ms", timeout.as_millis()),
            )),
        };
        let refused = matches!(&error, sqlx::Error::Io(io_error)
            if io_error.kind() == std::io::ErrorKind::ConnectionRefused);
        if !refused || Instant::now() + CONNECT_RETRY_INTERVAL >= deadline {
            return Err(connect_error(backend, redacted_url, error));
        }
        tokio::time::sleep(CONNECT_RETRY_INTERVAL).await;
    }
}

fn create_parent_directory(database_file: &Path) -> Result<()> {
    match database_file.parent() {
        Some(directory) if !directory.as_os_str().is_empty() && !directory.exists() => {
            std::fs::create_dir_all(directory).map_err(|source| Error::CreateDirectory {
                path: directory.display().to_string(),
                source,
            })
        }
        _ => Ok(()),
    }
}
