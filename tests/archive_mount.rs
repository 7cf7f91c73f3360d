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

use common::{names, read_all, read_fixture};
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
            "info/hacks/Hack v2.zip.txt",
            "info/hacks/Translation v1.2.zip.txt",
            "info/nes/nes15/PAL/nes15-PAL.nes.txt",
            "info/nes/nes15/nes15-NTSC.nes.txt",
            "info/nes/nes15.7z.txt",
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
    let note = |rel: &str| String::from_utf8(file(rel).clone()).unwrap();
    assert_eq!(
        note("info/hacks/Translation v1.2.zip.txt"),
        "hacks/Translation v1.2.zip\n  shown as      its patches, which pair as loose ones do\n\nmembers\n  Translation.bps: patch\n"
    );
    assert_eq!(
        note("info/nes/nes15.7z.txt"),
        "nes/nes15.7z\n  shown as      the folder nes/nes15/\n\nmembers\n  PAL/nes15-PAL.nes: ROM\n  nes15-NTSC.nes: ROM\n"
    );
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

/// The text of `path` (`info/...`) as the core shows it.
fn read_text(fs: &NinjaFs, path: &str) -> String {
    String::from_utf8(read_all(fs, path)).unwrap()
}

/// Writes a zip with Python's `zipfile`, which stores member names as
/// given (`..`, absolute paths, backslashes, duplicates: what the `zip`
/// tool refuses to write but archives from elsewhere hold). `members` is
/// a Python expression: a list of (name, bytes) pairs.
fn python_zip(archive: &Path, members: &str) {
    let script = format!(
        "import sys, warnings, zipfile\n\
         warnings.simplefilter('ignore')\n\
         with zipfile.ZipFile(sys.argv[1], 'w') as z:\n\
         \x20   for name, data in {members}:\n\
         \x20       z.writestr(zipfile.ZipInfo(name), data)\n"
    );
    run(Command::new("python3").arg("-c").arg(script).arg(archive));
}

/// A folder of every kind of bad archive a collector meets, beside a good
/// one: each is left out or shown in part, `info/` says why, and the rest
/// of the folder still lists.
fn bad_archives(root: &Path) {
    let sfc = read_fixture("roms/snes/cputest-basic.sfc");
    let gb = read_fixture("roms/gb/mooneye_acceptance_bits_reg_f.gb");
    // A manual beside the ROM is nothing to the views.
    archive_of(
        &root.join("bad/Good.zip"),
        &[("Good.sfc", &sfc), ("Manual.pdf", b"%PDF-1.4 a manual")],
    );
    // Named like nothing: a ROM by its content, as a loose file would be.
    archive_of(&root.join("bad/Plain.zip"), &[("GAME", &gb)]);
    write(root, "bad/Garbage.zip", b"this was never a zip archive\n");
    archive_of(&root.join("scratch/Whole.zip"), &[("Cut.sfc", &sfc)]);
    let whole = fs::read(root.join("scratch/Whole.zip")).unwrap();
    write(root, "bad/Cut.zip", &whole[..whole.len() / 2]);
    fs::remove_dir_all(root.join("scratch")).unwrap();
    // A member whose stored CRC32 fails: stored, so the flipped byte lands
    // in the ROM's data; small, so listing reads all of it.
    let scratch = tempfile::tempdir().unwrap();
    fs::write(scratch.path().join("Damaged.gb"), &gb).unwrap();
    run(Command::new("zip")
        .args(["-q", "-X", "-0"])
        .arg(root.join("bad/Damaged.zip"))
        .arg("Damaged.gb")
        .current_dir(scratch.path()));
    let mut damaged = fs::read(root.join("bad/Damaged.zip")).unwrap();
    let at = damaged.len() - 200;
    damaged[at] ^= 0xFF;
    fs::write(root.join("bad/Damaged.zip"), &damaged).unwrap();
    fs::write(scratch.path().join("Locked.sfc"), &sfc).unwrap();
    run(Command::new("zip")
        .args(["-q", "-X", "-P", "secret"])
        .arg(root.join("bad/Locked.zip"))
        .arg("Locked.sfc")
        .current_dir(scratch.path()));
    python_zip(
        &root.join("bad/Names.zip"),
        "[('../../Up.sfc', b'x' * 0x8000), ('/abs/Abs.gb', b'y' * 0x8000), \
          ('dir\\\\Back.sfc', b'z' * 0x8000), ('Twice.sfc', b'1' * 0x8000), ('Twice.sfc', b'2' * 0x8000), \
          ('Up.sfc', b'u' * 0x8000)]",
    );
    // 2 MiB of zeros where the mount builds at most 1 MiB: refused by the
    // size the archive states, before anything is decompressed.
    archive_of(
        &root.join("bad/Bomb.zip"),
        &[("Bomb.sfc", &vec![0u8; 2 << 20])],
    );
    archive_of(&root.join("scratch/Inner.zip"), &[("Inner.sfc", &sfc)]);
    let inner = fs::read(root.join("scratch/Inner.zip")).unwrap();
    fs::remove_dir_all(root.join("scratch")).unwrap();
    archive_of(&root.join("bad/Nested.zip"), &[("Inner.zip", &inner)]);
    archive_of(
        &root.join("bad/Mixed.zip"),
        &[("Mixed.sfc", &sfc), ("Inner.zip", &inner)],
    );
    // RAR 5's signature and nothing a reader could use: no free tool
    // writes RAR, and it is never read past its signature.
    write(
        root,
        "bad/Old.rar",
        b"Rar!\x1a\x07\x01\x00 rest of a RAR archive",
    );
}

#[test]
fn bad_archives_say_why_in_info_and_the_rest_still_lists() {
    require_tools!("zip", "python3");
    let dir = tempfile::tempdir().unwrap();
    bad_archives(dir.path());
    let limits = Limits {
        max_image_size: 1 << 20,
    };
    let fs_core = NinjaFs::new(dir.path(), 64 << 20, limits).unwrap();
    let listed = |view: &str| names(&fs_core, &format!("{view}/bad"));
    assert_eq!(
        listed("normalized"),
        ["Damaged.gb", "GAME.gb", "Good.sfc", "Mixed.sfc", "Names"],
        "the damaged member is listed (its read fails); the others are not"
    );
    assert_eq!(
        listed("info"),
        [
            "Bomb.zip.txt",
            "Cut.zip.txt",
            "Damaged.zip.txt",
            "Garbage.zip.txt",
            "Good.zip.txt",
            "Locked.zip.txt",
            "Mixed.zip.txt",
            "Names",
            "Names.zip.txt",
            "Nested.zip.txt",
            "Old.rar.txt",
            "Plain.zip.txt"
        ]
    );
    let note = |name: &str| read_text(&fs_core, &format!("info/bad/{name}"));
    assert_eq!(
        note("Garbage.zip.txt"),
        "bad/Garbage.zip\n  shown as      nothing\n  cannot be read: the archive is damaged: its first bytes are no zip, 7z, gzip or RAR archive's\n"
    );
    assert_eq!(
        note("Old.rar.txt"),
        "bad/Old.rar\n  shown as      nothing\n  cannot be read: RAR archives are not supported; extract it\n"
    );
    let cut = note("Cut.zip.txt");
    assert!(
        cut.starts_with(
            "bad/Cut.zip\n  shown as      nothing\n  cannot be read: the archive is damaged: "
        ),
        "{cut}"
    );
    assert_eq!(
        note("Locked.zip.txt"),
        "bad/Locked.zip\n  shown as      nothing\n\nmembers\n  Locked.sfc: left out: encrypted: not supported\n"
    );
    assert_eq!(
        note("Bomb.zip.txt"),
        "bad/Bomb.zip\n  shown as      nothing\n\nmembers\n  Bomb.sfc: left out: larger (2097152 bytes) than the largest image the mount builds (1048576 bytes)\n"
    );
    assert_eq!(
        note("Nested.zip.txt"),
        "bad/Nested.zip\n  shown as      nothing\n\nmembers\n  Inner.zip: left out: an archive inside an archive: not opened\n"
    );
    // An archive inside one shown in place is said in its ROM's report.
    let mixed = note("Mixed.zip.txt");
    assert!(
        mixed.starts_with("bad/Mixed.zip//Mixed.sfc\n")
            && mixed.contains(
                "\nin its archive\n  Inner.zip: left out: an archive inside an archive: not opened\n"
            ),
        "{mixed}"
    );
    // Hostile names stay inside the archive's folder.
    assert_eq!(
        note("Names.zip.txt"),
        "bad/Names.zip\n  shown as      the folder bad/Names/\n\nmembers\n  Twice.sfc: ROM\n  Up (2).sfc: ROM\n  Up.sfc: ROM\n  abs/Abs.gb: ROM\n  dir/Back.sfc: ROM\n"
    );
    let mut names = BTreeMap::new();
    let names_dir = fs_core
        .lookup(ROOT_INO, "deinterleaved".as_ref())
        .unwrap()
        .ino;
    let names_dir = fs_core.lookup(names_dir, "bad".as_ref()).unwrap().ino;
    let names_dir = fs_core.lookup(names_dir, "Names".as_ref()).unwrap().ino;
    for entry in fs_core.readdir(names_dir).unwrap() {
        names.insert(
            entry.name.to_string_lossy().into_owned(),
            entry.attributes.kind,
        );
    }
    assert_eq!(
        names.keys().collect::<Vec<_>>(),
        ["Twice.sfc", "Up (2).sfc", "Up.sfc", "abs", "dir"]
    );
    // One raw name twice is one member, the later data (as unzip tools
    // extract it); two raw names made one by sanitizing are two.
    let read = |name: &str| read_all(&fs_core, &format!("deinterleaved/bad/Names/{name}"));
    assert!(read("Twice.sfc") == vec![b'2'; 0x8000]);
    assert!(read("Up.sfc") == vec![b'x'; 0x8000]);
    assert!(read("Up (2).sfc") == vec![b'u'; 0x8000]);

    // The damaged member: listed, its read fails with EIO and the reason,
    // and its report says so.
    let damaged = {
        let mut ino = ROOT_INO;
        for part in ["normalized", "bad", "Damaged.gb"] {
            ino = fs_core.lookup(ino, part.as_ref()).unwrap().ino;
        }
        ino
    };
    let reason =
        "cannot read bad/Damaged.zip: the archive is damaged: member Damaged.gb fails its CRC";
    match fs_core.open(damaged) {
        Err(ninja_fs::vfs::FsError::Io(why)) => assert_eq!(why, reason),
        other => panic!("expected EIO, got {other:?}"),
    }
    let report = note("Damaged.zip.txt");
    assert!(
        report.starts_with(&format!(
            "bad/Damaged.zip//Damaged.gb\n  cannot be read: {reason}\n"
        )),
        "{report}"
    );
    let gb = read_fixture("roms/gb/mooneye_acceptance_bits_reg_f.gb");
    assert!(read_all(&fs_core, "normalized/bad/GAME.gb") == gb);
    // The good archive beside them all reads as the loose ROM.
    let good = read_all(&fs_core, "normalized/bad/Good.sfc");
    assert!(good == read_fixture("roms/snes/cputest-basic.sfc"));
}

#[test]
fn an_archive_of_100000_members_lists() {
    require_tools!("python3");
    let dir = tempfile::tempdir().unwrap();
    let members = "[('Game.sfc', open(sys.argv[2], 'rb').read())] + \
                   [('data/f%d.dat' % i, b'') for i in range(100000)]";
    let script = format!(
        "import sys, zipfile\n\
         with zipfile.ZipFile(sys.argv[1], 'w') as z:\n\
         \x20   for name, data in {members}:\n\
         \x20       z.writestr(name, data)\n"
    );
    run(Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(dir.path().join("Many.zip"))
        .arg(common::fixture("roms/snes/cputest-basic.sfc")));
    let fs_core = core(dir.path());
    let normalized = fs_core.lookup(ROOT_INO, "normalized".as_ref()).unwrap();
    let names: Vec<String> = fs_core
        .readdir(normalized.ino)
        .unwrap()
        .into_iter()
        .map(|e| e.name.to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["Game.sfc"]);
    let bytes = read_all(&fs_core, "normalized/Game.sfc");
    assert!(bytes == read_fixture("roms/snes/cputest-basic.sfc"));
}

/// What a library shows of every folder: each ROM and patch with what
/// the scan made of it, and each archive's report.
fn describe(library: &ninja_fs::library::Library) -> Vec<String> {
    let mut lines = Vec::new();
    let mut pending = vec![String::new()];
    while let Some(rel_dir) = pending.pop() {
        let contents = library.dir(&rel_dir).unwrap();
        for sub in &contents.subdirs {
            pending.push(if rel_dir.is_empty() {
                sub.clone()
            } else {
                format!("{rel_dir}/{sub}")
            });
        }
        for rom in &contents.roms {
            let variants: Vec<String> = library
                .variants(rom, &rel_dir, &contents)
                .iter()
                .map(|v| format!("[{}] {}", v.label, v.reason))
                .collect();
            lines.push(format!(
                "rom {} as {} in /{} {:?} {:?} .{} .{} {variants:?}",
                rom.rel_path,
                rom.file_name,
                rom.folder,
                rom.source,
                rom.layout,
                rom.normalized_ext,
                rom.deinterleaved_ext
            ));
        }
        for patch in &contents.patches {
            lines.push(format!(
                "patch {} as {} in /{} {:?} {:?} {:?}",
                patch.rel_path,
                patch.file_name,
                patch.folder,
                patch.format,
                patch.pair_keys,
                patch.error
            ));
        }
        for note in &contents.archive_notes {
            lines.push(format!("note {}: {}", note.rel_path, note.text));
        }
    }
    lines.sort();
    lines
}

#[test]
fn a_later_mount_lists_archives_from_the_header_cache() {
    require_tools!("zip", "7z", "gzip", "python3");
    let dir = tempfile::tempdir().unwrap();
    let backing = dir.path().join("backing");
    zipped_library(&backing);
    bad_archives(&backing);
    // Its report's length needs its bytes, which fail their CRC: it is
    // read again at every mount (as a loose file that cannot be read is).
    fs::remove_file(backing.join("bad/Damaged.zip")).unwrap();
    let cache = dir.path().join("cache");
    let open = || {
        let fs_core = core(&backing);
        fs_core.library().use_header_cache(&cache);
        fs_core
    };
    let first = open();
    let files = shown(&first);
    let found = describe(first.library());
    // Every archive and the loose patch, then each ROM's header regions
    // for the length of its report.
    assert_eq!(first.library().header_reads(), 15 + 1 + 13);
    drop(first);

    let second = open();
    assert_eq!(describe(second.library()), found);
    assert!(shown(&second) == files);
    assert_eq!(
        second.library().header_reads(),
        0,
        "listing, sizing and reading read no archive's directory again"
    );
    drop(second);

    // A changed archive is read again; the others still come from the cache.
    archive_of(
        &backing.join("gb/x.zip"),
        &[(
            "x.gb",
            &read_fixture("roms/gb/mooneye_acceptance_bits_reg_f.gb"),
        )],
    );
    let third = open();
    let found = describe(third.library());
    assert_eq!(third.library().header_reads(), 1);
    drop(third);

    // The cache kept the archives beside it that came from the cache
    // (gb/mbc1.gb.gz) as well as the one read again.
    let fourth = open();
    assert_eq!(describe(fourth.library()), found);
    assert_eq!(fourth.library().header_reads(), 0);
    drop(fourth);

    // An archive gone is gone from the cache too, and nothing is read.
    fs::remove_file(backing.join("gb/mbc1.gb.gz")).unwrap();
    let fifth = open();
    let found = describe(fifth.library());
    assert!(
        !found.iter().any(|line| line.contains("mbc1")),
        "{found:#?}"
    );
    assert_eq!(fifth.library().header_reads(), 0);
    drop(fifth);
    let sixth = open();
    assert_eq!(describe(sixth.library()), found);
    assert_eq!(sixth.library().header_reads(), 0);
}

#[test]
fn bad_archives_through_a_real_mount() {
    require_fuse!();
    require_tools!("zip", "python3");
    let dir = tempfile::tempdir().unwrap();
    let backing = dir.path().join("backing");
    let mnt = dir.path().join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    bad_archives(&backing);
    // What the core shows, less the damaged member, whose reads fail.
    let core_fs = core(&backing);
    let mut expected = BTreeMap::new();
    let mut pending = vec![(ROOT_INO, PathBuf::new())];
    while let Some((ino, path)) = pending.pop() {
        for entry in core_fs.readdir(ino).unwrap() {
            let child = path.join(&entry.name);
            if entry.attributes.kind == NodeKind::Directory {
                pending.push((entry.attributes.ino, child));
            } else if let Ok(opened) = core_fs.open(entry.attributes.ino) {
                let bytes = core_fs.read(opened.handle, 0, u32::MAX).unwrap();
                core_fs.release(opened.handle);
                expected.insert(child, bytes);
            } else {
                assert!(child.ends_with("bad/Damaged.gb"), "{}", child.display());
            }
        }
    }
    let mounted = mount::start(core(&backing), &mnt, &MountOptions::default()).unwrap();
    let _guard = MountGuard { path: mnt.clone() };
    let damaged = fs::read(mnt.join("deinterleaved/bad/Damaged.gb")).unwrap_err();
    assert_eq!(damaged.raw_os_error(), Some(libc::EIO));
    // Every other file reads as the core gives it (read_tree passes over
    // files whose reads fail with EIO, and only those).
    let seen = read_tree(&mnt);
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    // The damaged ROM's report lists the views whose reads failed, which
    // differ between the two.
    for (path, bytes) in &seen {
        if !path.ends_with("bad/Damaged.zip.txt") {
            assert!(expected.get(path) == Some(bytes), "{}", path.display());
        }
    }
    let rar = fs::read_to_string(mnt.join("info/bad/Old.rar.txt")).unwrap();
    assert_eq!(
        rar,
        "bad/Old.rar\n  shown as      nothing\n  cannot be read: RAR archives are not supported; extract it\n"
    );
    mounted.unmount().unwrap();
}
