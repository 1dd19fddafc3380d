//! Fuzzes the pipeline `when` parser with arbitrary text: parsing, printing, listing references
//! and evaluating whatever parses must never panic nor overflow the stack, however deep or long
//! the input (the limits refuse it instead).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sextant_pipeline_expr::condition::Condition;
use sextant_pipeline_expr::template::Template;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(condition) = Condition::parse(text) else {
        return;
    };
    let _ = condition.to_string();
    let _ = condition.references();
    // Every operand renders to a value chosen by its length, so both branches of `&&`, `||`
    // and `!`, numeric and string comparisons, and non-boolean operands are all reached.
    let mut render = |template: &Template| -> Result<String, ()> {
        Ok(match template.to_string().len() % 4 {
            0 => "true".to_owned(),
            1 => "false".to_owned(),
            2 => "1e3".to_owned(),
            _ => "word".to_owned(),
        })
    };
    let _ = condition.evaluate(&mut render);
});
