//! An engine that fails on purpose, over another: for tests of what the record layer and the
//! server do when storage fails at each point of a write, or a read.

use super::engine::{Engine, ReadTxn, WriteTxn};
use super::StoreError;
use std::sync::Mutex;

/// Where a planned write failure strikes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Before the transaction begins: nothing is written.
    Before,
    /// After the transaction's writes, before its commit: nothing is written.
    Midway,
    /// After the commit: everything is written, and the caller is told it failed (a lost
    /// acknowledgement, as when the connection to a database drops at COMMIT).
    After,
}

/// An engine over `E` whose next writes or reads fail as planned.
pub struct Faulty<E> {
    inner: E,
    plan: Mutex<Plan>,
}

#[derive(Default)]
struct Plan {
    /// Write failures to come, in order: (writes to let through first, fault).
    writes: Vec<(u64, Fault)>,
    /// Reads to fail from now on.
    failing_reads: u64,
}

fn injected(what: &str) -> StoreError {
    StoreError::Backend(format!("injected fault: {what}"))
}

impl<E: Engine> Faulty<E> {
    /// Over `inner`, failing nothing until told.
    pub fn new(inner: E) -> Faulty<E> {
        Faulty {
            inner,
            plan: Mutex::default(),
        }
    }

    /// Let `skip` writes through, then fail the next one at `fault`.
    pub fn fail_write(&self, skip: u64, fault: Fault) {
        self.plan
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .writes
            .push((skip, fault));
    }

    /// Fail the next `n` reads.
    pub fn fail_reads(&self, n: u64) {
        self.plan
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .failing_reads = n;
    }

    fn next_write_fault(&self) -> Option<Fault> {
        let mut plan = self.plan.lock().unwrap_or_else(|p| p.into_inner());
        let (skip, fault) = plan.writes.first_mut()?;
        if *skip > 0 {
            *skip -= 1;
            return None;
        }
        let fault = *fault;
        plan.writes.remove(0);
        Some(fault)
    }
}

impl<E: Engine> Engine for Faulty<E> {
    fn read(
        &self,
        f: &mut dyn FnMut(&dyn ReadTxn) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        {
            let mut plan = self.plan.lock().unwrap_or_else(|p| p.into_inner());
            if plan.failing_reads > 0 {
                plan.failing_reads -= 1;
                return Err(injected("read"));
            }
        }
        self.inner.read(f)
    }

    fn write(
        &self,
        f: &mut dyn FnMut(&mut dyn WriteTxn) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        match self.next_write_fault() {
            None => self.inner.write(f),
            Some(Fault::Before) => Err(injected("before the write")),
            Some(Fault::Midway) => self.inner.write(&mut |tx| {
                f(tx)?;
                Err(injected("before the commit"))
            }),
            Some(Fault::After) => {
                self.inner.write(f)?;
                Err(injected("after the commit"))
            }
        }
    }

    fn reserve_ids(&self, n: u64) -> Result<u64, StoreError> {
        self.inner.reserve_ids(n)
    }
}
