//! The queue of a group commit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Calls waiting to be run together (the records of a group commit, the keys of a
/// batched lookup), and the role of the one runner that takes them.
///
/// Every call is [`push`](Self::push)ed; the push that finds no runner running
/// starts one, and that runner takes the calls in batches with
/// [`next_batch`](Self::next_batch) until none are left. A call that arrives while
/// a batch runs goes into the next one, so one commit (one sync to disk, one round
/// trip) serves every call in flight, and a call never joins a batch that has
/// started: the batch that answers it starts after the call was made.
///
/// How a runner runs (a blocking thread for SQLite's synchronous connection, an
/// asynchronous task for PostgreSQL) is the backend's; the queue only hands the
/// role over without losing a call: a call pushed while the runner finds the queue
/// empty is taken by that runner or starts the next one, never left waiting.
///
/// ```
/// use tessera_store::sql::GroupQueue;
///
/// let queue = GroupQueue::new();
/// assert!(queue.push(1), "no runner yet: this call starts one");
/// assert!(!queue.push(2), "the runner will take this one too");
/// assert_eq!(queue.next_batch(10), Some(vec![1, 2]));
/// assert_eq!(queue.next_batch(10), None, "empty: the runner stops");
/// assert!(queue.push(3), "so the next call starts a new one");
/// ```
#[derive(Debug)]
pub struct GroupQueue<T> {
    /// The calls waiting for the next batch, oldest first.
    pending: Mutex<Vec<T>>,
    /// Whether a runner holds the role (is running batches or about to).
    running: AtomicBool,
}

impl<T> Default for GroupQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> GroupQueue<T> {
    /// An empty queue with no runner.
    pub const fn new() -> Self {
        Self { pending: Mutex::new(Vec::new()), running: AtomicBool::new(false) }
    }

    /// Queues `call`. Returns `true` when no runner was running: the caller then
    /// holds the runner's role and must start a runner, which calls
    /// [`next_batch`](Self::next_batch) until it returns `None` (or
    /// [`abandon`](Self::abandon) if it stops before).
    pub fn push(&self, call: T) -> bool {
        self.lock().push(call);
        !self.running.swap(true, Ordering::AcqRel)
    }

    /// For the runner: the next batch, the calls waiting (oldest first, at most
    /// `max`, at least 1), taken out of the queue so that no later call joins it.
    ///
    /// `None` when no call is waiting: the runner has then given up its role and
    /// must stop. A call pushed meanwhile is not lost: either this runner takes it
    /// (the role is kept and its batch returned) or the push started another runner.
    pub fn next_batch(&self, max: usize) -> Option<Vec<T>> {
        loop {
            let batch = self.take(max);
            if !batch.is_empty() {
                return Some(batch);
            }
            self.running.store(false, Ordering::Release);
            // A call queued between the take and the store would wait for nobody:
            // look once more, and carry on unless another runner took over.
            if self.lock().is_empty() || self.running.swap(true, Ordering::AcqRel) {
                return None;
            }
        }
    }

    /// For a runner that stops before [`next_batch`](Self::next_batch) returned
    /// `None` (it panicked, or its runtime shut down): gives up the role, so that
    /// the next push starts a new runner. Calls still queued wait for that push.
    pub fn abandon(&self) {
        self.running.store(false, Ordering::Release);
    }

    /// Whether a runner holds the role.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// The calls waiting, at most `max` of them, oldest first.
    fn take(&self, max: usize) -> Vec<T> {
        let mut pending = self.lock();
        if pending.len() <= max.max(1) {
            std::mem::take(&mut *pending)
        } else {
            pending.drain(..max.max(1)).collect()
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<T>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[test]
    fn batches_are_capped_and_oldest_first() {
        let queue = GroupQueue::new();
        assert!(queue.push(0));
        for n in 1..5 {
            assert!(!queue.push(n));
        }
        assert_eq!(queue.next_batch(2), Some(vec![0, 1]));
        assert_eq!(queue.next_batch(0), Some(vec![2]), "at least one");
        assert_eq!(queue.next_batch(9), Some(vec![3, 4]));
        assert!(queue.is_running());
        assert_eq!(queue.next_batch(9), None);
        assert!(!queue.is_running());
    }

    #[test]
    fn an_abandoned_role_passes_to_the_next_push() {
        let queue = GroupQueue::new();
        assert!(queue.push(1));
        queue.abandon();
        assert!(queue.push(2), "the next call starts a runner");
        assert_eq!(queue.next_batch(9), Some(vec![1, 2]));
    }

    /// Pushers on several threads and runners started as the pushes say: every
    /// call is run exactly once, and at most one runner runs at a time.
    #[test]
    fn no_call_is_lost_or_run_twice() {
        let queue = Arc::new(GroupQueue::new());
        let runners = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(Mutex::new(Vec::new()));
        let run = {
            let (queue, runners, done) = (queue.clone(), runners.clone(), done.clone());
            move || {
                while let Some(batch) = queue.next_batch(7) {
                    assert_eq!(runners.fetch_add(1, Ordering::SeqCst), 0, "one batch at a time");
                    done.lock().unwrap_or_else(PoisonError::into_inner).extend(batch);
                    std::thread::yield_now();
                    runners.fetch_sub(1, Ordering::SeqCst);
                }
            }
        };
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (queue, run) = (queue.clone(), run.clone());
                std::thread::spawn(move || {
                    let mut started = Vec::new();
                    for i in 0..500 {
                        if queue.push(t * 1000 + i) {
                            started.push(std::thread::spawn(run.clone()));
                        }
                    }
                    for runner in started {
                        runner.join().unwrap_or_else(|_| panic!("a runner panicked"));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap_or_else(|_| panic!("a pusher panicked"));
        }
        let mut done = done.lock().unwrap_or_else(PoisonError::into_inner).clone();
        done.sort_unstable();
        let expected: Vec<_> = (0..4).flat_map(|t| (0..500).map(move |i| t * 1000 + i)).collect();
        assert_eq!(done, expected);
        assert!(!queue.is_running());
    }
}
