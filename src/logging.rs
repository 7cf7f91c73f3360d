//! Where log lines go: stderr (filtered by `-v` and `RUST_LOG`, as
//! env_logger does), and the system log once the mount daemon has left its
//! terminal, so an EIO's reason is still written somewhere a user can find
//! it (`journalctl -t ninja-fs`).

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};

use log::{Level, Log, Metadata, Record};

/// Set once the process has no terminal left to write to.
static TO_SYSLOG: AtomicBool = AtomicBool::new(false);

/// env_logger's filtering and format, with a switch to the system log.
struct Logger {
    inner: env_logger::Logger,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record) {
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
        self.inner.flush();
    }
}

/// Installs the logger: `default_filter` unless `RUST_LOG` says otherwise.
pub fn init(default_filter: &str) {
    let inner =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_filter))
            .build();
    let max_level = inner.filter();
    if log::set_boxed_logger(Box::new(Logger { inner })).is_ok() {
        log::set_max_level(max_level);
    }
}

/// From now on, log lines go to the system log (the daemon calls this
/// when it points its stdio at /dev/null).
pub fn to_syslog() {
    // SAFETY: the identity is a static C string, as openlog keeps the
    // pointer; the options and facility are plain flags.
    unsafe { libc::openlog(c"ninja-fs".as_ptr(), libc::LOG_PID, libc::LOG_DAEMON) };
    TO_SYSLOG.store(true, Ordering::Relaxed);
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
}
