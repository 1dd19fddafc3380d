//! Integration tests of the algorithms crate, through its public API only.

mod bayesopt;
mod cmaes;
mod hyperband;
mod pareto;
mod properties;
mod tpe;
