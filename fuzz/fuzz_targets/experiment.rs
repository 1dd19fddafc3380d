//! Fuzzes the experiment loader (`sextant run` and `sextant validate`): YAML parsing, defaulting
//! and validation of arbitrary text must give experiments or errors, never a panic, a stack
//! overflow or unbounded work.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(experiments) = sextant_experiment::load_experiments(text) {
        for experiment in experiments {
            let _ = sextant_experiment::validation::validate(&experiment);
        }
    }
});
