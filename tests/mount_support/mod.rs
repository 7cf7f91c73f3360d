//! Helpers for the real-mount tests: what the mount should show for a
//! backing folder is a [`Scenario`] (its expectations come from the
//! filesystem core run in this process, itself tested against the engine),
//! and building the filesystem in-process is [`make_fs`].
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use ninja_fs::mount::{self, MountOptions, MountedFs};
use ninja_fs::vfs::VirtualFs;

/// Skips the test (returning from it) when FUSE cannot be used here.
#[macro_export]
macro_rules! require_fuse {
    () => {
        if let Some(reason) = $crate::mount_support::fuse_unavailable() {
            eprintln!("skipped: {reason}");
            return;
        }
    };
}

/// What the mount shows for a backing folder.
pub trait Scenario: Sync {
    /// Fills an empty backing folder.
    fn populate(&self, backing: &Path);
    /// Every file the mount shows (path relative to the mount) with its bytes.
    fn expected(&self, backing: &Path) -> BTreeMap<PathBuf, Vec<u8>>;
    /// Changes the backing folder so that one shown file gets new bytes of
    /// a new size; returns that file's path relative to the mount.
    fn change(&self, backing: &Path, round: u32) -> PathBuf;
    /// A shown file that fails to open with EIO, if the scenario has one.
    fn broken(&self) -> Option<PathBuf>;
    /// A shown folder (relative), for folder tests.
    fn folder(&self) -> PathBuf;
}

pub fn fixture_bytes(rel: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn put(backing: &Path, rel: &str, bytes: &[u8]) {
    let path = backing.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

/// A backing folder of real ROMs and patches, as in the design's example:
/// a headered SNES ROM with a sidecar IPS, a BPS elsewhere pairing by
/// checksum and a broken sidecar BPS, a v64, a UNIF, an LNX, and a note.
pub struct Roms;

/// The filesystem core in this process over `backing`: the oracle for what
/// the mount must show.
fn core(backing: &Path) -> ninja_fs::views::NinjaFs {
    ninja_fs::views::NinjaFs::new(backing, 64 << 20, ninja_fs::patch::Limits::default()).unwrap()
}

impl Scenario for Roms {
    fn populate(&self, backing: &Path) {
        put(
            backing,
            "snes/Game.smc",
            &fixture_bytes("roms/snes/cputest-basic.smc"),
        );
        put(
            backing,
            "snes/Game.ips",
            &fixture_bytes("patches/snes_cputest_basic2full.flips.ips"),
        );
        put(backing, "snes/Game.bps", b"BPS1\x80 not a whole patch");
        put(
            backing,
            "patches/Translation v1.2.bps",
            &fixture_bytes("patches/snes_cputest_basic2full.flips-delta.bps"),
        );
        put(
            backing,
            "n64/Mario.v64",
            &fixture_bytes("roms/n64/bigbass1997_minimal.v64"),
        );
        put(
            backing,
            "nes/Zelda.unf",
            &fixture_bytes("roms/nes/nes15-NTSC.unf"),
        );
        put(
            backing,
            "lynx/hello world.lnx",
            &fixture_bytes("roms/lynx/cc65_tgi_hello.lnx"),
        );
        put(backing, "notes.txt", b"not a ROM\n");
        fs::create_dir_all(backing.join("empty")).unwrap();
    }

    fn expected(&self, backing: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        use ninja_fs::vfs::{NodeKind, ROOT_INO};
        let fs = core(backing);
        let mut files = BTreeMap::new();
        let mut pending = vec![(ROOT_INO, PathBuf::new())];
        while let Some((ino, relative)) = pending.pop() {
            for entry in fs.readdir(ino).unwrap() {
                let path = relative.join(&entry.name);
                if entry.attributes.kind == NodeKind::Directory {
                    pending.push((entry.attributes.ino, path));
                    continue;
                }
                let Ok(opened) = fs.open(entry.attributes.ino) else {
                    continue;
                };
                let bytes = fs.read(opened.handle, 0, u32::MAX).unwrap();
                fs.release(opened.handle);
                files.insert(path, bytes);
            }
        }
        files
    }

    fn change(&self, backing: &Path, round: u32) -> PathBuf {
        // The v64 is replaced by a big-endian image of another size.
        let mut image = fixture_bytes("roms/n64/bigbass1997_minimal.z64");
        image.truncate(0x8000 * (round as usize + 1));
        image[0x20] = b'A' + round as u8;
        let file = backing.join("n64/Mario.v64");
        fs::write(&file, &image).unwrap();
        // Coarse clocks may give two writes in a row one mtime: make it differ.
        let when = SystemTime::now() + Duration::from_secs(10 * (u64::from(round) + 1));
        fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(when)
            .unwrap();
        PathBuf::from("normalized/n64/Mario.z64")
    }

    fn broken(&self) -> Option<PathBuf> {
        Some(PathBuf::from("patched/snes/Game [Game.bps].sfc"))
    }

    fn folder(&self) -> PathBuf {
        PathBuf::from("normalized/snes")
    }
}

/// The scenario every test uses.
pub fn scenario() -> &'static dyn Scenario {
    &Roms
}

/// The filesystem for in-process mounts of `backing`.
pub fn make_fs(backing: &Path) -> impl VirtualFs {
    core(backing)
}

/// The binary, with its header cache and log files under the build's
/// temporary folder rather than in the real ~/.cache and ~/.local/state.
pub fn ninja() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ninja-fs"));
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    command.env("XDG_CACHE_HOME", tmp.join("xdg-cache"));
    command.env("XDG_STATE_HOME", tmp.join("xdg-state"));
    command
}

/// A temporary backing folder (populated) and an empty mount point.
/// Fields drop in order: whatever is mounted goes before the folders.
pub struct Dirs {
    pub backing: PathBuf,
    pub mnt: PathBuf,
    root: tempfile::TempDir,
}

impl Dirs {
    pub fn new() -> Dirs {
        let root = tempfile::tempdir().unwrap();
        let backing = root.path().join("backing");
        let mnt = root.path().join("mnt");
        fs::create_dir(&backing).unwrap();
        fs::create_dir(&mnt).unwrap();
        scenario().populate(&backing);
        Dirs { backing, mnt, root }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The XDG_CACHE_HOME of this test's daemons (gone with the folders).
    pub fn cache_home(&self) -> PathBuf {
        self.root.path().join("xdg-cache")
    }
}

/// Mounts `backing` at `mnt` as the daemon does, with `args` and no header
/// cache; the mount must start. Its guard, and what it wrote to stderr.
pub fn mount_with_args<I, S>(backing: &Path, mnt: &Path, args: I) -> (MountGuard, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let output = ninja()
        .arg("mount")
        .arg(backing)
        .arg(mnt)
        .args(args)
        .arg("--no-header-cache")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    let guard = MountGuard {
        path: mnt.to_path_buf(),
    };
    (guard, stderr)
}

/// Unmounts on drop (if still mounted), so a failing test leaves nothing.
pub struct MountGuard {
    pub path: PathBuf,
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if is_mounted(&self.path) {
            if mount::unmount(&self.path).is_err() {
                let _ = Command::new("umount").arg("-l").arg(&self.path).status();
            }
            let path = self.path.clone();
            wait_until(Duration::from_secs(5), || !is_mounted(&path));
        }
    }
}

/// A test's folders and the in-process mount of them.
pub struct InProcess {
    pub mounted: Option<MountedFs>,
    pub guard: MountGuard,
    pub dirs: Dirs,
}

impl InProcess {
    pub fn new(opts: &MountOptions) -> InProcess {
        let dirs = Dirs::new();
        let mounted = mount::start(make_fs(&dirs.backing), &dirs.mnt, opts).unwrap();
        InProcess {
            mounted: Some(mounted),
            guard: MountGuard {
                path: dirs.mnt.clone(),
            },
            dirs,
        }
    }

    pub fn path(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.dirs.mnt.join(relative)
    }
}

/// Mounts through the binary (in the background); panics unless it works.
pub fn mount_daemon(dirs: &Dirs) -> MountGuard {
    let output = ninja()
        .arg("mount")
        .arg(&dirs.backing)
        .arg(&dirs.mnt)
        .env("XDG_CACHE_HOME", dirs.cache_home())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "mount failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_says_where_logs_go(&output, dirs);
    MountGuard {
        path: dirs.mnt.clone(),
    }
}

/// A background mount prints one line, saying where its log goes, and
/// nothing else.
pub fn assert_says_where_logs_go(output: &Output, dirs: &Dirs) {
    assert!(output.stdout.is_empty(), "{output:?}");
    let said = stderr(output);
    let expected = format!(
        "ninja-fs: mounted {} at {}; the log goes to ",
        dirs.backing.display(),
        dirs.mnt.display()
    );
    assert!(
        said.starts_with(&expected) && said.ends_with('\n') && said.lines().count() == 1,
        "{said}"
    );
}

pub fn run(command: &mut Command) -> Output {
    command.output().unwrap()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn is_mounted(path: &Path) -> bool {
    mount::mount_type(path).is_some()
}

pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The pid of the ninja-fs process serving `mnt` (found by its arguments).
pub fn daemon_pid(mnt: &Path) -> Option<i32> {
    let wanted = mnt.as_os_str().as_encoded_bytes();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let is_ours = args.first().is_some_and(|a| a.ends_with(b"ninja-fs"));
        if is_ours && args.contains(&b"mount".as_slice()) && args.contains(&wanted) && !gone(pid) {
            return Some(pid);
        }
    }
    None
}

/// The process has exited (it may linger as a zombie of whoever adopted it).
pub fn gone(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

pub fn signal(pid: i32, signal: i32) {
    // SAFETY: kill takes plain integers.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

pub fn errno<T: std::fmt::Debug>(result: io::Result<T>) -> i32 {
    match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(error) => error
            .raw_os_error()
            .unwrap_or_else(|| panic!("not an OS error: {error}")),
    }
}

/// Every file under `root`, with its bytes; checks `stat` size == bytes read.
pub fn read_tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        for entry in fs::read_dir(root.join(&relative)).unwrap() {
            let entry = entry.unwrap();
            let path = relative.join(entry.file_name());
            let meta = fs::metadata(entry.path()).unwrap();
            assert_eq!(entry.file_type().unwrap().is_dir(), meta.is_dir());
            if meta.is_dir() {
                pending.push(path);
                continue;
            }
            match fs::read(entry.path()) {
                Ok(bytes) => {
                    assert_eq!(meta.len(), bytes.len() as u64, "{}", path.display());
                    files.insert(path, bytes);
                }
                Err(error) => {
                    assert_eq!(error.raw_os_error(), Some(libc::EIO), "{}", path.display());
                }
            }
        }
    }
    files
}

/// The mount at `mnt` shows the files the scenario expects of `backing`,
/// no more, each with its bytes.
pub fn assert_shows_expected(mnt: &Path, backing: &Path) {
    let shown = read_tree(mnt);
    let expected = expected_readable(backing);
    assert_eq!(
        shown.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (path, bytes) in &expected {
        assert!(shown[path] == *bytes, "{} differs", path.display());
    }
}

/// What the scenario expects, less the files that fail to open.
pub fn expected_readable(backing: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut expected = scenario().expected(backing);
    if let Some(broken) = scenario().broken() {
        expected.remove(&broken);
    }
    expected
}

/// Why real mounts cannot be tested here, if they cannot (checked once).
pub fn fuse_unavailable() -> Option<String> {
    static REASON: OnceLock<Option<String>> = OnceLock::new();
    REASON
        .get_or_init(|| {
            if !Path::new("/dev/fuse").exists() {
                return Some("/dev/fuse is missing".into());
            }
            let dirs = tempfile::tempdir().unwrap();
            let backing = dirs.path().join("b");
            let mnt = dirs.path().join("m");
            fs::create_dir(&backing).unwrap();
            fs::create_dir(&mnt).unwrap();
            let fs = core(&backing);
            match mount::start(fs, &mnt, &MountOptions::default()) {
                Ok(mounted) => {
                    mounted.unmount().unwrap();
                    None
                }
                Err(mount::MountError::Mount { source, .. })
                    if matches!(
                        source.raw_os_error(),
                        Some(libc::EPERM | libc::EACCES | libc::ENOENT)
                    ) || source.kind() == io::ErrorKind::NotFound
                        || source.kind() == io::ErrorKind::PermissionDenied =>
                {
                    Some(format!("cannot mount FUSE here: {source}"))
                }
                Err(mount::MountError::NoFuse(_)) => Some("/dev/fuse is missing".into()),
                Err(other) => panic!("probing FUSE: {other}"),
            }
        })
        .clone()
}

/// Whether this kernel should let the mount pass reads of whole-file views
/// straight to the backing file (FUSE passthrough: Linux 6.9 and later,
/// built in, and the daemon running as root).
pub fn passthrough_expected() -> bool {
    // SAFETY: geteuid takes no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return false;
    }
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse::<u32>().ok());
    let version = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    if version < (6, 9) {
        return false;
    }
    // Where the kernel says how it was built, it must include passthrough.
    match Command::new("sh")
        .arg("-c")
        .arg("zcat /proc/config.gz 2>/dev/null")
        .output()
    {
        Ok(out) if !out.stdout.is_empty() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|line| line == "CONFIG_FUSE_PASSTHROUGH=y"),
        _ => true,
    }
}

/// Bytes of images the mounted filesystem holds in its cache, from statfs.
pub fn cached_bytes(mnt: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(mnt.as_os_str().as_bytes()).unwrap();
    // SAFETY: a zeroed statvfs is a valid out-buffer for statvfs.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and buffer.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut stats) }, 0);
    stats.f_blocks * stats.f_frsize
}
