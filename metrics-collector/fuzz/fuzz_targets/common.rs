//! The checks both targets run: parse the input whole and cut at a data-chosen place, and
//! require the same points and counts either way, and counts that add up.

use chrono::{DateTime, TimeZone, Utc};
use sextant_metrics::parse::StreamParser;

pub fn check(prototype: &StreamParser, data: &[u8]) {
    let read_time: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    let (cut_byte, input) = match data.split_first() {
        Some((first, rest)) => (*first as usize, rest),
        None => (0, data),
    };
    let mut whole = prototype.clone();
    let mut whole_points = Vec::new();
    whole.feed(input, read_time, &mut whole_points);
    whole.finish(read_time, &mut whole_points);

    let cut = if input.is_empty() {
        0
    } else {
        cut_byte * input.len() / 256
    };
    let mut chunked = prototype.clone();
    let mut chunked_points = Vec::new();
    chunked.feed(&input[..cut], read_time, &mut chunked_points);
    chunked.feed(&input[cut..], read_time, &mut chunked_points);
    chunked.finish(read_time, &mut chunked_points);

    assert_eq!(whole_points, chunked_points);
    assert_eq!(whole.stats(), chunked.stats());
    let stats = whole.stats();
    assert_eq!(stats.points, whole_points.len() as u64);
    assert!(stats.oversized <= stats.skipped && stats.skipped <= stats.lines);
    assert!(stats.points >= stats.lines - stats.skipped);
    assert!(whole_points.iter().all(|point| !point.value.is_empty()));
}
