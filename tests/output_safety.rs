//! `-o` over what is already there: devices and FIFOs are written into,
//! links are followed and kept, a replaced file keeps its mode and owner,
//! anything else is refused untouched, and nothing partial is left.

mod common;

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{fixture, ninja, read_fixture, stderr_of};

const ROM: &str = "roms/nes/nes15-NTSC.nes";
const TARGET: &str = "roms/nes/nes15-PAL.nes";
/// Built whole, then written.
const IPS: &str = "patches/nes15_ntsc2pal.flips.ips";
/// Streamed window by window into the output.
const VCDIFF: &str = "patches/nes15_ntsc2pal.xdelta3-default.vcdiff";

/// `ninja-fs apply ROM PATCH -o OUT EXTRA...`.
fn apply(patch: &str, out: &Path, extra: &[&str]) -> assert_cmd::Command {
    let mut command = ninja();
    command
        .arg("apply")
        .arg(fixture(ROM))
        .arg(fixture(patch))
        .arg("-o")
        .arg(out)
        .args(extra);
    command
}

/// The names in `dir`, sorted (a temporary file left behind shows here).
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().mode() & 0o7777
}

/// Puts a device back if a regression ever replaced it, so one failing
/// test does not break the machine it runs on (the tests run as root).
struct DeviceGuard {
    path: &'static str,
    /// `mknod` arguments: major and minor numbers.
    numbers: [&'static str; 2],
}

impl Drop for DeviceGuard {
    fn drop(&mut self) {
        let kind = std::fs::symlink_metadata(self.path).map(|m| m.file_type());
        if kind.is_ok_and(|kind| !kind.is_char_device()) {
            let _ = std::fs::remove_file(self.path);
            let _ = std::process::Command::new("mknod")
                .args(["-m", "666", self.path, "c"])
                .args(self.numbers)
                .status();
        }
    }
}

#[test]
fn dev_null_is_written_into_and_stays_a_device() {
    let _guard = DeviceGuard {
        path: "/dev/null",
        numbers: ["1", "3"],
    };
    let null = Path::new("/dev/null");
    for patch in [IPS, VCDIFF] {
        for extra in [&["--force"][..], &[]] {
            let out = apply(patch, null, extra)
                .assert()
                .success()
                .get_output()
                .clone();
            assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
            let kind = std::fs::symlink_metadata(null).unwrap().file_type();
            assert!(
                kind.is_char_device(),
                "{patch} {extra:?} replaced /dev/null"
            );
        }
    }
}

#[test]
fn dev_full_fails_with_enospc_and_names_it() {
    let _guard = DeviceGuard {
        path: "/dev/full",
        numbers: ["1", "7"],
    };
    for patch in [IPS, VCDIFF] {
        let assert = apply(patch, Path::new("/dev/full"), &["--force"])
            .assert()
            .failure()
            .code(1);
        let out = assert.get_output();
        assert!(out.stdout.is_empty());
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "ninja-fs: /dev/full: cannot write: No space left on device\n",
            "{patch}"
        );
        let kind = std::fs::symlink_metadata("/dev/full").unwrap().file_type();
        assert!(kind.is_char_device());
    }
}

/// Runs `command` writing into the FIFO at `fifo` while a thread reads
/// it; returns what the reader got.
fn read_through_fifo(fifo: &Path, mut command: assert_cmd::Command) -> Vec<u8> {
    let reader = {
        let fifo = fifo.to_path_buf();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            std::fs::File::open(&fifo)
                .unwrap()
                .read_to_end(&mut bytes)
                .unwrap();
            bytes
        })
    };
    let out = command.output().unwrap();
    // Releases a reader still waiting if the command never opened the FIFO.
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo);
    let bytes = reader.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bytes
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn a_fifo_gets_the_exact_bytes_and_stays_a_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    mkfifo(&fifo);
    let expected = read_fixture(TARGET);
    // Without --force: a FIFO is written into, not replaced.
    for patch in [IPS, VCDIFF] {
        let bytes = read_through_fifo(&fifo, apply(patch, &fifo, &[]));
        assert!(bytes == expected, "{patch}: wrong bytes through the FIFO");
        let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
        assert!(kind.is_fifo(), "{patch} replaced the FIFO");
    }
    assert_eq!(names_in(dir.path()), ["pipe"]);
}

#[test]
fn force_keeps_the_mode_of_the_file_it_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let expected = read_fixture(TARGET);
    for (patch, mode) in [(IPS, 0o640), (VCDIFF, 0o600), (IPS, 0o755)] {
        let out = dir.path().join("out.nes");
        std::fs::write(&out, b"old").unwrap();
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(mode)).unwrap();
        apply(patch, &out, &["--force"]).assert().success();
        assert!(std::fs::read(&out).unwrap() == expected, "{patch}");
        assert_eq!(mode_of(&out), mode, "{patch} {mode:o}");
    }
    // A new file gets the mode any new file gets (0666 less the umask).
    let reference = dir.path().join("reference");
    std::fs::File::create(&reference).unwrap();
    let fresh = dir.path().join("fresh.nes");
    apply(IPS, &fresh, &[]).assert().success();
    assert_eq!(mode_of(&fresh), mode_of(&reference));
    assert_eq!(names_in(dir.path()), ["fresh.nes", "out.nes", "reference"]);
}

#[test]
fn force_keeps_the_owner_and_group_when_root() {
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("probe");
    std::fs::File::create(&probe).unwrap();
    if std::fs::metadata(&probe).unwrap().uid() != 0 {
        println!("skipped: only root can give a file to another owner");
        return;
    }
    let expected = read_fixture(TARGET);
    for patch in [IPS, VCDIFF] {
        let out = dir.path().join("theirs.nes");
        std::fs::write(&out, b"old").unwrap();
        std::os::unix::fs::chown(&out, Some(65534), Some(65534)).unwrap();
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o640)).unwrap();
        apply(patch, &out, &["--force"]).assert().success();
        let meta = std::fs::metadata(&out).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "{patch}");
        assert_eq!(meta.mode() & 0o7777, 0o640, "{patch}");
        assert!(std::fs::read(&out).unwrap() == expected, "{patch}");
    }
}

#[test]
fn a_link_is_kept_and_the_file_it_leads_to_gets_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let real_dir = dir.path().join("real");
    let link_dir = dir.path().join("links");
    std::fs::create_dir_all(&real_dir).unwrap();
    std::fs::create_dir_all(&link_dir).unwrap();
    let real = real_dir.join("game.nes");
    let link = link_dir.join("out.nes");
    std::os::unix::fs::symlink("../real/game.nes", &link).unwrap();
    std::fs::write(&real, b"old").unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();

    // It exists (through the link): refused without --force, untouched.
    let err = stderr_of(&mut apply(IPS, &link, &[]));
    assert_eq!(
        err,
        format!(
            "ninja-fs: {}: already exists (use --force to replace it)\n",
            link.display()
        )
    );
    assert_eq!(std::fs::read(&real).unwrap(), b"old");

    let expected = read_fixture(TARGET);
    for patch in [IPS, VCDIFF] {
        apply(patch, &link, &["--force"]).assert().success();
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            Path::new("../real/game.nes")
        );
        assert!(std::fs::read(&real).unwrap() == expected, "{patch}");
        assert_eq!(mode_of(&real), 0o600, "{patch}");
    }
    assert_eq!(names_in(&real_dir), ["game.nes"]);
    assert_eq!(names_in(&link_dir), ["out.nes"]);
}

#[test]
fn a_dangling_link_chain_creates_the_file_it_names() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    // first -> second -> sub/new.nes (missing): no --force needed, as
    // nothing is replaced.
    let first = dir.path().join("first.nes");
    let second = dir.path().join("second.nes");
    std::os::unix::fs::symlink("second.nes", &first).unwrap();
    std::os::unix::fs::symlink(dir.path().join("sub/new.nes"), &second).unwrap();
    apply(VCDIFF, &first, &[]).assert().success();
    assert_eq!(std::fs::read_link(&first).unwrap(), Path::new("second.nes"));
    assert_eq!(
        std::fs::read_link(&second).unwrap(),
        dir.path().join("sub/new.nes")
    );
    assert!(std::fs::read(dir.path().join("sub/new.nes")).unwrap() == read_fixture(TARGET));
    assert_eq!(names_in(&dir.path().join("sub")), ["new.nes"]);

    // A link into a folder that does not exist: nothing is made.
    let nowhere = dir.path().join("nowhere.nes");
    std::os::unix::fs::symlink("missing/new.nes", &nowhere).unwrap();
    let err = stderr_of(&mut apply(IPS, &nowhere, &[]));
    assert_eq!(
        err,
        format!(
            "ninja-fs: {}: cannot write: No such file or directory\n",
            dir.path().join("missing/new.nes").display()
        )
    );

    // A loop is named as one.
    let a = dir.path().join("a.nes");
    let b = dir.path().join("b.nes");
    std::os::unix::fs::symlink("b.nes", &a).unwrap();
    std::os::unix::fs::symlink("a.nes", &b).unwrap();
    let err = stderr_of(&mut apply(IPS, &a, &["--force"]));
    assert_eq!(
        err,
        format!(
            "ninja-fs: {}: cannot write: Too many levels of symbolic links\n",
            a.display()
        )
    );
    assert_eq!(
        names_in(dir.path()),
        [
            "a.nes",
            "b.nes",
            "first.nes",
            "nowhere.nes",
            "second.nes",
            "sub"
        ]
    );
}

#[test]
fn a_link_to_an_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rom = dir.path().join("game.nes");
    std::fs::copy(fixture(ROM), &rom).unwrap();
    let link = dir.path().join("out.nes");
    std::os::unix::fs::symlink("game.nes", &link).unwrap();
    let err = stderr_of(
        ninja()
            .arg("apply")
            .arg(&rom)
            .arg(fixture(IPS))
            .arg("--force")
            .arg("-o")
            .arg(&link),
    );
    assert_eq!(
        err,
        format!(
            "ninja-fs: {}: is also an input; write the output somewhere else\n",
            link.display()
        )
    );
    assert!(std::fs::read(&rom).unwrap() == read_fixture(ROM));
}

#[test]
fn a_socket_is_refused_and_left_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    for patch in [IPS, VCDIFF] {
        for extra in [&["--force"][..], &[]] {
            let err = stderr_of(&mut apply(patch, &socket, extra));
            assert_eq!(
                err,
                format!(
                    "ninja-fs: {}: is a socket; ninja-fs writes only to files, character devices (such as /dev/null) and FIFOs\n",
                    socket.display()
                )
            );
            let kind = std::fs::symlink_metadata(&socket).unwrap().file_type();
            assert!(kind.is_socket());
        }
    }
    // Through a link too.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink("sock", &link).unwrap();
    let err = stderr_of(&mut apply(IPS, &link, &["--force"]));
    assert!(err.contains(": is a socket;"), "{err}");
    assert_eq!(names_in(dir.path()), ["link", "sock"]);
}

/// `ninja-fs apply multifile_A multifile_dir.rup -o OUT EXTRA...`.
fn apply_folder(out: &Path, extra: &[&str]) -> assert_cmd::Command {
    let mut command = ninja();
    command
        .arg("apply")
        .arg(fixture("rup-vectors/multifile_A"))
        .arg(fixture("rup-vectors/multifile_dir.rup"))
        .arg("-o")
        .arg(out)
        .args(extra);
    command
}

/// Every file under `dir` with its bytes, by relative path.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.push((path.strip_prefix(root).unwrap().to_path_buf(), bytes));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn a_folder_output_never_follows_a_link_and_keeps_a_replaced_folders_mode() {
    let dir = tempfile::tempdir().unwrap();
    let expected = dir.path().join("expected");
    apply_folder(&expected, &[]).assert().success();
    let expected_tree = tree(&expected);
    assert!(!expected_tree.is_empty());

    // A link to a folder: refused, with or without --force; the folder it
    // leads to keeps its files.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("precious.txt"), b"keep").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink("elsewhere", &link).unwrap();
    for extra in [&["--force"][..], &[]] {
        let err = stderr_of(&mut apply_folder(&link, extra));
        assert_eq!(
            err,
            format!(
                "ninja-fs: {}: is a symbolic link; a folder output must be a folder or a new name (give the folder it points to)\n",
                link.display()
            )
        );
    }
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("elsewhere"));
    assert_eq!(names_in(&elsewhere), ["precious.txt"]);

    // A file is not replaced by a folder.
    let file = dir.path().join("file");
    std::fs::write(&file, b"keep").unwrap();
    let err = stderr_of(&mut apply_folder(&file, &["--force"]));
    assert_eq!(
        err,
        format!(
            "ninja-fs: {}: is not a folder; a folder output replaces only a folder\n",
            file.display()
        )
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"keep");

    // --force over a folder: its files are replaced, its mode kept.
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("stale.bin"), b"old").unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o750)).unwrap();
    apply_folder(&out, &["--force"]).assert().success();
    assert_eq!(tree(&out), expected_tree);
    assert_eq!(mode_of(&out), 0o750);

    assert_eq!(
        names_in(dir.path()),
        ["elsewhere", "expected", "file", "link", "out"]
    );
}

#[test]
fn a_folder_output_inside_or_around_the_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    for entry in std::fs::read_dir(fixture("rup-vectors/multifile_A")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, input.join(path.file_name().unwrap())).unwrap();
        }
    }
    let before = tree(&input);
    let run = |out: &Path| {
        stderr_of(
            ninja()
                .arg("apply")
                .arg(&input)
                .arg(fixture("rup-vectors/multifile_dir.rup"))
                .arg("--force")
                .arg("-o")
                .arg(out),
        )
    };
    assert_eq!(
        run(&input),
        format!(
            "ninja-fs: {}: is also an input; write the output somewhere else\n",
            input.display()
        )
    );
    let inside = input.join("out");
    assert_eq!(
        run(&inside),
        format!(
            "ninja-fs: {}: is inside the input folder {}; write the output somewhere else\n",
            inside.display(),
            input.display()
        )
    );
    assert_eq!(
        run(dir.path()),
        format!(
            "ninja-fs: {}: holds the input folder {}; write the output somewhere else\n",
            dir.path().display(),
            input.display()
        )
    );
    assert_eq!(tree(&input), before);
    assert_eq!(names_in(dir.path()), ["in"]);
}
