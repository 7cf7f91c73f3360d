//! DAT verification through the command line (`info --dat`), the views
//! (`verified/`, `info/`) without a mount, and a real mount. The DATs are
//! written here from the fixture ROMs' own digests (no No-Intro or Redump
//! DAT is in the repository), in both formats.

mod common;
mod mount_support;

use std::path::Path;

use common::{fixture, fs_with_dats, lookup, names, ninja, read_all, read_fixture, stdout_of};
use ninja_fs::apply::ImageLayout;
use ninja_fs::dat::{self, Dat, DatRom, DatSet};
use ninja_fs::digest::Digests;
use ninja_fs::system;
use ninja_fs::vfs::FsError;
use ninja_fs::views::NinjaFs;

/// The digests of one image of a fixture ROM.
fn image_of(rel: &str, layout: ImageLayout) -> (u64, Digests) {
    let raw = read_fixture(rel);
    let name = Path::new(rel).file_name().unwrap().to_str().unwrap();
    let detected = system::identify(Some(name), &raw, None).unwrap();
    let images = dat::image_digests(&raw, &detected).unwrap();
    let (_, size, digests) = images.into_iter().find(|(l, ..)| *l == layout).unwrap();
    (size, digests)
}

/// A DAT of one game per entry: (game and rom name, size, digests).
fn dat_of(name: &str, skipper: Option<&str>, entries: &[(&str, u64, Digests)]) -> Dat {
    let mut dat = Dat::new(&format!("{name}.dat"), name);
    dat.version = Some("20260101".into());
    dat.skipper = skipper.map(String::from);
    for (rom_name, size, digests) in entries {
        let game = rom_name.rsplit_once('.').map_or(*rom_name, |(s, _)| s);
        let rom = DatRom {
            name: rom_name.to_string(),
            size: *size,
            crc32: Some(digests.crc32),
            md5: Some(digests.md5),
            sha1: Some(digests.sha1),
        };
        dat.add_game(game, &[rom]).unwrap();
    }
    dat
}

const SNES_DAT: &str = "Nintendo - Super Nintendo Entertainment System";

/// The SNES DAT: the headerless image of cputest-basic (what its .smc,
/// .swc... normalize to) and of the interleaved HiROM, and one entry the
/// library lacks.
fn snes_dat() -> Dat {
    let (size, basic) = image_of("roms/snes/cputest-basic.sfc", ImageLayout::Raw);
    let (hi_size, hirom) = image_of(
        "rup-vectors/snes_hirom20.input_interleaved.sfc",
        ImageLayout::Normalized,
    );
    dat_of(
        SNES_DAT,
        None,
        &[
            ("CPU Test (World).sfc", size, basic),
            ("HiROM Test (Japan).sfc", hi_size, hirom),
            ("Missing Game (USA).sfc", 12, Digests::of(b"not in here")),
        ],
    )
}

fn write_dats(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("snes.xml"), dat::logiqx::write(&snes_dat())).unwrap();
    let (size, n64) = image_of("roms/n64/bigbass1997_minimal.z64", ImageLayout::Raw);
    let n64_dat = dat_of(
        "Nintendo - Nintendo 64 (BigEndian)",
        None,
        &[("Minimal/Minimal (World).z64", size, n64)],
    );
    std::fs::write(dir.join("n64.dat"), dat::clrmamepro::write(&n64_dat)).unwrap();
    // The iNES ROM: a headered DAT hashes the whole iNES file, a DAT
    // with the nes.xml skipper its headerless image.
    let (size, headered) = image_of("roms/nes/cc65_hello.nes", ImageLayout::Raw);
    let nes = dat_of(
        "Nintendo - NES (Headered)",
        None,
        &[("Hello (World).nes", size, headered)],
    );
    std::fs::write(dir.join("nes-headered.xml"), dat::logiqx::write(&nes)).unwrap();
    let (size, headerless) = image_of("roms/nes/cc65_hello.nes", ImageLayout::Normalized);
    let nes = dat_of(
        "Nintendo - NES (Headerless)",
        Some("nes.xml"),
        &[("Hello (World).nes", size, headerless)],
    );
    std::fs::write(dir.join("nes-headerless.dat"), dat::clrmamepro::write(&nes)).unwrap();
}

/// A DAT whose entry has the PC Engine ROM's size and CRC32 but another
/// SHA-1.
fn altered_dat(path: &Path) {
    let (size, mut digests) = image_of("roms/pce/cc65_hello.pce", ImageLayout::Raw);
    digests.sha1[0] ^= 0xFF;
    let dat = dat_of(
        "NEC - PC Engine",
        None,
        &[("Hello (Japan).pce", size, digests)],
    );
    std::fs::write(path, dat::logiqx::write(&dat)).unwrap();
}

/// What `ninja-fs info` prints of the fixture `rom` checked against `dat`.
fn info_with_dat(rom: &str, dat: &Path) -> String {
    stdout_of(ninja().arg("info").arg(fixture(rom)).arg("--dat").arg(dat))
}

#[test]
fn info_names_the_dat_game_rom_image_and_hash() {
    let dir = tempfile::tempdir().unwrap();
    write_dats(dir.path());
    let text = info_with_dat("roms/snes/cputest-basic.smc", dir.path());
    assert!(
        text.contains(&format!(
            "\nDAT\n  {SNES_DAT} (version 20260101): game 'CPU Test (World)', rom 'CPU Test (World).sfc'\n    the normalized image matches by size and SHA-1\n"
        )),
        "{text}"
    );
    let text = info_with_dat(
        "roms/n64/bigbass1997_minimal.v64",
        &dir.path().join("n64.dat"),
    );
    assert!(
        text.contains(
            "rom 'Minimal/Minimal (World).z64'\n    the normalized image matches by size and SHA-1"
        ),
        "{text}"
    );
    let text = info_with_dat(
        "rup-vectors/snes_hirom20.input_interleaved.sfc",
        &dir.path().join("snes.xml"),
    );
    assert!(
        text.contains(
            "rom 'HiROM Test (Japan).sfc'\n    the normalized image matches by size and SHA-1"
        ),
        "{text}"
    );
    let text = info_with_dat("roms/nes/cc65_hello.nes", dir.path());
    assert!(
        text.contains("Nintendo - NES (Headered) (version 20260101): game 'Hello (World)', rom 'Hello (World).nes'\n    the deinterleaved image matches by size and SHA-1"),
        "{text}"
    );
    assert!(
        text.contains("Nintendo - NES (Headerless) (version 20260101): game 'Hello (World)', rom 'Hello (World).nes'\n    the normalized image matches by size and SHA-1"),
        "{text}"
    );
    let text = info_with_dat("roms/gb/sdcc_makebin.gbc", dir.path());
    assert!(text.ends_with("\nDAT\n  not in any loaded DAT\n"), "{text}");
}

#[test]
fn info_json_has_a_dat_section() {
    let dir = tempfile::tempdir().unwrap();
    write_dats(dir.path());
    let text = stdout_of(
        ninja()
            .arg("info")
            .arg("--json")
            .arg(fixture("roms/snes/cputest-basic.smc"))
            .arg(fixture("roms/gb/sdcc_makebin.gbc"))
            .arg("--dat")
            .arg(dir.path().join("snes.xml")),
    );
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let found = &value[0]["dat"]["matches"][0];
    assert_eq!(found["dat"], SNES_DAT);
    assert_eq!(found["dat_version"], "20260101");
    assert_eq!(found["game"], "CPU Test (World)");
    assert_eq!(found["rom"], "CPU Test (World).sfc");
    assert_eq!(found["image"], "normalized");
    assert_eq!(found["matched_by"], "SHA-1");
    assert_eq!(found["size"], 262_144);
    assert_eq!(value[1]["dat"]["matches"], serde_json::json!([]));
}

#[test]
fn a_crc32_match_with_another_sha1_is_a_bad_dump() {
    let dir = tempfile::tempdir().unwrap();
    altered_dat(&dir.path().join("pce.xml"));
    let text = info_with_dat("roms/pce/cc65_hello.pce", &dir.path().join("pce.xml"));
    assert!(
        text.ends_with(
            "\nDAT\n  NEC - PC Engine: CRC32 matches 'Hello (Japan).pce' but SHA-1 does not: a bad or altered dump\n"
        ),
        "{text}"
    );
}

#[test]
fn bad_dats_are_named_and_the_rest_load() {
    let dir = tempfile::tempdir().unwrap();
    write_dats(dir.path());
    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("unclosed.xml"), "<datafile>\n<game name=\"A\">\n").unwrap();
    std::fs::write(bad.join("empty.dat"), "").unwrap();
    std::fs::write(
        bad.join("hex.dat"),
        "game (\n name \"A\"\n rom ( name \"a\" size 1 crc xyz )\n)\n",
    )
    .unwrap();
    let output = ninja()
        .arg("info")
        .arg(fixture("roms/snes/cputest-basic.sfc"))
        .arg("--dat")
        .arg(dir.path())
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = String::from_utf8(output.stderr).unwrap();
    let shown = bad.display();
    assert!(
        stderr.contains(&format!(
            "ninja-fs: DAT not loaded: {shown}/empty.dat: empty (0 bytes): not a DAT\n"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "ninja-fs: DAT not loaded: {shown}/hex.dat: line 3: the rom 'a' has CRC32 'xyz', not 8 hex digits\n"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "ninja-fs: DAT not loaded: {shown}/unclosed.xml: line 3: the file ends inside <game>: an unclosed tag (cut short?)\n"
        )),
        "{stderr}"
    );
    assert!(
        String::from_utf8(output.stdout)
            .unwrap()
            .contains("rom 'CPU Test (World).sfc'")
    );
    // Only bad DATs: nothing to check against, an error.
    let stderr = common::stderr_of(
        ninja()
            .arg("info")
            .arg(fixture("roms/snes/cputest-basic.sfc"))
            .arg("--dat")
            .arg(&bad),
    );
    assert!(
        stderr.ends_with("ninja-fs: no DAT could be loaded (3 failed; see above)\n"),
        "{stderr}"
    );
}

#[test]
fn dats_load_from_a_zip() {
    let dir = tempfile::tempdir().unwrap();
    write_dats(&dir.path().join("dats"));
    let zip = dir.path().join("dats.zip");
    let made = std::process::Command::new("zip")
        .arg("-qj")
        .arg(&zip)
        .arg(dir.path().join("dats/snes.xml"))
        .arg(dir.path().join("dats/n64.dat"))
        .status();
    if !made.is_ok_and(|s| s.success()) {
        panic!("zip (Debian package zip) is needed: .ci/run installs it");
    }
    let (set, errors) = DatSet::load(std::slice::from_ref(&zip));
    assert!(errors.is_empty(), "{errors:?}");
    let mut names: Vec<&str> = set.dats.iter().map(|d| d.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["Nintendo - Nintendo 64 (BigEndian)", SNES_DAT]);
    assert!(
        set.dats
            .iter()
            .any(|d| d.source == format!("{}//snes.xml", zip.display()))
    );
}

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A backing folder with badly named ROMs the DATs know.
fn backing() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "stuff/x1.smc",
        &read_fixture("roms/snes/cputest-basic.smc"),
    );
    write(
        root,
        "stuff/x1.ips",
        &read_fixture("patches/snes_cputest_basic2full.flips.ips"),
    );
    write(
        root,
        "stuff/hirom.sfc",
        &read_fixture("rup-vectors/snes_hirom20.input_interleaved.sfc"),
    );
    write(
        root,
        "n64/m.v64",
        &read_fixture("roms/n64/bigbass1997_minimal.v64"),
    );
    write(root, "nes/h.nes", &read_fixture("roms/nes/cc65_hello.nes"));
    write(root, "pce/p.pce", &read_fixture("roms/pce/cc65_hello.pce"));
    dir
}

fn normalized(rel: &str) -> Vec<u8> {
    let raw = read_fixture(rel);
    let name = Path::new(rel).file_name().unwrap().to_str().unwrap();
    let layout = system::identify(Some(name), &raw, None).unwrap();
    system::normalize(&raw, &layout).unwrap().into_owned()
}

#[test]
fn verified_view_names_files_as_the_dats_do() {
    let backing = backing();
    let dats = tempfile::tempdir().unwrap();
    write_dats(dats.path());
    altered_dat(&dats.path().join("pce.xml"));
    let fs = fs_with_dats(backing.path(), dats.path());
    assert!(names(&fs, "").contains(&"verified".to_string()));
    assert_eq!(
        names(&fs, "verified"),
        [
            "NEC - PC Engine",
            "NEC - PC Engine.txt",
            "Nintendo - NES (Headered)",
            "Nintendo - NES (Headered).txt",
            "Nintendo - NES (Headerless)",
            "Nintendo - NES (Headerless).txt",
            "Nintendo - Nintendo 64 (BigEndian)",
            "Nintendo - Nintendo 64 (BigEndian).txt",
            SNES_DAT,
            &format!("{SNES_DAT}.txt"),
        ]
    );
    assert_eq!(
        names(&fs, &format!("verified/{SNES_DAT}")),
        [
            "CPU Test (World) [x1].sfc",
            "CPU Test (World).sfc",
            "HiROM Test (Japan).sfc",
        ]
    );
    assert_eq!(
        read_all(&fs, &format!("verified/{SNES_DAT}/CPU Test (World).sfc")),
        read_fixture("roms/snes/cputest-basic.sfc")
    );
    assert_eq!(
        read_all(
            &fs,
            &format!("verified/{SNES_DAT}/CPU Test (World) [x1].sfc")
        ),
        read_fixture("roms/snes/cputest-full.sfc")
    );
    assert_eq!(
        read_all(&fs, &format!("verified/{SNES_DAT}/HiROM Test (Japan).sfc")),
        normalized("rup-vectors/snes_hirom20.input_interleaved.sfc")
    );
    // A DAT rom name with a folder keeps it.
    assert_eq!(
        names(&fs, "verified/Nintendo - Nintendo 64 (BigEndian)"),
        ["Minimal"]
    );
    assert_eq!(
        read_all(
            &fs,
            "verified/Nintendo - Nintendo 64 (BigEndian)/Minimal/Minimal (World).z64"
        ),
        read_fixture("roms/n64/bigbass1997_minimal.z64")
    );
    // The iNES ROM: the headered DAT gets the iNES file, the headerless one
    // its PRG+CHR.
    assert_eq!(
        read_all(&fs, "verified/Nintendo - NES (Headered)/Hello (World).nes"),
        read_fixture("roms/nes/cc65_hello.nes")
    );
    assert_eq!(
        read_all(
            &fs,
            "verified/Nintendo - NES (Headerless)/Hello (World).nes"
        ),
        read_fixture("roms/nes/cc65_hello.nes")[16..]
    );
    // A bad dump is not verified.
    assert!(names(&fs, "verified/NEC - PC Engine").is_empty());
    let report = String::from_utf8(read_all(&fs, &format!("verified/{SNES_DAT}.txt"))).unwrap();
    assert_eq!(
        report,
        format!(
            "{SNES_DAT} (version 20260101)\nfrom {}/snes.xml\n\nhave 2 of 3 ROMs\n\nmissing: 1\n  Missing Game (USA).sfc\n\nfiles matching more than one entry: 0\n\nmatched by CRC32 alone: 0\n\nbad or altered dumps: 0\n",
            dats.path().display()
        )
    );
    let report = String::from_utf8(read_all(&fs, "verified/NEC - PC Engine.txt")).unwrap();
    assert!(
        report.contains("have 0 of 1 ROMs\n\nmissing: 1\n  Hello (Japan).pce\n"),
        "{report}"
    );
    assert!(
        report.contains("bad or altered dumps: 1\n  pce/p.pce: Hello (Japan).pce (its CRC32 matches, its SHA-1 does not)\n"),
        "{report}"
    );
    // info/ gains the DAT section.
    let info = String::from_utf8(read_all(&fs, "info/stuff/x1.smc.txt")).unwrap();
    assert!(
        info.contains(
            "rom 'CPU Test (World).sfc'\n    the normalized image matches by size and SHA-1\n"
        ),
        "{info}"
    );
    assert_eq!(lookup(&fs, "verified/nothing"), Err(FsError::NotFound));
}

#[test]
fn verified_files_carry_the_backing_roms_owner_and_mode() {
    use std::os::unix::fs::PermissionsExt;
    let backing = backing();
    let dats = tempfile::tempdir().unwrap();
    write_dats(dats.path());
    let rom = backing.path().join("stuff/x1.smc");
    std::fs::set_permissions(&rom, std::fs::Permissions::from_mode(0o640)).unwrap();
    let fs = fs_with_dats(backing.path(), dats.path());
    let attributes = lookup(&fs, &format!("verified/{SNES_DAT}/CPU Test (World).sfc")).unwrap();
    assert_eq!(attributes.perm & 0o777, 0o440);
}

#[test]
fn hostile_dat_names_stay_inside_the_view() {
    let backing = backing();
    let dats = tempfile::tempdir().unwrap();
    let (size, basic) = image_of("roms/snes/cputest-basic.sfc", ImageLayout::Raw);
    let dat = dat_of(
        "../..",
        None,
        &[
            ("../../../etc/passwd", size, basic.clone()),
            ("/abs/x\u{1}y.sfc", size, basic.clone()),
            ("v1.0/Game", size, basic),
        ],
    );
    std::fs::write(dats.path().join("evil.xml"), dat::logiqx::write(&dat)).unwrap();
    let fs = fs_with_dats(backing.path(), dats.path());
    assert_eq!(names(&fs, "verified"), [".._..", ".._...txt"]);
    assert_eq!(names(&fs, "verified/.._.."), ["abs", "etc", "v1.0"]);
    assert_eq!(names(&fs, "verified/.._../v1.0"), ["Game", "Game [x1].sfc"]);
    // A name without extension: its patched variant takes the view's.
    assert_eq!(
        names(&fs, "verified/.._../etc"),
        ["passwd", "passwd [x1].sfc"]
    );
    assert_eq!(
        names(&fs, "verified/.._../abs"),
        ["x_y [x1].sfc", "x_y.sfc"]
    );
}

#[test]
fn a_real_mount_shows_verified_files_and_reports() {
    if let Some(reason) = mount_support::fuse_unavailable() {
        eprintln!("skipped: {reason}");
        return;
    }
    let backing = backing();
    let dats = tempfile::tempdir().unwrap();
    write_dats(dats.path());
    let broken = tempfile::tempdir().unwrap();
    std::fs::write(
        broken.path().join("broken.xml"),
        "<datafile>\n<game name=\"A\">\n",
    )
    .unwrap();
    let mnt = tempfile::tempdir().unwrap();
    let (_guard, stderr) = mount_support::mount_with_args(
        backing.path(),
        mnt.path(),
        [
            "--dat".into(),
            broken.path().join("broken.xml").into_os_string(),
            "-o".into(),
            format!("dat={}", dats.path().display()).into(),
        ],
    );
    assert!(
        stderr.contains(
            "broken.xml: line 3: the file ends inside <game>: an unclosed tag (cut short?)"
        ),
        "{stderr}"
    );
    let snes = mnt.path().join("verified").join(SNES_DAT);
    assert_eq!(
        std::fs::read(snes.join("CPU Test (World).sfc")).unwrap(),
        read_fixture("roms/snes/cputest-basic.sfc")
    );
    assert_eq!(
        std::fs::read(snes.join("CPU Test (World) [x1].sfc")).unwrap(),
        read_fixture("roms/snes/cputest-full.sfc")
    );
    assert_eq!(
        std::fs::read(
            mnt.path()
                .join("verified/Nintendo - Nintendo 64 (BigEndian)/Minimal/Minimal (World).z64")
        )
        .unwrap(),
        read_fixture("roms/n64/bigbass1997_minimal.z64")
    );
    assert_eq!(
        std::fs::read(
            mnt.path()
                .join("verified/Nintendo - NES (Headerless)/Hello (World).nes")
        )
        .unwrap(),
        read_fixture("roms/nes/cc65_hello.nes")[16..]
    );
    assert_eq!(
        std::fs::read(
            mnt.path()
                .join("verified/Nintendo - NES (Headered)/Hello (World).nes")
        )
        .unwrap(),
        read_fixture("roms/nes/cc65_hello.nes")
    );
    let hirom = snes.join("HiROM Test (Japan).sfc");
    assert_eq!(
        std::fs::read(&hirom).unwrap(),
        normalized("rup-vectors/snes_hirom20.input_interleaved.sfc")
    );
    assert_eq!(
        std::fs::metadata(&hirom).unwrap().len(),
        normalized("rup-vectors/snes_hirom20.input_interleaved.sfc").len() as u64
    );
    let mut listed: Vec<String> = std::fs::read_dir(mnt.path().join("verified"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    listed.sort();
    assert_eq!(listed.len(), 8, "{listed:?}");
    let report =
        std::fs::read_to_string(mnt.path().join(format!("verified/{SNES_DAT}.txt"))).unwrap();
    assert!(
        report.contains("have 2 of 3 ROMs\n\nmissing: 1\n  Missing Game (USA).sfc\n"),
        "{report}"
    );
}

#[test]
fn the_header_cache_keeps_the_digests_for_the_next_mount() {
    let backing = backing();
    let dats = tempfile::tempdir().unwrap();
    write_dats(dats.path());
    let cache = tempfile::tempdir().unwrap();
    let listing = |fs: &NinjaFs| names(fs, &format!("verified/{SNES_DAT}"));
    let first = fs_with_dats(backing.path(), dats.path());
    first.library().use_header_cache(cache.path());
    let shown = listing(&first);
    assert!(first.library().roms_hashed() > 0);
    first.library().flush_header_cache();
    drop(first);
    let second = fs_with_dats(backing.path(), dats.path());
    second.library().use_header_cache(cache.path());
    assert_eq!(listing(&second), shown);
    assert_eq!(second.library().roms_hashed(), 0, "hashed again");
    assert_eq!(
        read_all(
            &second,
            &format!("verified/{SNES_DAT}/CPU Test (World).sfc")
        ),
        read_fixture("roms/snes/cputest-basic.sfc")
    );
}

/// The fixture ROMs of the systems not in `backing()`: (backing name,
/// fixture).
const OTHER_SYSTEMS: [(&str, &str); 7] = [
    ("gb/a.gb", "roms/gb/mooneye_acceptance_bits_reg_f.gb"),
    ("gb/b.gb", "roms/gb/sdcc_makebin_mbc1.gb"),
    ("gbc/c.gbc", "roms/gb/sdcc_makebin.gbc"),
    ("sms/s.sms", "roms/sms_gg/sdcc_makebin_jp.sms"),
    ("gg/g.gg", "roms/sms_gg/sdcc_makebin_intl.gg"),
    ("lynx/l.lnx", "roms/lynx/cc65_tgi_hello.lnx"),
    ("pce/p.pce", "roms/pce/cc65_hello.pce"),
];

/// DATs for the systems of `OTHER_SYSTEMS`: one per system, the Lynx one
/// twice (headered, and with the lynx.xml skipper).
fn write_other_system_dats(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let image = |rel: &str, layout| image_of(rel, layout);
    let (a_size, a) = image("roms/gb/mooneye_acceptance_bits_reg_f.gb", ImageLayout::Raw);
    let (b_size, b) = image("roms/gb/sdcc_makebin_mbc1.gb", ImageLayout::Raw);
    let gb = dat_of(
        "Nintendo - Game Boy",
        None,
        &[
            ("Bits Reg F (World).gb", a_size, a),
            ("Makebin MBC1 (World).gb", b_size, b),
        ],
    );
    std::fs::write(dir.join("gb.xml"), dat::logiqx::write(&gb)).unwrap();
    let (size, c) = image("roms/gb/sdcc_makebin.gbc", ImageLayout::Raw);
    let gbc = dat_of(
        "Nintendo - Game Boy Color",
        None,
        &[("Makebin (World).gbc", size, c)],
    );
    std::fs::write(dir.join("gbc.dat"), dat::clrmamepro::write(&gbc)).unwrap();
    let (size, s) = image("roms/sms_gg/sdcc_makebin_jp.sms", ImageLayout::Raw);
    let sms = dat_of(
        "Sega - Master System - Mark III",
        None,
        &[("Makebin (Japan).sms", size, s)],
    );
    std::fs::write(dir.join("sms.xml"), dat::logiqx::write(&sms)).unwrap();
    let (size, g) = image("roms/sms_gg/sdcc_makebin_intl.gg", ImageLayout::Raw);
    let gg = dat_of("Sega - Game Gear", None, &[("Makebin (World).gg", size, g)]);
    std::fs::write(dir.join("gg.dat"), dat::clrmamepro::write(&gg)).unwrap();
    let (size, headered) = image("roms/lynx/cc65_tgi_hello.lnx", ImageLayout::Raw);
    let lynx = dat_of(
        "Atari - Lynx (LNX)",
        None,
        &[("TGI Hello (World).lnx", size, headered)],
    );
    std::fs::write(dir.join("lynx-headered.xml"), dat::logiqx::write(&lynx)).unwrap();
    let (size, headerless) = image("roms/lynx/cc65_tgi_hello.lnx", ImageLayout::Normalized);
    let lynx = dat_of(
        "Atari - Lynx (LYX)",
        Some("lynx.xml"),
        &[("TGI Hello (World).lyx", size, headerless)],
    );
    std::fs::write(
        dir.join("lynx-headerless.dat"),
        dat::clrmamepro::write(&lynx),
    )
    .unwrap();
    let (size, p) = image("roms/pce/cc65_hello.pce", ImageLayout::Raw);
    let pce = dat_of(
        "NEC - PC Engine - TurboGrafx-16",
        None,
        &[("Hello (Japan).pce", size, p)],
    );
    std::fs::write(dir.join("pce.xml"), dat::logiqx::write(&pce)).unwrap();
}

#[test]
fn a_real_mount_verifies_every_other_system_in_the_fixtures() {
    if let Some(reason) = mount_support::fuse_unavailable() {
        eprintln!("skipped: {reason}");
        return;
    }
    let backing = tempfile::tempdir().unwrap();
    for (rel, fixture) in OTHER_SYSTEMS {
        write(backing.path(), rel, &read_fixture(fixture));
    }
    let dats = tempfile::tempdir().unwrap();
    write_other_system_dats(dats.path());
    let mnt = tempfile::tempdir().unwrap();
    let (_guard, _) =
        mount_support::mount_with_args(backing.path(), mnt.path(), ["--dat".as_ref(), dats.path()]);
    let verified = mnt.path().join("verified");
    let mut listed: Vec<String> = std::fs::read_dir(&verified)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            "Atari - Lynx (LNX)",
            "Atari - Lynx (LNX).txt",
            "Atari - Lynx (LYX)",
            "Atari - Lynx (LYX).txt",
            "NEC - PC Engine - TurboGrafx-16",
            "NEC - PC Engine - TurboGrafx-16.txt",
            "Nintendo - Game Boy",
            "Nintendo - Game Boy Color",
            "Nintendo - Game Boy Color.txt",
            "Nintendo - Game Boy.txt",
            "Sega - Game Gear",
            "Sega - Game Gear.txt",
            "Sega - Master System - Mark III",
            "Sega - Master System - Mark III.txt",
        ]
    );
    let expected: [(&str, Vec<u8>); 8] = [
        (
            "Nintendo - Game Boy/Bits Reg F (World).gb",
            read_fixture("roms/gb/mooneye_acceptance_bits_reg_f.gb"),
        ),
        (
            "Nintendo - Game Boy/Makebin MBC1 (World).gb",
            read_fixture("roms/gb/sdcc_makebin_mbc1.gb"),
        ),
        (
            "Nintendo - Game Boy Color/Makebin (World).gbc",
            read_fixture("roms/gb/sdcc_makebin.gbc"),
        ),
        (
            "Sega - Master System - Mark III/Makebin (Japan).sms",
            read_fixture("roms/sms_gg/sdcc_makebin_jp.sms"),
        ),
        (
            "Sega - Game Gear/Makebin (World).gg",
            read_fixture("roms/sms_gg/sdcc_makebin_intl.gg"),
        ),
        (
            "Atari - Lynx (LNX)/TGI Hello (World).lnx",
            read_fixture("roms/lynx/cc65_tgi_hello.lnx"),
        ),
        // The skipper DAT hashes the image without the 64-byte LNX
        // header: the .lyx the same program ships as.
        (
            "Atari - Lynx (LYX)/TGI Hello (World).lyx",
            read_fixture("roms/lynx/cc65_tgi_hello.lyx"),
        ),
        (
            "NEC - PC Engine - TurboGrafx-16/Hello (Japan).pce",
            read_fixture("roms/pce/cc65_hello.pce"),
        ),
    ];
    for (rel, bytes) in expected {
        let path = verified.join(rel);
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{rel}");
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            bytes.len() as u64,
            "{rel}"
        );
    }
    assert_eq!(
        names_in(&verified.join("Nintendo - Game Boy")),
        ["Bits Reg F (World).gb", "Makebin MBC1 (World).gb"]
    );
    let report = std::fs::read_to_string(verified.join("Nintendo - Game Boy.txt")).unwrap();
    assert!(report.contains("have 2 of 2 ROMs\n"), "{report}");
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// DATs of raw images that neither normalized/ nor deinterleaved/ shows: a
/// byte-swapped N64 dump and an interleaved SNES one.
fn write_raw_only_dats(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let (size, v64) = image_of("roms/n64/bigbass1997_minimal.v64", ImageLayout::Raw);
    let n64 = dat_of(
        "Nintendo - Nintendo 64 (ByteSwapped)",
        None,
        &[("Minimal (World).v64", size, v64)],
    );
    std::fs::write(dir.join("n64-v64.dat"), dat::clrmamepro::write(&n64)).unwrap();
    let (size, interleaved) = image_of(
        "rup-vectors/snes_hirom20.input_interleaved.sfc",
        ImageLayout::Raw,
    );
    let snes = dat_of(
        "SNES (Interleaved)",
        None,
        &[("HiROM Test (Japan) (Interleaved).sfc", size, interleaved)],
    );
    std::fs::write(dir.join("snes-interleaved.xml"), dat::logiqx::write(&snes)).unwrap();
}

#[test]
fn a_raw_only_match_serves_the_backing_file() {
    let backing = backing();
    let dats = tempfile::tempdir().unwrap();
    write_raw_only_dats(dats.path());
    for (fixture_rel, rom) in [
        ("roms/n64/bigbass1997_minimal.v64", "Minimal (World).v64"),
        (
            "rup-vectors/snes_hirom20.input_interleaved.sfc",
            "HiROM Test (Japan) (Interleaved).sfc",
        ),
    ] {
        let text = info_with_dat(fixture_rel, dats.path());
        assert!(
            text.contains(&format!(
                "rom '{rom}'\n    the raw image matches by size and SHA-1\n"
            )),
            "{text}"
        );
    }
    let fs = fs_with_dats(backing.path(), dats.path());
    assert_eq!(
        read_all(
            &fs,
            "verified/Nintendo - Nintendo 64 (ByteSwapped)/Minimal (World).v64"
        ),
        read_fixture("roms/n64/bigbass1997_minimal.v64")
    );
    assert_eq!(
        read_all(
            &fs,
            "verified/SNES (Interleaved)/HiROM Test (Japan) (Interleaved).sfc"
        ),
        read_fixture("rup-vectors/snes_hirom20.input_interleaved.sfc")
    );
    let report = read_all(&fs, "verified/SNES (Interleaved).txt");
    let report = String::from_utf8(report).unwrap();
    assert!(
        report.ends_with(
            "have 1 of 1 ROMs\n\nmissing: 0\n\nfiles matching more than one entry: 0\n\nmatched by CRC32 alone: 0\n\nbad or altered dumps: 0\n"
        ),
        "{report}"
    );
}

#[test]
fn the_dat_section_is_made_from_the_bytes_info_read() {
    // The name is of no file: the section comes from the bytes given.
    let dir = tempfile::tempdir().unwrap();
    write_dats(dir.path());
    let (set, errors) = DatSet::load(&[dir.path().join("snes.xml")]);
    assert!(errors.is_empty(), "{errors:?}");
    let bytes = read_fixture("roms/snes/cputest-basic.smc");
    let (mut table, mut object) = (String::new(), serde_json::json!({}));
    dat::add_to_report(
        &set,
        "/no/such/folder/cputest-basic.smc",
        &bytes,
        None,
        &mut table,
        &mut object,
    );
    assert_eq!(
        table,
        format!(
            "\nDAT\n  {SNES_DAT} (version 20260101): game 'CPU Test (World)', rom 'CPU Test (World).sfc'\n    the normalized image matches by size and SHA-1\n"
        )
    );
    assert_eq!(object["dat"]["matches"][0]["rom"], "CPU Test (World).sfc");
}

/// Makes `archive` holding `members` (files of `dir`) with `tool`
/// (`zip`, `7z` or `gzip`).
fn archive_with(tool: &str, dir: &Path, archive: &Path, members: &[&str]) {
    let mut command = std::process::Command::new(tool);
    match tool {
        "zip" => command.arg("-qj").arg(archive),
        "7z" => command.arg("a").arg("-bd").arg("-bb0").arg(archive),
        _ => command.arg("-k"),
    };
    command.args(members.iter().map(|m| dir.join(m)));
    let made = command.stdout(std::process::Stdio::null()).status();
    if !made.is_ok_and(|s| s.success()) {
        panic!("{tool} is needed: .ci/run installs it");
    }
}

#[test]
fn info_of_an_archive_holding_one_rom_has_a_dat_section() {
    let dir = tempfile::tempdir().unwrap();
    write_dats(&dir.path().join("dats"));
    let dats = dir.path().join("dats/snes.xml");
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    std::fs::write(
        files.join("x1.smc"),
        read_fixture("roms/snes/cputest-basic.smc"),
    )
    .unwrap();
    std::fs::write(files.join("readme.txt"), "not a ROM\n").unwrap();
    archive_with("zip", &files, &dir.path().join("one.zip"), &["x1.smc"]);
    // A ROM and a text: the one ROM is what info reads.
    archive_with(
        "zip",
        &files,
        &dir.path().join("with-readme.zip"),
        &["x1.smc", "readme.txt"],
    );
    archive_with("7z", &files, &dir.path().join("one.7z"), &["x1.smc"]);
    archive_with("gzip", &files, &files, &["x1.smc"]);
    std::fs::rename(files.join("x1.smc.gz"), dir.path().join("x1.smc.gz")).unwrap();
    let section = format!(
        "\nDAT\n  {SNES_DAT} (version 20260101): game 'CPU Test (World)', rom 'CPU Test (World).sfc'\n    the normalized image matches by size and SHA-1\n"
    );
    for (archive, member) in [
        ("one.zip", "x1.smc"),
        ("with-readme.zip", "x1.smc"),
        ("one.7z", "x1.smc"),
        ("x1.smc.gz", "x1.smc"),
    ] {
        let path = dir.path().join(archive);
        let text = stdout_of(ninja().arg("info").arg(&path).arg("--dat").arg(&dats));
        assert!(
            text.starts_with(&format!("{}//{member}\n", path.display())),
            "{text}"
        );
        assert!(text.ends_with(&section), "{archive}: {text}");
        let json = stdout_of(
            ninja()
                .arg("info")
                .arg("--json")
                .arg(&path)
                .arg("--dat")
                .arg(&dats),
        );
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            value[0]["dat"]["matches"][0]["rom"], "CPU Test (World).sfc",
            "{archive}"
        );
        assert_eq!(value[0]["dat"]["matches"][0]["image"], "normalized");
    }
    // The member named after `//`.
    let member = format!("{}//x1.smc", dir.path().join("with-readme.zip").display());
    let text = stdout_of(ninja().arg("info").arg(&member).arg("--dat").arg(&dats));
    assert!(text.ends_with(&section), "{text}");
}

#[test]
fn a_skipper_dat_is_matched_by_the_headerless_image_alone() {
    let dir = tempfile::tempdir().unwrap();
    write_dats(dir.path());
    let text = info_with_dat(
        "roms/nes/cc65_hello.nes",
        &dir.path().join("nes-headerless.dat"),
    );
    assert!(
        text.ends_with(
            "\nDAT\n  Nintendo - NES (Headerless) (version 20260101): game 'Hello (World)', rom 'Hello (World).nes'\n    the normalized image matches by size and SHA-1\n    the DAT hashes headerless images (header skipper nes.xml)\n"
        ),
        "{text}"
    );
    let json = stdout_of(
        ninja()
            .arg("info")
            .arg("--json")
            .arg(fixture("roms/nes/cc65_hello.nes"))
            .arg("--dat")
            .arg(dir.path()),
    );
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let matches = value[0]["dat"]["matches"].as_array().unwrap();
    let skippers: Vec<(&str, &serde_json::Value)> = matches
        .iter()
        .map(|m| (m["dat"].as_str().unwrap(), &m["dat_skipper"]))
        .collect();
    assert_eq!(
        skippers,
        [
            ("Nintendo - NES (Headerless)", &serde_json::json!("nes.xml")),
            ("Nintendo - NES (Headered)", &serde_json::Value::Null),
        ]
    );
    // A DAT that names the skipper yet lists the whole iNES file's hashes:
    // what it hashes is the file less its header, so the file is no match.
    let (size, headered) = image_of("roms/nes/cc65_hello.nes", ImageLayout::Raw);
    let wrong = dat_of(
        "NES (Skipper, Headered Hashes)",
        Some("nes.xml"),
        &[("Hello (World).nes", size, headered)],
    );
    let path = dir.path().join("wrong.xml");
    std::fs::write(&path, dat::logiqx::write(&wrong)).unwrap();
    let text = info_with_dat("roms/nes/cc65_hello.nes", &path);
    assert!(text.ends_with("\nDAT\n  not in any loaded DAT\n"), "{text}");
    // The verified/ report says what the DAT hashes.
    let backing = backing();
    let fs = fs_with_dats(backing.path(), dir.path());
    let report = read_all(&fs, "verified/Nintendo - NES (Headerless).txt");
    assert_eq!(
        String::from_utf8(report).unwrap(),
        format!(
            "Nintendo - NES (Headerless) (version 20260101)\nfrom {}/nes-headerless.dat\nthe DAT hashes headerless images (header skipper nes.xml)\n\nhave 1 of 1 ROMs\n\nmissing: 0\n\nfiles matching more than one entry: 0\n\nmatched by CRC32 alone: 0\n\nbad or altered dumps: 0\n",
            dir.path().display()
        )
    );
    assert_eq!(
        names(&fs, "verified/NES (Skipper, Headered Hashes)"),
        Vec::<String>::new()
    );
    assert_eq!(
        read_all(
            &fs,
            "verified/Nintendo - NES (Headerless)/Hello (World).nes"
        ),
        read_fixture("roms/nes/cc65_hello.nes")[16..]
    );
}

#[test]
fn a_real_mount_serves_raw_only_matches() {
    if let Some(reason) = mount_support::fuse_unavailable() {
        eprintln!("skipped: {reason}");
        return;
    }
    let backing = backing();
    let dats = tempfile::tempdir().unwrap();
    write_raw_only_dats(dats.path());
    // A DAT of headered SNES dumps: it hashes the .smc file, copier
    // header and all, which no view but the backing file is.
    let (size, smc) = image_of("roms/snes/cputest-basic.smc", ImageLayout::Raw);
    let headered = dat_of(
        "SNES (Headered)",
        None,
        &[("CPU Test (World) [Copier].smc", size, smc)],
    );
    std::fs::write(
        dats.path().join("snes-headered.dat"),
        dat::clrmamepro::write(&headered),
    )
    .unwrap();
    let mnt = tempfile::tempdir().unwrap();
    let (_guard, _) =
        mount_support::mount_with_args(backing.path(), mnt.path(), ["--dat".as_ref(), dats.path()]);
    let verified = mnt.path().join("verified");
    assert_eq!(
        names_in(&verified),
        [
            "Nintendo - Nintendo 64 (ByteSwapped)",
            "Nintendo - Nintendo 64 (ByteSwapped).txt",
            "SNES (Headered)",
            "SNES (Headered).txt",
            "SNES (Interleaved)",
            "SNES (Interleaved).txt",
        ]
    );
    for (folder, name, fixture_rel) in [
        (
            "Nintendo - Nintendo 64 (ByteSwapped)",
            "Minimal (World).v64",
            "roms/n64/bigbass1997_minimal.v64",
        ),
        (
            "SNES (Headered)",
            "CPU Test (World) [Copier].smc",
            "roms/snes/cputest-basic.smc",
        ),
        (
            "SNES (Interleaved)",
            "HiROM Test (Japan) (Interleaved).sfc",
            "rup-vectors/snes_hirom20.input_interleaved.sfc",
        ),
    ] {
        let wanted = read_fixture(fixture_rel);
        let mut listed = names_in(&verified.join(folder));
        // Less the patched variants (the backing folder's x1.ips).
        listed.retain(|n| !n.contains("[x1]"));
        assert_eq!(listed, [name], "{folder}");
        let path = verified.join(folder).join(name);
        assert_eq!(std::fs::read(&path).unwrap(), wanted, "{folder}/{name}");
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            wanted.len() as u64,
            "{folder}/{name}"
        );
    }
    // The headered dump's patched variant is beside it.
    assert_eq!(
        names_in(&verified.join("SNES (Headered)")),
        [
            "CPU Test (World) [Copier] [x1].smc",
            "CPU Test (World) [Copier].smc",
        ]
    );
    let report = std::fs::read_to_string(verified.join("SNES (Headered).txt")).unwrap();
    assert_eq!(
        report,
        format!(
            "SNES (Headered) (version 20260101)\nfrom {}/snes-headered.dat\n\nhave 1 of 1 ROMs\n\nmissing: 0\n\nfiles matching more than one entry: 0\n\nmatched by CRC32 alone: 0\n\nbad or altered dumps: 0\n",
            dats.path().display()
        )
    );
}

#[test]
fn listing_info_hashes_only_roms_of_a_size_some_dat_lists() {
    let backing = backing();
    let dats = tempfile::tempdir().unwrap();
    // One entry, of the N64 ROM's size: only that ROM is worth hashing.
    let (size, n64) = image_of("roms/n64/bigbass1997_minimal.z64", ImageLayout::Raw);
    let dat = dat_of("N64", None, &[("Minimal (World).z64", size, n64)]);
    std::fs::write(dats.path().join("n64.xml"), dat::logiqx::write(&dat)).unwrap();
    // A DAT of headerless NES images with an entry of the size of the
    // iNES file, header and all: no headerless image has that size.
    let (size, headered) = image_of("roms/nes/cc65_hello.nes", ImageLayout::Raw);
    let dat = dat_of("NES", Some("nes.xml"), &[("Other.nes", size, headered)]);
    std::fs::write(dats.path().join("nes.xml"), dat::logiqx::write(&dat)).unwrap();
    let fs = fs_with_dats(backing.path(), dats.path());
    let mut listed = Vec::new();
    for folder in ["n64", "nes", "pce", "stuff"] {
        for name in names(&fs, &format!("info/{folder}")) {
            lookup(&fs, &format!("info/{folder}/{name}")).unwrap();
            listed.push(format!("{folder}/{name}"));
        }
    }
    assert_eq!(
        listed,
        [
            "n64/m.v64.txt",
            "nes/h.nes.txt",
            "pce/p.pce.txt",
            "stuff/hirom.sfc.txt",
            "stuff/x1.smc.txt",
        ]
    );
    assert_eq!(fs.library().roms_hashed(), 1);
}
