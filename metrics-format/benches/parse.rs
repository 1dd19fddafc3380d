//! Parsing throughput of the TEXT and JSON formats, in lines per second, on a realistic mix of
//! training output: mostly log lines without metrics, a quarter with metrics, some timestamped,
//! some that mention a metric name without a value.
//!
//! The goal is at least 1,000,000 TEXT lines per second on one thread. The input goes
//! through `StreamParser`, so line splitting is included, as in real use.

use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sextant_metrics_format::{LineFormat, MetricsParser, StreamParser};

const LINE_COUNT: usize = 10_000;

fn text_input() -> Vec<u8> {
    let mut input = String::new();
    for line in 0..LINE_COUNT {
        let step = line * 7;
        match line % 20 {
            0..=11 => match line % 3 {
                0 => input.push_str(&format!(
                    "INFO:root:Epoch {} step {step}/5000: saving checkpoint to /tmp/ckpt-{step}\n",
                    line / 100
                )),
                1 => input.push_str(&format!(
                    "{step}/5000 [=========>....................] - ETA: 1:02 - lr: 0.0010\n"
                )),
                _ => input
                    .push_str("WARNING:tensorflow:Callback method `on_train_batch_end` is slow\n"),
            },
            12..=16 => input.push_str(&format!(
                "epoch={} step={step} loss={:.4} accuracy={:.4}\n",
                line / 100,
                1.0 / (1.0 + line as f64),
                line as f64 / LINE_COUNT as f64
            )),
            17..=18 => input.push_str(&format!(
                "2024-05-06T07:08:{:02}.123Z loss={:.6e}\n",
                line % 60,
                1.0 / (1.0 + line as f64)
            )),
            _ => input.push_str("validation loss did not improve from the best so far\n"),
        }
    }
    input.into_bytes()
}

fn json_input() -> Vec<u8> {
    let mut input = String::new();
    for line in 0..LINE_COUNT {
        match line % 4 {
            0 => input.push_str("Saving checkpoint to /tmp/ckpt\n"),
            1 => input.push_str(&format!(
                "{{\"epoch\": {}, \"lr\": 0.001, \"grad_norm\": 1.25}}\n",
                line / 100
            )),
            2 => input.push_str(&format!(
                "{{\"epoch\": {}, \"loss\": {:.6}, \"accuracy\": \"{:.4}\", \"timestamp\": {}.25}}\n",
                line / 100,
                1.0 / (1.0 + line as f64),
                line as f64 / LINE_COUNT as f64,
                1_700_000_000 + line
            )),
            _ => input.push_str(&format!(
                "{{\"loss\": {:.6}, \"timestamp\": \"2024-05-06T07:08:09.123Z\"}}\n",
                1.0 / (1.0 + line as f64)
            )),
        }
    }
    input.into_bytes()
}

fn bench_format(criterion: &mut Criterion, format: LineFormat, name: &str, input: &[u8]) {
    let names = ["loss".to_string(), "accuracy".to_string()];
    let mut parser = StreamParser::new(MetricsParser::new(format, &names, &[]).unwrap());
    let read_time = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    let mut points = Vec::with_capacity(LINE_COUNT * 2);
    let mut group = criterion.benchmark_group("parse");
    group.throughput(Throughput::Elements(LINE_COUNT as u64));
    group.bench_function(name, |bencher| {
        bencher.iter(|| {
            points.clear();
            parser.feed(input, read_time, &mut points);
            parser.finish(read_time, &mut points);
            points.len()
        })
    });
    group.finish();
}

fn parse_benches(criterion: &mut Criterion) {
    bench_format(criterion, LineFormat::Text, "text_lines", &text_input());
    bench_format(criterion, LineFormat::Json, "json_lines", &json_input());
}

criterion_group!(benches, parse_benches);
criterion_main!(benches);
