//! Fresh, isolated databases for each test on each backend, and an in-process DBManager server.
//!
//! SQLite tests get a file in a temporary directory. PostgreSQL tests get a schema of their own
//! in the `test` database (selected through `search_path`), MySQL tests a database of their own;
//! both are dropped when the test ends, pass or fail, so concurrent runs never collide. The
//! server URLs can be overridden with SEXTANT_TEST_POSTGRES_URL and SEXTANT_TEST_MYSQL_URL. A
//! server that cannot be reached fails the test: CI starts both servers.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use sextant_store::{Backend, Store, db_manager_service};
use sqlx::Connection as _;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

pub fn postgres_base_url() -> String {
    std::env::var("SEXTANT_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

pub fn mysql_base_url() -> String {
    std::env::var("SEXTANT_TEST_MYSQL_URL").unwrap_or_else(|_| DEFAULT_MYSQL_URL.to_owned())
}

/// A name no other test run uses: process id, time and a counter.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{prefix}_{}_{}_{count}",
        std::process::id(),
        nanos % 1_000_000_000_000
    )
}

/// An isolated database for one test; [`TestDatabase::drop_database`] removes it.
pub struct TestDatabase {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(tempfile::TempDir),
    Postgres { base_url: String, schema: String },
    MySql { base_url: String, database: String },
}

impl TestDatabase {
    pub async fn create(backend: Backend) -> anyhow::Result<TestDatabase> {
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
                let base_url = postgres_base_url();
                let schema = unique_name("sextant_test");
                let mut connection =
                    sqlx::PgConnection::connect(&base_url)
                        .await
                        .with_context(|| {
                            format!("PostgreSQL at {base_url} must be running for this test")
                        })?;
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&mut connection)
                    .await?;
                connection.close().await?;
                let separator = if base_url.contains('?') { '&' } else { '?' };
                let url = format!("{base_url}{separator}options=-c%20search_path%3D{schema}");
                Ok(TestDatabase {
                    url,
                    cleanup: Cleanup::Postgres { base_url, schema },
                })
            }
            Backend::MySql => {
                let base_url = mysql_base_url();
                let database = unique_name("sextant_test");
                let mut connection = sqlx::MySqlConnection::connect(&base_url)
                    .await
                    .with_context(|| {
                        format!("MariaDB at {base_url} must be running for this test")
                    })?;
                sqlx::raw_sql(&format!("CREATE DATABASE {database}"))
                    .execute(&mut connection)
                    .await?;
                connection.close().await?;
                let url = replace_database(&base_url, &database);
                Ok(TestDatabase {
                    url,
                    cleanup: Cleanup::MySql { base_url, database },
                })
            }
        }
    }

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

/// `(value, numeric_value)` of every stored point in insertion order, read past the store's API.
pub async fn stored_values(
    backend: Backend,
    url: &str,
) -> anyhow::Result<Vec<(String, Option<f64>)>> {
    const SELECT: &str = "SELECT value, numeric_value FROM observation_logs ORDER BY id";
    Ok(match backend {
        Backend::Sqlite => {
            let mut connection = sqlx::SqliteConnection::connect(url).await?;
            sqlx::query_as(SELECT).fetch_all(&mut connection).await?
        }
        Backend::Postgres => {
            let mut connection = sqlx::PgConnection::connect(url).await?;
            sqlx::query_as(SELECT).fetch_all(&mut connection).await?
        }
        Backend::MySql => {
            let mut connection = sqlx::MySqlConnection::connect(url).await?;
            sqlx::query_as(SELECT).fetch_all(&mut connection).await?
        }
    })
}

/// The base URL with its path (the database name) replaced.
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

/// Runs `test` against a fresh store on `backend` and drops the database afterwards, also when
/// the test panics (the panic is then resumed).
pub async fn run_on<Test, TestFuture>(backend: Backend, test: Test) -> anyhow::Result<()>
where
    Test: FnOnce(Store, TestDatabaseInfo) -> TestFuture,
    TestFuture: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let database = TestDatabase::create(backend).await?;
    let store = Store::connect(&database.url)
        .await
        .with_context(|| format!("connecting to {backend} test database"))?;
    let info = TestDatabaseInfo {
        url: database.url.clone(),
        backend,
    };
    let outcome = tokio::spawn(test(store.clone(), info)).await;
    store.close().await;
    database.drop_database().await?;
    match outcome {
        Ok(result) => result,
        Err(join_error) if join_error.is_panic() => {
            std::panic::resume_unwind(join_error.into_panic())
        }
        Err(join_error) => Err(join_error.into()),
    }
}

/// What a test needs to read its database past the store: the URL and the backend.
#[derive(Clone)]
pub struct TestDatabaseInfo {
    pub url: String,
    pub backend: Backend,
}

impl TestDatabaseInfo {
    pub async fn stored_values(&self) -> anyhow::Result<Vec<(String, Option<f64>)>> {
        stored_values(self.backend, &self.url).await
    }
}

/// A DBManager server on 127.0.0.1 in this process, stopped by [`TestServer::shutdown`].
pub struct TestServer {
    pub address: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl TestServer {
    pub async fn start(store: Store) -> anyhow::Result<TestServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (shutdown_sender, shutdown_receiver) = oneshot::channel::<()>();
        let task = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(db_manager_service(store))
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async {
                        let _ = shutdown_receiver.await;
                    },
                ),
        );
        Ok(TestServer {
            address,
            shutdown: Some(shutdown_sender),
            task,
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
        Ok(self.task.await??)
    }
}
