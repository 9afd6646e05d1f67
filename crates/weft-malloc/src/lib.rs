//! Gives memory the process has freed back to the system.
//!
//! glibc's allocator returns freed memory to the kernel only from the top of each heap; pages
//! freed in the middle stay counted in the process's RSS until they are reused. A proxy frees
//! large amounts at known moments (the protobuf descriptors it needs only while loading a
//! configuration), and [`trim`] is what makes that visible in its memory: `malloc_trim(0)`
//! walks every arena and hands their free pages back (`MADV_DONTNEED`).
//!
//! Elsewhere (musl, other systems) [`trim`] does nothing and says so.

/// Returns the allocator's free pages to the system; `true` when some memory was released.
/// Takes the allocator's locks for a moment (microseconds to a millisecond for a heap of a few
/// megabytes): call it after freeing something large, not on a hot path.
#[must_use = "says whether memory was released"]
pub fn trim() -> bool {
    imp::trim()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    pub(super) fn trim() -> bool {
        #[allow(
            unsafe_code,
            reason = "FFI to glibc's malloc_trim, which has no safe wrapper in std or libc"
        )]
        // SAFETY: `malloc_trim` takes no pointers and has no preconditions: it locks each arena
        // itself and only releases pages that hold no allocated chunk.
        let released = unsafe { libc::malloc_trim(0) };
        released != 0
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    pub(super) fn trim() -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    /// Resident set size of this process in kB, from /proc.
    fn rss_kb() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn freed_pages_in_the_middle_of_the_heap_go_back_to_the_system() {
        // Many small blocks (below the mmap threshold, so they live in the heap), then one
        // block kept after them: freeing the first ones leaves a hole glibc does not return.
        let blocks: Vec<Vec<u8>> = (0..20_000).map(|i| vec![i as u8; 1000]).collect();
        let pin = vec![1u8; 1000];
        drop(blocks);
        let before = rss_kb();
        assert!(super::trim(), "malloc_trim released nothing");
        let after = rss_kb();
        assert!(
            before.saturating_sub(after) > 10_000,
            "RSS {before} kB -> {after} kB: the ~20 MB hole was not returned"
        );
        assert_eq!(pin[999], 1);
    }
}
