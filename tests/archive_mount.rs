//! Archives in the backing folder, made by the real tools (Debian's `zip`,
//! `7z`, `gzip`), through the filesystem core and a real mount: a
//! one-ROM archive shows its ROM in place, a several-ROM archive is a
//! folder, patches in archives pair like loose ones, and every view's bytes
//! are those of the same ROM loose.

mod common;
mod mount_support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::read_fixture;
use mount_support::{MountGuard, read_tree};
use ninja_fs::mount::{self, MountOptions};
use ninja_fs::patch::Limits;
use ninja_fs::system::{self, SystemType};
use ninja_fs::vfs::{NodeKind, ROOT_INO, VirtualFs};
use ninja_fs::views::NinjaFs;

/// Skips the test unless `tools` are all installed.
macro_rules! require_tools {
    ($($tool:literal),*) => {
        for tool in [$($tool),*] {
            if Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().map_or(true, |o| !o.status.success()) {
                eprintln!("skipped: {tool} is not installed");
                return;
            }
        }
    };
}

fn run(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Writes `files` (name, bytes) into a scratch folder and archives them
/// into `archive` with `tool` (`zip`, `7z`).
fn archive_of(archive: &Path, files: &[(&str, &[u8])]) {
    let scratch = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        let path = scratch.path().join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }
    fs::create_dir_all(archive.parent().unwrap()).unwrap();
    let names: Vec<&str> = files.iter().map(|(name, _)| *name).collect();
    let extension = archive.extension().and_then(|e| e.to_str()).unwrap_or("");
    match extension {
        "zip" => run(Command::new("zip")
            .arg("-q")
            .arg("-X")
            .arg(archive)
            .args(&names)
            .current_dir(scratch.path())),
        "7z" => run(Command::new("7z")
            .args(["a", "-bd", "-bso0", "-ms=on"])
            .arg(archive)
            .args(&names)
            .current_dir(scratch.path())),
        "gz" => {
            let [(name, _)] = files else {
                panic!("gzip holds one file")
            };
            run(Command::new("gzip")
                .arg("-k")
                .arg(name)
                .current_dir(scratch.path()));
            fs::rename(scratch.path().join(format!("{name}.gz")), archive).unwrap();
        }
        other => panic!("no tool for .{other}"),
    }
}

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

/// A zipped library: what a collector's folder looks like.
fn zipped_library(root: &Path) {
    let smc = read_fixture("roms/snes/cputest-basic.smc");
    let bps = read_fixture("patches/snes_cputest_basic2full.flips-delta.bps");
    let ips = read_fixture("patches/snes_cputest_basic2full.flips.ips");
    archive_of(
        &root.join("snes/Game (USA).zip"),
        &[("Game (USA).smc", &smc), ("readme.txt", b"Dumped by me.\n")],
    );
    // A loose patch beside the archive pairs by name.
    write(root, "snes/Game (USA).ips", &ips);
    // A download from a ROM-hacking site: the patch and a readme, zipped.
    archive_of(
        &root.join("hacks/Translation v1.2.zip"),
        &[("Translation.bps", &bps), ("readme.txt", b"Enjoy.\n")],
    );
    // An IPS, which carries no checksum, with a readme that names its ROM.
    let crc = crc32fast::hash(&read_fixture("roms/snes/cputest-basic.sfc"));
    archive_of(
        &root.join("hacks/Hack v2.zip"),
        &[
            ("Hack.ips", &ips),
            (
                "readme.txt",
                format!("ROM / ISO Information:\nCRC32: {crc:08X}\n").as_bytes(),
            ),
        ],
    );
    // Two ROMs in one archive: a folder.
    archive_of(
        &root.join("nes/nes15.7z"),
        &[
            ("nes15-NTSC.nes", &read_fixture("roms/nes/nes15-NTSC.nes")),
            ("PAL/nes15-PAL.nes", &read_fixture("roms/nes/nes15-PAL.nes")),
        ],
    );
    archive_of(
        &root.join("gb/mbc1.gb.gz"),
        &[(
            "mbc1.gb",
            &read_fixture("roms/gb/mooneye_emulator-only_mbc1_rom_512Kb.gb"),
        )],
    );
}

fn core(root: &Path) -> NinjaFs {
    NinjaFs::new(root, 64 << 20, Limits::default()).unwrap()
}

/// Every file the core shows, with its bytes and its listed size.
fn shown(fs: &NinjaFs) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![(ROOT_INO, PathBuf::new())];
    while let Some((ino, path)) = pending.pop() {
        for entry in fs.readdir(ino).unwrap() {
            let child = path.join(&entry.name);
            if entry.attributes.kind == NodeKind::Directory {
                pending.push((entry.attributes.ino, child));
                continue;
            }
            let opened = fs.open(entry.attributes.ino).unwrap();
            let bytes = fs.read(opened.handle, 0, u32::MAX).unwrap();
            fs.release(opened.handle);
            assert_eq!(
                bytes.len() as u64,
                entry.attributes.size,
                "{}",
                child.display()
            );
            files.insert(child, bytes);
        }
    }
    files
}

fn normalized(bytes: &[u8], system: SystemType) -> Vec<u8> {
    let layout = system::analyze(bytes, system).unwrap();
    system::normalize(bytes, &layout).unwrap().into_owned()
}

#[test]
fn a_zipped_library_shows_every_rom_and_pairs_every_patch() {
    require_tools!("zip", "7z", "gzip");
    let dir = tempfile::tempdir().unwrap();
    zipped_library(dir.path());
    let files = shown(&core(dir.path()));
    let names: Vec<String> = files
        .keys()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "deinterleaved/gb/mbc1.gb",
            "deinterleaved/nes/nes15/PAL/nes15-PAL.nes",
            "deinterleaved/nes/nes15/nes15-NTSC.nes",
            "deinterleaved/snes/Game (USA).sfc",
            "info/gb/mbc1.gb.gz.txt",
            "info/nes/nes15/PAL/nes15-PAL.nes.txt",
            "info/nes/nes15/nes15-NTSC.nes.txt",
            "info/snes/Game (USA).zip.txt",
            "normalized/gb/mbc1.gb",
            "normalized/nes/nes15/PAL/nes15-PAL.nes",
            "normalized/nes/nes15/nes15-NTSC.nes",
            "normalized/snes/Game (USA).sfc",
            "patched/snes/Game (USA) [Game (USA)].sfc",
            "patched/snes/Game (USA) [Hack].sfc",
            "patched/snes/Game (USA) [Translation].sfc",
        ]
    );
    let file = |rel: &str| &files[Path::new(rel)];
    let clean = read_fixture("roms/snes/cputest-basic.sfc");
    let full = read_fixture("roms/snes/cputest-full.sfc");
    assert!(*file("normalized/snes/Game (USA).sfc") == clean);
    assert!(*file("deinterleaved/snes/Game (USA).sfc") == clean);
    assert!(*file("patched/snes/Game (USA) [Game (USA)].sfc") == full);
    assert!(*file("patched/snes/Game (USA) [Translation].sfc") == full);
    assert!(*file("patched/snes/Game (USA) [Hack].sfc") == full);
    let ntsc = read_fixture("roms/nes/nes15-NTSC.nes");
    let pal = read_fixture("roms/nes/nes15-PAL.nes");
    assert!(*file("deinterleaved/nes/nes15/nes15-NTSC.nes") == ntsc);
    assert!(*file("deinterleaved/nes/nes15/PAL/nes15-PAL.nes") == pal);
    assert!(*file("normalized/nes/nes15/nes15-NTSC.nes") == normalized(&ntsc, SystemType::Nes));
    let gb = read_fixture("roms/gb/mooneye_emulator-only_mbc1_rom_512Kb.gb");
    assert!(*file("normalized/gb/mbc1.gb") == gb);
    let info = String::from_utf8(file("info/snes/Game (USA).zip.txt").clone()).unwrap();
    assert!(
        info.starts_with("snes/Game (USA).zip//Game (USA).smc\n"),
        "{info}"
    );
    assert!(
        info.contains(
            "  [Translation] hacks/Translation v1.2.zip//Translation.bps: its source CRC32"
        ),
        "{info}"
    );
    let by_readme = format!(
        "  [Hack] hacks/Hack v2.zip//Hack.ips: the readme readme.txt in its archive names a source with CRC32 {:08x}, the normalized image's\n",
        crc32fast::hash(&clean)
    );
    assert!(info.contains(&by_readme), "{by_readme}\nin:\n{info}");
}

#[test]
fn a_zipped_library_reads_the_same_through_a_real_mount() {
    require_fuse!();
    require_tools!("zip", "7z", "gzip");
    let dir = tempfile::tempdir().unwrap();
    let backing = dir.path().join("backing");
    let mnt = dir.path().join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    zipped_library(&backing);
    let expected = shown(&core(&backing));
    let mounted = mount::start(core(&backing), &mnt, &MountOptions::default()).unwrap();
    let _guard = MountGuard { path: mnt.clone() };
    assert!(read_tree(&mnt) == expected);
    mounted.unmount().unwrap();
}

#[test]
fn a_damaged_archive_never_gives_wrong_bytes() {
    require_tools!("zip");
    let dir = tempfile::tempdir().unwrap();
    // A ROM longer than what listing reads of it: the damage, past that,
    // is found when the image is built.
    let mut v64 = read_fixture("roms/n64/bigbass1997_minimal.v64");
    v64.resize(8 << 20, 0x5A);
    let scratch = tempfile::tempdir().unwrap();
    fs::write(scratch.path().join("Big.v64"), &v64).unwrap();
    // Stored, so a flipped byte lands in the ROM's data, not in a
    // compressed stream that might not decode at all.
    let zip = dir.path().join("Big.zip");
    run(Command::new("zip")
        .args(["-q", "-X", "-0"])
        .arg(&zip)
        .arg("Big.v64")
        .current_dir(scratch.path()));
    let mut bytes = fs::read(&zip).unwrap();
    let end_of_data = bytes.len() - 200;
    bytes[end_of_data] ^= 0xFF;
    fs::write(&zip, &bytes).unwrap();
    let fs_core = core(dir.path());
    let folder = fs_core.lookup(ROOT_INO, "normalized".as_ref()).unwrap();
    let file = fs_core.lookup(folder.ino, "Big.z64".as_ref()).unwrap();
    assert_eq!(file.size, 8 << 20);
    match fs_core.open(file.ino) {
        Err(ninja_fs::vfs::FsError::Io(reason)) => assert_eq!(
            reason,
            "cannot read Big.zip: the archive is damaged: member Big.v64 fails its CRC"
        ),
        other => panic!("expected EIO, got {other:?}"),
    }
    let info = fs_core.lookup(ROOT_INO, "info".as_ref()).unwrap();
    let report = fs_core.lookup(info.ino, "Big.zip.txt".as_ref()).unwrap();
    let opened = fs_core.open(report.ino).unwrap();
    let text = String::from_utf8(fs_core.read(opened.handle, 0, u32::MAX).unwrap()).unwrap();
    let reason = "cannot read Big.zip: the archive is damaged: member Big.v64 fails its CRC";
    assert!(
        text.starts_with(&format!("Big.zip//Big.v64\n  cannot be read: {reason}\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!("\nreading\n  normalized/ fails: {reason}\n")),
        "{text}"
    );
}
