//! The resident agent's use of the allocator (glibc): how many arenas, which buffers get pages
//! of their own, and handing freed memory back to the system. A daemon that holds little but
//! lives for weeks must not keep the pages of what it once read.

/// Allocations from this size up get pages of their own (given back when freed).
const MMAP_FROM_BYTES: i32 = 128 * 1024;

/// A scan's worker threads each get a malloc arena of their own, whose freed memory glibc
/// keeps; a long-lived daemon that is mostly idle shares two instead. Large buffers (a page of
/// the feed, a scan's lists) always get pages of their own: left to itself, glibc raises that
/// threshold after the first such buffer is freed, and later ones land in the heap between
/// what the daemon keeps.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes an allocator setting; called before the threads start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_FROM_BYTES);
    }
}

/// Hands memory freed since the last scan back to the system (glibc keeps it otherwise).
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free pages of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}
