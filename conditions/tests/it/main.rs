//! Integration tests of `sextant-conditions` through its public API.

mod gjson_reference;
