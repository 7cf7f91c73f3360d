//! The filesystem core without FUSE: scan, names, sizes, bytes, pairing,
//! changes to the backing folder.

mod common;

use std::path::Path;

use common::{lookup, names, read_fixture, try_read_all};
use ninja_fs::patch::Limits;
use ninja_fs::patch::any::{self, PatchFormat};
use ninja_fs::system::{self, SystemType};
use ninja_fs::vfs::{FsError, NodeKind, VirtualFs};
use ninja_fs::views::NinjaFs;

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// The example backing folder of the design, built from the fixtures.
fn backing() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "snes/Game.smc",
        &read_fixture("roms/snes/cputest-basic.smc"),
    );
    write(
        root,
        "snes/Game.ips",
        &read_fixture("patches/snes_cputest_basic2full.flips.ips"),
    );
    // A second step of a RetroArch stack: one byte changed after the first.
    let full = read_fixture("roms/snes/cputest-full.sfc");
    let mut tweaked = full.clone();
    tweaked[0x100] ^= 0xFF;
    write(
        root,
        "snes/Game.ips1",
        &any::create(PatchFormat::Ips, &full, &tweaked).unwrap(),
    );
    write(
        root,
        "patches/Translation.bps",
        &read_fixture("patches/snes_cputest_basic2full.flips-delta.bps"),
    );
    write(
        root,
        "nes/Zelda.unf",
        &read_fixture("roms/nes/nes15-NTSC.unf"),
    );
    write(
        root,
        "n64/Mario.v64",
        &read_fixture("roms/n64/bigbass1997_minimal.v64"),
    );
    write(root, "notes.txt", b"not a ROM\n");
    dir
}

fn mount(root: &Path) -> NinjaFs {
    NinjaFs::new(root, 64 << 20, Limits::default()).unwrap()
}

#[test]
fn views_show_the_designs_example() {
    let dir = backing();
    let fs = mount(dir.path());
    assert_eq!(
        names(&fs, ""),
        ["deinterleaved", "info", "normalized", "patched"]
    );
    // A folder is shown in a view only where it holds something there:
    // patches/ holds no ROM, and only snes/ has patched variants.
    assert_eq!(names(&fs, "normalized"), ["n64", "nes", "snes"]);
    assert_eq!(names(&fs, "patched"), ["snes"]);
    assert_eq!(
        lookup(&fs, "normalized/patches").unwrap_err(),
        FsError::NotFound
    );
    assert_eq!(names(&fs, "normalized/snes"), ["Game.sfc"]);
    assert_eq!(names(&fs, "normalized/nes"), ["Zelda.nes"]);
    assert_eq!(names(&fs, "normalized/n64"), ["Mario.z64"]);
    assert_eq!(names(&fs, "deinterleaved/nes"), ["Zelda.unf"]);
    assert_eq!(names(&fs, "info/snes"), ["Game.smc.txt"]);
    assert_eq!(
        names(&fs, "patched/snes"),
        [
            "Game [Game+ips1].sfc",
            "Game [Game].sfc",
            "Game [Translation].sfc"
        ]
    );
    assert_eq!(lookup(&fs, "patched/n64").unwrap_err(), FsError::NotFound);
    // notes.txt is no ROM: in no view.
    assert!(lookup(&fs, "normalized/notes.txt").is_err());
    assert_eq!(lookup(&fs, "info/snes").unwrap().kind, NodeKind::Directory);
}

#[test]
fn every_file_reads_what_the_engine_makes_and_stat_says() {
    let dir = backing();
    let fs = mount(dir.path());
    let clean = read_fixture("roms/snes/cputest-basic.sfc");
    let full = read_fixture("roms/snes/cputest-full.sfc");
    assert!(try_read_all(&fs, "normalized/snes/Game.sfc").unwrap() == clean);
    assert!(try_read_all(&fs, "deinterleaved/snes/Game.sfc").unwrap() == clean);
    assert!(try_read_all(&fs, "patched/snes/Game [Game].sfc").unwrap() == full);
    assert!(try_read_all(&fs, "patched/snes/Game [Translation].sfc").unwrap() == full);
    let mut tweaked = full.clone();
    tweaked[0x100] ^= 0xFF;
    assert!(try_read_all(&fs, "patched/snes/Game [Game+ips1].sfc").unwrap() == tweaked);
    assert!(
        try_read_all(&fs, "normalized/n64/Mario.z64").unwrap()
            == read_fixture("roms/n64/bigbass1997_minimal.z64")
    );
    let unf = read_fixture("roms/nes/nes15-NTSC.unf");
    assert!(try_read_all(&fs, "deinterleaved/nes/Zelda.unf").unwrap() == unf);
    let layout = system::analyze(&unf, SystemType::Nes).unwrap();
    let normalized = system::normalize(&unf, &layout).unwrap();
    assert!(try_read_all(&fs, "normalized/nes/Zelda.nes").unwrap() == normalized.as_ref());

    let info = String::from_utf8(try_read_all(&fs, "info/snes/Game.smc.txt").unwrap()).unwrap();
    assert!(info.starts_with("snes/Game.smc\n"), "{info}");
    assert!(
        info.contains("copier (Super Wild Card / SMC), 512 bytes, dropped"),
        "{info}"
    );
    assert!(
        info.contains("[Game] snes/Game.ips: beside the ROM with its name"),
        "{info}"
    );
    assert!(
        info.contains("[Translation] patches/Translation.bps: its source CRC32 4de40f6b matches the normalized image"),
        "{info}"
    );
}

#[test]
fn a_rup_whose_target_matches_pairs_reverted() {
    let dir = backing();
    // A NINJA2 patch made from some other image to Zelda: Zelda is its target.
    let unf = read_fixture("roms/nes/nes15-NTSC.unf");
    let layout = system::analyze(&unf, SystemType::Nes).unwrap();
    let zelda = system::normalize(&unf, &layout).unwrap().into_owned();
    let mut original = zelda.clone();
    original[10] ^= 0x55;
    let rup = ninja_fs::patch::rup::create(
        &[ninja_fs::patch::rup::CreateEntry {
            name: None,
            system_type: 1,
            source: &original,
            target: &zelda,
        }],
        &Default::default(),
    )
    .unwrap();
    write(dir.path(), "patches/zelda-hack.rup", &rup);
    let fs = mount(dir.path());
    assert_eq!(
        names(&fs, "patched/nes"),
        ["Zelda [zelda-hack reverted].unf"]
    );
    let reverted = try_read_all(&fs, "patched/nes/Zelda [zelda-hack reverted].unf").unwrap();
    let restored = system::restore(&original, &layout).unwrap();
    assert!(reverted == restored.as_ref());
}

#[test]
fn changes_to_the_backing_folder_are_seen() {
    let dir = backing();
    let fs = mount(dir.path());
    let before = try_read_all(&fs, "normalized/n64/Mario.z64").unwrap();
    // Replaced in place with other bytes of another size.
    let mut other = read_fixture("roms/n64/bigbass1997_minimal.z64");
    other.truncate(0x8000);
    other[0x20] = b'X';
    std::thread::sleep(std::time::Duration::from_millis(20));
    write(dir.path(), "n64/Mario.v64", &other);
    let after = try_read_all(&fs, "normalized/n64/Mario.z64").unwrap();
    assert!(before != after, "the old image was served");
    assert!(after == other, "the new image is wrong");
    // Deleted: gone.
    std::fs::remove_file(dir.path().join("n64/Mario.v64")).unwrap();
    assert_eq!(
        lookup(&fs, "normalized/n64/Mario.z64"),
        Err(FsError::NotFound)
    );
    // Added: listed.
    write(dir.path(), "n64/Other.z64", &other);
    assert_eq!(names(&fs, "normalized/n64"), ["Other.z64"]);
}

#[test]
fn a_sidecar_patch_for_another_version_is_left_out_and_info_says_why() {
    let dir = backing();
    // A BPS for the NES pair beside the SNES ROM, by name: its source
    // CRC32 fits none of the SNES ROM's images.
    let bps = read_fixture("patches/nes15_ntsc2pal.flips-delta.bps");
    write(dir.path(), "snes/Game.bps", &bps);
    let fs = mount(dir.path());
    assert_eq!(
        names(&fs, "patched/snes"),
        [
            "Game [Game+ips1].sfc",
            "Game [Game].sfc",
            "Game [Translation].sfc"
        ]
    );
    let summary = any::Patch::parse(PatchFormat::Bps, &bps, &Limits::default())
        .unwrap()
        .summary();
    let (size, crc) = (
        summary.source_size.unwrap(),
        summary.source_checksum.unwrap(),
    );
    let clean = read_fixture("roms/snes/cputest-basic.sfc");
    let raw = read_fixture("roms/snes/cputest-basic.smc");
    let info = String::from_utf8(try_read_all(&fs, "info/snes/Game.smc.txt").unwrap()).unwrap();
    let expected = format!(
        "  snes/Game.bps: not applied: expects a source of {size} bytes with {crc}; this ROM \
         is {} bytes raw, {} normalized, {} deinterleaved: the patch is for another version\n",
        raw.len(),
        clean.len(),
        clean.len()
    );
    assert!(info.contains(&expected), "{expected}\nin:\n{info}");
    assert!(
        info.contains("    shown as patched/snes/Game [Game].sfc\n"),
        "{info}"
    );
}

#[test]
fn a_patch_that_cannot_be_applied_gives_eio_and_says_why() {
    let dir = backing();
    // A sidecar BPS cut short: shown, as a patch of the ROM's name, but
    // it cannot be read. The IPS beside it shares its stem: both labels
    // carry their extension.
    let bps = read_fixture("patches/snes_cputest_basic2full.flips-delta.bps");
    write(dir.path(), "snes/Game.bps", &bps[..bps.len() / 2]);
    let fs = mount(dir.path());
    let listed_size = |fs: &NinjaFs| {
        let folder = lookup(fs, "info/snes").unwrap();
        let entries = fs.readdir(folder.ino).unwrap();
        assert_eq!(entries.len(), 1);
        entries[0].attributes.size
    };
    let before = listed_size(&fs);
    assert_eq!(
        names(&fs, "patched/snes"),
        [
            "Game [Game+ips1].sfc",
            "Game [Game.bps].sfc",
            "Game [Game.ips].sfc",
            "Game [Translation].sfc"
        ]
    );
    let attributes = lookup(&fs, "patched/snes/Game [Game.bps].sfc").unwrap();
    match fs.open(attributes.ino) {
        Err(FsError::Io(reason)) => assert!(reason.starts_with("snes/Game.bps: "), "{reason}"),
        other => panic!("expected EIO, got {other:?}"),
    }
    let info = String::from_utf8(try_read_all(&fs, "info/snes/Game.smc.txt").unwrap()).unwrap();
    assert!(info.contains("  [Game.bps] snes/Game.bps: beside the ROM with its name\n    shown as patched/snes/Game [Game.bps].sfc\n    cannot be read: "), "{info}");
    assert!(info.contains("  [Game.ips] snes/Game.ips: beside the ROM with its name\n    shown as patched/snes/Game [Game.ips].sfc\n"), "{info}");
    // Known when listed: the size listed first was the report's.
    assert_eq!(before, info.len() as u64);
    assert_eq!(listed_size(&fs), before);
    // The others still work.
    assert!(try_read_all(&fs, "patched/snes/Game [Game.ips].sfc").is_ok());
}

#[test]
fn a_folder_keeps_its_name_before_a_rom_that_would_take_it() {
    let dir = backing();
    let smc = read_fixture("roms/snes/cputest-basic.smc");
    write(dir.path(), "snes/Game.smc", &smc);
    // A folder named as the ROM's view name, holding a ROM of its own.
    write(dir.path(), "snes/Game.sfc/Inner.smc", &smc);
    let fs = mount(dir.path());
    assert_eq!(
        names(&fs, "normalized/snes"),
        ["Game (smc).sfc", "Game.sfc"]
    );
    assert_eq!(names(&fs, "normalized/snes/Game.sfc"), ["Inner.sfc"]);
    assert!(
        try_read_all(&fs, "normalized/snes/Game (smc).sfc").unwrap()
            == read_fixture("roms/snes/cputest-basic.sfc")
    );
}

#[test]
fn colliding_names_are_told_apart_by_where_they_came_from() {
    let dir = backing();
    write(
        dir.path(),
        "snes/Game.sfc",
        &read_fixture("roms/snes/cputest-full.sfc"),
    );
    for ext in ["nes", "ffe", "unf"] {
        write(
            dir.path(),
            &format!("nes/nes15-NTSC.{ext}"),
            &read_fixture(&format!("roms/nes/nes15-NTSC.{ext}")),
        );
    }
    let fs = mount(dir.path());
    // The file whose backing name is the view name keeps it; the others
    // carry their backing extension. Never a hash.
    assert_eq!(
        names(&fs, "normalized/snes"),
        ["Game (smc).sfc", "Game.sfc"]
    );
    assert_eq!(
        names(&fs, "deinterleaved/nes"),
        [
            "Zelda.unf",
            "nes15-NTSC (ffe).nes",
            "nes15-NTSC.nes",
            "nes15-NTSC.unf"
        ]
    );
    assert_eq!(
        names(&fs, "normalized/nes"),
        [
            "Zelda.nes",
            "nes15-NTSC (ffe).nes",
            "nes15-NTSC (unf).nes",
            "nes15-NTSC.nes"
        ]
    );
    assert!(
        try_read_all(&fs, "deinterleaved/nes/nes15-NTSC.nes").unwrap()
            == read_fixture("roms/nes/nes15-NTSC.nes")
    );
    // patched/ names a ROM as deinterleaved/ does.
    let patched = names(&fs, "patched/snes");
    assert!(
        patched.contains(&"Game (smc) [Translation].sfc".to_string()),
        "{patched:?}"
    );
    assert!(
        patched.contains(&"Game [Game].sfc".to_string()),
        "{patched:?}"
    );
    assert!(
        patched.contains(&"Game (smc) [Game].sfc".to_string()),
        "{patched:?}"
    );
    // A backing file named like a tag: still all distinct, and stable.
    write(
        dir.path(),
        "snes/Game (smc).sfc",
        &read_fixture("roms/snes/cputest-basic.sfc"),
    );
    let fs = mount(dir.path());
    let listed = names(&fs, "normalized/snes");
    assert_eq!(
        listed,
        ["Game (Game.smc).sfc", "Game (smc).sfc", "Game.sfc"]
    );
    assert_eq!(names(&mount(dir.path()), "normalized/snes"), listed);
}

/// Views that are a backing file byte for byte hand that file to the
/// adapter (for the kernel to read directly); reads on the handle still
/// give the same bytes. Nothing else does.
#[test]
fn whole_file_views_offer_their_backing_file() {
    let dir = backing();
    let plain = read_fixture("roms/snes/cputest-full.sfc");
    write(dir.path(), "plain/Plain.sfc", &plain);
    let fs = mount(dir.path());
    let cases = [
        ("normalized/plain/Plain.sfc", true),
        ("deinterleaved/plain/Plain.sfc", true),
        // A copier header is dropped in both views.
        ("normalized/snes/Game.sfc", false),
        ("deinterleaved/snes/Game.sfc", false),
        // UNIF is rebuilt from its chunks; v64 is byte-swapped.
        ("deinterleaved/nes/Zelda.unf", false),
        ("normalized/n64/Mario.z64", false),
        ("patched/snes/Game [Game].sfc", false),
        ("info/plain/Plain.sfc.txt", false),
    ];
    for (path, whole_file) in cases {
        let attributes = lookup(&fs, path).unwrap();
        let opened = fs.open(attributes.ino).unwrap();
        assert_eq!(opened.backing.is_some(), whole_file, "{path}");
        if let Some(file) = &opened.backing {
            use std::os::unix::fs::FileExt;
            let mut bytes = vec![0; plain.len()];
            file.read_exact_at(&mut bytes, 0).unwrap();
            assert!(bytes == plain, "{path}: backing file");
            assert_eq!(attributes.size, plain.len() as u64);
        }
        fs.release(opened.handle);
        assert_eq!(
            try_read_all(&fs, path).unwrap().len() as u64,
            attributes.size
        );
    }
    assert!(try_read_all(&fs, "normalized/plain/Plain.sfc").unwrap() == plain);
    // A file replaced after the scan is not offered as the scanned one.
    let attributes = lookup(&fs, "deinterleaved/plain/Plain.sfc").unwrap();
    write(
        dir.path(),
        "plain/Plain.sfc",
        &read_fixture("roms/snes/cputest-basic.smc"),
    );
    let opened = fs.open(attributes.ino).unwrap();
    assert!(opened.backing.is_none());
    fs.release(opened.handle);
}

#[test]
fn writes_are_refused_by_the_contract() {
    let dir = backing();
    let fs = mount(dir.path());
    let attributes = lookup(&fs, "normalized/snes/Game.sfc").unwrap();
    assert_eq!(fs.readdir(attributes.ino), Err(FsError::NotADirectory));
    let folder = lookup(&fs, "normalized/snes").unwrap();
    assert_eq!(fs.open(folder.ino).err(), Some(FsError::IsADirectory));
    assert_eq!(fs.read(9999, 0, 10), Err(FsError::BadHandle));
}

#[test]
fn every_view_has_exact_sizes_before_anything_is_read() {
    // Every fixture ROM and NINJA vector input, in every container.
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for sub in [
        "roms/gb",
        "roms/lynx",
        "roms/n64",
        "roms/nes",
        "roms/pce",
        "roms/sms_gg",
        "roms/snes",
        "rup-vectors",
    ] {
        for entry in std::fs::read_dir(fixtures.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                let name = path.file_name().unwrap().to_str().unwrap().to_string();
                write(
                    dir.path(),
                    &format!("{sub}/{name}"),
                    &std::fs::read(&path).unwrap(),
                );
            }
        }
    }
    let fs = mount(dir.path());
    let mut checked = 0;
    for view in ["normalized", "deinterleaved", "info", "patched"] {
        let mut pending = vec![view.to_string()];
        while let Some(folder) = pending.pop() {
            let ino = lookup(&fs, &folder).unwrap().ino;
            for entry in fs.readdir(ino).unwrap() {
                let path = format!("{folder}/{}", entry.name.to_str().unwrap());
                match entry.attributes.kind {
                    NodeKind::Directory => pending.push(path),
                    NodeKind::File => {
                        // read_all checks the size stat gave before the read.
                        let bytes = try_read_all(&fs, &path).unwrap();
                        assert_eq!(entry.attributes.size, bytes.len() as u64, "{path}");
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} files");
}

#[test]
fn linked_files_are_shown_and_linked_folders_not_followed() {
    let dir = backing();
    let root = dir.path();
    std::os::unix::fs::symlink(root.join("n64/Mario.v64"), root.join("n64/Link.v64")).unwrap();
    // A folder linking back to the root would make an endless tree.
    std::os::unix::fs::symlink(root, root.join("snes/loop")).unwrap();
    let fs = mount(root);
    assert_eq!(names(&fs, "normalized/n64"), ["Link.z64", "Mario.z64"]);
    assert!(
        try_read_all(&fs, "normalized/n64/Link.z64").unwrap()
            == read_fixture("roms/n64/bigbass1997_minimal.z64")
    );
    assert_eq!(names(&fs, "normalized/snes"), ["Game.sfc"]);
    // Pairing by checksum walks the whole tree: it ends.
    assert_eq!(names(&fs, "patched/snes").len(), 3);
}

#[test]
fn patches_without_checksums_pair_by_a_crc32_in_their_name_or_a_readme() {
    let dir = backing();
    let clean = read_fixture("roms/snes/cputest-basic.sfc");
    let headered = read_fixture("roms/snes/cputest-basic.smc");
    let full = read_fixture("roms/snes/cputest-full.sfc");
    let ips = read_fixture("patches/snes_cputest_basic2full.flips.ips");
    let crc = crc32fast::hash(&clean);
    // igir's convention: the source's CRC32 in the patch's name.
    let named = format!("Cool Hack [{crc:08X}].ips");
    write(dir.path(), &format!("hacks/{named}"), &ips);
    // A download: the patch and a readme whose ROM information block
    // names the (headered) source by SHA-1, the result by CRC32.
    let sha1 = ninja_fs::digest::Digests::of(&headered).sha1_hex();
    write(dir.path(), "downloads/Hack v1.1/Hack.ips", &ips);
    write(
        dir.path(),
        "downloads/Hack v1.1/readme.txt",
        format!(
            "Hack v1.1\r\n\r\nROM / ISO Information:\r\n  File SHA-1: {}\r\n  Patched ROM CRC32: {:08X}\r\n",
            sha1.to_uppercase(),
            crc32fast::hash(&full)
        )
        .as_bytes(),
    );
    // A readme about two ROMs names neither.
    write(dir.path(), "ambiguous/Other.ips", &ips);
    write(
        dir.path(),
        "ambiguous/readme.txt",
        b"USA CRC32: 11111111\nEurope CRC32: 22222222\n",
    );
    let fs = mount(dir.path());
    let hinted_name = format!("Game [Cool Hack [{crc:08X}]].sfc");
    assert_eq!(
        names(&fs, "patched/snes"),
        [
            hinted_name.clone(),
            "Game [Game+ips1].sfc".to_string(),
            "Game [Game].sfc".to_string(),
            "Game [Hack].sfc".to_string(),
            "Game [Translation].sfc".to_string(),
        ]
    );
    assert!(try_read_all(&fs, &format!("patched/snes/{hinted_name}")).unwrap() == full);
    assert!(try_read_all(&fs, "patched/snes/Game [Hack].sfc").unwrap() == full);
    let info = String::from_utf8(try_read_all(&fs, "info/snes/Game.smc.txt").unwrap()).unwrap();
    let by_name = format!(
        "  [Cool Hack [{crc:08X}]] hacks/{named}: the CRC32 {crc:08x} in its file name, the normalized image's\n"
    );
    assert!(info.contains(&by_name), "{by_name}\nin:\n{info}");
    let by_readme = format!(
        "  [Hack] downloads/Hack v1.1/Hack.ips: the readme readme.txt beside it names a source with SHA-1 {sha1}, the raw image's\n"
    );
    assert!(info.contains(&by_readme), "{by_readme}\nin:\n{info}");
    assert!(!info.contains("Other.ips"), "{info}");
}
