//! Real emulators play files straight from the mount. RetroArch with
//! Debian's libretro cores (under `xvfb-run`) loads `deinterleaved/` and
//! `patched/` files of a mount of the shipped samples plus a few fixtures,
//! and each picture must equal the one the same core draws for the image
//! the view should be, read from a plain file outside the mount (a
//! known-good fixture, or a file the test or the command line made).
//! Standalone Mednafen, which Debian has for the Master System and Game
//! Gear where it has no libretro core, cannot save a picture from the
//! command line: there the MD5 it prints for the loaded image is checked.
//!
//! Each test says "skipped: ..." and passes where FUSE, an emulator, a core
//! or ImageMagick is missing; `.ci/run` installs them when it runs as root.
//! With `NINJA_FS_SCREENSHOTS=docs/screenshots` the tests copy the pictures
//! the README shows there.

mod mount_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicU32, Ordering};

use md5::Digest;
use mount_support::{MountGuard, fixture_bytes, make_fs, ninja};
use ninja_fs::mount::{self, MountOptions, MountedFs};

const CORES: &str = "/usr/lib/x86_64-linux-gnu/libretro";

/// A libretro core and how long it runs before its picture is taken.
#[derive(Clone, Copy)]
struct Core {
    /// `<name>_libretro.so` under [`CORES`].
    name: &'static str,
    /// Enough for every picture below to be final, with a margin.
    frames: u32,
    /// Pictures of one image are identical run after run.
    exact: bool,
}

const NESTOPIA: Core = Core {
    name: "nestopia",
    frames: 120,
    exact: true,
};
// bsnes-mercury is not deterministic here: on the very same file cputest-full
// fails a different test from run to run (0027, 002D, ...) and shows other
// register values, so its pictures are compared loosely (see `same_picture`).
const BSNES: Core = Core {
    name: "bsnes_mercury_balanced",
    frames: 180,
    exact: false,
};
const GAMBATTE: Core = Core {
    name: "gambatte",
    frames: 120,
    exact: true,
};
const MGBA: Core = Core {
    name: "mgba",
    frames: 120,
    exact: true,
};
const PCE_FAST: Core = Core {
    name: "mednafen_pce_fast",
    frames: 120,
    exact: true,
};

/// What a test runs.
enum Tool {
    RetroArch(Core),
    Mednafen,
}

/// Skips the test (returning from it) unless FUSE and every tool it runs
/// are here.
macro_rules! require_emulators {
    ($($tool:expr),+) => {
        require_fuse!();
        if let Some(reason) = missing(&[$($tool),+]) {
            eprintln!("skipped: {reason}");
            return;
        }
    };
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// Debian puts mednafen in /usr/games, which a root shell's PATH may lack.
fn mednafen_program() -> Option<PathBuf> {
    on_path("mednafen").or_else(|| {
        let games = PathBuf::from("/usr/games/mednafen");
        games.is_file().then_some(games)
    })
}

fn core_path(core: Core) -> PathBuf {
    Path::new(CORES).join(format!("{}_libretro.so", core.name))
}

/// Why the tools cannot run here, if they cannot.
fn missing(tools: &[Tool]) -> Option<String> {
    let mut absent = Vec::new();
    // xvfb-run needs xauth, which Debian's xvfb only recommends.
    for program in ["xvfb-run", "xauth"] {
        if on_path(program).is_none() {
            absent.push(program.to_string());
        }
    }
    let mut pictures = false;
    for tool in tools {
        match tool {
            Tool::RetroArch(core) => {
                pictures = true;
                if on_path("retroarch").is_none() {
                    absent.push("retroarch".into());
                }
                if !core_path(*core).is_file() {
                    absent.push(core_path(*core).display().to_string());
                }
            }
            Tool::Mednafen => {
                if mednafen_program().is_none() {
                    absent.push("mednafen".into());
                }
            }
        }
    }
    // The real ImageMagick, not just any `convert`.
    let magick = Command::new("convert")
        .arg("-version")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("ImageMagick"));
    if pictures && !magick {
        absent.push("ImageMagick's convert (Debian: imagemagick)".into());
    }
    absent.dedup();
    (!absent.is_empty()).then(|| format!("not installed: {}", absent.join(", ")))
}

/// A mount of the shipped samples plus fixtures, and folders for plain
/// files and emulator runs. Fields drop in order: the mount goes first.
struct Stage {
    _mounted: MountedFs,
    _guard: MountGuard,
    mnt: PathBuf,
    backing: PathBuf,
    plain: PathBuf,
    runs: PathBuf,
    _root: tempfile::TempDir,
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        } else {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn put(folder: &Path, relative: &str, bytes: &[u8]) -> PathBuf {
    let path = folder.join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, bytes).unwrap();
    path
}

fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

impl Stage {
    /// Mounts a backing folder that `fill` populated.
    fn new(fill: impl FnOnce(&Path)) -> Stage {
        let root = tempfile::tempdir().unwrap();
        let path = |name: &str| {
            let folder = root.path().join(name);
            fs::create_dir(&folder).unwrap();
            folder
        };
        let (backing, mnt, plain, runs) =
            (path("backing"), path("mnt"), path("plain"), path("runs"));
        fill(&backing);
        let mounted = mount::start(make_fs(&backing), &mnt, &MountOptions::default()).unwrap();
        Stage {
            _mounted: mounted,
            _guard: MountGuard { path: mnt.clone() },
            mnt,
            backing,
            plain,
            runs,
            _root: root,
        }
    }

    /// The samples (`samples/roms/`) and these fixtures: mooneye's MBC1 ROM
    /// with a BPS that pairs by its source CRC32 and makes the 1 Mbit test,
    /// and a Game Gear image.
    fn samples() -> Stage {
        Stage::new(|backing| {
            copy_tree(&repo("samples/roms"), backing);
            put(
                backing,
                "gb/mooneye_emulator-only_mbc1_rom_512Kb.gb",
                &fixture_bytes("roms/gb/mooneye_emulator-only_mbc1_rom_512Kb.gb"),
            );
            put(
                backing,
                "patches/mbc1_512k_to_1M.flips-delta.bps",
                &fixture_bytes("patches/mbc1_512k_to_1M.flips-delta.bps"),
            );
            put(
                backing,
                "gg/sdcc_makebin_intl.gg",
                &fixture_bytes("roms/sms_gg/sdcc_makebin_intl.gg"),
            );
        })
    }

    /// A file of the mount; the test fails with the folder's listing if it
    /// is not shown.
    fn view(&self, relative: &str) -> PathBuf {
        let path = self.mnt.join(relative);
        if !path.is_file() {
            let folder = path.parent().unwrap();
            let shown: Vec<_> = fs::read_dir(folder)
                .map(|entries| entries.map(|e| e.unwrap().file_name()).collect())
                .unwrap_or_default();
            panic!(
                "the mount shows no {relative}; {} holds {shown:?}",
                folder.display()
            );
        }
        path
    }

    /// A plain file outside the mount.
    fn plain(&self, name: &str, bytes: &[u8]) -> PathBuf {
        put(&self.plain, name, bytes)
    }

    /// A new folder for one run. Its path has no space or bracket:
    /// xvfb-run passes its auth file's path to Xvfb unquoted.
    fn run_folder(&self, name: &str) -> PathBuf {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let dir = self.runs.join(safe);
        fs::create_dir(&dir).unwrap();
        dir
    }

    /// Runs `rom` in `core` and returns what it showed; `name` names the run.
    fn retroarch(&self, core: Core, rom: &Path, name: &str) -> Run {
        let dir = self.run_folder(name);
        for sub in [
            "saves", "states", "shots", "system", "config", "home", "xdg",
        ] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        // XDG_RUNTIME_DIR must be private to its user.
        fs::create_dir(dir.join("run")).unwrap();
        fs::set_permissions(
            dir.join("run"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let at = |sub: &str| dir.join(sub).display().to_string();
        // Every file RetroArch writes stays in this run's folder; the
        // picture is the core's own frame (not the scaled window), so it
        // does not depend on the GL rasterizer.
        let config = format!(
            "video_driver = \"gl\"\n\
             video_gpu_screenshot = \"false\"\n\
             video_vsync = \"false\"\n\
             video_threaded = \"false\"\n\
             video_font_enable = \"false\"\n\
             audio_driver = \"null\"\n\
             audio_enable = \"false\"\n\
             input_driver = \"null\"\n\
             joypad_driver = \"null\"\n\
             menu_driver = \"rgui\"\n\
             pause_nonactive = \"false\"\n\
             config_save_on_exit = \"false\"\n\
             history_list_enable = \"false\"\n\
             savefile_directory = \"{}\"\n\
             savestate_directory = \"{}\"\n\
             screenshot_directory = \"{}\"\n\
             system_directory = \"{}\"\n\
             rgui_config_directory = \"{}\"\n",
            at("saves"),
            at("states"),
            at("shots"),
            at("system"),
            at("config"),
        );
        fs::write(dir.join("retroarch.cfg"), config).unwrap();
        let shot = dir.join("shot.png");
        let mut command = xvfb(&dir);
        command
            .args(["timeout", "120", "retroarch", "--verbose", "--config"])
            .arg(dir.join("retroarch.cfg"))
            .arg("-L")
            .arg(core_path(core))
            .arg(rom)
            .arg(format!("--max-frames={}", core.frames))
            .arg("--max-frames-ss")
            .arg(format!("--max-frames-ss-path={}", shot.display()));
        let mut run = Run::of(command, name);
        run.picture = shot.is_file().then(|| Picture::read(&shot));
        run
    }

    /// Runs `rom` in Mednafen for three seconds and returns its log.
    fn mednafen(&self, rom: &Path, name: &str) -> Run {
        let dir = self.run_folder(name);
        fs::create_dir_all(dir.join("home")).unwrap();
        let mut command = xvfb(&dir);
        command
            .args(["timeout", "3"])
            .arg(mednafen_program().unwrap())
            .args(["-sound", "0"])
            .arg(rom);
        Run::of(command, name)
    }
}

/// `xvfb-run` with a display of its own and HOME and XDG folders in `dir`.
fn xvfb(dir: &Path) -> Command {
    // Each run starts its search for a free display ten numbers after the
    // last one's, so runs started at the same moment do not race for one.
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let server = 100 + 10 * (NEXT.fetch_add(1, Ordering::Relaxed) % 80);
    let mut command = Command::new("xvfb-run");
    // An auth file of the run's own: without one xvfb-run makes a folder
    // in /tmp and, now and then, fails to remove it (exit status 5).
    command
        .args(["-a", "-n", &server.to_string()])
        .arg("-f")
        .arg(dir.join("Xauthority"))
        .args(["-s", "-screen 0 640x480x24"])
        .env("HOME", dir.join("home"))
        .env("XDG_CONFIG_HOME", dir.join("xdg"))
        .env("XDG_RUNTIME_DIR", dir.join("run"))
        .current_dir(dir);
    command
}

/// What an emulator did.
struct Run {
    name: String,
    status: ExitStatus,
    log: String,
    picture: Option<Picture>,
}

impl Run {
    fn of(mut command: Command, name: &str) -> Run {
        let output = command.output().unwrap();
        let mut log = String::from_utf8_lossy(&output.stdout).into_owned();
        log.push_str(&String::from_utf8_lossy(&output.stderr));
        Run {
            name: name.into(),
            status: output.status,
            log,
            picture: None,
        }
    }

    /// RetroArch loaded the content and ran it to the last frame: it logs
    /// "Unloading game.." only for content a core accepted.
    fn assert_loaded(&self) -> &Picture {
        assert!(
            self.status.success()
                && !self.log.contains("Failed to load content")
                && self.log.contains("[Core]: Unloading game.."),
            "{}: RetroArch did not load it ({}):\n{}",
            self.name,
            self.status,
            self.log
        );
        let picture = self.picture.as_ref().unwrap_or_else(|| {
            panic!("{}: no screenshot:\n{}", self.name, self.log);
        });
        if picture.is_blank() {
            panic!(
                "{}: the picture is blank (kept as {})",
                self.name,
                keep_for_failure(&picture.png, &self.name).display()
            );
        }
        picture
    }

    fn assert_log_has(&self, wanted: &str) {
        assert!(
            self.log.contains(wanted),
            "{}: the log lacks {wanted:?}:\n{}",
            self.name,
            self.log
        );
    }
}

/// A decoded screenshot: 8-bit RGB, row by row.
struct Picture {
    png: PathBuf,
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Picture {
    fn read(png: &Path) -> Picture {
        // ImageMagick decodes it to a binary PPM: "P6 W H 255\n" then RGB.
        let out = Command::new("convert")
            .arg(png)
            .args(["-depth", "8", "ppm:-"])
            .output()
            .unwrap();
        assert!(out.status.success(), "convert {}", png.display());
        let ppm = out.stdout;
        let mut fields = Vec::new();
        let mut at = 0;
        while fields.len() < 4 {
            while ppm[at].is_ascii_whitespace() {
                at += 1;
            }
            let start = at;
            while !ppm[at].is_ascii_whitespace() {
                at += 1;
            }
            fields.push(String::from_utf8_lossy(&ppm[start..at]).into_owned());
        }
        assert_eq!((fields[0].as_str(), fields[3].as_str()), ("P6", "255"));
        let width: usize = fields[1].parse().unwrap();
        let height: usize = fields[2].parse().unwrap();
        let rgb = ppm[at + 1..].to_vec();
        assert_eq!(rgb.len(), width * height * 3, "{}", png.display());
        Picture {
            png: png.to_path_buf(),
            width,
            height,
            rgb,
        }
    }

    /// One colour everywhere (black, or a blank Game Boy screen).
    fn is_blank(&self) -> bool {
        self.rgb.chunks(3).all(|pixel| pixel == &self.rgb[..3])
    }

    /// (x, y) of every pixel that differs from `other`'s.
    fn differences(&self, other: &Picture) -> Vec<(usize, usize)> {
        assert_eq!(
            (self.width, self.height),
            (other.width, other.height),
            "{} and {} differ in size",
            self.png.display(),
            other.png.display()
        );
        (0..self.width * self.height)
            .filter(|i| self.rgb[i * 3..i * 3 + 3] != other.rgb[i * 3..i * 3 + 3])
            .map(|i| (i % self.width, i / self.width))
            .collect()
    }
}

/// Whether two pictures of one core show the same thing. Deterministic
/// cores must give identical pixels. For bsnes only the part of the screen
/// where cputest prints the number of the test that failed and the register
/// values (a box from x=32 to 160, y=24 to 80 of the 256x224 frame) may
/// differ; everything else, including the "Running tests... Failed" or
/// "Success" line, must be identical.
fn same_picture(core: Core, a: &Picture, b: &Picture) -> bool {
    let differences = a.differences(b);
    if core.exact {
        return differences.is_empty();
    }
    differences
        .iter()
        .all(|&(x, y)| (32..160).contains(&x) && (24..80).contains(&y))
}

/// Runs the mount's `view` and the plain `reference` in `core`: both load
/// and draw the same picture, which is not blank. Returns the view's run.
fn plays_like(stage: &Stage, core: Core, view: &str, reference: &Path) -> Run {
    let tag = |side: &str| {
        let file = Path::new(view).file_name().unwrap().to_string_lossy();
        format!("{}-{side}-{file}", core.name)
    };
    let shown = stage.retroarch(core, &stage.view(view), &tag("view"));
    let expected = stage.retroarch(core, reference, &tag("plain"));
    let (a, b) = (shown.assert_loaded(), expected.assert_loaded());
    if !same_picture(core, a, b) {
        panic!(
            "{view} in {}: the picture differs from the one of {} in {} pixels \
             (kept as {} and {})",
            core.name,
            reference.display(),
            a.differences(b).len(),
            keep_for_failure(&a.png, &tag("view")).display(),
            keep_for_failure(&b.png, &tag("plain")).display(),
        );
    }
    shown
}

/// Copies a picture of a failing run out of the test's temporary folder,
/// which is removed when the test ends.
fn keep_for_failure(png: &Path, name: &str) -> PathBuf {
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("emulator-pictures");
    fs::create_dir_all(&folder).unwrap();
    let kept = folder.join(format!("{name}.png"));
    fs::copy(png, &kept).unwrap();
    kept
}

/// The view's bytes are the expected image's.
fn assert_same_bytes(stage: &Stage, view: &str, expected: &[u8]) {
    let bytes = fs::read(stage.view(view)).unwrap();
    assert!(
        bytes == expected,
        "{view}: {} bytes, not the {} expected",
        bytes.len(),
        expected.len()
    );
}

/// With NINJA_FS_SCREENSHOTS set, copies `run`'s picture there as `name`
/// (the README's grid).
fn keep_screenshot(run: &Run, name: &str) {
    let Some(folder) = std::env::var_os("NINJA_FS_SCREENSHOTS") else {
        return;
    };
    let folder = repo("").join(folder);
    fs::create_dir_all(&folder).unwrap();
    let picture = run.picture.as_ref().unwrap();
    fs::copy(&picture.png, folder.join(name)).unwrap();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn nes_plays_from_deinterleaved_and_patched() {
    require_emulators!(Tool::RetroArch(NESTOPIA));
    let stage = Stage::samples();
    // An iNES file, handed to the kernel as it is.
    let pal = fixture_bytes("roms/nes/nes15-PAL.nes");
    assert_same_bytes(&stage, "deinterleaved/nes/nes15-PAL.nes", &pal);
    let run = plays_like(
        &stage,
        NESTOPIA,
        "deinterleaved/nes/nes15-PAL.nes",
        &stage.plain("nes15-PAL.nes", &pal),
    );
    keep_screenshot(&run, "nes-nes15.png");
    // A UNIF file, kept whole.
    let unif = fixture_bytes("roms/nes/nes15-NTSC.unf");
    assert_same_bytes(&stage, "deinterleaved/nes/nes15-NTSC.unf", &unif);
    plays_like(
        &stage,
        NESTOPIA,
        "deinterleaved/nes/nes15-NTSC.unf",
        &stage.plain("nes15-NTSC.unf", &unif),
    );
    // The UNIF through the NINJA2 patch that pairs with it by MD5; the
    // expected image is the command line's `apply` of that patch.
    let reference = stage.plain.join("nes15-NTSC [nes15 PAL].unf");
    let applied = ninja()
        .arg("apply")
        .arg(stage.backing.join("nes/nes15-NTSC.unf"))
        .arg(stage.backing.join("patches/nes15 PAL.rup"))
        .arg("-o")
        .arg(&reference)
        .output()
        .unwrap();
    assert!(applied.status.success(), "{applied:?}");
    let view = "patched/nes/nes15-NTSC [nes15 PAL].unf";
    assert_same_bytes(&stage, view, &fs::read(&reference).unwrap());
    plays_like(&stage, NESTOPIA, view, &reference);
}

#[test]
fn snes_plays_from_deinterleaved_and_patched() {
    require_emulators!(Tool::RetroArch(BSNES));
    let stage = Stage::samples();
    // The headered .smc without its copier header.
    let basic = fixture_bytes("roms/snes/cputest-basic.sfc");
    let view = "deinterleaved/snes/cputest-basic.sfc";
    assert_same_bytes(&stage, view, &basic);
    let run = plays_like(
        &stage,
        BSNES,
        view,
        &stage.plain("cputest-basic.sfc", &basic),
    );
    run.assert_log_has(&format!("rom name=program.rom size={:#x}", basic.len()));
    keep_screenshot(&run, "snes-cputest-basic.png");
    // The sidecar IPS applied to the headerless image: cputest-full.
    let full = fixture_bytes("roms/snes/cputest-full.sfc");
    let view = "patched/snes/cputest-basic [cputest-basic].sfc";
    assert_same_bytes(&stage, view, &full);
    let patched = plays_like(&stage, BSNES, view, &stage.plain("cputest-full.sfc", &full));

    // The headered dump with the same IPS beside it, as a player would
    // have it: RetroArch soft-patches the IPS over the copier header, and
    // the core does not show cputest-full.
    let soft = stage.plain.join("soft");
    let smc = put(
        &soft,
        "cputest-basic.smc",
        &fs::read(repo("samples/roms/snes/cputest-basic.smc")).unwrap(),
    );
    put(
        &soft,
        "cputest-basic.ips",
        &fs::read(repo("samples/roms/snes/cputest-basic.ips")).unwrap(),
    );
    let soft = stage.retroarch(BSNES, &smc, "soft-patched-smc");
    soft.assert_log_has("Found IPS file");
    let soft = soft.picture.as_ref().unwrap();
    assert!(
        !same_picture(BSNES, soft, patched.picture.as_ref().unwrap()),
        "soft-patching the headered dump showed cputest-full (kept as {})",
        keep_for_failure(&soft.png, "soft-patched-smc").display()
    );
}

#[test]
fn game_boy_mbc1_test_passes_from_a_bps_in_patched() {
    require_emulators!(Tool::RetroArch(GAMBATTE), Tool::RetroArch(MGBA));
    let stage = Stage::samples();
    let small = fixture_bytes("roms/gb/mooneye_emulator-only_mbc1_rom_512Kb.gb");
    let view = "deinterleaved/gb/mooneye_emulator-only_mbc1_rom_512Kb.gb";
    assert_same_bytes(&stage, view, &small);
    plays_like(
        &stage,
        GAMBATTE,
        view,
        &stage.plain("mbc1_rom_512Kb.gb", &small),
    );
    // The BPS pairs by the source CRC32 and makes mooneye's 1 Mbit MBC1
    // test, which prints "TEST OK" when the banks hold what it expects.
    let big = fixture_bytes("roms/gb/mooneye_emulator-only_mbc1_rom_1Mb.gb");
    let view = "patched/gb/mooneye_emulator-only_mbc1_rom_512Kb [mbc1_512k_to_1M.flips-delta].gb";
    assert_same_bytes(&stage, view, &big);
    let reference = stage.plain("mbc1_rom_1Mb.gb", &big);
    let run = plays_like(&stage, GAMBATTE, view, &reference);
    run.assert_log_has("MBC1 ROM loaded.");
    keep_screenshot(&run, "gb-mooneye-mbc1.png");
    plays_like(&stage, MGBA, view, &reference);
}

#[test]
fn pc_engine_plays_from_deinterleaved_and_patched() {
    require_emulators!(Tool::RetroArch(PCE_FAST));
    // The sample, and an IPS beside it (made here by the command line)
    // that changes the text it prints.
    let original = fs::read(repo("samples/roms/pce/cc65_hello.pce")).unwrap();
    let at = original
        .windows(12)
        .position(|w| w == b"Hello world!")
        .unwrap();
    let mut changed = original.clone();
    changed[at..at + 12].copy_from_slice(b"Hello ninja!");
    let stage = Stage::samples();
    let reference = stage.plain("cc65_hello ninja.pce", &changed);
    let created = ninja()
        .arg("create")
        .arg(repo("samples/roms/pce/cc65_hello.pce"))
        .arg(&reference)
        .arg("-o")
        .arg(stage.backing.join("pce/cc65_hello.ips"))
        .args(["--format", "ips"])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");

    let view = "deinterleaved/pce/cc65_hello.pce";
    assert_same_bytes(&stage, view, &original);
    let plain = plays_like(
        &stage,
        PCE_FAST,
        view,
        &stage.plain("cc65_hello.pce", &original),
    );
    // The core logs the CRC32 of the image it loaded.
    plain.assert_log_has(&format!("ROM CRC32: {:#010x}", crc32fast::hash(&original)));
    let view = "patched/pce/cc65_hello [cc65_hello].pce";
    assert_same_bytes(&stage, view, &changed);
    let patched = plays_like(&stage, PCE_FAST, view, &reference);
    patched.assert_log_has(&format!("ROM CRC32: {:#010x}", crc32fast::hash(&changed)));
    keep_screenshot(&patched, "pce-cc65_hello-patched.png");
    // The patch shows on screen.
    assert!(!same_picture(
        PCE_FAST,
        plain.picture.as_ref().unwrap(),
        patched.picture.as_ref().unwrap()
    ));
}

#[test]
fn master_system_and_game_gear_load_in_mednafen() {
    require_emulators!(Tool::Mednafen);
    let stage = Stage::samples();
    // A BPS from the export image to the Japanese one, which pairs with the
    // SMD sample's deinterleaved image by its CRC32.
    let export = fixture_bytes("roms/sms_gg/sdcc_makebin_export.sms");
    let japanese = fixture_bytes("roms/sms_gg/sdcc_makebin_jp.sms");
    let created = ninja()
        .arg("create")
        .arg(stage.plain("export.sms", &export))
        .arg(stage.plain("jp.sms", &japanese))
        .arg("-o")
        .arg(stage.backing.join("patches/export to jp.bps"))
        .args(["--format", "bps"])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let gg = fixture_bytes("roms/sms_gg/sdcc_makebin_intl.gg");
    let cases = [
        ("deinterleaved/sms/sdcc_makebin_export.sms", &export, "sms"),
        (
            "patched/sms/sdcc_makebin_export [export to jp].sms",
            &japanese,
            "sms",
        ),
        ("deinterleaved/gg/sdcc_makebin_intl.gg", &gg, "gg"),
    ];
    // These images draw nothing, and Mednafen saves no picture from the
    // command line: it must take the file as its system's ROM, print the
    // expected image's MD5, and still be running when stopped.
    for (i, (view, expected, module)) in cases.into_iter().enumerate() {
        let run = stage.mednafen(&stage.view(view), &format!("mednafen-{i}"));
        assert_eq!(
            run.status.code(),
            Some(124),
            "{view}: Mednafen did not run until stopped:\n{}",
            run.log
        );
        run.assert_log_has(&format!("Using module: {module}("));
        run.assert_log_has(&format!(
            "ROM MD5:   0x{}",
            hex(&md5::Md5::digest(expected))
        ));
    }
}

/// An FFE (Famtasia) NES dump's `deinterleaved/` file must be one an
/// emulator plays: Nestopia refuses a 512-byte FFE header ("Failed to load
/// content"). Its picture must be that of the iNES dump of the same game.
#[test]
fn ffe_dump_plays_from_deinterleaved() {
    require_emulators!(Tool::RetroArch(NESTOPIA));
    let stage = Stage::new(|backing| {
        put(
            backing,
            "nes/nes15-NTSC.ffe",
            &fixture_bytes("roms/nes/nes15-NTSC.ffe"),
        );
    });
    let ines = stage.plain("nes15-NTSC.nes", &fixture_bytes("roms/nes/nes15-NTSC.nes"));
    // The header is made from the FFE one, so only the picture is compared.
    plays_like(&stage, NESTOPIA, "deinterleaved/nes/nes15-NTSC.nes", &ines);
}
