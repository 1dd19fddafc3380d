//! The trials one process runs at once, shared by every experiment it drives.
//!
//! `sextant run` drives one experiment, `sextant server` many: its `--max-parallel-trials` caps
//! them together, not each. A driver holds one permit for each of its active trials and, before
//! it plans, takes what free permits it can use; after the plan it gives back those it did not
//! fill, so another experiment can use them. A driver that got fewer slots than it wanted
//! waits for any slot to be given back ([`HeldSlots::released`]), so its trials start as soon
//! as another experiment's end.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// A pool of trial slots; clones share it.
#[derive(Debug, Clone)]
pub struct TrialSlots {
    pool: Arc<Semaphore>,
    total: usize,
    /// Counts the times slots were given back; a watch, so a release between a driver's
    /// plan and its wait is not missed.
    releases: Arc<watch::Sender<u64>>,
}

impl TrialSlots {
    /// A pool of `total` slots (at least one).
    pub fn new(total: usize) -> TrialSlots {
        let total = total.max(1);
        TrialSlots {
            pool: Arc::new(Semaphore::new(total)),
            total,
            releases: Arc::new(watch::Sender::new(0)),
        }
    }

    fn released(&self) {
        self.releases
            .send_modify(|count| *count = count.wrapping_add(1));
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
    /// Whether the last [`HeldSlots::take_up_to`] got fewer than it wanted.
    short: bool,
    releases: watch::Receiver<u64>,
}

impl HeldSlots {
    pub(crate) fn new(slots: TrialSlots) -> HeldSlots {
        let releases = slots.releases.subscribe();
        HeldSlots {
            slots,
            held: Vec::new(),
            short: false,
            releases,
        }
    }

    /// Takes free slots until `wanted` are held (or none is free); gives how many are held.
    pub(crate) fn take_up_to(&mut self, wanted: usize) -> usize {
        let wanted = wanted.min(self.slots.total);
        // Releases before this point are seen by this attempt.
        self.releases.borrow_and_update();
        while self.held.len() < wanted {
            match self.slots.pool.clone().try_acquire_owned() {
                Ok(permit) => self.held.push(permit),
                Err(_) => break,
            }
        }
        self.short = self.held.len() < wanted;
        self.held.len()
    }

    /// Keeps one slot per active trial (as far as held) and gives the rest back.
    pub(crate) fn keep(&mut self, active: usize) {
        if self.held.len() > active {
            self.held.truncate(active);
            self.slots.released();
        }
    }

    /// Resolves once another holder gave slots back after the last [`HeldSlots::take_up_to`]
    /// came up short; never while this driver has all the slots it wanted.
    pub(crate) async fn released(&mut self) {
        if !self.short || self.releases.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for HeldSlots {
    fn drop(&mut self) {
        if !self.held.is_empty() {
            self.held.clear();
            self.slots.released();
        }
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

    #[tokio::test]
    async fn a_driver_short_of_slots_wakes_when_another_gives_some_back() {
        let slots = TrialSlots::new(2);
        let (mut first, mut second) =
            (HeldSlots::new(slots.clone()), HeldSlots::new(slots.clone()));
        assert_eq!(first.take_up_to(2), 2);
        let never = tokio::time::timeout(std::time::Duration::from_millis(50), first.released());
        assert!(
            never.await.is_err(),
            "a driver with all it wanted does not wake"
        );
        assert_eq!(second.take_up_to(1), 0);
        let waiting = tokio::spawn(async move {
            second.released().await;
            second.take_up_to(1)
        });
        tokio::task::yield_now().await;
        first.keep(1);
        let taken = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("the short driver woke")
            .unwrap();
        assert_eq!(taken, 1);
    }

    #[test]
    fn an_empty_pool_is_one_slot() {
        assert_eq!(TrialSlots::new(0).total(), 1);
    }
}
