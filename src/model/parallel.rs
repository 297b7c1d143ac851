//! Running edgeseg's own kernels (int8 convolutions, `fastpath` ops) on as
//! many threads as tract's executor has (`threads` in the CLI and board config).
//!
//! A network calls these loops a hundred times or more per frame, each a
//! fraction of a millisecond. Handing each one to a rayon pool (inject, wake a
//! worker, park the caller, wake it again) cost more than the loop on YOLOv8n,
//! which ran slower on 2 threads than on 1. So the calling thread takes part,
//! and the `threads - 1` helpers spin for a short while between loops before
//! parking: back-to-back layers find them awake.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Mutex, OnceLock};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};
use tract_linalg::multithread::{current_tract_executor, Executor};

/// A pointer the workers share; each writes a disjoint part of what it points to.
#[derive(Clone, Copy)]
pub struct SyncPtr<T>(pub *mut T);

impl<T> SyncPtr<T> {
    /// The pointer (a method, so closures capture the whole `SyncPtr`, which is `Sync`).
    #[inline(always)]
    pub fn get(self) -> *mut T {
        self.0
    }
}

// Safety: users only write disjoint ranges through it (see each call site).
unsafe impl<T> Send for SyncPtr<T> {}
unsafe impl<T> Sync for SyncPtr<T> {}

/// Below this much work (in multiply-adds or bytes) a call runs on the calling
/// thread: even an awake helper costs a few microseconds to bring in.
const MIN_PARALLEL_WORK: usize = 1 << 18;

/// How long an idle helper keeps checking for the next loop before it parks.
const SPIN: Duration = Duration::from_micros(300);

/// `f(0) .. f(n - 1)`, each about `work` operations, on the current tract
/// executor's thread count (the caller and `threads - 1` helpers).
pub fn for_each(n: usize, work: usize, f: impl Fn(usize) + Sync + Send) {
    let threads = match current_tract_executor() {
        Executor::MultiThread(pool) if n > 1 && n.saturating_mul(work) >= MIN_PARALLEL_WORK => pool.current_num_threads(),
        _ => 1,
    };
    if threads < 2 {
        return (0..n).for_each(f);
    }
    crew().run(threads - 1, n, &f);
}

/// The loop being run: what the helpers read, valid while `epoch` is odd.
struct Job {
    /// Odd while a loop is open; a helper joins only an open loop.
    epoch: AtomicUsize,
    /// The closure, as a thin pointer to the caller's `&dyn Fn`.
    f: AtomicUsize,
    n: AtomicUsize,
    chunk: AtomicUsize,
    next: AtomicUsize,
    /// Helpers inside the loop now; the caller waits for 0 before returning.
    active: AtomicUsize,
    /// Helpers allowed in (threads - 1 of this call).
    wanted: AtomicUsize,
    panicked: AtomicBool,
}

struct Helper {
    thread: Thread,
    parked: AtomicBool,
}

struct Crew {
    job: Job,
    helpers: Mutex<Vec<&'static Helper>>,
    /// `helpers.len()`, readable without the lock.
    started: AtomicUsize,
    /// One loop at a time; a second caller runs its loop alone.
    submit: Mutex<()>,
}

fn crew() -> &'static Crew {
    static CREW: OnceLock<Crew> = OnceLock::new();
    CREW.get_or_init(|| Crew {
        job: Job {
            epoch: AtomicUsize::new(0),
            f: AtomicUsize::new(0),
            n: AtomicUsize::new(0),
            chunk: AtomicUsize::new(1),
            next: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            wanted: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
        },
        helpers: Mutex::new(Vec::new()),
        started: AtomicUsize::new(0),
        submit: Mutex::new(()),
    })
}

thread_local! {
    /// A helper's index (helpers only).
    static HELPER_INDEX: Cell<Option<usize>> = const { Cell::new(None) };
}

type Body<'a> = &'a (dyn Fn(usize) + Sync);

impl Crew {
    fn run(&'static self, helpers: usize, n: usize, f: &(dyn Fn(usize) + Sync)) {
        // A helper never submits (the bodies do not nest), and a second caller
        // while a loop is open runs alone rather than wait.
        let Ok(_turn) = self.submit.try_lock() else { return (0..n).for_each(f) };
        if HELPER_INDEX.get().is_some() {
            return (0..n).for_each(f);
        }
        self.ensure(helpers);
        let job = &self.job;
        let body: Body = f;
        job.f.store(&body as *const Body as usize, SeqCst);
        job.n.store(n, SeqCst);
        job.chunk.store(n.div_ceil(4 * (helpers + 1)).max(1), SeqCst);
        job.next.store(0, SeqCst);
        job.wanted.store(helpers, SeqCst);
        job.panicked.store(false, SeqCst);
        job.epoch.fetch_add(1, SeqCst); // open (odd)
        // Poisoning cannot leave the list inconsistent (pushes are whole).
        for h in self.helpers.lock().unwrap_or_else(|e| e.into_inner()).iter().take(helpers) {
            if h.parked.load(SeqCst) {
                h.thread.unpark();
            }
        }
        let mine = catch_unwind(AssertUnwindSafe(|| work(job, f)));
        job.epoch.fetch_add(1, SeqCst); // closed (even): no helper joins now
        while job.active.load(SeqCst) != 0 {
            std::hint::spin_loop();
        }
        if let Err(e) = mine {
            std::panic::resume_unwind(e);
        }
        assert!(!job.panicked.load(SeqCst), "a parallel loop body panicked on a helper thread");
    }

    /// At least `count` helpers started (once; later calls only compare a count,
    /// so the frame loop neither locks nor allocates here).
    fn ensure(&'static self, count: usize) {
        if self.started.load(SeqCst) >= count {
            return;
        }
        // Poisoning cannot leave the list inconsistent (pushes are whole).
        let mut list = self.helpers.lock().unwrap_or_else(|e| e.into_inner());
        while list.len() < count {
            let index = list.len();
            let spawned = thread::Builder::new().name(format!("edgeseg-helper-{index}")).spawn(move || helper_loop(index));
            let Ok(handle) = spawned else { break };
            let helper: &'static Helper = Box::leak(Box::new(Helper { thread: handle.thread().clone(), parked: AtomicBool::new(false) }));
            list.push(helper);
        }
        self.started.store(list.len(), SeqCst);
    }
}

/// Take chunks of the open loop until none is left.
fn work(job: &Job, f: &(dyn Fn(usize) + Sync)) {
    let (n, chunk) = (job.n.load(SeqCst), job.chunk.load(SeqCst));
    loop {
        let start = job.next.fetch_add(chunk, SeqCst);
        if start >= n {
            break;
        }
        (start..(start + chunk).min(n)).for_each(f);
    }
}

fn helper_loop(index: usize) {
    HELPER_INDEX.set(Some(index));
    let crew = crew();
    let job = &crew.job;
    let me = loop {
        // Wait until the crew list holds this helper (ensure() pushes it after spawning).
        if let Some(h) = crew.helpers.lock().unwrap_or_else(|e| e.into_inner()).get(index).copied() {
            break h;
        }
        thread::yield_now();
    };
    let mut seen = job.epoch.load(SeqCst);
    loop {
        let idle_since = Instant::now();
        let epoch = loop {
            let e = job.epoch.load(SeqCst);
            if e != seen && !e.is_multiple_of(2) {
                break e;
            }
            if idle_since.elapsed() < SPIN {
                // Yielding rather than spinning hot: tract's own pool may need this core.
                thread::yield_now();
                continue;
            }
            me.parked.store(true, SeqCst);
            let e = job.epoch.load(SeqCst);
            if e == seen || e.is_multiple_of(2) {
                thread::park_timeout(Duration::from_millis(100));
            }
            me.parked.store(false, SeqCst);
        };
        seen = epoch;
        if index >= job.wanted.load(SeqCst) {
            continue;
        }
        job.active.fetch_add(1, SeqCst);
        // Joined only if the loop is still the open one: then the caller waits
        // for `active` to drop before its closure goes away.
        if job.epoch.load(SeqCst) == epoch {
            // Safety: the caller's `Body` lives until `active` is back to 0.
            let f: Body = unsafe { *(job.f.load(SeqCst) as *const Body) };
            if catch_unwind(AssertUnwindSafe(|| work(job, f))).is_err() {
                job.panicked.store(true, SeqCst);
            }
        }
        job.active.fetch_sub(1, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_item_runs_once_on_several_threads() {
        let executor = Executor::multithread(3);
        tract_linalg::multithread::multithread_tract_scope(executor, || {
            for n in [2usize, 7, 100, 1000] {
                let hits: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
                for_each(n, 1 << 20, |i| {
                    hits[i].fetch_add(1, SeqCst);
                });
                assert!(hits.iter().all(|h| h.load(SeqCst) == 1), "n = {n}");
            }
        });
    }
}
