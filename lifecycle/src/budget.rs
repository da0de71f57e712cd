//! How long a piece of work may run: a deadline and a flag the request's transport raises when
//! its client has gone. Long loops (a Locate over every record) check it between steps, so a
//! small request buys bounded work and a client that leaves takes its work with it.

use crate::LifecycleError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Raised once, by whoever learns that the work is no longer wanted (the client left).
#[derive(Clone, Debug, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Ask the work to stop; it does, at its next check.
    pub fn raise(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether someone asked the work to stop.
    pub fn raised(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A deadline and a [`Stop`]; the default has neither and never runs out.
#[derive(Clone, Debug, Default)]
pub struct Budget {
    deadline: Option<(Instant, Duration)>,
    stop: Stop,
}

impl Budget {
    /// Until `limit` from now, or until `stop` is raised.
    pub fn new(limit: Duration, stop: Stop) -> Budget {
        Budget {
            deadline: Some((Instant::now() + limit, limit)),
            stop,
        }
    }

    /// Whether the client has gone (the deadline aside).
    pub fn canceled(&self) -> bool {
        self.stop.raised()
    }

    /// Whether the work may go on; why not otherwise.
    pub fn check(&self) -> Result<(), LifecycleError> {
        if self.stop.raised() {
            return Err(LifecycleError::Canceled);
        }
        match self.deadline {
            Some((at, limit)) if Instant::now() >= at => Err(LifecycleError::OutOfTime(limit)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_runs_out_by_its_deadline_or_its_stop() {
        assert!(Budget::default().check().is_ok());
        let stop = Stop::default();
        let b = Budget::new(Duration::from_secs(60), stop.clone());
        assert!(b.check().is_ok());
        stop.raise();
        assert!(matches!(b.check(), Err(LifecycleError::Canceled)));
        let b = Budget::new(Duration::ZERO, Stop::default());
        assert!(matches!(b.check(), Err(LifecycleError::OutOfTime(_))));
    }
}
