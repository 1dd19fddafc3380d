//! Integration tests of `sextant-controller` through its public API.

mod cli;
mod warm_start;
