//! Katib's TEXT format: `name=value` pairs found by regexes in free-form output.
//!
//! Semantics follow Katib's file metrics collector (`pkg/metricscollector/v1beta1/
//! file-metricscollector`):
//! - the default regex is [`KATIB_DEFAULT_METRICS_FORMAT`]; custom `metricsFormat` regexes replace
//!   it, each with group 1 the name and group 2 the value;
//! - a line is examined only if it contains one of the requested names as a substring, and then
//!   every non-overlapping match of every regex in the whole line is taken;
//! - name and value are trimmed of whitespace, and only names equal to a requested one are kept;
//! - a line that starts with an RFC3339 timestamp followed by a space is stamped with it;
//! - regexes are Go's (RE2 syntax): they are rewritten where Rust's regex crate reads the same
//!   text differently (literal `{`, ASCII-only `\w`, `\d`, `\s`), see `go_regex_to_rust`.
//!
//! Where we differ, on purpose: a line without a timestamp is stamped with the time it was read
//! (Katib uses `0001-01-01T00:00:00Z`, which makes "latest" meaningless), and a match with an
//! empty value is dropped (the default regex matches `loss=nan` with an empty value, which Katib
//! would store as an unusable empty string).
//!
//! The substring check runs on bytes with one multi-literal regex (the regex crate picks a SIMD
//! literal searcher), so lines without metrics cost a scan and no allocation.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use regex::{CaptureLocations, Regex};

use crate::{DEFAULT_MAX_LINE_BYTES, ParseStats, ParsedMetric, metric_seen, validate_metric_names};
use crate::{FormatError as Error, Result};

/// Katib's default TEXT regex, character for character (Katib's `DefaultFilter`); compiled with
/// Go's meaning (ASCII `\w`, `\d`, `\s`) like every `metricsFormat`.
pub const KATIB_DEFAULT_METRICS_FORMAT: &str = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)";

/// A parser of the TEXT format for a fixed set of metric names and regexes.
#[derive(Clone, Debug)]
pub struct TextParser {
    metric_names: Vec<String>,
    /// Which of `metric_names` produced a point so far.
    seen: Vec<bool>,
    /// Matches any requested name anywhere in a line.
    name_prefilter: regex::bytes::Regex,
    /// Each regex with its reusable capture slots, so matching allocates nothing.
    formats: Vec<(Regex, CaptureLocations)>,
    max_line_bytes: usize,
    pub(crate) stats: ParseStats,
}

impl TextParser {
    /// Builds a parser for `metric_names` with `metrics_formats` (Katib's default regex when
    /// empty).
    ///
    /// Fails when a name is empty, a regex does not compile, or a regex has fewer than two
    /// capture groups; the error names the regex.
    pub fn new(metric_names: &[String], metrics_formats: &[String]) -> Result<TextParser> {
        validate_metric_names(metric_names)?;
        let default_format = [KATIB_DEFAULT_METRICS_FORMAT.to_string()];
        let sources = if metrics_formats.is_empty() {
            &default_format[..]
        } else {
            metrics_formats
        };
        let mut formats = Vec::with_capacity(sources.len());
        for source in sources {
            let regex = Regex::new(&go_regex_to_rust(source)).map_err(|error| {
                Error::InvalidMetricsFormat {
                    regex: source.clone(),
                    source: error,
                }
            })?;
            // `captures_len` counts the implicit whole-match group 0.
            let groups = regex.captures_len() - 1;
            if groups < 2 {
                return Err(Error::MetricsFormatNeedsTwoGroups {
                    regex: source.clone(),
                    groups,
                });
            }
            let locations = regex.capture_locations();
            formats.push((regex, locations));
        }
        let alternation = metric_names
            .iter()
            .map(|name| regex::escape(name))
            .collect::<Vec<_>>()
            .join("|");
        // Escaped literals always compile; a failure here would be a bug in `regex::escape`.
        let name_prefilter = regex::bytes::Regex::new(&alternation).map_err(|error| {
            Error::InvalidMetricsFormat {
                regex: alternation.clone(),
                source: error,
            }
        })?;
        Ok(TextParser {
            metric_names: metric_names.to_vec(),
            seen: vec![false; metric_names.len()],
            name_prefilter,
            formats,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            stats: ParseStats::default(),
        })
    }

    /// Skips lines longer than `max_line_bytes` instead of [`DEFAULT_MAX_LINE_BYTES`].
    pub fn with_max_line_bytes(mut self, max_line_bytes: usize) -> TextParser {
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
        if line.is_empty() {
            return;
        }
        self.stats.lines += 1;
        if line.len() > self.max_line_bytes {
            self.stats.skipped += 1;
            self.stats.oversized += 1;
            return;
        }
        if !self.name_prefilter.is_match(line) {
            self.stats.skipped += 1;
            return;
        }
        let text = String::from_utf8_lossy(line);
        let timestamp = leading_timestamp(&text).unwrap_or(read_time);
        let points_before = points.len();
        for (regex, locations) in &mut self.formats {
            let mut search_start = 0;
            while search_start <= text.len() {
                let Some(whole) = regex.captures_read_at(locations, &text, search_start) else {
                    break;
                };
                if let (Some((name_start, name_end)), Some((value_start, value_end))) =
                    (locations.get(1), locations.get(2))
                {
                    let name = text[name_start..name_end].trim();
                    let value = text[value_start..value_end].trim();
                    let wanted = self.metric_names.iter().position(|wanted| wanted == name);
                    if let Some(index) = wanted.filter(|_| !value.is_empty()) {
                        self.seen[index] = true;
                        points.push(ParsedMetric {
                            name: name.to_string(),
                            value: value.to_string(),
                            timestamp,
                        });
                    }
                }
                search_start = if whole.end() > whole.start() {
                    whole.end()
                } else {
                    // An empty match: step over one character so the search advances.
                    text[whole.end()..]
                        .chars()
                        .next()
                        .map_or(text.len() + 1, |next| whole.end() + next.len_utf8())
                };
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

/// `pattern`, written in Go's regex syntax as Katib's are, rewritten so Rust's regex crate gives
/// it Go's meaning.
///
/// Two differences matter for metric regexes:
/// - in Go a `{` that does not open a counted repetition (`{n}`, `{n,}`, `{n,m}`) is a literal;
///   Katib's own documented example `{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}`
///   relies on it, and Rust rejects it, so such a brace is escaped;
/// - Go's `\w`, `\d`, `\s` (and their negations) are ASCII classes, Rust's are Unicode, so they
///   are spelled out in ASCII (`[0-9A-Za-z_]`, `[0-9]`, `[\t\n\f\r ]`): `précision=٣` yields what
///   Katib would yield, and ASCII classes are also faster to match.
///
/// Other escapes and the insides of character classes are copied untouched.
fn go_regex_to_rust(pattern: &str) -> Cow<'_, str> {
    if !pattern.contains(['{', '\\']) {
        return Cow::Borrowed(pattern);
    }
    let mut rewritten = String::with_capacity(pattern.len() + 32);
    let mut characters = pattern.char_indices().peekable();
    let mut in_class = false;
    while let Some((index, character)) = characters.next() {
        match character {
            '\\' => {
                let Some((_, escaped)) = characters.next() else {
                    rewritten.push(character);
                    continue;
                };
                match (ascii_class(escaped), in_class) {
                    (Some((members, false)), true) => rewritten.push_str(members),
                    (Some((members, false)), false) => {
                        rewritten.push('[');
                        rewritten.push_str(members);
                        rewritten.push(']');
                    }
                    // A negated class nests as a class of its own, inside a class or not.
                    (Some((members, true)), _) => {
                        rewritten.push_str("[^");
                        rewritten.push_str(members);
                        rewritten.push(']');
                    }
                    (None, _) => {
                        rewritten.push(character);
                        rewritten.push(escaped);
                    }
                }
                continue;
            }
            '[' if !in_class => {
                in_class = true;
                rewritten.push(character);
                // A `]` right after `[` or `[^` is a member of the class, not its end.
                if let Some(&(_, '^')) = characters.peek() {
                    rewritten.push('^');
                    characters.next();
                }
                if let Some(&(_, ']')) = characters.peek() {
                    rewritten.push(']');
                    characters.next();
                }
                continue;
            }
            '[' if pattern[index..].starts_with("[:") => {
                // A POSIX class such as `[:alpha:]` inside a bracket class.
                let length = pattern[index..].find(":]").map_or(1, |end| end + 2);
                rewritten.push_str(&pattern[index..index + length]);
                for _ in 1..pattern[index..index + length].chars().count() {
                    characters.next();
                }
                continue;
            }
            ']' if in_class => in_class = false,
            '{' if !in_class && !opens_counted_repetition(&pattern[index..]) => {
                rewritten.push('\\');
            }
            _ => {}
        }
        rewritten.push(character);
    }
    Cow::Owned(rewritten)
}

/// The ASCII members of Go's Perl class `\<letter>`, and whether it is negated.
fn ascii_class(letter: char) -> Option<(&'static str, bool)> {
    // `\x20` rather than a space, so the class survives the `x` (verbose) flag.
    const WORD: &str = "0-9A-Za-z_";
    const DIGIT: &str = "0-9";
    const SPACE: &str = r"\t\n\f\r\x20";
    match letter {
        'w' => Some((WORD, false)),
        'W' => Some((WORD, true)),
        'd' => Some((DIGIT, false)),
        'D' => Some((DIGIT, true)),
        's' => Some((SPACE, false)),
        'S' => Some((SPACE, true)),
        _ => None,
    }
}

/// Whether `text` starts with `{n}`, `{n,}` or `{n,m}`.
fn opens_counted_repetition(text: &str) -> bool {
    let Some(inner) = text.strip_prefix('{') else {
        return false;
    };
    let Some(end) = inner.find('}') else {
        return false;
    };
    let (minimum, maximum) = match inner[..end].split_once(',') {
        Some((minimum, maximum)) => (minimum, maximum),
        None => (&inner[..end], ""),
    };
    let all_digits = |text: &str| text.bytes().all(|byte| byte.is_ascii_digit());
    !minimum.is_empty() && all_digits(minimum) && all_digits(maximum)
}

/// The RFC3339 timestamp that starts `text` and is followed by a space, if any.
fn leading_timestamp(text: &str) -> Option<DateTime<Utc>> {
    // Every RFC3339 timestamp starts with a digit of the year; this keeps the common case cheap.
    if !text.as_bytes().first()?.is_ascii_digit() {
        return None;
    }
    let (token, _) = text.split_once(' ')?;
    DateTime::parse_from_rfc3339(token)
        .ok()
        .map(|timestamp| timestamp.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn read_time() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
    }

    fn parser(names: &[&str], formats: &[&str]) -> TextParser {
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let formats: Vec<String> = formats.iter().map(|format| format.to_string()).collect();
        TextParser::new(&names, &formats).unwrap()
    }

    fn pairs(parser: &mut TextParser, line: &str) -> Vec<(String, String)> {
        let mut points = Vec::new();
        parser.parse_line(line.as_bytes(), read_time(), &mut points);
        points
            .into_iter()
            .map(|point| (point.name, point.value))
            .collect()
    }

    fn pair(name: &str, value: &str) -> (String, String) {
        (name.to_string(), value.to_string())
    }

    #[test]
    fn katib_examples_parse() {
        let mut parser = parser(&["loss", "accuracy", "Score"], &[]);
        assert_eq!(pairs(&mut parser, "loss=0.3"), [pair("loss", "0.3")]);
        assert_eq!(
            pairs(&mut parser, "accuracy=.98"),
            [pair("accuracy", ".98")]
        );
        assert_eq!(
            pairs(&mut parser, "Score=-7.53e-05"),
            [pair("Score", "-7.53e-05")]
        );
        assert_eq!(pairs(&mut parser, "Score=1E0"), [pair("Score", "1E0")]);
    }

    #[test]
    fn all_matches_of_a_line_are_taken_with_spaces_around_the_sign() {
        let mut parser = parser(&["loss", "accuracy"], &[]);
        assert_eq!(
            pairs(&mut parser, "epoch 3: loss = 0.25, accuracy= 0.91 lr=0.1"),
            [pair("loss", "0.25"), pair("accuracy", "0.91")]
        );
    }

    #[test]
    fn names_with_dash_and_pipe_are_matched_whole() {
        let mut parser = parser(&["val-loss", "a|b"], &[]);
        assert_eq!(
            pairs(&mut parser, "val-loss=0.7 a|b=3"),
            [pair("val-loss", "0.7"), pair("a|b", "3")]
        );
        // `loss` is a substring of `val-loss`, but the regex takes the whole name.
        let mut only_loss = self::parser(&["loss"], &[]);
        assert!(pairs(&mut only_loss, "val-loss=0.7").is_empty());
    }

    #[test]
    fn custom_format_with_katib_example_regex() {
        let mut parser = parser(
            &["loss", "accuracy"],
            &[r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}"],
        );
        assert_eq!(
            pairs(
                &mut parser,
                "{metricName: loss, metricValue: -0.25} {metricName: accuracy, metricValue: 9}"
            ),
            [pair("loss", "-0.25"), pair("accuracy", "9")]
        );
        // The default regex is replaced, not added to.
        assert!(pairs(&mut parser, "loss=0.3").is_empty());
    }

    #[test]
    fn go_literal_braces_are_escaped_and_counted_repetitions_kept() {
        assert_eq!(go_regex_to_rust(r"(a)=(b)"), r"(a)=(b)");
        assert_eq!(go_regex_to_rust(r"{x: (a+)}"), r"\{x: (a+)}");
        assert_eq!(
            go_regex_to_rust(r"(a{2})(a{1,}b{2,3})"),
            r"(a{2})(a{1,}b{2,3})"
        );
        assert_eq!(go_regex_to_rust(r"a{,2}a{ 1}a{2"), r"a\{,2}a\{ 1}a\{2");
        assert_eq!(
            go_regex_to_rust(r"\{[{]}[]{][^]{][[:alpha:]{]{"),
            r"\{[{]}[]{][^]{][[:alpha:]{]\{"
        );
        let mut parser = parser(&["loss"], &[r"(\w+)\{(\d{1,3})\}"]);
        assert_eq!(pairs(&mut parser, "loss{12}"), [pair("loss", "12")]);
    }

    #[test]
    fn perl_classes_are_ascii_as_in_go() {
        assert_eq!(go_regex_to_rust(r"[\w|-]+\d"), r"[0-9A-Za-z_|-]+[0-9]");
        assert_eq!(
            go_regex_to_rust(r"\S\s[\D]\."),
            r"[^\t\n\f\r\x20][\t\n\f\r\x20][[^0-9]]\."
        );
        let mut default = parser(&["cision", "précision", "loss"], &[]);
        assert_eq!(
            pairs(&mut default, "précision=0.5"),
            [pair("cision", "0.5")]
        );
        assert!(pairs(&mut default, "loss=\u{663}").is_empty());
        let mut verbose = parser(&["loss"], &[r"(?x) (\w+) \s* : \s* (\S+)"]);
        assert_eq!(pairs(&mut verbose, "loss : 0.5"), [pair("loss", "0.5")]);
    }

    #[test]
    fn several_custom_formats_all_apply() {
        let mut parser = parser(&["loss"], &[r"(\w+)=(\S+)", r"(\w+): (\S+)"]);
        assert_eq!(
            pairs(&mut parser, "loss=nan loss: inf"),
            [pair("loss", "nan"), pair("loss", "inf")]
        );
    }

    #[test]
    fn special_values_are_kept_as_reported() {
        let mut parser = parser(&["loss"], &[r"(\w+)=(\S+)"]);
        for value in ["NaN", "inf", "-Infinity", "1e999", "-1e-999"] {
            assert_eq!(
                pairs(&mut parser, &format!("loss={value}")),
                [pair("loss", value)]
            );
        }
        let mut default = self::parser(&["loss"], &[]);
        assert_eq!(pairs(&mut default, "loss=1e999"), [pair("loss", "1e999")]);
        // The default regex matches `nan` as an empty value, which is dropped.
        assert!(pairs(&mut default, "loss=nan").is_empty());
        assert_eq!(default.stats().skipped, 1);
    }

    #[test]
    fn leading_rfc3339_timestamp_is_used() {
        let mut parser = parser(&["loss"], &[]);
        let mut points = Vec::new();
        parser.parse_line(
            b"2024-05-06T07:08:09.5+02:00 loss=0.1",
            read_time(),
            &mut points,
        );
        parser.parse_line(b"2024-05-06T07:08:09Z loss=0.2", read_time(), &mut points);
        parser.parse_line(b"loss=0.3", read_time(), &mut points);
        parser.parse_line(b"2024-13-06T07:08:09Z loss=0.4", read_time(), &mut points);
        let stamps: Vec<String> = points
            .iter()
            .map(|point| point.timestamp.to_rfc3339())
            .collect();
        assert_eq!(
            stamps,
            [
                "2024-05-06T05:08:09.500+00:00",
                "2024-05-06T07:08:09+00:00",
                "2026-01-02T03:04:05+00:00",
                "2026-01-02T03:04:05+00:00",
            ]
        );
    }

    #[test]
    fn lines_without_metrics_are_skipped_and_counted() {
        let mut parser = parser(&["loss"], &[]);
        let mut points = Vec::new();
        for line in [
            &b"Epoch 1/10"[..],
            b"loss went down",
            b"lossy=0.3",
            b"loss=0.3",
            b"",
        ] {
            parser.parse_line(line, read_time(), &mut points);
        }
        assert_eq!(
            parser.stats(),
            ParseStats {
                lines: 4,
                points: 1,
                skipped: 3,
                oversized: 0
            }
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let mut parser = parser(&["loss"], &[]);
        let mut points = Vec::new();
        parser.parse_line(b"\xff\xfe loss=0.5 \xc3", read_time(), &mut points);
        parser.parse_line(b"lo\xffss=0.5", read_time(), &mut points);
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].value, "0.5");
    }

    #[test]
    fn a_ten_megabyte_line_is_skipped_as_oversized() {
        let mut parser = parser(&["loss"], &[]);
        let mut line = "loss=0.1 ".repeat(10 * 1024 * 1024 / 9).into_bytes();
        line.extend_from_slice(b"loss=0.2");
        let mut points = Vec::new();
        parser.parse_line(&line, read_time(), &mut points);
        assert!(points.is_empty());
        assert_eq!(parser.stats().oversized, 1);
        parser.parse_line(b"loss=0.3", read_time(), &mut points);
        assert_eq!(points.len(), 1);
        let mut tight = self::parser(&["loss"], &[]).with_max_line_bytes(8);
        tight.parse_line(b"loss=0.3", read_time(), &mut points);
        tight.parse_line(b"loss=0.25", read_time(), &mut points);
        assert_eq!(points.len(), 2);
        assert_eq!(tight.stats().oversized, 1);
    }

    #[test]
    fn bad_regexes_are_typed_errors_naming_the_regex() {
        let names = vec!["loss".to_string()];
        let error = TextParser::new(&names, &["(unclosed".to_string()]).unwrap_err();
        assert!(
            matches!(&error, Error::InvalidMetricsFormat { regex, .. } if regex == "(unclosed")
        );
        assert!(error.to_string().contains("`(unclosed`"));
        let error = TextParser::new(&names, &[r"(\w+)=\S+".to_string()]).unwrap_err();
        assert!(matches!(
            &error,
            Error::MetricsFormatNeedsTwoGroups { regex, groups: 1 } if regex == r"(\w+)=\S+"
        ));
    }

    #[test]
    fn empty_and_missing_names_are_errors() {
        assert!(matches!(
            TextParser::new(&[], &[]),
            Err(Error::NoMetricNames)
        ));
        assert!(matches!(
            TextParser::new(&["loss".to_string(), String::new()], &[]),
            Err(Error::EmptyMetricName { index: 1 })
        ));
    }

    #[test]
    fn names_with_regex_metacharacters_are_literal_in_the_prefilter() {
        let mut parser = parser(&["a.b"], &[r"([\w.]+)=(\S+)"]);
        assert!(pairs(&mut parser, "axb=1").is_empty());
        assert_eq!(pairs(&mut parser, "a.b=1"), [pair("a.b", "1")]);
    }
}
