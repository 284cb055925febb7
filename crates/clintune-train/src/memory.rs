//! How training asks the allocator to treat freed memory.

/// Has mimalloc keep freed memory instead of returning it to the OS.
///
/// A training step frees and reallocates the same large activation and
/// gradient buffers every step; returned memory comes back as fresh pages
/// the kernel must zero, which took a quarter of a CPU step (`perf`:
/// `clear_page_erms`). Keeping it made `clintune bench` steps about 30%
/// faster on 2 cores; the process keeps its peak memory, which a training
/// run reaches every step anyway. It acts when mimalloc is the global
/// allocator (the `clintune` binary, `benches/model.rs`) and changes nothing
/// otherwise.
pub fn keep_freed_memory() {
    /// `mi_option_purge_delay` in mimalloc 2's `mimalloc.h` (libmimalloc-sys
    /// 0.1.49 names no constant for it); -1 means never purge.
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: sets a process-wide mimalloc option; it takes any value and
    // is read by the allocator on its own threads' later purges.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) };
}
