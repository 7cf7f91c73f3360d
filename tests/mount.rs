//! Real FUSE mounts: through the binary (daemon and foreground) and in
//! process. Each test skips (and passes) where FUSE cannot be mounted.

mod mount_support;

use std::ffi::CString;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mount_support::*;
use ninja_fs::mount::MountOptions;

fn assert_erofs<T: std::fmt::Debug>(what: &str, result: std::io::Result<T>) {
    let code = errno(result);
    assert_eq!(code, libc::EROFS, "{what}: errno {code}");
}

fn every_write_fails(mnt: &Path) {
    let scenario = scenario();
    let existing = expected_first_file(mnt);
    let folder = mnt.join(scenario.folder());
    assert_erofs("create", fs::File::create(mnt.join("new-file")));
    assert_erofs(
        "open for writing",
        fs::File::options().write(true).open(&existing),
    );
    assert_erofs(
        "open for appending",
        fs::File::options().append(true).open(&existing),
    );
    assert_erofs("write", fs::write(&existing, b"x"));
    assert_erofs("rename", fs::rename(&existing, mnt.join("renamed")));
    assert_erofs(
        "chmod",
        fs::set_permissions(&existing, fs::Permissions::from_mode(0o644)),
    );
    assert_erofs(
        "chown",
        std::os::unix::fs::chown(&existing, Some(1), Some(1)),
    );
    assert_erofs("unlink", fs::remove_file(&existing));
    assert_erofs("mkdir", fs::create_dir(mnt.join("new-folder")));
    assert_erofs("rmdir", fs::remove_dir(&folder));
    assert_erofs("link", fs::hard_link(&existing, mnt.join("link")));
    assert_erofs(
        "symlink",
        std::os::unix::fs::symlink("target", mnt.join("symlink")),
    );
    let c = CString::new(existing.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid C strings and buffer for the duration of the calls.
    let (set, times) = unsafe {
        let set = libc::setxattr(
            c.as_ptr(),
            c"user.test".as_ptr(),
            b"v".as_ptr().cast(),
            1,
            0,
        );
        let set_errno = std::io::Error::last_os_error().raw_os_error();
        let times = libc::utimensat(libc::AT_FDCWD, c.as_ptr(), std::ptr::null(), 0);
        let times_errno = std::io::Error::last_os_error().raw_os_error();
        ((set, set_errno), (times, times_errno))
    };
    assert_eq!(set, (-1, Some(libc::EROFS)), "setxattr");
    assert_eq!(times, (-1, Some(libc::EROFS)), "utimes");
    // Nothing changed in the backing folder's view.
    assert!(!mnt.join("new-file").exists());
    assert!(existing.exists());
}

fn expected_first_file(mnt: &Path) -> std::path::PathBuf {
    // The first non-broken, non-empty file the mount shows.
    let mut stack = vec![mnt.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                stack.push(path);
            } else if fs::File::open(&path).is_ok() && fs::metadata(&path).unwrap().len() > 0 {
                return path;
            }
        }
    }
    panic!("the mount shows no readable file");
}

#[test]
fn daemon_shows_names_sizes_and_bytes() {
    require_fuse!();
    let dirs = Dirs::new();
    let _guard = mount_daemon(&dirs);
    // `mount` returned: the mount answers at once.
    assert!(is_mounted(&dirs.mnt));
    assert!(fs::read_dir(&dirs.mnt).unwrap().next().is_some());
    assert_shows_expected(&dirs.mnt, &dirs.backing);
    // Modes and owner: the backing folder's and files', less write bits.
    let meta = fs::metadata(&dirs.mnt).unwrap();
    let backing_mode = fs::metadata(&dirs.backing).unwrap().permissions().mode();
    assert_eq!(meta.permissions().mode() & 0o7777, backing_mode & 0o555);
    let file = expected_first_file(&dirs.mnt);
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o7777,
        0o444
    );
    use std::os::unix::fs::MetadataExt;
    // SAFETY: getuid has no preconditions.
    assert_eq!(fs::metadata(&file).unwrap().uid(), unsafe {
        libc::getuid()
    });
}

#[test]
fn partial_reads_and_seeks() {
    require_fuse!();
    let env = InProcess::new(&MountOptions::default());
    let expected = expected_readable(&env.dirs.backing);
    let (path, bytes) = expected.iter().max_by_key(|(_, b)| b.len()).unwrap();
    let mut file = fs::File::open(env.path(path)).unwrap();
    for &(offset, len) in &[
        (0usize, 1usize),
        (4095, 2),
        (bytes.len() - 3, 10),
        (131_071, 300_000),
    ] {
        let offset = offset.min(bytes.len());
        file.seek(SeekFrom::Start(offset as u64)).unwrap();
        let mut buf = vec![0; len];
        let mut got = 0;
        while got < len {
            let n = file.read(&mut buf[got..]).unwrap();
            if n == 0 {
                break;
            }
            got += n;
        }
        let end = (offset + len).min(bytes.len());
        assert_eq!(&buf[..got], &bytes[offset..end], "at {offset}");
    }
    file.seek(SeekFrom::Start(bytes.len() as u64 + 100))
        .unwrap();
    let mut buf = [0; 8];
    assert_eq!(file.read(&mut buf).unwrap(), 0);
}

#[test]
fn writes_fail_with_erofs_in_the_daemon() {
    require_fuse!();
    let env = InProcess::new(&MountOptions {
        // Without the kernel's `ro` flag every write reaches the daemon.
        kernel_read_only: false,
        ..MountOptions::default()
    });
    every_write_fails(&env.dirs.mnt);
}

#[test]
fn writes_fail_with_erofs_on_the_mount() {
    require_fuse!();
    let dirs = Dirs::new();
    let before = scenario().expected(&dirs.backing);
    let _guard = mount_daemon(&dirs);
    every_write_fails(&dirs.mnt);
    // The backing folder is untouched.
    assert_eq!(scenario().expected(&dirs.backing), before);
}

#[test]
fn missing_names_and_wrong_kinds() {
    require_fuse!();
    let env = InProcess::new(&MountOptions::default());
    let missing = env.path("no such file");
    assert_eq!(errno(fs::metadata(&missing)), libc::ENOENT);
    assert_eq!(errno(fs::File::open(&missing)), libc::ENOENT);
    assert_eq!(errno(fs::read_dir(&missing)), libc::ENOENT);
    assert_eq!(errno(fs::metadata(env.path("no/such/path"))), libc::ENOENT);
    let file = expected_first_file(&env.dirs.mnt);
    assert_eq!(errno(fs::read_dir(&file)), libc::ENOTDIR);
    assert_eq!(errno(fs::metadata(file.join("child"))), libc::ENOTDIR);
    let folder = env.path(scenario().folder());
    let mut handle = fs::File::open(&folder).unwrap();
    let mut buf = [0; 4];
    assert_eq!(errno(handle.read(&mut buf)), libc::EISDIR);
    if let Some(broken) = scenario().broken() {
        assert!(fs::metadata(env.path(&broken)).is_ok());
        assert_eq!(errno(fs::read(env.path(&broken))), libc::EIO);
    }
}

#[test]
fn changed_files_are_served_fresh() {
    require_fuse!();
    let env = InProcess::new(&MountOptions::default());
    let scenario = scenario();
    // Read everything once so the kernel caches attributes and pages.
    assert_eq!(
        read_tree(&env.dirs.mnt),
        expected_readable(&env.dirs.backing)
    );
    for round in 0..3 {
        let changed = scenario.change(&env.dirs.backing, round);
        let expected = &expected_readable(&env.dirs.backing)[&changed];
        // No sleeping: the next open must see the new bytes and size.
        let bytes = fs::read(env.path(&changed)).unwrap();
        assert!(bytes == *expected, "round {round}: stale bytes");
        assert_eq!(
            fs::metadata(env.path(&changed)).unwrap().len(),
            expected.len() as u64
        );
    }
    // Unchanged files keep serving the same bytes.
    assert_eq!(
        read_tree(&env.dirs.mnt),
        expected_readable(&env.dirs.backing)
    );
}

/// A view that is the backing file byte for byte is read by the kernel
/// from that file (no image built); when the backing file changes while
/// such a file is open, new opens are served by the daemon and the open
/// one keeps its bytes.
#[test]
fn whole_file_views_are_read_from_the_backing_file() {
    require_fuse!();
    let env = InProcess::new(&MountOptions::default());
    let plain = fixture_bytes("roms/snes/cputest-full.sfc");
    let headered = fixture_bytes("roms/snes/cputest-basic.smc");
    let clean = fixture_bytes("roms/snes/cputest-basic.sfc");
    let replace = |bytes: &[u8]| {
        // A new file under the old name, as editors and copies do.
        let staged = env.dirs.root().join("staged.sfc");
        fs::write(&staged, bytes).unwrap();
        fs::rename(&staged, env.dirs.backing.join("plain.sfc")).unwrap();
    };
    replace(&plain);
    let deinterleaved = env.path("deinterleaved/plain.sfc");
    assert!(fs::read(&deinterleaved).unwrap() == plain);
    assert!(fs::read(env.path("normalized/plain.sfc")).unwrap() == plain);
    if passthrough_expected() {
        assert_eq!(cached_bytes(&env.dirs.mnt), 0, "an image was built");
    }

    let mut held = fs::File::open(&deinterleaved).unwrap();
    replace(&headered);
    // The copier header is dropped: no longer the file itself.
    assert!(fs::read(&deinterleaved).unwrap() == clean);
    assert_eq!(
        fs::metadata(&deinterleaved).unwrap().len(),
        clean.len() as u64
    );
    let mut old = Vec::new();
    held.read_to_end(&mut old).unwrap();
    assert!(old == plain, "an open file changed under its reader");
    drop(held);
    assert!(cached_bytes(&env.dirs.mnt) >= clean.len() as u64);

    // The reverse: with a built image open (the kernel then refuses
    // passthrough opens of that inode), the file itself again is served.
    let held = fs::File::open(&deinterleaved).unwrap();
    replace(&plain);
    assert!(fs::read(&deinterleaved).unwrap() == plain);
    drop(held);
    assert!(fs::read(&deinterleaved).unwrap() == plain);
}

#[test]
fn appearing_and_disappearing_backing_files() {
    require_fuse!();
    let env = InProcess::new(&MountOptions::default());
    let before = read_tree(&env.dirs.mnt);
    // A new ROM in the backing folder is new files in the views.
    fs::write(env.dirs.backing.join("late.bin"), b"late arrival").unwrap();
    let expected = expected_readable(&env.dirs.backing);
    let after = read_tree(&env.dirs.mnt);
    assert_eq!(after, expected);
    assert!(after.len() > before.len());
    fs::remove_file(env.dirs.backing.join("late.bin")).unwrap();
    let gone: Vec<_> = after
        .keys()
        .filter(|k| !expected_readable(&env.dirs.backing).contains_key(*k))
        .cloned()
        .collect();
    for path in gone {
        // The name may linger for a TTL, but never its bytes.
        assert_eq!(errno(fs::read(env.path(&path))), libc::ENOENT);
    }
    assert_eq!(
        read_tree(&env.dirs.mnt),
        expected_readable(&env.dirs.backing)
    );
}

#[test]
fn thirty_two_concurrent_readers() {
    require_fuse!();
    let env = InProcess::new(&MountOptions::default());
    let expected = Arc::new(expected_readable(&env.dirs.backing));
    let mnt = env.dirs.mnt.clone();
    let threads: Vec<_> = (0..32)
        .map(|t| {
            let expected = Arc::clone(&expected);
            let mnt = mnt.clone();
            std::thread::spawn(move || {
                for round in 0..4 {
                    for (i, (path, bytes)) in expected.iter().enumerate() {
                        if (i + t + round) % 2 == 0 {
                            let got = fs::read(mnt.join(path)).unwrap();
                            assert!(got == *bytes, "{} differs", path.display());
                        } else {
                            assert_eq!(
                                fs::metadata(mnt.join(path)).unwrap().len(),
                                bytes.len() as u64
                            );
                        }
                    }
                    assert!(fs::read_dir(&mnt).unwrap().count() > 0);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

/// A filesystem that counts the lookups the kernel sends it.
struct CountingLookups<F> {
    fs: F,
    lookups: Arc<AtomicU64>,
}

impl<F: ninja_fs::vfs::VirtualFs> ninja_fs::vfs::VirtualFs for CountingLookups<F> {
    fn lookup(
        &self,
        parent: u64,
        name: &std::ffi::OsStr,
    ) -> Result<ninja_fs::vfs::Attributes, ninja_fs::vfs::FsError> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        self.fs.lookup(parent, name)
    }
    fn getattr(&self, ino: u64) -> Result<ninja_fs::vfs::Attributes, ninja_fs::vfs::FsError> {
        self.fs.getattr(ino)
    }
    fn readdir(&self, ino: u64) -> Result<ninja_fs::vfs::DirEntries, ninja_fs::vfs::FsError> {
        self.fs.readdir(ino)
    }
    fn open(&self, ino: u64) -> Result<ninja_fs::vfs::Opened, ninja_fs::vfs::FsError> {
        self.fs.open(ino)
    }
    fn read(&self, handle: u64, offset: u64, size: u32) -> Result<Vec<u8>, ninja_fs::vfs::FsError> {
        self.fs.read(handle, offset, size)
    }
    fn release(&self, handle: u64) {
        self.fs.release(handle)
    }
    fn renumber(&self, ino: u64) {
        self.fs.renumber(ino)
    }
    fn statfs(&self) -> ninja_fs::vfs::FsStats {
        self.fs.statfs()
    }
}

#[test]
fn large_folders_list_every_entry_once() {
    require_fuse!();
    let dirs = Dirs::new();
    // Files with a .bin extension are ROMs of unknown system: shown raw.
    let many = dirs.backing.join("many");
    fs::create_dir(&many).unwrap();
    for i in 0..1500 {
        fs::write(
            many.join(format!("entry number {i:05} with a longish name.bin")),
            [i as u8],
        )
        .unwrap();
    }
    let lookups = Arc::new(AtomicU64::new(0));
    let counted = CountingLookups {
        fs: make_fs(&dirs.backing),
        lookups: lookups.clone(),
    };
    let mounted = ninja_fs::mount::start(counted, &dirs.mnt, &MountOptions::default()).unwrap();
    let _guard = MountGuard {
        path: dirs.mnt.clone(),
    };
    let folder = dirs.mnt.join("normalized/many");
    // A scanner's way: the whole folder listed first (several READDIRPLUS
    // replies), then each file stated.
    let mut names: Vec<_> = fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let count = names.len();
    names.sort();
    names.dedup();
    assert_eq!(count, 1500);
    assert_eq!(names.len(), 1500);
    let before = lookups.load(Ordering::Relaxed);
    for name in &names {
        assert_eq!(fs::metadata(folder.join(name)).unwrap().len(), 1);
    }
    // Every reply carried attributes, not only the first: no file needed
    // a lookup of its own.
    assert_eq!(lookups.load(Ordering::Relaxed) - before, 0);
    mounted.unmount().unwrap();
    assert!(!is_mounted(&dirs.mnt));
}

#[test]
fn statfs_counts_files() {
    require_fuse!();
    let env = InProcess::new(&MountOptions::default());
    let c = CString::new(env.dirs.mnt.as_os_str().as_bytes()).unwrap();
    // SAFETY: a zeroed statvfs is a valid out-buffer for statvfs.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and buffer.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut stats) }, 0);
    assert!(stats.f_files > 0);
    assert_eq!(stats.f_bavail, 0);
    assert_eq!(stats.f_flag & libc::ST_RDONLY, libc::ST_RDONLY);
}

#[test]
fn sigterm_unmounts_the_daemon() {
    require_fuse!();
    let dirs = Dirs::new();
    let _guard = mount_daemon(&dirs);
    let pid = daemon_pid(&dirs.mnt).expect("the daemon's pid");
    signal(pid, libc::SIGTERM);
    assert!(wait_until(Duration::from_secs(5), || !is_mounted(
        &dirs.mnt
    )));
    assert!(
        wait_until(Duration::from_secs(5), || gone(pid)),
        "daemon still running"
    );
    // The mount point is an empty folder again.
    assert_eq!(fs::read_dir(&dirs.mnt).unwrap().count(), 0);
}

#[test]
fn sighup_unmounts_the_daemon() {
    require_fuse!();
    let dirs = Dirs::new();
    let _guard = mount_daemon(&dirs);
    let pid = daemon_pid(&dirs.mnt).expect("the daemon's pid");
    signal(pid, libc::SIGHUP);
    assert!(wait_until(Duration::from_secs(5), || !is_mounted(
        &dirs.mnt
    )));
    assert!(wait_until(Duration::from_secs(5), || gone(pid)));
}

#[test]
fn sigint_unmounts_the_foreground_mount() {
    require_fuse!();
    let dirs = Dirs::new();
    let _guard = MountGuard {
        path: dirs.mnt.clone(),
    };
    let child = ninja()
        .arg("mount")
        .arg("-f")
        .arg(&dirs.backing)
        .arg(&dirs.mnt)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || is_mounted(&dirs.mnt)));
    assert!(fs::read_dir(&dirs.mnt).unwrap().count() > 0);
    signal(child.id() as i32, libc::SIGINT);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!is_mounted(&dirs.mnt));
}

#[test]
fn unmount_command() {
    require_fuse!();
    let dirs = Dirs::new();
    let _guard = mount_daemon(&dirs);
    let pid = daemon_pid(&dirs.mnt).expect("the daemon's pid");
    let output = run(ninja().arg("unmount").arg(&dirs.mnt));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(output.stdout.is_empty() && output.stderr.is_empty());
    assert!(!is_mounted(&dirs.mnt));
    assert!(wait_until(Duration::from_secs(5), || gone(pid)));
    // Again: no longer a mount.
    let output = run(ninja().arg("unmount").arg(&dirs.mnt));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!("ninja-fs: {} is not a mount point\n", dirs.mnt.display())
    );
    let missing = dirs.root().join("missing");
    let output = run(ninja().arg("unmount").arg(&missing));
    assert_eq!(
        stderr(&output),
        format!(
            "ninja-fs: mount point {} does not exist\n",
            missing.display()
        )
    );
    let output = run(ninja().arg("unmount").arg("/proc"));
    assert_eq!(
        stderr(&output),
        "ninja-fs: /proc is not a FUSE mount (it is proc); not unmounting it\n"
    );
}

#[test]
fn busy_mounts() {
    require_fuse!();
    let dirs = Dirs::new();
    let _guard = mount_daemon(&dirs);
    let pid = daemon_pid(&dirs.mnt).expect("the daemon's pid");
    let file = expected_first_file(&dirs.mnt);
    let mut open = fs::File::open(&file).unwrap();
    let output = run(ninja().arg("unmount").arg(&dirs.mnt));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!(
            "ninja-fs: cannot unmount {}: it is busy (a program has a file or folder open in it)\n",
            dirs.mnt.display()
        )
    );
    assert!(is_mounted(&dirs.mnt));
    // SIGTERM while busy: detached at once, served until the file closes.
    signal(pid, libc::SIGTERM);
    assert!(wait_until(Duration::from_secs(5), || !is_mounted(
        &dirs.mnt
    )));
    let mut bytes = Vec::new();
    open.read_to_end(&mut bytes).unwrap();
    assert!(!bytes.is_empty());
    assert!(!gone(pid));
    drop(open);
    assert!(
        wait_until(Duration::from_secs(5), || gone(pid)),
        "daemon still running"
    );
}

#[test]
fn mount_errors_are_clear() {
    require_fuse!();
    let dirs = Dirs::new();
    let check = |backing: &Path, mnt: &Path, message: String| {
        let was_mounted = is_mounted(mnt);
        let output = run(ninja().arg("mount").arg(backing).arg(mnt));
        assert_eq!(output.status.code(), Some(1));
        assert_eq!(stderr(&output), format!("ninja-fs: {message}\n"));
        assert!(output.stdout.is_empty());
        assert_eq!(is_mounted(mnt), was_mounted);
    };
    let missing = dirs.root().join("missing");
    check(
        &missing,
        &dirs.mnt,
        format!("backing folder {} does not exist", missing.display()),
    );
    check(
        &dirs.backing,
        &missing,
        format!("mount point {} does not exist", missing.display()),
    );
    check(
        &dirs.backing,
        &dirs.backing,
        format!("mount point {} is not empty", dirs.backing.display()),
    );
    let file = dirs.root().join("a file");
    fs::write(&file, b"x").unwrap();
    check(
        &dirs.backing,
        &file,
        format!("mount point {} is not a folder", file.display()),
    );
    check(
        &file,
        &dirs.mnt,
        format!("backing folder {} is not a folder", file.display()),
    );
    // Mounting twice on one point: the second names the first.
    let _guard = mount_daemon(&dirs);
    check(
        &dirs.backing,
        &dirs.mnt,
        format!(
            "mount point {} is already mounted here (ninja-fs of {}); unmount it first \
             (ninja-fs unmount {})",
            dirs.mnt.display(),
            dirs.backing.display(),
            dirs.mnt.display()
        ),
    );
}

#[test]
fn in_process_mount_and_unmount() {
    require_fuse!();
    let mut env = InProcess::new(&MountOptions::default());
    let unmounter = env.mounted.as_ref().unwrap().unmounter();
    assert!(is_mounted(&env.dirs.mnt));
    unmounter.unmount().unwrap();
    env.mounted.take().unwrap().wait().unwrap();
    assert!(!is_mounted(&env.dirs.mnt));
    // A second unmount is harmless.
    unmounter.unmount().unwrap();
}

#[test]
fn allow_other_reaches_the_kernel() {
    require_fuse!();
    let dirs = Dirs::new();
    let output = run(ninja()
        .arg("mount")
        .arg("--allow-other")
        .arg("--cache-size")
        .arg("64M")
        .arg(&dirs.backing)
        .arg(&dirs.mnt));
    let _guard = MountGuard {
        path: dirs.mnt.clone(),
    };
    assert!(output.status.success(), "{}", stderr(&output));
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    let line = mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some(dirs.mnt.to_str().unwrap()))
        .unwrap();
    assert!(line.contains("allow_other"), "{line}");
    // The source as fstab names it, the type with its subtype, never
    // setuid or devices.
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields[0], dirs.backing.to_str().unwrap(), "{line}");
    assert_eq!(fields[2], "fuse.ninja-fs", "{line}");
    for flag in ["ro", "nosuid", "nodev"] {
        assert!(fields[3].split(',').any(|f| f == flag), "{line}");
    }
    let output = run(ninja()
        .arg("mount")
        .arg("--cache-size")
        .arg("lots")
        .arg(&dirs.backing)
        .arg(dirs.root().join("x")));
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn thirty_two_readers_of_different_variants_through_a_small_cache() {
    require_fuse!();
    let dirs = Dirs::new();
    // Many variants: the SNES ROM patched by 40 different one-byte IPS.
    let rom = fs::read(dirs.backing.join("snes/Game.smc")).unwrap();
    let clean = rom[0x200..].to_vec();
    fs::create_dir_all(dirs.backing.join("snes/Game")).unwrap();
    for i in 0..40u32 {
        let mut target = clean.clone();
        target[0x1000 + i as usize] ^= 0xFF;
        let patch =
            ninja_fs::patch::any::create(ninja_fs::patch::any::PatchFormat::Ips, &clean, &target)
                .unwrap();
        fs::write(
            dirs.backing.join(format!("snes/Game/fix {i:02}.ips")),
            patch,
        )
        .unwrap();
    }
    // 256 KiB images through a 1 MiB cache: at most 4 held at a time.
    let core = Arc::new(
        ninja_fs::views::NinjaFs::new(&dirs.backing, 1 << 20, ninja_fs::patch::Limits::default())
            .unwrap(),
    );
    let mounted =
        ninja_fs::mount::start(core.clone(), &dirs.mnt, &MountOptions::default()).unwrap();
    let _guard = MountGuard {
        path: dirs.mnt.clone(),
    };
    let mnt = dirs.mnt.clone();
    let threads: Vec<_> = (0..32)
        .map(|t| {
            let (mnt, clean) = (mnt.clone(), clean.clone());
            std::thread::spawn(move || {
                for round in 0..3 {
                    let i = (t * 7 + round * 13) % 40;
                    let name = format!("patched/snes/Game [fix {i:02}].sfc");
                    let got = fs::read(mnt.join(&name)).unwrap();
                    let mut want = clean.clone();
                    want[0x1000 + i] ^= 0xFF;
                    assert!(got == want, "{name} differs");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert!(
        core.cache().bytes() <= 1 << 20,
        "cache holds {}",
        core.cache().bytes()
    );
    mounted.unmount().unwrap();
}

#[test]
fn the_shipped_samples_mount_with_their_patches_applied() {
    require_fuse!();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mnt = tempfile::tempdir().unwrap();
    let core = ninja_fs::views::NinjaFs::new(
        &root.join("samples/roms"),
        64 << 20,
        ninja_fs::patch::Limits::default(),
    )
    .unwrap();
    let mounted = ninja_fs::mount::start(core, mnt.path(), &MountOptions::default()).unwrap();
    let _guard = MountGuard {
        path: mnt.path().to_path_buf(),
    };
    let fixture = |rel: &str| fs::read(root.join("tests/fixtures").join(rel)).unwrap();
    let cases = [
        (
            "normalized/snes/cputest-basic.sfc",
            fixture("roms/snes/cputest-basic.sfc"),
        ),
        (
            "patched/snes/cputest-basic [cputest-basic].sfc",
            fixture("roms/snes/cputest-full.sfc"),
        ),
        (
            "normalized/n64/bigbass1997_minimal.z64",
            fixture("roms/n64/bigbass1997_minimal.z64"),
        ),
        (
            "deinterleaved/sms/sdcc_makebin_export.sms",
            fixture("roms/sms_gg/sdcc_makebin_export.sms"),
        ),
        (
            "normalized/lynx/cc65_tgi_hello.lyx",
            fixture("roms/lynx/cc65_tgi_hello.lyx"),
        ),
        (
            "deinterleaved/lynx/cc65_tgi_hello.lnx",
            fixture("roms/lynx/cc65_tgi_hello.lnx"),
        ),
    ];
    for (path, expected) in cases {
        let bytes = fs::read(mnt.path().join(path)).unwrap();
        assert!(bytes == expected, "{path} differs");
    }
    // The NINJA2 sample turns the NTSC UNIF into PAL: the PAL iNES's PRG and
    // CHR in the UNIF container.
    let pal = fs::read(mnt.path().join("patched/nes/nes15-NTSC [nes15 PAL].unf")).unwrap();
    let pal_prg_chr = &fixture("roms/nes/nes15-PAL.nes")[16..16 + 24576];
    let layout = ninja_fs::system::analyze(&pal, ninja_fs::system::SystemType::Nes).unwrap();
    let normalized = ninja_fs::system::normalize(&pal, &layout).unwrap();
    assert!(normalized.as_ref() == pal_prg_chr);
    let info = fs::read_to_string(mnt.path().join("info/nes/nes15-NTSC.unf.txt")).unwrap();
    assert!(info.contains("[nes15 PAL] patches/nes15 PAL.rup: its source MD5 f53af989e2c9c37f01d9a276d8aec04a matches"), "{info}");
    mounted.unmount().unwrap();
}

/// Mounts through the binary with `XDG_CACHE_HOME` set to `cache_home`,
/// reads every file, unmounts and waits for the daemon to exit (it saves
/// the header cache before it does).
fn mount_read_unmount(
    dirs: &Dirs,
    cache_home: &Path,
    extra: &[&str],
) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let output = run(ninja()
        .arg("mount")
        .args(extra)
        .arg(&dirs.backing)
        .arg(&dirs.mnt)
        .env("XDG_CACHE_HOME", cache_home));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_says_where_logs_go(&output, dirs);
    let guard = MountGuard {
        path: dirs.mnt.clone(),
    };
    let pid = daemon_pid(&dirs.mnt).expect("the daemon's pid");
    let shown = read_tree(&dirs.mnt);
    let output = run(ninja().arg("unmount").arg(&dirs.mnt));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(wait_until(Duration::from_secs(10), || gone(pid)));
    drop(guard);
    shown
}

#[test]
fn a_second_mount_lists_what_the_header_cache_holds() {
    require_fuse!();
    let dirs = Dirs::new();
    let expected = expected_readable(&dirs.backing);
    let cache_home = dirs.root().join("cache-home");
    fs::create_dir(&cache_home).unwrap();

    // Turned off, nothing is written.
    let shown = mount_read_unmount(&dirs, &cache_home, &["--no-header-cache"]);
    assert!(shown == expected);
    assert_eq!(fs::read_dir(&cache_home).unwrap().count(), 0);

    let shown = mount_read_unmount(&dirs, &cache_home, &[]);
    assert!(shown == expected);
    let folder = cache_home.join("ninja-fs");
    let file = ninja_fs::library::header_cache::file_in(&folder, &dirs.backing);
    let names: Vec<_> = fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![file.file_name().unwrap().to_os_string()]);
    let saved = fs::read(&file).unwrap();
    // One entry per backing file. (The file is checked against the
    // daemon's build, so the test reads it as JSON.)
    let newline = saved.iter().position(|&b| b == b'\n').unwrap();
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&saved[newline + 1..]).unwrap();
    let mut paths: Vec<&str> = entries
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    paths.sort();
    assert_eq!(paths, files_below(&dirs.backing, ""));

    let again = mount_read_unmount(&dirs, &cache_home, &[]);
    assert!(again == shown);
    // The second mount learned nothing new: the file is as it was.
    assert_eq!(fs::read(&file).unwrap(), saved);
}

/// The files under `dir`, relative, sorted.
fn files_below(dir: &Path, rel: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir.join(rel)).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        if entry.file_type().unwrap().is_dir() {
            found.extend(files_below(dir, &path));
        } else {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// A 2 MiB LoROM of pseudo-random bytes with a header detection accepts.
fn large_snes_rom() -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut rom: Vec<u8> = (0..2 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    rom[0x7FD5] = 0x20;
    rom[0x7FDC..0x7FE0].copy_from_slice(&[0xFF, 0xFF, 0, 0]);
    rom
}

/// An IPS patch writing `bytes` at `offset`.
fn ips(offset: u32, bytes: &[u8]) -> Vec<u8> {
    let mut patch = b"PATCH".to_vec();
    patch.extend_from_slice(&offset.to_be_bytes()[1..]);
    patch.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    patch.extend_from_slice(bytes);
    patch.extend_from_slice(b"EOF");
    patch
}

/// Images of 1 MiB and more that the daemon builds are kept in files of a
/// private tmpfs and, as root, read by the kernel from there: they read
/// whole, a touched patch serves the same bytes, a rewritten one the new
/// bytes at the next open, and a file open before keeps its bytes.
#[test]
fn large_built_images_are_whole_and_fresh_after_their_patch_changes() {
    require_fuse!();
    let dirs = Dirs::new();
    let rom = large_snes_rom();
    let headered = [vec![0u8; 512], rom.clone()].concat();
    fs::write(dirs.backing.join("snes/Large.smc"), &headered).unwrap();
    let patch_path = dirs.backing.join("snes/Large.ips");
    fs::write(&patch_path, ips(0x1000, b"ABCD")).unwrap();
    let patched_with = |bytes: &[u8]| {
        let mut image = rom.clone();
        image[0x1000..0x1000 + bytes.len()].copy_from_slice(bytes);
        image
    };
    let _guard = mount_daemon(&dirs);
    let normalized = dirs.mnt.join("normalized/snes/Large.sfc");
    let patched = dirs.mnt.join("patched/snes/Large [Large].sfc");
    assert!(fs::read(&normalized).unwrap() == rom);
    assert!(fs::read(&patched).unwrap() == patched_with(b"ABCD"));

    let mut held = fs::File::open(&patched).unwrap();
    // A touch changes the patch's identity, not its bytes.
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    fs::File::options()
        .write(true)
        .open(&patch_path)
        .unwrap()
        .set_modified(later)
        .unwrap();
    assert!(fs::read(&patched).unwrap() == patched_with(b"ABCD"));
    // New bytes, same size, written in place.
    fs::write(&patch_path, ips(0x1000, b"WXYZ")).unwrap();
    assert!(fs::read(&patched).unwrap() == patched_with(b"WXYZ"));
    assert_eq!(
        fs::metadata(&patched).unwrap().len(),
        rom.len() as u64,
        "the size shown"
    );
    let mut old = Vec::new();
    held.read_to_end(&mut old).unwrap();
    assert!(
        old == patched_with(b"ABCD"),
        "an open file changed under its reader"
    );
    drop(held);
    assert!(fs::read(&normalized).unwrap() == rom);
}
