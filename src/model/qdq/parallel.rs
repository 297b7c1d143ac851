//! Running the int8 kernels on tract's executor: the thread pool that
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

/// `f(0) .. f(n - 1)`, on the current tract executor's threads.
pub fn for_each(n: usize, f: impl Fn(usize) + Sync + Send) {
    match current_tract_executor() {
        Executor::MultiThread(pool) if n > 1 => pool.install(|| (0..n).into_par_iter().for_each(&f)),
        Executor::RayonGlobal if n > 1 => (0..n).into_par_iter().for_each(&f),
        _ => (0..n).for_each(f),
    }
}
