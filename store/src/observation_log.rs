//! The observation log: every metric value a trial reported, in the order it arrived.
//!
//! A value is kept exactly as reported (Katib reports strings, and `unavailable` is a value), with
//! a numeric copy beside it when the text parses as a finite number, so that queries and the
//! controller can compare numbers without re-parsing and without tripping on `NaN` or `1e999`.
//! One report is one transaction; its rows go in as multi-row `INSERT`s of
//! [`ROWS_PER_INSERT`] rows, which keeps the bind parameters of one statement far below every
//! backend's limit (SQLite 32766, PostgreSQL and MySQL 65535).

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use crate::error::{Error, Result};
use crate::name_column::StoredName;
use crate::store::{Store, with_pool};
use crate::time::{StoredTime, check_storable, truncate_to_microseconds};

/// Rows per `INSERT` statement: 5 bind parameters each, so 5,000 parameters per statement.
/// Large statements amortize the per-statement cost; the same text recurs, so each connection
/// prepares it once and reuses it.
pub const ROWS_PER_INSERT: usize = 1_000;

/// The longest trial or metric name, in characters: MySQL keeps names in `VARCHAR(255)`.
pub const MAX_NAME_CHARACTERS: usize = 255;

/// The longest metric value, in bytes: MySQL keeps values in `TEXT`.
pub const MAX_VALUE_BYTES: usize = 65_535;

/// One reported value of one metric of one trial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricPoint {
    /// The trial that reported it.
    pub trial_name: String,
    /// The metric's name, as the experiment's objective names it.
    pub metric_name: String,
    /// The value as reported, e.g. `0.93`, `1e-5` or `unavailable`.
    pub value: String,
    /// When it was reported; the store keeps microseconds.
    pub timestamp: DateTime<Utc>,
}

/// Which points [`Store::get_observation_log`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservationLogFilter {
    /// The trial whose points are wanted.
    pub trial_name: String,
    /// Only points of this metric, when set.
    pub metric_name: Option<String>,
    /// Only points at or after this time, when set.
    pub start_time: Option<DateTime<Utc>>,
    /// Only points at or before this time, when set.
    pub end_time: Option<DateTime<Utc>>,
}

impl ObservationLogFilter {
    /// All points of one trial.
    pub fn trial(trial_name: impl Into<String>) -> ObservationLogFilter {
        ObservationLogFilter {
            trial_name: trial_name.into(),
            metric_name: None,
            start_time: None,
            end_time: None,
        }
    }
}

/// The number a reported value stands for, when it is a finite number; `None` for `unavailable`,
/// `NaN`, infinities and anything that overflows (such as `1e999`).
pub fn numeric_value(value: &str) -> Option<f64> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|number| number.is_finite())
}

#[derive(sqlx::FromRow)]
struct ObservationRow {
    trial_name: StoredName,
    metric_name: StoredName,
    value: String,
    time: StoredTime,
}

// === impl Store: observation log ===

impl Store {
    /// Appends points reported by one trial, all or none, in one transaction; returns once it
    /// has committed. Every point's `trial_name` must be `trial_name`; times are cut to
    /// microseconds. The points are copied a chunk at a time (see
    /// [`Store::append_observation_log`]).
    pub async fn report_observation_log(
        &self,
        trial_name: &str,
        points: &[MetricPoint],
    ) -> Result<()> {
        self.append_observation_log(trial_name, points.iter().cloned().map(Ok))
            .await
    }

    /// Appends points as `points` yields them, all or none, in one transaction; returns once it
    /// has committed. At most [`ROWS_PER_INSERT`] of them are held at a time, so a large report
    /// converted on the fly (the DBManager's) never exists twice in memory. An `Err` item, or a
    /// point the store refuses, rolls back everything before it.
    pub async fn append_observation_log(
        &self,
        trial_name: &str,
        points: impl IntoIterator<Item = Result<MetricPoint>>,
    ) -> Result<()> {
        check_name("trial_name", trial_name)?;
        let mut points = points.into_iter();
        let mut taken = 0;
        let mut chunk = next_chunk(trial_name, &mut points, &mut taken)?;
        if chunk.is_empty() {
            return Ok(());
        }
        const OPERATION: &str = "insert observation log points";
        with_pool!(self, pool => {
            let mut transaction = pool
                .begin()
                .await
                .map_err(|source| self.query_error(OPERATION, source))?;
            while !chunk.is_empty() {
                let mut insert = QueryBuilder::new(
                    "INSERT INTO observation_logs (trial_name, metric_name, value, numeric_value, time) ",
                );
                insert.push_values(&chunk, |mut row, point| {
                    row.push_bind(trial_name)
                        .push_bind(point.metric_name.as_str())
                        .push_bind(point.value.as_str())
                        .push_bind(numeric_value(&point.value))
                        .push_bind(StoredTime(truncate_to_microseconds(point.timestamp)));
                });
                insert
                    .build()
                    .execute(&mut *transaction)
                    .await
                    .map_err(|source| self.query_error(OPERATION, source))?;
                // The statement borrows the chunk, which the next one replaces.
                drop(insert);
                chunk = next_chunk(trial_name, &mut points, &mut taken)?;
            }
            transaction
                .commit()
                .await
                .map_err(|source| self.query_error(OPERATION, source))
        })
    }

    /// The points that match `filter`, ordered by time and, at equal times, by arrival.
    pub async fn get_observation_log(
        &self,
        filter: &ObservationLogFilter,
    ) -> Result<Vec<MetricPoint>> {
        check_name("trial_name", &filter.trial_name)?;
        const OPERATION: &str = "read the observation log";
        let rows: Vec<ObservationRow> = with_pool!(self, pool => {
            let mut select = QueryBuilder::new(
                "SELECT trial_name, metric_name, value, time FROM observation_logs WHERE trial_name = ",
            );
            select.push_bind(filter.trial_name.as_str());
            if let Some(metric_name) = &filter.metric_name {
                select.push(" AND metric_name = ").push_bind(metric_name.as_str());
            }
            if let Some(start_time) = filter.start_time {
                select
                    .push(" AND time >= ")
                    .push_bind(StoredTime(truncate_to_microseconds(start_time)));
            }
            if let Some(end_time) = filter.end_time {
                select
                    .push(" AND time <= ")
                    .push_bind(StoredTime(truncate_to_microseconds(end_time)));
            }
            select.push(" ORDER BY time, id");
            select
                .build_query_as::<ObservationRow>()
                .fetch_all(pool)
                .await
                .map_err(|source| self.query_error(OPERATION, source))?
        });
        Ok(rows
            .into_iter()
            .map(|row| MetricPoint {
                trial_name: row.trial_name.0,
                metric_name: row.metric_name.0,
                value: row.value,
                timestamp: row.time.0,
            })
            .collect())
    }

    /// Deletes every point of a trial; returns how many there were.
    pub async fn delete_observation_log(&self, trial_name: &str) -> Result<u64> {
        check_name("trial_name", trial_name)?;
        const OPERATION: &str = "delete the observation log";
        with_pool!(self, pool => {
            let mut delete = QueryBuilder::new("DELETE FROM observation_logs WHERE trial_name = ");
            delete.push_bind(trial_name);
            delete
                .build()
                .execute(pool)
                .await
                .map(|result| result.rows_affected())
                .map_err(|source| self.query_error(OPERATION, source))
        })
    }
}

/// Refuses an empty name, one too long for MySQL, or one holding NUL (PostgreSQL text cannot).
pub(crate) fn check_name(field: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid_input(field, "must not be empty"));
    }
    let characters = name.chars().count();
    if characters > MAX_NAME_CHARACTERS {
        return Err(Error::invalid_input(
            field,
            format!("{characters} characters, more than the {MAX_NAME_CHARACTERS} allowed"),
        ));
    }
    if name.contains('\0') {
        return Err(Error::invalid_input(field, "contains a NUL character"));
    }
    Ok(())
}

/// The next at most [`ROWS_PER_INSERT`] points of a report, each checked; `taken` counts the
/// points before them, for the field path of an error.
fn next_chunk(
    trial_name: &str,
    points: &mut impl Iterator<Item = Result<MetricPoint>>,
    taken: &mut usize,
) -> Result<Vec<MetricPoint>> {
    let mut chunk = Vec::new();
    for point in points.by_ref().take(ROWS_PER_INSERT) {
        let point = point?;
        let index = *taken;
        *taken += 1;
        if point.trial_name != trial_name {
            return Err(Error::invalid_input(
                format!("points[{index}].trial_name"),
                format!(
                    "`{}` differs from the reporting trial `{trial_name}`",
                    point.trial_name
                ),
            ));
        }
        check_point(index, &point)?;
        chunk.push(point);
    }
    Ok(chunk)
}

fn check_point(index: usize, point: &MetricPoint) -> Result<()> {
    check_name(&format!("points[{index}].metric_name"), &point.metric_name)?;
    let value_field = || format!("points[{index}].value");
    if point.value.len() > MAX_VALUE_BYTES {
        return Err(Error::invalid_input(
            value_field(),
            format!(
                "{} bytes, more than the {MAX_VALUE_BYTES} allowed",
                point.value.len()
            ),
        ));
    }
    if point.value.contains('\0') {
        return Err(Error::invalid_input(
            value_field(),
            "contains a NUL character",
        ));
    }
    check_storable(point.timestamp)
        .map_err(|reason| Error::invalid_input(format!("points[{index}].timestamp"), reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_finite_numbers_get_a_numeric_value() {
        assert_eq!(numeric_value("0.5"), Some(0.5));
        assert_eq!(numeric_value(" -7.53e-05 "), Some(-7.53e-05));
        assert_eq!(numeric_value(".98"), Some(0.98));
        for value in [
            "unavailable",
            "NaN",
            "nan",
            "inf",
            "-Infinity",
            "1e999",
            "",
            "0x10",
        ] {
            assert_eq!(numeric_value(value), None, "{value:?}");
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("trial_name", "trial-1").is_ok());
        assert!(check_name("trial_name", "").is_err());
        assert!(check_name("trial_name", &"x".repeat(256)).is_err());
        assert!(check_name("trial_name", &"é".repeat(255)).is_ok());
        assert!(check_name("trial_name", "a\0b").is_err());
    }
}
