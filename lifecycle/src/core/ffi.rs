//! The only unsafe code in the project: OpenSSL calls the `openssl` crate does not wrap.
//!
//! Why: KMIP's RNG Seed operation asks the server to mix client data into its random number
//! generator, which is OpenSSL's DRBG; only `RAND_add` does that. Each call passes a pointer and
//! length taken from one live slice, and OpenSSL only reads from it during the call. And the
//! process that holds keys must never write them to a core file nor to swap: `setrlimit`,
//! `prctl` and `mlockall` are plain system calls on values owned here.
#![allow(unsafe_code)]

use std::os::raw::{c_double, c_int, c_void};

/// Mix `data` into OpenSSL's DRBG. It is credited with no entropy: a client's bytes may be
/// predictable, so they can only add to, never replace, the generator's own seeding.
pub(crate) fn rand_add(data: &[u8]) -> usize {
    let mut used = 0;
    for chunk in data.chunks(c_int::MAX as usize) {
        // SAFETY: the pointer and length describe `chunk`, which outlives the call; OpenSSL
        // reads `num` bytes from it and keeps no reference.
        unsafe {
            openssl_sys::RAND_add(
                chunk.as_ptr().cast::<c_void>(),
                chunk.len() as c_int,
                0.0 as c_double,
            )
        };
        used += chunk.len();
    }
    used
}

/// Whether `harden_process` also marks the process not dumpable (Linux's `prctl`); where it
/// cannot, the caller says so.
pub const UNDUMPABLE: bool = cfg!(target_os = "linux");

/// Keep key memory out of core dumps: no core file at all (RLIMIT_CORE 0), and, on Linux, the
/// process marked not dumpable (which also keeps other processes of the same user from
/// attaching a debugger to read it), and without transparent huge pages. Also lifts the
/// open-file limit to its hard maximum, so that the configured number of connections can be
/// served.
pub fn harden_process() -> Result<(), String> {
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `none` is a valid rlimit that outlives the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) } != 0 {
        return Err("setrlimit(RLIMIT_CORE, 0) failed".into());
    }
    // prctl is Linux's; elsewhere the missing core file is all this gives (see UNDUMPABLE)
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_DUMPABLE takes integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
            return Err("prctl(PR_SET_DUMPABLE, 0) failed".into());
        }
        // The allocator asks for transparent huge pages on its arenas, so a 2 MiB page
        // becomes resident for the first byte touched in it: at 1M objects 184 of 201 MB
        // resident were huge pages. Unchecked: a kernel without THP needs nothing here.
        // SAFETY: PR_SET_THP_DISABLE takes integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
    // a write past a file-size limit fails with EFBIG, as a full disk fails with ENOSPC,
    // instead of killing the process
    // SAFETY: SIG_IGN is a valid disposition for SIGXFSZ.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let mut files = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // unchecked: where the raise is refused (macOS refuses an unlimited soft limit), the
    // current limit serves
    // SAFETY: `files` is a valid rlimit the call fills in, then reads.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut files) == 0 {
            files.rlim_cur = files.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &files);
        }
    }
    Ok(())
}

/// Keep the process's memory, keys among it, out of swap: `mlockall(MCL_CURRENT |
/// MCL_FUTURE | MCL_ONFAULT)`, which locks each page when it is first touched (not every page
/// an allocator reserves). Only where the lock has no bound (root, or `LimitMEMLOCK=infinity`):
/// under a bound, MCL_FUTURE makes the allocation that crosses it fail, and the server with
/// it. Why not, when it is not.
#[cfg(target_os = "linux")]
pub fn lock_memory() -> Result<(), String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit the call fills in.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        return Err("getrlimit(RLIMIT_MEMLOCK) failed".into());
    }
    // SAFETY: geteuid takes no arguments and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if limit.rlim_cur != libc::RLIM_INFINITY && !root {
        return Err(format!(
            "RLIMIT_MEMLOCK is {} bytes: memory left unlocked (LimitMEMLOCK=infinity locks it)",
            limit.rlim_cur
        ));
    }
    // SAFETY: mlockall takes flags only.
    if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE | libc::MCL_ONFAULT) } != 0 {
        return Err(format!(
            "mlockall failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// MCL_ONFAULT, which keeps the lock from committing every reserved page, is Linux's, and
/// macOS does not lock at all: elsewhere memory stays unlocked, and the caller says so.
#[cfg(not(target_os = "linux"))]
pub fn lock_memory() -> Result<(), String> {
    Err("mlockall(MCL_ONFAULT) is not supported on this platform".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeding_is_accepted_and_randomness_continues() {
        assert_eq!(super::rand_add(&[0x42; 100]), 100);
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        openssl::rand::rand_bytes(&mut a).unwrap();
        openssl::rand::rand_bytes(&mut b).unwrap();
        assert_ne!(a, b);
    }
}
