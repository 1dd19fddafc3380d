//! Database URLs: which backend a URL names, and how to show a URL without its password.
//!
//! Every error about connecting names the URL it was given, so it must never carry the password
//! that the URL may hold; [`redact_password`] is the only way a URL reaches a message or a log.

use std::fmt;

/// The database systems the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// An embedded SQLite file (`sqlite://PATH`), the default for a single machine.
    Sqlite,
    /// A PostgreSQL server (`postgres://` or `postgresql://`).
    Postgres,
    /// A MySQL or MariaDB server (`mysql://` or `mariadb://`).
    MySql,
}

impl Backend {
    /// Picks the backend from a URL's scheme; `None` when the scheme is none of ours.
    pub fn from_url(url: &str) -> Option<Backend> {
        let scheme = url_scheme(url)?;
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Some(Backend::Sqlite),
            "postgres" | "postgresql" => Some(Backend::Postgres),
            "mysql" | "mariadb" => Some(Backend::MySql),
            _ => None,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
        })
    }
}

/// The scheme of a URL (the text before the first `:`), if it looks like one.
pub fn url_scheme(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once(':')?;
    let looks_like_scheme = !scheme.is_empty()
        && scheme
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || "+-.".contains(character));
    looks_like_scheme.then_some(scheme)
}

/// The embedded default store of the commands that keep experiments: a SQLite file in the
/// working directory, created on first use.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://sextant.db";

/// The URL with any password in its authority replaced by `***`, fit for messages and logs.
///
/// Query parameters are dropped too, since drivers accept secrets there (`password=...`,
/// `sslpassword=...`); the scheme, user, host, port and path are kept because they are what a
/// reader needs to see which database was meant.
pub fn redact_password(url: &str) -> String {
    let without_query = url.split(['?', '#']).next().unwrap_or(url);
    let Some((scheme, rest)) = without_query.split_once("://") else {
        return without_query.to_owned();
    };
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    };
    // The user information ends at the last `@` of the authority; a password is what follows
    // the first `:` inside it.
    let authority = match authority.rsplit_once('@') {
        Some((user_information, host)) => match user_information.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{user_information}@{host}"),
        },
        None => authority.to_owned(),
    };
    format!("{scheme}://{authority}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_follows_the_scheme() {
        assert_eq!(Backend::from_url("sqlite://a.db"), Some(Backend::Sqlite));
        assert_eq!(Backend::from_url("sqlite::memory:"), Some(Backend::Sqlite));
        assert_eq!(
            Backend::from_url("postgresql://h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::from_url("MYSQL://h/db"), Some(Backend::MySql));
        assert_eq!(Backend::from_url("redis://h"), None);
        assert_eq!(Backend::from_url("/tmp/file.db"), None);
    }

    #[test]
    fn passwords_never_survive_redaction() {
        assert_eq!(
            redact_password("postgres://katib:s3cret@db.example:5432/katib?sslmode=disable"),
            "postgres://katib:***@db.example:5432/katib"
        );
        assert_eq!(
            redact_password("mysql://root:p@ss:word@127.0.0.1/test"),
            "mysql://root:***@127.0.0.1/test"
        );
        assert_eq!(
            redact_password("postgres://u@h/db?password=s3cret"),
            "postgres://u@h/db"
        );
        assert_eq!(
            redact_password("sqlite:///var/lib/x.db"),
            "sqlite:///var/lib/x.db"
        );
    }
}
