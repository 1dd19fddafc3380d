//! Fuzzes the JSON-lines parser: arbitrary bytes, cut anywhere, must never panic and must give
//! the same points however they are cut.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sextant_metrics::parse::{LineFormat, MetricsParser, StreamParser};

mod common;

static PARSER: LazyLock<StreamParser> = LazyLock::new(|| {
    let names = ["loss".to_string(), "accuracy".to_string()];
    StreamParser::with_max_line_bytes(
        MetricsParser::new(LineFormat::Json, &names, &[]).unwrap(),
        256,
    )
});

fuzz_target!(|data: &[u8]| {
    common::check(&PARSER, data);
});
