//! Integration tests of `sextant-experiment` through its public API.

mod bad_input;
mod katib_examples;
mod warm_start;
