//! Fuzzes the TEXT parser with Katib's default regex and with a custom one, and the acceptance
//! of arbitrary `metricsFormat` regexes (Go-style literal braces are rewritten before compiling):
//! an error is fine, a panic is not.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sextant_metrics::parse::{LineFormat, MetricsParser, StreamParser};

mod common;

static PARSERS: LazyLock<[StreamParser; 2]> = LazyLock::new(|| {
    let names = [
        "loss".to_string(),
        "accuracy".to_string(),
        "a|b".to_string(),
    ];
    let custom = [r"([\w|-]+)\s*[:=]\s*(\S+)".to_string()];
    [&[][..], &custom[..]].map(|formats| {
        StreamParser::with_max_line_bytes(
            MetricsParser::new(LineFormat::Text, &names, formats).unwrap(),
            256,
        )
    })
});

fuzz_target!(|data: &[u8]| {
    match data.first().map(|first| first % 4) {
        Some(0) => {
            if let Ok(pattern) = std::str::from_utf8(&data[1..]) {
                let names = ["loss".to_string()];
                let _ = MetricsParser::new(LineFormat::Text, &names, &[pattern.to_string()]);
            }
        }
        Some(1) => common::check(&PARSERS[1], &data[1..]),
        _ => common::check(&PARSERS[0], data),
    }
});
