//! Integration tests of the algorithms crate, through its public API only.

mod asha;
mod bayesopt;
mod bounded;
mod cmaes;
mod conditional;
mod hyperband;
mod multi_objective;
mod nsga3;
mod pareto;
mod pbt;
mod properties;
mod tpe;
mod warm_start;
