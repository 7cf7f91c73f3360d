//! The header cache without FUSE: a second library over the same folder
//! learns every file from the cache file and reads none; a changed file,
//! a damaged or foreign cache file, and an unsound entry are read again.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ninja_fs::library::header_cache::{self, HeaderCacheError};
use ninja_fs::library::{DirContents, Library};
use ninja_fs::patch::Limits;
use ninja_fs::system::SystemType;
use ninja_fs::vfs::{NodeKind, ROOT_INO, VirtualFs};
use ninja_fs::views::NinjaFs;
use proptest::prelude::*;

/// A temporary backing folder holding a copy of every fixture file (ROMs
/// of every system and container, patches of every format, broken
/// patches, licence texts) and a Game Boy ROM named `extra/Game.bin`;
/// returns it with the number of files in it.
fn backing() -> (tempfile::TempDir, u64) {
    let dir = tempfile::tempdir().unwrap();
    let files = copy_tree(&common::fixture(""), dir.path());
    let extra = dir.path().join("extra");
    fs::create_dir(&extra).unwrap();
    fs::copy(
        common::fixture("roms/gb/mooneye_acceptance_bits_reg_f.gb"),
        extra.join("Game.bin"),
    )
    .unwrap();
    (dir, files + 1)
}

fn copy_tree(from: &Path, to: &Path) -> u64 {
    let mut files = 0;
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            fs::create_dir(&target).unwrap();
            files += copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
            files += 1;
        }
    }
    files
}

fn library(root: &Path, cache_dir: Option<&Path>) -> Library {
    let library = Library::new(root, Limits::default()).unwrap();
    if let Some(dir) = cache_dir {
        library.use_header_cache(dir);
    }
    library
}

/// Every folder of the library with its contents, depth first.
fn folders(library: &Library) -> Vec<(String, std::sync::Arc<DirContents>)> {
    let mut found = Vec::new();
    let mut pending = vec![String::new()];
    while let Some(rel_dir) = pending.pop() {
        let contents = library.dir(&rel_dir).unwrap();
        pending.extend(contents.subdirs.iter().rev().map(|d| {
            if rel_dir.is_empty() {
                d.clone()
            } else {
                format!("{rel_dir}/{d}")
            }
        }));
        found.push((rel_dir, contents));
    }
    found
}

/// Everything the scans found, one line per ROM and patch, with the
/// patched variants each ROM gets.
fn describe(library: &Library) -> Vec<String> {
    let mut lines = Vec::new();
    for (rel_dir, contents) in folders(library) {
        lines.push(format!("folder /{rel_dir}: {:?}", contents.subdirs));
        for rom in &contents.roms {
            let variants: Vec<String> = library
                .variants(rom, &rel_dir, &contents)
                .iter()
                .map(|v| format!("[{}] {:?} {}", v.label, v.layout, v.reason))
                .collect();
            lines.push(format!(
                "rom {} {:?} {:?} {} {} .{} .{} {variants:?}",
                rom.rel_path,
                rom.id,
                rom.layout,
                rom.normalized_len(),
                rom.deinterleaved_len(),
                rom.normalized_ext,
                rom.deinterleaved_ext,
            ));
        }
        for patch in &contents.patches {
            lines.push(format!(
                "patch {} {} {:?} {:?} {:?} {} {:?} {:?} {:?}",
                patch.rel_path,
                patch.ext,
                patch.id,
                patch.format,
                patch.pair_keys,
                patch.verifies_source,
                patch.source_size,
                patch.target_size,
                patch.error
            ));
        }
    }
    lines
}

fn rom_line<'a>(lines: &'a [String], rel_path: &str) -> &'a str {
    let prefix = format!("rom {rel_path} ");
    lines
        .iter()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no ROM {rel_path}"))
}

/// A backing folder scanned once with the cache on (and the cache saved):
/// (backing, files in it, cache folder, what the scan found).
fn scanned_once() -> (tempfile::TempDir, u64, tempfile::TempDir, Vec<String>) {
    let (backing, files) = backing();
    let cache = tempfile::tempdir().unwrap();
    let first = library(backing.path(), Some(cache.path()));
    let found = describe(&first);
    assert_eq!(first.header_reads(), files);
    assert!(first.roms_hashed() > 0);
    drop(first);
    (backing, files, cache, found)
}

fn cache_file(backing: &Path, cache: &Path) -> PathBuf {
    header_cache::file_in(cache, backing)
}

#[test]
fn a_second_library_reads_no_file() {
    let (backing, files, cache, found) = scanned_once();
    let file = cache_file(backing.path(), cache.path());
    let names: Vec<_> = fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![file.file_name().unwrap().to_os_string()]);
    let bytes = fs::read(&file).unwrap();
    assert_eq!(
        header_cache::check(&bytes, backing.path(), Limits::default()).unwrap() as u64,
        files
    );

    let second = library(backing.path(), Some(cache.path()));
    assert_eq!(second.header_cache_file(), Some(file.as_path()));
    assert_eq!(describe(&second), found);
    assert_eq!(second.header_reads(), 0);
    // The ROMs that checksum patches could pair with were hashed by the
    // first library; their digests came from the cache too.
    assert_eq!(second.roms_hashed(), 0);
    drop(second);
    // Nothing new was learned: the file was not written again.
    assert_eq!(fs::read(&file).unwrap(), bytes);
}

#[test]
fn a_rewrite_that_restores_size_and_mtime_is_read_again() {
    let (backing, _, cache, found) = scanned_once();
    assert!(
        rom_line(&found, "extra/Game.bin").contains("system: Gb"),
        "{}",
        rom_line(&found, "extra/Game.bin")
    );
    assert!(rom_line(&found, "extra/Game.bin").contains(" .gb .gb "));

    let path = backing.path().join("extra/Game.bin");
    let before = fs::metadata(&path).unwrap();
    let zeros = vec![0u8; before.len() as usize];
    // The change time moves with every write; on a coarse clock two writes
    // may share a tick, so write until it has moved.
    for _ in 0..10_000 {
        fs::write(&path, &zeros).unwrap();
        let file = fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(before.modified().unwrap()).unwrap();
        if fs::metadata(&path).unwrap().ctime_nsec_total() != before.ctime_nsec_total() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let after = fs::metadata(&path).unwrap();
    assert_eq!(after.len(), before.len());
    assert_eq!(after.modified().unwrap(), before.modified().unwrap());
    assert_ne!(after.ctime_nsec_total(), before.ctime_nsec_total());

    let second = library(backing.path(), Some(cache.path()));
    let now = describe(&second);
    assert_eq!(second.header_reads(), 1);
    let rom = second
        .dir("extra")
        .unwrap()
        .roms
        .iter()
        .find(|r| r.file_name == "Game.bin")
        .cloned()
        .unwrap();
    assert_eq!(rom.layout.system, SystemType::Raw);
    assert_eq!(rom.normalized_ext, "bin");
    assert_eq!(rom.deinterleaved_ext, "bin");
    // Every other line is as before.
    let others = |lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .filter(|l| !l.starts_with("rom extra/Game.bin "))
            .cloned()
            .collect()
    };
    assert_eq!(others(&now), others(&found));
}

trait CtimeNs {
    fn ctime_nsec_total(&self) -> i128;
}

impl CtimeNs for fs::Metadata {
    fn ctime_nsec_total(&self) -> i128 {
        use std::os::unix::fs::MetadataExt;
        i128::from(self.ctime()) * 1_000_000_000 + i128::from(self.ctime_nsec())
    }
}

/// A cache file's header line (as JSON) and entries.
fn split(bytes: &[u8]) -> (serde_json::Value, Vec<u8>) {
    let newline = bytes.iter().position(|&b| b == b'\n').unwrap();
    (
        serde_json::from_slice(&bytes[..newline]).unwrap(),
        bytes[newline + 1..].to_vec(),
    )
}

/// A cache file with this header and these entries, length and CRC32 set
/// to match.
fn rebuild(mut header: serde_json::Value, entries: &[u8]) -> Vec<u8> {
    header["entries_len"] = entries.len().into();
    header["entries_crc32"] = crc32fast::hash(entries).into();
    let mut out = serde_json::to_vec(&header).unwrap();
    out.push(b'\n');
    out.extend_from_slice(entries);
    out
}

#[test]
fn a_damaged_or_foreign_cache_file_is_ignored() {
    let (backing, files, cache, found) = scanned_once();
    let file = cache_file(backing.path(), cache.path());
    let good = fs::read(&file).unwrap();
    let (header, entries) = split(&good);
    let check = |bytes: &[u8]| header_cache::check(bytes, backing.path(), Limits::default());

    let mut flipped = good.clone();
    let last = flipped.len() - 2;
    flipped[last] ^= 0x01;
    let mut other_version = header.clone();
    other_version["version"] = "0.0.0".into();
    let mut other_format = header.clone();
    other_format["format"] = 999.into();
    let mut other_root = header.clone();
    other_root["root"] = "/somewhere/else".into();
    let mut other_limits = header.clone();
    other_limits["max_image_size"] = 1024.into();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("header cut", good[..20].to_vec()),
        ("entries cut", good[..good.len() / 2].to_vec()),
        ("one bit flipped", flipped),
        ("not JSON", b"\x00\xffnot a cache\n[]".to_vec()),
        ("other version", rebuild(other_version, &entries)),
        ("other format", rebuild(other_format, &entries)),
        ("other root", rebuild(other_root, &entries)),
        ("other limits", rebuild(other_limits, &entries)),
        ("entries not JSON", rebuild(header.clone(), b"[{\"path\":")),
    ];
    for (what, bytes) in cases {
        let error = check(&bytes).unwrap_err();
        let expected = match what {
            "empty" | "header cut" => matches!(error, HeaderCacheError::NoHeader),
            "entries cut" => matches!(error, HeaderCacheError::Length { .. }),
            "one bit flipped" => matches!(error, HeaderCacheError::Checksum),
            "not JSON" => matches!(error, HeaderCacheError::BadHeader(_)),
            "other version" | "other format" => matches!(error, HeaderCacheError::OtherBuild(_)),
            "other root" | "other limits" => matches!(error, HeaderCacheError::OtherRoot),
            _ => matches!(error, HeaderCacheError::BadEntries(_)),
        };
        assert!(expected, "{what}: {error}");

        fs::write(&file, &bytes).unwrap();
        let library = library(backing.path(), Some(cache.path()));
        assert_eq!(describe(&library), found, "{what}");
        assert_eq!(library.header_reads(), files, "{what}");
        drop(library);
        // The next save replaced the bad file with a good one.
        assert_eq!(
            check(&fs::read(&file).unwrap()).unwrap() as u64,
            files,
            "{what}"
        );
    }
}

#[test]
fn an_unsound_entry_is_read_again() {
    let (backing, files, cache, found) = scanned_once();
    let file = cache_file(backing.path(), cache.path());
    let (header, entries) = split(&fs::read(&file).unwrap());
    let mut list: Vec<serde_json::Value> = serde_json::from_slice(&entries).unwrap();
    let smc = "roms/snes/cputest-basic.smc";
    let unif = "roms/nes/nes15-NTSC.unf";
    let ines = "roms/nes/nes15-NTSC.nes";
    for entry in &mut list {
        let path = entry["path"].as_str().unwrap().to_string();
        if ![smc, unif, ines].contains(&path.as_str()) {
            continue;
        }
        let layout = &mut entry["what"]["Rom"]["layout"];
        if path == smc {
            // Past the end of the file: normalizing would slice out of it.
            let len = layout["data_len"].as_u64().unwrap();
            layout["data_len"] = (len + 0x10000).into();
        } else if path == unif {
            // A chunk that claims more than the file holds.
            let pieces = layout["unif"].as_array_mut().unwrap();
            let rom = pieces.iter_mut().find(|p| p.get("Rom").is_some()).unwrap();
            let len = rom["Rom"]["len"].as_u64().unwrap();
            rom["Rom"]["len"] = (len + 1).into();
        } else {
            // A kept header that is not the bytes before the data.
            layout["header_bytes"] = serde_json::json!([1, 2, 3]);
        }
    }
    let tampered = rebuild(header, &serde_json::to_vec(&list).unwrap());
    assert_eq!(
        header_cache::check(&tampered, backing.path(), Limits::default()).unwrap() as u64,
        files - 3
    );
    fs::write(&file, &tampered).unwrap();
    let library = library(backing.path(), Some(cache.path()));
    assert_eq!(describe(&library), found);
    assert_eq!(library.header_reads(), 3);
}

#[test]
fn files_that_are_gone_are_not_written_back() {
    let (backing, files, cache, _) = scanned_once();
    fs::remove_file(backing.path().join("extra/Game.bin")).unwrap();
    fs::remove_dir_all(backing.path().join("rup-vectors")).unwrap();
    let gone_below = copy_count(&common::fixture("rup-vectors"));
    let second = library(backing.path(), Some(cache.path()));
    describe(&second);
    assert_eq!(second.header_reads(), 0);
    drop(second);
    let bytes = fs::read(cache_file(backing.path(), cache.path())).unwrap();
    assert_eq!(
        header_cache::check(&bytes, backing.path(), Limits::default()).unwrap() as u64,
        files - 1 - gone_below
    );
    let (_, entries) = split(&bytes);
    let list: Vec<serde_json::Value> = serde_json::from_slice(&entries).unwrap();
    assert!(list.iter().all(|e| {
        let path = e["path"].as_str().unwrap();
        path != "extra/Game.bin" && !path.starts_with("rup-vectors/")
    }));
}

fn copy_count(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                copy_count(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn without_the_cache_every_library_reads_every_file() {
    let (backing, files) = backing();
    let first = library(backing.path(), None);
    let found = describe(&first);
    assert_eq!(first.header_cache_file(), None);
    assert_eq!(first.header_reads(), files);
    drop(first);
    let second = library(backing.path(), None);
    assert_eq!(describe(&second), found);
    assert_eq!(second.header_reads(), files);
    // The backing folder holds what was copied into it, nothing more.
    assert_eq!(copy_count(backing.path()), files);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_bytes_are_no_cache(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let root = tempfile::tempdir().unwrap();
        prop_assert!(header_cache::check(&bytes, root.path(), Limits::default()).is_err());
    }

    #[test]
    fn arbitrary_entries_under_a_good_header_give_none(
        entries in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let root = tempfile::tempdir().unwrap();
        let header = good_header(root.path());
        let bytes = rebuild(header, &entries);
        let result = header_cache::check(&bytes, root.path(), Limits::default());
        prop_assert!(matches!(result, Err(_) | Ok(0)), "{result:?}");
    }

    #[test]
    fn a_changed_byte_makes_a_cache_file_ignored(at in any::<prop::sample::Index>(), xor in 1u8..) {
        let (root, good) = small_cache();
        let mut bytes = good.clone();
        let at = at.index(bytes.len());
        bytes[at] ^= xor;
        prop_assert!(header_cache::check(&bytes, root.path(), Limits::default()).is_err());
    }
}

/// The header line of a real cache file for `root` (an empty folder).
fn good_header(root: &Path) -> serde_json::Value {
    let cache = tempfile::tempdir().unwrap();
    let library = library(root, Some(cache.path()));
    fs::write(
        root.join("a.gb"),
        common::read_fixture("roms/gb/sdcc_makebin.gbc"),
    )
    .unwrap();
    library.dir("");
    drop(library);
    let bytes = fs::read(cache_file(root, cache.path())).unwrap();
    split(&bytes).0
}

/// A folder with two ROMs and its cache file's bytes.
fn small_cache() -> (tempfile::TempDir, Vec<u8>) {
    let root = tempfile::tempdir().unwrap();
    fs::write(
        root.path().join("a.gb"),
        common::read_fixture("roms/gb/sdcc_makebin.gbc"),
    )
    .unwrap();
    fs::write(
        root.path().join("b.lnx"),
        common::read_fixture("roms/lynx/cc65_tgi_hello.lnx"),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let library = library(root.path(), Some(cache.path()));
    library.dir("");
    drop(library);
    let bytes = fs::read(cache_file(root.path(), cache.path())).unwrap();
    assert_eq!(
        header_cache::check(&bytes, root.path(), Limits::default()).unwrap(),
        2
    );
    (root, bytes)
}

/// Every file under `info/` with the size a listing gives it.
fn info_sizes(fs: &NinjaFs) -> Vec<(String, u64, u64)> {
    let root = fs.readdir(ROOT_INO).unwrap();
    let info = root.iter().find(|e| e.name == "info").unwrap();
    let mut found = Vec::new();
    let mut pending = vec![(info.attributes.ino, String::from("info"))];
    while let Some((ino, path)) = pending.pop() {
        for entry in fs.readdir(ino).unwrap() {
            let name = format!("{path}/{}", entry.name.to_string_lossy());
            match entry.attributes.kind {
                NodeKind::Directory => pending.push((entry.attributes.ino, name)),
                _ => found.push((name, entry.attributes.ino, entry.attributes.size)),
            }
        }
    }
    found.sort();
    found
}

#[test]
fn info_sizes_come_from_the_cache_too() {
    let (backing, files) = backing();
    let cache = tempfile::tempdir().unwrap();
    let core = || {
        let fs = NinjaFs::new(backing.path(), 64 << 20, Limits::default()).unwrap();
        fs.library().use_header_cache(cache.path());
        fs
    };
    let first = core();
    let sizes = info_sizes(&first);
    // Every file classified, and one report made from each ROM's headers.
    assert_eq!(first.library().header_reads(), files + sizes.len() as u64);
    drop(first);

    let second = core();
    let again = info_sizes(&second);
    assert_eq!(
        again.iter().map(|(n, _, s)| (n, s)).collect::<Vec<_>>(),
        sizes.iter().map(|(n, _, s)| (n, s)).collect::<Vec<_>>()
    );
    assert_eq!(second.library().header_reads(), 0);
    // The sizes are those of the reports a read makes.
    for (name, ino, size) in &again {
        let opened = second.open(*ino).unwrap();
        let bytes = second.read(opened.handle, 0, u32::MAX).unwrap();
        second.release(opened.handle);
        assert_eq!(bytes.len() as u64, *size, "{name}");
    }
}

/// A scan that read many files saves the cache at once (from a thread of
/// its own); one that read a few leaves the whole-file rewrite to when the
/// library goes.
#[test]
fn only_scans_that_read_many_files_save_at_once() {
    let backing = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let rom = fs::read(common::fixture("roms/gb/sdcc_makebin.gbc")).unwrap();
    fs::create_dir(backing.path().join("few")).unwrap();
    fs::create_dir(backing.path().join("many")).unwrap();
    for i in 0..3 {
        fs::write(backing.path().join(format!("few/g{i}.gbc")), &rom).unwrap();
    }
    let file = cache_file(backing.path(), cache.path());
    let first = library(backing.path(), Some(cache.path()));
    assert_eq!(first.dir("few").unwrap().roms.len(), 3);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!file.exists(), "saved after reading 3 files");

    for i in 0..64 {
        fs::write(backing.path().join(format!("many/g{i:02}.gbc")), &rom).unwrap();
    }
    assert_eq!(first.dir("many").unwrap().roms.len(), 64);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !file.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(file.exists(), "not saved after reading 64 files");
    drop(first);
    // Dropping the library saved the rest: a new one reads nothing.
    let again = library(backing.path(), Some(cache.path()));
    assert_eq!(again.dir("few").unwrap().roms.len(), 3);
    assert_eq!(again.dir("many").unwrap().roms.len(), 64);
    assert_eq!(again.header_reads(), 0);
}
