//! Record reads of concurrent callers, fetched together.
//!
//! On a network database a read's cost is mostly its round trip, paid by both sides: the
//! node's thread hops and socket calls, the database's per-statement work. So while one
//! caller's fetch is out, the records others ask for queue up, and the next caller to fetch
//! asks for all of them in one statement (as the group commit gathers writes). A caller joins
//! only a fetch not sent yet, so what it reads is at least as new as every commit answered
//! before it asked: gathering never serves a read older than the caller.

use super::StoreError;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The most records one fetch asks for; the rest wait for the next.
const MAX_GATHERED: usize = 64;

/// Why a fetch failed: the error, and whether the others in it should read on their own
/// (the fetch's connection failed, not the database) or fail with it.
pub(crate) struct FetchFailed {
    pub(crate) error: StoreError,
    pub(crate) alone: bool,
}

type Many<'a, T> = dyn FnMut(&[&str]) -> Result<HashMap<String, T>, FetchFailed> + 'a;

/// The reads waiting for a fetch, and whether one is out.
pub(crate) struct Gather<T> {
    queue: Mutex<Queue<T>>,
}

struct Queue<T> {
    asked: Vec<(String, Arc<Asked<T>>)>,
    /// A caller is fetching; the first queued after it fetches next.
    fetching: bool,
}

/// One caller's read, and where it learns what to do.
struct Asked<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
}

enum State<T> {
    Waiting,
    /// Its caller fetches next, for everyone queued.
    Lead,
    Done(Option<T>),
    /// The fetch it was in failed, for a reason of that fetch's own (its connection): its
    /// caller reads on its own, with its own retries.
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

impl<T: Clone> Default for Gather<T> {
    fn default() -> Self {
        Gather {
            queue: Mutex::new(Queue {
                asked: Vec::new(),
                fetching: false,
            }),
        }
    }
}

impl<T: Clone> Gather<T> {
    /// The record `id`, fetched by `many` together with those other callers ask for
    /// meanwhile (`many` gets the identifiers, and answers the records found by identifier).
    /// `alone` reads it on its own: when the shared fetch failed, so that each caller keeps
    /// its own retry and error. A caller waits at most `wait` for another's fetch.
    pub(crate) fn read(
        &self,
        id: &str,
        wait: Duration,
        many: &mut Many<'_, T>,
        alone: &mut dyn FnMut() -> Result<Option<T>, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let own = Arc::new(Asked {
            state: Mutex::new(State::Waiting),
            ready: Condvar::new(),
        });
        let leads = {
            let mut q = lock(&self.queue);
            q.asked.push((id.to_owned(), own.clone()));
            !std::mem::replace(&mut q.fetching, true)
        };
        if leads {
            *lock(&own.state) = State::Lead;
        } else {
            let deadline = Instant::now() + wait;
            let mut st = lock(&own.state);
            loop {
                match std::mem::replace(&mut *st, State::Waiting) {
                    State::Waiting => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            *st = State::Gone;
                            return Err(StoreError::Backend(format!(
                                "no answer from the database within {} s",
                                wait.as_secs()
                            )));
                        }
                        st = own
                            .ready
                            .wait_timeout(st, left)
                            .unwrap_or_else(|p| p.into_inner())
                            .0;
                    }
                    State::Lead => break,
                    State::Done(r) => return Ok(r),
                    State::Failed(e) => return Err(e),
                    State::Alone | State::Gone => {
                        drop(st);
                        return alone();
                    }
                }
            }
        }
        self.fetch(&own, many)
    }

    /// Fetch for everyone queued (`own` among them), answer them, and pass the lead on.
    fn fetch(&self, own: &Arc<Asked<T>>, many: &mut Many<'_, T>) -> Result<Option<T>, StoreError> {
        let batch: Vec<(String, Arc<Asked<T>>)> = {
            let mut q = lock(&self.queue);
            let n = q.asked.len().min(MAX_GATHERED);
            q.asked.drain(..n).collect()
        };
        // whatever happens below, even a panic, the lead passes on and no one waits in vain
        let leading = Leading {
            gather: self,
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
            // own is always in its batch: it was queued before the lead came to it
            _ => Err(StoreError::Backend("a gathered read lost its place".into())),
        }
    }

    #[cfg(test)]
    fn idle(&self) -> bool {
        let q = lock(&self.queue);
        q.asked.is_empty() && !q.fetching
    }
}

/// A fetch under way: when it ends, those of its batch still waiting read alone, and the
/// first caller queued after it (still waiting) fetches next.
struct Leading<'a, T: Clone> {
    gather: &'a Gather<T>,
    batch: Vec<(String, Arc<Asked<T>>)>,
}

impl<T: Clone> Drop for Leading<'_, T> {
    fn drop(&mut self) {
        for (_, a) in &self.batch {
            a.answer(State::Alone);
        }
        let mut q = lock(&self.gather.queue);
        loop {
            if q.asked.is_empty() {
                q.fetching = false;
                return;
            }
            if q.asked[0].1.answer(State::Lead) {
                return;
            }
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
                                Duration::from_secs(10),
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
                                &mut || panic!("no fetch failed"),
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
                                Duration::from_secs(10),
                                &mut |ids| {
                                    let v = version.load(Ordering::SeqCst) as u64;
                                    std::thread::sleep(Duration::from_micros(100));
                                    Ok(ids.iter().map(|i| (i.to_string(), v)).collect())
                                },
                                &mut || panic!("no fetch failed"),
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
                            Duration::from_secs(10),
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

    #[test]
    fn a_caller_that_stops_waiting_is_passed_over() {
        let g: Arc<Gather<u32>> = Arc::new(Gather::default());
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let first = {
            let g = g.clone();
            std::thread::spawn(move || {
                g.read(
                    "a",
                    Duration::from_secs(10),
                    &mut |_| {
                        hold.recv().unwrap();
                        Ok(HashMap::from([("a".to_string(), 1)]))
                    },
                    &mut || unreachable!(),
                )
            })
        };
        // until the first caller's fetch is out
        loop {
            let q = lock(&g.queue);
            if q.fetching && q.asked.is_empty() {
                break;
            }
            drop(q);
            std::thread::yield_now();
        }
        // queued behind the slow fetch, it gives up
        let r = g.read(
            "b",
            Duration::from_millis(50),
            &mut |_| unreachable!(),
            &mut || unreachable!(),
        );
        assert!(r.is_err());
        release.send(()).unwrap();
        assert_eq!(first.join().unwrap().unwrap(), Some(1));
        assert!(g.idle(), "the lead went to a caller that had left");
        let r = g.read(
            "c",
            Duration::from_secs(1),
            &mut |_| Ok(HashMap::from([("c".to_string(), 3)])),
            &mut || unreachable!(),
        );
        assert_eq!(r.unwrap(), Some(3));
    }
}
