//! Running edgeseg's own kernels (int8 convolutions, `fastpath` ops) on tract's executor: the thread pool that
//! `RunOptions::executor` installs (`threads` in the CLI and board config).

use rayon::prelude::*;
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
/// thread: waking the pool costs more than it saves on the small layers.
const MIN_PARALLEL_WORK: usize = 1 << 20;

/// `f(0) .. f(n - 1)`, each about `work` operations, on the current tract
/// executor's threads, in chunks of several items per task.
pub fn for_each(n: usize, work: usize, f: impl Fn(usize) + Sync + Send) {
    let pool = match current_tract_executor() {
        Executor::MultiThread(pool) if n > 1 && n.saturating_mul(work) >= MIN_PARALLEL_WORK => pool,
        _ => return (0..n).for_each(f),
    };
    let chunk = n.div_ceil(4 * pool.current_num_threads()).max(1);
    pool.install(|| (0..n).into_par_iter().with_min_len(chunk).for_each(&f));
}
