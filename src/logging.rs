//! Where log lines go: stderr (filtered by `-v` and `RUST_LOG`, as
//! env_logger does) while the process has a terminal; once the mount
//! daemon has left it, the system log when one answers on `/dev/log`
//! (`journalctl -t ninja-fs`), else a file,
//! `$XDG_STATE_HOME/ninja-fs/<MD5 of the mount point>.log` (rotated at
//! 4 MiB, one old file kept as `.log.1`); `--log-file` chooses a file in
//! either mode. The same filter applies everywhere, so an EIO's reason is
//! written somewhere a user can find it.

use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use log::{Level, Log, Metadata, Record};

/// A log file is renamed to `<name>.1` once it would grow past this.
pub const ROTATE_AT: u64 = 4 << 20;

/// Set once the process logs to the system log.
static TO_SYSLOG: AtomicBool = AtomicBool::new(false);
/// The filter `init` was given (before `RUST_LOG`), for the file logger.
static DEFAULT_FILTER: OnceLock<String> = OnceLock::new();
/// The file logger, once log lines go to a file.
static FILE: OnceLock<env_logger::Logger> = OnceLock::new();
/// The file a daemon switches to when it detaches (none: the system log).
static PREPARED: Mutex<Option<env_logger::Logger>> = Mutex::new(None);

/// Where a detached mount daemon's log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    SystemLog,
    File(PathBuf),
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::SystemLog => f.write_str("the system log (journalctl -t ninja-fs)"),
            Destination::File(path) => write!(f, "{}", path.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot write the log file {}: {source}; choose another with --log-file", path.display())]
    File { path: PathBuf, source: io::Error },
    #[error(
        "no folder for the log file: XDG_STATE_HOME and HOME are unset or relative and the \
         password database gives no home; choose a file with --log-file"
    )]
    NoStateHome,
}

/// env_logger's filtering and format, with a switch to the system log or
/// a file.
struct Logger {
    inner: env_logger::Logger,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        if let Some(file) = FILE.get() {
            if file.matches(record) {
                file.log(record);
            }
            return;
        }
        if !self.inner.matches(record) {
            return;
        }
        if TO_SYSLOG.load(Ordering::Relaxed) {
            let line = syslog_line(record);
            // SAFETY: the format is a literal "%s" and `line` a valid C
            // string that outlives the call.
            unsafe {
                libc::syslog(
                    syslog_priority(record.level()),
                    c"%s".as_ptr(),
                    line.as_ptr(),
                )
            };
        } else {
            self.inner.log(record);
        }
    }

    fn flush(&self) {
        match FILE.get() {
            Some(file) => file.flush(),
            None => self.inner.flush(),
        }
    }
}

fn builder() -> env_logger::Builder {
    let default = DEFAULT_FILTER.get().map_or("warn", String::as_str);
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
}

/// Installs the logger: `default_filter` unless `RUST_LOG` says otherwise.
pub fn init(default_filter: &str) {
    let _ = DEFAULT_FILTER.set(default_filter.to_string());
    let inner = builder().build();
    let max_level = inner.filter();
    if log::set_boxed_logger(Box::new(Logger { inner })).is_ok() {
        log::set_max_level(max_level);
    }
}

/// Whether a system log answers on `/dev/log`.
pub fn system_log_answers() -> bool {
    UnixDatagram::unbound().is_ok_and(|socket| socket.connect("/dev/log").is_ok())
}

/// `$XDG_STATE_HOME/ninja-fs/<MD5 of the mount point's absolute path>.log`
/// (`~/.local/state/ninja-fs/...` when XDG_STATE_HOME is unset).
pub fn default_log_file(mountpoint: &Path) -> Option<PathBuf> {
    let mountpoint = fs::canonicalize(mountpoint)
        .or_else(|_| std::path::absolute(mountpoint))
        .unwrap_or_else(|_| mountpoint.to_path_buf());
    let name = crate::digest::hex(&crate::digest::md5(mountpoint.as_os_str().as_bytes()));
    crate::xdg::state_home().map(|dir| dir.join("ninja-fs").join(format!("{name}.log")))
}

/// Chooses where the mount daemon for `mountpoint` logs once it detaches:
/// `log_file` if given, else the system log if one answers, else
/// [`default_log_file`]. A file is opened now, so a failure is reported
/// before mounting; [`detach`] switches to it.
pub fn prepare_daemon(log_file: Option<&Path>, mountpoint: &Path) -> Result<Destination, LogError> {
    let path = match log_file {
        Some(path) => path.to_path_buf(),
        None if system_log_answers() => return Ok(Destination::SystemLog),
        None => default_log_file(mountpoint).ok_or(LogError::NoStateHome)?,
    };
    let (logger, path) = file_logger(&path)?;
    if let Ok(mut prepared) = PREPARED.lock() {
        *prepared = Some(logger);
    }
    Ok(Destination::File(path))
}

/// From now on, log lines go to the file at `path` (for `-f --log-file`).
pub fn to_file(path: &Path) -> Result<Destination, LogError> {
    let (logger, path) = file_logger(path)?;
    let _ = FILE.set(logger);
    Ok(Destination::File(path))
}

/// The daemon has left its terminal: log lines go where [`prepare_daemon`]
/// chose (the system log unless it opened a file).
pub fn detach() {
    let prepared = PREPARED.lock().ok().and_then(|mut p| p.take());
    match prepared {
        Some(logger) => {
            let _ = FILE.set(logger);
        }
        None => to_syslog(),
    }
}

/// From now on, log lines go to the system log.
pub fn to_syslog() {
    // SAFETY: the identity is a static C string, as openlog keeps the
    // pointer; the options and facility are plain flags.
    unsafe { libc::openlog(c"ninja-fs".as_ptr(), libc::LOG_PID, libc::LOG_DAEMON) };
    TO_SYSLOG.store(true, Ordering::Relaxed);
}

/// An env_logger writing to the file at `path` (made absolute: the daemon
/// works from `/`), with the same filter as stderr.
fn file_logger(path: &Path) -> Result<(env_logger::Logger, PathBuf), LogError> {
    let error = |source| LogError::File {
        path: path.to_path_buf(),
        source,
    };
    let path = std::path::absolute(path).map_err(error)?;
    let file = RotatingFile::open(&path, ROTATE_AT).map_err(error)?;
    let logger = builder()
        .target(env_logger::Target::Pipe(Box::new(file)))
        .write_style(env_logger::WriteStyle::Never)
        .build();
    Ok((logger, path))
}

/// A log file that is renamed to `<name>.1` (replacing the last one) and
/// started again once a line would take it past `limit` bytes.
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    size: u64,
    limit: u64,
}

impl RotatingFile {
    /// Opens `path` for appending, making its folder (mode 700) and the
    /// file (mode 600) if needed.
    pub fn open(path: &Path, limit: u64) -> io::Result<RotatingFile> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        let file = Self::open_file(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            file,
            size,
            limit,
        })
    }

    fn open_file(path: &Path) -> io::Result<File> {
        fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
    }

    /// `<name>.1`, where the previous file goes.
    pub fn rotated_path(path: &Path) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(".1");
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        fs::rename(&self.path, Self::rotated_path(&self.path))?;
        self.file = Self::open_file(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.size > 0 && self.size + buf.len() as u64 > self.limit {
            // Best effort: when the file cannot be renamed, it grows.
            let _ = self.rotate();
        }
        let written = self.file.write(buf)?;
        self.size += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn syslog_priority(level: Level) -> libc::c_int {
    match level {
        Level::Error => libc::LOG_ERR,
        Level::Warn => libc::LOG_WARNING,
        Level::Info => libc::LOG_INFO,
        Level::Debug | Level::Trace => libc::LOG_DEBUG,
    }
}

/// `target: message`, with any NUL byte (a file name may hold anything
/// the kernel allows, but not NUL; a message might) made visible.
fn syslog_line(record: &Record) -> CString {
    let text = format!("{}: {}", record.target(), record.args());
    CString::new(text.replace('\0', "\\0")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(syslog_priority(Level::Error), libc::LOG_ERR);
        assert_eq!(syslog_priority(Level::Warn), libc::LOG_WARNING);
        assert_eq!(syslog_priority(Level::Info), libc::LOG_INFO);
        assert_eq!(syslog_priority(Level::Trace), libc::LOG_DEBUG);
    }

    #[test]
    fn lines_name_their_source_and_survive_nul_bytes() {
        let line = syslog_line(
            &Record::builder()
                .target("ninja_fs::views")
                .args(format_args!("snes/Game\0.smc: cannot read"))
                .build(),
        );
        assert_eq!(
            line.to_str().unwrap(),
            "ninja_fs::views: snes/Game\\0.smc: cannot read"
        );
    }

    #[test]
    fn log_files_rotate_keeping_one_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/ninja-fs/x.log");
        let mut file = RotatingFile::open(&path, 100).unwrap();
        let line = [b'a'; 39];
        for _ in 0..2 {
            file.write_all(&line).unwrap();
        }
        assert_eq!(fs::read(&path).unwrap().len(), 78);
        file.write_all(b"third line, past 100 bytes\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"third line, past 100 bytes\n");
        let rotated = RotatingFile::rotated_path(&path);
        assert_eq!(rotated, dir.path().join("state/ninja-fs/x.log.1"));
        assert_eq!(fs::read(&rotated).unwrap().len(), 78);
        // Reopened, it goes on from the size it has.
        drop(file);
        let mut file = RotatingFile::open(&path, 100).unwrap();
        file.write_all(&[b'b'; 80]).unwrap();
        assert_eq!(fs::read(&rotated).unwrap(), b"third line, past 100 bytes\n");
        assert_eq!(fs::read(&path).unwrap(), [b'b'; 80]);
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
    }

    #[test]
    fn a_log_file_that_cannot_be_made_is_named() {
        let error = file_logger(Path::new("/proc/no/such/ninja-fs.log")).unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with("cannot write the log file /proc/no/such/ninja-fs.log: "),
            "{text}"
        );
        assert!(text.ends_with("; choose another with --log-file"), "{text}");
    }

    #[test]
    fn default_log_files_are_named_by_the_mount_point() {
        let a = default_log_file(Path::new("/mnt/a")).unwrap();
        let b = default_log_file(Path::new("/mnt/b")).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.parent().unwrap().file_name().unwrap(), "ninja-fs");
        assert_eq!(a.extension().unwrap(), "log");
        assert_eq!(a.file_stem().unwrap().len(), 32);
    }
}
