//! Integration tests of `sextant-controller` through its public API.

mod bad_input;
mod cli;
mod katib_examples;
