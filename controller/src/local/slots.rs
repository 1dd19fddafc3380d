//! The trials one process runs at once, shared by every experiment it drives.
//!
//! `sextant run` drives one experiment, `sextant server` many: its `--max-parallel-trials` caps
//! them together, not each. A driver holds one permit for each of its active trials and, before
//! it plans, takes what free permits it can use; after the plan it gives back those it did not
//! fill, so another experiment can use them.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A pool of trial slots; clones share it.
#[derive(Debug, Clone)]
pub struct TrialSlots {
    pool: Arc<Semaphore>,
    total: usize,
}

impl TrialSlots {
    /// A pool of `total` slots (at least one).
    pub fn new(total: usize) -> TrialSlots {
        let total = total.max(1);
        TrialSlots {
            pool: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// The pool's size.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The slots that are free now.
    pub fn available(&self) -> usize {
        self.pool.available_permits()
    }
}

/// The slots one driver holds.
#[derive(Debug)]
pub(crate) struct HeldSlots {
    slots: TrialSlots,
    held: Vec<OwnedSemaphorePermit>,
}

impl HeldSlots {
    pub(crate) fn new(slots: TrialSlots) -> HeldSlots {
        HeldSlots {
            slots,
            held: Vec::new(),
        }
    }

    /// Takes free slots until `wanted` are held (or none is free); gives how many are held.
    pub(crate) fn take_up_to(&mut self, wanted: usize) -> usize {
        let wanted = wanted.min(self.slots.total);
        while self.held.len() < wanted {
            match self.slots.pool.clone().try_acquire_owned() {
                Ok(permit) => self.held.push(permit),
                Err(_) => break,
            }
        }
        self.held.len()
    }

    /// Keeps one slot per active trial (as far as held) and gives the rest back.
    pub(crate) fn keep(&mut self, active: usize) {
        self.held.truncate(active);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drivers_share_the_pool() {
        let slots = TrialSlots::new(3);
        let (mut first, mut second) =
            (HeldSlots::new(slots.clone()), HeldSlots::new(slots.clone()));
        assert_eq!(first.take_up_to(2), 2);
        assert_eq!(second.take_up_to(5), 1, "only one slot is left");
        assert_eq!(slots.available(), 0);
        first.keep(1);
        assert_eq!(slots.available(), 1, "an unused slot goes back to the pool");
        assert_eq!(second.take_up_to(5), 2);
        drop(second);
        assert_eq!(
            slots.available(),
            2,
            "a finished driver gives back all it held"
        );
    }

    #[test]
    fn an_empty_pool_is_one_slot() {
        assert_eq!(TrialSlots::new(0).total(), 1);
    }
}
