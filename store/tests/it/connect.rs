//! Connecting: wrong, unreachable and unsupported URLs fail with a clear error naming the URL
//! (never its password), and never panic.

use std::time::Duration;

use sextant_store::error::error_chain;
use sextant_store::{Backend, Error, Store, StoreConfig};

use sextant_test_support::{mysql_url, postgres_url, replace_database};

fn quick() -> StoreConfig {
    StoreConfig {
        connect_timeout: Duration::from_secs(1),
        ..StoreConfig::default()
    }
}

async fn connect_error(url: &str) -> Error {
    match Store::connect_with(url, &quick()).await {
        Ok(_) => panic!("{url} connected"),
        Err(error) => error,
    }
}

#[tokio::test]
async fn unsupported_schemes_are_named() {
    for url in [
        "redis://127.0.0.1:6379",
        "/var/lib/sextant.db",
        "",
        "http://example.com/db",
    ] {
        let error = connect_error(url).await;
        assert!(
            matches!(error, Error::UnsupportedUrl { .. }),
            "{url}: {error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("sqlite://") && message.contains(url),
            "{message}"
        );
    }
}

#[tokio::test]
async fn refused_connections_name_the_host_and_hide_the_password() {
    for (url, shown) in [
        (
            "postgres://postgres:hunter2@127.0.0.1:9/test",
            "postgres://postgres:***@127.0.0.1:9/test",
        ),
        (
            "mysql://root:hunter2@127.0.0.1:9/test",
            "mysql://root:***@127.0.0.1:9/test",
        ),
    ] {
        let error = connect_error(url).await;
        assert!(matches!(error, Error::Connect { .. }), "{error:?}");
        let message = error_chain(&error);
        assert!(message.contains(shown), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.to_lowercase().contains("refused"), "{message}");
    }
}

#[tokio::test]
async fn unknown_hosts_fail_with_the_host_named() {
    let error = connect_error("postgres://postgres@no-such-host.invalid:5432/test").await;
    let message = error_chain(&error);
    assert!(
        matches!(
            error,
            Error::Connect {
                backend: Backend::Postgres,
                ..
            }
        ),
        "{message}"
    );
    assert!(message.contains("no-such-host.invalid"), "{message}");
}

#[tokio::test]
async fn missing_databases_fail_with_the_server_reason() {
    let postgres = replace_database(&postgres_url(), "sextant_no_such_database");
    let error = connect_error(&postgres).await;
    let message = error_chain(&error);
    assert!(
        message.contains("sextant_no_such_database") && message.contains("does not exist"),
        "{message}"
    );

    let mysql = replace_database(&mysql_url(), "sextant_no_such_database");
    let error = connect_error(&mysql).await;
    let message = error_chain(&error);
    assert!(
        message.contains("sextant_no_such_database")
            && message.to_lowercase().contains("unknown database"),
        "{message}"
    );
}

#[tokio::test]
async fn malformed_urls_are_invalid() {
    let error = connect_error("postgres://127.0.0.1:notaport/test").await;
    assert!(
        matches!(
            error,
            Error::InvalidUrl {
                backend: Backend::Postgres,
                ..
            }
        ),
        "{error:?}"
    );
    let error = connect_error("sqlite://data.db?mode=sideways").await;
    assert!(
        matches!(
            error,
            Error::InvalidUrl {
                backend: Backend::Sqlite,
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn sqlite_files_that_cannot_be_created_are_named() {
    let error = connect_error("sqlite:///proc/sextant-forbidden/store.db").await;
    let message = error_chain(&error);
    assert!(matches!(error, Error::CreateDirectory { .. }), "{message}");
    assert!(message.contains("/proc/sextant-forbidden"), "{message}");
}

#[tokio::test]
async fn in_memory_sqlite_keeps_its_data_across_calls() -> anyhow::Result<()> {
    let store = Store::connect("sqlite::memory:").await?;
    store.upsert_experiment("exp", "{}", "{}", None).await?;
    store.ping().await?;
    assert_eq!(store.list_experiments().await?.len(), 1);
    assert_eq!(store.backend(), Backend::Sqlite);
    Ok(())
}
