//! The mount's lifecycle: check the mount point, go to the background,
//! mount, report readiness, unmount cleanly on SIGINT, SIGTERM and SIGHUP,
//! and `ninja-fs unmount`.
//!
//! Works with any [`VirtualFs`]; nothing here knows about ROMs.

use std::ffi::{CString, OsString};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fuser::{Config, MountOption, Session, SessionACL, SessionUnmounter};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::fs::FuseAdapter;
use crate::vfs::VirtualFs;

pub mod options;

/// How long a new mount may take to answer before we give up.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Read-ahead asked of the kernel for the mount (KiB): FUSE serves large
/// requests much faster than the default 128 KiB ones.
const READ_AHEAD_KB: u32 = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Stay in the foreground (logs go to stderr) instead of detaching.
    pub foreground: bool,
    /// Let every user read the mount, not only the one who mounted it
    /// (non-root users need `user_allow_other` in /etc/fuse.conf).
    pub allow_other: bool,
    /// Let root read the mount too, besides the user who mounted it.
    pub allow_root: bool,
    /// Mount with the kernel's `noexec` flag.
    pub no_exec: bool,
    /// The mount's source as /proc/mounts and `df` show it.
    pub fs_name: String,
    /// Request-handling threads; 0 picks twice the cores (4 to 16).
    pub threads: usize,
    /// Mount with the kernel's `ro` flag, so writes fail before they reach
    /// the daemon (which refuses them with EROFS anyway).
    pub kernel_read_only: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            foreground: false,
            allow_other: false,
            allow_root: false,
            no_exec: false,
            fs_name: "ninja-fs".into(),
            threads: 0,
            kernel_read_only: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("backing folder {} does not exist", .0.display())]
    BackingMissing(PathBuf),
    #[error("backing folder {} is not a folder", .0.display())]
    BackingNotFolder(PathBuf),
    #[error("mount point {} does not exist", .0.display())]
    MountPointMissing(PathBuf),
    #[error("mount point {} is not a folder", .0.display())]
    MountPointNotFolder(PathBuf),
    #[error("mount point {} is not empty", .0.display())]
    MountPointNotEmpty(PathBuf),
    #[error(
        "mount point {} is already mounted here ({what}); unmount it first (ninja-fs unmount {})",
        path.display(),
        path.display()
    )]
    AlreadyMounted { path: PathBuf, what: String },
    #[error(
        "mount point {} is inside the backing folder {}: the mount would read itself \
         (and hang); choose a mount point outside it",
        mountpoint.display(),
        backing.display()
    )]
    MountPointInsideBacking {
        mountpoint: PathBuf,
        backing: PathBuf,
    },
    #[error("cannot use {}: {source}", path.display())]
    Inaccessible { path: PathBuf, source: io::Error },
    #[error("cannot mount {}: /dev/fuse is missing (is the fuse kernel module loaded?)", .0.display())]
    NoFuse(PathBuf),
    #[error("cannot mount {}: {source}", path.display())]
    Mount { path: PathBuf, source: io::Error },
    #[error("mounting {} was interrupted by a signal", .0.display())]
    Interrupted(PathBuf),
    #[error("mount point {} did not answer after mounting: {reason}", path.display())]
    NotReady { path: PathBuf, reason: String },
    /// The filesystem could not be built (the text of `make_fs`'s error).
    #[error("{0}")]
    Filesystem(String),
    /// What the background process reported.
    #[error("{0}")]
    Daemon(String),
    #[error("cannot start the background process: {0}")]
    Background(io::Error),
    #[error("cannot watch for signals: {0}")]
    Signals(io::Error),
    #[error("the filesystem at {} stopped with an error: {source}", path.display())]
    Session { path: PathBuf, source: io::Error },
    #[error("{} is not a mount point", .0.display())]
    NotMounted(PathBuf),
    #[error("{} is not a FUSE mount (it is {fstype}); not unmounting it", path.display())]
    NotFuse { path: PathBuf, fstype: String },
    #[error("cannot unmount {}: it is busy (a program has a file or folder open in it)", .0.display())]
    Busy(PathBuf),
    #[error("cannot unmount {}: {source}", path.display())]
    Unmount { path: PathBuf, source: io::Error },
}

/// The backing folder exists and is a folder.
pub fn check_backing(path: &Path) -> Result<(), MountError> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(MountError::BackingNotFolder(path.to_path_buf())),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            Err(MountError::BackingMissing(path.to_path_buf()))
        }
        Err(source) => Err(MountError::Inaccessible {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The mount point exists, is a folder and is empty.
pub fn check_mount_point(path: &Path) -> Result<(), MountError> {
    let inaccessible = |source| MountError::Inaccessible {
        path: path.to_path_buf(),
        source,
    };
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(MountError::MountPointNotFolder(path.to_path_buf())),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(MountError::MountPointMissing(path.to_path_buf()));
        }
        Err(source) => return Err(already_mounted(path).unwrap_or(inaccessible(source))),
    }
    let mut entries = fs::read_dir(path).map_err(inaccessible)?;
    if entries.next().is_some() {
        return Err(already_mounted(path)
            .unwrap_or_else(|| MountError::MountPointNotEmpty(path.to_path_buf())));
    }
    Ok(())
}

/// The error for a mount point something is mounted on, if it is one: a
/// ninja-fs mount is named with its backing folder.
fn already_mounted(path: &Path) -> Option<MountError> {
    let (fstype, source) = mount_entry(&absolute_mount_path(path))?;
    let what = match fstype.as_str() {
        "fuse.ninja-fs" => format!("ninja-fs of {source}"),
        _ => format!("{fstype} of {source}"),
    };
    Some(MountError::AlreadyMounted {
        path: path.to_path_buf(),
        what,
    })
}

/// The mount point is not the backing folder nor anywhere below it (with
/// links resolved): the daemon reading its backing folder would otherwise
/// send requests into its own mount, and wait on itself forever.
pub fn check_outside_backing(backing: &Path, mountpoint: &Path) -> Result<(), MountError> {
    let canonical = |path: &Path| {
        fs::canonicalize(path).map_err(|source| MountError::Inaccessible {
            path: path.to_path_buf(),
            source,
        })
    };
    let (backing_path, mountpoint_path) = (canonical(backing)?, canonical(mountpoint)?);
    if mountpoint_path.starts_with(&backing_path) {
        return Err(MountError::MountPointInsideBacking {
            mountpoint: mountpoint.to_path_buf(),
            backing: backing.to_path_buf(),
        });
    }
    Ok(())
}

fn check_dev_fuse(mountpoint: &Path) -> Result<(), MountError> {
    if Path::new("/dev/fuse").exists() {
        Ok(())
    } else {
        Err(MountError::NoFuse(mountpoint.to_path_buf()))
    }
}

#[derive(Default)]
struct UnmountState {
    /// Set by the first unmount request, even one that arrives before the
    /// session exists.
    requested: bool,
    session: Option<SessionUnmounter>,
}

/// Unmounts a mount started by [`start`]; cheap to clone, usable from any
/// thread (the signal watcher holds one).
#[derive(Clone)]
pub struct Unmounter {
    state: Arc<Mutex<UnmountState>>,
    mountpoint: PathBuf,
}

impl Unmounter {
    fn new(mountpoint: &Path) -> Unmounter {
        Unmounter {
            state: Arc::new(Mutex::new(UnmountState::default())),
            mountpoint: mountpoint.to_path_buf(),
        }
    }

    fn requested(&self) -> bool {
        self.state.lock().map(|s| s.requested).unwrap_or(true)
    }

    /// Hands over the session's unmount handle; unmounts at once if an
    /// unmount was asked for already.
    fn attach(&self, session: SessionUnmounter) -> Result<(), MountError> {
        let requested = match self.state.lock() {
            Ok(mut state) => {
                state.session = Some(session);
                state.requested
            }
            Err(_) => true,
        };
        if requested { self.unmount() } else { Ok(()) }
    }

    /// Unmounts (plain umount); if a program keeps the mount busy, detaches
    /// it so it goes away once the last file is closed, and the daemon
    /// exits then.
    pub fn unmount(&self) -> Result<(), MountError> {
        let session = match self.state.lock() {
            Ok(mut state) => {
                state.requested = true;
                state.session.take()
            }
            Err(_) => None,
        };
        let Some(mut session) = session else {
            return Ok(());
        };
        match session.unmount() {
            Ok(()) => Ok(()),
            Err(error) if error.raw_os_error() == Some(libc::EBUSY) => {
                log::warn!(
                    "{} is busy: detaching it; it goes away when the last open file is closed",
                    self.mountpoint.display()
                );
                detach(&self.mountpoint)
            }
            Err(source) => Err(MountError::Unmount {
                path: self.mountpoint.clone(),
                source,
            }),
        }
    }
}

/// A mounted filesystem served by threads of this process.
pub struct MountedFs {
    thread: Option<JoinHandle<io::Result<()>>>,
    unmounter: Unmounter,
    mountpoint: PathBuf,
}

impl MountedFs {
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    pub fn unmounter(&self) -> Unmounter {
        self.unmounter.clone()
    }

    /// Blocks until the filesystem is unmounted (by [`Unmounter::unmount`],
    /// `ninja-fs unmount` or `umount`).
    pub fn wait(mut self) -> Result<(), MountError> {
        self.join()
    }

    /// Unmounts and waits for the session to end.
    pub fn unmount(mut self) -> Result<(), MountError> {
        self.unmounter.unmount()?;
        self.join()
    }

    fn join(&mut self) -> Result<(), MountError> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let session_error = |source| MountError::Session {
            path: self.mountpoint.clone(),
            source,
        };
        match thread.join() {
            Ok(result) => result.map_err(session_error),
            Err(_) => Err(session_error(io::Error::other(
                "a request handler panicked",
            ))),
        }
    }
}

impl Drop for MountedFs {
    fn drop(&mut self) {
        if self.thread.is_some() {
            if let Err(error) = self.unmounter.unmount() {
                log::warn!("{error}");
            }
            if let Err(error) = self.join() {
                log::warn!("{error}");
            }
        }
    }
}

fn threads(opts: &MountOptions) -> usize {
    if opts.threads > 0 {
        return opts.threads;
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cores * 2).clamp(4, 16)
}

fn fuser_config(opts: &MountOptions) -> Config {
    let mut config = Config::default();
    // Never dev or suid, whatever `mount` passes (it says `dev,suid` by
    // default): nothing in the mount is a device or a setuid program.
    // The subtype as a kernel option: fuser's Subtype reaches fusermount
    // only, and without it /proc/mounts says `fuse`, not `fuse.ninja-fs`
    // (which `mount -a` and `findmnt -t fuse.ninja-fs` look for).
    config.mount_options = vec![
        MountOption::FSName(opts.fs_name.clone()),
        MountOption::CUSTOM("subtype=ninja-fs".into()),
        MountOption::DefaultPermissions,
        MountOption::NoAtime,
        MountOption::NoSuid,
        MountOption::NoDev,
    ];
    if opts.kernel_read_only {
        config.mount_options.push(MountOption::RO);
    }
    if opts.no_exec {
        config.mount_options.push(MountOption::NoExec);
    }
    if opts.allow_other {
        config.acl = SessionACL::All;
    } else if opts.allow_root {
        config.acl = SessionACL::RootAndOwner;
    }
    config.n_threads = Some(threads(opts));
    config.clone_fd = true;
    config
}

/// Mounts `fs` at `mountpoint` and serves it from threads of this process;
/// returns once the mount answers. No fork, no signal handling: the
/// building block of [`mount`], and what tests use.
pub fn start<F: VirtualFs>(
    fs: F,
    mountpoint: &Path,
    opts: &MountOptions,
) -> Result<MountedFs, MountError> {
    start_with(fs, mountpoint, opts, None)
}

fn start_with<F: VirtualFs>(
    fs: F,
    mountpoint: &Path,
    opts: &MountOptions,
    unmounter: Option<Unmounter>,
) -> Result<MountedFs, MountError> {
    check_mount_point(mountpoint)?;
    check_dev_fuse(mountpoint)?;
    let mountpoint = fs::canonicalize(mountpoint).map_err(|source| MountError::Inaccessible {
        path: mountpoint.to_path_buf(),
        source,
    })?;
    let unmounter = unmounter.unwrap_or_else(|| Unmounter::new(&mountpoint));
    let mount_error = |source| MountError::Mount {
        path: mountpoint.clone(),
        source,
    };
    let before = fs::metadata(&mountpoint).map_err(mount_error)?.dev();
    if unmounter.requested() {
        return Err(MountError::Interrupted(mountpoint));
    }

    let adapter = FuseAdapter::new(fs);
    let notifier = adapter.notifier_slot();
    let mut session =
        Session::new(adapter, &mountpoint, &fuser_config(opts)).map_err(mount_error)?;
    let _ = notifier.set(session.notifier());
    unmounter.attach(session.unmount_callable())?;
    let thread = std::thread::Builder::new()
        .name("ninja-fs-session".into())
        .spawn(move || session.run())
        .map_err(mount_error)?;
    let mut mounted = MountedFs {
        thread: Some(thread),
        unmounter,
        mountpoint: mountpoint.clone(),
    };
    match wait_ready(&mounted, before) {
        Ok(dev) => {
            if dev != before {
                raise_read_ahead(dev);
            }
            Ok(mounted)
        }
        Err(reason) => {
            let _ = mounted.unmounter.unmount();
            let _ = mounted.join();
            Err(MountError::NotReady {
                path: mountpoint,
                reason,
            })
        }
    }
}

/// Waits until a `stat` of the mount point is answered by the new mount
/// (its device changes); returns that device, or the old one when an
/// unmount was asked for meanwhile.
fn wait_ready(mounted: &MountedFs, before: u64) -> Result<u64, String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if mounted.unmounter.requested() {
            // A signal after the mount was made: not a failure to mount.
            // The session ends by itself once the unmount goes through.
            return Ok(before);
        }
        if mounted.thread.as_ref().is_none_or(|t| t.is_finished()) {
            return Err("the filesystem session ended".into());
        }
        match fs::metadata(&mounted.mountpoint) {
            Ok(meta) if meta.dev() != before => return Ok(meta.dev()),
            Ok(_) => {}
            Err(error) if Instant::now() >= deadline => return Err(error.to_string()),
            Err(_) => {}
        }
        if Instant::now() >= deadline {
            return Err("timed out".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Best effort: raise the mount's read-ahead (root only).
fn raise_read_ahead(dev: u64) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let path = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
    if let Err(error) = fs::write(&path, format!("{READ_AHEAD_KB}\n")) {
        log::debug!("cannot raise read-ahead in {path}: {error}");
    }
}

/// Stops the signal watcher thread when dropped.
struct SignalWatcher {
    handle: signal_hook::iterator::Handle,
    thread: Option<JoinHandle<()>>,
}

impl SignalWatcher {
    /// SIGINT, SIGTERM and SIGHUP unmount through `unmounter`.
    fn start(unmounter: Unmounter) -> Result<SignalWatcher, MountError> {
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(MountError::Signals)?;
        let handle = signals.handle();
        let thread = std::thread::Builder::new()
            .name("ninja-fs-signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    log::info!("signal {signal}: unmounting");
                    notify_systemd(sd_notify::NotifyState::Stopping);
                    if let Err(error) = unmounter.unmount() {
                        log::warn!("{error}");
                    }
                }
            })
            .map_err(MountError::Signals)?;
        Ok(SignalWatcher {
            handle,
            thread: Some(thread),
        })
    }
}

impl Drop for SignalWatcher {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Mounts the filesystem `make_fs` builds at `mountpoint` and serves it
/// until it is unmounted (SIGINT, SIGTERM and SIGHUP unmount it).
///
/// In the foreground this returns once the filesystem is unmounted.
/// Otherwise the process forks first (so call this before any thread
/// exists); `make_fs` runs in the child, which mounts and reports to the
/// parent; this returns in the parent once the mount answers (`Ok`) or
/// failed (`Err`, with the child's message). The child never returns: it
/// exits once the filesystem is unmounted. `make_fs` should use absolute
/// paths, as the background process works from `/`.
pub fn mount<F: VirtualFs>(
    make_fs: impl FnOnce() -> Result<F, String>,
    mountpoint: &Path,
    opts: &MountOptions,
) -> Result<(), MountError> {
    check_mount_point(mountpoint)?;
    check_dev_fuse(mountpoint)?;
    if opts.foreground {
        // Under systemd (Type=notify), the unit is started once the mount
        // answers.
        return serve(make_fs, mountpoint, opts, |ready| {
            if ready.is_ok() {
                notify_systemd(sd_notify::NotifyState::Ready);
            }
        });
    }

    let (mut reader, writer) = io::pipe().map_err(MountError::Background)?;
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    // SAFETY: fork has no memory-safety preconditions of its own; the
    // caller guarantees (documented above) that no other thread exists, so
    // the child's copy of the process is consistent.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(MountError::Background(io::Error::last_os_error()));
    }
    if pid == 0 {
        drop(reader);
        // SAFETY: setsid takes no arguments; in a fresh child that is not a
        // process group leader it cannot fail in a way that matters.
        unsafe { libc::setsid() };
        let mut writer = Some(writer);
        let mut report = |message: &str| {
            if let Some(mut pipe) = writer.take() {
                let _ = pipe.write_all(message.as_bytes());
            }
        };
        let result = serve(make_fs, mountpoint, opts, |ready| match ready {
            Ok(()) => {
                // Let go of the terminal and of whoever waits on our
                // output before the parent returns.
                detach_stdio();
                crate::logging::detach();
                let _ = std::env::set_current_dir("/");
                report("OK");
            }
            Err(message) => report(&format!("ERR {message}")),
        });
        std::process::exit(if result.is_ok() { 0 } else { 1 });
    }

    drop(writer);
    let mut message = String::new();
    let read = reader.read_to_string(&mut message);
    if message == "OK" {
        return Ok(());
    }
    // The child failed: reap it.
    let mut status = 0;
    // SAFETY: pid is our child; status points to a live c_int.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    match (read, message.strip_prefix("ERR ")) {
        (_, Some(text)) => Err(MountError::Daemon(text.to_string())),
        (Err(error), None) => Err(MountError::Background(error)),
        (Ok(_), None) => Err(MountError::Daemon(format!(
            "the background process for {} exited before the mount was ready",
            mountpoint.display()
        ))),
    }
}

/// Watch signals, build, mount, tell `ready` how that went, serve.
fn serve<F: VirtualFs>(
    make_fs: impl FnOnce() -> Result<F, String>,
    mountpoint: &Path,
    opts: &MountOptions,
    mut ready: impl FnMut(Result<(), String>),
) -> Result<(), MountError> {
    let unmounter = Unmounter::new(mountpoint);
    let started = SignalWatcher::start(unmounter.clone()).and_then(|watcher| {
        let fs = make_fs().map_err(MountError::Filesystem)?;
        let mounted = start_with(fs, mountpoint, opts, Some(unmounter))?;
        Ok((watcher, mounted))
    });
    match started {
        Ok((watcher, mounted)) => {
            // After `ready`: a daemon's log goes to the system log by then,
            // and `ninja-fs mount` stays quiet when it works.
            ready(Ok(()));
            log::info!("mounted {}", mounted.mountpoint().display());
            let result = mounted.wait();
            drop(watcher);
            log::info!("unmounted {}", mountpoint.display());
            result
        }
        Err(error) => {
            ready(Err(error.to_string()));
            Err(error)
        }
    }
}

/// Tells systemd how the service is doing, when it runs under systemd
/// (`NOTIFY_SOCKET` set); else does nothing.
fn notify_systemd(state: sd_notify::NotifyState) {
    if let Err(error) = sd_notify::notify(&[state]) {
        log::warn!("cannot notify systemd: {error}");
    }
}

/// Points stdin, stdout and stderr at /dev/null.
fn detach_stdio() {
    let Ok(null) = File::options().read(true).write(true).open("/dev/null") else {
        return;
    };
    for fd in 0..=2 {
        // SAFETY: both are open descriptors; dup2 replaces `fd` atomically.
        unsafe { libc::dup2(null.as_raw_fd(), fd) };
    }
}

fn c_path(path: &Path) -> Result<CString, MountError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| MountError::Unmount {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "the path holds a NUL byte"),
    })
}

/// Lazy unmount: gone from the tree now, ends once nothing uses it.
fn detach(mountpoint: &Path) -> Result<(), MountError> {
    let c = c_path(mountpoint)?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
        Ok(())
    } else {
        Err(MountError::Unmount {
            path: mountpoint.to_path_buf(),
            source: io::Error::last_os_error(),
        })
    }
}

/// The absolute path of `path` without resolving its last component, which
/// may be a dead mount that cannot be `stat`ed.
fn absolute_mount_path(path: &Path) -> PathBuf {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            fs::canonicalize(parent)
                .map(|p| p.join(name))
                .unwrap_or_else(|_| path.to_path_buf())
        }
        _ => fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
    }
}

/// Undoes /proc/self/mountinfo's octal escapes (`\040` for a space...).
fn unescape_mountinfo(field: &str) -> OsString {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let digits = field.get(i + 1..i + 4).unwrap_or("");
            if digits.len() == 3
                && digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
                && let Ok(value) = u8::from_str_radix(digits, 8)
            {
                out.push(value);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    OsString::from_vec(out)
}

/// The filesystem type mounted at `path` (the topmost mount), if any.
pub fn mount_type(path: &Path) -> Option<String> {
    mount_entry(path).map(|(fstype, _)| fstype)
}

/// The filesystem type and source of the topmost mount at `path`, if any.
fn mount_entry(path: &Path) -> Option<(String, String)> {
    let table = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut found = None;
    for line in table.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let (Some(point), Some(dash)) = (fields.get(4), fields.iter().position(|f| *f == "-"))
        else {
            continue;
        };
        if Path::new(&unescape_mountinfo(point)) == path
            && let Some(fstype) = fields.get(dash + 1)
        {
            let source = fields
                .get(dash + 2)
                .map_or(OsString::new(), |s| unescape_mountinfo(s));
            found = Some((fstype.to_string(), source.to_string_lossy().into_owned()));
        }
    }
    found
}

/// Unmounts the FUSE mount at `mountpoint` (plain umount; `fusermount3 -u`
/// when not allowed, as for a non-root user).
/// How long an unmount waits, in all, for a mount that is busy.
const UNMOUNT_BUSY_WAIT: Duration = Duration::from_millis(400);

pub fn unmount(mountpoint: &Path) -> Result<(), MountError> {
    let path = absolute_mount_path(mountpoint);
    let Some(fstype) = mount_type(&path) else {
        return Err(match fs::symlink_metadata(mountpoint) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                MountError::MountPointMissing(mountpoint.to_path_buf())
            }
            _ => MountError::NotMounted(mountpoint.to_path_buf()),
        });
    };
    if !fstype.starts_with("fuse") {
        return Err(MountError::NotFuse {
            path: mountpoint.to_path_buf(),
            fstype,
        });
    }
    let c = c_path(&path)?;
    // A file closed a moment ago can still be held by a child process
    // forked before it closed and not yet exec'd (which closes it): busy
    // for a few milliseconds. A mount still in use stays busy throughout.
    let mut pause = Duration::from_millis(10);
    let error = loop {
        // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
        if unsafe { libc::umount(c.as_ptr()) } == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EBUSY) || pause > UNMOUNT_BUSY_WAIT {
            break error;
        }
        std::thread::sleep(pause);
        pause *= 2;
    };
    match error.raw_os_error() {
        Some(libc::EBUSY) => Err(MountError::Busy(mountpoint.to_path_buf())),
        Some(libc::EPERM) => fusermount_unmount(&path).map_err(|source| MountError::Unmount {
            path: mountpoint.to_path_buf(),
            source,
        }),
        _ => Err(MountError::Unmount {
            path: mountpoint.to_path_buf(),
            source: error,
        }),
    }
}

fn fusermount_unmount(path: &Path) -> io::Result<()> {
    let mut last = io::Error::new(io::ErrorKind::PermissionDenied, "not allowed");
    for tool in ["fusermount3", "fusermount"] {
        match Command::new(tool).arg("-u").arg("--").arg(path).output() {
            Ok(output) if output.status.success() => return Ok(()),
            Ok(output) => {
                last = io::Error::other(String::from_utf8_lossy(&output.stderr).trim().to_string());
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => last = error,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(
            unescape_mountinfo("/mnt/a\\040b"),
            OsString::from("/mnt/a b")
        );
        assert_eq!(unescape_mountinfo("/x\\134y"), OsString::from("/x\\y"));
        assert_eq!(
            unescape_mountinfo("/trailing\\"),
            OsString::from("/trailing\\")
        );
        assert_eq!(
            unescape_mountinfo("/short\\04"),
            OsString::from("/short\\04")
        );
    }

    #[test]
    fn root_is_mounted() {
        assert!(mount_type(Path::new("/")).is_some());
        assert!(mount_type(Path::new("/definitely/not/here")).is_none());
    }

    #[test]
    fn mount_point_checks() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        assert_eq!(
            check_mount_point(&missing).unwrap_err().to_string(),
            format!("mount point {} does not exist", missing.display())
        );
        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        assert_eq!(
            check_mount_point(&file).unwrap_err().to_string(),
            format!("mount point {} is not a folder", file.display())
        );
        assert_eq!(
            check_mount_point(dir.path()).unwrap_err().to_string(),
            format!("mount point {} is not empty", dir.path().display())
        );
        let empty = dir.path().join("empty");
        fs::create_dir(&empty).unwrap();
        check_mount_point(&empty).unwrap();
        assert!(matches!(
            check_backing(&missing),
            Err(MountError::BackingMissing(_))
        ));
        assert!(matches!(
            check_backing(&file),
            Err(MountError::BackingNotFolder(_))
        ));
    }
}
