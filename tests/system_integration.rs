//! ninja-fs as a system runs it: `mount -t fuse.ninja-fs` and fstab lines
//! (through `mount.fuse3`), systemd's readiness protocol and the shipped
//! unit, where a detached mount's log goes, shell completions, the manual
//! page and help that describes everything.
//!
//! `mount(8)` runs helpers without `PATH`, and `mount.fuse3` starts
//! `ninja-fs` through `sh`, whose built-in search path begins with
//! `/usr/local/sbin`: the `mount(8)` tests run in a private mount namespace
//! (`unshare -m`) where that folder is a temporary one holding a link to
//! the built binary, so neither it nor their mounts are seen outside.

mod mount_support;

use std::fs;
use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use mount_support::{
    Dirs, MountGuard, assert_says_where_logs_go, expected_readable, gone, is_mounted, ninja, run,
    signal, stderr, wait_until,
};

const BINARY: &str = env!("CARGO_BIN_EXE_ninja-fs");

/// Why `mount(8)` cannot run ninja-fs here, if it cannot (checked once).
fn mount8_unavailable() -> Option<String> {
    if let Some(reason) = mount_support::fuse_unavailable() {
        return Some(reason);
    }
    if !Path::new("/sbin/mount.fuse3").exists() && !Path::new("/usr/sbin/mount.fuse3").exists() {
        return Some("mount.fuse3 is missing (Debian's fuse3 package)".into());
    }
    let unshare = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "true"])
        .output();
    match unshare {
        Ok(output) if output.status.success() => None,
        Ok(output) => Some(format!(
            "cannot make a mount namespace: unshare: {}",
            stderr(&output).trim()
        )),
        Err(error) => Some(format!("cannot run unshare: {error}")),
    }
}

/// Skips the test (returning from it) when `mount(8)` cannot be tried.
macro_rules! require_mount8 {
    () => {
        if let Some(reason) = mount8_unavailable() {
            eprintln!("skipped: {reason}");
            return;
        }
    };
}

/// A test's folders, and a folder holding `ninja-fs` (a link to the binary).
struct System {
    dirs: Dirs,
    bin: PathBuf,
}

impl System {
    fn new() -> System {
        let dirs = Dirs::new();
        let bin = dirs.root().join("bin");
        fs::create_dir(&bin).unwrap();
        std::os::unix::fs::symlink(BINARY, bin.join("ninja-fs")).unwrap();
        System { dirs, bin }
    }

    fn state_home(&self) -> PathBuf {
        self.dirs.root().join("xdg-state")
    }

    /// Runs `script` (sh, stopping at the first failing command) in a
    /// private mount namespace where `/usr/local/sbin` holds only
    /// `ninja-fs`. `$SRC`, `$MNT` and `$ROOT` are the backing folder, the
    /// mount point and the test's folder. Whatever is still mounted at the
    /// end is unmounted and its daemon stopped.
    fn in_namespace(&self, script: &str) -> Output {
        let wrapped = format!(
            "mount --bind \"$BIN\" /usr/local/sbin\n\
             trap 'umount \"$MNT\" 2>/dev/null || umount -l \"$MNT\" 2>/dev/null || true' EXIT\n\
             {script}"
        );
        let output = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-ec"])
            .arg(wrapped)
            .env("BIN", &self.bin)
            .env("SRC", &self.dirs.backing)
            .env("MNT", &self.dirs.mnt)
            .env("ROOT", self.dirs.root())
            .env("XDG_CACHE_HOME", self.dirs.cache_home())
            .env("XDG_STATE_HOME", self.state_home())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        // The daemon ends once its mount is gone; stop any that did not.
        let mnt = self.dirs.mnt.clone();
        if !wait_until(Duration::from_secs(5), || daemons_serving(&mnt).is_empty()) {
            for pid in daemons_serving(&mnt) {
                signal(pid, libc::SIGTERM);
            }
            wait_until(Duration::from_secs(5), || daemons_serving(&mnt).is_empty());
        }
        output
    }
}

/// The ninja-fs processes (started by these tests) whose arguments name
/// `mnt`, in any mount namespace.
fn daemons_serving(mnt: &Path) -> Vec<i32> {
    let wanted = mnt.as_os_str().as_encoded_bytes();
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let is_ninja = args.first().is_some_and(|a| a.ends_with(b"ninja-fs"));
        if is_ninja && args.contains(&wanted) && !gone(pid) {
            pids.push(pid);
        }
    }
    pids
}

/// The text after the line `== name` of a script's output, up to the next
/// such line.
fn section<'a>(stdout: &'a str, name: &str) -> &'a str {
    let marker = format!("== {name}\n");
    let start = stdout
        .find(&marker)
        .unwrap_or_else(|| panic!("no section {name} in:\n{stdout}"))
        + marker.len();
    let rest = &stdout[start..];
    &rest[..rest.find("== ").unwrap_or(rest.len())]
}

/// The mount's line of /proc/mounts, split into its fields.
fn mount_fields(line: &str) -> Vec<String> {
    let fields: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    assert_eq!(fields.len(), 6, "{line}");
    fields
}

fn has_option(fields: &[String], option: &str) -> bool {
    fields[3].split(',').any(|o| o == option)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `mount -t fuse.ninja-fs SRC MNT -o allow_other,cache_size=64M`, as the
/// issue asks; the views list and read, a second mount is refused by name,
/// and `umount` ends it and its daemon.
#[test]
fn mount_t_fuse_ninja_fs() {
    require_mount8!();
    let system = System::new();
    let expected = expected_readable(&system.dirs.backing);
    let (file, bytes) = expected.iter().next().unwrap();
    let output = system.in_namespace(&format!(
        "mount -t fuse.ninja-fs \"$SRC\" \"$MNT\" -o allow_other,cache_size=64M\n\
         echo '== mounts'; grep \" $MNT \" /proc/self/mounts\n\
         echo '== views'; ls \"$MNT\"\n\
         echo '== size'; wc -c < \"$MNT/{}\"\n\
         echo '== again'; mount -t fuse.ninja-fs \"$SRC\" \"$MNT\" 2>&1 || echo \"refused $?\"\n\
         umount \"$MNT\"\n\
         echo '== after'; grep -c \" $MNT \" /proc/self/mounts || true\n",
        file.display()
    ));
    let out = stdout(&output);
    assert!(output.status.success(), "{out}\n{}", stderr(&output));
    let fields = mount_fields(section(&out, "mounts"));
    assert_eq!(fields[0], system.dirs.backing.to_str().unwrap());
    assert_eq!(fields[2], "fuse.ninja-fs");
    for option in [
        "ro",
        "nosuid",
        "nodev",
        "allow_other",
        "default_permissions",
    ] {
        assert!(has_option(&fields, option), "{option} missing: {fields:?}");
    }
    assert_eq!(
        section(&out, "views")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["deinterleaved", "info", "normalized", "patched"]
    );
    assert_eq!(section(&out, "size").trim(), bytes.len().to_string());
    let again = section(&out, "again");
    assert!(
        again.contains(&format!(
            "ninja-fs: mount point {} is already mounted here (ninja-fs of {}); unmount it first",
            system.dirs.mnt.display(),
            system.dirs.backing.display()
        )),
        "{again}"
    );
    assert!(again.contains("refused "), "{again}");
    assert_eq!(section(&out, "after").trim(), "0");
    // mount(8) shows what the helper printed: where the log goes.
    assert_says_where_logs_go(
        &Output {
            stdout: Vec::new(),
            ..output
        },
        &system.dirs,
    );
}

/// The fstab line of the issue, through `mount -T FSTAB MNT`; `mount -a`
/// then knows it is mounted (the source and type match the line).
#[test]
fn fstab_line_mounts_once() {
    require_mount8!();
    let system = System::new();
    let output = system.in_namespace(
        "printf '%s %s fuse.ninja-fs ro,allow_other,nofail,_netdev,x-systemd.automount,\
         cache_size=512M 0 0\\n' \"$SRC\" \"$MNT\" > \"$ROOT/fstab\"\n\
         mount -T \"$ROOT/fstab\" \"$MNT\"\n\
         echo '== mounts'; grep \" $MNT \" /proc/self/mounts\n\
         mount -a -T \"$ROOT/fstab\"\n\
         echo '== count'; grep -c \" $MNT \" /proc/self/mounts\n\
         echo '== views'; ls \"$MNT/normalized\"\n\
         umount \"$MNT\"\n",
    );
    let out = stdout(&output);
    assert!(output.status.success(), "{out}\n{}", stderr(&output));
    let fields = mount_fields(section(&out, "mounts"));
    assert_eq!(fields[0], system.dirs.backing.to_str().unwrap());
    assert_eq!(fields[2], "fuse.ninja-fs");
    assert!(has_option(&fields, "allow_other"), "{fields:?}");
    assert_eq!(section(&out, "count").trim(), "1");
    assert!(section(&out, "views").contains("snes"), "{out}");
}

/// `mount` passes `rw,dev,suid` unless told otherwise, and fstab lines carry
/// options meant for mount or systemd: accepted, and the mount stays
/// read-only, nosuid and nodev.
#[test]
fn generic_options_are_accepted_and_change_nothing() {
    require_mount8!();
    let system = System::new();
    let output = system.in_namespace(
        "mount -t fuse.ninja-fs \"$SRC\" \"$MNT\" -o rw,dev,suid,exec,atime,sync,dirsync,\
         nofail,_netdev,auto,user,users,owner,group,defaults,x-systemd.idle-timeout=30,\
         x-gvfs-show,comment=library,default_permissions\n\
         echo '== mounts'; grep \" $MNT \" /proc/self/mounts\n\
         echo '== write'; touch \"$MNT/normalized/new\" 2>&1 || true\n\
         umount \"$MNT\"\n",
    );
    let out = stdout(&output);
    assert!(output.status.success(), "{out}\n{}", stderr(&output));
    let fields = mount_fields(section(&out, "mounts"));
    for option in ["ro", "nosuid", "nodev"] {
        assert!(has_option(&fields, option), "{option} missing: {fields:?}");
    }
    assert!(!has_option(&fields, "rw"), "{fields:?}");
    assert!(
        section(&out, "write").contains("Read-only file system"),
        "{out}"
    );
}

/// An option ninja-fs does not know is refused, by name, and nothing is
/// mounted.
#[test]
fn unknown_options_are_refused_by_name() {
    require_mount8!();
    let system = System::new();
    let output = system.in_namespace(
        "echo '== mount'; mount -t fuse.ninja-fs \"$SRC\" \"$MNT\" -o allow_other,frobnicate=3 \
         2>&1 || echo \"refused $?\"\n\
         echo '== after'; grep -c \" $MNT \" /proc/self/mounts || true\n",
    );
    let out = stdout(&output);
    assert!(output.status.success(), "{out}\n{}", stderr(&output));
    let said = section(&out, "mount");
    assert!(
        said.contains("ninja-fs: unknown mount option 'frobnicate=3': ninja-fs takes "),
        "{said}"
    );
    assert!(said.contains("refused "), "{said}");
    assert_eq!(section(&out, "after").trim(), "0");

    // The helper form alone, as mount.fuse3 runs it, says the same.
    let output = run(ninja()
        .arg(&system.dirs.backing)
        .arg(&system.dirs.mnt)
        .args(["-o", "rw,max_read=4096"]));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with("ninja-fs: unknown mount option 'max_read=4096': "),
        "{}",
        stderr(&output)
    );
    let output = run(ninja()
        .arg("mount")
        .arg(&system.dirs.backing)
        .arg(&system.dirs.mnt)
        .args(["-o", "cache_size=lots"]));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "ninja-fs: mount option 'cache_size': 'lots' is not a size: write a number of bytes, \
         or one like 64K, 256M, 1G\n"
    );
    assert!(!is_mounted(&system.dirs.mnt));
}

/// `mount.fuse3 'ninja-fs#SOURCE' MOUNTPOINT`, the form the issue found
/// failing, with ninja-fs on PATH (mount.fuse3 keeps PATH; mount(8) does
/// not).
#[test]
fn mount_fuse3_runs_the_helper_form() {
    require_mount8!();
    let system = System::new();
    let helper = ["/sbin/mount.fuse3", "/usr/sbin/mount.fuse3"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap();
    let path = format!(
        "{}:{}",
        system.bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new(helper)
        .arg(format!("ninja-fs#{}", system.dirs.backing.display()))
        .arg(&system.dirs.mnt)
        .args(["-o", "allow_other,no_header_cache"])
        .env("PATH", path)
        .env("XDG_STATE_HOME", system.state_home())
        .env("XDG_CACHE_HOME", system.dirs.cache_home())
        .output()
        .unwrap();
    let _guard = MountGuard {
        path: system.dirs.mnt.clone(),
    };
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(is_mounted(&system.dirs.mnt));
    assert_eq!(
        mount_support::read_tree(&system.dirs.mnt),
        expected_readable(&system.dirs.backing)
    );
    // No header cache was asked for: none was written.
    let output = run(Command::new("umount").arg(&system.dirs.mnt));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!system.dirs.cache_home().join("ninja-fs").exists());
}

/// Under systemd (`Type=notify`), `mount -f` says READY=1 once the mount
/// answers and STOPPING=1 on SIGTERM, then unmounts and exits 0.
#[test]
fn systemd_is_told_when_the_mount_is_ready() {
    require_fuse!();
    let dirs = Dirs::new();
    let socket_path = dirs.root().join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut child = ninja()
        .args(["mount", "-f"])
        .arg(&dirs.backing)
        .arg(&dirs.mnt)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("XDG_CACHE_HOME", dirs.cache_home())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _guard = MountGuard {
        path: dirs.mnt.clone(),
    };
    let mut message = [0u8; 256];
    let len = socket.recv(&mut message).expect("READY=1 within 10 s");
    assert_eq!(&message[..len], b"READY=1\n");
    // Ready means ready: the mount answers at once.
    assert!(is_mounted(&dirs.mnt));
    assert!(fs::read_dir(dirs.mnt.join("normalized")).is_ok());
    signal(child.id() as i32, libc::SIGTERM);
    let len = socket.recv(&mut message).expect("STOPPING=1");
    assert_eq!(&message[..len], b"STOPPING=1\n");
    let status = child.wait().unwrap();
    let mut said = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut said)
        .unwrap();
    assert!(status.success(), "{said}");
    assert!(!is_mounted(&dirs.mnt));
}

/// The shipped unit passes `systemd-analyze verify` (with ninja-fs where
/// systemd looks for it).
#[test]
fn the_systemd_unit_verifies() {
    require_mount8!();
    let verify = Command::new("systemd-analyze").arg("--version").output();
    if !verify.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: systemd-analyze is missing (Debian's systemd package)");
        return;
    }
    let system = System::new();
    let units = system.dirs.root().join("units");
    fs::create_dir(&units).unwrap();
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/ninja-fs@.service");
    fs::copy(&unit, units.join("ninja-fs@.service")).unwrap();
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-ec"])
        .arg(
            "mount --bind \"$BIN\" /usr/local/sbin\n\
             systemd-analyze verify --man=no \"$UNITS/ninja-fs@mnt-ninja.service\"",
        )
        .env("BIN", &system.bin)
        .env("UNITS", &units)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stderr(&output), "", "systemd-analyze found problems");
    let text = fs::read_to_string(&unit).unwrap();
    for line in [
        "Type=notify",
        "ExecStart=ninja-fs mount -f ${BACKING} %f $OPTIONS",
        "Restart=on-failure",
        "WantedBy=multi-user.target",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line}");
    }
}

/// With no system log (no /dev/log), a detached mount logs to
/// `$XDG_STATE_HOME/ninja-fs/<MD5 of the mount point>.log` and says so;
/// `--log-file` and `-o log_file=` choose a file; an EIO's reason is there.
#[test]
fn a_detached_mount_logs_where_it_says() {
    require_fuse!();
    let dirs = Dirs::new();
    let state = dirs.root().join("state");
    let mount = |extra: &[&str]| {
        let output = run(ninja()
            .arg("mount")
            .args(extra)
            .arg(&dirs.backing)
            .arg(&dirs.mnt)
            .env("XDG_STATE_HOME", &state)
            .env("XDG_CACHE_HOME", dirs.cache_home())
            .env_remove("RUST_LOG"));
        assert!(output.status.success(), "{}", stderr(&output));
        assert_says_where_logs_go(&output, &dirs);
        let said = stderr(&output);
        let place = said
            .trim_end()
            .rsplit_once("; the log goes to ")
            .unwrap()
            .1
            .to_string();
        (
            MountGuard {
                path: dirs.mnt.clone(),
            },
            place,
        )
    };
    let unmount = |guard: MountGuard| {
        let pids = daemons_serving(&dirs.mnt);
        drop(guard);
        for pid in pids {
            assert!(wait_until(Duration::from_secs(5), || gone(pid)));
        }
    };
    let broken = mount_support::scenario().broken().unwrap();

    let (guard, place) = mount(&[]);
    // The broken patch's EIO is logged, with its reason.
    let error = fs::read(dirs.mnt.join(&broken)).unwrap_err();
    assert_eq!(error.raw_os_error(), Some(libc::EIO));
    unmount(guard);
    if Path::new("/dev/log").exists() {
        assert_eq!(place, "the system log (journalctl -t ninja-fs)");
    } else {
        let dir = state.join("ninja-fs");
        let files: Vec<_> = fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(files.len(), 1);
        let file = files[0].path();
        assert_eq!(place, file.to_str().unwrap());
        let stem = file.file_stem().unwrap().to_str().unwrap().to_string();
        assert_eq!(stem.len(), 32, "{stem}");
        assert_eq!(file.extension().unwrap(), "log");
        let log = fs::read_to_string(&file).unwrap();
        assert!(log.contains(" INFO  ninja_fs::mount] mounted "), "{log}");
        assert!(log.contains("Game.bps"), "{log}");
        assert!(log.contains(" INFO  ninja_fs::mount] unmounted "), "{log}");
    }

    // --log-file, relative to where mount runs, and -o log_file=.
    for (extra, name) in [
        (vec!["--log-file".to_string()], "chosen.log"),
        (vec!["-o".to_string()], "option.log"),
    ] {
        let file = dirs.root().join("logs").join(name);
        let mut args = extra.clone();
        if args[0] == "-o" {
            args.push(format!("log_file={}", file.display()));
        } else {
            args.push(file.display().to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (guard, place) = mount(&args);
        assert_eq!(place, file.to_str().unwrap());
        unmount(guard);
        let log = fs::read_to_string(&file).unwrap();
        assert!(log.contains("ninja_fs::mount] unmounted "), "{log}");
    }

    // A log file that cannot be written is refused before mounting.
    let output = run(ninja()
        .arg("mount")
        .arg("--log-file")
        .arg("/proc/ninja-fs.log")
        .arg(&dirs.backing)
        .arg(&dirs.mnt));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with("ninja-fs: cannot write the log file /proc/ninja-fs.log: "),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).ends_with("; choose another with --log-file\n"));
    assert!(!is_mounted(&dirs.mnt));
}

/// The bash script loads in bash and completes a command and its options.
#[test]
fn bash_completion_loads_and_completes() {
    let script = "source <(\"$NINJA\" completions bash)\n\
         f=$(complete -p ninja-fs | sed -E 's/.* -F ([^ ]+) .*/\\1/')\n\
         COMP_WORDS=(ninja-fs mo); COMP_CWORD=1\n\
         \"$f\" ninja-fs mo ninja-fs; echo \"command: ${COMPREPLY[*]}\"\n\
         COMP_WORDS=(ninja-fs mount --ca); COMP_CWORD=2\n\
         \"$f\" ninja-fs --ca mount; echo \"option: ${COMPREPLY[*]}\"\n\
         COMP_WORDS=(ninja-fs completions z); COMP_CWORD=2\n\
         \"$f\" ninja-fs z completions; echo \"shell: ${COMPREPLY[*]}\"\n";
    let output = Command::new("bash")
        .arg("-c")
        .arg(script)
        .env("NINJA", BINARY)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
    assert_eq!(
        stdout(&output),
        "command: mount\noption: --cache-size\nshell: zsh\n"
    );
    // The other shells' scripts are made too.
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let output = run(ninja().args(["completions", shell]));
        assert!(output.status.success(), "{shell}: {}", stderr(&output));
        assert!(stdout(&output).contains("cache-size"), "{shell}");
    }
    let output = run(ninja().args(["completions", "tcsh"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("invalid value 'tcsh'"));
}

/// The manual page renders with `man -l` and covers every command.
#[test]
fn the_manual_page_renders() {
    let output = run(ninja().arg("man"));
    assert!(output.status.success(), "{}", stderr(&output));
    let page = stdout(&output);
    assert!(page.contains("\n.TH ninja-fs 1 "), "{page}");
    if Command::new("man").arg("--version").output().is_err() {
        eprintln!("skipped rendering: man is missing (Debian's man-db package)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ninja-fs.1");
    fs::write(&file, &page).unwrap();
    let rendered = Command::new("man")
        .arg("-l")
        .arg(&file)
        .env("MANWIDTH", "100")
        .env("MAN_KEEP_FORMATTING", "0")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .output()
        .unwrap();
    assert!(rendered.status.success(), "{}", stderr(&rendered));
    // Without a terminal, man makes bold text by overstriking ("S\x08S").
    let mut text = String::new();
    for c in stdout(&rendered).chars() {
        if c == '\x08' {
            text.pop();
        } else {
            text.push(c);
        }
    }
    for command in [
        "info",
        "normalize",
        "deinterleave",
        "fix-checksum",
        "apply",
        "create",
        "mount",
        "unmount",
        "completions",
        "man",
    ] {
        assert!(
            text.contains(&format!("   ninja-fs {command}\n")),
            "no ninja-fs {command} in:\n{text}"
        );
    }
    for words in [
        "MOUNT OPTIONS",
        "FSTAB AND MOUNT(8)",
        "fuse.ninja-fs ro,allow_other,nofail,cache_size=512M 0 0",
        "SYSTEMD",
        "LOGS",
        "--log-file",
        "--cache-size",
    ] {
        assert!(text.contains(words), "no {words} in:\n{text}");
    }
}

/// `--help` lists every command, and each command's help describes every
/// option and argument it lists.
#[test]
fn help_lists_and_describes_everything() {
    let output = run(ninja().arg("--help"));
    assert!(output.status.success());
    let help = stdout(&output);
    let commands: Vec<String> = help
        .split("Commands:\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .filter(|c| c != "help")
        .collect();
    assert_eq!(
        commands,
        [
            "info",
            "normalize",
            "deinterleave",
            "fix-checksum",
            "apply",
            "create",
            "mount",
            "unmount",
            "completions",
            "man"
        ]
    );
    for command in &commands {
        // -h: the one-line form, each entry with its description.
        let output = run(ninja().arg(command).arg("-h"));
        assert!(output.status.success(), "{command}");
        let help = stdout(&output);
        let mut entries = 0;
        for line in help.lines() {
            // "  -o, --output <OUT>  Output file": a flag or an argument,
            // then its description after two spaces or more.
            let trimmed = line.trim_start();
            let is_entry = line.starts_with("  ")
                && (trimmed.starts_with('-') || trimmed.starts_with('<'))
                && !line.starts_with("          ");
            if !is_entry {
                continue;
            }
            entries += 1;
            let described = trimmed
                .split_once("  ")
                .is_some_and(|(_, rest)| !rest.trim().is_empty());
            assert!(described, "ninja-fs {command}: no description for {line:?}");
        }
        assert!(entries >= 2, "{command}: {help}");
    }
    let create = stdout(&run(ninja().args(["create", "--help"])));
    for format in [
        "rup", "bps", "ips", "ups", "ppf", "aps", "gdiff", "vcdiff", "pat", "ffp", "fc",
    ] {
        assert!(
            create.split_whitespace().any(|w| w == format),
            "create --help does not name {format}"
        );
    }
    let info = stdout(&run(ninja().args(["info", "--help"])));
    assert!(info.contains("<FILE>..."), "{info}");
    assert!(info.contains("ROMs and patches"), "{info}");
}

/// `make install` puts the binary, the manual page, the completions and the
/// systemd unit in place under DESTDIR/PREFIX, and `make uninstall` takes
/// them away.
#[test]
fn make_install_puts_everything_in_place() {
    if Command::new("make").arg("--version").output().is_err() {
        eprintln!("skipped: make is missing");
        return;
    }
    let dest = tempfile::tempdir().unwrap();
    let make = |target: &str| {
        let output = Command::new("make")
            .arg("-C")
            .arg(env!("CARGO_MANIFEST_DIR"))
            .arg(target)
            .arg(format!("BINARY={BINARY}"))
            .arg(format!("DESTDIR={}", dest.path().display()))
            .arg("PREFIX=/usr/local")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "make {target}: {}",
            stderr(&output)
        );
    };
    make("install");
    let prefix = dest.path().join("usr/local");
    let installed = [
        "bin/ninja-fs",
        "share/man/man1/ninja-fs.1",
        "share/bash-completion/completions/ninja-fs",
        "share/zsh/site-functions/_ninja-fs",
        "share/fish/vendor_completions.d/ninja-fs.fish",
        "lib/systemd/system/ninja-fs@.service",
    ];
    for file in installed {
        let meta = fs::metadata(prefix.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(meta.len() > 0, "{file} is empty");
    }
    let output = run(Command::new(prefix.join("bin/ninja-fs")).arg("--version"));
    assert!(stdout(&output).starts_with("ninja-fs "));
    let page = fs::read_to_string(prefix.join("share/man/man1/ninja-fs.1")).unwrap();
    assert!(page.contains(".SS \"ninja-fs mount\""));
    make("uninstall");
    for file in installed {
        assert!(!prefix.join(file).exists(), "{file} is still there");
    }
}

/// Patch formats ninja-fs does not read yet are named as such by `info`
/// and `apply`, not taken for a ROM of system raw.
#[test]
fn unread_patch_formats_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let rom = dir.path().join("game.sfc");
    fs::write(&rom, vec![0u8; 0x8000]).unwrap();
    for (name, bytes, format) in [
        (
            "hack.bsdiff",
            &b"ENDSLEY/BSDIFF43\x00\x00\x00\x00"[..],
            "an ENDSLEY/BSDIFF43",
        ),
        ("hack.bdf", &b"ENDSLEY/BSDIFF43"[..], "an ENDSLEY/BSDIFF43"),
    ] {
        let patch = dir.path().join(name);
        fs::write(&patch, bytes).unwrap();
        let expected = format!(
            "{}: {format} patch, a format ninja-fs does not read yet (it reads IPS, IPS32, EBP, UPS, \
             BPS, PPF, NINJA2 RUP, APS, GDIFF, VCDIFF/xdelta, BSDIFF40 (BDF), PAT, FFP, fc /b, DPS, PMSR (Star Rod \
             .mod), BSP)",
            patch.display()
        );
        let output = run(ninja().arg("info").arg(&patch));
        assert_eq!(output.status.code(), Some(1));
        assert!(
            stderr(&output).starts_with(&format!("ninja-fs: {expected}\n")),
            "{}",
            stderr(&output)
        );
        let output = run(ninja()
            .arg("apply")
            .arg(&rom)
            .arg(&patch)
            .arg("-o")
            .arg(dir.path().join("out.sfc")));
        assert_eq!(output.status.code(), Some(1));
        assert_eq!(stderr(&output), format!("ninja-fs: {expected}\n"));
    }
}
