//! Record reads of concurrent callers, fetched together.
//!
//! On a network database a read's cost is mostly its round trip, paid by both sides: the
//! node's thread hops and socket calls, the database's per-statement work. So while one
//! caller's fetch is out, the records others ask for queue up, and the next caller to fetch
//! asks for all of them in one statement (as the group commit gathers writes). A caller joins
//! only a fetch not sent yet, so what it reads is at least as new as every commit answered
//! before it asked: gathering never serves a read older than the caller.
//!
//! One slow fetch (a connection a firewall dropped silently) must not hold up the others: a
//! caller queued longer than [`QUEUED_PATIENCE`] starts a fetch of its own for everyone queued,
//! and one whose fetch is out longer than [`SENT_PATIENCE`] reads on its own.

use super::StoreError;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The most records one fetch asks for; the rest wait for the next.
const MAX_GATHERED: usize = 64;

/// How long a caller waits in the queue for a fetch to take it (fetches take a millisecond or
/// so): then the fetch out is slow, and the caller starts another for everyone queued.
pub(crate) const QUEUED_PATIENCE: Duration = Duration::from_millis(50);

/// How long a caller waits for the fetch it is in to answer: then it reads on its own (the
/// fetch's connection may be stuck until the statement's time limit).
pub(crate) const SENT_PATIENCE: Duration = Duration::from_secs(1);

/// Why a fetch failed: the error, and whether the others in it should read on their own
/// (the fetch's statement or connection failed, perhaps for one caller's value) or fail
/// with it (the database did not answer: they would wait as long again).
pub(crate) struct FetchFailed {
    pub(crate) error: StoreError,
    pub(crate) alone: bool,
}

type Many<'a, T> = dyn FnMut(&[&str]) -> Result<HashMap<String, T>, FetchFailed> + 'a;

type Batch<T> = Vec<(String, Arc<Asked<T>>)>;

/// The reads waiting for a fetch, and how many fetches are out.
pub(crate) struct Gather<T> {
    queue: Mutex<Queue<T>>,
}

struct Queue<T> {
    asked: Batch<T>,
    /// The fetches out, by number, and when each was sent; when one ends, the first caller
    /// queued fetches next.
    out: Vec<(u64, Instant)>,
    numbered: u64,
}

/// One caller's read, and where it learns what to do.
struct Asked<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
}

enum State<T> {
    /// Queued, or in a fetch not answered yet.
    Waiting,
    /// Its caller fetches next (this fetch's number), for this batch (its own read first).
    Lead(u64, Batch<T>),
    Done(Option<T>),
    /// The fetch it was in failed for a reason of that fetch's own: its caller reads on its
    /// own, with its own retries.
    Alone,
    /// The fetch it was in failed, as its own read would (the database did not answer).
    Failed(StoreError),
    /// Its caller stopped waiting.
    Gone,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<T> Asked<T> {
    /// Tell the caller, if it still waits for an answer.
    fn answer(&self, s: State<T>) -> bool {
        let mut st = lock(&self.state);
        if !matches!(*st, State::Waiting) {
            return false;
        }
        *st = s;
        self.ready.notify_one();
        true
    }
}

impl<T> Queue<T> {
    /// A new fetch, out from now: its number, and its batch (the first queued and those after
    /// it, up to [`MAX_GATHERED`]).
    fn send(&mut self) -> (u64, Batch<T>) {
        self.numbered += 1;
        self.out.push((self.numbered, Instant::now()));
        let n = self.asked.len().min(MAX_GATHERED);
        (self.numbered, self.asked.drain(..n).collect())
    }

    /// Whether a fetch sent less than [`QUEUED_PATIENCE`] ago is out: a caller queues for the
    /// next then, and fetches at once otherwise (the fetches out, if any, are slow).
    fn recently_sent(&self) -> bool {
        self.out
            .iter()
            .any(|(_, at)| at.elapsed() < QUEUED_PATIENCE)
    }
}

impl<T: Clone> Default for Gather<T> {
    fn default() -> Self {
        Gather {
            queue: Mutex::new(Queue {
                asked: Vec::new(),
                out: Vec::new(),
                numbered: 0,
            }),
        }
    }
}

impl<T: Clone> Gather<T> {
    /// The record `id`, fetched by `many` together with those other callers ask for
    /// meanwhile (`many` gets the identifiers, and answers the records found by identifier).
    /// `alone` reads it on its own: when the shared fetch failed or is slow, so that each
    /// caller keeps its own retries and errors.
    pub(crate) fn read(
        &self,
        id: &str,
        many: &mut Many<'_, T>,
        alone: &mut dyn FnMut() -> Result<Option<T>, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let own = Arc::new(Asked {
            state: Mutex::new(State::Waiting),
            ready: Condvar::new(),
        });
        let fetch = {
            let mut q = lock(&self.queue);
            q.asked.push((id.to_owned(), own.clone()));
            match q.recently_sent() {
                false => Some(q.send()),
                true => None,
            }
        };
        let (number, batch) = match fetch {
            Some(f) => f,
            None => match self.wait(&own) {
                Ok(f) => f,
                Err(Some(answer)) => return answer,
                Err(None) => return alone(),
            },
        };
        self.fetch(&own, number, batch, many)
    }

    /// Wait to be answered, or to fetch (its number and batch); `Err(None)`: read alone.
    #[allow(clippy::type_complexity)]
    fn wait(
        &self,
        own: &Arc<Asked<T>>,
    ) -> Result<(u64, Batch<T>), Option<Result<Option<T>, StoreError>>> {
        let queued_until = Instant::now() + QUEUED_PATIENCE;
        let mut queued = true;
        let mut until = queued_until;
        let mut st = lock(&own.state);
        loop {
            match std::mem::replace(&mut *st, State::Waiting) {
                State::Waiting => {}
                State::Lead(number, batch) => return Ok((number, batch)),
                State::Done(r) => return Err(Some(Ok(r))),
                State::Failed(e) => return Err(Some(Err(e))),
                State::Alone | State::Gone => return Err(None),
            }
            let left = until.saturating_duration_since(Instant::now());
            if !left.is_zero() {
                st = own
                    .ready
                    .wait_timeout(st, left)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
                continue;
            }
            if !queued {
                // the fetch it is in is slow: its answer, should it come, goes to no one
                *st = State::Gone;
                return Err(None);
            }
            // queue first, then the caller's state: the order every hand-over takes them in
            drop(st);
            let mut q = lock(&self.queue);
            st = lock(&own.state);
            if !matches!(*st, State::Waiting) {
                continue;
            }
            match q.asked.iter().position(|(_, a)| Arc::ptr_eq(a, own)) {
                Some(at) => {
                    // still queued behind a slow fetch: it fetches for everyone queued, its
                    // own read first
                    let mine = q.asked.remove(at);
                    q.asked.insert(0, mine);
                    return Ok(q.send());
                }
                None => {
                    // taken into a fetch since: wait for that one, a while
                    queued = false;
                    until = Instant::now() + SENT_PATIENCE;
                }
            }
        }
    }

    /// Fetch `number` for `batch` (`own` among them), answer them, and pass the lead on.
    fn fetch(
        &self,
        own: &Arc<Asked<T>>,
        number: u64,
        batch: Batch<T>,
        many: &mut Many<'_, T>,
    ) -> Result<Option<T>, StoreError> {
        // whatever happens below, even a panic, the lead passes on and no one waits in vain
        let leading = Leading {
            gather: self,
            number,
            batch,
        };
        let mut ids: Vec<&str> = leading
            .batch
            .iter()
            .filter(|(_, a)| Arc::ptr_eq(a, own) || matches!(*lock(&a.state), State::Waiting))
            .map(|(id, _)| id.as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let found = many(&ids);
        let mut mine = None;
        for (id, a) in &leading.batch {
            let r = match &found {
                Ok(f) => State::Done(f.get(id).cloned()),
                Err(FetchFailed { alone: true, .. }) => State::Alone,
                Err(FetchFailed { error, .. }) => State::Failed(error.clone()),
            };
            match Arc::ptr_eq(a, own) {
                true => mine = Some(r),
                false => {
                    a.answer(r);
                }
            }
        }
        drop(leading);
        match (found, mine) {
            (Err(f), _) => Err(f.error),
            (Ok(_), Some(State::Done(r))) => Ok(r),
            // own is always in its batch: the batch is taken with it
            _ => Err(StoreError::Backend("a gathered read lost its place".into())),
        }
    }

    #[cfg(test)]
    fn idle(&self) -> bool {
        let q = lock(&self.queue);
        q.asked.is_empty() && q.out.is_empty()
    }
}

/// A fetch under way: when it ends, those of its batch still waiting read alone, and the
/// first caller queued after it (still waiting) fetches next.
struct Leading<'a, T: Clone> {
    gather: &'a Gather<T>,
    number: u64,
    batch: Batch<T>,
}

impl<T: Clone> Drop for Leading<'_, T> {
    fn drop(&mut self) {
        for (_, a) in &self.batch {
            a.answer(State::Alone);
        }
        let mut q = lock(&self.gather.queue);
        q.out.retain(|(n, _)| *n != self.number);
        loop {
            let Some((_, first)) = q.asked.first() else {
                return;
            };
            let first = first.clone();
            let mut st = lock(&first.state);
            if matches!(*st, State::Waiting) {
                let (number, batch) = q.send();
                *st = State::Lead(number, batch);
                first.ready.notify_one();
                return;
            }
            drop(st);
            // it stopped waiting: it needs no fetch
            q.asked.remove(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn concurrent_reads_share_fetches_and_each_gets_its_own_record() {
        let g: Arc<Gather<String>> = Arc::new(Gather::default());
        let fetches = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let (g, fetches) = (g.clone(), fetches.clone());
                std::thread::spawn(move || {
                    for n in 0..200 {
                        let id = format!("{t}-{n}");
                        let got = g
                            .read(
                                &id,
                                &mut |ids| {
                                    fetches.fetch_add(1, Ordering::SeqCst);
                                    std::thread::sleep(Duration::from_micros(200));
                                    // every identifier but the odd ones exists
                                    Ok(ids
                                        .iter()
                                        .filter(|i| !i.ends_with('1'))
                                        .map(|i| (i.to_string(), format!("record {i}")))
                                        .collect())
                                },
                                // a loaded machine may make a fetch slow enough to read alone
                                &mut || Ok((!id.ends_with('1')).then(|| format!("record {id}"))),
                            )
                            .unwrap();
                        let expected = (!id.ends_with('1')).then(|| format!("record {id}"));
                        assert_eq!(got, expected);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let fetches = fetches.load(Ordering::SeqCst);
        assert!(
            fetches < 16 * 200,
            "{fetches} fetches for 3200 reads: none shared"
        );
        assert!(g.idle());
    }

    #[test]
    fn a_read_never_joins_a_fetch_already_sent() {
        // a value the fetch reads when it is sent: a read that began after the value changed
        // must see the change, so it may not be answered by a fetch sent before
        let g: Arc<Gather<u64>> = Arc::new(Gather::default());
        let version = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (g, version) = (g.clone(), version.clone());
                std::thread::spawn(move || {
                    for _ in 0..300 {
                        // the commit this caller saw answered before it reads
                        let seen = version.fetch_add(1, Ordering::SeqCst) + 1;
                        let got = g
                            .read(
                                "k",
                                &mut |ids| {
                                    let v = version.load(Ordering::SeqCst) as u64;
                                    std::thread::sleep(Duration::from_micros(100));
                                    Ok(ids.iter().map(|i| (i.to_string(), v)).collect())
                                },
                                &mut || Ok(Some(version.load(Ordering::SeqCst) as u64)),
                            )
                            .unwrap()
                            .unwrap();
                        assert!(got >= seen as u64, "read {got}, older than {seen}");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }

    #[test]
    fn a_failed_fetch_sends_the_others_to_read_alone_and_the_lead_moves_on() {
        let g: Arc<Gather<u32>> = Arc::new(Gather::default());
        let alone = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (g, alone, failed) = (g.clone(), alone.clone(), failed.clone());
                std::thread::spawn(move || {
                    for n in 0..100u32 {
                        let r = g.read(
                            "k",
                            &mut |_| {
                                std::thread::sleep(Duration::from_micros(100));
                                // every third fetch fails, on its connection; every
                                // fifth, as the database does not answer
                                match failed.fetch_add(1, Ordering::SeqCst) % 15 {
                                    0 | 3 | 6 | 9 => Err(FetchFailed {
                                        error: StoreError::Backend("lost".into()),
                                        alone: true,
                                    }),
                                    5 | 10 => Err(FetchFailed {
                                        error: StoreError::Backend("no answer".into()),
                                        alone: false,
                                    }),
                                    _ => Ok(HashMap::from([("k".to_string(), t)])),
                                }
                            },
                            &mut || {
                                alone.fetch_add(1, Ordering::SeqCst);
                                Ok(Some(n))
                            },
                        );
                        // the fetcher of a failed fetch gets its error; the others read
                        // alone, or fail with it if the database did not answer
                        if let Err(e) = r {
                            let e = e.to_string();
                            assert!(e.contains("lost") || e.contains("no answer"), "{e}");
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(g.idle(), "a lead was lost");
        assert!(alone.load(Ordering::SeqCst) > 0, "no caller read alone");
    }

    /// Blocks in `many` until released; answers `id` with `v`.
    fn held(g: &Arc<Gather<u32>>, id: &'static str, v: u32) -> Held {
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let g = g.clone();
        let t = std::thread::spawn(move || {
            g.read(
                id,
                &mut |ids| {
                    hold.recv().unwrap();
                    Ok(ids.iter().map(|i| (i.to_string(), v)).collect())
                },
                &mut || Ok(Some(0)),
            )
        });
        (release, t)
    }

    fn until(what: impl Fn() -> bool) {
        let t = Instant::now();
        while !what() {
            assert!(t.elapsed() < Duration::from_secs(10), "waited in vain");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_slow_fetch_holds_up_only_its_own_batch_and_not_for_long() {
        // c must queue within b's patience (50 ms): a loaded machine may not run this thread
        // that soon, and then c is alone and fetches for itself. Such a miss is seen, never
        // passed off as the behaviour under test: the scenario runs again.
        for _ in 0..5 {
            if slow_fetch_scenario() {
                return;
            }
        }
        panic!("c never queued behind b's fetch in five tries");
    }

    type Held = (
        std::sync::mpsc::Sender<()>,
        std::thread::JoinHandle<Result<Option<u32>, StoreError>>,
    );

    /// Let the held fetches go: the scenario missed its timing.
    fn missed(held: [Held; 2]) -> bool {
        for (release, t) in held {
            let _ = release.send(());
            let _ = t.join();
        }
        false
    }

    /// Whether c queued behind b's fetch (then every assertion held).
    fn slow_fetch_scenario() -> bool {
        let g: Arc<Gather<u32>> = Arc::new(Gather::default());
        // a fetch stuck on its connection
        let (release_a, a) = held(&g, "a", 1);
        until(|| {
            let q = lock(&g.queue);
            q.out.len() == 1 && q.asked.is_empty()
        });
        // b and c, queued behind it: b (the first) starts a fetch of its own, for both, after
        // a short wait; that one is stuck too
        let (release_b, b) = held(&g, "b", 2);
        let t = Instant::now();
        while lock(&g.queue).asked.len() != 1 {
            if t.elapsed() > Duration::from_secs(2) {
                return missed([(release_a, a), (release_b, b)]);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let started = Instant::now();
        let mut fetched_for_itself = false;
        let c = g.read(
            "c",
            &mut |ids| {
                fetched_for_itself = true;
                Ok(ids.iter().map(|i| (i.to_string(), 30)).collect())
            },
            &mut || Ok(Some(30)),
        );
        if fetched_for_itself {
            return missed([(release_a, a), (release_b, b)]);
        }
        // c waited for b's fetch a while, then read alone
        assert_eq!(c.unwrap(), Some(30));
        assert!(started.elapsed() >= SENT_PATIENCE);
        // a fourth, with only slow fetches out, fetches at once
        let d = g.read(
            "d",
            &mut |ids| Ok(ids.iter().map(|i| (i.to_string(), 4)).collect()),
            &mut || unreachable!(),
        );
        assert_eq!(d.unwrap(), Some(4));
        release_b.send(()).unwrap();
        assert_eq!(b.join().unwrap().unwrap(), Some(2));
        release_a.send(()).unwrap();
        assert_eq!(a.join().unwrap().unwrap(), Some(1));
        assert!(g.idle(), "a fetch was left counted as out");
        true
    }
}
