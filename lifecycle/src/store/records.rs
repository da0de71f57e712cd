//! The record layer: the rules every backend shares, written once over an [`Engine`]. It
//! encodes records, keeps the index entries in step with them, gives each write a revision and
//! refuses a commit whose reads are stale, applies the name rule inside the write transaction,
//! hands out identifiers from reserved blocks, and gathers concurrent commits into one write
//! transaction (group commit: many connections share one fsync, or one database round trip).

use super::engine::{self, Engine, Stored, WriteTxn};
use super::{index_keys, Change, Expect, Expected, Precondition, Record, Store, StoreError};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// How many identifiers handed out and not yet written the record layer remembers as new: past
/// that, the oldest are forgotten (a Create that failed leaves its identifier here), and a
/// commit of a forgotten one only costs the read that a new one is spared.
const FRESH_KEPT: usize = 4096;

/// A store: the record layer over an engine.
pub struct Records<E> {
    pub(super) engine: E,
    /// Names unique among one owner's objects not destroyed (`--unique-names`), checked again
    /// inside the write transaction: two requests that each found a name free before either
    /// committed must not both take it.
    unique_names: bool,
    group: Mutex<Group>,
    /// The next identifier to hand out and the last one reserved.
    ids: Mutex<(u64, u64)>,
    /// Identifiers handed out by [`Store::allocate_ids`] and in no commit yet: the engine
    /// never handed them out before, so no record has them, and a commit that creates one
    /// need not read it (on PostgreSQL, a round trip and a row lock). Taken out by the first
    /// commit that names them, whatever its outcome.
    fresh: Mutex<BTreeSet<u64>>,
}

/// Commits waiting for the next write transaction, and whether one is being written.
#[derive(Default)]
struct Group {
    queue: Vec<Waiting>,
    writer: Writer,
}

/// Who writes the queue.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Writer {
    /// No one: the next commit's caller writes, or starts a writer.
    #[default]
    Idle,
    /// A writer was started for awaited commits and has not begun: a thread that comes with
    /// a commit writes instead of waiting for it (the started one may wait for a thread of a
    /// full blocking pool, where every thread could be waiting for it).
    Started,
    /// A thread writes.
    Running,
}

/// One commit in the queue, and the turn on which its caller sleeps.
struct Waiting {
    commit: (Expected, Vec<Change>, HashSet<String>),
    check: Option<Precondition>,
    turn: Arc<Turn>,
    /// For a commit awaited by a task ([`Queued`]), which cannot write: what starts a writer
    /// on a thread that may block (see [`Store::queue_commit`]). `None` for a thread's commit,
    /// or once taken.
    start: Option<StartWriter>,
    /// Awaited by a task, not slept on by a thread: never the next writer.
    awaited: bool,
}

/// Starts [`Store::write_queued`] on a thread that may block.
pub type StartWriter = Box<dyn FnOnce() + Send>;

/// Where a queued commit's caller learns, alone, that its commit was written or that it is
/// the next to write: every caller waits on its own condition variable, so a written group
/// wakes the callers in it and the next writer, not every caller queued (waking them all on
/// one variable made them wake and sleep again, and fight for its lock, at every commit).
#[derive(Default)]
struct Turn {
    /// Its state, and the task awaiting it if a task does ([`Queued`]): under one lock, so
    /// that a writer settling the turn either finds the task's waker or is seen by its poll.
    state: Mutex<(TurnState, Option<Waker>)>,
    cv: Condvar,
}

#[derive(Default)]
enum TurnState {
    #[default]
    Wait,
    Lead,
    Done(Result<(), StoreError>),
}

impl Turn {
    fn set(&self, to: TurnState) {
        let waker = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.0 = to;
            s.1.take()
        };
        self.cv.notify_one();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Sleep until the commit is written (its outcome) or it is this caller's to write.
    fn wait(&self) -> Option<Result<(), StoreError>> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match std::mem::take(&mut s.0) {
                TurnState::Done(r) => return Some(r),
                TurnState::Lead => return None,
                TurnState::Wait => s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner()),
            }
        }
    }
}

/// A commit queued for the next group, awaited by a task instead of a thread (see
/// [`Store::queue_commit`]): the writer wakes the task when the commit is written or refused.
pub struct Queued {
    turn: Option<Arc<Turn>>,
    ready: Option<Result<(), StoreError>>,
}

impl Queued {
    /// Already settled: nothing was queued.
    pub fn ready(result: Result<(), StoreError>) -> Queued {
        Queued {
            turn: None,
            ready: Some(result),
        }
    }

    /// A commit made elsewhere (on a thread that may block), and what settles it there.
    pub fn elsewhere() -> (Queued, Settle) {
        let turn = Arc::new(Turn::default());
        let queued = Queued {
            turn: Some(turn.clone()),
            ready: None,
        };
        (queued, Settle(Some(turn)))
    }
}

/// Settles a [`Queued::elsewhere`]: with the commit's outcome, or, dropped unused (the work
/// that was to commit panicked, or never ran), with an error.
pub struct Settle(Option<Arc<Turn>>);

impl Settle {
    /// The commit's outcome, for the task that awaits it.
    pub fn settle(mut self, result: Result<(), StoreError>) {
        if let Some(t) = self.0.take() {
            t.set(TurnState::Done(result));
        }
    }
}

impl Drop for Settle {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.set(TurnState::Done(Err(StoreError::Backend(
                "the commit was not made".into(),
            ))));
        }
    }
}

impl Future for Queued {
    type Output = Result<(), StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(r) = self.ready.take() {
            return Poll::Ready(r);
        }
        let Some(turn) = self.turn.clone() else {
            return Poll::Ready(Err(StoreError::Backend(
                "the commit was awaited twice".into(),
            )));
        };
        let mut state = turn.state.lock().unwrap_or_else(|p| p.into_inner());
        match std::mem::take(&mut state.0) {
            TurnState::Done(r) => {
                self.turn = None;
                Poll::Ready(r)
            }
            // an awaited turn is never the next writer (see [`Records::hand_over`]); the
            // writer that settles it takes the waker under this same lock
            TurnState::Lead | TurnState::Wait => {
                match &mut state.1 {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    w => *w = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

/// The writer's duty to the queue, kept even if writing panics: the callers of the group it
/// took learn an outcome, and the next writer is named.
struct Writing<'a> {
    group: &'a Mutex<Group>,
    turns: Vec<Arc<Turn>>,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        for t in self.turns.drain(..) {
            t.set(TurnState::Done(Err(StoreError::Backend(
                "the commit's writer failed".into(),
            ))));
        }
        if std::thread::panicking() {
            // this thread writes no more: a waiting thread writes next, or the awaited
            // commits left without a writer fail
            let mut g = self.group.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(next) = g.queue.iter().find(|w| !w.awaited) {
                next.turn.set(TurnState::Lead);
                return;
            }
            let orphans = std::mem::take(&mut g.queue);
            g.writer = Writer::Idle;
            drop(g);
            for w in orphans {
                w.turn.set(TurnState::Done(Err(StoreError::Backend(
                    "the commit's writer failed".into(),
                ))));
            }
        }
    }
}

/// Whether a write failed because the database did not answer it (unreachable, stalled, or
/// lost while committing), not for anything of its own.
fn unanswered(r: &Result<(), StoreError>) -> bool {
    matches!(
        r,
        Err(StoreError::Unavailable(_) | StoreError::OutcomeUnknown(_))
    )
}

/// The error of a commit failed untried, behind one the database did not answer.
fn behind_unanswered() -> StoreError {
    StoreError::Unavailable("the database did not answer the commits before this one".into())
}

/// Whether an index key is a Name's.
fn is_name_key(k: &[u8]) -> bool {
    k.starts_with(&kmip_codec::vocab::tag::NAME.0.to_be_bytes()[1..])
}

impl<E: Engine> Records<E> {
    /// The record layer over `engine`; names may repeat.
    pub fn over(engine: E) -> Records<E> {
        Records {
            engine,
            unique_names: false,
            group: Mutex::default(),
            ids: Mutex::new((1, 0)),
            fresh: Mutex::default(),
        }
    }

    /// The identifiers of `changes` that no record can have (see [`Records::fresh`]), no
    /// longer fresh for any later commit.
    fn take_fresh(&self, changes: &[Change]) -> HashSet<String> {
        self.fresh_of(changes, true)
    }

    /// The identifiers of `changes` that no record can have; `take`: no longer fresh after.
    fn fresh_of(&self, changes: &[Change], take: bool) -> HashSet<String> {
        let mut fresh = self.fresh.lock().unwrap_or_else(|p| p.into_inner());
        if fresh.is_empty() {
            return HashSet::new();
        }
        changes
            .iter()
            .filter_map(|c| match c {
                Change::Put(r) => Some(r.id.as_str()),
                Change::Delete(id) => Some(id.as_str()),
                _ => None,
            })
            // the canonical decimal form only: "007" is not identifier 7
            .filter(|id| {
                id.parse::<u64>().is_ok_and(|n| {
                    n.to_string() == *id
                        && match take {
                            true => fresh.remove(&n),
                            false => fresh.contains(&n),
                        }
                })
            })
            .map(str::to_owned)
            .collect()
    }

    /// Names unique among one owner's objects (the server policy `--unique-names`); by
    /// default objects may share names, as deployed clients expect.
    pub fn unique_names(mut self, unique: bool) -> Records<E> {
        self.unique_names = unique;
        self
    }

    /// The engine underneath.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    fn remember_fresh(&self, first: u64, n: u64) {
        let mut fresh = self.fresh.lock().unwrap_or_else(|p| p.into_inner());
        fresh.extend(first..first.saturating_add(n));
        while fresh.len() > FRESH_KEPT {
            fresh.pop_first();
        }
    }

    /// Apply one commit inside a write transaction. The records of `new` are known absent
    /// (see [`Records::fresh`]): neither checked nor read.
    fn apply(
        &self,
        tx: &mut dyn WriteTxn,
        expected: &Expected,
        changes: &[Change],
        new: &HashSet<String>,
    ) -> Result<(), StoreError> {
        // records read (and, on an engine that locks, locked) for the revision check: the
        // change reads them from here, not again from the engine
        let mut read: HashMap<&str, Option<Stored>> = HashMap::new();
        // the records as this commit's request read them: else it lost a race, and writing
        // would undo the other writer's change
        for e in expected {
            if let Expect::Record(id, None) = e {
                if new.contains(id) {
                    continue;
                }
            }
            // an expected absence has no row to lock: the transactions expecting the same
            // one take turns, and the later one finds what the earlier one wrote
            match e {
                Expect::Record(id, None) => tx.lock_key(format!("record\0{id}").as_bytes())?,
                Expect::Value(name, None) => tx.lock_key(format!("value\0{name}").as_bytes())?,
                _ => {}
            }
            let fresh = match e {
                Expect::Record(id, rev) => {
                    let stored = tx.object(id)?;
                    let same = stored.as_ref().map(|s| s.revision) == *rev;
                    read.insert(id.as_str(), stored);
                    same
                }
                Expect::Value(name, v) => tx.value(name)?.as_ref() == v.as_ref(),
            };
            if !fresh {
                let name = match e {
                    Expect::Record(id, _) | Expect::Value(id, _) => id.clone(),
                };
                return Err(StoreError::Conflict(name));
            }
        }
        // (record, owner, name key) for every name a live record gains in this commit
        let mut gained: Vec<(&str, Option<&str>, Vec<u8>)> = Vec::new();
        for c in changes {
            let id = match c {
                Change::Put(r) => r.id.as_str(),
                Change::Delete(id) => id.as_str(),
                Change::PutValue(name, v) => {
                    tx.put_value(name, v)?;
                    continue;
                }
                Change::DeleteValue(name) => {
                    tx.delete_value(name)?;
                    continue;
                }
            };
            // once only: a second change of one identifier reads the first's write
            let old = match read.remove(id) {
                Some(stored) => stored,
                None if new.contains(id) => None,
                None => tx.object(id)?,
            };
            let old_keys = match &old {
                Some(s) => index_keys(&Record::decode(id, &s.bytes)?),
                None => Vec::new(),
            };
            let new_keys = match c {
                Change::Put(r) => index_keys(r),
                _ => Vec::new(),
            };
            for k in old_keys.iter().filter(|k| !new_keys.contains(k)) {
                tx.remove_index(k, id)?;
            }
            for k in new_keys.iter().filter(|k| !old_keys.contains(k)) {
                tx.add_index(k, id)?;
            }
            match c {
                Change::Put(r) => {
                    if self.unique_names && !r.state.is_destroyed() {
                        for k in new_keys.into_iter().filter(|k| is_name_key(k)) {
                            if !old_keys.contains(&k) {
                                gained.push((id, r.owner.as_deref(), k));
                            }
                        }
                    }
                    let revision = old.map_or(0, |s| s.revision) + 1;
                    tx.put_object(
                        id,
                        &Stored {
                            bytes: r.encode(),
                            revision,
                        },
                    )?;
                }
                _ => tx.delete_object(id)?,
            }
        }
        // after all of the commit's changes, so that a name moving from one record to another
        // (Re-key) is seen where it ends up
        for (id, owner, k) in gained {
            tx.lock_key(&k)?;
            for other in tx.ids_with(&k)?.into_iter().filter(|o| o != id) {
                let Some(s) = tx.object(&other)? else {
                    continue;
                };
                let r = Record::decode(&other, &s.bytes)?;
                // among one owner's objects only: another identity's names are neither
                // probed nor squatted through this refusal
                if !r.state.is_destroyed()
                    && r.owner.as_deref() == owner
                    && index_keys(&r).contains(&k)
                {
                    let name = String::from_utf8_lossy(&k[3..]).into_owned();
                    return Err(StoreError::NameTaken(name));
                }
            }
        }
        Ok(())
    }

    /// Commit, or queue the commit for the next group and wait for its outcome; `check` runs
    /// just before the write transaction that would hold it.
    fn commit_with(
        &self,
        expected: Expected,
        changes: Vec<Change>,
        check: Option<Precondition>,
    ) -> Result<(), StoreError> {
        // every run of the transaction below but the last was rolled back: what is new now
        // stays new through them
        let new = self.take_fresh(&changes);
        if !self.gathers(&expected, &changes, &new) {
            if let Some(check) = &check {
                super::run_check(check)?;
            }
            // the engine runs transactions side by side (and gathers their log flushes itself);
            // this one reads, so it is not held up behind a group, nor a group behind it
            return self
                .engine
                .write(&mut |tx| self.apply(tx, &expected, &changes, &new));
        }
        let turn = Arc::new(Turn::default());
        let mut g = self.lock_group();
        g.queue.push(Waiting {
            commit: (expected, changes, new),
            check,
            turn: turn.clone(),
            start: None,
            awaited: false,
        });
        let leads = g.writer != Writer::Running;
        g.writer = Writer::Running;
        drop(g);
        if !leads {
            if let Some(result) = turn.wait() {
                return result;
            }
        }
        self.lead(Some(&turn))
            .unwrap_or_else(|| Err(StoreError::Backend("the commit was not written".into())))
    }

    /// Whether a commit joins a group: every commit where the engine writes one transaction at
    /// a time, and the commits that read nothing where it gathers those.
    fn gathers(&self, expected: &Expected, changes: &[Change], new: &HashSet<String>) -> bool {
        self.engine.one_writer()
            || (self.engine.gathers_blind() && self.blind(expected, changes, new))
    }

    /// Whether a commit reads nothing in its transaction: it only creates records under
    /// identifiers never handed out before (`new`), expecting them absent, and gains no name
    /// that the name rule must look up.
    fn blind(&self, expected: &Expected, changes: &[Change], new: &HashSet<String>) -> bool {
        let fresh = |id: &String| new.contains(id);
        expected.iter().all(|e| match e {
            Expect::Record(id, None) => fresh(id),
            _ => false,
        }) && changes.iter().all(|c| match c {
            Change::Put(r) => {
                fresh(&r.id) && !(self.unique_names && index_keys(r).iter().any(|k| is_name_key(k)))
            }
            _ => false,
        })
    }

    fn lock_group(&self) -> MutexGuard<'_, Group> {
        self.group.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Write everything queued, group after group, until a waiting thread can take over or
    /// nothing is left; the outcome of `own`'s commit (the caller's) is returned, the others'
    /// set on their turns.
    fn lead(&self, own: Option<&Arc<Turn>>) -> Option<Result<(), StoreError>> {
        let is_own = |t: &Arc<Turn>| own.is_some_and(|o| Arc::ptr_eq(t, o));
        let mut own_result = None;
        loop {
            let queued = std::mem::take(&mut self.lock_group().queue);
            // every turn is the guard's until its commit is written or refused: a check that
            // panics leaves no caller asleep
            let mut writing = Writing {
                group: &self.group,
                turns: queued.iter().map(|w| w.turn.clone()).collect(),
            };
            let mut batch = Vec::with_capacity(queued.len());
            let mut kept = Vec::with_capacity(queued.len());
            for w in queued {
                // in queue order: the first check writes the audit records of all that follow
                if let Some(Err(refused)) = w.check.as_ref().map(super::run_check) {
                    match is_own(&w.turn) {
                        true => own_result = Some(Err(refused)),
                        false => w.turn.set(TurnState::Done(Err(refused))),
                    }
                    continue;
                }
                batch.push(w.commit);
                kept.push(w.turn);
            }
            writing.turns = kept;
            let results = match batch.is_empty() {
                true => Vec::new(),
                false => self.write_group(batch),
            };
            // a database that did not answer this group will not answer the commits queued
            // while it waited either: they fail now, with nothing written, not after a timeout
            // of their own (attack round 9: 20 s, twice the statement timeout, in a stall)
            // (when the first was not answered, neither were the rest: see write_group)
            let unavailable = results.first().is_some_and(unanswered);
            let mut results = results.into_iter();
            for t in std::mem::take(&mut writing.turns) {
                match results.next() {
                    Some(r) if is_own(&t) => own_result = Some(r),
                    Some(r) => t.set(TurnState::Done(r)),
                    // none is expected: `writing` fails a turn left without a result
                    None => writing.turns.push(t),
                }
            }
            drop(writing);
            if unavailable {
                let late = std::mem::take(&mut self.lock_group().queue);
                for w in late {
                    let e = Err(behind_unanswered());
                    match is_own(&w.turn) {
                        true => own_result = Some(e),
                        false => w.turn.set(TurnState::Done(e)),
                    }
                }
            }
            if !self.hand_over(own_result.is_some()) {
                return own_result;
            }
        }
    }

    /// After a group: a thread waiting with a commit writes next, or no one does when nothing
    /// is queued (false: this writer stops). Commits awaited by tasks have no thread of their
    /// own: with only those queued, a writer with no answer of its own to give goes on (true),
    /// and one that has its answer starts another writer for them and stops, so that its
    /// request is not held up by others' commits for as long as they keep coming (a thread
    /// that comes before the started writer begins writes instead: see [`Writer::Started`]).
    fn hand_over(&self, answered: bool) -> bool {
        let mut g = self.lock_group();
        if let Some(next) = g.queue.iter().find(|w| !w.awaited) {
            next.turn.set(TurnState::Lead);
            return false;
        }
        if g.queue.is_empty() {
            g.writer = Writer::Idle;
            return false;
        }
        if !answered {
            return true;
        }
        let Some(start) = g.queue.iter_mut().find_map(|w| w.start.take()) else {
            return true;
        };
        g.writer = Writer::Started;
        drop(g);
        start();
        false
    }

    /// Write the commits of `batch` in one transaction; if that fails, each on its own, so
    /// that one bad commit does not fail the others. The results are in `batch`'s order.
    fn write_group(
        &self,
        batch: Vec<(Expected, Vec<Change>, HashSet<String>)>,
    ) -> Vec<Result<(), StoreError>> {
        let together = self.engine.write(&mut |tx| {
            for (expected, changes, new) in &batch {
                self.apply(tx, expected, changes, new)?;
            }
            Ok(())
        });
        if together.is_ok() || batch.len() == 1 {
            return vec![together; batch.len()];
        }
        // one commit's own fault (a stale read, a taken name, a value past the database's
        // limits) fails the group: each is tried alone, so that no one else's fails with it
        // (attack round 9: one identity's over-long names failed a third of another's
        // Creates). Not when the group may have been written (trying again could apply it
        // twice), nor when the database is unavailable: each would wait out its own timeout,
        // one after the other
        if unanswered(&together) {
            return vec![together; batch.len()];
        }
        // and once the database fails to answer one of them, the rest fail with it untried:
        // however long the group and its first retry took, no one waits a third time
        let mut gone = false;
        batch
            .into_iter()
            .map(|(expected, changes, new)| {
                if gone {
                    return Err(behind_unanswered());
                }
                let r = self
                    .engine
                    .write(&mut |tx| self.apply(tx, &expected, &changes, &new));
                gone = unanswered(&r);
                r
            })
            .collect()
    }
}

impl<E: Engine> Store for Records<E> {
    fn names_unique(&self) -> bool {
        self.unique_names
    }

    fn remote(&self) -> bool {
        self.engine.remote()
    }

    fn fetch_ids(&self, n: u64) -> Option<super::Awaited<'_, u64>> {
        // only where each request asks the engine itself (see allocate_ids)
        if self.engine.id_block() > 1 {
            return None;
        }
        let fetch = self.engine.fetch_ids(n)?;
        Some(Box::pin(async move {
            let first = fetch.await?;
            self.remember_fresh(first, n);
            Ok(first)
        }))
    }

    fn fetch(&self, ids: Vec<String>) -> Option<super::Awaited<'_, Vec<(Record, u64)>>> {
        let fetch = self.engine.fetch(ids)?;
        Some(Box::pin(async move {
            fetch
                .await?
                .into_iter()
                .map(|(id, s)| Ok((Record::decode(&id, &s.bytes)?, s.revision)))
                .collect()
        }))
    }

    fn backup(
        &self,
        files: &[(&str, &[u8])],
        out: &std::path::Path,
    ) -> Result<super::backup::Manifest, super::backup::BackupError> {
        self.engine.backup(files, out)
    }

    fn get(&self, id: &str) -> Result<Option<Record>, StoreError> {
        Ok(self.get_versioned(id)?.map(|(r, _)| r))
    }

    fn get_versioned(&self, id: &str) -> Result<Option<(Record, u64)>, StoreError> {
        let stored = engine::read(&self.engine, |tx| tx.object(id))?;
        stored
            .map(|s| Ok((Record::decode(id, &s.bytes)?, s.revision)))
            .transpose()
    }

    fn commit_if(&self, expected: Expected, changes: Vec<Change>) -> Result<(), StoreError> {
        self.commit_with(expected, changes, None)
    }

    fn queues_commits(&self) -> bool {
        (self.engine.one_writer() && !self.engine.remote()) || self.engine.gathers_blind()
    }

    fn queues_commit(&self, expected: &Expected, changes: &[Change]) -> bool {
        match self.engine.one_writer() {
            true => !self.engine.remote(),
            false => {
                self.engine.gathers_blind()
                    && self.blind(expected, changes, &self.fresh_of(changes, false))
            }
        }
    }

    fn queue_commit(
        &self,
        expected: Expected,
        changes: Vec<Change>,
        check: Precondition,
        start_writer: StartWriter,
    ) -> Queued {
        if !self.queues_commit(&expected, &changes) {
            return Queued::ready(self.commit_with(expected, changes, Some(check)));
        }
        // every run of the transaction but the last was rolled back: what is new now stays
        // new through them
        let new = self.take_fresh(&changes);
        let turn = Arc::new(Turn::default());
        let mut start = Some(start_writer);
        let mut g = self.lock_group();
        let needs_writer = g.writer == Writer::Idle;
        if needs_writer {
            g.writer = Writer::Started;
        }
        g.queue.push(Waiting {
            commit: (expected, changes, new),
            check: Some(check),
            turn: turn.clone(),
            start: if needs_writer { None } else { start.take() },
            awaited: true,
        });
        drop(g);
        if let Some(start) = start {
            start();
        }
        Queued {
            turn: Some(turn),
            ready: None,
        }
    }

    fn write_queued(&self) {
        let mut g = self.lock_group();
        // a thread took over meanwhile: the queue is its
        if g.writer != Writer::Started {
            return;
        }
        g.writer = Writer::Running;
        drop(g);
        self.lead(None);
    }

    fn commit_checked(
        &self,
        expected: Expected,
        changes: Vec<Change>,
        check: Precondition,
    ) -> Result<(), StoreError> {
        self.commit_with(expected, changes, Some(check))
    }

    fn lookup(&self, index_key: &[u8]) -> Result<Vec<String>, StoreError> {
        engine::read(&self.engine, |tx| tx.ids_with(index_key))
    }

    fn search(&self, all: &[Vec<u8>], any: Option<&[Vec<u8>]>) -> Result<Vec<String>, StoreError> {
        engine::read(&self.engine, |tx| tx.search(all, any))
    }

    fn all_ids(&self) -> Result<Vec<String>, StoreError> {
        engine::read(&self.engine, |tx| tx.all_ids())
    }

    fn value(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        engine::read(&self.engine, |tx| tx.value(name))
    }

    fn values_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        engine::read(&self.engine, |tx| tx.values_with_prefix(prefix))
    }

    fn allocate_ids(&self, n: u64) -> Result<u64, StoreError> {
        if self.engine.id_block() <= 1 {
            // nothing kept in memory to hand out: each request asks the engine itself, and
            // concurrent requests ask at once (under the lock below, a node's Creates took
            // turns for their identifiers' round trips to PostgreSQL)
            let first = self.engine.reserve_ids(n)?;
            self.remember_fresh(first, n);
            return Ok(first);
        }
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        let (next, reserved) = *ids;
        if next + n - 1 <= reserved && next <= reserved {
            *ids = (next + n, reserved);
            drop(ids);
            self.remember_fresh(next, n);
            return Ok(next);
        }
        // a new block: what was left of the old one is skipped (identifiers are never reused,
        // and need not be dense)
        let size = n.max(self.engine.id_block());
        let first = self.engine.reserve_ids(size)?;
        *ids = (first + n, first + size - 1);
        drop(ids);
        self.remember_fresh(first, n);
        Ok(first)
    }
}
