//! Cancellation of a suggestion in progress.
//!
//! A request's work must stop when nobody waits for it any more: the client went away, its
//! deadline passed, or the server is shutting down. The caller owns a [`Cancellation`], hands a
//! reference to the algorithm in its [`SuggestRequest`](crate::algorithm::SuggestRequest), and
//! sets it from wherever it learns the answer is no longer wanted (another thread, an async
//! task). Algorithms call [`Cancellation::check`] in their loops, once per suggestion and
//! between the costly phases of one (a model fit, an acquisition optimization), so a cancelled
//! request frees its thread within one such step. The flag is a single atomic load, cheap
//! enough for inner loops; the crate stays free of any runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::SuggestError;

/// A flag that, once set, tells an algorithm to stop; clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct Cancellation {
    /// `None` for [`Cancellation::never`], which needs no allocation and can be a static.
    flag: Option<Arc<AtomicBool>>,
}

/// The token of callers that never cancel (the local runner, benches, tests).
static NEVER: Cancellation = Cancellation { flag: None };

impl Cancellation {
    /// A token not yet cancelled.
    pub fn new() -> Cancellation {
        Cancellation {
            flag: Some(Arc::new(AtomicBool::new(false))),
        }
    }

    /// A token nobody can cancel.
    pub fn never() -> &'static Cancellation {
        &NEVER
    }

    /// Tells every holder of this token to stop.
    pub fn cancel(&self) {
        if let Some(flag) = &self.flag {
            flag.store(true, Ordering::Relaxed);
        }
    }

    /// Whether [`Cancellation::cancel`] was called on this token or a clone.
    pub fn is_cancelled(&self) -> bool {
        self.flag
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
    }

    /// `Err(SuggestError::Cancelled)` once cancelled, for `?` in algorithms' loops.
    pub fn check(&self) -> Result<(), SuggestError> {
        if self.is_cancelled() {
            Err(SuggestError::Cancelled)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag_and_never_stays_clear() {
        let token = Cancellation::new();
        let clone = token.clone();
        assert_eq!(clone.check(), Ok(()));
        token.cancel();
        assert!(clone.is_cancelled());
        assert_eq!(clone.check(), Err(SuggestError::Cancelled));
        Cancellation::never().cancel();
        assert!(!Cancellation::never().is_cancelled());
    }
}
