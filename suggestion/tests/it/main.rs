//! Integration tests of the suggestion crate, over loopback gRPC through the public API only.

mod conditional;
mod early_stopping;
mod multi_objective;
mod pbt;
mod policy;
