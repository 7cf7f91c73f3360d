//! Read leases (`fcntl(F_SETLEASE, F_RDLCK)`), the one way on Linux to know
//! that nobody wrote to a file while we read it: a read lease cannot be
//! taken while anyone has the file open for writing, and anyone who opens
//! it for writing (or truncates it) while we hold one breaks it, and waits
//! until we let it go. No crate wraps them, hence the few lines of `libc`.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::Once;

/// What taking a read lease on a file found.
pub(super) enum Lease<'a> {
    /// Held until dropped: nobody had the file open for writing.
    Held(HeldLease<'a>),
    /// Someone has the file open for writing right now.
    WritersPresent,
    /// The filesystem or our privileges allow no leases (NFS, SMB and FUSE
    /// filesystems; a daemon not running as root reading another user's
    /// files): only the file's identity can tell a change.
    Unavailable,
}

pub(super) struct HeldLease<'a> {
    file: &'a File,
}

impl HeldLease<'_> {
    /// Whether nobody opened the file for writing since the lease was taken.
    pub(super) fn unbroken(&self) -> bool {
        // SAFETY: F_GETLEASE only reads the lease state of a descriptor
        // that is open for as long as `self.file` lives.
        let state = unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_GETLEASE) };
        state == libc::F_RDLCK
    }

    /// Leaves the lease to end when the file is closed, which ends it as
    /// surely as letting it go does, for one system call fewer. Only for a
    /// file about to be closed: a writer waits for the lease to end.
    pub(super) fn end_at_close(self) {
        std::mem::forget(self);
    }
}

impl Drop for HeldLease<'_> {
    fn drop(&mut self) {
        // SAFETY: as above; releasing lets a waiting writer's open go on.
        unsafe {
            libc::fcntl(self.file.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK);
        }
    }
}

/// Takes a read lease on `file` (open read-only), if it can be had.
pub(super) fn take(file: &File) -> Lease<'_> {
    ignore_lease_breaks();
    // SAFETY: F_SETLEASE on a descriptor open for as long as `file` lives.
    let taken = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, libc::F_RDLCK) };
    if taken == 0 {
        return Lease::Held(HeldLease { file });
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) => Lease::WritersPresent,
        _ => Lease::Unavailable,
    }
}

/// A broken lease signals its holder with SIGIO, whose default action ends
/// the process. We learn of breaks by asking (`unbroken`), so the signal is
/// ignored, unless the program already handles it.
fn ignore_lease_breaks() {
    static IGNORED: Once = Once::new();
    IGNORED.call_once(|| {
        // SAFETY: sigaction with a null new action only reads the current
        // one into a zeroed struct of the right type; signal() then sets
        // SIG_IGN, which runs no code of ours.
        unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGIO, std::ptr::null(), &mut current) == 0
                && current.sa_sigaction == libc::SIG_DFL
            {
                libc::signal(libc::SIGIO, libc::SIG_IGN);
            }
        }
    });
}
