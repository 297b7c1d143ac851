//! Keeping freed activation memory in the process between frames.
//!
//! tract allocates every node's output anew each run. glibc serves blocks over
//! its mmap threshold with a fresh mapping and unmaps them on free, and trims
//! the heap top back to the OS, so each frame page-faults (and zeroes) its
//! whole activation memory again: DeepLabV3+'s 20 MB decoder depthwise output
//! took 17 ms to produce that way, against 5 ms in reused pages. Raising the
//! two thresholds makes the frame loop reuse the same pages; the peak (the
//! largest live set) stays what it was.

/// Largest block glibc still takes from the heap (its maximum on 64-bit).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 32 << 20;
/// Free heap top glibc may keep rather than return.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: i32 = 1 << 30;
/// At most this many malloc arenas. glibc gives threads their own arenas (up to 8 per
/// core), and `malloc_trim` does not return the free top of a thread's arena: with the
/// dashboard's connection threads, each 16 MiB upload body could end up in another arena
/// and stay resident. scripts/soak_dashboard.py (slowloris + 16 MiB junk bodies, 75 s,
/// U-Net demo) took RSS from 326 to 760 MiB with glibc's default and kept it flat at
/// 326-343 MiB with 2. Inference allocates from one thread per frame, so two arenas cost
/// it nothing.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENA_MAX: i32 = 2;

/// Tune the allocator once per process (glibc only; musl and others keep their defaults).
pub fn retain_freed_tensors() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            // Safety: mallopt only sets allocator parameters; it returns 0 when it
            // refuses one, which leaves glibc's default in place.
            let ok = unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                    && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
                    && libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX) == 1
            };
            if !ok {
                log::debug!("glibc refused the malloc thresholds; frames will page-fault their tensors");
            }
        }
    });
}

/// Return free heap memory to the OS now (glibc's `malloc_trim`; elsewhere nothing: musl
/// returns large blocks on free). The thresholds above keep up to 1 GiB of freed memory for
/// the next frame; after something unusually large was freed (a frame far bigger than the
/// camera's, a dashboard upload's body) that memory would otherwise stay with the process for
/// good. Not for the steady-state frame loop: the next frame faults its pages in again.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // Safety: malloc_trim only releases free memory of glibc's arenas; live blocks are untouched.
    unsafe {
        libc::malloc_trim(0);
    }
}
