//! Integration tests of the algorithms crate, through its public API only.

mod properties;
