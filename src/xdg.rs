//! The user's folders, as the XDG base directory specification names them.
//! `mount(8)` runs its helpers without `HOME`, so the home folder falls
//! back to the password database.

use std::ffi::CStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// An environment variable holding an absolute path (relative values are
/// ignored, as the specification says).
fn absolute(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|path| path.is_absolute())
}

/// `$HOME`, else the home folder the password database gives this user.
pub fn home() -> Option<PathBuf> {
    absolute("HOME").or_else(passwd_home)
}

/// `$XDG_STATE_HOME`, else `~/.local/state`.
pub fn state_home() -> Option<PathBuf> {
    absolute("XDG_STATE_HOME").or_else(|| home().map(|home| home.join(".local/state")))
}

/// `$XDG_CACHE_HOME`, else `~/.cache`.
pub fn cache_home() -> Option<PathBuf> {
    absolute("XDG_CACHE_HOME").or_else(|| home().map(|home| home.join(".cache")))
}

fn passwd_home() -> Option<PathBuf> {
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: a zeroed passwd is a valid out-buffer for getpwuid_r.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call, and the buffer's length
    // is the one given.
    let status = unsafe {
        libc::getpwuid_r(
            libc::geteuid(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if status != 0 || found.is_null() || entry.pw_dir.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so pw_dir points to a NUL-terminated
    // string inside `buffer`, which is still alive.
    let dir = unsafe { CStr::from_ptr(entry.pw_dir) };
    let path = PathBuf::from(std::ffi::OsStr::from_bytes(dir.to_bytes()));
    path.is_absolute().then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_database_knows_this_user() {
        // Every user running the tests has an entry with an absolute home.
        assert!(passwd_home().is_some_and(|home| home.is_absolute()));
    }
}
