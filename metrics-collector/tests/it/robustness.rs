//! Random input for both parsers: no panic, consistent counts, and the same points however the
//! bytes are cut into chunks (a pipe may split a line anywhere).

use std::sync::LazyLock;

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use sextant_metrics::parse::{LineFormat, MetricsParser, StreamParser};

/// Bytes that are mostly noise but often contain the pieces parsers react to.
fn noisy_lines() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        prop::collection::vec(any::<u8>(), 1..8),
        Just(b"loss=".to_vec()),
        Just(b"accuracy = ".to_vec()),
        Just(b"0.5".to_vec()),
        Just(b"-7.53e-05".to_vec()),
        Just(b"1e999".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"2024-01-01T00:00:00Z ".to_vec()),
        Just(br#"{"loss": "#.to_vec()),
        Just(br#""timestamp": 1.5e9, "#.to_vec()),
        Just(b"NaN".to_vec()),
        Just(b"-Infinity".to_vec()),
        Just(b"}".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\"\"".to_vec()),
        Just(b"\\".to_vec()),
    ];
    prop::collection::vec(piece, 0..120).prop_map(|pieces| pieces.concat())
}

/// Parsers are built once and cloned: compiling the regexes dominates a case otherwise.
fn parser(format: LineFormat) -> StreamParser {
    static PARSERS: LazyLock<[StreamParser; 2]> = LazyLock::new(|| {
        let names = ["loss".to_string(), "accuracy".to_string()];
        [LineFormat::Text, LineFormat::Json].map(|format| {
            StreamParser::with_max_line_bytes(MetricsParser::new(format, &names, &[]).unwrap(), 64)
        })
    });
    match format {
        LineFormat::Text => PARSERS[0].clone(),
        LineFormat::Json => PARSERS[1].clone(),
    }
}

fn check(format: LineFormat, input: &[u8], cuts: &[usize]) -> Result<(), TestCaseError> {
    let read_time = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    let mut whole = parser(format);
    let mut whole_points = Vec::new();
    whole.feed(input, read_time, &mut whole_points);
    whole.finish(read_time, &mut whole_points);

    let mut chunked = parser(format);
    let mut chunked_points = Vec::new();
    let mut cut_points: Vec<usize> = cuts.iter().map(|cut| cut % (input.len() + 1)).collect();
    cut_points.sort_unstable();
    let mut start = 0;
    for cut in cut_points {
        chunked.feed(&input[start..cut], read_time, &mut chunked_points);
        start = cut;
    }
    chunked.feed(&input[start..], read_time, &mut chunked_points);
    chunked.finish(read_time, &mut chunked_points);

    prop_assert_eq!(&whole_points, &chunked_points);
    prop_assert_eq!(whole.stats(), chunked.stats());
    let stats = whole.stats();
    prop_assert_eq!(stats.points, whole_points.len() as u64);
    prop_assert!(stats.skipped <= stats.lines);
    prop_assert!(stats.oversized <= stats.skipped);
    prop_assert!(stats.points >= stats.lines - stats.skipped);
    for point in &whole_points {
        prop_assert!(point.name == "loss" || point.name == "accuracy");
        prop_assert!(!point.value.is_empty());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn text_parser_is_robust_and_chunking_invariant(
        input in noisy_lines(),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        check(LineFormat::Text, &input, &cuts)?;
    }

    #[test]
    fn json_parser_is_robust_and_chunking_invariant(
        input in noisy_lines(),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        check(LineFormat::Json, &input, &cuts)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..2048)) {
        check(LineFormat::Text, &input, &[])?;
        check(LineFormat::Json, &input, &[])?;
    }
}
