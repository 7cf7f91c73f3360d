//! Archives made by the real tools (Debian's `zip`, `7z`, `gzip`) and by
//! the `zip` crate's writer, read back member by member: every method,
//! every kind of damage, hostile names, bombs, and the command line taking
//! an archive wherever it takes a file. A test that needs a tool that is
//! not installed says so and passes.

mod common;

use std::fs::File;
use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{fixture, ninja, read_fixture, stderr_of};
use ninja_fs::backing::archive::{self, Archive, ArchiveError, ArchiveKind};
use proptest::prelude::*;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// The fixtures the archives hold: (name inside, fixture path).
const ROMS: [(&str, &str); 4] = [
    ("Game.smc", "roms/snes/cputest-basic.smc"),
    ("nes15-NTSC.nes", "roms/nes/nes15-NTSC.nes"),
    ("mbc1.gb", "roms/gb/mooneye_emulator-only_mbc1_rom_512Kb.gb"),
    ("hello.lnx", "roms/lynx/cc65_tgi_hello.lnx"),
];

const GIB: u64 = 1 << 30;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Skips the test (it passes, saying so) when a tool is missing.
macro_rules! need {
    ($($tool:literal),+) => {
        $(
            if !have($tool) {
                eprintln!(
                    "skipped: `{}` is not installed (Debian: apt-get install {})",
                    $tool,
                    match $tool { "7z" => "p7zip-full", other => other }
                );
                return;
            }
        )+
    };
}

/// Runs a tool in `dir`; it must succeed.
fn run(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A folder holding the ROM fixtures under their short names.
fn roms_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, path) in ROMS {
        std::fs::copy(fixture(path), dir.path().join(name)).unwrap();
    }
    std::fs::write(dir.path().join("readme.txt"), "Not a ROM.\n").unwrap();
    dir
}

fn open(path: &Path) -> Result<Archive, ArchiveError> {
    let mut head = Vec::new();
    File::open(path)
        .unwrap()
        .take(archive::MAGIC_LEN as u64)
        .read_to_end(&mut head)
        .unwrap();
    let kind = archive::kind_of(&head).expect("an archive's magic number");
    let name = path.file_name().unwrap().to_str().unwrap();
    Archive::open(File::open(path).unwrap(), name, kind)
}

fn rom(name: &str) -> Vec<u8> {
    let (_, path) = ROMS.iter().find(|(n, _)| *n == name).unwrap();
    read_fixture(path)
}

/// Checks that `archive` holds exactly `names` (any order), each with the
/// fixture's size, CRC32 and bytes, whole and as prefixes.
fn assert_holds(archive: &Archive, names: &[&str]) {
    let members = archive.members();
    let mut listed: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    listed.sort_unstable();
    let mut wanted = names.to_vec();
    wanted.sort_unstable();
    assert_eq!(listed, wanted);
    let prefixes = archive.read_prefixes(&|_| 1000);
    for (index, member) in members.iter().enumerate() {
        let bytes = if member.name == "readme.txt" {
            b"Not a ROM.\n".to_vec()
        } else {
            rom(&member.name)
        };
        assert_eq!(member.size, bytes.len() as u64, "{}", member.name);
        assert_eq!(
            member.crc32,
            Some(crc32fast::hash(&bytes)),
            "{}",
            member.name
        );
        assert_eq!(member.problem, None, "{}", member.name);
        assert!(
            archive.read_member(index, GIB).unwrap() == bytes,
            "{}",
            member.name
        );
        let short = archive.read_prefix(index, 100).unwrap();
        assert_eq!(short, bytes[..100.min(bytes.len())], "{}", member.name);
        let long = archive.read_prefix(index, bytes.len() as u64 + 10).unwrap();
        assert!(long == bytes, "{}", member.name);
        let prefix = prefixes[index].as_ref().unwrap();
        assert_eq!(
            prefix[..],
            bytes[..1000.min(bytes.len())],
            "{}",
            member.name
        );
    }
}

const ALL: [&str; 5] = [
    "Game.smc",
    "nes15-NTSC.nes",
    "mbc1.gb",
    "hello.lnx",
    "readme.txt",
];

#[test]
fn zip_cli_methods() {
    need!("zip");
    let dir = roms_dir();
    for method in ["store", "deflate", "bzip2"] {
        let name = format!("{method}.zip");
        let mut args = vec!["-q", "-Z", method, name.as_str()];
        args.extend(ALL);
        run(dir.path(), "zip", &args);
        let archive = open(&dir.path().join(&name)).unwrap();
        assert_eq!(archive.kind(), ArchiveKind::Zip);
        assert_holds(&archive, &ALL);
    }
}

#[test]
fn zip_methods_from_7z() {
    need!("7z");
    let dir = roms_dir();
    for method in ["Deflate64", "LZMA", "XZ", "PPMd", "BZip2", "Copy"] {
        let name = format!("{method}.zip");
        let mm = format!("-mm={method}");
        let mut args = vec!["a", "-bd", "-tzip", mm.as_str(), name.as_str()];
        args.extend(ALL);
        run(dir.path(), "7z", &args);
        let archive = open(&dir.path().join(&name)).unwrap();
        assert_holds(&archive, &ALL);
    }
}

/// Writes a zip with the `zip` crate: (name, method, bytes) per member.
fn crate_zip(members: &[(&str, CompressionMethod, &[u8])]) -> Vec<u8> {
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, method, bytes) in members {
        let options = SimpleFileOptions::default().compression_method(*method);
        writer.start_file(*name, options).unwrap();
        writer.write_all(bytes).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

fn write_temp(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn zstd_zip_from_the_crate_writer() {
    let dir = tempfile::tempdir().unwrap();
    let game = rom("Game.smc");
    let nes = rom("nes15-NTSC.nes");
    let bytes = crate_zip(&[
        ("Game.smc", CompressionMethod::Zstd, &game),
        ("nes15-NTSC.nes", CompressionMethod::Deflated, &nes),
    ]);
    let archive = open(&write_temp(dir.path(), "zstd.zip", &bytes)).unwrap();
    assert_holds(&archive, &["Game.smc", "nes15-NTSC.nes"]);
}

#[test]
fn sevenz_methods_solid_and_not() {
    need!("7z");
    let dir = roms_dir();
    let settings: [&[&str]; 8] = [
        &["-m0=LZMA", "-ms=on"],
        &["-m0=LZMA", "-ms=off"],
        &["-m0=LZMA2", "-ms=on"],
        &["-m0=LZMA2", "-ms=off", "-mhc=off"],
        &["-m0=PPMd", "-ms=on"],
        &["-m0=BZip2", "-ms=off"],
        &["-mf=BCJ", "-m0=LZMA2", "-ms=on"],
        &["-mf=BCJ2", "-ms=on"],
    ];
    for (n, setting) in settings.iter().enumerate() {
        let name = format!("{n}.7z");
        let mut args = vec!["a", "-bd"];
        args.extend_from_slice(setting);
        args.push(&name);
        args.extend(ALL);
        run(dir.path(), "7z", &args);
        let archive = open(&dir.path().join(&name)).unwrap_or_else(|e| panic!("{setting:?}: {e}"));
        assert_eq!(archive.kind(), ArchiveKind::SevenZip);
        assert_holds(&archive, &ALL);
    }
}

/// An archive's bytes, counting how many of them its readers asked for.
struct CountingBytes {
    bytes: Vec<u8>,
    read: std::sync::atomic::AtomicU64,
}

impl ninja_fs::backing::ReadAt for CountingBytes {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let read = self.bytes.read_at(buf, offset)?;
        self.read
            .fetch_add(read as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(read)
    }
}

/// `len` bytes that no coder can shrink (xorshift).
fn noise(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[test]
fn prefixes_decompress_no_further_than_asked() {
    need!("7z", "zip");
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("a.bin"), noise(1 << 20, 1)).unwrap();
    std::fs::write(path("b.bin"), noise(1 << 20, 2)).unwrap();
    run(
        dir.path(),
        "7z",
        &["a", "-bd", "-ms=on", "solid.7z", "a.bin", "b.bin"],
    );
    run(dir.path(), "7z", &["a", "-bd", "one.7z", "b.bin"]);
    run(dir.path(), "zip", &["-q", "one.zip", "b.bin"]);
    let open_counting = |name: &str| {
        let bytes = std::fs::read(path(name)).unwrap();
        let len = bytes.len() as u64;
        let source = std::sync::Arc::new(CountingBytes {
            bytes,
            read: 0.into(),
        });
        let archive = Archive::open_shared(source.clone(), len, name).unwrap();
        (archive, source, len)
    };
    let read_of = |source: &CountingBytes| source.read.load(std::sync::atomic::Ordering::Relaxed);

    // A lone member: only its first 64 KiB or so are decompressed.
    for name in ["one.7z", "one.zip"] {
        let (archive, source, len) = open_counting(name);
        let before = read_of(&source);
        let prefixes = archive.read_unverified_prefixes(&|_| 0x1_0200);
        assert_eq!(prefixes.len(), 1);
        assert_eq!(
            prefixes[0].as_ref().unwrap()[..],
            noise(1 << 20, 2)[..0x1_0200]
        );
        let read = read_of(&source) - before;
        assert!(read < len / 4, "{name}: {read} of {len} bytes read");
    }

    // A solid block: the first member is decoded whole to reach the
    // second, and decoding stops in the second.
    let (archive, source, len) = open_counting("solid.7z");
    let before = read_of(&source);
    let prefixes = archive.read_prefixes(&|member| if member.name == "a.bin" { 10 } else { 1000 });
    assert_eq!(prefixes[0].as_ref().unwrap()[..], noise(1 << 20, 1)[..10]);
    assert_eq!(prefixes[1].as_ref().unwrap()[..], noise(1 << 20, 2)[..1000]);
    let read = read_of(&source) - before;
    assert!(
        (len / 2 - (64 << 10)..len * 3 / 5).contains(&read),
        "{read} of {len} bytes read"
    );
}

#[test]
fn sevenz_members_in_folders_and_empty_ones() {
    need!("7z");
    let dir = roms_dir();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::copy(dir.path().join("Game.smc"), dir.path().join("sub/Game.smc")).unwrap();
    std::fs::write(dir.path().join("empty.bin"), b"").unwrap();
    run(
        dir.path(),
        "7z",
        &["a", "-bd", "t.7z", "sub", "empty.bin", "hello.lnx"],
    );
    let archive = open(&dir.path().join("t.7z")).unwrap();
    let mut names: Vec<&str> = archive.members().iter().map(|m| m.name.as_str()).collect();
    names.sort_unstable();
    // The folder itself is no member.
    assert_eq!(names, ["empty.bin", "hello.lnx", "sub/Game.smc"]);
    let empty = archive
        .members()
        .iter()
        .position(|m| m.name == "empty.bin")
        .unwrap();
    assert_eq!(archive.read_member(empty, GIB).unwrap(), b"");
    assert_eq!(archive.read_prefix(empty, 10).unwrap(), b"");
    let game = archive
        .members()
        .iter()
        .position(|m| m.name == "sub/Game.smc")
        .unwrap();
    assert!(archive.read_member(game, GIB).unwrap() == rom("Game.smc"));
}

#[test]
fn gzip_holds_the_file_it_is_named_after() {
    need!("gzip");
    let dir = roms_dir();
    for level in ["-1", "-9"] {
        run(dir.path(), "gzip", &["-kf", level, "Game.smc"]);
        let archive = open(&dir.path().join("Game.smc.gz")).unwrap();
        assert_eq!(archive.kind(), ArchiveKind::Gzip);
        assert_holds(&archive, &["Game.smc"]);
    }
}

#[test]
fn many_threads_read_one_archive() {
    need!("7z");
    let dir = roms_dir();
    let mut args = vec!["a", "-bd", "-ms=on", "s.7z"];
    args.extend(ALL);
    run(dir.path(), "7z", &args);
    let archive = open(&dir.path().join("s.7z")).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for (index, member) in archive.members().iter().enumerate().rev() {
                    let bytes = archive.read_member(index, GIB).unwrap();
                    assert_eq!(crc32fast::hash(&bytes), member.crc32.unwrap());
                }
            });
        }
    });
}

// --- bad input, each with its message ---

fn message(result: Result<impl std::fmt::Debug, ArchiveError>) -> String {
    result.expect_err("an error").to_string()
}

#[test]
fn truncated_archives() {
    need!("zip", "7z", "gzip");
    let dir = roms_dir();
    run(
        dir.path(),
        "zip",
        &["-q", "t.zip", "Game.smc", "readme.txt"],
    );
    run(
        dir.path(),
        "7z",
        &["a", "-bd", "t.7z", "Game.smc", "readme.txt"],
    );
    run(dir.path(), "gzip", &["-k", "Game.smc"]);
    let cut = |name: &str, keep: fn(usize) -> usize| {
        let bytes = std::fs::read(dir.path().join(name)).unwrap();
        let new_name = format!("cut-{name}");
        write_temp(dir.path(), &new_name, &bytes[..keep(bytes.len())])
    };
    let zip_end = "the archive is damaged: its list of members is not where a zip file keeps it, at its end (cut short?)";
    assert_eq!(message(open(&cut("t.zip", |n| n / 2))), zip_end);
    let cut_short = "the archive is damaged: it ends before its list of members does (cut short?)";
    assert_eq!(message(open(&cut("t.zip", |n| n - 1))), cut_short);
    let sevenz_end = cut_short;
    assert_eq!(message(open(&cut("t.7z", |n| n / 2))), sevenz_end);
    assert_eq!(message(open(&cut("t.7z", |n| n - 1))), sevenz_end);
    assert_eq!(message(open(&cut("t.7z", |_| 20))), sevenz_end);
    // A gzip file's trailer is its last 8 bytes: cut, they are data.
    let gz = cut("Game.smc.gz", |n| n / 2);
    let len = std::fs::metadata(&gz).unwrap().len();
    let stated = u32::from_le_bytes(
        std::fs::read(&gz).unwrap()[len as usize - 4..]
            .try_into()
            .unwrap(),
    );
    assert_eq!(
        message(open(&gz)),
        format!(
            "the archive is damaged: its trailer states {stated} bytes, more than its {} bytes of data can hold (cut short?)",
            len - 18
        )
    );
    // Cut in the middle, its trailer kept: the data runs out.
    let whole = std::fs::read(dir.path().join("Game.smc.gz")).unwrap();
    let middle = [&whole[..whole.len() / 2], &whole[whole.len() - 8..]].concat();
    let gz = open(&write_temp(dir.path(), "middle-Game.smc.gz", &middle)).unwrap();
    assert_eq!(gz.members()[0].name, "middle-Game.smc");
    let error = message(gz.read_member(0, GIB));
    assert!(
        error.starts_with("the archive is damaged: member middle-Game.smc: "),
        "{error}"
    );
    assert_eq!(
        message(open(&cut("Game.smc.gz", |_| 10))),
        "the archive is damaged: it is too short to be a gzip file (cut short?)"
    );
}

#[test]
fn corrupt_archives() {
    need!("zip", "7z");
    let dir = roms_dir();
    run(dir.path(), "zip", &["-q", "t.zip", "Game.smc"]);
    run(
        dir.path(),
        "7z",
        &["a", "-bd", "-m0=LZMA2", "t.7z", "Game.smc"],
    );
    let flipped = |name: &str, at: fn(usize) -> usize| {
        let mut bytes = std::fs::read(dir.path().join(name)).unwrap();
        let at = at(bytes.len());
        bytes[at] ^= 0xFF;
        write_temp(dir.path(), &format!("flip-{name}"), &bytes)
    };
    // Deflate data that decodes to something else: never wrong bytes.
    let zip = open(&flipped("t.zip", |n| n / 2)).unwrap();
    let error = zip.read_member(0, GIB).unwrap_err();
    assert!(
        matches!(
            error,
            ArchiveError::Crc { .. }
                | ArchiveError::DamagedMember { .. }
                | ArchiveError::Expands { .. }
                | ArchiveError::Size { .. }
        ),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .starts_with("the archive is damaged: member Game.smc")
    );
    // The zip's list of members, damaged.
    let zip = open(&flipped("t.zip", |n| n - 30));
    if let Err(error) = zip {
        assert!(
            error.to_string().starts_with("the archive is damaged: "),
            "{error}"
        );
    }
    let sevenz = open(&flipped("t.7z", |n| n / 2)).unwrap();
    let error = sevenz.read_member(0, GIB).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("the archive is damaged: member Game.smc"),
        "{error}"
    );
    // The 7z list of members is checked by its CRC.
    assert_eq!(
        message(open(&flipped("t.7z", |n| n - 5))),
        "the archive is damaged: its list of members cannot be read (its list of members fails its CRC)"
    );
}

/// Where `needle` starts in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the bytes are in the archive")
}

#[test]
fn a_stored_member_that_fails_its_crc() {
    need!("zip", "7z", "gzip");
    let dir = roms_dir();
    run(
        dir.path(),
        "zip",
        &["-q", "-0", "s.zip", "Game.smc", "readme.txt"],
    );
    run(
        dir.path(),
        "7z",
        &["a", "-bd", "-m0=Copy", "s.7z", "Game.smc", "readme.txt"],
    );
    let game = rom("Game.smc");
    for name in ["s.zip", "s.7z"] {
        let mut bytes = std::fs::read(dir.path().join(name)).unwrap();
        let at = find(&bytes, &game[0x1000..0x1040]) + 0x20;
        bytes[at] ^= 0x01;
        let archive = open(&write_temp(dir.path(), &format!("bad-{name}"), &bytes)).unwrap();
        let index = archive
            .members()
            .iter()
            .position(|m| m.name == "Game.smc")
            .unwrap();
        assert_eq!(
            message(archive.read_member(index, GIB)),
            "the archive is damaged: member Game.smc fails its CRC",
            "{name}"
        );
        // A prefix that stops before the damage reads; the other member too.
        assert_eq!(archive.read_prefix(index, 0x100).unwrap(), game[..0x100]);
        let readme = 1 - index;
        assert_eq!(archive.read_member(readme, GIB).unwrap(), b"Not a ROM.\n");
    }
    // gzip: a trailer whose CRC32 is not the data's.
    run(dir.path(), "gzip", &["-k", "Game.smc"]);
    let mut bytes = std::fs::read(dir.path().join("Game.smc.gz")).unwrap();
    let at = bytes.len() - 8;
    bytes[at] ^= 0x01;
    let archive = open(&write_temp(dir.path(), "bad.smc.gz", &bytes)).unwrap();
    assert_eq!(
        message(archive.read_member(0, GIB)),
        "the archive is damaged: member bad.smc fails its CRC"
    );
}

#[test]
fn encrypted_members() {
    need!("zip", "7z");
    let dir = roms_dir();
    run(
        dir.path(),
        "zip",
        &["-q", "-P", "secret", "z.zip", "Game.smc", "readme.txt"],
    );
    run(
        dir.path(),
        "7z",
        &["a", "-bd", "-psecret", "s.7z", "Game.smc", "readme.txt"],
    );
    run(
        dir.path(),
        "7z",
        &[
            "a",
            "-bd",
            "-tzip",
            "-psecret",
            "-mem=AES256",
            "aes.zip",
            "Game.smc",
        ],
    );
    for name in ["z.zip", "s.7z", "aes.zip"] {
        let archive = open(&dir.path().join(name)).unwrap();
        let index = archive
            .members()
            .iter()
            .position(|m| m.name == "Game.smc")
            .unwrap();
        assert_eq!(
            archive.members()[index].problem.as_deref(),
            Some("encrypted: not supported"),
            "{name}"
        );
        assert_eq!(
            message(archive.read_member(index, GIB)),
            "member Game.smc is encrypted: not supported"
        );
        assert_eq!(
            message(archive.read_prefix(index, 16)),
            "member Game.smc is encrypted: not supported"
        );
        assert!(archive.read_prefixes(&|_| 16)[index].is_err());
    }
    // Encrypted names too: nothing can be listed.
    run(
        dir.path(),
        "7z",
        &["a", "-bd", "-psecret", "-mhe=on", "h.7z", "Game.smc"],
    );
    assert_eq!(
        message(open(&dir.path().join("h.7z"))),
        "the archive is encrypted, its list of members too: not supported"
    );
}

#[test]
fn hostile_names_are_sanitized() {
    let dir = tempfile::tempdir().unwrap();
    let stored = CompressionMethod::Stored;
    let bytes = crate_zip(&[
        ("../evil.sfc", stored, b"1"),
        ("/abs.sfc", stored, b"2"),
        ("a\\b.sfc", stored, b"3"),
        ("a/b.sfc", stored, b"4"),
        ("nul\0byte.sfc", stored, b"5"),
        ("dir/../../evil.sfc", stored, b"6"),
        ("con\x1b[31mtrol.sfc", stored, b"7"),
        ("..", stored, b"8"),
        ("folder", stored, b"9"),
        ("folder/inside.sfc", stored, b"10"),
    ]);
    let archive = open(&write_temp(dir.path(), "hostile.zip", &bytes)).unwrap();
    let names: Vec<&str> = archive.members().iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "evil.sfc",
            "abs.sfc",
            "a/b.sfc",
            "a/b (2).sfc",
            "nul_byte.sfc",
            "evil (2).sfc",
            "con_[31mtrol.sfc",
            "unnamed",
            "folder (2)",
            "folder/inside.sfc",
        ]
    );
    let contents: Vec<Vec<u8>> = (0..names.len())
        .map(|i| archive.read_member(i, GIB).unwrap())
        .collect();
    assert_eq!(contents[3], b"4");
    assert_eq!(contents[9], b"10");
}

#[test]
fn two_entries_with_one_name_list_once() {
    // The zip crate keeps one entry per raw name (the last one's data in
    // the first one's place), as unzip tools extract them.
    let dir = tempfile::tempdir().unwrap();
    let stored = CompressionMethod::Stored;
    let mut bytes = crate_zip(&[("aa.sfc", stored, b"first"), ("ab.sfc", stored, b"second")]);
    while let Some(at) = bytes.windows(6).position(|w| w == b"ab.sfc") {
        bytes[at + 1] = b'a';
    }
    let archive = open(&write_temp(dir.path(), "dup.zip", &bytes)).unwrap();
    assert_eq!(archive.members().len(), 1);
    assert_eq!(archive.members()[0].name, "aa.sfc");
    assert_eq!(archive.read_member(0, GIB).unwrap(), b"second");
}

/// Offsets of the stated uncompressed size of the only member of a zip:
/// in its local header and in its central directory entry.
fn size_fields(zip: &[u8]) -> [usize; 2] {
    [find(zip, b"PK\x03\x04") + 22, find(zip, b"PK\x01\x02") + 24]
}

#[test]
fn zip_bombs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let zeros = vec![0u8; 16 << 20];
    let honest = crate_zip(&[("zeros.bin", CompressionMethod::Deflated, &zeros)]);
    assert!(honest.len() < 100_000);

    // Claims 1,000 bytes, expands to 16 MiB: stopped past the 1,000.
    let mut small = honest.clone();
    for at in size_fields(&small) {
        small[at..at + 4].copy_from_slice(&1000u32.to_le_bytes());
    }
    let archive = open(&write_temp(dir.path(), "small.zip", &small)).unwrap();
    assert_eq!(archive.members()[0].size, 1000);
    assert_eq!(
        message(archive.read_member(0, GIB)),
        "the archive is damaged: member zeros.bin expands past the 1000 bytes its archive states"
    );
    assert_eq!(archive.read_prefix(0, 100).unwrap(), [0u8; 100]);
    // A prefix as long as the member is the whole member: checked so too.
    assert_eq!(
        message(archive.read_prefix(0, 1 << 20)),
        "the archive is damaged: member zeros.bin expands past the 1000 bytes its archive states"
    );

    // Claims 2 GiB: refused before anything is allocated or read.
    let mut large = honest.clone();
    for at in size_fields(&large) {
        large[at..at + 4].copy_from_slice(&0x7FFF_FFF0u32.to_le_bytes());
    }
    let archive = open(&write_temp(dir.path(), "large.zip", &large)).unwrap();
    assert_eq!(
        message(archive.read_member(0, GIB)),
        "member zeros.bin is larger (2147483632 bytes) than the largest image allowed (1073741824 bytes)"
    );
    // An honest member over the limit given.
    let archive = open(&write_temp(dir.path(), "honest.zip", &honest)).unwrap();
    assert_eq!(
        message(archive.read_member(0, 1 << 20)),
        "member zeros.bin is larger (16777216 bytes) than the largest image allowed (1048576 bytes)"
    );
    assert_eq!(archive.read_member(0, 16 << 20).unwrap().len(), 16 << 20);
}

#[test]
fn a_gzip_bomb_is_stopped_at_its_stated_size() {
    need!("gzip");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("zeros.bin"), vec![0u8; 8 << 20]).unwrap();
    run(dir.path(), "gzip", &["zeros.bin"]);
    let path = dir.path().join("zeros.bin.gz");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 4;
    bytes[at..].copy_from_slice(&4096u32.to_le_bytes());
    let archive = open(&write_temp(dir.path(), "zeros.bin.gz", &bytes)).unwrap();
    assert_eq!(archive.members()[0].size, 4096);
    assert_eq!(
        message(archive.read_member(0, GIB)),
        "the archive is damaged: member zeros.bin expands past the 4096 bytes its archive states"
    );
}

#[test]
fn a_7z_dictionary_larger_than_allowed_is_refused() {
    need!("7z");
    let dir = roms_dir();
    run(
        dir.path(),
        "7z",
        &["a", "-bd", "-m0=LZMA", "-mhc=off", "d.7z", "hello.lnx"],
    );
    let mut bytes = std::fs::read(dir.path().join("d.7z")).unwrap();
    // The LZMA coder's properties in the (uncompressed) list of members:
    // flags 0x23, method 03 01 01, 5 bytes of properties whose last four
    // are the dictionary size. Made 1 GiB, both CRCs made again.
    let at = find(&bytes[32..], &[0x23, 0x03, 0x01, 0x01, 0x05]) + 32 + 6;
    bytes[at..at + 4].copy_from_slice(&(1u32 << 30).to_le_bytes());
    let word = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize;
    let (offset, size) = (word(&bytes, 12), word(&bytes, 20));
    let header_crc = crc32fast::hash(&bytes[32 + offset..32 + offset + size]);
    bytes[28..32].copy_from_slice(&header_crc.to_le_bytes());
    let start_crc = crc32fast::hash(&bytes[12..32]);
    bytes[8..12].copy_from_slice(&start_crc.to_le_bytes());
    let archive = open(&write_temp(dir.path(), "big-dict.7z", &bytes)).unwrap();
    assert_eq!(
        message(archive.read_member(0, GIB)),
        "member hello.lnx needs 1025 MiB of memory to decompress, more than the 256 MiB allowed"
    );
    let prefixes = archive.read_prefixes(&|_| 10);
    assert_eq!(
        message(prefixes[0].clone()),
        "member hello.lnx needs 1025 MiB of memory to decompress, more than the 256 MiB allowed"
    );
}

#[test]
fn archives_inside_archives_are_not_opened() {
    need!("zip", "7z");
    let dir = roms_dir();
    run(dir.path(), "zip", &["-q", "inner.zip", "Game.smc"]);
    run(dir.path(), "7z", &["a", "-bd", "inner.7z", "hello.lnx"]);
    run(
        dir.path(),
        "zip",
        &["-q", "outer.zip", "inner.zip", "inner.7z", "mbc1.gb"],
    );
    run(
        dir.path(),
        "7z",
        &["a", "-bd", "outer.7z", "inner.zip", "mbc1.gb"],
    );
    for name in ["outer.zip", "outer.7z"] {
        let archive = open(&dir.path().join(name)).unwrap();
        for member in archive.members() {
            let expected = member
                .name
                .starts_with("inner.")
                .then_some("an archive inside an archive: not opened");
            assert_eq!(member.problem.as_deref(), expected, "{}", member.name);
        }
        // Listed and readable as bytes, never descended into.
        let inner = archive
            .members()
            .iter()
            .position(|m| m.name == "inner.zip")
            .unwrap();
        let bytes = archive.read_member(inner, GIB).unwrap();
        assert!(bytes.starts_with(b"PK\x03\x04"));
    }
}

#[test]
fn a_hundred_thousand_members() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    for i in 0..100_000u32 {
        writer
            .start_file(format!("d{}/f{i}.bin", i / 1000), options)
            .unwrap();
        writer.write_all(&[(i % 251) as u8]).unwrap();
    }
    let bytes = writer.finish().unwrap().into_inner();
    let archive = open(&write_temp(dir.path(), "many.zip", &bytes)).unwrap();
    assert_eq!(archive.members().len(), 100_000);
    assert_eq!(archive.members()[99_999].name, "d99/f99999.bin");
    assert_eq!(
        archive.read_member(99_999, 10).unwrap(),
        [(99_999 % 251) as u8]
    );
    assert_eq!(
        archive.read_prefix(12_345, 10).unwrap(),
        [(12_345 % 251) as u8]
    );
}

#[test]
fn links_and_empty_zips() {
    need!("zip");
    let dir = roms_dir();
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link.sfc")).unwrap();
    run(
        dir.path(),
        "zip",
        &["-q", "-y", "links.zip", "link.sfc", "hello.lnx"],
    );
    let archive = open(&dir.path().join("links.zip")).unwrap();
    assert_eq!(archive.members()[0].name, "link.sfc");
    assert_eq!(
        archive.members()[0].problem.as_deref(),
        Some("a symbolic link: not supported")
    );
    assert_eq!(
        message(archive.read_member(0, GIB)),
        "member link.sfc is a symbolic link: not supported"
    );
    assert!(archive.read_member(1, GIB).unwrap() == rom("hello.lnx"));
    // An empty zip is its end record alone.
    let empty = crate_zip(&[]);
    assert!(empty.starts_with(b"PK\x05\x06"));
    let archive = open(&write_temp(dir.path(), "empty.zip", &empty)).unwrap();
    assert!(archive.members().is_empty());
    assert!(archive.read_prefixes(&|_| 10).is_empty());
}

#[test]
fn rar_is_recognised_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    for magic in [
        &b"Rar!\x1A\x07\x00rest"[..],
        &b"Rar!\x1A\x07\x01\x00rest"[..],
    ] {
        assert_eq!(archive::kind_of(magic), Some(ArchiveKind::Rar));
        let path = write_temp(dir.path(), "x.rar", magic);
        assert_eq!(
            message(Archive::open(
                File::open(&path).unwrap(),
                "x.rar",
                ArchiveKind::Rar
            )),
            "RAR archives are not supported; extract it"
        );
    }
    assert!(archive::is_archive_name("Game (USA).RAR"));
}

#[test]
fn member_numbers_past_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = crate_zip(&[("a.sfc", CompressionMethod::Stored, b"a")]);
    let archive = open(&write_temp(dir.path(), "a.zip", &bytes)).unwrap();
    assert_eq!(
        message(archive.read_member(1, GIB)),
        "the archive has no member number 1"
    );
    assert!(archive.read_prefix(usize::MAX, 1).is_err());
}

// --- nothing panics on any input ---

/// Real archives to damage: a zip (deflate) and, where the tools are
/// installed, a solid 7z and a gzip file.
fn corpus() -> &'static [(String, Vec<u8>)] {
    static CORPUS: std::sync::OnceLock<Vec<(String, Vec<u8>)>> = std::sync::OnceLock::new();
    CORPUS.get_or_init(|| {
        let small = read_fixture("roms/lynx/cc65_tgi_hello.lnx");
        let mut corpus = vec![(
            "c.zip".to_string(),
            crate_zip(&[
                ("hello.lnx", CompressionMethod::Deflated, &small),
                ("again.lnx", CompressionMethod::Bzip2, &small),
            ]),
        )];
        let dir = roms_dir();
        if have("7z") {
            run(
                dir.path(),
                "7z",
                &["a", "-bd", "-ms=on", "c.7z", "hello.lnx", "readme.txt"],
            );
            corpus.push((
                "c.7z".into(),
                std::fs::read(dir.path().join("c.7z")).unwrap(),
            ));
        }
        if have("gzip") {
            run(dir.path(), "gzip", &["-k", "hello.lnx"]);
            let gz = std::fs::read(dir.path().join("hello.lnx.gz")).unwrap();
            corpus.push(("hello.lnx.gz".into(), gz));
        }
        corpus
    })
}

/// Opens `bytes` as `kind` and reads every member every way.
fn read_everything(bytes: &[u8], name: &str, kind: ArchiveKind) {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(bytes).unwrap();
    if let Ok(archive) = Archive::open(file, name, kind) {
        let _ = archive.read_prefixes(&|_| 64);
        for index in 0..archive.members().len().min(8) {
            let _ = archive.read_prefix(index, 64);
            let _ = archive.read_member(index, 1 << 20);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(
        kind in prop_oneof![
            Just((ArchiveKind::Zip, &b"PK\x03\x04"[..])),
            Just((ArchiveKind::Zip, &b"PK\x05\x06"[..])),
            Just((ArchiveKind::SevenZip, &b"7z\xBC\xAF\x27\x1C\x00\x04"[..])),
            Just((ArchiveKind::Gzip, &b"\x1F\x8B\x08"[..])),
            Just((ArchiveKind::Rar, &b"Rar!\x1A\x07\x00"[..])),
        ],
        tail in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let (kind, magic) = kind;
        let bytes = [magic, &tail].concat();
        read_everything(&bytes, "x.bin.gz", kind);
    }

    #[test]
    fn damaged_real_archives_never_panic(
        which in 0usize..3,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let corpus = corpus();
        let (name, original) = &corpus[which % corpus.len()];
        let mut bytes = original.clone();
        for (at, xor) in flips {
            let at = at.index(bytes.len());
            bytes[at] ^= xor;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        let kind = archive::kind_of(original).unwrap();
        read_everything(&bytes, name, kind);
    }

    #[test]
    fn sanitized_names_are_safe_relative_paths(raw in ".{0,80}") {
        let name = archive::sanitize_name(&raw);
        prop_assert!(!name.is_empty());
        prop_assert!(!name.starts_with('/'));
        prop_assert!(!name.contains('\\'));
        prop_assert!(!name.chars().any(char::is_control));
        for part in name.split('/') {
            prop_assert!(!part.is_empty() && part != "." && part != "..", "{name:?}");
            prop_assert!(part.len() <= 255);
        }
        let path = Path::new(&name);
        prop_assert!(path.components().all(|c| matches!(c, std::path::Component::Normal(_))));
        // Sanitizing is idempotent: a safe name stays as it is.
        prop_assert_eq!(archive::sanitize_name(&name), name);
    }

    #[test]
    fn names_with_separators_and_dots_stay_inside(
        parts in proptest::collection::vec(
            prop_oneof![Just("..".to_string()), Just(".".to_string()), Just(String::new()), "[a-z\\\\]{1,4}"],
            0..8,
        ),
        slash in prop_oneof![Just("/"), Just("\\")],
    ) {
        let raw = parts.join(slash);
        let name = archive::sanitize_name(&raw);
        prop_assert!(Path::new(&name).components().all(|c| matches!(c, std::path::Component::Normal(_))));
    }
}

// --- the command line ---

/// `Game.7z` (the SNES ROM and a readme), `Hack.zip` (its BPS and a
/// readme), `Multi.zip` (two ROMs), made in a temporary folder.
fn cli_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("roms/snes/cputest-basic.smc"),
        dir.path().join("Game.smc"),
    )
    .unwrap();
    std::fs::copy(
        fixture("roms/nes/nes15-NTSC.nes"),
        dir.path().join("Other.nes"),
    )
    .unwrap();
    std::fs::copy(
        fixture("patches/snes_cputest_basic2full.flips-delta.bps"),
        dir.path().join("Hack.bps"),
    )
    .unwrap();
    std::fs::copy(
        fixture("roms/snes/cputest-full.sfc"),
        dir.path().join("Full.sfc"),
    )
    .unwrap();
    std::fs::write(dir.path().join("readme.txt"), "CRC32: 12345678\n").unwrap();
    run(
        dir.path(),
        "7z",
        &["a", "-bd", "Game.7z", "Game.smc", "readme.txt"],
    );
    run(
        dir.path(),
        "zip",
        &["-q", "Game.zip", "Game.smc", "readme.txt"],
    );
    run(
        dir.path(),
        "zip",
        &["-q", "Hack.zip", "Hack.bps", "readme.txt"],
    );
    run(dir.path(), "zip", &["-q", "Full.zip", "Full.sfc"]);
    run(
        dir.path(),
        "zip",
        &["-q", "Multi.zip", "Game.smc", "Other.nes", "readme.txt"],
    );
    dir
}

fn stdout_of(cmd: &mut assert_cmd::Command) -> Vec<u8> {
    cmd.assert().success().get_output().stdout.clone()
}

#[test]
fn info_shows_the_rom_inside() {
    need!("zip", "7z");
    let dir = cli_dir();
    let out = stdout_of(ninja().current_dir(dir.path()).args(["info", "Game.zip"]));
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("Game.zip//Game.smc\n"), "{text}");
    assert!(text.contains("snes (Super NES / Super Famicom)"), "{text}");
    let out = stdout_of(
        ninja()
            .current_dir(dir.path())
            .args(["info", "--json", "Hack.zip"]),
    );
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json[0]["file"], "Hack.zip//Hack.bps");
    assert_eq!(json[0]["patch"]["format"], "BPS");
}

#[test]
fn info_lists_an_archive_of_several() {
    need!("zip");
    let dir = cli_dir();
    let out = stdout_of(ninja().current_dir(dir.path()).args(["info", "Multi.zip"]));
    let text = String::from_utf8(out).unwrap();
    let crc = |bytes: &[u8]| format!("{:08x}", crc32fast::hash(bytes));
    let expected = format!(
        "Multi.zip
  archive  zip, 3 members: 2 ROMs, 0 patches
  name one as Multi.zip//MEMBER to read it
  Game.smc    262656 bytes  crc32 {}  ROM
  Other.nes    28688 bytes  crc32 {}  ROM
  readme.txt      16 bytes  crc32 {}
",
        crc(&read_fixture("roms/snes/cputest-basic.smc")),
        crc(&read_fixture("roms/nes/nes15-NTSC.nes")),
        crc(b"CRC32: 12345678\n"),
    );
    assert_eq!(text, expected);
    let out = stdout_of(
        ninja()
            .current_dir(dir.path())
            .args(["info", "--json", "Multi.zip"]),
    );
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json[0]["archive"]["format"], "zip");
    assert_eq!(json[0]["archive"]["members"][1]["name"], "Other.nes");
    assert_eq!(json[0]["archive"]["members"][1]["kind"], "rom");
    assert_eq!(
        json[0]["archive"]["members"][2]["kind"],
        serde_json::Value::Null
    );
    assert_eq!(json[0]["archive"]["members"][0]["size"], 262656);
}

#[test]
fn apply_takes_archives_as_loose_files() {
    need!("zip", "7z");
    let dir = cli_dir();
    let loose = stdout_of(
        ninja()
            .current_dir(dir.path())
            .args(["apply", "Game.smc", "Hack.bps", "-o", "-"]),
    );
    assert!(loose == read_fixture("roms/snes/cputest-full.sfc"));
    ninja()
        .current_dir(dir.path())
        .args(["apply", "Game.7z", "Hack.zip", "-o", "out.sfc"])
        .assert()
        .success();
    assert!(std::fs::read(dir.path().join("out.sfc")).unwrap() == loose);
    let named = stdout_of(ninja().current_dir(dir.path()).args([
        "apply",
        "Multi.zip//Game.smc",
        "Hack.zip//Hack.bps",
        "-o",
        "-",
    ]));
    assert!(named == loose);
}

#[test]
fn normalize_one_member_by_name() {
    need!("zip", "gzip");
    let dir = cli_dir();
    let out = stdout_of(ninja().current_dir(dir.path()).args([
        "normalize",
        "Multi.zip//Game.smc",
        "-o",
        "-",
    ]));
    assert!(out == read_fixture("roms/snes/cputest-basic.sfc"));
    run(dir.path(), "gzip", &["-k", "Game.smc"]);
    let out =
        stdout_of(
            ninja()
                .current_dir(dir.path())
                .args(["deinterleave", "Game.smc.gz", "-o", "-"]),
        );
    assert!(out == read_fixture("roms/snes/cputest-basic.sfc"));
}

#[test]
fn create_takes_archives() {
    need!("zip", "7z");
    let dir = cli_dir();
    ninja()
        .current_dir(dir.path())
        .args(["create", "Game.7z", "Full.zip", "-o", "made.bps"])
        .assert()
        .success();
    let out = stdout_of(
        ninja()
            .current_dir(dir.path())
            .args(["apply", "Game.smc", "made.bps", "-o", "-"]),
    );
    assert!(out == read_fixture("roms/snes/cputest-full.sfc"));
}

#[test]
fn an_archive_of_several_roms_is_refused_with_its_list() {
    need!("zip");
    let dir = cli_dir();
    let err = stderr_of(ninja().current_dir(dir.path()).args([
        "normalize",
        "Multi.zip",
        "-o",
        "out.sfc",
    ]));
    assert_eq!(
        err,
        "ninja-fs: Multi.zip: holds 2 ROMs; name one as Multi.zip//MEMBER:\n  Game.smc\n  Other.nes\n"
    );
    assert!(!dir.path().join("out.sfc").exists());
    let err = stderr_of(ninja().current_dir(dir.path()).args([
        "apply",
        "Game.smc",
        "Multi.zip",
        "-o",
        "out.sfc",
    ]));
    assert_eq!(
        err,
        "ninja-fs: Multi.zip: holds no patch; its members:\n  Game.smc\n  Other.nes\n  readme.txt\n"
    );
    let err = stderr_of(ninja().current_dir(dir.path()).args([
        "normalize",
        "Multi.zip//Missing.sfc",
        "-o",
        "out.sfc",
    ]));
    assert_eq!(
        err,
        "ninja-fs: Multi.zip: has no member Missing.sfc; its members:\n  Game.smc\n  Other.nes\n  readme.txt\n"
    );
}

#[test]
fn the_archive_of_an_input_is_never_the_output() {
    need!("zip");
    let dir = cli_dir();
    let err = stderr_of(ninja().current_dir(dir.path()).args([
        "normalize",
        "Multi.zip//Game.smc",
        "-o",
        "Multi.zip",
        "--force",
    ]));
    assert_eq!(
        err,
        "ninja-fs: Multi.zip: is also an input; write the output somewhere else\n"
    );
}

#[test]
fn an_encrypted_rom_says_so() {
    need!("zip");
    let dir = cli_dir();
    run(
        dir.path(),
        "zip",
        &["-q", "-P", "secret", "Locked.zip", "Game.smc"],
    );
    let err = stderr_of(ninja().current_dir(dir.path()).args([
        "normalize",
        "Locked.zip",
        "-o",
        "out.sfc",
    ]));
    assert_eq!(
        err,
        "ninja-fs: Locked.zip: member Game.smc is encrypted: not supported\n"
    );
}
