//! The process's allocator policy: glibc serves allocations of 4 MiB and
//! more with their own mapping, returned to the system when freed.
//!
//! By default glibc raises that threshold to the size of the largest block
//! freed, after which a password-hashing thread's 19 MiB argon2 buffer came
//! from the thread's arena and stayed in the process after it was freed
//! (see `crate::auth::password`). Allocations that large are rare elsewhere
//! (request bodies over 4 MiB, whole exports), where one mapping per
//! allocation costs nothing visible.
//!
//! And once started, the free pages start-up leaves inside the heaps go
//! back too ([`release_free_memory`]).

// mallopt and malloc_trim are C functions; one of the host's few unsafe
// blocks.
#![allow(unsafe_code)]

/// Allocations from this size up get a mapping of their own.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const OWN_MAPPING_FROM: libc::c_int = 4 * 1024 * 1024;

/// Applies the policy; call once at start-up, before other threads run.
pub fn return_large_allocations_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets an allocator parameter, with a valid
        // option and value; called before the runtime's threads start.
        let applied = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, OWN_MAPPING_FROM) };
        if applied != 1 {
            tracing::warn!("the allocator refused M_MMAP_THRESHOLD; idle memory may stay higher");
        }
    }
}

/// Gives the system back the free pages inside the heaps (glibc's
/// `malloc_trim`): start-up frees much of what it allocated (the plugins'
/// manifest texts, their routers' documentation, migration scripts), and
/// without a trim the pages between live blocks stay resident. Measured
/// once started with the four domain plugins and hello: RSS 47.1 -> 39.0
/// MB, all of it in the anonymous part (20.8 -> 12.8 MB).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks the allocator's own free lists.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}
