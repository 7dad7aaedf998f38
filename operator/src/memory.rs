//! The allocator's settings, for a small and steady footprint.
//!
//! glibc's malloc gives threads their own arenas (up to eight per core),
//! and memory freed in one arena serves only that arena again: a fleet's
//! reconciles, run by whichever worker thread is free, left three arenas of
//! 5–13 MB each behind, holding 30 MB resident for 10 MB of live data at
//! 200 pipelines. One arena (the operator is bound by AWS's quotas, not
//! by allocator contention) and returning free pages to the kernel once a
//! minute keep resident memory close to what is live; `make bench-fleet`
//! measures both.

use std::time::Duration;

/// How often free pages are handed back to the kernel.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(60);

/// Limits malloc to one arena. Call before any thread is started.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn configure() {
    // SAFETY: mallopt only changes malloc's parameters; M_ARENA_MAX takes
    // any positive count, and no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Other C libraries size their own allocators.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn configure() {}

/// Returns the allocator's free pages to the kernel (glibc's
/// `malloc_trim`); whether any were.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free_pages() -> bool {
    // SAFETY: malloc_trim takes the arenas' locks itself and may be called
    // from any thread at any time.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Other C libraries return memory on their own terms.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_pages() -> bool {
    false
}

/// Releases free pages every [`TRIM_INTERVAL`], forever.
pub async fn release_periodically() {
    let mut tick = tokio::time::interval(TRIM_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let started = std::time::Instant::now();
        let released = release_free_pages();
        tracing::debug!(released, took = ?started.elapsed(), "returned free memory to the kernel");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_memory_goes_back_to_the_kernel() {
        configure();
        // 64 MiB in small blocks (below the mmap threshold), touched, then
        // all but the last freed: the heap's top stays in use, so only a
        // trim of the middle returns the pages.
        let blocks: Vec<Vec<u8>> = (0..4096).map(|_| vec![1u8; 16 * 1024]).collect();
        let keep = vec![1u8; 16 * 1024];
        let before = resident_kib();
        drop(blocks);
        assert!(release_free_pages() || !cfg!(target_env = "gnu"));
        let after = resident_kib();
        if cfg!(target_env = "gnu") {
            assert!(
                after + 32 * 1024 < before,
                "resident {before} KiB before the trim, {after} KiB after"
            );
        }
        drop(keep);
    }

    fn resident_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    }
}
