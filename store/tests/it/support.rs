//! A fresh store for each test on each backend (an isolated database from
//! `sextant-test-support`, dropped when the test ends, pass or fail, so concurrent runs never
//! collide), reading what it stored past its API, and an in-process DBManager server.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context as _;
use sextant_store::{Backend, Store, db_manager_service};
use sextant_test_support::TestDatabase;
use sqlx::Connection as _;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

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
