//! Internal checksums: `fix-checksum`, `apply --fix-checksum`, what `info`
//! says, the mount's `patched/` and `info/` with and without
//! `--fix-checksums`, and every system checked against a second
//! implementation (tests/checksum_reference.py, Python).

mod common;

use std::path::Path;
use std::process::Command;

use common::{fixture, lookup, ninja, read_all, read_fixture, stderr_of};
use ninja_fs::patch::Limits;
use ninja_fs::patch::any::{self, PatchFormat};
use ninja_fs::system::{self, SystemType};
use ninja_fs::views::NinjaFs;

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn stderr_ok(cmd: &mut assert_cmd::Command) -> String {
    let out = cmd.assert().success().get_output().clone();
    String::from_utf8(out.stderr).unwrap()
}

// --- test images for systems the fixtures lack ---

/// A Mega Drive image: SEGA at 0x100, 64 KiB of varied words, its
/// checksum word left zero.
fn mega_image() -> Vec<u8> {
    let mut image: Vec<u8> = (0..0x1_0000u32).map(|i| (i * 31 % 253) as u8).collect();
    image[0x100..0x110].copy_from_slice(b"SEGA MEGA DRIVE ");
    image[0x18E..0x190].copy_from_slice(&[0, 0]);
    image
}

/// A GBA image: logo start, title, the fixed 0x96, a wrong complement.
fn gba_image() -> Vec<u8> {
    let mut image = vec![0u8; 0x8000];
    image[4..8].copy_from_slice(&[0x24, 0xFF, 0xAE, 0x51]);
    image[0xA0..0xAC].copy_from_slice(b"NINJA TEST  ");
    image[0xAC..0xB0].copy_from_slice(b"ANJE");
    image[0xB0..0xB2].copy_from_slice(b"01");
    image[0xB2] = 0x96;
    image[0xBD] = 0x00;
    image
}

fn crc32_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    for (n, entry) in table.iter_mut().enumerate() {
        let mut c = n as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *entry = c;
    }
    table
}

/// Sets the last four bytes of `data` so that its CRC32 is `target`.
fn forge_crc32(data: &mut [u8], target: u32) {
    let table = crc32_table();
    let n = data.len();
    let mut indices = [0usize; 4];
    let mut want = !target;
    for k in (0..4).rev() {
        let j = (0..256).find(|&j| table[j] >> 24 == want >> 24).unwrap();
        indices[k] = j;
        want = (want ^ table[j]) << 8;
    }
    let mut register = !crc32fast::hash(&data[..n - 4]);
    for (k, &index) in indices.iter().enumerate() {
        data[n - 4 + k] = ((register ^ index as u32) & 0xFF) as u8;
        register = (register >> 8) ^ table[index];
    }
    assert_eq!(crc32fast::hash(data), target);
}

/// A big-endian N64 image whose boot code has the CRC32 that names `cic`
/// (not a real boot code: the identification is all the CRC needs).
fn n64_image(boot_crc32: u32) -> Vec<u8> {
    let mut image: Vec<u8> = (0..0x10_1000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    image[..4].copy_from_slice(&[0x80, 0x37, 0x12, 0x40]);
    forge_crc32(&mut image[0x40..0x1000], boot_crc32);
    image
}

/// A SNES HiROM of `len` bytes with a header at `base` and no checksum pair.
fn snes_image(len: usize, base: usize, map: u8) -> Vec<u8> {
    let mut image: Vec<u8> = (0..len as u32).map(|i| (i * 7 % 251) as u8).collect();
    image[base..base + 21].copy_from_slice(b"NINJA CHECKSUM TEST  ");
    image[base + 0x15] = map;
    image[base + 0x17] = 0x0C;
    image[base + 0x1C..base + 0x20].copy_from_slice(&[0x12, 0x34, 0x56, 0x78]);
    image
}

// --- the reference implementation ---

fn python() -> Option<&'static str> {
    let found = Command::new("python3").arg("--version").output();
    found.is_ok_and(|o| o.status.success()).then_some("python3")
}

/// What tests/checksum_reference.py says of `image`: (stored, computed)
/// per field, or `None` when it finds no header.
fn reference(python: &str, system: &str, image: &[u8]) -> Option<Vec<(u32, u32)>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.bin");
    std::fs::write(&path, image).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/checksum_reference.py");
    let out = Command::new(python)
        .arg(script)
        .arg(system)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    if text.trim() == "none" {
        return None;
    }
    let hex = |s: &str| u32::from_str_radix(s, 16).unwrap();
    Some(
        text.lines()
            .map(|line| line.split(' ').collect::<Vec<_>>())
            // The N64 line naming the boot chip is no field.
            .filter(|parts| parts[0] != "cic")
            .map(|parts| (hex(parts[1]), hex(parts[2])))
            .collect(),
    )
}

#[test]
fn every_system_agrees_with_a_second_implementation() {
    let Some(python) = python() else {
        eprintln!("skipped: python3 is not installed (.ci/run installs it)");
        return;
    };
    let broken = |rel: &str, at: usize| {
        let mut image = read_fixture(rel);
        image[at] ^= 0x5A;
        image
    };
    let cases: Vec<(&str, SystemType, Vec<u8>)> = vec![
        (
            "snes",
            SystemType::Snes,
            read_fixture("roms/snes/cputest-basic.sfc"),
        ),
        (
            "snes",
            SystemType::Snes,
            read_fixture("roms/snes/cputest-full.sfc"),
        ),
        (
            "snes",
            SystemType::Snes,
            snes_image(0x30_0000, 0xFFC0, 0x21),
        ),
        (
            "snes",
            SystemType::Snes,
            snes_image(0x60_0000, 0x40_FFC0, 0x25),
        ),
        ("snes", SystemType::Snes, vec![0x5A; 0x8000]),
        (
            "gb",
            SystemType::Gb,
            read_fixture("roms/gb/mooneye_acceptance_bits_reg_f.gb"),
        ),
        (
            "gb",
            SystemType::Gb,
            read_fixture("roms/gb/mooneye_emulator-only_mbc1_rom_1Mb.gb"),
        ),
        (
            "gb",
            SystemType::Gb,
            read_fixture("roms/gb/sdcc_makebin.gbc"),
        ),
        (
            "gb",
            SystemType::Gb,
            broken("roms/gb/sdcc_makebin_mbc1.gb", 0x140),
        ),
        (
            "gb",
            SystemType::Gb,
            broken("roms/gb/mooneye_emulator-only_mbc1_rom_512Kb.gb", 0x8000),
        ),
        (
            "sms",
            SystemType::Sms,
            read_fixture("roms/sms_gg/sdcc_makebin_export.sms"),
        ),
        (
            "sms",
            SystemType::Sms,
            read_fixture("roms/sms_gg/sdcc_makebin_intl.gg"),
        ),
        (
            "sms",
            SystemType::Sms,
            broken("roms/sms_gg/sdcc_makebin_jp.sms", 0x1234),
        ),
        ("mega", SystemType::Mega, mega_image()),
        ("mega", SystemType::Mega, mega_image()[..0x8001].to_vec()),
        (
            "n64",
            SystemType::N64,
            read_fixture("roms/n64/bigbass1997_minimal.z64"),
        ),
        (
            "n64",
            SystemType::N64,
            broken("roms/n64/bigbass1997_minimal.z64", 0x8_0000),
        ),
        ("n64", SystemType::N64, n64_image(0x6170_A4A1)),
        ("n64", SystemType::N64, n64_image(0x0B05_0EE0)),
        ("n64", SystemType::N64, n64_image(0x98BC_2C86)),
        ("n64", SystemType::N64, n64_image(0xACC8_580A)),
        ("n64", SystemType::N64, n64_image(0x1234_5678)),
        ("gba", SystemType::Raw, gba_image()),
    ];
    let mut fixed_some = 0;
    for (index, (word, system, mut image)) in cases.into_iter().enumerate() {
        let ours = system::checksum_status(&image, system)
            .map(|s| s.fields.iter().map(|f| (f.stored, f.computed)).collect());
        assert_eq!(
            ours,
            reference(python, word, &image),
            "case {index} ({word})"
        );
        let changes = system::fix_checksum(&mut image, system);
        fixed_some += usize::from(!changes.is_empty());
        if let Some(after) = reference(python, word, &image) {
            assert!(
                after.iter().all(|(stored, computed)| stored == computed),
                "case {index} ({word}) after the fix: {after:x?}"
            );
        }
    }
    // Every image made or broken for the purpose needed a fix.
    assert_eq!(fixed_some, 15);
}

// --- the command line ---

#[test]
fn fix_checksum_writes_the_deinterleaved_image_with_the_fields_it_changed() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = stderr_ok(
        ninja()
            .current_dir(fixture("roms/snes"))
            .args(["fix-checksum", "cputest-basic.smc", "-o"])
            .arg(dir.path().join("fixed.sfc")),
    );
    assert_eq!(
        stderr,
        "ninja-fs: cputest-basic.smc: fixed SNES checksum at 0x7fde: 0xffff -> 0x6477\n\
         ninja-fs: cputest-basic.smc: fixed SNES checksum complement at 0x7fdc: 0x0000 -> 0x9b88\n"
    );
    let written = std::fs::read(dir.path().join("fixed.sfc")).unwrap();
    let mut expected = read_fixture("roms/snes/cputest-basic.sfc");
    expected[0x7FDC..0x7FE0].copy_from_slice(&[0x88, 0x9B, 0x77, 0x64]);
    assert_eq!(written, expected);

    // Fixed once, it holds: the same bytes again, and it says so.
    let stderr = stderr_ok(ninja().current_dir(dir.path()).args([
        "fix-checksum",
        "fixed.sfc",
        "-o",
        "again.sfc",
    ]));
    assert_eq!(
        stderr,
        "ninja-fs: fixed.sfc: SNES checksum 0x6477 and SNES checksum complement 0x9b88 \
         hold already: nothing changed\n"
    );
    assert_eq!(
        std::fs::read(dir.path().join("again.sfc")).unwrap(),
        expected
    );
}

#[test]
fn fix_checksum_of_a_byte_swapped_n64_dump_is_big_endian_and_changes_nothing() {
    let out = ninja()
        .current_dir(fixture("roms/n64"))
        .args(["fix-checksum", "bigbass1997_minimal.v64", "-o", "-"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert_eq!(out.stdout, read_fixture("roms/n64/bigbass1997_minimal.z64"));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "ninja-fs: bigbass1997_minimal.v64: N64 CRC1 0xf7ece806 and N64 CRC2 0x707c8f60 \
         hold already: nothing changed\n"
    );
}

#[test]
fn fix_checksum_refuses_what_has_no_checksum_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.nes");
    let stderr = stderr_of(
        ninja()
            .current_dir(fixture("roms/nes"))
            .args(["fix-checksum", "nes15-NTSC.nes", "-o"])
            .arg(&out),
    );
    assert_eq!(
        stderr,
        "ninja-fs: nes15-NTSC.nes: NES / Famicom images carry no internal checksum (ninja-fs \
         fixes those of SNES, Game Boy, Mega Drive, Master System, Game Gear, N64 and GBA \
         images): nothing written\n"
    );
    assert!(!out.exists());

    write(dir.path(), "blank.sfc", &vec![0u8; 0x8000]);
    let stderr = stderr_of(ninja().current_dir(dir.path()).args([
        "fix-checksum",
        "blank.sfc",
        "--system",
        "snes",
        "-o",
        "x.sfc",
    ]));
    assert_eq!(
        stderr,
        "ninja-fs: blank.sfc: no Super NES / Super Famicom internal header with a checksum is \
         found in the image: nothing written\n"
    );
    write(dir.path(), "plain.bin", b"nothing to see");
    let stderr = stderr_of(ninja().current_dir(dir.path()).args([
        "fix-checksum",
        "plain.bin",
        "-o",
        "x.bin",
    ]));
    assert_eq!(
        stderr,
        "ninja-fs: plain.bin: no GBA cartridge header, and a raw image has no other internal \
         checksum (say --system if it is a ROM of another system): nothing written\n"
    );
    assert!(!dir.path().join("x.sfc").exists() && !dir.path().join("x.bin").exists());
}

#[test]
fn fix_checksum_of_a_gba_image() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "game.gba", &gba_image());
    let stderr = stderr_ok(ninja().current_dir(dir.path()).args([
        "fix-checksum",
        "game.gba",
        "-o",
        "fixed.gba",
    ]));
    // 0xa0..=0xbc add up to 0x525: -(0x525 + 0x19) is 0xc2 in a byte.
    assert_eq!(
        stderr,
        "ninja-fs: game.gba: fixed GBA header complement at 0xbd: 0x00 -> 0xc2\n"
    );
    let mut expected = gba_image();
    expected[0xBD] = 0xC2;
    assert_eq!(
        std::fs::read(dir.path().join("fixed.gba")).unwrap(),
        expected
    );
}

#[test]
fn apply_fixes_checksums_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let patch = fixture("patches/snes_cputest_basic2full.flips.ips");
    let apply = |extra: &[&str], out: &str| {
        let mut cmd = ninja();
        cmd.current_dir(fixture("roms/snes"))
            .args(["apply", "cputest-basic.sfc"])
            .arg(&patch)
            .args(extra)
            .arg("-o")
            .arg(dir.path().join(out));
        cmd
    };
    assert_eq!(stderr_ok(&mut apply(&[], "plain.sfc")), "");
    let full = read_fixture("roms/snes/cputest-full.sfc");
    assert_eq!(std::fs::read(dir.path().join("plain.sfc")).unwrap(), full);

    let stderr = stderr_ok(&mut apply(&["--fix-checksum"], "fixed.sfc"));
    assert_eq!(
        stderr,
        "ninja-fs: cputest-basic.sfc: fixed SNES checksum at 0x7fde: 0xffff -> 0x7ae6\n\
         ninja-fs: cputest-basic.sfc: fixed SNES checksum complement at 0x7fdc: 0x0000 -> 0x8519\n"
    );
    let mut expected = full;
    expected[0x7FDC..0x7FE0].copy_from_slice(&[0x19, 0x85, 0xE6, 0x7A]);
    assert_eq!(
        std::fs::read(dir.path().join("fixed.sfc")).unwrap(),
        expected
    );
}

#[test]
fn apply_fix_checksum_on_a_rom_without_one_writes_it_as_patched() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = stderr_ok(
        ninja()
            .current_dir(fixture("roms/nes"))
            .args(["apply", "nes15-NTSC.nes"])
            .arg(fixture("patches/nes15_ntsc2pal.flips.ips"))
            .args(["--fix-checksum", "-o"])
            .arg(dir.path().join("pal.nes")),
    );
    assert_eq!(
        stderr,
        "ninja-fs: nes15-NTSC.nes: NES / Famicom images carry no internal checksum (ninja-fs \
         fixes those of SNES, Game Boy, Mega Drive, Master System, Game Gear, N64 and GBA \
         images): written as patched\n"
    );
    assert_eq!(
        std::fs::read(dir.path().join("pal.nes")).unwrap(),
        read_fixture("roms/nes/nes15-PAL.nes")
    );
}

#[test]
fn apply_fix_checksum_refuses_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = stderr_of(
        ninja()
            .args(["apply"])
            .arg(fixture("roms/gb"))
            .arg(fixture("patches/mbc1_512k_to_1M.rompatcherjs.rup"))
            .args(["--fix-checksum", "-o"])
            .arg(dir.path().join("out")),
    );
    assert_eq!(
        stderr,
        "ninja-fs: --fix-checksum works on one ROM file, not on a folder\n"
    );
}

/// The `info` rows whose label starts with one of `labels`.
fn info_rows(dir: &Path, file: &str, labels: &[&str]) -> Vec<String> {
    let out = ninja()
        .current_dir(dir)
        .args(["info", file])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .filter(|line| labels.iter().any(|l| line.trim_start().starts_with(l)))
        .map(str::to_string)
        .collect()
}

#[test]
fn info_says_whether_each_stored_checksum_holds() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        info_rows(
            &fixture("roms/n64"),
            "bigbass1997_minimal.n64",
            &["boot code", "crc"]
        ),
        [
            "  crc1                f7ece806 (stored boot checksum, first word)",
            "  crc2                707c8f60 (stored boot checksum, second word)",
            "  boot code           CIC-NUS-6102 (told by the boot code's CRC32)",
            "  crc valid           yes, stored = computed",
        ]
    );
    let mut n64 = read_fixture("roms/n64/bigbass1997_minimal.z64");
    n64[0x8_0000] ^= 1;
    write(dir.path(), "hack.z64", &n64);
    assert_eq!(
        info_rows(dir.path(), "hack.z64", &["crc valid"]),
        ["  crc valid           no, stored != computed"]
    );
    write(dir.path(), "odd.z64", &n64_image(0x1234_5678));
    assert_eq!(
        info_rows(dir.path(), "odd.z64", &["boot code", "crc valid"]),
        [
            "  boot code           unknown: no CIC 6101/6102/6103/6105/6106 boot code, so the \
             CRCs are not checked"
        ]
    );
    write(dir.path(), "game.gba", &gba_image());
    assert_eq!(
        info_rows(dir.path(), "game.gba", &["gba"]),
        [
            "  gba title                    NINJA TEST",
            "  gba game code                ANJE",
            "  gba header complement        0x00 (stored, over 0xa0-0xbc)",
            "  gba header complement valid  no, stored != computed",
        ]
    );
    let mut gb = read_fixture("roms/gb/sdcc_makebin.gbc");
    gb[0x4000] ^= 0xFF;
    write(dir.path(), "hack.gbc", &gb);
    assert_eq!(
        info_rows(
            dir.path(),
            "hack.gbc",
            &["header checksum valid", "global checksum valid"]
        ),
        [
            "  header checksum valid  yes, stored = computed",
            "  global checksum valid  no, stored != computed",
        ]
    );
}

// --- the mount's views, without FUSE ---

/// A backing folder: a SNES ROM with its sidecar IPS (the result's
/// checksum fields are placeholders), a Game Boy ROM with an IPS that
/// changes one byte, a NES ROM with its IPS, and a GBA image with one
/// (a raw `.bin` to the mount, as NINJA 2.0 had no GBA type).
fn backing() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "roms/Snes.sfc",
        &read_fixture("roms/snes/cputest-basic.sfc"),
    );
    write(
        root,
        "roms/Snes.ips",
        &read_fixture("patches/snes_cputest_basic2full.flips.ips"),
    );
    let gb = read_fixture("roms/gb/mooneye_acceptance_bits_reg_f.gb");
    let mut hacked = gb.clone();
    hacked[0x151] = 0x34;
    write(root, "roms/Boy.gb", &gb);
    write(
        root,
        "roms/Boy.ips",
        &any::create(PatchFormat::Ips, &gb, &hacked).unwrap(),
    );
    write(
        root,
        "roms/Nes.nes",
        &read_fixture("roms/nes/nes15-NTSC.nes"),
    );
    write(
        root,
        "roms/Nes.ips",
        &read_fixture("patches/nes15_ntsc2pal.flips.ips"),
    );
    let gba = gba_image();
    let mut gba_hack = gba.clone();
    gba_hack[0xA0] = b'H';
    write(root, "roms/Adv.bin", &gba);
    write(
        root,
        "roms/Adv.ips",
        &any::create(PatchFormat::Ips, &gba, &gba_hack).unwrap(),
    );
    dir
}

/// The lines of an `info/` report that follow a patched variant's
/// "shown as" line.
fn variant_lines(report: &str, shown_as: &str) -> Vec<String> {
    let lines: Vec<&str> = report.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == format!("    shown as {shown_as}"))
        .unwrap_or_else(|| panic!("no {shown_as} in\n{report}"));
    lines[at + 1..]
        .iter()
        .take_while(|l| l.starts_with("    "))
        .map(|l| l.to_string())
        .collect()
}

#[test]
fn patched_files_keep_the_patches_checksums_by_default() {
    let dir = backing();
    let fs = NinjaFs::new(dir.path(), 64 << 20, Limits::default()).unwrap();
    assert_eq!(
        read_all(&fs, "patched/roms/Snes [Snes].sfc"),
        read_fixture("roms/snes/cputest-full.sfc")
    );
    let boy = read_all(&fs, "patched/roms/Boy [Boy].gb");
    assert_eq!(
        (boy[0x151], &boy[0x14D..0x150]),
        (0x34, &[0x2D, 0x46, 0x8D][..])
    );
    let info = String::from_utf8(read_all(&fs, "info/roms/Boy.gb.txt")).unwrap();
    assert_eq!(
        variant_lines(&info, "patched/roms/Boy [Boy].gb"),
        ["    internal checksum: no, stored != computed"]
    );
    let info = String::from_utf8(read_all(&fs, "info/roms/Snes.sfc.txt")).unwrap();
    assert_eq!(
        variant_lines(&info, "patched/roms/Snes [Snes].sfc"),
        ["    internal checksum: no, stored != computed"]
    );
    // A NES ROM has no checksum: nothing is said.
    let info = String::from_utf8(read_all(&fs, "info/roms/Nes.nes.txt")).unwrap();
    assert_eq!(
        variant_lines(&info, "patched/roms/Nes [Nes].nes"),
        Vec::<String>::new()
    );
    assert!(!info.contains("internal checksum"), "{info}");
    let info = String::from_utf8(read_all(&fs, "info/roms/Adv.bin.txt")).unwrap();
    assert_eq!(
        variant_lines(&info, "patched/roms/Adv [Adv].bin"),
        ["    internal checksum: no, stored != computed"]
    );
}

#[test]
fn with_fix_checksums_patched_files_carry_fixed_checksums_and_info_says_so() {
    let dir = backing();
    let fs = NinjaFs::new(dir.path(), 64 << 20, Limits::default()).unwrap();
    fs.set_fix_checksums(true);
    // Listed before anything is read: the sizes listed are the sizes read.
    let attributes = lookup(&fs, "info/roms/Boy.gb.txt").unwrap();
    let info = String::from_utf8(read_all(&fs, "info/roms/Boy.gb.txt")).unwrap();
    assert_eq!(attributes.size, info.len() as u64);
    assert_eq!(
        variant_lines(&info, "patched/roms/Boy [Boy].gb"),
        ["    internal checksum as patched: no, stored != computed; served fixed"]
    );
    let boy = read_all(&fs, "patched/roms/Boy [Boy].gb");
    let mut expected = read_fixture("roms/gb/mooneye_acceptance_bits_reg_f.gb");
    expected[0x151] = 0x34;
    expected[0x14E..0x150].copy_from_slice(&[0x46, 0x90]);
    assert_eq!(boy, expected);

    let mut snes = read_fixture("roms/snes/cputest-full.sfc");
    snes[0x7FDC..0x7FE0].copy_from_slice(&[0x19, 0x85, 0xE6, 0x7A]);
    assert_eq!(read_all(&fs, "patched/roms/Snes [Snes].sfc"), snes);
    let info = String::from_utf8(read_all(&fs, "info/roms/Snes.sfc.txt")).unwrap();
    assert_eq!(
        variant_lines(&info, "patched/roms/Snes [Snes].sfc"),
        ["    internal checksum as patched: no, stored != computed; served fixed"]
    );
    // A title byte 6 less: the complement 6 more than the image's 0xc2.
    let adv = read_all(&fs, "patched/roms/Adv [Adv].bin");
    assert_eq!((adv[0xA0], adv[0xBD]), (b'H', 0xC8));
    // Views other than patched/ are never changed.
    assert_eq!(
        read_all(&fs, "deinterleaved/roms/Snes.sfc"),
        read_fixture("roms/snes/cputest-basic.sfc")
    );
    assert_eq!(
        read_all(&fs, "patched/roms/Nes [Nes].nes"),
        read_fixture("roms/nes/nes15-PAL.nes")
    );
}

#[test]
fn a_patch_that_keeps_the_checksum_right_is_served_as_is() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "roms/Gb.gb",
        &read_fixture("roms/gb/mooneye_emulator-only_mbc1_rom_512Kb.gb"),
    );
    write(
        dir.path(),
        "roms/Gb.bps",
        &read_fixture("patches/mbc1_512k_to_1M.flips-delta.bps"),
    );
    let fs = NinjaFs::new(dir.path(), 64 << 20, Limits::default()).unwrap();
    fs.set_fix_checksums(true);
    let info = String::from_utf8(read_all(&fs, "info/roms/Gb.gb.txt")).unwrap();
    assert_eq!(
        variant_lines(&info, "patched/roms/Gb [Gb].gb"),
        ["    internal checksum as patched: yes, stored = computed; served as is"]
    );
    assert_eq!(
        read_all(&fs, "patched/roms/Gb [Gb].gb"),
        read_fixture("roms/gb/mooneye_emulator-only_mbc1_rom_1Mb.gb")
    );
}
