//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

pub fn read_fixture(rel: &str) -> Vec<u8> {
    let path = fixture(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn md5_hex(data: &[u8]) -> String {
    ninja_fs::digest::hex(&ninja_fs::digest::md5(data))
}

/// The three real ROM pairs the fixture patches were made from: (patch
/// file stem, source, target), paths under tests/fixtures.
pub const PAIRS: [(&str, &str, &str); 3] = [
    (
        "nes15_ntsc2pal",
        "roms/nes/nes15-NTSC.nes",
        "roms/nes/nes15-PAL.nes",
    ),
    (
        "mbc1_512k_to_1M",
        "roms/gb/mooneye_emulator-only_mbc1_rom_512Kb.gb",
        "roms/gb/mooneye_emulator-only_mbc1_rom_1Mb.gb",
    ),
    (
        "snes_cputest_basic2full",
        "roms/snes/cputest-basic.sfc",
        "roms/snes/cputest-full.sfc",
    ),
];

/// The binary under test (a mount's header cache goes under the build's
/// temporary folder, not into the real ~/.cache).
pub fn ninja() -> assert_cmd::Command {
    let mut command = assert_cmd::Command::cargo_bin("ninja-fs").unwrap();
    command.env(
        "XDG_CACHE_HOME",
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("xdg-cache"),
    );
    command
}

/// Runs a command that must succeed; returns its stdout as text.
pub fn stdout_of(command: &mut assert_cmd::Command) -> String {
    let output = command.assert().success().get_output().clone();
    String::from_utf8(output.stdout).unwrap()
}

/// The filesystem core over `root` with every DAT under `dats` loaded
/// (each must load).
pub fn fs_with_dats(root: &std::path::Path, dats: &std::path::Path) -> ninja_fs::views::NinjaFs {
    let fs =
        ninja_fs::views::NinjaFs::new(root, 64 << 20, ninja_fs::patch::Limits::default()).unwrap();
    let (set, errors) = ninja_fs::dat::DatSet::load(&[dats.to_path_buf()]);
    assert!(errors.is_empty(), "{errors:?}");
    fs.use_dats(set);
    fs
}

/// Runs a command that must fail; returns its stderr (it wrote no stdout).
pub fn stderr_of(cmd: &mut assert_cmd::Command) -> String {
    let out = cmd.assert().failure().get_output().clone();
    assert!(out.stdout.is_empty(), "a failed command wrote to stdout");
    String::from_utf8(out.stderr).unwrap()
}

/// The attributes of `path` (relative to the root) in the filesystem core.
pub fn lookup(
    fs: &ninja_fs::views::NinjaFs,
    path: &str,
) -> Result<ninja_fs::vfs::Attributes, ninja_fs::vfs::FsError> {
    use ninja_fs::vfs::VirtualFs;
    let mut attributes = fs.getattr(ninja_fs::vfs::ROOT_INO)?;
    for part in path.split('/') {
        attributes = fs.lookup(attributes.ino, std::ffi::OsStr::new(part))?;
    }
    Ok(attributes)
}

/// The whole file at `path`, read in 100,000-byte requests, checking that
/// the size `stat` gave first was exact; panics on an error.
pub fn read_all(fs: &ninja_fs::views::NinjaFs, path: &str) -> Vec<u8> {
    try_read_all(fs, path).unwrap_or_else(|e| panic!("{path}: {e:?}"))
}

/// [`read_all`], with the error the filesystem gave.
pub fn try_read_all(
    fs: &ninja_fs::views::NinjaFs,
    path: &str,
) -> Result<Vec<u8>, ninja_fs::vfs::FsError> {
    use ninja_fs::vfs::VirtualFs;
    let attributes = lookup(fs, path)?;
    let opened = fs.open(attributes.ino)?;
    let mut out = Vec::new();
    loop {
        let chunk = fs.read(opened.handle, out.len() as u64, 100_000)?;
        if chunk.is_empty() {
            break;
        }
        out.extend(chunk);
    }
    fs.release(opened.handle);
    assert_eq!(attributes.size, out.len() as u64, "stat size of {path}");
    Ok(out)
}

/// The names in folder `path` (`""` for the root), sorted.
pub fn names(fs: &ninja_fs::views::NinjaFs, path: &str) -> Vec<String> {
    use ninja_fs::vfs::VirtualFs;
    let ino = if path.is_empty() {
        ninja_fs::vfs::ROOT_INO
    } else {
        lookup(fs, path).unwrap().ino
    };
    let mut names: Vec<String> = fs
        .readdir(ino)
        .unwrap()
        .into_iter()
        .map(|e| e.name.into_string().unwrap())
        .collect();
    names.sort();
    names
}
