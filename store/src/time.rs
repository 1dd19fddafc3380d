//! Time stamps as the store keeps them: UTC, microsecond precision, years 1 to 9999.
//!
//! Katib's DB manager keeps observation times in MySQL `DATETIME(6)`, so microseconds are the
//! precision every backend can hold; finer digits are cut (not rounded, as Katib cuts them when it
//! formats the value for MySQL). Years outside 1..=9999 are refused because RFC 3339 has four-digit
//! years and MySQL cannot hold year 0. PostgreSQL (`TIMESTAMPTZ`) and MySQL (`DATETIME(6)`) store
//! the value natively; SQLite has no time type, so [`StoredTime`] writes a fixed-width text form
//! whose byte order is time order, which keeps range filters and `ORDER BY` correct there.

use chrono::{DateTime, Datelike, NaiveDateTime, SecondsFormat, Timelike, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::mysql::{MySql, MySqlTypeInfo, MySqlValueRef};
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef, Postgres};
use sqlx::sqlite::{Sqlite, SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Type};

/// The fixed-width text form of times in SQLite: always six fraction digits and a `Z`, so that
/// comparing the text compares the times. Written and read by hand ([`FixedWidthTime`],
/// [`from_sqlite_text`]) because chrono's format strings are interpreted anew for every value,
/// which showed as a tenth of the time of a large report.
const SQLITE_TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// A time in the fixed-width RFC 3339 form (see [`SQLITE_TIME_FORMAT`]), cut to microseconds:
/// how SQLite keeps times, and how the server writes them in its responses, where chrono's own
/// serialization (through `core::fmt`, a character at a time) showed in lists of 10,000 trials.
#[derive(Clone, Copy)]
pub struct FixedWidthTime([u8; 27]);

impl FixedWidthTime {
    /// The form of `time`, or `None` for a year outside 0 to 9999 (which has no four digits).
    pub fn of(time: DateTime<Utc>) -> Option<FixedWidthTime> {
        let year = u32::try_from(time.year())
            .ok()
            .filter(|year| *year <= 9999)?;
        // chrono represents a leap second as second 59 with 1e9 or more nanoseconds; it prints
        // it as second 60, and so does this.
        let (second, nanosecond) = match time.nanosecond() {
            leap if leap >= 1_000_000_000 => (60, leap - 1_000_000_000),
            nanosecond => (time.second(), nanosecond),
        };
        let mut text = *b"0000-00-00T00:00:00.000000Z";
        let mut digits = |at: usize, width: usize, mut value: u32| {
            for index in (at..at + width).rev() {
                text[index] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        digits(0, 4, year);
        digits(5, 2, time.month());
        digits(8, 2, time.day());
        digits(11, 2, time.hour());
        digits(14, 2, time.minute());
        digits(17, 2, second);
        digits(20, 6, nanosecond / 1_000);
        Some(FixedWidthTime(text))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and separators are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Serializes a time in the fixed-width form (chrono's form for a year without four digits);
/// for `#[serde(serialize_with = ...)]`.
pub fn serialize_fixed_width<S: serde::Serializer>(
    time: &DateTime<Utc>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match FixedWidthTime::of(*time) {
        Some(text) => serializer.serialize_str(text.as_str()),
        None => serde::Serialize::serialize(time, serializer),
    }
}

/// [`serialize_fixed_width`] for an optional time.
pub fn serialize_fixed_width_option<S: serde::Serializer>(
    time: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => serialize_fixed_width(time, serializer),
        None => serializer.serialize_none(),
    }
}

/// The SQLite text form of a time (see [`SQLITE_TIME_FORMAT`]); the store refuses years it
/// cannot write so ([`check_storable`]) before any is written.
fn sqlite_text(time: DateTime<Utc>) -> String {
    match FixedWidthTime::of(time) {
        Some(text) => text.as_str().to_owned(),
        None => time.to_rfc3339_opts(SecondsFormat::Micros, true),
    }
}

/// Reads the SQLite text form back; anything else is an error naming the text. The form is
/// RFC 3339, whose parser in chrono is written by hand, so only its shape is checked here.
pub(crate) fn from_sqlite_text(text: &str) -> Result<DateTime<Utc>, String> {
    if text.len() != 27 || !text.ends_with('Z') {
        return Err(format!(
            "stored time `{text}` is malformed: expected the form {SQLITE_TIME_FORMAT}"
        ));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|error| format!("stored time `{text}` is malformed: {error}"))
}

/// Cuts a time to whole microseconds, the precision every backend stores.
pub fn truncate_to_microseconds(time: DateTime<Utc>) -> DateTime<Utc> {
    let nanosecond = time.nanosecond();
    // Cutting the nanosecond field keeps it in its valid range (including a leap second's
    // values above 1e9), so `with_nanosecond` cannot fail here; the fallback is never taken.
    time.with_nanosecond(nanosecond - nanosecond % 1_000)
        .unwrap_or(time)
}

/// Parses an RFC 3339 time stamp (any number of fraction digits, any offset) into UTC cut to
/// microseconds, refusing years the store cannot hold.
pub fn parse_rfc3339(text: &str) -> Result<DateTime<Utc>, String> {
    let parsed = DateTime::parse_from_rfc3339(text)
        .map_err(|error| format!("`{text}` is not an RFC 3339 time stamp: {error}"))?;
    let utc = parsed.with_timezone(&Utc);
    check_storable(utc).map_err(|reason| format!("`{text}`: {reason}"))?;
    Ok(truncate_to_microseconds(utc))
}

/// Refuses a time outside the years 1..=9999, which not every backend can store.
pub fn check_storable(time: DateTime<Utc>) -> Result<(), String> {
    let year = time.year();
    if (1..=9999).contains(&year) {
        Ok(())
    } else {
        Err(format!(
            "year {year} is outside the storable range 1 to 9999"
        ))
    }
}

/// Formats a time the way Go's `time.RFC3339Nano` does (Katib's DB manager prints times so):
/// UTC with `Z`, and the fraction only as long as it needs to be.
pub fn format_rfc3339(time: DateTime<Utc>) -> String {
    let mut text = time.to_rfc3339_opts(SecondsFormat::Micros, true);
    // The text ends in ".ffffffZ"; drop trailing zeros of the fraction, and the dot if none is left.
    text.pop();
    while text.ends_with('0') {
        text.pop();
    }
    if text.ends_with('.') {
        text.pop();
    }
    text.push('Z');
    text
}

/// A UTC time as a database column; see the module documentation for the form on each backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StoredTime(pub DateTime<Utc>);

// === impl StoredTime for SQLite ===

impl Type<Sqlite> for StoredTime {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl<'q> Encode<'q, Sqlite> for StoredTime {
    fn encode_by_ref(
        &self,
        arguments: &mut Vec<SqliteArgumentValue<'q>>,
    ) -> Result<IsNull, BoxDynError> {
        <String as Encode<'q, Sqlite>>::encode(sqlite_text(self.0), arguments)
    }
}

impl<'r> Decode<'r, Sqlite> for StoredTime {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<'r, Sqlite>>::decode(value)?;
        Ok(StoredTime(from_sqlite_text(text)?))
    }
}

// === impl StoredTime for PostgreSQL ===

impl Type<Postgres> for StoredTime {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for StoredTime {
    fn encode_by_ref(&self, buffer: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <DateTime<Utc> as Encode<'_, Postgres>>::encode_by_ref(&self.0, buffer)
    }
}

impl<'r> Decode<'r, Postgres> for StoredTime {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <DateTime<Utc> as Decode<'r, Postgres>>::decode(value).map(StoredTime)
    }
}

// === impl StoredTime for MySQL ===

// `DATETIME(6)` carries no zone, so the value is written and read as naive UTC; this avoids the
// session `time_zone` conversions (and the 1970..2038 range) of MySQL's `TIMESTAMP`.
impl Type<MySql> for StoredTime {
    fn type_info() -> MySqlTypeInfo {
        <NaiveDateTime as Type<MySql>>::type_info()
    }

    fn compatible(type_info: &MySqlTypeInfo) -> bool {
        <NaiveDateTime as Type<MySql>>::compatible(type_info)
    }
}

impl Encode<'_, MySql> for StoredTime {
    fn encode_by_ref(&self, buffer: &mut Vec<u8>) -> Result<IsNull, BoxDynError> {
        <NaiveDateTime as Encode<'_, MySql>>::encode_by_ref(&self.0.naive_utc(), buffer)
    }
}

impl<'r> Decode<'r, MySql> for StoredTime {
    fn decode(value: MySqlValueRef<'r>) -> Result<Self, BoxDynError> {
        <NaiveDateTime as Decode<'r, MySql>>::decode(value).map(|naive| StoredTime(naive.and_utc()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_width_form_is_chronos_format_with_six_digits() {
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_234_567_890)
            .unwrap()
            .and_utc();
        let times = [
            parse_rfc3339("0001-01-01T00:00:00Z").unwrap(),
            parse_rfc3339("2024-05-06T07:08:09.000001Z").unwrap(),
            parse_rfc3339("9999-12-31T23:59:59.999999Z").unwrap(),
            DateTime::from_timestamp(1_764_820_000, 987_654_321).unwrap(),
        ];
        for time in times {
            assert_eq!(
                FixedWidthTime::of(time).unwrap().as_str(),
                time.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
            );
        }
        assert_eq!(
            FixedWidthTime::of(leap).unwrap().as_str(),
            "2016-12-31T23:59:60.234567Z"
        );
        let far =
            parse_rfc3339("2024-05-06T07:08:09Z").unwrap() + chrono::Duration::days(3_000_000);
        assert!(FixedWidthTime::of(far).is_none());
        let written = serde_json::to_string(&Wrapped(far)).unwrap();
        assert_eq!(written, serde_json::to_string(&far).unwrap());
    }

    #[derive(serde::Serialize)]
    struct Wrapped(#[serde(serialize_with = "serialize_fixed_width")] DateTime<Utc>);

    #[test]
    fn parse_cuts_nanoseconds_and_converts_to_utc() {
        let time = parse_rfc3339("2024-05-06T07:08:09.123456789+02:00").unwrap();
        assert_eq!(format_rfc3339(time), "2024-05-06T05:08:09.123456Z");
    }

    #[test]
    fn format_trims_the_fraction_like_go_rfc3339_nano() {
        let whole = parse_rfc3339("2024-05-06T07:08:09Z").unwrap();
        assert_eq!(format_rfc3339(whole), "2024-05-06T07:08:09Z");
        let tenth = parse_rfc3339("2024-05-06T07:08:09.100Z").unwrap();
        assert_eq!(format_rfc3339(tenth), "2024-05-06T07:08:09.1Z");
        let katib_default = parse_rfc3339("0001-01-01T00:00:00Z").unwrap();
        assert_eq!(format_rfc3339(katib_default), "0001-01-01T00:00:00Z");
    }

    #[test]
    fn parse_refuses_what_is_not_rfc3339() {
        for text in [
            "",
            "yesterday",
            "2024-05-06",
            "2024-05-06 07:08",
            "1714979289",
        ] {
            assert!(parse_rfc3339(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn sqlite_text_form_sorts_like_time() {
        let earlier = parse_rfc3339("0999-12-31T23:59:59.999999Z").unwrap();
        let later = parse_rfc3339("1000-01-01T00:00:00Z").unwrap();
        let earlier_text = sqlite_text(earlier);
        let later_text = sqlite_text(later);
        assert_eq!(earlier_text, "0999-12-31T23:59:59.999999Z");
        assert_eq!(earlier_text, earlier.format(SQLITE_TIME_FORMAT).to_string());
        assert!(earlier_text < later_text);
        assert_eq!(from_sqlite_text(&earlier_text), Ok(earlier));
        assert!(from_sqlite_text("2024-01-01 00:00:00").is_err());
    }
}
