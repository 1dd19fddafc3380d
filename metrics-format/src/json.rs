//! Katib's JSON format: one JSON object per line.
//!
//! Every key equal to a requested metric name becomes a point; its value may be a JSON string
//! (`{"loss": "0.22"}`, what Katib accepts) or a JSON number (`{"loss": 0.22}`, which Katib
//! ignores but trainers write far more often), kept as the exact text written (`1.50` stays
//! `1.50`, `1e999` stays `1e999`). Other value types are ignored. The `timestamp` key, an RFC3339
//! string or a number of seconds since the Unix epoch, stamps every point of the line; when it is
//! missing or unusable the time of reading is used.
//!
//! Python's `json.dumps` writes non-finite floats as the bare words `NaN`, `Infinity` and
//! `-Infinity`, which are not JSON; a line that fails to parse and contains them is parsed again
//! with those words quoted, so a diverging trial's `{"loss": NaN}` is recorded as `NaN` rather
//! than lost. A line that is not a JSON object is skipped and counted (Katib's collector would
//! fail on it instead).
//!
//! Keys are matched while parsing, without building a map: values of keys that are not wanted are
//! skipped in place. A line that contains none of the names and no backslash (an escaped key
//! could spell a name) is skipped without parsing.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::Result;
use crate::{DEFAULT_MAX_LINE_BYTES, ParseStats, ParsedMetric, metric_seen, validate_metric_names};

/// The key that carries a line's timestamp.
pub const TIMESTAMP_KEY: &str = "timestamp";

/// A parser of JSON lines for a fixed set of metric names.
#[derive(Clone, Debug)]
pub struct JsonParser {
    metric_names: Vec<String>,
    /// Which of `metric_names` produced a point so far.
    seen: Vec<bool>,
    name_finders: Vec<memchr::memmem::Finder<'static>>,
    max_line_bytes: usize,
    pub(crate) stats: ParseStats,
}

impl JsonParser {
    /// Builds a parser for `metric_names`; fails when none is given or one is empty.
    pub fn new(metric_names: &[String]) -> Result<JsonParser> {
        validate_metric_names(metric_names)?;
        Ok(JsonParser {
            metric_names: metric_names.to_vec(),
            seen: vec![false; metric_names.len()],
            name_finders: metric_names
                .iter()
                .map(|name| memchr::memmem::Finder::new(name.as_bytes()).into_owned())
                .collect(),
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            stats: ParseStats::default(),
        })
    }

    /// Skips lines longer than `max_line_bytes` instead of [`DEFAULT_MAX_LINE_BYTES`].
    pub fn with_max_line_bytes(mut self, max_line_bytes: usize) -> JsonParser {
        self.max_line_bytes = max_line_bytes;
        self
    }

    /// Parses one line (without its terminator), appending its points to `points`.
    pub fn parse_line(
        &mut self,
        line: &[u8],
        read_time: DateTime<Utc>,
        points: &mut Vec<ParsedMetric>,
    ) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        self.stats.lines += 1;
        if line.len() > self.max_line_bytes {
            self.stats.skipped += 1;
            self.stats.oversized += 1;
            return;
        }
        let may_hold_a_name = memchr::memchr(b'\\', line).is_some()
            || self
                .name_finders
                .iter()
                .any(|finder| finder.find(line).is_some());
        if !may_hold_a_name {
            self.stats.skipped += 1;
            return;
        }
        let text = String::from_utf8_lossy(line);
        let points_before = points.len();
        let parsed = parse_object(&text, &self.metric_names, read_time, points).or_else(|_| {
            points.truncate(points_before);
            match quote_non_finite_words(&text) {
                Some(quoted) => parse_object(&quoted, &self.metric_names, read_time, points),
                None => Ok(()),
            }
        });
        if parsed.is_err() {
            points.truncate(points_before);
        }
        for point in &points[points_before..] {
            if let Some(index) = self
                .metric_names
                .iter()
                .position(|name| *name == point.name)
            {
                self.seen[index] = true;
            }
        }
        let produced = (points.len() - points_before) as u64;
        self.stats.points += produced;
        if produced == 0 {
            self.stats.skipped += 1;
        }
    }

    /// The counts so far.
    pub fn stats(&self) -> ParseStats {
        self.stats
    }

    /// Whether `name` produced at least one point so far.
    pub fn metric_seen(&self, name: &str) -> bool {
        metric_seen(&self.metric_names, &self.seen, name)
    }
}

/// Parses `text` as one JSON object, appending a point per wanted key.
fn parse_object(
    text: &str,
    metric_names: &[String],
    read_time: DateTime<Utc>,
    points: &mut Vec<ParsedMetric>,
) -> serde_json::Result<()> {
    let points_before = points.len();
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let timestamp = ObjectVisitor {
        metric_names,
        points,
    }
    .deserialize(&mut deserializer)?;
    deserializer.end()?;
    if let Some(timestamp) = timestamp {
        for point in &mut points[points_before..] {
            point.timestamp = timestamp;
        }
    } else {
        for point in &mut points[points_before..] {
            point.timestamp = read_time;
        }
    }
    Ok(())
}

/// Walks one object's entries; yields the line's own timestamp, if it has a usable one.
struct ObjectVisitor<'a> {
    metric_names: &'a [String],
    points: &'a mut Vec<ParsedMetric>,
}

impl<'de> DeserializeSeed<'de> for ObjectVisitor<'_> {
    type Value = Option<DateTime<Utc>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectVisitor<'_> {
    type Value = Option<DateTime<Utc>>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object of metrics")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut timestamp = None;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if key == TIMESTAMP_KEY {
                let raw: &RawValue = map.next_value()?;
                timestamp = parse_timestamp(raw.get());
            } else if let Some(name) = self.metric_names.iter().find(|name| **name == key) {
                let raw: &RawValue = map.next_value()?;
                if let Some(value) = scalar_text(raw.get()) {
                    self.points.push(ParsedMetric {
                        name: name.clone(),
                        value,
                        // Replaced once the whole object, and so its timestamp, has been read.
                        timestamp: DateTime::UNIX_EPOCH,
                    });
                }
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(timestamp)
    }
}

/// Deserializes a key, borrowing it from the line when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string key")
    }

    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(key))
    }

    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key.to_string()))
    }
}

/// The text of a string or number value, as written; `None` for other types and for strings that
/// are empty once trimmed (as the TEXT parser drops empty values).
fn scalar_text(raw: &str) -> Option<String> {
    match raw.as_bytes().first()? {
        b'"' => serde_json::from_str::<String>(raw)
            .ok()
            .map(|value| value.trim().to_string())
            .filter(|value| !value.is_empty()),
        b'-' | b'0'..=b'9' => Some(raw.to_string()),
        _ => None,
    }
}

/// A timestamp from an RFC3339 string or a number of seconds since the Unix epoch.
fn parse_timestamp(raw: &str) -> Option<DateTime<Utc>> {
    if raw.starts_with('"') {
        let text: String = serde_json::from_str(raw).ok()?;
        return DateTime::parse_from_rfc3339(text.trim())
            .ok()
            .map(|timestamp| timestamp.with_timezone(&Utc));
    }
    let seconds: f64 = raw.parse().ok()?;
    if !seconds.is_finite() {
        return None;
    }
    let whole_seconds = seconds.floor();
    // The fraction is in [0, 1); rounding may reach 1e9, which chrono rejects, so clamp it.
    let nanoseconds = (((seconds - whole_seconds) * 1e9).round() as u32).min(999_999_999);
    // `as` saturates for values beyond i64, and chrono rejects those as out of range.
    DateTime::from_timestamp(whole_seconds as i64, nanoseconds)
}

/// `text` with the bare words `NaN`, `Infinity` and `-Infinity` outside strings quoted, or `None`
/// when there are none.
fn quote_non_finite_words(text: &str) -> Option<String> {
    const WORDS: [&str; 3] = ["-Infinity", "Infinity", "NaN"];
    let bytes = text.as_bytes();
    let mut quoted = Vec::with_capacity(bytes.len() + 8);
    let mut in_string = false;
    let mut escaped = false;
    let mut changed = false;
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
        } else if byte == b'"' {
            in_string = true;
        } else if let Some(word) = WORDS
            .iter()
            .find(|word| bytes[index..].starts_with(word.as_bytes()))
        {
            quoted.push(b'"');
            quoted.extend_from_slice(word.as_bytes());
            quoted.push(b'"');
            index += word.len();
            changed = true;
            continue;
        }
        quoted.push(byte);
        index += 1;
    }
    // Only ASCII quotes were inserted, at ASCII positions, so the bytes stay valid UTF-8.
    changed.then(|| String::from_utf8(quoted).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn read_time() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
    }

    fn parse(lines: &[&[u8]]) -> (Vec<ParsedMetric>, ParseStats) {
        let names = ["loss".to_string(), "accuracy".to_string()];
        let mut parser = JsonParser::new(&names).unwrap();
        let mut points = Vec::new();
        for line in lines {
            parser.parse_line(line, read_time(), &mut points);
        }
        (points, parser.stats())
    }

    fn values(points: &[ParsedMetric]) -> Vec<(&str, &str)> {
        points
            .iter()
            .map(|point| (point.name.as_str(), point.value.as_str()))
            .collect()
    }

    #[test]
    fn string_and_number_values_keep_their_text() {
        let (points, _) = parse(&[br#"{"loss": "0.22", "accuracy": 1.50, "epoch": 3}"#]);
        assert_eq!(values(&points), [("loss", "0.22"), ("accuracy", "1.50")]);
        assert!(points.iter().all(|point| point.timestamp == read_time()));
    }

    #[test]
    fn rfc3339_and_epoch_timestamps_stamp_every_point() {
        let (points, _) = parse(&[
            br#"{"loss": 1, "timestamp": "2024-05-06T07:08:09.25Z", "accuracy": 2}"#,
            br#"{"timestamp": 1700000000.5, "loss": 3}"#,
            br#"{"timestamp": 1700000000, "loss": 4}"#,
            br#"{"timestamp": "yesterday", "loss": 5}"#,
            br#"{"timestamp": 1e300, "loss": 6}"#,
        ]);
        let stamps: Vec<String> = points
            .iter()
            .map(|point| point.timestamp.to_rfc3339())
            .collect();
        assert_eq!(
            stamps,
            [
                "2024-05-06T07:08:09.250+00:00",
                "2024-05-06T07:08:09.250+00:00",
                "2023-11-14T22:13:20.500+00:00",
                "2023-11-14T22:13:20+00:00",
                "2026-01-02T03:04:05+00:00",
                "2026-01-02T03:04:05+00:00",
            ]
        );
    }

    #[test]
    fn python_non_finite_words_are_kept() {
        let (points, _) = parse(&[
            br#"{"loss": NaN, "accuracy": -Infinity, "note": "NaN is \"bad\""}"#,
            br#"{"loss": Infinity}"#,
        ]);
        assert_eq!(
            values(&points),
            [
                ("loss", "NaN"),
                ("accuracy", "-Infinity"),
                ("loss", "Infinity")
            ]
        );
    }

    #[test]
    fn huge_exponents_survive() {
        let (points, _) = parse(&[br#"{"loss": 1e999, "other": -1e99999}"#]);
        assert_eq!(values(&points), [("loss", "1e999")]);
    }

    #[test]
    fn lines_that_are_not_metric_objects_are_skipped_and_counted() {
        let (points, stats) = parse(&[
            b"Epoch 1/10",
            b"[\"loss\", 1]",
            br#"{"loss": 0.5"#,
            br#"{"loss": 0.5} trailing"#,
            br#"{"loss": true, "accuracy": null}"#,
            br#"{"loss": "", "accuracy": "  "}"#,
            br#"{"lr": 0.1}"#,
            br#"{"loss": 0.5}"#,
            b"   ",
        ]);
        assert_eq!(values(&points), [("loss", "0.5")]);
        assert_eq!(
            stats,
            ParseStats {
                lines: 8,
                points: 1,
                skipped: 7,
                oversized: 0
            }
        );
    }

    #[test]
    fn escaped_keys_and_invalid_utf8_are_handled() {
        let (points, stats) = parse(&[
            br#"{"\u006coss": "0.1"}"#,
            b"{\"loss\": \"0.\xff2\", \"x\xfe\": 1}",
        ]);
        assert_eq!(values(&points), [("loss", "0.1"), ("loss", "0.\u{fffd}2")]);
        assert_eq!(stats.skipped, 0);
    }

    #[test]
    fn oversized_lines_are_skipped() {
        let names = ["loss".to_string()];
        let mut parser = JsonParser::new(&names).unwrap().with_max_line_bytes(12);
        let mut points = Vec::new();
        parser.parse_line(br#"{"loss": 1}"#, read_time(), &mut points);
        parser.parse_line(br#"{"loss": 12}"#, read_time(), &mut points);
        parser.parse_line(br#"{"loss": 123}"#, read_time(), &mut points);
        assert_eq!(points.len(), 2);
        assert_eq!(parser.stats().oversized, 1);
    }
}
