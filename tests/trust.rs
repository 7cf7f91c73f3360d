//! Trust: through a real mount shared with `--allow-other`, nobody reads a
//! byte they could not read in the backing folder, no link leads out of
//! it, the mount refuses to sit inside its own backing folder, and readers
//! never see an image torn by a concurrent writer.

mod mount_support;

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mount_support::{
    MountGuard, errno, fixture_bytes, is_mounted, ninja, passthrough_expected, run, stderr,
    wait_until,
};
use ninja_fs::mount::{self, MountOptions};
use ninja_fs::patch::Limits;
use ninja_fs::views::NinjaFs;

/// The uid and gid tests read as: Debian's `nobody`.
const NOBODY: u32 = 65534;

/// Skips the test unless it runs as root with `setpriv` (to read as
/// another user) and FUSE works.
macro_rules! require_root_and_setpriv {
    () => {
        require_fuse!();
        // SAFETY: geteuid takes no arguments and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: reading as another user needs root");
            return;
        }
        if Command::new("setpriv").arg("--version").output().is_err() {
            eprintln!("skipped: setpriv (util-linux) is missing");
            return;
        }
    };
}

/// Runs `program args` as uid and gid 65534 with no other groups.
fn as_nobody(program: &str, args: &[&OsStr]) -> Output {
    Command::new("setpriv")
        .args([
            format!("--reuid={NOBODY}"),
            format!("--regid={NOBODY}"),
            "--clear-groups".into(),
            "--".into(),
            program.into(),
        ])
        .args(args)
        .output()
        .unwrap()
}

/// What `cat FILE` prints when run as nobody; the error text otherwise.
fn read_as_nobody(path: &Path) -> Result<Vec<u8>, String> {
    let output = as_nobody("cat", &[path.as_os_str()]);
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn put(path: &Path, bytes: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
}

/// A folder every user may pass through (temporary folders are 0700).
fn open_tempdir() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
    root
}

/// Mounts `backing` at `mnt` through the binary, shared with every user.
fn mount_for_everyone(backing: &Path, mnt: &Path, cache_home: &Path) -> MountGuard {
    let output = run(ninja()
        .arg("mount")
        .arg("--allow-other")
        .arg(backing)
        .arg(mnt)
        .env("XDG_CACHE_HOME", cache_home));
    assert!(output.status.success(), "mount: {}", stderr(&output));
    MountGuard {
        path: mnt.to_path_buf(),
    }
}

fn mode_and_owner(path: &Path) -> (u32, u32, u32) {
    let meta = fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (meta.mode() & 0o7777, meta.uid(), meta.gid())
}

const DENIED: &str = "Permission denied";

#[test]
fn every_file_carries_the_owner_and_read_bits_of_what_it_is_made_from() {
    require_root_and_setpriv!();
    let root = open_tempdir();
    let backing = root.path().join("backing");
    let mnt = root.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let headered = fixture_bytes("roms/snes/cputest-basic.smc");
    let headerless = fixture_bytes("roms/snes/cputest-basic.sfc");
    let full = fixture_bytes("roms/snes/cputest-full.sfc");
    let ips = fixture_bytes("patches/snes_cputest_basic2full.flips.ips");
    let bps = fixture_bytes("patches/snes_cputest_basic2full.flips-delta.bps");

    put(&backing.join("public.smc"), &headered, 0o644);
    put(&backing.join("public.ips"), &ips, 0o644);
    put(&backing.join("secret.smc"), &headered, 0o600);
    put(&backing.join("theirs.smc"), &headered, 0o600);
    chown(&backing.join("theirs.smc"), NOBODY, NOBODY);
    put(&backing.join("guarded.smc"), &headered, 0o644);
    put(&backing.join("guarded.ips"), &ips, 0o600);
    put(&backing.join("private/game.smc"), &headered, 0o644);
    fs::set_permissions(backing.join("private"), fs::Permissions::from_mode(0o700)).unwrap();
    // A patch anyone may read, in a folder only root may enter: it pairs
    // with every ROM above by checksum, and its variants are root's alone.
    put(&backing.join("locked/Translation.bps"), &bps, 0o644);
    fs::set_permissions(backing.join("locked"), fs::Permissions::from_mode(0o700)).unwrap();
    put(&root.path().join("outside.sfc"), &headerless, 0o644);
    symlink("/etc/shadow", backing.join("shadow.sfc")).unwrap();
    symlink("../outside.sfc", backing.join("escape.sfc")).unwrap();
    symlink("public.smc", backing.join("inside.smc")).unwrap();
    symlink(backing.join("public.smc"), backing.join("absolute.smc")).unwrap();
    fs::set_permissions(&backing, fs::Permissions::from_mode(0o755)).unwrap();

    let _guard = mount_for_everyone(&backing, &mnt, &root.path().join("cache"));
    let view = |rel: &str| mnt.join(rel);

    // What root sees of owners and modes: the backing's, without write bits.
    for (rel, expected) in [
        ("", (0o555, 0, 0)),
        ("normalized", (0o555, 0, 0)),
        ("normalized/public.sfc", (0o444, 0, 0)),
        ("normalized/secret.sfc", (0o400, 0, 0)),
        ("deinterleaved/secret.sfc", (0o400, 0, 0)),
        ("info/secret.smc.txt", (0o400, 0, 0)),
        ("normalized/theirs.sfc", (0o400, NOBODY, NOBODY)),
        ("normalized/private", (0o500, 0, 0)),
        ("patched/public [public].sfc", (0o444, 0, 0)),
        ("patched/guarded [guarded].sfc", (0o400, 0, 0)),
        ("patched/public [Translation].sfc", (0o400, 0, 0)),
        // Nobody owns theirs.smc, but root's locked folder guards the patch.
        ("patched/theirs [Translation].sfc", (0o000, NOBODY, NOBODY)),
    ] {
        assert_eq!(mode_and_owner(&view(rel)), expected, "{rel}");
    }

    // Links: those leading out are not shown; those inside are.
    let mut listed: Vec<String> = fs::read_dir(view("normalized"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            "absolute.sfc",
            "guarded.sfc",
            "inside.sfc",
            "private",
            "public.sfc",
            "secret.sfc",
            "theirs.sfc"
        ]
    );
    assert_eq!(
        errno(fs::metadata(view("normalized/shadow.sfc"))),
        libc::ENOENT
    );
    assert_eq!(
        errno(fs::metadata(view("info/escape.sfc.txt"))),
        libc::ENOENT
    );

    // What nobody (uid 65534, no groups) can read, through the kernel's
    // own permission checks.
    for (readable, bytes) in [
        ("normalized/public.sfc", &headerless),
        ("normalized/inside.sfc", &headerless),
        ("normalized/absolute.sfc", &headerless),
        ("normalized/theirs.sfc", &headerless),
        ("patched/public [public].sfc", &full),
    ] {
        assert_eq!(
            read_as_nobody(&view(readable)),
            Ok(bytes.clone()),
            "{readable}"
        );
    }
    assert!(read_as_nobody(&view("info/public.smc.txt")).is_ok());
    for denied in [
        "normalized/secret.sfc",
        "deinterleaved/secret.sfc",
        "info/secret.smc.txt",
        "patched/secret [Translation].sfc",
        "patched/guarded [guarded].sfc",
        "patched/public [Translation].sfc",
        "patched/theirs [Translation].sfc",
        "normalized/private/game.sfc",
    ] {
        let error = read_as_nobody(&view(denied)).unwrap_err();
        assert!(error.contains(DENIED), "{denied}: {error}");
    }
    let listing = as_nobody("ls", &[view("normalized/private").as_os_str()]);
    assert!(!listing.status.success());
    assert!(stderr(&listing).contains(DENIED), "{}", stderr(&listing));

    // Root still reads everything the mount shows.
    assert_eq!(
        fs::read(view("patched/guarded [guarded].sfc")).unwrap(),
        full
    );
    assert_eq!(
        fs::read(view("patched/public [Translation].sfc")).unwrap(),
        full
    );
    assert_eq!(
        fs::read(view("normalized/private/game.sfc")).unwrap(),
        headerless
    );

    // A changed mode is seen: the secret becomes public.
    fs::set_permissions(
        backing.join("secret.smc"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    assert!(wait_until(Duration::from_secs(3), || {
        read_as_nobody(&view("normalized/secret.sfc")) == Ok(headerless.clone())
    }));
}

#[test]
fn files_left_out_are_logged_with_the_reason() {
    require_fuse!();
    let root = tempfile::tempdir().unwrap();
    let backing = root.path().join("backing");
    let mnt = root.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let rom = fixture_bytes("roms/snes/cputest-basic.sfc");
    put(&backing.join("Game.sfc"), &rom, 0o644);
    put(&backing.join("..nes"), &rom, 0o644);
    put(&backing.join(".DS_Store"), b"Bud1", 0o644);
    put(&backing.join("notes.txt"), b"not a ROM\n", 0o644);
    let bad_name = backing.join(OsStr::from_bytes(b"Caf\xe9.sfc"));
    put(&bad_name, &rom, 0o644);
    symlink("/etc/passwd", backing.join("passwd.sfc")).unwrap();
    symlink("missing.sfc", backing.join("dangling.sfc")).unwrap();
    fs::create_dir(backing.join("real")).unwrap();
    symlink("real", backing.join("linked-folder")).unwrap();
    let fifo = std::ffi::CString::new(backing.join("pipe.sfc").as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid path and mode.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);

    let _guard = MountGuard { path: mnt.clone() };
    let child = ninja()
        .args(["mount", "-f"])
        .arg(&backing)
        .arg(&mnt)
        .env("XDG_CACHE_HOME", root.path().join("cache"))
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || is_mounted(&mnt)));
    let mut shown: Vec<_> = fs::read_dir(mnt.join("normalized"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    shown.sort();
    // `real/` holds nothing to show: no folder either.
    assert_eq!(shown, ["Game.sfc"]);
    mount::unmount(&mnt).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let log = stderr(&output);
    let left_out = |name: &str, reason: &str| {
        let line = format!("{}: left out: {reason}", backing.join(name).display());
        assert_eq!(log.matches(&line).count(), 1, "{line}\nin:\n{log}");
    };
    left_out(
        "..nes",
        "its name starts with a dot (hidden); rename it to show it",
    );
    left_out(
        "Caf\u{FFFD}.sfc",
        "its name is not valid UTF-8 (rename it to show it)",
    );
    left_out(
        "passwd.sfc",
        "a link that leads outside the backing folder (not followed)",
    );
    left_out(
        "dangling.sfc",
        "a link to nothing (its target does not exist)",
    );
    left_out(
        "linked-folder",
        "a link to a folder (links to folders are not followed)",
    );
    left_out("pipe.sfc", "a FIFO, not a regular file");
    // Other programs' hidden files and plain non-ROMs are not news.
    assert!(!log.contains(".DS_Store"), "{log}");
    assert!(!log.contains("notes.txt"), "{log}");
}

#[test]
fn a_mount_point_inside_the_backing_folder_is_refused() {
    require_fuse!();
    let root = tempfile::tempdir().unwrap();
    let backing = root.path().join("backing");
    fs::create_dir_all(backing.join("sub/deeper")).unwrap();
    put(
        &backing.join("Game.sfc"),
        &fixture_bytes("roms/snes/cputest-basic.sfc"),
        0o644,
    );
    // Through a link, too: the places are compared with links resolved.
    symlink(backing.join("sub"), root.path().join("via-link")).unwrap();
    let empty = root.path().join("empty");
    fs::create_dir(&empty).unwrap();
    for (source, mountpoint) in [
        (backing.clone(), backing.join("sub/deeper")),
        (backing.clone(), root.path().join("via-link/deeper")),
        (empty.clone(), empty.clone()),
    ] {
        let output = run(ninja().arg("mount").arg(&source).arg(&mountpoint));
        let _unmount_if_it_mounted = MountGuard {
            path: mountpoint.clone(),
        };
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        assert_eq!(
            stderr(&output),
            format!(
                "ninja-fs: mount point {} is inside the backing folder {}: the mount would \
                 read itself (and hang); choose a mount point outside it\n",
                mountpoint.display(),
                source.display()
            )
        );
        assert!(!is_mounted(&mountpoint));
    }
}

/// A byte-swapped N64 image of `len` bytes: its normalized view is built
/// by the mount (never the backing file itself). `fill` marks the version.
fn v64_image(len: usize, fill: u8) -> Vec<u8> {
    let mut image = fixture_bytes("roms/n64/bigbass1997_minimal.v64");
    image.resize(len, fill);
    image
}

fn swap16(bytes: &[u8]) -> Vec<u8> {
    bytes
        .chunks(2)
        .flat_map(|pair| [pair[1], pair[0]])
        .collect()
}

#[test]
fn a_file_overwritten_while_its_image_is_built_is_never_served_torn() {
    require_fuse!();
    let dirs = tempfile::tempdir().unwrap();
    let backing = dirs.path().join("backing");
    let mnt = dirs.path().join("mnt");
    fs::create_dir_all(&backing).unwrap();
    fs::create_dir(&mnt).unwrap();
    const LEN: usize = 16 << 20;
    let versions = [v64_image(LEN, 0x11), v64_image(LEN, 0xEE)];
    let expected: Vec<Vec<u8>> = versions.iter().map(|v| swap16(v)).collect();
    let rom = backing.join("Game.v64");
    fs::write(&rom, &versions[0]).unwrap();
    let fs_core = NinjaFs::new(&backing, 256 << 20, Limits::default()).unwrap();
    let mounted = mount::start(fs_core, &mnt, &MountOptions::default()).unwrap();
    let _guard = MountGuard { path: mnt.clone() };
    let view = mnt.join("normalized/Game.z64");
    assert_eq!(fs::read(&view).unwrap(), expected[0]);

    // The writer overwrites the file in place, each version in one large
    // write, as fast as it can: the race that tore images before.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let rom = rom.clone();
        let versions = versions.clone();
        std::thread::spawn(move || {
            let mut writes = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let version = &versions[(writes % 2) as usize];
                let mut file = fs::OpenOptions::new().write(true).open(&rom).unwrap();
                std::io::Write::write_all(&mut file, version).unwrap();
                drop(file);
                writes += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            writes
        })
    };
    let (mut whole, mut refused) = (0, 0);
    for _ in 0..40 {
        match fs::read(&view) {
            Ok(bytes) => {
                assert_eq!(bytes.len(), LEN);
                assert!(
                    expected.contains(&bytes),
                    "a torn image: neither version (first bytes past the header {:02x?})",
                    &bytes[0x1000..0x1004]
                );
                whole += 1;
            }
            Err(error) => {
                assert_eq!(error.raw_os_error(), Some(libc::EIO), "{error}");
                refused += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().unwrap();
    assert!(writes > 10, "the writer wrote only {writes} times");
    assert!(whole > 0, "every read failed ({refused} EIO)");
    eprintln!("{whole} whole images, {refused} EIO, {writes} writes");
    // Once the writer stops, the file reads whole, and info/ forgets the
    // failures of reads that raced it.
    assert_eq!(
        fs::read(&view).unwrap(),
        expected[(writes as usize + 1) % 2]
    );
    let info = fs::read_to_string(mnt.join("info/Game.v64.txt")).unwrap();
    assert!(!info.contains("\nreading\n"), "{info}");
    mounted.unmount().unwrap();
}

#[test]
fn a_view_read_straight_from_its_backing_file_reads_as_that_file_does() {
    require_fuse!();
    let dirs = tempfile::tempdir().unwrap();
    let backing = dirs.path().join("backing");
    let mnt = dirs.path().join("mnt");
    fs::create_dir_all(&backing).unwrap();
    fs::create_dir(&mnt).unwrap();
    let rom = fixture_bytes("roms/snes/cputest-basic.sfc");
    let path = backing.join("Game.sfc");
    fs::write(&path, &rom).unwrap();
    let fs_core = NinjaFs::new(&backing, 64 << 20, Limits::default()).unwrap();
    let mounted = mount::start(fs_core, &mnt, &MountOptions::default()).unwrap();
    let _guard = MountGuard { path: mnt.clone() };

    let mut view = fs::File::open(mnt.join("normalized/Game.sfc")).unwrap();
    let half = rom.len() / 2;
    let mut first = vec![0u8; half];
    view.read_exact(&mut first).unwrap();
    assert_eq!(first, rom[..half]);
    // Cut the backing file short under the open reader.
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(half as u64 / 2)
        .unwrap();
    view.seek(SeekFrom::Start(half as u64)).unwrap();
    let mut rest = Vec::new();
    view.read_to_end(&mut rest).unwrap();
    if passthrough_expected() {
        // The kernel reads the backing file itself: the short read that
        // reading the file directly gives.
        assert_eq!(rest, b"");
    } else {
        // Served by the daemon: the whole image of the version opened.
        assert_eq!(rest, rom[half..]);
    }
    drop(view);
    mounted.unmount().unwrap();
}
