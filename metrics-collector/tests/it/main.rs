//! Integration tests of `sextant-metrics`: real child processes, real files, real gRPC on
//! loopback against a recording DBManager.

mod collect;
mod db_manager;
mod push;
mod robustness;
mod source;
mod support;
